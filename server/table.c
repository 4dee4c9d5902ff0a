/* table.c — a shard of a sparse table: rows in chunks of virtual memory that
 * are mapped when first needed and never moved, an open-addressing index
 * from keys to row ids, a count-min sketch for admission, a clock hand for
 * idle eviction, sampled LRU at the cap, and a hash map accumulating a sync
 * round. The update rules mirror optim.c's, per row. */
#include "table.h"

#include "keys.h"

#include "optim.h"
#include "row_init.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A float that may sit at any address: gradients come straight from frames. */
typedef float float_u __attribute__((aligned(1)));

#define NONE            UINT32_MAX
#define ROWS_LIMIT      (UINT32_MAX - 1u) /* row ids fit 32 bits, NONE spare */
#define PAGE_BYTES      ((size_t)4096)
#define CHUNK_BYTES_MIN ((size_t)16 << 20) /* a chunk's records, at least */
#define CHUNK_ROWS_MIN  4096u
#define CHUNK_ROWS_MAX  (1u << 20)
#define INDEX_SLOTS_MIN (64 * 12) /* a page of buckets (BUCKET_SLOTS) */
#define INDEX_SLOTS_MAX (UINT64_C(1) << 40)
#define MOVE_SLOTS      8   /* of a growing index's old slots, moved a new row */
#define MOVE_AHEAD      16  /* old slots ahead whose row a move fetches */
#define BUCKET_SLOTS    12u /* slots of an index bucket: a cache line */
_Static_assert(INDEX_SLOTS_MIN % BUCKET_SLOTS == 0, "whole buckets");
#define MOVE_FREE_SLOTS                                                                            \
    ((uint64_t)BUCKET_SLOTS << 15) /* moved old slots handed back at once: 2 MB */
#define SAMPLE_ROWS      16        /* rows an eviction at the cap compares */
#define SKETCH_DEPTH     4
#define SKETCH_BITS      20
#define SKETCH_WIDTH     (1u << SKETCH_BITS)
#define ACC_KEYS_MIN     64
#define REC_HEAD         12u /* a record's key and version, before its floats */
#define VERSION_AGES_MAX UINT64_C(0xFFFFFFFF)
#define VERSION_DEAD     UINT32_MAX /* a dead row's version: no row hint matches it */

_Static_assert(NONE == PS_TABLE_NO_ROW, "a key with no row has the same id in and out");

/* An open-addressing index of cap slots (a multiple of BUCKET_SLOTS) in
 * buckets of one cache line, each the tags (0: empty) and row ids of
 * BUCKET_SLOTS slots after one another: a probe waits for one line, not
 * for a line of tags and then one of ids. */
typedef struct bucket {
    uint8_t tags[BUCKET_SLOTS];
    uint32_t ids[BUCKET_SLOTS];
    uint32_t spare;
} bucket;

_Static_assert(sizeof(bucket) == 64, "a bucket is a cache line");

typedef struct slots {
    bucket *map; /* NULL: none */
    uint64_t cap;
} slots;

struct ps_table {
    char name[PS_TABLE_NAME_MAX];
    uint32_t index, dim, rf, zero_prefix;
    ps_optim_type type;
    float lr, inv_lr, l1, l2, eps, beta;
    ps_row_init init; /* a key's initial weights (row_init.h) */
    uint64_t lo, last;
    uint32_t min_count;
    uint64_t idle_versions; /* 0: never */
    uint32_t cap_rows;      /* max_rows, or ROWS_LIMIT */

    /* rows: record r is chunk r >> cshift, slot r & cmask; a chunk is a
     * liveness bitmap (a page multiple), then records of rec_bytes: key
     * (8 bytes, unaligned), last-updated version (4), rf floats */
    unsigned char **chunks;
    uint32_t nchunks, chunks_max;
    unsigned cshift;
    uint32_t cmask;
    size_t rec_bytes, bits_bytes, chunk_bytes;
    uint32_t next_rid;  /* ids below were used at some point */
    uint32_t free_head; /* dead rows' ids, linked through their key field */
    uint64_t live;
    bool grow_failed; /* memory for rows or the index could not be had: at the cap */

    /* the index; while it grows, old is the smaller one whose rows are
     * being moved into it (old.map NULL otherwise): see "the index" */
    slots ix, old;
    uint64_t mv_start; /* old's slot, empty, where the move began */
    uint64_t mv_done;  /* old's slots after mv_start moved */
    uint64_t mv_freed; /* old's slots from here (before the wrap) still held */

    uint32_t *sketch; /* SKETCH_DEPTH rows of SKETCH_WIDTH; NULL with min_count <= 1 */

    /* the open round: entries in first-touch order, their hash slots */
    uint64_t *acc_keys;
    uint32_t *acc_slot;
    float *acc_vals;     /* dim floats an entry */
    uint32_t *acc_index; /* entry + 1, 0 empty; 2 · acc_cap slots */
    size_t acc_n, acc_cap;

    uint64_t now;  /* the newest version seen */
    uint32_t hand; /* idle eviction's clock hand */
    uint64_t rng;
    uint64_t admitted, not_admitted, evicted_idle, evicted_cap;
    uint8_t *done;      /* apply_many_ids on threads: which keys the hints did */
    uint32_t *unhinted; /* and the others (no row hint), by index */
    size_t done_cap;
};

/* ---- hashing and random numbers ---- */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* The index's hash: keys are hashes already, but need not be good ones. */
static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static uint64_t rng_next(ps_table *t)
{
    uint64_t x = t->rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* ---- shards ---- */

/* ---- rows ---- */

static inline unsigned char *rec_of(const ps_table *t, uint32_t r)
{
    return t->chunks[r >> t->cshift] + t->bits_bytes + (size_t)(r & t->cmask) * t->rec_bytes;
}

static inline uint64_t rec_key(const unsigned char *rec)
{
    uint64_t k;
    memcpy(&k, rec, sizeof k);
    return k;
}

static inline void rec_key_set(unsigned char *rec, uint64_t k)
{
    memcpy(rec, &k, sizeof k);
}

static inline uint32_t *rec_version(unsigned char *rec)
{
    return (uint32_t *)(void *)(rec + 8); /* records are 4-aligned */
}

static inline float *rec_floats(unsigned char *rec)
{
    return (float *)(void *)(rec + REC_HEAD);
}

static inline uint64_t *live_word(const ps_table *t, uint32_t r)
{
    return (uint64_t *)(void *)t->chunks[r >> t->cshift] + ((r & t->cmask) >> 6);
}

static inline bool row_live(const ps_table *t, uint32_t r)
{
    return (*live_word(t, r) >> (r & 63)) & 1u;
}

/* The first live row at or after r, or next_rid; whole bitmap words at a time. */
static uint32_t next_live(const ps_table *t, uint64_t r)
{
    while (r < t->next_rid) {
        uint64_t w = *live_word(t, (uint32_t)r) >> (r & 63);
        if (w != 0) {
            r += (uint64_t)__builtin_ctzll(w);
            break;
        }
        r = (r | 63) + 1;
    }
    return r < t->next_rid ? (uint32_t)r : t->next_rid;
}

static unsigned char *chunk_map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    (void)madvise(p, bytes, MADV_HUGEPAGE); /* advice only */
    return p;
}

