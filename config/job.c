/* job.c — the job-file loader: reads the file, loads its one YAML document
 * (refusing deep nesting), walks it against the schema (schema.c, through
 * yamlwalk.c) into a staged copy, then runs the checks that span several keys
 * and fit no row (contradictions, security, metrics, data files) and copies
 * the job out only when all of it is good. Also the layout of θ. */
#include "job.h"

#include "launch_env.h"

#include "schema.h"
#include "util.h"
#include "yamlwalk.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define JOB_FILE_MAX_BYTES (1u << 20) /* a job file is a page of YAML, not a data set */
/* Mappings and lists nested in each other: a job needs 5 (model.tensors[i].
 * shape); the cap refuses a file of nested "[" before libyaml, whose
 * scanner is quadratic in the depth, spends minutes on it. */
#define MAX_DEPTH 64

#define SHOW(buf, s) ps_yamlwalk_show((buf), sizeof(buf), (s), PS_YAMLWALK_SHOW_MAX)

typedef struct ctx {
    ps_yamlwalk w;    /* the file's name, its folder, the document, err */
    const char *text; /* the file's bytes, for reader-error positions */
    size_t len;
    ps_job *job; /* staged */
    ps_yamlwalk_seen_set seen;
} ctx;

/* where the key at path was written (given false when it was not) */
static const ps_yamlwalk_seen *seen(const ctx *c, const char *path)
{
    return ps_yamlwalk_seen_get(&c->seen, ps_schema_job(), path);
}

/* ---- the checks that span several keys ---- */

/* A key of section `where` that a value of another key needs. */
static int needs(ctx *c, const char *where, const char *name, const char *because)
{
    char path[PS_YAMLWALK_PATH_MAX];
    snprintf(path, sizeof path, "%s.%s", where, name);
    if (seen(c, path)->given)
        return 0;
    return ps_yamlwalk_fail(&c->w, PS_ECONFIG, seen(c, where)->val_mark,
                            "missing required key \"%s\" in %s (%s needs it)", name, where,
                            because);
}

static int check_model(ctx *c)
{
    const ps_job *j = c->job;
    char because[64];
    snprintf(because, sizeof because, "model type %s", ps_model_type_name(j->model.type));
    int rc = 0;
    if (!ps_job_is_sparse(j) && j->model.type != PS_MODEL_CUSTOM &&
        !seen(c, "model.features")->given)
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG, seen(c, "model")->val_mark,
                                "missing required key \"features\" in model");
    if (j->model.type == PS_MODEL_SOFTMAX || j->model.type == PS_MODEL_MLP)
        rc = needs(c, "model", "classes", because);
    if (rc == 0 && j->model.type == PS_MODEL_MLP)
        rc = needs(c, "model", "hidden", because);
    if (rc == 0 && j->model.type == PS_MODEL_CUSTOM)
        rc = needs(c, "model", "tensors", because);
    if (rc != 0)
        return rc;
    /* psworker trains the built-in models only: a custom one's gradients
     * come from the user's own workers */
    if (j->model.type == PS_MODEL_CUSTOM && j->worker.argc == 0)
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG, seen(c, "model.type")->val_mark,
                                "model type custom needs worker.command (psworker has no "
                                "trainer for it: name the program that computes its gradients)");
    /* hashed keys come from click logs; a dense model's rows have a width */
    bool clicks = j->data.format == PS_FORMAT_CRITEO || j->data.format == PS_FORMAT_LIBSVM64;
    if (ps_job_is_sparse(j) != clicks)
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG,
                                seen(c, "data.format")->given ? seen(c, "data.format")->val_mark
                                                              : seen(c, "data")->key_mark,
                                "data.format: %s %s, not %s", because,
                                clicks ? "reads csv, libsvm or idx" : "reads criteo or libsvm64",
                                ps_data_format_name(j->data.format));
    ps_optim_type o = j->optimizer.type;
    if (clicks && o != PS_OPTIM_SGD && o != PS_OPTIM_ADAGRAD && o != PS_OPTIM_FTRL)
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG,
                                seen(c, "optimizer.type")->given
                                    ? seen(c, "optimizer.type")->val_mark
                                    : seen(c, "model")->key_mark,
                                "optimizer.type: %s trains with sgd, adagrad or ftrl (the state a "
                                "table's rows keep), not %s",
                                because, ps_optim_type_name(o));
    if (j->model.type == PS_MODEL_LOGISTIC && seen(c, "model.classes")->given &&
        j->model.classes != 2)
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG, seen(c, "model.classes")->val_mark,
                                "model.classes: must be 2 for model type logistic, got %" PRIu32,
                                j->model.classes);
    ps_tensor_info t[PS_MAX_TENSORS];
    size_t n;
    uint64_t p;
    if (ps_job_layout(j, t, PS_MAX_TENSORS, &n, &p) != 0)
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG, seen(c, "model")->key_mark,
                                "model: too many parameters (the count overflows 64 bits)");
    /* a sparse model's few dense keys (its bias) need not reach every shard */
    if (p < j->nservers && !ps_job_is_sparse(j))
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG, seen(c, "servers")->val_mark,
                                "servers: %" PRIu32 " shards for %" PRIu64
                                " parameters; each shard needs at least one",
                                j->nservers, p);
    return 0;
}

