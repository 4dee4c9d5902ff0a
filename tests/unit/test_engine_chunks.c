/* test_engine_chunks.c — pipelined sync rounds (proto/ps.proto, "Chunks")
 * in one shard's engine, driven without sockets: the chunk accounting (a
 * chunk is applied once every push of the sealed round holds it, the
 * version moves on at the last), θ bit-identical to the whole-θ path with
 * deterministic sums, a chunk sent again acknowledged as a duplicate, a rank
 * that leaves mid-push counting as zeros, the parked pulls answered chunk
 * by chunk, and no pull answered from a round part applied. */
#include <check.h>

#include "check_main.h"
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "engine.h"
#include "job.h"

#define F      599     /* logistic: w [599], b [1]: P keys */
#define P      (F + 1) /* 600 keys */
#define CK     256     /* sync_chunk_kib 1: 256 keys a chunk */
#define NC     3       /* chunks of 256, 256, 88 keys */
#define MAXREP 128

typedef struct rep {
    ps_msg msg;
    char to[16];
    float first; /* the payload's first float (F32) */
} rep;

typedef struct fx {
    ps_job job;
    ps_log log;
    ps_engine *e;
    rep r[MAXREP];
    size_t n;
} fx;

static int capture(void *ctx, const void *identity, size_t identity_len, ps_msg *reply,
                   const void *payload)
{
    fx *f = ctx;
    ck_assert_uint_lt(f->n, MAXREP);
    static unsigned char hdr[PS_HEADER_MAX_BYTES];
    size_t len = 0;
    ck_assert_int_eq(ps_codec_encode(reply, hdr, sizeof hdr, &len), 0);
    rep *c = &f->r[f->n++];
    c->msg = *reply;
    c->msg.payload = NULL;
    c->msg.job = c->msg.error = c->msg.detail = c->msg.mode = NULL;
    c->msg.layout = NULL;
    size_t k = identity_len < sizeof c->to - 1 ? identity_len : sizeof c->to - 1;
    memcpy(c->to, identity, k);
    c->to[k] = '\0';
    c->first = 0;
    if (reply->encoding == PS_ENC_F32 && reply->payload_bytes >= sizeof(float))
        memcpy(&c->first, payload, sizeof(float));
    return 0;
}

static fx *fx_new(uint32_t workers, uint32_t chunk_kib)
{
    fx *f = calloc(1, sizeof *f);
    ck_assert_ptr_nonnull(f);
    ps_job *job = &f->job;
    strcpy(job->name, "test-job");
    job->mode = PS_MODE_SYNC;
    job->workers = workers;
    job->nservers = 1;
    strcpy(job->servers[0], "tcp://127.0.0.1:7070");
    job->model.type = PS_MODEL_LOGISTIC;
    job->model.features = F;
    job->model.init_scheme = PS_INIT_XAVIER;
    job->model.init_seed = 3;
    job->optimizer.type = PS_OPTIM_MOMENTUM;
    job->optimizer.momentum = 0.9;
    job->optimizer.lr = 0.1;
    job->optimizer.schedule = PS_SCHEDULE_CONSTANT;
    job->deterministic = true;
    job->sync_chunk_kib = chunk_kib;
    job->log_level = PS_LOG_ERROR;
    f->log.level = PS_LOG_ERROR;
    f->log.prog = "test_engine_chunks";
    ps_error err;
    f->e = ps_engine_new(job, 0, &f->log, &err);
    ck_assert_msg(f->e != NULL, "engine: %s", err.msg);
    return f;
}

static void fx_free(fx *f)
{
    ps_engine_destroy(&f->e);
    free(f);
}

static const ps_msg *last(const fx *f)
{
    ck_assert_uint_gt(f->n, 0);
    return &f->r[f->n - 1].msg;
}

static int handle(fx *f, const char *who, ps_msg *m)
{
    m->job = "test-job";
    m->protocol = PS_PROTOCOL_VERSION;
    return ps_engine_handle(f->e, who, strlen(who), 0, m, NULL, capture, f);
}

