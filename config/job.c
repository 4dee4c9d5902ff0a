/* job.c — the job-file loader. libyaml's document API turns the file into a
 * node tree; one table per section (one row per key: type, bounds, default,
 * validity hook) drives parsing and checking. The whole file is validated into
 * a staged copy (keys, then contradictions, then data files, then features
 * that do not exist yet) and copied out only when all of it is good. */
#include "job.h"

#include "util.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define JOB_FILE_MAX_BYTES (1u << 20) /* a job file is a page of YAML, not a data set */
#define KEY_PATH_MAX       256        /* bytes of a dotted key path in messages */
#define SHOW_MAX           48         /* bytes of a user's value echoed in a message */
#define MAX_CLASSES        (1u << 20)
#define MAX_UNITS          (1u << 20)          /* units of one hidden layer */
#define MAX_DIM            (UINT64_C(1) << 40) /* one dimension of a custom tensor */
/* Mappings and lists nested in each other: a job needs 5 (model.tensors[i].
 * shape); the cap refuses a file of nested "[" before libyaml, whose
 * scanner is quadratic in the depth, spends minutes on it. */
#define MAX_DEPTH 64

/* ---- the enum names, in enum order, as written in job files ---- */

static const char *const mode_names[] = {"sync", "async", "ssp", NULL};
static const char *const model_names[] = {"linear", "logistic", "softmax", "mlp", "custom", NULL};
static const char *const init_names[] = {"zeros", "xavier", "normal", NULL};
static const char *const format_names[] = {"csv", "libsvm", "idx", NULL};
static const char *const normalize_names[] = {"none", "standard", NULL};
static const char *const shard_names[] = {"stride", "block", NULL};
static const char *const optim_names[] = {"sgd", "momentum", "adagrad", "adam", "ftrl", NULL};
static const char *const schedule_names[] = {"constant", "step", "cosine", NULL};
/* compress.h's order; pull takes every codec but topk */
static const char *const compress_names[] = {"none", "fp16", "bf16", "int8", "topk", NULL};
static const char *const pull_compress_names[] = {"none", "fp16", "bf16", "int8", NULL};
static const char *const loss_names[] = {"continue", "abort", NULL};
static const char *const divergence_names[] = {"stop", "continue", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};

/* Enum fields are stored as 32-bit values through the tables. */
_Static_assert(sizeof(ps_mode) == sizeof(uint32_t), "enum size");
_Static_assert(sizeof(ps_model_type) == sizeof(uint32_t), "enum size");
_Static_assert(sizeof(ps_init_scheme) == sizeof(uint32_t), "enum size");
_Static_assert(sizeof(ps_data_format) == sizeof(uint32_t), "enum size");
_Static_assert(sizeof(ps_normalize) == sizeof(uint32_t), "enum size");
_Static_assert(sizeof(ps_shard_kind) == sizeof(uint32_t), "enum size");
_Static_assert(sizeof(ps_optim_type) == sizeof(uint32_t), "enum size");
_Static_assert(sizeof(ps_schedule_type) == sizeof(uint32_t), "enum size");
_Static_assert(sizeof(ps_compress_type) == sizeof(uint32_t), "enum size");
_Static_assert(sizeof(ps_worker_loss) == sizeof(uint32_t), "enum size");
_Static_assert(sizeof(ps_divergence) == sizeof(uint32_t), "enum size");
_Static_assert(sizeof(ps_log_level) == sizeof(uint32_t), "enum size");

/* ---- the tables ---- */

/* Every key of the job file has an id; `seen` records where it was given. */
/* clang-format off */
enum key_id {
    K_JOB, K_MODE, K_STALENESS, K_BACKUP, K_DETERMINISTIC, K_WORKERS, K_SERVERS,
    K_MODEL, K_M_TYPE, K_M_FEATURES, K_M_CLASSES, K_M_HIDDEN, K_M_TENSORS, K_M_INIT,
    K_I_SCHEME, K_I_SEED,
    K_DATA, K_D_TRAIN, K_D_TEST, K_D_FORMAT, K_D_TRAIN_LABELS, K_D_TEST_LABELS,
    K_D_LABEL_COLUMN, K_D_NORMALIZE, K_D_SHARD,
    K_OPTIM, K_O_TYPE, K_O_LR, K_O_MOMENTUM, K_O_NESTEROV, K_O_L2, K_O_SCHEDULE,
    K_O_L1, K_O_BETA1, K_O_BETA2, K_O_EPS,
    K_S_TYPE, K_S_STEP_SIZE, K_S_GAMMA, K_S_WARMUP, K_S_TOTAL,
    K_TRAINING, K_T_EPOCHS, K_T_BATCH, K_T_LOCAL_STEPS, K_T_SEED, K_T_LOCAL_OPTIM,
    K_LO_TYPE, K_LO_LR,
    K_COMPRESSION, K_C_PUSH, K_C_PULL, K_C_RATIO, K_C_FEEDBACK,
    K_HEARTBEAT, K_H_INTERVAL, K_H_TIMEOUT, K_H_DEADLINE,
    K_LIMITS, K_LI_PEERS, K_LI_RATE,
    K_ON_WORKER_LOSS, K_ON_DIVERGENCE, K_SHARED_MEMORY,
    K_CHECKPOINT, K_CK_DIR, K_CK_EVERY, K_CK_KEEP,
    K_SECURITY, K_SEC_CURVE, K_SEC_SERVER_SECRET, K_SEC_SERVER_PUBLIC, K_SEC_CLIENT_SECRET,
    K_SEC_WORKERS, K_SEC_ADMINS,
    K_METRICS, K_MET_LISTEN,
    K_OUTPUT,
    K_LOG, K_L_LEVEL,
    K_COUNT
};
/* clang-format on */

/* keys of one entry of model.tensors, which has a `seen` of its own */
enum tensor_key_id { KT_NAME, KT_SHAPE, KT_COUNT };

typedef enum kind {
    KIND_INT,   /* unsigned integer in [min, max] */
    KIND_FLOAT, /* finite number in the interval lo..hi */
    KIND_BOOL,
    KIND_ENUM,    /* one of names[] */
    KIND_STRING,  /* 1 .. size-1 bytes */
    KIND_PATH,    /* a string resolved against the job file's folder */
    KIND_SECTION, /* a mapping with a table of its own */
    KIND_LIST,    /* a sequence, read by the row's parse hook */
    KIND_HOOK,    /* a scalar or a sequence, read by the row's parse hook */
} kind;

/* row flags */
#define F_REQUIRED 1u  /* must be given (when its section is) */
#define F_REFUSED  2u  /* a section parsed and checked, then refused: not supported yet */
#define F_SUP_MAX  4u  /* INT, BOOL: values above sup_max are not supported yet */
#define F_LO_OPEN  8u  /* FLOAT: lo itself is out of range */
#define F_HI_OPEN  16u /* FLOAT: hi itself is out of range */

#define SUP_ALL UINT32_MAX /* ENUM: every value is supported */

typedef struct ctx ctx;
typedef struct key key;

typedef struct section {
    const char *path; /* dotted, "" for the top level */
    const key *keys;
    size_t nkeys;
} section;

struct key {
    const char *name;
    int id;
    kind kind;
    unsigned flags;
    size_t off, size;         /* where the value goes, from the walker's base */
    const char *def;          /* default, written as in a job file; NULL: zero */
    uint64_t min, max;        /* INT: closed range */
    uint64_t sup_max;         /* INT, BOOL with F_SUP_MAX */
    double lo, hi;            /* FLOAT: range, open ends by flag */
    const char *const *names; /* ENUM */
    unsigned sup;             /* ENUM: bit i set when names[i] is supported now */
    bool (*valid)(const char *s, const char **why); /* STRING: is_valid hook */
    const section *sub;                             /* SECTION */
    int (*parse)(ctx *c, const key *k, yaml_node_t *val, const char *path, void *base);
    const char *aka; /* other names users write, for did-you-mean; '|' between */
};

typedef struct key_seen {
    bool present; /* the key was written (null included): a second one is a duplicate */
    bool given;   /* ... with a non-null value */
    yaml_mark_t key_mark, val_mark;
} key_seen;

struct ctx {
    const char *name; /* the file, as messages name it */
    const char *dir;  /* relative paths resolve here */
    const char *text; /* the file's bytes, for reader-error positions */
    size_t len;
    yaml_document_t *doc;
    ps_job *job; /* staged */
    ps_error *err;
    ps_error pending; /* the first "not supported yet", raised after every other check */
    key_seen seen[K_COUNT];
    /* metrics.listen as written: one address (listen_one) or nlisten of
     * them, checked against the servers once the whole file is read */
    bool listen_one;
    size_t nlisten;
    yaml_mark_t listen_marks[PS_MAX_SHARDS];
};

#define FIELD(f) .off = offsetof(ps_job, f), .size = sizeof(((ps_job *)0)->f)
#define ROWS(t)  (t), sizeof(t) / sizeof((t)[0])
#define FLT_INF  HUGE_VAL

static bool valid_name(const char *s, const char **why);
static bool valid_host_port(const char *s, const char **why);
static int parse_servers(ctx *c, const key *k, yaml_node_t *val, const char *path, void *base);
static int parse_metrics_listen(ctx *c, const key *k, yaml_node_t *val, const char *path,
                                void *base);
static int parse_hidden(ctx *c, const key *k, yaml_node_t *val, const char *path, void *base);
static int parse_tensors(ctx *c, const key *k, yaml_node_t *val, const char *path, void *base);
static int parse_shape(ctx *c, const key *k, yaml_node_t *val, const char *path, void *base);

static const key init_keys[] = {
    {"scheme", K_I_SCHEME, KIND_ENUM, FIELD(model.init_scheme), .def = "xavier",
     .names = init_names, .sup = SUP_ALL},
    {"seed", K_I_SEED, KIND_INT, FIELD(model.init_seed), .def = "42", .max = UINT64_MAX},
};
static const section init_sec = {"model.init", ROWS(init_keys)};

