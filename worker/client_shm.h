/* client_shm.h — shared memory with a shard on this host, the worker's
 * side (common/shm.h): the segment a WELCOME offers, a push's gradient put
 * into it, a pull's θ read from it, and giving it up when a push goes
 * unanswered (the server may still read it). */
#ifndef PS_CLIENT_SHM_H
#define PS_CLIENT_SHM_H

#include "client_impl.h"

/* Opens the segment a WELCOME (m) offers shard s (a new one replaces the
 * old: the shard restarted); when it cannot be used the shard goes on over
 * the socket, and shm_why says why. */
void ps_client_shm_attach(ps_client *c, shard *s, const ps_msg *m);

/* Puts push seq's gradient slice (bytes long) into shard s's segment and
 * marks it as seq's; a resend of the same push finds it there. */
void ps_client_shm_grad_put(shard *s, const float *grad, size_t bytes, uint64_t seq);

/* After a push exchange: shards that did not answer it use their segment
 * no more. */
void ps_client_shm_after_push(ps_client *c);

/* A PULL_REPLY (m) from shard i whose θ is in shared memory: used there (one
 * shard, a view) or copied into o->theta; *version gets the smaller of it
 * and the reply's. 0, or PS_EPROTO / PS_ENOMEM with the sentence in why. */
int ps_client_shm_pull_accept(ps_client *c, op *o, size_t i, const ps_msg *m, uint64_t *version,
                              char *why, size_t cap);

#endif
