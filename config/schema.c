/* schema.c — the rows of the job file (schema.h): one per key, each saying
 * where its value goes in ps_job, what values it takes, its default, and when
 * it may be given at all; plus the hooks the rows name (names, endpoints,
 * lists). Modes and codecs are read from their registries (mode.h, compress.h). */
#include "schema.h"

#include "launch_env.h"

#include "job.h"
#include "util.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_CLASSES (1u << 20)
#define MAX_UNITS   (1u << 20)          /* units of one hidden layer */
#define MAX_DIM     (UINT64_C(1) << 40) /* one dimension of a custom tensor */

/* ---- the enum names, in enum order, as written in job files ---- */

static const char *const model_names[] = {"linear", "logistic",        "softmax", "mlp",
                                          "custom", "sparse_logistic", "fm",      NULL};
static const char *const init_names[] = {"zeros", "xavier", "normal", NULL};
static const char *const format_names[] = {"csv", "libsvm", "idx", "criteo", "libsvm64", NULL};
static const char *const normalize_names[] = {"none", "standard", NULL};
static const char *const shard_names[] = {"stride", "block", NULL};
static const char *const assign_names[] = {"static", "dynamic", NULL};
static const char *const optim_names[] = {"sgd", "momentum", "adagrad", "adam", "ftrl", NULL};
static const char *const schedule_names[] = {"constant", "step", "cosine", NULL};
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
_Static_assert(sizeof(ps_assign_kind) == sizeof(uint32_t), "enum size");
_Static_assert(sizeof(ps_optim_type) == sizeof(uint32_t), "enum size");
_Static_assert(sizeof(ps_schedule_type) == sizeof(uint32_t), "enum size");
_Static_assert(sizeof(ps_compress_type) == sizeof(uint32_t), "enum size");
_Static_assert(sizeof(ps_worker_loss) == sizeof(uint32_t), "enum size");
_Static_assert(sizeof(ps_divergence) == sizeof(uint32_t), "enum size");
_Static_assert(sizeof(ps_log_level) == sizeof(uint32_t), "enum size");

/* ---- names from the registries ---- */

static const char *mode_name_of(uint32_t v)
{
    const ps_mode_desc *d = ps_mode_get((ps_mode)v);
    return d != NULL ? d->name : NULL;
}

static const char *push_name_of(uint32_t v)
{
    const ps_compress_ops *o = ps_compress_ops_get((ps_compress_type)v);
    return o != NULL ? o->name : NULL;
}

/* pulls carry θ itself: only the codecs whose descriptor says pull_ok */
static const char *pull_name_of(uint32_t v)
{
    const ps_compress_ops *o = ps_compress_ops_get((ps_compress_type)v);
    return o != NULL && o->pull_ok ? o->name : NULL;
}

/* ---- when a key may be given: the rows' only rules ---- */

#define JOB(base) ((const ps_job *)(base))

/* the job's mode takes the key (its PS_MODE_KEY_ bit is only.arg) */
static bool mode_takes_key(const void *base, const ps_yamlwalk_key *k)
{
    return ps_mode_takes(JOB(base)->mode, k->only.arg);
}

/* ... or the key is off (0, false): backup_workers: 0 is fine in any mode */
static bool off_or_mode_takes_key(const void *base, const ps_yamlwalk_key *k)
{
    const unsigned char *p = (const unsigned char *)base + k->off;
    for (size_t i = 0; i < k->size; i++)
        if (p[i] != 0)
            return mode_takes_key(base, k);
    return true;
}

/* "mode sync or ssp": the modes that take the key */
static void modes_taking_key(const ps_yamlwalk_key *k, char *buf, size_t cap)
{
    ps_mode_names_taking(k->only.arg, buf, cap);
}

static bool has_classes(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    ps_model_type t = JOB(base)->model.type;
    return t == PS_MODEL_SOFTMAX || t == PS_MODEL_MLP || t == PS_MODEL_LOGISTIC;
}
static bool model_mlp(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    return JOB(base)->model.type == PS_MODEL_MLP;
}
static bool model_custom(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    return JOB(base)->model.type == PS_MODEL_CUSTOM;
}
static bool model_fm(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    return JOB(base)->model.type == PS_MODEL_FM;
}
static bool model_dense(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    return !ps_job_is_sparse(JOB(base));
}
static bool model_sparse(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    return ps_job_is_sparse(JOB(base));
}
static bool format_idx(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    return JOB(base)->data.format == PS_FORMAT_IDX;
}

static bool format_clicks(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    ps_data_format f = JOB(base)->data.format;
    return f == PS_FORMAT_CRITEO || f == PS_FORMAT_LIBSVM64;
}
static bool format_csv(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    return JOB(base)->data.format == PS_FORMAT_CSV;
}
static bool optim_momentum(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    return JOB(base)->optimizer.type == PS_OPTIM_MOMENTUM;
}
static bool optim_ftrl(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    return JOB(base)->optimizer.type == PS_OPTIM_FTRL;
}
static bool optim_adam(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    return JOB(base)->optimizer.type == PS_OPTIM_ADAM;
}
static bool optim_adam_or_adagrad(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    ps_optim_type t = JOB(base)->optimizer.type;
    return t == PS_OPTIM_ADAM || t == PS_OPTIM_ADAGRAD;
}
static bool schedule_step(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    return JOB(base)->optimizer.schedule == PS_SCHEDULE_STEP;
}
static bool schedule_cosine(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    return JOB(base)->optimizer.schedule == PS_SCHEDULE_COSINE;
}
static bool compress_topk(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    return JOB(base)->compression.push == PS_COMPRESS_TOPK;
}
static bool local_sgd(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    return JOB(base)->training.local_steps > 1;
}

