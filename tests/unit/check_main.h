/* check_main.h — the main() every unit suite shares: run the suite, exit
 * non-zero when a test failed. */
#ifndef PS_CHECK_MAIN_H
#define PS_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

/* Runs every test of s (the runner frees it); EXIT_SUCCESS when all pass. */
static inline int ps_check_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
