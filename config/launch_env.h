/* launch_env.h — what the engine that starts psd and psworker says in the
 * environment: a worker's rank, a server's shard, and the servers' endpoints
 * (docs/deployment.md#ranks-shards-and-endpoints-from-the-environment).
 *
 * Rank, when psworker has no --rank (first set wins):
 *   PSD_RANK, SLURM_PROCID, JOB_COMPLETION_INDEX (Kubernetes Indexed Job),
 *   TF_CONFIG's task (type worker: index; type chief: 0, and with a chief in
 *   cluster worker i is rank i + 1).
 * Shard, when psd has no --shard (first set wins):
 *   PSD_SHARD, SLURM_PROCID, the ordinal of $HOSTNAME (its trailing -N) when
 *   PSD_SHARD_FROM_HOSTNAME=1 (StatefulSet), TF_CONFIG's task of type ps.
 * Endpoints (ps_launch_servers, run by the job loader): --servers (which
 *   psd, psworker and psctl put in PSD_SERVERS), else PSD_SERVERS, else
 *   TF_CONFIG's cluster.ps, else the job file's servers.
 * Every refusal is one line naming the variable and its value; PS_ECONFIG. */
#ifndef PS_LAUNCH_ENV_H
#define PS_LAUNCH_ENV_H

#include "error.h"
#include "job.h"

#include <stddef.h>

/* The rank the environment gives a worker of job: *rank >= 0 and the
 * variable's name in from (cap bytes), or *rank -1 when no variable is set
 * (or PSD_RANK=-1: any free rank). PS_ECONFIG with one line in err when a
 * value is not a number or not below job->workers, e.g. "SLURM_PROCID=5
 * gives rank 5, but the job has 4 workers". */
int ps_launch_rank(const ps_job *job, int *rank, char *from, size_t cap, ps_error *err);

/* The shard the environment gives psd, as ps_launch_rank: *shard -1 when
 * none is set (psd then serves shard 0). */
int ps_launch_shard(const ps_job *job, int *shard, char *from, size_t cap, ps_error *err);

/* Run by the job loader once servers is read: PSD_SERVERS (comma-separated
 * endpoints), else TF_CONFIG's cluster.ps (each "host:port" as
 * tcp://host:port), replaces job->servers; with TF_CONFIG set, its cluster's
 * chief and worker entries must number job->workers. */
int ps_launch_servers(ps_job *job, ps_error *err);

/* The namespace {namespace} in a servers pattern stands for: $PSD_NAMESPACE,
 * else $POD_NAMESPACE; NULL when neither is set (or both are empty). */
const char *ps_launch_namespace(void);

/* The address psd binds for its endpoint ep: ep itself for ipc:// and for a
 * tcp host that is an IP literal, a star, or localhost; tcp://STAR:PORT (STAR
 * being the star that means every interface) for a DNS
 * name (psd-0.psd.ns.svc), which names this host to others but is no
 * interface to bind. */
void ps_launch_bind_endpoint(const char *ep, char *out, size_t cap);

#endif
