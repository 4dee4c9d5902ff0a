/* table.h — one shard's part of a sparse table of θ: a map from 64-bit keys
 * (hashes of a feature's field and value) to rows of dim floats plus their
 * optimizer state, the sparse counterpart of store.h. Rows live only on the
 * servers; a key never written reads as its initial row, and rows are made
 * when first written (docs/architecture.md#theta-tensors-and-shards). */
#ifndef PS_TABLE_H
#define PS_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "error.h"
#include "job.h"
#include "log.h"

/* A table is not locked: one thread (the engine's) uses it. After
 * ps_table_new it allocates only where a function says so: the
 * accumulator of sync rounds when a round touches more keys than any
 * before, and, with sparse.max_rows 0 (no cap), memory for rows as the
 * table grows — a new chunk of rows every so many rows (rows are never
 * moved or copied) and an index 1.4 times bigger when it is 80% full,
 * into which the old one's rows are moved a few at each new row (no call
 * moves them all: no stall). Every such allocation is amortised over the
 * rows it makes room for.
 *
 * Memory: a row costs its 4·row_floats bytes, 8 for its key, 4 for its
 * last-updated version and a bit for liveness, all in chunks mapped in
 * virtual memory (MAP_NORESERVE) and touched only as rows are added; the
 * index is open addressing (linear probing, backward-shift deletion) of a
 * 32-bit row id and an 8-bit tag per slot, at a load of 0.57 to 0.8: 6.25
 * to 8.75 bytes a row (while it grows, the old index's moved slots are
 * handed back as the new one's fill: the two hold about what the new one
 * does). The count-min sketch (min_count > 1) is 16 MiB. The index never
 * shrinks, and rows of evicted keys are reused by new ones. */
typedef struct ps_table ps_table;

/* Which shard owns a key is keys.h's: ps_key_shard and ps_key_range. */

/* Shard `shard` of nshards of table number table_index of the job, as spec
 * declares it (ps_job_tables), empty. Rows are updated with the job's
 * optimizer: sgd, adagrad or ftrl (ftrl's β is optimizer.beta); the others
 * are refused with PS_EUNSUPPORTED. Rows' learning rate is optimizer.lr
 * itself: schedules scale the dense tensors only (store.h). The job's
 * `sparse` section gives admission (min_count), idle eviction
 * (idle_versions) and the cap (max_rows); a shard holds at most 2^32 - 2
 * rows whatever max_rows says, and that many is its cap when there is none.
 * A row's initial value is a function of model.init_seed, the table's name
 * and the key alone (not of the shard, nor of a restart): its first
 * spec->zero_prefix floats are 0, the others 0 under init_scheme zeros and
 * N(0, 0.01²) under normal; xavier has no meaning without a fan-in, so it
 * is taken as normal with scale 0.01. For ftrl with beta = 0 and l2 = 0
 * the closed form cannot hold a non-zero weight at n = 0: rows start at 0.
 * Returns NULL and fills err: PS_EUNSUPPORTED, PS_EINVAL (spec or
 * hyper-parameters out of range, shard >= nshards), PS_ENOMEM. */
ps_table *ps_table_new(const ps_job *job, uint32_t table_index, const ps_table_spec *spec,
                       uint32_t shard, uint32_t nshards, ps_error *err);

/* Frees the table and sets *tp to NULL; a NULL *tp is fine. */
void ps_table_destroy(ps_table **tp);

/* The table's name, the floats of a row's weights (dim), the floats stored
 * per row (weights and state: sgd dim; adagrad 2·dim, w then its
 * accumulator; ftrl 2·dim, z then n, the weights being computed from them),
 * and the index given to ps_table_new. */
const char *ps_table_name(const ps_table *t);
uint32_t ps_table_dim(const ps_table *t);
uint32_t ps_table_row_floats(const ps_table *t);
uint32_t ps_table_index(const ps_table *t);

/* The shard's keys, as ps_key_range gives them. */
void ps_table_keys(const ps_table *t, uint64_t *lo, uint64_t *last);

/* The number of live rows. */
uint64_t ps_table_rows(const ps_table *t);

/* Copies key's current weights (dim floats) into row_out: a stored row's
 * (ftrl: per coordinate w = 0 when |z| <= λ1, else
 * -(z - sign(z)·λ1) / ((β + √n)/α + λ2), α = optimizer.lr), or the initial
 * row for a key not stored. Stores nothing and counts nothing: admission
 * counts writes only. PS_ERANGE for a key outside the shard. */
int ps_table_read(const ps_table *t, uint64_t key, float *row_out);

/* Gradients are dim native float32 values at any alignment: they come
 * straight from a network frame. */

