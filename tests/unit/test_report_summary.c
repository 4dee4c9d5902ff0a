/* test_report_summary.c — the summary JSON psworker and psrun write and
 * psrun reads: written and read back (null for a number that is not finite;
 * curves, staleness, ranks and unfinished ranks; a binary classifier's AUC, and none for other
 * models or a summary from before it), and refused, naming what is wrong,
 * when a figure, a key or a curve does not fit. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report_summary.h"

/* ---- helpers ---- */

/* A temporary file holding text; its path in path (caller unlinks). */
static void file_with(char *path, size_t cap, const char *text, size_t len)
{
    snprintf(path, cap, "/tmp/test_report_summary.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq((int)write(fd, text, len), (int)len);
    close(fd);
}

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

static void summary_example(ps_report_summary *s)
{
    ps_report_summary_init(s);
    snprintf(s->job, sizeof s->job, "breast-cancer \"sync\"");
    snprintf(s->model, sizeof s->model, "logistic");
    snprintf(s->mode, sizeof s->mode, "sync");
    snprintf(s->metric_name, sizeof s->metric_name, "accuracy");
    snprintf(s->loss_name, sizeof s->loss_name, "log_loss");
    s->final_loss = 0.1;
    s->has_test = true;
    s->test_metric = 0.9649122807017544;
    s->test_loss = 0.0812345678901234;
    s->metric = s->test_metric;
    s->loss = s->test_loss;
    s->train_metric = 0.98;
    s->train_loss = 1.0 / 3.0;
    s->train_loss_last_epoch = 0.07;
    s->train_samples = 227;
    s->test_samples = 114;
    s->epochs = 20;
    s->steps_per_epoch = 8;
    s->batch_size = 32;
    s->pull_s = 0.001;
    s->compute_s = 0.002;
    s->push_pull_s = 0.25;
    s->wall_s = 1.5;
    s->samples_per_s = 3026.6666666666665;
    s->updates = 160;
    s->version = 160;
    s->workers = 2;
    s->rank = 1;
    s->has_staleness = true;
    s->staleness_max = 3;
    s->staleness_mean = 0.75;
    s->staleness_p99 = 2;
    s->nranks = 2;
    s->ranks[0] = (ps_report_rank){0, 160, 158, 2, 160};
    s->ranks[1] = (ps_report_rank){1, 160, 160, 0, 160};
    s->nunfinished = 1;
    s->unfinished[0] = (ps_report_unfinished){0, 158, 160};
}

/* Whether a and b hold the same summary, curves compared by value. */
static void summary_assert_equal(const ps_report_summary *a, const ps_report_summary *b)
{
    ck_assert_uint_eq(a->ncurves, b->ncurves);
    for (uint32_t i = 0; i < a->ncurves; i++) {
        const ps_report_curve *x = &a->curves[i], *y = &b->curves[i];
        ck_assert_uint_eq(x->rank, y->rank);
        ck_assert_uint_eq(x->every, y->every);
        ck_assert_uint_eq(x->n, y->n);
        ck_assert((x->test_metric == NULL) == (y->test_metric == NULL));
        ck_assert((x->test_auc == NULL) == (y->test_auc == NULL));
        for (uint32_t k = 0; k < x->n; k++) {
            if (x->test_auc)
                ck_assert(x->test_auc[k] == y->test_auc[k] ||
                          (isnan(x->test_auc[k]) && isnan(y->test_auc[k])));
            ck_assert(x->train_loss[k] == y->train_loss[k] ||
                      (isnan(x->train_loss[k]) && isnan(y->train_loss[k])));
            if (x->test_metric)
                ck_assert(x->test_metric[k] == y->test_metric[k] ||
                          (isnan(x->test_metric[k]) && isnan(y->test_metric[k])));
        }
    }
    ps_report_summary sa = *a, sb = *b;
    sa.curves = sb.curves = NULL;
    ck_assert_int_eq(memcmp(&sa, &sb, sizeof sa), 0);
}

/* Writes s to a file and reads it back into *out; returns the read's code. */
static int summary_round_trip(const ps_report_summary *s, ps_report_summary *out, char **text,
                              ps_error *err)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(ps_report_summary_write(f, s), 0);
    *text = file_text(f);
    fclose(f);
    char path[64];
    file_with(path, sizeof path, *text, strlen(*text));
    int rc = ps_report_summary_read(path, out, err);
    unlink(path);
    return rc;
}

