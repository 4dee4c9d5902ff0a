/* test_client_shm.c — client_shm.c, the worker's side of shared memory,
 * against a segment this process makes as psd would (ps_shm_create) and a
 * client built by hand: a WELCOME's segment opened (and kept on a retry),
 * a wrong token refused with its reason, a push's gradient put once per
 * seq, θ read from the segment, and shared memory given up after a push
 * went unanswered. */
#include <check.h>

#include "check_main.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_impl.h"
#include "client_shm.h"
#include "shm.h"

#define N 5 /* keys per shard */

typedef struct fx {
    ps_shm seg; /* psd's side, for the shard that offers it */
    ps_client *c;
    ps_msg welcome;
} fx;

/* A client of nshards shards of N keys each, on a host with an id; the
 * last shard's WELCOME offers seg. */
static void fx_init(fx *f, size_t nshards)
{
    memset(f, 0, sizeof *f);
    ps_error err;
    ck_assert_msg(ps_shm_create(&f->seg, N, &err) == 0, "shm: %s", err.msg);
    ps_client *c = calloc(1, sizeof *c);
    ck_assert_ptr_nonnull(c);
    c->nshards = nshards;
    c->shards = calloc(nshards, sizeof *c->shards);
    ck_assert_ptr_nonnull(c->shards);
    c->num_params = N * nshards;
    strcpy(c->host, "test-host");
    for (size_t i = 0; i < nshards; i++) {
        shard *s = &c->shards[i];
        snprintf(s->endpoint, sizeof s->endpoint, "tcp://127.0.0.1:%zu", 5550 + i);
        s->key_lo = N * i;
        s->key_hi = N * (i + 1);
    }
    f->c = c;
    ps_msg_init(&f->welcome, PS_MSG_WELCOME);
    f->welcome.shm_pid = (uint32_t)getpid();
    f->welcome.shm_fd = (uint32_t)f->seg.fd;
    f->welcome.shm_bytes = f->seg.bytes;
    f->welcome.shm_token = f->seg.token;
}

static void fx_fini(fx *f)
{
    ps_client *c = f->c;
    for (size_t i = 0; i < c->nshards; i++) {
        ps_shm_detach(&c->shards[i].shm);
        ps_shm_detach(&c->shards[i].shm_old);
    }
    free(c->theta_buf);
    free(c->shards);
    free(c);
    f->c = NULL;
    ps_shm_detach(&f->seg);
}

/* Shard i opens the segment its WELCOME offers. */
static shard *attached(fx *f, size_t i)
{
    shard *s = &f->c->shards[i];
    ps_client_shm_attach(f->c, s, &f->welcome);
    ck_assert_msg(s->shm_on, "attach: %s", f->c->shm_why);
    return s;
}

static ps_msg shm_pull_reply(uint64_t payload_bytes, uint64_t version)
{
    ps_msg m;
    ps_msg_init(&m, PS_MSG_PULL_REPLY);
    m.encoding = PS_ENC_SHM_F32;
    m.payload_bytes = payload_bytes;
    m.model_version = version;
    return m;
}

START_TEST(welcome_opens_the_segment_and_a_retry_keeps_it)
{
    fx f;
    fx_init(&f, 1);
    shard *s = attached(&f, 0);
    ck_assert_str_eq(f.c->shm_why, "");
    ck_assert_uint_eq(s->shm.token, f.seg.token);
    ck_assert_uint_eq(s->shm.floats, N);
    f.seg.theta[3] = 2.5f; /* one segment, two mappings */
    ck_assert(s->shm.theta[3] == 2.5f);
    void *base = s->shm.base;
    s->shm_grad_seq = 3;
    ps_client_shm_attach(f.c, s, &f.welcome); /* the WELCOME of a retried HELLO */
    ck_assert(s->shm_on);
    ck_assert_ptr_eq(s->shm.base, base);
    ck_assert_uint_eq(s->shm_grad_seq, 3);
    ck_assert(!ps_shm_mapped(&s->shm_old));
    fx_fini(&f);
}
END_TEST

START_TEST(welcome_with_a_wrong_token_leaves_the_socket_and_says_why)
{
    fx f;
    fx_init(&f, 1);
    f.welcome.shm_token = f.seg.token + 1;
    shard *s = &f.c->shards[0];
    ps_client_shm_attach(f.c, s, &f.welcome);
    ck_assert(!s->shm_on);
    ck_assert(!ps_shm_mapped(&s->shm));
    char want[CLIENT_WHY_MAX];
    snprintf(want, sizeof want,
             "tcp://127.0.0.1:5550: /proc/%d/fd/%d does not hold the segment promised",
             (int)getpid(), f.seg.fd);
    ck_assert_str_eq(f.c->shm_why, want);
    fx_fini(&f);
}
END_TEST

START_TEST(welcome_is_ignored_without_a_host_or_a_segment)
{
    fx f;
    fx_init(&f, 1);
    shard *s = &f.c->shards[0];
    f.c->host[0] = '\0'; /* socket_only */
    ps_client_shm_attach(f.c, s, &f.welcome);
    ck_assert(!s->shm_on);
    ck_assert(!ps_shm_mapped(&s->shm));
    strcpy(f.c->host, "test-host");
    f.welcome.shm_bytes = 0; /* psd offered none */
    ps_client_shm_attach(f.c, s, &f.welcome);
    ck_assert(!s->shm_on);
    ck_assert_str_eq(f.c->shm_why, "");
    fx_fini(&f);
}
END_TEST

