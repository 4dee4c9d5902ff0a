/* psworker_main.c — psworker, the training program: one worker of a job.
 * Reads the job file, trains the built-in model on its shard against the
 * job's servers, and optionally writes a summary JSON for psrun and an SVG
 * of its training curves.
 * Exit: 0 done, 1 runtime error or interrupted, 2 usage or job-file error. */
#include "args.h"
#include "compress.h"
#include "job.h"
#include "launch_env.h"
#include "log.h"
#include "output.h"
#include "predict.h"
#include "report_file.h"
#include "report_number.h"
#include "report_plan.h"
#include "stdout_guard.h"
#include "trainer.h"
#include "util.h"

#include <cblas.h>

#define PS_SUPERVISOR_PARTS_MAX 256 /* psrun's children at most */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_flag;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

typedef struct args {
    const char *config;
    const char *summary_json;
    const char *curves;
    const char *log_level; /* NULL: the job's */
    ps_log_level level;    /* --log-level's, when given */
    const char *servers;   /* --servers, or NULL */
    int rank;
    int progress_fd;
    bool describe;
} args;

static void usage(FILE *out)
{
    fputs("usage: psworker --config JOB.yaml [--rank R] [options]\n"
          "       psworker predict --config JOB.yaml --data FILE --out PREFIX [...]\n"
          "\n"
          "Trains the job's built-in model on this worker's shard of the data against\n"
          "the job's parameter servers (psd).\n"
          "\n"
          "options:\n"
          "  -c, --config FILE        the job file (required)\n"
          "  -r, --rank R             this worker's rank in [0, workers); default: from\n"
          "                           PSD_RANK, SLURM_PROCID, JOB_COMPLETION_INDEX,\n"
          "                           TF_CONFIG, else any free rank the servers assign\n"
          "      --servers EPS        the servers' endpoints, comma-separated, instead\n"
          "                           of PSD_SERVERS or the job's servers\n"
          "  -s, --summary-json FILE  write a summary of the run (final loss, test\n"
          "                           metric, timings) as JSON to FILE\n"
          "      --curves FILE        draw the training loss and test metric per epoch\n"
          "                           as an SVG in FILE at the end\n"
          "  -p, --progress-fd N      write a line 'progress RANK STEP STEPS EPOCH LOSS'\n"
          "                           to file descriptor N after every step\n"
          "  -l, --log-level LEVEL    error, warn, info or debug (default: the job's)\n"
          "  -d, --describe           check the job and print its plan as one JSON object\n"
          "                           (job, mode, workers, servers, ...), then exit\n"
          "  -h, --help               show this help and exit\n"
          "  -V, --version            show the version and exit\n"
          "\n"
          "psworker predict scores one part of a data file with the job's trained\n"
          "model, for psrun predict (psworker predict --help).\n"
          "\n"
          "exit status: 0 done, 1 runtime error or interrupted, 2 usage or job-file error\n",
          out);
}

enum { OPT_CURVES = PS_ARGS_LONG_ONLY, OPT_SERVERS };

/* Parses argv into *a (args.h's convention). PS_ARGS_GO_ON, or the exit
 * status (0 after --help or --version) with a message already printed. */
