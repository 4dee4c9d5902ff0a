/* report.h — the formats one psd program writes and another reads, each
 * written and read here only, so the two sides cannot drift apart: the
 * progress stream and the summary (psworker -> psrun), the plan
 * (`psworker --describe` -> psrun) and sd_notify datagrams (psd -> psrun);
 * and the training curves drawn from a summary (an SVG, through svg.h).
 * JSON goes through json-c; a number that is not finite is written as null
 * and read back as NAN. Knows nothing of config, server or worker: psrun
 * links this module, svg, error and json-c, nothing else of psd. */
#ifndef PS_REPORT_H
#define PS_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

#define PS_REPORT_NAME_MAX     64         /* bytes of a job name, NUL included (PS_JOB_NAME_MAX) */
#define PS_REPORT_WORD_MAX     32         /* bytes of a mode, model, metric or setting name */
#define PS_REPORT_ENDPOINT_MAX 128        /* bytes of an endpoint (PS_ENDPOINT_MAX) */
#define PS_REPORT_SERVERS_MAX  32         /* endpoints in a plan (PS_MAX_SHARDS) */
#define PS_REPORT_PATH_MAX     1024       /* bytes of the output folder (PS_PATH_MAX) */
#define PS_REPORT_JSON_MAX     (1u << 20) /* a plan or summary larger than this is refused */

/* ---- the progress stream ----
 *
 * psworker --progress-fd N writes one line after every training step:
 *
 *     progress RANK DONE TOTAL EPOCH LOSS\n
 *
 * RANK, DONE (steps done), TOTAL (steps of the whole run) and EPOCH (from 1)
 * are unsigned decimals; LOSS, the mean loss of the epoch so far, is printf
 * "%.6g" or one of nan, inf, -inf. Single spaces between fields. A line is
 * at most PS_REPORT_PROGRESS_MAX bytes with its '\n', less than PIPE_BUF,
 * so one write() per line never interleaves with another worker's on a
 * shared pipe. A reader skips and counts lines that are too long or do not
 * parse; it never cuts one and reads the rest as a line. */

#define PS_REPORT_PROGRESS_MAX 128

typedef struct ps_report_progress {
    uint32_t rank;
    uint64_t done, total;
    uint32_t epoch;
    double loss;
} ps_report_progress;

/* Formats p as one line, '\n' included, into buf. Returns its length, or
 * PS_EINVAL when it does not fit in cap bytes (NUL included). */
int ps_report_progress_format(const ps_report_progress *p, char *buf, size_t cap);

/* Parses one line without its '\n' into *p. PS_EINVAL when it is not a
 * progress line as above (*p is then unchanged). */
int ps_report_progress_parse(const char *line, ps_report_progress *p);

/* Writes p to fd as one line with one write (EINTR retried). PS_EIO when
 * the write failed, e.g. EPIPE: the reader is gone and the caller should
 * stop writing. */
int ps_report_progress_write(int fd, const ps_report_progress *p);

/* Assembles lines from the bytes of a stream, whatever the chunks. */
typedef struct ps_report_progress_reader {
    char line[PS_REPORT_PROGRESS_MAX];
    size_t len;
    bool overlong;     /* the current line is past the limit: skipped to its '\n' */
    uint64_t rejected; /* lines skipped so far */
} ps_report_progress_reader;

void ps_report_progress_reader_init(ps_report_progress_reader *r);

/* Feeds n bytes; each whole line that parses goes to on_line(arg, &p),
 * each that does not is counted in r->rejected. Returns the number of lines
 * rejected in these bytes. A line left unfinished waits for the next bytes. */
size_t ps_report_progress_feed(ps_report_progress_reader *r, const char *bytes, size_t n,
                               void (*on_line)(void *arg, const ps_report_progress *p), void *arg);

/* ---- the plan: `psworker --config JOB --describe` ----
 *
 * One JSON object on stdout (exit 0), every key always present:
 *   {"job": str, "mode": "sync"|"async"|"ssp", "workers": int,
 *    "servers": [endpoint, ...] (one per shard), "on_worker_loss":
 *    "continue"|"abort", "on_divergence": "stop"|"continue", "model": str,
 *    "features": int, "params": int, "epochs": int, "batch_size": int,
 *    "output": str ("" when none), "compression": str (the pushes' codec:
 *    "none", "fp16", "bf16", "int8", "topk")}
 * A reader ignores keys it does not know. A job-file error is no plan:
 * psworker writes its one-line error to stderr and exits 2. */

typedef struct ps_report_plan {
    char job[PS_REPORT_NAME_MAX];
    char mode[PS_REPORT_WORD_MAX];
    uint32_t workers;
    uint32_t nservers;
    char servers[PS_REPORT_SERVERS_MAX][PS_REPORT_ENDPOINT_MAX];
    char on_worker_loss[PS_REPORT_WORD_MAX];
    char on_divergence[PS_REPORT_WORD_MAX];
    char model[PS_REPORT_WORD_MAX];
    uint64_t features;
    uint64_t params;
    uint32_t epochs;
    uint32_t batch_size;
    char output[PS_REPORT_PATH_MAX];
    char compression[PS_REPORT_WORD_MAX];
} ps_report_plan;

