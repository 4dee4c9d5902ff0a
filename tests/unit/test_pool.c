/* test_pool.c — psd's helper threads: every iteration of a loop runs once,
 * in parts of at least the grain, however many threads; and the loops over
 * θ give the same θ, bit for bit, on 1, 2 and 5 threads. */
#include <check.h>

#include "check_main.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "pool.h"
#include "store.h"

typedef struct count_job {
    atomic_uint *hits;
    atomic_uint parts;
    size_t grain, n;
    atomic_bool small; /* a part shorter than the grain (when n allows it) */
} count_job;

static void count_part(void *arg, size_t lo, size_t hi)
{
    count_job *j = arg;
    ck_assert_uint_le(lo, hi);
    ck_assert_uint_le(hi, j->n);
    if (hi - lo < j->grain && j->n >= j->grain)
        atomic_store(&j->small, true);
    for (size_t i = lo; i < hi; i++)
        atomic_fetch_add(&j->hits[i], 1);
    atomic_fetch_add(&j->parts, 1);
}

START_TEST(every_iteration_runs_once_in_parts_of_the_grain)
{
    static const unsigned threads[] = {1, 2, 3, 8};
    static const size_t sizes[] = {0, 1, 2, 7, 99, 100, 101, 1000, 4097};
    static const size_t grains[] = {0, 1, 10, 100, 5000};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        ps_error err;
        ps_pool *p = ps_pool_new(threads[t], &err);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(ps_pool_threads(p), threads[t]);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++)
                for (int again = 0; again < 3; again++) { /* the helpers are reused */
                    size_t n = sizes[s];
                    count_job j = {.grain = grains[g], .n = n};
                    j.hits = calloc(n + 1, sizeof *j.hits);
                    ps_pool_run(p, n, grains[g], count_part, &j);
                    for (size_t i = 0; i < n; i++)
                        ck_assert_uint_eq(atomic_load(&j.hits[i]), 1);
                    size_t grain = grains[g] > 0 ? grains[g] : 1;
                    size_t most = n / grain < 4 * threads[t] ? n / grain : 4 * threads[t];
                    ck_assert_uint_le(atomic_load(&j.parts), most > 0 ? most : 1);
                    ck_assert(!atomic_load(&j.small));
                    free(j.hits);
                }
        ps_pool_destroy(&p);
        ck_assert_ptr_null(p);
    }
    /* no pool: the whole loop in the caller */
    count_job j = {.grain = 1, .n = 50};
    j.hits = calloc(50, sizeof *j.hits);
    ps_pool_run(NULL, 50, 1, count_part, &j);
    ck_assert_uint_eq(atomic_load(&j.parts), 1);
    free(j.hits);
    ck_assert_uint_eq(ps_pool_threads(NULL), 1);
    ck_assert_uint_ge(ps_pool_cores(), 1);
}
END_TEST

START_TEST(a_pool_of_no_threads_or_too_many_is_refused)
{
    ps_error err;
    ck_assert_ptr_null(ps_pool_new(0, &err));
    ck_assert_int_eq(err.code, PS_EINVAL);
    ck_assert_ptr_null(ps_pool_new(100000, &err));
    ck_assert_int_eq(err.code, PS_EINVAL);
}
END_TEST

/* A flat θ of n floats (a linear model of n - 1 features). */
static void job_flat(ps_job *job, ps_optim_type type, uint64_t n)
{
    memset(job, 0, sizeof *job);
    strcpy(job->name, "pool-test");
    job->mode = PS_MODE_SYNC;
    job->workers = 2;
    job->nservers = 1;
    strcpy(job->servers[0], "tcp://127.0.0.1:7070");
    job->model.type = PS_MODEL_LINEAR;
    job->model.features = n - 1;
    job->model.init_scheme = PS_INIT_NORMAL;
    job->model.init_seed = 7;
    job->optimizer.type = type;
    job->optimizer.lr = 0.01;
    job->optimizer.momentum = 0.9;
    job->optimizer.beta1 = 0.9;
    job->optimizer.beta2 = 0.999;
    job->optimizer.eps = 1e-8;
    job->optimizer.beta = 1.0;
    job->optimizer.l1 = 0.001;
    job->optimizer.l2 = 0.0001;
    job->optimizer.schedule = PS_SCHEDULE_COSINE;
    job->optimizer.total_steps = 10;
}

START_TEST(loops_over_theta_give_the_same_theta_on_any_number_of_threads)
{
    static const ps_optim_type types[] = {PS_OPTIM_SGD, PS_OPTIM_MOMENTUM, PS_OPTIM_ADAGRAD,
                                          PS_OPTIM_ADAM, PS_OPTIM_FTRL};
    const uint64_t n = (1u << 19) + 12345;  /* two parts and a bit of the grain */
    float *g = malloc((n + 1) * sizeof *g); /* a sum takes g + 1 too */
    ck_assert_ptr_nonnull(g);
    uint64_t x = 1;
    for (uint64_t i = 0; i <= n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        g[i] = (float)((int64_t)(x >> 40) - (1 << 23)) / (float)(1 << 23);
    }
    ps_error err;
    ps_pool *two = ps_pool_new(2, &err), *five = ps_pool_new(5, &err);
    ck_assert_ptr_nonnull(two);
    ck_assert_ptr_nonnull(five);
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        static ps_job job;
        job_flat(&job, types[k], n);
        ps_store *s[3];
        ps_pool *pools[3] = {NULL, two, five};
        for (int i = 0; i < 3; i++) {
            s[i] = ps_store_new(&job, 0, n, true, &err);
            ck_assert_ptr_nonnull(s[i]);
            ps_store_set_pool(s[i], pools[i]);
            for (int round = 0; round < 3; round++) { /* updates and sync sums */
                ck_assert_int_eq(ps_store_apply(s[i], 0, g, n), 0);
                ck_assert_int_eq(ps_store_accumulate(s[i], g, 0.5f), 0);
                ck_assert_int_eq(ps_store_accumulate(s[i], g + 1, 0.25f), 0);
                ck_assert_int_eq(ps_store_apply_accumulated(s[i], 1.0f), 0);
                ck_assert_int_eq(ps_store_apply(s[i], 100, g, n - 200), 0);
            }
        }
        ck_assert_int_eq(memcmp(ps_store_data(s[0]), ps_store_data(s[1]), n * sizeof(float)), 0);
        ck_assert_int_eq(memcmp(ps_store_data(s[0]), ps_store_data(s[2]), n * sizeof(float)), 0);
        for (int i = 0; i < 3; i++)
            ps_store_destroy(&s[i]);
    }
    ps_pool_destroy(&two);
    ps_pool_destroy(&five);
    free(g);
}
END_TEST

static Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, every_iteration_runs_once_in_parts_of_the_grain);
    tcase_add_test(tc, a_pool_of_no_threads_or_too_many_is_refused);
    tcase_add_test(tc, loops_over_theta_give_the_same_theta_on_any_number_of_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(pool_suite());
}
