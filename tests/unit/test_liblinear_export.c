/* test_liblinear_export.c — the sparse readers' rows in liblinear's format:
 * tiny criteo and libsvm64 files whose expected output is written here by
 * hand (feature numbers in the order keys first appear over the files,
 * test files sharing the training file's numbers and keys only in them
 * numbered after, features sorted in a row, values in "%.9g", labels 0/1,
 * a row without features its label alone), the counts of each file, and
 * refusals that name the file and line and leave no output file behind. */
#include <check.h>

#include "check_main.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "liblinear_export.h"
#include "sparse_data.h"

/* A fresh folder for one test's files, in dir (64 bytes). */
static void temp_dir(char *dir)
{
    strcpy(dir, "/tmp/test_liblinear_export.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    ck_assert_int_eq(fclose(f), 0);
}

/* The whole of path, NUL-terminated (the caller frees it). */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char *buf = malloc(1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void assert_file(const char *path, const char *want)
{
    char *got = read_file(path);
    ck_assert_str_eq(got, want);
    free(got);
}

/* How many entries dir holds besides . and .. */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* Removes dir and the files in it. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        ck_assert_int_lt(snprintf(path, sizeof path, "%s/%s", dir, e->d_name), (int)sizeof path);
        unlink(path);
    }
    closedir(d);
    ck_assert_int_eq(rmdir(dir), 0);
}

/* A criteo line: label, 13 integer and 26 categorical fields (set[i] for
 * the fields named in pairs field=value, others empty), tab-separated.
 * Fields are 0-based: 0..12 the integers I1..I13, 13..38 C1..C26. */
static void criteo_line(char *buf, size_t cap, const char *label, int nset, const int *field,
                        const char *const *value)
{
    int n = snprintf(buf, cap, "%s", label);
    for (int f = 0; f < PS_CRITEO_FIELDS; f++) {
        const char *v = "";
        for (int i = 0; i < nset; i++)
            if (field[i] == f)
                v = value[i];
        n += snprintf(buf + n, cap - (size_t)n, "\t%s", v);
    }
    snprintf(buf + n, cap - (size_t)n, "\n");
}

START_TEST(criteo_keys_are_numbered_by_first_appearance_across_files)
{
    char dir[64], train[128], test[128], train_out[128], test_out[128], text[4096];
    temp_dir(dir);
    snprintf(train, sizeof train, "%s/t.train.tsv", dir);
    snprintf(test, sizeof test, "%s/t.test.tsv", dir);
    snprintf(train_out, sizeof train_out, "%s/t.train.tsv.liblinear", dir);
    snprintf(test_out, sizeof test_out, "%s/t.test.tsv.liblinear", dir);
    /* train row 1: I1=1 (bucket 1), I2=5 (bucket 2), C1=ab -> keys 1, 2, 3
     * row 2: I1=3 (bucket 1 again: 1), I2=-7 (bucket -1: new, 4), C1=ab
     *   (3), C2=ab (another field: new, 5) -> 1 3 4 5
     * row 3: I1=-1 (bucket -1 of field 0, not field 1's: 6), I2=2
     *   (bucket 2: 2), C2=AB (case matters: 7) -> sorted 2 6 7 */
    int n = 0;
    criteo_line(text + n, sizeof text - (size_t)n, "1", 3, (const int[]){0, 1, 13},
                (const char *const[]){"1", "5", "ab"});
    n = (int)strlen(text);
    criteo_line(text + n, sizeof text - (size_t)n, "0", 4, (const int[]){0, 1, 13, 14},
                (const char *const[]){"3", "-7", "ab", "ab"});
    n = (int)strlen(text);
    criteo_line(text + n, sizeof text - (size_t)n, "1", 3, (const int[]){0, 1, 14},
                (const char *const[]){"-1", "2", "AB"});
    write_file(train, text);
    /* test row 1: C2=ab (5), I1=0 (bucket 0: new, 8), C26=ff (new, 9)
     * row 2: no field present -> the label alone
     * row 3: I2=4 (bucket 1 of field 1: new, 10), I13=100 (new, 11), C1=ab (3) */
    criteo_line(text, sizeof text, "0", 3, (const int[]){14, 0, 38},
                (const char *const[]){"ab", "0", "ff"});
    n = (int)strlen(text);
    criteo_line(text + n, sizeof text - (size_t)n, "1", 0, NULL, NULL);
    n = (int)strlen(text);
    criteo_line(text + n, sizeof text - (size_t)n, "0", 3, (const int[]){12, 1, 13},
                (const char *const[]){"100", "4", "ab"});
    write_file(test, text);

    ps_liblinear_export *x;
    ps_error err;
    ck_assert_int_eq(ps_liblinear_export_new(PS_FORMAT_CRITEO, &x, &err), 0);
    ps_liblinear_stats st;
    ck_assert_int_eq(ps_liblinear_export_file(x, train, train_out, NULL, &st, &err), 0);
    assert_file(train_out, "1 1:1 2:1 3:1\n"
                           "0 1:1 3:1 4:1 5:1\n"
                           "1 2:1 6:1 7:1\n");
    ck_assert_uint_eq(st.rows, 3);
    ck_assert_uint_eq(st.positives, 2);
    ck_assert_uint_eq(st.features, 10);
    ck_assert_uint_eq(st.keys, 7);
    ck_assert_uint_eq(st.new_keys, 7);
    ck_assert_int_eq(ps_liblinear_export_file(x, test, test_out, NULL, &st, &err), 0);
    assert_file(test_out, "0 5:1 8:1 9:1\n"
                          "1\n"
                          "0 3:1 10:1 11:1\n");
    ck_assert_uint_eq(st.rows, 3);
    ck_assert_uint_eq(st.positives, 1);
    ck_assert_uint_eq(st.features, 6);
    ck_assert_uint_eq(st.keys, 6);
    ck_assert_uint_eq(st.new_keys, 4);
    ck_assert_uint_eq(ps_keymap_count(ps_liblinear_export_keys(x)), 11);
    ps_liblinear_export_destroy(&x);
    ck_assert_ptr_null(x);
    /* the inputs and the two outputs, no temporary file */
    ck_assert_int_eq(entries(dir), 4);
    remove_dir(dir);
}
END_TEST

