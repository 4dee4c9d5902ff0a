/* server.c — psd's event loop: poll the ROUTER with a 100 ms timeout (so the
 * stop flag is seen), drain what has arrived, hand each message to the
 * engine and send its replies. The received frames and the decoded message
 * live in the server struct: nothing is allocated per request. Big pull
 * replies go out without a copy, straight from θ (below). /metrics is
 * served from the same loop (metrics.h), which counts what it receives and
 * sends for it. */
#include "server.h"

#include "checkpointer.h"
#include "metrics.h"
#include "notify.h"
#include "shm.h"
#include "util.h"
#include "wire.h"
#include "zap.h"

#include <assert.h>
#include <errno.h>
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

/* Workers on psd's host exchange θ and gradients through a shared-memory
 * segment each (common/shm.h, proto/ps.proto): a push's gradient is applied
 * straight from it, a pull's θ is copied into it, and only small headers
 * cross the socket. This file is the whole of it on psd's side: the engine
 * sees an ordinary F32 push and answers an ordinary pull. */
#define SHM_SWEEP_MS 1000 /* how often segments of departed workers are freed */

typedef struct shm_session {
    uint32_t worker_id; /* the worker it was made for; 0: none */
    ps_shm seg;
    uint64_t pull_seq;     /* the newest PULL that asked for shared memory */
    uint64_t answered_seq; /* the newest PULL answered there */
    bool used;             /* the worker opened it: logged once */
} shm_session;

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
    /* psctl checkpoint requests waiting for the next checkpoint on disk */
    struct ckpt_waiter {
        unsigned char identity[PS_IDENTITY_MAX];
        size_t identity_len;
        uint64_t seq;
    } waiters[CKPT_WAITERS];
    size_t nwaiters;
    uint64_t waiters_after; /* checkpoints finished (written, failed or skipped) when they asked */
    /* shared memory: by rank; host is "" when it is off */
    char host[PS_HOST_MAX];
    shm_session *shm;
    uint64_t shm_sweep_ms;
    bool shm_warned; /* a segment could not be made: said once */
    ps_msg out;      /* a reply rewritten to point at shared memory */
    ps_zap *zap;     /* security.curve: who may connect and ask what; NULL when off */
    /* limits (limits_tick, rate_refuse) */
    void *monitor; /* PAIR on the ROUTER's socket monitor */
    uint16_t bound_port;
    uint32_t peers, peers_max, rate; /* rate: limits.unregistered_rate */
    uint64_t peers_refused, rate_refused;
    bool peers_warned, rate_warned;
    struct peer_rate *rates; /* open addressing by identity, nrates (a power of 2) slots */
    size_t nrates;
};

/* limits (defined with server_drain) */
static void rate_welcomed(ps_server *s, const void *identity, size_t n, uint32_t worker_id);
static int limits_init(ps_server *s, ps_error *err);

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

/* ---- shared memory ---------------------------------------------------- */

/* The session of the live worker with this id, or NULL. */
static shm_session *shm_find(ps_server *s, uint32_t worker_id)
{
    if (s->shm == NULL)
        return NULL;
    int rank = ps_engine_worker_rank(s->engine, worker_id);
    if (rank < 0 || s->shm[rank].worker_id != worker_id)
        return NULL;
    return &s->shm[rank];
}

static void shm_end(shm_session *x)
{
    ps_shm_detach(&x->seg);
    memset(x, 0, sizeof *x);
}

/* Frees the segments of workers that left or were evicted. */
static void shm_sweep(ps_server *s, uint64_t now)
{
    if (s->shm == NULL || now - s->shm_sweep_ms < SHM_SWEEP_MS)
        return;
    s->shm_sweep_ms = now;
    for (uint32_t r = 0; r < s->job.workers; r++)
        if (s->shm[r].worker_id != 0 &&
            ps_engine_worker_rank(s->engine, s->shm[r].worker_id) != (int)r)
            shm_end(&s->shm[r]);
}

/* A WELCOME to a HELLO from this host: a segment for the worker (kept for
 * a retried HELLO), named in the reply. Returns the reply to send. */
