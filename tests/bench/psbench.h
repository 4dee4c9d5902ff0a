/* psbench.h — what psbench.c shares with the groups in files of their own
 * (psbench_sparse.c): the figures, the run's state, the child processes
 * (psd, workers driven over pipes) and the helpers every group uses. */
#ifndef PS_PSBENCH_H
#define PS_PSBENCH_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MAX_FIGURES 160
#define MAX_KIDS    32
#define MAX_PROCS   32
#define MAX_REPS    200
#define M_FLOATS    1000000u

/* ---- figures ----------------------------------------------------------- */

typedef struct figure {
    char name[48];
    double ours, ref, ratio;
    const char *unit;
    char ref_is[64]; /* what the reference is, for the table */
} figure;

typedef struct bench {
    bool json;
    double scale;            /* repetitions scale */
    const char *only;        /* run only the groups whose name starts with this */
    const char *train_model; /* (d): logistic or mlp */
    const char *push_codec;  /* push + pull jobs: push compression, NULL: none */
    int scrape_hz;           /* (h): scrapes of /metrics a second during a sync job */
    int threads;             /* psd's threads: in the jobs written; -1: the job's default */
    const char *sync_chunk;  /* sync_chunk_kib in the jobs written; NULL: the job's default */
    const char *pull_codec;  /* ... and pull compression */
    char dir[64];            /* temporary folder: job files, data, ipc sockets */
    char bindir[PATH_MAX];
    int next_ipc;
    figure figs[MAX_FIGURES];
    size_t nfigs;
    pid_t procs[MAX_PROCS]; /* live children, stopped on the way out */
    size_t nprocs;
    /* across hosts: psd and the raw server in netns_server, bound to host;
     * worker i (psd's or raw) in netns_workers[i % n_netns_workers] */
    const char *netns_server;
    char *netns_workers[MAX_KIDS];
    unsigned n_netns_workers;
    const char *host;
    /* (i) swarm: the numbers of workers (the first is the reference), the
     * seconds each is measured, and whether psd's STATUS is checked */
    unsigned swarm_n[8];
    size_t swarm_nn;
    double swarm_seconds;
    bool swarm_check;
} bench;

/* A figure beside its reference (ratio ours / reference), printed at once
 * on stderr unless --json. */
void figure_add(bench *b, const char *name, double ours, double ref, const char *unit,
                const char *ref_is);
/* The median of n values (sorted in place); 0 for none. */
double median(double *v, size_t n);
/* n repetitions scaled by --reps, at least 3 and at most MAX_REPS. */
int reps(const bench *b, int n);
/* A figure of a wanted group: with --only naming more than the group, only
 * the figures whose name starts with it. */
bool figure_wanted(const bench *b, const char *name);
/* Says what went wrong and exits 1; the children get SIGTERM. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- processes, endpoints, job files ----------------------------------- */

/* In a child just forked: SIGTERM when psbench exits, however it exits. */
void child_init(void);
void proc_track(bench *b, pid_t pid);
/* SIGTERM to pid, then waits for it; false when it did not exit 0. */
bool proc_stop(bench *b, pid_t pid);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int free_port(void);
/* A fresh endpoint: tcp on 127.0.0.1 (or --host), or ipc in the folder. */
void endpoint_new(bench *b, bool ipc, char *out, size_t cap);
void file_write(const char *path, const char *text);
/* A job whose θ has exactly p floats (a linear model of p - 1 features). */
void job_write_flat(bench *b, const char *path, const char *mode, unsigned workers,
                    const char *endpoint, uint64_t p, bool shm);
/* psd --config job_path, tracked. */
pid_t psd_start(bench *b, const char *job_path);
/* The program prog of psbench's own folder (psd, psworker, psgen) with
 * argv, tracked. */
pid_t spawn(bench *b, const char *prog, char *const argv[]);
float *floats_new(size_t n, float value);

/* ---- worker processes, driven over pipes ------------------------------- */

typedef enum kid_op {
    KID_QUIT,
    KID_PUSHPULL,  /* psd: push with a pull behind it (async); raw: request, reply */
    KID_ROUND,     /* psd sync: push clock arg, pull version arg + 1 behind it */
    KID_FOR,       /* arg ms of pulls (raw: requests); value = per second */
    KID_ROWS_FILL, /* sparse (psbench_sparse.c): push arg keys in big batches; value = s */
    KID_ROWS_STEP, /* sparse: pull the rows of arg fresh keys, push their gradients; value = s */
} kid_op;

typedef struct kid_cmd {
    int op;
    uint64_t arg;
} kid_cmd;

typedef struct kid_res {
    int rc;
    double value; /* seconds, or per second */
} kid_res;

typedef struct kid_conf {
    bool raw;             /* raw ZeroMQ DEALER, not a psd worker */
    const char *endpoint; /* of psd or the raw server */
    int rank;
    size_t floats;          /* psd: θ size */
    bool socket_only;       /* psd: no shared memory */
    size_t req_bytes;       /* raw: request bytes */
    const char *netns;      /* the network namespace it runs in; NULL: psbench's */
    const char *push_codec; /* psd: push compression, NULL: none */
    const char *curve_dir;  /* psd: CURVE with keys psd.key and w.key_secret here; NULL: off */
} kid_conf;

typedef struct kid {
    pid_t pid;
    int cmd_fd, res_fd;
} kid;

bool read_all(int fd, void *buf, size_t n);
bool write_all(int fd, const void *buf, size_t n);
/* A child running main(arg, cmd_fd, res_fd): it reads kid_cmds from cmd_fd
 * and answers each with a kid_res on res_fd until KID_QUIT; its exit
 * status is main's return. */
kid kid_fork(bench *b, const char *netns, int (*main_fn)(const void *arg, int cmd_fd, int res_fd),
             const void *arg);
/* A psd worker or a raw ZeroMQ client as kc says. */
kid kid_start(bench *b, const kid_conf *kc);
/* Sends cmd to all n kids at once, then collects their results into out;
 * dies when one fails. */
void kids_step(kid *k, size_t n, kid_cmd cmd, double *out);
void kids_stop(bench *b, kid *k, size_t n);

/* ---- groups in files of their own -------------------------------------- */

/* psbench_sparse.c: sparse tables (sparse_logistic, fm) against a shard
 * holding 16 M keys. */
void bench_sparse(bench *b);
/* psbench_swarm.c: N logical workers from one process, N = swarm_n. */
void bench_swarm(bench *b);

#endif
