/* psbench_swarm.c — (i) swarm: how psd's cost grows with the number of
 * workers. One process drives N logical workers, each a ZeroMQ DEALER of
 * its own speaking the real protocol (HELLO, PUSH with the pull riding in
 * it, HEARTBEAT every heartbeat.interval_ms), from one epoll loop: no
 * thread or process per worker. For each mode (async, ssp with staleness
 * 4, sync) and each N it measures psd's CPU time per update (all of psd's
 * threads, from /proc), updates a second, sync's round time and psd's
 * resident set per worker, each beside N = 8's. With --swarm-check it also
 * asks psd for STATUS at the end and fails when a rank was evicted or when
 * psd counted other pushes than the driver saw acknowledged. */
#include "codec.h"
#include "msg.h"
#include "psbench.h"
#include "util.h"
#include "wire.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zmq.h>

#define HB_TAG   ((uint64_t)1 << 62) /* seq of a heartbeat: never a push's */
#define SWARM_P  1000u               /* θ of every mode: 1 k floats */
#define HB_MS    500u                /* heartbeat.interval_ms */
#define HB_LIMIT 10000u              /* heartbeat.timeout_ms */

typedef struct sw_worker {
    void *sock;
    uint32_t worker_id;
    uint64_t seq;    /* of the push in flight (or the last) */
    uint64_t clock;  /* pushes sent: the next push's clock */
    uint64_t pushes; /* pushes psd acknowledged */
    uint64_t hb_seq;
    bool busy;  /* a push, or the pull riding in it, awaits its reply */
    bool acked; /* ... and its ACK came (the pull is parked) */
    bool welcomed;
} sw_worker;

typedef struct swarm {
    bench *b;
    const char *mode;
    bool sync, ssp;
    unsigned n;
    void *ctx;
    int ep;
    sw_worker *w;
    float *grad;
    ps_frames frames;
    ps_msg msg;
    ps_error err;
    bool pushing;     /* new pushes go out */
    uint64_t updates; /* pushes acknowledged */
    uint64_t replies; /* sync: pulls answered, N a round */
    uint64_t refused; /* ERROR replies */
    char refused_why[PS_MSG_ERROR_MAX];
    double *round_end; /* sync: when each round's last pull came back */
    size_t nrounds, rounds_cap;
    unsigned welcomed;
} swarm;

/* psd's CPU time in seconds: every thread's, from /proc/pid/task/N/schedstat. */
static double proc_cpu_s(pid_t pid)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1.0;
    double s = 0.0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char p2[384];
        snprintf(p2, sizeof p2, "%s/%s/schedstat", path, de->d_name);
        FILE *f = fopen(p2, "r");
        if (f == NULL)
            continue;
        unsigned long long ns = 0;
        if (fscanf(f, "%llu", &ns) == 1)
            s += (double)ns / 1e9;
        fclose(f);
    }
    closedir(d);
    return s;
}

/* psd's resident set (VmRSS) in KiB; -1 when unreadable. */
static double proc_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1.0;
    double kib = -1.0;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long long kb;
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
            kib = (double)kb;
    }
    fclose(f);
    return kib;
}

static void sw_send(swarm *s, sw_worker *w, const ps_msg *m, const void *payload)
{
    if (ps_wire_send(w->sock, NULL, 0, m, payload, 0) != 0)
        die("swarm: rank %d: send: %s", (int)(w - s->w), zmq_strerror(errno));
}

static void sw_hello(swarm *s, sw_worker *w)
{
    ps_msg m;
    ps_msg_init(&m, PS_MSG_HELLO);
    m.job = "bench";
    m.rank = (int32_t)(w - s->w);
    m.seq = 1;
    m.hostname = "swarm";
    m.incarnation = ((uint64_t)getpid() << 20) + (uint64_t)(w - s->w) + 1;
    sw_send(s, w, &m, NULL);
}

/* The next push of w, with the pull of the next θ riding in it: async
 * wants any θ, ssp the clocks' bound, sync the round's result. */
static void sw_push(swarm *s, sw_worker *w)
{
    ps_msg m;
    ps_msg_init(&m, PS_MSG_PUSH);
    m.job = "bench";
    m.worker_id = w->worker_id;
    m.seq = ++w->seq;
    m.clock = w->clock;
    m.samples = 1;
    m.key_lo = 0;
    m.key_hi = SWARM_P;
    m.flags = PS_FLAG_PULL;
    m.min_version = s->sync ? w->clock + 1 : 0;
    m.pull_clock = w->clock + 1;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = SWARM_P * sizeof(float);
    w->clock++;
    w->busy = true;
    w->acked = false;
    sw_send(s, w, &m, s->grad);
}

