/* server.c — psd's event loop: poll the ROUTER with a 100 ms timeout (so the
 * stop flag is seen), drain what has arrived, hand each message to the
 * engine and send its replies. The received frames and the decoded message
 * live in the server struct: nothing is allocated per request. Big pull
 * replies go out without a copy, straight from θ (below). /metrics is
 * served from the same loop (metrics.h), which counts what it receives and
 * sends for it. */
#include "server.h"

#include "launch_env.h"

#include "checkpointer.h"
#include "metrics.h"
#include "notify.h"
#include "peer_limits.h"
#include "shm_sessions.h"
#include "util.h"
#include "wire.h"
#include "zap.h"

#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <zmq.h>

#define POLL_MS      100
#define BATCH_MAX    256 /* messages handled between two looks at the stop flag */
#define FRAME_SLACK  64
#define STATUS_MS    1000 /* how often systemd's STATUS= is refreshed */
#define CKPT_WAITERS 8    /* psctl checkpoint requests answered at once */

/* A loop iteration takes at most POLL_MS plus the work of one drain. One
 * that took STALL_MIN_MS longer means psd itself was stalled (SIGSTOP, a
 * paused VM, swapping, no CPU): the workers' silence during it is forgiven
 * (ps_engine_forgive), and stalls of STALL_LOG_MS or more are logged. */
#define STALL_MIN_MS 400
#define STALL_LOG_MS 1000

/* When psd stops, it answers every request with the stop's ERROR for a
 * grace period of two heartbeat intervals (within these bounds), or until
 * every live worker has been told, so no worker waits for a server that is
 * gone; LINGER_MS then lets the last replies leave. */
#define STOP_GRACE_MIN_MS 500
#define STOP_GRACE_MAX_MS 3000
#define STOP_LINGER_MS    500

/* Pull replies of at least ZEROCOPY_MIN_BYTES are handed to ZeroMQ by
 * reference to θ itself: the reply holds θ's buffer (ps_store_theta_hold)
 * until ZeroMQ's I/O thread has sent it and calls theta_release. θ is
 * copy-on-write (store.h): a push or round that writes θ while a reply
 * still holds its buffer first moves θ to a free buffer, so a reply always
 * carries θ as it was when it was answered. With one worker, or sync
 * rounds, a reply has gone by the time the next write comes: θ is written
 * in place and nothing is copied. When the store has no free buffer left
 * for such a write (replies in flight hold all of them), the reply is
 * copied as a small one is. */
#define ZEROCOPY_MIN_BYTES ((size_t)64 << 10)

struct ps_server {
    void *zctx;
    void *sock;
    ps_engine *engine;
    const ps_log *log;
    uint32_t shard, nshards;
    char endpoint[PS_ENDPOINT_MAX];
    ps_frames frames;
    ps_msg msg;
    ps_error err;
    /* a sparse request's keys, decoded by the codec as it checks them:
     * grown to the most keys a request has had, up to KEYS_DECODED_MAX
     * (more are checked there and decoded by the engine) */
    uint64_t *keys;
    size_t keys_cap;
    ps_job job; /* as loaded, to tell what a reload changed */
    ps_notify notify;
    uint64_t status_ms;      /* when STATUS= was last sent */
    ps_engine_stats status;  /* what it said */
    uint64_t status_updates; /* ... the updates of θ then */
    double status_rate;      /* ... and updates a second since the one before */
    ps_metrics *metrics;     /* NULL: metrics.listen is off for this shard */
    ps_metrics_counters counters;
    uint64_t metrics_ms;   /* when ps_metrics_run last ran */
    bool hold_warned;      /* "no memory for another buffer of θ" was logged */
    ps_checkpointer *ckpt; /* NULL without a checkpoint section */
    bool exit_when_done;
    /* the wait for ranks whose data is not finished once no worker is
     * live (incomplete_check): since when (0: not waiting), whether its
     * end was said, and the job's end then */
    uint64_t idle_since_ms;
    bool incomplete_said;
    bool incomplete; /* psd stopped the job as incomplete (ps_server_incomplete) */
    char incomplete_why[PS_MSG_ERROR_MAX];
    /* psctl checkpoint requests waiting for the next checkpoint on disk */
    struct ckpt_waiter {
        unsigned char identity[PS_IDENTITY_MAX];
        size_t identity_len;
        uint64_t seq;
    } waiters[CKPT_WAITERS];
    size_t nwaiters;
    uint64_t waiters_after; /* checkpoints finished (written, failed or skipped) when they asked */
    ps_shm_sessions *shm;   /* workers on this host (shm_sessions.h) */
    ps_zap *zap;            /* security.curve: who may connect and ask what; NULL when off */
    ps_peer_limits *limits; /* connections and unregistered peers' rate (peer_limits.h) */
    int msg_fd;             /* the connection of the message being handled; -1 between */
    /* what the loop sleeps on (wait_fds): the sockets' ZMQ_FDs; whether
     * the ROUTER was last read dry, and the sends on it since */
    int router_fd, monitor_fd, zap_fd;
    bool router_dry;
    uint64_t router_sends;
    char admin_text[PS_MSG_ERROR_MAX]; /* an admin reply's detail or error */
};