START_TEST(libsvm64_values_and_ids_are_kept_and_sorted_by_number)
{
    char dir[64], train[128], test[128], train_out[128], test_out[128];
    temp_dir(dir);
    snprintf(train, sizeof train, "%s/a.svm", dir);
    snprintf(test, sizeof test, "%s/b.svm", dir);
    snprintf(train_out, sizeof train_out, "%s/a.svm.liblinear", dir);
    snprintf(test_out, sizeof test_out, "%s/b.svm.liblinear", dir);
    /* ids 5, 9, 100, 2^64-1, 7 numbered 1..5; -1 is label 0; 0.1 as a
     * float is 0.100000001 in %.9g; blank and comment lines are not rows */
    write_file(train, "1 5:0.5 9:2 100:1\n"
                      "0 9:1 18446744073709551615:-3.25\n"
                      "-1 5:1 # a comment\n"
                      "\n"
                      "# a line of comment\n"
                      "1 7:0.1\n");
    /* 200, 300 and 3 are new (6, 7, 8); 3 < 7 < 9 as ids but 8 > 5 > 2 as
     * numbers: sorted by number */
    write_file(test, "0 5:2 7:1 200:4 300:1e-3\n"
                     "1 3:1 7:1 9:1\n"
                     "1\n");
    ps_liblinear_export *x;
    ps_error err;
    ck_assert_int_eq(ps_liblinear_export_new(PS_FORMAT_LIBSVM64, &x, &err), 0);
    ps_liblinear_stats st;
    ck_assert_int_eq(ps_liblinear_export_file(x, train, train_out, NULL, &st, &err), 0);
    assert_file(train_out, "1 1:0.5 2:2 3:1\n"
                           "0 2:1 4:-3.25\n"
                           "0 1:1\n"
                           "1 5:0.100000001\n");
    ck_assert_uint_eq(st.rows, 4);
    ck_assert_uint_eq(st.positives, 2);
    ck_assert_uint_eq(st.features, 7);
    ck_assert_uint_eq(st.keys, 5);
    ck_assert_uint_eq(st.new_keys, 5);
    ck_assert_int_eq(ps_liblinear_export_file(x, test, test_out, NULL, &st, &err), 0);
    assert_file(test_out, "0 1:2 5:1 6:4 7:0.00100000005\n"
                          "1 2:1 5:1 8:1\n"
                          "1\n");
    ck_assert_uint_eq(st.rows, 3);
    ck_assert_uint_eq(st.positives, 2);
    ck_assert_uint_eq(st.features, 7);
    ck_assert_uint_eq(st.keys, 6);
    ck_assert_uint_eq(st.new_keys, 3);
    ps_liblinear_export_destroy(&x);
    remove_dir(dir);
}
END_TEST

