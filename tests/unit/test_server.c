/* test_server.c — the real ZeroMQ loop in a thread on loopback: malformed and
 * foreign messages sent over a raw DEALER each get an ERROR with the right
 * code, and a worker using the client library still trains through the same
 * server afterwards; a pull reply still on the wire is not changed by a push
 * applied meanwhile; requests of sparse rows far bigger than a sparse job's
 * dense θ are served. Every wait is bounded; the loop stops by its flag. */
#include <arpa/inet.h>
#include <check.h>

#include "check_main.h"
#include "test_jobs.h"
#include "loopback.h"
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "client_impl.h" /* what a push sent, and its fallback */
#include "codec.h"
#include "keys.h"
#include "psworker.h"
#include "server.h"
#include "shm.h"
#include "wire.h"

#define P       4 /* logistic, 3 features */
#define WAIT_MS 5000

static void job_logistic(ps_job *job, int port)
{
    ps_test_job_logistic(job, "server-test", PS_MODE_SYNC, 1, port);
}

typedef struct runner {
    ps_server *srv;
    volatile sig_atomic_t stop;
    int rc;
    ps_error err;
} runner;

static void *run_thread(void *arg)
{
    runner *r = arg;
    r->rc = ps_server_run(r->srv, &r->stop, NULL, &r->err);
    return NULL;
}

static void *dealer_new(void *zctx, const char *endpoint)
{
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    ck_assert_ptr_nonnull(s);
    int wait = WAIT_MS, linger = 0;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &wait, sizeof wait);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &wait, sizeof wait);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    ck_assert_int_eq(zmq_connect(s, endpoint), 0);
    return s;
}

/* Sends header (and payload when not NULL) as raw frames. */
static void send_raw(void *s, const void *hdr, size_t hdr_len, const void *payload,
                     size_t payload_len)
{
    ck_assert_int_ge(zmq_send(s, hdr, hdr_len, payload ? ZMQ_SNDMORE : 0), 0);
    if (payload)
        ck_assert_int_ge(zmq_send(s, payload, payload_len, 0), 0);
}

static void send_msg(void *s, const ps_msg *m, const void *payload, size_t payload_len)
{
    unsigned char hdr[1024];
    size_t len = 0;
    ck_assert_int_eq(ps_codec_encode(m, hdr, sizeof hdr, &len), 0);
    send_raw(s, hdr, len, payload, payload_len);
}

/* Awaits one reply (bounded by ZMQ_RCVTIMEO) and checks it is an ERROR. */
static void expect_error(void *s, uint64_t seq, int code, const char *text)
{
    static ps_msg m;
    ps_frames f;
    ps_error err;
    int rc = ps_wire_recv(s, false, 0, &f, &m, &err);
    ps_frames_close(&f);
    ck_assert_msg(rc == 0, "no reply: %s", err.msg);
    ck_assert_int_eq(m.type, PS_MSG_ERROR);
    ck_assert_int_eq(m.status, code);
    ck_assert_uint_eq(m.seq, seq);
    ck_assert_str_eq(m.error, text);
}

static void request_init(ps_msg *m, ps_msg_type type, uint64_t seq)
{
    ps_msg_init(m, type);
    m->job = "server-test";
    m->seq = seq;
}

/* Shard `index` of job on a thread of its own; stop it with r->stop. */
static pthread_t runner_start_shard(runner *r, const ps_job *job, uint32_t index)
{
    static const ps_log lg = {PS_LOG_ERROR, "test_server"};
    r->stop = 0;
    r->srv = ps_server_new(job, index, &lg, &r->err);
    ck_assert_msg(r->srv != NULL, "server: %s", r->err.msg);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, run_thread, r), 0);
    return th;
}

/* A server for job (one shard) on a thread of its own. */
static pthread_t runner_start(runner *r, const ps_job *job)
{
    return runner_start_shard(r, job, 0);
}

/* Stops the server runner_start started; its stats in *st. */
static void runner_stop(runner *r, pthread_t th, ps_engine_stats *st)
{
    r->stop = 1;
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_msg(r->rc == 0, "run: %s", r->err.msg);
    ps_server_stats_get(r->srv, st);
}