static int args_parse(int argc, char **argv, args *a)
{
    static const ps_args_option opts[] = {
        {"config", 'c', true},       {"rank", 'r', true},
        {"summary-json", 's', true}, {"curves", OPT_CURVES, true},
        {"progress-fd", 'p', true},  {"log-level", 'l', true},
        {"describe", 'd', false},    {"servers", OPT_SERVERS, true},
    };
    ps_args p;
    ps_args_init(&p, "psworker", usage, opts, PS_ARGS_COUNT(opts), argc, argv);
    memset(a, 0, sizeof *a);
    a->rank = -1;
    a->progress_fd = -1;
    int c;
    long v;
    while ((c = ps_args_next(&p)) > 0) {
        switch (c) {
        case 'c':
            a->config = p.value;
            break;
        case 'r':
            if (ps_args_number(&p, 0, PS_MAX_WORKERS - 1, &v) != 0)
                return PS_EXIT_USAGE;
            a->rank = (int)v;
            break;
        case 's':
            a->summary_json = p.value;
            break;
        case OPT_SERVERS:
            a->servers = p.value;
            break;
        case OPT_CURVES:
            a->curves = p.value;
            break;
        case 'p':
            if (ps_args_number(&p, 0, INT_MAX, &v) != 0)
                return PS_EXIT_USAGE;
            a->progress_fd = (int)v;
            break;
        case 'l':
            if (ps_log_level_parse(p.value, &a->level) != 0)
                return ps_args_error(&p,
                                     "--log-level: must be one of error, warn, info or debug, "
                                     "got %s",
                                     p.value);
            a->log_level = p.value;
            break;
        case 'd':
            a->describe = true;
            break;
        }
    }
    return ps_args_end_config(&p, c, a->config);
}

static void signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    /* no SA_RESTART: a blocking poll returns EINTR and the loop sees the flag */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* --describe: the job's plan for psrun, report_plan.h's plan JSON on stdout. */
static int describe(const ps_job *job)
{
    ps_error err;
    /* a job whose workers are a command of its own: they train it, not psworker */
    int rc = job->worker.argc > 0 ? 0 : ps_trainer_check_job(job, &err);
    if (rc != 0) {
        fprintf(stderr, "psworker: %s\n", err.msg);
        return rc == PS_ENOMEM ? PS_EXIT_RUNTIME : PS_EXIT_USAGE;
    }
    ps_tensor_info tensors[PS_MAX_TENSORS];
    size_t ntensors = 0;
    uint64_t num_params = 0;
    if (ps_job_layout(job, tensors, PS_MAX_TENSORS, &ntensors, &num_params) != 0) {
        fprintf(stderr, "psworker: %s: the model's parameters do not fit\n", job->path);
        return PS_EXIT_USAGE;
    }
    ps_report_plan plan;
    memset(&plan, 0, sizeof plan);
    ps_strlcpy(plan.job, job->name, sizeof plan.job);
    ps_strlcpy(plan.mode, ps_mode_name(job->mode), sizeof plan.mode);
    plan.workers = job->workers;
    plan.nservers = job->nservers;
    for (uint32_t i = 0; i < job->nservers; i++)
        ps_strlcpy(plan.servers[i], job->servers[i], sizeof plan.servers[i]);
    ps_strlcpy(plan.on_worker_loss, job->on_worker_loss == PS_LOSS_ABORT ? "abort" : "continue",
               sizeof plan.on_worker_loss);
    ps_strlcpy(plan.on_divergence, job->on_divergence == PS_DIVERGE_STOP ? "stop" : "continue",
               sizeof plan.on_divergence);
    ps_strlcpy(plan.model, ps_model_type_name(job->model.type), sizeof plan.model);
    plan.features = job->model.features;
    plan.params = num_params;
    plan.epochs = job->training.epochs;
    plan.batch_size = job->training.batch_size;
    ps_strlcpy(plan.output, job->output, sizeof plan.output);
    ps_strlcpy(plan.compression, ps_compress_ops_get(job->compression.push)->name,
               sizeof plan.compression);
    _Static_assert(PS_REPORT_COMMAND_MAX >= PS_WORKER_ARGS_MAX, "worker.command items");
    _Static_assert(PS_REPORT_PATH_MAX >= PS_PATH_MAX, "worker.command item");
    plan.ncommand = job->worker.argc;
    for (uint32_t i = 0; i < job->worker.argc; i++)
        ps_strlcpy(plan.command[i], job->worker.argv[i], sizeof plan.command[i]);
    rc = ps_report_plan_write(stdout, &plan);
    if (rc != 0 || fflush(stdout) != 0) {
        fprintf(stderr, "psworker: --describe: %s\n", ps_strerror(rc ? rc : PS_EIO));
        return PS_EXIT_RUNTIME;
    }
    return 0;
}

/* ---- psworker predict: one part of psrun predict (predict.h) ---- */

