/* engine.c — one shard's protocol state machine. Requests arrive decoded;
 * every path ends in exactly one reply (or parks a pull, answered later).
 * Checks come before any change, so a refused request changes nothing but
 * the error counters. Every buffer is allocated in ps_engine_new. */
#include "engine_impl.h"

#include "compress.h"
#include "store.h"
#include "util.h"
#include "wire.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* ---- replies ---------------------------------------------------------- */

static ps_msg *reply_begin(ps_engine *e, ps_msg_type type, const ps_msg *req)
{
    ps_msg *r = &e->reply;
    ps_msg_init(r, type);
    r->job = e->job.name;
    r->seq = req->seq;
    r->worker_id = req->worker_id;
    r->shard_index = e->shard;
    r->model_version = e->version;
    return r;
}

static void reply_send(ps_engine *e, const peer *p, const void *payload)
{
    int rc = p->send(p->ctx, p->identity, p->identity_len, &e->reply, payload);
    uint32_t rank = e->reply.worker_id & RANK_MASK;
    if (rank < e->job.workers && e->slots[rank].worker_id == e->reply.worker_id)
        e->slots[rank].answered_ms = e->now_ms; /* see handle_heartbeat */
    if (rc != 0)
        PS_LOG_D(e->log, "shard %u: %s reply not sent: %s", e->shard,
                 ps_msg_type_name(e->reply.type), ps_strerror(rc));
}

/* Replies ERROR (code, sentence) to req and counts it. Logged at warn the
 * 1st, 2nd, 4th, 8th ... time a code is seen, at debug otherwise, so a
 * misbehaving client cannot flood the log. */

int ps_engine_refuse(ps_engine *e, const peer *p, const ps_msg *req, int code, const char *fmt, ...)
{
    ps_msg *r = reply_begin(e, PS_MSG_ERROR, req);
    r->status = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->error_text, sizeof e->error_text, fmt, ap);
    va_end(ap);
    r->error = e->error_text;
    uint64_t n = 0;
    if (code < 0 && code > -ERROR_CODES)
        n = ++e->errors[-code];
    e->errors_total++;
    ps_log_level level = (n & (n - 1)) == 0 && code != e->stop_code ? PS_LOG_WARN : PS_LOG_DEBUG;
    ps_log_write(e->log, level,
                 "shard %u: refused %s from worker %u (seq %llu): %s (%s, %llu so far)", e->shard,
                 ps_msg_type_name(req->type), req->worker_id, (unsigned long long)req->seq,
                 r->error, ps_err_name(code), (unsigned long long)n);
    reply_send(e, p, NULL);
    return code;
}

/* The batches granted to the push being answered (data.assign: dynamic),
 * into its reply r. */
static void grant_put(const ps_engine *e, ps_msg *r)
{
    const worker_slot *w = e->grant_on;
    if (w == NULL)
        return;
    r->lease_first = w->grant_first;
    r->lease_count = w->grant_count;
    r->flags |= w->grant_flags;
}

static int ack(ps_engine *e, const peer *p, const ps_msg *req, uint32_t flags)
{
    ps_msg *r = reply_begin(e, PS_MSG_ACK, req);
    r->flags = flags;
    grant_put(e, r);
    if (req->type == PS_MSG_PUSH && (req->flags & PS_FLAG_CHUNK)) {
        r->chunk = req->chunk; /* which chunk's push it answers */
        r->chunks = req->chunks;
    }
    reply_send(e, p, NULL);
    return 0;
}

/* A PUSH whose push was handled but whose riding pull cannot wait (too
 * many parked): an ACK with the push's flags, carrying the pull's refusal
 * (counted as an error). */
static int ack_refused_pull(ps_engine *e, const peer *p, const ps_msg *req, uint32_t flags)
{
    ps_msg *r = reply_begin(e, PS_MSG_ACK, req);
    r->flags = flags;
    if (req->flags & PS_FLAG_CHUNK) {
        r->chunk = req->chunk;
        r->chunks = req->chunks;
    }
    r->status = PS_EFULL;
    snprintf(e->error_text, sizeof e->error_text,
             "%zu pulls are waiting already (limit %zu): the push was taken, its pull was not",
             e->nparked, e->parked_cap);
    r->error = e->error_text;
    grant_put(e, r);
    e->errors[-PS_EFULL]++;
    e->errors_total++;
    PS_LOG_D(e->log, "shard %u: worker %u (seq %llu): %s", e->shard, req->worker_id,
             (unsigned long long)req->seq, e->error_text);
    reply_send(e, p, NULL);
    return 0;
}

static bool pull_ready_now(const ps_engine *e, uint64_t min_version, uint64_t clock);
static int pull_answer(ps_engine *e, const peer *p, uint32_t worker_id, uint64_t seq,
                       uint64_t key_lo, uint64_t key_hi, uint32_t flags, uint64_t min_version,
                       uint32_t ack_flags);
static int pull_park(ps_engine *e, const peer *p, const ps_msg *req, uint64_t min_version,
                     uint64_t clock);

/* The push of req is handled (applied or accumulated, or with flags
 * DUPLICATE or DROPPED): its ACK. When a pull rides in it (PS_FLAG_PULL)
 * and may be answered now, the ACK travels in the pull's PULL_REPLY (its
 * flags); when it must wait, the ACK goes now and the pull is parked. */
int ps_engine_push_done(ps_engine *e, const peer *p, const ps_msg *req, uint32_t flags)
{
    int rc;
    bool moved = false;
    if (!(req->flags & PS_FLAG_PULL))
        rc = ack(e, p, req, flags);
    else {
        worker_slot *w = ps_engine_worker_find(e, req->worker_id);
        moved = w != NULL && ps_engine_ssp_reach(e, w, req->pull_clock);
        /* the pull riding in a chunk's push is a pull of the whole shard */
        uint64_t klo = req->flags & PS_FLAG_CHUNK ? e->lo : req->key_lo;
        uint64_t khi = req->flags & PS_FLAG_CHUNK ? e->hi : req->key_hi;
        if (pull_ready_now(e, req->min_version, req->pull_clock))
            rc = pull_answer(e, p, req->worker_id, req->seq, klo, khi, req->flags, req->min_version,
                             flags);
        else if (pull_park(e, p, req, req->min_version, req->pull_clock) != 0)
            rc = ack_refused_pull(e, p, req, flags);
        else
            rc = ack(e, p, req, flags);
    }
    e->grant_on = NULL; /* the grant went with this reply only */
    if (moved)
        ps_engine_parked_answer(e, p->send, p->ctx);
    return rc;
}

/* ---- workers ---------------------------------------------------------- */

worker_slot *ps_engine_worker_find(ps_engine *e, uint32_t worker_id)
{
    uint32_t rank = worker_id & RANK_MASK;
    if (rank >= e->job.workers)
        return NULL;
    worker_slot *w = &e->slots[rank];
    if (w->state != SLOT_LIVE || w->worker_id != worker_id)
        return NULL;
    w->last_seen_ms = e->now_ms;
    return w;
}

/* True while some worker could still advance the version: the job's
 * workers minus those that left. */
static bool workers_remain(const ps_engine *e)
{
    return e->departed < e->job.workers;
}

/* ---- pulls ------------------------------------------------------------ */

/* θ of the whole shard in the pull codec, encoded at most once per
 * version; NULL when θ is not finite (then it goes out as float32). */
static const void *pull_encoded(ps_engine *e)
{
    if (!e->pull_enc_valid || e->pull_enc_version != e->version) {
        size_t n = ps_store_size(e->store);
        e->pull_enc_valid =
            e->pull_ops->encode(ps_store_data(e->store), n, 0, e->pull_enc, NULL) == 0;
        e->pull_enc_version = e->version;
        e->pull_encodings++;
        if (!e->pull_enc_valid)
            return NULL;
    }
    return e->pull_enc_valid ? e->pull_enc : NULL;
}

/* Pulls of the whole shard go out in the pull codec, except the final θ
 * (the model a worker saves) and θ answered in shared memory. */
static bool pull_compressed(const ps_engine *e, uint64_t key_lo, uint64_t key_hi, uint32_t flags,
                            uint64_t min_version)
{
    return e->pull_ops != NULL && key_lo == e->lo && key_hi == e->hi && key_hi > key_lo &&
           !(flags & PS_FLAG_SHM) && min_version != PS_VERSION_FINAL;
}

/* The PULL_REPLY to a pull (flags: the request's); ack_flags: the ACK
 * flags of the push it rode in, 0 for a PULL of its own. */
