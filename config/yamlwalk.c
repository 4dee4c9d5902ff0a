/* yamlwalk.c — reads libyaml's node tree into a struct against tables of
 * key rows (yamlwalk.h): scalars converted with one message per way they
 * can be wrong, sections walked recursively, every key's place recorded,
 * and the rows' only-with rules checked once the whole file is read. */
#include "yamlwalk.h"

#include "suggest.h"
#include "util.h"

#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHOW(buf, s) ps_yamlwalk_show((buf), sizeof(buf), (s), PS_YAMLWALK_SHOW_MAX)

/* ---- messages ---- */

static void vfail(ps_error *err, const char *file, int code, yaml_mark_t m, const char *fmt,
                  va_list ap) __attribute__((format(printf, 5, 0)));

static void vfail(ps_error *err, const char *file, int code, yaml_mark_t m, const char *fmt,
                  va_list ap)
{
    char what[PS_ERROR_MSG_MAX];
    vsnprintf(what, sizeof what, fmt, ap);
    ps_error_set(err, code, "%s:%zu:%zu: %s", file, m.line + 1, m.column + 1, what);
}

int ps_yamlwalk_fail(ps_yamlwalk *w, int code, yaml_mark_t m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(w->err, w->name, code, m, fmt, ap);
    va_end(ap);
    return code;
}

int ps_yamlwalk_unsupported(ps_yamlwalk *w, yaml_mark_t m, const char *fmt, ...)
{
    if (w->pending.code != 0)
        return 0;
    char what[PS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    ps_error_set(&w->pending, PS_EUNSUPPORTED, "%s:%zu:%zu: %s is not supported yet", w->name,
                 m.line + 1, m.column + 1, what);
    return 0;
}

const char *ps_yamlwalk_show(char *buf, size_t cap, const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0' && n < max && n + 4 < cap; n++)
        buf[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
    if (s[n] != '\0' && n + 4 <= cap) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool is_plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* YAML null: a plain ~, null or nothing at all */
static bool is_null(const yaml_node_t *n)
{
    if (!is_plain(n))
        return false;
    const char *s = scalar(n);
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

const char *ps_yamlwalk_describe(const yaml_node_t *n, char *buf, size_t cap)
{
    char shown[PS_YAMLWALK_SHOW_MAX + 8];
    if (n->type == YAML_MAPPING_NODE)
        snprintf(buf, cap, "a mapping");
    else if (n->type == YAML_SEQUENCE_NODE)
        snprintf(buf, cap, "a list");
    else if (is_plain(n))
        snprintf(buf, cap, "\"%s\"", SHOW(shown, scalar(n)));
    else
        snprintf(buf, cap, "the string \"%s\"", SHOW(shown, scalar(n)));
    return buf;
}

int ps_yamlwalk_wrong_type(ps_yamlwalk *w, const yaml_node_t *n, const char *path,
                           const char *expected)
{
    char got[PS_YAMLWALK_SHOW_MAX + 32];
    return ps_yamlwalk_fail(w, PS_ECONFIG, n->start_mark, "%s: expected %s, got %s", path, expected,
                            ps_yamlwalk_describe(n, got, sizeof got));
}

/* "optimizer.lr" from "optimizer" and "lr"; key paths are short, and a cut
 * one only shortens a message */
static void join_path(char *buf, size_t cap, const char *prefix, const char *name)
{
    ps_strlcpy(buf, prefix, cap);
    size_t n = strlen(buf);
    if (n > 0 && n + 1 < cap)
        buf[n++] = '.';
    ps_strlcpy(buf + n, name, cap - n);
}

void ps_yamlwalk_item_path(char *buf, size_t cap, const char *path, size_t i)
{
    int n = snprintf(buf, cap, "%s[%zu]", path, i);
    (void)n;
}

/* ---- enum values ---- */

static uint32_t enum_count(const ps_yamlwalk_key *k)
{
    if (k->name_of != NULL)
        return k->nvalues;
    uint32_t n = 0;
    while (k->names[n] != NULL)
        n++;
    return n;
}

const char *ps_yamlwalk_enum_name(const ps_yamlwalk_key *k, uint32_t v)
{
    if (k->kind != PS_YAMLWALK_ENUM || v >= enum_count(k))
        return NULL;
    return k->name_of != NULL ? k->name_of(v) : k->names[v];
}

/* "sync, async, ssp": the values the row takes */
static void enum_list(char *buf, size_t cap, const ps_yamlwalk_key *k)
{
    size_t n = 0;
    buf[0] = '\0';
    for (uint32_t v = 0, i = 0; v < enum_count(k) && n < cap; v++) {
        const char *name = ps_yamlwalk_enum_name(k, v);
        if (name != NULL)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", i++ ? ", " : "", name);
    }
}

/* the value named s, or -1 */
static int enum_value(const ps_yamlwalk_key *k, const char *s)
{
    for (uint32_t v = 0; v < enum_count(k); v++) {
        const char *name = ps_yamlwalk_enum_name(k, v);
        if (name != NULL && strcmp(s, name) == 0)
            return (int)v;
    }
    return -1;
}

/* ---- scalar conversions: text to value, no messages ---- */

bool ps_yamlwalk_text_uint(const char *s, uint64_t *v, bool *neg, bool *over)
{
    *v = 0;
    *neg = false;
    *over = false;
    if (*s == '+' || *s == '-')
        *neg = *s++ == '-';
    if (!isdigit((unsigned char)*s))
        return false;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (*v > (UINT64_MAX - d) / 10)
            *over = true;
        else
            *v = *v * 10 + d;
    }
    if (*v == 0 && !*over)
        *neg = false;
    return *s == '\0';
}

/* A finite decimal number: [sign] digits [. digits] [e [sign] digits]. No
 * hex, inf or nan, which strtod alone would take. */
static bool text_double(const char *s, double *v)
{
    const char *p = s;
    bool digits = false;
    if (*p == '+' || *p == '-')
        p++;
    while (isdigit((unsigned char)*p))
        p++, digits = true;
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++)
            digits = true;
    if (!digits)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p != '\0')
        return false;
    *v = strtod(s, NULL);
    return isfinite(*v);
}

/* 1 for true, 0 for false, -1 for anything else */
static int text_bool(const char *s)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
        return 1;
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
        return 0;
    return -1;
}

