/* test_shm_sessions.c — shm_sessions.c, psd's side of shared memory, with a
 * real engine whose replies go out through a send that does what
 * server_send does: a WELCOME names a segment only for a worker on this
 * host, a push in shared memory becomes an ordinary F32 push read from the
 * segment (if its mark is its seq), the newest pull that asks for shared
 * memory is answered there once, a departed worker's segment is swept,
 * and without shared_memory every such request is refused. */
#include <check.h>

#include "check_main.h"
#include "test_jobs.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "shm.h"
#include "shm_sessions.h"
#include "util.h"

#define JOB "shm-test"

typedef struct fx {
    ps_job job;
    ps_log log;
    ps_engine *e;
    ps_shm_sessions *x;
    size_t floats; /* the shard's keys */
    char host[PS_HOST_MAX];
    const ps_msg *req; /* the request being handled */
    int req_rc;        /* what ps_shm_sessions_request said of it */
    ps_error req_err;
    /* the last reply, as it went out */
    size_t nreplies;
    ps_msg last;
    char last_error[PS_MSG_ERROR_MAX];
    bool last_in_shm; /* ps_shm_sessions_pull_reply took it */
} fx;

/* As server_send: a WELCOME may name a segment, a PULL_REPLY may go into
 * one. */
static int fx_send(void *ctx, const void *identity, size_t identity_len, ps_msg *reply,
                   const void *payload)
{
    (void)identity;
    (void)identity_len;
    fx *f = ctx;
    if (reply->type == PS_MSG_WELCOME)
        ps_shm_sessions_welcome(f->x, f->req, reply);
    f->last_in_shm = ps_shm_sessions_pull_reply(f->x, reply, payload);
    f->last = *reply;
    ps_strlcpy(f->last_error, ps_msg_str(reply->error), sizeof f->last_error);
    f->last.error = f->last_error;
    f->last.payload = NULL;
    f->nreplies++;
    return 0;
}

static fx *fx_new(bool shared_memory)
{
    fx *f = calloc(1, sizeof *f);
    ck_assert_ptr_nonnull(f);
    ps_job *job = &f->job;
    ps_test_job_logistic(job, JOB, PS_MODE_ASYNC, 2, 0);
    job->shared_memory = shared_memory;
    f->log.level = PS_LOG_ERROR;
    f->log.prog = "test_shm_sessions";
    ps_error err;
    f->e = ps_engine_new(job, 0, &f->log, &err);
    ck_assert_msg(f->e != NULL, "engine: %s", err.msg);
    f->x = ps_shm_sessions_new(job, 0, f->e, &f->log, &err);
    ck_assert_msg(f->x != NULL, "sessions: %s", err.msg);
    f->floats = (size_t)(ps_engine_key_hi(f->e) - ps_engine_key_lo(f->e));
    ck_assert_uint_eq(f->floats, 4); /* 3 weights and a bias */
    ck_assert_int_eq(ps_shm_host_id(f->host, sizeof f->host), 0);
    return f;
}

static void fx_free(fx **fp)
{
    fx *f = *fp;
    ps_shm_sessions_destroy(&f->x);
    ck_assert_ptr_null(f->x);
    ps_shm_sessions_destroy(&f->x); /* twice is fine */
    ps_engine_destroy(&f->e);
    free(f);
    *fp = NULL;
}

static void request_init(ps_msg *m, ps_msg_type type, uint32_t worker_id, uint64_t seq)
{
    ps_msg_init(m, type);
    m->job = JOB;
    m->worker_id = worker_id;
    m->seq = seq;
}

/* As psd's loop: the sessions see the request first, then the engine
 * (which refuses it with the sessions' sentence when they did). */
static int handle(fx *f, const char *who, ps_msg *m)
{
    f->req = m;
    ps_error_clear(&f->req_err);
    f->req_rc = ps_shm_sessions_request(f->x, JOB, m, &f->req_err);
    return ps_engine_handle(f->e, who, strlen(who), f->req_rc, m, &f->req_err, fx_send, f);
}

