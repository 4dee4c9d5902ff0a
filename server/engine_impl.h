/* engine_impl.h — the insides of one shard's protocol engine (engine.h),
 * shared by engine.c (requests, membership, failures, reports) and
 * engine_modes.c (the consistency modes' rows). Not for other modules. */
#ifndef PS_ENGINE_IMPL_H
#define PS_ENGINE_IMPL_H

#include "engine.h"

#include "batchq.h"
#include "compress.h"
#include "mode.h"
#include "pool.h"
#include "store.h"
#include "table.h"
#include "util.h"
#include "wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* worker_id = generation << RANK_BITS | rank: the rank finds the slot at
 * once, the generation tells a worker from the one that held the rank
 * before it. The generation is never 0, so worker_id 0 is never valid. It
 * starts at random in each psd: after a restart, requests a worker queued
 * for the psd before (resent copies of a push it acknowledged long ago)
 * carry an id the new one never gave, and are refused instead of applied
 * again over a checkpoint that does not hold them. */
#define RANK_BITS 12
#define RANK_MASK ((1u << RANK_BITS) - 1)
#define GEN_MAX   ((1u << (32 - RANK_BITS)) - 1)
_Static_assert(PS_MAX_WORKERS <= (1u << RANK_BITS), "a rank must fit in RANK_BITS");

#define ERROR_CODES       64 /* counters for codes -1 .. -63 */
#define PARKED_PER_WORKER 4
#define PARKED_MIN        16

typedef enum slot_state { SLOT_UNSEEN, SLOT_LIVE, SLOT_LEFT } slot_state;

/* One rank of the job. A rank that never registered still counts for sync
 * rounds: the job has `workers` workers, minus those that left. The fields
 * a request touches come first, so that a request of a rank among
 * thousands touches its first two cache lines (and the identity it came
 * from), not ten; what HELLO, STATUS and checkpoints read comes after. */
typedef struct worker_slot {
    /* read or written by every request of the rank */
    slot_state state;
    uint32_t worker_id;
    uint64_t last_seen_ms; /* when it last sent anything, for eviction */
    uint64_t answered_ms;  /* when psd last sent it a reply (PS_FLAG_QUIET heartbeats) */
    uint64_t last_seq;     /* seq of the last push applied */
    uint64_t clock;        /* clock of its last applied push + 1; 0 before any */
    uint64_t applied;      /* pushes of this rank applied (or accumulated) */
    uint64_t stale_max;
    double stale_sum;
    uint32_t nparked; /* its pulls parked: a pull of a rank with none is no retry */
    float weight;     /* deterministic: weight of the staged gradient */
    bool has_seq;     /* a push was applied since HELLO */
    bool pushed;      /* contributed to the open round (kept if it leaves) */
    bool done;        /* said it pushed its last gradient; counts as departed */
    bool finished;    /* a worker of the rank said DONE: its data is trained (kept for good) */
    bool told;        /* got the stop's ERROR as a reply to a request */
    bool sp_pushed;   /* a sparse push of it waits in the open round's accumulators */
    bool prev_has_seq;
    bool said_bye; /* left with BYE (not evicted) */
    /* before its push to the open round: what θ holds of it (checkpoints) */
    uint64_t prev_seq;
    uint64_t rounds;            /* sync rounds closed while it was live and not done */
    uint64_t absent;            /* sync rounds closed while it was away (evicted, not finished) */
    double loss, samples_per_s; /* NaN: not said; what its worker last said on a heartbeat */
    /* where its requests come from: its main socket and its heartbeat
     * socket, so a stop can be told to it unasked */
    size_t ident_main_len, ident_hb_len;
    unsigned char ident_main[PS_IDENTITY_MAX], ident_hb[PS_IDENTITY_MAX];
    /* read by HELLO, STATUS, checkpoints and psd's stop */
    uint64_t expected;     /* the pushes its last HELLO said its data makes; 0: unknown */
    bool evicted;          /* left by eviction: a new HELLO takes the rank over */
    bool hello_after_push; /* registered again after its push to the open round */
    /* the HELLO that registered it, so a retried HELLO gets the same WELCOME */
    uint64_t hello_seq;
    uint64_t incarnation; /* the client process that holds (or held) the rank; 0: unknown */
    size_t hello_identity_len;
    unsigned char hello_identity[PS_IDENTITY_MAX];
    /* for people (STATUS, /metrics): the rank's host, its pushes' fate */
    char hostname[PS_HOST_MAX];
    uint64_t dropped, duplicates, evictions;
    /* data.assign: dynamic (shard 0): the last grant of batches, by the seq
     * of the request that got it, so a retry gets the same one */
    bool has_grant;
    uint64_t grant_seq, grant_first;
    uint32_t grant_count, grant_flags;
} worker_slot;