/* STATUS= for systemctl status: the version, who is training, and the
 * updates of θ a second since the STATUS= before. */
static void notify_status(ps_server *s, const char *extra)
{
    ps_engine_stats st;
    ps_engine_stats_get(s->engine, &st);
    uint64_t now = ps_clock_ms(), updates = ps_store_updates(ps_engine_store(s->engine));
    double rate = 0.0;
    if (s->status_ms != 0 && now > s->status_ms && updates >= s->status_updates)
        rate = (double)(updates - s->status_updates) * 1e3 / (double)(now - s->status_ms);
    ps_notify_send(&s->notify,
                   "%sSTATUS=shard %u/%u: version %llu, %u of %u workers live, %.1f updates/s",
                   extra, s->shard, s->nshards, (unsigned long long)st.version, st.live_workers,
                   s->job.workers, rate);
    s->status = st;
    s->status_ms = now;
    s->status_updates = updates;
    s->status_rate = rate;
}

/* Watchdog ping and a fresh STATUS= when something changed (the rate
 * falling to 0 too). */
static void notify_tick(ps_server *s)
{
    if (!ps_notify_active(&s->notify))
        return;
    uint64_t now = ps_clock_ms();
    ps_notify_watchdog(&s->notify, now);
    if (now - s->status_ms < STATUS_MS)
        return;
    ps_engine_stats st;
    ps_engine_stats_get(s->engine, &st);
    if (st.version != s->status.version || st.live_workers != s->status.live_workers ||
        s->status_rate > 0.0)
        notify_status(s, "");
}

/* ---- counting for /metrics -------------------------------------------- */

/* Sends a message and counts it (header and payload bytes: a payload
 * answered in shared memory counts as well). */
static int wire_send(ps_server *s, const void *identity, size_t identity_len, const ps_msg *m,
                     const void *payload)
{
    size_t header = 0;
    s->router_sends++;
    int rc = ps_wire_send_counted(s->sock, identity, identity_len, m, payload, 0, &header);
    if (rc == 0)
        ps_metrics_count_tx(&s->counters, m->type, m->encoding, header + m->payload_bytes);
    return rc;
}

/* ps_wire_send_msg (the payload by reference), counted the same way. */
static int wire_send_msg(ps_server *s, const void *identity, size_t identity_len, const ps_msg *m,
                         zmq_msg_t *payload)
{
    size_t header = 0;
    s->router_sends++;
    int rc = ps_wire_send_msg_counted(s->sock, identity, identity_len, m, payload, 0, &header);
    if (rc == 0)
        ps_metrics_count_tx(&s->counters, m->type, m->encoding, header + m->payload_bytes);
    return rc;
}

/* Counts the message just received, as it came: its frames after the
 * identity, and a payload in shared memory. */
static void rx_count(ps_server *s)
{
    uint64_t bytes = 0;
    for (int i = 1; i < s->frames.nparts; i++)
        bytes += zmq_msg_size(&s->frames.parts[i]);
    if (s->msg.encoding == PS_ENC_SHM_F32)
        bytes += s->msg.payload_bytes;
    ps_metrics_count_rx(&s->counters, s->msg.type, s->msg.encoding, bytes);
}

/* ZeroMQ's free function for a reply sent from θ; runs on its I/O thread
 * (or in zmq_msg_send, when the message is dropped). */
static void theta_release(void *data, void *hint)
{
    (void)data;
    ps_store_theta_release(hint);
}

/* The engine's replies go out here: a WELCOME lifts the peer's rate limit
 * and may name a shared-memory segment; a pull's θ goes into shared memory
 * when the worker asked so, else a big one is handed to ZeroMQ by
 * reference to θ's buffer (ZEROCOPY_MIN_BYTES). */
static int server_send(void *ctx, const void *identity, size_t identity_len, ps_msg *reply,
                       const void *payload)
{
    ps_server *s = ctx;
    if (reply->type == PS_MSG_WELCOME) {
        ps_peer_limits_welcomed(s->limits, s->msg_fd, reply->worker_id);
        ps_shm_sessions_welcome(s->shm, &s->msg, reply);
    }
    if (ps_shm_sessions_pull_reply(s->shm, reply, payload))
        return wire_send(s, identity, identity_len, reply, NULL);
    /* a compressed θ (the engine's one encoding per version) is copied, and
     * so are sparse rows: they are in the engine's buffer for replies of
     * rows, which the next pull of rows overwrites while ZeroMQ may still
     * be sending this one */
    if (reply->type != PS_MSG_PULL_REPLY || reply->payload_bytes < ZEROCOPY_MIN_BYTES ||
        reply->encoding != PS_ENC_F32 || reply->table != 0)
        return wire_send(s, identity, identity_len, reply, payload);
    ps_store *st = ps_engine_store(s->engine);
    ps_store_ref *ref;
    int rc = ps_store_theta_hold(st, &ref);
    if (rc != 0) {
        if (rc == PS_ENOMEM && !s->hold_warned) {
            PS_LOG_W(s->log, "shard %u: no memory for another buffer of θ: big pulls are copied",
                     s->shard);
            s->hold_warned = true;
        }
        return wire_send(s, identity, identity_len, reply, payload);
    }
    /* the reply's keys, which the engine checked against the shard, in the
     * buffer just held */
    assert(payload == ps_store_data(st) + (reply->key_lo - ps_engine_key_lo(s->engine)));
    zmq_msg_t msg;
    if (zmq_msg_init_data(&msg, (void *)payload, (size_t)reply->payload_bytes, theta_release,
                          ref) != 0) {
        ps_store_theta_release(ref);
        return wire_send(s, identity, identity_len, reply, payload);
    }
    return wire_send_msg(s, identity, identity_len, reply, &msg);
}

