/* trainer.h — the training loop of one psworker: loads and standardises the
 * job's data, takes its shard, and runs rounds of pull / gradient / push
 * against the servers through libpsworker. A row per consistency mode says
 * what a round waits for (sync: round t pulls version t and pushes clock t;
 * async: pull at once, push; ssp: the pull carries the worker's clock, the
 * rounds it pushed); a round pushes one batch's gradient, or with
 * training.local_steps H > 1 the change of H local sgd steps (local SGD),
 * covering H batches. Every worker takes the same
 * number of steps per epoch, ceil(ceil(N / W) / batch), so sync rounds line
 * up: batch j covers positions [j*B, (j+1)*B) of the epoch, cut at the end of
 * the worker's shard; a batch wholly past the end of a smaller shard wraps
 * around its permutation. When the job names an output folder, a worker
 * writes the final model at its end if no rank below its own is held by a
 * worker at psd then: rank 0 as a rule; the lowest rank still there when
 * rank 0 left early; the rank that finishes last when it came back late
 * and trained alone (it writes the job's last θ over the earlier one). */
#ifndef PS_TRAINER_H
#define PS_TRAINER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "job.h"
#include "log.h"
#include "model.h"
#include "report_summary.h"

typedef struct ps_trainer ps_trainer;

typedef struct ps_trainer_opts {
    int rank;                          /* -1: the servers assign one */
    int progress_fd;                   /* -1: none; else a "progress ..." line per step */
    bool tty;                          /* redraw a progress bar on stderr, no epoch lines */
    int timeout_ms;                    /* per request; 0: the client's default */
    const ps_log *log;                 /* not owned; NULL logs at info */
    const volatile sig_atomic_t *stop; /* not owned; nonzero: stop between steps */
} ps_trainer_opts;

/* What one worker's run gives; the summary JSON is written from it. */
typedef struct ps_train_result {
    const char *model;       /* "logistic" */
    const char *loss_name;   /* "log_loss" | "mse" */
    const char *metric_name; /* "accuracy" | "r2" */
    bool has_auc;            /* a binary classifier: train, test and the curves have an AUC */
    const char *mode;        /* "sync" | "async" | "ssp" */
    double final_loss;       /* loss on this worker's shard at the final θ */
    ps_model_metrics train;  /* the final θ on this worker's shard */
    bool has_test;
    ps_model_metrics test; /* the final θ on the test set, when has_test */
    double train_loss_last_epoch;
    uint64_t train_samples; /* rows of this worker's shard */
    uint64_t test_samples;
    double wall_s;        /* connect to close */
    double samples_per_s; /* rows this worker trained on / wall_s */
    uint64_t updates;     /* pushes by this worker */
    uint64_t batches;     /* batches it trained (data.assign: dynamic: those shard 0 took) */
    /* training steps' time: pulls of their own (θ did not come back with
     * the push), the gradient, the push with θ riding back */
    double pull_s, compute_s, push_pull_s;
    uint64_t version; /* version of the final θ */
    uint32_t workers;
    uint32_t rank;
    uint32_t epochs;
    uint64_t steps_per_epoch;
    uint32_t batch_size;
    /* per epoch, for the curves: point i is epoch (i + 1) * epoch_every
     * (1 up to PS_REPORT_EPOCHS_MAX epochs), NAN for an epoch not reached.
     * The trainer's arrays: valid until ps_trainer_destroy. */
    uint32_t epoch_every, epoch_points;
    const double *epoch_train_loss;  /* the epoch's mean training loss */
    const double *epoch_test_metric; /* metric_name on the test set at its end; NULL without one */
    const double *epoch_test_auc;    /* the test set's AUC then; NULL without one or an AUC */
    /* psd's figures at the job's end (report_summary.h's "staleness" and "ranks");
     * has_server_stats false: unknown, and the summary says null */
    bool has_server_stats;
    uint64_t staleness_max, staleness_p99; /* rounds behind the servers' version */
    double staleness_mean;
    uint32_t nranks;                        /* entries of the rank_ arrays, by rank */
    uint64_t rank_clock[PS_MAX_WORKERS];    /* rounds each rank pushed */
    uint64_t rank_pushes[PS_MAX_WORKERS];   /* pushes the servers applied */
    uint64_t rank_expected[PS_MAX_WORKERS]; /* pushes its data makes, as its worker said (0: ?) */
    uint32_t rank_flags[PS_MAX_WORKERS];    /* PS_RANK_LIVE, PS_RANK_FINISHED (psworker.h) */
    uint64_t rank_dropped[PS_MAX_WORKERS];  /* pushes shard 0 dropped as late (backup workers) */
    uint64_t rank_rounds[PS_MAX_WORKERS];   /* sync: rounds closed while it trained */
} ps_train_result;

