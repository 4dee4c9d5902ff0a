/* dataset.c — dense data sets: the CSV and LIBSVM readers (every field
 * checked, every error with file:line), standardisation and sharding. */
#include "dataset.h"

#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ps_dataset {
    size_t rows;
    size_t features;
    float *x; /* rows x features, row-major */
    float *y; /* rows */
};

/* Bytes of a field echoed in an error message before it is cut with "...". */
#define ECHO_MAX 40

/* ---- the data set object ---- */

int ps_dataset_new(size_t rows, size_t features, ps_dataset **out, ps_error *err)
{
    *out = NULL;
    if (features == 0)
        return ps_error_set(err, PS_EINVAL, "a data set needs at least one feature");
    size_t cells, xbytes, ybytes;
    if (!ps_mul_ok(rows, features, &cells) || !ps_mul_ok(cells, sizeof(float), &xbytes) ||
        !ps_mul_ok(rows, sizeof(float), &ybytes))
        return ps_error_set(err, PS_ENOMEM, "data set of %zu x %zu is too large", rows, features);
    ps_dataset *ds = calloc(1, sizeof *ds);
    if (ds == NULL)
        goto nomem;
    ds->rows = rows;
    ds->features = features;
    /* one extra element keeps calloc(0) from returning NULL */
    ds->x = calloc(1, xbytes + sizeof(float));
    ds->y = calloc(1, ybytes + sizeof(float));
    if (ds->x == NULL || ds->y == NULL)
        goto nomem;
    *out = ds;
    return 0;
nomem:
    ps_dataset_destroy(&ds);
    return ps_error_set(err, PS_ENOMEM, "out of memory for a data set of %zu x %zu", rows,
                        features);
}

void ps_dataset_destroy(ps_dataset **dsp)
{
    if (dsp == NULL || *dsp == NULL)
        return;
    free((*dsp)->x);
    free((*dsp)->y);
    free(*dsp);
    *dsp = NULL;
}

size_t ps_dataset_rows(const ps_dataset *ds)
{
    return ds->rows;
}

size_t ps_dataset_features(const ps_dataset *ds)
{
    return ds->features;
}

float *ps_dataset_x(ps_dataset *ds)
{
    return ds->x;
}

float *ps_dataset_y(ps_dataset *ds)
{
    return ds->y;
}

const float *ps_dataset_cx(const ps_dataset *ds)
{
    return ds->x;
}

const float *ps_dataset_cy(const ps_dataset *ds)
{
    return ds->y;
}

/* ---- building a data set row by row while reading ---- */

typedef struct builder {
    ps_dataset *ds; /* rows = rows filled so far */
    size_t cap;     /* rows allocated */
} builder;

static int builder_init(builder *b, size_t features, ps_error *err)
{
    b->cap = 0;
    return ps_dataset_new(0, features, &b->ds, err);
}

/* A zeroed new row at the end; *row points at its features. */
static int builder_add_row(builder *b, float **row, float **label)
{
    ps_dataset *ds = b->ds;
    if (ds->rows == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        size_t cells, xbytes, ybytes;
        if (cap < b->cap || !ps_mul_ok(cap, ds->features, &cells) ||
            !ps_mul_ok(cells, sizeof(float), &xbytes) || !ps_mul_ok(cap, sizeof(float), &ybytes))
            return PS_ENOMEM;
        float *x = realloc(ds->x, xbytes);
        if (x == NULL)
            return PS_ENOMEM;
        ds->x = x;
        float *y = realloc(ds->y, ybytes);
        if (y == NULL)
            return PS_ENOMEM;
        ds->y = y;
        b->cap = cap;
    }
    *row = ds->x + ds->rows * ds->features;
    *label = ds->y + ds->rows;
    memset(*row, 0, ds->features * sizeof(float));
    **label = 0.0f;
    ds->rows++;
    return 0;
}

/* Hands the data set over; an empty one is an error naming the file. */
static int builder_finish(builder *b, const char *path, ps_dataset **out, ps_error *err)
{
    if (b->ds->rows == 0) {
        ps_dataset_destroy(&b->ds);
        return ps_error_set(err, PS_EDATA, "%s: no data rows", path);
    }
    *out = b->ds;
    b->ds = NULL;
    return 0;
}

/* ---- parsing helpers ---- */

enum { NUM_OK = 0, NUM_BAD = -1, NUM_INFINITE = -2 };

/* Parses a whole field (surrounding blanks allowed) as a finite float. */
static int parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (end == s)
        return NUM_BAD;
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end != '\0')
        return NUM_BAD;
    if (!isfinite(v))
        return NUM_INFINITE;
    *out = v;
    return NUM_OK;
}

/* Copies s into buf (ECHO_MAX + 4 bytes) for an error message, cut with "...". */
static const char *echo(const char *s, char *buf)
{
    size_t n = strlen(s);
    if (n <= ECHO_MAX) {
        memcpy(buf, s, n + 1);
    } else {
        memcpy(buf, s, ECHO_MAX);
        memcpy(buf + ECHO_MAX, "...", 4);
    }
    return buf;
}