static void predict_usage(FILE *out)
{
    fputs("usage: psworker predict --config JOB.yaml --data FILE --out PREFIX\n"
          "                        [--part I --parts N] [--labels FILE] [--model DIR]\n"
          "\n"
          "Scores rows [I*n/N, (I+1)*n/N) of FILE (the job's data.format, preprocessed\n"
          "as the training was) with the model in the job's output folder, and writes\n"
          "PREFIX.csv (one line a row, no header), PREFIX.scores and PREFIX.json.\n"
          "psrun predict runs N of these and joins them.\n"
          "\n"
          "  -c, --config FILE  the job file (required)\n"
          "      --data FILE    the data file to score (required)\n"
          "      --out PREFIX   where the part's files go (required)\n"
          "      --part I       this part, in [0, N) (default 0)\n"
          "      --parts N      how many parts the rows are split into (default 1)\n"
          "      --labels FILE  idx: the labels file (default: from FILE's name)\n"
          "      --model DIR    the model folder (default: the job's output)\n"
          "  -h, --help         show this help and exit\n"
          "\n"
          "exit status: 0 done, 1 runtime error (model, data), 2 usage or job-file error\n",
          out);
}

enum {
    OPT_P_DATA = PS_ARGS_LONG_ONLY,
    OPT_P_OUT,
    OPT_P_PART,
    OPT_P_PARTS,
    OPT_P_LABELS,
    OPT_P_MODEL
};

static int predict_main(int argc, char **argv)
{
    static const ps_args_option opts[] = {
        {"config", 'c', true},        {"data", OPT_P_DATA, true},   {"out", OPT_P_OUT, true},
        {"part", OPT_P_PART, true},   {"parts", OPT_P_PARTS, true}, {"labels", OPT_P_LABELS, true},
        {"model", OPT_P_MODEL, true},
    };
    ps_args p;
    ps_args_init(&p, "psworker predict", predict_usage, opts, PS_ARGS_COUNT(opts), argc, argv);
    const char *config = NULL;
    ps_predict_opts o = {.parts = 1, .stop = &stop_flag};
    long v;
    int c;
    while ((c = ps_args_next(&p)) > 0) {
        switch (c) {
        case 'c':
            config = p.value;
            break;
        case OPT_P_DATA:
            o.data = p.value;
            break;
        case OPT_P_OUT:
            o.out = p.value;
            break;
        case OPT_P_PART:
            if (ps_args_number(&p, 0, PS_SUPERVISOR_PARTS_MAX - 1, &v) != 0)
                return PS_EXIT_USAGE;
            o.part = (uint32_t)v;
            break;
        case OPT_P_PARTS:
            if (ps_args_number(&p, 1, PS_SUPERVISOR_PARTS_MAX, &v) != 0)
                return PS_EXIT_USAGE;
            o.parts = (uint32_t)v;
            break;
        case OPT_P_LABELS:
            o.labels = p.value;
            break;
        case OPT_P_MODEL:
            o.model = p.value;
            break;
        }
    }
    int status = ps_args_end_config(&p, c, config);
    if (status != PS_ARGS_GO_ON)
        return status;
    if (o.data == NULL || o.out == NULL)
        return ps_args_error(&p, "--data and --out are required");
    if (o.part >= o.parts)
        return ps_args_error(&p, "--part %u is outside [0, %u)", o.part, o.parts);
    ps_error err;
    ps_error_clear(&err);
    /* the part's three files, checked before any row is scored */
    static const char *const ext[] = {".csv", ".scores", ".json"};
    for (size_t i = 0; i < 3; i++) {
        char path[PATH_MAX];
        if ((size_t)snprintf(path, sizeof path, "%s%s", o.out, ext[i]) >= sizeof path)
            return ps_args_error(&p, "--out: %s: path too long", o.out);
        if (ps_report_file_check(path, &err) != 0) {
            fprintf(stderr, "psworker: --out: %s\n", err.msg);
            return PS_EXIT_USAGE;
        }
    }
    ps_job job;
    if (ps_job_load(config, &job, &err) != 0) {
        fprintf(stderr, "psworker: %s\n", err.msg);
        return PS_EXIT_USAGE;
    }
    signals_install();
    int rc = ps_predict_part(&job, &o, &err);
    if (rc != 0) {
        fprintf(stderr, "psworker: %s\n", rc == PS_EINTR ? "interrupted" : err.msg);
        return PS_EXIT_RUNTIME;
    }
    return 0;
}

