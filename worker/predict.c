/* predict.c — psworker predict (predict.h): the model folder read back
 * (manifest.json, its .npy files, checked against the job's layout), a
 * part's rows scored with the training code's forward pass, and the
 * part's files written (report_predict.h). */
#include "predict.h"

#include "dataset.h"
#include "model.h"
#include "output.h"
#include "report_file.h"
#include "report_predict.h"
#include "row_init.h"
#include "sparse_data.h"
#include "sparse_model.h"
#include "util.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PRED_ROWS 4096 /* rows scored at a time */

/* ---- .npy files, as output.c writes them ---- */

/* Reads path, a .npy of type descr ("<f4", "<f8", "<u8"), C order, of
 * ndims dimensions into *data (the caller frees it) and shape. */
static int npy_read(const char *path, const char *descr, uint32_t ndims, uint64_t *shape,
                    void **data, ps_error *err)
{
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return ps_error_set(err, PS_EDATA, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    unsigned char *buf = malloc(size + 1);
    if (buf == NULL) {
        fclose(f);
        return ps_error_set(err, PS_ENOMEM, "%s: out of memory for %zu bytes", path, size);
    }
    size_t got = fread(buf, 1, size, f);
    fclose(f);
    buf[got] = '\0';
    size_t hlen = 0, hoff = 0;
    if (got < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        free(buf);
        return ps_error_set(err, PS_EDATA, "%s: not a .npy file", path);
    }
    if (buf[6] == 1) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        hoff = 10;
    } else if (got >= 12 && (buf[6] == 2 || buf[6] == 3)) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        hoff = 12;
    }
    if (hoff == 0 || hlen > got - hoff) {
        free(buf);
        return ps_error_set(err, PS_EDATA, "%s: a .npy header cut short", path);
    }
    char header[1024];
    size_t hcopy = hlen < sizeof header - 1 ? hlen : sizeof header - 1;
    memcpy(header, buf + hoff, hcopy);
    header[hcopy] = '\0';
    char want[64];
    snprintf(want, sizeof want, "'descr': '%s'", descr);
    const char *sp = strstr(header, "'shape': (");
    if (strstr(header, want) == NULL || strstr(header, "'fortran_order': False") == NULL ||
        sp == NULL) {
        free(buf);
        return ps_error_set(err, PS_EDATA, "%s: not a C-order array of %s", path, descr);
    }
    sp += strlen("'shape': (");
    uint32_t nd = 0;
    size_t count = 1;
    while (*sp != ')') {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(sp, &end, 10);
        if (end == sp || errno != 0 || nd == ndims || !ps_mul_ok(count, (size_t)v, &count)) {
            free(buf);
            return ps_error_set(err, PS_EDATA, "%s: a shape of %u dimensions expected", path,
                                ndims);
        }
        shape[nd++] = v;
        sp = end;
        while (*sp == ',' || *sp == ' ')
            sp++;
    }
    size_t item = strcmp(descr, "<f4") == 0 ? 4 : 8, bytes;
    if (nd != ndims || !ps_mul_ok(count, item, &bytes) || bytes != got - hoff - hlen) {
        free(buf);
        return ps_error_set(err, PS_EDATA, "%s: %zu bytes of data, not the shape's", path,
                            got - hoff - hlen);
    }
    void *out = malloc(bytes ? bytes : 1);
    if (out == NULL) {
        free(buf);
        return ps_error_set(err, PS_ENOMEM, "%s: out of memory", path);
    }
    memcpy(out, buf + hoff + hlen, bytes); /* this machine is little-endian (output.c) */
    free(buf);
    *data = out;
    return 0;
}

/* ---- the model folder ---- */

typedef struct loaded {
    char dir[PATH_MAX];
    char manifest[PATH_MAX + 16];
    uint64_t version;
    float *theta;
    uint64_t num_params;
    double *mean, *std; /* the training set's statistics, or NULL */
    /* a sparse model's table, its keys sorted (and their rows with them) */
    uint64_t *keys;
    float *rows;
    uint64_t nkeys;
    uint32_t dim;
    ps_row_init init; /* a key the table lacks: the servers' initial row */
} loaded;

static void loaded_fini(loaded *l)
{
    free(l->theta);
    free(l->mean);
    free(l->std);
    free(l->keys);
    free(l->rows);
}

