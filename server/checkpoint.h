/* checkpoint.h — a shard's state on disk: θ, the optimizer's arrays, the
 * live rows of its sparse tables (format 2; a file without tables is
 * format 1, as before tables existed) and the counters needed to go on
 * (model version, update count), in one file with a checksum. Written to
 * a temporary file, fsync'd, renamed and the folder fsync'd, so a crash
 * leaves the previous checkpoint or the new one, never a mix; a file that
 * does not check out (truncated, bit-flipped) is skipped on load with a
 * warning, and a whole file of another job or model under this job's names
 * makes the folder refused. Files are named <job>-shard<i>-<version>.ckpt;
 * the newest `keep` of those psd verified or wrote itself are kept, and no
 * other file is ever deleted. */
#ifndef PS_CHECKPOINT_H
#define PS_CHECKPOINT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "error.h"
#include "log.h"

#define PS_CKPT_MAX_ARRAYS 8
#define PS_CKPT_NAME_MAX   32

/* One named float array of the shard (θ, or an optimizer state array). */
typedef struct ps_ckpt_array {
    char name[PS_CKPT_NAME_MAX];
    float *data; /* write: read from; load: written into (count floats) */
    uint64_t count;
} ps_ckpt_array;

/* One sparse table of the shard as a checkpoint sees it (table.h makes
 * them: ps_table_ckpt): its layout, which a file must match, and callbacks
 * to its owner. A row is its key, its last-updated version and row_floats
 * floats (weights and optimizer state as the table keeps them). */
#define PS_CKPT_MAX_TABLES     8
#define PS_CKPT_ROW_FLOATS_MAX 4096
typedef struct ps_ckpt_table {
    char name[PS_CKPT_NAME_MAX];
    uint32_t dim;        /* floats of a row's weights */
    uint32_t row_floats; /* floats stored per row, 1 to PS_CKPT_ROW_FLOATS_MAX */
    uint32_t layout;     /* what the floats are (the optimizer, ps_optim_type) */
    uint64_t rows;       /* write: the live rows scan gives */
    void *ctx;
    /* write: up to max rows from cursor (0 to start) into keys, versions and
     * floats (row_floats each); *next 0 when done. Returns the rows given. */
    size_t (*scan)(void *ctx, uint64_t cursor, size_t max, uint64_t *keys, uint64_t *versions,
                   float *floats, uint64_t *next);
    /* load: stores one row; a negative PS_E code refuses the file */
    int (*restore)(void *ctx, uint64_t key, uint64_t version, const float *floats);
    /* load: drops every row (before a file's rows, and after a failed load) */
    void (*clear)(void *ctx);
} ps_ckpt_table;

#define PS_CKPT_MAX_RANKS 4096
#define PS_CKPT_RANK_SEQ  1u /* ps_ckpt_rank.flags: last_seq holds */
#define PS_CKPT_RANK_DONE 2u /* ps_ckpt_rank.flags: its data was trained to the end */

/* What the shard knew of one rank of the job (exactly once across a
 * restart: a push whose seq is at most last_seq from the same incarnation
 * was applied before the checkpoint). */
typedef struct ps_ckpt_rank {
    uint64_t incarnation; /* the client process that held the rank, 0: none */
    uint64_t last_seq;    /* the last applied push's seq, when flags has PS_CKPT_RANK_SEQ */
    uint64_t applied;     /* pushes of the rank applied */
    uint64_t clock;       /* clock of its last applied push + 1 */
    uint32_t flags;
    uint32_t reserved; /* 0 */
} ps_ckpt_rank;

/* What identifies the shard and where it stood. */
typedef struct ps_ckpt_meta {
    char job[PS_JOB_NAME_MAX];
    uint32_t shard;
    uint64_t key_lo, key_hi;
    uint64_t version;    /* model version */
    uint64_t updates;    /* optimizer steps taken (schedules, adam's bias correction) */
    uint64_t created_ms; /* wall clock, ms since the epoch */
    /* per-rank state, not owned. write: nranks entries are stored (at most
     * PS_CKPT_MAX_RANKS; ranks NULL: none). load: the folder's ranks and
     * how many the file had, at most the folder's rank_room (a file of a
     * job with fewer workers, or of an older psd, has fewer or none) */
    ps_ckpt_rank *ranks;
    uint32_t nranks;
    /* the batch queue (data.assign: dynamic, shard 0; batchq.h), as opaque
     * bytes: write: queue_bytes of them at queue (0: none, and the file is
     * as before queues existed); load: the folder's copy (ps_ckpt_folder's
     * queue), 0 bytes when the file holds none */
    const void *queue;
    size_t queue_bytes;
} ps_ckpt_meta;

/* One shard's checkpoint folder as psd uses it. `known` holds the versions
 * of the files psd has verified (ps_checkpoint_load) or written itself:
 * the only ones pruning counts or deletes. Embedded: ps_ckpt_folder_init /
 * ps_ckpt_folder_fini; one thread at a time. */
typedef struct ps_ckpt_folder {
    char dir[PATH_MAX];
    uint32_t keep;    /* >= 1 */
    bool finite_only; /* refuse to write a NaN or inf (on_divergence: stop) */
    uint64_t *known;  /* malloc'd, any order, no duplicates */
    size_t nknown, known_cap;
    /* where a load puts the file's per-rank state: set by the caller after
     * ps_ckpt_folder_init (NULL, 0: not loaded); not owned */
    ps_ckpt_rank *ranks;
    uint32_t rank_room;
    /* the batch queue's bytes the last load found (owned; NULL: none) */
    void *queue;
    size_t queue_bytes;
} ps_ckpt_folder;

