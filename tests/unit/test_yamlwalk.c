/* test_yamlwalk.c — the generic YAML walker on a toy table of its own: each
 * kind of row read and refused with its exact message, defaults, duplicate,
 * unknown and missing keys, where keys were written, and the rows' only
 * rules with fixed and registry-written texts. */
#include "yamlwalk.h"

#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct toy {
    uint32_t count;
    uint64_t big;
    double rate;
    bool on;
    uint32_t color;
    uint32_t shade;
    char name[8];
    char path[64];
    uint32_t depth;
    uint32_t level;
    uint32_t nitems;
    uint32_t items[3];
} toy;

static const char *const color_names[] = {"red", "green", "blue", NULL};

/* a registry-like hook: value 1 exists but this row does not take it */
static const char *shade_name_of(uint32_t v)
{
    static const char *const shades[] = {"light", "mid", "deep"};
    return v == 1 ? NULL : shades[v];
}

static bool valid_word(const char *s, const char **why)
{
    if (strchr(s, ' ') != NULL) {
        *why = "is not one word";
        return false;
    }
    return true;
}

static bool is_on(const void *base, const ps_yamlwalk_key *k)
{
    (void)k;
    return ((const toy *)base)->on;
}

/* holds when count equals the rule's arg; the text says so */
static bool count_is_arg(const void *base, const ps_yamlwalk_key *k)
{
    return ((const toy *)base)->count == k->only.arg;
}

static void count_text(const ps_yamlwalk_key *k, char *buf, size_t cap)
{
    snprintf(buf, cap, "count %u", (unsigned)k->only.arg);
}

static int parse_items(ps_yamlwalk *w, const ps_yamlwalk_key *k, yaml_node_t *val, const char *path,
                       void *base)
{
    (void)k;
    toy *t = base;
    size_t n = 0;
    int rc = ps_yamlwalk_get_count(w, val, path, 1, 3, "item", &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char ipath[PS_YAMLWALK_PATH_MAX];
        ps_yamlwalk_item_path(ipath, sizeof ipath, path, i);
        uint64_t v = 0;
        rc = ps_yamlwalk_get_uint(w, ps_yamlwalk_item(w, val, i), ipath, 0, 9, UINT32_MAX, &v);
        t->items[i] = (uint32_t)v;
    }
    t->nitems = (uint32_t)n;
    return rc;
}

#define FIELD(f) .off = offsetof(toy, f), .size = sizeof(((toy *)0)->f)
#define ROWS(t)  (t), sizeof(t) / sizeof((t)[0])

static const ps_yamlwalk_key inner_keys[] = {
    {"depth", PS_YAMLWALK_INT, FIELD(depth), .def = "2", .max = 5,
     .only = {.holds = count_is_arg, .when_text = count_text, .arg = 3}},
    {"level", PS_YAMLWALK_INT, FIELD(level), .min = 1, .max = UINT32_MAX},
};
static const ps_yamlwalk_section inner_sec = {"inner", ROWS(inner_keys)};

static const ps_yamlwalk_key toy_keys[] = {
    {"count", PS_YAMLWALK_INT, PS_YAMLWALK_REQUIRED, FIELD(count), .min = 1, .max = 10,
     .aka = "n|number"},
    {"big", PS_YAMLWALK_INT, FIELD(big), .def = "7", .max = UINT64_MAX,
     .only = {.holds = is_on, .when = "on true"}},
    {"rate", PS_YAMLWALK_FLOAT, PS_YAMLWALK_LO_OPEN, FIELD(rate), .def = "0.5", .lo = 0, .hi = 1},
    {"on", PS_YAMLWALK_BOOL, FIELD(on), .def = "false"},
    {"color", PS_YAMLWALK_ENUM, FIELD(color), .def = "green", .names = color_names,
     .sup = 1u << 0 | 1u << 1},
    {"shade", PS_YAMLWALK_ENUM, FIELD(shade), .def = "deep", .name_of = shade_name_of, .nvalues = 3,
     .sup = PS_YAMLWALK_SUP_ALL},
    {"name", PS_YAMLWALK_STRING, FIELD(name), .valid = valid_word},
    {"path", PS_YAMLWALK_PATH, FIELD(path)},
    {"inner", PS_YAMLWALK_SECTION, .sub = &inner_sec},
    {"items", PS_YAMLWALK_LIST, .parse = parse_items},
};
static const ps_yamlwalk_section toy_sec = {"", ROWS(toy_keys)};

