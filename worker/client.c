/* client.c — libpsworker, the client side of the wire protocol (DESIGN §3, §4, §7).
 * One DEALER per shard. Every exchange sends its request to all shards before
 * it awaits any reply; replies are matched by seq, so a late reply to an
 * older request is dropped (except a final ERROR: the server stopped); a
 * request still unanswered is sent again with the same seq, until the shard
 * has been silent for the timeout. A big push payload goes out straight from
 * the caller's gradient (no copy); the push returns only once ZeroMQ has let
 * go of it. A heartbeat thread, with a ZeroMQ context of its own, keeps the
 * worker alive and tells the caller's thread what its replies said. */
#include "psworker.h"

#include "codec.h"
#include "compress.h"
#include "curve.h"
#include "mode.h"
#include "shm.h"
#include "util.h"
#include "wire.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define CLIENT_DEFAULT_TIMEOUT_MS 30000
#define CLIENT_RETRY_FIRST_MS     250                /* the first resend; each wait doubles ... */
#define CLIENT_RETRY_MAX_MS       4000               /* ... up to this */
#define CLIENT_BYE_TIMEOUT_MS     1000               /* close waits at most this for the ACKs */
#define CLIENT_MAX_MSG_BYTES      ((int64_t)1 << 32) /* a larger frame drops the connection */
#define CLIENT_ZEROCOPY_BYTES     ((size_t)64 << 10) /* push payloads this big are not copied */
#define CLIENT_SETTLE_MS          200 /* then a payload ZeroMQ still holds is taken back */
#define CLIENT_WHY_MAX            (PS_ENDPOINT_MAX + PS_ERROR_MSG_MAX + 8) /* "endpoint: why" */
#define CLIENT_CHECK_MS           100 /* a wait looks at what the heartbeat thread saw this often */
#define CLIENT_SILENT_BEATS       2   /* a server silent this many heartbeats is said to be ... */
#define CLIENT_SILENT_MIN_MS      500 /* ... and at least this long (a loaded machine is slow) */

_Static_assert(PS_PUSH_DUPLICATE == PS_ACK_DUPLICATE, "push flags follow the ACK flags");
_Static_assert(PS_CLIENT_VERSION_FINAL == PS_VERSION_FINAL, "the final version is the wire's");
_Static_assert(PS_PUSH_DROPPED == PS_ACK_DROPPED, "push flags follow the ACK flags");

typedef struct shard {
    void *sock; /* DEALER, connected to endpoint */
    char endpoint[PS_ENDPOINT_MAX];
    uint32_t worker_id;            /* this shard's name for us, from its WELCOME */
    _Atomic uint32_t hb_worker_id; /* the same, for the heartbeat thread (0: none) */
    bool registered;               /* a WELCOME came: say BYE on close */
    uint64_t seq;                  /* seq of the latest request; a retry sends it again */
    uint64_t pull_seq;             /* seq of the pull riding behind it (op.then_pull) */
    uint64_t key_lo, key_hi;
    bool asked;        /* takes part in the current exchange */
    bool pending;      /* its reply to the current exchange has not come */
    bool pull_pending; /* the reply to the riding pull has not come */
    int status;        /* outcome of the current exchange for this shard */
    /* shared memory with a shard on this host (common/shm.h), used while
     * shm_on; grad_seq: the push whose gradient is in it. A segment stays
     * mapped while a view may point into it: the one it replaced (the shard
     * restarted) is kept as shm_old until the next replacement. */
    ps_shm shm, shm_old;
    bool shm_on;
    uint64_t shm_grad_seq;
    /* liveness, written by both threads: when anything last came from the
     * shard; the registration (counted by the main thread at each WELCOME:
     * a restarted server may give the same worker id again) and the one a
     * heartbeat's reply said is not registered (0: none), for the main
     * thread to register again */
    _Atomic uint64_t last_answer_ms;
    _Atomic uint32_t reg_gen;
    _Atomic uint32_t hb_lost_gen;
    /* the main thread's note of a silence it logged, and since when */
    bool silent_logged;
    uint64_t silent_from_ms;
    /* the current push, compressed (push_encode): enc_bytes at the client's
     * enc + enc_off; enc_ready while it is this push's */
    size_t enc_off, enc_bytes, enc_k;
    bool enc_ready;
    /* the version of the slice of θ last pulled from this shard: a push's
     * model_version (its gradient was computed from that θ) */
    uint64_t theta_version;
    /* exactly once (DESIGN §7): the seq of the last push sent (a push sent
     * again after a registration keeps it, so psd knows it), the newest
     * push the shard said it holds (an ACK, or an ACK DUPLICATE), and the
     * tally: pushes it holds by its word, and those a restart from a
     * checkpoint rolled back. base: the rank's pushes psd had applied when
     * this client first registered (a worker that replaced another). */
    uint64_t push_seq, counted_seq;
    uint64_t acked, rolled_back, applied_base;
    bool based;
    uint64_t applied; /* the rank's applied pushes, as the last WELCOME said */
} shard;

/* One exchange: the request sent to every shard marked asked, and what its
 * replies deliver. A PUSH may carry a PULL behind it (then_pull): each shard
 * gets both at once, so θ comes back without a round trip of its own. */
typedef struct op {
    ps_msg_type type;  /* the request */
    ps_msg_type reply; /* the reply it expects */
    int rank;          /* HELLO: the rank asked for, -1 for any */
    uint64_t min_version;
    float *theta;          /* PULL: destination of the whole θ */
    bool view;             /* one shard: keep θ's frame rather than copy it to theta */
    const float *view_out; /* out, with view: θ in the kept frame */
    uint64_t clock;        /* PUSH: the worker's step */
    uint64_t pull_clock;   /* PULL, riding or not: the worker's clock (ssp parks on it) */
    uint32_t samples;
    const float *grad;            /* PUSH: the whole gradient */
    uint64_t version;             /* out: smallest model_version of the replies */
    uint32_t flags;               /* out: the ACK flags, or'ed */
    int rc;                       /* the first error of the exchange */
    bool then_pull;               /* PUSH: a PULL of min_version into theta rides behind it */
    void (*meanwhile)(void *arg); /* called once the requests are sent; then NULL */
    void *meanwhile_arg;
    uint64_t pull_version; /* out: smallest model_version of the riding pull's replies */
    int pull_rc;           /* the first error of the riding pull */
    const char *why;       /* BYE with PS_FLAG_ABORT: the reason, in the request's error */
    bool push_sent;        /* PUSH: sent (with its seq in each shard's push_seq) */
    bool same_seq;         /* PUSH sent again after a registration: with its first seq */
    /* STATUS: what the shards answered (shard 0's worker table, when rows) */
    ps_worker_status *rows;
    size_t rows_cap, nrows;
    uint64_t stale_max, stale_p99;
    double stale_mean_sum;
    uint32_t statuses;
} op;

struct ps_client {
    void *ctx;
    shard *shards;
    size_t nshards;
    zmq_pollitem_t *items; /* nshards of each, for zmq_poll */
    size_t *item_shard;
    int timeout_ms;
    char job[PS_JOB_NAME_MAX];
    /* the job as shard 0's WELCOME described it; every other WELCOME must agree */
    bool described;
    int rank;
    uint32_t num_workers;
    uint64_t num_params;
    char mode[16];
    const ps_mode_desc *mode_desc; /* mode's row (mode.h) */
    uint32_t nmap;
    ps_shard_info map[PS_MAX_SHARDS];
    uint32_t ntensors;
    ps_tensor_info tensors[PS_MAX_TENSORS];
    uint32_t push_flags;
    bool done;                  /* ps_client_done was called: say so again after a rejoin */
    uint64_t rejoin_version;    /* the version a shard gave when we registered again */
    char host[PS_HOST_MAX];     /* asks shards on this host for shared memory; "" if not */
    char hostname[PS_HOST_MAX]; /* for people: psctl status, /metrics */
    /* the training's figures the heartbeats carry (doubles' bits: set by
     * the caller's thread, read by the heartbeat thread) */
    _Atomic uint64_t report_loss, report_rate;
    uint64_t incarnation; /* this client, random, in every HELLO: psd keeps our seqs */
    /* why a shard's shared memory could not be used, or "" */
    char shm_why[CLIENT_WHY_MAX];
    /* the heartbeat thread: its own ZeroMQ context (so its own I/O thread,
     * never queued behind a big push) and sockets; it waits in zmq_poll on
     * them and on hb_stop_fd, which heartbeat_stop writes to end it at once */
    int heartbeat_ms;
    /* CURVE: this worker's pair and the servers' key (curve false: off) */
    bool curve;
    ps_curve_pair curve_me, curve_server;
    void *hb_ctx;
    pthread_t hb_thread;
    bool hb_started;
    int hb_stop_fd; /* an eventfd, -1 when none */
    /* a final ERROR (PS_ESTOPPED, PS_EABORTED, PS_ECOMPLETE) from either
     * thread: set once under final_mu, then every call fails with it */
    pthread_mutex_t final_mu;
    atomic_int final_rc;
    char final_why[CLIENT_WHY_MAX];
    void (*log_fn)(void *arg, int warning, const char *line);
    void *log_arg;
    uint64_t bad_replies;   /* replies that failed to decode, dropped */
    uint64_t stale_replies; /* replies to an older request, dropped */
    /* push payload messages made from the caller's gradient that ZeroMQ
     * still holds; its I/O thread counts them down */
    atomic_uint push_refs;
    /* θ as ps_push_pull's view gives it: the frame of the last pull reply
     * kept (one shard), or theta_buf (more shards; allocated when first
     * needed) */
    zmq_msg_t view_msg;
    bool view_held;
    float *theta_buf;
    /* push compression (NULL push_ops: float32): every shard's encoded
     * slice in enc, what error feedback carries over in residual (one float
     * per parameter), and n floats of scratch; allocated at open */
    const ps_compress_ops *push_ops;
    double topk_ratio;
    bool error_feedback;
    unsigned char *enc;
    float *residual;
    float *scratch;
    /* scratch, allocated with the client so a request allocates nothing */
    ps_msg req;
    ps_msg rep;
    ps_frames frames;
    ps_error err;
    char last_error[PS_ERROR_MSG_MAX];
};

