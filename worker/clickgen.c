/* clickgen.c — the synthetic click logs of clickgen.h: per row a counter-
 * based random stream (splitmix64 seeded by a hash of seed, split and
 * index), Zipf vocabularies sampled through alias tables in integers, and a
 * hidden model whose weights are hashes of (seed, field, value) turned into
 * normals. Only +, -, *, / and exact operations (frexp, ldexp, floor) touch
 * doubles here and in feature_hash.c (its log and buckets), compiled
 * without FMA contraction, so every machine draws the same rows. */
#include "clickgen.h"

#include "auc.h"
#include "feature_hash.h"
#include "report_file.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- deterministic arithmetic ---- */

#define LN2_HI 6.93147180369123816490e-01 /* ln 2's first 32 bits: k * LN2_HI is exact */
#define LN2_LO 1.90821492927058770002e-10
#define LN2    0.69314718055994530942
#define SQRT3  1.73205080756887729353

/* e^x for x in [-700, 700]: x = k ln 2 + r with |r| <= ln 2 / 2, e^r by
 * its Taylor series to r^16 (Horner), times 2^k. */
static double det_exp(double x)
{
    if (x < -700.0)
        return 0.0;
    if (x > 700.0)
        x = 700.0;
    double k = floor(x / LN2 + 0.5);
    double r = (x - k * LN2_HI) - k * LN2_LO;
    double t = 1.0;
    for (int i = 16; i >= 1; i--)
        t = 1.0 + r * t / i;
    return ldexp(t, (int)k);
}

/* ---- hashing and random streams ---- */

/* splitmix64's finalizer: a bijection of 64-bit words that mixes well. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* What a hash is for, so that different uses of (a, b) never share bits. */
enum { TAG_ROW = 1, TAG_VOCAB, TAG_WEIGHT, TAG_EMBED };

static uint64_t hash4(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b)
{
    uint64_t x = mix64(seed ^ mix64(tag * UINT64_C(0x9e3779b97f4a7c15)));
    x = mix64(x ^ a);
    return mix64(x ^ mix64(b + UINT64_C(0x632be59bd9b4e019)));
}

typedef struct rng {
    uint64_t state;
} rng;

static uint64_t rng_next(rng *r)
{
    r->state += UINT64_C(0x9e3779b97f4a7c15);
    return mix64(r->state);
}

/* A uniform in [0, 1) from 53 bits. */
static double rng_unit(rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1p-53;
}

/* A standard normal, nearly: the sum of four 16-bit uniforms of h, centred
 * and scaled to variance 1 (Irwin-Hall), so it needs no libm. */
static double normal_of(uint64_t h)
{
    double s = 0.0;
    for (int i = 0; i < 4; i++)
        s += ((double)((h >> (16 * i)) & 0xffff) + 0.5) * 0x1p-16;
    return (s - 2.0) * SQRT3;
}

/* ---- the fields ---- */

/* Categorical fields: vocabulary sizes shaped like Criteo's (a few fields
 * of hundreds of thousands of values, many of hundreds or thousands, some
 * of a dozen) and the share of rows missing them. */
static const uint32_t cat_vocab[PS_CRITEO_CATS] = {
    1460, 583,   1000000, 300000, 305,  24,   12517, 633,    10, 93145, 5683,   800000, 3194,
    27,   14992, 600000,  10,     5652, 2173, 12,    700000, 18, 15,    286181, 105,    142572,
};
static const double cat_missing[PS_CRITEO_CATS] = {
    0, 0, 0.03, 0.03, 0, 0,    0,    0,    0,    0, 0,    0.03, 0,
    0, 0, 0.03, 0,    0, 0.44, 0.44, 0.03, 0.76, 0, 0.03, 0.44, 0.44,
};

/* Integer fields: counts drawn as floor(scale * (U^(-1/alpha) - 1)) (a
 * Lomax law: heavy tails for small alpha), missing as often as Criteo's;
 * I2 is sometimes negative (-1 to -3), as Criteo's is. */
typedef struct int_field {
    double missing, alpha, scale, negative;
} int_field;