/* error_feedback defaults to on where compression drops most: the push
 * codec's descriptor says (feedback_default). */
static void check_compression(ctx *c)
{
    ps_job *j = c->job;
    if (!seen(c, "compression.error_feedback")->given)
        j->compression.error_feedback = ps_compress_ops_get(j->compression.push)->feedback_default;
}

/* data.assign: dynamic takes batches from a queue as fast as a worker
 * trains: async and ssp only (sync's rounds wait for every worker anyway;
 * backup_workers is its answer to a straggler), one batch a push (not local
 * SGD), a dense model. */
static int check_assign(ctx *c)
{
    const ps_job *j = c->job;
    if (j->data.assign != PS_ASSIGN_DYNAMIC)
        return 0;
    const ps_yamlwalk_seen *at = seen(c, "data.assign");
    if (j->mode == PS_MODE_SYNC)
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG, at->val_mark,
                                "data.assign: dynamic needs mode async or ssp, not sync (a sync "
                                "round waits for every worker: use backup_workers for stragglers)");
    if (j->training.local_steps > 1)
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG, at->val_mark,
                                "data.assign: dynamic trains one batch a push, not local SGD "
                                "(training.local_steps %" PRIu32 ")",
                                j->training.local_steps);
    if (ps_job_is_sparse(j))
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG, at->val_mark,
                                "data.assign: dynamic trains dense models only, not model type %s",
                                ps_model_type_name(j->model.type));
    return 0;
}