typedef struct parked_pull {
    unsigned char identity[PS_IDENTITY_MAX];
    size_t identity_len;
    uint32_t worker_id, flags;
    uint64_t seq, key_lo, key_hi, min_version;
    uint64_t clock;       /* ssp: the puller's clock */
    uint32_t chunks_sent; /* flag CHUNK: chunks of the next version sent to it */
} parked_pull;

/* Where the reply to the request being handled goes. */
typedef struct peer {
    const void *identity;
    size_t identity_len;
    ps_engine_send_fn send;
    void *ctx;
} peer;

/* One consistency mode (docs/architecture.md#a-consistency-mode): the engine asks its row, never
 * the mode, when a push is applied and when a pull may be answered; whether pushes go into rounds
 * (the store keeps an accumulator) is the mode's row in mode.h (e->mode->rounds). */
typedef struct mode_ops {
    /* applies or accumulates one checked, decoded push and replies */
    int (*push)(ps_engine *e, const peer *p, const ps_msg *req, const float *grad, worker_slot *w);
    /* true when a pull (min_version, the puller's clock) may be answered now */
    bool (*pull_ready)(const ps_engine *e, uint64_t min_version, uint64_t clock);
} mode_ops;

#define STALE_BUCKETS 256 /* staleness 0 .. 254 exactly, the last bucket: 255 or more */

struct ps_engine {
    ps_job job;
    const ps_log *log;
    uint32_t shard;
    uint64_t lo, hi, num_params;
    ps_store *store;
    uint64_t version;
    uint64_t sched_step; /* sync: the schedule's step of the last round closed (engine_modes.c) */

    worker_slot *slots; /* job.workers of them, by rank */
    uint32_t live, departed;
    uint32_t generation;

    /* the open sync round */
    uint32_t round_pushes; /* pushes accumulated, departed workers' too */
    uint32_t pushed_alive; /* workers not departed that pushed */
    double round_samples;
    float *stage; /* deterministic: one gradient per rank, summed in rank order */

    /* pipelined sync rounds (proto/ps.proto, "Chunks"; nchunks 1: off, the
     * whole-θ path): chunk c is keys [lo + c·chunk_keys, ...). A chunk is
     * summed and applied once every push of the round holds it, after the
     * round is sealed (it closes without any later push: every rank it
     * waits for pushed); the version moves on at the last chunk */
    uint64_t chunk_keys;
    uint32_t nchunks;
    uint32_t *chunk_have;        /* per chunk: the round's pushes holding it */
    unsigned char *chunk_got;    /* rank × chunk: the rank's push holds it */
    unsigned char *chunk_done;   /* per chunk: applied in the open round */
    uint32_t chunks_applied;     /* of the open round; > 0: θ is part applied */
    bool round_chunked;          /* the open round is counted by chunks: a push of it came
                                  * as chunks (a round of whole pushes only, as from
                                  * workers on psd's host, takes the whole-θ path) */
    double chunk_divisor;        /* the open round's, fixed at its first chunk */
    unsigned char *chunk_enc;    /* the pull codec's chunks of the next version */
    size_t *chunk_enc_off;       /* nchunks + 1 offsets into chunk_enc */
    unsigned char *chunk_enc_ok; /* per chunk: encoded (θ finite) */
    uint64_t chunk_replies;      /* PULL_REPLYs of one chunk sent */

