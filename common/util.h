/* util.h — small utilities shared by server and worker: clocks, the shard
 * range rule of docs/architecture.md#theta-tensors-and-shards, checked arithmetic, malloc tuning,
 * and the file checks every reader of a user's path shares (regular files only, mkdir -p). */
#ifndef PS_UTIL_H
#define PS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Monotonic time in milliseconds and in seconds. */
uint64_t ps_clock_ms(void);
double ps_clock_s(void);

/* Shard i of S owns keys [i*P/S, (i+1)*P/S). PS_EINVAL if i >= S or S == 0. */
int ps_shard_range(uint64_t num_params, uint32_t num_shards, uint32_t i, uint64_t *lo,
                   uint64_t *hi);

/* *out = a * b; false when it overflows. */
bool ps_mul_ok(size_t a, size_t b, size_t *out);

/* Tunes glibc malloc so large buffers are reused instead of being unmapped
 * and faulted in again: glibc serves each allocation over 32 MB with a fresh
 * mmap, and first-touching its pages costs about 10 µs per 4 KiB on a cloud
 * VM, so a 40 MB message received or built anew each time is ten times
 * slower than the network. Call once in main before creating a ZeroMQ
 * context. */
void ps_malloc_tune(void);

/* Copies src into dst of cap bytes, always NUL-terminated; false if cut. */
bool ps_strlcpy(char *dst, const char *src, size_t cap);

/* What a file of this st_mode is, for a message: "a folder", "a FIFO", "a
 * character device", "a block device", "a socket", "a symbolic link",
 * "a regular file" or "a special file". A static string. */
const char *ps_file_kind(mode_t mode);

/* Opens path read-only (O_CLOEXEC) for a reader, never blocking on it: a
 * folder, a FIFO, a device or a socket is refused unread (a FIFO is opened
 * non-blocking and closed). Returns 0 with *fd set (blocking mode); PS_EIO
 * with errno set when it cannot be opened or examined; PS_EINVAL when it
 * is not a regular file, with *kind from ps_file_kind. */
int ps_file_open_regular(const char *path, int *fd, const char **kind);

/* mkdir -p: creates dir and each missing parent with mode (less the
 * umask). 0 when dir is, or now is, a folder; PS_EIO with errno set
 * otherwise (ENOTDIR when dir or a parent is a file). */
int ps_path_mkdirs(const char *dir, mode_t mode);

#endif
