/* test_report.c — the formats psworker writes and psrun reads: progress
 * lines, the --describe plan, the summary JSON (null for a number that is
 * not finite; curves, staleness and ranks) and sd_notify datagrams, each
 * written and read back; and the training curves' SVG drawn from a
 * summary. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report.h"

/* ---- helpers ---- */

/* A temporary file holding text; its path in path (caller unlinks). */
static void file_with(char *path, size_t cap, const char *text, size_t len)
{
    snprintf(path, cap, "/tmp/test_report.XXXXXX");
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
    s->ranks[0] = (ps_report_rank){0, 160, 158};
    s->ranks[1] = (ps_report_rank){1, 160, 160};
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
        for (uint32_t k = 0; k < x->n; k++) {
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

/* Reads a plan from text through a pipe. */
static int plan_from(const char *text, ps_report_plan *p, ps_error *err)
{
    char path[64];
    file_with(path, sizeof path, text, strlen(text));
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    int rc = ps_report_plan_read_fd(fileno(f), "plan", p, err);
    fclose(f);
    unlink(path);
    return rc;
}

/* ---- progress ---- */

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

/* ---- the plan ---- */

START_TEST(plan_reads_back_as_written)
{
    ps_report_plan p, q;
    memset(&p, 0, sizeof p);
    snprintf(p.job, sizeof p.job, "digits/softmax");
    snprintf(p.mode, sizeof p.mode, "ssp");
    p.workers = 4;
    p.nservers = 2;
    snprintf(p.servers[0], sizeof p.servers[0], "tcp://127.0.0.1:7070");
    snprintf(p.servers[1], sizeof p.servers[1], "ipc:///tmp/psd1");
    snprintf(p.on_worker_loss, sizeof p.on_worker_loss, "abort");
    snprintf(p.on_divergence, sizeof p.on_divergence, "stop");
    snprintf(p.model, sizeof p.model, "softmax");
    p.features = 64;
    p.params = 650;
    p.epochs = 20;
    p.batch_size = 32;
    snprintf(p.output, sizeof p.output, "out/");
    snprintf(p.compression, sizeof p.compression, "fp16");
    FILE *f = tmpfile();
    ck_assert_int_eq(ps_report_plan_write(f, &p), 0);
    char *text = file_text(f);
    fclose(f);
    ps_error err = {0};
    ck_assert_int_eq(plan_from(text, &q, &err), 0);
    free(text);
    ck_assert_int_eq(memcmp(&p, &q, sizeof p), 0);
}
END_TEST

START_TEST(plan_without_workers_is_refused_naming_the_key)
{
    ps_report_plan q;
    ps_error err = {0};
    ck_assert_int_eq(plan_from("{\"job\": \"j\", \"mode\": \"sync\"}", &q, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, "plan: no \"workers\"");
    const char *wrong = "{\"job\": \"j\", \"mode\": \"sync\", \"workers\": \"2\"}";
    ck_assert_int_eq(plan_from(wrong, &q, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, "plan: \"workers\" is not a count");
}
END_TEST

START_TEST(plan_cut_short_or_not_json_is_refused)
{
    ps_report_plan q;
    ps_error err = {0};
    ck_assert_int_eq(plan_from("{\"job\": \"j\", \"mo", &q, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, "plan: not JSON: it ends in the middle");
    ck_assert_int_eq(plan_from("", &q, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, "plan: not JSON: empty");
    ck_assert_int_eq(plan_from("{} {}", &q, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, "plan: more than one JSON value");
    ck_assert_int_eq(plan_from("job=j\nworkers=2\n", &q, &err), PS_EDATA);
}
END_TEST

START_TEST(plan_larger_than_the_limit_is_refused_not_cut)
{
    size_t n = PS_REPORT_JSON_MAX + 100;
    char *text = malloc(n + 1);
    ck_assert_ptr_nonnull(text);
    memset(text, ' ', n);
    text[0] = '{';
    text[n - 1] = '}';
    text[n] = '\0';
    ps_report_plan q;
    ps_error err = {0};
    ck_assert_int_eq(plan_from(text, &q, &err), PS_EDATA);
    free(text);
    ck_assert_str_eq(err.msg, "plan: larger than 1048576 bytes");
}
END_TEST

/* ---- the summary ---- */

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
                                       "158 }, { \"rank\": 1,"));
    ck_assert_ptr_nonnull(strstr(text, "\"curves\": [ ]"));
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
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 1, 4, loss0, metric0), 0);
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 1, 1, 4, loss1, metric1), 0);
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

START_TEST(summary_without_server_figures_has_null_staleness_and_no_ranks)
{
    ps_report_summary s, q;
    summary_example(&s);
    s.has_staleness = false;
    s.staleness_max = s.staleness_p99 = 0;
    s.staleness_mean = NAN;
    s.nranks = 0;
    memset(s.ranks, 0, sizeof s.ranks);
    char *text;
    ps_error err = {0};
    ck_assert_int_eq(summary_round_trip(&s, &q, &text, &err), 0);
    ck_assert_ptr_nonnull(strstr(text, "\"staleness\": null, \"ranks\": [ ]"));
    free(text);
    ck_assert(!q.has_staleness && q.nranks == 0 && isnan(q.staleness_mean));
}
END_TEST

START_TEST(summary_curve_add_refuses_a_curve_past_the_limits)
{
    ps_report_summary s;
    ps_report_summary_init(&s);
    double x[2] = {1.0, 2.0};
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 0, 2, x, NULL), PS_EINVAL);
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 1, PS_REPORT_EPOCHS_MAX + 1, x, NULL),
                     PS_EINVAL);
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 1, 0, NULL, NULL), 0);
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
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 1, 1, 2, loss, metric), 0);
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

