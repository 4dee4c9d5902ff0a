/* psrun.c — the one-machine launcher (docs/architecture.md#processes). Starts a job's shards and
 * workers as child processes on loopback, forwards their logs line by line
 * with a prefix, draws one overall progress line on a TTY, prints a summary
 * and exits non-zero if any process failed. What it learns from the other
 * programs comes in documented formats (common/report_*.h), never from their
 * logs: the plan from `psworker --describe`, each shard's readiness and stop
 * from sd_notify datagrams on a socket of its own, progress from the
 * workers' fd 3 and their summaries as JSON. The children are supervise.h's
 * and the progress line runbar.h's; here is what the job makes of them:
 * read the plan, start the servers, start the workers once the servers are
 * ready, run the loop until every process has ended, summarise. */
#include "args.h"
#include "predict.h"
#include "report_curves.h"
#include "report_file.h"
#include "report_job.h"
#include "report_notify.h"
#include "report_number.h"
#include "report_plan.h"
#include "report_summary.h"
#include "runbar.h"
#include "stdout_guard.h"
#include "supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN           PS_SUPERVISOR_CHILDREN_MAX
#define SERVER_START_TIMEOUT_S 20.0
#define STOP_GRACE_S           10.0
/* A worker that failed is judged this long after: a psd that stops the job
 * (divergence, abort) says so meanwhile, and workers that fail together
 * (say, fewer rows than workers) are named in one line. */
#define LOSS_VERDICT_S 2.0
#define PROGRESS_FD    3 /* the fd a worker writes its progress lines to */

/* What psrun makes of a worker that failed, by child: judged LOSS_VERDICT_S
 * after its end (see above). */
typedef struct worker_loss {
    bool pending;
    double failed_at;
    bool lost; /* the job went on without it */
} worker_loss;

typedef enum phase { PHASE_SERVERS, PHASE_WORKERS, PHASE_STOPPING } phase;

typedef struct psrun {
    const char *job_path;
    const char *summary_json;
    const char *curves;           /* the SVG of the training curves, or NULL */
    char curves_beside[PATH_MAX]; /* X.svg beside --summary-json X.json */
    char bindir[PATH_MAX];
    char tmpdir[PATH_MAX];
    ps_report_plan plan;
    ps_supervisor sv;
    worker_loss losses[MAX_CHILDREN]; /* by the child's index in sv.kids */
    int progress_rd, progress_wr;     /* the workers' shared progress pipe */
    ps_runbar bar;
    bool failed;
    char failure[PS_REPORT_STATUS_MAX + 64];
    /* a server ended the job as incomplete by itself (psd exit 3), and why */
    bool server_incomplete;
    char server_incomplete_why[PS_REPORT_STATUS_MAX + 32];
    phase phase;
    double t_start, t_phase, t_stop_sent;
} psrun;

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
    fprintf(out, "usage: psrun [options] JOB.yaml\n"
                 "       psrun predict JOB.yaml --data FILE --output PREDS.csv [--workers N]\n"
                 "Runs a whole psd job on this machine: one psd per shard and the job's\n"
                 "workers, on loopback; prints a summary at the end. psrun predict scores\n"
                 "a data file with the job's trained model (psrun predict --help).\n"
                 "\n"
                 "  --summary-json FILE  write the summary as JSON to FILE, and the training\n"
                 "                       curves as an SVG beside it (FILE without .json, .svg)\n"
                 "  --curves FILE        write the training curves (loss and test metric per\n"
                 "                       epoch, a line per worker) as an SVG to FILE\n"
                 "  -h, --help           show this help\n"
                 "  -V, --version        show the version\n"
                 "\n"
                 "exit status: 0 done, 1 a process failed or psd stopped the job,\n"
                 "2 usage or job-file error, 3 the job is incomplete (a worker left before\n"
                 "its data was trained: the others finished without it), 130 interrupted\n");
}

/* The folder psrun itself lives in: psd and psworker are looked up there
 * first, then on PATH. */
static void find_bindir(char *out, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    out[0] = '\0';
    if (n <= 0)
        return;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL)
        return;
    *slash = '\0';
    snprintf(out, cap, "%s", self);
}

/* Full path of program `name`: beside psrun when there, else the bare name
 * for execvp to find on PATH. */
