/* psctl_status.c — psctl status: the shards' STATUS_REPLYs and their worker
 * tables merged per rank (psctl_status.h), written as two tables whose
 * columns fit their contents, or as one JSON object (json-c). Every text
 * in a table went through ps_text_printable: a host name or a detail
 * from the network never reaches the terminal as escape sequences. */
#include "psctl_status.h"
#include "codec.h"
#include "text.h"
#include "util.h"

#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One shard's own figures, from its STATUS_REPLY. */
typedef struct shard_row {
    uint64_t version, key_lo, key_hi;
    uint32_t live;
    char mode[16];
    uint64_t staleness_max, staleness_p99;
    double staleness_mean;
    char detail[PS_MSG_ERROR_MAX]; /* each rank's clock on this shard */
    uint32_t ntables;              /* its part of the sparse tables */
    ps_table_status tables[PS_MAX_TABLES];
} shard_row;

/* One rank, merged over the shards whose table had it. */
typedef struct rank_row {
    ps_worker_status w;
    uint32_t shards;       /* shards that reported the rank; 0: none did */
    bool held;             /* a worker has held it on some shard: last seen means something */
    uint64_t loss_seen_ms; /* last seen on the shard that w.loss comes from */
    double stale_sum;      /* Σ staleness_mean × pushes over the shards */
} rank_row;

struct ps_psctl_status {
    const ps_job *job;
    ps_psctl_reply replies[PS_MAX_SHARDS];
    shard_row shards[PS_MAX_SHARDS];
    rank_row *ranks;           /* job->workers */
    ps_worker_status *scratch; /* one shard's table, PS_MAX_WORKERS rows */
};

ps_psctl_status *ps_psctl_status_new(const ps_job *job)
{
    ps_psctl_status *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->job = job;
    s->ranks = calloc(job->workers > 0 ? job->workers : 1, sizeof *s->ranks);
    s->scratch = calloc(PS_MAX_WORKERS, sizeof *s->scratch);
    if (s->ranks == NULL || s->scratch == NULL)
        ps_psctl_status_destroy(&s);
    return s;
}

void ps_psctl_status_destroy(ps_psctl_status **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    free((*sp)->ranks);
    free((*sp)->scratch);
    free(*sp);
    *sp = NULL;
}

static void rank_merge(rank_row *m, const ps_worker_status *row)
{
    if (m->shards++ == 0) {
        m->w = *row;
        m->held = row->worker_id != 0;
        m->loss_seen_ms = row->last_seen_ms;
        m->stale_sum = row->staleness_mean * (double)row->pushes;
        return;
    }
    /* a worker that one shard still hears from is live, whatever another
     * one thinks: the states are ordered from most to least alive */
    if (row->state < m->w.state)
        m->w.state = row->state;
    if (m->w.hostname[0] == '\0')
        ps_strlcpy(m->w.hostname, row->hostname, sizeof m->w.hostname);
    if (row->worker_id != 0 && (!m->held || row->last_seen_ms < m->w.last_seen_ms)) {
        m->w.last_seen_ms = row->last_seen_ms;
        m->held = true;
    }
    /* a heartbeat carries both figures: keep them as a pair */
    if (isfinite(row->loss) && (!isfinite(m->w.loss) || row->last_seen_ms < m->loss_seen_ms)) {
        m->w.loss = row->loss;
        m->w.samples_per_s = row->samples_per_s;
        m->loss_seen_ms = row->last_seen_ms;
    }
    if (row->clock > m->w.clock)
        m->w.clock = row->clock;
    m->w.pushes += row->pushes;
    m->w.dropped += row->dropped;
    m->w.duplicates += row->duplicates;
    m->w.batches += row->batches;        /* shard 0's queue alone counts them */
    if (row->evictions > m->w.evictions) /* each shard evicts the same silence */
        m->w.evictions = row->evictions;
    if (row->staleness_max > m->w.staleness_max)
        m->w.staleness_max = row->staleness_max;
    m->stale_sum += row->staleness_mean * (double)row->pushes;
}

