/* engine_sparse.c — the sparse tables of one shard's engine: pulls of rows
 * by key, pushes of their gradients by the job's mode (sync: summed per key
 * into the open round, applied when its dense pushes close it; async and
 * ssp: at once), scans for export, and the tables' figures. A row's
 * gradient is a sum over the examples that touched it, not a mean: a round
 * of W pushes is one minibatch of all their examples, and FTRL's λ1 and λ2
 * keep their per-example meaning (docs/sparse-tables.md). Requests come
 * checked by the codec (keys sorted and unique, counts and sizes against
 * the frame); here every key is checked against the shard and dim against
 * the table. See docs/architecture.md#theta-tensors-and-shards. */
#include "engine_impl.h"

#include "keys.h"

#include <stdlib.h>
#include <string.h>

#define IDLE_BUDGET 4096 /* rows a tick examines for idleness */

/* ---- row hints ----
 *
 * A worker pulls its batch's rows and then pushes their gradients, with
 * the same keys. So in async and ssp a rank's last pull is kept: its keys
 * as they came (the encoded bytes), decoded, and the ids of their rows. A
 * push whose keys are those bytes takes the keys decoded and the rows'
 * ids from it, and skips both the decoding and the index's lookups: on a
 * big table the lookups are most of a push. A row found so is used only
 * if it still holds its key (ps_table_apply_many_ids), so nothing the
 * table did between the pull and the push (rows made, dropped, reused)
 * can mislead it. A pull that keeps a hint says so in its reply
 * (PS_FLAG_KEYS_KEPT), and the push may then name the pull's seq
 * (PS_FLAG_KEYS_OF) instead of sending the keys again: the worker encodes
 * nothing, the wire and the codec's check skip the keys. A push naming a
 * pull whose hint is gone (the rank pulled since, psd restarted) is refused
 * with PS_ESTATE, and the worker sends it again with its keys. The hints
 * of all ranks together hold at most HINT_BYTES_MAX; past it a pull keeps
 * none, and its push looks up. */
#define HINT_BYTES_MAX ((size_t)64 << 20)
#define HINT_KEYS_MIN  64 /* a smaller pull keeps no hint: its lookups are cheap */

typedef struct sparse_hint {
    uint32_t table; /* the pull's table as on the wire (1-based), 0: no hint */
    uint64_t seq;   /* the pull's */
    size_t n;       /* its keys */
    size_t blob_bytes;
    unsigned char *blob; /* its keys as they came */
    uint64_t *keys;      /* decoded, n of keys_cap */
    uint32_t *ids;       /* their rows' ids, n of keys_cap */
    size_t blob_cap, keys_cap;
} sparse_hint;

static size_t hint_bytes(const sparse_hint *h)
{
    return h->blob_cap + h->keys_cap * (sizeof *h->keys + sizeof *h->ids);
}

static void hints_free(ps_engine *e)
{
    if (e->sp_hints == NULL)
        return;
    for (uint32_t r = 0; r < e->job.workers; r++) {
        free(e->sp_hints[r].blob);
        free(e->sp_hints[r].keys);
        free(e->sp_hints[r].ids);
    }
    free(e->sp_hints);
    e->sp_hints = NULL;
    e->sp_hint_bytes = 0;
}

/* Rank w's hint with room for a pull of req's keys, emptied; NULL when
 * hints do not pay (sync rounds sum pushes apart from the table, small
 * pulls) or would pass HINT_BYTES_MAX, or without memory. */
static sparse_hint *hint_room(ps_engine *e, const worker_slot *w, const ps_msg *req)
{
    size_t n = (size_t)req->nkeys, blob = (size_t)req->keys_bytes;
    if (e->mode->rounds || n < HINT_KEYS_MIN)
        return NULL;
    if (e->sp_hints == NULL && (e->sp_hints = calloc(e->job.workers, sizeof *e->sp_hints)) == NULL)
        return NULL;
    sparse_hint *h = &e->sp_hints[ps_engine_worker_slot_rank(e, w)];
    h->table = 0;
    if (n <= h->keys_cap && blob <= h->blob_cap)
        return h;
    size_t before = hint_bytes(h), kc = n > h->keys_cap ? n : h->keys_cap;
    size_t bc = blob > h->blob_cap ? blob : h->blob_cap;
    if (e->sp_hint_bytes - before + bc + kc * (sizeof *h->keys + sizeof *h->ids) > HINT_BYTES_MAX)
        return NULL;
    unsigned char *b = realloc(h->blob, bc);
    if (b != NULL)
        h->blob = b, h->blob_cap = bc;
    uint64_t *k = realloc(h->keys, kc * sizeof *k);
    if (k != NULL)
        h->keys = k;
    uint32_t *ids = realloc(h->ids, kc * sizeof *ids);
    if (ids != NULL)
        h->ids = ids;
    if (k != NULL && ids != NULL)
        h->keys_cap = kc;
    e->sp_hint_bytes = e->sp_hint_bytes - before + hint_bytes(h);
    return h->keys_cap >= n && h->blob_cap >= blob ? h : NULL;
}

