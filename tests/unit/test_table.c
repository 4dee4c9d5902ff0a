/* test_table.c — sparse tables: initial rows are a function of seed, table
 * and key alone; each optimizer against updates computed by hand; lazy L2;
 * a sync round applied once; admission at min_count; idle eviction by
 * budget; the cap with sampled LRU; scans in pages; growth of the rows and
 * the index; the counters; the batched calls against the single ones; the
 * index's growth, its rows moved a few at a time, against lookups, drops,
 * scans and checkpoints meanwhile. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "table.h"
#include "keys.h"
#include "pool.h"
#include "util.h"

#define TOL 1e-6

/* A job whose tables train with type at lr, normal init, seed 7. */
static void job_of(ps_job *job, ps_optim_type type, double lr)
{
    memset(job, 0, sizeof *job);
    ps_strlcpy(job->name, "table-test", sizeof job->name);
    job->mode = PS_MODE_ASYNC;
    job->workers = 1;
    job->nservers = 1;
    job->model.type = PS_MODEL_FM;
    job->model.factors = 3;
    job->model.init_scheme = PS_INIT_NORMAL;
    job->model.init_seed = 7;
    job->optimizer.type = type;
    job->optimizer.lr = lr;
    job->optimizer.eps = 1e-8;
    job->optimizer.beta = 1.0;
    job->optimizer.schedule = PS_SCHEDULE_CONSTANT;
    job->sparse.min_count = 1;
}

static ps_table_spec spec_of(const char *name, uint32_t dim, uint32_t zero_prefix)
{
    ps_table_spec s;
    memset(&s, 0, sizeof s);
    ps_strlcpy(s.name, name, sizeof s.name);
    s.dim = dim;
    s.zero_prefix = zero_prefix;
    return s;
}

static ps_table *table_of(const ps_job *job, const ps_table_spec *spec, uint32_t shard,
                          uint32_t nshards)
{
    ps_error err;
    ps_table *t = ps_table_new(job, 0, spec, shard, nshards, &err);
    ck_assert_msg(t != NULL, "%s", err.msg);
    return t;
}

static ps_table_stats stats_of(const ps_table *t)
{
    ps_table_stats st;
    ps_table_stats_get(t, &st);
    return st;
}

/* ---- initial rows ---- */

START_TEST(unstored_key_reads_its_initial_row_for_any_shard_count_and_table)
{
    ps_job job;
    job_of(&job, PS_OPTIM_SGD, 0.1);
    ps_table_spec spec = spec_of("v", 4, 1);
    const uint64_t keys[] = {0, 1, 0x8000000000000000ull, 0xdeadbeefcafef00dull, UINT64_MAX};
    ps_table *one = table_of(&job, &spec, 0, 1);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        float a[4], b[4], c[4];
        ck_assert_int_eq(ps_table_read(one, keys[i], a), 0);
        ck_assert_float_eq(a[0], 0.0f); /* the zero prefix */
        for (int j = 1; j < 4; j++) {
            ck_assert(a[j] != 0.0f);
            ck_assert(fabsf(a[j]) < 0.1f);
        }
        /* the shard of 5 that owns the key, and a table made again */
        uint32_t s = ps_key_shard(keys[i], 5);
        ps_table *five = table_of(&job, &spec, s, 5);
        ck_assert_int_eq(ps_table_read(five, keys[i], b), 0);
        ps_table *again = table_of(&job, &spec, 0, 1);
        ck_assert_int_eq(ps_table_read(again, keys[i], c), 0);
        ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
        ck_assert_int_eq(memcmp(a, c, sizeof a), 0);
        ps_table_destroy(&five);
        ps_table_destroy(&again);
    }
    ck_assert_uint_eq(ps_table_rows(one), 0); /* reads store nothing */
    ck_assert_uint_eq(stats_of(one).not_admitted, 0);
    ps_table_destroy(&one);
    ck_assert_ptr_null(one);
    ps_table_destroy(&one); /* twice is fine */
}
END_TEST

START_TEST(initial_rows_depend_on_seed_and_table_name_and_follow_the_scheme)
{
    ps_job job;
    job_of(&job, PS_OPTIM_SGD, 0.1);
    ps_table_spec v = spec_of("v", 2, 0), w = spec_of("w", 2, 0);
    ps_table *tv = table_of(&job, &v, 0, 1), *tw = table_of(&job, &w, 0, 1);
    job.model.init_seed = 8;
    ps_table *tv8 = table_of(&job, &v, 0, 1);
    job.model.init_scheme = PS_INIT_XAVIER; /* taken as normal, scale 0.01 */
    job.model.init_seed = 7;
    ps_table *tx = table_of(&job, &v, 0, 1);
    job.model.init_scheme = PS_INIT_ZEROS;
    ps_table *tz = table_of(&job, &v, 0, 1);
    float a[2], b[2], c[2], d[2], z[2];
    ck_assert_int_eq(ps_table_read(tv, 42, a), 0);
    ck_assert_int_eq(ps_table_read(tw, 42, b), 0);
    ck_assert_int_eq(ps_table_read(tv8, 42, c), 0);
    ck_assert_int_eq(ps_table_read(tx, 42, d), 0);
    ck_assert_int_eq(ps_table_read(tz, 42, z), 0);
    ck_assert(a[0] != b[0] && a[1] != b[1]);
    ck_assert(a[0] != c[0] && a[1] != c[1]);
    ck_assert_int_eq(memcmp(a, d, sizeof a), 0);
    ck_assert_float_eq(z[0], 0.0f);
    ck_assert_float_eq(z[1], 0.0f);
    /* N(0, 0.01²): 20000 draws have a mean within 3 standard errors of 0
     * and a standard deviation within 2% of 0.01 */
    double sum = 0, sq = 0;
    for (uint64_t k = 0; k < 10000; k++) {
        ck_assert_int_eq(ps_table_read(tv, k * 0x9E3779B97F4A7C15ull, a), 0);
        sum += a[0] + a[1];
        sq += (double)a[0] * a[0] + (double)a[1] * a[1];
    }
    double mean = sum / 20000, sd = sqrt(sq / 20000 - mean * mean);
    ck_assert(fabs(mean) < 3 * 0.01 / sqrt(20000.0));
    ck_assert(fabs(sd - 0.01) < 0.0002);
    ps_table_destroy(&tv);
    ps_table_destroy(&tw);
    ps_table_destroy(&tv8);
    ps_table_destroy(&tx);
    ps_table_destroy(&tz);
}
END_TEST

START_TEST(shard_ranges_cover_the_key_space_and_keys_outside_are_refused)
{
    uint64_t lo, last;
    ps_key_range(0, 1, &lo, &last);
    ck_assert_uint_eq(lo, 0);
    ck_assert_uint_eq(last, UINT64_MAX);
    /* 3 shards: [0, 2^64/3), [2^64/3, 2·2^64/3), [2·2^64/3, 2^64) */
    uint64_t want_lo[3] = {0, 0x5555555555555556ull, 0xAAAAAAAAAAAAAAABull};
    uint64_t want_last[3] = {0x5555555555555555ull, 0xAAAAAAAAAAAAAAAAull, UINT64_MAX};
    for (uint32_t s = 0; s < 3; s++) {
        ps_key_range(s, 3, &lo, &last);
        ck_assert_uint_eq(lo, want_lo[s]);
        ck_assert_uint_eq(last, want_last[s]);
        ck_assert_uint_eq(ps_key_shard(lo, 3), s);
        ck_assert_uint_eq(ps_key_shard(last, 3), s);
    }
    for (uint32_t n = 1; n <= 64; n++) /* contiguous for every count */
        for (uint32_t s = 0; s + 1 < n; s++) {
            uint64_t lo2, last2;
            ps_key_range(s, n, &lo, &last);
            ps_key_range(s + 1, n, &lo2, &last2);
            ck_assert_uint_eq(last + 1, lo2);
            ck_assert_uint_eq(ps_key_shard(last, n), s);
            ck_assert_uint_eq(ps_key_shard(lo2, n), s + 1);
        }
    ps_job job;
    job_of(&job, PS_OPTIM_SGD, 0.1);
    ps_table_spec spec = spec_of("w", 1, 0);
    ps_table *t = table_of(&job, &spec, 1, 3);
    float row[1], g[1] = {1};
    ck_assert_int_eq(ps_table_read(t, want_lo[1] - 1, row), PS_ERANGE);
    ck_assert_int_eq(ps_table_apply(t, want_lo[2], g, 1.0f, 1), PS_ERANGE);
    ck_assert_int_eq(ps_table_accumulate(t, 0, g, 1.0f), PS_ERANGE);
    ck_assert_int_eq(ps_table_restore_row(t, UINT64_MAX, 1, g), PS_ERANGE);
    ck_assert_int_eq(ps_table_apply(t, want_last[1], g, 1.0f, 1), 0);
    ck_assert_uint_eq(ps_table_rows(t), 1);
    ps_table_keys(t, &lo, &last);
    ck_assert_uint_eq(lo, want_lo[1]);
    ck_assert_uint_eq(last, want_last[1]);
    ps_table_destroy(&t);
}
END_TEST