START_TEST(summary_reads_back_as_written)
{
    ps_report_summary s, q;
    summary_example(&s);
    char *text;
    ps_error err = {0};
    ck_assert_int_eq(summary_round_trip(&s, &q, &text, &err), 0);
    ck_assert_ptr_nonnull(strstr(text, "\"test_metric\": { \"name\": \"accuracy\", \"value\": "
                                       "0.9649122807017544 }"));
    ck_assert_ptr_nonnull(strstr(text, "\"final_loss\": 0.1,"));
    ck_assert_ptr_nonnull(
        strstr(text, "\"staleness\": { \"max\": 3, \"mean\": 0.75, \"p99\": 2 }"));
    ck_assert_ptr_nonnull(strstr(text, "\"ranks\": [ { \"rank\": 0, \"clock\": 160, \"pushes\": "
                                       "158, \"dropped\": 2, \"rounds\": 160 }, { \"rank\": 1,"));
    ck_assert_ptr_nonnull(strstr(text, "\"dropped_ranks\": [ ]"));
    ck_assert_ptr_nonnull(strstr(text, "\"curves\": [ ]"));
    ck_assert_ptr_nonnull(
        strstr(text, "\"unfinished\": [ { \"rank\": 0, \"pushes\": 158, \"expected\": 160 } ]"));
    free(text);
    summary_assert_equal(&s, &q);
    ps_report_summary_fini(&q);
}
END_TEST

START_TEST(summary_keeps_each_workers_curve_with_null_for_epochs_not_reached)
{
    ps_report_summary s, q;
    summary_example(&s);
    s.rank = -1;
    double loss0[] = {0.7, 0.3, NAN, 0.125}, metric0[] = {0.9, 0.95, NAN, 0.96};
    double loss1[] = {0.5, 0.25, 0.2, INFINITY}, metric1[] = {0.9, 0.95, 0.94, 0.96};
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 1, 4, loss0, metric0, NULL), 0);
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 1, 1, 4, loss1, metric1, NULL), 0);
    loss0[0] = 99.0; /* the summary holds copies */
    char *text;
    ps_error err = {0};
    ck_assert_int_eq(summary_round_trip(&s, &q, &text, &err), 0);
    ck_assert_ptr_nonnull(strstr(text,
                                 "\"curves\": [ { \"rank\": 0, \"every\": 1, \"train_loss\": "
                                 "[ 0.7, 0.3, null, 0.125 ], \"test_metric\": [ 0.9, 0.95, null, "
                                 "0.96 ] }, { \"rank\": 1,"));
    ck_assert_ptr_nonnull(strstr(text, "[ 0.5, 0.25, 0.2, null ]"));
    free(text);
    ck_assert(s.curves[0].train_loss[0] == 0.7);
    ck_assert(isnan(q.curves[1].train_loss[3])); /* inf was written null */
    s.curves[1].train_loss[3] = NAN;
    summary_assert_equal(&s, &q);
    ps_report_summary_fini(&s);
    ps_report_summary_fini(&q);
    ck_assert_ptr_null(q.curves);
    ck_assert_uint_eq(q.ncurves, 0);
}
END_TEST

/* A rank more than half of whose rounds closed without its push (backup
 * workers) is named in "dropped_ranks"; one at half or below is not, nor
 * one of a mode without rounds. A rank without "dropped" and "rounds" (a
 * summary from before them) reads as 0 of each. */
