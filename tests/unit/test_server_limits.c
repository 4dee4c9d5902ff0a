/* test_server_limits.c — what one hostile peer can make psd do, on the real
 * loop in a thread on loopback: a message with too many frames gets exactly
 * one ERROR that names its request; an unregistered peer over
 * limits.unregistered_rate gets a short ERROR for the excess while a
 * welcomed worker is never limited; connections beyond limits.max_peers
 * are closed, the oldest idle first, and a worker and an admin still get
 * in; a peer's first message is never refused, however many came before.
 * Every wait is bounded. */
#include <arpa/inet.h>
#include <check.h>

#include "check_main.h"
#include "test_jobs.h"
#include "loopback.h"
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "codec.h"
#include "server.h"
#include "wire.h"

#define WAIT_MS 5000

static void job_logistic(ps_job *job, int port)
{
    ps_test_job_logistic(job, "limits-test", PS_MODE_ASYNC, 1, port);
}

typedef struct runner {
    ps_server *srv;
    volatile sig_atomic_t stop;
    int rc;
    ps_error err;
    pthread_t th;
} runner;

static void *run_thread(void *arg)
{
    runner *r = arg;
    r->rc = ps_server_run(r->srv, &r->stop, NULL, &r->err);
    return NULL;
}

static void runner_start(runner *r, const ps_job *job)
{
    static const ps_log lg = {PS_LOG_ERROR, "test_server_limits"};
    r->stop = 0;
    r->srv = ps_server_new(job, 0, &lg, &r->err);
    ck_assert_msg(r->srv != NULL, "server: %s", r->err.msg);
    ck_assert_int_eq(pthread_create(&r->th, NULL, run_thread, r), 0);
}

static void runner_stop(runner *r)
{
    r->stop = 1;
    ck_assert_int_eq(pthread_join(r->th, NULL), 0);
    ps_server_destroy(&r->srv);
}

static void *dealer_new(void *zctx, const char *endpoint, int wait_ms)
{
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    ck_assert_ptr_nonnull(s);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &wait_ms, sizeof wait_ms);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    ck_assert_int_eq(zmq_connect(s, endpoint), 0);
    return s;
}

static void request(ps_msg *m, ps_msg_type type, uint64_t seq, uint32_t worker_id)
{
    ps_msg_init(m, type);
    m->job = "limits-test";
    m->seq = seq;
    m->worker_id = worker_id;
}

/* One reply within the socket's RCVTIMEO: 0 and *m, or -1 when none came. */
static int reply(void *s, ps_msg *m)
{
    static ps_frames f;
    ps_error err;
    int rc = ps_wire_recv(s, false, 0, &f, m, &err);
    ps_frames_close(&f);
    return rc == 0 ? 0 : -1;
}

START_TEST(message_with_four_frames_gets_exactly_one_error)
{
    ps_job job;
    job_logistic(&job, ps_test_free_port());
    runner r;
    runner_start(&r, &job);
    void *zctx = zmq_ctx_new();
    void *d = dealer_new(zctx, job.servers[0], WAIT_MS);
    static ps_msg m;
    request(&m, PS_MSG_HEARTBEAT, 31, 0);
    unsigned char hdr[256];
    size_t len = 0;
    ck_assert_int_eq(ps_codec_encode(&m, hdr, sizeof hdr, &len), 0);
    ck_assert_int_ge(zmq_send(d, hdr, len, ZMQ_SNDMORE), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_ge(zmq_send(d, "x", 1, i < 2 ? ZMQ_SNDMORE : 0), 0);
    ck_assert_int_eq(reply(d, &m), 0);
    ck_assert_int_eq(m.type, PS_MSG_ERROR);
    ck_assert_int_eq(m.status, PS_EPROTO);
    ck_assert_uint_eq(m.seq, 31);
    ck_assert_str_eq(m.error, "message has more than 3 frames");
    int short_ms = 300;
    zmq_setsockopt(d, ZMQ_RCVTIMEO, &short_ms, sizeof short_ms);
    ck_assert_int_eq(reply(d, &m), -1); /* exactly one */
    zmq_close(d);
    zmq_ctx_term(zctx);
    runner_stop(&r);
}
END_TEST

START_TEST(unregistered_peer_over_its_rate_is_refused_but_a_worker_is_not)
{
    ps_job job;
    job_logistic(&job, ps_test_free_port());
    job.limits.unregistered_rate = 5;
    runner r;
    runner_start(&r, &job);
    void *zctx = zmq_ctx_new();
    void *d = dealer_new(zctx, job.servers[0], WAIT_MS);
    static ps_msg m;
    /* 30 heartbeats of an unknown worker at once: each answered, the
     * excess over 5 (plus what refills meanwhile) with EFULL */
    for (uint64_t i = 1; i <= 30; i++) {
        request(&m, PS_MSG_HEARTBEAT, i, 77);
        unsigned char hdr[256];
        size_t len = 0;
        ck_assert_int_eq(ps_codec_encode(&m, hdr, sizeof hdr, &len), 0);
        ck_assert_int_ge(zmq_send(d, hdr, len, 0), 0);
    }
    int full = 0, other = 0;
    for (int i = 0; i < 30; i++) {
        ck_assert_int_eq(reply(d, &m), 0);
        ck_assert_int_eq(m.type, PS_MSG_ERROR);
        if (m.status == PS_EFULL) {
            ck_assert_str_eq(m.error, "more than 5 messages a second before registering");
            full++;
        } else {
            ck_assert_int_eq(m.status, PS_EWORKER);
            other++;
        }
    }
    ck_assert_int_ge(full, 15);
    ck_assert_int_ge(other, 5);
    /* a worker, once welcomed, sends 30 at once and none is refused */
    void *w = dealer_new(zctx, job.servers[0], WAIT_MS);
    request(&m, PS_MSG_HELLO, 1, 0);
    m.rank = -1;
    ck_assert_int_eq(ps_wire_send(w, NULL, 0, &m, NULL, 0), 0);
    ck_assert_int_eq(reply(w, &m), 0);
    ck_assert_int_eq(m.type, PS_MSG_WELCOME);
    uint32_t id = m.worker_id;
    for (uint64_t i = 2; i < 32; i++) {
        request(&m, PS_MSG_HEARTBEAT, i, id);
        ck_assert_int_eq(ps_wire_send(w, NULL, 0, &m, NULL, 0), 0);
    }
    for (int i = 0; i < 30; i++) {
        ck_assert_int_eq(reply(w, &m), 0);
        ck_assert_msg(m.type != PS_MSG_ERROR, "heartbeat %llu refused: %s",
                      (unsigned long long)m.seq, m.error);
    }
    zmq_close(w);
    zmq_close(d);
    zmq_ctx_term(zctx);
    runner_stop(&r);
}
END_TEST

/* True when the server closed the connection fd within ms (what it sends
 * first, its ZMTP greeting, is read and dropped). */
static bool closed_within(int fd, int ms)
{
    for (int waited = 0; waited < ms; waited += 50) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        char buf[256];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
    }
    return false;
}