static const int_field int_fields[PS_CRITEO_INTS] = {
    {0.45, 1.2, 2, 0},    {0, 0.9, 20, 0.05}, {0.21, 1.1, 5, 0}, {0.22, 2.0, 10, 0},
    {0.03, 0.8, 2000, 0}, {0.22, 1.0, 50, 0}, {0.04, 1.1, 8, 0}, {0.0005, 2.5, 20, 0},
    {0.04, 1.3, 60, 0},   {0.45, 3.0, 1, 0},  {0.04, 1.8, 3, 0}, {0.77, 1.5, 1, 0},
    {0.22, 1.4, 8, 0},
};

/* The largest integer drawn: far beyond any real count, and exact in a
 * double. */
#define INT_VALUE_MAX 1e12

/* ---- the hidden model ----
 * logit = BIAS + sum over present fields f of w_f(x_f)
 *       + sum over pairs f < g of the INTERACT fields, both present, of
 *         <u_f(x_f), u_g(x_g)>
 * with x_f the value (categorical) or its log bucket (integer), w and u
 * normals from hash4(seed, ...) scaled by W_SCALE and U_SCALE: a hidden
 * factorization machine of EMBED_DIM factors over a dozen fields of small
 * vocabularies (a feature's embedding is the same in every pair it is in),
 * whose pairs carry about as much of the logit's variance as the main
 * effects. A one-off value weighs nothing (no model could learn it), nor
 * does a missing field. The fields of more than ID_VOCAB values (ids, of
 * which a log of millions of rows shows most values a handful of times)
 * weigh ID_W_SCALE of the others: at full weight their values' effects,
 * which no model can estimate from so few rows, would put the best
 * achievable AUC out of any learner's reach (a factorization machine
 * trained on 2 M rows ended 0.021 below it, 0.018 with these weights). */
#define BIAS       (-1.50)
#define W_SCALE    0.18
#define ID_VOCAB   50000
#define ID_W_SCALE 0.3
#define U_SCALE    0.274
#define EMBED_DIM  4
#define LOGIT_MAX  15.0 /* probabilities stay in [3e-7, 1 - 3e-7] */

/* Feature indices: integer field i is i (0..12), categorical field Cn is
 * 12 + n (13..38), as the criteo reader's hash fields. */
#define I(n) ((n)-1)
#define C(n) (PS_CRITEO_INTS - 1 + (n))

static const uint8_t interact[] = {
    I(2), I(5), I(11), C(1), C(2), C(5), C(6), C(8), C(9), C(11), C(14), C(23),
};
#define NINTERACT (sizeof interact / sizeof interact[0])

/* ---- alias tables ---- */

/* Walker's alias method in integers: draw i uniformly, keep it when the
 * low 32 bits fall below keep[i], else take alias[i]. */
typedef struct alias_table {
    uint32_t n;
    uint32_t *keep;
    uint32_t *alias;
} alias_table;

struct ps_clickgen {
    uint64_t seed;
    alias_table vocab[PS_CRITEO_CATS];
    uint32_t tail_keep[PS_CRITEO_CATS]; /* a one-off value when below (32 bits) */
};

/* Vose's construction for Zipf weights r^-s, r = 1..n. */
static bool alias_build(alias_table *t, uint32_t n, double s)
{
    t->n = n;
    t->keep = malloc(n * sizeof *t->keep);
    t->alias = malloc(n * sizeof *t->alias);
    double *p = malloc(n * sizeof *p);
    uint32_t *small = malloc(n * sizeof *small), *large = malloc(n * sizeof *large);
    bool ok = t->keep != NULL && t->alias != NULL && p != NULL && small != NULL && large != NULL;
    if (ok) {
        double sum = 0.0;
        for (uint32_t r = 0; r < n; r++) {
            p[r] = det_exp(-s * ps_feature_ln((double)r + 1.0));
            sum += p[r];
        }
        uint32_t ns = 0, nl = 0;
        for (uint32_t r = 0; r < n; r++) {
            p[r] = p[r] * n / sum;
            if (p[r] < 1.0)
                small[ns++] = r;
            else
                large[nl++] = r;
        }
        while (ns > 0 && nl > 0) {
            uint32_t a = small[--ns], b = large[nl - 1];
            t->keep[a] = (uint32_t)(p[a] * 0x1p32);
            t->alias[a] = b;
            p[b] = (p[b] + p[a]) - 1.0;
            if (p[b] < 1.0) {
                nl--;
                small[ns++] = b;
            }
        }
        /* what is left is 1 up to rounding: always kept */
        while (nl > 0) {
            uint32_t b = large[--nl];
            t->keep[b] = UINT32_MAX;
            t->alias[b] = b;
        }
        while (ns > 0) {
            uint32_t a = small[--ns];
            t->keep[a] = UINT32_MAX;
            t->alias[a] = a;
        }
    }
    free(p);
    free(small);
    free(large);
    return ok;
}