static uint32_t hello(fx *f, int rank, const char *who)
{
    ps_msg m;
    ps_msg_init(&m, PS_MSG_HELLO);
    m.seq = 1;
    m.rank = rank;
    ck_assert_int_eq(handle(f, who, &m), 0);
    ck_assert_int_eq(last(f)->type, PS_MSG_WELCOME);
    return last(f)->worker_id;
}

/* Chunk c of grad (the whole gradient, P floats) as a PUSH of its own;
 * c = -1: the whole push. pull: the pull of round clock + 1 rides in it. */
static int push(fx *f, const char *who, uint32_t id, uint64_t seq, uint64_t clock, int c,
                const float *grad, bool pull)
{
    ps_msg m;
    ps_msg_init(&m, PS_MSG_PUSH);
    m.worker_id = id;
    m.seq = seq;
    m.clock = clock;
    m.samples = 4;
    m.key_lo = c < 0 ? 0 : (uint64_t)c * CK;
    m.key_hi = c < 0 ? P : ((uint64_t)c + 1) * CK < P ? ((uint64_t)c + 1) * CK : P;
    if (c >= 0) {
        m.flags = PS_FLAG_CHUNK;
        m.chunk = (uint32_t)c;
        m.chunks = NC;
    }
    if (pull) {
        m.flags |= PS_FLAG_PULL | PS_FLAG_CHUNK;
        m.min_version = clock + 1;
        m.pull_clock = clock + 1;
    }
    m.encoding = PS_ENC_F32;
    m.payload_bytes = (m.key_hi - m.key_lo) * sizeof(float);
    m.payload = grad + m.key_lo;
    return handle(f, who, &m);
}

static void grads(float g[2][P], int round)
{
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < P; i++)
            g[r][i] = (float)((i * 7 + r * 13 + round * 5) % 23 - 11) * 0.37f + 1e-3f * (float)r;
}

/* θ after `rounds` rounds of 2 workers' whole pushes, with chunk_kib. */
static void theta_whole(uint32_t chunk_kib, int rounds, float *out)
{
    fx *f = fx_new(2, chunk_kib);
    uint32_t a = hello(f, 0, "a"), b = hello(f, 1, "b");
    float g[2][P];
    for (int k = 0; k < rounds; k++) {
        grads(g, k);
        ck_assert_int_eq(push(f, "b", b, (uint64_t)k + 1, (uint64_t)k, -1, g[1], false), 0);
        ck_assert_int_eq(push(f, "a", a, (uint64_t)k + 1, (uint64_t)k, -1, g[0], false), 0);
    }
    ck_assert_uint_eq(ps_engine_version(f->e), (uint64_t)rounds);
    memcpy(out, ps_engine_theta(f->e), P * sizeof(float));
    fx_free(f);
}

static size_t count_chunk_replies(const fx *f, size_t from, const char *to, uint32_t chunk)
{
    size_t n = 0;
    for (size_t i = from; i < f->n; i++) {
        const ps_msg *m = &f->r[i].msg;
        if (m->type == PS_MSG_PULL_REPLY && (m->flags & PS_FLAG_CHUNK) && m->chunk == chunk &&
            strcmp(f->r[i].to, to) == 0)
            n++;
    }
    return n;
}

START_TEST(welcome_says_the_chunks_and_small_shards_take_the_whole_path)
{
    fx *f = fx_new(2, 1);
    hello(f, 0, "a");
    ck_assert_uint_eq(last(f)->chunk_keys, CK);
    ck_assert_uint_eq(ps_engine_chunks(f->e), NC);
    fx_free(f);
    f = fx_new(2, 4); /* 1024 keys a chunk: the shard is one chunk, the whole path */
    hello(f, 0, "a");
    ck_assert_uint_eq(last(f)->chunk_keys, 0);
    ck_assert_uint_eq(ps_engine_chunks(f->e), 1);
    fx_free(f);
}
END_TEST

