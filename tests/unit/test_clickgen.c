/* test_clickgen.c — the click-log generator: a seed gives identical rows
 * and files, another seed other ones; the rows' shape (positive rate,
 * Zipf vocabularies, one-off values, missing fields) within bounds; the
 * true probabilities in (0, 1) and consistent with the labels; the files
 * read back by the criteo reader; the best achievable AUC in its band; and
 * the writer's refusals. */
#include <check.h>

#include <dirent.h>

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auc.h"
#include "clickgen.h"
#include "sparse_data.h"

#define ROWS 20000

static ps_clickgen *gen(uint64_t seed)
{
    ps_clickgen *g = NULL;
    ps_error err;
    ck_assert_int_eq(ps_clickgen_new(seed, &g, &err), 0);
    return g;
}

/* A fresh folder for a test's files; its path in dir (64 bytes). */
static void temp_dir(char *dir)
{
    strcpy(dir, "/tmp/test_clickgen.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void remove_files(const char *prefix)
{
    const char *suffixes[] = {".train.tsv", ".test.tsv", ".test.prob"};
    char path[600];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s%s", prefix, suffixes[i]);
        unlink(path);
    }
}

START_TEST(one_seed_gives_identical_rows_and_files)
{
    ps_clickgen *a = gen(7), *b = gen(7);
    char la[PS_CLICKGEN_LINE_MAX], lb[PS_CLICKGEN_LINE_MAX];
    ps_click_row ra, rb;
    for (uint64_t i = 0; i < 2000; i++) {
        ps_clickgen_row(a, PS_CLICKGEN_TRAIN, i, &ra);
        ps_clickgen_row(b, PS_CLICKGEN_TRAIN, i, &rb);
        ck_assert_uint_eq(ps_clickgen_row_format(&ra, la, sizeof la),
                          ps_clickgen_row_format(&rb, lb, sizeof lb));
        ck_assert_str_eq(la, lb);
        ck_assert_double_eq(ra.prob, rb.prob);
    }
    /* two writes of the same arguments: byte-identical files */
    char dir[64], p1[128], p2[128];
    temp_dir(dir);
    snprintf(p1, sizeof p1, "%s/one/clicks", dir); /* a missing folder is made */
    snprintf(p2, sizeof p2, "%s/two", dir);
    ps_clickgen_summary s1, s2;
    ps_error err;
    ck_assert_int_eq(ps_clickgen_write(a, p1, 3000, 500, &s1, &err), 0);
    ck_assert_int_eq(ps_clickgen_write(b, p2, 3000, 500, &s2, &err), 0);
    const char *suffixes[] = {".train.tsv", ".test.tsv", ".test.prob"};
    for (int i = 0; i < 3; i++) {
        char f1[160], f2[160];
        snprintf(f1, sizeof f1, "%s%s", p1, suffixes[i]);
        snprintf(f2, sizeof f2, "%s%s", p2, suffixes[i]);
        size_t n1, n2;
        char *t1 = slurp(f1, &n1), *t2 = slurp(f2, &n2);
        ck_assert_uint_gt(n1, 0);
        ck_assert_uint_eq(n1, n2);
        ck_assert_int_eq(memcmp(t1, t2, n1), 0);
        free(t1);
        free(t2);
    }
    ck_assert_double_eq(s1.auc, s2.auc);
    ck_assert_double_eq(s1.logloss, s2.logloss);
    ck_assert_uint_eq(s1.train_positives, s2.train_positives);
    remove_files(p1);
    remove_files(p2);
    snprintf(p1, sizeof p1, "%s/one", dir);
    rmdir(p1);
    rmdir(dir);
    ps_clickgen_destroy(&a);
    ps_clickgen_destroy(&b);
    ck_assert_ptr_null(a);
    ps_clickgen_destroy(&a);
}
END_TEST

START_TEST(other_seeds_and_splits_give_other_rows)
{
    ps_clickgen *a = gen(7), *b = gen(8);
    char la[PS_CLICKGEN_LINE_MAX], lb[PS_CLICKGEN_LINE_MAX], lt[PS_CLICKGEN_LINE_MAX];
    ps_click_row r;
    size_t same_seed = 0, same_split = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        ps_clickgen_row(a, PS_CLICKGEN_TRAIN, i, &r);
        ps_clickgen_row_format(&r, la, sizeof la);
        ps_clickgen_row(b, PS_CLICKGEN_TRAIN, i, &r);
        ps_clickgen_row_format(&r, lb, sizeof lb);
        ps_clickgen_row(a, PS_CLICKGEN_TEST, i, &r);
        ps_clickgen_row_format(&r, lt, sizeof lt);
        same_seed += strcmp(la, lb) == 0;
        same_split += strcmp(la, lt) == 0;
    }
    ck_assert_uint_eq(same_seed, 0);
    ck_assert_uint_eq(same_split, 0);
    /* the hidden model depends on the seed: one row's values, other weights */
    ps_click_row ra, rb;
    ps_clickgen_row(a, PS_CLICKGEN_TRAIN, 0, &ra);
    ps_clickgen_row(b, PS_CLICKGEN_TRAIN, 0, &rb);
    ck_assert_double_ne(ra.prob, rb.prob);
    ps_clickgen_destroy(&a);
    ps_clickgen_destroy(&b);
}
END_TEST

