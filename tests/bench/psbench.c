/* psbench.c — the data-path benchmark (docs/architecture.md#build-and-test): real psd processes and
 * workers in forked processes, each figure beside its physical reference
 * measured in the same run (raw ZeroMQ moving the same bytes between the
 * same number of processes, memcpy of the same bytes, the same model trained
 * in one process). Prints medians as a table, or JSON with --json.
 * With --netns-server/--netns-workers (tests/bench/hosts_bench.py) it runs
 * psd and its workers in network namespaces of their own, across links.
 * The sparse group is in psbench_sparse.c; what the two share, psbench.h. */
#include "compress.h"
#include "curve.h"
#include "dataset.h"
#include "engine.h"
#include "job.h"
#include "model.h"
#include "psbench.h"
#include "psworker.h"
#include "stdout_guard.h"
#include "store.h"
#include "util.h"

#include <arpa/inet.h>
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <sched.h>
#include <sodium.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#define RSS_ROUNDS 10 /* rounds between the two VmHWM readings */

/* ---- figures ----------------------------------------------------------- */

void figure_add(bench *b, const char *name, double ours, double ref, const char *unit,
                const char *ref_is)
{
    if (b->nfigs == MAX_FIGURES)
        return;
    figure *f = &b->figs[b->nfigs++];
    ps_strlcpy(f->name, name, sizeof f->name);
    f->ours = ours;
    f->ref = ref;
    f->ratio = ref != 0.0 ? ours / ref : 0.0;
    f->unit = unit;
    ps_strlcpy(f->ref_is, ref_is, sizeof f->ref_is);
    if (!b->json)
        fprintf(stderr, "psbench: %s: %.4g %s (reference %.4g, ratio %.3f)\n", name, ours, unit,
                ref, f->ratio);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of n values (sorted in place); 0 for none. */
double median(double *v, size_t n)
{
    if (n == 0)
        return 0.0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int reps(const bench *b, int n)
{
    int r = (int)lround(n * b->scale);
    if (r < 3)
        r = 3;
    return r > MAX_REPS ? MAX_REPS : r;
}

static bool wanted(const bench *b, const char *group)
{
    return b->only == NULL || strncmp(group, b->only, strlen(b->only)) == 0 ||
           strncmp(b->only, group, strlen(group)) == 0;
}

/* The groups main runs, in its order, for --only's check and message. */
static const char *const groups[] = {"codec", "apply",  "pushpull", "curve", "sync", "rss",
                                     "pulls", "scrape", "sparse",   "train", "swarm"};
#define NGROUPS (sizeof groups / sizeof groups[0])

/* Whether --only names a group, a group's prefix or a figure's (a name
 * past a group's); false, with the reason said, when it names nothing. */
static bool only_known(const bench *b)
{
    for (size_t i = 0; i < NGROUPS; i++)
        if (wanted(b, groups[i]))
            return true;
    fprintf(stderr, "psbench: --only: \"%s\" names no group:", b->only);
    for (size_t i = 0; i < NGROUPS; i++)
        fprintf(stderr, "%s %s", i == 0 ? "" : i + 1 == NGROUPS ? " or" : ",", groups[i]);
    fprintf(stderr, " (or a figure's name that starts with one, such as pushpull_1k_tcp)\n");
    return false;
}

/* A figure of a wanted group: with --only naming more than the group
 * (pushpull_1k_tcp), only the figures whose name starts with it. */
bool figure_wanted(const bench *b, const char *name)
{
    return b->only == NULL || strncmp(name, b->only, strlen(b->only)) == 0;
}

/* Says what went wrong and exits 1; every child gets SIGTERM when we go
 * (PR_SET_PDEATHSIG), so nothing is left running. */
void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("psbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* In a child just forked: SIGTERM when psbench exits, however it exits. */
void child_init(void)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        _exit(1);
}

/* ---- processes --------------------------------------------------------- */

/* In a child just forked: moves it into the network namespace `name`
 * (/run/netns/name, as `ip netns add` makes them); exits 1 if it cannot. */
static void netns_enter(const char *name)
{
    if (name == NULL)
        return;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "/run/netns/%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
        fprintf(stderr, "psbench: cannot enter network namespace %s: %s\n", path, strerror(errno));
        _exit(1);
    }
    close(fd);
}

void proc_track(bench *b, pid_t pid)
{
    if (b->nprocs < MAX_PROCS)
        b->procs[b->nprocs++] = pid;
}

/* SIGTERM to pid, then waits for it; false when it did not exit 0 by itself. */
bool proc_stop(bench *b, pid_t pid)
{
    for (size_t i = 0; i < b->nprocs; i++) {
        if (b->procs[i] == pid) {
            b->procs[i] = b->procs[--b->nprocs];
            break;
        }
    }
    kill(pid, SIGTERM);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void procs_stop_all(bench *b)
{
    while (b->nprocs > 0)
        proc_stop(b, b->procs[b->nprocs - 1]);
}

pid_t spawn(bench *b, const char *prog, char *const argv[])
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", b->bindir, prog);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        child_init();
        if (strcmp(prog, "psd") == 0)
            netns_enter(b->netns_server);
        execv(path, argv);
        fprintf(stderr, "psbench: cannot run %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    proc_track(b, pid);
    return pid;
}

/* ---- endpoints and job files ------------------------------------------- */

int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

void endpoint_new(bench *b, bool ipc, char *out, size_t cap)
{
    if (b->host)
        snprintf(out, cap, "tcp://%s:%d", b->host, free_port()); /* a fresh namespace */
    else if (ipc)
        snprintf(out, cap, "ipc://%s/ep%d.ipc", b->dir, b->next_ipc++);
    else
        snprintf(out, cap, "tcp://127.0.0.1:%d", free_port());
}

void file_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        die("cannot write %s: %s", path, strerror(errno));
}

/* A job whose θ has exactly P floats: a linear model of P - 1 features
 * (w and b). psd never reads the data file; the loader wants it to exist.
 * shm: workers on this host may use shared memory (the default of a job). */
void job_write_flat(bench *b, const char *path, const char *mode, unsigned workers,
                    const char *endpoint, uint64_t p, bool shm)
{
    char data[96], text[1024];
    snprintf(data, sizeof data, "%s/none.csv", b->dir);
    file_write(data, "0,0\n");
    snprintf(text, sizeof text,
             "job: bench\nmode: %s\nworkers: %u\nservers: [\"%s\"]\n"
             "model: {type: linear, features: %llu, init: {scheme: zeros}}\n"
             "data: {train: %s}\noptimizer: {type: sgd, lr: 0.001}\n"
             "training: {epochs: 1, batch_size: 1}\nlog: {level: warn}\nshared_memory: %s\n",
             mode, workers, endpoint, (unsigned long long)(p - 1), data, shm ? "true" : "false");
    if (b->threads >= 0) {
        size_t len = strlen(text);
        snprintf(text + len, sizeof text - len, "threads: %d\n", b->threads);
    }
    if (b->sync_chunk != NULL) {
        size_t len = strlen(text);
        snprintf(text + len, sizeof text - len, "sync_chunk_kib: %s\n", b->sync_chunk);
    }
    if (b->push_codec != NULL || b->pull_codec != NULL) {
        size_t len = strlen(text);
        bool topk = b->push_codec != NULL && strcmp(b->push_codec, "topk") == 0;
        snprintf(text + len, sizeof text - len, "compression: {push: %s, pull: %s%s}\n",
                 b->push_codec ? b->push_codec : "none", b->pull_codec ? b->pull_codec : "none",
                 topk ? ", topk_ratio: 0.01" : "");
    }
    file_write(path, text);
}

pid_t psd_start(bench *b, const char *job_path)
{
    char *argv[] = {"psd", "--config", (char *)job_path, "--log-level", "warn", NULL};
    return spawn(b, "psd", argv);
}

/* ---- worker processes (kid_op, kid_conf: psbench.h) ----------------------- */

bool read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

bool write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

float *floats_new(size_t n, float value)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (p == NULL)
        die("out of memory for %zu floats", n);
    for (size_t i = 0; i < n; i++)
        p[i] = value;
    return p;
}

/* One command on a psd worker; 0 or the client's error. */
static int kid_ps_do(ps_client *c, const kid_cmd *cmd, float *theta, const float *grad,
                     double *value)
{
    double t0 = ps_clock_s();
    int rc = 0;
    if (cmd->op == KID_PUSHPULL || cmd->op == KID_ROUND) {
        /* as psworker trains: θ rides back behind the push */
        ps_push_pull pp = {.size = sizeof(ps_push_pull),
                           .clock = cmd->arg,
                           .grad = grad,
                           .n = (size_t)ps_client_num_params(c),
                           .samples = 1,
                           .min_version = cmd->op == KID_ROUND ? cmd->arg + 1 : 0,
                           .theta = NULL}; /* θ used from the reply's frame */
        (void)theta;
        rc = ps_client_push_pull(c, &pp);
        if (rc == 0 && !pp.pulled)
            rc = PS_ETIMEDOUT;
    } else if (cmd->op == KID_FOR) {
        uint64_t n = 0;
        double end = t0 + (double)cmd->arg / 1000.0, now = t0;
        while (rc == 0 && now < end) {
            rc = ps_client_pull(c, 0, theta, (size_t)ps_client_num_params(c), NULL);
            n++;
            now = ps_clock_s();
        }
        *value = (double)n / (now - t0);
        return rc;
    }
    *value = ps_clock_s() - t0;
    return rc;
}

