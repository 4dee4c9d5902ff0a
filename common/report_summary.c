/* report_summary.c — the summary JSON written and read as report_summary.h
 * describes. Its objects are tables of fields (report_json.h), so a key is
 * written and read from the same row; the lists ("ranks", "curves") and the
 * keys named after the metric are put in their places by hand. */
#include "report_summary.h"

#include "report_file.h"
#include "report_json.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const ps_report_json_field summary_head[] = {
    PS_REPORT_JSON_FIELD(ps_report_summary, job, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_summary, model, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_summary, mode, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_summary, final_loss, PS_REPORT_JSON_NUM),
    PS_REPORT_JSON_FIELD(ps_report_summary, metric_name, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_summary, loss_name, PS_REPORT_JSON_STR),
};
/* then "test_metric", "test_loss", ("test_auc"), "metrics" */
static const ps_report_json_field summary_metrics[] = {
    PS_REPORT_JSON_FIELD(ps_report_summary, train_loss_last_epoch, PS_REPORT_JSON_NUM),
    PS_REPORT_JSON_FIELD(ps_report_summary, train_samples, PS_REPORT_JSON_U64),
    PS_REPORT_JSON_FIELD(ps_report_summary, test_samples, PS_REPORT_JSON_U64),
    PS_REPORT_JSON_FIELD(ps_report_summary, epochs, PS_REPORT_JSON_U32),
    PS_REPORT_JSON_FIELD(ps_report_summary, steps_per_epoch, PS_REPORT_JSON_U64),
    PS_REPORT_JSON_FIELD(ps_report_summary, batch_size, PS_REPORT_JSON_U32),
    PS_REPORT_JSON_FIELD(ps_report_summary, pull_s, PS_REPORT_JSON_NUM),
    PS_REPORT_JSON_FIELD(ps_report_summary, compute_s, PS_REPORT_JSON_NUM),
    PS_REPORT_JSON_FIELD(ps_report_summary, push_pull_s, PS_REPORT_JSON_NUM),
};
/* "metrics" of a binary classifier, after the named figures */
static const ps_report_json_field summary_auc[] = {
    PS_REPORT_JSON_FIELD(ps_report_summary, auc, PS_REPORT_JSON_NUM),
    PS_REPORT_JSON_FIELD(ps_report_summary, train_auc, PS_REPORT_JSON_NUM),
};
static const ps_report_json_field summary_tail[] = {
    PS_REPORT_JSON_FIELD(ps_report_summary, wall_s, PS_REPORT_JSON_NUM),
    PS_REPORT_JSON_FIELD(ps_report_summary, samples_per_s, PS_REPORT_JSON_NUM),
    PS_REPORT_JSON_FIELD(ps_report_summary, updates, PS_REPORT_JSON_U64),
    PS_REPORT_JSON_FIELD(ps_report_summary, version, PS_REPORT_JSON_U64),
    PS_REPORT_JSON_FIELD(ps_report_summary, workers, PS_REPORT_JSON_U32),
};
/* "batches": the batches trained (a summary from before it: 0) */
static const ps_report_json_field summary_batches[] = {
    PS_REPORT_JSON_FIELD(ps_report_summary, batches, PS_REPORT_JSON_U64),
};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The named figures of "metrics": METRIC, LOSS, train_METRIC, train_LOSS. */
typedef struct named_figure {
    char key[PS_REPORT_WORD_MAX + 8];
    ps_report_json_field f;
} named_figure;

static void named_figures(const ps_report_summary *s, named_figure out[4])
{
    const char *names[4] = {s->metric_name, s->loss_name, s->metric_name, s->loss_name};
    size_t offs[4] = {offsetof(ps_report_summary, metric), offsetof(ps_report_summary, loss),
                      offsetof(ps_report_summary, train_metric),
                      offsetof(ps_report_summary, train_loss)};
    for (int i = 0; i < 4; i++) {
        snprintf(out[i].key, sizeof out[i].key, "%s%s", i < 2 ? "" : "train_", names[i]);
        out[i].f = (ps_report_json_field){out[i].key, PS_REPORT_JSON_NUM, offs[i], sizeof(double)};
    }
}

