/* test_codec.c — the wire codec: round trips, and every malformed frame is
 * refused with the right code and sentence. */
#include <check.h>

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "codec.h"
#include "keys.h"
#include "ps.pb-c.h"
#include "wire.h"

/* "a header of a few hundred bytes at most": ps_msg is copied and kept by
 * value everywhere (replies, parked requests), so it must stay small (336
 * bytes with the batch queue's and the sync chunks' fields) */
_Static_assert(sizeof(ps_msg) <= 352, "ps_msg is at most 352 bytes");

static ps_codec_arena arena; /* every decode of this file unpacks here */

static size_t encode(const ps_msg *m, unsigned char *buf, size_t cap)
{
    size_t len = 0;
    ck_assert_int_eq(ps_codec_encode(m, buf, cap, &len), 0);
    return len;
}

/* True when p points into the arena's memory. */
static bool in_arena(const void *p)
{
    const unsigned char *c = p;
    return c >= arena.mem && c < arena.mem + sizeof arena.mem;
}

START_TEST(welcome_round_trips_with_layout)
{
    static ps_msg m, d;
    static ps_layout l;
    ps_msg_init(&m, PS_MSG_WELCOME);
    m.job = "digits";
    m.worker_id = 3;
    m.rank = 1;
    m.num_workers = 2;
    m.num_params = 31;
    m.mode = "sync";
    l.nshards = 2;
    strcpy(l.shards[0].endpoint, "tcp://127.0.0.1:7070");
    l.shards[0].key_hi = 15;
    strcpy(l.shards[1].endpoint, "tcp://127.0.0.1:7071");
    l.shards[1].key_lo = 15;
    l.shards[1].key_hi = 31;
    l.ntensors = 2;
    strcpy(l.tensors[0].name, "w");
    l.tensors[0].ndims = 1;
    l.tensors[0].shape[0] = 30;
    strcpy(l.tensors[1].name, "b");
    l.tensors[1].ndims = 1;
    l.tensors[1].shape[0] = 1;
    l.tensors[1].offset = 30;
    m.layout = &l;
    unsigned char buf[4096];
    size_t len = encode(&m, buf, sizeof buf);
    ck_assert_uint_eq(len, ps_codec_header_size(&m));
    ps_error err;
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), 0);
    ck_assert_int_eq(d.type, PS_MSG_WELCOME);
    ck_assert_uint_eq(d.protocol, PS_PROTOCOL_VERSION);
    ck_assert_str_eq(d.job, "digits");
    ck_assert_int_eq(d.rank, 1);
    ck_assert_uint_eq(d.num_params, 31);
    ck_assert_str_eq(d.mode, "sync");
    ck_assert_ptr_eq(d.layout, &arena.layout);
    ck_assert_uint_eq(d.layout->nshards, 2);
    ck_assert_str_eq(d.layout->shards[0].endpoint, "tcp://127.0.0.1:7070");
    ck_assert_uint_eq(d.layout->shards[0].key_lo, 0);
    ck_assert_uint_eq(d.layout->shards[0].key_hi, 15);
    ck_assert_str_eq(d.layout->shards[1].endpoint, "tcp://127.0.0.1:7071");
    ck_assert_uint_eq(d.layout->shards[1].key_lo, 15);
    ck_assert_uint_eq(d.layout->shards[1].key_hi, 31);
    ck_assert_uint_eq(d.layout->ntensors, 2);
    ck_assert_str_eq(d.layout->tensors[0].name, "w");
    ck_assert_uint_eq(d.layout->tensors[0].ndims, 1);
    ck_assert_uint_eq(d.layout->tensors[0].shape[0], 30);
    ck_assert_uint_eq(d.layout->tensors[0].offset, 0);
    ck_assert_str_eq(d.layout->tensors[1].name, "b");
    ck_assert_uint_eq(d.layout->tensors[1].shape[0], 1);
    ck_assert_uint_eq(d.layout->tensors[1].offset, 30);
}
END_TEST

START_TEST(push_payload_is_used_in_place)
{
    static ps_msg m, d;
    float g[4] = {1, 2, 3, 4};
    ps_msg_init(&m, PS_MSG_PUSH);
    m.key_lo = 10;
    m.key_hi = 14;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = sizeof g;
    m.seq = 99;
    unsigned char buf[256];
    size_t len = encode(&m, buf, sizeof buf);
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, g, sizeof g, &d, NULL), 0);
    ck_assert_ptr_eq(d.payload, g);
    ck_assert_uint_eq(d.seq, 99);
}
END_TEST

START_TEST(payload_shorter_than_header_says_is_refused)
{
    static ps_msg m, d;
    float g[4] = {0};
    ps_msg_init(&m, PS_MSG_PUSH);
    m.key_hi = 4;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = 16;
    m.seq = 7;
    unsigned char buf[256];
    size_t len = encode(&m, buf, sizeof buf);
    ps_error err;
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, g, 12, &d, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "PUSH header announces 16 payload bytes, the frame has 12");
    ck_assert_uint_eq(d.seq, 7);
}
END_TEST

START_TEST(payload_not_covering_key_range_is_refused)
{
    static ps_msg m, d;
    float g[4] = {0};
    ps_msg_init(&m, PS_MSG_PUSH);
    m.key_hi = 5;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = 16;
    unsigned char buf[256];
    size_t len = encode(&m, buf, sizeof buf);
    ps_error err;
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, g, 16, &d, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "float32 payload of 16 bytes does not cover keys [0, 5)");
}
END_TEST

START_TEST(key_count_that_overflows_is_refused)
{
    static ps_msg m, d;
    float g[1] = {0};
    ps_msg_init(&m, PS_MSG_PUSH);
    m.key_lo = 0;
    m.key_hi = UINT64_MAX / 2; /* keys * 4 overflows 64 bits */
    m.encoding = PS_ENC_F32;
    m.payload_bytes = 4;
    unsigned char buf[256];
    size_t len = encode(&m, buf, sizeof buf);
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, g, 4, &d, NULL), PS_EPAYLOAD);
}
END_TEST

START_TEST(missing_payload_frame_is_refused)
{
    static ps_msg m, d;
    ps_msg_init(&m, PS_MSG_PUSH);
    m.key_hi = 4;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = 16;
    unsigned char buf[256];
    size_t len = encode(&m, buf, sizeof buf);
    ps_error err;
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "PUSH header announces 16 payload bytes, none came");
}
END_TEST

START_TEST(payload_without_encoding_is_refused)
{
    static ps_msg m, d;
    char junk[8] = {0};
    ps_msg_init(&m, PS_MSG_PULL);
    unsigned char buf[256];
    size_t len = encode(&m, buf, sizeof buf);
    ps_error err;
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, junk, sizeof junk, &d, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "PULL has a 8-byte payload but encoding none");
}
END_TEST

START_TEST(unknown_type_is_refused_but_seq_kept)
{
    static ps_msg m, d;
    ps_msg_init(&m, (ps_msg_type)42);
    m.seq = 5;
    m.worker_id = 9;
    unsigned char buf[256];
    size_t len = encode(&m, buf, sizeof buf);
    ps_error err;
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), PS_ETYPE);
    ck_assert_str_eq(err.msg, "unknown message type 42");
    ck_assert_uint_eq(d.seq, 5);
    ck_assert_uint_eq(d.worker_id, 9);
}
END_TEST

START_TEST(garbage_header_is_refused)
{
    static ps_msg d;
    unsigned char junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    ps_error err;
    ck_assert_int_eq(ps_codec_decode(&arena, junk, sizeof junk, NULL, 0, &d, &err), PS_EPROTO);
    ck_assert_str_eq(err.msg, "header frame of 6 bytes is not a valid Header");
}
END_TEST

START_TEST(oversized_header_is_refused_before_parsing)
{
    static ps_msg d;
    ps_error err;
    unsigned char *big = calloc(1, PS_HEADER_MAX_BYTES + 1);
    ck_assert_int_eq(ps_codec_decode(&arena, big, PS_HEADER_MAX_BYTES + 1, NULL, 0, &d, &err),
                     PS_EPROTO);
    ck_assert_str_eq(err.msg, "header frame of 65537 bytes (limit 65536)");
    free(big);
}
END_TEST

