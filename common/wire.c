/* wire.c — multipart ZeroMQ send and receive of ps_msg. A received message
 * is always consumed whole, so a bad one never desynchronises the socket. */
#include "wire.h"

#include <errno.h>
#include <string.h>

void ps_frames_close(ps_frames *f)
{
    for (int i = 0; i < f->nparts; i++)
        zmq_msg_close(&f->parts[i]);
    f->nparts = 0;
}

/* Discards the remaining parts of a message that has too many. */
static void drain(void *sock)
{
    int more = 1;
    size_t len = sizeof more;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &len) == 0 && more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, 0) < 0) {
            zmq_msg_close(&part);
            return;
        }
        zmq_msg_close(&part);
        len = sizeof more;
    }
}

/* Keeps the identity frame of a ROUTER's message (cut to PS_IDENTITY_MAX). */
static void keep_identity(ps_frames *f)
{
    size_t n = zmq_msg_size(&f->parts[0]);
    if (n > PS_IDENTITY_MAX)
        n = PS_IDENTITY_MAX;
    memcpy(f->identity, zmq_msg_data(&f->parts[0]), n);
    f->identity_len = n;
}

/* A message with more frames than the protocol has: the rest is drained,
 * and m gets what the header frame says (seq, worker id, type) when it
 * parses, so the ERROR reply reaches the request it answers. */
static int refuse_extra_frames(void *sock, ps_frames *f, int first, ps_msg *m, ps_error *err)
{
    drain(sock);
    ps_error ignored;
    zmq_msg_t *hdr = &f->parts[first];
    ps_codec_decode(&f->arena, zmq_msg_data(hdr), zmq_msg_size(hdr), NULL, 0, m, &ignored);
    return ps_error_set(err, PS_EPROTO, "message has more than %d frames", f->nparts);
}

int ps_wire_recv(void *sock, bool with_identity, int flags, ps_frames *f, ps_msg *m, ps_error *err)
{
    return ps_wire_recv_keys(sock, with_identity, flags, f, NULL, 0, m, err);
}

int ps_wire_recv_keys(void *sock, bool with_identity, int flags, ps_frames *f, uint64_t *keys,
                      size_t keys_cap, ps_msg *m, ps_error *err)
{
    f->nparts = 0;
    f->identity_len = 0;
    int max_parts = with_identity ? 3 : 2;
    int first = with_identity ? 1 : 0;
    int more = 1;
    while (more) {
        if (f->nparts == max_parts)
            return refuse_extra_frames(sock, f, first, m, err);
        zmq_msg_t *part = &f->parts[f->nparts];
        zmq_msg_init(part);
        if (zmq_msg_recv(part, sock, f->nparts == 0 ? flags : 0) < 0) {
            int e = errno;
            zmq_msg_close(part);
            errno = e;
            return ps_error_set(err, PS_EZMQ, "receive: %s", zmq_strerror(e));
        }
        f->nparts++;
        if (f->nparts == 1 && with_identity)
            keep_identity(f);
        more = zmq_msg_more(part);
    }
    if (f->nparts <= first) {
        ps_msg_init(m, PS_MSG_NONE);
        m->protocol = 0;
        return ps_error_set(err, PS_EPROTO, "message has no header frame");
    }
    zmq_msg_t *hdr = &f->parts[first];
    zmq_msg_t *pay = f->nparts > first + 1 ? &f->parts[first + 1] : NULL;
    return ps_codec_decode_keys(&f->arena, zmq_msg_data(hdr), zmq_msg_size(hdr),
                                pay ? zmq_msg_data(pay) : NULL, pay ? zmq_msg_size(pay) : 0, keys,
                                keys_cap, m, err);
}

int ps_wire_send(void *sock, const void *identity, size_t identity_len, const ps_msg *m,
                 const void *payload, int flags)
{
    return ps_wire_send_counted(sock, identity, identity_len, m, payload, flags, NULL);
}

int ps_wire_send_counted(void *sock, const void *identity, size_t identity_len, const ps_msg *m,
                         const void *payload, int flags, size_t *header_bytes)
{
    unsigned char hdr[PS_HEADER_MAX_BYTES];
    size_t hdr_len = 0;
    if (ps_codec_encode(m, hdr, sizeof hdr, &hdr_len) != 0)
        return PS_EINVAL;
    if (header_bytes != NULL)
        *header_bytes = hdr_len;
    bool has_payload = ps_msg_has_frame(m);
    if (has_payload && payload == NULL)
        return PS_EINVAL;
    if (identity != NULL && zmq_send(sock, identity, identity_len, ZMQ_SNDMORE | flags) < 0)
        return PS_EZMQ;
    if (zmq_send(sock, hdr, hdr_len, (has_payload ? ZMQ_SNDMORE : 0) | flags) < 0)
        return PS_EZMQ;
    if (has_payload && zmq_send(sock, payload, (size_t)m->payload_bytes, flags) < 0)
        return PS_EZMQ;
    return 0;
}

int ps_wire_send_msg(void *sock, const void *identity, size_t identity_len, const ps_msg *m,
                     zmq_msg_t *payload, int flags)
{
    return ps_wire_send_msg_counted(sock, identity, identity_len, m, payload, flags, NULL);
}

int ps_wire_send_msg_counted(void *sock, const void *identity, size_t identity_len, const ps_msg *m,
                             zmq_msg_t *payload, int flags, size_t *header_bytes)
{
    unsigned char hdr[PS_HEADER_MAX_BYTES];
    size_t hdr_len = 0;
    int rc = PS_EINVAL;
    if (!ps_msg_has_frame(m) || zmq_msg_size(payload) != m->payload_bytes ||
        ps_codec_encode(m, hdr, sizeof hdr, &hdr_len) != 0)
        goto close_payload;
    if (header_bytes != NULL)
        *header_bytes = hdr_len;
    rc = PS_EZMQ;
    if (identity != NULL && zmq_send(sock, identity, identity_len, ZMQ_SNDMORE | flags) < 0)
        goto close_payload;
    if (zmq_send(sock, hdr, hdr_len, ZMQ_SNDMORE | flags) < 0 ||
        zmq_msg_send(payload, sock, flags) < 0)
        goto close_payload;
    return 0;
close_payload : {
    int e = errno;
    zmq_msg_close(payload);
    errno = e;
}
    return rc;
}
