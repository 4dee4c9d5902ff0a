/* test_report_curves.c — the training curves' SVG drawn from a summary:
 * the title names job, model, mode and codec, a line per worker in each
 * panel, a binary classifier's test AUC in a third panel, a chart without
 * a test set says so, and the file written holds the same chart. */
#include <check.h>

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report_curves.h"

/* The text f holds from its start (caller frees). */
static char *file_text(FILE *f)
{
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    char *text = calloc(1, (size_t)n + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(fread(text, 1, (size_t)n, f), (size_t)n);
    return text;
}

/* A summary as the chart reads it: names, mode, test set; no curves yet. */
static void summary_example(ps_report_summary *s)
{
    ps_report_summary_init(s);
    snprintf(s->job, sizeof s->job, "breast-cancer \"sync\"");
    snprintf(s->model, sizeof s->model, "logistic");
    snprintf(s->mode, sizeof s->mode, "sync");
    snprintf(s->metric_name, sizeof s->metric_name, "accuracy");
    snprintf(s->loss_name, sizeof s->loss_name, "log_loss");
    s->has_test = true;
}

/* The text of s's curves chart with codec (caller frees). */
static char *curves_text(const ps_report_summary *s, const char *codec)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(ps_report_curves_write(f, s, codec), 0);
    char *text = file_text(f);
    fclose(f);
    return text;
}

static size_t count(const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = strstr(text, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

START_TEST(curves_chart_names_job_model_mode_and_codec_with_a_line_per_worker)
{
    ps_report_summary s;
    summary_example(&s);
    double loss0[] = {0.7, 0.3, 0.2}, loss1[] = {0.6, 0.35, 0.25}, metric[] = {0.9, 0.95, 0.96};
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 1, 3, loss0, metric, NULL), 0);
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 1, 1, 3, loss1, metric, NULL), 0);
    char *text = curves_text(&s, "fp16");
    /* the job's name is escaped: it came from a file */
    ck_assert_ptr_nonnull(strstr(text,
                                 ">breast-cancer &quot;sync&quot; \u2014 logistic, mode sync, "
                                 "codec fp16</text>"));
    ck_assert_ptr_nonnull(strstr(text, "data-name=\"train_loss\""));
    ck_assert_ptr_nonnull(strstr(text, "data-name=\"test_metric\""));
    ck_assert_ptr_nonnull(strstr(text, ">training loss (log-loss)</text>"));
    ck_assert_ptr_nonnull(strstr(text, ">test accuracy</text>"));
    ck_assert_uint_eq(count(text, "<polyline class=\"line\" data-rank=\"0\""), 2);
    ck_assert_uint_eq(count(text, "<polyline class=\"line\" data-rank=\"1\""), 2);
    ck_assert_ptr_nonnull(strstr(text, ">rank 1</text>"));
    ck_assert_ptr_null(strstr(text, "test_auc")); /* no AUC in the summary: no panel */
    ck_assert_uint_eq(count(text, "<g class=\"panel\""), 2);
    free(text);
    ps_report_summary_fini(&s);
}
END_TEST

START_TEST(curves_chart_of_a_binary_classifier_draws_the_test_auc)
{
    ps_report_summary s;
    summary_example(&s);
    s.has_auc = true;
    double loss[] = {0.7, 0.3, 0.2}, metric[] = {0.9, 0.95, 0.96}, auc[] = {0.95, 0.98, 0.99};
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 1, 3, loss, metric, auc), 0);
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 1, 1, 3, loss, metric, auc), 0);
    char *text = curves_text(&s, "none");
    ck_assert_uint_eq(count(text, "<g class=\"panel\""), 3);
    ck_assert_ptr_nonnull(strstr(text, "data-name=\"test_auc\""));
    ck_assert_ptr_nonnull(strstr(text, ">test AUC</text>"));
    ck_assert_uint_eq(count(text, "<polyline class=\"line\" data-rank=\"0\""), 3);
    ck_assert_uint_eq(count(text, "<polyline class=\"line\" data-rank=\"1\""), 3);
    free(text);
    ps_report_summary_fini(&s);
    /* without a test set both test panels say so */
    summary_example(&s);
    s.has_auc = true;
    s.has_test = false;
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 1, 3, loss, NULL, NULL), 0);
    text = curves_text(&s, "none");
    ck_assert_uint_eq(count(text, ">no test set</text>"), 2);
    ck_assert_uint_eq(count(text, "<polyline "), 1);
    free(text);
    ps_report_summary_fini(&s);
}
END_TEST

START_TEST(curves_chart_without_test_set_says_so)
{
    ps_report_summary s;
    summary_example(&s);
    s.has_test = false;
    snprintf(s.metric_name, sizeof s.metric_name, "r2");
    snprintf(s.loss_name, sizeof s.loss_name, "mse");
    double loss[] = {2.0, 1.0};
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 1, 2, loss, NULL, NULL), 0);
    char *text = curves_text(&s, "none");
    ck_assert_ptr_nonnull(strstr(text, ">no test set</text>"));
    ck_assert_ptr_nonnull(strstr(text, ">training loss (mse)</text>"));
    ck_assert_ptr_nonnull(strstr(text, ">test R\u00b2</text>"));
    ck_assert_uint_eq(count(text, "<polyline "), 1);
    free(text);
    ps_report_summary_fini(&s);
}
END_TEST

START_TEST(curves_file_write_holds_the_chart_curves_write_draws)
{
    ps_report_summary s;
    summary_example(&s);
    double loss[] = {0.7, 0.3}, metric[] = {0.9, 0.95};
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 1, 2, loss, metric, NULL), 0);
    char dir[] = "/tmp/test_report_curves.XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/curves.svg", dir);
    ps_error err = {0};
    ck_assert_int_eq(ps_report_curves_file_write(path, &s, "int8", &err), 0);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    char *written = file_text(f);
    fclose(f);
    char *drawn = curves_text(&s, "int8");
    ck_assert_str_eq(written, drawn);
    free(written);
    free(drawn);
    unlink(path);
    rmdir(dir);
    ps_report_summary_fini(&s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("report_curves");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, curves_chart_names_job_model_mode_and_codec_with_a_line_per_worker);
    tcase_add_test(tc, curves_chart_without_test_set_says_so);
    tcase_add_test(tc, curves_chart_of_a_binary_classifier_draws_the_test_auc);
    tcase_add_test(tc, curves_file_write_holds_the_chart_curves_write_draws);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
