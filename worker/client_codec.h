/* client_codec.h — compression on the client (compress.h): a push's
 * gradient encoded once per push for every shard it goes to over the
 * socket, with error feedback (what compression dropped is added to the
 * next push), and a pull's θ decoded from the servers' pull codec. */
#ifndef PS_CLIENT_CODEC_H
#define PS_CLIENT_CODEC_H

#include "client_impl.h"

/* Push compression as opts asks: the codec, and buffers for every shard's
 * encoded slice, the residual and scratch, allocated once. 0, or PS_EINVAL
 * (an unknown codec, a topk ratio outside (0, 1]) / PS_ENOMEM with the
 * sentence in why. */
int ps_client_codec_init(ps_client *c, const ps_client_opts *opts, char *why, size_t cap);

/* Compresses grad for every shard it goes to over the socket, once per
 * push (a resend sends the same bytes). PS_EINVAL (last_error says so)
 * for a gradient that is not finite. */
int ps_client_codec_encode(ps_client *c, const float *grad, bool chunks);

/* A PULL_REPLY (m) from shard i with θ compressed (the codec checked it
 * against the reply's keys, which are the shard's): decoded into o->theta;
 * *version gets the smaller of it and the reply's. 0, or PS_ENOMEM with
 * the sentence in why. */
int ps_client_codec_pull_accept(ps_client *c, op *o, size_t i, const ps_msg *m, uint64_t *version,
                                char *why, size_t cap);

#endif