START_TEST(too_long_job_name_is_refused)
{
    /* a Header whose job field (3) is 100 bytes: built by hand, since
     * ps_msg cannot hold it */
    unsigned char buf[128] = {0x08, 0x03, 0x1a, 100};
    memset(buf + 4, 'j', 100);
    static ps_msg d;
    ps_error err;
    ck_assert_int_eq(ps_codec_decode(&arena, buf, 104, NULL, 0, &d, &err), PS_EPROTO);
    ck_assert_str_eq(err.msg, "header field job is 100 bytes (limit 63)");
}
END_TEST

START_TEST(encode_refuses_small_buffer)
{
    static ps_msg m;
    ps_msg_init(&m, PS_MSG_HELLO);
    m.job = "a-long-enough-job-name";
    unsigned char buf[4];
    size_t len;
    ck_assert_int_eq(ps_codec_encode(&m, buf, sizeof buf, &len), PS_EINVAL);
}
END_TEST

/* A PUSH whose gradient sits in shared memory: header only, one float per
 * key announced. */
static void shm_push(ps_msg *m, uint64_t key_lo, uint64_t key_hi, uint64_t payload_bytes)
{
    ps_msg_init(m, PS_MSG_PUSH);
    m->key_lo = key_lo;
    m->key_hi = key_hi;
    m->encoding = PS_ENC_SHM_F32;
    m->payload_bytes = payload_bytes;
    m->seq = 21;
}

START_TEST(shm_push_round_trips_without_a_frame)
{
    static ps_msg m, d;
    shm_push(&m, 10, 14, 16);
    unsigned char buf[256];
    size_t len = encode(&m, buf, sizeof buf);
    ps_error err;
    int rc = ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err);
    ck_assert_msg(rc == 0, "decode: %s", err.msg);
    ck_assert_int_eq(d.type, PS_MSG_PUSH);
    ck_assert_int_eq(d.encoding, PS_ENC_SHM_F32);
    ck_assert_uint_eq(d.payload_bytes, 16);
    ck_assert_uint_eq(d.key_lo, 10);
    ck_assert_uint_eq(d.key_hi, 14);
    ck_assert_uint_eq(d.seq, 21);
    ck_assert_ptr_null(d.payload);
}
END_TEST

START_TEST(shm_push_with_a_frame_is_refused)
{
    static ps_msg m, d;
    float g[4] = {1, 2, 3, 4};
    shm_push(&m, 10, 14, sizeof g);
    unsigned char buf[256];
    size_t len = encode(&m, buf, sizeof buf);
    ps_error err;
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, g, sizeof g, &d, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "PUSH says its payload is in shared memory but has a 16-byte frame");
    ck_assert_ptr_null(d.payload);
    ck_assert_uint_eq(d.seq, 21);
}
END_TEST

START_TEST(shm_push_not_covering_key_range_is_refused)
{
    static ps_msg m, d;
    uint64_t wrong[] = {0, 12, 15, 20};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        shm_push(&m, 10, 14, wrong[i]);
        unsigned char buf[256];
        size_t len = encode(&m, buf, sizeof buf);
        ps_error err;
        char want[128];
        snprintf(want, sizeof want,
                 "shared-memory payload of %llu bytes does not cover keys [10, 14)",
                 (unsigned long long)wrong[i]);
        ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), PS_EPAYLOAD);
        ck_assert_str_eq(err.msg, want);
    }
}
END_TEST

START_TEST(shm_push_with_empty_or_reversed_range_is_refused)
{
    static ps_msg m, d;
    unsigned char buf[256];
    ps_error err;
    shm_push(&m, 14, 14, 0);
    size_t len = encode(&m, buf, sizeof buf);
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "shared-memory payload of 0 bytes does not cover keys [14, 14)");
    /* reversed, where key_hi - key_lo wraps to 4 keys, 16 bytes */
    shm_push(&m, UINT64_MAX, 3, 16);
    len = encode(&m, buf, sizeof buf);
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), PS_EPAYLOAD);
    ck_assert_str_eq(
        err.msg, "shared-memory payload of 16 bytes does not cover keys [18446744073709551615, 3)");
    /* a key count whose * 4 overflows to the bytes announced */
    shm_push(&m, 0, (UINT64_MAX / 4) + 2, 4);
    len = encode(&m, buf, sizeof buf);
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), PS_EPAYLOAD);
}
END_TEST

START_TEST(worker_table_round_trips_and_rides_only_on_status_reply)
{
    static ps_worker_status rows[3], back[3];
    for (uint32_t r = 0; r < 3; r++) {
        rows[r].rank = r;
        rows[r].state = r == 1 ? PS_WORKER_EVICTED : PS_WORKER_LIVE;
        snprintf(rows[r].hostname, sizeof rows[r].hostname, "host-%u", r);
        rows[r].last_seen_ms = 100 + r;
        rows[r].clock = 7 * r;
        rows[r].pushes = 1000000000000ull + r;
        rows[r].loss = r == 2 ? NAN : 0.5 / (r + 1);
        rows[r].samples_per_s = 123.5;
        rows[r].staleness_max = r;
        rows[r].staleness_mean = 0.25 * r;
        rows[r].worker_id = 1025 + r;
        rows[r].evictions = r;
        rows[r].finished = r == 1;
        rows[r].expected = r == 2 ? 0 : 4500 + r;
    }
    unsigned char buf[1024];
    size_t len = 0, n = 0;
    size_t need = ps_codec_workers_size(rows, 3);
    ck_assert_int_eq(ps_codec_workers_encode(rows, 3, buf, need - 1, &len), PS_EINVAL);
    ck_assert_int_eq(ps_codec_workers_encode(rows, 3, buf, sizeof buf, &len), 0);
    ck_assert_uint_eq(len, need);
    ps_error err;
    ck_assert_int_eq(ps_codec_workers_decode(buf, len, back, 3, &n, &err), 0);
    ck_assert_uint_eq(n, 3);
    for (uint32_t r = 0; r < 3; r++) {
        ck_assert_uint_eq(back[r].rank, r);
        ck_assert_int_eq(back[r].state, rows[r].state);
        ck_assert_str_eq(back[r].hostname, rows[r].hostname);
        ck_assert_uint_eq(back[r].pushes, rows[r].pushes);
        ck_assert_uint_eq(back[r].clock, rows[r].clock);
        ck_assert_uint_eq(back[r].worker_id, rows[r].worker_id);
        ck_assert_uint_eq(back[r].evictions, rows[r].evictions);
        ck_assert(back[r].finished == rows[r].finished);
        ck_assert_uint_eq(back[r].expected, rows[r].expected);
    }
    ck_assert(isnan(back[2].loss));
    ck_assert_double_eq(back[0].loss, 0.5);
    /* more rows than the caller has room for, and garbage */
    ck_assert_int_eq(ps_codec_workers_decode(buf, len, back, 2, &n, &err), PS_EPROTO);
    ck_assert_str_eq(err.msg, "the worker table has 3 rows (limit 2)");
    static const unsigned char junk[] = {0x0a, 0x40, 0x01};
    ck_assert_int_eq(ps_codec_workers_decode(junk, sizeof junk, back, 3, &n, &err), PS_EPROTO);
    /* a table on a STATUS_REPLY decodes; on a PUSH it is refused */
    static ps_msg m, d;
    ps_msg_init(&m, PS_MSG_STATUS_REPLY);
    m.encoding = PS_ENC_WORKERS;
    m.payload_bytes = len;
    unsigned char hdr[256];
    size_t hlen = encode(&m, hdr, sizeof hdr);
    ck_assert_int_eq(ps_codec_decode(&arena, hdr, hlen, buf, len, &d, &err), 0);
    ck_assert_ptr_eq(d.payload, buf);
    m.type = PS_MSG_PUSH;
    hlen = encode(&m, hdr, sizeof hdr);
    ck_assert_int_eq(ps_codec_decode(&arena, hdr, hlen, buf, len, &d, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "PUSH carries a worker table: only STATUS_REPLY may");
}
END_TEST

START_TEST(unknown_encoding_is_refused)
{
    static ps_msg m, d;
    ps_msg_init(&m, PS_MSG_PUSH);
    m.key_hi = 4;
    m.encoding = PS_ENC_COUNT;
    m.payload_bytes = 16;
    float g[4] = {0};
    unsigned char buf[256];
    size_t len = encode(&m, buf, sizeof buf);
    ps_error err;
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, g, sizeof g, &d, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "unknown payload encoding 9");
    m.payload_bytes = 0;
    len = encode(&m, buf, sizeof buf);
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), PS_EPAYLOAD);
    ck_assert_str_eq(err.msg, "unknown payload encoding 9");
}
END_TEST