/* One optimizer update of key's row with the gradient scale · grad, marking
 * the row updated at `version`. A key not stored is first admitted
 * (min_count, below) and stored with its initial row, then updated; not
 * admitted, the write is counted and dropped. Per coordinate, with
 * g = scale · grad and α = lr:
 *   sgd      w -= α · (g + λ2·w)
 *   adagrad  g' = g + λ2·w; a += g'²; w -= α · g' / (√a + eps)
 *   ftrl     FTRL-Proximal (McMahan et al. 2013), w as ps_table_read gives
 *            it: σ = (√(n + g²) - √n) / α; z += g - σ·w; n += g²
 * L2 is applied lazily: to the rows a write touches, when it touches them,
 * never to the rest (for ftrl λ1 and λ2 are part of the weights' closed
 * form). At the cap (max_rows, or memory that cannot be had) a new key
 * first evicts an old row (below): a write never fails for want of room.
 * PS_ERANGE for a key outside the shard (nothing changes); PS_ENOMEM only
 * when not a single row can be stored. */
int ps_table_apply(ps_table *t, uint64_t key, const void *grad, float scale, uint64_t version);

/* Sync rounds. Adds weight · grad for key to the open round's accumulator,
 * a hash map of its own that grows (allocating, amortised) when a round
 * touches more keys than any before. Nothing is admitted or counted until
 * the round is applied. PS_ERANGE for a key outside the shard, PS_ENOMEM
 * when the accumulator cannot grow (the gradient is then lost). */
int ps_table_accumulate(ps_table *t, uint64_t key, const void *grad, float weight);

/* Applies every key of the open round once, as ps_table_apply with scale
 * and version (so a key counts once a round for admission), in the order
 * the round first touched them (pipelined as ps_table_apply_many), and
 * empties the accumulator. An empty round is fine (0). PS_ENOMEM as
 * ps_table_apply. */
int ps_table_apply_accumulated(ps_table *t, float scale, uint64_t version);

/* Keys in the open round. */
size_t ps_table_accumulated(const ps_table *t);

/* Batches: ps_table_read, ps_table_apply and ps_table_accumulate of keys[0],
 * keys[1], ... keys[n - 1] in that order, with exactly their results (rows
 * bit for bit, admission, eviction, counters), grads and rows_out holding
 * dim floats a key one after the other. Their lookups are pipelined: while
 * one key is worked on, the index slots and rows of keys further on are
 * fetched from memory, which a key at a time waits for twice (on a big
 * table, most of a single call's time). Keys need not be sorted nor unique.
 * PS_ERANGE when a key is outside the shard: then nothing is read or
 * changed. apply_many goes on past PS_ENOMEM (as ps_table_apply_accumulated)
 * and returns it at the end; accumulate_many stops at it, the keys before
 * summed and the others not. n = 0 is fine. */
int ps_table_read_many(const ps_table *t, const uint64_t *keys, size_t n, float *rows_out);
int ps_table_apply_many(ps_table *t, const uint64_t *keys, size_t n, const void *grads, float scale,
                        uint64_t version);
int ps_table_accumulate_many(ps_table *t, const uint64_t *keys, size_t n, const void *grads,
                             float weight);

/* Row hints: a pull's lookups, kept for the push of the same keys that
 * usually follows it. read_many_ids is read_many that also sets ids_out[i]
 * to the id of key i's row (PS_TABLE_NO_ROW when not stored), and
 * apply_many_ids is apply_many that takes ids[i] for key i's row instead
 * of looking it up when that row still holds key: any id is safe, one
 * whose row was dropped, reused or never made is looked up as usual. The
 * results are apply_many's, bit for bit. With pfor (a parallel for over
 * [0, n) in parts, as ps_pool_run; NULL: none) and keys that are unique,
 * the rows the hints find are updated on its threads, then the others
 * here, when no row can be evicted meanwhile (below the cap); otherwise
 * all here. */
#define PS_TABLE_NO_ROW UINT32_MAX
int ps_table_read_many_ids(const ps_table *t, const uint64_t *keys, size_t n, float *rows_out,
                           uint32_t *ids_out);
typedef void (*ps_table_for)(void *ctx, size_t n, size_t grain,
                             void (*fn)(void *arg, size_t lo, size_t hi), void *arg);
int ps_table_apply_many_ids(ps_table *t, const uint64_t *keys, const uint32_t *ids, size_t n,
                            const void *grads, float scale, uint64_t version, ps_table_for pfor,
                            void *pctx);

/* Idle eviction, incremental: a clock hand goes on from where the last call
 * stopped and examines at most budget row slots, dropping each live row
 * last updated more than idle_versions versions before `version`, so the
 * engine can call it every tick without stalling. Returns the rows it
 * dropped (counted in the stats); 0 when idle_versions is 0. Versions are
 * kept in 32 bits and ages taken modulo 2^32: a row idle for 2^32 versions
 * or more looks as old as its age modulo 2^32, and idle_versions of 2^32 or
 * more never evicts. A growing index moves on by budget slots too, so that
 * its growth ends with no new rows. */
uint64_t ps_table_evict_idle(ps_table *t, uint64_t version, size_t budget);

/* At the cap a new key evicts the least recently updated row,
 * approximately: the oldest of 16 live rows sampled at random (as Redis's
 * approximated LRU does), counted as evicted at the cap. */

