/* client.c — libpsworker, the client side of the wire protocol
 * (docs/architecture.md#the-wire-protocol, docs/architecture.md#the-failure-model). One DEALER per
 * shard. Every exchange sends its request to all shards before it awaits any reply; replies are
 * matched by seq, so a late reply to an older request is dropped (except a final ERROR: the server
 * stopped); a request still unanswered is sent again with the same seq, until the shard has been
 * silent for the timeout. A big push payload goes out straight from the caller's gradient (no
 * copy); the push returns only once ZeroMQ has let go of it. A heartbeat thread, with a ZeroMQ
 * context of its own, keeps the worker alive and tells the caller's thread what its replies said.
 */
#include "client_impl.h"
#include "client_lease.h"

#include "client_codec.h"
#include "client_shm.h"
#include "endpoint_local.h"
#include "exchange.h"
#include "heartbeat.h"
#include "keys.h"
#include "membership.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Static_assert(PS_PUSH_DUPLICATE == PS_ACK_DUPLICATE, "push flags follow the ACK flags");
_Static_assert(PS_CLIENT_VERSION_FINAL == PS_VERSION_FINAL, "the final version is the wire's");
_Static_assert(PS_PUSH_DROPPED == PS_ACK_DROPPED, "push flags follow the ACK flags");

const char *ps_version(void)
{
    return PSD_VERSION_STRING;
}

unsigned ps_version_number(void)
{
    return PSD_VERSION_NUMBER;
}

void ps_client_opts_init(ps_client_opts *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->rank = -1;
    o->push_topk_ratio = 0.01;
}

void ps_push_pull_init(ps_push_pull *pp)
{
    if (pp == NULL)
        return;
    memset(pp, 0, sizeof *pp);
    pp->size = sizeof *pp;
}

void ps_server_stats_init(ps_server_stats *s, uint64_t *clock, uint64_t *pushes, uint32_t cap)
{
    if (s == NULL)
        return;
    memset(s, 0, sizeof *s);
    s->size = sizeof *s;
    s->clock = clock;
    s->pushes = pushes;
    s->cap = cap;
}

int ps_client_struct_take(void *dst, size_t known, const void *src, size_t size, size_t least,
                          const char *what, char *why, size_t cap)
{
    if (size < least) {
        snprintf(why, cap, "%s.size is %zu: call %s_init", what, size, what);
        return PS_EINVAL;
    }
    if (size > known) {
        const unsigned char *p = src;
        for (size_t i = known; i < size; i++) {
            if (p[i] != 0) {
                snprintf(why, cap,
                         "%s.size is %zu, libpsworker %s knows %zu bytes of it, and a field "
                         "past them is set: this library is older than the header",
                         what, size, PSD_VERSION_STRING, known);
                return PS_EINVAL;
            }
        }
        size = known;
    }
    memcpy(dst, src, size);
    return 0;
}

bool ps_client_chunks_on(const ps_client *c, const shard *s)
{
    return s->nchunks > 1 && !s->shm_on && !(s->chunk_remote && s->local) && c->mode_desc != NULL &&
           c->mode_desc->rounds;
}

void ps_client_chunk_range(const shard *s, uint32_t k, uint64_t *lo, uint64_t *hi)
{
    *lo = s->key_lo + (uint64_t)k * s->chunk_keys;
    *hi = *lo + s->chunk_keys < s->key_hi ? *lo + s->chunk_keys : s->key_hi;
}

/* Sets last_error and returns code. */
int ps_client_fail(ps_client *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->last_error, sizeof c->last_error, fmt, ap);
    va_end(ap);
    return code;
}

bool ps_client_code_is_final(int code)
{
    return code == PS_ESTOPPED || code == PS_EABORTED || code == PS_ECOMPLETE;
}

/* Records the first final ERROR a shard sent (either thread may call). */
void ps_client_final_set(ps_client *c, int code, const char *endpoint, const char *text)
{
    pthread_mutex_lock(&c->final_mu);
    if (atomic_load_explicit(&c->final_rc, memory_order_relaxed) == 0) {
        snprintf(c->final_why, sizeof c->final_why, "%s: %s", endpoint,
                 text[0] ? text : ps_strerror(code));
        atomic_store_explicit(&c->final_rc, code, memory_order_release);
    }
    pthread_mutex_unlock(&c->final_mu);
}

/* The final code with its sentence in last_error, or 0 while the job runs. */
int ps_client_final_check(ps_client *c)
{
    int code = atomic_load_explicit(&c->final_rc, memory_order_acquire);
    if (code == 0)
        return 0;
    return ps_client_fail(c, code, "%s", c->final_why);
}

