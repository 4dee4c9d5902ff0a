/* exchange.c — the client's retry core (exchange.h). */
#include "exchange.h"

#include "client_codec.h"
#include "client_shm.h"
#include "membership.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Ends shard i's part of the exchange with an error (a pull riding behind
 * the request is given up with it); the first error of an exchange is the
 * one last_error tells and op_run returns. */
void ps_exchange_fail(ps_client *c, op *o, size_t i, int code, const char *fmt, ...)
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

/* Ends the pull riding behind shard i's request with an error; last_error
 * tells it unless the exchange failed already. */
static void pull_fail(ps_client *c, op *o, size_t i, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
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

/* ZeroMQ's free function for a push payload sent from the caller's
 * gradient; runs on the client's I/O thread. */
static void push_release(void *data, void *hint)
{
    (void)data;
    ps_client *c = hint;
    if (atomic_fetch_sub_explicit(&c->push_refs, 1, memory_order_release) == 1) {
        pthread_mutex_lock(&c->settle_mu);
        pthread_cond_broadcast(&c->settle_cv);
        pthread_mutex_unlock(&c->settle_mu);
    }
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

/* The sparse part of a request to shard s (o->table > 0): a SCAN, or its
 * slice of the keys (and rows) already in the client's sp_buf. */
static void sparse_request(ps_client *c, const op *o, const shard *s, ps_msg *m,
                           const void **payload)
{
    m->table = o->table;
    m->dim = o->dim;
    if (o->scan_max > 0) {
        m->flags = PS_FLAG_SCAN;
        m->key_lo = o->scan_from;
        m->nkeys = o->scan_max;
        return;
    }
    m->clock = o->clock;
    m->samples = o->samples;
    if (o->type == PS_MSG_PUSH && s->sp_keys_of != 0) {
        m->flags = PS_FLAG_KEYS_OF;
        m->keys_of = s->sp_keys_of;
    }
    m->nkeys = s->sp_end - s->sp_beg;
    m->keys_bytes = s->sp_keys_bytes;
    m->payload_bytes = s->sp_bytes;
    m->encoding = s->sp_bytes > s->sp_keys_bytes
                      ? (c->push_ops != NULL ? c->push_ops->encoding : PS_ENC_F32)
                      : PS_ENC_NONE;
    *payload = s->sp_grads != NULL ? (const void *)s->sp_grads : c->sp_buf + s->sp_off;
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
    m->job = c->job;
    m->worker_id = s->worker_id;
    m->seq = seq;
    switch (type) {
    case PS_MSG_HELLO:
        m->rank = o->rank;
        m->host = c->host;
        m->hostname = c->hostname;
        m->incarnation = c->incarnation;
        m->expected = c->pushes_expected;
        break;
    case PS_MSG_HEARTBEAT:
        m->flags = o->flags;
        ps_client_report_get(c, &m->loss, &m->samples_per_s);
        break;
    case PS_MSG_LEASE:
        m->lease_count = c->lease_want;
        m->epoch_batches = c->lease_spe;
        break;
    case PS_MSG_BYE:
        m->flags = o->flags;
        if (o->why != NULL) {
            ps_strlcpy(c->req_text, o->why, sizeof c->req_text);
            m->error = c->req_text;
        }
        break;
    case PS_MSG_PULL:
        if (o->table > 0) {
            sparse_request(c, o, s, m, &payload);
            break;
        }
        m->key_lo = s->key_lo;
        m->key_hi = s->key_hi;
        m->min_version = o->min_version;
        m->clock = o->pull_clock;
        if (s->shm_on)
            m->flags = PS_FLAG_SHM;
        if (s->chunked)
            m->flags |= PS_FLAG_CHUNK;
        break;
    case PS_MSG_PUSH:
        if (o->table > 0) {
            sparse_request(c, o, s, m, &payload);
            break;
        }
        m->key_lo = s->key_lo;
        m->key_hi = s->key_hi;
        m->clock = o->clock;
        m->model_version = s->theta_version;
        m->samples = o->samples;
        if (i == 0 && (c->lease_batch > 0 || c->lease_want > 0)) { /* the queue is shard 0's */
            m->batch = c->lease_batch;
            m->lease_count = c->lease_want;
            m->epoch_batches = c->lease_spe;
        }
        if (s->pull_pending && (!s->chunked || s->cur_chunk == 0)) {
            /* the pull of the next θ rides in the push (pipelined: in its
             * first chunk, and takes chunks of θ back) */
            m->flags =
                PS_FLAG_PULL | (s->shm_on ? PS_FLAG_SHM : 0) | (s->chunked ? PS_FLAG_CHUNK : 0);
            m->min_version = o->min_version;
            m->pull_clock = o->pull_clock;
        }
        if (s->chunked) {
            uint64_t lo, hi;
            ps_client_chunk_range(s, s->cur_chunk, &lo, &hi);
            m->flags |= PS_FLAG_CHUNK;
            m->chunk = s->cur_chunk;
            m->chunks = s->nchunks;
            m->key_lo = lo;
            m->key_hi = hi;
            if (s->enc_ready) {
                m->encoding = c->push_ops->encoding;
                m->payload_bytes =
                    s->chunk_enc_off[s->cur_chunk + 1] - s->chunk_enc_off[s->cur_chunk];
                payload = c->enc + s->enc_off + s->chunk_enc_off[s->cur_chunk];
            } else {
                m->encoding = PS_ENC_F32;
                m->payload_bytes = (hi - lo) * sizeof(float);
                payload = o->grad + lo;
            }
        } else if (s->key_hi > s->key_lo && s->shm_on) {
            m->encoding = PS_ENC_SHM_F32;
            m->payload_bytes = (s->key_hi - s->key_lo) * sizeof(float);
            ps_client_shm_grad_put(s, o->grad + s->key_lo, (size_t)m->payload_bytes, seq);
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
        ps_exchange_fail(c, o, i, rc, "%s: sending %s: %s", s->endpoint, ps_msg_type_name(type),
                         zmq_strerror(errno));
    else
        ps_exchange_fail(c, o, i, rc, "%s: %s request breaks a protocol limit", s->endpoint,
                         ps_msg_type_name(type));
    return rc;
}

/* Sends shard i what of o it has not answered yet: the request, and the
 * pull riding behind it, in that order. */
static int op_send(ps_client *c, op *o, size_t i)
{
    shard *s = &c->shards[i];
    if (s->pending && s->chunked) {
        /* the chunks not acknowledged yet, back to back, the pull riding
         * in the first; a pull whose chunk 0 went before: a PULL of its own */
        for (uint32_t k = 0; k < s->nchunks; k++) {
            if (s->chunk_acked[k])
                continue;
            s->cur_chunk = k;
            int rc = request_make_send(c, o, i, o->type, s->seq);
            if (rc != 0)
                return rc;
        }
        if (s->chunk_acked[0] && s->pull_pending)
            return request_make_send(c, o, i, PS_MSG_PULL, s->pull_seq);
        return 0;
    }
    if (s->pending) /* a pull riding in it goes along (PS_FLAG_PULL) */
        return request_make_send(c, o, i, o->type, s->seq);
    if (s->pull_pending) /* its push was taken before: a PULL of its own */
        return request_make_send(c, o, i, PS_MSG_PULL, s->pull_seq);
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
        return ps_client_shm_pull_accept(c, o, i, m, version, why, cap);
    if (m->encoding != PS_ENC_F32 && bytes > 0 && ps_compress_ops_for_encoding(m->encoding))
        return ps_client_codec_pull_accept(c, o, i, m, version, why, cap);
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
            if ((o->theta = ps_client_theta_buf(c)) == NULL) {
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

/* The batches shard 0 granted in its reply to a push or a LEASE. */
static void lease_take(ps_client *c, const ps_msg *m)
{
    c->got_first = m->lease_first;
    c->got_count = m->lease_count;
    c->got_flags = m->flags & (PS_LEASE_WAIT | PS_LEASE_END);
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
            ps_exchange_fail(c, o, i, PS_EPROTO, "%s: %s", s->endpoint, err.msg);
            return;
        }
    }
    s->pending = false;
}

/* A PULL_REPLY of sparse rows from shard i: its slice of the keys' rows
 * (decoded from a codec) into o->sp_rows, or a SCAN's page. 0, or
 * PS_EPROTO with the sentence in why. */
static int sparse_accept(ps_client *c, op *o, size_t i, const ps_msg *m, char *why, size_t cap)
{
    shard *s = &c->shards[i];
    size_t want = o->scan_max > 0 ? 0 : s->sp_end - s->sp_beg;
    if (m->table != o->table || m->dim != o->dim ||
        (o->scan_max > 0 ? m->nkeys > o->scan_max || !(m->flags & PS_FLAG_SCAN)
                         : m->nkeys != want)) {
        snprintf(why, cap,
                 "%s: PULL_REPLY holds %llu rows of %u floats of table %u, %zu rows of %u floats "
                 "of table %u were asked for",
                 s->endpoint, (unsigned long long)m->nkeys, m->dim, m->table, want, o->dim,
                 o->table);
        return PS_EPROTO;
    }
    size_t n = (size_t)m->nkeys * o->dim;
    const unsigned char *p = m->payload;
    float *out = o->sp_rows + (o->scan_max > 0 ? 0 : s->sp_beg * o->dim);
    if (o->scan_max > 0) {
        memcpy(o->scan_keys, p, (size_t)m->keys_bytes);
        o->scan_n = (size_t)m->nkeys;
        o->scan_next = m->key_hi;
    } else if ((m->flags & PS_FLAG_KEYS_KEPT) && want > 0) {
        s->sp_kept_seq = m->seq; /* the next push of these keys may name this pull */
    }
    if (n > 0) {
        const ps_compress_ops *ops = ps_compress_ops_for_encoding(m->encoding);
        if (ops == NULL) { /* NONE with rows to give: the check let no such reply through */
            snprintf(why, cap, "%s: PULL_REPLY of %zu values has no rows", s->endpoint, n);
            return PS_EPROTO;
        }
        ops->decode(p + m->keys_bytes, (size_t)(m->payload_bytes - m->keys_bytes), out, n);
    }
    return 0;
}

/* Shard s acknowledged the exchange's push (m: its ACK, or the PULL_REPLY
 * of the pull riding in it): counted once, unless it was dropped. */
static void push_acked(shard *s, const ps_msg *m)
{
    if (!(m->flags & PS_ACK_DROPPED) && s->seq > s->counted_seq) {
        s->acked++; /* the shard holds it, applied now or before (DUPLICATE) */
        s->counted_seq = s->seq;
    }
}

/* The first reply to a PUSH with the pull of the next θ riding in it: the
 * pull's PULL_REPLY, whose flags are the push's ACK flags (both answered);
 * or the push's ACK, the pull's reply to follow (with the push's seq), or
 * with a status when the pull was refused. */
static void push_pull_reply_handle(ps_client *c, op *o, size_t i, const ps_msg *m)
{
    shard *s = &c->shards[i];
    if (m->type != PS_MSG_PULL_REPLY && m->type != PS_MSG_ACK) {
        ps_exchange_fail(c, o, i, PS_EPROTO, "%s: PUSH answered with %s", s->endpoint,
                         ps_msg_type_name(m->type));
        return;
    }
    push_acked(s, m);
    ack_accept(o, s, m);
    if (i == 0)
        lease_take(c, m);
    if (m->type == PS_MSG_PULL_REPLY)
        riding_pull_handle(c, o, i, m);
    else if (m->status < 0)
        pull_fail(c, o, i, m->status, "%s: %s", s->endpoint,
                  m->error[0] ? m->error : ps_strerror(m->status));
}

/* A PULL_REPLY of one chunk of θ (pipelined rounds) into o->theta. */
static int chunk_pull_accept(ps_client *c, op *o, size_t i, const ps_msg *m, char *why, size_t cap)
{
    shard *s = &c->shards[i];
    uint64_t lo = 0, hi = 0;
    if (m->chunk < s->nchunks)
        ps_client_chunk_range(s, m->chunk, &lo, &hi);
    size_t n = (size_t)(hi - lo);
    const ps_compress_ops *ops = ps_compress_ops_for_encoding(m->encoding);
    if (m->chunks != s->nchunks || m->chunk >= s->nchunks || m->key_lo != lo || m->key_hi != hi ||
        ops == NULL || (m->encoding == PS_ENC_F32 && m->payload_bytes != n * sizeof(float)) ||
        (n > 0 && m->payload == NULL)) {
        snprintf(why, cap,
                 "%s: PULL_REPLY of chunk %u of %u with keys [%llu, %llu) in encoding %d is not "
                 "one of this shard's %u chunks",
                 s->endpoint, m->chunk, m->chunks, (unsigned long long)m->key_lo,
                 (unsigned long long)m->key_hi, (int)m->encoding, s->nchunks);
        return PS_EPROTO;
    }
    if (s->chunk_pulled[m->chunk])
        return 0; /* sent again (a retry of the pull): it has come */
    if (o->theta == NULL && (o->theta = ps_client_theta_buf(c)) == NULL) {
        snprintf(why, cap, "out of memory for θ");
        return PS_ENOMEM;
    }
    if (m->encoding == PS_ENC_F32)
        memcpy(o->theta + lo, m->payload, n * sizeof(float));
    else
        ops->decode(m->payload, (size_t)m->payload_bytes, o->theta + lo, n);
    o->view_out = NULL;
    s->chunk_pulled[m->chunk] = 1;
    if (--s->pulls_left == 0) {
        s->theta_version = m->model_version;
        if (m->model_version < o->pull_version)
            o->pull_version = m->model_version;
        s->pull_pending = false;
    }
    return 0;
}

/* A reply to a push sent a chunk at a time (s->chunked): the ACK of one
 * chunk, a chunk of θ for the riding pull, or the pull's reply whole. */
static void chunked_reply_handle(ps_client *c, op *o, size_t i, const ps_msg *m)
{
    shard *s = &c->shards[i];
    char why[PS_ERROR_MSG_MAX];
    if (m->type == PS_MSG_ERROR) {
        int code = m->status < 0 ? m->status : PS_ESERVER;
        ps_exchange_fail(c, o, i, code, "%s: %s", s->endpoint,
                         m->error[0] ? m->error : ps_strerror(code));
        return;
    }
    uint32_t acked = UINT32_MAX; /* the chunk whose push this reply acknowledges */
    if (m->type == PS_MSG_ACK) {
        acked = m->chunk;
        if (m->status < 0 && s->pull_pending)
            pull_fail(c, o, i, m->status, "%s: %s", s->endpoint,
                      m->error[0] ? m->error : ps_strerror(m->status));
    } else if (m->type == PS_MSG_PULL_REPLY && (m->flags & PS_FLAG_CHUNK)) {
        int code = chunk_pull_accept(c, o, i, m, why, sizeof why);
        if (code != 0)
            ps_exchange_fail(c, o, i, code, "%s", why);
        return;
    } else if (m->type == PS_MSG_PULL_REPLY) {
        /* θ whole: the answer to the push of chunk 0 and its pull at once
         * (its flags are that push's ACK's), or to a PULL of its own */
        if (s->pending && !s->chunk_acked[0])
            acked = 0;
        if (s->pull_pending) {
            riding_pull_handle(c, o, i, m);
            memset(s->chunk_pulled, 1, s->nchunks);
        }
    } else {
        ps_exchange_fail(c, o, i, PS_EPROTO, "%s: PUSH answered with %s", s->endpoint,
                         ps_msg_type_name(m->type));
        return;
    }
    if (acked == UINT32_MAX || !s->pending)
        return;
    if (acked >= s->nchunks) {
        ps_exchange_fail(c, o, i, PS_EPROTO, "%s: ACK of chunk %u, the shard has %u", s->endpoint,
                         acked, s->nchunks);
        return;
    }
    if (s->chunk_acked[acked])
        return;
    s->chunk_acked[acked] = 1;
    s->chunk_flags |= m->flags;
    if (m->model_version < o->version)
        o->version = m->model_version;
    if (--s->acks_left > 0)
        return;
    ps_msg all = {.flags = s->chunk_flags};
    push_acked(s, &all);
    o->flags |= s->chunk_flags;
    s->pending = false;
}

/* One decoded reply from shard i: dropped when it answers an older request,
 * else it ends the shard's part of the exchange. */
static void reply_handle(ps_client *c, op *o, size_t i, const ps_msg *m)
{
    shard *s = &c->shards[i];
    if (m->type == PS_MSG_ERROR && ps_client_code_is_final(m->status)) {
        /* whatever its seq: the server stopped, or the job did */
        ps_client_final_set(c, m->status, s->endpoint, m->error);
        ps_exchange_fail(c, o, i, m->status, "%s", c->final_why);
        return;
    }
    if (s->chunked && (s->pending || s->pull_pending) && m->seq == s->seq) {
        chunked_reply_handle(c, o, i, m);
        return;
    }
    if (s->pull_pending && !s->pending && m->seq == s->pull_seq) {
        riding_pull_handle(c, o, i, m);
        return;
    }
    if (!s->pending || m->seq != s->seq) {
        c->stale_replies++;
        return;
    }
    if (m->type == PS_MSG_ERROR) {
        int code = m->status < 0 ? m->status : PS_ESERVER;
        ps_exchange_fail(c, o, i, code, "%s: %s", s->endpoint,
                         m->error[0] ? m->error : ps_strerror(code));
        return;
    }
    if (o->type == PS_MSG_PUSH && s->pull_pending) {
        push_pull_reply_handle(c, o, i, m);
        return;
    }
    if (m->type != o->reply) {
        ps_exchange_fail(c, o, i, PS_EPROTO, "%s: %s answered with %s", s->endpoint,
                         ps_msg_type_name(o->type), ps_msg_type_name(m->type));
        return;
    }
    switch (m->type) {
    case PS_MSG_WELCOME:
        ps_membership_welcome(c, o, i, m);
        break;
    case PS_MSG_PULL_REPLY: {
        char why[PS_ERROR_MSG_MAX];
        int code = o->table > 0 ? sparse_accept(c, o, i, m, why, sizeof why)
                                : pull_accept(c, o, i, m, &o->version, why, sizeof why);
        if (code != 0)
            ps_exchange_fail(c, o, i, code, "%s", why);
        else
            s->pending = false;
        break;
    }
    case PS_MSG_STATUS_REPLY:
        status_accept(c, o, i, m);
        break;
    case PS_MSG_LEASE_REPLY:
        lease_take(c, m);
        s->pending = false;
        break;
    default:
        if (o->type == PS_MSG_PUSH && o->table == 0) /* a step's count is its dense push */
            push_acked(s, m);
        if (o->type == PS_MSG_PUSH && o->table == 0 && i == 0)
            lease_take(c, m);
        ack_accept(o, s, m);
        break;
    }
}

/* Reads every reply waiting on shard i's socket. A reply that does not
 * decode is dropped and counted. */
static int shard_drain(ps_client *c, op *o, size_t i, int wait_ms)
{
    shard *s = &c->shards[i];
    int flags = ZMQ_DONTWAIT;
    if (wait_ms > 0) {
        zmq_setsockopt(s->sock, ZMQ_RCVTIMEO, &wait_ms, sizeof wait_ms);
        flags = 0;
    }
    for (;;) {
        int rc = ps_wire_recv(s->sock, false, flags, &c->frames, &c->rep, &c->err);
        int e = errno;
        flags = ZMQ_DONTWAIT;
        if (rc != PS_EZMQ)
            atomic_store(&s->last_answer_ms, ps_clock_ms());
        if (rc == 0)
            reply_handle(c, o, i, &c->rep);
        else if (rc != PS_EZMQ)
            c->bad_replies++;
        ps_frames_close(&c->frames);
        /* a later reply (stale by then) waits for the next exchange's drain */
        if (rc != PS_EZMQ && !s->pending && !s->pull_pending)
            return 0;
        if (rc != PS_EZMQ)
            continue;
        if (e == EAGAIN)
            return 0;
        if (e == EINTR)
            return wait_ms > 0 ? PS_EINTR : 0; /* the poll loop notices a signal */
        return ps_client_fail(c, PS_EZMQ, "%s: receive: %s", s->endpoint, zmq_strerror(e));
    }
}

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
            ps_client_log(c, 1, "%s: no answer for %llu ms, waiting up to %d ms", s->endpoint,
                          (unsigned long long)(now - last), c->timeout_ms);
        } else if (s->silent_logged && last > s->silent_from_ms) {
            s->silent_logged = false;
            ps_client_log(c, 0, "%s: answers again after %llu ms", s->endpoint,
                          (unsigned long long)(last - s->silent_from_ms));
        }
    }
}

/* Ends the part of every asked shard whose heartbeat was answered "not
 * registered" since our latest registration there: the caller registers
 * again. True when there was one. */
static bool lost_by_heartbeat(shard *s)
{
    uint32_t lost = atomic_load(&s->hb_lost_gen);
    return lost != 0 && lost == atomic_load(&s->reg_gen);
}

static bool shards_lost_fail(ps_client *c, op *o)
{
    bool any = false;
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];
        if (!s->asked || !lost_by_heartbeat(s))
            continue;
        ps_exchange_fail(c, o, i, PS_EWORKER,
                         "%s: worker %u is not registered (a heartbeat was told)", s->endpoint,
                         s->worker_id);
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
        return ps_client_fail(c, PS_ETIMEDOUT, "%s", why);
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
int ps_exchange_run(ps_client *c, op *o, bool resend, int timeout_ms)
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
        /* a new seq is past every seq sent before, so a late reply is told
         * apart; a push sent again after a registration keeps its seq, so a
         * shard that applied it before (and kept that, across a restart)
         * acknowledges it as a duplicate instead of applying it twice */
        if (o->type == PS_MSG_PUSH && o->same_seq && s->push_seq != 0) {
            s->seq = s->push_seq;
            /* it was acknowledged before the shard lost us (by another
             * shard's failure, or a heartbeat's news): the push is not sent
             * again. A restart that rolled it back said so in its WELCOME,
             * and the caller trains its batch again; sending it again would
             * apply it twice */
            if (s->counted_seq >= s->push_seq)
                s->pending = false;
        } else {
            s->seq = ++s->seq_max;
        }
        if (o->type == PS_MSG_PUSH) {
            s->push_seq = s->seq;
            o->push_sent = true;
        }
        /* the pull of the next θ rides in the push, with its seq (after the
         * push's ACK it is sent again as a PULL of that seq); behind a push
         * not sent again it is a PULL of its own */
        s->pull_seq = !o->then_pull ? 0 : s->pending ? s->seq : ++s->seq_max;
        /* pipelined: a sync push with the next θ riding behind it, over
         * the socket, goes a chunk at a time (encoded so, when compressed) */
        s->chunked = o->type == PS_MSG_PUSH && o->table == 0 && o->then_pull && s->pending &&
                     ps_client_chunks_on(c, s) && (!s->enc_ready || s->enc_chunked);
        if (s->chunked) {
            memset(s->chunk_acked, 0, s->nchunks);
            memset(s->chunk_pulled, 0, s->nchunks);
            s->acks_left = s->pulls_left = s->nchunks;
            s->chunk_flags = 0;
        }
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
        int rc = ps_client_final_check(c);
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
        if (n == 1 && wait_ms > 0) {
            /* one shard left to hear from: wait in its receive, which
             * takes fewer calls into the kernel than a poll and a receive */
            rc = shard_drain(c, o, c->item_shard[0], (int)wait_ms);
            if (rc == PS_EINTR)
                return ps_client_fail(c, PS_EINTR, "interrupted while awaiting %s replies",
                                      ps_msg_type_name(o->reply));
            if (rc != 0)
                return rc;
            continue;
        }
        if (zmq_poll(c->items, (int)n, (long)wait_ms) < 0) {
            if (errno == EINTR)
                return ps_client_fail(c, PS_EINTR, "interrupted while awaiting %s replies",
                                      ps_msg_type_name(o->reply));
            return ps_client_fail(c, PS_EZMQ, "poll: %s", zmq_strerror(errno));
        }
        for (size_t k = 0; k < n; k++) {
            if (!(c->items[k].revents & ZMQ_POLLIN))
                continue;
            rc = shard_drain(c, o, c->item_shard[k], 0);
            if (rc != 0)
                return rc;
        }
    }
    if (o->rc != 0)
        return o->rc;
    return op_timed_out(c, o, late, timeout_ms, sends);
}