static void program_path(const psrun *r, const char *name, char *out, size_t cap)
{
    if (r->bindir[0]) {
        int n = snprintf(out, cap, "%s/%s", r->bindir, name);
        if (n > 0 && (size_t)n < cap && access(out, X_OK) == 0)
            return;
    }
    snprintf(out, cap, "%s", name);
}

/* Prints what `psworker --describe` wrote to stderr (a file): its own
 * "psworker: " errors are psrun's to report, so they say "psrun: "; any
 * other line (a sanitizer report) passes unchanged. */
static void relay_describe_errors(const char *path)
{
    static const char prefix[] = "psworker: ";
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0) {
        if (strncmp(line, prefix, sizeof prefix - 1) == 0)
            fprintf(stderr, "psrun: %s", line + sizeof prefix - 1);
        else
            fputs(line, stderr);
    }
    free(line);
    fclose(f);
    unlink(path);
}

/* Runs `psworker --config JOB --describe` and reads its plan (report_plan.h).
 * Returns 0, or the exit status to leave with: 2 for a job-file error. */
static int read_plan(psrun *r)
{
    char prog[PATH_MAX], errpath[PATH_MAX + 32];
    program_path(r, "psworker", prog, sizeof prog);
    snprintf(errpath, sizeof errpath, "%s/describe.err", r->tmpdir);
    int errfd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int fds[2];
    if (errfd < 0 || pipe2(fds, O_CLOEXEC) != 0) {
        fprintf(stderr, "psrun: %s: %s\n", errfd < 0 ? errpath : "pipe", strerror(errno));
        if (errfd >= 0)
            close(errfd);
        return PS_EXIT_RUNTIME;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "psrun: fork: %s\n", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        close(errfd);
        return PS_EXIT_RUNTIME;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        dup2(errfd, STDERR_FILENO);
        execlp(prog, prog, "--config", r->job_path, "--describe", (char *)NULL);
        fprintf(stderr, "psrun: cannot run %s: %s\n", prog, strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    close(errfd);
    ps_error err = {0};
    char what[PATH_MAX + 32];
    snprintf(what, sizeof what, "%s --describe", prog);
    int rc = ps_report_plan_read_fd(fds[0], what, &r->plan, &err);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    relay_describe_errors(errpath);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return WIFEXITED(status) && WEXITSTATUS(status) == PS_EXIT_USAGE ? PS_EXIT_USAGE
                                                                         : PS_EXIT_RUNTIME;
    if (rc != 0) {
        fprintf(stderr, "psrun: %s\n", err.msg);
        return PS_EXIT_RUNTIME;
    }
    if (r->plan.workers + r->plan.nservers > MAX_CHILDREN) {
        fprintf(stderr,
                "psrun: %s: %u workers and %u servers are more than one machine runs "
                "(limit %d processes)\n",
                r->job_path, r->plan.workers, r->plan.nservers, MAX_CHILDREN);
        return PS_EXIT_USAGE;
    }
    return 0;
}

static ps_supervisor_child *kid(psrun *r, int i)
{
    return &r->sv.kids[i];
}

static worker_loss *loss_of(psrun *r, const ps_supervisor_child *c)
{
    return &r->losses[c - r->sv.kids];
}

/* A line a child wrote, forwarded with its name (supervise.h's on_line). */
static void forward_line(void *arg, ps_supervisor_child *c, const char *line)
{
    psrun *r = arg;
    ps_runbar_clear(&r->bar);
    fprintf(stderr, "[%s] %s\n", c->name, line);
}

static void fail(psrun *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records the first failure; later ones are consequences of it. */
static void fail(psrun *r, const char *fmt, ...)
{
    if (r->failed)
        return;
    r->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->failure, sizeof r->failure, fmt, ap);
    va_end(ap);
}

/* The server that stopped the job by itself, or NULL. */
static const ps_supervisor_child *server_stopped_alone(const psrun *r)
{
    for (int i = 0; i < r->sv.nkids; i++)
        if (r->sv.kids[i].is_server && r->sv.kids[i].stopped_alone)
            return &r->sv.kids[i];
    return NULL;
}

/* The job failed because a server stopped it: say why in its words. */
static void fail_server_stop(psrun *r, const ps_supervisor_child *c, const char *how)
{
    if (c->stop_reason[0])
        fail(r, "%s: %s", c->name, c->stop_reason);
    else
        fail(r, "%s stopped the job and %s", c->name, how);
}

static void begin_stop(psrun *r)
{
    if (r->phase == PHASE_STOPPING)
        return;
    r->phase = PHASE_STOPPING;
    r->t_stop_sent = now_s();
    ps_supervisor_stop(&r->sv, false);
}

/* True while some worker runs, or one finished its training: the job can
 * go on (or went on) without a worker that failed. */
static bool job_goes_on(psrun *r)
{
    for (int i = 0; i < r->sv.nkids; i++) {
        const ps_supervisor_child *c = kid(r, i);
        if (!c->is_server && !loss_of(r, c)->pending && (!c->exited || ps_supervisor_clean_exit(c)))
            return true;
    }
    return false;
}

/* Judges the workers that failed: LOSS_VERDICT_S after their end, or at
 * once when `now` (every worker has ended). A server that stopped the job
 * meanwhile explains them; with on_worker_loss continue and others going on
 * the job goes on without them, said in one line; otherwise the job fails. */
static void judge_failed_workers(psrun *r, bool now)
{
    double t = now_s();
    ps_supervisor_child *first = NULL;
    char names[256] = "";
    size_t len = 0;
    int n = 0;
    for (int i = 0; i < r->sv.nkids; i++) {
        ps_supervisor_child *c = kid(r, i);
        worker_loss *l = loss_of(r, c);
        if (!l->pending || (!now && t - l->failed_at < LOSS_VERDICT_S))
            continue;
        l->pending = false;
        if (first == NULL)
            first = c;
        if (len < sizeof names)
            len +=
                (size_t)snprintf(names + len, sizeof names - len, "%s%s", n ? ", " : "", c->name);
        n++;
        l->lost = true;
    }
    if (first == NULL)
        return;
    char how[64];
    ps_supervisor_describe_end(first, how, sizeof how);
    const ps_supervisor_child *stopper = server_stopped_alone(r);
    if (stopper != NULL) {
        fail_server_stop(r, stopper, how);
        return;
    }
    bool continue_on_loss = strcmp(r->plan.on_worker_loss, "abort") != 0;
    if (continue_on_loss && r->phase == PHASE_WORKERS && job_goes_on(r)) {
        ps_runbar_clear(&r->bar);
        fprintf(stderr, "psrun: %s %s: the job goes on without %s (on_worker_loss: continue)\n",
                names, n == 1 ? how : "failed", n == 1 ? "it" : "them");
        return;
    }
    for (int i = 0; i < r->sv.nkids; i++)
        r->losses[i].lost = false; /* the job fails: nobody was left behind */
    if (n == 1)
        fail(r, "%s %s", first->name, how);
    else
        fail(r, "%s failed (%s %s)", names, first->name, how);
}

/* What each child that ended means for the job. */
static void reap(psrun *r)
{
    /* a server's STOPPING=1 was sent before its workers could end: read it
     * before judging their ends */
    ps_supervisor_notify_read(&r->sv);
    ps_supervisor_child *c;
    while ((c = ps_supervisor_reap(&r->sv)) != NULL) {
        bool stopping = r->phase == PHASE_STOPPING;
        bool clean = ps_supervisor_clean_exit(c);
        if (stopping && WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGTERM)
            clean = true; /* we asked it to stop */
        if (stop_requested || clean)
            continue; /* a server exits 0 by itself once every worker left */
        if (c->is_server && WIFEXITED(c->status) && WEXITSTATUS(c->status) == PS_EXIT_INCOMPLETE) {
            /* psd ended the job as incomplete: the verdict says so */
            r->server_incomplete = true;
            snprintf(r->server_incomplete_why, sizeof r->server_incomplete_why, "%s: %s", c->name,
                     c->stop_reason[0] ? c->stop_reason : "the job is incomplete");
            continue;
        }
        char how[64];
        ps_supervisor_describe_end(c, how, sizeof how);
        if (c->is_server && c->stopped_alone)
            fail_server_stop(r, c, how);
        else if (c->is_server)
            fail(r, "%s %s", c->name, how);
        else if (stopping)
            continue; /* a consequence of the failure that stops the job */
        else {
            loss_of(r, c)->pending = true;
            loss_of(r, c)->failed_at = now_s();
        }
    }
}

static int start_servers(psrun *r)
{
    char prog[PATH_MAX];
    program_path(r, "psd", prog, sizeof prog);
    for (uint32_t i = 0; i < r->plan.nservers; i++) {
        char name[16], shard[16];
        snprintf(name, sizeof name, "psd%u", i);
        snprintf(shard, sizeof shard, "%u", i);
        char *argv[] = {prog, "--config", (char *)r->job_path, "--shard", shard, "--exit-when-done",
                        NULL};
        ps_supervisor_child *c = ps_supervisor_add(&r->sv, name, true);
        ps_error err = {0};
        if (c == NULL)
            return -1; /* read_plan counted the processes */
        if (ps_supervisor_notify_open(c, r->tmpdir, i, &err) != 0 ||
            ps_supervisor_spawn(c, argv, -1, -1, &err) != 0) {
            fprintf(stderr, "psrun: %s\n", err.msg);
            c->exited = true;
            return -1;
        }
    }
    return 0;
}

/* The job's worker.command (the plan's), run in the job's folder, instead
 * of psworker; NULL when psworker trains. */
static char **worker_command(psrun *r, char *const *psworker_argv)
{
    static char *argv[PS_REPORT_COMMAND_MAX + 1];
    if (r->plan.ncommand == 0)
        return (char **)psworker_argv;
    for (uint32_t k = 0; k < r->plan.ncommand; k++)
        argv[k] = r->plan.command[k];
    argv[r->plan.ncommand] = NULL;
    return argv;
}

static int start_workers(psrun *r)
{
    static char job_dir[PATH_MAX]; /* the spawned children's c->cwd */
    char prog[PATH_MAX], job_abs[PATH_MAX];
    program_path(r, "psworker", prog, sizeof prog);
    /* PSD_JOB and PSD_RANK: how a worker command finds its job and rank */
    if (realpath(r->job_path, job_abs) == NULL)
        snprintf(job_abs, sizeof job_abs, "%s", r->job_path);
    setenv("PSD_JOB", job_abs, 1);
    snprintf(job_dir, sizeof job_dir, "%s", job_abs);
    char *slash = strrchr(job_dir, '/');
    if (slash != NULL)
        *(slash == job_dir ? slash + 1 : slash) = '\0';
    for (uint32_t i = 0; i < r->plan.workers; i++) {
        char name[16], rank[16], summary[PATH_MAX + 32], fd[16];
        snprintf(name, sizeof name, "w%u", i);
        snprintf(rank, sizeof rank, "%u", i);
        snprintf(summary, sizeof summary, "%s/w%u.json", r->tmpdir, i);
        snprintf(fd, sizeof fd, "%d", PROGRESS_FD);
        char *argv[] = {prog,
                        "--config",
                        (char *)r->job_path,
                        "--rank",
                        rank,
                        "--summary-json",
                        summary,
                        "--progress-fd",
                        fd,
                        NULL};
        ps_supervisor_child *c = ps_supervisor_add(&r->sv, name, false);
        ps_error err = {0};
        if (c == NULL)
            return -1;
        setenv("PSD_RANK", rank, 1);
        c->cwd = r->plan.ncommand > 0 ? job_dir : NULL;
        if (ps_supervisor_spawn(c, worker_command(r, argv), r->progress_wr, PROGRESS_FD, &err) !=
            0) {
            fprintf(stderr, "psrun: %s\n", err.msg);
            c->exited = true;
            return -1;
        }
    }
    return 0;
}

/* The servers that have not said READY=1, for the timeout's message. */
static void servers_not_ready(const psrun *r, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < r->sv.nkids && len < cap; i++)
        if (r->sv.kids[i].is_server && !r->sv.kids[i].ready)
            len +=
                (size_t)snprintf(out + len, cap - len, "%s%s", len ? ", " : "", r->sv.kids[i].name);
}

static bool servers_ready(const psrun *r)
{
    for (int i = 0; i < r->sv.nkids; i++)
        if (r->sv.kids[i].is_server && !r->sv.kids[i].ready)
            return false;
    return true;
}

/* Moves the job along: servers ready -> workers started -> workers done ->
 * servers stopped; a failure or a signal stops everything. */
static void advance(psrun *r)
{
    double t = now_s();
    if (stop_requested && r->phase != PHASE_STOPPING) {
        ps_runbar_clear(&r->bar);
        fprintf(stderr, "psrun: interrupted, stopping every process\n");
        begin_stop(r);
    }
    if (r->phase == PHASE_WORKERS)
        judge_failed_workers(r, ps_supervisor_all_exited(&r->sv, true));
    if (r->failed && r->phase != PHASE_STOPPING)
        begin_stop(r);
    switch (r->phase) {
    case PHASE_SERVERS:
        if (servers_ready(r)) {
            r->phase = PHASE_WORKERS;
            r->t_phase = t;
            if (start_workers(r) != 0) {
                fail(r, "could not start the workers");
                begin_stop(r);
            }
        } else if (t - r->t_phase > SERVER_START_TIMEOUT_S) {
            char names[128];
            servers_not_ready(r, names, sizeof names);
            fail(r, "%s did not say READY=1 within %d s", names, (int)SERVER_START_TIMEOUT_S);
            begin_stop(r);
        }
        break;
    case PHASE_WORKERS:
        if (ps_supervisor_all_exited(&r->sv, true)) {
            r->phase = PHASE_STOPPING;
            r->t_stop_sent = t;
            ps_supervisor_stop(&r->sv, true);
        }
        break;
    case PHASE_STOPPING:
        if (t - r->t_stop_sent > STOP_GRACE_S)
            ps_supervisor_signal(&r->sv, SIGKILL, false);
        break;
    }
}

/* Until every process has ended and said all it had to say. */
static void run_loop(psrun *r)
{
    r->phase = PHASE_SERVERS;
    r->t_phase = now_s();
    while (!ps_supervisor_all_exited(&r->sv, false) || ps_supervisor_outputs_open(&r->sv)) {
        if (ps_supervisor_poll(&r->sv, r->progress_rd, 100))
            ps_runbar_read(&r->bar, r->progress_rd);
        reap(r);
        advance(r);
        /* redrawn at once after forwarded lines, so it stays at the bottom */
        if (r->phase == PHASE_WORKERS)
            ps_runbar_draw(&r->bar, now_s());
    }
    ps_runbar_clear(&r->bar);
}

/* The test figure's name as a person reads it: "log-loss", "accuracy". */
static const char *figure_display_name(const char *name)
{
    return strcmp(name, "log_loss") == 0 ? "log-loss" : name;
}

/* Worker i's summary (w owns its curves then); -1 with one line when it
 * wrote none that reads. */
static int worker_summary_read(const psrun *r, uint32_t i, ps_report_summary *w)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/w%u.json", r->tmpdir, i);
    ps_error err = {0};
    if (ps_report_summary_read(path, w, &err) != 0) {
        fprintf(stderr, "psrun: w%u wrote no summary: %s\n", i, err.msg);
        return -1;
    }
    return 0;
}

