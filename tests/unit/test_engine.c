/* test_engine.c — the protocol state machine of one shard, driven without
 * sockets: requests go in as ps_msg, replies are captured from the send
 * callback. Covers registration, parked pulls, sync rounds, async updates,
 * deduplication, and every refusal (with its code, sentence, counter, and
 * θ left unchanged). */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "compress.h"
#include "engine.h"
#include "job.h"
#include "store.h"
#include "util.h"

#define MAX_REPLIES 64
#define MAX_FLOATS  16
#define P           4 /* logistic, 3 features: w [3] (keys 0..2), b [1] (key 3) */

/* A copy of each string field of a reply (cap bytes, as the codec's limit). */
#define CAPTURED_STR(name, cap) char name[cap];
#define CAPTURED_NUM(ctype, name)
#define CAPTURED_ENUM(ctype, name, ptype)
typedef struct captured_strs {
    PS_MSG_FIELDS(CAPTURED_NUM, CAPTURED_ENUM, CAPTURED_STR)
} captured_strs;

/* One reply, copied: its strings point into strs, its layout (a
 * WELCOME's) at layout, since the engine's own are only valid during the
 * send. */
typedef struct captured {
    ps_msg msg;
    captured_strs strs;
    ps_layout layout;
    float payload[MAX_FLOATS];
    size_t nfloats;
    char to[32];              /* the identity it was sent to */
    ps_worker_status rows[4]; /* a STATUS_REPLY's worker table */
    size_t nrows;
} captured;

typedef struct fx {
    ps_job job;
    ps_log log;
    ps_engine *e;
    captured replies[MAX_REPLIES];
    size_t n;
} fx;

static void job_logistic(ps_job *job, ps_mode mode, uint32_t workers)
{
    memset(job, 0, sizeof *job);
    strcpy(job->name, "test-job");
    job->mode = mode;
    job->workers = workers;
    job->nservers = 1;
    strcpy(job->servers[0], "tcp://127.0.0.1:7070");
    job->model.type = PS_MODEL_LOGISTIC;
    job->model.features = 3;
    job->model.init_scheme = PS_INIT_ZEROS;
    job->model.init_seed = 1;
    job->optimizer.type = PS_OPTIM_SGD;
    job->optimizer.lr = 0.5;
    job->optimizer.schedule = PS_SCHEDULE_CONSTANT;
    job->log_level = PS_LOG_ERROR;
}

/* adam with lr 0.1 and the usual β1, β2 and ε */
static void job_adam(ps_job *job)
{
    job->optimizer.type = PS_OPTIM_ADAM;
    job->optimizer.lr = 0.1;
    job->optimizer.beta1 = 0.9;
    job->optimizer.beta2 = 0.999;
    job->optimizer.eps = 1e-8;
}

#define COPY_STR(name, cap)                                                                        \
    if (reply->name != NULL) {                                                                     \
        ck_assert_uint_lt(strlen(reply->name), cap);                                               \
        strcpy(c->strs.name, reply->name);                                                         \
        c->msg.name = c->strs.name;                                                                \
    }
#define COPY_NUM(ctype, name)
#define COPY_ENUM(ctype, name, ptype)

/* The engine's send: keeps a copy of the reply, checked to encode. */
static int capture_send(void *ctx, const void *identity, size_t identity_len, ps_msg *reply,
                        const void *payload)
{
    fx *f = ctx;
    ck_assert_uint_lt(f->n, MAX_REPLIES);
    static unsigned char hdr[PS_HEADER_MAX_BYTES];
    size_t hdr_len = 0;
    ck_assert_int_eq(ps_codec_encode(reply, hdr, sizeof hdr, &hdr_len), 0);
    captured *c = &f->replies[f->n++];
    c->msg = *reply;
    c->msg.payload = NULL;
    PS_MSG_FIELDS(COPY_NUM, COPY_ENUM, COPY_STR)
    if (reply->layout != NULL) {
        c->layout = *reply->layout;
        c->msg.layout = &c->layout;
    }
    size_t len = identity_len < sizeof c->to - 1 ? identity_len : sizeof c->to - 1;
    memcpy(c->to, identity, len);
    c->to[len] = '\0';
    c->nrows = 0;
    if (reply->encoding == PS_ENC_WORKERS) {
        ps_error err;
        ck_assert_int_eq(ps_codec_workers_decode(payload, (size_t)reply->payload_bytes, c->rows, 4,
                                                 &c->nrows, &err),
                         0);
        c->nfloats = 0;
        return 0;
    }
    c->nfloats = (size_t)reply->payload_bytes / sizeof(float);
    ck_assert_uint_le(c->nfloats, MAX_FLOATS);
    ck_assert(c->nfloats == 0 || payload != NULL);
    if (c->nfloats > 0)
        memcpy(c->payload, payload, c->nfloats * sizeof(float));
    return 0;
}

static fx *fx_new(const ps_job *job, uint32_t shard)
{
    fx *f = calloc(1, sizeof *f);
    ck_assert_ptr_nonnull(f);
    f->job = *job;
    f->log.level = PS_LOG_ERROR;
    f->log.prog = "test_engine";
    ps_error err;
    f->e = ps_engine_new(&f->job, shard, &f->log, &err);
    ck_assert_msg(f->e != NULL, "engine: %s", err.msg);
    return f;
}

static void fx_free(fx **fp)
{
    ps_engine_destroy(&(*fp)->e);
    ck_assert_ptr_null((*fp)->e);
    free(*fp);
    *fp = NULL;
}

static const ps_msg *last(const fx *f)
{
    ck_assert_uint_gt(f->n, 0);
    return &f->replies[f->n - 1].msg;
}

static void request_init(ps_msg *m, ps_msg_type type, uint32_t worker_id, uint64_t seq)
{
    ps_msg_init(m, type);
    m->job = "test-job";
    m->worker_id = worker_id;
    m->seq = seq;
}

static int handle(fx *f, const char *who, const ps_msg *m)
{
    return ps_engine_handle(f->e, who, strlen(who), 0, m, NULL, capture_send, f);
}

/* Registers a worker as `rank` (-1: any) and returns its worker id. */
static uint32_t hello(fx *f, int rank, const char *who)
{
    static ps_msg m;
    request_init(&m, PS_MSG_HELLO, 0, 1);
    m.rank = rank;
    ck_assert_int_eq(handle(f, who, &m), 0);
    ck_assert_int_eq(last(f)->type, PS_MSG_WELCOME);
    ck_assert_str_eq(f->replies[f->n - 1].to, who);
    return last(f)->worker_id;
}

static int push(fx *f, const char *who, uint32_t worker_id, uint64_t seq, uint64_t clock,
                uint32_t samples, uint64_t key_lo, uint64_t key_hi, const float *g)
{
    static ps_msg m;
    request_init(&m, PS_MSG_PUSH, worker_id, seq);
    m.clock = clock;
    m.samples = samples;
    m.key_lo = key_lo;
    m.key_hi = key_hi;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = (key_hi - key_lo) * sizeof(float);
    m.payload = g;
    return handle(f, who, &m);
}

static int push_all(fx *f, const char *who, uint32_t worker_id, uint64_t seq, uint64_t clock,
                    uint32_t samples, const float *g)
{
    return push(f, who, worker_id, seq, clock, samples, 0, P, g);
}

static int pull(fx *f, const char *who, uint32_t worker_id, uint64_t seq, uint64_t min_version,
                uint64_t key_lo, uint64_t key_hi)
{
    static ps_msg m;
    request_init(&m, PS_MSG_PULL, worker_id, seq);
    m.min_version = min_version;
    m.key_lo = key_lo;
    m.key_hi = key_hi;
    return handle(f, who, &m);
}

static int simple(fx *f, const char *who, ps_msg_type type, uint32_t worker_id, uint64_t seq)
{
    static ps_msg m;
    request_init(&m, type, worker_id, seq);
    return handle(f, who, &m);
}

static void assert_ack(const fx *f, uint64_t seq, uint64_t version, uint32_t flags)
{
    const ps_msg *r = last(f);
    ck_assert_int_eq(r->type, PS_MSG_ACK);
    ck_assert_uint_eq(r->seq, seq);
    ck_assert_uint_eq(r->model_version, version);
    ck_assert_uint_eq(r->flags, flags);
}

static void assert_error(const fx *f, uint64_t seq, int code, const char *text)
{
    const ps_msg *r = last(f);
    ck_assert_int_eq(r->type, PS_MSG_ERROR);
    ck_assert_uint_eq(r->seq, seq);
    ck_assert_int_eq(r->status, code);
    ck_assert_str_eq(r->error, text);
}

static void assert_theta(const fx *f, const float *want)
{
    const float *t = ps_engine_theta(f->e);
    for (size_t i = 0; i < ps_engine_key_hi(f->e) - ps_engine_key_lo(f->e); i++)
        ck_assert_msg(t[i] == want[i], "theta[%zu] = %g, want %g", i, (double)t[i],
                      (double)want[i]);
}

static const float zeros[P] = {0};

/* ---- sync rounds ------------------------------------------------------ */

START_TEST(pull_is_parked_until_round_closes)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    ck_assert_uint_ne(a, b);
    float ga[P] = {1, 2, -1, 4}, gb[P] = {3, 0, 1, -2};
    ck_assert_int_eq(push_all(f, "wa", a, 1, 0, 1, ga), 0);
    assert_ack(f, 1, 0, 0);
    size_t before = f->n;
    ck_assert_int_eq(pull(f, "wa", a, 2, 1, 0, P), 0);
    ck_assert_uint_eq(f->n, before); /* parked: no reply yet */
    ck_assert_int_eq(push_all(f, "wb", b, 1, 0, 1, gb), 0);
    /* the ACK, then exactly one PULL_REPLY to wa */
    ck_assert_uint_eq(f->n, before + 2);
    ck_assert_int_eq(f->replies[before].msg.type, PS_MSG_ACK);
    ck_assert_uint_eq(f->replies[before].msg.model_version, 1);
    ck_assert_str_eq(f->replies[before].to, "wb");
    const captured *c = &f->replies[before + 1];
    ck_assert_int_eq(c->msg.type, PS_MSG_PULL_REPLY);
    ck_assert_str_eq(c->to, "wa");
    ck_assert_uint_eq(c->msg.seq, 2);
    ck_assert_uint_eq(c->msg.model_version, 1);
    ck_assert_uint_eq(c->msg.key_lo, 0);
    ck_assert_uint_eq(c->msg.key_hi, P);
    ck_assert_int_eq(c->msg.encoding, PS_ENC_F32);
    ck_assert_uint_eq(c->msg.payload_bytes, P * sizeof(float));
    /* θ = 0 - 0.5 · (ga + gb) / 2 */
    float want[P] = {-1.0f, -0.5f, 0.0f, -0.5f};
    ck_assert_uint_eq(c->nfloats, P);
    for (size_t i = 0; i < P; i++)
        ck_assert_float_eq(c->payload[i], want[i]);
    assert_theta(f, want);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    fx_free(&f);
}
END_TEST

START_TEST(sync_mean_is_weighted_by_samples)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, -1, "wa"), b = hello(f, -1, "wb");
    float ga[P] = {1, 2, 0, 4}, gb[P] = {3, -2, 4, 0};
    ck_assert_int_eq(push_all(f, "wa", a, 1, 0, 1, ga), 0);
    ck_assert_int_eq(push_all(f, "wb", b, 1, 0, 3, gb), 0);
    assert_ack(f, 1, 1, 0);
    /* mean = (1·ga + 3·gb) / 4 = {2.5, -1, 3, 1}; θ = -0.5 · mean */
    float want[P] = {-1.25f, 0.5f, -1.5f, -0.5f};
    assert_theta(f, want);
    fx_free(&f);
}
END_TEST

START_TEST(retried_push_is_applied_once)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 1);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa");
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_all(f, "wa", a, 7, 0, 1, g), 0);
    assert_ack(f, 7, 1, 0);
    float want[P] = {-1, -1, -1, -1};
    assert_theta(f, want);
    ck_assert_int_eq(push_all(f, "wa", a, 7, 0, 1, g), 0);
    assert_ack(f, 7, 1, PS_ACK_DUPLICATE);
    assert_theta(f, want);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.pushes, 1);
    ck_assert_uint_eq(st.duplicates, 1);
    fx_free(&f);
}
END_TEST

START_TEST(stale_clock_push_is_dropped)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 1);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa");
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_all(f, "wa", a, 1, 0, 1, g), 0);
    ck_assert_int_eq(push_all(f, "wa", a, 2, 0, 1, g), 0); /* round 0 is closed */
    assert_ack(f, 2, 1, PS_ACK_DROPPED);
    float want[P] = {-1, -1, -1, -1};
    assert_theta(f, want);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    fx_free(&f);
}
END_TEST

START_TEST(clock_ahead_of_open_round_is_refused)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa");
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_all(f, "wa", a, 1, 3, 1, g), PS_ECLOCK);
    assert_error(f, 1, PS_ECLOCK,
                 "push for round 3, but round 0 is open (this shard runs mode sync: is the "
                 "worker's job file of another mode?)");
    ck_assert_int_eq(push_all(f, "wa", a, 2, 0, 1, g), 0);
    ck_assert_int_eq(push_all(f, "wa", a, 3, 0, 1, g), PS_ECLOCK);
    assert_error(f, 3, PS_ECLOCK, "rank 0 already pushed round 0");
    ck_assert_uint_eq(ps_engine_errors(f->e, PS_ECLOCK), 2);
    assert_theta(f, zeros);
    ck_assert_uint_eq(ps_engine_version(f->e), 0);
    fx_free(&f);
}
END_TEST

