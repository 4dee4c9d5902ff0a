/* model.h — the built-in models over a flat θ, computed with OpenBLAS:
 * linear regression (MSE), logistic regression, softmax regression and an
 * MLP with ReLU hidden layers (softmax output, cross-entropy). A model is a
 * row of a table of operations (labels, gradient, evaluation). Work buffers
 * are allocated once by ps_model_new; no call allocates after it. */
#ifndef PS_MODEL_H
#define PS_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "job.h"

typedef struct ps_model ps_model;

/* What a model is built from: the job's model section, as far as the
 * built-in models use it. */
typedef struct ps_model_spec {
    ps_model_type type;
    uint64_t features;
    uint32_t classes; /* softmax, mlp */
    uint32_t nhidden; /* mlp */
    uint32_t hidden[PS_MAX_HIDDEN];
} ps_model_spec;

/* Evaluation of θ on a data set. `loss` is the training objective (mean
 * log-loss or MSE); `metric` is the headline figure (accuracy or R²); `auc`
 * the area under the ROC curve of a binary classifier's scores
 * (ps_model_has_auc; NAN for the other models, and when the labels hold
 * one class only). */
typedef struct ps_model_metrics {
    double loss;
    double metric;
    double auc;
} ps_model_metrics;

/* The spec of the job's model. */
void ps_model_spec_from_job(const ps_job *job, ps_model_spec *out);

/* A model with work buffers for batches of up to max_rows rows (larger
 * inputs are processed in chunks of max_rows, and softmax / mlp cap the
 * chunk at 2048 rows). PS_EUNSUPPORTED for a model type that is not built
 * in (custom), PS_EINVAL for 0 features, fewer than 2 classes (softmax,
 * mlp) or no hidden layer (mlp), PS_ENOMEM. *out is NULL on error; the
 * caller destroys it with ps_model_destroy. */
int ps_model_new(const ps_model_spec *spec, size_t max_rows, ps_model **out, ps_error *err);

/* Frees the model and sets *mp to NULL; a NULL *mp is fine. */
void ps_model_destroy(ps_model **mp);

/* P, the number of parameters, laid out as ps_job_layout does: θ = [w
 * (features), b] for linear and logistic regression; W [features, classes]
 * then b [classes] for softmax; W1 [features, h1], b1, ..., W_out [h_last,
 * classes], b_out for the mlp (row-major matrices). */
uint64_t ps_model_num_params(const ps_model *m);

/* Names, as the summary writes them: the model type ("logistic"), the loss
 * ("log_loss" for the classifiers, "mse") and the headline metric
 * ("accuracy", "r2"). */
const char *ps_model_name(const ps_model *m);
const char *ps_model_loss_name(const ps_model *m);
const char *ps_model_metric_name(const ps_model *m);

/* Whether the model is a binary classifier whose evaluation has an AUC
 * (logistic); softmax, mlp and linear have none. */
bool ps_model_has_auc(const ps_model *m);

/* Checks and maps labels in place for the model: logistic takes 0 and 1 and
 * reads -1 as 0; softmax and mlp take whole numbers 0..classes-1; linear
 * takes any finite value. Otherwise PS_EDATA, *bad_row (when not NULL) the
 * 0-based index of the first bad label and err "label 11 is outside 0..9"
 * (the caller adds where the row came from). */
int ps_model_prepare_labels(const ps_model *m, float *y, size_t n, size_t *bad_row, ps_error *err);

/* The mean gradient of the loss over the n rows of X (n x features,
 * row-major) with labels y at θ, into grad_out (P floats); *loss (when not
 * NULL) gets the mean loss at θ. PS_EINVAL when n is 0. */
int ps_model_grad(ps_model *m, const float *theta, const float *X, const float *y, size_t n,
                  float *grad_out, double *loss);

/* Loss and metric of θ over n rows: logistic gives mean log-loss, accuracy
 * (predict 1 when P(y=1) >= 0.5) and the AUC of P(y=1) (common/auc.h;
 * ranked by the score before the sigmoid, the same order without a float
 * probability's ties near 0 and 1); softmax and mlp give mean log-loss and
 * accuracy (predict the class of the highest score, the first of equal
 * ones); linear gives MSE and R² (1 for a perfect fit of constant labels, 0
 * for an imperfect one). auc is NAN but for logistic. The AUC needs every
 * row's score: n beyond the model's max_rows grows that buffer once.
 * PS_EINVAL when n is 0, PS_ENOMEM. */
int ps_model_eval(ps_model *m, const float *theta, const float *X, const float *y, size_t n,
                  ps_model_metrics *out);

/* ---- prediction (psworker predict): the evaluation's forward pass and
 * per-row figures, row by row ---- */

/* Scores a row has: classes for softmax and mlp (logits), 1 for linear (the
 * value) and logistic (the score before the sigmoid). */
size_t ps_model_outputs(const ps_model *m);

/* The forward pass of ps_model_eval over n rows of X into scores (n x
 * ps_model_outputs floats, row-major). PS_EINVAL when n is 0. */
int ps_model_predict(ps_model *m, const float *theta, const float *X, size_t n, float *scores);

/* From one row's scores: the predicted class as ps_model_eval counts it
 * (logistic: 1 when the score is >= 0; softmax, mlp: the first highest
 * logit; linear: 0); the probabilities (logistic: P(y=1), one value;
 * softmax, mlp: the softmax, classes values; linear: the value); and the
 * row's loss as ps_model_eval sums it (label prepared). */
uint32_t ps_model_row_class(const ps_model *m, const float *score);
void ps_model_row_probs(const ps_model *m, const float *score, double *probs);
double ps_model_row_loss(const ps_model *m, const float *score, float label);

#endif