/* The id for a new row: a dead row's, else the next never used (mapping
 * its chunk when it is the first of one), or NONE at the cap or when no
 * chunk can be had (then from now on). */
static uint32_t rid_take(ps_table *t)
{
    uint32_t r = t->free_head;
    if (r != NONE) {
        t->free_head = (uint32_t)rec_key(rec_of(t, r));
        return r;
    }
    if (t->next_rid >= t->cap_rows || t->grow_failed)
        return NONE;
    uint32_t c = t->next_rid >> t->cshift;
    if (c >= t->nchunks) {
        unsigned char *m = c < t->chunks_max ? chunk_map(t->chunk_bytes) : NULL;
        if (m == NULL) {
            t->grow_failed = true;
            return NONE;
        }
        t->chunks[t->nchunks++] = m;
    }
    return t->next_rid++;
}

/* ---- the index ----
 *
 * Linear probing over any number of slots: a key's home is its hash scaled
 * to the slot count, (h · cap) >> 64, monotone in h, so slot order follows
 * hash order at every size. Past a load of 0.8 the index grows by 1.4 (a
 * load of 0.57 after), and not at once: a new index is mapped and the old
 * one's rows are moved into it MOVE_SLOTS old slots a new row, in slot
 * order from an empty slot, mv_start, around to it. Meanwhile:
 *
 *   - the moved slots (mv_start and the mv_done after it) are empty in the
 *     old index, and a move stops only after a slot that was empty, so no
 *     old row's probe path crosses a moved slot: each row is in exactly one
 *     index, found where it is by the usual probe;
 *   - no old row has a moved home (its probe path would cross it), so a
 *     lookup probes the old index only for a key whose home there is not
 *     moved, and the new one after (or only): a stored key takes one probe
 *     but in the case below; a drop removes the row from the index holding
 *     it (the backward shift stays in unmoved slots);
 *   - a new row goes to the old index when its home there and the empty
 *     slot its probe ends at are not moved yet, else to the new one (its
 *     home unmoved, when its probe runs into mv_start: rare). So the
 *     new index is written in slot order only (the old is read in order),
 *     and the old one's moved slots are handed back MOVE_FREE_SLOTS at a
 *     time: the two together hold about what the new one alone does.
 *
 * The move ends in time: growth starts at a load of 0.8 of old.cap = c and
 * the move takes at most c / MOVE_SLOTS = 0.125 c new rows, while the next
 * growth is due 0.8 · 1.4 c - 0.8 c = 0.32 c rows later (drops only delay
 * it); the old index holds at most 0.8 c + 0.125 c + 1 < c rows, never
 * full. Should a growth be due all the same, the move is finished first. */

static inline uint8_t *slot_tag(const slots *x, uint64_t i)
{
    return &x->map[i / BUCKET_SLOTS].tags[i % BUCKET_SLOTS];
}

static inline uint32_t *slot_id(const slots *x, uint64_t i)
{
    return &x->map[i / BUCKET_SLOTS].ids[i % BUCKET_SLOTS];
}

static inline uint8_t tag_of(uint64_t h)
{
    uint8_t g = (uint8_t)h;
    return g != 0 ? g : 1;
}

static inline uint64_t home_of(const slots *x, uint64_t h)
{
    return (uint64_t)(((unsigned __int128)h * x->cap) >> 64);
}

static inline uint64_t slot_next(const slots *x, uint64_t i)
{
    return i + 1 == x->cap ? 0 : i + 1;
}

/* Slots from a forward to b, across the end of the index. */
static inline uint64_t slot_dist(const slots *x, uint64_t a, uint64_t b)
{
    return b >= a ? b - a : b + x->cap - a;
}

/* key's row id in x, or NONE; *slot gets the slot holding it, or the empty
 * slot where it would go. h is mix(key). */
static uint32_t slots_find(const ps_table *t, const slots *x, uint64_t key, uint64_t h,
                           uint64_t *slot)
{
    uint64_t i = home_of(x, h);
    uint8_t tag = tag_of(h);
    for (;; i = slot_next(x, i)) {
        uint8_t g = *slot_tag(x, i);
        if (g == 0)
            break;
        if (g == tag && rec_key(rec_of(t, *slot_id(x, i))) == key) {
            *slot = i;
            return *slot_id(x, i);
        }
    }
    *slot = i;
    return NONE;
}

/* Empties slot i of x, shifting back the entries after it that may move
 * (no tombstones: a lookup still stops at the first empty slot). */
static void slots_remove(const ps_table *t, slots *x, uint64_t i)
{
    for (uint64_t j = slot_next(x, i); *slot_tag(x, j) != 0; j = slot_next(x, j)) {
        uint64_t home = home_of(x, mix(rec_key(rec_of(t, *slot_id(x, j)))));
        if (slot_dist(x, home, j) >= slot_dist(x, i, j)) { /* i lies in [home, j] */
            *slot_tag(x, i) = *slot_tag(x, j);
            *slot_id(x, i) = *slot_id(x, j);
            i = j;
        }
    }
    *slot_tag(x, i) = 0;
}

/* Puts row r of hash h in the first empty slot from its home. */
static void slots_put(slots *x, uint64_t h, uint32_t r)
{
    uint64_t i = home_of(x, h);
    while (*slot_tag(x, i) != 0)
        i = slot_next(x, i);
    *slot_tag(x, i) = tag_of(h);
    *slot_id(x, i) = r;
}

static inline size_t slots_bytes(uint64_t cap)
{
    return (size_t)(cap / BUCKET_SLOTS) * sizeof(bucket);
}

static bool slots_alloc(uint64_t cap, slots *x)
{
    x->map = (bucket *)(void *)chunk_map(slots_bytes(cap));
    if (x->map == NULL)
        return false;
    x->cap = cap;
    return true;
}

static void slots_unmap(slots *x)
{
    if (x->map != NULL)
        munmap(x->map, slots_bytes(x->cap));
    x->map = NULL;
}

/* Whether old slot i is moved already (while the index grows). */
static inline bool slot_moved(const ps_table *t, uint64_t i)
{
    return slot_dist(&t->old, t->mv_start, i) <= t->mv_done;
}

/* Whether the index grows and hash h's home in the old one is not moved
 * yet: its key, if stored, is most likely there. */
static inline bool home_unmoved(const ps_table *t, uint64_t h)
{
    return t->old.map != NULL && !slot_moved(t, home_of(&t->old, h));
}

/* key's row id, or NONE: in the old index while it grows, the home there
 * not moved yet, else (or not there) in the index. */
static inline uint32_t row_find(const ps_table *t, uint64_t key)
{
    uint64_t h = mix(key), slot;
    if (home_unmoved(t, h)) {
        uint32_t r = slots_find(t, &t->old, key, h, &slot);
        if (r != NONE)
            return r;
    }
    return slots_find(t, &t->ix, key, h, &slot);
}

/* Indexes new row r of key (not stored): in the old index while it grows
 * when its probe there stays in unmoved slots, else in the index. */
