/* dataset.c — dense data sets: the CSV and LIBSVM readers (every field
 * checked, every error with file:line, lines from line_reader.h), the IDX
 * reader (MNIST's format, gzip or plain, through zlib), standardisation and
 * sharding. Readers open regular files only and stop when asked to. */
#include "dataset.h"

#include "line_reader.h"
#include "util.h"

#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

struct ps_dataset {
    size_t rows;
    size_t features;
    float *x;            /* rows x features, row-major */
    float *y;            /* rows */
    char *source;        /* the file the labels came from; NULL when built in memory */
    size_t *lines;       /* text formats: the 1-based line of each row; NULL otherwise */
    size_t label_offset; /* idx: byte offset of the first label */
};

/* Bytes of a field echoed in an error message before it is cut with "...". */
#define ECHO_MAX 40

typedef const volatile sig_atomic_t *stop_flag;

static bool stopped(stop_flag stop)
{
    return stop != NULL && *stop != 0;
}

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
    free((*dsp)->source);
    free((*dsp)->lines);
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
    size_t line;    /* the line being parsed */
} builder;

static int builder_init(builder *b, size_t features, ps_error *err)
{
    b->cap = 0;
    b->line = 0;
    return ps_dataset_new(0, features, &b->ds, err);
}

/* A zeroed new row at the end, read from line `line`; *row points at its
 * features. */
