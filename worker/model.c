/* model.c — the built-in models with OpenBLAS. Linear and logistic
 * regression over θ = [w, b]: one sgemv forward (X·w), one backward (Xᵀ·r)
 * per chunk of rows. Softmax regression and the MLP are one dense network of
 * sgemm layers (softmax: no hidden layer) with ReLU and a log-softmax output.
 * Each model kind is a row of ops; a kind without a row is "not built in". */
#include "model.h"

#include "auc.h"
#include "sigmoid.h"
#include "util.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows per BLAS call at most: keeps sgemv's int dimensions safe and the
 * work buffer bounded whatever the caller asks for. */
#define CHUNK_ROWS_MAX ((size_t)1 << 20)
/* Rows per chunk of a dense network: its buffers hold every layer's
 * activations, so larger inputs (a whole shard, the test set) go through
 * in chunks of this many rows. */
#define NET_CHUNK_ROWS_MAX ((size_t)2048)
#define NET_LAYERS_MAX     (PS_MAX_HIDDEN + 1)

typedef struct model_ops {
    const char *name;
    const char *loss_name;
    const char *metric_name;
    /* Sets up the kind's sizes and work buffers for m->chunk rows. */
    int (*init)(ps_model *m, ps_error *err);
    /* Checks and maps labels in place; on error *bad is the 0-based row. */
    int (*prepare_labels)(const ps_model *m, float *y, size_t n, size_t *bad, ps_error *err);
    /* Adds the gradient of the summed loss over n <= chunk rows to grad
     * and returns the summed loss. */
    double (*grad_sum)(ps_model *m, const float *theta, const float *X, const float *y, size_t n,
                       float *grad);
    /* Loss, metric and (has_auc) AUC over n rows; 0 or PS_ENOMEM. */
    int (*eval)(ps_model *m, const float *theta, const float *X, const float *y, size_t n,
                ps_model_metrics *out);
    bool has_auc; /* a binary classifier: its evaluation gives an AUC */
} model_ops;

/* One layer of a dense network: W [in, out] at w_off, then b [out]. */
typedef struct net_layer {
    size_t in, out;
    uint64_t w_off, b_off;
    float *act; /* chunk x out: pre-activations, then activations (hidden) or
                 * logits, then the loss's derivative (output) */
} net_layer;

struct ps_model {
    const model_ops *ops;
    ps_model_spec spec;
    uint64_t num_params;
    size_t chunk;  /* rows the work buffers hold */
    float *z;      /* glm: chunk scores, then residuals */
    float *scores; /* logistic: every row's score for the AUC when n > chunk */
    size_t scores_cap;
    /* dense networks (softmax, mlp) */
    uint32_t nlayers;
    net_layer layer[NET_LAYERS_MAX];
    float *scratch; /* chunk x widest hidden layer: δ before the ReLU mask */
    float *ones;    /* chunk ones: bias gradients as sgemv */
    float *block;   /* every buffer above, one allocation */
};

/* ---- shared pieces of the generalised linear models ---- */

static int glm_init(ps_model *m, ps_error *err)
{
    m->num_params = m->spec.features + 1;
    m->z = malloc(m->chunk * sizeof(float));
    if (m->z == NULL)
        return ps_error_set(err, PS_ENOMEM, "out of memory for the model's buffers");
    return 0;
}

/* m->z[i] = x_i·w + b for the n rows of X. */
static void glm_forward(ps_model *m, const float *theta, const float *X, size_t n)
{
    int d = (int)m->spec.features;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, d, 1.0f, X, d, theta, 1, 0.0f, m->z, 1);
    float b = theta[d];
    for (size_t i = 0; i < n; i++)
        m->z[i] += b;
}

/* grad_w += alpha·Xᵀr, grad_b += alpha·Σr, with r in m->z. */
static void glm_backward(ps_model *m, const float *X, size_t n, float alpha, float *grad)
{
    int d = (int)m->spec.features;
    cblas_sgemv(CblasRowMajor, CblasTrans, (int)n, d, alpha, X, d, m->z, 1, 1.0f, grad, 1);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += m->z[i];
    grad[d] += alpha * (float)sum;
}

