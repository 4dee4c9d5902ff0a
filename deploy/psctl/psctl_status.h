/* psctl_status.h — what psctl status and top show: each shard's STATUS_REPLY
 * (version, live workers, size, mode, staleness) and the job's ranks, their
 * rows from every shard that answered merged into one per rank, as tables
 * for people or as one JSON object. */
#ifndef PS_PSCTL_STATUS_H
#define PS_PSCTL_STATUS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "job.h"
#include "psctl_ask.h"

typedef struct ps_psctl_status ps_psctl_status;

/* An empty status of job (which the caller keeps alive and unchanged while
 * the status lives). NULL when memory ran out. */
ps_psctl_status *ps_psctl_status_new(const ps_job *job);

/* Asks shard `only` (every shard when only < 0) for its status, waiting up
 * to timeout_ms, and replaces what s held. A rank's figures merge the
 * shards that answered: pushes, dropped and duplicates summed; clock,
 * evictions and staleness_max the highest; last seen the most recent; loss
 * and samples/s from the shard that heard from the rank last; state the
 * most alive (live, done, left, evicted, vacant in that order); staleness
 * mean over all its pushes. Returns 0 (see ps_psctl_status_missing for the
 * shards that did not answer), PS_EINTR (a signal cut the wait short),
 * PS_ENOMEM. */
int ps_psctl_status_collect(ps_psctl_status *s, void *zctx, const ps_psctl_keys *keys, int only,
                            int timeout_ms);

/* How many of the shards asked did not answer. */
uint32_t ps_psctl_status_missing(const ps_psctl_status *s);

/* One line per shard that did not answer, "psctl: shard I at ENDPOINT: why". */
void ps_psctl_status_errors_write(const ps_psctl_status *s, FILE *out);

/* The shard table, then (when a shard sent its worker table) a blank line
 * and the worker table. A shard that did not answer is left out, or with
 * inline_missing shown as a row saying why. Nothing at all when no shard
 * answered and inline_missing is false, so an error alone stays alone. */
void ps_psctl_status_table_write(const ps_psctl_status *s, bool inline_missing, FILE *out);

/* One JSON object, {"job", "shards": [...], "workers": [...]}
 * (docs/operations.md#psctl-status-and-top, psctl --help), on one line or pretty, and a newline. PS_ENOMEM, PS_EIO. */
int ps_psctl_status_json_write(const ps_psctl_status *s, bool pretty, FILE *out);

/* Frees s and sets *sp to NULL; a NULL *sp is fine. */
void ps_psctl_status_destroy(ps_psctl_status **sp);

#endif