static const char *json_str(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

static bool json_u64(json_object *o, const char *key, uint64_t *out)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return false;
    *out = json_object_get_uint64(v);
    return true;
}

/* dir/file into out; false when too long or file names another folder. */
static bool folder_file(const loaded *l, const char *file, char *out, size_t cap)
{
    return file != NULL && strchr(file, '/') == NULL && strcmp(file, "..") != 0 &&
           snprintf(out, cap, "%s/%s", l->dir, file) < (int)cap;
}

static void shape_text(const uint64_t *shape, uint32_t ndims, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "[");
    for (uint32_t i = 0; i < ndims && n < cap; i++)
        n +=
            (size_t)snprintf(out + n, cap - n, i ? ", %llu" : "%llu", (unsigned long long)shape[i]);
    if (n < cap)
        snprintf(out + n, cap - n, "]");
}

/* The manifest's entry of tensor `name`, read into θ at t's offset. */
static int tensor_load(loaded *l, json_object *list, const ps_tensor_info *t, ps_error *err)
{
    json_object *entry = NULL;
    size_t n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
    for (size_t i = 0; i < n && entry == NULL; i++) {
        json_object *e = json_object_array_get_idx(list, i);
        const char *name = json_str(e, "name");
        if (name != NULL && strcmp(name, t->name) == 0)
            entry = e;
    }
    if (entry == NULL)
        return ps_error_set(err, PS_EDATA, "%s: no tensor %s, which the job's model has",
                            l->manifest, t->name);
    char path[PATH_MAX + 64];
    if (!folder_file(l, json_str(entry, "file"), path, sizeof path))
        return ps_error_set(err, PS_EDATA, "%s: tensor %s has no file in the folder", l->manifest,
                            t->name);
    uint64_t shape[PS_MAX_DIMS] = {0};
    void *data;
    int rc = npy_read(path, "<f4", t->ndims, shape, &data, err);
    if (rc == PS_EDATA && t->ndims > 0) { /* a shape of other dimensions: say which */
        uint64_t got[PS_MAX_DIMS];
        for (uint32_t nd = 1; nd <= PS_MAX_DIMS; nd++) {
            ps_error e2;
            if (nd != t->ndims && npy_read(path, "<f4", nd, got, &data, &e2) == 0) {
                free(data);
                char a[96], b[96];
                shape_text(got, nd, a, sizeof a);
                shape_text(t->shape, t->ndims, b, sizeof b);
                return ps_error_set(err, PS_EDATA, "%s: tensor %s has shape %s, the job's model %s",
                                    path, t->name, a, b);
            }
        }
    }
    if (rc != 0)
        return rc;
    if (memcmp(shape, t->shape, t->ndims * sizeof *shape) != 0) {
        free(data);
        char a[96], b[96];
        shape_text(shape, t->ndims, a, sizeof a);
        shape_text(t->shape, t->ndims, b, sizeof b);
        return ps_error_set(err, PS_EDATA, "%s: tensor %s has shape %s, the job's model %s", path,
                            t->name, a, b);
    }
    size_t count = 1;
    for (uint32_t k = 0; k < t->ndims; k++)
        count *= (size_t)t->shape[k];
    memcpy(l->theta + t->offset, data, count * sizeof(float));
    free(data);
    return 0;
}

static int norm_load(loaded *l, json_object *m, uint64_t features, ps_error *err)
{
    json_object *norm;
    if (!json_object_object_get_ex(m, "normalize", &norm))
        return ps_error_set(err, PS_EDATA,
                            "%s: the job standardises its data (data.normalize: standard) but "
                            "the model has no training-set statistics; train it again",
                            l->manifest);
    uint64_t f = 0;
    char path[PATH_MAX + 64];
    if (!json_u64(norm, "features", &f) || f != features)
        return ps_error_set(err, PS_EDATA, "%s: normalize is not of %llu features", l->manifest,
                            (unsigned long long)features);
    for (int k = 0; k < 2; k++) {
        uint64_t shape[1];
        void *data;
        if (!folder_file(l, json_str(norm, k == 0 ? "mean_file" : "std_file"), path, sizeof path))
            return ps_error_set(err, PS_EDATA, "%s: normalize names no file", l->manifest);
        int rc = npy_read(path, "<f8", 1, shape, &data, err);
        if (rc != 0)
            return rc;
        if (shape[0] != features) {
            free(data);
            return ps_error_set(err, PS_EDATA, "%s: %llu values, not %llu", path,
                                (unsigned long long)shape[0], (unsigned long long)features);
        }
        *(k == 0 ? &l->mean : &l->std) = data;
    }
    return 0;
}