START_TEST(connections_over_max_peers_are_closed_and_serving_goes_on)
{
    int port = ps_test_free_port();
    ps_job job;
    job_logistic(&job, port);
    job.limits.max_peers = 2;
    runner r;
    runner_start(&r, &job);
    enum { N = 6 };
    int fds[N];
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < N; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_eq(connect(fds[i], (struct sockaddr *)&a, sizeof a), 0);
    }
    uint64_t until = ps_clock_ms() + 3000; /* well within PS_PEER_SILENT_MS */
    /* while they are held, a worker joins at once (it used to be shut out) */
    void *zctx = zmq_ctx_new();
    void *d = dealer_new(zctx, job.servers[0], 2000);
    static ps_msg m;
    request(&m, PS_MSG_HELLO, 1, 0);
    m.rank = -1;
    ck_assert_int_eq(ps_wire_send(d, NULL, 0, &m, NULL, 0), 0);
    ck_assert_msg(reply(d, &m) == 0, "no WELCOME while idle connections fill max_peers");
    ck_assert_int_eq(m.type, PS_MSG_WELCOME);
    /* each newcomer got in and the oldest idle one went: all but one of
     * the idle connections are closed (which one stays depends on the
     * order psd's I/O thread accepted them in, not always the order of
     * the connects when the machine is busy) */
    bool shut[N] = {false};
    int closed = 0;
    while (closed < N - 1 && ps_clock_ms() < until) {
        for (int i = 0; i < N; i++)
            if (!shut[i] && closed_within(fds[i], 50)) {
                shut[i] = true;
                closed++;
            }
    }
    ck_assert_msg(closed == N - 1, "%d of %d idle connections closed, %d wanted", closed, N, N - 1);
    for (int i = 0; i < N; i++) /* and the newest within max_peers stays */
        if (!shut[i])
            ck_assert_msg(!closed_within(fds[i], 300), "every idle connection was closed");
    /* and so does an admin's request */
    void *admin = dealer_new(zctx, job.servers[0], 1000);
    request(&m, PS_MSG_STATUS, 1, 0);
    ck_assert_int_eq(ps_wire_send(admin, NULL, 0, &m, NULL, 0), 0);
    ck_assert_int_eq(reply(admin, &m), 0);
    ck_assert_int_ne(m.type, PS_MSG_ERROR);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    zmq_close(admin);
    zmq_close(d);
    zmq_ctx_term(zctx);
    runner_stop(&r);
}
END_TEST

START_TEST(first_message_passes_after_many_short_lived_peers)
{
    ps_job job;
    job_logistic(&job, ps_test_free_port());
    job.limits.max_peers = 2;
    runner r;
    runner_start(&r, &job);
    void *zctx = zmq_ctx_new();
    static ps_msg m;
    /* 80 peers one after another, one STATUS each: psd's table of rates
     * (4 slots per allowed peer, a slot kept 10 s) used to fill and refuse
     * the next one's first message, a worker's HELLO too */
    for (int i = 0; i < 80; i++) {
        void *d = dealer_new(zctx, job.servers[0], WAIT_MS);
        request(&m, PS_MSG_STATUS, 1, 0);
        ck_assert_int_eq(ps_wire_send(d, NULL, 0, &m, NULL, 0), 0);
        ck_assert_int_eq(reply(d, &m), 0);
        ck_assert_msg(m.type != PS_MSG_ERROR, "peer %d refused: %s", i, m.error);
        zmq_close(d);
    }
    void *w = dealer_new(zctx, job.servers[0], WAIT_MS);
    request(&m, PS_MSG_HELLO, 1, 0);
    m.rank = -1;
    ck_assert_int_eq(ps_wire_send(w, NULL, 0, &m, NULL, 0), 0);
    ck_assert_int_eq(reply(w, &m), 0);
    ck_assert_msg(m.type == PS_MSG_WELCOME, "HELLO answered %s: %s", ps_msg_type_name(m.type),
                  m.error);
    zmq_close(w);
    zmq_ctx_term(zctx);
    runner_stop(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("server_limits");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, message_with_four_frames_gets_exactly_one_error);
    tcase_add_test(tc, unregistered_peer_over_its_rate_is_refused_but_a_worker_is_not);
    tcase_add_test(tc, connections_over_max_peers_are_closed_and_serving_goes_on);
    tcase_add_test(tc, first_message_passes_after_many_short_lived_peers);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