static void index_put(ps_table *t, uint64_t key, uint32_t r)
{
    uint64_t h = mix(key);
    if (t->old.map != NULL) {
        uint64_t i = home_of(&t->old, h);
        while (!slot_moved(t, i) && *slot_tag(&t->old, i) != 0)
            i = slot_next(&t->old, i);
        if (!slot_moved(t, i)) {
            *slot_tag(&t->old, i) = tag_of(h);
            *slot_id(&t->old, i) = r;
            return;
        }
    }
    slots_put(&t->ix, h, r);
}

/* Takes live row r of key out of whichever index holds it. */
static void index_drop(ps_table *t, uint64_t key, uint32_t r)
{
    uint64_t h = mix(key), slot;
    if (slots_find(t, &t->ix, key, h, &slot) == r)
        slots_remove(t, &t->ix, slot);
    else if (t->old.map != NULL && slots_find(t, &t->old, key, h, &slot) == r)
        slots_remove(t, &t->old, slot);
}

/* Hands back the old index's moved slots in whole blocks of
 * MOVE_FREE_SLOTS (before the wrap; the rest goes with the mapping). */
static void move_free(ps_table *t)
{
    slots *o = &t->old;
    uint64_t end = t->mv_start + t->mv_done + 1; /* moved: [mv_start, end) */
    if (end > o->cap)
        end = o->cap;
    for (;;) {
        uint64_t b =
            t->mv_freed + MOVE_FREE_SLOTS < o->cap ? t->mv_freed + MOVE_FREE_SLOTS : o->cap;
        if (t->mv_freed >= b || b > end)
            return;
        /* whole buckets of whole pages: mv_freed is a multiple of MOVE_FREE_SLOTS */
        (void)madvise(o->map + t->mv_freed / BUCKET_SLOTS, slots_bytes(b - t->mv_freed),
                      MADV_DONTNEED); /* reads 0 */
        t->mv_freed = b;
    }
}

/* Moves at least budget of the old index's slots into the index, on to
 * the end of a cluster; unmaps the old index when all are moved. */
static void index_move(ps_table *t, uint64_t budget)
{
    slots *o = &t->old;
    uint64_t left = o->cap - 1 - t->mv_done;
    uint64_t i = (t->mv_start + t->mv_done) % o->cap; /* moved, empty */
    bool held = false;                                /* slot i held a row */
    for (uint64_t n = 0; left > 0 && (n < budget || held); n++, left--) {
        i = slot_next(o, i);
        uint64_t a = i + MOVE_AHEAD < o->cap ? i + MOVE_AHEAD : i + MOVE_AHEAD - o->cap;
        if (*slot_tag(o, a) != 0) /* the row whose key a later move hashes */
            __builtin_prefetch(rec_of(t, *slot_id(o, a)), 0, 3);
        held = *slot_tag(o, i) != 0;
        if (held) {
            uint32_t r = *slot_id(o, i);
            slots_put(&t->ix, mix(rec_key(rec_of(t, r))), r);
            *slot_tag(o, i) = 0;
        }
    }
    t->mv_done = o->cap - 1 - left;
    if (left == 0)
        slots_unmap(o);
    else
        move_free(t);
}

/* Starts growing the index by 1.4 (in whole buckets), finishing a
 * move still going first. */
static int index_grow(ps_table *t)
{
    if (t->old.map != NULL)
        index_move(t, UINT64_MAX);
    uint64_t cap = (t->ix.cap * 7 / 5 + BUCKET_SLOTS - 1) / BUCKET_SLOTS * BUCKET_SLOTS;
    slots x;
    if (cap > INDEX_SLOTS_MAX || !slots_alloc(cap, &x))
        return PS_ENOMEM;
    t->old = t->ix;
    t->ix = x;
    uint64_t e = 0;
    while (*slot_tag(&t->old, e) != 0) /* the load is 0.8: an empty slot is near */
        e++;
    t->mv_start = e;
    t->mv_done = 0;
    t->mv_freed = (e + MOVE_FREE_SLOTS) / MOVE_FREE_SLOTS * MOVE_FREE_SLOTS;
    return 0;
}

/* Room in the index for one more row: grows it past a load of 0.8. */
static int index_room(ps_table *t)
{
    if ((t->live + 1) * 5 <= t->ix.cap * 4)
        return 0;
    if (t->grow_failed)
        return PS_ENOMEM;
    if (index_grow(t) != 0) {
        t->grow_failed = true;
        return PS_ENOMEM;
    }
    return 0;
}

/* ---- making and dropping rows ---- */

/* Drops live row r: out of the index, onto the free list. */
static void row_drop(ps_table *t, uint32_t r)
{
    unsigned char *rec = rec_of(t, r);
    index_drop(t, rec_key(rec), r);
    *live_word(t, r) &= ~(UINT64_C(1) << (r & 63));
    *rec_version(rec) = VERSION_DEAD;
    rec_key_set(rec, t->free_head);
    t->free_head = r;
    t->live--;
}

static inline uint32_t age_of(const ps_table *t, uint32_t r, uint64_t now)
{
    return (uint32_t)now - *rec_version(rec_of(t, r));
}

/* Evicts the least recently updated of SAMPLE_ROWS live rows drawn at
 * random (the first live one after the clock hand when draws find none). */
static void evict_lru(ps_table *t)
{
    uint32_t best = NONE, best_age = 0;
    int found = 0;
    for (int draws = 0; draws < 4 * SAMPLE_ROWS && found < SAMPLE_ROWS; draws++) {
        uint32_t r = (uint32_t)(((rng_next(t) >> 32) * t->next_rid) >> 32);
        if (!row_live(t, r))
            continue;
        found++;
        uint32_t a = age_of(t, r, t->now);
        if (best == NONE || a > best_age) {
            best = r;
            best_age = a;
        }
    }
    if (best == NONE) {
        best = next_live(t, t->hand);
        if (best >= t->next_rid)
            best = next_live(t, 0);
    }
    row_drop(t, best);
    t->evicted_cap++;
}

/* A new row for key (not stored), evicting an old one at the cap; its
 * floats are not set. NONE when not a single row can be had. A growing
 * index moves on by MOVE_SLOTS, at the cap too. */
static uint32_t row_make(ps_table *t, uint64_t key)
{
    if (t->old.map != NULL)
        index_move(t, MOVE_SLOTS);
    uint32_t r = NONE;
    if (t->live < t->cap_rows && index_room(t) == 0)
        r = rid_take(t);
    if (r == NONE) {
        if (t->live == 0)
            return NONE;
        evict_lru(t);
        r = rid_take(t); /* the evicted row's id */
    }
    index_put(t, key, r);
    rec_key_set(rec_of(t, r), key);
    *live_word(t, r) |= UINT64_C(1) << (r & 63);
    t->live++;
    return r;
}

/* ---- values ---- */

/* key's initial weights (row_init.h: psworker predict gives a key its
 * model lacks the same). */
static void init_weights(const ps_table *t, uint64_t key, float *w)
{
    ps_row_init_weights(&t->init, key, w);
}

static inline float ftrl_weight(const ps_table *t, float z, float n)
{
    float shrunk = fabsf(z) - t->l1;
    if (!(shrunk > 0.0f))
        return 0.0f;
    float den = (t->beta + sqrtf(n)) * t->inv_lr + t->l2;
    return den > 0.0f ? -copysignf(shrunk, z) / den : 0.0f;
}