static int kid_ps_main(const kid_conf *kc, int cmd_fd, int res_fd)
{
    const char *servers[] = {kc->endpoint};
    ps_client_opts o = {.size = sizeof(ps_client_opts),
                        .job = "bench",
                        .servers = servers,
                        .num_servers = 1,
                        .rank = kc->rank,
                        .timeout_ms = 120000,
                        /* alive while it waits for the next command or a
                         * slow round: psd evicts a worker silent for 3 s */
                        .heartbeat_ms = 500,
                        .socket_only = kc->socket_only,
                        .push_compression = kc->push_codec,
                        .push_topk_ratio = 0.01,
                        .push_error_feedback = 1};
    char server_key[160], secret_key[160];
    if (kc->curve_dir != NULL) {
        snprintf(server_key, sizeof server_key, "%s/psd.key", kc->curve_dir);
        snprintf(secret_key, sizeof secret_key, "%s/w.key_secret", kc->curve_dir);
        o.curve_server_key_file = server_key;
        o.curve_secret_key_file = secret_key;
    }
    ps_client *c = NULL;
    char why[256];
    int rc = ps_client_open(&o, &c, why, sizeof why);
    if (rc != 0) {
        fprintf(stderr, "psbench: worker %d: %s\n", kc->rank, why);
        return 1;
    }
    const char *shm_why;
    if (!kc->socket_only && ps_client_shared_memory(c, &shm_why) == 0)
        fprintf(stderr, "psbench: worker %d: no shared memory: %s\n", kc->rank, shm_why);
    float *theta = floats_new(kc->floats, 0.0f), *grad = floats_new(kc->floats, 1e-6f);
    kid_cmd cmd;
    while (read_all(cmd_fd, &cmd, sizeof cmd) && cmd.op != KID_QUIT) {
        kid_res res = {0, 0.0};
        res.rc = kid_ps_do(c, &cmd, theta, grad, &res.value);
        if (res.rc != 0)
            fprintf(stderr, "psbench: worker %d: %s\n", kc->rank, ps_client_last_error(c));
        if (!write_all(res_fd, &res, sizeof res))
            break;
    }
    ps_client_close(&c);
    free(theta);
    free(grad);
    return 0;
}

/* One request and its reply on a raw DEALER; 0 or -1. */
static int raw_roundtrip(void *sock, const void *req, size_t req_bytes)
{
    if (zmq_send(sock, req, req_bytes, 0) < 0)
        return -1;
    zmq_msg_t m;
    zmq_msg_init(&m);
    int rc = zmq_msg_recv(&m, sock, 0);
    zmq_msg_close(&m);
    return rc < 0 ? -1 : 0;
}

static int kid_raw_main(const kid_conf *kc, int cmd_fd, int res_fd)
{
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(sock, kc->endpoint) != 0) {
        fprintf(stderr, "psbench: raw client: %s\n", zmq_strerror(errno));
        return 1;
    }
    char *req = malloc(kc->req_bytes);
    if (req == NULL)
        return 1;
    memset(req, 1, kc->req_bytes);
    kid_cmd cmd;
    while (read_all(cmd_fd, &cmd, sizeof cmd) && cmd.op != KID_QUIT) {
        kid_res res = {0, 0.0};
        double t0 = ps_clock_s();
        if (cmd.op == KID_FOR) {
            uint64_t n = 0;
            double end = t0 + (double)cmd.arg / 1000.0, now = t0;
            while (res.rc == 0 && now < end) {
                res.rc = raw_roundtrip(sock, req, kc->req_bytes);
                n++;
                now = ps_clock_s();
            }
            res.value = (double)n / (now - t0);
        } else {
            res.rc = raw_roundtrip(sock, req, kc->req_bytes);
            res.value = ps_clock_s() - t0;
        }
        if (!write_all(res_fd, &res, sizeof res))
            break;
    }
    free(req);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return 0;
}

kid kid_fork(bench *b, const char *netns, int (*main_fn)(const void *arg, int cmd_fd, int res_fd),
             const void *arg)
{
    int cmd[2], res[2];
    if (pipe(cmd) != 0 || pipe(res) != 0)
        die("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        child_init();
        netns_enter(netns);
        close(cmd[1]);
        close(res[0]);
        _exit(main_fn(arg, cmd[0], res[1]));
    }
    close(cmd[0]);
    close(res[1]);
    proc_track(b, pid);
    return (kid){pid, cmd[1], res[0]};
}

static int kid_main(const void *arg, int cmd_fd, int res_fd)
{
    const kid_conf *kc = arg;
    return kc->raw ? kid_raw_main(kc, cmd_fd, res_fd) : kid_ps_main(kc, cmd_fd, res_fd);
}

kid kid_start(bench *b, const kid_conf *kc)
{
    return kid_fork(b, kc->netns, kid_main, kc);
}

/* Sends cmd to all n kids at once, then collects their results into out. */
void kids_step(kid *k, size_t n, kid_cmd cmd, double *out)
{
    for (size_t i = 0; i < n; i++)
        if (!write_all(k[i].cmd_fd, &cmd, sizeof cmd))
            die("a worker process is gone");
    for (size_t i = 0; i < n; i++) {
        kid_res r;
        if (!read_all(k[i].res_fd, &r, sizeof r))
            die("a worker process is gone");
        if (r.rc != 0)
            die("a worker failed: %s", ps_strerror(r.rc));
        out[i] = r.value;
    }
}

void kids_stop(bench *b, kid *k, size_t n)
{
    kid_cmd quit = {KID_QUIT, 0};
    for (size_t i = 0; i < n; i++) {
        write_all(k[i].cmd_fd, &quit, sizeof quit);
        close(k[i].cmd_fd);
        close(k[i].res_fd);
    }
    for (size_t i = 0; i < n; i++) {
        int st;
        while (waitpid(k[i].pid, &st, 0) < 0 && errno == EINTR)
            ;
        for (size_t j = 0; j < b->nprocs; j++) {
            if (b->procs[j] == k[i].pid) {
                b->procs[j] = b->procs[--b->nprocs];
                break;
            }
        }
    }
}

/* ---- the raw ZeroMQ server ---------------------------------------------- */

/* A ROUTER that answers every request with rep_bytes, sent as plainly as
 * ZeroMQ allows (zmq_send copies the buffer). Runs until SIGTERM. */
static void raw_server_main(const char *endpoint, size_t rep_bytes)
{
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(sock, endpoint) != 0) {
        fprintf(stderr, "psbench: raw server: cannot bind %s: %s\n", endpoint, zmq_strerror(errno));
        _exit(1);
    }
    char *rep = malloc(rep_bytes ? rep_bytes : 1);
    if (rep == NULL)
        _exit(1);
    memset(rep, 2, rep_bytes);
    for (;;) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, sock, 0) < 0 || zmq_msg_recv(&body, sock, 0) < 0)
            _exit(1);
        zmq_msg_close(&body);
        if (zmq_msg_send(&id, sock, ZMQ_SNDMORE) < 0 || zmq_send(sock, rep, rep_bytes, 0) < 0)
            _exit(1);
    }
}

static pid_t raw_server_start(bench *b, const char *endpoint, size_t rep_bytes)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        child_init();
        netns_enter(b->netns_server);
        raw_server_main(endpoint, rep_bytes);
    }
    proc_track(b, pid);
    return pid;
}

/* ---- (a) push + pull ----------------------------------------------------- */

/* How psd's workers move θ and gradients: over TCP or IPC sockets only, or
 * through shared memory (headers over TCP), as a job on one host does by
 * default. The raw reference uses the socket (TCP for shm). */
typedef enum transport { T_TCP, T_IPC, T_SHM } transport;
static const char *const transport_names[] = {"tcp", "ipc", "shm"};

/* A psd (async) with n workers and a raw server with n clients moving the
 * same bytes; reps steps of each, interleaved. Medians per worker, in s. */
static void pushpull_measure(bench *b, uint64_t p, unsigned n, transport t, int r, double *ours,
                             double *ref)
{
    char ep[128], raw_ep[128], job[128];
    endpoint_new(b, t == T_IPC, ep, sizeof ep);
    endpoint_new(b, t == T_IPC, raw_ep, sizeof raw_ep);
    snprintf(job, sizeof job, "%s/pushpull.yaml", b->dir);
    job_write_flat(b, job, "async", n, ep, p, t == T_SHM);
    pid_t psd = psd_start(b, job);
    pid_t raw = raw_server_start(b, raw_ep, (size_t)p * sizeof(float));
    kid ps[MAX_KIDS], rk[MAX_KIDS];
    for (unsigned i = 0; i < n; i++) {
        const char *ns = b->n_netns_workers ? b->netns_workers[i % b->n_netns_workers] : NULL;
        kid_conf kc = {.endpoint = ep,
                       .rank = (int)i,
                       .floats = (size_t)p,
                       .socket_only = t != T_SHM,
                       .netns = ns,
                       .push_codec = b->push_codec};
        ps[i] = kid_start(b, &kc);
        kid_conf rc = {
            .raw = true, .endpoint = raw_ep, .req_bytes = (size_t)p * sizeof(float), .netns = ns};
        rk[i] = kid_start(b, &rc);
    }
    double *a = calloc((size_t)(r + 2) * n, sizeof *a), *c = calloc((size_t)(r + 2) * n, sizeof *c);
    if (a == NULL || c == NULL)
        die("out of memory");
    kid_cmd cmd = {KID_PUSHPULL, 0};
    size_t na = 0;
    for (int i = 0; i < r + 2; i++) { /* two warm-up steps, not counted */
        kids_step(ps, n, cmd, a + na);
        kids_step(rk, n, cmd, c + na);
        if (i >= 2)
            na += n;
    }
    *ours = median(a, na);
    *ref = median(c, na);
    free(a);
    free(c);
    kids_stop(b, ps, n);
    kids_stop(b, rk, n);
    proc_stop(b, psd);
    proc_stop(b, raw);
}

