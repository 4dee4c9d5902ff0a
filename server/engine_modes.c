/* engine_modes.c — psd's side of the consistency modes (common/mode.h): one
 * ops row per mode, indexed by ps_mode: when a push is applied (sync: into
 * the open round, the round closing once every live worker pushed; async
 * and ssp: at once) and when a parked pull may be answered (sync and
 * async: by its min_version; ssp: by every live worker's clock). Adding a
 * mode is a row here (see docs/architecture.md#a-consistency-mode). */
#include "engine_impl.h"

#include "report_limits.h"

#include <string.h>

/* True when the open sync round can close: every worker that has not left
 * pushed it (the first N - backup_workers of them with backup workers). */
bool ps_engine_round_complete(const ps_engine *e)
{
    if (!e->mode->rounds || e->round_pushes == 0)
        return false;
    if (e->chunks_applied > 0)
        return true; /* part applied: sealed; a rank that joins now waits for the next round */
    uint32_t alive = e->job.workers - e->departed;
    uint32_t need =
        alive > e->job.backup_workers ? alive - e->job.backup_workers : (alive > 0 ? 1 : 0);
    return e->pushed_alive >= need;
}

/* What the round's weighted sum of pushes is divided by: the samples it
 * holds. With local SGD (training.local_steps above 1) a push is a change
 * of θ, and a worker that pushed nothing this round (evicted, not back
 * yet, or done while a rank that came back replays its data alone) kept
 * θ as it was: it counts as a change of 0 of the round's mean weight, up
 * to the workers a round waits for (workers - backup_workers). Otherwise
 * a lone worker's Δ would move θ as far as the mean of all of them, twice
 * the step per sample with 2 workers, and a rank that replays its data
 * alone at the end of the job leaves θ as noisy as a one-worker run. */
static double round_divisor(const ps_engine *e)
{
    double d = e->round_samples;
    if (e->job.training.local_steps <= 1 || e->round_pushes == 0)
        return d;
    uint32_t w = e->job.workers, b = e->job.backup_workers;
    uint32_t full = w > b ? w - b : 1;
    return e->round_pushes < full ? d * (double)full / (double)e->round_pushes : d;
}

uint32_t ps_engine_ranks_dropped_warn(const ps_engine *e)
{
    uint32_t named = 0;
    for (uint32_t r = 0; r < e->job.workers; r++) {
        const worker_slot *w = &e->slots[r];
        if (!ps_report_rank_mostly_dropped(w->applied, w->rounds))
            continue;
        named++;
        PS_LOG_W(e->log,
                 "shard %u: rank %u pushed into %llu of the %llu rounds that closed while it "
                 "trained: more than %d%% closed without it (%llu of its pushes dropped as late, "
                 "backup_workers: %u); most of its data did not train the model",
                 e->shard, r, (unsigned long long)w->applied, (unsigned long long)w->rounds,
                 PS_REPORT_DROPPED_SHARE, (unsigned long long)w->dropped, e->job.backup_workers);
    }
    return named;
}

/* Sets the learning-rate schedule's step for the round closing now. The
 * schedule counts the job's rounds of data, not the rounds closed: a rank
 * that was away (evicted) goes on with its data where it stopped, and makes
 * up the rounds it missed after the others are done, alone. So the step is
 * this round less the rounds missed by the live rank furthest behind, and
 * never goes back: it holds while that rank catches up, and its last round
 * is the schedule's last step instead of one past total_steps at lr 0. */
static void schedule_step(ps_engine *e)
{
    uint64_t behind = 0;
    for (uint32_t r = 0; r < e->job.workers; r++) {
        const worker_slot *w = &e->slots[r];
        if (w->state == SLOT_LIVE && !w->done && w->absent > behind)
            behind = w->absent;
    }
    uint64_t step = e->version > behind ? e->version - behind : 0;
    if (step < e->sched_step)
        step = e->sched_step;
    e->sched_step = step;
    ps_store_set_schedule_lag(e->store, e->version - step);
}

