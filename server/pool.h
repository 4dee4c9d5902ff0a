/* pool.h — psd's helper threads: a loop over [0, n) cut into contiguous
 * parts that the calling thread and the helpers take at once, the call
 * returning when every part is done. The loop
 * thread keeps the sockets and is the only caller; the helpers only run
 * parts, so a part may read what the loop thread owns as long as the
 * parts of one call write disjoint memory: then the result is the same,
 * bit for bit, whatever the number of threads. */
#ifndef PS_POOL_H
#define PS_POOL_H

#include "error.h"

#include <stddef.h>

typedef struct ps_pool ps_pool;

/* Runs part [lo, hi) of a loop; arg as given to ps_pool_run. */
typedef void (*ps_pool_fn)(void *arg, size_t lo, size_t hi);

/* A pool of threads - 1 helpers (threads >= 1; 1: no helper, every loop
 * runs in the caller). NULL with err set when a thread cannot start. */
ps_pool *ps_pool_new(unsigned threads, ps_error *err);
void ps_pool_destroy(ps_pool **p);

/* The threads a loop may use, the caller's included (1 for NULL). */
unsigned ps_pool_threads(const ps_pool *p);

/* The cores this process may run on (sched_getaffinity), at least 1. */
unsigned ps_pool_cores(void);

/* fn over [0, n) in parts of at least grain iterations (a part must pay
 * for a thread's wake-up), up to 4 a thread, which the caller and the
 * helpers take one at a time; returns when all are done. p NULL runs
 * fn(arg, 0, n) here. */
void ps_pool_run(ps_pool *p, size_t n, size_t grain, ps_pool_fn fn, void *arg);

#endif
