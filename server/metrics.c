/* metrics.c — renders a shard's figures as Prometheus text and serves them
 * with libmicrohttpd in its external epoll mode (metrics.h says why). Every
 * family has HELP and TYPE once, every series the label shard="N"; a
 * rendering is appended to one buffer kept between scrapes. */
#include "metrics.h"

#include "store.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#if MHD_VERSION < 0x00097002
typedef int mhd_result; /* before 0.9.71 the handlers returned int */
#else
typedef enum MHD_Result mhd_result;
#endif

/* What a scraper may hold and ask (docs/operations.md#metrics says why each):
 * a connection carries one request (every answer says Connection: close)
 * and lives at most METRICS_DEADLINE_MS from its accept, however slowly
 * its bytes come; at most METRICS_CONNECTIONS at once, METRICS_PER_ADDR of
 * them from one address; when all are taken, a newcomer displaces the
 * oldest of the address that holds the most (if it holds 2 more than the
 * newcomer's) or else, when the newcomer's address holds none, one open
 * for METRICS_DISPLACE_MS (victim). Per address, a
 * bucket of METRICS_RATE_BURST connections refilled at METRICS_RATE_PER_S
 * (every connection takes one, answered or not; it goes no lower than
 * -2 bursts): below 1 a request is answered 429, from a burst below 0 its
 * connection is refused. METRICS_ADDRS addresses are tracked, the least
 * recently seen forgotten first. A refused connection is held unread in a
 * tarpit for METRICS_TARPIT_MS (METRICS_TARPIT at most, the oldest let go
 * first) and then reset, so that a client that retries at once waits
 * instead of spinning. */
#define METRICS_CONNECTIONS  16
#define METRICS_PER_ADDR     4
#define METRICS_DEADLINE_MS  5000u
#define METRICS_DISPLACE_MS  1000u
#define METRICS_RATE_PER_S   20.0
#define METRICS_RATE_BURST   20.0
#define METRICS_ADDRS        64
#define METRICS_TARPIT       64
#define METRICS_TARPIT_MS    1000u
#define METRICS_ACCEPTS      32   /* connections accepted a run, at most */
#define METRICS_CACHE_MS     100u /* a rendering answers every scrape this long */
#define METRICS_SHARE        20u  /* the HTTP side runs at most 1/METRICS_SHARE of the time */
#define METRICS_MHD_LIMIT    (2 * METRICS_CONNECTIONS) /* ours plus those closing */
#define METRICS_MEMORY_BYTES (32u << 10) /* a connection's request and write buffers */
#define METRICS_BACKLOG      1024 /* a burst waits here, not in SYN retries (capped by somaxconn) */
#define TEXT_MIN_BYTES       (16u << 10)
#define TEXT_RANK_BYTES      640u /* a rank's lines, about: the buffer's first size */
#define CONTENT_TYPE         "text/plain; version=0.0.4; charset=utf-8"

/* seconds: a write of θ (under 1 µs for a small shard, 3 ms for 10M floats) */
static const double apply_bounds[] = {1e-6, 1e-5, 5e-5,   1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3,
                                      5e-3, 1e-2, 2.5e-2, 5e-2, 0.1,    0.25, 1.0};
/* seconds: a sync round, first push to close */
static const double round_bounds[] = {1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2,
                                      0.1,  0.25, 0.5,  1.0,    2.5,  5.0,  10.0};
/* model versions (the engine counts each staleness up to 254 exactly) */
static const double stale_bounds[] = {0, 1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const int error_codes[] = {
#define PS_X_CODE(name, value, msg) value,
    PS_ERRNO_MAP(PS_X_CODE)
#undef PS_X_CODE
};

/* the label codec="..." of a payload encoding that is no codec's (a
 * codec's is in its descriptor, compress.h) */
static const char *const transport_labels[PS_METRICS_CODECS] = {
    [PS_ENC_NONE] = "none",
    [PS_ENC_KEYS_U64] = "keys",
    [PS_ENC_SHM_F32] = "shm",
    [PS_ENC_WORKERS] = "workers",
};

static const char *codec_label(int encoding)
{
    const ps_compress_ops *ops = ps_compress_ops_for_encoding((ps_encoding)encoding);
    if (ops != NULL)
        return ops->label;
    return transport_labels[encoding] ? transport_labels[encoding] : "?";
}

typedef struct textbuf {
    char *p;
    size_t len, cap;
    bool full; /* a grow failed: nothing more is appended */
} textbuf;

/* A connection held: libmicrohttpd's, with what the limits need. */
typedef struct conn_slot {
    struct MHD_Connection *conn; /* NULL: free, or pending */
    bool pending;                /* admitted, not yet started by libmicrohttpd */
    int fd;
    uint8_t addr[16]; /* the peer's address, IPv4 as ::ffff:a.b.c.d */
    uint64_t accepted_ms;
    bool limited; /* over its address' rate: its request gets 429 */
} conn_slot;

/* An address' request bucket. */
typedef struct addr_rate {
    uint8_t addr[16];
    double tokens;    /* requests it may make now; below 0: over */
    uint64_t seen_ms; /* last refill; 0: the entry is unused */
} addr_rate;

/* How connections ended (psd_metrics_connections_total's outcome label). */
enum {
    OUT_ANSWERED,
    OUT_LIMITED,
    OUT_DROPPED,
    OUT_NO_SLOT,
    OUT_DISPLACED,
    OUT_DEADLINE,
    OUT_COUNT
};
static const char *const outcome_names[OUT_COUNT] = {"answered", "rate_limited", "rate_dropped",
                                                     "no_slot",  "displaced",    "deadline"};

struct ps_metrics {
    ps_metrics_source src;
    const ps_log *log;
    char listen[PS_ENDPOINT_MAX];
    struct MHD_Daemon *daemon; /* NULL: render only */
    int listen_fd;             /* ours: libmicrohttpd gets what we admit */
    int epoll_fd;              /* the listener and libmicrohttpd's epoll: ps_metrics_fd */
    textbuf text;
    char shard_label[32]; /* shard="N" */
    ps_worker_status *rows;
    uint32_t nrows;
    double start_time_s; /* wall clock when psd started, about */
    uint64_t scrapes;
    /* HTTP: the connections held, the addresses' buckets, the tarpit */
    conn_slot slots[METRICS_CONNECTIONS];
    addr_rate rates[METRICS_ADDRS];
    int tarpit[METRICS_TARPIT]; /* a ring, oldest at tarpit_head */
    uint64_t tarpit_ms[METRICS_TARPIT];
    size_t tarpit_head, tarpit_n;
    int fd_room;               /* descriptors at or above this are not held in the tarpit */
    struct MHD_Response *page; /* the last rendering, kept METRICS_CACHE_MS */
    uint64_t page_ms;
    struct MHD_Response *not_found, *not_allowed, *too_many, *no_memory;
    double resume_s; /* the time share: ps_metrics_run waits until then */
    uint64_t renders;
    uint64_t outcomes[OUT_COUNT];
};

/* ---- histograms and counters ---------------------------------------------- */

void ps_metrics_hist_init(ps_metrics_hist *h, const double *bounds, size_t nbounds)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->nbounds = nbounds < PS_METRICS_BUCKETS ? nbounds : PS_METRICS_BUCKETS;
}