static int client_fail(ps_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets last_error and returns code. */
static int client_fail(ps_client *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->last_error, sizeof c->last_error, fmt, ap);
    va_end(ap);
    return code;
}

static bool code_is_final(int code)
{
    return code == PS_ESTOPPED || code == PS_EABORTED || code == PS_ECOMPLETE;
}

/* Records the first final ERROR a shard sent (either thread may call). */
static void final_set(ps_client *c, int code, const char *endpoint, const char *text)
{
    pthread_mutex_lock(&c->final_mu);
    if (atomic_load_explicit(&c->final_rc, memory_order_relaxed) == 0) {
        snprintf(c->final_why, sizeof c->final_why, "%s: %s", endpoint,
                 text[0] ? text : ps_strerror(code));
        atomic_store_explicit(&c->final_rc, code, memory_order_release);
    }
    pthread_mutex_unlock(&c->final_mu);
}

/* The final code with its sentence in last_error, or 0 while the job runs. */
static int final_check(ps_client *c)
{
    int code = atomic_load_explicit(&c->final_rc, memory_order_acquire);
    if (code == 0)
        return 0;
    return client_fail(c, code, "%s", c->final_why);
}

static void client_log(ps_client *c, int warning, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void client_log(ps_client *c, int warning, const char *fmt, ...)
{
    if (c->log_fn == NULL)
        return;
    char line[CLIENT_WHY_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->log_fn(c->log_arg, warning, line);
}

static void op_fail(ps_client *c, op *o, size_t i, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Ends shard i's part of the exchange with an error (a pull riding behind
 * the request is given up with it); the first error of an exchange is the
 * one last_error tells and op_run returns. */
static void op_fail(ps_client *c, op *o, size_t i, int code, const char *fmt, ...)
{
    shard *s = &c->shards[i];
    s->pending = false;
    s->status = code;
    if (s->pull_pending) {
        s->pull_pending = false;
        if (o->pull_rc == 0)
            o->pull_rc = code;
    }
    if (o->rc != 0)
        return;
    o->rc = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->last_error, sizeof c->last_error, fmt, ap);
    va_end(ap);
}

static void pull_fail(ps_client *c, op *o, size_t i, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Ends the pull riding behind shard i's request with an error; last_error
 * tells it unless the exchange failed already. */
static void pull_fail(ps_client *c, op *o, size_t i, int code, const char *fmt, ...)
{
    c->shards[i].pull_pending = false;
    if (o->pull_rc != 0)
        return;
    o->pull_rc = code;
    if (o->rc != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->last_error, sizeof c->last_error, fmt, ap);
    va_end(ap);
}

/* ---- requests ---------------------------------------------------------- */

/* ZeroMQ's free function for a push payload sent from the caller's
 * gradient; runs on the client's I/O thread. */
static void push_release(void *data, void *hint)
{
    (void)data;
    ps_client *c = hint;
    atomic_fetch_sub_explicit(&c->push_refs, 1, memory_order_release);
}

/* Sends m with its payload; a big one is handed to ZeroMQ by reference
 * (counted in push_refs until released), a small one copied. */
static int request_send(ps_client *c, shard *s, const ps_msg *m, const void *payload)
{
    if (payload == NULL || m->payload_bytes < CLIENT_ZEROCOPY_BYTES)
        return ps_wire_send(s->sock, NULL, 0, m, payload, ZMQ_DONTWAIT);
    zmq_msg_t msg;
    atomic_fetch_add_explicit(&c->push_refs, 1, memory_order_relaxed);
    if (zmq_msg_init_data(&msg, (void *)payload, (size_t)m->payload_bytes, push_release, c) != 0) {
        atomic_fetch_sub_explicit(&c->push_refs, 1, memory_order_relaxed);
        return ps_wire_send(s->sock, NULL, 0, m, payload, ZMQ_DONTWAIT);
    }
    return ps_wire_send_msg(s->sock, NULL, 0, m, &msg, ZMQ_DONTWAIT);
}

/* Puts push seq's gradient slice (bytes long) into shard s's shared memory
 * and marks it as seq's; a resend of the same push finds it there. */
static void shm_grad_put(shard *s, const float *grad, size_t bytes, uint64_t seq)
{
    if (s->shm_grad_seq == seq && seq != 0)
        return;
    if (grad != s->shm.grad)
        memcpy(s->shm.grad, grad, bytes);
    s->shm_grad_seq = seq;
    ps_shm_grad_mark(&s->shm, seq);
}

/* The figures ps_client_report last set (NaN before). */
static void report_get(ps_client *c, double *loss, double *rate)
{
    uint64_t l = atomic_load(&c->report_loss), r = atomic_load(&c->report_rate);
    memcpy(loss, &l, sizeof *loss);
    memcpy(rate, &r, sizeof *rate);
}

/* Sends shard i a request of o, of the given type with the given seq. A full
 * send queue is not an error: the request stays pending and the next
 * attempt sends it again. */
static int request_make_send(ps_client *c, op *o, size_t i, ps_msg_type type, uint64_t seq)
{
    shard *s = &c->shards[i];
    ps_msg *m = &c->req;
    const void *payload = NULL;
    ps_msg_init(m, type);
    memcpy(m->job, c->job, sizeof m->job);
    m->worker_id = s->worker_id;
    m->seq = seq;
    switch (type) {
    case PS_MSG_HELLO:
        m->rank = o->rank;
        memcpy(m->host, c->host, sizeof m->host);
        memcpy(m->hostname, c->hostname, sizeof m->hostname);
        m->incarnation = c->incarnation;
        break;
    case PS_MSG_HEARTBEAT:
        m->flags = o->flags;
        report_get(c, &m->loss, &m->samples_per_s);
        break;
    case PS_MSG_BYE:
        m->flags = o->flags;
        if (o->why != NULL)
            ps_strlcpy(m->error, o->why, sizeof m->error);
        break;
    case PS_MSG_PULL:
        m->key_lo = s->key_lo;
        m->key_hi = s->key_hi;
        m->min_version = o->min_version;
        m->clock = o->pull_clock;
        if (s->shm_on)
            m->flags = PS_FLAG_SHM;
        break;
    case PS_MSG_PUSH:
        m->key_lo = s->key_lo;
        m->key_hi = s->key_hi;
        m->clock = o->clock;
        m->model_version = s->theta_version;
        m->samples = o->samples;
        if (s->key_hi > s->key_lo && s->shm_on) {
            m->encoding = PS_ENC_SHM_F32;
            m->payload_bytes = (s->key_hi - s->key_lo) * sizeof(float);
            shm_grad_put(s, o->grad + s->key_lo, (size_t)m->payload_bytes, seq);
        } else if (s->key_hi > s->key_lo && s->enc_ready) {
            m->encoding = c->push_ops->encoding;
            m->payload_bytes = s->enc_bytes;
            payload = c->enc + s->enc_off;
        } else if (s->key_hi > s->key_lo) {
            m->encoding = PS_ENC_F32;
            m->payload_bytes = (s->key_hi - s->key_lo) * sizeof(float);
            payload = o->grad + s->key_lo;
        }
        break;
    default:
        break;
    }
    errno = 0;
    int rc = PS_EZMQ;
    if (s->sock != NULL)
        rc = request_send(c, s, m, payload);
    else
        errno = ENOTSOCK; /* lost when push_settle could not make it again */
    if (rc == 0 || (rc == PS_EZMQ && errno == EAGAIN))
        return 0;
    if (rc == PS_EZMQ)
        op_fail(c, o, i, rc, "%s: sending %s: %s", s->endpoint, ps_msg_type_name(type),
                zmq_strerror(errno));
    else
        op_fail(c, o, i, rc, "%s: %s request breaks a protocol limit", s->endpoint,
                ps_msg_type_name(type));
    return rc;
}

/* Sends shard i what of o it has not answered yet: the request, and the
 * pull riding behind it, in that order. */
static int op_send(ps_client *c, op *o, size_t i)
{
    shard *s = &c->shards[i];
    int rc = 0;
    if (s->pending)
        rc = request_make_send(c, o, i, o->type, s->seq);
    if (rc == 0 && s->pull_pending)
        rc = request_make_send(c, o, i, PS_MSG_PULL, s->pull_seq);
    return rc;
}

/* ---- replies ----------------------------------------------------------- */

/* Checks that the job a WELCOME describes is whole: a shard map with one
 * range per endpoint tiling [0, P) in order, tensors tiling [0, P), and a
 * rank among the workers. */
static int welcome_check_layout(ps_client *c, op *o, size_t i, const ps_msg *m)
{
    const char *ep = c->shards[i].endpoint;
    uint64_t p = m->num_params;
    if (p == 0 || p > SIZE_MAX / sizeof(float)) {
        op_fail(c, o, i, PS_EPROTO, "%s: WELCOME says the job has %llu parameters", ep,
                (unsigned long long)p);
        return PS_EPROTO;
    }
    if (m->nshards != c->nshards) {
        op_fail(c, o, i, PS_EPROTO,
                "%s: WELCOME lists %u shards, but the client was given %zu endpoints", ep,
                m->nshards, c->nshards);
        return PS_EPROTO;
    }
    uint64_t next = 0;
    for (uint32_t k = 0; k < m->nshards; k++) {
        const ps_shard_info *sh = &m->shards[k];
        if (sh->key_lo != next || sh->key_hi < sh->key_lo || sh->key_hi > p ||
            (k + 1 == m->nshards && sh->key_hi != p)) {
            op_fail(c, o, i, PS_EPROTO,
                    "%s: WELCOME's shard map does not tile [0, %llu): shard %u covers "
                    "[%llu, %llu)",
                    ep, (unsigned long long)p, k, (unsigned long long)sh->key_lo,
                    (unsigned long long)sh->key_hi);
            return PS_EPROTO;
        }
        next = sh->key_hi;
    }
    if (ps_mode_find(m->mode) == NULL) {
        op_fail(c, o, i, PS_EPROTO,
                "%s: WELCOME names mode \"%s\", which this client does not know", ep, m->mode);
        return PS_EPROTO;
    }
    if (m->num_workers == 0 || m->rank < 0 || (uint32_t)m->rank >= m->num_workers) {
        op_fail(c, o, i, PS_EPROTO, "%s: WELCOME gives rank %d of %u workers", ep, (int)m->rank,
                m->num_workers);
        return PS_EPROTO;
    }
    if (m->ntensors == 0)
        return 0; /* no layout given: θ is one flat vector */
    next = 0;
    for (uint32_t k = 0; k < m->ntensors; k++) {
        const ps_tensor_info *t = &m->tensors[k];
        uint64_t n = 1;
        bool ok = t->offset == next;
        for (uint32_t d = 0; d < t->ndims && ok; d++)
            ok = !__builtin_mul_overflow(n, t->shape[d], &n);
        if (!ok || __builtin_add_overflow(next, n, &next) || next > p) {
            op_fail(c, o, i, PS_EPROTO,
                    "%s: WELCOME's tensor %u \"%s\" at offset %llu does not follow the tensors "
                    "before it inside [0, %llu)",
                    ep, k, t->name, (unsigned long long)t->offset, (unsigned long long)p);
            return PS_EPROTO;
        }
    }
    if (next != p) {
        op_fail(c, o, i, PS_EPROTO, "%s: WELCOME's tensors cover %llu keys, the job has %llu", ep,
                (unsigned long long)next, (unsigned long long)p);
        return PS_EPROTO;
    }
    return 0;
}

/* Takes the job's description from a WELCOME (shard 0's, in open). */
static void welcome_adopt(ps_client *c, const ps_msg *m)
{
    c->described = true;
    c->rank = m->rank;
    c->num_workers = m->num_workers;
    c->num_params = m->num_params;
    memcpy(c->mode, m->mode, sizeof c->mode);
    c->mode_desc = ps_mode_find(c->mode);
    c->nmap = m->nshards;
    memcpy(c->map, m->shards, sizeof c->map);
    c->ntensors = m->ntensors;
    memcpy(c->tensors, m->tensors, sizeof c->tensors);
}

static bool tensor_equal(const ps_tensor_info *a, const ps_tensor_info *b)
{
    if (strcmp(a->name, b->name) != 0 || a->ndims != b->ndims || a->offset != b->offset)
        return false;
    for (uint32_t d = 0; d < a->ndims; d++)
        if (a->shape[d] != b->shape[d])
            return false;
    return true;
}

/* Names the first thing a WELCOME disagrees on with the adopted description
 * into what; false when it agrees. */
static bool welcome_differs(const ps_client *c, const ps_msg *m, char *what, size_t cap)
{
    if (m->num_params != c->num_params) {
        snprintf(what, cap, "num_params %llu (shard 0 said %llu)",
                 (unsigned long long)m->num_params, (unsigned long long)c->num_params);
    } else if (m->num_workers != c->num_workers) {
        snprintf(what, cap, "num_workers %u (shard 0 said %u)", m->num_workers, c->num_workers);
    } else if (m->rank != c->rank) {
        snprintf(what, cap, "rank %d (shard 0 said %d)", (int)m->rank, c->rank);
    } else if (strcmp(m->mode, c->mode) != 0) {
        snprintf(what, cap, "mode \"%s\" (shard 0 said \"%s\")", m->mode, c->mode);
    } else if (m->ntensors != c->ntensors) {
        snprintf(what, cap, "%u tensors (shard 0 said %u)", m->ntensors, c->ntensors);
    } else {
        for (uint32_t k = 0; k < m->nshards; k++) {
            const ps_shard_info *a = &m->shards[k], *b = &c->map[k];
            if (a->key_lo != b->key_lo || a->key_hi != b->key_hi ||
                strcmp(a->endpoint, b->endpoint) != 0) {
                snprintf(what, cap, "shard %u: %s [%llu, %llu) (shard 0 said %s [%llu, %llu))", k,
                         a->endpoint, (unsigned long long)a->key_lo, (unsigned long long)a->key_hi,
                         b->endpoint, (unsigned long long)b->key_lo, (unsigned long long)b->key_hi);
                return true;
            }
        }
        for (uint32_t k = 0; k < m->ntensors; k++) {
            if (!tensor_equal(&m->tensors[k], &c->tensors[k])) {
                snprintf(what, cap, "tensor %u \"%s\" (shard 0 said \"%s\")", k, m->tensors[k].name,
                         c->tensors[k].name);
                return true;
            }
        }
        return false;
    }
    return true;
}

/* Opens the shared memory a WELCOME offers (a new one replaces the old: the
 * shard restarted); when it cannot be used the shard goes on over the
 * socket, and shm_why says why. */
static void shm_attach(ps_client *c, shard *s, const ps_msg *m)
{
    if (m->shm_bytes == 0 || c->host[0] == '\0' || s->key_hi == s->key_lo)
        return;
    if (ps_shm_mapped(&s->shm) && s->shm.token == m->shm_token)
        return; /* a retried HELLO's WELCOME */
    ps_shm_detach(&s->shm_old);
    s->shm_old = s->shm;
    s->shm_on = false;
    s->shm_grad_seq = 0;
    ps_error err;
    if (ps_shm_attach(&s->shm, m->shm_pid, m->shm_fd, m->shm_bytes, m->shm_token,
                      (size_t)(s->key_hi - s->key_lo), &err) != 0) {
        snprintf(c->shm_why, sizeof c->shm_why, "%s: %s", s->endpoint, err.msg);
        return;
    }
    s->shm_on = true;
}

/* After a push that shard s did not answer: its shared memory is used no
 * more, since the server may still read the gradient there for it. */
static void shm_give_up(ps_client *c, shard *s)
{
    if (!s->shm_on)
        return;
    s->shm_on = false;
    snprintf(c->shm_why, sizeof c->shm_why,
             "%s: a push went unanswered: θ and gradients go over the socket from now on",
             s->endpoint);
}

/* After a push exchange: shards that did not answer it give up shared
 * memory (shm_give_up). */
static void shm_after_push(ps_client *c)
{
    for (size_t i = 0; i < c->nshards; i++)
        if (c->shards[i].pending)
            shm_give_up(c, &c->shards[i]);
}

/* What a WELCOME says of the rank's pushes. The first one sets the base
 * (another worker may have held the rank). A later one (psd evicted us, or
 * restarted from a checkpoint) may hold fewer pushes than it acknowledged:
 * those were rolled back, and are said so once. The push in flight, when
 * the shard has it (applied_seq), counts as held. */
static void welcome_tally(ps_client *c, shard *s, const ps_msg *m)
{
    s->applied = m->applied;
    if (!s->based) {
        s->based = true;
        s->applied_base = m->applied;
        return;
    }
    if (s->push_seq > s->counted_seq && m->applied_seq != 0 && m->applied_seq >= s->push_seq) {
        s->acked++;
        s->counted_seq = s->push_seq;
    }
    uint64_t held = s->applied_base + s->acked - s->rolled_back;
    if (held > m->applied) {
        uint64_t lost = held - m->applied;
        s->rolled_back += lost;
        if (c->log_fn != NULL) {
            char line[PS_ERROR_MSG_MAX];
            snprintf(line, sizeof line,
                     "%s went back to a checkpoint without %llu of this worker's acknowledged "
                     "pushes: their batches are trained again",
                     s->endpoint, (unsigned long long)lost);
            c->log_fn(c->log_arg, 1, line);
        }
    } else if (held < m->applied) { /* pushes of another process for the rank */
        s->applied_base += m->applied - held;
    }
}

static void welcome_accept(ps_client *c, op *o, size_t i, const ps_msg *m)
{
    shard *s = &c->shards[i];
    s->worker_id = m->worker_id;
    atomic_store(&s->hb_worker_id, m->worker_id);
    atomic_fetch_add(&s->reg_gen, 1); /* after the id: heartbeats of this one carry it */
    s->registered = true;
    if (m->shard_index != i) {
        op_fail(c, o, i, PS_EPROTO, "%s: WELCOME is from shard %u, expected shard %zu", s->endpoint,
                m->shard_index, i);
        return;
    }
    if (o->rank >= 0 && m->rank != o->rank) {
        op_fail(c, o, i, PS_EPROTO, "%s: WELCOME gives rank %d, rank %d was asked for", s->endpoint,
                (int)m->rank, o->rank);
        return;
    }
    if (welcome_check_layout(c, o, i, m) != 0)
        return;
    if (!c->described)
        welcome_adopt(c, m);
    char what[PS_ERROR_MSG_MAX / 2];
    if (welcome_differs(c, m, what, sizeof what)) {
        op_fail(c, o, i, PS_EPROTO, "%s: WELCOME disagrees with shard 0 on %s", s->endpoint, what);
        return;
    }
    s->key_lo = c->map[i].key_lo;
    s->key_hi = c->map[i].key_hi;
    welcome_tally(c, s, m);
    shm_attach(c, s, m);
    if (m->model_version < o->version)
        o->version = m->model_version;
    s->pending = false;
}

/* The client's buffer for a whole θ, allocated when first needed; NULL
 * when memory is short. */
static float *theta_buf(ps_client *c)
{
    if (c->theta_buf == NULL)
        c->theta_buf = malloc((size_t)c->num_params * sizeof(float));
    return c->theta_buf;
}

/* A PULL_REPLY from shard i whose θ is in shared memory: used there (one
 * shard, a view) or copied into o->theta. */
static int pull_accept_shm(ps_client *c, op *o, size_t i, const ps_msg *m, uint64_t *version,
                           char *why, size_t cap)
{
    shard *s = &c->shards[i];
    size_t bytes = (size_t)(s->key_hi - s->key_lo) * sizeof(float);
    if (!s->shm_on || m->payload_bytes != bytes) {
        snprintf(why, cap, "%s: PULL_REPLY says %llu bytes of θ are in shared memory, %s",
                 s->endpoint, (unsigned long long)m->payload_bytes,
                 s->shm_on ? "a different size" : "but none is in use");
        return PS_EPROTO;
    }
    if (o->view && c->nshards == 1) {
        if (c->view_held)
            zmq_msg_close(&c->view_msg);
        c->view_held = false;
        o->view_out = s->shm.theta;
    } else {
        if (o->theta == NULL && (o->theta = theta_buf(c)) == NULL) {
            snprintf(why, cap, "out of memory for θ");
            return PS_ENOMEM;
        }
        memcpy(o->theta + s->key_lo, s->shm.theta, bytes);
        o->view_out = NULL;
    }
    s->theta_version = m->model_version;
    if (m->model_version < *version)
        *version = m->model_version;
    return 0;
}

/* A PULL_REPLY from shard i with θ compressed (the codec checked it against
 * the reply's keys, which are the shard's): decoded into o->theta. */
static int pull_accept_compressed(ps_client *c, op *o, size_t i, const ps_msg *m, uint64_t *version,
                                  char *why, size_t cap)
{
    shard *s = &c->shards[i];
    if (o->theta == NULL && (o->theta = theta_buf(c)) == NULL) {
        snprintf(why, cap, "out of memory for θ");
        return PS_ENOMEM;
    }
    const ps_compress_ops *ops = ps_compress_ops_for_encoding(m->encoding);
    ops->decode(m->payload, (size_t)m->payload_bytes, o->theta + s->key_lo,
                (size_t)(s->key_hi - s->key_lo));
    o->view_out = NULL;
    s->theta_version = m->model_version;
    if (m->model_version < *version)
        *version = m->model_version;
    return 0;
}

/* A PULL_REPLY from shard i: its slice of θ into o->theta. Returns 0, or
 * PS_EPROTO with the sentence in why. */
static int pull_accept(ps_client *c, op *o, size_t i, const ps_msg *m, uint64_t *version, char *why,
                       size_t cap)
{
    shard *s = &c->shards[i];
    if (m->key_lo != s->key_lo || m->key_hi != s->key_hi) {
        snprintf(why, cap, "%s: PULL_REPLY covers [%llu, %llu), [%llu, %llu) was asked for",
                 s->endpoint, (unsigned long long)m->key_lo, (unsigned long long)m->key_hi,
                 (unsigned long long)s->key_lo, (unsigned long long)s->key_hi);
        return PS_EPROTO;
    }
    size_t bytes = (size_t)(s->key_hi - s->key_lo) * sizeof(float);
    bool empty_ok = bytes == 0 && m->encoding == PS_ENC_NONE;
    if (m->encoding == PS_ENC_SHM_F32)
        return pull_accept_shm(c, o, i, m, version, why, cap);
    if (m->encoding != PS_ENC_F32 && bytes > 0 && ps_compress_ops_for_encoding(m->encoding))
        return pull_accept_compressed(c, o, i, m, version, why, cap);
    if (!empty_ok && (m->encoding != PS_ENC_F32 || m->payload_bytes != bytes)) {
        snprintf(why, cap,
                 "%s: PULL_REPLY carries %llu bytes in encoding %d, %zu float32 bytes were "
                 "expected",
                 s->endpoint, (unsigned long long)m->payload_bytes, (int)m->encoding, bytes);
        return PS_EPROTO;
    }
    if (o->view && bytes > 0 && c->nshards == 1 && (uintptr_t)m->payload % _Alignof(float) == 0 &&
        c->frames.nparts == 2) {
        /* θ is this frame's payload: keep the frame instead of copying it */
        if (c->view_held)
            zmq_msg_close(&c->view_msg);
        zmq_msg_init(&c->view_msg);
        zmq_msg_move(&c->view_msg, &c->frames.parts[1]);
        c->view_held = true;
        o->view_out = zmq_msg_data(&c->view_msg);
    } else if (bytes > 0) {
        if (o->theta == NULL) { /* a view, but this frame cannot be kept */
            if ((o->theta = theta_buf(c)) == NULL) {
                snprintf(why, cap, "out of memory for θ");
                return PS_ENOMEM;
            }
        }
        memcpy(o->theta + s->key_lo, m->payload, bytes);
        o->view_out = NULL;
    }
    s->theta_version = m->model_version;
    if (m->model_version < *version)
        *version = m->model_version;
    return 0;
}

/* The reply to the pull riding behind shard i's request. */
static void riding_pull_handle(ps_client *c, op *o, size_t i, const ps_msg *m)
{
    shard *s = &c->shards[i];
    char why[PS_ERROR_MSG_MAX];
    int code;
    if (m->type == PS_MSG_ERROR) {
        code = m->status < 0 ? m->status : PS_ESERVER;
        pull_fail(c, o, i, code, "%s: %s", s->endpoint, m->error[0] ? m->error : ps_strerror(code));
    } else if (m->type != PS_MSG_PULL_REPLY) {
        pull_fail(c, o, i, PS_EPROTO, "%s: PULL answered with %s", s->endpoint,
                  ps_msg_type_name(m->type));
    } else if ((code = pull_accept(c, o, i, m, &o->pull_version, why, sizeof why)) != 0) {
        pull_fail(c, o, i, code, "%s", why);
    } else {
        s->pull_pending = false;
    }
}

static void ack_accept(op *o, shard *s, const ps_msg *m)
{
    if (m->model_version < o->version)
        o->version = m->model_version;
    o->flags |= m->flags;
    s->pending = false;
}

/* A STATUS_REPLY: the staleness over every shard (largest max and p99,
 * the mean of the means) and shard 0's worker table. */
static void status_accept(ps_client *c, op *o, size_t i, const ps_msg *m)
{
    shard *s = &c->shards[i];
    if (m->staleness_max > o->stale_max)
        o->stale_max = m->staleness_max;
    if (m->staleness_p99 > o->stale_p99)
        o->stale_p99 = m->staleness_p99;
    o->stale_mean_sum += m->staleness_mean;
    o->statuses++;
    if (i == 0 && o->rows != NULL && m->encoding == PS_ENC_WORKERS) {
        ps_error err = {0};
        if (ps_codec_workers_decode(m->payload, (size_t)m->payload_bytes, o->rows, o->rows_cap,
                                    &o->nrows, &err) != 0) {
            op_fail(c, o, i, PS_EPROTO, "%s: %s", s->endpoint, err.msg);
            return;
        }
    }
    s->pending = false;
}

/* One decoded reply from shard i: dropped when it answers an older request,
 * else it ends the shard's part of the exchange. */
static void reply_handle(ps_client *c, op *o, size_t i, const ps_msg *m)
{
    shard *s = &c->shards[i];
    if (m->type == PS_MSG_ERROR && code_is_final(m->status)) {
        /* whatever its seq: the server stopped, or the job did */
        final_set(c, m->status, s->endpoint, m->error);
        op_fail(c, o, i, m->status, "%s", c->final_why);
        return;
    }
    if (s->pull_pending && m->seq == s->pull_seq) {
        riding_pull_handle(c, o, i, m);
        return;
    }
    if (!s->pending || m->seq != s->seq) {
        c->stale_replies++;
        return;
    }
    if (m->type == PS_MSG_ERROR) {
        int code = m->status < 0 ? m->status : PS_ESERVER;
        op_fail(c, o, i, code, "%s: %s", s->endpoint, m->error[0] ? m->error : ps_strerror(code));
        return;
    }
    if (m->type != o->reply) {
        op_fail(c, o, i, PS_EPROTO, "%s: %s answered with %s", s->endpoint,
                ps_msg_type_name(o->type), ps_msg_type_name(m->type));
        return;
    }
    switch (m->type) {
    case PS_MSG_WELCOME:
        welcome_accept(c, o, i, m);
        break;
    case PS_MSG_PULL_REPLY: {
        char why[PS_ERROR_MSG_MAX];
        int code = pull_accept(c, o, i, m, &o->version, why, sizeof why);
        if (code != 0)
            op_fail(c, o, i, code, "%s", why);
        else
            s->pending = false;
        break;
    }
    case PS_MSG_STATUS_REPLY:
        status_accept(c, o, i, m);
        break;
    default:
        if (o->type == PS_MSG_PUSH && !(m->flags & PS_ACK_DROPPED) && s->seq > s->counted_seq) {
            s->acked++; /* the shard holds it, applied now or before (DUPLICATE) */
            s->counted_seq = s->seq;
        }
        ack_accept(o, s, m);
        break;
    }
}

/* Reads every reply waiting on shard i's socket. A reply that does not
 * decode is dropped and counted. */
static int shard_drain(ps_client *c, op *o, size_t i)
{
    shard *s = &c->shards[i];
    for (;;) {
        int rc = ps_wire_recv(s->sock, false, ZMQ_DONTWAIT, &c->frames, &c->rep, &c->err);
        int e = errno;
        if (rc != PS_EZMQ)
            atomic_store(&s->last_answer_ms, ps_clock_ms());
        if (rc == 0)
            reply_handle(c, o, i, &c->rep);
        else if (rc != PS_EZMQ)
            c->bad_replies++;
        ps_frames_close(&c->frames);
        if (rc != PS_EZMQ)
            continue;
        if (e == EAGAIN || e == EINTR)
            return 0; /* the poll loop notices a signal */
        return client_fail(c, PS_EZMQ, "%s: receive: %s", s->endpoint, zmq_strerror(e));
    }
}

/* ---- exchanges --------------------------------------------------------- */

/* The first resend's wait: CLIENT_RETRY_FIRST_MS, or a quarter of the
 * timeout when that is shorter; each wait after it doubles, up to
 * CLIENT_RETRY_MAX_MS. */
static uint64_t retry_first_ms(int timeout_ms)
{
    uint64_t step = (uint64_t)timeout_ms / 4;
    if (step > CLIENT_RETRY_FIRST_MS)
        step = CLIENT_RETRY_FIRST_MS;
    return step == 0 ? 1 : step;
}

/* When shard s's part of an exchange begun at start gives up: timeout_ms
 * after the shard last answered anything (the heartbeat thread's replies
 * count too, so a parked pull waits on while its server answers
 * heartbeats), and never before the first resend's time. Without the
 * heartbeat thread the wait counts from start at the earliest. */
static uint64_t shard_deadline(const ps_client *c, shard *s, uint64_t start, int timeout_ms)
{
    uint64_t base = atomic_load(&s->last_answer_ms);
    if (!c->hb_started && base < start)
        base = start;
    uint64_t end = base + (uint64_t)timeout_ms, first = start + retry_first_ms(timeout_ms);
    return end > first ? end : first;
}

/* One line when a shard that knows us has said nothing for
 * CLIENT_SILENT_BEATS heartbeat intervals (CLIENT_SILENT_MIN_MS at least),
 * and one when it answers again.
 * Only with the heartbeat thread: without it a parked pull is quiet by
 * design. */
static void silence_note(ps_client *c, uint64_t now)
{
    if (!c->hb_started)
        return;
    uint64_t quiet_ms = (uint64_t)c->heartbeat_ms * CLIENT_SILENT_BEATS;
    if (quiet_ms < CLIENT_SILENT_MIN_MS)
        quiet_ms = CLIENT_SILENT_MIN_MS;
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];
        uint64_t last = atomic_load(&s->last_answer_ms);
        if (!s->registered)
            continue;
        if (!s->silent_logged && now > last && now - last > quiet_ms) {
            s->silent_logged = true;
            s->silent_from_ms = last;
            client_log(c, 1, "%s: no answer for %llu ms, waiting up to %d ms", s->endpoint,
                       (unsigned long long)(now - last), c->timeout_ms);
        } else if (s->silent_logged && last > s->silent_from_ms) {
            s->silent_logged = false;
            client_log(c, 0, "%s: answers again after %llu ms", s->endpoint,
                       (unsigned long long)(last - s->silent_from_ms));
        }
    }
}

