/* test_report_plan.c — the --describe plan psworker writes and psrun
 * reads: written and read back, and refused, naming what is wrong, when a
 * key is missing, the JSON is cut short or it is larger than the limit. */
#include <check.h>

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report_plan.h"

/* A temporary file holding text; its path in path (caller unlinks). */
static void file_with(char *path, size_t cap, const char *text, size_t len)
{
    snprintf(path, cap, "/tmp/test_report_plan.XXXXXX");
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
    p.ncommand = 2;
    snprintf(p.command[0], sizeof p.command[0], "/usr/bin/python3");
    snprintf(p.command[1], sizeof p.command[1], "train.py");
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

/* a plan of an older psworker, without "worker_command": psworker trains */
START_TEST(plan_without_worker_command_means_psworker)
{
    ps_report_plan q;
    ps_error err = {0};
    ck_assert_int_eq(plan_from("{\"job\": \"j\", \"mode\": \"sync\", \"workers\": 1, "
                               "\"servers\": [\"tcp://h:1\"], \"on_worker_loss\": \"continue\", "
                               "\"on_divergence\": \"stop\", \"model\": \"logistic\", "
                               "\"features\": 3, \"params\": 4, \"epochs\": 1, "
                               "\"batch_size\": 1, \"output\": \"\", \"compression\": \"none\"}",
                               &q, &err),
                     0);
    ck_assert_uint_eq(q.ncommand, 0);
    ck_assert_int_eq(plan_from("{\"job\": \"j\", \"mode\": \"sync\", \"workers\": 1, "
                               "\"servers\": [\"tcp://h:1\"], \"on_worker_loss\": \"continue\", "
                               "\"on_divergence\": \"stop\", \"model\": \"logistic\", "
                               "\"features\": 3, \"params\": 4, \"epochs\": 1, "
                               "\"batch_size\": 1, \"output\": \"\", \"compression\": \"none\", "
                               "\"worker_command\": [\"a\", 3]}",
                               &q, &err),
                     PS_EDATA);
    ck_assert_str_eq(err.msg, "plan: worker_command item 1 is not a string of 1 to 1023 bytes");
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

int main(void)
{
    Suite *s = suite_create("report_plan");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, plan_reads_back_as_written);
    tcase_add_test(tc, plan_without_workers_is_refused_naming_the_key);
    tcase_add_test(tc, plan_without_worker_command_means_psworker);
    tcase_add_test(tc, plan_cut_short_or_not_json_is_refused);
    tcase_add_test(tc, plan_larger_than_the_limit_is_refused_not_cut);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
