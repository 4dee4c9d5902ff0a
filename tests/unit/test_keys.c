/* test_keys.c — sparse keys on the wire: varint deltas round trip, their
 * size, every way bytes from the network can be wrong (read a word or a
 * byte at a time), and the split of the 2^64 key space across shards. */
#include <check.h>

#include "check_main.h"
#include <stdlib.h>
#include <string.h>

#include "keys.h"

/* Encodes n keys, checks them and reads them back, a key at a time and in
 * one pass with the check (ps_keys_decode). */
static size_t round_trip(const uint64_t *keys, size_t n, unsigned char *buf, size_t cap)
{
    size_t len = 0;
    ck_assert_int_eq(ps_keys_encode(keys, n, buf, cap, &len), 0);
    ps_error err;
    uint64_t first = 1, last = 1;
    ck_assert_msg(ps_keys_check(buf, len, n, &first, &last, &err) == 0, "%s", err.msg);
    if (n > 0) {
        ck_assert_uint_eq(first, keys[0]);
        ck_assert_uint_eq(last, keys[n - 1]);
    }
    ps_keys_iter it;
    ps_keys_iter_init(&it, buf, len);
    uint64_t k;
    size_t i = 0;
    while (ps_keys_next(&it, &k)) {
        ck_assert_uint_lt(i, n);
        ck_assert_uint_eq(k, keys[i]);
        i++;
    }
    ck_assert_uint_eq(i, n);
    uint64_t *out = malloc((n + 1) * sizeof *out);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(ps_keys_decode(buf, len, n, out, &err) == 0, "%s", err.msg);
    ck_assert(n == 0 || memcmp(out, keys, n * sizeof *keys) == 0);
    free(out);
    return len;
}

START_TEST(keys_round_trip_from_zero_to_the_top_of_the_space)
{
    const uint64_t keys[] = {
        0, 1, 127, 128, 16383, 16384, 1ull << 32, UINT64_MAX / 2, UINT64_MAX - 1, UINT64_MAX};
    unsigned char buf[PS_KEYS_BYTES_MAX(10)];
    round_trip(keys, 10, buf, sizeof buf);
    const uint64_t top[] = {UINT64_MAX}; /* one key of 10 bytes */
    ck_assert_uint_eq(round_trip(top, 1, buf, sizeof buf), 10);
    ck_assert_uint_eq(round_trip(keys, 0, buf, sizeof buf), 0);
}
END_TEST

/* 10 000 random 64-bit keys of a shard of 1 sorted: the gaps are about
 * 2^64 / 10^4 ≈ 2^50.7, 8 bytes a key; dense keys take 1. */
START_TEST(a_key_costs_what_its_gap_needs)
{
    enum { N = 10000 };
    uint64_t *keys = malloc(N * sizeof *keys);
    unsigned char *buf = malloc(PS_KEYS_BYTES_MAX(N));
    ck_assert_ptr_nonnull(keys);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < N; i++)
        keys[i] = i * 3;
    ck_assert_uint_eq(round_trip(keys, N, buf, PS_KEYS_BYTES_MAX(N)), N);
    uint64_t step = UINT64_MAX / N;
    for (size_t i = 0; i < N; i++)
        keys[i] = i * step + (i * 2654435761u) % 1000;
    size_t len = round_trip(keys, N, buf, PS_KEYS_BYTES_MAX(N));
    ck_assert_uint_le(len, N * 8 + 1);
    ck_assert_uint_ge(len, N * 8 - 8);
    free(keys);
    free(buf);
}
END_TEST

START_TEST(encode_refuses_a_buffer_too_small)
{
    const uint64_t keys[] = {5, 300};
    unsigned char buf[2];
    size_t len = 0;
    ck_assert_int_eq(ps_keys_encode(keys, 2, buf, sizeof buf, &len), PS_EINVAL);
    ck_assert(ps_keys_sorted(keys, 2));
    const uint64_t twice[] = {5, 5}, down[] = {6, 5};
    ck_assert(!ps_keys_sorted(twice, 2));
    ck_assert(!ps_keys_sorted(down, 2));
}
END_TEST

