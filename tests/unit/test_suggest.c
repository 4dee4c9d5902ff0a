/* test_suggest.c — did-you-mean: the edit distance, aliases, and the hint
 * after an unknown key on a toy schema (nearest key here, the other section
 * that holds the word, the sections that do, or the list of valid keys). */
#include "suggest.h"

#include <check.h>

#include "check_main.h"
#include <string.h>

#define ROWS(t) (t), sizeof(t) / sizeof((t)[0])

static const ps_yamlwalk_key opt_keys[] = {
    {"type", PS_YAMLWALK_ENUM, .aka = NULL},
    {"lr", PS_YAMLWALK_FLOAT, .aka = "learning_rate|eta"},
};
static const ps_yamlwalk_section opt_sec = {"opt", ROWS(opt_keys)};

static const ps_yamlwalk_key sched_keys[] = {
    {"type", PS_YAMLWALK_ENUM, .aka = NULL},
    {"gamma", PS_YAMLWALK_FLOAT, .aka = "decay"},
};
static const ps_yamlwalk_section sched_sec = {"opt2.schedule", ROWS(sched_keys)};

static const ps_yamlwalk_key opt2_keys[] = {
    {"momentum", PS_YAMLWALK_FLOAT, .aka = NULL},
    {"schedule", PS_YAMLWALK_SECTION, .sub = &sched_sec},
};
static const ps_yamlwalk_section opt2_sec = {"opt2", ROWS(opt2_keys)};

static const ps_yamlwalk_key train_keys[] = {
    {"epochs", PS_YAMLWALK_INT, .aka = "num_epochs"},
    {"rate", PS_YAMLWALK_FLOAT, .aka = "eta"},
};
static const ps_yamlwalk_section train_sec = {"train", ROWS(train_keys)};

static const ps_yamlwalk_key log_keys[] = {
    {"level", PS_YAMLWALK_ENUM, .aka = NULL},
};
static const ps_yamlwalk_section log_sec = {"log", ROWS(log_keys)};

static const ps_yamlwalk_key top_keys[] = {
    {"name", PS_YAMLWALK_STRING, .aka = "job_name"},
    {"mode", PS_YAMLWALK_ENUM, .aka = "consistency"},
    {"opt", PS_YAMLWALK_SECTION, .sub = &opt_sec},
    {"opt2", PS_YAMLWALK_SECTION, .sub = &opt2_sec},
    {"train", PS_YAMLWALK_SECTION, .sub = &train_sec},
    {"log", PS_YAMLWALK_SECTION, .sub = &log_sec},
};
static const ps_yamlwalk_section top_sec = {"", ROWS(top_keys)};

/* a table of its own, outside top_sec (as a list item's mapping is) */
static const ps_yamlwalk_key item_keys[] = {
    {"name", PS_YAMLWALK_STRING, .aka = NULL},
    {"shape", PS_YAMLWALK_LIST, .aka = NULL},
};
static const ps_yamlwalk_section item_sec = {"items", ROWS(item_keys)};

static void expect_hint(const char *word, const ps_yamlwalk_section *here,
                        const ps_yamlwalk_section *root, const char *hint)
{
    char buf[400];
    ps_suggest_hint(word, here, root, buf, sizeof buf);
    ck_assert_str_eq(buf, hint);
}

START_TEST(distance_counts_insert_delete_and_substitute)
{
    ck_assert_uint_eq(ps_suggest_distance("", "abc"), 3);
    ck_assert_uint_eq(ps_suggest_distance("lerning_rate", "learning_rate"), 1);
    ck_assert_uint_eq(ps_suggest_distance("mode", "mod"), 1);
    ck_assert_uint_eq(ps_suggest_distance("mode", "node"), 1);
    ck_assert_uint_eq(ps_suggest_distance("workers", "servers"), 3);
}
END_TEST

START_TEST(distance_counts_a_swap_of_neighbours_as_one)
{
    ck_assert_uint_eq(ps_suggest_distance("moed", "mode"), 1);
    ck_assert_uint_eq(ps_suggest_distance("rl", "lr"), 1);
}
END_TEST

START_TEST(distance_ignores_case)
{
    ck_assert_uint_eq(ps_suggest_distance("Batch_Size", "batch_size"), 0);
}
END_TEST

START_TEST(distance_counts_only_the_first_63_bytes)
{
    char a[80], b[80];
    memset(a, 'x', 70);
    memset(b, 'x', 70);
    a[70] = b[70] = '\0';
    a[65] = 'y';
    ck_assert_uint_eq(ps_suggest_distance(a, b), 0);
    a[62] = 'y';
    ck_assert_uint_eq(ps_suggest_distance(a, b), 1);
}
END_TEST

