/* test_report_number.c — numbers for people: fixed point for a finite
 * figure, and nan, inf, -inf where printf would say -nan. */
#include <check.h>

#include "check_main.h"
#include <math.h>

#include "report_number.h"

START_TEST(number_format_says_nan_where_printf_says_minus_nan)
{
    char buf[32];
    ck_assert_str_eq(ps_report_number_format(-NAN, 4, buf, sizeof buf), "nan");
    ck_assert_str_eq(ps_report_number_format(NAN, 4, buf, sizeof buf), "nan");
    ck_assert_str_eq(ps_report_number_format(-INFINITY, 4, buf, sizeof buf), "-inf");
    ck_assert_str_eq(ps_report_number_format(0.123456, 4, buf, sizeof buf), "0.1235");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("report_number");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, number_format_says_nan_where_printf_says_minus_nan);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
