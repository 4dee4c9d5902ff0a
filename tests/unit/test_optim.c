/* test_optim.c — the server-side optimizers: each one against three updates
 * computed by hand (the arithmetic is in the comments, the constants are
 * evaluated in double), L2, the learning-rate schedules, per-key state under
 * subrange applies, and one update per sync round through the store. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <string.h>

#include "job.h"
#include "optim.h"
#include "store.h"

#define TOL 1e-6

/* The gradients of the three steps, for θ of two keys, in every 3-step test:
 * key 0 sees 1, 0.5, -1; key 1 sees -2, 1, 0.5. */
static const float G[3][2] = {{1.0f, -2.0f}, {0.5f, 1.0f}, {-1.0f, 0.5f}};

/* A logistic job with 3 features (θ = w[3], b[1]: 4 keys), zeros init. */
static void job_of(ps_job *job, ps_optim_type type, double lr)
{
    memset(job, 0, sizeof *job);
    strcpy(job->name, "optim-test");
    job->mode = PS_MODE_ASYNC;
    job->workers = 1;
    job->nservers = 1;
    strcpy(job->servers[0], "tcp://127.0.0.1:7070");
    job->model.type = PS_MODEL_LOGISTIC;
    job->model.features = 3;
    job->model.init_scheme = PS_INIT_ZEROS;
    job->optimizer.type = type;
    job->optimizer.lr = lr;
    job->optimizer.momentum = 0.9;
    job->optimizer.beta = 1.0; /* ftrl, as the loader defaults it */
    job->optimizer.beta1 = 0.9;
    job->optimizer.beta2 = 0.999;
    job->optimizer.eps = 1e-8;
    job->optimizer.schedule = PS_SCHEDULE_CONSTANT;
    job->optimizer.gamma = 0.1;
}

/* Runs the three steps of G on θ = {θ0, θ1} and checks the result. */
static void three_steps(const ps_job *job, float th0, float th1, double want0, double want1)
{
    ps_optim o;
    ps_error err;
    float theta[2] = {th0, th1};
    ck_assert_msg(ps_optim_init(&o, job, theta, 2, &err) == 0, "%s", err.msg);
    for (size_t t = 0; t < 3; t++)
        ps_optim_apply(&o, theta, 0, G[t], 2, 1.0f);
    ck_assert_uint_eq(ps_optim_updates(&o), 3);
    ck_assert_float_eq_tol(theta[0], want0, TOL);
    ck_assert_float_eq_tol(theta[1], want1, TOL);
    ps_optim_fini(&o);
    ps_optim_fini(&o); /* twice is fine */
}

/* ---- the update rules, three steps each ---------------------------------- */

START_TEST(sgd_matches_three_hand_steps)
{
    /* θ -= 0.1 · g: key 0: 1 - 0.1·(1 + 0.5 - 1) = 0.95;
     * key 1: -2 - 0.1·(-2 + 1 + 0.5) = -1.95 */
    static ps_job job;
    job_of(&job, PS_OPTIM_SGD, 0.1);
    three_steps(&job, 1.0f, -2.0f, 0.95, -1.95);
}
END_TEST

START_TEST(momentum_matches_three_hand_steps)
{
    /* μ = 0.9, lr = 0.1; v = μ·v + g; θ -= lr · v
     * key 0: v = 1     → θ = 1 - 0.1      = 0.9
     *        v = 1.4   → θ = 0.9 - 0.14   = 0.76
     *        v = 0.26  → θ = 0.76 - 0.026 = 0.734
     * key 1: v = -2    → θ = -2 + 0.2      = -1.8
     *        v = -0.8  → θ = -1.8 + 0.08   = -1.72
     *        v = -0.22 → θ = -1.72 + 0.022 = -1.698 */
    static ps_job job;
    job_of(&job, PS_OPTIM_MOMENTUM, 0.1);
    three_steps(&job, 1.0f, -2.0f, 0.734, -1.698);
}
END_TEST