START_TEST(rows_look_like_criteo_click_logs)
{
    ps_clickgen *g = gen(7);
    ps_click_row r;
    size_t positives = 0, int_missing[13] = {0}, cat_missing[26] = {0}, tail[26] = {0};
    size_t negative_i2 = 0;
    /* counts of values of C9 (10 values) and C17 (10 values) by value */
    uint32_t small_vals[2][64];
    size_t small_counts[2][64], small_n[2] = {0, 0};
    const uint32_t small_fields[2] = {8, 16};
    char line[PS_CLICKGEN_LINE_MAX];
    for (uint64_t i = 0; i < ROWS; i++) {
        ps_clickgen_row(g, PS_CLICKGEN_TRAIN, i, &r);
        ck_assert(r.label == 0.0f || r.label == 1.0f);
        positives += r.label == 1.0f;
        for (int k = 0; k < 13; k++)
            int_missing[k] += !r.has_int[k];
        negative_i2 += r.has_int[1] && r.ints[1] < 0;
        for (uint32_t j = 0; j < 26; j++) {
            cat_missing[j] += !r.has_cat[j];
            tail[j] += r.has_cat[j] && (r.cats[j] & 0x80000000u) != 0;
        }
        for (int s = 0; s < 2; s++) {
            uint32_t j = small_fields[s];
            if (!r.has_cat[j])
                continue;
            size_t k = 0;
            while (k < small_n[s] && small_vals[s][k] != r.cats[j])
                k++;
            if (k == small_n[s]) {
                ck_assert_uint_lt(k, 64);
                small_vals[s][k] = r.cats[j];
                small_counts[s][k] = 0;
                small_n[s]++;
            }
            small_counts[s][k]++;
        }
        /* 40 fields: 39 tabs, categories as 8 hex digits */
        size_t n = ps_clickgen_row_format(&r, line, sizeof line), tabs = 0;
        ck_assert_uint_eq(strlen(line), n);
        ck_assert_int_eq(line[n - 1], '\n');
        for (size_t c = 0; c < n; c++)
            tabs += line[c] == '\t';
        ck_assert_uint_eq(tabs, 39);
    }
    double rate = (double)positives / ROWS;
    ck_assert_double_ge(rate, 0.20);
    ck_assert_double_le(rate, 0.30);
    /* missing shares as declared, within 4 standard deviations */
    for (uint32_t k = 0; k < 13; k++) {
        double p = ps_clickgen_int_missing(k), sd = sqrt(p * (1 - p) / ROWS);
        ck_assert_double_le(fabs((double)int_missing[k] / ROWS - p), 4 * sd + 1e-9);
    }
    ck_assert_double_eq_tol(ps_clickgen_cat_missing(21), 0.76, 1e-12);
    size_t vmin = 1u << 30, vmax = 0;
    for (uint32_t j = 0; j < 26; j++) {
        double p = ps_clickgen_cat_missing(j), sd = sqrt(p * (1 - p) / ROWS);
        ck_assert_double_le(fabs((double)cat_missing[j] / ROWS - p), 4 * sd + 1e-9);
        /* one-off values: their declared share of present values */
        double present = (double)(ROWS - cat_missing[j]), t = ps_clickgen_tail_share(j);
        ck_assert_double_le(fabs((double)tail[j] / present - t),
                            4 * sqrt(t * (1 - t) / present) + 1e-9);
        ck_assert_double_le(t, 0.2);
        size_t v = ps_clickgen_vocab(j);
        vmin = v < vmin ? v : vmin;
        vmax = v > vmax ? v : vmax;
    }
    ck_assert_uint_eq(vmin, 10);
    ck_assert_uint_eq(vmax, 1000000);
    ck_assert_double_eq(ps_clickgen_tail_share(8), 0.0);            /* C9: 10 values */
    ck_assert_double_eq_tol(ps_clickgen_tail_share(2), 0.2, 1e-12); /* C3: 1M */
    ck_assert_uint_eq(ps_clickgen_vocab(26), 0);
    /* I2 is sometimes negative (5% of rows) */
    ck_assert_uint_gt(negative_i2, ROWS / 40);
    ck_assert_uint_lt(negative_i2, ROWS / 10);
    /* the 10-value fields: 10 values, the commonest with Zipf's share
     * 1 / sum(r^-1.1, r = 1..10) = 0.3731 */
    for (int s = 0; s < 2; s++) {
        ck_assert_uint_eq(small_n[s], 10);
        size_t top = 0, all = 0;
        for (size_t k = 0; k < small_n[s]; k++) {
            top = small_counts[s][k] > top ? small_counts[s][k] : top;
            all += small_counts[s][k];
        }
        ck_assert_double_eq_tol((double)top / (double)all, 0.3731, 0.015);
    }
    ps_clickgen_destroy(&g);
}
END_TEST