START_TEST(optimizers_other_than_sgd_adagrad_ftrl_are_refused)
{
    ps_job job;
    job_of(&job, PS_OPTIM_ADAM, 0.1);
    ps_table_spec spec = spec_of("v", 4, 1);
    ps_error err;
    ck_assert_ptr_null(ps_table_new(&job, 0, &spec, 0, 1, &err));
    ck_assert_int_eq(err.code, PS_EUNSUPPORTED);
    ck_assert_str_eq(err.msg, "sparse tables train with sgd, adagrad or ftrl, not adam, whose "
                              "state a table's rows do not keep");
    job.optimizer.type = PS_OPTIM_MOMENTUM;
    ck_assert_ptr_null(ps_table_new(&job, 0, &spec, 0, 1, &err));
    ck_assert_int_eq(err.code, PS_EUNSUPPORTED);
    job.optimizer.type = PS_OPTIM_SGD;
    ck_assert_ptr_null(ps_table_new(&job, 0, &spec, 2, 2, &err));
    ck_assert_int_eq(err.code, PS_EINVAL);
    ck_assert_str_eq(err.msg, "table: shard 2 of 2 does not exist");
    spec.zero_prefix = 5;
    ck_assert_ptr_null(ps_table_new(&job, 0, &spec, 0, 1, &err));
    ck_assert_str_eq(err.msg, "table v: dim 4 must be 1 to 1024 and zero_prefix 5 at most dim");
    spec.zero_prefix = 0;
    job.optimizer.type = PS_OPTIM_ADAGRAD;
    job.optimizer.eps = 0;
    ck_assert_ptr_null(ps_table_new(&job, 0, &spec, 0, 1, &err));
    ck_assert_str_eq(err.msg, "table v: adagrad's eps must be > 0");
}
END_TEST

/* ---- the update rules ---- */

START_TEST(sgd_update_matches_hand_computation_with_unaligned_gradients)
{
    ps_job job;
    job_of(&job, PS_OPTIM_SGD, 0.5);
    job.model.init_scheme = PS_INIT_ZEROS;
    job.optimizer.l2 = 0.1;
    ps_table_spec spec = spec_of("v", 2, 0);
    ps_table *t = table_of(&job, &spec, 0, 1);
    _Alignas(8) unsigned char buf[1 + 2 * sizeof(float)];
    const float g[2] = {1.0f, -2.0f};
    memcpy(buf + 1, g, sizeof g); /* as a frame may hold it: off by one byte */
    ck_assert_int_eq(ps_table_apply(t, 9, buf + 1, 0.5f, 1), 0);
    float w[2];
    ck_assert_int_eq(ps_table_read(t, 9, w), 0);
    /* w -= 0.5 · (0.5·g + 0.1·0) */
    ck_assert_float_eq_tol(w[0], -0.25, TOL);
    ck_assert_float_eq_tol(w[1], 0.5, TOL);
    ck_assert_int_eq(ps_table_apply(t, 9, buf + 1, 1.0f, 2), 0);
    ck_assert_int_eq(ps_table_read(t, 9, w), 0);
    /* -0.25 - 0.5·(1 + 0.1·-0.25) = -0.7375; 0.5 - 0.5·(-2 + 0.1·0.5) = 1.475 */
    ck_assert_float_eq_tol(w[0], -0.7375, TOL);
    ck_assert_float_eq_tol(w[1], 1.475, TOL);
    ps_table_destroy(&t);
}
END_TEST

START_TEST(adagrad_update_matches_hand_computation)
{
    ps_job job;
    job_of(&job, PS_OPTIM_ADAGRAD, 0.1);
    job.model.init_scheme = PS_INIT_ZEROS;
    job.optimizer.eps = 0.1;
    job.optimizer.l2 = 0.5;
    ps_table_spec spec = spec_of("w", 1, 0);
    ps_table *t = table_of(&job, &spec, 0, 1);
    ck_assert_uint_eq(ps_table_row_floats(t), 2);
    float g = 2.0f, w;
    ck_assert_int_eq(ps_table_apply(t, 3, &g, 1.0f, 1), 0);
    /* g' = 2 + 0.5·0 = 2; a = 4; w = -0.1·2/(2 + 0.1) */
    double w1 = -0.1 * 2 / (2 + 0.1);
    ck_assert_int_eq(ps_table_read(t, 3, &w), 0);
    ck_assert_float_eq_tol(w, w1, TOL);
    g = -1.0f;
    ck_assert_int_eq(ps_table_apply(t, 3, &g, 1.0f, 2), 0);
    /* g' = -1 + 0.5·w1; a = 4 + g'²; w = w1 - 0.1·g'/(√a + 0.1) */
    double g2 = -1 + 0.5 * w1, a2 = 4 + g2 * g2;
    ck_assert_int_eq(ps_table_read(t, 3, &w), 0);
    ck_assert_float_eq_tol(w, w1 - 0.1 * g2 / (sqrt(a2) + 0.1), TOL);
    /* the accumulator, as a checkpoint sees it */
    uint64_t key, version, next;
    float state[2];
    ck_assert_uint_eq(ps_table_scan_state(t, 0, 4, &key, &version, state, &next), 1);
    ck_assert_uint_eq(key, 3);
    ck_assert_uint_eq(version, 2);
    ck_assert_uint_eq(next, 0);
    ck_assert_float_eq_tol(state[1], a2, TOL);
    ps_table_destroy(&t);
}
END_TEST

START_TEST(ftrl_weights_after_two_updates_match_hand_computation)
{
    ps_job job;
    job_of(&job, PS_OPTIM_FTRL, 0.5);
    job.model.init_scheme = PS_INIT_ZEROS;
    job.optimizer.l1 = 0.1;
    job.optimizer.l2 = 0.2;
    job.optimizer.beta = 1.0;
    ps_table_spec spec = spec_of("w", 1, 0);
    ps_table *t = table_of(&job, &spec, 0, 1);
    float g = 1.0f, w;
    ck_assert_int_eq(ps_table_apply(t, 5, &g, 1.0f, 1), 0);
    /* σ = (√1 - 0)/0.5 = 2; z = 1 - 2·0 = 1; n = 1;
     * w = -(1 - 0.1)/((1 + 1)/0.5 + 0.2) = -0.9/4.2 */
    double w1 = -0.9 / 4.2;
    ck_assert_int_eq(ps_table_read(t, 5, &w), 0);
    ck_assert_float_eq_tol(w, w1, TOL);
    g = -2.0f;
    ck_assert_int_eq(ps_table_apply(t, 5, &g, 1.0f, 2), 0);
    /* σ = (√5 - 1)/0.5; z = 1 - 2 - σ·w1; n = 5;
     * w = -(z - sign(z)·0.1)/((1 + √5)/0.5 + 0.2) */
    double sigma = (sqrt(5.0) - 1) / 0.5, z = 1 - 2 - sigma * w1;
    double w2 = -(z - copysign(0.1, z)) / ((1 + sqrt(5.0)) / 0.5 + 0.2);
    ck_assert_int_eq(ps_table_read(t, 5, &w), 0);
    ck_assert_float_eq_tol(w, w2, TOL);
    ck_assert_float_eq_tol(w2, 0.0554931, 1e-6); /* the arithmetic, once by hand */
    /* a small gradient leaves |z| <= λ1: the weight is exactly 0 */
    g = 0.05f;
    ck_assert_int_eq(ps_table_apply(t, 6, &g, 1.0f, 3), 0);
    ck_assert_int_eq(ps_table_read(t, 6, &w), 0);
    ck_assert_float_eq(w, 0.0f);
    ps_table_destroy(&t);
}
END_TEST