START_TEST(shm_fields_round_trip)
{
    static ps_msg m, d;
    ps_msg_init(&m, PS_MSG_WELCOME);
    /* the longest host a ps_msg holds: PS_HOST_MAX - 1 bytes */
    static char host[PS_HOST_MAX];
    memset(host, 'h', PS_HOST_MAX - 1);
    host[0] = 'b';
    m.host = host;
    m.shm_pid = 4000000;
    m.shm_fd = 17;
    m.shm_bytes = (uint64_t)1 << 40;
    m.shm_token = 0xfedcba9876543210ull;
    m.flags = PS_FLAG_SHM | PS_FLAG_DONE;
    unsigned char buf[512];
    size_t len = encode(&m, buf, sizeof buf);
    ps_error err;
    int rc = ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err);
    ck_assert_msg(rc == 0, "decode: %s", err.msg);
    ck_assert_uint_eq(strlen(d.host), PS_HOST_MAX - 1);
    ck_assert_str_eq(d.host, host);
    ck_assert_uint_eq(d.shm_pid, 4000000);
    ck_assert_uint_eq(d.shm_fd, 17);
    ck_assert_uint_eq(d.shm_bytes, (uint64_t)1 << 40);
    ck_assert_uint_eq(d.shm_token, 0xfedcba9876543210ull);
    ck_assert_uint_eq(d.flags, PS_FLAG_SHM | PS_FLAG_DONE);
}
END_TEST

START_TEST(hello_incarnation_and_status_staleness_round_trip)
{
    static ps_msg m, d;
    ps_msg_init(&m, PS_MSG_HELLO);
    m.incarnation = 0x8000000000000001ull;
    m.staleness_max = 7;
    m.staleness_p99 = 5;
    m.staleness_mean = 1.25;
    unsigned char buf[512];
    size_t len = encode(&m, buf, sizeof buf);
    ps_error err;
    int rc = ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err);
    ck_assert_msg(rc == 0, "decode: %s", err.msg);
    ck_assert_uint_eq(d.incarnation, 0x8000000000000001ull);
    ck_assert_uint_eq(d.staleness_max, 7);
    ck_assert_uint_eq(d.staleness_p99, 5);
    ck_assert_double_eq(d.staleness_mean, 1.25);
}
END_TEST

START_TEST(pull_with_shm_flag_round_trips)
{
    static ps_msg m, d;
    ps_msg_init(&m, PS_MSG_PULL);
    m.flags = PS_FLAG_SHM;
    m.min_version = 3;
    unsigned char buf[256];
    size_t len = encode(&m, buf, sizeof buf);
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, NULL), 0);
    ck_assert_int_eq(d.type, PS_MSG_PULL);
    ck_assert_uint_eq(d.flags, PS_FLAG_SHM);
    ck_assert_uint_eq(d.min_version, 3);
}
END_TEST

START_TEST(too_long_host_is_refused)
{
    /* built with protobuf-c, since a ps_msg cannot hold such a host */
    char host[PS_HOST_MAX + 1];
    memset(host, 'h', PS_HOST_MAX);
    host[PS_HOST_MAX] = '\0';
    Ps__Header h;
    ps__header__init(&h);
    h.type = PS__MSG_TYPE__HELLO;
    h.protocol = PS_PROTOCOL_VERSION;
    h.seq = 8;
    h.host = host;
    unsigned char buf[256];
    ck_assert_uint_le(ps__header__get_packed_size(&h), sizeof buf);
    size_t len = ps__header__pack(&h, buf);
    static ps_msg d;
    ps_error err;
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), PS_EPROTO);
    ck_assert_str_eq(err.msg, "header field host is 64 bytes (limit 63)");
    ck_assert_uint_eq(d.seq, 8);
    /* one byte shorter fits */
    host[PS_HOST_MAX - 1] = '\0';
    len = ps__header__pack(&h, buf);
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), 0);
    ck_assert_uint_eq(strlen(d.host), PS_HOST_MAX - 1);
}
END_TEST

START_TEST(has_frame_only_for_payload_on_the_wire)
{
    static ps_msg m;
    shm_push(&m, 0, 4, 16);
    ck_assert(!ps_msg_has_frame(&m));
    ps_msg_init(&m, PS_MSG_PUSH);
    m.encoding = PS_ENC_F32;
    m.payload_bytes = 0;
    ck_assert(!ps_msg_has_frame(&m));
    m.key_hi = 4;
    m.payload_bytes = 16;
    ck_assert(ps_msg_has_frame(&m));
    ps_msg_init(&m, PS_MSG_PULL);
    ck_assert(!ps_msg_has_frame(&m));
}
END_TEST

/* Wire: a message with too many frames is consumed whole and refused, and
 * the next message on the socket still decodes. */
START_TEST(wire_drains_message_with_extra_frames)
{
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR);
    void *b = zmq_socket(ctx, ZMQ_PAIR);
    ck_assert_int_eq(zmq_bind(a, "inproc://codec-test"), 0);
    ck_assert_int_eq(zmq_connect(b, "inproc://codec-test"), 0);
    for (int i = 0; i < 4; i++)
        zmq_send(b, "x", 1, i < 3 ? ZMQ_SNDMORE : 0);
    static ps_msg m, d;
    ps_msg_init(&m, PS_MSG_HEARTBEAT);
    m.seq = 11;
    ck_assert_int_eq(ps_wire_send(b, NULL, 0, &m, NULL, 0), 0);
    static ps_frames f;
    ps_frames_init(&f);
    ps_error err;
    ck_assert_int_eq(ps_wire_recv(a, false, 0, &f, &d, &err), PS_EPROTO);
    ck_assert_str_eq(err.msg, "message has more than 2 frames");
    ps_frames_close(&f);
    ck_assert_int_eq(ps_wire_recv(a, false, 0, &f, &d, &err), 0);
    ck_assert_int_eq(d.type, PS_MSG_HEARTBEAT);
    ck_assert_uint_eq(d.seq, 11);
    ps_frames_close(&f);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}
END_TEST

/* An F32 payload of no keys goes without a frame (ps_msg_has_frame): the
 * decoder takes it so, as it takes a frame of 0 bytes (found by fuzzing:
 * the decoder took the empty frame, refused what it re-encodes to). */
START_TEST(empty_float32_payload_round_trips)
{
    static ps_msg m, d;
    ps_msg_init(&m, PS_MSG_PULL_REPLY);
    m.job = "digits";
    m.seq = 5;
    m.key_lo = m.key_hi = 7;
    m.encoding = PS_ENC_F32;
    ck_assert(!ps_msg_has_frame(&m));
    unsigned char buf[256];
    size_t len = encode(&m, buf, sizeof buf);
    ps_error err;
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), 0);
    ck_assert_uint_eq(d.payload_bytes, 0);
    ck_assert_int_eq(d.encoding, PS_ENC_F32);
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, buf, 0, &d, &err), 0);
    ck_assert_uint_eq(d.seq, 5);
}
END_TEST

