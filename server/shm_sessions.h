/* shm_sessions.h — shared memory with the workers on psd's host (common/
 * shm.h, proto/ps.proto "shared memory"), psd's side, for one shard: a
 * segment per rank, made at the WELCOME of a worker whose HELLO names this
 * host and freed once that worker is gone. A push's gradient is applied
 * straight from the segment and a pull's θ copied into it, so only small
 * headers cross the socket; the engine sees ordinary F32 pushes and pulls.
 * Belongs to the thread that runs the server. */
#ifndef PS_SHM_SESSIONS_H
#define PS_SHM_SESSIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "error.h"
#include "job.h"
#include "log.h"
#include "msg.h"

typedef struct ps_shm_sessions ps_shm_sessions;

/* The sessions of shard `shard`: none are ever made unless the job has
 * shared_memory and this host has an id (requests that say SHM_F32 are
 * then refused). engine tells which workers live and the shard's size;
 * engine and log must outlive the sessions. NULL and err filled
 * (PS_ENOMEM) on failure. */
ps_shm_sessions *ps_shm_sessions_new(const ps_job *job, uint32_t shard, const ps_engine *engine,
                                     const ps_log *log, ps_error *err);

/* Frees the segments of workers that left or were evicted, at most once a
 * second (now_ms: ps_clock_ms()). */
void ps_shm_sessions_sweep(ps_shm_sessions *x, uint64_t now_ms);

/* A WELCOME (reply) to hello: when hello comes from this host, a segment
 * for the rank (kept for a retried HELLO) is named in reply (shm_pid,
 * shm_fd, shm_bytes, shm_token). A segment that cannot be made is said
 * once; the worker then goes over the socket. */
void ps_shm_sessions_welcome(ps_shm_sessions *x, const ps_msg *hello, ps_msg *reply);

/* A request that says its payload is in shared memory, made ordinary: a
 * PUSH's gradient becomes a pointer into the worker's segment; a PULL (or
 * a PUSH with a riding pull) that asks for its answer there is
 * remembered. 0, or PS_EPAYLOAD with err filled (the engine then refuses
 * the request). */
int ps_shm_sessions_request(ps_shm_sessions *x, const char *job_name, ps_msg *m, ps_error *err);

/* A PULL_REPLY (payload: θ's keys) of the whole shard to the newest pull
 * that asked for shared memory, answered the first time: θ is copied into
 * the segment, reply says SHM_F32 and carries no frame; true. False when
 * the reply goes out as it is (a pull of part of the shard does). */
bool ps_shm_sessions_pull_reply(ps_shm_sessions *x, ps_msg *reply, const void *payload);

/* Frees every segment and the sessions; sets *xp to NULL; NULL is fine. */
void ps_shm_sessions_destroy(ps_shm_sessions **xp);

#endif
