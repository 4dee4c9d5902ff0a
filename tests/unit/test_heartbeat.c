/* test_heartbeat.c — heartbeat.c, the client's heartbeat thread, on a
 * client built by hand with one shard that a ROUTER on loopback stands for:
 * what a HEARTBEAT carries and how often it goes, what each kind of reply
 * tells the client (alive, not registered, a final ERROR), a stop that is
 * at once and may be repeated, and silence without a worker id. */
#include <check.h>

#include "check_main.h"
#include "loopback.h"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "client_impl.h"
#include "heartbeat.h"
#include "util.h"
#include "wire.h"

#define JOB     "hb-test"
#define WAIT_MS 1000 /* the bound of every wait */

/* The shard's ROUTER, the client, and the last message it received. */
typedef struct fx {
    void *zctx, *router;
    char endpoint[64];
    ps_client *c;
    ps_frames frames;
    ps_msg in;
    unsigned char id[PS_IDENTITY_MAX]; /* the heartbeat socket's identity */
    size_t id_len;
    uint64_t in_ms; /* when in came */
} fx;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits (at most WAIT_MS, a look every 2 ms) until cond holds. */
#define WAIT_FOR(cond)                                                                             \
    for (uint64_t until_ = ps_clock_ms() + WAIT_MS; !(cond) && ps_clock_ms() < until_;)            \
    sleep_ms(2)

/* A client as ps_client_open makes it, with one shard at the ROUTER's
 * endpoint that knows the worker as worker_id (registration 1). */
static fx *fx_new(uint32_t worker_id, int heartbeat_ms)
{
    fx *f = calloc(1, sizeof *f);
    ck_assert_ptr_nonnull(f);
    f->zctx = zmq_ctx_new();
    ck_assert_ptr_nonnull(f->zctx);
    f->router = zmq_socket(f->zctx, ZMQ_ROUTER);
    ck_assert_ptr_nonnull(f->router);
    int linger = 0;
    zmq_setsockopt(f->router, ZMQ_LINGER, &linger, sizeof linger);
    snprintf(f->endpoint, sizeof f->endpoint, "tcp://127.0.0.1:%d", ps_test_free_port());
    ck_assert_int_eq(zmq_bind(f->router, f->endpoint), 0);
    ps_frames_init(&f->frames);

    ps_client *c = calloc(1, sizeof *c);
    ck_assert_ptr_nonnull(c);
    c->nshards = 1;
    c->shards = calloc(1, sizeof *c->shards);
    ck_assert_ptr_nonnull(c->shards);
    ps_strlcpy(c->shards[0].endpoint, f->endpoint, sizeof c->shards[0].endpoint);
    atomic_init(&c->shards[0].hb_worker_id, worker_id);
    atomic_init(&c->shards[0].reg_gen, 1);
    atomic_init(&c->shards[0].hb_lost_gen, 0);
    atomic_init(&c->shards[0].last_answer_ms, 0);
    ps_strlcpy(c->job, JOB, sizeof c->job);
    c->heartbeat_ms = heartbeat_ms;
    c->hb_stop_fd = -1;
    atomic_init(&c->push_refs, 0);
    atomic_init(&c->final_rc, 0);
    ck_assert_int_eq(pthread_mutex_init(&c->final_mu, NULL), 0);
    ck_assert_int_eq(pthread_mutex_init(&c->settle_mu, NULL), 0);
    ck_assert_int_eq(pthread_cond_init(&c->settle_cv, NULL), 0);
    ps_client_report(c, 0.25, 1000.0);
    f->c = c;
    return f;
}

static void fx_free(fx **fp)
{
    fx *f = *fp;
    ps_client *c = f->c;
    ps_heartbeat_stop(c);
    pthread_mutex_destroy(&c->final_mu);
    pthread_mutex_destroy(&c->settle_mu);
    pthread_cond_destroy(&c->settle_cv);
    free(c->shards);
    free(c);
    ps_frames_close(&f->frames);
    zmq_close(f->router);
    zmq_ctx_term(f->zctx);
    free(f);
    *fp = NULL;
}

/* The next message to the shard within ms: 0 (in f->in, its sender in
 * f->id), or -1 when none came. */
static int fx_recv(fx *f, int ms)
{
    uint64_t until = ps_clock_ms() + (uint64_t)ms;
    zmq_pollitem_t it = {.socket = f->router, .events = ZMQ_POLLIN};
    for (uint64_t now = ps_clock_ms(); now < until; now = ps_clock_ms()) {
        int n = zmq_poll(&it, 1, (long)(until - now));
        if (n < 0 && errno != EINTR)
            return -1;
        if (n <= 0)
            continue;
        ps_error err;
        int rc = ps_wire_recv(f->router, true, ZMQ_DONTWAIT, &f->frames, &f->in, &err);
        f->in_ms = ps_clock_ms();
        memcpy(f->id, f->frames.identity, f->frames.identity_len);
        f->id_len = f->frames.identity_len;
        ps_frames_close(&f->frames);
        if (rc == 0)
            return 0;
    }
    return -1;
}

