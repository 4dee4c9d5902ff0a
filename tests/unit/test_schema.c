/* test_schema.c — the job file's rows: every only-with rule with its text
 * and its predicate, the mode and codec rows reading their names from the
 * registries (mode.h, compress.h), defaults that parse, and a table the
 * walker can hold. */
#include "schema.h"

#include "job.h"

#include <check.h>

#include "check_main.h"
#include <stdio.h>
#include <string.h>

static const ps_yamlwalk_key *row(const char *path)
{
    const ps_yamlwalk_key *k = ps_yamlwalk_find_key(ps_schema_job(), path);
    ck_assert_msg(k != NULL, "no row %s", path);
    return k;
}

/* the text after "only valid with " */
static void when_of(const ps_yamlwalk_key *k, char *buf, size_t cap)
{
    ck_assert_ptr_nonnull(k->only.holds);
    if (k->only.when_text != NULL)
        k->only.when_text(k, buf, cap);
    else
        snprintf(buf, cap, "%s", k->only.when);
}

static void count_rows(const ps_yamlwalk_section *sec, size_t *rows, size_t *rules)
{
    for (size_t i = 0; i < sec->nkeys; i++) {
        (*rows)++;
        *rules += sec->keys[i].only.holds != NULL;
        if (sec->keys[i].kind == PS_YAMLWALK_SECTION)
            count_rows(sec->keys[i].sub, rows, rules);
    }
}

START_TEST(every_only_with_rule_is_in_its_row_with_its_text)
{
    static const struct {
        const char *path, *when;
    } rules[] = {
        {"staleness", "mode ssp"},
        {"backup_workers", "mode sync"},
        {"deterministic", "mode sync"},
        {"model.classes", "model type softmax or mlp"},
        {"model.hidden", "model type mlp"},
        {"model.tensors", "model type custom"},
        {"model.features", "a dense model type (not sparse_logistic or fm)"},
        {"model.factors", "model type fm"},
        {"optimizer.beta", "optimizer type ftrl"},
        {"sparse", "model type sparse_logistic or fm"},
        {"data.train_labels", "format idx"},
        {"data.test_labels", "format idx"},
        {"data.label_column", "format csv"},
        {"data.stream", "format criteo or libsvm64"},
        {"optimizer.momentum", "optimizer type momentum"},
        {"optimizer.nesterov", "optimizer type momentum"},
        {"optimizer.schedule.step_size", "schedule type step"},
        {"optimizer.schedule.gamma", "schedule type step"},
        {"optimizer.schedule.total_steps", "schedule type cosine"},
        {"optimizer.l1", "optimizer type ftrl"},
        {"optimizer.beta1", "optimizer type adam"},
        {"optimizer.beta2", "optimizer type adam"},
        {"optimizer.eps", "optimizer type adam or adagrad"},
        {"compression.topk_ratio", "compression push topk"},
        {"training.local_optimizer", "training.local_steps above 1"},
    };
    char when[256];
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        when_of(row(rules[i].path), when, sizeof when);
        ck_assert_str_eq(when, rules[i].when);
    }
    size_t rows = 0, nrules = 0;
    count_rows(ps_schema_job(), &rows, &nrules);
    ck_assert_uint_eq(nrules, sizeof rules / sizeof rules[0]);
}
END_TEST

START_TEST(mode_keys_word_their_rule_from_the_mode_registry)
{
    static const struct {
        const char *path;
        uint32_t bit;
    } keys[] = {
        {"staleness", PS_MODE_KEY_STALENESS},
        {"backup_workers", PS_MODE_KEY_BACKUP_WORKERS},
        {"deterministic", PS_MODE_KEY_DETERMINISTIC},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char when[256], want[256];
        const ps_yamlwalk_key *k = row(keys[i].path);
        ck_assert_uint_eq(k->only.arg, keys[i].bit);
        when_of(k, when, sizeof when);
        ps_mode_names_taking(keys[i].bit, want, sizeof want);
        ck_assert_str_eq(when, want);
    }
}
END_TEST

