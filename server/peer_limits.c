/* peer_limits.c — connections and per-connection message rate of one
 * shard's ROUTER (peer_limits.h). */
#include "peer_limits.h"

#include "util.h"
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <zmq.h>

#define PEERS_AUTO_BASE     64   /* max_peers 0: 4 per worker plus this many */
#define RATE_DEFAULT        100  /* a job built without the loader (limits zero): its default */
#define SWEEP_EVERY_MS      100  /* how often silent connections are looked for */
#define STALL_MS            1000 /* a longer gap between two sweeps: psd stood still */
#define FD_LIMIT            (1 << 24) /* a descriptor beyond this is not tracked */
#define ZMTP_GREETING_BYTES 64        /* a ZeroMQ client's greeting (ZMTP 3) */

/* What psd knows of one connection, found by its file descriptor. */
enum conn_state {
    CONN_FREE,   /* no connection on this descriptor */
    CONN_NEW,    /* accepted; no message yet */
    CONN_ACTIVE, /* sent a message; not registered */
    CONN_WORKER, /* registered: a live worker's, while worker_id lives */
    CONN_SHUT,   /* closed by psd (until the descriptor serves another) */
};

typedef struct conn {
    uint8_t state;
    uint32_t bytes_in;     /* CONN_NEW: bytes its peer had sent when last asked */
    uint32_t worker_id;    /* CONN_WORKER: whose */
    uint64_t order;        /* its place among the connections accepted */
    uint64_t since_ms;     /* CONN_NEW: accepted; CONN_ACTIVE: its latest message */
    uint64_t tokens_milli; /* thousandths of a message */
    uint64_t refill_ms;    /* when the tokens were last counted */
} conn;

struct ps_peer_limits {
    void *sock;    /* the ROUTER watched */
    void *monitor; /* PAIR on the ROUTER's socket monitor */
    const ps_engine *engine;
    ps_zap *zap;
    ps_metrics_counters *counters;
    const ps_log *log;
    uint32_t shard, nshards;
    char endpoint[PS_ENDPOINT_MAX];
    uint16_t bound_port;
    uint32_t peers_max, registered_max, rate; /* rate: limits.unregistered_rate */
    conn *conns;                              /* by descriptor: nconns of them */
    size_t nconns, top;                       /* top: past the highest in use */
    uint64_t sweep_ms;                        /* the last sweep */
    uint64_t accepted;                        /* connections so far */
    bool fresh;                               /* accepted since room was last made */
    uint64_t closed_full, closed_silent, rate_refused;
    bool full_warned, silent_warned, rate_warned;
    char why[PS_MSG_ERROR_MAX];
};

/* The entry of descriptor fd, made room for when grow; NULL for a
 * descriptor out of range (or no memory). */
static conn *conn_at(ps_peer_limits *l, int fd, bool grow)
{
    if (fd < 0 || fd >= FD_LIMIT)
        return NULL;
    size_t i = (size_t)fd;
    if (i >= l->nconns) {
        if (!grow)
            return NULL;
        size_t n = l->nconns ? l->nconns : 256;
        while (n <= i)
            n *= 2;
        conn *c = realloc(l->conns, n * sizeof *c);
        if (c == NULL)
            return NULL;
        memset(c + l->nconns, 0, (n - l->nconns) * sizeof *c);
        l->conns = c;
        l->nconns = n;
    }
    if (grow && i >= l->top)
        l->top = i + 1;
    return &l->conns[i];
}

/* A fresh connection in c, in state, its bucket full. */
static void conn_start(ps_peer_limits *l, conn *c, uint8_t state, uint64_t now)
{
    *c = (conn){.state = state,
                .order = ++l->accepted,
                .since_ms = now,
                .tokens_milli = (uint64_t)l->rate * 1000,
                .refill_ms = now};
}

/* True for a registered connection whose worker lives; one whose worker
 * left or was evicted is a stranger again (its bucket full). */
static bool conn_registered(ps_peer_limits *l, conn *c, uint64_t now)
{
    if (c->state != CONN_WORKER)
        return false;
    if (ps_engine_worker_rank(l->engine, c->worker_id) >= 0)
        return true;
    conn_start(l, c, CONN_ACTIVE, now);
    return false;
}