void ps_report_summary_init(ps_report_summary *s)
{
    memset(s, 0, sizeof *s);
    s->final_loss = s->test_metric = s->test_loss = NAN;
    s->metric = s->loss = s->train_metric = s->train_loss = s->train_loss_last_epoch = NAN;
    s->test_auc = s->auc = s->train_auc = NAN;
    s->pull_s = s->compute_s = s->push_pull_s = s->wall_s = s->samples_per_s = NAN;
    s->rank = -1;
    s->staleness_mean = NAN;
}

static void curve_free(ps_report_curve *c)
{
    free(c->train_loss);
    free(c->test_metric);
    free(c->test_auc);
    c->train_loss = c->test_metric = c->test_auc = NULL;
}

void ps_report_summary_fini(ps_report_summary *s)
{
    for (uint32_t i = 0; i < s->ncurves; i++)
        curve_free(&s->curves[i]);
    free(s->curves);
    s->curves = NULL;
    s->ncurves = 0;
}

/* A copy of n doubles (caller frees); NULL when memory ran out. */
static double *doubles_dup(const double *x, uint32_t n)
{
    double *copy = malloc((n > 0 ? n : 1) * sizeof *copy);
    if (copy != NULL && n > 0)
        memcpy(copy, x, n * sizeof *copy);
    return copy;
}

int ps_report_summary_curve_add(ps_report_summary *s, uint32_t rank, uint32_t every, uint32_t n,
                                const double *train_loss, const double *test_metric,
                                const double *test_auc)
{
    if (every == 0 || n > PS_REPORT_EPOCHS_MAX || s->ncurves >= PS_REPORT_RANKS_MAX ||
        (n > 0 && train_loss == NULL) || (test_auc != NULL && test_metric == NULL))
        return PS_EINVAL;
    ps_report_curve c = {rank, every, n, doubles_dup(train_loss, n), NULL, NULL};
    if (test_metric != NULL)
        c.test_metric = doubles_dup(test_metric, n);
    if (test_auc != NULL)
        c.test_auc = doubles_dup(test_auc, n);
    ps_report_curve *grown = realloc(s->curves, (s->ncurves + 1) * sizeof *grown);
    if (c.train_loss == NULL || (test_metric != NULL && c.test_metric == NULL) ||
        (test_auc != NULL && c.test_auc == NULL) || grown == NULL) {
        curve_free(&c);
        if (grown != NULL)
            s->curves = grown;
        return PS_ENOMEM;
    }
    s->curves = grown;
    s->curves[s->ncurves++] = c;
    return 0;
}

/* {"name": name, "value": x}, or null without a test set. */
static bool test_figure_put(json_object *obj, const char *key, bool has, const char *name, double x)
{
    if (!has)
        return ps_report_json_object_add(obj, key, NULL, true);
    json_object *fig = json_object_new_object();
    json_object *n = fig ? json_object_new_string(name) : NULL;
    json_object *v = ps_report_json_number_new(x);
    bool ok = fig != NULL && ps_report_json_object_add(fig, "name", n, n != NULL) &&
              ps_report_json_object_add(fig, "value", v, v != NULL || !isfinite(x));
    if (!ok)
        json_object_put(v);
    if (!ok || !ps_report_json_object_add(obj, key, fig, true)) {
        json_object_put(fig);
        return false;
    }
    return true;
}

/* [x, ...] of n numbers, null where not finite; NULL when memory ran out. */
static json_object *numbers_new(const double *x, uint32_t n)
{
    json_object *list = json_object_new_array_ext((int)n);
    for (uint32_t i = 0; list != NULL && i < n; i++) {
        json_object *v = ps_report_json_number_new(x[i]);
        if ((v == NULL && isfinite(x[i])) || json_object_array_add(list, v) != 0) {
            json_object_put(v);
            json_object_put(list);
            list = NULL;
        }
    }
    return list;
}