static void bench_pushpull(bench *b)
{
    static const struct {
        uint64_t p;
        const char *tag, *bytes;
        int reps;
    } sizes[] = {{1000, "1k", "4 kB", 200},
                 {M_FLOATS, "1M", "4 MB", 40},
                 {10 * (uint64_t)M_FLOATS, "10M", "40 MB", 12}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (transport t = T_TCP; t <= T_SHM; t++) {
            for (unsigned w = 1; w <= 2; w++) {
                char name[48], ref_is[64];
                snprintf(name, sizeof name, "pushpull_%s_%s_%uw", sizes[s].tag, transport_names[t],
                         w);
                if (!figure_wanted(b, name))
                    continue;
                double ours, ref;
                pushpull_measure(b, sizes[s].p, w, t, reps(b, sizes[s].reps), &ours, &ref);
                snprintf(ref_is, sizeof ref_is, "raw zmq %s%s req + rep", sizes[s].bytes,
                         t == T_SHM ? " tcp" : "");
                figure_add(b, name, ours * 1e3, ref * 1e3, "ms", ref_is);
            }
        }
    }
}

/* The cipher CURVE runs on every message (crypto_box after the shared key:
 * XSalsa20 + Poly1305), in this process: a push + pull of n bytes each way
 * is sealed and opened twice, once by each side. Seconds. */
static double cipher_step(unsigned char *plain, unsigned char *boxed, size_t n,
                          const unsigned char *key, unsigned char *nonce)
{
    double t0 = ps_clock_s();
    for (int dir = 0; dir < 2; dir++) {
        sodium_increment(nonce, crypto_box_NONCEBYTES);
        if (crypto_box_easy_afternm(boxed, plain, n, nonce, key) != 0 ||
            crypto_box_open_easy_afternm(plain, boxed, n + crypto_box_MACBYTES, nonce, key) != 0)
            die("libsodium: crypto_box of %zu bytes failed", n);
    }
    return ps_clock_s() - t0;
}

/* CURVE's cost: push + pull of 1M floats over TCP to a psd with CURVE,
 * beside the same to a psd without it, step by step in the same run; and
 * beside the plain step plus the cipher's own time for the same bytes. */
static void bench_curve(bench *b)
{
    char keys[128], name[160], link_to[192], ep[128], plain_ep[128], job[128], plain_job[128];
    snprintf(keys, sizeof keys, "%s/keys", b->dir);
    if (mkdir(keys, 0700) != 0)
        die("cannot make %s: %s", keys, strerror(errno));
    ps_error err;
    snprintf(name, sizeof name, "%s/psd", keys);
    if (ps_curve_keygen(name, &err) != 0)
        die("%s", err.msg);
    snprintf(name, sizeof name, "%s/w", keys);
    if (ps_curve_keygen(name, &err) != 0)
        die("%s", err.msg);
    snprintf(name, sizeof name, "%s/w.key", keys);
    snprintf(link_to, sizeof link_to, "%s/workers", keys);
    if (mkdir(link_to, 0700) != 0)
        die("cannot make %s: %s", link_to, strerror(errno));
    snprintf(link_to, sizeof link_to, "%s/workers/w.key", keys);
    if (link(name, link_to) != 0)
        die("cannot link %s: %s", link_to, strerror(errno));
    uint64_t p = M_FLOATS;
    endpoint_new(b, false, ep, sizeof ep);
    endpoint_new(b, false, plain_ep, sizeof plain_ep);
    snprintf(job, sizeof job, "%s/curve.yaml", b->dir);
    snprintf(plain_job, sizeof plain_job, "%s/plain.yaml", b->dir);
    job_write_flat(b, plain_job, "async", 1, plain_ep, p, false);
    job_write_flat(b, job, "async", 1, ep, p, false);
    FILE *f = fopen(job, "a");
    if (f == NULL)
        die("cannot write %s: %s", job, strerror(errno));
    fprintf(f,
            "security:\n  curve:\n    server_secret_key: %s/psd.key_secret\n"
            "    authorized_workers: %s/workers/\n",
            keys, keys);
    fclose(f);
    pid_t psd = psd_start(b, job), plain = psd_start(b, plain_job);
    kid_conf kc = {
        .endpoint = ep, .rank = 0, .floats = (size_t)p, .socket_only = true, .curve_dir = keys};
    kid_conf pc = {.endpoint = plain_ep, .rank = 0, .floats = (size_t)p, .socket_only = true};
    kid k[2] = {kid_start(b, &kc), kid_start(b, &pc)};
    int r = reps(b, 40);
    double *a = calloc((size_t)r + 2, sizeof *a), *c = calloc((size_t)r + 2, sizeof *c);
    double *x = calloc((size_t)r + 2, sizeof *x), *sum = calloc((size_t)r + 2, sizeof *sum);
    size_t bytes = (size_t)p * sizeof(float);
    unsigned char key[crypto_box_BEFORENMBYTES], pk[crypto_box_PUBLICKEYBYTES],
        sk[crypto_box_SECRETKEYBYTES], nonce[crypto_box_NONCEBYTES] = {0};
    unsigned char *clear = calloc(bytes, 1), *boxed = malloc(bytes + crypto_box_MACBYTES);
    if (a == NULL || c == NULL || x == NULL || sum == NULL || clear == NULL || boxed == NULL)
        die("out of memory");
    if (sodium_init() < 0 || crypto_box_keypair(pk, sk) != 0 || crypto_box_beforenm(key, pk, sk))
        die("libsodium: cannot make a key");
    kid_cmd cmd = {KID_PUSHPULL, 0};
    size_t na = 0;
    for (int i = 0; i < r + 2; i++) { /* two warm-up steps, not counted */
        kids_step(&k[0], 1, cmd, a + na);
        kids_step(&k[1], 1, cmd, c + na);
        x[na] = cipher_step(clear, boxed, bytes, key, nonce);
        sum[na] = c[na] + x[na];
        if (i >= 2)
            na++;
    }
    double curve = median(a, na), cipher = median(x, na);
    figure_add(b, "pushpull_1M_tcp_curve", curve * 1e3, median(c, na) * 1e3, "ms",
               "the same 4 MB push + pull without CURVE");
    figure_add(b, "cipher_1M_pushpull", cipher * 1e3, median(c, na) * 1e3, "ms",
               "the plain push + pull; ours: libsodium crypto_box seal + open of 4 MB, both ways");
    figure_add(b, "pushpull_1M_tcp_curve_vs_cipher", curve * 1e3, median(sum, na) * 1e3, "ms",
               "the plain push + pull plus the cipher's seal + open of its bytes, same step");
    free(clear);
    free(boxed);
    free(x);
    free(sum);
    free(a);
    free(c);
    kids_stop(b, &k[0], 1);
    kids_stop(b, &k[1], 1);
    proc_stop(b, psd);
    proc_stop(b, plain);
}

/* Across hosts (--netns-*): push + pull of 1k and 1M floats, every byte over
 * the links between the namespaces, beside raw ZeroMQ moving the same bytes
 * over the same links, interleaved step by step; with 1 worker, then 2, 4,
 * 8 ... and as many as namespaces were given (worker i in namespace i). */
static void bench_hosts(bench *b)
{
    static const struct {
        uint64_t p;
        const char *tag, *bytes;
        int reps;
    } sizes[] = {{1000, "1k", "4 kB", 200}, {M_FLOATS, "1M", "4 MB", 40}};
    unsigned most = b->n_netns_workers > 0 ? (unsigned)b->n_netns_workers : 1;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (unsigned w = 1; w <= most; w = w * 2 > most && w < most ? most : w * 2) {
            char name[48], ref_is[64];
            snprintf(name, sizeof name, "pushpull_%s_hosts_%uw", sizes[s].tag, w);
            if (!figure_wanted(b, name))
                continue;
            double ours, ref;
            pushpull_measure(b, sizes[s].p, w, T_TCP, reps(b, sizes[s].reps), &ours, &ref);
            snprintf(ref_is, sizeof ref_is, "raw zmq %s req + rep, same links", sizes[s].bytes);
            figure_add(b, name, ours * 1e3, ref * 1e3, "ms", ref_is);
        }
    }
    /* 1M floats, one worker, per codec setting (push/pull), beside raw
     * ZeroMQ moving them uncompressed (4 MB each way) over the same links */
    static const char *const codecs[][3] = {
        {"fp16", "fp16", "fp16"},      {"bf16", "bf16", "bf16"},  {"int8", "int8", "int8"},
        {"int8", "fp16", "int8_fp16"}, {"topk", "none", "topk1"}, {"topk", "int8", "topk1_int8"}};
    for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++) {
        char name[48];
        snprintf(name, sizeof name, "pushpull_1M_hosts_1w_%s", codecs[i][2]);
        if (!figure_wanted(b, name))
            continue;
        b->push_codec = codecs[i][0];
        b->pull_codec = codecs[i][1];
        double ours, ref;
        pushpull_measure(b, M_FLOATS, 1, T_TCP, reps(b, 40), &ours, &ref);
        figure_add(b, name, ours * 1e3, ref * 1e3, "ms", "raw zmq 4 MB req + rep, same links");
    }
    b->push_codec = b->pull_codec = NULL;
}

