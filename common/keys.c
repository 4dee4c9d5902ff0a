/* keys.c — varint keys of sparse tables and their shards (keys.h). */
#include "keys.h"

void ps_key_range(uint32_t shard, uint32_t nshards, uint64_t *lo, uint64_t *last)
{
    /* the smallest k with floor(k·S / 2^64) >= i is ceil(i·2^64 / S) */
    unsigned __int128 two64 = (unsigned __int128)1 << 64;
    unsigned __int128 a = ((unsigned __int128)shard * two64 + nshards - 1) / nshards;
    unsigned __int128 b = ((unsigned __int128)(shard + 1) * two64 + nshards - 1) / nshards;
    *lo = (uint64_t)a;
    *last = (uint64_t)(b - 1);
}

bool ps_keys_sorted(const uint64_t *keys, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (keys[i] <= keys[i - 1])
            return false;
    return true;
}

/* Writes d (below 2^56) as a varint of 1 to 8 bytes into the 8 bytes at p,
 * a word at a time (the bytes after it are written too); returns its bytes.
 * The inverse of ps_keys_varint8. Little-endian machines only. */
static inline unsigned varint8_put(unsigned char *p, uint64_t d)
{
    unsigned len = (64 - (unsigned)__builtin_clzll(d | 1) + 6) / 7;
    uint64_t x = d; /* 7 bits a byte, spread: */
    x = (x & 0x000000000fffffffull) | ((x & 0x00fffffff0000000ull) << 4);
    x = (x & 0x00003fff00003fffull) | ((x & 0x0fffc0000fffc000ull) << 2);
    x = (x & 0x007f007f007f007full) | ((x & 0x3f803f803f803f80ull) << 1);
    x |= 0x8080808080808080ull & ((UINT64_C(1) << (8 * (len - 1))) - 1); /* continuations */
    __builtin_memcpy(p, &x, sizeof x);
    return len;
}

int ps_keys_encode(const uint64_t *keys, size_t n, void *buf, size_t cap, size_t *len)
{
    unsigned char *out = buf;
    size_t at = 0;
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t d = keys[i] - prev;
        prev = keys[i];
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (cap - at >= 8 && d < (UINT64_C(1) << 56)) {
            at += varint8_put(out + at, d);
            continue;
        }
#endif
        do {
            if (at == cap)
                return PS_EINVAL;
            unsigned char b = (unsigned char)(d & 0x7f);
            d >>= 7;
            out[at++] = (unsigned char)(b | (d != 0 ? 0x80 : 0));
        } while (d != 0);
    }
    *len = at;
    return 0;
}

/* The varint at *p (before end), a byte at a time, into *d; *p moves past
 * it. 0, or PS_EPAYLOAD for a varint cut off, longer than 10 bytes or past
 * 64 bits (key `count` of the list, for the sentence). */
static int varint_bytes(const unsigned char **p, const unsigned char *end, uint64_t *d,
                        uint64_t count, ps_error *err)
{
    unsigned shift = 0;
    *d = 0;
    for (;;) {
        if (*p == end)
            return ps_error_set(err, PS_EPAYLOAD, "key %llu is cut off at the end of the keys",
                                (unsigned long long)count);
        unsigned char b = *(*p)++;
        if (shift == 63 && (b & 0x7e) != 0)
            return ps_error_set(err, PS_EPAYLOAD, "key %llu does not fit in 64 bits",
                                (unsigned long long)count);
        *d |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 0;
        shift += 7;
        if (shift > 63)
            return ps_error_set(err, PS_EPAYLOAD, "key %llu is longer than 10 bytes",
                                (unsigned long long)count);
    }
}

/* ps_keys_check, writing the keys into out unless NULL. */
static inline int keys_walk(const void *buf, size_t len, uint64_t n, uint64_t *first,
                            uint64_t *last, uint64_t *out, ps_error *err)
{
    const unsigned char *p = buf, *end = len != 0 ? p + len : p; /* buf may be NULL */
    uint64_t key = 0, count = 0;
    while (p < end) {
        uint64_t d = 0;
        unsigned bytes = end - p >= 8 ? ps_keys_varint8(p, &d) : 0;
        int rc = bytes != 0 ? 0 : varint_bytes(&p, end, &d, count, err);
        if (rc != 0)
            return rc;
        p += bytes; /* at most 56 bits: nothing to refuse */
        if (count > 0 && d == 0)
            return ps_error_set(err, PS_EPAYLOAD,
                                "key %llu repeats the key before it: keys must be unique",
                                (unsigned long long)count);
        if (key + d < key)
            return ps_error_set(err, PS_EPAYLOAD, "key %llu passes 2^64: keys must be sorted",
                                (unsigned long long)count);
        key += d;
        if (count == 0 && first != NULL)
            *first = key;
        if (count == n)
            return ps_error_set(err, PS_EPAYLOAD, "the keys hold more than the %llu announced",
                                (unsigned long long)n);
        if (out != NULL)
            out[count] = key;
        count++;
    }
    if (count != n)
        return ps_error_set(err, PS_EPAYLOAD, "the keys hold %llu keys, %llu were announced",
                            (unsigned long long)count, (unsigned long long)n);
    if (last != NULL)
        *last = key;
    return 0;
}

int ps_keys_check(const void *buf, size_t len, uint64_t n, uint64_t *first, uint64_t *last,
                  ps_error *err)
{
    return keys_walk(buf, len, n, first, last, NULL, err);
}

int ps_keys_decode(const void *buf, size_t len, uint64_t n, uint64_t *out, ps_error *err)
{
    return keys_walk(buf, len, n, NULL, NULL, out, err);
}