START_TEST(server_refuses_bad_messages_and_keeps_serving)
{
    static ps_job job;
    job_logistic(&job, ps_test_free_port());
    static runner r;
    pthread_t th = runner_start(&r, &job);

    void *zctx = zmq_ctx_new();
    void *s = dealer_new(zctx, job.servers[0]);
    static ps_msg m;

    /* a header frame that is not a protobuf */
    send_raw(s, "\xff\xff\xff", 3, NULL, 0);
    expect_error(s, 0, PS_EPROTO, "header frame of 3 bytes is not a valid Header");

    /* a PUSH whose payload frame is shorter than payload_bytes */
    request_init(&m, PS_MSG_PUSH, 11);
    m.key_hi = P;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = P * sizeof(float);
    float half[2] = {1, 1};
    send_msg(s, &m, half, sizeof half);
    expect_error(s, 11, PS_EPAYLOAD, "PUSH header announces 16 payload bytes, the frame has 8");

    /* an unknown message type */
    request_init(&m, (ps_msg_type)42, 12);
    send_msg(s, &m, NULL, 0);
    expect_error(s, 12, PS_ETYPE, "unknown message type 42");

    /* another job's name */
    request_init(&m, PS_MSG_HELLO, 13);
    m.job = "other-job";
    m.rank = -1;
    send_msg(s, &m, NULL, 0);
    expect_error(s, 13, PS_EJOB, "job \"other-job\" is not this server's job \"server-test\"");

    /* another protocol version */
    request_init(&m, PS_MSG_HELLO, 14);
    m.protocol = 1;
    m.rank = -1;
    send_msg(s, &m, NULL, 0);
    expect_error(s, 14, PS_EVERSION, "protocol version 1 is not this server's 2");

    /* a real worker still trains a step */
    const char *servers[1] = {job.servers[0]};
    ps_client_opts opts = {.size = sizeof(ps_client_opts),
                           .job = "server-test",
                           .servers = servers,
                           .num_servers = 1,
                           .rank = -1,
                           .timeout_ms = WAIT_MS};
    ps_client *c = NULL;
    char errbuf[256] = "";
    ck_assert_msg(ps_client_open(&opts, &c, errbuf, sizeof errbuf) == 0, "open: %s", errbuf);
    ck_assert_uint_eq(ps_client_num_params(c), P);
    ck_assert_int_eq(ps_client_rank(c), 0);
    float theta[P] = {9, 9, 9, 9};
    uint64_t version = 99;
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, &version), 0);
    ck_assert_uint_eq(version, 0);
    for (size_t i = 0; i < P; i++)
        ck_assert_float_eq(theta[i], 0.0f);
    float g[P] = {2, 4, 6, 8};
    ck_assert_int_eq(ps_client_push(c, 0, g, P, 32, &version), 0);
    ck_assert_uint_eq(version, 1);
    ck_assert_int_eq(ps_client_pull(c, 1, theta, P, &version), 0);
    ck_assert_uint_eq(version, 1);
    float want[P] = {-1, -2, -3, -4};
    for (size_t i = 0; i < P; i++)
        ck_assert_float_eq(theta[i], want[i]);
    /* push + pull in one exchange, θ left in the reply's frame (one shard);
     * each step's view is the θ of the next round */
    for (uint64_t t = 1; t <= 2; t++) {
        ps_push_pull pp = {.size = sizeof(ps_push_pull),
                           .clock = t,
                           .grad = g,
                           .n = P,
                           .samples = 32,
                           .min_version = t + 1};
        ck_assert_int_eq(ps_client_push_pull(c, &pp), 0);
        ck_assert_int_eq(pp.pulled, 1);
        ck_assert_uint_eq(pp.version, t + 1);
        ck_assert_ptr_nonnull(pp.view);
        for (size_t i = 0; i < P; i++)
            ck_assert_float_eq(pp.view[i], (float)(t + 1) * want[i]);
    }
    ck_assert_int_eq(ps_client_close(&c), 0);
    ck_assert_ptr_null(c);

    zmq_close(s);
    zmq_ctx_term(zctx);
    ps_engine_stats st;
    runner_stop(&r, th, &st);
    ck_assert_uint_eq(st.version, 3);
    ck_assert_uint_eq(st.pushes, 3);
    ck_assert_uint_eq(st.pulls, 4);
    ck_assert_uint_eq(st.errors, 5);
    ck_assert_uint_eq(st.live_workers, 0);
    ps_server_destroy(&r.srv);
    ck_assert_ptr_null(r.srv);
}
END_TEST

/* ps_client_server_stats fills the caller's arrays up to their cap and
 * says how many ranks the server knows, past the cap too. */
START_TEST(server_stats_fill_the_callers_arrays_up_to_cap)
{
    static ps_job job;
    job_logistic(&job, ps_test_free_port());
    job.mode = PS_MODE_ASYNC;
    job.workers = 2;
    static runner r;
    pthread_t th = runner_start(&r, &job);
    const char *eps[] = {job.servers[0]};
    ps_client *c[2] = {NULL, NULL};
    float g[P] = {1, 1, 1, 1};
    for (int k = 0; k < 2; k++) {
        ps_client_opts o;
        ps_client_opts_init(&o);
        o.job = "server-test";
        o.servers = eps;
        o.num_servers = 1;
        o.rank = k;
        o.timeout_ms = WAIT_MS;
        char why[256] = "";
        ck_assert_msg(ps_client_open(&o, &c[k], why, sizeof why) == 0, "open: %s", why);
        for (int t = 0; t <= k; t++) /* rank 0 pushes once, rank 1 twice */
            ck_assert_int_eq(ps_client_push(c[k], (uint64_t)t, g, P, 8, NULL), 0);
    }
    uint64_t clock[2] = {777, 777}, pushes[2] = {777, 777};
    ps_server_stats st;
    ps_server_stats_init(&st, clock, pushes, 1); /* room for one rank of two */
    ck_assert_msg(ps_client_server_stats(c[1], &st) == 0, "stats: %s", ps_client_last_error(c[1]));
    ck_assert_uint_eq(st.nranks, 2);
    ck_assert_uint_eq(pushes[0], 1);
    ck_assert_uint_eq(clock[1], 777); /* past the cap: untouched */
    ck_assert_uint_eq(pushes[1], 777);
    ps_server_stats_init(&st, NULL, NULL, 0); /* the staleness figures only */
    ck_assert_int_eq(ps_client_server_stats(c[0], &st), 0);
    ck_assert_uint_eq(st.nranks, 2);
    uint64_t dropped[2] = {777, 777}, rounds[2] = {777, 777};
    ps_server_stats_init(&st, clock, pushes, 2);
    st.dropped = dropped; /* after clock and pushes: written too when set */
    st.rounds = rounds;
    ck_assert_int_eq(ps_client_server_stats(c[0], &st), 0);
    ck_assert_uint_eq(pushes[0], 1);
    ck_assert_uint_eq(pushes[1], 2);
    ck_assert(dropped[0] == 0 && dropped[1] == 0); /* async drops nothing ... */
    ck_assert(rounds[0] == 0 && rounds[1] == 0);   /* ... and has no rounds */
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(ps_client_close(&c[k]), 0);
    ps_engine_stats es;
    runner_stop(&r, th, &es);
    ck_assert_uint_eq(es.pushes, 3);
    ps_server_destroy(&r.srv);
}
END_TEST