START_TEST(ftrl_row_starts_from_its_initial_weights)
{
    ps_job job;
    job_of(&job, PS_OPTIM_FTRL, 0.5);
    job.optimizer.l1 = 0.001;
    job.optimizer.l2 = 0.2;
    ps_table_spec spec = spec_of("v", 4, 1);
    ps_table *t = table_of(&job, &spec, 0, 1);
    float before[4], after[4], zero[4] = {0};
    ck_assert_int_eq(ps_table_read(t, 77, before), 0);
    ck_assert_int_eq(ps_table_apply(t, 77, zero, 1.0f, 1), 0); /* σ = 0: z, n unchanged */
    ck_assert_uint_eq(ps_table_rows(t), 1);
    ck_assert_int_eq(ps_table_read(t, 77, after), 0);
    for (int j = 0; j < 4; j++)
        ck_assert_float_eq_tol(after[j], before[j], 1e-7);
    ck_assert(after[1] != 0.0f);
    ps_table_destroy(&t);
}
END_TEST

START_TEST(lazy_l2_touches_only_written_rows)
{
    ps_job job;
    job_of(&job, PS_OPTIM_SGD, 0.5);
    job.optimizer.l2 = 0.1;
    ps_table_spec spec = spec_of("w", 1, 0);
    ps_table *t = table_of(&job, &spec, 0, 1);
    float a0, b0, c0, a, b, c, zero = 0.0f;
    ck_assert_int_eq(ps_table_read(t, 1, &a0), 0);
    ck_assert_int_eq(ps_table_read(t, 2, &b0), 0);
    ck_assert_int_eq(ps_table_read(t, 3, &c0), 0);
    ck_assert_int_eq(ps_table_apply(t, 1, &zero, 1.0f, 1), 0);
    ck_assert_int_eq(ps_table_apply(t, 2, &zero, 1.0f, 1), 0);
    for (uint64_t v = 2; v <= 4; v++)
        ck_assert_int_eq(ps_table_apply(t, 1, &zero, 1.0f, v), 0);
    /* each write decays w by 1 - 0.5·0.1 = 0.95: key 1 four times, key 2
     * once, key 3 (never written) not at all */
    ck_assert_int_eq(ps_table_read(t, 1, &a), 0);
    ck_assert_int_eq(ps_table_read(t, 2, &b), 0);
    ck_assert_int_eq(ps_table_read(t, 3, &c), 0);
    ck_assert_float_eq_tol(a, a0 * 0.95 * 0.95 * 0.95 * 0.95, 1e-9);
    ck_assert_float_eq_tol(b, b0 * 0.95, 1e-9);
    ck_assert_float_eq(c, c0);
    ck_assert_uint_eq(ps_table_rows(t), 2);
    ps_table_destroy(&t);
}
END_TEST

/* ---- sync rounds ---- */

START_TEST(accumulated_round_equals_its_sum_applied_once)
{
    ps_job job;
    job_of(&job, PS_OPTIM_ADAGRAD, 0.1);
    ps_table_spec spec = spec_of("v", 3, 1);
    ps_table *t = table_of(&job, &spec, 0, 1), *u = table_of(&job, &spec, 0, 1);
    const float g1[3] = {1, 2, 3}, g2[3] = {-1, 0.5f, 4}, g3[3] = {0.25f, -2, 1};
    ck_assert_int_eq(ps_table_apply_accumulated(t, 1.0f, 1), 0); /* an empty round */
    ck_assert_int_eq(ps_table_accumulate(t, 10, g1, 0.5f), 0);
    ck_assert_int_eq(ps_table_accumulate(t, 20, g3, 1.0f), 0);
    ck_assert_int_eq(ps_table_accumulate(t, 10, g2, 1.5f), 0);
    ck_assert_uint_eq(ps_table_accumulated(t), 2);
    ck_assert_uint_eq(ps_table_rows(t), 0); /* nothing applied yet */
    ck_assert_int_eq(ps_table_apply_accumulated(t, 0.25f, 1), 0);
    ck_assert_uint_eq(ps_table_accumulated(t), 0);
    float sum[3];
    for (int j = 0; j < 3; j++) {
        sum[j] = 0.5f * g1[j];
        sum[j] += 1.5f * g2[j];
    }
    ck_assert_int_eq(ps_table_apply(u, 10, sum, 0.25f, 1), 0);
    ck_assert_int_eq(ps_table_apply(u, 20, g3, 0.25f, 1), 0);
    float a[3], b[3];
    for (uint64_t k = 10; k <= 20; k += 10) {
        ck_assert_int_eq(ps_table_read(t, k, a), 0);
        ck_assert_int_eq(ps_table_read(u, k, b), 0);
        ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    }
    /* a round of more keys than any before grows the accumulator */
    uint64_t bytes = stats_of(t).bytes;
    for (uint64_t k = 0; k < 1000; k++)
        ck_assert_int_eq(ps_table_accumulate(t, 1000 + k, g1, (float)k), 0);
    for (uint64_t k = 0; k < 1000; k++)
        ck_assert_int_eq(ps_table_accumulate(t, 1000 + k, g2, 1.0f), 0);
    ck_assert_uint_eq(ps_table_accumulated(t), 1000);
    ck_assert_uint_gt(stats_of(t).bytes, bytes);
    ck_assert_int_eq(ps_table_apply_accumulated(t, 1.0f, 2), 0);
    ck_assert_uint_eq(ps_table_rows(t), 1002);
    for (uint64_t k = 0; k < 1000; k += 111) {
        float s[3];
        for (int j = 0; j < 3; j++) {
            s[j] = (float)k * g1[j];
            s[j] += g2[j];
        }
        ck_assert_int_eq(ps_table_apply(u, 1000 + k, s, 1.0f, 2), 0);
        ck_assert_int_eq(ps_table_read(t, 1000 + k, a), 0);
        ck_assert_int_eq(ps_table_read(u, 1000 + k, b), 0);
        ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    }
    ps_table_destroy(&t);
    ps_table_destroy(&u);
}
END_TEST

/* ---- admission ---- */

