/* psbench_sparse.c — psbench's sparse group (issue 20): one psd shard whose
 * sparse table already holds 16 M keys, filled first by one worker's pushes
 * of 1 M random 64-bit keys each, for sparse_logistic (rows of 1 float,
 * ftrl) and fm with 8 factors (rows of 9, adagrad), as the example jobs
 * train them; then steps of that worker over TCP in async mode: pull the
 * rows of a batch of fresh random keys (one in NEW_EVERY new, the others
 * stored, as in training) and push their gradients. Printed, each beside a
 * reference measured in the same run:
 *   sparse_dimD_step_N            keys/s of a step of N keys, beside a dense
 *                                 push + pull through psd moving the bytes
 *                                 the step moved (read from psd's /metrics),
 *                                 step by step interleaved;
 *   sparse_dimD_step_10k_vs_dense_16M
 *                                 the 10 k-key step beside a dense push +
 *                                 pull of 16 M floats (the target:
 *                                 at most 1/20 of it);
 *   sparse_dimD_key_bytes_10k     the bytes a key takes in the 10 k-key pull
 *                                 request (its header included), from psd's
 *                                 psd_received_bytes_total, beside 8.
 * and the end-to-end training figure:
 *   sparse_train_2w_{async,sync}  examples/s of sparse_logistic trained by
 *                                 2 psworkers and 1 psd on a psgen click
 *                                 log, beside the same training in this
 *                                 process with no server. */
#include "job.h"
#include "psbench.h"
#include "psworker.h"
#include "report_summary.h"
#include "sparse_data.h"
#include "sparse_model.h"
#include "table.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define FILL_KEYS  (16 * (uint64_t)M_FLOATS) /* keys stored before the steps */
#define FILL_BATCH 250000u                   /* keys a push of the fill carries */
#define STEP_MAX   100000u                   /* keys of the biggest step */
#define NEW_EVERY  20                        /* one key in 20 of a step is new: 5 % */
#define SALT       0x5851f42d4c957f2dull
#define HTTP_MAX   (1u << 20) /* bytes of /metrics read at most */

_Static_assert(FILL_BATCH >= STEP_MAX, "a step's keys fit the fill's buffers");

/* ---- keys ----------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* The i-th key: distinct for distinct i (splitmix64 is a bijection) and
 * spread over the whole 64-bit space, as hashed features are. The fill
 * stores keys 0 .. FILL_KEYS - 1; new keys come from FILL_KEYS up. */
static uint64_t key_of(uint64_t i)
{
    return splitmix64(i ^ SALT);
}