/* Ends the part of every asked shard whose heartbeat was answered "not
 * registered" since our latest registration there: the caller registers
 * again. True when there was one. */
static bool shards_lost_fail(ps_client *c, op *o)
{
    bool any = false;
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];
        uint32_t lost = atomic_load(&s->hb_lost_gen);
        if (!s->asked || lost == 0 || lost != atomic_load(&s->reg_gen))
            continue;
        op_fail(c, o, i, PS_EWORKER, "%s: worker %u is not registered (a heartbeat was told)",
                s->endpoint, s->worker_id);
        any = true;
    }
    return any;
}

/* The exchange ended by shard i's deadline: PS_ETIMEDOUT naming it, or,
 * when only the pull riding behind the request is unanswered, the pull
 * given up and the request's outcome. */
static int op_timed_out(ps_client *c, op *o, size_t i, int timeout_ms, int sends)
{
    shard *s = &c->shards[i];
    uint64_t now = ps_clock_ms(), last = atomic_load(&s->last_answer_ms);
    char sent[32] = "", why[CLIENT_WHY_MAX];
    if (sends > 1)
        snprintf(sent, sizeof sent, " (sent %d times)", sends);
    ps_msg_type type = s->pending ? o->type : PS_MSG_PULL;
    if (!c->hb_started)
        snprintf(why, sizeof why, "%s: no reply to %s within %d ms%s", s->endpoint,
                 ps_msg_type_name(type), timeout_ms, sent);
    else /* heartbeats went unanswered too */
        snprintf(why, sizeof why, "%s: no reply to %s, and no answer to anything for %llu ms%s",
                 s->endpoint, ps_msg_type_name(type), (unsigned long long)(now - last), sent);
    if (s->pending)
        return client_fail(c, PS_ETIMEDOUT, "%s", why);
    for (size_t k = 0; k < c->nshards; k++)
        if (c->shards[k].pull_pending)
            pull_fail(c, o, k, PS_ETIMEDOUT, "%s", why);
    return o->rc;
}

