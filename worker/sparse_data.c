/* sparse_data.c — the criteo and libsvm64 readers (every field checked,
 * every error with file:line, lines from line_reader.h), CSR batches,
 * whole-file data sets and their shards, and streams of one worker's
 * shard. One loop (stream_fill) reads for both: a whole-file read
 * is the stream of rank 0 of 1 into arrays that grow, so the two cannot
 * disagree on which lines are rows or what a row holds. */
#include "sparse_data.h"

#include "feature_hash.h"
#include "line_reader.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of a field echoed in an error message before it is cut with "...". */
#define ECHO_MAX 40

/* libsvm64: a pair takes at least 4 bytes of a line (" 0:1") */
#define LIBSVM64_FEATURES_MAX (PS_LINE_MAX_BYTES / 4)

/* A whole-file read's first allocation, in rows; arrays double from it. */
#define GROW_FIRST_ROWS ((size_t)1024)

bool ps_sparse_format_ok(ps_data_format format)
{
    return format == PS_FORMAT_CRITEO || format == PS_FORMAT_LIBSVM64;
}

static bool format_has_values(ps_data_format format)
{
    return format == PS_FORMAT_LIBSVM64;
}

static const char *format_name(ps_data_format format)
{
    return format == PS_FORMAT_CRITEO ? "criteo" : "libsvm64";
}

size_t ps_sparse_row_features_max(ps_data_format format)
{
    if (format == PS_FORMAT_CRITEO)
        return PS_CRITEO_FIELDS;
    if (format == PS_FORMAT_LIBSVM64)
        return LIBSVM64_FEATURES_MAX;
    return 0;
}

/* ---- batches ---- */

/* (Re)allocates b's arrays for rows rows and nnz features; on failure b
 * keeps the arrays it had (some may have grown). */
static bool batch_alloc(ps_sparse_batch *b, bool values, size_t rows, size_t nnz)
{
    size_t ob, kb, vb, lb, yb;
    if (rows == SIZE_MAX || !ps_mul_ok(rows + 1, sizeof(size_t), &ob) ||
        !ps_mul_ok(nnz, sizeof(uint64_t), &kb) || !ps_mul_ok(nnz, sizeof(float), &vb) ||
        !ps_mul_ok(rows, sizeof(uint64_t), &lb) || !ps_mul_ok(rows, sizeof(float), &yb))
        return false;
    size_t *o = realloc(b->offsets, ob);
    if (o == NULL)
        return false;
    b->offsets = o;
    uint64_t *k = realloc(b->keys, kb);
    if (k == NULL)
        return false;
    b->keys = k;
    if (values) {
        float *v = realloc(b->values, vb);
        if (v == NULL)
            return false;
        b->values = v;
    }
    uint64_t *l = realloc(b->lines, lb);
    if (l == NULL)
        return false;
    b->lines = l;
    float *y = realloc(b->labels, yb);
    if (y == NULL)
        return false;
    b->labels = y;
    b->row_cap = rows;
    b->nnz_cap = nnz;
    return true;
}

int ps_sparse_batch_init(ps_sparse_batch *b, ps_data_format format, size_t row_cap, size_t nnz_cap,
                         ps_error *err)
{
    memset(b, 0, sizeof *b);
    if (!ps_sparse_format_ok(format))
        return ps_error_set(err, PS_EINVAL, "a sparse batch needs format criteo or libsvm64");
    if (row_cap == 0 || nnz_cap == 0)
        return ps_error_set(err, PS_EINVAL, "a sparse batch needs room for a row and a feature");
    if (!batch_alloc(b, format_has_values(format), row_cap, nnz_cap)) {
        ps_sparse_batch_fini(b);
        return ps_error_set(err, PS_ENOMEM,
                            "out of memory for a sparse batch of %zu rows and %zu features",
                            row_cap, nnz_cap);
    }
    b->offsets[0] = 0;
    return 0;
}

void ps_sparse_batch_fini(ps_sparse_batch *b)
{
    free(b->offsets);
    free(b->keys);
    free(b->values);
    free(b->labels);
    free(b->lines);
    memset(b, 0, sizeof *b);
}

/* ---- lines ---- */

/* Whether a line is a row: criteo's is any line but an empty one or one
 * of spaces (a tab separates fields, so "\t\t..." is a row of empty
 * fields); libsvm64's any line with more than blanks before its "#". */
