/* <psd/psworker.h> — libpsworker, the client library of psd: the whole
 * contract for a program of your own that trains against psd. Open a
 * client on the job's shard endpoints (or from the job file), pull θ, push
 * gradients, close. Every function that can fail returns 0 or a negative
 * error code (<psd/errors.h>); ps_strerror names the code and
 * ps_client_last_error gives the sentence for the last failure.
 * A client and its sockets belong to the thread that opened it.
 *
 * Stability: within a major version (the soname, libpsworker.so.1) no
 * function, field or constant here changes its name, type or meaning and
 * none goes away. A minor release may add functions, error codes and
 * fields at the end of the structs that carry a size (ps_client_opts,
 * ps_push_pull, ps_server_stats): a program compiled against an older
 * header sets the older size through the *_init function, and the library
 * gives the fields it did not know their defaults. */
#ifndef PSWORKER_H
#define PSWORKER_H

#include <stddef.h>
#include <stdint.h>

#include <psd/errors.h>  /* PS_E... codes, ps_strerror, ps_err_name, PS_EXTERN */
#include <psd/version.h> /* PSD_VERSION_... */

#ifndef PS_EXTERN
#if defined(__GNUC__) && __GNUC__ >= 4
#define PS_EXTERN __attribute__((visibility("default")))
#else
#define PS_EXTERN
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version ("1.0.0") and major*10000 + minor*100 + patch: the
 * library loaded, where PSD_VERSION_* are the header compiled against. */
PS_EXTERN const char *ps_version(void);
PS_EXTERN unsigned ps_version_number(void);

typedef struct ps_client ps_client;

/* The options of ps_client_open. Set them up with ps_client_opts_init,
 * then set the fields you need: the library reads only the first `size`
 * bytes, so a program built with an older header keeps working when later
 * releases add fields (at the end only). */
typedef struct ps_client_opts {
    size_t size;                /* sizeof(ps_client_opts) as the caller compiled it;
                                   set by ps_client_opts_init */
    const char *job;            /* the job's name; the server refuses another */
    const char *const *servers; /* one endpoint per shard, in shard order */
    size_t num_servers;
    int rank;         /* this worker's rank, or -1 for any free rank */
    int timeout_ms;   /* how long a request is tried before PS_ETIMEDOUT; 0 means 30000 */
    int heartbeat_ms; /* > 0: a thread of the client says "alive" this often, so the
                         servers do not evict a worker that computes or waits */
    int socket_only;  /* 1: θ and gradients always cross the socket; 0: with a
                         server on this host (and the same user), they go
                         through shared memory it offers, and only small
                         headers cross the socket */
    /* optional: told one line (no newline) when a server falls silent (no
     * answer to anything for two heartbeat intervals; warning 1) and when it
     * answers again (warning 0). Called on the caller's thread, during a
     * call, and only with heartbeat_ms > 0. */
    void (*log_fn)(void *arg, int warning, const char *line);
    void *log_arg;
    /* CURVE (both NULL: off): the servers' public key file and this
     * worker's secret key file, in ZeroMQ's text form (psctl keygen). Every
     * socket, the heartbeat thread's too, then encrypts and authenticates
     * with them; a server that does not admit the key never answers
     * (PS_ETIMEDOUT). A secret file its group or others may read is refused
     * (PS_ECONFIG, the file and mode named); with $CREDENTIALS_DIRECTORY
     * set, a file of the same base name there is read instead. */
    const char *curve_server_key_file;
    const char *curve_secret_key_file;
    /* Compression of pushes (the job's compression section): NULL or "none"
     * (float32), "fp16", "bf16" (round to nearest even), "int8" (a scale per
     * 256 values) or "topk" (the push_topk_ratio share of largest entries,
     * with their indices). push_error_feedback 1: what compression dropped
     * is kept and added to the next push. Pulls need no option: θ comes in
     * the codec the servers chose (compression.pull) and is decoded here.
     * An unknown name or a ratio outside (0, 1] is PS_EINVAL. */
    const char *push_compression;
    double push_topk_ratio;
    int push_error_feedback;
    /* The pushes this worker's data makes over the whole job (0: unknown),
     * told to the servers when it registers: psd then reports a rank that
     * left before its data was done as "at N of this many pushes". A rank's
     * data counts as done once its worker called ps_client_done; one that
     * closes without it left early, and the job is not complete without
     * it. */
    uint64_t pushes_expected;
    /* new fields go at the end only */
} ps_client_opts;