/* Sets a new row's floats from key's initial weights; ftrl's z is seeded
 * so that its closed form gives them back at n = 0. */
static void row_init(const ps_table *t, uint64_t key, float *f)
{
    init_weights(t, key, f);
    uint32_t d = t->dim;
    switch (t->type) {
    case PS_OPTIM_ADAGRAD:
        memset(f + d, 0, d * sizeof(float));
        return;
    case PS_OPTIM_FTRL: {
        float k = t->beta * t->inv_lr + t->l2;
        for (uint32_t j = 0; j < d; j++) {
            float w = f[j];
            f[d + j] = 0.0f;
            f[j] = w == 0.0f ? 0.0f : -(w * k + copysignf(t->l1, w));
        }
        return;
    }
    default:
        return;
    }
}

/* A stored row's weights. */
static void row_weights(const ps_table *t, const float *f, float *w)
{
    if (t->type != PS_OPTIM_FTRL) {
        memcpy(w, f, t->dim * sizeof(float));
        return;
    }
    for (uint32_t j = 0; j < t->dim; j++)
        w[j] = ftrl_weight(t, f[j], f[t->dim + j]);
}

/* One update of a row's floats f with scale · g (docs in table.h). */
static void row_update(const ps_table *t, float *restrict f, const float_u *restrict g, float scale)
{
    uint32_t d = t->dim;
    float lr = t->lr, l2 = t->l2;
    switch (t->type) {
    case PS_OPTIM_SGD:
        for (uint32_t j = 0; j < d; j++)
            f[j] -= lr * (scale * g[j] + l2 * f[j]);
        return;
    case PS_OPTIM_ADAGRAD: {
        float *restrict acc = f + d;
        for (uint32_t j = 0; j < d; j++) {
            float gj = scale * g[j] + l2 * f[j];
            float a = acc[j] + gj * gj;
            acc[j] = a;
            f[j] -= lr * gj / (sqrtf(a) + t->eps);
        }
        return;
    }
    case PS_OPTIM_FTRL: {
        float *restrict n = f + d;
        for (uint32_t j = 0; j < d; j++) {
            float w = ftrl_weight(t, f[j], n[j]);
            float gj = scale * g[j];
            float n1 = n[j] + gj * gj;
            float sigma = (sqrtf(n1) - sqrtf(n[j])) * t->inv_lr;
            f[j] += gj - sigma * w;
            n[j] = n1;
        }
        return;
    }
    default:
        return;
    }
}

/* ---- admission ---- */

/* Counts a write of key (conservative update) and says whether it is the
 * min_count-th: then key is admitted and its counters are left as they
 * are, at most min_count - 1, so they never overflow. */
static bool sketch_admit(ps_table *t, uint64_t key)
{
    uint64_t h1 = mix(key ^ 0x5bd1e9955bd1e995ull), h2 = mix(key ^ 0x27d4eb2f165667c5ull);
    uint32_t *c[SKETCH_DEPTH] = {
        t->sketch + (h1 & (SKETCH_WIDTH - 1)),
        t->sketch + SKETCH_WIDTH + ((h1 >> 20) & (SKETCH_WIDTH - 1)),
        t->sketch + 2 * (size_t)SKETCH_WIDTH + ((h1 >> 40) & (SKETCH_WIDTH - 1)),
        t->sketch + 3 * (size_t)SKETCH_WIDTH + (h2 & (SKETCH_WIDTH - 1)),
    };
    uint32_t m = *c[0];
    for (int i = 1; i < SKETCH_DEPTH; i++)
        m = *c[i] < m ? *c[i] : m;
    if (m + 1 >= t->min_count)
        return true;
    for (int i = 0; i < SKETCH_DEPTH; i++)
        if (*c[i] == m)
            *c[i] = m + 1;
    return false;
}

/* ---- the table ---- */

static int check_job(const ps_job *job, const ps_table_spec *spec, uint32_t shard, uint32_t nshards,
                     ps_error *err)
{
    const char *name = ps_optim_name(job->optimizer.type);
    if (job->optimizer.type != PS_OPTIM_SGD && job->optimizer.type != PS_OPTIM_ADAGRAD &&
        job->optimizer.type != PS_OPTIM_FTRL)
        return ps_error_set(err, PS_EUNSUPPORTED,
                            "sparse tables train with sgd, adagrad or ftrl, not %s, whose state "
                            "a table's rows do not keep",
                            name);
    if (nshards == 0 || shard >= nshards)
        return ps_error_set(err, PS_EINVAL, "table: shard %u of %u does not exist", shard, nshards);
    if (memchr(spec->name, '\0', sizeof spec->name) == NULL || spec->name[0] == '\0')
        return ps_error_set(err, PS_EINVAL, "table: a table needs a name");
    if (spec->dim == 0 || spec->dim > PS_TABLE_DIM_MAX || spec->zero_prefix > spec->dim)
        return ps_error_set(err, PS_EINVAL,
                            "table %s: dim %u must be 1 to %d and zero_prefix %u at most dim",
                            spec->name, spec->dim, PS_TABLE_DIM_MAX, spec->zero_prefix);
    const double lr = job->optimizer.lr, l1 = job->optimizer.l1, l2 = job->optimizer.l2;
    if (!(lr > 0) || !isfinite(lr) || !(l1 >= 0) || !isfinite(l1) || !(l2 >= 0) || !isfinite(l2))
        return ps_error_set(err, PS_EINVAL, "table %s: lr must be > 0 and l1, l2 >= 0", spec->name);
    if (job->optimizer.type == PS_OPTIM_ADAGRAD &&
        !(job->optimizer.eps > 0 && isfinite(job->optimizer.eps)))
        return ps_error_set(err, PS_EINVAL, "table %s: adagrad's eps must be > 0", spec->name);
    if (job->optimizer.type == PS_OPTIM_FTRL &&
        !(job->optimizer.beta >= 0 && isfinite(job->optimizer.beta)))
        return ps_error_set(err, PS_EINVAL, "table %s: ftrl's beta must be >= 0", spec->name);
    return 0;
}

/* Chunk geometry: a power of two of rows whose records fill 16 MiB at
 * least (4096 to 2^20 rows), the bitmap a page multiple before them. */
static void chunk_geometry(ps_table *t)
{
    t->rec_bytes = REC_HEAD + (size_t)t->rf * sizeof(float);
    unsigned shift = 12;
    while ((1u << shift) < CHUNK_ROWS_MAX && ((size_t)1 << shift) * t->rec_bytes < CHUNK_BYTES_MIN)
        shift++;
    t->cshift = shift;
    t->cmask = (1u << shift) - 1;
    t->bits_bytes = (((size_t)1 << shift) / 8 + PAGE_BYTES - 1) & ~(PAGE_BYTES - 1);
    t->chunk_bytes = t->bits_bytes + ((size_t)1 << shift) * t->rec_bytes;
    t->chunks_max = (uint32_t)(((uint64_t)t->cap_rows + t->cmask) >> shift);
}

static int acc_alloc(ps_table *t, size_t cap);