static void store_uint(void *p, size_t size, uint64_t v)
{
    if (size == sizeof(uint64_t)) {
        memcpy(p, &v, sizeof v);
    } else if (size == sizeof(uint32_t)) {
        uint32_t u = (uint32_t)v;
        memcpy(p, &u, sizeof u);
    } else {
        assert(size == sizeof(bool));
        bool b = v != 0;
        memcpy(p, &b, sizeof b);
    }
}

/* ---- scalar conversions with messages ---- */

int ps_yamlwalk_get_uint(ps_yamlwalk *w, const yaml_node_t *n, const char *path, uint64_t min,
                         uint64_t max, uint64_t type_max, uint64_t *out)
{
    uint64_t v;
    bool neg, over;
    if (!is_plain(n) || !ps_yamlwalk_text_uint(scalar(n), &v, &neg, &over))
        return ps_yamlwalk_wrong_type(w, n, path, "an integer");
    if (!neg && !over && v >= min && v <= max) {
        *out = v;
        return 0;
    }
    char got[PS_YAMLWALK_SHOW_MAX + 8];
    SHOW(got, scalar(n));
    /* the bound the value broke, said as the bounds are: both when both
     * matter, else the one that does */
    if (neg && min == 0)
        return ps_yamlwalk_fail(w, PS_ECONFIG, n->start_mark, "%s: must not be negative, got %s",
                                path, got);
    if (min > 0 && max < type_max)
        return ps_yamlwalk_fail(w, PS_ECONFIG, n->start_mark,
                                "%s: must be between %" PRIu64 " and %" PRIu64 ", got %s", path,
                                min, max, got);
    if (neg || (!over && v < min))
        return ps_yamlwalk_fail(w, PS_ECONFIG, n->start_mark,
                                "%s: must be at least %" PRIu64 ", got %s", path, min, got);
    return ps_yamlwalk_fail(w, PS_ECONFIG, n->start_mark, "%s: must be at most %" PRIu64 ", got %s",
                            path, max, got);
}

