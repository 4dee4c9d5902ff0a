/* test_peer_limits.c — peer_limits.c on a real ROUTER bound on loopback and
 * a real engine (limits.max_peers 2, limits.unregistered_rate 5): a new
 * connection's bucket of 5 messages and how it refills, a welcomed worker's
 * connection (and its heartbeats') never limited, a first message never
 * refused however many peers came before, a newcomer over the cap closing
 * an idle connection and never a worker's, a connection silent after
 * connecting closed, and the log lines, read back from stderr. */
#include <check.h>

#include "check_main.h"
#include "test_jobs.h"
#include "loopback.h"
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "engine.h"
#include "metrics.h"
#include "peer_limits.h"
#include "util.h"

#define JOB     "limits-test"
#define WAIT_MS 3000    /* the bound of every wait */
#define T0      1000000 /* a time for the rate, in ms */

typedef struct fx {
    ps_job job;
    ps_log engine_log, log;
    ps_engine *e;
    void *zctx, *router;
    int port;
    ps_metrics_counters counters;
    ps_peer_limits *l;
} fx;

static int no_send(void *ctx, const void *identity, size_t identity_len, ps_msg *reply,
                   const void *payload)
{
    (void)identity;
    (void)identity_len;
    (void)payload;
    *(ps_msg *)ctx = *reply;
    return 0;
}

static fx *fx_new(void)
{
    fx *f = calloc(1, sizeof *f);
    ck_assert_ptr_nonnull(f);
    f->port = ps_test_free_port();
    ps_job *job = &f->job;
    ps_test_job_logistic(job, JOB, PS_MODE_ASYNC, 1, f->port);
    job->limits.max_peers = 2;
    job->limits.unregistered_rate = 5;
    f->engine_log = (ps_log){PS_LOG_ERROR, "test"};
    f->log = (ps_log){PS_LOG_ERROR, "test"}; /* a test that reads the log raises it */
    ps_error err;
    f->e = ps_engine_new(job, 0, &f->engine_log, &err);
    ck_assert_msg(f->e != NULL, "engine: %s", err.msg);
    f->zctx = zmq_ctx_new();
    ck_assert_ptr_nonnull(f->zctx);
    f->router = zmq_socket(f->zctx, ZMQ_ROUTER);
    ck_assert_ptr_nonnull(f->router);
    int linger = 0;
    zmq_setsockopt(f->router, ZMQ_LINGER, &linger, sizeof linger);
    ck_assert_int_eq(zmq_bind(f->router, job->servers[0]), 0);
    ps_metrics_counters_init(&f->counters);
    f->l = ps_peer_limits_new(f->zctx, f->router, job, 0, job->servers[0], f->e, NULL, &f->counters,
                              &f->log, &err);
    ck_assert_msg(f->l != NULL, "limits: %s", err.msg);
    ck_assert_ptr_nonnull(ps_peer_limits_monitor(f->l));
    return f;
}

static void fx_free(fx **fp)
{
    fx *f = *fp;
    ps_peer_limits_destroy(&f->l);
    ck_assert_ptr_null(f->l);
    ps_peer_limits_destroy(&f->l); /* twice is fine */
    zmq_close(f->router);
    zmq_ctx_term(f->zctx);
    ps_engine_destroy(&f->e);
    free(f);
    *fp = NULL;
}

static bool over(fx *f, int fd, uint64_t now_ms)
{
    return ps_peer_limits_over(f->l, fd, now_ms);
}

/* How many of n messages on connection fd at now_ms pass. The rate tests
 * use descriptors no connection has (FAKE_FD and up): psd takes a message
 * of an unknown one as from a connection it had not heard of. */
#define FAKE_FD 4000
static int passed(fx *f, int fd, uint64_t now_ms, int n)
{
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok += !over(f, fd, now_ms);
    return ok;
}

