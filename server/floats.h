/* floats.h — the allocator for the shard's big float arrays (θ, the sync
 * accumulator, optimizer state): allocated once, 2 MiB aligned and advised
 * MADV_HUGEPAGE when big, because first-touching 4 KiB pages is the slow
 * part on our machines (LIMITS.md). */
#ifndef PS_FLOATS_H
#define PS_FLOATS_H

#include <stddef.h>

/* An uninitialised array of n floats (n = 0 gives a valid one-float array);
 * *bytes gets its allocated size. Free it with free(). NULL when memory is
 * short or n · sizeof(float) overflows. */
float *ps_floats_alloc(size_t n, size_t *bytes);

#endif