void ps_metrics_hist_observe(ps_metrics_hist *h, double v)
{
    size_t i = 0;
    while (i < h->nbounds && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

void ps_metrics_counters_init(ps_metrics_counters *c)
{
    memset(c, 0, sizeof *c);
    ps_metrics_hist_init(&c->apply_seconds, apply_bounds, COUNT(apply_bounds));
    ps_metrics_hist_init(&c->round_seconds, round_bounds, COUNT(round_bounds));
}

static void count_into(uint64_t msgs[PS_METRICS_TYPES][PS_METRICS_CODECS],
                       uint64_t bytes[PS_METRICS_TYPES][PS_METRICS_CODECS], int type, int encoding,
                       uint64_t n)
{
    size_t t = type >= 0 && type < PS_METRICS_TYPES ? (size_t)type : 0;
    size_t e = encoding >= 0 && encoding < PS_METRICS_CODECS ? (size_t)encoding : 0;
    msgs[t][e]++;
    bytes[t][e] += n;
}

void ps_metrics_count_rx(ps_metrics_counters *c, int type, int encoding, uint64_t bytes)
{
    count_into(c->rx_messages, c->rx_bytes, type, encoding, bytes);
}

void ps_metrics_count_tx(ps_metrics_counters *c, int type, int encoding, uint64_t bytes)
{
    count_into(c->tx_messages, c->tx_bytes, type, encoding, bytes);
}

void ps_metrics_observe(ps_metrics_counters *c, const ps_engine *e)
{
    ps_engine_timing now;
    ps_engine_timing_get(e, &now);
    /* one call writes θ once (a push, with the round it closes) or closes
     * one round; should more have happened, each counts the last time */
    for (uint64_t i = c->seen.applies; i < now.applies; i++)
        ps_metrics_hist_observe(&c->apply_seconds, now.last_apply_s);
    for (uint64_t i = c->seen.rounds; i < now.rounds; i++)
        ps_metrics_hist_observe(&c->round_seconds, now.last_round_s);
    c->seen = now;
}

/* ---- the text buffer ------------------------------------------------------- */

static bool tb_room(textbuf *b, size_t more)
{
    if (b->full)
        return false;
    if (b->len + more <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : TEXT_MIN_BYTES;
    while (cap < b->len + more)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->full = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void tb_put(textbuf *b, const char *s, size_t n)
{
    if (tb_room(b, n)) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}

static void tb_str(textbuf *b, const char *s)
{
    tb_put(b, s, strlen(s));
}

static void tb_u64(textbuf *b, uint64_t v)
{
    char digits[24];
    size_t n = sizeof digits;
    do {
        digits[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    tb_put(b, digits + n, sizeof digits - n);
}

/* A value as Prometheus reads it: NaN, +Inf, -Inf or a decimal. */
static void tb_double(textbuf *b, double v)
{
    if (isnan(v)) {
        tb_str(b, "NaN");
    } else if (isinf(v)) {
        tb_str(b, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        if (v < 0)
            tb_str(b, "-");
        tb_u64(b, (uint64_t)fabs(v));
    } else {
        char s[40];
        int n = snprintf(s, sizeof s, "%.15g", v);
        tb_put(b, s, (size_t)n);
    }
}

/* A label value between quotes: backslash, quote and newline escaped;
 * other control bytes and non-ASCII ones (a host name from the network
 * need not be UTF-8) become '?'. */
static void tb_label_value(textbuf *b, const char *s)
{
    tb_str(b, "\"");
    for (;;) {
        size_t run = 0; /* bytes that go as they are */
        while (s[run] >= 0x20 && s[run] < 0x7f && s[run] != '\\' && s[run] != '"')
            run++;
        tb_put(b, s, run);
        s += run;
        unsigned char ch = (unsigned char)*s;
        if (ch == '\0')
            break;
        if (ch == '\\' || ch == '"')
            tb_put(b, (const char[]){'\\', (char)ch}, 2);
        else if (ch == '\n')
            tb_str(b, "\\n");
        else
            tb_str(b, "?");
        s++;
    }
    tb_str(b, "\"");
}

/* Milliseconds as seconds, exactly: "12.345". */
static void tb_ms_as_seconds(textbuf *b, uint64_t ms)
{
    char frac[5] = {'.', (char)('0' + ms / 100 % 10), (char)('0' + ms / 10 % 10),
                    (char)('0' + ms % 10), '\0'};
    tb_u64(b, ms / 1000);
    tb_put(b, frac, 4);
}

/* ---- families and samples ---------------------------------------------------- */

static void family(ps_metrics *m, const char *name, const char *type, const char *help)
{
    textbuf *b = &m->text;
    tb_str(b, "# HELP ");
    tb_str(b, name);
    tb_str(b, " ");
    tb_str(b, help);
    tb_str(b, "\n# TYPE ");
    tb_str(b, name);
    tb_str(b, " ");
    tb_str(b, type);
    tb_str(b, "\n");
}

/* name{shard="N" — the caller adds more labels, then sample_end */
static void sample_begin(ps_metrics *m, const char *name)
{
    tb_str(&m->text, name);
    tb_str(&m->text, "{");
    tb_str(&m->text, m->shard_label);
}

static void label(ps_metrics *m, const char *key, const char *value)
{
    tb_str(&m->text, ",");
    tb_str(&m->text, key);
    tb_str(&m->text, "=");
    tb_label_value(&m->text, value);
}

static void label_u64(ps_metrics *m, const char *key, uint64_t value)
{
    tb_str(&m->text, ",");
    tb_str(&m->text, key);
    tb_str(&m->text, "=\"");
    tb_u64(&m->text, value);
    tb_str(&m->text, "\"");
}

static void end_u64(ps_metrics *m, uint64_t v)
{
    tb_str(&m->text, "} ");
    tb_u64(&m->text, v);
    tb_str(&m->text, "\n");
}

static void end_double(ps_metrics *m, double v)
{
    tb_str(&m->text, "} ");
    tb_double(&m->text, v);
    tb_str(&m->text, "\n");
}

/* A family of one series with only the shard label. */
static void single_u64(ps_metrics *m, const char *name, const char *type, const char *help,
                       uint64_t v)
{
    family(m, name, type, help);
    sample_begin(m, name);
    end_u64(m, v);
}

static void single_double(ps_metrics *m, const char *name, const char *type, const char *help,
                          double v)
{
    family(m, name, type, help);
    sample_begin(m, name);
    end_double(m, v);
}

/* A histogram from cumulative counts (cum[i]: observations <= bounds[i]). */
static void histogram(ps_metrics *m, const char *name, const char *help, const double *bounds,
                      size_t nbounds, const uint64_t *cum, uint64_t count, double sum)
{
    family(m, name, "histogram", help);
    char series[96];
    snprintf(series, sizeof series, "%s_bucket", name);
    for (size_t i = 0; i <= nbounds; i++) {
        sample_begin(m, series);
        tb_str(&m->text, ",le=\"");
        if (i < nbounds)
            tb_double(&m->text, bounds[i]);
        else
            tb_str(&m->text, "+Inf");
        tb_str(&m->text, "\"");
        end_u64(m, i < nbounds ? cum[i] : count);
    }
    snprintf(series, sizeof series, "%s_sum", name);
    sample_begin(m, series);
    end_double(m, sum);
    snprintf(series, sizeof series, "%s_count", name);
    sample_begin(m, series);
    end_u64(m, count);
}

static void histogram_of(ps_metrics *m, const char *name, const char *help,
                         const ps_metrics_hist *h)
{
    uint64_t cum[PS_METRICS_BUCKETS], run = 0;
    for (size_t i = 0; i < h->nbounds; i++)
        cum[i] = run += h->counts[i];
    histogram(m, name, help, h->bounds, h->nbounds, cum, h->count, h->sum);
}

/* ---- the families ------------------------------------------------------------- */

static void render_job(ps_metrics *m, const ps_engine_stats *st)
{
    const ps_job *job = m->src.job;
    family(m, "psd_info", "gauge", "psd's version, the job and its consistency mode (always 1)");
    sample_begin(m, "psd_info");
    label(m, "version", PS_VERSION_STRING);
    label(m, "job_name", job->name);
    label(m, "mode", ps_mode_name(job->mode));
    label_u64(m, "shards", job->nservers);
    end_u64(m, 1);
    single_u64(m, "psd_model_version", "gauge",
               "the shard's model version (sync: rounds closed; async, ssp: pushes applied)",
               st->version);
    ps_engine *e = m->src.engine;
    single_u64(m, "psd_updates_total", "counter",
               "updates the optimizer applied to the shard's θ (sync: one a round; async, ssp: "
               "one a push); a checkpoint carries it across restarts",
               ps_store_updates(ps_engine_store(e)));
    uint64_t params = ps_engine_key_hi(e) - ps_engine_key_lo(e);
    single_u64(m, "psd_theta_params", "gauge", "parameters of θ this shard holds", params);
    single_u64(m, "psd_theta_bytes", "gauge", "bytes of θ this shard holds (float32)",
               params * sizeof(float));
    single_u64(m, "psd_model_params", "gauge", "parameters of the whole model (every shard)",
               ps_engine_num_params(e));
}

static void render_requests(ps_metrics *m, const ps_engine_stats *st)
{
    single_u64(m, "psd_pushes_total", "counter", "pushes applied or accumulated into a round",
               st->pushes);
    single_u64(m, "psd_duplicate_pushes_total", "counter",
               "retried pushes acknowledged and not applied again", st->duplicates);
    single_u64(m, "psd_dropped_pushes_total", "counter",
               "pushes for a round already closed (backup workers): acknowledged, not applied",
               st->dropped);
    single_u64(m, "psd_pulls_total", "counter", "pulls answered", st->pulls);
    single_u64(m, "psd_parked_pulls", "gauge", "pulls waiting for their version now", st->parked);
    single_u64(m, "psd_theta_copies_total", "counter",
               "times θ was copied off a buffer a pull reply still held", st->theta_copies);
    single_u64(m, "psd_pull_encodings_total", "counter",
               "times θ was encoded in the job's pull codec (at most once a version)",
               st->pull_encodings);
}

/* Messages and bytes by type and codec: only the pairs seen so far (a
 * counter, once there, stays). */
static void render_traffic(ps_metrics *m, const char *name, const char *help,
                           const uint64_t table[PS_METRICS_TYPES][PS_METRICS_CODECS])
{
    family(m, name, "counter", help);
    for (int t = 0; t < PS_METRICS_TYPES; t++) {
        for (int c = 0; c < PS_METRICS_CODECS; c++) {
            if (table[t][c] == 0)
                continue;
            sample_begin(m, name);
            label(m, "type", ps_msg_type_name(t));
            label(m, "codec", codec_label(c));
            end_u64(m, table[t][c]);
        }
    }
}

static void render_errors(ps_metrics *m, const ps_metrics_counters *c)
{
    family(m, "psd_errors_total", "counter", "ERROR replies sent, by code");
    for (size_t i = 0; i < COUNT(error_codes); i++) {
        int code = error_codes[i];
        uint64_t n = ps_engine_errors(m->src.engine, code);
        if (-code < PS_METRICS_ERRORS)
            n += c->errors[-code];
        sample_begin(m, "psd_errors_total");
        label(m, "code", ps_err_name(code) + strlen("PS_"));
        end_u64(m, n);
    }
    family(m, "psd_refused_total", "counter",
           "connections and requests refused before the engine saw them, by reason");
    const char *reasons[] = {"max_peers", "unregistered_rate", "curve"};
    const uint64_t counts[] = {c->refused_peers, c->refused_rate, c->refused_curve};
    for (size_t i = 0; i < COUNT(reasons); i++) {
        sample_begin(m, "psd_refused_total");
        label(m, "reason", reasons[i]);
        end_u64(m, counts[i]);
    }
}

static void render_timing(ps_metrics *m, const ps_metrics_counters *c)
{
    histogram_of(m, "psd_apply_duration_seconds",
                 "time to write θ: a push applied (or added to the open round, with the round's "
                 "close when it completed it), or a round closed without a push",
                 &c->apply_seconds);
    histogram_of(m, "psd_round_duration_seconds",
                 "sync rounds, from their first push to their close", &c->round_seconds);
    size_t nb;
    uint64_t count;
    double sum;
    const uint64_t *hist = ps_engine_staleness(m->src.engine, &nb, &count, &sum);
    uint64_t cum[COUNT(stale_bounds)], run = 0;
    size_t s = 0;
    for (size_t i = 0; i < COUNT(stale_bounds); i++) {
        for (; s <= (size_t)stale_bounds[i] && s + 1 < nb; s++)
            run += hist[s];
        cum[i] = run;
    }
    histogram(m, "psd_push_staleness", "staleness of the pushes applied, in model versions",
              stale_bounds, COUNT(stale_bounds), cum, count, sum);
}

static void render_workers(ps_metrics *m, const ps_engine_stats *st)
{
    single_u64(m, "psd_job_workers", "gauge", "workers the job has (ranks)", m->src.job->workers);
    single_u64(m, "psd_live_workers", "gauge", "workers registered and not gone (done included)",
               st->live_workers);
    uint64_t by_state[PS_WORKER_STATE_COUNT] = {0};
    for (uint32_t r = 0; r < m->nrows; r++)
        if ((unsigned)m->rows[r].state < PS_WORKER_STATE_COUNT)
            by_state[m->rows[r].state]++;
    char help[256] = "ranks by state:";
    for (size_t k = 0, at = strlen(help); k < PS_WORKER_STATE_COUNT && at < sizeof help; k++)
        at += (size_t)snprintf(help + at, sizeof help - at, "%s %s (%s)", k ? "," : "",
                               ps_worker_state_name((ps_worker_state)k),
                               ps_worker_state_meaning((ps_worker_state)k));
    family(m, "psd_workers", "gauge", help);
    for (int k = 0; k < PS_WORKER_STATE_COUNT; k++) {
        sample_begin(m, "psd_workers");
        label(m, "state", ps_worker_state_name((ps_worker_state)k));
        end_u64(m, by_state[k]);
    }
    single_u64(m, "psd_evictions_total", "counter", "workers evicted for silence", st->evictions);
}

static void rank_begin(ps_metrics *m, const char *name, uint32_t rank)
{
    sample_begin(m, name);
    label_u64(m, "rank", rank);
}

/* Per rank; the host only on psd_worker_info, so a worker that moves does
 * not start new series of every metric. */
static void render_ranks(ps_metrics *m)
{
    family(m, "psd_worker_info", "gauge", "each rank's host and state (always 1)");
    for (uint32_t r = 0; r < m->nrows; r++) {
        rank_begin(m, "psd_worker_info", r);
        label(m, "host", m->rows[r].hostname);
        label(m, "state", ps_worker_state_name(m->rows[r].state));
        end_u64(m, 1);
    }
    family(m, "psd_worker_last_seen_seconds", "gauge",
           "seconds since the rank's worker last sent anything (ranks never held: absent)");
    for (uint32_t r = 0; r < m->nrows; r++) {
        if (m->rows[r].worker_id == 0)
            continue;
        rank_begin(m, "psd_worker_last_seen_seconds", r);
        tb_str(&m->text, "} ");
        tb_ms_as_seconds(&m->text, m->rows[r].last_seen_ms);
        tb_str(&m->text, "\n");
    }
    family(m, "psd_worker_clock", "gauge", "the clock of the rank's last applied push + 1");
    for (uint32_t r = 0; r < m->nrows; r++) {
        rank_begin(m, "psd_worker_clock", r);
        end_u64(m, m->rows[r].clock);
    }
    family(m, "psd_worker_pushes_total", "counter", "the rank's pushes applied");
    for (uint32_t r = 0; r < m->nrows; r++) {
        rank_begin(m, "psd_worker_pushes_total", r);
        end_u64(m, m->rows[r].pushes);
    }
    family(m, "psd_worker_loss", "gauge",
           "the training loss the rank's worker last reported (absent until it does)");
    for (uint32_t r = 0; r < m->nrows; r++) {
        if (isnan(m->rows[r].loss))
            continue;
        rank_begin(m, "psd_worker_loss", r);
        end_double(m, m->rows[r].loss);
    }
    family(m, "psd_worker_samples_per_second", "gauge",
           "training samples a second the rank's worker last reported (absent until it does)");
    for (uint32_t r = 0; r < m->nrows; r++) {
        if (isnan(m->rows[r].samples_per_s))
            continue;
        rank_begin(m, "psd_worker_samples_per_second", r);
        end_double(m, m->rows[r].samples_per_s);
    }
}

/* One sample per sparse table of the shard (none for a dense model). */
static void table_samples(ps_metrics *m, const char *name, const char *type, const char *help,
                          const ps_table_status *t, size_t n, size_t field)
{
    family(m, name, type, help);
    for (size_t i = 0; i < n; i++) {
        sample_begin(m, name);
        label(m, "table", t[i].name);
        end_u64(m, *(const uint64_t *)((const char *)&t[i] + field));
    }
}

static void render_tables(ps_metrics *m)
{
    size_t n = 0;
    const ps_table_status *t = ps_engine_tables_get(m->src.engine, &n);
    if (n == 0)
        return;
    table_samples(m, "psd_table_rows", "gauge", "live rows of each sparse table on this shard", t,
                  n, offsetof(ps_table_status, rows));
    table_samples(m, "psd_table_bytes", "gauge",
                  "bytes a sparse table holds on this shard: rows, index, sketch, accumulator", t,
                  n, offsetof(ps_table_status, bytes));
    table_samples(m, "psd_table_admitted_total", "counter", "rows created (keys admitted)", t, n,
                  offsetof(ps_table_status, admitted));
    table_samples(m, "psd_table_below_min_count_total", "counter",
                  "writes dropped while their key was seen fewer than sparse.min_count times", t, n,
                  offsetof(ps_table_status, unadmitted));
    family(m, "psd_table_evicted_total", "counter",
           "rows dropped: idle (sparse.idle_versions) or to admit another at sparse.max_rows");
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 2; k++) {
            sample_begin(m, "psd_table_evicted_total");
            label(m, "table", t[i].name);
            label(m, "reason", k == 0 ? "idle" : "cap");
            end_u64(m, k == 0 ? t[i].evicted_idle : t[i].evicted_cap);
        }
    }
}

static void render_checkpoints(ps_metrics *m)
{
    const ps_checkpointer *ck = m->src.ckpt;
    if (ck == NULL)
        return;
    uint64_t finished = ps_checkpointer_finished(ck, NULL, NULL);
    uint64_t written = ps_checkpointer_written(ck, NULL);
    single_u64(m, "psd_checkpoints_written_total", "counter", "checkpoints written", written);
    single_u64(m, "psd_checkpoint_failures_total", "counter",
               "checkpoints that failed or were skipped (θ not finite)", finished - written);
    ps_checkpointer_last last;
    ps_checkpointer_last_get(ck, &last);
    if (last.written_ms == 0)
        return; /* none written yet: no age, size or duration */
    uint64_t now = ps_clock_ms();
    single_double(m, "psd_checkpoint_age_seconds", "gauge",
                  "seconds since the last checkpoint was written",
                  (double)(now > last.written_ms ? now - last.written_ms : 0) / 1e3);
    single_u64(m, "psd_checkpoint_size_bytes", "gauge", "size of the last checkpoint written",
               last.bytes);
    single_double(m, "psd_checkpoint_duration_seconds", "gauge",
                  "how long writing the last checkpoint took", (double)last.write_ms / 1e3);
}

/* /metrics' own traffic: what the limits refused and how often the text
 * was rendered for a scrape. */
static void render_http(ps_metrics *m)
{
    single_u64(m, "psd_metrics_renders_total", "counter",
               "renderings of this text for scrapes (one answers every scrape for 100 ms)",
               m->renders);
    family(m, "psd_metrics_connections_total", "counter",
           "connections to /metrics by how they ended: answered, rate_limited (429), "
           "rate_dropped (refused: its address far over the rate), no_slot (refused: no "
           "connection free), displaced (closed for a newcomer), deadline (closed 5 s after it "
           "was accepted); a refused connection is held unread for 1 s, then reset");
    for (int i = 0; i < OUT_COUNT; i++) {
        sample_begin(m, "psd_metrics_connections_total");
        label(m, "outcome", outcome_names[i]);
        end_u64(m, m->outcomes[i]);
    }
}

/* A small file of /proc into buf (cap bytes, terminated); false if unread. */
static bool proc_read(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    return true;
}

static uint64_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 0;
    uint64_t n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        n += de->d_name[0] != '.';
    closedir(d);
    return n > 0 ? n - 1 : 0; /* opendir's own */
}

/* The standard process metrics (their usual names), with the shard label. */
static void render_process(ps_metrics *m)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        single_double(m, "process_cpu_seconds_total", "counter",
                      "user and system CPU time psd spent, in seconds",
                      (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                          (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    char statm[128];
    unsigned long long size = 0, resident = 0;
    if (proc_read("/proc/self/statm", statm, sizeof statm) &&
        sscanf(statm, "%llu %llu", &size, &resident) == 2) {
        uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
        single_u64(m, "process_resident_memory_bytes", "gauge", "resident memory size in bytes",
                   resident * page);
        single_u64(m, "process_virtual_memory_bytes", "gauge", "virtual memory size in bytes",
                   size * page);
    }
    single_double(m, "process_start_time_seconds", "gauge",
                  "start time of the process since the Unix epoch, in seconds", m->start_time_s);
    single_u64(m, "process_open_fds", "gauge", "open file descriptors", open_fds());
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        single_u64(m, "process_max_fds", "gauge", "the limit of open file descriptors",
                   (uint64_t)rl.rlim_cur);
}

int ps_metrics_render(ps_metrics *m, const char **text, size_t *len)
{
    m->text.len = 0;
    m->text.full = false;
    ps_engine_stats st;
    ps_engine_stats_get(m->src.engine, &st);
    ps_engine_workers_get(m->src.engine, ps_clock_ms(), m->rows);
    const ps_metrics_counters *c = m->src.counters;
    render_job(m, &st);
    render_requests(m, &st);
    render_traffic(m, "psd_received_messages_total", "messages received, by type and codec",
                   c->rx_messages);
    render_traffic(m, "psd_received_bytes_total",
                   "bytes received (header and payload frames; codec shm: the payload read from "
                   "shared memory), by type and codec",
                   c->rx_bytes);
    render_traffic(m, "psd_sent_messages_total", "messages sent, by type and codec",
                   c->tx_messages);
    render_traffic(m, "psd_sent_bytes_total",
                   "bytes sent (header and payload frames; codec shm: θ written to shared "
                   "memory), by type and codec",
                   c->tx_bytes);
    render_errors(m, c);
    render_timing(m, c);
    render_workers(m, &st);
    render_ranks(m);
    render_tables(m);
    render_checkpoints(m);
    render_http(m);
    render_process(m);
    int rc = 0;
    if (m->text.full) { /* out of memory: what fitted, cut at a line */
        while (m->text.len > 0 && m->text.p[m->text.len - 1] != '\n')
            m->text.len--;
        rc = PS_ENOMEM;
    }
    *text = m->text.p ? m->text.p : "";
    *len = m->text.len;
    return rc;
}

/* ---- HTTP ------------------------------------------------------------------------ */

/* A short fixed answer, built once and queued as often as needed. */
static struct MHD_Response *fixed_reply(const char *body, const char *header, const char *value)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return NULL;
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8") !=
            MHD_YES ||
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES ||
        (header != NULL && MHD_add_response_header(r, header, value) != MHD_YES)) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

/* The rendering that answers a scrape now: the kept one while it is
 * younger than METRICS_CACHE_MS, else a new one (the text is copied: the
 * buffer is rendered again while the last one may still be on its way). */
static struct MHD_Response *page_now(ps_metrics *m)
{
    uint64_t now = ps_clock_ms();
    if (m->page != NULL && now - m->page_ms < METRICS_CACHE_MS)
        return m->page;
    const char *text;
    size_t len;
    if (ps_metrics_render(m, &text, &len) != 0)
        return NULL;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return NULL;
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE) != MHD_YES ||
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES) {
        MHD_destroy_response(r);
        return NULL;
    }
    if (m->page != NULL)
        MHD_destroy_response(m->page); /* freed once the connections sending it are done */
    m->page = r;
    m->page_ms = now;
    m->renders++;
    return r;
}

static mhd_result reply(ps_metrics *m, struct MHD_Connection *conn, unsigned status,
                        struct MHD_Response *r, int outcome)
{
    if (r == NULL)
        return MHD_NO;
    m->outcomes[outcome]++;
    return MHD_queue_response(conn, status, r);
}

/* The slot of conn, or NULL when it was displaced or ran out of time (its
 * socket is shut down and libmicrohttpd closes it soon). */
static conn_slot *slot_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_slot *slot = info != NULL ? info->socket_context : NULL;
    return slot != NULL && slot->conn == conn ? slot : NULL;
}

/* GET or HEAD /metrics; a short 404 or 405 to anything else, 429 to a
 * request over its address' rate. Answered at the first call, which has
 * the headers: libmicrohttpd takes a reply then (or once a body is all
 * read, never in between), and a body is not worth reading: it is dropped
 * with the connection after the reply. */
static mhd_result answer(void *cls, struct MHD_Connection *conn, const char *url,
                         const char *method, const char *version, const char *upload_data,
                         size_t *upload_data_size, void **req_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    ps_metrics *m = cls;
    conn_slot *slot = slot_of(conn);
    if (slot == NULL)
        return MHD_NO;
    if (slot->limited)
        return reply(m, conn, MHD_HTTP_TOO_MANY_REQUESTS, m->too_many, OUT_LIMITED);
    if (strcmp(url, "/metrics") != 0)
        return reply(m, conn, MHD_HTTP_NOT_FOUND, m->not_found, OUT_ANSWERED);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply(m, conn, MHD_HTTP_METHOD_NOT_ALLOWED, m->not_allowed, OUT_ANSWERED);
    struct MHD_Response *page = page_now(m);
    if (page == NULL)
        return reply(m, conn, MHD_HTTP_SERVICE_UNAVAILABLE, m->no_memory, OUT_ANSWERED);
    m->scrapes++;
    return reply(m, conn, MHD_HTTP_OK, page, OUT_ANSWERED);
}

/* ---- the limits ------------------------------------------------------------------- */

/* An address as 16 bytes: IPv6 as it is, IPv4 as ::ffff:a.b.c.d. */
static void addr_key(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa != NULL && sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    } else if (sa != NULL && sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    }
}

/* The bucket of addr, refilled up to now; a new one (full) in place of
 * the least recently seen when addr has none. */
static addr_rate *rate_of(ps_metrics *m, const uint8_t addr[16], uint64_t now)
{
    addr_rate *e = NULL, *oldest = &m->rates[0];
    for (size_t i = 0; i < METRICS_ADDRS && e == NULL; i++) {
        addr_rate *r = &m->rates[i];
        if (r->seen_ms != 0 && memcmp(r->addr, addr, 16) == 0)
            e = r;
        else if (r->seen_ms < oldest->seen_ms)
            oldest = r;
    }
    if (e == NULL) {
        e = oldest;
        memcpy(e->addr, addr, 16);
        e->tokens = METRICS_RATE_BURST;
        e->seen_ms = now ? now : 1;
    }
    e->tokens += (double)(now - e->seen_ms) * (METRICS_RATE_PER_S / 1e3);
    if (e->tokens > METRICS_RATE_BURST)
        e->tokens = METRICS_RATE_BURST;
    e->seen_ms = now ? now : 1;
    return e;
}

/* Closes a held connection from under libmicrohttpd: the shutdown wakes
 * its epoll, it reads the end and closes the socket (and says so, see
 * notify). The slot is free at once. A pending one is left alone: notify
 * shuts it down when libmicrohttpd starts it (its descriptor is certain to
 * be the connection's only then). */
static void slot_drop(ps_metrics *m, conn_slot *slot, int outcome)
{
    if (slot->conn != NULL)
        shutdown(slot->fd, SHUT_RDWR);
    slot->conn = NULL;
    slot->pending = false;
    m->outcomes[outcome]++;
}

static bool slot_used(const conn_slot *s)
{
    return s->conn != NULL || s->pending;
}

/* When every slot is taken: the one a newcomer from an address holding
 * `mine` connections may displace, or NULL: the oldest of the address
 * that holds the most, if it holds 2 more than the newcomer's; else, for
 * a newcomer from an address that holds none, the oldest of all if it was
 * accepted METRICS_DISPLACE_MS ago. */
static conn_slot *victim(ps_metrics *m, unsigned mine, uint64_t now)
{
    conn_slot *v = NULL, *oldest = NULL;
    unsigned most = 0;
    for (size_t i = 0; i < METRICS_CONNECTIONS; i++) {
        conn_slot *s = &m->slots[i];
        if (!slot_used(s))
            continue;
        unsigned n = 0;
        for (size_t j = 0; j < METRICS_CONNECTIONS; j++)
            n += slot_used(&m->slots[j]) && memcmp(m->slots[j].addr, s->addr, 16) == 0;
        if (n > most || (n == most && s->accepted_ms < v->accepted_ms)) {
            most = n;
            v = s;
        }
        if (oldest == NULL || s->accepted_ms < oldest->accepted_ms)
            oldest = s;
    }
    if (most >= mine + 2)
        return v;
    if (oldest == NULL)
        return NULL;
    return mine == 0 && now - oldest->accepted_ms >= METRICS_DISPLACE_MS ? oldest : NULL;
}

/* The slot reserved for connection fd that psd accepted from addr, or
 * NULL: refused by the limits above. libmicrohttpd may start the
 * connection later than MHD_add_connection returns (notify finds its slot
 * by fd then). */
static conn_slot *admit(ps_metrics *m, const struct sockaddr *addr, int fd, uint64_t now)
{
    uint8_t key[16];
    addr_key(addr, key);
    addr_rate *rate = rate_of(m, key, now);
    double tokens = rate->tokens;
    rate->tokens = tokens - 1.0 < -2 * METRICS_RATE_BURST ? -2 * METRICS_RATE_BURST : tokens - 1.0;
    if (tokens <= -METRICS_RATE_BURST) {
        m->outcomes[OUT_DROPPED]++;
        return NULL;
    }
    unsigned mine = 0;
    conn_slot *slot = NULL;
    for (size_t i = 0; i < METRICS_CONNECTIONS; i++) {
        conn_slot *s = &m->slots[i];
        if (!slot_used(s))
            slot = slot ? slot : s;
        else
            mine += memcmp(s->addr, key, 16) == 0;
    }
    if (mine >= METRICS_PER_ADDR) {
        m->outcomes[OUT_NO_SLOT]++;
        return NULL;
    }
    if (slot == NULL) {
        slot = victim(m, mine, now);
        if (slot == NULL) {
            m->outcomes[OUT_NO_SLOT]++;
            return NULL;
        }
        slot_drop(m, slot, OUT_DISPLACED);
    }
    *slot = (conn_slot){.pending = true, .fd = fd, .accepted_ms = now, .limited = tokens < 1.0};
    memcpy(slot->addr, key, 16);
    return slot;
}

/* Resets a connection (no FIN, no TIME_WAIT left behind) and closes it. */
static void reset_close(int fd)
{
    struct linger now = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &now, sizeof now);
    close(fd);
}

