/* util.h — small utilities shared by server and worker: clocks, the shard
 * range rule of DESIGN §3, checked arithmetic and malloc tuning. */
#ifndef PS_UTIL_H
#define PS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Monotonic time in milliseconds and in seconds. */
uint64_t ps_clock_ms(void);
double ps_clock_s(void);

/* Shard i of S owns keys [i*P/S, (i+1)*P/S). PS_EINVAL if i >= S or S == 0. */
int ps_shard_range(uint64_t num_params, uint32_t num_shards, uint32_t i, uint64_t *lo,
                   uint64_t *hi);

/* *out = a * b; false when it overflows. */
bool ps_mul_ok(size_t a, size_t b, size_t *out);

/* Tunes glibc malloc so large buffers are reused instead of being unmapped
 * and faulted in again (LIMITS.md, "the page-fault trap"). Call once in main
 * before creating a ZeroMQ context. */
void ps_malloc_tune(void);

/* Copies src into dst of cap bytes, always NUL-terminated; false if cut. */
bool ps_strlcpy(char *dst, const char *src, size_t cap);

#endif
