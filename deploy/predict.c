/* predict.c — psrun predict (predict.h): N `psworker predict` children
 * under supervise.h, each scoring a contiguous block of the rows into a
 * part (common/report_predict.h); every wait bounded; a part that fails
 * stops the others and fails the whole in one line; the parts joined in
 * order into the output (written to a temporary name, then renamed), and
 * the metrics of all the rows in the manifest beside it. */
#include "predict.h"

#include "args.h"
#include "auc.h"
#include "report_file.h"
#include "report_number.h"
#include "report_predict.h"
#include "stdout_guard.h"
#include "supervise.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PREDICT_TIMEOUT_S 600L /* --timeout's default */
#define STOP_GRACE_S      5.0  /* after SIGTERM, then SIGKILL */
#define LINE_KEEP         512

typedef struct predict_run {
    const char *job, *data, *output, *labels, *model;
    uint32_t workers;
    long timeout_s;
    char tmpdir[PATH_MAX];
    ps_supervisor sv;
    char said[PS_SUPERVISOR_CHILDREN_MAX][LINE_KEEP]; /* a part's first error line */
    bool failed;
    char failure[LINE_KEEP + 128];
    int fail_status;
} predict_run;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    stop_requested = sig;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: psrun predict [options] JOB.yaml --data FILE --output PREDS.csv\n"
            "Scores FILE (in the job's data.format, preprocessed as the training was)\n"
            "with the model the job's output folder holds, split across N psworker\n"
            "processes, each a contiguous block of rows; writes one line a row, in the\n"
            "input's order, under a header: class,p0,p1,... for the classifiers (p0,p1\n"
            "for logistic, sparse_logistic and fm), value for linear; and PREDS.csv.json:\n"
            "the model's version, the rows, the input, and from the file's labels\n"
            "accuracy and log_loss (and auc for binary classifiers), or mse and r2.\n"
            "\n"
            "  --data FILE      the data file to score (required)\n"
            "  --output FILE    the predictions (required); the manifest is FILE.json\n"
            "  --workers N      processes that score (default 1, at most %d)\n"
            "  --labels FILE    idx: the labels file (default: from the images file's name)\n"
            "  --model DIR      the model folder (default: the job's output)\n"
            "  --timeout S      give up after S seconds (default %ld)\n"
            "  -h, --help       show this help\n"
            "  -V, --version    show the version\n"
            "\n"
            "exit status: 0 done, 1 a part failed (model, data, timeout),\n"
            "2 usage or job-file error, 130 interrupted\n",
            PS_SUPERVISOR_CHILDREN_MAX, PREDICT_TIMEOUT_S);
}

/* A part's output: its first "psworker: " line is kept for the verdict;
 * anything else (a sanitizer's report) passes through. */
static void on_line(void *arg, ps_supervisor_child *c, const char *line)
{
    predict_run *r = arg;
    char *keep = r->said[c - r->sv.kids];
    if (strncmp(line, "psworker: ", 10) == 0) {
        if (keep[0] == '\0')
            snprintf(keep, LINE_KEEP, "%s", line + 10);
    } else {
        fprintf(stderr, "[%s] %s\n", c->name, line);
    }
}

static void fail(predict_run *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(predict_run *r, int status, const char *fmt, ...)
{
    if (r->failed)
        return;
    r->failed = true;
    r->fail_status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->failure, sizeof r->failure, fmt, ap);
    va_end(ap);
}

static void part_prefix(const predict_run *r, uint32_t i, char *out, size_t cap)
{
    snprintf(out, cap, "%s/p%u", r->tmpdir, i);
}

static int spawn_parts(predict_run *r, const char *prog)
{
    for (uint32_t i = 0; i < r->workers; i++) {
        char name[16], part[16], parts[16], prefix[PATH_MAX + 16];
        snprintf(name, sizeof name, "p%u", i);
        snprintf(part, sizeof part, "%u", i);
        snprintf(parts, sizeof parts, "%u", r->workers);
        part_prefix(r, i, prefix, sizeof prefix);
        char *argv[20] = {(char *)prog, "predict",       "--config", (char *)r->job,
                          "--data",     (char *)r->data, "--part",   part,
                          "--parts",    parts,           "--out",    prefix};
        int n = 12;
        if (r->labels) {
            argv[n++] = "--labels";
            argv[n++] = (char *)r->labels;
        }
        if (r->model) {
            argv[n++] = "--model";
            argv[n++] = (char *)r->model;
        }
        argv[n] = NULL;
        ps_supervisor_child *c = ps_supervisor_add(&r->sv, name, false);
        ps_error err = {0};
        if (c == NULL || ps_supervisor_spawn(c, argv, -1, -1, &err) != 0) {
            fail(r, PS_EXIT_RUNTIME, "cannot start part %u: %s", i, err.msg);
            if (c != NULL)
                c->exited = true;
            return -1;
        }
    }
    return 0;
}