static int get_double(ps_yamlwalk *w, const yaml_node_t *n, const char *path,
                      const ps_yamlwalk_key *k, double *out)
{
    double v;
    if (!is_plain(n) || !text_double(scalar(n), &v))
        return ps_yamlwalk_wrong_type(w, n, path, "a number");
    bool lo_open = k->flags & PS_YAMLWALK_LO_OPEN, hi_open = k->flags & PS_YAMLWALK_HI_OPEN;
    bool lo_ok = lo_open ? v > k->lo : v >= k->lo;
    bool hi_ok = isinf(k->hi) || (hi_open ? v < k->hi : v <= k->hi);
    if (lo_ok && hi_ok) {
        *out = v;
        return 0;
    }
    char got[PS_YAMLWALK_SHOW_MAX + 8];
    SHOW(got, scalar(n));
    if (isinf(k->hi))
        return ps_yamlwalk_fail(w, PS_ECONFIG, n->start_mark, "%s: must be %s %g, got %s", path,
                                lo_open ? ">" : ">=", k->lo, got);
    return ps_yamlwalk_fail(w, PS_ECONFIG, n->start_mark, "%s: must be in %c%g, %g%c, got %s", path,
                            lo_open ? '(' : '[', k->lo, k->hi, hi_open ? ')' : ']', got);
}

int ps_yamlwalk_get_string(ps_yamlwalk *w, const yaml_node_t *n, const char *path, size_t cap,
                           bool (*valid)(const char *, const char **), const char **out)
{
    if (n->type != YAML_SCALAR_NODE)
        return ps_yamlwalk_wrong_type(w, n, path, "a string");
    const char *s = scalar(n);
    size_t len = n->data.scalar.length;
    if (strlen(s) != len)
        return ps_yamlwalk_fail(w, PS_ECONFIG, n->start_mark,
                                "%s: must not contain a NUL character", path);
    if (len == 0)
        return ps_yamlwalk_fail(w, PS_ECONFIG, n->start_mark, "%s: must not be empty", path);
    if (len >= cap)
        return ps_yamlwalk_fail(w, PS_ECONFIG, n->start_mark,
                                "%s: must be at most %zu bytes, got %zu", path, cap - 1, len);
    const char *why = NULL;
    if (valid != NULL && !valid(s, &why)) {
        char shown[PS_YAMLWALK_SHOW_MAX + 8];
        return ps_yamlwalk_fail(w, PS_ECONFIG, n->start_mark, "%s: \"%s\" %s", path, SHOW(shown, s),
                                why);
    }
    *out = s;
    return 0;
}

int ps_yamlwalk_get_count(ps_yamlwalk *w, const yaml_node_t *seq, const char *path, size_t lo,
                          size_t hi, const char *what, size_t *count)
{
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (n == 0 && lo > 0)
        return ps_yamlwalk_fail(w, PS_ECONFIG, seq->start_mark, "%s: must list at least one %s",
                                path, what);
    if (n < lo || n > hi)
        return ps_yamlwalk_fail(w, PS_ECONFIG, seq->start_mark,
                                "%s: must list %zu to %zu %ss, got %zu", path, lo, hi, what, n);
    *count = n;
    return 0;
}

yaml_node_t *ps_yamlwalk_item(const ps_yamlwalk *w, const yaml_node_t *seq, size_t i)
{
    return yaml_document_get_node(w->doc, seq->data.sequence.items.start[i]);
}

/* rel resolved against the folder dir into out (cap bytes); absolute paths
 * stay as they are, and a leading "./" is dropped. */
static bool resolve_path(const char *dir, const char *rel, char *out, size_t cap)
{
    if (rel[0] == '/')
        return ps_strlcpy(out, rel, cap);
    while (rel[0] == '.' && rel[1] == '/') {
        rel += 2;
        while (rel[0] == '/')
            rel++;
    }
    if (rel[0] == '\0')
        rel = ".";
    int n;
    if (dir[0] == '\0' || strcmp(dir, ".") == 0)
        n = snprintf(out, cap, "%s", rel);
    else if (dir[strlen(dir) - 1] == '/')
        n = snprintf(out, cap, "%s%s", dir, rel);
    else
        n = snprintf(out, cap, "%s/%s", dir, rel);
    return n >= 0 && (size_t)n < cap;
}