static uint32_t alias_draw(const alias_table *t, uint64_t x)
{
    uint32_t i = (uint32_t)(((x >> 32) * t->n) >> 32);
    return (uint32_t)x < t->keep[i] ? i : t->alias[i];
}

/* ---- the generator ---- */

uint32_t ps_clickgen_vocab(uint32_t j)
{
    return j < PS_CRITEO_CATS ? cat_vocab[j] : 0;
}

/* One-off values: none in the 10-value fields, rising with the log of the
 * vocabulary to 20% of the million-value field's occurrences. */
double ps_clickgen_tail_share(uint32_t j)
{
    if (j >= PS_CRITEO_CATS)
        return 0.0;
    double share = 0.2 * (ps_feature_ln((double)cat_vocab[j]) / ps_feature_ln(10.0) - 1.0) / 5.0;
    return share > 0.0 ? share : 0.0;
}

double ps_clickgen_cat_missing(uint32_t j)
{
    return j < PS_CRITEO_CATS ? cat_missing[j] : 0.0;
}

double ps_clickgen_int_missing(uint32_t i)
{
    return i < PS_CRITEO_INTS ? int_fields[i].missing : 0.0;
}

int ps_clickgen_new(uint64_t seed, ps_clickgen **out, ps_error *err)
{
    *out = NULL;
    ps_clickgen *g = calloc(1, sizeof *g);
    if (g == NULL)
        return ps_error_set(err, PS_ENOMEM, "out of memory for the click generator");
    g->seed = seed;
    for (uint32_t j = 0; j < PS_CRITEO_CATS; j++) {
        if (!alias_build(&g->vocab[j], cat_vocab[j], PS_CLICKGEN_ZIPF)) {
            ps_clickgen_destroy(&g);
            return ps_error_set(err, PS_ENOMEM, "out of memory for the click generator");
        }
        g->tail_keep[j] = (uint32_t)(ps_clickgen_tail_share(j) * 0x1p32);
    }
    *out = g;
    return 0;
}

void ps_clickgen_destroy(ps_clickgen **gp)
{
    if (gp == NULL || *gp == NULL)
        return;
    for (uint32_t j = 0; j < PS_CRITEO_CATS; j++) {
        free((*gp)->vocab[j].keep);
        free((*gp)->vocab[j].alias);
    }
    free(*gp);
    *gp = NULL;
}

/* The value feature f (0..38) shows the hidden model: the log bucket of an
 * integer, a categorical value as is. */
static uint64_t model_value(const ps_click_row *row, uint32_t f)
{
    if (f < PS_CRITEO_INTS)
        return (uint64_t)ps_feature_bucket(row->ints[f]);
    return row->cats[f - PS_CRITEO_INTS];
}

/* Whether feature f takes part in the hidden model: present, and not a
 * one-off value. */
static bool model_has(const ps_click_row *row, uint32_t f)
{
    if (f < PS_CRITEO_INTS)
        return row->has_int[f];
    uint32_t j = f - PS_CRITEO_INTS;
    return row->has_cat[j] && (row->cats[j] & UINT32_C(0x80000000)) == 0;
}

