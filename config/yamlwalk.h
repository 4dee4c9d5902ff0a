/* yamlwalk.h — a generic walker of libyaml documents: reads a mapping into a
 * struct against a table of key rows (kind, place, bounds, default, validity
 * hook, when the key may be given), records where each key was written,
 * refuses duplicate and unknown keys (suggest.h words the hint) and words
 * every error "file:line:col: what is wrong". It knows no job file: the job's
 * rows are in schema.c, and a new kind of value is a new case here. */
#ifndef PS_YAMLWALK_H
#define PS_YAMLWALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "error.h"

#define PS_YAMLWALK_PATH_MAX 256 /* bytes of a dotted key path in messages; a longer one is cut */
#define PS_YAMLWALK_SHOW_MAX 48  /* bytes of a user's value echoed in a message */
#define PS_YAMLWALK_SEEN_MAX 128 /* keys one ps_yamlwalk_seen_set records */

typedef enum ps_yamlwalk_kind {
    PS_YAMLWALK_INT,     /* unsigned integer in [min, max], stored in 4 or 8 bytes */
    PS_YAMLWALK_FLOAT,   /* finite number in the interval lo..hi, stored as a double */
    PS_YAMLWALK_BOOL,    /* true or false, stored as a bool */
    PS_YAMLWALK_ENUM,    /* one of the row's names, stored as its index in 4 bytes */
    PS_YAMLWALK_STRING,  /* 1 .. size-1 bytes, checked by the row's valid hook */
    PS_YAMLWALK_PATH,    /* a string resolved against the walker's dir */
    PS_YAMLWALK_SECTION, /* a mapping with a table of its own (sub) */
    PS_YAMLWALK_LIST,    /* a sequence, read by the row's parse hook */
    PS_YAMLWALK_HOOK,    /* a scalar or a sequence, read by the row's parse hook */
} ps_yamlwalk_kind;

/* row flags */
#define PS_YAMLWALK_REQUIRED 1u  /* must be given (when its section is) */
#define PS_YAMLWALK_REFUSED  2u  /* parsed and checked, then "not supported yet" */
#define PS_YAMLWALK_SUP_MAX  4u  /* INT, BOOL: values above sup_max are not supported yet */
#define PS_YAMLWALK_LO_OPEN  8u  /* FLOAT: lo itself is out of range */
#define PS_YAMLWALK_HI_OPEN  16u /* FLOAT: hi itself is out of range */

#define PS_YAMLWALK_SUP_ALL UINT32_MAX /* ENUM sup: every value is supported */

typedef struct ps_yamlwalk ps_yamlwalk;
typedef struct ps_yamlwalk_key ps_yamlwalk_key;

/* One mapping's rows. */
typedef struct ps_yamlwalk_section {
    const char *path; /* dotted, "" for the top level */
    const ps_yamlwalk_key *keys;
    size_t nkeys;
} ps_yamlwalk_section;

/* When a key may be given at all: once the whole file is read,
 * ps_yamlwalk_check_only refuses a given key whose holds() is false with
 * "path: only valid with <when>". */
typedef struct ps_yamlwalk_only {
    bool (*holds)(const void *base, const ps_yamlwalk_key *k); /* NULL: always valid */
    const char *when;                                          /* "model type mlp" */
    /* instead of when: writes the text (a registry's names) into buf */
    void (*when_text)(const ps_yamlwalk_key *k, char *buf, size_t cap);
    uint32_t arg; /* for the hooks, e.g. which PS_MODE_KEY_ bit */
} ps_yamlwalk_only;

/* The value of a LIST or HOOK row: reads val (not null) into base and
 * returns 0, or fails through ps_yamlwalk_fail. path names the key. */
typedef int (*ps_yamlwalk_parse_fn)(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val,
                                    const char *path, void *base);

/* One key: which fields matter depends on its kind. */
struct ps_yamlwalk_key {
    const char *name;
    ps_yamlwalk_kind kind;
    unsigned flags;
    size_t off, size;  /* where the value goes, from the walker's base */
    const char *def;   /* default, written as in the file; NULL: zero */
    uint64_t min, max; /* INT: closed range */
    uint64_t sup_max;  /* INT, BOOL with PS_YAMLWALK_SUP_MAX */
    double lo, hi;     /* FLOAT: range, open ends by flag; hi HUGE_VAL: no bound */
    /* ENUM values, in the enum's order: a NULL-terminated list, or name_of,
     * which names value v < nvalues, NULL when the row does not take it */
    const char *const *names;
    const char *(*name_of)(uint32_t v);
    uint32_t nvalues;
    unsigned sup;                                   /* ENUM: bit i set when value i is supported */
    bool (*valid)(const char *s, const char **why); /* STRING, PATH: is_valid hook */
    const ps_yamlwalk_section *sub;                 /* SECTION */
    ps_yamlwalk_parse_fn parse;                     /* LIST, HOOK */
    ps_yamlwalk_only only;                          /* when it may be given */
    const char *aka; /* other names people write, for did-you-mean; '|' between */
};

/* Where a key was written. */
typedef struct ps_yamlwalk_seen {
    const ps_yamlwalk_key *key;
    bool given; /* with a non-null value */
    yaml_mark_t key_mark, val_mark;
    yaml_node_t *val; /* the value's node, while the document lives */
} ps_yamlwalk_seen;

/* The keys written in one mapping and the sections below it, in the order
 * they were read. Zero it before a walk. */
