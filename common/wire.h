/* wire.h — ZeroMQ multipart I/O of ps_msg: [identity] header [payload].
 * A socket belongs to the thread that created it; these functions do not
 * lock, so call them from that thread only. */
#ifndef PS_WIRE_H
#define PS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>

#include "codec.h"

#define PS_IDENTITY_MAX 255

/* The frames of one received message. The decoded ps_msg points into them:
 * its payload into the payload frame (keep the frames open while using the
 * message), its strings and layout into `arena`, where the header is
 * unpacked, so receiving allocates nothing and clears nothing: keep one
 * ps_frames per loop or connection (it is 72 KiB) rather than one per
 * call, and ps_frames_init it once. */
typedef struct ps_frames {
    zmq_msg_t parts[3];
    int nparts; /* parts initialised, to close */
    unsigned char identity[PS_IDENTITY_MAX];
    size_t identity_len;
    ps_codec_arena arena;
} ps_frames;

/* Makes f ready for its first receive (or close). */
static inline void ps_frames_init(ps_frames *f)
{
    f->nparts = 0;
    f->identity_len = 0;
}

/* Receives one whole multipart message from sock (blocking unless flags has
 * ZMQ_DONTWAIT) and decodes it into m. With_identity: a ROUTER socket, whose
 * first frame is the peer's identity. Every part is consumed even when the
 * message is refused. Returns 0; PS_EZMQ with errno set (EAGAIN, EINTR, ...)
 * when nothing was received; or a codec error (m partly filled, err says
 * what) after which f still holds the identity for an ERROR reply, also for
 * a message with too many frames (PS_EPROTO; m then holds what its header
 * frame says, so the reply can name the request). Always call
 * ps_frames_close afterwards, whatever it returned. */
int ps_wire_recv(void *sock, bool with_identity, int flags, ps_frames *f, ps_msg *m, ps_error *err);

/* ps_wire_recv that decodes a sparse request's keys into keys (at most
 * keys_cap; ps_codec_decode_keys): m->keys points there, or is NULL. */
int ps_wire_recv_keys(void *sock, bool with_identity, int flags, ps_frames *f, uint64_t *keys,
                      size_t keys_cap, ps_msg *m, ps_error *err);

/* Closes the frames of a received message. Safe to call twice. */
void ps_frames_close(ps_frames *f);

/* Sends m (header) and, when it has a frame (ps_msg_has_frame), payload as frame 2,
 * prefixed by identity when it is not NULL (ROUTER). The payload bytes are
 * copied by ZeroMQ. Returns 0, PS_EINVAL (m breaks a limit) or PS_EZMQ. */
int ps_wire_send(void *sock, const void *identity, size_t identity_len, const ps_msg *m,
                 const void *payload, int flags);

/* Same as ps_wire_send, but frame 2 is *payload (m->payload_bytes long, a
 * message made with zmq_msg_init_data to send big arrays without a copy).
 * The function always takes *payload over: ZeroMQ closes it once sent, or
 * it is closed here when sending fails, so its free function runs exactly
 * once either way, on ZeroMQ's I/O thread or this one. Returns as
 * ps_wire_send; PS_EINVAL also when the sizes disagree. */
int ps_wire_send_msg(void *sock, const void *identity, size_t identity_len, const ps_msg *m,
                     zmq_msg_t *payload, int flags);

/* ps_wire_send and ps_wire_send_msg that also give the header frame's size
 * (*header_bytes, when not NULL, set once it is encoded): psd counts the
 * bytes it sends without encoding a header twice. */
int ps_wire_send_counted(void *sock, const void *identity, size_t identity_len, const ps_msg *m,
                         const void *payload, int flags, size_t *header_bytes);
int ps_wire_send_msg_counted(void *sock, const void *identity, size_t identity_len, const ps_msg *m,
                             zmq_msg_t *payload, int flags, size_t *header_bytes);

#endif
