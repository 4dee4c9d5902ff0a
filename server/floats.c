/* floats.c — big float arrays, 2 MiB aligned and huge-page advised; small
 * ones come from malloc. */
#include "floats.h"

#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

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