/* Closes the open sync round: the samples-weighted mean is applied once
 * and the version moves on. only (not NULL) is the push that is the
 * round's one gradient, of weight only_weight, applied straight from its
 * payload: one pass over the shard instead of accumulating it and then
 * applying the accumulator. */
static void round_finish(ps_engine *e);

static void round_close(ps_engine *e, const float *only, float only_weight)
{
    schedule_step(e);
    double divisor = round_divisor(e);
    if (only != NULL) {
        ps_store_apply_scaled(e->store, e->lo, only, ps_store_size(e->store),
                              (float)(only_weight / divisor));
    } else {
        if (e->stage != NULL) {
            size_t n = ps_store_size(e->store);
            for (uint32_t r = 0; r < e->job.workers; r++)
                if (e->slots[r].pushed)
                    ps_store_accumulate(e->store, e->stage + (size_t)r * n, e->slots[r].weight);
        }
        ps_store_apply_accumulated(e->store, (float)(1.0 / divisor));
    }
    round_finish(e);
}

/* The round's θ is applied: it is counted and closed, the version moves on. */
static void round_finish(ps_engine *e)
{
    uint64_t took_ms = ps_clock_ms() - e->round_start_ms;
    if (took_ms > e->max_round_ms)
        e->max_round_ms = took_ms;
    e->rounds++;
    e->last_round_s = ps_clock_s() - e->round_start_s;
    PS_LOG_D(e->log, "shard %u: round %llu closed (%u pushes, %.0f samples)", e->shard,
             (unsigned long long)e->version, e->round_pushes, e->round_samples);
    e->version++;
    /* the round's rows of the sparse tables, summed per key, once */
    ps_engine_tables_round_close(e);
    for (uint32_t r = 0; r < e->job.workers; r++) {
        worker_slot *w = &e->slots[r];
        w->pushed = false;
        if (w->state == SLOT_LIVE && !w->done)
            w->rounds++; /* a round it trained in, with its push or without */
        else if (w->state == SLOT_LEFT && !w->said_bye)
            w->absent++; /* evicted: it (or a worker taking it over) trains it later */
    }
    e->round_pushes = 0;
    e->pushed_alive = 0;
    e->round_samples = 0;
}

/* One write of θ (a push applied or accumulated, a round closed) that
 * started at t0 (ps_clock_s) is over: counted and timed for /metrics. */
void ps_engine_applied(ps_engine *e, double t0)
{
    e->applies++;
    e->last_apply_s = ps_clock_s() - t0;
}

/* Closes the open sync round if it is complete (the gradients are in the
 * accumulator or the stage). Returns true when it closed. */
static bool chunks_apply_ready(ps_engine *e, ps_engine_send_fn send, void *ctx);

bool ps_engine_round_maybe_close(ps_engine *e, ps_engine_send_fn send, void *ctx)
{
    if (!ps_engine_round_complete(e))
        return false;
    if (e->round_chunked)
        return chunks_apply_ready(e, send, ctx);
    double t0 = ps_clock_s();
    round_close(e, NULL, 0.0f);
    ps_engine_applied(e, t0);
    return true;
}

/* ---- pipelined rounds (chunks) ----------------------------------------- */

void ps_engine_chunk_range(const ps_engine *e, uint32_t c, uint64_t *lo, uint64_t *hi)
{
    *lo = e->lo + (uint64_t)c * e->chunk_keys;
    *hi = *lo + e->chunk_keys < e->hi ? *lo + e->chunk_keys : e->hi;
}

/* Chunk c is summed (in rank order from the stage when deterministic, else
 * it is in the accumulator already) and applied with the round's update,
 * then sent to every parked pull that waits for the next version and takes
 * chunks. The first chunk of a round takes the round's schedule step,
 * optimizer update and divisor; the last one closes the round. */
