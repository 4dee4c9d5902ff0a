/* test_error.c — ps_strerror and ps_err_name come from one list and cover
 * unknown codes too. */
#include <check.h>

#include "check_main.h"
#include <stdlib.h>

#include "error.h"

START_TEST(strerror_names_every_listed_code)
{
    ck_assert_str_eq(ps_strerror(PS_OK), "success");
    ck_assert_str_eq(ps_strerror(PS_EPROTO), "malformed message");
    ck_assert_str_eq(ps_strerror(PS_EJOB), "message for another job");
    ck_assert_str_eq(ps_strerror(PS_EUNSUPPORTED), "not supported yet");
    ck_assert_str_eq(ps_err_name(PS_EPAYLOAD), "PS_EPAYLOAD");
    ck_assert_str_eq(ps_err_name(PS_OK), "PS_OK");
}
END_TEST

START_TEST(strerror_of_unknown_code_says_unknown)
{
    ck_assert_str_eq(ps_strerror(-9999), "unknown error");
    ck_assert_str_eq(ps_strerror(7), "unknown error");
    ck_assert_str_eq(ps_err_name(-9999), "PS_E?");
}
END_TEST

START_TEST(error_set_formats_and_returns_code)
{
    ps_error err;
    ck_assert_int_eq(ps_error_set(&err, PS_EIO, "%s: %d", "ckpt", 42), PS_EIO);
    ck_assert_int_eq(err.code, PS_EIO);
    ck_assert_str_eq(err.msg, "ckpt: 42");
    ck_assert_int_eq(ps_error_set(NULL, PS_ENOMEM, "x"), PS_ENOMEM);
    ps_error_clear(&err);
    ck_assert_int_eq(err.code, 0);
    ck_assert_str_eq(err.msg, "");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("error");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, strerror_names_every_listed_code);
    tcase_add_test(tc, strerror_of_unknown_code_says_unknown);
    tcase_add_test(tc, error_set_formats_and_returns_code);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
