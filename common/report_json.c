/* report_json.c — the field tables and the strict JSON reader that
 * report_plan.c and report_summary.c share, as report_json.h describes. */
#include "report_json.h"

#include "report_limits.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JSON_DEPTH_MAX 16

json_object *ps_report_json_number_new(double x)
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

bool ps_report_json_object_add(json_object *obj, const char *key, json_object *value, bool made)
{
    if (!made)
        return false;
    return json_object_object_add(obj, key, value) == 0;
}

bool ps_report_json_field_put(json_object *obj, const void *base, const ps_report_json_field *f,
                              const char *key)
{
    const char *p = (const char *)base + f->off;
    json_object *v = NULL;
    switch (f->kind) {
    case PS_REPORT_JSON_STR:
        v = json_object_new_string(p);
        return ps_report_json_object_add(obj, key, v, v != NULL);
    case PS_REPORT_JSON_U32:
        v = json_object_new_int64(*(const uint32_t *)(const void *)p);
        return ps_report_json_object_add(obj, key, v, v != NULL);
    case PS_REPORT_JSON_U64:
        v = json_object_new_uint64(*(const uint64_t *)(const void *)p);
        return ps_report_json_object_add(obj, key, v, v != NULL);
    case PS_REPORT_JSON_NUM: {
        double x = *(const double *)(const void *)p;
        v = ps_report_json_number_new(x);
        return ps_report_json_object_add(obj, key, v, v != NULL || !isfinite(x));
    }
    }
    return false;
}

bool ps_report_json_fields_put(json_object *obj, const void *base,
                               const ps_report_json_field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!ps_report_json_field_put(obj, base, &fields[i], fields[i].key))
            return false;
    return true;
}

int ps_report_json_field_get(json_object *obj, void *base, const ps_report_json_field *f,
                             const char *key, const char *what, ps_error *err)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v))
        return ps_error_set(err, PS_EDATA, "%s: no \"%s\"", what, key);
    char *p = (char *)base + f->off;
    json_type t = json_object_get_type(v);
    switch (f->kind) {
    case PS_REPORT_JSON_STR: {
        if (t != json_type_string)
            return ps_error_set(err, PS_EDATA, "%s: \"%s\" is not a string", what, key);
        size_t len = (size_t)json_object_get_string_len(v);
        if (len >= f->size)
            return ps_error_set(err, PS_EDATA, "%s: \"%s\" is longer than %zu bytes", what, key,
                                f->size - 1);
        memcpy(p, json_object_get_string(v), len + 1);
        return 0;
    }
    case PS_REPORT_JSON_U32:
    case PS_REPORT_JSON_U64: {
        uint64_t max = f->kind == PS_REPORT_JSON_U32 ? UINT32_MAX : UINT64_MAX;
        if (t != json_type_int || json_object_get_int64(v) < 0)
            return ps_error_set(err, PS_EDATA, "%s: \"%s\" is not a count", what, key);
        uint64_t u = json_object_get_uint64(v);
        if (u > max)
            return ps_error_set(err, PS_EDATA, "%s: \"%s\" is out of range", what, key);
        if (f->kind == PS_REPORT_JSON_U32)
            *(uint32_t *)(void *)p = (uint32_t)u;
        else
            *(uint64_t *)(void *)p = u;
        return 0;
    }
    case PS_REPORT_JSON_NUM:
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

int ps_report_json_fields_get(json_object *obj, void *base, const ps_report_json_field *fields,
                              size_t n, const char *what, ps_error *err)
{
    for (size_t i = 0; i < n; i++) {
        int rc = ps_report_json_field_get(obj, base, &fields[i], fields[i].key, what, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int ps_report_json_write(FILE *f, json_object *obj, int flags)
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

int ps_report_json_read_fd(int fd, const char *what, json_object **out, ps_error *err)
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