void ps_client_log(ps_client *c, int warning, const char *fmt, ...)
{
    if (c->log_fn == NULL)
        return;
    char line[CLIENT_WHY_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->log_fn(c->log_arg, warning, line);
}

/* The figures ps_client_report last set (NaN before). */
void ps_client_report_get(ps_client *c, double *loss, double *rate)
{
    uint64_t l = atomic_load(&c->report_loss), r = atomic_load(&c->report_rate);
    memcpy(loss, &l, sizeof *loss);
    memcpy(rate, &r, sizeof *rate);
}

/* The client's buffer for a whole θ, allocated when first needed; NULL
 * when memory is short. */
float *ps_client_theta_buf(ps_client *c)
{
    if (c->theta_buf == NULL)
        c->theta_buf = malloc((size_t)c->num_params * sizeof(float));
    return c->theta_buf;
}

/* Makes sock a CURVE client of the servers' key, when the client has keys. */
int ps_client_curve_apply(const ps_client *c, void *sock)
{
    if (!c->curve)
        return 0;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c->curve_server.public_z85, PS_CURVE_Z85_LEN) !=
            0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, c->curve_me.public_z85, PS_CURVE_Z85_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->curve_me.secret_z85, PS_CURVE_Z85_LEN) != 0)
        return -1;
    return 0;
}

static void client_free(ps_client *c)
{
    ps_heartbeat_stop(c);
    if (c->view_held)
        zmq_msg_close(&c->view_msg);
    free(c->theta_buf);
    free(c->sp_buf);
    free(c->sp_scratch);
    free(c->pk_keys);
    free(c->enc);
    free(c->residual);
    free(c->scratch);
    for (size_t i = 0; c->shards != NULL && i < c->nshards; i++) {
        if (c->shards[i].sock != NULL)
            zmq_close(c->shards[i].sock);
        ps_shm_detach(&c->shards[i].shm);
        ps_shm_detach(&c->shards[i].shm_old);
        free(c->shards[i].chunk_acked);
        free(c->shards[i].chunk_pulled);
        free(c->shards[i].chunk_enc_off);
    }
    if (c->ctx != NULL)
        zmq_ctx_term(c->ctx);
    free(c->item_shard);
    free(c->items);
    free(c->shards);
    pthread_mutex_destroy(&c->final_mu);
    pthread_mutex_destroy(&c->settle_mu);
    pthread_cond_destroy(&c->settle_cv);
    free(c);
}

static int opts_check(const ps_client_opts *opts, char *why, size_t cap)
{
    if (opts->job == NULL || opts->job[0] == '\0' || strlen(opts->job) >= PS_JOB_NAME_MAX) {
        snprintf(why, cap, "job name must be 1 to %d bytes", PS_JOB_NAME_MAX - 1);
        return PS_EINVAL;
    }
    if (opts->servers == NULL || opts->num_servers == 0 || opts->num_servers > PS_MAX_SHARDS) {
        snprintf(why, cap, "give 1 to %d server endpoints, not %zu", PS_MAX_SHARDS,
                 opts->servers == NULL ? (size_t)0 : opts->num_servers);
        return PS_EINVAL;
    }
    for (size_t i = 0; i < opts->num_servers; i++) {
        if (opts->servers[i] == NULL || strlen(opts->servers[i]) >= PS_ENDPOINT_MAX) {
            snprintf(why, cap, "server endpoint %zu must be 0 to %d bytes", i, PS_ENDPOINT_MAX - 1);
            return PS_EINVAL;
        }
    }
    if (opts->rank < -1) {
        snprintf(why, cap, "rank %d: give a rank >= 0, or -1 for any", opts->rank);
        return PS_EINVAL;
    }
    if (opts->timeout_ms < 0) {
        snprintf(why, cap, "timeout %d ms: give a timeout >= 0 ms", opts->timeout_ms);
        return PS_EINVAL;
    }
    if ((opts->curve_server_key_file == NULL) != (opts->curve_secret_key_file == NULL) ||
        (opts->curve_server_key_file != NULL &&
         (opts->curve_server_key_file[0] == '\0' || opts->curve_secret_key_file[0] == '\0'))) {
        snprintf(why, cap,
                 "CURVE needs both the server's public key file (security.curve."
                 "server_public_key) and this worker's secret key file (client_secret_key)");
        return PS_EINVAL;
    }
    return 0;
}

/* Reads the CURVE keys of opts, when it names them. */
static int curve_load(ps_client *c, const ps_client_opts *opts, char *why, size_t cap)
{
    if (opts->curve_secret_key_file == NULL)
        return 0;
    ps_error err;
    if (ps_curve_secret_load(opts->curve_secret_key_file, &c->curve_me, NULL, 0, &err) != 0 ||
        ps_curve_public_load(opts->curve_server_key_file, &c->curve_server, &err) != 0) {
        ps_strlcpy(why, err.msg, cap);
        return err.code;
    }
    c->curve = true;
    return 0;
}

/* A DEALER for shard s, options set, connected to its endpoint. */
int ps_client_socket_open(ps_client *c, shard *s)
{
    int linger = 0, immediate = 0;
    int64_t max_msg = CLIENT_MAX_MSG_BYTES;
    s->sock = zmq_socket(c->ctx, ZMQ_DEALER);
    if (s->sock == NULL)
        return ps_client_fail(c, PS_EZMQ, "%s: socket: %s", s->endpoint, zmq_strerror(errno));
    if (zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_IMMEDIATE, &immediate, sizeof immediate) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg) != 0 ||
        ps_client_curve_apply(c, s->sock) != 0 || zmq_connect(s->sock, s->endpoint) != 0)
        return ps_client_fail(c, PS_EZMQ, "%s: %s", s->endpoint, zmq_strerror(errno));
    return 0;
}