/* True when fd is a connection accepted on this server's endpoint (its
 * local address is the bound one), so a stale fd number is never shut. */
static bool fd_is_ours(const ps_peer_limits *l, int fd)
{
    struct sockaddr_storage a, b;
    socklen_t la = sizeof a, lb = sizeof b;
    if (getsockname(fd, (struct sockaddr *)&a, &la) != 0 ||
        getpeername(fd, (struct sockaddr *)&b, &lb) != 0)
        return false;
    if (a.ss_family == AF_UNIX)
        return strncmp(l->endpoint, "ipc://", 6) == 0 &&
               strcmp(((struct sockaddr_un *)&a)->sun_path, l->endpoint + 6) == 0;
    uint16_t port = a.ss_family == AF_INET    ? ((struct sockaddr_in *)&a)->sin_port
                    : a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
                                              : 0;
    return port != 0 && ntohs(port) == l->bound_port;
}

/* The peer's address of connection fd, for a log line ("?" unknown). */
static void peer_address(int fd, char *out, size_t cap)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    ps_strlcpy(out, "?", cap);
    if (getpeername(fd, (struct sockaddr *)&a, &len) != 0)
        return;
    if (a.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&a)->sin_addr, out, (socklen_t)cap);
    else if (a.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a)->sin6_addr, out, (socklen_t)cap);
    else if (a.ss_family == AF_UNIX)
        ps_strlcpy(out, "a local socket", cap);
}

/* How an unregistered connection ranks for closing, lowest first: a new
 * one whose peer has sent nothing (a ZeroMQ client sends its greeting at
 * once), part of a greeting, a greeting and maybe a handshake but no
 * message; then one that sent messages. */
enum { RANK_SILENT, RANK_GREETING, RANK_HANDSHAKE, RANK_ACTIVE };

static int conn_rank(const conn *c)
{
    if (c->state == CONN_ACTIVE)
        return RANK_ACTIVE;
    return c->bytes_in == 0                    ? RANK_SILENT
           : c->bytes_in < ZMTP_GREETING_BYTES ? RANK_GREETING
                                               : RANK_HANDSHAKE;
}

/* Asks the kernel how many bytes the peer of TCP connection fd has sent
 * (bytes_in only grows: what was learnt before stays a lower bound). True
 * when that ranks it higher than before. */
static bool conn_progressed(conn *c, int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received ||
        ti.tcpi_bytes_received <= c->bytes_in)
        return false;
    int before = conn_rank(c);
    c->bytes_in =
        ti.tcpi_bytes_received > UINT32_MAX ? UINT32_MAX : (uint32_t)ti.tcpi_bytes_received;
    return conn_rank(c) > before;
}

/* Closes connection fd (it goes when ZeroMQ sees it shut). False when fd
 * is not ours any more: its entry was stale and is dropped. */
static bool conn_shut(ps_peer_limits *l, int fd)
{
    conn *c = &l->conns[fd];
    if (!fd_is_ours(l, fd) || shutdown(fd, SHUT_RDWR) != 0) {
        c->state = CONN_FREE;
        return false;
    }
    c->state = CONN_SHUT;
    return true;
}

/* True when a goes before b for closing: lower rank, the oldest first;
 * among those with a whole greeting, the one whose latest sign of life
 * (connecting, or its latest message) is oldest, so a newcomer goes last. */
static bool conn_before(const conn *a, const conn *b)
{
    int ra = conn_rank(a), rb = conn_rank(b);
    ra = ra > RANK_HANDSHAKE ? RANK_HANDSHAKE : ra;
    rb = rb > RANK_HANDSHAKE ? RANK_HANDSHAKE : rb;
    if (ra != rb)
        return ra < rb;
    if (ra == RANK_HANDSHAKE && a->since_ms != b->since_ms)
        return a->since_ms < b->since_ms;
    return a->order < b->order;
}

/* Counts the unregistered connections and finds the one to close first
 * (see conn_before). -1 when there is none. */