/* ---- the curves' SVG ---- */

START_TEST(curves_chart_names_job_model_mode_and_codec_with_a_line_per_worker)
{
    ps_report_summary s;
    summary_example(&s);
    double loss0[] = {0.7, 0.3, 0.2}, loss1[] = {0.6, 0.35, 0.25}, metric[] = {0.9, 0.95, 0.96};
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 1, 3, loss0, metric), 0);
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 1, 1, 3, loss1, metric), 0);
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
    ck_assert_int_eq(ps_report_summary_curve_add(&s, 0, 1, 2, loss, NULL), 0);
    char *text = curves_text(&s, "none");
    ck_assert_ptr_nonnull(strstr(text, ">no test set</text>"));
    ck_assert_ptr_nonnull(strstr(text, ">training loss (mse)</text>"));
    ck_assert_ptr_nonnull(strstr(text, ">test R\u00b2</text>"));
    ck_assert_uint_eq(count(text, "<polyline "), 1);
    free(text);
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

/* ---- sd_notify and numbers ---- */

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

START_TEST(number_format_says_nan_where_printf_says_minus_nan)
{
    char buf[32];
    ck_assert_str_eq(ps_report_number_format(-NAN, 4, buf, sizeof buf), "nan");
    ck_assert_str_eq(ps_report_number_format(NAN, 4, buf, sizeof buf), "nan");
    ck_assert_str_eq(ps_report_number_format(-INFINITY, 4, buf, sizeof buf), "-inf");
    ck_assert_str_eq(ps_report_number_format(0.123456, 4, buf, sizeof buf), "0.1235");
}
END_TEST

