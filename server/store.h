/* store.h — one shard of θ: the keys [lo, hi) of the flat parameter vector,
 * initialised deterministically from the job's seed (the value of key k does
 * not depend on how θ is sharded), and the optimizer (optim.h) that applies
 * gradients to it, with its state beside θ. Buffers are allocated once, in
 * ps_store_new; nothing after allocates.
 * A store is not locked: one thread uses it. */
#ifndef PS_STORE_H
#define PS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "checkpoint.h"
#include "job.h"

typedef struct ps_store ps_store;

/* A new shard for keys [lo, hi) of the job's θ, initialised from the job's
 * init scheme and seed: zeros; xavier, uniform(-a, a) with
 * a = sqrt(6 / (fan_in + fan_out)) of the tensor holding the key (fan_in the
 * product of all dimensions but the last, fan_out the last; a 1-d tensor
 * [n] has fan_in n, fan_out 1); normal, N(0, 0.01²). Biases (tensors named
 * "b" or "b<digits>") start at 0 under every scheme. With with_accumulator a
 * shard-sized accumulator for sync rounds is allocated too.
 * The optimizer's state arrays are allocated (zeroed) here too.
 * Returns NULL and fills err: PS_EINVAL (lo > hi, hi beyond θ, bad layout,
 * an optimizer hyper-parameter out of range: see ps_optim_init),
 * PS_ENOMEM. */
ps_store *ps_store_new(const ps_job *job, uint64_t lo, uint64_t hi, bool with_accumulator,
                       ps_error *err);

/* Frees the shard and sets *sp to NULL; a NULL *sp is fine. */
void ps_store_destroy(ps_store **sp);

/* The shard's first key, its end (exclusive) and its number of keys. */
uint64_t ps_store_lo(const ps_store *s);
uint64_t ps_store_hi(const ps_store *s);
size_t ps_store_size(const ps_store *s);

/* θ[key] for the shard's keys: element i holds key lo + i. Owned by the
 * store, valid until it is destroyed; changed by the apply functions. */
const float *ps_store_data(const ps_store *s);

/* Gradients are n native float32 values at any alignment: a payload is used
 * straight from its ZeroMQ frame, which need not be 4-byte aligned. */

/* Applies one gradient over keys [key_lo, key_lo + n) with the job's
 * optimizer (ps_optim_apply): one update, which reads and writes θ and the
 * state of those keys only. PS_ERANGE if the range leaves the shard (θ,
 * state and update count are then unchanged). */
int ps_store_apply(ps_store *s, uint64_t key_lo, const void *grad, size_t n);

/* Adds weight · grad (a gradient over the whole shard) to the accumulator;
 * the first call after ps_store_apply_accumulated (or after ps_store_new)
 * overwrites instead of adding, so no zeroing pass is needed.
 * PS_ESTATE if the store has no accumulator. */
int ps_store_accumulate(ps_store *s, const void *grad, float weight);

/* Applies scale · accumulator as one gradient over the whole shard (one
 * optimizer update, as above) and empties the accumulator. PS_ESTATE if it
 * has nothing in it or the store has no accumulator. */
int ps_store_apply_accumulated(ps_store *s, float scale);

/* The optimizer's base learning rate (the schedule scales it per update);
 * ps_store_set_lr changes it (SIGHUP). */
double ps_store_lr(const ps_store *s);
void ps_store_set_lr(ps_store *s, double lr);

/* Updates applied since ps_store_new: the t that drives the schedule and
 * adam's bias correction (sync: one a round; async: one a push). */
uint64_t ps_store_updates(const ps_store *s);

/* The optimizer's state, for checkpoints: how many arrays (0 for sgd), and
 * array i's name ("velocity", "accumulator", "m", "v", "z", "n") and its *n
 * floats, element j for key lo + j like θ. Owned by the store, valid until
 * it is destroyed. PS_ERANGE for i past the last. */
size_t ps_store_state_count(const ps_store *s);
int ps_store_state(const ps_store *s, size_t i, const char **name, const float **data, size_t *n);

/* The arrays a checkpoint holds, in order: "theta", then the optimizer's
 * state arrays; each entry points at the live array (n floats, writable, so
 * a checkpoint can be loaded straight into it). Fills up to max entries and
 * *count. PS_EINVAL when max is too small. */
int ps_store_ckpt_arrays(ps_store *s, ps_ckpt_array *out, size_t max, size_t *count);

/* Sets the update count t (from a checkpoint: schedules and adam go on from
 * where they were). */
void ps_store_set_updates(ps_store *s, uint64_t updates);

/* The initial value of key k of θ under the job's init scheme, given the
 * layout tensors (ntensors of them, offsets set). Pure: the same job, layout
 * and k give the same value, whatever the shard. */
float ps_store_init_value(const ps_job *job, const ps_tensor_info *tensors, size_t ntensors,
                          uint64_t k);

#endif