/* a row field: the key is only valid when pred holds, "... only valid with <when>" */
#define ONLY(pred, text) .only = {.holds = (pred), .when = (text)}
/* ... when the job's mode takes the key (bit: PS_MODE_KEY_), worded by mode.h */
#define ONLY_MODE(pred, bit) .only = {.holds = (pred), .when_text = modes_taking_key, .arg = (bit)}

/* ---- validity hooks ---- */

#define SHOW(buf, s) ps_yamlwalk_show((buf), sizeof(buf), (s), PS_YAMLWALK_SHOW_MAX)

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

/* What is wrong with the port of host:port (s, after the ':'), for a
 * message after the quoted address; NULL when it is 1 .. 65535. other is
 * the sentence for a port that is no number, zero the one for port 0
 * (the system would pick one: no use where another process must find it). */
static const char *port_why(const char *s, const char *other, const char *zero)
{
    uint64_t v;
    bool neg, over;
    if (*s == '+' || *s == '-' || !ps_yamlwalk_text_uint(s, &v, &neg, &over))
        return other;
    if (over || v > 65535)
        return "has a port past 65535";
    if (v == 0)
        return zero;
    return NULL;
}

static bool has_space(const char *s)
{
    for (; *s != '\0'; s++)
        if (isspace((unsigned char)*s) || (unsigned char)*s < 0x20)
            return true;
    return false;
}

/* metrics.listen's host:port, host not empty; port 0 (one the system
 * picks) is refused: Prometheus must know where to scrape. */
static bool valid_host_port(const char *s, const char **why)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || has_space(s)) {
        *why = "is not host:port";
        return false;
    }
    *why = port_why(colon + 1, "is not host:port (a port from 1 to 65535)",
                    "has port 0, which would let the system pick one that Prometheus cannot "
                    "know: give a port from 1 to 65535");
    return *why == NULL;
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
    if (colon == NULL || colon == host)
        return false;
    const char *port = port_why(colon + 1, *why,
                                "has port 0: workers need the port to connect to; give one "
                                "from 1 to 65535");
    if (port != NULL) {
        *why = port;
        return false;
    }
    if (host[0] == '*') {
        *why = "has a wildcard host; workers need an address to connect to";
        return false;
    }
    return true;
}

bool ps_schema_valid_endpoint(const char *s, const char **why)
{
    return valid_endpoint(s, why);
}

/* ---- list hooks ---- */

static int parse_servers(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val,
                         const char *path, void *base);
static int parse_metrics_listen(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val,
                                const char *path, void *base);
static int parse_hidden(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val,
                        const char *path, void *base);
static int parse_tensors(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val,
                         const char *path, void *base);
static int parse_shape(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val, const char *path,
                       void *base);
static int parse_command(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val,
                         const char *path, void *base);
static int parse_sync_chunk(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val,
                            const char *path, void *base);

/* ---- the rows ---- */

#define FIELD(f) .off = offsetof(ps_job, f), .size = sizeof(((ps_job *)0)->f)
#define ROWS(t)  (t), sizeof(t) / sizeof((t)[0])
#define FLT_INF  HUGE_VAL

static const ps_yamlwalk_key init_keys[] = {
    {"scheme", PS_YAMLWALK_ENUM, FIELD(model.init_scheme), .def = "xavier", .names = init_names,
     .sup = PS_YAMLWALK_SUP_ALL},
    {"seed", PS_YAMLWALK_INT, FIELD(model.init_seed), .def = "42", .max = UINT64_MAX},
};
static const ps_yamlwalk_section init_sec = {"model.init", ROWS(init_keys)};

static const ps_yamlwalk_key model_keys[] = {
    {"type", PS_YAMLWALK_ENUM, PS_YAMLWALK_REQUIRED, FIELD(model.type), .names = model_names,
     .sup = 1u << PS_MODEL_LINEAR | 1u << PS_MODEL_LOGISTIC | 1u << PS_MODEL_SOFTMAX |
            1u << PS_MODEL_MLP | 1u << PS_MODEL_CUSTOM | 1u << PS_MODEL_SPARSE_LOGISTIC |
            1u << PS_MODEL_FM,
     .aka = "kind|model"},
    /* required by the dense models (job.c's check_model): sparse ones hash */
    {"features", PS_YAMLWALK_INT, FIELD(model.features), .min = 1, .max = UINT64_C(1) << 31,
     ONLY(model_dense, "a dense model type (not sparse_logistic or fm)"),
     .aka = "n_features|num_features|input_dim|inputs|dim"},
    {"factors", PS_YAMLWALK_INT, FIELD(model.factors), .def = "8", .min = 1, .max = PS_MAX_FACTORS,
     ONLY(model_fm, "model type fm"), .aka = "k|embedding|embedding_dim|latent"},
    {"classes", PS_YAMLWALK_INT, FIELD(model.classes), .min = 2, .max = MAX_CLASSES,
     ONLY(has_classes, "model type softmax or mlp"), .aka = "n_classes|num_classes|outputs|labels"},
    {"hidden", PS_YAMLWALK_LIST, .parse = parse_hidden, ONLY(model_mlp, "model type mlp"),
     .aka = "hidden_layers|layers|units"},
    {"tensors", PS_YAMLWALK_LIST, .parse = parse_tensors, ONLY(model_custom, "model type custom"),
     .aka = "params|parameters"},
    {"init", PS_YAMLWALK_SECTION, .sub = &init_sec, .aka = "initializer|initialization"},
};
static const ps_yamlwalk_section model_sec = {"model", ROWS(model_keys)};

