/* checkpointer.h — when and how psd checkpoints a shard: the newest valid
 * checkpoint is loaded at start; every checkpoint.every_seconds (and when
 * psctl asks) θ and the optimizer state are copied into a snapshot buffer
 * allocated once — the only pause serving sees — and a writer thread puts
 * the snapshot on disk (checkpoint.h) while serving goes on; on SIGTERM a
 * last checkpoint is written before psd exits. Driven from the server's
 * thread, which owns the engine. A shard with sparse tables writes its
 * checkpoints on that thread instead (ps_checkpointer_new_tables). */
#ifndef PS_CHECKPOINTER_H
#define PS_CHECKPOINTER_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "error.h"
#include "job.h"
#include "log.h"
#include "table.h"

typedef struct ps_checkpointer ps_checkpointer;

/* A checkpointer for the engine's shard, or NULL in *out when the job has
 * no checkpoint section (not an error). Creates the folder when missing and
 * checks that it can be written (a test file made and removed), loads the
 * newest valid checkpoint into the engine (logged: "checkpoint loaded: ...";
 * corrupt ones are skipped with a warning) and starts the writer thread.
 * With on_divergence: stop, a snapshot holding a NaN or inf is never
 * written. PS_ENOMEM; PS_EIO (the folder cannot be created, written or
 * read; err names checkpoint.dir and the OS error); PS_ECONFIG (the folder
 * holds whole checkpoints of another job or layout under this job's names:
 * nothing is loaded or deleted), with err filled. */
int ps_checkpointer_new(const ps_job *job, uint32_t shard, ps_engine *engine, const ps_log *log,
                        ps_checkpointer **out, ps_error *err);

/* As ps_checkpointer_new, for a shard with sparse tables too (at most
 * PS_CKPT_MAX_TABLES, owned by the caller and used by the server's thread
 * alone): the newest checkpoint is loaded into them as well (a folder of
 * checkpoints with another table layout is refused, PS_ECONFIG), and every
 * checkpoint holds their live rows. ntables 0 is ps_checkpointer_new;
 * PS_EINVAL for too many tables.
 * Such a checkpoint is written on the thread that calls
 * ps_checkpointer_tick or ps_checkpointer_final, rows read straight from
 * the tables with no snapshot, and serving waits for it: a snapshot of GBs
 * of rows would double the memory they take (a table's budget is 1.3 times
 * its rows' bytes), and a copy-on-write fork would copy every page the
 * engine writes meanwhile, in a process with ZeroMQ's threads. The stall
 * is the time to write the rows and fsync them, about 1.6 s per GB of
 * checkpoint (0.6 s for 16 M rows of dim 1 under adagrad, 384 MB, on a
 * 2-core VM; tests/bench/table_bench.c measures it), and the line
 * "checkpoint written" logs it each time. */
int ps_checkpointer_new_tables(const ps_job *job, uint32_t shard, ps_engine *engine,
                               ps_table *const *tables, size_t ntables, const ps_log *log,
                               ps_checkpointer **out, ps_error *err);

/* Starts a checkpoint when one is due or was asked for and the writer is
 * free; logs each finished one. Call every loop turn with ps_clock_ms(). */
void ps_checkpointer_tick(ps_checkpointer *c, uint64_t now_ms);

/* Asks for a checkpoint as soon as the writer is free (psctl checkpoint). */
void ps_checkpointer_request(ps_checkpointer *c);

/* How many checkpoints were written so far, and the path of the last one
 * ("" before the first). */
uint64_t ps_checkpointer_written(const ps_checkpointer *c, const char **last_path);

/* How many checkpoints have finished so far, written, failed or skipped,
 * and how the last one ended: *status 0 and *text its path; PS_EIO and
 * *text the write's error; PS_EDIVERGED and *text why it was skipped (a NaN
 * or inf). Before the first: 0 and "". Either pointer may be NULL. */
uint64_t ps_checkpointer_finished(const ps_checkpointer *c, int *status, const char **text);

/* The last checkpoint written, for /metrics: when it was finished
 * (ps_clock_ms; 0 before the first this process wrote), its size on disk
 * and how long the write took. Zeros when c is NULL. */
typedef struct ps_checkpointer_last {
    uint64_t written_ms, bytes, write_ms;
} ps_checkpointer_last;
void ps_checkpointer_last_get(const ps_checkpointer *c, ps_checkpointer_last *out);

/* Waits for a write in progress, then writes the state as it is now in
 * this thread (SIGTERM). Returns 0, PS_EIO or PS_EDIVERGED (not written:
 * a NaN or inf), logged as well. */
int ps_checkpointer_final(ps_checkpointer *c);

/* Stops the writer thread (after the write in progress), frees everything
 * and sets *cp to NULL; a NULL *cp is fine. */
void ps_checkpointer_destroy(ps_checkpointer **cp);

#endif