START_TEST(nesterov_matches_three_hand_steps)
{
    /* v = μ·v + g; θ -= lr · (g + μ·v)
     * key 0: v = 1,     g + μv = 1.9    → θ = 1 - 0.19       = 0.81
     *        v = 1.4,   g + μv = 1.76   → θ = 0.81 - 0.176   = 0.634
     *        v = 0.26,  g + μv = -0.766 → θ = 0.634 + 0.0766 = 0.7106
     * key 1: v = -2,    g + μv = -3.8   → θ = -2 + 0.38       = -1.62
     *        v = -0.8,  g + μv = 0.28   → θ = -1.62 - 0.028   = -1.648
     *        v = -0.22, g + μv = 0.302  → θ = -1.648 - 0.0302 = -1.6782 */
    static ps_job job;
    job_of(&job, PS_OPTIM_MOMENTUM, 0.1);
    job.optimizer.nesterov = true;
    three_steps(&job, 1.0f, -2.0f, 0.7106, -1.6782);
}
END_TEST

START_TEST(adagrad_matches_three_hand_steps)
{
    /* a += g²; θ -= 0.1 · g / (√a + 1e-8)
     * key 0: a = 1    → θ = 1 - 0.1·1/1
     *        a = 1.25 → θ -= 0.1·0.5/√1.25
     *        a = 2.25 → θ += 0.1·1/1.5
     * key 1: a = 4    → θ = -2 + 0.1·2/2
     *        a = 5    → θ -= 0.1·1/√5
     *        a = 5.25 → θ -= 0.1·0.5/√5.25 */
    const double e = 1e-8;
    double k0 = 1 - 0.1 * 1 / (1 + e) - 0.1 * 0.5 / (sqrt(1.25) + e) + 0.1 * 1 / (1.5 + e);
    double k1 = -2 + 0.1 * 2 / (2 + e) - 0.1 * 1 / (sqrt(5.0) + e) - 0.1 * 0.5 / (sqrt(5.25) + e);
    /* ≈ 0.921945, -1.966543 */
    static ps_job job;
    job_of(&job, PS_OPTIM_ADAGRAD, 0.1);
    three_steps(&job, 1.0f, -2.0f, k0, k1);
}
END_TEST

START_TEST(adam_matches_three_hand_steps)
{
    /* β1 = 0.9, β2 = 0.999, lr = 0.1, eps = 1e-8;
     * m = β1·m + 0.1·g, v = β2·v + 0.001·g²,
     * θ -= lr · (m / (1 - β1^t)) / (√(v / (1 - β2^t)) + eps)
     * with 1 - β1^t = 0.1, 0.19, 0.271 and 1 - β2^t = 0.001, 0.001999, 0.002997001.
     * key 0: m = 0.1,   v = 0.001                        → θ = 1 - 0.1·1/(1 + eps)
     *        m = 0.14,  v = 0.000999 + 0.00025 = 0.001249
     *        m = 0.026, v = 0.001247751 + 0.001 = 0.002247751
     * key 1: m = -0.2,   v = 0.004                       → θ = -2 + 0.1·2/(2 + eps)
     *        m = -0.08,  v = 0.003996 + 0.001 = 0.004996
     *        m = -0.022, v = 0.004991004 + 0.00025 = 0.005241004 */
    const double e = 1e-8;
    double k0 = 1 - 0.1 * (0.1 / 0.1) / (sqrt(0.001 / 0.001) + e);
    k0 -= 0.1 * (0.14 / 0.19) / (sqrt(0.001249 / 0.001999) + e);
    k0 -= 0.1 * (0.026 / 0.271) / (sqrt(0.002247751 / 0.002997001) + e);
    double k1 = -2 - 0.1 * (-0.2 / 0.1) / (sqrt(0.004 / 0.001) + e);
    k1 -= 0.1 * (-0.08 / 0.19) / (sqrt(0.004996 / 0.001999) + e);
    k1 -= 0.1 * (-0.022 / 0.271) / (sqrt(0.005241004 / 0.002997001) + e);
    /* ≈ 0.795700, -1.839452 */
    static ps_job job;
    job_of(&job, PS_OPTIM_ADAM, 0.1);
    three_steps(&job, 1.0f, -2.0f, k0, k1);
}
END_TEST

