/* test_store.c — one shard of θ: deterministic initialisation that does not
 * depend on the sharding, the init schemes, the exact SGD update (the other
 * optimizers: test_optim.c), and copy-on-write of θ under held replies. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <string.h>

#include "job.h"
#include "store.h"

/* A softmax job: W [4, 3] (keys 0..11) and b [3] (keys 12..14), P = 15. */
static void job_softmax(ps_job *job, ps_init_scheme scheme)
{
    memset(job, 0, sizeof *job);
    strcpy(job->name, "store-test");
    job->mode = PS_MODE_SYNC;
    job->workers = 1;
    job->nservers = 1;
    strcpy(job->servers[0], "tcp://127.0.0.1:7070");
    job->model.type = PS_MODEL_SOFTMAX;
    job->model.features = 4;
    job->model.classes = 3;
    job->model.init_scheme = scheme;
    job->model.init_seed = 42;
    job->optimizer.type = PS_OPTIM_SGD;
    job->optimizer.lr = 0.5;
    job->optimizer.schedule = PS_SCHEDULE_CONSTANT;
}

START_TEST(init_is_deterministic_and_independent_of_shard_count)
{
    static ps_job job;
    ps_init_scheme schemes[] = {PS_INIT_XAVIER, PS_INIT_NORMAL};
    for (size_t s = 0; s < 2; s++) {
        job_softmax(&job, schemes[s]);
        ps_store *whole = ps_store_new(&job, 0, 15, false, NULL);
        ps_store *again = ps_store_new(&job, 0, 15, false, NULL);
        ps_store *tail = ps_store_new(&job, 5, 15, false, NULL);
        ck_assert_ptr_nonnull(whole);
        ck_assert_ptr_nonnull(again);
        ck_assert_ptr_nonnull(tail);
        ck_assert_uint_eq(ps_store_size(tail), 10);
        ck_assert_uint_eq(ps_store_lo(tail), 5);
        ck_assert_uint_eq(ps_store_hi(tail), 15);
        const float *a = ps_store_data(whole), *b = ps_store_data(again);
        const float *t = ps_store_data(tail);
        for (size_t k = 0; k < 15; k++)
            ck_assert_float_eq(a[k], b[k]);
        for (size_t k = 5; k < 15; k++)
            ck_assert_float_eq(t[k - 5], a[k]);
        ps_store_destroy(&whole);
        ps_store_destroy(&again);
        ps_store_destroy(&tail);
        ck_assert_ptr_null(tail);
    }
}
END_TEST

START_TEST(xavier_is_bounded_and_biases_start_at_zero)
{
    static ps_job job;
    job_softmax(&job, PS_INIT_XAVIER);
    ps_store *s = ps_store_new(&job, 0, 15, false, NULL);
    ck_assert_ptr_nonnull(s);
    const float *t = ps_store_data(s);
    float bound = (float)sqrt(6.0 / (4 + 3)); /* W is [4, 3] */
    int distinct = 0;
    for (size_t k = 0; k < 12; k++) {
        ck_assert(fabsf(t[k]) <= bound);
        distinct += k > 0 && t[k] != t[k - 1];
    }
    ck_assert_int_ge(distinct, 10);
    for (size_t k = 12; k < 15; k++)
        ck_assert_float_eq(t[k], 0.0f);
    ps_store_destroy(&s);
}
END_TEST

/* a custom model named as PyTorch names its parameters: fc.weight [2, 3]
 * from xavier, fc.bias [2] at 0 like b */
START_TEST(custom_tensors_ending_in_bias_start_at_zero)
{
    static ps_job job;
    job_softmax(&job, PS_INIT_XAVIER);
    job.model.type = PS_MODEL_CUSTOM;
    job.model.ntensors = 2;
    strcpy(job.model.tensors[0].name, "fc.weight");
    job.model.tensors[0].ndims = 2;
    job.model.tensors[0].shape[0] = 2;
    job.model.tensors[0].shape[1] = 3;
    strcpy(job.model.tensors[1].name, "fc.bias");
    job.model.tensors[1].ndims = 1;
    job.model.tensors[1].shape[0] = 2;
    ps_store *s = ps_store_new(&job, 0, 8, false, NULL);
    ck_assert_ptr_nonnull(s);
    const float *t = ps_store_data(s);
    int nonzero = 0;
    for (size_t k = 0; k < 6; k++)
        nonzero += t[k] != 0.0f;
    ck_assert_int_ge(nonzero, 5);
    ck_assert_float_eq(t[6], 0.0f);
    ck_assert_float_eq(t[7], 0.0f);
    ps_store_destroy(&s);
}
END_TEST

