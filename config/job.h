/* job.h — the job: one YAML file (docs/job-file.md) that server and workers read.
 * ps_job_load parses and validates the whole file before any of it is used;
 * every error names file:line:col. Paths in the job are resolved against the
 * job file's folder. The struct holds no pointers: copy it freely.
 *
 * Where things go in config/: a new key is a field here and one row in
 * schema.c (kind, bounds, default, validity hook, and when it may be given);
 * yamlwalk.c reads any table of rows and knows no job; suggest.c words the
 * did-you-mean after an unknown key from the rows' names and aliases; job.c
 * (this header's functions) loads the file and runs the checks that span
 * several keys and fit no row. A new mode or codec needs no edit here: the
 * rows read names and rules from mode.h and compress.h. */
#ifndef PS_JOB_H
#define PS_JOB_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "compress.h"
#include "error.h"
#include "log.h"
#include "mode.h"

#define PS_PATH_MAX    1024
#define PS_MAX_HIDDEN  8
#define PS_MAX_WORKERS 4096
/* worker.command: at most this many items, each below PS_PATH_MAX bytes */
#define PS_WORKER_ARGS_MAX 16

/* sync_chunk_kib: auto (the default) — chunks of at least
 * PS_SYNC_CHUNK_AUTO_MIN_KIB, at most PS_SYNC_CHUNK_AUTO_COUNT of them a
 * shard, and only for workers whose link to psd leaves their host */
#define PS_SYNC_CHUNK_AUTO         UINT32_MAX
#define PS_SYNC_CHUNK_AUTO_MIN_KIB 64
#define PS_SYNC_CHUNK_AUTO_COUNT   8

typedef enum ps_model_type {
    PS_MODEL_LINEAR,
    PS_MODEL_LOGISTIC,
    PS_MODEL_SOFTMAX,
    PS_MODEL_MLP,
    PS_MODEL_CUSTOM,
    PS_MODEL_SPARSE_LOGISTIC, /* hashed features: a table of one weight per key */
    PS_MODEL_FM,              /* factorization machine: per key a weight and `factors` more */
} ps_model_type;
typedef enum ps_init_scheme { PS_INIT_ZEROS, PS_INIT_XAVIER, PS_INIT_NORMAL } ps_init_scheme;
typedef enum ps_data_format {
    PS_FORMAT_CSV,
    PS_FORMAT_LIBSVM,
    PS_FORMAT_IDX,
    PS_FORMAT_CRITEO,   /* click logs: label, 13 integers, 26 hex categories, tab-separated */
    PS_FORMAT_LIBSVM64, /* LIBSVM with 64-bit feature ids, hashed as keys */
} ps_data_format;
typedef enum ps_normalize { PS_NORMALIZE_NONE, PS_NORMALIZE_STANDARD } ps_normalize;
typedef enum ps_shard_kind { PS_SHARD_STRIDE, PS_SHARD_BLOCK } ps_shard_kind;
/* data.assign: a fixed shard per rank, or batches from shard 0's queue */
typedef enum ps_assign_kind { PS_ASSIGN_STATIC, PS_ASSIGN_DYNAMIC } ps_assign_kind;
typedef enum ps_optim_type {
    PS_OPTIM_SGD,
    PS_OPTIM_MOMENTUM,
    PS_OPTIM_ADAGRAD,
    PS_OPTIM_ADAM,
    PS_OPTIM_FTRL,
} ps_optim_type;
typedef enum ps_schedule_type {
    PS_SCHEDULE_CONSTANT,
    PS_SCHEDULE_STEP,
    PS_SCHEDULE_COSINE,
} ps_schedule_type;
typedef enum ps_worker_loss { PS_LOSS_CONTINUE, PS_LOSS_ABORT } ps_worker_loss;
/* on_divergence: a non-finite loss or θ stops the job (default) or not */
typedef enum ps_divergence { PS_DIVERGE_STOP, PS_DIVERGE_CONTINUE } ps_divergence;

/* Where a key's value was written in the job file: 1-based; 0 when absent. */
typedef struct ps_job_pos {
    uint32_t line, col;
} ps_job_pos;

/* Sparse tables: rows of dim floats by 64-bit key, held by the servers
 * only (docs/architecture.md#theta-tensors-and-shards). */
#define PS_TABLE_DIM_MAX 1024
#define PS_MAX_FACTORS   (PS_TABLE_DIM_MAX - 1)

/* One table of θ as the model declares it: its name, the floats of a row,
 * and how many leading floats of a row start at 0 (the others start from
 * the init scheme, a function of the seed, the table and the key alone). */
typedef struct ps_table_spec {
    char name[PS_TABLE_NAME_MAX];
    uint32_t dim;
    uint32_t zero_prefix;
} ps_table_spec;

typedef struct ps_tensor_spec {
    char name[PS_TENSOR_NAME_MAX];
    uint64_t shape[PS_MAX_DIMS];
    uint32_t ndims;
} ps_tensor_spec;