START_TEST(big_push_and_pull_travel_by_reference_and_a_failed_push_lets_go)
{
    /* 100k floats: both ways above the zero-copy thresholds */
    enum { BIG = 100000 };
    static ps_job job;
    job_logistic(&job, ps_test_free_port());
    job.model.type = PS_MODEL_LINEAR;
    job.model.features = BIG - 1;
    static runner r;
    pthread_t th = runner_start(&r, &job);
    const char *eps[] = {job.servers[0]};
    ps_client_opts o = {.size = sizeof(ps_client_opts),
                        .job = "server-test",
                        .servers = eps,
                        .num_servers = 1,
                        .rank = 0,
                        .timeout_ms = 400};
    ps_client *c = NULL;
    ck_assert_int_eq(ps_client_open(&o, &c, NULL, 0), 0);
    float *grad = malloc(BIG * sizeof *grad), *theta = malloc(BIG * sizeof *theta);
    ck_assert_ptr_nonnull(grad);
    ck_assert_ptr_nonnull(theta);
    for (int k = 0; k < BIG; k++)
        grad[k] = (float)(k % 7);
    for (uint64_t t = 0; t < 3; t++)
        ck_assert_int_eq(ps_client_push(c, t, grad, BIG, 1, NULL), 0);
    uint64_t version = 0;
    ck_assert_int_eq(ps_client_pull(c, 3, theta, BIG, &version), 0);
    ck_assert_uint_eq(version, 3);
    for (int k = 0; k < BIG; k += 997) /* θ0 = 0, three steps of lr 0.5 */
        ck_assert_float_eq(theta[k], -1.5f * (float)(k % 7));
    /* the server goes away: it tells the client so, every later call fails
     * at once with that, and the gradient is ours again when it returns
     * (ASan sees any later use) */
    r.stop = SIGTERM;
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ps_server_destroy(&r.srv);
    ck_assert_int_eq(ps_client_push(c, 3, grad, BIG, 1, NULL), PS_ESTOPPED);
    free(grad);
    ps_client_close(&c);
    free(theta);
}
END_TEST

/* Receives one reply (bounded by ZMQ_RCVTIMEO): its type, seq and version,
 * and, for a PULL_REPLY, that each of its n floats is want. */
static void expect_reply(void *s, ps_msg_type type, uint64_t seq, uint64_t version, size_t n,
                         float want)
{
    static ps_msg m;
    ps_frames f;
    ps_error err;
    int rc = ps_wire_recv(s, false, 0, &f, &m, &err);
    ck_assert_msg(rc == 0, "no reply: %s", err.msg);
    ck_assert_int_eq(m.type, type);
    ck_assert_uint_eq(m.seq, seq);
    ck_assert_uint_eq(m.model_version, version);
    if (type == PS_MSG_PULL_REPLY) {
        ck_assert_uint_eq(m.payload_bytes, n * sizeof(float));
        const unsigned char *p = m.payload;
        size_t bad = 0, first_bad = 0;
        for (size_t i = 0; i < n; i++) {
            float v;
            memcpy(&v, p + i * sizeof v, sizeof v);
            if (v != want && bad++ == 0)
                first_bad = i;
        }
        ck_assert_msg(bad == 0, "reply %llu: %zu of %zu floats are not %g, the first at %zu",
                      (unsigned long long)seq, bad, n, (double)want, first_bad);
    }
    ps_frames_close(&f);
}

/* HELLO as rank, over a raw DEALER; returns the worker id. */
static uint32_t raw_hello(void *s, int rank)
{
    static ps_msg m;
    request_init(&m, PS_MSG_HELLO, 1);
    m.rank = rank;
    send_msg(s, &m, NULL, 0);
    ps_frames f;
    ps_error err;
    ck_assert_int_eq(ps_wire_recv(s, false, 0, &f, &m, &err), 0);
    ck_assert_int_eq(m.type, PS_MSG_WELCOME);
    ps_frames_close(&f);
    return m.worker_id;
}

static void raw_pull(void *s, uint32_t worker_id, uint64_t seq, uint64_t min_version,
                     uint64_t key_hi)
{
    static ps_msg m;
    request_init(&m, PS_MSG_PULL, seq);
    m.worker_id = worker_id;
    m.min_version = min_version;
    m.key_hi = key_hi;
    send_msg(s, &m, NULL, 0);
}