/* Before an ipc:// bind: ZeroMQ would silently take over the socket file
 * of a live server, and both would run (a split brain). A file that a
 * server accepts connections on is refused; a stale one (its server died)
 * is left to ZeroMQ, which replaces it; anything else at the path is not
 * ours to delete. Abstract (@name) endpoints fail on their own. */
static int ipc_probe(const char *endpoint, ps_error *err)
{
    const char *path = endpoint + strlen("ipc://");
    struct stat st;
    if (path[0] == '@' || lstat(path, &st) != 0)
        return 0;
    if (!S_ISSOCK(st.st_mode))
        return ps_error_set(err, PS_EZMQ, "cannot bind %s: %s exists and is not a socket", endpoint,
                            path);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return 0; /* ZeroMQ refuses it with its own message */
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    if (rc == 0)
        return ps_error_set(err, PS_EZMQ,
                            "cannot bind %s: another process serves it (a second psd for this "
                            "shard?)",
                            endpoint);
    return 0;
}

/* Before binding every interface for a host name (ps_launch_bind_endpoint):
 * the name must resolve, or the workers could never reach this shard by
 * it, and psd would listen on every interface for nothing. */
static int host_probe(const char *endpoint, ps_error *err)
{
    char host[PS_ENDPOINT_MAX];
    const char *h = endpoint + strlen("tcp://");
    const char *colon = strrchr(h, ':');
    size_t n = colon != NULL ? (size_t)(colon - h) : strlen(h);
    if (n >= sizeof host)
        return 0;
    memcpy(host, h, n);
    host[n] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int gai = getaddrinfo(host, NULL, &hints, &ai);
    if (gai == 0) {
        freeaddrinfo(ai);
        return 0;
    }
    return ps_error_set(err, PS_EZMQ, "cannot bind %s: the host name %s cannot be resolved (%s)",
                        endpoint, host, gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
}

/* What a failed bind's errno means here, after ZeroMQ's words. */
static const char *bind_hint(int e)
{
    switch (e) {
    case EADDRINUSE:
        return " (a second psd for this shard?)";
    case ENODEV: /* ZeroMQ's word when the host is no address or interface of this host */
        return " (the host is not an address or network interface of this machine)";
    case EADDRNOTAVAIL:
        return " (the address is not one of this machine's)";
    default:
        return "";
    }
}

/* The ROUTER, options set, bound to the endpoint. It takes messages up to
 * θ's shard (shard_params floats) or a header, and with sparse tables up to
 * PS_SPARSE_FRAME_MAX: ZeroMQ drops the connection of a peer that sends a
 * larger one. */
static int server_bind(ps_server *s, size_t shard_params, bool tables, ps_error *err)
{
    if (strncmp(s->endpoint, "ipc://", 6) == 0 && ipc_probe(s->endpoint, err) != 0)
        return err->code;
    s->sock = zmq_socket(s->zctx, ZMQ_ROUTER);
    if (s->sock == NULL)
        return ps_error_set(err, PS_EZMQ, "cannot create a socket: %s", zmq_strerror(errno));
    int linger = 0, mandatory = 0, handshake_ms = PS_PEER_SILENT_MS;
    int64_t max_bytes = (int64_t)shard_params * 4;
    if (max_bytes < PS_HEADER_MAX_BYTES)
        max_bytes = PS_HEADER_MAX_BYTES;
    if (tables && max_bytes < PS_SPARSE_FRAME_MAX)
        max_bytes = PS_SPARSE_FRAME_MAX;
    max_bytes += FRAME_SLACK;
    if (zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_ROUTER_MANDATORY, &mandatory, sizeof mandatory) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_HANDSHAKE_IVL, &handshake_ms, sizeof handshake_ms) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &max_bytes, sizeof max_bytes) != 0)
        return ps_error_set(err, PS_EZMQ, "cannot set socket options: %s", zmq_strerror(errno));
    if (s->job.security.curve &&
        (s->zap = ps_zap_new(s->zctx, s->sock, &s->job, s->shard, s->log, err)) == NULL)
        return err->code;
    /* a DNS name (psd-0.psd.ns.svc) is how the others reach this host, no
     * interface to bind: bind every interface on its port (launch_env.h) */
    char bind_ep[PS_ENDPOINT_MAX];
    ps_launch_bind_endpoint(s->endpoint, bind_ep, sizeof bind_ep);
    if (strcmp(bind_ep, s->endpoint) != 0) {
        if (host_probe(s->endpoint, err) != 0)
            return err->code;
        PS_LOG_I(s->log, "%s names a host, not an interface: binding %s", s->endpoint, bind_ep);
    }
    if (zmq_bind(s->sock, bind_ep) != 0) {
        int e = errno;
        return ps_error_set(err, PS_EZMQ, "cannot bind %s: %s%s", bind_ep, zmq_strerror(e),
                            bind_hint(e));
    }
    return 0;
}