/* Names, at the end of the job's line, each rank more than
 * PS_REPORT_DROPPED_SHARE percent of whose rounds closed without its push
 * (backup workers; report_limits.h): most of its data did not train the
 * model. */
static void dropped_say(const ps_report_summary *job)
{
    uint32_t named[PS_REPORT_RANKS_MAX];
    uint32_t n = ps_report_summary_dropped_ranks(job, named, PS_REPORT_RANKS_MAX);
    for (uint32_t i = 0; i < n && i < PS_REPORT_RANKS_MAX; i++) {
        const ps_report_rank *k = NULL;
        for (uint32_t j = 0; j < job->nranks && k == NULL; j++)
            if (job->ranks[j].rank == named[i])
                k = &job->ranks[j];
        if (k != NULL)
            printf("; rank %u pushed into %llu of %llu rounds (%llu of its pushes dropped as "
                   "late, backup_workers): most of its data did not train the model",
                   k->rank, (unsigned long long)k->pushes, (unsigned long long)k->rounds,
                   (unsigned long long)k->dropped);
    }
}

/* The job's summary from the workers' that finished (ps_report_job_*;
 * *job owns its curves then, also on an error), and the job's line. */
static int summarise(psrun *r, double wall_s, ps_report_summary *job)
{
    ps_report_job_sum sum;
    ps_report_job_begin(job, &sum);
    for (uint32_t i = 0; i < r->plan.workers; i++) {
        if (r->losses[r->plan.nservers + i].lost)
            continue;
        static ps_report_summary w; /* large: off the stack */
        if (worker_summary_read(r, i, &w) != 0)
            return -1;
        int rc = ps_report_job_add(job, &sum, &w);
        ps_report_summary_fini(&w);
        if (rc != 0) {
            fprintf(stderr, "psrun: the curves of w%u: %s\n", i, ps_strerror(rc));
            return -1;
        }
    }
    if (ps_report_job_end(job, &sum, r->plan.job, r->plan.mode, r->plan.workers, wall_s) != 0) {
        fprintf(stderr, "psrun: no worker finished\n");
        return -1;
    }
    char loss[32], metric[32], tloss[32], auc[32];
    printf("psrun: %s done in %.1f s: final loss %s", r->plan.job, wall_s,
           ps_report_number_format(job->final_loss, 4, loss, sizeof loss));
    if (job->has_test)
        printf(", test %s %s, test %s %s", figure_display_name(job->metric_name),
               ps_report_number_format(job->test_metric, 4, metric, sizeof metric),
               figure_display_name(job->loss_name),
               ps_report_number_format(job->test_loss, 4, tloss, sizeof tloss));
    if (job->has_test && job->has_auc)
        printf(", test auc %s", ps_report_number_format(job->test_auc, 4, auc, sizeof auc));
    printf(", %.0f samples/s, %llu updates, version %llu, %u workers, %s", job->samples_per_s,
           (unsigned long long)job->updates, (unsigned long long)job->version, r->plan.workers,
           r->plan.mode);
    dropped_say(job);
    printf("\n");
    ps_stdout_guard_flush(); /* a line lost is said at exit (stdout_guard.h) */
    return 0;
}