/* A HELLO from `who` on `host` ("" or NULL: none); the WELCOME is f->last. */
static uint32_t hello(fx *f, const char *who, uint64_t seq, const char *host)
{
    ps_msg m;
    request_init(&m, PS_MSG_HELLO, 0, seq);
    m.rank = -1;
    m.host = host;
    ck_assert_int_eq(handle(f, who, &m), 0);
    ck_assert_int_eq(f->last.type, PS_MSG_WELCOME);
    return f->last.worker_id;
}

/* The worker's side: opens the segment the last WELCOME named. */
static void worker_attach(fx *f, ps_shm *w)
{
    ps_error err;
    ck_assert_msg(ps_shm_attach(w, f->last.shm_pid, f->last.shm_fd, f->last.shm_bytes,
                                f->last.shm_token, f->floats, &err) == 0,
                  "attach: %s", err.msg);
}

static void push_init(fx *f, ps_msg *m, uint32_t worker_id, uint64_t seq)
{
    request_init(m, PS_MSG_PUSH, worker_id, seq);
    m->key_lo = 0;
    m->key_hi = f->floats;
    m->samples = 1;
    m->encoding = PS_ENC_SHM_F32;
    m->payload_bytes = f->floats * sizeof(float);
}

/* A PULL_REPLY of the whole shard to worker_id's request seq, in F32. */
static ps_msg pull_reply(const fx *f, uint32_t worker_id, uint64_t seq)
{
    ps_msg r;
    ps_msg_init(&r, PS_MSG_PULL_REPLY);
    r.worker_id = worker_id;
    r.seq = seq;
    r.key_hi = f->floats;
    r.encoding = PS_ENC_F32;
    r.payload_bytes = f->floats * sizeof(float);
    return r;
}

START_TEST(welcome_names_a_segment_for_a_worker_on_this_host)
{
    fx *f = fx_new(true);
    hello(f, "wa", 1, f->host);
    ps_msg w1 = f->last;
    ck_assert_uint_eq(w1.shm_pid, (uint32_t)getpid());
    ck_assert_uint_eq(w1.shm_bytes, ps_shm_bytes(f->floats));
    ck_assert_uint_ne(w1.shm_token, 0);
    ck_assert_int_ge(fcntl((int)w1.shm_fd, F_GETFD), 0);
    ps_shm w;
    worker_attach(f, &w);
    ck_assert_uint_eq(w.floats, f->floats);
    ps_shm_detach(&w);
    /* the HELLO again (its WELCOME was lost): the same segment */
    hello(f, "wa", 1, f->host);
    ck_assert_uint_eq(f->last.worker_id, w1.worker_id);
    ck_assert_uint_eq(f->last.shm_fd, w1.shm_fd);
    ck_assert_uint_eq(f->last.shm_token, w1.shm_token);
    /* another worker: a segment of its own */
    hello(f, "wb", 1, f->host);
    ck_assert_uint_ne(f->last.worker_id, w1.worker_id);
    ck_assert_uint_ne(f->last.shm_fd, w1.shm_fd);
    ck_assert_uint_ne(f->last.shm_token, w1.shm_token);
    fx_free(&f);
}
END_TEST

START_TEST(hello_from_another_host_gets_no_segment)
{
    fx *f = fx_new(true);
    const char *hosts[] = {"another-host", "", NULL};
    for (size_t k = 0; k < 3; k++) {
        char who[8];
        snprintf(who, sizeof who, "w%zu", k);
        uint32_t id = hello(f, who, 1, hosts[k]);
        ck_assert_uint_eq(f->last.shm_pid, 0);
        ck_assert_uint_eq(f->last.shm_fd, 0);
        ck_assert_uint_eq(f->last.shm_bytes, 0);
        ck_assert_uint_eq(f->last.shm_token, 0);
        ps_msg bye;
        request_init(&bye, PS_MSG_BYE, id, 2); /* frees the rank for the next */
        ck_assert_int_eq(handle(f, who, &bye), 0);
    }
    fx_free(&f);
}
END_TEST