START_TEST(summary_names_the_ranks_whose_pushes_were_mostly_dropped)
{
    ps_report_summary s, q;
    summary_example(&s);
    s.nranks = 5;
    s.ranks[0] = (ps_report_rank){0, 1407, 1380, 27, 1407};
    s.ranks[1] = (ps_report_rank){1, 1407, 0, 1407, 1407}; /* every push dropped */
    s.ranks[2] = (ps_report_rank){2, 1407, 700, 10, 1400}; /* half: not named */
    s.ranks[3] = (ps_report_rank){3, 1407, 108, 39, 1409}; /* rounds skipped too */
    s.ranks[4] = (ps_report_rank){4, 1407, 1407, 0, 0};    /* async: no rounds */
    char *text;
    ps_error err = {0};
    ck_assert_int_eq(summary_round_trip(&s, &q, &text, &err), 0);
    ck_assert_ptr_nonnull(strstr(text, "\"dropped_ranks\": [ 1, 3 ]"));
    free(text);
    summary_assert_equal(&s, &q);
    uint32_t named[1];
    ck_assert_uint_eq(ps_report_summary_dropped_ranks(&q, named, 1), 2);
    ck_assert_uint_eq(named[0], 1);
    ps_report_summary_fini(&q);

    const char *old = "\"ranks\": [ { \"rank\": 0, \"clock\": 160, \"pushes\": 158 } ]";
    summary_example(&s);
    s.nranks = 1;
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(ps_report_summary_write(f, &s), 0);
    text = file_text(f);
    fclose(f);
    char *at = strstr(text, "\"ranks\": [");
    char *end = strstr(text, "\"curves\"");
    ck_assert(at != NULL && end != NULL && end > at);
    size_t cap = strlen(text) + strlen(old) + 8;
    char *edited = malloc(cap);
    ck_assert_ptr_nonnull(edited);
    snprintf(edited, cap, "%.*s%s, %s", (int)(at - text), text, old, end);
    char path[64];
    file_with(path, sizeof path, edited, strlen(edited));
    ck_assert_msg(ps_report_summary_read(path, &q, &err) == 0, "%s", err.msg);
    unlink(path);
    ck_assert_uint_eq(q.nranks, 1);
    ck_assert_uint_eq(q.ranks[0].pushes, 158);
    ck_assert_uint_eq(q.ranks[0].dropped, 0);
    ck_assert_uint_eq(q.ranks[0].rounds, 0);
    ps_report_summary_fini(&q);
    free(edited);
    free(text);
}
END_TEST

START_TEST(summary_without_server_figures_has_null_staleness_and_no_ranks)
{
    ps_report_summary s, q;
    summary_example(&s);
    s.has_staleness = false;
    s.staleness_max = s.staleness_p99 = 0;
    s.staleness_mean = NAN;
    s.nranks = 0;
    memset(s.ranks, 0, sizeof s.ranks);
    s.nunfinished = 0; /* figures from psd: none without them */
    char *text;
    ps_error err = {0};
    ck_assert_int_eq(summary_round_trip(&s, &q, &text, &err), 0);
    ck_assert_ptr_nonnull(strstr(
        text, "\"staleness\": null, \"ranks\": [ ], \"unfinished\": [ ], \"dropped_ranks\": [ ]"));
    free(text);
    ck_assert(!q.has_staleness && q.nranks == 0 && isnan(q.staleness_mean));
}
END_TEST

START_TEST(summary_curve_add_refuses_a_curve_past_the_limits)
{
    ps_report_summary s;
    ps_report_summary_init(&s);
    double x[2] = {1.0, 2.0};
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 0, 2, x, NULL, NULL), PS_EINVAL);
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 1, PS_REPORT_EPOCHS_MAX + 1, x, NULL, NULL),
                     PS_EINVAL);
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 1, 2, x, NULL, x), PS_EINVAL);
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 1, 0, NULL, NULL, NULL), 0);
    ck_assert_uint_eq(s.ncurves, 1);
    ps_report_summary_fini(&s);
}
END_TEST

