/* test_sparse_model.c — the sparse models: a batch's sorted unique keys
 * (hand batches and 39 k hashed keys against qsort), hand-computed losses
 * and gradients, gradients against central finite differences of an
 * independent float64 loss (sparse_logistic, fm), the fm's sum trick
 * against the pairwise sum, duplicate keys, empty rows, the batch limits
 * and the evaluation metrics. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sparse_model.h"

static ps_sparse_model *model_of(ps_model_type type, uint32_t factors, size_t max_rows,
                                 size_t max_features)
{
    ps_sparse_spec spec = {.type = type, .factors = factors};
    ps_sparse_model *m = NULL;
    ps_error err;
    ck_assert_int_eq(ps_sparse_model_new(&spec, max_rows, max_features, &m, &err), 0);
    ck_assert_ptr_nonnull(m);
    return m;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float rng_unit(uint64_t *s)
{
    return (float)((rng_next(s) >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
}

/* ---- the batch's keys ---- */

START_TEST(batch_keys_are_sorted_unique_with_each_occurrences_index)
{
    ps_sparse_model *m = model_of(PS_MODEL_SPARSE_LOGISTIC, 0, 4, 16);
    /* rows [7, 3, 7], [42], [], [3, 2^63] */
    uint64_t keys[] = {7, 3, 7, 42, 3, 1ull << 63};
    size_t off[] = {0, 3, 4, 4, 6};
    ps_sparse_batch b = {.rows = 4, .offsets = off, .keys = keys};
    const uint64_t *u = NULL;
    size_t nu = 0;
    ck_assert_int_eq(ps_sparse_model_keys(m, &b, &u, &nu), 0);
    ck_assert_uint_eq(nu, 4);
    const uint64_t want[] = {3, 7, 42, 1ull << 63};
    for (size_t i = 0; i < 4; i++)
        ck_assert_uint_eq(u[i], want[i]);
    /* each occurrence reaches its key's row: w = index + 1, so the scores
     * tell which rows each occurrence read */
    const float rows[] = {1, 2, 3, 4}; /* w_3 = 1, w_7 = 2, w_42 = 3, w_2^63 = 4 */
    float scores[4];
    ck_assert_int_eq(ps_sparse_model_predict(m, &b, rows, 0.0f, scores, NULL), 0);
    ck_assert_float_eq(scores[0], (float)(1.0 / (1.0 + exp(-5.0)))); /* 2 + 1 + 2 */
    ck_assert_float_eq(scores[1], (float)(1.0 / (1.0 + exp(-3.0))));
    ck_assert_float_eq(scores[2], 0.5f);
    ck_assert_float_eq(scores[3], (float)(1.0 / (1.0 + exp(-5.0)))); /* 1 + 4 */
    ps_sparse_model_destroy(&m);
    ck_assert_ptr_null(m);
    ps_sparse_model_destroy(&m); /* NULL: harmless */
}
END_TEST

static int key_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Takes the keys of one row of n keys and checks them against qsort's
 * sorted unique keys, and each occurrence's row through the gradient:
 * with w = 0, b = 0, y = 1 and value x_j = 1, row k's gradient is -1/2
 * times its occurrences. */
static void assert_keys_match_qsort(ps_sparse_model *m, uint64_t *keys, size_t n)
{
    uint64_t *ref = malloc((n + 1) * sizeof *ref);
    ck_assert_ptr_nonnull(ref);
    memcpy(ref, keys, n * sizeof *ref);
    qsort(ref, n, sizeof *ref, key_cmp);
    size_t nref = 0;
    for (size_t j = 0; j < n; j++)
        if (nref == 0 || ref[j] != ref[nref - 1])
            ref[nref++] = ref[j];
    size_t off[2] = {0, n};
    float label = 1.0f;
    ps_sparse_batch b = {.rows = 1, .offsets = off, .keys = keys, .labels = &label};
    const uint64_t *u = NULL;
    size_t nu = 0;
    ck_assert_int_eq(ps_sparse_model_keys(m, &b, &u, &nu), 0);
    ck_assert_uint_eq(nu, nref);
    ck_assert_int_eq(memcmp(u, ref, nu * sizeof *u), 0);
    float *rows = calloc(nu + 1, sizeof *rows), *grad = calloc(nu + 1, sizeof *grad), gb;
    ck_assert(rows && grad);
    ck_assert_int_eq(ps_sparse_model_grad(m, &b, rows, 0.0f, grad, &gb, NULL), 0);
    /* occurrences of each key, counted from the sorted copy */
    size_t at = 0;
    memcpy(ref, keys, n * sizeof *ref);
    qsort(ref, n, sizeof *ref, key_cmp);
    for (size_t k = 0; k < nu; k++) {
        size_t c = 0;
        while (at < n && ref[at] == u[k]) {
            at++;
            c++;
        }
        ck_assert_float_eq(grad[k], -0.5f * (float)c);
    }
    ck_assert_uint_eq(at, n);
    free(rows);
    free(grad);
    free(ref);
}