/* Creates the context and one connected DEALER per shard. Connecting is
 * lazy: a server that starts a little later still gets the request. */
static int client_connect(ps_client *c, const ps_client_opts *opts)
{
    c->ctx = zmq_ctx_new();
    if (c->ctx == NULL)
        return ps_client_fail(c, PS_EZMQ, "zmq context: %s", zmq_strerror(errno));
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];
        ps_strlcpy(s->endpoint, opts->servers[i], sizeof s->endpoint);
        s->local = ps_endpoint_local(s->endpoint);
        int rc = ps_client_socket_open(c, s);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Returns once ZeroMQ holds no message made from the caller's gradient or
 * from sp_buf (the sparse calls' keys and rows), so they may be reused.
 * After every reply that is all but at once: the I/O thread lets go of a
 * message right after its last byte went out, before the server could
 * answer; a copy resent after a stall may still be on its way out behind
 * the one answered. A failed push may leave one queued for a shard that
 * does not answer; after CLIENT_SETTLE_MS the sockets are made anew
 * (closing one, linger 0, drops its queue) and the wait goes on. A socket
 * that cannot be made again stays NULL: requests to it then fail. */
static void push_settle(ps_client *c)
{
    uint64_t start = ps_clock_ms();
    bool renewed = false;
    while (atomic_load_explicit(&c->push_refs, memory_order_acquire) != 0) {
        uint64_t now = ps_clock_ms();
        if (!renewed && now - start > CLIENT_SETTLE_MS) {
            for (size_t i = 0; i < c->nshards; i++) {
                shard *s = &c->shards[i];
                if (s->sock != NULL)
                    zmq_close(s->sock);
                s->sock = NULL;
                if (ps_client_socket_open(c, s) != 0 && s->sock != NULL) {
                    zmq_close(s->sock);
                    s->sock = NULL;
                }
            }
            renewed = true;
        }
        /* asleep until the I/O thread lets go of the last one, or until
         * it is time to take the sockets back */
        uint64_t until_ms = renewed ? now + CLIENT_CHECK_MS : start + CLIENT_SETTLE_MS + 1;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (until_ms - now) * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_mutex_lock(&c->settle_mu);
        if (atomic_load_explicit(&c->push_refs, memory_order_acquire) != 0)
            pthread_cond_timedwait(&c->settle_cv, &c->settle_mu, &ts);
        pthread_mutex_unlock(&c->settle_mu);
    }
}

int ps_client_open(const ps_client_opts *caller_opts, ps_client **out, char *errbuf,
                   size_t errbuf_len)
{
    char why[PS_ERROR_MSG_MAX];
    int rc = PS_EINVAL;
    ps_client *c = NULL;
    ps_client_opts all;
    const ps_client_opts *opts = &all;
    if (out != NULL)
        *out = NULL;
    if (errbuf != NULL && errbuf_len > 0)
        errbuf[0] = '\0';
    if (caller_opts == NULL || out == NULL) {
        snprintf(why, sizeof why, "no options or no place for the client");
        goto report;
    }
    ps_client_opts_init(&all);
    if ((rc = ps_client_struct_take(&all, sizeof all, caller_opts, caller_opts->size,
                                    PS_CLIENT_OPTS_SIZE_1_0, "ps_client_opts", why, sizeof why)) !=
        0)
        goto report;
    all.size = sizeof all;
    if ((rc = opts_check(opts, why, sizeof why)) != 0)
        goto report;
    rc = PS_ENOMEM;
    snprintf(why, sizeof why, "out of memory");
    c = calloc(1, sizeof *c);
    if (c == NULL)
        goto report;
    atomic_init(&c->push_refs, 0);
    atomic_init(&c->final_rc, 0);
    c->hb_stop_fd = -1;
    if (pthread_mutex_init(&c->final_mu, NULL) != 0) {
        free(c);
        goto report;
    }
    if (pthread_mutex_init(&c->settle_mu, NULL) != 0 ||
        pthread_cond_init(&c->settle_cv, NULL) != 0) {
        pthread_mutex_destroy(&c->final_mu);
        free(c);
        goto report;
    }
    c->nshards = opts->num_servers;
    c->shards = calloc(c->nshards, sizeof *c->shards);
    c->items = calloc(c->nshards, sizeof *c->items);
    c->item_shard = calloc(c->nshards, sizeof *c->item_shard);
    if (c->shards == NULL || c->items == NULL || c->item_shard == NULL) {
        client_free(c);
        goto report;
    }
    ps_strlcpy(c->job, opts->job, sizeof c->job);
    c->incarnation = ps_membership_incarnation();
    c->pushes_expected = opts->pushes_expected;
    if (gethostname(c->hostname, sizeof c->hostname) != 0)
        c->hostname[0] = '\0';
    c->hostname[sizeof c->hostname - 1] = '\0';
    ps_client_report(c, NAN, NAN);
    if (!opts->socket_only && ps_shm_host_id(c->host, sizeof c->host) != 0)
        c->host[0] = '\0';
    c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : CLIENT_DEFAULT_TIMEOUT_MS;
    c->rank = -1;
    c->log_fn = opts->log_fn;
    c->log_arg = opts->log_arg;
    if ((rc = curve_load(c, opts, why, sizeof why)) != 0) {
        client_free(c);
        goto report;
    }
    if ((rc = client_connect(c, opts)) != 0 || (rc = ps_membership_register(c, opts->rank)) != 0) {
        ps_strlcpy(why, c->last_error, sizeof why);
        ps_membership_bye(c, 0,
                          NULL); /* frees the ranks already taken; its errors do not matter now */
        client_free(c);
        goto report;
    }
    if ((rc = ps_client_codec_init(c, opts, why, sizeof why)) != 0) {
        ps_membership_bye(c, 0, NULL);
        client_free(c);
        goto report;
    }
    c->heartbeat_ms = opts->heartbeat_ms;
    if (c->heartbeat_ms > 0 && (rc = ps_heartbeat_start(c)) != 0) {
        snprintf(why, sizeof why, "cannot start the heartbeat thread: %s", ps_strerror(rc));
        ps_heartbeat_stop(c);
        ps_membership_bye(c, 0, NULL);
        client_free(c);
        goto report;
    }
    *out = c;
    return 0;
report:
    if (errbuf != NULL && errbuf_len > 0)
        ps_strlcpy(errbuf, why, errbuf_len);
    return rc;
}

int ps_client_pull(ps_client *c, uint64_t min_version, float *theta, size_t n, uint64_t *version)
{
    return ps_client_pull_clock(c, 0, min_version, theta, n, version);
}

/* PS_EINVAL (with the sentence) unless n floats of `what` are θ's. */
static int theta_len_check(ps_client *c, const char *call, const char *what, size_t n)
{
    if ((uint64_t)n == c->num_params)
        return 0;
    return ps_client_fail(c, PS_EINVAL, "%s: %s holds %zu floats, θ has %llu", call, what, n,
                          (unsigned long long)c->num_params);
}

int ps_client_pull_clock(ps_client *c, uint64_t clock, uint64_t min_version, float *theta, size_t n,
                         uint64_t *version)
{
    if (c == NULL)
        return PS_EINVAL;
    if (theta == NULL)
        return ps_client_fail(c, PS_EINVAL, "pull: no buffer for theta");
    if (theta_len_check(c, "pull", "theta", n) != 0)
        return PS_EINVAL;
    op o = {.type = PS_MSG_PULL,
            .reply = PS_MSG_PULL_REPLY,
            .min_version = min_version,
            .pull_clock = clock,
            .theta = theta,
            .version = UINT64_MAX};
    int rc = ps_exchange_all(c, &o);
    if (rc == 0 && version != NULL)
        *version = o.version;
    return rc;
}

/* ---- sparse tables ---- */

/* The table's dim, or 0 (last_error set) for a table out of range. */
static uint32_t table_dim(ps_client *c, uint32_t table)
{
    if (table >= c->ntables) {
        ps_client_fail(c, PS_EINVAL, "table %u: the job has %u sparse tables", table, c->ntables);
        return 0;
    }
    return c->tables[table].dim;
}

/* PS_EINVAL (with the sentence) unless len floats at `what` are n rows of
 * dim floats. */
static int rows_len_check(ps_client *c, const char *call, const char *what, size_t len, size_t n,
                          uint32_t dim, uint32_t table)
{
    if (n <= SIZE_MAX / dim && len == n * dim)
        return 0;
    return ps_client_fail(c, PS_EINVAL,
                          "%s: %s holds %zu floats, %zu rows of table %u need %llu (%u each)", call,
                          what, len, n, table, (unsigned long long)n * dim, dim);
}

/* Splits the n sorted keys of o by shard and lays out each shard's payload
 * in sp_buf: its keys, then (grads) its rows, in the push codec when there
 * is one. With by_pull (a push of the keys of the last pull) a shard that
 * kept that pull's keys gets no keys: the push names the pull. 0,
 * PS_EINVAL (keys not sorted: last_error says so), PS_ENOMEM. */
static int sparse_prepare(ps_client *c, op *o, const float *grads, bool by_pull)
{
    if (!ps_keys_sorted(o->keys, o->nkeys))
        return ps_client_fail(c, PS_EINVAL, "keys of table %u are not sorted and unique",
                              o->table - 1);
    size_t need = 0, at = 0;
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];
        s->sp_beg = at;
        while (at < o->nkeys && ps_key_shard(o->keys[at], (uint32_t)c->nshards) == i)
            at++;
        s->sp_end = at;
        size_t n = s->sp_end - s->sp_beg, rows = 0;
        if (grads != NULL && n > 0) {
            size_t values = n * o->dim;
            rows = c->push_ops != NULL
                       ? c->push_ops->bytes(values, ps_compress_topk_k(values, c->topk_ratio))
                       : values * sizeof(float);
        }
        need += (PS_KEYS_BYTES_MAX(n) + rows + 7) & ~(size_t)7;
    }
    if (need > c->sp_cap) {
        unsigned char *b = realloc(c->sp_buf, need);
        if (b == NULL)
            return ps_client_fail(c, PS_ENOMEM, "out of memory for %zu keys", o->nkeys);
        c->sp_buf = b;
        c->sp_cap = need;
    }
    size_t off = 0;
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];
        size_t n = s->sp_end - s->sp_beg, kb = 0;
        s->sp_off = off;
        s->sp_keys_of = by_pull && n > 0 ? s->sp_kept_seq : 0;
        if (s->sp_keys_of == 0)
            ps_keys_encode(o->keys + s->sp_beg, n, c->sp_buf + off, PS_KEYS_BYTES_MAX(n), &kb);
        s->sp_keys_bytes = kb;
        s->sp_bytes = kb;
        s->sp_grads = NULL;
        if (grads != NULL && n > 0 && s->sp_keys_of != 0 && c->push_ops == NULL) {
            /* rows only: the caller's, not copied */
            s->sp_grads = grads + s->sp_beg * o->dim;
            s->sp_bytes = n * o->dim * sizeof(float);
        } else if (grads != NULL && n > 0) {
            size_t values = n * o->dim;
            const float *g = grads + s->sp_beg * o->dim;
            unsigned char *rows = c->sp_buf + off + kb;
            if (c->push_ops != NULL) {
                size_t k = ps_compress_topk_k(values, c->topk_ratio);
                /* topk takes n floats of scratch: grown to the most rows a
                 * shard's part of a push has had */
                float *scratch = NULL;
                if (c->push_ops->type == PS_COMPRESS_TOPK) {
                    if (values > c->sp_scratch_cap) {
                        float *grown = realloc(c->sp_scratch, values * sizeof(float));
                        if (grown == NULL)
                            return ps_client_fail(c, PS_ENOMEM, "out of memory for %zu rows", n);
                        c->sp_scratch = grown;
                        c->sp_scratch_cap = values;
                    }
                    scratch = c->sp_scratch;
                }
                if (c->push_ops->encode(g, values, k, rows, scratch) != 0)
                    return ps_client_fail(c, PS_EINVAL,
                                          "push: the rows of table %u hold a NaN or an infinity: "
                                          "they have no %s encoding",
                                          o->table - 1, c->push_ops->name);
                s->sp_bytes += c->push_ops->bytes(values, k);
            } else {
                memcpy(rows, g, values * sizeof(float));
                s->sp_bytes += values * sizeof(float);
            }
        }
        off += (PS_KEYS_BYTES_MAX(n) + (s->sp_bytes - kb) + 7) & ~(size_t)7;
    }
    return 0;
}