    parked_pull *parked;
    size_t nparked, parked_cap;
    /* the least min_version and clock of the parked pulls (UINT64_MAX:
     * none): while the mode's rule refuses a pull of both, it refuses each
     * parked one, and a push need not look at them */
    uint64_t parked_version_min, parked_clock_min;
    /* ssp: the least clock of the ranks that count for the bound, and how
     * many are at it (ssp_min UINT64_MAX: none counts); a push moves them
     * at O(1), a pass over the ranks only when the last rank at the least
     * moves on or a rank comes or goes (ps_engine_ssp_recount) */
    uint64_t ssp_min;
    uint32_t ssp_at_min;
    /* no rank can be silent past heartbeat.timeout_ms before this (0: look) */
    uint64_t evict_next_ms;
    /* ps_clock_ms() when the request being handled came (or of the tick) */
    uint64_t now_ms;

    /* failures: silent workers are evicted after heartbeat.timeout_ms */
    uint64_t round_start_ms, max_round_ms;
    /* for /metrics (ps_engine_timing_get): rounds closed and θ writes, and
     * how long the last of each took, in seconds */
    double round_start_s, last_round_s, last_apply_s;
    uint64_t rounds, applies;
    uint64_t evictions;
    /* 0 while the job runs; else every request gets this code: PS_EABORTED
     * (on_worker_loss: abort and a worker was lost, or a worker diverged),
     * PS_ESTOPPED or PS_ECOMPLETE (psd is stopping, ps_engine_stop) */
    int stop_code;
    char abort_msg[PS_MSG_ERROR_MAX];

    /* compression (compress.h): a compressed push is decoded into push_dec;
     * θ goes out in the pull codec, encoded once per version into pull_enc
     * and served to every worker from there */
    float *push_dec;
    const ps_compress_ops *pull_ops; /* NULL: pulls are float32 */
    unsigned char *pull_enc;
    size_t pull_enc_bytes;
    uint64_t pull_enc_version;
    bool pull_enc_valid;
    uint64_t pull_encodings; /* times θ was encoded */

    const mode_ops *ops;
    const ps_mode_desc *mode;
    /* staleness of applied pushes: version at apply - the push's model_version */
    uint64_t stale_hist[STALE_BUCKETS];
    uint64_t stale_count, stale_max;
    double stale_sum;

    ps_worker_status *status_rows; /* STATUS_REPLY's worker table, one row per rank */
    unsigned char *status_buf;     /* ... packed */
    size_t status_buf_cap;

    ps_msg reply;                       /* reused for every reply */
    char error_text[PS_MSG_ERROR_MAX];  /* its error ... */
    char detail_text[PS_MSG_ERROR_MAX]; /* ... or detail */
    ps_layout layout;                   /* the WELCOME's shard map, tensors and tables */

    /* sparse tables (engine_sparse.c): the shard's part of each, and the
     * buffers of a sparse request, grown to the largest yet */
    ps_table *tables[PS_MAX_TABLES];
    uint32_t ntables;
    uint64_t key_lo, key_last; /* the shard's keys of every table */
    float *sp_rows;            /* rows read or decoded: sp_cap floats */
    size_t sp_cap;
    unsigned char *sp_out; /* a reply's keys and rows: sp_out_cap bytes */
    size_t sp_out_cap;
    uint64_t *sp_keys; /* a request's keys decoded: sp_keys_cap */
    size_t sp_keys_cap;
    struct sparse_hint *sp_hints; /* a rank's last pull of rows (engine_sparse.c), or NULL */
    ps_pool *pool;                /* helper threads for big loops; NULL: this thread only */
    size_t sp_hint_bytes;         /* what they hold in all */
    ps_table_status table_status[PS_MAX_TABLES];
    uint64_t sp_pulls, sp_pushes; /* sparse requests served */
    uint64_t errors[ERROR_CODES];
    uint64_t errors_total, pushes, duplicates, dropped, pulls;
    /* data.assign: dynamic: the queue of the epoch's batches (shard 0 only,
     * else NULL), and the grant the reply to the push being handled carries
     * (grant_on: the slot whose grant it is) */
    ps_batchq *bq;
    const worker_slot *grant_on;
};

/* The rank of a slot. */
static inline int ps_engine_worker_slot_rank(const ps_engine *e, const worker_slot *w)
{
    return (int)(w - e->slots);
}