START_TEST(name_distance_takes_the_nearest_alias)
{
    ck_assert_uint_eq(ps_suggest_name_distance("learning_rate", "lr", "learning_rate|eta"), 0);
    ck_assert_uint_eq(ps_suggest_name_distance("etta", "lr", "learning_rate|eta"), 1);
    ck_assert_uint_eq(ps_suggest_name_distance("lx", "lr", NULL), 1);
    ck_assert_uint_eq(ps_suggest_name_distance("lx", "lr", ""), 1);
}
END_TEST

START_TEST(name_distance_skips_an_alias_of_64_bytes_or_more)
{
    char word[65];
    memset(word, 'a', 64);
    word[64] = '\0';
    ck_assert_uint_eq(ps_suggest_name_distance(word, "aaa", word), 60);
}
END_TEST

START_TEST(hint_names_the_nearest_key_of_its_section)
{
    expect_hint("nmae", &top_sec, &top_sec, "did you mean \"name\"?");
    expect_hint("moed", &top_sec, &top_sec, "did you mean \"mode\"?");
}
END_TEST

START_TEST(hint_takes_an_alias_of_a_key_here_first)
{
    expect_hint("learning_rate", &opt_sec, &top_sec, "did you mean \"lr\"?");
    expect_hint("consistency", &top_sec, &top_sec, "did you mean \"mode\"?");
}
END_TEST

START_TEST(hint_points_a_key_to_its_one_other_section)
{
    expect_hint("epochs", &top_sec, &top_sec, "did you mean \"train.epochs\"?");
    expect_hint("EPOCHS", &opt_sec, &top_sec, "did you mean \"train.epochs\"?");
    expect_hint("gamma", &opt2_sec, &top_sec, "did you mean \"opt2.schedule.gamma\"?");
}
END_TEST

START_TEST(hint_points_an_alias_held_by_one_other_key)
{
    expect_hint("num_epochs", &top_sec, &top_sec, "did you mean \"train.epochs\"?");
    expect_hint("decay", &log_sec, &top_sec, "did you mean \"opt2.schedule.gamma\"?");
}
END_TEST

START_TEST(hint_names_every_section_of_a_name_in_several)
{
    expect_hint("type", &top_sec, &top_sec, "\"type\" belongs in a section: opt, opt2.schedule");
    expect_hint("TyPe", &log_sec, &top_sec, "\"TyPe\" belongs in a section: opt, opt2.schedule");
}
END_TEST

START_TEST(alias_held_by_two_keys_points_nowhere)
{
    /* "eta" is lr's and rate's: no one key to name, and nothing here is near */
    expect_hint("eta", &top_sec, &top_sec, "valid keys: name, mode, opt, opt2, train, log");
}
END_TEST

START_TEST(hint_lists_the_valid_keys_when_nothing_is_near)
{
    expect_hint("colour", &log_sec, &top_sec, "valid keys: level");
    expect_hint("xyzzyx", &top_sec, &top_sec, "valid keys: name, mode, opt, opt2, train, log");
}
END_TEST

START_TEST(hint_outside_the_schema_looks_only_here)
{
    expect_hint("epochs", &item_sec, &top_sec, "valid keys: name, shape");
    expect_hint("epochs", &top_sec, NULL, "valid keys: name, mode, opt, opt2, train, log");
    expect_hint("shap", &item_sec, &top_sec, "did you mean \"shape\"?");
}
END_TEST

static Suite *suggest_suite(void)
{
    Suite *s = suite_create("suggest");
    TCase *dist = tcase_create("distance");
    tcase_add_test(dist, distance_counts_insert_delete_and_substitute);
    tcase_add_test(dist, distance_counts_a_swap_of_neighbours_as_one);
    tcase_add_test(dist, distance_ignores_case);
    tcase_add_test(dist, distance_counts_only_the_first_63_bytes);
    tcase_add_test(dist, name_distance_takes_the_nearest_alias);
    tcase_add_test(dist, name_distance_skips_an_alias_of_64_bytes_or_more);
    suite_add_tcase(s, dist);

    TCase *hint = tcase_create("hint");
    tcase_add_test(hint, hint_names_the_nearest_key_of_its_section);
    tcase_add_test(hint, hint_takes_an_alias_of_a_key_here_first);
    tcase_add_test(hint, hint_points_a_key_to_its_one_other_section);
    tcase_add_test(hint, hint_points_an_alias_held_by_one_other_key);
    tcase_add_test(hint, hint_names_every_section_of_a_name_in_several);
    tcase_add_test(hint, alias_held_by_two_keys_points_nowhere);
    tcase_add_test(hint, hint_lists_the_valid_keys_when_nothing_is_near);
    tcase_add_test(hint, hint_outside_the_schema_looks_only_here);
    suite_add_tcase(s, hint);
    return s;
}

int main(void)
{
    return ps_check_run(suggest_suite());
}
