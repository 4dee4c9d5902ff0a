/* pool.c — psd's helper threads (pool.h). One loop at a time, cut into up
 * to PARTS_PER_THREAD parts a thread: the caller publishes it under the
 * lock with a new generation number and wakes the helpers, then it and
 * they claim parts one at a time until none is left, and the caller waits
 * for the ones still running. A helper that the system schedules late (the
 * cores busy with workers) finds the parts taken and holds up nothing; one
 * descheduled in a part holds up that part only. The helpers sleep on a
 * condition variable between loops: they cost nothing while psd waits for
 * messages. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define POOL_THREADS_MAX 256
#define PARTS_PER_THREAD 4 /* a loop's parts a thread: a late helper holds up one part */

typedef struct helper {
    ps_pool *pool;
    pthread_t thread;
} helper;

struct ps_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* a new loop, or the end */
    pthread_cond_t done; /* a helper finished its part */
    unsigned threads;    /* the caller and the helpers */
    unsigned started;    /* helpers running */
    helper *helpers;
    /* the loop being run, under lock */
    uint64_t gen;
    bool quit;
    ps_pool_fn fn;
    void *arg;
    size_t n, parts;
    size_t next;     /* the next part to claim */
    size_t finished; /* parts done */
};

/* Part k of parts over [0, n): the k-th of parts near-equal ranges. */
static void part_of(size_t n, size_t parts, size_t k, size_t *lo, size_t *hi)
{
    *lo = n / parts * k + (k < n % parts ? k : n % parts);
    *hi = *lo + n / parts + (k < n % parts ? 1 : 0);
}

/* Claims the next part of generation gen and runs it, under the lock
 * (released while the part runs); false when gen is over or has no part
 * left. The one that finishes the last part wakes the caller. */
static bool part_run(ps_pool *p, uint64_t gen)
{
    if (p->gen != gen || p->next >= p->parts)
        return false;
    size_t k = p->next++, lo, hi;
    ps_pool_fn fn = p->fn;
    void *arg = p->arg;
    part_of(p->n, p->parts, k, &lo, &hi);
    pthread_mutex_unlock(&p->lock);
    fn(arg, lo, hi);
    pthread_mutex_lock(&p->lock);
    if (++p->finished == p->parts)
        pthread_cond_signal(&p->done);
    return true;
}

static void *helper_main(void *a)
{
    helper *h = a;
    ps_pool *p = h->pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->quit && p->gen == seen)
            pthread_cond_wait(&p->wake, &p->lock);
        if (p->quit)
            break;
        seen = p->gen;
        while (part_run(p, seen))
            ;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

ps_pool *ps_pool_new(unsigned threads, ps_error *err)
{
    if (threads == 0 || threads > POOL_THREADS_MAX) {
        ps_error_set(err, PS_EINVAL, "threads: %u is not 1 to %d", threads, POOL_THREADS_MAX);
        return NULL;
    }
    ps_pool *p = calloc(1, sizeof *p);
    if (p == NULL || (p->helpers = calloc(threads, sizeof *p->helpers)) == NULL) {
        free(p);
        ps_error_set(err, PS_ENOMEM, "no memory for %u threads", threads);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = threads;
    for (unsigned i = 0; i + 1 < threads; i++) {
        p->helpers[i] = (helper){.pool = p};
        int rc = pthread_create(&p->helpers[i].thread, NULL, helper_main, &p->helpers[i]);
        if (rc != 0) {
            ps_error_set(err, PS_ENOMEM, "cannot start helper thread %u of %u: %s", i + 1,
                         threads - 1, strerror(rc));
            ps_pool_destroy(&p);
            return NULL;
        }
        p->started++;
    }
    return p;
}

void ps_pool_destroy(ps_pool **pp)
{
    ps_pool *p = *pp;
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->quit = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->started; i++)
        pthread_join(p->helpers[i].thread, NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p->helpers);
    free(p);
    *pp = NULL;
}

unsigned ps_pool_threads(const ps_pool *p)
{
    return p != NULL ? p->threads : 1;
}

unsigned ps_pool_cores(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? (unsigned)n : 1;
}

void ps_pool_run(ps_pool *p, size_t n, size_t grain, ps_pool_fn fn, void *arg)
{
    size_t parts = p != NULL ? (size_t)p->threads * PARTS_PER_THREAD : 1;
    if (grain == 0)
        grain = 1;
    if (n / grain < parts)
        parts = n / grain > 0 ? n / grain : 1;
    if (parts <= 1) {
        fn(arg, 0, n);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->parts = parts;
    p->next = 0;
    p->finished = 0;
    uint64_t gen = ++p->gen;
    pthread_cond_broadcast(&p->wake);
    while (part_run(p, gen)) /* the caller claims parts too: none waits for a late helper */
        ;
    while (p->finished < parts)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}