static int pull_answer(ps_engine *e, const peer *p, uint32_t worker_id, uint64_t seq,
                       uint64_t key_lo, uint64_t key_hi, uint32_t flags, uint64_t min_version,
                       uint32_t ack_flags)
{
    ps_msg *r = &e->reply;
    ps_msg_init(r, PS_MSG_PULL_REPLY);
    r->job = e->job.name;
    r->flags = ack_flags;
    r->seq = seq;
    r->worker_id = worker_id;
    r->shard_index = e->shard;
    r->model_version = e->version;
    r->key_lo = key_lo;
    r->key_hi = key_hi;
    grant_put(e, r);
    const void *payload = NULL;
    if (pull_compressed(e, key_lo, key_hi, flags, min_version) &&
        (payload = pull_encoded(e)) != NULL) {
        r->encoding = e->pull_ops->encoding;
        r->payload_bytes = e->pull_enc_bytes;
    } else if (key_hi > key_lo) {
        r->encoding = PS_ENC_F32;
        r->payload_bytes = (key_hi - key_lo) * sizeof(float);
        payload = ps_store_data(e->store) + (key_lo - e->lo);
    }
    e->pulls++;
    reply_send(e, p, payload);
    return 0;
}

/* Answers the parked pulls whose version has come, or all of them when no
 * worker is left that could advance the version. */
void ps_engine_parked_answer(ps_engine *e, ps_engine_send_fn send, void *ctx)
{
    bool all = !workers_remain(e);
    /* the mode's rule is monotone in both: when it refuses the least of
     * each, it refuses every parked pull, and none need be looked at; while
     * a round is part applied θ is no version: every pull waits */
    if (e->nparked == 0 || e->chunks_applied > 0 ||
        (!all && !e->ops->pull_ready(e, e->parked_version_min, e->parked_clock_min)))
        return;
    size_t keep = 0;
    uint64_t version_min = UINT64_MAX, clock_min = UINT64_MAX;
    for (size_t i = 0; i < e->nparked; i++) {
        parked_pull *q = &e->parked[i];
        if (all || e->ops->pull_ready(e, q->min_version, q->clock)) {
            peer p = {q->identity, q->identity_len, send, ctx};
            uint32_t rank = q->worker_id & RANK_MASK;
            if (rank < e->job.workers && e->slots[rank].nparked > 0)
                e->slots[rank].nparked--;
            if (q->chunks_sent > 0 && q->chunks_sent >= e->nchunks)
                e->pulls++; /* answered chunk by chunk already */
            else
                (void)pull_answer(e, &p, q->worker_id, q->seq, q->key_lo, q->key_hi, q->flags,
                                  q->min_version, 0);
        } else {
            if (q->min_version < version_min)
                version_min = q->min_version;
            if (q->clock < clock_min)
                clock_min = q->clock;
            if (keep != i)
                e->parked[keep] = *q;
            keep++;
        }
    }
    e->nparked = keep;
    e->parked_version_min = version_min;
    e->parked_clock_min = clock_min;
}

/* True when a pull (min_version, the puller's clock) may be answered now:
 * its mode's rule, or no worker is left that could advance the version. */
static bool pull_ready_now(const ps_engine *e, uint64_t min_version, uint64_t clock)
{
    if (e->chunks_applied > 0) /* a round part applied: θ is no version yet */
        return false;
    return e->ops->pull_ready(e, min_version, clock) || !workers_remain(e);
}

void ps_engine_chunk_answer(ps_engine *e, parked_pull *q, uint32_t c, ps_engine_send_fn send,
                            void *ctx)
{
    uint64_t klo, khi;
    ps_engine_chunk_range(e, c, &klo, &khi);
    ps_msg *r = &e->reply;
    ps_msg_init(r, PS_MSG_PULL_REPLY);
    r->job = e->job.name;
    r->flags = PS_FLAG_CHUNK;
    r->chunk = c;
    r->chunks = e->nchunks;
    r->seq = q->seq;
    r->worker_id = q->worker_id;
    r->shard_index = e->shard;
    r->model_version = e->version + 1; /* the chunk of the version being applied */
    r->key_lo = klo;
    r->key_hi = khi;
    const void *payload;
    if (e->chunk_enc != NULL && e->chunk_enc_ok[c] && !(q->flags & PS_FLAG_SHM)) {
        r->encoding = e->pull_ops->encoding;
        r->payload_bytes = e->chunk_enc_off[c + 1] - e->chunk_enc_off[c];
        payload = e->chunk_enc + e->chunk_enc_off[c];
    } else {
        r->encoding = PS_ENC_F32;
        r->payload_bytes = (khi - klo) * sizeof(float);
        payload = ps_store_data(e->store) + (klo - e->lo);
    }
    e->chunk_replies++;
    peer p = {q->identity, q->identity_len, send, ctx};
    reply_send(e, &p, payload);
}

/* A pull parked while a round is part applied: the chunks of the next
 * version applied so far (when it takes chunks and waits for that
 * version). */
static void pull_chunks_catch_up(ps_engine *e, parked_pull *q, const peer *p)
{
    if (e->chunks_applied == 0 || !(q->flags & PS_FLAG_CHUNK) || q->min_version != e->version + 1 ||
        q->key_lo != e->lo || q->key_hi != e->hi)
        return;
    q->chunks_sent = 0;
    for (uint32_t c = 0; c < e->nchunks; c++) {
        if (!e->chunk_done[c])
            continue;
        ps_engine_chunk_answer(e, q, c, p->send, p->ctx);
        q->chunks_sent++;
    }
}

/* Parks a checked pull of req's keys until pull_ready_now (a retry of a
 * parked one only moves where its answer goes); PS_EFULL when too many
 * wait already. */
static int pull_park(ps_engine *e, const peer *p, const ps_msg *req, uint64_t min_version,
                     uint64_t clock)
{
    uint32_t rank = req->worker_id & RANK_MASK;
    worker_slot *w = rank < e->job.workers ? &e->slots[rank] : NULL;
    for (size_t i = 0; w != NULL && w->nparked > 0 && i < e->nparked; i++) {
        parked_pull *q = &e->parked[i];
        if (q->worker_id == req->worker_id && q->seq == req->seq) {
            /* a retry of a parked pull: answer it once, where it came from last */
            size_t n = p->identity_len < sizeof q->identity ? p->identity_len : sizeof q->identity;
            memcpy(q->identity, p->identity, n);
            q->identity_len = n;
            pull_chunks_catch_up(e, q, p); /* what went may be lost: again */
            return 0;
        }
    }
    /* a round part applied: the pull waits for its end, or for its chunks */
    if (e->chunks_applied > 0 && min_version <= e->version)
        min_version = e->version + 1;
    if (e->nparked == e->parked_cap)
        return PS_EFULL;
    parked_pull *q = &e->parked[e->nparked++];
    size_t n = p->identity_len < sizeof q->identity ? p->identity_len : sizeof q->identity;
    memcpy(q->identity, p->identity, n);
    q->identity_len = n;
    q->worker_id = req->worker_id;
    q->seq = req->seq;
    bool riding_chunk = req->type == PS_MSG_PUSH && (req->flags & PS_FLAG_CHUNK);
    q->key_lo = riding_chunk ? e->lo : req->key_lo;
    q->key_hi = riding_chunk ? e->hi : req->key_hi;
    q->min_version = min_version;
    q->clock = clock;
    q->flags = req->flags;
    q->chunks_sent = 0;
    if (w != NULL)
        w->nparked++;
    if (min_version < e->parked_version_min)
        e->parked_version_min = min_version;
    if (clock < e->parked_clock_min)
        e->parked_clock_min = clock;
    pull_chunks_catch_up(e, q, p);
    return 0;
}

