/* trainer.c — one worker's training loop: data in, shard, epochs of
 * pull / gradient / push, per-epoch evaluation and the figures the curves
 * draw, the final θ and the output folder. The progress lines and bar are
 * progress.h's, the summary output.c's. Every buffer is allocated before
 * the first step. */
#include "trainer.h"

#include "client_job.h"
#include "client_lease.h"
#include "dataset.h"
#include "output.h"
#include "progress.h"
#include "psworker.h"
#include "report_summary.h"
#include "sparse_step.h"
#include "util.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct ps_trainer ps_trainer_t;

/* data.assign: dynamic: batches leased ahead of the one trained, so the
 * queue never waits on a round trip (each push asks for as many as it
 * used), and the most held at once */
#define TRAINER_LEASE_AHEAD 2
#define TRAINER_LEASE_MAX   8

/* What a step sends and waits for in each consistency mode: one row per
 * mode (docs/architecture.md#a-consistency-mode), so the loop never asks which mode it runs. A
 * round is one push: one batch, or H batches with local SGD. */
typedef struct step_mode {
    /* makes θ in hand the one round `round` computes from */
    int (*theta_get)(ps_trainer_t *t, uint64_t round, ps_error *err);
    /* the pull riding behind round's push: its min_version and clock */
    void (*pull_after)(uint64_t round, uint64_t *min_version, uint64_t *clock);
    /* θ for the test evaluation once `rounds` rounds are pushed */
    int (*theta_eval)(ps_trainer_t *t, uint64_t rounds, ps_error *err);
    /* the round after `round`, once its push is done */
    uint64_t (*round_next)(const ps_trainer_t *t, uint64_t round);
} step_mode;

/* What a round pushes: the gradient of one batch, or the change of H local
 * steps (local SGD). Fills t->grad; *rows gets the samples it covers. */
typedef int (*step_grad_fn)(ps_trainer_t *t, uint64_t round, size_t *rows, double *loss,
                            ps_error *err);

struct ps_trainer {
    ps_job job;
    const step_mode *mode;
    /* the mode's row (mode.h): with rounds, rounds are the servers'
     * versions and a registration says where to go on */
    const ps_mode_desc *mode_desc;
    step_grad_fn grad_fn;
    uint32_t local_steps; /* H: batches per round (1 without local SGD) */
    float local_lr;       /* local SGD's plain sgd step */
    float *theta_local;   /* local SGD: this worker's copy of θ (NULL otherwise) */
    uint64_t total_batches;
    uint64_t total_rounds;
    uint32_t shuffled; /* the epoch whose order is in perm (UINT32_MAX: none) */
    ps_trainer_opts opts;
    ps_dataset *train_all;        /* the whole training set, until the shard is cut */
    ps_dataset *train;            /* this worker's shard */
    ps_dataset *test;             /* NULL without data.test */
    double *norm_mean, *norm_std; /* data.normalize: standard's statistics, else NULL */
    ps_model *model;              /* a dense model's; NULL for a sparse one ... */
    ps_sparse_step *sparse;       /* ... whose data, rows and steps are sparse_step.h's */
    /* the model as reports name it: "logistic", "log_loss", "accuracy" */
    const char *model_name, *loss_name, *metric_name;
    bool has_auc;
    uint64_t shard_rows; /* rows of this worker's shard */
    uint64_t test_rows;  /* of the test set; 0 without one */
    uint64_t num_params;
    uint64_t train_rows; /* N: the whole training set */
    uint64_t max_shard;  /* ceil(N / W): positions of every epoch */
    uint64_t steps_per_epoch;
    float *theta;    /* θ as ps_client_pull delivers it */
    const float *th; /* θ in hand: theta, or where the last push brought it back */
    float *grad;
    float *xb; /* batch_size x features */
    float *yb;
    size_t *perm; /* shard rows in this epoch's order */
    ps_client *client;
    uint32_t rank;
    bool have_theta;
    bool fresh;           /* θ in hand came back with the last push (async: use it as is) */
    uint64_t batch_index; /* the batch (counted across epochs) xb/yb hold (UINT64_MAX: none) */
    size_t batch_rows;
    uint64_t version; /* of theta in hand */
    uint64_t updates;
    uint64_t samples;
    double pull_s, compute_s, push_pull_s; /* where the training steps' time went */
    ps_progress progress;                  /* the progress lines and the bar */
    /* per epoch for the curves: point i is epoch (i + 1) * epoch_every */
    double *epoch_loss;
    double *epoch_metric; /* NULL without a test set */
    double *epoch_auc;    /* NULL without a test set or an AUC */
    uint32_t epoch_every, epoch_points;
    bool warned_diverged;
    /* the first epoch's mean loss this worker saw (loss_growth_check) */
    bool has_loss_base;
    uint32_t loss_base_epoch; /* 1-based */
    double loss_base;
    uint64_t rolled_seen; /* pushes rolled back by restarts, as far as the loop took them in */
    /* data.assign: dynamic: batches come from shard 0's queue; every
     * worker holds the whole training set, in one order per epoch drawn
     * from the job's seed. The batches this worker holds leases of, in
     * order, and the batches it trained (pushes shard 0 took) */
    bool dynamic;
    uint64_t leases[TRAINER_LEASE_MAX];
    uint32_t nleases;
    uint64_t batches_mine;
    char test_note[128]; /* ", test accuracy 0.9561, test log-loss 0.1234, test auc 0.9912"
                          * of the last epoch (auc for binary classifiers), or "" */
};

/* ---- setup ---- */

static void trainer_modes_pick(ps_trainer *t);

static int read_set(const ps_job *job, const char *path, const char *labels, const ps_model *model,
                    const volatile sig_atomic_t *stop, ps_dataset **out, ps_error *err)
{
    int rc = ps_dataset_read(path, labels, job->data.format, job->model.features,
                             job->data.label_column, stop, out, err);
    if (rc != 0)
        return rc;
    ps_error why;
    size_t bad = 0;
    rc = ps_model_prepare_labels(model, ps_dataset_y(*out), ps_dataset_rows(*out), &bad, &why);
    if (rc != 0) {
        char where[PS_PATH_MAX + 64];
        ps_dataset_row_where(*out, bad, where, sizeof where);
        ps_dataset_destroy(out);
        return ps_error_set(err, rc, "%s: %s", where, why.msg);
    }
    return 0;
}

static int standardize_sets(ps_trainer *t, ps_error *err)
{
    size_t d = ps_dataset_features(t->train_all);
    double *mean = calloc(d, sizeof *mean);
    double *std = calloc(d, sizeof *std);
    if (mean == NULL || std == NULL) {
        free(mean);
        free(std);
        return ps_error_set(err, PS_ENOMEM, "out of memory for feature statistics");
    }
    ps_dataset_stats(t->train_all, mean, std);
    ps_dataset_standardize(t->train_all, mean, std);
    if (t->test)
        ps_dataset_standardize(t->test, mean, std);
    t->norm_mean = mean; /* kept for the model folder (write_output) */
    t->norm_std = std;
    return 0;
}

/* Whether psworker has the job's dense model. */
static int check_dense_model(const ps_job *job, ps_error *err)
{
    ps_model_spec spec;
    ps_model_spec_from_job(job, &spec);
    ps_model *m = NULL;
    ps_error why;
    int rc = ps_model_new(&spec, 1, &m, &why);
    ps_model_destroy(&m);
    if (rc != 0)
        return ps_error_set(err, rc == PS_EUNSUPPORTED || rc == PS_ENOMEM ? rc : PS_ECONFIG,
                            "%s: %s", job->path, why.msg);
    return 0;
}

int ps_trainer_check_job(const ps_job *job, ps_error *err)
{
    int rc =
        ps_job_is_sparse(job) ? ps_sparse_step_check_job(job, err) : check_dense_model(job, err);
    if (rc != 0)
        return rc;
    if (job->data.train[0] == '\0')
        return ps_error_set(err, PS_ECONFIG, "%s: the job has no data.train to train on",
                            job->path);
    if (job->workers == 0 || job->training.batch_size == 0 || job->training.epochs == 0)
        return ps_error_set(err, PS_ECONFIG,
                            "%s: workers, training.batch_size and training.epochs must be > 0",
                            job->path);
    if (job->nservers == 0 || job->nservers > PS_MAX_SHARDS)
        return ps_error_set(err, PS_ECONFIG, "%s: the job lists no servers", job->path);
    return 0;
}

/* The per-epoch figures of the curves: every epoch up to
 * PS_REPORT_EPOCHS_MAX, then every epoch_every-th; NAN until recorded. */
