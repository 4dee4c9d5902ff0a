/* store.c — one shard of θ and its optimizer state. Initial values come
 * from a counter-based RNG (splitmix64 of seed and key), so key k gets the
 * same value whichever shard holds it. Big buffers come from floats.h and
 * are kept until the store is destroyed; the update rules are optim.c's.
 * Every write of θ goes through theta_writable, which does the
 * copy-on-write (store.h). */
#include "store.h"

#include "floats.h"
#include "optim.h"
#include "util.h"

#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* A float that may sit at any address: gradients come straight from frames.
 * The compiler still vectorises loops over it (unaligned loads). */
typedef float float_u __attribute__((aligned(1)));

/* θ's buffers: the one θ is in and up to THETA_BUFS - 1 that replies in
 * flight still hold. 4 keeps as many versions on the wire as there were
 * snapshots before copy-on-write, and memory at θ, the accumulator and at
 * most three more shard-sized buffers (a buffer costs memory only once a
 * copy has written it: ps_floats_map). */
#define THETA_BUFS 4

struct ps_store_ref {
    float *data;      /* n floats; NULL until first needed */
    atomic_uint refs; /* replies ZeroMQ still holds */
};

struct ps_store {
    uint64_t lo, hi;
    size_t n;
    ps_store_ref bufs[THETA_BUFS];
    ps_store_ref *theta; /* the buffer θ is in */
    bool buf_failed;     /* a buffer could not be allocated: no more tries */
    uint64_t theta_copies;
    float *acc;    /* NULL without accumulator */
    bool acc_full; /* the accumulator holds a sum */
    ps_optim optim;
    ps_pool *pool; /* threads for the loops over θ; NULL: the caller's only */
    /* a round applied a chunk at a time (ps_store_round_begin) */
    bool round_on;
    ps_optim_step round_st;
    float *round_theta;
};

/* The loops over θ, cut across the pool's threads: every coordinate's
 * update and sum touches that coordinate only, so the result is the same
 * for any number of threads. */
#define THETA_GRAIN ((size_t)1 << 18) /* floats of a thread's part at least: 1 MB */

typedef struct theta_job {
    const ps_optim *o;
    ps_optim_step st;
    float *theta, *acc;
    size_t off;
    const unsigned char *grad;
    float scale; /* of an update; the weight of a sum */
    bool first;  /* a sum's first term */
} theta_job;

static void apply_part(void *arg, size_t lo, size_t hi)
{
    const theta_job *j = arg;
    ps_optim_run(j->o, &j->st, j->theta, j->off + lo, j->grad + lo * sizeof(float), hi - lo,
                 j->scale);
}

static void accumulate_part(void *arg, size_t lo, size_t hi)
{
    const theta_job *j = arg;
    const float_u *restrict g = (const float_u *)(const void *)j->grad;
    float *restrict acc = j->acc;
    float w = j->scale;
    if (j->first) {
        for (size_t i = lo; i < hi; i++)
            acc[i] = w * g[i];
    } else {
        for (size_t i = lo; i < hi; i++)
            acc[i] += w * g[i];
    }
}