static const ps_yamlwalk_key data_keys[] = {
    {"train", PS_YAMLWALK_PATH, PS_YAMLWALK_REQUIRED, FIELD(data.train),
     .aka = "train_file|train_path|training"},
    {"test", PS_YAMLWALK_PATH, FIELD(data.test), .aka = "test_file|test_path|eval|valid"},
    {"format", PS_YAMLWALK_ENUM, FIELD(data.format), .def = "csv", .names = format_names,
     .sup = PS_YAMLWALK_SUP_ALL},
    {"train_labels", PS_YAMLWALK_PATH, FIELD(data.train_labels), ONLY(format_idx, "format idx")},
    {"test_labels", PS_YAMLWALK_PATH, FIELD(data.test_labels), ONLY(format_idx, "format idx")},
    {"label_column", PS_YAMLWALK_INT, FIELD(data.label_column), .def = "0", .max = UINT32_MAX,
     ONLY(format_csv, "format csv"), .aka = "label|label_col|target"},
    {"normalize", PS_YAMLWALK_ENUM, FIELD(data.normalize), .def = "standard",
     .names = normalize_names, .sup = PS_YAMLWALK_SUP_ALL, .aka = "normalise|normalization|scale"},
    {"shard", PS_YAMLWALK_ENUM, FIELD(data.shard), .def = "stride", .names = shard_names,
     .sup = PS_YAMLWALK_SUP_ALL, .aka = "sharding|partition"},
    /* batches from shard 0's queue instead of a fixed shard (batchq.h) */
    {"assign", PS_YAMLWALK_ENUM, FIELD(data.assign), .def = "static", .names = assign_names,
     .sup = PS_YAMLWALK_SUP_ALL, .aka = "assignment|scheduling|dispatch"},
    /* click logs no worker could hold: read a batch at a time (sparse_step.h) */
    {"stream", PS_YAMLWALK_BOOL, FIELD(data.stream), .def = "false",
     ONLY(format_clicks, "format criteo or libsvm64"), .aka = "streaming|out_of_core|lazy"},
};
static const ps_yamlwalk_section data_sec = {"data", ROWS(data_keys)};

static const ps_yamlwalk_key schedule_keys[] = {
    {"type", PS_YAMLWALK_ENUM, FIELD(optimizer.schedule), .def = "constant",
     .names = schedule_names, .sup = PS_YAMLWALK_SUP_ALL},
    {"step_size", PS_YAMLWALK_INT, FIELD(optimizer.step_size), .min = 1, .max = UINT64_MAX,
     ONLY(schedule_step, "schedule type step"), .aka = "step|every"},
    {"gamma", PS_YAMLWALK_FLOAT, PS_YAMLWALK_LO_OPEN, FIELD(optimizer.gamma), .def = "0.1", .lo = 0,
     .hi = 1, ONLY(schedule_step, "schedule type step"), .aka = "decay|factor"},
    {"warmup_steps", PS_YAMLWALK_INT, FIELD(optimizer.warmup_steps), .def = "0", .max = UINT64_MAX,
     .aka = "warmup"},
    {"total_steps", PS_YAMLWALK_INT, FIELD(optimizer.total_steps), .min = 1, .max = UINT64_MAX,
     ONLY(schedule_cosine, "schedule type cosine"), .aka = "total|horizon|max_steps|t_max"},
};
static const ps_yamlwalk_section schedule_sec = {"optimizer.schedule", ROWS(schedule_keys)};

static const ps_yamlwalk_key optim_keys[] = {
    {"type", PS_YAMLWALK_ENUM, FIELD(optimizer.type), .def = "sgd", .names = optim_names,
     .sup = PS_YAMLWALK_SUP_ALL, .aka = "name|optimizer"},
    {"lr", PS_YAMLWALK_FLOAT, PS_YAMLWALK_LO_OPEN, FIELD(optimizer.lr), .def = "0.1", .lo = 0,
     .hi = FLT_INF, .aka = "learning_rate|learningrate|rate|eta|alpha"},
    {"momentum", PS_YAMLWALK_FLOAT, PS_YAMLWALK_HI_OPEN, FIELD(optimizer.momentum), .def = "0.9",
     .lo = 0, .hi = 1, ONLY(optim_momentum, "optimizer type momentum"), .aka = "mu"},
    {"nesterov", PS_YAMLWALK_BOOL, FIELD(optimizer.nesterov), .def = "false",
     ONLY(optim_momentum, "optimizer type momentum")},
    {"l2", PS_YAMLWALK_FLOAT, FIELD(optimizer.l2), .def = "0", .lo = 0, .hi = FLT_INF,
     .aka = "weight_decay|lambda|reg|regularization|l2_reg"},
    {"l1", PS_YAMLWALK_FLOAT, FIELD(optimizer.l1), .def = "0", .lo = 0, .hi = FLT_INF,
     ONLY(optim_ftrl, "optimizer type ftrl"), .aka = "lambda1|l1_reg"},
    {"beta", PS_YAMLWALK_FLOAT, FIELD(optimizer.beta), .def = "1", .lo = 0, .hi = FLT_INF,
     ONLY(optim_ftrl, "optimizer type ftrl")},
    {"beta1", PS_YAMLWALK_FLOAT, PS_YAMLWALK_HI_OPEN, FIELD(optimizer.beta1), .def = "0.9", .lo = 0,
     .hi = 1, ONLY(optim_adam, "optimizer type adam")},
    {"beta2", PS_YAMLWALK_FLOAT, PS_YAMLWALK_HI_OPEN, FIELD(optimizer.beta2), .def = "0.999",
     .lo = 0, .hi = 1, ONLY(optim_adam, "optimizer type adam")},
    {"eps", PS_YAMLWALK_FLOAT, PS_YAMLWALK_LO_OPEN, FIELD(optimizer.eps), .def = "1e-8", .lo = 0,
     .hi = FLT_INF, ONLY(optim_adam_or_adagrad, "optimizer type adam or adagrad"),
     .aka = "epsilon"},
    {"schedule", PS_YAMLWALK_SECTION, .sub = &schedule_sec, .aka = "lr_schedule|scheduler"},
};
static const ps_yamlwalk_section optim_sec = {"optimizer", ROWS(optim_keys)};