static const uint64_t *sort_keys;
static int by_key(const void *a, const void *b)
{
    uint64_t x = sort_keys[*(const size_t *)a], y = sort_keys[*(const size_t *)b];
    return x < y ? -1 : x > y;
}

/* The sparse table: keys.npy and rows.npy, sorted by key for lookups. */
static int table_load(loaded *l, json_object *m, uint32_t dim, ps_error *err)
{
    json_object *tables, *t;
    if (!json_object_object_get_ex(m, "tables", &tables) ||
        !json_object_is_type(tables, json_type_array) || json_object_array_length(tables) != 1)
        return ps_error_set(err, PS_EDATA, "%s: no table, which a sparse model has", l->manifest);
    t = json_object_array_get_idx(tables, 0);
    uint64_t got_dim = 0;
    if (!json_u64(t, "dim", &got_dim) || got_dim != dim)
        return ps_error_set(err, PS_EDATA, "%s: the table's rows are of %llu floats, the job's %u",
                            l->manifest, (unsigned long long)got_dim, dim);
    char kpath[PATH_MAX + 64], rpath[PATH_MAX + 64];
    if (!folder_file(l, json_str(t, "keys_file"), kpath, sizeof kpath) ||
        !folder_file(l, json_str(t, "rows_file"), rpath, sizeof rpath))
        return ps_error_set(err, PS_EDATA, "%s: the table names no files", l->manifest);
    uint64_t ks[1], rs[2];
    void *keys, *rows;
    int rc = npy_read(kpath, "<u8", 1, ks, &keys, err);
    if (rc != 0)
        return rc;
    rc = npy_read(rpath, "<f4", 2, rs, &rows, err);
    if (rc != 0) {
        free(keys);
        return rc;
    }
    if (rs[0] != ks[0] || rs[1] != dim) {
        free(keys);
        free(rows);
        return ps_error_set(err, PS_EDATA, "%s: %llu x %llu rows for %llu keys", rpath,
                            (unsigned long long)rs[0], (unsigned long long)rs[1],
                            (unsigned long long)ks[0]);
    }
    size_t n = (size_t)ks[0];
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    l->keys = malloc((n ? n : 1) * sizeof *l->keys);
    l->rows = malloc((n ? n : 1) * dim * sizeof *l->rows);
    if (idx == NULL || l->keys == NULL || l->rows == NULL) {
        free(idx);
        free(keys);
        free(rows);
        return ps_error_set(err, PS_ENOMEM, "out of memory for a table of %zu rows", n);
    }
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    sort_keys = keys;
    qsort(idx, n, sizeof *idx, by_key);
    for (size_t i = 0; i < n; i++) {
        l->keys[i] = ((const uint64_t *)keys)[idx[i]];
        memcpy(l->rows + i * dim, (const float *)rows + idx[i] * dim, dim * sizeof(float));
    }
    free(idx);
    free(keys);
    free(rows);
    l->nkeys = n;
    l->dim = dim;
    return 0;
}

/* The row of key, or NULL when the table has none (never written, not
 * admitted or evicted: the servers give such a key its initial row). */
static const float *table_row(const loaded *l, uint64_t key)
{
    size_t lo = 0, hi = (size_t)l->nkeys;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->nkeys && l->keys[lo] == key ? l->rows + lo * l->dim : NULL;
}