static int handle_pull(ps_engine *e, const peer *p, const ps_msg *req)
{
    if (req->table > 0)
        return ps_engine_sparse_pull(e, p, req);
    worker_slot *w = ps_engine_worker_find(e, req->worker_id);
    if (w == NULL)
        return ps_engine_refuse(e, p, req, PS_EWORKER, "worker %u is not registered with shard %u",
                                req->worker_id, e->shard);
    if (req->encoding != PS_ENC_NONE)
        return ps_engine_refuse(e, p, req, PS_EPAYLOAD, "a PULL carries no payload");
    if (req->key_lo > req->key_hi || req->key_lo < e->lo || req->key_hi > e->hi)
        return ps_engine_refuse(e, p, req, PS_ERANGE,
                                "keys [%llu, %llu) are outside shard %u [%llu, %llu)",
                                (unsigned long long)req->key_lo, (unsigned long long)req->key_hi,
                                e->shard, (unsigned long long)e->lo, (unsigned long long)e->hi);
    bool moved = ps_engine_ssp_reach(e, w, req->clock);
    int rc = 0;
    if (pull_ready_now(e, req->min_version, req->clock))
        rc = pull_answer(e, p, req->worker_id, req->seq, req->key_lo, req->key_hi, req->flags,
                         req->min_version, 0);
    else if (pull_park(e, p, req, req->min_version, req->clock) != 0)
        rc = ps_engine_refuse(e, p, req, PS_EFULL, "%zu pulls are waiting already (limit %zu)",
                              e->nparked, e->parked_cap);
    if (moved)
        ps_engine_parked_answer(e, p->send, p->ctx);
    return rc;
}

/* ---- pushes ----------------------------------------------------------- */

bool ps_engine_push_answered(ps_engine *e, const peer *p, const ps_msg *req, worker_slot *w,
                             int *rc)
{
    if (w->has_seq && req->seq <= w->last_seq) {
        e->duplicates++;
        w->duplicates++;
        *rc = ps_engine_push_done(e, p, req, PS_ACK_DUPLICATE);
        return true;
    }
    if (w->done) {
        *rc = ps_engine_refuse(e, p, req, PS_ESTATE, "rank %d said it had pushed its last gradient",
                               ps_engine_worker_slot_rank(e, w));
        return true;
    }
    return false;
}

bool ps_engine_round_screen(ps_engine *e, const peer *p, const ps_msg *req, worker_slot *w, int *rc)
{
    if (req->clock < e->version) {
        e->dropped++;
        w->dropped++;
        *rc = ps_engine_push_done(e, p, req, PS_ACK_DROPPED);
        return true;
    }
    if (req->clock > e->version) {
        *rc = ps_engine_refuse(e, p, req, PS_ECLOCK,
                               "push for round %llu, but round %llu is open (this shard runs mode "
                               "sync: is the worker's job file of another mode?)",
                               (unsigned long long)req->clock, (unsigned long long)e->version);
        return true;
    }
    return false;
}

/* ---- the batch queue (data.assign: dynamic, shard 0) ------------------ */

/* The queue sized as the worker counts its epochs; PS_ECONFIG refused. */
static bool queue_sized(ps_engine *e, const peer *p, const ps_msg *req, int *rc)
{
    ps_error why;
    int q = ps_batchq_size(e->bq, req->epoch_batches, &why);
    if (q == 0)
        return true;
    *rc = ps_engine_refuse(e, p, req, q == PS_ENOMEM ? PS_ENOMEM : PS_ECONFIG, "%s", why.msg);
    return false;
}

/* Leases up to want batches to w for the request of this seq (a retry of
 * the request that got the last grant gets that one again), and makes it
 * the grant the reply carries. */
static void grant_make(ps_engine *e, worker_slot *w, uint64_t seq, uint32_t want)
{
    if (!w->has_grant || w->grant_seq != seq) {
        ps_batchq_lease(e->bq, (uint32_t)ps_engine_worker_slot_rank(e, w), want, &w->grant_first,
                        &w->grant_count, &w->grant_flags);
        w->has_grant = true;
        w->grant_seq = seq;
    }
    e->grant_on = w;
}

/* A push naming its batch, or asking for leases: the batch is marked
 * trained now (once: a push of a batch trained already is dropped, not
 * applied), and the reply carries the batches granted. True when the push
 * was answered here, *rc the handler's result. */
static bool batch_screen(ps_engine *e, const peer *p, const ps_msg *req, worker_slot *w, int *rc)
{
    e->grant_on = NULL;
    if (e->bq == NULL || (req->batch == 0 && req->lease_count == 0) || w->done)
        return false;
    if (w->has_seq && req->seq <= w->last_seq) { /* a retry: answered DUPLICATE, with its grant */
        if (w->has_grant && w->grant_seq == req->seq)
            e->grant_on = w;
        return false;
    }
    if (!queue_sized(e, p, req, rc))
        return true;
    uint32_t rank = (uint32_t)ps_engine_worker_slot_rank(e, w);
    if (req->batch > 0) {
        int d = ps_batchq_done(e->bq, rank, req->batch - 1);
        if (d == PS_ERANGE) {
            *rc = ps_engine_refuse(e, p, req, PS_ERANGE,
                                   "batch %llu is not of the epoch open (%u of %u)",
                                   (unsigned long long)(req->batch - 1), ps_batchq_epoch(e->bq) + 1,
                                   e->job.training.epochs);
            return true;
        }
        if (d == 1) { /* trained already: by a push before, this one's or another's */
            e->dropped++;
            w->dropped++;
            grant_make(e, w, req->seq, req->lease_count);
            *rc = ps_engine_push_done(e, p, req, PS_ACK_DROPPED);
            return true;
        }
    }
    grant_make(e, w, req->seq, req->lease_count);
    return false;
}

/* A LEASE: batches of the queue for the worker, or none (WAIT, END). */
static int handle_lease(ps_engine *e, const peer *p, const ps_msg *req)
{
    worker_slot *w = ps_engine_worker_find(e, req->worker_id);
    if (w == NULL)
        return ps_engine_refuse(e, p, req, PS_EWORKER, "worker %u is not registered with shard %u",
                                req->worker_id, e->shard);
    if (e->bq == NULL)
        return ps_engine_refuse(
            e, p, req, PS_ESTATE,
            "shard %u keeps no batch queue (data.assign: dynamic, shard 0 only)", e->shard);
    int rc;
    if (!queue_sized(e, p, req, &rc))
        return rc;
    grant_make(e, w, req->seq, req->lease_count);
    e->grant_on = NULL;
    ps_msg *r = reply_begin(e, PS_MSG_LEASE_REPLY, req);
    r->lease_first = w->grant_first;
    r->lease_count = w->grant_count;
    r->flags = w->grant_flags;
    reply_send(e, p, NULL);
    return 0;
}

/* The leases of a rank whose worker is gone before its data was done go
 * back to the queue. */
static void leases_release(ps_engine *e, worker_slot *w)
{
    if (e->bq == NULL)
        return;
    uint32_t n = ps_batchq_release(e->bq, (uint32_t)ps_engine_worker_slot_rank(e, w));
    if (n > 0)
        PS_LOG_I(e->log, "shard %u: %u batches leased to rank %d are back in the queue", e->shard,
                 n, ps_engine_worker_slot_rank(e, w));
}

static int handle_push(ps_engine *e, const peer *p, const ps_msg *req)
{
    if (req->table > 0)
        return ps_engine_sparse_push(e, p, req);
    worker_slot *w = ps_engine_worker_find(e, req->worker_id);
    if (w == NULL)
        return ps_engine_refuse(e, p, req, PS_EWORKER, "worker %u is not registered with shard %u",
                                req->worker_id, e->shard);
    if (req->key_lo > req->key_hi || req->key_lo < e->lo || req->key_hi > e->hi)
        return ps_engine_refuse(e, p, req, PS_ERANGE,
                                "keys [%llu, %llu) are outside shard %u [%llu, %llu)",
                                (unsigned long long)req->key_lo, (unsigned long long)req->key_hi,
                                e->shard, (unsigned long long)e->lo, (unsigned long long)e->hi);
    /* an empty range (a shard with no keys) may come without a payload */
    const ps_compress_ops *ops = ps_compress_ops_for_encoding(req->encoding);
    if (req->key_hi > req->key_lo && (ops == NULL || req->payload == NULL)) {
        char codecs[128];
        ps_compress_list(codecs, sizeof codecs, PS_COMPRESS_LIST_LABELS);
        return ps_engine_refuse(e, p, req, PS_EPAYLOAD, "a PUSH needs a payload in %s", codecs);
    }
    if (req->flags & PS_FLAG_CHUNK) {
        uint64_t klo = 0, khi = 0;
        if (e->nchunks <= 1)
            return ps_engine_refuse(e, p, req, PS_EINVAL,
                                    "shard %u takes no pushes in chunks (its WELCOME said "
                                    "chunk_keys 0)",
                                    e->shard);
        if (req->chunk < e->nchunks)
            ps_engine_chunk_range(e, req->chunk, &klo, &khi);
        if (req->chunks != e->nchunks || req->chunk >= e->nchunks || req->key_lo != klo ||
            req->key_hi != khi)
            return ps_engine_refuse(e, p, req, PS_ERANGE,
                                    "chunk %u of %u with keys [%llu, %llu) is not one of shard "
                                    "%u's %u chunks of %llu keys",
                                    req->chunk, req->chunks, (unsigned long long)req->key_lo,
                                    (unsigned long long)req->key_hi, e->shard, e->nchunks,
                                    (unsigned long long)e->chunk_keys);
    } else if (e->mode->rounds && (req->key_lo != e->lo || req->key_hi != e->hi))
        return ps_engine_refuse(
            e, p, req, PS_ERANGE,
            "a sync push must cover the whole shard [%llu, %llu), not [%llu, %llu)",
            (unsigned long long)e->lo, (unsigned long long)e->hi, (unsigned long long)req->key_lo,
            (unsigned long long)req->key_hi);
    int rc;
    if (batch_screen(e, p, req, w, &rc))
        return rc;
    /* another chunk of the push the rank joined the open round with (same
     * seq): the round's rules, not the seq's, say whether it is new */
    bool more = (req->flags & PS_FLAG_CHUNK) && w->pushed && w->has_seq &&
                req->seq == w->last_seq && req->clock == e->version;
    if (!more && ps_engine_push_answered(e, p, req, w, &rc))
        return rc;
    /* the codec checked the payload against [key_lo, key_hi): decoding cannot fail */
    const float *grad = req->payload;
    if (req->key_hi > req->key_lo && req->encoding != PS_ENC_F32) {
        size_t n = (size_t)(req->key_hi - req->key_lo);
        ops->decode(req->payload, (size_t)req->payload_bytes, e->push_dec, n);
        grad = e->push_dec;
    }
    return e->ops->push(e, p, req, grad, w);
}