/* ---- linear regression: loss mean r², r = x·w + b − y ---- */

static int linear_prepare_labels(const ps_model *m, float *y, size_t n, size_t *bad, ps_error *err)
{
    (void)m;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) {
            *bad = i;
            return ps_error_set(err, PS_EDATA, "label %.9g is not a finite number", (double)y[i]);
        }
    }
    return 0;
}

static double linear_grad_sum(ps_model *m, const float *theta, const float *X, const float *y,
                              size_t n, float *grad)
{
    glm_forward(m, theta, X, n);
    double loss = 0.0;
    for (size_t i = 0; i < n; i++) {
        float r = m->z[i] - y[i];
        m->z[i] = r;
        loss += (double)r * r;
    }
    glm_backward(m, X, n, 2.0f, grad);
    return loss;
}

static int linear_eval(ps_model *m, const float *theta, const float *X, const float *y, size_t n,
                       ps_model_metrics *out)
{
    size_t d = m->spec.features;
    double sse = 0.0;
    for (size_t off = 0; off < n; off += m->chunk) {
        size_t cnt = n - off < m->chunk ? n - off : m->chunk;
        glm_forward(m, theta, X + off * d, cnt);
        for (size_t i = 0; i < cnt; i++) {
            double r = (double)m->z[i] - y[off + i];
            sse += r * r;
        }
    }
    double mean = 0.0, sst = 0.0;
    for (size_t i = 0; i < n; i++)
        mean += y[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++)
        sst += (y[i] - mean) * (y[i] - mean);
    out->loss = sse / (double)n;
    /* as scikit-learn's r2_score: constant labels give 1 if fit exactly, else 0 */
    if (sst > 0.0)
        out->metric = 1.0 - sse / sst;
    else
        out->metric = sse == 0.0 ? 1.0 : 0.0;
    out->auc = NAN;
    return 0;
}

/* ---- logistic regression: loss mean log(1 + e^z) − y·z ---- */

static int logistic_prepare_labels(const ps_model *m, float *y, size_t n, size_t *bad,
                                   ps_error *err)
{
    (void)m;
    for (size_t i = 0; i < n; i++) {
        if (y[i] == -1.0f) {
            y[i] = 0.0f;
        } else if (y[i] != 0.0f && y[i] != 1.0f) {
            *bad = i;
            return ps_error_set(err, PS_EDATA,
                                "label %.9g is not 0 or 1 (logistic regression; -1 reads as 0)",
                                (double)y[i]);
        }
    }
    return 0;
}


static double logistic_grad_sum(ps_model *m, const float *theta, const float *X, const float *y,
                                size_t n, float *grad)
{
    glm_forward(m, theta, X, n);
    double loss = 0.0;
    for (size_t i = 0; i < n; i++) {
        double z = m->z[i];
        loss += ps_softplus(z) - y[i] * z;
        m->z[i] = (float)(ps_sigmoid(z) - y[i]);
    }
    glm_backward(m, X, n, 1.0f, grad);
    return loss;
}

/* One row's log-loss and prediction from its score z before the sigmoid:
 * the evaluation's and ps_model_row_*'s, one copy. */
static double logistic_row_loss(double z, float label)
{
    return ps_softplus(z) - label * z;
}

static bool logistic_row_positive(double z)
{
    return z >= 0.0;
}

/* The AUC ranks rows by their scores before the sigmoid: one chunk's stay
 * in m->z; more than a chunk's are gathered in m->scores, grown to n. */