START_TEST(min_count_3_stores_a_key_at_its_third_write_and_not_before)
{
    ps_job job;
    job_of(&job, PS_OPTIM_SGD, 1.0);
    job.sparse.min_count = 3;
    ps_table_spec spec = spec_of("v", 2, 1);
    ps_table *t = table_of(&job, &spec, 0, 1);
    float init[2], w[2];
    const float g1[2] = {100, 100}, g3[2] = {1, -2};
    ck_assert_int_eq(ps_table_read(t, 55, init), 0);
    for (uint64_t v = 1; v <= 2; v++) {
        ck_assert_int_eq(ps_table_apply(t, 55, g1, 1.0f, v), 0);
        ck_assert_uint_eq(ps_table_rows(t), 0);
        ck_assert_int_eq(ps_table_read(t, 55, w), 0);
        ck_assert_int_eq(memcmp(w, init, sizeof w), 0);
    }
    ps_table_stats st = stats_of(t);
    ck_assert_uint_eq(st.not_admitted, 2);
    ck_assert_uint_eq(st.admitted, 0);
    ck_assert_int_eq(ps_table_apply(t, 55, g3, 1.0f, 3), 0);
    st = stats_of(t);
    ck_assert_uint_eq(st.rows, 1);
    ck_assert_uint_eq(st.admitted, 1);
    ck_assert_uint_eq(st.not_admitted, 2);
    /* only the third write was applied: w = init - 1·g3 */
    ck_assert_int_eq(ps_table_read(t, 55, w), 0);
    ck_assert_float_eq(w[0], -1.0f);
    ck_assert_float_eq_tol(w[1], init[1] + 2.0f, TOL);
    /* a sync round counts a key once */
    ck_assert_int_eq(ps_table_accumulate(t, 66, g3, 1.0f), 0);
    ck_assert_int_eq(ps_table_accumulate(t, 66, g3, 1.0f), 0);
    ck_assert_int_eq(ps_table_accumulate(t, 66, g3, 1.0f), 0);
    ck_assert_int_eq(ps_table_apply_accumulated(t, 1.0f, 4), 0);
    ck_assert_uint_eq(ps_table_rows(t), 1);
    ck_assert_uint_eq(stats_of(t).not_admitted, 3);
    ps_table_destroy(&t);
}
END_TEST

/* ---- eviction ---- */

START_TEST(idle_eviction_drops_exactly_the_idle_rows_within_its_budget)
{
    ps_job job;
    job_of(&job, PS_OPTIM_SGD, 1.0);
    job.model.init_scheme = PS_INIT_ZEROS;
    job.sparse.idle_versions = 10;
    ps_table_spec spec = spec_of("w", 1, 0);
    ps_table *t = table_of(&job, &spec, 0, 1);
    for (uint64_t k = 0; k < 10; k++) {
        float g = -(float)k - 1;
        ck_assert_int_eq(ps_table_apply(t, 100 + k, &g, 1.0f, k), 0);
    }
    /* at version 15, rows updated at 0..4 are 11..15 versions old */
    ck_assert_uint_eq(ps_table_evict_idle(t, 15, 3), 3);
    ck_assert_uint_eq(ps_table_rows(t), 7);
    ck_assert_uint_eq(ps_table_evict_idle(t, 15, 3), 2);
    ck_assert_uint_eq(ps_table_evict_idle(t, 15, 100), 0);
    ck_assert_uint_eq(ps_table_rows(t), 5);
    ck_assert_uint_eq(stats_of(t).evicted_idle, 5);
    for (uint64_t k = 0; k < 10; k++) {
        float w;
        ck_assert_int_eq(ps_table_read(t, 100 + k, &w), 0);
        ck_assert_float_eq(w, k < 5 ? 0.0f : (float)k + 1); /* dropped: the initial row */
    }
    /* a row of version 5 is exactly 10 old at 15: kept; at 16 it goes */
    ck_assert_uint_eq(ps_table_evict_idle(t, 16, 10), 1);
    /* idle_versions 0 never evicts */
    job.sparse.idle_versions = 0;
    ps_table *u = table_of(&job, &spec, 0, 1);
    float g = 1;
    ck_assert_int_eq(ps_table_apply(u, 1, &g, 1.0f, 0), 0);
    ck_assert_uint_eq(ps_table_evict_idle(u, 1000000, 10), 0);
    ck_assert_uint_eq(ps_table_rows(u), 1);
    ps_table_destroy(&t);
    ps_table_destroy(&u);
}
END_TEST

START_TEST(at_max_rows_a_new_key_evicts_an_old_row_and_memory_stays_put)
{
    ps_job job;
    job_of(&job, PS_OPTIM_ADAGRAD, 0.1);
    job.sparse.max_rows = 64;
    ps_table_spec spec = spec_of("v", 4, 1);
    ps_table *t = table_of(&job, &spec, 0, 1);
    const float g[4] = {1, 1, 1, 1};
    for (uint64_t k = 0; k < 64; k++)
        ck_assert_int_eq(ps_table_apply(t, 1000 + k, g, 1.0f, k + 1), 0);
    ps_table_stats full = stats_of(t);
    ck_assert_uint_eq(full.rows, 64);
    ck_assert_uint_eq(full.evicted_cap, 0);
    for (uint64_t k = 64; k < 264; k++) {
        ck_assert_int_eq(ps_table_apply(t, 1000 + k, g, 1.0f, k + 1), 0);
        ps_table_stats st = stats_of(t);
        ck_assert_uint_eq(st.rows, 64);
        ck_assert_uint_eq(st.bytes, full.bytes);
        ck_assert_uint_eq(st.evicted_cap, k - 63);
    }
    ck_assert_uint_eq(stats_of(t).admitted, 264);
    /* the oldest went first: none of the first 64 is left, the newest 16 are */
    uint64_t keys[64], next;
    static float rows[64 * 4];
    ck_assert_uint_eq(ps_table_scan(t, 0, 64, keys, rows, &next), 64);
    ck_assert_uint_eq(next, 0);
    int newest = 0;
    for (int i = 0; i < 64; i++) {
        ck_assert_uint_ge(keys[i], 1064);
        newest += keys[i] >= 1000 + 264 - 16;
    }
    ck_assert_int_eq(newest, 16);
    ps_table_destroy(&t);
}
END_TEST

/* ---- scans, growth ---- */

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

START_TEST(scan_visits_every_live_row_once_across_pages)
{
    ps_job job;
    job_of(&job, PS_OPTIM_FTRL, 0.5);
    job.sparse.idle_versions = 5;
    ps_table_spec spec = spec_of("v", 2, 1);
    ps_table *t = table_of(&job, &spec, 0, 1);
    const float g[2] = {0.5f, -0.5f};
    enum { N = 1000 };
    for (uint64_t k = 0; k < N; k++) /* every third key goes idle below */
        ck_assert_int_eq(ps_table_apply(t, k * 7919, g, 1.0f, k % 3 == 0 ? 0 : 10), 0);
    ck_assert_uint_eq(ps_table_evict_idle(t, 10, N), 334);
    static uint64_t keys[N + 7];
    static float rows[(N + 7) * 2];
    size_t got = 0, pages = 0;
    uint64_t cursor = 0;
    do {
        size_t n = ps_table_scan(t, cursor, 7, keys + got, rows + 2 * got, &cursor);
        ck_assert_uint_le(n, 7);
        got += n;
        pages++;
    } while (cursor != 0);
    ck_assert_uint_eq(got, 666);
    ck_assert_uint_eq(pages, 96); /* 95 full pages and one of 1 */
    for (size_t i = 0; i < got; i++) {
        float w[2];
        ck_assert_int_eq(ps_table_read(t, keys[i], w), 0);
        ck_assert_int_eq(memcmp(w, rows + 2 * i, sizeof w), 0);
    }
    qsort(keys, got, sizeof keys[0], u64_cmp);
    size_t j = 0;
    for (uint64_t k = 0; k < N; k++)
        if (k % 3 != 0)
            ck_assert_uint_eq(keys[j++], k * 7919);
    ps_table_destroy(&t);
}
END_TEST