/* The descriptor the loop polls for a ZeroMQ socket (see wait_fds), or -1. */
static int zmq_fd_of(void *sock)
{
    int fd = -1;
    size_t len = sizeof fd;
    if (sock == NULL || zmq_getsockopt(sock, ZMQ_FD, &fd, &len) != 0)
        return -1;
    return fd;
}

ps_server *ps_server_new(const ps_job *job, uint32_t shard, const ps_log *log, ps_error *err)
{
    ps_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        ps_error_set(err, PS_ENOMEM, "cannot allocate the server");
        return NULL;
    }
    s->log = log;
    s->shard = shard;
    s->job = *job;
    s->msg_fd = -1;
    ps_metrics_counters_init(&s->counters);
    if (ps_notify_init(&s->notify) != 0)
        PS_LOG_W(log, "NOTIFY_SOCKET or WATCHDOG_USEC is malformed: not talking to systemd");
    s->nshards = job->nservers;
    s->engine = ps_engine_new(job, shard, log, err);
    if (s->engine == NULL)
        goto fail;
    size_t ntables = 0;
    ps_table *const *tables = ps_engine_tables(s->engine, &ntables);
    if (ps_checkpointer_new_tables(job, shard, s->engine, tables, ntables, log, &s->ckpt, err) != 0)
        goto fail;
    ps_strlcpy(s->endpoint, job->servers[shard], sizeof s->endpoint);
    if ((s->shm = ps_shm_sessions_new(job, shard, s->engine, log, err)) == NULL)
        goto fail;
    s->zctx = zmq_ctx_new();
    if (s->zctx == NULL) {
        ps_error_set(err, PS_EZMQ, "cannot create a zeromq context: %s", zmq_strerror(errno));
        goto fail;
    }
    uint64_t lo = ps_engine_key_lo(s->engine), hi = ps_engine_key_hi(s->engine);
    if (server_bind(s, (size_t)(hi - lo), ntables > 0, err) != 0)
        goto fail;
    s->limits = ps_peer_limits_new(s->zctx, s->sock, job, shard, s->endpoint, s->engine, s->zap,
                                   &s->counters, log, err);
    if (s->limits == NULL)
        goto fail;
    s->router_fd = zmq_fd_of(s->sock);
    s->monitor_fd = zmq_fd_of(ps_peer_limits_monitor(s->limits));
    s->zap_fd = s->zap != NULL ? zmq_fd_of(ps_zap_socket(s->zap)) : -1;
    if (s->router_fd < 0 || s->monitor_fd < 0 || (s->zap != NULL && s->zap_fd < 0)) {
        ps_error_set(err, PS_EZMQ, "cannot get the descriptors of %s's sockets: %s", s->endpoint,
                     zmq_strerror(errno));
        goto fail;
    }
    PS_LOG_I(log, "shard %u/%u listening on %s (%llu params, %s, %u worker%s)", shard,
             job->nservers, s->endpoint, (unsigned long long)(hi - lo), ps_mode_name(job->mode),
             job->workers, job->workers == 1 ? "" : "s");
    if (job->metrics.listen[shard][0] != '\0') {
        ps_metrics_source src = {.job = &s->job,
                                 .shard = shard,
                                 .engine = s->engine,
                                 .ckpt = s->ckpt,
                                 .counters = &s->counters};
        s->metrics = ps_metrics_new(&src, job->metrics.listen[shard], log, err);
        if (s->metrics == NULL)
            goto fail;
    }
    notify_status(s, "READY=1\n");
    return s;
fail:
    ps_server_destroy(&s);
    return NULL;
}

/* A reply of the admin kind to one peer: ACK with detail, or ERROR. */
static void admin_reply(ps_server *s, const void *identity, size_t identity_len, uint64_t seq,
                        int status, const char *text)
{
    ps_msg r;
    ps_msg_init(&r, status == 0 ? PS_MSG_ACK : PS_MSG_ERROR);
    r.job = s->job.name;
    r.seq = seq;
    r.shard_index = s->shard;
    r.model_version = ps_engine_version(s->engine);
    r.status = status;
    if (text != s->admin_text)
        ps_strlcpy(s->admin_text, text, sizeof s->admin_text);
    if (status == 0)
        r.detail = s->admin_text;
    else
        r.error = s->admin_text;
    if (status < 0 && -status < PS_METRICS_ERRORS)
        s->counters.errors[-status]++;
    wire_send(s, identity, identity_len, &r, NULL);
}

/* psctl checkpoint: one is started as soon as the writer is free, and the
 * request is answered once it is on disk. */
