/* membership.c — HELLO, WELCOME and BYE on the client (membership.h). */
#include "membership.h"

#include "client_shm.h"
#include "exchange.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Checks that the job a WELCOME describes is whole: a shard map with one
 * range per endpoint tiling [0, P) in order, tensors tiling [0, P), and a
 * rank among the workers. */
/* The layout a WELCOME carries; an empty one when it has none. */
static const ps_layout *welcome_layout(const ps_msg *m)
{
    static const ps_layout none;
    return m->layout != NULL ? m->layout : &none;
}

static int welcome_check_layout(ps_client *c, op *o, size_t i, const ps_msg *m)
{
    const ps_layout *l = welcome_layout(m);
    const char *ep = c->shards[i].endpoint;
    uint64_t p = m->num_params;
    if (p == 0 || p > SIZE_MAX / sizeof(float)) {
        ps_exchange_fail(c, o, i, PS_EPROTO, "%s: WELCOME says the job has %llu parameters", ep,
                         (unsigned long long)p);
        return PS_EPROTO;
    }
    if (l->nshards != c->nshards) {
        ps_exchange_fail(c, o, i, PS_EPROTO,
                         "%s: WELCOME lists %u shards, but the client was given %zu endpoints", ep,
                         l->nshards, c->nshards);
        return PS_EPROTO;
    }
    uint64_t next = 0;
    for (uint32_t k = 0; k < l->nshards; k++) {
        const ps_shard_info *sh = &l->shards[k];
        if (sh->key_lo != next || sh->key_hi < sh->key_lo || sh->key_hi > p ||
            (k + 1 == l->nshards && sh->key_hi != p)) {
            ps_exchange_fail(c, o, i, PS_EPROTO,
                             "%s: WELCOME's shard map does not tile [0, %llu): shard %u covers "
                             "[%llu, %llu)",
                             ep, (unsigned long long)p, k, (unsigned long long)sh->key_lo,
                             (unsigned long long)sh->key_hi);
            return PS_EPROTO;
        }
        next = sh->key_hi;
    }
    if (ps_mode_find(m->mode) == NULL) {
        ps_exchange_fail(c, o, i, PS_EPROTO,
                         "%s: WELCOME names mode \"%s\", which this client does not know", ep,
                         m->mode);
        return PS_EPROTO;
    }
    if (m->num_workers == 0 || m->rank < 0 || (uint32_t)m->rank >= m->num_workers) {
        ps_exchange_fail(c, o, i, PS_EPROTO, "%s: WELCOME gives rank %d of %u workers", ep,
                         (int)m->rank, m->num_workers);
        return PS_EPROTO;
    }
    if (l->ntensors == 0)
        return 0; /* no layout given: θ is one flat vector */
    next = 0;
    for (uint32_t k = 0; k < l->ntensors; k++) {
        const ps_tensor_info *t = &l->tensors[k];
        uint64_t n = 1;
        bool ok = t->offset == next;
        for (uint32_t d = 0; d < t->ndims && ok; d++)
            ok = !__builtin_mul_overflow(n, t->shape[d], &n);
        if (!ok || __builtin_add_overflow(next, n, &next) || next > p) {
            ps_exchange_fail(
                c, o, i, PS_EPROTO,
                "%s: WELCOME's tensor %u \"%s\" at offset %llu does not follow the tensors "
                "before it inside [0, %llu)",
                ep, k, t->name, (unsigned long long)t->offset, (unsigned long long)p);
            return PS_EPROTO;
        }
    }
    if (next != p) {
        ps_exchange_fail(c, o, i, PS_EPROTO,
                         "%s: WELCOME's tensors cover %llu keys, the job has %llu", ep,
                         (unsigned long long)next, (unsigned long long)p);
        return PS_EPROTO;
    }
    return 0;
}

/* Takes the job's description from a WELCOME (shard 0's, in open). */
static void welcome_adopt(ps_client *c, const ps_msg *m)
{
    const ps_layout *l = welcome_layout(m);
    c->described = true;
    c->rank = m->rank;
    c->num_workers = m->num_workers;
    c->num_params = m->num_params;
    ps_strlcpy(c->mode, m->mode, sizeof c->mode);
    c->mode_desc = ps_mode_find(c->mode);
    c->nmap = l->nshards;
    memcpy(c->map, l->shards, sizeof c->map);
    c->ntensors = l->ntensors;
    c->ntables = l->ntables;
    memcpy(c->tables, l->tables, sizeof c->tables);
    memcpy(c->tensors, l->tensors, sizeof c->tensors);
}

