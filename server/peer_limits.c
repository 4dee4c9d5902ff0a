/* peer_limits.c — connection cap and per-peer message rate of one shard's
 * ROUTER (peer_limits.h). */
#include "peer_limits.h"

#include "util.h"
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <zmq.h>

#define PEERS_AUTO_BASE   64    /* max_peers 0: 4 per worker plus this many */
#define RATE_IDLE_MS      10000 /* an unwelcomed peer's bucket is reused after this silence */
#define RATE_TABLE_FACTOR 4     /* slots per allowed peer */
#define RATE_DEFAULT      100   /* a job built without the loader (limits zero): its default */

/* The bucket of one peer, found by its ROUTER identity. */
typedef struct peer_rate {
    unsigned char identity[PS_IDENTITY_MAX];
    uint8_t identity_len;  /* 0: the slot was never used */
    bool welcomed;         /* psd sent it a WELCOME: not limited */
    uint32_t worker_id;    /* the worker it was welcomed as */
    uint64_t tokens_milli; /* thousandths of a message */
    uint64_t last_ms;
} peer_rate;

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
    uint32_t peers, peers_max, rate; /* rate: limits.unregistered_rate */
    uint64_t peers_refused, rate_refused;
    bool peers_warned, rate_warned;
    peer_rate *rates; /* open addressing by identity, nrates (a power of 2) slots */
    size_t nrates;
    char why[PS_MSG_ERROR_MAX];
};

static uint64_t identity_hash(const unsigned char *id, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ id[i]) * 1099511628211ull;
    return h;
}

/* A slot that may be given to another peer: an unwelcomed one silent for
 * RATE_IDLE_MS, or a welcomed one whose worker has gone. */
static bool rate_stale(const ps_peer_limits *l, const peer_rate *p, uint64_t now)
{
    if (p->welcomed)
        return ps_engine_worker_rank(l->engine, p->worker_id) < 0;
    return now - p->last_ms > RATE_IDLE_MS;
}

/* The bucket of this identity, made (full) when there is none; NULL when
 * every slot is taken by a live peer. */
static peer_rate *rate_find(ps_peer_limits *l, const unsigned char *id, size_t n, uint64_t now)
{
    if (n == 0 || n > PS_IDENTITY_MAX || l->rates == NULL)
        return NULL;
    size_t mask = l->nrates - 1;
    peer_rate *spare = NULL;
    for (size_t i = 0, at = (size_t)identity_hash(id, n) & mask; i < l->nrates;
         i++, at = (at + 1) & mask) {
        peer_rate *p = &l->rates[at];
        if (p->identity_len == n && memcmp(p->identity, id, n) == 0)
            return p;
        if (p->identity_len == 0) {
            spare = spare ? spare : p;
            break;
        }
        if (spare == NULL && rate_stale(l, p, now))
            spare = p;
    }
    if (spare == NULL)
        return NULL;
    memset(spare, 0, sizeof *spare);
    memcpy(spare->identity, id, n);
    spare->identity_len = (uint8_t)n;
    spare->tokens_milli = (uint64_t)l->rate * 1000;
    spare->last_ms = now;
    return spare;
}

void ps_peer_limits_welcomed(ps_peer_limits *l, const void *identity, size_t identity_len,
                             uint32_t worker_id)
{
    peer_rate *p = rate_find(l, identity, identity_len, ps_clock_ms());
    if (p != NULL) {
        p->welcomed = true;
        p->worker_id = worker_id;
    }
}

bool ps_peer_limits_over(ps_peer_limits *l, const void *identity, size_t identity_len,
                         uint64_t now_ms)
{
    peer_rate *p = rate_find(l, identity, identity_len, now_ms);
    if (p != NULL && p->welcomed) {
        if (ps_engine_worker_rank(l->engine, p->worker_id) >= 0)
            return false;
        /* its worker left or was evicted: a stranger again, bucket full */
        p->welcomed = false;
        p->tokens_milli = (uint64_t)l->rate * 1000;
        p->last_ms = now_ms;
    }
    uint64_t rate = l->rate;
    if (p != NULL) {
        uint64_t full = rate * 1000, add = (now_ms - p->last_ms) * rate;
        p->tokens_milli = add >= full - p->tokens_milli ? full : p->tokens_milli + add;
        p->last_ms = now_ms;
        if (p->tokens_milli >= 1000) {
            p->tokens_milli -= 1000;
            return false;
        }
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
        if (l->zap != NULL)
            ps_zap_handshake_event(l->zap, event, value, l->endpoint);
        if (event == ZMQ_EVENT_DISCONNECTED && l->peers > 0)
            l->peers--;
        if (event != ZMQ_EVENT_ACCEPTED || ++l->peers <= l->peers_max)
            continue;
        if (!fd_is_ours(l, (int)value) || shutdown((int)value, SHUT_RDWR) != 0)
            continue;
        l->peers_refused++;
        l->counters->refused_peers++;
        if (!l->peers_warned)
            PS_LOG_W(l->log,
                     "shard %u: %u peers are connected (limits.max_peers %u): further "
                     "connections are closed (said once)",
                     l->shard, l->peers - 1, l->peers_max);
        l->peers_warned = true;
    }
}

void *ps_peer_limits_monitor(const ps_peer_limits *l)
{
    return l->monitor;
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
    l->rate = job->limits.unregistered_rate ? job->limits.unregistered_rate : RATE_DEFAULT;
    snprintf(l->why, sizeof l->why, "more than %llu messages a second before registering",
             (unsigned long long)l->rate);
    for (l->nrates = 16; l->nrates < (size_t)l->peers_max * RATE_TABLE_FACTOR;)
        l->nrates *= 2;
    l->rates = calloc(l->nrates, sizeof *l->rates);
    if (l->rates == NULL) {
        ps_error_set(err, PS_ENOMEM, "cannot allocate the table of %zu peers", l->nrates);
        goto fail;
    }
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
    if (l->peers_refused + l->rate_refused > 0)
        PS_LOG_I(l->log,
                 "shard %u/%u: refused %llu connections over limits.max_peers and %llu "
                 "messages over limits.unregistered_rate",
                 l->shard, l->nshards, (unsigned long long)l->peers_refused,
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
    free(l->rates);
    free(l);
    *lp = NULL;
}
