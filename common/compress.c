/* compress.c — the codec rows of compress.h. Each codec has a portable loop;
 * fp16, bf16 and int8 also have an F16C/AVX2 one, compiled for that target
 * alone and chosen once at run time, that gives the same bits. */
#include "compress.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define PS_HAVE_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define PS_HAVE_X86 0
#endif

#define F32_ABS_MASK  0x7fffffffu
#define F32_MAX_BITS  0x7f7fffffu /* above it: infinity or NaN */
#define F16_MAX_BITS  0x477fe000u /* 65504 as float32 */
#define BF16_MAX      0x7f7fu     /* the largest finite bf16, unsigned */
#define INT8_MAX_BITS 0x7f7fffffu

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static size_t blocks_of(size_t n)
{
    return n / PS_INT8_BLOCK + (n % PS_INT8_BLOCK != 0);
}

/* ---- none: float32 as it is ---------------------------------------------- */

static size_t f32_bytes(size_t n, size_t k)
{
    (void)k;
    return n * sizeof(float);
}

static int f32_encode(const float *x, size_t n, size_t k, void *out, float *scratch)
{
    (void)k;
    (void)scratch;
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= (f32_bits(x[i]) & F32_ABS_MASK) > F32_MAX_BITS;
    if (bad)
        return PS_EINVAL;
    memcpy(out, x, n * sizeof(float));
    return 0;
}

static void f32_decode(const void *in, size_t bytes, float *x, size_t n)
{
    (void)bytes;
    memcpy(x, in, n * sizeof(float));
}

static int f32_validate(const void *in, size_t bytes, size_t n, ps_error *err)
{
    (void)in;
    if (n > SIZE_MAX / sizeof(float) || bytes != n * sizeof(float))
        return ps_error_set(err, PS_EPAYLOAD,
                            "float32 payload of %zu bytes does not hold %zu values", bytes, n);
    return 0;
}

/* ---- fp16 ------------------------------------------------------------------ */

/* Round to nearest even (F. Giesen's float_to_half_fast3_rtne); f finite and
 * at most 65504 in magnitude (saturated by the caller). */
static uint16_t f16_from_f32(uint32_t u)
{
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t ax = u & F32_ABS_MASK;
    if (ax > F16_MAX_BITS)
        ax = F16_MAX_BITS;
    if (ax < (113u << 23)) { /* an fp16 subnormal or zero: let the FPU round */
        float f = f32_from(ax) + 0.5f;
        return (uint16_t)(sign | (f32_bits(f) - f32_bits(0.5f)));
    }
    uint32_t odd = (ax >> 13) & 1u;
    ax += ((uint32_t)(15 - 127) << 23) + 0xfffu + odd;
    return (uint16_t)(sign | (ax >> 13));
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        float f = (float)m * 0x1p-24f;
        return sign ? -f : f;
    }
    if (e == 31)
        return f32_from(sign | 0x7f800000u | (m << 13));
    return f32_from(sign | ((e + 112u) << 23) | (m << 13));
}

static size_t f16_bytes(size_t n, size_t k)
{
    (void)k;
    return n * sizeof(uint16_t);
}

static int f16_encode(const float *x, size_t n, size_t k, void *out, float *scratch)
{
    (void)k;
    (void)scratch;
    unsigned char *o = out;
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = f32_bits(x[i]);
        bad |= (u & F32_ABS_MASK) > F32_MAX_BITS;
        uint16_t h = f16_from_f32(u);
        memcpy(o + 2 * i, &h, sizeof h);
    }
    return bad ? PS_EINVAL : 0;
}

static void f16_decode(const void *in, size_t bytes, float *x, size_t n)
{
    (void)bytes;
    const unsigned char *p = in;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, sizeof h);
        x[i] = f16_to_f32(h);
    }
}