/* One walk of text: defaults, read, only rules, as a loader does them. */
typedef struct run {
    toy t;
    ps_error err;
    ps_yamlwalk w;
    ps_yamlwalk_seen_set seen;
    yaml_document_t doc;
    int rc;
} run;

static run *walk(const char *text)
{
    run *r = calloc(1, sizeof *r);
    ck_assert_ptr_nonnull(r);
    yaml_parser_t parser;
    ck_assert(yaml_parser_initialize(&parser));
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    ck_assert(yaml_parser_load(&parser, &r->doc));
    yaml_parser_delete(&parser);
    ps_yamlwalk_init(&r->w, "t.yaml", "/srv/job", &r->doc, &toy_sec, &r->err);
    ps_error_clear(&r->err);
    ps_yamlwalk_set_defaults(&toy_sec, &r->t);
    r->rc = ps_yamlwalk_read(&r->w, yaml_document_get_root_node(&r->doc), &toy_sec, "", &r->t,
                             &r->seen);
    if (r->rc == 0)
        r->rc = ps_yamlwalk_check_only(&r->w, &toy_sec, &r->t, &r->seen);
    return r;
}

static void done(run *r)
{
    yaml_document_delete(&r->doc);
    free(r);
}

static void expect_error(const char *text, const char *msg)
{
    run *r = walk(text);
    ck_assert_str_eq(r->err.msg, msg);
    ck_assert_int_eq(r->rc, PS_ECONFIG);
    done(r);
}

START_TEST(read_fills_each_kind_from_its_row)
{
    run *r = walk("count: 4\nbig: 18446744073709551615\nrate: 1\non: true\ncolor: red\n"
                  "shade: light\nname: abc\npath: ./data/x.csv\ninner: {level: 9}\n"
                  "items: [1, 2, 3]\n");
    ck_assert_int_eq(r->rc, 0);
    ck_assert_uint_eq(r->t.count, 4);
    ck_assert_uint_eq(r->t.big, UINT64_MAX);
    ck_assert_double_eq(r->t.rate, 1.0);
    ck_assert(r->t.on);
    ck_assert_uint_eq(r->t.color, 0);
    ck_assert_uint_eq(r->t.shade, 0);
    ck_assert_str_eq(r->t.name, "abc");
    ck_assert_str_eq(r->t.path, "/srv/job/data/x.csv");
    ck_assert_uint_eq(r->t.level, 9);
    ck_assert_uint_eq(r->t.nitems, 3);
    ck_assert_uint_eq(r->t.items[2], 3);
    ck_assert_int_eq(r->w.pending.code, 0);
    done(r);
}
END_TEST

START_TEST(absent_keys_take_their_row_defaults)
{
    run *r = walk("count: 1\n");
    ck_assert_int_eq(r->rc, 0);
    ck_assert_uint_eq(r->t.big, 7);
    ck_assert_double_eq(r->t.rate, 0.5);
    ck_assert(!r->t.on);
    ck_assert_uint_eq(r->t.color, 1);
    ck_assert_uint_eq(r->t.shade, 2);
    ck_assert_uint_eq(r->t.depth, 2); /* a default of a section that was not written */
    ck_assert_str_eq(r->t.name, "");
    done(r);
}
END_TEST

START_TEST(integer_out_of_range_names_its_bounds)
{
    expect_error("count: 11\n", "t.yaml:1:8: count: must be between 1 and 10, got 11");
    expect_error("count: -1\n", "t.yaml:1:8: count: must be between 1 and 10, got -1");
    expect_error("count: 1\ninner: {depth: 6}\n",
                 "t.yaml:2:16: inner.depth: must be at most 5, got 6");
    expect_error("count: 1\ninner: {level: 0}\n",
                 "t.yaml:2:16: inner.level: must be at least 1, got 0");
    expect_error("count: 1\nbig: -1\n", "t.yaml:2:6: big: must not be negative, got -1");
    expect_error("count: 1\ninner: {level: 4294967296}\n",
                 "t.yaml:2:16: inner.level: must be at most 4294967295, got 4294967296");
    expect_error("count: 1\ninner: {level: -2}\n",
                 "t.yaml:2:16: inner.level: must be at least 1, got -2");
    expect_error("count: 1\nbig: 18446744073709551616\n",
                 "t.yaml:2:6: big: must be at most 18446744073709551615, got "
                 "18446744073709551616");
}
END_TEST