static int model_load(const ps_job *job, const char *dir, uint32_t sparse_dim, loaded *l,
                      ps_error *err)
{
    memset(l, 0, sizeof *l);
    if (dir[0] == '\0')
        return ps_error_set(err, PS_EDATA, "%s: the job has no output folder to read a model from",
                            job->path);
    snprintf(l->dir, sizeof l->dir, "%s", dir);
    snprintf(l->manifest, sizeof l->manifest, "%s/manifest.json", dir);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ps_error_set(err, PS_EIO, "%s: no model folder (train the job first): %s", dir,
                            errno ? strerror(errno) : "not a folder");
    FILE *f = fopen(l->manifest, "r");
    if (f == NULL)
        return ps_error_set(err, PS_EIO, "%s: %s", l->manifest, strerror(errno));
    fclose(f);
    json_object *m = json_object_from_file(l->manifest);
    if (m == NULL || !json_object_is_type(m, json_type_object)) {
        json_object_put(m);
        return ps_error_set(err, PS_EDATA, "%s: not a JSON object", l->manifest);
    }
    ps_tensor_info tensors[PS_MAX_TENSORS];
    size_t n = 0;
    uint64_t num_params = 0;
    const char *name = json_str(m, "job");
    json_object *list = NULL;
    int rc = 0;
    if (name == NULL || !json_u64(m, "version", &l->version) ||
        !json_u64(m, "num_params", &l->num_params) ||
        !json_object_object_get_ex(m, "tensors", &list))
        rc = ps_error_set(err, PS_EDATA,
                          "%s: not a model manifest (job, version, num_params, "
                          "tensors)",
                          l->manifest);
    else if (strcmp(name, job->name) != 0)
        rc = ps_error_set(err, PS_EDATA, "%s: the model of job \"%s\", not of \"%s\" (%s)",
                          l->manifest, name, job->name, job->path);
    else if (ps_job_layout(job, tensors, PS_MAX_TENSORS, &n, &num_params) != 0)
        rc = ps_error_set(err, PS_EDATA, "%s: the model's parameters do not fit", job->path);
    else if (num_params != l->num_params)
        rc = ps_error_set(err, PS_EDATA, "%s: %llu parameters, the job's model %llu", l->manifest,
                          (unsigned long long)l->num_params, (unsigned long long)num_params);
    else if ((l->theta = calloc(num_params ? num_params : 1, sizeof(float))) == NULL)
        rc = ps_error_set(err, PS_ENOMEM, "out of memory for θ");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = tensor_load(l, list, &tensors[i], err);
    if (rc == 0 && sparse_dim > 0)
        rc = table_load(l, m, sparse_dim, err);
    if (rc == 0 && sparse_dim == 0 && job->data.normalize == PS_NORMALIZE_STANDARD)
        rc = norm_load(l, m, job->model.features, err);
    json_object_put(m);
    return rc;
}

/* ---- the part's files ---- */

typedef struct part_files {
    ps_report_file csv, scores;
    bool csv_open, scores_open;
    char csv_path[PATH_MAX], scores_path[PATH_MAX], json_path[PATH_MAX];
} part_files;

static int part_open(part_files *pf, const char *out, ps_error *err)
{
    memset(pf, 0, sizeof *pf);
    if (snprintf(pf->csv_path, sizeof pf->csv_path, "%s.csv", out) >= (int)sizeof pf->csv_path ||
        snprintf(pf->scores_path, sizeof pf->scores_path, "%s.scores", out) >=
            (int)sizeof pf->scores_path ||
        snprintf(pf->json_path, sizeof pf->json_path, "%s.json", out) >= (int)sizeof pf->json_path)
        return ps_error_set(err, PS_EIO, "%s: path too long", out);
    int rc = ps_report_file_begin(&pf->csv, pf->csv_path, err);
    if (rc != 0)
        return rc;
    pf->csv_open = true;
    rc = ps_report_file_begin(&pf->scores, pf->scores_path, err);
    pf->scores_open = rc == 0;
    return rc;
}

static void part_abort(part_files *pf)
{
    if (pf->csv_open)
        ps_report_file_abort(&pf->csv);
    if (pf->scores_open)
        ps_report_file_abort(&pf->scores);
    pf->csv_open = pf->scores_open = false;
}

/* One row: its class and probabilities (k of them; 0: a value), and its
 * score and label for the AUC or R². */
static void part_row(part_files *pf, uint32_t cls, const double *probs, uint32_t k, float score,
                     float label)
{
    FILE *f = pf->csv.f;
    if (k == 0) {
        fprintf(f, "%.9g\n", probs[0]);
    } else {
        fprintf(f, "%u", cls);
        for (uint32_t c = 0; c < k; c++)
            fprintf(f, ",%.9g", probs[c]);
        fputc('\n', f);
    }
    float pair[2] = {score, label};
    fwrite(pair, sizeof pair, 1, pf->scores.f);
}