ps_table *ps_table_new(const ps_job *job, uint32_t table_index, const ps_table_spec *spec,
                       uint32_t shard, uint32_t nshards, ps_error *err)
{
    if (check_job(job, spec, shard, nshards, err) != 0)
        return NULL;
    ps_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        goto nomem;
    ps_strlcpy(t->name, spec->name, sizeof t->name);
    t->index = table_index;
    t->dim = spec->dim;
    t->zero_prefix = spec->zero_prefix;
    t->type = job->optimizer.type;
    t->rf = t->type == PS_OPTIM_SGD ? t->dim : 2 * t->dim;
    t->lr = (float)job->optimizer.lr;
    t->inv_lr = (float)(1.0 / job->optimizer.lr);
    t->l1 = (float)job->optimizer.l1;
    t->l2 = (float)job->optimizer.l2;
    t->eps = (float)job->optimizer.eps;
    t->beta = (float)job->optimizer.beta;
    ps_row_init_setup(&t->init, job->model.init_seed, t->name, t->dim, t->zero_prefix,
                      ps_job_rows_start_zero(job));
    ps_key_range(shard, nshards, &t->lo, &t->last);
    t->min_count = job->sparse.min_count;
    t->idle_versions = job->sparse.idle_versions;
    t->cap_rows = job->sparse.max_rows > 0 && job->sparse.max_rows < ROWS_LIMIT
                      ? (uint32_t)job->sparse.max_rows
                      : ROWS_LIMIT;
    t->free_head = NONE;
    t->rng = splitmix64(job->model.init_seed ^ ((uint64_t)shard << 32) ^ table_index) | 1;
    chunk_geometry(t);
    if ((t->chunks = calloc(t->chunks_max, sizeof *t->chunks)) == NULL)
        goto nomem;
    if (!slots_alloc(INDEX_SLOTS_MIN, &t->ix))
        goto nomem;
    if (t->min_count > 1 &&
        (t->sketch = calloc((size_t)SKETCH_DEPTH * SKETCH_WIDTH, sizeof *t->sketch)) == NULL)
        goto nomem;
    if (acc_alloc(t, ACC_KEYS_MIN) != 0)
        goto nomem;
    return t;
nomem:
    ps_table_destroy(&t);
    ps_error_set(err, PS_ENOMEM, "cannot allocate table %s", spec->name);
    return NULL;
}

void ps_table_destroy(ps_table **tp)
{
    if (tp == NULL || *tp == NULL)
        return;
    ps_table *t = *tp;
    for (uint32_t c = 0; c < t->nchunks; c++)
        munmap(t->chunks[c], t->chunk_bytes);
    free(t->chunks);
    slots_unmap(&t->ix);
    slots_unmap(&t->old);
    free(t->sketch);
    free(t->done);
    free(t->unhinted);
    free(t->acc_keys);
    free(t->acc_slot);
    free(t->acc_vals);
    free(t->acc_index);
    free(t);
    *tp = NULL;
}

const char *ps_table_name(const ps_table *t)
{
    return t->name;
}

uint32_t ps_table_dim(const ps_table *t)
{
    return t->dim;
}

uint32_t ps_table_row_floats(const ps_table *t)
{
    return t->rf;
}

uint32_t ps_table_index(const ps_table *t)
{
    return t->index;
}

void ps_table_keys(const ps_table *t, uint64_t *lo, uint64_t *last)
{
    *lo = t->lo;
    *last = t->last;
}

uint64_t ps_table_rows(const ps_table *t)
{
    return t->live;
}

static inline bool key_ok(const ps_table *t, uint64_t key)
{
    return key >= t->lo && key <= t->last;
}

int ps_table_read(const ps_table *t, uint64_t key, float *row_out)
{
    if (!key_ok(t, key))
        return PS_ERANGE;
    uint32_t r = row_find(t, key);
    if (r == NONE)
        init_weights(t, key, row_out);
    else
        row_weights(t, rec_floats(rec_of(t, r)), row_out);
    return 0;
}

/* One write of key: admission, the row made at first, its update. r is
 * key's row when the caller found it, else NONE. */
static int row_write_at(ps_table *t, uint64_t key, uint32_t r, const float_u *g, float scale,
                        uint64_t version)
{
    if (version > t->now)
        t->now = version;
    if (r == NONE)
        r = row_find(t, key);
    if (r == NONE) {
        if (t->sketch != NULL && !sketch_admit(t, key)) {
            t->not_admitted++;
            return 0;
        }
        if ((r = row_make(t, key)) == NONE)
            return PS_ENOMEM;
        row_init(t, key, rec_floats(rec_of(t, r)));
        t->admitted++;
    }
    unsigned char *rec = rec_of(t, r);
    row_update(t, rec_floats(rec), g, scale);
    *rec_version(rec) = (uint32_t)version;
    return 0;
}

static int row_write(ps_table *t, uint64_t key, const float_u *g, float scale, uint64_t version)
{
    return row_write_at(t, key, NONE, g, scale, version);
}

int ps_table_apply(ps_table *t, uint64_t key, const void *grad, float scale, uint64_t version)
{
    if (!key_ok(t, key))
        return PS_ERANGE;
    return row_write(t, key, grad, scale, version);
}

/* ---- batches: the lookups of many keys pipelined ----
 *
 * A lookup waits for memory twice: for the key's index slot (its bucket's
 * tags and ids), then for its row, whose key confirms the tag's match. Over a batch
 * those waits overlap: while key i is worked on, the slot of key
 * i + AHEAD_SLOT is fetched, and the slot of key i + AHEAD_ROW (fetched
 * AHEAD_SLOT - AHEAD_ROW keys ago) is probed for its first tag match, whose
 * row is fetched. The prefetches are hints only: key i's work is the
 * single-key call's, lookup included, so a batch gives exactly the results
 * of its keys' single calls in order, whatever the earlier keys of the
 * batch made, moved or evicted in between. */

/* Chosen with table_bench (16 M rows of dim 1, batches of 10 k keys; 8/4,
 * 12/6, 16/8, 24/12, 32/8 and 32/16 tried, two rounds): 32/16 gave the
 * best speed-up over single calls, 2.7-2.9x, and 16/8 the least, 2.3x. */
#define AHEAD_SLOT 32 /* keys ahead whose index slot is fetched */
#define AHEAD_ROW  16 /* keys ahead whose row is fetched */

_Static_assert(AHEAD_SLOT > AHEAD_ROW, "a slot is fetched before it is probed");

/* The prefetch helpers are always inlined: GCC takes a function of
 * prefetches alone for one with no effect and drops its calls. */
#define PREFETCH_FN static inline __attribute__((always_inline)) void

PREFETCH_FN prefetch_home(const slots *x, uint64_t h)
{
    uint64_t i = home_of(x, h);
    __builtin_prefetch(slot_tag(x, i), 0, 3); /* its tags and ids */
}

/* key's home slot, in the index row_find probes first. */
PREFETCH_FN prefetch_slot(const ps_table *t, uint64_t key)
{
    uint64_t h = mix(key);
    prefetch_home(home_unmoved(t, h) ? &t->old : &t->ix, h);
}