static const key model_keys[] = {
    {"type", K_M_TYPE, KIND_ENUM, F_REQUIRED, FIELD(model.type), .names = model_names,
     .sup = 1u << PS_MODEL_LINEAR | 1u << PS_MODEL_LOGISTIC | 1u << PS_MODEL_SOFTMAX |
            1u << PS_MODEL_MLP,
     .aka = "kind|model"},
    {"features", K_M_FEATURES, KIND_INT, F_REQUIRED, FIELD(model.features), .min = 1,
     .max = UINT64_C(1) << 31, .aka = "n_features|num_features|input_dim|inputs|dim"},
    {"classes", K_M_CLASSES, KIND_INT, FIELD(model.classes), .min = 2, .max = MAX_CLASSES,
     .aka = "n_classes|num_classes|outputs|labels"},
    {"hidden", K_M_HIDDEN, KIND_LIST, .parse = parse_hidden, .aka = "hidden_layers|layers|units"},
    {"tensors", K_M_TENSORS, KIND_LIST, .parse = parse_tensors, .aka = "params|parameters"},
    {"init", K_M_INIT, KIND_SECTION, .sub = &init_sec, .aka = "initializer|initialization"},
};
static const section model_sec = {"model", ROWS(model_keys)};

static const key data_keys[] = {
    {"train", K_D_TRAIN, KIND_PATH, F_REQUIRED, FIELD(data.train),
     .aka = "train_file|train_path|training"},
    {"test", K_D_TEST, KIND_PATH, FIELD(data.test), .aka = "test_file|test_path|eval|valid"},
    {"format", K_D_FORMAT, KIND_ENUM, FIELD(data.format), .def = "csv", .names = format_names,
     .sup = SUP_ALL},
    {"train_labels", K_D_TRAIN_LABELS, KIND_PATH, FIELD(data.train_labels)},
    {"test_labels", K_D_TEST_LABELS, KIND_PATH, FIELD(data.test_labels)},
    {"label_column", K_D_LABEL_COLUMN, KIND_INT, FIELD(data.label_column), .def = "0",
     .max = UINT32_MAX, .aka = "label|label_col|target"},
    {"normalize", K_D_NORMALIZE, KIND_ENUM, FIELD(data.normalize), .def = "standard",
     .names = normalize_names, .sup = SUP_ALL, .aka = "normalise|normalization|scale"},
    {"shard", K_D_SHARD, KIND_ENUM, FIELD(data.shard), .def = "stride", .names = shard_names,
     .sup = SUP_ALL, .aka = "sharding|partition"},
};
static const section data_sec = {"data", ROWS(data_keys)};

static const key schedule_keys[] = {
    {"type", K_S_TYPE, KIND_ENUM, FIELD(optimizer.schedule), .def = "constant",
     .names = schedule_names, .sup = SUP_ALL},
    {"step_size", K_S_STEP_SIZE, KIND_INT, FIELD(optimizer.step_size), .min = 1, .max = UINT64_MAX,
     .aka = "step|every"},
    {"gamma", K_S_GAMMA, KIND_FLOAT, F_LO_OPEN, FIELD(optimizer.gamma), .def = "0.1", .lo = 0,
     .hi = 1, .aka = "decay|factor"},
    {"warmup_steps", K_S_WARMUP, KIND_INT, FIELD(optimizer.warmup_steps), .def = "0",
     .max = UINT64_MAX, .aka = "warmup"},
    {"total_steps", K_S_TOTAL, KIND_INT, FIELD(optimizer.total_steps), .min = 1, .max = UINT64_MAX,
     .aka = "total|horizon|max_steps|t_max"},
};
static const section schedule_sec = {"optimizer.schedule", ROWS(schedule_keys)};

static const key optim_keys[] = {
    {"type", K_O_TYPE, KIND_ENUM, FIELD(optimizer.type), .def = "sgd", .names = optim_names,
     .sup = SUP_ALL, .aka = "name|optimizer"},
    {"lr", K_O_LR, KIND_FLOAT, F_LO_OPEN, FIELD(optimizer.lr), .def = "0.1", .lo = 0, .hi = FLT_INF,
     .aka = "learning_rate|learningrate|rate|eta|alpha"},
    {"momentum", K_O_MOMENTUM, KIND_FLOAT, F_HI_OPEN, FIELD(optimizer.momentum), .def = "0.9",
     .lo = 0, .hi = 1, .aka = "beta|mu"},
    {"nesterov", K_O_NESTEROV, KIND_BOOL, FIELD(optimizer.nesterov), .def = "false"},
    {"l2", K_O_L2, KIND_FLOAT, FIELD(optimizer.l2), .def = "0", .lo = 0, .hi = FLT_INF,
     .aka = "weight_decay|lambda|reg|regularization|l2_reg"},
    {"l1", K_O_L1, KIND_FLOAT, FIELD(optimizer.l1), .def = "0", .lo = 0, .hi = FLT_INF,
     .aka = "lambda1|l1_reg"},
    {"beta1", K_O_BETA1, KIND_FLOAT, F_HI_OPEN, FIELD(optimizer.beta1), .def = "0.9", .lo = 0,
     .hi = 1},
    {"beta2", K_O_BETA2, KIND_FLOAT, F_HI_OPEN, FIELD(optimizer.beta2), .def = "0.999", .lo = 0,
     .hi = 1},
    {"eps", K_O_EPS, KIND_FLOAT, F_LO_OPEN, FIELD(optimizer.eps), .def = "1e-8", .lo = 0,
     .hi = FLT_INF, .aka = "epsilon"},
    {"schedule", K_O_SCHEDULE, KIND_SECTION, .sub = &schedule_sec, .aka = "lr_schedule|scheduler"},
};
static const section optim_sec = {"optimizer", ROWS(optim_keys)};

/* local SGD's own steps on a worker: plain sgd; lr 0 (absent) means optimizer.lr */
static const key local_optim_keys[] = {
    {"type", K_LO_TYPE, KIND_ENUM, FIELD(training.local_optim), .def = "sgd", .names = optim_names,
     .sup = 1u << PS_OPTIM_SGD, .aka = "name|optimizer"},
    {"lr", K_LO_LR, KIND_FLOAT, F_LO_OPEN, FIELD(training.local_lr), .lo = 0, .hi = FLT_INF,
     .aka = "learning_rate|learningrate|rate|eta|alpha"},
};
static const section local_optim_sec = {"training.local_optimizer", ROWS(local_optim_keys)};

static const key training_keys[] = {
    {"epochs", K_T_EPOCHS, KIND_INT, FIELD(training.epochs), .def = "10", .min = 1, .max = 1000000,
     .aka = "epoch|num_epochs|n_epochs"},
    {"batch_size", K_T_BATCH, KIND_INT, FIELD(training.batch_size), .def = "32", .min = 1,
     .max = UINT32_MAX, .aka = "batch|batchsize|minibatch"},
    {"local_steps", K_T_LOCAL_STEPS, KIND_INT, FIELD(training.local_steps), .def = "1", .min = 1,
     .max = UINT32_MAX, .aka = "local_sgd|sync_period|period|h"},
    {"local_optimizer", K_T_LOCAL_OPTIM, KIND_SECTION, .sub = &local_optim_sec,
     .aka = "inner_optimizer|local_optim"},
    {"seed", K_T_SEED, KIND_INT, FIELD(training.seed), .def = "7", .max = UINT64_MAX,
     .aka = "random_seed"},
};
static const section training_sec = {"training", ROWS(training_keys)};

static const key compression_keys[] = {
    {"push", K_C_PUSH, KIND_ENUM, FIELD(compression.push), .def = "none", .names = compress_names,
     .sup = SUP_ALL, .aka = "type|codec|gradients"},
    {"pull", K_C_PULL, KIND_ENUM, FIELD(compression.pull), .def = "none",
     .names = pull_compress_names, .sup = SUP_ALL, .aka = "theta|params"},
    {"topk_ratio", K_C_RATIO, KIND_FLOAT, F_LO_OPEN, FIELD(compression.topk_ratio), .def = "0.01",
     .lo = 0, .hi = 1, .aka = "ratio|k|fraction"},
    /* default: on for int8 and topk pushes (check_compression) */
    {"error_feedback", K_C_FEEDBACK, KIND_BOOL, FIELD(compression.error_feedback),
     .aka = "feedback|ef|residual"},
};
static const section compression_sec = {"compression", ROWS(compression_keys)};

static const key heartbeat_keys[] = {
    {"interval_ms", K_H_INTERVAL, KIND_INT, FIELD(heartbeat.interval_ms), .def = "500", .min = 1,
     .max = 3600000, .aka = "interval|period_ms"},
    {"timeout_ms", K_H_TIMEOUT, KIND_INT, FIELD(heartbeat.timeout_ms), .def = "3000", .min = 1,
     .max = 3600000, .aka = "timeout"},
    {"deadline_ms", K_H_DEADLINE, KIND_INT, FIELD(heartbeat.deadline_ms), .def = "60000", .min = 1,
     .max = 86400000, .aka = "deadline|give_up_ms|retry_ms"},
};
static const section heartbeat_sec = {"heartbeat", ROWS(heartbeat_keys)};

/* what one hostile peer can make psd do (server.c) */
static const key limits_keys[] = {
    {"max_peers", K_LI_PEERS, KIND_INT, FIELD(limits.max_peers), .def = "0", .max = 65536,
     .aka = "peers|max_connections|connections"},
    {"unregistered_rate", K_LI_RATE, KIND_INT, FIELD(limits.unregistered_rate), .def = "100",
     .min = 1, .max = 1000000, .aka = "rate|hello_rate|messages_per_second"},
};
static const section limits_sec = {"limits", ROWS(limits_keys)};

static const key checkpoint_keys[] = {
    {"dir", K_CK_DIR, KIND_PATH, F_REQUIRED, FIELD(checkpoint.dir), .aka = "path|folder|directory"},
    {"every_seconds", K_CK_EVERY, KIND_FLOAT, F_LO_OPEN, FIELD(checkpoint.every_seconds),
     .def = "30", .lo = 0, .hi = 31536000, .aka = "every|interval|interval_seconds"},
    {"keep", K_CK_KEEP, KIND_INT, FIELD(checkpoint.keep), .def = "3", .min = 1, .max = UINT32_MAX,
     .aka = "max_keep|retain"},
};
static const section checkpoint_sec = {"checkpoint", ROWS(checkpoint_keys)};

static const key curve_keys[] = {
    {"server_secret_key", K_SEC_SERVER_SECRET, KIND_PATH, FIELD(security.server_secret_key),
     .aka = "secret_key|server_key|server_secret"},
    {"server_public_key", K_SEC_SERVER_PUBLIC, KIND_PATH, FIELD(security.server_public_key),
     .aka = "public_key|server_public|server_key"},
    {"client_secret_key", K_SEC_CLIENT_SECRET, KIND_PATH, FIELD(security.client_secret_key),
     .aka = "client_key|worker_key|worker_secret_key"},
    {"authorized_workers", K_SEC_WORKERS, KIND_PATH, FIELD(security.authorized_workers),
     .aka = "authorised_workers|authorized_keys|workers|worker_keys"},
    {"authorized_admins", K_SEC_ADMINS, KIND_PATH, FIELD(security.authorized_admins),
     .aka = "authorised_admins|admins|admin_keys"},
};
static const section curve_sec = {"security.curve", ROWS(curve_keys)};

