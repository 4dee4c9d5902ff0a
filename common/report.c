/* report.c — the progress stream, the plan, the summary, sd_notify
 * datagrams and the training curves as report.h describes them. The JSON
 * formats are tables of fields, so a key is written and read from the same
 * row. */
#include "report.h"

#include "svg.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <sys/stat.h>
#include <stdio.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JSON_DEPTH_MAX 16

/* ---- numbers ---- */

const char *ps_report_number_format(double x, int decimals, char *buf, size_t cap)
{
    if (isnan(x))
        snprintf(buf, cap, "nan");
    else if (isinf(x))
        snprintf(buf, cap, x > 0 ? "inf" : "-inf");
    else
        snprintf(buf, cap, "%.*f", decimals, x);
    return buf;
}

/* ---- the progress stream ---- */

int ps_report_progress_format(const ps_report_progress *p, char *buf, size_t cap)
{
    char loss[32];
    if (isnan(p->loss))
        snprintf(loss, sizeof loss, "nan");
    else if (isinf(p->loss))
        snprintf(loss, sizeof loss, p->loss > 0 ? "inf" : "-inf");
    else
        snprintf(loss, sizeof loss, "%.6g", p->loss);
    int n = snprintf(buf, cap, "progress %u %llu %llu %u %s\n", p->rank,
                     (unsigned long long)p->done, (unsigned long long)p->total, p->epoch, loss);
    if (n < 0 || (size_t)n >= cap || (size_t)n > PS_REPORT_PROGRESS_MAX)
        return PS_EINVAL;
    return n;
}

/* An unsigned decimal up to max, then one space (or the end when last);
 * advances *s. */
static bool parse_uint_field(const char **s, uint64_t max, bool last, uint64_t *out)
{
    const char *p = *s;
    if (*p < '0' || *p > '9')
        return false;
    uint64_t v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (last ? *p != '\0' : *p != ' ')
        return false;
    *s = last ? p : p + 1;
    *out = v;
    return true;
}

int ps_report_progress_parse(const char *line, ps_report_progress *p)
{
    static const char tag[] = "progress ";
    if (strncmp(line, tag, sizeof tag - 1) != 0)
        return PS_EINVAL;
    const char *s = line + sizeof tag - 1;
    uint64_t rank, done, total, epoch;
    if (!parse_uint_field(&s, UINT32_MAX, false, &rank) ||
        !parse_uint_field(&s, UINT64_MAX, false, &done) ||
        !parse_uint_field(&s, UINT64_MAX, false, &total) ||
        !parse_uint_field(&s, UINT32_MAX, false, &epoch))
        return PS_EINVAL;
    /* strtod also takes nan, inf and -inf; nothing may follow the number */
    if (*s == '\0' || *s == ' ')
        return PS_EINVAL;
    char *end;
    double loss = strtod(s, &end);
    if (end == s || *end != '\0')
        return PS_EINVAL;
    *p = (ps_report_progress){(uint32_t)rank, done, total, (uint32_t)epoch, loss};
    return 0;
}

int ps_report_progress_write(int fd, const ps_report_progress *p)
{
    char line[PS_REPORT_PROGRESS_MAX + 1];
    int n = ps_report_progress_format(p, line, sizeof line);
    if (n < 0)
        return n;
    ssize_t w;
    do {
        w = write(fd, line, (size_t)n);
    } while (w < 0 && errno == EINTR);
    return w == n ? 0 : PS_EIO;
}

void ps_report_progress_reader_init(ps_report_progress_reader *r)
{
    memset(r, 0, sizeof *r);
}

size_t ps_report_progress_feed(ps_report_progress_reader *r, const char *bytes, size_t n,
                               void (*on_line)(void *arg, const ps_report_progress *p), void *arg)
{
    size_t rejected = 0;
    for (size_t i = 0; i < n; i++) {
        char c = bytes[i];
        if (c != '\n') {
            /* room for the line, without its '\n', and a NUL */
            if (r->len < sizeof r->line - 1)
                r->line[r->len++] = c;
            else
                r->overlong = true;
            continue;
        }
        r->line[r->len] = '\0';
        ps_report_progress p;
        if (!r->overlong && ps_report_progress_parse(r->line, &p) == 0)
            on_line(arg, &p);
        else
            rejected++;
        r->len = 0;
        r->overlong = false;
    }
    r->rejected += rejected;
    return rejected;
}