/* The next HEARTBEAT, which must come within WAIT_MS. */
static const ps_msg *heartbeat_next(fx *f)
{
    ck_assert_int_eq(fx_recv(f, WAIT_MS), 0);
    ck_assert_int_eq(f->in.type, PS_MSG_HEARTBEAT);
    return &f->in;
}

/* A reply to the heartbeat thread's socket: type, seq, and for an ERROR
 * its code and text. */
static void fx_reply(fx *f, ps_msg_type type, uint64_t seq, int status, const char *text)
{
    ps_msg m;
    ps_msg_init(&m, type);
    m.seq = seq;
    m.status = status;
    m.error = text;
    ck_assert_int_eq(ps_wire_send(f->router, f->id, f->id_len, &m, NULL, 0), 0);
}

START_TEST(heartbeats_carry_the_worker_job_and_increasing_seq_every_interval)
{
    fx *f = fx_new(7, 20);
    ck_assert_int_eq(ps_heartbeat_start(f->c), 0);
    enum { WANT = 6 };
    uint64_t at[WANT], seq = 0, until = ps_clock_ms() + WAIT_MS;
    size_t n = 0;
    while (n < WANT && ps_clock_ms() < until) {
        uint64_t now = ps_clock_ms();
        if (fx_recv(f, (int)(until > now ? until - now : 0)) != 0)
            break;
        const ps_msg *m = &f->in;
        ck_assert_int_eq(m->type, PS_MSG_HEARTBEAT);
        ck_assert_uint_eq(m->protocol, PS_PROTOCOL_VERSION);
        ck_assert_uint_eq(m->worker_id, 7);
        ck_assert_str_eq(m->job, JOB);
        ck_assert(m->loss == 0.25);
        ck_assert(m->samples_per_s == 1000.0);
        if (n > 0)
            ck_assert_uint_eq(m->seq, seq + 1);
        seq = m->seq;
        at[n++] = f->in_ms;
    }
    ck_assert_uint_ge(n, 3);
    /* from the third on (the first ones may wait for the connection):
     * about heartbeat_ms apart, never a burst */
    if (n > 3) {
        uint64_t mean = (at[n - 1] - at[2]) / (n - 3);
        ck_assert_msg(mean >= 10 && mean <= 100, "heartbeats %llu ms apart, not about 20",
                      (unsigned long long)mean);
    }
    fx_free(&f);
}
END_TEST

START_TEST(ack_marks_the_shard_alive)
{
    fx *f = fx_new(7, 20);
    ck_assert_int_eq(ps_heartbeat_start(f->c), 0);
    const ps_msg *m = heartbeat_next(f);
    uint64_t before = ps_clock_ms();
    ck_assert_uint_eq(atomic_load(&f->c->shards[0].last_answer_ms), 0);
    fx_reply(f, PS_MSG_ACK, m->seq, 0, NULL);
    WAIT_FOR(atomic_load(&f->c->shards[0].last_answer_ms) != 0);
    uint64_t at = atomic_load(&f->c->shards[0].last_answer_ms);
    ck_assert_uint_ge(at, before);
    ck_assert_uint_le(at, ps_clock_ms());
    ck_assert_uint_eq(atomic_load(&f->c->shards[0].hb_lost_gen), 0);
    ck_assert_int_eq(atomic_load(&f->c->final_rc), 0);
    fx_free(&f);
}
END_TEST

START_TEST(unknown_worker_reply_asks_to_register_again)
{
    fx *f = fx_new(7, 20);
    ck_assert_int_eq(ps_heartbeat_start(f->c), 0);
    const ps_msg *m = heartbeat_next(f);
    fx_reply(f, PS_MSG_ERROR, m->seq, PS_EWORKER, "unknown worker 7");
    WAIT_FOR(atomic_load(&f->c->shards[0].hb_lost_gen) != 0);
    ck_assert_uint_eq(atomic_load(&f->c->shards[0].hb_lost_gen), 1);
    ck_assert_int_eq(atomic_load(&f->c->final_rc), 0);
    fx_free(&f);
}
END_TEST