static const key security_keys[] = {
    {"curve", K_SEC_CURVE, KIND_SECTION, F_REQUIRED, .sub = &curve_sec,
     .aka = "curvezmq|zmq_curve"},
};
static const section security_sec = {"security", ROWS(security_keys)};

static const key metrics_keys[] = {
    {"listen", K_MET_LISTEN, KIND_HOOK, F_REQUIRED, .parse = parse_metrics_listen,
     .aka = "address|bind|endpoint|listen_address"},
};
static const section metrics_sec = {"metrics", ROWS(metrics_keys)};

static const key log_keys[] = {
    {"level", K_L_LEVEL, KIND_ENUM, FIELD(log_level), .def = "info", .names = level_names,
     .sup = SUP_ALL, .aka = "log_level|verbosity"},
};
static const section log_sec = {"log", ROWS(log_keys)};

static const key top_keys[] = {
    {"job", K_JOB, KIND_STRING, F_REQUIRED, FIELD(name), .valid = valid_name,
     .aka = "name|job_name"},
    {"mode", K_MODE, KIND_ENUM, FIELD(mode), .def = "sync", .names = mode_names, .sup = SUP_ALL,
     .aka = "consistency"},
    {"staleness", K_STALENESS, KIND_INT, FIELD(staleness), .def = "0", .max = UINT32_MAX,
     .aka = "max_staleness|bound"},
    {"backup_workers", K_BACKUP, KIND_INT, FIELD(backup_workers), .def = "0", .max = PS_MAX_WORKERS,
     .aka = "backups"},
    {"deterministic", K_DETERMINISTIC, KIND_BOOL, FIELD(deterministic), .def = "false",
     .aka = "reproducible"},
    {"workers", K_WORKERS, KIND_INT, F_REQUIRED, FIELD(workers), .min = 1, .max = PS_MAX_WORKERS,
     .aka = "num_workers|n_workers|worker"},
    {"servers", K_SERVERS, KIND_LIST, F_REQUIRED, .parse = parse_servers,
     .aka = "server|shards|endpoints"},
    {"model", K_MODEL, KIND_SECTION, F_REQUIRED, .sub = &model_sec},
    {"data", K_DATA, KIND_SECTION, F_REQUIRED, .sub = &data_sec, .aka = "dataset"},
    {"optimizer", K_OPTIM, KIND_SECTION, .sub = &optim_sec, .aka = "optimiser|optim"},
    {"training", K_TRAINING, KIND_SECTION, .sub = &training_sec, .aka = "train|trainer"},
    {"compression", K_COMPRESSION, KIND_SECTION, .sub = &compression_sec, .aka = "compress"},
    {"heartbeat", K_HEARTBEAT, KIND_SECTION, .sub = &heartbeat_sec, .aka = "heartbeats"},
    {"limits", K_LIMITS, KIND_SECTION, .sub = &limits_sec, .aka = "limit|dos"},
    {"on_worker_loss", K_ON_WORKER_LOSS, KIND_ENUM, FIELD(on_worker_loss), .def = "continue",
     .names = loss_names, .sup = SUP_ALL},
    {"on_divergence", K_ON_DIVERGENCE, KIND_ENUM, FIELD(on_divergence), .def = "stop",
     .names = divergence_names, .sup = SUP_ALL, .aka = "on_nan|divergence"},
    {"shared_memory", K_SHARED_MEMORY, KIND_BOOL, FIELD(shared_memory), .def = "true",
     .aka = "shm|shared_mem|use_shm"},
    {"checkpoint", K_CHECKPOINT, KIND_SECTION, .sub = &checkpoint_sec,
     .aka = "checkpoints|checkpointing"},
    {"security", K_SECURITY, KIND_SECTION, .sub = &security_sec, .aka = "auth|encryption"},
    {"metrics", K_METRICS, KIND_SECTION, .sub = &metrics_sec, .aka = "prometheus"},
    {"output", K_OUTPUT, KIND_PATH, FIELD(output), .aka = "out|output_dir|outdir"},
    {"log", K_LOG, KIND_SECTION, .sub = &log_sec, .aka = "logging"},
};
static const section top_sec = {"", ROWS(top_keys)};

/* the sections of the job, for "this key belongs in another section" hints */
static const section *const job_sections[] = {
    &top_sec,         &model_sec,     &init_sec,       &data_sec,
    &optim_sec,       &schedule_sec,  &training_sec,   &local_optim_sec,
    &compression_sec, &heartbeat_sec, &checkpoint_sec, &security_sec,
    &curve_sec,       &metrics_sec,   &log_sec,        &limits_sec,
};

#define TFIELD(f) .off = offsetof(ps_tensor_spec, f), .size = sizeof(((ps_tensor_spec *)0)->f)
static const key tensor_keys[] = {
    {"name", KT_NAME, KIND_STRING, F_REQUIRED, TFIELD(name), .valid = valid_name},
    {"shape", KT_SHAPE, KIND_LIST, F_REQUIRED, .parse = parse_shape, .aka = "dims|size"},
};

/* ---- messages ---- */

static int vfail(ps_error *err, const char *file, int code, yaml_mark_t m, const char *fmt,
                 va_list ap) __attribute__((format(printf, 5, 0)));

static int vfail(ps_error *err, const char *file, int code, yaml_mark_t m, const char *fmt,
                 va_list ap)
{
    char what[PS_ERROR_MSG_MAX];
    vsnprintf(what, sizeof what, fmt, ap);
    return ps_error_set(err, code, "%s:%zu:%zu: %s", file, m.line + 1, m.column + 1, what);
}

/* Fills c->err with "file:line:col: message" at mark m; returns code. */
static int fail(ctx *c, int code, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(ctx *c, int code, yaml_mark_t m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c->err, c->name, code, m, fmt, ap);
    va_end(ap);
    return code;
}

/* Remembers the first feature that does not exist yet; it is raised only
 * when the rest of the file is valid. Returns 0: the walk goes on. */
static int unsupported(ctx *c, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int unsupported(ctx *c, yaml_mark_t m, const char *fmt, ...)
{
    if (c->pending.code != 0)
        return 0;
    char what[PS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    ps_error_set(&c->pending, PS_EUNSUPPORTED, "%s:%zu:%zu: %s is not supported yet", c->name,
                 m.line + 1, m.column + 1, what);
    return 0;
}

/* Copies a user's text for a one-line message: control bytes become '?',
 * and text longer than max bytes is cut with "...". */
static const char *show(char *buf, size_t cap, const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0' && n < max && n + 4 < cap; n++)
        buf[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
    if (s[n] != '\0' && n + 4 <= cap) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

#define SHOW(buf, s) show((buf), sizeof(buf), (s), SHOW_MAX)

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool is_plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* YAML null: a plain ~, null or nothing at all */
static bool is_null(const yaml_node_t *n)
{
    if (!is_plain(n))
        return false;
    const char *s = scalar(n);
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* "a list", "a mapping", "\"two\"" or "the string \"2\"": what was written */
static const char *describe(const yaml_node_t *n, char *buf, size_t cap)
{
    char shown[SHOW_MAX + 8];
    if (n->type == YAML_MAPPING_NODE)
        snprintf(buf, cap, "a mapping");
    else if (n->type == YAML_SEQUENCE_NODE)
        snprintf(buf, cap, "a list");
    else if (is_plain(n))
        snprintf(buf, cap, "\"%s\"", SHOW(shown, scalar(n)));
    else
        snprintf(buf, cap, "the string \"%s\"", SHOW(shown, scalar(n)));
    return buf;
}

static int wrong_type(ctx *c, const yaml_node_t *n, const char *path, const char *expected)
{
    char got[SHOW_MAX + 32];
    return fail(c, PS_ECONFIG, n->start_mark, "%s: expected %s, got %s", path, expected,
                describe(n, got, sizeof got));
}

/* "optimizer.lr" from "optimizer" and "lr"; key paths are short, and a cut
 * one only shortens a message */
static void join_path(char *buf, size_t cap, const char *prefix, const char *name)
{
    ps_strlcpy(buf, prefix, cap);
    size_t n = strlen(buf);
    if (n > 0 && n + 1 < cap)
        buf[n++] = '.';
    ps_strlcpy(buf + n, name, cap - n);
}

/* "servers[3]" */
static void item_path(char *buf, size_t cap, const char *path, size_t i)
{
    int n = snprintf(buf, cap, "%s[%zu]", path, i);
    (void)n;
}

/* "sync, async, ssp" */
static void list_names(char *buf, size_t cap, const char *const *names)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; names[i] != NULL && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", names[i]);
}

/* ---- scalar conversions: text to value, no messages ---- */

/* Decimal digits with an optional sign. *neg: a minus sign before a
 * non-zero value; *over: more than 64 bits. False when not an integer. */
static bool text_uint(const char *s, uint64_t *v, bool *neg, bool *over)
{
    *v = 0;
    *neg = false;
    *over = false;
    if (*s == '+' || *s == '-')
        *neg = *s++ == '-';
    if (!isdigit((unsigned char)*s))
        return false;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (*v > (UINT64_MAX - d) / 10)
            *over = true;
        else
            *v = *v * 10 + d;
    }
    if (*v == 0 && !*over)
        *neg = false;
    return *s == '\0';
}

/* A finite decimal number: [sign] digits [. digits] [e [sign] digits]. No
 * hex, inf or nan, which strtod alone would take. */
static bool text_double(const char *s, double *v)
{
    const char *p = s;
    bool digits = false;
    if (*p == '+' || *p == '-')
        p++;
    while (isdigit((unsigned char)*p))
        p++, digits = true;
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++)
            digits = true;
    if (!digits)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p != '\0')
        return false;
    *v = strtod(s, NULL);
    return isfinite(*v);
}

/* 1 for true, 0 for false, -1 for anything else */
static int text_bool(const char *s)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
        return 1;
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
        return 0;
    return -1;
}