static const ps_msg *shm_welcome(ps_server *s, const ps_msg *reply)
{
    const ps_msg *hello = &s->msg;
    if (s->shm == NULL || hello->type != PS_MSG_HELLO || hello->host[0] == '\0' ||
        strcmp(hello->host, s->host) != 0 || reply->rank < 0 ||
        (uint32_t)reply->rank >= s->job.workers)
        return reply;
    size_t floats = (size_t)(ps_engine_key_hi(s->engine) - ps_engine_key_lo(s->engine));
    shm_session *x = &s->shm[reply->rank];
    if (x->worker_id != reply->worker_id) {
        shm_end(x);
        ps_error err;
        if (floats == 0 || ps_shm_create(&x->seg, floats, &err) != 0) {
            if (floats > 0 && !s->shm_warned)
                PS_LOG_W(s->log,
                         "shard %u: no shared memory for workers on this host (%s): "
                         "θ and gradients go over the socket",
                         s->shard, err.msg);
            s->shm_warned = s->shm_warned || floats > 0;
            return reply;
        }
        x->worker_id = reply->worker_id;
    }
    s->out = *reply;
    s->out.shm_pid = (uint32_t)getpid();
    s->out.shm_fd = (uint32_t)x->seg.fd;
    s->out.shm_bytes = x->seg.bytes;
    s->out.shm_token = x->seg.token;
    return &s->out;
}

/* The worker of x shows it opened its segment: said once. */
static void shm_used(ps_server *s, shm_session *x)
{
    if (x->used)
        return;
    x->used = true;
    PS_LOG_I(s->log, "shard %u: rank %d is on this host: θ and gradients go through shared memory",
             s->shard, (int)(x - s->shm));
}

/* A request that says its payload is in shared memory, made ordinary: a
 * PUSH's gradient becomes a pointer into the worker's segment; a PULL that
 * asks for its answer there is remembered. Returns 0, or PS_EPAYLOAD with
 * err filled (the engine then refuses the request). */
static int shm_request(ps_server *s, ps_msg *m, ps_error *err)
{
    if (m->type == PS_MSG_PULL && (m->flags & PS_FLAG_SHM)) {
        shm_session *x = shm_find(s, m->worker_id);
        if (x != NULL && m->seq > x->pull_seq) {
            x->pull_seq = m->seq;
            shm_used(s, x);
        }
        return 0;
    }
    if (m->encoding != PS_ENC_SHM_F32)
        return 0;
    /* what the engine refuses anyway (another job, an unknown worker: it
     * says so, and a worker of a restarted psd registers again) */
    if (m->protocol != PS_PROTOCOL_VERSION || strcmp(m->job, s->job.name) != 0 ||
        ps_engine_worker_rank(s->engine, m->worker_id) < 0)
        return 0;
    shm_session *x = m->type == PS_MSG_PUSH ? shm_find(s, m->worker_id) : NULL;
    if (x == NULL)
        return ps_error_set(err, PS_EPAYLOAD,
                            "%s says its payload is in shared memory, but worker %u has none "
                            "with shard %u",
                            ps_msg_type_name(m->type), m->worker_id, s->shard);
    if (m->payload_bytes > x->seg.floats * sizeof(float))
        return ps_error_set(err, PS_EPAYLOAD,
                            "a PUSH of %llu bytes does not fit the %zu bytes of shared memory",
                            (unsigned long long)m->payload_bytes, x->seg.floats * sizeof(float));
    uint64_t marked = ps_shm_grad_seq(&x->seg);
    if (marked != m->seq)
        return ps_error_set(err, PS_EPAYLOAD,
                            "the gradient in shared memory is push %llu's, not push %llu's",
                            (unsigned long long)marked, (unsigned long long)m->seq);
    m->encoding = PS_ENC_F32;
    m->payload = x->seg.grad;
    shm_used(s, x);
    return 0;
}

/* A PULL_REPLY to the newest PULL that asked for shared memory, answered
 * the first time: θ into the worker's segment, and a reply without a
 * frame. NULL when the reply goes out as usual. */
static const ps_msg *shm_pull_reply(ps_server *s, const ps_msg *reply, const void *payload)
{
    shm_session *x = shm_find(s, reply->worker_id);
    if (x == NULL || reply->seq != x->pull_seq || reply->seq <= x->answered_seq ||
        reply->encoding != PS_ENC_F32 || reply->payload_bytes > x->seg.floats * sizeof(float))
        return NULL;
    memcpy(x->seg.theta, payload, (size_t)reply->payload_bytes);
    x->answered_seq = reply->seq;
    s->out = *reply;
    s->out.encoding = PS_ENC_SHM_F32;
    return &s->out;
}

