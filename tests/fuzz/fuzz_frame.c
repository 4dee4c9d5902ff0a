/* fuzz_frame.c — the wire codec, as psd's receive path drives it: the
 * input is split into a header frame and an optional payload frame and
 * decoded into a per-loop arena. What decodes must encode again and decode
 * to the same message, every field of PS_MSG_FIELDS and the layout; the
 * keys psd decodes in the check's pass must be those the check accepted,
 * and refusals the same with it as without. */
#include "codec.h"
#include "keys.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* as the server keeps one per loop; the second decode needs its own, since
 * a decode into an arena ends what the one before it pointed at */
static ps_codec_arena arena, arena_again;
static ps_msg msg, again;
#define KEYS_CAP 4096
static uint64_t keys[KEYS_CAP];
static unsigned char buf[PS_HEADER_MAX_BYTES];

#define SAME_NUM(ctype, name)                                                                      \
    if (memcmp(&a->name, &b->name, sizeof a->name) != 0) /* NaN too, bit for bit */                \
        return false;
#define SAME_ENUM(ctype, name, ptype)                                                              \
    if (a->name != b->name)                                                                        \
        return false;
#define SAME_STR(name, cap)                                                                        \
    if (strcmp(ps_msg_str(a->name), ps_msg_str(b->name)) != 0)                                     \
        return false;

static bool same_layout(const ps_layout *a, const ps_layout *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    if (a->nshards != b->nshards || a->ntensors != b->ntensors)
        return false;
    for (uint32_t i = 0; i < a->nshards; i++)
        if (strcmp(a->shards[i].endpoint, b->shards[i].endpoint) != 0 ||
            a->shards[i].key_lo != b->shards[i].key_lo ||
            a->shards[i].key_hi != b->shards[i].key_hi)
            return false;
    for (uint32_t i = 0; i < a->ntensors; i++)
        if (strcmp(a->tensors[i].name, b->tensors[i].name) != 0 ||
            a->tensors[i].ndims != b->tensors[i].ndims ||
            a->tensors[i].offset != b->tensors[i].offset ||
            memcmp(a->tensors[i].shape, b->tensors[i].shape, sizeof a->tensors[i].shape) != 0)
            return false;
    return true;
}

static bool same_msg(const ps_msg *a, const ps_msg *b)
{
    PS_MSG_FIELDS(SAME_NUM, SAME_ENUM, SAME_STR)
    /* a payload of no bytes travels without a frame: only a frame's is kept */
    if (ps_msg_has_frame(a) && a->payload != b->payload)
        return false;
    return same_layout(a->layout, b->layout);
}

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
    /* as psd decodes: a sparse request's keys decoded in the check's pass */
    int rc = ps_codec_decode_keys(&arena, data, hdr_len, payload, payload_len, keys, KEYS_CAP, &msg,
                                  &err);
    /* the same verdict and sentence as the check alone */
    ps_error err_alone;
    if (ps_codec_decode(&arena_again, data, hdr_len, payload, payload_len, &again, &err_alone) !=
            rc ||
        (rc != 0 && strcmp(err.msg, err_alone.msg) != 0))
        abort();
    if (rc != 0)
        return 0;
    if (msg.keys != NULL) { /* the keys a key at a time, as the engine reads them */
        ps_keys_iter it;
        ps_keys_iter_init(&it, msg.payload, (size_t)msg.keys_bytes);
        uint64_t k;
        for (uint64_t i = 0; i < msg.nkeys; i++)
            if (!ps_keys_next(&it, &k) || k != msg.keys[i])
                abort();
    }
    size_t len = 0;
    if (ps_codec_encode(&msg, buf, sizeof buf, &len) != 0)
        abort(); /* a message the decoder accepted must encode */
    if (len != ps_codec_header_size(&msg))
        abort();
    const void *p2 = ps_msg_has_frame(&msg) ? msg.payload : NULL;
    size_t n2 = ps_msg_has_frame(&msg) ? (size_t)msg.payload_bytes : 0;
    if (ps_codec_decode(&arena_again, buf, len, p2, n2, &again, &err) != 0)
        abort();
    if (!same_msg(&again, &msg))
        abort(); /* the round trip lost something */
    return 0;
}
