/* report_plan.h — the plan of a job, as `psworker --config JOB --describe`
 * writes it and psrun reads it before it starts anything: written and read
 * here only, so the two sides cannot drift apart. JSON through json-c;
 * psrun links this module, error and json-c, nothing else of psd. */
#ifndef PS_REPORT_PLAN_H
#define PS_REPORT_PLAN_H

#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "report_limits.h"

#define PS_REPORT_ENDPOINT_MAX 128  /* bytes of an endpoint (PS_ENDPOINT_MAX) */
#define PS_REPORT_SERVERS_MAX  256  /* endpoints in a plan (PS_MAX_SHARDS) */
#define PS_REPORT_PATH_MAX     1024 /* bytes of the output folder (PS_PATH_MAX) */
#define PS_REPORT_COMMAND_MAX  16   /* items of worker.command (PS_WORKER_ARGS_MAX) */

/* One JSON object on stdout (exit 0), every key always present:
 *   {"job": str, "mode": "sync"|"async"|"ssp", "workers": int,
 *    "servers": [endpoint, ...] (one per shard), "on_worker_loss":
 *    "continue"|"abort", "on_divergence": "stop"|"continue", "model": str,
 *    "features": int, "params": int, "epochs": int, "batch_size": int,
 *    "output": str ("" when none), "compression": str (the pushes' codec:
 *    "none", "fp16", "bf16", "int8", "topk"), "worker_command": [str, ...]
 *    (the job's worker.command, resolved; [] when psworker trains)}
 * A reader ignores keys it does not know, and takes a plan without
 * "worker_command" as one whose workers are psworker. A job-file error is no plan:
 * psworker writes its one-line error to stderr and exits 2. */

typedef struct ps_report_plan {
    char job[PS_REPORT_NAME_MAX];
    char mode[PS_REPORT_WORD_MAX];
    uint32_t workers;
    uint32_t nservers;
    char servers[PS_REPORT_SERVERS_MAX][PS_REPORT_ENDPOINT_MAX];
    char on_worker_loss[PS_REPORT_WORD_MAX];
    char on_divergence[PS_REPORT_WORD_MAX];
    char model[PS_REPORT_WORD_MAX];
    uint64_t features;
    uint64_t params;
    uint32_t epochs;
    uint32_t batch_size;
    char output[PS_REPORT_PATH_MAX];
    char compression[PS_REPORT_WORD_MAX];
    uint32_t ncommand; /* 0: the workers are psworker */
    char command[PS_REPORT_COMMAND_MAX][PS_REPORT_PATH_MAX];
} ps_report_plan;

/* Writes p as above (indented, '\n' at the end) to f. PS_EINVAL when a
 * count is out of range (no workers, no servers), PS_ENOMEM, PS_EIO. */
int ps_report_plan_write(FILE *f, const ps_report_plan *p);

/* Reads a plan from fd to its end (a pipe is fine) into *p. PS_EDATA with
 * "what: why" in err when it is not a plan (bad JSON, a key missing or of
 * the wrong type, a string too long, no workers or servers, more than
 * PS_REPORT_JSON_MAX bytes); PS_EIO when fd cannot be read. */
int ps_report_plan_read_fd(int fd, const char *what, ps_report_plan *p, ps_error *err);

#endif