/* Lets go of the tarpit's connections held METRICS_TARPIT_MS (all: every one). */
static void tarpit_sweep(ps_metrics *m, uint64_t now, bool all)
{
    while (m->tarpit_n > 0 && (all || now - m->tarpit_ms[m->tarpit_head] >= METRICS_TARPIT_MS)) {
        reset_close(m->tarpit[m->tarpit_head]);
        m->tarpit_head = (m->tarpit_head + 1) % METRICS_TARPIT;
        m->tarpit_n--;
    }
}

/* Holds a refused connection unread (or resets it at once when the
 * tarpit is full of younger ones or descriptors are scarce). */
static void tarpit_add(ps_metrics *m, int fd, uint64_t now)
{
    if (fd >= m->fd_room) {
        reset_close(fd);
        return;
    }
    if (m->tarpit_n == METRICS_TARPIT) { /* the oldest goes early */
        reset_close(m->tarpit[m->tarpit_head]);
        m->tarpit_head = (m->tarpit_head + 1) % METRICS_TARPIT;
        m->tarpit_n--;
    }
    size_t at = (m->tarpit_head + m->tarpit_n) % METRICS_TARPIT;
    m->tarpit[at] = fd;
    m->tarpit_ms[at] = now;
    m->tarpit_n++;
}