/* stderr, where ps_log writes, into a file for the test to read. */
typedef struct capture {
    FILE *file;
    int saved;
} capture;

static void capture_start(capture *c)
{
    c->file = tmpfile();
    ck_assert_ptr_nonnull(c->file);
    c->saved = dup(STDERR_FILENO);
    ck_assert_int_ge(c->saved, 0);
    ck_assert_int_ge(dup2(fileno(c->file), STDERR_FILENO), 0);
}

/* Ends the capture and gives what was written (cap bytes, terminated). */
static void capture_end(capture *c, char *out, size_t cap)
{
    ck_assert_int_ge(dup2(c->saved, STDERR_FILENO), 0);
    close(c->saved);
    rewind(c->file);
    size_t n = fread(out, 1, cap - 1, c->file);
    out[n] = '\0';
    fclose(c->file);
}

START_TEST(new_connection_passes_five_messages_then_is_over)
{
    fx *f = fx_new();
    f->log.level = PS_LOG_INFO;
    ck_assert_int_eq(passed(f, FAKE_FD, T0, 5), 5);
    capture cap;
    capture_start(&cap);
    ck_assert(over(f, FAKE_FD, T0));
    ck_assert(over(f, FAKE_FD, T0));
    char text[1024];
    capture_end(&cap, text, sizeof text);
    ck_assert_str_eq(ps_peer_limits_why(f->l), "more than 5 messages a second before registering");
    ck_assert_uint_eq(f->counters.refused_rate, 2);
    ck_assert_str_eq(text, "test: warn: shard 0: a peer that has not registered sent more than 5 "
                           "messages a second (limits.unregistered_rate): the excess is refused "
                           "(said once)\n");
    /* another connection has a bucket of its own */
    ck_assert_int_eq(passed(f, FAKE_FD + 1, T0, 5), 5);
    ck_assert(!over(f, -1, T0)); /* a message of no known connection is not limited */
    fx_free(&f);
}
END_TEST

START_TEST(tokens_refill_at_the_rate_up_to_a_full_bucket)
{
    fx *f = fx_new();
    ck_assert_int_eq(passed(f, FAKE_FD, T0, 6), 5);
    ck_assert_int_eq(passed(f, FAKE_FD, T0 + 200, 3), 1); /* 5 a second: one in 200 ms */
    ck_assert_int_eq(passed(f, FAKE_FD, T0 + 1200, 10), 5);
    ck_assert_int_eq(passed(f, FAKE_FD, T0 + 9000, 10), 5); /* never more than 5 saved */
    ck_assert_uint_eq(f->counters.refused_rate, 1 + 2 + 5 + 5);
    fx_free(&f);
}
END_TEST

/* A worker joins through the engine; its WELCOME is said to the limits. */
static uint32_t worker_join(fx *f, int fd)
{
    ps_msg m, reply;
    ps_msg_init(&m, PS_MSG_HELLO);
    m.job = JOB;
    m.seq = 1;
    m.rank = -1;
    ck_assert_int_eq(ps_engine_handle(f->e, "worker", 6, 0, &m, NULL, no_send, &reply), 0);
    ck_assert_int_eq(reply.type, PS_MSG_WELCOME);
    ck_assert_int_eq(ps_engine_worker_rank(f->e, reply.worker_id), 0);
    ps_peer_limits_welcomed(f->l, fd, reply.worker_id);
    return reply.worker_id;
}

static void worker_leave(fx *f, uint32_t worker_id)
{
    ps_msg m, reply;
    ps_msg_init(&m, PS_MSG_BYE);
    m.job = JOB;
    m.seq = 2;
    m.worker_id = worker_id;
    ck_assert_int_eq(ps_engine_handle(f->e, "worker", 6, 0, &m, NULL, no_send, &reply), 0);
    ck_assert_int_eq(reply.type, PS_MSG_ACK);
}

