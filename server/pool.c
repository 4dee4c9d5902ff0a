/* pool.c — psd's helper threads (pool.h). One loop at a time: the caller
 * publishes it under the lock with a new generation number and wakes the
 * helpers; helper i runs part i + 1 when there is one, counts itself done
 * and sleeps again; the caller runs part 0 and waits for the count. The
 * helpers sleep on a condition variable between loops: they cost nothing
 * while psd waits for messages. */
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

typedef struct helper {
    ps_pool *pool;
    unsigned index; /* runs part index + 1 */
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
    unsigned finished; /* helpers done with this generation's part */
};

/* Part k of parts over [0, n): the k-th of parts near-equal ranges. */
static void part_of(size_t n, size_t parts, size_t k, size_t *lo, size_t *hi)
{
    *lo = n / parts * k + (k < n % parts ? k : n % parts);
    *hi = *lo + n / parts + (k < n % parts ? 1 : 0);
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
        size_t k = (size_t)h->index + 1, parts = p->parts;
        if (k < parts) {
            ps_pool_fn fn = p->fn;
            void *arg = p->arg;
            size_t lo, hi;
            part_of(p->n, parts, k, &lo, &hi);
            pthread_mutex_unlock(&p->lock);
            fn(arg, lo, hi);
            pthread_mutex_lock(&p->lock);
            if (++p->finished == parts - 1)
                pthread_cond_signal(&p->done);
        }
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
        p->helpers[i] = (helper){.pool = p, .index = i};
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
    size_t parts = p != NULL ? p->threads : 1;
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
    p->finished = 0;
    p->gen++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    size_t lo, hi;
    part_of(n, parts, 0, &lo, &hi);
    fn(arg, lo, hi);
    pthread_mutex_lock(&p->lock);
    while (p->finished < parts - 1)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}