/* Accepts what waits on the listener, METRICS_ACCEPTS at most: each goes
 * to libmicrohttpd or to the tarpit. No more than libmicrohttpd's limit
 * allows (it counts connections displaced or timed out that it has yet to
 * close): the rest wait for the next run. */
static void accept_some(ps_metrics *m, uint64_t now)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    unsigned held = info != NULL ? info->num_connections : 0;
    for (int i = 0; i < METRICS_ACCEPTS && held < METRICS_MHD_LIMIT; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(m->listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                tarpit_sweep(m, now, true); /* its descriptors are better spent elsewhere */
            return;
        }
        conn_slot *slot = admit(m, (struct sockaddr *)&ss, fd, now);
        if (slot == NULL) {
            tarpit_add(m, fd, now);
            continue;
        }
        if (MHD_add_connection(m->daemon, fd, (struct sockaddr *)&ss, len) == MHD_YES)
            held++;
        else
            slot->pending = false; /* libmicrohttpd closed it */
    }
}

/* libmicrohttpd started a connection (the one admit let in: it takes a
 * free slot) or closed one (its slot is freed, if still its). */
static void notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                   enum MHD_ConnectionNotificationCode toe)
{
    ps_metrics *m = cls;
    conn_slot *slot = *socket_context;
    *socket_context = NULL;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (slot != NULL && slot->conn == conn)
            slot->conn = NULL;
        return;
    }
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (info == NULL)
        return;
    slot = NULL;
    for (size_t i = 0; i < METRICS_CONNECTIONS && slot == NULL; i++)
        if (m->slots[i].pending && m->slots[i].fd == info->connect_fd)
            slot = &m->slots[i];
    if (slot == NULL) { /* displaced or timed out before it started */
        shutdown(info->connect_fd, SHUT_RDWR);
        return;
    }
    slot->conn = conn;
    slot->pending = false;
    *socket_context = slot;
}

