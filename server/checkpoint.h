/* checkpoint.h — a shard's state on disk: θ, the optimizer's arrays and the
 * counters needed to go on (model version, update count), in one file with a
 * checksum. Written to a temporary file, fsync'd, renamed and the folder
 * fsync'd, so a crash leaves the previous checkpoint or the new one, never a
 * mix; a file that does not check out (truncated, bit-flipped, another job)
 * is skipped on load with a warning. Files are named
 * <job>-shard<i>-<version>.ckpt in the checkpoint folder; the newest `keep`
 * are kept. */
#ifndef PS_CHECKPOINT_H
#define PS_CHECKPOINT_H

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

/* What identifies the shard and where it stood. */
typedef struct ps_ckpt_meta {
    char job[PS_JOB_NAME_MAX];
    uint32_t shard;
    uint64_t key_lo, key_hi;
    uint64_t version;    /* model version */
    uint64_t updates;    /* optimizer steps taken (schedules, adam's bias correction) */
    uint64_t created_ms; /* wall clock, ms since the epoch */
} ps_ckpt_meta;

/* Writes meta and the arrays to dir (created if missing) as one checkpoint,
 * atomically, then deletes the oldest ones of this job and shard beyond
 * keep. *path_out (when not NULL, PS_PATH_MAX-ish cap bytes) gets the file
 * written and *bytes_out its size. PS_EIO with err naming the file. */
int ps_checkpoint_write(const char *dir, const ps_ckpt_meta *meta, const ps_ckpt_array *arrays,
                        size_t narrays, uint32_t keep, char *path_out, size_t cap,
                        uint64_t *bytes_out, ps_error *err);

/* Loads the newest valid checkpoint of job/shard in dir into the arrays
 * (names and counts must match the file's) and *meta; a file is checked
 * whole before anything of it is copied, so the arrays are only written
 * from a valid file. Files that do not check out are skipped with a
 * one-line warning on log naming the file and the reason; leftover
 * temporary files are removed. Returns 0 (the file in path_out), 1 when
 * there is no valid checkpoint (a fresh start, dir may not exist), or
 * PS_EIO when the folder cannot be read. */
int ps_checkpoint_load(const char *dir, const char *job, uint32_t shard, uint64_t key_lo,
                       uint64_t key_hi, ps_ckpt_array *arrays, size_t narrays, ps_ckpt_meta *meta,
                       char *path_out, size_t cap, const ps_log *log, ps_error *err);

/* Checks one checkpoint file against the arrays' names and counts without
 * loading it: 0, or PS_EIO/PS_EPROTO with err saying what is wrong. */
int ps_checkpoint_verify(const char *path, const char *job, uint32_t shard, uint64_t key_lo,
                         uint64_t key_hi, const ps_ckpt_array *arrays, size_t narrays,
                         ps_error *err);

#endif
