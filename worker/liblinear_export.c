/* liblinear_export.c — liblinear_export.h: a file streamed as rank 0 of 1
 * (every row, in order, in batches allocated once), its keys numbered
 * through the export's keymap, each row's features sorted by number and
 * written through a buffer of text formatted here (a criteo log of 2 M rows
 * has 67 M features: printf per feature would be most of the time). */
#include "liblinear_export.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report_file.h"
#include "sparse_data.h"
#include "util.h"

/* Rows a batch holds: big enough that a batch's overhead vanishes, small
 * enough for a few MB (criteo: 4096 x 39 keys of 8 bytes). */
#define BATCH_ROWS ((size_t)4096)

/* The text buffer, flushed when less than one feature's worst case is left. */
#define TEXT_BYTES   ((size_t)1 << 20)
#define FEATURE_TEXT 40 /* " 2147483647:" and a "%.9g" float with room to spare */

typedef struct feature {
    uint32_t index;
    float value;
} feature;

struct ps_liblinear_export {
    ps_data_format format;
    ps_keymap *keys;
    /* seen[i]: the last file (1-based) holding the key numbered i, which
     * counts each file's distinct keys for 4 bytes a key */
    uint32_t *seen;
    size_t seen_cap;
    uint32_t files;
    ps_sparse_batch batch;
    feature *row; /* one row's features, ps_sparse_row_features_max of them */
    char *text;   /* TEXT_BYTES */
};

int ps_liblinear_export_new(ps_data_format format, ps_liblinear_export **out, ps_error *err)
{
    *out = NULL;
    if (!ps_sparse_format_ok(format))
        return ps_error_set(err, PS_EINVAL, "liblinear export: not a sparse format (%d)",
                            (int)format);
    ps_liblinear_export *x = calloc(1, sizeof *x);
    if (x == NULL)
        return ps_error_set(err, PS_ENOMEM, "out of memory for a liblinear export");
    x->format = format;
    size_t row_max = ps_sparse_row_features_max(format);
    /* a libsvm64 row may hold 256 k features: the batch must take one */
    size_t nnz = BATCH_ROWS * PS_CRITEO_FIELDS;
    if (nnz < row_max)
        nnz = row_max;
    int rc = ps_keymap_new(0, &x->keys, err);
    if (rc == 0)
        rc = ps_sparse_batch_init(&x->batch, format, BATCH_ROWS, nnz, err);
    if (rc == 0) {
        x->row = malloc(row_max * sizeof *x->row);
        x->text = malloc(TEXT_BYTES);
        if (x->row == NULL || x->text == NULL)
            rc = ps_error_set(err, PS_ENOMEM, "out of memory for a liblinear export");
    }
    if (rc != 0) {
        ps_liblinear_export_destroy(&x);
        return rc;
    }
    *out = x;
    return 0;
}

const ps_keymap *ps_liblinear_export_keys(const ps_liblinear_export *x)
{
    return x->keys;
}

void ps_liblinear_export_destroy(ps_liblinear_export **xp)
{
    if (xp == NULL || *xp == NULL)
        return;
    ps_liblinear_export *x = *xp;
    ps_keymap_destroy(&x->keys);
    ps_sparse_batch_fini(&x->batch);
    free(x->seen);
    free(x->row);
    free(x->text);
    free(x);
    *xp = NULL;
}

/* ---- the output file ---- */

/* Written under a temporary name beside path's target (path, or where its
 * symbolic links lead: report_file.h), renamed over it when done. */
typedef struct out_file {
    const char *path;
    char target[PATH_MAX];
    char tmp[PATH_MAX];
    FILE *f;
    size_t used; /* bytes of x->text not yet written */
} out_file;

static int out_open(out_file *o, const char *path, ps_error *err)
{
    o->path = path;
    o->f = NULL;
    o->used = 0;
    o->tmp[0] = '\0';
    int rc = ps_report_file_target(path, o->target, sizeof o->target, err);
    if (rc != 0)
        return rc;
    if (snprintf(o->tmp, sizeof o->tmp, "%s.XXXXXX", o->target) >= (int)sizeof o->tmp) {
        o->tmp[0] = '\0';
        return ps_error_set(err, PS_EIO, "%s: path too long", path);
    }
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        int e = errno;
        o->tmp[0] = '\0';
        return ps_error_set(err, PS_EIO, "%s: %s", path, strerror(e));
    }
    /* mkstemp makes it 0600; the final file gets what open(2) would give */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || (o->f = fdopen(fd, "wb")) == NULL) {
        int e = errno;
        close(fd);
        unlink(o->tmp);
        o->tmp[0] = '\0';
        return ps_error_set(err, PS_EIO, "%s: %s", path, strerror(e));
    }
    return 0;
}

static int out_flush(out_file *o, const char *text, ps_error *err)
{
    if (o->used > 0 && fwrite(text, 1, o->used, o->f) != o->used)
        return ps_error_set(err, PS_EIO, "%s: %s", o->path, strerror(errno));
    o->used = 0;
    return 0;
}

/* Closes o; renames the file into place when keep and all went well, else
 * removes it. rc: the error so far (0 when none); returns the final one. */