/* Zeroes *o and sets its size, rank -1 (any free rank) and push_topk_ratio
 * 0.01; every other field's default is 0 or NULL. */
PS_EXTERN void ps_client_opts_init(ps_client_opts *o);

/* Registers with every shard (HELLO) and returns a client in *out.
 * Errors: PS_ETIMEDOUT (no answer), PS_EJOB, PS_EVERSION, PS_ESTATE (rank
 * taken), PS_EFULL (no rank left), PS_EZMQ, PS_ENOMEM, PS_EINVAL, and for
 * CURVE keys PS_ECONFIG, PS_EIO. PS_EINVAL too for an opts->size of 0 or
 * smaller than the first release's ps_client_opts ("ps_client_opts.size
 * is N: call ps_client_opts_init"), and for a larger size (a newer header)
 * whose fields past this library's are not all zero. On error *out is
 * NULL and errbuf (when not NULL) gets the sentence. */
PS_EXTERN int ps_client_open(const ps_client_opts *opts, ps_client **out, char *errbuf,
                             size_t errbuf_len);

/* Reads the job file (servers, job name, heartbeat and timeouts, CURVE key
 * files, compression, shared memory) as psworker does and opens a client
 * with rank `rank` (-1: $PSD_RANK if set, else any free rank), as
 * ps_client_open. A request is tried for the job's heartbeat.deadline_ms.
 * PS_ECONFIG with a sentence naming the file in errbuf for a bad job file
 * (or one that cannot be read); PS_EINVAL for a $PSD_RANK that is not a
 * rank; otherwise as ps_client_open. */
PS_EXTERN int ps_client_open_job(const char *job_path, int rank, ps_client **out, char *errbuf,
                                 size_t errbuf_len);

/* The job as the servers describe it. */
PS_EXTERN uint64_t ps_client_num_params(const ps_client *c);
PS_EXTERN int ps_client_rank(const ps_client *c);
PS_EXTERN uint32_t ps_client_num_workers(const ps_client *c);
PS_EXTERN const char *ps_client_mode(const ps_client *c); /* the mode, named as in job files */

/* Tensor i of θ (0 <= i < ps_client_num_tensors): its name, offset in θ
 * and shape. Pointers stay valid until the client is closed. */
PS_EXTERN size_t ps_client_num_tensors(const ps_client *c);
PS_EXTERN int ps_client_tensor(const ps_client *c, size_t i, const char **name, uint64_t *offset,
                               const uint64_t **shape, uint32_t *ndims);

/* Sparse tables (sparse_logistic, fm): rows of dim floats by 64-bit key,
 * held by the servers only; shard i of S holds the keys k with
 * floor(k·S / 2^64) = i. Table i (0 <= i < ps_client_num_tables): its name
 * and dim; the pointer stays valid until the client is closed. */
PS_EXTERN size_t ps_client_num_tables(const ps_client *c);
PS_EXTERN int ps_client_table(const ps_client *c, size_t i, const char **name, uint32_t *dim);

/* Pulls the rows of table `table` for n keys, sorted and unique, into rows
 * (rows_len floats, which must be n × dim, in the keys' order), every shard asked for its keys at
 * once: a stored row as the server holds it, another at its initial value.
 * Waits and retries as ps_client_pull. PS_EINVAL for a table out of range,
 * keys not strictly increasing or rows_len not n × dim. */
PS_EXTERN int ps_client_pull_rows(ps_client *c, uint32_t table, const uint64_t *keys, size_t n,
                                  float *rows, size_t rows_len);

/* Pushes the gradient rows (grads_len floats, which must be n × dim) of n sorted, unique keys of
 * table `table`, computed at worker clock `clock` and averaged over
 * `samples` examples, every shard sent its keys at once. They are applied
 * by the job's mode; in sync mode they join round `clock`, which the
 * step's dense push (ps_client_push or ps_client_push_pull, sent after
 * them) closes. With push compression the rows go in its codec (without
 * error feedback). Errors as ps_client_push, PS_EINVAL as above. */
