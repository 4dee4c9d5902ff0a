/* test_sparse_data.c — the criteo and libsvm64 readers: keys as
 * feature_hash.h makes them (log buckets, fields kept apart, ids near 2^64),
 * every refusal with its exact "file:line: ..." message, non-regular files
 * refused unread, streams that give each rank exactly the rows of its
 * in-memory shard (stride and block, any batch size, again after a rewind),
 * batches that stop before a row that does not fit, and the example jobs
 * clicks_logistic.yaml and clicks_fm.yaml accepted by the job loader. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "feature_hash.h"
#include "job.h"
#include "sparse_data.h"

/* Writes text (len bytes) to a new temporary file; its path goes to path
 * (64 bytes). */
static void temp_write(char *path, const char *text, size_t len)
{
    strcpy(path, "/tmp/test_sparse_data.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static void temp_file(char *path, const char *text)
{
    temp_write(path, text, strlen(text));
}

/* A criteo line: label, then 13 integer and 26 categorical fields given
 * as one string each ("" for missing), joined by tabs. */
static void criteo_line(char *buf, size_t cap, const char *label, const char *const ints[13],
                        const char *const cats[26])
{
    int n = snprintf(buf, cap, "%s", label);
    for (int i = 0; i < 13; i++)
        n += snprintf(buf + n, cap - (size_t)n, "\t%s", ints[i]);
    for (int j = 0; j < 26; j++)
        n += snprintf(buf + n, cap - (size_t)n, "\t%s", cats[j]);
    snprintf(buf + n, cap - (size_t)n, "\n");
}

static const char *const NO_INTS[13] = {"", "", "", "", "", "", "", "", "", "", "", "", ""};
static const char *const NO_CATS[26] = {"", "", "", "", "", "", "", "", "", "", "", "", "",
                                        "", "", "", "", "", "", "", "", "", "", "", "", ""};

/* Reads text in format; returns the code, fills err; path gets the file's
 * name (removed again). */
static int read_text(const char *text, ps_data_format format, ps_sparse_data **d, ps_error *err,
                     char *path)
{
    temp_file(path, text);
    int rc = ps_sparse_read(path, format, NULL, d, err);
    unlink(path);
    return rc;
}

/* Asserts that reading text fails with code and "<path>:<what>". */
static void assert_refused(const char *text, ps_data_format format, int code, const char *what)
{
    char path[64], want[512];
    ps_sparse_data *d = (ps_sparse_data *)1;
    ps_error err;
    ck_assert_int_eq(read_text(text, format, &d, &err, path), code);
    ck_assert_ptr_null(d);
    snprintf(want, sizeof want, "%s:%s", path, what);
    ck_assert_str_eq(err.msg, want);
}

/* ---- hashing and buckets ---- */

START_TEST(buckets_follow_the_criteo_convention)
{
    ck_assert_int_eq(ps_feature_bucket(-7), -1);
    ck_assert_int_eq(ps_feature_bucket(-1), -1);
    ck_assert_int_eq(ps_feature_bucket(INT64_MIN), -1);
    ck_assert_int_eq(ps_feature_bucket(0), 0);
    ck_assert_int_eq(ps_feature_bucket(1), 1);
    ck_assert_int_eq(ps_feature_bucket(2), 2);
    ck_assert_int_eq(ps_feature_bucket(3), 1); /* ln 3 = 1.0986, squared 1.207 */
    ck_assert_int_eq(ps_feature_bucket(7), 3); /* 3.787 */
    ck_assert_int_eq(ps_feature_bucket(8), 4); /* 4.324 */
    ck_assert_int_eq(ps_feature_bucket(100), 21);
    ck_assert_int_eq(ps_feature_bucket(1000000), 190);
    ck_assert_int_eq(ps_feature_bucket(INT64_MAX), 1906);
}
END_TEST

START_TEST(every_bucket_starts_at_the_first_integer_above_its_bound)
{
    /* bucket n >= 2 begins at ceil(e^sqrt(n)), found in extended precision,
     * for every bucket up to 1e13 (895); above it neighbours' ln(v)^2 come
     * closer than a double's resolution */
    for (int64_t n = 2; n <= 895; n++) {
        int64_t first = (int64_t)ceill(expl(sqrtl((long double)n)));
        ck_assert_msg(ps_feature_bucket(first) == n, "bucket of %lld is %lld, not %lld",
                      (long long)first, (long long)ps_feature_bucket(first), (long long)n);
        if (first - 1 >= 3)
            ck_assert_msg(ps_feature_bucket(first - 1) == n - 1, "bucket of %lld is %lld",
                          (long long)(first - 1), (long long)ps_feature_bucket(first - 1));
    }
    /* ln(2416049438547)^2 = 812.99999999999992697...: glibc's log on
     * x86-64 says 813, and might say 812 on another CPU; ours says 812
     * everywhere */
    ck_assert_int_eq(ps_feature_bucket(INT64_C(2416049438547)), 812);
    ck_assert_int_eq(ps_feature_bucket(INT64_C(2416049438548)), 813);
}
END_TEST

START_TEST(the_bucket_log_is_within_a_few_ulps_of_ln)
{
    const double xs[] = {3, 7, 10, 1e6, 2416049438547.0, 9.2e18, 0.001, 1.5, 0.75};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        double want = (double)logl((long double)xs[i]);
        ck_assert_double_eq_tol(ps_feature_ln(xs[i]), want, 4 * fabs(want) * 0x1p-52 + 1e-300);
    }
    ck_assert_double_eq(ps_feature_ln(1.0), 0.0);
}
END_TEST

START_TEST(equal_values_in_different_fields_get_different_keys)
{
    ck_assert_uint_ne(ps_feature_hash(13, "68fd1e64", 8), ps_feature_hash(14, "68fd1e64", 8));
    ck_assert_uint_ne(ps_feature_hash_u64(0, 5), ps_feature_hash_u64(1, 5));
    ck_assert_uint_eq(ps_feature_hash(13, "68fd1e64", 8), ps_feature_hash(13, "68fd1e64", 8));
    /* the number's bytes little-endian, seeded by the field */
    unsigned char le[8] = {0x2a, 0, 0, 0, 0, 0, 0, 0};
    ck_assert_uint_eq(ps_feature_hash_u64(3, 42),
                      XXH3_64bits_withSeed(le, 8, PS_FEATURE_HASH_SEED + 3));
    /* and through the reader: C1 = C2 and I1 = I2 in one row */
    const char *ints[13] = {"5", "5", "", "", "", "", "", "", "", "", "", "", ""};
    const char *cats[26] = {"68fd1e64", "68fd1e64", "", "", "", "", "", "", "", "", "", "", "",
                            "",         "",         "", "", "", "", "", "", "", "", "", "", ""};
    char line[512], path[64];
    criteo_line(line, sizeof line, "1", ints, cats);
    ps_sparse_data *d = NULL;
    ps_error err;
    ck_assert_int_eq(read_text(line, PS_FORMAT_CRITEO, &d, &err, path), 0);
    const ps_sparse_batch *b = ps_sparse_rows(d);
    ck_assert_uint_eq(b->offsets[1], 4);
    ck_assert_uint_ne(b->keys[0], b->keys[1]);
    ck_assert_uint_ne(b->keys[2], b->keys[3]);
    ps_sparse_destroy(&d);
}
END_TEST

/* ---- criteo ---- */

START_TEST(criteo_rows_hold_present_fields_keyed_by_bucket_and_string)
{
    const char *ints[13] = {"3", "", "-2", "", "", "", "", "", "", "", "", "", "1000000"};
    const char *cats[26] = {"68fd1e64", "", "", "", "", "", "", "", "", "", "", "", "",
                            "",         "", "", "", "", "", "", "", "", "", "", "", "ABC"};
    char text[2048], line2[512], path[64];
    criteo_line(text, sizeof text, "0", ints, cats);
    criteo_line(line2, sizeof line2, "1", NO_INTS, NO_CATS);
    strcat(text, "\n  \n");
    strcat(text, line2);
    ps_sparse_data *d = NULL;
    ps_error err;
    ck_assert_int_eq(read_text(text, PS_FORMAT_CRITEO, &d, &err, path), 0);
    const ps_sparse_batch *b = ps_sparse_rows(d);
    ck_assert_uint_eq(b->rows, 2);
    ck_assert_ptr_null(b->values); /* criteo's values are all 1 */
    ck_assert_uint_eq(b->offsets[0], 0);
    ck_assert_uint_eq(b->offsets[1], 5);
    ck_assert_uint_eq(b->offsets[2], 5); /* a row of missing fields has no feature */
    ck_assert_float_eq(b->labels[0], 0.0f);
    ck_assert_float_eq(b->labels[1], 1.0f);
    ck_assert_uint_eq(b->keys[0], ps_feature_hash_u64(0, 1));                     /* I1 = 3 */
    ck_assert_uint_eq(b->keys[1], ps_feature_hash_u64(2, (uint64_t)INT64_C(-1))); /* I3 = -2 */
    ck_assert_uint_eq(b->keys[2], ps_feature_hash_u64(12, 190));                  /* I13 = 1e6 */
    ck_assert_uint_eq(b->keys[3], ps_feature_hash(13, "68fd1e64", 8));            /* C1 */
    ck_assert_uint_eq(b->keys[4], ps_feature_hash(38, "ABC", 3));                 /* C26 */
    ck_assert_uint_eq(b->lines[0], 1);
    ck_assert_uint_eq(b->lines[1], 4); /* after an empty and a blank line */
    char where[128], want[128];
    ps_sparse_row_where(d, 1, where, sizeof where);
    snprintf(want, sizeof want, "%s:4", path);
    ck_assert_str_eq(where, want);
    ps_sparse_row_where(d, 2, where, sizeof where);
    snprintf(want, sizeof want, "%s: row 3", path);
    ck_assert_str_eq(where, want);
    ck_assert_int_eq(ps_sparse_format(d), PS_FORMAT_CRITEO);
    ps_sparse_destroy(&d);
    ck_assert_ptr_null(d);
    ps_sparse_destroy(&d);
}
END_TEST

START_TEST(criteo_values_in_one_bucket_share_a_key)
{
    const char *a[13] = {"1", "", "", "", "", "", "", "", "", "", "", "", ""};
    const char *b3[13] = {"3", "", "", "", "", "", "", "", "", "", "", "", ""};
    const char *c7[13] = {"7", "", "", "", "", "", "", "", "", "", "", "", ""};
    const char *c8[13] = {"8", "", "", "", "", "", "", "", "", "", "", "", ""};
    char text[4096], line[512], path[64];
    text[0] = '\0';
    const char *const *rows[] = {a, b3, c7, c8};
    for (int i = 0; i < 4; i++) {
        criteo_line(line, sizeof line, "1", rows[i], NO_CATS);
        strcat(text, line);
    }
    ps_sparse_data *d = NULL;
    ps_error err;
    ck_assert_int_eq(read_text(text, PS_FORMAT_CRITEO, &d, &err, path), 0);
    const uint64_t *k = ps_sparse_rows(d)->keys;
    ck_assert_uint_eq(k[0], k[1]); /* 1 and 3: bucket 1 */
    ck_assert_uint_ne(k[1], k[2]); /* 3 and 7: buckets 1 and 3 */
    ck_assert_uint_ne(k[2], k[3]); /* 7 and 8: buckets 3 and 4 */
    ps_sparse_destroy(&d);
}
END_TEST

START_TEST(criteo_refusals_name_file_line_and_field)
{
    char text[1024], good[512];
    criteo_line(good, sizeof good, "1", NO_INTS, NO_CATS);
    /* 39 fields */
    snprintf(text, sizeof text, "%s%.*s\n", good, (int)strlen(good) - 2, good);
    assert_refused(text, PS_FORMAT_CRITEO, PS_EDATA,
                   "2: expected 40 tab-separated fields (label, 13 integers, 26 categories), "
                   "found 39");
    assert_refused("1\t2\n", PS_FORMAT_CRITEO, PS_EDATA,
                   "1: expected 40 tab-separated fields (label, 13 integers, 26 categories), "
                   "found 2");
    criteo_line(text, sizeof text, "2", NO_INTS, NO_CATS);
    assert_refused(text, PS_FORMAT_CRITEO, PS_EDATA, "1: label \"2\" is not 0 or 1");
    criteo_line(text, sizeof text, "", NO_INTS, NO_CATS);
    assert_refused(text, PS_FORMAT_CRITEO, PS_EDATA, "1: label \"\" is not 0 or 1");
    criteo_line(text, sizeof text, "1.0", NO_INTS, NO_CATS);
    assert_refused(text, PS_FORMAT_CRITEO, PS_EDATA, "1: label \"1.0\" is not 0 or 1");

    const char *ints[13] = {"", "", "", "1.5", "", "", "", "", "", "", "", "", ""};
    criteo_line(text, sizeof text, "0", ints, NO_CATS);
    assert_refused(text, PS_FORMAT_CRITEO, PS_EDATA, "1: field 5 (I4) \"1.5\" is not an integer");
    ints[3] = " 7";
    criteo_line(text, sizeof text, "0", ints, NO_CATS);
    assert_refused(text, PS_FORMAT_CRITEO, PS_EDATA, "1: field 5 (I4) \" 7\" is not an integer");
    ints[3] = "-";
    criteo_line(text, sizeof text, "0", ints, NO_CATS);
    assert_refused(text, PS_FORMAT_CRITEO, PS_EDATA, "1: field 5 (I4) \"-\" is not an integer");
    ints[3] = "";
    ints[12] = "9223372036854775808";
    criteo_line(text, sizeof text, "0", ints, NO_CATS);
    assert_refused(text, PS_FORMAT_CRITEO, PS_EDATA,
                   "1: field 14 (I13) \"9223372036854775808\" is out of the range of 64-bit "
                   "integers");
    ints[12] = "-9223372036854775808"; /* INT64_MIN is fine */
    criteo_line(text, sizeof text, "0", ints, NO_CATS);
    char path[64];
    ps_sparse_data *d = NULL;
    ps_error err;
    ck_assert_int_eq(read_text(text, PS_FORMAT_CRITEO, &d, &err, path), 0);
    ck_assert_uint_eq(ps_sparse_rows(d)->keys[0], ps_feature_hash_u64(12, UINT64_MAX));
    ps_sparse_destroy(&d);

    const char *cats[26] = {"", "", "", "", "", "68fd1e6g", "", "", "", "", "", "", "",
                            "", "", "", "", "", "",         "", "", "", "", "", "", ""};
    criteo_line(text, sizeof text, "0", NO_INTS, cats);
    assert_refused(text, PS_FORMAT_CRITEO, PS_EDATA,
                   "1: field 20 (C6) \"68fd1e6g\" is not a hexadecimal string");
    cats[5] = "";
    cats[25] = "0123456789abcdef0123456789abcdef0123456789abcdef-";
    criteo_line(text, sizeof text, "0", NO_INTS, cats);
    assert_refused(text, PS_FORMAT_CRITEO, PS_EDATA,
                   "1: field 40 (C26) \"0123456789abcdef0123456789abcdef01234567...\" is not a "
                   "hexadecimal string");
}
END_TEST

START_TEST(criteo_carriage_returns_are_line_ends_and_nul_bytes_refused)
{
    char text[1024], path[64], want[128];
    criteo_line(text, sizeof text, "1", NO_INTS, NO_CATS);
    text[strlen(text) - 1] = '\r';
    strcat(text, "\n");
    ps_sparse_data *d = NULL;
    ps_error err;
    ck_assert_int_eq(read_text(text, PS_FORMAT_CRITEO, &d, &err, path), 0);
    ck_assert_uint_eq(ps_sparse_rows(d)->rows, 1);
    ps_sparse_destroy(&d);
    size_t len = strlen(text);
    text[3] = '\0';
    temp_write(path, text, len);
    ck_assert_int_eq(ps_sparse_read(path, PS_FORMAT_CRITEO, NULL, &d, &err), PS_EDATA);
    snprintf(want, sizeof want, "%s:1: line contains a NUL byte", path);
    ck_assert_str_eq(err.msg, want);
    unlink(path);
}
END_TEST

START_TEST(an_over_long_line_is_refused_with_the_dense_readers_cap)
{
    size_t len = ((size_t)1 << 20) + 10;
    char *text = malloc(len + 1);
    memset(text, '1', len);
    text[len] = '\0';
    assert_refused(text, PS_FORMAT_CRITEO, PS_EDATA,
                   "1: line longer than 1048576 bytes (1 MiB); not a text data file?");
    memcpy(text, "1\n1 ", 4);
    assert_refused(text, PS_FORMAT_LIBSVM64, PS_EDATA,
                   "2: line longer than 1048576 bytes (1 MiB); not a text data file?");
    free(text);
}
END_TEST

START_TEST(files_without_rows_and_missing_files_are_refused)
{
    char path[64], want[128];
    ps_sparse_data *d = NULL;
    ps_error err;
    ck_assert_int_eq(read_text("\n   \n", PS_FORMAT_CRITEO, &d, &err, path), PS_EDATA);
    snprintf(want, sizeof want, "%s: no data rows", path);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(read_text("# only a comment\n\t\n", PS_FORMAT_LIBSVM64, &d, &err, path),
                     PS_EDATA);
    snprintf(want, sizeof want, "%s: no data rows", path);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(ps_sparse_read("/nonexistent/c.tsv", PS_FORMAT_CRITEO, NULL, &d, &err),
                     PS_EIO);
    ck_assert_str_eq(err.msg, "/nonexistent/c.tsv: No such file or directory");
    ck_assert_int_eq(ps_sparse_read("/nonexistent/c.tsv", PS_FORMAT_CSV, NULL, &d, &err),
                     PS_EINVAL);
    ck_assert_str_eq(err.msg, "/nonexistent/c.tsv: a sparse data set is in format criteo or "
                              "libsvm64");
    ck_assert_ptr_null(d);
}
END_TEST

START_TEST(non_regular_files_are_refused_unread)
{
    /* nothing ever writes the FIFO: opening it to read would block forever */
    char dir[64], fifo[96], want[160];
    strcpy(dir, "/tmp/test_sparse_data.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(fifo, sizeof fifo, "%s/train.tsv", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    ps_sparse_data *d = NULL;
    ps_sparse_stream *s = NULL;
    ps_error err;
    ck_assert_int_eq(ps_sparse_read(fifo, PS_FORMAT_CRITEO, NULL, &d, &err), PS_EDATA);
    snprintf(want, sizeof want, "%s: is a FIFO, not a data file", fifo);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(
        ps_sparse_stream_open(fifo, PS_FORMAT_LIBSVM64, PS_SHARD_STRIDE, 0, 1, NULL, &s, &err),
        PS_EDATA);
    ck_assert_str_eq(err.msg, want);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(ps_sparse_read(dir, PS_FORMAT_CRITEO, NULL, &d, &err), PS_EDATA);
    snprintf(want, sizeof want, "%s: is a folder, not a data file", dir);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(ps_sparse_read("/dev/zero", PS_FORMAT_CRITEO, NULL, &d, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, "/dev/zero: is a character device, not a data file");
    ck_assert_ptr_null(d);
    unlink(fifo);
    rmdir(dir);
}
END_TEST

START_TEST(a_set_stop_flag_interrupts_the_read)
{
    char path[64], want[128];
    temp_file(path, "1 5:1\n");
    volatile sig_atomic_t stop = 1;
    ps_sparse_data *d = NULL;
    ps_error err;
    ck_assert_int_eq(ps_sparse_read(path, PS_FORMAT_LIBSVM64, &stop, &d, &err), PS_EINTR);
    snprintf(want, sizeof want, "%s:1: reading interrupted", path);
    ck_assert_str_eq(err.msg, want);
    ck_assert_ptr_null(d);
    unlink(path);
}
END_TEST

/* ---- libsvm64 ---- */

START_TEST(libsvm64_ids_near_two_to_the_64_are_keys_with_their_values)
{
    char path[64];
    ps_sparse_data *d = NULL;
    ps_error err;
    ck_assert_int_eq(read_text("1 0:0.25 18446744073709551614:-2 18446744073709551615:1e3\n"
                               "# a comment line\n"
                               "-1\t7:1 # the label -1 reads as 0\n"
                               "0\n",
                               PS_FORMAT_LIBSVM64, &d, &err, path),
                     0);
    const ps_sparse_batch *b = ps_sparse_rows(d);
    ck_assert_uint_eq(b->rows, 3);
    ck_assert_ptr_nonnull(b->values);
    ck_assert_uint_eq(b->offsets[1], 3);
    ck_assert_uint_eq(b->offsets[2], 4);
    ck_assert_uint_eq(b->offsets[3], 4);
    ck_assert_uint_eq(b->keys[0], ps_feature_hash_u64(0, 0));
    ck_assert_uint_eq(b->keys[1], ps_feature_hash_u64(0, UINT64_MAX - 1));
    ck_assert_uint_eq(b->keys[2], ps_feature_hash_u64(0, UINT64_MAX));
    ck_assert_uint_eq(b->keys[3], ps_feature_hash_u64(0, 7));
    ck_assert_float_eq(b->values[0], 0.25f);
    ck_assert_float_eq(b->values[1], -2.0f);
    ck_assert_float_eq(b->values[2], 1000.0f);
    ck_assert_float_eq(b->labels[0], 1.0f);
    ck_assert_float_eq(b->labels[1], 0.0f);
    ck_assert_float_eq(b->labels[2], 0.0f);
    ck_assert_uint_eq(b->lines[1], 3);
    ck_assert_uint_eq(b->lines[2], 4);
    ps_sparse_destroy(&d);
}
END_TEST

START_TEST(libsvm64_refusals_name_file_and_line)
{
    assert_refused("1 3:1\n2 4:1\n", PS_FORMAT_LIBSVM64, PS_EDATA,
                   "2: label \"2\" is not 0 or 1 (-1 reads as 0)");
    assert_refused("yes 4:1\n", PS_FORMAT_LIBSVM64, PS_EDATA,
                   "1: label \"yes\" is not 0 or 1 (-1 reads as 0)");
    assert_refused("1 4\n", PS_FORMAT_LIBSVM64, PS_EDATA, "1: \"4\" is not an id:value pair");
    assert_refused("1 -4:1\n", PS_FORMAT_LIBSVM64, PS_EDATA,
                   "1: id \"-4\" is not an unsigned integer");
    assert_refused("1 :1\n", PS_FORMAT_LIBSVM64, PS_EDATA, "1: id \"\" is not an unsigned integer");
    assert_refused("1 18446744073709551616:1\n", PS_FORMAT_LIBSVM64, PS_EDATA,
                   "1: id \"18446744073709551616\" is out of the range of 64-bit unsigned "
                   "integers");
    assert_refused("0 9:1 9:2\n", PS_FORMAT_LIBSVM64, PS_EDATA,
                   "1: id 9 follows id 9: ids must increase");
    assert_refused("0 18446744073709551615:1 3:2\n", PS_FORMAT_LIBSVM64, PS_EDATA,
                   "1: id 3 follows id 18446744073709551615: ids must increase");
    assert_refused("0 9:abc\n", PS_FORMAT_LIBSVM64, PS_EDATA,
                   "1: value \"abc\" of id 9 is not a number");
    assert_refused("0 9:\n", PS_FORMAT_LIBSVM64, PS_EDATA, "1: value \"\" of id 9 is not a number");
    assert_refused("0 9:1:2\n", PS_FORMAT_LIBSVM64, PS_EDATA,
                   "1: value \"1:2\" of id 9 is not a number");
    assert_refused("0 9:inf\n", PS_FORMAT_LIBSVM64, PS_EDATA,
                   "1: value \"inf\" of id 9 is not a finite number");
    assert_refused("0 9:1e99\n", PS_FORMAT_LIBSVM64, PS_EDATA,
                   "1: value \"1e99\" of id 9 is not a finite number");
}
END_TEST

/* ---- streams against in-memory shards ---- */

/* A criteo file of n rows with mixed missing fields and a blank line now
 * and then, drawn from a fixed LCG. */
static void criteo_file(char *path, size_t n)
{
    strcpy(path, "/tmp/test_sparse_data.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    uint64_t x = 99;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        fprintf(f, "%d", (int)(x >> 63));
        for (int k = 0; k < 39; k++) {
            x = x * 6364136223846793005u + 1442695040888963407u;
            unsigned r = (unsigned)(x >> 40);
            if (r % 4 == 0)
                fputs("\t", f);
            else if (k < 13)
                fprintf(f, "\t%d", (int)(r % 300) - 5);
            else
                fprintf(f, "\t%08x", r % 50);
        }
        fputs(i % 7 == 3 ? "\n\n" : "\n", f);
    }
    fclose(f);
}

static void libsvm64_file(char *path, size_t n)
{
    strcpy(path, "/tmp/test_sparse_data.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    uint64_t x = 5;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        fprintf(f, "%s", x >> 63 ? "1" : "-1");
        unsigned long long id = x % 1000;
        int k = (int)((x >> 20) % 12);
        for (int j = 0; j < k; j++) {
            fprintf(f, " %llu:%d.5", id, j - 3);
            id += 1 + (x >> (j + 3)) % 1000000007u;
        }
        fputs(i % 5 == 0 ? " # note\n" : "\n", f);
    }
    fclose(f);
}

/* Streams every row of (kind, rank, workers) in batches of at most
 * batch_rows and compares them one by one with the in-memory shard. */
static void assert_stream_matches_shard(const char *path, ps_data_format format,
                                        const ps_sparse_data *all, ps_shard_kind kind,
                                        uint32_t rank, uint32_t workers, size_t batch_rows)
{
    ps_sparse_data *shard = NULL;
    ps_error err;
    ck_assert_int_eq(ps_sparse_shard(all, kind, rank, workers, &shard, &err), 0);
    const ps_sparse_batch *want = ps_sparse_rows(shard);
    ps_sparse_stream *s = NULL;
    ck_assert_int_eq(ps_sparse_stream_open(path, format, kind, rank, workers, NULL, &s, &err), 0);
    ps_sparse_batch b;
    /* any one row fits (criteo's 39, these libsvm64 rows' 11), not always
     * batch_rows of them: batches also end early on features */
    ck_assert_int_eq(ps_sparse_batch_init(&b, format, batch_rows, batch_rows * 10 + 40, &err), 0);
    for (int pass = 0; pass < 2; pass++) {
        size_t row = 0, n;
        for (;;) {
            ck_assert_int_eq(ps_sparse_stream_next(s, batch_rows, &b, &n, &err), 0);
            ck_assert_uint_eq(n, b.rows);
            if (n == 0)
                break;
            for (size_t i = 0; i < n; i++, row++) {
                ck_assert_uint_lt(row, want->rows);
                size_t k = b.offsets[i + 1] - b.offsets[i];
                ck_assert_uint_eq(k, want->offsets[row + 1] - want->offsets[row]);
                ck_assert_int_eq(memcmp(b.keys + b.offsets[i], want->keys + want->offsets[row],
                                        k * sizeof(uint64_t)),
                                 0);
                if (want->values != NULL)
                    ck_assert_int_eq(memcmp(b.values + b.offsets[i],
                                            want->values + want->offsets[row], k * sizeof(float)),
                                     0);
                ck_assert_float_eq(b.labels[i], want->labels[row]);
                ck_assert_uint_eq(b.lines[i], want->lines[row]);
            }
        }
        ck_assert_uint_eq(row, want->rows);
        ck_assert_uint_eq(ps_sparse_stream_rows_done(s), want->rows);
        ck_assert_int_eq(ps_sparse_stream_next(s, batch_rows, &b, &n, &err), 0);
        ck_assert_uint_eq(n, 0);
        ck_assert_int_eq(ps_sparse_stream_rewind(s, &err), 0);
        ck_assert_uint_eq(ps_sparse_stream_rows_done(s), 0);
    }
    ps_sparse_batch_fini(&b);
    ps_sparse_stream_close(&s);
    ck_assert_ptr_null(s);
    ps_sparse_stream_close(&s);
    ps_sparse_destroy(&shard);
}

static void assert_streams_match_shards(const char *path, ps_data_format format, size_t rows)
{
    ps_sparse_data *all = NULL;
    ps_error err;
    ck_assert_int_eq(ps_sparse_read(path, format, NULL, &all, &err), 0);
    ck_assert_uint_eq(ps_sparse_rows(all)->rows, rows);
    const uint32_t worker_counts[] = {1, 2, 3, 7, 1200};
    const size_t batches[] = {1, 5, 64, 5000};
    for (size_t w = 0; w < 5; w++) {
        uint32_t workers = worker_counts[w];
        for (uint32_t rank = 0; rank<workers; rank += workers> 8 ? 397 : 1) {
            for (int kind = 0; kind < 2; kind++)
                assert_stream_matches_shard(path, format, all, (ps_shard_kind)kind, rank, workers,
                                            batches[(rank + (uint32_t)kind) % 4]);
        }
    }
    ps_sparse_destroy(&all);
}

START_TEST(streams_give_each_rank_the_rows_of_its_in_memory_shard)
{
    char path[64];
    criteo_file(path, 1000);
    assert_streams_match_shards(path, PS_FORMAT_CRITEO, 1000);
    unlink(path);
    libsvm64_file(path, 777);
    assert_streams_match_shards(path, PS_FORMAT_LIBSVM64, 777);
    unlink(path);
}
END_TEST

START_TEST(shards_split_rows_by_stride_and_block)
{
    char path[64];
    criteo_file(path, 10);
    ps_sparse_data *all = NULL, *s = NULL;
    ps_error err;
    ck_assert_int_eq(ps_sparse_read(path, PS_FORMAT_CRITEO, NULL, &all, &err), 0);
    const ps_sparse_batch *a = ps_sparse_rows(all);
    /* 10 rows over 3 workers: stride rank 1 gets 1, 4, 7; block rank 1 [3, 6) */
    ck_assert_int_eq(ps_sparse_shard(all, PS_SHARD_STRIDE, 1, 3, &s, &err), 0);
    ck_assert_uint_eq(ps_sparse_rows(s)->rows, 3);
    ck_assert_uint_eq(ps_sparse_rows(s)->lines[2], a->lines[7]);
    ps_sparse_destroy(&s);
    ck_assert_int_eq(ps_sparse_shard(all, PS_SHARD_BLOCK, 1, 3, &s, &err), 0);
    ck_assert_uint_eq(ps_sparse_rows(s)->rows, 3);
    ck_assert_uint_eq(ps_sparse_rows(s)->lines[0], a->lines[3]);
    ps_sparse_destroy(&s);
    ck_assert_int_eq(ps_sparse_shard(all, PS_SHARD_STRIDE, 3, 3, &s, &err), PS_EINVAL);
    ck_assert_str_eq(err.msg, "rank 3 is outside [0, 3)");
    ck_assert_ptr_null(s);
    ps_sparse_stream *st = NULL;
    ck_assert_int_eq(
        ps_sparse_stream_open(path, PS_FORMAT_CRITEO, PS_SHARD_BLOCK, 0, 0, NULL, &st, &err),
        PS_EINVAL);
    ck_assert_str_eq(err.msg, "rank 0 is outside [0, 0)");
    ck_assert_ptr_null(st);
    ps_sparse_destroy(&all);
    unlink(path);
}
END_TEST

START_TEST(a_batch_stops_before_a_row_that_does_not_fit)
{
    char path[64], want[128];
    temp_file(path, "1 1:1 2:1 3:1\n0 1:1 2:1\n1 1:1 2:1 3:1 4:1 5:1 6:1\n");
    ps_sparse_stream *s = NULL;
    ps_error err;
    ck_assert_int_eq(
        ps_sparse_stream_open(path, PS_FORMAT_LIBSVM64, PS_SHARD_STRIDE, 0, 1, NULL, &s, &err), 0);
    ps_sparse_batch b;
    ck_assert_int_eq(ps_sparse_batch_init(&b, PS_FORMAT_LIBSVM64, 10, 5, &err), 0);
    size_t n;
    ck_assert_int_eq(ps_sparse_stream_next(s, 10, &b, &n, &err), 0);
    ck_assert_uint_eq(n, 2); /* 3 + 2 features fill the 5 */
    ck_assert_uint_eq(b.offsets[2], 5);
    ck_assert_int_eq(ps_sparse_stream_next(s, 10, &b, &n, &err), PS_EINVAL);
    snprintf(want, sizeof want, "%s:3: the row has more features than a batch of 5 holds", path);
    ck_assert_str_eq(err.msg, want);
    ck_assert_uint_eq(n, 0);
    /* max_rows bounds a batch too */
    ck_assert_int_eq(ps_sparse_stream_rewind(s, &err), 0);
    ck_assert_int_eq(ps_sparse_stream_next(s, 1, &b, &n, &err), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(b.offsets[1], 3);
    char where[128];
    ps_sparse_stream_row_where(s, &b, 0, where, sizeof where);
    snprintf(want, sizeof want, "%s:1", path);
    ck_assert_str_eq(where, want);
    ps_sparse_batch_fini(&b);
    /* a criteo batch does not take libsvm64 rows */
    ck_assert_int_eq(ps_sparse_batch_init(&b, PS_FORMAT_CRITEO, 10, 390, &err), 0);
    ck_assert_int_eq(ps_sparse_stream_next(s, 10, &b, &n, &err), PS_EINVAL);
    snprintf(want, sizeof want, "%s: the batch is not one of format libsvm64", path);
    ck_assert_str_eq(err.msg, want);
    ps_sparse_batch_fini(&b);
    ps_sparse_batch_fini(&b);
    ps_sparse_stream_close(&s);
    unlink(path);
}
END_TEST

START_TEST(a_stream_parses_only_its_own_rows)
{
    /* row 1 (rank 1's) is malformed: rank 0 never parses it, rank 1 says
     * where it is; the in-memory read refuses the file */
    char path[64], want[160];
    temp_file(path, "1 4:1\n1 4:x\n0 5:1\n");
    ps_sparse_stream *s = NULL;
    ps_sparse_batch b;
    ps_error err;
    size_t n;
    ck_assert_int_eq(ps_sparse_batch_init(&b, PS_FORMAT_LIBSVM64, 8, 8, &err), 0);
    ck_assert_int_eq(
        ps_sparse_stream_open(path, PS_FORMAT_LIBSVM64, PS_SHARD_STRIDE, 0, 2, NULL, &s, &err), 0);
    ck_assert_int_eq(ps_sparse_stream_next(s, 8, &b, &n, &err), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(b.lines[1], 3);
    ps_sparse_stream_close(&s);
    ck_assert_int_eq(
        ps_sparse_stream_open(path, PS_FORMAT_LIBSVM64, PS_SHARD_STRIDE, 1, 2, NULL, &s, &err), 0);
    ck_assert_int_eq(ps_sparse_stream_next(s, 8, &b, &n, &err), PS_EDATA);
    snprintf(want, sizeof want, "%s:2: value \"x\" of id 4 is not a number", path);
    ck_assert_str_eq(err.msg, want);
    ck_assert_uint_eq(n, 0);
    ps_sparse_stream_close(&s);
    ps_sparse_data *d = NULL;
    ck_assert_int_eq(ps_sparse_read(path, PS_FORMAT_LIBSVM64, NULL, &d, &err), PS_EDATA);
    ck_assert_str_eq(err.msg, want);
    ps_sparse_batch_fini(&b);
    unlink(path);
}
END_TEST

START_TEST(batch_init_refuses_dense_formats_and_empty_caps)
{
    ps_sparse_batch b;
    ps_error err;
    ck_assert_int_eq(ps_sparse_batch_init(&b, PS_FORMAT_CSV, 4, 4, &err), PS_EINVAL);
    ck_assert_str_eq(err.msg, "a sparse batch needs format criteo or libsvm64");
    ck_assert_int_eq(ps_sparse_batch_init(&b, PS_FORMAT_CRITEO, 0, 4, &err), PS_EINVAL);
    ck_assert_str_eq(err.msg, "a sparse batch needs room for a row and a feature");
    ck_assert_int_eq(ps_sparse_batch_init(&b, PS_FORMAT_CRITEO, SIZE_MAX / 2, 4, &err), PS_ENOMEM);
    ck_assert_ptr_null(b.keys);
    ck_assert_uint_eq(ps_sparse_row_features_max(PS_FORMAT_CRITEO), 39);
    ck_assert_uint_eq(ps_sparse_row_features_max(PS_FORMAT_LIBSVM64), 262144);
    ck_assert_uint_eq(ps_sparse_row_features_max(PS_FORMAT_IDX), 0);
    ck_assert(ps_sparse_format_ok(PS_FORMAT_LIBSVM64));
    ck_assert(!ps_sparse_format_ok(PS_FORMAT_LIBSVM));
}
END_TEST

/* ---- the example jobs ---- */

/* Loads config/examples/<name> as if it sat in dir, where the data files
 * are made empty (the loader only checks that they can be opened). */
static void load_example(const char *name, ps_job *job)
{
    char path[512], dir[64], data[128];
    snprintf(path, sizeof path, "%s/config/examples/%s", PS_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char text[16384];
    size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    ck_assert_uint_lt(len, sizeof text);
    const char *first = "# data: psgen clicks --rows 2000000 --test-rows 200000 --seed 7 --out "
                        "data/clicks\n";
    ck_assert_int_eq(strncmp(text, first, strlen(first)), 0);
    strcpy(dir, "/tmp/test_sparse_data.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(data, sizeof data, "%s/data", dir);
    ck_assert_int_eq(mkdir(data, 0700), 0);
    const char *files[] = {"clicks.train.tsv", "clicks.test.tsv"};
    for (int i = 0; i < 2; i++) {
        snprintf(data, sizeof data, "%s/data/%s", dir, files[i]);
        FILE *d = fopen(data, "w");
        ck_assert_ptr_nonnull(d);
        fclose(d);
    }
    ps_error err;
    int rc = ps_job_parse(text, len, name, dir, job, &err);
    ck_assert_msg(rc == 0, "%s: %s", name, err.msg);
    char want[128];
    snprintf(want, sizeof want, "%s/data/clicks.train.tsv", dir);
    ck_assert_str_eq(job->data.train, want);
    for (int i = 0; i < 2; i++) {
        snprintf(data, sizeof data, "%s/data/%s", dir, files[i]);
        unlink(data);
    }
    snprintf(data, sizeof data, "%s/data", dir);
    rmdir(data);
    rmdir(dir);
}

START_TEST(the_click_example_jobs_load)
{
    ps_job job;
    load_example("clicks_logistic.yaml", &job);
    ck_assert_int_eq(job.model.type, PS_MODEL_SPARSE_LOGISTIC);
    ck_assert_int_eq(job.data.format, PS_FORMAT_CRITEO);
    ck_assert_uint_eq(job.workers, 2);
    ck_assert_uint_eq(job.nservers, 2);
    ck_assert_int_eq(job.optimizer.type, PS_OPTIM_FTRL);
    ck_assert_double_eq(job.optimizer.lr, 0.05);
    ck_assert_double_eq(job.optimizer.beta, 1.0);
    ck_assert_double_eq(job.optimizer.l1, 1.0);
    ck_assert_double_eq(job.optimizer.l2, 1.0);
    ck_assert(ps_job_is_sparse(&job));
    load_example("clicks_fm.yaml", &job);
    ck_assert_int_eq(job.model.type, PS_MODEL_FM);
    ck_assert_uint_eq(job.model.factors, 8);
    ck_assert_int_eq(job.data.format, PS_FORMAT_CRITEO);
    ck_assert_uint_eq(job.workers, 2);
    ck_assert_uint_eq(job.nservers, 2);
    ck_assert_int_eq(job.optimizer.type, PS_OPTIM_FTRL);
    ck_assert_uint_eq(job.sparse.min_count, 10);
}
END_TEST

static Suite *sparse_data_suite(void)
{
    Suite *s = suite_create("sparse_data");
    TCase *tc = tcase_create("sparse_data");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, buckets_follow_the_criteo_convention);
    tcase_add_test(tc, every_bucket_starts_at_the_first_integer_above_its_bound);
    tcase_add_test(tc, the_bucket_log_is_within_a_few_ulps_of_ln);
    tcase_add_test(tc, equal_values_in_different_fields_get_different_keys);
    tcase_add_test(tc, criteo_rows_hold_present_fields_keyed_by_bucket_and_string);
    tcase_add_test(tc, criteo_values_in_one_bucket_share_a_key);
    tcase_add_test(tc, criteo_refusals_name_file_line_and_field);
    tcase_add_test(tc, criteo_carriage_returns_are_line_ends_and_nul_bytes_refused);
    tcase_add_test(tc, an_over_long_line_is_refused_with_the_dense_readers_cap);
    tcase_add_test(tc, files_without_rows_and_missing_files_are_refused);
    tcase_add_test(tc, non_regular_files_are_refused_unread);
    tcase_add_test(tc, a_set_stop_flag_interrupts_the_read);
    tcase_add_test(tc, libsvm64_ids_near_two_to_the_64_are_keys_with_their_values);
    tcase_add_test(tc, libsvm64_refusals_name_file_and_line);
    tcase_add_test(tc, streams_give_each_rank_the_rows_of_its_in_memory_shard);
    tcase_add_test(tc, shards_split_rows_by_stride_and_block);
    tcase_add_test(tc, a_batch_stops_before_a_row_that_does_not_fit);
    tcase_add_test(tc, a_stream_parses_only_its_own_rows);
    tcase_add_test(tc, batch_init_refuses_dense_formats_and_empty_caps);
    tcase_add_test(tc, the_click_example_jobs_load);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(sparse_data_suite());
}
