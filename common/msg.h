/* msg.h — one message of the wire protocol, decoded: a small typed header
 * (ps_msg), the rare large parts it points at (the WELCOME's shard and
 * tensor tables, ps_layout), and the names every layer shares: message
 * types, payload encodings, flags, worker states. One X-macro list of the
 * header's fields (PS_MSG_FIELDS) makes the struct here and both directions
 * of its protobuf mapping in codec.c, so a field is added in two places:
 * proto/ps.proto and that list. See docs/architecture.md#the-wire-protocol. */
#ifndef PS_MSG_H
#define PS_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PS_PROTOCOL_VERSION 2u
#define PS_JOB_NAME_MAX     64  /* bytes of a job name, NUL included */
#define PS_ENDPOINT_MAX     128 /* bytes of an endpoint, NUL included */
#define PS_TENSOR_NAME_MAX  64  /* bytes of a tensor name, NUL included */
#define PS_MAX_SHARDS       256
#define PS_MAX_TENSORS      32
#define PS_MAX_DIMS         4
#define PS_MAX_TABLES       4     /* sparse tables of θ */
#define PS_TABLE_NAME_MAX   16    /* bytes of a table's name, NUL included */
#define PS_MSG_ERROR_MAX    256   /* bytes of a reply's error or detail text, NUL included */
#define PS_MODE_NAME_MAX    16    /* bytes of a mode's name, NUL included */
#define PS_HOST_MAX         64    /* bytes of a host id or host name, NUL included */
#define PS_HEADER_MAX_BYTES 65536 /* frame 1 larger than this is refused */
/* A frame of sparse rows (keys and rows of one request to one shard) larger
 * than this is refused: psd of a job with sparse tables takes messages of up
 * to this many bytes besides its dense θ (about 5 M keys of dim 9). */
#define PS_SPARSE_FRAME_MAX ((int64_t)1 << 28)

/* The message types: name and value, as ps.proto's MsgType (codec.c
 * asserts each value equal to the generated one). */
#define PS_MSG_TYPES(X)                                                                            \
    X(NONE, 0)                                                                                     \
    X(HELLO, 1)                                                                                    \
    X(WELCOME, 2)                                                                                  \
    X(PULL, 3)                                                                                     \
    X(PULL_REPLY, 4)                                                                               \
    X(PUSH, 5)                                                                                     \
    X(ACK, 6)                                                                                      \
    X(HEARTBEAT, 7)                                                                                \
    X(BYE, 8)                                                                                      \
    X(STATUS, 9)                                                                                   \
    X(STATUS_REPLY, 10)                                                                            \
    X(ERROR, 11)                                                                                   \
    X(CHECKPOINT, 12)                                                                              \
    X(LEASE, 13)                                                                                   \
    X(LEASE_REPLY, 14)

typedef enum ps_msg_type {
#define PS_MSG_TYPE_ENUM(name, value) PS_MSG_##name = value,
    PS_MSG_TYPES(PS_MSG_TYPE_ENUM)
#undef PS_MSG_TYPE_ENUM
        PS_MSG_COUNT
} ps_msg_type;

/* The payload encodings, as ps.proto's Encoding (asserted in codec.c):
 *  NONE     no payload frame
 *  F32      little-endian float32, one per key of [key_lo, key_hi)
 *  F16, INT8, TOPK, BF16: a codec of compress.h (its descriptor names it),
 *           one value per key of [key_lo, key_hi)
 *  KEYS_U64 little-endian uint64 keys
 *  SHM_F32  float32 for [key_lo, key_hi) in shared memory, no frame
 *  WORKERS  STATUS_REPLY only: a packed WorkerTable (ps_codec_workers_*) */
#define PS_ENCODINGS(X)                                                                            \
    X(NONE, 0)                                                                                     \
    X(F32, 1)                                                                                      \
    X(F16, 2)                                                                                      \
    X(INT8, 3)                                                                                     \
    X(TOPK, 4)                                                                                     \
    X(KEYS_U64, 5)                                                                                 \
    X(SHM_F32, 6)                                                                                  \
    X(BF16, 7)                                                                                     \
    X(WORKERS, 8)

typedef enum ps_encoding {
#define PS_ENCODING_ENUM(name, value) PS_ENC_##name = value,
    PS_ENCODINGS(PS_ENCODING_ENUM)
#undef PS_ENCODING_ENUM
        PS_ENC_COUNT
} ps_encoding;

