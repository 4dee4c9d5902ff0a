/* codec.c — frames ⇄ ps_msg. protobuf-c parses the header; everything it
 * yields is checked against our limits before it is copied into the struct. */
#include "codec.h"

#include "compress.h"
#include "keys.h"
#include "ps.pb-c.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* The C enums are ps.proto's, value for value (its NONE is MSG_NONE). */
#define PS__MSG_TYPE__NONE PS__MSG_TYPE__MSG_NONE
#define ASSERT_TYPE(name, value)                                                                   \
    _Static_assert(PS_MSG_##name == (int)PS__MSG_TYPE__##name, "MsgType " #name " is ps.proto's");
PS_MSG_TYPES(ASSERT_TYPE)
#undef ASSERT_TYPE
#define ASSERT_ENCODING(name, value)                                                               \
    _Static_assert(PS_ENC_##name == (int)PS__ENCODING__ENC_##name,                                 \
                   "Encoding " #name " is ps.proto's");
PS_ENCODINGS(ASSERT_ENCODING)
#undef ASSERT_ENCODING

static const char *const type_names[] = {
#define TYPE_NAME(name, value) [value] = #name,
    PS_MSG_TYPES(TYPE_NAME)
#undef TYPE_NAME
};
_Static_assert(sizeof type_names / sizeof type_names[0] == PS_MSG_COUNT, "a name per type");

const char *ps_msg_type_name(int type)
{
    if (type < 0 || type >= PS_MSG_COUNT)
        return "?";
    return type_names[type];
}

static const struct {
    const char *name, *meaning;
} worker_states[] = {
#define STATE_ROW(name, text, meaning) [PS_WORKER_##name] = {text, meaning},
    PS_WORKER_STATES(STATE_ROW)
#undef STATE_ROW
};
_Static_assert(sizeof worker_states / sizeof worker_states[0] == PS_WORKER_STATE_COUNT,
               "a name per worker state");

const char *ps_worker_state_name(ps_worker_state state)
{
    return (unsigned)state < PS_WORKER_STATE_COUNT ? worker_states[state].name : "?";
}

const char *ps_worker_state_meaning(ps_worker_state state)
{
    return (unsigned)state < PS_WORKER_STATE_COUNT ? worker_states[state].meaning : "?";
}

int ps_worker_state_parse(const char *name)
{
    for (int i = 0; name != NULL && i < PS_WORKER_STATE_COUNT; i++)
        if (strcmp(name, worker_states[i].name) == 0)
            return i;
    return -1;
}

/* Copies a decoded string into a fixed field; PS_EPROTO when it is too long
 * or holds a NUL (protobuf strings may). */
static int copy_string(char *dst, size_t cap, const char *src, const char *what, ps_error *err)
{
    size_t n = strlen(src);
    if (n >= cap)
        return ps_error_set(err, PS_EPROTO, "header field %s is %zu bytes (limit %zu)", what, n,
                            cap - 1);
    memcpy(dst, src, n + 1);
    return 0;
}

/* The WELCOME's tables into the arena's layout; m->layout points there
 * (NULL when the header has none). */
static int decode_layout(const Ps__Header *h, ps_layout *l, ps_msg *m, ps_error *err)
{
    m->layout = NULL;
    if (h->n_shards == 0 && h->n_tensors == 0 && h->n_tables == 0)
        return 0;
    if (h->n_tables > PS_MAX_TABLES)
        return ps_error_set(err, PS_EPROTO, "header lists %zu tables (limit %d)", h->n_tables,
                            PS_MAX_TABLES);
    if (h->n_shards > PS_MAX_SHARDS)
        return ps_error_set(err, PS_EPROTO, "header lists %zu shards (limit %d)", h->n_shards,
                            PS_MAX_SHARDS);
    if (h->n_tensors > PS_MAX_TENSORS)
        return ps_error_set(err, PS_EPROTO, "header lists %zu tensors (limit %d)", h->n_tensors,
                            PS_MAX_TENSORS);
    l->nshards = (uint32_t)h->n_shards;
    for (size_t i = 0; i < h->n_shards; i++) {
        const Ps__ShardInfo *s = h->shards[i];
        int rc =
            copy_string(l->shards[i].endpoint, PS_ENDPOINT_MAX, s->endpoint, "shard endpoint", err);
        if (rc != 0)
            return rc;
        if (s->key_hi < s->key_lo)
            return ps_error_set(err, PS_EPROTO, "shard %zu has key_hi < key_lo", i);
        l->shards[i].key_lo = s->key_lo;
        l->shards[i].key_hi = s->key_hi;
    }
    l->ntensors = (uint32_t)h->n_tensors;
    for (size_t i = 0; i < h->n_tensors; i++) {
        const Ps__TensorInfo *t = h->tensors[i];
        int rc = copy_string(l->tensors[i].name, PS_TENSOR_NAME_MAX, t->name, "tensor name", err);
        if (rc != 0)
            return rc;
        if (t->n_shape > PS_MAX_DIMS)
            return ps_error_set(err, PS_EPROTO, "tensor %zu has %zu dimensions (limit %d)", i,
                                t->n_shape, PS_MAX_DIMS);
        l->tensors[i].ndims = (uint32_t)t->n_shape;
        for (size_t d = 0; d < t->n_shape; d++)
            l->tensors[i].shape[d] = t->shape[d];
        for (size_t d = t->n_shape; d < PS_MAX_DIMS; d++)
            l->tensors[i].shape[d] = 0;
        l->tensors[i].offset = t->offset;
    }
    l->ntables = (uint32_t)h->n_tables;
    for (size_t i = 0; i < h->n_tables; i++) {
        const Ps__TableInfo *t = h->tables[i];
        int rc = copy_string(l->tables[i].name, PS_TABLE_NAME_MAX, t->name, "table name", err);
        if (rc != 0)
            return rc;
        if (t->dim == 0)
            return ps_error_set(err, PS_EPROTO, "table %zu has rows of 0 floats", i);
        l->tables[i].dim = t->dim;
    }
    m->layout = l;
    return 0;
}

/* An SHM_F32 payload: no frame; the header announces one float per key. */
static int check_shm(ps_msg *m, const void *payload, size_t payload_len, ps_error *err)
{
    if (payload != NULL)
        return ps_error_set(err, PS_EPAYLOAD,
                            "%s says its payload is in shared memory but has a %zu-byte frame",
                            ps_msg_type_name(m->type), payload_len);
    uint64_t keys = m->key_hi - m->key_lo;
    if (m->key_hi < m->key_lo || keys == 0 || keys > UINT64_MAX / 4 || keys * 4 != m->payload_bytes)
        return ps_error_set(err, PS_EPAYLOAD,
                            "shared-memory payload of %llu bytes does not cover keys [%llu, %llu)",
                            (unsigned long long)m->payload_bytes, (unsigned long long)m->key_lo,
                            (unsigned long long)m->key_hi);
    return 0;
}

/* A compressed payload (compress.h) against the keys it says it holds. */
static int check_compressed(const ps_msg *m, const void *payload, size_t payload_len, ps_error *err)
{
    const ps_compress_ops *ops = ps_compress_ops_for_encoding(m->encoding);
    if (ops == NULL)
        return ps_error_set(err, PS_EPAYLOAD, "payload encoding %d is not supported yet",
                            (int)m->encoding);
    if (m->key_hi <= m->key_lo || m->key_hi - m->key_lo > SIZE_MAX / 4)
        return ps_error_set(err, PS_EPAYLOAD, "%s payload for key range [%llu, %llu)", ops->name,
                            (unsigned long long)m->key_lo, (unsigned long long)m->key_hi);
    return ops->validate(payload, payload_len, (size_t)(m->key_hi - m->key_lo), err);
}

/* The payload frame against the header: present exactly when the encoding
 * says so, as long as payload_bytes says, and (F32) one float per key. */
/* The rows of a sparse message (after its keys): none with encoding NONE,
 * else nkeys × dim values in the encoding. */
static int check_rows(const ps_msg *m, const void *rows, size_t bytes, ps_error *err)
{
    if (m->encoding == PS_ENC_NONE) {
        if (bytes != 0)
            return ps_error_set(err, PS_EPAYLOAD, "%s has %zu bytes of rows but encoding none",
                                ps_msg_type_name(m->type), bytes);
        return 0;
    }
    const ps_compress_ops *ops = ps_compress_ops_for_encoding(m->encoding);
    if (ops == NULL)
        return ps_error_set(err, PS_EPAYLOAD, "sparse rows cannot be in encoding %d",
                            (int)m->encoding);
    uint64_t n = 0;
    if (m->dim == 0 || __builtin_mul_overflow(m->nkeys, (uint64_t)m->dim, &n) || n > SIZE_MAX / 4)
        return ps_error_set(err, PS_EPAYLOAD, "%llu rows of %u floats are not a payload",
                            (unsigned long long)m->nkeys, m->dim);
    if (m->encoding == PS_ENC_F32) {
        if (n * 4 != bytes)
            return ps_error_set(err, PS_EPAYLOAD,
                                "%zu bytes of float32 rows do not hold %llu rows of %u floats",
                                bytes, (unsigned long long)m->nkeys, m->dim);
        return 0;
    }
    return ops->validate(rows, bytes, (size_t)n, err);
}

/* A sparse message's payload (table > 0): keys_bytes of keys (varints,
 * sorted, nkeys of them; a SCAN reply's: 8-byte words in any order), then
 * its rows. */
static int check_sparse(ps_msg *m, const void *payload, size_t payload_len, uint64_t *out,
                        size_t out_cap, ps_error *err)
{
    if (m->payload_bytes != (payload != NULL ? payload_len : 0))
        return ps_error_set(err, PS_EPAYLOAD,
                            "%s header announces %llu payload bytes, the frame has %zu",
                            ps_msg_type_name(m->type), (unsigned long long)m->payload_bytes,
                            payload != NULL ? payload_len : (size_t)0);
    if (m->keys_bytes > m->payload_bytes)
        return ps_error_set(err, PS_EPAYLOAD, "%s announces %llu bytes of keys in %llu bytes",
                            ps_msg_type_name(m->type), (unsigned long long)m->keys_bytes,
                            (unsigned long long)m->payload_bytes);
    if ((m->flags & PS_FLAG_KEYS_OF) && m->type != PS_MSG_PUSH)
        return ps_error_set(err, PS_EPAYLOAD,
                            "%s has flag KEYS_OF: only a PUSH refers to a pull's keys",
                            ps_msg_type_name(m->type));
    const unsigned char *p = payload;
    if (m->type == PS_MSG_PULL_REPLY && (m->flags & PS_FLAG_SCAN)) {
        uint64_t words = 0;
        if (__builtin_mul_overflow(m->nkeys, (uint64_t)8, &words) || words != m->keys_bytes)
            return ps_error_set(err, PS_EPAYLOAD, "%llu bytes of scanned keys are not %llu keys",
                                (unsigned long long)m->keys_bytes, (unsigned long long)m->nkeys);
    } else if (m->type == PS_MSG_PULL_REPLY) {
        if (m->keys_bytes != 0)
            return ps_error_set(err, PS_EPAYLOAD, "a PULL_REPLY of rows carries no keys");
    } else if (m->type == PS_MSG_PULL && (m->flags & PS_FLAG_SCAN)) {
        /* nkeys is the most rows the page may hold; the cursor is key_lo */
        if (m->payload_bytes != 0)
            return ps_error_set(err, PS_EPAYLOAD, "a SCAN carries no keys");
    } else if (m->flags & PS_FLAG_KEYS_OF) {
        /* the keys of an earlier pull, which psd holds: rows only */
        if (m->keys_bytes != 0)
            return ps_error_set(err, PS_EPAYLOAD,
                                "a PUSH with the keys of pull %llu carries %llu bytes of keys",
                                (unsigned long long)m->keys_of, (unsigned long long)m->keys_bytes);
        if (m->nkeys == 0 || m->keys_of == 0)
            return ps_error_set(err, PS_EPAYLOAD,
                                "a PUSH with the keys of a pull needs keys_of (%llu) and nkeys "
                                "(%llu) above 0",
                                (unsigned long long)m->keys_of, (unsigned long long)m->nkeys);
    } else if (out != NULL && m->nkeys <= out_cap) { /* checked and decoded at once */
        int rc = ps_keys_decode(p, (size_t)m->keys_bytes, m->nkeys, out, err);
        if (rc != 0)
            return rc;
        m->keys = out;
    } else {
        int rc = ps_keys_check(p, (size_t)m->keys_bytes, m->nkeys, NULL, NULL, err);
        if (rc != 0)
            return rc;
    }
    const unsigned char *rows = m->keys_bytes != 0 ? p + m->keys_bytes : p; /* p may be NULL */
    int rc = check_rows(m, rows, (size_t)(m->payload_bytes - m->keys_bytes), err);
    if (rc != 0)
        return rc;
    m->payload = payload;
    return 0;
}

static int check_payload(ps_msg *m, const void *payload, size_t payload_len, uint64_t *out,
                         size_t out_cap, ps_error *err)
{
    if (m->table > 0 && m->type != PS_MSG_PULL && m->type != PS_MSG_PUSH &&
        m->type != PS_MSG_PULL_REPLY)
        return ps_error_set(err, PS_EPAYLOAD, "%s names sparse table %u: only pulls and pushes do",
                            ps_msg_type_name(m->type), m->table - 1);
    if (m->table > 0)
        return check_sparse(m, payload, payload_len, out, out_cap, err);
    if (m->nkeys != 0 || m->keys_bytes != 0 || (m->flags & PS_FLAG_KEYS_OF))
        return ps_error_set(err, PS_EPAYLOAD, "%s of the dense θ announces %llu sparse keys%s",
                            ps_msg_type_name(m->type), (unsigned long long)m->nkeys,
                            (m->flags & PS_FLAG_KEYS_OF) ? " (flag KEYS_OF)" : "");
    if (m->encoding == PS_ENC_NONE) {
        if (payload != NULL || m->payload_bytes != 0)
            return ps_error_set(err, PS_EPAYLOAD, "%s has a %zu-byte payload but encoding none",
                                ps_msg_type_name(m->type), payload ? payload_len : 0);
        return 0;
    }
    if ((unsigned)m->encoding >= PS_ENC_COUNT)
        return ps_error_set(err, PS_EPAYLOAD, "unknown payload encoding %d", (int)m->encoding);
    if (m->encoding == PS_ENC_SHM_F32)
        return check_shm(m, payload, payload_len, err);
    if (m->encoding == PS_ENC_WORKERS && m->type != PS_MSG_STATUS_REPLY)
        return ps_error_set(err, PS_EPAYLOAD, "%s carries a worker table: only STATUS_REPLY may",
                            ps_msg_type_name(m->type));
    if (payload == NULL && m->payload_bytes != 0) /* an empty payload travels without a frame */
        return ps_error_set(err, PS_EPAYLOAD, "%s header announces %llu payload bytes, none came",
                            ps_msg_type_name(m->type), (unsigned long long)m->payload_bytes);
    if (m->payload_bytes != payload_len)
        return ps_error_set(
            err, PS_EPAYLOAD, "%s header announces %llu payload bytes, the frame has %zu",
            ps_msg_type_name(m->type), (unsigned long long)m->payload_bytes, payload_len);
    if (m->encoding == PS_ENC_WORKERS) {
        /* unpacked by whoever reads it (ps_codec_workers_decode) */
    } else if (m->encoding == PS_ENC_F32) {
        if (m->key_hi < m->key_lo)
            return ps_error_set(err, PS_EPAYLOAD, "key range [%llu, %llu) is reversed",
                                (unsigned long long)m->key_lo, (unsigned long long)m->key_hi);
        uint64_t keys = m->key_hi - m->key_lo;
        if (keys > UINT64_MAX / 4 || keys * 4 != payload_len)
            return ps_error_set(
                err, PS_EPAYLOAD, "float32 payload of %zu bytes does not cover keys [%llu, %llu)",
                payload_len, (unsigned long long)m->key_lo, (unsigned long long)m->key_hi);
    } else {
        int rc = check_compressed(m, payload, payload_len, err);
        if (rc != 0)
            return rc;
    }
    m->payload = payload;
    return 0;
}

/* protobuf-c's allocator over a ps_codec_arena: a bump pointer, 16-byte
 * aligned; free is a no-op (the arena is reset per decode). NULL when the
 * arena is spent, which makes the unpack fail. */
static void *arena_alloc(void *data, size_t size)
{
    ps_codec_arena *a = data;
    size_t at = (a->used + 15) & ~(size_t)15;
    if (at > sizeof a->mem || size > sizeof a->mem - at) {
        a->spent = true;
        return NULL;
    }
    a->used = at + size;
    return a->mem + at;
}

static void arena_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

/* A decoded string field: PS_EPROTO when it is as long as its limit. */
static int check_string(const char *str, size_t cap, const char *what, ps_error *err)
{
    size_t n = strnlen(str, cap);
    if (n >= cap)
        return ps_error_set(err, PS_EPROTO, "header field %s is %zu bytes (limit %zu)", what,
                            strlen(str), cap - 1);
    return 0;
}

/* Every field of m from the unpacked header; strings point into it. */
#define DECODE_NUM(ctype, name)         m->name = h->name;
#define DECODE_ENUM(ctype, name, ptype) m->name = (ctype)h->name;
#define DECODE_STR(name, cap)           m->name = h->name != NULL ? h->name : "";
static void header_take(const Ps__Header *h, ps_msg *m)
{
    PS_MSG_FIELDS(DECODE_NUM, DECODE_ENUM, DECODE_STR)
    m->layout = NULL;
    m->payload = NULL;
    m->keys = NULL;
}

#define CHECK_NUM(ctype, name)
#define CHECK_ENUM(ctype, name, ptype)
#define CHECK_STR(name, cap)                                                                       \
    if ((rc = check_string(m->name, cap, #name, err)) != 0)                                        \
        return rc;
static int header_strings_check(const ps_msg *m, ps_error *err)
{
    int rc;
    PS_MSG_FIELDS(CHECK_NUM, CHECK_ENUM, CHECK_STR)
    return 0;
}

int ps_codec_decode(ps_codec_arena *arena, const void *hdr, size_t hdr_len, const void *payload,
                    size_t payload_len, ps_msg *m, ps_error *err)
{
    return ps_codec_decode_keys(arena, hdr, hdr_len, payload, payload_len, NULL, 0, m, err);
}

int ps_codec_decode_keys(ps_codec_arena *arena, const void *hdr, size_t hdr_len,
                         const void *payload, size_t payload_len, uint64_t *keys, size_t keys_cap,
                         ps_msg *m, ps_error *err)
{
    Ps__Header *h = NULL;
    if (hdr_len <= PS_HEADER_MAX_BYTES) {
        arena->used = 0;
        arena->spent = false;
        ProtobufCAllocator alloc = {arena_alloc, arena_free, arena};
        h = ps__header__unpack(&alloc, hdr_len, hdr);
    }
    if (h == NULL) { /* nothing parsed: an empty message, protocol 0 */
        ps_msg_init(m, PS_MSG_NONE);
        m->protocol = 0;
        if (hdr_len > PS_HEADER_MAX_BYTES)
            return ps_error_set(err, PS_EPROTO, "header frame of %zu bytes (limit %d)", hdr_len,
                                PS_HEADER_MAX_BYTES);
        if (arena->spent)
            return ps_error_set(err, PS_EPROTO,
                                "header frame of %zu bytes needs more than %zu bytes to decode",
                                hdr_len, sizeof arena->mem);
        return ps_error_set(err, PS_EPROTO, "header frame of %zu bytes is not a valid Header",
                            hdr_len);
    }
    /* nothing to free: the header, its strings and tables live in the
     * arena until the next decode */
    header_take(h, m);
    if ((int)h->type <= PS_MSG_NONE || (int)h->type >= PS_MSG_COUNT)
        return ps_error_set(err, PS_ETYPE, "unknown message type %d", (int)h->type);
    int rc = header_strings_check(m, err);
    if (rc == 0)
        rc = decode_layout(h, &arena->layout, m, err);
    if (rc == 0)
        rc = check_payload(m, payload, payload_len, keys, keys_cap, err);
    return rc;
}

/* The protobuf view of m. Strings and sub-messages point into m, its
 * layout and the caller's arrays, so nothing is allocated. */
#define ENCODE_NUM(ctype, name)         h->name = m->name;
#define ENCODE_ENUM(ctype, name, ptype) h->name = (ptype)m->name;
#define ENCODE_STR(name, cap)           h->name = (char *)ps_msg_str(m->name);
static void fill_header(const ps_msg *m, Ps__Header *h, Ps__ShardInfo *shards,
                        Ps__ShardInfo **shard_ptrs, Ps__TensorInfo *tensors,
                        Ps__TensorInfo **tensor_ptrs, uint64_t (*shapes)[PS_MAX_DIMS],
                        Ps__TableInfo *tables, Ps__TableInfo **table_ptrs)
{
    ps__header__init(h);
    PS_MSG_FIELDS(ENCODE_NUM, ENCODE_ENUM, ENCODE_STR)
    const ps_layout *l = m->layout;
    if (l == NULL)
        return;
    for (uint32_t i = 0; i < l->nshards; i++) {
        ps__shard_info__init(&shards[i]);
        shards[i].endpoint = (char *)l->shards[i].endpoint;
        shards[i].key_lo = l->shards[i].key_lo;
        shards[i].key_hi = l->shards[i].key_hi;
        shard_ptrs[i] = &shards[i];
    }
    h->n_shards = l->nshards;
    h->shards = l->nshards ? shard_ptrs : NULL;
    for (uint32_t i = 0; i < l->ntensors; i++) {
        ps__tensor_info__init(&tensors[i]);
        tensors[i].name = (char *)l->tensors[i].name;
        memcpy(shapes[i], l->tensors[i].shape, sizeof shapes[i]);
        tensors[i].n_shape = l->tensors[i].ndims;
        tensors[i].shape = shapes[i];
        tensors[i].offset = l->tensors[i].offset;
        tensor_ptrs[i] = &tensors[i];
    }
    h->n_tensors = l->ntensors;
    h->tensors = l->ntensors ? tensor_ptrs : NULL;
    for (uint32_t i = 0; i < l->ntables; i++) {
        ps__table_info__init(&tables[i]);
        tables[i].name = (char *)l->tables[i].name;
        tables[i].dim = l->tables[i].dim;
        table_ptrs[i] = &tables[i];
    }
    h->n_tables = l->ntables;
    h->tables = l->ntables ? table_ptrs : NULL;
}

/* The limits a message must keep to be encoded (the decoder's, mirrored). */
#define LIMIT_NUM(ctype, name)
#define LIMIT_ENUM(ctype, name, ptype)
#define LIMIT_STR(name, cap)                                                                       \
    if (m->name != NULL && strnlen(m->name, cap) >= cap)                                           \
        return false;
static bool msg_within_limits(const ps_msg *m)
{
    PS_MSG_FIELDS(LIMIT_NUM, LIMIT_ENUM, LIMIT_STR)
    const ps_layout *l = m->layout;
    if (l == NULL)
        return true;
    if (l->nshards > PS_MAX_SHARDS || l->ntensors > PS_MAX_TENSORS || l->ntables > PS_MAX_TABLES)
        return false;
    for (uint32_t i = 0; i < l->ntables; i++)
        if (l->tables[i].dim == 0 ||
            strnlen(l->tables[i].name, PS_TABLE_NAME_MAX) >= PS_TABLE_NAME_MAX)
            return false;
    for (uint32_t i = 0; i < l->nshards; i++)
        if (strnlen(l->shards[i].endpoint, PS_ENDPOINT_MAX) >= PS_ENDPOINT_MAX)
            return false;
    for (uint32_t i = 0; i < l->ntensors; i++)
        if (l->tensors[i].ndims > PS_MAX_DIMS ||
            strnlen(l->tensors[i].name, PS_TENSOR_NAME_MAX) >= PS_TENSOR_NAME_MAX)
            return false;
    return true;
}

/* Encodes into buf when it is not NULL; returns the packed size, or 0 when
 * m breaks a limit. */
static size_t encode_into(const ps_msg *m, void *buf)
{
    if (!msg_within_limits(m))
        return 0;
    Ps__Header h;
    Ps__ShardInfo shards[PS_MAX_SHARDS];
    Ps__ShardInfo *shard_ptrs[PS_MAX_SHARDS];
    Ps__TensorInfo tensors[PS_MAX_TENSORS];
    Ps__TensorInfo *tensor_ptrs[PS_MAX_TENSORS];
    uint64_t shapes[PS_MAX_TENSORS][PS_MAX_DIMS];
    Ps__TableInfo tables[PS_MAX_TABLES];
    Ps__TableInfo *table_ptrs[PS_MAX_TABLES];
    fill_header(m, &h, shards, shard_ptrs, tensors, tensor_ptrs, shapes, tables, table_ptrs);
    if (buf == NULL)
        return ps__header__get_packed_size(&h);
    return ps__header__pack(&h, buf);
}

size_t ps_codec_header_size(const ps_msg *m)
{
    return encode_into(m, NULL);
}

/* The largest header a ps_msg within its limits packs to: every string
 * field full, 256 shards and 32 tensors of 4 dimensions, varints at their
 * longest. Well under PS_HEADER_MAX_BYTES, so a buffer that large is packed
 * into without sizing the header first (one pass instead of two, on every
 * message psd sends). */
#define CODEC_HEADER_BOUND                                                                         \
    (2048 + PS_JOB_NAME_MAX + 2 * PS_MSG_ERROR_MAX + 16 + 2 * PS_HOST_MAX +                        \
     PS_MAX_SHARDS * (PS_ENDPOINT_MAX + 32) +                                                      \
     PS_MAX_TENSORS * (PS_TENSOR_NAME_MAX + 16 + 11 * PS_MAX_DIMS) +                               \
     PS_MAX_TABLES * (PS_TABLE_NAME_MAX + 16))
_Static_assert(CODEC_HEADER_BOUND < PS_HEADER_MAX_BYTES,
               "a full header fits a PS_HEADER_MAX_BYTES buffer");

int ps_codec_encode(const ps_msg *m, void *buf, size_t cap, size_t *len)
{
    if (cap >= PS_HEADER_MAX_BYTES) {
        size_t n = encode_into(m, buf);
        if (n == 0)
            return PS_EINVAL;
        *len = n;
        return 0;
    }
    size_t need = encode_into(m, NULL);
    if (need == 0 && !msg_within_limits(m))
        return PS_EINVAL;
    if (need > cap || need > PS_HEADER_MAX_BYTES)
        return PS_EINVAL;
    *len = encode_into(m, buf);
    return 0;
}

/* ---- the worker table (STATUS_REPLY's payload) ---- */

/* The protobuf view of one row (strings point into it). */
static void worker_view(const ps_worker_status *r, Ps__WorkerStatus *w)
{
    ps__worker_status__init(w);
    w->rank = r->rank;
    w->state = (char *)ps_worker_state_name(r->state);
    w->hostname = (char *)r->hostname;
    w->last_seen_ms = r->last_seen_ms;
    w->clock = r->clock;
    w->pushes = r->pushes;
    w->dropped = r->dropped;
    w->duplicates = r->duplicates;
    w->loss = r->loss;
    w->samples_per_s = r->samples_per_s;
    w->staleness_max = r->staleness_max;
    w->staleness_mean = r->staleness_mean;
    w->worker_id = r->worker_id;
    w->evictions = r->evictions;
    w->finished = r->finished;
    w->expected = r->expected;
    w->rounds = r->rounds;
    w->batches = r->batches;
}

/* The head of a length-delimited protobuf field of len bytes: its key and
 * the length as a varint, into head (11 bytes will do); returns its bytes. */
static size_t field_head(unsigned field, size_t len, unsigned char *head)
{
    size_t h = 0;
    head[h++] = (unsigned char)((field << 3) | 2u);
    for (size_t v = len;; v >>= 7) {
        head[h++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        if (v <= 0x7f)
            break;
    }
    return h;
}

/* Packs (buf not NULL) or sizes the table row by row, as protobuf lays out
 * a repeated message field: per row the key of field 1 (length-delimited),
 * the row's size as a varint, the row. Nothing is allocated, so psd's loop
 * can answer a STATUS of PS_MAX_WORKERS rows. */
static size_t workers_pack(const ps_worker_status *rows, size_t n, unsigned char *buf)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        Ps__WorkerStatus w;
        worker_view(&rows[i], &w);
        size_t len = ps__worker_status__get_packed_size(&w);
        unsigned char head[11];
        size_t h = field_head(1, len, head);
        if (buf) {
            memcpy(buf + at, head, h);
            ps__worker_status__pack(&w, buf + at + h);
        }
        at += h + len;
    }
    return at;
}

size_t ps_codec_workers_size(const ps_worker_status *rows, size_t n)
{
    return workers_pack(rows, n, NULL);
}

int ps_codec_workers_encode(const ps_worker_status *rows, size_t n, void *buf, size_t cap,
                            size_t *len)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned)rows[i].state >= PS_WORKER_STATE_COUNT ||
            strnlen(rows[i].hostname, PS_HOST_MAX) >= PS_HOST_MAX)
            return PS_EINVAL;
    size_t need = workers_pack(rows, n, NULL);
    if (need > cap)
        return PS_EINVAL;
    *len = workers_pack(rows, n, buf);
    return 0;
}

int ps_codec_workers_decode(const void *buf, size_t len, ps_worker_status *rows, size_t cap,
                            size_t *n, ps_error *err)
{
    *n = 0;
    Ps__WorkerTable *t = ps__worker_table__unpack(NULL, len, buf);
    if (t == NULL)
        return ps_error_set(err, PS_EPROTO, "the worker table of %zu bytes does not parse", len);
    int rc = 0;
    if (t->n_workers > cap) {
        rc = ps_error_set(err, PS_EPROTO, "the worker table has %zu rows (limit %zu)", t->n_workers,
                          cap);
        goto out;
    }
    for (size_t i = 0; i < t->n_workers; i++) {
        const Ps__WorkerStatus *w = t->workers[i];
        ps_worker_status *r = &rows[i];
        memset(r, 0, sizeof *r);
        int state = ps_worker_state_parse(w->state);
        if (state < 0) {
            rc = ps_error_set(err, PS_EPROTO, "the worker table's row %zu has state \"%.32s\"", i,
                              w->state);
            goto out;
        }
        r->state = (ps_worker_state)state;
        if ((rc = copy_string(r->hostname, sizeof r->hostname, w->hostname, "hostname", err)) != 0)
            goto out;
        r->rank = w->rank;
        r->last_seen_ms = w->last_seen_ms;
        r->clock = w->clock;
        r->pushes = w->pushes;
        r->dropped = w->dropped;
        r->duplicates = w->duplicates;
        r->loss = w->loss;
        r->samples_per_s = w->samples_per_s;
        r->staleness_max = w->staleness_max;
        r->staleness_mean = w->staleness_mean;
        r->worker_id = w->worker_id;
        r->evictions = w->evictions;
        r->finished = w->finished;
        r->expected = w->expected;
        r->rounds = w->rounds;
        r->batches = w->batches;
    }
    *n = t->n_workers;
out:
    ps__worker_table__free_unpacked(t, NULL);
    return rc;
}

/* ---- the tables of a STATUS_REPLY (field 2 of its WorkerTable) ---- */

static void table_view(const ps_table_status *t, Ps__TableStatus *v)
{
    ps__table_status__init(v);
    v->name = (char *)t->name;
    v->dim = t->dim;
    v->rows = t->rows;
    v->bytes = t->bytes;
    v->admitted = t->admitted;
    v->unadmitted = t->unadmitted;
    v->evicted_idle = t->evicted_idle;
    v->evicted_cap = t->evicted_cap;
}

/* As workers_pack, for field 2. */
static size_t tables_pack(const ps_table_status *tables, size_t n, unsigned char *buf)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        Ps__TableStatus v;
        table_view(&tables[i], &v);
        size_t len = ps__table_status__get_packed_size(&v);
        unsigned char head[11];
        size_t h = field_head(2, len, head);
        if (buf) {
            memcpy(buf + at, head, h);
            ps__table_status__pack(&v, buf + at + h);
        }
        at += h + len;
    }
    return at;
}