static int check_contradictions(ctx *c)
{
    const ps_job *j = c->job;
    /* each row's own rule: "staleness: only valid with mode ssp" */
    int rc = ps_yamlwalk_check_only(&c->w, ps_schema_job(), j, &c->seen);
    if (rc != 0)
        return rc;
    if (j->backup_workers >= j->workers)
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG, seen(c, "backup_workers")->val_mark,
                                "backup_workers: must be less than workers (%" PRIu32
                                "), got %" PRIu32,
                                j->workers, j->backup_workers);
    if ((rc = check_model(c)) != 0)
        return rc;
    if ((rc = check_assign(c)) != 0)
        return rc;
    check_compression(c);
    if (j->data.format == PS_FORMAT_CSV && j->data.label_column > j->model.features)
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG, seen(c, "data.label_column")->val_mark,
                                "data.label_column: must be at most model.features (%" PRIu64
                                "), got %" PRIu32,
                                j->model.features, j->data.label_column);
    if (j->optimizer.schedule == PS_SCHEDULE_STEP &&
        (rc = needs(c, "optimizer.schedule", "step_size", "schedule type step")) != 0)
        return rc;
    if (j->optimizer.schedule == PS_SCHEDULE_COSINE &&
        (rc = needs(c, "optimizer.schedule", "total_steps", "schedule type cosine")) != 0)
        return rc;
    if (j->optimizer.schedule == PS_SCHEDULE_COSINE &&
        j->optimizer.warmup_steps >= j->optimizer.total_steps)
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG,
                                seen(c, "optimizer.schedule.warmup_steps")->val_mark,
                                "optimizer.schedule.warmup_steps (%" PRIu64
                                ") must be less than optimizer.schedule.total_steps (%" PRIu64 ")",
                                j->optimizer.warmup_steps, j->optimizer.total_steps);
    if (j->heartbeat.timeout_ms <= j->heartbeat.interval_ms) {
        const ps_yamlwalk_seen *at = seen(c, "heartbeat.timeout_ms");
        if (!at->given)
            at = seen(c, "heartbeat.interval_ms");
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG, at->val_mark,
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
    j->security.curve = seen(c, "security.curve")->given;
    if (!j->security.curve)
        return 0;
    const ps_yamlwalk_section *curve = ps_yamlwalk_find_key(ps_schema_job(), "security.curve")->sub;
    char names[256] = "";
    size_t n = 0;
    for (size_t i = 0; i < curve->nkeys; i++) {
        if (ps_yamlwalk_seen_of(&c->seen, &curve->keys[i])->given)
            return 0;
        if (n < sizeof names)
            n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "",
                                  curve->keys[i].name);
    }
    return ps_yamlwalk_fail(&c->w, PS_ECONFIG, seen(c, "security.curve")->val_mark,
                            "security.curve: give the key files (%s)", names);
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
    const ps_yamlwalk_seen *listen = seen(c, "metrics.listen");
    if (!listen->given)
        return 0;
    /* as written: one address (listen_one) or a list of nlisten */
    yaml_mark_t at = listen->val_mark, marks[PS_MAX_SHARDS] = {at};
    bool listen_one = listen->val->type != YAML_SEQUENCE_NODE;
    size_t nlisten = 1;
    if (!listen_one) { /* parse_metrics_listen took 1 .. PS_MAX_SHARDS */
        nlisten =
            (size_t)(listen->val->data.sequence.items.top - listen->val->data.sequence.items.start);
        for (size_t i = 0; i < nlisten; i++)
            marks[i] = ps_yamlwalk_item(&c->w, listen->val, i)->start_mark;
    }
    if (!listen_one && nlisten != j->nservers)
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG, at,
                                "metrics.listen: %zu addresses for %" PRIu32
                                " servers; list one per server, or give one address (shard i then "
                                "listens on its port + i)",
                                nlisten, j->nservers);
    if (listen_one) {
        const char *first = j->metrics.listen[0], *colon = strrchr(first, ':');
        unsigned long port = strtoul(colon + 1, NULL, 10);
        for (uint32_t i = 1; i < j->nservers; i++) {
            if (port + i > 65535)
                return ps_yamlwalk_fail(&c->w, PS_ECONFIG, at,
                                        "metrics.listen: port %lu + %" PRIu32 " for shard %" PRIu32
                                        " is past 65535; list one address per server",
                                        port, i, i);
            int n = snprintf(j->metrics.listen[i], PS_ENDPOINT_MAX, "%.*s:%lu",
                             (int)(colon - first), first, port + i);
            if (n < 0 || n >= PS_ENDPOINT_MAX)
                return ps_yamlwalk_fail(&c->w, PS_ECONFIG, at,
                                        "metrics.listen: shard %" PRIu32
                                        "'s address is longer than %d bytes",
                                        i, PS_ENDPOINT_MAX - 1);
            marks[i] = marks[0];
        }
    }
    char host_i[PS_ENDPOINT_MAX], host_k[PS_ENDPOINT_MAX], shown[PS_YAMLWALK_SHOW_MAX + 8];
    for (uint32_t i = 0; i < j->nservers; i++) {
        const char *addr = j->metrics.listen[i];
        char path[32], whose[32] = "";
        if (listen_one)
            snprintf(path, sizeof path, "metrics.listen");
        else
            ps_yamlwalk_item_path(path, sizeof path, "metrics.listen", i);
        if (listen_one && i > 0)
            snprintf(whose, sizeof whose, "shard %" PRIu32 "'s ", i);
        endpoint_host(j->servers[i], host_i, sizeof host_i);
        for (uint32_t k = 0; k < j->nservers; k++) {
            endpoint_host(j->servers[k], host_k, sizeof host_k);
            if (strncmp(j->servers[k], "tcp://", 6) == 0 && strcmp(j->servers[k] + 6, addr) == 0)
                return ps_yamlwalk_fail(&c->w, PS_ECONFIG, marks[i],
                                        "%s: %s\"%s\" is the endpoint of servers[%" PRIu32 "]",
                                        path, whose, SHOW(shown, addr), k);
            if (k < i && strcmp(host_i, host_k) == 0 && strcmp(j->metrics.listen[k], addr) == 0)
                return ps_yamlwalk_fail(
                    &c->w, PS_ECONFIG, marks[i],
                    "%s: \"%s\" is shard %" PRIu32 "'s too, and both shards run on %s", path,
                    SHOW(shown, addr), k, host_i[0] ? host_i : "this machine");
        }
    }
    return 0;
}

/* ---- data files ---- */