/* A worker stops counting for rounds: it left (BYE or eviction: its rank
 * is free again) or it is done (still registered, waiting for the final
 * θ). A round that waited only for it closes in the caller. */
static void worker_depart(ps_engine *e, worker_slot *w, bool leaves)
{
    ps_engine_chunks_fill(e, w); /* the chunks it did not give count as zeros */
    if (!w->done) {
        e->departed++;
        if (w->pushed)
            e->pushed_alive--;
    }
    w->done = !leaves;
    if (leaves) {
        w->state = SLOT_LEFT;
        e->live--;
        leases_release(e, w);
    }
    ps_engine_ssp_recount(e);
}

/* A rank's expected pushes as text, "?" when its worker did not say (one
 * call per format: the buffer is static, psd's loop is one thread). */
static const char *expected_text(const worker_slot *w)
{
    static char text[24];
    if (w->expected == 0)
        return "?";
    snprintf(text, sizeof text, "%llu", (unsigned long long)w->expected);
    return text;
}

/* How a rank that has not finished its data stands, for the log. */
static const char *slot_unfinished_how(const worker_slot *w)
{
    if (w->state == SLOT_LIVE)
        return "training";
    if (w->state == SLOT_UNSEEN)
        return w->applied > 0 ? "not back since psd started" : "never joined";
    return w->evicted ? "evicted" : "left";
}

/* ---- membership ------------------------------------------------------- */

static int welcome(ps_engine *e, const peer *p, const ps_msg *req, worker_slot *w)
{
    ps_msg *r = reply_begin(e, PS_MSG_WELCOME, req);
    r->worker_id = w->worker_id;
    r->rank = ps_engine_worker_slot_rank(e, w);
    r->num_workers = e->job.workers;
    r->num_params = e->num_params;
    r->mode = e->mode->name;
    r->layout = &e->layout;
    /* where the rank's data stands, and (the same client process) its last
     * applied push: a worker resumes its data there, and learns which of
     * its acknowledged pushes a restart from a checkpoint rolled back */
    r->applied = w->applied;
    r->applied_seq = w->has_seq ? w->last_seq : 0;
    r->chunk_keys = e->nchunks > 1 ? e->chunk_keys : 0;
    if (e->nchunks > 1 && e->job.sync_chunk_kib == PS_SYNC_CHUNK_AUTO)
        r->flags |= PS_FLAG_CHUNK_REMOTE; /* auto: chunks only over a link to another host */
    reply_send(e, p, NULL);
    return 0;
}

/* Remembers which socket a live worker's request came from (its main one,
 * or its heartbeat thread's), so a stop can be told to it unasked. */
static void worker_where(ps_engine *e, const peer *p, const ps_msg *req)
{
    if (req->type == PS_MSG_HELLO || p->identity_len > PS_IDENTITY_MAX)
        return;
    uint32_t rank = req->worker_id & RANK_MASK;
    if (rank >= e->job.workers)
        return;
    worker_slot *w = &e->slots[rank];
    if (w->state != SLOT_LIVE || w->worker_id != req->worker_id)
        return;
    bool hb = req->type == PS_MSG_HEARTBEAT;
    unsigned char *id = hb ? w->ident_hb : w->ident_main;
    size_t *len = hb ? &w->ident_hb_len : &w->ident_main_len;
    if (*len != p->identity_len || memcmp(id, p->identity, p->identity_len) != 0) {
        memcpy(id, p->identity, p->identity_len);
        *len = p->identity_len;
    }
}

/* The live worker that a HELLO with this peer identity and seq registered
 * already: the request is a retry whose WELCOME was lost or late. */
static worker_slot *hello_find_retry(ps_engine *e, const peer *p, const ps_msg *req)
{
    for (uint32_t r = 0; r < e->job.workers; r++) {
        worker_slot *w = &e->slots[r];
        if (w->state == SLOT_LIVE && w->hello_seq == req->seq &&
            w->hello_identity_len == p->identity_len &&
            memcmp(w->hello_identity, p->identity, p->identity_len) == 0 &&
            (req->rank == -1 || req->rank == (int32_t)r))
            return w;
    }
    return NULL;
}

static int handle_hello(ps_engine *e, const peer *p, const ps_msg *req)
{
    uint32_t nw = e->job.workers;
    worker_slot *w = hello_find_retry(e, p, req);
    if (w != NULL)
        return welcome(e, p, req, w);
    if (req->rank < -1 || (req->rank >= 0 && (uint32_t)req->rank >= nw))
        return ps_engine_refuse(e, p, req, PS_EINVAL,
                                "rank %d is out of range (the job has %u workers)", (int)req->rank,
                                nw);
    if (req->rank == -1) {
        for (uint32_t r = 0; r < nw && w == NULL; r++)
            if (e->slots[r].state != SLOT_LIVE)
                w = &e->slots[r];
        if (w == NULL)
            return ps_engine_refuse(e, p, req, PS_EFULL, "all %u ranks of job \"%s\" are taken", nw,
                                    e->job.name);
    } else {
        w = &e->slots[req->rank];
        if (w->state == SLOT_LIVE)
            return ps_engine_refuse(e, p, req, PS_ESTATE, "rank %d is taken by a live worker",
                                    (int)req->rank);
    }
    /* the same client process again (evicted, or psd restarted): its
     * applied seqs still hold, so a retried push is not applied twice */
    bool same = req->incarnation != 0 && req->incarnation == w->incarnation;
    bool takeover = w->evicted && !same;
    if (w->state == SLOT_LEFT) {
        e->departed--;
        if (w->pushed) /* it pushed the open round before it left */
            e->pushed_alive++;
    }
    e->generation = e->generation % GEN_MAX + 1;
    w->state = SLOT_LIVE;
    w->done = false;
    w->said_bye = false;
    w->told = false;
    w->ident_main_len = 0;
    w->ident_hb_len = 0;
    w->last_seen_ms = e->now_ms;
    w->answered_ms = 0;
    w->worker_id = (e->generation << RANK_BITS) | (uint32_t)ps_engine_worker_slot_rank(e, w);
    if (!same) {
        w->has_seq = false;
        w->last_seq = 0;
    }
    if (!same) {
        w->loss = NAN;
        w->samples_per_s = NAN;
    }
    ps_strlcpy(w->hostname, ps_msg_str(req->hostname), sizeof w->hostname);
    w->incarnation = req->incarnation;
    if (req->expected != 0)
        w->expected = req->expected;
    w->evicted = false;
    w->hello_after_push = w->pushed;
    w->hello_identity_len =
        p->identity_len < sizeof w->hello_identity ? p->identity_len : sizeof w->hello_identity;
    memcpy(w->hello_identity, p->identity, w->hello_identity_len);
    w->hello_seq = req->seq;
    e->live++;
    ps_engine_ssp_recount(e);
    e->evict_next_ms = 0; /* its deadline may come first */
    PS_LOG_I(e->log, "shard %u: worker %u joined as rank %d (%u of %u live)", e->shard,
             w->worker_id, ps_engine_worker_slot_rank(e, w), e->live, nw);
    if (takeover)
        PS_LOG_I(e->log, "shard %u: rank %d taken over by worker %u at round %llu", e->shard,
                 ps_engine_worker_slot_rank(e, w), w->worker_id, (unsigned long long)e->version);
    return welcome(e, p, req, w);
}