/* The summary JSON and the curves, each asked for; -1 when one could not
 * be written (the other is still tried). */
static int outputs_write(const psrun *r, const ps_report_summary *job)
{
    int rc = 0;
    ps_error err = {0};
    if (r->summary_json && ps_report_summary_file_write(r->summary_json, job, &err) != 0) {
        fprintf(stderr, "psrun: cannot write the summary: %s\n", err.msg);
        rc = -1;
    }
    if (r->curves && ps_report_curves_file_write(r->curves, job, r->plan.compression, &err) != 0) {
        fprintf(stderr, "psrun: cannot write the curves: %s\n", err.msg);
        rc = -1;
    }
    return rc;
}

static void remove_tmpdir(psrun *r)
{
    ps_supervisor_fini(&r->sv);
    for (uint32_t i = 0; i < r->plan.workers; i++) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/w%u.json", r->tmpdir, i);
        unlink(path);
    }
    rmdir(r->tmpdir);
}

/* Makes psrun's temporary folder (mode 0700: the notify sockets in it take
 * datagrams from this user only). */
static int make_tmpdir(psrun *r)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(r->tmpdir, sizeof r->tmpdir, "%s/psrun.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(r->tmpdir) == NULL) {
        fprintf(stderr, "psrun: cannot make a temporary folder in %s: %s\n",
                tmp && *tmp ? tmp : "/tmp", strerror(errno));
        return -1;
    }
    return 0;
}