void ps_store_set_pool(ps_store *s, ps_pool *pool)
{
    s->pool = pool;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* 64 random bits for key k: the same for the same seed and key, always. */
static uint64_t key_bits(uint64_t seed, uint64_t k)
{
    return splitmix64(seed ^ (k * 0x9E3779B97F4A7C15ull));
}

/* b, b<digits> (the built-in models'), or a name ending in "bias" (a custom
 * model's, as PyTorch names them: fc1.bias) */
static bool tensor_is_bias(const ps_tensor_info *t)
{
    size_t len = strlen(t->name);
    if (len >= 4 && strcmp(t->name + len - 4, "bias") == 0)
        return true;
    if (t->name[0] != 'b')
        return false;
    for (const char *p = t->name + 1; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return true;
}

static uint64_t tensor_size(const ps_tensor_info *t)
{
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->ndims; d++)
        n *= t->shape[d];
    return n;
}

/* Xavier's bound for t: fan_in is every dimension but the last, fan_out the
 * last; a 1-d tensor [n] has fan_in n and fan_out 1. */
static double xavier_bound(const ps_tensor_info *t)
{
    double fan_in = 1, fan_out = 1;
    if (t->ndims == 1) {
        fan_in = (double)t->shape[0];
    } else if (t->ndims > 1) {
        for (uint32_t d = 0; d + 1 < t->ndims; d++)
            fan_in *= (double)t->shape[d];
        fan_out = (double)t->shape[t->ndims - 1];
    }
    return sqrt(6.0 / (fan_in + fan_out));
}

/* The initial value of key k, which lies in tensor t (NULL: none). */
static float init_value_in(const ps_job *job, const ps_tensor_info *t, uint64_t k)
{
    if (job->model.init_scheme == PS_INIT_ZEROS || t == NULL || tensor_is_bias(t))
        return 0.0f;
    uint64_t x = key_bits(job->model.init_seed, k);
    if (job->model.init_scheme == PS_INIT_XAVIER) {
        double u = (double)(x >> 11) * 0x1.0p-53; /* [0, 1) */
        return (float)(xavier_bound(t) * (2.0 * u - 1.0));
    }
    /* normal: Box-Muller on the two 32-bit halves, u1 in (0, 1] */
    double u1 = ((double)(x >> 32) + 1.0) * 0x1.0p-32;
    double u2 = (double)(x & 0xFFFFFFFFu) * 0x1.0p-32;
    return (float)(0.01 * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

float ps_store_init_value(const ps_job *job, const ps_tensor_info *tensors, size_t ntensors,
                          uint64_t k)
{
    for (size_t i = 0; i < ntensors; i++) {
        const ps_tensor_info *t = &tensors[i];
        if (k >= t->offset && k - t->offset < tensor_size(t))
            return init_value_in(job, t, k);
    }
    return init_value_in(job, NULL, k);
}

static void fill_initial(ps_store *s, const ps_job *job, const ps_tensor_info *tensors,
                         size_t ntensors)
{
    float *theta = s->theta->data;
    for (size_t i = 0; i < s->n; i++)
        theta[i] = 0.0f;
    if (job->model.init_scheme == PS_INIT_ZEROS)
        return;
    /* tensor by tensor, so the tensor search is not per key */
    for (size_t t = 0; t < ntensors; t++) {
        uint64_t a = tensors[t].offset, b = a + tensor_size(&tensors[t]);
        if (a < s->lo)
            a = s->lo;
        if (b > s->hi)
            b = s->hi;
        for (uint64_t k = a; k < b; k++)
            theta[k - s->lo] = init_value_in(job, &tensors[t], k);
    }
}

ps_store *ps_store_new(const ps_job *job, uint64_t lo, uint64_t hi, bool with_accumulator,
                       ps_error *err)
{
    ps_tensor_info tensors[PS_MAX_TENSORS];
    size_t ntensors = 0;
    uint64_t num_params = 0;
    if (ps_job_layout(job, tensors, PS_MAX_TENSORS, &ntensors, &num_params) != 0) {
        ps_error_set(err, PS_EINVAL, "the job's model has no valid layout");
        return NULL;
    }
    if (lo > hi || hi > num_params) {
        ps_error_set(err, PS_EINVAL, "shard [%llu, %llu) does not fit θ of %llu params",
                     (unsigned long long)lo, (unsigned long long)hi,
                     (unsigned long long)num_params);
        return NULL;
    }
    if (hi - lo > SIZE_MAX / sizeof(float)) {
        ps_error_set(err, PS_ENOMEM, "shard of %llu params is too big",
                     (unsigned long long)(hi - lo));
        return NULL;
    }
    bool err_set = false; /* the optimizer filled err itself */
    ps_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        goto fail;
    s->lo = lo;
    s->hi = hi;
    s->n = (size_t)(hi - lo);
    for (size_t i = 0; i < THETA_BUFS; i++)
        atomic_init(&s->bufs[i].refs, 0);
    s->theta = &s->bufs[0];
    s->theta->data = ps_floats_map(s->n);
    if (s->theta->data == NULL)
        goto free_store;
    if (with_accumulator) {
        s->acc = ps_floats_alloc(s->n, NULL);
        if (s->acc == NULL)
            goto free_theta;
    }
    fill_initial(s, job, tensors, ntensors);
    if (ps_optim_init(&s->optim, job, s->theta->data, s->n, err) != 0) {
        err_set = true;
        goto free_acc;
    }
    return s;
free_acc:
    free(s->acc);
free_theta:
    ps_floats_unmap(s->theta->data, s->n);
free_store:
    free(s);
fail:
    if (!err_set)
        ps_error_set(err, PS_ENOMEM, "cannot allocate a shard of %llu params",
                     (unsigned long long)(hi - lo));
    return NULL;
}

void ps_store_destroy(ps_store **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    ps_store *s = *sp;
    ps_optim_fini(&s->optim);
    free(s->acc);
    for (size_t i = 0; i < THETA_BUFS; i++) {
        assert(atomic_load(&s->bufs[i].refs) == 0); /* the caller let every reply go */
        ps_floats_unmap(s->bufs[i].data, s->n);
    }
    free(s);
    *sp = NULL;
}

uint64_t ps_store_lo(const ps_store *s)
{
    return s->lo;
}

uint64_t ps_store_hi(const ps_store *s)
{
    return s->hi;
}

size_t ps_store_size(const ps_store *s)
{
    return s->n;
}

const float *ps_store_data(const ps_store *s)
{
    return s->theta->data;
}

/* A buffer other than θ's that no reply holds: one used before if there is
 * one (its pages are resident already), else a new one, mapped fresh so
 * that it costs no memory until a copy writes it. NULL when every buffer
 * is held, or memory is short. */
static ps_store_ref *theta_spare(ps_store *s)
{
    ps_store_ref *unused = NULL;
    for (size_t i = 0; i < THETA_BUFS; i++) {
        ps_store_ref *b = &s->bufs[i];
        if (b == s->theta)
            continue;
        if (b->data == NULL) {
            if (unused == NULL)
                unused = b;
        } else if (atomic_load_explicit(&b->refs, memory_order_acquire) == 0) {
            return b; /* acquire: the I/O thread is done reading it */
        }
    }
    if (unused == NULL || s->buf_failed)
        return NULL;
    if ((unused->data = ps_floats_map(s->n)) == NULL) {
        s->buf_failed = true;
        return NULL;
    }
    return unused;
}

/* θ, safe to write: when a reply holds θ's buffer, θ is copied to a spare
 * first and lives there from now on. */
static float *theta_writable(ps_store *s)
{
    ps_store_ref *held = s->theta;
    if (atomic_load_explicit(&held->refs, memory_order_acquire) == 0)
        return held->data;
    ps_store_ref *to = theta_spare(s);
    assert(to != NULL); /* ps_store_theta_hold made sure of one */
    if (to == NULL) {
        /* cannot happen (above); should it, wait for ZeroMQ rather than
         * write under a reply */
        while (atomic_load_explicit(&held->refs, memory_order_acquire) != 0)
            sched_yield();
        return held->data;
    }
    memcpy(to->data, held->data, s->n * sizeof(float));
    s->theta = to;
    s->theta_copies++;
    return to->data;
}

int ps_store_theta_hold(ps_store *s, ps_store_ref **ref)
{
    *ref = NULL;
    if (theta_spare(s) == NULL)
        return s->buf_failed ? PS_ENOMEM : PS_EFULL;
    /* relaxed: only this thread adds, and it reads θ's count before a write */
    atomic_fetch_add_explicit(&s->theta->refs, 1, memory_order_relaxed);
    *ref = s->theta;
    return 0;
}

void ps_store_theta_release(ps_store_ref *ref)
{
    /* release: the reads of the reply happen before a later write */
    atomic_fetch_sub_explicit(&ref->refs, 1, memory_order_release);
}

uint64_t ps_store_theta_copies(const ps_store *s)
{
    return s->theta_copies;
}

double ps_store_lr(const ps_store *s)
{
    return ps_optim_lr(&s->optim);
}

void ps_store_set_lr(ps_store *s, double lr)
{
    ps_optim_set_lr(&s->optim, lr);
}

uint64_t ps_store_updates(const ps_store *s)
{
    return ps_optim_updates(&s->optim);
}

size_t ps_store_state_count(const ps_store *s)
{
    return ps_optim_state_count(&s->optim);
}

int ps_store_state(const ps_store *s, size_t i, const char **name, const float **data, size_t *n)
{
    int rc = ps_optim_state(&s->optim, i, name, data);
    if (rc == 0)
        *n = s->n;
    return rc;
}

int ps_store_apply_scaled(ps_store *s, uint64_t key_lo, const void *grad, size_t n, float scale)
{
    if (key_lo < s->lo || key_lo > s->hi || n > s->hi - key_lo)
        return PS_ERANGE;
    theta_job j = {.o = &s->optim,
                   .st = ps_optim_begin(&s->optim),
                   .theta = theta_writable(s),
                   .off = (size_t)(key_lo - s->lo),
                   .grad = grad,
                   .scale = scale};
    ps_pool_run(s->pool, n, THETA_GRAIN, apply_part, &j);
    return 0;
}

int ps_store_apply(ps_store *s, uint64_t key_lo, const void *grad, size_t n)
{
    return ps_store_apply_scaled(s, key_lo, grad, n, 1.0f);
}

int ps_store_accumulate(ps_store *s, const void *grad, float weight)
{
    if (s->acc == NULL)
        return PS_ESTATE;
    theta_job j = {.acc = s->acc, .grad = grad, .scale = weight, .first = !s->acc_full};
    ps_pool_run(s->pool, s->n, THETA_GRAIN, accumulate_part, &j);
    s->acc_full = true;
    return 0;
}

int ps_store_apply_accumulated(ps_store *s, float scale)
{
    if (s->acc == NULL || !s->acc_full)
        return PS_ESTATE;
    theta_job j = {.o = &s->optim,
                   .st = ps_optim_begin(&s->optim),
                   .theta = theta_writable(s),
                   .grad = (const unsigned char *)s->acc,
                   .scale = scale};
    ps_pool_run(s->pool, s->n, THETA_GRAIN, apply_part, &j);
    s->acc_full = false;
    return 0;
}

void ps_store_round_begin(ps_store *s)
{
    s->round_st = ps_optim_begin(&s->optim);
    s->round_theta = theta_writable(s);
    s->round_on = true;
}

int ps_store_round_sum(ps_store *s, size_t off, const void *grad, size_t n, float weight,
                       bool first)
{
    if (s->acc == NULL)
        return PS_ESTATE;
    if (off > s->n || n > s->n - off)
        return PS_ERANGE;
    if (grad == NULL) {
        if (first)
            memset(s->acc + off, 0, n * sizeof(float));
        return 0;
    }
    theta_job j = {.acc = s->acc + off, .grad = grad, .scale = weight, .first = first};
    ps_pool_run(s->pool, n, THETA_GRAIN, accumulate_part, &j);
    return 0;
}

int ps_store_round_apply(ps_store *s, size_t off, const void *grad, size_t n, float scale)
{
    if (!s->round_on || (grad == NULL && s->acc == NULL))
        return PS_ESTATE;
    if (off > s->n || n > s->n - off)
        return PS_ERANGE;
    /* the buffer round_begin made writable: a reply holds it only for
     * ranges of this round already applied, never this one */
    theta_job j = {.o = &s->optim,
                   .st = s->round_st,
                   .theta = s->round_theta,
                   .off = off,
                   .grad = grad != NULL ? grad : (const void *)(s->acc + off),
                   .scale = scale};
    ps_pool_run(s->pool, n, THETA_GRAIN, apply_part, &j);
    return 0;
}

void ps_store_round_end(ps_store *s)
{
    s->round_on = false;
    s->round_theta = NULL;
    s->acc_full = false;
}

/* θ (at theta) and the state arrays as checkpoint arrays. */
static int ckpt_arrays(const ps_store *s, float *theta, ps_ckpt_array *out, size_t max,
                       size_t *count)
{
    size_t nstate = ps_optim_state_count(&s->optim);
    if (max < nstate + 1)
        return PS_EINVAL;
    memset(out, 0, (nstate + 1) * sizeof *out);
    ps_strlcpy(out[0].name, "theta", sizeof out[0].name);
    out[0].data = theta;
    out[0].count = s->n;
    for (size_t i = 0; i < nstate; i++) {
        const char *name;
        const float *data;
        ps_optim_state(&s->optim, i, &name, &data);
        ps_strlcpy(out[i + 1].name, name, sizeof out[i + 1].name);
        out[i + 1].data = (float *)data; /* the store owns it and lets the loader write */
        out[i + 1].count = s->n;
    }
    *count = nstate + 1;
    return 0;
}

int ps_store_ckpt_arrays(const ps_store *s, ps_ckpt_array *out, size_t max, size_t *count)
{
    return ckpt_arrays(s, s->theta->data, out, max, count); /* read only, as declared */
}

int ps_store_ckpt_arrays_for_load(ps_store *s, ps_ckpt_array *out, size_t max, size_t *count)
{
    size_t nstate = ps_optim_state_count(&s->optim);
    if (max < nstate + 1)
        return PS_EINVAL; /* before theta_writable: a refusal changes nothing */
    return ckpt_arrays(s, theta_writable(s), out, max, count);
}

void ps_store_set_updates(ps_store *s, uint64_t updates)
{
    s->optim.updates = updates;
}

void ps_store_set_schedule_lag(ps_store *s, uint64_t lag)
{
    ps_optim_set_lag(&s->optim, lag);
}