/* Sorts n keys (LSD radix, 16 bits a pass; tmp holds n). */
static void keys_sort(uint64_t *a, uint64_t *tmp, size_t n)
{
    static size_t count[1u << 16];
    uint64_t *from = a, *to = tmp;
    for (unsigned shift = 0; shift < 64; shift += 16) {
        memset(count, 0, sizeof count);
        for (size_t i = 0; i < n; i++)
            count[(from[i] >> shift) & 0xffff]++;
        size_t sum = 0;
        for (size_t d = 0; d < (1u << 16); d++) {
            size_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            to[count[(from[i] >> shift) & 0xffff]++] = from[i];
        uint64_t *t = from;
        from = to;
        to = t;
    }
    /* four passes: the sorted keys are back in a */
}

static uint64_t rng_u64(uint64_t *s)
{
    *s += 0x9E3779B97F4A7C15ull;
    return splitmix64(*s);
}

/* A step's n keys, sorted and unique: n - n/NEW_EVERY stored keys at
 * random (start + k·stride modulo FILL_KEYS, stride prime to FILL_KEYS =
 * 2^10·5^6, so all distinct), and n/NEW_EVERY keys never seen before. */
static void batch_make(uint64_t *keys, uint64_t *tmp, size_t n, uint64_t *rng, uint64_t *fresh)
{
    size_t nnew = n / NEW_EVERY, nold = n - nnew;
    uint64_t start = rng_u64(rng) % FILL_KEYS, stride = (rng_u64(rng) % FILL_KEYS) | 1;
    if (stride % 5 == 0)
        stride += 2;
    for (size_t k = 0; k < nold; k++)
        keys[k] = key_of((start + k * stride) % FILL_KEYS);
    for (size_t k = 0; k < nnew; k++)
        keys[nold + k] = key_of((*fresh)++);
    keys_sort(keys, tmp, n);
}

/* ---- the sparse worker ------------------------------------------------------ */

typedef struct sparse_conf {
    const char *endpoint;
} sparse_conf;

/* One command; 0 or the client's error. */
static int sparse_do(ps_client *c, const kid_cmd *cmd, uint64_t *keys, uint64_t *tmp,
                     const float *grads, float *rows, uint64_t *rng, uint64_t *fresh,
                     uint64_t *clock, double *value)
{
    double t0 = ps_clock_s();
    int rc = 0;
    uint32_t dim = 0; /* the rows' floats: the lengths the client checks */
    if (ps_client_table(c, 0, NULL, &dim) != 0)
        return PS_EINVAL;
    if (cmd->op == KID_ROWS_FILL) { /* keys 0 .. arg - 1, a batch a push */
        for (uint64_t lo = 0; rc == 0 && lo < cmd->arg; lo += FILL_BATCH) {
            size_t n = cmd->arg - lo < FILL_BATCH ? (size_t)(cmd->arg - lo) : FILL_BATCH;
            for (size_t i = 0; i < n; i++)
                keys[i] = key_of(lo + i);
            keys_sort(keys, tmp, n);
            rc = ps_client_push_rows(c, 0, (*clock)++, keys, n, grads, n * dim, 1);
        }
        *value = ps_clock_s() - t0;
        return rc;
    }
    if (cmd->op != KID_ROWS_STEP || cmd->arg == 0 || cmd->arg > STEP_MAX)
        return PS_EINVAL;
    size_t n = (size_t)cmd->arg;
    batch_make(keys, tmp, n, rng, fresh); /* the trainer's work, not timed */
    t0 = ps_clock_s();
    rc = ps_client_pull_rows(c, 0, keys, n, rows, n * dim);
    if (rc == 0)
        rc = ps_client_push_rows(c, 0, (*clock)++, keys, n, grads, n * dim, 1);
    *value = ps_clock_s() - t0;
    return rc;
}

static int kid_sparse_main(const void *arg, int cmd_fd, int res_fd)
{
    const sparse_conf *sc = arg;
    const char *servers[] = {sc->endpoint};
    ps_client_opts o = {.size = sizeof(ps_client_opts),
                        .job = "bench",
                        .servers = servers,
                        .num_servers = 1,
                        .rank = 0,
                        .timeout_ms = 120000,
                        .heartbeat_ms = 500, /* psd evicts a worker silent for 3 s */
                        .socket_only = true};
    ps_client *c = NULL;
    char why[256];
    if (ps_client_open(&o, &c, why, sizeof why) != 0) {
        fprintf(stderr, "psbench: sparse worker: %s\n", why);
        return 1;
    }
    const char *name = NULL;
    uint32_t dim = 0;
    if (ps_client_num_tables(c) != 1 || ps_client_table(c, 0, &name, &dim) != 0) {
        fprintf(stderr, "psbench: sparse worker: the job has no sparse table\n");
        return 1;
    }
    uint64_t *keys = malloc(FILL_BATCH * sizeof *keys), *tmp = malloc(FILL_BATCH * sizeof *tmp);
    float *grads = floats_new((size_t)FILL_BATCH * dim, 1e-4f);
    float *rows = floats_new((size_t)STEP_MAX * dim, 0.0f);
    if (keys == NULL || tmp == NULL) {
        fprintf(stderr, "psbench: sparse worker: out of memory\n");
        return 1;
    }
    uint64_t rng = 7, fresh = FILL_KEYS, clock = 0;
    kid_cmd cmd;
    while (read_all(cmd_fd, &cmd, sizeof cmd) && cmd.op != KID_QUIT) {
        kid_res res = {0, 0.0};
        res.rc = sparse_do(c, &cmd, keys, tmp, grads, rows, &rng, &fresh, &clock, &res.value);
        if (res.rc != 0)
            fprintf(stderr, "psbench: sparse worker: %s\n", ps_client_last_error(c));
        if (!write_all(res_fd, &res, sizeof res))
            break;
    }
    ps_client_close(&c);
    free(keys);
    free(tmp);
    free(grads);
    free(rows);
    return 0;
}

/* ---- psd's counters, from /metrics ------------------------------------------ */

typedef struct psd_counts {
    uint64_t rx_pull, rx_push;      /* bytes received: PULL and PUSH messages */
    uint64_t tx_reply, tx_ack;      /* bytes sent: PULL_REPLY and ACK */
    uint64_t rows, bytes, admitted; /* the table's */
} psd_counts;

/* The sum of the samples of metric `name` whose labels hold `label` (or
 * all when NULL) in a Prometheus text. */
static uint64_t metric_sum(const char *text, const char *name, const char *label)
{
    uint64_t sum = 0;
    size_t len = strlen(name);
    for (const char *l = text; l != NULL && *l != '\0';) {
        const char *nl = strchr(l, '\n');
        const char *end = strchr(l, '}');
        if (strncmp(l, name, len) == 0 && l[len] == '{' && end != NULL &&
            (nl == NULL || end < nl)) {
            const char *at = label != NULL ? strstr(l, label) : l;
            if (at != NULL && at < end)
                sum += strtoull(end + 1, NULL, 10);
        }
        l = nl != NULL ? nl + 1 : NULL;
    }
    return sum;
}

/* GET /metrics from psd on 127.0.0.1:port (every wait bounded: 5 s); dies
 * when it cannot. */
static void psd_counts_read(int port, psd_counts *out)
{
    /* psd renders /metrics at most every 100 ms and answers the scrapes in
     * between with the same page: a read right after a step would see the
     * figures from before it */
    usleep(150 * 1000);
    static char buf[HTTP_MAX + 1];
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: psbench\r\nConnection: close\r\n\r\n";
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    size_t len = 0;
    ssize_t r = 0;
    bool ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0 &&
              setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0 &&
              connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write_all(fd, req, strlen(req));
    while (ok && len < HTTP_MAX && (r = read(fd, buf + len, HTTP_MAX - len)) > 0)
        len += (size_t)r;
    if (fd >= 0)
        close(fd);
    buf[len] = '\0';
    if (!ok || r < 0 || strncmp(buf, "HTTP/1.1 200", 12) != 0)
        die("cannot read psd's /metrics on port %d: %s", port, ok ? "bad answer" : strerror(errno));
    out->rx_pull = metric_sum(buf, "psd_received_bytes_total", "type=\"PULL\"");
    out->rx_push = metric_sum(buf, "psd_received_bytes_total", "type=\"PUSH\"");
    out->tx_reply = metric_sum(buf, "psd_sent_bytes_total", "type=\"PULL_REPLY\"");
    out->tx_ack = metric_sum(buf, "psd_sent_bytes_total", "type=\"ACK\"");
    out->rows = metric_sum(buf, "psd_table_rows", NULL);
    out->bytes = metric_sum(buf, "psd_table_bytes", NULL);
    out->admitted = metric_sum(buf, "psd_table_admitted_total", NULL);
}

/* ---- the group ---------------------------------------------------------------- */

typedef struct sparse_model {
    uint32_t dim;
    const char *yaml; /* the job's model and optimizer, as the example jobs */
} sparse_model;

static const sparse_model sparse_models[] = {
    {1, "model: {type: sparse_logistic}\n"
        "optimizer: {type: ftrl, lr: 0.05, beta: 1, l1: 1, l2: 1}\n"},
    {9, "model: {type: fm, factors: 8, init: {scheme: normal, seed: 42}}\n"
        "optimizer: {type: adagrad, lr: 0.05, l2: 0.0001}\n"},
};

static const struct {
    uint32_t keys;
    const char *tag;
    int reps;
} sparse_sizes[] = {{1000, "1k", 100}, {10000, "10k", 40}, {STEP_MAX, "100k", 15}};

/* A psd with a dense θ of p floats and one worker over TCP (async). */
typedef struct dense_ref {
    pid_t psd;
    kid k;
} dense_ref;

static dense_ref dense_start(bench *b, uint64_t p, const char *tag)
{
    char ep[128], job[128];
    endpoint_new(b, false, ep, sizeof ep);
    snprintf(job, sizeof job, "%s/sparse_dense_%s.yaml", b->dir, tag);
    job_write_flat(b, job, "async", 1, ep, p, false);
    dense_ref d = {.psd = psd_start(b, job)};
    kid_conf kc = {.endpoint = ep, .rank = 0, .floats = (size_t)p, .socket_only = true};
    d.k = kid_start(b, &kc);
    return d;
}

static void dense_stop(bench *b, dense_ref *d)
{
    kids_stop(b, &d->k, 1);
    proc_stop(b, d->psd);
}

static bool size_wanted(const bench *b, uint32_t dim, size_t s)
{
    char name[48];
    snprintf(name, sizeof name, "sparse_dim%u_step_%s", dim, sparse_sizes[s].tag);
    if (figure_wanted(b, name))
        return true;
    if (sparse_sizes[s].keys != 10000)
        return false;
    snprintf(name, sizeof name, "sparse_dim%u_key_bytes_10k", dim);
    if (figure_wanted(b, name))
        return true;
    snprintf(name, sizeof name, "sparse_dim%u_step_10k_vs_dense_16M", dim);
    return figure_wanted(b, name);
}

/* One model: psd filled with FILL_KEYS keys, then each size's steps
 * interleaved with its dense reference (and, at 10 k keys, with the 16 M
 * dense push + pull of *big when not NULL). */
static void sparse_pass(bench *b, const sparse_model *sm, dense_ref *big)
{
    char ep[128], job[160], data[128], text[1024];
    endpoint_new(b, false, ep, sizeof ep);
    int port = free_port();
    snprintf(data, sizeof data, "%s/none.tsv", b->dir);
    file_write(data, ""); /* psd never reads it; the loader wants it to exist */
    snprintf(job, sizeof job, "%s/sparse_dim%u.yaml", b->dir, sm->dim);
    snprintf(text, sizeof text,
             "job: bench\nmode: async\nworkers: 1\nservers: [\"%s\"]\n%s"
             "data: {train: %s, format: criteo}\ntraining: {epochs: 1, batch_size: 1}\n"
             "sparse: {min_count: 1}\nlog: {level: warn}\nshared_memory: false\n"
             "metrics: {listen: \"127.0.0.1:%d\"}\n",
             ep, sm->yaml, data, port);
    if (b->threads >= 0) {
        size_t len = strlen(text);
        snprintf(text + len, sizeof text - len, "threads: %d\n", b->threads);
    }
    file_write(job, text);
    pid_t psd = psd_start(b, job);
    sparse_conf sc = {ep};
    kid k = kid_fork(b, NULL, kid_sparse_main, &sc);

    double t0 = ps_clock_s(), push_s;
    kids_step(&k, 1, (kid_cmd){KID_ROWS_FILL, FILL_KEYS}, &push_s);
    double fill_s = ps_clock_s() - t0;
    psd_counts c0, c1;
    psd_counts_read(port, &c0);
    if (c0.rows != FILL_KEYS)
        die("sparse_dim%u: psd holds %llu rows after the fill, not %llu", sm->dim,
            (unsigned long long)c0.rows, (unsigned long long)FILL_KEYS);
    if (!b->json)
        fprintf(stderr,
                "psbench: sparse_dim%u: filled %.0f M keys in %.1f s (%.2f M keys/s, %u keys a "
                "push); psd's table holds %.0f MB, %.1f B a row\n",
                sm->dim, (double)FILL_KEYS / 1e6, fill_s, (double)FILL_KEYS / fill_s / 1e6,
                FILL_BATCH, (double)c0.bytes / 1e6, (double)c0.bytes / (double)c0.rows);

    for (size_t s = 0; s < sizeof sparse_sizes / sizeof sparse_sizes[0]; s++) {
        if (!size_wanted(b, sm->dim, s))
            continue;
        uint32_t n = sparse_sizes[s].keys;
        const char *tag = sparse_sizes[s].tag;
        bool ten_k = n == 10000;
        /* one step with psd's counters read around it: the bytes it moves */
        double probe;
        psd_counts_read(port, &c0);
        kids_step(&k, 1, (kid_cmd){KID_ROWS_STEP, n}, &probe);
        psd_counts_read(port, &c1);
        uint64_t pull_req = c1.rx_pull - c0.rx_pull;
        uint64_t step_bytes = pull_req + (c1.rx_push - c0.rx_push) + (c1.tx_reply - c0.tx_reply) +
                              (c1.tx_ack - c0.tx_ack);
        double new_share = (double)(c1.admitted - c0.admitted) / n;
        /* the dense reference: 4p bytes each way, as many as the step moved */
        uint64_t p = (step_bytes + 7) / 8;
        dense_ref d = dense_start(b, p, tag);
        int r = reps(b, sparse_sizes[s].reps);
        double *ts = calloc((size_t)r, sizeof *ts), *td = calloc((size_t)r, sizeof *td);
        double *tb = calloc((size_t)r, sizeof *tb);
        if (ts == NULL || td == NULL || tb == NULL)
            die("out of memory");
        for (int i = -2; i < r; i++) { /* two warm-up steps, not counted */
            double a, c, h = 0;
            kids_step(&k, 1, (kid_cmd){KID_ROWS_STEP, n}, &a);
            kids_step(&d.k, 1, (kid_cmd){KID_PUSHPULL, 0}, &c);
            if (ten_k && big != NULL)
                kids_step(&big->k, 1, (kid_cmd){KID_PUSHPULL, 0}, &h);
            if (i >= 0) {
                ts[i] = a;
                td[i] = c;
                tb[i] = h;
            }
        }
        dense_stop(b, &d);
        double ms = median(ts, (size_t)r), md = median(td, (size_t)r);
        char name[48], ref_is[64];
        if (!b->json)
            fprintf(stderr,
                    "psbench: sparse_dim%u_step_%s: a step moves %.1f kB (psd's /metrics: "
                    "pull %llu + rows %llu B, push %llu + ack %llu B), %.1f %% of its keys new\n",
                    sm->dim, tag, (double)step_bytes / 1e3, (unsigned long long)pull_req,
                    (unsigned long long)(c1.tx_reply - c0.tx_reply),
                    (unsigned long long)(c1.rx_push - c0.rx_push),
                    (unsigned long long)(c1.tx_ack - c0.tx_ack), 100.0 * new_share);
        snprintf(name, sizeof name, "sparse_dim%u_step_%s", sm->dim, tag);
        snprintf(ref_is, sizeof ref_is, "psd dense push+pull, same %.3g kB, tcp",
                 (double)(8 * p) / 1e3);
        if (figure_wanted(b, name))
            figure_add(b, name, n / ms, n / md, "keys/s", ref_is);
        if (ten_k && big != NULL) {
            snprintf(name, sizeof name, "sparse_dim%u_step_10k_vs_dense_16M", sm->dim);
            figure_add(b, name, ms * 1e3, median(tb, (size_t)r) * 1e3, "ms",
                       "psd dense push+pull of 16M floats, tcp");
        }
        snprintf(name, sizeof name, "sparse_dim%u_key_bytes_10k", sm->dim);
        if (ten_k && figure_wanted(b, name))
            figure_add(b, name, (double)pull_req / n, 8.0, "B/key",
                       "a raw uint64 key (the pull's header counted)");
        free(ts);
        free(td);
        free(tb);
    }
    kids_stop(b, &k, 1);
    proc_stop(b, psd);
}

/* ---- sparse_train_2w: sparse_logistic trained end to end ------------------ */

/* The end-to-end figure: sparse_logistic (ftrl, batch 512, as
 * config/examples/clicks_logistic.yaml) on a psgen click log held in
 * memory, 2 psworkers and 1 psd on this host, in async and in sync: the
 * examples/s of the workers' summaries summed, beside the same model
 * trained on the same rows in this process with no server (the same table
 * code, the same gradients and shuffle, one thread). Both sides cover the
 * same work per example: one pass of training and the final evaluation of
 * the training rows and the test rows (each worker evaluates its shard and
 * the whole test set, which is kept small). */
#define TRAIN_ROWS   300000u /* training rows of the log */
#define TRAIN_TEST   2000u   /* its test rows */
#define TRAIN_SEED   "7"
#define TRAIN_BATCH  512u
#define TRAIN_WAIT_S 600.0    /* a job or psgen that takes longer has hung */
#define TRAIN_TARGET 150000.0 /* the examples/s with 2 workers and 1 shard */

static const char train_yaml[] = "model: {type: sparse_logistic}\n"
                                 "optimizer: {type: ftrl, lr: 0.05, beta: 1, l1: 1, l2: 1}\n"
                                 "training: {epochs: 1, batch_size: 512, seed: 7}\n";

/* Waits for the n processes (tracked by spawn) to exit, at most timeout_s;
 * dies when one fails or the time is up. */
static void procs_wait(bench *b, const pid_t *pids, size_t n, const char *what, double timeout_s)
{
    double deadline = ps_clock_s() + timeout_s;
    size_t left = n;
    bool done[MAX_PROCS] = {false};
    while (left > 0) {
        for (size_t i = 0; i < n; i++) {
            int st = 0;
            if (done[i] || waitpid(pids[i], &st, WNOHANG) != pids[i])
                continue;
            done[i] = true;
            left--;
            for (size_t j = 0; j < b->nprocs; j++)
                if (b->procs[j] == pids[i])
                    b->procs[j] = b->procs[--b->nprocs];
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                die("%s failed (status %d)", what, st);
        }
        if (left > 0 && ps_clock_s() > deadline)
            die("%s did not end within %.0f s", what, timeout_s);
        if (left > 0)
            usleep(20000);
    }
}

/* What one run of the job gave: the workers' figures summed. */
typedef struct train_run {
    double per_s;                     /* examples/s, the summaries' samples_per_s summed */
    double examples;                  /* trained */
    double wall_s;                    /* the slowest worker's */
    double pull_s, compute_s, push_s; /* summed over the workers */
    double auc;                       /* rank 0's test AUC */
    double job_s; /* psd started to both workers exited: reading the data included */
} train_run;

/* One job of 2 workers and 1 psd in mode `mode` on the log at prefix. */
static train_run train_through_psd_sparse(bench *b, const char *prefix, const char *mode)
{
    char ep[128], job[160], text[1024], sum[2][160], rank[2][8];
    endpoint_new(b, false, ep, sizeof ep);
    snprintf(job, sizeof job, "%s/sparse_train_%s.yaml", b->dir, mode);
    snprintf(text, sizeof text,
             "job: bench-sparse-train\nmode: %s\nworkers: 2\nservers: [\"%s\"]\n%s"
             "data: {train: %s.train.tsv, test: %s.test.tsv, format: criteo, shard: stride}\n"
             "log: {level: warn}\n",
             mode, ep, train_yaml, prefix, prefix);
    file_write(job, text);
    double t0 = ps_clock_s();
    pid_t psd = psd_start(b, job), w[2];
    for (int r = 0; r < 2; r++) {
        snprintf(sum[r], sizeof sum[r], "%s/sparse_train_%s.w%d.json", b->dir, mode, r);
        snprintf(rank[r], sizeof rank[r], "%d", r);
        unlink(sum[r]);
        char *argv[] = {"psworker",       "--config", job,           "--rank", rank[r],
                        "--summary-json", sum[r],     "--log-level", "warn",   NULL};
        w[r] = spawn(b, "psworker", argv);
    }
    procs_wait(b, w, 2, "psworker (sparse_train)", TRAIN_WAIT_S);
    train_run out = {.job_s = ps_clock_s() - t0};
    proc_stop(b, psd);
    for (int r = 0; r < 2; r++) {
        ps_report_summary s;
        ps_error err;
        if (ps_report_summary_read(sum[r], &s, &err) != 0)
            die("sparse_train: %s", err.msg);
        out.per_s += s.samples_per_s;
        out.examples += s.samples_per_s * s.wall_s;
        out.wall_s = s.wall_s > out.wall_s ? s.wall_s : out.wall_s;
        out.pull_s += s.pull_s;
        out.compute_s += s.compute_s;
        out.push_s += s.push_pull_s;
        if (r == 0)
            out.auc = s.has_test && s.has_auc ? s.test_auc : NAN;
        ps_report_summary_fini(&s);
    }
    return out;
}

/* FTRL-Proximal of one weight, as psd updates the bias (the table's rule). */
typedef struct ftrl1 {
    float z, n;
} ftrl1;

static float ftrl1_weight(const ps_job *job, const ftrl1 *f)
{
    float l1 = (float)job->optimizer.l1, shrunk = fabsf(f->z) - l1;
    if (!(shrunk > 0.0f))
        return 0.0f;
    float den = ((float)job->optimizer.beta + sqrtf(f->n)) / (float)job->optimizer.lr +
                (float)job->optimizer.l2;
    return -copysignf(shrunk, f->z) / den;
}

static void ftrl1_update(const ps_job *job, ftrl1 *f, float g)
{
    float w = ftrl1_weight(job, f), n1 = f->n + g * g;
    f->z += g - (sqrtf(n1) - sqrtf(f->n)) / (float)job->optimizer.lr * w;
    f->n = n1;
}

/* Evaluates the rows of set (slices of 4096, as psworker) on the table and
 * bias: the work of a worker's final evaluation; returns the AUC. */
static double train_eval(ps_sparse_model *m, ps_table *t, const ps_sparse_batch *set, float bias,
                         float *rows, float *scores)
{
    ps_sparse_eval ev = {0};
    for (size_t lo = 0; lo < set->rows; lo += 4096) {
        size_t hi = lo + 4096 < set->rows ? lo + 4096 : set->rows;
        ps_sparse_batch w = *set;
        w.rows = hi - lo;
        w.offsets = set->offsets + lo;
        w.labels = set->labels + lo;
        w.lines = set->lines + lo;
        const uint64_t *keys;
        size_t nkeys;
        if (ps_sparse_model_keys(m, &w, &keys, &nkeys) != 0 ||
            ps_table_read_many(t, keys, nkeys, rows) != 0 ||
            ps_sparse_model_predict(m, &w, rows, bias, scores + lo, &ev) != 0)
            die("sparse_train: evaluation failed");
    }
    ps_model_metrics mm;
    if (ps_sparse_model_metrics(&ev, scores, set->labels, set->rows, &mm) != 0)
        die("sparse_train: metrics failed");
    return mm.auc;
}

/* The same training in this process: the worker's steps (a shuffled
 * batch gathered, its keys, their rows read, the gradient, the rows'
 * gradients applied as sums and the bias's as a mean) on a table of its
 * own, then the final evaluation of the training and the test rows.
 * Returns examples/s; *auc gets the test AUC. */
static double train_in_process_sparse(const ps_job *job, const ps_sparse_data *train,
                                      const ps_sparse_data *test, double *auc)
{
    ps_table_spec spec;
    size_t ntables = 0;
    ps_error err;
    ps_sparse_spec sspec;
    ps_sparse_spec_from_job(job, &sspec);
    if (ps_job_tables(job, &spec, 1, &ntables) != 0 || ntables != 1)
        die("sparse_train: the job has no table");
    ps_table *t = ps_table_new(job, 0, &spec, 0, 1, &err);
    const ps_sparse_batch *all = ps_sparse_rows(train), *tst = ps_sparse_rows(test);
    size_t n = all->rows, b = TRAIN_BATCH, eval_max = 4096, nnz = 0;
    for (size_t r = 0; r < n; r++) {
        size_t f = all->offsets[r + 1] - all->offsets[r];
        nnz = f > nnz ? f : nnz;
    }
    ps_sparse_model *m = NULL;
    ps_sparse_batch batch = {0};
    size_t max_rows = b > eval_max ? b : eval_max, max_nnz = max_rows * nnz;
    if (t == NULL || ps_sparse_model_new(&sspec, max_rows, max_nnz, &m, &err) != 0 ||
        ps_sparse_batch_init(&batch, PS_FORMAT_CRITEO, b, b * nnz, &err) != 0)
        die("sparse_train: %s", err.msg);
    float *rows = floats_new(max_nnz, 0.0f), *grads = floats_new(max_nnz, 0.0f);
    float *scores = floats_new(n > tst->rows ? n : tst->rows, 0.0f);
    size_t *perm = malloc(n * sizeof *perm);
    if (perm == NULL)
        die("out of memory");
    ftrl1 bias = {0, 0};
    uint64_t s = 7, version = 0;
    double t0 = ps_clock_s();
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        size_t j = (size_t)((s >> 11) % (i + 1)), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    for (size_t lo = 0; lo < n; lo += b) {
        size_t hi = lo + b < n ? lo + b : n;
        batch.rows = 0;
        batch.offsets[0] = 0;
        for (size_t p = lo; p < hi; p++) { /* as sparse_step gathers a batch */
            size_t r = perm[p], at = batch.offsets[batch.rows];
            size_t f0 = all->offsets[r], f = all->offsets[r + 1] - f0;
            memcpy(batch.keys + at, all->keys + f0, f * sizeof *batch.keys);
            batch.labels[batch.rows] = all->labels[r];
            batch.lines[batch.rows] = all->lines[r];
            batch.offsets[++batch.rows] = at + f;
        }
        const uint64_t *keys;
        size_t nkeys;
        float gb;
        double loss;
        float w0 = ftrl1_weight(job, &bias);
        if (ps_sparse_model_keys(m, &batch, &keys, &nkeys) != 0 ||
            ps_table_read_many(t, keys, nkeys, rows) != 0 ||
            ps_sparse_model_grad(m, &batch, rows, w0, grads, &gb, &loss) != 0)
            die("sparse_train: a step failed");
        for (size_t k = 0; k < nkeys; k++)
            grads[k] *= (float)batch.rows;
        ps_table_apply_many(t, keys, nkeys, grads, 1.0f, ++version);
        ftrl1_update(job, &bias, gb);
    }
    float w0 = ftrl1_weight(job, &bias);
    train_eval(m, t, all, w0, rows, scores);
    *auc = train_eval(m, t, tst, w0, rows, scores);
    double dt = ps_clock_s() - t0;
    free(rows);
    free(grads);
    free(scores);
    free(perm);
    ps_sparse_batch_fini(&batch);
    ps_sparse_model_destroy(&m);
    ps_table_destroy(&t);
    return (double)n / dt;
}

static void bench_sparse_train(bench *b)
{
    char prefix[128], job[160], text[512];
    snprintf(prefix, sizeof prefix, "%s/clicks", b->dir);
    char rows[16], test[16];
    snprintf(rows, sizeof rows, "%u", TRAIN_ROWS);
    snprintf(test, sizeof test, "%u", TRAIN_TEST);
    char *argv[] = {"psgen",  "clicks",   "--rows", rows,   "--test-rows", test,
                    "--seed", TRAIN_SEED, "--out",  prefix, NULL};
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    int saved = dup(STDOUT_FILENO);
    if (devnull >= 0 && saved >= 0)
        dup2(devnull, STDOUT_FILENO); /* psgen's line: not psbench's output */
    pid_t g = spawn(b, "psgen", argv);
    if (saved >= 0) {
        dup2(saved, STDOUT_FILENO);
        close(saved);
    }
    if (devnull >= 0)
        close(devnull);
    procs_wait(b, &g, 1, "psgen clicks", TRAIN_WAIT_S);
    /* the reference's job, data and model, read as psworker reads them */
    snprintf(job, sizeof job, "%s/sparse_train_ref.yaml", b->dir);
    snprintf(text, sizeof text,
             "job: bench-sparse-train\nmode: async\nworkers: 1\nservers: [\"tcp://127.0.0.1:1\"]\n"
             "%sdata: {train: %s.train.tsv, format: criteo}\n",
             train_yaml, prefix);
    file_write(job, text);
    ps_job jb;
    ps_error err;
    ps_sparse_data *train = NULL, *tst = NULL;
    char path[160];
    if (ps_job_load(job, &jb, &err) != 0)
        die("%s", err.msg);
    snprintf(path, sizeof path, "%s.train.tsv", prefix);
    if (ps_sparse_read(path, PS_FORMAT_CRITEO, NULL, &train, &err) != 0)
        die("%s", err.msg);
    snprintf(path, sizeof path, "%s.test.tsv", prefix);
    if (ps_sparse_read(path, PS_FORMAT_CRITEO, NULL, &tst, &err) != 0)
        die("%s", err.msg);
    static const char *const modes[] = {"async", "sync"};
    int r = reps(b, 3);
    train_run runs[2][MAX_REPS];
    double ref[MAX_REPS], ref_auc = NAN;
    for (int i = 0; i < r; i++) { /* the jobs and the reference alternate */
        for (int k = 0; k < 2; k++)
            runs[k][i] = train_through_psd_sparse(b, prefix, modes[k]);
        ref[i] = train_in_process_sparse(&jb, train, tst, &ref_auc);
    }
    ps_sparse_destroy(&train);
    ps_sparse_destroy(&tst);
    double in_process = median(ref, (size_t)r);
    for (int k = 0; k < 2; k++) {
        double v[MAX_REPS], loop[MAX_REPS], pull[MAX_REPS], comp[MAX_REPS], push[MAX_REPS];
        double other[MAX_REPS], whole[MAX_REPS];
        for (int i = 0; i < r; i++) {
            const train_run *x = &runs[k][i];
            double busy = x->pull_s + x->compute_s + x->push_s, all_s = 2 * x->wall_s;
            v[i] = x->per_s;
            whole[i] = x->examples / x->job_s;
            loop[i] = x->examples / (busy / 2); /* the two workers' training loops, side by side */
            pull[i] = x->pull_s / all_s;
            comp[i] = x->compute_s / all_s;
            push[i] = x->push_s / all_s;
            other[i] = 1 - (x->pull_s + x->compute_s + x->push_s) / all_s;
        }
        char name[48], ref_is[64];
        snprintf(name, sizeof name, "sparse_train_2w_%s", modes[k]);
        snprintf(ref_is, sizeof ref_is, "one process, no server, same %uk rows", TRAIN_ROWS / 1000);
        double ours = median(v, (size_t)r);
        if (!b->json)
            fprintf(stderr,
                    "psbench: %s: %.0f examples/s (target %.0f: %s); the whole job, processes "
                    "started to exit, data read included, %.0f/s; the training loops alone "
                    "%.0f/s; the workers' time: pull %.0f %%, compute %.0f %%, push+pull %.0f "
                    "%%, else (start, evaluation) %.0f %%; test AUC %.4f (in-process %.4f)\n",
                    name, ours, TRAIN_TARGET, ours >= TRAIN_TARGET ? "met" : "not met",
                    median(whole, (size_t)r), median(loop, (size_t)r),
                    100 * median(pull, (size_t)r), 100 * median(comp, (size_t)r),
                    100 * median(push, (size_t)r), 100 * median(other, (size_t)r), runs[k][0].auc,
                    ref_auc);
        figure_add(b, name, ours, in_process, "examples/s", ref_is);
    }
}

void bench_sparse(bench *b)
{
    bool any[2] = {false, false}, big_wanted = false;
    for (size_t m = 0; m < 2; m++) {
        char name[48];
        for (size_t s = 0; s < sizeof sparse_sizes / sizeof sparse_sizes[0]; s++)
            any[m] = any[m] || size_wanted(b, sparse_models[m].dim, s);
        snprintf(name, sizeof name, "sparse_dim%u_step_10k_vs_dense_16M", sparse_models[m].dim);
        if (figure_wanted(b, name)) {
            any[m] = true;
            big_wanted = true;
        }
    }
    dense_ref big;
    if (big_wanted)
        big = dense_start(b, 16 * (uint64_t)M_FLOATS, "16M");
    for (size_t m = 0; m < 2; m++)
        if (any[m])
            sparse_pass(b, &sparse_models[m], big_wanted ? &big : NULL);
    if (big_wanted)
        dense_stop(b, &big);
    if (figure_wanted(b, "sparse_train_2w_async") || figure_wanted(b, "sparse_train_2w_sync"))
        bench_sparse_train(b);
}