/* local SGD's own steps on a worker: plain sgd; lr 0 (absent) means optimizer.lr */
static const ps_yamlwalk_key local_optim_keys[] = {
    {"type", PS_YAMLWALK_ENUM, FIELD(training.local_optim), .def = "sgd", .names = optim_names,
     .sup = 1u << PS_OPTIM_SGD, .aka = "name|optimizer"},
    {"lr", PS_YAMLWALK_FLOAT, PS_YAMLWALK_LO_OPEN, FIELD(training.local_lr), .lo = 0, .hi = FLT_INF,
     .aka = "learning_rate|learningrate|rate|eta|alpha"},
};
static const ps_yamlwalk_section local_optim_sec = {"training.local_optimizer",
                                                    ROWS(local_optim_keys)};

static const ps_yamlwalk_key training_keys[] = {
    {"epochs", PS_YAMLWALK_INT, FIELD(training.epochs), .def = "10", .min = 1, .max = 1000000,
     .aka = "epoch|num_epochs|n_epochs"},
    {"batch_size", PS_YAMLWALK_INT, FIELD(training.batch_size), .def = "32", .min = 1,
     .max = UINT32_MAX, .aka = "batch|batchsize|minibatch"},
    {"local_steps", PS_YAMLWALK_INT, FIELD(training.local_steps), .def = "1", .min = 1,
     .max = UINT32_MAX, .aka = "local_sgd|sync_period|period|h"},
    {"local_optimizer", PS_YAMLWALK_SECTION, .sub = &local_optim_sec,
     ONLY(local_sgd, "training.local_steps above 1"), .aka = "inner_optimizer|local_optim"},
    {"seed", PS_YAMLWALK_INT, FIELD(training.seed), .def = "7", .max = UINT64_MAX,
     .aka = "random_seed"},
};
static const ps_yamlwalk_section training_sec = {"training", ROWS(training_keys)};

static const ps_yamlwalk_key compression_keys[] = {
    {"push", PS_YAMLWALK_ENUM, FIELD(compression.push), .def = "none", .name_of = push_name_of,
     .nvalues = PS_COMPRESS_COUNT, .sup = PS_YAMLWALK_SUP_ALL, .aka = "type|codec|gradients"},
    {"pull", PS_YAMLWALK_ENUM, FIELD(compression.pull), .def = "none", .name_of = pull_name_of,
     .nvalues = PS_COMPRESS_COUNT, .sup = PS_YAMLWALK_SUP_ALL, .aka = "theta|params"},
    {"topk_ratio", PS_YAMLWALK_FLOAT, PS_YAMLWALK_LO_OPEN, FIELD(compression.topk_ratio),
     .def = "0.01", .lo = 0, .hi = 1, ONLY(compress_topk, "compression push topk"),
     .aka = "ratio|k|fraction"},
    /* default: the push codec's feedback_default (job.c's check_compression) */
    {"error_feedback", PS_YAMLWALK_BOOL, FIELD(compression.error_feedback),
     .aka = "feedback|ef|residual"},
};
static const ps_yamlwalk_section compression_sec = {"compression", ROWS(compression_keys)};

static const ps_yamlwalk_key heartbeat_keys[] = {
    {"interval_ms", PS_YAMLWALK_INT, FIELD(heartbeat.interval_ms), .def = "500", .min = 1,
     .max = 3600000, .aka = "interval|period_ms"},
    {"timeout_ms", PS_YAMLWALK_INT, FIELD(heartbeat.timeout_ms), .def = "3000", .min = 1,
     .max = 3600000, .aka = "timeout"},
    {"deadline_ms", PS_YAMLWALK_INT, FIELD(heartbeat.deadline_ms), .def = "60000", .min = 1,
     .max = 86400000, .aka = "deadline|give_up_ms|retry_ms"},
    {"incomplete_wait_ms", PS_YAMLWALK_INT, FIELD(heartbeat.incomplete_wait_ms), .def = "300000",
     .max = 86400000, .aka = "incomplete_wait|rejoin_wait_ms|replacement_wait_ms"},
};
static const ps_yamlwalk_section heartbeat_sec = {"heartbeat", ROWS(heartbeat_keys)};

/* what one hostile peer can make psd do (server.c) */
static const ps_yamlwalk_key limits_keys[] = {
    {"max_peers", PS_YAMLWALK_INT, FIELD(limits.max_peers), .def = "0", .max = 65536,
     .aka = "peers|max_connections|connections"},
    {"unregistered_rate", PS_YAMLWALK_INT, FIELD(limits.unregistered_rate), .def = "100", .min = 1,
     .max = 1000000, .aka = "rate|hello_rate|messages_per_second"},
};
static const ps_yamlwalk_section limits_sec = {"limits", ROWS(limits_keys)};