static void checkpoint_asked(ps_server *s)
{
    if (s->ckpt == NULL) {
        char why[PS_MSG_ERROR_MAX];
        snprintf(why, sizeof why, "job \"%s\" has no checkpoint section", s->job.name);
        admin_reply(s, s->frames.identity, s->frames.identity_len, s->msg.seq, PS_ESTATE, why);
        return;
    }
    if (s->nwaiters == CKPT_WAITERS) {
        admin_reply(s, s->frames.identity, s->frames.identity_len, s->msg.seq, PS_EFULL,
                    "too many checkpoint requests are waiting already");
        return;
    }
    if (s->nwaiters == 0)
        s->waiters_after = ps_checkpointer_finished(s->ckpt, NULL, NULL);
    struct ckpt_waiter *w = &s->waiters[s->nwaiters++];
    w->identity_len = s->frames.identity_len;
    memcpy(w->identity, s->frames.identity, w->identity_len);
    w->seq = s->msg.seq;
    ps_checkpointer_request(s->ckpt);
}

/* Answers the psctl requests once a checkpoint newer than theirs exists,
 * with the write's error (PS_EIO) or the skip's reason (PS_EDIVERGED) when
 * it was not written. */
static void checkpoint_answer(ps_server *s)
{
    const char *what; /* the path written, or why it was not (a failed write: PS_EIO) */
    int status;
    if (s->nwaiters == 0 ||
        ps_checkpointer_finished(s->ckpt, &status, &what) < s->waiters_after + 1)
        return;
    char text[PS_MSG_ERROR_MAX];
    if (status == 0)
        snprintf(text, sizeof text, "checkpoint written: %s", what);
    else
        snprintf(text, sizeof text, "%s", what);
    for (size_t i = 0; i < s->nwaiters; i++)
        admin_reply(s, s->waiters[i].identity, s->waiters[i].identity_len, s->waiters[i].seq,
                    status, text);
    s->nwaiters = 0;
}

#define KEYS_DECODED_MAX ((size_t)1 << 20) /* 8 MiB of keys */

/* Room for the codec to decode n keys of the next sparse request (n
 * from a request it accepted, so its frame held them); none past
 * KEYS_DECODED_MAX, and none without memory: then the keys are checked and
 * decoded in two passes, as before. */
static void keys_room(ps_server *s, uint64_t n)
{
    if (n <= s->keys_cap || n > KEYS_DECODED_MAX)
        return;
    uint64_t *k = realloc(s->keys, (size_t)n * sizeof *k);
    if (k == NULL)
        return;
    s->keys = k;
    s->keys_cap = (size_t)n;
}

/* Handles what has arrived, up to BATCH_MAX messages. Returns 0 or PS_EZMQ
 * when the socket failed. */
static int server_drain(ps_server *s, volatile sig_atomic_t *stop, ps_error *err)
{
    s->router_dry = false;
    for (int i = 0; i < BATCH_MAX && (stop == NULL || !*stop); i++) {
        ps_error_clear(&s->err);
        int rc = ps_wire_recv_keys(s->sock, true, ZMQ_DONTWAIT, &s->frames, s->keys, s->keys_cap,
                                   &s->msg, &s->err);
        if (rc == PS_EZMQ) {
            int e = errno;
            ps_frames_close(&s->frames);
            if (e == EAGAIN) { /* read dry, after every send of this drain */
                s->router_dry = true;
                s->router_sends = 0;
                return 0;
            }
            if (e == EINTR)
                return 0;
            return ps_error_set(err, PS_EZMQ, "receive on %s: %s", s->endpoint, zmq_strerror(e));
        }
        rx_count(s);
        int fd = s->frames.nparts >= 2 ? ps_peer_limits_fd_of(&s->frames.parts[1]) : -1;
        if (ps_peer_limits_closed(s->limits, fd, ps_clock_ms())) {
            ps_frames_close(&s->frames);
            continue;
        }
        if (ps_peer_limits_over(s->limits, fd, ps_clock_ms())) {
            admin_reply(s, s->frames.identity, s->frames.identity_len, s->msg.seq, PS_EFULL,
                        ps_peer_limits_why(s->limits));
            ps_frames_close(&s->frames);
            continue;
        }
        if (rc == 0 && s->zap != NULL && s->frames.nparts >= 2 &&
            !ps_zap_admits(s->zap, &s->frames.parts[1], s->msg.type)) {
            admin_reply(s, s->frames.identity, s->frames.identity_len, s->msg.seq, PS_EACCESS,
                        "this key may not make that request");
            ps_frames_close(&s->frames);
            continue;
        }
        if (rc == 0) /* a live worker's heartbeats: its connection is registered */
            ps_peer_limits_heard(s->limits, fd, s->msg.worker_id);
        s->msg_fd = fd;
        if (rc == 0)
            rc = ps_shm_sessions_request(s->shm, s->job.name, &s->msg, &s->err);
        if (rc == 0 && s->msg.type == PS_MSG_CHECKPOINT && s->msg.protocol == PS_PROTOCOL_VERSION &&
            strcmp(s->msg.job, s->job.name) == 0)
            checkpoint_asked(s);
        else
            ps_engine_handle(s->engine, s->frames.identity, s->frames.identity_len, rc, &s->msg,
                             &s->err, server_send, s);
        s->msg_fd = -1;
        if (rc == 0 && s->msg.keys == NULL && s->msg.keys_bytes > 0)
            keys_room(s, s->msg.nkeys);
        ps_metrics_observe(&s->counters, s->engine);
        ps_frames_close(&s->frames);
    }
    return 0;
}