/* Closes the connections that reached METRICS_DEADLINE_MS since their
 * accept, whatever they are doing. */
static void deadline_sweep(ps_metrics *m, uint64_t now)
{
    for (size_t i = 0; i < METRICS_CONNECTIONS; i++) {
        conn_slot *s = &m->slots[i];
        if (slot_used(s) && now - s->accepted_ms >= METRICS_DEADLINE_MS)
            slot_drop(m, s, OUT_DEADLINE);
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* libmicrohttpd's own messages (a connection it dropped): debug lines. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    ps_metrics *m = cls;
    if (m->log == NULL || m->log->level < PS_LOG_DEBUG)
        return; /* a flood makes many: not even formatted */
    char line[256];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    PS_LOG_D(m->log, "shard %u: metrics: %s", m->src.shard, line);
}

/* host and port of "host:port" ("[v6]:port" too); "*" is every interface. */
static int listen_split(const char *addr, char *host, size_t cap, char *port, size_t pcap,
                        ps_error *err)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || colon[1] == '\0' || strlen(colon + 1) >= pcap)
        return ps_error_set(err, PS_EINVAL, "metrics: \"%s\" is not host:port", addr);
    size_t n = (size_t)(colon - addr);
    const char *h = addr;
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n >= cap)
        return ps_error_set(err, PS_EINVAL, "metrics: \"%s\": the host is too long", addr);
    memcpy(host, h, n);
    host[n] = '\0';
    memcpy(port, colon + 1, strlen(colon + 1) + 1);
    return 0;
}