/* Until every part has ended: a failure or the timeout stops the rest. */
static void run_parts(predict_run *r)
{
    double t0 = now_s(), stop_at = 0.0;
    bool killed = false;
    while (!ps_supervisor_all_exited(&r->sv, false) || ps_supervisor_outputs_open(&r->sv)) {
        ps_supervisor_poll(&r->sv, -1, 100);
        ps_supervisor_child *c;
        while ((c = ps_supervisor_reap(&r->sv)) != NULL) {
            if (ps_supervisor_clean_exit(c) || stop_at > 0.0)
                continue;
            char how[64];
            ps_supervisor_describe_end(c, how, sizeof how);
            const char *said = r->said[c - r->sv.kids];
            int status = WIFEXITED(c->status) && WEXITSTATUS(c->status) == PS_EXIT_USAGE
                             ? PS_EXIT_USAGE
                             : PS_EXIT_RUNTIME;
            unsigned idx = (unsigned)(c - r->sv.kids);
            if (said[0])
                fail(r, status, "part %u of %u (%s) %s: %s", idx, r->workers, c->name, how, said);
            else
                fail(r, status, "part %u of %u (%s) %s", idx, r->workers, c->name, how);
        }
        double t = now_s();
        if (stop_requested && stop_at == 0.0)
            fail(r, 130, "interrupted");
        if (!r->failed && t - t0 > (double)r->timeout_s)
            fail(r, PS_EXIT_RUNTIME, "the parts did not finish within %ld s (--timeout)",
                 r->timeout_s);
        if (r->failed && stop_at == 0.0) {
            stop_at = t;
            ps_supervisor_stop(&r->sv, false);
        }
        if (stop_at > 0.0 && !killed && t - stop_at > STOP_GRACE_S) {
            ps_supervisor_signal(&r->sv, SIGKILL, false);
            killed = true;
        }
        if (killed && t - stop_at > STOP_GRACE_S + 5.0)
            break; /* a child that outlives SIGKILL: give up on its output */
    }
}

/* Appends file path to f. */
static int append_file(FILE *f, const char *path, ps_error *err)
{
    FILE *in = fopen(path, "rb");
    if (in == NULL)
        return ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, f) != n)
            break;
    int bad = ferror(in) || ferror(f);
    fclose(in);
    return bad ? ps_error_set(err, PS_EIO, "%s: copying failed", path) : 0;
}

/* Reads part i's scores (rows pairs of floats) into scores and labels at. */
static int read_scores(const char *path, uint64_t rows, float *scores, float *labels, ps_error *err)
{
    FILE *in = fopen(path, "rb");
    if (in == NULL)
        return ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
    for (uint64_t i = 0; i < rows; i++) {
        float pair[2];
        if (fread(pair, sizeof pair, 1, in) != 1) {
            fclose(in);
            return ps_error_set(err, PS_EDATA, "%s: fewer than %llu rows", path,
                                (unsigned long long)rows);
        }
        scores[i] = pair[0];
        labels[i] = pair[1];
    }
    fclose(in);
    return 0;
}

