/* test_compress.c — the codecs of compress.h: each against a scalar
 * reference on edge values (±0, subnormals, values past the fp16 range,
 * ties), NaN and infinity refused, error feedback, and every malformed
 * payload refused by validate and by the wire codec. The vector loops
 * against the portable ones: test_compress_simd.c. */
#include <check.h>

#include "check_main.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "compress.h"
#include "compress_edges.h"

/* The value an fp16 bit pattern stands for, computed from its definition. */
static double f16_value(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

/* The reference: the fp16 nearest to x (ties to even mantissa), saturated
 * at 65504, found by search over all finite halves of x's sign. */
static uint16_t f16_reference(float x)
{
    uint16_t sign = signbit(x) ? 0x8000 : 0, best = sign;
    double ax = fabs((double)x), best_d = INFINITY;
    if (ax >= 65504.0)
        return (uint16_t)(sign | 0x7bff);
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double d = fabs(f16_value((uint16_t)h) - ax);
        if (d < best_d || (d == best_d && (h & 1) == 0)) {
            best_d = d;
            best = (uint16_t)(sign | h);
        }
    }
    return best;
}

START_TEST(fp16_rounds_to_nearest_even_and_saturates_like_the_reference)
{
    static float x[N];
    static uint16_t out[N];
    fill_edges(x, N);
    const ps_compress_ops *ops = ps_compress_ops_get(PS_COMPRESS_FP16);
    ck_assert_int_eq(ops->bytes(N, 0), 2 * N);
    ck_assert_int_eq(ops->encode(x, N, 0, out, NULL), 0);
    for (size_t i = 0; i < 64; i++)
        ck_assert_msg(out[i] == f16_reference(x[i]), "x[%zu] = %a: got %04x, want %04x", i,
                      (double)x[i], out[i], f16_reference(x[i]));
    ck_assert_uint_eq(out[0], 0x0000);
    ck_assert_uint_eq(out[1], 0x8000); /* -0 keeps its sign */
    ck_assert_uint_eq(out[7], 0x7bff); /* 65520 saturates to 65504, not infinity */
    ck_assert_uint_eq(out[8], 0x7bff);
    ck_assert_uint_eq(out[19], 0x3c00); /* 1 + 2^-11: a tie, to even */
    ck_assert_uint_eq(out[20], 0x3c02); /* 1 + 3·2^-11: a tie, to even */
    static float back[N];
    ops->decode(out, sizeof out, back, N);
    for (size_t i = 0; i < N; i++)
        ck_assert_float_eq((float)f16_value(out[i]), back[i]);
}
END_TEST

START_TEST(bf16_rounds_to_nearest_even_and_saturates)
{
    const float x[] = {1.0f + 0x1p-8f, 1.0f + 0x3p-8f, -0.0f, f32(1), FLT_MAX, 3.0f};
    uint16_t out[6];
    const ps_compress_ops *ops = ps_compress_ops_get(PS_COMPRESS_BF16);
    ck_assert_int_eq(ops->encode(x, 6, 0, out, NULL), 0);
    ck_assert_uint_eq(out[0], 0x3f80); /* tie to even */
    ck_assert_uint_eq(out[1], 0x3f82); /* tie to even, upwards */
    ck_assert_uint_eq(out[2], 0x8000);
    ck_assert_uint_eq(out[3], 0x0000); /* the smallest subnormal rounds to 0 */
    ck_assert_uint_eq(out[4], 0x7f7f); /* saturates, no infinity */
    ck_assert_uint_eq(out[5], 0x4040);
}
END_TEST