/* HEARTBEAT flags: the worker pushed its last gradient, its data is
 * finished: it only waits now */
#define PS_FLAG_DONE 1u

/* PULL flags (and PUSH with PS_FLAG_PULL) */
#define PS_FLAG_SHM 2u /* answer in the worker's shared-memory segment */

/* BYE flags */
#define PS_FLAG_ABORT 4u /* the worker stops the whole job; error says why (divergence) */

/* PUSH flags: a PULL of the push's keys rides in it (min_version,
 * pull_clock), answered with the push's seq: one PULL_REPLY carrying the
 * push's ACK flags when the pull may be answered at once, else the ACK now
 * and the PULL_REPLY when it may (proto/ps.proto). */
#define PS_FLAG_PULL 8u

/* PULL flags, sparse tables: the live rows from a cursor (export) */
#define PS_FLAG_SCAN 16u

/* Pipelined sync rounds (proto/ps.proto, "Chunks"): a PUSH holding one
 * chunk of the shard; a PULL whose reply may come a chunk at a time; a
 * PULL_REPLY holding one chunk */
#define PS_FLAG_CHUNK 0x1000u
/* WELCOME flag: the shard's chunks are for a worker whose link to psd
 * leaves its host; a worker on psd's own host (loopback, ipc, inproc, an
 * address of its own) sends and takes θ whole (sync_chunk_kib: auto) */
#define PS_FLAG_CHUNK_REMOTE 0x2000u

/* HEARTBEAT flags: an ACK is wanted only when psd has sent the worker no
 * reply within half of heartbeat.interval_ms (any reply tells it psd is alive,
 * and the worker reads the replies of its every socket for that). An
 * ERROR is always sent. A worker without the flag gets its ACK each time. */
#define PS_FLAG_QUIET 0x100000u

/* Sparse tables: a PUSH whose keys are those of the worker's PULL of seq
 * keys_of to this shard, not sent again (keys_bytes 0); psd answers
 * PS_ESTATE, applying nothing, when it no longer holds them. A PULL_REPLY
 * with KEYS_KEPT says psd holds the pull's keys for such a push. */
#define PS_FLAG_KEYS_OF   0x10000u
#define PS_FLAG_KEYS_KEPT 0x20000u

/* A PULL's min_version that waits for the final θ: answered once no worker
 * is left that could change it (all done, left or evicted). */
#define PS_VERSION_FINAL UINT64_MAX

/* ACK flags (also a PULL_REPLY's to a PUSH with PS_FLAG_PULL) */
#define PS_ACK_DUPLICATE 1u /* a retried push: acknowledged, not applied again */
#define PS_ACK_DROPPED   2u /* a push for a round already closed: not applied */

/* LEASE_REPLY flags (also an ACK's or PULL_REPLY's to a PUSH asking for
 * leases, data.assign: dynamic): none free now, the epoch waits on leases
 * held by others; or every batch of the job is trained */
#define PS_LEASE_WAIT 0x100u
#define PS_LEASE_END  0x200u

typedef struct ps_shard_info {
    char endpoint[PS_ENDPOINT_MAX];
    uint64_t key_lo, key_hi;
} ps_shard_info;

typedef struct ps_tensor_info {
    char name[PS_TENSOR_NAME_MAX];
    uint64_t shape[PS_MAX_DIMS];
    uint32_t ndims;
    uint64_t offset; /* first key of the tensor in θ */
} ps_tensor_info;

/* A sparse table: rows of dim floats by 64-bit key. */
typedef struct ps_table_info {
    char name[PS_TABLE_NAME_MAX];
    uint32_t dim;
} ps_table_info;

/* The job's layout, as a WELCOME carries it: the shard map, θ's tensors and
 * its sparse tables. Large (8 KiB), so a message points at one: a server's
 * lives as long as the server, a decoded one in the receiver's
 * ps_codec_arena. */
typedef struct ps_layout {
    uint32_t nshards, ntensors, ntables;
    ps_shard_info shards[PS_MAX_SHARDS];
    ps_tensor_info tensors[PS_MAX_TENSORS];
    ps_table_info tables[PS_MAX_TABLES];
} ps_layout;

/* The header's fields: (C type, name) for numbers, (C type, name, protobuf
 * type) for enums, (name, bytes with the NUL) for strings. The name is the
 * field's in ps.proto's Header. */