/* ---- JSON fields ---- */

typedef enum field_kind {
    FIELD_STR, /* char[size] */
    FIELD_U32,
    FIELD_U64,
    FIELD_NUM, /* double; null when not finite */
} field_kind;

typedef struct field {
    const char *key;
    field_kind kind;
    size_t off;
    size_t size;
} field;

#define FIELD(type, member, kind)                                                                  \
    {                                                                                              \
#member, kind, offsetof(type, member), sizeof(((type *)0)->member)                         \
    }

/* A number's shortest text that reads back as the same double, or null. */
static json_object *number_new(double x)
{
    if (!isfinite(x))
        return NULL; /* json-c would write NaN, which is not JSON */
    char text[32];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, x);
        if (strtod(text, NULL) == x)
            break;
    }
    return json_object_new_double_s(x, text);
}

/* Adds key: value to obj; false when memory ran out. A NULL value is a
 * JSON null, unless `made` says the value could not be made. */
static bool object_put(json_object *obj, const char *key, json_object *value, bool made)
{
    if (!made)
        return false;
    return json_object_object_add(obj, key, value) == 0;
}

static bool field_put(json_object *obj, const void *base, const field *f, const char *key)
{
    const char *p = (const char *)base + f->off;
    json_object *v = NULL;
    switch (f->kind) {
    case FIELD_STR:
        v = json_object_new_string(p);
        return object_put(obj, key, v, v != NULL);
    case FIELD_U32:
        v = json_object_new_int64(*(const uint32_t *)(const void *)p);
        return object_put(obj, key, v, v != NULL);
    case FIELD_U64:
        v = json_object_new_uint64(*(const uint64_t *)(const void *)p);
        return object_put(obj, key, v, v != NULL);
    case FIELD_NUM: {
        double x = *(const double *)(const void *)p;
        v = number_new(x);
        return object_put(obj, key, v, v != NULL || !isfinite(x));
    }
    }
    return false;
}

static bool fields_put(json_object *obj, const void *base, const field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!field_put(obj, base, &fields[i], fields[i].key))
            return false;
    return true;
}

/* Reads key of obj into the field; "what" names the document in errors. */
static int field_get(json_object *obj, void *base, const field *f, const char *key,
                     const char *what, ps_error *err)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v))
        return ps_error_set(err, PS_EDATA, "%s: no \"%s\"", what, key);
    char *p = (char *)base + f->off;
    json_type t = json_object_get_type(v);
    switch (f->kind) {
    case FIELD_STR: {
        if (t != json_type_string)
            return ps_error_set(err, PS_EDATA, "%s: \"%s\" is not a string", what, key);
        size_t len = (size_t)json_object_get_string_len(v);
        if (len >= f->size)
            return ps_error_set(err, PS_EDATA, "%s: \"%s\" is longer than %zu bytes", what, key,
                                f->size - 1);
        memcpy(p, json_object_get_string(v), len + 1);
        return 0;
    }
    case FIELD_U32:
    case FIELD_U64: {
        uint64_t max = f->kind == FIELD_U32 ? UINT32_MAX : UINT64_MAX;
        if (t != json_type_int || json_object_get_int64(v) < 0)
            return ps_error_set(err, PS_EDATA, "%s: \"%s\" is not a count", what, key);
        uint64_t u = json_object_get_uint64(v);
        if (u > max)
            return ps_error_set(err, PS_EDATA, "%s: \"%s\" is out of range", what, key);
        if (f->kind == FIELD_U32)
            *(uint32_t *)(void *)p = (uint32_t)u;
        else
            *(uint64_t *)(void *)p = u;
        return 0;
    }
    case FIELD_NUM:
        if (t == json_type_null)
            *(double *)(void *)p = NAN;
        else if (t == json_type_int ||
                 (t == json_type_double && isfinite(json_object_get_double(v))))
            *(double *)(void *)p = json_object_get_double(v);
        else /* json-c reads NaN and Infinity, which JSON does not have */
            return ps_error_set(err, PS_EDATA, "%s: \"%s\" is not a number", what, key);
        return 0;
    }
    return ps_error_set(err, PS_EDATA, "%s: \"%s\": unknown field", what, key);
}