static int alloc_epoch_record(ps_trainer *t, ps_error *err)
{
    uint32_t epochs = t->job.training.epochs;
    t->epoch_every = (epochs + PS_REPORT_EPOCHS_MAX - 1) / PS_REPORT_EPOCHS_MAX;
    t->epoch_points = epochs / t->epoch_every;
    size_t n = t->epoch_points;
    t->epoch_loss = malloc(n * sizeof *t->epoch_loss);
    bool test = t->test_rows > 0, auc = test && t->has_auc;
    if (test)
        t->epoch_metric = malloc(n * sizeof *t->epoch_metric);
    if (auc)
        t->epoch_auc = malloc(n * sizeof *t->epoch_auc);
    if (t->epoch_loss == NULL || (test && t->epoch_metric == NULL) || (auc && t->epoch_auc == NULL))
        return ps_error_set(err, PS_ENOMEM, "out of memory for the per-epoch figures");
    for (size_t i = 0; i < n; i++) {
        t->epoch_loss[i] = NAN;
        if (t->epoch_metric)
            t->epoch_metric[i] = NAN;
        if (t->epoch_auc)
            t->epoch_auc[i] = NAN;
    }
    return 0;
}

static int alloc_buffers(ps_trainer *t, ps_error *err)
{
    size_t d = t->job.model.features;
    /* a batch never holds more rows than the largest shard */
    size_t b = t->job.training.batch_size;
    if (b > t->max_shard)
        b = (size_t)t->max_shard;
    size_t xcells;
    if (!ps_mul_ok(b, d, &xcells) || t->num_params > SIZE_MAX / sizeof(float))
        return ps_error_set(err, PS_ENOMEM, "batch of %zu x %zu is too large", b, d);
    t->theta = calloc(t->num_params, sizeof(float));
    t->grad = calloc(t->num_params, sizeof(float));
    if (t->local_steps > 1 && (t->theta_local = calloc(t->num_params, sizeof(float))) == NULL)
        return ps_error_set(err, PS_ENOMEM, "out of memory for the local copy of θ");
    if (t->sparse == NULL) { /* a sparse batch is sparse_step's */
        t->xb = calloc(xcells, sizeof(float));
        t->yb = calloc(b, sizeof(float));
    }
    t->th = t->theta;
    if (!t->theta || !t->grad || (t->sparse == NULL && (!t->xb || !t->yb)))
        return ps_error_set(err, PS_ENOMEM, "out of memory for the training buffers");
    return alloc_epoch_record(t, err);
}

uint64_t ps_trainer_steps_per_epoch(uint64_t train_rows, uint32_t workers, uint32_t batch_size)
{
    if (workers == 0 || batch_size == 0)
        return 0;
    uint64_t max_shard = (train_rows + workers - 1) / workers;
    return (max_shard + batch_size - 1) / batch_size;
}

/* A dense model's data sets, read, their labels checked for the model (of
 * one row until dense_model_new) and standardised. */
static int dense_read(ps_trainer *t, ps_error *err)
{
    const ps_job *job = &t->job;
    ps_model_spec spec;
    ps_model_spec_from_job(job, &spec);
    int rc = ps_model_new(&spec, 1, &t->model, err);
    if (rc != 0)
        return rc;
    rc = read_set(job, job->data.train, job->data.train_labels, t->model, t->opts.stop,
                  &t->train_all, err);
    if (rc != 0)
        return rc;
    if (job->data.test[0] != '\0') {
        rc = read_set(job, job->data.test, job->data.test_labels, t->model, t->opts.stop, &t->test,
                      err);
        if (rc != 0)
            return rc;
    }
    t->train_rows = ps_dataset_rows(t->train_all);
    t->test_rows = t->test != NULL ? ps_dataset_rows(t->test) : 0;
    if (job->data.normalize == PS_NORMALIZE_STANDARD && t->train_rows >= job->workers)
        return standardize_sets(t, err);
    return 0;
}

/* The dense model with work buffers big enough for a batch (at most a
 * shard), a whole shard and the test set. */
static int dense_model_new(ps_trainer *t, ps_error *err)
{
    ps_model_spec spec;
    ps_model_spec_from_job(&t->job, &spec);
    size_t rows = (size_t)t->max_shard;
    if (t->test && ps_dataset_rows(t->test) > rows)
        rows = ps_dataset_rows(t->test);
    ps_model_destroy(&t->model);
    int rc = ps_model_new(&spec, rows, &t->model, err);
    if (rc != 0)
        return rc;
    t->num_params = ps_model_num_params(t->model);
    t->model_name = ps_model_name(t->model);
    t->loss_name = ps_model_loss_name(t->model);
    t->metric_name = ps_model_metric_name(t->model);
    t->has_auc = ps_model_has_auc(t->model);
    return 0;
}

/* A sparse model's data (sparse_step.h); its dense θ is the bias. */
static int sparse_new(ps_trainer *t, ps_error *err)
{
    int rc = ps_sparse_step_new(&t->job, t->opts.stop, &t->sparse, err);
    if (rc != 0)
        return rc;
    t->train_rows = ps_sparse_step_train_rows(t->sparse);
    t->test_rows = ps_sparse_step_test_rows(t->sparse);
    ps_tensor_info tensors[PS_MAX_TENSORS];
    size_t n = 0;
    if (ps_job_layout(&t->job, tensors, PS_MAX_TENSORS, &n, &t->num_params) != 0 ||
        t->num_params != 1)
        return ps_error_set(err, PS_ECONFIG, "%s: a sparse model's dense θ is its bias alone",
                            t->job.path);
    t->model_name = ps_model_type_name(t->job.model.type);
    t->loss_name = "log_loss";
    t->metric_name = "accuracy";
    t->has_auc = true;
    return 0;
}

int ps_trainer_new(const ps_job *job, const ps_trainer_opts *opts, ps_trainer **out, ps_error *err)
{
    *out = NULL;
    int rc = ps_trainer_check_job(job, err);
    if (rc != 0)
        return rc;
    if (opts->rank >= 0 && (uint32_t)opts->rank >= job->workers)
        return ps_error_set(err, PS_EINVAL, "rank %d is outside [0, %u) of the job's workers",
                            opts->rank, job->workers);
    ps_trainer *t = calloc(1, sizeof *t);
    if (t == NULL)
        return ps_error_set(err, PS_ENOMEM, "out of memory for the trainer");
    t->job = *job;
    t->opts = *opts;
    ps_progress_init(&t->progress, opts->progress_fd, opts->tty, job->training.epochs,
                     t->test_note);
    t->batch_index = UINT64_MAX;
    t->shuffled = UINT32_MAX;
    trainer_modes_pick(t);

    rc = ps_job_is_sparse(job) ? sparse_new(t, err) : dense_read(t, err);
    if (rc != 0)
        goto fail;
    if (t->train_rows < job->workers) {
        rc = ps_error_set(err, PS_EDATA, "%s: %llu rows are fewer than the job's %u workers",
                          job->data.train, (unsigned long long)t->train_rows, job->workers);
        goto fail;
    }
    t->dynamic = job->data.assign == PS_ASSIGN_DYNAMIC;
    /* dynamic: one queue of the whole set's batches, every worker reads any */
    uint32_t parts = t->dynamic ? 1 : job->workers;
    t->max_shard = (t->train_rows + parts - 1) / parts;
    t->steps_per_epoch = ps_trainer_steps_per_epoch(t->train_rows, parts, job->training.batch_size);
    if (t->dynamic && t->steps_per_epoch > UINT32_MAX) {
        rc =
            ps_error_set(err, PS_ECONFIG, "%s: %llu batches an epoch are more than the queue holds",
                         job->data.train, (unsigned long long)t->steps_per_epoch);
        goto fail;
    }
    t->total_batches = t->steps_per_epoch * job->training.epochs;
    t->total_rounds = (t->total_batches + t->local_steps - 1) / t->local_steps;
    if (t->sparse == NULL) {
        rc = dense_model_new(t, err);
        if (rc != 0)
            goto fail;
    }
    rc = alloc_buffers(t, err);
    if (rc != 0)
        goto fail;
    *out = t;
    return 0;
fail:
    ps_trainer_destroy(&t);
    return rc;
}

void ps_trainer_destroy(ps_trainer **tp)
{
    if (tp == NULL || *tp == NULL)
        return;
    ps_trainer *t = *tp;
    ps_client_close(&t->client);
    ps_dataset_destroy(&t->train_all);
    ps_dataset_destroy(&t->train);
    ps_dataset_destroy(&t->test);
    ps_model_destroy(&t->model);
    ps_sparse_step_destroy(&t->sparse);
    free(t->theta);
    free(t->grad);
    free(t->theta_local);
    free(t->xb);
    free(t->yb);
    free(t->perm);
    free(t->epoch_loss);
    free(t->epoch_metric);
    free(t->epoch_auc);
    free(t->norm_mean);
    free(t->norm_std);
    free(t);
    *tp = NULL;
}