/* Exit status for an error of ps_trainer_new (started false) or of
 * ps_trainer_run (started true): 0 when the servers said the job is
 * complete, 2 when the job file is at fault (also when it does not match
 * the servers' job: workers, model size, mode), 1 for any other failure (a
 * stopped server, an aborted job, divergence). */
static int exit_status_of(int code, bool started)
{
    if (started && code == PS_ECOMPLETE)
        return 0;
    return code == PS_ECONFIG || code == PS_EUNSUPPORTED ? PS_EXIT_USAGE : PS_EXIT_RUNTIME;
}

static void log_result(const ps_log *lg, const ps_train_result *r)
{
    char test[160] = "", loss[32], metric[32], tloss[32], tauc[32], auc[48] = "";
    ps_report_number_format(r->final_loss, 4, loss, sizeof loss);
    if (r->has_test && r->has_auc)
        snprintf(auc, sizeof auc, ", test auc %s",
                 ps_report_number_format(r->test.auc, 4, tauc, sizeof tauc));
    if (r->has_test)
        snprintf(test, sizeof test, ", test %s %s, test %s %s%s", r->metric_name,
                 ps_report_number_format(r->test.metric, 4, metric, sizeof metric),
                 strcmp(r->loss_name, "log_loss") == 0 ? "log-loss" : r->loss_name,
                 ps_report_number_format(r->test.loss, 4, tloss, sizeof tloss), auc);
    PS_LOG_I(lg, "done: rank %u, final loss %s%s, version %llu, %.2f s, %.0f samples/s", r->rank,
             loss, test, (unsigned long long)r->version, r->wall_s, r->samples_per_s);
}

/* The summary and the curves, each asked for; a file that cannot be
 * written is one line naming it and exit status 1. */
static int write_results(const args *a, const ps_job *job, const ps_train_result *res)
{
    ps_error err;
    int status = 0;
    if (a->summary_json && ps_train_result_write_json(res, job->name, a->summary_json, &err) != 0) {
        fprintf(stderr, "psworker: %s\n", err.msg);
        status = PS_EXIT_RUNTIME;
    }
    const char *codec = ps_compress_ops_get(job->compression.push)->name;
    if (a->curves && ps_train_result_write_curves(res, job->name, codec, a->curves, &err) != 0) {
        fprintf(stderr, "psworker: %s\n", err.msg);
        status = PS_EXIT_RUNTIME;
    }
    return status;
}

/* The files this worker will write, checked before it trains
 * (report_file.h): --summary-json and --curves, and the model files in the
 * job's output folder (for a job psworker trains). 0, or PS_EXIT_USAGE
 * with one line said. */
static int outputs_check(const args *a, const ps_job *job)
{
    const char *what[] = {"--summary-json", "--curves"};
    const char *paths[] = {a->summary_json, a->curves};
    ps_error err;
    ps_error_clear(&err);
    for (size_t i = 0; i < 2; i++) {
        if (paths[i] != NULL && ps_report_file_check(paths[i], &err) != 0) {
            fprintf(stderr, "psworker: %s: %s\n", what[i], err.msg);
            return PS_EXIT_USAGE;
        }
    }
    ps_tensor_info tensors[PS_MAX_TENSORS];
    size_t ntensors = 0;
    uint64_t num_params = 0;
    /* a layout that does not fit is said by --describe and the trainer */
    if (job->output[0] == '\0' || job->worker.argc > 0 ||
        ps_job_layout(job, tensors, PS_MAX_TENSORS, &ntensors, &num_params) != 0)
        return 0;
    bool sparse = ps_job_is_sparse(job);
    bool norm = !sparse && job->data.normalize == PS_NORMALIZE_STANDARD;
    if (ps_output_model_check(job->output, tensors, ntensors, norm, sparse, &err) != 0) {
        fprintf(stderr, "psworker: output: %s\n", err.msg);
        return PS_EXIT_USAGE;
    }
    return 0;
}

