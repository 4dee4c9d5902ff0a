/* sparse_model.h — the sparse models' math (sparse_logistic and fm) over
 * rows of the job's sparse table, pulled by key, and the dense bias b: a
 * batch's sorted unique keys, the mean log-loss and its gradient per unique
 * key's row, predictions and the evaluation metrics (log-loss, accuracy,
 * AUC). Buffers are made once by ps_sparse_model_new; no call allocates
 * but ps_sparse_model_metrics (the AUC's scratch, once an evaluation). */
#ifndef PS_SPARSE_MODEL_H
#define PS_SPARSE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "job.h"
#include "model.h"
#include "sparse_data.h"

typedef struct ps_sparse_model ps_sparse_model;

/* What a sparse model is built from: PS_MODEL_SPARSE_LOGISTIC (a row is
 * [w]) or PS_MODEL_FM with K factors (a row is [w, v_1..v_K]). */
typedef struct ps_sparse_spec {
    ps_model_type type;
    uint32_t factors; /* fm: K, 1..PS_MAX_FACTORS */
} ps_sparse_spec;

/* Running sums of an evaluation over a data set's batches (ps_sparse_model_predict). */
typedef struct ps_sparse_eval {
    double loss_sum;  /* summed log-loss of the rows */
    uint64_t correct; /* rows where (p >= 0.5) == (label == 1) */
    uint64_t rows;
} ps_sparse_eval;

/* The spec of the job's model (type and factors). */
void ps_sparse_spec_from_job(const ps_job *job, ps_sparse_spec *out);

/* A model with buffers for batches of up to max_rows rows and max_features
 * feature occurrences (each in [1, 2^32)). PS_EUNSUPPORTED for
 * a type that is not sparse, PS_EINVAL for factors outside 1..PS_MAX_FACTORS
 * (fm) or a zero or too large size, PS_ENOMEM. *out is NULL on error; the
 * caller destroys it with ps_sparse_model_destroy. */
int ps_sparse_model_new(const ps_sparse_spec *spec, size_t max_rows, size_t max_features,
                        ps_sparse_model **out, ps_error *err);

/* Frees the model and sets *mp to NULL; a NULL *mp is fine. */
void ps_sparse_model_destroy(ps_sparse_model **mp);

/* Floats of a table row: 1 (sparse_logistic) or 1 + K (fm). */
uint32_t ps_sparse_model_dim(const ps_sparse_model *m);

/* Names as the summary writes them: "sparse_logistic" or "fm"; the loss is
 * "log_loss" and the headline metric "accuracy" (both are binary
 * classifiers: their evaluation has an AUC too). */
const char *ps_sparse_model_name(const ps_sparse_model *m);

/* A batch is sparse_data.h's CSR rows, read where they lie: row i's
 * features are the occurrences j in [offsets[i], offsets[i + 1]), key
 * keys[j] with value values[j] (every value 1 when values is NULL), and
 * labels may be NULL to predict only. offsets[0] needs not be 0, so a
 * window of a data set's rows [r, r + n) is a batch: n rows, offsets + r,
 * labels + r, and the data set's keys and values as they are. */

/* The batch's keys: *keys gets its nkeys sorted unique keys, the rows the
 * client pulls and pushes and the order of the rows every call below reads
 * and writes; each occurrence's index among them is kept for the calls
 * below, which read this batch. *keys is the model's, valid until the next
 * call. PS_EINVAL when the batch has more than max_rows rows or
 * max_features occurrences, or its offsets decrease. */
int ps_sparse_model_keys(ps_sparse_model *m, const ps_sparse_batch *b, const uint64_t **keys,
                         size_t *nkeys);

/* The mean log-loss of batch b (labels required; the batch of the last
 * ps_sparse_model_keys) at rows (nkeys x dim floats, the keys' rows in their
 * order) and bias, into *loss (when not NULL); its gradient for each key's
 * row into grad_rows (nkeys x dim; a key seen several times, in a row or in
 * several rows, gets the sum) and for the bias into *grad_bias. PS_EINVAL
 * when b is not the batch whose keys were taken, has no rows or no labels. */
int ps_sparse_model_grad(ps_sparse_model *m, const ps_sparse_batch *b, const float *rows,
                         float bias, float *grad_rows, float *grad_bias, double *loss);

/* P(y = 1) of each row of b (the batch of the last ps_sparse_model_keys)
 * into scores (b->rows floats; an empty row gets σ(bias)). With ev and
 * labels, adds the rows' log-loss (from their scores before the sigmoid, so
 * exact where a float probability rounds to 0 or 1) and correct predictions
 * to *ev. PS_EINVAL when b is not the batch whose keys were taken. */
int ps_sparse_model_predict(ps_sparse_model *m, const ps_sparse_batch *b, const float *rows,
                            float bias, float *scores, ps_sparse_eval *ev);

/* The metrics of a data set from its evaluation sums and its n scores and
 * labels (gathered batch after batch): mean log-loss, accuracy and the AUC
 * of the scores (common/auc.h; NAN when the labels hold one class only).
 * PS_EINVAL when n is 0 or not ev->rows, PS_ENOMEM when the AUC's scratch
 * (n pairs) cannot be had. */
int ps_sparse_model_metrics(const ps_sparse_eval *ev, const float *scores, const float *labels,
                            size_t n, ps_model_metrics *out);

#endif
