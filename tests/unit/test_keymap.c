/* test_keymap.c — dense indices for 64-bit keys: 1, 2, 3, ... in the order
 * keys first come, the same index for a key again, 0 and UINT64_MAX keys
 * like any other, lookups that add nothing, and every index still right
 * after the map has grown many times (a million keys, consecutive ones and
 * ones that share their low or high bits). */
#include <check.h>

#include "check_main.h"
#include <stdint.h>
#include <stdlib.h>

#include "keymap.h"

START_TEST(indices_follow_first_appearance)
{
    ps_keymap *m;
    ps_error err;
    ck_assert_int_eq(ps_keymap_new(0, &m, &err), 0);
    const uint64_t keys[] = {42, 7, 42, 0, UINT64_MAX, 7, 0, 1};
    const uint32_t want[] = {1, 2, 1, 3, 4, 2, 3, 5};
    const bool added[] = {true, true, false, true, true, false, false, true};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        uint32_t index = 99;
        bool a = !added[i];
        ck_assert_int_eq(ps_keymap_index(m, keys[i], &index, &a, &err), 0);
        ck_assert_uint_eq(index, want[i]);
        ck_assert_int_eq(a, added[i]);
    }
    ck_assert_uint_eq(ps_keymap_count(m), 5);
    ck_assert_uint_eq(ps_keymap_find(m, 0), 3);
    ck_assert_uint_eq(ps_keymap_find(m, UINT64_MAX), 4);
    ck_assert_uint_eq(ps_keymap_find(m, 43), 0);
    ck_assert_uint_eq(ps_keymap_count(m), 5);
    /* added may be NULL */
    uint32_t index;
    ck_assert_int_eq(ps_keymap_index(m, 43, &index, NULL, &err), 0);
    ck_assert_uint_eq(index, 6);
    ps_keymap_destroy(&m);
    ck_assert_ptr_null(m);
    ps_keymap_destroy(&m);
    ps_keymap_destroy(NULL);
}
END_TEST

/* The i-th key of a family that stresses the slots: consecutive numbers,
 * numbers that differ only in their top bits, and splitmix64 outputs. */
static uint64_t family_key(int family, uint64_t i)
{
    if (family == 0)
        return i;
    if (family == 1)
        return i << 40;
    uint64_t z = i + UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

START_TEST(every_index_survives_growth)
{
    /* mismatches are counted and asserted once: each passing ck_assert
     * writes to Check's pipe, which for millions would be the test's time */
    const uint64_t n = 1u << 20;
    for (int family = 0; family < 3; family++) {
        ps_keymap *m;
        ps_error err;
        ck_assert_int_eq(ps_keymap_new(0, &m, &err), 0);
        size_t bytes0 = ps_keymap_bytes(m);
        uint64_t bad = 0;
        for (uint64_t i = 0; i < n; i++) {
            uint32_t index = 0;
            bool added = false;
            int rc = ps_keymap_index(m, family_key(family, i), &index, &added, &err);
            bad += rc != 0 || !added || index != i + 1;
        }
        ck_assert_uint_eq(bad, 0);
        ck_assert_uint_eq(ps_keymap_count(m), n);
        /* at most 70% full: 2^21 slots of 12 bytes for 2^20 keys */
        ck_assert_uint_gt(ps_keymap_bytes(m), bytes0);
        ck_assert_uint_eq(ps_keymap_bytes(m), ((size_t)1 << 21) * 12);
        for (uint64_t i = 0; i < n; i++) {
            uint32_t index = 0;
            bool added = true;
            int rc = ps_keymap_index(m, family_key(family, i), &index, &added, &err);
            bad += ps_keymap_find(m, family_key(family, i)) != i + 1;
            bad += rc != 0 || added || index != i + 1;
        }
        ck_assert_uint_eq(bad, 0);
        ck_assert_uint_eq(ps_keymap_find(m, family_key(family, n)), 0);
        ck_assert_uint_eq(ps_keymap_count(m), n);
        ps_keymap_destroy(&m);
    }
}
END_TEST

START_TEST(a_map_sized_ahead_does_not_grow)
{
    ps_keymap *m;
    ps_error err;
    ck_assert_int_eq(ps_keymap_new(100000, &m, &err), 0);
    size_t bytes = ps_keymap_bytes(m);
    /* 100 000 keys at most 70% full: 2^18 slots */
    ck_assert_uint_eq(bytes, ((size_t)1 << 18) * 12);
    uint64_t bad = 0;
    for (uint64_t i = 0; i < 100000; i++) {
        uint32_t index;
        bad += ps_keymap_index(m, family_key(2, i), &index, NULL, &err) != 0 || index != i + 1;
    }
    ck_assert_uint_eq(bad, 0);
    ck_assert_uint_eq(ps_keymap_bytes(m), bytes);
    ps_keymap_destroy(&m);
}
END_TEST

static Suite *keymap_suite(void)
{
    Suite *s = suite_create("keymap");
    TCase *tc = tcase_create("keymap");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, indices_follow_first_appearance);
    tcase_add_test(tc, every_index_survives_growth);
    tcase_add_test(tc, a_map_sized_ahead_does_not_grow);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(keymap_suite());
}