/* ps_psctl_reply_fn: keeps a shard's figures and merges its worker table. */
static int status_take(uint32_t shard, const ps_msg *rep, void *ctx, ps_error *err)
{
    ps_psctl_status *s = ctx;
    shard_row *o = &s->shards[shard];
    o->version = rep->model_version;
    o->key_lo = rep->key_lo;
    o->key_hi = rep->key_hi;
    o->live = rep->num_workers;
    ps_strlcpy(o->mode, rep->mode, sizeof o->mode);
    o->staleness_max = rep->staleness_max;
    o->staleness_p99 = rep->staleness_p99;
    o->staleness_mean = rep->staleness_mean;
    ps_strlcpy(o->detail, rep->detail, sizeof o->detail);
    if (rep->encoding != PS_ENC_WORKERS)
        return 0; /* a psd from before worker tables */
    size_t n = 0, nt = 0;
    int rc = ps_codec_workers_decode(rep->payload, rep->payload_bytes, s->scratch, PS_MAX_WORKERS,
                                     &n, err);
    if (rc == 0)
        rc = ps_codec_tables_decode(rep->payload, rep->payload_bytes, o->tables, PS_MAX_TABLES, &nt,
                                    err);
    if (rc != 0)
        return rc;
    o->ntables = (uint32_t)nt;
    for (size_t i = 0; i < n; i++)
        if (s->scratch[i].rank < s->job->workers) /* another job's ranks have no row here */
            rank_merge(&s->ranks[s->scratch[i].rank], &s->scratch[i]);
    return 0;
}

int ps_psctl_status_collect(ps_psctl_status *s, void *zctx, const ps_psctl_keys *keys, int only,
                            int timeout_ms)
{
    memset(s->shards, 0, sizeof s->shards);
    memset(s->ranks, 0, s->job->workers * sizeof *s->ranks);
    return ps_psctl_ask(zctx, s->job, keys, only, PS_MSG_STATUS, timeout_ms, s->replies,
                        status_take, s);
}

uint32_t ps_psctl_status_missing(const ps_psctl_status *s)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->job->nservers; i++)
        n += s->replies[i].asked && !s->replies[i].answered;
    return n;
}

void ps_psctl_status_errors_write(const ps_psctl_status *s, FILE *out)
{
    char why[4 * PS_ERROR_MSG_MAX];
    for (uint32_t i = 0; i < s->job->nservers; i++) {
        if (s->replies[i].asked && !s->replies[i].answered) {
            ps_text_printable(why, sizeof why, s->replies[i].why);
            fprintf(out, "psctl: shard %u at %s: %s\n", i, s->job->servers[i], why);
        }
    }
}

/* ---- tables -------------------------------------------------------------- */

#define CELL_MAX PS_ENDPOINT_MAX /* an endpoint whole; host and numbers are shorter */
#define COLS_MAX 10
/* a cell, span or line below as shown: each byte may become "\xNN" */
#define SHOWN_MAX      (4 * CELL_MAX)
#define SHOWN_LINE_MAX (4 * PS_ERROR_MSG_MAX)

typedef struct column {
    const char *head;
    bool right; /* right-aligned (numbers) */
} column;

/* Fills the cells of row i; returns how many (0: no row). A row of fewer
 * cells than columns ends in *span, printed as is and not counted in the
 * widths. *below (may stay NULL) is a line printed under the row. */
typedef size_t (*row_fill_fn)(const ps_psctl_status *s, size_t i, char cells[][CELL_MAX],
                              const char **span, const char **below);

static void cell_write(FILE *out, const column *col, size_t width, const char *text, bool last)
{
    if (col->right)
        fprintf(out, "%*s", (int)width, text);
    else if (last)
        fputs(text, out); /* no trailing blanks */
    else
        fprintf(out, "%-*s", (int)width, text);
}

/* A row as shown: fill's cells, span and line below, made printable. */
typedef struct row_shown {
    char cell[COLS_MAX][SHOWN_MAX];
    char span[SHOWN_LINE_MAX], below[SHOWN_LINE_MAX];
    bool has_span, has_below;
} row_shown;