/* The cache lines of bytes [p, p + len). */
PREFETCH_FN prefetch_bytes(const unsigned char *p, size_t len, bool write)
{
    const unsigned char *end = p + len;
    for (uintptr_t a = (uintptr_t)p & ~(uintptr_t)63; a < (uintptr_t)end; a += 64) {
        if (write)
            __builtin_prefetch((const void *)a, 1, 3);
        else
            __builtin_prefetch((const void *)a, 0, 3);
    }
}

/* Probes x's slots for hash h (fetched already) up to the first tag match
 * or empty slot, and fetches the row of the match (its key not yet
 * compared: a tag matches a wrong key 1 time in 255); false with no match. */
static inline bool prefetch_match(const ps_table *t, const slots *x, uint64_t h, bool write)
{
    uint8_t tag = tag_of(h);
    for (uint64_t i = home_of(x, h);; i = slot_next(x, i)) {
        uint8_t g = *slot_tag(x, i);
        if (g == tag) {
            prefetch_bytes(rec_of(t, *slot_id(x, i)), t->rec_bytes, write);
            return true;
        }
        if (g == 0)
            return false;
    }
}

/* Fetches key's row, found in the index row_find probes first. A key
 * with no match there is taken for not stored: a write then counts it in
 * the sketch, whose counters are fetched. */
PREFETCH_FN prefetch_row(const ps_table *t, uint64_t key, bool write)
{
    uint64_t h = mix(key);
    if (prefetch_match(t, home_unmoved(t, h) ? &t->old : &t->ix, h, write))
        return;
    if (write && t->sketch != NULL) {
        uint64_t h1 = mix(key ^ 0x5bd1e9955bd1e995ull), h2 = mix(key ^ 0x27d4eb2f165667c5ull);
        __builtin_prefetch(t->sketch + (h1 & (SKETCH_WIDTH - 1)), 1, 3);
        __builtin_prefetch(t->sketch + SKETCH_WIDTH + ((h1 >> 20) & (SKETCH_WIDTH - 1)), 1, 3);
        __builtin_prefetch(t->sketch + 2 * (size_t)SKETCH_WIDTH + ((h1 >> 40) & (SKETCH_WIDTH - 1)),
                           1, 3);
        __builtin_prefetch(t->sketch + 3 * (size_t)SKETCH_WIDTH + (h2 & (SKETCH_WIDTH - 1)), 1, 3);
    }
}

/* Before key i of n is worked on: the fetches for the keys ahead of it
 * (at i = 0 also those of the first keys, which have no keys before them
 * to overlap with). */
PREFETCH_FN prefetch_ahead(const ps_table *t, const uint64_t *keys, size_t n, size_t i, bool write)
{
    if (i == 0) {
        for (size_t k = 0; k < AHEAD_SLOT && k < n; k++)
            prefetch_slot(t, keys[k]);
        for (size_t k = 0; k < AHEAD_ROW && k < n; k++)
            prefetch_row(t, keys[k], write);
    }
    if (i + AHEAD_SLOT < n)
        prefetch_slot(t, keys[i + AHEAD_SLOT]);
    if (i + AHEAD_ROW < n)
        prefetch_row(t, keys[i + AHEAD_ROW], write);
}

static int keys_ok(const ps_table *t, const uint64_t *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!key_ok(t, keys[i]))
            return PS_ERANGE;
    return 0;
}

int ps_table_read_many(const ps_table *t, const uint64_t *keys, size_t n, float *rows_out)
{
    return ps_table_read_many_ids(t, keys, n, rows_out, NULL);
}

int ps_table_read_many_ids(const ps_table *t, const uint64_t *keys, size_t n, float *rows_out,
                           uint32_t *ids_out)
{
    if (keys_ok(t, keys, n) != 0)
        return PS_ERANGE;
    for (size_t i = 0; i < n; i++) {
        prefetch_ahead(t, keys, n, i, false);
        float *w = rows_out + i * t->dim;
        uint32_t r = row_find(t, keys[i]);
        if (r == NONE)
            init_weights(t, keys[i], w);
        else
            row_weights(t, rec_floats(rec_of(t, r)), w);
        if (ids_out != NULL)
            ids_out[i] = r;
    }
    return 0;
}

/* row_write of n keys in order, the gradient of key i at grads + i·stride
 * bytes; the first error, the others written all the same. */
static int rows_write(ps_table *t, const uint64_t *keys, size_t n, const unsigned char *grads,
                      size_t stride, float scale, uint64_t version)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        prefetch_ahead(t, keys, n, i, true);
        int r = row_write(t, keys[i], (const float_u *)(const void *)(grads + i * stride), scale,
                          version);
        rc = rc != 0 ? rc : r;
    }
    return rc;
}

int ps_table_apply_many(ps_table *t, const uint64_t *keys, size_t n, const void *grads, float scale,
                        uint64_t version)
{
    if (keys_ok(t, keys, n) != 0)
        return PS_ERANGE;
    return rows_write(t, keys, n, grads, (size_t)t->dim * sizeof(float), scale, version);
}

/* Row id hint r of key when it still holds key's live row: a dead row's
 * version is VERSION_DEAD and its key field links the free list, and a
 * row made since for another key holds that key. NONE otherwise. */
static inline uint32_t hint_check(const ps_table *t, uint64_t key, uint32_t r)
{
    if (r >= t->next_rid)
        return NONE;
    unsigned char *rec = rec_of(t, r);
    return rec_key(rec) == key && *rec_version(rec) != VERSION_DEAD ? r : NONE;
}

/* A push's hinted keys, on several threads: a hinted row still holding
 * its key is updated where it is, which changes that row only; done[i]
 * says whether key i was. */
typedef struct hinted_job {
    ps_table *t;
    const uint64_t *keys;
    const uint32_t *ids;
    const unsigned char *grads;
    float scale;
    uint32_t version;
    uint8_t *done;
} hinted_job;

static void hinted_part(void *arg, size_t lo, size_t hi)
{
    const hinted_job *j = arg;
    const ps_table *t = j->t;
    size_t stride = (size_t)t->dim * sizeof(float);
    for (size_t i = lo; i < hi; i++) {
        if (i + AHEAD_ROW < hi && j->ids[i + AHEAD_ROW] < t->next_rid)
            prefetch_bytes(rec_of(t, j->ids[i + AHEAD_ROW]), t->rec_bytes, true);
        uint32_t r = j->ids[i] == NONE ? NONE : hint_check(t, j->keys[i], j->ids[i]);
        j->done[i] = r != NONE;
        if (r != NONE) {
            unsigned char *rec = rec_of(t, r);
            row_update(t, rec_floats(rec), (const float_u *)(const void *)(j->grads + i * stride),
                       j->scale);
            *rec_version(rec) = j->version;
        }
    }
}

#define HINTED_GRAIN 2048 /* keys of a thread's part at least */