static int server_send(void *ctx, const void *identity, size_t identity_len, const ps_msg *reply,
                       const void *payload)
{
    ps_server *s = ctx;
    if (reply->type == PS_MSG_WELCOME) {
        rate_welcomed(s, identity, identity_len, reply->worker_id);
        reply = shm_welcome(s, reply);
    }
    if (reply->type == PS_MSG_PULL_REPLY && s->shm != NULL && reply->payload_bytes > 0) {
        const ps_msg *r = shm_pull_reply(s, reply, payload);
        if (r != NULL)
            return wire_send(s, identity, identity_len, r, NULL);
    }
    /* a compressed θ (the engine's one encoding per version) is copied */
    if (reply->type != PS_MSG_PULL_REPLY || reply->payload_bytes < ZEROCOPY_MIN_BYTES ||
        reply->encoding != PS_ENC_F32)
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

/* The ROUTER, options set, bound to the endpoint. */
static int server_bind(ps_server *s, size_t shard_params, ps_error *err)
{
    if (strncmp(s->endpoint, "ipc://", 6) == 0 && ipc_probe(s->endpoint, err) != 0)
        return err->code;
    s->sock = zmq_socket(s->zctx, ZMQ_ROUTER);
    if (s->sock == NULL)
        return ps_error_set(err, PS_EZMQ, "cannot create a socket: %s", zmq_strerror(errno));
    int linger = 0, mandatory = 0;
    int64_t max_bytes = (int64_t)shard_params * 4;
    if (max_bytes < PS_HEADER_MAX_BYTES)
        max_bytes = PS_HEADER_MAX_BYTES;
    max_bytes += FRAME_SLACK;
    if (zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_ROUTER_MANDATORY, &mandatory, sizeof mandatory) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &max_bytes, sizeof max_bytes) != 0)
        return ps_error_set(err, PS_EZMQ, "cannot set socket options: %s", zmq_strerror(errno));
    if (s->job.security.curve &&
        (s->zap = ps_zap_new(s->zctx, s->sock, &s->job, s->shard, s->log, err)) == NULL)
        return err->code;
    if (zmq_bind(s->sock, s->endpoint) != 0) {
        int e = errno;
        return ps_error_set(err, PS_EZMQ, "cannot bind %s: %s%s", s->endpoint, zmq_strerror(e),
                            e == EADDRINUSE ? " (a second psd for this shard?)" : "");
    }
    return 0;
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
    ps_metrics_counters_init(&s->counters);
    if (ps_notify_init(&s->notify) != 0)
        PS_LOG_W(log, "NOTIFY_SOCKET or WATCHDOG_USEC is malformed: not talking to systemd");
    s->nshards = job->nservers;
    s->engine = ps_engine_new(job, shard, log, err);
    if (s->engine == NULL)
        goto fail;
    if (ps_checkpointer_new(job, shard, s->engine, log, &s->ckpt, err) != 0)
        goto fail;
    ps_strlcpy(s->endpoint, job->servers[shard], sizeof s->endpoint);
    if (job->shared_memory && ps_shm_host_id(s->host, sizeof s->host) == 0) {
        s->shm = calloc(job->workers, sizeof *s->shm);
        if (s->shm == NULL) {
            ps_error_set(err, PS_ENOMEM, "cannot allocate the shared-memory table");
            goto fail;
        }
    }
    s->zctx = zmq_ctx_new();
    if (s->zctx == NULL) {
        ps_error_set(err, PS_EZMQ, "cannot create a zeromq context: %s", zmq_strerror(errno));
        goto fail;
    }
    uint64_t lo = ps_engine_key_lo(s->engine), hi = ps_engine_key_hi(s->engine);
    if (server_bind(s, (size_t)(hi - lo), err) != 0 || limits_init(s, err) != 0)
        goto fail;
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
    ps_msg *r = &s->msg;
    ps_msg_init(r, status == 0 ? PS_MSG_ACK : PS_MSG_ERROR);
    ps_strlcpy(r->job, s->job.name, sizeof r->job);
    r->seq = seq;
    r->shard_index = s->shard;
    r->model_version = ps_engine_version(s->engine);
    r->status = status;
    ps_strlcpy(status == 0 ? r->detail : r->error, text, PS_MSG_ERROR_MAX);
    if (status < 0 && -status < PS_METRICS_ERRORS)
        s->counters.errors[-status]++;
    wire_send(s, identity, identity_len, r, NULL);
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

