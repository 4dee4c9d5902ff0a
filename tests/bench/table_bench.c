/* table_bench.c — the sparse table's memory and speed (server/table.h): RSS
 * per live row at 50 M rows of dim 9 (adagrad) beside the rows' 72 bytes
 * and the longest single insert of the fill (the index's growth);
 * reads and applies per second on random keys at 16 M rows of dim 1, one
 * thread, beside random reads of a plain array, and a key's cost in sorted
 * batches of 10 k keys (the batched calls beside the single ones); the
 * checkpoint stall per GB. Run by hand (build/bin/table_bench), never by ctest. */
#include "checkpoint.h"
#include "job.h"
#include "stdout_guard.h"
#include "table.h"
#include "util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SALT 0x5851f42d4c957f2dull

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The process's resident set, from /proc/self/status. */
static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kb = 0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %lu kB", &kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kb * 1024;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* The i-th distinct key (splitmix64 is a bijection). */
static uint64_t key_of(uint64_t i)
{
    return splitmix64(i ^ SALT);
}

static void job_of(ps_job *job, ps_optim_type type)
{
    memset(job, 0, sizeof *job);
    ps_strlcpy(job->name, "table-bench", sizeof job->name);
    job->model.init_scheme = PS_INIT_NORMAL;
    job->model.init_seed = 1;
    job->optimizer.type = type;
    job->optimizer.lr = 0.05;
    job->optimizer.eps = 1e-8;
    job->optimizer.beta = 1;
    job->sparse.min_count = 1;
}

static ps_table *table_of(ps_optim_type type, uint32_t dim)
{
    ps_job job;
    job_of(&job, type);
    ps_table_spec spec;
    memset(&spec, 0, sizeof spec);
    ps_strlcpy(spec.name, "v", sizeof spec.name);
    spec.dim = dim;
    spec.zero_prefix = 1;
    ps_error err;
    ps_table *t = ps_table_new(&job, 0, &spec, 0, 1, &err);
    if (t == NULL) {
        fprintf(stderr, "table_bench: %s\n", err.msg);
        exit(1);
    }
    return t;
}

/* The longest single calls of a fill (how long the shard served nothing),
 * longest first, and the calls over 1 ms. */
#define WORST 5
typedef struct worst {
    double s[WORST];     /* their seconds */
    uint64_t row[WORST]; /* the rows stored before each */
    uint64_t over_1ms;
} worst;

static void worst_add(worst *w, double s, uint64_t row)
{
    w->over_1ms += s > 1e-3;
    int k = WORST;
    while (k > 0 && s > w->s[k - 1])
        k--;
    if (k == WORST)
        return;
    memmove(w->s + k + 1, w->s + k, (WORST - 1 - k) * sizeof w->s[0]);
    memmove(w->row + k + 1, w->row + k, (WORST - 1 - k) * sizeof w->row[0]);
    w->s[k] = s;
    w->row[k] = row;
}

/* Fills rows keys, each call timed; returns the seconds it took and sets
 * *w to the longest calls. */
static double fill(ps_table *t, uint64_t rows, const float *g, worst *w)
{
    memset(w, 0, sizeof *w);
    double t0 = now_s(), prev = t0;
    for (uint64_t i = 0; i < rows; i++) {
        if (ps_table_apply(t, key_of(i), g, 1.0f, 1) != 0) {
            fprintf(stderr, "table_bench: apply failed at row %llu\n", (unsigned long long)i);
            exit(1);
        }
        double now = now_s();
        worst_add(w, now - prev, i);
        prev = now;
    }
    return now_s() - t0;
}

static void worst_print(const worst *w)
{
    printf("  longest calls    ");
    for (int k = 0; k < WORST; k++)
        printf(" %.0f us at %.2f M rows%s", w->s[k] * 1e6, (double)w->row[k] / 1e6,
               k + 1 < WORST ? "," : "\n");
    printf("  calls over 1 ms   %8llu\n", (unsigned long long)w->over_1ms);
}