START_TEST(pull_reply_on_the_wire_is_not_changed_by_a_push_applied_meanwhile)
{
    /* async, θ of 2M floats (8 MB) from zeros, sgd lr 0.5. Worker a's
     * DEALER takes one message at a time (RCVHWM 1) into a small socket
     * buffer and is not read: its second pull reply (version 0, sent from θ
     * without a copy) stays on the server's side while the push behind it
     * is applied. Worker b's pull, parked until version 1, says when the
     * push is in. Both of a's replies must still be version 0's zeros. */
    enum { BIG = 2000000, SMALL = 16 };
    static ps_job job;
    job_logistic(&job, ps_test_free_port());
    job.mode = PS_MODE_ASYNC;
    job.workers = 2;
    job.model.type = PS_MODEL_LINEAR;
    job.model.features = BIG - 1;
    static runner r;
    pthread_t th = runner_start(&r, &job);

    void *zctx = zmq_ctx_new();
    void *a = zmq_socket(zctx, ZMQ_DEALER);
    ck_assert_ptr_nonnull(a);
    int wait = WAIT_MS, linger = 0, hwm = 1, rcvbuf = 64 << 10;
    zmq_setsockopt(a, ZMQ_RCVTIMEO, &wait, sizeof wait);
    zmq_setsockopt(a, ZMQ_SNDTIMEO, &wait, sizeof wait);
    zmq_setsockopt(a, ZMQ_LINGER, &linger, sizeof linger);
    ck_assert_int_eq(zmq_setsockopt(a, ZMQ_RCVHWM, &hwm, sizeof hwm), 0);
    ck_assert_int_eq(zmq_setsockopt(a, ZMQ_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    ck_assert_int_eq(zmq_connect(a, job.servers[0]), 0);
    void *b = dealer_new(zctx, job.servers[0]);
    uint32_t ida = raw_hello(a, 0), idb = raw_hello(b, 1);

    raw_pull(b, idb, 2, 1, SMALL); /* parked until the push is applied */
    raw_pull(a, ida, 2, 0, BIG);
    raw_pull(a, ida, 3, 0, BIG);
    float *g = malloc(BIG * sizeof *g);
    ck_assert_ptr_nonnull(g);
    for (size_t i = 0; i < BIG; i++)
        g[i] = 1.0f;
    static ps_msg m;
    request_init(&m, PS_MSG_PUSH, 4);
    m.worker_id = ida;
    m.key_hi = BIG;
    m.samples = 1;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = BIG * sizeof(float);
    send_msg(a, &m, g, BIG * sizeof(float));
    free(g);

    expect_reply(b, PS_MSG_PULL_REPLY, 2, 1, SMALL, -0.5f); /* the push is applied */
    expect_reply(a, PS_MSG_PULL_REPLY, 2, 0, BIG, 0.0f);
    expect_reply(a, PS_MSG_PULL_REPLY, 3, 0, BIG, 0.0f);
    expect_reply(a, PS_MSG_ACK, 4, 1, 0, 0.0f);
    raw_pull(a, ida, 5, 1, BIG);
    expect_reply(a, PS_MSG_PULL_REPLY, 5, 1, BIG, -0.5f);

    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(zctx);
    ps_engine_stats st;
    runner_stop(&r, th, &st);
    ck_assert_uint_eq(st.version, 1);
    ck_assert_uint_eq(st.theta_copies, 1); /* θ left the buffer the replies held, once */
    ps_server_destroy(&r.srv);
}
END_TEST

START_TEST(second_server_on_the_same_endpoint_cannot_bind)
{
    static ps_job job;
    job_logistic(&job, ps_test_free_port());
    ps_log lg = {PS_LOG_ERROR, "test_server"};
    ps_error err;
    ps_server *a = ps_server_new(&job, 0, &lg, &err);
    ck_assert_msg(a != NULL, "server: %s", err.msg);
    ps_server *b = ps_server_new(&job, 0, &lg, &err);
    ck_assert_ptr_null(b);
    ck_assert_int_eq(err.code, PS_EZMQ);
    char want[256];
    snprintf(want, sizeof want,
             "cannot bind %s: Address already in use (a second psd for this shard?)",
             job.servers[0]);
    ck_assert_str_eq(err.msg, want);
    ps_server_destroy(&a);
    ps_server_destroy(&b); /* NULL is fine */
}
END_TEST

START_TEST(second_server_on_an_ipc_endpoint_is_refused_and_a_stale_socket_replaced)
{
    char dir[] = "/tmp/ps-test-ipc-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/shard0", dir);
    static ps_job job;
    job_logistic(&job, 0);
    snprintf(job.servers[0], sizeof job.servers[0], "ipc://%s", path);
    ps_log lg = {PS_LOG_ERROR, "test_server"};
    ps_error err;
    ps_server *a = ps_server_new(&job, 0, &lg, &err);
    ck_assert_msg(a != NULL, "server: %s", err.msg);
    /* ZeroMQ alone would take the socket file over: two servers, one job */
    ps_server *b = ps_server_new(&job, 0, &lg, &err);
    ck_assert_ptr_null(b);
    ck_assert_int_eq(err.code, PS_EZMQ);
    char want[512];
    snprintf(want, sizeof want,
             "cannot bind %s: another process serves it (a second psd for this shard?)",
             job.servers[0]);
    ck_assert_str_eq(err.msg, want);
    ps_server_destroy(&a);

    /* a socket file nobody listens on (its psd died) is replaced */
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    ps_server *c = ps_server_new(&job, 0, &lg, &err);
    ck_assert_msg(c != NULL, "server over a stale socket: %s", err.msg);
    ps_server_destroy(&c);

    /* anything else at the path is not psd's to delete */
    unlink(path);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_ptr_null(ps_server_new(&job, 0, &lg, &err));
    snprintf(want, sizeof want, "cannot bind %s: %s exists and is not a socket", job.servers[0],
             path);
    ck_assert_str_eq(err.msg, want);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(stop_is_told_to_a_registered_worker_unasked)
{
    static ps_job job;
    job_logistic(&job, ps_test_free_port());
    job.workers = 2;
    static runner r;
    pthread_t th = runner_start(&r, &job);
    void *zctx = zmq_ctx_new();
    void *a = dealer_new(zctx, job.servers[0]);
    uint32_t ida = raw_hello(a, 0);
    static ps_msg m;
    request_init(&m, PS_MSG_HEARTBEAT, 2);
    m.worker_id = ida;
    send_msg(a, &m, NULL, 0);
    ps_frames f;
    ps_error err;
    ck_assert_int_eq(ps_wire_recv(a, false, 0, &f, &m, &err), 0);
    ck_assert_int_eq(m.type, PS_MSG_ACK);
    ps_frames_close(&f);
    r.stop = SIGTERM;
    /* the worker is told without asking, and psd does not wait for it */
    expect_error(a, 0, PS_ESTOPPED, "psd (shard 0) was stopped by SIGTERM at model version 0");
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(r.rc, 0);
    zmq_close(a);
    zmq_ctx_term(zctx);
    ps_server_destroy(&r.srv);
}
END_TEST

START_TEST(run_returns_when_stop_is_set)
{
    static ps_job job;
    job_logistic(&job, ps_test_free_port());
    static runner r;
    pthread_t th = runner_start(&r, &job);
    usleep(150 * 1000);
    r.stop = 1;
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(r.rc, 0);
    ps_server_destroy(&r.srv);
}
END_TEST

/* ---- shared memory -------------------------------------------------------- */

/* Receives one reply (bounded by ZMQ_RCVTIMEO) into *m; its frames in *f
 * (close them). */
static void recv_reply(void *s, ps_frames *f, ps_msg *m, ps_msg_type type, uint64_t seq)
{
    ps_error err;
    int rc = ps_wire_recv(s, false, 0, f, m, &err);
    ck_assert_msg(rc == 0, "no reply: %s", err.msg);
    ck_assert_msg(m->type == type, "reply %llu is %s (%s), not %s", (unsigned long long)m->seq,
                  ps_msg_type_name(m->type), m->error, ps_msg_type_name(type));
    ck_assert_uint_eq(m->seq, seq);
}

static void raw_shm_push(void *s, uint32_t worker_id, uint64_t seq, uint64_t key_hi)
{
    static ps_msg m;
    request_init(&m, PS_MSG_PUSH, seq);
    m.worker_id = worker_id;
    m.key_hi = key_hi;
    m.samples = 1;
    m.encoding = PS_ENC_SHM_F32;
    m.payload_bytes = key_hi * sizeof(float);
    send_msg(s, &m, NULL, 0);
}

static void raw_shm_pull(void *s, uint32_t worker_id, uint64_t seq)
{
    static ps_msg m;
    request_init(&m, PS_MSG_PULL, seq);
    m.worker_id = worker_id;
    m.key_hi = P;
    m.flags = PS_FLAG_SHM;
    send_msg(s, &m, NULL, 0);
}

/* True while this process has a psd shared-memory segment open as fd. */
static bool fd_is_segment(int fd)
{
    char path[64], target[256];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0)
        return false;
    target[n] = '\0';
    return strstr(target, "memfd:psd-shm") != NULL;
}

START_TEST(shared_memory_carries_pushes_and_pulls_by_the_protocol_rules)
{
    /* async, 2 workers, θ of P floats from zeros, sgd lr 0.5. Worker a
     * (this host) gets a segment; worker b (no host given) does not. */
    static ps_job job;
    job_logistic(&job, ps_test_free_port());
    job.mode = PS_MODE_ASYNC;
    job.workers = 2;
    job.shared_memory = true;
    static runner r;
    pthread_t th = runner_start(&r, &job);
    void *zctx = zmq_ctx_new();
    void *a = dealer_new(zctx, job.servers[0]), *b = dealer_new(zctx, job.servers[0]);
    static ps_msg m;
    ps_frames f;

    request_init(&m, PS_MSG_HELLO, 1);
    m.rank = 0;
    static char host[PS_HOST_MAX];
    ck_assert_int_eq(ps_shm_host_id(host, sizeof host), 0);
    m.host = host;
    send_msg(a, &m, NULL, 0);
    recv_reply(a, &f, &m, PS_MSG_WELCOME, 1);
    ps_frames_close(&f);
    uint32_t ida = m.worker_id;
    ck_assert_uint_eq(m.shm_pid, (uint32_t)getpid());
    ck_assert_uint_eq(m.shm_bytes, ps_shm_bytes(P));
    int seg_fd = (int)m.shm_fd;
    ck_assert(fd_is_segment(seg_fd));
    ps_shm seg;
    ps_error err;
    ck_assert_msg(ps_shm_attach(&seg, m.shm_pid, m.shm_fd, m.shm_bytes, m.shm_token, P, &err) == 0,
                  "attach: %s", err.msg);

    request_init(&m, PS_MSG_HELLO, 1);
    m.rank = 1;
    send_msg(b, &m, NULL, 0);
    recv_reply(b, &f, &m, PS_MSG_WELCOME, 1);
    ps_frames_close(&f);
    uint32_t idb = m.worker_id;
    ck_assert_uint_eq(m.shm_bytes, 0);

    /* a push whose gradient is in the segment, marked with its seq */
    for (size_t i = 0; i < P; i++)
        seg.grad[i] = 2.0f;
    ps_shm_grad_mark(&seg, 7);
    raw_shm_push(a, ida, 7, P);
    recv_reply(a, &f, &m, PS_MSG_ACK, 7);
    ps_frames_close(&f);
    ck_assert_uint_eq(m.model_version, 1);
    /* one whose mark is another push's, one that does not fit, and one from
     * a worker without a segment: refused, nothing applied */
    raw_shm_push(a, ida, 8, P);
    expect_error(a, 8, PS_EPAYLOAD, "the gradient in shared memory is push 7's, not push 8's");
    ps_shm_grad_mark(&seg, 9);
    raw_shm_push(a, ida, 9, P + 1);
    expect_error(a, 9, PS_EPAYLOAD,
                 "a PUSH of 20 bytes does not fit the 16 bytes of shared memory");
    raw_shm_push(b, idb, 2, P);
    char text[PS_MSG_ERROR_MAX];
    snprintf(text, sizeof text,
             "PUSH says its payload is in shared memory, but worker %u has none with shard 0", idb);
    expect_error(b, 2, PS_EPAYLOAD, text);

    /* the newest pull asking for shared memory is answered there, once */
    raw_shm_pull(a, ida, 10);
    recv_reply(a, &f, &m, PS_MSG_PULL_REPLY, 10);
    ck_assert_int_eq(m.encoding, PS_ENC_SHM_F32);
    ck_assert_int_eq(f.nparts, 1); /* no payload frame */
    ck_assert_uint_eq(m.model_version, 1);
    ps_frames_close(&f);
    for (size_t i = 0; i < P; i++) {
        ck_assert_float_eq(seg.theta[i], -1.0f);
        seg.theta[i] = 42.0f;
    }
    raw_shm_pull(a, ida, 10); /* a resend: θ comes in the frame, the segment stays */
    expect_reply(a, PS_MSG_PULL_REPLY, 10, 1, P, -1.0f);
    raw_shm_pull(a, ida, 9); /* an older one, the same */
    expect_reply(a, PS_MSG_PULL_REPLY, 9, 1, P, -1.0f);
    for (size_t i = 0; i < P; i++)
        ck_assert_float_eq(seg.theta[i], 42.0f);
    raw_pull(b, idb, 3, 0, P); /* b gets θ in the frame, as ever */
    recv_reply(b, &f, &m, PS_MSG_PULL_REPLY, 3);
    ck_assert_int_eq(m.encoding, PS_ENC_F32);
    ck_assert_uint_eq(m.payload_bytes, P * sizeof(float));
    ps_frames_close(&f);

    /* after a's BYE its segment is freed within the sweep */
    request_init(&m, PS_MSG_BYE, 11);
    m.worker_id = ida;
    send_msg(a, &m, NULL, 0);
    recv_reply(a, &f, &m, PS_MSG_ACK, 11);
    ps_frames_close(&f);
    for (int i = 0; i < 40 && fd_is_segment(seg_fd); i++)
        usleep(100 * 1000);
    ck_assert_msg(!fd_is_segment(seg_fd), "the segment outlived its worker by 4 s");
    ps_shm_detach(&seg);

    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(zctx);
    ps_engine_stats st;
    runner_stop(&r, th, &st);
    ck_assert_uint_eq(st.version, 1);
    ck_assert_uint_eq(st.errors, 3);
    ps_server_destroy(&r.srv);
}
END_TEST

/* A sync job with one worker over `shards` servers: `steps` push_pull
 * exchanges of a gradient that depends on θ, θ left to the client (view);
 * the final θ into out. How many shards went through shared memory into
 * *shm. */
static void train_steps(bool job_shm, bool socket_only, uint32_t shards, int steps, float *out,
                        size_t *shm)
{
    enum { N = 50000 };
    static ps_job job;
    job_logistic(&job, ps_test_free_port());
    job.model.type = PS_MODEL_LINEAR;
    job.model.features = N - 1;
    job.model.init_scheme = PS_INIT_XAVIER;
    job.shared_memory = job_shm;
    job.nservers = shards;
    for (uint32_t i = 1; i < shards; i++)
        snprintf(job.servers[i], sizeof job.servers[i], "tcp://127.0.0.1:%d", ps_test_free_port());
    static runner r[2];
    pthread_t th[2];
    for (uint32_t i = 0; i < shards; i++)
        th[i] = runner_start_shard(&r[i], &job, i);
    const char *eps[] = {job.servers[0], job.servers[1]};
    ps_client_opts o = {.size = sizeof(ps_client_opts),
                        .job = "server-test",
                        .servers = eps,
                        .num_servers = shards,
                        .rank = 0,
                        .timeout_ms = WAIT_MS,
                        .socket_only = socket_only};
    ps_client *c = NULL;
    char why[256] = "";
    ck_assert_msg(ps_client_open(&o, &c, why, sizeof why) == 0, "open: %s", why);
    const char *shm_why = NULL;
    *shm = ps_client_shared_memory(c, &shm_why);
    ck_assert_str_eq(shm_why, "");
    static float theta[N], grad[N];
    ck_assert_int_eq(ps_client_pull(c, 0, theta, N, NULL), 0);
    const float *th_now = theta;
    for (int t = 0; t < steps; t++) {
        for (size_t k = 0; k < N; k++)
            grad[k] = th_now[k] * 0.25f + (float)(k % 5) * 0.01f;
        ps_push_pull pp = {.size = sizeof(ps_push_pull),
                           .clock = (uint64_t)t,
                           .grad = grad,
                           .n = N,
                           .samples = 1,
                           .min_version = (uint64_t)t + 1};
        ck_assert_int_eq(ps_client_push_pull(c, &pp), 0);
        ck_assert_int_eq(pp.pulled, 1);
        ck_assert_uint_eq(pp.version, (uint64_t)t + 1);
        th_now = pp.view;
    }
    memcpy(out, th_now, N * sizeof(float));
    ck_assert_int_eq(ps_client_close(&c), 0);
    for (uint32_t i = 0; i < shards; i++) {
        ps_engine_stats st;
        runner_stop(&r[i], th[i], &st);
        ck_assert_uint_eq(st.version, (uint64_t)steps);
        ck_assert_uint_eq(st.errors, 0);
        ps_server_destroy(&r[i].srv);
    }
}

START_TEST(shared_memory_trains_bit_for_bit_as_the_socket)
{
    enum { N = 50000, STEPS = 4 };
    static float sock[N], shm[N];
    size_t n;
    for (uint32_t shards = 1; shards <= 2; shards++) {
        train_steps(true, true, shards, STEPS, sock, &n); /* the client says no */
        ck_assert_uint_eq(n, 0);
        train_steps(true, false, shards, STEPS, shm, &n);
        ck_assert_uint_eq(n, shards);
        ck_assert_msg(memcmp(sock, shm, sizeof sock) == 0,
                      "%u shard(s): θ through shared memory differs from θ over the socket",
                      shards);
        train_steps(false, false, shards, STEPS, shm, &n); /* the job says no */
        ck_assert_uint_eq(n, 0);
        ck_assert(memcmp(sock, shm, sizeof sock) == 0);
    }
    bool moved = false; /* the steps did change θ */
    for (size_t k = 0; k < N && !moved; k++)
        moved = sock[k] != 0.0f;
    ck_assert(moved);
}
END_TEST

/* Sparse rows through the real loop and the client library: a pull and a
 * push of 100 k keys (frames of about 0.8 and 1.2 MB, where the dense θ of
 * a sparse job is one float) are served, and the rows read back are the
 * pushed gradients' sgd steps. */
START_TEST(big_requests_of_sparse_rows_are_served)
{
    enum { N = 100000 };
    static ps_job job;
    job_logistic(&job, ps_test_free_port());
    job.mode = PS_MODE_ASYNC;
    job.model.type = PS_MODEL_SPARSE_LOGISTIC;
    job.model.features = 0;
    job.sparse.min_count = 1;
    runner r;
    pthread_t th = runner_start(&r, &job);
    const char *eps[] = {job.servers[0]};
    ps_client_opts o = {.size = sizeof(ps_client_opts),
                        .job = "server-test",
                        .servers = eps,
                        .num_servers = 1,
                        .rank = 0,
                        .timeout_ms = WAIT_MS,
                        .socket_only = true};
    ps_client *c = NULL;
    char why[256] = "";
    ck_assert_msg(ps_client_open(&o, &c, why, sizeof why) == 0, "open: %s", why);
    ck_assert_uint_eq(ps_client_num_tables(c), 1);
    static uint64_t keys[N];
    static float rows[N], grads[N];
    const uint64_t step = UINT64_MAX / N; /* one random key in each of N slices */
    uint64_t x = 42;
    for (size_t i = 0; i < N; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        keys[i] = step * i + x % step;
        grads[i] = (float)(i % 7) - 3.0f;
    }
    ck_assert_msg(ps_client_pull_rows(c, 0, keys, N, rows, N) == 0, "pull: %s",
                  ps_client_last_error(c));
    for (size_t i = 0; i < N; i++)
        ck_assert_float_eq(rows[i], 0.0f);
    ck_assert_msg(ps_client_push_rows(c, 0, 0, keys, N, grads, N, 1) == 0, "push: %s",
                  ps_client_last_error(c));
    ck_assert_msg(ps_client_pull_rows(c, 0, keys, N, rows, N) == 0, "pull: %s",
                  ps_client_last_error(c));
    for (size_t i = 0; i < N; i++)
        ck_assert_float_eq(rows[i], -0.5f * grads[i]); /* sgd at lr 0.5 */
    ck_assert_int_eq(ps_client_close(&c), 0);
    ps_engine_stats st;
    runner_stop(&r, th, &st);
    ck_assert_uint_eq(st.errors, 0);
    ps_server_destroy(&r.srv);
}
END_TEST

/* A push of the keys just pulled names the pull instead of sending them
 * again; when psd no longer holds them (here another pull of this worker
 * came between, sent on a socket of the test's) it refuses the push
 * (PS_ESTATE), and the client sends it again with its keys: the rows come
 * out as from one push either way. */
START_TEST(push_of_the_pulled_keys_names_the_pull_and_falls_back_to_its_keys)
{
    enum { N = 1000 };
    static ps_job job;
    job_logistic(&job, ps_test_free_port());
    job.mode = PS_MODE_ASYNC;
    job.model.type = PS_MODEL_SPARSE_LOGISTIC;
    job.model.features = 0;
    job.sparse.min_count = 1;
    static runner r;
    pthread_t th = runner_start(&r, &job);
    const char *eps[] = {job.servers[0]};
    ps_client_opts o = {.size = sizeof(ps_client_opts),
                        .job = "server-test",
                        .servers = eps,
                        .num_servers = 1,
                        .rank = 0,
                        .timeout_ms = WAIT_MS,
                        .socket_only = true};
    ps_client *c = NULL;
    char why[256] = "";
    ck_assert_msg(ps_client_open(&o, &c, why, sizeof why) == 0, "open: %s", why);
    static uint64_t keys[N];
    static float rows[N], grads[N];
    for (size_t i = 0; i < N; i++) {
        keys[i] = (i + 1) * (UINT64_MAX / (N + 1));
        grads[i] = (float)(i % 7) - 3.0f;
    }
    ck_assert_msg(ps_client_pull_rows(c, 0, keys, N, rows, N) == 0, "pull: %s",
                  ps_client_last_error(c));
    ck_assert_uint_ne(c->shards[0].sp_kept_seq, 0); /* psd kept them */
    ck_assert_msg(ps_client_push_rows(c, 0, 0, keys, N, grads, N, 1) == 0, "push: %s",
                  ps_client_last_error(c));
    ck_assert_uint_eq(c->shards[0].sp_keys_of, c->shards[0].sp_kept_seq); /* it named the pull */
    ck_assert_uint_eq(c->pk_resent, 0);
    ck_assert_msg(ps_client_pull_rows(c, 0, keys, N, rows, N) == 0, "pull: %s",
                  ps_client_last_error(c));
    for (size_t i = 0; i < N; i++)
        ck_assert_float_eq(rows[i], -0.5f * grads[i]); /* sgd at lr 0.5 */
    /* another pull as this worker (its first 100 keys) replaces the kept ones */
    void *zctx = zmq_ctx_new();
    void *d = dealer_new(zctx, job.servers[0]);
    static unsigned char frame[PS_KEYS_BYTES_MAX(100)];
    size_t kb = 0;
    ck_assert_int_eq(ps_keys_encode(keys, 100, frame, sizeof frame, &kb), 0);
    static ps_msg m;
    request_init(&m, PS_MSG_PULL, 1000);
    m.worker_id = c->shards[0].worker_id;
    m.table = 1;
    m.dim = 1;
    m.nkeys = 100;
    m.keys_bytes = kb;
    m.payload_bytes = kb;
    send_msg(d, &m, frame, kb);
    ps_frames f;
    ps_error err;
    ck_assert_int_eq(ps_wire_recv(d, false, 0, &f, &m, &err), 0);
    ck_assert_int_eq(m.type, PS_MSG_PULL_REPLY);
    ck_assert_uint_eq(m.flags & PS_FLAG_KEYS_KEPT, PS_FLAG_KEYS_KEPT);
    ps_frames_close(&f);
    ck_assert_msg(ps_client_push_rows(c, 0, 1, keys, N, grads, N, 1) == 0, "push: %s",
                  ps_client_last_error(c));
    ck_assert_uint_eq(c->pk_resent, 1);
    ck_assert_uint_eq(c->shards[0].sp_keys_of, 0); /* sent with its keys */
    ck_assert_msg(ps_client_pull_rows(c, 0, keys, N, rows, N) == 0, "pull: %s",
                  ps_client_last_error(c));
    for (size_t i = 0; i < N; i++) /* applied once more */
        ck_assert_float_eq(rows[i], -1.0f * grads[i]);
    ck_assert_int_eq(ps_client_close(&c), 0);
    zmq_close(d);
    zmq_ctx_term(zctx);
    ps_engine_stats st;
    runner_stop(&r, th, &st);
    ck_assert_uint_eq(st.errors, 1); /* the push naming the pull */
    ps_server_destroy(&r.srv);
}
END_TEST

/* Two workers pull rows of their own keys over and over at once, each
 * reply big enough (1.4 MB: fm rows of 9 floats) that a dense θ would go by
 * reference: each must get its own keys' rows. (Replies of rows once went by reference to the
 * engine's buffer of rows, which the other worker's pull overwrote while
 * ZeroMQ was still sending.) */
enum { RACE_KEYS = 40000, RACE_DIM = 9, RACE_PULLS = 40 };

typedef struct race_worker {
    const ps_job *job;
    int rank;
    uint64_t keys[RACE_KEYS];
    float want[RACE_KEYS * RACE_DIM], got[RACE_KEYS * RACE_DIM];
    int bad; /* pulls whose rows were another's, or that failed */
    char why[256];
} race_worker;

static void *race_pulls(void *arg)
{
    race_worker *w = arg;
    const char *eps[] = {w->job->servers[0]};
    ps_client_opts o = {.size = sizeof(ps_client_opts),
                        .job = "server-test",
                        .servers = eps,
                        .num_servers = 1,
                        .rank = w->rank,
                        .timeout_ms = WAIT_MS,
                        .socket_only = true};
    ps_client *c = NULL;
    if (ps_client_open(&o, &c, w->why, sizeof w->why) != 0) {
        w->bad = RACE_PULLS;
        return NULL;
    }
    static float grads[2][RACE_KEYS * RACE_DIM];
    for (size_t i = 0; i < RACE_KEYS * RACE_DIM; i++)
        grads[w->rank][i] = -2.0f * w->want[i]; /* sgd at lr 0.5: the row becomes want */
    if (ps_client_push_rows(c, 0, 0, w->keys, RACE_KEYS, grads[w->rank], RACE_KEYS * RACE_DIM, 1) !=
        0) {
        snprintf(w->why, sizeof w->why, "push: %s", ps_client_last_error(c));
        w->bad = RACE_PULLS;
    }
    for (int k = 0; k < RACE_PULLS && w->bad == 0; k++) {
        if (ps_client_pull_rows(c, 0, w->keys, RACE_KEYS, w->got, RACE_KEYS * RACE_DIM) != 0 ||
            memcmp(w->got, w->want, sizeof w->got) != 0)
            w->bad++;
    }
    ps_client_close(&c);
    return NULL;
}

START_TEST(concurrent_pulls_of_rows_get_their_own_rows)
{
    static ps_job job;
    job_logistic(&job, ps_test_free_port());
    job.workers = 2;
    job.mode = PS_MODE_ASYNC;
    job.model.type = PS_MODEL_FM;
    job.model.factors = RACE_DIM - 1;
    job.model.features = 0;
    job.sparse.min_count = 1;
    runner r;
    pthread_t th = runner_start(&r, &job);
    static race_worker w[2];
    for (int k = 0; k < 2; k++) {
        w[k].job = &job;
        w[k].rank = k;
        for (size_t i = 0; i < RACE_KEYS; i++) {
            w[k].keys[i] = (uint64_t)(2 * i + (size_t)k + 1) << 20; /* disjoint, sorted */
        }
        for (size_t i = 0; i < RACE_KEYS * RACE_DIM; i++)
            w[k].want[i] = (float)(k + 1) + (float)i * 1e-3f;
    }
    pthread_t t[2];
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(pthread_create(&t[k], NULL, race_pulls, &w[k]), 0);
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    for (int k = 0; k < 2; k++)
        ck_assert_msg(w[k].bad == 0, "rank %d: %d of %d pulls got other rows or failed %s", k,
                      w[k].bad, RACE_PULLS, w[k].why);
    ps_engine_stats st;
    runner_stop(&r, th, &st);
    ps_server_destroy(&r.srv);
}
END_TEST

static Suite *server_suite(void)
{
    Suite *s = suite_create("server");
    TCase *tc = tcase_create("server");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, server_refuses_bad_messages_and_keeps_serving);
    tcase_add_test(tc, second_server_on_the_same_endpoint_cannot_bind);
    tcase_add_test(tc, run_returns_when_stop_is_set);
    tcase_add_test(tc, second_server_on_an_ipc_endpoint_is_refused_and_a_stale_socket_replaced);
    tcase_add_test(tc, stop_is_told_to_a_registered_worker_unasked);
    tcase_add_test(tc, big_push_and_pull_travel_by_reference_and_a_failed_push_lets_go);
    tcase_add_test(tc, pull_reply_on_the_wire_is_not_changed_by_a_push_applied_meanwhile);
    tcase_add_test(tc, shared_memory_carries_pushes_and_pulls_by_the_protocol_rules);
    tcase_add_test(tc, shared_memory_trains_bit_for_bit_as_the_socket);
    tcase_add_test(tc, big_requests_of_sparse_rows_are_served);
    tcase_add_test(tc, push_of_the_pulled_keys_names_the_pull_and_falls_back_to_its_keys);
    tcase_add_test(tc, concurrent_pulls_of_rows_get_their_own_rows);
    tcase_add_test(tc, server_stats_fill_the_callers_arrays_up_to_cap);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(server_suite());
}
