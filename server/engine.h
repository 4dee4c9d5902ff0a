/* engine.h — the protocol state machine of one shard (proto/ps.proto): worker
 * registration, pulls (parked by min_version), pushes (deduplicated by seq;
 * sync rounds or async updates) and every ERROR reply. It knows no sockets:
 * requests come in decoded, replies go out through a callback, so it can be
 * driven by tests. It allocates nothing after ps_engine_new. Not locked: one
 * thread drives it. */
#ifndef PS_ENGINE_H
#define PS_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "error.h"
#include "job.h"
#include "log.h"
#include "store.h"

#include <stdbool.h>

typedef struct ps_engine ps_engine;

/* Sends one reply to the peer named by identity. reply and payload (NULL
 * when reply->payload_bytes is 0) are only valid during the call: copy what
 * you keep. reply is the engine's scratch: the sender may rewrite how it
 * travels (a WELCOME's shared-memory fields, a PULL_REPLY answered in
 * shared memory) without copying it. A PULL_REPLY's payload points into
 * θ's current buffer, which a sender may hold instead (ps_store_theta_hold
 * on ps_engine_store). Returns 0 or a negative code; the engine logs a
 * failure at debug and goes on (the peer may be gone). */
typedef int (*ps_engine_send_fn)(void *ctx, const void *identity, size_t identity_len,
                                 ps_msg *reply, const void *payload);

/* Counters since ps_engine_new. */
typedef struct ps_engine_stats {
    uint64_t version;        /* the shard's model version */
    uint64_t pushes;         /* pushes applied or accumulated */
    uint64_t duplicates;     /* retried pushes acknowledged, not applied */
    uint64_t dropped;        /* pushes for a closed round */
    uint64_t pulls;          /* pulls answered */
    uint64_t parked;         /* pulls parked now */
    uint64_t errors;         /* ERROR replies, all codes */
    uint32_t live_workers;   /* registered and not left */
    uint64_t evictions;      /* workers evicted for silence */
    uint64_t max_round_ms;   /* sync: the longest round, first push to close */
    uint64_t theta_copies;   /* θ copied off a buffer a pull reply held (store.h) */
    uint64_t pull_encodings; /* θ encoded in the job's pull codec: at most once per version */
    uint64_t chunk_replies;  /* pipelined sync: PULL_REPLYs of one chunk, sent as it was applied */
    /* staleness of the pushes applied (version at apply - the push's
     * model_version), over all of them: largest, mean, 99th percentile */
    uint64_t staleness_max, staleness_p99;
    double staleness_mean;
} ps_engine_stats;

/* What the shard knows of one rank; it outlives the workers that held the
 * rank and goes into checkpoints (exactly once across a restart). */
typedef struct ps_engine_rank {
    uint64_t incarnation; /* the client process of its last HELLO (0: none known) */
    bool has_seq;         /* last_seq holds */
    uint64_t last_seq;    /* seq of the last push applied */
    uint64_t applied;     /* pushes of the rank applied (or accumulated) */
    uint64_t clock;       /* clock of its last applied push + 1, 0 before any */
    bool live;            /* a worker holds it now (not restored) */
    bool finished;        /* its data was trained to the end (a worker of it said DONE) */
} ps_engine_rank;

/* A new engine for shard `shard` of the job (a copy of job is kept), θ
 * initialised as ps_store_new does. log (not owned, may be NULL) must
 * outlive the engine. Returns NULL and fills err: PS_EINVAL (shard out of
 * range, no workers, bad layout, optimizer settings ps_store_new refuses),
 * PS_ENOMEM. The job's mode is a row of a table in engine_modes.c: when a push is
 * applied (sync: rounds; async and ssp: at once) and when a parked pull is
 * answered (sync, async: min_version; ssp: every live worker's clock is at
 * least the puller's clock minus staleness). With deterministic: true (sync)
 * the round sums in rank order from one staged gradient per rank.
 * Compression (compress.h): a push in any codec is decoded and applied as
 * float32; with compression.pull, a pull of the whole shard is answered
 * with θ in that codec, encoded once per version and shared by every
 * worker's reply (the final θ and shared-memory replies stay float32). */
ps_engine *ps_engine_new(const ps_job *job, uint32_t shard, const ps_log *log, ps_error *err);

/* Frees the engine and sets *ep to NULL; a NULL *ep is fine. Parked pulls
 * are dropped unanswered. */
void ps_engine_destroy(ps_engine **ep);