START_TEST(probabilities_are_in_the_open_interval_and_match_the_labels)
{
    ps_clickgen *g = gen(11);
    ps_click_row r;
    double sum_p = 0.0, sum_y = 0.0, var = 0.0;
    double low_n = 0, low_y = 0, high_n = 0, high_y = 0;
    for (uint64_t i = 0; i < ROWS; i++) {
        ps_clickgen_row(g, PS_CLICKGEN_TEST, i, &r);
        ck_assert_double_gt(r.prob, 0.0);
        ck_assert_double_lt(r.prob, 1.0);
        sum_p += r.prob;
        sum_y += r.label;
        var += r.prob * (1 - r.prob);
        if (r.prob < 0.1) {
            low_n++;
            low_y += r.label;
        } else if (r.prob > 0.6) {
            high_n++;
            high_y += r.label;
        }
    }
    /* the labels are Bernoulli(prob): their sum is within 4 sd of sum(prob) */
    ck_assert_double_le(fabs(sum_y - sum_p), 4 * sqrt(var));
    ck_assert_double_gt(low_n, 1000);
    ck_assert_double_gt(high_n, 500);
    ck_assert_double_lt(low_y / low_n, 0.1);
    ck_assert_double_gt(high_y / high_n, 0.6);
    ps_clickgen_destroy(&g);
}
END_TEST

/* Reads a file of one number a line. */
static double *read_numbers(const char *path, size_t n)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    double *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(fscanf(f, "%lf", &v[i]), 1);
    double extra;
    ck_assert_int_eq(fscanf(f, "%lf", &extra), EOF);
    fclose(f);
    return v;
}

