/* membership.h — a client's registration with the shards: HELLO to shard
 * 0 for a rank, then to the others with it; each WELCOME checked against
 * the job it describes (a shard map tiling θ, tensors tiling θ, one mode
 * every shard agrees on) and what it says of the rank's pushes (exactly
 * once across a server's restart); BYE when the worker leaves. */
#ifndef PS_MEMBERSHIP_H
#define PS_MEMBERSHIP_H

#include "client_impl.h"

/* HELLO to shard 0 first, for the rank (-1: any); then to the others with
 * that rank. 0 or the first error (last_error says it). */
int ps_membership_register(ps_client *c, int rank);

/* Takes shard i's WELCOME (m) for the HELLO exchange o: its worker id, the
 * job's description (shard 0's; every other must agree), the rank's pushes
 * and shared memory. A WELCOME that does not fit ends shard i's part with
 * PS_EPROTO. */
void ps_membership_welcome(ps_client *c, op *o, size_t i, const ps_msg *m);

/* Says BYE (with flags and why) to the shards that know us, which then
 * know us no more; the first error, if any. Nothing is sent once a server
 * stopped the client (a final ERROR). */
int ps_membership_bye(ps_client *c, uint32_t flags, const char *why);

/* A random id for this client process, never 0. */
uint64_t ps_membership_incarnation(void);

#endif