int ps_client_pull_rows(ps_client *c, uint32_t table, const uint64_t *keys, size_t n, float *rows,
                        size_t rows_len)
{
    if (c == NULL)
        return PS_EINVAL;
    uint32_t dim = table_dim(c, table);
    if (dim == 0)
        return PS_EINVAL;
    if ((keys == NULL || rows == NULL) && n > 0)
        return ps_client_fail(c, PS_EINVAL, "pull_rows: no keys or no buffer for the rows");
    if (rows_len_check(c, "pull_rows", "rows", rows_len, n, dim, table) != 0)
        return PS_EINVAL;
    op o = {.type = PS_MSG_PULL,
            .reply = PS_MSG_PULL_REPLY,
            .version = UINT64_MAX,
            .table = table + 1,
            .dim = dim,
            .keys = keys,
            .nkeys = n,
            .sp_rows = rows};
    int rc = sparse_prepare(c, &o, NULL, false);
    if (rc != 0)
        return rc;
    /* each pull replaces the keys a shard kept: its reply says whether it
     * kept these (exchange.c) */
    c->pk_table = 0;
    for (size_t i = 0; i < c->nshards; i++)
        c->shards[i].sp_kept_seq = 0;
    rc = ps_exchange_all(c, &o);
    push_settle(c); /* sp_buf goes by reference: the next call rewrites or frees it */
    bool kept = false;
    for (size_t i = 0; i < c->nshards && rc == 0; i++)
        kept = kept || c->shards[i].sp_kept_seq != 0;
    if (kept && n > c->pk_cap) {
        uint64_t *k = realloc(c->pk_keys, n * sizeof *k);
        if (k != NULL) {
            c->pk_keys = k;
            c->pk_cap = n;
        }
    }
    if (kept && n <= c->pk_cap) {
        memcpy(c->pk_keys, keys, n * sizeof *keys);
        c->pk_n = n;
        c->pk_table = table + 1;
    }
    return rc;
}

