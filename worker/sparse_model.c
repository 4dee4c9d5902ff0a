/* sparse_model.c — sparse_logistic and the factorization machine over the
 * rows a batch touches. A batch's keys are sorted as (key, occurrence)
 * pairs by LSD radix passes over the top bits they differ in (two passes of
 * 11 bits for 40 k hashed keys, 15 times quicker than qsort), and the few
 * distinct keys left sharing that prefix by an MSD radix sort ending in
 * insertion sort. The FM's pairwise term uses Rendle's sum trick:
 * O(features x K) per row. */
#include "sparse_model.h"

#include "auc.h"
#include "sigmoid.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX_BITS       11 /* bits of an LSD pass: 2048 buckets */
#define PREFIX_BUCKETS    ((size_t)1 << PREFIX_BITS)
#define PREFIX_PASSES_MAX 4
#define RADIX_BITS_MAX    11 /* the MSD fix-up's widest split */
#define RADIX_BITS_MIN    4
#define RADIX_DEPTH       16 /* 64 bits, at least RADIX_BITS_MIN a level */
#define INSERTION_MAX     32 /* buckets this small are insertion-sorted */

_Static_assert(PREFIX_PASSES_MAX <= RADIX_DEPTH && PREFIX_BITS <= RADIX_BITS_MAX,
               "the LSD passes' counts fit in the MSD sort's");

typedef struct key_pos {
    uint64_t key;
    uint32_t pos; /* the occurrence, counted from the batch's first */
} key_pos;

struct ps_sparse_model {
    ps_sparse_spec spec;
    uint32_t dim;
    size_t max_rows, max_features;
    key_pos *pairs, *tmp; /* max_features each */
    uint64_t *ukeys;      /* the batch's sorted unique keys */
    uint32_t *slot;       /* per occurrence: its key's index in ukeys */
    uint32_t *counts;     /* RADIX_DEPTH x (2^RADIX_BITS_MAX + 1) bucket starts; the
                           * LSD passes use the first PREFIX_PASSES_MAX of them */
    float *sums;          /* fm: K sums Σ_i v_{i,f} x_i of one row, then K of v_{i,f}² x_i² */
    /* the batch the keys are of */
    size_t nkeys, rows, first, nnz;
    const size_t *offsets;
};

/* ---- the batch's keys ---- */

static void insertion_sort(key_pos *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        key_pos x = a[i];
        size_t j = i;
        while (j > 0 && a[j - 1].key > x.key) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}

/* Sorts a[0..n) by key (the order of equal keys is any), tmp of n as
 * scratch: MSD, each level splitting on the top bits the keys still differ
 * in, so a bucket of one repeated key stops at once. */
static void radix_sort(ps_sparse_model *m, key_pos *a, key_pos *tmp, size_t n, unsigned depth)
{
    if (n <= INSERTION_MAX) {
        insertion_sort(a, n);
        return;
    }
    uint64_t first = a[0].key, differ = 0;
    for (size_t i = 1; i < n; i++)
        differ |= a[i].key ^ first;
    if (differ == 0)
        return; /* one key repeated: sorted */
    unsigned top = 64 - (unsigned)__builtin_clzll(differ);
    unsigned log2n = 63 - (unsigned)__builtin_clzll((uint64_t)n);
    unsigned bits = log2n > RADIX_BITS_MIN + 3 ? log2n - 3 : RADIX_BITS_MIN;
    bits = bits > RADIX_BITS_MAX ? RADIX_BITS_MAX : bits;
    bits = bits > top ? top : bits;
    unsigned shift = top - bits;
    size_t buckets = (size_t)1 << bits;
    uint64_t mask = buckets - 1;
    uint32_t *count = m->counts + (size_t)depth * (((size_t)1 << RADIX_BITS_MAX) + 1);
    memset(count, 0, (buckets + 1) * sizeof *count);
    for (size_t i = 0; i < n; i++)
        count[((a[i].key >> shift) & mask) + 1]++;
    for (size_t b = 0; b < buckets; b++)
        count[b + 1] += count[b];
    /* count[b] is bucket b's start; scatter moves it to the next bucket's */
    for (size_t i = 0; i < n; i++)
        tmp[count[(a[i].key >> shift) & mask]++] = a[i];
    memcpy(a, tmp, n * sizeof *a);
    if (shift == 0)
        return; /* the last bits: each bucket holds one key */
    size_t start = 0;
    for (size_t b = 0; b < buckets; b++) {
        size_t end = count[b];
        if (end - start > 1)
            radix_sort(m, a + start, tmp + start, end - start, depth + 1);
        start = end;
    }
}