/* Fills row i into *r as it is shown; the number of cells (0: no row). */
static size_t row_show(const ps_psctl_status *s, size_t i, row_fill_fn fill, row_shown *r)
{
    char cells[COLS_MAX][CELL_MAX];
    const char *span = NULL, *below = NULL;
    size_t n = fill(s, i, cells, &span, &below);
    for (size_t c = 0; c < n; c++)
        ps_text_printable(r->cell[c], SHOWN_MAX, cells[c]);
    r->has_span = span != NULL;
    r->has_below = below != NULL;
    if (span != NULL)
        ps_text_printable(r->span, sizeof r->span, span);
    if (below != NULL)
        ps_text_printable(r->below, sizeof r->below, below);
    return n;
}

/* Writes a table: the header, then each row, columns two blanks apart and
 * as wide as their widest cell. */
static void table_write(FILE *out, const column *cols, size_t ncols, size_t nrows, row_fill_fn fill,
                        const ps_psctl_status *s)
{
    size_t width[COLS_MAX];
    row_shown shown, *r = &shown; /* 9 KiB */
    for (size_t c = 0; c < ncols; c++)
        width[c] = strlen(cols[c].head);
    for (size_t i = 0; i < nrows; i++) {
        size_t n = row_show(s, i, fill, r);
        for (size_t c = 0; c < n; c++)
            if (strlen(r->cell[c]) > width[c])
                width[c] = strlen(r->cell[c]);
    }
    for (size_t c = 0; c < ncols; c++) {
        fputs(c > 0 ? "  " : "", out);
        cell_write(out, &cols[c], width[c], cols[c].head, c == ncols - 1);
    }
    fputc('\n', out);
    for (size_t i = 0; i < nrows; i++) {
        size_t n = row_show(s, i, fill, r);
        if (n == 0)
            continue;
        for (size_t c = 0; c < n; c++) {
            fputs(c > 0 ? "  " : "", out);
            cell_write(out, &cols[c], width[c], r->cell[c], c == ncols - 1);
        }
        if (n < ncols && r->has_span)
            fprintf(out, "  %s", r->span);
        fputc('\n', out);
        if (r->has_below)
            fprintf(out, "%*s%s\n", (int)width[0] + 2, "", r->below);
    }
}

static const column shard_cols[] = {
    {"shard", false},
    {"endpoint", false},
    {"version", true},
    {"live", true},
    {"params", true},
    {"mode", false},
    {"stale max/mean/p99", false},
};
#define SHARD_COLS (sizeof shard_cols / sizeof shard_cols[0])

/* The shard table's row i: shards asked only, and those that did not
 * answer only with inline_missing (then the reason spans the figures). */
static size_t shard_fill(const ps_psctl_status *s, size_t i, char cells[][CELL_MAX],
                         const char **span, const char **below, bool inline_missing)
{
    const ps_psctl_reply *r = &s->replies[i];
    const shard_row *o = &s->shards[i];
    if (!r->asked || (!r->answered && !inline_missing))
        return 0;
    snprintf(cells[0], CELL_MAX, "%zu", i);
    snprintf(cells[1], CELL_MAX, "%s", s->job->servers[i]);
    if (!r->answered) {
        *span = r->why;
        return 2;
    }
    snprintf(cells[2], CELL_MAX, "%llu", (unsigned long long)o->version);
    snprintf(cells[3], CELL_MAX, "%u/%u", o->live, s->job->workers);
    snprintf(cells[4], CELL_MAX, "%llu", (unsigned long long)(o->key_hi - o->key_lo));
    snprintf(cells[5], CELL_MAX, "%s", o->mode);
    snprintf(cells[6], CELL_MAX, "%llu/%.2f/%llu", (unsigned long long)o->staleness_max,
             o->staleness_mean, (unsigned long long)o->staleness_p99);
    *below = o->detail[0] != '\0' ? o->detail : NULL;
    return SHARD_COLS;
}

static size_t shard_fill_answered(const ps_psctl_status *s, size_t i, char cells[][CELL_MAX],
                                  const char **span, const char **below)
{
    return shard_fill(s, i, cells, span, below, false);
}