/* Strips the line ending; false if the line holds a NUL byte. */
static bool line_chomp(char *line, ssize_t len)
{
    if ((size_t)len != strlen(line))
        return false;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    return true;
}

static bool line_is_blank(const char *s)
{
    for (; *s; s++) {
        if (!isspace((unsigned char)*s))
            return false;
    }
    return true;
}

/* A text format read a line at a time: parse turns one line into a row of
 * b, or fills err with what is wrong (read_lines adds file:line). */
typedef struct line_format line_format;
struct line_format {
    int (*parse)(builder *b, char *line, const line_format *fmt, ps_error *err);
    uint32_t label_column; /* csv */
};

/* Reads every line of path through fmt into a new dataset in *out.
 * Blank lines are skipped; errors name file:line. */
static int read_lines(const char *path, size_t features, const line_format *fmt, ps_dataset **out,
                      ps_error *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
    builder b;
    int rc = builder_init(&b, features, err);
    if (rc != 0)
        goto close_file;
    char *line = NULL;
    size_t line_cap = 0;
    size_t lineno = 0;
    ssize_t len;
    errno = 0;
    while ((len = getline(&line, &line_cap, f)) >= 0) {
        lineno++;
        if (!line_chomp(line, len)) {
            rc = ps_error_set(err, PS_EDATA, "%s:%zu: line contains a NUL byte", path, lineno);
            goto free_all;
        }
        if (line_is_blank(line))
            continue;
        ps_error what;
        rc = fmt->parse(&b, line, fmt, &what);
        if (rc != 0) {
            ps_error_set(err, rc, "%s:%zu: %s", path, lineno, what.msg);
            goto free_all;
        }
    }
    if (ferror(f)) {
        rc = ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno ? errno : EIO));
        goto free_all;
    }
    rc = builder_finish(&b, path, out, err);
free_all:
    free(line);
    ps_dataset_destroy(&b.ds);
close_file:
    fclose(f);
    return rc;
}

/* ---- CSV ---- */

/* Parses one CSV line into a new row of b; fills err with "what" (no prefix). */
static int csv_parse_line(builder *b, char *line, const line_format *fmt, ps_error *err)
{
    uint32_t label_column = fmt->label_column;
    size_t features = b->ds->features;
    size_t nfields = 1;
    for (const char *p = line; *p; p++)
        nfields += *p == ',';
    if (nfields != features + 1)
        return ps_error_set(err, PS_EDATA, "expected %zu fields, found %zu", features + 1, nfields);
    float *row, *label;
    if (builder_add_row(b, &row, &label) != 0)
        return ps_error_set(err, PS_ENOMEM, "out of memory");
    char *field = line;
    size_t col = 0;
    for (size_t i = 0; i < nfields; i++) {
        char *comma = strchr(field, ',');
        if (comma)
            *comma = '\0';
        float v = 0.0f;
        int rc = parse_float(field, &v);
        if (rc != NUM_OK) {
            char buf[ECHO_MAX + 4];
            return ps_error_set(err, PS_EDATA, "field %zu \"%s\" is not a %snumber", i + 1,
                                echo(field, buf), rc == NUM_INFINITE ? "finite " : "");
        }
        if (i == label_column)
            *label = v;
        else
            row[col++] = v;
        field = comma ? comma + 1 : field + strlen(field);
    }
    return 0;
}

int ps_dataset_read_csv(const char *path, size_t features, uint32_t label_column, ps_dataset **out,
                        ps_error *err)
{
    *out = NULL;
    if ((size_t)label_column > features)
        return ps_error_set(err, PS_EDATA, "%s: label_column %u is outside the %zu fields", path,
                            label_column, features + 1);
    line_format fmt = {.parse = csv_parse_line, .label_column = label_column};
    return read_lines(path, features, &fmt, out, err);
}

/* ---- LIBSVM ---- */