int ps_table_apply_many_ids(ps_table *t, const uint64_t *keys, const uint32_t *ids, size_t n,
                            const void *grads, float scale, uint64_t version, ps_table_for pfor,
                            void *pctx)
{
    if (keys_ok(t, keys, n) != 0)
        return PS_ERANGE;
    const unsigned char *g = grads;
    size_t stride = (size_t)t->dim * sizeof(float);
    int rc = 0;
    /* Hinted rows first, on pfor's threads, then the others here. That
     * order gives the results of the keys in turn as long as none of the
     * others can evict a row (at the cap), the keys being unique: an
     * update changes its row only, and rows made meanwhile change none. */
    if (pfor != NULL && n >= 2 * HINTED_GRAIN && t->live + n <= t->cap_rows) {
        if (n > t->done_cap && n <= UINT32_MAX) {
            uint8_t *d = realloc(t->done, n);
            if (d != NULL)
                t->done = d;
            uint32_t *o = realloc(t->unhinted, n * sizeof *o);
            if (o != NULL)
                t->unhinted = o;
            if (d != NULL && o != NULL)
                t->done_cap = n;
        }
        if (n <= t->done_cap) {
            if (version > t->now)
                t->now = version;
            hinted_job j = {t, keys, ids, g, scale, (uint32_t)version, t->done};
            pfor(pctx, n, HINTED_GRAIN, hinted_part, &j);
            /* the others in turn (new keys, mostly), their lookups
             * pipelined as rows_write's */
            size_t m = 0;
            for (size_t i = 0; i < n; i++) {
                t->unhinted[m] = (uint32_t)i;
                m += !t->done[i];
            }
            for (size_t k = 0; k < m; k++) {
                if (k == 0) {
                    for (size_t a = 0; a < AHEAD_SLOT && a < m; a++)
                        prefetch_slot(t, keys[t->unhinted[a]]);
                    for (size_t a = 0; a < AHEAD_ROW && a < m; a++)
                        prefetch_row(t, keys[t->unhinted[a]], true);
                }
                if (k + AHEAD_SLOT < m)
                    prefetch_slot(t, keys[t->unhinted[k + AHEAD_SLOT]]);
                if (k + AHEAD_ROW < m)
                    prefetch_row(t, keys[t->unhinted[k + AHEAD_ROW]], true);
                size_t i = t->unhinted[k];
                int e = row_write(t, keys[i], (const float_u *)(const void *)(g + i * stride),
                                  scale, version);
                rc = rc != 0 ? rc : e;
            }
            return rc;
        }
    }
    for (size_t i = 0; i < n; i++) {
        size_t a = i + AHEAD_ROW;
        if (a < n) { /* the hinted row, or the full lookup's fetches */
            if (ids[a] < t->next_rid)
                prefetch_bytes(rec_of(t, ids[a]), t->rec_bytes, true);
            else
                prefetch_row(t, keys[a], true);
        }
        uint32_t r = ids[i] == NONE ? NONE : hint_check(t, keys[i], ids[i]);
        int e = row_write_at(t, keys[i], r, (const float_u *)(const void *)(g + i * stride), scale,
                             version);
        rc = rc != 0 ? rc : e;
    }
    return rc;
}

/* ---- the accumulator ---- */

/* Sets up (or grows to) room for cap keys: the entries keep their order
 * and sums, the hash slots are made again. Nothing changes on failure. */
static int acc_alloc(ps_table *t, size_t cap)
{
    size_t vals;
    if (cap > UINT32_MAX / 2 || !ps_mul_ok(cap, (size_t)t->dim * sizeof(float), &vals))
        return PS_ENOMEM;
    uint32_t *index = calloc(2 * cap, sizeof *index);
    if (index == NULL)
        return PS_ENOMEM;
    uint64_t *keys = realloc(t->acc_keys, cap * sizeof *keys);
    if (keys != NULL)
        t->acc_keys = keys;
    uint32_t *slot = realloc(t->acc_slot, cap * sizeof *slot);
    if (slot != NULL)
        t->acc_slot = slot;
    float *v = realloc(t->acc_vals, vals);
    if (v != NULL)
        t->acc_vals = v;
    if (keys == NULL || slot == NULL || v == NULL) {
        free(index);
        return PS_ENOMEM;
    }
    size_t mask = 2 * cap - 1;
    for (size_t e = 0; e < t->acc_n; e++) {
        size_t i = mix(t->acc_keys[e]) & mask;
        while (index[i] != 0)
            i = (i + 1) & mask;
        index[i] = (uint32_t)e + 1;
        t->acc_slot[e] = (uint32_t)i;
    }
    free(t->acc_index);
    t->acc_index = index;
    t->acc_cap = cap;
    return 0;
}

/* Adds weight · g to key's entry of the open round (docs in table.h). */
static int acc_add(ps_table *t, uint64_t key, const float_u *g, float weight)
{
    size_t mask = 2 * t->acc_cap - 1, i = mix(key) & mask;
    for (; t->acc_index[i] != 0; i = (i + 1) & mask) {
        size_t e = t->acc_index[i] - 1;
        if (t->acc_keys[e] == key) {
            float *v = t->acc_vals + e * t->dim;
            for (uint32_t j = 0; j < t->dim; j++)
                v[j] += weight * g[j];
            return 0;
        }
    }
    if (t->acc_n == t->acc_cap) {
        if (acc_alloc(t, 2 * t->acc_cap) != 0)
            return PS_ENOMEM;
        mask = 2 * t->acc_cap - 1;
        for (i = mix(key) & mask; t->acc_index[i] != 0; i = (i + 1) & mask)
            ;
    }
    size_t e = t->acc_n++;
    t->acc_keys[e] = key;
    t->acc_slot[e] = (uint32_t)i;
    t->acc_index[i] = (uint32_t)e + 1;
    float *v = t->acc_vals + e * t->dim;
    for (uint32_t j = 0; j < t->dim; j++)
        v[j] = weight * g[j];
    return 0;
}

int ps_table_accumulate(ps_table *t, uint64_t key, const void *grad, float weight)
{
    if (!key_ok(t, key))
        return PS_ERANGE;
    return acc_add(t, key, grad, weight);
}

static inline void acc_prefetch(const ps_table *t, uint64_t key)
{
    __builtin_prefetch(t->acc_index + (mix(key) & (2 * t->acc_cap - 1)), 0, 3);
}

/* The accumulator is small beside the rows (a round's keys), so only its
 * hash slots are fetched ahead, AHEAD_SLOT keys ahead. */