/* A summary's text with `from` replaced by `to` once, read back. */
static int summary_edited(const ps_report_summary *s, const char *from, const char *to,
                          ps_report_summary *q, ps_error *err)
{
    FILE *f = tmpfile();
    ck_assert_int_eq(ps_report_summary_write(f, s), 0);
    char *text = file_text(f);
    fclose(f);
    char *at = strstr(text, from);
    ck_assert_msg(at != NULL, "no %s", from);
    size_t len = strlen(text) - strlen(from) + strlen(to);
    char *edited = malloc(len + 1);
    ck_assert_ptr_nonnull(edited);
    snprintf(edited, len + 1, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    char path[64];
    file_with(path, sizeof path, edited, strlen(edited));
    int rc = ps_report_summary_read(path, q, err);
    /* the path in err is the file's: keep only what follows it */
    if (rc != 0) {
        size_t plen = strlen(path);
        ck_assert(strncmp(err->msg, path, plen) == 0);
        memmove(err->msg, err->msg + plen, strlen(err->msg + plen) + 1);
    }
    unlink(path);
    free(text);
    free(edited);
    return rc;
}

START_TEST(summary_with_a_curve_that_does_not_fit_is_refused)
{
    ps_report_summary s, q;
    summary_example(&s);
    double loss[] = {0.5, 0.25}, metric[] = {0.9, 0.95};
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 1, 1, 2, loss, metric, NULL), 0);
    ps_error err = {0};
    ck_assert_int_eq(
        summary_edited(&s, "\"test_metric\": [ 0.9, 0.95 ]", "\"test_metric\": [ 0.9 ]", &q, &err),
        PS_EDATA);
    ck_assert_str_eq(err.msg, ": curves[0]: 1 test figures for 2 epochs");
    ck_assert_int_eq(
        summary_edited(&s, "\"test_metric\": [ 0.9, 0.95 ]", "\"test_metric\": null", &q, &err),
        PS_EDATA);
    ck_assert_str_eq(err.msg,
                     ": curves[0]: \"test_metric\" is null, and the summary has a test set");
    ck_assert_int_eq(summary_edited(&s, "[ 0.5, 0.25 ]", "[ 0.5, \"x\" ]", &q, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, ": curves[0]: \"train_loss\"[1] is not a number");
    ck_assert_int_eq(summary_edited(&s, "\"every\": 1", "\"every\": 0", &q, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, ": curves[0]: \"every\" is 0");
    ck_assert_int_eq(
        summary_edited(&s, "\"staleness\": {", "\"staleness\": [ ], \"x\": {", &q, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, ": \"staleness\" is neither an object nor null");
    /* one number more than the limit */
    size_t cap = 16 * (PS_REPORT_EPOCHS_MAX + 2);
    char *many = malloc(cap);
    ck_assert_ptr_nonnull(many);
    size_t len = (size_t)snprintf(many, cap, "[ 0.5");
    for (int i = 0; i < PS_REPORT_EPOCHS_MAX; i++)
        len += (size_t)snprintf(many + len, cap - len, ", 0.5");
    snprintf(many + len, cap - len, " ]");
    ck_assert_int_eq(summary_edited(&s, "[ 0.5, 0.25 ]", many, &q, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, ": curves[0]: \"train_loss\" holds 1001 numbers, more than 1000");
    free(many);
    ps_report_summary_fini(&s);
}
END_TEST

START_TEST(summary_holds_null_for_numbers_that_are_not_finite)
{
    ps_report_summary s, q;
    summary_example(&s);
    s.final_loss = -NAN;
    s.test_metric = NAN;
    s.loss = INFINITY;
    s.train_loss = -INFINITY;
    char *text;
    ps_error err = {0};
    ck_assert_int_eq(summary_round_trip(&s, &q, &text, &err), 0);
    ck_assert_ptr_nonnull(strstr(text, "\"final_loss\": null"));
    ck_assert_ptr_nonnull(strstr(text, "\"value\": null"));
    ck_assert_ptr_nonnull(strstr(text, "\"log_loss\": null"));
    ck_assert_ptr_nonnull(strstr(text, "\"train_log_loss\": null"));
    ck_assert_ptr_null(strstr(text, "nan"));
    ck_assert_ptr_null(strstr(text, "NaN"));
    ck_assert_ptr_null(strstr(text, "nfinity"));
    free(text);
    ck_assert(isnan(q.final_loss) && isnan(q.test_metric) && isnan(q.loss) && isnan(q.train_loss));
    ck_assert(q.test_loss == s.test_loss);
    ps_report_summary_fini(&q);
}
END_TEST

START_TEST(summary_without_test_set_has_null_figures_and_no_rank_for_psrun)
{
    ps_report_summary s, q;
    summary_example(&s);
    s.has_test = false;
    s.rank = -1;
    char *text;
    ps_error err = {0};
    ck_assert_int_eq(summary_round_trip(&s, &q, &text, &err), 0);
    ck_assert_ptr_nonnull(strstr(text, "\"test_metric\": null, \"test_loss\": null"));
    ck_assert_ptr_nonnull(strstr(text, "\"workers\": 2, \"staleness\""));
    ck_assert_ptr_null(strstr(text, "\"workers\": 2, \"rank\""));
    free(text);
    ck_assert(!q.has_test);
    ck_assert_int_eq(q.rank, -1);
}
END_TEST

START_TEST(summary_with_nan_literal_or_missing_key_is_refused)
{
    ps_report_summary s, q;
    summary_example(&s);
    FILE *f = tmpfile();
    ps_report_summary_write(f, &s);
    char *text = file_text(f);
    fclose(f);
    char *at = strstr(text, "0.1,");
    ck_assert_ptr_nonnull(at);
    char bad[4096];
    snprintf(bad, sizeof bad, "%.*sNaN,%s", (int)(at - text), text, at + 4);
    char path[64];
    file_with(path, sizeof path, bad, strlen(bad));
    ps_error err = {0};
    ck_assert_int_eq(ps_report_summary_read(path, &q, &err), PS_EDATA);
    char want[128];
    snprintf(want, sizeof want, "%s: \"final_loss\" is not a number", path);
    ck_assert_str_eq(err.msg, want);
    unlink(path);
    at = strstr(text, "\"version\"");
    ck_assert_ptr_nonnull(at);
    memcpy(at, "\"versoin\"", 9);
    file_with(path, sizeof path, text, strlen(text));
    ck_assert_int_eq(ps_report_summary_read(path, &q, &err), PS_EDATA);
    snprintf(want, sizeof want, "%s: no \"version\"", path);
    ck_assert_str_eq(err.msg, want);
    unlink(path);
    free(text);
    ck_assert_int_eq(ps_report_summary_read("/nonexistent/w0.json", &q, &err), PS_EIO);
    ck_assert_str_eq(err.msg, "/nonexistent/w0.json: No such file or directory");
}
END_TEST

/* summary_example as a binary classifier's, with its AUC and a curve. */
static void summary_auc_example(ps_report_summary *s)
{
    summary_example(s);
    s->has_auc = true;
    s->test_auc = 0.9912;
    s->auc = s->test_auc;
    s->train_auc = 0.996875;
    double loss[] = {0.5, 0.25}, metric[] = {0.9, 0.95}, auc[] = {0.97, 0.9912};
    ck_assert_int_eq(ps_report_summary_curve_add(s, 1, 1, 2, loss, metric, auc), 0);
}

START_TEST(summary_of_a_binary_classifier_carries_its_auc)
{
    ps_report_summary s, q;
    summary_auc_example(&s);
    char *text;
    ps_error err = {0};
    ck_assert_int_eq(summary_round_trip(&s, &q, &text, &err), 0);
    ck_assert_ptr_nonnull(strstr(text, "\"test_loss\": { \"name\": \"log_loss\", \"value\": "
                                       "0.0812345678901234 }, \"test_auc\": { \"name\": \"auc\", "
                                       "\"value\": 0.9912 }, \"metrics\": {"));
    ck_assert_ptr_nonnull(strstr(text, "\"train_log_loss\": 0.3333333333333333, \"auc\": 0.9912, "
                                       "\"train_auc\": 0.996875, \"train_loss_last_epoch\""));
    ck_assert_ptr_nonnull(strstr(text, "\"test_metric\": [ 0.9, 0.95 ], \"test_auc\": [ 0.97, "
                                       "0.9912 ] }"));
    free(text);
    ck_assert(q.has_auc);
    ck_assert_double_eq(q.test_auc, 0.9912);
    ck_assert_double_eq(q.train_auc, 0.996875);
    ck_assert_double_eq(q.curves[0].test_auc[1], 0.9912);
    summary_assert_equal(&s, &q);
    ps_report_summary_fini(&s);
    ps_report_summary_fini(&q);
}
END_TEST

START_TEST(summary_of_a_binary_classifier_without_test_set_has_null_test_auc)
{
    ps_report_summary s, q;
    summary_example(&s);
    s.has_test = false;
    s.test_metric = s.test_loss = NAN; /* written null: read back NAN */
    s.has_auc = true;
    s.auc = s.train_auc = 0.5; /* the shard's */
    double loss[] = {0.5};
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 1, 1, loss, NULL, NULL), 0);
    char *text;
    ps_error err = {0};
    ck_assert_int_eq(summary_round_trip(&s, &q, &text, &err), 0);
    ck_assert_ptr_nonnull(strstr(text, "\"test_loss\": null, \"test_auc\": null"));
    ck_assert_ptr_nonnull(strstr(text, "\"auc\": 0.5, \"train_auc\": 0.5"));
    ck_assert_ptr_nonnull(strstr(text, "\"test_metric\": null, \"test_auc\": null }"));
    free(text);
    ck_assert(q.has_auc && !q.has_test && isnan(q.test_auc));
    summary_assert_equal(&s, &q);
    ps_report_summary_fini(&s);
    ps_report_summary_fini(&q);
}
END_TEST

START_TEST(summary_of_other_models_or_from_before_the_auc_has_none)
{
    /* summary_example is such a summary: no key names an AUC, and it reads
     * back without one */
    ps_report_summary s, q;
    summary_example(&s);
    double loss[] = {0.5}, metric[] = {0.9};
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 1, 1, loss, metric, NULL), 0);
    char *text;
    ps_error err = {0};
    ck_assert_int_eq(summary_round_trip(&s, &q, &text, &err), 0);
    ck_assert_ptr_null(strstr(text, "auc"));
    free(text);
    ck_assert(!q.has_auc);
    ck_assert(isnan(q.test_auc) && isnan(q.auc) && isnan(q.train_auc));
    ck_assert_ptr_null(q.curves[0].test_auc);
    summary_assert_equal(&s, &q);
    ps_report_summary_fini(&q);
    /* a curve with AUC figures in a summary without "test_auc" is refused */
    ck_assert_int_eq(summary_edited(&s, "\"test_metric\": [ 0.9 ]",
                                    "\"test_metric\": [ 0.9 ], \"test_auc\": [ 0.9 ]", &q, &err),
                     PS_EDATA);
    ck_assert_str_eq(err.msg, ": curves[0]: \"test_auc\", and the summary has no \"test_auc\"");
    ps_report_summary_fini(&s);
}
END_TEST