PS_EXTERN int ps_client_push_rows(ps_client *c, uint32_t table, uint64_t clock,
                                  const uint64_t *keys, size_t n, const float *grads,
                                  size_t grads_len, uint32_t samples);

/* Up to max live rows of table from shard's cursor (0 for the first call):
 * their keys into keys (max entries), their rows into rows (rows_len
 * floats, which must be max × dim: PS_EINVAL otherwise), *n the
 * count, *next the cursor to go on from (0: the shard has no more). Rows
 * come in the shard's storage order, not sorted; one table can be exported
 * this way while nothing trains. */
PS_EXTERN int ps_client_scan_rows(ps_client *c, uint32_t table, size_t shard, uint64_t cursor,
                                  size_t max, uint64_t *keys, float *rows, size_t rows_len,
                                  size_t *n, uint64_t *next);

/* Pull, push and heartbeat wait for a shard until timeout_ms have passed
 * since it last answered anything (and at least timeout_ms from the call's
 * start without opts.heartbeat_ms): with the heartbeat thread, whose
 * answered heartbeats count, a pull parked at a live server waits as long
 * as it takes, while one at a silent server ends within timeout_ms of its
 * last answer. A shard still silent gets the request again (same seq, so a
 * push is never applied twice) after 250 ms, then after waits that double
 * up to 4 s; at the deadline the call fails with PS_ETIMEDOUT naming the
 * shard. A shard that answers PS_EWORKER (to the request, or to the
 * heartbeat thread, which the call notices within 100 ms or at its start)
 * restarted or evicted this worker: it gets HELLO again (same rank); in
 * async mode the request is then sent once more, in sync mode the call
 * returns PS_EREJOINED, ps_client_last_error says "registered again with
 * shard I at round R", and the caller goes on from round
 * ps_client_rejoin_version (the shard's rounds may have moved on, or gone
 * back to a checkpoint). A DONE heartbeat and the pull of the final θ are
 * sent again in sync mode too.
 * The stop protocol: an ERROR whose status is PS_ESTOPPED (the server
 * stopped before the job ended), PS_EABORTED (the job was stopped) or
 * PS_ECOMPLETE (the job is complete), whatever request it answers or none
 * (seq 0, to this client's or its heartbeat thread's sockets), is final:
 * the current call fails with that code and every later call at once, with
 * "endpoint: the server's sentence" in ps_client_last_error.
 * With push compression a gradient holding a NaN or an infinity cannot be
 * encoded: the push fails with PS_EINVAL and sends nothing.
 * Errors a shard replies with are returned as their code (PS_EJOB, ...),
 * with "endpoint: the server's sentence" in ps_client_last_error; a reply
 * of the wrong kind is PS_EPROTO; a signal while waiting is PS_EINTR. */

/* Pulls the whole θ into theta (n floats, which must be num_params:
 * PS_EINVAL with "theta holds N floats, θ has P" otherwise) from all shards
 * at once.
 * Waits until every shard's version is >= min_version (0: answer at once).
 * *version (when not NULL) gets the smallest shard version received. */
PS_EXTERN int ps_client_pull(ps_client *c, uint64_t min_version, float *theta, size_t n,
                             uint64_t *version);

/* ps_client_pull carrying the worker's clock (ssp: the steps it has
 * pushed): in ssp mode a server answers it once every live worker's clock
 * is >= clock - staleness. ps_client_pull is this with clock 0. */
PS_EXTERN int ps_client_pull_clock(ps_client *c, uint64_t clock, uint64_t min_version, float *theta,
                                   size_t n, uint64_t *version);

/* Pushes a gradient over the whole θ (grad: n floats, which must be
 * num_params: PS_EINVAL otherwise), averaged over
 * `samples` examples, computed at worker clock `clock` (sync: the round,
 * i.e. the version the gradient was computed from). Each shard's PUSH
 * carries as model_version the version of the slice of θ last pulled from
 * it (the θ the gradient is taken to come from; 0 before any pull), which
 * the server's staleness figures use. Sends each shard its
 * slice, all at once, and waits for every ACK. *version (when not NULL) gets
 * the smallest shard version after the push. */
PS_EXTERN int ps_client_push(ps_client *c, uint64_t clock, const float *grad, size_t n,
                             uint32_t samples, uint64_t *version);