START_TEST(unknown_worker_reply_to_an_older_registration_is_ignored)
{
    fx *f = fx_new(7, 20);
    ck_assert_int_eq(ps_heartbeat_start(f->c), 0);
    uint64_t old_seq = heartbeat_next(f)->seq;
    /* registered again as worker 8: the registration count first, so the
     * second heartbeat that names 8 was surely sent for registration 2 */
    atomic_store(&f->c->shards[0].reg_gen, 2);
    atomic_store(&f->c->shards[0].hb_worker_id, 8);
    int named = 0;
    for (int k = 0; k < 50 && named < 2; k++)
        named += heartbeat_next(f)->worker_id == 8;
    ck_assert_int_eq(named, 2);
    uint64_t new_seq = f->in.seq;
    fx_reply(f, PS_MSG_ERROR, old_seq, PS_EWORKER, "unknown worker 7");
    /* a final ERROR behind it shows the thread has read both */
    fx_reply(f, PS_MSG_ERROR, 0, PS_ESTOPPED, "marker");
    WAIT_FOR(atomic_load(&f->c->final_rc) != 0);
    ck_assert_int_eq(atomic_load(&f->c->final_rc), PS_ESTOPPED);
    ck_assert_uint_eq(atomic_load(&f->c->shards[0].hb_lost_gen), 0);
    /* the same refusal of a heartbeat of registration 2 counts */
    fx_reply(f, PS_MSG_ERROR, new_seq, PS_EWORKER, "unknown worker 8");
    WAIT_FOR(atomic_load(&f->c->shards[0].hb_lost_gen) != 0);
    ck_assert_uint_eq(atomic_load(&f->c->shards[0].hb_lost_gen), 2);
    fx_free(&f);
}
END_TEST

START_TEST(final_error_stops_the_client_naming_the_endpoint)
{
    fx *f = fx_new(7, 20);
    ck_assert_int_eq(ps_heartbeat_start(f->c), 0);
    heartbeat_next(f);
    fx_reply(f, PS_MSG_ERROR, 0, PS_EABORTED, "job stopped by rank 1: loss is nan");
    WAIT_FOR(atomic_load(&f->c->final_rc) != 0);
    ck_assert_int_eq(atomic_load(&f->c->final_rc), PS_EABORTED);
    char want[CLIENT_WHY_MAX];
    snprintf(want, sizeof want, "%s: job stopped by rank 1: loss is nan", f->endpoint);
    ck_assert_str_eq(f->c->final_why, want);
    ck_assert_int_eq(ps_client_final_check(f->c), PS_EABORTED);
    ck_assert_str_eq(f->c->last_error, want);
    ck_assert_uint_eq(atomic_load(&f->c->shards[0].hb_lost_gen), 0);
    fx_free(&f);
}
END_TEST

START_TEST(stop_returns_at_once_and_again_is_harmless)
{
    fx *f = fx_new(7, 10000); /* the thread sleeps between heartbeats */
    ps_heartbeat_stop(f->c);  /* never started */
    ck_assert_int_eq(f->c->hb_stop_fd, -1);
    ck_assert_int_eq(ps_heartbeat_start(f->c), 0);
    ck_assert(f->c->hb_started);
    heartbeat_next(f); /* the first goes at once; the next is 10 s away */
    uint64_t t0 = ps_clock_ms();
    ps_heartbeat_stop(f->c);
    uint64_t took = ps_clock_ms() - t0;
    ck_assert_msg(took < 100, "stop took %llu ms", (unsigned long long)took);
    ck_assert(!f->c->hb_started);
    ck_assert_ptr_null(f->c->hb_ctx);
    ck_assert_int_eq(f->c->hb_stop_fd, -1);
    ps_heartbeat_stop(f->c);
    ck_assert(!f->c->hb_started);
    ck_assert_int_eq(f->c->hb_stop_fd, -1);
    fx_free(&f);
}
END_TEST

START_TEST(no_heartbeat_goes_without_a_worker_id)
{
    fx *f = fx_new(0, 20);
    ck_assert_int_eq(ps_heartbeat_start(f->c), 0);
    ck_assert_int_eq(fx_recv(f, 200), -1); /* ten intervals */
    atomic_store(&f->c->shards[0].hb_worker_id, 7);
    ck_assert_uint_eq(heartbeat_next(f)->worker_id, 7);
    fx_free(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("heartbeat");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, heartbeats_carry_the_worker_job_and_increasing_seq_every_interval);
    tcase_add_test(tc, ack_marks_the_shard_alive);
    tcase_add_test(tc, unknown_worker_reply_asks_to_register_again);
    tcase_add_test(tc, unknown_worker_reply_to_an_older_registration_is_ignored);
    tcase_add_test(tc, final_error_stops_the_client_naming_the_endpoint);
    tcase_add_test(tc, stop_returns_at_once_and_again_is_harmless);
    tcase_add_test(tc, no_heartbeat_goes_without_a_worker_id);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
