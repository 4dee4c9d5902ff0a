/* util.c — clocks, shard ranges, checked multiplication, malloc tuning. */
#include "util.h"

#include "error.h"

#include <malloc.h>
#include <string.h>
#include <time.h>

uint64_t ps_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

double ps_clock_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int ps_shard_range(uint64_t num_params, uint32_t num_shards, uint32_t i, uint64_t *lo, uint64_t *hi)
{
    if (num_shards == 0 || i >= num_shards)
        return PS_EINVAL;
    /* 128-bit product: P * S cannot overflow whatever P is */
    *lo = (uint64_t)(((unsigned __int128)num_params * i) / num_shards);
    *hi = (uint64_t)(((unsigned __int128)num_params * (i + 1)) / num_shards);
    return 0;
}

bool ps_mul_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

void ps_malloc_tune(void)
{
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 64 << 20);
}

bool ps_strlcpy(char *dst, const char *src, size_t cap)
{
    if (cap == 0)
        return false;
    size_t n = strlen(src);
    if (n >= cap) {
        memcpy(dst, src, cap - 1);
        dst[cap - 1] = '\0';
        return false;
    }
    memcpy(dst, src, n + 1);
    return true;
}