static int victim_find(ps_peer_limits *l, uint64_t now, uint32_t *unregistered)
{
    int victim = -1;
    *unregistered = 0;
    for (size_t i = 0; i < l->top; i++) {
        conn *c = &l->conns[i];
        if (c->state == CONN_FREE || c->state == CONN_SHUT || conn_registered(l, c, now))
            continue;
        ++*unregistered;
        if (victim < 0 || conn_before(c, &l->conns[victim]))
            victim = (int)i;
    }
    return victim;
}

/* While more than limit connections are unregistered, the first to close
 * (see victim_find) is closed. The kernel is asked how far a connection
 * got only when it is the one to close: bytes_in is kept, and each
 * connection is asked about once a rank. */
static void room_make(ps_peer_limits *l, uint32_t limit, uint64_t now)
{
    for (;;) {
        uint32_t unregistered;
        int victim = victim_find(l, now, &unregistered);
        if (unregistered <= limit || victim < 0)
            return;
        conn *v = &l->conns[victim];
        if (conn_rank(v) < RANK_ACTIVE && conn_progressed(v, victim))
            continue; /* it got further than psd knew: ranked again */
        char addr[INET6_ADDRSTRLEN];
        peer_address(victim, addr, sizeof addr);
        int rank = conn_rank(v);
        if (!conn_shut(l, victim))
            continue;
        l->closed_full++;
        l->counters->refused_peers++;
        if (!l->full_warned)
            PS_LOG_W(l->log,
                     "shard %u: %u connections have not registered (limits.max_peers %u): to let "
                     "a new one in, psd closes the least useful (first that of %s, %s); "
                     "registered workers are never closed (said once)",
                     l->shard, unregistered, l->peers_max, addr,
                     rank == RANK_SILENT      ? "which never sent a byte"
                     : rank == RANK_GREETING  ? "which sent part of a greeting"
                     : rank == RANK_HANDSHAKE ? "which sent no message"
                                              : "silent longest");
        l->full_warned = true;
    }
}

/* The loop's part of one monitor event: event and its value (a
 * descriptor for ACCEPTED and DISCONNECTED). */
static void event_take(ps_peer_limits *l, uint16_t event, uint32_t value)
{
    if (l->zap != NULL)
        ps_zap_handshake_event(l->zap, event, value, l->endpoint);
    if (event == ZMQ_EVENT_DISCONNECTED) {
        /* one psd closed stays so: messages it sent before are dropped */
        conn *c = conn_at(l, (int)value, false);
        if (c != NULL && c->state != CONN_SHUT)
            c->state = CONN_FREE;
        while (l->top > 0 &&
               (l->conns[l->top - 1].state == CONN_FREE || l->conns[l->top - 1].state == CONN_SHUT))
            l->top--;
    } else if (event == ZMQ_EVENT_ACCEPTED) {
        uint64_t now = ps_clock_ms();
        conn *c = conn_at(l, (int)value, true);
        if (c == NULL)
            return;
        conn_start(l, c, CONN_NEW, now);
        l->fresh = true; /* room is made once what came meanwhile was read */
    }
}

void ps_peer_limits_tick(ps_peer_limits *l)
{
    for (;;) {
        zmq_msg_t ev;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, l->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (unsigned char *)zmq_msg_data(&ev) + 2, 4);
        }
        while (zmq_msg_more(&ev)) { /* the endpoint */
            zmq_msg_close(&ev);
            zmq_msg_init(&ev);
            if (zmq_msg_recv(&ev, l->monitor, 0) < 0)
                break;
        }
        zmq_msg_close(&ev);
        event_take(l, event, value);
    }
}

void *ps_peer_limits_monitor(const ps_peer_limits *l)
{
    return l->monitor;
}

int ps_peer_limits_fd_of(const zmq_msg_t *part)
{
    return zmq_msg_get(part, ZMQ_SRCFD);
}

/* The entry of a connection a message came on. Its ACCEPTED was sent
 * before its first message came, so the monitor is read when the entry is
 * free, or one psd closed (the descriptor may serve a new one now); one
 * still unknown (accepted before the monitor began) is taken as it is.
 * NULL for fd -1. */
