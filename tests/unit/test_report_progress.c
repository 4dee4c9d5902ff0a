/* test_report_progress.c — progress lines as psworker writes them and psrun
 * reads them: formatted and parsed back, non-finite losses, lines that are
 * not progress lines, and the reader that assembles lines from a stream. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report_progress.h"

typedef struct seen {
    ps_report_progress lines[8];
    int n;
} seen;

static void on_progress(void *arg, const ps_report_progress *p)
{
    seen *s = arg;
    if (s->n < 8)
        s->lines[s->n] = *p;
    s->n++;
}

START_TEST(progress_line_reads_back_as_written)
{
    ps_report_progress p = {3, 1234, 16000, 7, 0.125}, q;
    char line[PS_REPORT_PROGRESS_MAX + 1];
    int n = ps_report_progress_format(&p, line, sizeof line);
    ck_assert_str_eq(line, "progress 3 1234 16000 7 0.125\n");
    ck_assert_int_eq(n, (int)strlen(line));
    line[n - 1] = '\0';
    ck_assert_int_eq(ps_report_progress_parse(line, &q), 0);
    ck_assert_uint_eq(q.rank, 3);
    ck_assert_uint_eq(q.done, 1234);
    ck_assert_uint_eq(q.total, 16000);
    ck_assert_uint_eq(q.epoch, 7);
    ck_assert(q.loss == 0.125);
}
END_TEST

START_TEST(progress_non_finite_loss_is_written_nan_not_minus_nan)
{
    char line[PS_REPORT_PROGRESS_MAX + 1];
    ps_report_progress p = {0, 1, 2, 1, -NAN}, q;
    ps_report_progress_format(&p, line, sizeof line);
    ck_assert_str_eq(line, "progress 0 1 2 1 nan\n");
    ck_assert_int_eq(ps_report_progress_parse("progress 0 1 2 1 nan", &q), 0);
    ck_assert(isnan(q.loss));
    p.loss = -INFINITY;
    ps_report_progress_format(&p, line, sizeof line);
    ck_assert_str_eq(line, "progress 0 1 2 1 -inf\n");
}
END_TEST

START_TEST(progress_parse_refuses_what_is_not_a_progress_line)
{
    static const char *const bad[] = {
        "",
        "progress",
        "progress 1 2 3 4",
        "progress 1 2 3 4 ",
        "progress 1 2 3 4 0.5 extra",
        "progress -1 2 3 4 0.5",
        "progress 1  2 3 4 0.5",
        "progress 4294967296 2 3 4 0.5",
        "progress 1 18446744073709551616 3 4 0.5",
        "progress 1 2 3 4 0.5x",
        "progres 1 2 3 4 0.5",
        "[w0] psworker: epoch 1/5: loss 1.0609",
    };
    ps_report_progress q = {9, 9, 9, 9, 9.0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(ps_report_progress_parse(bad[i], &q) == PS_EINVAL, "accepted \"%s\"", bad[i]);
        ck_assert_uint_eq(q.rank, 9);
    }
}
END_TEST

START_TEST(progress_reader_assembles_lines_whatever_the_chunks)
{
    const char *stream = "progress 0 1 10 1 2.5\nprogress 1 1 10 1 3.5\n";
    ps_report_progress_reader r;
    ps_report_progress_reader_init(&r);
    seen s = {.n = 0};
    for (size_t i = 0; stream[i]; i++)
        ck_assert_uint_eq(ps_report_progress_feed(&r, stream + i, 1, on_progress, &s), 0);
    ck_assert_int_eq(s.n, 2);
    ck_assert_uint_eq(s.lines[1].rank, 1);
    ck_assert(s.lines[1].loss == 3.5);
}
END_TEST

START_TEST(progress_reader_skips_an_overlong_line_whole)
{
    /* "progress 0 1 10 1 2.5" at the end of a long line must not be read
     * as a line of its own */
    char stream[600];
    memset(stream, 'x', 300);
    snprintf(stream + 300, sizeof stream - 300, "progress 0 1 10 1 2.5\nprogress 1 2 10 1 4\n");
    ps_report_progress_reader r;
    ps_report_progress_reader_init(&r);
    seen s = {.n = 0};
    ck_assert_uint_eq(ps_report_progress_feed(&r, stream, strlen(stream), on_progress, &s), 1);
    ck_assert_int_eq(s.n, 1);
    ck_assert_uint_eq(s.lines[0].rank, 1);
    ck_assert_uint_eq(r.rejected, 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("report_progress");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, progress_line_reads_back_as_written);
    tcase_add_test(tc, progress_non_finite_loss_is_written_nan_not_minus_nan);
    tcase_add_test(tc, progress_parse_refuses_what_is_not_a_progress_line);
    tcase_add_test(tc, progress_reader_assembles_lines_whatever_the_chunks);
    tcase_add_test(tc, progress_reader_skips_an_overlong_line_whole);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