/* ---- where keys were written ---- */

static const ps_yamlwalk_seen not_seen;

const ps_yamlwalk_seen *ps_yamlwalk_seen_of(const ps_yamlwalk_seen_set *seen,
                                            const ps_yamlwalk_key *k)
{
    for (size_t i = 0; i < seen->n; i++)
        if (seen->at[i].key == k)
            return &seen->at[i];
    return &not_seen;
}

/* the row whose name is the len bytes at name */
static const ps_yamlwalk_key *row_named(const ps_yamlwalk_section *sec, const char *name,
                                        size_t len)
{
    for (size_t i = 0; i < sec->nkeys; i++)
        if (strncmp(sec->keys[i].name, name, len) == 0 && sec->keys[i].name[len] == '\0')
            return &sec->keys[i];
    return NULL;
}

const ps_yamlwalk_key *ps_yamlwalk_find_key(const ps_yamlwalk_section *sec, const char *path)
{
    for (;;) {
        size_t len = strcspn(path, ".");
        const ps_yamlwalk_key *k = row_named(sec, path, len);
        if (k == NULL || path[len] == '\0')
            return k;
        if (k->kind != PS_YAMLWALK_SECTION)
            return NULL;
        sec = k->sub;
        path += len + 1;
    }
}

const ps_yamlwalk_seen *ps_yamlwalk_seen_get(const ps_yamlwalk_seen_set *seen,
                                             const ps_yamlwalk_section *sec, const char *path)
{
    const ps_yamlwalk_key *k = ps_yamlwalk_find_key(sec, path);
    assert(k != NULL && "a key path the table has");
    return k != NULL ? ps_yamlwalk_seen_of(seen, k) : &not_seen;
}

/* ---- defaults ---- */

void ps_yamlwalk_set_defaults(const ps_yamlwalk_section *sec, void *base)
{
    for (size_t i = 0; i < sec->nkeys; i++) {
        const ps_yamlwalk_key *k = &sec->keys[i];
        char *p = (char *)base + k->off;
        if (k->kind == PS_YAMLWALK_SECTION) {
            ps_yamlwalk_set_defaults(k->sub, base);
            continue;
        }
        if (k->def == NULL)
            continue;
        uint64_t v;
        bool neg, over, ok = true;
        double d;
        switch (k->kind) {
        case PS_YAMLWALK_INT:
            ok = ps_yamlwalk_text_uint(k->def, &v, &neg, &over) && !neg && !over;
            store_uint(p, k->size, v);
            break;
        case PS_YAMLWALK_FLOAT:
            ok = text_double(k->def, &d);
            memcpy(p, &d, sizeof d);
            break;
        case PS_YAMLWALK_BOOL:
            ok = text_bool(k->def) >= 0;
            store_uint(p, k->size, (uint64_t)(text_bool(k->def) > 0));
            break;
        case PS_YAMLWALK_ENUM: {
            int e = enum_value(k, k->def);
            ok = e >= 0;
            store_uint(p, k->size, (uint64_t)e);
            break;
        }
        case PS_YAMLWALK_STRING:
        case PS_YAMLWALK_PATH:
            ok = ps_strlcpy(p, k->def, k->size);
            break;
        default:
            break;
        }
        assert(ok && "a table default must parse");
        (void)ok;
    }
}

/* ---- the walk ---- */

void ps_yamlwalk_init(ps_yamlwalk *w, const char *name, const char *dir, yaml_document_t *doc,
                      const ps_yamlwalk_section *root, ps_error *err)
{
    *w = (ps_yamlwalk){.name = name, .dir = dir, .doc = doc, .root = root, .err = err};
}

static int read_enum(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val, const char *path,
                     char *p)
{
    char names[256], got[PS_YAMLWALK_SHOW_MAX + 8];
    if (val->type != YAML_SCALAR_NODE) {
        enum_list(names, sizeof names, k);
        char what[300];
        snprintf(what, sizeof what, "one of %s", names);
        return ps_yamlwalk_wrong_type(w, val, path, what);
    }
    int i = enum_value(k, scalar(val));
    if (i < 0) {
        enum_list(names, sizeof names, k);
        return ps_yamlwalk_fail(w, PS_ECONFIG, val->start_mark, "%s: \"%s\" is not one of %s", path,
                                SHOW(got, scalar(val)), names);
    }
    store_uint(p, k->size, (uint64_t)i);
    if (!(k->sup & (1u << i)))
        ps_yamlwalk_unsupported(w, val->start_mark, "%s %s", path,
                                ps_yamlwalk_enum_name(k, (uint32_t)i));
    return 0;
}