/* A non-blocking TCP socket listening on addr; *fd, or an error. */
static int listen_open(const char *addr, int *fd, ps_error *err)
{
    char host[PS_ENDPOINT_MAX], port[8];
    int rc = listen_split(addr, host, sizeof host, port, sizeof port, err);
    if (rc != 0)
        return rc;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(strcmp(host, "*") == 0 ? "0.0.0.0" : host, port, &hints, &ai);
    if (gai != 0)
        return ps_error_set(err, PS_EINVAL, "metrics: cannot resolve %s: %s", addr,
                            gai_strerror(gai));
    int s = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, e = 0;
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(s, ai->ai_addr, ai->ai_addrlen) != 0 || listen(s, METRICS_BACKLOG) != 0)
        e = errno;
    freeaddrinfo(ai);
    if (e != 0) {
        if (s >= 0)
            close(s);
        return ps_error_set(err, PS_EIO, "metrics: cannot listen on %s: %s", addr, strerror(e));
    }
    *fd = s;
    return 0;
}

static int daemon_start(ps_metrics *m, ps_error *err)
{
    int rc = listen_open(m->listen, &m->listen_fd, err);
    if (rc != 0)
        return rc;
    struct rlimit rl;
    m->fd_room = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)INT_MAX
                     ? (int)(rl.rlim_cur / 2)
                     : INT_MAX;
    m->not_found = fixed_reply("not found: psd serves /metrics\n", NULL, NULL);
    m->not_allowed =
        fixed_reply("method not allowed: use GET\n", MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    m->too_many = fixed_reply("too many requests from your address: wait a second\n",
                              MHD_HTTP_HEADER_RETRY_AFTER, "1");
    m->no_memory = fixed_reply("psd is out of memory\n", NULL, NULL);
    if (m->not_found == NULL || m->not_allowed == NULL || m->too_many == NULL ||
        m->no_memory == NULL)
        return ps_error_set(err, PS_ENOMEM, "metrics: out of memory");
    /* no listener of its own: accept_some hands it what admit lets in, and
     * its limit is above ours; no idle timeout of its own either:
     * deadline_sweep closes every connection in time */
    m->daemon = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG, 0, NULL, NULL, answer, m,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, m, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)METRICS_MHD_LIMIT, MHD_OPTION_NOTIFY_CONNECTION, notify, m,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)METRICS_MEMORY_BYTES, MHD_OPTION_END);
    if (m->daemon == NULL)
        return ps_error_set(err, PS_EIO, "metrics: cannot serve HTTP on %s", m->listen);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    int mhd_fd = info != NULL ? info->epoll_fd : -1;
    if (mhd_fd < 0)
        return ps_error_set(err, PS_EIO, "metrics: libmicrohttpd has no epoll descriptor");
    m->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = m->listen_fd};
    struct epoll_event mev = {.events = EPOLLIN, .data.fd = mhd_fd};
    if (m->epoll_fd < 0 || epoll_ctl(m->epoll_fd, EPOLL_CTL_ADD, m->listen_fd, &lev) != 0 ||
        epoll_ctl(m->epoll_fd, EPOLL_CTL_ADD, mhd_fd, &mev) != 0)
        return ps_error_set(err, PS_EIO, "metrics: epoll: %s", strerror(errno));
    return 0;
}