/* ---- (g) codecs ------------------------------------------------------------ */

/* Encode and decode of 1M floats (4 MB of float32, gradient-like values) per
 * codec on one core, in GB/s of float32, beside memcpy of the same buffer in
 * the same run; and the bytes one push + pull of 1M floats takes per codec
 * setting, beside float32 both ways. */
static void bench_codec(bench *b)
{
    const size_t n = M_FLOATS;
    float *x = floats_new(n, 0.0f), *y = floats_new(n, 0.0f), *scratch = floats_new(n, 0.0f);
    unsigned char *out = malloc(n * sizeof(float));
    if (out == NULL)
        die("out of memory");
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 1e-2f;
    }
    int r = reps(b, 30);
    double *te = calloc((size_t)r, sizeof *te), *td = calloc((size_t)r, sizeof *td),
           *tm = calloc((size_t)r, sizeof *tm);
    if (te == NULL || td == NULL || tm == NULL)
        die("out of memory");
    const double gb = (double)n * sizeof(float) / 1e9;
    for (int t = PS_COMPRESS_FP16; t < PS_COMPRESS_COUNT; t++) {
        const ps_compress_ops *ops = ps_compress_ops_get((ps_compress_type)t);
        size_t k = ps_compress_topk_k(n, 0.01);
        size_t bytes = ops->bytes(n, k);
        for (int i = -2; i < r; i++) {
            double t0 = ps_clock_s();
            if (ops->encode(x, n, k, out, scratch) != 0)
                die("%s: cannot encode", ops->name);
            double t1 = ps_clock_s();
            ops->decode(out, bytes, y, n);
            double t2 = ps_clock_s();
            memcpy(y, x, n * sizeof(float));
            double t3 = ps_clock_s();
            if (i >= 0) {
                te[i] = gb / (t1 - t0);
                td[i] = gb / (t2 - t1);
                tm[i] = gb / (t3 - t2);
            }
            x[(size_t)(i + 2) & 1023] += y[5] * 1e-9f; /* keep the copies */
        }
        char name[48];
        snprintf(name, sizeof name, "encode_%s%s", ops->name, t == PS_COMPRESS_TOPK ? "1" : "");
        figure_add(b, name, median(te, (size_t)r), median(tm, (size_t)r), "GB/s",
                   "memcpy 4 MB, same buffer");
        snprintf(name, sizeof name, "decode_%s%s", ops->name, t == PS_COMPRESS_TOPK ? "1" : "");
        figure_add(b, name, median(td, (size_t)r), median(tm, (size_t)r), "GB/s",
                   "memcpy 4 MB, same buffer");
    }
    static const struct {
        ps_compress_type push, pull;
        const char *tag;
    } settings[] = {{PS_COMPRESS_FP16, PS_COMPRESS_FP16, "fp16"},
                    {PS_COMPRESS_INT8, PS_COMPRESS_INT8, "int8"},
                    {PS_COMPRESS_INT8, PS_COMPRESS_FP16, "int8_fp16"},
                    {PS_COMPRESS_TOPK, PS_COMPRESS_NONE, "topk1"}};
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        size_t k = ps_compress_topk_k(n, 0.01);
        double bytes = (double)(ps_compress_ops_get(settings[i].push)->bytes(n, k) +
                                ps_compress_ops_get(settings[i].pull)->bytes(n, k));
        char name[48];
        snprintf(name, sizeof name, "bytes_pushpull_1M_%s", settings[i].tag);
        figure_add(b, name, bytes / 1e6, 8.0, "MB", "float32 push + pull");
    }
    free(te);
    free(td);
    free(tm);
    free(x);
    free(y);
    free(scratch);
    free(out);
}

/* ---- (b) apply ------------------------------------------------------------ */

typedef struct apply_ctx {
    uint32_t worker_id;
    int status;
    char identity[16]; /* the worker's peer identity, as the engine sees it */
} apply_ctx;

static int apply_send(void *ctx, const void *identity, size_t identity_len, ps_msg *reply,
                      const void *payload)
{
    (void)identity;
    (void)identity_len;
    (void)payload;
    apply_ctx *a = ctx;
    if (reply->type == PS_MSG_WELCOME)
        a->worker_id = reply->worker_id;
    a->status = reply->type == PS_MSG_ERROR ? reply->status : 0;
    return 0;
}

/* An engine of a flat θ of p floats in mode with threads (-1: as --threads
 * says), and workers ranks registered (ac[rank]). */
static ps_engine *mode_engine(bench *b, uint64_t p, int threads, const char *tag, const char *mode,
                              unsigned workers, apply_ctx *ac)
{
    char job_path[128];
    snprintf(job_path, sizeof job_path, "%s/apply_%s.yaml", b->dir, tag);
    int given = b->threads;
    if (threads >= 0)
        b->threads = threads;
    job_write_flat(b, job_path, mode, workers, "tcp://127.0.0.1:1", p, false);
    b->threads = given;
    ps_job job;
    ps_error err;
    if (ps_job_load(job_path, &job, &err) != 0)
        die("%s", err.msg);
    static const ps_log quiet = {PS_LOG_WARN, "psbench"}; /* not the engine's joins */
    ps_engine *e = ps_engine_new(&job, 0, &quiet, &err);
    if (e == NULL)
        die("engine: %s", err.msg);
    for (unsigned r = 0; r < workers; r++) {
        ac[r] = (apply_ctx){0, 0, {0}};
        snprintf(ac[r].identity, sizeof ac[r].identity, "w%u", r);
        ps_msg m;
        ps_msg_init(&m, PS_MSG_HELLO);
        m.job = "bench";
        m.rank = (int32_t)r;
        m.seq = 1;
        ps_engine_handle(e, ac[r].identity, strlen(ac[r].identity), 0, &m, NULL, apply_send,
                         &ac[r]);
        if (ac[r].status != 0 || ac[r].worker_id == 0)
            die("engine: rank %u not registered: %s", r, ps_strerror(ac[r].status));
    }
    return e;
}

/* An engine of a flat θ of p floats in async mode, one worker (ac). */
static ps_engine *apply_engine(bench *b, uint64_t p, int threads, const char *tag, apply_ctx *ac)
{
    return mode_engine(b, p, threads, tag, "async", 1, ac);
}

/* One push of grad (p floats, as a received frame holds it: its own
 * malloc'd buffer) applied by e: its seconds. */
static double push_once(ps_engine *e, apply_ctx *ac, uint64_t seq, uint64_t clock,
                        const float *grad, uint64_t p)
{
    ps_msg m;
    ps_msg_init(&m, PS_MSG_PUSH);
    m.job = "bench";
    m.worker_id = ac->worker_id;
    m.seq = seq;
    m.clock = clock;
    m.key_lo = 0;
    m.key_hi = p;
    m.samples = 1;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = p * sizeof(float);
    m.payload = grad;
    double t0 = ps_clock_s();
    ps_engine_handle(e, ac->identity, strlen(ac->identity), 0, &m, NULL, apply_send, ac);
    double t = ps_clock_s() - t0;
    if (ac->status != 0)
        die("apply: push refused: %s", ps_strerror(ac->status));
    return t;
}

static double apply_once(ps_engine *e, apply_ctx *ac, uint64_t seq, const float *grad, uint64_t p)
{
    return push_once(e, ac, seq, 0, grad, p);
}

/* sync_round_100M_2w_2threads: the work of psd in a sync round of 2
 * workers' pushes of 100 M floats (the first accumulated, the second
 * accumulated and the round's mean applied), in the engine, on 2 threads
 * beside 1, rounds alternating. Without the wire: what threads change. */
static void bench_sync_threads(bench *b)
{
    const uint64_t q = 100 * (uint64_t)M_FLOATS;
    apply_ctx a1[2], a2[2];
    ps_engine *e1 = mode_engine(b, q, 1, "sync100M_1", "sync", 2, a1),
              *e2 = mode_engine(b, q, 2, "sync100M_2", "sync", 2, a2);
    float *grad[2] = {floats_new((size_t)q, 1e-6f), floats_new((size_t)q, 2e-6f)};
    int r = reps(b, 7);
    double *t1 = calloc((size_t)r, sizeof *t1), *t2 = calloc((size_t)r, sizeof *t2);
    if (t1 == NULL || t2 == NULL)
        die("out of memory");
    for (int i = -1; i < r; i++) {
        uint64_t round = (uint64_t)(i + 1), seq = round + 10;
        double one = 0, two = 0;
        for (int w = 0; w < 2; w++)
            one += push_once(e1, &a1[w], seq, round, grad[w], q);
        for (int w = 0; w < 2; w++)
            two += push_once(e2, &a2[w], seq, round, grad[w], q);
        if (i >= 0) {
            t1[i] = one;
            t2[i] = two;
        }
    }
    figure_add(b, "sync_round_100M_2w_2threads", median(t2, (size_t)r) * 1e3,
               median(t1, (size_t)r) * 1e3, "ms",
               "the same round on 1 thread (threads: 1); psd's work, no wire");
    free(grad[0]);
    free(grad[1]);
    free(t1);
    free(t2);
    ps_engine_destroy(&e1);
    ps_engine_destroy(&e2);
}

/* apply_10M: a push of 10 M floats applied (the engine's default threads)
 * beside a memcpy of its bytes; apply_100M_2threads: 100 M floats applied
 * on 2 threads beside 1, pushes alternating. */