START_TEST(staleness_rule_holds_only_in_modes_that_take_it)
{
    static ps_job job;
    const ps_yamlwalk_key *k = row("staleness");
    for (int m = 0; m < PS_MODE_COUNT; m++) {
        job.mode = (ps_mode)m;
        ck_assert_int_eq(k->only.holds(&job, k), ps_mode_takes(job.mode, PS_MODE_KEY_STALENESS));
    }
}
END_TEST

START_TEST(backup_workers_and_deterministic_are_fine_off_in_any_mode)
{
    static ps_job job;
    const ps_yamlwalk_key *backup = row("backup_workers"), *det = row("deterministic");
    job.mode = PS_MODE_ASYNC;
    ck_assert(backup->only.holds(&job, backup));
    ck_assert(det->only.holds(&job, det));
    job.backup_workers = 1;
    job.deterministic = true;
    ck_assert(!backup->only.holds(&job, backup));
    ck_assert(!det->only.holds(&job, det));
    job.mode = PS_MODE_SYNC;
    ck_assert(backup->only.holds(&job, backup));
    ck_assert(det->only.holds(&job, det));
}
END_TEST

START_TEST(row_predicates_read_the_key_they_depend_on)
{
    static ps_job job;
    const ps_yamlwalk_key *classes = row("model.classes"), *eps = row("optimizer.eps");
    const ps_yamlwalk_key *ratio = row("compression.topk_ratio");
    const ps_yamlwalk_key *local = row("training.local_optimizer");
    job.model.type = PS_MODEL_LOGISTIC;
    ck_assert(classes->only.holds(&job, classes));
    job.model.type = PS_MODEL_LINEAR;
    ck_assert(!classes->only.holds(&job, classes));
    job.optimizer.type = PS_OPTIM_ADAGRAD;
    ck_assert(eps->only.holds(&job, eps));
    job.optimizer.type = PS_OPTIM_SGD;
    ck_assert(!eps->only.holds(&job, eps));
    job.compression.push = PS_COMPRESS_TOPK;
    ck_assert(ratio->only.holds(&job, ratio));
    job.compression.push = PS_COMPRESS_INT8;
    ck_assert(!ratio->only.holds(&job, ratio));
    job.training.local_steps = 1;
    ck_assert(!local->only.holds(&job, local));
    job.training.local_steps = 2;
    ck_assert(local->only.holds(&job, local));
}
END_TEST

START_TEST(mode_row_names_every_mode_of_the_registry)
{
    const ps_yamlwalk_key *k = row("mode");
    for (uint32_t m = 0; m < PS_MODE_COUNT; m++)
        ck_assert_str_eq(ps_yamlwalk_enum_name(k, m), ps_mode_get((ps_mode)m)->name);
    ck_assert_ptr_null(ps_yamlwalk_enum_name(k, PS_MODE_COUNT));
}
END_TEST

START_TEST(push_row_names_every_codec_of_the_registry)
{
    const ps_yamlwalk_key *k = row("compression.push");
    for (uint32_t t = 0; t < PS_COMPRESS_COUNT; t++)
        ck_assert_str_eq(ps_yamlwalk_enum_name(k, t),
                         ps_compress_ops_get((ps_compress_type)t)->name);
    ck_assert_ptr_null(ps_yamlwalk_enum_name(k, PS_COMPRESS_COUNT));
}
END_TEST

START_TEST(pull_row_names_only_the_codecs_pulls_may_use)
{
    const ps_yamlwalk_key *k = row("compression.pull");
    for (uint32_t t = 0; t < PS_COMPRESS_COUNT; t++) {
        const ps_compress_ops *o = ps_compress_ops_get((ps_compress_type)t);
        if (o->pull_ok)
            ck_assert_str_eq(ps_yamlwalk_enum_name(k, t), o->name);
        else
            ck_assert_ptr_null(ps_yamlwalk_enum_name(k, t));
    }
    ck_assert_ptr_null(ps_yamlwalk_enum_name(k, PS_COMPRESS_TOPK));
}
END_TEST

