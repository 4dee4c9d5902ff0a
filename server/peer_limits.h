/* peer_limits.h — the limits a hostile peer cannot exceed on one shard's
 * ROUTER (limits.max_peers, limits.unregistered_rate), kept per connection
 * (its file descriptor: the socket monitor's ACCEPTED and DISCONNECTED, and
 * each message's ZMQ_SRCFD).
 *
 * Connections are of two kinds. A registered one is a worker's: psd sent
 * it a WELCOME, or it speaks for a live worker (its heartbeats); there are
 * at most PS_PEER_REGISTERED_PER_WORKER per worker of the job, they are
 * never closed for want of room and never rate-limited. Every other
 * connection is unregistered, and at most max_peers of those are held:
 * every new connection is taken, and once what came meanwhile was read,
 * the least useful unregistered ones are closed to make room: first those
 * whose peer has not sent a byte, then part of a greeting, the oldest
 * first; then the one whose latest sign of life (connecting, or its latest
 * message) is oldest. An unregistered connection that sends no message
 * within PS_PEER_SILENT_MS of connecting is closed (psd sets ZeroMQ's
 * handshake bound to the same). So strangers, however many, do not lock
 * the job's workers or admins out. An unregistered connection spends a
 * token per message from a bucket of the rate that starts full, so its
 * first message always passes. Each kind of refusal is logged once and
 * counted.
 * Belongs to the thread that runs the server. */
#ifndef PS_PEER_LIMITS_H
#define PS_PEER_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "engine.h"
#include "error.h"
#include "job.h"
#include "log.h"
#include "metrics.h"
#include "zap.h"

/* An unregistered connection has this long from connecting to send its
 * first message (HELLO, or an admin's request); also ZMQ_HANDSHAKE_IVL of
 * the ROUTER, set before it binds. */
#define PS_PEER_SILENT_MS 5000

/* Registered connections a worker may hold on one shard: its requests and
 * its heartbeats, and as many again while it reconnects. */
#define PS_PEER_REGISTERED_PER_WORKER 4

typedef struct ps_peer_limits ps_peer_limits;

/* Limits for the bound ROUTER sock of shard `shard` (endpoint for
 * messages): a monitor PAIR in zctx on its connection events (and, with
 * zap, the handshake events ZAP wants, handed on to it). max_peers 0 in
 * the job: 4 per worker plus 64. engine tells which workers are live;
 * counters get refused_peers and refused_rate. engine, zap, counters and
 * log must outlive the limits. NULL and err filled (PS_EZMQ, PS_ENOMEM)
 * on failure. */
ps_peer_limits *ps_peer_limits_new(void *zctx, void *sock, const ps_job *job, uint32_t shard,
                                   const char *endpoint, const ps_engine *engine, ps_zap *zap,
                                   ps_metrics_counters *counters, const ps_log *log, ps_error *err);

/* Reads what the monitor has: notes connections come and gone; hands ZAP
 * its events. Never blocks. */
void ps_peer_limits_tick(ps_peer_limits *l);

/* The monitor socket, for the loop's poll (readable: call tick). */
void *ps_peer_limits_monitor(const ps_peer_limits *l);

/* The connection a received frame (one after the identity) came on: its
 * file descriptor, or -1 when ZeroMQ does not say. */
int ps_peer_limits_fd_of(const zmq_msg_t *part);

/* True when the message that came on connection fd is from one psd has
 * closed (ps_peer_limits_sweep): the caller drops it unanswered, as nobody
 * could get the answer (and a HELLO would register a worker nobody is). */
bool ps_peer_limits_closed(ps_peer_limits *l, int fd, uint64_t now_ms);

/* A message came on connection fd at now_ms. True when it is over the
 * connection's rate: the caller refuses it with PS_EFULL and
 * ps_peer_limits_why. A registered connection is never over, nor is a
 * connection's first message, nor one of fd -1. */
bool ps_peer_limits_over(ps_peer_limits *l, int fd, uint64_t now_ms);

/* The sentence for a message refused by ps_peer_limits_over. */
const char *ps_peer_limits_why(const ps_peer_limits *l);

/* Connection fd sent a message of worker worker_id that was admitted:
 * when that worker is live, the connection is registered as its (within
 * PS_PEER_REGISTERED_PER_WORKER per worker). */
void ps_peer_limits_heard(ps_peer_limits *l, int fd, uint32_t worker_id);

/* A WELCOME went to connection fd as worker_id: registered as its. */
void ps_peer_limits_welcomed(ps_peer_limits *l, int fd, uint32_t worker_id);

/* Closes unregistered connections: over max_peers (the least useful
 * first), and those that sent no message within PS_PEER_SILENT_MS of
 * connecting (time psd itself stood still does not count). Call after
 * reading the ROUTER, all_read when it was read dry: otherwise only room
 * beyond twice max_peers is made, since a connection's first message may
 * be waiting to be read. */
void ps_peer_limits_sweep(ps_peer_limits *l, bool all_read, uint64_t now_ms);

/* One log line of what was refused, when anything was. */
void ps_peer_limits_report(const ps_peer_limits *l);

/* Closes the monitor, frees the limits and sets *lp to NULL; NULL is fine. */
void ps_peer_limits_destroy(ps_peer_limits **lp);

#endif