START_TEST(bye_of_last_missing_worker_closes_round)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 3);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb"), c = hello(f, 2, "wc");
    float ga[P] = {2, 0, 0, 0}, gb[P] = {0, 2, 0, 0};
    ck_assert_int_eq(push_all(f, "wa", a, 1, 0, 1, ga), 0);
    ck_assert_int_eq(pull(f, "wa", a, 2, 1, 0, P), 0);
    ck_assert_int_eq(push_all(f, "wb", b, 1, 0, 1, gb), 0);
    assert_ack(f, 1, 0, 0);
    ck_assert_uint_eq(ps_engine_version(f->e), 0);
    size_t before = f->n;
    ck_assert_int_eq(simple(f, "wc", PS_MSG_BYE, c, 1), 0);
    ck_assert_uint_eq(f->n, before + 2);
    ck_assert_int_eq(f->replies[before].msg.type, PS_MSG_ACK);
    ck_assert_uint_eq(f->replies[before].msg.model_version, 1);
    ck_assert_int_eq(f->replies[before + 1].msg.type, PS_MSG_PULL_REPLY);
    ck_assert_str_eq(f->replies[before + 1].to, "wa");
    float want[P] = {-0.5f, -0.5f, 0, 0};
    assert_theta(f, want);
    /* the next round needs only the two that stayed */
    ck_assert_int_eq(push_all(f, "wa", a, 3, 1, 1, ga), 0);
    ck_assert_int_eq(push_all(f, "wb", b, 2, 1, 1, gb), 0);
    ck_assert_uint_eq(ps_engine_version(f->e), 2);
    /* its id is gone */
    ck_assert_int_eq(simple(f, "wc", PS_MSG_HEARTBEAT, c, 2), PS_EWORKER);
    fx_free(&f);
}
END_TEST

START_TEST(round_waits_for_a_worker_that_has_not_registered_yet)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, -1, "wa");
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_all(f, "wa", a, 1, 0, 1, g), 0);
    ck_assert_uint_eq(ps_engine_version(f->e), 0);
    uint32_t b = hello(f, -1, "wb");
    ck_assert_int_eq(last(f)->rank, 1);
    ck_assert_int_eq(push_all(f, "wb", b, 1, 0, 1, g), 0);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    fx_free(&f);
}
END_TEST

START_TEST(parked_pull_is_answered_when_all_workers_left)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    ck_assert_int_eq(pull(f, "wa", a, 5, 3, 0, P), 0);
    ck_assert_int_eq(simple(f, "wa", PS_MSG_BYE, a, 6), 0);
    assert_ack(f, 6, 0, 0); /* b could still advance it */
    size_t before = f->n;
    ck_assert_int_eq(simple(f, "wb", PS_MSG_BYE, b, 1), 0);
    ck_assert_uint_eq(f->n, before + 2);
    ck_assert_int_eq(f->replies[before + 1].msg.type, PS_MSG_PULL_REPLY);
    ck_assert_uint_eq(f->replies[before + 1].msg.seq, 5);
    ck_assert_uint_eq(f->replies[before + 1].msg.model_version, 0);
    ck_assert_str_eq(f->replies[before + 1].to, "wa");
    /* with nobody left a new pull is answered at once */
    uint32_t c = hello(f, 0, "wc");
    ck_assert_int_eq(simple(f, "wc", PS_MSG_BYE, c, 1), 0);
    fx_free(&f);
}
END_TEST

START_TEST(backup_worker_round_closes_without_the_slowest)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 3);
    job.backup_workers = 1;
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb"), c = hello(f, 2, "wc");
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_all(f, "wa", a, 1, 0, 1, g), 0);
    ck_assert_int_eq(push_all(f, "wb", b, 1, 0, 1, g), 0);
    assert_ack(f, 1, 1, 0);
    ck_assert_int_eq(push_all(f, "wc", c, 1, 0, 1, g), 0);
    assert_ack(f, 1, 1, PS_ACK_DROPPED);
    float want[P] = {-1, -1, -1, -1};
    assert_theta(f, want);
    fx_free(&f);
}
END_TEST

START_TEST(deterministic_sum_does_not_depend_on_push_order)
{
    static ps_job job;
    float g[3][P] = {{1e8f, 0, 0, 0}, {1, 0, 0, 0}, {-1e8f, 0, 0, 0}};
    float got[2][2];
    for (int det = 0; det < 2; det++) {
        for (int order = 0; order < 2; order++) {
            job_logistic(&job, PS_MODE_SYNC, 3);
            job.deterministic = det;
            job.optimizer.lr = 1;
            fx *f = fx_new(&job, 0);
            uint32_t id[3];
            for (int r = 0; r < 3; r++)
                id[r] = hello(f, r, "w");
            int seq[2][3] = {{0, 1, 2}, {0, 2, 1}};
            for (int i = 0; i < 3; i++) {
                int r = seq[order][i];
                ck_assert_int_eq(push_all(f, "w", id[r], 1, 0, 1, g[r]), 0);
            }
            ck_assert_uint_eq(ps_engine_version(f->e), 1);
            got[det][order] = ps_engine_theta(f->e)[0];
            fx_free(&f);
        }
    }
    /* arrival order changes a float sum; rank order does not */
    ck_assert_float_ne(got[0][0], got[0][1]);
    ck_assert_float_eq(got[1][0], got[1][1]);
    ck_assert_float_eq(got[1][0], got[0][0]);
}
END_TEST

/* θ after rounds of one gradient each, the way rounds were applied before
 * the one-pass path: accumulated with its weight, then the accumulator
 * applied with scale 1 / samples. */
static void rounds_by_accumulator(const ps_job *job, float g[][P], int rounds, float samples,
                                  float *out)
{
    ps_store *ref = ps_store_new(job, 0, P, true, NULL);
    ck_assert_ptr_nonnull(ref);
    for (int r = 0; r < rounds; r++) {
        ck_assert_int_eq(ps_store_accumulate(ref, g[r], samples), 0);
        ck_assert_int_eq(ps_store_apply_accumulated(ref, (float)(1.0 / samples)), 0);
    }
    memcpy(out, ps_store_data(ref), P * sizeof(float));
    ps_store_destroy(&ref);
}

START_TEST(single_push_round_matches_the_accumulated_round)
{
    /* a round closed by its only push is applied straight from the payload;
     * θ is the accumulator path's within float rounding: one worker, and
     * three workers of which two are backups (the first push closes) */
    float g[3][P] = {{1, -2, 0.5f, 4}, {0.25f, 3, -1, 2}, {-0.5f, 1, 2, -3}};
    for (int backups = 0; backups < 2; backups++) {
        static ps_job job;
        job_logistic(&job, PS_MODE_SYNC, backups ? 3 : 1);
        job.backup_workers = backups ? 2 : 0;
        job_adam(&job);
        fx *f = fx_new(&job, 0);
        uint32_t id = hello(f, 0, "wa");
        for (uint64_t r = 0; r < 3; r++) {
            ck_assert_int_eq(push_all(f, "wa", id, r + 1, r, 3, g[r]), 0);
            assert_ack(f, r + 1, r + 1, 0);
        }
        float want[P];
        rounds_by_accumulator(&job, g, 3, 3.0f, want);
        for (size_t i = 0; i < P; i++) {
            float got = ps_engine_theta(f->e)[i];
            ck_assert_msg(fabsf(got - want[i]) <= 1e-6f * fabsf(want[i]),
                          "backups %d: theta[%zu] = %.9g, the accumulator gives %.9g", backups, i,
                          (double)got, (double)want[i]);
            ck_assert_float_ne(got, 0.0f);
        }
        fx_free(&f);
    }
}
END_TEST

/* ---- async ------------------------------------------------------------ */

START_TEST(async_push_is_applied_at_once)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    float g[P] = {2, 4, 6, 8};
    ck_assert_int_eq(push_all(f, "wa", a, 1, 0, 10, g), 0);
    assert_ack(f, 1, 1, 0);
    float want1[P] = {-1, -2, -3, -4};
    assert_theta(f, want1);
    /* any subrange inside the shard */
    float h[2] = {2, 2};
    ck_assert_int_eq(push(f, "wb", b, 1, 0, 1, 1, 3, h), 0);
    assert_ack(f, 1, 2, 0);
    float want2[P] = {-1, -3, -4, -4};
    assert_theta(f, want2);
    ck_assert_int_eq(pull(f, "wb", b, 2, 2, 1, 3), 0);
    ck_assert_int_eq(last(f)->type, PS_MSG_PULL_REPLY);
    ck_assert_uint_eq(last(f)->model_version, 2);
    ck_assert_uint_eq(f->replies[f->n - 1].nfloats, 2);
    ck_assert_float_eq(f->replies[f->n - 1].payload[0], -3.0f);
    ck_assert_float_eq(f->replies[f->n - 1].payload[1], -4.0f);
    fx_free(&f);
}
END_TEST

START_TEST(adam_job_pushes_follow_the_adam_rule)
{
    /* async adam, lr 0.1, β1 0.9, β2 0.999, eps 1e-8, θ from 0; push g1
     * then g2. Push 1 (t = 1): θ = -0.1 · sign(g1). Push 2 (t = 2), per key
     * m = 0.09·g1 + 0.1·g2, v = 0.000999·g1² + 0.001·g2²,
     * θ -= 0.1 · (m / 0.19) / (√(v / 0.001999) + eps):
     * key 0: g 1, 0.5:  m = 0.14,  v = 0.001249
     * key 1: g -2, 1:   m = -0.08, v = 0.004996
     * key 2: g 0.5, 0.5: m = 0.095, v = 0.00049975 (m̂ = 0.5, v̂ = 0.25: θ = -0.2)
     * key 3: g 4, -1:   m = 0.26,  v = 0.016984 */
    static ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 1);
    job_adam(&job);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa");
    float g1[P] = {1, -2, 0.5f, 4}, g2[P] = {0.5f, 1, 0.5f, -1};
    ck_assert_int_eq(push_all(f, "wa", a, 1, 0, 1, g1), 0);
    assert_ack(f, 1, 1, 0);
    float want1[P] = {-0.1f, 0.1f, -0.1f, -0.1f};
    for (size_t i = 0; i < P; i++)
        ck_assert_float_eq_tol(ps_engine_theta(f->e)[i], want1[i], 1e-6);
    ck_assert_int_eq(push_all(f, "wa", a, 2, 1, 1, g2), 0);
    assert_ack(f, 2, 2, 0);
    const double m[P] = {0.14, -0.08, 0.095, 0.26},
                 v[P] = {0.001249, 0.004996, 0.00049975, 0.016984};
    for (size_t i = 0; i < P; i++) {
        double want = want1[i] - 0.1 * (m[i] / 0.19) / (sqrt(v[i] / 0.001999) + 1e-8);
        ck_assert_float_eq_tol(ps_engine_theta(f->e)[i], want, 1e-6);
    }
    ck_assert_float_eq_tol(ps_engine_theta(f->e)[2], -0.2, 1e-6);
    fx_free(&f);
}
END_TEST

START_TEST(async_parked_pull_is_answered_by_the_next_push)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    ck_assert_int_eq(pull(f, "wa", a, 1, 1, 0, P), 0);
    ck_assert_int_eq(last(f)->type, PS_MSG_WELCOME);
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_all(f, "wb", b, 1, 0, 1, g), 0);
    ck_assert_int_eq(last(f)->type, PS_MSG_PULL_REPLY);
    ck_assert_str_eq(f->replies[f->n - 1].to, "wa");
    ck_assert_uint_eq(last(f)->model_version, 1);
    fx_free(&f);
}
END_TEST

/* ---- registration ----------------------------------------------------- */

START_TEST(welcome_describes_the_shard_map_and_layout)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    job.nservers = 2;
    strcpy(job.servers[1], "tcp://127.0.0.1:7071");
    fx *f = fx_new(&job, 1);
    ck_assert_uint_eq(ps_engine_key_lo(f->e), 2);
    ck_assert_uint_eq(ps_engine_key_hi(f->e), 4);
    hello(f, 1, "wb");
    const ps_msg *w = last(f);
    ck_assert_uint_eq(w->seq, 1);
    ck_assert_int_eq(w->rank, 1);
    ck_assert_uint_eq(w->num_workers, 2);
    ck_assert_uint_eq(w->num_params, 4);
    ck_assert_uint_eq(w->shard_index, 1);
    ck_assert_str_eq(w->mode, "sync");
    ck_assert_uint_eq(w->model_version, 0);
    const ps_layout *l = w->layout;
    ck_assert_ptr_nonnull(l);
    ck_assert_uint_eq(l->nshards, 2);
    ck_assert_str_eq(l->shards[0].endpoint, "tcp://127.0.0.1:7070");
    ck_assert_uint_eq(l->shards[0].key_lo, 0);
    ck_assert_uint_eq(l->shards[0].key_hi, 2);
    ck_assert_str_eq(l->shards[1].endpoint, "tcp://127.0.0.1:7071");
    ck_assert_uint_eq(l->shards[1].key_lo, 2);
    ck_assert_uint_eq(l->shards[1].key_hi, 4);
    ck_assert_uint_eq(l->ntensors, 2);
    ck_assert_str_eq(l->tensors[0].name, "w");
    ck_assert_uint_eq(l->tensors[0].shape[0], 3);
    ck_assert_str_eq(l->tensors[1].name, "b");
    ck_assert_uint_eq(l->tensors[1].offset, 3);
    fx_free(&f);
}
END_TEST

/* A job of PS_MAX_SHARDS (256) shards: the last shard's WELCOME lists
 * every shard, their key ranges split θ's 1000 keys end to end, none
 * empty; a push and a pull of the last shard's range work; one shard more
 * is refused. */
