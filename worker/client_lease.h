/* client_lease.h — libpsworker's side of the batch queue (data.assign:
 * dynamic; psd's batchq.h): shard 0 leases batches to the worker and marks
 * them trained as their pushes come. Internal to psworker (not exported):
 * a worker of another program trains its own data. */
#ifndef PS_CLIENT_LEASE_H
#define PS_CLIENT_LEASE_H

#include <stdint.h>

#include "psworker.h"

/* What the next push (ps_client_push_pull or ps_client_push) tells shard 0:
 * batch is the batch its gradient is of (counted across epochs) + 1, or 0;
 * want the batches more it asks to lease; epoch_batches the batches of an
 * epoch as this worker counts them. Cleared once that push is done. */
void ps_client_lease_push_set(ps_client *c, uint64_t batch, uint32_t want, uint32_t epoch_batches);

/* The grant shard 0's last reply (to a push or a LEASE) carried: the first
 * batch, how many, and PS_LEASE_WAIT or PS_LEASE_END (msg.h) in *flags. */
void ps_client_lease_got(const ps_client *c, uint64_t *first, uint32_t *count, uint32_t *flags);

/* Asks shard 0 for up to want batches (a LEASE; a shard that lost us is
 * registered with again first); the grant as ps_client_lease_got gives it.
 * 0 or the client's error codes. */
int ps_client_lease(ps_client *c, uint32_t want, uint32_t epoch_batches, uint64_t *first,
                    uint32_t *count, uint32_t *flags);

#endif