static void sw_heartbeat(swarm *s, sw_worker *w)
{
    ps_msg m;
    ps_msg_init(&m, PS_MSG_HEARTBEAT);
    m.job = "bench";
    m.worker_id = w->worker_id;
    m.seq = HB_TAG | ++w->hb_seq;
    m.flags = PS_FLAG_QUIET; /* as libpsworker's heartbeat thread sends them */
    m.loss = NAN;
    m.samples_per_s = NAN;
    sw_send(s, w, &m, NULL);
}

static void sw_round_done(swarm *s)
{
    if (s->nrounds == s->rounds_cap) {
        s->rounds_cap = s->rounds_cap ? 2 * s->rounds_cap : 1024;
        s->round_end = realloc(s->round_end, s->rounds_cap * sizeof *s->round_end);
        if (s->round_end == NULL)
            die("out of memory");
    }
    s->round_end[s->nrounds++] = ps_clock_s();
}

/* One reply to w. */
static void sw_reply(swarm *s, sw_worker *w, const ps_msg *m)
{
    if (m->type == PS_MSG_ERROR) {
        if (s->refused++ == 0)
            snprintf(s->refused_why, sizeof s->refused_why, "rank %d: %s (%d)", (int)(w - s->w),
                     ps_msg_str(m->error), (int)m->status);
        return;
    }
    if (m->type == PS_MSG_WELCOME) {
        if (!w->welcomed) {
            w->welcomed = true;
            w->worker_id = m->worker_id;
            s->welcomed++;
        }
        return;
    }
    if (m->seq & HB_TAG)
        return; /* a heartbeat's ACK */
    if (!w->busy || m->seq != w->seq)
        return;
    if (!w->acked) {
        w->acked = true;
        w->pushes++;
        s->updates++;
    }
    if (m->type != PS_MSG_PULL_REPLY)
        return; /* the pull is parked: its reply comes later */
    w->busy = false;
    if (s->sync && ++s->replies % s->n == 0)
        sw_round_done(s);
    if (s->pushing)
        sw_push(s, w);
}

/* Reads every reply waiting on w's socket. */
static void sw_drain(swarm *s, sw_worker *w)
{
    for (;;) {
        ps_frames_init(&s->frames);
        int rc = ps_wire_recv(w->sock, false, ZMQ_DONTWAIT, &s->frames, &s->msg, &s->err);
        if (rc == PS_EZMQ && (errno == EAGAIN || errno == EINTR)) {
            ps_frames_close(&s->frames);
            return;
        }
        if (rc != 0)
            die("swarm: rank %d: a reply psbench cannot read: %s", (int)(w - s->w), s->err.msg);
        sw_reply(s, w, &s->msg);
        ps_frames_close(&s->frames);
    }
}

/* Runs the loop until `until` (ps_clock_s) or, with done, until done(s):
 * replies, and each worker's heartbeat every HB_MS, spread evenly. */
static void sw_loop(swarm *s, double until, bool (*done)(const swarm *s), double *hb_next,
                    unsigned *hb_at)
{
    struct epoll_event ev[256];
    double sweep = ps_clock_s() + 0.2;
    for (;;) {
        double now = ps_clock_s();
        if (now >= until || (done != NULL && done(s)))
            return;
        int k = epoll_wait(s->ep, ev, 256, 2);
        for (int i = 0; i < k; i++)
            sw_drain(s, &s->w[ev[i].data.u32]);
        now = ps_clock_s();
        /* heartbeats: worker i's at hb_next + i · HB_MS / N */
        double step = HB_MS / 1000.0 / s->n;
        while (*hb_next <= now) {
            sw_worker *w = &s->w[*hb_at];
            if (w->welcomed) {
                sw_heartbeat(s, w);
                sw_drain(s, w);
            }
            *hb_at = (*hb_at + 1) % s->n;
            *hb_next += step;
        }
        if (now >= sweep) { /* a ZMQ_FD tells of changes, not of state: look at all now and then */
            for (unsigned i = 0; i < s->n; i++)
                sw_drain(s, &s->w[i]);
            sweep = now + 0.2;
        }
    }
}

static bool all_welcomed(const swarm *s)
{
    return s->welcomed == s->n || s->refused > 0;
}

static bool all_idle(const swarm *s)
{
    for (unsigned i = 0; i < s->n; i++)
        if (s->w[i].busy)
            return false;
    return true;
}

/* psd's STATUS: every rank live, never evicted, with the pushes the driver
 * saw acknowledged. Returns the problems found (0: none), said on stderr. */
