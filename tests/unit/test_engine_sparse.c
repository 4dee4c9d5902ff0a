/* test_engine_sparse.c — the sparse tables of a shard's engine, driven
 * without sockets as test_engine.c drives the dense θ: the WELCOME's
 * tables, pulls of rows by key, pushes applied at once (async) or summed
 * into the sync round its dense pushes close, retries applied once, scans
 * in pages, the tables' figures, and every refusal. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "engine.h"
#include "job.h"
#include "keys.h"
#include "util.h"

/* The last reply, copied with its payload bytes. */
typedef struct fx {
    ps_job job;
    ps_log log;
    ps_engine *e;
    ps_msg reply;
    char error[PS_ERROR_MSG_MAX];
    ps_layout layout;
    unsigned char payload[8192];
    size_t replies;
} fx;

static int capture_send(void *ctx, const void *identity, size_t identity_len, ps_msg *reply,
                        const void *payload)
{
    (void)identity;
    (void)identity_len;
    fx *f = ctx;
    static unsigned char hdr[PS_HEADER_MAX_BYTES];
    size_t hdr_len = 0;
    ck_assert_int_eq(ps_codec_encode(reply, hdr, sizeof hdr, &hdr_len), 0);
    f->reply = *reply;
    f->reply.payload = NULL;
    f->error[0] = '\0';
    if (reply->type == PS_MSG_ERROR)
        ps_strlcpy(f->error, reply->error, sizeof f->error);
    if (reply->layout != NULL) {
        f->layout = *reply->layout;
        f->reply.layout = &f->layout;
    }
    ck_assert_uint_le(reply->payload_bytes, sizeof f->payload);
    if (reply->payload_bytes > 0)
        memcpy(f->payload, payload, (size_t)reply->payload_bytes);
    f->replies++;
    return 0;
}

/* sparse_logistic (table "w", dim 1) or fm (table "v", dim 1 + factors)
 * under sgd at lr 0.5, zeros, on nservers shards. */
static void job_sparse(ps_job *job, ps_model_type type, ps_mode mode, uint32_t workers,
                       uint32_t nservers)
{
    memset(job, 0, sizeof *job);
    strcpy(job->name, "test-job");
    job->mode = mode;
    job->workers = workers;
    job->nservers = nservers;
    for (uint32_t s = 0; s < nservers; s++)
        snprintf(job->servers[s], sizeof job->servers[s], "tcp://127.0.0.1:%u", 7070 + s);
    job->model.type = type;
    job->model.factors = 2;
    job->model.init_scheme = PS_INIT_ZEROS;
    job->model.init_seed = 1;
    job->optimizer.type = PS_OPTIM_SGD;
    job->optimizer.lr = 0.5;
    job->optimizer.schedule = PS_SCHEDULE_CONSTANT;
    job->sparse.min_count = 1;
    job->log_level = PS_LOG_ERROR;
}

static fx *fx_new(const ps_job *job, uint32_t shard)
{
    fx *f = calloc(1, sizeof *f);
    ck_assert_ptr_nonnull(f);
    f->job = *job;
    f->log.level = PS_LOG_ERROR;
    f->log.prog = "test_engine_sparse";
    ps_error err;
    f->e = ps_engine_new(&f->job, shard, &f->log, &err);
    ck_assert_msg(f->e != NULL, "engine: %s", err.msg);
    return f;
}

static void fx_free(fx **fp)
{
    ps_engine_destroy(&(*fp)->e);
    free(*fp);
    *fp = NULL;
}

static int handle(fx *f, const ps_msg *m)
{
    return ps_engine_handle(f->e, "w", 1, 0, m, NULL, capture_send, f);
}

static void request_init(ps_msg *m, ps_msg_type type, uint32_t worker_id, uint64_t seq)
{
    ps_msg_init(m, type);
    m->job = "test-job";
    m->worker_id = worker_id;
    m->seq = seq;
}

static uint32_t hello(fx *f, int rank)
{
    static ps_msg m;
    request_init(&m, PS_MSG_HELLO, 0, 1);
    m.rank = rank;
    ck_assert_int_eq(handle(f, &m), 0);
    ck_assert_int_eq(f->reply.type, PS_MSG_WELCOME);
    return f->reply.worker_id;
}

static unsigned char frame[8192];