START_TEST(push_in_shared_memory_becomes_f32_read_from_the_segment)
{
    fx *f = fx_new(true);
    uint32_t id = hello(f, "wa", 1, f->host);
    ps_shm w;
    worker_attach(f, &w);
    const float g[4] = {1, 2, -3, 4};
    memcpy(w.grad, g, sizeof g);
    ps_shm_grad_mark(&w, 2);
    ps_msg m;
    push_init(f, &m, id, 2);
    ps_error err;
    ck_assert_int_eq(ps_shm_sessions_request(f->x, JOB, &m, &err), 0);
    ck_assert_int_eq(m.encoding, PS_ENC_F32);
    ck_assert_uint_eq(m.payload_bytes, sizeof g);
    ck_assert_ptr_nonnull(m.payload);
    ck_assert_mem_eq(m.payload, g, sizeof g);
    w.grad[0] = 9; /* the payload is the segment, not a copy of it */
    ck_assert(((const float *)m.payload)[0] == 9.0f);
    w.grad[0] = 1;
    /* and the engine applies it as any F32 push */
    ck_assert_int_eq(ps_engine_handle(f->e, "wa", 2, 0, &m, NULL, fx_send, f), 0);
    ck_assert_int_eq(f->last.type, PS_MSG_ACK);
    ck_assert_uint_eq(f->last.seq, 2);
    const float *theta = ps_engine_theta(f->e);
    for (size_t k = 0; k < 4; k++)
        ck_assert_msg(theta[k] == -0.5f * g[k], "theta[%zu] = %g", k, (double)theta[k]);
    ps_shm_detach(&w);
    fx_free(&f);
}
END_TEST