START_TEST(welcomed_connection_is_never_over)
{
    fx *f = fx_new();
    ck_assert_int_eq(passed(f, FAKE_FD, T0, 3), 3); /* its HELLO and more, unwelcomed */
    uint32_t id = worker_join(f, FAKE_FD);
    ck_assert_int_eq(passed(f, FAKE_FD, T0, 100), 100);
    ck_assert_uint_eq(f->counters.refused_rate, 0);
    /* its heartbeats' connection, once heard with the live worker's id */
    ck_assert_int_eq(passed(f, FAKE_FD + 1, T0, 1), 1);
    ps_peer_limits_heard(f->l, FAKE_FD + 1, id);
    ck_assert_int_eq(passed(f, FAKE_FD + 1, T0, 100), 100);
    /* an id no worker holds registers nothing */
    ck_assert_int_eq(passed(f, FAKE_FD + 2, T0, 1), 1);
    ps_peer_limits_heard(f->l, FAKE_FD + 2, id + 1);
    ck_assert_int_eq(passed(f, FAKE_FD + 2, T0, 100), 4);
    ck_assert_uint_eq(f->counters.refused_rate, 96);
    /* once its worker has left, the connection is a stranger's again: a
     * full bucket of 5, then over */
    worker_leave(f, id);
    ck_assert_int_eq(passed(f, FAKE_FD, T0 + 10, 100), 5);
    ck_assert_uint_eq(f->counters.refused_rate, 96 + 95);
    fx_free(&f);
}
END_TEST

START_TEST(a_first_message_passes_however_many_came_before)
{
    fx *f = fx_new();
    /* thousands of short-lived peers, one message each, within a second:
     * psd's table of rates used to fill and refuse the next newcomer */
    for (int i = 0; i < 3000; i++)
        ck_assert_int_eq(passed(f, FAKE_FD + i, T0 + (uint64_t)i / 4, 1), 1);
    ck_assert_int_eq(passed(f, FAKE_FD + 3000, T0 + 750, 6), 5);
    ck_assert_uint_eq(f->counters.refused_rate, 1);
    fx_free(&f);
}
END_TEST

/* Counts the connections of fds[0..n) the server has shut (EOF or reset),
 * marking them in shut[]; what the server sends first (its greeting) is
 * read and dropped. */
static int count_shut(const int *fds, bool *shut, int n)
{
    int count = 0;
    for (int i = 0; i < n; i++) {
        if (!shut[i] && fds[i] >= 0) {
            struct pollfd p = {.fd = fds[i], .events = POLLIN};
            char buf[256];
            ssize_t got = 1;
            while (poll(&p, 1, 0) > 0 && (got = recv(fds[i], buf, sizeof buf, MSG_DONTWAIT)) > 0)
                ;
            shut[i] = got == 0 || (got < 0 && errno == ECONNRESET);
        }
        count += shut[i];
    }
    return count;
}

/* The loop's part for a while: tick whenever the monitor has something,
 * then sweep (nothing else to read here), until `want` of fds[0..n) are
 * shut and 200 ms more passed, or WAIT_MS. */
static int ticks_until_shut(fx *f, const int *fds, bool *shut, int n, int want)
{
    int closed = 0;
    uint64_t until = ps_clock_ms() + WAIT_MS, settled = 0;
    while (ps_clock_ms() < until && (settled == 0 || ps_clock_ms() < settled)) {
        zmq_pollitem_t it = {.socket = ps_peer_limits_monitor(f->l), .events = ZMQ_POLLIN};
        zmq_poll(&it, 1, 10);
        ps_peer_limits_tick(f->l);
        ps_peer_limits_sweep(f->l, true, ps_clock_ms());
        closed = count_shut(fds, shut, n);
        if (closed >= want && settled == 0)
            settled = ps_clock_ms() + 200; /* a while longer: no more are shut */
    }
    return closed;
}

/* A TCP connection to the fixture's ROUTER; with greet, the first bytes of
 * a ZMTP greeting (ZeroMQ then waits for the rest). */
