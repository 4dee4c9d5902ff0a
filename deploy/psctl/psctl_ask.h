/* psctl_ask.h — psctl's requests to the psd shards of a job: one request to
 * every shard at once (or to one), with CURVE when the job has it, and for
 * each shard either its reply or the sentence saying why there is none.
 * ZeroMQ sockets live only inside ps_psctl_ask, on the caller's thread. */
#ifndef PS_PSCTL_ASK_H
#define PS_PSCTL_ASK_H

#include <stdbool.h>
#include <stdint.h>

#include "codec.h"
#include "curve.h"
#include "error.h"
#include "job.h"

/* The keys psctl talks CURVE with: the admin's pair and psd's public key.
 * on is false for a job without security.curve. */
typedef struct ps_psctl_keys {
    bool on;
    ps_curve_pair admin, server;
} ps_psctl_keys;

/* What became of the request to one shard. */
typedef struct ps_psctl_reply {
    bool asked;    /* the shard was asked (every shard, or the one of --shard) */
    bool answered; /* it replied, and the reply was not an ERROR */
    /* when asked but not answered: why, without the shard's name
     * ("no answer within 300 ms", "job stopped (PS_EABORTED)") */
    char why[PS_ERROR_MSG_MAX];
} ps_psctl_reply;

/* Called for each reply that is not an ERROR, while its payload frame is
 * still open (rep->payload is valid only during the call). Returns 0, or a
 * PS_E code with err filled: the shard then counts as not answered, err's
 * sentence as why. */
typedef int (*ps_psctl_reply_fn)(uint32_t shard, const ps_msg *rep, void *ctx, ps_error *err);

/* Sends a request of type to shard `only` (or to every shard when only < 0)
 * of job at once, and waits up to timeout_ms in all for the replies, giving
 * each to on_reply; replies[0 .. job->nservers - 1] say what became of each
 * shard. Returns 0 once every shard asked answered or ran out of time (see
 * replies), PS_EINTR when a signal interrupted the wait (replies then hold
 * what came so far; the others read "interrupted"), PS_ENOMEM. */
int ps_psctl_ask(void *zctx, const ps_job *job, const ps_psctl_keys *keys, int only,
                 ps_msg_type type, int timeout_ms, ps_psctl_reply *replies,
                 ps_psctl_reply_fn on_reply, void *ctx);

#endif