/* The ranks whose data is not finished, once no worker is live
 * (ps_engine_idle): the wait for them, or for workers that take their
 * ranks over, is logged when it begins; a worker that joins ends it. After
 * heartbeat.incomplete_wait_ms the job is incomplete: logged once, naming
 * each rank and how far its data got; with --exit-when-done psd then stops
 * the job (true), else it goes on serving. */
static bool incomplete_check(ps_server *s, uint64_t now)
{
    if (!ps_engine_idle(s->engine)) {
        if (s->idle_since_ms != 0 && !ps_engine_complete(s->engine))
            PS_LOG_I(s->log, "shard %u/%u: a worker joined: the wait for the unfinished ranks ends",
                     s->shard, s->nshards);
        s->idle_since_ms = 0;
        s->incomplete_said = false;
        return false;
    }
    char ranks[4096];
    uint32_t wait = s->job.heartbeat.incomplete_wait_ms;
    if (s->idle_since_ms == 0) {
        s->idle_since_ms = now > 0 ? now : 1;
        uint32_t n = ps_engine_unfinished_format(s->engine, ranks, sizeof ranks);
        PS_LOG_W(s->log,
                 "shard %u/%u: no worker is live and the job is not complete (%s): waiting up to "
                 "%u ms for %s or for a worker taking %s over (heartbeat.incomplete_wait_ms)",
                 s->shard, s->nshards, ranks, wait, n == 1 ? "it" : "them",
                 n == 1 ? "the rank" : "each rank");
    }
    if (s->incomplete_said || now - s->idle_since_ms < wait)
        return false;
    s->incomplete_said = true;
    uint32_t n = ps_engine_unfinished_format(s->engine, ranks, sizeof ranks);
    PS_LOG_E(
        s->log,
        "shard %u/%u: the job is incomplete: %u rank%s did not finish %s data within %u ms: %s",
        s->shard, s->nshards, n, n == 1 ? "" : "s", n == 1 ? "its" : "their", wait, ranks);
    const char *head = "the job is incomplete: ";
    ps_strlcpy(s->incomplete_why, head, sizeof s->incomplete_why);
    size_t at = strlen(s->incomplete_why);
    ps_engine_unfinished_format(s->engine, s->incomplete_why + at, sizeof s->incomplete_why - at);
    if (!s->exit_when_done) {
        ps_notify_send(&s->notify, "STATUS=shard %u/%u: %s", s->shard, s->nshards,
                       s->incomplete_why);
        return false;
    }
    return true;
}

/* Measures how long psd's loop was away since its last turn (last_ms) and
 * forgives the workers' silence for a stall (see STALL_MIN_MS). */
static void stall_check(ps_server *s, uint64_t now, uint64_t last_ms)
{
    if (last_ms == 0 || now < last_ms || now - last_ms < POLL_MS + STALL_MIN_MS)
        return;
    uint64_t stall = now - last_ms - POLL_MS;
    ps_engine_forgive(s->engine, stall, now);
    ps_log_write(s->log, stall >= STALL_LOG_MS ? PS_LOG_WARN : PS_LOG_DEBUG,
                 "shard %u: psd was stalled for %llu ms (stopped, paused or short of CPU): "
                 "the workers' silence meanwhile is forgiven",
                 s->shard, (unsigned long long)stall);
}

/* The name of a stop signal, for the workers' last message. */
static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGHUP:
        return "SIGHUP";
    default:
        return "a signal";
    }
}

/* psd stops: every live worker is told why (ps_engine_stop) and, for a
 * grace period, every request is answered with it, so no worker waits out
 * its deadline for a server that is gone. */
static void server_wind_down(ps_server *s, int code, const char *why)
{
    ps_engine_stop(s->engine, code, why, server_send, s);
    uint64_t grace = 2 * (uint64_t)s->job.heartbeat.interval_ms;
    grace = grace < STOP_GRACE_MIN_MS ? STOP_GRACE_MIN_MS : grace;
    grace = grace > STOP_GRACE_MAX_MS ? STOP_GRACE_MAX_MS : grace;
    uint64_t end = ps_clock_ms() + grace;
    ps_error err;
    while (!ps_engine_all_told(s->engine)) {
        uint64_t now = ps_clock_ms();
        if (now >= end)
            break;
        zmq_pollitem_t item = {.socket = s->sock, .events = ZMQ_POLLIN};
        long wait = (long)(end - now) < POLL_MS ? (long)(end - now) : POLL_MS;
        int n = zmq_poll(&item, 1, wait);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && server_drain(s, NULL, &err) != 0)
            break;
    }
    int linger = STOP_LINGER_MS;
    zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger);
}

/* How the loop waits (wait_fds): in poll(2) on the descriptors ZeroMQ
 * gives for its sockets (ZMQ_FD) and /metrics' socket, not in zmq_poll,
 * whose two passes over every socket cost a push + pull of 1k floats a
 * tenth of its time. A ZMQ_FD only says that its socket's state may have
 * changed (an edge, not a level), so each socket is read until it has
 * nothing (EAGAIN) whenever its descriptor fires. Sending on a socket may
 * take that edge for a message that arrived meanwhile, so after sends
 * that came later than the ROUTER's last read dry (replies the loop made
 * on its own: evictions, checkpoints), the ROUTER is asked (ZMQ_EVENTS)
 * before the loop sleeps. */
