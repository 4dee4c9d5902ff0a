/* test_args.c — the command-line convention of args.h: options and
 * operands read in order, --help and --version answered, every usage error
 * one exact line with the hint and exit status 2, numbers read strictly
 * with their range in the message. */
#include <check.h>

#include "check_main.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

enum { OPT_CURVES = PS_ARGS_LONG_ONLY };

static const ps_args_option opts[] = {
    {"config", 'c', true},        {"count", 'n', true},     {"rank", 'r', true},
    {"curves", OPT_CURVES, true}, {"describe", 'd', false},
};

static void usage(FILE *out)
{
    fputs("usage: prog --config FILE\n", out);
}

/* One parse with stdout and stderr caught in memory. */
typedef struct parse {
    ps_args p;
    char *argv[16];
    char *out_text, *err_text;
    size_t out_len, err_len;
} parse;

/* Starts a parse of "prog" and the NULL-terminated words. */
static void parse_start(parse *t, ...)
{
    va_list ap;
    va_start(ap, t);
    int argc = 0;
    t->argv[argc++] = "prog";
    for (char *w; (w = va_arg(ap, char *)) != NULL;)
        t->argv[argc++] = w;
    va_end(ap);
    t->argv[argc] = NULL;
    ps_args_init(&t->p, "prog", usage, opts, PS_ARGS_COUNT(opts), argc, t->argv);
    t->p.out = open_memstream(&t->out_text, &t->out_len);
    t->p.err = open_memstream(&t->err_text, &t->err_len);
    ck_assert_ptr_nonnull(t->p.out);
    ck_assert_ptr_nonnull(t->p.err);
}

/* Closes the streams: out_text and err_text hold what was said. */
static void parse_end(parse *t)
{
    fclose(t->p.out);
    fclose(t->p.err);
}

static void parse_free(parse *t)
{
    free(t->out_text);
    free(t->err_text);
}

/* Runs ps_args_next to its end; the last answer. */
static int next_until_stop(parse *t)
{
    int c;
    while ((c = ps_args_next(&t->p)) > 0)
        ;
    return c;
}

/* The one line a parse of these words says on stderr, and its status 2. */
#define assert_usage_error(line, ...)                                                              \
    do {                                                                                           \
        parse t;                                                                                   \
        parse_start(&t, __VA_ARGS__, (char *)NULL);                                                \
        ck_assert_int_eq(next_until_stop(&t), PS_ARGS_EXIT);                                       \
        ck_assert_int_eq(t.p.status, PS_EXIT_USAGE);                                               \
        parse_end(&t);                                                                             \
        ck_assert_str_eq(t.err_text, line);                                                        \
        ck_assert_str_eq(t.out_text, "");                                                          \
        parse_free(&t);                                                                            \
    } while (0)

START_TEST(options_values_and_operands_are_read_in_order)
{
    parse t;
    parse_start(&t, "--config", "a.yaml", "one", "-n", "3", "--curves=c.svg", "-d", "two",
                (char *)NULL);
    ck_assert_int_eq(ps_args_next(&t.p), 'c');
    ck_assert_str_eq(t.p.value, "a.yaml");
    ck_assert_str_eq(t.p.name, "--config");
    ck_assert_int_eq(ps_args_next(&t.p), 'n');
    ck_assert_str_eq(t.p.value, "3");
    ck_assert_str_eq(t.p.name, "--count"); /* the long form, also for -n */
    ck_assert_int_eq(ps_args_next(&t.p), OPT_CURVES);
    ck_assert_str_eq(t.p.value, "c.svg");
    ck_assert_int_eq(ps_args_next(&t.p), 'd');
    ck_assert_ptr_null(t.p.value);
    ck_assert_int_eq(ps_args_next(&t.p), PS_ARGS_END);
    ck_assert_int_eq(t.p.noperands, 2);
    ck_assert_str_eq(t.p.operands[0], "one");
    ck_assert_str_eq(t.p.operands[1], "two");
    parse_end(&t);
    ck_assert_str_eq(t.err_text, "");
    parse_free(&t);
}
END_TEST