START_TEST(batch_keys_of_39k_hashed_and_clustered_keys_match_qsort)
{
    enum { N = 39000 };
    ps_sparse_model *m = model_of(PS_MODEL_SPARSE_LOGISTIC, 0, 1000, N);
    uint64_t *keys = malloc(N * sizeof *keys);
    ck_assert_ptr_nonnull(keys);
    uint64_t s = 7;
    /* hashes drawn from a pool of 15000, so most keys repeat */
    for (size_t j = 0; j < N; j++) {
        uint64_t pick = rng_next(&s) % 15000;
        keys[j] = pick * 0x9e3779b97f4a7c15ull ^ (pick << 17);
    }
    assert_keys_match_qsort(m, keys, N);
    /* small keys: they differ in their low 7 bits only */
    for (size_t j = 0; j < N; j++)
        keys[j] = rng_next(&s) % 100;
    assert_keys_match_qsort(m, keys, N);
    /* one key repeated, but for a few */
    for (size_t j = 0; j < N; j++)
        keys[j] = j % 5000 == 17 ? j : 0xfeedfacecafebeefull;
    assert_keys_match_qsort(m, keys, N);
    /* keys that differ in their top and bottom bits only */
    for (size_t j = 0; j < N; j++)
        keys[j] = (rng_next(&s) & 0xf000000000000003ull) | 0x0123456789abcdc0ull;
    assert_keys_match_qsort(m, keys, N);
    /* all distinct, in descending order */
    for (size_t j = 0; j < N; j++)
        keys[j] = UINT64_MAX - j * 3;
    assert_keys_match_qsort(m, keys, N);
    assert_keys_match_qsort(m, keys, 1);
    assert_keys_match_qsort(m, keys, 0);
    free(keys);
    ps_sparse_model_destroy(&m);
}
END_TEST

START_TEST(batch_of_max_features_works_and_one_more_is_refused)
{
    ps_sparse_model *m = model_of(PS_MODEL_FM, 2, 3, 5);
    uint64_t keys[] = {1, 2, 3, 4, 5, 6};
    float labels[] = {1, 0, 1};
    size_t off[] = {0, 2, 5, 5};
    ps_sparse_batch b = {.rows = 3, .offsets = off, .keys = keys, .labels = labels};
    const uint64_t *u;
    size_t nu;
    ck_assert_int_eq(ps_sparse_model_keys(m, &b, &u, &nu), 0);
    ck_assert_uint_eq(nu, 5);
    float rows[5 * 3] = {0}, grad[5 * 3], gb;
    double loss;
    ck_assert_int_eq(ps_sparse_model_grad(m, &b, rows, 0.0f, grad, &gb, &loss), 0);
    off[3] = 6; /* 6 features: one more than the model takes */
    ck_assert_int_eq(ps_sparse_model_keys(m, &b, &u, &nu), PS_EINVAL);
    /* the refused batch's keys were not taken: no gradient of it */
    ck_assert_int_eq(ps_sparse_model_grad(m, &b, rows, 0.0f, grad, &gb, &loss), PS_EINVAL);
    /* a row past max_rows, offsets that go back */
    size_t off4[] = {0, 1, 2, 3, 4};
    ps_sparse_batch b4 = {.rows = 4, .offsets = off4, .keys = keys, .labels = labels};
    ck_assert_int_eq(ps_sparse_model_keys(m, &b4, &u, &nu), PS_EINVAL);
    size_t back[] = {0, 3, 2, 4};
    ps_sparse_batch bb = {.rows = 3, .offsets = back, .keys = keys, .labels = labels};
    ck_assert_int_eq(ps_sparse_model_keys(m, &bb, &u, &nu), PS_EINVAL);
    /* offsets into a larger array: rows [2, 3], [4, 5, 6] of keys */
    size_t mid[] = {1, 3, 6};
    ps_sparse_batch bm = {.rows = 2, .offsets = mid, .keys = keys, .labels = labels};
    ck_assert_int_eq(ps_sparse_model_keys(m, &bm, &u, &nu), 0);
    ck_assert_uint_eq(nu, 5);
    ck_assert_uint_eq(u[0], 2);
    ck_assert_uint_eq(u[4], 6);
    ps_sparse_model_destroy(&m);
}
END_TEST

