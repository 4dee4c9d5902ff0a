/* test_report_notify.c — sd_notify datagrams as psrun reads psd's:
 * READY=1, STOPPING=1 and STATUS=, other keys ignored. */
#include <check.h>

#include "check_main.h"
#include <string.h>

#include "report_notify.h"

START_TEST(notify_datagram_gives_ready_stopping_and_status)
{
    ps_report_notify n;
    const char *ready = "READY=1\nSTATUS=shard 0/1: version 0";
    ps_report_notify_parse(ready, strlen(ready), &n);
    ck_assert(n.ready && !n.stopping);
    ck_assert_str_eq(n.status, "shard 0/1: version 0");
    const char *stop = "STOPPING=1\nSTATUS=job stopped by rank 0: training diverged\n";
    ps_report_notify_parse(stop, strlen(stop), &n);
    ck_assert(!n.ready && n.stopping);
    ck_assert_str_eq(n.status, "job stopped by rank 0: training diverged");
    ps_report_notify_parse("WATCHDOG=1", 10, &n);
    ck_assert(!n.ready && !n.stopping);
    ck_assert_str_eq(n.status, "");
    ps_report_notify_parse("READY=10", 8, &n);
    ck_assert(!n.ready);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("report_notify");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, notify_datagram_gives_ready_stopping_and_status);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