/* Adds key: a new object holding fields (or null when !has) to obj. */
static bool object_fields_put(json_object *obj, const char *key, bool has, const void *base,
                              const ps_report_json_field *fields, size_t n)
{
    if (!has)
        return ps_report_json_object_add(obj, key, NULL, true);
    json_object *o = json_object_new_object();
    if (o == NULL || !ps_report_json_fields_put(o, base, fields, n) ||
        !ps_report_json_object_add(obj, key, o, true)) {
        json_object_put(o);
        return false;
    }
    return true;
}

/* Appends item to list; false (item freed) when memory ran out. */
static bool list_add(json_object *list, json_object *item)
{
    if (item == NULL || json_object_array_add(list, item) != 0) {
        json_object_put(item);
        return false;
    }
    return true;
}

static const ps_report_json_field staleness_fields[] = {
    {"max", PS_REPORT_JSON_U64, offsetof(ps_report_summary, staleness_max), sizeof(uint64_t)},
    {"mean", PS_REPORT_JSON_NUM, offsetof(ps_report_summary, staleness_mean), sizeof(double)},
    {"p99", PS_REPORT_JSON_U64, offsetof(ps_report_summary, staleness_p99), sizeof(uint64_t)},
};
static const ps_report_json_field rank_fields[] = {
    PS_REPORT_JSON_FIELD(ps_report_rank, rank, PS_REPORT_JSON_U32),
    PS_REPORT_JSON_FIELD(ps_report_rank, clock, PS_REPORT_JSON_U64),
    PS_REPORT_JSON_FIELD(ps_report_rank, pushes, PS_REPORT_JSON_U64),
    PS_REPORT_JSON_FIELD(ps_report_rank, dropped, PS_REPORT_JSON_U64),
    PS_REPORT_JSON_FIELD(ps_report_rank, rounds, PS_REPORT_JSON_U64),
};
static const ps_report_json_field unfinished_fields[] = {
    PS_REPORT_JSON_FIELD(ps_report_unfinished, rank, PS_REPORT_JSON_U32),
    PS_REPORT_JSON_FIELD(ps_report_unfinished, pushes, PS_REPORT_JSON_U64),
    PS_REPORT_JSON_FIELD(ps_report_unfinished, expected, PS_REPORT_JSON_U64),
};

/* rank_fields up to "dropped" and "rounds", which a summary written before
 * them lacks (read as 0) */
#define RANK_FIELDS_REQUIRED (COUNT(rank_fields) - 2)

uint32_t ps_report_summary_dropped_ranks(const ps_report_summary *s, uint32_t *out, uint32_t cap)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->nranks && i < PS_REPORT_RANKS_MAX; i++) {
        const ps_report_rank *r = &s->ranks[i];
        if (!ps_report_rank_mostly_dropped(r->pushes, r->rounds))
            continue;
        if (n < cap)
            out[n] = r->rank;
        n++;
    }
    return n;
}
static const ps_report_json_field curve_fields[] = {
    PS_REPORT_JSON_FIELD(ps_report_curve, rank, PS_REPORT_JSON_U32),
    PS_REPORT_JSON_FIELD(ps_report_curve, every, PS_REPORT_JSON_U32),
};

/* Adds key: c's n figures x as a list (null when x is NULL) to o. */
static bool curve_figures_put(json_object *o, const char *key, const double *x, uint32_t n)
{
    json_object *list = x ? numbers_new(x, n) : NULL;
    if (!ps_report_json_object_add(o, key, list, list != NULL || x == NULL)) {
        json_object_put(list);
        return false;
    }
    return true;
}