START_TEST(model_new_refuses_dense_types_and_sizes_out_of_bounds)
{
    ps_sparse_model *m = (ps_sparse_model *)1;
    ps_error err;
    ps_sparse_spec spec = {.type = PS_MODEL_LOGISTIC};
    ck_assert_int_eq(ps_sparse_model_new(&spec, 8, 8, &m, &err), PS_EUNSUPPORTED);
    ck_assert_ptr_null(m);
    ck_assert_str_eq(err.msg, "model type logistic is not a sparse model");
    spec = (ps_sparse_spec){.type = PS_MODEL_FM, .factors = 0};
    ck_assert_int_eq(ps_sparse_model_new(&spec, 8, 8, &m, &err), PS_EINVAL);
    ck_assert_str_eq(err.msg, "fm factors 0 is outside [1, 1023]");
    spec.factors = 1024;
    ck_assert_int_eq(ps_sparse_model_new(&spec, 8, 8, &m, &err), PS_EINVAL);
    spec.factors = 4;
    ck_assert_int_eq(ps_sparse_model_new(&spec, 8, 0, &m, &err), PS_EINVAL);
    ck_assert_str_eq(err.msg, "a sparse batch of 8 rows and 0 features: each must be in [1, 2^32)");
    ck_assert_int_eq(ps_sparse_model_new(&spec, 0, 8, &m, &err), PS_EINVAL);
    ck_assert_int_eq(ps_sparse_model_new(&spec, 8, (size_t)UINT32_MAX + 1, &m, &err), PS_EINVAL);
    ck_assert_ptr_null(m);
    static ps_job job; /* the job's model section makes the spec */
    job.model.type = PS_MODEL_FM;
    job.model.factors = 4;
    ps_sparse_spec_from_job(&job, &spec);
    ck_assert_int_eq(spec.type, PS_MODEL_FM);
    ck_assert_uint_eq(spec.factors, 4);
    ck_assert_int_eq(ps_sparse_model_new(&spec, 8, 8, &m, &err), 0);
    ck_assert_uint_eq(ps_sparse_model_dim(m), 5);
    ck_assert_str_eq(ps_sparse_model_name(m), "fm");
    ps_sparse_model_destroy(&m);
    m = model_of(PS_MODEL_SPARSE_LOGISTIC, 0, 8, 8);
    ck_assert_uint_eq(ps_sparse_model_dim(m), 1);
    ck_assert_str_eq(ps_sparse_model_name(m), "sparse_logistic");
    ps_sparse_model_destroy(&m);
}
END_TEST

/* ---- sparse_logistic ---- */

