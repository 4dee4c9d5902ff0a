/* optim.c — the update rules. One switch per apply picks a loop; each loop
 * is a plain pass over θ, the gradient and the state arrays, written so that
 * -O3 vectorises it (no calls, no branches but selects; this file is built
 * with -fno-math-errno so sqrtf is an instruction). Scalars — the scheduled
 * learning rate, adam's bias correction — are computed once per apply in
 * double. */
#include "optim.h"

#include "floats.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A float that may sit at any address: gradients come straight from frames.
 * The compiler still vectorises loops over it (unaligned loads). */
typedef float float_u __attribute__((aligned(1)));

static const char *const optim_names[] = {"sgd", "momentum", "adagrad", "adam", "ftrl"};

/* names of the state arrays, by optimizer */
static const char *const state_names[][PS_OPTIM_MAX_STATE] = {
    [PS_OPTIM_SGD] = {NULL, NULL},
    [PS_OPTIM_MOMENTUM] = {"velocity", NULL},
    [PS_OPTIM_ADAGRAD] = {"accumulator", NULL},
    [PS_OPTIM_ADAM] = {"m", "v"},
    [PS_OPTIM_FTRL] = {"z", "n"},
};

const char *ps_optim_name(ps_optim_type type)
{
    return (unsigned)type < sizeof optim_names / sizeof optim_names[0] ? optim_names[type] : "?";
}

/* ---- the loops --------------------------------------------------------- */

static void sgd_run(float *restrict th, const float_u *restrict g, size_t n, float lr, float l2,
                    float scale)
{
    for (size_t i = 0; i < n; i++)
        th[i] -= lr * (scale * g[i] + l2 * th[i]);
}

static void momentum_run(float *restrict th, float *restrict v, const float_u *restrict g, size_t n,
                         float lr, float l2, float scale, float mu)
{
    for (size_t i = 0; i < n; i++) {
        float gi = scale * g[i] + l2 * th[i];
        float vi = mu * v[i] + gi;
        v[i] = vi;
        th[i] -= lr * vi;
    }
}

static void nesterov_run(float *restrict th, float *restrict v, const float_u *restrict g, size_t n,
                         float lr, float l2, float scale, float mu)
{
    for (size_t i = 0; i < n; i++) {
        float gi = scale * g[i] + l2 * th[i];
        float vi = mu * v[i] + gi;
        v[i] = vi;
        th[i] -= lr * (gi + mu * vi);
    }
}

static void adagrad_run(float *restrict th, float *restrict acc, const float_u *restrict g,
                        size_t n, float lr, float l2, float scale, float eps)
{
    for (size_t i = 0; i < n; i++) {
        float gi = scale * g[i] + l2 * th[i];
        float ai = acc[i] + gi * gi;
        acc[i] = ai;
        th[i] -= lr * gi / (sqrtf(ai) + eps);
    }
}

/* step = lr_t · √(1-β2^t) / (1-β1^t) and eps_t = eps · √(1-β2^t) fold the
 * bias correction into two scalars: step · m / (√v + eps_t) equals
 * lr_t · m̂ / (√v̂ + eps). c1 = 1-β1, c2 = 1-β2. */
static void adam_run(float *restrict th, float *restrict m, float *restrict v,
                     const float_u *restrict g, size_t n, float step, float l2, float scale,
                     float b1, float c1, float b2, float c2, float eps_t)
{
    for (size_t i = 0; i < n; i++) {
        float gi = scale * g[i] + l2 * th[i];
        float mi = b1 * m[i] + c1 * gi;
        float vi = b2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        th[i] -= step * mi / (sqrtf(vi) + eps_t);
    }
}

/* inv_alpha = 1 / lr_t; the weights are recomputed from z and n. */
static void ftrl_run(float *restrict th, float *restrict z, float *restrict nn,
                     const float_u *restrict g, size_t n, float inv_alpha, float beta, float l1,
                     float l2, float scale)
{
    for (size_t i = 0; i < n; i++) {
        float gi = scale * g[i];
        float ni = nn[i] + gi * gi;
        float sq = sqrtf(ni);
        float sigma = (sq - sqrtf(nn[i])) * inv_alpha;
        float zi = z[i] + gi - sigma * th[i];
        z[i] = zi;
        nn[i] = ni;
        float shrunk = fabsf(zi) - l1; /* soft threshold: 0 when |z| <= l1 */
        shrunk = shrunk > 0.0f ? shrunk : 0.0f;
        th[i] = -copysignf(shrunk, zi) / ((beta + sq) * inv_alpha + l2);
    }
}