START_TEST(int8_error_is_within_half_a_scale_of_each_block)
{
    static float x[N], back[N];
    static unsigned char out[N + 64];
    fill_edges(x, N);
    for (size_t i = 0; i < 40; i++) /* keep the first block's scale sane */
        x[i] = (float)i * 0.01f - 0.2f;
    for (size_t i = 3 * PS_INT8_BLOCK; i < 4 * PS_INT8_BLOCK; i++)
        x[i] = 1e-31f; /* a tiny block: sent as zeros */
    const ps_compress_ops *ops = ps_compress_ops_get(PS_COMPRESS_INT8);
    size_t bytes = ops->bytes(N, 0);
    ck_assert_uint_eq(bytes, 5 * sizeof(float) + N);
    ck_assert_int_eq(ops->encode(x, N, 0, out, NULL), 0);
    ck_assert_int_eq(ops->validate(out, bytes, N, NULL), 0);
    ops->decode(out, bytes, back, N);
    for (size_t b = 0; b < 5; b++) {
        float amax = 0;
        size_t hi = (b + 1) * PS_INT8_BLOCK < N ? (b + 1) * PS_INT8_BLOCK : N;
        for (size_t i = b * PS_INT8_BLOCK; i < hi; i++)
            amax = fmaxf(amax, fabsf(x[i]));
        float bound = amax < PS_INT8_TINY ? amax : amax / 127.0f * 0.5f * 1.0001f;
        for (size_t i = b * PS_INT8_BLOCK; i < hi; i++)
            ck_assert_msg(fabsf(back[i] - x[i]) <= bound, "x[%zu] = %g came back %g (bound %g)", i,
                          (double)x[i], (double)back[i], (double)bound);
    }
    ck_assert_float_eq(back[3 * PS_INT8_BLOCK], 0.0f);
}
END_TEST

static int abs_desc(const void *a, const void *b)
{
    float x = fabsf(*(const float *)a), y = fabsf(*(const float *)b);
    return x < y ? 1 : x > y ? -1 : 0;
}

/* topk by the definition: the k-th largest magnitude t from a sort, every
 * entry above t and the first of those equal to t, in index order. */
static void topk_by_sort(const float *x, size_t n, size_t k, uint32_t *idx, float *val)
{
    float *s = malloc(n * sizeof *s);
    memcpy(s, x, n * sizeof *s);
    qsort(s, n, sizeof *s, abs_desc);
    float t = fabsf(s[k - 1]);
    size_t above = 0;
    for (size_t i = 0; i < n; i++)
        above += fabsf(x[i]) > t;
    size_t ties = k - above, j = 0;
    for (size_t i = 0; i < n && j < k; i++) {
        float a = fabsf(x[i]);
        if (a > t || (a == t && ties > 0)) {
            ties -= !(a > t);
            idx[j] = (uint32_t)i;
            val[j++] = x[i];
        }
    }
    free(s);
}

START_TEST(topk_of_big_vectors_is_exactly_the_sorted_selection)
{
    /* big enough for the sampled floor; values at random, few distinct
     * (ties at the threshold), mostly zeros, in order and reversed, and
     * lengths that end in a part of a block */
    static const size_t sizes[] = {150001, 262144, 300017};
    const ps_compress_ops *ops = ps_compress_ops_get(PS_COMPRESS_TOPK);
    uint64_t r = 5;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int kind = 0; kind < 5; kind++)
            for (int ki = 0; ki < 3; ki++) {
                size_t n = sizes[si], k = ki == 0 ? 1 : ki == 1 ? n / 100 : n / 9;
                float *x = malloc(n * sizeof *x), *scratch = malloc(n * sizeof *scratch);
                unsigned char *out = malloc(ops->bytes(n, k));
                uint32_t *wi = malloc(k * sizeof *wi);
                float *wv = malloc(k * sizeof *wv);
                for (size_t i = 0; i < n; i++) {
                    r = r * 6364136223846793005ull + 1442695040888963407ull;
                    float u = (float)(r >> 40) / (float)(1 << 24) - 0.5f;
                    x[i] = kind == 0   ? u
                           : kind == 1 ? (float)((int)(u * 16.0f)) / 4.0f
                           : kind == 2 ? ((r >> 20) % 50 == 0 ? u : 0.0f)
                           : kind == 3 ? (float)i * 1e-6f
                                       : -(float)(n - i) * 1e-6f;
                }
                ck_assert_int_eq(ops->encode(x, n, k, out, scratch), 0);
                topk_by_sort(x, n, k, wi, wv);
                ck_assert_mem_eq(out, wi, k * sizeof *wi);
                ck_assert_mem_eq(out + k * sizeof *wi, wv, k * sizeof *wv);
                free(x);
                free(scratch);
                free(out);
                free(wi);
                free(wv);
            }
}
END_TEST