int main(int argc, char **argv)
{
    ps_stdout_guard_install("psworker");
    ps_malloc_tune();
    /* One BLAS thread per worker: psrun runs a worker per core, and at the
     * batch sizes we train with a second thread costs more in hand-offs than
     * it gains (measured). OPENBLAS_NUM_THREADS in the environment wins. */
    if (getenv("OPENBLAS_NUM_THREADS") == NULL)
        openblas_set_num_threads(1);
    if (argc > 1 && strcmp(argv[1], "predict") == 0)
        return predict_main(argc - 1, argv + 1);
    args a;
    int status = args_parse(argc, argv, &a);
    if (status != PS_ARGS_GO_ON)
        return status;

    /* --servers beats PSD_SERVERS: the loader reads it there */
    if (a.servers != NULL && setenv("PSD_SERVERS", a.servers, 1) != 0) {
        fprintf(stderr, "psworker: cannot set PSD_SERVERS\n");
        return PS_EXIT_RUNTIME;
    }
    ps_job job; /* read-only after loading */
    ps_error err;
    ps_error_clear(&err);
    if (ps_job_load(a.config, &job, &err) != 0 ||
        ps_job_check_writable(&job, PS_JOB_FOLDER_OUTPUT, &err) != 0) {
        fprintf(stderr, "psworker: %s\n", err.msg);
        return PS_EXIT_USAGE;
    }
    status = outputs_check(&a, &job);
    if (status != 0)
        return status;
    if (a.describe)
        return describe(&job);
    ps_log lg = {.level = a.log_level != NULL ? a.level : job.log_level, .prog = "psworker"};
    char from[32] = "";
    if (a.rank < 0) {
        if (ps_launch_rank(&job, &a.rank, from, sizeof from, &err) != 0) {
            fprintf(stderr, "psworker: %s\n", err.msg);
            return PS_EXIT_USAGE;
        }
        if (a.rank >= 0)
            PS_LOG_I(&lg, "rank %d from %s", a.rank, from);
    }
    if (a.rank >= 0 && (uint32_t)a.rank >= job.workers) {
        fprintf(stderr, "psworker: --rank %d is outside [0, %u): the job has %u workers\n", a.rank,
                job.workers, job.workers);
        return PS_EXIT_USAGE;
    }
    if (a.progress_fd >= 0 && fcntl(a.progress_fd, F_GETFD) < 0) {
        fprintf(stderr, "psworker: --progress-fd %d is not an open file descriptor\n",
                a.progress_fd);
        return PS_EXIT_USAGE;
    }
    signals_install();

    ps_trainer_opts opts = {
        .rank = a.rank,
        .progress_fd = a.progress_fd,
        .tty = isatty(STDERR_FILENO) == 1,
        .log = &lg,
        .stop = &stop_flag,
    };
    ps_trainer *t = NULL;
    int rc = ps_trainer_new(&job, &opts, &t, &err);
    if (rc != 0) {
        fprintf(stderr, "psworker: %s\n", err.msg);
        return exit_status_of(rc, false);
    }
    static ps_train_result res; /* large (PS_MAX_WORKERS ranks): off the stack */
    rc = ps_trainer_run(t, &res, &err);
    if (rc != 0) { /* one line: why it ended */
        ps_trainer_destroy(&t);
        fprintf(stderr, "psworker: %s\n", rc == PS_EINTR ? "interrupted" : err.msg);
        return exit_status_of(rc, true);
    }
    log_result(&lg, &res);
    status = write_results(&a, &job, &res);
    ps_trainer_destroy(&t); /* res's per-epoch figures are the trainer's */
    return status;
}