static int part_close(part_files *pf, const ps_report_predict_part *p, ps_error *err)
{
    if (ferror(pf->csv.f) || ferror(pf->scores.f)) {
        part_abort(pf);
        return ps_error_set(err, PS_EIO, "%s: a write failed", pf->csv_path);
    }
    pf->csv_open = false;
    int rc = ps_report_file_commit(&pf->csv, err);
    if (rc != 0) {
        part_abort(pf);
        return rc;
    }
    pf->scores_open = false;
    rc = ps_report_file_commit(&pf->scores, err);
    return rc != 0 ? rc : ps_report_predict_part_write(pf->json_path, p, err);
}

/* ---- scoring ---- */

static int dense_part(const ps_job *job, const ps_predict_opts *o, loaded *l,
                      ps_report_predict_part *p, part_files *pf, ps_error *err)
{
    ps_model_spec spec;
    ps_model_spec_from_job(job, &spec);
    ps_model *m = NULL;
    ps_dataset *all = NULL, *mine = NULL;
    float *scores = NULL;
    double *probs = NULL;
    int rc = ps_model_new(&spec, PRED_ROWS, &m, err);
    if (rc == 0)
        rc = ps_dataset_read(o->data, o->labels, job->data.format, job->model.features,
                             job->data.label_column, o->stop, &all, err);
    if (rc == 0) {
        ps_error why;
        size_t bad = 0;
        rc = ps_model_prepare_labels(m, ps_dataset_y(all), ps_dataset_rows(all), &bad, &why);
        if (rc != 0) {
            char where[PS_PATH_MAX + 64];
            ps_dataset_row_where(all, bad, where, sizeof where);
            ps_error_set(err, rc, "%s: %s", where, why.msg);
        }
    }
    if (rc == 0)
        rc = ps_dataset_shard(all, PS_SHARD_BLOCK, o->part, o->parts, &mine, err);
    ps_dataset_destroy(&all);
    if (rc == 0 && l->mean != NULL)
        ps_dataset_standardize(mine, l->mean, l->std);
    size_t k = rc == 0 ? ps_model_outputs(m) : 1;
    if (rc == 0 && ((scores = malloc(PRED_ROWS * k * sizeof *scores)) == NULL ||
                    (probs = malloc(k * sizeof *probs)) == NULL))
        rc = ps_error_set(err, PS_ENOMEM, "out of memory for the scores");
    bool regression = job->model.type == PS_MODEL_LINEAR;
    uint32_t cols = regression ? 0 : job->model.type == PS_MODEL_LOGISTIC ? 2 : (uint32_t)k;
    size_t n = rc == 0 ? ps_dataset_rows(mine) : 0, d = job->model.features;
    for (size_t off = 0; rc == 0 && off < n; off += PRED_ROWS) {
        size_t cnt = n - off < PRED_ROWS ? n - off : PRED_ROWS;
        rc = ps_model_predict(m, l->theta, ps_dataset_cx(mine) + off * d, cnt, scores);
        for (size_t i = 0; rc == 0 && i < cnt; i++) {
            const float *s = scores + i * k;
            float label = ps_dataset_cy(mine)[off + i];
            uint32_t cls = ps_model_row_class(m, s);
            double pr[2];
            ps_model_row_probs(m, s, probs);
            p->loss_sum += ps_model_row_loss(m, s, label);
            p->correct += !regression && cls == (uint32_t)label;
            const double *shown = probs;
            if (cols == 2) { /* logistic: P(0) and P(1) */
                pr[0] = 1.0 - probs[0];
                pr[1] = probs[0];
                shown = pr;
            }
            part_row(pf, cls, shown, cols, regression || cols == 2 ? s[0] : (float)cls, label);
        }
    }
    p->rows = n;
    p->classes = cols;
    p->has_auc = cols == 2;
    free(scores);
    free(probs);
    ps_dataset_destroy(&mine);
    ps_model_destroy(&m);
    return rc;
}

