/* client_codec.c — compressed pushes and pulls on the client
 * (client_codec.h). */
#include "client_codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Push compression as opts asks: the codec, and buffers for every shard's
 * encoded slice, the residual and scratch, allocated once. */
int ps_client_codec_init(ps_client *c, const ps_client_opts *opts, char *why, size_t cap)
{
    ps_compress_type type = PS_COMPRESS_NONE;
    if (opts->push_compression != NULL && ps_compress_parse(opts->push_compression, &type) != 0) {
        char names[128];
        ps_compress_list(names, sizeof names, 0);
        snprintf(why, cap, "push compression \"%s\" is not %s", opts->push_compression, names);
        return PS_EINVAL;
    }
    if (type == PS_COMPRESS_TOPK && !(opts->push_topk_ratio > 0 && opts->push_topk_ratio <= 1)) {
        snprintf(why, cap, "push topk ratio must be in (0, 1], got %g", opts->push_topk_ratio);
        return PS_EINVAL;
    }
    if (type == PS_COMPRESS_NONE)
        return 0;
    c->push_ops = ps_compress_ops_get(type);
    c->topk_ratio = opts->push_topk_ratio;
    c->error_feedback = opts->push_error_feedback != 0;
    size_t total = 0, widest = 1;
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];
        size_t n = (size_t)(s->key_hi - s->key_lo);
        s->enc_k = ps_compress_topk_k(n, c->topk_ratio);
        s->enc_off = total;
        s->enc_bytes = c->push_ops->bytes(n, s->enc_k);
        size_t room = s->enc_bytes;
        if (s->nchunks > 1) { /* each chunk on its own (pipelined sync pushes) */
            for (uint32_t k = 0; k < s->nchunks; k++) {
                uint64_t lo, hi;
                ps_client_chunk_range(s, k, &lo, &hi);
                size_t nk = (size_t)(hi - lo);
                s->chunk_enc_off[k + 1] =
                    s->chunk_enc_off[k] +
                    c->push_ops->bytes(nk, ps_compress_topk_k(nk, c->topk_ratio));
            }
            if (s->chunk_enc_off[s->nchunks] > room)
                room = s->chunk_enc_off[s->nchunks];
        }
        total += (room + 7) & ~(size_t)7;
        widest = n > widest ? n : widest;
    }
    c->enc = malloc(total > 0 ? total : 1);
    c->scratch = malloc(widest * sizeof(float));
    if (c->error_feedback)
        c->residual = calloc(c->num_params > 0 ? (size_t)c->num_params : 1, sizeof(float));
    if (c->enc == NULL || c->scratch == NULL || (c->error_feedback && c->residual == NULL)) {
        snprintf(why, cap, "out of memory for push compression");
        return PS_ENOMEM;
    }
    return 0;
}

/* Compresses grad for every shard it goes to over the socket, once per
 * push (a resend sends the same bytes): error feedback adds what the last
 * push dropped and keeps what this one drops. PS_EINVAL for a gradient
 * that is not finite. */
/* Shard s's slice of grad, chunk by chunk: each chunk encoded on its own,
 * its own k (topk) and scales (int8), error feedback per coordinate as for
 * a whole slice. */
static int encode_chunks(ps_client *c, shard *s, const float *grad)
{
    for (uint32_t k = 0; k < s->nchunks; k++) {
        uint64_t lo, hi;
        ps_client_chunk_range(s, k, &lo, &hi);
        size_t n = (size_t)(hi - lo), kk = ps_compress_topk_k(n, c->topk_ratio);
        unsigned char *out = c->enc + s->enc_off + s->chunk_enc_off[k];
        int rc = c->error_feedback ? ps_compress_encode_ef(c->push_ops, grad + lo, c->residual + lo,
                                                           n, kk, out, c->scratch)
                                   : c->push_ops->encode(grad + lo, n, kk, out, c->scratch);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int ps_client_codec_encode(ps_client *c, const float *grad, bool chunks)
{
    for (size_t i = 0; i < c->nshards; i++) {
        c->shards[i].enc_ready = false;
        c->shards[i].enc_chunked = false;
    }
    if (c->push_ops == NULL)
        return 0;
    /* every slice is checked before any is encoded: a push refused for a
     * NaN in one slice leaves the residual of the others as it was */
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];
        if (s->shm_on)
            continue;
        for (uint64_t k = s->key_lo; k < s->key_hi; k++)
            if (!isfinite(grad[k]))
                return ps_client_fail(c, PS_EINVAL,
                                      "push: the gradient for shard %zu holds a NaN or an "
                                      "infinity: it has no %s encoding",
                                      i, c->push_ops->name);
    }
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];
        size_t n = (size_t)(s->key_hi - s->key_lo);
        if (n == 0 || s->shm_on)
            continue;
        bool by_chunk = chunks && ps_client_chunks_on(c, s);
        int rc = by_chunk ? encode_chunks(c, s, grad)
                 : c->error_feedback
                     ? ps_compress_encode_ef(c->push_ops, grad + s->key_lo, c->residual + s->key_lo,
                                             n, s->enc_k, c->enc + s->enc_off, c->scratch)
                     : c->push_ops->encode(grad + s->key_lo, n, s->enc_k, c->enc + s->enc_off,
                                           c->scratch);
        s->enc_chunked = by_chunk;
        if (rc != 0)
            return ps_client_fail(c, rc,
                                  "push: the gradient for shard %zu holds a NaN or an infinity: it "
                                  "has no %s encoding",
                                  i, c->push_ops->name);
        s->enc_ready = true;
    }
    return 0;
}

/* A PULL_REPLY from shard i with θ compressed (the codec checked it against
 * the reply's keys, which are the shard's): decoded into o->theta. */
int ps_client_codec_pull_accept(ps_client *c, op *o, size_t i, const ps_msg *m, uint64_t *version,
                                char *why, size_t cap)
{
    shard *s = &c->shards[i];
    if (o->theta == NULL && (o->theta = ps_client_theta_buf(c)) == NULL) {
        snprintf(why, cap, "out of memory for θ");
        return PS_ENOMEM;
    }
    const ps_compress_ops *ops = ps_compress_ops_for_encoding(m->encoding);
    ops->decode(m->payload, (size_t)m->payload_bytes, o->theta + s->key_lo,
                (size_t)(s->key_hi - s->key_lo));
    o->view_out = NULL;
    s->theta_version = m->model_version;
    if (m->model_version < *version)
        *version = m->model_version;
    return 0;
}