static conn *conn_of_message(ps_peer_limits *l, int fd, uint64_t now)
{
    conn *c = conn_at(l, fd, false);
    if (fd >= 0 && (c == NULL || c->state == CONN_FREE || c->state == CONN_SHUT)) {
        ps_peer_limits_tick(l);
        c = conn_at(l, fd, true);
        if (c != NULL && c->state == CONN_FREE)
            conn_start(l, c, CONN_ACTIVE, now);
    }
    return c;
}

bool ps_peer_limits_closed(ps_peer_limits *l, int fd, uint64_t now_ms)
{
    conn *c = conn_of_message(l, fd, now_ms);
    return c != NULL && c->state == CONN_SHUT;
}

bool ps_peer_limits_over(ps_peer_limits *l, int fd, uint64_t now_ms)
{
    conn *c = conn_of_message(l, fd, now_ms);
    if (c == NULL || c->state == CONN_SHUT || conn_registered(l, c, now_ms))
        return false;
    if (c->state == CONN_NEW)
        c->state = CONN_ACTIVE;
    c->since_ms = now_ms;
    uint64_t rate = l->rate, full = rate * 1000;
    uint64_t add = now_ms > c->refill_ms ? (now_ms - c->refill_ms) * rate : 0;
    c->tokens_milli = add >= full - c->tokens_milli ? full : c->tokens_milli + add;
    c->refill_ms = now_ms;
    if (c->tokens_milli >= 1000) {
        c->tokens_milli -= 1000;
        return false;
    }
    l->rate_refused++;
    l->counters->refused_rate++;
    if (!l->rate_warned)
        PS_LOG_W(l->log,
                 "shard %u: a peer that has not registered sent more than %llu messages a "
                 "second (limits.unregistered_rate): the excess is refused (said once)",
                 l->shard, (unsigned long long)rate);
    l->rate_warned = true;
    return true;
}

const char *ps_peer_limits_why(const ps_peer_limits *l)
{
    return l->why;
}

/* Registers connection c as worker_id's; with bounded, only while fewer
 * than registered_max are. */
static void conn_register(ps_peer_limits *l, conn *c, uint32_t worker_id, bool bounded)
{
    if (c == NULL || c->state == CONN_FREE || c->state == CONN_SHUT)
        return;
    if (bounded) {
        uint64_t now = ps_clock_ms();
        uint32_t registered = 0;
        for (size_t i = 0; i < l->top; i++)
            registered += conn_registered(l, &l->conns[i], now);
        if (registered >= l->registered_max)
            return;
    }
    c->state = CONN_WORKER;
    c->worker_id = worker_id;
}

void ps_peer_limits_heard(ps_peer_limits *l, int fd, uint32_t worker_id)
{
    conn *c = conn_at(l, fd, false);
    if (c == NULL || worker_id == 0 || (c->state == CONN_WORKER && c->worker_id == worker_id) ||
        ps_engine_worker_rank(l->engine, worker_id) < 0)
        return;
    conn_register(l, c, worker_id, true);
}

void ps_peer_limits_welcomed(ps_peer_limits *l, int fd, uint32_t worker_id)
{
    conn_register(l, conn_at(l, fd, false), worker_id, false);
}

void ps_peer_limits_sweep(ps_peer_limits *l, bool all_read, uint64_t now_ms)
{
    if (l->fresh) {
        room_make(l, all_read ? l->peers_max : 2 * l->peers_max, now_ms);
        l->fresh = !all_read;
    }
    if (!all_read || (l->sweep_ms != 0 && now_ms - l->sweep_ms < SWEEP_EVERY_MS))
        return;
    /* a long gap: psd stood still, and the silence meanwhile is not theirs */
    uint64_t stall =
        l->sweep_ms != 0 && now_ms - l->sweep_ms >= STALL_MS ? now_ms - l->sweep_ms : 0;
    l->sweep_ms = now_ms;
    for (size_t i = 0; i < l->top; i++) {
        conn *c = &l->conns[i];
        if (c->state != CONN_NEW)
            continue;
        c->since_ms = c->since_ms + stall < now_ms ? c->since_ms + stall : now_ms;
        if (now_ms - c->since_ms < PS_PEER_SILENT_MS)
            continue;
        char addr[INET6_ADDRSTRLEN];
        peer_address((int)i, addr, sizeof addr);
        if (!conn_shut(l, (int)i))
            continue;
        l->closed_silent++;
        if (!l->silent_warned)
            PS_LOG_W(l->log,
                     "shard %u: a connection from %s sent no message within %d ms of "
                     "connecting: closed, as is any such (said once)",
                     l->shard, addr, PS_PEER_SILENT_MS);
        l->silent_warned = true;
    }
}