static void parked_refuse(ps_engine *e, ps_engine_send_fn send, void *ctx);

/* A BYE with PS_FLAG_ABORT: the worker stops the whole job (its training
 * diverged); every parked and later request gets PS_EABORTED with why. */
static int bye_abort(ps_engine *e, const peer *p, const ps_msg *req, worker_slot *w)
{
    snprintf(e->abort_msg, sizeof e->abort_msg, "job stopped by rank %d: %.200s",
             ps_engine_worker_slot_rank(e, w),
             ps_msg_str(req->error)[0] ? req->error : "no reason given");
    PS_LOG_E(e->log, "shard %u: %s", e->shard, e->abort_msg);
    e->stop_code = PS_EABORTED;
    w->said_bye = true;
    w->told = true;
    worker_depart(e, w, true);
    ack(e, p, req, 0);
    parked_refuse(e, p->send, p->ctx);
    return 0;
}

static int handle_bye(ps_engine *e, const peer *p, const ps_msg *req)
{
    worker_slot *w = ps_engine_worker_find(e, req->worker_id);
    if (w == NULL)
        return ps_engine_refuse(e, p, req, PS_EWORKER, "worker %u is not registered with shard %u",
                                req->worker_id, e->shard);
    if (req->flags & PS_FLAG_ABORT)
        return bye_abort(e, p, req, w);
    w->said_bye = true;
    worker_depart(e, w, true);
    if (w->finished)
        PS_LOG_I(e->log, "shard %u: worker %u (rank %d) left (%u of %u live)", e->shard,
                 w->worker_id, ps_engine_worker_slot_rank(e, w), e->live, e->job.workers);
    else
        PS_LOG_W(e->log,
                 "shard %u: worker %u (rank %d) left before its data was done, at %llu of %s "
                 "pushes (%u of %u live)",
                 e->shard, w->worker_id, ps_engine_worker_slot_rank(e, w),
                 (unsigned long long)w->applied, expected_text(w), e->live, e->job.workers);
    ps_engine_round_maybe_close(e, p->send, p->ctx);
    ack(e, p, req, 0);
    ps_engine_parked_answer(e, p->send, p->ctx);
    return 0;
}

/* A HEARTBEAT with PS_FLAG_QUIET needs no ACK when the worker got a reply
 * within the last half heartbeat interval: it knows psd is alive, and
 * hears from psd at least every 1.5 intervals (libpsworker says a server
 * is silent after 2). With thousands of workers, their heartbeats are as
 * many messages as the pushes, and each ACK costs psd (ZeroMQ's I/O
 * thread and the kernel's TCP) about what receiving the heartbeat did. */
static bool heartbeat_quiet(const ps_engine *e, const ps_msg *req, const worker_slot *w)
{
    uint64_t half = e->job.heartbeat.interval_ms / 2;
    return (req->flags & PS_FLAG_QUIET) && half > 0 && w->answered_ms != 0 &&
           w->answered_ms <= e->now_ms && e->now_ms - w->answered_ms < half;
}

/* A HEARTBEAT keeps a worker from being evicted; with PS_FLAG_DONE the
 * worker says it pushed its last gradient: it no longer counts for rounds,
 * and once every worker is done the final pulls are answered. */
static int handle_heartbeat(ps_engine *e, const peer *p, const ps_msg *req)
{
    worker_slot *w = ps_engine_worker_find(e, req->worker_id);
    if (w == NULL)
        return ps_engine_refuse(e, p, req, PS_EWORKER, "worker %u is not registered with shard %u",
                                req->worker_id, e->shard);
    w->loss = req->loss;
    w->samples_per_s = req->samples_per_s;
    if (req->flags & PS_FLAG_DONE)
        w->finished = true; /* for good: a worker that takes the rank over has nothing left */
    if ((req->flags & PS_FLAG_DONE) && e->job.data.assign == PS_ASSIGN_DYNAMIC)
        for (uint32_t r = 0; r < e->job.workers; r++) /* the queue is done: every rank's data */
            e->slots[r].finished = true;
    if (!(req->flags & PS_FLAG_DONE) && heartbeat_quiet(e, req, w))
        return 0;
    if (!(req->flags & PS_FLAG_DONE) || w->done)
        return ack(e, p, req, 0);
    worker_depart(e, w, false);
    PS_LOG_D(e->log, "shard %u: rank %d is done at version %llu", e->shard,
             ps_engine_worker_slot_rank(e, w), (unsigned long long)e->version);
    ps_engine_round_maybe_close(e, p->send, p->ctx);
    ack(e, p, req, 0);
    ps_engine_parked_answer(e, p->send, p->ctx);
    return 0;
}

static int handle_status(ps_engine *e, const peer *p, const ps_msg *req)
{
    ps_msg *r = reply_begin(e, PS_MSG_STATUS_REPLY, req);
    r->num_workers = e->live;
    r->num_params = e->num_params;
    r->key_lo = e->lo;
    r->key_hi = e->hi;
    r->mode = e->mode->name;
    ps_engine_stats st;
    ps_engine_stats_get(e, &st);
    r->staleness_max = st.staleness_max;
    r->staleness_p99 = st.staleness_p99;
    r->staleness_mean = st.staleness_mean;
    ps_engine_clocks_format(e, e->detail_text, sizeof e->detail_text);
    r->detail = e->detail_text;
    ps_engine_workers_get(e, e->now_ms, e->status_rows);
    size_t len = 0, tlen = 0;
    ps_engine_tables_status(e);
    if (ps_codec_workers_encode(e->status_rows, e->job.workers, e->status_buf, e->status_buf_cap,
                                &len) == 0 &&
        ps_codec_tables_encode(e->table_status, e->ntables, e->status_buf + len,
                               e->status_buf_cap - len, &tlen) == 0 &&
        len + tlen > 0) {
        len += tlen;
        r->encoding = PS_ENC_WORKERS;
        r->payload_bytes = len;
    }
    reply_send(e, p, len > 0 ? e->status_buf : NULL);
    return 0;
}

int ps_engine_handle(ps_engine *e, const void *identity, size_t identity_len, int decode_rc,
                     const ps_msg *req, const ps_error *decode_err, ps_engine_send_fn send,
                     void *ctx)
{
    peer p = {identity, identity_len, send, ctx};
    e->grant_on = NULL;
    e->now_ms = ps_clock_ms();
    if (e->stop_code != 0 && decode_rc == 0 && req->type != PS_MSG_STATUS) {
        worker_slot *w = ps_engine_worker_find(e, req->worker_id);
        if (w != NULL)
            w->told = true;
        return ps_engine_refuse(e, &p, req, e->stop_code, "%s", e->abort_msg);
    }
    if (decode_rc != 0)
        return ps_engine_refuse(e, &p, req, decode_rc, "%s",
                                decode_err && decode_err->msg[0] ? decode_err->msg
                                                                 : ps_strerror(decode_rc));
    if (req->protocol != PS_PROTOCOL_VERSION)
        return ps_engine_refuse(e, &p, req, PS_EVERSION,
                                "protocol version %u is not this server's %u", req->protocol,
                                PS_PROTOCOL_VERSION);
    if (strcmp(ps_msg_str(req->job), e->job.name) != 0)
        return ps_engine_refuse(e, &p, req, PS_EJOB, "job \"%s\" is not this server's job \"%s\"",
                                ps_msg_str(req->job), e->job.name);
    worker_where(e, &p, req);
    switch (req->type) {
    case PS_MSG_HELLO:
        return handle_hello(e, &p, req);
    case PS_MSG_PULL:
        return handle_pull(e, &p, req);
    case PS_MSG_PUSH:
        return handle_push(e, &p, req);
    case PS_MSG_HEARTBEAT:
        return handle_heartbeat(e, &p, req);
    case PS_MSG_BYE:
        return handle_bye(e, &p, req);
    case PS_MSG_STATUS:
        return handle_status(e, &p, req);
    case PS_MSG_LEASE:
        return handle_lease(e, &p, req);
    default:
        return ps_engine_refuse(e, &p, req, PS_ETYPE, "%s is not a request",
                                ps_msg_type_name((int)req->type));
    }
}

