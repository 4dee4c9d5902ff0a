/* report_json.h — internal to the report modules (report_plan.c,
 * report_summary.c): JSON objects written and read through tables of fields,
 * so a key is written and read from the same row, and the one strict reader
 * of a JSON document. A number that is not finite is written as null and
 * read back as NAN. Not a format of its own: callers use the format headers. */
#ifndef PS_REPORT_JSON_H
#define PS_REPORT_JSON_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "error.h"

typedef enum ps_report_json_kind {
    PS_REPORT_JSON_STR, /* char[size] */
    PS_REPORT_JSON_U32,
    PS_REPORT_JSON_U64,
    PS_REPORT_JSON_NUM, /* double; null when not finite */
} ps_report_json_kind;

/* One key of an object and the struct member it is written from, read into. */
typedef struct ps_report_json_field {
    const char *key;
    ps_report_json_kind kind;
    size_t off;
    size_t size;
} ps_report_json_field;

/* The row for member of type, its key the member's name. */
#define PS_REPORT_JSON_FIELD(type, member, kind)                                                   \
    {                                                                                              \
#member, kind, offsetof(type, member), sizeof(((type *)0)->member)                         \
    }

/* x as its shortest text that reads back as the same double; NULL for a
 * number that is not finite (a JSON null) or when memory ran out. */
json_object *ps_report_json_number_new(double x);

/* Adds key: value to obj (which then owns value); false when memory ran
 * out. A NULL value is a JSON null, unless made is false: the value could
 * not be made, and nothing is added. */
bool ps_report_json_object_add(json_object *obj, const char *key, json_object *value, bool made);

/* Adds key: the member f describes of base to obj; false when memory ran out. */
bool ps_report_json_field_put(json_object *obj, const void *base, const ps_report_json_field *f,
                              const char *key);

/* ps_report_json_field_put for each of n fields, under their own keys. */
bool ps_report_json_fields_put(json_object *obj, const void *base,
                               const ps_report_json_field *fields, size_t n);

/* Reads key of obj into the member f describes of base. PS_EDATA with
 * "what: why" in err when key is missing, of the wrong type, a string too
 * long for the member or a count out of its range. */
int ps_report_json_field_get(json_object *obj, void *base, const ps_report_json_field *f,
                             const char *key, const char *what, ps_error *err);

/* ps_report_json_field_get for each of n fields; stops at the first error. */
int ps_report_json_fields_get(json_object *obj, void *base, const ps_report_json_field *fields,
                              size_t n, const char *what, ps_error *err);

/* Writes obj (json-c's flags, '/' never escaped) and a '\n' to f, then
 * frees obj. PS_ENOMEM, PS_EIO. */
int ps_report_json_write(FILE *f, json_object *obj, int flags);

/* The one JSON object fd holds to its end, nothing but white space after
 * it; the caller frees it (json_object_put). PS_EDATA with "what: why" in
 * err when it is not (also empty, cut short, more than PS_REPORT_JSON_MAX
 * bytes, nested deeper than 16), PS_EIO when fd cannot be read, PS_ENOMEM. */
int ps_report_json_read_fd(int fd, const char *what, json_object **out, ps_error *err);

#endif