static const ps_yamlwalk_key sparse_keys[] = {
    {"min_count", PS_YAMLWALK_INT, FIELD(sparse.min_count), .def = "1", .min = 1, .max = 1u << 20,
     .aka = "admission|min_freq|threshold"},
    {"idle_versions", PS_YAMLWALK_INT, FIELD(sparse.idle_versions), .def = "0", .max = UINT64_MAX,
     .aka = "evict_idle|idle|ttl"},
    {"max_rows", PS_YAMLWALK_INT, FIELD(sparse.max_rows), .def = "0", .max = UINT64_C(1) << 40,
     .aka = "cap|capacity|rows"},
};
static const ps_yamlwalk_section sparse_sec = {"sparse", ROWS(sparse_keys)};

static const ps_yamlwalk_key checkpoint_keys[] = {
    {"dir", PS_YAMLWALK_PATH, PS_YAMLWALK_REQUIRED, FIELD(checkpoint.dir),
     .aka = "path|folder|directory"},
    {"every_seconds", PS_YAMLWALK_FLOAT, PS_YAMLWALK_LO_OPEN, FIELD(checkpoint.every_seconds),
     .def = "30", .lo = 0, .hi = 31536000, .aka = "every|interval|interval_seconds"},
    {"keep", PS_YAMLWALK_INT, FIELD(checkpoint.keep), .def = "3", .min = 1, .max = UINT32_MAX,
     .aka = "max_keep|retain"},
};
static const ps_yamlwalk_section checkpoint_sec = {"checkpoint", ROWS(checkpoint_keys)};

static const ps_yamlwalk_key curve_keys[] = {
    {"server_secret_key", PS_YAMLWALK_PATH, FIELD(security.server_secret_key),
     .aka = "secret_key|server_key|server_secret"},
    {"server_public_key", PS_YAMLWALK_PATH, FIELD(security.server_public_key),
     .aka = "public_key|server_public|server_key"},
    {"client_secret_key", PS_YAMLWALK_PATH, FIELD(security.client_secret_key),
     .aka = "client_key|worker_key|worker_secret_key"},
    {"authorized_workers", PS_YAMLWALK_PATH, FIELD(security.authorized_workers),
     .aka = "authorised_workers|authorized_keys|workers|worker_keys"},
    {"authorized_admins", PS_YAMLWALK_PATH, FIELD(security.authorized_admins),
     .aka = "authorised_admins|admins|admin_keys"},
};
static const ps_yamlwalk_section curve_sec = {"security.curve", ROWS(curve_keys)};

static const ps_yamlwalk_key security_keys[] = {
    {"curve", PS_YAMLWALK_SECTION, PS_YAMLWALK_REQUIRED, .sub = &curve_sec,
     .aka = "curvezmq|zmq_curve"},
};
static const ps_yamlwalk_section security_sec = {"security", ROWS(security_keys)};

static const ps_yamlwalk_key metrics_keys[] = {
    {"listen", PS_YAMLWALK_HOOK, PS_YAMLWALK_REQUIRED, .parse = parse_metrics_listen,
     .aka = "address|bind|endpoint|listen_address"},
};
static const ps_yamlwalk_section metrics_sec = {"metrics", ROWS(metrics_keys)};

static const ps_yamlwalk_key log_keys[] = {
    {"level", PS_YAMLWALK_ENUM, FIELD(log_level), .def = "info", .names = level_names,
     .sup = PS_YAMLWALK_SUP_ALL, .aka = "log_level|verbosity"},
};
static const ps_yamlwalk_section log_sec = {"log", ROWS(log_keys)};

/* the workers psrun starts: a program of the user's instead of psworker */
static const ps_yamlwalk_key worker_keys[] = {
    {"command", PS_YAMLWALK_LIST, PS_YAMLWALK_REQUIRED, .parse = parse_command,
     .aka = "cmd|argv|program|exec"},
};
static const ps_yamlwalk_section worker_sec = {"worker", ROWS(worker_keys)};