static bool line_is_row(ps_data_format format, const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = line[i];
        if (format == PS_FORMAT_LIBSVM64 && c == '#')
            return false;
        if (c != ' ' && (format == PS_FORMAT_CRITEO || c != '\t'))
            return true;
    }
    return false;
}

/* ---- parsing one row ---- */

/* Where a parsed row goes: room features at keys (and values when not
 * NULL); the parser sets nf and label. */
typedef struct row_out {
    uint64_t *keys;
    float *values;
    size_t room;
    size_t nf;
    float label;
} row_out;

/* A parser's answer besides 0 and a negative PS_E code: the row has more
 * features than room. */
#define ROW_FULL 1

/* Copies s[0, n) into buf (ECHO_MAX + 4 bytes) for an error message, cut
 * with "...". */
static const char *echo(const char *s, size_t n, char *buf)
{
    size_t k = n <= ECHO_MAX ? n : ECHO_MAX;
    memcpy(buf, s, k);
    if (n > ECHO_MAX)
        memcpy(buf + k, "...", 4);
    else
        buf[k] = '\0';
    return buf;
}

/* s[0, n) as a whole unsigned decimal of at most limit: 0, 1 when not
 * digits only (or empty), 2 when above limit (every digit still checked). */
static int parse_digits(const char *s, size_t n, uint64_t limit, uint64_t *out)
{
    if (n == 0)
        return 1;
    uint64_t v = 0;
    bool over = false;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9)
            return 1;
        if (v > (limit - d) / 10)
            over = true;
        else
            v = v * 10 + d;
    }
    if (over)
        return 2;
    *out = v;
    return 0;
}

/* s[0, n) as a whole decimal int64 with an optional '-': 0, 1 when it is
 * not an integer, 2 when out of range. */
static int parse_int64(const char *s, size_t n, int64_t *out)
{
    bool neg = n > 0 && s[0] == '-';
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    int rc = parse_digits(s + neg, n - neg, limit, &v);
    if (rc == 0)
        *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return rc;
}

/* s[0, n) as a whole unsigned 64-bit decimal: 0, 1 when not digits only, 2
 * when out of range. */
static int parse_uint64(const char *s, size_t n, uint64_t *out)
{
    return parse_digits(s, n, UINT64_MAX, out);
}

static bool is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

/* s[0, n) as a whole number (strtof's syntax); s[n] must end it (a blank,
 * a '#' or the line's NUL: strtof stops at each). 0, 1 when not a number,
 * 2 when not finite. */
static int parse_float_token(const char *s, size_t n, float *out)
{
    if (n == 0 || s[0] == ' ' || s[0] == '\t')
        return 1;
    char *end;
    float v = strtof(s, &end);
    if (end != s + n)
        return 1;
    if (!isfinite(v))
        return 2;
    *out = v;
    return 0;
}

/* The name of criteo field f (0-based, 0 the label) for messages: "I3". */
static void criteo_field_name(size_t f, char *buf, size_t cap)
{
    if (f <= PS_CRITEO_INTS)
        snprintf(buf, cap, "I%zu", f);
    else
        snprintf(buf, cap, "C%zu", f - PS_CRITEO_INTS);
}

static int criteo_parse(const char *line, size_t len, row_out *r, ps_error *what)
{
    size_t tabs = 0;
    for (const char *p = line; (p = memchr(p, '\t', (size_t)(line + len - p))) != NULL; p++)
        tabs++;
    if (tabs != PS_CRITEO_FIELDS)
        return ps_error_set(what, PS_EDATA,
                            "expected %d tab-separated fields (label, %d integers, %d categories), "
                            "found %zu",
                            PS_CRITEO_FIELDS + 1, PS_CRITEO_INTS, PS_CRITEO_CATS, tabs + 1);
    char buf[ECHO_MAX + 4], name[8];
    const char *field = line;
    r->nf = 0;
    for (size_t f = 0; f <= PS_CRITEO_FIELDS; f++) {
        const char *tab =
            f < PS_CRITEO_FIELDS ? memchr(field, '\t', (size_t)(line + len - field)) : line + len;
        size_t n = (size_t)(tab - field);
        if (f == 0) {
            if (n != 1 || (field[0] != '0' && field[0] != '1'))
                return ps_error_set(what, PS_EDATA, "label \"%s\" is not 0 or 1",
                                    echo(field, n, buf));
            r->label = field[0] == '1' ? 1.0f : 0.0f;
        } else if (n > 0) {
            uint64_t key;
            if (f <= PS_CRITEO_INTS) {
                int64_t v;
                int bad = parse_int64(field, n, &v);
                if (bad != 0) {
                    criteo_field_name(f, name, sizeof name);
                    return ps_error_set(what, PS_EDATA, "field %zu (%s) \"%s\" is %s", f + 1, name,
                                        echo(field, n, buf),
                                        bad == 1 ? "not an integer"
                                                 : "out of the range of 64-bit integers");
                }
                key = ps_feature_hash_u64((uint32_t)(f - 1), (uint64_t)ps_feature_bucket(v));
            } else {
                if (!is_hex(field, n)) {
                    criteo_field_name(f, name, sizeof name);
                    return ps_error_set(what, PS_EDATA,
                                        "field %zu (%s) \"%s\" is not a hexadecimal string", f + 1,
                                        name, echo(field, n, buf));
                }
                key = ps_feature_hash((uint32_t)(f - 1), field, n);
            }
            if (r->nf == r->room)
                return ROW_FULL;
            r->keys[r->nf++] = key;
        }
        field = tab + 1;
    }
    return 0;
}