#define PS_MSG_FIELDS(NUM, ENUM, STR)                                                              \
    ENUM(ps_msg_type, type, Ps__MsgType)                                                           \
    ENUM(ps_encoding, encoding, Ps__Encoding)                                                      \
    NUM(uint32_t, protocol)                                                                        \
    NUM(uint32_t, worker_id)                                                                       \
    NUM(int32_t, status) /* replies: 0 or a PS_E code */                                           \
    NUM(int32_t, rank)   /* HELLO: asked (-1: any); WELCOME: given */                              \
    NUM(uint32_t, num_workers)                                                                     \
    NUM(uint32_t, shard_index)                                                                     \
    NUM(uint32_t, samples) /* PUSH: samples the gradient was averaged over */                      \
    NUM(uint32_t, flags)                                                                           \
    NUM(uint32_t, shm_pid) /* WELCOME: the worker's shared-memory segment */                       \
    NUM(uint32_t, shm_fd)                                                                          \
    NUM(uint32_t, table)         /* 0: the dense θ; t: sparse table t - 1 */                      \
    NUM(uint32_t, dim)           /* sparse: floats of a row */                                     \
    NUM(uint32_t, lease_count)   /* PUSH, LEASE: batches wanted; replies: granted (dynamic) */     \
    NUM(uint32_t, epoch_batches) /* PUSH with batch, LEASE: batches of an epoch */                 \
    NUM(uint32_t, chunk)  /* flag CHUNK: the chunk of the shard a PUSH or PULL_REPLY holds */      \
    NUM(uint32_t, chunks) /* ... of this many */                                                   \
    NUM(uint64_t, seq)                                                                             \
    NUM(uint64_t, clock)                                                                           \
    NUM(uint64_t, model_version)                                                                   \
    NUM(uint64_t, min_version)                                                                     \
    NUM(uint64_t, pull_clock) /* PUSH with PS_FLAG_PULL: the riding pull's clock */                \
    NUM(uint64_t, nkeys)      /* sparse: keys in the payload (SCAN: at most this many rows) */     \
    NUM(uint64_t, keys_bytes) /* sparse: the payload's bytes of keys; the rest are rows */         \
    NUM(uint64_t, keys_of) /* sparse PUSH with PS_FLAG_KEYS_OF: the seq of the pull of its keys */ \
    NUM(uint64_t, key_lo)                                                                          \
    NUM(uint64_t, key_hi)                                                                          \
    NUM(uint64_t, payload_bytes)                                                                   \
    NUM(uint64_t, num_params)                                                                      \
    NUM(uint64_t, shm_bytes)                                                                       \
    NUM(uint64_t, shm_token)                                                                       \
    NUM(uint64_t, incarnation)   /* HELLO: the client process, random, 0 when unknown */           \
    NUM(uint64_t, staleness_max) /* STATUS_REPLY */                                                \
    NUM(uint64_t, staleness_p99)                                                                   \
    NUM(uint64_t, applied)     /* WELCOME: the rank's pushes applied so far */                     \
    NUM(uint64_t, applied_seq) /* WELCOME: its last applied seq (same incarnation), else 0 */      \
    NUM(uint64_t, expected)    /* HELLO: the pushes its data makes over the job (0: unknown) */    \
    NUM(uint64_t, batch)       /* PUSH: the queue's batch it trained + 1 (0: none) */              \
    NUM(uint64_t, lease_first) /* replies: the first batch granted */                              \
    NUM(double, staleness_mean)                                                                    \
    NUM(double, loss) /* HEARTBEAT: the worker's own figures (NaN: unknown) */                     \
    NUM(double, samples_per_s)                                                                     \
    NUM(uint64_t, chunk_keys) /* WELCOME: keys per chunk of sync pushes (0: whole) */              \
    STR(job, PS_JOB_NAME_MAX)                                                                      \
    STR(error, PS_MSG_ERROR_MAX)  /* replies: the sentence of an ERROR */                          \
    STR(detail, PS_MSG_ERROR_MAX) /* admin replies, for people */                                  \
    STR(mode, PS_MODE_NAME_MAX)                                                                    \
    STR(host, PS_HOST_MAX)     /* HELLO: the boot id, asking for shared memory on this host */     \
    STR(hostname, PS_HOST_MAX) /* HELLO: the worker's host name, for people */

#define PS_MSG_NUM_MEMBER(ctype, name)         ctype name;
#define PS_MSG_ENUM_MEMBER(ctype, name, ptype) ctype name;
#define PS_MSG_STR_MEMBER(name, cap)           const char *name;