/* Runs one exchange with the shards marked asked: sends the request to all of
 * them, then awaits all replies. With resend, a shard still silent gets the
 * request again (same seq) after CLIENT_RETRY_FIRST_MS, then after waits
 * that double. A shard's part ends at its deadline (shard_deadline). Every
 * CLIENT_CHECK_MS of waiting it looks at what the heartbeat thread learnt: a
 * final ERROR ends the exchange with its code, a shard that lost us ends it
 * with PS_EWORKER. Returns 0 or the first error, which last_error tells;
 * each shard's own outcome is in its status. */
static int op_run(ps_client *c, op *o, bool resend, int timeout_ms)
{
    o->rc = 0;
    o->pull_rc = 0;
    o->pull_version = UINT64_MAX;
    uint64_t start = ps_clock_ms();
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];
        s->pending = s->asked;
        s->pull_pending = s->asked && o->then_pull;
        s->status = 0;
    }
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];
        if (!s->asked)
            continue;
        /* past the last riding pull too, so its late reply is told apart;
         * a push sent again after a registration keeps its seq, so a
         * shard that applied it before (and kept that, across a restart)
         * acknowledges it as a duplicate instead of applying it twice */
        if (o->type == PS_MSG_PUSH && o->same_seq && s->push_seq != 0) {
            s->seq = s->push_seq;
            /* its ACK came before the shard lost us (only the pull riding
             * behind it did not): the push is not sent again. A restart
             * that rolled it back said so in its WELCOME, and the caller
             * trains its batch again; sending it again would apply it twice */
            if (s->counted_seq >= s->push_seq)
                s->pending = false;
        } else {
            s->seq = (s->pull_seq > s->seq ? s->pull_seq : s->seq) + 1;
        }
        if (o->type == PS_MSG_PUSH) {
            s->push_seq = s->seq;
            o->push_sent = true;
        }
        s->pull_seq = o->then_pull ? s->seq + 1 : 0;
        int rc = op_send(c, o, i);
        if (rc != 0)
            return rc;
    }
    if (o->meanwhile != NULL) {
        void (*fn)(void *) = o->meanwhile;
        o->meanwhile = NULL;
        fn(o->meanwhile_arg);
    }
    bool watch = o->type == PS_MSG_PULL || o->type == PS_MSG_PUSH || o->type == PS_MSG_HEARTBEAT;
    int sends = 1;
    uint64_t step = retry_first_ms(timeout_ms), resend_at = start + step;
    size_t late = 0;
    for (;;) {
        size_t n = 0;
        for (size_t i = 0; i < c->nshards; i++) {
            if (!c->shards[i].pending && !c->shards[i].pull_pending)
                continue;
            c->items[n] = (zmq_pollitem_t){.socket = c->shards[i].sock, .events = ZMQ_POLLIN};
            c->item_shard[n++] = i;
        }
        uint64_t now = ps_clock_ms();
        silence_note(c, now);
        if (n == 0)
            return o->rc;
        int rc = final_check(c);
        if (rc != 0)
            return rc;
        if (watch && shards_lost_fail(c, o))
            return o->rc;
        uint64_t deadline = UINT64_MAX;
        for (size_t k = 0; k < n; k++) {
            uint64_t d = shard_deadline(c, &c->shards[c->item_shard[k]], start, timeout_ms);
            if (d < deadline) {
                deadline = d;
                late = c->item_shard[k];
            }
        }
        if (now >= deadline)
            break;
        if (resend && now >= resend_at) {
            for (size_t k = 0; k < n; k++) {
                rc = op_send(c, o, c->item_shard[k]);
                if (rc != 0)
                    return rc;
            }
            sends++;
            step = step * 2 > CLIENT_RETRY_MAX_MS ? CLIENT_RETRY_MAX_MS : step * 2;
            resend_at += step;
            if (resend_at <= now) /* no burst after a stall */
                resend_at = now + step;
            continue;
        }
        uint64_t until = resend && resend_at < deadline ? resend_at : deadline;
        uint64_t wait_ms = until - now < CLIENT_CHECK_MS ? until - now : CLIENT_CHECK_MS;
        if (zmq_poll(c->items, (int)n, (long)wait_ms) < 0) {
            if (errno == EINTR)
                return client_fail(c, PS_EINTR, "interrupted while awaiting %s replies",
                                   ps_msg_type_name(o->reply));
            return client_fail(c, PS_EZMQ, "poll: %s", zmq_strerror(errno));
        }
        for (size_t k = 0; k < n; k++) {
            if (!(c->items[k].revents & ZMQ_POLLIN))
                continue;
            rc = shard_drain(c, o, c->item_shard[k]);
            if (rc != 0)
                return rc;
        }
    }
    if (o->rc != 0)
        return o->rc;
    return op_timed_out(c, o, late, timeout_ms, sends);
}

