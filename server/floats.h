/* floats.h — the allocators for the shard's big float arrays (θ, the sync
 * accumulator, optimizer state): allocated once, 2 MiB aligned and advised
 * MADV_HUGEPAGE when big, because first-touching 4 KiB pages is the slow
 * part on our machines (about 10 µs a page on a 2-vCPU cloud VM: 40 MB of
 * fresh pages cost ~100 ms, ~7.5 ms as huge pages). */
#ifndef PS_FLOATS_H
#define PS_FLOATS_H

#include <stddef.h>

/* An uninitialised array of n floats (n = 0 gives a valid one-float array);
 * *bytes gets its allocated size. Free it with free(). NULL when memory is
 * short or n · sizeof(float) overflows. */
float *ps_floats_alloc(size_t n, size_t *bytes);

/* An uninitialised array of n floats (n = 0 as above) in pages of its own
 * (mmap), 2 MiB aligned and advised MADV_HUGEPAGE when big. Unlike
 * ps_floats_alloc's, whose memory may be heap that is resident already
 * (ps_malloc_tune keeps freed memory), its memory is fresh: it costs
 * nothing until written, for buffers that may never be. Free it with
 * ps_floats_unmap(p, n). NULL when memory is short or the size overflows. */
float *ps_floats_map(size_t n);

/* Unmaps an array from ps_floats_map(n); NULL is fine. */
void ps_floats_unmap(float *p, size_t n);

#endif