/* The entry of rank in the job summary's unfinished ranks, or NULL. */
static const ps_report_unfinished *unfinished_of(const ps_report_summary *job, uint32_t rank)
{
    for (uint32_t k = 0; job != NULL && k < job->nunfinished; k++)
        if (job->unfinished[k].rank == rank)
            return &job->unfinished[k];
    return NULL;
}

/* The end of the job once every process has ended, from the workers that
 * failed and the ranks whose data was not trained to the end (job: the
 * job's summary, or NULL without one): a worker that failed and left its
 * rank's data unfinished makes the job incomplete (3), as does a server
 * that ended it so; one that failed after its data was done is a failure
 * (1). The last line says which. */
static int job_end(psrun *r, const ps_report_summary *job, double wall_s)
{
    char line[1024];
    size_t len = 0;
    uint32_t n = 0;
    for (uint32_t k = 0; job != NULL && k < job->nunfinished; k++) {
        const ps_report_unfinished *u = &job->unfinished[k];
        char expected[24] = "?", how[96] = "";
        if (u->expected > 0)
            snprintf(expected, sizeof expected, "%llu", (unsigned long long)u->expected);
        int i = (int)(r->plan.nservers + u->rank);
        if (u->rank < r->plan.workers && i < r->sv.nkids && r->sv.kids[i].exited &&
            !ps_supervisor_clean_exit(&r->sv.kids[i])) {
            char end[64];
            ps_supervisor_describe_end(&r->sv.kids[i], end, sizeof end);
            snprintf(how, sizeof how, " (%s %s)", r->sv.kids[i].name, end);
        }
        if (len < sizeof line)
            len += (size_t)snprintf(line + len, sizeof line - len,
                                    "%srank %u at %llu of %s pushes%s", n ? ", " : "", u->rank,
                                    (unsigned long long)u->pushes, expected, how);
        n++;
    }
    int code = 0;
    for (int i = 0; i < r->sv.nkids; i++) {
        const ps_supervisor_child *c = &r->sv.kids[i];
        if (!r->losses[i].lost)
            continue;
        uint32_t rank = (uint32_t)(i - (int)r->plan.nservers);
        if (!c->is_server && job != NULL && unfinished_of(job, rank) != NULL)
            continue; /* the incomplete line names it */
        fprintf(stderr, "psrun: the job finished without %s, which failed\n", c->name);
        code = PS_EXIT_RUNTIME;
    }
    if (n == 0 && !r->server_incomplete)
        return code;
    if (n > 0)
        fprintf(stderr,
                "psrun: job %s incomplete after %.1f s: %u rank%s did not finish %s data: %s\n",
                r->plan.job, wall_s, n, n == 1 ? "" : "s", n == 1 ? "its" : "their", line);
    else
        fprintf(stderr, "psrun: job %s incomplete after %.1f s: %s\n", r->plan.job, wall_s,
                r->server_incomplete_why);
    if (code != 0) /* the last line says why the status is 1 */
        fprintf(stderr, "psrun: job failed: a worker failed after its data was trained\n");
    return code != 0 ? code : PS_EXIT_INCOMPLETE;
}