static int f16_validate(const void *in, size_t bytes, size_t n, ps_error *err)
{
    if (n > SIZE_MAX / 2 || bytes != 2 * n)
        return ps_error_set(err, PS_EPAYLOAD, "fp16 payload of %zu bytes does not hold %zu values",
                            bytes, n);
    const unsigned char *p = in;
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, sizeof h);
        bad |= (h & 0x7c00u) == 0x7c00u;
    }
    if (bad)
        return ps_error_set(err, PS_EPAYLOAD, "fp16 payload holds an infinity or a NaN");
    return 0;
}

/* ---- bf16 ------------------------------------------------------------------ */

static uint16_t bf16_from_f32(uint32_t u)
{
    uint32_t ax = u & F32_ABS_MASK;
    uint32_t r = (ax + 0x7fffu + ((ax >> 16) & 1u)) >> 16;
    if (r > BF16_MAX)
        r = BF16_MAX;
    return (uint16_t)(((u >> 16) & 0x8000u) | r);
}

static int bf16_encode(const float *x, size_t n, size_t k, void *out, float *scratch)
{
    (void)k;
    (void)scratch;
    unsigned char *o = out;
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = f32_bits(x[i]);
        bad |= (u & F32_ABS_MASK) > F32_MAX_BITS;
        uint16_t h = bf16_from_f32(u);
        memcpy(o + 2 * i, &h, sizeof h);
    }
    return bad ? PS_EINVAL : 0;
}

static void bf16_decode(const void *in, size_t bytes, float *x, size_t n)
{
    (void)bytes;
    const unsigned char *p = in;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, sizeof h);
        x[i] = f32_from((uint32_t)h << 16);
    }
}

static int bf16_validate(const void *in, size_t bytes, size_t n, ps_error *err)
{
    if (n > SIZE_MAX / 2 || bytes != 2 * n)
        return ps_error_set(err, PS_EPAYLOAD, "bf16 payload of %zu bytes does not hold %zu values",
                            bytes, n);
    const unsigned char *p = in;
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, sizeof h);
        bad |= (h & 0x7f80u) == 0x7f80u;
    }
    if (bad)
        return ps_error_set(err, PS_EPAYLOAD, "bf16 payload holds an infinity or a NaN");
    return 0;
}

/* ---- int8 ------------------------------------------------------------------ */

static size_t int8_bytes(size_t n, size_t k)
{
    (void)k;
    return blocks_of(n) * sizeof(float) + n;
}

/* The scale of a block whose largest magnitude has bits amax_bits, and the
 * factor that maps the block onto [-127, 127] (0 for a tiny block). */
static void int8_scale(uint32_t amax_bits, float *scale, float *inv)
{
    float amax = f32_from(amax_bits);
    if (amax < PS_INT8_TINY) {
        *scale = 0.0f;
        *inv = 0.0f;
    } else {
        *scale = amax / 127.0f;
        *inv = 127.0f / amax;
    }
}

static int8_t int8_quantize(float v, float inv)
{
    float q = nearbyintf(v * inv);
    if (q > 127.0f)
        q = 127.0f;
    if (q < -127.0f)
        q = -127.0f;
    return (int8_t)q;
}

/* One block of len values, portably; false when one is not finite. */
static bool int8_block(const float *x, size_t len, float *scale, int8_t *q)
{
    uint32_t amax = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t a = f32_bits(x[i]) & F32_ABS_MASK;
        amax = a > amax ? a : amax;
    }
    if (amax > INT8_MAX_BITS)
        return false;
    float inv;
    int8_scale(amax, scale, &inv);
    for (size_t i = 0; i < len; i++)
        q[i] = int8_quantize(x[i], inv);
    return true;
}

static int int8_encode(const float *x, size_t n, size_t k, void *out, float *scratch)
{
    (void)k;
    (void)scratch;
    size_t nb = blocks_of(n);
    unsigned char *scales = out;
    int8_t *q = (int8_t *)(scales + nb * sizeof(float));
    bool ok = true;
    for (size_t b = 0; b < nb; b++) {
        size_t lo = b * PS_INT8_BLOCK, len = n - lo < PS_INT8_BLOCK ? n - lo : PS_INT8_BLOCK;
        float s = 0.0f;
        ok &= int8_block(x + lo, len, &s, q + lo);
        memcpy(scales + b * sizeof(float), &s, sizeof s);
    }
    return ok ? 0 : PS_EINVAL;
}