static int logistic_eval(ps_model *m, const float *theta, const float *X, const float *y, size_t n,
                         ps_model_metrics *out)
{
    size_t d = m->spec.features;
    if (n > m->chunk && n > m->scores_cap) {
        float *grown = realloc(m->scores, n * sizeof *grown);
        if (grown == NULL)
            return PS_ENOMEM;
        m->scores = grown;
        m->scores_cap = n;
    }
    double loss = 0.0;
    size_t correct = 0;
    for (size_t off = 0; off < n; off += m->chunk) {
        size_t cnt = n - off < m->chunk ? n - off : m->chunk;
        glm_forward(m, theta, X + off * d, cnt);
        for (size_t i = 0; i < cnt; i++) {
            double z = m->z[i];
            float label = y[off + i];
            loss += logistic_row_loss(z, label);
            correct += logistic_row_positive(z) == (label == 1.0f);
        }
        if (n > m->chunk)
            memcpy(m->scores + off, m->z, cnt * sizeof *m->z);
    }
    out->loss = loss / (double)n;
    out->metric = (double)correct / (double)n;
    /* PS_EINVAL: one class only, the AUC is undefined and left NAN */
    int rc = ps_auc(n > m->chunk ? m->scores : m->z, y, n, &out->auc);
    return rc == PS_ENOMEM ? rc : 0;
}

/* ---- dense networks: softmax regression and the MLP ----
 *
 * Layer l maps A (n x in) to Z = A·W + b (n x out), W [in, out] row-major as
 * ps_job_layout lays θ out; hidden layers apply ReLU, the last gives logits
 * and the loss is the cross-entropy of their softmax. Backward: dW += Aᵀ·δ,
 * db += δᵀ·1, δ_prev = (δ·Wᵀ) ⊙ [A > 0]. */

static int net_init(ps_model *m, ps_error *err)
{
    const ps_model_spec *sp = &m->spec;
    uint32_t nhidden = sp->type == PS_MODEL_MLP ? sp->nhidden : 0;
    if (sp->classes < 2 || sp->classes >= INT_MAX)
        return ps_error_set(err, PS_EINVAL, "model classes %u is outside [2, %d)", sp->classes,
                            INT_MAX);
    if (sp->type == PS_MODEL_MLP && (nhidden == 0 || nhidden > PS_MAX_HIDDEN))
        return ps_error_set(err, PS_EINVAL, "an mlp needs 1 to %d hidden layers, got %u",
                            PS_MAX_HIDDEN, nhidden);
    m->nlayers = nhidden + 1;
    size_t in = (size_t)sp->features, cells = 0, widest_hidden = 0;
    uint64_t off = 0;
    for (uint32_t l = 0; l < m->nlayers; l++) {
        size_t out = l < nhidden ? sp->hidden[l] : sp->classes;
        if (out == 0 || out >= INT_MAX)
            return ps_error_set(err, PS_EINVAL, "hidden layer %u has %zu units", l + 1, out);
        net_layer *ly = &m->layer[l];
        ly->in = in;
        ly->out = out;
        size_t wcells, acts;
        if (!ps_mul_ok(in, out, &wcells) || !ps_mul_ok(m->chunk, out, &acts) ||
            __builtin_add_overflow(cells, acts, &cells))
            return ps_error_set(err, PS_ENOMEM, "model of %zu x %zu weights is too large", in, out);
        ly->w_off = off;
        ly->b_off = off + wcells;
        off = ly->b_off + out;
        if (l < nhidden && out > widest_hidden)
            widest_hidden = out;
        in = out;
    }
    m->num_params = off;
    size_t scratch, total, bytes;
    if (!ps_mul_ok(m->chunk, widest_hidden, &scratch) ||
        __builtin_add_overflow(cells, scratch + m->chunk, &total) ||
        !ps_mul_ok(total, sizeof(float), &bytes))
        return ps_error_set(err, PS_ENOMEM, "the model's buffers are too large");
    m->block = malloc(bytes);
    if (m->block == NULL)
        return ps_error_set(err, PS_ENOMEM, "out of memory for the model's buffers");
    float *p = m->block;
    for (uint32_t l = 0; l < m->nlayers; l++) {
        m->layer[l].act = p;
        p += m->chunk * m->layer[l].out;
    }
    m->scratch = p;
    p += scratch;
    m->ones = p;
    for (size_t i = 0; i < m->chunk; i++)
        m->ones[i] = 1.0f;
    return 0;
}

