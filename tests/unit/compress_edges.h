/* compress_edges.h — the floats the codec tests encode, shared by
 * test_compress.c and test_compress_simd.c: the edge values of fp16, bf16
 * and int8 (±0, subnormals, values past the fp16 range, ties) first, then
 * random magnitudes over 2^-20 .. 2^20. */
#ifndef PS_COMPRESS_EDGES_H
#define PS_COMPRESS_EDGES_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define N 1037 /* four int8 blocks and a tail; not a multiple of 8 or 16 */

static inline float f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline void fill_edges(float *x, size_t n)
{
    const float edges[] = {
        0.0f,     -0.0f,    1.0f,       -1.0f,    65504.0f,     -65504.0f,       65519.0f,
        65520.0f, 1e10f,    -3e38f,     FLT_MAX,  FLT_MIN,      f32(1),          -f32(1),
        0x1p-24f, 0x1p-25f, 0x1.8p-25f, 0x1p-14f, 0x1.ffcp-15f, 1.0f + 0x1p-11f, 1.0f + 0x3p-11f,
        0.1f,     -0.3333f, 6.1e-5f,    5.96e-8f, 2.98e-8f};
    size_t ne = sizeof edges / sizeof edges[0];
    srand(7);
    for (size_t i = 0; i < n; i++)
        x[i] = i < ne ? edges[i]
                      : (float)((rand() / (double)RAND_MAX - 0.5) * ldexp(1, rand() % 40 - 20));
}

#endif