/* Joins the parts into the output and the manifest. */
static int join(predict_run *r, double t0, ps_error *err)
{
    ps_report_predict_part *parts = calloc(r->workers, sizeof *parts);
    if (parts == NULL)
        return ps_error_set(err, PS_ENOMEM, "out of memory");
    uint64_t rows = 0, correct = 0;
    double loss = 0.0;
    int rc = 0;
    char path[PATH_MAX + 32], prefix[PATH_MAX + 16];
    for (uint32_t i = 0; rc == 0 && i < r->workers; i++) {
        part_prefix(r, i, prefix, sizeof prefix);
        snprintf(path, sizeof path, "%s.json", prefix);
        rc = ps_report_predict_part_read(path, &parts[i], err);
        if (rc == 0 &&
            (parts[i].version != parts[0].version || parts[i].classes != parts[0].classes ||
             strcmp(parts[i].model, parts[0].model) != 0))
            rc = ps_error_set(err, PS_EDATA, "%s: part %u scored with another model than part 0",
                              path, i);
        rows += parts[i].rows;
        correct += parts[i].correct;
        loss += parts[i].loss_sum;
    }
    float *scores = NULL, *labels = NULL;
    if (rc == 0 && ((scores = malloc((rows ? rows : 1) * sizeof *scores)) == NULL ||
                    (labels = malloc((rows ? rows : 1) * sizeof *labels)) == NULL))
        rc =
            ps_error_set(err, PS_ENOMEM, "out of memory for %llu scores", (unsigned long long)rows);
    ps_report_file out;
    bool open = false;
    if (rc == 0 && (rc = ps_report_file_begin(&out, r->output, err)) == 0) {
        open = true;
        ps_report_predict_header(out.f, parts[0].classes);
    }
    uint64_t at = 0;
    for (uint32_t i = 0; rc == 0 && i < r->workers; i++) {
        part_prefix(r, i, prefix, sizeof prefix);
        snprintf(path, sizeof path, "%s.csv", prefix);
        rc = append_file(out.f, path, err);
        snprintf(path, sizeof path, "%s.scores", prefix);
        if (rc == 0)
            rc = read_scores(path, parts[i].rows, scores + at, labels + at, err);
        at += parts[i].rows;
    }
    if (open && rc == 0)
        rc = ps_report_file_commit(&out, err);
    else if (open)
        ps_report_file_abort(&out);
    ps_report_predict m;
    memset(&m, 0, sizeof m);
    if (rc == 0) {
        snprintf(m.job, sizeof m.job, "%s", parts[0].job);
        snprintf(m.model, sizeof m.model, "%s", parts[0].model);
        snprintf(m.model_dir, sizeof m.model_dir, "%s", parts[0].model_dir);
        m.version = parts[0].version;
        snprintf(m.data, sizeof m.data, "%s", r->data);
        snprintf(m.output, sizeof m.output, "%s", r->output);
        m.rows = rows;
        m.workers = r->workers;
        if (parts[0].classes == 0)
            snprintf(m.columns, sizeof m.columns, "value");
        else if (parts[0].classes == 2)
            snprintf(m.columns, sizeof m.columns, "class,p0,p1");
        else
            snprintf(m.columns, sizeof m.columns, "class,p0,...,p%u", parts[0].classes - 1);
        m.regression = parts[0].classes == 0;
        m.has_auc = parts[0].has_auc != 0;
        double n = (double)rows;
        m.accuracy = m.log_loss = m.auc = m.mse = m.r2 = NAN;
        if (rows > 0 && m.regression) {
            /* as model.c's linear evaluation: R² = 1 − SSE / SST */
            double mean = 0.0, sst = 0.0;
            for (uint64_t i = 0; i < rows; i++)
                mean += labels[i];
            mean /= n;
            for (uint64_t i = 0; i < rows; i++)
                sst += (labels[i] - mean) * (labels[i] - mean);
            m.mse = loss / n;
            m.r2 = sst > 0.0 ? 1.0 - loss / sst : loss == 0.0 ? 1.0 : 0.0;
        } else if (rows > 0) {
            m.accuracy = (double)correct / n;
            m.log_loss = loss / n;
            if (m.has_auc && ps_auc(scores, labels, (size_t)rows, &m.auc) == PS_ENOMEM)
                rc = ps_error_set(err, PS_ENOMEM, "out of memory for the AUC");
        }
        m.wall_s = now_s() - t0;
    }
    char mpath[PATH_MAX + 8];
    if (rc == 0 && snprintf(mpath, sizeof mpath, "%s.json", r->output) >= (int)sizeof mpath)
        rc = ps_error_set(err, PS_EIO, "%s: path too long", r->output);
    if (rc == 0)
        rc = ps_report_predict_write(mpath, &m, err);
    if (rc == 0) {
        char a[32], b[32], c[32];
        printf("psrun: predict: %llu rows with %u worker%s in %.2f s", (unsigned long long)rows,
               r->workers, r->workers == 1 ? "" : "s", m.wall_s);
        if (m.regression)
            printf(": mse %s, r2 %s", ps_report_number_format(m.mse, 4, a, sizeof a),
                   ps_report_number_format(m.r2, 4, b, sizeof b));
        else
            printf(": accuracy %s, log-loss %s",
                   ps_report_number_format(m.accuracy, 4, a, sizeof a),
                   ps_report_number_format(m.log_loss, 4, b, sizeof b));
        if (!m.regression && m.has_auc)
            printf(", auc %s", ps_report_number_format(m.auc, 4, c, sizeof c));
        printf(", model version %llu -> %s\n", (unsigned long long)m.version, r->output);
        ps_stdout_guard_flush(); /* a line lost is said at exit (stdout_guard.h) */
    }
    free(scores);
    free(labels);
    free(parts);
    return rc;
}