/* One entry of "curves"; "test_auc" only with has_auc. */
static json_object *curve_new(const ps_report_curve *c, bool has_auc)
{
    json_object *o = json_object_new_object();
    if (o == NULL || !ps_report_json_fields_put(o, c, curve_fields, COUNT(curve_fields)))
        goto fail;
    json_object *loss = numbers_new(c->train_loss, c->n);
    if (!ps_report_json_object_add(o, "train_loss", loss, loss != NULL)) {
        json_object_put(loss);
        goto fail;
    }
    if (!curve_figures_put(o, "test_metric", c->test_metric, c->n) ||
        (has_auc && !curve_figures_put(o, "test_auc", c->test_auc, c->n)))
        goto fail;
    return o;
fail:
    json_object_put(o);
    return NULL;
}

/* "staleness", "ranks", "unfinished" and "curves" of s into obj. */
static bool server_figures_put(json_object *obj, const ps_report_summary *s)
{
    if (!object_fields_put(obj, "staleness", s->has_staleness, s, staleness_fields,
                           COUNT(staleness_fields)))
        return false;
    json_object *ranks = json_object_new_array();
    bool ok = ranks != NULL;
    for (uint32_t i = 0; ok && i < s->nranks && i < PS_REPORT_RANKS_MAX; i++) {
        json_object *r = json_object_new_object();
        ok = list_add(ranks, r) &&
             ps_report_json_fields_put(r, &s->ranks[i], rank_fields, COUNT(rank_fields));
    }
    if (!ok || !ps_report_json_object_add(obj, "ranks", ranks, true)) {
        json_object_put(ranks);
        return false;
    }
    json_object *unfinished = json_object_new_array();
    ok = unfinished != NULL;
    for (uint32_t i = 0; ok && i < s->nunfinished && i < PS_REPORT_RANKS_MAX; i++) {
        json_object *r = json_object_new_object();
        ok = list_add(unfinished, r) &&
             ps_report_json_fields_put(r, &s->unfinished[i], unfinished_fields,
                                       COUNT(unfinished_fields));
    }
    if (!ok || !ps_report_json_object_add(obj, "unfinished", unfinished, true)) {
        json_object_put(unfinished);
        return false;
    }
    uint32_t named[PS_REPORT_RANKS_MAX];
    uint32_t nnamed = ps_report_summary_dropped_ranks(s, named, PS_REPORT_RANKS_MAX);
    json_object *dropped = json_object_new_array();
    ok = dropped != NULL;
    for (uint32_t i = 0; ok && i < nnamed; i++)
        ok = list_add(dropped, json_object_new_int64(named[i]));
    if (!ok || !ps_report_json_object_add(obj, "dropped_ranks", dropped, true)) {
        json_object_put(dropped);
        return false;
    }
    json_object *curves = json_object_new_array();
    ok = curves != NULL;
    for (uint32_t i = 0; ok && i < s->ncurves; i++)
        ok = list_add(curves, curve_new(&s->curves[i], s->has_auc));
    if (!ok || !ps_report_json_object_add(obj, "curves", curves, true)) {
        json_object_put(curves);
        return false;
    }
    return true;
}

int ps_report_summary_write(FILE *f, const ps_report_summary *s)
{
    if (s->metric_name[0] == '\0' || s->loss_name[0] == '\0')
        return PS_EINVAL;
    named_figure named[4];
    named_figures(s, named);
    json_object *obj = json_object_new_object();
    json_object *metrics = json_object_new_object();
    bool ok = obj != NULL && metrics != NULL;
    for (int i = 0; ok && i < 4; i++)
        ok = ps_report_json_field_put(metrics, s, &named[i].f, named[i].key);
    if (s->has_auc)
        ok = ok && ps_report_json_fields_put(metrics, s, summary_auc, COUNT(summary_auc));
    ok = ok && ps_report_json_fields_put(metrics, s, summary_metrics, COUNT(summary_metrics));
    ok = ok && ps_report_json_fields_put(obj, s, summary_head, COUNT(summary_head));
    ok = ok && test_figure_put(obj, "test_metric", s->has_test, s->metric_name, s->test_metric);
    ok = ok && test_figure_put(obj, "test_loss", s->has_test, s->loss_name, s->test_loss);
    if (s->has_auc)
        ok = ok && test_figure_put(obj, "test_auc", s->has_test, "auc", s->test_auc);
    ok = ok && ps_report_json_object_add(obj, "metrics", metrics, true);
    if (ok)
        metrics = NULL; /* obj owns it now */
    ok = ok && ps_report_json_fields_put(obj, s, summary_batches, COUNT(summary_batches));
    ok = ok && ps_report_json_fields_put(obj, s, summary_tail, COUNT(summary_tail));
    if (ok && s->rank >= 0) {
        json_object *r = json_object_new_int64(s->rank);
        ok = ps_report_json_object_add(obj, "rank", r, r != NULL);
    }
    ok = ok && server_figures_put(obj, s);
    json_object_put(metrics);
    if (!ok) {
        json_object_put(obj);
        return PS_ENOMEM;
    }
    return ps_report_json_write(f, obj, JSON_C_TO_STRING_SPACED);
}