/* ---- the shuffle: Fisher–Yates from a PRNG seeded by (seed, rank, epoch) ---- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, bound) without modulo bias (Lemire's method). */
static uint64_t rand_below(uint64_t *s, uint64_t bound)
{
    unsigned __int128 m = (unsigned __int128)splitmix64(s) * bound;
    uint64_t low = (uint64_t)m;
    if (low < bound) {
        uint64_t threshold = -bound % bound;
        while (low < threshold) {
            m = (unsigned __int128)splitmix64(s) * bound;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

static void shuffle_epoch(ps_trainer *t, uint32_t epoch)
{
    size_t n = (size_t)t->shard_rows;
    if (t->perm == NULL) /* a stream: the file's order */
        return;
    uint64_t s = t->job.training.seed;
    /* dynamic: one order for every worker (rank 0 of the seed's draws is none's) */
    uint64_t who = t->dynamic ? 0 : (uint64_t)t->rank + 1;
    s = splitmix64(&s) ^ who * 0xd1b54a32d192ed03ull;
    s = splitmix64(&s) ^ ((uint64_t)epoch + 1) * 0x8cb92ba72f3d8dd7ull;
    for (size_t i = 0; i < n; i++)
        t->perm[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)rand_below(&s, (uint64_t)i + 1);
        size_t tmp = t->perm[i];
        t->perm[i] = t->perm[j];
        t->perm[j] = tmp;
    }
}

/* Batch j of the epoch: positions [j*B, min((j+1)*B, max_shard)),
 * position p taking shard row perm[p % n]. A batch that starts inside the
 * shard stops at its end, so no row counts twice in a batch (a full-batch
 * round is exact); only a batch wholly past the end of a smaller shard
 * wraps around its permutation. At least one position. */
static void batch_bounds(const ps_trainer *t, uint64_t j, uint64_t *lo, uint64_t *hi)
{
    uint64_t n = t->shard_rows;
    *lo = j * t->job.training.batch_size;
    *hi = *lo + t->job.training.batch_size;
    if (*hi > t->max_shard)
        *hi = t->max_shard;
    if (*lo<n && * hi> n)
        *hi = n;
}

/* Copies batch j of the epoch into xb/yb; returns its rows. */
static size_t fill_batch(ps_trainer *t, uint64_t j)
{
    size_t n = ps_dataset_rows(t->train);
    size_t d = ps_dataset_features(t->train);
    const float *x = ps_dataset_cx(t->train);
    const float *y = ps_dataset_cy(t->train);
    uint64_t lo, hi;
    batch_bounds(t, j, &lo, &hi);
    for (uint64_t p = lo; p < hi; p++) {
        size_t row = t->perm[p % n];
        memcpy(t->xb + (p - lo) * d, x + row * d, d * sizeof(float));
        t->yb[p - lo] = y[row];
    }
    return (size_t)(hi - lo);
}

/* ---- talking to the servers ---- */

static bool stop_requested(const ps_trainer *t)
{
    return t->opts.stop != NULL && *t->opts.stop != 0;
}

/* An error of a client call; PS_EINTR when a stop was asked for meanwhile.
 * A server's stop (PS_ESTOPPED, PS_EABORTED, PS_ECOMPLETE) and a
 * registration again (PS_EREJOINED) keep their code and the client's
 * sentence, which says why. */
static int client_failed(ps_trainer *t, int rc, const char *what, ps_error *err)
{
    if (stop_requested(t) || rc == PS_EINTR)
        return ps_error_set(err, PS_EINTR, "interrupted");
    const char *why = ps_client_last_error(t->client);
    if (why == NULL || why[0] == '\0')
        why = ps_strerror(rc);
    if (rc == PS_ESTOPPED || rc == PS_EABORTED || rc == PS_ECOMPLETE)
        return ps_error_set(err, rc, "%s: %s", ps_strerror(rc), why);
    if (rc == PS_EREJOINED)
        return ps_error_set(err, rc, "%s", why);
    return ps_error_set(err, rc, "%s: %s", what, why);
}

static int theta_pull_clock(ps_trainer *t, uint64_t clock, uint64_t min_version, ps_error *err);

/* Pulls θ, waiting until the servers' version is at least min_version. A
 * parked pull waits as long as the servers answer (the client's heartbeats
 * count: the other workers may be slower); a server silent for
 * heartbeat.deadline_ms ends it. */
static int theta_pull(ps_trainer *t, uint64_t min_version, ps_error *err)
{
    return theta_pull_clock(t, 0, min_version, err);
}

/* theta_pull carrying the worker's clock (ssp: the rounds it has pushed). */
static int theta_pull_clock(ps_trainer *t, uint64_t clock, uint64_t min_version, ps_error *err)
{
    uint64_t v = 0;
    int rc =
        ps_client_pull_clock(t->client, clock, min_version, t->theta, (size_t)t->num_params, &v);
    t->th = t->theta;
    if (rc != 0)
        return client_failed(t, rc, "pull", err);
    t->have_theta = true;
    t->version = v;
    return 0;
}

/* Makes θ in hand at least version min_version, pulling only if it is not. */
static int theta_refresh(ps_trainer *t, uint64_t min_version, ps_error *err)
{
    if (t->have_theta && t->version >= min_version)
        return 0;
    return theta_pull(t, min_version, err);
}

/* The client's lines about a server that falls silent and answers again. */
static void client_note(void *arg, int warning, const char *line)
{
    ps_trainer *t = arg;
    ps_progress_bar_end(&t->progress);
    if (warning)
        PS_LOG_W(t->opts.log, "%s", line);
    else
        PS_LOG_I(t->opts.log, "%s", line);
}

static int connect_servers(ps_trainer *t, ps_error *err)
{
    /* the options ps_client_open_job opens with, from the same code */
    const char *servers[PS_MAX_SHARDS];
    ps_client_opts co;
    ps_client_opts_from_job(&t->job, servers, &co);
    co.rank = t->opts.rank;
    if (t->opts.timeout_ms > 0)
        co.timeout_ms = t->opts.timeout_ms;
    co.log_fn = client_note;
    co.log_arg = t;
    co.pushes_expected = t->dynamic ? 0 : t->total_rounds; /* dynamic: as the queue gives */
    char why[PS_ERROR_MSG_MAX] = "";
    int rc = ps_client_open(&co, &t->client, why, sizeof why);
    if (rc != 0) {
        if (stop_requested(t) || rc == PS_EINTR)
            return ps_error_set(err, PS_EINTR, "interrupted");
        /* the client's sentence names the server */
        return ps_error_set(err, rc, "cannot join job %s: %s", t->job.name,
                            why[0] ? why : ps_strerror(rc));
    }
    int rank = ps_client_rank(t->client);
    uint32_t workers = ps_client_num_workers(t->client);
    uint64_t p = ps_client_num_params(t->client);
    if (workers != t->job.workers)
        return ps_error_set(err, PS_ECONFIG, "the servers run %u workers, the job file says %u",
                            workers, t->job.workers);
    if (strcmp(ps_client_mode(t->client), ps_mode_name(t->job.mode)) != 0)
        return ps_error_set(err, PS_ECONFIG, "the servers run mode %s, the job file says mode %s",
                            ps_client_mode(t->client), ps_mode_name(t->job.mode));
    if (rank < 0 || (uint32_t)rank >= workers)
        return ps_error_set(err, PS_ESERVER, "the servers gave rank %d of %u workers", rank,
                            workers);
    if (p != t->num_params)
        return ps_error_set(
            err, PS_ECONFIG, "the servers hold %llu parameters, the %s model of the job has %llu",
            (unsigned long long)p, t->model_name, (unsigned long long)t->num_params);
    if (t->sparse != NULL) {
        const char *name = NULL;
        uint32_t dim = 0;
        if (ps_client_num_tables(t->client) != 1 ||
            ps_client_table(t->client, 0, &name, &dim) != 0 || dim != ps_sparse_step_dim(t->sparse))
            return ps_error_set(err, PS_ECONFIG,
                                "the servers hold %zu sparse tables (the first of rows of %u "
                                "floats), the %s model of the job one of %u",
                                ps_client_num_tables(t->client), dim, t->model_name,
                                ps_sparse_step_dim(t->sparse));
    }
    t->rank = (uint32_t)rank;
    const char *shm_why;
    size_t shm = ps_client_shared_memory(t->client, &shm_why);
    if (shm_why[0] != '\0')
        PS_LOG_W(t->opts.log, "no shared memory with a server on this host: %s", shm_why);
    else if (shm > 0)
        PS_LOG_D(t->opts.log, "θ and gradients go through shared memory with %zu of %u servers",
                 shm, t->job.nservers);
    return 0;
}

/* This worker's rows of the training set. A single worker's shard is the
 * whole set: it takes it over instead of copying it. */
static int cut_shard(ps_trainer *t, ps_error *err)
{
    if (t->sparse != NULL) {
        int rc = ps_sparse_step_shard(t->sparse, t->rank, &t->shard_rows, err);
        if (rc != 0 || t->job.data.stream)
            return rc; /* a stream goes in the file's order: no perm */
        t->perm = calloc((size_t)t->shard_rows, sizeof *t->perm);
        if (t->perm == NULL)
            return ps_error_set(err, PS_ENOMEM, "out of memory for the shard's order");
        return 0;
    }
    if (t->job.workers == 1 || t->dynamic) { /* dynamic: the whole set, any batch */
        t->train = t->train_all;
        t->train_all = NULL;
    } else {
        int rc = ps_dataset_shard(t->train_all, t->job.data.shard, t->rank, t->job.workers,
                                  &t->train, err);
        if (rc != 0)
            return rc;
        ps_dataset_destroy(&t->train_all);
    }
    t->shard_rows = ps_dataset_rows(t->train);
    t->perm = calloc((size_t)t->shard_rows, sizeof *t->perm);
    if (t->perm == NULL)
        return ps_error_set(err, PS_ENOMEM, "out of memory for the shard's order");
    return 0;
}

/* ---- the loop ---- */

/* The loss as a person reads it: "log-loss", "mse". */
static const char *loss_display_name(const char *loss_name)
{
    return strcmp(loss_name, "log_loss") == 0 ? "log-loss" : loss_name;
}

/* "nan", "inf" or "-inf" (printf's "-nan" is no help to a person). */
static const char *nonfinite_name(double x)
{
    return isnan(x) ? "nan" : x > 0 ? "inf" : "-inf";
}

/* x as "%.4f" ("%.4g" when huge), or "nan", "inf", "-inf"; returns buf. */
static const char *figure(double x, char *buf, size_t cap)
{
    if (!isfinite(x))
        return nonfinite_name(x);
    snprintf(buf, cap, fabs(x) < 1e6 ? "%.4f" : "%.4g", x);
    return buf;
}

/* Whether every entry of θ in hand is finite; *bad gets the first that is not. */
static bool theta_finite(const ps_trainer *t, double *bad)
{
    for (uint64_t k = 0; k < t->num_params; k++) {
        if (!isfinite(t->th[k])) {
            *bad = t->th[k];
            return false;
        }
    }
    return true;
}

/* The likely cause of a divergence, for a person: the inputs' scale when
 * the features (as trained on) are huge, the learning rate when it is
 * above 1 (no usual job trains there), the L2 term when it alone overshoots
 * (lr * l2 >= 1), else the learning rate. With narrow (a codec of a small
 * range, fp16, that the values outgrew: "compression.push"), that codec
 * is named too, as the other possible cause. */
static void divergence_cause(const ps_trainer *t, const char *narrow, char *buf, size_t cap)
{
    /* a sparse model's values are 1 (criteo) or the file's: no scale to blame */
    const float *x = t->sparse == NULL ? ps_dataset_cx(t->train) : NULL;
    size_t cells = x != NULL ? ps_dataset_rows(t->train) * ps_dataset_features(t->train) : 0;
    double xmax = 0.0;
    for (size_t k = 0; k < cells; k++) {
        double a = fabs((double)x[k]);
        if (!(a <= xmax)) /* NaN too */
            xmax = isnan(a) ? INFINITY : a;
    }
    double lr = t->job.optimizer.lr, l2 = t->job.optimizer.l2;
    int len;
    if (xmax > 1e6)
        len = snprintf(
            buf, cap, "the inputs' scale is likely too large: features up to %g%s", xmax,
            t->job.data.normalize == PS_NORMALIZE_STANDARD ? "" : "; try data.normalize: standard");
    else if (lr <= 1.0 && lr * l2 >= 1.0)
        len = snprintf(buf, cap, "optimizer.l2 %g is likely too high", l2);
    else
        len = snprintf(buf, cap, "optimizer.lr %g is likely too high", lr);
    if (narrow != NULL && xmax <= 1e6 && len > 0 && (size_t)len < cap)
        snprintf(buf + len, cap - (size_t)len, ", or %s is too narrow: try bf16", narrow);
}

/* A divergence seen in epoch (1-based), fact the one thing a person needs
 * ("loss is nan", "the push gradient holds 1e+30, beyond fp16's range
 * (65504)"), narrow as divergence_cause takes it. on_divergence: stop:
 * PS_EDIVERGED with the line "training diverged in epoch 3: loss is nan
 * (optimizer.lr 1e+30 is likely too high)". continue: that line as a
 * warning, "; going on", the first time only, and 0. */
static int divergence_seen(ps_trainer *t, uint32_t epoch, const char *fact, const char *narrow,
                           ps_error *err)
{
    bool stop = t->job.on_divergence == PS_DIVERGE_STOP;
    if (!stop && t->warned_diverged)
        return 0;
    char cause[200];
    divergence_cause(t, narrow, cause, sizeof cause);
    if (stop)
        return ps_error_set(err, PS_EDIVERGED, "training diverged in epoch %u: %s (%s)", epoch,
                            fact, cause);
    ps_progress_bar_end(&t->progress);
    PS_LOG_W(t->opts.log, "training diverged in epoch %u: %s (%s); going on", epoch, fact, cause);
    t->warned_diverged = true;
    return 0;
}

/* divergence_seen for a value that is not finite: "loss is nan". */
static int diverged(ps_trainer *t, uint32_t epoch, const char *what, double value, ps_error *err)
{
    char fact[64];
    snprintf(fact, sizeof fact, "%s %s", what, nonfinite_name(value));
    return divergence_seen(t, epoch, fact, NULL, err);
}

/* Whether every shard takes this worker's pushes and gives θ through
 * shared memory, where no codec is used. */
static bool all_shared_memory(const ps_trainer *t)
{
    return ps_client_shared_memory(t->client, NULL) == ps_client_num_servers(t->client);
}

/* The largest magnitude in v[0..n). */
static double largest_magnitude(const float *v, uint64_t n)
{
    float most = 0.0f;
    for (uint64_t k = 0; k < n; k++) {
        float a = fabsf(v[k]);
        most = a > most ? a : most;
    }
    return most;
}

/* The round's push gradient against compression.push's range: past it
 * fp16 and bf16 saturate (the servers would apply something else than the
 * gradient, and the job could end "done" with a loss of 1e29) and psd
 * refuses an int8 block, so it counts as a divergence. */
static int push_range_check(ps_trainer *t, uint32_t epoch, ps_error *err)
{
    const ps_compress_ops *ops = ps_compress_ops_get(t->job.compression.push);
    if (ops->range >= FLT_MAX || (t->warned_diverged && t->job.on_divergence != PS_DIVERGE_STOP) ||
        all_shared_memory(t))
        return 0;
    double most = largest_magnitude(t->grad, t->num_params);
    if (most <= ops->range)
        return 0;
    char fact[128], narrow[48];
    snprintf(fact, sizeof fact, "the push gradient holds %g, beyond %s's range (%g)", most,
             ops->name, (double)ops->range);
    snprintf(narrow, sizeof narrow, "compression.push: %s", ops->name);
    return divergence_seen(t, epoch, fact, ops->range < 1e30f ? narrow : NULL, err);
}

/* θ in hand against compression.pull's range: a pulled θ at its edge
 * (65504 with fp16) stands for a θ the codec could not carry. */
static int pull_range_check(ps_trainer *t, uint32_t epoch, ps_error *err)
{
    const ps_compress_ops *ops = ps_compress_ops_get(t->job.compression.pull);
    if (ops->range >= FLT_MAX || !t->have_theta ||
        (t->warned_diverged && t->job.on_divergence != PS_DIVERGE_STOP) || all_shared_memory(t))
        return 0;
    double most = largest_magnitude(t->th, t->num_params);
    if (most < ops->range)
        return 0;
    char fact[128], narrow[48];
    snprintf(fact, sizeof fact, "θ reaches %s's range (%g): pulls cannot carry more", ops->name,
             (double)ops->range);
    snprintf(narrow, sizeof narrow, "compression.pull: %s", ops->name);
    return divergence_seen(t, epoch, fact, ops->range < 1e30f ? narrow : NULL, err);
}

/* A mean loss grown by orders of magnitude over the first epoch's (this
 * worker's): training that works lowers its loss, one that blows up grows
 * it many times over long before a float overflows (a linear model at lr 2
 * ends its eighth epoch at 1e66 and a finite θ). More than LOSS_GROWTH
 * times the first epoch's, or than LOSS_FLOOR when that was smaller (a
 * loss near 0 may grow many times and still be small), counts as a
 * divergence. */
#define LOSS_GROWTH 1e3
#define LOSS_FLOOR  1e-2

static int loss_growth_check(ps_trainer *t, uint32_t epoch, double loss, ps_error *err)
{
    if (!isfinite(loss))
        return 0;
    if (!t->has_loss_base) {
        t->has_loss_base = true;
        t->loss_base = loss;
        t->loss_base_epoch = epoch;
        return 0;
    }
    double base = t->loss_base > LOSS_FLOOR ? t->loss_base : LOSS_FLOOR;
    if (!(loss > LOSS_GROWTH * base))
        return 0;
    char fact[128], from[32], to[32];
    snprintf(fact, sizeof fact, "the loss grew from %s in epoch %u to %s",
             figure(t->loss_base, from, sizeof from), t->loss_base_epoch,
             figure(loss, to, sizeof to));
    return divergence_seen(t, epoch, fact, NULL, err);
}

/* ---- a round: what each mode sends (the step_mode rows) ---- */

/* sync: round t computes from the θ of version t. */
static int sync_theta_get(ps_trainer *t, uint64_t round, ps_error *err)
{
    t->fresh = false;
    return theta_refresh(t, round, err);
}

/* sync: the θ of round + 1 rides back as soon as this round closes. */
static void sync_pull_after(uint64_t round, uint64_t *min_version, uint64_t *clock)
{
    *min_version = round + 1;
    *clock = round + 1;
}

/* sync: the θ that came back is of the round the servers are at; with
 * backup workers they may have closed rounds without this worker (its push
 * was dropped): it goes on at theirs rather than push late forever. */
static uint64_t sync_round_next(const ps_trainer *t, uint64_t round)
{
    return t->have_theta && t->version > round + 1 ? t->version : round + 1;
}

static uint64_t next_round(const ps_trainer *t, uint64_t round)
{
    (void)t;
    return round + 1;
}

/* sync: evaluation reuses the θ the next round starts from. */
static int sync_theta_eval(ps_trainer *t, uint64_t rounds, ps_error *err)
{
    return theta_refresh(t, rounds, err);
}

/* async: whatever the servers have, the θ that came back with the last push
 * when it did. */
static int async_theta_get(ps_trainer *t, uint64_t round, ps_error *err)
{
    (void)round;
    bool fresh = t->fresh;
    t->fresh = false;
    return fresh ? 0 : theta_pull(t, 0, err);
}

static void async_pull_after(uint64_t round, uint64_t *min_version, uint64_t *clock)
{
    (void)round;
    *min_version = 0;
    *clock = 0;
}

static int async_theta_eval(ps_trainer *t, uint64_t rounds, ps_error *err)
{
    (void)rounds;
    return theta_pull(t, 0, err);
}

/* ssp: the worker's clock is the rounds it has pushed; a pull at clock c is
 * answered once the slowest live worker is within staleness of c. */
static int ssp_theta_get(ps_trainer *t, uint64_t round, ps_error *err)
{
    bool fresh = t->fresh;
    t->fresh = false;
    return fresh ? 0 : theta_pull_clock(t, round, 0, err);
}

/* ssp: after pushing round r the worker's clock is r + 1. */
static void ssp_pull_after(uint64_t round, uint64_t *min_version, uint64_t *clock)
{
    *min_version = 0;
    *clock = round + 1;
}

/* by ps_mode (mode.h) */
static const step_mode STEP_MODES[] = {
    [PS_MODE_SYNC] = {.theta_get = sync_theta_get,
                      .pull_after = sync_pull_after,
                      .theta_eval = sync_theta_eval,
                      .round_next = sync_round_next},
    [PS_MODE_ASYNC] = {.theta_get = async_theta_get,
                       .pull_after = async_pull_after,
                       .theta_eval = async_theta_eval,
                       .round_next = next_round},
    [PS_MODE_SSP] = {.theta_get = ssp_theta_get,
                     .pull_after = ssp_pull_after,
                     .theta_eval = async_theta_eval,
                     .round_next = next_round},
};
_Static_assert(sizeof STEP_MODES / sizeof STEP_MODES[0] == PS_MODE_COUNT,
               "the trainer has a step for every mode of mode.h");

/* ---- a round: what it pushes ---- */

/* Makes perm the order of the epoch batch b (counted across epochs) is in,
 * and returns b's index in its epoch. */
static uint64_t batch_locate(ps_trainer *t, uint64_t b)
{
    uint32_t e = (uint32_t)(b / t->steps_per_epoch);
    if (e != t->shuffled) {
        shuffle_epoch(t, e);
        t->shuffled = e;
    }
    return b % t->steps_per_epoch;
}

/* Batch b into xb/yb, unless the last round gathered it already. */
static size_t batch_take(ps_trainer *t, uint64_t b)
{
    uint64_t j = batch_locate(t, b);
    size_t rows = t->batch_index == b ? t->batch_rows : fill_batch(t, j);
    t->batch_index = UINT64_MAX;
    return rows;
}

/* One batch's gradient at θ in hand: round r is batch r. */
static int grad_of_batch(ps_trainer *t, uint64_t round, size_t *rows, double *loss, ps_error *err)
{
    *rows = batch_take(t, round);
    int rc = ps_model_grad(t->model, t->th, t->xb, t->yb, *rows, t->grad, loss);
    if (rc != 0)
        return ps_error_set(err, rc, "gradient of an empty batch");
    return 0;
}

/* The calls of sparse_step.h that failed: the client's stops and
 * registrations again as client_failed words them, the rest as said. */
static int sparse_failed(ps_trainer *t, int rc, ps_error *err)
{
    if (stop_requested(t) || rc == PS_EINTR || rc == PS_ESTOPPED || rc == PS_EABORTED ||
        rc == PS_ECOMPLETE || rc == PS_EREJOINED)
        return client_failed(t, rc, "sparse rows", err);
    return rc;
}

/* A sparse model's batch: the rows of its keys pulled (counted as pull
 * time), and its gradient at them and θ in hand's bias; the rows' gradient
 * goes out in train_round, before the dense push. */
static int grad_of_sparse_batch(ps_trainer *t, uint64_t round, size_t *rows, double *loss,
                                ps_error *err)
{
    uint64_t lo, hi;
    batch_bounds(t, batch_locate(t, round), &lo, &hi);
    int rc = ps_sparse_step_batch(t->sparse, t->perm, lo, hi, err);
    if (rc != 0)
        return rc;
    *rows = (size_t)(hi - lo);
    double t0 = ps_clock_s();
    rc = ps_sparse_step_pull(t->sparse, t->client, err);
    double pulled = ps_clock_s() - t0;
    t->pull_s += pulled;
    t->compute_s -= pulled; /* train_round counts this call as compute */
    if (rc != 0)
        return sparse_failed(t, rc, err);
    return ps_sparse_step_grad(t->sparse, t->th[0], &t->grad[0], loss, err);
}

/* Local SGD: H plain sgd steps at local_lr on a copy of θ in hand (batches
 * rH .. rH + H - 1, the last round cut at the job's end), then Δ = θ_start -
 * θ_local as the gradient, covering the samples of all H batches. *loss is
 * the mean of the H batches' losses. */
static int grad_of_local_steps(ps_trainer *t, uint64_t round, size_t *rows, double *loss,
                               ps_error *err)
{
    size_t p = (size_t)t->num_params;
    memcpy(t->theta_local, t->th, p * sizeof(float));
    uint64_t lo = round * t->local_steps, hi = lo + t->local_steps;
    if (hi > t->total_batches)
        hi = t->total_batches;
    double loss_sum = 0.0;
    *rows = 0;
    for (uint64_t b = lo; b < hi; b++) {
        size_t n = batch_take(t, b);
        double l = 0.0;
        int rc = ps_model_grad(t->model, t->theta_local, t->xb, t->yb, n, t->grad, &l);
        if (rc != 0)
            return ps_error_set(err, rc, "gradient of an empty batch");
        for (size_t k = 0; k < p; k++)
            t->theta_local[k] -= t->local_lr * t->grad[k];
        loss_sum += l;
        *rows += n;
    }
    for (size_t k = 0; k < p; k++)
        t->grad[k] = t->th[k] - t->theta_local[k];
    *loss = hi > lo ? loss_sum / (double)(hi - lo) : 0.0;
    return 0;
}

static void trainer_modes_pick(ps_trainer *t)
{
    t->mode = &STEP_MODES[t->job.mode];
    t->mode_desc = ps_mode_get(t->job.mode);
    t->local_steps = t->job.training.local_steps > 1 ? t->job.training.local_steps : 1;
    double lr = t->job.training.local_lr > 0.0 ? t->job.training.local_lr : t->job.optimizer.lr;
    t->local_lr = (float)lr;
    t->grad_fn = ps_job_is_sparse(&t->job) ? grad_of_sparse_batch
                 : t->local_steps > 1      ? grad_of_local_steps
                                           : grad_of_batch;
}

/* The next round's first batch, gathered while this round's push and pull
 * are on the wire; only within the epoch (the next epoch's order is not
 * drawn yet). */
typedef struct prefill {
    ps_trainer *t;
    uint64_t batch; /* counted across epochs */
} prefill;

static void prefill_batch(void *arg)
{
    prefill *p = arg;
    ps_trainer *t = p->t;
    if (p->batch >= t->total_batches || p->batch / t->steps_per_epoch != t->shuffled)
        return;
    t->batch_rows = fill_batch(t, p->batch % t->steps_per_epoch);
    t->batch_index = p->batch;
}

/* One round: θ as the mode wants it, the gradient of data round `data`
 * (its batch, or H batches), and a push at clock `round` with the θ of the
 * next round riding back, so a round costs one round trip; a pull of its
 * own is needed only when that did not come. *rows gets the samples the
 * round covered. */
static int train_round(ps_trainer *t, uint64_t round, uint64_t data, size_t *rows, double *loss,
                       ps_error *err)
{
    double t0 = ps_clock_s();
    int rc = t->mode->theta_get(t, round, err);
    if (rc != 0)
        return rc;
    double t1 = ps_clock_s();
    rc = t->grad_fn(t, data, rows, loss, err);
    if (rc != 0)
        return rc;
    uint64_t first = data * t->local_steps;
    uint32_t epoch = (uint32_t)(first / t->steps_per_epoch) + 1;
    if (!isfinite(*loss) && t->job.on_divergence == PS_DIVERGE_STOP) /* its gradient is no use */
        return diverged(t, epoch, "loss is", *loss, err);
    if ((rc = push_range_check(t, epoch, err)) != 0)
        return rc;
    double t2 = ps_clock_s();
    /* a sparse model's rows go first: in sync their round is closed by the
     * dense push (engine_sparse.c) */
    if (t->sparse != NULL &&
        (rc = ps_sparse_step_push(t->sparse, t->client, round, (uint32_t)*rows, err)) != 0)
        return sparse_failed(t, rc, err);
    prefill next = {t, first + t->local_steps};
    if (t->dynamic) { /* the next lease; and this push names its batch, asking for more */
        next.batch = t->nleases > 0 ? t->leases[0] : UINT64_MAX;
        uint32_t want = TRAINER_LEASE_AHEAD > t->nleases ? TRAINER_LEASE_AHEAD - t->nleases : 0;
        ps_client_lease_push_set(t->client, data + 1, want, (uint32_t)t->steps_per_epoch);
    }
    ps_push_pull pp;
    ps_push_pull_init(&pp);
    pp.clock = round;
    pp.grad = t->grad;
    pp.n = (size_t)t->num_params;
    pp.samples = (uint32_t)*rows;
    pp.theta = NULL; /* one shard: θ used from its frame, not copied */
    pp.meanwhile = t->sparse == NULL ? prefill_batch : NULL;
    pp.arg = &next;
    t->mode->pull_after(round, &pp.min_version, &pp.pull_clock);
    t->have_theta = false; /* the θ in hand is let go */
    t->th = t->theta;
    rc = ps_client_push_pull(t->client, &pp);
    if (rc != 0)
        return client_failed(t, rc, "push", err);
    if (pp.pulled) {
        t->th = pp.view;
        t->have_theta = true;
        t->fresh = true;
        t->version = pp.version;
    }
    double t3 = ps_clock_s();
    t->pull_s += t1 - t0;
    t->compute_s += t2 - t1;
    t->push_pull_s += t3 - t2;
    t->updates++;
    t->samples += *rows;
    return 0;
}

/* Evaluation of θ in hand on a data set; err names the set on an error. */
static int set_eval(ps_trainer *t, bool test, ps_model_metrics *m, ps_error *err)
{
    const char *name = test ? "test set" : "training shard";
    if (t->sparse != NULL) { /* rows pulled a slice at a time */
        int rc = ps_sparse_step_eval(t->sparse, t->client, test, t->th[0], m, err);
        return rc != 0 ? sparse_failed(t, rc, err) : 0;
    }
    const ps_dataset *set = test ? t->test : t->train;
    int rc = ps_model_eval(t->model, t->th, ps_dataset_cx(set), ps_dataset_cy(set),
                           ps_dataset_rows(set), m);
    if (rc != 0)
        return ps_error_set(err, rc, "evaluating on the %s: %s", name, ps_strerror(rc));
    return 0;
}

/* Test evaluation at an epoch's end, on the freshest θ the mode allows. */
static int epoch_eval(ps_trainer *t, uint64_t rounds_done, ps_model_metrics *m, ps_error *err)
{
    int rc = t->mode->theta_eval(t, rounds_done, err);
    if (rc != 0)
        return rc;
    return set_eval(t, true, m, err);
}

/* Keeps epoch e's figures for the curves (every epoch_every-th epoch); an
 * epoch ended again (a restart went back) overwrites them. */
static void epoch_record(ps_trainer *t, uint32_t e, double loss, const ps_model_metrics *test)
{
    if ((e + 1) % t->epoch_every != 0 || (e + 1) / t->epoch_every > t->epoch_points)
        return;
    uint32_t i = (e + 1) / t->epoch_every - 1;
    t->epoch_loss[i] = loss;
    if (t->epoch_metric != NULL)
        t->epoch_metric[i] = test->metric;
    if (t->epoch_auc != NULL)
        t->epoch_auc[i] = test->auc;
}

/* The end of epoch e: the test metrics on the freshest θ and one log line
 * (or the bar on a TTY). */
static int epoch_end(ps_trainer *t, ps_train_result *res, uint32_t e, uint64_t rounds_done,
                     double epoch_loss, double t0, ps_error *err)
{
    uint32_t epochs = t->job.training.epochs;
    uint64_t spe = t->steps_per_epoch;
    res->train_loss_last_epoch = epoch_loss;
    double bad = epoch_loss;
    const char *what = "loss is";
    if (isfinite(epoch_loss) && t->have_theta && !theta_finite(t, &bad))
        what = "θ holds";
    int rc = 0;
    /* dynamic: a worker may train no batch of an epoch (the others took
     * them all): no loss of its own to look at then */
    bool none = t->dynamic && isnan(epoch_loss);
    if (!isfinite(bad) && !none)
        rc = diverged(t, e + 1, what, bad, err);
    if (rc == 0)
        rc = pull_range_check(t, e + 1, err);
    if (rc == 0 && !none)
        rc = loss_growth_check(t, e + 1, epoch_loss, err);
    if (rc != 0)
        return rc;
    ps_model_metrics m = {NAN, NAN, NAN};
    if (t->test_rows > 0) {
        rc = epoch_eval(t, rounds_done, &m, err);
        if (rc != 0)
            return rc;
        char metric[32], loss[32], auc[32];
        int len = snprintf(t->test_note, sizeof t->test_note, ", test %s %s, test %s %s",
                           t->metric_name, figure(m.metric, metric, sizeof metric),
                           loss_display_name(t->loss_name), figure(m.loss, loss, sizeof loss));
        if (t->has_auc && len > 0 && (size_t)len < sizeof t->test_note)
            snprintf(t->test_note + len, sizeof t->test_note - (size_t)len, ", test auc %s",
                     figure(m.auc, auc, sizeof auc));
    }
    epoch_record(t, e, epoch_loss, &m);
    if (t->opts.tty)
        ps_progress_bar_draw(&t->progress, (e + 1) * spe, spe * epochs, e + 1, epoch_loss,
                             e + 1 == epochs);
    else {
        char loss[32];
        PS_LOG_I(t->opts.log, "epoch %u/%u: loss %s%s, %.2f s", e + 1, epochs,
                 figure(epoch_loss, loss, sizeof loss), t->test_note, ps_clock_s() - t0);
    }
    return 0;
}

/* Acknowledged pushes a server's restart rolled back, the most over the
 * shards (ps_client_push_tally). */
static uint64_t rolled_back(const ps_trainer *t)
{
    uint64_t most = 0;
    for (size_t i = 0; i < ps_client_num_servers(t->client); i++) {
        uint64_t held, lost;
        if (ps_client_push_tally(t->client, i, &held, &lost) == 0 && lost > most)
            most = lost;
    }
    return most;
}

/* Where the rank's data stands at registration: the servers hold `applied`
 * of its pushes (a worker that held the rank before this one, or
 * checkpoints), plus the data rounds this worker skipped (pushes dropped,
 * rounds closed without it): nothing the servers hold is trained twice and
 * nothing they lack is skipped. In sync the clock is the servers' round;
 * in async and ssp it is the rank's own count of rounds. */
static void resume_at(ps_trainer *t, uint64_t skipped, uint64_t *round, uint64_t *data)
{
    uint64_t held = ps_client_rank_applied(t->client) + skipped;
    *data = held < t->total_rounds ? held : t->total_rounds;
    *round = t->mode_desc->rounds ? ps_client_rejoin_version(t->client) : *data;
}

/* Every round of the job. Two counters: round, the clock a push is for
 * (sync: the servers' round), and data, the rounds of this rank's data
 * done, which name the batches (rounds are numbered across epochs, so the
 * epoch, its shuffled order and its batches follow from data alone). A
 * worker that takes over the rank of one that died goes on where the
 * servers say that rank's data stands, so every batch of every epoch is
 * trained once; in sync it may then push alone for a few rounds after the
 * others are done. A shard that lost us (it restarted from a checkpoint,
 * or evicted us) says where its rounds stand: the loop goes on there, and
 * trains again the batches whose pushes a restart rolled back. With backup
 * workers, rounds that closed without this worker skip its batches (a
 * straggler's share is dropped, as the mode intends). */
static int train_epochs(ps_trainer *t, ps_train_result *res, ps_error *err)
{
    uint64_t spe = t->steps_per_epoch;
    uint64_t total = t->total_rounds, batches = t->total_batches;
    double loss_sum = 0.0, t0 = ps_clock_s(), started = t0;
    uint64_t losses = 0, samples_at_start = t->samples;
    uint64_t round, data, skipped = 0;
    resume_at(t, 0, &round, &data);
    if (data > 0 || round > 0)
        PS_LOG_I(t->opts.log,
                 "the servers hold %llu of rank %u's %llu rounds (a worker before this one, or "
                 "checkpoints): going on at batch %llu of epoch %llu, round %llu",
                 (unsigned long long)data, t->rank, (unsigned long long)total,
                 (unsigned long long)(data * t->local_steps % spe + 1),
                 (unsigned long long)(data * t->local_steps / spe + 1), (unsigned long long)round);
    while (data < total) {
        if (stop_requested(t))
            return ps_error_set(err, PS_EINTR, "interrupted");
        uint64_t done_before = data * t->local_steps;
        double loss = 0.0;
        size_t rows = 0;
        int rc = train_round(t, round, data, &rows, &loss, err);
        if (rc == 0) {
            loss_sum += loss;
            losses++;
            if (ps_client_push_flags(t->client) & PS_PUSH_DROPPED)
                skipped++;
            uint64_t rb = rolled_back(t);
            if (rb > t->rolled_seen) {
                /* async, ssp: a server went back to a checkpoint without
                 * some of our pushes (the client said which): train their
                 * batches again */
                uint64_t k = rb - t->rolled_seen;
                t->rolled_seen = rb;
                data = data > k ? data - k : 0;
                round = t->mode_desc->rounds ? round : data;
            }
            uint64_t next = t->mode->round_next(t, round);
            if (next > round + 1) {
                PS_LOG_D(t->opts.log, "round %llu closed without this worker: going on at %llu",
                         (unsigned long long)round, (unsigned long long)next);
                skipped += next - round - 1;
            }
            data += next - round;
            data = data < total ? data : total;
            round = next;
            uint64_t done = data * t->local_steps < batches ? data * t->local_steps : batches;
            uint32_t e = (uint32_t)((done - 1) / spe);
            double mean = loss_sum / (double)losses;
            double elapsed = ps_clock_s() - started;
            ps_client_report(t->client, mean,
                             elapsed > 0 ? (double)(t->samples - samples_at_start) / elapsed : NAN);
            ps_progress_step(&t->progress, t->rank, done, batches, e + 1, mean);
            /* every epoch this round finished (local SGD may finish several) */
            for (uint64_t f = done_before / spe; rc == 0 && f < done / spe; f++) {
                rc = epoch_end(t, res, (uint32_t)f, round, mean, t0, err);
                loss_sum = 0.0;
                losses = 0;
                t0 = ps_clock_s();
            }
        }
        if (rc == PS_EREJOINED) {
            /* the reply that registered us says where the rounds and the
             * rank's data are: go on there */
            uint64_t at_round, at_data;
            resume_at(t, skipped, &at_round, &at_data);
            ps_progress_bar_end(&t->progress);
            if (at_data < data)
                PS_LOG_W(t->opts.log, "%s: %llu rounds of data are trained again",
                         ps_client_last_error(t->client), (unsigned long long)(data - at_data));
            else
                PS_LOG_W(t->opts.log, "%s: no data skipped", ps_client_last_error(t->client));
            t->have_theta = false;
            t->fresh = false;
            t->rolled_seen = rolled_back(t);
            if (at_data * t->local_steps / spe != data * t->local_steps / spe) {
                loss_sum = 0.0;
                losses = 0;
                t0 = ps_clock_s();
            }
            data = at_data;
            round = at_round;
            continue;
        }
        if (rc != 0)
            return rc;
    }
    ps_progress_bar_end(&t->progress);
    return 0;
}

/* Takes the batches shard 0 granted into the leases held. */
static void leases_add(ps_trainer *t, uint64_t first, uint32_t count)
{
    for (uint32_t k = 0; k < count && t->nleases < TRAINER_LEASE_MAX; k++)
        t->leases[t->nleases++] = first + k;
}

static uint64_t lease_pop(ps_trainer *t)
{
    uint64_t b = t->leases[0];
    memmove(t->leases, t->leases + 1, (t->nleases - 1) * sizeof *t->leases);
    t->nleases--;
    return b;
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Leases batches when none is held: asks shard 0, and while the epoch
 * waits on batches others hold (PS_LEASE_WAIT) asks again, a little later
 * each time, for at most heartbeat.deadline_ms (a worker that holds them
 * and dies is evicted long before, and its leases come back). *end once
 * every batch of the job is trained. */
static int leases_refill(ps_trainer *t, bool *end, ps_error *err)
{
    uint64_t waited = 0, pause = 2, limit = t->job.heartbeat.deadline_ms;
    *end = false;
    for (;;) {
        if (stop_requested(t))
            return ps_error_set(err, PS_EINTR, "interrupted");
        uint64_t first;
        uint32_t count, flags;
        int rc = ps_client_lease(t->client, TRAINER_LEASE_AHEAD + 1, (uint32_t)t->steps_per_epoch,
                                 &first, &count, &flags);
        if (rc != 0)
            return client_failed(t, rc, "lease", err);
        leases_add(t, first, count);
        if (count > 0)
            return 0;
        if (flags & PS_LEASE_END) {
            *end = true;
            return 0;
        }
        if (!(flags & PS_LEASE_WAIT))
            return ps_error_set(err, PS_ESERVER, "shard 0 leased no batch and said neither why");
        if (limit > 0 && waited >= limit)
            return ps_error_set(err, PS_ETIMEDOUT,
                                "the epoch's last batches, leased to other workers, were not "
                                "trained in %llu ms",
                                (unsigned long long)waited);
        sleep_ms(pause);
        waited += pause;
        pause = pause * 2 < 100 ? pause * 2 : 100;
    }
}

/* data.assign: dynamic: batches from shard 0's queue until every batch of
 * the job is trained. A batch is (epoch, index) counted across epochs as
 * epoch * steps_per_epoch + index, so its rows follow from its number and
 * the epoch's order (the seed's, the same on every worker). The queue
 * opens an epoch only once every batch of the one before is trained, so a
 * lease of a later epoch ends this worker's epochs before it: each ends as
 * today, with the test evaluation. A push names its batch; shard 0 takes
 * the first push of a batch and drops any other (after an eviction the
 * batch may have gone to another worker): only those it took count as
 * this worker's. */
static int train_dynamic(ps_trainer *t, ps_train_result *res, ps_error *err)
{
    uint64_t spe = t->steps_per_epoch, batches = t->total_batches;
    uint32_t epochs = t->job.training.epochs;
    double loss_sum = 0.0, t0 = ps_clock_s(), started = t0;
    uint64_t losses = 0, samples_at_start = t->samples;
    uint32_t ended = 0; /* epochs this worker ended */
    for (;;) {
        if (stop_requested(t))
            return ps_error_set(err, PS_EINTR, "interrupted");
        if (t->nleases == 0) {
            bool end;
            int rc = leases_refill(t, &end, err);
            if (rc != 0)
                return rc;
            if (end)
                break;
        }
        uint64_t b = lease_pop(t);
        if (b >= batches)
            return ps_error_set(err, PS_ESERVER, "shard 0 leased batch %llu of a job of %llu",
                                (unsigned long long)b, (unsigned long long)batches);
        for (; ended < b / spe; ended++) { /* the epochs before b's are trained */
            double mean = losses > 0 ? loss_sum / (double)losses : NAN;
            int rc = epoch_end(t, res, ended, 0, mean, t0, err);
            if (rc != 0)
                return rc;
            loss_sum = 0.0;
            losses = 0;
            t0 = ps_clock_s();
        }
        double loss = 0.0;
        size_t rows = 0;
        /* ssp: a worker's clock is where its batch stands in the queue */
        uint64_t round = b / t->job.workers;
        int rc = train_round(t, round, b, &rows, &loss, err);
        if (rc != 0)
            return rc;
        uint64_t first;
        uint32_t count, flags;
        ps_client_lease_got(t->client, &first, &count, &flags);
        leases_add(t, first, count);
        if (!(ps_client_push_flags(t->client) & PS_PUSH_DROPPED)) {
            t->batches_mine++;
            loss_sum += loss;
            losses++;
        }
        double mean = losses > 0 ? loss_sum / (double)losses : NAN;
        double elapsed = ps_clock_s() - started;
        ps_client_report(t->client, mean,
                         elapsed > 0 ? (double)(t->samples - samples_at_start) / elapsed : NAN);
        ps_progress_step(&t->progress, t->rank, b + 1, batches, (uint32_t)(b / spe) + 1, mean);
        if ((flags & PS_LEASE_END) && t->nleases == 0)
            break;
    }
    for (; ended < epochs; ended++) {
        double mean = losses > 0 ? loss_sum / (double)losses : NAN;
        int rc = epoch_end(t, res, ended, 0, mean, t0, err);
        if (rc != 0)
            return rc;
        loss_sum = 0.0;
        losses = 0;
        t0 = ps_clock_s();
    }
    ps_progress_bar_end(&t->progress);
    PS_LOG_I(t->opts.log, "trained %llu of the queue's %llu batches",
             (unsigned long long)t->batches_mine, (unsigned long long)batches);
    return 0;
}

/* One line per shard: the pushes it holds of this worker's, and those a
 * restart rolled back; psd's count of the rank's applied pushes is the
 * first less the second (plus any of a worker before this one). */
static void tally_log(const ps_trainer *t)
{
    for (size_t i = 0; i < ps_client_num_servers(t->client); i++) {
        uint64_t held, lost;
        if (ps_client_push_tally(t->client, i, &held, &lost) == 0)
            PS_LOG_I(t->opts.log, "shard %zu holds %llu pushes of this worker, %llu rolled back", i,
                     (unsigned long long)(held - lost), (unsigned long long)lost);
    }
}

/* psd's figures once every worker is done: the staleness of the applied
 * pushes and each rank's clock and applied pushes, for the summary. A
 * server that does not answer leaves them unknown (null), no failure. */
static void server_stats(ps_trainer *t, ps_train_result *res)
{
    ps_server_stats st;
    ps_server_stats_init(&st, res->rank_clock, res->rank_pushes, PS_MAX_WORKERS);
    st.expected = res->rank_expected;
    st.flags = res->rank_flags;
    st.dropped = res->rank_dropped;
    st.rounds = res->rank_rounds;
    if (ps_client_server_stats(t->client, &st) != 0) {
        PS_LOG_D(t->opts.log, "no server figures for the summary: %s",
                 ps_client_last_error(t->client));
        return;
    }
    res->has_server_stats = true;
    res->staleness_max = st.staleness_max;
    res->staleness_mean = st.staleness_mean;
    res->staleness_p99 = st.staleness_p99;
    res->nranks = st.nranks < PS_MAX_WORKERS ? st.nranks : PS_MAX_WORKERS;
}

/* The final θ: once this worker said it is done, a pull for the final
 * version waits until every worker is done (or gone), so every worker
 * evaluates the same θ, even when a server restarted on the way. Evaluated
 * on the worker's shard and the test set. */
static int final_eval(ps_trainer *t, ps_train_result *res, ps_error *err)
{
    if (stop_requested(t))
        return ps_error_set(err, PS_EINTR, "interrupted");
    int rc = ps_client_done(t->client);
    if (rc != 0)
        return client_failed(t, rc, "done", err);
    rc = theta_pull(t, PS_CLIENT_VERSION_FINAL, err);
    if (rc != 0)
        return rc;
    tally_log(t);
    server_stats(t, res);
    rc = set_eval(t, false, &res->train, err);
    if (rc != 0)
        return rc;
    res->final_loss = res->train.loss;
    if (t->job.on_divergence == PS_DIVERGE_STOP) { /* no model or summary of NaNs */
        double bad = res->final_loss;
        if (!isfinite(bad))
            return diverged(t, t->job.training.epochs, "loss is", bad, err);
        if (!theta_finite(t, &bad))
            return diverged(t, t->job.training.epochs, "θ holds", bad, err);
        if ((rc = loss_growth_check(t, t->job.training.epochs, res->final_loss, err)) != 0)
            return rc;
    }
    if (t->test_rows > 0) {
        res->has_test = true;
        rc = set_eval(t, true, &res->test, err);
        if (rc != 0)
            return rc;
    }
    res->version = t->version;
    return 0;
}

/* Whether this worker writes the model (trainer.h): no rank below its own
 * is held by a worker at psd now. Without psd's figures, rank 0 does. */
static bool writes_model(const ps_trainer *t, const ps_train_result *res)
{
    if (t->job.output[0] == '\0')
        return false;
    if (!res->has_server_stats)
        return t->rank == 0;
    for (uint32_t r = 0; r < t->rank && r < res->nranks; r++)
        if (res->rank_flags[r] & PS_RANK_LIVE)
            return false;
    return true;
}

static int write_output(ps_trainer *t, const ps_train_result *res, ps_error *err)
{
    size_t n = ps_client_num_tensors(t->client);
    if (n > PS_MAX_TENSORS)
        return ps_error_set(err, PS_ESERVER, "the servers describe %zu tensors, at most %d", n,
                            PS_MAX_TENSORS);
    ps_tensor_info tensors[PS_MAX_TENSORS];
    memset(tensors, 0, sizeof tensors);
    for (size_t i = 0; i < n; i++) {
        const char *name;
        const uint64_t *shape;
        uint32_t ndims;
        int rc = ps_client_tensor(t->client, i, &name, &tensors[i].offset, &shape, &ndims);
        if (rc != 0 || ndims > PS_MAX_DIMS)
            return ps_error_set(err, rc ? rc : PS_ESERVER, "tensor %zu of θ is not described", i);
        ps_strlcpy(tensors[i].name, name, sizeof tensors[i].name);
        memcpy(tensors[i].shape, shape, ndims * sizeof *shape);
        tensors[i].ndims = ndims;
    }
    /* a sparse model's table first: the manifest, written last, names it */
    ps_output_table table;
    size_t ntables = t->sparse != NULL ? 1 : 0;
    int rc = 0;
    if (ntables > 0 && (rc = ps_output_mkdirs(t->job.output, err)) == 0 &&
        (rc = ps_sparse_step_export(t->sparse, t->client, t->job.output, &table, err)) != 0)
        rc = sparse_failed(t, rc, err);
    ps_output_norm norm = {t->norm_mean, t->norm_std, t->job.model.features};
    /* large (PS_MAX_WORKERS rows): off the stack */
    ps_report_unfinished *unfinished = calloc(PS_MAX_WORKERS, sizeof *unfinished);
    size_t nunfinished =
        unfinished != NULL ? ps_train_result_unfinished(res, unfinished, PS_MAX_WORKERS) : 0;
    if (rc == 0 && unfinished == NULL)
        rc = ps_error_set(err, PS_ENOMEM, "cannot allocate the table of unfinished ranks");
    if (rc == 0)
        rc = ps_output_model_write(t->job.output, t->job.name, t->version, t->th, t->num_params,
                                   tensors, n, &table, ntables, t->norm_mean != NULL ? &norm : NULL,
                                   res->has_server_stats ? unfinished : NULL, nunfinished, err);
    free(unfinished);
    if (rc == 0 && ntables > 0)
        PS_LOG_I(t->opts.log,
                 "model written: %s (version %llu, %zu tensors, %llu rows of table %s)",
                 t->job.output, (unsigned long long)t->version, n, (unsigned long long)table.rows,
                 table.name);
    else if (rc == 0)
        PS_LOG_I(t->opts.log, "model written: %s (version %llu, %zu tensors)", t->job.output,
                 (unsigned long long)t->version, n);
    return rc;
}

static void result_init(const ps_trainer *t, ps_train_result *res)
{
    memset(res, 0, sizeof *res);
    res->model = t->model_name;
    res->loss_name = t->loss_name;
    res->metric_name = t->metric_name;
    res->has_auc = t->has_auc;
    res->mode = ps_mode_name(t->job.mode);
    res->workers = t->job.workers;
    res->epochs = t->job.training.epochs;
    res->steps_per_epoch = t->steps_per_epoch;
    res->batch_size = t->job.training.batch_size;
    res->test_samples = t->test_rows;
    res->epoch_every = t->epoch_every;
    res->epoch_points = t->epoch_points;
    res->epoch_train_loss = t->epoch_loss;
    res->epoch_test_metric = t->epoch_metric;
    res->epoch_test_auc = t->epoch_auc;
    res->staleness_mean = NAN;
}

int ps_trainer_run(ps_trainer *t, ps_train_result *res, ps_error *err)
{
    result_init(t, res);
    double t0 = ps_clock_s();
    int rc = connect_servers(t, err);
    if (rc != 0)
        goto close;
    rc = cut_shard(t, err);
    if (rc != 0)
        goto close;
    res->rank = t->rank;
    res->train_samples = t->shard_rows;
    PS_LOG_D(t->opts.log, "rank %u of %u: %llu rows, %llu steps per epoch, %s", t->rank,
             t->job.workers, (unsigned long long)res->train_samples,
             (unsigned long long)t->steps_per_epoch, res->mode);
    rc = t->dynamic ? train_dynamic(t, res, err) : train_epochs(t, res, err);
    if (rc != 0)
        goto close;
    rc = final_eval(t, res, err);
    if (rc != 0)
        goto close;
    if (writes_model(t, res)) {
        rc = write_output(t, res, err);
        if (rc != 0)
            goto close;
    }
close:
    ps_progress_bar_end(&t->progress);
    if (t->client && rc == PS_EDIVERGED && ps_client_abort(t->client, err->msg) != 0)
        PS_LOG_W(t->opts.log, "could not tell every server to stop the job: %s",
                 ps_client_last_error(t->client));
    if (t->client) {
        int crc = ps_client_close(&t->client);
        if (rc == 0 && crc != 0)
            rc = ps_error_set(err, crc, "leaving the job: %s", ps_strerror(crc));
    }
    res->updates = t->updates;
    res->batches = t->dynamic ? t->batches_mine : t->updates * t->local_steps;
    res->pull_s = t->pull_s;
    res->compute_s = t->compute_s;
    res->push_pull_s = t->push_pull_s;
    res->wall_s = ps_clock_s() - t0;
    res->samples_per_s = res->wall_s > 0.0 ? (double)t->samples / res->wall_s : 0.0;
    return rc;
}