START_TEST(grad_put_copies_the_slice_once_per_seq)
{
    fx f;
    fx_init(&f, 1);
    shard *s = attached(&f, 0);
    const float g1[N] = {1, 2, 3, 4, 5}, g2[N] = {-1, -2, -3, -4, -5};
    ps_client_shm_grad_put(s, g1, sizeof g1, 4);
    ck_assert_mem_eq(f.seg.grad, g1, sizeof g1); /* what psd reads */
    ck_assert_uint_eq(ps_shm_grad_seq(&f.seg), 4);
    ck_assert_uint_eq(s->shm_grad_seq, 4);
    ps_client_shm_grad_put(s, g2, sizeof g2, 4); /* push 4 sent again */
    ck_assert_mem_eq(f.seg.grad, g1, sizeof g1);
    ck_assert_uint_eq(ps_shm_grad_seq(&f.seg), 4);
    ps_client_shm_grad_put(s, g2, sizeof g2, 5);
    ck_assert_mem_eq(f.seg.grad, g2, sizeof g2);
    ck_assert_uint_eq(ps_shm_grad_seq(&f.seg), 5);
    fx_fini(&f);
}
END_TEST

START_TEST(pull_reply_copies_theta_from_the_segment_at_the_shards_offset)
{
    fx f;
    fx_init(&f, 2);
    attached(&f, 1);
    for (size_t k = 0; k < N; k++)
        f.seg.theta[k] = 0.5f * (float)(k + 1);
    float theta[2 * N];
    for (size_t k = 0; k < 2 * N; k++)
        theta[k] = -1;
    op o = {.type = PS_MSG_PULL, .theta = theta};
    ps_msg m = shm_pull_reply(N * sizeof(float), 11);
    uint64_t version = 12;
    char why[256] = "";
    ck_assert_int_eq(ps_client_shm_pull_accept(f.c, &o, 1, &m, &version, why, sizeof why), 0);
    for (size_t k = 0; k < N; k++) {
        ck_assert(theta[k] == -1.0f);
        ck_assert(theta[N + k] == 0.5f * (float)(k + 1));
    }
    ck_assert_uint_eq(version, 11);
    ck_assert_uint_eq(f.c->shards[1].theta_version, 11);
    ck_assert_ptr_null(o.view_out);
    ck_assert_str_eq(why, "");
    fx_fini(&f);
}
END_TEST

START_TEST(pull_reply_with_one_shard_is_a_view_of_the_segment)
{
    fx f;
    fx_init(&f, 1);
    shard *s = attached(&f, 0);
    f.seg.theta[0] = 7.0f;
    op o = {.type = PS_MSG_PULL, .view = true};
    ps_msg m = shm_pull_reply(N * sizeof(float), 3);
    uint64_t version = UINT64_MAX;
    char why[256] = "";
    ck_assert_int_eq(ps_client_shm_pull_accept(f.c, &o, 0, &m, &version, why, sizeof why), 0);
    ck_assert_ptr_eq(o.view_out, s->shm.theta);
    ck_assert(o.view_out[0] == 7.0f);
    ck_assert_ptr_null(o.theta);
    ck_assert_ptr_null(f.c->theta_buf); /* nothing copied */
    ck_assert_uint_eq(version, 3);
    fx_fini(&f);
}
END_TEST

START_TEST(pull_reply_of_another_size_is_refused)
{
    fx f;
    fx_init(&f, 1);
    attached(&f, 0);
    float theta[N];
    op o = {.type = PS_MSG_PULL, .theta = theta};
    ps_msg m = shm_pull_reply(16, 3);
    uint64_t version = UINT64_MAX;
    char why[256] = "";
    ck_assert_int_eq(ps_client_shm_pull_accept(f.c, &o, 0, &m, &version, why, sizeof why),
                     PS_EPROTO);
    ck_assert_str_eq(why, "tcp://127.0.0.1:5550: PULL_REPLY says 16 bytes of θ are in shared "
                          "memory, a different size");
    ck_assert_uint_eq(version, UINT64_MAX);
    /* the right size, but the shard has no segment in use */
    f.c->shards[0].shm_on = false;
    m.payload_bytes = N * sizeof(float);
    ck_assert_int_eq(ps_client_shm_pull_accept(f.c, &o, 0, &m, &version, why, sizeof why),
                     PS_EPROTO);
    ck_assert_str_eq(why, "tcp://127.0.0.1:5550: PULL_REPLY says 20 bytes of θ are in shared "
                          "memory, but none is in use");
    fx_fini(&f);
}
END_TEST

START_TEST(push_unanswered_turns_shared_memory_off_for_that_shard)
{
    fx f;
    fx_init(&f, 2);
    ps_client *c = f.c;
    attached(&f, 1);
    c->shards[0].shm_on = true; /* as if it had its own segment */
    c->shards[0].pending = false;
    c->shards[1].pending = true;
    ps_client_shm_after_push(c);
    ck_assert(c->shards[0].shm_on);
    ck_assert(!c->shards[1].shm_on);
    ck_assert_str_eq(c->shm_why, "tcp://127.0.0.1:5551: a push went unanswered: θ and "
                                 "gradients go over the socket from now on");
    /* the segment stays mapped (a view may point into it) */
    ck_assert(ps_shm_mapped(&c->shards[1].shm));
    fx_fini(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("client_shm");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, welcome_opens_the_segment_and_a_retry_keeps_it);
    tcase_add_test(tc, welcome_with_a_wrong_token_leaves_the_socket_and_says_why);
    tcase_add_test(tc, welcome_is_ignored_without_a_host_or_a_segment);
    tcase_add_test(tc, grad_put_copies_the_slice_once_per_seq);
    tcase_add_test(tc, pull_reply_copies_theta_from_the_segment_at_the_shards_offset);
    tcase_add_test(tc, pull_reply_with_one_shard_is_a_view_of_the_segment);
    tcase_add_test(tc, pull_reply_of_another_size_is_refused);
    tcase_add_test(tc, push_unanswered_turns_shared_memory_off_for_that_shard);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