static int builder_add_row(builder *b, size_t line, float **row, float **label)
{
    ps_dataset *ds = b->ds;
    if (ds->rows == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        size_t cells, xbytes, ybytes, lbytes;
        if (cap < b->cap || !ps_mul_ok(cap, ds->features, &cells) ||
            !ps_mul_ok(cells, sizeof(float), &xbytes) || !ps_mul_ok(cap, sizeof(float), &ybytes) ||
            !ps_mul_ok(cap, sizeof(size_t), &lbytes))
            return PS_ENOMEM;
        float *x = realloc(ds->x, xbytes);
        if (x == NULL)
            return PS_ENOMEM;
        ds->x = x;
        float *y = realloc(ds->y, ybytes);
        if (y == NULL)
            return PS_ENOMEM;
        ds->y = y;
        size_t *lines = realloc(ds->lines, lbytes);
        if (lines == NULL)
            return PS_ENOMEM;
        ds->lines = lines;
        b->cap = cap;
    }
    ds->lines[ds->rows] = line;
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
    b->ds->source = strdup(path);
    if (b->ds->source == NULL) {
        ps_dataset_destroy(&b->ds);
        return ps_error_set(err, PS_ENOMEM, "out of memory");
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
 * Blank lines are skipped; errors name file:line. PS_EINTR when stop is
 * set (line_reader.h looks at it before each line). */
static int read_lines(const char *path, size_t features, const line_format *fmt, stop_flag stop,
                      ps_dataset **out, ps_error *err)
{
    ps_line_reader *r;
    int rc = ps_line_reader_open(path, stop, &r, err);
    if (rc != 0)
        return rc;
    builder b;
    rc = builder_init(&b, features, err);
    if (rc != 0)
        goto close;
    char *line;
    size_t len;
    while ((rc = ps_line_reader_next(r, &line, &len, err)) > 0) {
        if (line_is_blank(line))
            continue;
        b.line = (size_t)ps_line_reader_lineno(r);
        ps_error what;
        rc = fmt->parse(&b, line, fmt, &what);
        if (rc != 0) {
            ps_error_set(err, rc, "%s:%zu: %s", path, b.line, what.msg);
            goto free_ds;
        }
    }
    if (rc == 0)
        rc = builder_finish(&b, path, out, err);
free_ds:
    ps_dataset_destroy(&b.ds);
close:
    ps_line_reader_close(&r);
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
    if (builder_add_row(b, b->line, &row, &label) != 0)
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

static int read_csv(const char *path, size_t features, uint32_t label_column, stop_flag stop,
                    ps_dataset **out, ps_error *err)
{
    *out = NULL;
    if ((size_t)label_column > features)
        return ps_error_set(err, PS_EDATA, "%s: label_column %u is outside the %zu fields", path,
                            label_column, features + 1);
    line_format fmt = {.parse = csv_parse_line, .label_column = label_column};
    return read_lines(path, features, &fmt, stop, out, err);
}

int ps_dataset_read_csv(const char *path, size_t features, uint32_t label_column, ps_dataset **out,
                        ps_error *err)
{
    return read_csv(path, features, label_column, NULL, out, err);
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
    if (builder_add_row(b, b->line, &row, &label) != 0)
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

static int read_libsvm(const char *path, size_t features, stop_flag stop, ps_dataset **out,
                       ps_error *err)
{
    *out = NULL;
    line_format fmt = {.parse = libsvm_parse_line};
    return read_lines(path, features, &fmt, stop, out, err);
}

int ps_dataset_read_libsvm(const char *path, size_t features, ps_dataset **out, ps_error *err)
{
    return read_libsvm(path, features, NULL, out, err);
}

/* ---- IDX (MNIST) ---- */

/* Bytes read from an IDX file per gzread call. */
#define IDX_CHUNK_BYTES ((size_t)1 << 20)

typedef struct idx_file {
    gzFile gz;
    const char *path;
    uint64_t offset; /* bytes read so far (uncompressed) */
} idx_file;

static int idx_open(idx_file *f, const char *path, ps_error *err)
{
    f->path = path;
    f->offset = 0;
    f->gz = NULL;
    int fd;
    int rc = ps_line_reader_open_fd(path, &fd, err);
    if (rc != 0)
        return rc;
    f->gz = gzdopen(fd, "rb"); /* reads plain files as they are */
    if (f->gz == NULL) {
        close(fd);
        return ps_error_set(err, PS_ENOMEM, "%s: out of memory", path);
    }
    gzbuffer(f->gz, 1u << 17);
    return 0;
}

/* Reads exactly n bytes of the `left` bytes of `what` still expected;
 * PS_EDATA "truncated" or PS_EIO naming what. */
static int idx_read(idx_file *f, void *buf, size_t n, const char *what, size_t left, ps_error *err)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < IDX_CHUNK_BYTES ? n - got : IDX_CHUNK_BYTES;
        int r = gzread(f->gz, (unsigned char *)buf + got, (unsigned)want);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(f->gz, &zerr);
            if (zerr == Z_ERRNO)
                return ps_error_set(err, PS_EIO, "%s: %s", f->path, strerror(errno));
            return ps_error_set(err, PS_EDATA, "%s: byte %llu of %s: %s", f->path,
                                (unsigned long long)(f->offset + got), what, msg);
        }
        if (r == 0)
            return ps_error_set(err, PS_EDATA,
                                "%s: truncated at byte %llu: %zu more bytes of %s expected",
                                f->path, (unsigned long long)(f->offset + got), left - got, what);
        got += (size_t)r;
    }
    f->offset += n;
    return 0;
}

/* The header: magic 0x0000 08 <ndims>, then ndims big-endian counts. */
static int idx_header(idx_file *f, uint8_t ndims, uint32_t *dims, const char *what, ps_error *err)
{
    unsigned char magic[4];
    size_t header = 4 + 4 * (size_t)ndims;
    int rc = idx_read(f, magic, sizeof magic, "header", header, err);
    if (rc != 0)
        return rc;
    if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] != ndims)
        return ps_error_set(err, PS_EDATA,
                            "%s: magic number 0x%02x%02x%02x%02x is not 0x000008%02x (IDX %s of "
                            "unsigned bytes)",
                            f->path, magic[0], magic[1], magic[2], magic[3], ndims, what);
    for (uint8_t i = 0; i < ndims; i++) {
        unsigned char be[4];
        rc = idx_read(f, be, sizeof be, "header", header - 4 - 4 * (size_t)i, err);
        if (rc != 0)
            return rc;
        dims[i] = (uint32_t)be[0] << 24 | (uint32_t)be[1] << 16 | (uint32_t)be[2] << 8 | be[3];
    }
    return 0;
}

/* PS_EDATA when the file goes on after its last item. */
static int idx_expect_end(idx_file *f, ps_error *err)
{
    unsigned char extra;
    int r = gzread(f->gz, &extra, 1);
    if (r > 0)
        return ps_error_set(err, PS_EDATA, "%s: unexpected data after the last item at byte %llu",
                            f->path, (unsigned long long)f->offset);
    if (r < 0) {
        int zerr;
        const char *msg = gzerror(f->gz, &zerr);
        return ps_error_set(err, PS_EDATA, "%s: byte %llu: %s", f->path,
                            (unsigned long long)f->offset, msg);
    }
    return 0;
}

static void idx_close(idx_file *f)
{
    if (f->gz != NULL)
        gzclose(f->gz);
    f->gz = NULL;
}

/* Makes room for rows rows in ds (rows >= ds->rows); false when the size
 * overflows or memory runs out. */