/* ---- limits a hostile peer cannot exceed ------------------------------ */

/* Connections: the ROUTER's socket monitor counts them (accepted minus
 * disconnected); one accepted beyond limits.max_peers is shut down at
 * once (ZeroMQ then drops it, and a client's reconnects meet the same
 * fate while psd is full). Messages: a peer psd has not sent a WELCOME
 * spends a token a message from a bucket that holds
 * limits.unregistered_rate and refills that many a second; a message
 * with none left gets a short ERROR (PS_EFULL) and costs psd nothing
 * more. Each kind of refusal is logged once and counted. */
#define PEERS_AUTO_BASE   64    /* max_peers 0: 4 per worker plus this many */
#define RATE_IDLE_MS      10000 /* an unwelcomed peer's bucket is reused after this silence */
#define RATE_TABLE_FACTOR 4     /* slots per allowed peer */
#define RATE_DEFAULT      100   /* a job built without the loader (limits zero): its default */

/* The bucket of one peer, found by its ROUTER identity. */
struct peer_rate {
    unsigned char identity[PS_IDENTITY_MAX];
    uint8_t identity_len;  /* 0: the slot was never used */
    bool welcomed;         /* psd sent it a WELCOME: not limited */
    uint32_t worker_id;    /* the worker it was welcomed as */
    uint64_t tokens_milli; /* thousandths of a message */
    uint64_t last_ms;
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
static bool rate_stale(const ps_server *s, const struct peer_rate *p, uint64_t now)
{
    if (p->welcomed)
        return ps_engine_worker_rank(s->engine, p->worker_id) < 0;
    return now - p->last_ms > RATE_IDLE_MS;
}

/* The bucket of this identity, made (full) when there is none; NULL when
 * every slot is taken by a live peer. */
static struct peer_rate *rate_find(ps_server *s, const unsigned char *id, size_t n, uint64_t now)
{
    if (n == 0 || n > PS_IDENTITY_MAX || s->rates == NULL)
        return NULL;
    size_t mask = s->nrates - 1;
    struct peer_rate *spare = NULL;
    for (size_t i = 0, at = (size_t)identity_hash(id, n) & mask; i < s->nrates;
         i++, at = (at + 1) & mask) {
        struct peer_rate *p = &s->rates[at];
        if (p->identity_len == n && memcmp(p->identity, id, n) == 0)
            return p;
        if (p->identity_len == 0) {
            spare = spare ? spare : p;
            break;
        }
        if (spare == NULL && rate_stale(s, p, now))
            spare = p;
    }
    if (spare == NULL)
        return NULL;
    memset(spare, 0, sizeof *spare);
    memcpy(spare->identity, id, n);
    spare->identity_len = (uint8_t)n;
    spare->tokens_milli = (uint64_t)s->rate * 1000;
    spare->last_ms = now;
    return spare;
}

/* A WELCOME went to this peer: its messages are no longer limited. */
static void rate_welcomed(ps_server *s, const void *identity, size_t n, uint32_t worker_id)
{
    struct peer_rate *p = rate_find(s, identity, n, ps_clock_ms());
    if (p != NULL) {
        p->welcomed = true;
        p->worker_id = worker_id;
    }
}

/* True when the message just received is over its peer's rate: it was
 * answered (ERROR PS_EFULL) and must not be handled. */
static bool rate_refuse(ps_server *s)
{
    uint64_t now = ps_clock_ms();
    struct peer_rate *p = rate_find(s, s->frames.identity, s->frames.identity_len, now);
    if (p != NULL && p->welcomed)
        return false;
    uint64_t rate = s->rate;
    if (p != NULL) {
        uint64_t full = rate * 1000, add = (now - p->last_ms) * rate;
        p->tokens_milli = add >= full - p->tokens_milli ? full : p->tokens_milli + add;
        p->last_ms = now;
        if (p->tokens_milli >= 1000) {
            p->tokens_milli -= 1000;
            return false;
        }
    }
    s->rate_refused++;
    s->counters.refused_rate++;
    if (!s->rate_warned)
        PS_LOG_W(s->log,
                 "shard %u: a peer that has not registered sent more than %llu messages a "
                 "second (limits.unregistered_rate): the excess is refused (said once)",
                 s->shard, (unsigned long long)rate);
    s->rate_warned = true;
    char why[PS_MSG_ERROR_MAX];
    snprintf(why, sizeof why, "more than %llu messages a second before registering",
             (unsigned long long)rate);
    admin_reply(s, s->frames.identity, s->frames.identity_len, s->msg.seq, PS_EFULL, why);
    return true;
}

/* True when fd is a connection accepted on this server's endpoint (its
 * local address is the bound one), so a stale fd number is never shut. */
static bool fd_is_ours(ps_server *s, int fd)
{
    struct sockaddr_storage a, b;
    socklen_t la = sizeof a, lb = sizeof b;
    if (getsockname(fd, (struct sockaddr *)&a, &la) != 0 ||
        getpeername(fd, (struct sockaddr *)&b, &lb) != 0)
        return false;
    if (a.ss_family == AF_UNIX)
        return strncmp(s->endpoint, "ipc://", 6) == 0 &&
               strcmp(((struct sockaddr_un *)&a)->sun_path, s->endpoint + 6) == 0;
    uint16_t port = a.ss_family == AF_INET    ? ((struct sockaddr_in *)&a)->sin_port
                    : a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
                                              : 0;
    return port != 0 && ntohs(port) == s->bound_port;
}

/* Reads the socket monitor: counts connections and shuts the ones over
 * the cap. */
static void limits_tick(ps_server *s)
{
    for (;;) {
        zmq_msg_t ev;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, s->monitor, ZMQ_DONTWAIT) < 0) {
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
            if (zmq_msg_recv(&ev, s->monitor, 0) < 0)
                break;
        }
        zmq_msg_close(&ev);
        if (s->zap != NULL)
            ps_zap_handshake_event(s->zap, event, value, s->endpoint);
        if (event == ZMQ_EVENT_DISCONNECTED && s->peers > 0)
            s->peers--;
        if (event != ZMQ_EVENT_ACCEPTED || ++s->peers <= s->peers_max)
            continue;
        if (!fd_is_ours(s, (int)value) || shutdown((int)value, SHUT_RDWR) != 0)
            continue;
        s->peers_refused++;
        s->counters.refused_peers++;
        if (!s->peers_warned)
            PS_LOG_W(s->log,
                     "shard %u: %u peers are connected (limits.max_peers %u): further "
                     "connections are closed (said once)",
                     s->shard, s->peers - 1, s->peers_max);
        s->peers_warned = true;
    }
}