/* Rank w's hint for a push of req's keys: its last pull had exactly these
 * keys of this table (sent again, or named by the pull's seq with
 * PS_FLAG_KEYS_OF). NULL otherwise. */
static const sparse_hint *hint_for(const ps_engine *e, const worker_slot *w, const ps_msg *req)
{
    if (e->sp_hints == NULL || e->mode->rounds)
        return NULL;
    const sparse_hint *h = &e->sp_hints[ps_engine_worker_slot_rank(e, w)];
    if (h->table != req->table || h->n != req->nkeys)
        return NULL;
    if (req->flags & PS_FLAG_KEYS_OF)
        return h->seq == req->keys_of ? h : NULL;
    if (h->blob_bytes != req->keys_bytes || memcmp(h->blob, req->payload, h->blob_bytes) != 0)
        return NULL;
    return h;
}

int ps_engine_tables_new(ps_engine *e, ps_error *err)
{
    ps_table_spec specs[PS_MAX_TABLES];
    size_t n = 0;
    if (ps_job_tables(&e->job, specs, PS_MAX_TABLES, &n) != 0)
        return ps_error_set(err, PS_EINVAL, "the job's model has more than %d tables",
                            PS_MAX_TABLES);
    ps_key_range(e->shard, e->job.nservers, &e->key_lo, &e->key_last);
    for (size_t i = 0; i < n; i++) {
        e->tables[i] =
            ps_table_new(&e->job, (uint32_t)i, &specs[i], e->shard, e->job.nservers, err);
        if (e->tables[i] == NULL)
            return err->code;
        e->ntables = (uint32_t)i + 1;
        ps_strlcpy(e->layout.tables[i].name, specs[i].name, PS_TABLE_NAME_MAX);
        e->layout.tables[i].dim = specs[i].dim;
    }
    e->layout.ntables = (uint32_t)n;
    return 0;
}

void ps_engine_tables_destroy(ps_engine *e)
{
    for (uint32_t i = 0; i < e->ntables; i++)
        ps_table_destroy(&e->tables[i]);
    e->ntables = 0;
    free(e->sp_rows);
    free(e->sp_out);
    free(e->sp_keys);
    hints_free(e);
    e->sp_rows = NULL;
    e->sp_out = NULL;
    e->sp_keys = NULL;
}

/* Room for n floats of rows and out bytes of a reply: the buffers grow to
 * the largest request yet (bounded by the frame cap), then are reused. */
static int sparse_room(ps_engine *e, size_t n, size_t out)
{
    if (n > e->sp_cap) {
        float *r = realloc(e->sp_rows, n * sizeof(float));
        if (r == NULL)
            return PS_ENOMEM;
        e->sp_rows = r;
        e->sp_cap = n;
    }
    if (out > e->sp_out_cap) {
        unsigned char *o = realloc(e->sp_out, out);
        if (o == NULL)
            return PS_ENOMEM;
        e->sp_out = o;
        e->sp_out_cap = out;
    }
    return 0;
}

/* The table of a request, its dim checked; NULL after the ERROR is sent. */
static ps_table *sparse_table(ps_engine *e, const peer *p, const ps_msg *req)
{
    if (req->table > e->ntables) {
        ps_engine_refuse(e, p, req, PS_ERANGE, "table %u: shard %u has %u sparse tables",
                         req->table - 1, e->shard, e->ntables);
        return NULL;
    }
    ps_table *t = e->tables[req->table - 1];
    if (req->dim != ps_table_dim(t)) {
        ps_engine_refuse(e, p, req, PS_EPAYLOAD, "table %u has rows of %u floats, not %u",
                         req->table - 1, ps_table_dim(t), req->dim);
        return NULL;
    }
    return t;
}