ps_metrics *ps_metrics_new(const ps_metrics_source *src, const char *addr, const ps_log *log,
                           ps_error *err)
{
    ps_metrics *m = calloc(1, sizeof *m);
    if (m == NULL) {
        ps_error_set(err, PS_ENOMEM, "metrics: out of memory");
        return NULL;
    }
    m->src = *src;
    m->log = log;
    m->listen_fd = -1;
    m->epoll_fd = -1;
    snprintf(m->shard_label, sizeof m->shard_label, "shard=\"%u\"", src->shard);
    m->nrows = ps_engine_workers(src->engine);
    m->rows = calloc(m->nrows ? m->nrows : 1, sizeof *m->rows);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    m->start_time_s = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
    if (m->rows == NULL ||
        !tb_room(&m->text, TEXT_MIN_BYTES + (size_t)m->nrows * TEXT_RANK_BYTES)) {
        ps_error_set(err, PS_ENOMEM, "metrics: out of memory for %u ranks", m->nrows);
        goto fail;
    }
    if (addr != NULL && addr[0] != '\0') {
        ps_strlcpy(m->listen, addr, sizeof m->listen);
        if (daemon_start(m, err) != 0)
            goto fail;
        PS_LOG_I(log, "shard %u/%u: metrics on http://%s/metrics", src->shard, src->job->nservers,
                 addr);
    }
    return m;
fail:
    ps_metrics_destroy(&m);
    return NULL;
}