static size_t shard_fill_all(const ps_psctl_status *s, size_t i, char cells[][CELL_MAX],
                             const char **span, const char **below)
{
    return shard_fill(s, i, cells, span, below, true);
}

/* The host last, so a long name runs off the end instead of pushing the
 * figures past 80 columns; staleness is max/mean, as in the shard table. */
static const column worker_cols[] = {
    {"rank", true}, {"state", false},    {"last seen", true}, {"clock", true}, {"pushes", true},
    {"loss", true}, {"samples/s", true}, {"staleness", true}, {"host", false},
};
#define WORKER_COLS (sizeof worker_cols / sizeof worker_cols[0])

static double rank_staleness_mean(const rank_row *m)
{
    return m->w.pushes > 0 ? m->stale_sum / (double)m->w.pushes : 0.0;
}

static size_t worker_fill(const ps_psctl_status *s, size_t i, char cells[][CELL_MAX],
                          const char **span, const char **below)
{
    (void)span;
    (void)below;
    const rank_row *m = &s->ranks[i];
    if (m->shards == 0)
        return 0;
    snprintf(cells[0], CELL_MAX, "%zu", i);
    snprintf(cells[1], CELL_MAX, "%s", ps_worker_state_name(m->w.state));
    if (m->held)
        snprintf(cells[2], CELL_MAX, "%.1f s ago", (double)m->w.last_seen_ms / 1000.0);
    else
        snprintf(cells[2], CELL_MAX, "-");
    snprintf(cells[3], CELL_MAX, "%llu", (unsigned long long)m->w.clock);
    snprintf(cells[4], CELL_MAX, "%llu", (unsigned long long)m->w.pushes);
    if (isfinite(m->w.loss))
        snprintf(cells[5], CELL_MAX, "%.4g", m->w.loss);
    else
        snprintf(cells[5], CELL_MAX, "-");
    double sps = m->w.samples_per_s;
    if (isfinite(sps))
        snprintf(cells[6], CELL_MAX, fabs(sps) >= 100.0 ? "%.0f" : "%.1f", sps);
    else
        snprintf(cells[6], CELL_MAX, "-");
    snprintf(cells[7], CELL_MAX, "%llu/%.2f", (unsigned long long)m->w.staleness_max,
             rank_staleness_mean(m));
    snprintf(cells[8], CELL_MAX, "%s", m->w.hostname[0] != '\0' ? m->w.hostname : "-");
    return WORKER_COLS;
}

/* One row per shard and table: what the shard holds of it. */
static const column table_cols[] = {
    {"shard", true},
    {"table", false},
    {"dim", true},
    {"rows", true},
    {"MB", true},
    {"admitted", true},
    {"below min_count", true},
    {"evicted idle/cap", true},
};
#define TABLE_COLS (sizeof table_cols / sizeof table_cols[0])

static size_t table_fill(const ps_psctl_status *s, size_t i, char cells[][CELL_MAX],
                         const char **span, const char **below)
{
    (void)span;
    (void)below;
    size_t shard = i / PS_MAX_TABLES, t = i % PS_MAX_TABLES;
    const shard_row *o = &s->shards[shard];
    if (!s->replies[shard].answered || t >= o->ntables)
        return 0;
    const ps_table_status *ts = &o->tables[t];
    snprintf(cells[0], CELL_MAX, "%zu", shard);
    snprintf(cells[1], CELL_MAX, "%s", ts->name);
    snprintf(cells[2], CELL_MAX, "%u", ts->dim);
    snprintf(cells[3], CELL_MAX, "%llu", (unsigned long long)ts->rows);
    snprintf(cells[4], CELL_MAX, "%.1f", (double)ts->bytes / 1e6);
    snprintf(cells[5], CELL_MAX, "%llu", (unsigned long long)ts->admitted);
    snprintf(cells[6], CELL_MAX, "%llu", (unsigned long long)ts->unadmitted);
    snprintf(cells[7], CELL_MAX, "%llu/%llu", (unsigned long long)ts->evicted_idle,
             (unsigned long long)ts->evicted_cap);
    return TABLE_COLS;
}