/* True when the ROUTER may hold a message its descriptor will not
 * announce: not read dry, or asked since and found to have one. */
static bool router_ready(ps_server *s)
{
    if (!s->router_dry)
        return true;
    if (s->router_sends == 0)
        return false;
    int events = 0;
    size_t len = sizeof events;
    if (zmq_getsockopt(s->sock, ZMQ_EVENTS, &events, &len) != 0)
        return true;
    s->router_sends = 0;
    return (events & ZMQ_POLLIN) != 0;
}

int ps_server_run(ps_server *s, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload,
                  ps_error *err)
{
    /* read every socket dry first: a ZMQ_FD says nothing of what came before */
    s->router_dry = false;
    ps_peer_limits_tick(s->limits);
    if (s->zap != NULL)
        ps_zap_handle(s->zap);
    int rc = 0;
    bool complete = false;
    uint64_t last_ms = 0;
    while (!*stop && !(reload && *reload)) {
        uint64_t now = ps_clock_ms();
        const char *why;
        if (ps_engine_aborted(s->engine, &why)) {
            rc = ps_error_set(err, PS_EABORTED, "%s", why);
            break;
        }
        if (s->exit_when_done && ps_engine_complete(s->engine)) {
            PS_LOG_I(s->log, "shard %u/%u: every worker said goodbye: the job is complete",
                     s->shard, s->nshards);
            complete = true;
            break;
        }
        if (incomplete_check(s, now)) {
            s->incomplete = true;
            break;
        }
        ps_checkpointer_tick(s->ckpt, now);
        checkpoint_answer(s);
        ps_shm_sessions_sweep(s->shm, now);
        notify_tick(s);
        /* the ROUTER, the limits' monitor, ZAP's socket, then /metrics'
         * descriptor: see wait_fds */
        struct pollfd fds[4];
        int nfds = 0, scrape_fd = -1;
        fds[nfds++] = (struct pollfd){.fd = s->router_fd, .events = POLLIN};
        fds[nfds++] = (struct pollfd){.fd = s->monitor_fd, .events = POLLIN};
        if (s->zap != NULL)
            fds[nfds++] = (struct pollfd){.fd = s->zap_fd, .events = POLLIN};
        if (ps_metrics_fd(s->metrics) >= 0) {
            scrape_fd = nfds;
            fds[nfds++] = (struct pollfd){.fd = ps_metrics_fd(s->metrics), .events = POLLIN};
        }
        bool ready = router_ready(s), moving = ps_engine_tables_growing(s->engine);
        int n = poll(fds, (nfds_t)nfds,
                     ready || moving ? 0 : ps_metrics_timeout_ms(s->metrics, POLL_MS));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = ps_error_set(err, PS_EZMQ, "poll on %s: %s", s->endpoint, strerror(errno));
            break;
        }
        if (fds[1].revents & POLLIN)
            ps_peer_limits_tick(s->limits);
        if (s->zap != NULL && (fds[2].revents & POLLIN))
            ps_zap_handle(s->zap);
        if ((ready || (fds[0].revents & POLLIN)) && (rc = server_drain(s, stop, err)) != 0)
            break;
        /* connections over the cap or silent, once what came was read */
        ps_peer_limits_sweep(s->limits, s->router_dry, ps_clock_ms());
        /* evictions only once what arrived meanwhile was read (a heartbeat
         * waiting in the socket is a sign of life), and not for silence
         * while psd itself stood still */
        now = ps_clock_ms();
        stall_check(s, now, last_ms);
        last_ms = now;
        ps_engine_tick(s->engine, now, server_send, s);
        ps_metrics_observe(&s->counters, s->engine);
        if (s->zap != NULL)
            s->counters.refused_curve = ps_zap_refused(s->zap);
        /* scrapes last, once the workers' requests were served: when a
         * scraper's socket is ready, when libmicrohttpd has work pending,
         * and every POLL_MS for its timeouts (not every turn: a busy loop
         * turns thousands of times a second) */
        if (s->metrics != NULL &&
            ((scrape_fd >= 0 && (fds[scrape_fd].revents & POLLIN)) ||
             now - s->metrics_ms >= POLL_MS || ps_metrics_timeout_ms(s->metrics, 1) == 0)) {
            ps_metrics_run(s->metrics);
            s->metrics_ms = now;
        }
    }
    if (rc == 0 && !*stop && reload && *reload)
        return 0; /* a reload: the caller comes back */
    if (rc == PS_EZMQ)
        ps_notify_send(&s->notify, "STOPPING=1\nSTATUS=%s", err->msg);
    if (rc != PS_EZMQ) {
        char why[PS_MSG_ERROR_MAX];
        int code = rc == PS_EABORTED ? PS_EABORTED : complete ? PS_ECOMPLETE : PS_ESTOPPED;
        if (code == PS_ESTOPPED && s->incomplete)
            ps_strlcpy(why, s->incomplete_why, sizeof why);
        else if (code == PS_ESTOPPED)
            snprintf(why, sizeof why, "psd (shard %u) was stopped by %s at model version %llu",
                     s->shard, signal_name((int)*stop),
                     (unsigned long long)ps_engine_version(s->engine));
        else
            ps_strlcpy(why, code == PS_EABORTED ? err->msg : "the job is complete", sizeof why);
        /* psrun reads the reason from STATUS= to explain the workers' end */
        ps_notify_send(&s->notify, "STOPPING=1\nSTATUS=%s", why);
        server_wind_down(s, code, why);
        ps_checkpointer_final(s->ckpt); /* the work so far survives the stop */
    }
    ps_engine_stats st;
    ps_engine_stats_get(s->engine, &st);
    PS_LOG_I(s->log,
             "shard %u/%u stopped: version %llu, %llu pushes, %llu dropped, %llu duplicates, "
             "%llu pulls, %llu errors, %llu evictions, longest round %llu ms, θ copied %llu "
             "times, staleness max %llu mean %.2f p99 %llu",
             s->shard, s->nshards, (unsigned long long)st.version, (unsigned long long)st.pushes,
             (unsigned long long)st.dropped, (unsigned long long)st.duplicates,
             (unsigned long long)st.pulls, (unsigned long long)st.errors,
             (unsigned long long)st.evictions, (unsigned long long)st.max_round_ms,
             (unsigned long long)st.theta_copies, (unsigned long long)st.staleness_max,
             st.staleness_mean, (unsigned long long)st.staleness_p99);
    if (ps_engine_chunks(s->engine) > 1)
        PS_LOG_I(s->log,
                 "shard %u/%u: sync rounds pipelined in %u chunks: %llu chunks of θ sent as they "
                 "were applied",
                 s->shard, s->nshards, ps_engine_chunks(s->engine),
                 (unsigned long long)st.chunk_replies);
    char ranks[4096];
    ps_engine_ranks_format(s->engine, ranks, sizeof ranks);
    PS_LOG_I(s->log, "shard %u/%u stopped with ranks: %s", s->shard, s->nshards, ranks);
    ps_engine_ranks_dropped_warn(s->engine);
    ps_peer_limits_report(s->limits);
    if (s->zap != NULL)
        PS_LOG_I(s->log, "shard %u/%u: CURVE refused %llu connections or requests", s->shard,
                 s->nshards, (unsigned long long)ps_zap_refused(s->zap));
    return rc;
}