/* ---- the optimizer ----------------------------------------------------- */

/* The hyper-parameters, checked again here: a job built in code has not
 * been through the loader. */
static int check_hyper(const ps_optim *o, ps_error *err)
{
    if ((unsigned)o->type > PS_OPTIM_FTRL)
        return ps_error_set(err, PS_EINVAL, "optimizer %u is not one the server knows",
                            (unsigned)o->type);
    if (!(o->lr > 0) || !isfinite(o->lr) || !(o->l2 >= 0) || !(o->l1 >= 0))
        return ps_error_set(err, PS_EINVAL, "optimizer: lr must be > 0 and l1, l2 >= 0");
    if (o->type == PS_OPTIM_MOMENTUM && !(o->momentum >= 0 && o->momentum < 1))
        return ps_error_set(err, PS_EINVAL, "optimizer momentum: momentum must be in [0, 1)");
    if (o->type == PS_OPTIM_ADAM &&
        !(o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1))
        return ps_error_set(err, PS_EINVAL, "optimizer adam: beta1 and beta2 must be in [0, 1)");
    if ((o->type == PS_OPTIM_ADAM || o->type == PS_OPTIM_ADAGRAD) && !(o->eps > 0))
        return ps_error_set(err, PS_EINVAL, "optimizer %s: eps must be > 0",
                            ps_optim_name(o->type));
    switch (o->schedule) {
    case PS_SCHEDULE_CONSTANT:
        return 0;
    case PS_SCHEDULE_STEP:
        if (o->step_size == 0 || !(o->gamma > 0 && o->gamma <= 1))
            return ps_error_set(err, PS_EINVAL,
                                "schedule step: step_size must be >= 1 and gamma in (0, 1]");
        return 0;
    case PS_SCHEDULE_COSINE:
        if (o->total_steps == 0)
            return ps_error_set(err, PS_EINVAL,
                                "schedule cosine needs optimizer.schedule.total_steps");
        if (o->warmup_steps >= o->total_steps)
            return ps_error_set(err, PS_EINVAL,
                                "schedule cosine: warmup_steps (%llu) must be less than "
                                "total_steps (%llu)",
                                (unsigned long long)o->warmup_steps,
                                (unsigned long long)o->total_steps);
        return 0;
    }
    return ps_error_set(err, PS_EINVAL, "schedule %u is not one the server knows",
                        (unsigned)o->schedule);
}

/* z such that ftrl's weight formula gives back θ at n = 0: the initial θ
 * (xavier, normal) survives into the first update. */
static void ftrl_seed(ps_optim *o, const float *theta)
{
    double alpha = ps_optim_lr_at(o, 0);
    float k = (float)(o->beta / alpha + o->l2), l1 = (float)o->l1;
    float *restrict z = o->state[0];
    for (size_t i = 0; i < o->n; i++)
        z[i] = theta[i] == 0.0f ? 0.0f : -(theta[i] * k + copysignf(l1, theta[i]));
}

int ps_optim_init(ps_optim *o, const ps_job *job, const float *theta, size_t n, ps_error *err)
{
    memset(o, 0, sizeof *o);
    o->type = job->optimizer.type;
    o->nesterov = job->optimizer.nesterov;
    o->lr = job->optimizer.lr;
    o->momentum = job->optimizer.momentum;
    o->l1 = job->optimizer.l1;
    o->l2 = job->optimizer.l2;
    o->beta = job->optimizer.beta;
    o->beta1 = job->optimizer.beta1;
    o->beta2 = job->optimizer.beta2;
    o->eps = job->optimizer.eps;
    o->schedule = job->optimizer.schedule;
    o->step_size = job->optimizer.step_size;
    o->warmup_steps = job->optimizer.warmup_steps;
    o->total_steps = job->optimizer.total_steps;
    o->gamma = job->optimizer.gamma;
    o->n = n;
    int rc = check_hyper(o, err);
    if (rc != 0)
        return rc;
    while (o->nstate < PS_OPTIM_MAX_STATE && state_names[o->type][o->nstate] != NULL)
        o->nstate++;
    for (size_t i = 0; i < o->nstate; i++) {
        o->state[i] = ps_floats_alloc(n, &o->state_bytes[i]);
        if (o->state[i] == NULL) {
            ps_optim_fini(o);
            return ps_error_set(err, PS_ENOMEM, "cannot allocate %s state for %zu params",
                                ps_optim_name(o->type), n);
        }
        memset(o->state[i], 0, n * sizeof(float));
    }
    if (o->type == PS_OPTIM_FTRL)
        ftrl_seed(o, theta);
    return 0;
}

