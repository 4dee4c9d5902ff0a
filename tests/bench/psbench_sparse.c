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
 * The end-to-end examples/s of sparse_logistic training through psd is not
 * here yet: see SPARSE_TRAIN below. */
#include "psbench.h"
#include "psworker.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
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
    if (cmd->op == KID_ROWS_FILL) { /* keys 0 .. arg - 1, a batch a push */
        for (uint64_t lo = 0; rc == 0 && lo < cmd->arg; lo += FILL_BATCH) {
            size_t n = cmd->arg - lo < FILL_BATCH ? (size_t)(cmd->arg - lo) : FILL_BATCH;
            for (size_t i = 0; i < n; i++)
                keys[i] = key_of(lo + i);
            keys_sort(keys, tmp, n);
            rc = ps_client_push_rows(c, 0, (*clock)++, keys, n, grads, 1);
        }
        *value = ps_clock_s() - t0;
        return rc;
    }
    if (cmd->op != KID_ROWS_STEP || cmd->arg == 0 || cmd->arg > STEP_MAX)
        return PS_EINVAL;
    size_t n = (size_t)cmd->arg;
    batch_make(keys, tmp, n, rng, fresh); /* the trainer's work, not timed */
    t0 = ps_clock_s();
    rc = ps_client_pull_rows(c, 0, keys, n, rows);
    if (rc == 0)
        rc = ps_client_push_rows(c, 0, (*clock)++, keys, n, grads, 1);
    *value = ps_clock_s() - t0;
    return rc;
}

static int kid_sparse_main(const void *arg, int cmd_fd, int res_fd)
{
    const sparse_conf *sc = arg;
    const char *servers[] = {sc->endpoint};
    ps_client_opts o = {.job = "bench",
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

/* SPARSE_TRAIN: the end-to-end figure, examples/s of sparse_logistic
 * training through psd (psworker on synthetic clicks, psgen) beside the
 * same model trained in one process, belongs here once psworker trains the
 * sparse models; it is not measured yet. */

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
}