/* The exit status, and the last line, once every process has ended. */
static int verdict(psrun *r, double wall_s)
{
    if (stop_requested) {
        fprintf(stderr, "psrun: stopped by signal %d after %.1f s\n", (int)stop_requested, wall_s);
        return 130;
    }
    if (r->failed) {
        fprintf(stderr, "psrun: job failed: %s\n", r->failure);
        return PS_EXIT_RUNTIME;
    }
    if (ps_runbar_rejected(&r->bar) > 0)
        fprintf(stderr,
                "psrun: %llu progress lines from the workers were not in the progress "
                "format and were skipped\n",
                (unsigned long long)ps_runbar_rejected(&r->bar));
    if (r->plan.ncommand > 0) { /* the job's own workers wrote no summary */
        printf("psrun: %s done in %.1f s: %u workers (%s), %s mode\n", r->plan.job, wall_s,
               r->plan.workers, r->plan.command[0], r->plan.mode);
        if (r->summary_json || r->curves)
            fprintf(stderr, "psrun: no summary or curves: the workers are the job's "
                            "worker.command, not psworker\n");
        return job_end(r, NULL, wall_s);
    }
    static ps_report_summary job; /* large: off the stack */
    int rc = summarise(r, wall_s, &job);
    if (rc == 0)
        rc = outputs_write(r, &job);
    if (rc == 0)
        rc = job_end(r, &job, wall_s);
    else
        rc = PS_EXIT_RUNTIME;
    ps_report_summary_fini(&job);
    return rc;
}