/* How many LSD passes of PREFIX_BITS sort a batch of n keys by a prefix
 * long enough that distinct keys rarely share it: about 2 log2(n) - 8 bits
 * (40 k keys: 22 bits, some 40 pairs of distinct keys left to fix). */
static unsigned prefix_passes(size_t n)
{
    unsigned log2n = 63 - (unsigned)__builtin_clzll((uint64_t)n | 1);
    unsigned want = 2 * log2n > 8 + PREFIX_BITS ? 2 * log2n - 8 : PREFIX_BITS;
    unsigned passes = (want + PREFIX_BITS - 1) / PREFIX_BITS;
    return passes < PREFIX_PASSES_MAX ? passes : PREFIX_PASSES_MAX;
}

/* Sorts m->pairs[0..n) by key, the order of equal keys any: LSD radix
 * passes over the top bits the keys differ in (all of them when few do),
 * then the rare runs of distinct keys sharing that prefix by radix_sort.
 * May swap m->pairs and m->tmp (the same size). */
static void pairs_sort(ps_sparse_model *m, const uint64_t *keys, size_t n)
{
    uint64_t differ = 0;
    for (size_t j = 1; j < n; j++)
        differ |= keys[j] ^ keys[0];
    unsigned top = differ ? 64 - (unsigned)__builtin_clzll(differ) : 0;
    unsigned passes = prefix_passes(n);
    if (passes * PREFIX_BITS > top)
        passes = (top + PREFIX_BITS - 1) / PREFIX_BITS;
    unsigned low = top > passes * PREFIX_BITS ? top - passes * PREFIX_BITS : 0;
    size_t stride = PREFIX_BUCKETS + 1;
    uint32_t *count = m->counts; /* pass p's bucket starts at count + p * stride */
    memset(count, 0, passes * stride * sizeof *count);
    key_pos *a = m->pairs, *t = m->tmp;
    for (size_t j = 0; j < n; j++) {
        a[j] = (key_pos){keys[j], (uint32_t)j};
        for (unsigned p = 0; p < passes; p++)
            count[p * stride + ((keys[j] >> (low + p * PREFIX_BITS)) & (PREFIX_BUCKETS - 1)) + 1]++;
    }
    for (unsigned p = 0; p < passes; p++) {
        uint32_t *c = count + p * stride;
        for (size_t b = 0; b < PREFIX_BUCKETS; b++)
            c[b + 1] += c[b];
        unsigned shift = low + p * PREFIX_BITS;
        for (size_t j = 0; j < n; j++)
            t[c[(a[j].key >> shift) & (PREFIX_BUCKETS - 1)]++] = a[j];
        key_pos *x = a;
        a = t;
        t = x;
    }
    m->pairs = a;
    m->tmp = t;
    if (low == 0)
        return; /* the prefix was every bit the keys differ in */
    /* distinct keys with the same prefix: rare, so this branch is cheap */
    for (size_t j = 1; j < n; j++) {
        uint64_t x = a[j - 1].key, y = a[j].key;
        if (!((((x ^ y) >> low) == 0) & (x != y)))
            continue;
        size_t lo = j - 1, hi = j + 1;
        while (lo > 0 && (a[lo - 1].key ^ y) >> low == 0)
            lo--;
        while (hi < n && (a[hi].key ^ y) >> low == 0)
            hi++;
        radix_sort(m, a + lo, t + lo, hi - lo, 0);
        j = hi;
    }
}

int ps_sparse_model_keys(ps_sparse_model *m, const ps_sparse_batch *b, const uint64_t **keys,
                         size_t *nkeys)
{
    m->offsets = NULL; /* no batch until this one is taken */
    if (b->rows > m->max_rows)
        return PS_EINVAL;
    for (size_t i = 0; i < b->rows; i++) {
        if (b->offsets[i + 1] < b->offsets[i])
            return PS_EINVAL;
    }
    size_t first = b->offsets[0], nnz = b->offsets[b->rows] - first;
    if (nnz > m->max_features)
        return PS_EINVAL;
    if (nnz > 0)
        pairs_sort(m, b->keys + first, nnz);
    /* unique keys without a branch on the data: ukeys[u] is written every
     * time and u moves on when the key is new */
    size_t u = 0;
    const key_pos *a = m->pairs;
    if (nnz > 0) {
        m->ukeys[0] = a[0].key;
        m->slot[a[0].pos] = 0;
    }
    for (size_t j = 1; j < nnz; j++) {
        u += a[j].key != a[j - 1].key;
        m->ukeys[u] = a[j].key;
        m->slot[a[j].pos] = (uint32_t)u;
    }
    u += nnz > 0;
    m->nkeys = u;
    m->rows = b->rows;
    m->first = first;
    m->nnz = nnz;
    m->offsets = b->offsets;
    *keys = m->ukeys;
    *nkeys = u;
    return 0;
}