START_TEST(written_files_read_back_with_the_reported_auc)
{
    ps_clickgen *g = gen(7);
    char dir[64], prefix[128], path[160];
    temp_dir(dir);
    snprintf(prefix, sizeof prefix, "%s/c", dir);
    ps_clickgen_summary sum;
    ps_error err;
    ck_assert_int_eq(ps_clickgen_write(g, prefix, 4000, ROWS, &sum, &err), 0);
    ck_assert_uint_eq(sum.train_rows, 4000);
    ck_assert_uint_eq(sum.test_rows, ROWS);
    ck_assert_double_ge(sum.auc, 0.75);
    ck_assert_double_le(sum.auc, 0.85);
    ck_assert_double_gt(sum.logloss, 0.3);
    ck_assert_double_lt(sum.logloss, 0.55);
    /* the criteo reader takes both files; labels are the generator's */
    ps_sparse_data *d = NULL;
    snprintf(path, sizeof path, "%s.train.tsv", prefix);
    ck_assert_int_eq(ps_sparse_read(path, PS_FORMAT_CRITEO, NULL, &d, &err), 0);
    const ps_sparse_batch *b = ps_sparse_rows(d);
    ck_assert_uint_eq(b->rows, 4000);
    size_t positives = 0;
    for (size_t i = 0; i < b->rows; i++) {
        ps_click_row r;
        ps_clickgen_row(g, PS_CLICKGEN_TRAIN, i, &r);
        ck_assert_float_eq(b->labels[i], r.label);
        size_t present = 0;
        for (int k = 0; k < 13; k++)
            present += r.has_int[k];
        for (int k = 0; k < 26; k++)
            present += r.has_cat[k];
        ck_assert_uint_eq(b->offsets[i + 1] - b->offsets[i], present);
        positives += b->labels[i] == 1.0f;
    }
    ck_assert_uint_eq(positives, sum.train_positives);
    ps_sparse_destroy(&d);
    snprintf(path, sizeof path, "%s.test.tsv", prefix);
    ck_assert_int_eq(ps_sparse_read(path, PS_FORMAT_CRITEO, NULL, &d, &err), 0);
    b = ps_sparse_rows(d);
    ck_assert_uint_eq(b->rows, ROWS);
    /* the AUC and log-loss again from the side file and the test labels */
    snprintf(path, sizeof path, "%s.test.prob", prefix);
    double *p = read_numbers(path, ROWS);
    float *scores = malloc(ROWS * sizeof *scores);
    double loss = 0.0;
    for (size_t i = 0; i < ROWS; i++) {
        ck_assert_double_gt(p[i], 0.0);
        ck_assert_double_lt(p[i], 1.0);
        scores[i] = (float)p[i];
        loss -= log(b->labels[i] == 1.0f ? p[i] : 1.0 - p[i]);
    }
    double auc;
    ck_assert_int_eq(ps_auc(scores, b->labels, ROWS, &auc), 0);
    ck_assert_double_eq_tol(auc, sum.auc, 1e-4);
    ck_assert_double_eq_tol(loss / ROWS, sum.logloss, 1e-6);
    free(p);
    free(scores);
    ps_sparse_destroy(&d);
    remove_files(prefix);
    rmdir(dir);
    ps_clickgen_destroy(&g);
}
END_TEST

START_TEST(a_longer_file_starts_with_the_rows_of_a_shorter_one)
{
    ps_clickgen *g = gen(3);
    char dir[64], p1[128], p2[128], f1[160], f2[160];
    temp_dir(dir);
    snprintf(p1, sizeof p1, "%s/short", dir);
    snprintf(p2, sizeof p2, "%s/long", dir);
    ps_clickgen_summary sum;
    ps_error err;
    ck_assert_int_eq(ps_clickgen_write(g, p1, 100, 10, &sum, &err), 0);
    ck_assert_int_eq(ps_clickgen_write(g, p2, 300, 10, &sum, &err), 0);
    snprintf(f1, sizeof f1, "%s.train.tsv", p1);
    snprintf(f2, sizeof f2, "%s.train.tsv", p2);
    size_t n1, n2;
    char *t1 = slurp(f1, &n1), *t2 = slurp(f2, &n2);
    ck_assert_uint_gt(n2, n1);
    ck_assert_int_eq(memcmp(t1, t2, n1), 0);
    free(t1);
    free(t2);
    remove_files(p1);
    remove_files(p2);
    rmdir(dir);
    ps_clickgen_destroy(&g);
}
END_TEST