/* One "id:value" token of libsvm64, tok[0, n); prev: the row's last id. */
static int libsvm64_pair(const char *tok, size_t n, row_out *r, bool *have_prev, uint64_t *prev,
                         ps_error *what)
{
    char buf[ECHO_MAX + 4];
    const char *colon = memchr(tok, ':', n);
    if (colon == NULL)
        return ps_error_set(what, PS_EDATA, "\"%s\" is not an id:value pair", echo(tok, n, buf));
    size_t idn = (size_t)(colon - tok);
    uint64_t id;
    int bad = parse_uint64(tok, idn, &id);
    if (bad != 0)
        return ps_error_set(what, PS_EDATA, "id \"%s\" is %s", echo(tok, idn, buf),
                            bad == 1 ? "not an unsigned integer"
                                     : "out of the range of 64-bit unsigned integers");
    if (*have_prev && id <= *prev)
        return ps_error_set(what, PS_EDATA, "id %llu follows id %llu: ids must increase",
                            (unsigned long long)id, (unsigned long long)*prev);
    float v;
    bad = parse_float_token(colon + 1, n - idn - 1, &v);
    if (bad != 0)
        return ps_error_set(what, PS_EDATA, "value \"%s\" of id %llu is not a %snumber",
                            echo(colon + 1, n - idn - 1, buf), (unsigned long long)id,
                            bad == 2 ? "finite " : "");
    if (r->nf == r->room)
        return ROW_FULL;
    r->keys[r->nf] = ps_feature_hash_u64(0, id);
    r->values[r->nf] = v;
    r->nf++;
    *have_prev = true;
    *prev = id;
    return 0;
}

static int libsvm64_parse(const char *line, size_t len, row_out *r, ps_error *what)
{
    const char *hash = memchr(line, '#', len);
    const char *end = hash != NULL ? hash : line + len;
    const char *p = line;
    bool first = true, have_prev = false;
    uint64_t prev = 0;
    char buf[ECHO_MAX + 4];
    r->nf = 0;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p == end)
            break;
        const char *tok = p;
        while (p < end && *p != ' ' && *p != '\t')
            p++;
        size_t n = (size_t)(p - tok);
        if (first) {
            float y;
            if (parse_float_token(tok, n, &y) != 0 || (y != 0.0f && y != 1.0f && y != -1.0f))
                return ps_error_set(what, PS_EDATA, "label \"%s\" is not 0 or 1 (-1 reads as 0)",
                                    echo(tok, n, buf));
            r->label = y == 1.0f ? 1.0f : 0.0f;
            first = false;
            continue;
        }
        int rc = libsvm64_pair(tok, n, r, &have_prev, &prev, what);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int row_parse(ps_data_format format, const char *line, size_t len, row_out *r,
                     ps_error *what)
{
    if (format == PS_FORMAT_CRITEO)
        return criteo_parse(line, len, r, what);
    return libsvm64_parse(line, len, r, what);
}

/* ---- streams ---- */

struct ps_sparse_stream {
    ps_line_reader *r;
    const char *path; /* r's */
    ps_data_format format;
    ps_shard_kind kind;
    uint32_t rank, workers;
    uint64_t lo, hi;                /* block: the shard's rows [lo, hi) of the file's */
    uint64_t file_rows, shard_rows; /* counted at open */
    uint64_t row;                   /* the file's rows seen in this pass */
    uint64_t done;                  /* the shard's rows handed out in this pass */
    char *line;                     /* when pending: the line of the shard's next row */
    size_t len;
    bool pending;
    bool ended; /* the shard has no row left in this pass */
};