static void chunk_apply(ps_engine *e, uint32_t c, const float *only, float only_weight,
                        ps_engine_send_fn send, void *ctx)
{
    double t0 = ps_clock_s();
    if (e->chunks_applied == 0) {
        schedule_step(e);
        e->chunk_divisor = round_divisor(e);
        ps_store_round_begin(e->store);
    }
    uint64_t klo, khi;
    ps_engine_chunk_range(e, c, &klo, &khi);
    size_t off = (size_t)(klo - e->lo), len = (size_t)(khi - klo);
    if (only != NULL) {
        ps_store_round_apply(e->store, off, only, len, (float)(only_weight / e->chunk_divisor));
    } else {
        if (e->stage != NULL) {
            size_t n = ps_store_size(e->store);
            bool first = true;
            for (uint32_t r = 0; r < e->job.workers; r++) {
                if (!e->slots[r].pushed)
                    continue;
                ps_store_round_sum(e->store, off, e->stage + (size_t)r * n + off, len,
                                   e->slots[r].weight, first);
                first = false;
            }
        }
        ps_store_round_apply(e->store, off, NULL, len, (float)(1.0 / e->chunk_divisor));
    }
    e->chunk_done[c] = 1;
    e->chunks_applied++;
    if (e->chunk_enc != NULL) {
        const float *theta = ps_store_data(e->store) + off;
        e->chunk_enc_ok[c] =
            e->pull_ops->encode(theta, len, 0, e->chunk_enc + e->chunk_enc_off[c], NULL) == 0;
    }
    for (size_t i = 0; i < e->nparked; i++) {
        parked_pull *q = &e->parked[i];
        if ((q->flags & PS_FLAG_CHUNK) && q->min_version == e->version + 1 && q->key_lo == e->lo &&
            q->key_hi == e->hi) {
            ps_engine_chunk_answer(e, q, c, send, ctx);
            q->chunks_sent++;
        }
    }
    ps_engine_applied(e, t0);
    if (e->chunks_applied < e->nchunks)
        return;
    ps_store_round_end(e->store);
    memset(e->chunk_done, 0, e->nchunks);
    memset(e->chunk_have, 0, e->nchunks * sizeof *e->chunk_have);
    memset(e->chunk_got, 0, (size_t)e->job.workers * e->nchunks);
    e->chunks_applied = 0;
    e->round_chunked = false;
    round_finish(e);
    ps_engine_parked_answer(e, send, ctx);
}

/* Applies every chunk that every push of the sealed round holds; true when
 * the round closed. */
static bool chunks_apply_ready(ps_engine *e, ps_engine_send_fn send, void *ctx)
{
    uint64_t version = e->version;
    for (uint32_t c = 0; c < e->nchunks && e->version == version; c++)
        if (!e->chunk_done[c] && e->chunk_have[c] == e->round_pushes)
            chunk_apply(e, c, NULL, 0.0f, send, ctx);
    return e->version != version;
}

/* Rank w's push holds chunk c now: staged (deterministic) or summed into
 * the accumulator, or, when it is the chunk's only gradient and the round
 * is sealed, applied straight from grad. */
static void chunk_take(ps_engine *e, worker_slot *w, uint32_t c, const float *grad, bool sealed,
                       ps_engine_send_fn send, void *ctx)
{
    int rank = ps_engine_worker_slot_rank(e, w);
    uint64_t klo, khi;
    ps_engine_chunk_range(e, c, &klo, &khi);
    size_t off = (size_t)(klo - e->lo), len = (size_t)(khi - klo);
    bool first = e->chunk_have[c] == 0;
    e->chunk_got[(size_t)rank * e->nchunks + c] = 1;
    e->chunk_have[c]++;
    if (sealed && first && e->round_pushes == 1 && e->stage == NULL && grad != NULL) {
        chunk_apply(e, c, grad, w->weight, send, ctx); /* the chunk's only gradient */
        return;
    }
    if (e->stage != NULL) {
        float *row = e->stage + (size_t)rank * ps_store_size(e->store) + off;
        if (grad != NULL)
            memcpy(row, grad, len * sizeof(float));
        else
            memset(row, 0, len * sizeof(float));
    } else {
        ps_store_round_sum(e->store, off, grad, len, w->weight, first);
    }
}

