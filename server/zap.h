/* zap.h — CURVE on psd's ROUTER and the ZAP handler that decides who gets
 * in (ZeroMQ's authentication protocol, RFC 27). A connection is admitted
 * only for a public key of security.curve.authorized_workers or
 * authorized_admins; its messages then carry the key's role (ZAP User-Id)
 * and ps_zap_admits lets workers train and admins run psctl's requests.
 *
 * The handler is a REP socket on inproc://zeromq.zap.01 in psd's own
 * context, polled by psd's own loop beside the ROUTER (no thread): ZAP
 * requests come once per connection, the key sets, the refusal log and the
 * counters are then touched by one thread without locks, and a handshake
 * waits at most one turn of the loop. Every socket here belongs to the
 * thread that runs the server. */
#ifndef PS_ZAP_H
#define PS_ZAP_H

#include <stdbool.h>
#include <stdint.h>
#include <zmq.h>

#include "codec.h"
#include "error.h"
#include "job.h"
#include "log.h"

/* The ROUTER's socket-monitor events ps_zap_handshake_event wants: one
 * monitor per socket, so the server's own monitor asks for these too. */
#define PS_ZAP_MONITOR_EVENTS                                                                      \
    (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |                  \
     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

typedef struct ps_zap ps_zap;

/* Loads psd's secret key (security.curve.server_secret_key, mode 0600 or
 * from $CREDENTIALS_DIRECTORY) and the authorized keys, makes router a
 * CURVE server and binds the ZAP handler in zctx. Call before router
 * binds; one per context. Returns NULL and
 * fills err: PS_ECONFIG (a key missing from the job, a key file others may
 * read, a malformed key: the file named), PS_EIO, PS_EZMQ. */
ps_zap *ps_zap_new(void *zctx, void *router, const ps_job *job, uint32_t shard, const ps_log *log,
                   ps_error *err);

/* The socket ZAP requests come on, to wait for (POLLIN); when it is
 * readable, ps_zap_handle answers until none is left. */
void *ps_zap_socket(ps_zap *z);

/* Answers every waiting ZAP request: a refused key is logged once (its
 * public key and the peer's address) and counted. Never blocks. */
void ps_zap_handle(ps_zap *z);

/* One event of the ROUTER's monitor (any; those of PS_ZAP_MONITOR_EVENTS
 * count): a client without CURVE or with the wrong server key is logged
 * once per kind, naming endpoint, and counted. */
void ps_zap_handshake_event(ps_zap *z, uint16_t event, uint32_t value, const char *endpoint);

/* Whether the peer that sent the message whose frame is part may make a
 * request of type: admins STATUS and CHECKPOINT, workers everything else
 * and STATUS too (it only reads: a worker asks it at its job's end).
 * A refusal is counted and logged once per key with the peer's address. */
bool ps_zap_admits(ps_zap *z, zmq_msg_t *part, ps_msg_type type);

/* Connections and requests refused so far. */
uint64_t ps_zap_refused(const ps_zap *z);

/* Closes the sockets, frees the keys and sets *zp to NULL; NULL is fine. */
void ps_zap_destroy(ps_zap **zp);

#endif
