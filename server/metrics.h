/* metrics.h — psd's /metrics: one shard's counters in the Prometheus text
 * format (version 0.0.4), served over HTTP by libmicrohttpd on the address
 * metrics.listen gives the shard (job.h).
 *
 * Why in psd's own loop, not in a thread: libmicrohttpd runs in its
 * external epoll mode, without a thread of its own. An epoll descriptor
 * that holds the listening socket and libmicrohttpd's own epoll is one more
 * item of the loop's poll (ps_metrics_fd), and the loop calls
 * ps_metrics_run when it is readable, when work is pending
 * (ps_metrics_timeout_ms says 0) and every 100 ms for its timeouts. A scrape is then
 * answered by the thread that owns the engine, from the counters as they
 * are: no lock, no copy published for another thread to read, and nothing
 * in the engine's hot path. What it costs the loop is bounded, whatever
 * scrapers do (metrics.c: METRICS_*): psd accepts connections itself and
 * hands libmicrohttpd those its limits let in; every socket is
 * non-blocking, so a slow or hostile scraper costs a short read or write
 * a turn and never a wait; a connection carries one request and is closed
 * 5 s after its accept however slowly its bytes come; at most 16
 * connections at once, 4 from one address, and a newcomer from an
 * address holding fewer displaces one of the address that holds the
 * most; an address gets 20 connections a second (a burst of 20), then
 * 429, then refusals; a refused connection is held unread for 1 s and
 * reset; one rendering answers every scrape for 100 ms; and
 * ps_metrics_run, however much is pending, rests 19 times as long as it
 * ran, so HTTP takes at most 1/20 of the loop (while it rests,
 * ps_metrics_fd is -1 and new connections wait in the kernel's queue).
 * Anything but GET or HEAD /metrics gets a short 404 or 405.
 * tests/bench/psbench.c measures what 20 scrapes a second do to a
 * 10M-float sync job's rounds, tests/bench/metrics_flood.py what a flood
 * and 2000 slow clients do.
 *
 * Everything here is used from the thread that runs the server. */
#ifndef PS_METRICS_H
#define PS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "checkpointer.h"
#include "codec.h"
#include "engine.h"
#include "error.h"
#include "job.h"
#include "log.h"

#define PS_METRICS_TYPES   (PS_MSG_CHECKPOINT + 1) /* message types, by ps_msg_type */
#define PS_METRICS_CODECS  PS_ENC_COUNT            /* payload encodings, by ps_encoding */
#define PS_METRICS_ERRORS  64                      /* error codes -1 .. -63 */
#define PS_METRICS_BUCKETS 16                      /* upper bounds of a histogram, at most */

/* A histogram with fixed upper bounds (increasing; +Inf follows them). */
typedef struct ps_metrics_hist {
    const double *bounds; /* not owned: a static table */
    size_t nbounds;
    uint64_t counts[PS_METRICS_BUCKETS + 1]; /* per bucket, not cumulative; the last: above all */
    uint64_t count;
    double sum;
} ps_metrics_hist;

/* Empties h and gives it nbounds (at most PS_METRICS_BUCKETS) bounds. */
void ps_metrics_hist_init(ps_metrics_hist *h, const double *bounds, size_t nbounds);

/* Counts one observation v. */
void ps_metrics_hist_observe(ps_metrics_hist *h, double v);

/* What psd's loop counts for /metrics besides the engine: plain fields,
 * written by the loop's thread only. Messages and bytes by type and
 * encoding: a frame's bytes as they crossed the socket (identity frame
 * left out), plus a payload that went through shared memory instead
 * (encoding PS_ENC_SHM_F32). */