START_TEST(ftrl_matches_three_hand_steps)
{
    /* FTRL-Proximal, α = 0.5, β = 1, λ1 = λ2 = 0, from θ = 0 (z = n = 0):
     * σ = (√(n + g²) - √n)/α; z += g - σ·θ; n += g²; θ = -z / ((1 + √n)/α)
     * key 0: n = 1:    σ = 2,               z = 1,               θ = -1/4
     *        n = 1.25: σ = 2(√1.25 - 1),    z = 1.5 - σ·θ
     *        n = 2.25: σ = 2(1.5 - √1.25),  z = z - 1 - σ·θ,      θ = -z/5
     * key 1: n = 4:    σ = 4,               z = -2,              θ = 2/6
     *        n = 5:    σ = 2(√5 - 2),       z = -1 - σ·θ
     *        n = 5.25: σ = 2(√5.25 - √5),   z = z + 0.5 - σ·θ */
    double z = 1, th = -1.0 / 4;
    z = z + 0.5 - 2 * (sqrt(1.25) - 1) * th;
    th = -z / ((1 + sqrt(1.25)) / 0.5);
    z = z - 1 - 2 * (1.5 - sqrt(1.25)) * th;
    double k0 = -z / ((1 + 1.5) / 0.5); /* ≈ -0.168034 */
    z = -2, th = 2.0 / 6;
    z = z + 1 - 2 * (sqrt(5.0) - 2) * th;
    th = -z / ((1 + sqrt(5.0)) / 0.5);
    z = z + 0.5 - 2 * (sqrt(5.25) - sqrt(5.0)) * th;
    double k1 = -z / ((1 + sqrt(5.25)) / 0.5); /* ≈ 0.005046 */
    static ps_job job;
    job_of(&job, PS_OPTIM_FTRL, 0.5);
    three_steps(&job, 0.0f, 0.0f, k0, k1);
}
END_TEST

START_TEST(ftrl_with_l1_and_l2_matches_hand_steps_and_keeps_small_keys_at_zero)
{
    /* α = 0.5, λ1 = 0.5, λ2 = 1: θ = -(z - sign(z)·λ1) / ((1 + √n)/α + λ2)
     * when |z| > λ1, else 0. Key 2 gets 0.2, -0.1, 0.1: z = 0.2, 0.1, 0.2,
     * never past λ1, so it stays exactly 0.
     * key 0: z = 1                          → θ = -0.5/5
     *        z = 1.5 - 2(√1.25 - 1)·θ       → θ = -(z - 0.5)/((1 + √1.25)/0.5 + 1)
     *        z = z - 1 - 2(1.5 - √1.25)·θ   → θ = -(z - 0.5)/6
     * key 1: z = -2                         → θ = 1.5/7
     *        z = -1 - 2(√5 - 2)·θ           → θ = -(z + 0.5)/((1 + √5)/0.5 + 1)
     *        z = z + 0.5 - 2(√5.25 - √5)·θ  → θ = -(z + 0.5)/((1 + √5.25)/0.5 + 1) */
    double z = 1, th = -0.5 / 5;
    z = 1.5 - 2 * (sqrt(1.25) - 1) * th;
    th = -(z - 0.5) / ((1 + sqrt(1.25)) / 0.5 + 1);
    z = z - 1 - 2 * (1.5 - sqrt(1.25)) * th;
    double k0 = -(z - 0.5) / 6; /* ≈ -0.028825 */
    z = -2, th = 1.5 / 7;
    z = -1 - 2 * (sqrt(5.0) - 2) * th;
    th = -(z + 0.5) / ((1 + sqrt(5.0)) / 0.5 + 1);
    z = z + 0.5 - 2 * (sqrt(5.25) - sqrt(5.0)) * th;
    double k1 = -(z + 0.5) / ((1 + sqrt(5.25)) / 0.5 + 1); /* ≈ 0.014515 */

    static ps_job job;
    job_of(&job, PS_OPTIM_FTRL, 0.5);
    job.optimizer.l1 = 0.5;
    job.optimizer.l2 = 1.0;
    const float g[3][3] = {{1.0f, -2.0f, 0.2f}, {0.5f, 1.0f, -0.1f}, {-1.0f, 0.5f, 0.1f}};
    float theta[3] = {0};
    ps_optim o;
    ck_assert_int_eq(ps_optim_init(&o, &job, theta, 3, NULL), 0);
    for (size_t t = 0; t < 3; t++) {
        ps_optim_apply(&o, theta, 0, g[t], 3, 1.0f);
        ck_assert_float_eq(theta[2], 0.0f);
    }
    ck_assert_float_eq_tol(theta[0], k0, TOL);
    ck_assert_float_eq_tol(theta[1], k1, TOL);
    ps_optim_fini(&o);
}
END_TEST

