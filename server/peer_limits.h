/* peer_limits.h — the limits a hostile peer cannot exceed on one shard's
 * ROUTER (limits.max_peers, limits.unregistered_rate): connections are
 * counted from the socket's monitor and those beyond the cap shut at once;
 * a peer psd has not welcomed spends a token per message from a bucket
 * that refills at the rate, and a message with none left is refused
 * before it costs more. Each kind of refusal is logged once and counted.
 * Belongs to the thread that runs the server. */
#ifndef PS_PEER_LIMITS_H
#define PS_PEER_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "error.h"
#include "job.h"
#include "log.h"
#include "metrics.h"
#include "zap.h"

typedef struct ps_peer_limits ps_peer_limits;

/* Limits for the bound ROUTER sock of shard `shard` (endpoint for
 * messages): a monitor PAIR in zctx on its connection events (and, with
 * zap, the handshake events ZAP wants, handed on to it), and a rate table
 * sized for max_peers (0 in the job: 4 per worker plus 64). engine tells
 * which welcomed peers are still workers; counters get refused_peers and
 * refused_rate. engine, zap, counters and log must outlive the limits.
 * NULL and err filled (PS_EZMQ, PS_ENOMEM) on failure. */
ps_peer_limits *ps_peer_limits_new(void *zctx, void *sock, const ps_job *job, uint32_t shard,
                                   const char *endpoint, const ps_engine *engine, ps_zap *zap,
                                   ps_metrics_counters *counters, const ps_log *log, ps_error *err);

/* Reads what the monitor has: counts connections, shuts those over the
 * cap, hands ZAP its events. Never blocks. */
void ps_peer_limits_tick(ps_peer_limits *l);

/* The monitor socket, for the loop's poll (readable: call tick). */
void *ps_peer_limits_monitor(const ps_peer_limits *l);

/* True when a message from this peer (ROUTER identity) is over its rate
 * at now_ms: the caller refuses it with PS_EFULL and ps_peer_limits_why.
 * A welcomed peer is never limited; a new peer starts with a full bucket,
 * unless every slot of the table is taken by a live peer. */
bool ps_peer_limits_over(ps_peer_limits *l, const void *identity, size_t identity_len,
                         uint64_t now_ms);

/* The sentence for a message refused by ps_peer_limits_over. */
const char *ps_peer_limits_why(const ps_peer_limits *l);

/* A WELCOME went to this peer as worker_id: its messages are no longer
 * limited while that worker lives. */
void ps_peer_limits_welcomed(ps_peer_limits *l, const void *identity, size_t identity_len,
                             uint32_t worker_id);

/* One log line of what was refused, when anything was. */
void ps_peer_limits_report(const ps_peer_limits *l);

/* Closes the monitor, frees the limits and sets *lp to NULL; NULL is fine. */
void ps_peer_limits_destroy(ps_peer_limits **lp);

#endif
