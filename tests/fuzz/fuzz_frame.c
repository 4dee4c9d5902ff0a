/* fuzz_frame.c — the wire codec, as psd's receive path drives it: the
 * input is split into a header frame and an optional payload frame and
 * decoded into a per-loop arena. What decodes must encode again and decode
 * to the same message. */
#include "codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ps_codec_arena arena; /* as the server keeps one per loop */
static ps_msg msg, again;
static unsigned char buf[PS_HEADER_MAX_BYTES];

/* Input: a 2-byte little-endian header length (cut to what follows), the
 * header frame, then the payload frame; the top bit of the length says
 * there is no payload frame at all. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t want = (size_t)data[0] | ((size_t)(data[1] & 0x7f) << 8);
    int no_frame = data[1] & 0x80;
    data += 2;
    size -= 2;
    size_t hdr_len = want < size ? want : size;
    const void *payload = no_frame ? NULL : data + hdr_len;
    size_t payload_len = no_frame ? 0 : size - hdr_len;
    ps_error err;
    if (ps_codec_decode_in(&arena, data, hdr_len, payload, payload_len, &msg, &err) != 0)
        return 0;
    size_t len = 0;
    if (ps_codec_encode(&msg, buf, sizeof buf, &len) != 0)
        abort(); /* a message the decoder accepted must encode */
    const void *p2 = ps_msg_has_frame(&msg) ? msg.payload : NULL;
    size_t n2 = ps_msg_has_frame(&msg) ? (size_t)msg.payload_bytes : 0;
    if (ps_codec_decode_in(&arena, buf, len, p2, n2, &again, &err) != 0)
        abort();
    if (again.type != msg.type || again.seq != msg.seq || again.worker_id != msg.worker_id ||
        again.key_lo != msg.key_lo || again.key_hi != msg.key_hi || again.nshards != msg.nshards ||
        again.ntensors != msg.ntensors || strcmp(again.job, msg.job) != 0 ||
        strcmp(again.error, msg.error) != 0)
        abort(); /* the round trip lost something */
    return 0;
}