START_TEST(the_writer_refuses_bad_counts_and_unwritable_places)
{
    ps_clickgen *g = gen(1);
    ps_clickgen_summary sum;
    ps_error err;
    ck_assert_int_eq(ps_clickgen_write(g, "/tmp/never", 0, 10, &sum, &err), PS_EINVAL);
    ck_assert_str_eq(err.msg, "rows must be 1 to 1099511627776 and test rows 1 to 100000000, got "
                              "0 and 10");
    ck_assert_int_eq(ps_clickgen_write(g, "/tmp/never", 10, 100000001, &sum, &err), PS_EINVAL);
    ck_assert_int_eq(ps_clickgen_write(g, "/proc/self/psgen/x", 10, 10, &sum, &err), PS_EIO);
    ck_assert_int_eq(strncmp(err.msg, "/proc/self/psgen: ", 18), 0);
    /* a name too long for the first file's temporary name: nothing made */
    char dir[64], prefix[512], path[600], want[700];
    temp_dir(dir);
    int n = snprintf(prefix, sizeof prefix, "%s/", dir);
    memset(prefix + n, 'c', 239);
    prefix[n + 239] = '\0';
    ck_assert_int_eq(ps_clickgen_write(g, prefix, 10, 10, &sum, &err), PS_EIO);
    snprintf(want, sizeof want, "%s.train.tsv: File name too long", prefix);
    ck_assert_str_eq(err.msg, want);
    /* a folder where the last file goes: refused before anything is
     * written, and no temporary file is left behind */
    snprintf(prefix, sizeof prefix, "%s/c", dir);
    snprintf(path, sizeof path, "%s.test.prob", prefix);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    ck_assert_int_eq(ps_clickgen_write(g, prefix, 10, 10, &sum, &err), PS_EINVAL);
    snprintf(want, sizeof want, "%s is a folder, not a regular file: refusing to write over it",
             path);
    ck_assert_str_eq(err.msg, want);
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t entries = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        entries++;
        ck_assert_ptr_null(strstr(e->d_name, "prob."));
        ck_assert_ptr_null(strstr(e->d_name, "tsv."));
    }
    closedir(d);
    ck_assert_uint_eq(entries, 1); /* the folder: neither .tsv file took its name */
    rmdir(path);
    remove_files(prefix);
    ck_assert_int_eq(rmdir(dir), 0);
    char line[16];
    ps_click_row r;
    ps_clickgen_row(g, PS_CLICKGEN_TRAIN, 0, &r);
    ck_assert_uint_eq(ps_clickgen_row_format(&r, line, sizeof line), 0);
    ps_clickgen_destroy(&g);
}
END_TEST

static Suite *clickgen_suite(void)
{
    Suite *s = suite_create("clickgen");
    TCase *tc = tcase_create("clickgen");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, one_seed_gives_identical_rows_and_files);
    tcase_add_test(tc, other_seeds_and_splits_give_other_rows);
    tcase_add_test(tc, rows_look_like_criteo_click_logs);
    tcase_add_test(tc, probabilities_are_in_the_open_interval_and_match_the_labels);
    tcase_add_test(tc, written_files_read_back_with_the_reported_auc);
    tcase_add_test(tc, a_longer_file_starts_with_the_rows_of_a_shorter_one);
    tcase_add_test(tc, the_writer_refuses_bad_counts_and_unwritable_places);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(clickgen_suite());
}