static void bench_apply(bench *b)
{
    const uint64_t p = 10 * (uint64_t)M_FLOATS;
    apply_ctx ac;
    ps_engine *e = apply_engine(b, p, -1, "10M", &ac);
    float *grad = floats_new((size_t)p, 1e-6f);
    float *src = floats_new((size_t)p, 1.0f), *dst = floats_new((size_t)p, 0.0f);
    int r = reps(b, 25);
    double *ta = calloc((size_t)r, sizeof *ta), *tm = calloc((size_t)r, sizeof *tm);
    if (ta == NULL || tm == NULL)
        die("out of memory");
    for (int i = -2; i < r; i++) {
        double a = apply_once(e, &ac, (uint64_t)(i + 10), grad, p);
        double t1 = ps_clock_s();
        memcpy(dst, src, (size_t)p * sizeof(float));
        double t2 = ps_clock_s();
        if (i >= 0) {
            ta[i] = a;
            tm[i] = t2 - t1;
        }
        src[(size_t)i & 1023] += dst[77]; /* keep the copy */
    }
    if (figure_wanted(b, "apply_10M"))
        figure_add(b, "apply_10M", median(ta, (size_t)r) * 1e3, median(tm, (size_t)r) * 1e3, "ms",
                   "memcpy 40 MB");
    free(src);
    free(dst);
    free(grad);
    ps_engine_destroy(&e);
    if (!figure_wanted(b, "apply_100M_2threads")) {
        free(ta);
        free(tm);
        return;
    }
    const uint64_t q = 100 * (uint64_t)M_FLOATS;
    apply_ctx a1, a2;
    ps_engine *e1 = apply_engine(b, q, 1, "100M_1", &a1),
              *e2 = apply_engine(b, q, 2, "100M_2", &a2);
    grad = floats_new((size_t)q, 1e-6f);
    int r2 = reps(b, 7) < r ? reps(b, 7) : r;
    for (int i = -1; i < r2; i++) {
        double one = apply_once(e1, &a1, (uint64_t)(i + 10), grad, q);
        double two = apply_once(e2, &a2, (uint64_t)(i + 10), grad, q);
        if (i >= 0) {
            ta[i] = two;
            tm[i] = one;
        }
    }
    figure_add(b, "apply_100M_2threads", median(ta, (size_t)r2) * 1e3, median(tm, (size_t)r2) * 1e3,
               "ms", "the same on 1 thread (threads: 1)");
    free(grad);
    free(ta);
    free(tm);
    ps_engine_destroy(&e1);
    ps_engine_destroy(&e2);
}

/* ---- (c) sync rounds and (f) peak RSS -------------------------------------- */

/* psd's peak resident set (VmHWM) in MB; -1 when unreadable. */
static double proc_hwm_mb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1.0;
    double mb = -1.0;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long long kb;
        if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
            mb = (double)kb * 1024.0 / 1e6;
    }
    fclose(f);
    return mb;
}

/* Rounds of a sync job with n workers over P floats (TCP, or shared memory
 * with shm); the median round (parent's wall time per lockstep step), and
 * psd's VmHWM after `rounds` and after 2 · rounds when hwm is not NULL. */
static double sync_rounds(bench *b, uint64_t p, unsigned n, bool shm, int rounds, double hwm[2])
{
    char ep[128], job[128];
    endpoint_new(b, false, ep, sizeof ep);
    snprintf(job, sizeof job, "%s/sync.yaml", b->dir);
    job_write_flat(b, job, "sync", n, ep, p, shm);
    pid_t psd = psd_start(b, job);
    kid k[MAX_KIDS];
    for (unsigned i = 0; i < n; i++) {
        kid_conf kc = {.endpoint = ep, .rank = (int)i, .floats = (size_t)p, .socket_only = !shm};
        k[i] = kid_start(b, &kc);
    }
    int total = hwm ? 2 * rounds : rounds + 2;
    double *t = calloc((size_t)total, sizeof *t), out[MAX_KIDS];
    if (t == NULL)
        die("out of memory");
    size_t nt = 0;
    for (int i = 0; i < total; i++) {
        kid_cmd cmd = {KID_ROUND, (uint64_t)i};
        double t0 = ps_clock_s();
        kids_step(k, n, cmd, out);
        double dt = ps_clock_s() - t0;
        if (i >= 2)
            t[nt++] = dt;
        if (hwm && i + 1 == rounds)
            hwm[0] = proc_hwm_mb(psd);
    }
    if (hwm)
        hwm[1] = proc_hwm_mb(psd);
    double med = median(t, nt);
    free(t);
    kids_stop(b, k, n);
    proc_stop(b, psd);
    return med;
}

/* The raw reference of a sync round: n clients each moving 4P bytes each
 * way at once (TCP), median per step. */
static double raw_rounds(bench *b, uint64_t p, unsigned n, int r)
{
    char ep[128];
    endpoint_new(b, false, ep, sizeof ep);
    pid_t raw = raw_server_start(b, ep, (size_t)p * sizeof(float));
    kid k[MAX_KIDS];
    for (unsigned i = 0; i < n; i++) {
        kid_conf kc = {.raw = true, .endpoint = ep, .req_bytes = (size_t)p * sizeof(float)};
        k[i] = kid_start(b, &kc);
    }
    double *t = calloc((size_t)r + 2, sizeof *t), out[MAX_KIDS];
    if (t == NULL)
        die("out of memory");
    size_t nt = 0;
    for (int i = 0; i < r + 2; i++) {
        kid_cmd cmd = {KID_PUSHPULL, 0};
        double t0 = ps_clock_s();
        kids_step(k, n, cmd, out);
        if (i >= 2)
            t[nt++] = ps_clock_s() - t0;
    }
    double med = median(t, nt);
    free(t);
    kids_stop(b, k, n);
    proc_stop(b, raw);
    return med;
}

static void bench_sync(bench *b)
{
    if (figure_wanted(b, "sync_round_1M")) {
        double ours = sync_rounds(b, M_FLOATS, 2, false, reps(b, 40), NULL);
        double shm = sync_rounds(b, M_FLOATS, 2, true, reps(b, 40), NULL);
        double ref = raw_rounds(b, M_FLOATS, 2, reps(b, 40));
        figure_add(b, "sync_round_1M_2w", ours * 1e3, ref * 1e3, "ms",
                   "raw zmq 2 x (4 MB req + rep)");
        figure_add(b, "sync_round_1M_2w_shm", shm * 1e3, ref * 1e3, "ms",
                   "raw zmq tcp 2 x (4 MB req + rep)");
    }
    if (figure_wanted(b, "sync_round_1M_32w")) {
        /* 32 workers on psd's host (shared memory: no wire), beside reading
         * their 32 x 4 MB gradients once (memcpy of each into one buffer) */
        const unsigned n = 32;
        double ours = sync_rounds(b, M_FLOATS, n, true, reps(b, 15), NULL);
        size_t bytes = (size_t)M_FLOATS * sizeof(float);
        float *dst = floats_new(M_FLOATS, 0.0f), *src[32];
        for (unsigned i = 0; i < n; i++)
            src[i] = floats_new(M_FLOATS, (float)i);
        int r = reps(b, 15);
        double *t = calloc((size_t)r, sizeof *t);
        if (t == NULL)
            die("out of memory");
        for (int i = 0; i < r; i++) {
            double t0 = ps_clock_s();
            for (unsigned w = 0; w < n; w++)
                memcpy(dst, src[w], bytes);
            t[i] = ps_clock_s() - t0;
            src[i % n][7] += dst[3]; /* keep the copies */
        }
        figure_add(b, "sync_round_1M_32w_shm", ours * 1e3, median(t, (size_t)r) * 1e3, "ms",
                   "memcpy of the 32 x 4 MB gradients once");
        free(t);
        free(dst);
        for (unsigned i = 0; i < n; i++)
            free(src[i]);
    }
    if (figure_wanted(b, "sync_round_100M_2w_2threads"))
        bench_sync_threads(b);
}

static void bench_rss(bench *b)
{
    int rounds = reps(b, RSS_ROUNDS);
    double ref = raw_rounds(b, 10 * (uint64_t)M_FLOATS, 2, reps(b, 8));
    char note[64];
    snprintf(note, sizeof note, "VmHWM after %d rounds", rounds);
    for (int shm = 0; shm < 2; shm++) {
        double hwm[2] = {-1, -1};
        double ours = sync_rounds(b, 10 * (uint64_t)M_FLOATS, 2, shm, rounds, hwm);
        const char *tag = shm ? "_shm" : "";
        char name[48];
        snprintf(name, sizeof name, "sync_round_10M_2w%s", tag);
        figure_add(b, name, ours * 1e3, ref * 1e3, "ms", "raw zmq tcp 2 x (40 MB req + rep)");
        snprintf(name, sizeof name, "rss_10M_sync_2w%s", tag);
        figure_add(b, name, hwm[1], 40.0, "MB",
                   shm ? "θ: 40 MB (shared memory counted)" : "θ: 40 MB");
        snprintf(name, sizeof name, "rss_10M_sync_2w%s_growth", tag);
        figure_add(b, name, hwm[1], hwm[0], "MB", note);
    }
}

/* ---- (e) pulls per second ----------------------------------------------- */