START_TEST(seed_changes_the_initial_values)
{
    static ps_job job;
    job_softmax(&job, PS_INIT_NORMAL);
    ps_store *a = ps_store_new(&job, 0, 15, false, NULL);
    job.model.init_seed = 43;
    ps_store *b = ps_store_new(&job, 0, 15, false, NULL);
    int same = 0;
    for (size_t k = 0; k < 12; k++) {
        same += ps_store_data(a)[k] == ps_store_data(b)[k];
        ck_assert(fabsf(ps_store_data(a)[k]) < 0.1f); /* N(0, 0.01²): 10 sigma */
    }
    ck_assert_int_eq(same, 0);
    ps_store_destroy(&a);
    ps_store_destroy(&b);
}
END_TEST

START_TEST(init_value_matches_the_store)
{
    static ps_job job;
    job_softmax(&job, PS_INIT_XAVIER);
    ps_tensor_info t[PS_MAX_TENSORS];
    size_t n = 0;
    uint64_t p = 0;
    ck_assert_int_eq(ps_job_layout(&job, t, PS_MAX_TENSORS, &n, &p), 0);
    ps_store *s = ps_store_new(&job, 3, 9, false, NULL);
    for (uint64_t k = 3; k < 9; k++)
        ck_assert_float_eq(ps_store_data(s)[k - 3], ps_store_init_value(&job, t, n, k));
    ps_store_destroy(&s);
}
END_TEST

START_TEST(zeros_scheme_gives_all_zeros)
{
    static ps_job job;
    job_softmax(&job, PS_INIT_ZEROS);
    ps_store *s = ps_store_new(&job, 2, 15, false, NULL);
    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < 13; i++)
        ck_assert_float_eq(ps_store_data(s)[i], 0.0f);
    ps_store_destroy(&s);
}
END_TEST

START_TEST(sgd_apply_gives_exact_values_with_l2)
{
    static ps_job job;
    job_softmax(&job, PS_INIT_ZEROS);
    job.optimizer.lr = 0.5;
    job.optimizer.l2 = 0.5;
    ps_store *s = ps_store_new(&job, 10, 15, true, NULL);
    ck_assert_ptr_nonnull(s);
    /* from 0: θ = -0.5 · g */
    float g1[3] = {2.0f, -4.0f, 1.0f};
    ck_assert_int_eq(ps_store_apply(s, 11, g1, 3), 0);
    const float *t = ps_store_data(s);
    ck_assert_float_eq(t[0], 0.0f);
    ck_assert_float_eq(t[1], -1.0f);
    ck_assert_float_eq(t[2], 2.0f);
    ck_assert_float_eq(t[3], -0.5f);
    ck_assert_float_eq(t[4], 0.0f);
    /* with l2: θ -= 0.5 · (g + 0.5 · θ) */
    float g2[2] = {1.0f, 0.0f};
    ck_assert_int_eq(ps_store_apply(s, 12, g2, 2), 0);
    ck_assert_float_eq(t[2], 2.0f - 0.5f * (1.0f + 1.0f));   /* 1.0 */
    ck_assert_float_eq(t[3], -0.5f - 0.5f * (0.0f - 0.25f)); /* -0.375 */
    ck_assert_float_eq(t[2], 1.0f);
    ck_assert_float_eq(t[3], -0.375f);
    ps_store_destroy(&s);
}
END_TEST

START_TEST(gradient_at_an_odd_address_is_applied)
{
    /* payloads come straight from ZeroMQ frames, which need not be aligned */
    static ps_job job;
    job_softmax(&job, PS_INIT_ZEROS);
    ps_store *s = ps_store_new(&job, 0, 15, true, NULL);
    unsigned char buf[1 + 15 * sizeof(float)];
    for (size_t i = 0; i < 15; i++) {
        float v = (float)i;
        memcpy(buf + 1 + i * sizeof v, &v, sizeof v);
    }
    ck_assert_int_eq(ps_store_apply(s, 0, buf + 1, 15), 0);
    ck_assert_int_eq(ps_store_accumulate(s, buf + 1, 2.0f), 0);
    ck_assert_int_eq(ps_store_apply_accumulated(s, 0.5f), 0);
    for (size_t i = 0; i < 15; i++)
        ck_assert_float_eq(ps_store_data(s)[i], -(float)i); /* two steps of -0.5 · i */
    ps_store_destroy(&s);
}
END_TEST

