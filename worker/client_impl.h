/* client_impl.h — libpsworker's insides, shared by its modules and their
 * unit tests, never installed: a client's shards (one DEALER each), the
 * exchange a call runs, and the client itself. The modules: client.c (the
 * public API, psworker.h), exchange.c (the retry core: requests, replies,
 * resends, deadlines), membership.c (HELLO, WELCOME, BYE), heartbeat.c (the
 * heartbeat thread), client_shm.c (shared memory with a shard on this host)
 * and client_codec.c (compressed pushes and pulls). */
#ifndef PS_CLIENT_IMPL_H
#define PS_CLIENT_IMPL_H

#include "psworker.h"

#include "codec.h"
#include "compress.h"
#include "curve.h"
#include "mode.h"
#include "shm.h"
#include "wire.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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

typedef struct shard {
    void *sock; /* DEALER, connected to endpoint */
    char endpoint[PS_ENDPOINT_MAX];
    uint32_t worker_id;            /* this shard's name for us, from its WELCOME */
    _Atomic uint32_t hb_worker_id; /* the same, for the heartbeat thread (0: none) */
    bool registered;               /* a WELCOME came: say BYE on close */
    uint64_t seq;                  /* seq of the current request; a retry sends it again */
    uint64_t pull_seq; /* a PULL of its own behind a push not sent again (op.then_pull) */
    uint64_t seq_max;  /* the largest seq sent: a new request takes the next */
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
    /* exactly once (docs/architecture.md#the-failure-model): the seq of the last push sent (a push
     * sent again after a registration keeps it, so psd knows it), the newest push the shard said it
     * holds (an ACK, or an ACK DUPLICATE), and the tally: pushes it holds by its word, and those a
     * restart from a checkpoint rolled back. base: the rank's pushes psd had applied when this
     * client first registered (a worker that replaced another). */
    uint64_t push_seq, counted_seq;
    uint64_t acked, rolled_back, applied_base;
    bool based;
    uint64_t applied; /* the rank's applied pushes, as the last WELCOME said */
    /* the current sparse request's part: keys sp_beg .. sp_end of the op's,
     * its payload at the client's sp_buf + sp_off (sp_bytes long, the first
     * sp_keys_bytes of them keys) */
    size_t sp_beg, sp_end, sp_off, sp_bytes, sp_keys_bytes;
    /* pipelined sync rounds (proto/ps.proto, "Chunks"): the shard's
     * chunk_keys (its first WELCOME's) and chunk count (1: whole pushes);
     * chunked: the current push goes a chunk at a time (push_pull over the
     * socket), its ACKs and the riding pull's chunks counted in the
     * bitmaps; cur_chunk: the chunk request_make_send sends; with push
     * compression each chunk is encoded on its own, at enc_off +
     * chunk_enc_off[k] (enc_chunked) */
    uint64_t chunk_keys;
    uint32_t nchunks, cur_chunk, acks_left, pulls_left;
    bool chunked, enc_chunked, chunk_pull_whole;
    uint32_t chunk_flags; /* the chunks' ACK flags, or'ed */
    /* local: the endpoint is on this host (ps_endpoint_local, at connect);
     * chunk_remote: the WELCOME's PS_FLAG_CHUNK_REMOTE (sync_chunk_kib:
     * auto), chunks only when !local */
    bool local, chunk_remote;
    unsigned char *chunk_acked, *chunk_pulled;
    size_t *chunk_enc_off;
    /* the seq of the last sparse pull whose keys the shard kept for a push
     * (its reply said PS_FLAG_KEYS_KEPT; 0: none), and the pull the
     * current push names instead of sending its keys (0: it sends them) */
    uint64_t sp_kept_seq, sp_keys_of;
    /* a push naming its pull, rows in float32: its payload is the caller's
     * gradient rows themselves (sent by reference), not sp_buf */
    const float *sp_grads;
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
    /* sparse tables (table > 0: table - 1 of the WELCOME's list): the
     * sorted keys, split by shard into each shard's sp_beg .. sp_end, and
     * their rows (PULL: out; PUSH: the gradients), dim floats each; SCAN
     * (a PULL with PS_FLAG_SCAN to one shard) reads from cursor scan_from */
    uint32_t table, dim;
    const uint64_t *keys;
    size_t nkeys;
    float *sp_rows;
    const float *sp_grads;
    uint64_t scan_from, scan_next; /* scan_max > 0: a SCAN */
    uint64_t *scan_keys;
    size_t scan_max, scan_n;
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
    uint32_t ntables;
    ps_table_info tables[PS_MAX_TABLES];
    /* sparse requests' payloads, every shard's (keys, then rows) one after
     * the other: grown to the largest request yet, then reused */
    unsigned char *sp_buf;
    size_t sp_cap;
    float *sp_scratch;     /* topk's scratch for sparse rows ... */
    size_t sp_scratch_cap; /* ... of this many floats */
    /* the keys of the last sparse pull that some shard kept (table as on
     * the wire, 0: none): a push of the same keys names the pull instead */
    uint64_t *pk_keys;
    size_t pk_n, pk_cap;
    uint32_t pk_table;
    uint64_t pk_resent; /* pushes sent again with their keys: a shard had lost them */
    uint32_t push_flags;
    bool done;                  /* ps_client_done was called: say so again after a rejoin */
    uint64_t rejoin_version;    /* the version a shard gave when we registered again */
    char host[PS_HOST_MAX];     /* asks shards on this host for shared memory; "" if not */
    char hostname[PS_HOST_MAX]; /* for people: psctl status, /metrics */
    /* the training's figures the heartbeats carry (doubles' bits: set by
     * the caller's thread, read by the heartbeat thread) */
    _Atomic uint64_t report_loss, report_rate;
    uint64_t incarnation;     /* this client, random, in every HELLO: psd keeps our seqs */
    uint64_t pushes_expected; /* in every HELLO: ps_client_opts.pushes_expected */
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
    ps_frames hb_frames; /* the heartbeat thread's, for its replies */
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
     * still holds; its I/O thread counts them down and, at 0, wakes the
     * caller's thread waiting on settle_cv */
    atomic_uint push_refs;
    pthread_mutex_t settle_mu;
    pthread_cond_t settle_cv;
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
    /* data.assign: dynamic (client_lease.h): what the next push tells shard
     * 0 (the batch it trained + 1, leases wanted, batches an epoch), and
     * the grant the last reply from shard 0 carried */
    uint64_t lease_batch;
    uint32_t lease_want, lease_spe;
    uint64_t got_first;
    uint32_t got_count, got_flags;
    /* scratch, allocated with the client so a request allocates nothing */
    ps_msg req;
    ps_msg rep;
    char req_text[PS_MSG_ERROR_MAX]; /* a request's error text (BYE's why) */
    ps_frames frames;
    ps_error err;
    char last_error[PS_ERROR_MSG_MAX];
};

