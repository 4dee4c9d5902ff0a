/* exchange.h — the client's retry core: one exchange (op) sends its
 * request to every shard marked asked before it awaits any reply; replies
 * are matched by seq, so a late reply to an older request is dropped
 * (except a final ERROR: the server stopped); a request still unanswered
 * is sent again with the same seq until the shard has been silent for the
 * timeout. A big push payload goes out straight from the caller's
 * gradient (no copy). A PUSH may carry the pull of the next θ in it
 * (PS_FLAG_PULL): one request and one reply per shard. */
#ifndef PS_EXCHANGE_H
#define PS_EXCHANGE_H

#include "client_impl.h"

/* Runs one exchange with the shards marked asked: sends the request to all
 * of them, then awaits all replies. With resend, a shard still silent gets
 * the request again (same seq) after CLIENT_RETRY_FIRST_MS, then after
 * waits that double. A shard's part ends timeout_ms after it last answered
 * anything. Every CLIENT_CHECK_MS of waiting it looks at what the heartbeat
 * thread learnt: a final ERROR ends the exchange with its code, a shard
 * that lost us ends it with PS_EWORKER. Returns 0 or the first error,
 * which last_error tells; each shard's own outcome is in its status. */
int ps_exchange_run(ps_client *c, op *o, bool resend, int timeout_ms);

/* Runs a PULL, PUSH or HEARTBEAT exchange with every shard; a shard that
 * restarted or evicted us gets HELLO again (and DONE again if we said it):
 * in a mode with rounds the call then ends with PS_EREJOINED, otherwise
 * the request is sent once more. */
int ps_exchange_all(ps_client *c, op *o);

/* Marks the shards an exchange asks: all (those the client is registered
 * with, when registered_only) or none. */
void ps_exchange_mark(ps_client *c, bool all, bool registered_only);

/* Ends shard i's part of exchange o with an error (a pull riding in or
 * behind the request is given up with it); the first error of an exchange
 * is the one last_error tells and ps_exchange_run returns. */
void ps_exchange_fail(ps_client *c, op *o, size_t i, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
