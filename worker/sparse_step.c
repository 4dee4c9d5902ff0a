/* sparse_step.c — the sparse models' data, steps, evaluation and export for
 * trainer.c (sparse_step.h). Every buffer of a step is allocated at start
 * for a batch of training.batch_size rows; a batch with more features than
 * any before (libsvm64 rows have no fixed count) grows the model's buffers
 * once, outside the steps that fit. */
#include "sparse_step.h"

#include "output.h"
#include "sparse_data.h"
#include "sparse_model.h"
#include "util.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_ROWS  4096 /* rows of a data set evaluated per pull */
#define SCAN_PAGE  4096 /* rows of a table per scan page */
#define CRITEO_NNZ 40   /* features a criteo row can give, rounded up */
#define LIBSVM_NNZ 64   /* features a libsvm64 row is first given room for */

struct ps_sparse_step {
    ps_job job;
    const volatile sig_atomic_t *stop;
    ps_sparse_spec spec;
    ps_sparse_model *model;
    size_t model_rows, model_nnz; /* the model's buffers' sizes */
    uint32_t dim;
    ps_sparse_data *train_all; /* the whole file in memory, until the shard is cut */
    ps_sparse_data *train;     /* this worker's shard in memory, or NULL ... */
    ps_sparse_stream *stream;  /* ... its stream */
    ps_sparse_data *test;
    uint64_t train_rows; /* N: the whole file */
    uint64_t shard_rows;
    uint64_t stream_at;    /* the shard row the stream reads next */
    ps_sparse_batch batch; /* the step's rows */
    ps_sparse_batch skip;  /* a stream's rows read to get somewhere, and evaluation's */
    /* the step's keys (the model's) and rows */
    const uint64_t *keys;
    size_t nkeys;
    float *rows, *grads; /* model_nnz x dim each: a batch has at most as many keys */
    /* evaluation */
    float *scores, *labels; /* a set's rows each */
    size_t scores_cap;
    uint64_t *scan_keys;
    float *scan_rows;
};

int ps_sparse_step_check_job(const ps_job *job, ps_error *err)
{
    if (!ps_sparse_format_ok(job->data.format)) /* ps_job_load refuses it */
        return ps_error_set(
            err, PS_ECONFIG, "%s: model %s reads data.format criteo or libsvm64, not %s", job->path,
            ps_model_type_name(job->model.type), ps_data_format_name(job->data.format));
    if (job->training.local_steps > 1)
        return ps_error_set(err, PS_EUNSUPPORTED,
                            "%s: training.local_steps: local SGD keeps a copy of θ on each worker; "
                            "a sparse model's rows live on the servers only",
                            job->path);
    ps_table_spec specs[PS_MAX_TABLES];
    size_t n = 0;
    if (ps_job_tables(job, specs, PS_MAX_TABLES, &n) != 0 || n != 1)
        return ps_error_set(err, PS_ECONFIG, "%s: model %s has no table psworker knows", job->path,
                            ps_model_type_name(job->model.type));
    return 0;
}

/* Room in the model and the rows for a batch of rows and nnz features. */
static int model_fit(ps_sparse_step *s, size_t rows, size_t nnz, ps_error *err)
{
    if (s->model != NULL && rows <= s->model_rows && nnz <= s->model_nnz)
        return 0;
    rows = rows > s->model_rows ? rows : s->model_rows;
    nnz = nnz > s->model_nnz ? nnz : s->model_nnz;
    ps_sparse_model_destroy(&s->model);
    free(s->rows);
    free(s->grads);
    s->rows = s->grads = NULL;
    int rc = ps_sparse_model_new(&s->spec, rows, nnz, &s->model, err);
    if (rc != 0)
        return rc;
    s->model_rows = rows;
    s->model_nnz = nnz;
    s->dim = ps_sparse_model_dim(s->model);
    size_t floats;
    if (!ps_mul_ok(nnz, s->dim, &floats) || floats > SIZE_MAX / sizeof(float) ||
        (s->rows = malloc(floats * sizeof(float))) == NULL ||
        (s->grads = malloc(floats * sizeof(float))) == NULL)
        return ps_error_set(err, PS_ENOMEM, "out of memory for the rows of a batch of %zu keys",
                            nnz);
    return 0;
}