static bool dataset_reserve(ps_dataset *ds, size_t rows)
{
    size_t cells, xbytes, ybytes;
    if (!ps_mul_ok(rows, ds->features, &cells) || !ps_mul_ok(cells, sizeof(float), &xbytes) ||
        !ps_mul_ok(rows, sizeof(float), &ybytes))
        return false;
    float *x = realloc(ds->x, xbytes + sizeof(float));
    if (x == NULL)
        return false;
    ds->x = x;
    float *y = realloc(ds->y, ybytes + sizeof(float));
    if (y == NULL)
        return false;
    ds->y = y;
    return true;
}

/* The images: count x rows x cols bytes into ds->x as floats 0..255. The
 * buffers grow with the pixels actually read, so a header that claims
 * billions of images costs memory only for the bytes that are there. */
static int idx_read_images(const char *path, size_t features, stop_flag stop, ps_dataset **out,
                           ps_error *err)
{
    ps_dataset *ds = NULL;
    unsigned char *buf = NULL;
    idx_file f;
    int rc = idx_open(&f, path, err);
    if (rc != 0)
        return rc;
    uint32_t dims[3] = {0, 0, 0};
    rc = idx_header(&f, 3, dims, "images", err);
    if (rc != 0)
        goto close;
    uint64_t pixels = (uint64_t)dims[1] * dims[2];
    if (dims[0] == 0) {
        rc = ps_error_set(err, PS_EDATA, "%s: no images", path);
        goto close;
    }
    if (pixels != features) {
        rc = ps_error_set(err, PS_EDATA,
                          "%s: images of %u x %u = %llu pixels, but model.features is %zu", path,
                          dims[1], dims[2], (unsigned long long)pixels, features);
        goto close;
    }
    size_t count = dims[0], total;
    if (!ps_mul_ok(count, features, &total)) {
        rc = ps_error_set(err, PS_EDATA, "%s: %zu images of %zu pixels are too many", path, count,
                          features);
        goto close;
    }
    size_t chunk_rows = features >= IDX_CHUNK_BYTES ? 1 : IDX_CHUNK_BYTES / features;
    rc = ps_dataset_new(0, features, &ds, err);
    if (rc != 0)
        goto close;
    buf = malloc(chunk_rows * features);
    if (buf == NULL) {
        rc = ps_error_set(err, PS_ENOMEM, "out of memory for %s", path);
        goto free_ds;
    }
    size_t cap = 0;
    while (ds->rows < count) {
        if (stopped(stop)) {
            rc = ps_error_set(err, PS_EINTR, "%s: reading interrupted at image %zu", path,
                              ds->rows + 1);
            break;
        }
        size_t n = count - ds->rows < chunk_rows ? count - ds->rows : chunk_rows;
        if (ds->rows + n > cap) {
            size_t want = cap * 2 > ds->rows + n ? cap * 2 : ds->rows + n;
            want = want < count ? want : count;
            if (!dataset_reserve(ds, want)) {
                rc = ps_error_set(err, PS_ENOMEM, "%s: out of memory for %zu images", path, count);
                break;
            }
            cap = want;
        }
        rc = idx_read(&f, buf, n * features, "pixels", total - ds->rows * features, err);
        if (rc != 0)
            break;
        float *x = ds->x + ds->rows * features;
        for (size_t i = 0; i < n * features; i++)
            x[i] = (float)buf[i];
        memset(ds->y + ds->rows, 0, n * sizeof(float));
        ds->rows += n;
    }
    free(buf);
    if (rc == 0)
        rc = idx_expect_end(&f, err);
    if (rc == 0) {
        *out = ds;
        goto close;
    }
free_ds:
    ps_dataset_destroy(&ds);
close:
    idx_close(&f);
    return rc;
}

/* The labels of ds's images: exactly ds->rows bytes. */
static int idx_read_labels(const char *path, const char *images, stop_flag stop, ps_dataset *ds,
                           ps_error *err)
{
    idx_file f;
    int rc = idx_open(&f, path, err);
    if (rc != 0)
        return rc;
    uint32_t n = 0;
    rc = idx_header(&f, 1, &n, "labels", err);
    if (rc != 0)
        goto close;
    if (n != ds->rows) {
        rc = ps_error_set(err, PS_EDATA, "%s: %u labels for the %zu images of %s", path, n,
                          ds->rows, images);
        goto close;
    }
    ds->label_offset = (size_t)f.offset;
    unsigned char buf[4096];
    for (size_t done = 0; done < ds->rows;) {
        if (stopped(stop)) {
            rc =
                ps_error_set(err, PS_EINTR, "%s: reading interrupted at label %zu", path, done + 1);
            goto close;
        }
        size_t cnt = ds->rows - done < sizeof buf ? ds->rows - done : sizeof buf;
        rc = idx_read(&f, buf, cnt, "labels", ds->rows - done, err);
        if (rc != 0)
            goto close;
        for (size_t i = 0; i < cnt; i++)
            ds->y[done + i] = (float)buf[i];
        done += cnt;
    }
    rc = idx_expect_end(&f, err);
    if (rc == 0) {
        ds->source = strdup(path);
        if (ds->source == NULL)
            rc = ps_error_set(err, PS_ENOMEM, "out of memory");
    }
close:
    idx_close(&f);
    return rc;
}