START_TEST(wrong_type_says_what_was_expected_and_written)
{
    expect_error("count: \"2\"\n", "t.yaml:1:8: count: expected an integer, got the string \"2\"");
    expect_error("count: two\n", "t.yaml:1:8: count: expected an integer, got \"two\"");
    expect_error("count: 1\non: yes\n", "t.yaml:2:5: on: expected true or false, got \"yes\"");
    expect_error("count: 1\ninner: [1]\n", "t.yaml:2:8: inner: expected a mapping, got a list");
    expect_error("count: 1\nitems: {a: 1}\n", "t.yaml:2:8: items: expected a list, got a mapping");
    expect_error("count: 1\nrate: .nan\n", "t.yaml:2:7: rate: expected a number, got \".nan\"");
}
END_TEST

START_TEST(float_range_shows_its_open_and_closed_ends)
{
    expect_error("count: 1\nrate: 0\n", "t.yaml:2:7: rate: must be in (0, 1], got 0");
    expect_error("count: 1\nrate: 1.5\n", "t.yaml:2:7: rate: must be in (0, 1], got 1.5");
}
END_TEST

START_TEST(enum_error_lists_the_values_the_row_takes)
{
    expect_error("count: 1\ncolor: pink\n",
                 "t.yaml:2:8: color: \"pink\" is not one of red, green, blue");
    expect_error("count: 1\ncolor: [red]\n",
                 "t.yaml:2:8: color: expected one of red, green, blue, got a list");
}
END_TEST

START_TEST(enum_name_hook_leaves_out_the_values_it_does_not_take)
{
    expect_error("count: 1\nshade: mid\n", "t.yaml:2:8: shade: \"mid\" is not one of light, deep");
    run *r = walk("count: 1\nshade: deep\n");
    ck_assert_int_eq(r->rc, 0);
    ck_assert_uint_eq(r->t.shade, 2); /* the value's own number, gap kept */
    done(r);
}
END_TEST

START_TEST(enum_name_of_a_value_comes_from_the_list_or_the_hook)
{
    const ps_yamlwalk_key *color = ps_yamlwalk_find_key(&toy_sec, "color");
    const ps_yamlwalk_key *shade = ps_yamlwalk_find_key(&toy_sec, "shade");
    ck_assert_str_eq(ps_yamlwalk_enum_name(color, 2), "blue");
    ck_assert_ptr_null(ps_yamlwalk_enum_name(color, 3));
    ck_assert_str_eq(ps_yamlwalk_enum_name(shade, 2), "deep");
    ck_assert_ptr_null(ps_yamlwalk_enum_name(shade, 1));
    ck_assert_ptr_null(ps_yamlwalk_enum_name(shade, 3));
    ck_assert_ptr_null(ps_yamlwalk_enum_name(ps_yamlwalk_find_key(&toy_sec, "count"), 0));
}
END_TEST

START_TEST(unsupported_enum_value_is_kept_for_the_caller_to_raise_last)
{
    run *r = walk("count: 1\ncolor: blue\nname: x\n");
    ck_assert_int_eq(r->rc, 0);
    ck_assert_uint_eq(r->t.color, 2);
    ck_assert_int_eq(r->w.pending.code, PS_EUNSUPPORTED);
    ck_assert_str_eq(r->w.pending.msg, "t.yaml:2:8: color blue is not supported yet");
    done(r);
}
END_TEST

START_TEST(string_hook_and_length_are_checked)
{
    expect_error("count: 1\nname: a b\n", "t.yaml:2:7: name: \"a b\" is not one word");
    expect_error("count: 1\nname: abcdefgh\n", "t.yaml:2:7: name: must be at most 7 bytes, got 8");
    expect_error("count: 1\nname: \"\"\n", "t.yaml:2:7: name: must not be empty");
}
END_TEST

START_TEST(path_resolves_against_the_walkers_folder)
{
    run *r = walk("count: 1\npath: /abs/x\n");
    ck_assert_str_eq(r->t.path, "/abs/x");
    done(r);
    r = walk("count: 1\npath: .//./y\n");
    ck_assert_str_eq(r->t.path, "/srv/job/y");
    done(r);
    /* 63 bytes fit the field, not once "/srv/job/" is before them */
    expect_error("count: 1\npath: "
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
                 "t.yaml:2:7: path: path too long once resolved against /srv/job (at most "
                 "63 bytes)");
}
END_TEST