START_TEST(each_chunk_is_applied_once_every_push_holds_it)
{
    float want[P];
    theta_whole(0, 3, want); /* today's whole-θ path */
    fx *f = fx_new(2, 1);
    uint32_t a = hello(f, 0, "a"), b = hello(f, 1, "b");
    float g[2][P];
    for (int k = 0; k < 3; k++) {
        grads(g, k);
        uint64_t v = (uint64_t)k;
        size_t from = f->n;
        /* a: every chunk, its pull riding in chunk 0: nothing applied yet */
        for (int c = 0; c < NC; c++)
            ck_assert_int_eq(push(f, "a", a, v + 1, v, c, g[0], c == 0), 0);
        ck_assert(ps_engine_whole(f->e));
        ck_assert_uint_eq(count_chunk_replies(f, from, "a", 0), 0);
        /* b's chunk 1, then 0: each applied as b's arrives, and sent to a */
        ck_assert_int_eq(push(f, "b", b, v + 1, v, 1, g[1], true), 0);
        ck_assert(!ps_engine_whole(f->e));
        ck_assert_uint_eq(ps_engine_version(f->e), v);
        ck_assert_uint_eq(count_chunk_replies(f, from, "a", 1), 1);
        ck_assert_uint_eq(count_chunk_replies(f, from, "a", 0), 0);
        /* b's pull rode in chunk 1: it got chunk 1 at once, being parked
         * in a round part applied */
        ck_assert_uint_eq(count_chunk_replies(f, from, "b", 1), 1);
        ck_assert_int_eq(push(f, "b", b, v + 1, v, 0, g[1], false), 0);
        ck_assert_uint_eq(count_chunk_replies(f, from, "a", 0), 1);
        ck_assert_uint_eq(ps_engine_version(f->e), v);
        ck_assert_int_eq(push(f, "b", b, v + 1, v, 2, g[1], false), 0);
        ck_assert_uint_eq(ps_engine_version(f->e), v + 1);
        ck_assert(ps_engine_whole(f->e));
        for (uint32_t c = 0; c < NC; c++) {
            ck_assert_uint_eq(count_chunk_replies(f, from, "a", c), 1);
            ck_assert_uint_eq(count_chunk_replies(f, from, "b", c), 1);
        }
        /* no whole reply went: the chunks answered both pulls */
        for (size_t i = from; i < f->n; i++)
            ck_assert(f->r[i].msg.type != PS_MSG_PULL_REPLY || (f->r[i].msg.flags & PS_FLAG_CHUNK));
    }
    ck_assert_mem_eq(ps_engine_theta(f->e), want, sizeof want);
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.pushes, 6); /* one a rank a round, whatever its chunks */
    ck_assert_uint_eq(st.chunk_replies, 3 * 2 * NC);
    fx_free(f);
}
END_TEST

START_TEST(whole_pushes_into_a_chunked_shard_give_the_same_theta)
{
    float want[P], got[P];
    theta_whole(0, 4, want);
    theta_whole(1, 4, got);
    ck_assert_mem_eq(got, want, sizeof want);
}
END_TEST

/* A round begun by a whole push (a worker on psd's host) goes on by
 * chunks when the other rank's push comes as chunks: θ as the whole path's,
 * and a round of whole pushes only is applied whole (no chunk reply). */
START_TEST(a_round_begun_whole_goes_on_by_chunks)
{
    float want[P];
    theta_whole(0, 4, want);
    fx *f = fx_new(2, 1);
    uint32_t a = hello(f, 0, "a"), b = hello(f, 1, "b");
    float g[2][P];
    for (int k = 0; k < 4; k++) {
        grads(g, k);
        uint64_t v = (uint64_t)k;
        size_t from = f->n;
        if (k % 2 == 0) { /* a whole, then b by chunks */
            ck_assert_int_eq(push(f, "a", a, v + 1, v, -1, g[0], false), 0);
            for (int c = 0; c < NC; c++) {
                ck_assert_uint_eq(ps_engine_version(f->e), v);
                ck_assert_int_eq(push(f, "b", b, v + 1, v, c, g[1], c == 0), 0);
            }
            ck_assert_uint_eq(count_chunk_replies(f, from, "b", 0), 1);
        } else { /* both whole: the whole path, no chunk of θ sent */
            ck_assert_int_eq(push(f, "b", b, v + 1, v, -1, g[1], false), 0);
            ck_assert_int_eq(push(f, "a", a, v + 1, v, -1, g[0], false), 0);
            for (uint32_t c = 0; c < NC; c++)
                ck_assert_uint_eq(count_chunk_replies(f, from, "b", c), 0);
        }
        ck_assert_uint_eq(ps_engine_version(f->e), v + 1);
        ck_assert(ps_engine_whole(f->e));
    }
    ck_assert_mem_eq(ps_engine_theta(f->e), want, sizeof want);
    fx_free(f);
}
END_TEST