/* The time share: after a run that took t, the next waits (METRICS_SHARE
 * - 1) t, so however hard /metrics is pressed it takes at most
 * 1/METRICS_SHARE of the loop; what arrives meanwhile waits in the
 * kernel's queue. */
static bool resting(const ps_metrics *m, double now_s)
{
    return now_s < m->resume_s;
}

int ps_metrics_fd(const ps_metrics *m)
{
    if (m == NULL || m->daemon == NULL || resting(m, ps_clock_s()))
        return -1; /* resting: ps_metrics_timeout_ms says when it is over */
    return m->epoll_fd;
}

long ps_metrics_timeout_ms(const ps_metrics *m, long max_ms)
{
    if (m == NULL || m->daemon == NULL)
        return max_ms;
    double now_s = ps_clock_s();
    if (resting(m, now_s)) {
        long rest = (long)ceil((m->resume_s - now_s) * 1e3);
        rest = rest < 1 ? 1 : rest;
        return rest < max_ms ? rest : max_ms;
    }
    long t = max_ms;
    uint64_t now = ps_clock_ms();
    for (size_t i = 0; i < METRICS_CONNECTIONS; i++) {
        const conn_slot *s = &m->slots[i];
        if (!slot_used(s))
            continue;
        uint64_t due = s->accepted_ms + METRICS_DEADLINE_MS;
        long left = due > now ? (long)(due - now) : 0;
        t = left < t ? left : t;
    }
    if (m->tarpit_n > 0) {
        uint64_t due = m->tarpit_ms[m->tarpit_head] + METRICS_TARPIT_MS;
        long left = due > now ? (long)(due - now) : 0;
        t = left < t ? left : t;
    }
    MHD_UNSIGNED_LONG_LONG mt = 0;
    if (MHD_get_timeout(m->daemon, &mt) == MHD_YES && mt < (MHD_UNSIGNED_LONG_LONG)t)
        t = (long)mt;
    return t;
}

void ps_metrics_run(ps_metrics *m)
{
    if (m == NULL || m->daemon == NULL)
        return;
    double t0 = ps_clock_s();
    if (resting(m, t0))
        return;
    uint64_t now = ps_clock_ms();
    accept_some(m, now);
    MHD_run(m->daemon);
    deadline_sweep(m, now);
    tarpit_sweep(m, now, false);
    double spent = ps_clock_s() - t0;
    m->resume_s = t0 + spent * METRICS_SHARE;
}

uint64_t ps_metrics_scrapes(const ps_metrics *m)
{
    return m->scrapes;
}

void ps_metrics_destroy(ps_metrics **mp)
{
    if (mp == NULL || *mp == NULL)
        return;
    ps_metrics *m = *mp;
    if (m->daemon != NULL)
        MHD_stop_daemon(m->daemon);
    tarpit_sweep(m, 0, true);
    if (m->epoll_fd >= 0)
        close(m->epoll_fd);
    if (m->listen_fd >= 0)
        close(m->listen_fd);
    struct MHD_Response *replies[] = {m->page, m->not_found, m->not_allowed, m->too_many,
                                      m->no_memory};
    for (size_t i = 0; i < COUNT(replies); i++)
        if (replies[i] != NULL)
            MHD_destroy_response(replies[i]);
    free(m->text.p);
    free(m->rows);
    free(m);
    *mp = NULL;
}