START_TEST(duplicate_key_names_where_it_was_first)
{
    expect_error("count: 1\ninner: {level: 2}\ncount: 2\n",
                 "t.yaml:3:1: duplicate key \"count\" (first at 1:1)");
    expect_error("count: 1\ninner: {level: 2, level: 3}\n",
                 "t.yaml:2:19: duplicate key \"inner.level\" (first at 2:9)");
}
END_TEST

START_TEST(unknown_key_gets_the_suggesters_hint)
{
    expect_error("cuont: 1\n", "t.yaml:1:1: unknown key \"cuont\" at top level "
                               "(did you mean \"count\"?)");
    expect_error("number: 1\n", "t.yaml:1:1: unknown key \"number\" at top level "
                                "(did you mean \"count\"?)");
    expect_error("count: 1\ninner: {xyzzy: 1}\n",
                 "t.yaml:2:9: unknown key \"xyzzy\" in inner (valid keys: depth, level)");
    expect_error("level: 1\n", "t.yaml:1:1: unknown key \"level\" at top level "
                               "(did you mean \"inner.level\"?)");
    expect_error("[1]: 2\n", "t.yaml:1:1: a key must be a name, got a list");
}
END_TEST

START_TEST(required_key_may_be_neither_missing_nor_null)
{
    expect_error("big: 1\n", "t.yaml:1:1: missing required key \"count\"");
    expect_error("count: ~\n", "t.yaml:1:8: count: required, cannot be null");
}
END_TEST

START_TEST(null_value_means_absent_but_written)
{
    run *r = walk("count: 1\nbig: null\n");
    ck_assert_int_eq(r->rc, 0);
    ck_assert_uint_eq(r->t.big, 7);
    const ps_yamlwalk_seen *s = ps_yamlwalk_seen_get(&r->seen, &toy_sec, "big");
    ck_assert_ptr_eq(s->key, ps_yamlwalk_find_key(&toy_sec, "big"));
    ck_assert(!s->given);
    done(r);
}
END_TEST

START_TEST(list_hook_counts_and_reads_items)
{
    expect_error("count: 1\nitems: []\n", "t.yaml:2:8: items: must list at least one item");
    expect_error("count: 1\nitems: [1, 2, 3, 4]\n",
                 "t.yaml:2:8: items: must list 1 to 3 items, got 4");
    expect_error("count: 1\nitems: [1, 10]\n", "t.yaml:2:12: items[1]: must be at most 9, got 10");
}
END_TEST

START_TEST(only_rule_refuses_a_key_its_rule_does_not_hold_for)
{
    expect_error("count: 1\nbig: 3\n", "t.yaml:2:6: big: only valid with on true");
    run *r = walk("count: 1\nbig: 3\non: true\n");
    ck_assert_int_eq(r->rc, 0);
    done(r);
    r = walk("count: 1\nbig: ~\n"); /* null: not given, so no rule */
    ck_assert_int_eq(r->rc, 0);
    done(r);
}
END_TEST

START_TEST(only_rule_text_can_be_written_by_a_hook)
{
    expect_error("count: 1\ninner: {depth: 1}\n",
                 "t.yaml:2:16: inner.depth: only valid with count 3");
    run *r = walk("count: 3\ninner: {depth: 1}\n");
    ck_assert_int_eq(r->rc, 0);
    done(r);
}
END_TEST

START_TEST(only_rules_are_checked_in_table_order)
{
    /* inner.depth is written first, big comes first in the table */
    expect_error("count: 1\ninner: {depth: 1}\nbig: 3\n",
                 "t.yaml:3:6: big: only valid with on true");
}
END_TEST

START_TEST(seen_records_where_each_key_was_written)
{
    run *r = walk("count: 1\ninner:\n  level: 4\n");
    ck_assert_int_eq(r->rc, 0);
    const ps_yamlwalk_seen *s = ps_yamlwalk_seen_get(&r->seen, &toy_sec, "inner.level");
    ck_assert(s->given);
    ck_assert_uint_eq(s->key_mark.line, 2);
    ck_assert_uint_eq(s->key_mark.column, 2);
    ck_assert_uint_eq(s->val_mark.column, 9);
    ck_assert_str_eq((const char *)s->val->data.scalar.value, "4");
    s = ps_yamlwalk_seen_get(&r->seen, &toy_sec, "rate");
    ck_assert_ptr_null(s->key);
    ck_assert(!s->given);
    ck_assert_uint_eq(s->val_mark.line, 0);
    ck_assert_uint_eq(r->seen.n, 3);
    done(r);
}
END_TEST