int ps_table_accumulate_many(ps_table *t, const uint64_t *keys, size_t n, const void *grads,
                             float weight)
{
    if (keys_ok(t, keys, n) != 0)
        return PS_ERANGE;
    const unsigned char *g = grads;
    size_t stride = (size_t)t->dim * sizeof(float);
    for (size_t k = 0; k < AHEAD_SLOT && k < n; k++)
        acc_prefetch(t, keys[k]);
    for (size_t i = 0; i < n; i++) {
        if (i + AHEAD_SLOT < n)
            acc_prefetch(t, keys[i + AHEAD_SLOT]);
        int rc = acc_add(t, keys[i], (const float_u *)(const void *)(g + i * stride), weight);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void acc_empty(ps_table *t)
{
    for (size_t e = 0; e < t->acc_n; e++)
        t->acc_index[t->acc_slot[e]] = 0;
    t->acc_n = 0;
}

int ps_table_apply_accumulated(ps_table *t, float scale, uint64_t version)
{
    int rc = rows_write(t, t->acc_keys, t->acc_n, (const unsigned char *)t->acc_vals,
                        (size_t)t->dim * sizeof(float), scale, version);
    acc_empty(t);
    return rc;
}

size_t ps_table_accumulated(const ps_table *t)
{
    return t->acc_n;
}

/* ---- eviction, scans, restore ---- */

uint64_t ps_table_evict_idle(ps_table *t, uint64_t version, size_t budget)
{
    if (version > t->now)
        t->now = version;
    if (t->old.map != NULL) /* a growing index moves on with no new rows too */
        index_move(t, budget);
    if (t->idle_versions == 0 || t->idle_versions >= VERSION_AGES_MAX || t->next_rid == 0)
        return 0;
    uint64_t dropped = 0;
    uint32_t idle = (uint32_t)t->idle_versions;
    if (budget > t->next_rid)
        budget = t->next_rid;
    for (size_t k = 0; k < budget; k++) {
        if (t->hand >= t->next_rid)
            t->hand = 0;
        uint32_t r = t->hand++;
        if (row_live(t, r) && age_of(t, r, version) > idle) {
            row_drop(t, r);
            dropped++;
        }
    }
    t->evicted_idle += dropped;
    return dropped;
}

size_t ps_table_scan(const ps_table *t, uint64_t cursor, size_t max, uint64_t *keys_out,
                     float *rows_out, uint64_t *next_cursor)
{
    size_t n = 0;
    uint32_t r = next_live(t, cursor);
    for (; r < t->next_rid && n < max; r = next_live(t, (uint64_t)r + 1), n++) {
        unsigned char *rec = rec_of(t, r);
        keys_out[n] = rec_key(rec);
        row_weights(t, rec_floats(rec), rows_out + n * t->dim);
    }
    *next_cursor = r < t->next_rid ? r : 0;
    return n;
}

size_t ps_table_scan_state(const ps_table *t, uint64_t cursor, size_t max, uint64_t *keys_out,
                           uint64_t *versions_out, float *state_out, uint64_t *next_cursor)
{
    size_t n = 0;
    uint32_t r = next_live(t, cursor);
    for (; r < t->next_rid && n < max; r = next_live(t, (uint64_t)r + 1), n++) {
        unsigned char *rec = rec_of(t, r);
        keys_out[n] = rec_key(rec);
        uint32_t age = age_of(t, r, t->now);
        versions_out[n] = age <= t->now ? t->now - age : *rec_version(rec);
        memcpy(state_out + n * t->rf, rec_floats(rec), t->rf * sizeof(float));
    }
    *next_cursor = r < t->next_rid ? r : 0;
    return n;
}

int ps_table_restore_row(ps_table *t, uint64_t key, uint64_t version, const float *state)
{
    if (!key_ok(t, key))
        return PS_ERANGE;
    if (version > t->now)
        t->now = version;
    uint32_t r = row_find(t, key);
    if (r == NONE && (r = row_make(t, key)) == NONE)
        return PS_ENOMEM;
    unsigned char *rec = rec_of(t, r);
    memcpy(rec_floats(rec), state, t->rf * sizeof(float));
    *rec_version(rec) = (uint32_t)version;
    return 0;
}

void ps_table_clear(ps_table *t)
{
    slots_unmap(&t->old);
    memset(t->ix.map, 0, slots_bytes(t->ix.cap));
    for (uint32_t c = 0; c < t->nchunks; c++)
        memset(t->chunks[c], 0, t->bits_bytes);
    t->next_rid = 0;
    t->free_head = NONE;
    t->live = 0;
    t->hand = 0;
    acc_empty(t);
}

void ps_table_stats_get(const ps_table *t, ps_table_stats *st)
{
    memset(st, 0, sizeof *st);
    ps_strlcpy(st->name, t->name, sizeof st->name);
    st->dim = t->dim;
    st->rows = t->live;
    st->bytes = (uint64_t)t->next_rid * t->rec_bytes + (uint64_t)t->nchunks * t->bits_bytes +
                (uint64_t)t->chunks_max * sizeof *t->chunks + slots_bytes(t->ix.cap) +
                (t->old.map != NULL ? slots_bytes(t->old.cap) : 0) +
                (t->sketch != NULL ? (uint64_t)SKETCH_DEPTH * SKETCH_WIDTH * 4 : 0) +
                t->acc_cap * (8 + 4 + (uint64_t)t->dim * 4 + 2 * 4);
    st->admitted = t->admitted;
    st->not_admitted = t->not_admitted;
    st->evicted_idle = t->evicted_idle;
    st->evicted_cap = t->evicted_cap;
}

bool ps_table_growing(const ps_table *t)
{
    return t->old.map != NULL;
}

/* ---- checkpoints ---- */

static size_t ckpt_scan(void *ctx, uint64_t cursor, size_t max, uint64_t *keys, uint64_t *versions,
                        float *floats, uint64_t *next)
{
    return ps_table_scan_state(ctx, cursor, max, keys, versions, floats, next);
}

static int ckpt_restore(void *ctx, uint64_t key, uint64_t version, const float *floats)
{
    return ps_table_restore_row(ctx, key, version, floats);
}

static void ckpt_clear(void *ctx)
{
    ps_table_clear(ctx);
}

void ps_table_ckpt(ps_table *t, ps_ckpt_table *out)
{
    memset(out, 0, sizeof *out);
    ps_strlcpy(out->name, t->name, sizeof out->name);
    out->dim = t->dim;
    out->row_floats = t->rf;
    out->layout = (uint32_t)t->type;
    out->rows = t->live;
    out->ctx = t;
    out->scan = ckpt_scan;
    out->restore = ckpt_restore;
    out->clear = ckpt_clear;
}

int ps_table_checkpoint_write(ps_ckpt_folder *f, const ps_ckpt_meta *meta,
                              const ps_ckpt_array *arrays, size_t narrays, ps_table *const *tables,
                              size_t ntables, char *path_out, size_t cap, uint64_t *bytes_out,
                              ps_error *err)
{
    ps_ckpt_table d[PS_CKPT_MAX_TABLES];
    if (ntables > PS_CKPT_MAX_TABLES)
        return ps_error_set(err, PS_EINVAL, "checkpoint: %zu tables (limit %d)", ntables,
                            PS_CKPT_MAX_TABLES);
    for (size_t i = 0; i < ntables; i++)
        ps_table_ckpt(tables[i], &d[i]);
    return ps_checkpoint_write_tables(f, meta, arrays, narrays, d, ntables, path_out, cap,
                                      bytes_out, err);
}

int ps_table_checkpoint_load(ps_ckpt_folder *f, const char *job, uint32_t shard, uint64_t key_lo,
                             uint64_t key_hi, ps_ckpt_array *arrays, size_t narrays,
                             ps_table *const *tables, size_t ntables, ps_ckpt_meta *meta,
                             char *path_out, size_t cap, const ps_log *log, ps_error *err)
{
    ps_ckpt_table d[PS_CKPT_MAX_TABLES];
    if (ntables > PS_CKPT_MAX_TABLES)
        return ps_error_set(err, PS_EINVAL, "checkpoint: %zu tables (limit %d)", ntables,
                            PS_CKPT_MAX_TABLES);
    for (size_t i = 0; i < ntables; i++)
        ps_table_ckpt(tables[i], &d[i]);
    return ps_checkpoint_load_tables(f, job, shard, key_lo, key_hi, arrays, narrays, d, ntables,
                                     meta, path_out, cap, log, err);
}