START_TEST(ftrl_starts_from_the_initial_theta)
{
    /* z is seeded so the weight formula gives back θ₀: a zero gradient
     * leaves θ where the init scheme put it */
    static ps_job job;
    job_of(&job, PS_OPTIM_FTRL, 0.2);
    job.optimizer.l1 = 0.1;
    job.optimizer.l2 = 0.5;
    float theta[3] = {0.3f, -0.7f, 0.0f};
    const float zero[3] = {0};
    ps_optim o;
    ck_assert_int_eq(ps_optim_init(&o, &job, theta, 3, NULL), 0);
    ps_optim_apply(&o, theta, 0, zero, 3, 1.0f);
    ck_assert_float_eq_tol(theta[0], 0.3, TOL);
    ck_assert_float_eq_tol(theta[1], -0.7, TOL);
    ck_assert_float_eq(theta[2], 0.0f);
    ps_optim_fini(&o);
}
END_TEST

/* ---- L2 ---------------------------------------------------------------- */

START_TEST(l2_is_added_to_the_gradient)
{
    /* sgd, lr = 0.1, l2 = 0.5: θ -= 0.1 · (g + 0.5·θ)
     * key 0: 1 - 0.1·(1 + 0.5)          = 0.85
     *        0.85 - 0.1·(0.5 + 0.425)   = 0.7575
     *        0.7575 - 0.1·(-1 + 0.37875) = 0.819625
     * key 1: -2 - 0.1·(-2 - 1)          = -1.7
     *        -1.7 - 0.1·(1 - 0.85)      = -1.715
     *        -1.715 - 0.1·(0.5 - 0.8575) = -1.67925 */
    static ps_job job;
    job_of(&job, PS_OPTIM_SGD, 0.1);
    job.optimizer.l2 = 0.5;
    three_steps(&job, 1.0f, -2.0f, 0.819625, -1.67925);
    /* momentum, μ = 0.9: g' = g + 0.5·θ
     * key 0: g' = 1.5,       v = 1.5,      θ = 1 - 0.15      = 0.85
     *        g' = 0.925,     v = 2.275,    θ = 0.85 - 0.2275 = 0.6225
     *        g' = -0.68875,  v = 1.35875,  θ = 0.6225 - 0.135875 = 0.486625
     * key 1: g' = -3,        v = -3,       θ = -2 + 0.3      = -1.7
     *        g' = 0.15,      v = -2.55,    θ = -1.7 + 0.255  = -1.445
     *        g' = -0.2225,   v = -2.5175,  θ = -1.445 + 0.25175 = -1.19325 */
    job_of(&job, PS_OPTIM_MOMENTUM, 0.1);
    job.optimizer.l2 = 0.5;
    three_steps(&job, 1.0f, -2.0f, 0.486625, -1.19325);
}
END_TEST

START_TEST(l2_in_adam_and_adagrad_is_the_same_as_a_decayed_gradient)
{
    /* an optimizer with l2 given g equals one without l2 given g + l2·θ */
    ps_optim_type types[] = {PS_OPTIM_ADAGRAD, PS_OPTIM_ADAM};
    for (size_t k = 0; k < 2; k++) {
        static ps_job with, without;
        job_of(&with, types[k], 0.1);
        with.optimizer.l2 = 0.5;
        job_of(&without, types[k], 0.1);
        float a[2] = {1.0f, -2.0f}, b[2] = {1.0f, -2.0f};
        ps_optim oa, ob;
        ck_assert_int_eq(ps_optim_init(&oa, &with, a, 2, NULL), 0);
        ck_assert_int_eq(ps_optim_init(&ob, &without, b, 2, NULL), 0);
        for (size_t t = 0; t < 3; t++) {
            float decayed[2] = {G[t][0] + 0.5f * b[0], G[t][1] + 0.5f * b[1]};
            ps_optim_apply(&oa, a, 0, G[t], 2, 1.0f);
            ps_optim_apply(&ob, b, 0, decayed, 2, 1.0f);
        }
        ck_assert_float_eq_tol(a[0], b[0], TOL);
        ck_assert_float_eq_tol(a[1], b[1], TOL);
        ck_assert_float_ne(a[0], 0.9f); /* it moved past step 1 */
        ps_optim_fini(&oa);
        ps_optim_fini(&ob);
    }
}
END_TEST