static void int8_decode(const void *in, size_t bytes, float *x, size_t n)
{
    (void)bytes;
    size_t nb = blocks_of(n);
    const unsigned char *scales = in;
    const int8_t *q = (const int8_t *)(scales + nb * sizeof(float));
    for (size_t b = 0; b < nb; b++) {
        float s = 0.0f;
        memcpy(&s, scales + b * sizeof(float), sizeof s);
        size_t lo = b * PS_INT8_BLOCK, hi = n - lo < PS_INT8_BLOCK ? n : lo + PS_INT8_BLOCK;
        for (size_t i = lo; i < hi; i++)
            x[i] = (float)q[i] * s;
    }
}

static int int8_validate(const void *in, size_t bytes, size_t n, ps_error *err)
{
    size_t nb = blocks_of(n);
    if (n > SIZE_MAX / 2 || bytes != nb * sizeof(float) + n)
        return ps_error_set(err, PS_EPAYLOAD,
                            "int8 payload of %zu bytes does not hold %zu values in %zu blocks "
                            "(%zu bytes expected)",
                            bytes, n, nb, n > SIZE_MAX / 2 ? (size_t)0 : nb * sizeof(float) + n);
    const unsigned char *p = in;
    for (size_t b = 0; b < nb; b++) {
        float s = 0.0f;
        memcpy(&s, p + b * sizeof(float), sizeof s);
        /* 128 * scale must stay finite, so every decoded value is */
        if (!(s >= 0.0f && s <= 0x1p120f))
            return ps_error_set(err, PS_EPAYLOAD, "int8 payload: block %zu has scale %g", b,
                                (double)s);
    }
    return 0;
}

/* ---- topk ------------------------------------------------------------------ */

static size_t topk_bytes(size_t n, size_t k)
{
    (void)n;
    return k * (sizeof(uint32_t) + sizeof(float));
}

/* The k-th largest of a[0..n) (1 <= k <= n); reorders a. Hoare partitions
 * around a median of three, which copes with many equal values (zeros). */
static float kth_largest(float *a, size_t n, size_t k)
{
    int64_t lo = 0, hi = (int64_t)n - 1, target = (int64_t)k - 1;
    while (lo < hi) {
        float p0 = a[lo], p1 = a[lo + (hi - lo) / 2], p2 = a[hi];
        float pivot =
            p0 > p1 ? (p1 > p2 ? p1 : (p0 > p2 ? p2 : p0)) : (p0 > p2 ? p0 : (p1 > p2 ? p2 : p1));
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot)
                i++;
            while (a[j] < pivot)
                j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        /* [lo, j] >= pivot >= [i, hi]; between them, pivot */
        if (target <= j)
            hi = j;
        else if (target >= i)
            lo = i;
        else
            return pivot;
    }
    return a[target];
}

/* A threshold below the k-th largest |x| most likely, from a sample: the
 * |x| of TOPK_SAMPLE entries spread over x (one at a varying place in each
 * of as many equal stretches), and of them the one whose rank, scaled to
 * n, passes k by a margin of a quarter and four standard deviations. 0
 * when the sample would not pay (k near n, or n small). */
#define TOPK_SAMPLE 16384
#define TOPK_BLOCK  16 /* entries a block of the floor's pass */

/* The largest |x| bits of TOPK_BLOCK entries (a NaN's are above every
 * finite float's). */
static inline uint32_t block_abs_max(const float *x)
{
    uint32_t m = 0;
    for (size_t j = 0; j < TOPK_BLOCK; j++) {
        uint32_t a = f32_bits(x[j]) & F32_ABS_MASK;
        m = a > m ? a : m;
    }
    return m;
}

/* Appends |x[i]| for i in [lo, hi) at or above floor bits fb to
 * scratch[c..]; the new count. */