typedef struct test_figure {
    char name[PS_REPORT_WORD_MAX];
    double value;
} test_figure;

/* "test_metric" / "test_loss": null, or {"name": want, "value": num}. */
static int test_figure_get(json_object *obj, const char *key, const char *want, bool *has,
                           double *x, const char *what, ps_error *err)
{
    json_object *fig;
    if (!json_object_object_get_ex(obj, key, &fig))
        return ps_error_set(err, PS_EDATA, "%s: no \"%s\"", what, key);
    *has = fig != NULL;
    if (fig == NULL)
        return 0;
    if (!json_object_is_type(fig, json_type_object))
        return ps_error_set(err, PS_EDATA, "%s: \"%s\" is neither an object nor null", what, key);
    test_figure got;
    static const ps_report_json_field fields[] = {
        PS_REPORT_JSON_FIELD(test_figure, name, PS_REPORT_JSON_STR),
        PS_REPORT_JSON_FIELD(test_figure, value, PS_REPORT_JSON_NUM)};
    char inner[PS_ERROR_MSG_MAX];
    snprintf(inner, sizeof inner, "%s: %s", what, key);
    int rc = ps_report_json_fields_get(fig, &got, fields, 2, inner, err);
    if (rc != 0)
        return rc;
    if (strcmp(got.name, want) != 0)
        return ps_error_set(err, PS_EDATA, "%s: \"%s\" names %s, not %s", what, key, got.name,
                            want);
    *x = got.value;
    return 0;
}

/* "test_auc": absent (no AUC: a model that is not a binary classifier, or
 * a summary from before the AUC), or as "test_metric" is, naming "auc". */
static int test_auc_get(json_object *obj, ps_report_summary *s, const char *what, ps_error *err)
{
    json_object *fig;
    s->has_auc = json_object_object_get_ex(obj, "test_auc", &fig);
    if (!s->has_auc)
        return 0;
    bool has = false;
    int rc = test_figure_get(obj, "test_auc", "auc", &has, &s->test_auc, what, err);
    if (rc == 0 && has != s->has_test)
        rc = ps_error_set(err, PS_EDATA, "%s: \"test_auc\" is %s, and test_metric is %s", what,
                          has ? "an object" : "null", s->has_test ? "an object" : "null");
    return rc;
}

/* A list of at most max numbers or nulls (NAN) into out; *n gets its length. */
static int numbers_get(json_object *list, uint32_t max, double *out, uint32_t *n, const char *what,
                       const char *key, ps_error *err)
{
    if (!json_object_is_type(list, json_type_array))
        return ps_error_set(err, PS_EDATA, "%s: \"%s\" is not a list", what, key);
    size_t len = json_object_array_length(list);
    if (len > max)
        return ps_error_set(err, PS_EDATA, "%s: \"%s\" holds %zu numbers, more than %u", what, key,
                            len, max);
    for (size_t i = 0; i < len; i++) {
        json_object *v = json_object_array_get_idx(list, i);
        json_type t = json_object_get_type(v);
        if (t == json_type_null)
            out[i] = NAN;
        else if (t == json_type_int ||
                 (t == json_type_double && isfinite(json_object_get_double(v))))
            out[i] = json_object_get_double(v);
        else
            return ps_error_set(err, PS_EDATA, "%s: \"%s\"[%zu] is not a number", what, key, i);
    }
    *n = (uint32_t)len;
    return 0;
}

