/* feature_hash.h — the keys of sparse tables: a feature (field, value) hashes
 * to a 64-bit key with xxHash's XXH3 (libxxhash), seeded by the field, so
 * equal values in different fields give different keys. Also the log bucket
 * of an integer field (the Criteo-contest convention), computed the same on
 * every machine. The readers
 * (sparse_data.c) and the click generator (clickgen.c) share these, so a key
 * means the same thing wherever it is made. */
#ifndef PS_FEATURE_HASH_H
#define PS_FEATURE_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <xxhash.h>

/* Added to the field index to make XXH3's seed: the golden-ratio constant,
 * so field 0 does not hash with seed 0 (a seed other programs default to). */
#define PS_FEATURE_HASH_SEED UINT64_C(0x9e3779b97f4a7c15)

/* The key of value's len bytes in field `field`: XXH3_64bits_withSeed(value,
 * len, PS_FEATURE_HASH_SEED + field). The same on every machine (XXH3's
 * output is defined independently of endianness). */
static inline uint64_t ps_feature_hash(uint32_t field, const void *value, size_t len)
{
    return XXH3_64bits_withSeed(value, len, PS_FEATURE_HASH_SEED + field);
}

/* The key of a 64-bit number in field `field`: the number's 8 bytes in
 * little-endian order hashed as above (libsvm64's ids, integer buckets). */
static inline uint64_t ps_feature_hash_u64(uint32_t field, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    return ps_feature_hash(field, b, sizeof b);
}

/* The natural log of a finite x > 0 from IEEE-754 double operations alone
 * (frexp and a series; feature_hash.c is built without FMA contraction),
 * so it gives the same bits on every machine, where libm's log may differ
 * in the last bit between CPUs. Within a few ulps of ln x. */
double ps_feature_ln(double x);

/* The bucket of an integer field's value v: v itself for 0 <= v <= 2,
 * floor(ps_feature_ln(v)^2) for v > 2 (the Criteo-contest convention: 3
 * lands with 1, 1e6 in 190), and -1 for every negative v. The same on
 * every machine, and the real floor(ln(v)^2) for every v below 1e13 (where
 * glibc's log already errs: 2416049438547 is 812, not 813); above 1e13
 * neighbours' ln(v)^2 differ by less than a double resolves.
 * Buckets are hashed with ps_feature_hash_u64 as two's-complement uint64. */
int64_t ps_feature_bucket(int64_t v);

#endif