START_TEST(most_shards_split_the_keys_end_to_end)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 2);
    job.model.features = 999; /* 1000 params */
    job.nservers = PS_MAX_SHARDS;
    for (uint32_t i = 0; i < PS_MAX_SHARDS; i++)
        snprintf(job.servers[i], sizeof job.servers[i], "tcp://127.0.0.1:%u", 20000 + i);
    fx *f = fx_new(&job, PS_MAX_SHARDS - 1);
    uint64_t lo = ps_engine_key_lo(f->e), hi = ps_engine_key_hi(f->e);
    ck_assert_uint_eq(hi, 1000);
    ck_assert_uint_lt(lo, hi);
    uint32_t id = hello(f, 1, "w1");
    const ps_layout *l = last(f)->layout;
    ck_assert_ptr_nonnull(l);
    ck_assert_uint_eq(l->nshards, PS_MAX_SHARDS);
    uint64_t next = 0;
    for (uint32_t i = 0; i < PS_MAX_SHARDS; i++) {
        char ep[PS_ENDPOINT_MAX];
        snprintf(ep, sizeof ep, "tcp://127.0.0.1:%u", 20000 + i);
        ck_assert_str_eq(l->shards[i].endpoint, ep);
        ck_assert_uint_eq(l->shards[i].key_lo, next);
        ck_assert_uint_gt(l->shards[i].key_hi, l->shards[i].key_lo);
        next = l->shards[i].key_hi;
    }
    ck_assert_uint_eq(next, 1000);
    ck_assert_uint_eq(l->shards[PS_MAX_SHARDS - 1].key_lo, lo);
    static float g[MAX_FLOATS];
    for (size_t k = 0; k < MAX_FLOATS; k++)
        g[k] = 1.0f;
    ck_assert_uint_le(hi - lo, MAX_FLOATS);
    ck_assert_int_eq(push(f, "w1", id, 2, 0, 1, lo, hi, g), 0);
    ck_assert_int_eq(pull(f, "w1", id, 3, 1, lo, hi), 0);
    ck_assert_int_eq(last(f)->type, PS_MSG_PULL_REPLY);
    ck_assert_uint_eq(last(f)->model_version, 1);
    ck_assert_uint_eq(f->replies[f->n - 1].nfloats, hi - lo);
    ck_assert_float_eq(f->replies[f->n - 1].payload[0], -0.5f);
    fx_free(&f);
    ps_error err;
    job.nservers = PS_MAX_SHARDS + 1;
    ck_assert_ptr_null(ps_engine_new(&job, 0, NULL, &err));
    ck_assert_str_eq(err.msg, "shard 0 is out of range (the job has 257 servers)");
}
END_TEST

START_TEST(rank_taken_is_refused_with_estate)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa");
    static ps_msg m;
    request_init(&m, PS_MSG_HELLO, 0, 9);
    m.rank = 0;
    ck_assert_int_eq(handle(f, "wx", &m), PS_ESTATE);
    assert_error(f, 9, PS_ESTATE, "rank 0 is taken by a live worker");
    m.rank = 2;
    ck_assert_int_eq(handle(f, "wx", &m), PS_EINVAL);
    assert_error(f, 9, PS_EINVAL, "rank 2 is out of range (the job has 2 workers)");
    /* after BYE the rank is free again, under a new worker id */
    ck_assert_int_eq(simple(f, "wa", PS_MSG_BYE, a, 1), 0);
    uint32_t a2 = hello(f, 0, "wa");
    ck_assert_uint_ne(a2, a);
    ck_assert_int_eq(simple(f, "wa", PS_MSG_HEARTBEAT, a, 2), PS_EWORKER);
    ck_assert_int_eq(simple(f, "wa", PS_MSG_HEARTBEAT, a2, 2), 0);
    assert_ack(f, 2, 0, 0);
    ck_assert_uint_eq(ps_engine_errors(f->e, PS_ESTATE), 1);
    fx_free(&f);
}
END_TEST

START_TEST(retried_hello_gets_the_same_welcome)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, -1, "wa");
    uint32_t again = hello(f, -1, "wa"); /* same peer, same seq: a retry */
    ck_assert_uint_eq(again, a);
    ck_assert_int_eq(last(f)->rank, 0);
    hello(f, -1, "wb");
    ck_assert_int_eq(last(f)->rank, 1);
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.live_workers, 2);
    fx_free(&f);
}
END_TEST

START_TEST(too_many_workers_are_refused_with_efull)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    fx *f = fx_new(&job, 0);
    hello(f, -1, "wa");
    hello(f, -1, "wb");
    static ps_msg m;
    request_init(&m, PS_MSG_HELLO, 0, 4);
    m.rank = -1;
    ck_assert_int_eq(handle(f, "wc", &m), PS_EFULL);
    assert_error(f, 4, PS_EFULL, "all 2 ranks of job \"test-job\" are taken");
    ck_assert_uint_eq(ps_engine_errors(f->e, PS_EFULL), 1);
    fx_free(&f);
}
END_TEST

START_TEST(status_reports_version_and_live_workers)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 3);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, -1, "wa");
    hello(f, -1, "wb");
    float g[P] = {0};
    push_all(f, "wa", a, 1, 0, 1, g);
    ck_assert_int_eq(simple(f, "admin", PS_MSG_STATUS, 0, 3), 0);
    const ps_msg *r = last(f);
    ck_assert_int_eq(r->type, PS_MSG_STATUS_REPLY);
    ck_assert_uint_eq(r->seq, 3);
    ck_assert_uint_eq(r->model_version, 1);
    ck_assert_uint_eq(r->num_workers, 2);
    ck_assert_str_eq(r->mode, "async");
    fx_free(&f);
}
END_TEST

/* ---- refusals --------------------------------------------------------- */

START_TEST(wrong_job_is_refused_with_ejob)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 1);
    fx *f = fx_new(&job, 0);
    static ps_msg m;
    request_init(&m, PS_MSG_HELLO, 0, 3);
    m.job = "x";
    ck_assert_int_eq(handle(f, "wx", &m), PS_EJOB);
    assert_error(f, 3, PS_EJOB, "job \"x\" is not this server's job \"test-job\"");
    ck_assert_uint_eq(ps_engine_errors(f->e, PS_EJOB), 1);
    fx_free(&f);
}
END_TEST

START_TEST(other_protocol_version_is_refused_with_eversion)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 1);
    fx *f = fx_new(&job, 0);
    static ps_msg m;
    request_init(&m, PS_MSG_HELLO, 0, 4);
    m.protocol = 1; /* the protocol before PS_FLAG_PULL and ps_layout */
    ck_assert_int_eq(handle(f, "wx", &m), PS_EVERSION);
    assert_error(f, 4, PS_EVERSION, "protocol version 1 is not this server's 2");
    ck_assert_uint_eq(ps_engine_errors(f->e, PS_EVERSION), 1);
    fx_free(&f);
}
END_TEST

START_TEST(unknown_worker_is_refused_with_eworker)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 1);
    fx *f = fx_new(&job, 0);
    float g[P] = {1, 1, 1, 1};
    ck_assert_int_eq(push_all(f, "wx", 77, 1, 0, 1, g), PS_EWORKER);
    assert_error(f, 1, PS_EWORKER, "worker 77 is not registered with shard 0");
    ck_assert_int_eq(pull(f, "wx", 0, 2, 0, 0, P), PS_EWORKER);
    ck_assert_int_eq(simple(f, "wx", PS_MSG_HEARTBEAT, 1024, 3), PS_EWORKER);
    ck_assert_int_eq(simple(f, "wx", PS_MSG_BYE, 5, 4), PS_EWORKER);
    assert_error(f, 4, PS_EWORKER, "worker 5 is not registered with shard 0");
    ck_assert_uint_eq(ps_engine_errors(f->e, PS_EWORKER), 4);
    assert_theta(f, zeros);
    fx_free(&f);
}
END_TEST

START_TEST(key_range_outside_shard_is_refused_with_erange)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 1);
    job.nservers = 2;
    strcpy(job.servers[1], "tcp://127.0.0.1:7071");
    fx *f = fx_new(&job, 1); /* keys [2, 4) */
    uint32_t a = hello(f, 0, "wa");
    ck_assert_int_eq(pull(f, "wa", a, 1, 0, 1, 3), PS_ERANGE);
    assert_error(f, 1, PS_ERANGE, "keys [1, 3) are outside shard 1 [2, 4)");
    ck_assert_int_eq(pull(f, "wa", a, 2, 0, 2, 5), PS_ERANGE);
    float g[4] = {1, 1, 1, 1};
    ck_assert_int_eq(push(f, "wa", a, 3, 0, 1, 2, 5, g), PS_ERANGE);
    assert_error(f, 3, PS_ERANGE, "keys [2, 5) are outside shard 1 [2, 4)");
    ck_assert_int_eq(push(f, "wa", a, 4, 0, 1, 2, 3, g), PS_ERANGE);
    assert_error(f, 4, PS_ERANGE, "a sync push must cover the whole shard [2, 4), not [2, 3)");
    ck_assert_uint_eq(ps_engine_errors(f->e, PS_ERANGE), 4);
    assert_theta(f, zeros);
    ck_assert_uint_eq(ps_engine_version(f->e), 0);
    /* the worker is still served, and its seq was not consumed */
    ck_assert_int_eq(push(f, "wa", a, 4, 0, 1, 2, 4, g), 0);
    assert_ack(f, 4, 1, 0);
    fx_free(&f);
}
END_TEST

START_TEST(decode_error_is_replied_with_codec_sentence)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 1);
    fx *f = fx_new(&job, 0);
    /* a PUSH whose payload frame is shorter than its header says */
    static ps_msg m, d;
    static ps_codec_arena arena;
    request_init(&m, PS_MSG_PUSH, 1024, 41);
    m.key_lo = 0;
    m.key_hi = P;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = P * sizeof(float);
    unsigned char hdr[512];
    size_t len = 0;
    ck_assert_int_eq(ps_codec_encode(&m, hdr, sizeof hdr, &len), 0);
    float short_payload[2] = {1, 1};
    ps_error err;
    int rc = ps_codec_decode(&arena, hdr, len, short_payload, sizeof short_payload, &d, &err);
    ck_assert_int_eq(rc, PS_EPAYLOAD);
    ck_assert_int_eq(ps_engine_handle(f->e, "wx", 2, rc, &d, &err, capture_send, f), PS_EPAYLOAD);
    assert_error(f, 41, PS_EPAYLOAD, "PUSH header announces 16 payload bytes, the frame has 8");
    ck_assert_uint_eq(last(f)->worker_id, 1024);
    /* a header that is not a protobuf at all */
    rc = ps_codec_decode(&arena, "\xff\xff\xff", 3, NULL, 0, &d, &err);
    ck_assert_int_eq(rc, PS_EPROTO);
    ck_assert_int_eq(ps_engine_handle(f->e, "wx", 2, rc, &d, &err, capture_send, f), PS_EPROTO);
    assert_error(f, 0, PS_EPROTO, "header frame of 3 bytes is not a valid Header");
    ck_assert_uint_eq(ps_engine_errors(f->e, PS_EPAYLOAD), 1);
    ck_assert_uint_eq(ps_engine_errors(f->e, PS_EPROTO), 1);
    assert_theta(f, zeros);
    fx_free(&f);
}
END_TEST

START_TEST(reply_type_sent_as_request_is_refused_with_etype)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 1);
    fx *f = fx_new(&job, 0);
    ck_assert_int_eq(simple(f, "wx", PS_MSG_ACK, 0, 8), PS_ETYPE);
    assert_error(f, 8, PS_ETYPE, "ACK is not a request");
    ck_assert_int_eq(simple(f, "wx", PS_MSG_NONE, 0, 9), PS_ETYPE);
    assert_error(f, 9, PS_ETYPE, "NONE is not a request");
    ck_assert_uint_eq(ps_engine_errors(f->e, PS_ETYPE), 2);
    fx_free(&f);
}
END_TEST

START_TEST(parked_pulls_are_bounded)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa");
    size_t before = f->n;
    for (uint64_t i = 0; i < 16; i++)
        ck_assert_int_eq(pull(f, "wa", a, 10 + i, 1, 0, P), 0);
    ck_assert_uint_eq(f->n, before);
    ck_assert_int_eq(pull(f, "wa", a, 99, 1, 0, P), PS_EFULL);
    assert_error(f, 99, PS_EFULL, "16 pulls are waiting already (limit 16)");
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.parked, 16);
    /* all sixteen are answered once the round closes */
    uint32_t b = hello(f, 1, "wb");
    float g[P] = {0};
    push_all(f, "wa", a, 1, 0, 1, g);
    before = f->n;
    push_all(f, "wb", b, 1, 0, 1, g);
    ck_assert_uint_eq(f->n, before + 17);
    for (size_t i = 0; i < 16; i++) {
        ck_assert_int_eq(f->replies[before + 1 + i].msg.type, PS_MSG_PULL_REPLY);
        ck_assert_uint_eq(f->replies[before + 1 + i].msg.seq, 10 + i);
    }
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.parked, 0);
    fx_free(&f);
}
END_TEST