typedef struct ps_job {
    char path[PS_PATH_MAX]; /* the job file as given */
    char dir[PS_PATH_MAX];  /* its folder: relative paths resolve here */
    char name[PS_JOB_NAME_MAX];
    ps_mode mode;
    uint32_t staleness;
    uint32_t backup_workers;
    bool deterministic;
    uint32_t workers;
    uint32_t nservers;
    char servers[PS_MAX_SHARDS][PS_ENDPOINT_MAX];
    struct {
        ps_model_type type;
        uint64_t features;
        uint32_t classes;
        uint32_t nhidden;
        uint32_t hidden[PS_MAX_HIDDEN];
        uint32_t ntensors; /* custom */
        ps_tensor_spec tensors[PS_MAX_TENSORS];
        ps_init_scheme init_scheme;
        uint64_t init_seed;
        uint32_t factors; /* fm: floats of a key's embedding */
    } model;
    struct {
        char train[PS_PATH_MAX]; /* resolved; "" when absent */
        char test[PS_PATH_MAX];
        ps_data_format format;
        char train_labels[PS_PATH_MAX];
        char test_labels[PS_PATH_MAX];
        uint32_t label_column;
        ps_normalize normalize;
        ps_shard_kind shard;
        ps_assign_kind assign; /* dynamic: async and ssp, dense models (batchq.h) */
        bool stream; /* criteo, libsvm64: the shard read a batch at a time, in file order */
    } data;
    struct {
        ps_optim_type type;
        double lr;
        double momentum;
        bool nesterov;
        double l2;
        double l1;           /* ftrl */
        double beta;         /* ftrl: β of the per-coordinate rate α / (β + √n) */
        double beta1, beta2; /* adam */
        double eps;          /* adam, adagrad */
        ps_schedule_type schedule;
        uint64_t step_size; /* step: every step_size updates ... */
        double gamma;       /* ... lr *= gamma */
        uint64_t warmup_steps;
        uint64_t total_steps; /* cosine: its horizon, in updates */
    } optimizer;
    struct {
        uint32_t epochs;
        uint32_t batch_size;
        uint32_t local_steps;
        double local_lr; /* local SGD: training.local_optimizer's sgd lr (0: optimizer.lr) */
        ps_optim_type local_optim; /* training.local_optimizer.type: sgd only */
        uint64_t seed;
    } training;
    struct {
        ps_compress_type push; /* the workers' gradients */
        ps_compress_type pull; /* θ from psd (never topk) */
        double topk_ratio;     /* push topk: share of entries sent */
        bool error_feedback;   /* workers add what compression dropped to the next push */
    } compression;
    struct {
        uint32_t interval_ms; /* a worker says it is alive this often */
        uint32_t timeout_ms;  /* psd evicts a worker silent this long */
        uint32_t deadline_ms; /* a worker gives up on a silent server after this long */
        /* once no worker is live and a rank's data is not finished, psd
         * waits this long for it (or a worker taking it over), then ends
         * the job as incomplete */
        uint32_t incomplete_wait_ms;
    } heartbeat;
    struct {
        /* the tables' rules, per shard: a key is stored once seen min_count
         * times (until then a pull gets its initial row); a row not updated
         * for idle_versions versions is dropped (0: never); at max_rows rows
         * the least recently updated go (0: no cap) */
        uint32_t min_count;
        uint64_t idle_versions;
        uint64_t max_rows;
    } sparse;
    ps_worker_loss on_worker_loss;
    ps_divergence on_divergence;
    bool shared_memory; /* workers on psd's host exchange θ and gradients in shared memory */
    uint32_t threads;   /* psd's threads for the loops over θ and rows; 0: the cores it may use */
    /* sync: θ and gradients go in chunks of this many KiB, on every socket;
     * 0: whole; PS_SYNC_CHUNK_AUTO (the default): ps_job_sync_chunk_keys's
     * size, and only over links to another host (ps_endpoint_local) */
    uint32_t sync_chunk_kib;
    struct {
        uint32_t max_peers;         /* connections psd accepts at once; 0: 4 x workers + 64 */
        uint32_t unregistered_rate; /* messages a second from a peer psd has not welcomed */
    } limits;
    struct {
        char dir[PS_PATH_MAX]; /* "" when no checkpoints */
        double every_seconds;
        uint32_t keep;
    } checkpoint;
    struct {
        /* security.curve (paths resolved; "" when not given): with it psd
         * serves CURVE clients only. psd needs server_secret_key and
         * authorized_workers; workers and psctl server_public_key and
         * client_secret_key. Each program checks the ones it needs. */
        bool curve;
        char server_secret_key[PS_PATH_MAX];
        char server_public_key[PS_PATH_MAX];
        char client_secret_key[PS_PATH_MAX];
        char authorized_workers[PS_PATH_MAX];
        char authorized_admins[PS_PATH_MAX]; /* "": no psctl access */
    } security;
    struct {
        /* metrics.listen: where shard i serves /metrics, "host:port" ("" when
         * off). One address in the file is shard 0's; shard i listens on its
         * port + i. A list names one address per server. */
        char listen[PS_MAX_SHARDS][PS_ENDPOINT_MAX];
    } metrics;
    struct {
        /* worker.command: the program psrun starts as each worker instead
         * of psworker (argc 0: psworker), with PSD_JOB and PSD_RANK in its
         * environment and the job's folder as its working folder; the first
         * item, when it holds a '/', is resolved against that folder */
        uint32_t argc;
        char argv[PS_WORKER_ARGS_MAX][PS_PATH_MAX];
    } worker;
    char output[PS_PATH_MAX]; /* "" when no output */
    ps_log_level log_level;
    ps_job_pos output_pos;         /* of `output`, for ps_job_check_writable */
    ps_job_pos checkpoint_dir_pos; /* of `checkpoint.dir` */
} ps_job;