static int check_file(ctx *c, const char *path, const char *file)
{
    if (!seen(c, path)->given)
        return 0;
    char shown[PS_PATH_MAX + 8];
    ps_yamlwalk_show(shown, sizeof shown, file, PS_PATH_MAX);
    yaml_mark_t at = seen(c, path)->key_mark;
    int fd;
    const char *what_kind;
    int rc = ps_file_open_regular(file, &fd, &what_kind);
    if (rc == PS_EINVAL)
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG, at, "%s: %s is %s, not a file", path, shown,
                                what_kind);
    if (rc != 0)
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG, at, "%s: cannot read %s: %s", path, shown,
                                strerror(errno));
    close(fd);
    return 0;
}

static int check_files(ctx *c)
{
    const ps_job *j = c->job;
    int rc = check_file(c, "data.train", j->data.train);
    if (rc == 0)
        rc = check_file(c, "data.test", j->data.test);
    if (rc == 0)
        rc = check_file(c, "data.train_labels", j->data.train_labels);
    if (rc == 0)
        rc = check_file(c, "data.test_labels", j->data.test_labels);
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
        return ps_error_set(c->w.err, PS_ENOMEM, "%s: out of memory while parsing", c->w.name);
    const char *problem = p->problem ? p->problem : "cannot parse";
    if (p->error == YAML_READER_ERROR)
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG, mark_at(c, p->problem_offset), "%s", problem);
    if (p->context != NULL)
        return ps_yamlwalk_fail(&c->w, PS_ECONFIG, p->problem_mark, "%s (%s at %zu:%zu)", problem,
                                p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    return ps_yamlwalk_fail(&c->w, PS_ECONFIG, p->problem_mark, "%s", problem);
}

/* Walks the file's events and refuses it when mappings and lists nest
 * deeper than MAX_DEPTH; stops at the first level too deep, so a file of a
 * million "[" costs a few thousand tokens. Syntax errors are left to
 * load_document. */
static int check_depth(ctx *c)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return ps_error_set(c->w.err, PS_ENOMEM, "%s: out of memory", c->w.name);
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
                rc = ps_yamlwalk_fail(
                    &c->w, PS_ECONFIG, ev.start_mark,
                    "mappings and lists nested more than %d deep; a job file needs 5", MAX_DEPTH);
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
        return ps_error_set(c->w.err, PS_ENOMEM, "%s: out of memory", c->w.name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)c->text, c->len);
    memset(doc, 0, sizeof *doc);
    if (!yaml_parser_load(&parser, doc)) {
        rc = yaml_failed(c, &parser);
        goto delete_parser;
    }
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (root == NULL) {
        rc = ps_yamlwalk_fail(&c->w, PS_ECONFIG, (yaml_mark_t){0}, "the job file is empty");
        goto delete_doc;
    }
    yaml_document_t next;
    memset(&next, 0, sizeof next);
    if (!yaml_parser_load(&parser, &next)) {
        rc = yaml_failed(c, &parser);
        goto delete_doc;
    }
    if (yaml_document_get_root_node(&next) != NULL)
        rc = ps_yamlwalk_fail(&c->w, PS_ECONFIG, next.start_mark,
                              "a job file holds one YAML document, not more");
    yaml_document_delete(&next);
    if (rc == 0)
        goto delete_parser;
delete_doc:
    yaml_document_delete(doc);
delete_parser:
    yaml_parser_delete(&parser);
    return rc;
}

/* where the value of the key at path was written; 0:0 when it was not */
static ps_job_pos pos_of(const ctx *c, const char *path)
{
    const ps_yamlwalk_seen *s = seen(c, path);
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
    c->w.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root->type != YAML_MAPPING_NODE) {
        char got[PS_YAMLWALK_SHOW_MAX + 32];
        rc = ps_yamlwalk_fail(&c->w, PS_ECONFIG, root->start_mark,
                              "the job file must be a mapping of keys, got %s",
                              ps_yamlwalk_describe(root, got, sizeof got));
        goto delete_doc;
    }
    ps_yamlwalk_set_defaults(ps_schema_job(), c->job);
    c->job->sync_chunk_kib = PS_SYNC_CHUNK_AUTO; /* a hook's row: no default of its own */
    rc = ps_yamlwalk_read(&c->w, root, ps_schema_job(), "", c->job, &c->seen);
    if (rc == 0) /* PSD_SERVERS, TF_CONFIG: before the checks that count servers */
        rc = ps_launch_servers(c->job, c->w.err);
    if (rc == 0)
        rc = check_contradictions(c);
    if (rc == 0)
        rc = check_security(c);
    if (rc == 0)
        rc = check_metrics(c);
    if (rc == 0)
        rc = check_files(c);
    c->job->output_pos = pos_of(c, "output");
    c->job->checkpoint_dir_pos = pos_of(c, "checkpoint.dir");
    if (rc == 0 && c->w.pending.code != 0) {
        *c->w.err = c->w.pending;
        rc = c->w.pending.code;
    }