/* The next line that is a row of the file, its index in s->row - 1: 1, 0
 * at the end of the file (PS_EDATA when it held no row), or an error. */
static int next_file_row(ps_sparse_stream *s, ps_error *err)
{
    char *line;
    size_t len;
    int got;
    while ((got = ps_line_reader_next(s->r, &line, &len, err)) > 0) {
        if (!line_is_row(s->format, line, len))
            continue;
        s->row++;
        s->line = line;
        s->len = len;
        return 1;
    }
    if (got == 0 && s->row == 0)
        return ps_error_set(err, PS_EDATA, "%s: no data rows", s->path);
    return got;
}

/* Makes the shard's next row pending, or sets ended. */
static int next_shard_row(ps_sparse_stream *s, ps_error *err)
{
    while (!s->pending && !s->ended) {
        if (s->kind == PS_SHARD_BLOCK && s->row >= s->hi) {
            s->ended = true;
            break;
        }
        int rc = next_file_row(s, err);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            s->ended = true;
            break;
        }
        uint64_t i = s->row - 1;
        if (s->kind == PS_SHARD_BLOCK ? i >= s->lo : i % s->workers == s->rank)
            s->pending = true;
    }
    return 0;
}

/* Reads the shard's rows into b until it holds want rows or the shard
 * ends. With grow, b's arrays grow as needed (a whole-file read); without,
 * it stops before a row that does not fit (a stream's batch). */
static int stream_fill(ps_sparse_stream *s, ps_sparse_batch *b, size_t want, bool grow,
                       ps_error *err)
{
    bool values = format_has_values(s->format);
    while (b->rows < want) {
        int rc = next_shard_row(s, err);
        if (rc != 0)
            return rc;
        if (s->ended)
            return 0;
        if (grow && b->rows == b->row_cap) {
            size_t rows = b->row_cap ? b->row_cap * 2 : GROW_FIRST_ROWS;
            if (rows < b->row_cap || !batch_alloc(b, values, rows, b->nnz_cap))
                return ps_error_set(err, PS_ENOMEM, "%s: out of memory after %zu rows", s->path,
                                    b->rows);
        }
        size_t at = b->offsets[b->rows];
        row_out r = {.keys = b->keys + at,
                     .values = values ? b->values + at : NULL,
                     .room = b->nnz_cap - at};
        uint64_t lineno = ps_line_reader_lineno(s->r); /* the pending row's */
        ps_error what;
        rc = row_parse(s->format, s->line, s->len, &r, &what);
        if (rc == ROW_FULL && grow) {
            size_t nnz = b->nnz_cap ? b->nnz_cap * 2 : GROW_FIRST_ROWS * PS_CRITEO_FIELDS;
            if (nnz < b->nnz_cap || !batch_alloc(b, values, b->row_cap, nnz))
                return ps_error_set(err, PS_ENOMEM, "%s: out of memory after %zu rows", s->path,
                                    b->rows);
            continue;
        }
        if (rc == ROW_FULL && b->rows == 0)
            return ps_error_set(err, PS_EINVAL,
                                "%s:%llu: the row has more features than a batch of %zu holds",
                                s->path, (unsigned long long)lineno, b->nnz_cap);
        if (rc == ROW_FULL)
            return 0;
        if (rc != 0)
            return ps_error_set(err, rc, "%s:%llu: %s", s->path, (unsigned long long)lineno,
                                what.msg);
        b->labels[b->rows] = r.label;
        b->lines[b->rows] = lineno;
        b->offsets[b->rows + 1] = at + r.nf;
        b->rows++;
        s->pending = false;
        s->done++;
    }
    return 0;
}

/* Counts the file's rows (a block shard's bounds need them), then goes
 * back to its start. */
static int stream_count(ps_sparse_stream *s, uint64_t *rows, ps_error *err)
{
    int rc;
    while ((rc = next_file_row(s, err)) > 0)
        ;
    if (rc < 0)
        return rc;
    *rows = s->row;
    return ps_sparse_stream_rewind(s, err);
}