/* The live worker with this id (its last sign of life now), or NULL. */
worker_slot *ps_engine_worker_find(ps_engine *e, uint32_t worker_id);

/* Replies ERROR (code, sentence) to req and counts it; returns code. */
int ps_engine_refuse(ps_engine *e, const peer *p, const ps_msg *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The push of req is handled (flags: DUPLICATE, DROPPED or 0): its ACK,
 * with the pull riding in it answered or parked (PS_FLAG_PULL). */
int ps_engine_push_done(ps_engine *e, const peer *p, const ps_msg *req, uint32_t flags);

/* Answers the parked pulls the version (or the clocks) now allow. */
void ps_engine_parked_answer(ps_engine *e, ps_engine_send_fn send, void *ctx);

/* True when the open sync round can close (every worker that has not
 * left pushed it, the first N - backup_workers with backup workers). */
bool ps_engine_round_complete(const ps_engine *e);

/* ssp: ssp_min and ssp_at_min counted again over the ranks (after a rank
 * joined, left, was done or restored). */
void ps_engine_ssp_recount(ps_engine *e);
bool ps_engine_ssp_reach(ps_engine *e, worker_slot *w, uint64_t clock);

/* Closes the open sync round if it is complete (pipelined: applies the
 * chunks every push holds, answering the parked pulls chunk by chunk
 * through send); true when it closed. */
bool ps_engine_round_maybe_close(ps_engine *e, ps_engine_send_fn send, void *ctx);

/* Pipelined rounds: a rank whose push joined the open round left before
 * it gave every chunk: the chunks it did not give count as zeros. */
void ps_engine_chunks_fill(ps_engine *e, worker_slot *w);

/* Pipelined rounds: chunk c's keys [*lo, *hi). */
void ps_engine_chunk_range(const ps_engine *e, uint32_t c, uint64_t *lo, uint64_t *hi);

/* A PULL_REPLY of chunk c of the version being applied, to a parked pull. */
void ps_engine_chunk_answer(ps_engine *e, parked_pull *q, uint32_t c, ps_engine_send_fn send,
                            void *ctx);

/* One write of θ that started at t0 (ps_clock_s) is over: counted and
 * timed for /metrics. */
void ps_engine_applied(ps_engine *e, double t0);

/* The ops row of a mode; NULL out of range. */
const mode_ops *ps_engine_mode_ops(ps_mode mode);

/* Sparse tables (engine_sparse.c). The shard's tables of the job (none for
 * a dense model): 0, or PS_EINVAL / PS_ENOMEM / PS_EUNSUPPORTED with err. */
int ps_engine_tables_new(ps_engine *e, ps_error *err);
void ps_engine_tables_destroy(ps_engine *e);

/* A PULL or a PUSH of a table (req->table > 0), checked and answered. */
int ps_engine_sparse_pull(ps_engine *e, const peer *p, const ps_msg *req);
int ps_engine_sparse_push(ps_engine *e, const peer *p, const ps_msg *req);

/* Sync: the open round closes: every table applies its accumulated rows
 * with scale, at the new version. */
void ps_engine_tables_round_close(ps_engine *e);

/* The checks every push of a registered worker meets first: a retry of
 * one applied is acknowledged again (DUPLICATE), one after the rank said it
 * was done refused (ESTATE). True when the push was answered so, *rc the
 * handler's result. */
bool ps_engine_push_answered(ps_engine *e, const peer *p, const ps_msg *req, worker_slot *w,
                             int *rc);

/* A sync push's round: one for a round closed is dropped (ACK DROPPED),
 * one for a round not open yet refused (ECLOCK). True when answered so. */
bool ps_engine_round_screen(ps_engine *e, const peer *p, const ps_msg *req, worker_slot *w,
                            int *rc);

/* A tick: rows idle past sparse.idle_versions are dropped, a bounded
 * number per call. */
void ps_engine_tables_tick(ps_engine *e);

/* The tables' figures, for STATUS_REPLY and /metrics: e->table_status. */
void ps_engine_tables_status(ps_engine *e);

#endif