START_TEST(defaults_parse_and_fill_the_job)
{
    static ps_job job;
    memset(&job, 0xff, sizeof job);
    ps_yamlwalk_set_defaults(ps_schema_job(), &job);
    ck_assert_int_eq(job.mode, PS_MODE_SYNC);
    ck_assert_int_eq(job.compression.push, PS_COMPRESS_NONE);
    ck_assert_int_eq(job.compression.pull, PS_COMPRESS_NONE);
    ck_assert_double_eq(job.optimizer.lr, 0.1);
    ck_assert_uint_eq(job.training.batch_size, 32);
    ck_assert_int_eq(job.log_level, PS_LOG_INFO);
    ck_assert(job.shared_memory);
    ck_assert(!job.deterministic);
}
END_TEST

START_TEST(rows_fit_the_walkers_seen_set)
{
    size_t rows = 0, rules = 0;
    count_rows(ps_schema_job(), &rows, &rules);
    ck_assert_uint_gt(rows, 60);
    ck_assert_uint_le(rows, PS_YAMLWALK_SEEN_MAX);
}
END_TEST

/* names differ within a section, and a section's path is its row's */
static void check_section(const ps_yamlwalk_section *sec)
{
    for (size_t i = 0; i < sec->nkeys; i++) {
        const ps_yamlwalk_key *k = &sec->keys[i];
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(sec->keys[j].name, k->name);
        if (k->kind != PS_YAMLWALK_SECTION)
            continue;
        char path[PS_YAMLWALK_PATH_MAX];
        snprintf(path, sizeof path, "%s%s%s", sec->path, sec->path[0] ? "." : "", k->name);
        ck_assert_str_eq(k->sub->path, path);
        check_section(k->sub);
    }
}

START_TEST(sections_have_distinct_names_and_their_rows_paths)
{
    check_section(ps_schema_job());
}
END_TEST

START_TEST(model_type_names_come_from_the_row)
{
    const ps_yamlwalk_key *k = row("model.type");
    ck_assert_str_eq(ps_model_type_name(PS_MODEL_MLP), ps_yamlwalk_enum_name(k, PS_MODEL_MLP));
    ck_assert_str_eq(ps_model_type_name(PS_MODEL_CUSTOM), "custom");
    ck_assert_str_eq(ps_model_type_name(PS_MODEL_FM), "fm");
    ck_assert_str_eq(ps_model_type_name((ps_model_type)(PS_MODEL_FM + 1)), "?");
}
END_TEST

static Suite *schema_suite(void)
{
    Suite *s = suite_create("schema");
    TCase *rules = tcase_create("rules");
    tcase_add_test(rules, every_only_with_rule_is_in_its_row_with_its_text);
    tcase_add_test(rules, mode_keys_word_their_rule_from_the_mode_registry);
    tcase_add_test(rules, staleness_rule_holds_only_in_modes_that_take_it);
    tcase_add_test(rules, backup_workers_and_deterministic_are_fine_off_in_any_mode);
    tcase_add_test(rules, row_predicates_read_the_key_they_depend_on);
    suite_add_tcase(s, rules);

    TCase *reg = tcase_create("registries");
    tcase_add_test(reg, mode_row_names_every_mode_of_the_registry);
    tcase_add_test(reg, push_row_names_every_codec_of_the_registry);
    tcase_add_test(reg, pull_row_names_only_the_codecs_pulls_may_use);
    suite_add_tcase(s, reg);

    TCase *table = tcase_create("table");
    tcase_add_test(table, defaults_parse_and_fill_the_job);
    tcase_add_test(table, rows_fit_the_walkers_seen_set);
    tcase_add_test(table, sections_have_distinct_names_and_their_rows_paths);
    tcase_add_test(table, model_type_names_come_from_the_row);
    suite_add_tcase(s, table);
    return s;
}

int main(void)
{
    return ps_check_run(schema_suite());
}
