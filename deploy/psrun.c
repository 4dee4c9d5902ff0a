/* psrun.c — the one-machine launcher (DESIGN §2). Starts a job's shards and
 * workers as child processes on loopback, forwards their logs line by line
 * with a prefix, draws one overall progress line on a TTY, prints a summary
 * and exits non-zero if any process failed. What it learns from the other
 * programs comes in documented formats (common/report.h), never from their
 * logs: the plan from `psworker --describe`, each shard's readiness and stop
 * from sd_notify datagrams on a socket of its own, progress from the
 * workers' fd 3 and their summaries as JSON. */
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN           256
#define LINE_MAX_BYTES         4096
#define SERVER_START_TIMEOUT_S 20.0
#define STOP_GRACE_S           10.0
/* A worker that failed is judged this long after: a psd that stops the job
 * (divergence, abort) says so meanwhile, and workers that fail together
 * (say, fewer rows than workers) are named in one line. */
#define LOSS_VERDICT_S 2.0
#define PROGRESS_FD    3 /* the fd a worker writes its progress lines to */
#define EXIT_RUNTIME   1
#define EXIT_USAGE     2

typedef struct child {
    pid_t pid;
    char name[16]; /* log prefix: psd0, w1 */
    bool is_server;
    int out_fd; /* read end of its stdout+stderr, -1 at EOF */
    char line[LINE_MAX_BYTES];
    size_t line_len;
    bool exited;
    int status;
    /* a server's sd_notify socket (bound in the temporary folder) */
    int notify_fd;
    char notify_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    bool ready;         /* said READY=1 */
    bool stopped_alone; /* said STOPPING=1 before psrun asked it to stop */
    char stop_reason[PS_REPORT_STATUS_MAX];
    /* a worker that failed: judged LOSS_VERDICT_S later (see above) */
    bool pending;
    double failed_at;
    bool lost; /* the job went on without it */
} child;

typedef enum phase { PHASE_SERVERS, PHASE_WORKERS, PHASE_STOPPING } phase;

typedef struct psrun {
    const char *job_path;
    const char *summary_json;
    char bindir[PATH_MAX];
    char tmpdir[PATH_MAX];
    ps_report_plan plan;
    child kids[MAX_CHILDREN];
    int nkids;
    int progress_rd; /* read end of the workers' shared progress pipe */
    ps_report_progress_reader progress_reader;
    ps_report_progress progress[MAX_CHILDREN];
    bool tty;
    bool progress_drawn;
    bool failed;
    char failure[PS_REPORT_STATUS_MAX + 64];
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
                 "Runs a whole psd job on this machine: one psd per shard and the job's\n"
                 "workers, on loopback; prints a summary at the end.\n"
                 "\n"
                 "  --summary-json FILE  write the summary as JSON to FILE\n"
                 "  -h, --help           show this help\n"
                 "  -V, --version        show the version\n"
                 "\n"
                 "exit status: 0 done, 1 a process failed or psd stopped the job,\n"
                 "2 usage or job-file error, 130 interrupted\n");
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

/* Runs `psworker --config JOB --describe` and reads its plan (report.h).
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
        return EXIT_RUNTIME;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "psrun: fork: %s\n", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        close(errfd);
        return EXIT_RUNTIME;
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
        return WIFEXITED(status) && WEXITSTATUS(status) == EXIT_USAGE ? EXIT_USAGE : EXIT_RUNTIME;
    if (rc != 0) {
        fprintf(stderr, "psrun: %s\n", err.msg);
        return EXIT_RUNTIME;
    }
    if (r->plan.workers + r->plan.nservers > MAX_CHILDREN) {
        fprintf(stderr,
                "psrun: %s: %u workers and %u servers are more than one machine runs "
                "(limit %d processes)\n",
                r->job_path, r->plan.workers, r->plan.nservers, MAX_CHILDREN);
        return EXIT_USAGE;
    }
    return 0;
}

/* Starts argv[0] with stdout and stderr into a new pipe; workers also get
 * the progress pipe as fd 3, a server its own NOTIFY_SOCKET. The child dies
 * with psrun (PR_SET_PDEATHSIG). */