static int text_enum(const char *s, const char *const *names)
{
    for (int i = 0; names[i] != NULL; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static void store_uint(void *p, size_t size, uint64_t v)
{
    if (size == sizeof(uint64_t)) {
        memcpy(p, &v, sizeof v);
    } else if (size == sizeof(uint32_t)) {
        uint32_t u = (uint32_t)v;
        memcpy(p, &u, sizeof u);
    } else {
        assert(size == sizeof(bool));
        bool b = v != 0;
        memcpy(p, &b, sizeof b);
    }
}

/* ---- scalar conversions with messages ---- */

static int get_uint(ctx *c, const yaml_node_t *n, const char *path, uint64_t min, uint64_t max,
                    uint64_t type_max, uint64_t *out)
{
    uint64_t v;
    bool neg, over;
    if (!is_plain(n) || !text_uint(scalar(n), &v, &neg, &over))
        return wrong_type(c, n, path, "an integer");
    if (!neg && !over && v >= min && v <= max) {
        *out = v;
        return 0;
    }
    char got[SHOW_MAX + 8];
    SHOW(got, scalar(n));
    if (min == 0)
        return fail(c, PS_ECONFIG, n->start_mark, "%s: must be at most %" PRIu64 ", got %s", path,
                    max, got);
    if (max == type_max)
        return fail(c, PS_ECONFIG, n->start_mark, "%s: must be at least %" PRIu64 ", got %s", path,
                    min, got);
    return fail(c, PS_ECONFIG, n->start_mark,
                "%s: must be between %" PRIu64 " and %" PRIu64 ", got %s", path, min, max, got);
}

static int get_double(ctx *c, const yaml_node_t *n, const char *path, const key *k, double *out)
{
    double v;
    if (!is_plain(n) || !text_double(scalar(n), &v))
        return wrong_type(c, n, path, "a number");
    bool lo_ok = (k->flags & F_LO_OPEN) ? v > k->lo : v >= k->lo;
    bool hi_ok = isinf(k->hi) || ((k->flags & F_HI_OPEN) ? v < k->hi : v <= k->hi);
    if (lo_ok && hi_ok) {
        *out = v;
        return 0;
    }
    char got[SHOW_MAX + 8];
    SHOW(got, scalar(n));
    if (isinf(k->hi))
        return fail(c, PS_ECONFIG, n->start_mark, "%s: must be %s %g, got %s", path,
                    (k->flags & F_LO_OPEN) ? ">" : ">=", k->lo, got);
    return fail(c, PS_ECONFIG, n->start_mark, "%s: must be in %c%g, %g%c, got %s", path,
                (k->flags & F_LO_OPEN) ? '(' : '[', k->lo, k->hi,
                (k->flags & F_HI_OPEN) ? ')' : ']', got);
}

/* A string of 1 .. cap-1 bytes, checked by the hook when there is one. */
static int get_string(ctx *c, const yaml_node_t *n, const char *path, size_t cap,
                      bool (*valid)(const char *, const char **), const char **out)
{
    if (n->type != YAML_SCALAR_NODE)
        return wrong_type(c, n, path, "a string");
    const char *s = scalar(n);
    size_t len = n->data.scalar.length;
    if (strlen(s) != len)
        return fail(c, PS_ECONFIG, n->start_mark, "%s: must not contain a NUL character", path);
    if (len == 0)
        return fail(c, PS_ECONFIG, n->start_mark, "%s: must not be empty", path);
    if (len >= cap)
        return fail(c, PS_ECONFIG, n->start_mark, "%s: must be at most %zu bytes, got %zu", path,
                    cap - 1, len);
    const char *why = NULL;
    if (valid != NULL && !valid(s, &why)) {
        char shown[SHOW_MAX + 8];
        return fail(c, PS_ECONFIG, n->start_mark, "%s: \"%s\" %s", path, SHOW(shown, s), why);
    }
    *out = s;
    return 0;
}

/* rel resolved against the job's folder into out (cap bytes); absolute
 * paths stay as they are, and a leading "./" is dropped. */
static bool resolve_path(const char *dir, const char *rel, char *out, size_t cap)
{
    if (rel[0] == '/')
        return ps_strlcpy(out, rel, cap);
    while (rel[0] == '.' && rel[1] == '/') {
        rel += 2;
        while (rel[0] == '/')
            rel++;
    }
    if (rel[0] == '\0')
        rel = ".";
    int n;
    if (dir[0] == '\0' || strcmp(dir, ".") == 0)
        n = snprintf(out, cap, "%s", rel);
    else if (dir[strlen(dir) - 1] == '/')
        n = snprintf(out, cap, "%s%s", dir, rel);
    else
        n = snprintf(out, cap, "%s/%s", dir, rel);
    return n >= 0 && (size_t)n < cap;
}

/* ---- validity hooks ---- */

/* Job and tensor names: they name files and metrics, so a plain word. */
static bool valid_name(const char *s, const char **why)
{
    if (strspn(s, ".") == strlen(s)) {
        *why = "is not a name";
        return false;
    }
    for (; *s != '\0'; s++) {
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-') {
            *why = "may only contain letters, digits, '.', '_' and '-'";
            return false;
        }
    }
    return true;
}

static bool valid_port(const char *s)
{
    uint64_t v;
    bool neg, over;
    return *s != '+' && *s != '-' && text_uint(s, &v, &neg, &over) && !over && v >= 1 && v <= 65535;
}

static bool has_space(const char *s)
{
    for (; *s != '\0'; s++)
        if (isspace((unsigned char)*s) || (unsigned char)*s < 0x20)
            return true;
    return false;
}

/* host:port, host not empty */
static bool valid_host_port(const char *s, const char **why)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || !valid_port(colon + 1) || has_space(s)) {
        *why = "is not host:port";
        return false;
    }
    return true;
}

/* tcp://host:port or ipc://path; workers connect to it, so no wildcard */
static bool valid_endpoint(const char *s, const char **why)
{
    *why = "is not an endpoint (tcp://host:port or ipc://path)";
    if (has_space(s))
        return false;
    if (strncmp(s, "ipc://", 6) == 0)
        return s[6] != '\0';
    if (strncmp(s, "tcp://", 6) != 0)
        return false;
    const char *host = s + 6;
    const char *colon = strrchr(host, ':');
    if (colon == NULL || colon == host || !valid_port(colon + 1))
        return false;
    if (host[0] == '*') {
        *why = "has a wildcard host; workers need an address to connect to";
        return false;
    }
    return true;
}

/* ---- did you mean ---- */

static size_t min3(size_t a, size_t b, size_t c)
{
    size_t m = a < b ? a : b;
    return m < c ? m : c;
}

/* Edit distance (insert, delete, substitute, swap two neighbours), case
 * ignored; the first 63 bytes of each string count. */
static size_t edit_distance(const char *a, const char *b)
{
    enum { N = 64 };
    size_t d[N][N];
    size_t la = strnlen(a, N - 1), lb = strnlen(b, N - 1);
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            d[i][j] = min3(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (ca != cb));
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < d[i][j])
                d[i][j] = d[i - 2][j - 2] + 1;
        }
    }
    return d[la][lb];
}

/* The distance from word to the row's name or its nearest alias. */
static size_t key_distance(const char *word, const key *k)
{
    size_t best = edit_distance(word, k->name);
    for (const char *a = k->aka; a != NULL && *a != '\0';) {
        char alias[64];
        size_t n = strcspn(a, "|");
        if (n < sizeof alias) {
            memcpy(alias, a, n);
            alias[n] = '\0';
            size_t dist = edit_distance(word, alias);
            if (dist < best)
                best = dist;
        }
        a += n + (a[n] == '|');
    }
    return best;
}

/* Looks for word in the other sections of the job: returns how many hold a
 * key named word, lists them in list ("model, optimizer") and puts the first
 * such key's path in path; when none does but exactly one key has word as
 * an alias, path gets that key's path. */
static size_t other_sections(const char *word, const key *here, char *list, size_t cap, char *path,
                             size_t path_cap)
{
    size_t names = 0, aliases = 0, n = 0;
    char alias_path[KEY_PATH_MAX] = "";
    list[0] = '\0';
    path[0] = '\0';
    for (size_t s = 0; s < sizeof job_sections / sizeof job_sections[0]; s++) {
        const section *sec = job_sections[s];
        if (sec->keys == here)
            continue;
        for (size_t i = 0; i < sec->nkeys; i++) {
            const key *k = &sec->keys[i];
            if (strcasecmp(word, k->name) == 0) {
                if (names++ == 0)
                    join_path(path, path_cap, sec->path, k->name);
                if (n < cap)
                    n += (size_t)snprintf(list + n, cap - n, "%s%s", n ? ", " : "", sec->path);
            } else if (key_distance(word, k) == 0 && aliases++ == 0) {
                join_path(alias_path, sizeof alias_path, sec->path, k->name);
            }
        }
    }
    if (names == 0 && aliases == 1)
        ps_strlcpy(path, alias_path, path_cap);
    return names;
}

/* The hint after an unknown key: the nearest key at this level when it is
 * near (or word is one of its aliases); else the section that holds word;
 * else the list of keys valid here. */
