/* report_predict.h — the files of a prediction (psrun predict,
 * docs/deployment.md#predictions): what a part (psworker predict) tells
 * psrun beside its rows, and the manifest psrun writes beside the
 * predictions. libc and json-c only, as the other report modules.
 *
 * A part P of a prediction is three files: P.csv, its rows of the
 * predictions (no header); P.scores, per row a float32 score and a float32
 * label in this machine's order (logistic: the score before the sigmoid;
 * sparse models: P(y=1); linear: the value; softmax and mlp: the class),
 * for the AUC and R² of all the parts together; and P.json, this struct. */
#ifndef PS_REPORT_PREDICT_H
#define PS_REPORT_PREDICT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "report_limits.h"
#include "report_plan.h" /* PS_REPORT_PATH_MAX */

typedef struct ps_report_predict_part {
    char job[PS_REPORT_NAME_MAX];
    char model[32];   /* "logistic", "fm", ... */
    uint64_t version; /* the model's (its manifest's) */
    uint32_t classes; /* columns of probabilities; 0 for regression */
    uint32_t has_auc; /* 1 for the binary classifiers */
    uint64_t rows;    /* rows of this part */
    uint64_t correct; /* classifiers: rows whose class is the label */
    double loss_sum;  /* summed log-loss (classifiers) or squared error */
    char data[PS_REPORT_PATH_MAX];
    char model_dir[PS_REPORT_PATH_MAX]; /* the folder the model was read from */
} ps_report_predict_part;

/* Writes p as path (whole or not at all); PS_EIO "path: why". */
int ps_report_predict_part_write(const char *path, const ps_report_predict_part *p, ps_error *err);

/* Reads path into *p; PS_EDATA "path: why" when a key is missing or wrong,
 * PS_EIO when it cannot be read. */
int ps_report_predict_part_read(const char *path, ps_report_predict_part *p, ps_error *err);

/* The manifest beside the predictions OUTPUT: OUTPUT.json, {"job",
 * "model", "model_dir", "version", "data", "output", "rows", "workers",
 * "columns", "wall_s", "metrics": {...}}; metrics holds accuracy, log_loss
 * and (binary classifiers) auc, or mse and r2 for regression; a figure
 * that is not finite (an AUC of one class) is null. */
typedef struct ps_report_predict {
    char job[PS_REPORT_NAME_MAX];
    char model[32];
    char model_dir[PS_REPORT_PATH_MAX];
    uint64_t version;
    char data[PS_REPORT_PATH_MAX];
    char output[PS_REPORT_PATH_MAX];
    uint64_t rows;
    uint32_t workers;
    char columns[64]; /* "class,p0,...,p9" shortened to "class,p0..p9" */
    double wall_s;
    bool regression;
    bool has_auc;
    double accuracy, log_loss, auc; /* classifiers */
    double mse, r2;                 /* regression */
} ps_report_predict;

/* The predictions' header line for a model with `classes` probabilities
 * (0: regression): "class,p0,p1,...,pK-1" or "value", and its '\n'. */
void ps_report_predict_header(FILE *f, uint32_t classes);

/* Writes m as path (whole or not at all); PS_EIO "path: why". */
int ps_report_predict_write(const char *path, const ps_report_predict *m, ps_error *err);

#endif