/* Whether a push of these keys to table t (as on the wire) has the keys of
 * the last pull, which shards kept. */
static bool push_by_pull(const ps_client *c, uint32_t t, const uint64_t *keys, size_t n)
{
    return n > 0 && c->pk_table == t && c->pk_n == n &&
           memcmp(c->pk_keys, keys, n * sizeof *keys) == 0;
}

/* After a push that named a pull: whether a shard answered that it no
 * longer holds the pull's keys (a pull came between, or it restarted). */
static bool pull_keys_lost(const ps_client *c)
{
    for (size_t i = 0; i < c->nshards; i++)
        if (c->shards[i].sp_keys_of != 0 && c->shards[i].status == PS_ESTATE)
            return true;
    return false;
}

int ps_client_push_rows(ps_client *c, uint32_t table, uint64_t clock, const uint64_t *keys,
                        size_t n, const float *grads, size_t grads_len, uint32_t samples)
{
    if (c == NULL)
        return PS_EINVAL;
    uint32_t dim = table_dim(c, table);
    if (dim == 0)
        return PS_EINVAL;
    if ((keys == NULL || grads == NULL) && n > 0)
        return ps_client_fail(c, PS_EINVAL, "push_rows: no keys or no gradients");
    if (rows_len_check(c, "push_rows", "grads", grads_len, n, dim, table) != 0)
        return PS_EINVAL;
    op o = {.type = PS_MSG_PUSH,
            .reply = PS_MSG_ACK,
            .version = UINT64_MAX,
            .clock = clock,
            .samples = samples,
            .table = table + 1,
            .dim = dim,
            .keys = keys,
            .nkeys = n,
            .sp_grads = grads};
    bool by_pull = push_by_pull(c, table + 1, keys, n);
    int rc = sparse_prepare(c, &o, grads, by_pull);
    if (rc != 0)
        return rc;
    rc = ps_exchange_all(c, &o);
    push_settle(c); /* as pull_rows */
    if (rc != 0 && by_pull && pull_keys_lost(c)) {
        /* with the keys, and the same seq: a shard that applied it already
         * acknowledges it as a duplicate */
        c->pk_table = 0;
        c->pk_resent++;
        ps_client_log(c, 0, "push of %zu rows: a shard lost the keys of the pull, sent with them",
                      n);
        if ((rc = sparse_prepare(c, &o, grads, false)) != 0)
            return rc;
        o.same_seq = true;
        rc = ps_exchange_all(c, &o);
        push_settle(c);
    }
    return rc;
}