START_TEST(apply_outside_the_shard_is_refused_and_changes_nothing)
{
    static ps_job job;
    job_softmax(&job, PS_INIT_ZEROS);
    ps_store *s = ps_store_new(&job, 5, 10, false, NULL);
    float g[6] = {1, 1, 1, 1, 1, 1};
    ck_assert_int_eq(ps_store_apply(s, 4, g, 2), PS_ERANGE);
    ck_assert_int_eq(ps_store_apply(s, 9, g, 2), PS_ERANGE);
    ck_assert_int_eq(ps_store_apply(s, 5, g, 6), PS_ERANGE);
    ck_assert_int_eq(ps_store_apply(s, 11, g, 0), PS_ERANGE);
    for (size_t i = 0; i < 5; i++)
        ck_assert_float_eq(ps_store_data(s)[i], 0.0f);
    ck_assert_int_eq(ps_store_accumulate(s, g, 1.0f), PS_ESTATE); /* no accumulator */
    ps_store_destroy(&s);
}
END_TEST

START_TEST(accumulated_mean_is_applied_once)
{
    static ps_job job;
    job_softmax(&job, PS_INIT_ZEROS);
    job.optimizer.lr = 0.5;
    ps_store *s = ps_store_new(&job, 0, 2, true, NULL);
    float a[2] = {1.0f, 2.0f}, b[2] = {3.0f, -2.0f};
    ck_assert_int_eq(ps_store_apply_accumulated(s, 1.0f), PS_ESTATE); /* empty */
    ck_assert_int_eq(ps_store_accumulate(s, a, 1.0f), 0);
    ck_assert_int_eq(ps_store_accumulate(s, b, 3.0f), 0);
    ck_assert_int_eq(ps_store_apply_accumulated(s, 0.25f), 0);
    /* mean = (1·a + 3·b) / 4 = {2.5, -1}; θ = -0.5 · mean */
    ck_assert_float_eq(ps_store_data(s)[0], -1.25f);
    ck_assert_float_eq(ps_store_data(s)[1], 0.5f);
    ck_assert_int_eq(ps_store_apply_accumulated(s, 0.25f), PS_ESTATE);
    /* the next round starts from an empty accumulator */
    ck_assert_int_eq(ps_store_accumulate(s, a, 1.0f), 0);
    ck_assert_int_eq(ps_store_apply_accumulated(s, 1.0f), 0);
    ck_assert_float_eq(ps_store_data(s)[0], -1.75f);
    ck_assert_float_eq(ps_store_data(s)[1], -0.5f);
    ps_store_destroy(&s);
}
END_TEST

START_TEST(bad_optimizer_and_bad_range_are_refused)
{
    static ps_job job;
    ps_error err;
    job_softmax(&job, PS_INIT_ZEROS);
    ck_assert_ptr_null(ps_store_new(&job, 0, 16, false, &err));
    ck_assert_int_eq(err.code, PS_EINVAL);
    ck_assert_str_eq(err.msg, "shard [0, 16) does not fit θ of 15 params");
    job.optimizer.schedule = PS_SCHEDULE_COSINE; /* without total_steps */
    ck_assert_ptr_null(ps_store_new(&job, 0, 15, true, &err));
    ck_assert_int_eq(err.code, PS_EINVAL);
    ck_assert_str_eq(err.msg, "schedule cosine needs optimizer.schedule.total_steps");
    ps_store *s = NULL;
    ps_store_destroy(&s); /* NULL is fine */
}
END_TEST

/* θ's values now, copied out. */
static void theta_copy(const ps_store *s, float *out)
{
    memcpy(out, ps_store_data(s), ps_store_size(s) * sizeof(float));
}

START_TEST(held_theta_stays_as_it_was_while_every_kind_of_write_goes_on)
{
    /* a reply holds θ's buffer (as one on the wire does): the async apply,
     * the sync round and a checkpoint load each leave that buffer as it
     * was and write θ elsewhere */
    static ps_job job;
    job_softmax(&job, PS_INIT_XAVIER);
    ps_store *s = ps_store_new(&job, 0, 15, true, NULL);
    ck_assert_ptr_nonnull(s);
    float g[15], before[15], want[15];
    for (int i = 0; i < 15; i++)
        g[i] = (float)(i - 7);
    ck_assert_uint_eq(ps_store_theta_copies(s), 0);
    for (int kind = 0; kind < 3; kind++) {
        ps_store_ref *ref = NULL;
        ck_assert_int_eq(ps_store_theta_hold(s, &ref), 0);
        ck_assert_ptr_nonnull(ref);
        const float *held = ps_store_data(s);
        theta_copy(s, before);
        if (kind == 0) {
            ck_assert_int_eq(ps_store_apply(s, 3, g, 4), 0);
        } else if (kind == 1) {
            ck_assert_int_eq(ps_store_accumulate(s, g, 2.0f), 0);
            ck_assert_int_eq(ps_store_apply_accumulated(s, 0.5f), 0);
        } else {
            ps_ckpt_array arrays[4];
            size_t n = 0;
            ck_assert_int_eq(ps_store_ckpt_arrays_for_load(s, arrays, 4, &n), 0);
            ck_assert_uint_eq(n, 1);
            for (int i = 0; i < 15; i++)
                arrays[0].data[i] = 100.0f + (float)i;
        }
        /* the held buffer has not changed, not by one bit */
        ck_assert_int_eq(memcmp(held, before, sizeof before), 0);
        ck_assert_ptr_ne(ps_store_data(s), held);
        ck_assert_uint_eq(ps_store_theta_copies(s), (uint64_t)kind + 1);
        /* θ moved on by the write, from the held values */
        for (int i = 0; i < 15; i++) {
            want[i] = before[i];
            if (kind == 0 && i >= 3 && i < 7)
                want[i] -= 0.5f * g[i - 3];
            if (kind == 1)
                want[i] -= 0.5f * (0.5f * (2.0f * g[i]));
            if (kind == 2)
                want[i] = 100.0f + (float)i;
            ck_assert_float_eq(ps_store_data(s)[i], want[i]);
        }
        ps_store_theta_release(ref);
    }
    /* nothing holds θ now: written in place */
    const float *at = ps_store_data(s);
    ck_assert_int_eq(ps_store_apply(s, 0, g, 15), 0);
    ck_assert_ptr_eq(ps_store_data(s), at);
    ck_assert_uint_eq(ps_store_theta_copies(s), 3);
    ps_store_destroy(&s);
}
END_TEST