static void suggest(const char *word, const key *keys, size_t nkeys, bool job_level, char *buf,
                    size_t cap)
{
    size_t best = SIZE_MAX;
    const key *near = NULL;
    for (size_t i = 0; i < nkeys; i++) {
        size_t dist = key_distance(word, &keys[i]);
        if (dist < best) {
            best = dist;
            near = &keys[i];
        }
    }
    if (best == 0) {
        snprintf(buf, cap, "did you mean \"%s\"?", near->name);
        return;
    }
    if (job_level) {
        char list[256], path[KEY_PATH_MAX];
        size_t names = other_sections(word, keys, list, sizeof list, path, sizeof path);
        char shown[SHOW_MAX + 8];
        if (names > 1) {
            snprintf(buf, cap, "\"%s\" belongs in a section: %s", SHOW(shown, word), list);
            return;
        }
        if (path[0] != '\0') {
            snprintf(buf, cap, "did you mean \"%s\"?", path);
            return;
        }
    }
    if (best <= 2 || 2 * best <= strlen(word)) {
        snprintf(buf, cap, "did you mean \"%s\"?", near->name);
        return;
    }
    size_t n = (size_t)snprintf(buf, cap, "valid keys:");
    for (size_t i = 0; i < nkeys && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s %s", i ? "," : "", keys[i].name);
}

/* ---- the walk ---- */

static yaml_node_t *node_at(ctx *c, int id)
{
    return yaml_document_get_node(c->doc, id);
}

static const key *find_key(const key *keys, size_t nkeys, const char *name)
{
    for (size_t i = 0; i < nkeys; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static int walk_mapping(ctx *c, yaml_node_t *map, const key *keys, size_t nkeys, const char *prefix,
                        bool job_level, void *base, key_seen *seen);

static int parse_value(ctx *c, const key *k, yaml_node_t *val, const char *path, void *base,
                       key_seen *s)
{
    char *p = (char *)base + k->off;
    char got[SHOW_MAX + 8];
    int rc;
    switch (k->kind) {
    case KIND_INT: {
        uint64_t type_max = k->size == sizeof(uint64_t) ? UINT64_MAX : UINT32_MAX;
        uint64_t v = 0;
        if ((rc = get_uint(c, val, path, k->min, k->max, type_max, &v)) != 0)
            return rc;
        store_uint(p, k->size, v);
        if ((k->flags & F_SUP_MAX) && v > k->sup_max)
            unsupported(c, val->start_mark, "%s %s", path, SHOW(got, scalar(val)));
        return 0;
    }
    case KIND_FLOAT: {
        double v = 0;
        if ((rc = get_double(c, val, path, k, &v)) != 0)
            return rc;
        memcpy(p, &v, sizeof v);
        return 0;
    }
    case KIND_BOOL: {
        int b = is_plain(val) ? text_bool(scalar(val)) : -1;
        if (b < 0)
            return wrong_type(c, val, path, "true or false");
        store_uint(p, k->size, (uint64_t)b);
        if ((k->flags & F_SUP_MAX) && (uint64_t)b > k->sup_max)
            unsupported(c, val->start_mark, "%s %s", path, SHOW(got, scalar(val)));
        return 0;
    }
    case KIND_ENUM: {
        if (val->type != YAML_SCALAR_NODE) {
            char names[256];
            list_names(names, sizeof names, k->names);
            char what[300];
            snprintf(what, sizeof what, "one of %s", names);
            return wrong_type(c, val, path, what);
        }
        int i = text_enum(scalar(val), k->names);
        if (i < 0) {
            char names[256];
            list_names(names, sizeof names, k->names);
            return fail(c, PS_ECONFIG, val->start_mark, "%s: \"%s\" is not one of %s", path,
                        SHOW(got, scalar(val)), names);
        }
        store_uint(p, k->size, (uint64_t)i);
        if (!(k->sup & (1u << i)))
            unsupported(c, val->start_mark, "%s %s", path, k->names[i]);
        return 0;
    }
    case KIND_STRING: {
        const char *str = NULL;
        if ((rc = get_string(c, val, path, k->size, k->valid, &str)) != 0)
            return rc;
        memcpy(p, str, strlen(str) + 1);
        return 0;
    }
    case KIND_PATH: {
        const char *str = NULL;
        if ((rc = get_string(c, val, path, k->size, k->valid, &str)) != 0)
            return rc;
        if (!resolve_path(c->dir, str, p, k->size))
            return fail(c, PS_ECONFIG, val->start_mark,
                        "%s: path too long once resolved against %s (at most %zu bytes)", path,
                        c->dir, k->size - 1);
        return 0;
    }
    case KIND_SECTION:
        if (val->type != YAML_MAPPING_NODE)
            return wrong_type(c, val, path, "a mapping");
        return walk_mapping(c, val, k->sub->keys, k->sub->nkeys, k->sub->path, true, base, s);
    case KIND_LIST:
        if (val->type != YAML_SEQUENCE_NODE)
            return wrong_type(c, val, path, "a list");
        return k->parse(c, k, val, path, base);
    case KIND_HOOK:
        return k->parse(c, k, val, path, base);
    }
    assert(!"unknown kind");
    return PS_EINVAL;
}

static int walk_mapping(ctx *c, yaml_node_t *map, const key *keys, size_t nkeys, const char *prefix,
                        bool job_level, void *base, key_seen *seen)
{
    char shown[SHOW_MAX + 8];
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *kn = node_at(c, pair->key), *val = node_at(c, pair->value);
        if (kn->type != YAML_SCALAR_NODE) {
            char got[SHOW_MAX + 32];
            return fail(c, PS_ECONFIG, kn->start_mark, "a key must be a name, got %s",
                        describe(kn, got, sizeof got));
        }
        const char *name = scalar(kn);
        const key *k = find_key(keys, nkeys, name);
        if (k == NULL) {
            char hint[400];
            suggest(name, keys, nkeys, job_level, hint, sizeof hint);
            if (prefix[0] == '\0')
                return fail(c, PS_ECONFIG, kn->start_mark, "unknown key \"%s\" at top level (%s)",
                            SHOW(shown, name), hint);
            return fail(c, PS_ECONFIG, kn->start_mark, "unknown key \"%s\" in %s (%s)",
                        SHOW(shown, name), prefix, hint);
        }
        char path[KEY_PATH_MAX];
        join_path(path, sizeof path, prefix, k->name);
        key_seen *s = &seen[k->id];
        if (s->present)
            return fail(c, PS_ECONFIG, kn->start_mark, "duplicate key \"%s\" (first at %zu:%zu)",
                        path, s->key_mark.line + 1, s->key_mark.column + 1);
        s->present = true;
        s->key_mark = kn->start_mark;
        s->val_mark = val->start_mark;
        if (is_null(val)) {
            if (k->flags & F_REQUIRED)
                return fail(c, PS_ECONFIG, val->start_mark, "%s: required, cannot be null", path);
            continue;
        }
        s->given = true;
        int rc = parse_value(c, k, val, path, base, seen);
        if (rc != 0)
            return rc;
        if (k->flags & F_REFUSED)
            unsupported(c, kn->start_mark, "%s", path);
    }
    for (size_t i = 0; i < nkeys; i++) {
        if ((keys[i].flags & F_REQUIRED) && !seen[keys[i].id].present) {
            if (prefix[0] == '\0')
                return fail(c, PS_ECONFIG, map->start_mark, "missing required key \"%s\"",
                            keys[i].name);
            return fail(c, PS_ECONFIG, map->start_mark, "missing required key \"%s\" in %s",
                        keys[i].name, prefix);
        }
    }
    return 0;
}

/* A list of lo..hi items; fills *count. */
static int list_size(ctx *c, const yaml_node_t *seq, const char *path, size_t lo, size_t hi,
                     const char *what, size_t *count)
{
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (n == 0 && lo > 0)
        return fail(c, PS_ECONFIG, seq->start_mark, "%s: must list at least one %s", path, what);
    if (n < lo || n > hi)
        return fail(c, PS_ECONFIG, seq->start_mark, "%s: must list %zu to %zu %ss, got %zu", path,
                    lo, hi, what, n);
    *count = n;
    return 0;
}

static int parse_servers(ctx *c, const key *k, yaml_node_t *val, const char *path, void *base)
{
    (void)k;
    ps_job *job = base;
    size_t n = 0;
    int rc = list_size(c, val, path, 1, PS_MAX_SHARDS, "endpoint", &n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_at(c, val->data.sequence.items.start[i]);
        char ipath[KEY_PATH_MAX];
        item_path(ipath, sizeof ipath, path, i);
        const char *ep = NULL;
        if ((rc = get_string(c, item, ipath, PS_ENDPOINT_MAX, valid_endpoint, &ep)) != 0)
            return rc;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(job->servers[j], ep) == 0) {
                yaml_node_t *first = node_at(c, val->data.sequence.items.start[j]);
                char shown[SHOW_MAX + 8];
                return fail(c, PS_ECONFIG, item->start_mark,
                            "%s: \"%s\" is listed twice (first at %zu:%zu)", ipath, SHOW(shown, ep),
                            first->start_mark.line + 1, first->start_mark.column + 1);
            }
        }
        ps_strlcpy(job->servers[i], ep, PS_ENDPOINT_MAX);
    }
    job->nservers = (uint32_t)n;
    return 0;
}

/* metrics.listen: "host:port", or a list of them, one per server. Kept as
 * written; check_metrics sets each shard's address once servers is known. */
static int parse_metrics_listen(ctx *c, const key *k, yaml_node_t *val, const char *path,
                                void *base)
{
    (void)k;
    ps_job *job = base;
    const char *addr = NULL;
    int rc;
    if (val->type != YAML_SEQUENCE_NODE) {
        if (val->type != YAML_SCALAR_NODE)
            return wrong_type(c, val, path, "host:port or a list of them, one per server");
        if ((rc = get_string(c, val, path, PS_ENDPOINT_MAX, valid_host_port, &addr)) != 0)
            return rc;
        ps_strlcpy(job->metrics.listen[0], addr, PS_ENDPOINT_MAX);
        c->listen_one = true;
        c->nlisten = 1;
        c->listen_marks[0] = val->start_mark;
        return 0;
    }
    size_t n = 0;
    if ((rc = list_size(c, val, path, 1, PS_MAX_SHARDS, "address", &n)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_at(c, val->data.sequence.items.start[i]);
        char ipath[KEY_PATH_MAX];
        item_path(ipath, sizeof ipath, path, i);
        if ((rc = get_string(c, item, ipath, PS_ENDPOINT_MAX, valid_host_port, &addr)) != 0)
            return rc;
        ps_strlcpy(job->metrics.listen[i], addr, PS_ENDPOINT_MAX);
        c->listen_marks[i] = item->start_mark;
    }
    c->listen_one = false;
    c->nlisten = n;
    return 0;
}

static int parse_hidden(ctx *c, const key *k, yaml_node_t *val, const char *path, void *base)
{
    (void)k;
    ps_job *job = base;
    size_t n = 0;
    int rc = list_size(c, val, path, 1, PS_MAX_HIDDEN, "layer", &n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_at(c, val->data.sequence.items.start[i]);
        char ipath[KEY_PATH_MAX];
        item_path(ipath, sizeof ipath, path, i);
        uint64_t v = 0;
        if ((rc = get_uint(c, item, ipath, 1, MAX_UNITS, UINT32_MAX, &v)) != 0)
            return rc;
        job->model.hidden[i] = (uint32_t)v;
    }
    job->model.nhidden = (uint32_t)n;
    return 0;
}

static int parse_shape(ctx *c, const key *k, yaml_node_t *val, const char *path, void *base)
{
    (void)k;
    ps_tensor_spec *t = base;
    size_t n = 0;
    int rc = list_size(c, val, path, 1, PS_MAX_DIMS, "dimension", &n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_at(c, val->data.sequence.items.start[i]);
        char ipath[KEY_PATH_MAX];
        item_path(ipath, sizeof ipath, path, i);
        if ((rc = get_uint(c, item, ipath, 1, MAX_DIM, UINT64_MAX, &t->shape[i])) != 0)
            return rc;
    }
    t->ndims = (uint32_t)n;
    return 0;
}

static int parse_tensors(ctx *c, const key *k, yaml_node_t *val, const char *path, void *base)
{
    (void)k;
    ps_job *job = base;
    size_t n = 0;
    int rc = list_size(c, val, path, 1, PS_MAX_TENSORS, "tensor", &n);
    if (rc != 0)
        return rc;
    yaml_mark_t name_marks[PS_MAX_TENSORS];
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_at(c, val->data.sequence.items.start[i]);
        char ipath[KEY_PATH_MAX];
        item_path(ipath, sizeof ipath, path, i);
        if (item->type != YAML_MAPPING_NODE)
            return wrong_type(c, item, ipath, "a mapping {name, shape}");
        key_seen ts[KT_COUNT] = {0};
        ps_tensor_spec *t = &job->model.tensors[i];
        memset(t, 0, sizeof *t);
        rc = walk_mapping(c, item, tensor_keys, sizeof tensor_keys / sizeof tensor_keys[0], ipath,
                          false, t, ts);
        if (rc != 0)
            return rc;
        name_marks[i] = ts[KT_NAME].val_mark;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(job->model.tensors[j].name, t->name) == 0)
                return fail(c, PS_ECONFIG, name_marks[i],
                            "%s.name: \"%s\" is used twice (first at %zu:%zu)", ipath, t->name,
                            name_marks[j].line + 1, name_marks[j].column + 1);
        }
    }
    job->model.ntensors = (uint32_t)n;
    return 0;
}