/* Every string field of m set to cap - 1 copies of a letter, in bufs. */
#define FULL_STR_BUF(name, cap) char name[cap];
#define NO_NUM(ctype, name)
#define NO_ENUM(ctype, name, ptype)
typedef struct str_bufs {
    PS_MSG_FIELDS(NO_NUM, NO_ENUM, FULL_STR_BUF)
} str_bufs;

#define FULL_STR(name, cap)                                                                        \
    memset(bufs->name, 's', (cap)-1);                                                              \
    bufs->name[(cap)-1] = '\0';                                                                    \
    m->name = bufs->name;
static void strings_full(ps_msg *m, str_bufs *bufs)
{
    PS_MSG_FIELDS(NO_NUM, NO_ENUM, FULL_STR);
}

/* The largest header psd sends (every list and string full) decodes in
 * the arena with room to spare. */
START_TEST(largest_header_fits_the_arena)
{
    static ps_msg m, d;
    static ps_layout l;
    static str_bufs bufs;
    ps_msg_init(&m, PS_MSG_WELCOME);
    strings_full(&m, &bufs);
    m.incarnation = UINT64_MAX;
    m.staleness_max = UINT64_MAX;
    m.staleness_p99 = UINT64_MAX;
    m.staleness_mean = 1e300;
    l.nshards = PS_MAX_SHARDS;
    for (int i = 0; i < PS_MAX_SHARDS; i++) {
        memset(l.shards[i].endpoint, 'a' + i % 26, PS_ENDPOINT_MAX - 1);
        l.shards[i].key_lo = (uint64_t)i << 40;
        l.shards[i].key_hi = ((uint64_t)i + 1) << 40;
    }
    l.ntensors = PS_MAX_TENSORS;
    for (int i = 0; i < PS_MAX_TENSORS; i++) {
        memset(l.tensors[i].name, 'a' + i % 26, PS_TENSOR_NAME_MAX - 1);
        l.tensors[i].ndims = PS_MAX_DIMS;
        for (int k = 0; k < PS_MAX_DIMS; k++)
            l.tensors[i].shape[k] = UINT64_MAX >> 1;
        l.tensors[i].offset = UINT64_MAX;
    }
    m.layout = &l;
    static unsigned char buf[PS_HEADER_MAX_BYTES];
    size_t len = encode(&m, buf, sizeof buf);
    ps_error err;
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), 0);
    ck_assert_uint_eq(d.layout->ntensors, PS_MAX_TENSORS);
    ck_assert_uint_eq(d.layout->nshards, PS_MAX_SHARDS);
    ck_assert_str_eq(d.layout->shards[PS_MAX_SHARDS - 1].endpoint,
                     l.shards[PS_MAX_SHARDS - 1].endpoint);
    ck_assert_str_eq(d.layout->tensors[31].name, l.tensors[31].name);
    ck_assert_str_eq(d.error, bufs.error);
    ck_assert_str_eq(d.hostname, bufs.hostname);
    ck_assert_uint_le(arena.used, PS_CODEC_ARENA_BYTES / 2);
}
END_TEST

/* A header made to need more memory than its size (20000 empty shard
 * entries in 60 KB) is refused for that, without allocating. */
START_TEST(header_needing_more_than_the_arena_is_refused)
{
    static unsigned char buf[2 + 20000 * 3];
    buf[0] = 0x08; /* type = HELLO */
    buf[1] = 0x01;
    for (size_t i = 0; i < 20000; i++) { /* field 22 (shards), length 0 */
        buf[2 + 3 * i] = 0xb2;
        buf[3 + 3 * i] = 0x01;
        buf[4 + 3 * i] = 0x00;
    }
    static ps_msg d;
    ps_error err;
    ck_assert_int_eq(ps_codec_decode(&arena, buf, sizeof buf, NULL, 0, &d, &err), PS_EPROTO);
    char want[96];
    snprintf(want, sizeof want, "header frame of 60002 bytes needs more than %zu bytes to decode",
             (size_t)PS_CODEC_ARENA_BYTES);
    ck_assert_str_eq(err.msg, want);
}
END_TEST

/* ROUTER: a message with too many frames is refused, and the identity and
 * the header's seq are kept, so the ERROR reply reaches its sender. */
START_TEST(router_message_with_extra_frames_keeps_identity_and_seq)
{
    void *ctx = zmq_ctx_new();
    void *r = zmq_socket(ctx, ZMQ_ROUTER);
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    ck_assert_int_eq(zmq_setsockopt(d, ZMQ_ROUTING_ID, "peer-9", 6), 0);
    ck_assert_int_eq(zmq_bind(r, "inproc://codec-router"), 0);
    ck_assert_int_eq(zmq_connect(d, "inproc://codec-router"), 0);
    static ps_msg m, got;
    ps_msg_init(&m, PS_MSG_HEARTBEAT);
    m.seq = 42;
    m.worker_id = 7;
    unsigned char hdr[256];
    size_t len = encode(&m, hdr, sizeof hdr);
    zmq_send(d, hdr, len, ZMQ_SNDMORE);
    for (int i = 0; i < 3; i++)
        zmq_send(d, "x", 1, i < 2 ? ZMQ_SNDMORE : 0);
    static ps_frames f;
    ps_frames_init(&f);
    ps_error err;
    ck_assert_int_eq(ps_wire_recv(r, true, 0, &f, &got, &err), PS_EPROTO);
    ck_assert_str_eq(err.msg, "message has more than 3 frames");
    ck_assert_uint_eq(f.identity_len, 6);
    ck_assert_int_eq(memcmp(f.identity, "peer-9", 6), 0);
    ck_assert_uint_eq(got.seq, 42);
    ck_assert_uint_eq(got.worker_id, 7);
    ps_frames_close(&f);
    zmq_close(r);
    zmq_close(d);
    zmq_ctx_term(ctx);
}
END_TEST

/* ---- the header's fields, all of them, from PS_MSG_FIELDS ---------------- */

/* A distinct non-zero value for the k-th field (k from 1): its number in
 * the high bits too, so a value cut to fewer bits or given to another
 * field does not come back the same. */
/* clang-format off */
#define FIELD_VALUE(field, k)                                                                      \
    _Generic((field),                                                                              \
             double: (double)(k) + 0.25,                                                           \
             default: sizeof(field) == 8 ? ((uint64_t)(k) << 40 | (uint64_t)(k))                   \
                                         : ((uint64_t)(k) << 20 | (uint64_t)(k)))
/* clang-format on */

#define FILL_NUM(ctype, name)                                                                      \
    k++;                                                                                           \
    m->name = (ctype)FIELD_VALUE(m->name, k);
#define FILL_ENUM(ctype, name, ptype)                                                              \
    k++;                                                                                           \
    m->name = (ctype)1;