static int tcp_connect(fx *f, bool greet)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)f->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    static const unsigned char signature[10] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f};
    if (greet)
        ck_assert_int_eq(send(fd, signature, sizeof signature, 0), (ssize_t)sizeof signature);
    return fd;
}

START_TEST(a_newcomer_over_max_peers_closes_an_idle_connection)
{
    fx *f = fx_new();
    f->log.level = PS_LOG_INFO;
    enum { N = 5 };
    int fds[N];
    bool shut[N] = {false};
    /* max_peers 2: two that never send; then one that greets: the oldest
     * idle one makes room for it */
    fds[0] = tcp_connect(f, false);
    fds[1] = tcp_connect(f, false);
    ck_assert_int_eq(ticks_until_shut(f, fds, shut, 2, 0), 0);
    fds[2] = tcp_connect(f, true);
    capture cap;
    capture_start(&cap);
    int closed = ticks_until_shut(f, fds, shut, 3, 1);
    char text[1024];
    capture_end(&cap, text, sizeof text);
    ck_assert_int_eq(closed, 1);
    ck_assert(shut[0]);
    ck_assert_str_eq(text, "test: warn: shard 0: 3 connections have not registered "
                           "(limits.max_peers 2): to let a new one in, psd closes the least "
                           "useful (first that of 127.0.0.1, which never sent a byte); "
                           "registered workers are never closed (said once)\n");
    /* two more idle ones: each newcomer gets in, the idle one before it
     * goes; the one that greeted stays */
    fds[3] = tcp_connect(f, false);
    ck_assert_int_eq(ticks_until_shut(f, fds, shut, 4, 2), 2);
    ck_assert(shut[1]);
    fds[4] = tcp_connect(f, false);
    ck_assert_int_eq(ticks_until_shut(f, fds, shut, N, 3), 3);
    ck_assert(shut[3] && !shut[2] && !shut[4]);
    ck_assert_uint_eq(f->counters.refused_peers, 3);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    fx_free(&f);
}
END_TEST

/* A DEALER of zctx connected to the fixture, its first message received
 * on the ROUTER: the connection's descriptor there. */