/* The monitor and the rate table, once the ROUTER is bound. */
static int limits_init(ps_server *s, ps_error *err)
{
    s->peers_max = s->job.limits.max_peers;
    if (s->peers_max == 0)
        s->peers_max = 4 * s->job.workers + PEERS_AUTO_BASE;
    s->rate = s->job.limits.unregistered_rate ? s->job.limits.unregistered_rate : RATE_DEFAULT;
    for (s->nrates = 16; s->nrates < (size_t)s->peers_max * RATE_TABLE_FACTOR;)
        s->nrates *= 2;
    s->rates = calloc(s->nrates, sizeof *s->rates);
    if (s->rates == NULL)
        return ps_error_set(err, PS_ENOMEM, "cannot allocate the table of %zu peers", s->nrates);
    char last[PS_ENDPOINT_MAX + 32];
    size_t len = sizeof last;
    if (zmq_getsockopt(s->sock, ZMQ_LAST_ENDPOINT, last, &len) == 0 &&
        strncmp(last, "tcp://", 6) == 0 && strrchr(last, ':') != NULL)
        s->bound_port = (uint16_t)atoi(strrchr(last, ':') + 1);
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://psd-monitor-%u", s->shard);
    s->monitor = zmq_socket(s->zctx, ZMQ_PAIR);
    if (s->monitor == NULL ||
        zmq_socket_monitor(s->sock, ep,
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                               (s->zap != NULL ? PS_ZAP_MONITOR_EVENTS : 0)) != 0 ||
        zmq_connect(s->monitor, ep) != 0)
        return ps_error_set(err, PS_EZMQ, "cannot monitor %s: %s", s->endpoint,
                            zmq_strerror(errno));
    return 0;
}