/* 0 when [first, last] is in the shard, else the code of the ERROR sent. */
static int keys_in_shard(ps_engine *e, const peer *p, const ps_msg *req, uint64_t first,
                         uint64_t last)
{
    if (first < e->key_lo || last > e->key_last)
        return ps_engine_refuse(e, p, req, PS_ERANGE,
                                "keys %llu .. %llu are outside shard %u's %llu .. %llu",
                                (unsigned long long)first, (unsigned long long)last, e->shard,
                                (unsigned long long)e->key_lo, (unsigned long long)e->key_last);
    return 0;
}

/* req's keys as an array (the table's batched calls take them so): those
 * the codec decoded as it checked them, or decoded here into sp_keys; into
 * *keys, checked against the shard: they are sorted, so the first and the
 * last do. 0, or the code of the ERROR sent. */
static int sparse_keys_here(ps_engine *e, const peer *p, const ps_msg *req, const uint64_t **keys)
{
    size_t n = (size_t)req->nkeys;
    *keys = e->sp_keys;
    if (n == 0)
        return 0;
    if (req->keys != NULL) {
        *keys = req->keys;
        return keys_in_shard(e, p, req, req->keys[0], req->keys[n - 1]);
    }
    if (n > e->sp_keys_cap) {
        uint64_t *k = realloc(e->sp_keys, n * sizeof *k);
        if (k == NULL)
            return ps_engine_refuse(e, p, req, PS_ENOMEM, "no memory for %zu keys", n);
        e->sp_keys = k;
        e->sp_keys_cap = n;
    }
    *keys = e->sp_keys;
    ps_keys_iter it;
    ps_keys_iter_init(&it, req->payload, (size_t)req->keys_bytes);
    size_t got = 0;
    while (got < n && ps_keys_next(&it, &e->sp_keys[got]))
        got++;
    if (got != n || it.at != it.end) /* the codec checked them: it cannot fail */
        return ps_engine_refuse(e, p, req, PS_EPAYLOAD, "the keys hold %s than %zu keys",
                                got != n ? "fewer" : "more", n);
    return keys_in_shard(e, p, req, e->sp_keys[0], e->sp_keys[n - 1]);
}

/* The PULL_REPLY of n rows of dim floats answering req, in e->reply. */
static ps_msg *rows_reply(ps_engine *e, const ps_msg *req, uint32_t dim, size_t n)
{
    ps_msg *r = &e->reply;
    ps_msg_init(r, PS_MSG_PULL_REPLY);
    r->job = e->job.name;
    r->seq = req->seq;
    r->worker_id = req->worker_id;
    r->shard_index = e->shard;
    r->model_version = e->version;
    r->table = req->table;
    r->dim = dim;
    r->nkeys = n;
    return r;
}

/* A SCAN: up to nkeys live rows from the cursor, keys as 8-byte words. */
static int sparse_scan(ps_engine *e, const peer *p, const ps_msg *req, ps_table *t)
{
    uint32_t dim = ps_table_dim(t);
    size_t max = req->nkeys > 65536 ? 65536 : (size_t)req->nkeys;
    if (sparse_room(e, max * dim, max * (8 + (size_t)dim * 4)) != 0)
        return ps_engine_refuse(e, p, req, PS_ENOMEM, "no memory for %zu rows", max);
    uint64_t *keys = (uint64_t *)(void *)e->sp_out;
    uint64_t next = 0;
    size_t n = ps_table_scan(t, req->key_lo, max, keys, e->sp_rows, &next);
    memcpy(e->sp_out + n * 8, e->sp_rows, n * dim * sizeof(float));
    ps_msg *r = rows_reply(e, req, dim, n);
    r->flags = PS_FLAG_SCAN;
    r->key_hi = next;
    r->keys_bytes = n * 8;
    r->encoding = n > 0 ? PS_ENC_F32 : PS_ENC_NONE;
    r->payload_bytes = n * (8 + (size_t)dim * 4);
    e->sp_pulls++;
    int rc = p->send(p->ctx, p->identity, p->identity_len, r, n > 0 ? e->sp_out : NULL);
    if (rc != 0)
        PS_LOG_D(e->log, "shard %u: SCAN reply not sent: %s", e->shard, ps_strerror(rc));
    return 0;
}

/* ps_pool_run as the table's parallel for (table.h). */
static void pool_for(void *ctx, size_t n, size_t grain, void (*fn)(void *arg, size_t lo, size_t hi),
                     void *arg)
{
    ps_pool_run(ctx, n, grain, fn, arg);
}

/* A pull's lookups, on the engine's threads: a read changes nothing in the
 * table, and each part writes its own keys' rows and ids. */
#define READ_GRAIN 2048 /* keys a thread's part has at least: ~0.1 ms of lookups */