START_TEST(sparse_logistic_tiny_example_has_hand_computed_loss_and_gradient)
{
    ps_sparse_model *m = model_of(PS_MODEL_SPARSE_LOGISTIC, 0, 2, 4);
    /* row 0: key 10 (x 2), key 20 (x 1), y 1; row 1: key 20 (x 1), y 0 */
    uint64_t keys[] = {10, 20, 20};
    float x[] = {2, 1, 1}, y[] = {1, 0};
    size_t off[] = {0, 2, 3};
    ps_sparse_batch b = {.rows = 2, .offsets = off, .keys = keys, .values = x, .labels = y};
    const uint64_t *u;
    size_t nu;
    ck_assert_int_eq(ps_sparse_model_keys(m, &b, &u, &nu), 0);
    ck_assert_uint_eq(nu, 2);
    /* w = 0, b = 0: p = 1/2, loss ln 2; ∂/∂ŷ = (-1/2, 1/2) / 2;
     * grad w_10 = -1/4·2 = -1/2, w_20 = -1/4 + 1/4 = 0, b = 0 */
    float rows[2] = {0, 0}, grad[2], gb;
    double loss;
    ck_assert_int_eq(ps_sparse_model_grad(m, &b, rows, 0.0f, grad, &gb, &loss), 0);
    ck_assert_double_eq_tol(loss, log(2.0), 1e-12);
    ck_assert_float_eq(grad[0], -0.5f);
    ck_assert_float_eq(grad[1], 0.0f);
    ck_assert_float_eq(gb, 0.0f);
    /* w_10 = 1/2, w_20 = -1, b = 0: ŷ = (0, -1); loss (ln 2 + softplus(-1)) / 2;
     * ∂/∂ŷ = (-1/2, σ(-1)) / 2 */
    rows[0] = 0.5f;
    rows[1] = -1.0f;
    ck_assert_int_eq(ps_sparse_model_grad(m, &b, rows, 0.0f, grad, &gb, &loss), 0);
    double s1 = 1.0 / (1.0 + exp(1.0));
    ck_assert_double_eq_tol(loss, (log(2.0) + log1p(exp(-1.0))) / 2.0, 1e-12);
    ck_assert_float_eq_tol(grad[0], -0.5f, 1e-7f);
    ck_assert_float_eq_tol(grad[1], (float)(-0.25 + s1 / 2.0), 1e-7f);
    ck_assert_float_eq_tol(gb, (float)(-0.25 + s1 / 2.0), 1e-7f);
    ps_sparse_model_destroy(&m);
}
END_TEST

/* A random batch: rows of 0 to 6 features, keys from a pool of 9 (so keys
 * repeat within and across rows), values in [-1, 1) or NULL, labels 0/1. */
#define R      12
#define NNZMAX (R * 6)
typedef struct rand_batch {
    uint64_t keys[NNZMAX];
    float values[NNZMAX];
    float labels[R];
    size_t off[R + 1];
    ps_sparse_batch b;
} rand_batch;

static void rand_batch_make(rand_batch *rb, uint64_t seed, bool values)
{
    uint64_t s = seed;
    size_t nnz = 0;
    rb->off[0] = 0;
    for (size_t i = 0; i < R; i++) {
        size_t k = rng_next(&s) % 7;
        for (size_t j = 0; j < k; j++) {
            rb->keys[nnz] = (rng_next(&s) % 9) * 0x0101010101010101ull;
            rb->values[nnz] = rng_unit(&s);
            nnz++;
        }
        rb->off[i + 1] = nnz;
        rb->labels[i] = rng_next(&s) & 1 ? 1.0f : 0.0f;
    }
    rb->b = (ps_sparse_batch){.rows = R,
                              .offsets = rb->off,
                              .keys = rb->keys,
                              .values = values ? rb->values : NULL,
                              .labels = rb->labels};
}

/* The mean log-loss by brute force in double: ŷ = b + Σ w x + Σ_{i<j}
 * <v_i, v_j> x_i x_j over the occurrences of each row, the rows looked up
 * by key in u. */
static double ref_loss(const ps_sparse_batch *b, const uint64_t *u, size_t nu, const double *rows,
                       uint32_t dim, double bias)
{
    double sum = 0.0;
    for (size_t i = 0; i < b->rows; i++) {
        double z = bias;
        for (size_t p = b->offsets[i]; p < b->offsets[i + 1]; p++) {
            size_t kp = 0;
            while (kp < nu && u[kp] != b->keys[p])
                kp++;
            ck_assert_uint_lt(kp, nu);
            double xp = b->values ? b->values[p] : 1.0;
            z += rows[kp * dim] * xp;
            for (size_t q = p + 1; q < b->offsets[i + 1]; q++) {
                size_t kq = 0;
                while (kq < nu && u[kq] != b->keys[q])
                    kq++;
                double xq = b->values ? b->values[q] : 1.0, dot = 0.0;
                for (uint32_t f = 1; f < dim; f++)
                    dot += rows[kp * dim + f] * rows[kq * dim + f];
                z += dot * xp * xq;
            }
        }
        sum += log1p(exp(-fabs(z))) + (z > 0 ? z : 0) - b->labels[i] * z;
    }
    return sum / (double)b->rows;
}