typedef struct ps_metrics_counters {
    uint64_t rx_messages[PS_METRICS_TYPES][PS_METRICS_CODECS];
    uint64_t rx_bytes[PS_METRICS_TYPES][PS_METRICS_CODECS];
    uint64_t tx_messages[PS_METRICS_TYPES][PS_METRICS_CODECS];
    uint64_t tx_bytes[PS_METRICS_TYPES][PS_METRICS_CODECS];
    uint64_t errors[PS_METRICS_ERRORS]; /* ERROR replies of the loop itself (not the engine's), by
                                           -code */
    uint64_t refused_peers, refused_rate,
        refused_curve;             /* limits.max_peers, .unregistered_rate, CURVE */
    ps_metrics_hist apply_seconds; /* each write of θ (ps_engine_timing) */
    ps_metrics_hist round_seconds; /* each sync round, first push to close */
    ps_engine_timing seen;         /* the engine's timing when last looked at */
} ps_metrics_counters;

/* Zeroes c and sets its histograms' bounds. */
void ps_metrics_counters_init(ps_metrics_counters *c);

/* Counts one message received or sent; a type or encoding out of range
 * counts as PS_MSG_NONE or PS_ENC_NONE. */
void ps_metrics_count_rx(ps_metrics_counters *c, int type, int encoding, uint64_t bytes);
void ps_metrics_count_tx(ps_metrics_counters *c, int type, int encoding, uint64_t bytes);

/* Books the engine's writes of θ and rounds since the last call into the
 * histograms: call after every call into the engine that may write θ. */
void ps_metrics_observe(ps_metrics_counters *c, const ps_engine *e);

/* Where a scrape's figures come from; none is owned, all must outlive the
 * ps_metrics. */
typedef struct ps_metrics_source {
    const ps_job *job;
    uint32_t shard;
    ps_engine *engine;
    const ps_checkpointer *ckpt; /* NULL: the job has no checkpoints */
    const ps_metrics_counters *counters;
} ps_metrics_source;

typedef struct ps_metrics ps_metrics;

/* A renderer for src and, when addr is a "host:port" (not NULL or ""),
 * an HTTP listener on it for GET /metrics (host: an address or a name;
 * "*" or "0.0.0.0" every IPv4 interface, "[::]" every interface). Logs
 * "shard 0/1: metrics on http://127.0.0.1:9464/metrics". Returns NULL and
 * fills err: PS_EINVAL (addr is not host:port, or the host does not
 * resolve), PS_EIO ("metrics: cannot listen on 127.0.0.1:9464: Address
 * already in use"), PS_ENOMEM. */
ps_metrics *ps_metrics_new(const ps_metrics_source *src, const char *addr, const ps_log *log,
                           ps_error *err);

/* The descriptor for the loop's poll (readable: call ps_metrics_run), or
 * -1 without a listener or while ps_metrics_run rests (its share of the
 * loop spent: ps_metrics_timeout_ms says for how long). */
int ps_metrics_fd(const ps_metrics *m);

/* How long the loop may wait in poll before ps_metrics_run is due: at most
 * max_ms, 0 when work is pending, at least 1 while it rests. */
long ps_metrics_timeout_ms(const ps_metrics *m, long max_ms);

/* Accepts, reads, answers and closes connections as far as that goes
 * without waiting, and closes those past their 5 s; renders for a GET
 * /metrics when the last rendering is 100 ms old. A no-op without a
 * listener or while it rests. */
void ps_metrics_run(ps_metrics *m);

/* Renders every metric into the buffer m keeps (grown as needed, reused):
 * *text and *len are valid until the next render or ps_metrics_destroy.
 * Returns 0, or PS_ENOMEM (the buffer could not grow; *text then holds
 * what fitted, cut at a line). */
int ps_metrics_render(ps_metrics *m, const char **text, size_t *len);

/* How many scrapes were answered (GET or HEAD /metrics, 200). */
uint64_t ps_metrics_scrapes(const ps_metrics *m);

/* Closes the listener and its connections, frees m and sets *mp to NULL;
 * a NULL *mp is fine. */
void ps_metrics_destroy(ps_metrics **mp);

#endif