void ps_engine_chunks_fill(ps_engine *e, worker_slot *w)
{
    if (!e->round_chunked || !w->pushed)
        return;
    size_t base = (size_t)ps_engine_worker_slot_rank(e, w) * e->nchunks;
    for (uint32_t c = 0; c < e->nchunks; c++)
        if (!e->chunk_got[base + c] && !e->chunk_done[c])
            chunk_take(e, w, c, NULL, false, NULL, NULL);
}

/* ssp: whether a rank counts for the bound. A rank that has not registered
 * yet is at clock 0, as in sync, where a round waits for it: else the first
 * worker to start would run ahead of one still reading its data. */
static bool ssp_counts(const worker_slot *w)
{
    return (w->state == SLOT_LIVE && !w->done) || w->state == SLOT_UNSEEN;
}

void ps_engine_ssp_recount(ps_engine *e)
{
    uint64_t least = UINT64_MAX;
    uint32_t at = 0;
    for (uint32_t r = 0; r < e->job.workers; r++) {
        const worker_slot *w = &e->slots[r];
        if (!ssp_counts(w))
            continue;
        if (w->clock < least) {
            least = w->clock;
            at = 1;
        } else if (w->clock == least) {
            at++;
        }
    }
    e->ssp_min = least;
    e->ssp_at_min = at;
}

/* w's clock moves from was to now: the least clock follows, at O(1) but
 * when the last rank at the least moved on (once for N pushes). */
static void ssp_clock_moved(ps_engine *e, const worker_slot *w, uint64_t was, uint64_t now)
{
    if (!ssp_counts(w) || was == now)
        return;
    if (now < e->ssp_min || (was == e->ssp_min && --e->ssp_at_min == 0))
        ps_engine_ssp_recount(e);
}

/* ssp with data.assign: dynamic: a worker's clock is where its batch
 * stands in the queue (batch / workers), so it jumps ahead when the queue
 * moved on while the worker trained. A pull of its at clock c says it has
 * no batch before c left to push: its own clock follows, or the pull would
 * wait on the worker itself (and every other rank on it). True when the
 * least clock may have moved (parked pulls may be answered now). */
bool ps_engine_ssp_reach(ps_engine *e, worker_slot *w, uint64_t clock)
{
    if (e->job.mode != PS_MODE_SSP || e->job.data.assign != PS_ASSIGN_DYNAMIC || w->clock >= clock)
        return false;
    uint64_t was = w->clock;
    w->clock = clock;
    ssp_clock_moved(e, w, was, clock);
    return true;
}

/* Books one push that is applied (or accumulated) now: the rank's clock and
 * count, and the staleness of its gradient (a model_version from the future
 * counts as 0). */
static void push_count(ps_engine *e, worker_slot *w, const ps_msg *req)
{
    uint64_t stale = req->model_version < e->version ? e->version - req->model_version : 0;
    e->stale_hist[stale < STALE_BUCKETS - 1 ? stale : STALE_BUCKETS - 1]++;
    e->stale_count++;
    e->stale_sum += (double)stale;
    if (stale > e->stale_max)
        e->stale_max = stale;
    w->stale_sum += (double)stale;
    if (stale > w->stale_max)
        w->stale_max = stale;
    uint64_t was = w->clock;
    w->clock = req->clock + 1;
    ssp_clock_moved(e, w, was, w->clock);
    w->applied++;
    w->has_seq = true;
    w->last_seq = req->seq;
    e->pushes++;
}

static int push_sync_chunked(ps_engine *e, const peer *p, const ps_msg *req, const float *grad,
                             worker_slot *w);

/* The open round, begun with whole pushes, is counted by chunks from now
 * on: every push in it holds every chunk (in the accumulator or the stage). */
static void round_to_chunks(ps_engine *e)
{
    for (uint32_t c = 0; c < e->nchunks; c++)
        e->chunk_have[c] = e->round_pushes;
    for (uint32_t r = 0; r < e->job.workers; r++)
        if (e->slots[r].pushed)
            memset(e->chunk_got + (size_t)r * e->nchunks, 1, e->nchunks);
    e->round_chunked = true;
}