static void remove_parts(predict_run *r)
{
    static const char *const ext[] = {"csv", "scores", "json"};
    for (uint32_t i = 0; i < r->workers; i++) {
        char prefix[PATH_MAX + 16], path[PATH_MAX + 32];
        part_prefix(r, i, prefix, sizeof prefix);
        for (size_t k = 0; k < 3; k++) {
            snprintf(path, sizeof path, "%s.%s", prefix, ext[k]);
            unlink(path);
        }
    }
    rmdir(r->tmpdir);
}

enum { OPT_DATA = PS_ARGS_LONG_ONLY, OPT_OUTPUT, OPT_WORKERS, OPT_LABELS, OPT_MODEL, OPT_TIMEOUT };

static int args_parse(predict_run *r, int argc, char **argv)
{
    static const ps_args_option opts[] = {
        {"data", OPT_DATA, true},     {"output", OPT_OUTPUT, true}, {"workers", OPT_WORKERS, true},
        {"labels", OPT_LABELS, true}, {"model", OPT_MODEL, true},   {"timeout", OPT_TIMEOUT, true},
    };
    ps_args p;
    ps_args_init(&p, "psrun predict", usage, opts, PS_ARGS_COUNT(opts), argc, argv);
    r->workers = 1;
    r->timeout_s = PREDICT_TIMEOUT_S;
    long v;
    int c;
    while ((c = ps_args_next(&p)) > 0) {
        switch (c) {
        case OPT_DATA:
            r->data = p.value;
            break;
        case OPT_OUTPUT:
            r->output = p.value;
            break;
        case OPT_WORKERS:
            if (ps_args_number(&p, 1, PS_SUPERVISOR_CHILDREN_MAX, &v) != 0)
                return PS_EXIT_USAGE;
            r->workers = (uint32_t)v;
            break;
        case OPT_LABELS:
            r->labels = p.value;
            break;
        case OPT_MODEL:
            r->model = p.value;
            break;
        case OPT_TIMEOUT:
            if (ps_args_number(&p, 1, 86400 * 7, &v) != 0)
                return PS_EXIT_USAGE;
            r->timeout_s = v;
            break;
        }
    }
    if (c == PS_ARGS_EXIT)
        return p.status;
    if (p.noperands != 1)
        return ps_args_error(&p, "expected one job file, got %d arguments", p.noperands);
    r->job = p.operands[0];
    if (r->data == NULL || r->output == NULL)
        return ps_args_error(&p, "--data FILE and --output FILE are required");
    const char *need[] = {r->job, r->data};
    for (size_t i = 0; i < 2; i++) {
        if (access(need[i], R_OK) != 0) {
            fprintf(stderr, "psrun: %s: cannot open: %s\n", need[i], strerror(errno));
            return PS_EXIT_USAGE;
        }
    }
    /* the predictions and their manifest: checked before any part starts */
    char manifest[PATH_MAX + 8];
    ps_error err = {0};
    if ((size_t)snprintf(manifest, sizeof manifest, "%s.json", r->output) >= sizeof manifest)
        return ps_args_error(&p, "--output: %s: path too long", r->output);
    if (ps_report_file_check(r->output, &err) != 0 || ps_report_file_check(manifest, &err) != 0) {
        fprintf(stderr, "psrun: --output: %s\n", err.msg);
        return PS_EXIT_USAGE;
    }
    return PS_ARGS_GO_ON;
}

int psrun_predict_main(int argc, char **argv, const char *psworker)
{
    static predict_run r;
    int rc = args_parse(&r, argc, argv);
    if (rc != PS_ARGS_GO_ON)
        return rc;
    const char *tmp = getenv("TMPDIR");
    snprintf(r.tmpdir, sizeof r.tmpdir, "%s/psrun-predict.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(r.tmpdir) == NULL) {
        fprintf(stderr, "psrun: cannot make a temporary folder in %s: %s\n",
                tmp && *tmp ? tmp : "/tmp", strerror(errno));
        return PS_EXIT_RUNTIME;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    double t0 = now_s();
    ps_supervisor_init(&r.sv, on_line, &r);
    spawn_parts(&r, psworker);
    run_parts(&r);
    ps_supervisor_fini(&r.sv);
    int status = 0;
    if (r.failed) {
        fprintf(stderr, "psrun: predict failed: %s\n", r.failure);
        status = r.fail_status;
    } else {
        ps_error err = {0};
        if (join(&r, t0, &err) != 0) {
            fprintf(stderr, "psrun: predict failed: %s\n", err.msg);
            status = PS_EXIT_RUNTIME;
        }
    }
    remove_parts(&r);
    return status;
}
