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

/* Decodes req's keys into sp_keys (the table's batched calls take them as
 * an array) and checks them against the shard: they are sorted, so the
 * first and the last do. 0, or the code of the ERROR sent. */
static int sparse_keys_here(ps_engine *e, const peer *p, const ps_msg *req)
{
    size_t n = (size_t)req->nkeys;
    if (n == 0)
        return 0;
    if (n > e->sp_keys_cap) {
        uint64_t *k = realloc(e->sp_keys, n * sizeof *k);
        if (k == NULL)
            return ps_engine_refuse(e, p, req, PS_ENOMEM, "no memory for %zu keys", n);
        e->sp_keys = k;
        e->sp_keys_cap = n;
    }
    ps_keys_iter it;
    ps_keys_iter_init(&it, req->payload, (size_t)req->keys_bytes);
    size_t got = 0;
    while (got < n && ps_keys_next(&it, &e->sp_keys[got]))
        got++;
    if (got != n || it.at != it.end) /* the codec checked them: it cannot fail */
        return ps_engine_refuse(e, p, req, PS_EPAYLOAD, "the keys hold %s than %zu keys",
                                got != n ? "fewer" : "more", n);
    uint64_t first = e->sp_keys[0], last = e->sp_keys[n - 1];
    if (first < e->key_lo || last > e->key_last)
        return ps_engine_refuse(e, p, req, PS_ERANGE,
                                "keys %llu .. %llu are outside shard %u's %llu .. %llu",
                                (unsigned long long)first, (unsigned long long)last, e->shard,
                                (unsigned long long)e->key_lo, (unsigned long long)e->key_last);
    return 0;
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

int ps_engine_sparse_pull(ps_engine *e, const peer *p, const ps_msg *req)
{
    if (ps_engine_worker_find(e, req->worker_id) == NULL)
        return ps_engine_refuse(e, p, req, PS_EWORKER, "worker %u is not registered with shard %u",
                                req->worker_id, e->shard);
    ps_table *t = sparse_table(e, p, req);
    if (t == NULL)
        return PS_EPAYLOAD;
    if (req->flags & PS_FLAG_SCAN)
        return sparse_scan(e, p, req, t);
    int rc = sparse_keys_here(e, p, req);
    if (rc != 0)
        return rc;
    uint32_t dim = ps_table_dim(t);
    size_t n = (size_t)req->nkeys, values = n * dim;
    size_t out = e->pull_ops != NULL ? e->pull_ops->bytes(values, 0) : values * sizeof(float);
    if (sparse_room(e, values, out) != 0)
        return ps_engine_refuse(e, p, req, PS_ENOMEM, "no memory for %zu rows", n);
    ps_table_read_many(t, e->sp_keys, n, e->sp_rows); /* keys in the shard: cannot fail */
    ps_msg *r = rows_reply(e, req, dim, n);
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
    int rc = sparse_keys_here(e, p, req);
    if (rc != 0)
        return rc;
    bool rounds = e->mode->rounds;
    if (ps_engine_push_answered(e, p, req, w, &rc) ||
        (rounds && ps_engine_round_screen(e, p, req, w, &rc)))
        return rc;
    uint32_t dim = ps_table_dim(t);
    size_t values = (size_t)req->nkeys * dim;
    if (req->encoding != PS_ENC_F32 && sparse_room(e, values, 0) != 0)
        return ps_engine_refuse(e, p, req, PS_ENOMEM, "no memory for %zu rows", (size_t)req->nkeys);
    const unsigned char *g = sparse_grads(e, req, values);
    double t0 = ps_clock_s();
    size_t n = (size_t)req->nkeys;
    if (rounds) {
        if (ps_table_accumulate_many(t, e->sp_keys, n, g, 1.0f) != 0)
            return ps_engine_refuse(e, p, req, PS_ENOMEM,
                                    "no memory to sum round %llu's rows of table %u",
                                    (unsigned long long)e->version, req->table - 1);
    } else {
        ps_table_apply_many(t, e->sp_keys, n, g, 1.0f, e->version);
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
