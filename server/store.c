/* store.c — one shard of θ and its optimizer state. Initial values come
 * from a counter-based RNG (splitmix64 of seed and key), so key k gets the
 * same value whichever shard holds it. Big buffers are allocated once
 * (floats.h); the update rules are optim.c's. */
#include "store.h"

#include "floats.h"
#include "optim.h"
#include "util.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A float that may sit at any address: gradients come straight from frames.
 * The compiler still vectorises loops over it (unaligned loads). */
typedef float float_u __attribute__((aligned(1)));

struct ps_store {
    uint64_t lo, hi;
    size_t n;
    float *theta;
    float *acc;       /* NULL without accumulator */
    size_t acc_bytes; /* allocated sizes */
    size_t theta_bytes;
    bool acc_full; /* the accumulator holds a sum */
    ps_optim optim;
};

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

static bool tensor_is_bias(const ps_tensor_info *t)
{
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
    for (size_t i = 0; i < s->n; i++)
        s->theta[i] = 0.0f;
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
            s->theta[k - s->lo] = init_value_in(job, &tensors[t], k);
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
    s->theta = ps_floats_alloc(s->n, &s->theta_bytes);
    if (s->theta == NULL)
        goto free_store;
    if (with_accumulator) {
        s->acc = ps_floats_alloc(s->n, &s->acc_bytes);
        if (s->acc == NULL)
            goto free_theta;
    }
    fill_initial(s, job, tensors, ntensors);
    if (ps_optim_init(&s->optim, job, s->theta, s->n, err) != 0) {
        err_set = true;
        goto free_acc;
    }
    return s;
free_acc:
    free(s->acc);
free_theta:
    free(s->theta);
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
    ps_optim_fini(&(*sp)->optim);
    free((*sp)->acc);
    free((*sp)->theta);
    free(*sp);
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
    return s->theta;
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

int ps_store_apply(ps_store *s, uint64_t key_lo, const void *grad, size_t n)
{
    if (key_lo < s->lo || key_lo > s->hi || n > s->hi - key_lo)
        return PS_ERANGE;
    ps_optim_apply(&s->optim, s->theta, (size_t)(key_lo - s->lo), grad, n, 1.0f);
    return 0;
}

int ps_store_accumulate(ps_store *s, const void *grad, float weight)
{
    const float_u *restrict g = grad;
    if (s->acc == NULL)
        return PS_ESTATE;
    float *restrict acc = s->acc;
    size_t n = s->n;
    if (!s->acc_full) {
        for (size_t i = 0; i < n; i++)
            acc[i] = weight * g[i];
        s->acc_full = true;
    } else {
        for (size_t i = 0; i < n; i++)
            acc[i] += weight * g[i];
    }
    return 0;
}

int ps_store_apply_accumulated(ps_store *s, float scale)
{
    if (s->acc == NULL || !s->acc_full)
        return PS_ESTATE;
    ps_optim_apply(&s->optim, s->theta, 0, s->acc, s->n, scale);
    s->acc_full = false;
    return 0;
}

int ps_store_ckpt_arrays(ps_store *s, ps_ckpt_array *out, size_t max, size_t *count)
{
    size_t nstate = ps_optim_state_count(&s->optim);
    if (max < nstate + 1)
        return PS_EINVAL;
    memset(out, 0, (nstate + 1) * sizeof *out);
    ps_strlcpy(out[0].name, "theta", sizeof out[0].name);
    out[0].data = s->theta;
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

void ps_store_set_updates(ps_store *s, uint64_t updates)
{
    s->optim.updates = updates;
}