/* ---- defaults ---- */

static void apply_defaults(const key *keys, size_t nkeys, void *base)
{
    for (size_t i = 0; i < nkeys; i++) {
        const key *k = &keys[i];
        char *p = (char *)base + k->off;
        if (k->kind == KIND_SECTION) {
            apply_defaults(k->sub->keys, k->sub->nkeys, base);
            continue;
        }
        if (k->def == NULL)
            continue;
        uint64_t v;
        bool neg, over, ok = true;
        double d;
        switch (k->kind) {
        case KIND_INT:
            ok = text_uint(k->def, &v, &neg, &over) && !neg && !over;
            store_uint(p, k->size, v);
            break;
        case KIND_FLOAT:
            ok = text_double(k->def, &d);
            memcpy(p, &d, sizeof d);
            break;
        case KIND_BOOL:
            ok = text_bool(k->def) >= 0;
            store_uint(p, k->size, (uint64_t)(text_bool(k->def) > 0));
            break;
        case KIND_ENUM: {
            int e = text_enum(k->def, k->names);
            ok = e >= 0;
            store_uint(p, k->size, (uint64_t)e);
            break;
        }
        case KIND_STRING:
        case KIND_PATH:
            ok = ps_strlcpy(p, k->def, k->size);
            break;
        default:
            break;
        }
        assert(ok && "a table default must parse");
        (void)ok;
    }
}

/* ---- contradictions ---- */

static bool mode_ssp(const ps_job *j)
{
    return ps_mode_takes(j->mode, PS_MODE_KEY_STALENESS);
}
static bool no_backup_or_sync(const ps_job *j)
{
    return j->backup_workers == 0 || ps_mode_takes(j->mode, PS_MODE_KEY_BACKUP_WORKERS);
}
static bool not_deterministic_or_sync(const ps_job *j)
{
    return !j->deterministic || ps_mode_takes(j->mode, PS_MODE_KEY_DETERMINISTIC);
}
static bool has_classes(const ps_job *j)
{
    return j->model.type == PS_MODEL_SOFTMAX || j->model.type == PS_MODEL_MLP ||
           j->model.type == PS_MODEL_LOGISTIC;
}
static bool model_mlp(const ps_job *j)
{
    return j->model.type == PS_MODEL_MLP;
}
static bool model_custom(const ps_job *j)
{
    return j->model.type == PS_MODEL_CUSTOM;
}
static bool format_idx(const ps_job *j)
{
    return j->data.format == PS_FORMAT_IDX;
}
static bool format_csv(const ps_job *j)
{
    return j->data.format == PS_FORMAT_CSV;
}
static bool optim_momentum(const ps_job *j)
{
    return j->optimizer.type == PS_OPTIM_MOMENTUM;
}
static bool schedule_step(const ps_job *j)
{
    return j->optimizer.schedule == PS_SCHEDULE_STEP;
}
static bool schedule_cosine(const ps_job *j)
{
    return j->optimizer.schedule == PS_SCHEDULE_COSINE;
}
static bool optim_ftrl(const ps_job *j)
{
    return j->optimizer.type == PS_OPTIM_FTRL;
}
static bool optim_adam(const ps_job *j)
{
    return j->optimizer.type == PS_OPTIM_ADAM;
}
static bool optim_adam_or_adagrad(const ps_job *j)
{
    return j->optimizer.type == PS_OPTIM_ADAM || j->optimizer.type == PS_OPTIM_ADAGRAD;
}
static bool compress_topk(const ps_job *j)
{
    return j->compression.push == PS_COMPRESS_TOPK;
}

static bool local_sgd(const ps_job *j)
{
    return j->training.local_steps > 1;
}

/* A key that may be given only when another key allows it. */
static const struct only_with {
    int id;
    const char *path;
    bool (*ok)(const ps_job *job);
    const char *when;
} only_with[] = {
    {K_STALENESS, "staleness", mode_ssp, "mode ssp"},
    {K_BACKUP, "backup_workers", no_backup_or_sync, "mode sync"},
    {K_DETERMINISTIC, "deterministic", not_deterministic_or_sync, "mode sync"},
    {K_M_CLASSES, "model.classes", has_classes, "model type softmax or mlp"},
    {K_M_HIDDEN, "model.hidden", model_mlp, "model type mlp"},
    {K_M_TENSORS, "model.tensors", model_custom, "model type custom"},
    {K_D_TRAIN_LABELS, "data.train_labels", format_idx, "format idx"},
    {K_D_TEST_LABELS, "data.test_labels", format_idx, "format idx"},
    {K_D_LABEL_COLUMN, "data.label_column", format_csv, "format csv"},
    {K_O_MOMENTUM, "optimizer.momentum", optim_momentum, "optimizer type momentum"},
    {K_O_NESTEROV, "optimizer.nesterov", optim_momentum, "optimizer type momentum"},
    {K_S_STEP_SIZE, "optimizer.schedule.step_size", schedule_step, "schedule type step"},
    {K_S_GAMMA, "optimizer.schedule.gamma", schedule_step, "schedule type step"},
    {K_S_TOTAL, "optimizer.schedule.total_steps", schedule_cosine, "schedule type cosine"},
    {K_O_L1, "optimizer.l1", optim_ftrl, "optimizer type ftrl"},
    {K_O_BETA1, "optimizer.beta1", optim_adam, "optimizer type adam"},
    {K_O_BETA2, "optimizer.beta2", optim_adam, "optimizer type adam"},
    {K_O_EPS, "optimizer.eps", optim_adam_or_adagrad, "optimizer type adam or adagrad"},
    {K_C_RATIO, "compression.topk_ratio", compress_topk, "compression push topk"},
    {K_T_LOCAL_OPTIM, "training.local_optimizer", local_sgd, "training.local_steps above 1"},
};

/* A key that a value of another key needs. */
static int needs(ctx *c, int parent, int id, const char *where, const char *name,
                 const char *because)
{
    if (c->seen[id].given)
        return 0;
    return fail(c, PS_ECONFIG, c->seen[parent].val_mark,
                "missing required key \"%s\" in %s (%s needs it)", name, where, because);
}

static int check_model(ctx *c)
{
    const ps_job *j = c->job;
    char because[64];
    snprintf(because, sizeof because, "model type %s", ps_model_type_name(j->model.type));
    int rc = 0;
    if (j->model.type == PS_MODEL_SOFTMAX || j->model.type == PS_MODEL_MLP)
        rc = needs(c, K_MODEL, K_M_CLASSES, "model", "classes", because);
    if (rc == 0 && j->model.type == PS_MODEL_MLP)
        rc = needs(c, K_MODEL, K_M_HIDDEN, "model", "hidden", because);
    if (rc == 0 && j->model.type == PS_MODEL_CUSTOM)
        rc = needs(c, K_MODEL, K_M_TENSORS, "model", "tensors", because);
    if (rc != 0)
        return rc;
    if (j->model.type == PS_MODEL_LOGISTIC && c->seen[K_M_CLASSES].given && j->model.classes != 2)
        return fail(c, PS_ECONFIG, c->seen[K_M_CLASSES].val_mark,
                    "model.classes: must be 2 for model type logistic, got %" PRIu32,
                    j->model.classes);
    ps_tensor_info t[PS_MAX_TENSORS];
    size_t n;
    uint64_t p;
    if (ps_job_layout(j, t, PS_MAX_TENSORS, &n, &p) != 0)
        return fail(c, PS_ECONFIG, c->seen[K_MODEL].key_mark,
                    "model: too many parameters (the count overflows 64 bits)");
    if (p < j->nservers)
        return fail(c, PS_ECONFIG, c->seen[K_SERVERS].val_mark,
                    "servers: %" PRIu32 " shards for %" PRIu64
                    " parameters; each shard needs at least one",
                    j->nservers, p);
    return 0;
}

/* error_feedback defaults to on where compression drops most (the codec's
 * descriptor says: int8, topk). */
static void check_compression(ctx *c)
{
    ps_job *j = c->job;
    if (!c->seen[K_C_FEEDBACK].given)
        j->compression.error_feedback = ps_compress_ops_get(j->compression.push)->feedback_default;
}