int ps_sparse_stream_open(const char *path, ps_data_format format, ps_shard_kind kind,
                          uint32_t rank, uint32_t workers, const volatile sig_atomic_t *stop,
                          ps_sparse_stream **out, ps_error *err)
{
    *out = NULL;
    if (!ps_sparse_format_ok(format))
        return ps_error_set(err, PS_EINVAL, "%s: a sparse data set is in format criteo or libsvm64",
                            path);
    if (workers == 0 || rank >= workers)
        return ps_error_set(err, PS_EINVAL, "rank %u is outside [0, %u)", rank, workers);
    ps_sparse_stream *s = calloc(1, sizeof *s);
    if (s == NULL)
        return ps_error_set(err, PS_ENOMEM, "%s: out of memory", path);
    s->format = format;
    s->kind = kind;
    s->rank = rank;
    s->workers = workers;
    s->hi = UINT64_MAX;
    int rc = ps_line_reader_open(path, stop, &s->r, err);
    if (rc != 0)
        goto fail;
    s->path = ps_line_reader_path(s->r);
    /* the file's rows: a block shard's bounds, and every shard's size */
    if ((rc = stream_count(s, &s->file_rows, err)) != 0)
        goto fail;
    if (kind == PS_SHARD_BLOCK)
        ps_shard_range(s->file_rows, workers, rank, &s->lo, &s->hi);
    s->shard_rows = ps_shard_rows(s->file_rows, kind, rank, workers);
    *out = s;
    return 0;
fail:
    ps_sparse_stream_close(&s);
    return rc;
}

int ps_sparse_stream_next(ps_sparse_stream *s, size_t max_rows, ps_sparse_batch *batch, size_t *n,
                          ps_error *err)
{
    *n = 0;
    batch->rows = 0;
    if (batch->row_cap == 0 || batch->nnz_cap == 0 || batch->offsets == NULL ||
        (batch->values != NULL) != format_has_values(s->format))
        return ps_error_set(err, PS_EINVAL, "%s: the batch is not one of format %s", s->path,
                            format_name(s->format));
    batch->offsets[0] = 0;
    size_t want = max_rows < batch->row_cap ? max_rows : batch->row_cap;
    int rc = stream_fill(s, batch, want, false, err);
    *n = batch->rows;
    return rc;
}

int ps_sparse_stream_rewind(ps_sparse_stream *s, ps_error *err)
{
    int rc = ps_line_reader_rewind(s->r, err);
    if (rc != 0)
        return rc;
    s->row = s->done = 0;
    s->pending = s->ended = false;
    s->line = NULL;
    return 0;
}

uint64_t ps_sparse_stream_rows_done(const ps_sparse_stream *s)
{
    return s->done;
}

uint64_t ps_sparse_stream_file_rows(const ps_sparse_stream *s)
{
    return s->file_rows;
}

uint64_t ps_sparse_stream_shard_rows(const ps_sparse_stream *s)
{
    return s->shard_rows;
}

void ps_sparse_stream_row_where(const ps_sparse_stream *s, const ps_sparse_batch *batch, size_t row,
                                char *buf, size_t cap)
{
    if (row < batch->rows)
        snprintf(buf, cap, "%s:%llu", s->path, (unsigned long long)batch->lines[row]);
    else
        snprintf(buf, cap, "%s: row %zu", s->path, row + 1);
}

void ps_sparse_stream_close(ps_sparse_stream **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    ps_sparse_stream *s = *sp;
    ps_line_reader_close(&s->r);
    free(s);
    *sp = NULL;
}

/* ---- whole files ---- */

struct ps_sparse_data {
    ps_sparse_batch rows; /* caps 0 once handed out: a read-only view */
    ps_data_format format;
    char *source;
};

/* Shrinks the arrays to what they hold (a read leaves up to half unused)
 * and zeroes the caps. Shrinking cannot fail in a way that matters: a
 * refused realloc keeps the larger block. */
static void rows_settle(ps_sparse_batch *b, bool values)
{
    size_t nnz = b->rows ? b->offsets[b->rows] : 0;
    size_t *o = realloc(b->offsets, (b->rows + 1) * sizeof *o);
    if (o != NULL)
        b->offsets = o;
    if (nnz > 0) {
        uint64_t *k = realloc(b->keys, nnz * sizeof *k);
        if (k != NULL)
            b->keys = k;
        float *v = values ? realloc(b->values, nnz * sizeof *v) : NULL;
        if (v != NULL)
            b->values = v;
    }
    if (b->rows > 0) {
        float *y = realloc(b->labels, b->rows * sizeof *y);
        if (y != NULL)
            b->labels = y;
        uint64_t *l = realloc(b->lines, b->rows * sizeof *l);
        if (l != NULL)
            b->lines = l;
    }
    b->row_cap = b->nnz_cap = 0;
}