static int fields_get(json_object *obj, void *base, const field *fields, size_t n, const char *what,
                      ps_error *err)
{
    for (size_t i = 0; i < n; i++) {
        int rc = field_get(obj, base, &fields[i], fields[i].key, what, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Writes obj and a '\n' to f, then frees obj. */
static int json_put(FILE *f, json_object *obj, int flags)
{
    const char *text = json_object_to_json_string_ext(obj, flags | JSON_C_TO_STRING_NOSLASHESCAPE);
    int rc = text == NULL ? PS_ENOMEM : fprintf(f, "%s\n", text) < 0 ? PS_EIO : 0;
    json_object_put(obj);
    return rc;
}

/* Everything fd holds, up to PS_REPORT_JSON_MAX bytes, NUL-terminated
 * (caller frees). */
static int read_all(int fd, const char *what, char **out, size_t *len, ps_error *err)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return ps_error_set(err, PS_ENOMEM, "%s: out of memory", what);
    for (;;) {
        if (n > PS_REPORT_JSON_MAX) {
            free(buf);
            return ps_error_set(err, PS_EDATA, "%s: larger than %u bytes", what,
                                PS_REPORT_JSON_MAX);
        }
        if (n == cap - 1) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                return ps_error_set(err, PS_ENOMEM, "%s: out of memory", what);
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            return ps_error_set(err, PS_EIO, "%s: %s", what, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* The one JSON object fd holds, nothing but white space after it. */
static int json_read_fd(int fd, const char *what, json_object **out, ps_error *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_all(fd, what, &text, &len, err);
    if (rc != 0)
        return rc;
    json_tokener *tok = json_tokener_new_ex(JSON_DEPTH_MAX);
    if (tok == NULL) {
        free(text);
        return ps_error_set(err, PS_ENOMEM, "%s: out of memory", what);
    }
    /* strict: no single quotes or bare words; the trailing check is ours */
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
    json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (obj == NULL) {
        rc = ps_error_set(err, PS_EDATA, "%s: not JSON: %s", what,
                          len == 0                        ? "empty"
                          : jerr == json_tokener_continue ? "it ends in the middle"
                                                          : json_tokener_error_desc(jerr));
        free(text);
        return rc;
    }
    while (end < len && strchr(" \t\r\n", text[end]) != NULL)
        end++;
    bool trailing = end < len;
    free(text);
    if (trailing) {
        json_object_put(obj);
        return ps_error_set(err, PS_EDATA, "%s: more than one JSON value", what);
    }
    if (!json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        return ps_error_set(err, PS_EDATA, "%s: not a JSON object", what);
    }
    *out = obj;
    return 0;
}

/* ---- the plan ---- */

static const field plan_fields[] = {
    FIELD(ps_report_plan, job, FIELD_STR),
    FIELD(ps_report_plan, mode, FIELD_STR),
    FIELD(ps_report_plan, workers, FIELD_U32),
    /* "servers" (a list) comes here */
    FIELD(ps_report_plan, on_worker_loss, FIELD_STR),
    FIELD(ps_report_plan, on_divergence, FIELD_STR),
    FIELD(ps_report_plan, model, FIELD_STR),
    FIELD(ps_report_plan, features, FIELD_U64),
    FIELD(ps_report_plan, params, FIELD_U64),
    FIELD(ps_report_plan, epochs, FIELD_U32),
    FIELD(ps_report_plan, batch_size, FIELD_U32),
    FIELD(ps_report_plan, output, FIELD_STR),
    FIELD(ps_report_plan, compression, FIELD_STR),
};
#define PLAN_FIELDS (sizeof plan_fields / sizeof plan_fields[0])
#define PLAN_HEAD   3 /* fields before "servers" */

int ps_report_plan_write(FILE *f, const ps_report_plan *p)
{
    if (p->workers == 0 || p->nservers == 0 || p->nservers > PS_REPORT_SERVERS_MAX)
        return PS_EINVAL;
    json_object *obj = json_object_new_object();
    json_object *list = json_object_new_array();
    bool ok = obj != NULL && list != NULL;
    for (uint32_t i = 0; ok && i < p->nservers; i++) {
        json_object *s = json_object_new_string(p->servers[i]);
        ok = s != NULL && json_object_array_add(list, s) == 0;
    }
    ok = ok && fields_put(obj, p, plan_fields, PLAN_HEAD);
    ok = ok && object_put(obj, "servers", list, true);
    if (ok)
        list = NULL; /* obj owns it now */
    ok = ok && fields_put(obj, p, plan_fields + PLAN_HEAD, PLAN_FIELDS - PLAN_HEAD);
    json_object_put(list);
    if (!ok) {
        json_object_put(obj);
        return PS_ENOMEM;
    }
    return json_put(f, obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
}

static int plan_servers_get(json_object *obj, ps_report_plan *p, const char *what, ps_error *err)
{
    json_object *list;
    if (!json_object_object_get_ex(obj, "servers", &list))
        return ps_error_set(err, PS_EDATA, "%s: no \"servers\"", what);
    if (!json_object_is_type(list, json_type_array))
        return ps_error_set(err, PS_EDATA, "%s: \"servers\" is not a list", what);
    size_t n = json_object_array_length(list);
    if (n == 0 || n > PS_REPORT_SERVERS_MAX)
        return ps_error_set(err, PS_EDATA, "%s: %zu servers, not 1 to %d", what, n,
                            PS_REPORT_SERVERS_MAX);
    for (size_t i = 0; i < n; i++) {
        json_object *s = json_object_array_get_idx(list, i);
        if (!json_object_is_type(s, json_type_string) ||
            (size_t)json_object_get_string_len(s) >= PS_REPORT_ENDPOINT_MAX)
            return ps_error_set(err, PS_EDATA, "%s: server %zu is not an endpoint", what, i);
        memcpy(p->servers[i], json_object_get_string(s), (size_t)json_object_get_string_len(s) + 1);
    }
    p->nservers = (uint32_t)n;
    return 0;
}

int ps_report_plan_read_fd(int fd, const char *what, ps_report_plan *p, ps_error *err)
{
    json_object *obj;
    int rc = json_read_fd(fd, what, &obj, err);
    if (rc != 0)
        return rc;
    ps_report_plan got;
    memset(&got, 0, sizeof got);
    rc = fields_get(obj, &got, plan_fields, PLAN_FIELDS, what, err);
    if (rc == 0)
        rc = plan_servers_get(obj, &got, what, err);
    json_object_put(obj);
    if (rc == 0 && got.workers == 0)
        rc = ps_error_set(err, PS_EDATA, "%s: no workers", what);
    if (rc == 0)
        *p = got;
    return rc;
}

/* ---- the summary ---- */

static const field summary_head[] = {
    FIELD(ps_report_summary, job, FIELD_STR),
    FIELD(ps_report_summary, model, FIELD_STR),
    FIELD(ps_report_summary, mode, FIELD_STR),
    FIELD(ps_report_summary, final_loss, FIELD_NUM),
    FIELD(ps_report_summary, metric_name, FIELD_STR),
    FIELD(ps_report_summary, loss_name, FIELD_STR),
};
/* then "test_metric", "test_loss", "metrics" */
static const field summary_metrics[] = {
    FIELD(ps_report_summary, train_loss_last_epoch, FIELD_NUM),
    FIELD(ps_report_summary, train_samples, FIELD_U64),
    FIELD(ps_report_summary, test_samples, FIELD_U64),
    FIELD(ps_report_summary, epochs, FIELD_U32),
    FIELD(ps_report_summary, steps_per_epoch, FIELD_U64),
    FIELD(ps_report_summary, batch_size, FIELD_U32),
    FIELD(ps_report_summary, pull_s, FIELD_NUM),
    FIELD(ps_report_summary, compute_s, FIELD_NUM),
    FIELD(ps_report_summary, push_pull_s, FIELD_NUM),
};
static const field summary_tail[] = {
    FIELD(ps_report_summary, wall_s, FIELD_NUM),
    FIELD(ps_report_summary, samples_per_s, FIELD_NUM),
    FIELD(ps_report_summary, updates, FIELD_U64),
    FIELD(ps_report_summary, version, FIELD_U64),
    FIELD(ps_report_summary, workers, FIELD_U32),
};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The named figures of "metrics": METRIC, LOSS, train_METRIC, train_LOSS. */
typedef struct named_figure {
    char key[PS_REPORT_WORD_MAX + 8];
    field f;
} named_figure;

static void named_figures(const ps_report_summary *s, named_figure out[4])
{
    const char *names[4] = {s->metric_name, s->loss_name, s->metric_name, s->loss_name};
    size_t offs[4] = {offsetof(ps_report_summary, metric), offsetof(ps_report_summary, loss),
                      offsetof(ps_report_summary, train_metric),
                      offsetof(ps_report_summary, train_loss)};
    for (int i = 0; i < 4; i++) {
        snprintf(out[i].key, sizeof out[i].key, "%s%s", i < 2 ? "" : "train_", names[i]);
        out[i].f = (field){out[i].key, FIELD_NUM, offs[i], sizeof(double)};
    }
}

void ps_report_summary_init(ps_report_summary *s)
{
    memset(s, 0, sizeof *s);
    s->final_loss = s->test_metric = s->test_loss = NAN;
    s->metric = s->loss = s->train_metric = s->train_loss = s->train_loss_last_epoch = NAN;
    s->pull_s = s->compute_s = s->push_pull_s = s->wall_s = s->samples_per_s = NAN;
    s->rank = -1;
    s->staleness_mean = NAN;
}

static void curve_free(ps_report_curve *c)
{
    free(c->train_loss);
    free(c->test_metric);
    c->train_loss = c->test_metric = NULL;
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
                                const double *train_loss, const double *test_metric)
{
    if (every == 0 || n > PS_REPORT_EPOCHS_MAX || s->ncurves >= PS_REPORT_RANKS_MAX ||
        (n > 0 && train_loss == NULL))
        return PS_EINVAL;
    ps_report_curve c = {rank, every, n, doubles_dup(train_loss, n), NULL};
    if (test_metric != NULL)
        c.test_metric = doubles_dup(test_metric, n);
    ps_report_curve *grown = realloc(s->curves, (s->ncurves + 1) * sizeof *grown);
    if (c.train_loss == NULL || (test_metric != NULL && c.test_metric == NULL) || grown == NULL) {
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
        return object_put(obj, key, NULL, true);
    json_object *fig = json_object_new_object();
    json_object *n = fig ? json_object_new_string(name) : NULL;
    json_object *v = number_new(x);
    bool ok = fig != NULL && object_put(fig, "name", n, n != NULL) &&
              object_put(fig, "value", v, v != NULL || !isfinite(x));
    if (!ok)
        json_object_put(v);
    if (!ok || !object_put(obj, key, fig, true)) {
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
        json_object *v = number_new(x[i]);
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
                              const field *fields, size_t n)
{
    if (!has)
        return object_put(obj, key, NULL, true);
    json_object *o = json_object_new_object();
    if (o == NULL || !fields_put(o, base, fields, n) || !object_put(obj, key, o, true)) {
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

static const field staleness_fields[] = {
    {"max", FIELD_U64, offsetof(ps_report_summary, staleness_max), sizeof(uint64_t)},
    {"mean", FIELD_NUM, offsetof(ps_report_summary, staleness_mean), sizeof(double)},
    {"p99", FIELD_U64, offsetof(ps_report_summary, staleness_p99), sizeof(uint64_t)},
};
static const field rank_fields[] = {
    FIELD(ps_report_rank, rank, FIELD_U32),
    FIELD(ps_report_rank, clock, FIELD_U64),
    FIELD(ps_report_rank, pushes, FIELD_U64),
};
static const field curve_fields[] = {
    FIELD(ps_report_curve, rank, FIELD_U32),
    FIELD(ps_report_curve, every, FIELD_U32),
};

static json_object *curve_new(const ps_report_curve *c)
{
    json_object *o = json_object_new_object();
    if (o == NULL || !fields_put(o, c, curve_fields, COUNT(curve_fields)))
        goto fail;
    json_object *loss = numbers_new(c->train_loss, c->n);
    if (!object_put(o, "train_loss", loss, loss != NULL)) {
        json_object_put(loss);
        goto fail;
    }
    json_object *metric = c->test_metric ? numbers_new(c->test_metric, c->n) : NULL;
    if (!object_put(o, "test_metric", metric, metric != NULL || c->test_metric == NULL)) {
        json_object_put(metric);
        goto fail;
    }
    return o;
fail:
    json_object_put(o);
    return NULL;
}

/* "staleness", "ranks" and "curves" of s into obj. */
static bool server_figures_put(json_object *obj, const ps_report_summary *s)
{
    if (!object_fields_put(obj, "staleness", s->has_staleness, s, staleness_fields,
                           COUNT(staleness_fields)))
        return false;
    json_object *ranks = json_object_new_array();
    bool ok = ranks != NULL;
    for (uint32_t i = 0; ok && i < s->nranks && i < PS_REPORT_RANKS_MAX; i++) {
        json_object *r = json_object_new_object();
        ok = list_add(ranks, r) && fields_put(r, &s->ranks[i], rank_fields, COUNT(rank_fields));
    }
    if (!ok || !object_put(obj, "ranks", ranks, true)) {
        json_object_put(ranks);
        return false;
    }
    json_object *curves = json_object_new_array();
    ok = curves != NULL;
    for (uint32_t i = 0; ok && i < s->ncurves; i++)
        ok = list_add(curves, curve_new(&s->curves[i]));
    if (!ok || !object_put(obj, "curves", curves, true)) {
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
        ok = field_put(metrics, s, &named[i].f, named[i].key);
    ok = ok && fields_put(metrics, s, summary_metrics, COUNT(summary_metrics));
    ok = ok && fields_put(obj, s, summary_head, COUNT(summary_head));
    ok = ok && test_figure_put(obj, "test_metric", s->has_test, s->metric_name, s->test_metric);
    ok = ok && test_figure_put(obj, "test_loss", s->has_test, s->loss_name, s->test_loss);
    ok = ok && object_put(obj, "metrics", metrics, true);
    if (ok)
        metrics = NULL; /* obj owns it now */
    ok = ok && fields_put(obj, s, summary_tail, COUNT(summary_tail));
    if (ok && s->rank >= 0) {
        json_object *r = json_object_new_int64(s->rank);
        ok = object_put(obj, "rank", r, r != NULL);
    }
    ok = ok && server_figures_put(obj, s);
    json_object_put(metrics);
    if (!ok) {
        json_object_put(obj);
        return PS_ENOMEM;
    }
    return json_put(f, obj, JSON_C_TO_STRING_SPACED);
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
    static const field fields[] = {FIELD(test_figure, name, FIELD_STR),
                                   FIELD(test_figure, value, FIELD_NUM)};
    char inner[PS_ERROR_MSG_MAX];
    snprintf(inner, sizeof inner, "%s: %s", what, key);
    int rc = fields_get(fig, &got, fields, 2, inner, err);
    if (rc != 0)
        return rc;
    if (strcmp(got.name, want) != 0)
        return ps_error_set(err, PS_EDATA, "%s: \"%s\" names %s, not %s", what, key, got.name,
                            want);
    *x = got.value;
    return 0;
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
    return fields_get(st, s, staleness_fields, COUNT(staleness_fields), inner, err);
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
        rc = fields_get(r, &s->ranks[i], rank_fields, COUNT(rank_fields), inner, err);
    }
    if (rc == 0)
        s->nranks = (uint32_t)n;
    return rc;
}

/* One entry of "curves", added to s->curves. */
static int curve_get(json_object *c, ps_report_summary *s, const char *inner, ps_error *err)
{
    double loss[PS_REPORT_EPOCHS_MAX], metric[PS_REPORT_EPOCHS_MAX]; /* 16 KB */
    if (!json_object_is_type(c, json_type_object))
        return ps_error_set(err, PS_EDATA, "%s: not an object", inner);
    ps_report_curve got = {0};
    int rc = fields_get(c, &got, curve_fields, COUNT(curve_fields), inner, err);
    if (rc == 0 && got.every == 0)
        rc = ps_error_set(err, PS_EDATA, "%s: \"every\" is 0", inner);
    json_object *list = NULL;
    if (rc == 0 && !json_object_object_get_ex(c, "train_loss", &list))
        rc = ps_error_set(err, PS_EDATA, "%s: no \"train_loss\"", inner);
    if (rc == 0)
        rc = numbers_get(list, PS_REPORT_EPOCHS_MAX, loss, &got.n, inner, "train_loss", err);
    if (rc == 0 && !json_object_object_get_ex(c, "test_metric", &list))
        rc = ps_error_set(err, PS_EDATA, "%s: no \"test_metric\"", inner);
    if (rc != 0)
        return rc;
    if ((list != NULL) != s->has_test)
        return ps_error_set(err, PS_EDATA, "%s: \"test_metric\" is %s, and the summary has %s",
                            inner, list ? "a list" : "null", s->has_test ? "a test set" : "none");
    uint32_t n = 0;
    if (list != NULL) {
        rc = numbers_get(list, PS_REPORT_EPOCHS_MAX, metric, &n, inner, "test_metric", err);
        if (rc == 0 && n != got.n)
            rc = ps_error_set(err, PS_EDATA, "%s: %u test figures for %u epochs", inner, n, got.n);
        if (rc != 0)
            return rc;
    }
    rc = ps_report_summary_curve_add(s, got.rank, got.every, got.n, loss, list ? metric : NULL);
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
    int rc = fields_get(obj, s, summary_head, COUNT(summary_head), what, err);
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
        rc = field_get(metrics, s, &named[i].f, named[i].key, inner, err);
    if (rc == 0)
        rc = fields_get(metrics, s, summary_metrics, COUNT(summary_metrics), inner, err);
    if (rc == 0)
        rc = fields_get(obj, s, summary_tail, COUNT(summary_tail), what, err);
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
        rc = curves_get(obj, s, what, err);
    return rc;
}

int ps_report_summary_read(const char *path, ps_report_summary *s, ps_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
    json_object *obj;
    int rc = json_read_fd(fd, path, &obj, err);
    close(fd);
    if (rc != 0)
        return rc;
    ps_report_summary got;
    ps_report_summary_init(&got);
    rc = summary_get(obj, &got, path, err);
    json_object_put(obj);
    if (rc == 0)
        *s = got;
    else
        ps_report_summary_fini(&got);
    return rc;
}

/* ---- training curves ---- */

/* A figure's name as a person reads it in a chart: "log-loss", "R²". */
static const char *chart_name(const char *name)
{
    if (strcmp(name, "log_loss") == 0)
        return "log-loss";
    if (strcmp(name, "r2") == 0)
        return "R\u00b2";
    return name;
}

int ps_report_curves_write(FILE *f, const ps_report_summary *s, const char *codec)
{
    size_t n = s->ncurves;
    ps_svg_line *lines = calloc(2 * n + 1, sizeof *lines);
    char(*labels)[24] = calloc(n + 1, sizeof *labels);
    if (lines == NULL || labels == NULL) {
        free(lines);
        free(labels);
        return PS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const ps_report_curve *c = &s->curves[i];
        snprintf(labels[i], sizeof labels[i], "rank %u", c->rank);
        ps_svg_line line = {.label = labels[i], .rank = c->rank, .x0 = c->every, .dx = c->every};
        lines[i] = line;
        lines[i].y = c->train_loss;
        lines[i].n = c->n;
        lines[n + i] = line;
        lines[n + i].y = c->test_metric;
        lines[n + i].n = c->test_metric ? c->n : 0;
    }
    char title[PS_REPORT_NAME_MAX + 3 * PS_REPORT_WORD_MAX + 32];
    snprintf(title, sizeof title, "%s \u2014 %s, mode %s, codec %s", s->job, s->model, s->mode,
             codec ? codec : "none");
    char loss[PS_REPORT_WORD_MAX + 32], metric[PS_REPORT_WORD_MAX + 32];
    snprintf(loss, sizeof loss, "training loss (%s)", chart_name(s->loss_name));
    snprintf(metric, sizeof metric, "test %s", chart_name(s->metric_name));
    ps_svg_panel panels[2] = {
        {"train_loss", "epoch", loss, "no finite loss", true, lines, n},
        {"test_metric", "epoch", metric, s->has_test ? "no finite figures" : "no test set", true,
         lines + n, s->has_test ? n : 0},
    };
    ps_svg_chart chart = {title, panels, 2};
    int rc = ps_svg_chart_write(f, &chart);
    free(lines);
    free(labels);
    return rc;
}

/* ---- sd_notify ---- */

/* Copies src[0, len) into dst (cap bytes), cut at a UTF-8 character
 * boundary when it does not fit. */
static void copy_cut(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap) {
        len = cap - 1;
        while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
}

void ps_report_notify_parse(const char *dgram, size_t len, ps_report_notify *n)
{
    memset(n, 0, sizeof *n);
    size_t i = 0;
    while (i < len) {
        const char *line = dgram + i;
        const char *nl = memchr(line, '\n', len - i);
        size_t llen = nl ? (size_t)(nl - line) : len - i;
        i += llen + 1;
        if (llen == 7 && memcmp(line, "READY=1", 7) == 0)
            n->ready = true;
        else if (llen == 10 && memcmp(line, "STOPPING=1", 10) == 0)
            n->stopping = true;
        else if (llen >= 7 && memcmp(line, "STATUS=", 7) == 0)
            copy_cut(n->status, sizeof n->status, line + 7, llen - 7);
    }
}

/* ---- the job's summary from its workers' ---- */

void ps_report_job_begin(ps_report_summary *job, ps_report_job_sum *sum)
{
    ps_report_summary_init(job);
    memset(sum, 0, sizeof *sum);
}

int ps_report_job_add(ps_report_summary *job, ps_report_job_sum *sum, const ps_report_summary *w)
{
    if (sum->added == 0) {
        ps_report_curve *curves = job->curves;
        uint32_t ncurves = job->ncurves;
        *job = *w; /* the lowest rank's figures; the curves stay the job's own */
        job->curves = curves;
        job->ncurves = ncurves;
    }
    for (uint32_t k = 0; k < w->ncurves; k++) {
        const ps_report_curve *c = &w->curves[k];
        int rc = ps_report_summary_curve_add(job, c->rank, c->every, c->n, c->train_loss,
                                             c->test_metric);
        if (rc != 0)
            return rc;
    }
    double n = w->train_samples > 0 ? (double)w->train_samples : 1.0;
    sum->loss_sum += w->final_loss * n;
    sum->samples_sum += n;
    if (isfinite(w->samples_per_s))
        sum->throughput += w->samples_per_s;
    sum->updates += w->updates;
    sum->added++;
    return 0;
}

int ps_report_job_end(ps_report_summary *job, const ps_report_job_sum *sum, const char *name,
                      const char *mode, uint32_t workers, double wall_s)
{
    if (sum->added == 0)
        return PS_EINVAL;
    snprintf(job->job, sizeof job->job, "%s", name);
    snprintf(job->mode, sizeof job->mode, "%s", mode);
    job->final_loss = sum->loss_sum / sum->samples_sum;
    job->wall_s = wall_s;
    job->samples_per_s = sum->throughput;
    job->updates = sum->updates;
    job->workers = workers;
    job->rank = -1;
    return 0;
}

/* ---- files ---- */

int ps_report_file_replace(const char *path, int (*fill)(FILE *f, const void *arg), const void *arg,
                           ps_error *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return ps_error_set(err, PS_EIO, "%s: path too long", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
    int rc = PS_EIO;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
        close(fd);
        goto unlink_tmp;
    }
    rc = fill(f, arg);
    if (rc != 0) {
        ps_error_set(err, rc, "%s: %s", path, ps_strerror(rc));
        fclose(f);
        goto unlink_tmp;
    }
    /* mkstemp makes 0600; an output file is for everyone who may read the folder */
    if (fflush(f) != 0 || ferror(f) || fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
        rc = ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno ? errno : EIO));
        fclose(f);
        goto unlink_tmp;
    }
    if (fclose(f) != 0) {
        rc = ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
        goto unlink_tmp;
    }
    if (rename(tmp, path) != 0) {
        rc = ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
        goto unlink_tmp;
    }
    return 0;
unlink_tmp:
    unlink(tmp);
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

typedef struct curves_args {
    const ps_report_summary *s;
    const char *codec;
} curves_args;

static int curves_fill(FILE *f, const void *arg)
{
    const curves_args *a = arg;
    return ps_report_curves_write(f, a->s, a->codec);
}

int ps_report_curves_file_write(const char *path, const ps_report_summary *s, const char *codec,
                                ps_error *err)
{
    curves_args a = {s, codec};
    return ps_report_file_replace(path, curves_fill, &a, err);
}