static int check_contradictions(ctx *c)
{
    const ps_job *j = c->job;
    for (size_t i = 0; i < sizeof only_with / sizeof only_with[0]; i++) {
        const struct only_with *r = &only_with[i];
        if (c->seen[r->id].given && !r->ok(j))
            return fail(c, PS_ECONFIG, c->seen[r->id].val_mark, "%s: only valid with %s", r->path,
                        r->when);
    }
    if (j->backup_workers >= j->workers)
        return fail(c, PS_ECONFIG, c->seen[K_BACKUP].val_mark,
                    "backup_workers: must be less than workers (%" PRIu32 "), got %" PRIu32,
                    j->workers, j->backup_workers);
    int rc = check_model(c);
    if (rc != 0)
        return rc;
    check_compression(c);
    if (j->data.format == PS_FORMAT_CSV && j->data.label_column > j->model.features)
        return fail(c, PS_ECONFIG, c->seen[K_D_LABEL_COLUMN].val_mark,
                    "data.label_column: must be at most model.features (%" PRIu64 "), got %" PRIu32,
                    j->model.features, j->data.label_column);
    if (j->optimizer.schedule == PS_SCHEDULE_STEP &&
        (rc = needs(c, K_O_SCHEDULE, K_S_STEP_SIZE, "optimizer.schedule", "step_size",
                    "schedule type step")) != 0)
        return rc;
    if (j->optimizer.schedule == PS_SCHEDULE_COSINE &&
        (rc = needs(c, K_O_SCHEDULE, K_S_TOTAL, "optimizer.schedule", "total_steps",
                    "schedule type cosine")) != 0)
        return rc;
    if (j->optimizer.schedule == PS_SCHEDULE_COSINE &&
        j->optimizer.warmup_steps >= j->optimizer.total_steps)
        return fail(c, PS_ECONFIG, c->seen[K_S_WARMUP].val_mark,
                    "optimizer.schedule.warmup_steps (%" PRIu64
                    ") must be less than optimizer.schedule.total_steps (%" PRIu64 ")",
                    j->optimizer.warmup_steps, j->optimizer.total_steps);
    if (j->heartbeat.timeout_ms <= j->heartbeat.interval_ms) {
        int id = c->seen[K_H_TIMEOUT].given ? K_H_TIMEOUT : K_H_INTERVAL;
        return fail(c, PS_ECONFIG, c->seen[id].val_mark,
                    "heartbeat.timeout_ms (%" PRIu32
                    ") must be greater than heartbeat.interval_ms (%" PRIu32 ")",
                    j->heartbeat.timeout_ms, j->heartbeat.interval_ms);
    }
    return 0;
}

/* security.curve: on when given; which keys a program needs, it checks
 * itself (psd's secret key is not on a worker's VM). */
static int check_security(ctx *c)
{
    ps_job *j = c->job;
    j->security.curve = c->seen[K_SEC_CURVE].given;
    if (!j->security.curve)
        return 0;
    for (int id = K_SEC_SERVER_SECRET; id <= K_SEC_ADMINS; id++)
        if (c->seen[id].given)
            return 0;
    return fail(c, PS_ECONFIG, c->seen[K_SEC_CURVE].val_mark,
                "security.curve: give the key files (server_secret_key, server_public_key, "
                "client_secret_key, authorized_workers, authorized_admins)");
}

/* ---- metrics ---- */

/* The host of a tcp:// endpoint ("" for ipc://, which is this machine's):
 * servers with the same host run on one machine. */
static void endpoint_host(const char *ep, char *out, size_t cap)
{
    out[0] = '\0';
    if (strncmp(ep, "tcp://", 6) != 0)
        return;
    const char *host = ep + 6, *colon = strrchr(host, ':');
    size_t n = colon ? (size_t)(colon - host) : strlen(host);
    snprintf(out, cap, "%.*s", (int)n, host);
}

/* metrics.listen: one address is shard 0's, and shard i listens on its
 * port + i; a list names one per server. Two shards on one host never get
 * the same address, and no address is a server's own endpoint. */
static int check_metrics(ctx *c)
{
    ps_job *j = c->job;
    if (c->nlisten == 0)
        return 0;
    yaml_mark_t at = c->seen[K_MET_LISTEN].val_mark;
    if (!c->listen_one && c->nlisten != j->nservers)
        return fail(c, PS_ECONFIG, at,
                    "metrics.listen: %zu addresses for %" PRIu32
                    " servers; list one per server, or give one address (shard i then "
                    "listens on its port + i)",
                    c->nlisten, j->nservers);
    if (c->listen_one) {
        const char *first = j->metrics.listen[0], *colon = strrchr(first, ':');
        unsigned long port = strtoul(colon + 1, NULL, 10);
        for (uint32_t i = 1; i < j->nservers; i++) {
            if (port + i > 65535)
                return fail(c, PS_ECONFIG, at,
                            "metrics.listen: port %lu + %" PRIu32 " for shard %" PRIu32
                            " is past 65535; list one address per server",
                            port, i, i);
            int n = snprintf(j->metrics.listen[i], PS_ENDPOINT_MAX, "%.*s:%lu",
                             (int)(colon - first), first, port + i);
            if (n < 0 || n >= PS_ENDPOINT_MAX)
                return fail(c, PS_ECONFIG, at,
                            "metrics.listen: shard %" PRIu32 "'s address is longer than %d bytes",
                            i, PS_ENDPOINT_MAX - 1);
            c->listen_marks[i] = c->listen_marks[0];
        }
    }
    char host_i[PS_ENDPOINT_MAX], host_k[PS_ENDPOINT_MAX], shown[SHOW_MAX + 8];
    for (uint32_t i = 0; i < j->nservers; i++) {
        const char *addr = j->metrics.listen[i];
        char path[32], whose[32] = "";
        if (c->listen_one)
            snprintf(path, sizeof path, "metrics.listen");
        else
            item_path(path, sizeof path, "metrics.listen", i);
        if (c->listen_one && i > 0)
            snprintf(whose, sizeof whose, "shard %" PRIu32 "'s ", i);
        endpoint_host(j->servers[i], host_i, sizeof host_i);
        for (uint32_t k = 0; k < j->nservers; k++) {
            endpoint_host(j->servers[k], host_k, sizeof host_k);
            if (strncmp(j->servers[k], "tcp://", 6) == 0 && strcmp(j->servers[k] + 6, addr) == 0)
                return fail(c, PS_ECONFIG, c->listen_marks[i],
                            "%s: %s\"%s\" is the endpoint of servers[%" PRIu32 "]", path, whose,
                            SHOW(shown, addr), k);
            if (k < i && strcmp(host_i, host_k) == 0 && strcmp(j->metrics.listen[k], addr) == 0)
                return fail(c, PS_ECONFIG, c->listen_marks[i],
                            "%s: \"%s\" is shard %" PRIu32 "'s too, and both shards run on %s",
                            path, SHOW(shown, addr), k, host_i[0] ? host_i : "this machine");
        }
    }
    return 0;
}

/* ---- data files ---- */

static int check_file(ctx *c, int id, const char *path, const char *file)
{
    if (!c->seen[id].given)
        return 0;
    char shown[PS_PATH_MAX + 8];
    show(shown, sizeof shown, file, PS_PATH_MAX);
    yaml_mark_t at = c->seen[id].key_mark;
    int fd;
    const char *what_kind;
    int rc = ps_file_open_regular(file, &fd, &what_kind);
    if (rc == PS_EINVAL)
        return fail(c, PS_ECONFIG, at, "%s: %s is %s, not a file", path, shown, what_kind);
    if (rc != 0)
        return fail(c, PS_ECONFIG, at, "%s: cannot read %s: %s", path, shown, strerror(errno));
    close(fd);
    return 0;
}

static int check_files(ctx *c)
{
    const ps_job *j = c->job;
    int rc = check_file(c, K_D_TRAIN, "data.train", j->data.train);
    if (rc == 0)
        rc = check_file(c, K_D_TEST, "data.test", j->data.test);
    if (rc == 0)
        rc = check_file(c, K_D_TRAIN_LABELS, "data.train_labels", j->data.train_labels);
    if (rc == 0)
        rc = check_file(c, K_D_TEST_LABELS, "data.test_labels", j->data.test_labels);
    return rc;
}

/* ---- YAML ---- */

/* 1-based line and column of a byte offset, for reader errors (which carry
 * no mark); columns count characters, as libyaml's marks do. */
static yaml_mark_t mark_at(const ctx *c, size_t offset)
{
    yaml_mark_t m = {0};
    for (size_t i = 0; i < offset && i < c->len; i++) {
        if (c->text[i] == '\n') {
            m.line++;
            m.column = 0;
        } else if (((unsigned char)c->text[i] & 0xC0) != 0x80) {
            m.column++;
        }
    }
    return m;
}

static int yaml_failed(ctx *c, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return ps_error_set(c->err, PS_ENOMEM, "%s: out of memory while parsing", c->name);
    const char *problem = p->problem ? p->problem : "cannot parse";
    if (p->error == YAML_READER_ERROR)
        return fail(c, PS_ECONFIG, mark_at(c, p->problem_offset), "%s", problem);
    if (p->context != NULL)
        return fail(c, PS_ECONFIG, p->problem_mark, "%s (%s at %zu:%zu)", problem, p->context,
                    p->context_mark.line + 1, p->context_mark.column + 1);
    return fail(c, PS_ECONFIG, p->problem_mark, "%s", problem);
}

/* Walks the file's events and refuses it when mappings and lists nest
 * deeper than MAX_DEPTH; stops at the first level too deep, so a file of a
 * million "[" costs a few thousand tokens. Syntax errors are left to
 * load_document. */
static int check_depth(ctx *c)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return ps_error_set(c->err, PS_ENOMEM, "%s: out of memory", c->name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)c->text, c->len);
    int rc = 0;
    size_t depth = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev))
            break;
        yaml_event_type_t type = ev.type;
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
            if (++depth > MAX_DEPTH)
                rc = fail(c, PS_ECONFIG, ev.start_mark,
                          "mappings and lists nested more than %d deep; a job file needs 5",
                          MAX_DEPTH);
        } else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        yaml_event_delete(&ev);
        if (rc != 0 || type == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* Loads the one document of the stream into doc; anything after it is an
 * error. On failure doc is already freed. */
static int load_document(ctx *c, yaml_document_t *doc)
{
    int rc = check_depth(c);
    if (rc != 0)
        return rc;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return ps_error_set(c->err, PS_ENOMEM, "%s: out of memory", c->name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)c->text, c->len);
    memset(doc, 0, sizeof *doc);
    if (!yaml_parser_load(&parser, doc)) {
        rc = yaml_failed(c, &parser);
        goto delete_parser;
    }
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (root == NULL) {
        rc = fail(c, PS_ECONFIG, (yaml_mark_t){0}, "the job file is empty");
        goto delete_doc;
    }
    yaml_document_t next;
    memset(&next, 0, sizeof next);
    if (!yaml_parser_load(&parser, &next)) {
        rc = yaml_failed(c, &parser);
        goto delete_doc;
    }
    if (yaml_document_get_root_node(&next) != NULL)
        rc = fail(c, PS_ECONFIG, next.start_mark, "a job file holds one YAML document, not more");
    yaml_document_delete(&next);
    if (rc == 0)
        goto delete_parser;
delete_doc:
    yaml_document_delete(doc);
delete_parser:
    yaml_parser_delete(&parser);
    return rc;
}