static void assert_grad_matches_fd(ps_model_type type, uint32_t factors, bool values)
{
    rand_batch rb;
    rand_batch_make(&rb, 99 + factors, values);
    ps_sparse_model *m = model_of(type, factors, R, NNZMAX);
    uint32_t dim = ps_sparse_model_dim(m);
    const uint64_t *u;
    size_t nu;
    ck_assert_int_eq(ps_sparse_model_keys(m, &rb.b, &u, &nu), 0);
    ck_assert_uint_le(nu, 9);
    float rows[9 * 8], grad[9 * 8], gb;
    double th[9 * 8];
    uint64_t s = 5;
    for (size_t k = 0; k < nu * dim; k++) {
        rows[k] = rng_unit(&s);
        th[k] = rows[k];
    }
    float bias = 0.25f;
    double loss;
    ck_assert_int_eq(ps_sparse_model_grad(m, &rb.b, rows, bias, grad, &gb, &loss), 0);
    ck_assert_double_eq_tol(loss, ref_loss(&rb.b, u, nu, th, dim, bias), 1e-6);
    const double eps = 1e-4;
    double diff2 = 0.0, fd2 = 0.0;
    for (size_t k = 0; k <= nu * dim; k++) { /* the last: the bias */
        double *p = NULL, b = bias;
        p = k < nu * dim ? &th[k] : &b;
        double save = *p;
        *p = save + eps;
        double up = ref_loss(&rb.b, u, nu, th, dim, b);
        *p = save - eps;
        double down = ref_loss(&rb.b, u, nu, th, dim, b);
        *p = save;
        double fd = (up - down) / (2 * eps);
        double g = k < nu * dim ? grad[k] : gb;
        ck_assert_double_le(fabs(g - fd), 1e-3 * fmax(1.0, fabs(fd)));
        diff2 += (g - fd) * (g - fd);
        fd2 += fd * fd;
    }
    ck_assert_double_gt(fd2, 0.0);
    ck_assert_double_le(sqrt(diff2 / fd2), 1e-3);
    ps_sparse_model_destroy(&m);
}

START_TEST(sparse_logistic_gradient_matches_finite_differences)
{
    assert_grad_matches_fd(PS_MODEL_SPARSE_LOGISTIC, 0, true);
    assert_grad_matches_fd(PS_MODEL_SPARSE_LOGISTIC, 0, false);
}
END_TEST

/* ---- the factorization machine ---- */

START_TEST(fm_gradient_matches_finite_differences)
{
    assert_grad_matches_fd(PS_MODEL_FM, 3, true);
    assert_grad_matches_fd(PS_MODEL_FM, 7, false);
    assert_grad_matches_fd(PS_MODEL_FM, 1, true);
}
END_TEST