/* A data set of format with room for rows rows and nnz features. */
static ps_sparse_data *data_new(ps_data_format format, const char *source, size_t rows, size_t nnz)
{
    ps_sparse_data *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->format = format;
    d->source = strdup(source);
    /* at least one of each, so an empty shard's arrays are not NULL */
    if (d->source == NULL ||
        !batch_alloc(&d->rows, format_has_values(format), rows ? rows : 1, nnz ? nnz : 1)) {
        ps_sparse_destroy(&d);
        return NULL;
    }
    d->rows.offsets[0] = 0;
    return d;
}

int ps_sparse_read(const char *path, ps_data_format format, const volatile sig_atomic_t *stop,
                   ps_sparse_data **out, ps_error *err)
{
    *out = NULL;
    ps_sparse_stream *s;
    int rc = ps_sparse_stream_open(path, format, PS_SHARD_STRIDE, 0, 1, stop, &s, err);
    if (rc != 0)
        return rc;
    ps_sparse_data *d = data_new(format, path, GROW_FIRST_ROWS, GROW_FIRST_ROWS * PS_CRITEO_FIELDS);
    if (d == NULL) {
        rc = ps_error_set(err, PS_ENOMEM, "%s: out of memory", path);
        goto close;
    }
    rc = stream_fill(s, &d->rows, SIZE_MAX, true, err);
    if (rc != 0) {
        ps_sparse_destroy(&d);
        goto close;
    }
    rows_settle(&d->rows, format_has_values(format));
    *out = d;
close:
    ps_sparse_stream_close(&s);
    return rc;
}

int ps_sparse_shard(const ps_sparse_data *d, ps_shard_kind kind, uint32_t rank, uint32_t workers,
                    ps_sparse_data **out, ps_error *err)
{
    *out = NULL;
    if (workers == 0 || rank >= workers)
        return ps_error_set(err, PS_EINVAL, "rank %u is outside [0, %u)", rank, workers);
    const ps_sparse_batch *src = &d->rows;
    size_t first = rank, step = workers;
    size_t rows = (size_t)ps_shard_rows(src->rows, kind, rank, workers);
    if (kind == PS_SHARD_BLOCK) {
        uint64_t lo, hi;
        ps_shard_range(src->rows, workers, rank, &lo, &hi);
        first = (size_t)lo;
        step = 1;
    }
    size_t nnz = 0;
    for (size_t i = 0; i < rows; i++) {
        size_t r = first + i * step;
        nnz += src->offsets[r + 1] - src->offsets[r];
    }
    ps_sparse_data *s = data_new(d->format, d->source, rows, nnz);
    if (s == NULL)
        return ps_error_set(err, PS_ENOMEM, "out of memory for a shard of %zu rows", rows);
    ps_sparse_batch *b = &s->rows;
    for (size_t i = 0; i < rows; i++) {
        size_t r = first + i * step, at = b->offsets[i];
        size_t lo = src->offsets[r], k = src->offsets[r + 1] - lo;
        memcpy(b->keys + at, src->keys + lo, k * sizeof *b->keys);
        if (b->values != NULL)
            memcpy(b->values + at, src->values + lo, k * sizeof *b->values);
        b->labels[i] = src->labels[r];
        b->lines[i] = src->lines[r];
        b->offsets[i + 1] = at + k;
    }
    b->rows = rows;
    b->row_cap = b->nnz_cap = 0;
    *out = s;
    return 0;
}

const ps_sparse_batch *ps_sparse_rows(const ps_sparse_data *d)
{
    return &d->rows;
}

ps_data_format ps_sparse_format(const ps_sparse_data *d)
{
    return d->format;
}

void ps_sparse_row_where(const ps_sparse_data *d, size_t row, char *buf, size_t cap)
{
    if (row < d->rows.rows)
        snprintf(buf, cap, "%s:%llu", d->source, (unsigned long long)d->rows.lines[row]);
    else
        snprintf(buf, cap, "%s: row %zu", d->source, row + 1);
}

void ps_sparse_destroy(ps_sparse_data **dp)
{
    if (dp == NULL || *dp == NULL)
        return;
    ps_sparse_batch_fini(&(*dp)->rows);
    free((*dp)->source);
    free(*dp);
    *dp = NULL;
}