static void memory(uint64_t rows)
{
    printf("memory: %llu rows of dim 9, adagrad (72 bytes of floats a row)\n",
           (unsigned long long)rows);
    uint64_t rss0 = rss_bytes();
    ps_table *t = table_of(PS_OPTIM_ADAGRAD, 9);
    const float g[9] = {0.1f, -0.2f, 0.3f, -0.4f, 0.5f, -0.6f, 0.7f, -0.8f, 0.9f};
    worst w;
    double s = fill(t, rows, g, &w);
    uint64_t rss = rss_bytes();
    ps_table_stats st;
    ps_table_stats_get(t, &st);
    printf("  fill              %8.2f s   %6.2f M rows/s (new rows)\n", s, (double)rows / s / 1e6);
    worst_print(&w);
    printf("  RSS               %8.0f MB  (%.0f MB before the table)\n", (double)rss / 1e6,
           (double)rss0 / 1e6);
    printf("  RSS per row       %8.1f B   = %.3f x 72 (limit 1.3 x 72 = 93.6 B)\n",
           (double)rss / (double)rows, (double)rss / (double)rows / 72.0);
    printf("  table's RSS/row   %8.1f B   = %.3f x 72\n", (double)(rss - rss0) / (double)rows,
           (double)(rss - rss0) / (double)rows / 72.0);
    printf("  stats bytes/row   %8.1f B   (rows %llu)\n", (double)st.bytes / (double)rows,
           (unsigned long long)st.rows);
    ps_table_destroy(&t);
}

/* Random reads of a plain array of n floats: one cache miss each, the floor
 * for a lookup. */