static unsigned sw_check(swarm *s, const char *endpoint)
{
    void *sock = zmq_socket(s->ctx, ZMQ_DEALER);
    int linger = 0, ms = 10000;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &ms, sizeof ms);
    if (zmq_connect(sock, endpoint) != 0)
        die("swarm: connect %s: %s", endpoint, zmq_strerror(errno));
    ps_msg m;
    ps_msg_init(&m, PS_MSG_STATUS);
    m.job = "bench";
    m.seq = 1;
    if (ps_wire_send(sock, NULL, 0, &m, NULL, 0) != 0)
        die("swarm: STATUS: %s", zmq_strerror(errno));
    ps_frames_init(&s->frames);
    int rc = ps_wire_recv(sock, false, 0, &s->frames, &s->msg, &s->err);
    if (rc != 0 || s->msg.type != PS_MSG_STATUS_REPLY)
        die("swarm: STATUS: %s", rc != 0 ? s->err.msg : ps_msg_str(s->msg.error));
    ps_worker_status *rows = calloc(s->n, sizeof *rows);
    size_t nrows = 0;
    if (rows == NULL)
        die("out of memory");
    if (ps_codec_workers_decode(s->msg.payload, s->msg.payload_bytes, rows, s->n, &nrows,
                                &s->err) != 0)
        die("swarm: STATUS_REPLY: %s", s->err.msg);
    ps_frames_close(&s->frames);
    zmq_close(sock);
    unsigned bad = 0;
    if (nrows != s->n) {
        fprintf(stderr, "psbench: swarm %s %u: STATUS has %zu ranks\n", s->mode, s->n, nrows);
        bad++;
    }
    for (size_t i = 0; i < nrows && i < s->n; i++) {
        const ps_worker_status *r = &rows[i];
        if (r->evictions != 0 || r->state != PS_WORKER_LIVE || r->pushes != s->w[r->rank].pushes) {
            if (bad++ < 5)
                fprintf(stderr,
                        "psbench: swarm %s %u: rank %u is %s, %llu evictions, %llu pushes counted "
                        "(psbench saw %llu acknowledged)\n",
                        s->mode, s->n, r->rank, ps_worker_state_name(r->state),
                        (unsigned long long)r->evictions, (unsigned long long)r->pushes,
                        (unsigned long long)s->w[r->rank].pushes);
        }
    }
    free(rows);
    return bad;
}

typedef struct sw_result {
    double cpu_us; /* psd's CPU per update */
    double rate;   /* updates a second */
    double round_ms;
    double rss_kib;
    unsigned bad;
} sw_result;

static void swarm_run(bench *b, const char *mode, unsigned n, double seconds, bool check,
                      sw_result *res)
{
    char ep[128], job[128];
    endpoint_new(b, false, ep, sizeof ep);
    snprintf(job, sizeof job, "%s/swarm.yaml", b->dir);
    job_write_flat(b, job, mode, n, ep, SWARM_P, false);
    char extra[256];
    snprintf(extra, sizeof extra, "heartbeat: {interval_ms: %u, timeout_ms: %u}\n%s", HB_MS,
             HB_LIMIT, strcmp(mode, "ssp") == 0 ? "staleness: 4\n" : "");
    FILE *f = fopen(job, "a");
    if (f == NULL || fputs(extra, f) < 0 || fclose(f) != 0)
        die("cannot write %s", job);
    pid_t psd = psd_start(b, job);

    swarm *s = calloc(1, sizeof *s);
    if (s == NULL)
        die("out of memory");
    s->b = b;
    s->mode = mode;
    s->sync = strcmp(mode, "sync") == 0;
    s->ssp = strcmp(mode, "ssp") == 0;
    s->n = n;
    s->w = calloc(n, sizeof *s->w);
    s->grad = floats_new(SWARM_P, 1e-6f);
    if (s->w == NULL)
        die("out of memory");
    s->ctx = zmq_ctx_new();
    zmq_ctx_set(s->ctx, ZMQ_MAX_SOCKETS, (int)n + 64);
    s->ep = epoll_create1(0);
    if (s->ctx == NULL || s->ep < 0)
        die("swarm: %s", strerror(errno));
    for (unsigned i = 0; i < n; i++) {
        sw_worker *w = &s->w[i];
        int linger = 0, fd;
        size_t len = sizeof fd;
        w->sock = zmq_socket(s->ctx, ZMQ_DEALER);
        if (w->sock == NULL)
            die("swarm: socket %u of %u: %s (raise the open-files limit)", i, n,
                zmq_strerror(errno));
        zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_connect(w->sock, ep) != 0 || zmq_getsockopt(w->sock, ZMQ_FD, &fd, &len) != 0)
            die("swarm: connect %s: %s", ep, zmq_strerror(errno));
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = i};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e) != 0)
            die("swarm: epoll: %s", strerror(errno));
        sw_hello(s, w);
    }
    double hb_next = ps_clock_s() + HB_MS / 1000.0;
    unsigned hb_at = 0;
    sw_loop(s, ps_clock_s() + 60.0, all_welcomed, &hb_next, &hb_at);
    if (s->refused > 0 || s->welcomed != n)
        die("swarm %s %u: %u of %u workers registered: %s", mode, n, s->welcomed, n,
            s->refused ? s->refused_why : "psd did not answer within 60 s");
    s->pushing = true;
    for (unsigned i = 0; i < n; i++)
        sw_push(s, &s->w[i]);
    sw_loop(s, ps_clock_s() + 0.5, NULL, &hb_next, &hb_at); /* warm-up */
    uint64_t u0 = s->updates;
    size_t r0 = s->nrounds;
    double c0 = proc_cpu_s(psd), t0 = ps_clock_s();
    sw_loop(s, t0 + seconds, NULL, &hb_next, &hb_at);
    double c1 = proc_cpu_s(psd), t1 = ps_clock_s();
    uint64_t u1 = s->updates;
    size_t r1 = s->nrounds;
    res->rss_kib = proc_rss_kib(psd);
    s->pushing = false;
    sw_loop(s, ps_clock_s() + 10.0, all_idle, &hb_next, &hb_at);
    if (s->refused > 0)
        die("swarm %s %u: psd refused %llu requests, the first: %s", mode, n,
            (unsigned long long)s->refused, s->refused_why);
    res->bad = check ? sw_check(s, ep) : 0;
    res->rate = (double)(u1 - u0) / (t1 - t0);
    res->cpu_us = u1 > u0 ? (c1 - c0) * 1e6 / (double)(u1 - u0) : 0.0;
    res->round_ms = 0.0;
    if (s->sync && r1 > r0 + 1) {
        size_t m = r1 - r0 - 1;
        double *d = calloc(m, sizeof *d);
        if (d == NULL)
            die("out of memory");
        for (size_t i = 0; i < m; i++)
            d[i] = (s->round_end[r0 + i + 1] - s->round_end[r0 + i]) * 1e3;
        res->round_ms = median(d, m);
        free(d);
    }
    proc_stop(b, psd);
    for (unsigned i = 0; i < n; i++)
        zmq_close(s->w[i].sock);
    zmq_ctx_term(s->ctx);
    close(s->ep);
    free(s->round_end);
    free(s->grad);
    free(s->w);
    free(s);
}