static int net_prepare_labels(const ps_model *m, float *y, size_t n, size_t *bad, ps_error *err)
{
    uint32_t classes = m->spec.classes;
    for (size_t i = 0; i < n; i++) {
        float v = y[i];
        if (!(v >= 0.0f && v < (float)classes)) {
            *bad = i;
            return ps_error_set(err, PS_EDATA, "label %.9g is outside 0..%u", (double)v,
                                classes - 1);
        }
        if (v != floorf(v)) {
            *bad = i;
            return ps_error_set(err, PS_EDATA, "label %.9g is not a whole class number 0..%u",
                                (double)v, classes - 1);
        }
    }
    return 0;
}

/* Runs n rows of X through every layer; the logits end in the last act. */
static void net_forward(ps_model *m, const float *theta, const float *X, size_t n)
{
    const float *a = X;
    for (uint32_t l = 0; l < m->nlayers; l++) {
        net_layer *ly = &m->layer[l];
        const float *b = theta + ly->b_off;
        for (size_t i = 0; i < n; i++)
            memcpy(ly->act + i * ly->out, b, ly->out * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)ly->out, (int)ly->in,
                    1.0f, a, (int)ly->in, theta + ly->w_off, (int)ly->out, 1.0f, ly->act,
                    (int)ly->out);
        if (l + 1 < m->nlayers) {
            size_t cells = n * ly->out;
            for (size_t k = 0; k < cells; k++)
                ly->act[k] = ly->act[k] > 0.0f ? ly->act[k] : 0.0f;
        }
        a = ly->act;
    }
}

/* log Σ_k e^{z_k} of one row of logits, without overflow. */
static double log_sum_exp(const float *z, size_t k)
{
    float top = z[0];
    for (size_t c = 1; c < k; c++)
        top = z[c] > top ? z[c] : top;
    double sum = 0.0;
    for (size_t c = 0; c < k; c++)
        sum += exp((double)z[c] - top);
    return top + log(sum);
}

/* Backward pass over n rows whose output δ (softmax − one-hot) is in the
 * last layer's act; adds to grad. Overwrites the hidden activations. */