static double array_reads_per_s(uint64_t n, uint64_t ops)
{
    float *a = calloc(n, sizeof *a);
    if (a == NULL)
        return 0;
    for (uint64_t i = 0; i < n; i++)
        a[i] = (float)i;
    volatile float sink = 0;
    uint64_t x = 1;
    double t0 = now_s();
    float acc = 0;
    for (uint64_t i = 0; i < ops; i++) {
        x = splitmix64(x);
        acc += a[((x >> 32) * n) >> 32];
    }
    double s = now_s() - t0;
    sink = acc;
    (void)sink;
    free(a);
    return (double)ops / s;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A request's keys: n of the stored rows at random, sorted and unique (as
 * psd gets them: a trainer's batch), drawn from x. */
static void batch_of(uint64_t *keys, size_t n, uint64_t rows, uint64_t *x)
{
    for (size_t i = 0; i < n; i++) {
        *x = splitmix64(*x);
        keys[i] = key_of(((*x >> 32) * rows) >> 32);
    }
    qsort(keys, n, sizeof *keys, u64_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || keys[i] != keys[m - 1])
            keys[m++] = keys[i];
    for (; m < n; m++) /* the rare repeat: another stored key */
        keys[m] = keys[m - 1];
}

/* The batched calls (ps_table_read_many, ps_table_apply_many) on batches of
 * BATCH sorted keys, beside the single-key calls on the same batches. */
#define BATCH 10000
static void speed_many(ps_table *t, uint64_t rows, uint64_t *x)
{
    static uint64_t keys[BATCH];
    static float out[BATCH], g[BATCH];
    for (size_t i = 0; i < BATCH; i++)
        g[i] = 0.25f;
    size_t batches = (size_t)(rows / BATCH) > 0 ? (size_t)(rows / BATCH) : 1;
    double s[4] = {0, 0, 0, 0};
    float sum = 0;
    for (size_t b = 0; b < batches; b++) {
        for (int op = 0; op < 4; op++) { /* each on a batch of its own: its rows not in cache */
            batch_of(keys, BATCH, rows, x);
            double t0 = now_s();
            if (op == 0)
                for (size_t i = 0; i < BATCH; i++)
                    ps_table_read(t, keys[i], &out[i]);
            else if (op == 1)
                ps_table_read_many(t, keys, BATCH, out);
            else if (op == 2)
                for (size_t i = 0; i < BATCH; i++)
                    ps_table_apply(t, keys[i], &g[i], 1.0f, 3);
            else
                ps_table_apply_many(t, keys, BATCH, g, 1.0f, 3);
            s[op] += now_s() - t0;
        }
        sum += out[b % BATCH];
    }
    double n = (double)batches * BATCH;
    printf("  batches of %d sorted keys (stored), ns a key:\n", BATCH);
    printf("    read            %8.1f   read_many  %8.1f   (%.2f x)\n", s[0] / n * 1e9,
           s[1] / n * 1e9, s[0] / s[1]);
    printf("    apply           %8.1f   apply_many %8.1f   (%.2f x)\n", s[2] / n * 1e9,
           s[3] / n * 1e9, s[2] / s[3]);
    if (sum == 12345.0f)
        printf(" \n"); /* keeps the reads */
}

static void speed(uint64_t rows, const char *ckpt_dir)
{
    printf("speed: %llu rows of dim 1, adagrad, random keys, one thread\n",
           (unsigned long long)rows);
    ps_table *t = table_of(PS_OPTIM_ADAGRAD, 1);
    const float g = 0.5f;
    worst wf;
    double s = fill(t, rows, &g, &wf);
    printf("  fill (new rows)   %8.2f M rows/s\n", (double)rows / s / 1e6);
    worst_print(&wf);
    uint64_t x = 7;
    float w, sum = 0;
    double t0 = now_s();
    for (uint64_t i = 0; i < rows; i++) {
        x = splitmix64(x);
        ps_table_read(t, key_of(((x >> 32) * rows) >> 32), &w);
        sum += w;
    }
    double read_s = now_s() - t0;
    t0 = now_s();
    for (uint64_t i = 0; i < rows; i++) {
        x = splitmix64(x);
        ps_table_apply(t, key_of(((x >> 32) * rows) >> 32), &g, 1.0f, 2);
    }
    double apply_s = now_s() - t0;
    t0 = now_s();
    for (uint64_t i = 0; i < rows; i++) {
        x = splitmix64(x);
        ps_table_read(t, key_of(rows + (x >> 16)), &w); /* never stored: initial rows */
        sum += w;
    }
    double miss_s = now_s() - t0;
    double ref = array_reads_per_s(rows, rows);
    printf("  read              %8.2f M rows/s\n", (double)rows / read_s / 1e6);
    printf("  apply             %8.2f M rows/s\n", (double)rows / apply_s / 1e6);
    printf("  read, not stored  %8.2f M rows/s (initial row computed)\n",
           (double)rows / miss_s / 1e6);
    printf("  reference         %8.2f M reads/s of a %llu-float array at random\n", ref / 1e6,
           (unsigned long long)rows);
    if (sum == 12345.0f)
        printf(" \n"); /* keeps the reads */
    speed_many(t, rows, &x);

    if (ckpt_dir != NULL) {
        ps_ckpt_folder f;
        ps_error err;
        if (ps_ckpt_folder_init(&f, ckpt_dir, 1, true, &err) != 0) {
            fprintf(stderr, "table_bench: %s\n", err.msg);
            exit(1);
        }
        ps_ckpt_meta meta;
        memset(&meta, 0, sizeof meta);
        ps_strlcpy(meta.job, "table-bench", sizeof meta.job);
        meta.version = 2;
        char path[PS_PATH_MAX];
        uint64_t bytes = 0;
        t0 = now_s();
        int rc =
            ps_table_checkpoint_write(&f, &meta, NULL, 0, &t, 1, path, sizeof path, &bytes, &err);
        double w_s = now_s() - t0;
        if (rc != 0) {
            fprintf(stderr, "table_bench: %s\n", err.msg);
            exit(1);
        }
        ps_table *u = table_of(PS_OPTIM_ADAGRAD, 1);
        t0 = now_s();
        rc = ps_table_checkpoint_load(&f, "table-bench", 0, 0, 0, NULL, 0, &u, 1, &meta, NULL, 0,
                                      NULL, &err);
        double l_s = now_s() - t0;
        printf("  checkpoint write  %8.2f s for %.0f MB: %.2f s per GB (serving stalls)\n", w_s,
               (double)bytes / 1e6, w_s / ((double)bytes / 1e9));
        printf("  checkpoint load   %8.2f s (%llu rows; rc %d)\n", l_s,
               (unsigned long long)ps_table_rows(u), rc);
        unlink(path);
        rmdir(ckpt_dir);
        ps_table_destroy(&u);
        ps_ckpt_folder_fini(&f);
    }
    ps_table_destroy(&t);
}

int main(int argc, char **argv)
{
    ps_stdout_guard_install("table_bench");
    uint64_t big = 50000000, small = 16000000;
    const char *ckpt_dir = "/tmp/table-bench-ckpt";
    static const struct option opts[] = {{"rows", required_argument, NULL, 'r'},
                                         {"speed-rows", required_argument, NULL, 's'},
                                         {"ckpt-dir", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "r:s:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            big = strtoull(optarg, NULL, 10);
            break;
        case 's':
            small = strtoull(optarg, NULL, 10);
            break;
        case 'c':
            ckpt_dir = optarg[0] != '\0' ? optarg : NULL;
            break;
        default:
            printf("usage: table_bench [--rows N (50000000; 0: skip)] [--speed-rows N "
                   "(16000000; 0: skip)] [--ckpt-dir DIR (\"\": no checkpoint)]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (big > 0)
        memory(big);
    if (small > 0)
        speed(small, ckpt_dir);
    return 0;
}
