/* output.c — the final model as NumPy .npy files plus manifest.json, the
 * run's summary and training curves (ps_train_result_write_json and
 * ps_train_result_write_curves of trainer.h, in the formats of report_summary.h and
 * report_curves.h), and the write-to-temporary-then-rename helper they share. */
#include "output.h"

#include "report_curves.h"
#include "report_file.h"
#include "psworker.h"
#include "report_plan.h"
#include "trainer.h"
#include "util.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NPY_ALIGN 64
/* a tensor's file name: its name, "_", an index and ".npy" */
#define TENSOR_FILE_MAX (PS_TENSOR_NAME_MAX + 32)

/* the report formats hold what the job and the wire allow */
_Static_assert(PS_REPORT_NAME_MAX >= PS_JOB_NAME_MAX, "job name");
_Static_assert(PS_REPORT_ENDPOINT_MAX >= PS_ENDPOINT_MAX, "endpoint");
_Static_assert(PS_REPORT_SERVERS_MAX >= PS_MAX_SHARDS, "servers");
_Static_assert(PS_REPORT_PATH_MAX >= PS_PATH_MAX, "output folder");
_Static_assert(PS_REPORT_RANKS_MAX >= PS_MAX_WORKERS, "ranks");

int ps_output_mkdirs(const char *dir, ps_error *err)
{
    char buf[PATH_MAX];
    if (!ps_strlcpy(buf, dir, sizeof buf))
        return ps_error_set(err, PS_EIO, "%s: path too long", dir);
    size_t len = strlen(buf);
    if (len == 0)
        return ps_error_set(err, PS_EIO, "an empty folder name");
    /* make each prefix that ends at a '/', then the whole path */
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            return ps_error_set(err, PS_EIO, "%s: %s", buf, strerror(e));
        }
        buf[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ps_error_set(err, PS_EIO, "%s: not a folder", dir);
    return 0;
}

/* ---- .npy ---- */

typedef struct npy_args {
    const float *data;
    const uint64_t *shape;
    uint32_t ndims;
    size_t count;
} npy_args;

/* A .npy v1.0 header of C-order data of type descr ("<f4", "<u8") and the
 * given shape, padded so the data start at a multiple of NPY_ALIGN and, when
 * fixed, as long as the header of any shape whose numbers have 20 digits
 * (a header written before the count is known, then rewritten in place). */