/* Checks bytes that must be refused, with the words the reason has, by
 * the check and by the decode (which writes at most n keys). */
static void refused(const unsigned char *buf, size_t len, uint64_t n, const char *why)
{
    ps_error err;
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(ps_keys_check(buf, len, n, NULL, NULL, &err), PS_EPAYLOAD);
    ck_assert_msg(strstr(err.msg, why) != NULL, "\"%s\" does not say \"%s\"", err.msg, why);
    uint64_t out[32] = {0};
    ck_assert_uint_le(n, 31);
    ps_error derr;
    memset(&derr, 0, sizeof derr);
    ck_assert_int_eq(ps_keys_decode(buf, len, n, out, &derr), PS_EPAYLOAD);
    ck_assert_str_eq(derr.msg, err.msg);
    ck_assert_uint_eq(out[n], 0); /* nothing past the n announced */
}

START_TEST(check_refuses_every_malformed_key_list)
{
    const unsigned char cut[] = {5, 0x81}; /* a continuation with nothing after */
    refused(cut, sizeof cut, 2, "cut off");
    const unsigned char dup[] = {5, 0}; /* delta 0: the key again */
    refused(dup, sizeof dup, 2, "unique");
    const unsigned char many[] = {1, 1, 1};
    refused(many, sizeof many, 2, "more than the 2 announced");
    refused(many, sizeof many, 4, "3 keys, 4 were announced");
    unsigned char eleven[11];
    memset(eleven, 0x80, sizeof eleven);
    eleven[10] = 0;
    refused(eleven, sizeof eleven, 1, "longer than 10 bytes");
    unsigned char wide[10]; /* 2^64 exactly: the 10th byte's bit 1 */
    memset(wide, 0x80, sizeof wide);
    wide[9] = 2;
    refused(wide, sizeof wide, 1, "64 bits");
    /* UINT64_MAX, then 1 more: past the top of the space */
    unsigned char over[11];
    memset(over, 0xff, 9);
    over[9] = 1;
    over[10] = 1;
    refused(over, sizeof over, 2, "2^64");
    /* a first key of 0 is a key, not a repeat */
    const unsigned char zero[] = {0, 1};
    ps_error err;
    uint64_t first = 9, last = 9;
    ck_assert_int_eq(ps_keys_check(zero, sizeof zero, 2, &first, &last, &err), 0);
    ck_assert_uint_eq(first, 0);
    ck_assert_uint_eq(last, 1);
}
END_TEST

/* The varint deltas a byte at a time, the shortest form: what
 * ps_keys_encode must write however it writes it. */
static size_t encode_bytewise(const uint64_t *keys, size_t n, unsigned char *out)
{
    size_t at = 0;
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t d = keys[i] - prev;
        prev = keys[i];
        do {
            unsigned char b = (unsigned char)(d & 0x7f);
            d >>= 7;
            out[at++] = (unsigned char)(b | (d != 0 ? 0x80 : 0));
        } while (d != 0);
    }
    return at;
}

/* Keys are written and read 8 bytes at a time where 8 are left, a byte at
 * a time elsewhere and for gaps of 9 or 10 bytes: every length is written
 * in its shortest form, reads the same either way, canonical or not, and
 * what is wrong is refused the same. */
