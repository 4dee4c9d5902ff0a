/* keys.h — the keys of sparse tables on the wire and across shards: a
 * request's keys are sorted and unique, each written as the LEB128 varint
 * of its difference to the one before (the first: to 0); shard i of S owns
 * the keys k with floor(k·S / 2^64) = i, the 2^64 key space split evenly,
 * so a key's shard is arithmetic. Nothing here allocates. */
#ifndef PS_KEYS_H
#define PS_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Bytes n keys take at most (10 a key). */
#define PS_KEYS_BYTES_MAX(n) ((size_t)(n)*10u)

/* The shard of S that owns key. */
static inline uint32_t ps_key_shard(uint64_t key, uint32_t nshards)
{
    return (uint32_t)(((unsigned __int128)key * nshards) >> 64);
}

/* The keys shard i of S owns: [*lo, *last], the last inclusive (the last
 * shard ends at 2^64 - 1). */
void ps_key_range(uint32_t shard, uint32_t nshards, uint64_t *lo, uint64_t *last);

/* Writes the n keys (sorted, unique: the caller checked, see
 * ps_keys_sorted) into buf (cap bytes, PS_KEYS_BYTES_MAX(n) will do);
 * *len gets the bytes written. Bytes after them, up to cap, may be written
 * too (a word at a time). PS_EINVAL when cap is too small. */
int ps_keys_encode(const uint64_t *keys, size_t n, void *buf, size_t cap, size_t *len);

/* True when the n keys are strictly increasing. */
bool ps_keys_sorted(const uint64_t *keys, size_t n);

/* Checks len bytes from the network: exactly n varints, each at most 10
 * bytes, their running sum strictly increasing and within 64 bits, and no
 * byte left over. *first and *last (when not NULL) get the first and last
 * key. 0, or PS_EPAYLOAD with one sentence in err. */
int ps_keys_check(const void *buf, size_t len, uint64_t n, uint64_t *first, uint64_t *last,
                  ps_error *err);

/* ps_keys_check that also writes the n keys into out as it reads them:
 * one pass over the bytes, not a check and then a decode. Refuses what
 * ps_keys_check refuses, with its sentences (out may then hold some keys). */
int ps_keys_decode(const void *buf, size_t len, uint64_t n, uint64_t *out, ps_error *err);

/* Reading keys that ps_keys_check accepted, one after the other. */
typedef struct ps_keys_iter {
    const unsigned char *at, *end;
    uint64_t key;
} ps_keys_iter;

static inline void ps_keys_iter_init(ps_keys_iter *it, const void *buf, size_t len)
{
    it->at = buf;
    it->end = len != 0 ? it->at + len : it->at; /* buf may be NULL */
    it->key = 0;
}

/* A varint that ends within the 8 bytes at p (8 of them readable): its
 * value into *d, and its bytes (1 to 8); 0 when it is longer. A word at a
 * time: hashed keys' gaps take 8 bytes, which a byte at a time costs a loop
 * and a mispredicted exit per key. Little-endian machines only (the caller
 * takes the byte loop elsewhere). */
static inline unsigned ps_keys_varint8(const unsigned char *p, uint64_t *d)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w;
    __builtin_memcpy(&w, p, sizeof w);
    uint64_t stops = ~w & 0x8080808080808080ull; /* bytes without a continuation */
    if (stops == 0)
        return 0;
    unsigned bits = (unsigned)__builtin_ctzll(stops) + 1; /* 8 a byte */
    if (bits < 64)
        w &= (UINT64_C(1) << bits) - 1;
    w &= 0x7f7f7f7f7f7f7f7full; /* 7 bits a byte, packed: */
    w = (w & 0x007f007f007f007full) | ((w & 0x7f007f007f007f00ull) >> 1);
    w = (w & 0x00003fff00003fffull) | ((w & 0x3fff00003fff0000ull) >> 2);
    w = (w & 0x000000000fffffffull) | ((w & 0x0fffffff00000000ull) >> 4);
    *d = w;
    return bits / 8;
#else
    (void)p;
    (void)d;
    return 0;
#endif
}

/* The next key; false when there is none. Only for checked bytes. */
static inline bool ps_keys_next(ps_keys_iter *it, uint64_t *key)
{
    if (it->at >= it->end)
        return false;
    if (it->end - it->at >= 8) {
        uint64_t g;
        unsigned len = ps_keys_varint8(it->at, &g);
        if (len != 0) {
            it->at += len;
            it->key += g;
            *key = it->key;
            return true;
        }
    }
    uint64_t d = 0;
    unsigned shift = 0;
    unsigned char b;
    do {
        b = *it->at++;
        d |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
    } while ((b & 0x80) && it->at < it->end);
    it->key += d;
    *key = it->key;
    return true;
}

#endif