/* Handles one request from the peer named by identity (up to
 * PS_IDENTITY_MAX bytes; the engine keeps a copy for parked pulls).
 * decode_rc is what the codec returned for it: when it is not 0, req holds
 * what the codec could read (seq, worker_id) and decode_err its sentence,
 * and the reply is an ERROR with that code and sentence. Every request gets
 * exactly one reply through send, now or (a parked pull) later from another
 * call, but a HEARTBEAT with PS_FLAG_QUIET of a worker sent a reply within
 * half of heartbeat.interval_ms, which gets none (msg.h); a request that closes a
 * round may also answer parked pulls. A
 * refused request changes nothing but the error counters. Returns 0 when
 * the request was served (or parked), else the code of the ERROR sent. */
int ps_engine_handle(ps_engine *e, const void *identity, size_t identity_len, int decode_rc,
                     const ps_msg *req, const ps_error *decode_err, ps_engine_send_fn send,
                     void *ctx);

/* The shard's model version, its key range, the total params and θ (valid
 * until the next write of θ: see ps_store_data). */
uint64_t ps_engine_version(const ps_engine *e);
uint64_t ps_engine_key_lo(const ps_engine *e);
uint64_t ps_engine_key_hi(const ps_engine *e);
uint64_t ps_engine_num_params(const ps_engine *e);
const float *ps_engine_theta(const ps_engine *e); /* key_lo .. key_hi - 1 */

/* How many ERROR replies with code (a negative PS_E code) were sent;
 * 0 for a code not in the list. */
uint64_t ps_engine_errors(const ps_engine *e, int code);

/* The base learning rate of the shard's optimizer; set_lr changes it
 * (SIGHUP reload). */
double ps_engine_lr(const ps_engine *e);
void ps_engine_set_lr(ps_engine *e, double lr);

/* Evicts the workers silent for longer than the job's heartbeat.timeout_ms
 * (no-op without heartbeats): with on_worker_loss continue the open round
 * closes with the others' pushes and waiting pulls are answered; with
 * abort the job stops: every parked and later request gets PS_EABORTED.
 * Call it every 100 ms or so with ps_clock_ms(). */
void ps_engine_tick(ps_engine *e, uint64_t now_ms, ps_engine_send_fn send, void *ctx);

/* Whether a sparse table's index is growing, its rows still being moved
 * into the bigger one a few at each tick: psd's loop then turns without
 * waiting, so the move ends in the time the shard has nothing else to do
 * (a lookup while it lasts is slower, the old index being 80 % full). */
bool ps_engine_tables_growing(const ps_engine *e);

/* True once the job was stopped (on_worker_loss: abort, or a worker's BYE
 * with PS_FLAG_ABORT: its training diverged); *why (when not NULL) gets the
 * sentence. */
bool ps_engine_aborted(const ps_engine *e, const char **why);

/* psd stops: from now on every request but STATUS gets ERROR code (PS_ESTOPPED
 * or PS_ECOMPLETE; an aborted job keeps PS_EABORTED and its reason) with why,
 * parked pulls are answered so, and every live worker is told unasked
 * (seq 0) on the sockets its requests came from. */
void ps_engine_stop(ps_engine *e, int code, const char *why, ps_engine_send_fn send, void *ctx);

/* True when every live worker got the stop's ERROR as a reply to one of its
 * requests (or left): psd need not wait for them any longer. */
bool ps_engine_all_told(const ps_engine *e);

/* psd's loop was stalled for stall_ms (stopped, paused, starved of CPU):
 * silence within it is not the workers' fault, so each live worker's last
 * sign of life moves that much later (not past now_ms). */
void ps_engine_forgive(ps_engine *e, uint64_t stall_ms, uint64_t now_ms);

/* The rank of the live worker with this worker_id, or -1 when no live
 * worker has it (never registered, left or evicted). */
int ps_engine_worker_rank(const ps_engine *e, uint32_t worker_id);

/* True when the job is complete: no worker is live and every rank's data
 * was trained to the end (a worker of it said DONE). A rank that left
 * before (a BYE without DONE: SIGTERM; an eviction; a rank that never
 * joined) keeps the job from completing: a worker of it, or one that takes
 * it over, may still come and finish its data. */
bool ps_engine_complete(const ps_engine *e);

/* True when no worker is live, the job has begun (some rank joined or was
 * restored from a checkpoint) and it is not complete: the shard waits for
 * the ranks that have not finished (server.c's heartbeat.incomplete_wait_ms). */
bool ps_engine_idle(const ps_engine *e);

/* Writes the ranks whose data is not finished into buf, cap bytes, always
 * terminated ("rank 1 left at 262 of 4500 pushes, rank 2 evicted at 17 of
 * ? pushes": applied of the pushes its worker said its data makes, ?
 * when unknown), as ps_engine_clocks_format; returns how many there are. */
uint32_t ps_engine_unfinished_format(const ps_engine *e, char *buf, size_t cap);

/* Sets the model version (a checkpoint was loaded into the store). */
void ps_engine_restore(ps_engine *e, uint64_t version);

