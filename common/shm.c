/* shm.c — the shared-memory segment of shm.h: a sealed memfd made by psd,
 * opened by the worker through /proc. */
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHM_MAGIC      "psdshm1"
#define SHM_HEAD_BYTES ((size_t)4096)
#define SHM_ALIGN      ((size_t)4096)

struct ps_shm_head {
    char magic[8];
    uint64_t token;
    uint64_t floats;
    _Atomic uint64_t grad_seq;
};
_Static_assert(sizeof(ps_shm_head) <= SHM_HEAD_BYTES, "the header fits its page");

int ps_shm_host_id(char *buf, size_t cap)
{
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f == NULL)
        return PS_EIO;
    bool ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    if (!ok)
        return PS_EIO;
    buf[strcspn(buf, "\n")] = '\0';
    return buf[0] != '\0' ? 0 : PS_EIO;
}

/* Bytes of one region of n floats, whole pages; 0 on overflow. */
static size_t region_bytes(size_t n)
{
    if (n > (SIZE_MAX - SHM_ALIGN) / sizeof(float) / 4)
        return 0;
    return (n * sizeof(float) + SHM_ALIGN - 1) & ~(SHM_ALIGN - 1);
}

size_t ps_shm_bytes(size_t floats)
{
    size_t r = region_bytes(floats);
    return r == 0 ? 0 : SHM_HEAD_BYTES + 2 * r;
}

/* Points the region pointers of a mapped s. */
static void shm_layout(ps_shm *s)
{
    char *base = s->base;
    s->head = s->base;
    s->grad = (float *)(base + SHM_HEAD_BYTES);
    s->theta = (float *)(base + SHM_HEAD_BYTES + region_bytes(s->floats));
}

static void shm_clear(ps_shm *s)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

int ps_shm_create(ps_shm *s, size_t floats, ps_error *err)
{
    shm_clear(s);
    size_t bytes = ps_shm_bytes(floats);
    if (floats == 0 || bytes == 0 || bytes > (size_t)INT64_MAX)
        return ps_error_set(err, PS_EINVAL, "no shared memory for %zu floats", floats);
    int fd = memfd_create("psd-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return ps_error_set(err, errno == ENOSYS ? PS_EUNSUPPORTED : PS_EIO, "memfd_create: %s",
                            strerror(errno));
    /* sealed at its size: a worker cannot shrink it under psd (a read past
     * the end of a shrunk file would be a SIGBUS) */
    if (ftruncate(fd, (off_t)bytes) != 0) {
        int e = errno;
        close(fd);
        return ps_error_set(err, e == ENOSPC ? PS_ENOMEM : PS_EIO,
                            "cannot size shared memory to %zu bytes: %s", bytes, strerror(e));
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        int e = errno;
        close(fd);
        return ps_error_set(err, PS_EUNSUPPORTED, "cannot seal shared memory: %s", strerror(e));
    }
    void *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        int e = errno;
        close(fd);
        return ps_error_set(err, PS_ENOMEM, "cannot map %zu bytes of shared memory: %s", bytes,
                            strerror(e));
    }
    uint64_t token = 0;
    if (getrandom(&token, sizeof token, 0) != (ssize_t)sizeof token || token == 0) {
        munmap(base, bytes);
        close(fd);
        return ps_error_set(err, PS_EIO, "no random token for shared memory");
    }
    (void)madvise(base, bytes, MADV_HUGEPAGE); /* advice only */
    s->fd = fd;
    s->base = base;
    s->bytes = bytes;
    s->floats = floats;
    s->token = token;
    shm_layout(s);
    memcpy(s->head->magic, SHM_MAGIC, sizeof s->head->magic);
    s->head->token = token;
    s->head->floats = floats;
    atomic_init(&s->head->grad_seq, 0);
    return 0;
}

int ps_shm_attach(ps_shm *s, uint32_t pid, uint32_t fd, uint64_t bytes, uint64_t token,
                  size_t floats, ps_error *err)
{
    shm_clear(s);
    char path[64];
    snprintf(path, sizeof path, "/proc/%u/fd/%u", pid, fd);
    int f = open(path, O_RDWR | O_CLOEXEC);
    if (f < 0)
        return ps_error_set(err, PS_EIO, "cannot open %s: %s", path, strerror(errno));
    /* sealed first (then its size cannot change under us): or psd's user
     * could shrink it between the checks and we would fault past its end */
    int rc = 0;
    int seals = fcntl(f, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
        rc = ps_error_set(err, PS_EPROTO, "%s is not sealed against shrinking", path);
        goto close_file;
    }
    struct stat st;
    if (fstat(f, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != bytes ||
        bytes < ps_shm_bytes(floats) || ps_shm_bytes(floats) == 0 || bytes > SIZE_MAX) {
        rc = ps_error_set(err, PS_EPROTO, "%s is not the %llu-byte segment promised", path,
                          (unsigned long long)bytes);
        goto close_file;
    }
    void *base = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
    if (base == MAP_FAILED) {
        rc = ps_error_set(err, PS_ENOMEM, "cannot map %s: %s", path, strerror(errno));
        goto close_file;
    }
    const ps_shm_head *h = base;
    if (memcmp(h->magic, SHM_MAGIC, sizeof h->magic) != 0 || h->token != token ||
        h->floats < floats || ps_shm_bytes(h->floats) != bytes) {
        munmap(base, (size_t)bytes);
        rc = ps_error_set(err, PS_EPROTO, "%s does not hold the segment promised", path);
        goto close_file;
    }
    s->base = base;
    s->bytes = (size_t)bytes;
    s->floats = (size_t)h->floats;
    s->token = token;
    shm_layout(s);
close_file:
    close(f);
    return rc;
}

void ps_shm_detach(ps_shm *s)
{
    if (s->base == NULL)
        return; /* empty, or never made (a zeroed struct's fd is not ours) */
    munmap(s->base, s->bytes);
    if (s->fd >= 0)
        close(s->fd);
    shm_clear(s);
}

void ps_shm_grad_mark(ps_shm *s, uint64_t seq)
{
    atomic_store_explicit(&s->head->grad_seq, seq, memory_order_release);
}

uint64_t ps_shm_grad_seq(const ps_shm *s)
{
    return atomic_load_explicit(&s->head->grad_seq, memory_order_acquire);
}