static size_t floor_copy(const float *x, size_t lo, size_t hi, uint32_t fb, float *scratch,
                         size_t c)
{
    for (size_t i = lo; i < hi; i++) {
        uint32_t a = f32_bits(x[i]) & F32_ABS_MASK;
        scratch[c] = f32_from(a);
        c += a >= fb;
    }
    return c;
}

static float topk_floor(const float *x, size_t n, size_t k, float *sample)
{
    if (n < 8 * (size_t)TOPK_SAMPLE || k > n / 8)
        return 0.0f;
    size_t stretch = n / TOPK_SAMPLE;
    uint64_t r = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < TOPK_SAMPLE; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        sample[i] =
            f32_from(f32_bits(x[i * stretch + (size_t)((r >> 33) % stretch)]) & F32_ABS_MASK);
    }
    double want = (double)k * TOPK_SAMPLE / (double)n; /* the k-th's rank in the sample */
    size_t rank = (size_t)(want * 1.25 + 4.0 * sqrt(want) + 16.0);
    if (rank >= TOPK_SAMPLE)
        return 0.0f;
    return kth_largest(sample, TOPK_SAMPLE, rank);
}

/* The k largest |x| with ties at the threshold sent lowest index first, in
 * index order. The exact threshold t is the k-th largest |x|. It is found
 * among the entries at or above a floor drawn from a sample (topk_floor):
 * one pass copies those (a few times k) out, the selection runs on them
 * alone, and a second pass writes the entries out; every entry above t
 * is at or above the floor, so the result is exactly the full selection's.
 * When fewer than k pass the floor (a sample can mislead), or there is no
 * floor, the selection runs on all of |x|. */
static int topk_encode(const float *x, size_t n, size_t k, void *out, float *scratch)
{
    if (k > n)
        k = n;
    if (k == 0)
        return 0;
    float floor = topk_floor(x, n, k, scratch);
    uint32_t bad = 0;
    size_t c = 0;
    if (floor > 0.0f) {
        /* the bits of finite non-negative floats order as they do: a block
         * whose largest |x| is below the floor (most) is passed over */
        uint32_t fb = f32_bits(floor);
        size_t i = 0;
        for (; i + TOPK_BLOCK <= n; i += TOPK_BLOCK) {
            uint32_t m = block_abs_max(x + i);
            bad |= m > F32_MAX_BITS;
            if (m >= fb)
                c = floor_copy(x, i, i + TOPK_BLOCK, fb, scratch, c);
        }
        for (size_t j = i; j < n; j++)
            bad |= (f32_bits(x[j]) & F32_ABS_MASK) > F32_MAX_BITS;
        c = floor_copy(x, i, n, fb, scratch, c);
    }
    if (c < k) { /* no floor, or it was too high */
        bad = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t a = f32_bits(x[i]) & F32_ABS_MASK;
            bad |= a > F32_MAX_BITS;
            scratch[i] = f32_from(a);
        }
        c = n;
    }
    if (bad)
        return PS_EINVAL;
    float t = kth_largest(scratch, c, k);
    size_t above = 0;
    for (size_t i = 0; i < c; i++) /* every entry above t is among them */
        above += scratch[i] > t;
    size_t ties = k - above; /* entries equal to t that are sent, lowest index first */
    unsigned char *idx = out, *val = idx + k * sizeof(uint32_t);
    size_t j = 0;
    uint32_t tb = f32_bits(t);
    for (size_t i = 0; i < n && j < k; i++) {
        if ((i & (TOPK_BLOCK - 1)) == 0 && i + TOPK_BLOCK <= n && block_abs_max(x + i) < tb) {
            i += TOPK_BLOCK - 1; /* no entry of the block is sent */
            continue;
        }
        float a = fabsf(x[i]);
        if (a > t || (a == t && ties > 0)) {
            if (!(a > t))
                ties--;
            uint32_t ii = (uint32_t)i;
            memcpy(idx + j * sizeof ii, &ii, sizeof ii);
            memcpy(val + j * sizeof(float), &x[i], sizeof(float));
            j++;
        }
    }
    return 0;
}