static void bench_pulls(bench *b)
{
    const unsigned n = 8;
    const uint64_t p = 1000;
    char ep[128], raw_ep[128], job[128];
    endpoint_new(b, false, ep, sizeof ep);
    endpoint_new(b, false, raw_ep, sizeof raw_ep);
    snprintf(job, sizeof job, "%s/pulls.yaml", b->dir);
    job_write_flat(b, job, "async", n, ep, p, true);
    pid_t psd = psd_start(b, job);
    pid_t raw = raw_server_start(b, raw_ep, (size_t)p * sizeof(float));
    kid ps[MAX_KIDS], rk[MAX_KIDS];
    for (unsigned i = 0; i < n; i++) {
        kid_conf kc = {.endpoint = ep, .rank = (int)i, .floats = (size_t)p};
        ps[i] = kid_start(b, &kc);
        kid_conf rc = {.raw = true, .endpoint = raw_ep, .req_bytes = 64};
        rk[i] = kid_start(b, &rc);
    }
    int r = reps(b, 5);
    double a[MAX_REPS], c[MAX_REPS], out[MAX_KIDS];
    kid_cmd warm = {KID_FOR, 100}, cmd = {KID_FOR, 600};
    kids_step(ps, n, warm, out);
    kids_step(rk, n, warm, out);
    for (int i = 0; i < r; i++) {
        a[i] = c[i] = 0;
        kids_step(ps, n, cmd, out);
        for (unsigned k = 0; k < n; k++)
            a[i] += out[k];
        kids_step(rk, n, cmd, out);
        for (unsigned k = 0; k < n; k++)
            c[i] += out[k];
    }
    figure_add(b, "pulls_1k_8w", median(a, (size_t)r), median(c, (size_t)r), "pulls/s",
               "raw zmq 64 B req, 4 kB rep");
    kids_stop(b, ps, n);
    kids_stop(b, rk, n);
    proc_stop(b, psd);
    proc_stop(b, raw);
}

/* ---- (h) scrapes of /metrics during a sync job ---------------------------- */

/* One GET /metrics on a new connection, read to its end; false on failure. */
static bool scrape_once(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {2, 0};
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: psbench\r\nConnection: close\r\n\r\n";
    bool ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0 &&
              connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write_all(fd, req, strlen(req));
    char buf[16384];
    ssize_t n = 0;
    while (ok && (n = read(fd, buf, sizeof buf)) > 0)
        ;
    if (fd >= 0)
        close(fd);
    return ok && n == 0;
}

/* A child that scrapes /metrics on port hz times a second until SIGTERM. */
static pid_t scraper_start(bench *b, int port, int hz)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        child_init();
        double next = ps_clock_s();
        for (;;) {
            if (!scrape_once(port))
                fprintf(stderr, "psbench: a scrape of /metrics failed\n");
            next += 1.0 / hz;
            double wait = next - ps_clock_s();
            if (wait > 0)
                usleep((useconds_t)(wait * 1e6));
        }
    }
    proc_track(b, pid);
    return pid;
}

/* The longest of `rounds` sync rounds of the kids, in s; each round's time
 * also goes to all[*nall]. *round is the next round's number. */
static double longest_round(kid *k, unsigned n, int rounds, uint64_t *round, double *all,
                            size_t *nall)
{
    double longest = 0, out[MAX_KIDS];
    for (int i = 0; i < rounds; i++) {
        kid_cmd cmd = {KID_ROUND, (*round)++};
        double t0 = ps_clock_s();
        kids_step(k, n, cmd, out);
        double dt = ps_clock_s() - t0;
        longest = dt > longest ? dt : longest;
        if (all != NULL)
            all[(*nall)++] = dt;
    }
    return longest;
}

/* A 10M-float sync job with 2 workers (shared memory, as a job on one host
 * runs), metrics on: the longest round over a stretch of rounds while
 * nothing scrapes psd, beside the longest over as many rounds while a
 * child scrapes /metrics scrape_hz times a second; stretches alternate,
 * and the figure is the median of the stretches' longest rounds. A second
 * figure compares the median rounds of all the stretches. */
static void bench_scrape(bench *b)
{
    const uint64_t p = 10 * (uint64_t)M_FLOATS;
    const unsigned n = 2;
    char ep[128], job[128], line[64];
    endpoint_new(b, false, ep, sizeof ep);
    snprintf(job, sizeof job, "%s/scrape.yaml", b->dir);
    job_write_flat(b, job, "sync", n, ep, p, true);
    int port = free_port();
    FILE *f = fopen(job, "a");
    snprintf(line, sizeof line, "metrics: {listen: 127.0.0.1:%d}\n", port);
    if (f == NULL || fputs(line, f) < 0 || fclose(f) != 0)
        die("cannot write %s", job);
    pid_t psd = psd_start(b, job);
    kid k[MAX_KIDS];
    for (unsigned i = 0; i < n; i++) {
        kid_conf kc = {.endpoint = ep, .rank = (int)i, .floats = (size_t)p};
        k[i] = kid_start(b, &kc);
    }
    uint64_t round = 0;
    longest_round(k, n, 3, &round, NULL, NULL); /* warm-up */
    int stretches = reps(b, 5), rounds = reps(b, 40);
    double quiet[MAX_REPS], busy[MAX_REPS];
    double *all_quiet = calloc((size_t)stretches * (size_t)rounds, sizeof(double));
    double *all_busy = calloc((size_t)stretches * (size_t)rounds, sizeof(double));
    if (all_quiet == NULL || all_busy == NULL)
        die("out of memory");
    size_t nq = 0, nb = 0;
    for (int s = 0; s < stretches; s++) {
        for (int order = 0; order < 2; order++) {
            bool scraped = (order + s) % 2 == 1; /* ABBA...: neither always goes first */
            if (scraped) {
                pid_t scraper = scraper_start(b, port, b->scrape_hz);
                busy[s] = longest_round(k, n, rounds, &round, all_busy, &nb);
                proc_stop(b, scraper);
            } else {
                quiet[s] = longest_round(k, n, rounds, &round, all_quiet, &nq);
            }
        }
    }
    char name[48], ref_is[64];
    snprintf(name, sizeof name, "scrape_%dhz_round_max_10M_2w", b->scrape_hz);
    snprintf(ref_is, sizeof ref_is, "longest of %d rounds, no scrapes", rounds);
    figure_add(b, name, median(busy, (size_t)stretches) * 1e3,
               median(quiet, (size_t)stretches) * 1e3, "ms", ref_is);
    snprintf(name, sizeof name, "scrape_%dhz_round_10M_2w", b->scrape_hz);
    figure_add(b, name, median(all_busy, nb) * 1e3, median(all_quiet, nq) * 1e3, "ms",
               "median round, no scrapes");
    free(all_quiet);
    free(all_busy);
    kids_stop(b, k, n);
    proc_stop(b, psd);
}

/* ---- (d) training -------------------------------------------------------- */

typedef struct train_conf {
    const char *model; /* logistic | mlp */
    size_t rows, features, batch;
    unsigned epochs;
    unsigned hidden, classes; /* mlp */
} train_conf;

/* The dense jobs of (d): compute per step dominates, as in real training.
 * A dense model costs the same flops per parameter for every sample, so
 * the batch size sets how much computing a step's θ round trip pays for:
 * train_1w (batch 256) is printed beside the best any server could do over
 * the same wire (train_1w_wire_bound), and train_1w_b1024 shows a step
 * four times heavier. */
static const train_conf train_logistic = {
    .model = "logistic", .rows = 20000, .features = 2000, .batch = 256, .epochs = 5};
static const train_conf train_mlp = {.model = "mlp",
                                     .rows = 20000,
                                     .features = 784,
                                     .batch = 256,
                                     .epochs = 2,
                                     .hidden = 512,
                                     .classes = 10};

/* A dense, learnable data set: small whole-number features (short to write
 * and parse), a label from a fixed random linear rule. */
static void train_data_write(const char *path, const train_conf *tc)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        die("cannot write %s: %s", path, strerror(errno));
    uint64_t s = 12345;
    int *x = malloc(tc->features * sizeof *x);
    double *w = malloc(tc->features * sizeof *w);
    if (x == NULL || w == NULL)
        die("out of memory");
    for (size_t j = 0; j < tc->features; j++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        w[j] = (double)(s >> 40) / (double)(1u << 24) - 0.5;
    }
    bool mlp = strcmp(tc->model, "mlp") == 0;
    for (size_t i = 0; i < tc->rows; i++) {
        double z = 0;
        for (size_t j = 0; j < tc->features; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            x[j] = (int)((s >> 33) % 10);
            z += w[j] * (x[j] - 4.5);
        }
        unsigned label =
            mlp ? (unsigned)((z > 0 ? 1 : 0) + 2 * (x[0] > 4)) % tc->classes : (z > 0 ? 1u : 0u);
        fprintf(f, "%u", label);
        for (size_t j = 0; j < tc->features; j++) {
            fputc(',', f);
            fputc('0' + x[j], f);
        }
        fputc('\n', f);
    }
    free(x);
    free(w);
    if (fclose(f) != 0)
        die("cannot write %s", path);
}

static void train_job_write(bench *b, const char *path, const char *endpoint, const char *data,
                            const train_conf *tc, bool shm)
{
    char model[160], text[1024];
    if (strcmp(tc->model, "mlp") == 0)
        snprintf(model, sizeof model, "{type: mlp, features: %zu, hidden: [%u], classes: %u}",
                 tc->features, tc->hidden, tc->classes);
    else
        snprintf(model, sizeof model, "{type: %s, features: %zu}", tc->model, tc->features);
    snprintf(text, sizeof text,
             "job: bench-train\nmode: sync\nworkers: 1\nservers: [\"%s\"]\nmodel: %s\n"
             "data: {train: %s}\noptimizer: {type: sgd, lr: 0.01}\n"
             "training: {epochs: %u, batch_size: %zu, seed: 7}\nlog: {level: warn}\n"
             "shared_memory: %s\n",
             endpoint, model, data, tc->epochs, tc->batch, shm ? "true" : "false");
    (void)b;
    file_write(path, text);
}