/* Sets f up for dir: creates the folder when missing, then creates and
 * removes a test file in it, so a folder psd cannot write is refused before
 * any work is done. keep 0 is taken as 1. PS_EIO with err naming
 * checkpoint.dir and the OS error; f needs ps_ckpt_folder_fini either way. */
int ps_ckpt_folder_init(ps_ckpt_folder *f, const char *dir, uint32_t keep, bool finite_only,
                        ps_error *err);

/* Frees what f holds; f may be zeroed or initialised, and fini twice is fine. */
void ps_ckpt_folder_fini(ps_ckpt_folder *f);

/* Writes meta and the arrays to f's folder (created again if missing) as one
 * checkpoint, atomically, remembers it as known and deletes the known files
 * of this job and shard beyond the newest keep. *path_out (when not NULL,
 * cap bytes) gets the file written and *bytes_out its size. PS_EDIVERGED
 * when f->finite_only and an array holds a NaN or inf (nothing is written;
 * err: "θ holds a non-finite value at key K"); PS_EIO with err naming the
 * file; PS_ENOMEM. */
int ps_checkpoint_write(ps_ckpt_folder *f, const ps_ckpt_meta *meta, const ps_ckpt_array *arrays,
                        size_t narrays, char *path_out, size_t cap, uint64_t *bytes_out,
                        ps_error *err);

/* ps_checkpoint_write with the shard's sparse tables too (at most
 * PS_CKPT_MAX_TABLES; none: the same file as ps_checkpoint_write's, format
 * 1). Every row is pulled through each table's scan on the calling thread,
 * which must own the tables for the time of the write; with
 * f->finite_only a NaN or inf in a row is PS_EDIVERGED ("table w holds a
 * non-finite value at key K"). PS_ESTATE when a scan gives another number
 * of rows than the table's rows said; PS_EINVAL for too many tables or a
 * row_floats out of range. */
int ps_checkpoint_write_tables(ps_ckpt_folder *f, const ps_ckpt_meta *meta,
                               const ps_ckpt_array *arrays, size_t narrays,
                               const ps_ckpt_table *tables, size_t ntables, char *path_out,
                               size_t cap, uint64_t *bytes_out, ps_error *err);

/* Checks every checkpoint of job/shard in f's folder, remembers the valid
 * ones as known, and loads the newest valid one into the arrays (names and
 * counts must match the file's), *meta and its per-rank state into
 * f->ranks (meta->ranks, meta->nranks); a file is checked whole before
 * anything of it is copied. Files that do not check out are skipped with a
 * one-line warning on log naming the file and the reason. A whole file
 * (its checksum holds) of another job or layout under these names refuses
 * the folder: PS_ECONFIG, nothing loaded or deleted, err like
 * "ckpt/: holds checkpoints of job "x" with 31 parameters, this job has 21:
 * move them away or set checkpoint.dir". Otherwise leftover temporary files
 * are removed. Returns 0 (the file in path_out), 1 when there is no valid
 * checkpoint (a fresh start; the folder may not exist), PS_EIO when the
 * folder cannot be read, PS_ENOMEM. */
int ps_checkpoint_load(ps_ckpt_folder *f, const char *job, uint32_t shard, uint64_t key_lo,
                       uint64_t key_hi, ps_ckpt_array *arrays, size_t narrays, ps_ckpt_meta *meta,
                       char *path_out, size_t cap, const ps_log *log, ps_error *err);

/* ps_checkpoint_load with the shard's sparse tables: their number and each
 * one's name, dim, row_floats and layout are part of the layout a file
 * must match (another one refuses the folder, PS_ECONFIG, as for the
 * arrays; a format-1 file holds no table). Once a file is chosen every
 * table is cleared and its rows go through restore; should the file fail
 * while being loaded (it changed under us, or a restore refused a row: a
 * warning), the tables are cleared again and the next valid file is
 * tried. */
int ps_checkpoint_load_tables(ps_ckpt_folder *f, const char *job, uint32_t shard, uint64_t key_lo,
                              uint64_t key_hi, ps_ckpt_array *arrays, size_t narrays,
                              const ps_ckpt_table *tables, size_t ntables, ps_ckpt_meta *meta,
                              char *path_out, size_t cap, const ps_log *log, ps_error *err);

/* Checks one checkpoint file against job/shard/range and the arrays' names
 * and counts without loading it: 0; PS_EIO or PS_EPROTO when it is damaged
 * (truncated, torn, checksum); PS_EJOB when it is whole but of another job,
 * shard or layout. err says what is wrong. */
int ps_checkpoint_verify(const char *path, const char *job, uint32_t shard, uint64_t key_lo,
                         uint64_t key_hi, const ps_ckpt_array *arrays, size_t narrays,
                         ps_error *err);

/* ps_checkpoint_verify with the tables' layouts too. */
int ps_checkpoint_verify_tables(const char *path, const char *job, uint32_t shard, uint64_t key_lo,
                                uint64_t key_hi, const ps_ckpt_array *arrays, size_t narrays,
                                const ps_ckpt_table *tables, size_t ntables, ps_error *err);

#endif