static void shards_mark(ps_client *c, bool all, bool registered_only)
{
    for (size_t i = 0; i < c->nshards; i++)
        c->shards[i].asked = all && (!registered_only || c->shards[i].registered);
}

/* Runs a PULL, PUSH or HEARTBEAT exchange with every shard. A shard that
 * answers "unknown worker" (or whose heartbeat was told so, which is looked
 * at before anything is sent) restarted or evicted us (DESIGN §7): say
 * HELLO to it again with our rank (and DONE again if we had said it). In
 * sync mode the exchange then ends with PS_EREJOINED, since the shard's
 * rounds may have moved or gone back: the caller goes on from
 * ps_client_rejoin_version. Otherwise (async, a DONE heartbeat, the pull of
 * the final θ) the request is sent once more. */
static int op_all(ps_client *c, op *o)
{
    int rc = final_check(c);
    if (rc != 0)
        return rc;
    shards_mark(c, true, false);
    for (size_t i = 0; i < c->nshards; i++) {
        c->shards[i].status = 0;
        c->shards[i].pending = c->shards[i].pull_pending = false;
    }
    o->rc = 0;
    if (shards_lost_fail(c, o)) {
        rc = o->rc;
    } else {
        rc = op_run(c, o, true, c->timeout_ms);
        if (rc != PS_EWORKER)
            return rc;
    }
    size_t first = SIZE_MAX;
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];
        if (s->status != 0 && s->status != PS_EWORKER)
            return rc;
        s->asked = s->status == PS_EWORKER;
        if (s->asked && first == SIZE_MAX)
            first = i;
    }
    op hello = {
        .type = PS_MSG_HELLO, .reply = PS_MSG_WELCOME, .rank = c->rank, .version = UINT64_MAX};
    rc = op_run(c, &hello, false, c->timeout_ms);
    if (rc != 0)
        return rc;
    c->rejoin_version = hello.version;
    if (c->done) {
        op done = {.type = PS_MSG_HEARTBEAT,
                   .reply = PS_MSG_ACK,
                   .flags = PS_FLAG_DONE,
                   .version = UINT64_MAX};
        shards_mark(c, true, false);
        if ((rc = op_run(c, &done, true, c->timeout_ms)) != 0)
            return rc;
    }
    bool final_pull = o->type == PS_MSG_PULL && o->min_version == PS_VERSION_FINAL;
    bool done_beat = o->type == PS_MSG_HEARTBEAT && (o->flags & PS_FLAG_DONE);
    if (c->mode_desc->rounds && !final_pull && !done_beat)
        return client_fail(c, PS_EREJOINED, "registered again with shard %zu at round %llu", first,
                           (unsigned long long)hello.version);
    shards_mark(c, true, false);
    /* only a push that went out keeps its seq: one never sent (a heartbeat
     * found us lost first) takes a new one, or it would pass for the push
     * before it */
    o->same_seq = o->type == PS_MSG_PUSH && o->push_sent;
    return op_run(c, o, true, c->timeout_ms);
}