/* samples/s of psworker through psd, from its summary; -1 on failure. */
static double train_through_psd(bench *b, const char *data, const train_conf *tc, bool shm)
{
    char ep[128], job[128], summary[128];
    endpoint_new(b, false, ep, sizeof ep);
    snprintf(job, sizeof job, "%s/train.yaml", b->dir);
    snprintf(summary, sizeof summary, "%s/train.json", b->dir);
    train_job_write(b, job, ep, data, tc, shm);
    unlink(summary);
    pid_t psd = psd_start(b, job);
    char *argv[] = {"psworker",       "--config", job,           "--rank", "0",
                    "--summary-json", summary,    "--log-level", "warn",   NULL};
    pid_t w = spawn(b, "psworker", argv);
    int st = 0;
    while (waitpid(w, &st, 0) < 0 && errno == EINTR)
        ;
    for (size_t j = 0; j < b->nprocs; j++)
        if (b->procs[j] == w)
            b->procs[j] = b->procs[--b->nprocs];
    proc_stop(b, psd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("psworker failed (status %d)", st);
    FILE *f = fopen(summary, "r");
    char buf[4096] = "";
    if (f == NULL)
        die("no summary from psworker");
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    const char *at = strstr(buf, "\"samples_per_s\": ");
    return at ? strtod(at + strlen("\"samples_per_s\": "), NULL) : -1.0;
}

static uint64_t rng_next(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 11;
}

/* The same model on the same data in this process: θ initialised as psd
 * does it, the trainer's steps (shuffle, gather a batch, gradient) with
 * plain SGD on a local θ, and the final evaluation it does; samples/s. */
static double train_in_process(const ps_job *job, const ps_dataset *ds, const train_conf *tc,
                               ps_model *m)
{
    size_t n = ps_dataset_rows(ds), d = ps_dataset_features(ds);
    size_t p = (size_t)ps_model_num_params(m);
    float *theta = floats_new(p, 0.0f), *grad = floats_new(p, 0.0f);
    ps_tensor_info tensors[PS_MAX_TENSORS];
    size_t ntensors = 0;
    uint64_t np = 0;
    if (ps_job_layout(job, tensors, PS_MAX_TENSORS, &ntensors, &np) != 0 || np != p)
        die("the job's layout does not describe the model's %zu parameters", p);
    for (size_t k = 0; k < p; k++)
        theta[k] = ps_store_init_value(job, tensors, ntensors, k);
    float *xb = floats_new(tc->batch * d, 0.0f), *yb = floats_new(tc->batch, 0.0f);
    size_t *perm = malloc(n * sizeof *perm);
    if (perm == NULL)
        die("out of memory");
    const float *x = ps_dataset_cx(ds), *y = ps_dataset_cy(ds);
    uint64_t s = 7;
    double t0 = ps_clock_s();
    size_t samples = 0;
    for (unsigned e = 0; e < tc->epochs; e++) {
        for (size_t i = 0; i < n; i++)
            perm[i] = i;
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = (size_t)(rng_next(&s) % (i + 1)), tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        for (size_t lo = 0; lo < n; lo += tc->batch) {
            size_t rows = n - lo < tc->batch ? n - lo : tc->batch;
            for (size_t k = 0; k < rows; k++) {
                memcpy(xb + k * d, x + perm[lo + k] * d, d * sizeof(float));
                yb[k] = y[perm[lo + k]];
            }
            double loss;
            ps_model_grad(m, theta, xb, yb, rows, grad, &loss);
            for (size_t k = 0; k < p; k++)
                theta[k] -= 0.01f * grad[k];
            samples += rows;
        }
    }
    ps_model_metrics mm;
    ps_model_eval(m, theta, x, y, n, &mm);
    double dt = ps_clock_s() - t0;
    free(theta);
    free(grad);
    free(xb);
    free(yb);
    free(perm);
    return (double)samples / dt;
}

/* The median time of a raw ZeroMQ request + reply of `bytes` each way
 * (TCP), in s: the least a step's push + pull could cost on this wire. */
static double raw_wire_s(bench *b, size_t bytes, int r)
{
    char ep[128];
    endpoint_new(b, false, ep, sizeof ep);
    pid_t raw = raw_server_start(b, ep, bytes);
    kid_conf kc = {.raw = true, .endpoint = ep, .req_bytes = bytes};
    kid k = kid_start(b, &kc);
    double t[MAX_REPS + 2];
    size_t nt = 0;
    for (int i = 0; i < r + 2; i++) {
        kid_cmd cmd = {KID_PUSHPULL, 0};
        double dt;
        kids_step(&k, 1, cmd, &dt);
        if (i >= 2)
            t[nt++] = dt;
    }
    kids_stop(b, &k, 1);
    proc_stop(b, raw);
    return median(t, nt);
}

static void bench_train(bench *b, const train_conf *tc, const char *figure_name, bool ceiling)
{
    char data[128];
    snprintf(data, sizeof data, "%s/train.csv", b->dir);
    train_data_write(data, tc);
    /* the reference's data, read and prepared as the trainer does */
    ps_job job;
    ps_error err;
    char jp[128];
    snprintf(jp, sizeof jp, "%s/train.yaml", b->dir);
    train_job_write(b, jp, "tcp://127.0.0.1:1", data, tc, true);
    if (ps_job_load(jp, &job, &err) != 0)
        die("%s", err.msg);
    ps_dataset *ds = NULL;
    if (ps_dataset_read_csv(data, tc->features, 0, &ds, &err) != 0)
        die("%s", err.msg);
    ps_model_spec spec;
    ps_model_spec_from_job(&job, &spec);
    ps_model *m = NULL;
    if (ps_model_new(&spec, ps_dataset_rows(ds), &m, &err) != 0)
        die("model: %s", err.msg);
    size_t bad;
    if (ps_model_prepare_labels(m, ps_dataset_y(ds), ps_dataset_rows(ds), &bad, &err) != 0)
        die("labels: %s", err.msg);
    double *mean = calloc(tc->features, sizeof *mean), *sd = calloc(tc->features, sizeof *sd);
    if (mean == NULL || sd == NULL)
        die("out of memory");
    ps_dataset_stats(ds, mean, sd);
    ps_dataset_standardize(ds, mean, sd);
    free(mean);
    free(sd);
    /* psworker trains with one BLAS thread unless OPENBLAS_NUM_THREADS says
     * otherwise (worker/psworker_main.c); the reference does the same */
    if (getenv("OPENBLAS_NUM_THREADS") == NULL)
        openblas_set_num_threads(1);
    int r = reps(b, 5);
    /* a: as a job runs by default (shared memory with psd on this host);
     * sock: with the ceiling, the same over TCP only */
    double a[MAX_REPS], sock[MAX_REPS], c[MAX_REPS];
    for (int i = 0; i < r; i++) {
        a[i] = train_through_psd(b, data, tc, true);
        if (ceiling)
            sock[i] = train_through_psd(b, data, tc, false);
        c[i] = train_in_process(&job, ds, tc, m);
    }
    size_t theta_bytes = (size_t)ps_model_num_params(m) * sizeof(float);
    ps_model_destroy(&m);
    ps_dataset_destroy(&ds);
    unlink(data);
    char note[64];
    snprintf(note, sizeof note, "in-process %s, %zu x %zu, batch %zu", tc->model, tc->rows,
             tc->features, tc->batch);
    double in_process = median(c, (size_t)r);
    figure_add(b, figure_name, median(a, (size_t)r), in_process, "samples/s", note);
    if (!ceiling)
        return;
    char name[48], what[96];
    snprintf(name, sizeof name, "%s_tcp", figure_name);
    snprintf(what, sizeof what, "%s; psd over tcp only", note);
    figure_add(b, name, median(sock, (size_t)r), in_process, "samples/s", what);
    /* the best a server could do over the socket: the in-process run plus,
     * every step, θ moved once each way at raw ZeroMQ speed and nothing else */
    double wire = raw_wire_s(b, theta_bytes, reps(b, 20));
    double samples = (double)tc->rows * tc->epochs;
    double steps = (double)tc->epochs * (double)((tc->rows + tc->batch - 1) / tc->batch);
    double best = samples / (samples / in_process + steps * wire);
    snprintf(name, sizeof name, "%s_wire_bound", figure_name);
    snprintf(what, sizeof what, "in-process + raw zmq %.1f MB req + rep a step",
             (double)theta_bytes / 1e6);
    figure_add(b, name, best, in_process, "samples/s", what);
}

/* ---- output ---------------------------------------------------------------- */

static void print_table(const bench *b)
{
    printf("| figure | ours | reference | ratio | reference is |\n");
    printf("|---|---|---|---|---|\n");
    for (size_t i = 0; i < b->nfigs; i++) {
        const figure *f = &b->figs[i];
        printf("| %s | %.4g %s | %.4g %s | %.2f | %s |\n", f->name, f->ours, f->unit, f->ref,
               f->unit, f->ratio, f->ref_is);
    }
}

static void print_json(const bench *b)
{
    printf("[\n");
    for (size_t i = 0; i < b->nfigs; i++) {
        const figure *f = &b->figs[i];
        printf("  {\"figure\": \"%s\", \"ours\": %.6g, \"reference\": %.6g, \"ratio\": %.6g, "
               "\"unit\": \"%s\"}%s\n",
               f->name, f->ours, f->ref, f->ratio, f->unit, i + 1 < b->nfigs ? "," : "");
    }
    printf("]\n");
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: psbench [--json] [--reps X] [--only GROUP] [swarm [--swarm-workers N,..]\n"
               "               [--swarm-seconds S] [--swarm-check]]\n"
               "Measures psd's data path against this machine's limits, each figure beside\n"
               "its reference measured in the same run; medians.\n"
               "  -j, --json        print a JSON list of {figure, ours, reference, ratio, unit}\n"
               "  -r, --reps X      scale the repetitions by X (default 1)\n"
               "  -o, --only GROUP  run only one group: codec, apply, pushpull, curve, sync, rss,\n"
               "                    pulls, scrape, train, sparse, swarm; or a figure's prefix\n"
               "                    (pushpull_1k_tcp, sparse_dim9)\n"
               "  -s, --scrape-hz N scrapes of /metrics a second in the scrape group (20)\n"
               "  --threads N       psd's threads (the job key threads) in every job written;\n"
               "                    by default the jobs leave it out (psd: the cores)\n"
               "  --sync-chunk-kib V the job key sync_chunk_kib (a number or auto) in every\n"
               "                    job written; by default the jobs leave it out\n"
               "  -t, --train M     the model of the training figure: mlp (784-512-10, the\n"
               "                    default) or logistic (2000 features)\n"
               "  --netns-server NS, --netns-workers NS[,NS], --host ADDR\n"
               "                    across hosts (needs root): psd in namespace NS bound to\n"
               "                    ADDR, worker i in the i-th NS; runs only push + pull, with\n"
               "                    1, 2, 4 ... and as many workers as NS given (up to 32;\n"
               "                    --only: a figure's prefix; tests/bench/hosts_bench.py)\n"
               "  swarm             the same as --only swarm: N logical workers from one\n"
               "                    process, psd's CPU per update beside N = the first's\n"
               "  --swarm-workers N,..  the numbers of workers (8,64,512,4096)\n"
               "  --swarm-seconds S the seconds each is measured (3)\n"
               "  --swarm-check     fail when psd evicted a rank or counted other pushes\n"
               "  -h, --help        this text\n"
               "  -V, --version     the version\n");
}

static void bindir_find(bench *b)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        die("cannot find my own folder");
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    ps_strlcpy(b->bindir, self, sizeof b->bindir);
}