#define FILL_STR(name, cap)                                                                        \
    k++;                                                                                           \
    snprintf(bufs->name, sizeof bufs->name, "%s %d", #name, k);                                    \
    m->name = bufs->name;
/* Every field of m set: numbers and strings distinct and non-zero, enums
 * 1; then the fields the codec checks against each other made to agree:
 * a PUSH of 3 rows of 1 float of table 1, keys 1, 2 and 3, whose payload
 * is SPARSE_PAYLOAD. */
static const unsigned char SPARSE_PAYLOAD[15] = {1, 1, 1}; /* keys as deltas, then 3 zeros */
static void fields_fill(ps_msg *m, str_bufs *bufs)
{
    int k = 0;
    PS_MSG_FIELDS(FILL_NUM, FILL_ENUM, FILL_STR)
    m->type = PS_MSG_PUSH;
    m->encoding = PS_ENC_F32;
    m->table = 1;
    m->dim = 1;
    m->nkeys = 3;
    m->keys_bytes = 3;
    m->payload_bytes = sizeof SPARSE_PAYLOAD;
    m->layout = NULL;
    m->payload = NULL;
}

#define SAME_NUM(ctype, name)                                                                      \
    ck_assert_msg(m->name != 0, "field %s was not set", #name);                                    \
    ck_assert_msg(memcmp(&d->name, &m->name, sizeof m->name) == 0, "field %s changed", #name);
#define SAME_ENUM(ctype, name, ptype)                                                              \
    ck_assert_msg(m->name != 0, "field %s was not set", #name);                                    \
    ck_assert_msg(d->name == m->name, "field %s is %d, was %d", #name, (int)d->name, (int)m->name);
#define SAME_STR(name, cap)                                                                        \
    ck_assert_msg(m->name != NULL && m->name[0] != '\0', "field %s was not set", #name);           \
    ck_assert_msg(d->name != NULL && strcmp(d->name, m->name) == 0,                                \
                  "field %s is \"%s\", was \"%s\"", #name, ps_msg_str(d->name), m->name);
static void fields_same(const ps_msg *d, const ps_msg *m)
{
    PS_MSG_FIELDS(SAME_NUM, SAME_ENUM, SAME_STR);
}

START_TEST(every_header_field_survives_a_round_trip)
{
    static ps_msg m, d;
    static str_bufs bufs;
    fields_fill(&m, &bufs);
    static unsigned char buf[PS_HEADER_MAX_BYTES];
    size_t len = encode(&m, buf, sizeof buf);
    ck_assert_uint_eq(len, ps_codec_header_size(&m));
    ps_error err;
    int rc = ps_codec_decode(&arena, buf, len, SPARSE_PAYLOAD, sizeof SPARSE_PAYLOAD, &d, &err);
    ck_assert_msg(rc == 0, "decode: %s", err.msg);
    fields_same(&d, &m);
    ck_assert_ptr_eq(d.payload, SPARSE_PAYLOAD);
    ck_assert_ptr_null(d.layout);
}
END_TEST

/* A string of n bytes of 'x' in buf (at least n + 1 bytes). */
static const char *text_of(char *buf, size_t n)
{
    memset(buf, 'x', n);
    buf[n] = '\0';
    return buf;
}

/* Encodes m (one string field set to text) and checks what the codec says
 * of a string of that length: n < cap encodes and decodes, n == cap is
 * refused by the encoder. */
#define LIMIT_ENCODE(name, cap)                                                                    \
    do {                                                                                           \
        ps_msg_init(&m, PS_MSG_HELLO);                                                             \
        m.seq = 8;                                                                                 \
        m.name = text_of(text, (cap)-1);                                                           \
        len = 0;                                                                                   \
        ck_assert_msg(ps_codec_encode(&m, buf, sizeof buf, &len) == 0, "%s of %d bytes", #name,    \
                      (cap)-1);                                                                    \
        rc = ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err);                                 \
        ck_assert_msg(rc == 0, "%s: %s", #name, err.msg);                                          \
        ck_assert_uint_eq(strlen(d.name), (cap)-1);                                                \
        m.name = text_of(text, (cap));                                                             \
        ck_assert_msg(ps_codec_encode(&m, buf, sizeof buf, &len) == PS_EINVAL, "%s of %d bytes",   \
                      #name, (cap));                                                               \
        ck_assert_msg(ps_codec_encode(&m, buf, 64, &len) == PS_EINVAL, "%s, small buffer", #name); \
    } while (0);

START_TEST(string_as_long_as_its_limit_is_refused_by_the_encoder)
{
    static ps_msg m, d;
    static char text[PS_HEADER_MAX_BYTES];
    static unsigned char buf[PS_HEADER_MAX_BYTES];
    size_t len;
    int rc;
    ps_error err;
    PS_MSG_FIELDS(NO_NUM, NO_ENUM, LIMIT_ENCODE)
}
END_TEST

/* A Header made with protobuf-c (a ps_msg cannot be encoded with such a
 * string) whose field is cap bytes long: the decoder names the field. */
#define LIMIT_DECODE(name, cap)                                                                    \
    do {                                                                                           \
        Ps__Header h;                                                                              \
        ps__header__init(&h);                                                                      \
        h.type = PS__MSG_TYPE__HELLO;                                                              \
        h.protocol = PS_PROTOCOL_VERSION;                                                          \
        h.seq = 8;                                                                                 \
        h.worker_id = 5;                                                                           \
        h.name = (char *)text_of(text, (cap));                                                     \
        ck_assert_uint_le(ps__header__get_packed_size(&h), sizeof buf);                            \
        size_t len = ps__header__pack(&h, buf);                                                    \
        char want[128];                                                                            \
        snprintf(want, sizeof want, "header field %s is %d bytes (limit %d)", #name, (cap),        \
                 (cap)-1);                                                                         \
        ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), PS_EPROTO);         \
        ck_assert_str_eq(err.msg, want);                                                           \
        ck_assert_int_eq(d.type, PS_MSG_HELLO);                                                    \
        ck_assert_uint_eq(d.seq, 8);                                                               \
        ck_assert_uint_eq(d.worker_id, 5);                                                         \
        /* one byte shorter fits */                                                                \
        h.name = (char *)text_of(text, (cap)-1);                                                   \
        len = ps__header__pack(&h, buf);                                                           \
        ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), 0);                 \
        ck_assert_uint_eq(strlen(d.name), (cap)-1);                                                \
    } while (0);

START_TEST(string_as_long_as_its_limit_is_refused_by_the_decoder)
{
    static ps_msg d;
    static char text[PS_HEADER_MAX_BYTES];
    static unsigned char buf[PS_HEADER_MAX_BYTES];
    ps_error err;
    PS_MSG_FIELDS(NO_NUM, NO_ENUM, LIMIT_DECODE)
}
END_TEST

#define IN_ARENA_STR(name, cap)                                                                    \
    ck_assert_msg(in_arena(d.name), "field %s does not point into the arena", #name);
#define EMPTY_STR(name, cap)                                                                       \
    ck_assert_msg(d.name != NULL && d.name[0] == '\0', "absent field %s is not \"\"", #name);

START_TEST(decoded_strings_point_into_the_arena_and_layout_is_null_without_tables)
{
    static ps_msg m, d;
    static str_bufs bufs;
    static ps_layout l;
    ps_error err;
    unsigned char buf[4096];
    /* every string set: each is the arena's */
    fields_fill(&m, &bufs);
    m.type = PS_MSG_HELLO;
    m.encoding = PS_ENC_NONE;
    m.payload_bytes = m.table = m.dim = m.nkeys = m.keys_bytes = 0;
    size_t len = encode(&m, buf, sizeof buf);
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), 0);
    PS_MSG_FIELDS(NO_NUM, NO_ENUM, IN_ARENA_STR)
    ck_assert_ptr_null(d.layout);
    /* a WELCOME's tables are the arena's too */
    ps_msg_init(&m, PS_MSG_WELCOME);
    l.nshards = 1;
    strcpy(l.shards[0].endpoint, "tcp://127.0.0.1:7070");
    l.shards[0].key_hi = 4;
    m.layout = &l;
    len = encode(&m, buf, sizeof buf);
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), 0);
    ck_assert_ptr_eq(d.layout, &arena.layout);
    ck_assert_str_eq(d.layout->shards[0].endpoint, "tcp://127.0.0.1:7070");
    /* the next message into the same arena has no tables: layout NULL, not
     * the WELCOME's left over; absent strings are "" */
    ps_msg_init(&m, PS_MSG_PULL);
    len = encode(&m, buf, sizeof buf);
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), 0);
    ck_assert_ptr_null(d.layout);
    PS_MSG_FIELDS(NO_NUM, NO_ENUM, EMPTY_STR)
    /* an empty WELCOME (no shards, no tensors) has no layout either */
    ps_msg_init(&m, PS_MSG_WELCOME);
    l.nshards = 0;
    m.layout = &l;
    len = encode(&m, buf, sizeof buf);
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, NULL, 0, &d, &err), 0);
    ck_assert_ptr_null(d.layout);
}
END_TEST

/* ---- worker states ----------------------------------------------------- */