static const ps_yamlwalk_key top_keys[] = {
    {"job", PS_YAMLWALK_STRING, PS_YAMLWALK_REQUIRED, FIELD(name), .valid = valid_name,
     .aka = "name|job_name"},
    {"mode", PS_YAMLWALK_ENUM, FIELD(mode), .def = "sync", .name_of = mode_name_of,
     .nvalues = PS_MODE_COUNT, .sup = PS_YAMLWALK_SUP_ALL, .aka = "consistency"},
    {"staleness", PS_YAMLWALK_INT, FIELD(staleness), .def = "0", .max = UINT32_MAX,
     ONLY_MODE(mode_takes_key, PS_MODE_KEY_STALENESS), .aka = "max_staleness|bound"},
    {"backup_workers", PS_YAMLWALK_INT, FIELD(backup_workers), .def = "0", .max = PS_MAX_WORKERS,
     ONLY_MODE(off_or_mode_takes_key, PS_MODE_KEY_BACKUP_WORKERS), .aka = "backups"},
    {"deterministic", PS_YAMLWALK_BOOL, FIELD(deterministic), .def = "false",
     ONLY_MODE(off_or_mode_takes_key, PS_MODE_KEY_DETERMINISTIC), .aka = "reproducible"},
    {"workers", PS_YAMLWALK_INT, PS_YAMLWALK_REQUIRED, FIELD(workers), .min = 1,
     .max = PS_MAX_WORKERS, .aka = "num_workers|n_workers|worker"},
    {"servers", PS_YAMLWALK_HOOK, PS_YAMLWALK_REQUIRED, .parse = parse_servers,
     .aka = "server|shards|endpoints"},
    {"model", PS_YAMLWALK_SECTION, PS_YAMLWALK_REQUIRED, .sub = &model_sec},
    {"data", PS_YAMLWALK_SECTION, PS_YAMLWALK_REQUIRED, .sub = &data_sec, .aka = "dataset"},
    {"optimizer", PS_YAMLWALK_SECTION, .sub = &optim_sec, .aka = "optimiser|optim"},
    {"training", PS_YAMLWALK_SECTION, .sub = &training_sec, .aka = "train|trainer"},
    {"compression", PS_YAMLWALK_SECTION, .sub = &compression_sec, .aka = "compress"},
    {"heartbeat", PS_YAMLWALK_SECTION, .sub = &heartbeat_sec, .aka = "heartbeats"},
    {"limits", PS_YAMLWALK_SECTION, .sub = &limits_sec, .aka = "limit|dos"},
    {"sparse", PS_YAMLWALK_SECTION, .sub = &sparse_sec,
     ONLY(model_sparse, "model type sparse_logistic or fm"), .aka = "tables|embedding"},
    {"on_worker_loss", PS_YAMLWALK_ENUM, FIELD(on_worker_loss), .def = "continue",
     .names = loss_names, .sup = PS_YAMLWALK_SUP_ALL},
    {"on_divergence", PS_YAMLWALK_ENUM, FIELD(on_divergence), .def = "stop",
     .names = divergence_names, .sup = PS_YAMLWALK_SUP_ALL, .aka = "on_nan|divergence"},
    {"shared_memory", PS_YAMLWALK_BOOL, FIELD(shared_memory), .def = "true",
     .aka = "shm|shared_mem|use_shm"},
    {"threads", PS_YAMLWALK_INT, FIELD(threads), .def = "0", .max = 256,
     .aka = "server_threads|psd_threads|num_threads"},
    /* default auto (PS_SYNC_CHUNK_AUTO, set by job.c: a hook has none) */
    {"sync_chunk_kib", PS_YAMLWALK_HOOK, .parse = parse_sync_chunk,
     .aka = "chunk_kib|pipeline_chunk_kib|chunk_size_kib"},
    {"checkpoint", PS_YAMLWALK_SECTION, .sub = &checkpoint_sec, .aka = "checkpoints|checkpointing"},
    {"security", PS_YAMLWALK_SECTION, .sub = &security_sec, .aka = "auth|encryption"},
    {"metrics", PS_YAMLWALK_SECTION, .sub = &metrics_sec, .aka = "prometheus"},
    {"worker", PS_YAMLWALK_SECTION, .sub = &worker_sec, .aka = "workers_command|trainer"},
    {"output", PS_YAMLWALK_PATH, FIELD(output), .aka = "out|output_dir|outdir"},
    {"log", PS_YAMLWALK_SECTION, .sub = &log_sec, .aka = "logging"},
};
static const ps_yamlwalk_section top_sec = {"", ROWS(top_keys)};

#define TFIELD(f) .off = offsetof(ps_tensor_spec, f), .size = sizeof(((ps_tensor_spec *)0)->f)
static const ps_yamlwalk_key tensor_keys[] = {
    {"name", PS_YAMLWALK_STRING, PS_YAMLWALK_REQUIRED, TFIELD(name), .valid = valid_name},
    {"shape", PS_YAMLWALK_LIST, PS_YAMLWALK_REQUIRED, .parse = parse_shape, .aka = "dims|size"},
};
/* one entry of model.tensors: a table of its own, with its own seen set */
static const ps_yamlwalk_section tensor_sec = {"model.tensors", ROWS(tensor_keys)};

const ps_yamlwalk_section *ps_schema_job(void)
{
    return &top_sec;
}

/* ---- list hooks ---- */

/* servers: {pattern: "tcp://psd-{shard}.psd.{namespace}.svc:7070", count: N}:
 * expanded here into N endpoints, shard i's {shard} as i, {namespace} as
 * $PSD_NAMESPACE or $POD_NAMESPACE (launch_env.h); each checked as a listed
 * one is. */
static int expand_pattern(ps_yamlwalk *w, yaml_node_t *node, const char *pat, uint32_t shard,
                          const char *ns, char *out)
{
    char buf[PS_ENDPOINT_MAX * 2];
    size_t o = 0;
    for (const char *p = pat; *p != '\0';) {
        const char *add = NULL;
        char num[16];
        size_t skip = 1;
        if (strncmp(p, "{shard}", 7) == 0) {
            snprintf(num, sizeof num, "%" PRIu32, shard);
            add = num;
            skip = 7;
        } else if (strncmp(p, "{namespace}", 11) == 0) {
            if (ns == NULL)
                return ps_yamlwalk_fail(w, PS_ECONFIG, node->start_mark,
                                        "servers.pattern: {namespace} needs PSD_NAMESPACE or "
                                        "POD_NAMESPACE set in the environment");
            add = ns;
            skip = 11;
        } else if (*p == '{' || *p == '}') {
            return ps_yamlwalk_fail(w, PS_ECONFIG, node->start_mark,
                                    "servers.pattern: only {shard} and {namespace} may stand in "
                                    "braces, got \"%.40s\"",
                                    p);
        }
        size_t len = add != NULL ? strlen(add) : 1;
        if (o + len >= PS_ENDPOINT_MAX)
            return ps_yamlwalk_fail(w, PS_ECONFIG, node->start_mark,
                                    "servers.pattern: shard %" PRIu32
                                    "'s endpoint is longer than %d bytes",
                                    shard, PS_ENDPOINT_MAX - 1);
        memcpy(buf + o, add != NULL ? add : p, len);
        o += len;
        p += skip;
    }
    buf[o] = '\0';
    const char *why = "";
    if (!valid_endpoint(buf, &why)) {
        char shown[PS_YAMLWALK_SHOW_MAX + 8];
        return ps_yamlwalk_fail(w, PS_ECONFIG, node->start_mark,
                                "servers.pattern: shard %" PRIu32 " gives \"%s\", which %s", shard,
                                SHOW(shown, buf), why);
    }
    memcpy(out, buf, o + 1);
    return 0;
}

