/* model.c — linear and logistic regression over θ = [w, b] with OpenBLAS:
 * one sgemv forward (X·w), one sgemv backward (Xᵀ·r) per chunk of rows.
 * Each model kind is a row of ops; a kind without a row is "not built in". */
#include "model.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows per BLAS call at most: keeps sgemv's int dimensions safe and the
 * work buffer bounded whatever the caller asks for. */
#define CHUNK_ROWS_MAX ((size_t)1 << 20)

typedef struct model_ops {
    const char *name;
    const char *loss_name;
    const char *metric_name;
    uint64_t (*num_params)(const ps_model_spec *spec);
    int (*prepare_labels)(float *y, size_t n, ps_error *err);
    /* Adds the gradient of the summed loss over n <= chunk rows to grad
     * and returns the summed loss. */
    double (*grad_sum)(ps_model *m, const float *theta, const float *X, const float *y, size_t n,
                       float *grad);
    void (*eval)(ps_model *m, const float *theta, const float *X, const float *y, size_t n,
                 ps_model_metrics *out);
} model_ops;

struct ps_model {
    const model_ops *ops;
    ps_model_spec spec;
    uint64_t num_params;
    size_t chunk; /* rows the work buffers hold */
    float *z;     /* chunk: scores, then residuals */
};

/* ---- shared pieces of the generalised linear models ---- */

static uint64_t glm_num_params(const ps_model_spec *spec)
{
    return spec->features + 1;
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

static int linear_prepare_labels(float *y, size_t n, ps_error *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i]))
            return ps_error_set(err, PS_EDATA, "row %zu: label %.9g is not a finite number", i + 1,
                                (double)y[i]);
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

static void linear_eval(ps_model *m, const float *theta, const float *X, const float *y, size_t n,
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
}

/* ---- logistic regression: loss mean log(1 + e^z) − y·z ---- */

static int logistic_prepare_labels(float *y, size_t n, ps_error *err)
{
    for (size_t i = 0; i < n; i++) {
        if (y[i] == -1.0f)
            y[i] = 0.0f;
        else if (y[i] != 0.0f && y[i] != 1.0f)
            return ps_error_set(err, PS_EDATA,
                                "row %zu: label %.9g is not 0 or 1 (logistic regression; "
                                "-1 reads as 0)",
                                i + 1, (double)y[i]);
    }
    return 0;
}

/* σ(z) without overflow for either sign of z. */
static double sigmoid(double z)
{
    if (z >= 0.0)
        return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

/* log(1 + e^z) without overflow: max(z, 0) + log1p(e^−|z|). */
static double softplus(double z)
{
    return (z > 0.0 ? z : 0.0) + log1p(exp(-fabs(z)));
}

static double logistic_grad_sum(ps_model *m, const float *theta, const float *X, const float *y,
                                size_t n, float *grad)
{
    glm_forward(m, theta, X, n);
    double loss = 0.0;
    for (size_t i = 0; i < n; i++) {
        double z = m->z[i];
        loss += softplus(z) - y[i] * z;
        m->z[i] = (float)(sigmoid(z) - y[i]);
    }
    glm_backward(m, X, n, 1.0f, grad);
    return loss;
}

static void logistic_eval(ps_model *m, const float *theta, const float *X, const float *y, size_t n,
                          ps_model_metrics *out)
{
    size_t d = m->spec.features;
    double loss = 0.0;
    size_t correct = 0;
    for (size_t off = 0; off < n; off += m->chunk) {
        size_t cnt = n - off < m->chunk ? n - off : m->chunk;
        glm_forward(m, theta, X + off * d, cnt);
        for (size_t i = 0; i < cnt; i++) {
            double z = m->z[i];
            float label = y[off + i];
            loss += softplus(z) - label * z;
            correct += (z >= 0.0) == (label == 1.0f);
        }
    }
    out->loss = loss / (double)n;
    out->metric = (double)correct / (double)n;
}

/* ---- the table ---- */

static const model_ops linear_ops = {
    .name = "linear",
    .loss_name = "mse",
    .metric_name = "r2",
    .num_params = glm_num_params,
    .prepare_labels = linear_prepare_labels,
    .grad_sum = linear_grad_sum,
    .eval = linear_eval,
};

static const model_ops logistic_ops = {
    .name = "logistic",
    .loss_name = "log_loss",
    .metric_name = "accuracy",
    .num_params = glm_num_params,
    .prepare_labels = logistic_prepare_labels,
    .grad_sum = logistic_grad_sum,
    .eval = logistic_eval,
};

static const struct {
    ps_model_type type;
    const char *name;
    const model_ops *ops; /* NULL: not built in yet */
} model_table[] = {
    {PS_MODEL_LINEAR, "linear", &linear_ops}, {PS_MODEL_LOGISTIC, "logistic", &logistic_ops},
    {PS_MODEL_SOFTMAX, "softmax", NULL},      {PS_MODEL_MLP, "mlp", NULL},
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
                            "model type %s is not built into psworker yet (linear, logistic)",
                            name);
    if (spec->features == 0 || spec->features >= INT_MAX)
        return ps_error_set(err, PS_EINVAL, "model features %llu is outside [1, %d)",
                            (unsigned long long)spec->features, INT_MAX);
    ps_model *m = calloc(1, sizeof *m);
    if (m == NULL)
        return ps_error_set(err, PS_ENOMEM, "out of memory for the model");
    m->ops = ops;
    m->spec = *spec;
    m->num_params = ops->num_params(spec);
    m->chunk = max_rows == 0 ? 1 : max_rows > CHUNK_ROWS_MAX ? CHUNK_ROWS_MAX : max_rows;
    m->z = malloc(m->chunk * sizeof(float));
    if (m->z == NULL) {
        ps_model_destroy(&m);
        return ps_error_set(err, PS_ENOMEM, "out of memory for the model's buffers");
    }
    *out = m;
    return 0;
}

void ps_model_destroy(ps_model **mp)
{
    if (mp == NULL || *mp == NULL)
        return;
    free((*mp)->z);
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

const char *ps_model_loss_name(const ps_model *m)
{
    return m->ops->loss_name;
}

const char *ps_model_metric_name(const ps_model *m)
{
    return m->ops->metric_name;
}

int ps_model_prepare_labels(const ps_model *m, float *y, size_t n, ps_error *err)
{
    return m->ops->prepare_labels(y, n, err);
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
    m->ops->eval(m, theta, X, y, n, out);
    return 0;
}
