/* keymap.h — dense indices for 64-bit keys: each distinct key gets the next
 * index, 1, 2, 3, ..., in the order keys are first added. psgen libsvm
 * uses it to write the sparse models' hashed rows for tools that want small
 * consecutive feature numbers (liblinear), tens of millions of keys at a
 * time, so the map is open addressing over two flat arrays (8 bytes of key
 * and 4 of index a slot, at most 70% full: 17 to 34 bytes a key, twice that
 * for a moment while it grows) instead of nodes. libc only. */
#ifndef PS_KEYMAP_H
#define PS_KEYMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* The most keys a map numbers: liblinear reads feature numbers as C ints. */
#define PS_KEYMAP_MAX ((uint32_t)0x7fffffff)

typedef struct ps_keymap ps_keymap;

/* A new empty map sized for about expect keys (0: a small start; it grows
 * as needed either way). PS_ENOMEM. The caller owns *out
 * (ps_keymap_destroy); NULL on error. */
int ps_keymap_new(size_t expect, ps_keymap **out, ps_error *err);

/* *index = key's index, giving key the next one (count + 1) when it has
 * none; *added says which (may be NULL). Every 64-bit value is a key, 0 and
 * UINT64_MAX included. PS_ENOMEM when growing fails (the map is unchanged),
 * PS_ERANGE when key is new and PS_KEYMAP_MAX keys are numbered already. */
int ps_keymap_index(ps_keymap *m, uint64_t key, uint32_t *index, bool *added, ps_error *err);

/* key's index, or 0 when it has none; adds nothing. */
uint32_t ps_keymap_find(const ps_keymap *m, uint64_t key);

/* How many keys have an index: the highest index given. */
uint32_t ps_keymap_count(const ps_keymap *m);

/* Bytes the map's arrays take now. */
size_t ps_keymap_bytes(const ps_keymap *m);

/* Frees m and sets *mp to NULL; a NULL *mp is fine. */
void ps_keymap_destroy(ps_keymap **mp);

#endif