START_TEST(refused_requests_leave_theta_and_version_unchanged)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 1);
    job.model.init_scheme = PS_INIT_XAVIER;
    fx *f = fx_new(&job, 0);
    float before[P];
    memcpy(before, ps_engine_theta(f->e), sizeof before);
    uint32_t a = hello(f, 0, "wa");
    float g[P] = {1, 1, 1, 1};
    static ps_msg m;
    request_init(&m, PS_MSG_PUSH, a, 1);
    m.key_lo = 0;
    m.key_hi = P;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = sizeof g;
    m.payload = g;
    m.job = "other";
    ck_assert_int_eq(handle(f, "wa", &m), PS_EJOB);
    m.job = "test-job";
    m.protocol = 9;
    ck_assert_int_eq(handle(f, "wa", &m), PS_EVERSION);
    m.protocol = PS_PROTOCOL_VERSION;
    m.worker_id = a + 1;
    ck_assert_int_eq(handle(f, "wa", &m), PS_EWORKER);
    m.worker_id = a;
    m.key_hi = P + 1;
    ck_assert_int_eq(handle(f, "wa", &m), PS_ERANGE);
    m.key_hi = P;
    m.encoding = PS_ENC_NONE;
    m.payload = NULL;
    ck_assert_int_eq(handle(f, "wa", &m), PS_EPAYLOAD);
    char codecs[128], want[160];
    ps_compress_list(codecs, sizeof codecs, PS_COMPRESS_LIST_LABELS);
    snprintf(want, sizeof want, "a PUSH needs a payload in %s", codecs);
    assert_error(f, 1, PS_EPAYLOAD, want);
    assert_theta(f, before);
    ck_assert_uint_eq(ps_engine_version(f->e), 0);
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.errors, 5);
    ck_assert_uint_eq(st.pushes, 0);
    ck_assert_uint_eq(ps_engine_errors(f->e, 0), 0);
    ck_assert_uint_eq(ps_engine_errors(f->e, -1000), 0);
    fx_free(&f);
}
END_TEST

START_TEST(engine_refuses_a_job_it_cannot_serve)
{
    static ps_job job;
    ps_error err;
    job_logistic(&job, PS_MODE_SYNC, 1);
    ck_assert_ptr_null(ps_engine_new(&job, 1, NULL, &err));
    ck_assert_int_eq(err.code, PS_EINVAL);
    ck_assert_str_eq(err.msg, "shard 1 is out of range (the job has 1 servers)");
    job.mode = (ps_mode)7;
    ck_assert_ptr_null(ps_engine_new(&job, 0, NULL, &err));
    ck_assert_int_eq(err.code, PS_EINVAL);
    ck_assert_str_eq(err.msg, "mode 7 is not a consistency mode");
    ps_engine *e = NULL;
    ps_engine_destroy(&e);
}
END_TEST

/* ---- failures --------------------------------------------------------- */

static int heartbeat(fx *f, const char *who, uint32_t worker_id, uint64_t seq, uint32_t flags)
{
    static ps_msg m;
    request_init(&m, PS_MSG_HEARTBEAT, worker_id, seq);
    m.flags = flags;
    return handle(f, who, &m);
}

START_TEST(silent_worker_is_evicted_and_round_closes_without_it)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    job.heartbeat.timeout_ms = 1000;
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa");
    hello(f, 1, "wb");
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_all(f, "wa", a, 1, 0, 1, g), 0);
    ck_assert_int_eq(pull(f, "wa", a, 2, 1, 0, P), 0);
    size_t before = f->n;
    uint64_t now = ps_clock_ms();
    ps_engine_tick(f->e, now + 500, capture_send, f); /* not yet */
    ck_assert_uint_eq(f->n, before);
    ck_assert_uint_eq(ps_engine_version(f->e), 0);
    /* a heartbeat keeps rank 0 alive; rank 1 stays silent */
    usleep(300 * 1000);
    ck_assert_int_eq(heartbeat(f, "wa", a, 3, 0), 0);
    before = f->n;
    ps_engine_tick(f->e, ps_clock_ms() + 800, capture_send, f);
    ck_assert_uint_eq(ps_engine_version(f->e), 1); /* closed with rank 0's push alone */
    ck_assert_uint_eq(f->n, before + 1);           /* the parked pull is answered */
    ck_assert_int_eq(last(f)->type, PS_MSG_PULL_REPLY);
    ck_assert_uint_eq(last(f)->model_version, 1);
    float want[P] = {-1, -1, -1, -1};
    assert_theta(f, want);
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.evictions, 1);
    ck_assert_uint_eq(st.live_workers, 1);
    fx_free(&f);
}
END_TEST

/* A HEARTBEAT with PS_FLAG_QUIET gets no ACK while the worker was sent a
 * reply within half of heartbeat.interval_ms, and one once it was not; one without
 * the flag, or with DONE, is always acknowledged, and an unknown worker's
 * is refused whatever its flags. */
START_TEST(quiet_heartbeat_is_answered_only_when_the_worker_heard_nothing)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 2);
    job.heartbeat.interval_ms = 60000;
    job.heartbeat.timeout_ms = 120000;
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_all(f, "wa", a, 2, 0, 1, g), 0);
    size_t before = f->n;
    ck_assert_int_eq(heartbeat(f, "wa", a, 3, PS_FLAG_QUIET), 0);
    ck_assert_uint_eq(f->n, before); /* the push's ACK went just now */
    ck_assert_int_eq(heartbeat(f, "wa", a, 4, 0), 0);
    assert_ack(f, 4, 1, 0);
    ck_assert_int_eq(heartbeat(f, "wa", a, 5, PS_FLAG_QUIET | PS_FLAG_DONE), 0);
    assert_ack(f, 5, 1, 0);
    ck_assert_int_eq(heartbeat(f, "wx", a + 1, 6, PS_FLAG_QUIET), PS_EWORKER);
    ck_assert_int_eq(last(f)->type, PS_MSG_ERROR);
    fx_free(&f);
    /* a beat of 4 ms: 5 ms after its WELCOME the worker has heard nothing */
    job.heartbeat.interval_ms = 4;
    f = fx_new(&job, 0);
    b = hello(f, 1, "wb");
    before = f->n;
    usleep(5 * 1000);
    ck_assert_int_eq(heartbeat(f, "wb", b, 2, PS_FLAG_QUIET), 0);
    ck_assert_uint_eq(f->n, before + 1);
    assert_ack(f, 2, 0, 0);
    fx_free(&f);
}
END_TEST

START_TEST(evicted_worker_rejoins_at_the_next_round)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    job.heartbeat.timeout_ms = 1000;
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_all(f, "wa", a, 1, 0, 1, g), 0);
    usleep(300 * 1000);
    ck_assert_int_eq(heartbeat(f, "wa", a, 2, 0), 0);
    ps_engine_tick(f->e, ps_clock_ms() + 800, capture_send, f);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    /* the evicted worker is unknown now, says HELLO again, and its late push
     * for round 0 is dropped */
    ck_assert_int_eq(push_all(f, "wb", b, 1, 0, 1, g), PS_EWORKER);
    uint32_t b2 = hello(f, 1, "wb");
    ck_assert_uint_eq(last(f)->model_version, 1); /* WELCOME says where the job is */
    ck_assert_int_eq(push_all(f, "wb", b2, 2, 0, 1, g), 0);
    assert_ack(f, 2, 1, PS_ACK_DROPPED);
    /* round 1 needs both again */
    ck_assert_int_eq(push_all(f, "wa", a, 3, 1, 1, g), 0);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    ck_assert_int_eq(push_all(f, "wb", b2, 3, 1, 1, g), 0);
    ck_assert_uint_eq(ps_engine_version(f->e), 2);
    fx_free(&f);
}
END_TEST

/* sync, cosine over 8 rounds: a rank evicted for 3 rounds comes back and
 * makes them up alone after the other is done (rounds 8-10). The schedule
 * counts rounds of data, not rounds closed: it holds while the rank catches
 * up, and those last rounds are its last steps (5, 6, 7), not steps past
 * total_steps at lr 0. */
static double cosine_lr(int step)
{
    return 0.5 * (1.0 + cos(M_PI * step / 8.0));
}

START_TEST(rank_rejoining_late_trains_its_last_rounds_within_the_schedule)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    job.heartbeat.timeout_ms = 1000;
    job.optimizer.lr = 1.0;
    job.optimizer.schedule = PS_SCHEDULE_COSINE;
    job.optimizer.total_steps = 8;
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    float g[P] = {1, 1, 1, 1};
    uint64_t sa = 1, sb = 1, round = 0;
    for (; round < 2; round++) {
        ck_assert_int_eq(push_all(f, "wa", a, sa++, round, 1, g), 0);
        ck_assert_int_eq(push_all(f, "wb", b, sb++, round, 1, g), 0);
    }
    /* rank 1 falls silent: evicted, round 2 closes on rank 0's push alone */
    ck_assert_int_eq(push_all(f, "wa", a, sa++, round, 1, g), 0);
    usleep(300 * 1000);
    ck_assert_int_eq(heartbeat(f, "wa", a, sa++, 0), 0);
    ps_engine_tick(f->e, ps_clock_ms() + 800, capture_send, f);
    ck_assert_uint_eq(ps_engine_version(f->e), 3);
    for (round = 3; round < 5; round++)
        ck_assert_int_eq(push_all(f, "wa", a, sa++, round, 1, g), 0);
    /* it comes back at round 5 with 6 rounds of its data left (2 applied) */
    b = hello(f, 1, "wb");
    sb = 1;
    for (round = 5; round < 8; round++) {
        ck_assert_int_eq(push_all(f, "wa", a, sa++, round, 1, g), 0);
        ck_assert_int_eq(push_all(f, "wb", b, sb++, round, 1, g), 0);
    }
    ck_assert_int_eq(heartbeat(f, "wa", a, sa++, PS_FLAG_DONE), 0); /* rank 0's 8 rounds */
    const float *theta = ps_engine_theta(f->e);
    float at8 = theta[0];
    for (round = 8; round < 11; round++)
        ck_assert_int_eq(push_all(f, "wb", b, sb++, round, 1, g), 0);
    ck_assert_uint_eq(ps_engine_version(f->e), 11);
    /* each round moves θ by its learning rate (g = 1): the steps were
     * 0 1 2 3 4, held at 4 while rank 1 caught up, then 5 6 7 */
    const int steps[11] = {0, 1, 2, 3, 4, 4, 4, 4, 5, 6, 7};
    double all = 0.0, last3 = 0.0;
    for (int i = 0; i < 11; i++) {
        all += cosine_lr(steps[i]);
        if (i >= 8)
            last3 += cosine_lr(steps[i]);
    }
    theta = ps_engine_theta(f->e);
    ck_assert_double_eq_tol(at8 - theta[0], last3, 1e-5);
    ck_assert_double_gt(at8 - theta[0], 0.1); /* not lr 0 past total_steps */
    ck_assert_double_eq_tol(-theta[0], all, 1e-5);
    fx_free(&f);
}
END_TEST

START_TEST(abort_on_worker_loss_stops_the_job)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    job.heartbeat.timeout_ms = 1000;
    job.on_worker_loss = PS_LOSS_ABORT;
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa");
    hello(f, 1, "wb");
    ck_assert_int_eq(pull(f, "wa", a, 1, 1, 0, P), 0); /* parked */
    usleep(300 * 1000);
    ck_assert_int_eq(heartbeat(f, "wa", a, 2, 0), 0);
    ps_engine_tick(f->e, ps_clock_ms() + 800, capture_send, f);
    const char *why;
    ck_assert(ps_engine_aborted(f->e, &why));
    ck_assert_str_eq(last(f)->error, why);
    ck_assert_int_eq(last(f)->status, PS_EABORTED);
    ck_assert_uint_eq(last(f)->seq, 1); /* the parked pull got the ERROR */
    ck_assert(strncmp(why, "job stopped: rank 1 was silent for ", 35) == 0);
    ck_assert_int_eq(pull(f, "wa", a, 3, 0, 0, P), PS_EABORTED);
    assert_error(f, 3, PS_EABORTED, why);
    fx_free(&f);
}
END_TEST

START_TEST(final_pull_waits_until_every_worker_is_done)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_all(f, "wa", a, 1, 0, 1, g), 0);
    ck_assert_int_eq(heartbeat(f, "wa", a, 2, PS_FLAG_DONE), 0);
    ck_assert_int_eq(pull(f, "wa", a, 3, PS_VERSION_FINAL, 0, P), 0);
    size_t before = f->n;
    ck_assert_int_eq(last(f)->type, PS_MSG_ACK); /* parked: no reply yet */
    /* a retried parked pull (same seq) is not parked twice */
    ck_assert_int_eq(pull(f, "wa", a, 3, PS_VERSION_FINAL, 0, P), 0);
    ck_assert_uint_eq(f->n, before);
    ck_assert_int_eq(push_all(f, "wb", b, 1, 0, 1, g), 0);
    ck_assert_uint_eq(f->n, before + 1); /* the ACK only */
    /* a done worker's push is refused */
    ck_assert_int_eq(push_all(f, "wa", a, 4, 0, 1, g), PS_ESTATE);
    before = f->n;
    ck_assert_int_eq(heartbeat(f, "wb", b, 2, PS_FLAG_DONE), 0);
    ck_assert_uint_eq(f->n, before + 2); /* its ACK, then the final θ, once */
    ck_assert_int_eq(last(f)->type, PS_MSG_PULL_REPLY);
    ck_assert_uint_eq(last(f)->seq, 3);
    ck_assert_uint_eq(last(f)->model_version, 2);
    ck_assert(!ps_engine_complete(f->e));
    ck_assert_int_eq(simple(f, "wa", PS_MSG_BYE, a, 5), 0);
    ck_assert_int_eq(simple(f, "wb", PS_MSG_BYE, b, 3), 0);
    ck_assert(ps_engine_complete(f->e));
    fx_free(&f);
}
END_TEST

