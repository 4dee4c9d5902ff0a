/* test_peer_limits.c — peer_limits.c on a real ROUTER bound on loopback and
 * a real engine (limits.max_peers 2, limits.unregistered_rate 5): a new
 * peer's bucket of 5 messages and how it refills, a welcomed worker never
 * limited, a full table refusing newcomers, connections over the cap shut
 * from the socket monitor, and the log lines, read back from stderr. */
#include <check.h>

#include "check_main.h"
#include "test_jobs.h"
#include "loopback.h"
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static bool over(fx *f, const char *peer, uint64_t now_ms)
{
    return ps_peer_limits_over(f->l, peer, strlen(peer), now_ms);
}

/* How many of n messages from peer at now_ms pass. */
static int passed(fx *f, const char *peer, uint64_t now_ms, int n)
{
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok += !over(f, peer, now_ms);
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

START_TEST(new_peer_passes_five_messages_then_is_over)
{
    fx *f = fx_new();
    f->log.level = PS_LOG_INFO;
    ck_assert_int_eq(passed(f, "peer-a", T0, 5), 5);
    capture cap;
    capture_start(&cap);
    ck_assert(over(f, "peer-a", T0));
    ck_assert(over(f, "peer-a", T0));
    char text[1024];
    capture_end(&cap, text, sizeof text);
    ck_assert_str_eq(ps_peer_limits_why(f->l), "more than 5 messages a second before registering");
    ck_assert_uint_eq(f->counters.refused_rate, 2);
    ck_assert_str_eq(text, "test: warn: shard 0: a peer that has not registered sent more than 5 "
                           "messages a second (limits.unregistered_rate): the excess is refused "
                           "(said once)\n");
    /* another peer has a bucket of its own */
    ck_assert_int_eq(passed(f, "peer-b", T0, 5), 5);
    fx_free(&f);
}
END_TEST

START_TEST(tokens_refill_at_the_rate_up_to_a_full_bucket)
{
    fx *f = fx_new();
    ck_assert_int_eq(passed(f, "peer-a", T0, 6), 5);
    ck_assert_int_eq(passed(f, "peer-a", T0 + 200, 3), 1); /* 5 a second: one in 200 ms */
    ck_assert_int_eq(passed(f, "peer-a", T0 + 1200, 10), 5);
    ck_assert_int_eq(passed(f, "peer-a", T0 + 9000, 10), 5); /* never more than 5 saved */
    ck_assert_uint_eq(f->counters.refused_rate, 1 + 2 + 5 + 5);
    fx_free(&f);
}
END_TEST

START_TEST(welcomed_peer_is_never_over)
{
    fx *f = fx_new();
    ps_msg m, reply;
    ps_msg_init(&m, PS_MSG_HELLO);
    m.job = JOB;
    m.seq = 1;
    m.rank = -1;
    ck_assert_int_eq(ps_engine_handle(f->e, "worker", 6, 0, &m, NULL, no_send, &reply), 0);
    ck_assert_int_eq(reply.type, PS_MSG_WELCOME);
    ck_assert_int_eq(ps_engine_worker_rank(f->e, reply.worker_id), 0);
    ck_assert_int_eq(passed(f, "worker", T0, 3), 3); /* its HELLO and more, unwelcomed */
    ps_peer_limits_welcomed(f->l, "worker", 6, reply.worker_id);
    ck_assert_int_eq(passed(f, "worker", T0, 100), 100);
    ck_assert_uint_eq(f->counters.refused_rate, 0);
    /* once its worker has left, the peer is a stranger again: a full
     * bucket of 5, then over */
    ps_msg_init(&m, PS_MSG_BYE);
    m.job = JOB;
    m.seq = 2;
    m.worker_id = reply.worker_id;
    ck_assert_int_eq(ps_engine_handle(f->e, "worker", 6, 0, &m, NULL, no_send, &reply), 0);
    ck_assert_int_eq(reply.type, PS_MSG_ACK);
    ck_assert_int_eq(passed(f, "worker", T0 + 10, 100), 5);
    ck_assert_uint_eq(f->counters.refused_rate, 95);
    fx_free(&f);
}
END_TEST

START_TEST(new_peer_is_over_while_every_slot_holds_a_live_peer)
{
    fx *f = fx_new();
    /* max_peers 2: 4 slots each, at least 16 */
    char peer[16];
    for (int i = 0; i < 16; i++) {
        snprintf(peer, sizeof peer, "peer-%d", i);
        ck_assert_int_eq(passed(f, peer, T0, 1), 1);
    }
    ck_assert(over(f, "newcomer", T0));
    ck_assert(over(f, "", T0)); /* no identity: no slot */
    /* once the others have been silent for 10 s their slots are free */
    ck_assert_int_eq(passed(f, "newcomer", T0 + 10001, 6), 5);
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
        if (!shut[i]) {
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

START_TEST(connections_over_max_peers_are_shut)
{
    fx *f = fx_new();
    enum { N = 4 };
    int fds[N];
    bool shut[N] = {false};
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)f->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < N; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_ge(fds[i], 0);
        ck_assert_int_eq(connect(fds[i], (struct sockaddr *)&a, sizeof a), 0);
    }
    /* the loop's part: tick when the monitor has something */
    int closed = 0;
    uint64_t until = ps_clock_ms() + WAIT_MS, settled = 0;
    while (ps_clock_ms() < until && (settled == 0 || ps_clock_ms() < settled)) {
        zmq_pollitem_t it = {.socket = ps_peer_limits_monitor(f->l), .events = ZMQ_POLLIN};
        zmq_poll(&it, 1, 10);
        ps_peer_limits_tick(f->l);
        closed = count_shut(fds, shut, N);
        if (closed >= N - 2 && settled == 0)
            settled = ps_clock_ms() + 200; /* a while longer: no more are shut */
    }
    ck_assert_int_eq(closed, N - 2);
    ck_assert_uint_eq(f->counters.refused_peers, N - 2);
    for (int i = 0; i < N; i++)
        close(fds[i]);
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
    ck_assert_int_eq(passed(f, "peer-a", T0, 7), 5);
    f->log.level = PS_LOG_INFO;
    capture_start(&cap);
    ps_peer_limits_report(f->l);
    capture_end(&cap, text, sizeof text);
    ck_assert_str_eq(text, "test: shard 0/1: refused 0 connections over limits.max_peers and 2 "
                           "messages over limits.unregistered_rate\n");
    fx_free(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("peer_limits");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, new_peer_passes_five_messages_then_is_over);
    tcase_add_test(tc, tokens_refill_at_the_rate_up_to_a_full_bucket);
    tcase_add_test(tc, welcomed_peer_is_never_over);
    tcase_add_test(tc, new_peer_is_over_while_every_slot_holds_a_live_peer);
    tcase_add_test(tc, connections_over_max_peers_are_shut);
    tcase_add_test(tc, report_logs_one_line_of_what_was_refused);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