static int push_sync(ps_engine *e, const peer *p, const ps_msg *req, const float *grad,
                     worker_slot *w)
{
    /* a round takes the chunked path once a push of it comes as chunks; one
     * of whole pushes only (workers on psd's host) the whole-θ path, with
     * psd's threads over the whole shard */
    if (e->nchunks > 1 && !e->round_chunked && (req->flags & PS_FLAG_CHUNK) &&
        req->clock == e->version)
        round_to_chunks(e);
    if (e->round_chunked)
        return push_sync_chunked(e, p, req, grad, w);
    int rc;
    if (ps_engine_round_screen(e, p, req, w, &rc))
        return rc;
    if (w->pushed && (w->hello_after_push || !w->has_seq)) {
        /* it pushed this round, then registered again (evicted, or the
         * server restarted): its gradient is in the round already */
        e->duplicates++;
        w->duplicates++;
        return ps_engine_push_done(e, p, req, PS_ACK_DUPLICATE);
    }
    if (w->pushed)
        return ps_engine_refuse(e, p, req, PS_ECLOCK, "rank %d already pushed round %llu",
                                ps_engine_worker_slot_rank(e, w), (unsigned long long)e->version);
    float weight = req->samples > 0 ? (float)req->samples : 1.0f;
    bool first = e->round_pushes == 0;
    double t0 = ps_clock_s();
    if (first) {
        e->round_start_ms = ps_clock_ms();
        e->round_start_s = t0;
    }
    w->pushed = true;
    w->hello_after_push = false;
    if (!w->sp_pushed) { /* else its sparse push of the round took them */
        w->prev_has_seq = w->has_seq;
        w->prev_seq = w->last_seq;
    }
    push_count(e, w, req);
    e->pushed_alive++;
    e->round_pushes++;
    e->round_samples += weight;
    bool closed = ps_engine_round_complete(e);
    if (closed && first && e->stage == NULL) {
        round_close(e, grad, weight); /* the round's only gradient */
    } else {
        if (e->stage != NULL) {
            size_t n = ps_store_size(e->store);
            if (n > 0)
                memcpy(e->stage + (size_t)ps_engine_worker_slot_rank(e, w) * n, grad,
                       n * sizeof(float));
            w->weight = weight;
        } else {
            ps_store_accumulate(e->store, grad, weight);
        }
        if (closed)
            round_close(e, NULL, 0.0f);
    }
    ps_engine_applied(e, t0);
    ps_engine_push_done(e, p, req, 0);
    if (closed)
        ps_engine_parked_answer(e, p->send, p->ctx);
    return 0;
}

/* A sync push, pipelined: a whole push (every chunk) or one chunk
 * (PS_FLAG_CHUNK). The rank's first chunk of the round joins it, as a
 * whole push does (its seq, clock and weight); its other chunks, with the
 * same seq, add to it; a chunk it gave already is a DUPLICATE. Once the
 * round is sealed, each chunk every push holds is applied. */
