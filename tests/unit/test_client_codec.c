/* test_client_codec.c — client_codec.c on a client built by hand (two
 * shards, keys [0, 5) and [5, 10)): which push codecs and ratios open,
 * each shard's slice encoded in its place, error feedback carrying what
 * int8 dropped into the next push, a NaN refused, a shard on shared memory
 * left alone, and a compressed pull decoded at its shard's offset. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client_codec.h"
#include "client_impl.h"

#define P 10 /* shard 0: [0, 5), shard 1: [5, 10) */

/* A client as ps_client_open leaves it for the codec: two shards, their
 * keys, the number of parameters; no sockets. */
static ps_client *client_new(void)
{
    ps_client *c = calloc(1, sizeof *c);
    ck_assert_ptr_nonnull(c);
    c->nshards = 2;
    c->shards = calloc(c->nshards, sizeof *c->shards);
    ck_assert_ptr_nonnull(c->shards);
    c->num_params = P;
    c->shards[0].key_lo = 0;
    c->shards[0].key_hi = 5;
    c->shards[1].key_lo = 5;
    c->shards[1].key_hi = 10;
    return c;
}

static void client_free(ps_client **cp)
{
    ps_client *c = *cp;
    free(c->enc);
    free(c->residual);
    free(c->scratch);
    free(c->theta_buf);
    free(c->shards);
    free(c);
    *cp = NULL;
}

static ps_client_opts opts_for(const char *codec, double ratio, int feedback)
{
    ps_client_opts o = {.size = sizeof(ps_client_opts),
                        .push_compression = codec,
                        .push_topk_ratio = ratio,
                        .push_error_feedback = feedback};
    return o;
}

/* int8's scale for n values (one block): the largest magnitude / 127. */
static float int8_scale(const float *x, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m / 127.0f;
}

/* Shard i's encoded slice, decoded into out (5 floats). */
static void decode_slice(const ps_client *c, size_t i, float *out)
{
    const shard *s = &c->shards[i];
    c->push_ops->decode(c->enc + s->enc_off, s->enc_bytes, out, (size_t)(s->key_hi - s->key_lo));
}

START_TEST(unknown_codec_is_refused_with_the_names_it_knows)
{
    ps_client *c = client_new();
    ps_client_opts o = opts_for("zstd", 0, 0);
    char why[256] = "";
    ck_assert_int_eq(ps_client_codec_init(c, &o, why, sizeof why), PS_EINVAL);
    ck_assert_str_eq(why, "push compression \"zstd\" is not none, fp16, bf16, int8 or topk");
    ck_assert_ptr_null(c->push_ops);
    ck_assert_ptr_null(c->enc);
    client_free(&c);
}
END_TEST