START_TEST(stop_is_told_to_every_live_worker_and_answers_every_request)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 3);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    uint32_t c = hello(f, 2, "wc");
    ck_assert_int_eq(heartbeat(f, "hb-a", a, 1, 0), 0); /* a's heartbeat socket */
    ck_assert_int_eq(pull(f, "wa", a, 2, 1, 0, P), 0);  /* parked */
    size_t before = f->n;
    ps_engine_stop(f->e, PS_ESTOPPED, "psd was stopped by SIGTERM", capture_send, f);
    /* the parked pull, then unasked (seq 0) on a's main and heartbeat
     * sockets; b sent nothing since its HELLO, c nothing at all */
    ck_assert_uint_eq(f->n, before + 3);
    const captured *r = &f->replies[before];
    ck_assert_int_eq(r[0].msg.status, PS_ESTOPPED);
    ck_assert_uint_eq(r[0].msg.seq, 2);
    ck_assert_str_eq(r[0].to, "wa");
    ck_assert_uint_eq(r[1].msg.seq, 0);
    ck_assert_str_eq(r[1].to, "wa");
    ck_assert_uint_eq(r[2].msg.seq, 0);
    ck_assert_str_eq(r[2].to, "hb-a");
    ck_assert_str_eq(r[2].msg.error, "psd was stopped by SIGTERM");
    ck_assert_int_eq(r[2].msg.type, PS_MSG_ERROR);
    /* b and c have not heard it yet; each request they send now is told */
    ck_assert(!ps_engine_all_told(f->e));
    float g[P] = {1, 1, 1, 1};
    ck_assert_int_eq(push_all(f, "wb", b, 1, 0, 1, g), PS_ESTOPPED);
    assert_error(f, 1, PS_ESTOPPED, "psd was stopped by SIGTERM");
    ck_assert(!ps_engine_all_told(f->e));
    ck_assert_int_eq(heartbeat(f, "wc", c, 1, 0), PS_ESTOPPED);
    ck_assert(ps_engine_all_told(f->e));
    ck_assert_uint_eq(ps_engine_version(f->e), 0); /* nothing applied */
    fx_free(&f);
}
END_TEST

START_TEST(every_worker_told_ends_the_wait)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    ck_assert_int_eq(pull(f, "wa", a, 1, 1, 0, P), 0); /* parked */
    ps_engine_stop(f->e, PS_ECOMPLETE, "the job is complete", capture_send, f);
    ck_assert(!ps_engine_all_told(f->e)); /* b: not yet */
    ck_assert_int_eq(simple(f, "wb", PS_MSG_HEARTBEAT, b, 1), PS_ECOMPLETE);
    ck_assert(ps_engine_all_told(f->e));
    /* STATUS still works for psctl */
    ck_assert_int_eq(simple(f, "admin", PS_MSG_STATUS, 0, 1), 0);
    ck_assert_int_eq(last(f)->type, PS_MSG_STATUS_REPLY);
    fx_free(&f);
}
END_TEST

START_TEST(abort_keeps_its_reason_when_psd_stops)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa");
    hello(f, 1, "wb");
    static ps_msg m;
    request_init(&m, PS_MSG_BYE, a, 7);
    m.flags = PS_FLAG_ABORT;
    m.error = "training diverged in epoch 2: loss is nan";
    ck_assert_int_eq(handle(f, "wa", &m), 0);
    assert_ack(f, 7, 0, 0);
    const char *why;
    ck_assert(ps_engine_aborted(f->e, &why));
    ck_assert_str_eq(why, "job stopped by rank 0: training diverged in epoch 2: loss is nan");
    ps_engine_stop(f->e, PS_ESTOPPED, "psd was stopped by SIGTERM", capture_send, f);
    ck_assert_int_eq(pull(f, "wb", (2u << 10) | 1u, 1, 0, 0, P), PS_EABORTED);
    assert_error(f, 1, PS_EABORTED, why);
    ck_assert(!ps_engine_complete(f->e));
    fx_free(&f);
}
END_TEST

START_TEST(job_is_complete_only_when_every_rank_said_bye)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    job.heartbeat.timeout_ms = 1000;
    fx *f = fx_new(&job, 0);
    char text[256];
    ck_assert(!ps_engine_idle(f->e)); /* nobody came yet: nothing to wait for */
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    ck_assert_int_eq(heartbeat(f, "wa", a, 1, PS_FLAG_DONE), 0);
    ck_assert_int_eq(simple(f, "wa", PS_MSG_BYE, a, 2), 0);
    ck_assert(!ps_engine_idle(f->e));                            /* b is live */
    ps_engine_tick(f->e, ps_clock_ms() + 5000, capture_send, f); /* b is evicted */
    ck_assert_int_eq(ps_engine_worker_rank(f->e, b), -1);
    ck_assert(!ps_engine_complete(f->e)); /* b may come back */
    ck_assert(ps_engine_idle(f->e));
    ck_assert_uint_eq(ps_engine_unfinished_format(f->e, text, sizeof text), 1);
    ck_assert_str_eq(text, "rank 1 evicted at 0 of ? pushes");
    /* a BYE without DONE: the rank left before its data was done */
    uint32_t b2 = hello(f, 1, "wb");
    ck_assert(!ps_engine_idle(f->e));
    ck_assert_int_eq(simple(f, "wb", PS_MSG_BYE, b2, 3), 0);
    ck_assert(!ps_engine_complete(f->e));
    ck_assert(ps_engine_idle(f->e));
    ck_assert_uint_eq(ps_engine_unfinished_format(f->e, text, sizeof text), 1);
    ck_assert_str_eq(text, "rank 1 left at 0 of ? pushes");
    /* a worker that takes the rank over, says how much its data makes, finishes */
    static ps_msg m;
    request_init(&m, PS_MSG_HELLO, 0, 4);
    m.rank = 1;
    m.expected = 45;
    ck_assert_int_eq(handle(f, "wc", &m), 0);
    uint32_t b3 = last(f)->worker_id;
    ps_worker_status rows[2];
    ps_engine_workers_get(f->e, ps_clock_ms(), rows);
    ck_assert(rows[0].finished && !rows[1].finished);
    ck_assert_uint_eq(rows[1].expected, 45);
    ck_assert_int_eq(heartbeat(f, "wc", b3, 5, PS_FLAG_DONE), 0);
    ck_assert(!ps_engine_complete(f->e)); /* still live */
    ck_assert_int_eq(simple(f, "wc", PS_MSG_BYE, b3, 6), 0);
    ck_assert(ps_engine_complete(f->e));
    ck_assert(!ps_engine_idle(f->e));
    ck_assert_uint_eq(ps_engine_unfinished_format(f->e, text, sizeof text), 0);
    ck_assert_str_eq(text, "");
    ps_engine_rank er; /* what a checkpoint keeps of it */
    ck_assert_int_eq(ps_engine_rank_get(f->e, 1, &er), 0);
    ck_assert(er.finished);
    fx_free(&f);
}
END_TEST

START_TEST(silence_during_a_stall_of_psd_is_forgiven)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    job.heartbeat.timeout_ms = 1000;
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    uint64_t now = ps_clock_ms() + 4500; /* psd was stopped for 4.5 s */
    ps_engine_forgive(f->e, 4500, now);
    ps_engine_tick(f->e, now, capture_send, f);
    ck_assert_int_eq(ps_engine_worker_rank(f->e, a), 0);
    ck_assert_int_eq(ps_engine_worker_rank(f->e, b), 1);
    /* silence after the stall still counts */
    ps_engine_tick(f->e, now + 1500, capture_send, f);
    ck_assert_int_eq(ps_engine_worker_rank(f->e, a), -1);
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.evictions, 2);
    fx_free(&f);
}
END_TEST

START_TEST(restored_version_is_where_workers_join)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 1);
    fx *f = fx_new(&job, 0);
    ps_engine_restore(f->e, 42);
    uint32_t a = hello(f, 0, "wa");
    ck_assert_uint_eq(last(f)->model_version, 42);
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_all(f, "wa", a, 1, 43, 1, g), PS_ECLOCK);
    ck_assert_int_eq(push_all(f, "wa", a, 2, 42, 1, g), 0);
    ck_assert_uint_eq(ps_engine_version(f->e), 43);
    fx_free(&f);
}
END_TEST

/* ---- compression ------------------------------------------------------ */

START_TEST(compressed_push_is_decoded_and_applied)
{
    /* async, sgd lr 0.5: an fp16 push and a topk push land as their floats */
    ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 1);
    fx *f = fx_new(&job, 0);
    uint32_t w = hello(f, 0, "a");
    const float g[P] = {1.0f, -2.0f, 0.5f, 4.0f};
    unsigned char enc[64];
    float scratch[P];
    const ps_compress_ops *f16 = ps_compress_ops_get(PS_COMPRESS_FP16);
    ck_assert_int_eq(f16->encode(g, P, 0, enc, NULL), 0);
    static ps_msg m;
    request_init(&m, PS_MSG_PUSH, w, 1);
    m.key_lo = 0;
    m.key_hi = P;
    m.encoding = PS_ENC_F16;
    m.payload_bytes = f16->bytes(P, 0);
    m.payload = enc;
    ck_assert_int_eq(handle(f, "a", &m), 0);
    assert_ack(f, 1, 1, 0);
    const float after1[P] = {-0.5f, 1.0f, -0.25f, -2.0f};
    assert_theta(f, after1);
    const ps_compress_ops *tk = ps_compress_ops_get(PS_COMPRESS_TOPK);
    ck_assert_int_eq(tk->encode(g, P, 1, enc, scratch), 0); /* only 4.0 at key 3 */
    request_init(&m, PS_MSG_PUSH, w, 2);
    m.key_lo = 0;
    m.key_hi = P;
    m.encoding = PS_ENC_TOPK;
    m.payload_bytes = tk->bytes(P, 1);
    m.payload = enc;
    ck_assert_int_eq(handle(f, "a", &m), 0);
    const float after2[P] = {-0.5f, 1.0f, -0.25f, -4.0f};
    assert_theta(f, after2);
    fx_free(&f);
}
END_TEST

START_TEST(pull_codec_encodes_theta_once_per_version_for_every_worker)
{
    /* sync, 2 workers, pull int8: both workers' pulls of a version share one
     * encoding; each decodes to θ within half a scale (θ is sent, never a
     * difference, so nothing drifts over rounds); the final θ is float32 */
    ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    job.compression.pull = PS_COMPRESS_INT8;
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "a"), b = hello(f, 1, "b");
    const ps_compress_ops *i8 = ps_compress_ops_get(PS_COMPRESS_INT8);
    const float g[P] = {0.3f, -0.7f, 0.11f, 0.05f};
    for (uint64_t round = 0; round < 5; round++) {
        ck_assert_int_eq(push_all(f, "a", a, round + 1, round, 1, g), 0);
        ck_assert_int_eq(push_all(f, "b", b, round + 1, round, 1, g), 0);
        ck_assert_int_eq(pull(f, "a", a, 100 + round, round + 1, 0, P), 0);
        ck_assert_int_eq(pull(f, "b", b, 100 + round, round + 1, 0, P), 0);
        const captured *ra = &f->replies[f->n - 2], *rb = &f->replies[f->n - 1];
        ck_assert_int_eq(ra->msg.encoding, PS_ENC_INT8);
        ck_assert_uint_eq(ra->msg.payload_bytes, i8->bytes(P, 0));
        ck_assert_mem_eq(ra->payload, rb->payload, (size_t)ra->msg.payload_bytes);
        float theta[P];
        i8->decode(ra->payload, (size_t)ra->msg.payload_bytes, theta, P);
        const float *t = ps_engine_theta(f->e);
        float amax = 0;
        for (int i = 0; i < P; i++)
            amax = fmaxf(amax, fabsf(t[i]));
        for (int i = 0; i < P; i++)
            ck_assert_msg(fabsf(theta[i] - t[i]) <= amax / 254.0f * 1.0001f,
                          "round %llu: key %d pulled %g, psd holds %g", (unsigned long long)round,
                          i, (double)theta[i], (double)t[i]);
    }
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.pull_encodings, 5);
    ck_assert_int_eq(pull(f, "a", a, 200, PS_VERSION_FINAL, 0, P), 0); /* parked: b not done */
    ck_assert_int_eq(simple(f, "a", PS_MSG_BYE, a, 201), 0);
    ck_assert_int_eq(simple(f, "b", PS_MSG_BYE, b, 202), 0);
    const captured *fin = NULL;
    for (size_t i = 0; i < f->n; i++)
        if (f->replies[i].msg.type == PS_MSG_PULL_REPLY && f->replies[i].msg.seq == 200)
            fin = &f->replies[i];
    ck_assert_ptr_nonnull(fin);
    ck_assert_int_eq(fin->msg.encoding, PS_ENC_F32);
    assert_theta(f, fin->payload);
    fx_free(&f);
}
END_TEST

/* ---- ssp, staleness, per-rank state ------------------------------------ */

static int push_at(fx *f, const char *who, uint32_t worker_id, uint64_t seq, uint64_t clock,
                   uint64_t model_version, const float *g)
{
    static ps_msg m;
    request_init(&m, PS_MSG_PUSH, worker_id, seq);
    m.clock = clock;
    m.model_version = model_version;
    m.samples = 1;
    m.key_lo = 0;
    m.key_hi = P;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = P * sizeof(float);
    m.payload = g;
    return handle(f, who, &m);
}

static int pull_ssp(fx *f, const char *who, uint32_t worker_id, uint64_t seq, uint64_t clock)
{
    static ps_msg m;
    request_init(&m, PS_MSG_PULL, worker_id, seq);
    m.clock = clock;
    m.key_lo = 0;
    m.key_hi = P;
    return handle(f, who, &m);
}