static int read_idx(const char *images, const char *labels, size_t features, stop_flag stop,
                    ps_dataset **out, ps_error *err)
{
    *out = NULL;
    ps_dataset *ds = NULL;
    int rc = idx_read_images(images, features, stop, &ds, err);
    if (rc != 0)
        return rc;
    rc = idx_read_labels(labels, images, stop, ds, err);
    if (rc != 0) {
        ps_dataset_destroy(&ds);
        return rc;
    }
    *out = ds;
    return 0;
}

int ps_dataset_read_idx(const char *images, const char *labels, size_t features, ps_dataset **out,
                        ps_error *err)
{
    return read_idx(images, labels, features, NULL, out, err);
}

/* Replaces the first `from` in the file-name part of buf by `to` (same
 * length); false when the name holds no `from`. */
static bool replace_in_name(char *buf, const char *from, const char *to)
{
    char *name = strrchr(buf, '/');
    name = name ? name + 1 : buf;
    char *at = strstr(name, from);
    if (at == NULL)
        return false;
    memcpy(at, to, strlen(to));
    return true;
}

int ps_dataset_idx_labels_path(const char *images, char *out, size_t cap, ps_error *err)
{
    if (!ps_strlcpy(out, images, cap))
        return ps_error_set(err, PS_ECONFIG, "%s: the path is too long", images);
    if (!replace_in_name(out, "images", "labels") || !replace_in_name(out, "idx3", "idx1"))
        return ps_error_set(err, PS_ECONFIG,
                            "%s: cannot derive the labels file from this name (standard names "
                            "are like train-images-idx3-ubyte.gz); give data.train_labels or "
                            "data.test_labels",
                            images);
    return 0;
}

int ps_dataset_read(const char *path, const char *labels, ps_data_format format, size_t features,
                    uint32_t label_column, const volatile sig_atomic_t *stop, ps_dataset **out,
                    ps_error *err)
{
    *out = NULL;
    switch (format) {
    case PS_FORMAT_CSV:
        return read_csv(path, features, label_column, stop, out, err);
    case PS_FORMAT_LIBSVM:
        return read_libsvm(path, features, stop, out, err);
    case PS_FORMAT_IDX:
        break;
    case PS_FORMAT_CRITEO:
    case PS_FORMAT_LIBSVM64:
        return ps_error_set(err, PS_EUNSUPPORTED,
                            "%s: format %s holds hashed sparse features: a sparse model "
                            "(sparse_logistic or fm) reads it, not a dense one",
                            path, format == PS_FORMAT_CRITEO ? "criteo" : "libsvm64");
    }
    if (labels != NULL && labels[0] != '\0')
        return read_idx(path, labels, features, stop, out, err);
    char derived[PATH_MAX];
    int rc = ps_dataset_idx_labels_path(path, derived, sizeof derived, err);
    if (rc != 0)
        return rc;
    return read_idx(path, derived, features, stop, out, err);
}

void ps_dataset_row_where(const ps_dataset *ds, size_t row, char *buf, size_t cap)
{
    const char *src = ds->source ? ds->source : "(data)";
    if (ds->lines != NULL && row < ds->rows)
        snprintf(buf, cap, "%s:%zu", src, ds->lines[row]);
    else if (ds->lines == NULL && ds->source != NULL)
        snprintf(buf, cap, "%s: item %zu (byte %zu)", src, row + 1, ds->label_offset + row);
    else
        snprintf(buf, cap, "%s: row %zu", src, row + 1);
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

int ps_dataset_shard(const ps_dataset *ds, ps_shard_kind kind, uint32_t rank, uint32_t workers,
                     ps_dataset **out, ps_error *err)
{
    *out = NULL;
    if (workers == 0 || rank >= workers)
        return ps_error_set(err, PS_EINVAL, "rank %u is outside [0, %u)", rank, workers);
    size_t d = ds->features;
    size_t rows = (size_t)ps_shard_rows(ds->rows, kind, rank, workers);
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