/* ---- lifetime --------------------------------------------------------- */

static int engine_check_job(const ps_job *job, uint32_t shard, ps_error *err)
{
    if (job->nservers == 0 || job->nservers > PS_MAX_SHARDS || shard >= job->nservers)
        return ps_error_set(err, PS_EINVAL, "shard %u is out of range (the job has %u servers)",
                            shard, job->nservers);
    if (job->workers == 0 || job->workers > PS_MAX_WORKERS)
        return ps_error_set(err, PS_EINVAL, "the job has %u workers (1 to %d)", job->workers,
                            PS_MAX_WORKERS);
    if (ps_mode_get(job->mode) == NULL)
        return ps_error_set(err, PS_EINVAL, "mode %d is not a consistency mode", (int)job->mode);
    return 0;
}

static int engine_alloc(ps_engine *e, ps_error *err)
{
    e->slots = calloc(e->job.workers, sizeof *e->slots);
    e->parked_cap = (size_t)e->job.workers * PARKED_PER_WORKER;
    if (e->parked_cap < PARKED_MIN)
        e->parked_cap = PARKED_MIN;
    e->parked = calloc(e->parked_cap, sizeof *e->parked);
    if (e->slots == NULL || e->parked == NULL)
        return ps_error_set(err, PS_ENOMEM, "cannot allocate the engine's tables");
    size_t n = ps_store_size(e->store);
    if ((e->push_dec = malloc((n > 0 ? n : 1) * sizeof(float))) == NULL)
        return ps_error_set(err, PS_ENOMEM, "cannot allocate a buffer of %zu floats for pushes", n);
    if (e->job.compression.pull != PS_COMPRESS_NONE && n > 0) {
        e->pull_ops = ps_compress_ops_get(e->job.compression.pull);
        e->pull_enc_bytes = e->pull_ops->bytes(n, 0);
        if ((e->pull_enc = malloc(e->pull_enc_bytes)) == NULL)
            return ps_error_set(err, PS_ENOMEM, "cannot allocate %zu bytes for encoded pulls",
                                e->pull_enc_bytes);
    }
    /* the worker table, packed: at most a full row per rank */
    e->status_rows = calloc(e->job.workers, sizeof *e->status_rows);
    if (e->status_rows == NULL)
        return ps_error_set(err, PS_ENOMEM, "cannot allocate the worker table");
    ps_worker_status widest;
    memset(&widest, 0xff, sizeof widest);
    widest.state = PS_WORKER_EVICTED; /* the longest name */
    widest.finished = true;
    memset(widest.hostname, 'x', sizeof widest.hostname - 1);
    widest.hostname[sizeof widest.hostname - 1] = '\0';
    ps_table_status widest_table;
    memset(&widest_table, 0xff, sizeof widest_table);
    memset(widest_table.name, 'x', sizeof widest_table.name - 1);
    widest_table.name[sizeof widest_table.name - 1] = '\0';
    e->status_buf_cap = ps_codec_workers_size(&widest, 1) * e->job.workers +
                        ps_codec_tables_size(&widest_table, 1) * PS_MAX_TABLES;
    if ((e->status_buf = malloc(e->status_buf_cap)) == NULL)
        return ps_error_set(err, PS_ENOMEM, "cannot allocate %zu bytes for the worker table",
                            e->status_buf_cap);
    for (uint32_t r = 0; r < e->job.workers; r++)
        e->slots[r].loss = e->slots[r].samples_per_s = NAN;
    e->chunk_keys = e->mode->rounds ? ps_job_sync_chunk_keys(&e->job, n) : 0;
    e->nchunks = e->chunk_keys > 0 ? (uint32_t)((n + e->chunk_keys - 1) / e->chunk_keys) : 1;
    if (e->nchunks > 1) {
        uint32_t nc = e->nchunks;
        e->chunk_have = calloc(nc, sizeof *e->chunk_have);
        e->chunk_done = calloc(nc, 1);
        e->chunk_got = calloc((size_t)e->job.workers * nc, 1);
        if (e->chunk_have == NULL || e->chunk_done == NULL || e->chunk_got == NULL)
            return ps_error_set(err, PS_ENOMEM, "cannot allocate the tables of %u chunks", nc);
        if (e->pull_ops != NULL) {
            e->chunk_enc_off = calloc((size_t)nc + 1, sizeof *e->chunk_enc_off);
            e->chunk_enc_ok = calloc(nc, 1);
            if (e->chunk_enc_off == NULL || e->chunk_enc_ok == NULL)
                return ps_error_set(err, PS_ENOMEM, "cannot allocate the tables of %u chunks", nc);
            for (uint32_t c = 0; c < nc; c++) {
                uint64_t klo, khi;
                ps_engine_chunk_range(e, c, &klo, &khi);
                e->chunk_enc_off[c + 1] =
                    e->chunk_enc_off[c] + e->pull_ops->bytes((size_t)(khi - klo), 0);
            }
            if ((e->chunk_enc = malloc(e->chunk_enc_off[nc])) == NULL)
                return ps_error_set(err, PS_ENOMEM, "cannot allocate %zu bytes for encoded chunks",
                                    e->chunk_enc_off[nc]);
        }
    }
    if (e->mode->rounds && e->job.deterministic) {
        size_t floats;
        if (!ps_mul_ok(ps_store_size(e->store), e->job.workers, &floats) ||
            !ps_mul_ok(floats, sizeof(float), &floats) || (e->stage = malloc(floats)) == NULL)
            return ps_error_set(err, PS_ENOMEM,
                                "cannot allocate %u staging gradients for deterministic sums",
                                e->job.workers);
    }
    return 0;
}

/* A random first generation (see worker_id above); time and pid when the
 * kernel gives no random bytes. */
static uint32_t generation_first(void)
{
    uint32_t g = 0;
    if (getrandom(&g, sizeof g, GRND_NONBLOCK) != (ssize_t)sizeof g)
        g = (uint32_t)ps_clock_ms() ^ ((uint32_t)getpid() << 8);
    return g % GEN_MAX;
}

ps_engine *ps_engine_new(const ps_job *job, uint32_t shard, const ps_log *log, ps_error *err)
{
    if (engine_check_job(job, shard, err) != 0)
        return NULL;
    ps_engine *e = calloc(1, sizeof *e);
    if (e == NULL) {
        ps_error_set(err, PS_ENOMEM, "cannot allocate the engine");
        return NULL;
    }
    e->job = *job;
    e->log = log;
    e->shard = shard;
    e->generation = generation_first();
    size_t ntensors = 0;
    if (ps_job_layout(job, e->layout.tensors, PS_MAX_TENSORS, &ntensors, &e->num_params) != 0) {
        ps_error_set(err, PS_EINVAL, "the job's model has no valid layout");
        goto fail;
    }
    e->layout.ntensors = (uint32_t)ntensors;
    e->layout.nshards = job->nservers;
    for (uint32_t i = 0; i < job->nservers; i++) {
        ps_strlcpy(e->layout.shards[i].endpoint, job->servers[i], PS_ENDPOINT_MAX);
        ps_shard_range(e->num_params, job->nservers, i, &e->layout.shards[i].key_lo,
                       &e->layout.shards[i].key_hi);
    }
    ps_shard_range(e->num_params, job->nservers, shard, &e->lo, &e->hi);
    e->ops = ps_engine_mode_ops(job->mode);
    e->mode = ps_mode_get(job->mode);
    e->store = ps_store_new(job, e->lo, e->hi, e->mode->rounds, err);
    if (e->store == NULL)
        goto fail;
    if (engine_alloc(e, err) != 0 || ps_engine_tables_new(e, err) != 0)
        goto fail;
    if (job->data.assign == PS_ASSIGN_DYNAMIC && shard == 0 &&
        (e->bq = ps_batchq_new(job->training.epochs, job->workers, err)) == NULL)
        goto fail;
    unsigned threads = job->threads > 0 ? job->threads : ps_pool_cores();
    if (threads > 1 && (e->pool = ps_pool_new(threads, err)) == NULL)
        goto fail;
    ps_store_set_pool(e->store, e->pool);
    e->parked_version_min = e->parked_clock_min = UINT64_MAX;
    ps_engine_ssp_recount(e);
    return e;
fail:
    ps_engine_destroy(&e);
    return NULL;
}