static int sparse_part(const ps_job *job, const ps_predict_opts *o, loaded *l,
                       ps_report_predict_part *p, part_files *pf, ps_error *err)
{
    ps_sparse_spec spec;
    ps_sparse_spec_from_job(job, &spec);
    ps_data_format fmt = job->data.format;
    size_t nnz = PRED_ROWS * PS_CRITEO_FIELDS;
    if (fmt != PS_FORMAT_CRITEO && ps_sparse_row_features_max(fmt) > nnz)
        nnz = ps_sparse_row_features_max(fmt);
    ps_sparse_model *m = NULL;
    ps_sparse_stream *st = NULL;
    ps_sparse_batch b = {0};
    float *rows = NULL, *scores = NULL;
    int rc = ps_sparse_model_new(&spec, PRED_ROWS, nnz, &m, err);
    if (rc == 0)
        rc = ps_sparse_batch_init(&b, fmt, PRED_ROWS, nnz, err);
    if (rc == 0)
        rc = ps_sparse_stream_open(o->data, fmt, PS_SHARD_BLOCK, o->part, o->parts, o->stop, &st,
                                   err);
    if (rc == 0 && ((rows = malloc(nnz * l->dim * sizeof *rows)) == NULL ||
                    (scores = malloc(PRED_ROWS * sizeof *scores)) == NULL))
        rc = ps_error_set(err, PS_ENOMEM, "out of memory for a batch's rows");
    float bias = l->theta[0];
    ps_sparse_eval ev = {0};
    while (rc == 0) {
        size_t got = 0;
        rc = ps_sparse_stream_next(st, PRED_ROWS, &b, &got, err);
        if (rc != 0 || got == 0)
            break;
        const uint64_t *keys;
        size_t nkeys;
        rc = ps_sparse_model_keys(m, &b, &keys, &nkeys);
        if (rc != 0) {
            ps_error_set(err, rc, "%s: the keys of %zu rows", o->data, got);
            break;
        }
        for (size_t i = 0; i < nkeys; i++) {
            const float *r = table_row(l, keys[i]);
            if (r != NULL)
                memcpy(rows + i * l->dim, r, l->dim * sizeof(float));
            else
                ps_row_init_weights(&l->init, keys[i], rows + i * l->dim);
        }
        rc = ps_sparse_model_predict(m, &b, rows, bias, scores, &ev);
        if (rc != 0) {
            ps_error_set(err, rc, "%s: scoring %zu rows", o->data, got);
            break;
        }
        for (size_t i = 0; i < got; i++) {
            double pr[2] = {1.0 - (double)scores[i], (double)scores[i]};
            part_row(pf, scores[i] >= 0.5f, pr, 2, scores[i], b.labels[i]);
        }
    }
    p->rows = ev.rows;
    p->loss_sum = ev.loss_sum;
    p->correct = ev.correct;
    p->classes = 2;
    p->has_auc = 1;
    free(rows);
    free(scores);
    ps_sparse_stream_close(&st);
    ps_sparse_batch_fini(&b);
    ps_sparse_model_destroy(&m);
    return rc;
}

int ps_predict_part(const ps_job *job, const ps_predict_opts *o, ps_error *err)
{
    if (o->parts == 0 || o->part >= o->parts)
        return ps_error_set(err, PS_EINVAL, "part %u of %u", o->part, o->parts);
    bool sparse = ps_job_is_sparse(job);
    uint32_t dim = 0;
    ps_row_init init = {0};
    if (sparse) {
        ps_table_spec specs[PS_MAX_TABLES];
        size_t n = 0;
        if (ps_job_tables(job, specs, PS_MAX_TABLES, &n) != 0 || n != 1)
            return ps_error_set(err, PS_EDATA, "%s: model %s has no table", job->path,
                                ps_model_type_name(job->model.type));
        dim = specs[0].dim;
        ps_row_init_setup(&init, job->model.init_seed, specs[0].name, dim, specs[0].zero_prefix,
                          ps_job_rows_start_zero(job));
    }
    loaded l;
    int rc = model_load(job, o->model != NULL ? o->model : job->output, dim, &l, err);
    if (rc != 0) {
        loaded_fini(&l);
        return rc;
    }
    l.init = init;
    ps_report_predict_part p;
    memset(&p, 0, sizeof p);
    ps_strlcpy(p.job, job->name, sizeof p.job);
    ps_strlcpy(p.model, ps_model_type_name(job->model.type), sizeof p.model);
    ps_strlcpy(p.data, o->data, sizeof p.data);
    ps_strlcpy(p.model_dir, l.dir, sizeof p.model_dir);
    p.version = l.version;
    part_files pf;
    rc = part_open(&pf, o->out, err);
    if (rc == 0)
        rc = sparse ? sparse_part(job, o, &l, &p, &pf, err) : dense_part(job, o, &l, &p, &pf, err);
    if (rc == 0)
        rc = part_close(&pf, &p, err);
    else
        part_abort(&pf);
    loaded_fini(&l);
    return rc;
}
