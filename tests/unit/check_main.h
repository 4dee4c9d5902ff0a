/* check_main.h — the main() every unit suite shares: run the suite, exit
 * non-zero when a test failed or when no test ran at all (an empty suite,
 * or CK_RUN_CASE naming no case, must not pass by running nothing). */
#ifndef PS_CHECK_MAIN_H
#define PS_CHECK_MAIN_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

/* Runs every test of s (the runner frees it); EXIT_SUCCESS when at least
 * one ran and all passed. */
static inline int ps_check_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int ran = srunner_ntests_run(sr);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (ran == 0) {
        fprintf(stderr, "no test ran: a suite that checks nothing fails\n");
        return EXIT_FAILURE;
    }
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