/* The list under key of obj, of at most max entries. */
static int list_get(json_object *obj, const char *key, size_t max, json_object **list, size_t *n,
                    const char *what, ps_error *err)
{
    if (!json_object_object_get_ex(obj, key, list))
        return ps_error_set(err, PS_EDATA, "%s: no \"%s\"", what, key);
    if (!json_object_is_type(*list, json_type_array))
        return ps_error_set(err, PS_EDATA, "%s: \"%s\" is not a list", what, key);
    *n = json_object_array_length(*list);
    if (*n > max)
        return ps_error_set(err, PS_EDATA, "%s: \"%s\" holds %zu entries, more than %zu", what, key,
                            *n, max);
    return 0;
}

static int staleness_get(json_object *obj, ps_report_summary *s, const char *what, ps_error *err)
{
    json_object *st;
    if (!json_object_object_get_ex(obj, "staleness", &st))
        return ps_error_set(err, PS_EDATA, "%s: no \"staleness\"", what);
    s->has_staleness = st != NULL;
    if (st == NULL)
        return 0;
    if (!json_object_is_type(st, json_type_object))
        return ps_error_set(err, PS_EDATA, "%s: \"staleness\" is neither an object nor null", what);
    char inner[PS_ERROR_MSG_MAX];
    snprintf(inner, sizeof inner, "%s: staleness", what);
    return ps_report_json_fields_get(st, s, staleness_fields, COUNT(staleness_fields), inner, err);
}

static int ranks_get(json_object *obj, ps_report_summary *s, const char *what, ps_error *err)
{
    json_object *list;
    size_t n;
    int rc = list_get(obj, "ranks", PS_REPORT_RANKS_MAX, &list, &n, what, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_object *r = json_object_array_get_idx(list, i);
        char inner[PS_ERROR_MSG_MAX];
        snprintf(inner, sizeof inner, "%s: ranks[%zu]", what, i);
        if (!json_object_is_type(r, json_type_object))
            return ps_error_set(err, PS_EDATA, "%s: not an object", inner);
        s->ranks[i].dropped = s->ranks[i].rounds = 0;
        rc = ps_report_json_fields_get(r, &s->ranks[i], rank_fields, RANK_FIELDS_REQUIRED, inner,
                                       err);
        for (size_t k = RANK_FIELDS_REQUIRED; rc == 0 && k < COUNT(rank_fields); k++) {
            json_object *v;
            if (json_object_object_get_ex(r, rank_fields[k].key, &v))
                rc = ps_report_json_field_get(r, &s->ranks[i], &rank_fields[k], rank_fields[k].key,
                                              inner, err);
        }
    }
    if (rc == 0)
        s->nranks = (uint32_t)n;
    return rc;
}

/* "unfinished": absent (a summary from before it) reads as none. */
static int unfinished_get(json_object *obj, ps_report_summary *s, const char *what, ps_error *err)
{
    if (!json_object_object_get_ex(obj, "unfinished", NULL))
        return 0;
    json_object *list;
    size_t n;
    int rc = list_get(obj, "unfinished", PS_REPORT_RANKS_MAX, &list, &n, what, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_object *r = json_object_array_get_idx(list, i);
        char inner[PS_ERROR_MSG_MAX];
        snprintf(inner, sizeof inner, "%s: unfinished[%zu]", what, i);
        if (!json_object_is_type(r, json_type_object))
            return ps_error_set(err, PS_EDATA, "%s: not an object", inner);
        rc = ps_report_json_fields_get(r, &s->unfinished[i], unfinished_fields,
                                       COUNT(unfinished_fields), inner, err);
    }
    if (rc == 0)
        s->nunfinished = (uint32_t)n;
    return rc;
}

