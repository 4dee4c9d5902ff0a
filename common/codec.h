/* codec.h — the wire codec (docs/architecture.md#the-wire-protocol): a
 * protobuf-c Header frame plus an optional raw payload frame become one
 * checked ps_msg (msg.h), and back. This is the only place bytes from the
 * network become structs: every length, count and string is checked here,
 * and code after it trusts the ps_msg. */
#ifndef PS_CODEC_H
#define PS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "msg.h"

/* Bytes the packed table of n rows takes (a payload frame; may exceed
 * PS_HEADER_MAX_BYTES: it is not a header). */
size_t ps_codec_workers_size(const ps_worker_status *rows, size_t n);

/* Packs n rows into buf (cap bytes, at least ps_codec_workers_size);
 * *len gets the size. PS_EINVAL when cap is too small, or a row's state is
 * out of range or its host name unterminated. */
int ps_codec_workers_encode(const ps_worker_status *rows, size_t n, void *buf, size_t cap,
                            size_t *len);

/* Unpacks a table of at most cap rows into rows; *n gets the count.
 * PS_EPROTO (with a sentence in err) when the bytes are not a table, more
 * than cap rows, or a string is too long. Allocates while it runs (not
 * for psd's loop: psd only encodes tables). */
int ps_codec_workers_decode(const void *buf, size_t len, ps_worker_status *rows, size_t cap,
                            size_t *n, ps_error *err);

/* The same for the tables of a STATUS_REPLY (proto TableStatus, field 2
 * of the WorkerTable): their bytes follow the workers' in one payload.
 * PS_EINVAL when cap is too small or a name is unterminated. */
size_t ps_codec_tables_size(const ps_table_status *tables, size_t n);
int ps_codec_tables_encode(const ps_table_status *tables, size_t n, void *buf, size_t cap,
                           size_t *len);

/* Reads the tables of a packed WorkerTable (at most cap; *n gets the
 * count). PS_EPROTO (err says why) when it does not parse, holds more than
 * cap or a name is too long. Allocates while it runs, as
 * ps_codec_workers_decode does. */
int ps_codec_tables_decode(const void *buf, size_t len, ps_table_status *tables, size_t cap,
                           size_t *n, ps_error *err);

/* Scratch memory protobuf-c unpacks a header into, so decoding allocates
 * nothing: each decode starts it empty and takes from it; a header whose
 * parse needs more is refused (PS_EPROTO). The largest header psd sends
 * (256 shards, 32 tensors, every string full) needs about a third of it.
 * Embedded and kept by whoever receives (ps_frames holds one: a server's
 * is per loop, a client's per connection); no init is needed. */
#define PS_CODEC_ARENA_BYTES ((size_t)192 << 10)
typedef struct ps_codec_arena {
    size_t used;
    bool spent;       /* an allocation did not fit */
    ps_layout layout; /* a decoded WELCOME's tables (m->layout points here) */
    _Alignas(16) unsigned char mem[PS_CODEC_ARENA_BYTES];
} ps_codec_arena;

/* Decodes frame 1 (hdr, hdr_len) and the optional frame 2 (payload, NULL
 * when absent) into m, unpacking the header in arena (reset first): m's
 * strings and layout point into the arena, its payload into the frame, so
 * m is valid until the next decode into the same arena. Every field of m
 * is set (an absent string is ""; when the header does not parse at all, m
 * is an empty message whose strings are NULL); nothing else of the arena
 * is cleared. Checks: the header parses
 * and fits its limits (strings, tables), the type is known, the payload
 * frame is present exactly when the encoding says so and its size equals
 * payload_bytes, an F32 payload covers exactly [key_lo, key_hi) (an SHM_F32
 * one announces exactly that, with no frame), a compressed one (F16, BF16,
 * INT8, TOPK) passes its codec's validate for the keys of [key_lo, key_hi)
 * (compress.h: size, blocks, indices). On failure returns PS_EPROTO,
 * PS_ETYPE or PS_EPAYLOAD, fills err with a sentence, and still fills
 * m->seq, m->worker_id and m->type when the header parsed, so the caller
 * can address its ERROR reply. */
int ps_codec_decode(ps_codec_arena *arena, const void *hdr, size_t hdr_len, const void *payload,
                    size_t payload_len, ps_msg *m, ps_error *err);

/* ps_codec_decode that also decodes the keys of a sparse PULL or PUSH
 * (varints; not a SCAN, not a push naming a pull's keys) into keys when
 * they are at most keys_cap, in the pass that checks them: m->keys then
 * points there, else it is NULL (ps_codec_decode: always NULL). */
int ps_codec_decode_keys(ps_codec_arena *arena, const void *hdr, size_t hdr_len,
                         const void *payload, size_t payload_len, uint64_t *keys, size_t keys_cap,
                         ps_msg *m, ps_error *err);

/* Bytes the header of m takes on the wire. */
size_t ps_codec_header_size(const ps_msg *m);

/* Encodes the header of m into buf (cap bytes); *len gets its size.
 * PS_EINVAL if cap is too small or m breaks a limit (a string as long as
 * its limit, a table too large). The payload is not encoded: it travels as
 * frame 2, m->payload_bytes says how long. */
int ps_codec_encode(const ps_msg *m, void *buf, size_t cap, size_t *len);

#endif