/* Every process of psbench's may hold 2 descriptors a logical worker (its
 * socket's and its connection's), psd one a worker. */
static void nofile_raise(unsigned n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = 2 * (rlim_t)n + 256;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

void bench_swarm(bench *b)
{
    static const char *const modes[] = {"async", "ssp", "sync"};
    unsigned nmax = 0;
    for (size_t i = 0; i < b->swarm_nn; i++)
        nmax = b->swarm_n[i] > nmax ? b->swarm_n[i] : nmax;
    nofile_raise(nmax);
    double seconds = b->swarm_seconds > 0 ? b->swarm_seconds : 3.0 * b->scale;
    unsigned bad = 0;
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        char prefix[48];
        snprintf(prefix, sizeof prefix, "swarm_%s", modes[m]);
        if (b->only != NULL && strlen(b->only) > strlen("swarm_") && !figure_wanted(b, prefix) &&
            strncmp(b->only, prefix, strlen(prefix)) != 0)
            continue;
        sw_result ref = {0};
        for (size_t i = 0; i < b->swarm_nn; i++) {
            unsigned n = b->swarm_n[i];
            sw_result r = {0};
            swarm_run(b, modes[m], n, seconds, b->swarm_check, &r);
            bad += r.bad;
            if (i == 0)
                ref = r;
            char name[48], is[64];
            snprintf(is, sizeof is, "the same at %u workers", b->swarm_n[0]);
            snprintf(name, sizeof name, "swarm_%s_%uw", modes[m], n);
            figure_add(b, name, r.cpu_us, ref.cpu_us, "µs cpu/update", is);
            snprintf(name, sizeof name, "swarm_%s_%uw_rate", modes[m], n);
            figure_add(b, name, r.rate, ref.rate, "updates/s", is);
            if (strcmp(modes[m], "sync") == 0) {
                snprintf(name, sizeof name, "swarm_sync_%uw_round", n);
                figure_add(b, name, r.round_ms, ref.round_ms, "ms/round", is);
            }
            if (i > 0) {
                snprintf(name, sizeof name, "swarm_%s_%uw_rss", modes[m], n);
                snprintf(is, sizeof is, "64 KiB a worker (the bound)");
                figure_add(b, name, (r.rss_kib - ref.rss_kib) / (double)(n - b->swarm_n[0]), 64.0,
                           "KiB rss/worker", is);
            }
        }
    }
    if (bad > 0)
        die("swarm: %u ranks were evicted or miscounted", bad);
}