int main(int argc, char **argv)
{
    static bench b = {.scale = 1.0,
                      .train_model = "mlp",
                      .scrape_hz = 20,
                      .threads = -1,
                      .swarm_n = {8, 64, 512, 4096},
                      .swarm_nn = 4};
    ps_stdout_guard_install("psbench");
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"reps", required_argument, NULL, 'r'},
        {"only", required_argument, NULL, 'o'},
        {"train", required_argument, NULL, 't'},
        {"scrape-hz", required_argument, NULL, 's'},
        {"threads", required_argument, NULL, 'T'},
        {"sync-chunk-kib", required_argument, NULL, 'K'},
        {"netns-server", required_argument, NULL, 'S'},
        {"netns-workers", required_argument, NULL, 'W'},
        {"host", required_argument, NULL, 'H'},
        {"swarm-workers", required_argument, NULL, 'N'},
        {"swarm-seconds", required_argument, NULL, 'D'},
        {"swarm-check", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "jr:o:t:s:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            b.json = true;
            break;
        case 'r':
            b.scale = strtod(optarg, NULL);
            if (!(b.scale > 0 && b.scale <= 10)) {
                fprintf(stderr, "psbench: --reps: give a number in (0, 10], not %s\n", optarg);
                return 2;
            }
            break;
        case 'o':
            b.only = optarg;
            break;
        case 't':
            if (strcmp(optarg, "mlp") != 0 && strcmp(optarg, "logistic") != 0) {
                fprintf(stderr, "psbench: --train: give mlp or logistic, not %s\n", optarg);
                return 2;
            }
            b.train_model = optarg;
            break;
        case 's':
            b.scrape_hz = atoi(optarg);
            if (b.scrape_hz < 1 || b.scrape_hz > 1000) {
                fprintf(stderr, "psbench: --scrape-hz: give 1 to 1000, not %s\n", optarg);
                return 2;
            }
            break;
        case 'T':
            b.threads = atoi(optarg);
            if (b.threads < 0 || b.threads > 256 ||
                strspn(optarg, "0123456789") != strlen(optarg)) {
                fprintf(stderr, "psbench: --threads: give 0 to 256, not %s\n", optarg);
                return 2;
            }
            break;
        case 'K':
            if (strcmp(optarg, "auto") != 0 &&
                (optarg[0] == '\0' || strspn(optarg, "0123456789") != strlen(optarg) ||
                 strlen(optarg) > 7)) {
                fprintf(stderr, "psbench: --sync-chunk-kib: give a number of KiB or auto, not %s\n",
                        optarg);
                return 2;
            }
            b.sync_chunk = optarg;
            break;
        case 'S':
            b.netns_server = optarg;
            break;
        case 'W':
            for (char *save = NULL, *t = strtok_r(optarg, ",", &save);
                 t != NULL && b.n_netns_workers < MAX_KIDS; t = strtok_r(NULL, ",", &save))
                b.netns_workers[b.n_netns_workers++] = t;
            break;
        case 'H':
            b.host = optarg;
            break;
        case 'N':
            b.swarm_nn = 0;
            for (char *save = NULL, *t = strtok_r(optarg, ",", &save); t != NULL;
                 t = strtok_r(NULL, ",", &save)) {
                char *end;
                unsigned long v = strtoul(t, &end, 10);
                if (*end != '\0' || v < 1 || v > 65536 || b.swarm_nn == 8) {
                    fprintf(stderr,
                            "psbench: --swarm-workers: give up to 8 numbers 1 to 65536 "
                            "split by commas, not %s\n",
                            t);
                    return 2;
                }
                b.swarm_n[b.swarm_nn++] = (unsigned)v;
            }
            if (b.swarm_nn == 0) {
                fprintf(stderr, "psbench: --swarm-workers: give at least one number\n");
                return 2;
            }
            break;
        case 'D':
            b.swarm_seconds = strtod(optarg, NULL);
            if (!(b.swarm_seconds > 0 && b.swarm_seconds <= 600)) {
                fprintf(stderr, "psbench: --swarm-seconds: give a number in (0, 600], not %s\n",
                        optarg);
                return 2;
            }
            break;
        case 'C':
            b.swarm_check = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("psbench %s\n", PS_VERSION_STRING);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind + 1 == argc && strcmp(argv[optind], "swarm") == 0 && b.only == NULL) {
        b.only = "swarm";
        optind++;
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (b.only != NULL && b.netns_server == NULL && !only_known(&b))
        return 2;
    if ((b.netns_server != NULL) != (b.host != NULL) ||
        (b.netns_server != NULL) != (b.n_netns_workers > 0)) {
        fprintf(stderr, "psbench: --netns-server, --netns-workers and --host go together\n");
        return 2;
    }
    ps_malloc_tune(); /* before any zeromq context, in every process forked from here */
    signal(SIGPIPE, SIG_IGN);
    bindir_find(&b);
    snprintf(b.dir, sizeof b.dir, "/tmp/psbench.XXXXXX");
    if (mkdtemp(b.dir) == NULL)
        die("cannot make a temporary folder: %s", strerror(errno));
    double t0 = ps_clock_s();
    if (b.netns_server) { /* across hosts, only push + pull: the rest is about one host */
        bench_hosts(&b);  /* the figures --only names (a prefix), or all */
        if (b.nfigs == 0 && b.only != NULL) {
            fprintf(stderr, "psbench: --only: no across-hosts figure's name starts with %s\n",
                    b.only);
            return 1;
        }
        b.only = "hosts"; /* no group of one host's */
    }
    if (wanted(&b, "codec"))
        bench_codec(&b);
    if (wanted(&b, "apply"))
        bench_apply(&b);
    if (wanted(&b, "pushpull"))
        bench_pushpull(&b);
    if (wanted(&b, "curve"))
        bench_curve(&b);
    if (wanted(&b, "sync"))
        bench_sync(&b);
    if (wanted(&b, "rss"))
        bench_rss(&b);
    if (wanted(&b, "pulls"))
        bench_pulls(&b);
    if (wanted(&b, "scrape"))
        bench_scrape(&b);
    if (wanted(&b, "sparse"))
        bench_sparse(&b);
    if (wanted(&b, "swarm"))
        bench_swarm(&b);
    if (wanted(&b, "train")) {
        const train_conf *tc = strcmp(b.train_model, "mlp") == 0 ? &train_mlp : &train_logistic;
        bench_train(&b, tc, "train_1w", true);
        train_conf heavy = *tc;
        heavy.batch = 4 * tc->batch;
        heavy.epochs = tc->epochs + 1;
        bench_train(&b, &heavy, "train_1w_b1024", false);
    }
    procs_stop_all(&b);
    nftw(b.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (b.nfigs == 0 && b.only != NULL) { /* a prefix past a group's that no figure has */
        fprintf(stderr, "psbench: --only: no figure's name starts with %s\n", b.only);
        return 1;
    }
    if (b.json)
        print_json(&b);
    else
        print_table(&b);
    fprintf(stderr, "psbench: done in %.0f s\n", ps_clock_s() - t0);
    return 0;
}