START_TEST(topk_sends_the_largest_magnitudes_in_index_order)
{
    const float x[] = {0.5f, -3.0f, 0.0f, 2.0f, -2.0f, 0.1f, 2.0f, 7.0f};
    float scratch[8], back[8];
    unsigned char out[64];
    const ps_compress_ops *ops = ps_compress_ops_get(PS_COMPRESS_TOPK);
    size_t k = ps_compress_topk_k(8, 0.5);
    ck_assert_uint_eq(k, 4);
    ck_assert_uint_eq(ops->bytes(8, k), 32);
    ck_assert_int_eq(ops->encode(x, 8, k, out, scratch), 0);
    uint32_t idx[4];
    memcpy(idx, out, sizeof idx);
    /* 7, -3, then two of the three of magnitude 2: the lowest indices */
    ck_assert_uint_eq(idx[0], 1);
    ck_assert_uint_eq(idx[1], 3);
    ck_assert_uint_eq(idx[2], 4);
    ck_assert_uint_eq(idx[3], 7);
    ck_assert_int_eq(ops->validate(out, 32, 8, NULL), 0);
    ops->decode(out, 32, back, 8);
    const float want[] = {0, -3.0f, 0, 2.0f, -2.0f, 0, 0, 7.0f};
    ck_assert_mem_eq(back, want, sizeof want);
    ck_assert_uint_eq(ps_compress_topk_k(1000, 0.01), 10);
    ck_assert_uint_eq(ps_compress_topk_k(10, 0.01), 1);
    ck_assert_uint_eq(ps_compress_topk_k(0, 0.01), 0);
}
END_TEST

START_TEST(every_encoder_refuses_nan_and_infinity)
{
    static float x[N], scratch[N];
    static unsigned char out[8 * N];
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int t = 0; t < PS_COMPRESS_COUNT; t++) {
        const ps_compress_ops *ops = ps_compress_ops_get((ps_compress_type)t);
        for (size_t b = 0; b < 3; b++) {
            for (size_t at = 0; at < N; at += 511) { /* in a vector loop and in the tail */
                for (size_t i = 0; i < N; i++)
                    x[i] = (float)i;
                x[at] = bad[b];
                ck_assert_msg(ops->encode(x, N, 10, out, scratch) == PS_EINVAL,
                              "%s encoded %g at %zu", ops->name, (double)bad[b], at);
            }
        }
    }
}
END_TEST

START_TEST(error_feedback_sends_what_was_dropped_later)
{
    /* topk 1 of 4: each push sends the largest of gradient + residual; over
     * pushes the sums of what was sent and what was given differ by exactly
     * the residual */
    const ps_compress_ops *ops = ps_compress_ops_get(PS_COMPRESS_TOPK);
    const float g[4] = {1.0f, 0.5f, 0.25f, -0.75f};
    float residual[4] = {0}, scratch[4], sent[4] = {0}, back[4];
    unsigned char out[8];
    for (int step = 0; step < 8; step++) {
        ck_assert_int_eq(ps_compress_encode_ef(ops, g, residual, 4, 1, out, scratch), 0);
        ops->decode(out, 8, back, 4);
        for (int i = 0; i < 4; i++)
            sent[i] += back[i];
    }
    for (int i = 0; i < 4; i++) {
        ck_assert_float_eq_tol(sent[i] + residual[i], 8 * g[i], 1e-5);
        ck_assert_msg(sent[i] != 0.0f, "entry %d was never sent", i);
    }
    /* without feedback the small entries would never be sent */
    float nan_g[4] = {1, NAN, 0, 0};
    ck_assert_int_eq(ps_compress_encode_ef(ops, nan_g, residual, 4, 1, out, scratch), PS_EINVAL);
    ck_assert_float_eq(residual[0], 0.0f);
}
END_TEST