START_TEST(a_bad_row_names_file_and_line_and_leaves_no_output)
{
    char dir[64], in[128], out[128], want[256];
    temp_dir(dir);
    snprintf(in, sizeof in, "%s/bad.svm", dir);
    snprintf(out, sizeof out, "%s/bad.svm.liblinear", dir);
    write_file(in, "1 5:1\n0 9:1 8:1\n");
    ps_liblinear_export *x;
    ps_error err;
    ck_assert_int_eq(ps_liblinear_export_new(PS_FORMAT_LIBSVM64, &x, &err), 0);
    ps_liblinear_stats st;
    ck_assert_int_eq(ps_liblinear_export_file(x, in, out, NULL, &st, &err), PS_EDATA);
    snprintf(want, sizeof want, "%s:2: ", in);
    ck_assert_msg(strncmp(err.msg, want, strlen(want)) == 0, "got \"%s\"", err.msg);
    ck_assert_ptr_null(strchr(err.msg, '\n'));
    ck_assert_int_eq(access(out, F_OK), -1);
    ck_assert_int_eq(entries(dir), 1);
    /* a file without rows */
    write_file(in, "# nothing\n\n");
    ck_assert_int_eq(ps_liblinear_export_file(x, in, out, NULL, &st, &err), PS_EDATA);
    snprintf(want, sizeof want, "%s: no data rows", in);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(entries(dir), 1);
    /* a missing input: the reader's PS_EIO, nothing written */
    char missing[128];
    snprintf(missing, sizeof missing, "%s/missing.svm", dir);
    ck_assert_int_eq(ps_liblinear_export_file(x, missing, out, NULL, &st, &err), PS_EIO);
    snprintf(want, sizeof want, "%s: No such file or directory", missing);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(entries(dir), 1);
    ps_liblinear_export_destroy(&x);
    remove_dir(dir);
}
END_TEST

START_TEST(an_unwritable_output_is_one_line_naming_it)
{
    char dir[64], in[128];
    temp_dir(dir);
    snprintf(in, sizeof in, "%s/ok.svm", dir);
    write_file(in, "1 5:1\n");
    ps_liblinear_export *x;
    ps_error err;
    ck_assert_int_eq(ps_liblinear_export_new(PS_FORMAT_LIBSVM64, &x, &err), 0);
    ps_liblinear_stats st;
    ck_assert_int_eq(ps_liblinear_export_file(x, in, "/proc/self/no/ok.liblinear", NULL, &st, &err),
                     PS_EINVAL);
    ck_assert_str_eq(err.msg,
                     "/proc/self/no/ok.liblinear: the folder /proc/self/no does not exist");
    ps_liblinear_export_destroy(&x);
    remove_dir(dir);
}
END_TEST

START_TEST(only_sparse_formats_are_exported)
{
    ps_liblinear_export *x = (ps_liblinear_export *)1;
    ps_error err;
    ck_assert_int_eq(ps_liblinear_export_new(PS_FORMAT_CSV, &x, &err), PS_EINVAL);
    ck_assert_ptr_null(x);
    ps_liblinear_export_destroy(NULL);
}
END_TEST

static Suite *liblinear_export_suite(void)
{
    Suite *s = suite_create("liblinear_export");
    TCase *tc = tcase_create("liblinear_export");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, criteo_keys_are_numbered_by_first_appearance_across_files);
    tcase_add_test(tc, libsvm64_values_and_ids_are_kept_and_sorted_by_number);
    tcase_add_test(tc, a_bad_row_names_file_and_line_and_leaves_no_output);
    tcase_add_test(tc, an_unwritable_output_is_one_line_naming_it);
    tcase_add_test(tc, only_sparse_formats_are_exported);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(liblinear_export_suite());
}