/* A round sealed without a rank (it left) and part applied stays sealed
 * when a worker takes the rank over: the rest of the round's chunks close
 * it, the newcomer's pull waits for its end and its push for the round is
 * dropped as late. (It used to reopen the round: the newcomer's pull waited
 * for the round, and the round for the newcomer's push, for good.) */
START_TEST(a_rank_taken_over_mid_round_does_not_reopen_it)
{
    fx *f = fx_new(2, 1);
    uint32_t a = hello(f, 0, "a"), b = hello(f, 1, "b");
    ps_msg m;
    ps_msg_init(&m, PS_MSG_BYE);
    m.worker_id = b;
    m.seq = 1;
    ck_assert_int_eq(handle(f, "b", &m), 0);
    float g[2][P];
    grads(g, 0);
    ck_assert_int_eq(push(f, "a", a, 1, 0, 0, g[0], true), 0); /* sealed: chunk 0 applied */
    ck_assert(!ps_engine_whole(f->e));
    uint32_t c = hello(f, 1, "c"); /* the rank taken over mid-round */
    size_t from = f->n;
    ps_msg_init(&m, PS_MSG_PULL);
    m.worker_id = c;
    m.seq = 2;
    m.key_lo = 0;
    m.key_hi = P;
    m.min_version = 0;
    ck_assert_int_eq(handle(f, "c", &m), 0);
    ck_assert_uint_eq(f->n, from); /* waits: θ is part applied */
    for (int k = 1; k < NC; k++)
        ck_assert_int_eq(push(f, "a", a, 1, 0, k, g[0], false), 0);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    ck_assert(ps_engine_whole(f->e));
    bool answered = false;
    for (size_t i = from; i < f->n; i++)
        if (f->r[i].msg.type == PS_MSG_PULL_REPLY && f->r[i].msg.seq == 2)
            answered = true;
    ck_assert(answered);
    fx_free(f);
}
END_TEST

START_TEST(a_chunk_sent_again_is_a_duplicate)
{
    fx *f = fx_new(2, 1);
    uint32_t a = hello(f, 0, "a"), b = hello(f, 1, "b");
    float g[2][P];
    grads(g, 0);
    ck_assert_int_eq(push(f, "a", a, 1, 0, 0, g[0], false), 0);
    ck_assert_int_eq(push(f, "a", a, 1, 0, 0, g[0], false), 0);
    ck_assert_int_eq(last(f)->type, PS_MSG_ACK);
    ck_assert_uint_eq(last(f)->flags, PS_ACK_DUPLICATE);
    ck_assert_uint_eq(last(f)->chunk, 0);
    for (int c = 1; c < NC; c++)
        ck_assert_int_eq(push(f, "a", a, 1, 0, c, g[0], false), 0);
    for (int c = 0; c < NC; c++)
        ck_assert_int_eq(push(f, "b", b, 1, 0, c, g[1], false), 0);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    /* a chunk late after its round closed: its seq is applied, a duplicate */
    ck_assert_int_eq(push(f, "b", b, 1, 0, 2, g[1], false), 0);
    ck_assert_uint_eq(last(f)->flags, PS_ACK_DUPLICATE);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.duplicates, 2);
    ck_assert_uint_eq(st.pushes, 2);
    float want[P];
    theta_whole(0, 1, want);
    ck_assert_mem_eq(ps_engine_theta(f->e), want, sizeof want);
    /* a chunk that is not one of the shard's is refused, and changes nothing */
    ps_msg m;
    ps_msg_init(&m, PS_MSG_PUSH);
    m.worker_id = a;
    m.seq = 2;
    m.clock = 1;
    m.flags = PS_FLAG_CHUNK;
    m.chunk = 1;
    m.chunks = NC;
    m.key_lo = 0;
    m.key_hi = CK;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = CK * sizeof(float);
    m.payload = g[0];
    ck_assert_int_eq(handle(f, "a", &m), PS_ERANGE);
    ck_assert_mem_eq(ps_engine_theta(f->e), want, sizeof want);
    fx_free(f);
}
END_TEST