START_TEST(validate_refuses_payloads_that_do_not_fit_the_keys)
{
    ps_error err;
    unsigned char buf[64] = {0};
    const ps_compress_ops *f16 = ps_compress_ops_get(PS_COMPRESS_FP16);
    const ps_compress_ops *i8 = ps_compress_ops_get(PS_COMPRESS_INT8);
    const ps_compress_ops *tk = ps_compress_ops_get(PS_COMPRESS_TOPK);
    const ps_compress_ops *bf = ps_compress_ops_get(PS_COMPRESS_BF16);
    ck_assert_int_eq(f16->validate(buf, 7, 4, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "fp16 payload of 7 bytes does not hold 4 values");
    uint16_t inf16 = 0x7c00;
    memcpy(buf + 2, &inf16, 2);
    ck_assert_int_eq(f16->validate(buf, 8, 4, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "fp16 payload holds an infinity or a NaN");
    memset(buf, 0, sizeof buf);
    uint16_t nan16 = 0x7fc0;
    memcpy(buf, &nan16, 2);
    ck_assert_int_eq(bf->validate(buf, 8, 4, &err), PS_EPAYLOAD);
    /* int8: 300 values are 2 blocks: 8 bytes of scales + 300 */
    static unsigned char big[400];
    ck_assert_int_eq(i8->validate(big, 304, 300, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "int8 payload of 304 bytes does not hold 300 values in 2 blocks "
                              "(308 bytes expected)");
    float nan_scale = NAN;
    memcpy(big + 4, &nan_scale, 4);
    ck_assert_int_eq(i8->validate(big, 308, 300, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "int8 payload: block 1 has scale nan");
    /* topk: 2 entries over 4 keys */
    uint32_t idx[2] = {1, 4};
    float val[2] = {1, 2};
    memcpy(buf, idx, 8);
    memcpy(buf + 8, val, 8);
    ck_assert_int_eq(tk->validate(buf, 16, 4, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "topk payload: entry 1 has index 4 (out of range, values: 4)");
    idx[1] = 1;
    memcpy(buf, idx, 8);
    ck_assert_int_eq(tk->validate(buf, 16, 4, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "topk payload: entry 1 has index 1 (not increasing, values: 4)");
    ck_assert_int_eq(tk->validate(buf, 12, 4, &err), PS_EPAYLOAD);
    ck_assert_int_eq(tk->validate(buf, 40, 4, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "topk payload of 40 bytes is not 1 to 4 entries of 8 bytes");
}
END_TEST

/* A PUSH header for keys [lo, hi) announcing bytes of encoding enc. */
static size_t push_header(unsigned char *hdr, size_t cap, ps_encoding enc, uint64_t lo, uint64_t hi,
                          size_t bytes)
{
    ps_msg m;
    ps_msg_init(&m, PS_MSG_PUSH);
    m.job = "j";
    m.worker_id = 1;
    m.seq = 9;
    m.key_lo = lo;
    m.key_hi = hi;
    m.encoding = enc;
    m.payload_bytes = bytes;
    size_t len = 0;
    ck_assert_int_eq(ps_codec_encode(&m, hdr, cap, &len), 0);
    return len;
}

START_TEST(wire_codec_refuses_compressed_frames_that_do_not_fit_the_keys)
{
    unsigned char hdr[256];
    static unsigned char payload[4096];
    static float x[1000];
    for (size_t i = 0; i < 1000; i++)
        x[i] = (float)i;
    static ps_codec_arena arena; /* what the decodes unpack into */
    ps_msg m;
    ps_error err;
    const ps_compress_ops *i8 = ps_compress_ops_get(PS_COMPRESS_INT8);
    ck_assert_int_eq(i8->encode(x, 1000, 0, payload, NULL), 0);
    size_t bytes = i8->bytes(1000, 0);
    size_t len = push_header(hdr, sizeof hdr, PS_ENC_INT8, 10, 1010, bytes);
    ck_assert_int_eq(ps_codec_decode(&arena, hdr, len, payload, bytes, &m, &err), 0);
    ck_assert_ptr_eq(m.payload, payload);
    /* the same bytes announced for one key more: the block count is wrong */
    len = push_header(hdr, sizeof hdr, PS_ENC_INT8, 10, 1011, bytes);
    ck_assert_int_eq(ps_codec_decode(&arena, hdr, len, payload, bytes, &m, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "int8 payload of 1016 bytes does not hold 1001 values in 4 blocks "
                              "(1017 bytes expected)");
    ck_assert_uint_eq(m.seq, 9);
    /* topk with an index past the keys */
    uint32_t idx[2] = {0, 5};
    float val[2] = {1, 1};
    memcpy(payload, idx, 8);
    memcpy(payload + 8, val, 8);
    len = push_header(hdr, sizeof hdr, PS_ENC_TOPK, 100, 105, 16);
    ck_assert_int_eq(ps_codec_decode(&arena, hdr, len, payload, 16, &m, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "topk payload: entry 1 has index 5 (out of range, values: 5)");
    /* a compressed payload for no keys, and an encoding that is no codec */
    len = push_header(hdr, sizeof hdr, PS_ENC_F16, 5, 5, 2);
    ck_assert_int_eq(ps_codec_decode(&arena, hdr, len, payload, 2, &m, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "fp16 payload for key range [5, 5)");
    len = push_header(hdr, sizeof hdr, PS_ENC_KEYS_U64, 0, 1, 8);
    ck_assert_int_eq(ps_codec_decode(&arena, hdr, len, payload, 8, &m, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "payload encoding 5 is not supported yet");
}
END_TEST

START_TEST(codecs_are_found_by_name_and_by_encoding)
{
    ps_compress_type t;
    ck_assert_int_eq(ps_compress_parse("bf16", &t), 0);
    ck_assert_int_eq(t, PS_COMPRESS_BF16);
    ck_assert_int_eq(ps_compress_parse("int4", &t), PS_EINVAL);
    ck_assert_int_eq(ps_compress_ops_for_encoding(PS_ENC_TOPK)->type, PS_COMPRESS_TOPK);
    ck_assert_int_eq(ps_compress_ops_for_encoding(PS_ENC_F32)->type, PS_COMPRESS_NONE);
    ck_assert_ptr_null(ps_compress_ops_for_encoding(PS_ENC_SHM_F32));
    ck_assert_ptr_null(ps_compress_ops_get(PS_COMPRESS_COUNT));
    ck_assert_ptr_null(ps_compress_ops_for_encoding(PS_ENC_COUNT));
}
END_TEST

START_TEST(every_codec_row_is_whole_and_found_by_its_encoding)
{
    for (int t = 0; t < PS_COMPRESS_COUNT; t++) {
        const ps_compress_ops *o = ps_compress_ops_get((ps_compress_type)t);
        ck_assert_int_eq(o->type, t);
        ck_assert_ptr_nonnull(o->name);
        ck_assert_ptr_nonnull(o->label);
        ck_assert(o->bytes && o->encode && o->decode && o->validate);
        ck_assert_ptr_eq(ps_compress_ops_for_encoding(o->encoding), o);
        ps_compress_type back;
        ck_assert_int_eq(ps_compress_parse(o->name, &back), 0);
        ck_assert_int_eq(back, t);
        /* the portable row differs at most in its loops */
        const ps_compress_ops *p = ps_compress_ops_portable((ps_compress_type)t);
        ck_assert_str_eq(p->name, o->name);
        ck_assert_int_eq(p->encoding, o->encoding);
        ck_assert_int_eq(p->pull_ok, o->pull_ok);
    }
    ck_assert(!ps_compress_ops_get(PS_COMPRESS_TOPK)->pull_ok);
    ck_assert(ps_compress_ops_get(PS_COMPRESS_INT8)->feedback_default);
    ck_assert(!ps_compress_ops_get(PS_COMPRESS_FP16)->feedback_default);
    ck_assert_str_eq(ps_compress_ops_get(PS_COMPRESS_NONE)->label, "f32");
}
END_TEST

START_TEST(each_codec_carries_its_range_and_saturates_beyond_it)
{
    /* the trainer stops a job whose push goes past its codec's range: the
     * range must be what the encoder really carries */
    ck_assert_float_eq(ps_compress_ops_get(PS_COMPRESS_FP16)->range, 65504.0f);
    ck_assert_float_eq(ps_compress_ops_get(PS_COMPRESS_NONE)->range, FLT_MAX);
    ck_assert_float_eq(ps_compress_ops_get(PS_COMPRESS_TOPK)->range, FLT_MAX);
    for (int t = 0; t < PS_COMPRESS_COUNT; t++) {
        const ps_compress_ops *o = ps_compress_ops_get((ps_compress_type)t);
        float r = o->range;
        float x[4] = {r, -r, 1.0f, 0.0f};
        static unsigned char enc[4096];
        float back[4], scratch[4];
        size_t k = o->type == PS_COMPRESS_TOPK ? 4 : 0;
        ck_assert_uint_le(o->bytes(4, k), sizeof enc);
        ck_assert_int_eq(o->encode(x, 4, k, enc, scratch), 0);
        o->decode(enc, o->bytes(4, k), back, 4);
        ck_assert_msg(fabsf(back[0] - r) <= r * 0x1p-7f && fabsf(back[1] + r) <= r * 0x1p-7f,
                      "%s: ±range %g comes back as %g, %g", o->name, (double)r, (double)back[0],
                      (double)back[1]);
        ck_assert_int_eq(o->validate(enc, o->bytes(4, k), 4, NULL), 0);
        if (r == FLT_MAX)
            continue;
        x[0] = r < FLT_MAX / 1.01f ? r * 1.01f : FLT_MAX; /* beyond: saturated, or refused */
        ck_assert_int_eq(o->encode(x, 4, k, enc, scratch), 0);
        ps_error err;
        if (o->validate(enc, o->bytes(4, k), 4, &err) == 0) {
            o->decode(enc, o->bytes(4, k), back, 4);
            ck_assert_msg(back[0] == r, "%s: %g beyond its range %g comes back as %g", o->name,
                          (double)x[0], (double)r, (double)back[0]);
        }
    }
}
END_TEST

START_TEST(codec_lists_read_as_people_write_them)
{
    char buf[128];
    ps_compress_list(buf, sizeof buf, 0);
    ck_assert_str_eq(buf, "none, fp16, bf16, int8 or topk");
    ps_compress_list(buf, sizeof buf, PS_COMPRESS_LIST_PULL);
    ck_assert_str_eq(buf, "none, fp16, bf16 or int8");
    ps_compress_list(buf, sizeof buf, PS_COMPRESS_LIST_LABELS);
    ck_assert_str_eq(buf, "f32, fp16, bf16, int8 or topk");
    ps_compress_list(buf, 6, 0); /* cut, still terminated */
    ck_assert_str_eq(buf, "none,");
}
END_TEST

static Suite *compress_suite(void)
{
    Suite *s = suite_create("compress");
    TCase *tc = tcase_create("compress");
    tcase_add_test(tc, fp16_rounds_to_nearest_even_and_saturates_like_the_reference);
    tcase_add_test(tc, bf16_rounds_to_nearest_even_and_saturates);
    tcase_add_test(tc, int8_error_is_within_half_a_scale_of_each_block);
    tcase_add_test(tc, topk_sends_the_largest_magnitudes_in_index_order);
    tcase_add_test(tc, topk_of_big_vectors_is_exactly_the_sorted_selection);
    tcase_add_test(tc, every_encoder_refuses_nan_and_infinity);
    tcase_add_test(tc, error_feedback_sends_what_was_dropped_later);
    tcase_add_test(tc, validate_refuses_payloads_that_do_not_fit_the_keys);
    tcase_add_test(tc, wire_codec_refuses_compressed_frames_that_do_not_fit_the_keys);
    tcase_add_test(tc, codecs_are_found_by_name_and_by_encoding);
    tcase_add_test(tc, every_codec_row_is_whole_and_found_by_its_encoding);
    tcase_add_test(tc, each_codec_carries_its_range_and_saturates_beyond_it);
    tcase_add_test(tc, codec_lists_read_as_people_write_them);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(compress_suite());
}