static int batch_room(ps_sparse_batch *b, ps_data_format format, size_t rows, size_t nnz,
                      ps_error *err)
{
    if (b->row_cap >= rows && b->nnz_cap >= nnz)
        return 0;
    ps_sparse_batch_fini(b);
    return ps_sparse_batch_init(b, format, rows, nnz, err);
}

/* The features a batch of rows is first given room for. */
static size_t nnz_guess(ps_data_format format, size_t rows)
{
    return rows * (format == PS_FORMAT_CRITEO ? CRITEO_NNZ : LIBSVM_NNZ);
}

int ps_sparse_step_new(const ps_job *job, const volatile sig_atomic_t *stop, ps_sparse_step **out,
                       ps_error *err)
{
    *out = NULL;
    int rc = ps_sparse_step_check_job(job, err);
    if (rc != 0)
        return rc;
    ps_sparse_step *s = calloc(1, sizeof *s);
    if (s == NULL)
        return ps_error_set(err, PS_ENOMEM, "out of memory for the sparse model");
    s->job = *job;
    s->stop = stop;
    ps_sparse_spec_from_job(job, &s->spec);
    ps_data_format format = job->data.format;
    size_t b = job->training.batch_size;
    rc = model_fit(s, b, nnz_guess(format, b), err);
    if (rc == 0)
        rc = ps_sparse_batch_init(&s->batch, format, b, nnz_guess(format, b), err);
    if (rc == 0 && job->data.test[0] != '\0')
        rc = ps_sparse_read(job->data.test, format, stop, &s->test, err);
    if (rc == 0 && !job->data.stream) {
        rc = ps_sparse_read(job->data.train, format, stop, &s->train_all, err);
        if (rc == 0)
            s->train_rows = ps_sparse_rows(s->train_all)->rows;
    } else if (rc == 0) { /* the file's rows: every worker's steps per epoch need them */
        ps_sparse_stream *whole = NULL;
        rc = ps_sparse_stream_open(job->data.train, format, PS_SHARD_STRIDE, 0, 1, stop, &whole,
                                   err);
        if (rc == 0)
            s->train_rows = ps_sparse_stream_file_rows(whole);
        ps_sparse_stream_close(&whole);
    }
    if (rc != 0) {
        ps_sparse_step_destroy(&s);
        return rc;
    }
    *out = s;
    return 0;
}

void ps_sparse_step_destroy(ps_sparse_step **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    ps_sparse_step *s = *sp;
    ps_sparse_model_destroy(&s->model);
    ps_sparse_destroy(&s->train_all);
    ps_sparse_destroy(&s->train);
    ps_sparse_destroy(&s->test);
    ps_sparse_stream_close(&s->stream);
    ps_sparse_batch_fini(&s->batch);
    ps_sparse_batch_fini(&s->skip);
    free(s->rows);
    free(s->grads);
    free(s->scores);
    free(s->labels);
    free(s->scan_keys);
    free(s->scan_rows);
    free(s);
    *sp = NULL;
}

uint32_t ps_sparse_step_dim(const ps_sparse_step *s)
{
    return s->dim;
}

uint64_t ps_sparse_step_train_rows(const ps_sparse_step *s)
{
    return s->train_rows;
}

uint64_t ps_sparse_step_test_rows(const ps_sparse_step *s)
{
    return s->test != NULL ? ps_sparse_rows(s->test)->rows : 0;
}