START_TEST(word_and_byte_reads_agree_on_every_gap_length)
{
    enum { N = 200 };
    uint64_t keys[N], s = 99;
    unsigned char buf[PS_KEYS_BYTES_MAX(N)];
    for (unsigned round = 0; round < 50; round++) {
        uint64_t key = 0;
        for (size_t i = 0; i < N; i++) { /* gaps of 1 to 8 bytes (at most 2^56 - 1 each) */
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            unsigned bytes = 1 + (unsigned)((s >> 40) % 8);
            uint64_t gap = (s >> 3) & ((UINT64_C(1) << (7 * bytes)) - 1);
            key += (gap == 0 ? 1 : gap);
            keys[i] = key;
        }
        if (round % 2 == 1) /* a gap of 9 bytes, then of 1 to 8 again */
            for (size_t i = N / 2; i < N; i++)
                keys[i] += UINT64_C(1) << 58;
        size_t len = round_trip(keys, N, buf, sizeof buf);
        unsigned char want[PS_KEYS_BYTES_MAX(N)];
        ck_assert_uint_eq(encode_bytewise(keys, N, want), len);
        ck_assert_int_eq(memcmp(buf, want, len), 0);
        if (round == 0)
            for (size_t n = 0; n <= 20; n++) /* lists that end within 8 bytes of the buffer */
                round_trip(keys, n, buf, sizeof buf);
    }
    /* 5 written in 3 bytes, then 1: 6; with the 8 bytes after it or not */
    const unsigned char wide[] = {0x85, 0x80, 0x00, 1, 1, 1, 1, 1, 1, 1, 1};
    for (size_t n = 2; n <= 9; n += 7) {
        ps_error err;
        uint64_t first = 0, last = 0;
        ck_assert_int_eq(ps_keys_check(wide, n + 2, n, &first, &last, &err), 0);
        ck_assert_uint_eq(first, 5);
        ck_assert_uint_eq(last, 5 + n - 1);
        ps_keys_iter it;
        ps_keys_iter_init(&it, wide, n + 2);
        uint64_t k = 0;
        ck_assert(ps_keys_next(&it, &k) && k == 5);
        ck_assert(ps_keys_next(&it, &k) && k == 6);
    }
    /* the reasons of check_refuses_every_malformed_key_list, 8 bytes or more before the end */
    unsigned char b[32];
    memset(b, 1, sizeof b);
    b[1] = 0;
    refused(b, 20, 20, "unique");
    memset(b, 1, sizeof b);
    refused(b, 20, 19, "more than the 19 announced");
    refused(b, 20, 21, "20 keys, 21 were announced");
    memset(b, 0x81, 9); /* 9 continuations and more, then a stop: 11 bytes */
    b[9] = 0x81;
    b[10] = 0;
    refused(b, 20, 10, "longer than 10 bytes");
    memset(b, 0x80, 9); /* 2^64 */
    b[9] = 2;
    memset(b + 10, 1, 10);
    refused(b, 20, 11, "64 bits");
    memset(b, 0xff, 9); /* UINT64_MAX, then 5 more */
    b[9] = 1;
    b[10] = 5;
    memset(b + 11, 1, 9);
    refused(b, 20, 11, "2^64");
    memset(b, 1, 12);
    memset(b + 12, 0x81, 8);
    refused(b, 20, 13, "cut off");
}
END_TEST

START_TEST(shards_split_the_key_space_evenly_and_contiguously)
{
    uint64_t lo, last;
    ps_key_range(0, 1, &lo, &last);
    ck_assert_uint_eq(lo, 0);
    ck_assert_uint_eq(last, UINT64_MAX);
    ps_key_range(1, 2, &lo, &last);
    ck_assert_uint_eq(lo, 1ull << 63);
    ck_assert_uint_eq(last, UINT64_MAX);
    for (uint32_t n = 1; n <= 1000; n += (n < 70 ? 1 : 97)) {
        uint64_t prev_last = 0;
        for (uint32_t s = 0; s < n; s++) {
            ps_key_range(s, n, &lo, &last);
            ck_assert_uint_eq(lo, s == 0 ? 0 : prev_last + 1);
            ck_assert_uint_eq(ps_key_shard(lo, n), s);
            ck_assert_uint_eq(ps_key_shard(last, n), s);
            prev_last = last;
        }
        ck_assert_uint_eq(prev_last, UINT64_MAX);
    }
}
END_TEST

static Suite *keys_suite(void)
{
    Suite *s = suite_create("keys");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, keys_round_trip_from_zero_to_the_top_of_the_space);
    tcase_add_test(tc, a_key_costs_what_its_gap_needs);
    tcase_add_test(tc, encode_refuses_a_buffer_too_small);
    tcase_add_test(tc, check_refuses_every_malformed_key_list);
    tcase_add_test(tc, word_and_byte_reads_agree_on_every_gap_length);
    tcase_add_test(tc, shards_split_the_key_space_evenly_and_contiguously);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(keys_suite());
}
