/* optim.h — the server-side optimizers (docs/architecture.md#optimizers): sgd, momentum (Nesterov
 * optional), adagrad, adam and ftrl, with L2 and a learning-rate schedule.
 * Their state arrays sit beside θ in the shard, one float per key, allocated
 * once in ps_optim_init. Embedded in the store; one thread uses it. */
#ifndef PS_OPTIM_H
#define PS_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "job.h"

#define PS_OPTIM_MAX_STATE 2 /* state arrays of the biggest optimizer (adam, ftrl) */

/* Fields are the optimizer's own: read them through the functions below. */
typedef struct ps_optim {
    ps_optim_type type;
    bool nesterov;
    double lr; /* base learning rate; the schedule scales it per update */
    double momentum, l1, l2, beta1, beta2, eps;
    double beta; /* ftrl: β of the per-coordinate rate α / (β + √n) */
    ps_schedule_type schedule;
    uint64_t step_size, warmup_steps, total_steps;
    double gamma;
    uint64_t updates; /* t: updates applied so far */
    uint64_t lag;     /* the schedule runs this many updates behind t (ps_optim_set_lag) */
    size_t n;         /* keys, and the length of each state array */
    size_t nstate;
    float *state[PS_OPTIM_MAX_STATE];
    size_t state_bytes[PS_OPTIM_MAX_STATE];
} ps_optim;

/* Sets up *o for n keys with the job's optimizer section; every state array
 * starts at 0. theta (n floats, the shard's initial θ) is read only by ftrl,
 * whose weights are a function of its state: z is seeded so that the first
 * weights are θ itself. Returns 0, or fills err and returns PS_EINVAL (a
 * hyper-parameter out of range, cosine without total_steps) or PS_ENOMEM;
 * on failure *o holds nothing and ps_optim_fini is still safe. */
int ps_optim_init(ps_optim *o, const ps_job *job, const float *theta, size_t n, ps_error *err);

/* Frees the state arrays; safe twice, and after a failed init. */
void ps_optim_fini(ps_optim *o);

/* One update of θ with the gradient scale · grad over keys [off, off + n):
 * theta points at the shard's key 0, grad at n native floats at any
 * alignment (straight from a frame). State is read and written for those
 * keys only, but the update count t, which drives the schedule and adam's
 * bias correction, counts every call: it is per shard update (sync: one a
 * round; async: one a push, whatever its key range). The caller has checked
 * that the range lies in the shard. With g = scale · grad + l2 · θ:
 *   sgd       θ -= lr_t · g
 *   momentum  v = μ·v + g; θ -= lr_t · v   (nesterov: θ -= lr_t · (g + μ·v))
 *   adagrad   a += g²; θ -= lr_t · g / (√a + eps)
 *   adam      m = β1·m + (1-β1)·g; v = β2·v + (1-β2)·g²;
 *             θ -= lr_t · m̂ / (√v̂ + eps), m̂ = m / (1-β1^t), v̂ = v / (1-β2^t)
 *   ftrl      FTRL-Proximal (McMahan et al. 2013) with α = lr_t, β = 1,
 *             λ1 = l1, λ2 = l2 (not added to g): σ = (√(n+g²) - √n) / α;
 *             z += g - σ·θ; n += g²;
 *             θ = |z| ≤ λ1 ? 0 : -(z - sign(z)·λ1) / ((β + √n) / α + λ2)
 * where t counts this update (1 for the first) and lr_t = ps_optim_lr_at of
 * the updates before it. */
void ps_optim_apply(ps_optim *o, float *theta, size_t off, const void *grad, size_t n, float scale);

/* ps_optim_apply in parts, for several threads: ps_optim_begin counts the
 * update and gives its step, then ps_optim_run applies it to any parts of
 * [off, off + n) one after the other or at once (each coordinate's update
 * reads and writes only that coordinate's θ and state). */
typedef struct ps_optim_step {
    double lr; /* lr_t */
    uint64_t t;
} ps_optim_step;
ps_optim_step ps_optim_begin(ps_optim *o);
void ps_optim_run(const ps_optim *o, const ps_optim_step *st, float *theta, size_t off,
                  const void *grad, size_t n, float scale);

/* The learning rate of update t (0 for the first one) under the schedule:
 * warmup ramps it linearly, lr · (t + 1) / warmup_steps for
 * t < warmup_steps; after that, with s = t - warmup_steps,
 *   constant  lr
 *   step      lr · gamma^floor(s / step_size)
 *   cosine    lr · ½(1 + cos(π · s / T)), T = total_steps - warmup_steps;
 *             0 once s ≥ T. */
double ps_optim_lr_at(const ps_optim *o, uint64_t t);

/* The base learning rate; set_lr changes it (SIGHUP), the schedule goes on
 * scaling it from the current update count. */
double ps_optim_lr(const ps_optim *o);
void ps_optim_set_lr(ps_optim *o, double lr);

/* The update count t: updates applied since init. */
uint64_t ps_optim_updates(const ps_optim *o);

/* Makes the learning-rate schedule take the next updates as t - lag (0 at
 * least) instead of t; adam's bias correction keeps t. Sync mode sets it
 * before each round (engine_modes.c: rounds a rank makes up after it was
 * evicted do not push the schedule past its end); 0 at init. */
void ps_optim_set_lag(ps_optim *o, uint64_t lag);

/* The state arrays, for checkpoints: how many (sgd 0, momentum 1, adagrad 1,
 * adam 2, ftrl 2), and array i's name ("velocity"; "accumulator"; "m", "v";
 * "z", "n") and its n floats (owned by o). PS_ERANGE for i past the last. */
size_t ps_optim_state_count(const ps_optim *o);
int ps_optim_state(const ps_optim *o, size_t i, const char **name, const float **data);

/* The optimizer's name as written in job files ("adam"). */
const char *ps_optim_name(ps_optim_type type);

#endif