/* One step's exchange with the servers: a push (as ps_client_push) with a
 * pull of θ (as ps_client_pull) riding right behind it. Set it up with
 * ps_push_pull_init; new fields go at the end only. */
typedef struct ps_push_pull {
    size_t size; /* sizeof(ps_push_pull) as the caller compiled it; set by ps_push_pull_init */
    /* in: the push */
    uint64_t clock;
    const float *grad; /* n floats */
    size_t n;          /* floats at grad and at theta (when not NULL): num_params */
    uint32_t samples;
    /* in: the pull. Sync: min_version = clock + 1 gets the θ of the next
     * round as soon as this one closes; async: 0 gets θ with this push
     * applied. theta (n floats, not overlapping grad) gets θ; or
     * NULL: θ stays in the client's memory (see view), with one shard
     * straight in the frame it came in, not copied. */
    uint64_t min_version;
    float *theta;
    /* in: the pull's clock (ssp: the worker's clock after this push, i.e.
     * clock + 1; the server parks the pull until the slowest worker is
     * within staleness of it); 0 elsewhere */
    uint64_t pull_clock;
    /* in, optional: called on the caller's thread as soon as the requests
     * are sent, while the replies are on their way (prepare the next batch
     * there, say); at most once, not at all when sending failed. It must
     * not touch grad, theta, the previous view or the client. */
    void (*meanwhile)(void *arg);
    void *arg;
    /* out */
    int pulled;        /* 1: θ came back whole; 0: pull again (see below) */
    uint64_t version;  /* when pulled: the smallest shard version received */
    const float *view; /* when pulled: θ, at theta or (theta NULL) in the
                          client's memory until its next call */
    /* new fields go at the end only */
} ps_push_pull;

/* Zeroes *pp and sets its size. */
PS_EXTERN void ps_push_pull_init(ps_push_pull *pp);

/* Runs the exchange pp describes: each shard gets the push and the pull at
 * once, so θ comes back without a round trip of its own. Returns the push's
 * outcome. pp->pulled is 0 when the push went through but the pull did not
 * (it timed out waiting for min_version, say: ps_client_last_error tells
 * why, and theta may hold some shards' new slices): pull again then.
 * PS_EINVAL for a pp->size of 0 or smaller than the first release's
 * ps_push_pull, or pp->n not num_params. */
PS_EXTERN int ps_client_push_pull(ps_client *c, ps_push_pull *pp);

/* Flags of the last push's ACKs, or'ed: PS_PUSH_DUPLICATE (a retried push
 * the server had applied already), PS_PUSH_DROPPED (sync: the round had
 * closed without it, so it was not applied). */
#define PS_PUSH_DUPLICATE 1u
#define PS_PUSH_DROPPED   2u
PS_EXTERN uint32_t ps_client_push_flags(const ps_client *c);

/* Tells every shard this worker is alive (see the failure model in psd's docs); needed only
 * without opts.heartbeat_ms, more often than the job's heartbeat.timeout_ms. */
PS_EXTERN int ps_client_heartbeat(ps_client *c);

/* Tells every shard this worker pushed its last gradient: it no longer
 * counts for rounds. Then pull with PS_CLIENT_VERSION_FINAL to get the
 * final θ, once every worker is done (or gone). */
PS_EXTERN int ps_client_done(ps_client *c);
#define PS_CLIENT_VERSION_FINAL UINT64_MAX

/* The smallest model version the shards gave when this worker registered:
 * at open (a job resumed from checkpoints starts there, not at 0), or again
 * after PS_EREJOINED above. */
PS_EXTERN uint64_t ps_client_rejoin_version(const ps_client *c);

/* Gives the training's figures to the heartbeats, which carry them to
 * every shard (psctl status, /metrics): the mean loss of the epoch so far
 * and samples per second. NaN: not known. Thread-safe. */
PS_EXTERN void ps_client_report(ps_client *c, double loss, double samples_per_s);

/* The rank's pushes the servers had applied when this worker last
 * registered (the least over the shards): a worker that takes over the rank
 * of one that died, or finds a server restarted from a checkpoint, resumes
 * its data there, so every batch of the rank is trained once. */
PS_EXTERN uint64_t ps_client_rank_applied(const ps_client *c);

