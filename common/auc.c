/* auc.c — the exact ROC AUC: the scores sorted once (qsort of score/label
 * pairs), then each group of equal scores counted against the negatives
 * below it, in 64-bit integers so the sum is exact for any n below 2^32. */
#include "auc.h"

#include "error.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct auc_pair {
    float score;
    bool positive;
} auc_pair;

/* Ascending, NaN first: a total order, so qsort sees a consistent one. */
static int pair_cmp(const void *a, const void *b)
{
    float x = ((const auc_pair *)a)->score, y = ((const auc_pair *)b)->score;
    bool xn = isnan(x), yn = isnan(y);
    if (xn || yn)
        return (int)yn - (int)xn;
    return (x > y) - (x < y);
}

static bool same_score(float x, float y)
{
    return x == y || (isnan(x) && isnan(y));
}

int ps_auc(const float *scores, const float *labels, size_t n, double *auc)
{
    *auc = NAN;
    if (n == 0)
        return PS_EINVAL;
    auc_pair *p = malloc(n * sizeof *p);
    if (p == NULL)
        return PS_ENOMEM;
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        p[i].score = scores[i];
        p[i].positive = labels[i] > 0.5f;
        pos += p[i].positive;
    }
    uint64_t neg = n - pos;
    if (pos == 0 || neg == 0) {
        free(p);
        return PS_EINVAL;
    }
    qsort(p, n, sizeof *p, pair_cmp);
    /* twice the count of (positive, negative) pairs ordered right, a tie
     * counting 1 of 2: exact in integers */
    uint64_t twice = 0, neg_below = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        uint64_t gp = 0, gn = 0;
        for (; j < n && same_score(p[j].score, p[i].score); j++) {
            gp += p[j].positive;
            gn += !p[j].positive;
        }
        twice += 2 * gp * neg_below + gp * gn;
        neg_below += gn;
        i = j;
    }
    free(p);
    *auc = (double)twice / (2.0 * (double)pos * (double)neg);
    return 0;
}