/* The output files asked for, checked before the job starts
 * (report_file.h): a FIFO, a device or a folder given as one, or a missing
 * folder, is said now, not after hours of training. 0 or PS_EXIT_USAGE. */
static int outputs_check(const psrun *r)
{
    const char *what[] = {"--summary-json", r->curves == r->curves_beside
                                                ? "the curves beside --summary-json"
                                                : "--curves"};
    const char *paths[] = {r->summary_json, r->curves};
    for (size_t i = 0; i < 2; i++) {
        ps_error err = {0};
        if (paths[i] != NULL && ps_report_file_check(paths[i], &err) != 0) {
            fprintf(stderr, "psrun: %s: %s\n", what[i], err.msg);
            return PS_EXIT_USAGE;
        }
    }
    return 0;
}

/* --curves FILE, or X.svg beside --summary-json X.json (X.json.svg when it
 * does not end in .json). */
static void curves_path(psrun *r)
{
    if (r->curves != NULL || r->summary_json == NULL)
        return;
    size_t len = strlen(r->summary_json);
    if (len >= 5 && strcmp(r->summary_json + len - 5, ".json") == 0)
        len -= 5;
    if (snprintf(r->curves_beside, sizeof r->curves_beside, "%.*s.svg", (int)len, r->summary_json) <
        (int)sizeof r->curves_beside)
        r->curves = r->curves_beside;
}