int ps_sparse_step_shard(ps_sparse_step *s, uint32_t rank, uint64_t *rows, ps_error *err)
{
    const ps_job *job = &s->job;
    int rc;
    if (s->train_all != NULL && job->workers == 1) {
        s->train = s->train_all;
        s->train_all = NULL;
    } else if (s->train_all != NULL) {
        rc = ps_sparse_shard(s->train_all, job->data.shard, rank, job->workers, &s->train, err);
        if (rc != 0)
            return rc;
        ps_sparse_destroy(&s->train_all);
    } else {
        rc = ps_sparse_stream_open(job->data.train, job->data.format, job->data.shard, rank,
                                   job->workers, s->stop, &s->stream, err);
        if (rc != 0)
            return rc;
        s->stream_at = 0;
    }
    s->shard_rows =
        s->train != NULL ? ps_sparse_rows(s->train)->rows : ps_sparse_stream_shard_rows(s->stream);
    *rows = s->shard_rows;
    return 0;
}

/* Appends row r of rows src (a data set's view) to batch b, which has room. */
static void batch_append(ps_sparse_batch *b, const ps_sparse_batch *src, size_t r)
{
    size_t at = b->offsets[b->rows], lo = src->offsets[r], n = src->offsets[r + 1] - lo;
    memcpy(b->keys + at, src->keys + lo, n * sizeof *b->keys);
    if (b->values != NULL)
        memcpy(b->values + at, src->values + lo, n * sizeof *b->values);
    b->labels[b->rows] = src->labels[r];
    b->lines[b->rows] = src->lines[r];
    b->offsets[++b->rows] = at + n;
}

/* The batch from the shard in memory: positions [lo, hi). */
static int batch_gather(ps_sparse_step *s, const size_t *perm, uint64_t lo, uint64_t hi,
                        ps_error *err)
{
    const ps_sparse_batch *src = ps_sparse_rows(s->train);
    size_t n = src->rows, nnz = 0;
    for (uint64_t p = lo; p < hi; p++) {
        size_t r = perm != NULL ? perm[p % n] : (size_t)(p % n);
        nnz += src->offsets[r + 1] - src->offsets[r];
    }
    int rc = batch_room(&s->batch, s->job.data.format, (size_t)(hi - lo), nnz, err);
    if (rc != 0)
        return rc;
    s->batch.rows = 0;
    s->batch.offsets[0] = 0;
    for (uint64_t p = lo; p < hi; p++)
        batch_append(&s->batch, src, perm != NULL ? perm[p % n] : (size_t)(p % n));
    return 0;
}

/* Reads the stream's next `want` rows into b, from its start again at the
 * end of the shard. A row too wide for b's features grows b once. */
static int stream_read(ps_sparse_step *s, ps_sparse_batch *b, size_t want, ps_error *err)
{
    size_t got = 0;
    while (got < want) {
        if (s->stream_at == s->shard_rows) {
            int rc = ps_sparse_stream_rewind(s->stream, err);
            if (rc != 0)
                return rc;
            s->stream_at = 0;
        }
        /* what is left of the batch goes in a second part: keep the first */
        ps_sparse_batch part = *b;
        size_t off = b->offsets[got];
        part.rows = 0;
        part.offsets = b->offsets + got;
        part.keys = b->keys + off;
        part.values = b->values != NULL ? b->values + off : NULL;
        part.labels = b->labels + got;
        part.lines = b->lines + got;
        part.row_cap = b->row_cap - got;
        part.nnz_cap = b->nnz_cap - off;
        size_t n = 0, left = want - got;
        uint64_t to_end = s->shard_rows - s->stream_at;
        if (left > to_end)
            left = (size_t)to_end;
        int rc = ps_sparse_stream_next(s->stream, left, &part, &n, err);
        if (rc != 0)
            return rc;
        for (size_t i = 1; i <= n; i++) /* the part's offsets start from 0 */
            part.offsets[i] += off;
        part.offsets[0] = off;
        if (n == 0) { /* the next row wants more features than are left */
            size_t cap = b->nnz_cap * 2;
            ps_sparse_batch wider = {0};
            rc = ps_sparse_batch_init(&wider, s->job.data.format, b->row_cap, cap, err);
            if (rc != 0)
                return rc;
            wider.rows = got;
            memcpy(wider.offsets, b->offsets, (got + 1) * sizeof *b->offsets);
            memcpy(wider.keys, b->keys, off * sizeof *b->keys);
            if (b->values != NULL)
                memcpy(wider.values, b->values, off * sizeof *b->values);
            memcpy(wider.labels, b->labels, got * sizeof *b->labels);
            memcpy(wider.lines, b->lines, got * sizeof *b->lines);
            ps_sparse_batch_fini(b);
            *b = wider;
            continue;
        }
        got += n;
        s->stream_at += n;
        b->rows = got;
    }
    return 0;
}