/* ---- schedules ---------------------------------------------------------- */

static double lr_at(const ps_job *job, uint64_t t)
{
    ps_optim o;
    ps_error err;
    ck_assert_msg(ps_optim_init(&o, job, NULL, 0, &err) == 0, "%s", err.msg);
    double lr = ps_optim_lr_at(&o, t);
    ps_optim_fini(&o);
    return lr;
}

START_TEST(constant_schedule_keeps_lr)
{
    static ps_job job;
    job_of(&job, PS_OPTIM_SGD, 0.1);
    ck_assert_double_eq_tol(lr_at(&job, 0), 0.1, 1e-12);
    ck_assert_double_eq_tol(lr_at(&job, 1000000), 0.1, 1e-12);
}
END_TEST

START_TEST(step_schedule_multiplies_by_gamma_every_step_size)
{
    /* lr · gamma^floor(t / step_size), step_size 10, gamma 0.5 */
    static ps_job job;
    job_of(&job, PS_OPTIM_SGD, 0.1);
    job.optimizer.schedule = PS_SCHEDULE_STEP;
    job.optimizer.step_size = 10;
    job.optimizer.gamma = 0.5;
    ck_assert_double_eq_tol(lr_at(&job, 0), 0.1, 1e-12);
    ck_assert_double_eq_tol(lr_at(&job, 9), 0.1, 1e-12);
    ck_assert_double_eq_tol(lr_at(&job, 10), 0.05, 1e-12);
    ck_assert_double_eq_tol(lr_at(&job, 25), 0.025, 1e-12);
    ck_assert_double_eq_tol(lr_at(&job, 30), 0.0125, 1e-12);
}
END_TEST

START_TEST(cosine_schedule_falls_to_zero_at_total_steps)
{
    /* lr · ½(1 + cos(π·t/T)), T = 100 */
    static ps_job job;
    job_of(&job, PS_OPTIM_SGD, 0.1);
    job.optimizer.schedule = PS_SCHEDULE_COSINE;
    job.optimizer.total_steps = 100;
    ck_assert_double_eq_tol(lr_at(&job, 0), 0.1, 1e-12);
    ck_assert_double_eq_tol(lr_at(&job, 25), 0.05 * (1 + sqrt(0.5)), 1e-12); /* ≈ 0.085355 */
    ck_assert_double_eq_tol(lr_at(&job, 50), 0.05, 1e-12);
    ck_assert_double_eq_tol(lr_at(&job, 75), 0.05 * (1 - sqrt(0.5)), 1e-12);
    ck_assert_double_eq(lr_at(&job, 100), 0.0);
    ck_assert_double_eq(lr_at(&job, 5000), 0.0);
}
END_TEST

START_TEST(warmup_ramps_linearly_then_hands_over_to_the_schedule)
{
    static ps_job job;
    job_of(&job, PS_OPTIM_SGD, 0.1);
    job.optimizer.warmup_steps = 4; /* lr/4, 2lr/4, 3lr/4, lr, then constant */
    ck_assert_double_eq_tol(lr_at(&job, 0), 0.025, 1e-12);
    ck_assert_double_eq_tol(lr_at(&job, 1), 0.05, 1e-12);
    ck_assert_double_eq_tol(lr_at(&job, 2), 0.075, 1e-12);
    ck_assert_double_eq_tol(lr_at(&job, 3), 0.1, 1e-12);
    ck_assert_double_eq_tol(lr_at(&job, 4), 0.1, 1e-12);
    /* cosine after 10 warmup steps, T = 110 - 10: s = t - 10 */
    job.optimizer.schedule = PS_SCHEDULE_COSINE;
    job.optimizer.warmup_steps = 10;
    job.optimizer.total_steps = 110;
    ck_assert_double_eq_tol(lr_at(&job, 4), 0.05, 1e-12);
    ck_assert_double_eq_tol(lr_at(&job, 9), 0.1, 1e-12);
    ck_assert_double_eq_tol(lr_at(&job, 10), 0.1, 1e-12);
    ck_assert_double_eq_tol(lr_at(&job, 60), 0.05, 1e-12);
    ck_assert_double_eq(lr_at(&job, 110), 0.0);
    /* step after 5 warmup steps: the first decay at t = 5 + 10 */
    job.optimizer.schedule = PS_SCHEDULE_STEP;
    job.optimizer.warmup_steps = 5;
    job.optimizer.step_size = 10;
    job.optimizer.gamma = 0.5;
    ck_assert_double_eq_tol(lr_at(&job, 14), 0.1, 1e-12);
    ck_assert_double_eq_tol(lr_at(&job, 15), 0.05, 1e-12);
}
END_TEST