/* Whether psworker can train the job: a built-in model, a data.train, no
 * setting it does not support yet (PS_EUNSUPPORTED) and sizes it can use
 * (PS_ECONFIG); err names the job file. Opens nothing. */
int ps_trainer_check_job(const ps_job *job, ps_error *err);

/* Reads the job's training (and test) data, checks the labels for the
 * model, computes the training set's statistics and standardises both sets
 * (data.normalize: standard), and allocates every buffer the loop needs.
 * Errors: PS_EDATA / PS_EIO for the data files ("file:line: ..."),
 * PS_EUNSUPPORTED for a model, data format or setting psworker does not
 * train yet, PS_ECONFIG for a job it cannot train, PS_ENOMEM. The caller
 * owns *out (ps_trainer_destroy). */
int ps_trainer_new(const ps_job *job, const ps_trainer_opts *opts, ps_trainer **out, ps_error *err);

/* Connects, trains every epoch, pulls the final θ, evaluates it, writes the
 * output (rank 0), says BYE, and fills *res. PS_EINTR (message
 * "interrupted") when opts->stop was set; the client is closed cleanly then
 * too. PS_EDIVERGED when a step's loss, an epoch's θ or the final θ is not
 * finite, a push gradient is past compression.push's range, a pulled θ at
 * compression.pull's, or an epoch's loss over 1000 times the first
 * epoch's, and job.on_divergence is stop: err says "training diverged in
 * epoch E: loss is nan (the likely cause)", every server got a BYE with
 * PS_FLAG_ABORT and that sentence, and no model was written. PS_ESTOPPED,
 * PS_EABORTED or PS_ECOMPLETE when a server stopped the job (err says why;
 * PS_ECOMPLETE is no failure). Other errors come from the client
 * (PS_ETIMEDOUT, PS_ESERVER, ...) or the output folder (PS_EIO). Call once. */
int ps_trainer_run(ps_trainer *t, ps_train_result *res, ps_error *err);

/* Frees the trainer (closing a client still open) and sets *tp to NULL; a
 * NULL *tp is fine. */
void ps_trainer_destroy(ps_trainer **tp);

/* steps per epoch for every worker: ceil(ceil(train_rows / workers) / batch). */
uint64_t ps_trainer_steps_per_epoch(uint64_t train_rows, uint32_t workers, uint32_t batch_size);

/* The ranks whose data was not trained to the end when the run asked psd
 * (no PS_RANK_FINISHED), at most cap into out; their count. 0 without
 * psd's figures. In output.c. */
size_t ps_train_result_unfinished(const ps_train_result *r, ps_report_unfinished *out, size_t cap);

/* Writes the summary JSON of a run to path (temporary file, then rename),
 * in the format common/report_summary.h describes (ps_report_summary); numbers
 * that are not finite are null. Defined in output.c. */
int ps_train_result_write_json(const ps_train_result *r, const char *job, const char *path,
                               ps_error *err);

/* Writes the run's training curves to path as an SVG (report_curves.h's
 * ps_report_curves_write; codec is the pushes' compression), temporary
 * file then rename. PS_EIO with "path: reason", PS_ENOMEM. In output.c. */
int ps_train_result_write_curves(const ps_train_result *r, const char *job, const char *codec,
                                 const char *path, ps_error *err);

#endif
