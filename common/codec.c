/* codec.c — frames ⇄ ps_msg. protobuf-c parses the header; everything it
 * yields is checked against our limits before it is copied into the struct. */
#include "codec.h"

#include "compress.h"
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

void ps_msg_init(ps_msg *m, ps_msg_type type)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    m->protocol = PS_PROTOCOL_VERSION;
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

static int decode_layout(const Ps__Header *h, ps_msg *m, ps_error *err)
{
    if (h->n_shards > PS_MAX_SHARDS)
        return ps_error_set(err, PS_EPROTO, "header lists %zu shards (limit %d)", h->n_shards,
                            PS_MAX_SHARDS);
    if (h->n_tensors > PS_MAX_TENSORS)
        return ps_error_set(err, PS_EPROTO, "header lists %zu tensors (limit %d)", h->n_tensors,
                            PS_MAX_TENSORS);
    m->nshards = (uint32_t)h->n_shards;
    for (size_t i = 0; i < h->n_shards; i++) {
        const Ps__ShardInfo *s = h->shards[i];
        int rc =
            copy_string(m->shards[i].endpoint, PS_ENDPOINT_MAX, s->endpoint, "shard endpoint", err);
        if (rc != 0)
            return rc;
        if (s->key_hi < s->key_lo)
            return ps_error_set(err, PS_EPROTO, "shard %zu has key_hi < key_lo", i);
        m->shards[i].key_lo = s->key_lo;
        m->shards[i].key_hi = s->key_hi;
    }
    m->ntensors = (uint32_t)h->n_tensors;
    for (size_t i = 0; i < h->n_tensors; i++) {
        const Ps__TensorInfo *t = h->tensors[i];
        int rc = copy_string(m->tensors[i].name, PS_TENSOR_NAME_MAX, t->name, "tensor name", err);
        if (rc != 0)
            return rc;
        if (t->n_shape > PS_MAX_DIMS)
            return ps_error_set(err, PS_EPROTO, "tensor %zu has %zu dimensions (limit %d)", i,
                                t->n_shape, PS_MAX_DIMS);
        m->tensors[i].ndims = (uint32_t)t->n_shape;
        for (size_t d = 0; d < t->n_shape; d++)
            m->tensors[i].shape[d] = t->shape[d];
        m->tensors[i].offset = t->offset;
    }
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
static int check_payload(ps_msg *m, const void *payload, size_t payload_len, ps_error *err)
{
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

int ps_codec_decode(const void *hdr, size_t hdr_len, const void *payload, size_t payload_len,
                    ps_msg *m, ps_error *err)
{
    ps_codec_arena arena;
    return ps_codec_decode_in(&arena, hdr, hdr_len, payload, payload_len, m, err);
}

int ps_codec_decode_in(ps_codec_arena *arena, const void *hdr, size_t hdr_len, const void *payload,
                       size_t payload_len, ps_msg *m, ps_error *err)
{
    ps_msg_init(m, PS_MSG_NONE);
    m->protocol = 0;
    if (hdr_len > PS_HEADER_MAX_BYTES)
        return ps_error_set(err, PS_EPROTO, "header frame of %zu bytes (limit %d)", hdr_len,
                            PS_HEADER_MAX_BYTES);
    arena->used = 0;
    arena->spent = false;
    ProtobufCAllocator alloc = {arena_alloc, arena_free, arena};
    Ps__Header *h = ps__header__unpack(&alloc, hdr_len, hdr);
    if (h == NULL && arena->spent)
        return ps_error_set(err, PS_EPROTO,
                            "header frame of %zu bytes needs more than %zu bytes to decode",
                            hdr_len, sizeof arena->mem);
    if (h == NULL)
        return ps_error_set(err, PS_EPROTO, "header frame of %zu bytes is not a valid Header",
                            hdr_len);
    int rc = 0;
    m->type = (ps_msg_type)h->type;
    m->protocol = h->protocol;
    m->worker_id = h->worker_id;
    m->seq = h->seq;
    m->clock = h->clock;
    m->model_version = h->model_version;
    m->min_version = h->min_version;
    m->key_lo = h->key_lo;
    m->key_hi = h->key_hi;
    m->encoding = (ps_encoding)h->encoding;
    m->payload_bytes = h->payload_bytes;
    m->status = h->status;
    m->rank = h->rank;
    m->num_workers = h->num_workers;
    m->num_params = h->num_params;
    m->shard_index = h->shard_index;
    m->samples = h->samples;
    m->flags = h->flags;
    m->shm_pid = h->shm_pid;
    m->shm_fd = h->shm_fd;
    m->shm_bytes = h->shm_bytes;
    m->shm_token = h->shm_token;
    m->incarnation = h->incarnation;
    m->staleness_max = h->staleness_max;
    m->staleness_p99 = h->staleness_p99;
    m->staleness_mean = h->staleness_mean;
    m->loss = h->loss;
    m->samples_per_s = h->samples_per_s;
    m->applied = h->applied;
    m->applied_seq = h->applied_seq;
    if ((int)h->type <= PS_MSG_NONE || (int)h->type >= PS_MSG_COUNT) {
        rc = ps_error_set(err, PS_ETYPE, "unknown message type %d", (int)h->type);
        goto free_header;
    }
    if ((rc = copy_string(m->job, sizeof m->job, h->job, "job", err)) != 0 ||
        (rc = copy_string(m->error, sizeof m->error, h->error, "error", err)) != 0 ||
        (rc = copy_string(m->mode, sizeof m->mode, h->mode, "mode", err)) != 0 ||
        (rc = copy_string(m->detail, sizeof m->detail, h->detail, "detail", err)) != 0 ||
        (rc = copy_string(m->host, sizeof m->host, h->host, "host", err)) != 0 ||
        (rc = copy_string(m->hostname, sizeof m->hostname, h->hostname, "hostname", err)) != 0 ||
        (rc = decode_layout(h, m, err)) != 0)
        goto free_header;
    rc = check_payload(m, payload, payload_len, err);
free_header:
    ps__header__free_unpacked(h, &alloc); /* frees nothing: the arena is simply reused */
    return rc;
}

/* The protobuf view of m. Strings and sub-messages point into m and into
 * the caller's arrays, so nothing is allocated. */
static void fill_header(const ps_msg *m, Ps__Header *h, Ps__ShardInfo *shards,
                        Ps__ShardInfo **shard_ptrs, Ps__TensorInfo *tensors,
                        Ps__TensorInfo **tensor_ptrs, uint64_t (*shapes)[PS_MAX_DIMS])
{
    ps__header__init(h);
    h->type = (Ps__MsgType)m->type;
    h->protocol = m->protocol;
    h->job = (char *)m->job;
    h->worker_id = m->worker_id;
    h->seq = m->seq;
    h->clock = m->clock;
    h->model_version = m->model_version;
    h->min_version = m->min_version;
    h->key_lo = m->key_lo;
    h->key_hi = m->key_hi;
    h->encoding = (Ps__Encoding)m->encoding;
    h->payload_bytes = m->payload_bytes;
    h->status = m->status;
    h->error = (char *)m->error;
    h->rank = m->rank;
    h->num_workers = m->num_workers;
    h->num_params = m->num_params;
    h->shard_index = m->shard_index;
    h->samples = m->samples;
    h->flags = m->flags;
    h->mode = (char *)m->mode;
    h->detail = (char *)m->detail;
    h->host = (char *)m->host;
    h->shm_pid = m->shm_pid;
    h->shm_fd = m->shm_fd;
    h->shm_bytes = m->shm_bytes;
    h->shm_token = m->shm_token;
    h->incarnation = m->incarnation;
    h->staleness_max = m->staleness_max;
    h->staleness_p99 = m->staleness_p99;
    h->staleness_mean = m->staleness_mean;
    h->loss = m->loss;
    h->samples_per_s = m->samples_per_s;
    h->hostname = (char *)m->hostname;
    h->applied = m->applied;
    h->applied_seq = m->applied_seq;
    for (uint32_t i = 0; i < m->nshards; i++) {
        ps__shard_info__init(&shards[i]);
        shards[i].endpoint = (char *)m->shards[i].endpoint;
        shards[i].key_lo = m->shards[i].key_lo;
        shards[i].key_hi = m->shards[i].key_hi;
        shard_ptrs[i] = &shards[i];
    }
    h->n_shards = m->nshards;
    h->shards = m->nshards ? shard_ptrs : NULL;
    for (uint32_t i = 0; i < m->ntensors; i++) {
        ps__tensor_info__init(&tensors[i]);
        tensors[i].name = (char *)m->tensors[i].name;
        memcpy(shapes[i], m->tensors[i].shape, sizeof shapes[i]);
        tensors[i].n_shape = m->tensors[i].ndims;
        tensors[i].shape = shapes[i];
        tensors[i].offset = m->tensors[i].offset;
        tensor_ptrs[i] = &tensors[i];
    }
    h->n_tensors = m->ntensors;
    h->tensors = m->ntensors ? tensor_ptrs : NULL;
}

/* The limits a message must keep to be encoded (the decoder's, mirrored). */
static bool msg_within_limits(const ps_msg *m)
{
    if (m->nshards > PS_MAX_SHARDS || m->ntensors > PS_MAX_TENSORS)
        return false;
    for (uint32_t i = 0; i < m->ntensors; i++)
        if (m->tensors[i].ndims > PS_MAX_DIMS)
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
    fill_header(m, &h, shards, shard_ptrs, tensors, tensor_ptrs, shapes);
    if (buf == NULL)
        return ps__header__get_packed_size(&h);
    return ps__header__pack(&h, buf);
}

size_t ps_codec_header_size(const ps_msg *m)
{
    return encode_into(m, NULL);
}

/* The largest header a ps_msg within its limits packs to: every string
 * field full, 32 shards and 32 tensors of 4 dimensions, varints at their
 * longest. Well under PS_HEADER_MAX_BYTES, so a buffer that large is packed
 * into without sizing the header first (one pass instead of two, on every
 * message psd sends). */
#define CODEC_HEADER_BOUND                                                                         \
    (2048 + PS_JOB_NAME_MAX + 2 * PS_MSG_ERROR_MAX + 16 + 2 * PS_HOST_MAX +                        \
     PS_MAX_SHARDS * (PS_ENDPOINT_MAX + 32) +                                                      \
     PS_MAX_TENSORS * (PS_TENSOR_NAME_MAX + 16 + 11 * PS_MAX_DIMS))
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
    w->state = (char *)r->state;
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
        size_t h = 0;
        head[h++] = (1u << 3) | 2u;
        for (size_t v = len;; v >>= 7) {
            head[h++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
            if (v <= 0x7f)
                break;
        }
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
        if ((rc = copy_string(r->state, sizeof r->state, w->state, "worker state", err)) != 0 ||
            (rc = copy_string(r->hostname, sizeof r->hostname, w->hostname, "hostname", err)) != 0)
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
    }
    *n = t->n_workers;
out:
    ps__worker_table__free_unpacked(t, NULL);
    return rc;
}