static int parse_servers_pattern(ps_yamlwalk *w, yaml_node_t *map, const char *path, ps_job *job)
{
    yaml_node_t *pat_node = NULL;
    const char *pat = NULL;
    uint64_t count = 0;
    bool has_count = false;
    int rc;
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *key = yaml_document_get_node(w->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(w->doc, pr->value);
        const char *name = key != NULL && key->type == YAML_SCALAR_NODE
                               ? (const char *)key->data.scalar.value
                               : "";
        if (strcmp(name, "pattern") == 0) {
            if ((rc = ps_yamlwalk_get_string(w, v, "servers.pattern", PS_ENDPOINT_MAX, NULL,
                                             &pat)) != 0)
                return rc;
            pat_node = v;
        } else if (strcmp(name, "count") == 0) {
            if ((rc = ps_yamlwalk_get_uint(w, v, "servers.count", 1, PS_MAX_SHARDS, UINT64_MAX,
                                           &count)) != 0)
                return rc;
            has_count = true;
        } else {
            char shown[PS_YAMLWALK_SHOW_MAX + 8];
            return ps_yamlwalk_fail(w, PS_ECONFIG, key != NULL ? key->start_mark : map->start_mark,
                                    "%s.%s: unknown key; a servers pattern takes pattern and count",
                                    path, SHOW(shown, name));
        }
    }
    if (pat == NULL || !has_count)
        return ps_yamlwalk_fail(w, PS_ECONFIG, map->start_mark,
                                "%s: a pattern needs pattern (with {shard}) and count, e.g. "
                                "{pattern: \"tcp://psd-{shard}.psd:7070\", count: 2}",
                                path);
    if (strstr(pat, "{shard}") == NULL && count > 1)
        return ps_yamlwalk_fail(w, PS_ECONFIG, pat_node->start_mark,
                                "servers.pattern: has no {shard}, so its %" PRIu64
                                " servers would share one endpoint",
                                count);
    const char *ns = ps_launch_namespace();
    for (uint32_t i = 0; i < (uint32_t)count; i++)
        if ((rc = expand_pattern(w, pat_node, pat, i, ns, job->servers[i])) != 0)
            return rc;
    job->nservers = (uint32_t)count;
    return 0;
}

static int parse_servers(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val,
                         const char *path, void *base)
{
    (void)k;
    ps_job *job = base;
    if (val->type == YAML_MAPPING_NODE)
        return parse_servers_pattern(w, val, path, job);
    if (val->type != YAML_SEQUENCE_NODE)
        return ps_yamlwalk_wrong_type(w, val, path, "a list");
    size_t n = 0;
    int rc = ps_yamlwalk_get_count(w, val, path, 1, PS_MAX_SHARDS, "endpoint", &n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = ps_yamlwalk_item(w, val, i);
        char ipath[PS_YAMLWALK_PATH_MAX];
        ps_yamlwalk_item_path(ipath, sizeof ipath, path, i);
        const char *ep = NULL;
        if ((rc = ps_yamlwalk_get_string(w, item, ipath, PS_ENDPOINT_MAX, valid_endpoint, &ep)) !=
            0)
            return rc;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(job->servers[j], ep) == 0) {
                yaml_node_t *first = ps_yamlwalk_item(w, val, j);
                char shown[PS_YAMLWALK_SHOW_MAX + 8];
                return ps_yamlwalk_fail(w, PS_ECONFIG, item->start_mark,
                                        "%s: \"%s\" is listed twice (first at %zu:%zu)", ipath,
                                        SHOW(shown, ep), first->start_mark.line + 1,
                                        first->start_mark.column + 1);
            }
        }
        ps_strlcpy(job->servers[i], ep, PS_ENDPOINT_MAX);
    }
    job->nservers = (uint32_t)n;
    return 0;
}

/* metrics.listen: "host:port", or a list of them, one per server. Kept as
 * written; job.c's check_metrics reads the node again once servers is known
 * and sets each shard's address. */
