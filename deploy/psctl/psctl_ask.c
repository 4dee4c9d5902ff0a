/* psctl_ask.c — psctl's requests to psd: one DEALER per shard, the request
 * sent to all of them at once and the replies taken as they come, so a job
 * of many shards answers in the time of its slowest shard, and a silent
 * shard costs timeout_ms once, not once per shard. */
#include "psctl_ask.h"
#include "text.h"
#include "util.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* What one call needs beyond the stack's comfort: a request, a reply and
 * the frames a reply is received into (64 KiB of arena). */
typedef struct ask_bufs {
    ps_msg req, rep;
    ps_frames frames;
} ask_bufs;

/* A DEALER connected to the shard's endpoint, with the job's keys; NULL
 * with r->why filled when it cannot be made. */
static void *shard_connect(void *zctx, const ps_job *job, const ps_psctl_keys *keys, uint32_t shard,
                           ps_psctl_reply *r)
{
    void *sock = zmq_socket(zctx, ZMQ_DEALER);
    if (sock == NULL) {
        snprintf(r->why, sizeof r->why, "cannot make a socket: %s", zmq_strerror(errno));
        return NULL;
    }
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (keys->on) {
        zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, keys->server.public_z85, PS_CURVE_Z85_LEN);
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, keys->admin.public_z85, PS_CURVE_Z85_LEN);
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, keys->admin.secret_z85, PS_CURVE_Z85_LEN);
    }
    if (zmq_connect(sock, job->servers[shard]) != 0) {
        snprintf(r->why, sizeof r->why, "cannot connect: %s", zmq_strerror(errno));
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

/* Takes the reply waiting on sock. False when there was none after all
 * (the shard stays pending); true once the shard's outcome is in *r. */
static bool reply_take(void *sock, uint32_t shard, ask_bufs *b, ps_psctl_reply *r,
                       ps_psctl_reply_fn on_reply, void *ctx)
{
    ps_error err;
    int rc = ps_wire_recv(sock, false, ZMQ_DONTWAIT, &b->frames, &b->rep, &err);
    if (rc == PS_EZMQ && (errno == EAGAIN || errno == EINTR)) {
        ps_frames_close(&b->frames);
        return false;
    }
    char said[PS_ERROR_MSG_MAX]; /* the shard's words, or what they quote: made printable */
    if (rc != 0)
        snprintf(said, sizeof said, "%s", err.msg);
    else if (b->rep.type == PS_MSG_ERROR)
        snprintf(said, sizeof said, "%s (%s)", b->rep.error, ps_err_name(b->rep.status));
    else if (on_reply != NULL && on_reply(shard, &b->rep, ctx, &err) != 0)
        snprintf(said, sizeof said, "%s", err.msg);
    else
        r->answered = true;
    if (!r->answered)
        ps_text_printable(r->why, sizeof r->why, said);
    ps_frames_close(&b->frames);
    return true;
}

int ps_psctl_ask(void *zctx, const ps_job *job, const ps_psctl_keys *keys, int only,
                 ps_msg_type type, int timeout_ms, ps_psctl_reply *replies,
                 ps_psctl_reply_fn on_reply, void *ctx)
{
    ask_bufs *b = malloc(sizeof *b);
    if (b == NULL)
        return PS_ENOMEM;
    ps_msg_init(&b->req, type);
    b->req.job = job->name;
    ps_frames_init(&b->frames);
    b->req.seq = 1;

    zmq_pollitem_t items[PS_MAX_SHARDS];
    uint32_t shard_of[PS_MAX_SHARDS];
    int n = 0;
    for (uint32_t i = 0; i < job->nservers; i++) {
        ps_psctl_reply *r = &replies[i];
        memset(r, 0, sizeof *r);
        if (only >= 0 && (uint32_t)only != i)
            continue;
        r->asked = true;
        void *sock = shard_connect(zctx, job, keys, i, r);
        if (sock == NULL)
            continue;
        if (ps_wire_send(sock, NULL, 0, &b->req, NULL, 0) != 0) {
            snprintf(r->why, sizeof r->why, "cannot send: %s", zmq_strerror(errno));
            zmq_close(sock);
            continue;
        }
        items[n] = (zmq_pollitem_t){.socket = sock, .events = ZMQ_POLLIN};
        shard_of[n++] = i;
    }

    int rc = 0, poll_errno = 0;
    int pending = n;
    uint64_t deadline = ps_clock_ms() + (uint64_t)timeout_ms;
    while (pending > 0 && rc == 0) {
        uint64_t now = ps_clock_ms();
        if (now >= deadline)
            break;
        if (zmq_poll(items, n, (long)(deadline - now)) < 0) {
            poll_errno = errno;
            rc = poll_errno == EINTR ? PS_EINTR : PS_EZMQ;
            break;
        }
        for (int k = 0; k < n; k++) {
            if (!(items[k].revents & ZMQ_POLLIN) || items[k].events == 0)
                continue;
            if (reply_take(items[k].socket, shard_of[k], b, &replies[shard_of[k]], on_reply, ctx)) {
                items[k].events = 0; /* done: not polled again */
                pending--;
            }
        }
    }
    for (int k = 0; k < n; k++) {
        ps_psctl_reply *r = &replies[shard_of[k]];
        if (items[k].events != 0 && rc == PS_EINTR)
            snprintf(r->why, sizeof r->why, "interrupted");
        else if (items[k].events != 0 && rc == PS_EZMQ)
            snprintf(r->why, sizeof r->why, "cannot wait for a reply: %s",
                     zmq_strerror(poll_errno));
        else if (items[k].events != 0)
            snprintf(r->why, sizeof r->why, "no answer within %d ms%s", timeout_ms,
                     keys->on ? " (with CURVE: is this key authorized, and the server key psd's?)"
                              : "");
        zmq_close(items[k].socket);
    }
    free(b);
    return rc == PS_EINTR ? PS_EINTR : 0;
}