static void topk_decode(const void *in, size_t bytes, float *x, size_t n)
{
    size_t k = bytes / (sizeof(uint32_t) + sizeof(float));
    const unsigned char *idx = in, *val = idx + k * sizeof(uint32_t);
    memset(x, 0, n * sizeof(float));
    for (size_t j = 0; j < k; j++) {
        uint32_t i;
        memcpy(&i, idx + j * sizeof i, sizeof i);
        memcpy(&x[i], val + j * sizeof(float), sizeof(float));
    }
}

static int topk_validate(const void *in, size_t bytes, size_t n, ps_error *err)
{
    const size_t entry = sizeof(uint32_t) + sizeof(float);
    if (n > UINT32_MAX)
        return ps_error_set(err, PS_EPAYLOAD, "topk payload for %zu values (limit 2^32)", n);
    if (bytes == 0 || bytes % entry != 0 || bytes / entry > n)
        return ps_error_set(err, PS_EPAYLOAD,
                            "topk payload of %zu bytes is not 1 to %zu entries of %zu bytes", bytes,
                            n, entry);
    size_t k = bytes / entry;
    const unsigned char *idx = in, *val = idx + k * sizeof(uint32_t);
    for (size_t j = 0; j < k; j++) {
        uint32_t i, prev = 0;
        memcpy(&i, idx + j * sizeof i, sizeof i);
        if (j > 0)
            memcpy(&prev, idx + (j - 1) * sizeof i, sizeof i);
        if (i >= n || (j > 0 && i <= prev))
            return ps_error_set(err, PS_EPAYLOAD,
                                "topk payload: entry %zu has index %u (%s, values: %zu)", j, i,
                                i >= n ? "out of range" : "not increasing", n);
        float v;
        memcpy(&v, val + j * sizeof v, sizeof v);
        if (!isfinite(v))
            return ps_error_set(err, PS_EPAYLOAD, "topk payload: entry %zu is not finite", j);
    }
    return 0;
}

/* ---- F16C / AVX2 ----------------------------------------------------------- */

#if PS_HAVE_X86
#define SIMD __attribute__((target("avx2,f16c")))

SIMD static int f16_encode_simd(const float *x, size_t n, size_t k, void *out, float *scratch)
{
    unsigned char *o = out;
    const __m256i abs_mask = _mm256_set1_epi32((int)F32_ABS_MASK);
    const __m256i fmax = _mm256_set1_epi32((int)F32_MAX_BITS);
    const __m256i hmax = _mm256_set1_epi32((int)F16_MAX_BITS);
    __m256i bad = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i));
        __m256i ax = _mm256_and_si256(u, abs_mask);
        bad = _mm256_or_si256(bad, _mm256_cmpgt_epi32(ax, fmax));
        __m256i sat = _mm256_or_si256(_mm256_min_epi32(ax, hmax), _mm256_andnot_si256(abs_mask, u));
        __m128i h = _mm256_cvtps_ph(_mm256_castsi256_ps(sat),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(void *)(o + 2 * i), h);
    }
    int rc = f16_encode(x + i, n - i, k, o + 2 * i, scratch);
    return _mm256_testz_si256(bad, bad) ? rc : PS_EINVAL;
}

SIMD static void f16_decode_simd(const void *in, size_t bytes, float *x, size_t n)
{
    const unsigned char *p = in;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i))));
    f16_decode(p + 2 * i, bytes - 2 * i, x + i, n - i);
}