void ps_engine_destroy(ps_engine **ep)
{
    if (ep == NULL || *ep == NULL)
        return;
    ps_engine *e = *ep;
    free(e->stage);
    free(e->chunk_have);
    free(e->chunk_done);
    free(e->chunk_got);
    free(e->chunk_enc_off);
    free(e->chunk_enc_ok);
    free(e->chunk_enc);
    free(e->status_buf);
    free(e->status_rows);
    free(e->push_dec);
    free(e->pull_enc);
    free(e->parked);
    free(e->slots);
    ps_batchq_destroy(&e->bq);
    ps_engine_tables_destroy(e);
    ps_store_destroy(&e->store);
    ps_pool_destroy(&e->pool);
    free(e);
    *ep = NULL;
}

uint64_t ps_engine_version(const ps_engine *e)
{
    return e->version;
}

uint64_t ps_engine_key_lo(const ps_engine *e)
{
    return e->lo;
}

uint64_t ps_engine_key_hi(const ps_engine *e)
{
    return e->hi;
}

uint64_t ps_engine_num_params(const ps_engine *e)
{
    return e->num_params;
}

const float *ps_engine_theta(const ps_engine *e)
{
    return ps_store_data(e->store);
}

uint64_t ps_engine_errors(const ps_engine *e, int code)
{
    if (code >= 0 || code <= -ERROR_CODES)
        return 0;
    return e->errors[-code];
}

void ps_engine_stats_get(const ps_engine *e, ps_engine_stats *out)
{
    out->version = e->version;
    out->pushes = e->pushes;
    out->duplicates = e->duplicates;
    out->dropped = e->dropped;
    out->pulls = e->pulls;
    out->parked = e->nparked;
    out->errors = e->errors_total;
    out->live_workers = e->live;
    out->evictions = e->evictions;
    out->max_round_ms = e->max_round_ms;
    out->theta_copies = ps_store_theta_copies(e->store);
    out->pull_encodings = e->pull_encodings;
    out->chunk_replies = e->chunk_replies;
    out->staleness_max = e->stale_max;
    out->staleness_mean = e->stale_count > 0 ? e->stale_sum / (double)e->stale_count : 0.0;
    out->staleness_p99 = 0;
    if (e->stale_count > 0) {
        /* the smallest staleness at or below which 99% of the pushes lie */
        uint64_t need = e->stale_count - e->stale_count / 100, seen = 0;
        for (size_t b = 0; b < STALE_BUCKETS; b++) {
            seen += e->stale_hist[b];
            if (seen >= need) {
                out->staleness_p99 = b < STALE_BUCKETS - 1 ? b : e->stale_max;
                break;
            }
        }
    }
}

/* Appends to buf (cap bytes, always terminated) what snprintf would print;
 * past the end it stops and ends the text with "...". */
static size_t text_add(char *buf, size_t cap, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t text_add(char *buf, size_t cap, size_t len, const char *fmt, ...)
{
    if (len >= cap)
        return len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - len) {
        if (cap >= 4)
            memcpy(buf + cap - 4, "...", 4);
        return cap;
    }
    return len + (size_t)n;
}

void ps_engine_clocks_format(const ps_engine *e, char *buf, size_t cap)
{
    if (cap == 0)
        return;
    buf[0] = '\0';
    size_t len = text_add(buf, cap, 0, "clocks [");
    for (uint32_t r = 0; r < e->job.workers; r++)
        len = text_add(buf, cap, len, "%s%llu", r > 0 ? ", " : "",
                       (unsigned long long)e->slots[r].clock);
    text_add(buf, cap, len, "]");
}

void ps_engine_ranks_format(const ps_engine *e, char *buf, size_t cap)
{
    if (cap == 0)
        return;
    buf[0] = '\0';
    size_t len = 0;
    for (uint32_t r = 0; r < e->job.workers; r++)
        len = text_add(buf, cap, len, "%srank %u applied %llu clock %llu", r > 0 ? ", " : "", r,
                       (unsigned long long)e->slots[r].applied,
                       (unsigned long long)e->slots[r].clock);
    if (e->bq != NULL) {
        for (uint32_t r = 0; r < e->job.workers; r++)
            len = text_add(buf, cap, len, "%s rank %u batches %llu", r > 0 ? "," : ";", r,
                           (unsigned long long)ps_batchq_rank_batches(e->bq, r));
        text_add(buf, cap, len, "; batch queue: %llu of %llu batches trained",
                 (unsigned long long)ps_batchq_trained(e->bq),
                 (unsigned long long)(ps_batchq_epoch_batches(e->bq) * e->job.training.epochs));
    }
}

void ps_engine_timing_get(const ps_engine *e, ps_engine_timing *out)
{
    out->applies = e->applies;
    out->last_apply_s = e->last_apply_s;
    out->rounds = e->rounds;
    out->last_round_s = e->last_round_s;
}

const uint64_t *ps_engine_staleness(const ps_engine *e, size_t *nbuckets, uint64_t *count,
                                    double *sum)
{
    *nbuckets = STALE_BUCKETS;
    *count = e->stale_count;
    *sum = e->stale_sum;
    return e->stale_hist;
}

uint32_t ps_engine_workers(const ps_engine *e)
{
    return e->job.workers;
}

/* What the shard knows of the rank (msg.h's states). */
static ps_worker_state slot_worker_state(const worker_slot *w)
{
    if (w->state == SLOT_LIVE)
        return w->done ? PS_WORKER_DONE : PS_WORKER_LIVE;
    if (w->state == SLOT_LEFT)
        return w->evicted ? PS_WORKER_EVICTED : PS_WORKER_LEFT;
    return PS_WORKER_VACANT;
}

void ps_engine_workers_get(const ps_engine *e, uint64_t now_ms, ps_worker_status *rows)
{
    for (uint32_t r = 0; r < e->job.workers; r++) {
        const worker_slot *w = &e->slots[r];
        ps_worker_status *o = &rows[r];
        memset(o, 0, sizeof *o);
        o->rank = r;
        o->state = slot_worker_state(w);
        ps_strlcpy(o->hostname, w->hostname, sizeof o->hostname);
        o->last_seen_ms =
            w->worker_id != 0 && now_ms > w->last_seen_ms ? now_ms - w->last_seen_ms : 0;
        o->clock = w->clock;
        o->pushes = w->applied;
        o->dropped = w->dropped;
        o->duplicates = w->duplicates;
        o->evictions = w->evictions;
        o->rounds = w->rounds;
        o->loss = w->loss;
        o->samples_per_s = w->samples_per_s;
        o->staleness_max = w->stale_max;
        o->staleness_mean = w->applied > 0 ? w->stale_sum / (double)w->applied : 0.0;
        o->worker_id = w->worker_id;
        o->finished = w->finished;
        o->expected = w->expected;
        o->batches = e->bq != NULL ? ps_batchq_rank_batches(e->bq, r) : 0;
    }
}

int ps_engine_rank_get(const ps_engine *e, uint32_t rank, ps_engine_rank *out)
{
    if (rank >= e->job.workers)
        return PS_ERANGE;
    const worker_slot *w = &e->slots[rank];
    out->incarnation = w->incarnation;
    out->has_seq = w->has_seq;
    out->last_seq = w->last_seq;
    out->applied = w->applied;
    out->clock = w->clock;
    out->live = w->state == SLOT_LIVE;
    out->finished = w->finished;
    /* its pushes that wait in the open round: θ does not hold them yet */
    if (w->pushed || w->sp_pushed) {
        out->has_seq = w->prev_has_seq;
        out->last_seq = w->prev_seq;
    }
    if (w->pushed) {
        out->applied--;
        out->clock = e->version;
    }
    return 0;
}

int ps_engine_rank_restore(ps_engine *e, uint32_t rank, const ps_engine_rank *in)
{
    if (rank >= e->job.workers)
        return PS_ERANGE;
    worker_slot *w = &e->slots[rank];
    if (w->state == SLOT_LIVE)
        return PS_ESTATE;
    w->incarnation = in->incarnation;
    w->has_seq = in->has_seq;
    w->last_seq = in->last_seq;
    w->applied = in->applied;
    w->clock = in->clock;
    w->finished = in->finished;
    ps_engine_ssp_recount(e);
    return 0;
}

double ps_engine_lr(const ps_engine *e)
{
    return ps_store_lr(e->store);
}

