/* client_shm.c — the worker's side of shared memory with a shard on its
 * host (client_shm.h). */
#include "client_shm.h"

#include <stdio.h>
#include <string.h>

/* Puts push seq's gradient slice (bytes long) into shard s's shared memory
 * and marks it as seq's; a resend of the same push finds it there. */
void ps_client_shm_grad_put(shard *s, const float *grad, size_t bytes, uint64_t seq)
{
    if (s->shm_grad_seq == seq && seq != 0)
        return;
    if (grad != s->shm.grad)
        memcpy(s->shm.grad, grad, bytes);
    s->shm_grad_seq = seq;
    ps_shm_grad_mark(&s->shm, seq);
}

/* Opens the shared memory a WELCOME offers (a new one replaces the old: the
 * shard restarted); when it cannot be used the shard goes on over the
 * socket, and shm_why says why. */
void ps_client_shm_attach(ps_client *c, shard *s, const ps_msg *m)
{
    if (m->shm_bytes == 0 || c->host[0] == '\0' || s->key_hi == s->key_lo)
        return;
    if (ps_shm_mapped(&s->shm) && s->shm.token == m->shm_token)
        return; /* a retried HELLO's WELCOME */
    ps_shm_detach(&s->shm_old);
    s->shm_old = s->shm;
    s->shm_on = false;
    s->shm_grad_seq = 0;
    ps_error err;
    if (ps_shm_attach(&s->shm, m->shm_pid, m->shm_fd, m->shm_bytes, m->shm_token,
                      (size_t)(s->key_hi - s->key_lo), &err) != 0) {
        snprintf(c->shm_why, sizeof c->shm_why, "%s: %s", s->endpoint, err.msg);
        return;
    }
    s->shm_on = true;
}

/* After a push that shard s did not answer: its shared memory is used no
 * more, since the server may still read the gradient there for it. */
static void shm_give_up(ps_client *c, shard *s)
{
    if (!s->shm_on)
        return;
    s->shm_on = false;
    snprintf(c->shm_why, sizeof c->shm_why,
             "%s: a push went unanswered: θ and gradients go over the socket from now on",
             s->endpoint);
}

/* After a push exchange: shards that did not answer it give up shared
 * memory (shm_give_up). */
void ps_client_shm_after_push(ps_client *c)
{
    for (size_t i = 0; i < c->nshards; i++)
        if (c->shards[i].pending)
            shm_give_up(c, &c->shards[i]);
}

/* A PULL_REPLY from shard i whose θ is in shared memory: used there (one
 * shard, a view) or copied into o->theta. */
int ps_client_shm_pull_accept(ps_client *c, op *o, size_t i, const ps_msg *m, uint64_t *version,
                              char *why, size_t cap)
{
    shard *s = &c->shards[i];
    size_t bytes = (size_t)(s->key_hi - s->key_lo) * sizeof(float);
    if (!s->shm_on || m->payload_bytes != bytes) {
        snprintf(why, cap, "%s: PULL_REPLY says %llu bytes of θ are in shared memory, %s",
                 s->endpoint, (unsigned long long)m->payload_bytes,
                 s->shm_on ? "a different size" : "but none is in use");
        return PS_EPROTO;
    }
    if (o->view && c->nshards == 1) {
        if (c->view_held)
            zmq_msg_close(&c->view_msg);
        c->view_held = false;
        o->view_out = s->shm.theta;
    } else {
        if (o->theta == NULL && (o->theta = ps_client_theta_buf(c)) == NULL) {
            snprintf(why, cap, "out of memory for θ");
            return PS_ENOMEM;
        }
        memcpy(o->theta + s->key_lo, s->shm.theta, bytes);
        o->view_out = NULL;
    }
    s->theta_version = m->model_version;
    if (m->model_version < *version)
        *version = m->model_version;
    return 0;
}