void ps_psctl_status_table_write(const ps_psctl_status *s, bool inline_missing, FILE *out)
{
    uint32_t answered = 0, ranks = 0;
    for (uint32_t i = 0; i < s->job->nservers; i++)
        answered += s->replies[i].answered;
    for (uint32_t r = 0; r < s->job->workers; r++)
        ranks += s->ranks[r].shards > 0;
    if (answered == 0 && !inline_missing)
        return;
    table_write(out, shard_cols, SHARD_COLS, s->job->nservers,
                inline_missing ? shard_fill_all : shard_fill_answered, s);
    uint32_t tables = 0;
    for (uint32_t i = 0; i < s->job->nservers; i++)
        tables += s->replies[i].answered ? s->shards[i].ntables : 0;
    if (tables > 0) {
        fputc('\n', out);
        table_write(out, table_cols, TABLE_COLS, (size_t)s->job->nservers * PS_MAX_TABLES,
                    table_fill, s);
    }
    if (ranks == 0)
        return;
    fputc('\n', out);
    table_write(out, worker_cols, WORKER_COLS, s->job->workers, worker_fill, s);
}

/* ---- JSON ---------------------------------------------------------------- */

/* The shortest text of x that reads back as x; NULL (JSON null) when x is
 * not finite, as JSON has no NaN. *ok turns false when memory ran out. */
static json_object *json_number(double x, bool *ok)
{
    if (!isfinite(x))
        return NULL;
    char text[32];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, x);
        if (strtod(text, NULL) == x)
            break;
    }
    json_object *v = json_object_new_double_s(x, text);
    *ok = *ok && v != NULL;
    return v;
}

static json_object *json_count(uint64_t x, bool *ok)
{
    json_object *v = json_object_new_uint64(x);
    *ok = *ok && v != NULL;
    return v;
}

static json_object *json_flag(bool x, bool *ok)
{
    json_object *v = json_object_new_boolean(x);
    *ok = *ok && v != NULL;
    return v;
}

static json_object *json_text(const char *x, bool *ok)
{
    json_object *v = json_object_new_string(x);
    *ok = *ok && v != NULL;
    return v;
}

static void json_put(json_object *obj, const char *key, json_object *v, bool *ok)
{
    if (json_object_object_add(obj, key, v) != 0) {
        json_object_put(v);
        *ok = false;
    }
}

static json_object *shard_json(const ps_psctl_status *s, uint32_t i, bool *ok)
{
    const ps_psctl_reply *r = &s->replies[i];
    const shard_row *o = &s->shards[i];
    json_object *j = json_object_new_object();
    if (j == NULL) {
        *ok = false;
        return NULL;
    }
    bool a = r->answered;
    json_put(j, "shard", json_count(i, ok), ok);
    json_put(j, "endpoint", json_text(s->job->servers[i], ok), ok);
    json_put(j, "answered", json_flag(a, ok), ok);
    json_put(j, "error", a ? NULL : json_text(r->why, ok), ok);
    json_put(j, "version", a ? json_count(o->version, ok) : NULL, ok);
    json_put(j, "live_workers", a ? json_count(o->live, ok) : NULL, ok);
    json_put(j, "workers", json_count(s->job->workers, ok), ok);
    json_put(j, "params", a ? json_count(o->key_hi - o->key_lo, ok) : NULL, ok);
    json_put(j, "key_lo", a ? json_count(o->key_lo, ok) : NULL, ok);
    json_put(j, "key_hi", a ? json_count(o->key_hi, ok) : NULL, ok);
    json_put(j, "mode", a ? json_text(o->mode, ok) : NULL, ok);
    json_put(j, "staleness_max", a ? json_count(o->staleness_max, ok) : NULL, ok);
    json_put(j, "staleness_mean", a ? json_number(o->staleness_mean, ok) : NULL, ok);
    json_put(j, "staleness_p99", a ? json_count(o->staleness_p99, ok) : NULL, ok);
    json_object *tables = a ? json_object_new_array() : NULL;
    for (uint32_t t = 0; tables != NULL && t < o->ntables; t++) {
        const ps_table_status *ts = &o->tables[t];
        json_object *row = json_object_new_object();
        if (row == NULL || json_object_array_add(tables, row) != 0) {
            json_object_put(row);
            *ok = false;
            break;
        }
        json_put(row, "name", json_text(ts->name, ok), ok);
        json_put(row, "dim", json_count(ts->dim, ok), ok);
        json_put(row, "rows", json_count(ts->rows, ok), ok);
        json_put(row, "bytes", json_count(ts->bytes, ok), ok);
        json_put(row, "admitted", json_count(ts->admitted, ok), ok);
        json_put(row, "below_min_count", json_count(ts->unadmitted, ok), ok);
        json_put(row, "evicted_idle", json_count(ts->evicted_idle, ok), ok);
        json_put(row, "evicted_cap", json_count(ts->evicted_cap, ok), ok);
    }
    if (a && tables == NULL)
        *ok = false;
    json_put(j, "tables", tables, ok);
    return j;
}