START_TEST(topk_ratio_outside_zero_to_one_is_refused)
{
    static const struct {
        double ratio;
        const char *why;
    } bad[] = {
        {0, "push topk ratio must be in (0, 1], got 0"},
        {-0.25, "push topk ratio must be in (0, 1], got -0.25"},
        {1.5, "push topk ratio must be in (0, 1], got 1.5"},
        {NAN, "push topk ratio must be in (0, 1], got nan"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ps_client *c = client_new();
        ps_client_opts o = opts_for("topk", bad[k].ratio, 1);
        char why[256] = "";
        ck_assert_int_eq(ps_client_codec_init(c, &o, why, sizeof why), PS_EINVAL);
        ck_assert_str_eq(why, bad[k].why);
        ck_assert_ptr_null(c->enc);
        ck_assert_ptr_null(c->residual);
        client_free(&c);
    }
    /* the bound itself is a ratio */
    ps_client *c = client_new();
    ps_client_opts o = opts_for("topk", 1.0, 0);
    char why[256] = "";
    ck_assert_int_eq(ps_client_codec_init(c, &o, why, sizeof why), 0);
    ck_assert_uint_eq(c->shards[0].enc_k, 5);
    client_free(&c);
}
END_TEST

START_TEST(none_allocates_nothing_and_encodes_nothing)
{
    const char *names[] = {NULL, "none"};
    for (size_t k = 0; k < 2; k++) {
        ps_client *c = client_new();
        ps_client_opts o = opts_for(names[k], 0, 1);
        char why[256] = "";
        ck_assert_int_eq(ps_client_codec_init(c, &o, why, sizeof why), 0);
        ck_assert_str_eq(why, "");
        ck_assert_ptr_null(c->push_ops);
        ck_assert_ptr_null(c->enc);
        ck_assert_ptr_null(c->residual);
        ck_assert_ptr_null(c->scratch);
        float g[P] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
        c->shards[0].enc_ready = c->shards[1].enc_ready = true; /* left from a push */
        ck_assert_int_eq(ps_client_codec_encode(c, g, false), 0);
        ck_assert(!c->shards[0].enc_ready);
        ck_assert(!c->shards[1].enc_ready);
        client_free(&c);
    }
}
END_TEST

START_TEST(int8_encodes_each_shards_slice_in_its_place)
{
    ps_client *c = client_new();
    ps_client_opts o = opts_for("int8", 0, 0);
    char why[256] = "";
    ck_assert_int_eq(ps_client_codec_init(c, &o, why, sizeof why), 0);
    const ps_compress_ops *int8 = ps_compress_ops_get(PS_COMPRESS_INT8);
    ck_assert_ptr_eq(c->push_ops, int8);
    ck_assert_ptr_null(c->residual); /* no error feedback asked */
    size_t bytes = int8->bytes(5, 0);
    ck_assert_uint_eq(bytes, 9); /* one scale and 5 values */
    ck_assert_uint_eq(c->shards[0].enc_off, 0);
    ck_assert_uint_eq(c->shards[1].enc_off, 16); /* the first slice rounded up to 8 bytes */
    float g[P] = {0.5f, -1.0f, 0.03f, 0.77f, -0.31f, 100.0f, -3.5f, 42.0f, 0.0f, 7.25f};
    ck_assert_int_eq(ps_client_codec_encode(c, g, false), 0);
    for (size_t i = 0; i < 2; i++) {
        const shard *s = &c->shards[i];
        ck_assert(s->enc_ready);
        ck_assert_uint_eq(s->enc_bytes, bytes);
        /* the same bytes the codec makes of the slice on its own */
        unsigned char want[16];
        ck_assert_int_eq(int8->encode(g + s->key_lo, 5, 0, want, NULL), 0);
        ck_assert_mem_eq(c->enc + s->enc_off, want, bytes);
        float d[5];
        decode_slice(c, i, d);
        float half = int8_scale(g + s->key_lo, 5) / 2;
        for (size_t k = 0; k < 5; k++)
            ck_assert_msg(fabsf(d[k] - g[s->key_lo + k]) <= half * (1 + 1e-6f),
                          "key %zu: %g decodes to %g, more than %g away", (size_t)s->key_lo + k,
                          (double)g[s->key_lo + k], (double)d[k], (double)half);
    }
    client_free(&c);
}
END_TEST

START_TEST(error_feedback_adds_what_int8_dropped_to_the_next_push)
{
    ps_client *c = client_new();
    ps_client_opts o = opts_for("int8", 0, 1);
    char why[256] = "";
    ck_assert_int_eq(ps_client_codec_init(c, &o, why, sizeof why), 0);
    ck_assert_ptr_nonnull(c->residual);
    /* key 1 (0.003) is under half of int8's step (1/127): dropped alone */
    float g[P] = {1.0f, 0.003f, -0.5f, 0.25f, 0.0f, 2.0f, -2.0f, 0.5f, 0.01f, 1.0f};
    float d1[P], d2[P], err1_max = 0;
    ck_assert_int_eq(ps_client_codec_encode(c, g, false), 0);
    decode_slice(c, 0, d1);
    decode_slice(c, 1, d1 + 5);
    for (size_t k = 0; k < P; k++) {
        ck_assert_msg(c->residual[k] == g[k] - d1[k], "key %zu: residual %g, dropped %g", k,
                      (double)c->residual[k], (double)(g[k] - d1[k]));
        err1_max = fabsf(c->residual[k]) > err1_max ? fabsf(c->residual[k]) : err1_max;
    }
    ck_assert(d1[1] == 0.0f);
    ck_assert(c->residual[1] == 0.003f);
    /* the same gradient again: key 1 now carries 0.006, which int8 sends */
    ck_assert_int_eq(ps_client_codec_encode(c, g, false), 0);
    ck_assert(c->shards[0].enc_ready && c->shards[1].enc_ready);
    decode_slice(c, 0, d2);
    decode_slice(c, 1, d2 + 5);
    ck_assert(d2[1] > 0.0f);
    for (size_t k = 0; k < P; k++) {
        float off = (g[k] + g[k]) - (d1[k] + d2[k]);
        ck_assert_msg(fabsf(off) <= err1_max, "key %zu: two pushes sum %g off, more than %g", k,
                      (double)off, (double)err1_max);
        ck_assert_msg(fabsf(off - c->residual[k]) <= 1e-6f, "key %zu: residual %g, not %g", k,
                      (double)c->residual[k], (double)off);
    }
    client_free(&c);
}
END_TEST

START_TEST(gradient_with_nan_is_refused_naming_the_shard_and_codec)
{
    ps_client *c = client_new();
    ps_client_opts o = opts_for("int8", 0, 1);
    char why[256] = "";
    ck_assert_int_eq(ps_client_codec_init(c, &o, why, sizeof why), 0);
    float g[P] = {1, 2, 3, 4, 5, 6, 7, NAN, 9, 10};
    c->residual[1] = 0.003f; /* what an earlier push dropped, kept for the next */
    ck_assert_int_eq(ps_client_codec_encode(c, g, false), PS_EINVAL);
    ck_assert(c->residual[1] == 0.003f); /* shard 0 was not encoded either */
    ck_assert_str_eq(c->last_error, "push: the gradient for shard 1 holds a NaN or an "
                                    "infinity: it has no int8 encoding");
    ck_assert(!c->shards[1].enc_ready);
    g[7] = 8;
    g[2] = -INFINITY;
    ck_assert_int_eq(ps_client_codec_encode(c, g, false), PS_EINVAL);
    ck_assert_str_eq(c->last_error, "push: the gradient for shard 0 holds a NaN or an "
                                    "infinity: it has no int8 encoding");
    ck_assert(!c->shards[0].enc_ready);
    ck_assert(!c->shards[1].enc_ready);
    client_free(&c);
}
END_TEST

START_TEST(shard_on_shared_memory_is_not_encoded)
{
    ps_client *c = client_new();
    ps_client_opts o = opts_for("int8", 0, 1);
    char why[256] = "";
    ck_assert_int_eq(ps_client_codec_init(c, &o, why, sizeof why), 0);
    c->shards[0].shm_on = true;
    float g[P] = {0.001f, 2, 3, 4, 5, 6, 7, 8, 9, 0.001f};
    ck_assert_int_eq(ps_client_codec_encode(c, g, false), 0);
    ck_assert(!c->shards[0].enc_ready);
    ck_assert(c->shards[1].enc_ready);
    for (size_t k = 0; k < 5; k++) /* float32 through the segment: nothing dropped */
        ck_assert(c->residual[k] == 0.0f);
    ck_assert(c->residual[9] != 0.0f); /* 0.001 next to 9 is below int8's step */
    client_free(&c);
}
END_TEST

START_TEST(compressed_pull_is_decoded_at_the_shards_offset)
{
    ps_client *c = client_new();
    const ps_compress_ops *fp16 = ps_compress_ops_get(PS_COMPRESS_FP16);
    const float theta1[5] = {0.5f, -1.25f, 3.0f, 0.125f, 1024.0f}; /* exact in fp16 */
    unsigned char payload[16];
    size_t bytes = fp16->bytes(5, 0);
    ck_assert_uint_eq(bytes, 10);
    ck_assert_int_eq(fp16->encode(theta1, 5, 0, payload, NULL), 0);
    ps_msg m;
    ps_msg_init(&m, PS_MSG_PULL_REPLY);
    m.encoding = fp16->encoding;
    m.key_lo = 5;
    m.key_hi = 10;
    m.payload = payload;
    m.payload_bytes = bytes;
    m.model_version = 7;
    float theta[P];
    for (size_t k = 0; k < P; k++)
        theta[k] = -1;
    op o = {.type = PS_MSG_PULL, .theta = theta, .view_out = theta};
    uint64_t version = 9;
    char why[256] = "";
    ck_assert_int_eq(ps_client_codec_pull_accept(c, &o, 1, &m, &version, why, sizeof why), 0);
    for (size_t k = 0; k < 5; k++) {
        ck_assert(theta[k] == -1.0f); /* shard 0's keys untouched */
        ck_assert(theta[5 + k] == theta1[k]);
    }
    ck_assert_uint_eq(version, 7);
    ck_assert_uint_eq(c->shards[1].theta_version, 7);
    ck_assert_ptr_null(o.view_out);
    /* a newer reply leaves the smaller version */
    m.model_version = 8;
    ck_assert_int_eq(ps_client_codec_pull_accept(c, &o, 1, &m, &version, why, sizeof why), 0);
    ck_assert_uint_eq(version, 7);
    ck_assert_uint_eq(c->shards[1].theta_version, 8);
    /* no destination (a view): the client's own buffer */
    op v = {.type = PS_MSG_PULL, .view = true};
    ck_assert_int_eq(ps_client_codec_pull_accept(c, &v, 1, &m, &version, why, sizeof why), 0);
    ck_assert_ptr_nonnull(c->theta_buf);
    ck_assert_ptr_eq(v.theta, c->theta_buf);
    ck_assert(c->theta_buf[9] == 1024.0f);
    ck_assert_str_eq(why, "");
    client_free(&c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("client_codec");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, unknown_codec_is_refused_with_the_names_it_knows);
    tcase_add_test(tc, topk_ratio_outside_zero_to_one_is_refused);
    tcase_add_test(tc, none_allocates_nothing_and_encodes_nothing);
    tcase_add_test(tc, int8_encodes_each_shards_slice_in_its_place);
    tcase_add_test(tc, error_feedback_adds_what_int8_dropped_to_the_next_push);
    tcase_add_test(tc, gradient_with_nan_is_refused_naming_the_shard_and_codec);
    tcase_add_test(tc, shard_on_shared_memory_is_not_encoded);
    tcase_add_test(tc, compressed_pull_is_decoded_at_the_shards_offset);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