int ps_client_scan_rows(ps_client *c, uint32_t table, size_t which, uint64_t cursor, size_t max,
                        uint64_t *keys, float *rows, size_t rows_len, size_t *n, uint64_t *next)
{
    if (c == NULL)
        return PS_EINVAL;
    uint32_t dim = table_dim(c, table);
    if (dim == 0)
        return PS_EINVAL;
    if (which >= c->nshards || max == 0 || keys == NULL || rows == NULL)
        return ps_client_fail(c, PS_EINVAL, "scan_rows: shard %zu of %zu, %zu rows at most", which,
                              c->nshards, max);
    if (n == NULL || next == NULL)
        return ps_client_fail(c, PS_EINVAL, "scan_rows: no place for the count or the cursor");
    if (rows_len_check(c, "scan_rows", "rows", rows_len, max, dim, table) != 0)
        return PS_EINVAL;
    op o = {.type = PS_MSG_PULL,
            .reply = PS_MSG_PULL_REPLY,
            .version = UINT64_MAX,
            .table = table + 1,
            .dim = dim,
            .sp_rows = rows,
            .scan_from = cursor,
            .scan_max = max,
            .scan_keys = keys};
    for (size_t i = 0; i < c->nshards; i++)
        c->shards[i].asked = i == which;
    int rc = ps_exchange_run(c, &o, true, c->timeout_ms);
    if (rc == 0) {
        *n = o.scan_n;
        *next = o.scan_next;
    }
    return rc;
}

size_t ps_client_num_tables(const ps_client *c)
{
    return c->ntables;
}

int ps_client_table(const ps_client *c, size_t i, const char **name, uint32_t *dim)
{
    if (i >= c->ntables)
        return PS_EINVAL;
    if (name != NULL)
        *name = c->tables[i].name;
    if (dim != NULL)
        *dim = c->tables[i].dim;
    return 0;
}

int ps_client_push(ps_client *c, uint64_t clock, const float *grad, size_t n, uint32_t samples,
                   uint64_t *version)
{
    if (c == NULL)
        return PS_EINVAL;
    if (grad == NULL)
        return ps_client_fail(c, PS_EINVAL, "push: no gradient");
    if (theta_len_check(c, "push", "grad", n) != 0)
        return PS_EINVAL;
    op o = {.type = PS_MSG_PUSH,
            .reply = PS_MSG_ACK,
            .clock = clock,
            .samples = samples,
            .grad = grad,
            .version = UINT64_MAX};
    int rc = ps_client_codec_encode(c, grad, false);
    if (rc != 0)
        return rc;
    c->got_count = c->got_flags = 0;
    rc = ps_exchange_all(c, &o);
    push_settle(c);
    ps_client_shm_after_push(c);
    c->push_flags = o.flags;
    c->lease_batch = c->lease_want = 0;
    if (rc == 0 && version != NULL)
        *version = o.version;
    return rc;
}

