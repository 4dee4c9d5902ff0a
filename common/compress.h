/* compress.h — codecs of gradients and θ on the wire (docs/architecture.md#the-wire-protocol): none
 * (float32), fp16, bf16, int8 with one scale per block of 256, and top-k with
 * 32-bit indices. A codec is one row of a table in compress.c: its name, wire
 * encoding, whether pulls may use it, and its functions (encode, decode,
 * bytes for n floats, validate); callers never ask which codec they hold.
 * Adding a codec is a value in ps_compress_type, an encoding (ps.proto and
 * codec.h's list), and a row with its functions. Encoders
 * and decoders work in the caller's buffers and allocate nothing; fp16 uses
 * F16C (with AVX2) when the CPU has it, chosen at run time, and a portable
 * loop that gives the same bits otherwise. */
#ifndef PS_COMPRESS_H
#define PS_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "error.h"

typedef enum ps_compress_type {
    PS_COMPRESS_NONE,
    PS_COMPRESS_FP16,
    PS_COMPRESS_BF16,
    PS_COMPRESS_INT8,
    PS_COMPRESS_TOPK,
    PS_COMPRESS_COUNT,
} ps_compress_type;

/* int8: values per scale. Wire layout of n values: ceil(n / 256) float32
 * scales, then n int8 values; value i is q[i] * scale[i / 256]. */
#define PS_INT8_BLOCK 256

/* int8: a block whose largest magnitude is below this is sent as zeros. */
#define PS_INT8_TINY 0x1p-100f

/*
 * The rows. Every encoder refuses a non-finite input (PS_EINVAL, nothing
 * useful written): a NaN or an infinity has no encoding. Rounding:
 *  - fp16, bf16: round to nearest even; magnitudes past the largest finite
 *    value (65504 for fp16) saturate to it, never become infinity;
 *  - int8: scale = max|x| / 127 per block, q = x / scale rounded to nearest
 *    even (deterministic, so error feedback sees exactly what was dropped);
 *    |error| <= scale / 2;
 *  - topk: the k largest magnitudes (ties: lowest index first) as k uint32
 *    indices, increasing, then their k float32 values; the rest read as 0.
 */
typedef struct ps_compress_ops {
    ps_compress_type type;
    const char *name;      /* as in job files: "int8" */
    const char *label;     /* its encoding's codec="..." label in /metrics: "int8" */
    ps_encoding encoding;  /* on the wire */
    bool pull_ok;          /* compression.pull may name it: it carries θ itself (not topk) */
    bool feedback_default; /* error_feedback's default: on for the codecs that drop most */
    /* The largest magnitude it carries: 65504 for fp16, bf16's largest
     * finite value for bf16, 127 times validate's largest scale (2^120)
     * for int8, FLT_MAX for none and topk. Beyond it fp16 and bf16 send
     * ±range (saturated), and validate refuses an int8 block. */
    float range;
    /* Bytes of the encoding of n floats (topk: of k entries; k is ignored
     * by the others). */
    size_t (*bytes)(size_t n, size_t k);
    /* Encodes x[0..n) into out (bytes(n, k) long); scratch (n floats) is
     * needed by topk only, NULL is fine for the others. 0 or PS_EINVAL. */
    int (*encode)(const float *x, size_t n, size_t k, void *out, float *scratch);
    /* Decodes a payload that validate accepted for n values into x[0..n). */
    void (*decode)(const void *in, size_t bytes, float *x, size_t n);
    /* Checks a payload from the network for n values: its size, block count,
     * scales, indices (in range, increasing) and values (finite). 0, or
     * PS_EPAYLOAD with one sentence in err. */
    int (*validate)(const void *in, size_t bytes, size_t n, ps_error *err);
} ps_compress_ops;

/* The descriptor of a codec, its F16C/AVX2 loops in place when this CPU
 * has them: asked once, the first time any codec is asked for (cpuid
 * traps to the hypervisor in a VM, and its answer cannot change). NULL
 * for a type out of range. Thread-safe. */
const ps_compress_ops *ps_compress_ops_get(ps_compress_type type);

/* The descriptor with the portable loops, whatever the CPU: the reference
 * the vector loops must match bit for bit (tests, benchmarks). */
const ps_compress_ops *ps_compress_ops_portable(ps_compress_type type);

/* The descriptor that decodes a wire encoding (F32, F16, BF16, INT8,
 * TOPK), as ps_compress_ops_get gives it; NULL for an encoding that is not
 * a codec's (NONE, KEYS_U64, SHM_F32, WORKERS). A table lookup. */
const ps_compress_ops *ps_compress_ops_for_encoding(ps_encoding encoding);

/* Writes the codecs' names as a list for people, "none, fp16, bf16, int8
 * or topk", into buf (cap bytes, always terminated): with
 * PS_COMPRESS_LIST_PULL only those pulls may use, with
 * PS_COMPRESS_LIST_LABELS their /metrics labels ("f32, fp16, ..."). */
#define PS_COMPRESS_LIST_PULL   1u
#define PS_COMPRESS_LIST_LABELS 2u
void ps_compress_list(char *buf, size_t cap, unsigned flags);

/* The codec named as in a job file ("fp16"); PS_EINVAL for another name. */
int ps_compress_parse(const char *name, ps_compress_type *out);

/* topk: entries sent for n floats at ratio (0, 1]: ceil(n * ratio), at least
 * 1 (0 when n is 0), at most n. Other codecs ignore it. */
size_t ps_compress_topk_k(size_t n, double ratio);

/* Encodes with error feedback (Seide et al. 2014; Karimireddy et al. 2019):
 * residual[0..n) holds what earlier encodings dropped; x + residual is
 * encoded into out (ops->bytes(n, k) long) and residual becomes what this
 * encoding dropped. scratch: n floats. Allocates nothing. 0, or PS_EINVAL
 * (a non-finite value; residual is then reset to zeros). */
int ps_compress_encode_ef(const ps_compress_ops *ops, const float *x, float *residual, size_t n,
                          size_t k, void *out, float *scratch);

/* True when this CPU runs the F16C/AVX2 loops (fp16, bf16 and int8); asked
 * once, as ps_compress_ops_get does. */
bool ps_compress_simd(void);

#endif