START_TEST(apply_uses_the_scheduled_lr_and_set_lr_rescales_it)
{
    /* sgd, step schedule halving every update: g = 1 three times gives
     * θ = -(0.1 + 0.05 + 0.025) = -0.175; then lr 0.8 from t = 3 on:
     * 0.8 · 0.5³ = 0.1, θ = -0.275 */
    static ps_job job;
    job_of(&job, PS_OPTIM_SGD, 0.1);
    job.optimizer.schedule = PS_SCHEDULE_STEP;
    job.optimizer.step_size = 1;
    job.optimizer.gamma = 0.5;
    float theta[1] = {0}, g[1] = {1.0f};
    ps_optim o;
    ck_assert_int_eq(ps_optim_init(&o, &job, theta, 1, NULL), 0);
    for (int t = 0; t < 3; t++)
        ps_optim_apply(&o, theta, 0, g, 1, 1.0f);
    ck_assert_float_eq_tol(theta[0], -0.175, TOL);
    ps_optim_set_lr(&o, 0.8);
    ck_assert_double_eq(ps_optim_lr(&o), 0.8);
    ps_optim_apply(&o, theta, 0, g, 1, 1.0f);
    ck_assert_float_eq_tol(theta[0], -0.275, TOL);
    ck_assert_uint_eq(ps_optim_updates(&o), 4);
    ps_optim_fini(&o);
}
END_TEST

START_TEST(bad_hyper_parameters_are_refused)
{
    static ps_job job;
    ps_optim o;
    ps_error err;
    job_of(&job, PS_OPTIM_SGD, 0.1);
    job.optimizer.schedule = PS_SCHEDULE_COSINE;
    ck_assert_int_eq(ps_optim_init(&o, &job, NULL, 0, &err), PS_EINVAL);
    ck_assert_str_eq(err.msg, "schedule cosine needs optimizer.schedule.total_steps");
    job.optimizer.total_steps = 10;
    job.optimizer.warmup_steps = 10;
    ck_assert_int_eq(ps_optim_init(&o, &job, NULL, 0, &err), PS_EINVAL);
    ck_assert_str_eq(err.msg, "schedule cosine: warmup_steps (10) must be less than total_steps "
                              "(10)");
    job_of(&job, PS_OPTIM_ADAM, 0.1);
    job.optimizer.eps = 0;
    ck_assert_int_eq(ps_optim_init(&o, &job, NULL, 0, &err), PS_EINVAL);
    ck_assert_str_eq(err.msg, "optimizer adam: eps must be > 0");
    job_of(&job, PS_OPTIM_ADAM, 0.1);
    job.optimizer.beta2 = 1.0;
    ck_assert_int_eq(ps_optim_init(&o, &job, NULL, 0, &err), PS_EINVAL);
    ck_assert_str_eq(err.msg, "optimizer adam: beta1 and beta2 must be in [0, 1)");
    ps_optim_fini(&o); /* after a failed init: fine */
}
END_TEST

/* ---- state in the store ------------------------------------------------- */