int ps_client_push_pull(ps_client *c, ps_push_pull *caller_pp)
{
    if (caller_pp == NULL)
        return c == NULL ? PS_EINVAL : ps_client_fail(c, PS_EINVAL, "push_pull: no exchange given");
    ps_push_pull all, *pp = &all;
    char why[PS_ERROR_MSG_MAX];
    ps_push_pull_init(&all);
    if (ps_client_struct_take(&all, sizeof all, caller_pp, caller_pp->size, PS_PUSH_PULL_SIZE_1_0,
                              "ps_push_pull", why, sizeof why) != 0)
        return c == NULL ? PS_EINVAL : ps_client_fail(c, PS_EINVAL, "push_pull: %s", why);
    caller_pp->pulled = 0; /* the out fields are the first release's: the caller has them */
    if (c == NULL)
        return PS_EINVAL;
    if (pp->grad == NULL)
        return ps_client_fail(c, PS_EINVAL, "push_pull: no gradient");
    if (theta_len_check(c, "push_pull", "grad", pp->n) != 0)
        return PS_EINVAL;
    size_t bytes = (size_t)c->num_params * sizeof(float);
    const char *g = (const char *)pp->grad, *th = (const char *)pp->theta;
    if (th != NULL && g < th + bytes && th < g + bytes)
        return ps_client_fail(c, PS_EINVAL, "push_pull: the gradient and theta overlap");
    float *theta = pp->theta;
    bool view = theta == NULL && c->nshards == 1;
    if (theta == NULL && !view) {
        if ((theta = ps_client_theta_buf(c)) == NULL)
            return ps_client_fail(c, PS_ENOMEM, "push_pull: out of memory for θ");
    }
    op o = {.type = PS_MSG_PUSH,
            .reply = PS_MSG_ACK,
            .clock = pp->clock,
            .samples = pp->samples,
            .grad = pp->grad,
            .version = UINT64_MAX,
            .then_pull = true,
            .min_version = pp->min_version,
            .pull_clock = pp->pull_clock,
            .theta = theta,
            .view = view,
            .meanwhile = pp->meanwhile,
            .meanwhile_arg = pp->arg};
    int rc = ps_client_codec_encode(c, pp->grad, true);
    if (rc != 0)
        return rc;
    c->got_count = c->got_flags = 0;
    rc = ps_exchange_all(c, &o);
    push_settle(c);
    ps_client_shm_after_push(c);
    c->push_flags = o.flags;
    c->lease_batch = c->lease_want = 0;
    if (rc != 0 || o.pull_rc != 0)
        return rc;
    caller_pp->pulled = 1;
    caller_pp->version = o.pull_version;
    caller_pp->view = o.view_out != NULL ? o.view_out : o.theta;
    return 0;
}

void ps_client_lease_push_set(ps_client *c, uint64_t batch, uint32_t want, uint32_t epoch_batches)
{
    c->lease_batch = batch;
    c->lease_want = want;
    c->lease_spe = epoch_batches;
}

void ps_client_lease_got(const ps_client *c, uint64_t *first, uint32_t *count, uint32_t *flags)
{
    *first = c->got_first;
    *count = c->got_count;
    *flags = c->got_flags;
}

int ps_client_lease(ps_client *c, uint32_t want, uint32_t epoch_batches, uint64_t *first,
                    uint32_t *count, uint32_t *flags)
{
    if (c == NULL || c->nshards == 0)
        return PS_EINVAL;
    int rc = ps_client_final_check(c);
    for (int attempt = 0; rc == 0 && attempt < 2; attempt++) {
        op o = {.type = PS_MSG_LEASE, .reply = PS_MSG_LEASE_REPLY, .version = UINT64_MAX};
        c->lease_want = want;
        c->lease_spe = epoch_batches;
        c->got_count = c->got_flags = 0;
        ps_exchange_mark(c, false, false);
        c->shards[0].asked = true;
        c->shards[0].status = 0;
        rc = ps_exchange_run(c, &o, true, c->timeout_ms);
        c->lease_want = 0;
        if (rc != PS_EWORKER || attempt > 0)
            break;
        /* shard 0 lost us (evicted, or it restarted): a heartbeat registers
         * us again with every shard that did, then ask once more */
        rc = ps_client_heartbeat(c);
    }
    ps_client_lease_got(c, first, count, flags);
    return rc;
}

int ps_client_heartbeat(ps_client *c)
{
    if (c == NULL)
        return PS_EINVAL;
    op o = {.type = PS_MSG_HEARTBEAT, .reply = PS_MSG_ACK, .version = UINT64_MAX};
    return ps_exchange_all(c, &o);
}

int ps_client_done(ps_client *c)
{
    if (c == NULL)
        return PS_EINVAL;
    c->done = true;
    op o = {.type = PS_MSG_HEARTBEAT,
            .reply = PS_MSG_ACK,
            .flags = PS_FLAG_DONE,
            .version = UINT64_MAX};
    return ps_exchange_all(c, &o);
}

void ps_client_report(ps_client *c, double loss, double samples_per_s)
{
    if (c == NULL)
        return;
    uint64_t l, r;
    memcpy(&l, &loss, sizeof l);
    memcpy(&r, &samples_per_s, sizeof r);
    atomic_store(&c->report_loss, l);
    atomic_store(&c->report_rate, r);
}

uint64_t ps_client_rank_applied(const ps_client *c)
{
    uint64_t least = UINT64_MAX;
    for (size_t i = 0; i < c->nshards; i++)
        if (c->shards[i].applied < least)
            least = c->shards[i].applied;
    return c->nshards > 0 ? least : 0;
}