static int read_value(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val, const char *path,
                      void *base, ps_yamlwalk_seen_set *seen)
{
    char *p = (char *)base + k->off;
    char got[PS_YAMLWALK_SHOW_MAX + 8];
    const char *str = NULL;
    int rc;
    switch (k->kind) {
    case PS_YAMLWALK_INT: {
        uint64_t type_max = k->size == sizeof(uint64_t) ? UINT64_MAX : UINT32_MAX;
        uint64_t v = 0;
        if ((rc = ps_yamlwalk_get_uint(w, val, path, k->min, k->max, type_max, &v)) != 0)
            return rc;
        store_uint(p, k->size, v);
        if ((k->flags & PS_YAMLWALK_SUP_MAX) && v > k->sup_max)
            ps_yamlwalk_unsupported(w, val->start_mark, "%s %s", path, SHOW(got, scalar(val)));
        return 0;
    }
    case PS_YAMLWALK_FLOAT: {
        double v = 0;
        if ((rc = get_double(w, val, path, k, &v)) != 0)
            return rc;
        memcpy(p, &v, sizeof v);
        return 0;
    }
    case PS_YAMLWALK_BOOL: {
        int b = is_plain(val) ? text_bool(scalar(val)) : -1;
        if (b < 0)
            return ps_yamlwalk_wrong_type(w, val, path, "true or false");
        store_uint(p, k->size, (uint64_t)b);
        if ((k->flags & PS_YAMLWALK_SUP_MAX) && (uint64_t)b > k->sup_max)
            ps_yamlwalk_unsupported(w, val->start_mark, "%s %s", path, SHOW(got, scalar(val)));
        return 0;
    }
    case PS_YAMLWALK_ENUM:
        return read_enum(w, k, val, path, p);
    case PS_YAMLWALK_STRING:
        if ((rc = ps_yamlwalk_get_string(w, val, path, k->size, k->valid, &str)) != 0)
            return rc;
        memcpy(p, str, strlen(str) + 1);
        return 0;
    case PS_YAMLWALK_PATH:
        if ((rc = ps_yamlwalk_get_string(w, val, path, k->size, k->valid, &str)) != 0)
            return rc;
        if (!resolve_path(w->dir, str, p, k->size))
            return ps_yamlwalk_fail(
                w, PS_ECONFIG, val->start_mark,
                "%s: path too long once resolved against %s (at most %zu bytes)", path, w->dir,
                k->size - 1);
        return 0;
    case PS_YAMLWALK_SECTION:
        if (val->type != YAML_MAPPING_NODE)
            return ps_yamlwalk_wrong_type(w, val, path, "a mapping");
        return ps_yamlwalk_read(w, val, k->sub, k->sub->path, base, seen);
    case PS_YAMLWALK_LIST:
        if (val->type != YAML_SEQUENCE_NODE)
            return ps_yamlwalk_wrong_type(w, val, path, "a list");
        return k->parse(w, k, val, path, base);
    case PS_YAMLWALK_HOOK:
        return k->parse(w, k, val, path, base);
    }
    assert(!"unknown kind");
    return PS_EINVAL;
}

static int unknown_key(ps_yamlwalk *w, const yaml_node_t *kn, const ps_yamlwalk_section *sec,
                       const char *path)
{
    const char *name = scalar(kn);
    char hint[400], shown[PS_YAMLWALK_SHOW_MAX + 8];
    ps_suggest_hint(name, sec, w->root, hint, sizeof hint);
    if (path[0] == '\0')
        return ps_yamlwalk_fail(w, PS_ECONFIG, kn->start_mark,
                                "unknown key \"%s\" at top level (%s)", SHOW(shown, name), hint);
    return ps_yamlwalk_fail(w, PS_ECONFIG, kn->start_mark, "unknown key \"%s\" in %s (%s)",
                            SHOW(shown, name), path, hint);
}

