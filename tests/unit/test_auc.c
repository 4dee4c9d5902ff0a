/* test_auc.c — ps_auc on hand-counted cases: perfect and reversed orders,
 * ties inside and across classes counted as half, NaN scores ranked
 * lowest, one class only and no rows refused as undefined, and a large
 * random case against the quadratic count of ordered pairs. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "auc.h"
#include "error.h"

static double auc_of(const float *s, const float *y, size_t n)
{
    double auc = -1.0;
    ck_assert_int_eq(ps_auc(s, y, n, &auc), 0);
    return auc;
}

START_TEST(perfect_order_is_one_and_reversed_is_zero)
{
    float y[] = {0, 0, 1, 1};
    float up[] = {0.1f, 0.2f, 0.8f, 0.9f}, down[] = {0.9f, 0.8f, 0.2f, 0.1f};
    ck_assert_double_eq(auc_of(up, y, 4), 1.0);
    ck_assert_double_eq(auc_of(down, y, 4), 0.0);
}
END_TEST

START_TEST(one_misordered_pair_of_four_gives_three_quarters)
{
    /* positives 0.3 and 0.9, negatives 0.1 and 0.5: of the 4 pairs only
     * (0.3, 0.5) is misordered */
    float s[] = {0.1f, 0.3f, 0.5f, 0.9f}, y[] = {0, 1, 0, 1};
    ck_assert_double_eq(auc_of(s, y, 4), 0.75);
}
END_TEST

START_TEST(a_tie_across_classes_counts_half)
{
    /* one positive and one negative at 0.5: half a pair of 1 */
    float s[] = {0.5f, 0.5f}, y[] = {1, 0};
    ck_assert_double_eq(auc_of(s, y, 2), 0.5);
    /* positives 0.4, 0.7; negatives 0.4, 0.2, 0.7: pairs (p, n) ordered:
     * 0.4>0.2 (1), 0.4=0.4 (.5), 0.4<0.7 (0), 0.7>0.4, 0.7>0.2 (2), 0.7=0.7 (.5)
     * = 4 of 6 */
    float s2[] = {0.4f, 0.7f, 0.4f, 0.2f, 0.7f}, y2[] = {1, 1, 0, 0, 0};
    ck_assert_double_eq(auc_of(s2, y2, 5), 4.0 / 6.0);
}
END_TEST

START_TEST(equal_scores_everywhere_give_one_half)
{
    float s[] = {3, 3, 3, 3, 3}, y[] = {1, 0, 0, 1, 0};
    ck_assert_double_eq(auc_of(s, y, 5), 0.5);
}
END_TEST

START_TEST(ties_within_one_class_change_nothing)
{
    float s[] = {0.2f, 0.2f, 0.6f, 0.6f}, y[] = {0, 0, 1, 1};
    ck_assert_double_eq(auc_of(s, y, 4), 1.0);
}
END_TEST

START_TEST(labels_above_one_half_are_positive)
{
    /* 0.51 is positive, 0.5 and -1 negative */
    float s[] = {0.9f, 0.1f, 0.2f}, y[] = {0.51f, 0.5f, -1.0f};
    ck_assert_double_eq(auc_of(s, y, 3), 1.0);
}
END_TEST

START_TEST(nan_scores_rank_lowest_and_tie_with_each_other)
{
    /* positive NaN vs negative 0.1: misordered; positive 0.5 vs both
     * negatives: ordered; positive NaN vs negative NaN: a tie.
     * pairs: (NaN+, 0.1-) 0, (NaN+, NaN-) .5, (0.5+, 0.1-) 1, (0.5+, NaN-) 1 */
    float s[] = {NAN, 0.1f, 0.5f, NAN}, y[] = {1, 0, 1, 0};
    ck_assert_double_eq(auc_of(s, y, 4), 2.5 / 4.0);
}
END_TEST

START_TEST(one_class_only_is_undefined)
{
    float s[] = {0.1f, 0.9f}, ones[] = {1, 1}, zeros[] = {0, 0};
    double auc = 0.0;
    ck_assert_int_eq(ps_auc(s, ones, 2, &auc), PS_EINVAL);
    ck_assert(isnan(auc));
    auc = 0.0;
    ck_assert_int_eq(ps_auc(s, zeros, 2, &auc), PS_EINVAL);
    ck_assert(isnan(auc));
    auc = 0.0;
    ck_assert_int_eq(ps_auc(s, zeros, 0, &auc), PS_EINVAL);
    ck_assert(isnan(auc));
}
END_TEST

START_TEST(large_case_matches_the_count_of_ordered_pairs)
{
    /* 2000 rows, scores on a coarse grid (many ties), labels correlated */
    enum { N = 2000 };
    static float s[N], y[N];
    uint64_t x = 12345;
    for (size_t i = 0; i < N; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        s[i] = (float)((x >> 33) % 50);
        x = x * 6364136223846793005u + 1442695040888963407u;
        y[i] = (float)((x >> 33) % 100) < s[i] * 1.5f ? 1.0f : 0.0f;
    }
    double good = 0.0, pairs = 0.0;
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < N; j++) {
            if (y[i] != 1.0f || y[j] != 0.0f)
                continue;
            pairs += 1.0;
            good += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
        }
    }
    ck_assert_double_eq_tol(auc_of(s, y, N), good / pairs, 1e-12);
    ck_assert_double_gt(good / pairs, 0.6);
}
END_TEST

static Suite *auc_suite(void)
{
    Suite *s = suite_create("auc");
    TCase *tc = tcase_create("auc");
    tcase_add_test(tc, perfect_order_is_one_and_reversed_is_zero);
    tcase_add_test(tc, one_misordered_pair_of_four_gives_three_quarters);
    tcase_add_test(tc, a_tie_across_classes_counts_half);
    tcase_add_test(tc, equal_scores_everywhere_give_one_half);
    tcase_add_test(tc, ties_within_one_class_change_nothing);
    tcase_add_test(tc, labels_above_one_half_are_positive);
    tcase_add_test(tc, nan_scores_rank_lowest_and_tie_with_each_other);
    tcase_add_test(tc, one_class_only_is_undefined);
    tcase_add_test(tc, large_case_matches_the_count_of_ordered_pairs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(auc_suite());
}