/* ---- heartbeats -------------------------------------------------------- */

/* The heartbeat thread's own view of a shard: its socket, the registration
 * its heartbeats are sent for, and the first heartbeat sent for it (a
 * refusal of an older one is about a registration gone by). */
typedef struct hb_shard {
    void *sock;
    uint32_t gen;
    uint64_t gen_first_seq;
} hb_shard;

/* What a heartbeat's reply tells: any reply says the shard is alive; a
 * final ERROR stops the client; "not registered" to a heartbeat of the
 * current registration asks the main thread to register again. */
static void heartbeat_reply(ps_client *c, size_t i, const hb_shard *h, const ps_msg *m)
{
    shard *s = &c->shards[i];
    if (m->type != PS_MSG_ERROR)
        return;
    if (code_is_final(m->status))
        final_set(c, m->status, s->endpoint, m->error);
    else if (m->status == PS_EWORKER && h->gen != 0 && m->seq >= h->gen_first_seq)
        atomic_store(&s->hb_lost_gen, h->gen);
}

/* Makes sock a CURVE client of the servers' key, when the client has keys. */
static int curve_apply(const ps_client *c, void *sock)
{
    if (!c->curve)
        return 0;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c->curve_server.public_z85, PS_CURVE_Z85_LEN) !=
            0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, c->curve_me.public_z85, PS_CURVE_Z85_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->curve_me.secret_z85, PS_CURVE_Z85_LEN) != 0)
        return -1;
    return 0;
}

/* A DEALER of the heartbeat thread's own context, connected to shard i;
 * NULL when it cannot be made (that shard then gets no heartbeats). */
static void *heartbeat_socket(ps_client *c, size_t i)
{
    int linger = 0;
    int64_t max_msg = PS_HEADER_MAX_BYTES; /* a heartbeat's reply has no payload */
    void *sock = zmq_socket(c->hb_ctx, ZMQ_DEALER);
    if (sock == NULL)
        return NULL;
    if (zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg) != 0 ||
        curve_apply(c, sock) != 0 || zmq_connect(sock, c->shards[i].endpoint) != 0) {
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

/* Reads every reply waiting on the heartbeat socket of shard i. */
static void heartbeat_drain(ps_client *c, size_t i, const hb_shard *h, ps_msg *m)
{
    ps_frames f;
    ps_error err;
    for (;;) {
        memset(&f, 0, sizeof f);
        int rc = ps_wire_recv(h->sock, false, ZMQ_DONTWAIT, &f, m, &err);
        if (rc != PS_EZMQ)
            atomic_store(&c->shards[i].last_answer_ms, ps_clock_ms());
        if (rc == 0)
            heartbeat_reply(c, i, h, m);
        ps_frames_close(&f);
        if (rc == PS_EZMQ)
            return;
    }
}

/* The heartbeat thread: every heartbeat_ms a HEARTBEAT to each shard that
 * knows us, so a worker busy computing or waiting in a parked pull is not
 * evicted. It shares nothing with the main thread that could hold it up: a
 * ZeroMQ context of its own (the main one's I/O thread may be busy with a
 * push of tens of MB), sockets of its own, no lock but final_mu, sends that
 * never block; it waits in zmq_poll on its sockets and hb_stop_fd. Replies
 * are read at once: they keep last_answer_ms, and tell the main thread of a
 * final ERROR or of a shard that lost us (heartbeat_reply). */
static void *heartbeat_main(void *arg)
{
    ps_client *c = arg;
    hb_shard hs[PS_MAX_SHARDS];
    zmq_pollitem_t items[PS_MAX_SHARDS + 1];
    size_t item_shard[PS_MAX_SHARDS];
    memset(hs, 0, sizeof hs);
    for (size_t i = 0; i < c->nshards; i++)
        hs[i].sock = heartbeat_socket(c, i);
    ps_msg out, in;
    ps_msg_init(&out, PS_MSG_HEARTBEAT);
    memcpy(out.job, c->job, sizeof out.job);
    uint64_t seq = 0, next = ps_clock_ms();
    for (;;) {
        uint64_t now = ps_clock_ms();
        if (now >= next) {
            for (size_t i = 0; i < c->nshards; i++) {
                hb_shard *h = &hs[i];
                uint32_t gen = atomic_load(&c->shards[i].reg_gen); /* before the id */
                uint32_t id = atomic_load(&c->shards[i].hb_worker_id);
                if (h->sock == NULL || id == 0)
                    continue;
                out.worker_id = id;
                out.seq = ++seq;
                report_get(c, &out.loss, &out.samples_per_s);
                if (gen != h->gen) {
                    h->gen = gen;
                    h->gen_first_seq = out.seq;
                }
                ps_wire_send(h->sock, NULL, 0, &out, NULL, ZMQ_DONTWAIT);
            }
            /* the next one is due heartbeat_ms after this one was, or
             * after now when this one came late: no burst to catch up */
            next += (uint64_t)c->heartbeat_ms;
            if (next <= now)
                next = now + (uint64_t)c->heartbeat_ms;
        }
        size_t n = 0;
        for (size_t i = 0; i < c->nshards; i++) {
            if (hs[i].sock == NULL)
                continue;
            items[n] = (zmq_pollitem_t){.socket = hs[i].sock, .events = ZMQ_POLLIN};
            item_shard[n++] = i;
        }
        items[n] = (zmq_pollitem_t){.fd = c->hb_stop_fd, .events = ZMQ_POLLIN};
        now = ps_clock_ms();
        long wait_ms = next > now ? (long)(next - now) : 0;
        if (zmq_poll(items, (int)n + 1, wait_ms) < 0 && errno != EINTR)
            break;
        if (items[n].revents & ZMQ_POLLIN)
            break;
        for (size_t k = 0; k < n; k++)
            if (items[k].revents & ZMQ_POLLIN)
                heartbeat_drain(c, item_shard[k], &hs[item_shard[k]], &in);
    }
    for (size_t i = 0; i < c->nshards; i++)
        if (hs[i].sock != NULL)
            zmq_close(hs[i].sock);
    return NULL;
}

/* Starts the heartbeat thread with its context and stop descriptor; 0 or
 * PS_ENOMEM / PS_EZMQ (nothing is left started then). */
static int heartbeat_start(ps_client *c)
{
    c->hb_stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->hb_stop_fd < 0)
        return PS_ENOMEM;
    c->hb_ctx = zmq_ctx_new();
    if (c->hb_ctx == NULL)
        return PS_EZMQ;
    /* signals are the caller's thread's business: its wait returns PS_EINTR */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&c->hb_thread, NULL, heartbeat_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return PS_ENOMEM;
    c->hb_started = true;
    return 0;
}

/* Ends the heartbeat thread at once and frees what heartbeat_start made. */
static void heartbeat_stop(ps_client *c)
{
    if (c->hb_started) {
        uint64_t one = 1;
        ssize_t w;
        do {
            w = write(c->hb_stop_fd, &one, sizeof one);
        } while (w < 0 && errno == EINTR);
        pthread_join(c->hb_thread, NULL);
        c->hb_started = false;
    }
    if (c->hb_ctx != NULL) {
        zmq_ctx_term(c->hb_ctx);
        c->hb_ctx = NULL;
    }
    if (c->hb_stop_fd >= 0) {
        close(c->hb_stop_fd);
        c->hb_stop_fd = -1;
    }
}

/* ---- the client -------------------------------------------------------- */

static void client_free(ps_client *c)
{
    heartbeat_stop(c);
    if (c->view_held)
        zmq_msg_close(&c->view_msg);
    free(c->theta_buf);
    free(c->enc);
    free(c->residual);
    free(c->scratch);
    for (size_t i = 0; c->shards != NULL && i < c->nshards; i++) {
        if (c->shards[i].sock != NULL)
            zmq_close(c->shards[i].sock);
        ps_shm_detach(&c->shards[i].shm);
        ps_shm_detach(&c->shards[i].shm_old);
    }
    if (c->ctx != NULL)
        zmq_ctx_term(c->ctx);
    free(c->item_shard);
    free(c->items);
    free(c->shards);
    pthread_mutex_destroy(&c->final_mu);
    free(c);
}

/* Says BYE (with flags and why) to the shards that know us, which then
 * know us no more; the first error, if any. Nothing is sent once a server
 * stopped the client (a final ERROR): it is gone, or says so to anything. */
static int client_bye(ps_client *c, uint32_t flags, const char *why)
{
    if (atomic_load(&c->final_rc) != 0)
        return 0;
    shards_mark(c, true, true);
    bool any = false;
    for (size_t i = 0; i < c->nshards; i++)
        any = any || c->shards[i].asked;
    if (!any)
        return 0;
    int timeout_ms = c->timeout_ms < CLIENT_BYE_TIMEOUT_MS ? c->timeout_ms : CLIENT_BYE_TIMEOUT_MS;
    op bye = {
        .type = PS_MSG_BYE, .reply = PS_MSG_ACK, .version = UINT64_MAX, .flags = flags, .why = why};
    int rc = op_run(c, &bye, false, timeout_ms);
    for (size_t i = 0; i < c->nshards; i++)
        if (c->shards[i].asked)
            c->shards[i].registered = false;
    return rc;
}