SIMD static int bf16_encode_simd(const float *x, size_t n, size_t k, void *out, float *scratch)
{
    unsigned char *o = out;
    const __m256i abs_mask = _mm256_set1_epi32((int)F32_ABS_MASK);
    const __m256i fmax = _mm256_set1_epi32((int)F32_MAX_BITS);
    const __m256i bmax = _mm256_set1_epi32((int)BF16_MAX);
    const __m256i half = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1);
    const __m256i sign16 = _mm256_set1_epi32(0x8000);
    __m256i bad = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i r[2];
        for (int h = 0; h < 2; h++) {
            __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i + 8 * h));
            __m256i ax = _mm256_and_si256(u, abs_mask);
            bad = _mm256_or_si256(bad, _mm256_cmpgt_epi32(ax, fmax));
            __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(ax, 16), one);
            __m256i v = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(ax, half), lsb), 16);
            v = _mm256_min_epi32(v, bmax);
            r[h] = _mm256_or_si256(v, _mm256_and_si256(_mm256_srli_epi32(u, 16), sign16));
        }
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xd8);
        _mm256_storeu_si256((__m256i *)(void *)(o + 2 * i), packed);
    }
    int rc = bf16_encode(x + i, n - i, k, o + 2 * i, scratch);
    return _mm256_testz_si256(bad, bad) ? rc : PS_EINVAL;
}

SIMD static void bf16_decode_simd(const void *in, size_t bytes, float *x, size_t n)
{
    const unsigned char *p = in;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + 2 * i)));
        _mm256_storeu_ps(x + i, _mm256_castsi256_ps(_mm256_slli_epi32(h, 16)));
    }
    bf16_decode(p + 2 * i, bytes - 2 * i, x + i, n - i);
}

/* One whole block of PS_INT8_BLOCK values; false when one is not finite. */
SIMD static bool int8_block_simd(const float *x, float *scale, int8_t *q)
{
    const __m256i abs_mask = _mm256_set1_epi32((int)F32_ABS_MASK);
    __m256i amax = _mm256_setzero_si256();
    for (size_t i = 0; i < PS_INT8_BLOCK; i += 8) {
        __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i));
        amax = _mm256_max_epi32(amax, _mm256_and_si256(u, abs_mask));
    }
    __m128i m = _mm_max_epi32(_mm256_castsi256_si128(amax), _mm256_extracti128_si256(amax, 1));
    m = _mm_max_epi32(m, _mm_shuffle_epi32(m, 0x4e));
    m = _mm_max_epi32(m, _mm_shuffle_epi32(m, 0xb1));
    uint32_t amax_bits = (uint32_t)_mm_cvtsi128_si32(m);
    if (amax_bits > INT8_MAX_BITS)
        return false;
    float inv;
    int8_scale(amax_bits, scale, &inv);
    const __m256 vinv = _mm256_set1_ps(inv);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m256i lo = _mm256_set1_epi8(-127);
    for (size_t i = 0; i < PS_INT8_BLOCK; i += 32) {
        __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
        __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8), vinv));
        __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i + 16), vinv));
        __m256i d = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i + 24), vinv));
        __m256i v = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
        v = _mm256_max_epi8(_mm256_permutevar8x32_epi32(v, order), lo);
        _mm256_storeu_si256((__m256i *)(void *)(q + i), v);
    }
    return true;
}

SIMD static int int8_encode_simd(const float *x, size_t n, size_t k, void *out, float *scratch)
{
    (void)k;
    (void)scratch;
    size_t nb = blocks_of(n);
    unsigned char *scales = out;
    int8_t *q = (int8_t *)(scales + nb * sizeof(float));
    bool ok = true;
    for (size_t b = 0; b < nb; b++) {
        size_t lo = b * PS_INT8_BLOCK;
        float s = 0.0f;
        if (n - lo >= PS_INT8_BLOCK)
            ok &= int8_block_simd(x + lo, &s, q + lo);
        else
            ok &= int8_block(x + lo, n - lo, &s, q + lo);
        memcpy(scales + b * sizeof(float), &s, sizeof s);
    }
    return ok ? 0 : PS_EINVAL;
}

SIMD static void int8_decode_simd(const void *in, size_t bytes, float *x, size_t n)
{
    (void)bytes;
    size_t nb = blocks_of(n);
    const unsigned char *scales = in;
    const int8_t *q = (const int8_t *)(scales + nb * sizeof(float));
    for (size_t b = 0; b < nb; b++) {
        float s = 0.0f;
        memcpy(&s, scales + b * sizeof(float), sizeof s);
        size_t lo = b * PS_INT8_BLOCK, hi = n - lo < PS_INT8_BLOCK ? n : lo + PS_INT8_BLOCK;
        const __m256 vs = _mm256_set1_ps(s);
        size_t i = lo;
        for (; i + 8 <= hi; i += 8) {
            __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + i)));
            _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_cvtepi32_ps(v), vs));
        }
        for (; i < hi; i++)
            x[i] = (float)q[i] * s;
    }
}
#endif