START_TEST(a_rank_that_leaves_mid_push_counts_as_zeros_for_its_other_chunks)
{
    fx *f = fx_new(2, 1);
    uint32_t a = hello(f, 0, "a"), b = hello(f, 1, "b");
    float g[2][P];
    grads(g, 0);
    ck_assert_int_eq(push(f, "a", a, 1, 0, 0, g[0], false), 0);
    for (int c = 0; c < NC; c++)
        ck_assert_int_eq(push(f, "b", b, 1, 0, c, g[1], c == 0), 0);
    ck_assert_uint_eq(ps_engine_version(f->e), 0); /* chunk 0 applied, 1 and 2 wait for a */
    ck_assert(!ps_engine_whole(f->e));
    /* a pull of version 0 now waits: θ is part applied */
    size_t from = f->n;
    ps_msg m;
    ps_msg_init(&m, PS_MSG_PULL);
    m.worker_id = b;
    m.seq = 9;
    m.key_lo = 0;
    m.key_hi = P;
    ck_assert_int_eq(handle(f, "b", &m), 0);
    ck_assert_uint_eq(f->n, from);
    ps_msg_init(&m, PS_MSG_BYE);
    m.worker_id = a;
    m.seq = 2;
    ck_assert_int_eq(handle(f, "a", &m), 0);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    ck_assert(ps_engine_whole(f->e));
    /* the waiting pull got the whole θ of version 1 */
    bool whole = false;
    for (size_t i = from; i < f->n; i++)
        if (f->r[i].msg.type == PS_MSG_PULL_REPLY && f->r[i].msg.seq == 9 &&
            !(f->r[i].msg.flags & PS_FLAG_CHUNK) && f->r[i].msg.model_version == 1)
            whole = true;
    ck_assert(whole);
    /* as a whole-θ round where a's gradient is zero past chunk 0 */
    fx *w = fx_new(2, 0);
    uint32_t wa = hello(w, 0, "a"), wb = hello(w, 1, "b");
    float ga[P];
    memcpy(ga, g[0], sizeof ga);
    memset(ga + CK, 0, (P - CK) * sizeof(float));
    ck_assert_int_eq(push(w, "a", wa, 1, 0, -1, ga, false), 0);
    ck_assert_int_eq(push(w, "b", wb, 1, 0, -1, g[1], false), 0);
    ck_assert_mem_eq(ps_engine_theta(f->e), ps_engine_theta(w->e), P * sizeof(float));
    fx_free(w);
    fx_free(f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine_chunks");
    TCase *tc = tcase_create("chunks");
    tcase_add_test(tc, welcome_says_the_chunks_and_small_shards_take_the_whole_path);
    tcase_add_test(tc, each_chunk_is_applied_once_every_push_holds_it);
    tcase_add_test(tc, whole_pushes_into_a_chunked_shard_give_the_same_theta);
    tcase_add_test(tc, a_round_begun_whole_goes_on_by_chunks);
    tcase_add_test(tc, a_rank_taken_over_mid_round_does_not_reopen_it);
    tcase_add_test(tc, a_chunk_sent_again_is_a_duplicate);
    tcase_add_test(tc, a_rank_that_leaves_mid_push_counts_as_zeros_for_its_other_chunks);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