START_TEST(rows_and_index_grow_across_chunks_without_losing_a_row)
{
    ps_job job;
    job_of(&job, PS_OPTIM_ADAGRAD, 0.1);
    job.model.init_scheme = PS_INIT_ZEROS;
    job.sparse.idle_versions = 1;
    /* 2060-byte records: 8192 rows a chunk, so 20000 rows take three */
    ps_table_spec spec = spec_of("v", 256, 0);
    ps_table *t = table_of(&job, &spec, 0, 1);
    static float g[256], w[256];
    enum { N = 20000 };
    uint64_t bytes0 = stats_of(t).bytes;
    for (uint64_t k = 0; k < N; k++) {
        g[0] = (float)k;
        g[255] = -(float)k;
        ck_assert_int_eq(ps_table_apply(t, k * 0x9E3779B97F4A7C15ull, g, 1.0f, k % 2 ? 1 : 3), 0);
    }
    ck_assert_uint_eq(ps_table_rows(t), N);
    ck_assert_uint_gt(stats_of(t).bytes, bytes0 + (uint64_t)N * 2060);
    /* adagrad's first step moves every coordinate by lr·sign(g) */
    for (uint64_t k = 1; k < N; k += 97) {
        ck_assert_int_eq(ps_table_read(t, k * 0x9E3779B97F4A7C15ull, w), 0);
        ck_assert_float_eq_tol(w[0], -0.1, TOL);
        ck_assert_float_eq_tol(w[255], 0.1, TOL);
        ck_assert_float_eq(w[1], 0.0f);
    }
    /* drop every odd key (version 1 is 2 old at 3), then each lookup must
     * still find the even ones across the shifted index */
    ck_assert_uint_eq(ps_table_evict_idle(t, 3, N), N / 2);
    for (uint64_t k = 0; k < N; k++) {
        ck_assert_int_eq(ps_table_read(t, k * 0x9E3779B97F4A7C15ull, w), 0);
        ck_assert_float_eq_tol(w[0], k % 2 || k == 0 ? 0.0 : -0.1, TOL);
    }
    /* new keys take the dropped rows' places: no more memory for rows */
    uint64_t bytes = stats_of(t).bytes;
    g[0] = 1;
    for (uint64_t k = 0; k < N / 2; k++)
        ck_assert_int_eq(ps_table_apply(t, ~k, g, 1.0f, 4), 0);
    ck_assert_uint_eq(ps_table_rows(t), N);
    ck_assert_uint_eq(stats_of(t).bytes, bytes);
    ps_table_destroy(&t);
}
END_TEST

START_TEST(restore_and_clear_keep_rows_and_versions)
{
    ps_job job;
    job_of(&job, PS_OPTIM_ADAGRAD, 0.1);
    ps_table_spec spec = spec_of("v", 2, 0);
    ps_table *t = table_of(&job, &spec, 0, 1);
    const float state[4] = {1.5f, -2.5f, 4.0f, 9.0f};
    ck_assert_int_eq(ps_table_restore_row(t, 8, 5000000000ull, state), 0);
    float w[2];
    ck_assert_int_eq(ps_table_read(t, 8, w), 0);
    ck_assert_float_eq(w[0], 1.5f);
    ck_assert_float_eq(w[1], -2.5f);
    uint64_t key, version, next;
    float got[4];
    ck_assert_uint_eq(ps_table_scan_state(t, 0, 1, &key, &version, got, &next), 1);
    ck_assert_uint_eq(version, 5000000000ull); /* beyond 32 bits, from the newest seen */
    ck_assert_int_eq(memcmp(got, state, sizeof got), 0);
    ck_assert_uint_eq(stats_of(t).admitted, 0); /* a restore is no admission */
    ps_table_clear(t);
    ck_assert_uint_eq(ps_table_rows(t), 0);
    ck_assert_uint_eq(ps_table_scan_state(t, 0, 1, &key, &version, got, &next), 0);
    ck_assert_uint_eq(next, 0);
    float init[2];
    ck_assert_int_eq(ps_table_read(t, 8, init), 0);
    ck_assert(init[0] != 1.5f);
    ps_table_destroy(&t);
}
END_TEST

/* ---- batches ---- */

/* Two tables fed the same work, one key at a time and in batches, hold the
 * same thing: every live row's key, version and stored floats bit for bit
 * (in storage order, so the same row ids too), and the same counters. */
static void tables_same(const ps_table *a, const ps_table *b)
{
    enum { MAX = 4096 };
    static uint64_t ka[MAX], kb[MAX], va[MAX], vb[MAX];
    static float sa[MAX * 8], sb[MAX * 8];
    uint64_t cursor = 0, next_a, next_b;
    do { /* page by page */
        size_t na = ps_table_scan_state(a, cursor, MAX, ka, va, sa, &next_a);
        size_t nb = ps_table_scan_state(b, cursor, MAX, kb, vb, sb, &next_b);
        ck_assert_uint_eq(na, nb);
        ck_assert_uint_eq(next_a, next_b);
        ck_assert_int_eq(memcmp(ka, kb, na * sizeof ka[0]), 0);
        ck_assert_int_eq(memcmp(va, vb, na * sizeof va[0]), 0);
        ck_assert_int_eq(memcmp(sa, sb, na * ps_table_row_floats(a) * sizeof(float)), 0);
        cursor = next_a;
    } while (cursor != 0);
    ps_table_stats x = stats_of(a), y = stats_of(b);
    ck_assert_uint_eq(x.rows, y.rows);
    ck_assert_uint_eq(x.bytes, y.bytes);
    ck_assert_uint_eq(x.admitted, y.admitted);
    ck_assert_uint_eq(x.not_admitted, y.not_admitted);
    ck_assert_uint_eq(x.evicted_idle, y.evicted_idle);
    ck_assert_uint_eq(x.evicted_cap, y.evicted_cap);
}

static uint64_t next_rand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 11;
}

/* A batch of n keys from a pool of `pool` (keys k·φ, spread over 2^64),
 * sorted, and one in five batches with a repeated key and unsorted, as
 * the batched calls allow; grads at random, some exactly 0. */
static void batch_make(uint64_t *keys, float *g, size_t n, uint32_t dim, uint64_t pool, uint64_t *s)
{
    for (size_t i = 0; i < n; i++)
        keys[i] = (next_rand(s) % pool) * 0x9E3779B97F4A7C15ull;
    if (next_rand(s) % 5 != 0)
        qsort(keys, n, sizeof *keys, u64_cmp);
    else if (n > 3)
        keys[n - 1] = keys[1];
    for (size_t i = 0; i < n * dim; i++)
        g[i] = next_rand(s) % 7 == 0 ? 0.0f : (float)((int)(next_rand(s) % 2001) - 1000) / 997.0f;
}

/* What the batches are tried on: each optimizer, admission at 1 and 3, no
 * cap and a cap of 300 rows (evictions by the hundred), a pool of keys
 * that grows the index during a batch (768 slots at first). */