size_t ps_codec_tables_size(const ps_table_status *tables, size_t n)
{
    return tables_pack(tables, n, NULL);
}

int ps_codec_tables_encode(const ps_table_status *tables, size_t n, void *buf, size_t cap,
                           size_t *len)
{
    for (size_t i = 0; i < n; i++)
        if (strnlen(tables[i].name, PS_TABLE_NAME_MAX) >= PS_TABLE_NAME_MAX)
            return PS_EINVAL;
    size_t need = tables_pack(tables, n, NULL);
    if (need > cap)
        return PS_EINVAL;
    *len = tables_pack(tables, n, buf);
    return 0;
}

int ps_codec_tables_decode(const void *buf, size_t len, ps_table_status *tables, size_t cap,
                           size_t *n, ps_error *err)
{
    *n = 0;
    Ps__WorkerTable *t = ps__worker_table__unpack(NULL, len, buf);
    if (t == NULL)
        return ps_error_set(err, PS_EPROTO, "the worker table of %zu bytes does not parse", len);
    int rc = 0;
    if (t->n_tables > cap) {
        rc = ps_error_set(err, PS_EPROTO, "the status lists %zu tables (limit %zu)", t->n_tables,
                          cap);
        goto out;
    }
    for (size_t i = 0; i < t->n_tables; i++) {
        const Ps__TableStatus *v = t->tables[i];
        ps_table_status *o = &tables[i];
        memset(o, 0, sizeof *o);
        if ((rc = copy_string(o->name, sizeof o->name, v->name, "table name", err)) != 0)
            goto out;
        o->dim = v->dim;
        o->rows = v->rows;
        o->bytes = v->bytes;
        o->admitted = v->admitted;
        o->unadmitted = v->unadmitted;
        o->evicted_idle = v->evicted_idle;
        o->evicted_cap = v->evicted_cap;
    }
    *n = t->n_tables;
out:
    ps__worker_table__free_unpacked(t, NULL);
    return rc;
}