typedef struct ps_yamlwalk_seen_set {
    size_t n;
    ps_yamlwalk_seen at[PS_YAMLWALK_SEEN_MAX];
} ps_yamlwalk_seen_set;

/* One walk of one document; embedded by the caller (ps_yamlwalk_init). */
struct ps_yamlwalk {
    const char *name; /* the file, as messages name it */
    const char *dir;  /* PATH values resolve against it */
    yaml_document_t *doc;
    const ps_yamlwalk_section *root; /* the schema an unknown key's hint searches */
    ps_error *err;
    ps_error pending; /* the first "not supported yet", for the caller to raise last */
};

/* Sets up w for the document doc (may be set later) of the file `name`;
 * err receives every message. Nothing is allocated. */
void ps_yamlwalk_init(ps_yamlwalk *w, const char *name, const char *dir, yaml_document_t *doc,
                      const ps_yamlwalk_section *root, ps_error *err);

/* Writes every default of sec and the sections below it into base: a row's
 * def, or nothing (the caller zeroed base). A def that does not parse is a
 * programmer's mistake (assert). */
void ps_yamlwalk_set_defaults(const ps_yamlwalk_section *sec, void *base);

/* Reads the mapping map into base against sec's rows, recording each key in
 * seen. path names the mapping in messages ("" for the top level). An
 * unknown key gets ps_suggest_hint's hint. 0, or the first error
 * (PS_ECONFIG) in w->err. A row's "not supported yet" goes to w->pending. */
int ps_yamlwalk_read(ps_yamlwalk *w, yaml_node_t *map, const ps_yamlwalk_section *sec,
                     const char *path, void *base, ps_yamlwalk_seen_set *seen);

/* Checks every row of sec and below that has an only rule, in table order:
 * PS_ECONFIG "path: only valid with <when>" at the first key given where its
 * rule does not hold of base. */
int ps_yamlwalk_check_only(ps_yamlwalk *w, const ps_yamlwalk_section *sec, const void *base,
                           const ps_yamlwalk_seen_set *seen);

/* The row at a dotted path below sec ("optimizer.schedule.gamma"); NULL
 * when there is none. */
const ps_yamlwalk_key *ps_yamlwalk_find_key(const ps_yamlwalk_section *sec, const char *path);

/* Where key k was written; a record with given false and zero marks when it
 * was not. Never NULL. */
const ps_yamlwalk_seen *ps_yamlwalk_seen_of(const ps_yamlwalk_seen_set *seen,
                                            const ps_yamlwalk_key *k);

/* Same, for the row at a dotted path below sec, which must exist. */
const ps_yamlwalk_seen *ps_yamlwalk_seen_get(const ps_yamlwalk_seen_set *seen,
                                             const ps_yamlwalk_section *sec, const char *path);

/* An ENUM row's name of value v; NULL when the row does not take v. */
const char *ps_yamlwalk_enum_name(const ps_yamlwalk_key *k, uint32_t v);

/* ---- for parse hooks and the caller's own checks ---- */

/* Fills w->err with "file:line:col: message" at mark m; returns code. */
int ps_yamlwalk_fail(ps_yamlwalk *w, int code, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Remembers the first "<what> is not supported yet" at m in w->pending; it
 * is the caller's to raise once everything else is valid. Returns 0. */
int ps_yamlwalk_unsupported(ps_yamlwalk *w, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "path: expected <expected>, got <what n is>"; returns PS_ECONFIG. */
int ps_yamlwalk_wrong_type(ps_yamlwalk *w, const yaml_node_t *n, const char *path,
                           const char *expected);

/* An integer in [min, max] into *out; type_max is the field's largest value
 * and picks the wording of the range. PS_ECONFIG otherwise. */
int ps_yamlwalk_get_uint(ps_yamlwalk *w, const yaml_node_t *n, const char *path, uint64_t min,
                         uint64_t max, uint64_t type_max, uint64_t *out);

/* A string of 1 .. cap-1 bytes, checked by valid when not NULL; *out points
 * into the document. PS_ECONFIG otherwise. */
int ps_yamlwalk_get_string(ps_yamlwalk *w, const yaml_node_t *n, const char *path, size_t cap,
                           bool (*valid)(const char *, const char **), const char **out);

/* The length of the list seq when it has lo .. hi items ("what"s in the
 * message); PS_ECONFIG otherwise. */
int ps_yamlwalk_get_count(ps_yamlwalk *w, const yaml_node_t *seq, const char *path, size_t lo,
                          size_t hi, const char *what, size_t *count);

/* Item i of the list seq (i below its length). */
yaml_node_t *ps_yamlwalk_item(const ps_yamlwalk *w, const yaml_node_t *seq, size_t i);

/* "servers[3]" into buf. */
void ps_yamlwalk_item_path(char *buf, size_t cap, const char *path, size_t i);

/* "a list", "a mapping", "\"two\"" or "the string \"2\"": what n is. */
const char *ps_yamlwalk_describe(const yaml_node_t *n, char *buf, size_t cap);

/* Copies a user's text for a one-line message: control bytes become '?',
 * and text longer than max bytes is cut with "...". Returns buf. */
const char *ps_yamlwalk_show(char *buf, size_t cap, const char *s, size_t max);

/* Decimal digits with an optional sign into *v: *neg for a minus before a
 * non-zero value, *over for more than 64 bits. False when not an integer. */
bool ps_yamlwalk_text_uint(const char *s, uint64_t *v, bool *neg, bool *over);

#endif