/* ---- the table --------------------------------------------------------- */

#if PS_HAVE_X86
#define VECTOR(fn) fn
#else
#define VECTOR(fn) NULL
#endif

/* One row per codec: its descriptor with the portable loops, and the
 * F16C/AVX2 loops that give the same bits (NULL: none). */
typedef struct codec_row {
    ps_compress_ops ops;
    int (*encode_simd)(const float *x, size_t n, size_t k, void *out, float *scratch);
    void (*decode_simd)(const void *in, size_t bytes, float *x, size_t n);
} codec_row;

static const codec_row rows[] = {
    [PS_COMPRESS_NONE] = {.ops = {.type = PS_COMPRESS_NONE,
                                  .name = "none",
                                  .label = "f32",
                                  .encoding = PS_ENC_F32,
                                  .pull_ok = true,
                                  .feedback_default = false,
                                  .range = FLT_MAX,
                                  .bytes = f32_bytes,
                                  .encode = f32_encode,
                                  .decode = f32_decode,
                                  .validate = f32_validate}},
    [PS_COMPRESS_FP16] = {.ops = {.type = PS_COMPRESS_FP16,
                                  .name = "fp16",
                                  .label = "fp16",
                                  .encoding = PS_ENC_F16,
                                  .pull_ok = true,
                                  .feedback_default = false,
                                  .range = 65504.0f,
                                  .bytes = f16_bytes,
                                  .encode = f16_encode,
                                  .decode = f16_decode,
                                  .validate = f16_validate},
                          .encode_simd = VECTOR(f16_encode_simd),
                          .decode_simd = VECTOR(f16_decode_simd)},
    [PS_COMPRESS_BF16] = {.ops = {.type = PS_COMPRESS_BF16,
                                  .name = "bf16",
                                  .label = "bf16",
                                  .encoding = PS_ENC_BF16,
                                  .pull_ok = true,
                                  .feedback_default = false,
                                  .range = 0x1.fep127f,
                                  .bytes = f16_bytes,
                                  .encode = bf16_encode,
                                  .decode = bf16_decode,
                                  .validate = bf16_validate},
                          .encode_simd = VECTOR(bf16_encode_simd),
                          .decode_simd = VECTOR(bf16_decode_simd)},
    [PS_COMPRESS_INT8] = {.ops = {.type = PS_COMPRESS_INT8,
                                  .name = "int8",
                                  .label = "int8",
                                  .encoding = PS_ENC_INT8,
                                  .pull_ok = true,
                                  .feedback_default = true,
                                  .range = 127.0f * 0x1p120f, /* validate's largest scale */
                                  .bytes = int8_bytes,
                                  .encode = int8_encode,
                                  .decode = int8_decode,
                                  .validate = int8_validate},
                          .encode_simd = VECTOR(int8_encode_simd),
                          .decode_simd = VECTOR(int8_decode_simd)},
    [PS_COMPRESS_TOPK] = {.ops = {.type = PS_COMPRESS_TOPK,
                                  .name = "topk",
                                  .label = "topk",
                                  .encoding = PS_ENC_TOPK,
                                  .pull_ok = false,
                                  .feedback_default = true,
                                  .range = FLT_MAX,
                                  .bytes = topk_bytes,
                                  .encode = topk_encode,
                                  .decode = topk_decode,
                                  .validate = topk_validate}},
};
_Static_assert(sizeof rows / sizeof rows[0] == PS_COMPRESS_COUNT, "one row per ps_compress_type");

/* The rows in use: the portable ones with the vector loops swapped in when
 * this CPU has them, chosen once (cpuid is slow under a hypervisor, and its
 * answer cannot change), and the codec of each wire encoding. */
