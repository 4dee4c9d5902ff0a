/* heartbeat.h — the client's heartbeat thread: every heartbeat_ms a
 * HEARTBEAT to each shard that knows the worker, on sockets of a ZeroMQ
 * context of its own, so a worker busy computing or waiting in a parked
 * pull is not evicted; what the replies say reaches the caller's thread
 * through the client (a final ERROR, a shard that lost the worker). */
#ifndef PS_HEARTBEAT_H
#define PS_HEARTBEAT_H

#include "client_impl.h"

/* Starts the thread with its context and stop descriptor; 0 or PS_ENOMEM /
 * PS_EZMQ (nothing is left started then: call ps_heartbeat_stop). */
int ps_heartbeat_start(ps_client *c);

/* Ends the thread at once and frees what ps_heartbeat_start made; safe
 * when it was never started. */
void ps_heartbeat_stop(ps_client *c);

#endif