static int spawn(child *c, char *const argv[], int progress_wr, const char *notify_path)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        if (progress_wr >= 0)
            dup2(progress_wr, PROGRESS_FD);
        /* psrun's own systemd settings, if any, are not the children's */
        unsetenv("WATCHDOG_USEC");
        unsetenv("WATCHDOG_PID");
        if (notify_path != NULL)
            setenv("NOTIFY_SOCKET", notify_path, 1);
        else
            unsetenv("NOTIFY_SOCKET");
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    c->pid = pid;
    c->out_fd = fds[0];
    return 0;
}

static void clear_progress(psrun *r)
{
    if (r->tty && r->progress_drawn) {
        fputs("\r\033[K", stderr);
        r->progress_drawn = false;
    }
}

static void draw_progress(psrun *r)
{
    if (!r->tty || r->phase != PHASE_WORKERS)
        return;
    unsigned long long done = 0, total = 0;
    unsigned epoch = 0;
    double loss = 0;
    int seen = 0;
    for (uint32_t i = 0; i < r->plan.workers; i++) {
        const ps_report_progress *p = &r->progress[i];
        done += p->done;
        total += p->total;
        if (p->total) {
            if (seen == 0 || p->epoch < epoch)
                epoch = p->epoch;
            loss += p->loss;
            seen++;
        }
    }
    if (total == 0)
        return;
    double frac = (double)done / (double)total;
    char bar[31], num[32];
    int fill = (int)(frac * 30.0);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r\033[K[%s] %3.0f%%  epoch %u  loss %s  %.1f s", bar, frac * 100.0, epoch,
            ps_report_number_format(seen ? loss / seen : 0.0, 4, num, sizeof num),
            now_s() - r->t_start);
    r->progress_drawn = true;
}

static void emit_line(psrun *r, child *c, const char *line)
{
    clear_progress(r);
    fprintf(stderr, "[%s] %s\n", c->name, line);
}

/* Reads what a child wrote and forwards it a line at a time (a line longer
 * than LINE_MAX_BYTES is forwarded in pieces: it is a log, not data). */
static void pump_output(psrun *r, child *c)
{
    for (;;) {
        char chunk[4096];
        ssize_t n = read(c->out_fd, chunk, sizeof chunk);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            if (c->line_len) {
                c->line[c->line_len] = '\0';
                emit_line(r, c, c->line);
                c->line_len = 0;
            }
            close(c->out_fd);
            c->out_fd = -1;
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            char ch = chunk[i];
            if (ch == '\n' || c->line_len == sizeof c->line - 1) {
                c->line[c->line_len] = '\0';
                emit_line(r, c, c->line);
                c->line_len = 0;
                if (ch == '\n')
                    continue;
            }
            if (ch != '\r')
                c->line[c->line_len++] = ch;
        }
    }
}

static void progress_seen(void *arg, const ps_report_progress *p)
{
    psrun *r = arg;
    if (p->rank < r->plan.workers)
        r->progress[p->rank] = *p;
}

static void pump_progress(psrun *r)
{
    char chunk[4096];
    ssize_t n = read(r->progress_rd, chunk, sizeof chunk);
    if (n > 0)
        ps_report_progress_feed(&r->progress_reader, chunk, (size_t)n, progress_seen, r);
}

/* Reads every datagram a server sent to its notify socket. A STOPPING=1
 * that comes before psrun asked for a stop is the server's own: the job
 * was aborted, completed or psd was stopped, and STATUS= says which. */
