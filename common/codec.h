/* codec.h — the wire codec (DESIGN §4): a protobuf-c Header frame plus an
 * optional raw payload frame become one checked ps_msg, and back. This is the
 * only place bytes from the network become structs: every length, count and
 * string is checked here, and code after it trusts the ps_msg. */
#ifndef PS_CODEC_H
#define PS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define PS_PROTOCOL_VERSION 1u
#define PS_JOB_NAME_MAX     64  /* bytes of a job name, NUL included */
#define PS_ENDPOINT_MAX     128 /* bytes of an endpoint, NUL included */
#define PS_TENSOR_NAME_MAX  64  /* bytes of a tensor name, NUL included */
#define PS_MAX_SHARDS       32
#define PS_MAX_TENSORS      32
#define PS_MAX_DIMS         4
#define PS_MSG_ERROR_MAX    256   /* bytes of a reply's error text */
#define PS_HOST_MAX         64    /* bytes of a host id, NUL included */
#define PS_HEADER_MAX_BYTES 65536 /* frame 1 larger than this is refused */

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
    X(CHECKPOINT, 12)

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

/* HEARTBEAT flags */
#define PS_FLAG_DONE 1u /* the worker pushed its last gradient: it only waits now */

/* BYE flags */
#define PS_FLAG_ABORT 4u /* the worker stops the whole job; error says why (divergence) */

/* PULL flags */
#define PS_FLAG_SHM 2u /* answer in the worker's shared-memory segment */

/* A PULL's min_version that waits for the final θ: answered once no worker
 * is left that could change it (all done, left or evicted). */
#define PS_VERSION_FINAL UINT64_MAX

/* ACK flags */
#define PS_ACK_DUPLICATE 1u /* a retried push: acknowledged, not applied again */
#define PS_ACK_DROPPED   2u /* a push for a round already closed: not applied */

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

/* One message, decoded. Fields a message type does not use are zero.
 * payload points into the received frame (not owned, valid while the frame
 * is); payload_bytes equals that frame's size. With encoding SHM_F32 there
 * is no frame: payload is NULL and payload_bytes is what the shared memory
 * holds (one float per key). */
typedef struct ps_msg {
    ps_msg_type type;
    uint32_t protocol;
    char job[PS_JOB_NAME_MAX];
    uint32_t worker_id;
    uint64_t seq;
    uint64_t clock;
    uint64_t model_version;
    uint64_t min_version;
    uint64_t key_lo, key_hi;
    ps_encoding encoding;
    uint64_t payload_bytes;
    int32_t status; /* replies: 0 or a PS_E code */
    char error[PS_MSG_ERROR_MAX];
    int32_t rank;
    uint32_t num_workers;
    uint64_t num_params;
    uint32_t shard_index;
    uint32_t samples; /* PUSH: samples the gradient was averaged over */
    uint32_t flags;
    char mode[16];
    char detail[PS_MSG_ERROR_MAX]; /* admin replies */
    uint32_t nshards;
    ps_shard_info shards[PS_MAX_SHARDS];
    uint32_t ntensors;
    ps_tensor_info tensors[PS_MAX_TENSORS];
    char host[PS_HOST_MAX];   /* HELLO: asks for shared memory on this host */
    uint32_t shm_pid, shm_fd; /* WELCOME: the worker's segment */
    uint64_t shm_bytes, shm_token;
    uint64_t incarnation;                  /* HELLO: the client process, random, 0 when unknown */
    uint64_t staleness_max, staleness_p99; /* STATUS_REPLY */
    double staleness_mean;
    double loss, samples_per_s; /* HEARTBEAT: the worker's own figures (NaN: unknown) */
    char hostname[PS_HOST_MAX]; /* HELLO: the worker's host name, for people */
    uint64_t applied;           /* WELCOME: the rank's pushes applied so far */
    uint64_t applied_seq;       /* WELCOME: its last applied seq (same incarnation), else 0 */
    const void *payload;
} ps_msg;