START_TEST(double_dash_ends_the_options)
{
    parse t;
    parse_start(&t, "-d", "--", "--config", (char *)NULL);
    ck_assert_int_eq(ps_args_next(&t.p), 'd');
    ck_assert_int_eq(ps_args_next(&t.p), PS_ARGS_END);
    ck_assert_int_eq(t.p.noperands, 1);
    ck_assert_str_eq(t.p.operands[0], "--config");
    parse_end(&t);
    parse_free(&t);
}
END_TEST

START_TEST(a_second_parse_starts_afresh)
{
    for (int i = 0; i < 2; i++) {
        parse t;
        parse_start(&t, "-r", "5", "x", (char *)NULL);
        ck_assert_int_eq(ps_args_next(&t.p), 'r');
        ck_assert_str_eq(t.p.value, "5");
        ck_assert_int_eq(ps_args_next(&t.p), PS_ARGS_END);
        ck_assert_int_eq(t.p.noperands, 1);
        parse_end(&t);
        parse_free(&t);
    }
}
END_TEST

START_TEST(help_writes_the_usage_to_stdout_and_exits_0)
{
    const char *forms[] = {"--help", "-h", "--he"};
    for (size_t i = 0; i < 3; i++) {
        parse t;
        parse_start(&t, "--config", "a.yaml", forms[i], "--bogus", (char *)NULL);
        ck_assert_int_eq(ps_args_next(&t.p), 'c');
        ck_assert_int_eq(ps_args_next(&t.p), PS_ARGS_EXIT);
        ck_assert_int_eq(t.p.status, PS_EXIT_OK);
        parse_end(&t);
        ck_assert_str_eq(t.out_text, "usage: prog --config FILE\n");
        ck_assert_str_eq(t.err_text, "");
        parse_free(&t);
    }
}
END_TEST

START_TEST(version_writes_prog_and_version_and_exits_0)
{
    const char *forms[] = {"--version", "-V"};
    for (size_t i = 0; i < 2; i++) {
        parse t;
        parse_start(&t, forms[i], (char *)NULL);
        ck_assert_int_eq(ps_args_next(&t.p), PS_ARGS_EXIT);
        ck_assert_int_eq(t.p.status, PS_EXIT_OK);
        parse_end(&t);
        ck_assert_str_eq(t.out_text, "prog " PS_VERSION_STRING "\n");
        ck_assert_str_eq(t.err_text, "");
        parse_free(&t);
    }
}
END_TEST

START_TEST(an_unknown_option_is_one_line_with_the_hint)
{
    assert_usage_error("prog: unknown option \"--bogus\" (try 'prog --help')\n", "--bogus");
    assert_usage_error("prog: unknown option \"--bogus\" (try 'prog --help')\n", "--bogus=1");
    assert_usage_error("prog: unknown option \"-q\" (try 'prog --help')\n", "-q");
    assert_usage_error("prog: unknown option \"-q\" (try 'prog --help')\n", "-dq");
}
END_TEST

START_TEST(a_long_option_without_a_short_letter_has_none)
{
    /* OPT_CURVES is 256: no -<something> reaches it */
    assert_usage_error("prog: unknown option \"-C\" (try 'prog --help')\n", "-C", "x");
}
END_TEST

START_TEST(a_missing_value_names_the_option)
{
    assert_usage_error("prog: --config needs a value (try 'prog --help')\n", "--config");
    assert_usage_error("prog: --config needs a value (try 'prog --help')\n", "-c");
    assert_usage_error("prog: --curves needs a value (try 'prog --help')\n", "--curves");
}
END_TEST

START_TEST(a_flag_given_a_value_is_refused)
{
    assert_usage_error("prog: --describe takes no value (try 'prog --help')\n", "--describe=yes");
    assert_usage_error("prog: --version takes no value (try 'prog --help')\n", "--version=2");
}
END_TEST