static uint32_t hello_as(fx *f, int rank, const char *who, uint64_t incarnation)
{
    static ps_msg m;
    request_init(&m, PS_MSG_HELLO, 0, 1);
    m.rank = rank;
    m.incarnation = incarnation;
    ck_assert_int_eq(handle(f, who, &m), 0);
    ck_assert_int_eq(last(f)->type, PS_MSG_WELCOME);
    return last(f)->worker_id;
}

START_TEST(ssp_pull_waits_until_the_slowest_clock_is_within_staleness)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SSP, 2);
    job.staleness = 1;
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    float g[P] = {2, 2, 2, 2};
    /* pushes are applied at once, as in async */
    ck_assert_int_eq(push_at(f, "wa", a, 1, 0, 0, g), 0);
    assert_ack(f, 1, 1, 0);
    /* a at clock 1, b at 0: 0 >= 1 - 1, answered */
    ck_assert_int_eq(pull_ssp(f, "wa", a, 2, 1), 0);
    ck_assert_int_eq(last(f)->type, PS_MSG_PULL_REPLY);
    ck_assert_int_eq(push_at(f, "wa", a, 3, 1, 1, g), 0);
    /* a at clock 2, b at 0 < 2 - 1: parked */
    size_t before = f->n;
    ck_assert_int_eq(pull_ssp(f, "wa", a, 4, 2), 0);
    ck_assert_uint_eq(f->n, before);
    ck_assert_uint_eq(ps_engine_version(f->e), 2);
    /* b's push brings it to clock 1: the pull is answered with its version */
    ck_assert_int_eq(push_at(f, "wb", b, 1, 0, 0, g), 0);
    ck_assert_uint_eq(f->n, before + 2);
    ck_assert_int_eq(last(f)->type, PS_MSG_PULL_REPLY);
    ck_assert_uint_eq(last(f)->seq, 4);
    ck_assert_uint_eq(last(f)->model_version, 3);
    ps_engine_rank ra, rb;
    ck_assert_int_eq(ps_engine_rank_get(f->e, 0, &ra), 0);
    ck_assert_int_eq(ps_engine_rank_get(f->e, 1, &rb), 0);
    ck_assert_uint_eq(ra.clock, 2);
    ck_assert_uint_eq(rb.clock, 1);
    ck_assert_uint_eq(ra.applied, 2);
    ck_assert_uint_eq(rb.applied, 1);
    ck_assert_int_eq(ps_engine_rank_get(f->e, 2, &ra), PS_ERANGE);
    fx_free(&f);
}
END_TEST

START_TEST(ssp_pull_waits_for_a_rank_that_has_not_registered_yet)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SSP, 2);
    job.staleness = 1;
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa");
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_at(f, "wa", a, 1, 0, 0, g), 0);
    ck_assert_int_eq(push_at(f, "wa", a, 2, 1, 1, g), 0);
    /* a at clock 2; rank 1, still reading its data, counts as clock 0 */
    size_t before = f->n;
    ck_assert_int_eq(pull_ssp(f, "wa", a, 3, 2), 0);
    ck_assert_uint_eq(f->n, before);
    uint32_t b = hello(f, 1, "wb");
    ck_assert_int_eq(push_at(f, "wb", b, 1, 0, 0, g), 0);
    ck_assert_int_eq(last(f)->type, PS_MSG_PULL_REPLY);
    ck_assert_uint_eq(last(f)->seq, 3);
    fx_free(&f);
}
END_TEST

START_TEST(ssp_with_staleness_0_waits_like_sync)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SSP, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_at(f, "wa", a, 1, 0, 0, g), 0);
    size_t before = f->n;
    ck_assert_int_eq(pull_ssp(f, "wa", a, 2, 1), 0);
    ck_assert_uint_eq(f->n, before);
    ck_assert_int_eq(push_at(f, "wb", b, 1, 0, 0, g), 0);
    ck_assert_int_eq(last(f)->type, PS_MSG_PULL_REPLY);
    ck_assert_uint_eq(last(f)->seq, 2);
    fx_free(&f);
}
END_TEST

START_TEST(ssp_parked_pull_is_released_when_the_slowest_worker_leaves)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SSP, 3);
    job.staleness = 0;
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb"), c = hello(f, 2, "wc");
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_at(f, "wa", a, 1, 0, 0, g), 0);
    ck_assert_int_eq(push_at(f, "wb", b, 1, 0, 0, g), 0);
    size_t before = f->n;
    ck_assert_int_eq(pull_ssp(f, "wa", a, 2, 1), 0);
    ck_assert_uint_eq(f->n, before);
    /* done (pushed its last gradient) no longer holds the others back */
    ck_assert_int_eq(simple(f, "wc", PS_MSG_BYE, c, 1), 0);
    ck_assert_uint_eq(f->n, before + 2);
    ck_assert_int_eq(f->replies[before + 1].msg.type, PS_MSG_PULL_REPLY);
    ck_assert_uint_eq(f->replies[before + 1].msg.seq, 2);
    fx_free(&f);
}
END_TEST

START_TEST(staleness_of_applied_pushes_is_reported)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 1);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa");
    float g[P] = {0, 0, 0, 0};
    /* all computed from θ of version 0, applied at versions 0, 1, 2, 3 */
    for (uint64_t i = 0; i < 4; i++)
        ck_assert_int_eq(push_at(f, "wa", a, i + 1, i, 0, g), 0);
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.staleness_max, 3);
    ck_assert_uint_eq(st.staleness_p99, 3);
    ck_assert_double_eq_tol(st.staleness_mean, 1.5, 1e-12);
    /* 300 fresh pushes: the 99th percentile falls to 0, the max stays */
    for (uint64_t i = 4; i < 304; i++) {
        f->n = 0; /* only the last reply matters */
        ck_assert_int_eq(push_at(f, "wa", a, i + 1, i, ps_engine_version(f->e), g), 0);
    }
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.staleness_max, 3);
    ck_assert_uint_eq(st.staleness_p99, 0);
    ck_assert_uint_eq(st.pushes, 304);
    fx_free(&f);
}
END_TEST

START_TEST(restored_rank_acknowledges_a_push_in_flight_as_duplicate)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello_as(f, 0, "wa", 77);
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_at(f, "wa", a, 5, 0, 0, g), 0);
    ck_assert_int_eq(push_at(f, "wa", a, 6, 1, 1, g), 0);
    ps_engine_rank saved;
    ck_assert_int_eq(ps_engine_rank_get(f->e, 0, &saved), 0);
    ck_assert_uint_eq(saved.incarnation, 77);
    ck_assert(saved.has_seq);
    ck_assert_uint_eq(saved.last_seq, 6);
    ck_assert_uint_eq(saved.applied, 2);
    ck_assert_uint_eq(saved.clock, 2);
    ck_assert(saved.live);
    fx_free(&f);

    /* psd restarts from the checkpoint; the same client registers again
     * and retries seq 6, whose ACK it never got */
    f = fx_new(&job, 0);
    ck_assert_int_eq(ps_engine_rank_restore(f->e, 0, &saved), 0);
    a = hello_as(f, 0, "wa", 77);
    ck_assert_int_eq(ps_engine_rank_restore(f->e, 0, &saved), PS_ESTATE);
    ck_assert_int_eq(push_at(f, "wa", a, 6, 1, 1, g), 0);
    assert_ack(f, 6, 0, PS_ACK_DUPLICATE);
    ck_assert_int_eq(push_at(f, "wa", a, 7, 2, 0, g), 0);
    assert_ack(f, 7, 1, 0);
    ps_engine_rank now;
    ck_assert_int_eq(ps_engine_rank_get(f->e, 0, &now), 0);
    ck_assert_uint_eq(now.applied, 3);
    /* another process on rank 1 with a restored rank-1 state starts afresh */
    ck_assert_int_eq(ps_engine_rank_restore(f->e, 1, &saved), 0);
    uint32_t b = hello_as(f, 1, "wb", 78);
    ck_assert_int_eq(push_at(f, "wb", b, 6, 0, 0, g), 0);
    assert_ack(f, 6, 2, 0);
    fx_free(&f);
}
END_TEST

/* Runs hello_as with stderr in a temporary file; returns what was logged. */
static void hello_logged(fx *f, int rank, const char *who, uint64_t incarnation, char *out,
                         size_t cap)
{
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    dup2(fileno(tmp), 2);
    hello_as(f, rank, who, incarnation);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, cap - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
}

START_TEST(evicted_rank_taken_over_by_a_new_worker_is_logged)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    job.heartbeat.timeout_ms = 1000;
    fx *f = fx_new(&job, 0);
    f->log.level = PS_LOG_INFO;
    uint32_t a = hello_as(f, 0, "wa", 1);
    hello_as(f, 1, "wb", 2);
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_all(f, "wa", a, 1, 0, 1, g), 0);
    /* both fall silent: the round closes with rank 0's push */
    ps_engine_tick(f->e, ps_clock_ms() + 1500, capture_send, f);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    static char logged[4096];
    hello_logged(f, 1, "wc", 3, logged, sizeof logged);
    ck_assert_msg(strstr(logged, "shard 0: rank 1 taken over by worker ") != NULL, "log: %s",
                  logged);
    ck_assert_msg(strstr(logged, " at round 1\n") != NULL, "log: %s", logged);
    fx_free(&f);
}
END_TEST

START_TEST(evicted_worker_coming_back_is_no_takeover)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 2);
    job.heartbeat.timeout_ms = 1000;
    fx *f = fx_new(&job, 0);
    f->log.level = PS_LOG_INFO;
    uint32_t a = hello_as(f, 0, "wa", 1);
    uint32_t b = hello_as(f, 1, "wb", 2);
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_at(f, "wb", b, 4, 0, 0, g), 0);
    (void)a;
    ps_engine_tick(f->e, ps_clock_ms() + 1500, capture_send, f);
    static char logged[4096];
    hello_logged(f, 1, "wb", 2, logged, sizeof logged);
    ck_assert_msg(strstr(logged, "taken over") == NULL, "log: %s", logged);
    /* and its retried push is still known */
    ck_assert_int_eq(push_at(f, "wb", last(f)->worker_id, 4, 0, 0, g), 0);
    assert_ack(f, 4, 1, PS_ACK_DUPLICATE);
    fx_free(&f);
}
END_TEST

START_TEST(push_waiting_in_the_open_round_is_not_in_the_rank_state_yet)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello_as(f, 0, "wa", 5), b = hello_as(f, 1, "wb", 6);
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_all(f, "wa", a, 9, 0, 1, g), 0);
    /* a checkpoint now holds θ without it: after a restart it must apply */
    ps_engine_rank r;
    ck_assert_int_eq(ps_engine_rank_get(f->e, 0, &r), 0);
    ck_assert(!r.has_seq);
    ck_assert_uint_eq(r.applied, 0);
    ck_assert_uint_eq(r.clock, 0);
    ck_assert_int_eq(push_all(f, "wb", b, 1, 0, 1, g), 0);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    ck_assert_int_eq(ps_engine_rank_get(f->e, 0, &r), 0);
    ck_assert(r.has_seq);
    ck_assert_uint_eq(r.last_seq, 9);
    ck_assert_uint_eq(r.applied, 1);
    ck_assert_uint_eq(r.clock, 1);
    fx_free(&f);
}
END_TEST

START_TEST(status_reports_staleness_and_each_ranks_clock)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SSP, 2);
    job.staleness = 3;
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa");
    hello(f, 1, "wb");
    float g[P] = {0, 0, 0, 0};
    ck_assert_int_eq(push_at(f, "wa", a, 1, 0, 0, g), 0);
    ck_assert_int_eq(push_at(f, "wa", a, 2, 1, 0, g), 0);
    ck_assert_int_eq(simple(f, "admin", PS_MSG_STATUS, 0, 7), 0);
    const ps_msg *r = last(f);
    ck_assert_int_eq(r->type, PS_MSG_STATUS_REPLY);
    ck_assert_str_eq(r->mode, "ssp");
    ck_assert_uint_eq(r->staleness_max, 1);
    ck_assert_uint_eq(r->staleness_p99, 1);
    ck_assert_double_eq_tol(r->staleness_mean, 0.5, 1e-12);
    ck_assert_str_eq(r->detail, "clocks [2, 0]");
    /* the worker table: one row per rank */
    const captured *c = &f->replies[f->n - 1];
    ck_assert_uint_eq(c->nrows, 2);
    ck_assert_uint_eq(c->rows[0].rank, 0);
    ck_assert_int_eq(c->rows[0].state, PS_WORKER_LIVE);
    ck_assert_uint_eq(c->rows[0].clock, 2);
    ck_assert_uint_eq(c->rows[0].pushes, 2);
    ck_assert_uint_eq(c->rows[0].staleness_max, 1);
    ck_assert_double_eq_tol(c->rows[0].staleness_mean, 0.5, 1e-12);
    ck_assert_uint_eq(c->rows[1].pushes, 0);
    ck_assert(isnan(c->rows[1].loss)); /* no heartbeat said it yet */
    char text[128];
    ps_engine_ranks_format(f->e, text, sizeof text);
    ck_assert_str_eq(text, "rank 0 applied 2 clock 2, rank 1 applied 0 clock 0");
    ps_engine_ranks_format(f->e, text, 20);
    ck_assert_str_eq(text, "rank 0 applied 2...");
    fx_free(&f);
}
END_TEST