/* The number of shards (servers) of the job. */
PS_EXTERN size_t ps_client_num_servers(const ps_client *c);

/* This client's pushes to shard i that it said it holds (an ACK, or
 * an ACK DUPLICATE of a push sent again), and how many of those a restart
 * of the shard from a checkpoint rolled back (logged when found). The shard's
 * count of the rank's applied pushes is then the rank's count when this
 * client registered + held - rolled_back. PS_ERANGE past the shards (i). */
PS_EXTERN int ps_client_push_tally(const ps_client *c, size_t i, uint64_t *held,
                                   uint64_t *rolled_back);

/* psd's view of the job, asked of every shard (STATUS): the staleness of
 * the applied pushes (largest max and p99 over the shards, the mean of
 * their means) and, from shard 0, each rank's clock and applied pushes into
 * the caller's arrays of cap entries (the first cap ranks; nranks says how
 * many the server knows, which may be more). Set it up with
 * ps_server_stats_init; new fields go at the end only. */
typedef struct ps_server_stats {
    size_t
        size; /* sizeof(ps_server_stats) as the caller compiled it; set by ps_server_stats_init */
    uint64_t staleness_max, staleness_p99;
    double staleness_mean;
    uint32_t nranks;          /* out: ranks the server knows (may exceed cap) */
    uint32_t cap;             /* in: entries at clock and pushes (may be 0) */
    uint64_t *clock, *pushes; /* in: the caller's arrays of cap entries, or NULL */
    /* in: the caller's arrays of cap entries each, or NULL (filled like
     * clock and pushes): the pushes each rank's worker said its data makes
     * (ps_client_opts.pushes_expected; 0: unknown), and each rank's
     * PS_RANK_* flags */
    uint64_t *expected;
    uint32_t *flags;
    /* in: the caller's arrays of cap entries, or NULL (as
     * ps_server_stats_init leaves them), for each rank's pushes shard 0
     * dropped as late and the rounds that closed while it trained (sync;
     * with backup workers some close without its push) */
    uint64_t *dropped, *rounds;
    /* new fields go at the end only */
} ps_server_stats;

/* ps_server_stats.flags: a worker holds the rank now (it trains, or it is
 * done and waits for the end), and the rank's data was trained to the end
 * (a worker of it called ps_client_done; a rank without it left early, or
 * never came) */
#define PS_RANK_LIVE     1u
#define PS_RANK_FINISHED 2u

/* Zeroes *s and sets its size, arrays and cap. */
PS_EXTERN void ps_server_stats_init(ps_server_stats *s, uint64_t *clock, uint64_t *pushes,
                                    uint32_t cap);

/* PS_EINVAL for a size of 0 or smaller than the first release's, or a cap
 * above 0 with an array NULL. */
PS_EXTERN int ps_client_server_stats(ps_client *c, ps_server_stats *out);

/* How many shards θ and gradients go through shared memory with (0 .. the
 * number of servers); *why (when not NULL) gets the reason a shard's could
 * not be used, or "" (a shard on another host is no failure). */
PS_EXTERN size_t ps_client_shared_memory(const ps_client *c, const char **why);

/* Replies that failed to decode, dropped (not an error of any call). */
PS_EXTERN uint64_t ps_client_bad_replies(const ps_client *c);

/* Stops the whole job (training diverged, say): sends every shard that
 * knows this worker a BYE with PS_FLAG_ABORT and why (one line, cut at 255
 * bytes) as its error; the servers then stop the job and tell the other
 * workers why. Stops the heartbeat thread, waits at most a second for the
 * ACKs, and leaves the client registered nowhere: close then only frees
 * it. Returns 0 (also when the job was stopped already), the final code
 * when a server stopped this client before, or the first error of the
 * BYEs. */
PS_EXTERN int ps_client_abort(ps_client *c, const char *why);

/* Says BYE to every shard and frees the client; *cp becomes NULL. A NULL
 * *cp is fine. Returns the first error of the BYEs (the client is freed
 * anyway). After a final ERROR (see the stop protocol) no BYE is sent. */
PS_EXTERN int ps_client_close(ps_client **cp);

/* The sentence for the last failure of a call on c ("" when none). */
PS_EXTERN const char *ps_client_last_error(const ps_client *c);

#ifdef __cplusplus
}
#endif

#endif
