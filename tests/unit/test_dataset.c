/* test_dataset.c — the CSV and LIBSVM readers on the real breast-cancer
 * data and on malformed files (exact file:line messages), the IDX reader on
 * small generated files (plain and gzip, good and malformed), where a row
 * came from, standardisation and sharding by rank. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "dataset.h"

#define BC_TRAIN_CSV PS_TEST_DATA_DIR "/breast_cancer.train.csv"
#define BC_TEST_CSV  PS_TEST_DATA_DIR "/breast_cancer.test.csv"
#define BC_TRAIN_SVM PS_TEST_DATA_DIR "/breast_cancer.train.libsvm"
#define BC_TEST_SVM  PS_TEST_DATA_DIR "/breast_cancer.test.libsvm"

/* Writes text to a new temporary file; its path goes to path (64 bytes). */
static void temp_file(char *path, const char *text)
{
    strcpy(path, "/tmp/test_dataset.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(text);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* Reads text as CSV with the given features; returns the code, err filled. */
static int csv_of(const char *text, size_t features, uint32_t label_column, ps_dataset **ds,
                  ps_error *err, char *path)
{
    temp_file(path, text);
    int rc = ps_dataset_read_csv(path, features, label_column, ds, err);
    unlink(path);
    return rc;
}

static int svm_of(const char *text, size_t features, ps_dataset **ds, ps_error *err, char *path)
{
    temp_file(path, text);
    int rc = ps_dataset_read_libsvm(path, features, ds, err);
    unlink(path);
    return rc;
}

/* Asserts that reading text fails with PS_EDATA and "<path>:<what>". */
static void assert_csv_error(const char *text, size_t features, const char *what)
{
    char path[64], want[256];
    ps_dataset *ds = (ps_dataset *)1;
    ps_error err;
    ck_assert_int_eq(csv_of(text, features, 0, &ds, &err, path), PS_EDATA);
    ck_assert_ptr_null(ds);
    snprintf(want, sizeof want, "%s:%s", path, what);
    ck_assert_str_eq(err.msg, want);
}

static void assert_svm_error(const char *text, size_t features, const char *what)
{
    char path[64], want[256];
    ps_dataset *ds = (ps_dataset *)1;
    ps_error err;
    ck_assert_int_eq(svm_of(text, features, &ds, &err, path), PS_EDATA);
    ck_assert_ptr_null(ds);
    snprintf(want, sizeof want, "%s:%s", path, what);
    ck_assert_str_eq(err.msg, want);
}

/* ---- the real data ---- */

START_TEST(csv_reads_every_row_of_breast_cancer)
{
    ps_dataset *ds = NULL;
    ps_error err;
    ck_assert_int_eq(ps_dataset_read_csv(BC_TRAIN_CSV, 30, 0, &ds, &err), 0);
    ck_assert_uint_eq(ps_dataset_rows(ds), 455);
    ck_assert_uint_eq(ps_dataset_features(ds), 30);
    const float *x = ps_dataset_cx(ds);
    /* row 0: 1,10.05,17.53,64.41,...,0.07664 */
    ck_assert_float_eq(ps_dataset_cy(ds)[0], 1.0f);
    ck_assert_float_eq(x[0], 10.05f);
    ck_assert_float_eq(x[1], 17.53f);
    ck_assert_float_eq(x[2], 64.41f);
    ck_assert_float_eq(x[29], 0.07664f);
    /* row 1 starts 1,10.8,21.98 */
    ck_assert_float_eq(x[30], 10.8f);
    for (size_t i = 0; i < 455; i++)
        ck_assert(ps_dataset_cy(ds)[i] == 0.0f || ps_dataset_cy(ds)[i] == 1.0f);
    ps_dataset_destroy(&ds);
    ck_assert_ptr_null(ds);
    ck_assert_int_eq(ps_dataset_read_csv(BC_TEST_CSV, 30, 0, &ds, &err), 0);
    ck_assert_uint_eq(ps_dataset_rows(ds), 114);
    ps_dataset_destroy(&ds);
}
END_TEST

static void assert_same_data(const char *csv, const char *svm, size_t rows)
{
    ps_dataset *a = NULL, *b = NULL;
    ps_error err;
    ck_assert_int_eq(ps_dataset_read(csv, NULL, PS_FORMAT_CSV, 30, 0, NULL, &a, &err), 0);
    ck_assert_int_eq(ps_dataset_read(svm, NULL, PS_FORMAT_LIBSVM, 30, 0, NULL, &b, &err), 0);
    ck_assert_uint_eq(ps_dataset_rows(a), rows);
    ck_assert_uint_eq(ps_dataset_rows(b), rows);
    ck_assert_int_eq(memcmp(ps_dataset_cx(a), ps_dataset_cx(b), rows * 30 * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(ps_dataset_cy(a), ps_dataset_cy(b), rows * sizeof(float)), 0);
    ps_dataset_destroy(&a);
    ps_dataset_destroy(&b);
}

START_TEST(csv_and_libsvm_give_identical_matrices)
{
    assert_same_data(BC_TRAIN_CSV, BC_TRAIN_SVM, 455);
    assert_same_data(BC_TEST_CSV, BC_TEST_SVM, 114);
}
END_TEST

START_TEST(missing_file_is_an_io_error_naming_it)
{
    ps_dataset *ds = NULL;
    ps_error err;
    ck_assert_int_eq(ps_dataset_read_csv("/nonexistent/train.csv", 3, 0, &ds, &err), PS_EIO);
    ck_assert_str_eq(err.msg, "/nonexistent/train.csv: No such file or directory");
    ck_assert_int_eq(ps_dataset_read_libsvm("/nonexistent/t.svm", 3, &ds, &err), PS_EIO);
    ck_assert_str_eq(err.msg, "/nonexistent/t.svm: No such file or directory");
    ck_assert_int_eq(ps_dataset_read("/nonexistent/train-images-idx3-ubyte.gz", NULL, PS_FORMAT_IDX,
                                     3, 0, NULL, &ds, &err),
                     PS_EIO);
    ck_assert_str_eq(err.msg, "/nonexistent/train-images-idx3-ubyte.gz: No such file or directory");
    ck_assert_ptr_null(ds);
}
END_TEST

/* ---- CSV details ---- */

START_TEST(csv_label_column_picks_the_label_and_blank_lines_are_skipped)
{
    char path[64];
    ps_dataset *ds = NULL;
    ps_error err;
    ck_assert_int_eq(csv_of("1.5, 2 ,7\r\n\n  \n-3,4e1,0\n", 2, 2, &ds, &err, path), 0);
    ck_assert_uint_eq(ps_dataset_rows(ds), 2);
    const float *x = ps_dataset_cx(ds);
    const float *y = ps_dataset_cy(ds);
    ck_assert_float_eq(x[0], 1.5f);
    ck_assert_float_eq(x[1], 2.0f);
    ck_assert_float_eq(y[0], 7.0f);
    ck_assert_float_eq(x[2], -3.0f);
    ck_assert_float_eq(x[3], 40.0f);
    ck_assert_float_eq(y[1], 0.0f);
    ps_dataset_destroy(&ds);
}
END_TEST

START_TEST(csv_wrong_field_count_names_file_and_line)
{
    assert_csv_error("1,2,3,4\n0,1,2,3\n1,2,3\n", 3, "3: expected 4 fields, found 3");
    assert_csv_error("1,2,3,4,5\n", 3, "1: expected 4 fields, found 5");
}
END_TEST

START_TEST(csv_field_that_is_not_a_number_is_echoed)
{
    assert_csv_error("1,2,3,4\n\n0,1,abc,3\n", 3, "3: field 3 \"abc\" is not a number");
    assert_csv_error("1,2,,4\n", 3, "1: field 3 \"\" is not a number");
    assert_csv_error("1,2,3x,4\n", 3, "1: field 3 \"3x\" is not a number");
    assert_csv_error("x,2,3,4\n", 3, "1: field 1 \"x\" is not a number");
    assert_csv_error("1,2,1e999,4\n", 3, "1: field 3 \"1e999\" is not a finite number");
    assert_csv_error("1,nan,3,4\n", 3, "1: field 2 \"nan\" is not a finite number");
    assert_csv_error("1,2,3,4444444444444444444444444444444444444444444444444z\n", 3,
                     "1: field 4 \"4444444444444444444444444444444444444444...\" is not a "
                     "number");
}
END_TEST

START_TEST(csv_nul_byte_and_empty_file_are_errors)
{
    char path[64], want[128];
    ps_dataset *ds = NULL;
    ps_error err;
    temp_file(path, "1,2\n");
    FILE *f = fopen(path, "a");
    fwrite("3\0,4\n", 1, 5, f);
    fclose(f);
    ck_assert_int_eq(ps_dataset_read_csv(path, 1, 0, &ds, &err), PS_EDATA);
    snprintf(want, sizeof want, "%s:2: line contains a NUL byte", path);
    ck_assert_str_eq(err.msg, want);
    unlink(path);
    ck_assert_int_eq(csv_of("\n\n", 1, 0, &ds, &err, path), PS_EDATA);
    snprintf(want, sizeof want, "%s: no data rows", path);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(csv_of("1,2\n", 1, 2, &ds, &err, path), PS_EDATA);
    snprintf(want, sizeof want, "%s: label_column 2 is outside the 2 fields", path);
    ck_assert_str_eq(err.msg, want);
    ck_assert_ptr_null(ds);
}
END_TEST

/* ---- LIBSVM details ---- */

START_TEST(libsvm_absent_indices_are_zero_and_comments_skipped)
{
    char path[64];
    ps_dataset *ds = NULL;
    ps_error err;
    ck_assert_int_eq(
        svm_of("+1 2:5 4:-1.5\n# a comment\n\n-1\t1:3  # trailing\n", 4, &ds, &err, path), 0);
    ck_assert_uint_eq(ps_dataset_rows(ds), 2);
    const float want[8] = {0, 5, 0, -1.5f, 3, 0, 0, 0};
    ck_assert_int_eq(memcmp(ps_dataset_cx(ds), want, sizeof want), 0);
    ck_assert_float_eq(ps_dataset_cy(ds)[0], 1.0f);
    ck_assert_float_eq(ps_dataset_cy(ds)[1], -1.0f);
    ps_dataset_destroy(&ds);
}
END_TEST

START_TEST(libsvm_malformed_lines_name_file_and_line)
{
    assert_svm_error("1 1:2\nyes 1:2\n", 3, "2: label \"yes\" is not a number");
    assert_svm_error("1 1:2 3\n", 3, "1: \"3\" is not an index:value pair");
    assert_svm_error("1 0:2\n", 3, "1: index 0 is out of range 1..3");
    assert_svm_error("1 4:2\n", 3, "1: index 4 is out of range 1..3");
    assert_svm_error("1 -1:2\n", 3, "1: index \"-1\" is not a positive integer");
    assert_svm_error("1 qid:2 1:1\n", 3, "1: index \"qid\" is not a positive integer");
    assert_svm_error("0 2:1 2:3\n", 3, "1: index 2 follows index 2: indices must increase");
    assert_svm_error("0 3:1 1:3\n", 3, "1: index 1 follows index 3: indices must increase");
    assert_svm_error("0 1:1\n0 2:x\n", 3, "2: value \"x\" of index 2 is not a number");
    assert_svm_error("0 1:inf\n", 3, "1: value \"inf\" of index 1 is not a finite number");
}
END_TEST

/* ---- standardisation ---- */

START_TEST(standardize_gives_train_mean_zero_and_std_one)
{
    ps_dataset *train = NULL, *test = NULL;
    ps_error err;
    ck_assert_int_eq(ps_dataset_read_csv(BC_TRAIN_CSV, 30, 0, &train, &err), 0);
    ck_assert_int_eq(ps_dataset_read_csv(BC_TEST_CSV, 30, 0, &test, &err), 0);
    double mean[30], std[30], after_mean[30], after_std[30];
    ps_dataset_stats(train, mean, std);
    ck_assert_double_eq_tol(mean[0], 14.112498897510571, 1e-9); /* float32 inputs, in double */
    ck_assert_double_eq_tol(std[0], 3.531487405522155, 1e-9);
    ps_dataset_standardize(train, mean, std);
    ps_dataset_standardize(test, mean, std);
    ps_dataset_stats(train, after_mean, after_std);
    for (int j = 0; j < 30; j++) {
        ck_assert_double_eq_tol(after_mean[j], 0.0, 1e-6);
        ck_assert_double_eq_tol(after_std[j], 1.0, 1e-5);
    }
    /* the test set is moved by the training set's statistics, not its own */
    float raw0 = 0.0f;
    ps_dataset *raw = NULL;
    ck_assert_int_eq(ps_dataset_read_csv(BC_TEST_CSV, 30, 0, &raw, &err), 0);
    raw0 = ps_dataset_cx(raw)[0];
    ck_assert_float_eq(ps_dataset_cx(test)[0], (float)((raw0 - mean[0]) / std[0]));
    ps_dataset_destroy(&raw);
    ps_dataset_destroy(&train);
    ps_dataset_destroy(&test);
}
END_TEST

START_TEST(standardize_only_centres_a_constant_feature)
{
    char path[64];
    ps_dataset *ds = NULL;
    ps_error err;
    ck_assert_int_eq(csv_of("0,5,1\n1,5,3\n", 2, 0, &ds, &err, path), 0);
    double mean[2], std[2];
    ps_dataset_stats(ds, mean, std);
    ck_assert_double_eq(mean[0], 5.0);
    ck_assert_double_eq(std[0], 0.0);
    ck_assert_double_eq(mean[1], 2.0);
    ck_assert_double_eq(std[1], 1.0);
    ps_dataset_standardize(ds, mean, std);
    const float want[4] = {0, -1, 0, 1};
    ck_assert_int_eq(memcmp(ps_dataset_cx(ds), want, sizeof want), 0);
    ps_dataset_destroy(&ds);
}
END_TEST

/* ---- sharding ---- */

START_TEST(stride_shards_take_every_wth_row)
{
    ps_dataset *all = NULL, *s0 = NULL, *s1 = NULL;
    ps_error err;
    ck_assert_int_eq(ps_dataset_read_csv(BC_TRAIN_CSV, 30, 0, &all, &err), 0);
    ck_assert_int_eq(ps_dataset_shard(all, PS_SHARD_STRIDE, 0, 2, &s0, &err), 0);
    ck_assert_int_eq(ps_dataset_shard(all, PS_SHARD_STRIDE, 1, 2, &s1, &err), 0);
    ck_assert_uint_eq(ps_dataset_rows(s0), 228);
    ck_assert_uint_eq(ps_dataset_rows(s1), 227);
    const float *x = ps_dataset_cx(all);
    for (size_t i = 0; i < 227; i++) {
        ck_assert_int_eq(memcmp(ps_dataset_cx(s0) + i * 30, x + 2 * i * 30, 30 * sizeof(float)), 0);
        ck_assert_int_eq(
            memcmp(ps_dataset_cx(s1) + i * 30, x + (2 * i + 1) * 30, 30 * sizeof(float)), 0);
        ck_assert_float_eq(ps_dataset_cy(s1)[i], ps_dataset_cy(all)[2 * i + 1]);
    }
    ck_assert_int_eq(memcmp(ps_dataset_cx(s0) + 227 * 30, x + 454 * 30, 30 * sizeof(float)), 0);
    ps_dataset_destroy(&s0);
    ps_dataset_destroy(&s1);
    ps_dataset_destroy(&all);
}
END_TEST

START_TEST(block_shards_take_contiguous_balanced_rows)
{
    ps_dataset *all = NULL, *s0 = NULL, *s1 = NULL;
    ps_error err;
    ck_assert_int_eq(ps_dataset_read_csv(BC_TRAIN_CSV, 30, 0, &all, &err), 0);
    ck_assert_int_eq(ps_dataset_shard(all, PS_SHARD_BLOCK, 0, 2, &s0, &err), 0);
    ck_assert_int_eq(ps_dataset_shard(all, PS_SHARD_BLOCK, 1, 2, &s1, &err), 0);
    /* rows [0, 227) and [227, 455) */
    ck_assert_uint_eq(ps_dataset_rows(s0), 227);
    ck_assert_uint_eq(ps_dataset_rows(s1), 228);
    const float *x = ps_dataset_cx(all);
    ck_assert_int_eq(memcmp(ps_dataset_cx(s0), x, 227 * 30 * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(ps_dataset_cx(s1), x + 227 * 30, 228 * 30 * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(ps_dataset_cy(s1), ps_dataset_cy(all) + 227, 228 * sizeof(float)), 0);
    ps_dataset_destroy(&s0);
    ps_dataset_destroy(&s1);
    ps_dataset_destroy(&all);
}
END_TEST

START_TEST(shard_sizes_cover_every_row_once_and_differ_by_at_most_one)
{
    for (size_t n = 0; n < 40; n++) {
        for (uint32_t w = 1; w <= 6; w++) {
            for (int kind = 0; kind < 2; kind++) {
                size_t sum = 0, max = 0, min = (size_t)-1;
                for (uint32_t r = 0; r < w; r++) {
                    size_t rows = ps_shard_rows(n, (ps_shard_kind)kind, r, w);
                    sum += rows;
                    max = rows > max ? rows : max;
                    min = rows < min ? rows : min;
                }
                ck_assert_uint_eq(sum, n);
                ck_assert_uint_eq(max, (n + w - 1) / w);
                ck_assert_uint_le(max - min, 1);
            }
        }
    }
    ck_assert_uint_eq(ps_shard_rows(10, PS_SHARD_STRIDE, 2, 2), 0);
}
END_TEST

START_TEST(shard_refuses_a_rank_outside_the_workers)
{
    ps_dataset *ds = NULL, *s = (ps_dataset *)1;
    ps_error err;
    ck_assert_int_eq(ps_dataset_new(4, 2, &ds, &err), 0);
    ck_assert_int_eq(ps_dataset_shard(ds, PS_SHARD_BLOCK, 3, 3, &s, &err), PS_EINVAL);
    ck_assert_str_eq(err.msg, "rank 3 is outside [0, 3)");
    ck_assert_ptr_null(s);
    ps_dataset_destroy(&ds);
    ps_dataset_destroy(&ds); /* harmless */
}
END_TEST

/* ---- IDX ---- */

/* Three 2 x 2 images with pixels 0..11 (the last 255) and labels 7, 0, 9. */
static const unsigned char IDX_IMAGES[] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0,  0,
                                           0, 2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255};
static const unsigned char IDX_LABELS[] = {0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9};

/* Writes len bytes to a new file in dir named name, gzip'd when gz. */
static void idx_file(char *path, size_t cap, const char *dir, const char *name, const void *bytes,
                     size_t len, int gz)
{
    snprintf(path, cap, "%s/%s", dir, name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(gzwrite(f, bytes, (unsigned)len), (int)len);
        ck_assert_int_eq(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(bytes, 1, len, f), len);
        ck_assert_int_eq(fclose(f), 0);
    }
}

static char *idx_dir(char *dir)
{
    strcpy(dir, "/tmp/test_dataset_idx.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}

static void idx_dir_remove(const char *dir, const char *const *names)
{
    char path[160];
    for (; *names; names++) {
        snprintf(path, sizeof path, "%s/%s", dir, *names);
        unlink(path);
    }
    rmdir(dir);
}

/* want with every "@" replaced by dir. */
static void expand_dir(char *out, size_t cap, const char *want, const char *dir)
{
    size_t n = 0, dlen = strlen(dir);
    for (; *want && n + dlen + 1 < cap; want++) {
        if (*want == '@') {
            memcpy(out + n, dir, dlen);
            n += dlen;
        } else {
            out[n++] = *want;
        }
    }
    out[n] = '\0';
}

/* Reading images + labels that must fail: PS_EDATA and the message, "@"
 * standing for the files' folder. */
static void assert_idx_error(const void *img, size_t img_len, const void *lab, size_t lab_len,
                             size_t features, int gz, const char *want_msg)
{
    char dir[64], ipath[128], lpath[128], want[512];
    idx_dir(dir);
    idx_file(ipath, sizeof ipath, dir, "i", img, img_len, gz);
    idx_file(lpath, sizeof lpath, dir, "l", lab, lab_len, gz);
    ps_dataset *ds = (ps_dataset *)1;
    ps_error err;
    ck_assert_int_eq(ps_dataset_read_idx(ipath, lpath, features, &ds, &err), PS_EDATA);
    ck_assert_ptr_null(ds);
    expand_dir(want, sizeof want, want_msg, dir);
    ck_assert_str_eq(err.msg, want);
    const char *names[] = {"i", "l", NULL};
    idx_dir_remove(dir, names);
}

START_TEST(idx_reads_plain_and_gzip_files_alike)
{
    for (int gz = 0; gz <= 1; gz++) {
        char dir[64], ipath[128], lpath[128];
        idx_dir(dir);
        idx_file(ipath, sizeof ipath, dir, "train-images-idx3-ubyte.gz", IDX_IMAGES,
                 sizeof IDX_IMAGES, gz);
        idx_file(lpath, sizeof lpath, dir, "train-labels-idx1-ubyte.gz", IDX_LABELS,
                 sizeof IDX_LABELS, gz);
        ps_dataset *ds = NULL;
        ps_error err;
        /* the labels file is found from the images file's standard name */
        ck_assert_int_eq(ps_dataset_read(ipath, NULL, PS_FORMAT_IDX, 4, 0, NULL, &ds, &err), 0);
        ck_assert_uint_eq(ps_dataset_rows(ds), 3);
        ck_assert_uint_eq(ps_dataset_features(ds), 4);
        for (int i = 0; i < 11; i++)
            ck_assert_float_eq(ps_dataset_cx(ds)[i], (float)i);
        ck_assert_float_eq(ps_dataset_cx(ds)[11], 255.0f);
        ck_assert_float_eq(ps_dataset_cy(ds)[0], 7.0f);
        ck_assert_float_eq(ps_dataset_cy(ds)[1], 0.0f);
        ck_assert_float_eq(ps_dataset_cy(ds)[2], 9.0f);
        char where[256], want[256];
        ps_dataset_row_where(ds, 2, where, sizeof where);
        snprintf(want, sizeof want, "%s: item 3 (byte 10)", lpath);
        ck_assert_str_eq(where, want);
        ps_dataset_destroy(&ds);
        /* an explicit labels file wins */
        ck_assert_int_eq(ps_dataset_read(ipath, lpath, PS_FORMAT_IDX, 4, 0, NULL, &ds, &err), 0);
        ck_assert_uint_eq(ps_dataset_rows(ds), 3);
        ps_dataset_destroy(&ds);
        const char *names[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", NULL};
        idx_dir_remove(dir, names);
    }
}
END_TEST

START_TEST(idx_labels_file_is_derived_from_standard_names_only)
{
    char out[128];
    ps_error err;
    ck_assert_int_eq(
        ps_dataset_idx_labels_path("/d/train-images-idx3-ubyte.gz", out, sizeof out, &err), 0);
    ck_assert_str_eq(out, "/d/train-labels-idx1-ubyte.gz");
    ck_assert_int_eq(
        ps_dataset_idx_labels_path("images/t10k-images-idx3-ubyte", out, sizeof out, &err), 0);
    ck_assert_str_eq(out, "images/t10k-labels-idx1-ubyte");
    ck_assert_int_eq(ps_dataset_idx_labels_path("/images/idx3/pixels.gz", out, sizeof out, &err),
                     PS_ECONFIG);
    ck_assert_str_eq(err.msg, "/images/idx3/pixels.gz: cannot derive the labels file from this "
                              "name (standard names are like train-images-idx3-ubyte.gz); give "
                              "data.train_labels or data.test_labels");
    ck_assert_int_eq(ps_dataset_idx_labels_path("/d/train-images-idx3-ubyte.gz", out, 8, &err),
                     PS_ECONFIG);
}
END_TEST

START_TEST(idx_bad_magic_is_an_error)
{
    unsigned char img[sizeof IDX_IMAGES];
    memcpy(img, IDX_IMAGES, sizeof img);
    img[3] = 1; /* an idx1 file given as images */
    assert_idx_error(img, sizeof img, IDX_LABELS, sizeof IDX_LABELS, 4, 0,
                     "@/i: magic number 0x00000801 is not 0x00000803 (IDX images of unsigned "
                     "bytes)");
    img[3] = 3;
    img[2] = 0x0D; /* floats */
    assert_idx_error(img, sizeof img, IDX_LABELS, sizeof IDX_LABELS, 4, 1,
                     "@/i: magic number 0x00000d03 is not 0x00000803 (IDX images of unsigned "
                     "bytes)");
    unsigned char lab[sizeof IDX_LABELS];
    memcpy(lab, IDX_LABELS, sizeof lab);
    lab[3] = 3;
    assert_idx_error(IDX_IMAGES, sizeof IDX_IMAGES, lab, sizeof lab, 4, 0,
                     "@/l: magic number 0x00000803 is not 0x00000801 (IDX labels of unsigned "
                     "bytes)");
}
END_TEST

START_TEST(idx_truncated_and_over_long_files_are_errors)
{
    /* two pixel bytes missing: the reader stops at byte 26 of 28 */
    assert_idx_error(IDX_IMAGES, sizeof IDX_IMAGES - 2, IDX_LABELS, sizeof IDX_LABELS, 4, 0,
                     "@/i: truncated at byte 26: 2 more bytes of pixels expected");
    assert_idx_error(IDX_IMAGES, sizeof IDX_IMAGES - 2, IDX_LABELS, sizeof IDX_LABELS, 4, 1,
                     "@/i: truncated at byte 26: 2 more bytes of pixels expected");
    assert_idx_error(IDX_IMAGES, 6, IDX_LABELS, sizeof IDX_LABELS, 4, 0,
                     "@/i: truncated at byte 6: 10 more bytes of header expected");
    assert_idx_error(IDX_IMAGES, sizeof IDX_IMAGES, IDX_LABELS, sizeof IDX_LABELS - 1, 4, 0,
                     "@/l: truncated at byte 10: 1 more bytes of labels expected");
    unsigned char lab[sizeof IDX_LABELS + 1];
    memcpy(lab, IDX_LABELS, sizeof IDX_LABELS);
    lab[sizeof IDX_LABELS] = 1;
    assert_idx_error(IDX_IMAGES, sizeof IDX_IMAGES, lab, sizeof lab, 4, 0,
                     "@/l: unexpected data after the last item at byte 11");
}
END_TEST

START_TEST(idx_count_and_size_mismatches_are_errors)
{
    unsigned char lab[] = {0, 0, 8, 1, 0, 0, 0, 2, 7, 0};
    assert_idx_error(IDX_IMAGES, sizeof IDX_IMAGES, lab, sizeof lab, 4, 0,
                     "@/l: 2 labels for the 3 images of @/i");
    assert_idx_error(IDX_IMAGES, sizeof IDX_IMAGES, IDX_LABELS, sizeof IDX_LABELS, 784, 0,
                     "@/i: images of 2 x 2 = 4 pixels, but model.features is 784");
    unsigned char none[] = {0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2};
    assert_idx_error(none, sizeof none, IDX_LABELS, sizeof IDX_LABELS, 4, 0, "@/i: no images");
    /* a header that claims 2^32 - 1 images of 1 x 4 pixels, then 2 bytes: memory
     * grows with the bytes read, not with the claim */
    unsigned char huge[] = {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 4, 1, 2};
    assert_idx_error(huge, sizeof huge, IDX_LABELS, sizeof IDX_LABELS, 4, 0,
                     "@/i: truncated at byte 18: 17179869178 more bytes of pixels expected");
}
END_TEST

/* ---- caps: what a reader refuses before it burns memory or hangs ---- */

/* A file of n copies of row followed by tail (no newline needed); its
 * path goes to path (64 bytes). */
static void rows_file(char *path, size_t n, const char *row, const char *tail)
{
    strcpy(path, "/tmp/test_dataset.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < n; i++)
        fputs(row, f);
    fputs(tail, f);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(csv_line_longer_than_one_mib_is_refused_naming_its_line)
{
    /* 3 good rows, then a line of 2 MiB without a newline: refused at line
     * 4 without reading it whole */
    char path[64], want[256];
    size_t big = (size_t)2 << 20;
    char *tail = malloc(big + 1);
    ck_assert_ptr_nonnull(tail);
    memset(tail, '7', big);
    tail[big] = '\0';
    rows_file(path, 3, "1,2,3\n", tail);
    ps_dataset *ds = (ps_dataset *)1;
    ps_error err;
    ck_assert_int_eq(ps_dataset_read_csv(path, 2, 0, &ds, &err), PS_EDATA);
    ck_assert_ptr_null(ds);
    snprintf(want, sizeof want,
             "%s:4: line longer than 1048576 bytes (1 MiB); not a text data file?", path);
    ck_assert_str_eq(err.msg, want);
    unlink(path);
    rows_file(path, 3, "1 1:2 2:3\n", tail);
    ck_assert_int_eq(ps_dataset_read_libsvm(path, 2, &ds, &err), PS_EDATA);
    snprintf(want, sizeof want,
             "%s:4: line longer than 1048576 bytes (1 MiB); not a text data file?", path);
    ck_assert_str_eq(err.msg, want);
    unlink(path);
    free(tail);
}
END_TEST

START_TEST(csv_line_of_exactly_one_mib_is_read)
{
    /* the cap is on the line, not the file: 1 MiB of blanks then a row */
    char path[64];
    size_t n = (size_t)1 << 20;
    char *line = malloc(n + 2);
    ck_assert_ptr_nonnull(line);
    memset(line, ' ', n);
    memcpy(line + n - 5, "4,5,6", 5);
    line[n] = '\n';
    line[n + 1] = '\0';
    rows_file(path, 2, "1,2,3\n", line);
    free(line);
    ps_dataset *ds = NULL;
    ps_error err;
    int rc = ps_dataset_read_csv(path, 2, 0, &ds, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    ck_assert_uint_eq(ps_dataset_rows(ds), 3);
    ck_assert_float_eq(ps_dataset_y(ds)[2], 4.0f);
    ps_dataset_destroy(&ds);
    unlink(path);
}
END_TEST

/* Every reader refuses path, a file that is not regular, with PS_EDATA and
 * "<path>: is <kind>, not a data file", without blocking on it. */
static void assert_refused_unread(const char *path, const char *kind)
{
    char want[256];
    snprintf(want, sizeof want, "%s: is %s, not a data file", path, kind);
    ps_dataset *ds = (ps_dataset *)1;
    ps_error err;
    ck_assert_int_eq(ps_dataset_read_csv(path, 3, 0, &ds, &err), PS_EDATA);
    ck_assert_ptr_null(ds);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(ps_dataset_read_libsvm(path, 3, &ds, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(ps_dataset_read_idx(path, BC_TRAIN_CSV, 4, &ds, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(ps_dataset_read(path, NULL, PS_FORMAT_CSV, 3, 0, NULL, &ds, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, want);
}

START_TEST(fifo_data_path_is_refused_without_blocking)
{
    /* nothing ever writes the FIFO: opening it to read would block for
     * good (the test's timeout would fail it) */
    char dir[64], fifo[96];
    idx_dir(dir);
    snprintf(fifo, sizeof fifo, "%s/train.csv", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    assert_refused_unread(fifo, "a FIFO");
    char labels[96];
    snprintf(labels, sizeof labels, "%s/labels", dir);
    ck_assert_int_eq(mkfifo(labels, 0600), 0);
    ps_dataset *ds = NULL;
    ps_error err;
    char images[128], want[256];
    idx_file(images, sizeof images, dir, "images", IDX_IMAGES, sizeof IDX_IMAGES, 1);
    ck_assert_int_eq(ps_dataset_read_idx(images, labels, 4, &ds, &err), PS_EDATA);
    snprintf(want, sizeof want, "%s: is a FIFO, not a data file", labels);
    ck_assert_str_eq(err.msg, want);
    const char *names[] = {"train.csv", "labels", "images", NULL};
    idx_dir_remove(dir, names);
}
END_TEST

START_TEST(device_data_path_is_refused_unread)
{
    /* /dev/zero is one endless line: it once grew a worker to 2.7 GB */
    assert_refused_unread("/dev/zero", "a character device");
}
END_TEST

START_TEST(folder_data_path_is_refused)
{
    assert_refused_unread(PS_TEST_DATA_DIR, "a folder");
}
END_TEST

START_TEST(reading_ends_with_eintr_when_the_stop_flag_is_set)
{
    char path[64], want[256];
    rows_file(path, 100, "1,2,3\n", "");
    volatile sig_atomic_t stop = 1;
    ps_dataset *ds = (ps_dataset *)1;
    ps_error err;
    ck_assert_int_eq(ps_dataset_read(path, NULL, PS_FORMAT_CSV, 2, 0, &stop, &ds, &err), PS_EINTR);
    ck_assert_ptr_null(ds);
    snprintf(want, sizeof want, "%s:1: reading interrupted", path);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(ps_dataset_read(path, NULL, PS_FORMAT_LIBSVM, 2, 0, &stop, &ds, &err),
                     PS_EINTR);
    /* a flag that is not set changes nothing */
    stop = 0;
    ck_assert_int_eq(ps_dataset_read(path, NULL, PS_FORMAT_CSV, 2, 0, &stop, &ds, &err), 0);
    ck_assert_uint_eq(ps_dataset_rows(ds), 100);
    ps_dataset_destroy(&ds);
    unlink(path);
}
END_TEST

START_TEST(idx_reading_ends_with_eintr_when_the_stop_flag_is_set)
{
    char dir[64], ipath[128], lpath[128], want[256];
    idx_dir(dir);
    idx_file(ipath, sizeof ipath, dir, "train-images-idx3-ubyte.gz", IDX_IMAGES, sizeof IDX_IMAGES,
             1);
    idx_file(lpath, sizeof lpath, dir, "train-labels-idx1-ubyte.gz", IDX_LABELS, sizeof IDX_LABELS,
             1);
    volatile sig_atomic_t stop = 1;
    ps_dataset *ds = (ps_dataset *)1;
    ps_error err;
    ck_assert_int_eq(ps_dataset_read(ipath, NULL, PS_FORMAT_IDX, 4, 0, &stop, &ds, &err), PS_EINTR);
    ck_assert_ptr_null(ds);
    snprintf(want, sizeof want, "%s: reading interrupted at image 1", ipath);
    ck_assert_str_eq(err.msg, want);
    const char *names[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", NULL};
    idx_dir_remove(dir, names);
}
END_TEST

START_TEST(csv_rows_know_their_lines)
{
    char path[64], where[128], want[128];
    ps_dataset *ds = NULL;
    ps_error err;
    ck_assert_int_eq(csv_of("1,2\n\n3,4\n", 1, 0, &ds, &err, path), 0);
    ps_dataset_row_where(ds, 1, where, sizeof where);
    snprintf(want, sizeof want, "%s:3", path);
    ck_assert_str_eq(where, want);
    ps_dataset_destroy(&ds);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, csv_reads_every_row_of_breast_cancer);
    tcase_add_test(tc, csv_and_libsvm_give_identical_matrices);
    tcase_add_test(tc, missing_file_is_an_io_error_naming_it);
    tcase_add_test(tc, csv_label_column_picks_the_label_and_blank_lines_are_skipped);
    tcase_add_test(tc, csv_wrong_field_count_names_file_and_line);
    tcase_add_test(tc, csv_field_that_is_not_a_number_is_echoed);
    tcase_add_test(tc, csv_nul_byte_and_empty_file_are_errors);
    tcase_add_test(tc, libsvm_absent_indices_are_zero_and_comments_skipped);
    tcase_add_test(tc, libsvm_malformed_lines_name_file_and_line);
    tcase_add_test(tc, standardize_gives_train_mean_zero_and_std_one);
    tcase_add_test(tc, standardize_only_centres_a_constant_feature);
    tcase_add_test(tc, stride_shards_take_every_wth_row);
    tcase_add_test(tc, block_shards_take_contiguous_balanced_rows);
    tcase_add_test(tc, shard_sizes_cover_every_row_once_and_differ_by_at_most_one);
    tcase_add_test(tc, shard_refuses_a_rank_outside_the_workers);
    tcase_add_test(tc, idx_reads_plain_and_gzip_files_alike);
    tcase_add_test(tc, idx_labels_file_is_derived_from_standard_names_only);
    tcase_add_test(tc, idx_bad_magic_is_an_error);
    tcase_add_test(tc, idx_truncated_and_over_long_files_are_errors);
    tcase_add_test(tc, idx_count_and_size_mismatches_are_errors);
    tcase_add_test(tc, csv_rows_know_their_lines);
    tcase_add_test(tc, csv_line_longer_than_one_mib_is_refused_naming_its_line);
    tcase_add_test(tc, csv_line_of_exactly_one_mib_is_read);
    tcase_add_test(tc, fifo_data_path_is_refused_without_blocking);
    tcase_add_test(tc, device_data_path_is_refused_unread);
    tcase_add_test(tc, folder_data_path_is_refused);
    tcase_add_test(tc, reading_ends_with_eintr_when_the_stop_flag_is_set);
    tcase_add_test(tc, idx_reading_ends_with_eintr_when_the_stop_flag_is_set);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
