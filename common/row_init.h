/* row_init.h — a sparse table row's initial weights, a function of its key
 * alone: what psd's table (server/table.c) gives a key it holds no row for
 * (a pull before the first write, a key not admitted yet or evicted) and
 * what psworker predict gives a key the model's keys.npy lacks, so a
 * prediction scores every row as training's evaluation did. libc and libm. */
#ifndef PS_ROW_INIT_H
#define PS_ROW_INIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ps_row_init {
    uint64_t seed_bits;
    uint32_t dim;
    uint32_t zeros; /* the first zeros weights are 0, the rest N(0, 0.01²) */
} ps_row_init;

/* The rows of table `name` (dim floats, of which zero_prefix start at 0;
 * every one when all_zero) of a job with model.init.seed init_seed. */
void ps_row_init_setup(ps_row_init *ri, uint64_t init_seed, const char *name, uint32_t dim,
                       uint32_t zero_prefix, bool all_zero);

/* key's initial weights into w (ri->dim floats): 0 for the zero prefix,
 * N(0, 0.01²) after it (Box-Muller on the two 32-bit halves of 64 random
 * bits per float). */
void ps_row_init_weights(const ps_row_init *ri, uint64_t key, float *w);

#endif