void ps_optim_fini(ps_optim *o)
{
    for (size_t i = 0; i < PS_OPTIM_MAX_STATE; i++) {
        free(o->state[i]);
        o->state[i] = NULL;
    }
    o->nstate = 0;
}

double ps_optim_lr_at(const ps_optim *o, uint64_t t)
{
    uint64_t w = o->warmup_steps;
    if (t < w)
        return o->lr * (double)(t + 1) / (double)w;
    uint64_t s = t - w;
    switch (o->schedule) {
    case PS_SCHEDULE_CONSTANT:
        break;
    case PS_SCHEDULE_STEP:
        return o->lr * pow(o->gamma, (double)(s / o->step_size));
    case PS_SCHEDULE_COSINE: {
        uint64_t T = o->total_steps - w;
        if (s >= T)
            return 0.0;
        return o->lr * 0.5 * (1.0 + cos(M_PI * (double)s / (double)T));
    }
    }
    return o->lr;
}

ps_optim_step ps_optim_begin(ps_optim *o)
{
    ps_optim_step st = {ps_optim_lr_at(o, o->updates > o->lag ? o->updates - o->lag : 0), 0};
    st.t = ++o->updates;
    return st;
}

void ps_optim_apply(ps_optim *o, float *theta, size_t off, const void *grad, size_t n, float scale)
{
    ps_optim_step st = ps_optim_begin(o);
    ps_optim_run(o, &st, theta, off, grad, n, scale);
}

void ps_optim_run(const ps_optim *o, const ps_optim_step *st, float *theta, size_t off,
                  const void *grad, size_t n, float scale)
{
    assert(off <= o->n && n <= o->n - off);
    double lr_t = st->lr;
    uint64_t t = st->t;
    float *th = theta + off;
    float *s0 = o->state[0] ? o->state[0] + off : NULL;
    float *s1 = o->state[1] ? o->state[1] + off : NULL;
    float lr = (float)lr_t, l2 = (float)o->l2, mu = (float)o->momentum;
    switch (o->type) {
    case PS_OPTIM_SGD:
        sgd_run(th, grad, n, lr, l2, scale);
        return;
    case PS_OPTIM_MOMENTUM:
        if (o->nesterov)
            nesterov_run(th, s0, grad, n, lr, l2, scale, mu);
        else
            momentum_run(th, s0, grad, n, lr, l2, scale, mu);
        return;
    case PS_OPTIM_ADAGRAD:
        adagrad_run(th, s0, grad, n, lr, l2, scale, (float)o->eps);
        return;
    case PS_OPTIM_ADAM: {
        double bc1 = 1.0 - pow(o->beta1, (double)t), bc2 = sqrt(1.0 - pow(o->beta2, (double)t));
        adam_run(th, s0, s1, grad, n, (float)(lr_t * bc2 / bc1), l2, scale, (float)o->beta1,
                 (float)(1.0 - o->beta1), (float)o->beta2, (float)(1.0 - o->beta2),
                 (float)(o->eps * bc2));
        return;
    }
    case PS_OPTIM_FTRL:
        /* past a cosine horizon lr_t is 0: hold θ rather than divide by it */
        if (lr_t > 0)
            ftrl_run(th, s0, s1, grad, n, (float)(1.0 / lr_t), (float)o->beta, (float)o->l1, l2,
                     scale);
        return;
    }
}

double ps_optim_lr(const ps_optim *o)
{
    return o->lr;
}

void ps_optim_set_lr(ps_optim *o, double lr)
{
    o->lr = lr;
}

uint64_t ps_optim_updates(const ps_optim *o)
{
    return o->updates;
}

void ps_optim_set_lag(ps_optim *o, uint64_t lag)
{
    o->lag = lag;
}

size_t ps_optim_state_count(const ps_optim *o)
{
    return o->nstate;
}

int ps_optim_state(const ps_optim *o, size_t i, const char **name, const float **data)
{
    if (i >= o->nstate)
        return PS_ERANGE;
    *name = state_names[o->type][i];
    *data = o->state[i];
    return 0;
}
