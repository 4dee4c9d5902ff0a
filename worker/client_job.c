/* client_job.c — a client opened from a job file (ps_client_open_job), with
 * the options psworker's training loop opens its client with
 * (ps_client_opts_from_job). */
#include "client_job.h"

#include "compress.h"
#include "launch_env.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ps_client_opts_from_job(const ps_job *job, const char **servers, ps_client_opts *o)
{
    ps_client_opts_init(o);
    for (uint32_t i = 0; i < job->nservers && i < PS_MAX_SHARDS; i++)
        servers[i] = job->servers[i];
    o->job = job->name;
    o->servers = servers;
    o->num_servers = job->nservers;
    o->rank = -1;
    o->timeout_ms = (int)job->heartbeat.deadline_ms;
    o->heartbeat_ms = (int)job->heartbeat.interval_ms;
    o->socket_only = !job->shared_memory;
    o->curve_server_key_file = job->security.curve ? job->security.server_public_key : NULL;
    o->curve_secret_key_file = job->security.curve ? job->security.client_secret_key : NULL;
    o->push_compression = ps_compress_ops_get(job->compression.push)->name;
    o->push_topk_ratio = job->compression.topk_ratio;
    o->push_error_feedback = job->compression.error_feedback;
}

int ps_client_open_job(const char *job_path, int rank, ps_client **out, char *errbuf,
                       size_t errbuf_len)
{
    char why[PS_ERROR_MSG_MAX] = "";
    int rc;
    if (out != NULL)
        *out = NULL;
    if (errbuf != NULL && errbuf_len > 0)
        errbuf[0] = '\0';
    if (job_path == NULL || out == NULL) {
        snprintf(why, sizeof why, "no job file or no place for the client");
        rc = PS_EINVAL;
        goto report;
    }
    ps_job *job = calloc(1, sizeof *job);
    if (job == NULL) {
        snprintf(why, sizeof why, "%s: out of memory", job_path);
        rc = PS_ENOMEM;
        goto report;
    }
    ps_error err = {0};
    if ((rc = ps_job_load(job_path, job, &err)) != 0) {
        /* the loader's sentences start with the path; make sure of it */
        if (strstr(err.msg, job_path) != NULL)
            ps_strlcpy(why, err.msg, sizeof why);
        else
            snprintf(why, sizeof why, "%.200s: %.300s", job_path, err.msg);
        free(job);
        goto report;
    }
    /* rank -1: the environment's (launch_env.h: PSD_RANK, SLURM_PROCID, ...) */
    if (rank == -1 && ps_launch_rank(job, &rank, NULL, 0, &err) != 0) {
        ps_strlcpy(why, err.msg, sizeof why);
        free(job);
        rc = PS_EINVAL;
        goto report;
    }
    const char *servers[PS_MAX_SHARDS];
    ps_client_opts o;
    ps_client_opts_from_job(job, servers, &o);
    o.rank = rank;
    rc = ps_client_open(&o, out, errbuf, errbuf_len);
    free(job);
    return rc;
report:
    if (errbuf != NULL && errbuf_len > 0)
        ps_strlcpy(errbuf, why, errbuf_len);
    return rc;
}
