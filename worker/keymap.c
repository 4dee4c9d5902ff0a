/* keymap.c — keymap.h's open addressing: linear probing over a power-of-two
 * number of slots, an index of 0 marking an empty slot (indices start at 1,
 * so every 64-bit value can be a key with no reserved one). */
#include "keymap.h"

#include <stdlib.h>

#include "util.h"

struct ps_keymap {
    uint64_t *keys;
    uint32_t *index; /* 0: the slot is empty */
    size_t cap;      /* slots, a power of two */
    unsigned shift;  /* 64 - log2(cap) */
    uint32_t count;
};

#define START_SLOTS ((size_t)1 << 10)

/* Fibonacci hashing: the key's top bits after a multiply by 2^64 / phi.
 * The sparse readers' keys are XXH3 hashes already, but a caller's keys
 * may be small consecutive numbers, which this spreads too. */
static size_t slot_of(const ps_keymap *m, uint64_t key)
{
    return (size_t)((key * UINT64_C(0x9e3779b97f4a7c15)) >> m->shift);
}

/* At most 70% full: linear probing's probes stay short (about 6 for a
 * miss), and a map of 50 M keys fits 2^26 slots (0.8 GB). */
static bool too_full(size_t count, size_t cap)
{
    return count * 10 > cap * 7;
}

static int slots_alloc(size_t cap, uint64_t **keys, uint32_t **index)
{
    size_t kb, ib;
    if (!ps_mul_ok(cap, sizeof **keys, &kb) || !ps_mul_ok(cap, sizeof **index, &ib))
        return PS_ENOMEM;
    *keys = malloc(kb);
    *index = calloc(cap, sizeof **index);
    if (*keys == NULL || *index == NULL) {
        free(*keys);
        free(*index);
        return PS_ENOMEM;
    }
    return 0;
}

static unsigned log2_of(size_t cap)
{
    unsigned b = 0;
    while (((size_t)1 << b) < cap)
        b++;
    return b;
}

int ps_keymap_new(size_t expect, ps_keymap **out, ps_error *err)
{
    *out = NULL;
    size_t cap = START_SLOTS;
    while (too_full(expect, cap) && cap < ((size_t)1 << 40))
        cap *= 2;
    ps_keymap *m = calloc(1, sizeof *m);
    if (m == NULL || slots_alloc(cap, &m->keys, &m->index) != 0) {
        free(m);
        return ps_error_set(err, PS_ENOMEM, "out of memory for a map of %zu keys", expect);
    }
    m->cap = cap;
    m->shift = 64 - log2_of(cap);
    *out = m;
    return 0;
}

/* Moves every key into twice the slots. */
static int grow(ps_keymap *m, ps_error *err)
{
    size_t cap = m->cap * 2;
    uint64_t *keys;
    uint32_t *index;
    if (slots_alloc(cap, &keys, &index) != 0)
        return ps_error_set(err, PS_ENOMEM, "out of memory growing a map of %u keys to %zu slots",
                            (unsigned)m->count, cap);
    ps_keymap old = *m;
    m->keys = keys;
    m->index = index;
    m->cap = cap;
    m->shift = 64 - log2_of(cap);
    size_t mask = cap - 1;
    for (size_t i = 0; i < old.cap; i++) {
        if (old.index[i] == 0)
            continue;
        size_t s = slot_of(m, old.keys[i]);
        while (m->index[s] != 0)
            s = (s + 1) & mask;
        m->keys[s] = old.keys[i];
        m->index[s] = old.index[i];
    }
    free(old.keys);
    free(old.index);
    return 0;
}

int ps_keymap_index(ps_keymap *m, uint64_t key, uint32_t *index, bool *added, ps_error *err)
{
    size_t mask = m->cap - 1;
    size_t s = slot_of(m, key);
    while (m->index[s] != 0) {
        if (m->keys[s] == key) {
            *index = m->index[s];
            if (added != NULL)
                *added = false;
            return 0;
        }
        s = (s + 1) & mask;
    }
    if (m->count >= PS_KEYMAP_MAX)
        return ps_error_set(err, PS_ERANGE,
                            "more than %u distinct keys: liblinear numbers features with ints",
                            (unsigned)PS_KEYMAP_MAX);
    if (too_full((size_t)m->count + 1, m->cap)) {
        int rc = grow(m, err);
        if (rc != 0)
            return rc;
        mask = m->cap - 1;
        s = slot_of(m, key);
        while (m->index[s] != 0)
            s = (s + 1) & mask;
    }
    m->keys[s] = key;
    m->index[s] = ++m->count;
    *index = m->count;
    if (added != NULL)
        *added = true;
    return 0;
}

uint32_t ps_keymap_find(const ps_keymap *m, uint64_t key)
{
    size_t mask = m->cap - 1;
    for (size_t s = slot_of(m, key); m->index[s] != 0; s = (s + 1) & mask)
        if (m->keys[s] == key)
            return m->index[s];
    return 0;
}

uint32_t ps_keymap_count(const ps_keymap *m)
{
    return m->count;
}

size_t ps_keymap_bytes(const ps_keymap *m)
{
    return m->cap * (sizeof *m->keys + sizeof *m->index);
}

void ps_keymap_destroy(ps_keymap **mp)
{
    if (mp == NULL || *mp == NULL)
        return;
    free((*mp)->keys);
    free((*mp)->index);
    free(*mp);
    *mp = NULL;
}
