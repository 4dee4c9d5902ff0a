/* util.c — clocks, shard ranges, checked multiplication, malloc tuning,
 * regular-file opening and mkdir -p. */
#include "util.h"

#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

const char *ps_file_kind(mode_t mode)
{
    if (S_ISREG(mode))
        return "a regular file";
    if (S_ISDIR(mode))
        return "a folder";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISLNK(mode))
        return "a symbolic link";
    return "a special file";
}

int ps_file_open_regular(const char *path, int *fd, const char **kind)
{
    *fd = -1;
    *kind = NULL;
    /* stat first: opening a FIFO or a socket is what must not happen */
    struct stat st;
    if (stat(path, &st) != 0)
        return PS_EIO;
    if (!S_ISREG(st.st_mode)) {
        *kind = ps_file_kind(st.st_mode);
        return PS_EINVAL;
    }
    /* non-blocking open: the path may have become a FIFO since the stat */
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (f < 0)
        return PS_EIO;
    if (fstat(f, &st) != 0) {
        int e = errno;
        close(f);
        errno = e;
        return PS_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        close(f);
        *kind = ps_file_kind(st.st_mode);
        return PS_EINVAL;
    }
    int flags = fcntl(f, F_GETFL);
    if (flags < 0 || fcntl(f, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(f);
        errno = e;
        return PS_EIO;
    }
    *fd = f;
    return 0;
}

/* mkdir that is content when dir is already a folder */
static int mkdir_one(const char *dir, mode_t mode)
{
    if (mkdir(dir, mode) == 0)
        return 0;
    /* an existing folder may answer EACCES or EROFS rather than EEXIST */
    int e = errno;
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return 0;
        e = ENOTDIR;
    }
    errno = e;
    return PS_EIO;
}

int ps_path_mkdirs(const char *dir, mode_t mode)
{
    char buf[PATH_MAX];
    if (!ps_strlcpy(buf, dir, sizeof buf)) {
        errno = ENAMETOOLONG;
        return PS_EIO;
    }
    if (buf[0] == '\0') {
        errno = ENOENT;
        return PS_EIO;
    }
    /* each prefix that ends before a '/', then the whole path */
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/' || p[-1] == '/')
            continue;
        *p = '\0';
        int rc = mkdir_one(buf, mode);
        *p = '/';
        if (rc != 0)
            return rc;
    }
    return mkdir_one(buf, mode);
}