static json_object *worker_json(const ps_psctl_status *s, uint32_t rank, bool *ok)
{
    const rank_row *m = &s->ranks[rank];
    json_object *j = json_object_new_object();
    if (j == NULL) {
        *ok = false;
        return NULL;
    }
    json_put(j, "rank", json_count(rank, ok), ok);
    json_put(j, "state", json_text(ps_worker_state_name(m->w.state), ok), ok);
    json_put(j, "host", m->w.hostname[0] != '\0' ? json_text(m->w.hostname, ok) : NULL, ok);
    json_put(j, "last_seen_ms", m->held ? json_count(m->w.last_seen_ms, ok) : NULL, ok);
    json_put(j, "clock", json_count(m->w.clock, ok), ok);
    json_put(j, "pushes", json_count(m->w.pushes, ok), ok);
    json_put(j, "dropped", json_count(m->w.dropped, ok), ok);
    json_put(j, "duplicates", json_count(m->w.duplicates, ok), ok);
    json_put(j, "evictions", json_count(m->w.evictions, ok), ok);
    json_put(j, "batches", json_count(m->w.batches, ok), ok);
    json_put(j, "loss", json_number(m->w.loss, ok), ok);
    json_put(j, "samples_per_s", json_number(m->w.samples_per_s, ok), ok);
    json_put(j, "staleness_max", json_count(m->w.staleness_max, ok), ok);
    json_put(j, "staleness_mean", json_number(rank_staleness_mean(m), ok), ok);
    json_put(j, "shards", json_count(m->shards, ok), ok);
    return j;
}

int ps_psctl_status_json_write(const ps_psctl_status *s, bool pretty, FILE *out)
{
    bool ok = true;
    json_object *root = json_object_new_object();
    json_object *shards = json_object_new_array();
    json_object *workers = json_object_new_array();
    if (root == NULL || shards == NULL || workers == NULL) {
        json_object_put(root);
        json_object_put(shards);
        json_object_put(workers);
        return PS_ENOMEM;
    }
    json_put(root, "job", json_text(s->job->name, &ok), &ok);
    json_put(root, "shards", shards, &ok);
    json_put(root, "workers", workers, &ok);
    for (uint32_t i = 0; ok && i < s->job->nservers; i++) {
        if (!s->replies[i].asked)
            continue;
        json_object *j = shard_json(s, i, &ok);
        if (j != NULL && json_object_array_add(shards, j) != 0) {
            json_object_put(j);
            ok = false;
        }
    }
    for (uint32_t r = 0; ok && r < s->job->workers; r++) {
        if (s->ranks[r].shards == 0)
            continue;
        json_object *j = worker_json(s, r, &ok);
        if (j != NULL && json_object_array_add(workers, j) != 0) {
            json_object_put(j);
            ok = false;
        }
    }
    int flags =
        JSON_C_TO_STRING_NOSLASHESCAPE |
        (pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED : JSON_C_TO_STRING_PLAIN);
    const char *text = ok ? json_object_to_json_string_ext(root, flags) : NULL;
    int rc = text == NULL ? PS_ENOMEM : fprintf(out, "%s\n", text) < 0 ? PS_EIO : 0;
    json_object_put(root);
    return rc;
}
