/* row_init.c — a sparse row's initial weights by key (row_init.h). */
#include "row_init.h"

#include <math.h>

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

void ps_row_init_setup(ps_row_init *ri, uint64_t init_seed, const char *name, uint32_t dim,
                       uint32_t zero_prefix, bool all_zero)
{
    ri->seed_bits = splitmix64(init_seed ^ name_hash(name));
    ri->dim = dim;
    ri->zeros = all_zero || zero_prefix > dim ? dim : zero_prefix;
}

void ps_row_init_weights(const ps_row_init *ri, uint64_t key, float *w)
{
    for (uint32_t j = 0; j < ri->zeros; j++)
        w[j] = 0.0f;
    if (ri->zeros == ri->dim)
        return;
    uint64_t base = splitmix64(ri->seed_bits ^ splitmix64(key));
    for (uint32_t j = ri->zeros; j < ri->dim; j++) {
        uint64_t x = splitmix64(base + (uint64_t)j * 0x9E3779B97F4A7C15ull);
        double u1 = ((double)(x >> 32) + 1.0) * 0x1.0p-32;
        double u2 = (double)(x & 0xFFFFFFFFu) * 0x1.0p-32;
        w[j] = (float)(0.01 * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
    }
}