static void net_backward(ps_model *m, const float *theta, const float *X, size_t n, float *grad)
{
    for (uint32_t l = m->nlayers; l-- > 0;) {
        net_layer *ly = &m->layer[l];
        const float *a = l > 0 ? m->layer[l - 1].act : X;
        const float *d = ly->act;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ly->in, (int)ly->out, (int)n,
                    1.0f, a, (int)ly->in, d, (int)ly->out, 1.0f, grad + ly->w_off, (int)ly->out);
        cblas_sgemv(CblasRowMajor, CblasTrans, (int)n, (int)ly->out, 1.0f, d, (int)ly->out, m->ones,
                    1, 1.0f, grad + ly->b_off, 1);
        if (l == 0)
            break;
        /* δ_prev = (δ·Wᵀ) ⊙ [a > 0], written over a (no longer needed) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)ly->in, (int)ly->out,
                    1.0f, d, (int)ly->out, theta + ly->w_off, (int)ly->out, 0.0f, m->scratch,
                    (int)ly->in);
        float *prev = m->layer[l - 1].act;
        size_t cells = n * ly->in;
        for (size_t k = 0; k < cells; k++)
            prev[k] = prev[k] > 0.0f ? m->scratch[k] : 0.0f;
    }
}

static double net_grad_sum(ps_model *m, const float *theta, const float *X, const float *y,
                           size_t n, float *grad)
{
    net_forward(m, theta, X, n);
    size_t k = m->spec.classes;
    float *z = m->layer[m->nlayers - 1].act;
    double loss = 0.0;
    for (size_t i = 0; i < n; i++, z += k) {
        size_t label = (size_t)y[i];
        double lse = log_sum_exp(z, k);
        loss += lse - z[label];
        for (size_t c = 0; c < k; c++)
            z[c] = (float)exp((double)z[c] - lse);
        z[label] -= 1.0f;
    }
    net_backward(m, theta, X, n, grad);
    return loss;
}

/* The class of a row of k logits: the first of the highest, as numpy's argmax. */
static size_t net_row_class(const float *z, size_t k)
{
    size_t best = 0;
    for (size_t c = 1; c < k; c++)
        best = z[c] > z[best] ? c : best;
    return best;
}

static int net_eval(ps_model *m, const float *theta, const float *X, const float *y, size_t n,
                    ps_model_metrics *out)
{
    size_t d = m->spec.features, k = m->spec.classes;
    double loss = 0.0;
    size_t correct = 0;
    for (size_t off = 0; off < n; off += m->chunk) {
        size_t cnt = n - off < m->chunk ? n - off : m->chunk;
        net_forward(m, theta, X + off * d, cnt);
        const float *z = m->layer[m->nlayers - 1].act;
        for (size_t i = 0; i < cnt; i++, z += k) {
            size_t label = (size_t)y[off + i];
            correct += net_row_class(z, k) == label;
            loss += log_sum_exp(z, k) - z[label];
        }
    }
    out->loss = loss / (double)n;
    out->metric = (double)correct / (double)n;
    out->auc = NAN;
    return 0;
}

/* ---- the table ---- */

static const model_ops linear_ops = {
    .name = "linear",
    .loss_name = "mse",
    .metric_name = "r2",
    .init = glm_init,
    .prepare_labels = linear_prepare_labels,
    .grad_sum = linear_grad_sum,
    .eval = linear_eval,
};

static const model_ops logistic_ops = {
    .name = "logistic",
    .loss_name = "log_loss",
    .metric_name = "accuracy",
    .init = glm_init,
    .prepare_labels = logistic_prepare_labels,
    .grad_sum = logistic_grad_sum,
    .eval = logistic_eval,
    .has_auc = true,
};

static const model_ops softmax_ops = {
    .name = "softmax",
    .loss_name = "log_loss",
    .metric_name = "accuracy",
    .init = net_init,
    .prepare_labels = net_prepare_labels,
    .grad_sum = net_grad_sum,
    .eval = net_eval,
};

static const model_ops mlp_ops = {
    .name = "mlp",
    .loss_name = "log_loss",
    .metric_name = "accuracy",
    .init = net_init,
    .prepare_labels = net_prepare_labels,
    .grad_sum = net_grad_sum,
    .eval = net_eval,
};

static const struct {
    ps_model_type type;
    const char *name;
    const model_ops *ops; /* NULL: not built in yet */
} model_table[] = {
    {PS_MODEL_LINEAR, "linear", &linear_ops},    {PS_MODEL_LOGISTIC, "logistic", &logistic_ops},
    {PS_MODEL_SOFTMAX, "softmax", &softmax_ops}, {PS_MODEL_MLP, "mlp", &mlp_ops},
    {PS_MODEL_CUSTOM, "custom", NULL},
};

/* ---- the model object ---- */

void ps_model_spec_from_job(const ps_job *job, ps_model_spec *out)
{
    memset(out, 0, sizeof *out);
    out->type = job->model.type;
    out->features = job->model.features;
    out->classes = job->model.classes;
    out->nhidden = job->model.nhidden;
    memcpy(out->hidden, job->model.hidden, sizeof out->hidden);
}

int ps_model_new(const ps_model_spec *spec, size_t max_rows, ps_model **out, ps_error *err)
{
    *out = NULL;
    const model_ops *ops = NULL;
    const char *name = "?";
    for (size_t i = 0; i < sizeof model_table / sizeof model_table[0]; i++) {
        if (model_table[i].type == spec->type) {
            ops = model_table[i].ops;
            name = model_table[i].name;
        }
    }
    if (ops == NULL)
        return ps_error_set(err, PS_EUNSUPPORTED,
                            "model type %s is not built into psworker yet (linear, logistic, "
                            "softmax, mlp)",
                            name);
    if (spec->features == 0 || spec->features >= INT_MAX)
        return ps_error_set(err, PS_EINVAL, "model features %llu is outside [1, %d)",
                            (unsigned long long)spec->features, INT_MAX);
    ps_model *m = calloc(1, sizeof *m);
    if (m == NULL)
        return ps_error_set(err, PS_ENOMEM, "out of memory for the model");
    m->ops = ops;
    m->spec = *spec;
    size_t cap = ops->init == net_init ? NET_CHUNK_ROWS_MAX : CHUNK_ROWS_MAX;
    m->chunk = max_rows == 0 ? 1 : max_rows > cap ? cap : max_rows;
    int rc = ops->init(m, err);
    if (rc != 0) {
        ps_model_destroy(&m);
        return rc;
    }
    *out = m;
    return 0;
}

void ps_model_destroy(ps_model **mp)
{
    if (mp == NULL || *mp == NULL)
        return;
    free((*mp)->z);
    free((*mp)->scores);
    free((*mp)->block);
    free(*mp);
    *mp = NULL;
}

uint64_t ps_model_num_params(const ps_model *m)
{
    return m->num_params;
}

const char *ps_model_name(const ps_model *m)
{
    return m->ops->name;
}

bool ps_model_has_auc(const ps_model *m)
{
    return m->ops->has_auc;
}

const char *ps_model_loss_name(const ps_model *m)
{
    return m->ops->loss_name;
}

const char *ps_model_metric_name(const ps_model *m)
{
    return m->ops->metric_name;
}

int ps_model_prepare_labels(const ps_model *m, float *y, size_t n, size_t *bad_row, ps_error *err)
{
    size_t bad = 0;
    int rc = m->ops->prepare_labels(m, y, n, &bad, err);
    if (bad_row != NULL)
        *bad_row = bad;
    return rc;
}

int ps_model_grad(ps_model *m, const float *theta, const float *X, const float *y, size_t n,
                  float *grad_out, double *loss)
{
    if (n == 0)
        return PS_EINVAL;
    size_t d = m->spec.features;
    memset(grad_out, 0, m->num_params * sizeof(float));
    double sum = 0.0;
    for (size_t off = 0; off < n; off += m->chunk) {
        size_t cnt = n - off < m->chunk ? n - off : m->chunk;
        sum += m->ops->grad_sum(m, theta, X + off * d, y + off, cnt, grad_out);
    }
    cblas_sscal((int)m->num_params, (float)(1.0 / (double)n), grad_out, 1);
    if (loss)
        *loss = sum / (double)n;
    return 0;
}

int ps_model_eval(ps_model *m, const float *theta, const float *X, const float *y, size_t n,
                  ps_model_metrics *out)
{
    if (n == 0)
        return PS_EINVAL;
    return m->ops->eval(m, theta, X, y, n, out);
}

size_t ps_model_outputs(const ps_model *m)
{
    return m->ops->init == net_init ? m->spec.classes : 1;
}

int ps_model_predict(ps_model *m, const float *theta, const float *X, size_t n, float *scores)
{
    if (n == 0)
        return PS_EINVAL;
    size_t d = m->spec.features, k = ps_model_outputs(m);
    for (size_t off = 0; off < n; off += m->chunk) {
        size_t cnt = n - off < m->chunk ? n - off : m->chunk;
        if (m->ops->init == net_init) {
            net_forward(m, theta, X + off * d, cnt);
            memcpy(scores + off * k, m->layer[m->nlayers - 1].act, cnt * k * sizeof(float));
        } else {
            glm_forward(m, theta, X + off * d, cnt);
            memcpy(scores + off, m->z, cnt * sizeof(float));
        }
    }
    return 0;
}

uint32_t ps_model_row_class(const ps_model *m, const float *score)
{
    if (m->ops->init == net_init)
        return (uint32_t)net_row_class(score, m->spec.classes);
    return m->ops == &logistic_ops ? (uint32_t)logistic_row_positive(score[0]) : 0;
}

void ps_model_row_probs(const ps_model *m, const float *score, double *probs)
{
    size_t k = ps_model_outputs(m);
    if (m->ops->init == net_init) {
        double lse = log_sum_exp(score, k);
        for (size_t c = 0; c < k; c++)
            probs[c] = exp((double)score[c] - lse);
    } else if (m->ops == &logistic_ops) {
        probs[0] = ps_sigmoid(score[0]);
    } else {
        probs[0] = score[0];
    }
}

double ps_model_row_loss(const ps_model *m, const float *score, float label)
{
    if (m->ops->init == net_init)
        return log_sum_exp(score, m->spec.classes) - score[(size_t)label];
    if (m->ops == &logistic_ops)
        return logistic_row_loss(score[0], label);
    double r = (double)score[0] - label;
    return r * r;
}