/* Writes p as above (indented, '\n' at the end) to f. PS_EINVAL when a
 * count is out of range (no workers, no servers), PS_ENOMEM, PS_EIO. */
int ps_report_plan_write(FILE *f, const ps_report_plan *p);

/* Reads a plan from fd to its end (a pipe is fine) into *p. PS_EDATA with
 * "what: why" in err when it is not a plan (bad JSON, a key missing or of
 * the wrong type, a string too long, no workers or servers, more than
 * PS_REPORT_JSON_MAX bytes); PS_EIO when fd cannot be read. */
int ps_report_plan_read_fd(int fd, const char *what, ps_report_plan *p, ps_error *err);

/* ---- the summary: psworker --summary-json, psrun --summary-json ----
 *
 * One JSON object; numbers that are not finite are null:
 *   {"job": str, "model": str, "mode": str, "final_loss": num,
 *    "metric_name": "accuracy"|"r2", "loss_name": "log_loss"|"mse",
 *    "test_metric": {"name": metric_name, "value": num} or null (no test set),
 *    "test_loss": {"name": loss_name, "value": num} or null,
 *    "metrics": {METRIC: num, LOSS: num (the test set's, else the shard's),
 *                "train_"METRIC: num, "train_"LOSS: num (the shard's),
 *                "train_loss_last_epoch": num, "train_samples": int,
 *                "test_samples": int, "epochs": int, "steps_per_epoch": int,
 *                "batch_size": int, "pull_s": num, "compute_s": num,
 *                "push_pull_s": num},
 *    "wall_s": num, "samples_per_s": num, "updates": int, "version": int,
 *    "workers": int, "rank": int (a worker's summary only),
 *    "staleness": {"max": int, "mean": num, "p99": int} or null (unknown),
 *    "ranks": [{"rank": int, "clock": int, "pushes": int}, ...],
 *    "curves": [{"rank": int, "every": int, "train_loss": [num, ...],
 *                "test_metric": [num, ...] or null (no test set)}, ...]}
 * psworker writes its own run; psrun writes the whole job's: final_loss is
 * the samples-weighted mean over the workers, samples_per_s and updates
 * their sums, wall_s psrun's, the rest from the lowest rank that finished.
 *
 * "staleness" and "ranks" are psd's figures at the job's end: how many
 * rounds behind the servers' version the pushes applied were (max, mean,
 * 99th percentile), and each rank's clock (rounds pushed) and pushes
 * applied; null and [] when the worker did not learn them. "curves" holds
 * one entry per worker (a worker's summary: its own; psrun's: every worker
 * that finished, by rank): point i of "train_loss" is the mean training
 * loss of epoch (i + 1) * every, point i of "test_metric" the test set's
 * metric_name at that epoch's end, null where an epoch was not reached
 * (a worker that joined late, a loss that is not finite). every is 1 up
 * to PS_REPORT_EPOCHS_MAX epochs, and then the smallest step that keeps
 * the points within it. */

#define PS_REPORT_EPOCHS_MAX 1000 /* points of one curve */
#define PS_REPORT_RANKS_MAX  1024 /* entries of "ranks" and "curves" (PS_MAX_WORKERS) */

/* One worker's figures per epoch; a summary owns its curves' arrays. */
typedef struct ps_report_curve {
    uint32_t rank;
    uint32_t every;      /* point i is epoch (i + 1) * every */
    uint32_t n;          /* points */
    double *train_loss;  /* n figures, NAN where null */
    double *test_metric; /* n figures, or NULL without a test set */
} ps_report_curve;

/* psd's figures for one rank at the job's end. */
typedef struct ps_report_rank {
    uint32_t rank;
    uint64_t clock;  /* rounds it pushed */
    uint64_t pushes; /* pushes the servers applied */
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
    double train_metric, train_loss, train_loss_last_epoch;
    uint64_t train_samples, test_samples;
    uint32_t epochs;
    uint64_t steps_per_epoch;
    uint32_t batch_size;
    double pull_s, compute_s, push_pull_s;
    double wall_s, samples_per_s;
    uint64_t updates, version;
    uint32_t workers;
    int64_t rank;       /* -1: none (psrun's summary) */
    bool has_staleness; /* "staleness" is an object, not null */
    uint64_t staleness_max, staleness_p99;
    double staleness_mean;
    uint32_t nranks;
    ps_report_rank ranks[PS_REPORT_RANKS_MAX];
    uint32_t ncurves;
    ps_report_curve *curves; /* owned: ps_report_summary_fini frees them */
} ps_report_summary;

/* Empty strings, zero counts, NAN figures, no test set, rank -1, no
 * staleness, no ranks, no curves. */
void ps_report_summary_init(ps_report_summary *s);

/* Frees s's curves (s stays a summary without curves); the summary itself
 * is the caller's. A summary read or given curves needs it. */