static int dealer_joined(fx *f, void *zctx, void **dealer)
{
    *dealer = zmq_socket(zctx, ZMQ_DEALER);
    ck_assert_ptr_nonnull(*dealer);
    int linger = 0, wait = WAIT_MS;
    zmq_setsockopt(*dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(*dealer, ZMQ_RCVTIMEO, &wait, sizeof wait);
    zmq_setsockopt(f->router, ZMQ_RCVTIMEO, &wait, sizeof wait);
    ck_assert_int_eq(zmq_connect(*dealer, f->job.servers[0]), 0);
    ck_assert_int_eq(zmq_send(*dealer, "hi", 2, 0), 2);
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    ck_assert_int_ge(zmq_msg_recv(&id, f->router, 0), 0);
    ck_assert_int_ge(zmq_msg_recv(&body, f->router, 0), 0);
    int fd = ps_peer_limits_fd_of(&body);
    ck_assert_int_ge(fd, 0);
    ck_assert(!ps_peer_limits_over(f->l, fd, ps_clock_ms()));
    zmq_msg_close(&id);
    zmq_msg_close(&body);
    return fd;
}

/* True when the DEALER's connection still carries a message both ways. */
static bool dealer_alive(fx *f, void *dealer)
{
    if (zmq_send(dealer, "ping", 4, 0) != 4)
        return false;
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    bool ok = zmq_msg_recv(&id, f->router, 0) >= 0 && zmq_msg_recv(&body, f->router, 0) >= 0 &&
              zmq_msg_send(&id, f->router, ZMQ_SNDMORE) >= 0 &&
              zmq_send(f->router, "pong", 4, 0) == 4;
    char buf[8];
    ok = ok && zmq_recv(dealer, buf, sizeof buf, 0) == 4;
    zmq_msg_close(&id);
    zmq_msg_close(&body);
    return ok;
}

START_TEST(a_welcomed_connection_is_never_closed_for_room)
{
    fx *f = fx_new();
    void *zctx = zmq_ctx_new();
    void *dealer;
    int fd = dealer_joined(f, zctx, &dealer);
    worker_join(f, fd);
    /* max_peers 2: six idle newcomers; four of them are closed, never the
     * worker's connection */
    enum { N = 6 };
    int fds[N];
    bool shut[N] = {false};
    for (int i = 0; i < N; i++)
        fds[i] = tcp_connect(f, false);
    ck_assert_int_eq(ticks_until_shut(f, fds, shut, N, N - 2), N - 2);
    ck_assert(dealer_alive(f, dealer));
    for (int i = 0; i < N; i++)
        close(fds[i]);
    zmq_close(dealer);
    zmq_ctx_term(zctx);
    fx_free(&f);
}
END_TEST

START_TEST(room_is_made_past_twice_the_cap_until_all_was_read)
{
    fx *f = fx_new();
    enum { N = 5 };
    int fds[N];
    bool shut[N] = {false};
    /* max_peers 2: with messages maybe waiting to be read, only what is
     * beyond 4 is closed */
    for (int i = 0; i < N; i++)
        fds[i] = tcp_connect(f, false);
    int closed = 0;
    for (uint64_t until = ps_clock_ms() + 500; ps_clock_ms() < until;) {
        zmq_pollitem_t it = {.socket = ps_peer_limits_monitor(f->l), .events = ZMQ_POLLIN};
        zmq_poll(&it, 1, 10);
        ps_peer_limits_tick(f->l);
        ps_peer_limits_sweep(f->l, false, ps_clock_ms());
        closed = count_shut(fds, shut, N);
    }
    ck_assert_int_eq(closed, 1);
    ck_assert(shut[0]);
    ck_assert_int_eq(ticks_until_shut(f, fds, shut, N, 3), 3);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    fx_free(&f);
}
END_TEST

START_TEST(a_message_of_a_closed_connection_is_dropped)
{
    fx *f = fx_new();
    void *zctx = zmq_ctx_new();
    void *d[3];
    int linger = 0, never = -1;
    /* three peers, each with a message psd has not read: the first to
     * come is closed to make room, and its message, read after, is not
     * answered (a HELLO would register a worker nobody is). They do not
     * connect again (a new connection may get the same descriptor). */
    for (int i = 0; i < 3; i++) {
        d[i] = zmq_socket(zctx, ZMQ_DEALER);
        zmq_setsockopt(d[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(d[i], ZMQ_RECONNECT_IVL, &never, sizeof never);
        ck_assert_int_eq(zmq_connect(d[i], f->job.servers[0]), 0);
        ck_assert_int_eq(zmq_send(d[i], &i, sizeof i, 0), (int)sizeof i);
        struct timespec ts = {0, 50 * 1000 * 1000}; /* its greeting and message arrive */
        nanosleep(&ts, NULL);
    }
    int fds[1] = {-1};
    bool shut[1] = {false};
    ticks_until_shut(f, fds, shut, 0, 0); /* the loop's turn: room for 2 */
    int wait = WAIT_MS, dropped = 0, kept = 0;
    zmq_setsockopt(f->router, ZMQ_RCVTIMEO, &wait, sizeof wait);
    for (int k = 0; k < 3; k++) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        ck_assert_int_ge(zmq_msg_recv(&id, f->router, 0), 0);
        ck_assert_int_ge(zmq_msg_recv(&body, f->router, 0), 0);
        int who = *(int *)zmq_msg_data(&body);
        bool closed = ps_peer_limits_closed(f->l, ps_peer_limits_fd_of(&body), ps_clock_ms());
        ck_assert_msg(closed == (who == 0), "peer %d: closed %d", who, closed);
        dropped += closed;
        kept += !closed;
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
    ck_assert_int_eq(dropped, 1);
    ck_assert_int_eq(kept, 2);
    for (int i = 0; i < 3; i++)
        zmq_close(d[i]);
    zmq_ctx_term(zctx);
    fx_free(&f);
}
END_TEST

START_TEST(a_connection_silent_after_connecting_is_closed)
{
    fx *f = fx_new();
    f->log.level = PS_LOG_INFO;
    void *zctx = zmq_ctx_new();
    void *dealer;
    int fds[1] = {tcp_connect(f, false)};
    bool shut[1] = {false};
    dealer_joined(f, zctx, &dealer); /* a connection that spoke (ticks the monitor) */
    uint64_t now = ps_clock_ms();
    ps_peer_limits_sweep(f->l, true, now);
    ck_assert_int_eq(count_shut(fds, shut, 1), 0);
    /* the next sweep comes after psd stood still: nothing is closed */
    ps_peer_limits_sweep(f->l, true, now + PS_PEER_SILENT_MS + 100);
    ck_assert_int_eq(count_shut(fds, shut, 1), 0);
    /* psd running on, the silent one's time runs out */
    capture cap;
    capture_start(&cap);
    for (uint64_t t = now + PS_PEER_SILENT_MS + 200; t <= now + 2 * PS_PEER_SILENT_MS + 200;
         t += 100)
        ps_peer_limits_sweep(f->l, true, t);
    char text[1024];
    capture_end(&cap, text, sizeof text);
    ck_assert_int_eq(ticks_until_shut(f, fds, shut, 1, 1), 1);
    ck_assert_str_eq(text, "test: warn: shard 0: a connection from 127.0.0.1 sent no message "
                           "within 5000 ms of connecting: closed, as is any such (said once)\n");
    ck_assert(dealer_alive(f, dealer));
    close(fds[0]);
    zmq_close(dealer);
    zmq_ctx_term(zctx);
    fx_free(&f);
}
END_TEST

START_TEST(report_logs_one_line_of_what_was_refused)
{
    fx *f = fx_new();
    f->log.level = PS_LOG_INFO;
    char text[1024];
    capture cap;
    capture_start(&cap);
    ps_peer_limits_report(f->l); /* nothing refused: nothing said */
    capture_end(&cap, text, sizeof text);
    ck_assert_str_eq(text, "");
    f->log.level = PS_LOG_ERROR; /* the refusal's own warning is not this test's */
    ck_assert_int_eq(passed(f, FAKE_FD, T0, 7), 5);
    f->log.level = PS_LOG_INFO;
    capture_start(&cap);
    ps_peer_limits_report(f->l);
    capture_end(&cap, text, sizeof text);
    ck_assert_str_eq(text, "test: shard 0/1: closed 0 unregistered connections over "
                           "limits.max_peers and 0 silent for 5000 ms after connecting; refused "
                           "2 messages over limits.unregistered_rate\n");
    fx_free(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("peer_limits");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, new_connection_passes_five_messages_then_is_over);
    tcase_add_test(tc, tokens_refill_at_the_rate_up_to_a_full_bucket);
    tcase_add_test(tc, welcomed_connection_is_never_over);
    tcase_add_test(tc, a_first_message_passes_however_many_came_before);
    tcase_add_test(tc, a_newcomer_over_max_peers_closes_an_idle_connection);
    tcase_add_test(tc, a_welcomed_connection_is_never_closed_for_room);
    tcase_add_test(tc, room_is_made_past_twice_the_cap_until_all_was_read);
    tcase_add_test(tc, a_message_of_a_closed_connection_is_dropped);
    tcase_add_test(tc, a_connection_silent_after_connecting_is_closed);
    tcase_add_test(tc, report_logs_one_line_of_what_was_refused);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
