/* test_checkpoint.c — checkpoint files and the checkpointer: a round trip
 * restores every array and counter; a truncated, a bit-flipped and a torn
 * file are each refused with a one-line warning and the previous checkpoint
 * is used; pruning keeps the newest `keep` of the files psd verified or
 * wrote and touches no other; a folder holding another job's or model's
 * checkpoints is refused with nothing deleted; an unwritable folder is
 * refused at start and a failed write is reported; a NaN or inf is never
 * written over a good checkpoint. Sparse tables: their rows round-trip
 * (format 2), a corrupt table section is refused whole, a folder of
 * another table layout is refused like one of another dense layout, and
 * the checkpointer writes and loads a shard's tables. */
#include <check.h>

#include "check_main.h"
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "checkpointer.h"
#include "engine.h"
#include "job.h"
#include "store.h"
#include "table.h"
#include "util.h"

#define N 1000

static char dir[256];
static float theta[N], state[N];
static ps_ckpt_folder folder; /* as one psd run holds it */
static const ps_log quiet = {PS_LOG_ERROR, "test"};

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/ps-ckpt-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ps_error err;
    ck_assert_int_eq(ps_ckpt_folder_init(&folder, dir, 3, true, &err), 0);
}

static void teardown(void)
{
    ps_ckpt_folder_fini(&folder);
    char cmd[600];
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

static ps_ckpt_meta meta_of(const char *job, uint64_t v)
{
    ps_ckpt_meta meta = {.shard = 1,
                         .key_lo = 10,
                         .key_hi = 10 + N,
                         .version = v,
                         .updates = v * 2,
                         .created_ms = 1234};
    ps_strlcpy(meta.job, job, sizeof meta.job);
    return meta;
}

/* Writes a checkpoint of version v whose arrays hold v + i and -v - i. */
static void write_version(uint64_t v, char *path, size_t cap)
{
    for (int i = 0; i < N; i++) {
        theta[i] = (float)v + (float)i;
        state[i] = -(float)v - (float)i;
    }
    ps_ckpt_array a[2];
    arrays_set(a, theta, state);
    ps_ckpt_meta meta = meta_of("ckjob", v);
    ps_error err;
    uint64_t bytes = 0;
    ck_assert_int_eq(ps_checkpoint_write(&folder, &meta, a, 2, path, cap, &bytes, &err), 0);
    ck_assert_uint_eq(bytes, 128 + 2 * 40 + 2 * N * 4 + 16);
}

/* A new psd run on the folder: forgets what the last one knew, then loads. */
static int restart_and_load(float *t, float *s, ps_ckpt_meta *meta, char *path, size_t cap,
                            ps_error *err)
{
    uint32_t keep = folder.keep;
    ps_ckpt_folder_fini(&folder);
    ck_assert_int_eq(ps_ckpt_folder_init(&folder, dir, keep, true, err), 0);
    ps_ckpt_array a[2];
    arrays_set(a, t, s);
    return ps_checkpoint_load(&folder, "ckjob", 1, 10, 10 + N, a, 2, meta, path, cap, &quiet, err);
}

static int load(float *t, float *s, ps_ckpt_meta *meta, char *path, size_t cap)
{
    ps_error err;
    return restart_and_load(t, s, meta, path, cap, &err);
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

/* Copies the first n bytes of from to dir/name. */
static void copy_head(const char *from, const char *name, size_t n)
{
    static char buf[16384];
    FILE *in = fopen(from, "rb");
    ck_assert_ptr_nonnull(in);
    size_t got = fread(buf, 1, n < sizeof buf ? n : sizeof buf, in);
    fclose(in);
    char to[400];
    snprintf(to, sizeof to, "%s/%s", dir, name);
    FILE *out = fopen(to, "wb");
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(fwrite(buf, 1, got, out), got);
    fclose(out);
}

static bool exists(const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

START_TEST(round_trip_restores_arrays_and_counters)
{
    char path[512];
    write_version(42, path, sizeof path);
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
    ps_ckpt_folder missing;
    ps_error err;
    char none[300];
    snprintf(none, sizeof none, "%s/none", dir);
    ck_assert_int_eq(ps_ckpt_folder_init(&missing, none, 3, true, &err), 0);
    ck_assert_int_eq(rmdir(none), 0);
    ps_ckpt_array a[2];
    arrays_set(a, t, s);
    ck_assert_int_eq(
        ps_checkpoint_load(&missing, "ckjob", 1, 10, 10 + N, a, 2, &meta, NULL, 0, NULL, &err), 1);
    ps_ckpt_folder_fini(&missing);
}
END_TEST

START_TEST(truncated_checkpoint_is_refused_and_previous_used)
{
    char old[512], newest[512];
    write_version(5, old, sizeof old);
    write_version(6, newest, sizeof newest);
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

START_TEST(fifo_named_like_a_checkpoint_is_skipped_without_blocking)
{
    char old[512], newest[512];
    write_version(5, old, sizeof old);
    write_version(6, newest, sizeof newest);
    ck_assert_int_eq(unlink(newest), 0);
    ck_assert_int_eq(mkfifo(newest, 0600), 0); /* opened blocking, it would hang psd */
    ps_ckpt_array a[2];
    arrays_set(a, theta, state);
    ps_error err;
    ck_assert_int_eq(ps_checkpoint_verify(newest, "ckjob", 1, 10, 10 + N, a, 2, &err), PS_EPROTO);
    ck_assert_str_eq(err.msg, "a FIFO, not a checkpoint file");
    static float t[N], s[N];
    ps_ckpt_meta meta;
    char loaded[512];
    ck_assert_int_eq(load(t, s, &meta, loaded, sizeof loaded), 0);
    ck_assert_str_eq(loaded, old);
    ck_assert_uint_eq(meta.version, 5);
}
END_TEST

START_TEST(bit_flipped_checkpoint_is_refused_and_previous_used)
{
    char old[512], newest[512];
    write_version(5, old, sizeof old);
    write_version(6, newest, sizeof newest);
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

START_TEST(checkpoint_of_another_shard_fails_verification)
{
    char path[512];
    write_version(9, path, sizeof path);
    ps_ckpt_array a[2];
    arrays_set(a, theta, state);
    ps_error err;
    ck_assert_int_eq(ps_checkpoint_verify(path, "ckjob", 1, 0, N, a, 2, &err), PS_EJOB);
    ck_assert_str_eq(err.msg, "belongs to job \"ckjob\" shard 1 keys [10, 1010)");
    a[1].count = N - 1;
    ck_assert_int_eq(ps_checkpoint_verify(path, "ckjob", 1, 10, 10 + N, a, 2, &err), PS_EJOB);
    ck_assert_str_eq(err.msg, "array 1 is m[1000], this job has m[999]");
}
END_TEST

START_TEST(only_the_newest_keep_stay_and_leftover_temp_files_go)
{
    char path[512];
    folder.keep = 2;
    for (uint64_t v = 1; v <= 5; v++)
        write_version(v, path, sizeof path);
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
    ck_assert(exists("ckjob-shard1-00000000000000000004.ckpt"));
    ck_assert(!exists("ckjob-shard1-00000000000000000003.ckpt"));
}
END_TEST

START_TEST(all_checkpoints_corrupt_is_a_fresh_start)
{
    char path[512];
    write_version(3, path, sizeof path);
    flip_byte(path, 0); /* the magic */
    static float t[N], s[N];
    ps_ckpt_meta meta;
    ck_assert_int_eq(load(t, s, &meta, NULL, 0), 1);
}
END_TEST

/* issue 10, case 1: torn copies named with higher versions made pruning
 * delete every checkpoint psd wrote, the one it loaded from too */
START_TEST(torn_files_with_higher_versions_do_not_make_fresh_checkpoints_pruned)
{
    char good[512], path[512];
    folder.keep = 2;
    write_version(7, good, sizeof good);
    copy_head(good, "ckjob-shard1-99999999999999999998.ckpt", 200);
    copy_head(good, "ckjob-shard1-99999999999999999999.ckpt", 200);
    copy_head(good, "ckjob-shard1-00000000000000000100.ckpt", 200);
    static float t[N], s[N];
    ps_ckpt_meta meta;
    char loaded[512];
    ck_assert_int_eq(load(t, s, &meta, loaded, sizeof loaded), 0);
    ck_assert_str_eq(loaded, good);
    write_version(8, path, sizeof path);
    ck_assert(exists("ckjob-shard1-00000000000000000008.ckpt"));
    ck_assert(exists("ckjob-shard1-00000000000000000007.ckpt")); /* loaded, newest two */
    write_version(9, path, sizeof path);
    ck_assert(exists("ckjob-shard1-00000000000000000009.ckpt"));
    ck_assert(exists("ckjob-shard1-00000000000000000008.ckpt"));
    ck_assert(!exists("ckjob-shard1-00000000000000000007.ckpt")); /* verified, beyond keep */
    /* files psd never verified are neither counted nor deleted */
    ck_assert(exists("ckjob-shard1-99999999999999999998.ckpt"));
    ck_assert(exists("ckjob-shard1-99999999999999999999.ckpt"));
    ck_assert(exists("ckjob-shard1-00000000000000000100.ckpt"));
    ck_assert_int_eq(load(t, s, &meta, loaded, sizeof loaded), 0);
    ck_assert_uint_eq(meta.version, 9);
}
END_TEST

START_TEST(pruning_leaves_files_that_appeared_after_the_start)
{
    char path[512];
    folder.keep = 1;
    write_version(3, path, sizeof path);
    copy_head(path, "ckjob-shard1-00000000000000000001.ckpt", 16384); /* not psd's doing */
    write_version(4, path, sizeof path);
    ck_assert(!exists("ckjob-shard1-00000000000000000003.ckpt"));
    ck_assert(exists("ckjob-shard1-00000000000000000001.ckpt"));
    ck_assert(exists("ckjob-shard1-00000000000000000004.ckpt"));
}
END_TEST

/* issue 10, case 1: the job edited from features 30 to 20, same name and
 * folder: the old files are whole but of another model */
START_TEST(folder_of_another_model_is_refused_with_nothing_deleted)
{
    char path[512];
    write_version(150, path, sizeof path);
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s/.ckjob-shard1-00000000000000000151.ckpt.tmp", dir);
    FILE *f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ps_ckpt_folder_fini(&folder);
    ps_error err;
    ck_assert_int_eq(ps_ckpt_folder_init(&folder, dir, 1, true, &err), 0);
    static float t[N], s[N];
    t[0] = 99.0f;
    ps_ckpt_array a[2];
    arrays_set(a, t, s);
    a[0].count = a[1].count = N - 10;
    ps_ckpt_meta meta;
    ck_assert_int_eq(
        ps_checkpoint_load(&folder, "ckjob", 1, 10, N, a, 2, &meta, NULL, 0, &quiet, &err),
        PS_ECONFIG);
    char want[600];
    snprintf(want, sizeof want,
             "%s/: holds checkpoints of job \"ckjob\" with 1000 parameters, this job has 990: "
             "move them away or set checkpoint.dir",
             dir);
    ck_assert_str_eq(err.msg, want);
    ck_assert_float_eq(t[0], 99.0f);
    ck_assert_int_eq(access(path, F_OK), 0);
    ck_assert_int_eq(access(tmp, F_OK), 0);
}
END_TEST

START_TEST(folder_with_another_optimizer_state_is_refused)
{
    char path[512];
    write_version(3, path, sizeof path);
    static float t[N];
    ps_ckpt_array a[2];
    arrays_set(a, t, t);
    ps_ckpt_meta meta;
    ps_error err;
    ck_assert_int_eq(
        ps_checkpoint_load(&folder, "ckjob", 1, 10, 10 + N, a, 1, &meta, NULL, 0, &quiet, &err),
        PS_ECONFIG);
    char want[600];
    snprintf(want, sizeof want,
             "%s/: holds checkpoints of job \"ckjob\" with optimizer state \"m\", this job has "
             "none: move them away or set checkpoint.dir",
             dir);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(access(path, F_OK), 0);
}
END_TEST

START_TEST(folder_with_another_jobs_checkpoint_under_this_name_is_refused)
{
    ps_ckpt_array a[2];
    arrays_set(a, theta, state);
    ps_ckpt_meta meta = meta_of("other", 5);
    ps_error err;
    char path[512];
    ck_assert_int_eq(ps_checkpoint_write(&folder, &meta, a, 2, path, sizeof path, NULL, &err), 0);
    char renamed[400];
    snprintf(renamed, sizeof renamed, "%s/ckjob-shard1-00000000000000000005.ckpt", dir);
    ck_assert_int_eq(rename(path, renamed), 0);
    static float t[N], s[N];
    ck_assert_int_eq(restart_and_load(t, s, &meta, NULL, 0, &err), PS_ECONFIG);
    char want[600];
    snprintf(want, sizeof want,
             "%s/: holds checkpoints of job \"other\", this job is \"ckjob\": move them away or "
             "set checkpoint.dir",
             dir);
    ck_assert_str_eq(err.msg, want);
}
END_TEST

START_TEST(folder_under_a_file_is_refused_naming_checkpoint_dir)
{
    char file[300], bad[400];
    snprintf(file, sizeof file, "%s/somefile", dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    snprintf(bad, sizeof bad, "%s/ckpt", file);
    ps_ckpt_folder g;
    ps_error err;
    ck_assert_int_eq(ps_ckpt_folder_init(&g, bad, 3, true, &err), PS_EIO);
    char want[600];
    snprintf(want, sizeof want, "checkpoint.dir %s: cannot create the folder: Not a directory",
             bad);
    ck_assert_str_eq(err.msg, want);
    ps_ckpt_folder_fini(&g);
}
END_TEST

START_TEST(folder_that_cannot_be_written_is_refused_naming_checkpoint_dir)
{
    ps_ckpt_folder g;
    ps_error err;
    /* /proc/self exists, and not even root can create a file in it */
    ck_assert_int_eq(ps_ckpt_folder_init(&g, "/proc/self", 3, true, &err), PS_EIO);
    ck_assert_msg(strncmp(err.msg, "checkpoint.dir /proc/self: not writable: ", 41) == 0, "%s",
                  err.msg);
    ps_ckpt_folder_fini(&g);
}
END_TEST

START_TEST(non_finite_theta_is_not_written_and_the_last_good_checkpoint_stays)
{
    char good[512], path[512];
    folder.keep = 1;
    write_version(5, good, sizeof good);
    theta[567] = NAN;
    ps_ckpt_array a[2];
    arrays_set(a, theta, state);
    ps_ckpt_meta meta = meta_of("ckjob", 6);
    ps_error err;
    ck_assert_int_eq(ps_checkpoint_write(&folder, &meta, a, 2, path, sizeof path, NULL, &err),
                     PS_EDIVERGED);
    ck_assert_str_eq(err.msg, "θ holds a non-finite value at key 577");
    theta[567] = 1.0f;
    state[N - 1] = -INFINITY;
    ck_assert_int_eq(ps_checkpoint_write(&folder, &meta, a, 2, path, sizeof path, NULL, &err),
                     PS_EDIVERGED);
    ck_assert_str_eq(err.msg, "optimizer state m holds a non-finite value at key 1009");
    ck_assert(!exists("ckjob-shard1-00000000000000000006.ckpt"));
    ck_assert(!exists(".ckjob-shard1-00000000000000000006.ckpt.tmp"));
    static float t[N], s[N];
    char loaded[512];
    ck_assert_int_eq(load(t, s, &meta, loaded, sizeof loaded), 0);
    ck_assert_str_eq(loaded, good);
}
END_TEST

START_TEST(non_finite_theta_is_written_with_on_divergence_continue)
{
    char path[512];
    folder.finite_only = false;
    theta[0] = NAN;
    ps_ckpt_array a[2];
    arrays_set(a, theta, state);
    ps_ckpt_meta meta = meta_of("ckjob", 2);
    ps_error err;
    ck_assert_int_eq(ps_checkpoint_write(&folder, &meta, a, 2, path, sizeof path, NULL, &err), 0);
    ck_assert(exists("ckjob-shard1-00000000000000000002.ckpt"));
}
END_TEST

START_TEST(rank_table_round_trips_and_an_older_file_has_none)
{
    char path[512];
    for (int i = 0; i < N; i++)
        theta[i] = state[i] = (float)i;
    ps_ckpt_array a[2];
    arrays_set(a, theta, state);
    ps_ckpt_rank ranks[3] = {
        {.incarnation = 11, .last_seq = 7, .applied = 5, .clock = 6, .flags = PS_CKPT_RANK_SEQ},
        {.incarnation = 0},
        {.incarnation = UINT64_MAX, .last_seq = 1, .applied = 1, .clock = 1, .flags = 0},
    };
    ps_ckpt_meta meta = meta_of("ckjob", 5);
    meta.ranks = ranks;
    meta.nranks = 3;
    ps_error err;
    uint64_t bytes = 0;
    ck_assert_int_eq(ps_checkpoint_write(&folder, &meta, a, 2, path, sizeof path, &bytes, &err), 0);
    ck_assert_uint_eq(bytes, 128 + 2 * 40 + 3 * 40 + 2 * N * 4 + 16);

    static float t[N], st[N];
    ps_ckpt_rank got[4];
    memset(got, 0xff, sizeof got);
    folder.ranks = got;
    folder.rank_room = 4;
    ps_ckpt_meta m;
    arrays_set(a, t, st);
    ck_assert_int_eq(
        ps_checkpoint_load(&folder, "ckjob", 1, 10, 10 + N, a, 2, &m, NULL, 0, &quiet, &err), 0);
    ck_assert_uint_eq(m.version, 5);
    ck_assert_ptr_eq(m.ranks, got);
    ck_assert_uint_eq(m.nranks, 3);
    ck_assert_int_eq(memcmp(got, ranks, sizeof ranks), 0);
    ck_assert_float_eq(t[N - 1], (float)(N - 1));
    /* a job with fewer workers takes the first ranks */
    folder.rank_room = 1;
    ck_assert_int_eq(
        ps_checkpoint_load(&folder, "ckjob", 1, 10, 10 + N, a, 2, &m, NULL, 0, &quiet, &err), 0);
    ck_assert_uint_eq(m.nranks, 1);
    ck_assert_uint_eq(got[0].last_seq, 7);

    /* a file without a rank table (as older psd wrote them) loads none */
    write_version(6, path, sizeof path);
    folder.rank_room = 4;
    ck_assert_int_eq(
        ps_checkpoint_load(&folder, "ckjob", 1, 10, 10 + N, a, 2, &m, NULL, 0, &quiet, &err), 0);
    ck_assert_uint_eq(m.version, 6);
    ck_assert_uint_eq(m.nranks, 0);
}
END_TEST

START_TEST(rank_table_bit_flip_is_refused)
{
    char good[512], path[512];
    write_version(5, good, sizeof good);
    ps_ckpt_array a[2];
    arrays_set(a, theta, state);
    ps_ckpt_rank ranks[2] = {{.incarnation = 11, .last_seq = 7, .flags = PS_CKPT_RANK_SEQ}};
    ps_ckpt_meta meta = meta_of("ckjob", 6);
    meta.ranks = ranks;
    meta.nranks = 2;
    ps_error err;
    ck_assert_int_eq(ps_checkpoint_write(&folder, &meta, a, 2, path, sizeof path, NULL, &err), 0);
    flip_byte(path, 128 + 2 * 40 + 8); /* rank 0's last_seq */
    static float t[N], st[N];
    ps_ckpt_meta m;
    char loaded[512];
    ck_assert_int_eq(load(t, st, &m, loaded, sizeof loaded), 0);
    ck_assert_str_eq(loaded, good);
}
END_TEST

/* ---- sparse tables ---- */

/* A table "v" of dim 3 (the first float starts at 0) trained by type. */
static ps_table *table_make(ps_optim_type type, uint32_t dim, const char *name, uint32_t shard,
                            uint32_t nshards)
{
    ps_job job;
    memset(&job, 0, sizeof job);
    ps_strlcpy(job.name, "ckjob", sizeof job.name);
    job.model.init_scheme = PS_INIT_NORMAL;
    job.model.init_seed = 3;
    job.optimizer.type = type;
    job.optimizer.lr = 0.1;
    job.optimizer.eps = 1e-8;
    job.optimizer.beta = 1;
    job.sparse.min_count = 1;
    ps_table_spec spec;
    memset(&spec, 0, sizeof spec);
    ps_strlcpy(spec.name, name, sizeof spec.name);
    spec.dim = dim;
    spec.zero_prefix = 1;
    ps_error err;
    ps_table *t = ps_table_new(&job, 0, &spec, shard, nshards, &err);
    ck_assert_msg(t != NULL, "%s", err.msg);
    return t;
}

/* Writes n rows: key k·K + salt gets the gradient (k, -k, 1) at version 100 + k. */
static void table_fill(ps_table *t, uint64_t n, uint64_t salt)
{
    for (uint64_t k = 0; k < n; k++) {
        float g[3] = {(float)k, -(float)k, 1.0f};
        ck_assert_int_eq(ps_table_apply(t, k * 0x9E3779B97F4A7C15ull + salt, g, 1.0f, 100 + k), 0);
    }
}

/* Writes a checkpoint of version v: the arrays as write_version's, and t. */
static int write_with_table(uint64_t v, ps_table *t, char *path, size_t cap, uint64_t *bytes,
                            ps_error *err)
{
    for (int i = 0; i < N; i++) {
        theta[i] = (float)v + (float)i;
        state[i] = -(float)v - (float)i;
    }
    ps_ckpt_array a[2];
    arrays_set(a, theta, state);
    ps_ckpt_meta meta = meta_of("ckjob", v);
    return ps_table_checkpoint_write(&folder, &meta, a, 2, &t, 1, path, cap, bytes, err);
}

/* A new psd run on the folder, loading into the arrays t, s and the tables. */
static int load_tables(float *t, float *s, ps_table **tables, size_t ntables, ps_ckpt_meta *meta,
                       char *path, size_t cap, ps_error *err)
{
    uint32_t keep = folder.keep;
    ps_ckpt_folder_fini(&folder);
    ck_assert_int_eq(ps_ckpt_folder_init(&folder, dir, keep, true, err), 0);
    ps_ckpt_array a[2];
    arrays_set(a, t, s);
    return ps_table_checkpoint_load(&folder, "ckjob", 1, 10, 10 + N, a, 2, tables, ntables, meta,
                                    path, cap, &quiet, err);
}

/* Every row of a and b, as a checkpoint sees them, is the same. */
static void tables_equal(const ps_table *a, const ps_table *b)
{
    enum { PAGE = 64 };
    static uint64_t ka[PAGE], kb[PAGE], va[PAGE], vb[PAGE];
    static float fa[PAGE * 6], fb[PAGE * 6];
    ck_assert_uint_eq(ps_table_rows(a), ps_table_rows(b));
    uint64_t ca = 0, cb = 0;
    do {
        size_t na = ps_table_scan_state(a, ca, PAGE, ka, va, fa, &ca);
        size_t nb = ps_table_scan_state(b, cb, PAGE, kb, vb, fb, &cb);
        ck_assert_uint_eq(na, nb);
        ck_assert_int_eq(memcmp(ka, kb, na * sizeof ka[0]), 0);
        ck_assert_int_eq(memcmp(va, vb, na * sizeof va[0]), 0);
        ck_assert_int_eq(memcmp(fa, fb, na * ps_table_row_floats(a) * sizeof fa[0]), 0);
    } while (ca != 0 && cb != 0);
    ck_assert_uint_eq(ca, cb);
}

START_TEST(table_round_trip_restores_rows_and_versions)
{
    ps_table *t = table_make(PS_OPTIM_ADAGRAD, 3, "v", 0, 1);
    table_fill(t, 500, 1);
    char path[512];
    uint64_t bytes = 0;
    ps_error err;
    ck_assert_int_eq(write_with_table(42, t, path, sizeof path, &bytes, &err), 0);
    /* header, arrays' table, the table directory (8 + 64), θ and m, 500
     * rows of key, version and 6 floats (w and adagrad's accumulator) */
    ck_assert_uint_eq(bytes, 128 + 2 * 40 + 8 + 64 + 2 * N * 4 + 500 * (16 + 6 * 4) + 16);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq((uint64_t)st.st_size, bytes);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    unsigned char head[12];
    ck_assert_uint_eq(fread(head, 1, sizeof head, f), sizeof head);
    fclose(f);
    ck_assert_uint_eq(head[8], 2); /* format 2: with tables */

    ps_table *u = table_make(PS_OPTIM_ADAGRAD, 3, "v", 0, 1);
    float g[3] = {5, 5, 5};
    ck_assert_int_eq(ps_table_apply(u, 12345, g, 1.0f, 1), 0); /* cleared by the load */
    static float th[N], s[N];
    ps_ckpt_meta meta;
    char loaded[512];
    ck_assert_int_eq(load_tables(th, s, &u, 1, &meta, loaded, sizeof loaded, &err), 0);
    ck_assert_str_eq(loaded, path);
    ck_assert_uint_eq(meta.version, 42);
    ck_assert_float_eq(th[N - 1], 42.0f + N - 1);
    ck_assert_uint_eq(ps_table_rows(u), 500);
    tables_equal(t, u);
    float a[3], b[3];
    ck_assert_int_eq(ps_table_read(t, 7 * 0x9E3779B97F4A7C15ull + 1, a), 0);
    ck_assert_int_eq(ps_table_read(u, 7 * 0x9E3779B97F4A7C15ull + 1, b), 0);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    /* the next update goes on from the restored accumulator */
    ck_assert_int_eq(ps_table_apply(t, 1, g, 1.0f, 700), 0);
    ck_assert_int_eq(ps_table_apply(u, 1, g, 1.0f, 700), 0);
    tables_equal(t, u);
    ps_table_destroy(&t);
    ps_table_destroy(&u);
}
END_TEST

/* The count-min sketch is not in the checkpoint: after a restart keys
 * below min_count count from 0 again. */
START_TEST(admission_counts_are_not_checkpointed)
{
    ps_job job;
    memset(&job, 0, sizeof job);
    job.model.init_scheme = PS_INIT_ZEROS;
    job.optimizer.type = PS_OPTIM_SGD;
    job.optimizer.lr = 1;
    job.sparse.min_count = 3;
    ps_table_spec spec = {"w", 1, 0};
    ps_error err;
    ps_table *t = ps_table_new(&job, 0, &spec, 0, 1, &err),
             *u = ps_table_new(&job, 0, &spec, 0, 1, &err);
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_nonnull(u);
    float g = 1;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(ps_table_apply(t, 1, &g, 1.0f, 1), 0); /* stored at the third */
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(ps_table_apply(t, 2, &g, 1.0f, 1), 0); /* counted twice */
    char path[512];
    ck_assert_int_eq(write_with_table(8, t, path, sizeof path, NULL, &err), 0);
    static float th[N], s[N];
    ps_ckpt_meta meta;
    ck_assert_int_eq(load_tables(th, s, &u, 1, &meta, NULL, 0, &err), 0);
    ck_assert_uint_eq(ps_table_rows(u), 1);
    ck_assert_int_eq(ps_table_apply(u, 2, &g, 1.0f, 9), 0); /* its first count here */
    ck_assert_uint_eq(ps_table_rows(u), 1);
    ck_assert_int_eq(ps_table_apply(u, 1, &g, 1.0f, 9), 0); /* a stored row needs none */
    float w;
    ck_assert_int_eq(ps_table_read(u, 1, &w), 0);
    ck_assert_float_eq(w, -2.0f);
    ps_table_destroy(&t);
    ps_table_destroy(&u);
}
END_TEST

START_TEST(corrupt_table_section_is_refused_whole_and_the_previous_used)
{
    ps_table *t = table_make(PS_OPTIM_ADAGRAD, 3, "v", 0, 1);
    table_fill(t, 100, 1);
    char old[512], newest[512];
    ps_error err;
    ck_assert_int_eq(write_with_table(5, t, old, sizeof old, NULL, &err), 0);
    table_fill(t, 200, 1); /* the same 100 again, and 100 more */
    ck_assert_int_eq(write_with_table(6, t, newest, sizeof newest, NULL, &err), 0);
    /* a bit of row 150's floats */
    flip_byte(newest, 128 + 2 * 40 + 8 + 64 + 2 * N * 4 + 150 * (16 + 6 * 4) + 20);
    ps_ckpt_array a[2];
    arrays_set(a, theta, state);
    ps_ckpt_table d;
    ps_table_ckpt(t, &d);
    ck_assert_int_eq(ps_checkpoint_verify_tables(newest, "ckjob", 1, 10, 10 + N, a, 2, &d, 1, &err),
                     PS_EPROTO);
    ck_assert_str_eq(err.msg, "checksum mismatch (corrupt)");
    ps_table *u = table_make(PS_OPTIM_ADAGRAD, 3, "v", 0, 1);
    static float th[N], s[N];
    ps_ckpt_meta meta;
    char loaded[512];
    ck_assert_int_eq(load_tables(th, s, &u, 1, &meta, loaded, sizeof loaded, &err), 0);
    ck_assert_str_eq(loaded, old);
    ck_assert_uint_eq(meta.version, 5);
    ck_assert_uint_eq(ps_table_rows(u), 100); /* nothing of version 6 */
    float init[3], w[3];
    uint64_t only6 = 150 * 0x9E3779B97F4A7C15ull + 1;
    ps_table *fresh = table_make(PS_OPTIM_ADAGRAD, 3, "v", 0, 1);
    ck_assert_int_eq(ps_table_read(fresh, only6, init), 0);
    ck_assert_int_eq(ps_table_read(u, only6, w), 0);
    ck_assert_int_eq(memcmp(w, init, sizeof w), 0);
    /* a table section cut short is refused the same way */
    ck_assert_int_eq(truncate(newest, 128 + 2 * 40 + 8 + 64 + 2 * N * 4 + 50 * 40), 0);
    ck_assert_int_eq(ps_checkpoint_verify_tables(newest, "ckjob", 1, 10, 10 + N, a, 2, &d, 1, &err),
                     PS_EPROTO);
    ck_assert_str_eq(err.msg, "10280 bytes, expected 16296 (truncated or torn)");
    ps_table_destroy(&t);
    ps_table_destroy(&u);
    ps_table_destroy(&fresh);
}
END_TEST

START_TEST(a_row_the_table_refuses_skips_the_file_and_leaves_none_of_it)
{
    /* rows of the upper half of the keys first, then of the lower half: a
     * table of shard 1 of 2 takes the first and refuses the next */
    ps_table *t = table_make(PS_OPTIM_SGD, 3, "v", 0, 1);
    float g[3] = {1, 2, 3};
    for (uint64_t k = 0; k < 10; k++)
        ck_assert_int_eq(ps_table_apply(t, UINT64_MAX - k, g, 1.0f, 1), 0);
    ck_assert_int_eq(ps_table_apply(t, 17, g, 1.0f, 1), 0);
    char path[512];
    ps_error err;
    ck_assert_int_eq(write_with_table(5, t, path, sizeof path, NULL, &err), 0);
    ps_table *u = table_make(PS_OPTIM_SGD, 3, "v", 1, 2);
    static float th[N], s[N];
    ps_ckpt_meta meta;
    ck_assert_int_eq(load_tables(th, s, &u, 1, &meta, NULL, 0, &err), 1);
    ck_assert_uint_eq(ps_table_rows(u), 0);
    ps_table_destroy(&t);
    ps_table_destroy(&u);
}
END_TEST

START_TEST(folder_with_another_table_layout_is_refused)
{
    ps_table *t = table_make(PS_OPTIM_ADAGRAD, 3, "v", 0, 1);
    table_fill(t, 10, 1);
    char path[512];
    ps_error err;
    ck_assert_int_eq(write_with_table(3, t, path, sizeof path, NULL, &err), 0);
    static float th[N], s[N];
    th[0] = 99.0f;
    ps_ckpt_meta meta;
    char want[700];
    ps_table *other[2] = {table_make(PS_OPTIM_ADAGRAD, 4, "v", 0, 1), NULL};
    ck_assert_int_eq(load_tables(th, s, other, 1, &meta, NULL, 0, &err), PS_ECONFIG);
    snprintf(want, sizeof want,
             "%s/: holds checkpoints of job \"ckjob\" with table v of dim 3, this job has dim 4: "
             "move them away or set checkpoint.dir",
             dir);
    ck_assert_str_eq(err.msg, want);
    ps_table_destroy(&other[0]);
    other[0] = table_make(PS_OPTIM_SGD, 3, "v", 0, 1);
    ck_assert_int_eq(load_tables(th, s, other, 1, &meta, NULL, 0, &err), PS_ECONFIG);
    snprintf(want, sizeof want,
             "%s/: holds checkpoints of job \"ckjob\" with table v kept by optimizer adagrad, this "
             "job has sgd: move them away or set checkpoint.dir",
             dir);
    ck_assert_str_eq(err.msg, want);
    ps_table_destroy(&other[0]);
    other[0] = table_make(PS_OPTIM_ADAGRAD, 3, "w", 0, 1);
    ck_assert_int_eq(load_tables(th, s, other, 1, &meta, NULL, 0, &err), PS_ECONFIG);
    snprintf(want, sizeof want,
             "%s/: holds checkpoints of job \"ckjob\" with table \"v\", this job has \"w\": move "
             "them away or set checkpoint.dir",
             dir);
    ck_assert_str_eq(err.msg, want);
    other[1] = table_make(PS_OPTIM_ADAGRAD, 3, "v", 0, 1);
    ck_assert_int_eq(load_tables(th, s, other, 2, &meta, NULL, 0, &err), PS_ECONFIG);
    snprintf(want, sizeof want,
             "%s/: holds checkpoints of job \"ckjob\" with 1 sparse tables, this job has 2: move "
             "them away or set checkpoint.dir",
             dir);
    ck_assert_str_eq(err.msg, want);
    /* a job without tables refuses it too, through the old call */
    ck_assert_int_eq(load(th, s, &meta, NULL, 0), PS_ECONFIG);
    ck_assert_float_eq(th[0], 99.0f); /* nothing loaded */
    ck_assert_uint_eq(ps_table_rows(other[1]), 0);
    ck_assert_int_eq(access(path, F_OK), 0); /* nothing deleted */
    ps_table_destroy(&t);
    ps_table_destroy(&other[0]);
    ps_table_destroy(&other[1]);
}
END_TEST

START_TEST(folder_of_checkpoints_without_tables_is_refused_by_a_job_with_tables)
{
    char path[512];
    write_version(4, path, sizeof path); /* format 1, as before tables */
    ps_table *t = table_make(PS_OPTIM_ADAGRAD, 3, "v", 0, 1);
    static float th[N], s[N];
    ps_ckpt_meta meta;
    ps_error err;
    ck_assert_int_eq(load_tables(th, s, &t, 1, &meta, NULL, 0, &err), PS_ECONFIG);
    char want[700];
    snprintf(want, sizeof want,
             "%s/: holds checkpoints of job \"ckjob\" with 0 sparse tables, this job has 1: move "
             "them away or set checkpoint.dir",
             dir);
    ck_assert_str_eq(err.msg, want);
    /* and the same file still loads for a job without tables */
    ck_assert_int_eq(load(th, s, &meta, NULL, 0), 0);
    ck_assert_uint_eq(meta.version, 4);
    ps_table_destroy(&t);
}
END_TEST

START_TEST(non_finite_table_row_is_not_written)
{
    ps_table *t = table_make(PS_OPTIM_ADAGRAD, 3, "v", 0, 1);
    table_fill(t, 10, 1);
    const float bad[6] = {0, 1, 2, 3, NAN, 5};
    ck_assert_int_eq(ps_table_restore_row(t, 4242, 110, bad), 0);
    char path[512];
    ps_error err;
    ck_assert_int_eq(write_with_table(7, t, path, sizeof path, NULL, &err), PS_EDIVERGED);
    ck_assert_str_eq(err.msg, "table v holds a non-finite value at key 4242");
    ck_assert(!exists("ckjob-shard1-00000000000000000007.ckpt"));
    ck_assert(!exists(".ckjob-shard1-00000000000000000007.ckpt.tmp"));
    ps_table_destroy(&t);
}
END_TEST

/* ---- the checkpointer, on a real engine ---- */

typedef struct ckfx {
    ps_job job;
    ps_log log;
    ps_engine *engine;
    ps_checkpointer *c;
} ckfx;

/* A logistic job on 3 features (4 parameters) checkpointing into dir. */
static void ckfx_job(ckfx *x, const char *ckdir)
{
    memset(x, 0, sizeof *x);
    ps_job *job = &x->job;
    strcpy(job->name, "cpjob");
    job->mode = PS_MODE_ASYNC;
    job->workers = 1;
    job->nservers = 1;
    strcpy(job->servers[0], "tcp://127.0.0.1:7070");
    job->model.type = PS_MODEL_LOGISTIC;
    job->model.features = 3;
    job->model.init_scheme = PS_INIT_ZEROS;
    job->model.init_seed = 1;
    job->optimizer.type = PS_OPTIM_SGD;
    job->optimizer.lr = 0.5;
    job->optimizer.schedule = PS_SCHEDULE_CONSTANT;
    job->on_divergence = PS_DIVERGE_STOP;
    ps_strlcpy(job->checkpoint.dir, ckdir, sizeof job->checkpoint.dir);
    job->checkpoint.every_seconds = 3600;
    job->checkpoint.keep = 2;
    job->log_level = PS_LOG_ERROR;
    x->log = (ps_log){PS_LOG_ERROR, "test"};
    ps_error err;
    x->engine = ps_engine_new(job, 0, &x->log, &err);
    ck_assert_msg(x->engine != NULL, "%s", err.msg);
}

static void ckfx_fini(ckfx *x)
{
    ps_checkpointer_destroy(&x->c);
    ps_engine_destroy(&x->engine);
}

/* Asks for a checkpoint as psctl does and turns the loop until it has
 * finished (10 s at most). */
static uint64_t checkpoint_now(ckfx *x, int *status, const char **text)
{
    uint64_t before = ps_checkpointer_finished(x->c, NULL, NULL);
    ps_checkpointer_request(x->c);
    for (int i = 0; i < 10000 && ps_checkpointer_finished(x->c, NULL, NULL) == before; i++) {
        ps_checkpointer_tick(x->c, ps_clock_ms());
        usleep(1000);
    }
    return ps_checkpointer_finished(x->c, status, text);
}

START_TEST(checkpointer_refuses_a_folder_it_cannot_write)
{
    char bad[400];
    snprintf(bad, sizeof bad, "%s/somefile", dir);
    FILE *f = fopen(bad, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    strcat(bad, "/ckpt");
    ckfx x;
    ckfx_job(&x, bad);
    ps_error err;
    ck_assert_int_eq(ps_checkpointer_new(&x.job, 0, x.engine, &x.log, &x.c, &err), PS_EIO);
    ck_assert_ptr_null(x.c);
    char want[600];
    snprintf(want, sizeof want, "checkpoint.dir %s: cannot create the folder: Not a directory",
             bad);
    ck_assert_str_eq(err.msg, want);
    ckfx_fini(&x);
}
END_TEST

START_TEST(checkpointer_reports_a_failed_write_with_its_error)
{
    char ck[300];
    snprintf(ck, sizeof ck, "%s/ck", dir);
    ckfx x;
    ckfx_job(&x, ck);
    ps_error err;
    ck_assert_int_eq(ps_checkpointer_new(&x.job, 0, x.engine, &x.log, &x.c, &err), 0);
    int status = 1;
    const char *text = NULL;
    ck_assert_uint_eq(checkpoint_now(&x, &status, &text), 1);
    ck_assert_int_eq(status, 0);
    char want[600];
    snprintf(want, sizeof want, "%s/cpjob-shard0-00000000000000000000.ckpt", ck);
    ck_assert_str_eq(text, want);
    /* the folder becomes a file while psd runs */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && touch '%s'", ck, ck);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_uint_eq(checkpoint_now(&x, &status, &text), 2);
    ck_assert_int_eq(status, PS_EIO);
    snprintf(want, sizeof want,
             "checkpoint: cannot create %s/.cpjob-shard0-00000000000000000000.ckpt.tmp: Not a "
             "directory",
             ck);
    ck_assert_str_eq(text, want);
    ck_assert_uint_eq(ps_checkpointer_written(x.c, NULL), 1);
    ckfx_fini(&x);
}
END_TEST

START_TEST(checkpointer_skips_a_non_finite_snapshot)
{
    char ck[300];
    snprintf(ck, sizeof ck, "%s/ck", dir);
    ckfx x;
    ckfx_job(&x, ck);
    ps_error err;
    ck_assert_int_eq(ps_checkpointer_new(&x.job, 0, x.engine, &x.log, &x.c, &err), 0);
    int status;
    const char *text;
    ck_assert_uint_eq(checkpoint_now(&x, &status, &text), 1);
    ck_assert_int_eq(status, 0);
    ps_ckpt_array live[PS_CKPT_MAX_ARRAYS];
    size_t n;
    ck_assert_int_eq(
        ps_store_ckpt_arrays_for_load(ps_engine_store(x.engine), live, PS_CKPT_MAX_ARRAYS, &n), 0);
    live[0].data[2] = INFINITY;
    ck_assert_int_eq(ps_checkpointer_final(x.c), PS_EDIVERGED);
    ck_assert_uint_eq(ps_checkpointer_finished(x.c, &status, &text), 2);
    ck_assert_int_eq(status, PS_EDIVERGED);
    ck_assert_str_eq(text, "θ holds a non-finite value at key 2");
    ck_assert_uint_eq(ps_checkpointer_written(x.c, NULL), 1);
    ckfx_fini(&x);
}
END_TEST

START_TEST(checkpointer_with_a_table_writes_and_loads_its_rows)
{
    char ck[300];
    snprintf(ck, sizeof ck, "%s/ck", dir);
    ckfx x;
    ckfx_job(&x, ck);
    ps_table *t = table_make(PS_OPTIM_SGD, 3, "v", 0, 1);
    table_fill(t, 300, 9);
    ps_error err;
    ck_assert_int_eq(ps_checkpointer_new_tables(&x.job, 0, x.engine, &t, 1, &x.log, &x.c, &err), 0);
    int status;
    ck_assert_uint_eq(checkpoint_now(&x, &status, NULL), 1);
    ck_assert_int_eq(status, 0);
    ps_checkpointer_last last;
    ps_checkpointer_last_get(x.c, &last);
    /* header, θ's entry, the table directory, one rank, θ (4 floats), 300
     * rows of key, version and 3 floats, trailer */
    ck_assert_uint_eq(last.bytes, 128 + 40 + 8 + 64 + 40 + 4 * 4 + 300 * (16 + 3 * 4) + 16);
    float g[3] = {1, 1, 1};
    ck_assert_int_eq(ps_table_apply(t, 5, g, 1.0f, 1000), 0);
    ck_assert_int_eq(ps_checkpointer_final(x.c), 0); /* SIGTERM's, with the new row */
    ck_assert_uint_eq(ps_checkpointer_written(x.c, NULL), 2);
    ckfx_fini(&x);

    ckfx_job(&x, ck);
    ps_table *u = table_make(PS_OPTIM_SGD, 3, "v", 0, 1);
    ck_assert_int_eq(ps_checkpointer_new_tables(&x.job, 0, x.engine, &u, 1, &x.log, &x.c, &err), 0);
    ck_assert_uint_eq(ps_table_rows(u), 301);
    tables_equal(t, u);
    ckfx_fini(&x);
    /* a job without the table is refused by the same folder */
    ckfx_job(&x, ck);
    ck_assert_int_eq(ps_checkpointer_new(&x.job, 0, x.engine, &x.log, &x.c, &err), PS_ECONFIG);
    ck_assert_ptr_null(x.c);
    ckfx_fini(&x);
    ps_table_destroy(&t);
    ps_table_destroy(&u);
}
END_TEST

typedef struct last_reply {
    ps_msg msg;
} last_reply;

/* Keeps the last reply's numbers (its strings point into the engine). */
static int reply_keep(void *ctx, const void *identity, size_t identity_len, ps_msg *reply,
                      const void *payload)
{
    (void)identity;
    (void)identity_len;
    (void)payload;
    ((last_reply *)ctx)->msg = *reply;
    return 0;
}

/* One request of the worker "w" to the engine; the reply lands in *out. */
static void ask_engine(ps_engine *e, ps_msg *m, last_reply *out)
{
    m->job = "cpjob";
    ps_engine_handle(e, "w", 1, 0, m, NULL, reply_keep, out);
}

static uint32_t engine_hello(ps_engine *e, uint64_t incarnation, last_reply *out)
{
    static ps_msg m;
    ps_msg_init(&m, PS_MSG_HELLO);
    m.seq = 1;
    m.rank = 0;
    m.incarnation = incarnation;
    ask_engine(e, &m, out);
    ck_assert_int_eq(out->msg.type, PS_MSG_WELCOME);
    return out->msg.worker_id;
}

static void engine_push(ps_engine *e, uint32_t worker_id, uint64_t seq, last_reply *out)
{
    static ps_msg m;
    static const float g[4] = {1, 1, 1, 1};
    ps_msg_init(&m, PS_MSG_PUSH);
    m.worker_id = worker_id;
    m.seq = seq;
    m.clock = seq;
    m.samples = 1;
    m.key_lo = 0;
    m.key_hi = 4;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = sizeof g;
    m.payload = g;
    ask_engine(e, &m, out);
    ck_assert_int_eq(out->msg.type, PS_MSG_ACK);
}

START_TEST(push_in_flight_across_a_restart_is_applied_once)
{
    char ck[300];
    snprintf(ck, sizeof ck, "%s/ck", dir);
    ckfx x;
    ckfx_job(&x, ck);
    ps_error err;
    ck_assert_int_eq(ps_checkpointer_new(&x.job, 0, x.engine, &x.log, &x.c, &err), 0);
    static last_reply r;
    uint32_t id = engine_hello(x.engine, 99, &r);
    engine_push(x.engine, id, 1, &r);
    engine_push(x.engine, id, 2, &r);
    int status;
    ck_assert_uint_eq(checkpoint_now(&x, &status, NULL), 1);
    ck_assert_int_eq(status, 0);
    ckfx_fini(&x);

    /* psd restarts from that checkpoint; the worker's push 2 was in flight
     * (its ACK lost), so it registers again and retries it */
    ckfx_job(&x, ck);
    ck_assert_int_eq(ps_checkpointer_new(&x.job, 0, x.engine, &x.log, &x.c, &err), 0);
    ck_assert_uint_eq(ps_engine_version(x.engine), 2);
    ps_engine_rank rk;
    ck_assert_int_eq(ps_engine_rank_get(x.engine, 0, &rk), 0);
    ck_assert_uint_eq(rk.applied, 2);
    ck_assert_uint_eq(rk.incarnation, 99);
    id = engine_hello(x.engine, 99, &r);
    engine_push(x.engine, id, 2, &r);
    ck_assert_uint_eq(r.msg.flags, PS_ACK_DUPLICATE);
    ck_assert_uint_eq(ps_engine_version(x.engine), 2);
    engine_push(x.engine, id, 3, &r);
    ck_assert_uint_eq(r.msg.flags, 0);
    ck_assert_uint_eq(ps_engine_version(x.engine), 3);
    ck_assert_int_eq(ps_engine_rank_get(x.engine, 0, &rk), 0);
    ck_assert_uint_eq(rk.applied, 3);
    ckfx_fini(&x);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, round_trip_restores_arrays_and_counters);
    tcase_add_test(tc, rank_table_round_trips_and_an_older_file_has_none);
    tcase_add_test(tc, rank_table_bit_flip_is_refused);
    tcase_add_test(tc, push_in_flight_across_a_restart_is_applied_once);
    tcase_add_test(tc, empty_folder_is_a_fresh_start);
    tcase_add_test(tc, truncated_checkpoint_is_refused_and_previous_used);
    tcase_add_test(tc, fifo_named_like_a_checkpoint_is_skipped_without_blocking);
    tcase_add_test(tc, bit_flipped_checkpoint_is_refused_and_previous_used);
    tcase_add_test(tc, checkpoint_of_another_shard_fails_verification);
    tcase_add_test(tc, only_the_newest_keep_stay_and_leftover_temp_files_go);
    tcase_add_test(tc, all_checkpoints_corrupt_is_a_fresh_start);
    tcase_add_test(tc, torn_files_with_higher_versions_do_not_make_fresh_checkpoints_pruned);
    tcase_add_test(tc, pruning_leaves_files_that_appeared_after_the_start);
    tcase_add_test(tc, folder_of_another_model_is_refused_with_nothing_deleted);
    tcase_add_test(tc, folder_with_another_optimizer_state_is_refused);
    tcase_add_test(tc, folder_with_another_jobs_checkpoint_under_this_name_is_refused);
    tcase_add_test(tc, folder_under_a_file_is_refused_naming_checkpoint_dir);
    tcase_add_test(tc, folder_that_cannot_be_written_is_refused_naming_checkpoint_dir);
    tcase_add_test(tc, non_finite_theta_is_not_written_and_the_last_good_checkpoint_stays);
    tcase_add_test(tc, non_finite_theta_is_written_with_on_divergence_continue);
    tcase_add_test(tc, checkpointer_refuses_a_folder_it_cannot_write);
    tcase_add_test(tc, checkpointer_reports_a_failed_write_with_its_error);
    tcase_add_test(tc, checkpointer_skips_a_non_finite_snapshot);
    tcase_add_test(tc, table_round_trip_restores_rows_and_versions);
    tcase_add_test(tc, admission_counts_are_not_checkpointed);
    tcase_add_test(tc, corrupt_table_section_is_refused_whole_and_the_previous_used);
    tcase_add_test(tc, a_row_the_table_refuses_skips_the_file_and_leaves_none_of_it);
    tcase_add_test(tc, folder_with_another_table_layout_is_refused);
    tcase_add_test(tc, folder_of_checkpoints_without_tables_is_refused_by_a_job_with_tables);
    tcase_add_test(tc, non_finite_table_row_is_not_written);
    tcase_add_test(tc, checkpointer_with_a_table_writes_and_loads_its_rows);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