typedef struct read_job {
    const ps_table *t;
    const uint64_t *keys;
    float *rows;
    uint32_t *ids, dim;
} read_job;

static void read_part(void *arg, size_t lo, size_t hi)
{
    const read_job *j = arg;
    /* keys in the shard (sparse_keys_here): cannot fail */
    ps_table_read_many_ids(j->t, j->keys + lo, hi - lo, j->rows + lo * j->dim,
                           j->ids != NULL ? j->ids + lo : NULL);
}

/* The rows of the n keys into sp_rows, their ids into ids unless NULL. */
static void rows_read(ps_engine *e, const ps_table *t, const uint64_t *keys, size_t n,
                      uint32_t *ids)
{
    read_job j = {t, keys, e->sp_rows, ids, ps_table_dim(t)};
    ps_pool_run(e->pool, n, READ_GRAIN, read_part, &j);
}

int ps_engine_sparse_pull(ps_engine *e, const peer *p, const ps_msg *req)
{
    worker_slot *w = ps_engine_worker_find(e, req->worker_id);
    if (w == NULL)
        return ps_engine_refuse(e, p, req, PS_EWORKER, "worker %u is not registered with shard %u",
                                req->worker_id, e->shard);
    ps_table *t = sparse_table(e, p, req);
    if (t == NULL)
        return PS_EPAYLOAD;
    if (req->flags & PS_FLAG_SCAN)
        return sparse_scan(e, p, req, t);
    const uint64_t *keys = NULL;
    int rc = sparse_keys_here(e, p, req, &keys);
    if (rc != 0)
        return rc;
    uint32_t dim = ps_table_dim(t);
    size_t n = (size_t)req->nkeys, values = n * dim;
    size_t out = e->pull_ops != NULL ? e->pull_ops->bytes(values, 0) : values * sizeof(float);
    if (sparse_room(e, values, out) != 0)
        return ps_engine_refuse(e, p, req, PS_ENOMEM, "no memory for %zu rows", n);
    sparse_hint *h = hint_room(e, w, req);
    rows_read(e, t, keys, n, h != NULL ? h->ids : NULL);
    if (h != NULL) {
        memcpy(h->keys, keys, n * sizeof *h->keys);
        memcpy(h->blob, req->payload, (size_t)req->keys_bytes);
        h->blob_bytes = (size_t)req->keys_bytes;
        h->n = n;
        h->seq = req->seq;
        h->table = req->table;
    }
    ps_msg *r = rows_reply(e, req, dim, n);
    if (h != NULL) /* the push may name this pull instead of sending its keys */
        r->flags = PS_FLAG_KEYS_KEPT;
    const void *payload = NULL;
    if (values > 0 && e->pull_ops != NULL &&
        e->pull_ops->encode(e->sp_rows, values, 0, e->sp_out, NULL) == 0) {
        r->encoding = e->pull_ops->encoding;
        r->payload_bytes = out;
        payload = e->sp_out;
    } else if (values > 0) { /* float32, also when the codec has no encoding of a NaN */
        r->encoding = PS_ENC_F32;
        r->payload_bytes = values * sizeof(float);
        payload = e->sp_rows;
    }
    e->sp_pulls++;
    rc = p->send(p->ctx, p->identity, p->identity_len, r, payload);
    if (rc != 0)
        PS_LOG_D(e->log, "shard %u: PULL_REPLY of rows not sent: %s", e->shard, ps_strerror(rc));
    return 0;
}

/* The gradient rows of a checked push, as floats: straight from the frame
 * (F32) or decoded into sp_rows. */
static const unsigned char *sparse_grads(ps_engine *e, const ps_msg *req, size_t values)
{
    const unsigned char *rows = (const unsigned char *)req->payload + req->keys_bytes;
    if (req->encoding == PS_ENC_F32 || values == 0)
        return rows;
    const ps_compress_ops *ops = ps_compress_ops_for_encoding(req->encoding);
    ops->decode(rows, (size_t)(req->payload_bytes - req->keys_bytes), e->sp_rows, values);
    return (const unsigned char *)e->sp_rows;
}