/* Parses a whole token as a decimal index without sign. */
static bool parse_index(const char *s, unsigned long long *out)
{
    if (!isdigit((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno == ERANGE)
        return false;
    *out = v;
    return true;
}

static int libsvm_parse_pair(float *row, size_t features, char *tok, unsigned long long *prev,
                             ps_error *err)
{
    char buf[ECHO_MAX + 4];
    char *colon = strchr(tok, ':');
    if (colon == NULL)
        return ps_error_set(err, PS_EDATA, "\"%s\" is not an index:value pair", echo(tok, buf));
    *colon = '\0';
    unsigned long long idx;
    if (!parse_index(tok, &idx))
        return ps_error_set(err, PS_EDATA, "index \"%s\" is not a positive integer",
                            echo(tok, buf));
    if (idx < 1 || idx > features)
        return ps_error_set(err, PS_EDATA, "index %llu is out of range 1..%zu", idx, features);
    if (idx <= *prev)
        return ps_error_set(err, PS_EDATA, "index %llu follows index %llu: indices must increase",
                            idx, *prev);
    float v;
    int rc = parse_float(colon + 1, &v);
    if (rc != NUM_OK)
        return ps_error_set(err, PS_EDATA, "value \"%s\" of index %llu is not a %snumber",
                            echo(colon + 1, buf), idx, rc == NUM_INFINITE ? "finite " : "");
    row[idx - 1] = v;
    *prev = idx;
    return 0;
}

static int libsvm_parse_line(builder *b, char *line, const line_format *fmt, ps_error *err)
{
    (void)fmt;
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    if (line_is_blank(line))
        return 0;
    float *row, *label;
    if (builder_add_row(b, &row, &label) != 0)
        return ps_error_set(err, PS_ENOMEM, "out of memory");
    char *save = NULL;
    char *tok = strtok_r(line, " \t", &save);
    char buf[ECHO_MAX + 4];
    int rc = parse_float(tok, label);
    if (rc != NUM_OK)
        return ps_error_set(err, PS_EDATA, "label \"%s\" is not a %snumber", echo(tok, buf),
                            rc == NUM_INFINITE ? "finite " : "");
    unsigned long long prev = 0;
    while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
        rc = libsvm_parse_pair(row, b->ds->features, tok, &prev, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int ps_dataset_read_libsvm(const char *path, size_t features, ps_dataset **out, ps_error *err)
{
    *out = NULL;
    line_format fmt = {.parse = libsvm_parse_line};
    return read_lines(path, features, &fmt, out, err);
}

int ps_dataset_read(const char *path, ps_data_format format, size_t features, uint32_t label_column,
                    ps_dataset **out, ps_error *err)
{
    switch (format) {
    case PS_FORMAT_CSV:
        return ps_dataset_read_csv(path, features, label_column, out, err);
    case PS_FORMAT_LIBSVM:
        return ps_dataset_read_libsvm(path, features, out, err);
    case PS_FORMAT_IDX:
        break;
    }
    *out = NULL;
    return ps_error_set(err, PS_EUNSUPPORTED,
                        "%s: data format idx is not supported by psworker yet", path);
}

/* ---- standardisation ---- */

void ps_dataset_stats(const ps_dataset *ds, double *mean, double *std)
{
    size_t d = ds->features;
    for (size_t j = 0; j < d; j++) {
        mean[j] = 0.0;
        std[j] = 0.0;
    }
    if (ds->rows == 0)
        return;
    /* two passes: the mean first, then squared deviations from it */
    for (size_t i = 0; i < ds->rows; i++) {
        const float *row = ds->x + i * d;
        for (size_t j = 0; j < d; j++)
            mean[j] += row[j];
    }
    for (size_t j = 0; j < d; j++)
        mean[j] /= (double)ds->rows;
    for (size_t i = 0; i < ds->rows; i++) {
        const float *row = ds->x + i * d;
        for (size_t j = 0; j < d; j++) {
            double dev = row[j] - mean[j];
            std[j] += dev * dev;
        }
    }
    for (size_t j = 0; j < d; j++)
        std[j] = sqrt(std[j] / (double)ds->rows);
}

void ps_dataset_standardize(ps_dataset *ds, const double *mean, const double *std)
{
    size_t d = ds->features;
    for (size_t i = 0; i < ds->rows; i++) {
        float *row = ds->x + i * d;
        for (size_t j = 0; j < d; j++) {
            double s = std[j] > 0.0 && isfinite(std[j]) ? std[j] : 1.0;
            row[j] = (float)(((double)row[j] - mean[j]) / s);
        }
    }
}

/* ---- sharding ---- */

size_t ps_dataset_shard_rows(size_t n, ps_shard_kind kind, uint32_t rank, uint32_t workers)
{
    if (workers == 0 || rank >= workers)
        return 0;
    if (kind == PS_SHARD_STRIDE)
        return rank < n ? (n - rank + workers - 1) / workers : 0;
    uint64_t lo, hi;
    if (ps_shard_range(n, workers, rank, &lo, &hi) != 0)
        return 0;
    return (size_t)(hi - lo);
}

int ps_dataset_shard(const ps_dataset *ds, ps_shard_kind kind, uint32_t rank, uint32_t workers,
                     ps_dataset **out, ps_error *err)
{
    *out = NULL;
    if (workers == 0 || rank >= workers)
        return ps_error_set(err, PS_EINVAL, "rank %u is outside [0, %u)", rank, workers);
    size_t d = ds->features;
    size_t rows = ps_dataset_shard_rows(ds->rows, kind, rank, workers);
    ps_dataset *s;
    int rc = ps_dataset_new(rows, d, &s, err);
    if (rc != 0)
        return rc;
    size_t first = rank, step = workers;
    if (kind == PS_SHARD_BLOCK) {
        uint64_t lo, hi;
        ps_shard_range(ds->rows, workers, rank, &lo, &hi);
        first = (size_t)lo;
        step = 1;
    }
    for (size_t i = 0; i < rows; i++) {
        size_t src = first + i * step;
        memcpy(s->x + i * d, ds->x + src * d, d * sizeof(float));
        s->y[i] = ds->y[src];
    }
    *out = s;
    return 0;
}