static void many_case(ps_optim_type type, uint32_t min_count, uint64_t max_rows, uint32_t dim)
{
    ps_job job;
    job_of(&job, type, 0.1);
    job.optimizer.l1 = 0.01;
    job.optimizer.l2 = 0.001;
    job.sparse.min_count = min_count;
    job.sparse.max_rows = max_rows;
    ps_table_spec spec = spec_of("v", dim, 1);
    ps_table *a = table_of(&job, &spec, 0, 1), *b = table_of(&job, &spec, 0, 1);
    enum { N = 700 };
    static uint64_t keys[N];
    static float g[N * 4], ra[N * 4], rb[N * 4];
    static uint32_t ids[N];
    static const size_t sizes[] = {0, 1, 5, 16, 17, 31, 32, 33, 40, 300, N};
    uint64_t s = 42 + type * 7 + min_count + max_rows;
    for (int round = 0; round < 55; round++) {
        size_t n = sizes[round % (sizeof sizes / sizeof sizes[0])];
        uint64_t version = 1 + (uint64_t)round;
        batch_make(keys, g, n, dim, 2000, &s);
        /* reads: stored, new and not admitted keys alike */
        for (size_t i = 0; i < n; i++)
            ck_assert_int_eq(ps_table_read(a, keys[i], ra + i * dim), 0);
        if (round % 2 == 0)
            ck_assert_int_eq(ps_table_read_many(b, keys, n, rb), 0);
        else /* the pull that keeps row hints for its push */
            ck_assert_int_eq(ps_table_read_many_ids(b, keys, n, rb, ids), 0);
        ck_assert_int_eq(memcmp(ra, rb, n * dim * sizeof(float)), 0);
        if (round % 4 == 3) { /* a sync round of three pushes */
            for (int push = 0; push < 3; push++) {
                batch_make(keys, g, n, dim, 2000, &s);
                for (size_t i = 0; i < n; i++)
                    ck_assert_int_eq(ps_table_accumulate(a, keys[i], g + i * dim, 0.5f), 0);
                ck_assert_int_eq(ps_table_accumulate_many(b, keys, n, g, 0.5f), 0);
                ck_assert_uint_eq(ps_table_accumulated(a), ps_table_accumulated(b));
            }
            ck_assert_int_eq(ps_table_apply_accumulated(a, 2.0f, version), 0);
            ck_assert_int_eq(ps_table_apply_accumulated(b, 2.0f, version), 0);
        } else {
            for (size_t i = 0; i < n; i++)
                ck_assert_int_eq(ps_table_apply(a, keys[i], g + i * dim, 1.5f, version), 0);
            if (round % 2 == 0) {
                ck_assert_int_eq(ps_table_apply_many(b, keys, n, g, 1.5f, version), 0);
            } else {
                /* hints right (the pull's, though this very batch may evict
                 * and reuse their rows at the cap), shifted onto other keys'
                 * rows, or any number at all: the results do not change */
                for (size_t i = 0; i < n && round % 5 != 1; i++)
                    ids[i] = round % 5 == 3 ? ids[(i + 1) % n] : (uint32_t)next_rand(&s) % 4096;
                ck_assert_int_eq(
                    ps_table_apply_many_ids(b, keys, ids, n, g, 1.5f, version, NULL, NULL), 0);
            }
        }
        tables_same(a, b);
    }
    ps_table_stats st = stats_of(b);
    ck_assert_uint_gt(st.admitted, 0);
    if (min_count > 1)
        ck_assert_uint_gt(st.not_admitted, 0);
    if (max_rows > 0) {
        ck_assert_uint_eq(st.rows, max_rows);
        ck_assert_uint_gt(st.evicted_cap, 100);
    } else {
        ck_assert_uint_gt(st.rows, 1024); /* the index grew */
    }
    ps_table_destroy(&a);
    ps_table_destroy(&b);
}

START_TEST(batched_calls_give_exactly_the_single_calls_results)
{
    static const ps_optim_type types[] = {PS_OPTIM_SGD, PS_OPTIM_ADAGRAD, PS_OPTIM_FTRL};
    for (size_t k = 0; k < 3; k++) {
        many_case(types[k], 1, 0, 1);
        many_case(types[k], 3, 0, 4);
        many_case(types[k], 3, 300, 1);
        many_case(types[k], 1, 300, 4);
    }
}
END_TEST

static void pool_for(void *ctx, size_t n, size_t grain, void (*fn)(void *arg, size_t lo, size_t hi),
                     void *arg)
{
    ps_pool_run(ctx, n, grain, fn, arg);
}

/* Pushes of a pull's keys with its hints on 3 threads: below the cap the
 * hinted rows are updated on the threads, at the cap all in turn; both
 * give the single calls' results, with one hint in ten wrong, new keys
 * admitted (min_count 2) and rows evicted at the cap. */
static void hinted_threads_case(ps_optim_type type, uint32_t dim, uint64_t max_rows)
{
    ps_job job;
    job_of(&job, type, 0.1);
    job.optimizer.l1 = 0.01;
    job.optimizer.l2 = 0.001;
    job.sparse.min_count = 2;
    job.sparse.max_rows = max_rows;
    ps_table_spec spec = spec_of("v", dim, 1);
    ps_table *a = table_of(&job, &spec, 0, 1), *b = table_of(&job, &spec, 0, 1);
    ps_error err;
    ps_pool *pool = ps_pool_new(3, &err);
    ck_assert_ptr_nonnull(pool);
    enum { N = 9000 };
    static uint64_t keys[N];
    static uint32_t ids[N];
    static float g[N * 3], ra[N * 3], rb[N * 3];
    uint64_t s = 99 + dim + max_rows;
    for (int round = 0; round < 12; round++) {
        size_t n = 0;
        for (uint64_t k = next_rand(&s) % 4; n < N; k += 1 + next_rand(&s) % 3) /* sorted */
            keys[n++] = (k + (uint64_t)round * 2000) * 0x100000001b3ull;
        for (size_t i = 0; i < n * dim; i++)
            g[i] = (float)((int)(next_rand(&s) % 2001) - 1000) / 997.0f;
        for (size_t i = 0; i < n; i++)
            ck_assert_int_eq(ps_table_read(a, keys[i], ra + i * dim), 0);
        ck_assert_int_eq(ps_table_read_many_ids(b, keys, n, rb, ids), 0);
        ck_assert_int_eq(memcmp(ra, rb, n * dim * sizeof(float)), 0);
        for (size_t i = 0; i < n; i += 10)
            ids[i] = (uint32_t)next_rand(&s) % (2 * N);
        for (size_t i = 0; i < n; i++)
            ck_assert_int_eq(ps_table_apply(a, keys[i], g + i * dim, 1.5f, 1 + round), 0);
        ck_assert_int_eq(
            ps_table_apply_many_ids(b, keys, ids, n, g, 1.5f, 1 + round, pool_for, pool), 0);
        tables_same(a, b);
    }
    if (max_rows > 0)
        ck_assert_uint_gt(stats_of(b).evicted_cap, 0);
    ps_pool_destroy(&pool);
    ps_table_destroy(&a);
    ps_table_destroy(&b);
}

START_TEST(hinted_pushes_on_threads_give_the_single_calls_results)
{
    hinted_threads_case(PS_OPTIM_FTRL, 1, 0);
    hinted_threads_case(PS_OPTIM_ADAGRAD, 3, 0);
    hinted_threads_case(PS_OPTIM_SGD, 2, 12000);
}
END_TEST

