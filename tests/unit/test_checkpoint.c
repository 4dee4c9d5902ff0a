/* test_checkpoint.c — checkpoint files: a round trip restores every array
 * and counter; a truncated, a bit-flipped, a foreign and a torn file are
 * each refused with a one-line warning and the previous checkpoint is used;
 * only the newest `keep` stay. */
#include <check.h>

#include "check_main.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"

#define N 1000

static char dir[256];
static float theta[N], state[N];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/ps-ckpt-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void arrays_set(ps_ckpt_array *a, float *t, float *s)
{
    memset(a, 0, 2 * sizeof *a);
    strcpy(a[0].name, "theta");
    a[0].data = t;
    a[0].count = N;
    strcpy(a[1].name, "m");
    a[1].data = s;
    a[1].count = N;
}

/* Writes a checkpoint of version v whose arrays hold v + i and -v - i. */
static void write_version(uint64_t v, uint32_t keep, char *path, size_t cap)
{
    for (int i = 0; i < N; i++) {
        theta[i] = (float)v + (float)i;
        state[i] = -(float)v - (float)i;
    }
    ps_ckpt_array a[2];
    arrays_set(a, theta, state);
    ps_ckpt_meta meta = {.job = "ckjob",
                         .shard = 1,
                         .key_lo = 10,
                         .key_hi = 10 + N,
                         .version = v,
                         .updates = v * 2,
                         .created_ms = 1234};
    ps_error err;
    uint64_t bytes = 0;
    ck_assert_int_eq(ps_checkpoint_write(dir, &meta, a, 2, keep, path, cap, &bytes, &err), 0);
    ck_assert_uint_eq(bytes, 128 + 2 * 40 + 2 * N * 4 + 16);
}

static int load(float *t, float *s, ps_ckpt_meta *meta, char *path, size_t cap)
{
    ps_ckpt_array a[2];
    arrays_set(a, t, s);
    ps_log quiet = {PS_LOG_ERROR, "test"};
    ps_error err;
    return ps_checkpoint_load(dir, "ckjob", 1, 10, 10 + N, a, 2, meta, path, cap, &quiet, &err);
}

static void flip_byte(const char *path, long offset)
{
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    unsigned char b;
    ck_assert_int_eq(pread(fd, &b, 1, offset), 1);
    b ^= 0x10;
    ck_assert_int_eq(pwrite(fd, &b, 1, offset), 1);
    close(fd);
}

START_TEST(round_trip_restores_arrays_and_counters)
{
    char path[512];
    write_version(42, 3, path, sizeof path);
    static float t[N], s[N];
    ps_ckpt_meta meta;
    char loaded[512];
    ck_assert_int_eq(load(t, s, &meta, loaded, sizeof loaded), 0);
    ck_assert_str_eq(loaded, path);
    ck_assert_uint_eq(meta.version, 42);
    ck_assert_uint_eq(meta.updates, 84);
    ck_assert_uint_eq(meta.created_ms, 1234);
    ck_assert_float_eq(t[0], 42.0f);
    ck_assert_float_eq(t[N - 1], 42.0f + N - 1);
    ck_assert_float_eq(s[7], -49.0f);
}
END_TEST

START_TEST(empty_folder_is_a_fresh_start)
{
    static float t[N], s[N];
    ps_ckpt_meta meta;
    ck_assert_int_eq(load(t, s, &meta, NULL, 0), 1);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/none", dir);
    ps_ckpt_array a[2];
    arrays_set(a, t, s);
    ps_error err;
    ck_assert_int_eq(
        ps_checkpoint_load(missing, "ckjob", 1, 10, 10 + N, a, 2, &meta, NULL, 0, NULL, &err), 1);
}
END_TEST