/* A pull of the n sorted keys' rows of table 0 (dim floats each). */
static int pull_rows(fx *f, uint32_t worker_id, uint64_t seq, const uint64_t *keys, size_t n,
                     uint32_t dim)
{
    static ps_msg m;
    size_t kb = 0;
    ck_assert_int_eq(ps_keys_encode(keys, n, frame, sizeof frame, &kb), 0);
    request_init(&m, PS_MSG_PULL, worker_id, seq);
    m.table = 1;
    m.dim = dim;
    m.nkeys = n;
    m.keys_bytes = kb;
    m.payload_bytes = kb;
    m.payload = kb > 0 ? frame : NULL;
    return handle(f, &m);
}

/* A push of rows of table 0: row i is dim copies of g[i]. */
static int push_rows(fx *f, uint32_t worker_id, uint64_t seq, uint64_t clock, uint32_t samples,
                     const uint64_t *keys, size_t n, uint32_t dim, const float *g)
{
    static ps_msg m;
    size_t kb = 0;
    ck_assert_int_eq(ps_keys_encode(keys, n, frame, sizeof frame, &kb), 0);
    for (size_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < dim; j++)
            memcpy(frame + kb + (i * dim + j) * 4, &g[i], 4);
    request_init(&m, PS_MSG_PUSH, worker_id, seq);
    m.clock = clock;
    m.samples = samples;
    m.table = 1;
    m.dim = dim;
    m.nkeys = n;
    m.keys_bytes = kb;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = kb + n * dim * 4;
    m.payload = frame;
    return handle(f, &m);
}

/* A push of rows of table 0 naming the pull of seq keys_of for its n keys
 * (PS_FLAG_KEYS_OF: no keys in the payload): row i is dim copies of g[i]. */
static int push_rows_of(fx *f, uint32_t worker_id, uint64_t seq, uint64_t keys_of, size_t n,
                        uint32_t dim, const float *g)
{
    static ps_msg m;
    for (size_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < dim; j++)
            memcpy(frame + (i * dim + j) * 4, &g[i], 4);
    request_init(&m, PS_MSG_PUSH, worker_id, seq);
    m.flags = PS_FLAG_KEYS_OF;
    m.keys_of = keys_of;
    m.table = 1;
    m.dim = dim;
    m.nkeys = n;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = n * dim * 4;
    m.payload = frame;
    return handle(f, &m);
}

/* A dense push of the bias (θ of one key on shard 0). */
static int push_bias(fx *f, uint32_t worker_id, uint64_t seq, uint64_t clock, uint32_t samples,
                     float g)
{
    static ps_msg m;
    static float gb;
    gb = g;
    request_init(&m, PS_MSG_PUSH, worker_id, seq);
    m.clock = clock;
    m.samples = samples;
    m.key_lo = 0;
    m.key_hi = 1;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = sizeof gb;
    m.payload = &gb;
    return handle(f, &m);
}

static float reply_row(const fx *f, size_t i, uint32_t dim, uint32_t j)
{
    float v;
    memcpy(&v, f->payload + (i * dim + j) * 4, 4);
    return v;
}

static void assert_refused(const fx *f, int code, const char *words)
{
    ck_assert_int_eq(f->reply.type, PS_MSG_ERROR);
    ck_assert_int_eq(f->reply.status, code);
    ck_assert_msg(strstr(f->error, words) != NULL, "\"%s\" does not say \"%s\"", f->error, words);
}

START_TEST(welcome_lists_the_tables_and_a_bias_as_the_only_dense_tensor)
{
    ps_job job;
    job_sparse(&job, PS_MODEL_FM, PS_MODE_ASYNC, 1, 1);
    fx *f = fx_new(&job, 0);
    hello(f, 0);
    ck_assert_ptr_nonnull(f->reply.layout);
    ck_assert_uint_eq(f->layout.ntables, 1);
    ck_assert_str_eq(f->layout.tables[0].name, "v");
    ck_assert_uint_eq(f->layout.tables[0].dim, 3);
    ck_assert_uint_eq(f->layout.ntensors, 1);
    ck_assert_str_eq(f->layout.tensors[0].name, "b");
    ck_assert_uint_eq(f->reply.num_params, 1);
    fx_free(&f);
}
END_TEST