static bool tensor_equal(const ps_tensor_info *a, const ps_tensor_info *b)
{
    if (strcmp(a->name, b->name) != 0 || a->ndims != b->ndims || a->offset != b->offset)
        return false;
    for (uint32_t d = 0; d < a->ndims; d++)
        if (a->shape[d] != b->shape[d])
            return false;
    return true;
}

/* Names the first thing a WELCOME disagrees on with the adopted description
 * into what; false when it agrees. */
static bool welcome_differs(const ps_client *c, const ps_msg *m, char *what, size_t cap)
{
    const ps_layout *l = welcome_layout(m);
    if (m->num_params != c->num_params) {
        snprintf(what, cap, "num_params %llu (shard 0 said %llu)",
                 (unsigned long long)m->num_params, (unsigned long long)c->num_params);
    } else if (m->num_workers != c->num_workers) {
        snprintf(what, cap, "num_workers %u (shard 0 said %u)", m->num_workers, c->num_workers);
    } else if (m->rank != c->rank) {
        snprintf(what, cap, "rank %d (shard 0 said %d)", (int)m->rank, c->rank);
    } else if (strcmp(m->mode, c->mode) != 0) {
        snprintf(what, cap, "mode \"%s\" (shard 0 said \"%s\")", m->mode, c->mode);
    } else if (l->ntables != c->ntables) {
        snprintf(what, cap, "%u tables (shard 0 said %u)", l->ntables, c->ntables);
    } else if (l->ntensors != c->ntensors) {
        snprintf(what, cap, "%u tensors (shard 0 said %u)", l->ntensors, c->ntensors);
    } else {
        for (uint32_t k = 0; k < l->nshards; k++) {
            const ps_shard_info *a = &l->shards[k], *b = &c->map[k];
            if (a->key_lo != b->key_lo || a->key_hi != b->key_hi ||
                strcmp(a->endpoint, b->endpoint) != 0) {
                snprintf(what, cap, "shard %u: %s [%llu, %llu) (shard 0 said %s [%llu, %llu))", k,
                         a->endpoint, (unsigned long long)a->key_lo, (unsigned long long)a->key_hi,
                         b->endpoint, (unsigned long long)b->key_lo, (unsigned long long)b->key_hi);
                return true;
            }
        }
        for (uint32_t k = 0; k < l->ntensors; k++) {
            if (!tensor_equal(&l->tensors[k], &c->tensors[k])) {
                snprintf(what, cap, "tensor %u \"%s\" (shard 0 said \"%s\")", k, l->tensors[k].name,
                         c->tensors[k].name);
                return true;
            }
        }
        return false;
    }
    return true;
}

/* What a WELCOME says of the rank's pushes. The first one sets the base
 * (another worker may have held the rank). A later one (psd evicted us, or
 * restarted from a checkpoint) may hold fewer pushes than it acknowledged:
 * those were rolled back, and are said so once. The push in flight, when
 * the shard has it (applied_seq), counts as held. */
static void welcome_tally(ps_client *c, shard *s, const ps_msg *m)
{
    s->applied = m->applied;
    if (!s->based) {
        s->based = true;
        s->applied_base = m->applied;
        return;
    }
    if (s->push_seq > s->counted_seq && m->applied_seq != 0 && m->applied_seq >= s->push_seq) {
        s->acked++;
        s->counted_seq = s->push_seq;
    }
    uint64_t held = s->applied_base + s->acked - s->rolled_back;
    if (held > m->applied) {
        uint64_t lost = held - m->applied;
        s->rolled_back += lost;
        if (c->log_fn != NULL) {
            char line[PS_ERROR_MSG_MAX];
            snprintf(line, sizeof line,
                     "%s went back to a checkpoint without %llu of this worker's acknowledged "
                     "pushes: their batches are trained again",
                     s->endpoint, (unsigned long long)lost);
            c->log_fn(c->log_arg, 1, line);
        }
    } else if (held < m->applied) { /* pushes of another process for the rank */
        s->applied_base += m->applied - held;
    }
}

/* The shard's chunks of sync pushes, as its first WELCOME says (a later
 * one that says otherwise, a psd restarted with another setting, turns
 * them off: whole pushes are always taken). Without memory for the
 * bitmaps the pushes go whole. */