static void pump_notify(psrun *r, child *c)
{
    for (;;) {
        char dgram[4096];
        ssize_t n = recv(c->notify_fd, dgram, sizeof dgram, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return;
        ps_report_notify msg;
        ps_report_notify_parse(dgram, (size_t)n, &msg);
        if (msg.ready)
            c->ready = true;
        if (msg.stopping && !c->stopped_alone && r->phase != PHASE_STOPPING) {
            c->stopped_alone = true;
            snprintf(c->stop_reason, sizeof c->stop_reason, "%s", msg.status);
        }
    }
}

static void pump_all_notify(psrun *r)
{
    for (int i = 0; i < r->nkids; i++)
        if (r->kids[i].notify_fd >= 0)
            pump_notify(r, &r->kids[i]);
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
static const child *server_stopped_alone(const psrun *r)
{
    for (int i = 0; i < r->nkids; i++)
        if (r->kids[i].is_server && r->kids[i].stopped_alone)
            return &r->kids[i];
    return NULL;
}

/* The job failed because a server stopped it: say why in its words. */
static void fail_server_stop(psrun *r, const child *c, const char *how)
{
    if (c->stop_reason[0])
        fail(r, "%s: %s", c->name, c->stop_reason);
    else
        fail(r, "%s stopped the job and %s", c->name, how);
}

static void signal_all(psrun *r, int sig, bool servers_only)
{
    for (int i = 0; i < r->nkids; i++)
        if (!r->kids[i].exited && (!servers_only || r->kids[i].is_server))
            kill(r->kids[i].pid, sig);
}

static void begin_stop(psrun *r)
{
    if (r->phase == PHASE_STOPPING)
        return;
    r->phase = PHASE_STOPPING;
    r->t_stop_sent = now_s();
    signal_all(r, SIGTERM, false);
}

/* How a child ended, in words: "exited with status 1", "was killed by
 * signal 9". */
static void describe_end(int status, char *out, size_t cap)
{
    if (WIFSIGNALED(status))
        snprintf(out, cap, "was killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, cap, "exited with status %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static bool clean_exit(const child *c)
{
    return c->exited && WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0;
}

/* True while some worker runs, or one finished its training: the job can
 * go on (or went on) without a worker that failed. */
static bool job_goes_on(const psrun *r)
{
    for (int i = 0; i < r->nkids; i++)
        if (!r->kids[i].is_server && !r->kids[i].pending &&
            (!r->kids[i].exited || clean_exit(&r->kids[i])))
            return true;
    return false;
}

/* Judges the workers that failed: LOSS_VERDICT_S after their end, or at
 * once when `now` (every worker has ended). A server that stopped the job
 * meanwhile explains them; with on_worker_loss continue and others going on
 * the job goes on without them, said in one line; otherwise the job fails. */
static void judge_failed_workers(psrun *r, bool now)
{
    double t = now_s();
    child *first = NULL;
    char names[256] = "";
    size_t len = 0;
    int n = 0;
    for (int i = 0; i < r->nkids; i++) {
        child *c = &r->kids[i];
        if (!c->pending || (!now && t - c->failed_at < LOSS_VERDICT_S))
            continue;
        c->pending = false;
        if (first == NULL)
            first = c;
        if (len < sizeof names)
            len +=
                (size_t)snprintf(names + len, sizeof names - len, "%s%s", n ? ", " : "", c->name);
        n++;
        c->lost = true;
    }
    if (first == NULL)
        return;
    char how[64];
    describe_end(first->status, how, sizeof how);
    const child *stopper = server_stopped_alone(r);
    if (stopper != NULL) {
        fail_server_stop(r, stopper, how);
        return;
    }
    bool continue_on_loss = strcmp(r->plan.on_worker_loss, "abort") != 0;
    if (continue_on_loss && r->phase == PHASE_WORKERS && job_goes_on(r)) {
        clear_progress(r);
        fprintf(stderr, "psrun: %s %s: the job goes on without %s (on_worker_loss: continue)\n",
                names, n == 1 ? how : "failed", n == 1 ? "it" : "them");
        return;
    }
    for (int i = 0; i < r->nkids; i++)
        r->kids[i].lost = false; /* the job fails: nobody was left behind */
    if (n == 1)
        fail(r, "%s %s", first->name, how);
    else
        fail(r, "%s failed (%s %s)", names, first->name, how);
}

static void reap(psrun *r)
{
    /* a server's STOPPING=1 was sent before its workers could end: read it
     * before judging their ends */
    pump_all_notify(r);
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < r->nkids; i++) {
            child *c = &r->kids[i];
            if (c->pid != pid)
                continue;
            c->exited = true;
            c->status = status;
            bool stopping = r->phase == PHASE_STOPPING;
            bool clean = clean_exit(c);
            if (stopping && WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM)
                clean = true; /* we asked it to stop */
            if (stop_requested || clean)
                continue; /* a server exits 0 by itself once every worker left */
            char how[64];
            describe_end(status, how, sizeof how);
            if (c->is_server && c->stopped_alone)
                fail_server_stop(r, c, how);
            else if (c->is_server)
                fail(r, "%s %s", c->name, how);
            else if (stopping)
                continue; /* a consequence of the failure that stops the job */
            else {
                c->pending = true;
                c->failed_at = now_s();
            }
        }
    }
}

/* A datagram socket at tmpdir/psdI.notify for server c. */
static int notify_open(psrun *r, child *c, int shard)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int n = snprintf(sa.sun_path, sizeof sa.sun_path, "%s/psd%d.notify", r->tmpdir, shard);
    if (n < 0 || (size_t)n >= sizeof sa.sun_path) {
        fprintf(stderr,
                "psrun: %s: the temporary folder's path is too long for a socket (set "
                "TMPDIR to a shorter one)\n",
                r->tmpdir);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "psrun: %s: %s\n", sa.sun_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    c->notify_fd = fd;
    memcpy(c->notify_path, sa.sun_path, sizeof c->notify_path);
    return 0;
}

static void child_reset(child *c)
{
    memset(c, 0, sizeof *c);
    c->out_fd = -1;
    c->notify_fd = -1;
}

static int start_servers(psrun *r)
{
    char prog[PATH_MAX];
    program_path(r, "psd", prog, sizeof prog);
    for (uint32_t i = 0; i < r->plan.nservers; i++) {
        child *c = &r->kids[r->nkids];
        child_reset(c);
        c->is_server = true;
        snprintf(c->name, sizeof c->name, "psd%u", i);
        char shard[16];
        snprintf(shard, sizeof shard, "%u", i);
        char *argv[] = {prog, "--config", (char *)r->job_path, "--shard", shard, "--exit-when-done",
                        NULL};
        if (notify_open(r, c, (int)i) != 0)
            return -1;
        r->nkids++; /* its socket is closed at the end even if it does not start */
        if (spawn(c, argv, -1, c->notify_path) != 0) {
            fprintf(stderr, "psrun: cannot start %s: %s\n", prog, strerror(errno));
            c->exited = true;
            return -1;
        }
    }
    return 0;
}

static int start_workers(psrun *r, int progress_wr)
{
    char prog[PATH_MAX];
    program_path(r, "psworker", prog, sizeof prog);
    for (uint32_t i = 0; i < r->plan.workers; i++) {
        child *c = &r->kids[r->nkids];
        child_reset(c);
        snprintf(c->name, sizeof c->name, "w%u", i);
        char rank[16], summary[PATH_MAX + 32], fd[16];
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
        if (spawn(c, argv, progress_wr, NULL) != 0) {
            fprintf(stderr, "psrun: cannot start %s: %s\n", prog, strerror(errno));
            return -1;
        }
        r->nkids++;
    }
    return 0;
}

static bool all_exited(const psrun *r, bool workers_only)
{
    for (int i = 0; i < r->nkids; i++)
        if (!r->kids[i].exited && (!workers_only || !r->kids[i].is_server))
            return false;
    return true;
}

static bool outputs_open(const psrun *r)
{
    for (int i = 0; i < r->nkids; i++)
        if (r->kids[i].out_fd >= 0)
            return true;
    return false;
}

/* The servers that have not said READY=1, for the timeout's message. */
static void servers_not_ready(const psrun *r, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < r->nkids && len < cap; i++)
        if (r->kids[i].is_server && !r->kids[i].ready)
            len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? ", " : "", r->kids[i].name);
}

