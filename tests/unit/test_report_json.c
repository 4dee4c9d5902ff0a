/* test_report_json.c — the field tables and strict reader the plan and the
 * summary share: numbers written shortest and read back the same, null for
 * one that is not finite, a field that does not fit refused by name, and a
 * document that is not one JSON object refused. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report_json.h"

typedef struct row {
    char name[4];
    uint32_t count;
    double value;
} row;

static const ps_report_json_field row_fields[] = {
    PS_REPORT_JSON_FIELD(row, name, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(row, count, PS_REPORT_JSON_U32),
    PS_REPORT_JSON_FIELD(row, value, PS_REPORT_JSON_NUM),
};

/* Reads the object text holds through a pipe, as psrun reads a plan. */
static int object_from(const char *text, json_object **obj, ps_error *err)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    ck_assert_int_eq((int)write(fds[1], text, strlen(text)), (int)strlen(text));
    close(fds[1]);
    int rc = ps_report_json_read_fd(fds[0], "doc", obj, err);
    close(fds[0]);
    return rc;
}

/* Reads row_fields of text into *r; returns the read's code. */
static int row_from(const char *text, row *r, ps_error *err)
{
    json_object *obj;
    ck_assert_int_eq(object_from(text, &obj, err), 0);
    int rc = ps_report_json_fields_get(obj, r, row_fields, 3, "doc", err);
    json_object_put(obj);
    return rc;
}

START_TEST(number_is_written_shortest_that_reads_back_the_same)
{
    json_object *v = ps_report_json_number_new(0.1);
    ck_assert_str_eq(json_object_to_json_string(v), "0.1");
    json_object_put(v);
    v = ps_report_json_number_new(1.0 / 3.0);
    ck_assert_str_eq(json_object_to_json_string(v), "0.3333333333333333");
    ck_assert(strtod(json_object_to_json_string(v), NULL) == 1.0 / 3.0);
    json_object_put(v);
    ck_assert_ptr_null(ps_report_json_number_new(NAN));
    ck_assert_ptr_null(ps_report_json_number_new(-INFINITY));
}
END_TEST

START_TEST(fields_read_back_as_written_with_null_for_a_number_not_finite)
{
    row r = {"ab", 7, NAN}, q = {"", 0, 0.0};
    json_object *obj = json_object_new_object();
    ck_assert(ps_report_json_fields_put(obj, &r, row_fields, 3));
    ck_assert_str_eq(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_SPACED),
                     "{ \"name\": \"ab\", \"count\": 7, \"value\": null }");
    ps_error err = {0};
    ck_assert_int_eq(ps_report_json_fields_get(obj, &q, row_fields, 3, "doc", &err), 0);
    json_object_put(obj);
    ck_assert_str_eq(q.name, "ab");
    ck_assert_uint_eq(q.count, 7);
    ck_assert(isnan(q.value));
}
END_TEST

START_TEST(field_that_does_not_fit_is_refused_by_name)
{
    row q;
    ps_error err = {0};
    ck_assert_int_eq(row_from("{\"name\": \"abcd\", \"count\": 1, \"value\": 1}", &q, &err),
                     PS_EDATA);
    ck_assert_str_eq(err.msg, "doc: \"name\" is longer than 3 bytes");
    ck_assert_int_eq(row_from("{\"name\": \"a\", \"count\": -1, \"value\": 1}", &q, &err),
                     PS_EDATA);
    ck_assert_str_eq(err.msg, "doc: \"count\" is not a count");
    ck_assert_int_eq(row_from("{\"name\": \"a\", \"count\": 4294967296, \"value\": 1}", &q, &err),
                     PS_EDATA);
    ck_assert_str_eq(err.msg, "doc: \"count\" is out of range");
    ck_assert_int_eq(row_from("{\"name\": \"a\", \"count\": 1, \"value\": \"1\"}", &q, &err),
                     PS_EDATA);
    ck_assert_str_eq(err.msg, "doc: \"value\" is not a number");
    ck_assert_int_eq(row_from("{\"name\": \"a\", \"count\": 1}", &q, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, "doc: no \"value\"");
}
END_TEST

START_TEST(reader_takes_one_object_and_white_space_only)
{
    json_object *obj = NULL;
    ps_error err = {0};
    ck_assert_int_eq(object_from("{\"a\": 1} \t\r\n", &obj, &err), 0);
    json_object_put(obj);
    ck_assert_int_eq(object_from("[1, 2]", &obj, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, "doc: not a JSON object");
    /* json-c's own words follow, and differ between its versions */
    ck_assert_int_eq(object_from("{a: 1}", &obj, &err), PS_EDATA);
    ck_assert_int_eq(strncmp(err.msg, "doc: not JSON: ", 15), 0);
    ck_assert_int_eq(object_from("{\"a\": 1} x", &obj, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, "doc: more than one JSON value");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("report_json");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, number_is_written_shortest_that_reads_back_the_same);
    tcase_add_test(tc, fields_read_back_as_written_with_null_for_a_number_not_finite);
    tcase_add_test(tc, field_that_does_not_fit_is_refused_by_name);
    tcase_add_test(tc, reader_takes_one_object_and_white_space_only);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