/* The folders a program writes to, checked by ps_job_check_writable. */
typedef enum ps_job_folder {
    PS_JOB_FOLDER_OUTPUT,     /* output: psworker writes the final model there */
    PS_JOB_FOLDER_CHECKPOINT, /* checkpoint.dir: psd writes checkpoints there */
} ps_job_folder;

/* Loads and validates the job file at path into *job (caller-owned). On any
 * problem returns PS_ECONFIG (PS_EUNSUPPORTED for a feature that does not
 * exist yet) and fills err->msg with one line "path:line:col: what is wrong";
 * *job is then unspecified. Nothing is opened but the job file and the data
 * files whose existence it checks, and only regular files are: a job file
 * or data path that is a folder, a FIFO, a device or a socket is refused
 * without being read. YAML nested deeper than 64 levels is refused at once. */
int ps_job_load(const char *path, ps_job *job, ps_error *err);

/* Checks, when the job loads, that the program can write where it will:
 * creates the folder (and its parents) when missing, then creates and
 * removes a test file in it. 0 when the job has no such folder. PS_ECONFIG
 * with one line naming the key, e.g. "job.yaml:31:9: output: /proc/x:
 * cannot write there: No such file or directory", or "... is a regular
 * file, not a folder". */
int ps_job_check_writable(const ps_job *job, ps_job_folder which, ps_error *err);

/* Same as ps_job_load, from a string in memory; `name` stands for the file
 * in messages and `dir` resolves relative paths. For tests. */
int ps_job_parse(const char *text, size_t len, const char *name, const char *dir, ps_job *job,
                 ps_error *err);

/* The tensors of θ in order, derived from the model section: linear and
 * logistic have w [features] and b [1]; softmax W [features, classes] and
 * b [classes]; mlp W1, b1, ..., custom its list. Fills up to max entries of
 * out (offsets set), *n with the count and *num_params with P.
 * PS_EINVAL if there are more than max tensors or P overflows. */
int ps_job_layout(const ps_job *job, ps_tensor_info *out, size_t max, size_t *n,
                  uint64_t *num_params);

/* Whether a sparse table's rows start at 0 (model.init.scheme zeros, or
 * FTRL whose closed form gives 0 at n = 0: beta / lr + l2 == 0); otherwise
 * their weights after the zero prefix start N(0, 0.01²) (row_init.h). */
bool ps_job_rows_start_zero(const ps_job *job);

/* True for the models whose parameters are mostly sparse tables
 * (sparse_logistic, fm). */
bool ps_job_is_sparse(const ps_job *job);

/* The keys a chunk of a sync shard of n keys holds, by the job's
 * sync_chunk_kib (a number: that many KiB; auto: PS_SYNC_CHUNK_AUTO_*'s
 * size); 0 when the shard takes its pushes whole (0, or one chunk or less). */
uint64_t ps_job_sync_chunk_keys(const ps_job *job, uint64_t n);

/* The sparse tables of θ in order: sparse_logistic has "w" (dim 1); fm has
 * "v" (dim 1 + factors: the key's weight, then its embedding; the weight
 * starts at 0). Fills up to max entries of out and *n; dense models have
 * none. PS_EINVAL when there are more than max. */
int ps_job_tables(const ps_job *job, ps_table_spec *out, size_t max, size_t *n);

/* Names of enum values, as written in job files ("logistic", ...); a
 * mode's is ps_mode_name (mode.h). */
const char *ps_model_type_name(ps_model_type type);

/* The names a job file gives a data format ("csv", "criteo") and an
 * optimizer ("adagrad"), "?" for none. */
const char *ps_data_format_name(ps_data_format format);

/* Rows worker `rank` of `workers` gets from n rows (data.shard): stride
 * gives rows rank, rank + W, ...; block gives [rank*n/W, (rank+1)*n/W).
 * 0 for a bad rank. The dense and the sparse readers share it. */
uint64_t ps_shard_rows(uint64_t n, ps_shard_kind kind, uint32_t rank, uint32_t workers);
const char *ps_optim_type_name(ps_optim_type type);

#endif