START_TEST(find_key_follows_dotted_paths_through_sections)
{
    ck_assert_ptr_eq(ps_yamlwalk_find_key(&toy_sec, "inner.level"), &inner_keys[1]);
    ck_assert_ptr_eq(ps_yamlwalk_find_key(&toy_sec, "inner"), &toy_keys[8]);
    ck_assert_ptr_null(ps_yamlwalk_find_key(&toy_sec, "inner.nope"));
    ck_assert_ptr_null(ps_yamlwalk_find_key(&toy_sec, "count.x"));
    ck_assert_ptr_null(ps_yamlwalk_find_key(&toy_sec, "coun"));
    ck_assert_ptr_null(ps_yamlwalk_find_key(&toy_sec, ""));
}
END_TEST

START_TEST(show_replaces_control_bytes_and_cuts_long_text)
{
    char buf[16];
    ck_assert_str_eq(ps_yamlwalk_show(buf, sizeof buf, "a\tb\x7f", 10), "a?b?");
    ck_assert_str_eq(ps_yamlwalk_show(buf, sizeof buf, "abcdefghijkl", 5), "abcde...");
    ck_assert_str_eq(ps_yamlwalk_show(buf, sizeof buf, "abcdefghijklmnopqrstu", 48),
                     "abcdefghijkl...");
}
END_TEST

START_TEST(text_uint_reports_sign_and_overflow)
{
    uint64_t v;
    bool neg, over;
    ck_assert(ps_yamlwalk_text_uint("+42", &v, &neg, &over));
    ck_assert_uint_eq(v, 42);
    ck_assert(!neg && !over);
    ck_assert(ps_yamlwalk_text_uint("-0", &v, &neg, &over));
    ck_assert(!neg);
    ck_assert(ps_yamlwalk_text_uint("-3", &v, &neg, &over));
    ck_assert(neg);
    ck_assert(ps_yamlwalk_text_uint("99999999999999999999", &v, &neg, &over));
    ck_assert(over);
    ck_assert(!ps_yamlwalk_text_uint("0x10", &v, &neg, &over));
    ck_assert(!ps_yamlwalk_text_uint("", &v, &neg, &over));
}
END_TEST

static Suite *yamlwalk_suite(void)
{
    Suite *s = suite_create("yamlwalk");
    TCase *kinds = tcase_create("kinds");
    tcase_add_test(kinds, read_fills_each_kind_from_its_row);
    tcase_add_test(kinds, absent_keys_take_their_row_defaults);
    tcase_add_test(kinds, integer_out_of_range_names_its_bounds);
    tcase_add_test(kinds, wrong_type_says_what_was_expected_and_written);
    tcase_add_test(kinds, float_range_shows_its_open_and_closed_ends);
    tcase_add_test(kinds, enum_error_lists_the_values_the_row_takes);
    tcase_add_test(kinds, enum_name_hook_leaves_out_the_values_it_does_not_take);
    tcase_add_test(kinds, enum_name_of_a_value_comes_from_the_list_or_the_hook);
    tcase_add_test(kinds, unsupported_enum_value_is_kept_for_the_caller_to_raise_last);
    tcase_add_test(kinds, string_hook_and_length_are_checked);
    tcase_add_test(kinds, path_resolves_against_the_walkers_folder);
    tcase_add_test(kinds, list_hook_counts_and_reads_items);
    suite_add_tcase(s, kinds);

    TCase *keys = tcase_create("keys");
    tcase_add_test(keys, duplicate_key_names_where_it_was_first);
    tcase_add_test(keys, unknown_key_gets_the_suggesters_hint);
    tcase_add_test(keys, required_key_may_be_neither_missing_nor_null);
    tcase_add_test(keys, null_value_means_absent_but_written);
    tcase_add_test(keys, seen_records_where_each_key_was_written);
    tcase_add_test(keys, find_key_follows_dotted_paths_through_sections);
    suite_add_tcase(s, keys);

    TCase *only = tcase_create("only");
    tcase_add_test(only, only_rule_refuses_a_key_its_rule_does_not_hold_for);
    tcase_add_test(only, only_rule_text_can_be_written_by_a_hook);
    tcase_add_test(only, only_rules_are_checked_in_table_order);
    suite_add_tcase(s, only);

    TCase *text = tcase_create("text");
    tcase_add_test(text, show_replaces_control_bytes_and_cuts_long_text);
    tcase_add_test(text, text_uint_reports_sign_and_overflow);
    suite_add_tcase(s, text);
    return s;
}

int main(void)
{
    return ps_check_run(yamlwalk_suite());
}