START_TEST(state_is_per_key_and_a_subrange_touches_only_its_keys)
{
    /* momentum over 4 keys; two pushes to keys [1, 3) only */
    static ps_job job;
    job_of(&job, PS_OPTIM_MOMENTUM, 0.1);
    ps_store *s = ps_store_new(&job, 0, 4, false, NULL);
    ck_assert_ptr_nonnull(s);
    float g[2] = {1.0f, -2.0f};
    ck_assert_int_eq(ps_store_apply(s, 1, g, 2), 0);
    ck_assert_int_eq(ps_store_apply(s, 1, g, 2), 0);
    ck_assert_int_eq(ps_store_apply(s, 3, g, 2), PS_ERANGE); /* refused: no update */
    ck_assert_uint_eq(ps_store_updates(s), 2);
    ck_assert_uint_eq(ps_store_state_count(s), 1);
    const char *name;
    const float *v;
    size_t n;
    ck_assert_int_eq(ps_store_state(s, 0, &name, &v, &n), 0);
    ck_assert_str_eq(name, "velocity");
    ck_assert_uint_eq(n, 4);
    /* v = 1, then 0.9 + 1 = 1.9; θ = -0.1 · (1 + 1.9) = -0.29 (key 2: ×-2) */
    ck_assert_float_eq(v[0], 0.0f);
    ck_assert_float_eq_tol(v[1], 1.9, TOL);
    ck_assert_float_eq_tol(v[2], -3.8, TOL);
    ck_assert_float_eq(v[3], 0.0f);
    const float *t = ps_store_data(s);
    ck_assert_float_eq(t[0], 0.0f);
    ck_assert_float_eq_tol(t[1], -0.29, TOL);
    ck_assert_float_eq_tol(t[2], 0.58, TOL);
    ck_assert_float_eq(t[3], 0.0f);
    ck_assert_int_eq(ps_store_state(s, 1, &name, &v, &n), PS_ERANGE);
    ps_store_destroy(&s);
}
END_TEST

START_TEST(adam_step_count_is_per_shard_update)
{
    /* async: a push to keys [0, 2) then one to [2, 4). The second is the
     * shard's update 2, so keys 2..3 get their first moment with t = 2:
     * m = 0.1·g, v = 0.001·g², θ = -0.1 · (0.1/0.19)·|g| / √(0.001·g²/0.001999)
     * = -0.1 · (0.1/0.19) / √(0.001/0.001999) · sign(g) ≈ ∓0.074413 */
    static ps_job job;
    job_of(&job, PS_OPTIM_ADAM, 0.1);
    ps_store *s = ps_store_new(&job, 0, 4, false, NULL);
    float g[2] = {1.0f, -2.0f};
    ck_assert_int_eq(ps_store_apply(s, 0, g, 2), 0);
    ck_assert_int_eq(ps_store_apply(s, 2, g, 2), 0);
    ck_assert_uint_eq(ps_store_updates(s), 2);
    double step2 = 0.1 * (0.1 / 0.19) / (sqrt(0.001 / 0.001999) + 1e-8);
    const float *t = ps_store_data(s);
    ck_assert_float_eq_tol(t[0], -0.1, TOL);
    ck_assert_float_eq_tol(t[1], 0.1, TOL);
    ck_assert_float_eq_tol(t[2], -step2, TOL);
    ck_assert_float_eq_tol(t[3], step2, TOL);
    const char *name;
    const float *m;
    size_t n;
    ck_assert_uint_eq(ps_store_state_count(s), 2);
    ck_assert_int_eq(ps_store_state(s, 0, &name, &m, &n), 0);
    ck_assert_str_eq(name, "m");
    ck_assert_float_eq_tol(m[3], -0.2, TOL);
    ck_assert_int_eq(ps_store_state(s, 1, &name, &m, &n), 0);
    ck_assert_str_eq(name, "v");
    ck_assert_float_eq_tol(m[3], 0.004, TOL);
    ps_store_destroy(&s);
}
END_TEST

