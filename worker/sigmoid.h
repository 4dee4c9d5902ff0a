/* sigmoid.h — the logistic function and the log-loss's softplus in
 * doubles, safe for any score: the dense and the sparse binary models both
 * turn scores into probabilities and losses with them. */
#ifndef PS_SIGMOID_H
#define PS_SIGMOID_H

#include <math.h>

/* σ(z) without overflow for either sign of z. */
static inline double ps_sigmoid(double z)
{
    if (z >= 0.0)
        return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

/* log(1 + e^z) without overflow: max(z, 0) + log1p(e^−|z|); the log-loss of
 * score z is softplus(z) − y·z. */
static inline double ps_softplus(double z)
{
    return (z > 0.0 ? z : 0.0) + log1p(exp(-fabs(z)));
}

#endif