START_TEST(batched_calls_refuse_a_key_outside_the_shard_and_change_nothing)
{
    ps_job job;
    job_of(&job, PS_OPTIM_ADAGRAD, 0.1);
    ps_table_spec spec = spec_of("v", 2, 0);
    ps_table *t = table_of(&job, &spec, 1, 2), *u = table_of(&job, &spec, 1, 2);
    uint64_t lo, last;
    ps_table_keys(t, &lo, &last);
    const uint64_t in[3] = {lo, lo + 12345, last};
    const float g[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    ck_assert_int_eq(ps_table_apply_many(t, in, 3, g, 1.0f, 1), 0);
    ck_assert_int_eq(ps_table_apply_many(u, in, 3, g, 1.0f, 1), 0);
    const uint64_t out[4] = {lo, lo + 7, lo - 1, last}; /* lo - 1: shard 0's */
    float rows[8] = {9, 9, 9, 9, 9, 9, 9, 9};
    ck_assert_int_eq(ps_table_read_many(t, out, 4, rows), PS_ERANGE);
    for (int j = 0; j < 8; j++)
        ck_assert_float_eq(rows[j], 9.0f); /* nothing read */
    ck_assert_int_eq(ps_table_apply_many(t, out, 4, g, 1.0f, 2), PS_ERANGE);
    ck_assert_int_eq(ps_table_accumulate_many(t, out, 4, g, 1.0f), PS_ERANGE);
    ck_assert_uint_eq(ps_table_accumulated(t), 0);
    tables_same(t, u); /* nothing changed */
    ck_assert_int_eq(ps_table_read_many(t, NULL, 0, NULL), 0);
    ck_assert_int_eq(ps_table_apply_many(t, NULL, 0, NULL, 1.0f, 3), 0);
    ck_assert_int_eq(ps_table_accumulate_many(t, NULL, 0, NULL, 1.0f), 0);
    tables_same(t, u);
    ps_table_destroy(&t);
    ps_table_destroy(&u);
}
END_TEST

START_TEST(stats_name_the_table_and_count_what_it_did)
{
    ps_job job;
    job_of(&job, PS_OPTIM_SGD, 0.1);
    job.sparse.min_count = 2;
    job.sparse.idle_versions = 3;
    ps_table_spec spec = spec_of("emb", 5, 0);
    ps_error err;
    ps_table *t = ps_table_new(&job, 2, &spec, 0, 1, &err);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(ps_table_name(t), "emb");
    ck_assert_uint_eq(ps_table_dim(t), 5);
    ck_assert_uint_eq(ps_table_index(t), 2);
    const float g[5] = {1, 2, 3, 4, 5};
    for (uint64_t k = 0; k < 4; k++) {
        ck_assert_int_eq(ps_table_apply(t, k, g, 1.0f, 1), 0);
        ck_assert_int_eq(ps_table_apply(t, k, g, 1.0f, 1), 0);
    }
    ck_assert_int_eq(ps_table_apply(t, 9, g, 1.0f, 8), 0);
    ck_assert_int_eq(ps_table_apply(t, 9, g, 1.0f, 8), 0);
    ck_assert_uint_eq(ps_table_evict_idle(t, 8, 100), 4);
    ps_table_stats st = stats_of(t);
    ck_assert_str_eq(st.name, "emb");
    ck_assert_uint_eq(st.dim, 5);
    ck_assert_uint_eq(st.rows, 1);
    ck_assert_uint_eq(st.admitted, 5);
    ck_assert_uint_eq(st.not_admitted, 5);
    ck_assert_uint_eq(st.evicted_idle, 4);
    ck_assert_uint_eq(st.evicted_cap, 0);
    /* 5 rows of 12 + 20 bytes; the bitmap of a chunk of 2^19 rows (16 MiB
     * of records); the chunk table for 2^32 rows; the index of 768 slots
     * (a page of buckets); the sketch; the accumulator of 64 keys */
    uint64_t want =
        5 * 32 + (1u << 19) / 8 + 8192 * 8 + 4096 + 4 * (1u << 20) * 4 + 64 * (8 + 4 + 20 + 8);
    ck_assert_uint_eq(st.bytes, want);
    ps_table_destroy(&t);
}
END_TEST

/* ---- the index's growth ---- */

/* The i-th key of a growth test: keys spread over 2^64 (splitmix64 is a
 * bijection), so their homes cover the index, its last slot included. */
static uint64_t grow_key(uint64_t i, uint64_t salt)
{
    uint64_t x = i + salt * 0x632BE59BD9B4E019ull + 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* What key i weighs after cnt writes of its gradient 1 + i % 7 (sgd, lr 1,
 * zeros at first): exact in floats. */
static float grow_weight(uint64_t i, uint8_t cnt)
{
    return -(float)cnt * (float)(1 + i % 7);
}

/* A growth test's table and what it should hold: key i written cnt[i]
 * times since its row was made (0: no row); a row may go without a trace
 * when maybe[i] (an idle row) or at a cap. */
typedef struct grow_case {
    ps_table *t;
    uint8_t *cnt;
    bool *maybe;
    uint64_t n; /* keys 0..n-1 used so far */
    uint64_t salt;
    bool capped; /* any row may be evicted */
} grow_case;

enum { GROW_BIG = 1000000 }; /* a keeper's version; idle ones are written at 0 */

/* Writes key i once: a keeper (the newest version) or an idle row. */
static void grow_write(grow_case *c, uint64_t i, bool idle)
{
    float g = (float)(1 + i % 7);
    if (ps_table_apply(c->t, grow_key(i, c->salt), &g, 1.0f, idle ? 0 : GROW_BIG) != 0)
        ck_abort_msg("key %llu not written", (unsigned long long)i);
    c->cnt[i]++; /* the callers keep it below 200 */
    c->maybe[i] = idle;
}

/* Key i reads what it should: its row's weight, or 0 when it has none (an
 * evicted row, when it may be evicted, is learnt here: its count is 0
 * from now on). Returns whether it has a row. (Millions of checks: check's
 * assertions, a message each, only on failure.) */
static bool grow_check(grow_case *c, uint64_t i)
{
    float w = 1.0f;
    int rc = ps_table_read(c->t, grow_key(i, c->salt), &w);
    if ((c->maybe[i] || c->capped) && c->cnt[i] > 0 && w == 0.0f)
        c->cnt[i] = 0;
    if (rc != 0 || w != grow_weight(i, c->cnt[i]))
        ck_abort_msg("key %llu reads %g, not %g (%u writes)", (unsigned long long)i, (double)w,
                     (double)grow_weight(i, c->cnt[i]), (unsigned)c->cnt[i]);
    return c->cnt[i] > 0;
}

/* Every key used reads right, the live ones are as many as the table's
 * rows, and a scan in pages gives each of them once. */
static void grow_check_all(grow_case *c)
{
    uint64_t live = 0;
    for (uint64_t i = 0; i < c->n; i++)
        live += grow_check(c, i);
    ck_assert_uint_eq(ps_table_rows(c->t), live);
    enum { PAGE = 4096 };
    static uint64_t keys[PAGE];
    static float rows[PAGE];
    uint64_t cursor = 0, seen = 0;
    do {
        size_t n = ps_table_scan(c->t, cursor, PAGE, keys, rows, &cursor);
        for (size_t k = 0; k < n; k++) {
            float w = 0.0f;
            if (ps_table_read(c->t, keys[k], &w) != 0 || w != rows[k] || w == 0.0f)
                ck_abort_msg("scanned key %llx reads %g, scanned %g", (unsigned long long)keys[k],
                             (double)w, (double)rows[k]);
        }
        seen += n;
    } while (cursor != 0);
    ck_assert_uint_eq(seen, live); /* with every key read right: each once */
}

/* Grows c's table to n_max keys in rounds of new keys (one in five idle),
 * rewritten and reinserted old ones (some idle rows of before, evicted or
 * not) and idle eviction in small budgets, which moves the growing index
 * on a little; a sample of keys checked each round, all of them whenever
 * the index starts or ends a growth. Returns the growths seen. */
static int grow_run(grow_case *c, uint64_t n_max, uint64_t *s, int *drops_growing)
{
    int growths = 0;
    bool was = ps_table_growing(c->t);
    while (c->n < n_max) {
        for (int k = 0; k < 400 && c->n < n_max; k++, c->n++)
            grow_write(c, c->n, next_rand(s) % 5 == 0);
        for (int k = 0; k < 100; k++) {
            uint64_t i = next_rand(s) % c->n;
            grow_check(c, i); /* learns whether an idle row went */
            if (c->cnt[i] < 100)
                grow_write(c, i, next_rand(s) % 3 == 0);
        }
        bool growing = ps_table_growing(c->t);
        uint64_t dropped = ps_table_evict_idle(c->t, GROW_BIG, 200);
        *drops_growing += growing && dropped > 0;
        for (int k = 0; k < 200; k++)
            grow_check(c, next_rand(s) % c->n);
        growing = ps_table_growing(c->t);
        if (growing != was) {
            growths += growing;
            grow_check_all(c);
        }
        was = growing;
    }
    return growths;
}

static grow_case grow_case_of(const ps_job *job, uint64_t n_max, uint64_t salt)
{
    ps_table_spec spec = spec_of("g", 1, 0);
    grow_case c = {
        table_of(job, &spec, 0, 1), calloc(n_max, 1), calloc(n_max, sizeof(bool)), 0, salt,
        job->sparse.max_rows > 0};
    ck_assert_ptr_nonnull(c.cnt);
    ck_assert_ptr_nonnull(c.maybe);
    return c;
}

static void grow_case_free(grow_case *c)
{
    ps_table_destroy(&c->t);
    free(c->cnt);
    free(c->maybe);
}

static void grow_job(ps_job *job, uint64_t max_rows)
{
    job_of(job, PS_OPTIM_SGD, 1.0);
    job->model.init_scheme = PS_INIT_ZEROS;
    job->sparse.idle_versions = 5;
    job->sparse.max_rows = max_rows;
}

START_TEST(index_grows_by_moves_and_every_key_is_found_throughout)
{
    /* 768 slots at first, 1.4 times more at each growth: 600 k keys take
     * about 20 growths, each moving rows a few at a time while keys are
     * added, rewritten, evicted idle and reinserted */
    ps_job job;
    grow_job(&job, 0);
    grow_case c = grow_case_of(&job, 600000, 1);
    uint64_t s = 3;
    int drops_growing = 0;
    int growths = grow_run(&c, 600000, &s, &drops_growing);
    ck_assert_int_ge(growths, 10); /* those that outlast a round */
    ck_assert_int_gt(drops_growing, 10);
    ck_assert_uint_gt(stats_of(c.t).evicted_idle, 20000);
    /* a growing index moves on with idle eviction's budget, no new rows */
    while (ps_table_growing(c.t))
        ps_table_evict_idle(c.t, GROW_BIG, 1000);
    grow_check_all(&c);
    grow_case_free(&c);

    /* at a cap of 150 k rows: sampled LRU evicts keepers too, during
     * growths and after, and the growths stop below it */
    grow_job(&job, 150000);
    c = grow_case_of(&job, 300000, 2);
    drops_growing = 0;
    growths = grow_run(&c, 300000, &s, &drops_growing);
    ck_assert_int_ge(growths, 8);
    ck_assert_uint_le(ps_table_rows(c.t), 150000);
    ck_assert_uint_gt(ps_table_rows(c.t), 145000); /* less the idle rows last evicted */
    ck_assert_uint_gt(stats_of(c.t).evicted_cap, 100000);
    grow_case_free(&c);
}
END_TEST

/* A move interrupted: scans, a checkpoint written and loaded, more rows,
 * eviction and a clear while the index grows. */
START_TEST(a_growing_index_scans_and_checkpoints_every_row_once)
{
    ps_job job;
    grow_job(&job, 0);
    grow_case c = grow_case_of(&job, 200000, 3);
    /* to the start of the first growth past 100 k rows, one in four idle,
     * then 5000 rows into it (its move takes an eighth of the old index's
     * slots, over 15 k rows) */
    for (; c.n < 100000 || ps_table_growing(c.t); c.n++)
        grow_write(&c, c.n, c.n % 4 == 0);
    for (; !ps_table_growing(c.t); c.n++)
        grow_write(&c, c.n, c.n % 4 == 0);
    for (int k = 0; k < 5000; k++, c.n++)
        grow_write(&c, c.n, c.n % 4 == 0);
    ck_assert(ps_table_growing(c.t));
    grow_check_all(&c); /* scans in pages, every row once */

    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/ps-table-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ps_ckpt_folder f;
    ps_error err;
    ck_assert_int_eq(ps_ckpt_folder_init(&f, dir, 1, true, &err), 0);
    ps_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    ps_strlcpy(meta.job, "table-test", sizeof meta.job);
    meta.version = 9;
    char path[PS_PATH_MAX];
    uint64_t bytes = 0;
    ck_assert_int_eq(
        ps_table_checkpoint_write(&f, &meta, NULL, 0, &c.t, 1, path, sizeof path, &bytes, &err), 0);
    ck_assert(ps_table_growing(c.t)); /* a checkpoint moves nothing */
    uint64_t rows = ps_table_rows(c.t);

    /* loaded into a table of its own (which grows as it loads): the same rows */
    grow_case d = grow_case_of(&job, 200000, 3);
    ck_assert_int_eq(ps_table_checkpoint_load(&f, "table-test", 0, 0, 0, NULL, 0, &d.t, 1, &meta,
                                              NULL, 0, NULL, &err),
                     0);
    ck_assert_uint_eq(ps_table_rows(d.t), rows);
    memcpy(d.cnt, c.cnt, c.n);
    memcpy(d.maybe, c.maybe, c.n * sizeof(bool));
    d.n = c.n;
    grow_check_all(&d);

    /* the original goes on: evictions drop idle rows in the middle of the
     * move, new rows, then a clear and rows again */
    ck_assert_uint_gt(ps_table_evict_idle(c.t, GROW_BIG, 20000), 4000);
    ck_assert(ps_table_growing(c.t));
    grow_check_all(&c);
    for (int k = 0; k < 2000; k++, c.n++)
        grow_write(&c, c.n, false);
    grow_check_all(&c);
    ps_table_clear(c.t);
    ck_assert(!ps_table_growing(c.t));
    memset(c.cnt, 0, c.n);
    for (uint64_t i = 0; i < 5000; i++)
        grow_write(&c, i, false);
    grow_check_all(&c);

    ps_ckpt_folder_fini(&f);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    grow_case_free(&c);
    grow_case_free(&d);
}
END_TEST

/* Removal at the slot counts the index takes up to 15 k slots (none a
 * power of two), near their loads of 0.57 to 0.8, where clusters
 * across the index's end, from its last slot to its first, are the rule:
 * the tables lose half their rows, then the rest, by idle eviction in
 * small budgets, and every key is found after each. A distance between
 * slots taken modulo a power of two (cap - 1 as a mask) loses rows here. */
START_TEST(removal_shifts_back_across_the_end_of_an_index_of_any_size)
{
    ps_job job;
    grow_job(&job, 0);
    uint64_t s = 11;
    for (uint64_t salt = 0; salt < 40; salt++) {
        grow_case c = grow_case_of(&job, 12000, 100 + salt);
        for (; c.n < 1500 + salt * 250; c.n++)
            grow_write(&c, c.n, next_rand(&s) % 2 == 0);
        for (int pass = 0; pass < 2; pass++) {
            uint64_t dropped;
            do {
                dropped = ps_table_evict_idle(c.t, GROW_BIG, 700);
                grow_check_all(&c);
            } while (dropped > 0 || ps_table_growing(c.t));
            for (uint64_t i = 0; i < c.n; i++) /* the keepers go idle */
                if (c.cnt[i] > 0)
                    grow_write(&c, i, true);
        }
        ck_assert_uint_eq(ps_table_rows(c.t), 0);
        grow_case_free(&c);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("table");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, unstored_key_reads_its_initial_row_for_any_shard_count_and_table);
    tcase_add_test(tc, initial_rows_depend_on_seed_and_table_name_and_follow_the_scheme);
    tcase_add_test(tc, shard_ranges_cover_the_key_space_and_keys_outside_are_refused);
    tcase_add_test(tc, optimizers_other_than_sgd_adagrad_ftrl_are_refused);
    tcase_add_test(tc, sgd_update_matches_hand_computation_with_unaligned_gradients);
    tcase_add_test(tc, adagrad_update_matches_hand_computation);
    tcase_add_test(tc, ftrl_weights_after_two_updates_match_hand_computation);
    tcase_add_test(tc, ftrl_row_starts_from_its_initial_weights);
    tcase_add_test(tc, lazy_l2_touches_only_written_rows);
    tcase_add_test(tc, accumulated_round_equals_its_sum_applied_once);
    tcase_add_test(tc, min_count_3_stores_a_key_at_its_third_write_and_not_before);
    tcase_add_test(tc, idle_eviction_drops_exactly_the_idle_rows_within_its_budget);
    tcase_add_test(tc, at_max_rows_a_new_key_evicts_an_old_row_and_memory_stays_put);
    tcase_add_test(tc, scan_visits_every_live_row_once_across_pages);
    tcase_add_test(tc, rows_and_index_grow_across_chunks_without_losing_a_row);
    tcase_add_test(tc, restore_and_clear_keep_rows_and_versions);
    tcase_add_test(tc, stats_name_the_table_and_count_what_it_did);
    tcase_add_test(tc, batched_calls_give_exactly_the_single_calls_results);
    tcase_add_test(tc, batched_calls_refuse_a_key_outside_the_shard_and_change_nothing);
    tcase_add_test(tc, hinted_pushes_on_threads_give_the_single_calls_results);
    tcase_add_test(tc, index_grows_by_moves_and_every_key_is_found_throughout);
    tcase_add_test(tc, a_growing_index_scans_and_checkpoints_every_row_once);
    tcase_add_test(tc, removal_shifts_back_across_the_end_of_an_index_of_any_size);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