START_TEST(async_rows_are_read_as_initial_and_updated_at_once)
{
    ps_job job;
    job_sparse(&job, PS_MODEL_SPARSE_LOGISTIC, PS_MODE_ASYNC, 1, 1);
    fx *f = fx_new(&job, 0);
    uint32_t id = hello(f, 0);
    const uint64_t keys[] = {7, 1ull << 40, UINT64_MAX};
    ck_assert_int_eq(pull_rows(f, id, 2, keys, 3, 1), 0);
    ck_assert_int_eq(f->reply.type, PS_MSG_PULL_REPLY);
    ck_assert_uint_eq(f->reply.nkeys, 3);
    for (size_t i = 0; i < 3; i++)
        ck_assert_float_eq(reply_row(f, i, 1, 0), 0.0f);
    const float g[] = {1.0f, -2.0f, 0.25f};
    ck_assert_int_eq(push_rows(f, id, 3, 0, 8, keys, 3, 1, g), 0);
    ck_assert_int_eq(f->reply.type, PS_MSG_ACK);
    ck_assert_int_eq(pull_rows(f, id, 4, keys, 3, 1), 0);
    for (size_t i = 0; i < 3; i++) /* sgd: w -= 0.5 g */
        ck_assert_float_eq(reply_row(f, i, 1, 0), -0.5f * g[i]);
    /* a retry of the same push is acknowledged and not applied again */
    ck_assert_int_eq(push_rows(f, id, 3, 0, 8, keys, 3, 1, g), 0);
    ck_assert_int_eq(f->reply.type, PS_MSG_ACK);
    ck_assert_uint_eq(f->reply.flags & PS_ACK_DUPLICATE, PS_ACK_DUPLICATE);
    ck_assert_int_eq(pull_rows(f, id, 6, keys, 3, 1), 0);
    ck_assert_float_eq(reply_row(f, 0, 1, 0), -0.5f);
    size_t n = 0;
    const ps_table_status *st = ps_engine_tables_get(f->e, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(st[0].name, "w");
    ck_assert_uint_eq(st[0].rows, 3);
    ck_assert_uint_eq(st[0].admitted, 3);
    fx_free(&f);
}
END_TEST

/* Two workers push rows (of batches of 1 and 3 samples); the round closes
 * when both dense pushes are in, and each row moves by lr times the sum of
 * its gradients: rows' gradients are sums over examples, and a round is one
 * minibatch of every worker's examples. */
START_TEST(sync_rows_wait_for_the_round_and_take_their_sum)
{
    ps_job job;
    job_sparse(&job, PS_MODEL_SPARSE_LOGISTIC, PS_MODE_SYNC, 2, 1);
    fx *f = fx_new(&job, 0);
    uint32_t a = hello(f, 0), b = hello(f, 1);
    const uint64_t ka[] = {10, 20}, kb[] = {20, 30};
    const float ga[] = {4.0f, 4.0f}, gb[] = {8.0f, 8.0f};
    ck_assert_int_eq(push_rows(f, a, 2, 0, 1, ka, 2, 1, ga), 0);
    ck_assert_int_eq(f->reply.type, PS_MSG_ACK);
    ck_assert_int_eq(push_rows(f, b, 2, 0, 3, kb, 2, 1, gb), 0);
    const uint64_t all[] = {10, 20, 30};
    ck_assert_int_eq(pull_rows(f, a, 3, all, 3, 1), 0);
    for (size_t i = 0; i < 3; i++) /* the round is open: nothing applied */
        ck_assert_float_eq(reply_row(f, i, 1, 0), 0.0f);
    ck_assert_int_eq(push_bias(f, a, 4, 0, 1, 0.0f), 0);
    ck_assert_uint_eq(ps_engine_version(f->e), 0);
    ck_assert_int_eq(push_bias(f, b, 3, 0, 3, 0.0f), 0);
    ck_assert_uint_eq(ps_engine_version(f->e), 1);
    ck_assert_int_eq(pull_rows(f, a, 5, all, 3, 1), 0);
    ck_assert_float_eq(reply_row(f, 0, 1, 0), -0.5f * 4.0f);
    ck_assert_float_eq(reply_row(f, 1, 1, 0), -0.5f * (4.0f + 8.0f));
    ck_assert_float_eq(reply_row(f, 2, 1, 0), -0.5f * 8.0f);
    /* a push of rows for the round just closed is dropped, one for a round
     * not open yet refused */
    ck_assert_int_eq(push_rows(f, a, 6, 0, 1, ka, 2, 1, ga), 0);
    ck_assert_uint_eq(f->reply.flags & PS_ACK_DROPPED, PS_ACK_DROPPED);
    push_rows(f, a, 7, 5, 1, ka, 2, 1, ga);
    assert_refused(f, PS_ECLOCK, "round 1 is open");
    fx_free(&f);
}
END_TEST

START_TEST(bad_requests_of_rows_are_refused_and_change_nothing)
{
    ps_job job;
    job_sparse(&job, PS_MODEL_SPARSE_LOGISTIC, PS_MODE_ASYNC, 1, 2);
    fx *f = fx_new(&job, 1); /* shard 1 of 2: keys from 2^63 */
    uint32_t id = hello(f, 0);
    const uint64_t low[] = {5, 1ull << 63}, high[] = {1ull << 63, (1ull << 63) + 1};
    const float g[] = {1.0f, 1.0f};
    push_rows(f, id, 2, 0, 1, low, 2, 1, g);
    assert_refused(f, PS_ERANGE, "outside shard 1");
    pull_rows(f, id, 3, low, 2, 1);
    assert_refused(f, PS_ERANGE, "outside shard 1");
    push_rows(f, id, 4, 0, 1, high, 2, 2, g); /* rows of 2 floats in a table of 1 */
    assert_refused(f, PS_EPAYLOAD, "rows of 1 floats, not 2");
    static ps_msg m;
    request_init(&m, PS_MSG_PULL, id, 5);
    m.table = 2; /* a second table the model does not have */
    m.dim = 1;
    handle(f, &m);
    assert_refused(f, PS_ERANGE, "has 1 sparse tables");
    pull_rows(f, 99, 6, high, 2, 1);
    assert_refused(f, PS_EWORKER, "not registered");
    size_t n = 0;
    const ps_table_status *st = ps_engine_tables_get(f->e, &n);
    ck_assert_uint_eq(st[0].rows, 0);
    /* after all that, a good push is applied (its seq is after the
     * refused ones: they were never taken as pushed) */
    ck_assert_int_eq(push_rows(f, id, 3, 0, 1, high, 2, 1, g), 0);
    ck_assert_int_eq(f->reply.type, PS_MSG_ACK);
    ck_assert_uint_eq(f->reply.flags, 0);
    st = ps_engine_tables_get(f->e, &n);
    ck_assert_uint_eq(st[0].rows, 2);
    fx_free(&f);
}
END_TEST

/* A pull of enough keys keeps them (its reply says so): the push that
 * names it carries rows only and updates the keys' rows, as the same push
 * with its keys would. A push naming a pull psd no longer holds (another
 * came after it, or a sync job, which keeps none) or with another count is
 * refused and changes nothing; a retry of one applied is a duplicate. */
START_TEST(push_naming_its_pull_updates_the_pulled_rows_or_is_refused)
{
    enum { N = 100 };
    static uint64_t keys[N];
    static float g[N];
    for (size_t i = 0; i < N; i++) {
        keys[i] = (i + 1) * (UINT64_MAX / (N + 1));
        g[i] = (float)(i % 5) - 2.0f;
    }
    ps_job job;
    job_sparse(&job, PS_MODEL_SPARSE_LOGISTIC, PS_MODE_ASYNC, 1, 1);
    fx *f = fx_new(&job, 0);
    uint32_t id = hello(f, 0);
    ck_assert_int_eq(pull_rows(f, id, 2, keys, N, 1), 0);
    ck_assert_int_eq(f->reply.type, PS_MSG_PULL_REPLY);
    ck_assert_uint_eq(f->reply.flags & PS_FLAG_KEYS_KEPT, PS_FLAG_KEYS_KEPT);
    ck_assert_int_eq(push_rows_of(f, id, 3, 2, N, 1, g), 0);
    ck_assert_int_eq(f->reply.type, PS_MSG_ACK);
    ck_assert_uint_eq(f->reply.flags, 0);
    ck_assert_int_eq(pull_rows(f, id, 4, keys, N, 1), 0);
    for (size_t i = 0; i < N; i++) /* sgd: w -= 0.5 g */
        ck_assert_float_eq(reply_row(f, i, 1, 0), -0.5f * g[i]);
    push_rows_of(f, id, 5, 2, N, 1, g); /* pull 4 came after pull 2 */
    assert_refused(f, PS_ESTATE, "no longer holds the 100 keys of pull 2");
    push_rows_of(f, id, 5, 4, N - 1, 1, g); /* pull 4 had 100 keys */
    assert_refused(f, PS_ESTATE, "no longer holds the 99 keys of pull 4");
    ck_assert_int_eq(push_rows_of(f, id, 3, 2, N, 1, g), 0); /* push 3 again */
    ck_assert_uint_eq(f->reply.flags & PS_ACK_DUPLICATE, PS_ACK_DUPLICATE);
    ck_assert_int_eq(pull_rows(f, id, 6, keys, N, 1), 0);
    for (size_t i = 0; i < N; i++) /* nothing changed */
        ck_assert_float_eq(reply_row(f, i, 1, 0), -0.5f * g[i]);
    /* a push after the refusals, naming the last pull, is applied */
    ck_assert_int_eq(push_rows_of(f, id, 7, 6, N, 1, g), 0);
    ck_assert_int_eq(f->reply.type, PS_MSG_ACK);
    ck_assert_int_eq(pull_rows(f, id, 8, keys, 10, 1), 0); /* too few keys to keep */
    ck_assert_uint_eq(f->reply.flags & PS_FLAG_KEYS_KEPT, 0);
    ck_assert_int_eq(pull_rows(f, id, 9, keys, N, 1), 0);
    for (size_t i = 0; i < N; i++)
        ck_assert_float_eq(reply_row(f, i, 1, 0), -1.0f * g[i]);
    fx_free(&f);
    /* sync rounds sum pushes apart from the table: nothing is kept */
    job_sparse(&job, PS_MODEL_SPARSE_LOGISTIC, PS_MODE_SYNC, 1, 1);
    f = fx_new(&job, 0);
    id = hello(f, 0);
    ck_assert_int_eq(pull_rows(f, id, 2, keys, N, 1), 0);
    ck_assert_uint_eq(f->reply.flags & PS_FLAG_KEYS_KEPT, 0);
    push_rows_of(f, id, 3, 2, N, 1, g);
    assert_refused(f, PS_ESTATE, "no longer holds");
    fx_free(&f);
}
END_TEST

/* A scan pages through every live row once, keys as 8-byte words. */
START_TEST(scan_pages_through_every_row_once)
{
    ps_job job;
    job_sparse(&job, PS_MODEL_FM, PS_MODE_ASYNC, 1, 1);
    fx *f = fx_new(&job, 0);
    uint32_t id = hello(f, 0);
    enum { N = 100 };
    uint64_t keys[N];
    float g[N];
    for (size_t i = 0; i < N; i++) {
        keys[i] = 1000 + i * 7919;
        g[i] = (float)i;
    }
    ck_assert_int_eq(push_rows(f, id, 2, 0, 1, keys, N, 3, g), 0);
    bool seen[N] = {false};
    uint64_t cursor = 0;
    size_t total = 0, pages = 0;
    static ps_msg m;
    do {
        request_init(&m, PS_MSG_PULL, id, 3 + pages);
        m.table = 1;
        m.dim = 3;
        m.flags = PS_FLAG_SCAN;
        m.key_lo = cursor;
        m.nkeys = 30;
        ck_assert_int_eq(handle(f, &m), 0);
        ck_assert_int_eq(f->reply.type, PS_MSG_PULL_REPLY);
        ck_assert_uint_le(f->reply.nkeys, 30);
        size_t n = (size_t)f->reply.nkeys;
        for (size_t i = 0; i < n; i++) {
            uint64_t k;
            memcpy(&k, f->payload + i * 8, 8);
            size_t at = (size_t)(k - 1000) / 7919;
            ck_assert_uint_lt(at, N);
            ck_assert_uint_eq(keys[at], k);
            ck_assert(!seen[at]);
            seen[at] = true;
            float w;
            memcpy(&w, f->payload + n * 8 + i * 3 * 4, 4);
            ck_assert_float_eq(w, -0.5f * g[at]);
        }
        total += n;
        cursor = f->reply.key_hi;
        pages++;
    } while (cursor != 0 && pages < 10);
    ck_assert_uint_eq(total, N);
    ck_assert_uint_ge(pages, 4);
    fx_free(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine_sparse");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, welcome_lists_the_tables_and_a_bias_as_the_only_dense_tensor);
    tcase_add_test(tc, async_rows_are_read_as_initial_and_updated_at_once);
    tcase_add_test(tc, sync_rows_wait_for_the_round_and_take_their_sum);
    tcase_add_test(tc, bad_requests_of_rows_are_refused_and_change_nothing);
    tcase_add_test(tc, scan_pages_through_every_row_once);
    tcase_add_test(tc, push_naming_its_pull_updates_the_pulled_rows_or_is_refused);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