START_TEST(job_summary_weighs_the_workers_losses_by_their_samples)
{
    static ps_report_summary job, w0, w1;
    ps_report_job_sum sum;
    ps_report_job_begin(&job, &sum);
    ck_assert_int_eq(ps_report_job_end(&job, &sum, "j", "sync", 2, 1.0), PS_EINVAL);
    ps_report_summary_init(&w0);
    snprintf(w0.metric_name, sizeof w0.metric_name, "accuracy");
    snprintf(w0.loss_name, sizeof w0.loss_name, "log_loss");
    w0.rank = 0;
    w0.final_loss = 1.0;
    w0.train_samples = 100;
    w0.samples_per_s = 1000.0;
    w0.updates = 10;
    w0.has_test = true;
    w0.test_metric = 0.9;
    w0.version = 42;
    w1 = w0;
    w1.rank = 1;
    w1.final_loss = 3.0;
    w1.train_samples = 300;
    w1.samples_per_s = NAN; /* not known: left out of the sum */
    w1.test_metric = 0.5;
    const double loss[2] = {2.0, 1.0}, metric[2] = {0.8, 0.9};
    ck_assert_int_eq(ps_report_summary_curve_add(&w0, 0, 1, 2, loss, metric), 0);
    ck_assert_int_eq(ps_report_summary_curve_add(&w1, 1, 1, 2, loss, metric), 0);
    ck_assert_int_eq(ps_report_job_add(&job, &sum, &w0), 0);
    ck_assert_int_eq(ps_report_job_add(&job, &sum, &w1), 0);
    ck_assert_int_eq(ps_report_job_end(&job, &sum, "digits", "ssp", 2, 7.5), 0);
    ck_assert_double_eq_tol(job.final_loss, 2.5, 1e-12); /* (1 * 100 + 3 * 300) / 400 */
    ck_assert_double_eq(job.samples_per_s, 1000.0);
    ck_assert_uint_eq(job.updates, 20);
    ck_assert_double_eq(job.test_metric, 0.9); /* the lowest rank's */
    ck_assert_uint_eq(job.version, 42);
    ck_assert_str_eq(job.job, "digits");
    ck_assert_str_eq(job.mode, "ssp");
    ck_assert_int_eq(job.rank, -1);
    ck_assert_double_eq(job.wall_s, 7.5);
    ck_assert_uint_eq(job.ncurves, 2);
    ck_assert_uint_eq(job.curves[1].rank, 1);
    ck_assert_ptr_ne(job.curves, w0.curves); /* the job's own copies */
    ps_report_summary_fini(&w0);
    ps_report_summary_fini(&w1);
    ps_report_summary_fini(&job);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, progress_line_reads_back_as_written);
    tcase_add_test(tc, progress_non_finite_loss_is_written_nan_not_minus_nan);
    tcase_add_test(tc, progress_parse_refuses_what_is_not_a_progress_line);
    tcase_add_test(tc, progress_reader_assembles_lines_whatever_the_chunks);
    tcase_add_test(tc, progress_reader_skips_an_overlong_line_whole);
    tcase_add_test(tc, plan_reads_back_as_written);
    tcase_add_test(tc, plan_without_workers_is_refused_naming_the_key);
    tcase_add_test(tc, plan_cut_short_or_not_json_is_refused);
    tcase_add_test(tc, plan_larger_than_the_limit_is_refused_not_cut);
    tcase_add_test(tc, summary_reads_back_as_written);
    tcase_add_test(tc, summary_holds_null_for_numbers_that_are_not_finite);
    tcase_add_test(tc, summary_without_test_set_has_null_figures_and_no_rank_for_psrun);
    tcase_add_test(tc, summary_with_nan_literal_or_missing_key_is_refused);
    tcase_add_test(tc, summary_keeps_each_workers_curve_with_null_for_epochs_not_reached);
    tcase_add_test(tc, summary_without_server_figures_has_null_staleness_and_no_ranks);
    tcase_add_test(tc, summary_curve_add_refuses_a_curve_past_the_limits);
    tcase_add_test(tc, summary_with_a_curve_that_does_not_fit_is_refused);
    tcase_add_test(tc, curves_chart_names_job_model_mode_and_codec_with_a_line_per_worker);
    tcase_add_test(tc, curves_chart_without_test_set_says_so);
    tcase_add_test(tc, notify_datagram_gives_ready_stopping_and_status);
    tcase_add_test(tc, number_format_says_nan_where_printf_says_minus_nan);
    tcase_add_test(tc, job_summary_weighs_the_workers_losses_by_their_samples);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