/* Moves the stream to shard row `row` (rewinding when it is behind). */
static int stream_seek(ps_sparse_step *s, uint64_t row, ps_error *err)
{
    row %= s->shard_rows;
    if (row == s->stream_at)
        return 0;
    if (row < s->stream_at) {
        int rc = ps_sparse_stream_rewind(s->stream, err);
        if (rc != 0)
            return rc;
        s->stream_at = 0;
    }
    size_t b = s->job.training.batch_size;
    int rc = batch_room(&s->skip, s->job.data.format, b, nnz_guess(s->job.data.format, b), err);
    while (rc == 0 && s->stream_at < row) {
        uint64_t left = row - s->stream_at;
        s->skip.rows = 0;
        s->skip.offsets[0] = 0;
        rc = stream_read(s, &s->skip, left < b ? (size_t)left : b, err);
    }
    return rc;
}

int ps_sparse_step_batch(ps_sparse_step *s, const size_t *perm, uint64_t lo, uint64_t hi,
                         ps_error *err)
{
    if (s->train != NULL)
        return batch_gather(s, perm, lo, hi, err);
    int rc = stream_seek(s, lo, err);
    if (rc != 0)
        return rc;
    rc = batch_room(&s->batch, s->job.data.format, (size_t)(hi - lo),
                    nnz_guess(s->job.data.format, (size_t)(hi - lo)), err);
    if (rc != 0)
        return rc;
    s->batch.rows = 0;
    s->batch.offsets[0] = 0;
    return stream_read(s, &s->batch, (size_t)(hi - lo), err);
}

/* The keys of batch b and their rows pulled: s->keys, s->nkeys, s->rows. */
static int keys_pull(ps_sparse_step *s, ps_client *c, const ps_sparse_batch *b, ps_error *err)
{
    int rc = model_fit(s, b->rows, b->offsets[b->rows] - b->offsets[0], err);
    if (rc != 0)
        return rc;
    rc = ps_sparse_model_keys(s->model, b, &s->keys, &s->nkeys);
    if (rc != 0)
        return ps_error_set(err, rc, "the keys of a batch of %zu rows", b->rows);
    rc = ps_client_pull_rows(c, 0, s->keys, s->nkeys, s->rows, s->nkeys * s->dim);
    if (rc != 0)
        return ps_error_set(err, rc, "pull of %zu rows: %s", s->nkeys, ps_client_last_error(c));
    return 0;
}

int ps_sparse_step_pull(ps_sparse_step *s, ps_client *c, ps_error *err)
{
    return keys_pull(s, c, &s->batch, err);
}

int ps_sparse_step_grad(ps_sparse_step *s, float bias, float *grad_bias, double *loss,
                        ps_error *err)
{
    int rc = ps_sparse_model_grad(s->model, &s->batch, s->rows, bias, s->grads, grad_bias, loss);
    if (rc != 0)
        return ps_error_set(err, rc, "gradient of a batch of %zu rows", s->batch.rows);
    /* the rows' gradients go as sums over the batch's examples (the bias's
     * stays a mean, as a dense tensor's): engine_sparse.c says why */
    float rows = (float)s->batch.rows;
    size_t n = s->nkeys * s->dim;
    for (size_t i = 0; i < n; i++)
        s->grads[i] *= rows;
    return 0;
}