/* A curve's test figures under key of c into x: a list of n figures where
 * the summary has a test set, else null; with `expected` false (a summary
 * without an AUC) the key must be absent. *has: whether a list was read. */
static int curve_test_get(json_object *c, const ps_report_summary *s, const char *key,
                          bool expected, uint32_t n, double *x, bool *has, const char *inner,
                          ps_error *err)
{
    json_object *list = NULL;
    bool found = json_object_object_get_ex(c, key, &list);
    if (!expected) {
        if (found)
            return ps_error_set(err, PS_EDATA, "%s: \"%s\", and the summary has no \"%s\"", inner,
                                key, key);
        return 0;
    }
    if (!found)
        return ps_error_set(err, PS_EDATA, "%s: no \"%s\"", inner, key);
    if ((list != NULL) != s->has_test)
        return ps_error_set(err, PS_EDATA, "%s: \"%s\" is %s, and the summary has %s", inner, key,
                            list ? "a list" : "null", s->has_test ? "a test set" : "none");
    *has = list != NULL;
    if (list == NULL)
        return 0;
    uint32_t got = 0;
    int rc = numbers_get(list, PS_REPORT_EPOCHS_MAX, x, &got, inner, key, err);
    if (rc == 0 && got != n)
        rc = ps_error_set(err, PS_EDATA, "%s: %u %s figures for %u epochs", inner, got,
                          strcmp(key, "test_auc") == 0 ? "test AUC" : "test", n);
    return rc;
}

/* One entry of "curves", added to s->curves. */
static int curve_get(json_object *c, ps_report_summary *s, const char *inner, ps_error *err)
{
    double loss[PS_REPORT_EPOCHS_MAX], metric[PS_REPORT_EPOCHS_MAX], auc[PS_REPORT_EPOCHS_MAX];
    bool has_metric = false, has_auc = false;
    if (!json_object_is_type(c, json_type_object))
        return ps_error_set(err, PS_EDATA, "%s: not an object", inner);
    ps_report_curve got = {0};
    int rc = ps_report_json_fields_get(c, &got, curve_fields, COUNT(curve_fields), inner, err);
    if (rc == 0 && got.every == 0)
        rc = ps_error_set(err, PS_EDATA, "%s: \"every\" is 0", inner);
    json_object *list = NULL;
    if (rc == 0 && !json_object_object_get_ex(c, "train_loss", &list))
        rc = ps_error_set(err, PS_EDATA, "%s: no \"train_loss\"", inner);
    if (rc == 0)
        rc = numbers_get(list, PS_REPORT_EPOCHS_MAX, loss, &got.n, inner, "train_loss", err);
    if (rc == 0)
        rc = curve_test_get(c, s, "test_metric", true, got.n, metric, &has_metric, inner, err);
    if (rc == 0)
        rc = curve_test_get(c, s, "test_auc", s->has_auc, got.n, auc, &has_auc, inner, err);
    if (rc != 0)
        return rc;
    rc = ps_report_summary_curve_add(s, got.rank, got.every, got.n, loss,
                                     has_metric ? metric : NULL, has_auc ? auc : NULL);
    if (rc != 0)
        return ps_error_set(err, rc, "%s: %s", inner,
                            rc == PS_ENOMEM ? "out of memory" : "refused");
    return 0;
}

static int curves_get(json_object *obj, ps_report_summary *s, const char *what, ps_error *err)
{
    json_object *list;
    size_t n;
    int rc = list_get(obj, "curves", PS_REPORT_RANKS_MAX, &list, &n, what, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char inner[PS_ERROR_MSG_MAX];
        snprintf(inner, sizeof inner, "%s: curves[%zu]", what, i);
        rc = curve_get(json_object_array_get_idx(list, i), s, inner, err);
    }
    return rc;
}