START_TEST(summary_from_before_unfinished_ranks_reads_as_none)
{
    ps_report_summary s, q;
    summary_example(&s);
    ps_error err = {0};
    const char *key = ", \"unfinished\": [ { \"rank\": 0, \"pushes\": 158, \"expected\": 160 } ]";
    ck_assert_int_eq(summary_edited(&s, key, "", &q, &err), 0);
    ck_assert_uint_eq(q.nunfinished, 0);
    ps_report_summary_fini(&q);
    /* an entry without its progress is refused, naming it */
    ck_assert_int_eq(summary_edited(&s, "\"pushes\": 158, \"expected\"", "\"expected\"", &q, &err),
                     PS_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "unfinished[0]"));
    ps_report_summary_fini(&s);
}
END_TEST

START_TEST(summary_with_auc_figures_that_do_not_fit_is_refused)
{
    ps_report_summary s, q;
    summary_auc_example(&s);
    ps_error err = {0};
    ck_assert_int_eq(
        summary_edited(&s, "\"test_auc\": [ 0.97, 0.9912 ]", "\"test_auc\": [ 0.97 ]", &q, &err),
        PS_EDATA);
    ck_assert_str_eq(err.msg, ": curves[0]: 1 test AUC figures for 2 epochs");
    ck_assert_int_eq(
        summary_edited(&s, "\"test_auc\": [ 0.97, 0.9912 ]", "\"test_auc\": null", &q, &err),
        PS_EDATA);
    ck_assert_str_eq(err.msg, ": curves[0]: \"test_auc\" is null, and the summary has a test set");
    ck_assert_int_eq(summary_edited(&s, ", \"test_auc\": [ 0.97, 0.9912 ]", "", &q, &err),
                     PS_EDATA);
    ck_assert_str_eq(err.msg, ": curves[0]: no \"test_auc\"");
    ck_assert_int_eq(summary_edited(&s, "\"test_auc\": { \"name\": \"auc\", \"value\": 0.9912 }",
                                    "\"test_auc\": null", &q, &err),
                     PS_EDATA);
    ck_assert_str_eq(err.msg, ": \"test_auc\" is null, and test_metric is an object");
    ck_assert_int_eq(summary_edited(&s, "{ \"name\": \"auc\",", "{ \"name\": \"roc\",", &q, &err),
                     PS_EDATA);
    ck_assert_str_eq(err.msg, ": \"test_auc\" names roc, not auc");
    ck_assert_int_eq(
        summary_edited(&s, "\"train_auc\": 0.996875", "\"train_acu\": 0.996875", &q, &err),
        PS_EDATA);
    ck_assert_str_eq(err.msg, ": metrics: no \"train_auc\"");
    ps_report_summary_fini(&s);
}
END_TEST