static int opts_check(const ps_client_opts *opts, char *why, size_t cap)
{
    if (opts->job == NULL || opts->job[0] == '\0' || strlen(opts->job) >= PS_JOB_NAME_MAX) {
        snprintf(why, cap, "job name must be 1 to %d bytes", PS_JOB_NAME_MAX - 1);
        return PS_EINVAL;
    }
    if (opts->servers == NULL || opts->num_servers == 0 || opts->num_servers > PS_MAX_SHARDS) {
        snprintf(why, cap, "give 1 to %d server endpoints, not %zu", PS_MAX_SHARDS,
                 opts->servers == NULL ? (size_t)0 : opts->num_servers);
        return PS_EINVAL;
    }
    for (size_t i = 0; i < opts->num_servers; i++) {
        if (opts->servers[i] == NULL || strlen(opts->servers[i]) >= PS_ENDPOINT_MAX) {
            snprintf(why, cap, "server endpoint %zu must be 0 to %d bytes", i, PS_ENDPOINT_MAX - 1);
            return PS_EINVAL;
        }
    }
    if (opts->rank < -1) {
        snprintf(why, cap, "rank %d: give a rank >= 0, or -1 for any", opts->rank);
        return PS_EINVAL;
    }
    if (opts->timeout_ms < 0) {
        snprintf(why, cap, "timeout %d ms: give a timeout >= 0 ms", opts->timeout_ms);
        return PS_EINVAL;
    }
    if ((opts->curve_server_key_file == NULL) != (opts->curve_secret_key_file == NULL) ||
        (opts->curve_server_key_file != NULL &&
         (opts->curve_server_key_file[0] == '\0' || opts->curve_secret_key_file[0] == '\0'))) {
        snprintf(why, cap,
                 "CURVE needs both the server's public key file (security.curve."
                 "server_public_key) and this worker's secret key file (client_secret_key)");
        return PS_EINVAL;
    }
    return 0;
}

/* Reads the CURVE keys of opts, when it names them. */
static int curve_load(ps_client *c, const ps_client_opts *opts, char *why, size_t cap)
{
    if (opts->curve_secret_key_file == NULL)
        return 0;
    ps_error err;
    if (ps_curve_secret_load(opts->curve_secret_key_file, &c->curve_me, NULL, 0, &err) != 0 ||
        ps_curve_public_load(opts->curve_server_key_file, &c->curve_server, &err) != 0) {
        ps_strlcpy(why, err.msg, cap);
        return err.code;
    }
    c->curve = true;
    return 0;
}

/* A DEALER for shard s, options set, connected to its endpoint. */
static int shard_socket_open(ps_client *c, shard *s)
{
    int linger = 0, immediate = 0;
    int64_t max_msg = CLIENT_MAX_MSG_BYTES;
    s->sock = zmq_socket(c->ctx, ZMQ_DEALER);
    if (s->sock == NULL)
        return client_fail(c, PS_EZMQ, "%s: socket: %s", s->endpoint, zmq_strerror(errno));
    if (zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_IMMEDIATE, &immediate, sizeof immediate) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg) != 0 ||
        curve_apply(c, s->sock) != 0 || zmq_connect(s->sock, s->endpoint) != 0)
        return client_fail(c, PS_EZMQ, "%s: %s", s->endpoint, zmq_strerror(errno));
    return 0;
}

/* Creates the context and one connected DEALER per shard. Connecting is
 * lazy: a server that starts a little later still gets the request. */
static int client_connect(ps_client *c, const ps_client_opts *opts)
{
    c->ctx = zmq_ctx_new();
    if (c->ctx == NULL)
        return client_fail(c, PS_EZMQ, "zmq context: %s", zmq_strerror(errno));
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];
        ps_strlcpy(s->endpoint, opts->servers[i], sizeof s->endpoint);
        int rc = shard_socket_open(c, s);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Returns once ZeroMQ holds no message made from the caller's gradient, so
 * the caller may reuse it. After every ACK that is at once: the I/O thread
 * lets go of a message right after its last byte went out, before the
 * server could answer. A failed push may leave one queued for a shard that
 * does not answer; after CLIENT_SETTLE_MS the sockets are made anew
 * (closing one, linger 0, drops its queue) and the wait goes on. A socket
 * that cannot be made again stays NULL: requests to it then fail. */
static void push_settle(ps_client *c)
{
    uint64_t start = ps_clock_ms();
    bool renewed = false;
    while (atomic_load_explicit(&c->push_refs, memory_order_acquire) != 0) {
        if (!renewed && ps_clock_ms() - start > CLIENT_SETTLE_MS) {
            for (size_t i = 0; i < c->nshards; i++) {
                shard *s = &c->shards[i];
                if (s->sock != NULL)
                    zmq_close(s->sock);
                s->sock = NULL;
                if (shard_socket_open(c, s) != 0 && s->sock != NULL) {
                    zmq_close(s->sock);
                    s->sock = NULL;
                }
            }
            renewed = true;
        }
        if (renewed) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        } else {
            sched_yield();
        }
    }
}

/* Push compression as opts asks: the codec, and buffers for every shard's
 * encoded slice, the residual and scratch, allocated once. */
static int push_compress_init(ps_client *c, const ps_client_opts *opts, char *why, size_t cap)
{
    ps_compress_type type = PS_COMPRESS_NONE;
    if (opts->push_compression != NULL && ps_compress_parse(opts->push_compression, &type) != 0) {
        char names[128];
        ps_compress_list(names, sizeof names, 0);
        snprintf(why, cap, "push compression \"%s\" is not %s", opts->push_compression, names);
        return PS_EINVAL;
    }
    if (type == PS_COMPRESS_TOPK && !(opts->push_topk_ratio > 0 && opts->push_topk_ratio <= 1)) {
        snprintf(why, cap, "push topk ratio must be in (0, 1], got %g", opts->push_topk_ratio);
        return PS_EINVAL;
    }
    if (type == PS_COMPRESS_NONE)
        return 0;
    c->push_ops = ps_compress_ops_get(type);
    c->topk_ratio = opts->push_topk_ratio;
    c->error_feedback = opts->push_error_feedback != 0;
    size_t total = 0, widest = 1;
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];
        size_t n = (size_t)(s->key_hi - s->key_lo);
        s->enc_k = ps_compress_topk_k(n, c->topk_ratio);
        s->enc_off = total;
        s->enc_bytes = c->push_ops->bytes(n, s->enc_k);
        total += (s->enc_bytes + 7) & ~(size_t)7;
        widest = n > widest ? n : widest;
    }
    c->enc = malloc(total > 0 ? total : 1);
    c->scratch = malloc(widest * sizeof(float));
    if (c->error_feedback)
        c->residual = calloc(c->num_params > 0 ? (size_t)c->num_params : 1, sizeof(float));
    if (c->enc == NULL || c->scratch == NULL || (c->error_feedback && c->residual == NULL)) {
        snprintf(why, cap, "out of memory for push compression");
        return PS_ENOMEM;
    }
    return 0;
}

/* Compresses grad for every shard it goes to over the socket, once per
 * push (a resend sends the same bytes): error feedback adds what the last
 * push dropped and keeps what this one drops. PS_EINVAL for a gradient
 * that is not finite. */
static int push_encode(ps_client *c, const float *grad)
{
    for (size_t i = 0; i < c->nshards; i++)
        c->shards[i].enc_ready = false;
    if (c->push_ops == NULL)
        return 0;
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];
        size_t n = (size_t)(s->key_hi - s->key_lo);
        if (n == 0 || s->shm_on)
            continue;
        int rc = c->error_feedback
                     ? ps_compress_encode_ef(c->push_ops, grad + s->key_lo, c->residual + s->key_lo,
                                             n, s->enc_k, c->enc + s->enc_off, c->scratch)
                     : c->push_ops->encode(grad + s->key_lo, n, s->enc_k, c->enc + s->enc_off,
                                           c->scratch);
        if (rc != 0)
            return client_fail(c, rc,
                               "push: the gradient for shard %zu holds a NaN or an infinity: it "
                               "has no %s encoding",
                               i, c->push_ops->name);
        s->enc_ready = true;
    }
    return 0;
}

/* HELLO to shard 0 first, for the rank; then to the others with that rank. */
static int client_register(ps_client *c, int rank)
{
    op hello = {.type = PS_MSG_HELLO, .reply = PS_MSG_WELCOME, .rank = rank, .version = UINT64_MAX};
    for (size_t i = 0; i < c->nshards; i++)
        c->shards[i].asked = i == 0;
    int rc = op_run(c, &hello, false, c->timeout_ms);
    c->rejoin_version = hello.version;
    if (rc != 0 || c->nshards == 1)
        return rc;
    hello.rank = c->rank;
    for (size_t i = 0; i < c->nshards; i++)
        c->shards[i].asked = i > 0;
    rc = op_run(c, &hello, false, c->timeout_ms);
    c->rejoin_version = hello.version;
    return rc;
}

/* A random id for this client, never 0: psd tells our pushes from those of
 * another process holding the same rank (exactly once across its restarts). */
static uint64_t client_incarnation(void)
{
    uint64_t id = 0;
    if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id || id == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        id =
            ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    }
    return id != 0 ? id : 1;
}