/* Whether b is the batch the last ps_sparse_model_keys took. */
static bool batch_is_taken(const ps_sparse_model *m, const ps_sparse_batch *b)
{
    return m->offsets != NULL && b->offsets == m->offsets && b->rows == m->rows &&
           b->offsets[0] == m->first && b->offsets[b->rows] - m->first == m->nnz;
}

/* ---- the math ---- */

/* ŷ of row i: b + Σ w x, plus for the fm ½ Σ_f [(Σ v_f x)² − Σ v_f² x²],
 * leaving the row's Σ_i v_{i,f} x_i in m->sums for its gradient. */
static double row_score(ps_sparse_model *m, const ps_sparse_batch *b, const float *rows, float bias,
                        size_t i)
{
    size_t lo = b->offsets[i] - m->first, hi = b->offsets[i + 1] - m->first;
    const float *x = b->values ? b->values + m->first : NULL;
    const uint32_t *slot = m->slot;
    uint32_t dim = m->dim;
    double z = bias;
    if (dim == 1) {
        for (size_t j = lo; j < hi; j++)
            z += (double)rows[slot[j]] * (x ? x[j] : 1.0f);
        return z;
    }
    size_t k = dim - 1;
    /* per factor f: s[f] = Σ_i v_{i,f} x_i and q[f] = Σ_i v_{i,f}² x_i², one
     * accumulator a factor so the loop over f vectorises */
    float *restrict s = m->sums, *restrict q = m->sums + k;
    memset(s, 0, 2 * k * sizeof *s);
    for (size_t j = lo; j < hi; j++) {
        const float *restrict r = rows + (size_t)slot[j] * dim;
        float xj = x ? x[j] : 1.0f;
        z += (double)r[0] * xj;
        for (size_t f = 0; f < k; f++) {
            float vx = r[1 + f] * xj;
            s[f] += vx;
            q[f] += vx * vx;
        }
    }
    double pairs = 0.0;
    for (size_t f = 0; f < k; f++)
        pairs += (double)s[f] * s[f] - q[f];
    return z + 0.5 * pairs;
}

/* Adds g · ∂ŷ/∂row to the rows of row i's keys: x for w; for the fm's v_f,
 * x·S_f − v_f·x² (S_f in m->sums from row_score). */
static void row_backward(ps_sparse_model *m, const ps_sparse_batch *b, const float *rows, size_t i,
                         float g, float *grad_rows)
{
    size_t lo = b->offsets[i] - m->first, hi = b->offsets[i + 1] - m->first;
    const float *x = b->values ? b->values + m->first : NULL;
    const uint32_t *slot = m->slot;
    uint32_t dim = m->dim;
    if (dim == 1) {
        for (size_t j = lo; j < hi; j++)
            grad_rows[slot[j]] += g * (x ? x[j] : 1.0f);
        return;
    }
    size_t k = dim - 1;
    const float *restrict s = m->sums;
    for (size_t j = lo; j < hi; j++) {
        const float *restrict r = rows + (size_t)slot[j] * dim;
        float *restrict gr = grad_rows + (size_t)slot[j] * dim;
        float xj = x ? x[j] : 1.0f, gx = g * xj;
        gr[0] += gx;
        for (size_t f = 0; f < k; f++)
            gr[1 + f] += gx * (s[f] - r[1 + f] * xj);
    }
}

int ps_sparse_model_grad(ps_sparse_model *m, const ps_sparse_batch *b, const float *rows,
                         float bias, float *grad_rows, float *grad_bias, double *loss)
{
    if (!batch_is_taken(m, b) || b->rows == 0 || b->labels == NULL)
        return PS_EINVAL;
    memset(grad_rows, 0, m->nkeys * m->dim * sizeof *grad_rows);
    double inv = 1.0 / (double)b->rows, sum = 0.0, gb = 0.0;
    for (size_t i = 0; i < b->rows; i++) {
        double z = row_score(m, b, rows, bias, i);
        double y = b->labels[i];
        sum += ps_softplus(z) - y * z;
        double g = (ps_sigmoid(z) - y) * inv; /* ∂(mean loss)/∂ŷ of row i */
        gb += g;
        row_backward(m, b, rows, i, (float)g, grad_rows);
    }
    *grad_bias = (float)gb;
    if (loss != NULL)
        *loss = sum * inv;
    return 0;
}