int ps_client_push_tally(const ps_client *c, size_t i, uint64_t *held, uint64_t *rolled_back)
{
    if (c == NULL || i >= c->nshards)
        return PS_ERANGE;
    *held = c->shards[i].acked;
    *rolled_back = c->shards[i].rolled_back;
    return 0;
}

size_t ps_client_num_servers(const ps_client *c)
{
    return c->nshards;
}

int ps_client_server_stats(ps_client *c, ps_server_stats *out)
{
    if (c == NULL || out == NULL)
        return PS_EINVAL;
    ps_server_stats in;
    char why[PS_ERROR_MSG_MAX];
    ps_server_stats_init(&in, NULL, NULL, 0);
    if (ps_client_struct_take(&in, sizeof in, out, out->size, PS_SERVER_STATS_SIZE_1_0,
                              "ps_server_stats", why, sizeof why) != 0)
        return ps_client_fail(c, PS_EINVAL, "server_stats: %s", why);
    if (in.cap > 0 && (in.clock == NULL || in.pushes == NULL))
        return ps_client_fail(c, PS_EINVAL,
                              "server_stats: cap is %u, and the clock or the pushes array is NULL",
                              in.cap);
    int rc = ps_client_final_check(c);
    if (rc != 0)
        return rc;
    ps_worker_status *rows = calloc(PS_MAX_STATUS_RANKS, sizeof *rows);
    if (rows == NULL)
        return ps_client_fail(c, PS_ENOMEM, "status: out of memory");
    op o = {.type = PS_MSG_STATUS,
            .reply = PS_MSG_STATUS_REPLY,
            .version = UINT64_MAX,
            .rows = rows,
            .rows_cap = PS_MAX_STATUS_RANKS};
    ps_exchange_mark(c, true, false);
    rc = ps_exchange_run(c, &o, true, c->timeout_ms);
    if (rc == 0) {
        out->staleness_max = o.stale_max;
        out->staleness_p99 = o.stale_p99;
        out->staleness_mean = o.statuses > 0 ? o.stale_mean_sum / o.statuses : 0.0;
        out->nranks = (uint32_t)o.nrows;
        for (size_t r = 0; r < o.nrows && r < in.cap; r++) {
            in.clock[r] = rows[r].clock;
            in.pushes[r] = rows[r].pushes;
            if (in.expected != NULL)
                in.expected[r] = rows[r].expected;
            if (in.flags != NULL)
                in.flags[r] = (rows[r].state == PS_WORKER_LIVE || rows[r].state == PS_WORKER_DONE
                                   ? PS_RANK_LIVE
                                   : 0) |
                              (rows[r].finished ? PS_RANK_FINISHED : 0);
            if (in.dropped != NULL)
                in.dropped[r] = rows[r].dropped;
            if (in.rounds != NULL)
                in.rounds[r] = rows[r].rounds;
        }
    }
    free(rows);
    return rc;
}

uint64_t ps_client_rejoin_version(const ps_client *c)
{
    return c->rejoin_version;
}

int ps_client_close(ps_client **cp)
{
    if (cp == NULL || *cp == NULL)
        return 0;
    ps_client *c = *cp;
    *cp = NULL;
    ps_heartbeat_stop(c); /* no heartbeat may follow the BYE */
    int rc = ps_membership_bye(c, 0, NULL);
    client_free(c);
    return rc;
}

int ps_client_abort(ps_client *c, const char *why)
{
    if (c == NULL)
        return PS_EINVAL;
    int rc = ps_client_final_check(c);
    if (rc != 0)
        return rc;
    ps_heartbeat_stop(c); /* the worker leaves: no heartbeat may follow the BYE */
    rc = ps_membership_bye(c, PS_FLAG_ABORT, why != NULL ? why : "");
    return rc == PS_EABORTED ? 0 : rc; /* the job was stopped already */
}

uint64_t ps_client_num_params(const ps_client *c)
{
    return c->num_params;
}

int ps_client_rank(const ps_client *c)
{
    return c->rank;
}

uint32_t ps_client_num_workers(const ps_client *c)
{
    return c->num_workers;
}

const char *ps_client_mode(const ps_client *c)
{
    return c->mode;
}

size_t ps_client_num_tensors(const ps_client *c)
{
    return c->ntensors;
}

int ps_client_tensor(const ps_client *c, size_t i, const char **name, uint64_t *offset,
                     const uint64_t **shape, uint32_t *ndims)
{
    if (i >= c->ntensors)
        return PS_EINVAL;
    const ps_tensor_info *t = &c->tensors[i];
    if (name != NULL)
        *name = t->name;
    if (offset != NULL)
        *offset = t->offset;
    if (shape != NULL)
        *shape = t->shape;
    if (ndims != NULL)
        *ndims = t->ndims;
    return 0;
}

uint32_t ps_client_push_flags(const ps_client *c)
{
    return c->push_flags;
}

size_t ps_client_shared_memory(const ps_client *c, const char **why)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nshards; i++)
        n += c->shards[i].shm_on;
    if (why != NULL)
        *why = c->shm_why;
    return n;
}

uint64_t ps_client_bad_replies(const ps_client *c)
{
    return c->bad_replies;
}

const char *ps_client_last_error(const ps_client *c)
{
    return c->last_error;
}