static void welcome_chunks(ps_client *c, shard *s, const ps_msg *m)
{
    (void)c;
    uint64_t n = s->key_hi - s->key_lo, ck = m->chunk_keys;
    bool remote = (m->flags & PS_FLAG_CHUNK_REMOTE) != 0;
    if (s->chunk_acked != NULL) {
        if (ck != s->chunk_keys || remote != s->chunk_remote)
            s->nchunks = 1;
        return;
    }
    s->chunk_keys = ck;
    s->chunk_remote = remote;
    s->nchunks = 1;
    if (ck == 0 || n <= ck || (n + ck - 1) / ck > UINT32_MAX)
        return;
    uint32_t nc = (uint32_t)((n + ck - 1) / ck);
    s->chunk_acked = calloc(nc, 1);
    s->chunk_pulled = calloc(nc, 1);
    s->chunk_enc_off = calloc((size_t)nc + 1, sizeof *s->chunk_enc_off);
    if (s->chunk_acked == NULL || s->chunk_pulled == NULL || s->chunk_enc_off == NULL)
        return;
    s->nchunks = nc;
}

void ps_membership_welcome(ps_client *c, op *o, size_t i, const ps_msg *m)
{
    shard *s = &c->shards[i];
    s->worker_id = m->worker_id;
    atomic_store(&s->hb_worker_id, m->worker_id);
    atomic_fetch_add(&s->reg_gen, 1); /* after the id: heartbeats of this one carry it */
    s->registered = true;
    if (m->shard_index != i) {
        ps_exchange_fail(c, o, i, PS_EPROTO, "%s: WELCOME is from shard %u, expected shard %zu",
                         s->endpoint, m->shard_index, i);
        return;
    }
    if (o->rank >= 0 && m->rank != o->rank) {
        ps_exchange_fail(c, o, i, PS_EPROTO, "%s: WELCOME gives rank %d, rank %d was asked for",
                         s->endpoint, (int)m->rank, o->rank);
        return;
    }
    if (welcome_check_layout(c, o, i, m) != 0)
        return;
    if (!c->described)
        welcome_adopt(c, m);
    char what[PS_ERROR_MSG_MAX / 2];
    if (welcome_differs(c, m, what, sizeof what)) {
        ps_exchange_fail(c, o, i, PS_EPROTO, "%s: WELCOME disagrees with shard 0 on %s",
                         s->endpoint, what);
        return;
    }
    s->key_lo = c->map[i].key_lo;
    s->key_hi = c->map[i].key_hi;
    welcome_chunks(c, s, m);
    welcome_tally(c, s, m);
    ps_client_shm_attach(c, s, m);
    if (m->model_version < o->version)
        o->version = m->model_version;
    s->pending = false;
}

/* HELLO to shard 0 first, for the rank; then to the others with that rank. */
int ps_membership_register(ps_client *c, int rank)
{
    op hello = {.type = PS_MSG_HELLO, .reply = PS_MSG_WELCOME, .rank = rank, .version = UINT64_MAX};
    for (size_t i = 0; i < c->nshards; i++)
        c->shards[i].asked = i == 0;
    int rc = ps_exchange_run(c, &hello, false, c->timeout_ms);
    c->rejoin_version = hello.version;
    if (rc != 0 || c->nshards == 1)
        return rc;
    hello.rank = c->rank;
    for (size_t i = 0; i < c->nshards; i++)
        c->shards[i].asked = i > 0;
    rc = ps_exchange_run(c, &hello, false, c->timeout_ms);
    c->rejoin_version = hello.version;
    return rc;
}

/* A random id for this client, never 0: psd tells our pushes from those of
 * another process holding the same rank (exactly once across its restarts). */
uint64_t ps_membership_incarnation(void)
{
    uint64_t id = 0;
    if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id || id == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        id =
            ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    }
    return id != 0 ? id : 1;
}

/* Says BYE (with flags and why) to the shards that know us, which then
 * know us no more; the first error, if any. Nothing is sent once a server
 * stopped the client (a final ERROR): it is gone, or says so to anything. */
int ps_membership_bye(ps_client *c, uint32_t flags, const char *why)
{
    if (atomic_load(&c->final_rc) != 0)
        return 0;
    ps_exchange_mark(c, true, true);
    bool any = false;
    for (size_t i = 0; i < c->nshards; i++)
        any = any || c->shards[i].asked;
    if (!any)
        return 0;
    int timeout_ms = c->timeout_ms < CLIENT_BYE_TIMEOUT_MS ? c->timeout_ms : CLIENT_BYE_TIMEOUT_MS;
    op bye = {
        .type = PS_MSG_BYE, .reply = PS_MSG_ACK, .version = UINT64_MAX, .flags = flags, .why = why};
    int rc = ps_exchange_run(c, &bye, false, timeout_ms);
    for (size_t i = 0; i < c->nshards; i++)
        if (c->shards[i].asked)
            c->shards[i].registered = false;
    return rc;
}