START_TEST(push_whose_segment_holds_another_push_is_refused)
{
    fx *f = fx_new(true);
    uint32_t id = hello(f, "wa", 1, f->host);
    ps_shm w;
    worker_attach(f, &w);
    ps_shm_grad_mark(&w, 2);
    ps_msg m;
    push_init(f, &m, id, 3);
    ck_assert_int_eq(handle(f, "wa", &m), PS_EPAYLOAD);
    ck_assert_int_eq(f->req_rc, PS_EPAYLOAD);
    ck_assert_str_eq(f->req_err.msg, "the gradient in shared memory is push 2's, not push 3's");
    ck_assert_int_eq(m.encoding, PS_ENC_SHM_F32);
    ck_assert_int_eq(f->last.type, PS_MSG_ERROR);
    ck_assert_int_eq(f->last.status, PS_EPAYLOAD);
    ck_assert_str_eq(f->last.error, "the gradient in shared memory is push 2's, not push 3's");
    /* nor may it claim more than the segment holds */
    ps_shm_grad_mark(&w, 3);
    m.payload_bytes = 20;
    ps_error err;
    ck_assert_int_eq(ps_shm_sessions_request(f->x, JOB, &m, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "a PUSH of 20 bytes does not fit the 16 bytes of shared memory");
    ck_assert_float_eq(ps_engine_theta(f->e)[0], 0.0f);
    ps_shm_detach(&w);
    fx_free(&f);
}
END_TEST

START_TEST(pull_asking_for_shared_memory_is_answered_there_once)
{
    fx *f = fx_new(true);
    uint32_t id = hello(f, "wa", 1, f->host);
    ps_shm w;
    worker_attach(f, &w);
    /* θ moves off zero first */
    const float g[4] = {1, 2, 3, 4};
    memcpy(w.grad, g, sizeof g);
    ps_shm_grad_mark(&w, 2);
    ps_msg m;
    push_init(f, &m, id, 2);
    ck_assert_int_eq(handle(f, "wa", &m), 0);
    for (size_t k = 0; k < 4; k++)
        w.theta[k] = 99;
    request_init(&m, PS_MSG_PULL, id, 5);
    m.key_hi = f->floats;
    m.flags = PS_FLAG_SHM;
    ck_assert_int_eq(handle(f, "wa", &m), 0);
    ck_assert_int_eq(f->last.type, PS_MSG_PULL_REPLY);
    ck_assert(f->last_in_shm);
    ck_assert_int_eq(f->last.encoding, PS_ENC_SHM_F32);
    ck_assert_uint_eq(f->last.payload_bytes, 16);
    ck_assert_mem_eq(w.theta, ps_engine_theta(f->e), 16);
    ck_assert(w.theta[0] == -0.5f);
    /* the same pull again: answered over the socket, the segment alone */
    w.theta[0] = 99;
    ck_assert_int_eq(handle(f, "wa", &m), 0);
    ck_assert(!f->last_in_shm);
    ck_assert_int_eq(f->last.encoding, PS_ENC_F32);
    ck_assert(w.theta[0] == 99.0f);
    /* of two such pulls only the newer one */
    const float theta[4] = {7, 7, 7, 7};
    ps_error err;
    for (uint64_t seq = 6; seq <= 7; seq++) {
        m.seq = seq;
        ck_assert_int_eq(ps_shm_sessions_request(f->x, JOB, &m, &err), 0);
    }
    ps_msg r = pull_reply(f, id, 6);
    ck_assert(!ps_shm_sessions_pull_reply(f->x, &r, theta));
    ck_assert_int_eq(r.encoding, PS_ENC_F32);
    r = pull_reply(f, id, 7);
    ck_assert(ps_shm_sessions_pull_reply(f->x, &r, theta));
    ck_assert_int_eq(r.encoding, PS_ENC_SHM_F32);
    ck_assert(w.theta[0] == 7.0f);
    r = pull_reply(f, id, 7);
    ck_assert(!ps_shm_sessions_pull_reply(f->x, &r, theta));
    /* a pull that did not ask, and a push without a riding pull: no */
    m.seq = 8;
    m.flags = 0;
    ck_assert_int_eq(ps_shm_sessions_request(f->x, JOB, &m, &err), 0);
    r = pull_reply(f, id, 8);
    ck_assert(!ps_shm_sessions_pull_reply(f->x, &r, theta));
    push_init(f, &m, id, 9);
    m.encoding = PS_ENC_F32;
    m.payload = g;
    m.flags = PS_FLAG_SHM;
    ck_assert_int_eq(ps_shm_sessions_request(f->x, JOB, &m, &err), 0);
    r = pull_reply(f, id, 9);
    ck_assert(!ps_shm_sessions_pull_reply(f->x, &r, theta));
    /* a push whose pull rides in it and asks: yes */
    m.seq = 10;
    m.flags = PS_FLAG_PULL | PS_FLAG_SHM;
    ck_assert_int_eq(ps_shm_sessions_request(f->x, JOB, &m, &err), 0);
    ck_assert_int_eq(m.encoding, PS_ENC_F32); /* its own payload untouched */
    ck_assert_ptr_eq(m.payload, g);
    r = pull_reply(f, id, 10);
    ck_assert(ps_shm_sessions_pull_reply(f->x, &r, theta));
    /* a pull of part of the shard goes over the socket: the segment holds
     * the whole shard at its place */
    m.seq = 11;
    ck_assert_int_eq(ps_shm_sessions_request(f->x, JOB, &m, &err), 0);
    r = pull_reply(f, id, 11);
    r.key_lo = 1;
    r.payload_bytes = (f->floats - 1) * sizeof(float);
    w.theta[0] = 99;
    ck_assert(!ps_shm_sessions_pull_reply(f->x, &r, theta));
    ck_assert_int_eq(r.encoding, PS_ENC_F32);
    ck_assert(w.theta[0] == 99.0f);
    ps_shm_detach(&w);
    fx_free(&f);
}
END_TEST

START_TEST(segment_of_a_worker_that_left_is_freed_by_the_sweep)
{
    fx *f = fx_new(true);
    uint32_t id = hello(f, "wa", 1, f->host);
    int fd = (int)f->last.shm_fd;
    uint64_t token = f->last.shm_token;
    uint64_t t0 = ps_clock_ms();
    ps_shm_sessions_sweep(f->x, t0);
    ck_assert_int_ge(fcntl(fd, F_GETFD), 0); /* a live worker's stays */
    ps_msg bye;
    request_init(&bye, PS_MSG_BYE, id, 2);
    ck_assert_int_eq(handle(f, "wa", &bye), 0);
    ck_assert_int_eq(f->last.type, PS_MSG_ACK);
    ps_shm_sessions_sweep(f->x, t0 + 500); /* at most once a second */
    ck_assert_int_ge(fcntl(fd, F_GETFD), 0);
    ps_shm_sessions_sweep(f->x, t0 + 1000);
    errno = 0;
    ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
    ck_assert_int_eq(errno, EBADF);
    /* the rank's next worker gets a new one */
    hello(f, "wb", 1, f->host);
    ck_assert_uint_ne(f->last.shm_bytes, 0);
    ck_assert_uint_ne(f->last.shm_token, token);
    fx_free(&f);
}
END_TEST

START_TEST(without_shared_memory_every_request_in_it_is_refused)
{
    fx *f = fx_new(false);
    uint32_t id = hello(f, "wa", 1, f->host);
    ck_assert_uint_eq(f->last.shm_bytes, 0);
    ck_assert_uint_eq(f->last.shm_token, 0);
    char want[PS_MSG_ERROR_MAX];
    ps_msg m;
    push_init(f, &m, id, 2);
    ck_assert_int_eq(handle(f, "wa", &m), PS_EPAYLOAD);
    snprintf(want, sizeof want,
             "PUSH says its payload is in shared memory, but worker %u has none with shard 0", id);
    ck_assert_str_eq(f->req_err.msg, want);
    ck_assert_int_eq(f->last.type, PS_MSG_ERROR);
    ck_assert_str_eq(f->last.error, want);
    request_init(&m, PS_MSG_HEARTBEAT, id, 3);
    m.encoding = PS_ENC_SHM_F32;
    ck_assert_int_eq(handle(f, "wa", &m), PS_EPAYLOAD);
    snprintf(want, sizeof want,
             "HEARTBEAT says its payload is in shared memory, but worker %u has none with "
             "shard 0",
             id);
    ck_assert_str_eq(f->req_err.msg, want);
    /* a pull that asks is answered over the socket */
    request_init(&m, PS_MSG_PULL, id, 4);
    m.key_hi = f->floats;
    m.flags = PS_FLAG_SHM;
    ck_assert_int_eq(handle(f, "wa", &m), 0);
    ck_assert_int_eq(f->last.type, PS_MSG_PULL_REPLY);
    ck_assert(!f->last_in_shm);
    ck_assert_int_eq(f->last.encoding, PS_ENC_F32);
    /* an unknown worker's is left to the engine, which knows no such worker */
    push_init(f, &m, id + 1, 5);
    ck_assert_int_eq(handle(f, "wa", &m), PS_EWORKER);
    ck_assert_int_eq(f->req_rc, 0);
    fx_free(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shm_sessions");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, welcome_names_a_segment_for_a_worker_on_this_host);
    tcase_add_test(tc, hello_from_another_host_gets_no_segment);
    tcase_add_test(tc, push_in_shared_memory_becomes_f32_read_from_the_segment);
    tcase_add_test(tc, push_whose_segment_holds_another_push_is_refused);
    tcase_add_test(tc, pull_asking_for_shared_memory_is_answered_there_once);
    tcase_add_test(tc, segment_of_a_worker_that_left_is_freed_by_the_sweep);
    tcase_add_test(tc, without_shared_memory_every_request_in_it_is_refused);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