START_TEST(an_ambiguous_prefix_names_its_options)
{
    assert_usage_error("prog: option \"--c\" is ambiguous: --config, --count, --curves "
                       "(try 'prog --help')\n",
                       "--c", "x");
    assert_usage_error("prog: option \"--co\" is ambiguous: --config, --count "
                       "(try 'prog --help')\n",
                       "--co=x");
}
END_TEST

START_TEST(an_unambiguous_prefix_is_the_option)
{
    parse t;
    parse_start(&t, "--conf", "a.yaml", "--cu=b", (char *)NULL);
    ck_assert_int_eq(ps_args_next(&t.p), 'c');
    ck_assert_str_eq(t.p.value, "a.yaml");
    ck_assert_int_eq(ps_args_next(&t.p), OPT_CURVES);
    ck_assert_str_eq(t.p.value, "b");
    ck_assert_int_eq(ps_args_next(&t.p), PS_ARGS_END);
    parse_end(&t);
    parse_free(&t);
}
END_TEST

START_TEST(numbers_are_whole_decimals_in_range)
{
    static const struct {
        const char *text;
        long lo, hi, want;
        const char *msg; /* NULL: accepted */
    } cases[] = {
        {"0", 0, 1023, 0, NULL},
        {"1023", 0, 1023, 1023, NULL},
        {"007", 0, 1023, 7, NULL},
        {"-5", -10, 10, -5, NULL},
        {"1024", 0, 1023, 0, "must be a number from 0 to 1023, got 1024"},
        {"-1", 0, 1023, 0, "must be a number from 0 to 1023, got -1, which is negative"},
        {"-2000", 0, 1023, 0, "must be a number from 0 to 1023, got -2000, which is negative"},
        {"-1x", 0, 1023, 0, "must be a number from 0 to 1023, got -1x"},
        {"-11", -10, 10, 0, "must be a number from -10 to 10, got -11"},
        {"-0", 0, 1023, 0, "must be a number from 0 to 1023, got -0"},
        {"+1", 0, 1023, 0, "must be a number from 0 to 1023, got +1"},
        {" 1", 0, 1023, 0, "must be a number from 0 to 1023, got  1"},
        {"1 ", 0, 1023, 0, "must be a number from 0 to 1023, got 1 "},
        {"12abc", 0, 1023, 0, "must be a number from 0 to 1023, got 12abc"},
        {"0x10", 0, 1023, 0, "must be a number from 0 to 1023, got 0x10"},
        {"1e3", 0, 1023, 0, "must be a number from 0 to 1023, got 1e3"},
        {"", 0, 1023, 0, "must be a number from 0 to 1023, got \"\""},
        {"-", -10, 10, 0, "must be a number from -10 to 10, got -"},
        {"99999999999999999999", 0, 1023, 0,
         "must be a number from 0 to 1023, got 99999999999999999999"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ps_error err;
        ps_error_clear(&err);
        long v = 42;
        int rc = ps_args_number_parse(cases[i].text, cases[i].lo, cases[i].hi, &v, &err);
        if (cases[i].msg == NULL) {
            ck_assert_msg(rc == 0, "\"%s\": %s", cases[i].text, err.msg);
            ck_assert_int_eq(v, cases[i].want);
        } else {
            ck_assert_int_eq(rc, PS_EINVAL);
            ck_assert_str_eq(err.msg, cases[i].msg);
            ck_assert_int_eq(v, 42); /* untouched */
        }
    }
}
END_TEST

START_TEST(a_bad_number_names_the_option_and_its_range)
{
    parse t;
    parse_start(&t, "-r", "-1", (char *)NULL);
    ck_assert_int_eq(ps_args_next(&t.p), 'r');
    long v = 0;
    ck_assert_int_eq(ps_args_number(&t.p, 0, 1023, &v), PS_EXIT_USAGE);
    parse_end(&t);
    ck_assert_str_eq(
        t.err_text, "prog: --rank: must be a number from 0 to 1023, got -1, which is negative (try "
                    "'prog --help')\n");
    parse_free(&t);
}
END_TEST

START_TEST(a_good_number_says_nothing)
{
    parse t;
    parse_start(&t, "--rank=17", (char *)NULL);
    ck_assert_int_eq(ps_args_next(&t.p), 'r');
    long v = 0;
    ck_assert_int_eq(ps_args_number(&t.p, 0, 1023, &v), 0);
    ck_assert_int_eq(v, 17);
    parse_end(&t);
    ck_assert_str_eq(t.err_text, "");
    parse_free(&t);
}
END_TEST

START_TEST(an_error_of_the_program_is_the_same_line)
{
    parse t;
    parse_start(&t, (char *)NULL);
    ck_assert_int_eq(ps_args_next(&t.p), PS_ARGS_END);
    ck_assert_int_eq(t.p.noperands, 0);
    ck_assert_int_eq(ps_args_error(&t.p, "--%s is required", "config"), PS_EXIT_USAGE);
    parse_end(&t);
    ck_assert_str_eq(t.err_text, "prog: --config is required (try 'prog --help')\n");
    parse_free(&t);
}
END_TEST

START_TEST(end_config_wants_the_config_and_no_operand)
{
    parse t;
    parse_start(&t, "-c", "job.yaml", (char *)NULL);
    int c = next_until_stop(&t);
    ck_assert_int_eq(ps_args_end_config(&t.p, c, "job.yaml"), PS_ARGS_GO_ON);
    parse_end(&t);
    ck_assert_str_eq(t.err_text, "");
    parse_free(&t);
    parse_start(&t, (char *)NULL);
    c = next_until_stop(&t);
    ck_assert_int_eq(ps_args_end_config(&t.p, c, NULL), PS_EXIT_USAGE);
    parse_end(&t);
    ck_assert_str_eq(t.err_text, "prog: --config is required (try 'prog --help')\n");
    parse_free(&t);
    parse_start(&t, "-c", "job.yaml", "extra", (char *)NULL);
    c = next_until_stop(&t);
    ck_assert_int_eq(ps_args_end_config(&t.p, c, "job.yaml"), PS_EXIT_USAGE);
    parse_end(&t);
    ck_assert_str_eq(t.err_text, "prog: unexpected argument \"extra\" (try 'prog --help')\n");
    parse_free(&t);
    parse_start(&t, "--help", (char *)NULL);
    c = next_until_stop(&t);
    ck_assert_int_eq(ps_args_end_config(&t.p, c, NULL), 0);
    parse_end(&t);
    parse_free(&t);
}
END_TEST

static Suite *args_suite(void)
{
    Suite *s = suite_create("args");
    TCase *tc = tcase_create("args");
    tcase_add_test(tc, options_values_and_operands_are_read_in_order);
    tcase_add_test(tc, double_dash_ends_the_options);
    tcase_add_test(tc, a_second_parse_starts_afresh);
    tcase_add_test(tc, help_writes_the_usage_to_stdout_and_exits_0);
    tcase_add_test(tc, version_writes_prog_and_version_and_exits_0);
    tcase_add_test(tc, an_unknown_option_is_one_line_with_the_hint);
    tcase_add_test(tc, a_long_option_without_a_short_letter_has_none);
    tcase_add_test(tc, a_missing_value_names_the_option);
    tcase_add_test(tc, a_flag_given_a_value_is_refused);
    tcase_add_test(tc, an_ambiguous_prefix_names_its_options);
    tcase_add_test(tc, an_unambiguous_prefix_is_the_option);
    tcase_add_test(tc, numbers_are_whole_decimals_in_range);
    tcase_add_test(tc, a_bad_number_names_the_option_and_its_range);
    tcase_add_test(tc, a_good_number_says_nothing);
    tcase_add_test(tc, an_error_of_the_program_is_the_same_line);
    tcase_add_test(tc, end_config_wants_the_config_and_no_operand);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(args_suite());
}