void ps_report_summary_fini(ps_report_summary *s);

/* Adds a copy of a curve of n points (at most PS_REPORT_EPOCHS_MAX, every
 * >= 1; test_metric NULL without a test set) to s. PS_EINVAL when the curve
 * is out of those bounds or s holds PS_REPORT_RANKS_MAX already, PS_ENOMEM. */
int ps_report_summary_curve_add(ps_report_summary *s, uint32_t rank, uint32_t every, uint32_t n,
                                const double *train_loss, const double *test_metric);

/* The job's summary from its workers' (psrun): begin, add each worker's
 * that finished in rank order, end. The final loss is the samples-weighted
 * mean of the workers' losses over their shards (the loss over the whole
 * training set: a NaN stays NaN), samples/s and updates are their sums,
 * the test figures and psd's are the first added (the lowest rank that
 * finished), and every worker adds its curve. */
typedef struct ps_report_job_sum {
    double loss_sum, samples_sum, throughput;
    uint64_t updates;
    uint32_t added;
} ps_report_job_sum;

void ps_report_job_begin(ps_report_summary *job, ps_report_job_sum *sum);

/* Adds worker summary w to job (w is left as it was). PS_ENOMEM (job keeps
 * what it had), PS_EINVAL when its curves do not fit. */
int ps_report_job_add(ps_report_summary *job, ps_report_job_sum *sum, const ps_report_summary *w);

/* Sets the job's own figures: its name, mode, workers, psrun's wall time,
 * rank -1. PS_EINVAL when no worker was added. */
int ps_report_job_end(ps_report_summary *job, const ps_report_job_sum *sum, const char *name,
                      const char *mode, uint32_t workers, double wall_s);

/* Writes s as above (one line, '\n' at the end) to f. PS_EINVAL without a
 * metric or loss name, PS_ENOMEM, PS_EIO. */
int ps_report_summary_write(FILE *f, const ps_report_summary *s);

/* Reads the summary in the file at path into *s, which then owns curves
 * (ps_report_summary_fini). PS_EIO when it cannot be read, PS_EDATA when it
 * is not a summary (as for a plan; also a curve longer than
 * PS_REPORT_EPOCHS_MAX or with test figures where the summary has no test
 * set), PS_ENOMEM; err says "path: why". *s is untouched on an error. */
int ps_report_summary_read(const char *path, ps_report_summary *s, ps_error *err);

/* ---- training curves: psworker --curves, psrun --curves ----
 *
 * An SVG of s's curves (svg.h draws it): the training loss per epoch in one
 * panel, the test metric in the other ("no test set" when there is none),
 * a line per curve in the order of s->curves, "rank R" in the legend, and
 * the title "JOB — MODEL, mode MODE, codec CODEC". The panels' data-name is
 * "train_loss" and "test_metric"; svg.h says how to read the points back. */

/* Writes the chart of s to f; codec is the pushes' compression ("none").
 * PS_ENOMEM, PS_EIO. */
int ps_report_curves_write(FILE *f, const ps_report_summary *s, const char *codec);

/* ---- files ---- */

/* Writes a file with fill(f, arg) into a temporary file beside path
 * (fsync'd, mode 0644), then renames it to path, so a reader never sees
 * half of it. fill returns 0 or a PS_E code. On failure nothing is left
 * behind and err says "path: reason" (PS_EIO, or fill's code). */
int ps_report_file_replace(const char *path, int (*fill)(FILE *f, const void *arg), const void *arg,
                           ps_error *err);

/* A summary (ps_report_summary_write) and its curves (ps_report_curves_write)
 * written to path so. */
int ps_report_summary_file_write(const char *path, const ps_report_summary *s, ps_error *err);
int ps_report_curves_file_write(const char *path, const ps_report_summary *s, const char *codec,
                                ps_error *err);

/* ---- sd_notify datagrams (read side; psd writes them, server/notify.c) ----
 *
 * One datagram is newline-separated KEY=VALUE lines (sd_notify(3)). psd
 * sends READY=1 once it listens, STATUS=... as it goes, and STOPPING=1 when
 * it stops, with STATUS= in the same datagram saying why. */

#define PS_REPORT_STATUS_MAX 512

typedef struct ps_report_notify {
    bool ready;                        /* READY=1 */
    bool stopping;                     /* STOPPING=1 */
    char status[PS_REPORT_STATUS_MAX]; /* STATUS=, "" when absent */
} ps_report_notify;

/* Parses one datagram of len bytes (no NUL needed) into a cleared *n;
 * other keys are ignored, a STATUS too long is cut at a UTF-8 boundary. */
void ps_report_notify_parse(const char *dgram, size_t len, ps_report_notify *n);

/* ---- numbers for people ---- */

/* x with `decimals` digits after the point ("0.1235"), or "nan", "inf",
 * "-inf" (printf gives "-nan"); returns buf. */
const char *ps_report_number_format(double x, int decimals, char *buf, size_t cap);

#endif