int ps_yamlwalk_read(ps_yamlwalk *w, yaml_node_t *map, const ps_yamlwalk_section *sec,
                     const char *path, void *base, ps_yamlwalk_seen_set *seen)
{
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *kn = yaml_document_get_node(w->doc, pair->key);
        yaml_node_t *val = yaml_document_get_node(w->doc, pair->value);
        if (kn->type != YAML_SCALAR_NODE) {
            char got[PS_YAMLWALK_SHOW_MAX + 32];
            return ps_yamlwalk_fail(w, PS_ECONFIG, kn->start_mark, "a key must be a name, got %s",
                                    ps_yamlwalk_describe(kn, got, sizeof got));
        }
        const ps_yamlwalk_key *k = row_named(sec, scalar(kn), strlen(scalar(kn)));
        if (k == NULL)
            return unknown_key(w, kn, sec, path);
        char kpath[PS_YAMLWALK_PATH_MAX];
        join_path(kpath, sizeof kpath, path, k->name);
        const ps_yamlwalk_seen *first = ps_yamlwalk_seen_of(seen, k);
        if (first->key != NULL)
            return ps_yamlwalk_fail(w, PS_ECONFIG, kn->start_mark,
                                    "duplicate key \"%s\" (first at %zu:%zu)", kpath,
                                    first->key_mark.line + 1, first->key_mark.column + 1);
        if (seen->n == PS_YAMLWALK_SEEN_MAX)
            return ps_yamlwalk_fail(w, PS_ECONFIG, kn->start_mark, "more than %d keys",
                                    PS_YAMLWALK_SEEN_MAX);
        ps_yamlwalk_seen *s = &seen->at[seen->n++];
        *s = (ps_yamlwalk_seen){
            .key = k, .key_mark = kn->start_mark, .val_mark = val->start_mark, .val = val};
        if (is_null(val)) {
            if (k->flags & PS_YAMLWALK_REQUIRED)
                return ps_yamlwalk_fail(w, PS_ECONFIG, val->start_mark,
                                        "%s: required, cannot be null", kpath);
            continue;
        }
        s->given = true;
        int rc = read_value(w, k, val, kpath, base, seen);
        if (rc != 0)
            return rc;
        if (k->flags & PS_YAMLWALK_REFUSED)
            ps_yamlwalk_unsupported(w, kn->start_mark, "%s", kpath);
    }
    for (size_t i = 0; i < sec->nkeys; i++) {
        const ps_yamlwalk_key *k = &sec->keys[i];
        if (!(k->flags & PS_YAMLWALK_REQUIRED) || ps_yamlwalk_seen_of(seen, k)->key != NULL)
            continue;
        if (path[0] == '\0')
            return ps_yamlwalk_fail(w, PS_ECONFIG, map->start_mark, "missing required key \"%s\"",
                                    k->name);
        return ps_yamlwalk_fail(w, PS_ECONFIG, map->start_mark, "missing required key \"%s\" in %s",
                                k->name, path);
    }
    return 0;
}

/* ---- only-with rules ---- */

int ps_yamlwalk_check_only(ps_yamlwalk *w, const ps_yamlwalk_section *sec, const void *base,
                           const ps_yamlwalk_seen_set *seen)
{
    for (size_t i = 0; i < sec->nkeys; i++) {
        const ps_yamlwalk_key *k = &sec->keys[i];
        const ps_yamlwalk_seen *s = ps_yamlwalk_seen_of(seen, k);
        if (k->only.holds != NULL && s->given && !k->only.holds(base, k)) {
            char path[PS_YAMLWALK_PATH_MAX], when[256];
            join_path(path, sizeof path, sec->path, k->name);
            if (k->only.when_text != NULL)
                k->only.when_text(k, when, sizeof when);
            else
                ps_strlcpy(when, k->only.when, sizeof when);
            return ps_yamlwalk_fail(w, PS_ECONFIG, s->val_mark, "%s: only valid with %s", path,
                                    when);
        }
        if (k->kind == PS_YAMLWALK_SECTION) {
            int rc = ps_yamlwalk_check_only(w, k->sub, base, seen);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}
