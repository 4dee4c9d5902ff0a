/* predict.h — psworker predict: one part of a prediction (psrun predict,
 * docs/deployment.md#predictions). Loads the model the job's output folder
 * holds (manifest.json and its .npy files, checked against the job's
 * model), reads the data file with the job's reader and preprocessing (the
 * training set's standardisation, from the folder), scores the part's
 * contiguous block of rows (config/job.h's block shard: rows
 * [part*n/parts, (part+1)*n/parts)) with the training code's forward pass
 * (model.h, sparse_model.h) and writes the part's files
 * (common/report_predict.h). */
#ifndef PS_PREDICT_H
#define PS_PREDICT_H

#include <signal.h>
#include <stdint.h>

#include "error.h"
#include "job.h"

typedef struct ps_predict_opts {
    const char *data;   /* the file to score, in the job's data.format */
    const char *labels; /* idx: the labels file; NULL derives it from data's name */
    const char *model;  /* the model folder; NULL: the job's output */
    uint32_t part, parts;
    const char *out; /* the part's files: out.csv, out.scores, out.json */
    const volatile sig_atomic_t *stop;
} ps_predict_opts;

/* Scores one part. Errors are one line naming the file: PS_EIO a file that
 * cannot be read or written, PS_EDATA a model file or data row that is
 * wrong ("model/manifest.json: tensor W1 has shape [784, 128], the job's
 * model [784, 256]"; "data.csv:7: expected 31 fields, got 30"), PS_ENOMEM,
 * PS_EINTR when stop was set. */
int ps_predict_part(const ps_job *job, const ps_predict_opts *o, ps_error *err);

#endif
