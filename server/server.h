/* server.h — the ZeroMQ side of psd: a ROUTER socket bound to the shard's
 * endpoint, received messages decoded and handed to the engine, its replies
 * sent back. The socket belongs to the thread that calls ps_server_run;
 * create the server in that thread or hand it over through a memory barrier
 * (pthread_create is one), and use it from one thread at a time. */
#ifndef PS_SERVER_H
#define PS_SERVER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "error.h"
#include "job.h"
#include "log.h"

typedef struct ps_server ps_server;

/* A server for shard `shard` of the job: its own ZeroMQ context, a ROUTER
 * bound to job->servers[shard] (frames capped at the shard's size plus
 * header slack), and an engine (see ps_engine_new). Logs one line
 * "shard 0/1 listening on tcp://... (31 params, sync, 2 workers)" once bound.
 * log (not owned, may be NULL) must outlive the server. Call ps_malloc_tune
 * first in a program. Returns NULL and fills err: PS_EZMQ ("cannot bind
 * tcp://...: Address already in use"), or the engine's codes. */
ps_server *ps_server_new(const ps_job *job, uint32_t shard, const ps_log *log, ps_error *err);

/* Serves requests until *stop or *reload (reload may be NULL) becomes
 * non-zero (checked at least every 100 ms, so a signal handler can set
 * them; *stop may hold the signal's number, which the workers are told).
 * Workers silent past heartbeat.timeout_ms are evicted only after what
 * arrived was read, and not for silence while psd itself was stalled (its
 * loop away far longer than a turn takes: logged). Under systemd
 * (NOTIFY_SOCKET) it pings the watchdog, keeps STATUS= current and sends
 * STOPPING=1 when stopped. When it stops (signal, abort, job complete) every
 * live worker is told with an ERROR (PS_ESTOPPED, PS_EABORTED, PS_ECOMPLETE:
 * ps_engine_stop), requests get that answer for a short grace period, and
 * a final checkpoint is written. Logs a summary line when stopped. Returns
 * 0 when stopped or asked to reload (the caller tells which, reloads and
 * runs it again), PS_EABORTED when the job was stopped (err says why), or
 * PS_EZMQ (err says why) when the socket fails. */
int ps_server_run(ps_server *s, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload,
                  ps_error *err);

/* With on, ps_server_run returns (as if stopped) once the job is complete
 * (ps_engine_complete: no worker live, every rank's data finished), or
 * once no worker was live for heartbeat.incomplete_wait_ms while some
 * rank's data was not finished: the job is then incomplete
 * (ps_server_incomplete; STOPPING=1 and the workers' ERROR say which ranks
 * and how far they got). psrun runs psd this way, so the job ends by
 * itself. */
void ps_server_exit_when_done(ps_server *s, bool on);

/* True when ps_server_run stopped the job as incomplete (above). */
bool ps_server_incomplete(const ps_server *s);

/* Applies the reloadable settings of job (the learning rate) and says
 * RELOADING=1 then READY=1 to systemd. Settings that need a restart
 * (endpoints, model, mode, workers) are compared and each change is logged
 * as ignored. */
void ps_server_reload(ps_server *s, const ps_job *job);

/* The engine's counters (call from the thread that runs the server, or
 * after ps_server_run returned). */
void ps_server_stats_get(const ps_server *s, ps_engine_stats *out);

/* Closes the socket (linger 0) and the context, frees the server and sets
 * *sp to NULL; a NULL *sp is fine. */
void ps_server_destroy(ps_server **sp);

#endif