ps_peer_limits *ps_peer_limits_new(void *zctx, void *sock, const ps_job *job, uint32_t shard,
                                   const char *endpoint, const ps_engine *engine, ps_zap *zap,
                                   ps_metrics_counters *counters, const ps_log *log, ps_error *err)
{
    ps_peer_limits *l = calloc(1, sizeof *l);
    if (l == NULL) {
        ps_error_set(err, PS_ENOMEM, "cannot allocate the peer limits");
        return NULL;
    }
    l->sock = sock;
    l->engine = engine;
    l->zap = zap;
    l->counters = counters;
    l->log = log;
    l->shard = shard;
    l->nshards = job->nservers;
    ps_strlcpy(l->endpoint, endpoint, sizeof l->endpoint);
    l->peers_max = job->limits.max_peers;
    if (l->peers_max == 0)
        l->peers_max = 4 * job->workers + PEERS_AUTO_BASE;
    l->registered_max = PS_PEER_REGISTERED_PER_WORKER * job->workers;
    l->rate = job->limits.unregistered_rate ? job->limits.unregistered_rate : RATE_DEFAULT;
    snprintf(l->why, sizeof l->why, "more than %llu messages a second before registering",
             (unsigned long long)l->rate);
    char last[PS_ENDPOINT_MAX + 32];
    size_t len = sizeof last;
    if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, last, &len) == 0 &&
        strncmp(last, "tcp://", 6) == 0 && strrchr(last, ':') != NULL)
        l->bound_port = (uint16_t)atoi(strrchr(last, ':') + 1);
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://psd-monitor-%u", shard);
    l->monitor = zmq_socket(zctx, ZMQ_PAIR);
    if (l->monitor == NULL ||
        zmq_socket_monitor(sock, ep,
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                               (zap != NULL ? PS_ZAP_MONITOR_EVENTS : 0)) != 0 ||
        zmq_connect(l->monitor, ep) != 0) {
        ps_error_set(err, PS_EZMQ, "cannot monitor %s: %s", endpoint, zmq_strerror(errno));
        goto fail;
    }
    return l;
fail:
    ps_peer_limits_destroy(&l);
    return NULL;
}

void ps_peer_limits_report(const ps_peer_limits *l)
{
    if (l->closed_full + l->closed_silent + l->rate_refused > 0)
        PS_LOG_I(l->log,
                 "shard %u/%u: closed %llu unregistered connections over limits.max_peers and "
                 "%llu silent for %d ms after connecting; refused %llu messages over "
                 "limits.unregistered_rate",
                 l->shard, l->nshards, (unsigned long long)l->closed_full,
                 (unsigned long long)l->closed_silent, PS_PEER_SILENT_MS,
                 (unsigned long long)l->rate_refused);
}

void ps_peer_limits_destroy(ps_peer_limits **lp)
{
    if (lp == NULL || *lp == NULL)
        return;
    ps_peer_limits *l = *lp;
    if (l->monitor != NULL) {
        /* stop the monitor, then take what it still holds: events left in
         * its pipe when both ends close would leak in libzmq */
        zmq_socket_monitor(l->sock, NULL, 0);
        for (;;) {
            zmq_msg_t ev;
            zmq_msg_init(&ev);
            int rc = zmq_msg_recv(&ev, l->monitor, ZMQ_DONTWAIT);
            zmq_msg_close(&ev);
            if (rc < 0)
                break;
        }
        zmq_close(l->monitor);
    }
    free(l->conns);
    free(l);
    *lp = NULL;
}