START_TEST(fm_sum_trick_equals_the_pairwise_sum)
{
    /* by hand: one row of keys 1, 2, 3 (x 1), K = 2, w = 0, b = 0,
     * v_1 = (1, 0), v_2 = (0, 1), v_3 = (1, 1): the pairs give <v_1, v_2> +
     * <v_1, v_3> + <v_2, v_3> = 0 + 1 + 1 = 2 */
    ps_sparse_model *m = model_of(PS_MODEL_FM, 2, 1, 3);
    uint64_t keys[] = {3, 1, 2};
    size_t off[] = {0, 3};
    ps_sparse_batch b = {.rows = 1, .offsets = off, .keys = keys};
    const uint64_t *u;
    size_t nu;
    ck_assert_int_eq(ps_sparse_model_keys(m, &b, &u, &nu), 0);
    const float rows[] = {0, 1, 0, /* key 1 */ 0, 0, 1, /* key 2 */ 0, 1, 1 /* key 3 */};
    float p;
    ck_assert_int_eq(ps_sparse_model_predict(m, &b, rows, 0.0f, &p, NULL), 0);
    ck_assert_float_eq(p, (float)(1.0 / (1.0 + exp(-2.0))));
    ps_sparse_model_destroy(&m);
    /* random batches with values: the loss (from ŷ) agrees with the
     * pairwise sum in double for several K */
    for (uint32_t k = 1; k <= 6; k++) {
        rand_batch rb;
        rand_batch_make(&rb, 1000 + k, true);
        m = model_of(PS_MODEL_FM, k, R, NNZMAX);
        ck_assert_int_eq(ps_sparse_model_keys(m, &rb.b, &u, &nu), 0);
        float r[9 * 7], g[9 * 7], gb;
        double th[9 * 7], loss;
        uint64_t s = k;
        for (size_t i = 0; i < nu * (k + 1); i++)
            th[i] = r[i] = 2.0f * rng_unit(&s);
        ck_assert_int_eq(ps_sparse_model_grad(m, &rb.b, r, -0.5f, g, &gb, &loss), 0);
        ck_assert_double_eq_tol(loss, ref_loss(&rb.b, u, nu, th, k + 1, -0.5), 1e-5);
        ps_sparse_model_destroy(&m);
    }
}
END_TEST

/* The gradient of a batch with a key twice in row 0 and once in row 1
 * equals the sum over keys 5, 6, 7 of the same batch with them distinct
 * and equal rows. */
static void assert_duplicates_accumulate(ps_model_type type, uint32_t factors)
{
    uint64_t dup[] = {5, 9, 5, 5}, distinct[] = {5, 9, 6, 7};
    float x[] = {0.5f, -1.0f, 2.0f, 1.5f}, y[] = {1, 0};
    size_t off[] = {0, 3, 4};
    ps_sparse_batch bd = {.rows = 2, .offsets = off, .keys = dup, .values = x, .labels = y};
    ps_sparse_batch bs = {.rows = 2, .offsets = off, .keys = distinct, .values = x, .labels = y};
    ps_sparse_model *m = model_of(type, factors, 2, 4);
    uint32_t dim = ps_sparse_model_dim(m);
    const float row5[4] = {0.3f, -0.2f, 0.4f, 0.1f}, row9[4] = {-0.6f, 0.5f, 0.2f, -0.3f};
    float rd[2 * 4], rs[4 * 4], gd[2 * 4], gs[4 * 4], gbd, gbs;
    /* dup's keys: 5, 9; distinct's: 5, 6, 7, 9 */
    memcpy(rd, row5, dim * sizeof(float));
    memcpy(rd + dim, row9, dim * sizeof(float));
    for (int k = 0; k < 3; k++)
        memcpy(rs + k * dim, row5, dim * sizeof(float));
    memcpy(rs + 3 * dim, row9, dim * sizeof(float));
    const uint64_t *u;
    size_t nu;
    double ld, ls;
    ck_assert_int_eq(ps_sparse_model_keys(m, &bd, &u, &nu), 0);
    ck_assert_uint_eq(nu, 2);
    ck_assert_int_eq(ps_sparse_model_grad(m, &bd, rd, 0.1f, gd, &gbd, &ld), 0);
    ck_assert_int_eq(ps_sparse_model_keys(m, &bs, &u, &nu), 0);
    ck_assert_uint_eq(nu, 4);
    ck_assert_int_eq(ps_sparse_model_grad(m, &bs, rs, 0.1f, gs, &gbs, &ls), 0);
    ck_assert_double_eq_tol(ld, ls, 1e-12);
    ck_assert_float_eq_tol(gbd, gbs, 1e-7f);
    for (uint32_t f = 0; f < dim; f++) {
        ck_assert_float_eq_tol(gd[f], gs[f] + gs[dim + f] + gs[2 * dim + f], 1e-6f);
        ck_assert_float_eq_tol(gd[dim + f], gs[3 * dim + f], 1e-6f);
        ck_assert_float_ne(gd[f], 0.0f);
    }
    ps_sparse_model_destroy(&m);
}

START_TEST(duplicate_keys_in_a_row_and_across_rows_accumulate_into_one_rows_gradient)
{
    assert_duplicates_accumulate(PS_MODEL_SPARSE_LOGISTIC, 0);
    assert_duplicates_accumulate(PS_MODEL_FM, 3);
}
END_TEST