START_TEST(hold_is_refused_when_no_other_buffer_would_be_free_for_a_write)
{
    /* four buffers: θ's and three more. Holding one version after another
     * (replies of three versions on the wire) uses them up; the fourth hold
     * is refused, so the write after it still finds a free buffer */
    static ps_job job;
    job_softmax(&job, PS_INIT_ZEROS);
    ps_store *s = ps_store_new(&job, 0, 15, false, NULL);
    float g[15];
    for (int i = 0; i < 15; i++)
        g[i] = 1.0f;
    ps_store_ref *refs[3];
    const float *held[3];
    for (int v = 0; v < 3; v++) {
        ck_assert_int_eq(ps_store_theta_hold(s, &refs[v]), 0);
        held[v] = ps_store_data(s);
        ck_assert_int_eq(ps_store_apply(s, 0, g, 15), 0); /* θ moves off the held buffer */
    }
    ps_store_ref *ref = (ps_store_ref *)1;
    ck_assert_int_eq(ps_store_theta_hold(s, &ref), PS_EFULL);
    ck_assert_ptr_null(ref);
    ck_assert_int_eq(ps_store_apply(s, 0, g, 15), 0); /* in place: nothing holds θ's buffer */
    for (int v = 0; v < 3; v++)                       /* version v saw v steps of lr 0.5 */
        for (int i = 0; i < 15; i++)
            ck_assert_float_eq(held[v][i], -0.5f * (float)v);
    for (int i = 0; i < 15; i++)
        ck_assert_float_eq(ps_store_data(s)[i], -2.0f);
    /* the oldest reply lets go: its buffer is free again */
    ps_store_theta_release(refs[0]);
    ck_assert_int_eq(ps_store_theta_hold(s, &ref), 0);
    ck_assert_int_eq(ps_store_apply(s, 0, g, 15), 0);
    ck_assert_ptr_eq(ps_store_data(s), held[0]); /* reused, not a fifth buffer */
    ck_assert_uint_eq(ps_store_theta_copies(s), 4);
    ps_store_theta_release(ref);
    ps_store_theta_release(refs[1]);
    ps_store_theta_release(refs[2]);
    ps_store_destroy(&s);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_add_test(tc, init_is_deterministic_and_independent_of_shard_count);
    tcase_add_test(tc, xavier_is_bounded_and_biases_start_at_zero);
    tcase_add_test(tc, custom_tensors_ending_in_bias_start_at_zero);
    tcase_add_test(tc, seed_changes_the_initial_values);
    tcase_add_test(tc, init_value_matches_the_store);
    tcase_add_test(tc, zeros_scheme_gives_all_zeros);
    tcase_add_test(tc, sgd_apply_gives_exact_values_with_l2);
    tcase_add_test(tc, gradient_at_an_odd_address_is_applied);
    tcase_add_test(tc, apply_outside_the_shard_is_refused_and_changes_nothing);
    tcase_add_test(tc, accumulated_mean_is_applied_once);
    tcase_add_test(tc, bad_optimizer_and_bad_range_are_refused);
    tcase_add_test(tc, held_theta_stays_as_it_was_while_every_kind_of_write_goes_on);
    tcase_add_test(tc, hold_is_refused_when_no_other_buffer_would_be_free_for_a_write);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(store_suite());
}
