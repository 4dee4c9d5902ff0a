/* test_checkpoint.c — checkpoint files and the checkpointer: a round trip
 * restores every array and counter; a truncated, a bit-flipped and a torn
 * file are each refused with a one-line warning and the previous checkpoint
 * is used; pruning keeps the newest `keep` of the files psd verified or
 * wrote and touches no other; a folder holding another job's or model's
 * checkpoints is refused with nothing deleted; an unwritable folder is
 * refused at start and a failed write is reported; a NaN or inf is never
 * written over a good checkpoint. */
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
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
