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

int ps_wire_recv(void *sock, bool with_identity, int flags, ps_frames *f, ps_msg *m, ps_error *err)
{
    f->nparts = 0;
    f->identity_len = 0;
    int max_parts = with_identity ? 3 : 2;
    int more = 1;
    while (more) {
        if (f->nparts == max_parts) {
            drain(sock);
            ps_msg_init(m, PS_MSG_NONE);
            return ps_error_set(err, PS_EPROTO, "message has more than %d frames", max_parts);
        }
        zmq_msg_t *part = &f->parts[f->nparts];
        zmq_msg_init(part);
        if (zmq_msg_recv(part, sock, f->nparts == 0 ? flags : 0) < 0) {
            int e = errno;
            zmq_msg_close(part);
            errno = e;
            return ps_error_set(err, PS_EZMQ, "receive: %s", zmq_strerror(e));
        }
        f->nparts++;
        more = zmq_msg_more(part);
    }
    int first = 0;
    if (with_identity) {
        size_t n = zmq_msg_size(&f->parts[0]);
        if (n > PS_IDENTITY_MAX)
            n = PS_IDENTITY_MAX;
        memcpy(f->identity, zmq_msg_data(&f->parts[0]), n);
        f->identity_len = n;
        first = 1;
    }
    if (f->nparts <= first) {
        ps_msg_init(m, PS_MSG_NONE);
        return ps_error_set(err, PS_EPROTO, "message has no header frame");
    }
    zmq_msg_t *hdr = &f->parts[first];
    zmq_msg_t *pay = f->nparts > first + 1 ? &f->parts[first + 1] : NULL;
    return ps_codec_decode(zmq_msg_data(hdr), zmq_msg_size(hdr), pay ? zmq_msg_data(pay) : NULL,
                           pay ? zmq_msg_size(pay) : 0, m, err);
}

int ps_wire_send(void *sock, const void *identity, size_t identity_len, const ps_msg *m,
                 const void *payload, int flags)
{
    unsigned char hdr[PS_HEADER_MAX_BYTES];
    size_t hdr_len = 0;
    if (ps_codec_encode(m, hdr, sizeof hdr, &hdr_len) != 0)
        return PS_EINVAL;
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
    unsigned char hdr[PS_HEADER_MAX_BYTES];
    size_t hdr_len = 0;
    int rc = PS_EINVAL;
    if (!ps_msg_has_frame(m) || zmq_msg_size(payload) != m->payload_bytes ||
        ps_codec_encode(m, hdr, sizeof hdr, &hdr_len) != 0)
        goto close_payload;
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