void ps_engine_set_lr(ps_engine *e, double lr)
{
    ps_store_set_lr(e->store, lr);
}

/* ---- failures --------------------------------------------------------- */

/* Every parked pull gets the abort's ERROR: nobody waits on a stopped job. */
static void parked_refuse(ps_engine *e, ps_engine_send_fn send, void *ctx)
{
    for (size_t i = 0; i < e->nparked; i++) {
        parked_pull *q = &e->parked[i];
        peer p = {q->identity, q->identity_len, send, ctx};
        ps_msg req;
        ps_msg_init(&req, PS_MSG_PULL);
        req.seq = q->seq;
        req.worker_id = q->worker_id;
        worker_slot *w = ps_engine_worker_find(e, q->worker_id);
        if (w != NULL)
            w->told = true;
        ps_engine_refuse(e, &p, &req, e->stop_code, "%s", e->abort_msg);
    }
    e->nparked = 0;
    e->parked_version_min = e->parked_clock_min = UINT64_MAX;
    for (uint32_t r = 0; r < e->job.workers; r++)
        e->slots[r].nparked = 0;
}

void ps_engine_tick(ps_engine *e, uint64_t now_ms, ps_engine_send_fn send, void *ctx)
{
    e->now_ms = now_ms;
    ps_engine_tables_tick(e);
    uint64_t timeout = e->job.heartbeat.timeout_ms;
    if (timeout == 0 || e->stop_code != 0 || now_ms < e->evict_next_ms)
        return;
    /* no rank is silent past the timeout before the earliest last sign of
     * life + timeout: until then a tick looks at none (a sign of life only
     * moves a deadline later; a HELLO asks for a look, evict_next_ms 0) */
    uint64_t next = UINT64_MAX;
    bool evicted = false;
    for (uint32_t r = 0; r < e->job.workers; r++) {
        worker_slot *w = &e->slots[r];
        if (w->state != SLOT_LIVE || w->done)
            continue;
        if (now_ms < w->last_seen_ms || now_ms - w->last_seen_ms <= timeout) {
            if (w->last_seen_ms + timeout + 1 < next)
                next = w->last_seen_ms + timeout + 1;
            continue;
        }
        uint64_t silent = now_ms - w->last_seen_ms;
        if (e->job.on_worker_loss == PS_LOSS_ABORT) {
            snprintf(e->abort_msg, sizeof e->abort_msg,
                     "job stopped: rank %u was silent for %llu ms (on_worker_loss: abort)", r,
                     (unsigned long long)silent);
            PS_LOG_E(e->log, "shard %u: %s", e->shard, e->abort_msg);
            e->stop_code = PS_EABORTED;
            parked_refuse(e, send, ctx);
            return;
        }
        worker_depart(e, w, true);
        w->evicted = true;
        w->evictions++;
        e->evictions++;
        evicted = true;
        PS_LOG_W(e->log,
                 "shard %u: rank %u (worker %u) silent for %llu ms: evicted, the job goes on with "
                 "%u of %u workers",
                 e->shard, r, w->worker_id, (unsigned long long)silent, e->live, e->job.workers);
    }
    e->evict_next_ms = next;
    if (evicted) {
        if (ps_engine_round_maybe_close(e, send, ctx))
            PS_LOG_I(e->log, "shard %u: round %llu closed without the evicted workers", e->shard,
                     (unsigned long long)(e->version - 1));
        ps_engine_parked_answer(e, send, ctx);
    }
}

bool ps_engine_aborted(const ps_engine *e, const char **why)
{
    if (why)
        *why = e->abort_msg;
    return e->stop_code == PS_EABORTED;
}

void ps_engine_forgive(ps_engine *e, uint64_t stall_ms, uint64_t now_ms)
{
    for (uint32_t r = 0; r < e->job.workers; r++) {
        worker_slot *w = &e->slots[r];
        if (w->state != SLOT_LIVE)
            continue;
        uint64_t seen = w->last_seen_ms + stall_ms;
        w->last_seen_ms = seen < now_ms ? seen : now_ms;
    }
}

/* The stop's ERROR, unasked (seq 0), to one socket of a worker. */
static void stop_tell(ps_engine *e, worker_slot *w, const unsigned char *id, size_t len,
                      ps_engine_send_fn send, void *ctx)
{
    if (len == 0)
        return;
    ps_msg *r = &e->reply;
    ps_msg_init(r, PS_MSG_ERROR);
    r->job = e->job.name;
    r->worker_id = w->worker_id;
    r->shard_index = e->shard;
    r->model_version = e->version;
    r->status = e->stop_code;
    r->error = e->abort_msg;
    int rc = send(ctx, id, len, r, NULL);
    if (rc != 0)
        PS_LOG_D(e->log, "shard %u: stop not told to rank %d: %s", e->shard,
                 ps_engine_worker_slot_rank(e, w), ps_strerror(rc));
}

void ps_engine_stop(ps_engine *e, int code, const char *why, ps_engine_send_fn send, void *ctx)
{
    if (e->stop_code == 0) {
        e->stop_code = code;
        ps_strlcpy(e->abort_msg, why, sizeof e->abort_msg);
    }
    parked_refuse(e, send, ctx);
    for (uint32_t r = 0; r < e->job.workers; r++) {
        worker_slot *w = &e->slots[r];
        if (w->state != SLOT_LIVE)
            continue;
        stop_tell(e, w, w->ident_main, w->ident_main_len, send, ctx);
        stop_tell(e, w, w->ident_hb, w->ident_hb_len, send, ctx);
    }
}

bool ps_engine_all_told(const ps_engine *e)
{
    for (uint32_t r = 0; r < e->job.workers; r++)
        if (e->slots[r].state == SLOT_LIVE && !e->slots[r].told)
            return false;
    return true;
}

int ps_engine_worker_rank(const ps_engine *e, uint32_t worker_id)
{
    uint32_t rank = worker_id & RANK_MASK;
    if (rank >= e->job.workers)
        return -1;
    const worker_slot *w = &e->slots[rank];
    return w->state == SLOT_LIVE && w->worker_id == worker_id ? (int)rank : -1;
}

bool ps_engine_complete(const ps_engine *e)
{
    for (uint32_t r = 0; r < e->job.workers; r++)
        if (e->slots[r].state == SLOT_LIVE || !e->slots[r].finished)
            return false;
    return true;
}

bool ps_engine_idle(const ps_engine *e)
{
    if (e->live > 0)
        return false;
    for (uint32_t r = 0; r < e->job.workers; r++) {
        const worker_slot *w = &e->slots[r];
        if (w->state != SLOT_UNSEEN || w->applied > 0 || w->finished)
            return !ps_engine_complete(e);
    }
    return false;
}

uint32_t ps_engine_unfinished_format(const ps_engine *e, char *buf, size_t cap)
{
    if (cap > 0)
        buf[0] = '\0';
    size_t len = 0;
    uint32_t n = 0;
    for (uint32_t r = 0; r < e->job.workers; r++) {
        const worker_slot *w = &e->slots[r];
        if (w->finished)
            continue;
        len = text_add(buf, cap, len, "%srank %u %s at %llu of %s pushes", n > 0 ? ", " : "", r,
                       slot_unfinished_how(w), (unsigned long long)w->applied, expected_text(w));
        n++;
    }
    return n;
}

void ps_engine_restore(ps_engine *e, uint64_t version)
{
    e->version = version;
    e->pull_enc_valid = false; /* θ was loaded: encode it again */
}

ps_store *ps_engine_store(ps_engine *e)
{
    return e->store;
}

size_t ps_engine_queue_bytes(const ps_engine *e)
{
    return e->bq != NULL ? ps_batchq_bytes(e->bq) : 0;
}

void ps_engine_queue_save(const ps_engine *e, void *buf)
{
    if (e->bq != NULL)
        ps_batchq_save(e->bq, buf);
}

int ps_engine_queue_load(ps_engine *e, const void *buf, size_t n, ps_error *err)
{
    if (e->bq == NULL)
        return 0; /* a static job's shard: the queue of a job run dynamic before is not its */
    return ps_batchq_load(e->bq, buf, n, err);
}

const ps_batchq *ps_engine_queue(const ps_engine *e)
{
    return e->bq;
}

bool ps_engine_whole(const ps_engine *e)
{
    return e->chunks_applied == 0;
}

uint32_t ps_engine_chunks(const ps_engine *e)
{
    return e->nchunks;
}
