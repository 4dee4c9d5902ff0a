/* psrun.c — the one-machine launcher (DESIGN §2). Starts a job's shards and
 * workers as child processes on loopback, forwards their logs line by line
 * with a prefix, draws one overall progress line on a TTY, prints a summary
 * and exits non-zero if any process failed. It depends on libc alone: the
 * job's plan comes from `psworker --describe`, so the job file is read and
 * validated in one place only. */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN           256
#define LINE_MAX_BYTES         4096
#define SERVER_START_TIMEOUT_S 20.0
#define STOP_GRACE_S           10.0
#define PROGRESS_FD            3 /* the fd a worker writes its progress lines to */

typedef struct child {
    pid_t pid;
    char name[16]; /* log prefix: psd0, w1 */
    bool is_server;
    int out_fd; /* read end of its stdout+stderr, -1 at EOF */
    char line[LINE_MAX_BYTES];
    size_t line_len;
    bool exited;
    int status;
    bool lost;  /* a worker that died while the job went on without it */
    bool ready; /* server: its listening line was seen */
} child;

typedef struct worker_progress {
    unsigned long done, total, epoch;
    double loss;
} worker_progress;

typedef struct plan {
    char job[128];
    char mode[16];
    int workers;
    int servers;
    bool abort_on_loss; /* on_worker_loss: abort */
} plan;

typedef enum phase { PHASE_SERVERS, PHASE_WORKERS, PHASE_STOPPING } phase;

typedef struct psrun {
    const char *job_path;
    const char *summary_json;
    char bindir[PATH_MAX];
    char tmpdir[PATH_MAX];
    plan plan;
    child kids[MAX_CHILDREN];
    int nkids;
    int progress_rd; /* read end of the workers' shared progress pipe */
    char progress_buf[LINE_MAX_BYTES];
    size_t progress_len;
    worker_progress progress[MAX_CHILDREN];
    bool tty;
    bool progress_drawn;
    bool failed;
    char failure[256];
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
                 "  -V, --version        show the version\n");
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

/* Runs `psworker --config JOB --describe` and parses its key=value lines.
 * Its stderr goes straight to ours, so a config error reads as psworker
 * wrote it. Returns 0, or the exit code to leave with. */
static int read_plan(psrun *r)
{
    char prog[PATH_MAX];
    program_path(r, "psworker", prog, sizeof prog);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        fprintf(stderr, "psrun: pipe: %s\n", strerror(errno));
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "psrun: fork: %s\n", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return 1;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        execlp(prog, prog, "--config", r->job_path, "--describe", (char *)NULL);
        fprintf(stderr, "psrun: cannot run %s: %s\n", prog, strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    char text[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)n;
    text[len] = '\0';
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return WIFEXITED(status) && WEXITSTATUS(status) == 2 ? 2 : 1;
    memset(&r->plan, 0, sizeof r->plan);
    for (char *save = NULL, *ln = strtok_r(text, "\n", &save); ln;
         ln = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(ln, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(ln, "job") == 0)
            snprintf(r->plan.job, sizeof r->plan.job, "%s", v);
        else if (strcmp(ln, "mode") == 0)
            snprintf(r->plan.mode, sizeof r->plan.mode, "%s", v);
        else if (strcmp(ln, "workers") == 0)
            r->plan.workers = atoi(v);
        else if (strcmp(ln, "servers") == 0)
            r->plan.servers = atoi(v);
        else if (strcmp(ln, "on_worker_loss") == 0)
            r->plan.abort_on_loss = strcmp(v, "abort") == 0;
    }
    if (r->plan.workers < 1 || r->plan.servers < 1) {
        fprintf(stderr, "psrun: %s --describe gave no workers/servers\n", prog);
        return 1;
    }
    if (r->plan.workers + r->plan.servers > MAX_CHILDREN) {
        fprintf(stderr,
                "psrun: %s: %d workers and %d servers are more than one machine runs "
                "(limit %d processes)\n",
                r->job_path, r->plan.workers, r->plan.servers, MAX_CHILDREN);
        return 2;
    }
    return 0;
}

/* Starts argv[0] with stdout and stderr into a new pipe; workers also get
 * the progress pipe as fd 3. The child dies with psrun (PR_SET_PDEATHSIG). */
static int spawn(psrun *r, child *c, char *const argv[], int progress_wr)
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
    (void)r;
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
    unsigned long done = 0, total = 0, epoch = 0;
    double loss = 0;
    int seen = 0;
    for (int i = 0; i < r->plan.workers; i++) {
        done += r->progress[i].done;
        total += r->progress[i].total;
        if (r->progress[i].total) {
            if (seen == 0 || r->progress[i].epoch < epoch)
                epoch = r->progress[i].epoch;
            loss += r->progress[i].loss;
            seen++;
        }
    }
    if (total == 0)
        return;
    double frac = (double)done / (double)total;
    char bar[31];
    int fill = (int)(frac * 30.0);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r\033[K[%s] %3.0f%%  epoch %lu  loss %.4f  %.1f s", bar, frac * 100.0, epoch,
            seen ? loss / seen : 0.0, now_s() - r->t_start);
    r->progress_drawn = true;
}