void ps_exchange_mark(ps_client *c, bool all, bool registered_only)
{
    for (size_t i = 0; i < c->nshards; i++)
        c->shards[i].asked = all && (!registered_only || c->shards[i].registered);
}

/* Makes shard s's socket anew: a new connection (closing the old one,
 * linger 0, drops its queue). One that cannot be made stays NULL, and
 * requests to the shard then fail. */
static void socket_renew(ps_client *c, shard *s)
{
    if (s->sock != NULL)
        zmq_close(s->sock);
    s->sock = NULL;
    if (ps_client_socket_open(c, s) != 0 && s->sock != NULL) {
        zmq_close(s->sock);
        s->sock = NULL;
    }
    ps_client_log(c, 0, "%s: registering again on a new connection", s->endpoint);
}

/* Runs a PULL, PUSH or HEARTBEAT exchange with every shard. A shard that
 * answers "unknown worker" (or whose heartbeat was told so, which is looked
 * at before anything is sent) restarted or evicted us (docs/architecture.md#the-failure-model): say
 * HELLO to it again with our rank (and DONE again if we had said it). In
 * sync mode the exchange then ends with PS_EREJOINED, since the shard's
 * rounds may have moved or gone back: the caller goes on from
 * ps_client_rejoin_version. Otherwise (async, a DONE heartbeat, the pull of
 * the final θ) the request is sent once more. */