/* where key id's value was written; 0:0 when it was not */
static ps_job_pos pos_of(const ctx *c, int id)
{
    const key_seen *s = &c->seen[id];
    if (!s->given)
        return (ps_job_pos){0, 0};
    return (ps_job_pos){(uint32_t)s->val_mark.line + 1, (uint32_t)s->val_mark.column + 1};
}

static int validate(ctx *c)
{
    yaml_document_t doc;
    int rc = load_document(c, &doc);
    if (rc != 0)
        return rc;
    c->doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root->type != YAML_MAPPING_NODE) {
        char got[SHOW_MAX + 32];
        rc = fail(c, PS_ECONFIG, root->start_mark, "the job file must be a mapping of keys, got %s",
                  describe(root, got, sizeof got));
        goto delete_doc;
    }
    apply_defaults(top_sec.keys, top_sec.nkeys, c->job);
    rc = walk_mapping(c, root, top_sec.keys, top_sec.nkeys, "", true, c->job, c->seen);
    if (rc == 0)
        rc = check_contradictions(c);
    if (rc == 0)
        rc = check_security(c);
    if (rc == 0)
        rc = check_metrics(c);
    if (rc == 0)
        rc = check_files(c);
    c->job->output_pos = pos_of(c, K_OUTPUT);
    c->job->checkpoint_dir_pos = pos_of(c, K_CK_DIR);
    if (rc == 0 && c->pending.code != 0) {
        *c->err = c->pending;
        rc = c->pending.code;
    }
delete_doc:
    c->doc = NULL;
    yaml_document_delete(&doc);
    return rc;
}

/* ---- public ---- */

int ps_job_parse(const char *text, size_t len, const char *name, const char *dir, ps_job *job,
                 ps_error *err)
{
    ps_error scratch;
    if (err == NULL)
        err = &scratch;
    ps_error_clear(err);
    if (name == NULL)
        name = "<job>";
    if (dir == NULL || dir[0] == '\0')
        dir = ".";
    if (text == NULL || job == NULL)
        return ps_error_set(err, PS_EINVAL, "%s: no job text", name);
    ctx *c = calloc(1, sizeof *c);
    ps_job *staged = calloc(1, sizeof *staged);
    int rc = PS_ENOMEM;
    if (c == NULL || staged == NULL) {
        ps_error_set(err, rc, "%s: out of memory", name);
        goto free_all;
    }
    if (!ps_strlcpy(staged->path, name, sizeof staged->path) ||
        !ps_strlcpy(staged->dir, dir, sizeof staged->dir)) {
        rc = ps_error_set(err, PS_ECONFIG, "%s: path too long (at most %d bytes)", name,
                          PS_PATH_MAX - 1);
        goto free_all;
    }
    *c = (ctx){.name = name, .dir = dir, .text = text, .len = len, .job = staged, .err = err};
    rc = validate(c);
    if (rc == 0)
        *job = *staged;
free_all:
    free(staged);
    free(c);
    return rc;
}

/* dirname without touching path: "a/b/job.yaml" -> "a/b", "job.yaml" -> "." */
static void dir_of(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(out, cap, ".");
        return;
    }
    while (slash > path && slash[-1] == '/')
        slash--;
    if (slash == path) {
        snprintf(out, cap, "/");
        return;
    }
    snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

int ps_job_load(const char *path, ps_job *job, ps_error *err)
{
    if (path == NULL || job == NULL)
        return ps_error_set(err, PS_EINVAL, "no job file given");
    if (strlen(path) >= PS_PATH_MAX)
        return ps_error_set(err, PS_ECONFIG, "%.64s...: path too long (at most %d bytes)", path,
                            PS_PATH_MAX - 1);
    int fd;
    const char *what_kind;
    int rc = ps_file_open_regular(path, &fd, &what_kind);
    if (rc == PS_EINVAL)
        return ps_error_set(err, PS_ECONFIG, "%s: is %s, not a job file", path, what_kind);
    if (rc != 0)
        return ps_error_set(err, PS_ECONFIG, "%s: cannot open: %s", path, strerror(errno));
    FILE *f = fdopen(fd, "rb");
    if (f == NULL) {
        int e = errno;
        close(fd);
        return ps_error_set(err, PS_ENOMEM, "%s: cannot open: %s", path, strerror(e));
    }
    char *text = malloc(JOB_FILE_MAX_BYTES + 1);
    if (text == NULL) {
        rc = ps_error_set(err, PS_ENOMEM, "%s: out of memory", path);
        goto close_file;
    }
    size_t len = fread(text, 1, JOB_FILE_MAX_BYTES + 1, f);
    if (ferror(f)) {
        rc = ps_error_set(err, PS_ECONFIG, "%s: cannot read: %s", path, strerror(errno));
        goto free_text;
    }
    if (len > JOB_FILE_MAX_BYTES) {
        rc = ps_error_set(err, PS_ECONFIG, "%s: larger than %u bytes; not a job file", path,
                          JOB_FILE_MAX_BYTES);
        goto free_text;
    }
    char dir[PS_PATH_MAX];
    dir_of(path, dir, sizeof dir);
    rc = ps_job_parse(text, len, path, dir, job, err);
free_text:
    free(text);
close_file:
    fclose(f);
    return rc;
}

int ps_job_layout(const ps_job *job, ps_tensor_info *out, size_t max, size_t *n,
                  uint64_t *num_params)
{
    ps_tensor_info t[2 * (PS_MAX_HIDDEN + 1) + PS_MAX_TENSORS];
    size_t count = 0;
    uint64_t f = job->model.features;
#define ADD(nm, ...)                                                                               \
    do {                                                                                           \
        uint64_t dims_[] = {__VA_ARGS__};                                                          \
        memset(&t[count], 0, sizeof t[count]);                                                     \
        snprintf(t[count].name, sizeof t[count].name, "%s", (nm));                                 \
        t[count].ndims = (uint32_t)(sizeof dims_ / sizeof dims_[0]);                               \
        memcpy(t[count].shape, dims_, sizeof dims_);                                               \
        count++;                                                                                   \
    } while (0)
    switch (job->model.type) {
    case PS_MODEL_LINEAR:
    case PS_MODEL_LOGISTIC:
        ADD("w", f);
        ADD("b", 1);
        break;
    case PS_MODEL_SOFTMAX:
        ADD("W", f, job->model.classes);
        ADD("b", job->model.classes);
        break;
    case PS_MODEL_MLP: {
        if (job->model.nhidden > PS_MAX_HIDDEN)
            return PS_EINVAL;
        uint64_t in = f;
        for (uint32_t l = 0; l <= job->model.nhidden; l++) {
            uint64_t units = l < job->model.nhidden ? job->model.hidden[l] : job->model.classes;
            char w[16], b[16];
            snprintf(w, sizeof w, "W%" PRIu32, l + 1);
            snprintf(b, sizeof b, "b%" PRIu32, l + 1);
            ADD(w, in, units);
            ADD(b, units);
            in = units;
        }
        break;
    }
    case PS_MODEL_CUSTOM:
        if (job->model.ntensors > PS_MAX_TENSORS)
            return PS_EINVAL;
        for (uint32_t i = 0; i < job->model.ntensors; i++) {
            const ps_tensor_spec *s = &job->model.tensors[i];
            if (s->ndims > PS_MAX_DIMS)
                return PS_EINVAL;
            memset(&t[count], 0, sizeof t[count]);
            memcpy(t[count].name, s->name, sizeof t[count].name);
            t[count].name[sizeof t[count].name - 1] = '\0';
            memcpy(t[count].shape, s->shape, sizeof s->shape);
            t[count].ndims = s->ndims;
            count++;
        }
        break;
    default:
        return PS_EINVAL;
    }
#undef ADD
    uint64_t p = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t size = 1;
        for (uint32_t d = 0; d < t[i].ndims; d++)
            if (__builtin_mul_overflow(size, t[i].shape[d], &size))
                return PS_EINVAL;
        t[i].offset = p;
        if (__builtin_add_overflow(p, size, &p))
            return PS_EINVAL;
    }
    for (size_t i = 0; i < count && i < max; i++)
        out[i] = t[i];
    if (n != NULL)
        *n = count;
    if (num_params != NULL)
        *num_params = p;
    return count > max ? PS_EINVAL : 0;
}

const char *ps_model_type_name(ps_model_type type)
{
    if ((unsigned)type >= sizeof model_names / sizeof model_names[0] - 1)
        return "?";
    return model_names[type];
}

/* ---- writable folders ---- */

int ps_job_check_writable(const ps_job *job, ps_job_folder which, ps_error *err)
{
    bool out = which == PS_JOB_FOLDER_OUTPUT;
    const char *dir = out ? job->output : job->checkpoint.dir;
    const char *name = out ? "output" : "checkpoint.dir";
    ps_job_pos pos = out ? job->output_pos : job->checkpoint_dir_pos;
    if (dir[0] == '\0')
        return 0;
    char where[PS_PATH_MAX + 32];
    if (pos.line > 0)
        snprintf(where, sizeof where, "%s:%" PRIu32 ":%" PRIu32, job->path, pos.line, pos.col);
    else
        snprintf(where, sizeof where, "%s", job->path);
    char shown[PS_PATH_MAX + 8];
    show(shown, sizeof shown, dir, PS_PATH_MAX);
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return ps_error_set(err, PS_ECONFIG, "%s: %s: %s is %s, not a folder", where, name, shown,
                            ps_file_kind(st.st_mode));
    /* checkpoints hold the model: only psd's user reads them */
    if (ps_path_mkdirs(dir, out ? 0755 : 0700) != 0)
        return ps_error_set(err, PS_ECONFIG, "%s: %s: %s: cannot write there: %s", where, name,
                            shown, strerror(errno));
    char probe[PS_PATH_MAX + 32];
    int n = snprintf(probe, sizeof probe, "%s/.ps-write-test-XXXXXX", dir);
    if (n < 0 || (size_t)n >= sizeof probe)
        return ps_error_set(err, PS_ECONFIG, "%s: %s: %s: path too long", where, name, shown);
    int fd = mkstemp(probe);
    if (fd < 0)
        return ps_error_set(err, PS_ECONFIG, "%s: %s: %s: cannot write there: %s", where, name,
                            shown, strerror(errno));
    close(fd);
    if (unlink(probe) != 0)
        return ps_error_set(err, PS_ECONFIG, "%s: %s: %s: cannot remove a file there: %s", where,
                            name, shown, strerror(errno));
    return 0;
}