int ps_sparse_step_push(ps_sparse_step *s, ps_client *c, uint64_t clock, uint32_t samples,
                        ps_error *err)
{
    int rc =
        ps_client_push_rows(c, 0, clock, s->keys, s->nkeys, s->grads, s->nkeys * s->dim, samples);
    if (rc != 0)
        return ps_error_set(err, rc, "push of %zu rows: %s", s->nkeys, ps_client_last_error(c));
    return 0;
}

size_t ps_sparse_step_keys(const ps_sparse_step *s)
{
    return s->nkeys;
}

/* Room for the scores and labels of n rows. */
static int scores_room(ps_sparse_step *s, size_t n, ps_error *err)
{
    if (n <= s->scores_cap)
        return 0;
    free(s->scores);
    free(s->labels);
    s->scores = malloc(n * sizeof *s->scores);
    s->labels = malloc(n * sizeof *s->labels);
    s->scores_cap = s->scores && s->labels ? n : 0;
    return s->scores_cap ? 0 : ps_error_set(err, PS_ENOMEM, "out of memory for %zu scores", n);
}

/* Scores a slice b of a set into s->scores + at. */
static int eval_slice(ps_sparse_step *s, ps_client *c, const ps_sparse_batch *b, size_t at,
                      float bias, ps_sparse_eval *ev, ps_error *err)
{
    int rc = keys_pull(s, c, b, err);
    if (rc != 0)
        return rc;
    rc = ps_sparse_model_predict(s->model, b, s->rows, bias, s->scores + at, ev);
    if (rc != 0)
        return ps_error_set(err, rc, "scoring %zu rows", b->rows);
    memcpy(s->labels + at, b->labels, b->rows * sizeof *s->labels);
    return 0;
}

/* A window of rows [lo, hi) of a data set in memory, as a batch. */
static ps_sparse_batch window(const ps_sparse_batch *all, size_t lo, size_t hi)
{
    ps_sparse_batch w = *all;
    w.rows = hi - lo;
    w.offsets = all->offsets + lo;
    w.labels = all->labels + lo;
    w.lines = all->lines + lo;
    return w;
}

int ps_sparse_step_eval(ps_sparse_step *s, ps_client *c, bool test, float bias,
                        ps_model_metrics *out, ps_error *err)
{
    const ps_sparse_data *set = test ? s->test : s->train;
    uint64_t n = set != NULL ? ps_sparse_rows(set)->rows : test ? 0 : s->shard_rows;
    if (n == 0)
        return ps_error_set(err, PS_EINVAL, "no rows to evaluate on");
    /* a set in memory keeps every score for its AUC; a stream, which may be
     * larger than the worker's memory, a slice's, and has no AUC */
    int rc = scores_room(s, set != NULL ? (size_t)n : EVAL_ROWS, err);
    if (rc != 0)
        return rc;
    ps_sparse_eval ev = {0};
    if (set != NULL) {
        const ps_sparse_batch *all = ps_sparse_rows(set);
        for (size_t lo = 0; rc == 0 && lo < n; lo += EVAL_ROWS) {
            size_t hi = lo + EVAL_ROWS < n ? lo + EVAL_ROWS : (size_t)n;
            ps_sparse_batch w = window(all, lo, hi);
            rc = eval_slice(s, c, &w, lo, bias, &ev, err);
        }
    } else { /* the stream, once through from its first row, then back */
        uint64_t was = s->stream_at;
        rc = stream_seek(s, 0, err);
        if (rc == 0)
            rc = batch_room(&s->skip, s->job.data.format, EVAL_ROWS,
                            nnz_guess(s->job.data.format, EVAL_ROWS), err);
        for (uint64_t lo = 0; rc == 0 && lo < n; lo += EVAL_ROWS) {
            size_t want = lo + EVAL_ROWS < n ? EVAL_ROWS : (size_t)(n - lo);
            s->skip.rows = 0;
            s->skip.offsets[0] = 0;
            rc = stream_read(s, &s->skip, want, err);
            if (rc == 0)
                rc = eval_slice(s, c, &s->skip, 0, bias, &ev, err);
        }
        if (rc == 0)
            rc = stream_seek(s, was, err);
    }
    if (rc != 0)
        return rc;
    if (set == NULL) {
        out->loss = ev.loss_sum / (double)ev.rows;
        out->metric = (double)ev.correct / (double)ev.rows;
        out->auc = NAN;
        return 0;
    }
    rc = ps_sparse_model_metrics(&ev, s->scores, s->labels, (size_t)n, out);
    if (rc != 0)
        return ps_error_set(err, rc, "the metrics of %llu rows", (unsigned long long)n);
    return 0;
}