static int npy_header(FILE *f, const char *descr, const uint64_t *shape, uint32_t ndims, bool fixed)
{
    char dict[256];
    int n =
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (uint32_t i = 0; i < ndims; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, i == 0 ? "%llu" : ", %llu",
                      (unsigned long long)shape[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", ndims == 1 ? "," : "");
    if (n < 0 || (size_t)n >= sizeof dict - 1)
        return PS_EINVAL;
    /* magic (6) + version (2) + header length (2) + dict + spaces + '\n' */
    size_t total = 10 + (fixed ? (size_t)n + ndims * 20 : (size_t)n) + 1;
    total = (total + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    size_t header_len = total - 10;
    unsigned char pre[10] = {0x93,
                             'N',
                             'U',
                             'M',
                             'P',
                             'Y',
                             1,
                             0,
                             (unsigned char)(header_len & 0xff),
                             (unsigned char)(header_len >> 8)};
    fwrite(pre, 1, sizeof pre, f);
    fwrite(dict, 1, (size_t)n, f);
    for (size_t i = 10 + (size_t)n; i < total - 1; i++)
        fputc(' ', f);
    fputc('\n', f);
    return ferror(f) ? PS_EIO : 0;
}

/* Writes n items of `size` bytes (4 or 8) little-endian. */
static int npy_data(FILE *f, const void *data, size_t size, size_t n)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (n > 0 && fwrite(data, size, n, f) != n)
        return PS_EIO;
#else
    const unsigned char *p = data;
    for (size_t i = 0; i < n * size; i += size)
        for (size_t b = size; b-- > 0;)
            fputc(p[i + b], f);
#endif
    return ferror(f) ? PS_EIO : 0;
}

static int npy_fill(FILE *f, const void *arg)
{
    const npy_args *a = arg;
    int rc = npy_header(f, "<f4", a->shape, a->ndims, false);
    return rc != 0 ? rc : npy_data(f, a->data, sizeof(float), a->count);
}

typedef struct npy_f64_args {
    const double *data;
    uint64_t n;
} npy_f64_args;

static int npy_f64_fill(FILE *f, const void *arg)
{
    const npy_f64_args *a = arg;
    int rc = npy_header(f, "<f8", &a->n, 1, false);
    return rc != 0 ? rc : npy_data(f, a->data, sizeof(double), (size_t)a->n);
}

int ps_output_npy_rows_begin(ps_npy_rows *w, const char *path, ps_npy_type type, uint64_t cols,
                             ps_error *err)
{
    memset(w, 0, sizeof *w);
    w->type = type;
    w->cols = cols;
    int rc = ps_report_file_begin(&w->file, path, err);
    if (rc != 0)
        return rc;
    uint64_t shape[2] = {0, cols};
    rc = npy_header(w->file.f, type == PS_NPY_U64 ? "<u8" : "<f4", shape, cols > 0 ? 2 : 1, true);
    if (rc != 0) {
        ps_report_file_abort(&w->file);
        return ps_error_set(err, rc, "%s: %s", path, ps_strerror(rc));
    }
    return 0;
}

int ps_output_npy_rows_append(ps_npy_rows *w, const void *data, size_t rows, ps_error *err)
{
    size_t per = w->cols > 0 ? (size_t)w->cols : 1;
    int rc = npy_data(w->file.f, data, w->type == PS_NPY_U64 ? 8 : 4, rows * per);
    if (rc != 0)
        return ps_error_set(err, rc, "%s: %s", w->file.path, strerror(errno ? errno : EIO));
    w->rows += rows;
    return 0;
}

int ps_output_npy_rows_end(ps_npy_rows *w, ps_error *err)
{
    uint64_t shape[2] = {w->rows, w->cols};
    int rc = fseek(w->file.f, 0, SEEK_SET) == 0
                 ? npy_header(w->file.f, w->type == PS_NPY_U64 ? "<u8" : "<f4", shape,
                              w->cols > 0 ? 2 : 1, true)
                 : PS_EIO;
    if (rc != 0) {
        ps_error_set(err, rc, "%s: %s", w->file.path, strerror(errno ? errno : EIO));
        ps_report_file_abort(&w->file);
        return rc;
    }
    return ps_report_file_commit(&w->file, err);
}

void ps_output_npy_rows_abort(ps_npy_rows *w)
{
    ps_report_file_abort(&w->file);
}

/* Product of the shape; false on overflow. */
static bool shape_count(const uint64_t *shape, uint32_t ndims, size_t *count)
{
    size_t c = 1;
    for (uint32_t i = 0; i < ndims; i++) {
        if (shape[i] > SIZE_MAX || !ps_mul_ok(c, (size_t)shape[i], &c))
            return false;
    }
    *count = c;
    return true;
}

int ps_output_npy_write(const char *path, const float *data, const uint64_t *shape, uint32_t ndims,
                        ps_error *err)
{
    npy_args a = {.data = data, .shape = shape, .ndims = ndims};
    if (ndims > PS_MAX_DIMS || !shape_count(shape, ndims, &a.count))
        return ps_error_set(err, PS_EINVAL, "%s: bad tensor shape", path);
    return ps_report_file_replace(path, npy_fill, &a, err);
}

/* ---- the model folder ---- */

typedef struct manifest_args {
    const char *job;
    uint64_t version;
    uint64_t num_params;
    const ps_tensor_info *tensors;
    size_t ntensors;
    char (*files)[TENSOR_FILE_MAX];
    const ps_output_table *tables;
    size_t ntables;
    const ps_output_norm *norm;
    const ps_report_unfinished *unfinished; /* NULL: not known, no key */
    size_t nunfinished;
} manifest_args;

/* Adds key: value to obj (json-c takes value); false when memory ran out. */
static bool manifest_put(json_object *obj, const char *key, json_object *value)
{
    if (value == NULL)
        return false;
    if (json_object_object_add(obj, key, value) != 0) {
        json_object_put(value);
        return false;
    }
    return true;
}

static json_object *manifest_tensor(const ps_tensor_info *t, const char *file)
{
    json_object *o = json_object_new_object(), *shape = json_object_new_array();
    bool ok = o != NULL && shape != NULL;
    for (uint32_t k = 0; ok && k < t->ndims; k++) {
        json_object *d = json_object_new_uint64(t->shape[k]);
        ok = d != NULL && json_object_array_add(shape, d) == 0;
        if (!ok)
            json_object_put(d);
    }
    ok = ok && manifest_put(o, "name", json_object_new_string(t->name)) &&
         manifest_put(o, "file", json_object_new_string(file));
    if (ok && manifest_put(o, "shape", shape))
        shape = NULL; /* o owns it now */
    else
        ok = false;
    ok = ok && manifest_put(o, "offset", json_object_new_uint64(t->offset));
    json_object_put(shape);
    if (!ok) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static json_object *manifest_table(const ps_output_table *t)
{
    json_object *o = json_object_new_object();
    bool ok = o != NULL && manifest_put(o, "name", json_object_new_string(t->name)) &&
              manifest_put(o, "dim", json_object_new_uint64(t->dim)) &&
              manifest_put(o, "rows", json_object_new_uint64(t->rows)) &&
              manifest_put(o, "keys_file", json_object_new_string(t->keys_file)) &&
              manifest_put(o, "rows_file", json_object_new_string(t->rows_file));
    if (!ok) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* Adds the list of n items made by make(items + i) as key; false when
 * memory ran out. */
static bool manifest_list(json_object *m, const char *key, size_t n,
                          json_object *(*make)(const void *arg, size_t i), const void *arg)
{
    json_object *list = json_object_new_array();
    bool ok = list != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        json_object *t = make(arg, i);
        ok = t != NULL && json_object_array_add(list, t) == 0;
        if (!ok)
            json_object_put(t);
    }
    if (ok && manifest_put(m, key, list))
        return true;
    json_object_put(list);
    return false;
}

static json_object *unfinished_at(const void *arg, size_t i)
{
    const manifest_args *a = arg;
    const ps_report_unfinished *u = &a->unfinished[i];
    json_object *o = json_object_new_object();
    bool ok = o != NULL && manifest_put(o, "rank", json_object_new_uint64(u->rank)) &&
              manifest_put(o, "pushes", json_object_new_uint64(u->pushes)) &&
              manifest_put(o, "expected", json_object_new_uint64(u->expected));
    if (!ok) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static json_object *tensor_at(const void *arg, size_t i)
{
    const manifest_args *a = arg;
    return manifest_tensor(&a->tensors[i], a->files[i]);
}

static json_object *table_at(const void *arg, size_t i)
{
    const manifest_args *a = arg;
    return manifest_table(&a->tables[i]);
}

static int manifest_fill(FILE *f, const void *arg)
{
    const manifest_args *a = arg;
    json_object *m = json_object_new_object();
    bool ok =
        m != NULL && manifest_put(m, "job", json_object_new_string(a->job)) &&
        manifest_put(m, "version", json_object_new_uint64(a->version)) &&
        manifest_put(m, "num_params", json_object_new_uint64(a->num_params)) &&
        manifest_list(m, "tensors", a->ntensors, tensor_at, a) &&
        (a->ntables == 0 || manifest_list(m, "tables", a->ntables, table_at, a)) &&
        (a->unfinished == NULL || manifest_list(m, "unfinished", a->nunfinished, unfinished_at, a));
    if (ok && a->norm != NULL) {
        json_object *n = json_object_new_object();
        ok = n != NULL && manifest_put(n, "kind", json_object_new_string("standard")) &&
             manifest_put(n, "features", json_object_new_uint64(a->norm->features)) &&
             manifest_put(n, "mean_file", json_object_new_string(PS_OUTPUT_NORM_MEAN)) &&
             manifest_put(n, "std_file", json_object_new_string(PS_OUTPUT_NORM_STD));
        if (ok)
            ok = manifest_put(m, "normalize", n);
        else
            json_object_put(n);
    }
    const char *text = ok ? json_object_to_json_string_ext(m, JSON_C_TO_STRING_SPACED |
                                                                  JSON_C_TO_STRING_NOSLASHESCAPE)
                          : NULL;
    int rc = text == NULL ? PS_ENOMEM : fprintf(f, "%s\n", text) < 0 ? PS_EIO : 0;
    json_object_put(m);
    return rc;
}

/* A file name for tensor i: its name with anything but [A-Za-z0-9_.-]
 * replaced by '_', made unique against the names before it. */
static void tensor_file_name(const ps_tensor_info *tensors, size_t i,
                             char (*files)[TENSOR_FILE_MAX])
{
    char base[PS_TENSOR_NAME_MAX];
    size_t n = 0;
    for (const char *s = tensors[i].name; *s && n < sizeof base - 1; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || (c == '.' && n > 0);
        base[n++] = ok ? c : '_';
    }
    base[n] = '\0';
    if (n == 0)
        snprintf(base, sizeof base, "tensor%zu", i);
    snprintf(files[i], sizeof files[i], "%s.npy", base);
    for (size_t k = 0; k < i; k++) {
        if (strcmp(files[k], files[i]) == 0) {
            snprintf(files[i], sizeof files[i], "%s_%zu.npy", base, i);
            break;
        }
    }
}

int ps_output_model_check(const char *dir, const ps_tensor_info *tensors, size_t ntensors,
                          bool norm, bool table, ps_error *err)
{
    if (ntensors > PS_MAX_TENSORS)
        return ps_error_set(err, PS_EINVAL, "%zu tensors, at most %d", ntensors, PS_MAX_TENSORS);
    const char *fixed[5] = {"manifest.json"};
    size_t n = 1;
    if (norm) {
        fixed[n++] = PS_OUTPUT_NORM_MEAN;
        fixed[n++] = PS_OUTPUT_NORM_STD;
    }
    if (table) {
        fixed[n++] = PS_OUTPUT_TABLE_KEYS;
        fixed[n++] = PS_OUTPUT_TABLE_ROWS;
    }
    char files[PS_MAX_TENSORS][TENSOR_FILE_MAX];
    char path[PATH_MAX];
    for (size_t i = 0; i < n + ntensors; i++) {
        const char *name = i < n ? fixed[i] : NULL;
        if (name == NULL) {
            tensor_file_name(tensors, i - n, files);
            name = files[i - n];
        }
        if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
            return ps_error_set(err, PS_EINVAL, "%s: path too long", dir);
        int rc = ps_report_file_check(path, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int ps_output_model_write(const char *dir, const char *job, uint64_t version, const float *theta,
                          uint64_t num_params, const ps_tensor_info *tensors, size_t ntensors,
                          const ps_output_table *tables, size_t ntables, const ps_output_norm *norm,
                          const ps_report_unfinished *unfinished, size_t nunfinished, ps_error *err)
{
    if (ntensors > PS_MAX_TENSORS)
        return ps_error_set(err, PS_EINVAL, "%zu tensors, at most %d", ntensors, PS_MAX_TENSORS);
    for (size_t i = 0; i < ntensors; i++) {
        size_t count;
        const ps_tensor_info *t = &tensors[i];
        if (t->ndims > PS_MAX_DIMS || !shape_count(t->shape, t->ndims, &count) ||
            t->offset > num_params || count > num_params - t->offset)
            return ps_error_set(err, PS_EINVAL, "tensor %s lies outside θ of %llu parameters",
                                t->name, (unsigned long long)num_params);
    }
    int rc = ps_output_mkdirs(dir, err);
    if (rc != 0)
        return rc;
    char files[PS_MAX_TENSORS][TENSOR_FILE_MAX];
    char path[PATH_MAX];
    for (size_t i = 0; i < ntensors; i++) {
        tensor_file_name(tensors, i, files);
        if (snprintf(path, sizeof path, "%s/%s", dir, files[i]) >= (int)sizeof path)
            return ps_error_set(err, PS_EIO, "%s: path too long", dir);
        rc = ps_output_npy_write(path, theta + tensors[i].offset, tensors[i].shape,
                                 tensors[i].ndims, err);
        if (rc != 0)
            return rc;
    }
    for (int k = 0; norm != NULL && k < 2; k++) {
        npy_f64_args na = {k == 0 ? norm->mean : norm->std, norm->features};
        if (snprintf(path, sizeof path, "%s/%s", dir,
                     k == 0 ? PS_OUTPUT_NORM_MEAN : PS_OUTPUT_NORM_STD) >= (int)sizeof path)
            return ps_error_set(err, PS_EIO, "%s: path too long", dir);
        rc = ps_report_file_replace(path, npy_f64_fill, &na, err);
        if (rc != 0)
            return rc;
    }
    if (snprintf(path, sizeof path, "%s/manifest.json", dir) >= (int)sizeof path)
        return ps_error_set(err, PS_EIO, "%s: path too long", dir);
    manifest_args a = {job,    version, num_params, tensors,    ntensors,   files,
                       tables, ntables, norm,       unfinished, nunfinished};
    return ps_report_file_replace(path, manifest_fill, &a, err);
}

/* ---- the summary ---- */

int ps_output_summary_write(const ps_report_summary *s, const char *path, ps_error *err)
{
    return ps_report_summary_file_write(path, s, err);
}

/* Copies src into dst, cut to fit (names the trainer gives are short). */
static void summary_copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "?");
}

/* The summary of a run (s owns its curve: ps_report_summary_fini). */
static int summary_of(const ps_train_result *r, const char *job, ps_report_summary *s)
{
    ps_report_summary_init(s);
    const ps_model_metrics *shown = r->has_test ? &r->test : &r->train;
    summary_copy(s->job, sizeof s->job, job);
    summary_copy(s->model, sizeof s->model, r->model);
    summary_copy(s->mode, sizeof s->mode, r->mode);
    summary_copy(s->metric_name, sizeof s->metric_name, r->metric_name);
    summary_copy(s->loss_name, sizeof s->loss_name, r->loss_name);
    s->final_loss = r->final_loss;
    s->has_test = r->has_test;
    if (r->has_test) {
        s->test_metric = r->test.metric;
        s->test_loss = r->test.loss;
    }
    s->metric = shown->metric;
    s->loss = shown->loss;
    s->has_auc = r->has_auc;
    if (r->has_auc) {
        if (r->has_test)
            s->test_auc = r->test.auc;
        s->auc = shown->auc;
        s->train_auc = r->train.auc;
    }
    s->train_metric = r->train.metric;
    s->train_loss = r->train.loss;
    s->train_loss_last_epoch = r->train_loss_last_epoch;
    s->train_samples = r->train_samples;
    s->test_samples = r->test_samples;
    s->epochs = r->epochs;
    s->steps_per_epoch = r->steps_per_epoch;
    s->batch_size = r->batch_size;
    s->pull_s = r->pull_s;
    s->compute_s = r->compute_s;
    s->push_pull_s = r->push_pull_s;
    s->wall_s = r->wall_s;
    s->samples_per_s = r->samples_per_s;
    s->updates = r->updates;
    s->batches = r->batches;
    s->version = r->version;
    s->workers = r->workers;
    s->rank = r->rank;
    s->has_staleness = r->has_server_stats;
    if (r->has_server_stats) {
        s->staleness_max = r->staleness_max;
        s->staleness_mean = r->staleness_mean;
        s->staleness_p99 = r->staleness_p99;
    }
    s->nranks = r->nranks < PS_MAX_WORKERS ? r->nranks : PS_MAX_WORKERS;
    for (uint32_t i = 0; i < s->nranks; i++)
        s->ranks[i] = (ps_report_rank){i, r->rank_clock[i], r->rank_pushes[i], r->rank_dropped[i],
                                       r->rank_rounds[i]};
    s->nunfinished = (uint32_t)ps_train_result_unfinished(r, s->unfinished, PS_REPORT_RANKS_MAX);
    if (r->epoch_train_loss == NULL)
        return 0;
    /* the test figures go with a test set only, as report_summary.h's reader checks */
    return ps_report_summary_curve_add(s, r->rank, r->epoch_every ? r->epoch_every : 1,
                                       r->epoch_points, r->epoch_train_loss,
                                       r->has_test ? r->epoch_test_metric : NULL,
                                       r->has_test && r->has_auc ? r->epoch_test_auc : NULL);
}

size_t ps_train_result_unfinished(const ps_train_result *r, ps_report_unfinished *out, size_t cap)
{
    size_t n = 0;
    if (!r->has_server_stats)
        return 0;
    for (uint32_t i = 0; i < r->nranks && i < PS_MAX_WORKERS && n < cap; i++)
        if (!(r->rank_flags[i] & PS_RANK_FINISHED))
            out[n++] = (ps_report_unfinished){i, r->rank_pushes[i], r->rank_expected[i]};
    return n;
}

int ps_train_result_write_json(const ps_train_result *r, const char *job, const char *path,
                               ps_error *err)
{
    ps_report_summary *s = malloc(sizeof *s); /* large (PS_REPORT_RANKS_MAX ranks) */
    if (s == NULL)
        return ps_error_set(err, PS_ENOMEM, "%s: %s", path, ps_strerror(PS_ENOMEM));
    int rc = summary_of(r, job, s);
    if (rc != 0)
        rc = ps_error_set(err, rc, "%s: %s", path, ps_strerror(rc));
    else
        rc = ps_output_summary_write(s, path, err);
    ps_report_summary_fini(s);
    free(s);
    return rc;
}

int ps_train_result_write_curves(const ps_train_result *r, const char *job, const char *codec,
                                 const char *path, ps_error *err)
{
    ps_report_summary *s = malloc(sizeof *s); /* large (PS_REPORT_RANKS_MAX ranks) */
    if (s == NULL)
        return ps_error_set(err, PS_ENOMEM, "%s: %s", path, ps_strerror(PS_ENOMEM));
    int rc = summary_of(r, job, s);
    if (rc != 0)
        rc = ps_error_set(err, rc, "%s: %s", path, ps_strerror(rc));
    else
        rc = ps_report_curves_file_write(path, s, codec, err);
    ps_report_summary_fini(s);
    free(s);
    return rc;
}
