/* batchq.h — the queue of an epoch's batches (data.assign: dynamic), kept
 * by shard 0. Batch b (counted across epochs) is index b % epoch_batches of
 * epoch b / epoch_batches; every worker can draw that epoch's order of the
 * rows from the job's seed, so a batch's number is all it needs. A worker
 * leases a few batches ahead; its push of a batch marks it trained, once
 * (the first push of a batch counts, any later one is refused: each batch
 * is trained exactly once per epoch); the leases of a worker that is gone
 * go back to the queue. The epoch moves on once every one of its batches is
 * trained. The state survives a restart of psd through the checkpoint
 * (ps_batchq_save / ps_batchq_load): which batches of the epoch are
 * trained and each rank's count; leases are not kept (they go back). One
 * thread at a time. */
#ifndef PS_BATCHQ_H
#define PS_BATCHQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define PS_BATCHQ_LEASE_MAX 16 /* batches one rank may hold at once */

typedef struct ps_batchq ps_batchq;

/* An unsized queue for a job of `epochs` epochs and `workers` ranks (>= 1
 * each); NULL with err when memory is short. */
ps_batchq *ps_batchq_new(uint32_t epochs, uint32_t workers, ps_error *err);
void ps_batchq_destroy(ps_batchq **qp);

/* Sizes the queue at its first use: epoch_batches batches an epoch (the
 * workers count them from their data). 0 when it is that size already;
 * PS_ECONFIG with err when it holds another size (a worker of another
 * batch size or data file), PS_EINVAL for 0, PS_ENOMEM. */
int ps_batchq_size(ps_batchq *q, uint64_t epoch_batches, ps_error *err);

/* Batches an epoch (0: not sized yet). */
uint64_t ps_batchq_epoch_batches(const ps_batchq *q);

/* Leases up to want (at most PS_BATCHQ_LEASE_MAX held) free batches of
 * the current epoch to rank: *first and *count (a run of consecutive
 * batches; 0 when none), and *flags PS_LEASE_WAIT (none free: the epoch
 * waits on leases others hold) or PS_LEASE_END (the job's batches are all
 * trained), else 0. A sized queue only. */
void ps_batchq_lease(ps_batchq *q, uint32_t rank, uint32_t want, uint64_t *first, uint32_t *count,
                     uint32_t *flags);

/* Rank pushed batch b: 0 when b is marked trained now (counted for rank;
 * its lease, whoever held it, ends); 1 when b was trained already (by a
 * push before: not to be applied again); PS_ERANGE when b is of an epoch
 * not open yet or past the job. */
int ps_batchq_done(ps_batchq *q, uint32_t rank, uint64_t b);

/* The leases rank holds go back to the queue (its worker was evicted,
 * left or died); how many. */
uint32_t ps_batchq_release(ps_batchq *q, uint32_t rank);

/* Batches rank trained (pushes marked), over the job. */
uint64_t ps_batchq_rank_batches(const ps_batchq *q, uint32_t rank);

/* Leases rank holds now. */
uint32_t ps_batchq_rank_held(const ps_batchq *q, uint32_t rank);

/* Batches trained over the job, the epoch open (0-based; epochs once
 * finished) and whether every batch of the job is trained. */
uint64_t ps_batchq_trained(const ps_batchq *q);
uint32_t ps_batchq_epoch(const ps_batchq *q);
bool ps_batchq_finished(const ps_batchq *q);

/* The queue as bytes for a checkpoint: ps_batchq_bytes of them (0 for an
 * unsized queue: nothing to keep) written by ps_batchq_save. */
size_t ps_batchq_bytes(const ps_batchq *q);
void ps_batchq_save(const ps_batchq *q, void *buf);

/* Restores a queue saved by ps_batchq_save (every lease back in the
 * queue). PS_EPROTO with err when the bytes are not such a queue, or one of
 * another number of epochs; PS_ENOMEM. Nothing changes on an error. */
int ps_batchq_load(ps_batchq *q, const void *buf, size_t n, ps_error *err);

#endif