int ps_client_open(const ps_client_opts *opts, ps_client **out, char *errbuf, size_t errbuf_len)
{
    char why[PS_ERROR_MSG_MAX];
    int rc = PS_EINVAL;
    ps_client *c = NULL;
    if (out != NULL)
        *out = NULL;
    if (errbuf != NULL && errbuf_len > 0)
        errbuf[0] = '\0';
    if (opts == NULL || out == NULL) {
        snprintf(why, sizeof why, "no options or no place for the client");
        goto report;
    }
    if ((rc = opts_check(opts, why, sizeof why)) != 0)
        goto report;
    rc = PS_ENOMEM;
    snprintf(why, sizeof why, "out of memory");
    c = calloc(1, sizeof *c);
    if (c == NULL)
        goto report;
    atomic_init(&c->push_refs, 0);
    atomic_init(&c->final_rc, 0);
    c->hb_stop_fd = -1;
    if (pthread_mutex_init(&c->final_mu, NULL) != 0) {
        free(c);
        goto report;
    }
    c->nshards = opts->num_servers;
    c->shards = calloc(c->nshards, sizeof *c->shards);
    c->items = calloc(c->nshards, sizeof *c->items);
    c->item_shard = calloc(c->nshards, sizeof *c->item_shard);
    if (c->shards == NULL || c->items == NULL || c->item_shard == NULL) {
        client_free(c);
        goto report;
    }
    ps_strlcpy(c->job, opts->job, sizeof c->job);
    c->incarnation = client_incarnation();
    if (gethostname(c->hostname, sizeof c->hostname) != 0)
        c->hostname[0] = '\0';
    c->hostname[sizeof c->hostname - 1] = '\0';
    ps_client_report(c, NAN, NAN);
    if (!opts->socket_only && ps_shm_host_id(c->host, sizeof c->host) != 0)
        c->host[0] = '\0';
    c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : CLIENT_DEFAULT_TIMEOUT_MS;
    c->rank = -1;
    c->log_fn = opts->log_fn;
    c->log_arg = opts->log_arg;
    if ((rc = curve_load(c, opts, why, sizeof why)) != 0) {
        client_free(c);
        goto report;
    }
    if ((rc = client_connect(c, opts)) != 0 || (rc = client_register(c, opts->rank)) != 0) {
        ps_strlcpy(why, c->last_error, sizeof why);
        client_bye(c, 0, NULL); /* frees the ranks already taken; its errors do not matter now */
        client_free(c);
        goto report;
    }
    if ((rc = push_compress_init(c, opts, why, sizeof why)) != 0) {
        client_bye(c, 0, NULL);
        client_free(c);
        goto report;
    }
    c->heartbeat_ms = opts->heartbeat_ms;
    if (c->heartbeat_ms > 0 && (rc = heartbeat_start(c)) != 0) {
        snprintf(why, sizeof why, "cannot start the heartbeat thread: %s", ps_strerror(rc));
        heartbeat_stop(c);
        client_bye(c, 0, NULL);
        client_free(c);
        goto report;
    }
    *out = c;
    return 0;
report:
    if (errbuf != NULL && errbuf_len > 0)
        ps_strlcpy(errbuf, why, errbuf_len);
    return rc;
}

int ps_client_pull(ps_client *c, uint64_t min_version, float *theta, uint64_t *version)
{
    return ps_client_pull_clock(c, 0, min_version, theta, version);
}

int ps_client_pull_clock(ps_client *c, uint64_t clock, uint64_t min_version, float *theta,
                         uint64_t *version)
{
    if (c == NULL)
        return PS_EINVAL;
    if (theta == NULL)
        return client_fail(c, PS_EINVAL, "pull: no buffer for theta");
    op o = {.type = PS_MSG_PULL,
            .reply = PS_MSG_PULL_REPLY,
            .min_version = min_version,
            .pull_clock = clock,
            .theta = theta,
            .version = UINT64_MAX};
    int rc = op_all(c, &o);
    if (rc == 0 && version != NULL)
        *version = o.version;
    return rc;
}

int ps_client_push(ps_client *c, uint64_t clock, const float *grad, uint32_t samples,
                   uint64_t *version)
{
    if (c == NULL)
        return PS_EINVAL;
    if (grad == NULL)
        return client_fail(c, PS_EINVAL, "push: no gradient");
    op o = {.type = PS_MSG_PUSH,
            .reply = PS_MSG_ACK,
            .clock = clock,
            .samples = samples,
            .grad = grad,
            .version = UINT64_MAX};
    int rc = push_encode(c, grad);
    if (rc != 0)
        return rc;
    rc = op_all(c, &o);
    push_settle(c);
    shm_after_push(c);
    c->push_flags = o.flags;
    if (rc == 0 && version != NULL)
        *version = o.version;
    return rc;
}

int ps_client_push_pull(ps_client *c, ps_push_pull *pp)
{
    if (pp == NULL)
        return c == NULL ? PS_EINVAL : client_fail(c, PS_EINVAL, "push_pull: no exchange given");
    pp->pulled = 0;
    if (c == NULL)
        return PS_EINVAL;
    if (pp->grad == NULL)
        return client_fail(c, PS_EINVAL, "push_pull: no gradient");
    size_t bytes = (size_t)c->num_params * sizeof(float);
    const char *g = (const char *)pp->grad, *th = (const char *)pp->theta;
    if (th != NULL && g < th + bytes && th < g + bytes)
        return client_fail(c, PS_EINVAL, "push_pull: the gradient and theta overlap");
    float *theta = pp->theta;
    bool view = theta == NULL && c->nshards == 1;
    if (theta == NULL && !view) {
        if ((theta = theta_buf(c)) == NULL)
            return client_fail(c, PS_ENOMEM, "push_pull: out of memory for θ");
    }
    op o = {.type = PS_MSG_PUSH,
            .reply = PS_MSG_ACK,
            .clock = pp->clock,
            .samples = pp->samples,
            .grad = pp->grad,
            .version = UINT64_MAX,
            .then_pull = true,
            .min_version = pp->min_version,
            .pull_clock = pp->pull_clock,
            .theta = theta,
            .view = view,
            .meanwhile = pp->meanwhile,
            .meanwhile_arg = pp->arg};
    int rc = push_encode(c, pp->grad);
    if (rc != 0)
        return rc;
    rc = op_all(c, &o);
    push_settle(c);
    shm_after_push(c);
    c->push_flags = o.flags;
    if (rc != 0 || o.pull_rc != 0)
        return rc;
    pp->pulled = 1;
    pp->version = o.pull_version;
    pp->view = o.view_out != NULL ? o.view_out : o.theta;
    return 0;
}

int ps_client_heartbeat(ps_client *c)
{
    if (c == NULL)
        return PS_EINVAL;
    op o = {.type = PS_MSG_HEARTBEAT, .reply = PS_MSG_ACK, .version = UINT64_MAX};
    return op_all(c, &o);
}

int ps_client_done(ps_client *c)
{
    if (c == NULL)
        return PS_EINVAL;
    c->done = true;
    op o = {.type = PS_MSG_HEARTBEAT,
            .reply = PS_MSG_ACK,
            .flags = PS_FLAG_DONE,
            .version = UINT64_MAX};
    return op_all(c, &o);
}

void ps_client_report(ps_client *c, double loss, double samples_per_s)
{
    if (c == NULL)
        return;
    uint64_t l, r;
    memcpy(&l, &loss, sizeof l);
    memcpy(&r, &samples_per_s, sizeof r);
    atomic_store(&c->report_loss, l);
    atomic_store(&c->report_rate, r);
}

uint64_t ps_client_rank_applied(const ps_client *c)
{
    uint64_t least = UINT64_MAX;
    for (size_t i = 0; i < c->nshards; i++)
        if (c->shards[i].applied < least)
            least = c->shards[i].applied;
    return c->nshards > 0 ? least : 0;
}

int ps_client_push_tally(const ps_client *c, size_t i, uint64_t *held, uint64_t *rolled_back)
{
    if (c == NULL || i >= c->nshards)
        return PS_ERANGE;
    *held = c->shards[i].acked;
    *rolled_back = c->shards[i].rolled_back;
    return 0;
}

size_t ps_client_num_servers(const ps_client *c)
{
    return c->nshards;
}

int ps_client_server_stats(ps_client *c, ps_server_stats *out)
{
    if (c == NULL || out == NULL)
        return PS_EINVAL;
    int rc = final_check(c);
    if (rc != 0)
        return rc;
    ps_worker_status *rows = calloc(PS_MAX_STATUS_RANKS, sizeof *rows);
    if (rows == NULL)
        return client_fail(c, PS_ENOMEM, "status: out of memory");
    op o = {.type = PS_MSG_STATUS,
            .reply = PS_MSG_STATUS_REPLY,
            .version = UINT64_MAX,
            .rows = rows,
            .rows_cap = PS_MAX_STATUS_RANKS};
    shards_mark(c, true, false);
    rc = op_run(c, &o, true, c->timeout_ms);
    if (rc == 0) {
        out->staleness_max = o.stale_max;
        out->staleness_p99 = o.stale_p99;
        out->staleness_mean = o.statuses > 0 ? o.stale_mean_sum / o.statuses : 0.0;
        out->nranks = (uint32_t)o.nrows;
        for (size_t r = 0; r < o.nrows; r++) {
            out->clock[r] = rows[r].clock;
            out->pushes[r] = rows[r].pushes;
        }
    }
    free(rows);
    return rc;
}

uint64_t ps_client_rejoin_version(const ps_client *c)
{
    return c->rejoin_version;
}

int ps_client_close(ps_client **cp)
{
    if (cp == NULL || *cp == NULL)
        return 0;
    ps_client *c = *cp;
    *cp = NULL;
    heartbeat_stop(c); /* no heartbeat may follow the BYE */
    int rc = client_bye(c, 0, NULL);
    client_free(c);
    return rc;
}

int ps_client_abort(ps_client *c, const char *why)
{
    if (c == NULL)
        return PS_EINVAL;
    int rc = final_check(c);
    if (rc != 0)
        return rc;
    heartbeat_stop(c); /* the worker leaves: no heartbeat may follow the BYE */
    rc = client_bye(c, PS_FLAG_ABORT, why != NULL ? why : "");
    return rc == PS_EABORTED ? 0 : rc; /* the job was stopped already */
}

uint64_t ps_client_num_params(const ps_client *c)
{
    return c->num_params;
}

int ps_client_rank(const ps_client *c)
{
    return c->rank;
}

uint32_t ps_client_num_workers(const ps_client *c)
{
    return c->num_workers;
}

const char *ps_client_mode(const ps_client *c)
{
    return c->mode;
}

size_t ps_client_num_tensors(const ps_client *c)
{
    return c->ntensors;
}

int ps_client_tensor(const ps_client *c, size_t i, const char **name, uint64_t *offset,
                     const uint64_t **shape, uint32_t *ndims)
{
    if (i >= c->ntensors)
        return PS_EINVAL;
    const ps_tensor_info *t = &c->tensors[i];
    if (name != NULL)
        *name = t->name;
    if (offset != NULL)
        *offset = t->offset;
    if (shape != NULL)
        *shape = t->shape;
    if (ndims != NULL)
        *ndims = t->ndims;
    return 0;
}

uint32_t ps_client_push_flags(const ps_client *c)
{
    return c->push_flags;
}

size_t ps_client_shared_memory(const ps_client *c, const char **why)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nshards; i++)
        n += c->shards[i].shm_on;
    if (why != NULL)
        *why = c->shm_why;
    return n;
}

uint64_t ps_client_bad_replies(const ps_client *c)
{
    return c->bad_replies;
}

const char *ps_client_last_error(const ps_client *c)
{
    return c->last_error;
}