/* What the limits refused, said when psd stops (nothing when nothing). */
static void limits_report(const ps_server *s)
{
    if (s->peers_refused + s->rate_refused > 0)
        PS_LOG_I(s->log,
                 "shard %u/%u: refused %llu connections over limits.max_peers and %llu "
                 "messages over limits.unregistered_rate",
                 s->shard, s->nshards, (unsigned long long)s->peers_refused,
                 (unsigned long long)s->rate_refused);
}

/* Handles what has arrived, up to BATCH_MAX messages. Returns 0 or PS_EZMQ
 * when the socket failed. */
static int server_drain(ps_server *s, volatile sig_atomic_t *stop, ps_error *err)
{
    for (int i = 0; i < BATCH_MAX && (stop == NULL || !*stop); i++) {
        ps_error_clear(&s->err);
        int rc = ps_wire_recv(s->sock, true, ZMQ_DONTWAIT, &s->frames, &s->msg, &s->err);
        if (rc == PS_EZMQ) {
            int e = errno;
            ps_frames_close(&s->frames);
            if (e == EAGAIN || e == EINTR)
                return 0;
            return ps_error_set(err, PS_EZMQ, "receive on %s: %s", s->endpoint, zmq_strerror(e));
        }
        rx_count(s);
        if (rate_refuse(s)) {
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
        if (rc == 0)
            rc = shm_request(s, &s->msg, &s->err);
        if (rc == 0 && s->msg.type == PS_MSG_CHECKPOINT && s->msg.protocol == PS_PROTOCOL_VERSION &&
            strcmp(s->msg.job, s->job.name) == 0)
            checkpoint_asked(s);
        else
            ps_engine_handle(s->engine, s->frames.identity, s->frames.identity_len, rc, &s->msg,
                             &s->err, server_send, s);
        ps_metrics_observe(&s->counters, s->engine);
        ps_frames_close(&s->frames);
    }
    return 0;
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

int ps_server_run(ps_server *s, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload,
                  ps_error *err)
{
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
        ps_checkpointer_tick(s->ckpt, now);
        checkpoint_answer(s);
        shm_sweep(s, now);
        limits_tick(s);
        notify_tick(s);
        /* the ROUTER, then ZAP's socket, then /metrics' descriptor */
        zmq_pollitem_t items[2 + PS_ZAP_ITEMS] = {{.socket = s->sock, .events = ZMQ_POLLIN}};
        int nitems = 1;
        if (s->zap != NULL) {
            ps_zap_items(s->zap, &items[1]);
            nitems += PS_ZAP_ITEMS;
        }
        int scrape_item = -1;
        if (ps_metrics_fd(s->metrics) >= 0) {
            scrape_item = nitems;
            items[nitems++] =
                (zmq_pollitem_t){.fd = ps_metrics_fd(s->metrics), .events = ZMQ_POLLIN};
        }
        int n = zmq_poll(items, nitems, ps_metrics_timeout_ms(s->metrics, POLL_MS));
        if (n > 0 && s->zap != NULL)
            ps_zap_handle(s->zap);
        n = n > 0 ? (int)(items[0].revents & ZMQ_POLLIN) : n;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = ps_error_set(err, PS_EZMQ, "poll on %s: %s", s->endpoint, zmq_strerror(errno));
            break;
        }
        if (n > 0 && (rc = server_drain(s, stop, err)) != 0)
            break;
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
            ((scrape_item >= 0 && (items[scrape_item].revents & ZMQ_POLLIN)) ||
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
        if (code == PS_ESTOPPED)
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
    char ranks[4096];
    ps_engine_ranks_format(s->engine, ranks, sizeof ranks);
    PS_LOG_I(s->log, "shard %u/%u stopped with ranks: %s", s->shard, s->nshards, ranks);
    limits_report(s);
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
    if (s->monitor != NULL)
        zmq_close(s->monitor);
    free(s->rates);
    if (s->sock != NULL)
        zmq_close(s->sock);
    if (s->zctx != NULL)
        zmq_ctx_term(s->zctx); /* returns once every message is released */
    ps_checkpointer_destroy(&s->ckpt);
    for (uint32_t r = 0; s->shm != NULL && r < s->job.workers; r++)
        shm_end(&s->shm[r]);
    free(s->shm);
    ps_engine_destroy(&s->engine);
    ps_notify_fini(&s->notify);
    free(s);
    *sp = NULL;
}

void ps_server_exit_when_done(ps_server *s, bool on)
{
    s->exit_when_done = on;
}