static int out_close(out_file *o, bool keep, int rc, ps_error *err)
{
    if (o->f != NULL) {
        bool bad = ferror(o->f) != 0;
        int e = errno;
        if (fclose(o->f) != 0 && !bad) {
            bad = true;
            e = errno;
        }
        o->f = NULL;
        if (bad && rc == 0)
            rc = ps_error_set(err, PS_EIO, "%s: %s", o->path, strerror(e));
    }
    if (o->tmp[0] == '\0')
        return rc;
    if (keep && rc == 0 && rename(o->tmp, o->target) != 0)
        rc = ps_error_set(err, PS_EIO, "%s: %s", o->path, strerror(errno));
    if (!keep || rc != 0)
        unlink(o->tmp);
    o->tmp[0] = '\0';
    return rc;
}

/* ---- rows ---- */

/* Writes v in decimal at p; returns the end. */
static char *put_u32(char *p, uint32_t v)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *p++ = digits[--n];
    return p;
}

static int by_index(const void *a, const void *b)
{
    uint32_t x = ((const feature *)a)->index, y = ((const feature *)b)->index;
    return (x > y) - (x < y);
}

/* Sorts f[0..n) by index: insertion sort for criteo's at most 39 (qsort's
 * calls cost more there), qsort beyond. */
static void sort_features(feature *f, size_t n)
{
    if (n > 48) {
        qsort(f, n, sizeof *f, by_index);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        feature t = f[i];
        size_t j = i;
        while (j > 0 && f[j - 1].index > t.index) {
            f[j] = f[j - 1];
            j--;
        }
        f[j] = t;
    }
}

/* Numbers key, counting it for this file; *index its number. */
static int number_key(ps_liblinear_export *x, uint64_t key, ps_liblinear_stats *st, uint32_t *index,
                      ps_error *err)
{
    bool added;
    int rc = ps_keymap_index(x->keys, key, index, &added, err);
    if (rc != 0)
        return rc;
    if (*index >= x->seen_cap) {
        size_t cap = x->seen_cap == 0 ? 1024 : x->seen_cap * 2;
        uint32_t *seen = realloc(x->seen, cap * sizeof *seen);
        if (seen == NULL)
            return ps_error_set(err, PS_ENOMEM, "out of memory for %zu keys", cap);
        memset(seen + x->seen_cap, 0, (cap - x->seen_cap) * sizeof *seen);
        x->seen = seen;
        x->seen_cap = cap;
    }
    if (x->seen[*index] != x->files) {
        x->seen[*index] = x->files;
        st->keys++;
        st->new_keys += added;
    }
    return 0;
}

/* Writes row r of the batch to o. */
static int write_row(ps_liblinear_export *x, size_t r, out_file *o, ps_liblinear_stats *st,
                     ps_error *err)
{
    const ps_sparse_batch *b = &x->batch;
    size_t lo = b->offsets[r], n = b->offsets[r + 1] - lo;
    for (size_t i = 0; i < n; i++) {
        int rc = number_key(x, b->keys[lo + i], st, &x->row[i].index, err);
        if (rc != 0)
            return rc;
        x->row[i].value = b->values != NULL ? b->values[lo + i] : 1.0f;
    }
    sort_features(x->row, n);
    if (o->used + FEATURE_TEXT > TEXT_BYTES) {
        int rc = out_flush(o, x->text, err);
        if (rc != 0)
            return rc;
    }
    bool positive = b->labels[r] != 0.0f;
    x->text[o->used++] = positive ? '1' : '0';
    st->positives += positive;
    for (size_t i = 0; i < n;) {
        /* a key twice in a row is one feature of the summed value */
        feature f = x->row[i++];
        while (i < n && x->row[i].index == f.index)
            f.value += x->row[i++].value;
        if (o->used + FEATURE_TEXT > TEXT_BYTES) {
            int rc = out_flush(o, x->text, err);
            if (rc != 0)
                return rc;
        }
        char *p = x->text + o->used;
        *p++ = ' ';
        p = put_u32(p, f.index);
        *p++ = ':';
        if (f.value == 1.0f)
            *p++ = '1';
        else
            p += snprintf(p, FEATURE_TEXT - 13, "%.9g", (double)f.value);
        o->used = (size_t)(p - x->text);
        st->features++;
    }
    x->text[o->used++] = '\n';
    return 0;
}

int ps_liblinear_export_file(ps_liblinear_export *x, const char *in, const char *out,
                             const volatile sig_atomic_t *stop, ps_liblinear_stats *st,
                             ps_error *err)
{
    memset(st, 0, sizeof *st);
    double t0 = ps_clock_s();
    if (x->files == UINT32_MAX)
        return ps_error_set(err, PS_ERANGE, "%s: too many files for one export", in);
    x->files++;
    ps_sparse_stream *s;
    int rc = ps_sparse_stream_open(in, x->format, PS_SHARD_STRIDE, 0, 1, stop, &s, err);
    if (rc != 0)
        return rc;
    out_file o;
    rc = out_open(&o, out, err);
    while (rc == 0) {
        size_t n;
        rc = ps_sparse_stream_next(s, BATCH_ROWS, &x->batch, &n, err);
        if (rc != 0 || n == 0)
            break;
        for (size_t r = 0; r < n && rc == 0; r++)
            rc = write_row(x, r, &o, st, err);
        st->rows += n;
    }
    if (rc == 0)
        rc = out_flush(&o, x->text, err);
    rc = out_close(&o, true, rc, err);
    ps_sparse_stream_close(&s);
    st->seconds = ps_clock_s() - t0;
    return rc;
}