static double model_logit(const ps_clickgen *g, const ps_click_row *row)
{
    double z = BIAS;
    for (uint32_t f = 0; f < PS_CRITEO_FIELDS; f++) {
        if (!model_has(row, f))
            continue;
        bool id = f >= PS_CRITEO_INTS && cat_vocab[f - PS_CRITEO_INTS] > ID_VOCAB;
        z += (id ? W_SCALE * ID_W_SCALE : W_SCALE) *
             normal_of(hash4(g->seed, TAG_WEIGHT, f, model_value(row, f)));
    }
    /* Σ_{f<g} <u_f, u_g> = ½ Σ_k [(Σ_f u_fk)² − Σ_f u_fk²] */
    double sum[EMBED_DIM] = {0}, sq[EMBED_DIM] = {0};
    for (size_t i = 0; i < NINTERACT; i++) {
        uint32_t f = interact[i];
        if (!model_has(row, f))
            continue;
        uint64_t v = model_value(row, f);
        for (uint64_t k = 0; k < EMBED_DIM; k++) {
            double u = normal_of(hash4(g->seed, TAG_EMBED + (k << 8), f, v));
            sum[k] += u;
            sq[k] += u * u;
        }
    }
    double pairs = 0.0;
    for (uint64_t k = 0; k < EMBED_DIM; k++)
        pairs += sum[k] * sum[k] - sq[k];
    z += U_SCALE * U_SCALE * 0.5 * pairs;
    return z < -LOGIT_MAX ? -LOGIT_MAX : z > LOGIT_MAX ? LOGIT_MAX : z;
}

static int64_t draw_int(const int_field *f, rng *r)
{
    if (f->negative > 0.0 && rng_unit(r) < f->negative)
        return -1 - (int64_t)(rng_next(r) % 3);
    double u = (double)((rng_next(r) >> 11) + 1) * 0x1p-53; /* (0, 1] */
    double v = f->scale * (det_exp(-ps_feature_ln(u) / f->alpha) - 1.0);
    return (int64_t)floor(v < INT_VALUE_MAX ? v : INT_VALUE_MAX);
}

void ps_clickgen_row(const ps_clickgen *g, ps_clickgen_split split, uint64_t index,
                     ps_click_row *row)
{
    rng r = {hash4(g->seed, TAG_ROW, (uint64_t)split, index)};
    for (uint32_t i = 0; i < PS_CRITEO_INTS; i++) {
        row->has_int[i] = rng_unit(&r) >= int_fields[i].missing;
        row->ints[i] = row->has_int[i] ? draw_int(&int_fields[i], &r) : 0;
    }
    for (uint32_t j = 0; j < PS_CRITEO_CATS; j++) {
        row->has_cat[j] = rng_unit(&r) >= cat_missing[j];
        row->cats[j] = 0;
        if (!row->has_cat[j])
            continue;
        uint64_t x = rng_next(&r);
        if ((uint32_t)x < g->tail_keep[j]) {
            row->cats[j] = (uint32_t)(x >> 32) | UINT32_C(0x80000000);
        } else {
            uint32_t rank = alias_draw(&g->vocab[j], rng_next(&r));
            uint64_t h = hash4(g->seed, TAG_VOCAB, j, rank);
            row->cats[j] = (uint32_t)h & UINT32_C(0x7fffffff);
        }
    }
    double z = model_logit(g, row);
    row->prob = 1.0 / (1.0 + det_exp(-z));
    row->label = rng_unit(&r) < row->prob ? 1.0f : 0.0f;
}

/* ---- writing ---- */

static char *put_int(char *p, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0)
        *p++ = '-';
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

static char *put_hex8(char *p, uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 7; i >= 0; i--)
        *p++ = digits[(v >> (4 * i)) & 0xf];
    return p;
}

size_t ps_clickgen_row_format(const ps_click_row *row, char *buf, size_t cap)
{
    /* label 1, 13 x (tab + 20 digits and a sign), 26 x (tab + 8), '\n', NUL */
    if (cap < PS_CLICKGEN_LINE_MAX)
        return 0;
    char *p = buf;
    *p++ = row->label != 0.0f ? '1' : '0';
    for (uint32_t i = 0; i < PS_CRITEO_INTS; i++) {
        *p++ = '\t';
        if (row->has_int[i])
            p = put_int(p, row->ints[i]);
    }
    for (uint32_t j = 0; j < PS_CRITEO_CATS; j++) {
        *p++ = '\t';
        if (row->has_cat[j])
            p = put_hex8(p, row->cats[j]);
    }
    *p++ = '\n';
    *p = '\0';
    return (size_t)(p - buf);
}