START_TEST(status_table_shows_each_ranks_host_loss_and_state)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 3);
    job.heartbeat.timeout_ms = 1000;
    fx *f = fx_new(&job, 0);
    static ps_msg m;
    request_init(&m, PS_MSG_HELLO, 0, 1);
    m.rank = 0;
    m.hostname = "vm-a";
    ck_assert_int_eq(handle(f, "wa", &m), 0);
    uint32_t a = last(f)->worker_id;
    uint32_t b = hello(f, 1, "wb");
    request_init(&m, PS_MSG_HEARTBEAT, a, 2);
    m.loss = 0.25;
    m.samples_per_s = 1500.0;
    ck_assert_int_eq(handle(f, "wa", &m), 0);
    float g[P] = {0};
    ck_assert_int_eq(push_at(f, "wa", a, 3, 0, 0, g), 0);
    ck_assert_int_eq(push_at(f, "wa", a, 3, 0, 0, g), 0); /* a retry: duplicate */
    ck_assert_int_eq(simple(f, "wb", PS_MSG_BYE, b, 2), 0);
    ck_assert_int_eq(simple(f, "admin", PS_MSG_STATUS, 0, 9), 0);
    const captured *c = &f->replies[f->n - 1];
    ck_assert_uint_eq(c->nrows, 3);
    ck_assert_int_eq(c->rows[0].state, PS_WORKER_LIVE);
    ck_assert_str_eq(c->rows[0].hostname, "vm-a");
    ck_assert_double_eq_tol(c->rows[0].loss, 0.25, 1e-12);
    ck_assert_double_eq_tol(c->rows[0].samples_per_s, 1500.0, 1e-9);
    ck_assert_uint_eq(c->rows[0].pushes, 1);
    ck_assert_uint_eq(c->rows[0].duplicates, 1);
    ck_assert_uint_eq(c->rows[0].worker_id, a);
    ck_assert_int_eq(c->rows[1].state, PS_WORKER_LEFT);
    ck_assert_int_eq(c->rows[2].state, PS_WORKER_VACANT);
    ck_assert_uint_eq(c->rows[2].worker_id, 0);
    /* rank 0 falls silent: evicted */
    ps_engine_tick(f->e, ps_clock_ms() + 5000, capture_send, f);
    ck_assert_int_eq(simple(f, "admin", PS_MSG_STATUS, 0, 10), 0);
    c = &f->replies[f->n - 1];
    ck_assert_int_eq(c->rows[0].state, PS_WORKER_EVICTED);
    ck_assert_uint_eq(c->rows[0].evictions, 1);
    fx_free(&f);
}
END_TEST

START_TEST(welcome_says_the_ranks_applied_pushes_and_last_seq)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello_as(f, 0, "wa", 77);
    ck_assert_uint_eq(last(f)->applied, 0);
    ck_assert_uint_eq(last(f)->applied_seq, 0);
    float g[P] = {0};
    ck_assert_int_eq(push_at(f, "wa", a, 5, 0, 0, g), 0);
    ck_assert_int_eq(push_at(f, "wa", a, 6, 1, 1, g), 0);
    ps_engine_rank saved;
    ck_assert_int_eq(ps_engine_rank_get(f->e, 0, &saved), 0);
    fx_free(&f);
    /* restarted from that state: the same process learns seq 6 is held,
     * another process only where the rank's data stands */
    f = fx_new(&job, 0);
    ck_assert_int_eq(ps_engine_rank_restore(f->e, 0, &saved), 0);
    hello_as(f, 0, "wa", 77);
    ck_assert_uint_eq(last(f)->applied, 2);
    ck_assert_uint_eq(last(f)->applied_seq, 6);
    fx_free(&f);
    f = fx_new(&job, 0);
    ck_assert_int_eq(ps_engine_rank_restore(f->e, 0, &saved), 0);
    hello_as(f, 0, "wc", 99);
    ck_assert_uint_eq(last(f)->applied, 2);
    ck_assert_uint_eq(last(f)->applied_seq, 0);
    fx_free(&f);
}
END_TEST

/* ---- a pull riding in a push (PS_FLAG_PULL) ----------------------------- */

/* A PUSH of keys [key_lo, key_hi) carrying a PULL of them (min_version,
 * pull_clock). */
static int push_pull_keys(fx *f, const char *who, uint32_t worker_id, uint64_t seq, uint64_t clock,
                          uint64_t key_lo, uint64_t key_hi, uint64_t min_version,
                          uint64_t pull_clock, const float *g)
{
    static ps_msg m;
    request_init(&m, PS_MSG_PUSH, worker_id, seq);
    m.flags = PS_FLAG_PULL;
    m.clock = clock;
    m.samples = 1;
    m.key_lo = key_lo;
    m.key_hi = key_hi;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = (key_hi - key_lo) * sizeof(float);
    m.payload = g;
    m.min_version = min_version;
    m.pull_clock = pull_clock;
    return handle(f, who, &m);
}

/* The same, of the whole shard. */
static int push_pull(fx *f, const char *who, uint32_t worker_id, uint64_t seq, uint64_t clock,
                     uint64_t min_version, uint64_t pull_clock, const float *g)
{
    return push_pull_keys(f, who, worker_id, seq, clock, 0, P, min_version, pull_clock, g);
}

/* c is the PULL_REPLY to `to` for seq, at version, with the push's ACK
 * flags, carrying θ of the whole shard. */
static void assert_pull_reply(const captured *c, const char *to, uint64_t seq, uint64_t version,
                              uint32_t flags, const float *theta)
{
    ck_assert_int_eq(c->msg.type, PS_MSG_PULL_REPLY);
    ck_assert_str_eq(c->to, to);
    ck_assert_uint_eq(c->msg.seq, seq);
    ck_assert_uint_eq(c->msg.model_version, version);
    ck_assert_uint_eq(c->msg.flags, flags);
    ck_assert_int_eq(c->msg.status, 0);
    ck_assert_uint_eq(c->msg.key_lo, 0);
    ck_assert_uint_eq(c->msg.key_hi, P);
    ck_assert_int_eq(c->msg.encoding, PS_ENC_F32);
    ck_assert_uint_eq(c->msg.payload_bytes, P * sizeof(float));
    ck_assert_uint_eq(c->nfloats, P);
    for (size_t i = 0; i < P; i++)
        ck_assert_msg(c->payload[i] == theta[i], "theta[%zu] = %g, want %g", i,
                      (double)c->payload[i], (double)theta[i]);
}

START_TEST(async_push_with_pull_is_answered_at_once_with_theta_after_the_push)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa");
    hello(f, 1, "wb");
    float g[P] = {2, 4, 6, 8};
    size_t before = f->n;
    ck_assert_int_eq(push_pull(f, "wa", a, 1, 0, 1, 0, g), 0);
    ck_assert_uint_eq(f->n, before + 1); /* one reply: no ACK of its own */
    const float want[P] = {-1, -2, -3, -4};
    assert_pull_reply(&f->replies[before], "wa", 1, 1, 0, want);
    ck_assert_uint_eq(f->replies[before].msg.worker_id, a);
    assert_theta(f, want);
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.pushes, 1);
    ck_assert_uint_eq(st.pulls, 1);
    ck_assert_uint_eq(st.parked, 0);
    fx_free(&f);
}
END_TEST

START_TEST(retried_push_with_pull_is_a_duplicate_with_theta_and_applied_once)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 1);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa");
    float g[P] = {2, 2, 2, 2};
    const float want[P] = {-1, -1, -1, -1};
    ck_assert_int_eq(push_pull(f, "wa", a, 7, 0, 1, 0, g), 0);
    assert_pull_reply(&f->replies[f->n - 1], "wa", 7, 1, 0, want);
    size_t before = f->n;
    ck_assert_int_eq(push_pull(f, "wa", a, 7, 0, 1, 0, g), 0);
    ck_assert_uint_eq(f->n, before + 1);
    assert_pull_reply(&f->replies[before], "wa", 7, 1, PS_ACK_DUPLICATE, want);
    assert_theta(f, want);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.pushes, 1);
    ck_assert_uint_eq(st.duplicates, 1);
    ck_assert_uint_eq(st.pulls, 2);
    fx_free(&f);
}
END_TEST

START_TEST(sync_push_with_pull_is_acked_then_answered_when_the_round_closes)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    float ga[P] = {1, 2, -1, 4}, gb[P] = {3, 0, 1, -2};
    size_t before = f->n;
    /* the round stays open: the push's ACK now, its pull parked */
    ck_assert_int_eq(push_pull(f, "wa", a, 1, 0, 1, 0, ga), 0);
    ck_assert_uint_eq(f->n, before + 1);
    assert_ack(f, 1, 0, 0);
    ck_assert_str_eq(f->replies[before].to, "wa");
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.parked, 1);
    ck_assert_uint_eq(st.pulls, 0);
    /* b's push closes the round: its own pull is answered at once, in one
     * PULL_REPLY, then a's parked one, both with θ of version 1 */
    before = f->n;
    ck_assert_int_eq(push_pull(f, "wb", b, 1, 0, 1, 0, gb), 0);
    ck_assert_uint_eq(f->n, before + 2);
    const float want[P] = {-1.0f, -0.5f, 0.0f, -0.5f}; /* 0 - 0.5 · (ga + gb) / 2 */
    assert_pull_reply(&f->replies[before], "wb", 1, 1, 0, want);
    assert_pull_reply(&f->replies[before + 1], "wa", 1, 1, 0, want);
    assert_theta(f, want);
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.parked, 0);
    ck_assert_uint_eq(st.pushes, 2);
    ck_assert_uint_eq(st.pulls, 2);
    fx_free(&f);
}
END_TEST

START_TEST(sync_push_with_pull_for_a_closed_round_is_dropped_with_theta)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 1);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa");
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_all(f, "wa", a, 1, 0, 1, g), 0);
    assert_ack(f, 1, 1, 0);
    size_t before = f->n;
    ck_assert_int_eq(push_pull(f, "wa", a, 2, 0, 1, 0, g), 0); /* round 0 is closed */
    ck_assert_uint_eq(f->n, before + 1);
    const float want[P] = {-1, -1, -1, -1};
    assert_pull_reply(&f->replies[before], "wa", 2, 1, PS_ACK_DROPPED, want);
    assert_theta(f, want);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.dropped, 1);
    ck_assert_uint_eq(st.pushes, 1);
    fx_free(&f);
}
END_TEST

START_TEST(dropped_push_whose_pull_must_wait_is_acked_dropped_then_answered)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_all(f, "wa", a, 1, 0, 1, g), 0);
    ck_assert_int_eq(push_all(f, "wb", b, 1, 0, 1, g), 0);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    /* a late push for round 0, its pull for version 2: the ACK says
     * DROPPED now, the pull waits for round 1 */
    size_t before = f->n;
    ck_assert_int_eq(push_pull(f, "wa", a, 2, 0, 2, 0, g), 0);
    ck_assert_uint_eq(f->n, before + 1);
    assert_ack(f, 2, 1, PS_ACK_DROPPED);
    ck_assert_int_eq(push_all(f, "wa", a, 3, 1, 1, g), 0);
    before = f->n;
    ck_assert_int_eq(push_all(f, "wb", b, 2, 1, 1, g), 0);
    ck_assert_uint_eq(f->n, before + 2);
    ck_assert_int_eq(f->replies[before].msg.type, PS_MSG_ACK);
    const float want[P] = {-2, -2, -2, -2};
    assert_pull_reply(&f->replies[before + 1], "wa", 2, 2, 0, want);
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.dropped, 1);
    ck_assert_uint_eq(st.pushes, 4);
    fx_free(&f);
}
END_TEST

START_TEST(ssp_push_with_pull_parks_on_its_pull_clock)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SSP, 2);
    job.staleness = 0;
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    float g[P] = {2, 2, 2, 2};
    size_t before = f->n;
    /* pushed at clock 0 (a pull at that clock would be answered), its pull
     * at clock 1: b, at clock 0, is more than staleness 0 behind. The push
     * is applied at once, as in async, and acknowledged; the pull waits */
    ck_assert_int_eq(push_pull(f, "wa", a, 1, 0, 0, 1, g), 0);
    ck_assert_uint_eq(f->n, before + 1);
    assert_ack(f, 1, 1, 0);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.parked, 1);
    before = f->n;
    ck_assert_int_eq(push_at(f, "wb", b, 1, 0, 0, g), 0);
    ck_assert_uint_eq(f->n, before + 2);
    ck_assert_int_eq(f->replies[before].msg.type, PS_MSG_ACK);
    ck_assert_str_eq(f->replies[before].to, "wb");
    const float want[P] = {-2, -2, -2, -2};
    assert_pull_reply(&f->replies[before + 1], "wa", 1, 2, 0, want);
    fx_free(&f);
}
END_TEST

START_TEST(retry_of_a_push_whose_pull_is_parked_only_moves_where_the_pull_is_answered)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_SYNC, 2);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa"), b = hello(f, 1, "wb");
    float ga[P] = {1, 2, -1, 4}, gb[P] = {3, 0, 1, -2};
    ck_assert_int_eq(push_pull(f, "wa", a, 1, 0, 1, 0, ga), 0);
    assert_ack(f, 1, 0, 0);
    /* the same request again, from a new socket: a duplicate push, still
     * one pull parked */
    size_t before = f->n;
    ck_assert_int_eq(push_pull(f, "wa-again", a, 1, 0, 1, 0, ga), 0);
    ck_assert_uint_eq(f->n, before + 1);
    assert_ack(f, 1, 0, PS_ACK_DUPLICATE);
    ck_assert_str_eq(f->replies[before].to, "wa-again");
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.parked, 1);
    ck_assert_uint_eq(st.duplicates, 1);
    /* a PULL with the push's seq is a retry of the riding pull: no reply,
     * not parked twice */
    before = f->n;
    ck_assert_int_eq(pull(f, "wa-pull", a, 1, 1, 0, P), 0);
    ck_assert_uint_eq(f->n, before);
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.parked, 1);
    /* b's push closes the round: its ACK, then the one PULL_REPLY, where
     * the last retry came from */
    ck_assert_int_eq(push_all(f, "wb", b, 1, 0, 1, gb), 0);
    ck_assert_uint_eq(f->n, before + 2);
    ck_assert_int_eq(f->replies[before].msg.type, PS_MSG_ACK);
    ck_assert_str_eq(f->replies[before].to, "wb");
    const float want[P] = {-1.0f, -0.5f, 0.0f, -0.5f}; /* a's gradient counted once */
    assert_pull_reply(&f->replies[before + 1], "wa-pull", 1, 1, 0, want);
    assert_theta(f, want);
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.parked, 0);
    ck_assert_uint_eq(st.pushes, 2);
    fx_free(&f);
}
END_TEST