START_TEST(sync_round_is_one_optimizer_update)
{
    /* adam, two pushes accumulated (weights 1 and 3), applied as their mean
     * {2.5, -1}: one update, t = 1: θ = -0.1 · sign(mean) = {-0.1, 0.1}.
     * Round 2, one push {1, 2}:
     * key 0: m = 0.9·0.25 + 0.1·1 = 0.325,  v = 0.999·0.00625 + 0.001 = 0.00724375
     * key 1: m = -0.09 + 0.2 = 0.11,        v = 0.000999 + 0.004 = 0.004999 */
    static ps_job job;
    job_of(&job, PS_OPTIM_ADAM, 0.1);
    job.mode = PS_MODE_SYNC;
    ps_store *s = ps_store_new(&job, 0, 2, true, NULL);
    float a[2] = {1.0f, 2.0f}, b[2] = {3.0f, -2.0f};
    ck_assert_int_eq(ps_store_accumulate(s, a, 1.0f), 0);
    ck_assert_int_eq(ps_store_accumulate(s, b, 3.0f), 0);
    ck_assert_uint_eq(ps_store_updates(s), 0);
    ck_assert_int_eq(ps_store_apply_accumulated(s, 0.25f), 0);
    ck_assert_uint_eq(ps_store_updates(s), 1);
    const float *t = ps_store_data(s);
    ck_assert_float_eq_tol(t[0], -0.1, TOL);
    ck_assert_float_eq_tol(t[1], 0.1, TOL);
    ck_assert_int_eq(ps_store_accumulate(s, a, 1.0f), 0);
    ck_assert_int_eq(ps_store_apply_accumulated(s, 1.0f), 0);
    ck_assert_uint_eq(ps_store_updates(s), 2);
    double k0 = -0.1 - 0.1 * (0.325 / 0.19) / (sqrt(0.00724375 / 0.001999) + 1e-8);
    double k1 = 0.1 - 0.1 * (0.11 / 0.19) / (sqrt(0.004999 / 0.001999) + 1e-8);
    ck_assert_float_eq_tol(t[0], k0, TOL); /* ≈ -0.189857 */
    ck_assert_float_eq_tol(t[1], k1, TOL); /* ≈ 0.063387 */
    ps_store_destroy(&s);
}
END_TEST

START_TEST(state_names_and_counts_by_optimizer)
{
    static const struct {
        ps_optim_type type;
        size_t count;
        const char *names[2];
    } want[] = {
        {PS_OPTIM_SGD, 0, {NULL, NULL}},
        {PS_OPTIM_MOMENTUM, 1, {"velocity", NULL}},
        {PS_OPTIM_ADAGRAD, 1, {"accumulator", NULL}},
        {PS_OPTIM_ADAM, 2, {"m", "v"}},
        {PS_OPTIM_FTRL, 2, {"z", "n"}},
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        static ps_job job;
        job_of(&job, want[k].type, 0.1);
        ps_store *s = ps_store_new(&job, 1, 4, false, NULL);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_eq(ps_store_state_count(s), want[k].count);
        for (size_t i = 0; i < want[k].count; i++) {
            const char *name;
            const float *data;
            size_t n;
            ck_assert_int_eq(ps_store_state(s, i, &name, &data, &n), 0);
            ck_assert_str_eq(name, want[k].names[i]);
            ck_assert_uint_eq(n, 3);
            for (size_t j = 0; j < n; j++)
                ck_assert_float_eq(data[j], 0.0f);
        }
        ps_store_destroy(&s);
    }
}
END_TEST

static Suite *optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_test(tc, sgd_matches_three_hand_steps);
    tcase_add_test(tc, momentum_matches_three_hand_steps);
    tcase_add_test(tc, nesterov_matches_three_hand_steps);
    tcase_add_test(tc, adagrad_matches_three_hand_steps);
    tcase_add_test(tc, adam_matches_three_hand_steps);
    tcase_add_test(tc, ftrl_matches_three_hand_steps);
    tcase_add_test(tc, ftrl_with_l1_and_l2_matches_hand_steps_and_keeps_small_keys_at_zero);
    tcase_add_test(tc, ftrl_starts_from_the_initial_theta);
    tcase_add_test(tc, l2_is_added_to_the_gradient);
    tcase_add_test(tc, l2_in_adam_and_adagrad_is_the_same_as_a_decayed_gradient);
    tcase_add_test(tc, constant_schedule_keeps_lr);
    tcase_add_test(tc, step_schedule_multiplies_by_gamma_every_step_size);
    tcase_add_test(tc, cosine_schedule_falls_to_zero_at_total_steps);
    tcase_add_test(tc, warmup_ramps_linearly_then_hands_over_to_the_schedule);
    tcase_add_test(tc, apply_uses_the_scheduled_lr_and_set_lr_rescales_it);
    tcase_add_test(tc, bad_hyper_parameters_are_refused);
    tcase_add_test(tc, state_is_per_key_and_a_subrange_touches_only_its_keys);
    tcase_add_test(tc, adam_step_count_is_per_shard_update);
    tcase_add_test(tc, sync_round_is_one_optimizer_update);
    tcase_add_test(tc, state_names_and_counts_by_optimizer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(optim_suite());
}