static ps_compress_ops active[PS_COMPRESS_COUNT];
static const ps_compress_ops *by_encoding[PS_ENC_COUNT];
static bool simd_on;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static bool cpu_has_simd(void)
{
#if PS_HAVE_X86
    /* F16C by cpuid: clang's __builtin_cpu_supports does not know "f16c" */
    unsigned a, b, c, d;
    return __builtin_cpu_supports("avx2") && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
#else
    return false;
#endif
}

static void choose(void)
{
    /* PS_COMPRESS_PORTABLE=1 keeps the portable loops on any CPU: the path
     * of a CPU without F16C/AVX2, for tests (test_compress_simd skips) */
    const char *portable = getenv("PS_COMPRESS_PORTABLE");
    simd_on = cpu_has_simd() && !(portable != NULL && strcmp(portable, "1") == 0);
    for (size_t t = 0; t < PS_COMPRESS_COUNT; t++) {
        active[t] = rows[t].ops;
        if (simd_on && rows[t].encode_simd != NULL)
            active[t].encode = rows[t].encode_simd;
        if (simd_on && rows[t].decode_simd != NULL)
            active[t].decode = rows[t].decode_simd;
        by_encoding[active[t].encoding] = &active[t];
    }
}

bool ps_compress_simd(void)
{
    pthread_once(&choose_once, choose);
    return simd_on;
}

const ps_compress_ops *ps_compress_ops_portable(ps_compress_type type)
{
    if ((unsigned)type >= PS_COMPRESS_COUNT)
        return NULL;
    return &rows[type].ops;
}

const ps_compress_ops *ps_compress_ops_get(ps_compress_type type)
{
    if ((unsigned)type >= PS_COMPRESS_COUNT)
        return NULL;
    pthread_once(&choose_once, choose);
    return &active[type];
}

const ps_compress_ops *ps_compress_ops_for_encoding(ps_encoding encoding)
{
    if ((unsigned)encoding >= PS_ENC_COUNT)
        return NULL;
    pthread_once(&choose_once, choose);
    return by_encoding[encoding];
}

void ps_compress_list(char *buf, size_t cap, unsigned flags)
{
    if (cap == 0)
        return;
    buf[0] = '\0';
    size_t n = 0, at = 0;
    for (size_t t = 0; t < PS_COMPRESS_COUNT; t++)
        n += !(flags & PS_COMPRESS_LIST_PULL) || rows[t].ops.pull_ok;
    for (size_t t = 0, i = 0; t < PS_COMPRESS_COUNT && at < cap; t++) {
        const ps_compress_ops *o = &rows[t].ops;
        if ((flags & PS_COMPRESS_LIST_PULL) && !o->pull_ok)
            continue;
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        at += (size_t)snprintf(buf + at, cap - at, "%s%s", sep,
                               (flags & PS_COMPRESS_LIST_LABELS) ? o->label : o->name);
        i++;
    }
}

int ps_compress_parse(const char *name, ps_compress_type *out)
{
    for (int t = 0; t < PS_COMPRESS_COUNT; t++)
        if (name != NULL && strcmp(name, rows[t].ops.name) == 0) {
            *out = (ps_compress_type)t;
            return 0;
        }
    return PS_EINVAL;
}

size_t ps_compress_topk_k(size_t n, double ratio)
{
    if (n == 0)
        return 0;
    double k = ceil((double)n * ratio);
    if (!(k >= 1.0))
        return 1;
    return k >= (double)n ? n : (size_t)k;
}

int ps_compress_encode_ef(const ps_compress_ops *ops, const float *x, float *residual, size_t n,
                          size_t k, void *out, float *scratch)
{
    for (size_t i = 0; i < n; i++)
        residual[i] += x[i];
    int rc = ops->encode(residual, n, k, out, scratch);
    if (rc != 0) {
        memset(residual, 0, n * sizeof(float));
        return rc;
    }
    ops->decode(out, ops->bytes(n, k), scratch, n);
    for (size_t i = 0; i < n; i++)
        residual[i] -= scratch[i];
    return 0;
}