static int push_sync_chunked(ps_engine *e, const peer *p, const ps_msg *req, const float *grad,
                             worker_slot *w)
{
    int rc;
    if (ps_engine_round_screen(e, p, req, w, &rc))
        return rc;
    bool one = (req->flags & PS_FLAG_CHUNK) != 0;
    uint32_t c0 = one ? req->chunk : 0, c1 = one ? req->chunk + 1 : e->nchunks;
    size_t got = (size_t)ps_engine_worker_slot_rank(e, w) * e->nchunks;
    if (w->pushed && (w->hello_after_push || !w->has_seq || !one || req->seq != w->last_seq)) {
        if (w->hello_after_push || !w->has_seq || (req->seq == w->last_seq && !one)) {
            e->duplicates++;
            w->duplicates++;
            return ps_engine_push_done(e, p, req, PS_ACK_DUPLICATE);
        }
        return ps_engine_refuse(e, p, req, PS_ECLOCK, "rank %d already pushed round %llu",
                                ps_engine_worker_slot_rank(e, w), (unsigned long long)e->version);
    }
    if (w->pushed && e->chunk_got[got + c0]) { /* a chunk sent again */
        e->duplicates++;
        w->duplicates++;
        return ps_engine_push_done(e, p, req, PS_ACK_DUPLICATE);
    }
    double t0 = ps_clock_s();
    if (!w->pushed) {
        if (ps_engine_round_complete(e)) {
            /* sealed without it (backup workers): as late as a push for a round closed */
            e->dropped++;
            w->dropped++;
            return ps_engine_push_done(e, p, req, PS_ACK_DROPPED);
        }
        if (e->round_pushes == 0) {
            e->round_start_ms = ps_clock_ms();
            e->round_start_s = t0;
        }
        float weight = req->samples > 0 ? (float)req->samples : 1.0f;
        w->pushed = true;
        w->hello_after_push = false;
        if (!w->sp_pushed) {
            w->prev_has_seq = w->has_seq;
            w->prev_seq = w->last_seq;
        }
        push_count(e, w, req);
        w->weight = weight;
        e->pushed_alive++;
        e->round_pushes++;
        e->round_samples += weight;
    }
    bool sealed = ps_engine_round_complete(e);
    uint64_t version = e->version;
    for (uint32_t c = c0; c < c1 && e->version == version; c++) {
        uint64_t klo, khi;
        ps_engine_chunk_range(e, c, &klo, &khi);
        if (!e->chunk_got[got + c])
            chunk_take(e, w, c, grad + (klo - req->key_lo), sealed, p->send, p->ctx);
    }
    if (e->version == version)
        ps_engine_applied(e, t0);
    /* the ACK before the chunks of θ the push completes */
    ps_engine_push_done(e, p, req, 0);
    if (sealed && e->version == version)
        chunks_apply_ready(e, p->send, p->ctx);
    return 0;
}

static int push_async(ps_engine *e, const peer *p, const ps_msg *req, const float *grad,
                      worker_slot *w)
{
    double t0 = ps_clock_s();
    if (req->key_hi > req->key_lo)
        ps_store_apply(e->store, req->key_lo, grad, (size_t)(req->key_hi - req->key_lo));
    ps_engine_applied(e, t0);
    push_count(e, w, req);
    e->version++;
    ps_engine_push_done(e, p, req, 0);
    ps_engine_parked_answer(e, p->send, p->ctx);
    return 0;
}

/* sync and async: a pull waits only for its min_version */
static bool pull_ready_version(const ps_engine *e, uint64_t min_version, uint64_t clock)
{
    (void)clock;
    return min_version <= e->version;
}

/* ssp: a worker at clock c waits until every live worker that is not done
 * (and every rank not registered yet, ssp_counts) has clock >= c -
 * staleness (and for its min_version: the final θ): the least clock of
 * theirs, kept as pushes come (ssp_min), says it at O(1). */
static bool pull_ready_ssp(const ps_engine *e, uint64_t min_version, uint64_t clock)
{
    if (min_version > e->version)
        return false;
    return e->ssp_min == UINT64_MAX || e->ssp_min + e->job.staleness >= clock;
}

/* by ps_mode (mode.h): sync, async, ssp (pushes applied as they come, as
 * async); .rounds is the mode's own, from its row in mode.h */
static const mode_ops mode_table[] = {
    [PS_MODE_SYNC] = {.push = push_sync, .pull_ready = pull_ready_version},
    [PS_MODE_ASYNC] = {.push = push_async, .pull_ready = pull_ready_version},
    [PS_MODE_SSP] = {.push = push_async, .pull_ready = pull_ready_ssp},
};
_Static_assert(sizeof mode_table / sizeof mode_table[0] == PS_MODE_COUNT,
               "psd has ops for every mode of mode.h");

const mode_ops *ps_engine_mode_ops(ps_mode mode)
{
    return (unsigned)mode < PS_MODE_COUNT ? &mode_table[mode] : NULL;
}