/* Moves the job along: servers ready -> workers started -> workers done ->
 * servers stopped; a failure or a signal stops everything. */
static void advance(psrun *r, int progress_wr)
{
    double t = now_s();
    if (stop_requested && r->phase != PHASE_STOPPING) {
        clear_progress(r);
        fprintf(stderr, "psrun: interrupted, stopping every process\n");
        begin_stop(r);
    }
    if (r->phase == PHASE_WORKERS)
        judge_failed_workers(r, all_exited(r, true));
    if (r->failed && r->phase != PHASE_STOPPING)
        begin_stop(r);
    switch (r->phase) {
    case PHASE_SERVERS: {
        bool ready = true;
        for (int i = 0; i < r->nkids; i++)
            ready = ready && r->kids[i].ready;
        if (ready) {
            r->phase = PHASE_WORKERS;
            r->t_phase = t;
            if (start_workers(r, progress_wr) != 0) {
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
    }
    case PHASE_WORKERS:
        if (all_exited(r, true)) {
            r->phase = PHASE_STOPPING;
            r->t_stop_sent = t;
            signal_all(r, SIGTERM, true);
        }
        break;
    case PHASE_STOPPING:
        if (t - r->t_stop_sent > STOP_GRACE_S)
            signal_all(r, SIGKILL, false);
        break;
    }
}

static void run_loop(psrun *r, int progress_wr)
{
    r->phase = PHASE_SERVERS;
    r->t_phase = now_s();
    double last_draw = 0;
    while (!all_exited(r, false) || outputs_open(r)) {
        struct pollfd pfd[2 * MAX_CHILDREN + 1];
        child *who[2 * MAX_CHILDREN + 1];
        int n = 0;
        for (int i = 0; i < r->nkids; i++) {
            if (r->kids[i].out_fd >= 0) {
                pfd[n] = (struct pollfd){.fd = r->kids[i].out_fd, .events = POLLIN};
                who[n++] = &r->kids[i];
            }
            if (r->kids[i].notify_fd >= 0) {
                pfd[n] = (struct pollfd){.fd = r->kids[i].notify_fd, .events = POLLIN};
                who[n++] = &r->kids[i];
            }
        }
        pfd[n] = (struct pollfd){.fd = r->progress_rd, .events = POLLIN};
        int rc = poll(pfd, (nfds_t)n + 1, 100);
        if (rc > 0) {
            for (int i = 0; i < n; i++) {
                if (!pfd[i].revents)
                    continue;
                if (pfd[i].fd == who[i]->notify_fd)
                    pump_notify(r, who[i]);
                else
                    pump_output(r, who[i]);
            }
            if (pfd[n].revents & POLLIN)
                pump_progress(r);
        }
        reap(r);
        advance(r, progress_wr);
        /* redrawn at once after forwarded lines, so it stays at the bottom */
        if (!r->progress_drawn || now_s() - last_draw > 0.2) {
            draw_progress(r);
            last_draw = now_s();
        }
    }
    clear_progress(r);
}

/* The test figure's name as a person reads it: "log-loss", "accuracy". */
static const char *figure_display_name(const char *name)
{
    return strcmp(name, "log_loss") == 0 ? "log-loss" : name;
}

/* Writes the job's summary to r->summary_json (temporary file, rename). */
static int summary_write(const psrun *r, const ps_report_summary *s)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", r->summary_json);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "psrun: cannot write %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    int rc = ps_report_summary_write(f, s);
    if (fclose(f) != 0 && rc == 0)
        rc = PS_EIO;
    if (rc != 0 || rename(tmp, r->summary_json) != 0) {
        fprintf(stderr, "psrun: cannot write %s: %s\n", r->summary_json,
                rc == PS_ENOMEM ? "out of memory" : strerror(errno ? errno : EIO));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Combines the workers' summaries: the final loss is the samples-weighted
 * mean of the workers' losses over their shards (the loss over the whole
 * training set); the test figures are rank 0's evaluation of the final θ
 * (the lowest rank that finished, when workers were lost on the way). */
static int summarise(psrun *r, double wall_s)
{
    ps_report_summary job;
    ps_report_summary_init(&job);
    double loss_sum = 0, samples_sum = 0, throughput = 0;
    uint64_t updates = 0;
    bool first = true;
    for (uint32_t i = 0; i < r->plan.workers; i++) {
        if (r->kids[r->plan.nservers + i].lost)
            continue;
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/w%u.json", r->tmpdir, i);
        ps_report_summary w;
        ps_error err = {0};
        if (ps_report_summary_read(path, &w, &err) != 0) {
            fprintf(stderr, "psrun: w%u wrote no summary: %s\n", i, err.msg);
            return -1;
        }
        double n = w.train_samples > 0 ? (double)w.train_samples : 1.0;
        loss_sum += w.final_loss * n; /* a NaN stays NaN: the job's loss is not finite */
        samples_sum += n;
        if (w.samples_per_s == w.samples_per_s)
            throughput += w.samples_per_s;
        updates += w.updates;
        if (first) {
            first = false;
            job = w;
        }
    }
    if (first) {
        fprintf(stderr, "psrun: no worker finished\n");
        return -1;
    }
    snprintf(job.job, sizeof job.job, "%s", r->plan.job);
    snprintf(job.mode, sizeof job.mode, "%s", r->plan.mode);
    job.final_loss = loss_sum / samples_sum;
    job.wall_s = wall_s;
    job.samples_per_s = throughput;
    job.updates = updates;
    job.workers = r->plan.workers;
    job.rank = -1;
    char loss[32], metric[32], tloss[32];
    printf("psrun: %s done in %.1f s: final loss %s", r->plan.job, wall_s,
           ps_report_number_format(job.final_loss, 4, loss, sizeof loss));
    if (job.has_test)
        printf(", test %s %s, test %s %s", figure_display_name(job.metric_name),
               ps_report_number_format(job.test_metric, 4, metric, sizeof metric),
               figure_display_name(job.loss_name),
               ps_report_number_format(job.test_loss, 4, tloss, sizeof tloss));
    printf(", %.0f samples/s, %llu updates, version %llu, %u workers, %s\n", throughput,
           (unsigned long long)updates, (unsigned long long)job.version, r->plan.workers,
           r->plan.mode);
    fflush(stdout);
    return r->summary_json ? summary_write(r, &job) : 0;
}

static void remove_tmpdir(psrun *r)
{
    for (int i = 0; i < r->nkids; i++) {
        if (r->kids[i].notify_fd >= 0) {
            close(r->kids[i].notify_fd);
            unlink(r->kids[i].notify_path);
        }
    }
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

/* The exit status, and the last line, once every process has ended. */
static int verdict(psrun *r, double wall_s)
{
    if (stop_requested) {
        fprintf(stderr, "psrun: stopped by signal %d after %.1f s\n", (int)stop_requested, wall_s);
        return 130;
    }
    if (r->failed) {
        fprintf(stderr, "psrun: job failed: %s\n", r->failure);
        return EXIT_RUNTIME;
    }
    if (r->progress_reader.rejected > 0)
        fprintf(stderr,
                "psrun: %llu progress lines from the workers were not in the progress "
                "format and were skipped\n",
                (unsigned long long)r->progress_reader.rejected);
    if (summarise(r, wall_s) != 0)
        return EXIT_RUNTIME;
    int code = 0;
    for (int i = 0; i < r->nkids; i++) {
        if (r->kids[i].lost) {
            fprintf(stderr, "psrun: the job finished without %s, which failed\n", r->kids[i].name);
            code = EXIT_RUNTIME;
        }
    }
    return code;
}

int main(int argc, char **argv)
{
    static psrun r;
    static const struct option opts[] = {
        {"summary-json", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            r.summary_json = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("psrun %s\n", PS_VERSION_STRING);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "psrun: expected one job file\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    r.job_path = argv[optind];
    if (access(r.job_path, R_OK) != 0) {
        fprintf(stderr, "psrun: %s: %s\n", r.job_path, strerror(errno));
        return EXIT_USAGE;
    }
    find_bindir(r.bindir, sizeof r.bindir);
    if (make_tmpdir(&r) != 0)
        return EXIT_RUNTIME;
    int rc = read_plan(&r);
    if (rc != 0) {
        rmdir(r.tmpdir);
        return rc;
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int progress[2];
    if (pipe2(progress, O_CLOEXEC) != 0) {
        fprintf(stderr, "psrun: pipe: %s\n", strerror(errno));
        rmdir(r.tmpdir);
        return EXIT_RUNTIME;
    }
    fcntl(progress[0], F_SETFL, O_NONBLOCK);
    r.progress_rd = progress[0];
    ps_report_progress_reader_init(&r.progress_reader);
    r.tty = isatty(STDERR_FILENO);
    r.t_start = now_s();
    fprintf(stderr, "psrun: job %s: %u shard%s, %u worker%s, %s mode\n", r.plan.job,
            r.plan.nservers, r.plan.nservers == 1 ? "" : "s", r.plan.workers,
            r.plan.workers == 1 ? "" : "s", r.plan.mode);
    if (start_servers(&r) != 0) {
        fail(&r, "could not start the servers");
        begin_stop(&r);
    }
    run_loop(&r, progress[1]);
    close(progress[0]);
    close(progress[1]);
    int exit_code = verdict(&r, now_s() - r.t_start);
    remove_tmpdir(&r);
    return exit_code;
}