START_TEST(truncated_checkpoint_is_refused_and_previous_used)
{
    char old[512], newest[512];
    write_version(5, 3, old, sizeof old);
    write_version(6, 3, newest, sizeof newest);
    ck_assert_int_eq(truncate(newest, 4000), 0);
    ps_ckpt_array a[2];
    arrays_set(a, theta, state);
    ps_error err;
    ck_assert_int_eq(ps_checkpoint_verify(newest, "ckjob", 1, 10, 10 + N, a, 2, &err), PS_EPROTO);
    ck_assert_str_eq(err.msg, "4000 bytes, expected 8224 (truncated or torn)");
    static float t[N], s[N];
    ps_ckpt_meta meta;
    char loaded[512];
    ck_assert_int_eq(load(t, s, &meta, loaded, sizeof loaded), 0);
    ck_assert_str_eq(loaded, old);
    ck_assert_uint_eq(meta.version, 5);
    ck_assert_float_eq(t[3], 8.0f);
}
END_TEST

START_TEST(bit_flipped_checkpoint_is_refused_and_previous_used)
{
    char old[512], newest[512];
    write_version(5, 3, old, sizeof old);
    write_version(6, 3, newest, sizeof newest);
    flip_byte(newest, 128 + 80 + 4 * 500); /* inside θ */
    ps_ckpt_array a[2];
    arrays_set(a, theta, state);
    ps_error err;
    ck_assert_int_eq(ps_checkpoint_verify(newest, "ckjob", 1, 10, 10 + N, a, 2, &err), PS_EPROTO);
    ck_assert_str_eq(err.msg, "checksum mismatch (corrupt)");
    static float t[N], s[N];
    ps_ckpt_meta meta;
    ck_assert_int_eq(load(t, s, &meta, NULL, 0), 0);
    ck_assert_uint_eq(meta.version, 5);
    ck_assert_float_eq(s[0], -5.0f);
}
END_TEST

START_TEST(checkpoint_of_another_shard_is_refused)
{
    char path[512];
    write_version(9, 3, path, sizeof path);
    ps_ckpt_array a[2];
    arrays_set(a, theta, state);
    ps_error err;
    ck_assert_int_eq(ps_checkpoint_verify(path, "ckjob", 1, 0, N, a, 2, &err), PS_EPROTO);
    ck_assert_str_eq(err.msg, "belongs to job \"ckjob\" shard 1 keys [10, 1010)");
    a[1].count = N - 1;
    ck_assert_int_eq(ps_checkpoint_verify(path, "ckjob", 1, 10, 10 + N, a, 2, &err), PS_EPROTO);
    ck_assert_str_eq(err.msg, "array 1 is m[1000], this job has m[999]");
}
END_TEST

START_TEST(only_the_newest_keep_stay_and_leftover_temp_files_go)
{
    char path[512];
    for (uint64_t v = 1; v <= 5; v++)
        write_version(v, 2, path, sizeof path);
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s/.ckjob-shard1-00000000000000000009.ckpt.tmp", dir);
    FILE *f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    fputs("half a checkpoint", f);
    fclose(f);
    static float t[N], s[N];
    ps_ckpt_meta meta;
    ck_assert_int_eq(load(t, s, &meta, NULL, 0), 0);
    ck_assert_uint_eq(meta.version, 5);
    ck_assert_int_eq(access(tmp, F_OK), -1);
    char name[400];
    snprintf(name, sizeof name, "%s/ckjob-shard1-00000000000000000004.ckpt", dir);
    ck_assert_int_eq(access(name, F_OK), 0);
    snprintf(name, sizeof name, "%s/ckjob-shard1-00000000000000000003.ckpt", dir);
    ck_assert_int_eq(access(name, F_OK), -1);
}
END_TEST

START_TEST(all_checkpoints_corrupt_is_a_fresh_start)
{
    char path[512];
    write_version(3, 3, path, sizeof path);
    flip_byte(path, 0); /* the magic */
    static float t[N], s[N];
    ps_ckpt_meta meta;
    ck_assert_int_eq(load(t, s, &meta, NULL, 0), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, round_trip_restores_arrays_and_counters);
    tcase_add_test(tc, empty_folder_is_a_fresh_start);
    tcase_add_test(tc, truncated_checkpoint_is_refused_and_previous_used);
    tcase_add_test(tc, bit_flipped_checkpoint_is_refused_and_previous_used);
    tcase_add_test(tc, checkpoint_of_another_shard_is_refused);
    tcase_add_test(tc, only_the_newest_keep_stay_and_leftover_temp_files_go);
    tcase_add_test(tc, all_checkpoints_corrupt_is_a_fresh_start);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