/* A file written under a temporary name beside path's target (path, or
 * where its symbolic links lead: report_file.h), renamed over it when
 * done. */
typedef struct out_file {
    char path[PATH_MAX];
    char target[PATH_MAX];
    char tmp[PATH_MAX];
    FILE *f;
} out_file;

#define OUT_BUFFER_BYTES ((size_t)1 << 22)

static int out_open(out_file *o, const char *prefix, const char *suffix, ps_error *err)
{
    o->f = NULL;
    o->tmp[0] = '\0';
    if (snprintf(o->path, sizeof o->path, "%s%s", prefix, suffix) >= (int)sizeof o->path)
        return ps_error_set(err, PS_EIO, "%s%s: path too long", prefix, suffix);
    int rc = ps_report_file_target(o->path, o->target, sizeof o->target, err);
    if (rc != 0)
        return rc;
    if (snprintf(o->tmp, sizeof o->tmp, "%s.XXXXXX", o->target) >= (int)sizeof o->tmp) {
        o->tmp[0] = '\0';
        return ps_error_set(err, PS_EIO, "%s%s: path too long", prefix, suffix);
    }
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        int e = errno;
        o->tmp[0] = '\0';
        return ps_error_set(err, PS_EIO, "%s: %s", o->path, strerror(e));
    }
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || (o->f = fdopen(fd, "wb")) == NULL) {
        int e = errno;
        close(fd);
        return ps_error_set(err, PS_EIO, "%s: %s", o->path, strerror(e));
    }
    setvbuf(o->f, NULL, _IOFBF, OUT_BUFFER_BYTES);
    return 0;
}

/* Closes o's stream: PS_EIO when a write or the close failed. */
static int out_finish(out_file *o, ps_error *err)
{
    if (o->f == NULL)
        return 0;
    bool bad = ferror(o->f) != 0;
    int e = errno;
    if (fclose(o->f) != 0 && !bad) {
        bad = true;
        e = errno;
    }
    o->f = NULL;
    return bad ? ps_error_set(err, PS_EIO, "%s: %s", o->path, strerror(e)) : 0;
}

/* Renames o's temporary file into place when keep, else removes it. */
static int out_commit(out_file *o, bool keep, ps_error *err)
{
    if (o->tmp[0] == '\0')
        return 0;
    int rc = 0;
    if (keep && rename(o->tmp, o->target) != 0) {
        rc = ps_error_set(err, PS_EIO, "%s: %s", o->path, strerror(errno));
        keep = false;
    }
    if (!keep)
        unlink(o->tmp);
    o->tmp[0] = '\0';
    return rc;
}

/* Creates the folder prefix's files go into. */
static int prefix_folder(const char *prefix, ps_error *err)
{
    char dir[PATH_MAX];
    if (!ps_strlcpy(dir, prefix, sizeof dir))
        return ps_error_set(err, PS_EIO, "%s: path too long", prefix);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return 0;
    *slash = '\0';
    if (ps_path_mkdirs(dir, 0777) != 0)
        return ps_error_set(err, PS_EIO, "%s: %s", dir, strerror(errno));
    return 0;
}

static int write_train(const ps_clickgen *g, out_file *o, uint64_t rows, ps_clickgen_summary *sum,
                       ps_error *err)
{
    char line[PS_CLICKGEN_LINE_MAX];
    ps_click_row row;
    for (uint64_t i = 0; i < rows; i++) {
        ps_clickgen_row(g, PS_CLICKGEN_TRAIN, i, &row);
        size_t n = ps_clickgen_row_format(&row, line, sizeof line);
        if (fwrite(line, 1, n, o->f) != n)
            return ps_error_set(err, PS_EIO, "%s: %s", o->path, strerror(errno));
        sum->train_positives += row.label != 0.0f;
        sum->train_bytes += n;
    }
    return 0;
}