static void emit_line(psrun *r, child *c, const char *line)
{
    clear_progress(r);
    fprintf(stderr, "[%s] %s\n", c->name, line);
    if (c->is_server && strstr(line, "listening on") != NULL)
        c->ready = true;
}

/* Reads what a child wrote and forwards it a line at a time. */
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

/* Progress lines: "progress RANK DONE TOTAL EPOCH LOSS". */
static void pump_progress(psrun *r)
{
    char chunk[4096];
    ssize_t n = read(r->progress_rd, chunk, sizeof chunk);
    if (n <= 0)
        return;
    for (ssize_t i = 0; i < n; i++) {
        if (chunk[i] != '\n') {
            if (r->progress_len < sizeof r->progress_buf - 1)
                r->progress_buf[r->progress_len++] = chunk[i];
            continue;
        }
        r->progress_buf[r->progress_len] = '\0';
        r->progress_len = 0;
        int rank;
        worker_progress p;
        if (sscanf(r->progress_buf, "progress %d %lu %lu %lu %lf", &rank, &p.done, &p.total,
                   &p.epoch, &p.loss) == 5 &&
            rank >= 0 && rank < r->plan.workers)
            r->progress[rank] = p;
    }
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

/* True while some worker still runs. */
static bool workers_running(const psrun *r)
{
    for (int i = 0; i < r->nkids; i++)
        if (!r->kids[i].is_server && !r->kids[i].exited)
            return true;
    return false;
}

/* A worker ended badly: with on_worker_loss continue and others still
 * training, the servers evict it and the job goes on; otherwise the job
 * fails. */
static void worker_failed(psrun *r, child *c)
{
    char how[64];
    describe_end(c->status, how, sizeof how);
    if (!r->plan.abort_on_loss && workers_running(r) && r->phase == PHASE_WORKERS) {
        c->lost = true;
        clear_progress(r);
        fprintf(stderr, "psrun: %s %s: the job goes on without it (on_worker_loss: continue)\n",
                c->name, how);
        return;
    }
    fail(r, "%s %s", c->name, how);
}

static void reap(psrun *r)
{
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
            bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (stopping && WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM)
                clean = true; /* we asked it to stop */
            if (stop_requested || clean)
                continue; /* a server exits 0 by itself once every worker left */
            if (c->is_server) {
                char how[64];
                describe_end(status, how, sizeof how);
                fail(r, "%s %s", c->name, how);
            } else {
                worker_failed(r, c);
            }
        }
    }
}

static int start_servers(psrun *r)
{
    char prog[PATH_MAX];
    program_path(r, "psd", prog, sizeof prog);
    for (int i = 0; i < r->plan.servers; i++) {
        child *c = &r->kids[r->nkids];
        memset(c, 0, sizeof *c);
        c->is_server = true;
        snprintf(c->name, sizeof c->name, "psd%d", i);
        char shard[16];
        snprintf(shard, sizeof shard, "%d", i);
        char *argv[] = {prog, "--config", (char *)r->job_path, "--shard", shard, "--exit-when-done",
                        NULL};
        if (spawn(r, c, argv, -1) != 0) {
            fprintf(stderr, "psrun: cannot start %s: %s\n", prog, strerror(errno));
            return -1;
        }
        r->nkids++;
    }
    return 0;
}