START_TEST(push_with_pull_when_too_many_are_parked_is_applied_and_acked_with_efull)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 1);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa");
    for (uint64_t i = 0; i < 16; i++)
        ck_assert_int_eq(pull(f, "wa", a, 10 + i, 100, 0, P), 0);
    size_t before = f->n;
    float g[P] = {2, 2, 2, 2};
    ck_assert_int_eq(push_pull(f, "wa", a, 1, 0, 100, 0, g), 0);
    ck_assert_uint_eq(f->n, before + 1);
    const char *why =
        "16 pulls are waiting already (limit 16): the push was taken, its pull was not";
    const ps_msg *r = last(f);
    ck_assert_int_eq(r->type, PS_MSG_ACK);
    ck_assert_uint_eq(r->seq, 1);
    ck_assert_uint_eq(r->flags, 0);
    ck_assert_int_eq(r->status, PS_EFULL);
    ck_assert_str_eq(r->error, why);
    ck_assert_uint_eq(r->model_version, 1);
    /* the push stands */
    const float want[P] = {-1, -1, -1, -1};
    assert_theta(f, want);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    ck_assert_uint_eq(ps_engine_errors(f->e, PS_EFULL), 1);
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.pushes, 1);
    ck_assert_uint_eq(st.parked, 16);
    ck_assert_uint_eq(st.errors, 1);
    /* its retry: a duplicate, still no room for the pull */
    ck_assert_int_eq(push_pull(f, "wa", a, 1, 0, 100, 0, g), 0);
    r = last(f);
    ck_assert_int_eq(r->type, PS_MSG_ACK);
    ck_assert_uint_eq(r->flags, PS_ACK_DUPLICATE);
    ck_assert_int_eq(r->status, PS_EFULL);
    ck_assert_str_eq(r->error, why);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    ck_assert_uint_eq(ps_engine_errors(f->e, PS_EFULL), 2);
    fx_free(&f);
}
END_TEST

START_TEST(invalid_push_with_pull_gets_one_error_and_no_pull_reply)
{
    static ps_job job;
    job_logistic(&job, PS_MODE_ASYNC, 1);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0, "wa");
    float g[P + 1] = {1, 1, 1, 1, 1};
    /* pulls that could be answered at once (min_version 0) */
    size_t before = f->n;
    ck_assert_int_eq(push_pull_keys(f, "wa", a, 1, 0, 0, P + 1, 0, 0, g), PS_ERANGE);
    ck_assert_uint_eq(f->n, before + 1);
    assert_error(f, 1, PS_ERANGE, "keys [0, 5) are outside shard 0 [0, 4)");
    ck_assert_int_eq(push_pull(f, "wa", a + 1, 2, 0, 0, 0, g), PS_EWORKER);
    ck_assert_uint_eq(f->n, before + 2);
    char want[64];
    snprintf(want, sizeof want, "worker %u is not registered with shard 0", a + 1);
    assert_error(f, 2, PS_EWORKER, want);
    ps_engine_stats st;
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.pulls, 0);
    ck_assert_uint_eq(st.parked, 0);
    assert_theta(f, zeros);
    fx_free(&f);

    /* sync: a push for a round not open yet is refused, its pull not parked */
    job_logistic(&job, PS_MODE_SYNC, 2);
    f = fx_new(&job, 0);
    a = hello(f, 0, "wa");
    uint32_t b = hello(f, 1, "wb");
    before = f->n;
    ck_assert_int_eq(push_pull(f, "wa", a, 1, 3, 1, 0, g), PS_ECLOCK);
    ck_assert_uint_eq(f->n, before + 1);
    ck_assert_int_eq(last(f)->type, PS_MSG_ERROR);
    ck_assert_int_eq(last(f)->status, PS_ECLOCK);
    ps_engine_stats_get(f->e, &st);
    ck_assert_uint_eq(st.parked, 0);
    /* the round closes: the two ACKs, no PULL_REPLY for the refused seq */
    before = f->n;
    ck_assert_int_eq(push_all(f, "wa", a, 2, 0, 1, g), 0);
    ck_assert_int_eq(push_all(f, "wb", b, 1, 0, 1, g), 0);
    ck_assert_uint_eq(f->n, before + 2);
    ck_assert_int_eq(f->replies[before].msg.type, PS_MSG_ACK);
    ck_assert_int_eq(f->replies[before + 1].msg.type, PS_MSG_ACK);
    fx_free(&f);
}
END_TEST

START_TEST(welcome_layout_lists_every_shard_and_tensor_and_the_jobs_mode)
{
    static const char *const mode_names[PS_MODE_COUNT] = {"sync", "async", "ssp"};
    for (int mode = 0; mode < PS_MODE_COUNT; mode++) {
        static ps_job job;
        job_logistic(&job, (ps_mode)mode, 1);
        job.model.type = PS_MODEL_MLP; /* 3 -> 5 -> 2: W1 [3, 5], b1 [5], W2 [5, 2], b2 [2] */
        job.model.nhidden = 1;
        job.model.hidden[0] = 5;
        job.model.classes = 2;
        job.nservers = 3;
        strcpy(job.servers[1], "tcp://127.0.0.1:7071");
        strcpy(job.servers[2], "tcp://127.0.0.1:7072");
        fx *f = fx_new(&job, 2);
        hello(f, 0, "wa");
        const ps_msg *w = last(f);
        ck_assert_str_eq(w->mode, ps_mode_name((ps_mode)mode));
        ck_assert_str_eq(w->mode, mode_names[mode]);
        ck_assert_uint_eq(w->num_params, 32);
        ck_assert_uint_eq(w->shard_index, 2);
        const ps_layout *l = w->layout;
        ck_assert_ptr_nonnull(l);
        /* 32 keys over 3 shards: [0, 10), [10, 21), [21, 32) */
        static const uint64_t bounds[4] = {0, 10, 21, 32};
        ck_assert_uint_eq(l->nshards, 3);
        for (uint32_t i = 0; i < 3; i++) {
            char endpoint[32];
            snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%u", 7070 + i);
            ck_assert_str_eq(l->shards[i].endpoint, endpoint);
            ck_assert_uint_eq(l->shards[i].key_lo, bounds[i]);
            ck_assert_uint_eq(l->shards[i].key_hi, bounds[i + 1]);
        }
        static const struct {
            const char *name;
            uint32_t ndims;
            uint64_t shape[PS_MAX_DIMS], offset;
        } tensors[] = {
            {"W1", 2, {3, 5, 0, 0}, 0},
            {"b1", 1, {5, 0, 0, 0}, 15},
            {"W2", 2, {5, 2, 0, 0}, 20},
            {"b2", 1, {2, 0, 0, 0}, 30},
        };
        ck_assert_uint_eq(l->ntensors, 4);
        for (uint32_t i = 0; i < 4; i++) {
            ck_assert_str_eq(l->tensors[i].name, tensors[i].name);
            ck_assert_uint_eq(l->tensors[i].ndims, tensors[i].ndims);
            for (int d = 0; d < PS_MAX_DIMS; d++)
                ck_assert_uint_eq(l->tensors[i].shape[d], tensors[i].shape[d]);
            ck_assert_uint_eq(l->tensors[i].offset, tensors[i].offset);
        }
        fx_free(&f);
    }
}
END_TEST

static Suite *engine_suite(void)
{
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("engine");
    tcase_add_test(tc, pull_is_parked_until_round_closes);
    tcase_add_test(tc, ssp_pull_waits_until_the_slowest_clock_is_within_staleness);
    tcase_add_test(tc, ssp_pull_waits_for_a_rank_that_has_not_registered_yet);
    tcase_add_test(tc, ssp_with_staleness_0_waits_like_sync);
    tcase_add_test(tc, ssp_parked_pull_is_released_when_the_slowest_worker_leaves);
    tcase_add_test(tc, staleness_of_applied_pushes_is_reported);
    tcase_add_test(tc, restored_rank_acknowledges_a_push_in_flight_as_duplicate);
    tcase_add_test(tc, evicted_rank_taken_over_by_a_new_worker_is_logged);
    tcase_add_test(tc, evicted_worker_coming_back_is_no_takeover);
    tcase_add_test(tc, status_reports_staleness_and_each_ranks_clock);
    tcase_add_test(tc, status_table_shows_each_ranks_host_loss_and_state);
    tcase_add_test(tc, welcome_says_the_ranks_applied_pushes_and_last_seq);
    tcase_add_test(tc, push_waiting_in_the_open_round_is_not_in_the_rank_state_yet);
    tcase_add_test(tc, silent_worker_is_evicted_and_round_closes_without_it);
    tcase_add_test(tc, evicted_worker_rejoins_at_the_next_round);
    tcase_add_test(tc, quiet_heartbeat_is_answered_only_when_the_worker_heard_nothing);
    tcase_add_test(tc, rank_rejoining_late_trains_its_last_rounds_within_the_schedule);
    tcase_add_test(tc, abort_on_worker_loss_stops_the_job);
    tcase_add_test(tc, final_pull_waits_until_every_worker_is_done);
    tcase_add_test(tc, restored_version_is_where_workers_join);
    tcase_add_test(tc, stop_is_told_to_every_live_worker_and_answers_every_request);
    tcase_add_test(tc, every_worker_told_ends_the_wait);
    tcase_add_test(tc, abort_keeps_its_reason_when_psd_stops);
    tcase_add_test(tc, job_is_complete_only_when_every_rank_said_bye);
    tcase_add_test(tc, silence_during_a_stall_of_psd_is_forgiven);
    tcase_add_test(tc, sync_mean_is_weighted_by_samples);
    tcase_add_test(tc, single_push_round_matches_the_accumulated_round);
    tcase_add_test(tc, retried_push_is_applied_once);
    tcase_add_test(tc, stale_clock_push_is_dropped);
    tcase_add_test(tc, clock_ahead_of_open_round_is_refused);
    tcase_add_test(tc, bye_of_last_missing_worker_closes_round);
    tcase_add_test(tc, round_waits_for_a_worker_that_has_not_registered_yet);
    tcase_add_test(tc, parked_pull_is_answered_when_all_workers_left);
    tcase_add_test(tc, backup_worker_round_closes_without_the_slowest);
    tcase_add_test(tc, deterministic_sum_does_not_depend_on_push_order);
    tcase_add_test(tc, async_push_is_applied_at_once);
    tcase_add_test(tc, async_parked_pull_is_answered_by_the_next_push);
    tcase_add_test(tc, adam_job_pushes_follow_the_adam_rule);
    tcase_add_test(tc, welcome_describes_the_shard_map_and_layout);
    tcase_add_test(tc, most_shards_split_the_keys_end_to_end);
    tcase_add_test(tc, rank_taken_is_refused_with_estate);
    tcase_add_test(tc, retried_hello_gets_the_same_welcome);
    tcase_add_test(tc, too_many_workers_are_refused_with_efull);
    tcase_add_test(tc, status_reports_version_and_live_workers);
    tcase_add_test(tc, wrong_job_is_refused_with_ejob);
    tcase_add_test(tc, other_protocol_version_is_refused_with_eversion);
    tcase_add_test(tc, unknown_worker_is_refused_with_eworker);
    tcase_add_test(tc, key_range_outside_shard_is_refused_with_erange);
    tcase_add_test(tc, decode_error_is_replied_with_codec_sentence);
    tcase_add_test(tc, reply_type_sent_as_request_is_refused_with_etype);
    tcase_add_test(tc, parked_pulls_are_bounded);
    tcase_add_test(tc, refused_requests_leave_theta_and_version_unchanged);
    tcase_add_test(tc, engine_refuses_a_job_it_cannot_serve);
    tcase_add_test(tc, compressed_push_is_decoded_and_applied);
    tcase_add_test(tc, pull_codec_encodes_theta_once_per_version_for_every_worker);
    tcase_add_test(tc, async_push_with_pull_is_answered_at_once_with_theta_after_the_push);
    tcase_add_test(tc, retried_push_with_pull_is_a_duplicate_with_theta_and_applied_once);
    tcase_add_test(tc, sync_push_with_pull_is_acked_then_answered_when_the_round_closes);
    tcase_add_test(tc, sync_push_with_pull_for_a_closed_round_is_dropped_with_theta);
    tcase_add_test(tc, dropped_push_whose_pull_must_wait_is_acked_dropped_then_answered);
    tcase_add_test(tc, ssp_push_with_pull_parks_on_its_pull_clock);
    tcase_add_test(tc, retry_of_a_push_whose_pull_is_parked_only_moves_where_the_pull_is_answered);
    tcase_add_test(tc, push_with_pull_when_too_many_are_parked_is_applied_and_acked_with_efull);
    tcase_add_test(tc, invalid_push_with_pull_gets_one_error_and_no_pull_reply);
    tcase_add_test(tc, welcome_layout_lists_every_shard_and_tensor_and_the_jobs_mode);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(engine_suite());
}
