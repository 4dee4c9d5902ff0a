/* test_jobs.h — the small job the server-side unit suites build in code:
 * logistic regression over 3 features (θ of 4 keys), zeros, sgd at 0.5,
 * one shard on 127.0.0.1 at port (7070 when 0), quiet logs. */
#ifndef PS_TEST_JOBS_H
#define PS_TEST_JOBS_H

#include <stdio.h>
#include <string.h>

#include "job.h"
#include "util.h"

static inline void ps_test_job_logistic(ps_job *job, const char *name, ps_mode mode,
                                        uint32_t workers, int port)
{
    memset(job, 0, sizeof *job);
    ps_strlcpy(job->name, name, sizeof job->name);
    job->mode = mode;
    job->workers = workers;
    job->nservers = 1;
    snprintf(job->servers[0], sizeof job->servers[0], "tcp://127.0.0.1:%d",
             port != 0 ? port : 7070);
    job->model.type = PS_MODEL_LOGISTIC;
    job->model.features = 3;
    job->model.init_scheme = PS_INIT_ZEROS;
    job->optimizer.type = PS_OPTIM_SGD;
    job->optimizer.lr = 0.5;
    job->optimizer.schedule = PS_SCHEDULE_CONSTANT;
    job->log_level = PS_LOG_ERROR;
}

#endif