static int parse_metrics_listen(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val,
                                const char *path, void *base)
{
    (void)k;
    ps_job *job = base;
    const char *addr = NULL;
    int rc;
    if (val->type != YAML_SEQUENCE_NODE) {
        if (val->type != YAML_SCALAR_NODE)
            return ps_yamlwalk_wrong_type(w, val, path,
                                          "host:port or a list of them, one per server");
        if ((rc = ps_yamlwalk_get_string(w, val, path, PS_ENDPOINT_MAX, valid_host_port, &addr)) !=
            0)
            return rc;
        ps_strlcpy(job->metrics.listen[0], addr, PS_ENDPOINT_MAX);
        return 0;
    }
    size_t n = 0;
    if ((rc = ps_yamlwalk_get_count(w, val, path, 1, PS_MAX_SHARDS, "address", &n)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = ps_yamlwalk_item(w, val, i);
        char ipath[PS_YAMLWALK_PATH_MAX];
        ps_yamlwalk_item_path(ipath, sizeof ipath, path, i);
        if ((rc = ps_yamlwalk_get_string(w, item, ipath, PS_ENDPOINT_MAX, valid_host_port,
                                         &addr)) != 0)
            return rc;
        ps_strlcpy(job->metrics.listen[i], addr, PS_ENDPOINT_MAX);
    }
    return 0;
}

/* sync_chunk_kib: auto, or a number of KiB (0: whole) */
static int parse_sync_chunk(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val,
                            const char *path, void *base)
{
    (void)k;
    ps_job *job = base;
    if (val->type == YAML_SCALAR_NODE &&
        strcmp((const char *)val->data.scalar.value, "auto") == 0) {
        job->sync_chunk_kib = PS_SYNC_CHUNK_AUTO;
        return 0;
    }
    if (val->type != YAML_SCALAR_NODE ||
        strspn((const char *)val->data.scalar.value, "0123456789") == 0)
        return ps_yamlwalk_wrong_type(w, val, path, "auto or a number of KiB from 0 to 1048576");
    uint64_t v = 0;
    int rc = ps_yamlwalk_get_uint(w, val, path, 0, 1u << 20, UINT32_MAX, &v);
    if (rc == 0)
        job->sync_chunk_kib = (uint32_t)v;
    return rc;
}

static int parse_hidden(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val,
                        const char *path, void *base)
{
    (void)k;
    ps_job *job = base;
    size_t n = 0;
    int rc = ps_yamlwalk_get_count(w, val, path, 1, PS_MAX_HIDDEN, "layer", &n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = ps_yamlwalk_item(w, val, i);
        char ipath[PS_YAMLWALK_PATH_MAX];
        ps_yamlwalk_item_path(ipath, sizeof ipath, path, i);
        uint64_t v = 0;
        if ((rc = ps_yamlwalk_get_uint(w, item, ipath, 1, MAX_UNITS, UINT32_MAX, &v)) != 0)
            return rc;
        job->model.hidden[i] = (uint32_t)v;
    }
    job->model.nhidden = (uint32_t)n;
    return 0;
}

static int parse_shape(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val, const char *path,
                       void *base)
{
    (void)k;
    ps_tensor_spec *t = base;
    size_t n = 0;
    int rc = ps_yamlwalk_get_count(w, val, path, 1, PS_MAX_DIMS, "dimension", &n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = ps_yamlwalk_item(w, val, i);
        char ipath[PS_YAMLWALK_PATH_MAX];
        ps_yamlwalk_item_path(ipath, sizeof ipath, path, i);
        if ((rc = ps_yamlwalk_get_uint(w, item, ipath, 1, MAX_DIM, UINT64_MAX, &t->shape[i])) != 0)
            return rc;
    }
    t->ndims = (uint32_t)n;
    return 0;
}

static int parse_tensors(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val,
                         const char *path, void *base)
{
    (void)k;
    ps_job *job = base;
    size_t n = 0;
    int rc = ps_yamlwalk_get_count(w, val, path, 1, PS_MAX_TENSORS, "tensor", &n);
    if (rc != 0)
        return rc;
    yaml_mark_t name_marks[PS_MAX_TENSORS];
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = ps_yamlwalk_item(w, val, i);
        char ipath[PS_YAMLWALK_PATH_MAX];
        ps_yamlwalk_item_path(ipath, sizeof ipath, path, i);
        if (item->type != YAML_MAPPING_NODE)
            return ps_yamlwalk_wrong_type(w, item, ipath, "a mapping {name, shape}");
        ps_yamlwalk_seen_set ts = {0};
        ps_tensor_spec *t = &job->model.tensors[i];
        memset(t, 0, sizeof *t);
        if ((rc = ps_yamlwalk_read(w, item, &tensor_sec, ipath, t, &ts)) != 0)
            return rc;
        name_marks[i] = ps_yamlwalk_seen_get(&ts, &tensor_sec, "name")->val_mark;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(job->model.tensors[j].name, t->name) == 0)
                return ps_yamlwalk_fail(w, PS_ECONFIG, name_marks[i],
                                        "%s.name: \"%s\" is used twice (first at %zu:%zu)", ipath,
                                        t->name, name_marks[j].line + 1, name_marks[j].column + 1);
        }
    }
    job->model.ntensors = (uint32_t)n;
    return 0;
}

/* worker.command: a non-empty list of strings; the first, when it holds a
 * '/' and is relative, resolved against the job's folder (a bare name is
 * looked up on PATH when psrun starts it) */
static int parse_command(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val,
                         const char *path, void *base)
{
    (void)k;
    ps_job *job = base;
    size_t n = 0;
    int rc = ps_yamlwalk_get_count(w, val, path, 1, PS_WORKER_ARGS_MAX, "item", &n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = ps_yamlwalk_item(w, val, i);
        char ipath[PS_YAMLWALK_PATH_MAX];
        ps_yamlwalk_item_path(ipath, sizeof ipath, path, i);
        const char *s = NULL;
        if ((rc = ps_yamlwalk_get_string(w, item, ipath, PS_PATH_MAX, NULL, &s)) != 0)
            return rc;
        int len;
        if (i == 0 && s[0] != '/' && strchr(s, '/') != NULL)
            len = snprintf(job->worker.argv[i], PS_PATH_MAX, "%s/%s", w->dir, s);
        else
            len = snprintf(job->worker.argv[i], PS_PATH_MAX, "%s", s);
        if (len < 0 || len >= PS_PATH_MAX)
            return ps_yamlwalk_fail(w, PS_ECONFIG, item->start_mark,
                                    "%s: longer than %d bytes once resolved against %s", ipath,
                                    PS_PATH_MAX - 1, w->dir);
    }
    job->worker.argc = (uint32_t)n;
    return 0;
}
