/* feature_hash.c — the log buckets of integer fields from IEEE arithmetic
 * alone: a log of our own (frexp, then the atanh series), so a value gets
 * the same bucket, and so the same key, on every worker's machine whatever
 * its libm. Built with -ffp-contract=off (worker.cmake). */
#include "feature_hash.h"

#include <math.h>

#define LN2       0.69314718055994530942
#define SQRT_HALF 0.70710678118654752440

/* x = m * 2^e with m in [sqrt(1/2), sqrt(2)); ln m = 2 atanh(s) with
 * s = (m - 1) / (m + 1), |s| < 0.172, by its series to s^21 (the next
 * term is below 1e-17 of the sum). frexp is exact. */
double ps_feature_ln(double x)
{
    int e;
    double m = frexp(x, &e);
    if (m < SQRT_HALF) {
        m *= 2.0;
        e--;
    }
    double s = (m - 1.0) / (m + 1.0), s2 = s * s;
    double t = 1.0 / 21.0;
    for (int k = 19; k >= 1; k -= 2)
        t = 1.0 / k + s2 * t;
    return (double)e * LN2 + 2.0 * s * t;
}

int64_t ps_feature_bucket(int64_t v)
{
    if (v < 0)
        return -1;
    if (v <= 2)
        return v;
    double l = ps_feature_ln((double)v);
    return (int64_t)floor(l * l);
}