enum { OPT_SUMMARY_JSON = PS_ARGS_LONG_ONLY, OPT_CURVES };

/* Options and the job file (args.h's convention): PS_ARGS_GO_ON, or the
 * exit status (0 after --help or --version) with a message printed. */
static int args_parse(psrun *r, int argc, char **argv)
{
    static const ps_args_option opts[] = {
        {"summary-json", OPT_SUMMARY_JSON, true},
        {"curves", OPT_CURVES, true},
    };
    ps_args p;
    ps_args_init(&p, "psrun", usage, opts, PS_ARGS_COUNT(opts), argc, argv);
    int c;
    while ((c = ps_args_next(&p)) > 0) {
        switch (c) {
        case OPT_SUMMARY_JSON:
            r->summary_json = p.value;
            break;
        case OPT_CURVES:
            r->curves = p.value;
            break;
        }
    }
    if (c == PS_ARGS_EXIT)
        return p.status;
    if (p.noperands != 1)
        return ps_args_error(&p, "expected one job file, got %d arguments", p.noperands);
    r->job_path = p.operands[0];
    if (access(r->job_path, R_OK) != 0) {
        fprintf(stderr, "psrun: %s: cannot open: %s\n", r->job_path, strerror(errno));
        return PS_EXIT_USAGE;
    }
    curves_path(r);
    return outputs_check(r) != 0 ? PS_EXIT_USAGE : PS_ARGS_GO_ON;
}

static void signals_install(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* The pipe every worker writes its progress lines to (fd 3 in each). */
static int progress_pipe_open(psrun *r)
{
    int progress[2];
    if (pipe2(progress, O_CLOEXEC) != 0) {
        fprintf(stderr, "psrun: pipe: %s\n", strerror(errno));
        return -1;
    }
    fcntl(progress[0], F_SETFL, O_NONBLOCK);
    r->progress_rd = progress[0];
    r->progress_wr = progress[1];
    return 0;
}

int main(int argc, char **argv)
{
    static psrun r;
    ps_stdout_guard_install("psrun");
    if (argc > 1 && strcmp(argv[1], "predict") == 0) {
        char prog[PATH_MAX];
        find_bindir(r.bindir, sizeof r.bindir);
        program_path(&r, "psworker", prog, sizeof prog);
        return psrun_predict_main(argc - 1, argv + 1, prog);
    }
    int rc = args_parse(&r, argc, argv);
    if (rc != PS_ARGS_GO_ON)
        return rc;
    find_bindir(r.bindir, sizeof r.bindir);
    if (make_tmpdir(&r) != 0)
        return PS_EXIT_RUNTIME;
    rc = read_plan(&r);
    if (rc != 0) {
        rmdir(r.tmpdir);
        return rc;
    }
    signals_install();
    if (progress_pipe_open(&r) != 0) {
        rmdir(r.tmpdir);
        return PS_EXIT_RUNTIME;
    }
    ps_supervisor_init(&r.sv, forward_line, &r);
    r.t_start = now_s();
    ps_runbar_init(&r.bar, isatty(STDERR_FILENO), r.plan.workers, r.t_start);
    fprintf(stderr, "psrun: job %s: %u shard%s, %u worker%s, %s mode\n", r.plan.job,
            r.plan.nservers, r.plan.nservers == 1 ? "" : "s", r.plan.workers,
            r.plan.workers == 1 ? "" : "s", r.plan.mode);
    if (start_servers(&r) != 0) {
        fail(&r, "could not start the servers");
        begin_stop(&r);
    }
    run_loop(&r); /* the workers start in it, once the servers are ready */
    close(r.progress_rd);
    close(r.progress_wr);
    int exit_code = verdict(&r, now_s() - r.t_start);
    remove_tmpdir(&r);
    return exit_code;
}