delete_doc:
    c->w.doc = NULL;
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
    ps_yamlwalk_init(&c->w, name, dir, NULL, ps_schema_job(), err);
    c->text = text;
    c->len = len;
    c->job = staged;
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

uint64_t ps_job_sync_chunk_keys(const ps_job *job, uint64_t n)
{
    const uint64_t kib = 1024 / sizeof(float); /* keys a KiB: int8's 256-key block */
    uint64_t ck;
    if (job->sync_chunk_kib == PS_SYNC_CHUNK_AUTO) {
        ck = (n + PS_SYNC_CHUNK_AUTO_COUNT - 1) / PS_SYNC_CHUNK_AUTO_COUNT;
        ck = (ck + kib - 1) / kib * kib;
        if (ck < PS_SYNC_CHUNK_AUTO_MIN_KIB * kib)
            ck = PS_SYNC_CHUNK_AUTO_MIN_KIB * kib;
    } else {
        ck = (uint64_t)job->sync_chunk_kib * kib;
    }
    if (ck == 0 || n <= ck || (n + ck - 1) / ck > UINT32_MAX)
        return 0;
    return ck;
}

bool ps_job_is_sparse(const ps_job *job)
{
    return job->model.type == PS_MODEL_SPARSE_LOGISTIC || job->model.type == PS_MODEL_FM;
}

int ps_job_tables(const ps_job *job, ps_table_spec *out, size_t max, size_t *n)
{
    size_t count = 0;
    ps_table_spec t = {{0}, 0, 0};
    if (job->model.type == PS_MODEL_SPARSE_LOGISTIC) {
        ps_strlcpy(t.name, "w", sizeof t.name);
        t.dim = 1;
        t.zero_prefix = 1;
        count = 1;
    } else if (job->model.type == PS_MODEL_FM) {
        ps_strlcpy(t.name, "v", sizeof t.name);
        t.dim = 1 + job->model.factors;
        t.zero_prefix = 1;
        count = 1;
    }
    if (count > max)
        return PS_EINVAL;
    if (count > 0)
        out[0] = t;
    if (n != NULL)
        *n = count;
    return 0;
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
    case PS_MODEL_SPARSE_LOGISTIC:
    case PS_MODEL_FM:
        ADD("b", 1); /* the bias; the weights are rows of its table */
        break;
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

/* The name the job file gives value v of the enum key at path, or "?". */
static const char *enum_name(const char *path, uint32_t v)
{
    const ps_yamlwalk_key *k = ps_yamlwalk_find_key(ps_schema_job(), path);
    const char *name = ps_yamlwalk_enum_name(k, v);
    return name != NULL ? name : "?";
}

uint64_t ps_shard_rows(uint64_t n, ps_shard_kind kind, uint32_t rank, uint32_t workers)
{
    if (workers == 0 || rank >= workers)
        return 0;
    if (kind == PS_SHARD_STRIDE)
        return rank < n ? (n - rank + workers - 1) / workers : 0;
    uint64_t lo, hi;
    if (ps_shard_range(n, workers, rank, &lo, &hi) != 0)
        return 0;
    return hi - lo;
}

const char *ps_data_format_name(ps_data_format format)
{
    return enum_name("data.format", (uint32_t)format);
}

const char *ps_model_type_name(ps_model_type type)
{
    return enum_name("model.type", (uint32_t)type);
}

const char *ps_optim_type_name(ps_optim_type type)
{
    return enum_name("optimizer.type", (uint32_t)type);
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
    ps_yamlwalk_show(shown, sizeof shown, dir, PS_PATH_MAX);
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

bool ps_job_rows_start_zero(const ps_job *job)
{
    if (job->model.init_scheme == PS_INIT_ZEROS)
        return true;
    if (job->optimizer.type != PS_OPTIM_FTRL)
        return false;
    float beta = (float)job->optimizer.beta, inv_lr = (float)(1.0 / job->optimizer.lr);
    return beta * inv_lr + (float)job->optimizer.l2 == 0.0f;
}