int ps_engine_sparse_push(ps_engine *e, const peer *p, const ps_msg *req)
{
    worker_slot *w = ps_engine_worker_find(e, req->worker_id);
    if (w == NULL)
        return ps_engine_refuse(e, p, req, PS_EWORKER, "worker %u is not registered with shard %u",
                                req->worker_id, e->shard);
    ps_table *t = sparse_table(e, p, req);
    if (t == NULL)
        return PS_EPAYLOAD;
    int rc = 0;
    bool by_pull = req->flags & PS_FLAG_KEYS_OF; /* no keys: those of a pull */
    if (by_pull && ps_engine_push_answered(e, p, req, w, &rc))
        return rc; /* a push sent again, applied before: its keys are not needed */
    const sparse_hint *h = hint_for(e, w, req); /* its keys decoded and rows found */
    if (by_pull && h == NULL)
        return ps_engine_refuse(e, p, req, PS_ESTATE,
                                "shard %u no longer holds the %llu keys of pull %llu of table %u: "
                                "send the push with its keys",
                                e->shard, (unsigned long long)req->nkeys,
                                (unsigned long long)req->keys_of, req->table - 1);
    const uint64_t *keys = h != NULL ? h->keys : NULL;
    rc = h != NULL ? 0 : sparse_keys_here(e, p, req, &keys);
    if (rc != 0)
        return rc;
    bool rounds = e->mode->rounds;
    if (!by_pull && (ps_engine_push_answered(e, p, req, w, &rc) ||
                     (rounds && ps_engine_round_screen(e, p, req, w, &rc))))
        return rc;
    uint32_t dim = ps_table_dim(t);
    size_t values = (size_t)req->nkeys * dim;
    if (req->encoding != PS_ENC_F32 && sparse_room(e, values, 0) != 0)
        return ps_engine_refuse(e, p, req, PS_ENOMEM, "no memory for %zu rows", (size_t)req->nkeys);
    const unsigned char *g = sparse_grads(e, req, values);
    double t0 = ps_clock_s();
    size_t n = (size_t)req->nkeys;
    if (rounds) {
        if (ps_table_accumulate_many(t, keys, n, g, 1.0f) != 0)
            return ps_engine_refuse(e, p, req, PS_ENOMEM,
                                    "no memory to sum round %llu's rows of table %u",
                                    (unsigned long long)e->version, req->table - 1);
    } else if (h != NULL) {
        /* keys unique (the codec's rule): the hinted rows on the threads */
        ps_table_apply_many_ids(t, keys, h->ids, n, g, 1.0f, e->version, pool_for, e->pool);
    } else {
        ps_table_apply_many(t, keys, n, g, 1.0f, e->version);
    }
    if (rounds && !w->pushed && !w->sp_pushed) {
        /* what θ holds of it until the round closes (checkpoints) */
        w->prev_has_seq = w->has_seq;
        w->prev_seq = w->last_seq;
    }
    w->sp_pushed = w->sp_pushed || rounds;
    w->has_seq = true;
    w->last_seq = req->seq;
    e->sp_pushes++;
    if (!rounds)
        ps_engine_applied(e, t0);
    return ps_engine_push_done(e, p, req, 0);
}

void ps_engine_tables_round_close(ps_engine *e)
{
    for (uint32_t i = 0; i < e->ntables; i++)
        ps_table_apply_accumulated(e->tables[i], 1.0f, e->version);
    for (uint32_t r = 0; r < e->job.workers; r++)
        e->slots[r].sp_pushed = false;
}

void ps_engine_tables_tick(ps_engine *e)
{
    for (uint32_t i = 0; i < e->ntables; i++)
        ps_table_evict_idle(e->tables[i], e->version, IDLE_BUDGET);
}

bool ps_engine_tables_growing(const ps_engine *e)
{
    for (uint32_t i = 0; i < e->ntables; i++)
        if (ps_table_growing(e->tables[i]))
            return true;
    return false;
}

void ps_engine_tables_status(ps_engine *e)
{
    for (uint32_t i = 0; i < e->ntables; i++) {
        ps_table_stats st;
        ps_table_stats_get(e->tables[i], &st);
        ps_table_status *o = &e->table_status[i];
        memset(o, 0, sizeof *o);
        ps_strlcpy(o->name, e->layout.tables[i].name, sizeof o->name);
        o->dim = e->layout.tables[i].dim;
        o->rows = st.rows;
        o->bytes = st.bytes;
        o->admitted = st.admitted;
        o->unadmitted = st.not_admitted;
        o->evicted_idle = st.evicted_idle;
        o->evicted_cap = st.evicted_cap;
    }
}

const ps_table_status *ps_engine_tables_get(ps_engine *e, size_t *n)
{
    ps_engine_tables_status(e);
    *n = e->ntables;
    return e->table_status;
}

struct ps_table *const *ps_engine_tables(ps_engine *e, size_t *n)
{
    *n = e->ntables;
    return e->tables;
}
