/* floats.c — big float arrays, 2 MiB aligned and huge-page advised; small
 * ones come from malloc (ps_floats_alloc) or a page of their own
 * (ps_floats_map). */
#include "floats.h"

#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define HUGE_PAGE_BYTES ((size_t)2 << 20)

float *ps_floats_alloc(size_t n, size_t *bytes)
{
    size_t size;
    if (!ps_mul_ok(n ? n : 1, sizeof(float), &size))
        return NULL;
    void *p = NULL;
    if (size >= HUGE_PAGE_BYTES) {
        if (size > SIZE_MAX - HUGE_PAGE_BYTES)
            return NULL;
        size = (size + HUGE_PAGE_BYTES - 1) & ~(HUGE_PAGE_BYTES - 1);
        if (posix_memalign(&p, HUGE_PAGE_BYTES, size) != 0)
            return NULL;
        (void)madvise(p, size, MADV_HUGEPAGE); /* advice only: fine if refused */
    } else {
        p = malloc(size);
    }
    if (p != NULL && bytes != NULL)
        *bytes = size;
    return p;
}

/* The bytes ps_floats_map maps for n floats: whole huge pages when big,
 * whole pages otherwise. 0 on overflow. */
static size_t map_bytes(size_t n)
{
    size_t size;
    if (!ps_mul_ok(n ? n : 1, sizeof(float), &size) || size > SIZE_MAX - HUGE_PAGE_BYTES)
        return 0;
    size_t unit = size >= HUGE_PAGE_BYTES ? HUGE_PAGE_BYTES : (size_t)sysconf(_SC_PAGESIZE);
    return (size + unit - 1) & ~(unit - 1);
}

float *ps_floats_map(size_t n)
{
    size_t size = map_bytes(n);
    if (size == 0)
        return NULL;
    if (size < HUGE_PAGE_BYTES) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
    }
    /* map a huge page more, then trim to a 2 MiB aligned start */
    size_t span = size + HUGE_PAGE_BYTES;
    char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uintptr_t start = ((uintptr_t)raw + HUGE_PAGE_BYTES - 1) & ~(uintptr_t)(HUGE_PAGE_BYTES - 1);
    char *p = (char *)start;
    size_t head = (size_t)(p - raw), tail = span - head - size;
    if (head > 0)
        munmap(raw, head);
    if (tail > 0)
        munmap(p + size, tail);
    (void)madvise(p, size, MADV_HUGEPAGE); /* advice only: fine if refused */
    return (float *)p;
}

void ps_floats_unmap(float *p, size_t n)
{
    if (p != NULL)
        munmap(p, map_bytes(n));
}
