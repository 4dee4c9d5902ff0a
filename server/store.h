/* store.h — one shard of θ: the keys [lo, hi) of the flat parameter vector,
 * initialised deterministically from the job's seed (the value of key k does
 * not depend on how θ is sharded), and the optimizer (optim.h) that applies
 * gradients to it, with its state beside θ.
 * θ lives in one of a small pool of shard-sized buffers, so that pull
 * replies can be sent straight from it (copy-on-write): a reply holds the
 * buffer (ps_store_theta_hold) until ZeroMQ lets go, and a write of θ that
 * finds its buffer held first copies θ into a free buffer, which becomes
 * θ's. Pool buffers are allocated when first needed and kept; the other
 * buffers are allocated once, in ps_store_new.
 * A store is not locked: one thread uses it, except that any thread may
 * call ps_store_theta_release. */
#ifndef PS_STORE_H
#define PS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "checkpoint.h"
#include "job.h"
#include "pool.h"

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

/* Lets the loops over θ (updates, sums) use pool's threads from now on:
 * the results do not change. NULL: the caller's thread only. */
void ps_store_set_pool(ps_store *s, ps_pool *pool);

/* The shard's first key, its end (exclusive) and its number of keys. */
uint64_t ps_store_lo(const ps_store *s);
uint64_t ps_store_hi(const ps_store *s);
size_t ps_store_size(const ps_store *s);

/* θ[key] for the shard's keys: element i holds key lo + i. Owned by the
 * store; changed by the apply functions, which may move θ to another
 * buffer: the pointer is valid until the next write of θ, so fetch it
 * again after one. */
const float *ps_store_data(const ps_store *s);

/* One of the buffers θ lives in, as a reply sent without a copy holds it. */
typedef struct ps_store_ref ps_store_ref;

/* Holds the buffer θ is in now (ps_store_data's) for a reply sent from it
 * without a copy; θ is not written in that buffer again until every hold
 * is released. Succeeds only when another buffer is free for the next
 * write (allocating one if the pool is not full), so a write never waits.
 * *ref gets the hold. PS_EFULL when every other buffer is held,
 * PS_ENOMEM when no more could be allocated: send a copy then. */
int ps_store_theta_hold(ps_store *s, ps_store_ref **ref);

/* Releases a hold from ps_store_theta_hold; any thread may call it (it is
 * ZeroMQ's free function, on its I/O thread). */
void ps_store_theta_release(ps_store_ref *ref);

/* How often θ was copied to another buffer because a reply held it. */
uint64_t ps_store_theta_copies(const ps_store *s);

/* Gradients are n native float32 values at any alignment: a payload is used
 * straight from its ZeroMQ frame, which need not be 4-byte aligned. */

/* Applies one gradient over keys [key_lo, key_lo + n) with the job's
 * optimizer (ps_optim_apply): one update, which reads and writes θ and the
 * state of those keys only. PS_ERANGE if the range leaves the shard (θ,
 * state and update count are then unchanged). */
int ps_store_apply(ps_store *s, uint64_t key_lo, const void *grad, size_t n);

/* As ps_store_apply, with the gradient scale · grad. */
int ps_store_apply_scaled(ps_store *s, uint64_t key_lo, const void *grad, size_t n, float scale);

/* Adds weight · grad (a gradient over the whole shard) to the accumulator;
 * the first call after ps_store_apply_accumulated (or after ps_store_new)
 * overwrites instead of adding, so no zeroing pass is needed.
 * PS_ESTATE if the store has no accumulator. */
int ps_store_accumulate(ps_store *s, const void *grad, float weight);

/* Applies scale · accumulator as one gradient over the whole shard (one
 * optimizer update, as above) and empties the accumulator. PS_ESTATE if it
 * has nothing in it or the store has no accumulator. */
int ps_store_apply_accumulated(ps_store *s, float scale);

/* A sync round applied a chunk at a time (pipelined rounds): round_begin
 * takes the round's one optimizer update (its t and learning rate) and
 * makes θ safe to write, once; then round_sum and round_apply work on
 * ranges [off, off + n) of the shard (off counted from its first key), each
 * coordinate's arithmetic the same as ps_store_accumulate and
 * ps_store_apply_accumulated over the whole shard, so the round's θ is the
 * same bit for bit. Between round_begin and the round's last round_apply
 * θ is not moved to another buffer: a reply may hold the buffer for a
 * range already applied while the others are written. round_sum adds
 * weight · grad to the accumulator's range (first: overwrites; grad NULL
 * with first: zeros); round_apply applies scale · grad (NULL: the
 * accumulator's range) with the round's update. PS_ERANGE for a range
 * out of the shard, PS_ESTATE without an accumulator or a round begun. */
void ps_store_round_begin(ps_store *s);
int ps_store_round_sum(ps_store *s, size_t off, const void *grad, size_t n, float weight,
                       bool first);
int ps_store_round_apply(ps_store *s, size_t off, const void *grad, size_t n, float scale);
void ps_store_round_end(ps_store *s);

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
 * state arrays; each entry points at the live array (n floats), to be read
 * (a checkpoint written from it): valid until the next write of θ. Fills
 * up to max entries and *count. PS_EINVAL when max is too small. */
int ps_store_ckpt_arrays(const ps_store *s, ps_ckpt_array *out, size_t max, size_t *count);

/* The same arrays, writable, so a checkpoint can be loaded straight into
 * them: θ is made safe to write first (copied off a buffer a reply holds).
 * Valid until the next write or hold of θ. */
int ps_store_ckpt_arrays_for_load(ps_store *s, ps_ckpt_array *out, size_t max, size_t *count);

/* Sets the update count t (from a checkpoint: schedules and adam go on from
 * where they were). */
void ps_store_set_updates(ps_store *s, uint64_t updates);

/* The schedule's lag behind t (ps_optim_set_lag). */
void ps_store_set_schedule_lag(ps_store *s, uint64_t lag);

/* The initial value of key k of θ under the job's init scheme, given the
 * layout tensors (ntensors of them, offsets set). Pure: the same job, layout
 * and k give the same value, whatever the shard. */
float ps_store_init_value(const ps_job *job, const ps_tensor_info *tensors, size_t ntensors,
                          uint64_t k);

#endif
