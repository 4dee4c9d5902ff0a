/* report_summary.h — the summary of a run, as psworker writes its own
 * (--summary-json) and psrun reads its workers' and writes the job's:
 * written and read here only, so the two sides cannot drift apart. JSON
 * through json-c; a number that is not finite is written as null and read
 * back as NAN. psrun links this module, error and json-c, nothing else. */
#ifndef PS_REPORT_SUMMARY_H
#define PS_REPORT_SUMMARY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "report_limits.h"

/* One JSON object; numbers that are not finite are null:
 *   {"job": str, "model": str, "mode": str, "final_loss": num,
 *    "metric_name": "accuracy"|"r2", "loss_name": "log_loss"|"mse",
 *    "test_metric": {"name": metric_name, "value": num} or null (no test set),
 *    "test_loss": {"name": loss_name, "value": num} or null,
 *    "test_auc": {"name": "auc", "value": num} or null (binary classifiers only),
 *    "metrics": {METRIC: num, LOSS: num (the test set's, else the shard's),
 *                "train_"METRIC: num, "train_"LOSS: num (the shard's),
 *                "auc": num, "train_auc": num (binary classifiers only, as
 *                METRIC and "train_"METRIC),
 *                "train_loss_last_epoch": num, "train_samples": int,
 *                "test_samples": int, "epochs": int, "steps_per_epoch": int,
 *                "batch_size": int, "pull_s": num, "compute_s": num,
 *                "push_pull_s": num},
 *    "wall_s": num, "samples_per_s": num, "updates": int, "version": int,
 *    "batches": int (the batches trained: a worker's own, psrun's the sum;
 *                with data.assign: dynamic those the queue took from it),
 *    "workers": int, "rank": int (a worker's summary only),
 *    "staleness": {"max": int, "mean": num, "p99": int} or null (unknown),
 *    "ranks": [{"rank": int, "clock": int, "pushes": int, "dropped": int,
 *               "rounds": int}, ...],
 *    "unfinished": [{"rank": int, "pushes": int, "expected": int}, ...],
 *    "dropped_ranks": [int, ...],
 *    "curves": [{"rank": int, "every": int, "train_loss": [num, ...],
 *                "test_metric": [num, ...] or null (no test set),
 *                "test_auc": [num, ...] or null (binary classifiers only)}, ...]}
 * psworker writes its own run; psrun writes the whole job's: final_loss is
 * the samples-weighted mean over the workers, samples_per_s and updates
 * their sums, wall_s psrun's, the rest from the lowest rank that finished
 * (report_job.h combines them; "version" and "unfinished" come from the
 * summary of the highest version, the worker that finished last).
 *
 * "staleness" and "ranks" are psd's figures at the job's end: how many
 * rounds behind the servers' version the pushes applied were (max, mean,
 * 99th percentile), and each rank's clock (rounds pushed), pushes
 * applied, pushes dropped as late and, in sync, the rounds that closed
 * while it trained (with backup workers some close without its push); null
 * and [] when the worker did not learn them. "unfinished" lists, from the
 * same figures, every rank whose data was not trained to the end (no
 * worker of it said it was done: it left early, was evicted or never came)
 * with its pushes applied and the pushes its data makes ("expected", as
 * its worker said; 0: unknown); [] when every rank finished or psd's
 * figures are unknown, and a summary without the key reads as [].
 * "dropped_ranks" names the ranks more than PS_REPORT_DROPPED_SHARE
 * percent of whose rounds closed without them (report_limits.h; written
 * from "ranks": a reader takes "ranks" alone, and a rank without "dropped"
 * or "rounds", from a summary written before them, as 0). "curves" holds
 * one entry per worker (a worker's summary: its own; psrun's: every worker
 * that finished, by rank): point i of "train_loss" is the mean training
 * loss of epoch (i + 1) * every, point i of "test_metric" the test set's
 * metric_name at that epoch's end, null where an epoch was not reached
 * (a worker that joined late, a loss that is not finite). every is 1 up
 * to PS_REPORT_EPOCHS_MAX epochs, and then the smallest step that keeps
 * the points within it. report_curves.h draws them.
 *
 * The AUC is the area under the ROC curve of a binary classifier's scores
 * (logistic, sparse_logistic, fm): the chance that a random positive row
 * scores above a random negative one, ties counting half; 0.5 is chance, 1
 * a perfect ranking, and null when the labels hold one class only. Models
 * that are not binary classifiers (linear, softmax, mlp) have no "test_auc",
 * "auc", "train_auc" or curves' "test_auc" at all, and a summary written
 * before the AUC was reads as one without it. */

#define PS_REPORT_EPOCHS_MAX 1000 /* points of one curve */
#define PS_REPORT_RANKS_MAX  4096 /* entries of "ranks" and "curves" (PS_MAX_WORKERS) */