static int summary_get(json_object *obj, ps_report_summary *s, const char *what, ps_error *err)
{
    int rc = ps_report_json_fields_get(obj, s, summary_head, COUNT(summary_head), what, err);
    if (rc == 0 && (s->metric_name[0] == '\0' || s->loss_name[0] == '\0'))
        rc = ps_error_set(err, PS_EDATA, "%s: an empty metric or loss name", what);
    bool has_loss = false;
    if (rc == 0)
        rc = test_figure_get(obj, "test_metric", s->metric_name, &s->has_test, &s->test_metric,
                             what, err);
    if (rc == 0)
        rc = test_figure_get(obj, "test_loss", s->loss_name, &has_loss, &s->test_loss, what, err);
    if (rc == 0 && has_loss != s->has_test)
        rc = ps_error_set(err, PS_EDATA, "%s: one of test_metric and test_loss is null", what);
    if (rc == 0)
        rc = test_auc_get(obj, s, what, err);
    if (rc != 0)
        return rc;
    json_object *metrics;
    if (!json_object_object_get_ex(obj, "metrics", &metrics) ||
        !json_object_is_type(metrics, json_type_object))
        return ps_error_set(err, PS_EDATA, "%s: no \"metrics\" object", what);
    char inner[PS_ERROR_MSG_MAX];
    snprintf(inner, sizeof inner, "%s: metrics", what);
    named_figure named[4];
    named_figures(s, named);
    for (int i = 0; rc == 0 && i < 4; i++)
        rc = ps_report_json_field_get(metrics, s, &named[i].f, named[i].key, inner, err);
    if (rc == 0 && s->has_auc)
        rc = ps_report_json_fields_get(metrics, s, summary_auc, COUNT(summary_auc), inner, err);
    if (rc == 0)
        rc = ps_report_json_fields_get(metrics, s, summary_metrics, COUNT(summary_metrics), inner,
                                       err);
    if (rc == 0)
        rc = ps_report_json_fields_get(obj, s, summary_tail, COUNT(summary_tail), what, err);
    if (rc == 0 && json_object_object_get_ex(obj, "batches", NULL))
        rc = ps_report_json_fields_get(obj, s, summary_batches, COUNT(summary_batches), what, err);
    json_object *r;
    if (rc == 0 && json_object_object_get_ex(obj, "rank", &r)) {
        if (!json_object_is_type(r, json_type_int) || json_object_get_int64(r) < 0 ||
            json_object_get_int64(r) > UINT32_MAX)
            return ps_error_set(err, PS_EDATA, "%s: \"rank\" is not a rank", what);
        s->rank = json_object_get_int64(r);
    }
    if (rc == 0)
        rc = staleness_get(obj, s, what, err);
    if (rc == 0)
        rc = ranks_get(obj, s, what, err);
    if (rc == 0)
        rc = unfinished_get(obj, s, what, err);
    if (rc == 0)
        rc = curves_get(obj, s, what, err);
    return rc;
}

int ps_report_summary_read(const char *path, ps_report_summary *s, ps_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
    json_object *obj;
    int rc = ps_report_json_read_fd(fd, path, &obj, err);
    close(fd);
    if (rc != 0)
        return rc;
    ps_report_summary *got = malloc(sizeof *got); /* large: off the stack */
    if (got == NULL) {
        json_object_put(obj);
        return ps_error_set(err, PS_ENOMEM, "%s: %s", path, ps_strerror(PS_ENOMEM));
    }
    ps_report_summary_init(got);
    rc = summary_get(obj, got, path, err);
    json_object_put(obj);
    if (rc == 0)
        *s = *got;
    else
        ps_report_summary_fini(got);
    free(got);
    return rc;
}

static int summary_fill(FILE *f, const void *arg)
{
    return ps_report_summary_write(f, arg);
}

int ps_report_summary_file_write(const char *path, const ps_report_summary *s, ps_error *err)
{
    return ps_report_file_replace(path, summary_fill, s, err);
}