/* False while a sync round is part applied (pipelined rounds: some of its
 * chunks are in θ, others not yet): θ is no version, and no checkpoint may
 * be taken of it. */
bool ps_engine_whole(const ps_engine *e);

/* The chunks a sync round of the shard is applied in (1: whole, not
 * pipelined; the job's sync_chunk_kib). */
uint32_t ps_engine_chunks(const ps_engine *e);

/* The shard's store, for checkpoints. */
ps_store *ps_engine_store(ps_engine *e);

/* data.assign: dynamic: shard 0's batch queue (batchq.h) for checkpoints:
 * its bytes (0: none to keep, no queue or not sized yet), saved into buf,
 * and loaded back (leases go back to the queue; a shard without a queue
 * ignores it: 0). ps_engine_queue: the queue itself, or NULL. */
struct ps_batchq;
size_t ps_engine_queue_bytes(const ps_engine *e);
void ps_engine_queue_save(const ps_engine *e, void *buf);
int ps_engine_queue_load(ps_engine *e, const void *buf, size_t n, ps_error *err);
const struct ps_batchq *ps_engine_queue(const ps_engine *e);

/* Fills *out with the engine's counters. */
void ps_engine_stats_get(const ps_engine *e, ps_engine_stats *out);

/* Writes "clocks [c0, c1, ...]" (each rank's clock) into buf, cap bytes,
 * always terminated, ending in "..." when it does not fit. STATUS_REPLY's
 * detail. */
void ps_engine_clocks_format(const ps_engine *e, char *buf, size_t cap);

/* Writes "rank 0 applied N clock C, rank 1 ..." into buf as above: psd's
 * stop line. */
void ps_engine_ranks_format(const ps_engine *e, char *buf, size_t cap);

/* Logs a warning for each rank more than PS_REPORT_DROPPED_SHARE percent of
 * the rounds that closed while it trained closed without its push (sync
 * with backup workers; report_limits.h): its rank, its pushes applied, the
 * rounds and its pushes dropped. Returns how many it named. psd's stop. */
uint32_t ps_engine_ranks_dropped_warn(const ps_engine *e);

/* For /metrics, read after each call that may write θ: how many times θ
 * was written (a push applied or accumulated into the open round, with the
 * round's close when it completed it, or a round closed without a push:
 * an eviction, a BYE) and how long the last write took; how many sync
 * rounds closed and how long the last was open (its first push to its
 * close). Seconds. */
typedef struct ps_engine_timing {
    uint64_t applies, rounds;
    double last_apply_s, last_round_s;
} ps_engine_timing;
void ps_engine_timing_get(const ps_engine *e, ps_engine_timing *out);

/* The staleness of the pushes applied, as counts per staleness: bucket s
 * counts pushes of staleness s, the last (*nbuckets - 1) those of that or
 * more; *count and *sum over all of them. Owned by the engine, valid while
 * it lives. */
const uint64_t *ps_engine_staleness(const ps_engine *e, size_t *nbuckets, uint64_t *count,
                                    double *sum);

/* What the shard holds of each sparse table (rows, bytes, admissions,
 * evictions), refreshed by the call; *n gets the count (0 for a dense
 * model). Owned by the engine, valid until the next call. */
const ps_table_status *ps_engine_tables_get(ps_engine *e, size_t *n);

/* The shard's sparse tables themselves, for the checkpointer (which owns
 * no thread of its own for them: see checkpointer.h); *n gets the count. */
struct ps_table *const *ps_engine_tables(ps_engine *e, size_t *n);

/* The job's number of ranks (rows of ps_engine_workers_get). */
uint32_t ps_engine_workers(const ps_engine *e);

/* Fills rows[0 .. ps_engine_workers(e) - 1] with what the shard knows of
 * each rank at now_ms (ps_clock_ms()): state, host, last seen, clock,
 * pushes applied, dropped and duplicate, evictions, the loss and samples/s
 * its worker last reported, the staleness of its applied pushes.
 * STATUS_REPLY's worker table; /metrics reads it too. */
void ps_engine_workers_get(const ps_engine *e, uint64_t now_ms, ps_worker_status *rows);

/* Fills *out with what the shard knows of rank as θ holds it: a push that
 * waits in the open sync round is not counted yet (a checkpoint has no
 * accumulator, so after a restart that push must be applied again).
 * PS_ERANGE past the job's workers. */
int ps_engine_rank_get(const ps_engine *e, uint32_t rank, ps_engine_rank *out);

/* Restores a rank from a checkpoint (all but live): a later HELLO with the
 * same incarnation keeps its last applied seq, so a push in flight across
 * the restart is acknowledged as a duplicate. PS_ERANGE past the job's
 * workers; PS_ESTATE when a worker holds the rank already. */
int ps_engine_rank_restore(ps_engine *e, uint32_t rank, const ps_engine_rank *in);

#endif