/* One worker's figures per epoch; a summary owns its curves' arrays. */
typedef struct ps_report_curve {
    uint32_t rank;
    uint32_t every;      /* point i is epoch (i + 1) * every */
    uint32_t n;          /* points */
    double *train_loss;  /* n figures, NAN where null */
    double *test_metric; /* n figures, or NULL without a test set */
    double *test_auc;    /* n figures, or NULL without a test set or an AUC */
} ps_report_curve;

/* A rank whose data was not trained to the end, and how far it got. */
typedef struct ps_report_unfinished {
    uint32_t rank;
    uint64_t pushes;   /* pushes the servers applied */
    uint64_t expected; /* the pushes its data makes, as its worker said; 0: unknown */
} ps_report_unfinished;

/* psd's figures for one rank at the job's end. */
typedef struct ps_report_rank {
    uint32_t rank;
    uint64_t clock;   /* rounds it pushed */
    uint64_t pushes;  /* pushes the servers applied */
    uint64_t dropped; /* pushes the servers dropped as late (backup workers) */
    uint64_t rounds;  /* sync: rounds that closed while it trained, its push in or not */
} ps_report_rank;

typedef struct ps_report_summary {
    char job[PS_REPORT_NAME_MAX];
    char model[PS_REPORT_WORD_MAX];
    char mode[PS_REPORT_WORD_MAX];
    char metric_name[PS_REPORT_WORD_MAX];
    char loss_name[PS_REPORT_WORD_MAX];
    double final_loss;
    bool has_test; /* test_metric and test_loss are objects, not null */
    double test_metric, test_loss;
    double metric, loss; /* "metrics": the test set's when has_test, else the shard's */
    bool has_auc;        /* a binary classifier: the AUC figures below are written */
    double test_auc;     /* when has_test too */
    double auc;          /* the test set's when has_test, else the shard's */
    double train_auc;
    double train_metric, train_loss, train_loss_last_epoch;
    uint64_t train_samples, test_samples;
    uint32_t epochs;
    uint64_t steps_per_epoch;
    uint32_t batch_size;
    double pull_s, compute_s, push_pull_s;
    double wall_s, samples_per_s;
    uint64_t updates, version;
    uint64_t batches; /* batches trained (dynamic: those shard 0's queue took) */
    uint32_t workers;
    int64_t rank;       /* -1: none (psrun's summary) */
    bool has_staleness; /* "staleness" is an object, not null */
    uint64_t staleness_max, staleness_p99;
    double staleness_mean;
    uint32_t nranks;
    ps_report_rank ranks[PS_REPORT_RANKS_MAX];
    uint32_t nunfinished;
    ps_report_unfinished unfinished[PS_REPORT_RANKS_MAX];
    uint32_t ncurves;
    ps_report_curve *curves; /* owned: ps_report_summary_fini frees them */
} ps_report_summary;

/* Empty strings, zero counts, NAN figures, no test set, rank -1, no
 * staleness, no ranks, no curves. */
void ps_report_summary_init(ps_report_summary *s);

/* The ranks of s more than PS_REPORT_DROPPED_SHARE percent of whose rounds
 * closed without their push (report_limits.h), into out (cap entries) in
 * rank order; returns how many there are (maybe more than cap). */
uint32_t ps_report_summary_dropped_ranks(const ps_report_summary *s, uint32_t *out, uint32_t cap);

/* Frees s's curves (s stays a summary without curves); the summary itself
 * is the caller's. A summary read or given curves needs it. */
void ps_report_summary_fini(ps_report_summary *s);

/* Adds a copy of a curve of n points (at most PS_REPORT_EPOCHS_MAX, every
 * >= 1; test_metric NULL without a test set, test_auc NULL without a test
 * set or an AUC) to s. PS_EINVAL when the curve is out of those bounds, has
 * test_auc without test_metric, or s holds PS_REPORT_RANKS_MAX already,
 * PS_ENOMEM. */
int ps_report_summary_curve_add(ps_report_summary *s, uint32_t rank, uint32_t every, uint32_t n,
                                const double *train_loss, const double *test_metric,
                                const double *test_auc);

/* Writes s as above (one line, '\n' at the end) to f. PS_EINVAL without a
 * metric or loss name, PS_ENOMEM, PS_EIO. */
int ps_report_summary_write(FILE *f, const ps_report_summary *s);

/* ps_report_summary_write into the file at path, whole or not at all
 * (report_file.h); err says "path: reason". */
int ps_report_summary_file_write(const char *path, const ps_report_summary *s, ps_error *err);

/* Reads the summary in the file at path into *s, which then owns curves
 * (ps_report_summary_fini). PS_EIO when it cannot be read, PS_EDATA when it
 * is not a summary (bad JSON, a key missing or of the wrong type, a string
 * too long, more than PS_REPORT_JSON_MAX bytes, a curve longer than
 * PS_REPORT_EPOCHS_MAX or with test figures where the summary has no test
 * set, AUC figures where it has no "test_auc"), PS_ENOMEM; err says "path:
 * why". No "test_auc" reads as has_auc false. *s is untouched on an error. */
int ps_report_summary_read(const char *path, ps_report_summary *s, ps_error *err);

#endif