START_TEST(summary_file_write_reads_back_as_written)
{
    ps_report_summary s, q;
    summary_example(&s);
    char dir[] = "/tmp/test_report_summary.XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/summary.json", dir);
    ps_error err = {0};
    ck_assert_int_eq(ps_report_summary_file_write(path, &s, &err), 0);
    ck_assert_int_eq(ps_report_summary_read(path, &q, &err), 0);
    summary_assert_equal(&s, &q);
    ps_report_summary_fini(&q);
    unlink(path);
    rmdir(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("report_summary");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, summary_reads_back_as_written);
    tcase_add_test(tc, summary_holds_null_for_numbers_that_are_not_finite);
    tcase_add_test(tc, summary_without_test_set_has_null_figures_and_no_rank_for_psrun);
    tcase_add_test(tc, summary_with_nan_literal_or_missing_key_is_refused);
    tcase_add_test(tc, summary_keeps_each_workers_curve_with_null_for_epochs_not_reached);
    tcase_add_test(tc, summary_without_server_figures_has_null_staleness_and_no_ranks);
    tcase_add_test(tc, summary_names_the_ranks_whose_pushes_were_mostly_dropped);
    tcase_add_test(tc, summary_curve_add_refuses_a_curve_past_the_limits);
    tcase_add_test(tc, summary_with_a_curve_that_does_not_fit_is_refused);
    tcase_add_test(tc, summary_file_write_reads_back_as_written);
    tcase_add_test(tc, summary_of_a_binary_classifier_carries_its_auc);
    tcase_add_test(tc, summary_of_a_binary_classifier_without_test_set_has_null_test_auc);
    tcase_add_test(tc, summary_of_other_models_or_from_before_the_auc_has_none);
    tcase_add_test(tc, summary_with_auc_figures_that_do_not_fit_is_refused);
    tcase_add_test(tc, summary_from_before_unfinished_ranks_reads_as_none);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