/* The first release's sizes of the structs that carry a size: up to the
 * end of their last field. A caller's size below them is refused; the
 * fields a larger one adds (a later release's) take their defaults. */
#define PS_CLIENT_OPTS_SIZE_1_0  (offsetof(ps_client_opts, push_error_feedback) + sizeof(int))
#define PS_PUSH_PULL_SIZE_1_0    (offsetof(ps_push_pull, view) + sizeof(const float *))
#define PS_SERVER_STATS_SIZE_1_0 (offsetof(ps_server_stats, pushes) + sizeof(uint64_t *))

/* The rows of a STATUS reply the client takes (a server's ranks at most). */
#define PS_MAX_STATUS_RANKS 1024

/* Takes the caller's struct `what` of `size` bytes (its header's) into dst,
 * which holds the defaults and is `known` bytes (this library's): the first
 * min(size, known) bytes are copied. PS_EINVAL with the sentence in why for
 * a size below `least` (the first release's), or above `known` with a
 * nonzero byte past it (a field of a later release this library cannot
 * honour). */
int ps_client_struct_take(void *dst, size_t known, const void *src, size_t size, size_t least,
                          const char *what, char *why, size_t cap);

/* True when shard s takes this client's sync pushes a chunk at a time:
 * chunks it said in its WELCOME, over the socket. */
bool ps_client_chunks_on(const ps_client *c, const shard *s);

/* Chunk k of shard s: keys [*lo, *hi). */
void ps_client_chunk_range(const shard *s, uint32_t k, uint64_t *lo, uint64_t *hi);

/* Sets last_error and returns code. */
int ps_client_fail(ps_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One line to the caller's log_fn (none without it). */
void ps_client_log(ps_client *c, int warning, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True for the codes that end the client: PS_ESTOPPED, PS_EABORTED,
 * PS_ECOMPLETE. */
bool ps_client_code_is_final(int code);

/* Records the first final ERROR a shard sent (either thread may call). */
void ps_client_final_set(ps_client *c, int code, const char *endpoint, const char *text);

/* The final code with its sentence in last_error, or 0 while the job runs. */
int ps_client_final_check(ps_client *c);

/* The figures ps_client_report last set (NaN before); either thread. */
void ps_client_report_get(ps_client *c, double *loss, double *rate);

/* The client's buffer for a whole θ, allocated when first needed; NULL
 * when memory is short. */
float *ps_client_theta_buf(ps_client *c);

/* Makes sock a CURVE client of the servers' key, when the client has keys;
 * 0 or -1. */
int ps_client_curve_apply(const ps_client *c, void *sock);

/* A DEALER for shard s, options set, connected to its endpoint; 0 or
 * PS_EZMQ (last_error says why). */
int ps_client_socket_open(ps_client *c, shard *s);

#endif
