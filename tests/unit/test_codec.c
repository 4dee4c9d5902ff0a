/* test_codec.c — the wire codec: round trips, and every malformed frame is
 * refused with the right code and sentence. */
#include <check.h>

#include "check_main.h"
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "wire.h"

static size_t encode(const ps_msg *m, unsigned char *buf, size_t cap)
{
    size_t len = 0;
    ck_assert_int_eq(ps_codec_encode(m, buf, cap, &len), 0);
    return len;
}

START_TEST(welcome_round_trips_with_layout)
{
    static ps_msg m, d;
    ps_msg_init(&m, PS_MSG_WELCOME);
    strcpy(m.job, "digits");
    m.worker_id = 3;
    m.rank = 1;
    m.num_workers = 2;
    m.num_params = 31;
    strcpy(m.mode, "sync");
    m.nshards = 2;
    strcpy(m.shards[0].endpoint, "tcp://127.0.0.1:7070");
    m.shards[0].key_hi = 15;
    strcpy(m.shards[1].endpoint, "tcp://127.0.0.1:7071");
    m.shards[1].key_lo = 15;
    m.shards[1].key_hi = 31;
    m.ntensors = 2;
    strcpy(m.tensors[0].name, "w");
    m.tensors[0].ndims = 1;
    m.tensors[0].shape[0] = 30;
    strcpy(m.tensors[1].name, "b");
    m.tensors[1].ndims = 1;
    m.tensors[1].shape[0] = 1;
    m.tensors[1].offset = 30;
    unsigned char buf[4096];
    size_t len = encode(&m, buf, sizeof buf);
    ck_assert_uint_eq(len, ps_codec_header_size(&m));
    ps_error err;
    ck_assert_int_eq(ps_codec_decode(buf, len, NULL, 0, &d, &err), 0);
    ck_assert_int_eq(d.type, PS_MSG_WELCOME);
    ck_assert_uint_eq(d.protocol, PS_PROTOCOL_VERSION);
    ck_assert_str_eq(d.job, "digits");
    ck_assert_int_eq(d.rank, 1);
    ck_assert_uint_eq(d.num_params, 31);
    ck_assert_str_eq(d.mode, "sync");
    ck_assert_uint_eq(d.nshards, 2);
    ck_assert_str_eq(d.shards[1].endpoint, "tcp://127.0.0.1:7071");
    ck_assert_uint_eq(d.shards[1].key_lo, 15);
    ck_assert_uint_eq(d.ntensors, 2);
    ck_assert_str_eq(d.tensors[1].name, "b");
    ck_assert_uint_eq(d.tensors[1].offset, 30);
    ck_assert_uint_eq(d.tensors[0].shape[0], 30);
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
    ck_assert_int_eq(ps_codec_decode(buf, len, g, sizeof g, &d, NULL), 0);
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
    ck_assert_int_eq(ps_codec_decode(buf, len, g, 12, &d, &err), PS_EPAYLOAD);
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
    ck_assert_int_eq(ps_codec_decode(buf, len, g, 16, &d, &err), PS_EPAYLOAD);
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
    ck_assert_int_eq(ps_codec_decode(buf, len, g, 4, &d, NULL), PS_EPAYLOAD);
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
    ck_assert_int_eq(ps_codec_decode(buf, len, NULL, 0, &d, &err), PS_EPAYLOAD);
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
    ck_assert_int_eq(ps_codec_decode(buf, len, junk, sizeof junk, &d, &err), PS_EPAYLOAD);
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
    ck_assert_int_eq(ps_codec_decode(buf, len, NULL, 0, &d, &err), PS_ETYPE);
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
    ck_assert_int_eq(ps_codec_decode(junk, sizeof junk, NULL, 0, &d, &err), PS_EPROTO);
    ck_assert_str_eq(err.msg, "header frame of 6 bytes is not a valid Header");
}
END_TEST

START_TEST(oversized_header_is_refused_before_parsing)
{
    static ps_msg d;
    ps_error err;
    unsigned char *big = calloc(1, PS_HEADER_MAX_BYTES + 1);
    ck_assert_int_eq(ps_codec_decode(big, PS_HEADER_MAX_BYTES + 1, NULL, 0, &d, &err), PS_EPROTO);
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
    ck_assert_int_eq(ps_codec_decode(buf, 104, NULL, 0, &d, &err), PS_EPROTO);
    ck_assert_str_eq(err.msg, "header field job is 100 bytes (limit 63)");
}
END_TEST

START_TEST(encode_refuses_small_buffer)
{
    static ps_msg m;
    ps_msg_init(&m, PS_MSG_HELLO);
    strcpy(m.job, "a-long-enough-job-name");
    unsigned char buf[4];
    size_t len;
    ck_assert_int_eq(ps_codec_encode(&m, buf, sizeof buf, &len), PS_EINVAL);
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
    ps_frames f;
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
    tcase_add_test(tc, wire_drains_message_with_extra_frames);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
