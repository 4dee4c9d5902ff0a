/* auc.h — the area under the ROC curve of scores against 0/1 labels,
 * exact: from the scores sorted once, ties counted as half (the
 * Mann-Whitney statistic), so it equals the trapezoid area of the ROC curve.
 * For the test metric of the click models and psgen's best achievable AUC.
 * libc only. */
#ifndef PS_AUC_H
#define PS_AUC_H

#include <stddef.h>

/* The probability that a random positive row scores above a random
 * negative one, a tie counting half, into *auc. A label above 0.5 is
 * positive, any other negative; a NaN score ranks below every number and
 * ties with the other NaNs. Allocates n pairs of scratch while it runs (an
 * evaluation, not a training step). 0; PS_EINVAL with *auc NaN when n is 0
 * or the labels hold one class only (the AUC is undefined); PS_ENOMEM with
 * *auc NaN when the scratch cannot be had. */
int ps_auc(const float *scores, const float *labels, size_t n, double *auc);

#endif