START_TEST(worker_table_round_trips_every_state)
{
    static ps_worker_status rows[PS_WORKER_STATE_COUNT], back[PS_WORKER_STATE_COUNT];
    for (int s = 0; s < PS_WORKER_STATE_COUNT; s++) {
        rows[s].rank = (uint32_t)s;
        rows[s].state = (ps_worker_state)(PS_WORKER_STATE_COUNT - 1 - s);
    }
    unsigned char buf[1024];
    size_t len = 0, n = 0;
    ck_assert_int_eq(ps_codec_workers_encode(rows, PS_WORKER_STATE_COUNT, buf, sizeof buf, &len),
                     0);
    ps_error err;
    ck_assert_int_eq(ps_codec_workers_decode(buf, len, back, PS_WORKER_STATE_COUNT, &n, &err), 0);
    ck_assert_uint_eq(n, PS_WORKER_STATE_COUNT);
    for (int s = 0; s < PS_WORKER_STATE_COUNT; s++) {
        ck_assert_uint_eq(back[s].rank, (uint32_t)s);
        ck_assert_int_eq(back[s].state, PS_WORKER_STATE_COUNT - 1 - s);
    }
    /* on the wire the state is its name */
    Ps__WorkerTable *t = ps__worker_table__unpack(NULL, len, buf);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t->workers[0]->state, "vacant");
    ck_assert_str_eq(t->workers[PS_WORKER_STATE_COUNT - 1]->state, "live");
    ps__worker_table__free_unpacked(t, NULL);
}
END_TEST

/* A table of one row whose state is `state`, packed with protobuf-c. */
static size_t table_with_state(const char *state, unsigned char *buf, size_t cap)
{
    Ps__WorkerStatus w;
    ps__worker_status__init(&w);
    w.rank = 3;
    w.state = (char *)state;
    Ps__WorkerStatus *rows[1] = {&w};
    Ps__WorkerTable t;
    ps__worker_table__init(&t);
    t.n_workers = 1;
    t.workers = rows;
    ck_assert_uint_le(ps__worker_table__get_packed_size(&t), cap);
    return ps__worker_table__pack(&t, buf);
}

START_TEST(worker_table_with_an_unknown_state_is_refused)
{
    static ps_worker_status back[2];
    unsigned char buf[256];
    size_t n = 7;
    ps_error err;
    size_t len = table_with_state("asleep", buf, sizeof buf);
    ck_assert_int_eq(ps_codec_workers_decode(buf, len, back, 2, &n, &err), PS_EPROTO);
    ck_assert_str_eq(err.msg, "the worker table's row 0 has state \"asleep\"");
    ck_assert_uint_eq(n, 0);
    /* names are exact: no other case, no empty state */
    len = table_with_state("LIVE", buf, sizeof buf);
    ck_assert_int_eq(ps_codec_workers_decode(buf, len, back, 2, &n, &err), PS_EPROTO);
    ck_assert_str_eq(err.msg, "the worker table's row 0 has state \"LIVE\"");
    len = table_with_state("", buf, sizeof buf);
    ck_assert_int_eq(ps_codec_workers_decode(buf, len, back, 2, &n, &err), PS_EPROTO);
    ck_assert_str_eq(err.msg, "the worker table's row 0 has state \"\"");
    len = table_with_state("left", buf, sizeof buf);
    ck_assert_int_eq(ps_codec_workers_decode(buf, len, back, 2, &n, &err), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(back[0].state, PS_WORKER_LEFT);
    ck_assert_uint_eq(back[0].rank, 3);
}
END_TEST

START_TEST(encoder_refuses_what_the_decoder_would)
{
    /* a layout string that fills its array without a NUL */
    static ps_layout l;
    memset(&l, 0, sizeof l);
    l.nshards = 1;
    memset(l.shards[0].endpoint, 'a', PS_ENDPOINT_MAX);
    ps_msg m;
    ps_msg_init(&m, PS_MSG_WELCOME);
    m.layout = &l;
    unsigned char hdr[PS_HEADER_MAX_BYTES];
    size_t len = 0;
    ck_assert_int_eq(ps_codec_encode(&m, hdr, sizeof hdr, &len), PS_EINVAL);
    l.shards[0].endpoint[PS_ENDPOINT_MAX - 1] = '\0';
    ck_assert_int_eq(ps_codec_encode(&m, hdr, sizeof hdr, &len), 0);
    l.ntensors = 1;
    memset(l.tensors[0].name, 't', PS_TENSOR_NAME_MAX);
    ck_assert_int_eq(ps_codec_encode(&m, hdr, sizeof hdr, &len), PS_EINVAL);
    /* a worker table row whose state has no name */
    ps_worker_status row;
    memset(&row, 0, sizeof row);
    row.state = PS_WORKER_STATE_COUNT;
    unsigned char buf[256];
    ck_assert_int_eq(ps_codec_workers_encode(&row, 1, buf, sizeof buf, &len), PS_EINVAL);
    row.state = PS_WORKER_VACANT;
    ck_assert_int_eq(ps_codec_workers_encode(&row, 1, buf, sizeof buf, &len), 0);
}
END_TEST

START_TEST(worker_state_names_meanings_and_parse)
{
    static const struct {
        ps_worker_state state;
        const char *name, *meaning;
    } want[] = {
        {PS_WORKER_LIVE, "live", "a worker holds it"}, {PS_WORKER_DONE, "done", "pushed its last"},
        {PS_WORKER_LEFT, "left", "said bye"},          {PS_WORKER_EVICTED, "evicted", "silent"},
        {PS_WORKER_VACANT, "vacant", "never held"},
    };
    ck_assert_uint_eq(sizeof want / sizeof want[0], PS_WORKER_STATE_COUNT);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ck_assert_int_eq(want[i].state, (int)i); /* ordered from most to least alive */
        ck_assert_str_eq(ps_worker_state_name(want[i].state), want[i].name);
        ck_assert_str_eq(ps_worker_state_meaning(want[i].state), want[i].meaning);
        ck_assert_int_eq(ps_worker_state_parse(want[i].name), (int)want[i].state);
    }
    ck_assert_str_eq(ps_worker_state_name(PS_WORKER_STATE_COUNT), "?");
    ck_assert_str_eq(ps_worker_state_name((ps_worker_state)-1), "?");
    ck_assert_str_eq(ps_worker_state_name((ps_worker_state)1000), "?");
    ck_assert_str_eq(ps_worker_state_meaning(PS_WORKER_STATE_COUNT), "?");
    ck_assert_str_eq(ps_worker_state_meaning((ps_worker_state)-1), "?");
    ck_assert_int_eq(ps_worker_state_parse("?"), -1);
    ck_assert_int_eq(ps_worker_state_parse("Live"), -1);
    ck_assert_int_eq(ps_worker_state_parse("live "), -1);
    ck_assert_int_eq(ps_worker_state_parse(""), -1);
    ck_assert_int_eq(ps_worker_state_parse(NULL), -1);
}
END_TEST

START_TEST(header_struct_is_a_few_hundred_bytes_at_most)
{
    ck_assert_uint_le(sizeof(ps_msg), 352);
}
END_TEST

START_TEST(push_with_pull_flag_round_trips_its_pull)
{
    static ps_msg m, d;
    float g[4] = {1, 2, 3, 4};
    ps_msg_init(&m, PS_MSG_PUSH);
    m.job = "digits";
    m.flags = PS_FLAG_PULL | PS_FLAG_SHM;
    m.seq = 12;
    m.clock = 3;
    m.min_version = 4;
    m.pull_clock = 5;
    m.key_hi = 4;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = sizeof g;
    unsigned char buf[256];
    size_t len = encode(&m, buf, sizeof buf);
    ps_error err;
    ck_assert_int_eq(ps_codec_decode(&arena, buf, len, g, sizeof g, &d, &err), 0);
    ck_assert_int_eq(d.type, PS_MSG_PUSH);
    ck_assert_uint_eq(d.flags, PS_FLAG_PULL | PS_FLAG_SHM);
    ck_assert_uint_eq(d.clock, 3);
    ck_assert_uint_eq(d.min_version, 4);
    ck_assert_uint_eq(d.pull_clock, 5);
    ck_assert_ptr_eq(d.payload, g);
}
END_TEST

/* ---- sparse tables ------------------------------------------------------ */

