/* test_model.c — the built-in models: analytic gradients against central
 * finite differences of an independent float64 loss (linear, logistic,
 * softmax and a two-hidden-layer MLP), hand-computed tiny examples, the
 * metrics (logistic's AUC; none for the others), label checks, θ's layout
 * and chunked evaluation. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

#define N 24
#define D 5
#define P (D + 1)

static ps_model *model_of(ps_model_type type, uint64_t features, size_t max_rows)
{
    ps_model_spec spec = {.type = type, .features = features};
    ps_model *m = NULL;
    ps_error err;
    ck_assert_int_eq(ps_model_new(&spec, max_rows, &m, &err), 0);
    ck_assert_ptr_nonnull(m);
    return m;
}

/* A small deterministic random problem: x, θ in [-1, 1), y 0/1 or real. */
static void random_problem(float *x, float *y, float *theta, int classify)
{
    uint64_t s = 12345;
    for (int i = 0; i < N * D + N + P; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        float u = (float)((s >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
        if (i < N * D)
            x[i] = u;
        else if (i < N * D + N)
            y[i - N * D] = classify ? (u > 0.0f ? 1.0f : 0.0f) : 3.0f * u;
        else
            theta[i - N * D - N] = u;
    }
}

/* The reference losses, all in double from the float inputs. */
static double ref_loss(int logistic, const float *x, const float *y, const double *th)
{
    double sum = 0.0;
    for (int i = 0; i < N; i++) {
        double z = th[D];
        for (int j = 0; j < D; j++)
            z += th[j] * x[i * D + j];
        if (logistic)
            sum += log1p(exp(-fabs(z))) + (z > 0 ? z : 0) - y[i] * z;
        else
            sum += (z - y[i]) * (z - y[i]);
    }
    return sum / N;
}

static void assert_grad_matches_fd(ps_model_type type)
{
    int logistic = type == PS_MODEL_LOGISTIC;
    float x[N * D], y[N], theta[P], grad[P];
    random_problem(x, y, theta, logistic);
    ps_model *m = model_of(type, D, N);
    double loss = -1.0;
    ck_assert_int_eq(ps_model_grad(m, theta, x, y, N, grad, &loss), 0);
    double th[P];
    for (int k = 0; k < P; k++)
        th[k] = theta[k];
    ck_assert_double_eq_tol(loss, ref_loss(logistic, x, y, th), 1e-6);
    const double eps = 1e-4;
    double diff2 = 0.0, fd2 = 0.0;
    for (int k = 0; k < P; k++) {
        double save = th[k];
        th[k] = save + eps;
        double up = ref_loss(logistic, x, y, th);
        th[k] = save - eps;
        double down = ref_loss(logistic, x, y, th);
        th[k] = save;
        double fd = (up - down) / (2 * eps);
        /* each component within 1e-3 relative (absolute near zero) */
        ck_assert_double_le(fabs(grad[k] - fd), 1e-3 * fmax(1.0, fabs(fd)));
        diff2 += (grad[k] - fd) * (grad[k] - fd);
        fd2 += fd * fd;
    }
    ck_assert_double_le(sqrt(diff2 / fd2), 1e-3);
    ps_model_destroy(&m);
    ck_assert_ptr_null(m);
}

START_TEST(logistic_gradient_matches_finite_differences)
{
    assert_grad_matches_fd(PS_MODEL_LOGISTIC);
}
END_TEST

START_TEST(linear_gradient_matches_finite_differences)
{
    assert_grad_matches_fd(PS_MODEL_LINEAR);
}
END_TEST

START_TEST(logistic_tiny_example_has_hand_computed_loss_and_gradient)
{
    ps_model *m = model_of(PS_MODEL_LOGISTIC, 1, 4);
    /* θ = 0: z = 0, p = 1/2, loss ln 2; r = p - y = (-1/2, 1/2);
     * grad w = (-1/2·2 + 1/2·1) / 2 = -1/4, grad b = 0 */
    float x[2] = {2, 1}, y[2] = {1, 0}, theta[2] = {0, 0}, grad[2];
    double loss;
    ck_assert_int_eq(ps_model_grad(m, theta, x, y, 2, grad, &loss), 0);
    ck_assert_double_eq_tol(loss, log(2.0), 1e-12);
    ck_assert_float_eq(grad[0], -0.25f);
    ck_assert_float_eq(grad[1], 0.0f);
    /* w = 1, b = -1, x = 1, y = 1: z = 0, loss ln 2, grad (-1/2, -1/2) */
    float x1 = 1, y1 = 1, th1[2] = {1, -1};
    ck_assert_int_eq(ps_model_grad(m, th1, &x1, &y1, 1, grad, &loss), 0);
    ck_assert_double_eq_tol(loss, log(2.0), 1e-12);
    ck_assert_float_eq(grad[0], -0.5f);
    ck_assert_float_eq(grad[1], -0.5f);
    ps_model_destroy(&m);
}
END_TEST

START_TEST(logistic_loss_is_finite_for_huge_scores)
{
    ps_model *m = model_of(PS_MODEL_LOGISTIC, 1, 1);
    float x = 1000, y = 0, theta[2] = {1, 0}, grad[2];
    double loss;
    /* z = 1000, y = 0: loss log(1 + e^1000) = 1000, grad w = σ(1000)·1000 = 1000 */
    ck_assert_int_eq(ps_model_grad(m, theta, &x, &y, 1, grad, &loss), 0);
    ck_assert_double_eq_tol(loss, 1000.0, 1e-9);
    ck_assert_float_eq(grad[0], 1000.0f);
    ck_assert_float_eq(grad[1], 1.0f);
    y = 1; /* right with certainty: loss e^-1000 ≈ 0, grad 0 */
    ck_assert_int_eq(ps_model_grad(m, theta, &x, &y, 1, grad, &loss), 0);
    ck_assert_double_eq(loss, 0.0);
    ck_assert_float_eq(grad[0], 0.0f);
    x = -1000; /* z = -1000, y = 1: loss 1000 */
    ck_assert_int_eq(ps_model_grad(m, theta, &x, &y, 1, grad, &loss), 0);
    ck_assert_double_eq_tol(loss, 1000.0, 1e-9);
    ck_assert_float_eq(grad[0], 1000.0f);
    ck_assert_float_eq(grad[1], -1.0f);
    ps_model_destroy(&m);
}
END_TEST

START_TEST(linear_tiny_example_has_hand_computed_loss_and_gradient)
{
    ps_model *m = model_of(PS_MODEL_LINEAR, 1, 3);
    /* w = 1, b = 0: r = (0, 0, -1); MSE 1/3; grad w = 2·(3·-1)/3 = -2;
     * grad b = 2·(-1)/3 */
    float x[3] = {1, 2, 3}, y[3] = {1, 2, 4}, theta[2] = {1, 0}, grad[2];
    double loss;
    ck_assert_int_eq(ps_model_grad(m, theta, x, y, 3, grad, &loss), 0);
    ck_assert_double_eq_tol(loss, 1.0 / 3.0, 1e-12);
    ck_assert_float_eq(grad[0], -2.0f);
    ck_assert_float_eq_tol(grad[1], -2.0f / 3.0f, 1e-7f);
    ps_model_destroy(&m);
}
END_TEST

START_TEST(logistic_eval_gives_accuracy_and_log_loss)
{
    ps_model *m = model_of(PS_MODEL_LOGISTIC, 1, 4);
    /* w = 1, b = 0: z = (2, -1, 0.5, -3) predicts (1, 0, 1, 0); y = (1, 1, 0, 0):
     * rows 0 and 3 right, accuracy 1/2 */
    float x[4] = {2, -1, 0.5f, -3}, y[4] = {1, 1, 0, 0}, theta[2] = {1, 0};
    ps_model_metrics mt;
    ck_assert_int_eq(ps_model_eval(m, theta, x, y, 4, &mt), 0);
    ck_assert_double_eq(mt.metric, 0.5);
    double want = (log1p(exp(-2.0)) + (log1p(exp(-1.0)) + 1.0) + (0.5 + log1p(exp(-0.5))) +
                   log1p(exp(-3.0))) /
                  4.0;
    ck_assert_double_eq_tol(mt.loss, want, 1e-12);
    /* positives score 2 and -1, negatives 0.5 and -3: 3 of the 4 pairs rank right */
    ck_assert_double_eq(mt.auc, 0.75);
    ck_assert(ps_model_has_auc(m));
    /* equal scores of a positive and a negative count half */
    float xt[4] = {1, 1, 3, -2}, yt[4] = {1, 0, 1, 0};
    ck_assert_int_eq(ps_model_eval(m, theta, xt, yt, 4, &mt), 0);
    ck_assert_double_eq(mt.auc, (0.5 + 1 + 1 + 1) / 4.0);
    /* a score of exactly 0 predicts 1; one class only: no AUC */
    float z0 = 0, one = 1;
    ck_assert_int_eq(ps_model_eval(m, theta, &z0, &one, 1, &mt), 0);
    ck_assert_double_eq(mt.metric, 1.0);
    ck_assert(isnan(mt.auc));
    ck_assert_str_eq(ps_model_metric_name(m), "accuracy");
    ck_assert_str_eq(ps_model_loss_name(m), "log_loss");
    ck_assert_str_eq(ps_model_name(m), "logistic");
    ck_assert_uint_eq(ps_model_num_params(m), 2);
    ps_model_destroy(&m);
}
END_TEST

START_TEST(linear_eval_gives_mse_and_r2)
{
    ps_model *m = model_of(PS_MODEL_LINEAR, 1, 4);
    /* predictions 1, 2, 3, 4 for y = 1, 2, 3, 5: SSE 1, MSE 1/4; mean y 2.75,
     * SST 8.75, R² = 1 - 1/8.75 */
    float x[4] = {1, 2, 3, 4}, y[4] = {1, 2, 3, 5}, theta[2] = {1, 0};
    ps_model_metrics mt;
    ck_assert_int_eq(ps_model_eval(m, theta, x, y, 4, &mt), 0);
    ck_assert_double_eq_tol(mt.loss, 0.25, 1e-12);
    ck_assert_double_eq_tol(mt.metric, 1.0 - 1.0 / 8.75, 1e-12);
    /* constant labels: R² 1 when fit exactly, else 0 (as scikit-learn) */
    float yc[4] = {2, 2, 2, 2}, th0[2] = {0, 2}, th1[2] = {0, 3};
    ck_assert_int_eq(ps_model_eval(m, th0, x, yc, 4, &mt), 0);
    ck_assert_double_eq(mt.metric, 1.0);
    ck_assert_double_eq(mt.loss, 0.0);
    ck_assert_int_eq(ps_model_eval(m, th1, x, yc, 4, &mt), 0);
    ck_assert_double_eq(mt.metric, 0.0);
    ck_assert_double_eq(mt.loss, 1.0);
    ck_assert_str_eq(ps_model_metric_name(m), "r2");
    ck_assert_str_eq(ps_model_loss_name(m), "mse");
    ck_assert(!ps_model_has_auc(m)); /* no AUC: absent, never 0 */
    ck_assert(isnan(mt.auc));
    ps_model_destroy(&m);
}
END_TEST

START_TEST(chunked_rows_give_the_same_gradient_and_metrics)
{
    float x[N * D], y[N], theta[P], g_whole[P], g_chunked[P];
    random_problem(x, y, theta, 1);
    ps_model *whole = model_of(PS_MODEL_LOGISTIC, D, N);
    ps_model *small = model_of(PS_MODEL_LOGISTIC, D, 5); /* 24 rows in 5 chunks */
    double l_whole, l_chunked;
    ck_assert_int_eq(ps_model_grad(whole, theta, x, y, N, g_whole, &l_whole), 0);
    ck_assert_int_eq(ps_model_grad(small, theta, x, y, N, g_chunked, &l_chunked), 0);
    ck_assert_double_eq_tol(l_whole, l_chunked, 1e-12);
    for (int k = 0; k < P; k++)
        ck_assert_float_eq_tol(g_whole[k], g_chunked[k], 1e-6f);
    ps_model_metrics a, b;
    ck_assert_int_eq(ps_model_eval(whole, theta, x, y, N, &a), 0);
    ck_assert_int_eq(ps_model_eval(small, theta, x, y, N, &b), 0);
    ck_assert_double_eq(a.metric, b.metric);
    ck_assert_double_eq_tol(a.loss, b.loss, 1e-12);
    ck_assert_double_eq_tol(a.loss, l_whole, 1e-12);
    /* the AUC of 24 rows ranked across 5 chunks is the one of a single chunk */
    ck_assert_double_gt(a.auc, 0.0);
    ck_assert_double_eq(a.auc, b.auc);
    ck_assert_int_eq(ps_model_eval(small, theta, x, y, 5, &b), 0); /* within a chunk again */
    ck_assert_int_eq(ps_model_eval(whole, theta, x, y, 5, &a), 0);
    ck_assert_double_eq(a.auc, b.auc);
    ck_assert_int_eq(ps_model_grad(whole, theta, x, y, 0, g_whole, NULL), PS_EINVAL);
    ck_assert_int_eq(ps_model_eval(whole, theta, x, y, 0, &a), PS_EINVAL);
    ps_model_destroy(&whole);
    ps_model_destroy(&small);
}
END_TEST

START_TEST(logistic_labels_read_minus_one_as_zero_and_refuse_others)
{
    ps_model *m = model_of(PS_MODEL_LOGISTIC, 2, 1);
    ps_error err;
    size_t bad_row = 99;
    float y[4] = {1, -1, 0, -1};
    ck_assert_int_eq(ps_model_prepare_labels(m, y, 4, &bad_row, &err), 0);
    const float want[4] = {1, 0, 0, 0};
    ck_assert_int_eq(memcmp(y, want, sizeof want), 0);
    float bad[3] = {0, 1, 2};
    ck_assert_int_eq(ps_model_prepare_labels(m, bad, 3, &bad_row, &err), PS_EDATA);
    ck_assert_uint_eq(bad_row, 2);
    ck_assert_str_eq(err.msg, "label 2 is not 0 or 1 (logistic regression; -1 reads as 0)");
    float half = 0.5f;
    ck_assert_int_eq(ps_model_prepare_labels(m, &half, 1, NULL, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, "label 0.5 is not 0 or 1 (logistic regression; -1 reads as 0)");
    ps_model_destroy(&m);
    m = model_of(PS_MODEL_LINEAR, 2, 1);
    float any[3] = {-7.5f, 0, 1e6f};
    ck_assert_int_eq(ps_model_prepare_labels(m, any, 3, NULL, &err), 0);
    ck_assert_float_eq(any[0], -7.5f);
    ps_model_destroy(&m);
}
END_TEST

START_TEST(model_types_not_built_in_are_refused)
{
    ps_model_spec spec = {.type = PS_MODEL_CUSTOM, .features = 64};
    ps_model *m = (ps_model *)1;
    ps_error err;
    ck_assert_int_eq(ps_model_new(&spec, 32, &m, &err), PS_EUNSUPPORTED);
    ck_assert_ptr_null(m);
    ck_assert_str_eq(err.msg, "model type custom is not built into psworker yet (linear, "
                              "logistic, softmax, mlp)");
    spec.type = PS_MODEL_LINEAR;
    spec.features = 0;
    ck_assert_int_eq(ps_model_new(&spec, 32, &m, &err), PS_EINVAL);
    spec = (ps_model_spec){.type = PS_MODEL_SOFTMAX, .features = 4, .classes = 1};
    ck_assert_int_eq(ps_model_new(&spec, 32, &m, &err), PS_EINVAL);
    ck_assert_str_eq(err.msg, "model classes 1 is outside [2, 2147483647)");
    spec = (ps_model_spec){.type = PS_MODEL_MLP, .features = 4, .classes = 3};
    ck_assert_int_eq(ps_model_new(&spec, 32, &m, &err), PS_EINVAL);
    ck_assert_str_eq(err.msg, "an mlp needs 1 to 8 hidden layers, got 0");
    ps_model_destroy(&m); /* NULL: harmless */
}
END_TEST

/* ---- softmax regression and the MLP ---- */

#define NC   3 /* classes */
#define NH1  6 /* units of the first hidden layer */
#define NH2  4 /* units of the second */
#define PMAX (D * NH1 + NH1 + NH1 * NH2 + NH2 + NH2 * NC + NC)

static ps_model *net_of(uint32_t nhidden, size_t max_rows)
{
    ps_model_spec spec = {.type = nhidden ? PS_MODEL_MLP : PS_MODEL_SOFTMAX,
                          .features = D,
                          .classes = NC,
                          .nhidden = nhidden,
                          .hidden = {NH1, NH2}};
    ps_model *m = NULL;
    ps_error err;
    ck_assert_int_eq(ps_model_new(&spec, max_rows, &m, &err), 0);
    return m;
}

/* x and θ uniform in [-1, 1), labels 0..NC-1, from a fixed seed. */
static void random_net_problem(float *x, float *y, float *theta, size_t p)
{
    uint64_t s = 987654321;
    for (size_t i = 0; i < N * D + N + p; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(s >> 40) / (double)(1 << 24);
        if (i < N * D)
            x[i] = (float)(2 * u - 1);
        else if (i < N * D + N)
            y[i - N * D] = (float)(int)(u * NC);
        else
            theta[i - N * D - N] = (float)(2 * u - 1);
    }
}

/* The mean cross-entropy, in double, of a network with layer widths
 * D, hidden..., NC and θ laid out W1 [in, out] row-major, b1, W2, b2, ... */
static double ref_net_loss(uint32_t nhidden, const float *x, const float *y, const double *th)
{
    size_t width[4] = {D, NH1, NH2, NC};
    if (nhidden == 0)
        width[1] = NC;
    double sum = 0.0;
    for (int i = 0; i < N; i++) {
        double a[8], z[8];
        for (int j = 0; j < D; j++)
            a[j] = x[i * D + j];
        size_t off = 0;
        for (uint32_t l = 0; l <= nhidden; l++) {
            size_t in = width[l], out = width[l + 1];
            for (size_t o = 0; o < out; o++) {
                z[o] = th[off + in * out + o];
                for (size_t k = 0; k < in; k++)
                    z[o] += a[k] * th[off + k * out + o];
            }
            off += in * out + out;
            for (size_t o = 0; o < out; o++)
                a[o] = l < nhidden ? (z[o] > 0 ? z[o] : 0) : z[o];
        }
        double top = a[0], se = 0.0;
        for (int c = 1; c < NC; c++)
            top = a[c] > top ? a[c] : top;
        for (int c = 0; c < NC; c++)
            se += exp(a[c] - top);
        sum += top + log(se) - a[(int)y[i]];
    }
    return sum / N;
}

static void assert_net_grad_matches_fd(uint32_t nhidden)
{
    size_t p = nhidden ? PMAX : D * NC + NC;
    float x[N * D], y[N], theta[PMAX], grad[PMAX];
    random_net_problem(x, y, theta, p);
    ps_model *m = net_of(nhidden, N);
    ck_assert_uint_eq(ps_model_num_params(m), p);
    double loss = -1.0;
    ck_assert_int_eq(ps_model_grad(m, theta, x, y, N, grad, &loss), 0);
    double th[PMAX];
    for (size_t k = 0; k < p; k++)
        th[k] = theta[k];
    ck_assert_double_eq_tol(loss, ref_net_loss(nhidden, x, y, th), 1e-5);
    const double eps = 1e-5;
    double diff2 = 0.0, fd2 = 0.0;
    for (size_t k = 0; k < p; k++) {
        double save = th[k];
        th[k] = save + eps;
        double up = ref_net_loss(nhidden, x, y, th);
        th[k] = save - eps;
        double down = ref_net_loss(nhidden, x, y, th);
        th[k] = save;
        double fd = (up - down) / (2 * eps);
        ck_assert_double_le(fabs(grad[k] - fd), 1e-3 * fmax(1.0, fabs(fd)));
        diff2 += (grad[k] - fd) * (grad[k] - fd);
        fd2 += fd * fd;
    }
    ck_assert_double_gt(fd2, 0.0);
    ck_assert_double_le(sqrt(diff2 / fd2), 1e-3);
    ps_model_destroy(&m);
}

START_TEST(softmax_gradient_matches_finite_differences)
{
    assert_net_grad_matches_fd(0);
}
END_TEST

START_TEST(mlp_gradient_matches_finite_differences)
{
    assert_net_grad_matches_fd(2);
}
END_TEST

START_TEST(softmax_tiny_example_has_hand_computed_loss_and_gradient)
{
    /* 1 feature, 2 classes, W = [1, -1], b = [0, 0]; one row x = 1, y = 0:
     * z = (1, -1), p0 = e / (e + 1/e) = 1 / (1 + e^-2); loss = log(1 + e^-2);
     * δ = (p0 - 1, 1 - p0); grad W = x·δ, grad b = δ */
    ps_model_spec spec = {.type = PS_MODEL_SOFTMAX, .features = 1, .classes = 2};
    ps_model *m = NULL;
    ps_error err;
    ck_assert_int_eq(ps_model_new(&spec, 2, &m, &err), 0);
    ck_assert_uint_eq(ps_model_num_params(m), 4);
    float theta[4] = {1, -1, 0, 0}, grad[4], x = 1, y = 0;
    double loss;
    ck_assert_int_eq(ps_model_grad(m, theta, &x, &y, 1, grad, &loss), 0);
    double p0 = 1.0 / (1.0 + exp(-2.0));
    ck_assert_double_eq_tol(loss, log1p(exp(-2.0)), 1e-7);
    ck_assert_float_eq_tol(grad[0], (float)(p0 - 1), 1e-7f);
    ck_assert_float_eq_tol(grad[1], (float)(1 - p0), 1e-7f);
    ck_assert_float_eq_tol(grad[2], (float)(p0 - 1), 1e-7f);
    ck_assert_float_eq_tol(grad[3], (float)(1 - p0), 1e-7f);
    /* two rows, x = (1, 2), y = (1, 0), θ = 0: p = 1/2 everywhere, loss ln 2;
     * δ = ((1/2, -1/2), (-1/2, 1/2)); grad W = (1·δ1 + 2·δ2) / 2 = (-1/4, 1/4),
     * grad b = 0 */
    float xs[2] = {1, 2}, ys[2] = {1, 0}, zero[4] = {0, 0, 0, 0};
    ck_assert_int_eq(ps_model_grad(m, zero, xs, ys, 2, grad, &loss), 0);
    ck_assert_double_eq_tol(loss, log(2.0), 1e-7);
    ck_assert_float_eq(grad[0], -0.25f);
    ck_assert_float_eq(grad[1], 0.25f);
    ck_assert_float_eq(grad[2], 0.0f);
    ck_assert_float_eq(grad[3], 0.0f);
    ck_assert_str_eq(ps_model_name(m), "softmax");
    ck_assert_str_eq(ps_model_loss_name(m), "log_loss");
    ck_assert_str_eq(ps_model_metric_name(m), "accuracy");
    ps_model_destroy(&m);
}
END_TEST

START_TEST(softmax_loss_is_finite_for_huge_scores)
{
    ps_model_spec spec = {.type = PS_MODEL_SOFTMAX, .features = 1, .classes = 2};
    ps_model *m = NULL;
    ps_error err;
    ck_assert_int_eq(ps_model_new(&spec, 1, &m, &err), 0);
    /* z = (1000, -1000): y = 1 costs 2000, gradient -x·(1, -1) per class */
    float theta[4] = {1000, -1000, 0, 0}, grad[4], x = 1, y = 1;
    double loss;
    ck_assert_int_eq(ps_model_grad(m, theta, &x, &y, 1, grad, &loss), 0);
    ck_assert_double_eq_tol(loss, 2000.0, 1e-9);
    ck_assert_float_eq(grad[0], 1.0f);
    ck_assert_float_eq(grad[1], -1.0f);
    y = 0; /* right with certainty */
    ck_assert_int_eq(ps_model_grad(m, theta, &x, &y, 1, grad, &loss), 0);
    ck_assert_double_eq(loss, 0.0);
    ck_assert_float_eq(grad[0], 0.0f);
    ps_model_destroy(&m);
}
END_TEST

START_TEST(softmax_eval_gives_accuracy_and_log_loss)
{
    ps_model_spec spec = {.type = PS_MODEL_SOFTMAX, .features = 2, .classes = 3};
    ps_model *m = NULL;
    ps_error err;
    ck_assert_int_eq(ps_model_new(&spec, 4, &m, &err), 0);
    /* W = I (2 x 3, third column 0), b = 0: the scores of a row are (x0, x1, 0) */
    float theta[9] = {1, 0, 0, 0, 1, 0, 0, 0, 0};
    float x[8] = {2, 1, 0, 3, -1, -2, 1, 1}, y[4] = {0, 1, 2, 0};
    /* predicted 0, 1, 2, 0 (a tie of 1 and 1 goes to the first): all right */
    ps_model_metrics mt;
    ck_assert_int_eq(ps_model_eval(m, theta, x, y, 4, &mt), 0);
    ck_assert_double_eq(mt.metric, 1.0);
    double want = 0.0;
    const double z[4][3] = {{2, 1, 0}, {0, 3, 0}, {-1, -2, 0}, {1, 1, 0}};
    for (int i = 0; i < 4; i++)
        want += log(exp(z[i][0]) + exp(z[i][1]) + exp(z[i][2])) - z[i][(int)y[i]];
    ck_assert_double_eq_tol(mt.loss, want / 4, 1e-6);
    y[3] = 1; /* the tie now counts as wrong */
    ck_assert_int_eq(ps_model_eval(m, theta, x, y, 4, &mt), 0);
    ck_assert_double_eq(mt.metric, 0.75);
    ck_assert(!ps_model_has_auc(m)); /* not a binary classifier: no AUC */
    ck_assert(isnan(mt.auc));
    ps_model_destroy(&m);
}
END_TEST

START_TEST(mlp_chunked_rows_give_the_same_gradient_and_metrics)
{
    float x[N * D], y[N], theta[PMAX], g_whole[PMAX], g_chunked[PMAX];
    random_net_problem(x, y, theta, PMAX);
    ps_model *whole = net_of(2, N);
    ps_model *small = net_of(2, 7); /* 24 rows in 4 chunks */
    double l_whole, l_chunked;
    ck_assert_int_eq(ps_model_grad(whole, theta, x, y, N, g_whole, &l_whole), 0);
    ck_assert_int_eq(ps_model_grad(small, theta, x, y, N, g_chunked, &l_chunked), 0);
    ck_assert_double_eq_tol(l_whole, l_chunked, 1e-6);
    for (int k = 0; k < PMAX; k++)
        ck_assert_float_eq_tol(g_whole[k], g_chunked[k], 1e-5f);
    ps_model_metrics a, b;
    ck_assert_int_eq(ps_model_eval(whole, theta, x, y, N, &a), 0);
    ck_assert_int_eq(ps_model_eval(small, theta, x, y, N, &b), 0);
    ck_assert_double_eq(a.metric, b.metric);
    ck_assert_double_eq_tol(a.loss, b.loss, 1e-6);
    ck_assert_double_eq_tol(a.loss, l_whole, 1e-6);
    ps_model_destroy(&whole);
    ps_model_destroy(&small);
}
END_TEST

START_TEST(net_params_follow_the_job_layout)
{
    ps_job job;
    memset(&job, 0, sizeof job);
    job.model.type = PS_MODEL_MLP;
    job.model.features = 784;
    job.model.classes = 10;
    job.model.nhidden = 2;
    job.model.hidden[0] = 256;
    job.model.hidden[1] = 64;
    ps_tensor_info t[8];
    size_t n;
    uint64_t p;
    ck_assert_int_eq(ps_job_layout(&job, t, 8, &n, &p), 0);
    ps_model_spec spec;
    ps_model_spec_from_job(&job, &spec);
    ps_model *m = NULL;
    ps_error err;
    ck_assert_int_eq(ps_model_new(&spec, 16, &m, &err), 0);
    ck_assert_uint_eq(ps_model_num_params(m), p);
    ck_assert_uint_eq(p, 784 * 256 + 256 + 256 * 64 + 64 + 64 * 10 + 10);
    ck_assert_str_eq(ps_model_name(m), "mlp");
    ps_model_destroy(&m);
    job.model.type = PS_MODEL_SOFTMAX;
    ck_assert_int_eq(ps_job_layout(&job, t, 8, &n, &p), 0);
    ps_model_spec_from_job(&job, &spec);
    ck_assert_int_eq(ps_model_new(&spec, 16, &m, &err), 0);
    ck_assert_uint_eq(ps_model_num_params(m), p);
    ck_assert_uint_eq(p, 7850);
    ps_model_destroy(&m);
}
END_TEST

START_TEST(class_labels_must_be_whole_numbers_below_classes)
{
    ps_model *m = net_of(0, 1);
    ps_error err;
    size_t bad = 99;
    float ok[4] = {0, 2, 1, 2};
    ck_assert_int_eq(ps_model_prepare_labels(m, ok, 4, &bad, &err), 0);
    float high[3] = {0, 1, 3};
    ck_assert_int_eq(ps_model_prepare_labels(m, high, 3, &bad, &err), PS_EDATA);
    ck_assert_uint_eq(bad, 2);
    ck_assert_str_eq(err.msg, "label 3 is outside 0..2");
    float neg = -1;
    ck_assert_int_eq(ps_model_prepare_labels(m, &neg, 1, &bad, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, "label -1 is outside 0..2");
    float frac[2] = {1, 1.5f};
    ck_assert_int_eq(ps_model_prepare_labels(m, frac, 2, &bad, &err), PS_EDATA);
    ck_assert_uint_eq(bad, 1);
    ck_assert_str_eq(err.msg, "label 1.5 is not a whole class number 0..2");
    float nan = NAN;
    ck_assert_int_eq(ps_model_prepare_labels(m, &nan, 1, &bad, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, "label nan is outside 0..2");
    ps_model_destroy(&m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, logistic_gradient_matches_finite_differences);
    tcase_add_test(tc, linear_gradient_matches_finite_differences);
    tcase_add_test(tc, logistic_tiny_example_has_hand_computed_loss_and_gradient);
    tcase_add_test(tc, logistic_loss_is_finite_for_huge_scores);
    tcase_add_test(tc, linear_tiny_example_has_hand_computed_loss_and_gradient);
    tcase_add_test(tc, logistic_eval_gives_accuracy_and_log_loss);
    tcase_add_test(tc, linear_eval_gives_mse_and_r2);
    tcase_add_test(tc, chunked_rows_give_the_same_gradient_and_metrics);
    tcase_add_test(tc, logistic_labels_read_minus_one_as_zero_and_refuse_others);
    tcase_add_test(tc, model_types_not_built_in_are_refused);
    tcase_add_test(tc, softmax_gradient_matches_finite_differences);
    tcase_add_test(tc, mlp_gradient_matches_finite_differences);
    tcase_add_test(tc, softmax_tiny_example_has_hand_computed_loss_and_gradient);
    tcase_add_test(tc, softmax_loss_is_finite_for_huge_scores);
    tcase_add_test(tc, softmax_eval_gives_accuracy_and_log_loss);
    tcase_add_test(tc, mlp_chunked_rows_give_the_same_gradient_and_metrics);
    tcase_add_test(tc, net_params_follow_the_job_layout);
    tcase_add_test(tc, class_labels_must_be_whole_numbers_below_classes);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