int ps_exchange_all(ps_client *c, op *o)
{
    int rc = ps_client_final_check(c);
    if (rc != 0)
        return rc;
    ps_exchange_mark(c, true, false);
    for (size_t i = 0; i < c->nshards; i++) {
        c->shards[i].status = 0;
        c->shards[i].pending = c->shards[i].pull_pending = false;
    }
    o->rc = 0;
    if (shards_lost_fail(c, o)) {
        rc = o->rc;
    } else {
        rc = ps_exchange_run(c, o, true, c->timeout_ms);
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
    /* a heartbeat found us lost, after a silence that got us evicted: its
     * socket reconnected on its own (heartbeat.c), this one's connection
     * may wait seconds more for TCP's retransmission timer: register on a
     * fresh one at once (what ZeroMQ still queued on the old one is dropped,
     * and sent again after the WELCOME) */
    for (size_t i = 0; i < c->nshards; i++)
        if (c->shards[i].asked && lost_by_heartbeat(&c->shards[i]))
            socket_renew(c, &c->shards[i]);
    op hello = {
        .type = PS_MSG_HELLO, .reply = PS_MSG_WELCOME, .rank = c->rank, .version = UINT64_MAX};
    rc = ps_exchange_run(c, &hello, false, c->timeout_ms);
    if (rc != 0)
        return rc;
    c->rejoin_version = hello.version;
    if (c->done) {
        op done = {.type = PS_MSG_HEARTBEAT,
                   .reply = PS_MSG_ACK,
                   .flags = PS_FLAG_DONE,
                   .version = UINT64_MAX};
        ps_exchange_mark(c, true, false);
        if ((rc = ps_exchange_run(c, &done, true, c->timeout_ms)) != 0)
            return rc;
    }
    bool final_pull = o->type == PS_MSG_PULL && o->min_version == PS_VERSION_FINAL;
    bool done_beat = o->type == PS_MSG_HEARTBEAT && (o->flags & PS_FLAG_DONE);
    if (c->mode_desc->rounds && !final_pull && !done_beat)
        return ps_client_fail(c, PS_EREJOINED, "registered again with shard %zu at round %llu",
                              first, (unsigned long long)hello.version);
    ps_exchange_mark(c, true, false);
    /* only a push that went out keeps its seq: one never sent (a heartbeat
     * found us lost first) takes a new one, or it would pass for the push
     * before it */
    o->same_seq = o->type == PS_MSG_PUSH && o->push_sent;
    return ps_exchange_run(c, o, true, c->timeout_ms);
}