/* A sparse PUSH of n keys of table 1 (rows of dim floats, all 0.5) into
 * frame; its header into hdr. Returns the header's length. */
static size_t sparse_push(ps_msg *m, const uint64_t *keys, size_t n, uint32_t dim,
                          unsigned char *frame, size_t *frame_len, unsigned char *hdr)
{
    size_t kb = 0;
    ck_assert_int_eq(ps_keys_encode(keys, n, frame, PS_KEYS_BYTES_MAX(n), &kb), 0);
    for (size_t i = 0; i < n * dim; i++) {
        float v = 0.5f;
        memcpy(frame + kb + i * 4, &v, 4);
    }
    ps_msg_init(m, PS_MSG_PUSH);
    m->seq = 9;
    m->table = 1;
    m->dim = dim;
    m->nkeys = n;
    m->keys_bytes = kb;
    m->encoding = PS_ENC_F32;
    m->payload_bytes = kb + n * dim * 4;
    *frame_len = (size_t)m->payload_bytes;
    return encode(m, hdr, PS_HEADER_MAX_BYTES);
}

START_TEST(sparse_push_round_trips_with_its_keys_and_rows)
{
    static ps_msg m, d;
    unsigned char frame[256], hdr[PS_HEADER_MAX_BYTES];
    const uint64_t keys[] = {3, 1000, UINT64_MAX};
    size_t flen = 0, len = sparse_push(&m, keys, 3, 2, frame, &flen, hdr);
    ps_error err;
    ck_assert_msg(ps_codec_decode(&arena, hdr, len, frame, flen, &d, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(d.table, 1);
    ck_assert_uint_eq(d.dim, 2);
    ck_assert_uint_eq(d.nkeys, 3);
    ck_assert_uint_eq(d.keys_bytes, 1 + 2 + 10);
    ck_assert_ptr_eq(d.payload, frame);
    ck_assert_ptr_null(d.keys);
    /* decoded as they are checked, given room for them (psd's receive) */
    uint64_t out[3] = {0};
    ck_assert_msg(ps_codec_decode_keys(&arena, hdr, len, frame, flen, out, 3, &d, &err) == 0, "%s",
                  err.msg);
    ck_assert_ptr_eq(d.keys, out);
    ck_assert(memcmp(out, keys, sizeof keys) == 0);
    ck_assert_msg(ps_codec_decode_keys(&arena, hdr, len, frame, flen, out, 2, &d, &err) == 0, "%s",
                  err.msg);
    ck_assert_ptr_null(d.keys); /* no room: checked only */
    /* a pull of the same keys: keys only, encoding none */
    ps_msg_init(&m, PS_MSG_PULL);
    m.table = 1;
    m.dim = 2;
    m.nkeys = 3;
    m.keys_bytes = 13;
    m.payload_bytes = 13;
    len = encode(&m, hdr, sizeof hdr);
    ck_assert_msg(ps_codec_decode(&arena, hdr, len, frame, 13, &d, &err) == 0, "%s", err.msg);
    /* its reply: rows only */
    ps_msg_init(&m, PS_MSG_PULL_REPLY);
    m.table = 1;
    m.dim = 2;
    m.nkeys = 3;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = 24;
    len = encode(&m, hdr, sizeof hdr);
    ck_assert_msg(ps_codec_decode(&arena, hdr, len, frame, 24, &d, &err) == 0, "%s", err.msg);
    /* a SCAN: a page of at most nkeys rows from the cursor in key_lo, no keys */
    ps_msg_init(&m, PS_MSG_PULL);
    m.table = 1;
    m.dim = 2;
    m.flags = PS_FLAG_SCAN;
    m.nkeys = 4096;
    m.key_lo = 77;
    len = encode(&m, hdr, sizeof hdr);
    ck_assert_msg(ps_codec_decode(&arena, hdr, len, NULL, 0, &d, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(d.nkeys, 4096);
    ps_msg_init(&m, PS_MSG_PULL_REPLY);
    m.table = 1;
    m.dim = 2;
    m.encoding = PS_ENC_F32;
    /* a SCAN reply: 8-byte keys, then rows */
    m.flags = PS_FLAG_SCAN;
    m.nkeys = 2;
    m.keys_bytes = 16;
    m.payload_bytes = 16 + 16;
    len = encode(&m, hdr, sizeof hdr);
    ck_assert_msg(ps_codec_decode(&arena, hdr, len, frame, 32, &d, &err) == 0, "%s", err.msg);
}
END_TEST

/* Decodes m with the frame and expects PS_EPAYLOAD naming why. */
static void sparse_refused(const ps_msg *m, const unsigned char *frame, size_t flen,
                           const char *why)
{
    static ps_msg d;
    unsigned char hdr[PS_HEADER_MAX_BYTES];
    size_t len = encode(m, hdr, sizeof hdr);
    ps_error err;
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(ps_codec_decode(&arena, hdr, len, frame, flen, &d, &err), PS_EPAYLOAD);
    ck_assert_msg(strstr(err.msg, why) != NULL, "\"%s\" does not say \"%s\"", err.msg, why);
}

START_TEST(malformed_sparse_frames_are_refused_with_a_reason)
{
    static ps_msg m;
    unsigned char frame[256], hdr[PS_HEADER_MAX_BYTES];
    const uint64_t keys[] = {3, 1000, 70000};
    size_t flen = 0;
    sparse_push(&m, keys, 3, 2, frame, &flen, hdr);
    ps_msg bad = m; /* more keys announced than the bytes hold */
    bad.nkeys = 4;
    sparse_refused(&bad, frame, flen, "announced");
    bad = m; /* keys bytes beyond the payload */
    bad.keys_bytes = flen + 1;
    sparse_refused(&bad, frame, flen, "bytes of keys");
    bad = m; /* rows of another dim */
    bad.dim = 3;
    sparse_refused(&bad, frame, flen, "do not hold");
    bad = m;
    bad.dim = 0;
    sparse_refused(&bad, frame, flen, "not a payload");
    bad = m; /* the frame shorter than the header says */
    sparse_refused(&bad, frame, flen - 4, "payload bytes");
    unsigned char dup[256]; /* a key twice: delta 0 */
    dup[0] = 3;
    dup[1] = 0;
    memcpy(dup + 2, frame + m.keys_bytes, 16);
    bad = m;
    bad.nkeys = 2;
    bad.keys_bytes = 2;
    bad.payload_bytes = 2 + 16;
    sparse_refused(&bad, dup, 18, "unique");
    bad = m; /* a table on a message that has none */
    bad.type = PS_MSG_HELLO;
    sparse_refused(&bad, frame, flen, "only pulls and pushes");
    ps_msg dense; /* dense θ with sparse keys */
    ps_msg_init(&dense, PS_MSG_PULL);
    dense.nkeys = 2;
    sparse_refused(&dense, NULL, 0, "sparse keys");
    ps_msg reply; /* a reply of rows with keys in it */
    ps_msg_init(&reply, PS_MSG_PULL_REPLY);
    reply.table = 1;
    reply.dim = 1;
    reply.nkeys = 1;
    reply.keys_bytes = 1;
    reply.encoding = PS_ENC_F32;
    reply.payload_bytes = 5;
    sparse_refused(&reply, frame, 5, "carries no keys");
    reply.flags = PS_FLAG_SCAN; /* scanned keys are words */
    sparse_refused(&reply, frame, 5, "scanned keys");
    ps_msg scan; /* a SCAN with keys in it */
    ps_msg_init(&scan, PS_MSG_PULL);
    scan.table = 1;
    scan.dim = 1;
    scan.flags = PS_FLAG_SCAN;
    scan.nkeys = 10;
    scan.payload_bytes = 3;
    scan.keys_bytes = 3;
    sparse_refused(&scan, frame, 3, "a SCAN carries no keys");
}
END_TEST

/* A push naming the pull of its keys (PS_FLAG_KEYS_OF) carries rows only:
 * nkeys rows of dim floats and no keys; keys, a count of 0, no pull's seq,
 * rows that disagree with nkeys or the flag on anything but a sparse push
 * are refused. */
START_TEST(push_naming_its_pull_carries_rows_only)
{
    static ps_msg m, d;
    unsigned char frame[256], hdr[PS_HEADER_MAX_BYTES];
    memset(frame, 0, sizeof frame);
    ps_msg_init(&m, PS_MSG_PUSH);
    m.table = 1;
    m.dim = 2;
    m.nkeys = 3;
    m.flags = PS_FLAG_KEYS_OF;
    m.keys_of = 41;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = 3 * 2 * 4;
    size_t len = encode(&m, hdr, sizeof hdr);
    ps_error err;
    ck_assert_msg(ps_codec_decode(&arena, hdr, len, frame, 24, &d, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(d.keys_of, 41);
    ck_assert_uint_eq(d.flags, PS_FLAG_KEYS_OF);
    ck_assert_uint_eq(d.keys_bytes, 0);
    ck_assert_ptr_eq(d.payload, frame);
    uint64_t out[3];
    ck_assert_msg(ps_codec_decode_keys(&arena, hdr, len, frame, 24, out, 3, &d, &err) == 0, "%s",
                  err.msg);
    ck_assert_ptr_null(d.keys); /* none to decode */
    ps_msg bad = m;             /* keys after all */
    bad.keys_bytes = 1;
    bad.payload_bytes = 25;
    sparse_refused(&bad, frame, 25, "carries 1 bytes of keys");
    bad = m; /* rows for another count */
    bad.nkeys = 4;
    sparse_refused(&bad, frame, 24, "do not hold");
    bad = m;
    bad.nkeys = 0;
    bad.encoding = PS_ENC_NONE;
    bad.payload_bytes = 0;
    sparse_refused(&bad, NULL, 0, "above 0");
    bad = m;
    bad.keys_of = 0;
    sparse_refused(&bad, frame, 24, "above 0");
    bad = m; /* on a pull, or on the dense θ */
    bad.type = PS_MSG_PULL;
    bad.encoding = PS_ENC_NONE;
    bad.payload_bytes = 0;
    sparse_refused(&bad, NULL, 0, "only a PUSH");
    bad = m;
    bad.table = 0;
    bad.dim = 0;
    bad.nkeys = 0;
    bad.key_hi = 6;
    sparse_refused(&bad, frame, 24, "flag KEYS_OF");
}
END_TEST

START_TEST(layout_tables_and_table_status_round_trip)
{
    static ps_msg m, d;
    static ps_layout l;
    memset(&l, 0, sizeof l);
    ps_msg_init(&m, PS_MSG_WELCOME);
    l.nshards = 1;
    strcpy(l.shards[0].endpoint, "tcp://127.0.0.1:7070");
    l.shards[0].key_hi = 1;
    l.ntensors = 1;
    strcpy(l.tensors[0].name, "b");
    l.tensors[0].ndims = 1;
    l.tensors[0].shape[0] = 1;
    l.ntables = 2;
    strcpy(l.tables[0].name, "w");
    l.tables[0].dim = 1;
    strcpy(l.tables[1].name, "v");
    l.tables[1].dim = 9;
    m.layout = &l;
    unsigned char hdr[PS_HEADER_MAX_BYTES];
    size_t len = encode(&m, hdr, sizeof hdr);
    ps_error err;
    ck_assert_msg(ps_codec_decode(&arena, hdr, len, NULL, 0, &d, &err) == 0, "%s", err.msg);
    ck_assert_ptr_nonnull(d.layout);
    ck_assert_uint_eq(d.layout->ntables, 2);
    ck_assert_str_eq(d.layout->tables[1].name, "v");
    ck_assert_uint_eq(d.layout->tables[1].dim, 9);
    /* a table of dim 0 is no table: the encoder refuses to send one */
    l.tables[1].dim = 0;
    ck_assert_int_eq(ps_codec_encode(&m, hdr, sizeof hdr, &len), PS_EINVAL);
    /* the figures psctl shows */
    ps_table_status st[2], back[2];
    memset(st, 0, sizeof st);
    strcpy(st[0].name, "w");
    st[0].dim = 1;
    st[0].rows = 123456789;
    st[0].evicted_cap = 7;
    strcpy(st[1].name, "v");
    st[1].dim = 9;
    st[1].unadmitted = 42;
    unsigned char buf[512];
    size_t blen = 0, n = 0;
    ck_assert_int_eq(ps_codec_tables_encode(st, 2, buf, sizeof buf, &blen), 0);
    ck_assert_uint_eq(blen, ps_codec_tables_size(st, 2));
    memset(back, 0, sizeof back);
    ck_assert_int_eq(ps_codec_tables_decode(buf, blen, back, 2, &n, &err), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(memcmp(st, back, sizeof st), 0);
    ck_assert_int_ne(ps_codec_tables_decode(buf, blen, back, 1, &n, &err), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("codec");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, welcome_round_trips_with_layout);
    tcase_add_test(tc, push_payload_is_used_in_place);
    tcase_add_test(tc, payload_shorter_than_header_says_is_refused);
    tcase_add_test(tc, payload_not_covering_key_range_is_refused);
    tcase_add_test(tc, key_count_that_overflows_is_refused);
    tcase_add_test(tc, missing_payload_frame_is_refused);
    tcase_add_test(tc, payload_without_encoding_is_refused);
    tcase_add_test(tc, unknown_type_is_refused_but_seq_kept);
    tcase_add_test(tc, garbage_header_is_refused);
    tcase_add_test(tc, oversized_header_is_refused_before_parsing);
    tcase_add_test(tc, too_long_job_name_is_refused);
    tcase_add_test(tc, encode_refuses_small_buffer);
    tcase_add_test(tc, shm_push_round_trips_without_a_frame);
    tcase_add_test(tc, shm_push_with_a_frame_is_refused);
    tcase_add_test(tc, shm_push_not_covering_key_range_is_refused);
    tcase_add_test(tc, shm_push_with_empty_or_reversed_range_is_refused);
    tcase_add_test(tc, unknown_encoding_is_refused);
    tcase_add_test(tc, worker_table_round_trips_and_rides_only_on_status_reply);
    tcase_add_test(tc, shm_fields_round_trip);
    tcase_add_test(tc, hello_incarnation_and_status_staleness_round_trip);
    tcase_add_test(tc, pull_with_shm_flag_round_trips);
    tcase_add_test(tc, too_long_host_is_refused);
    tcase_add_test(tc, has_frame_only_for_payload_on_the_wire);
    tcase_add_test(tc, wire_drains_message_with_extra_frames);
    tcase_add_test(tc, empty_float32_payload_round_trips);
    tcase_add_test(tc, largest_header_fits_the_arena);
    tcase_add_test(tc, header_needing_more_than_the_arena_is_refused);
    tcase_add_test(tc, router_message_with_extra_frames_keeps_identity_and_seq);
    tcase_add_test(tc, every_header_field_survives_a_round_trip);
    tcase_add_test(tc, string_as_long_as_its_limit_is_refused_by_the_encoder);
    tcase_add_test(tc, string_as_long_as_its_limit_is_refused_by_the_decoder);
    tcase_add_test(tc, decoded_strings_point_into_the_arena_and_layout_is_null_without_tables);
    tcase_add_test(tc, worker_table_round_trips_every_state);
    tcase_add_test(tc, worker_table_with_an_unknown_state_is_refused);
    tcase_add_test(tc, worker_state_names_meanings_and_parse);
    tcase_add_test(tc, encoder_refuses_what_the_decoder_would);
    tcase_add_test(tc, header_struct_is_a_few_hundred_bytes_at_most);
    tcase_add_test(tc, push_with_pull_flag_round_trips_its_pull);
    tcase_add_test(tc, sparse_push_round_trips_with_its_keys_and_rows);
    tcase_add_test(tc, malformed_sparse_frames_are_refused_with_a_reason);
    tcase_add_test(tc, push_naming_its_pull_carries_rows_only);
    tcase_add_test(tc, layout_tables_and_table_status_round_trip);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
