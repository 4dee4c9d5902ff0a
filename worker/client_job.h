/* client_job.h — a client's options from a job file, as psworker opens its
 * client: libpsworker's ps_client_open_job and the training loop
 * (trainer.c) both build them here, so the two cannot differ. Internal,
 * never installed. */
#ifndef PS_CLIENT_JOB_H
#define PS_CLIENT_JOB_H

#include "job.h"
#include "msg.h" /* PS_MAX_SHARDS */
#include "psworker.h"

/* Fills *o (after ps_client_opts_init) from the loaded job: its name and
 * servers (pointed to in servers, an array of PS_MAX_SHARDS the caller
 * keeps while o is used), heartbeat interval, a request's timeout (the
 * job's heartbeat.deadline_ms), shared memory, CURVE key files and push
 * compression. Rank -1 (any free rank), no log function. */
void ps_client_opts_from_job(const ps_job *job, const char **servers, ps_client_opts *o);

#endif