static int start_workers(psrun *r, int progress_wr)
{
    char prog[PATH_MAX];
    program_path(r, "psworker", prog, sizeof prog);
    for (int i = 0; i < r->plan.workers; i++) {
        child *c = &r->kids[r->nkids];
        memset(c, 0, sizeof *c);
        snprintf(c->name, sizeof c->name, "w%d", i);
        char rank[16], summary[PATH_MAX + 32], fd[16];
        snprintf(rank, sizeof rank, "%d", i);
        snprintf(summary, sizeof summary, "%s/w%d.json", r->tmpdir, i);
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
        if (spawn(r, c, argv, progress_wr) != 0) {
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

/* Moves the job along: servers up -> workers started -> workers done ->
 * servers stopped; a failure or a signal stops everything. */
static void advance(psrun *r, int progress_wr)
{
    double t = now_s();
    if (stop_requested && r->phase != PHASE_STOPPING) {
        clear_progress(r);
        fprintf(stderr, "psrun: interrupted, stopping every process\n");
        begin_stop(r);
    }
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
            fail(r, "a server did not start listening within %d s", (int)SERVER_START_TIMEOUT_S);
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
        struct pollfd pfd[MAX_CHILDREN + 1];
        child *who[MAX_CHILDREN + 1];
        int n = 0;
        for (int i = 0; i < r->nkids; i++) {
            if (r->kids[i].out_fd >= 0) {
                pfd[n] = (struct pollfd){.fd = r->kids[i].out_fd, .events = POLLIN};
                who[n++] = &r->kids[i];
            }
        }
        pfd[n] = (struct pollfd){.fd = r->progress_rd, .events = POLLIN};
        int rc = poll(pfd, (nfds_t)n + 1, 100);
        if (rc > 0) {
            for (int i = 0; i < n; i++)
                if (pfd[i].revents)
                    pump_output(r, who[i]);
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

/* The number after "key": in a JSON text we wrote ourselves; NAN if absent. */
static double json_number(const char *text, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(text, pat);
    if (p == NULL)
        return 0.0 / 0.0;
    p += strlen(pat);
    char *end;
    double v = strtod(p, &end);
    return end == p ? 0.0 / 0.0 : v;
}

/* Copies the object that follows "key": (no nested braces) into out. */
static void json_object(const char *text, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    snprintf(out, cap, "null");
    const char *p = strstr(text, pat);
    if (p == NULL)
        return;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p != '{')
        return;
    const char *e = strchr(p, '}');
    if (e == NULL || (size_t)(e - p + 2) > cap)
        return;
    memcpy(out, p, (size_t)(e - p + 1));
    out[e - p + 1] = '\0';
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *buf = malloc(65536);
    size_t n = buf ? fread(buf, 1, 65535, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

/* Combines the workers' summaries: the final loss is the samples-weighted
 * mean of the workers' losses over their shards (the loss over the whole
 * training set); the test metric is rank 0's evaluation of the final θ (the
 * lowest rank that finished, when workers were lost on the way). */
static int summarise(psrun *r, double wall_s)
{
    double loss_sum = 0, samples_sum = 0, throughput = 0, updates = 0, version = 0;
    char test_metric[256] = "null", test_loss[256] = "null", metrics[2048] = "{}";
    bool first = true;
    for (int i = 0; i < r->plan.workers; i++) {
        if (r->kids[r->plan.servers + i].lost)
            continue;
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/w%d.json", r->tmpdir, i);
        char *text = slurp(path);
        if (text == NULL) {
            fprintf(stderr, "psrun: worker %d wrote no summary (%s)\n", i, path);
            return -1;
        }
        double n = json_number(text, "train_samples");
        double loss = json_number(text, "final_loss");
        if (n != n || n <= 0)
            n = 1;
        loss_sum += loss * n;
        samples_sum += n;
        double sps = json_number(text, "samples_per_s");
        if (sps == sps)
            throughput += sps;
        double u = json_number(text, "updates");
        if (u == u)
            updates += u;
        if (first) {
            first = false;
            json_object(text, "test_metric", test_metric, sizeof test_metric);
            json_object(text, "test_loss", test_loss, sizeof test_loss);
            json_object(text, "metrics", metrics, sizeof metrics);
            version = json_number(text, "version");
        }
        free(text);
    }
    double final_loss = loss_sum / samples_sum;
    char metric_name[64] = "", loss_name[64] = "", *q;
    double metric_value = json_number(test_metric, "value");
    double test_loss_value = json_number(test_loss, "value");
    if ((q = strstr(test_metric, "\"name\":")) != NULL)
        sscanf(q + 7, " \"%63[^\"]\"", metric_name);
    if ((q = strstr(test_loss, "\"name\":")) != NULL)
        sscanf(q + 7, " \"%63[^\"]\"", loss_name);
    printf("psrun: %s done in %.1f s: final loss %.4f", r->plan.job, wall_s, final_loss);
    if (metric_name[0])
        printf(", test %s %.4f", metric_name, metric_value);
    if (loss_name[0])
        printf(", test %s %.4f", strcmp(loss_name, "log_loss") == 0 ? "log-loss" : loss_name,
               test_loss_value);
    printf(", %.0f samples/s, %.0f updates, version %.0f, %d workers, %s\n", throughput, updates,
           version, r->plan.workers, r->plan.mode);
    fflush(stdout);
    if (r->summary_json) {
        char tmp[PATH_MAX + 8];
        snprintf(tmp, sizeof tmp, "%s.tmp", r->summary_json);
        FILE *f = fopen(tmp, "w");
        if (f == NULL) {
            fprintf(stderr, "psrun: cannot write %s: %s\n", tmp, strerror(errno));
            return -1;
        }
        fprintf(f,
                "{\"final_loss\": %.9g, \"test_metric\": %s, \"test_loss\": %s, \"metrics\": %s, "
                "\"wall_s\": %.6g, \"samples_per_s\": %.6g, \"updates\": %.0f, "
                "\"version\": %.0f, \"workers\": %d, \"mode\": \"%s\", \"job\": \"%s\"}\n",
                final_loss, test_metric, test_loss, metrics, wall_s, throughput, updates, version,
                r->plan.workers, r->plan.mode, r->plan.job);
        if (fclose(f) != 0 || rename(tmp, r->summary_json) != 0) {
            fprintf(stderr, "psrun: cannot write %s: %s\n", r->summary_json, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static void remove_tmpdir(psrun *r)
{
    for (int i = 0; i < r->plan.workers; i++) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/w%d.json", r->tmpdir, i);
        unlink(path);
    }
    rmdir(r->tmpdir);
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
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "psrun: expected one job file\n");
        usage(stderr);
        return 2;
    }
    r.job_path = argv[optind];
    if (access(r.job_path, R_OK) != 0) {
        fprintf(stderr, "psrun: %s: %s\n", r.job_path, strerror(errno));
        return 2;
    }
    find_bindir(r.bindir, sizeof r.bindir);
    int rc = read_plan(&r);
    if (rc != 0)
        return rc;

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    const char *tmp = getenv("TMPDIR");
    snprintf(r.tmpdir, sizeof r.tmpdir, "%s/psrun.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(r.tmpdir) == NULL) {
        fprintf(stderr, "psrun: cannot make a temporary folder: %s\n", strerror(errno));
        return 1;
    }
    int progress[2];
    if (pipe2(progress, O_CLOEXEC) != 0) {
        fprintf(stderr, "psrun: pipe: %s\n", strerror(errno));
        return 1;
    }
    fcntl(progress[0], F_SETFL, O_NONBLOCK);
    r.progress_rd = progress[0];
    r.tty = isatty(STDERR_FILENO);
    r.t_start = now_s();
    fprintf(stderr, "psrun: job %s: %d shard%s, %d worker%s, %s mode\n", r.plan.job, r.plan.servers,
            r.plan.servers == 1 ? "" : "s", r.plan.workers, r.plan.workers == 1 ? "" : "s",
            r.plan.mode);
    if (start_servers(&r) != 0) {
        fail(&r, "could not start the servers");
        begin_stop(&r);
    }
    run_loop(&r, progress[1]);
    close(progress[0]);
    close(progress[1]);
    double wall_s = now_s() - r.t_start;
    int exit_code = 0;
    if (stop_requested) {
        fprintf(stderr, "psrun: stopped by signal %d after %.1f s\n", (int)stop_requested, wall_s);
        exit_code = 130;
    } else if (r.failed) {
        fprintf(stderr, "psrun: job failed: %s\n", r.failure);
        exit_code = 1;
    } else if (summarise(&r, wall_s) != 0) {
        exit_code = 1;
    }
    for (int i = 0; i < r.nkids && exit_code == 0; i++) {
        if (r.kids[i].lost) {
            fprintf(stderr, "psrun: the job finished without %s, which failed\n", r.kids[i].name);
            exit_code = 1;
        }
    }
    remove_tmpdir(&r);
    return exit_code;
}