START_TEST(empty_rows_give_the_bias_only_prediction)
{
    for (int fm = 0; fm < 2; fm++) {
        ps_sparse_model *m =
            model_of(fm ? PS_MODEL_FM : PS_MODEL_SPARSE_LOGISTIC, fm ? 2 : 0, 3, 2);
        /* rows [], [4], []: one key */
        uint64_t keys[] = {4};
        float y[] = {1, 0, 0};
        size_t off[] = {0, 0, 1, 1};
        ps_sparse_batch b = {.rows = 3, .offsets = off, .keys = keys, .labels = y};
        const uint64_t *u;
        size_t nu;
        ck_assert_int_eq(ps_sparse_model_keys(m, &b, &u, &nu), 0);
        ck_assert_uint_eq(nu, 1);
        const float rows[3] = {2.0f, 1.0f, 1.0f};
        float p[3], g[3], gb;
        double loss;
        ck_assert_int_eq(ps_sparse_model_predict(m, &b, rows, -1.0f, p, NULL), 0);
        float bias_only = (float)(1.0 / (1.0 + exp(1.0)));
        ck_assert_float_eq(p[0], bias_only);
        ck_assert_float_eq(p[2], bias_only);
        ck_assert_float_eq(p[1], (float)(1.0 / (1.0 + exp(-1.0)))); /* -1 + 2; one key: no pairs */
        ck_assert_int_eq(ps_sparse_model_grad(m, &b, rows, -1.0f, g, &gb, &loss), 0);
        /* only row 1 reaches key 4: ∂/∂w_4 = (σ(1) - 0) / 3 */
        ck_assert_float_eq_tol(g[0], (float)(1.0 / (1.0 + exp(-1.0)) / 3.0), 1e-7f);
        double want_b =
            ((1.0 / (1.0 + exp(1.0)) - 1.0) + 1.0 / (1.0 + exp(-1.0)) + 1.0 / (1.0 + exp(1.0))) /
            3.0;
        ck_assert_float_eq_tol(gb, (float)want_b, 1e-7f);
        ps_sparse_model_destroy(&m);
    }
}
END_TEST

START_TEST(grad_and_predict_need_the_batch_whose_keys_were_taken)
{
    ps_sparse_model *m = model_of(PS_MODEL_SPARSE_LOGISTIC, 0, 2, 4);
    uint64_t keys[] = {1, 2};
    float y[] = {1, 0};
    size_t off[] = {0, 1, 2}, other[] = {0, 1, 2};
    ps_sparse_batch b = {.rows = 2, .offsets = off, .keys = keys, .labels = y};
    float rows[2] = {0}, g[2], gb, p[2];
    ck_assert_int_eq(ps_sparse_model_grad(m, &b, rows, 0.0f, g, &gb, NULL), PS_EINVAL);
    const uint64_t *u;
    size_t nu;
    ck_assert_int_eq(ps_sparse_model_keys(m, &b, &u, &nu), 0);
    ps_sparse_batch c = b;
    c.offsets = other;
    ck_assert_int_eq(ps_sparse_model_grad(m, &c, rows, 0.0f, g, &gb, NULL), PS_EINVAL);
    ck_assert_int_eq(ps_sparse_model_predict(m, &c, rows, 0.0f, p, NULL), PS_EINVAL);
    c = b;
    c.labels = NULL; /* predicts, but has no loss */
    ck_assert_int_eq(ps_sparse_model_grad(m, &c, rows, 0.0f, g, &gb, NULL), PS_EINVAL);
    ck_assert_int_eq(ps_sparse_model_predict(m, &c, rows, 0.0f, p, NULL), 0);
    ck_assert_int_eq(ps_sparse_model_grad(m, &b, rows, 0.0f, g, &gb, NULL), 0);
    ps_sparse_model_destroy(&m);
}
END_TEST

/* ---- evaluation ---- */