static int write_test(const ps_clickgen *g, out_file *o, out_file *po, uint64_t rows,
                      ps_clickgen_summary *sum, ps_error *err)
{
    float *probs = malloc(rows * sizeof *probs), *labels = malloc(rows * sizeof *labels);
    int rc = 0;
    if (probs == NULL || labels == NULL) {
        rc = ps_error_set(err, PS_ENOMEM, "out of memory for %llu test rows",
                          (unsigned long long)rows);
        goto done;
    }
    char line[PS_CLICKGEN_LINE_MAX];
    ps_click_row row;
    double loss = 0.0;
    for (uint64_t i = 0; i < rows; i++) {
        ps_clickgen_row(g, PS_CLICKGEN_TEST, i, &row);
        size_t n = ps_clickgen_row_format(&row, line, sizeof line);
        if (fwrite(line, 1, n, o->f) != n) {
            rc = ps_error_set(err, PS_EIO, "%s: %s", o->path, strerror(errno));
            goto done;
        }
        if (fprintf(po->f, "%.9f\n", row.prob) < 0) {
            rc = ps_error_set(err, PS_EIO, "%s: %s", po->path, strerror(errno));
            goto done;
        }
        sum->test_positives += row.label != 0.0f;
        sum->test_bytes += n;
        loss -= ps_feature_ln(row.label != 0.0f ? row.prob : 1.0 - row.prob);
        probs[i] = (float)row.prob;
        labels[i] = row.label;
    }
    sum->logloss = loss / (double)rows;
    if (ps_auc(probs, labels, rows, &sum->auc) == PS_ENOMEM)
        rc = ps_error_set(err, PS_ENOMEM, "out of memory for the AUC of %llu rows",
                          (unsigned long long)rows);
done:
    free(probs);
    free(labels);
    return rc;
}

int ps_clickgen_write(const ps_clickgen *g, const char *prefix, uint64_t rows, uint64_t test_rows,
                      ps_clickgen_summary *sum, ps_error *err)
{
    memset(sum, 0, sizeof *sum);
    sum->auc = sum->logloss = NAN;
    if (rows == 0 || rows > PS_CLICKGEN_ROWS_MAX || test_rows == 0 ||
        test_rows > PS_CLICKGEN_TEST_ROWS_MAX)
        return ps_error_set(
            err, PS_EINVAL, "rows must be 1 to %llu and test rows 1 to %llu, got %llu and %llu",
            (unsigned long long)PS_CLICKGEN_ROWS_MAX, (unsigned long long)PS_CLICKGEN_TEST_ROWS_MAX,
            (unsigned long long)rows, (unsigned long long)test_rows);
    double t0 = ps_clock_s();
    sum->train_rows = rows;
    sum->test_rows = test_rows;
    int rc = prefix_folder(prefix, err);
    if (rc != 0)
        return rc;
    out_file train = {0}, test = {0}, prob = {0};
    if ((rc = out_open(&train, prefix, ".train.tsv", err)) != 0 ||
        (rc = out_open(&test, prefix, ".test.tsv", err)) != 0 ||
        (rc = out_open(&prob, prefix, ".test.prob", err)) != 0)
        goto close;
    if ((rc = write_train(g, &train, rows, sum, err)) != 0 ||
        (rc = write_test(g, &test, &prob, test_rows, sum, err)) != 0)
        goto close;
close:;
    /* the files take their names only once all three are written whole */
    ps_error later;
    out_file *files[] = {&train, &test, &prob};
    for (size_t i = 0; i < 3; i++) {
        int r = out_finish(files[i], rc == 0 ? err : &later);
        rc = rc != 0 ? rc : r;
    }
    for (size_t i = 0; i < 3; i++) {
        int r = out_commit(files[i], rc == 0, rc == 0 ? err : &later);
        rc = rc != 0 ? rc : r;
    }
    sum->seconds = ps_clock_s() - t0;
    return rc;
}