/* One row of STATUS_REPLY's worker table (proto WorkerStatus). */
#define PS_WORKER_STATE_MAX 16
typedef struct ps_worker_status {
    uint32_t rank;
    char state[PS_WORKER_STATE_MAX]; /* "live", "done", "left", "evicted", "vacant" */
    char hostname[PS_HOST_MAX];
    uint64_t last_seen_ms; /* ms since its worker's last message */
    uint64_t clock, pushes, dropped, duplicates, evictions;
    double loss, samples_per_s; /* last heartbeat's; NaN: none */
    uint64_t staleness_max;
    double staleness_mean;
    uint32_t worker_id; /* 0: never held */
} ps_worker_status;

/* Bytes the packed table of n rows takes (a payload frame; may exceed
 * PS_HEADER_MAX_BYTES: it is not a header). */
size_t ps_codec_workers_size(const ps_worker_status *rows, size_t n);

/* Packs n rows into buf (cap bytes, at least ps_codec_workers_size);
 * *len gets the size. PS_EINVAL when cap is too small. */
int ps_codec_workers_encode(const ps_worker_status *rows, size_t n, void *buf, size_t cap,
                            size_t *len);

/* Unpacks a table of at most cap rows into rows; *n gets the count.
 * PS_EPROTO (with a sentence in err) when the bytes are not a table, more
 * than cap rows, or a string is too long. Allocates while it runs (not
 * for psd's loop: psd only encodes tables). */
int ps_codec_workers_decode(const void *buf, size_t len, ps_worker_status *rows, size_t cap,
                            size_t *n, ps_error *err);

/* True when m's payload travels as frame 2 (not absent, not in shared
 * memory). */
static inline bool ps_msg_has_frame(const ps_msg *m)
{
    return m->payload_bytes > 0 && m->encoding != PS_ENC_SHM_F32;
}

/* Resets m to an empty message of the given type, protocol version set. */
void ps_msg_init(ps_msg *m, ps_msg_type type);

/* Scratch memory protobuf-c unpacks a header into, so decoding allocates
 * nothing: each decode starts it empty and takes from it; a header whose
 * parse needs more is refused (PS_EPROTO). The largest header psd sends
 * (32 shards, 32 tensors, every string full) needs about a third of it.
 * Embedded and kept by whoever receives (ps_frames holds one: a server's
 * is per loop, a client's per connection); no init is needed. */
#define PS_CODEC_ARENA_BYTES ((size_t)64 << 10)
typedef struct ps_codec_arena {
    size_t used;
    bool spent; /* an allocation did not fit */
    _Alignas(16) unsigned char mem[PS_CODEC_ARENA_BYTES];
} ps_codec_arena;

/* Decodes frame 1 (hdr, hdr_len) and the optional frame 2 (payload, NULL
 * when absent) into m. Checks: the header parses and fits its limits, the
 * type is known, the payload frame is present exactly when the encoding says
 * so and its size equals payload_bytes, an F32 payload covers exactly
 * [key_lo, key_hi) (an SHM_F32 one announces exactly that, with no frame), a
 * compressed one (F16, BF16, INT8, TOPK) passes its codec's validate for the
 * keys of [key_lo, key_hi) (compress.h: size, blocks, indices). On failure returns
 * PS_EPROTO, PS_ETYPE or PS_EPAYLOAD, fills err with a sentence, and still fills m->seq,
 * m->worker_id and m->type when the header parsed, so the caller can address its ERROR reply.
 * Unpacks into a ps_codec_arena on the stack (PS_CODEC_ARENA_BYTES). */
int ps_codec_decode(const void *hdr, size_t hdr_len, const void *payload, size_t payload_len,
                    ps_msg *m, ps_error *err);

/* Same as ps_codec_decode, unpacking into arena (reset first) instead of an
 * arena on the stack; what the header held is copied into m, so the arena
 * may be reused as soon as it returns. */
int ps_codec_decode_in(ps_codec_arena *arena, const void *hdr, size_t hdr_len, const void *payload,
                       size_t payload_len, ps_msg *m, ps_error *err);

/* Bytes the header of m takes on the wire. */
size_t ps_codec_header_size(const ps_msg *m);

/* Encodes the header of m into buf (cap bytes); *len gets its size.
 * PS_EINVAL if cap is too small or m breaks a limit. The payload is not
 * encoded: it travels as frame 2, m->payload_bytes says how long. */
int ps_codec_encode(const ps_msg *m, void *buf, size_t cap, size_t *len);

/* The message type's name ("PULL"); "?" when unknown. */
const char *ps_msg_type_name(int type);

#endif