START_TEST(eval_over_batches_gives_log_loss_accuracy_and_auc)
{
    ps_sparse_model *m = model_of(PS_MODEL_SPARSE_LOGISTIC, 0, 2, 2);
    /* four rows of one key each, in two batches of two: ŷ = w_k, b = 0;
     * w = (2.2, -0.4) then (0.4, -2.2) for labels (1, 0) then (1, 0):
     * positives score σ(2.2), σ(0.4); negatives σ(-0.4), σ(-2.2) */
    uint64_t keys[] = {1, 2};
    size_t off[] = {0, 1, 2};
    float y[] = {1, 0};
    ps_sparse_batch b = {.rows = 2, .offsets = off, .keys = keys, .labels = y};
    const float w1[] = {2.2f, -0.4f}, w2[] = {0.4f, -2.2f};
    float scores[4], labels[4] = {1, 0, 1, 0};
    ps_sparse_eval ev = {0};
    const uint64_t *u;
    size_t nu;
    ck_assert_int_eq(ps_sparse_model_keys(m, &b, &u, &nu), 0);
    ck_assert_int_eq(ps_sparse_model_predict(m, &b, w1, 0.0f, scores, &ev), 0);
    ck_assert_int_eq(ps_sparse_model_keys(m, &b, &u, &nu), 0);
    ck_assert_int_eq(ps_sparse_model_predict(m, &b, w2, 0.0f, scores + 2, &ev), 0);
    ck_assert_uint_eq(ev.rows, 4);
    ck_assert_uint_eq(ev.correct, 4);
    ps_model_metrics mt;
    ck_assert_int_eq(ps_sparse_model_metrics(&ev, scores, labels, 4, &mt), 0);
    double want = 2.0 * (log1p(exp(-2.2)) + log1p(exp(-0.4))) / 4.0;
    ck_assert_double_eq_tol(mt.loss, want, 1e-7);
    ck_assert_double_eq(mt.metric, 1.0);
    ck_assert_double_eq(mt.auc, 1.0); /* every positive above every negative */
    /* the positive of the second batch now scores below the first negative:
     * 3 of 4 pairs ranked right, and 3 of 4 rows right */
    const float w3[] = {-0.6f, -2.2f};
    ev = (ps_sparse_eval){0};
    ck_assert_int_eq(ps_sparse_model_keys(m, &b, &u, &nu), 0);
    ck_assert_int_eq(ps_sparse_model_predict(m, &b, w1, 0.0f, scores, &ev), 0);
    ck_assert_int_eq(ps_sparse_model_keys(m, &b, &u, &nu), 0);
    ck_assert_int_eq(ps_sparse_model_predict(m, &b, w3, 0.0f, scores + 2, &ev), 0);
    ck_assert_int_eq(ps_sparse_model_metrics(&ev, scores, labels, 4, &mt), 0);
    ck_assert_double_eq(mt.auc, 0.75);
    ck_assert_double_eq(mt.metric, 0.75);
    ck_assert_int_eq(ps_sparse_model_metrics(&ev, scores, labels, 3, &mt), PS_EINVAL);
    ck_assert_int_eq(ps_sparse_model_metrics(&ev, scores, labels, 0, &mt), PS_EINVAL);
    ps_sparse_model_destroy(&m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sparse_model");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, batch_keys_are_sorted_unique_with_each_occurrences_index);
    tcase_add_test(tc, batch_keys_of_39k_hashed_and_clustered_keys_match_qsort);
    tcase_add_test(tc, batch_of_max_features_works_and_one_more_is_refused);
    tcase_add_test(tc, model_new_refuses_dense_types_and_sizes_out_of_bounds);
    tcase_add_test(tc, sparse_logistic_tiny_example_has_hand_computed_loss_and_gradient);
    tcase_add_test(tc, sparse_logistic_gradient_matches_finite_differences);
    tcase_add_test(tc, fm_gradient_matches_finite_differences);
    tcase_add_test(tc, fm_sum_trick_equals_the_pairwise_sum);
    tcase_add_test(tc, duplicate_keys_in_a_row_and_across_rows_accumulate_into_one_rows_gradient);
    tcase_add_test(tc, empty_rows_give_the_bias_only_prediction);
    tcase_add_test(tc, grad_and_predict_need_the_batch_whose_keys_were_taken);
    tcase_add_test(tc, eval_over_batches_gives_log_loss_accuracy_and_auc);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