int ps_sparse_model_predict(ps_sparse_model *m, const ps_sparse_batch *b, const float *rows,
                            float bias, float *scores, ps_sparse_eval *ev)
{
    if (!batch_is_taken(m, b))
        return PS_EINVAL;
    bool tally = ev != NULL && b->labels != NULL;
    for (size_t i = 0; i < b->rows; i++) {
        double z = row_score(m, b, rows, bias, i);
        scores[i] = (float)ps_sigmoid(z);
        if (tally) {
            double y = b->labels[i];
            ev->loss_sum += ps_softplus(z) - y * z;
            ev->correct += (z >= 0.0) == (y == 1.0);
        }
    }
    if (tally)
        ev->rows += b->rows;
    return 0;
}

int ps_sparse_model_metrics(const ps_sparse_eval *ev, const float *scores, const float *labels,
                            size_t n, ps_model_metrics *out)
{
    if (n == 0 || n != ev->rows)
        return PS_EINVAL;
    out->loss = ev->loss_sum / (double)n;
    out->metric = (double)ev->correct / (double)n;
    /* PS_EINVAL: one class only, the AUC is undefined and left NAN */
    int rc = ps_auc(scores, labels, n, &out->auc);
    return rc == PS_ENOMEM ? rc : 0;
}

/* ---- the model object ---- */

void ps_sparse_spec_from_job(const ps_job *job, ps_sparse_spec *out)
{
    memset(out, 0, sizeof *out);
    out->type = job->model.type;
    out->factors = job->model.factors;
}

int ps_sparse_model_new(const ps_sparse_spec *spec, size_t max_rows, size_t max_features,
                        ps_sparse_model **out, ps_error *err)
{
    *out = NULL;
    uint32_t dim;
    if (spec->type == PS_MODEL_SPARSE_LOGISTIC)
        dim = 1;
    else if (spec->type == PS_MODEL_FM)
        dim = 1 + spec->factors;
    else
        return ps_error_set(err, PS_EUNSUPPORTED, "model type %s is not a sparse model",
                            ps_model_type_name(spec->type));
    if (spec->type == PS_MODEL_FM && (spec->factors == 0 || spec->factors > PS_MAX_FACTORS))
        return ps_error_set(err, PS_EINVAL, "fm factors %u is outside [1, %d]", spec->factors,
                            PS_MAX_FACTORS);
    if (max_rows == 0 || max_rows > UINT32_MAX || max_features == 0 || max_features > UINT32_MAX)
        return ps_error_set(err, PS_EINVAL,
                            "a sparse batch of %zu rows and %zu features: each must be in "
                            "[1, 2^32)",
                            max_rows, max_features);
    ps_sparse_model *m = calloc(1, sizeof *m);
    if (m == NULL)
        return ps_error_set(err, PS_ENOMEM, "out of memory for the sparse model");
    m->spec = *spec;
    m->dim = dim;
    m->max_rows = max_rows;
    m->max_features = max_features;
    m->pairs = malloc(max_features * sizeof *m->pairs);
    m->tmp = malloc(max_features * sizeof *m->tmp);
    m->ukeys = malloc(max_features * sizeof *m->ukeys);
    m->slot = malloc(max_features * sizeof *m->slot);
    m->counts = malloc(RADIX_DEPTH * (((size_t)1 << RADIX_BITS_MAX) + 1) * sizeof *m->counts);
    m->sums = malloc(2 * dim * sizeof *m->sums);
    if (!m->pairs || !m->tmp || !m->ukeys || !m->slot || !m->counts || !m->sums) {
        ps_sparse_model_destroy(&m);
        return ps_error_set(err, PS_ENOMEM, "out of memory for a sparse batch of %zu features",
                            max_features);
    }
    *out = m;
    return 0;
}

void ps_sparse_model_destroy(ps_sparse_model **mp)
{
    if (mp == NULL || *mp == NULL)
        return;
    ps_sparse_model *m = *mp;
    free(m->pairs);
    free(m->tmp);
    free(m->ukeys);
    free(m->slot);
    free(m->counts);
    free(m->sums);
    free(m);
    *mp = NULL;
}

uint32_t ps_sparse_model_dim(const ps_sparse_model *m)
{
    return m->dim;
}

const char *ps_sparse_model_name(const ps_sparse_model *m)
{
    return m->spec.type == PS_MODEL_FM ? "fm" : "sparse_logistic";
}
