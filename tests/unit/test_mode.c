/* test_mode.c — the table of consistency modes: names both ways, the keys
 * each mode takes, and the lists error texts are made of. */
#include <check.h>

#include "check_main.h"
#include <stdlib.h>

#include "mode.h"

START_TEST(every_mode_has_a_row_with_its_own_value)
{
    for (int m = 0; m < PS_MODE_COUNT; m++) {
        const ps_mode_desc *d = ps_mode_get((ps_mode)m);
        ck_assert_ptr_nonnull(d);
        ck_assert_int_eq(d->mode, m);
        ck_assert_ptr_eq(ps_mode_find(d->name), d);
        ck_assert_str_eq(ps_mode_name((ps_mode)m), d->name);
    }
}
END_TEST

START_TEST(names_are_those_of_job_files)
{
    ck_assert_int_eq(ps_mode_find("sync")->mode, PS_MODE_SYNC);
    ck_assert_int_eq(ps_mode_find("async")->mode, PS_MODE_ASYNC);
    ck_assert_int_eq(ps_mode_find("ssp")->mode, PS_MODE_SSP);
    ck_assert_ptr_null(ps_mode_find("bsp"));
    ck_assert_ptr_null(ps_mode_find(NULL));
    ck_assert_ptr_null(ps_mode_get(PS_MODE_COUNT));
    ck_assert_str_eq(ps_mode_name(PS_MODE_COUNT), "?");
}
END_TEST

START_TEST(only_sync_has_rounds)
{
    ck_assert(ps_mode_get(PS_MODE_SYNC)->rounds);
    ck_assert(!ps_mode_get(PS_MODE_ASYNC)->rounds);
    ck_assert(!ps_mode_get(PS_MODE_SSP)->rounds);
}
END_TEST

START_TEST(keys_belong_to_their_modes)
{
    ck_assert(ps_mode_takes(PS_MODE_SSP, PS_MODE_KEY_STALENESS));
    ck_assert(!ps_mode_takes(PS_MODE_SYNC, PS_MODE_KEY_STALENESS));
    ck_assert(ps_mode_takes(PS_MODE_SYNC, PS_MODE_KEY_BACKUP_WORKERS));
    ck_assert(ps_mode_takes(PS_MODE_SYNC, PS_MODE_KEY_DETERMINISTIC));
    ck_assert(!ps_mode_takes(PS_MODE_ASYNC, PS_MODE_KEY_DETERMINISTIC));
    ck_assert(!ps_mode_takes(PS_MODE_COUNT, PS_MODE_KEY_STALENESS));
}
END_TEST

START_TEST(names_taking_a_key_read_as_a_list)
{
    char buf[64];
    ps_mode_names_taking(PS_MODE_KEY_STALENESS, buf, sizeof buf);
    ck_assert_str_eq(buf, "mode ssp");
    ps_mode_names_taking(PS_MODE_KEY_BACKUP_WORKERS, buf, sizeof buf);
    ck_assert_str_eq(buf, "mode sync");
    ps_mode_names_taking(0, buf, sizeof buf);
    ck_assert_str_eq(buf, "mode sync or async or ssp");
    ps_mode_names_taking(0, buf, 8); /* cut, still terminated */
    ck_assert_str_eq(buf, "mode sy");
}
END_TEST

static Suite *mode_suite(void)
{
    Suite *s = suite_create("mode");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, every_mode_has_a_row_with_its_own_value);
    tcase_add_test(tc, names_are_those_of_job_files);
    tcase_add_test(tc, only_sync_has_rounds);
    tcase_add_test(tc, keys_belong_to_their_modes);
    tcase_add_test(tc, names_taking_a_key_read_as_a_list);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(mode_suite());
}