/* One message, decoded or to encode. A string field is NULL or a
 * NUL-terminated string shorter than its limit; in a decoded message it
 * points into the receiver's ps_codec_arena (or at a static "" when
 * absent), as payload
 * points into the received frame: both are valid until the next decode
 * into that arena, or until the frames are closed. To encode, point them
 * at strings that outlive the send. layout: the WELCOME's (NULL in other
 * messages). With encoding SHM_F32 there is no frame: payload is NULL and
 * payload_bytes is what the shared memory holds (one float per key). */
typedef struct ps_msg {
    PS_MSG_FIELDS(PS_MSG_NUM_MEMBER, PS_MSG_ENUM_MEMBER, PS_MSG_STR_MEMBER)
    const ps_layout *layout;
    const void *payload;
    const uint64_t *keys; /* a received sparse request's keys, decoded (NULL: not) */
} ps_msg;

/* Resets m to an empty message of the given type, protocol version set. */
static inline void ps_msg_init(ps_msg *m, ps_msg_type type)
{
    *m = (ps_msg){.type = type, .protocol = PS_PROTOCOL_VERSION};
}

/* A string field's text: "" for NULL. */
static inline const char *ps_msg_str(const char *field)
{
    return field != NULL ? field : "";
}

/* True when m's payload travels as frame 2 (not absent, not in shared
 * memory). */
static inline bool ps_msg_has_frame(const ps_msg *m)
{
    return m->payload_bytes > 0 && m->encoding != PS_ENC_SHM_F32;
}

/* The message type's name ("PULL"); "?" when unknown. */
const char *ps_msg_type_name(int type);

/* What a shard knows of a rank, ordered from most to least alive (psctl
 * merges the shards' views by that order): name and meaning. On the wire
 * (WorkerStatus.state) the name. */
#define PS_WORKER_STATES(X)                                                                        \
    X(LIVE, "live", "a worker holds it")                                                           \
    X(DONE, "done", "pushed its last")                                                             \
    X(LEFT, "left", "said bye")                                                                    \
    X(EVICTED, "evicted", "silent")                                                                \
    X(VACANT, "vacant", "never held")

typedef enum ps_worker_state {
#define PS_WORKER_STATE_ENUM(name, text, meaning) PS_WORKER_##name,
    PS_WORKER_STATES(PS_WORKER_STATE_ENUM)
#undef PS_WORKER_STATE_ENUM
        PS_WORKER_STATE_COUNT
} ps_worker_state;

/* A state's name ("evicted") and meaning ("silent"); "?" out of range. */
const char *ps_worker_state_name(ps_worker_state state);
const char *ps_worker_state_meaning(ps_worker_state state);

/* The state named; -1 for another name. */
int ps_worker_state_parse(const char *name);

/* One row of STATUS_REPLY's worker table (proto WorkerStatus). */
typedef struct ps_worker_status {
    uint32_t rank;
    ps_worker_state state;
    char hostname[PS_HOST_MAX];
    uint64_t last_seen_ms; /* ms since its worker's last message */
    uint64_t clock, pushes, dropped, duplicates, evictions;
    uint64_t rounds;            /* sync: rounds closed while it trained (live, not done) */
    double loss, samples_per_s; /* last heartbeat's; NaN: none */
    uint64_t staleness_max;
    double staleness_mean;
    uint32_t worker_id; /* 0: never held */
    bool finished;      /* its data was trained to the end (a worker of it said DONE) */
    uint64_t expected;  /* the pushes its worker said its data makes; 0: unknown */
    uint64_t batches;   /* data.assign: dynamic: the queue's batches it trained */
} ps_worker_status;

/* What a shard holds of one sparse table (proto TableStatus), for
 * STATUS_REPLY, /metrics and psctl. */
typedef struct ps_table_status {
    char name[PS_TABLE_NAME_MAX];
    uint32_t dim;
    uint64_t rows;         /* live */
    uint64_t bytes;        /* memory held: rows, index, sketch, accumulator */
    uint64_t admitted;     /* rows created */
    uint64_t unadmitted;   /* writes dropped below sparse.min_count */
    uint64_t evicted_idle; /* rows dropped after sparse.idle_versions */
    uint64_t evicted_cap;  /* rows dropped at sparse.max_rows */
} ps_table_status;

#endif