/* Logs a setting that changed in the job file but needs a restart. */
static void reload_ignored(ps_server *s, bool changed, const char *what)
{
    if (changed)
        PS_LOG_W(s->log, "reload: %s changed in the job file; restart psd to apply it", what);
}

void ps_server_reload(ps_server *s, const ps_job *job)
{
    ps_notify_send(&s->notify, "RELOADING=1");
    const ps_job *old = &s->job;
    reload_ignored(s, strcmp(old->name, job->name) != 0, "job");
    reload_ignored(s, old->mode != job->mode, "mode");
    reload_ignored(s, old->workers != job->workers, "workers");
    reload_ignored(s,
                   old->nservers != job->nservers ||
                       memcmp(old->servers, job->servers, sizeof old->servers) != 0,
                   "servers");
    reload_ignored(s, memcmp(&old->model, &job->model, sizeof old->model) != 0, "model");
    reload_ignored(s, strcmp(old->metrics.listen[s->shard], job->metrics.listen[s->shard]) != 0,
                   "metrics.listen");
    reload_ignored(s, old->optimizer.type != job->optimizer.type, "optimizer.type");
    double lr_old = ps_engine_lr(s->engine);
    if (job->optimizer.lr != old->optimizer.lr) {
        ps_engine_set_lr(s->engine, job->optimizer.lr);
        s->job.optimizer.lr = job->optimizer.lr;
    }
    PS_LOG_I(s->log, "reloaded %s: lr %g (was %g), log level %s", job->path,
             ps_engine_lr(s->engine), lr_old, ps_log_level_name(job->log_level));
    notify_status(s, "READY=1\n");
}

void ps_server_stats_get(const ps_server *s, ps_engine_stats *out)
{
    ps_engine_stats_get(s->engine, out);
}

void ps_server_destroy(ps_server **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    ps_server *s = *sp;
    ps_metrics_destroy(&s->metrics);
    ps_zap_destroy(&s->zap);
    ps_peer_limits_destroy(&s->limits);
    if (s->sock != NULL)
        zmq_close(s->sock);
    if (s->zctx != NULL)
        zmq_ctx_term(s->zctx); /* returns once every message is released */
    ps_checkpointer_destroy(&s->ckpt);
    ps_shm_sessions_destroy(&s->shm);
    ps_engine_destroy(&s->engine);
    ps_notify_fini(&s->notify);
    free(s->keys);
    free(s);
    *sp = NULL;
}

void ps_server_exit_when_done(ps_server *s, bool on)
{
    s->exit_when_done = on;
}

bool ps_server_incomplete(const ps_server *s)
{
    return s->incomplete;
}