/* Up to max (>= 1) live rows from cursor (0 to start): their keys into keys_out
 * and their weights, as ps_table_read gives them, into rows_out (dim floats
 * a row); *next_cursor gets the cursor to go on from, 0 when the table is
 * done. Rows come in storage order, not key order, so a table is written
 * out in pages without sorting; a row live for the whole scan is visited
 * exactly once, rows made or dropped between calls may or may not be.
 * Returns the rows given. */
size_t ps_table_scan(const ps_table *t, uint64_t cursor, size_t max, uint64_t *keys_out,
                     float *rows_out, uint64_t *next_cursor);

/* As ps_table_scan, for checkpoints: each row's stored floats
 * (row_floats of them) and its last-updated version. Versions are kept in
 * 32 bits: the one given is the latest version at or before the newest the
 * table has seen (apply, evict, restore) that has the stored low bits. */
size_t ps_table_scan_state(const ps_table *t, uint64_t cursor, size_t max, uint64_t *keys_out,
                           uint64_t *versions_out, float *state_out, uint64_t *next_cursor);

/* Stores key's row as a checkpoint held it (row_floats floats: weights and
 * state, as ps_table_scan_state gives them), updated at version, replacing
 * a stored one; admission is skipped, and at the cap an old row is evicted
 * as for a write. PS_ERANGE for a key outside the shard, PS_ENOMEM. */
int ps_table_restore_row(ps_table *t, uint64_t key, uint64_t version, const float *state);

/* Drops every row and empties the accumulator; counters stay. Memory stays
 * held, for the rows to come (but a growing index's old one, now empty). */
void ps_table_clear(ps_table *t);

/* What a table holds and has done. bytes counts the memory held for rows
 * (chunks as far as rows have touched them), the index (both while it
 * grows, whole), the sketch and the accumulator: at the cap it stays
 * constant. */
typedef struct ps_table_stats {
    char name[PS_TABLE_NAME_MAX];
    uint32_t dim;
    uint64_t rows;         /* live */
    uint64_t bytes;        /* held */
    uint64_t admitted;     /* rows made by a write */
    uint64_t not_admitted; /* writes dropped below min_count */
    uint64_t evicted_idle;
    uint64_t evicted_cap; /* to admit a key at the cap */
} ps_table_stats;

/* Fills *st. */
void ps_table_stats_get(const ps_table *t, ps_table_stats *st);

/* Whether the index is growing: its rows still being moved, a few at each
 * new row and idle eviction's budget at each call, from the old index to
 * the bigger one (both held meanwhile). */
bool ps_table_growing(const ps_table *t);

/* Admission: with min_count > 1, a key is stored at its min_count-th write;
 * its earlier writes are counted in a count-min sketch (4 rows of 2^20
 * 32-bit counters, conservative update) and dropped, and reads give the
 * initial row until then. The sketch overcounts a key by at most ε·N with
 * probability 1 - δ, ε = e / 2^20 ≈ 2.6e-6, δ = e^-4 ≈ 0.018, N the writes
 * it has counted; it never undercounts, so an overcount only admits a key
 * early. It is not checkpointed: after a restart keys below min_count
 * count from 0 again. A key evicted is admitted again at its next write
 * (the sketch still holds its count). */

/* ---- checkpoints ---- */

/* A checkpoint's descriptor of t (checkpoint.h), its callbacks bound to t:
 * the layout (name, dim, row_floats, optimizer) and the live rows. */
void ps_table_ckpt(ps_table *t, ps_ckpt_table *out);

/* ps_checkpoint_write_tables with the arrays and these ntables tables
 * (ntables <= PS_CKPT_MAX_TABLES): every live row (key, last-updated
 * version, stored floats), read from the tables on the calling thread,
 * which must own them for the time of the write. Errors as
 * ps_checkpoint_write; PS_EINVAL for too many tables. */
int ps_table_checkpoint_write(ps_ckpt_folder *f, const ps_ckpt_meta *meta,
                              const ps_ckpt_array *arrays, size_t narrays, ps_table *const *tables,
                              size_t ntables, char *path_out, size_t cap, uint64_t *bytes_out,
                              ps_error *err);

/* ps_checkpoint_load_tables into the arrays and the tables (cleared first
 * when a checkpoint is loaded, left as they are on a fresh start). Returns
 * as ps_checkpoint_load: 0, 1 (no valid checkpoint), PS_ECONFIG (a whole
 * checkpoint of another layout, tables included: another table count,
 * name, dim or optimizer), PS_EIO, PS_ENOMEM. */
int ps_table_checkpoint_load(ps_ckpt_folder *f, const char *job, uint32_t shard, uint64_t key_lo,
                             uint64_t key_hi, ps_ckpt_array *arrays, size_t narrays,
                             ps_table *const *tables, size_t ntables, ps_ckpt_meta *meta,
                             char *path_out, size_t cap, const ps_log *log, ps_error *err);

#endif