int ps_sparse_step_export(ps_sparse_step *s, ps_client *c, const char *dir, ps_output_table *table,
                          ps_error *err)
{
    const char *name;
    uint32_t dim;
    int rc = ps_client_table(c, 0, &name, &dim);
    if (rc != 0 || dim != s->dim)
        return ps_error_set(err, rc ? rc : PS_ESERVER,
                            "the servers' table 0 is not the model's (rows of %u floats)", s->dim);
    if (s->scan_keys == NULL) {
        s->scan_keys = malloc(SCAN_PAGE * sizeof *s->scan_keys);
        s->scan_rows = malloc((size_t)SCAN_PAGE * dim * sizeof *s->scan_rows);
        if (s->scan_keys == NULL || s->scan_rows == NULL)
            return ps_error_set(err, PS_ENOMEM, "out of memory for a page of rows");
    }
    memset(table, 0, sizeof *table);
    ps_strlcpy(table->name, name, sizeof table->name);
    table->dim = dim;
    ps_strlcpy(table->keys_file, PS_OUTPUT_TABLE_KEYS, sizeof table->keys_file);
    ps_strlcpy(table->rows_file, PS_OUTPUT_TABLE_ROWS, sizeof table->rows_file);
    char kpath[PATH_MAX], rpath[PATH_MAX];
    if (snprintf(kpath, sizeof kpath, "%s/%s", dir, table->keys_file) >= (int)sizeof kpath ||
        snprintf(rpath, sizeof rpath, "%s/%s", dir, table->rows_file) >= (int)sizeof rpath)
        return ps_error_set(err, PS_EIO, "%s: path too long", dir);
    ps_npy_rows keys, rows;
    rc = ps_output_npy_rows_begin(&keys, kpath, PS_NPY_U64, 0, err);
    if (rc != 0)
        return rc;
    rc = ps_output_npy_rows_begin(&rows, rpath, PS_NPY_F32, dim, err);
    if (rc != 0) {
        ps_output_npy_rows_abort(&keys);
        return rc;
    }
    for (size_t shard = 0; rc == 0 && shard < ps_client_num_servers(c); shard++) {
        uint64_t cursor = 0;
        do {
            size_t n = 0;
            rc = ps_client_scan_rows(c, 0, shard, cursor, SCAN_PAGE, s->scan_keys, s->scan_rows,
                                     (size_t)SCAN_PAGE * dim, &n, &cursor);
            if (rc != 0) {
                ps_error_set(err, rc, "export of table %s: %s", name, ps_client_last_error(c));
                break;
            }
            rc = ps_output_npy_rows_append(&keys, s->scan_keys, n, err);
            if (rc == 0)
                rc = ps_output_npy_rows_append(&rows, s->scan_rows, n, err);
        } while (rc == 0 && cursor != 0);
    }
    if (rc == 0)
        rc = ps_output_npy_rows_end(&keys, err);
    else
        ps_output_npy_rows_abort(&keys);
    if (rc == 0)
        rc = ps_output_npy_rows_end(&rows, err);
    else
        ps_output_npy_rows_abort(&rows);
    table->rows = keys.rows;
    return rc;
}
