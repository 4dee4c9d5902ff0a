/* report_job.c — the job's summary combined from its workers', as
 * report_job.h describes: the lowest rank's summary copied whole, the sums
 * kept beside it until the end. */
#include "report_job.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void ps_report_job_begin(ps_report_summary *job, ps_report_job_sum *sum)
{
    ps_report_summary_init(job);
    memset(sum, 0, sizeof *sum);
}

int ps_report_job_add(ps_report_summary *job, ps_report_job_sum *sum, const ps_report_summary *w)
{
    if (sum->added == 0) {
        ps_report_curve *curves = job->curves;
        uint32_t ncurves = job->ncurves;
        *job = *w; /* the lowest rank's figures; the curves stay the job's own */
        job->curves = curves;
        job->ncurves = ncurves;
    } else if (w->version > job->version) {
        job->version = w->version;
        job->nunfinished = w->nunfinished;
        memcpy(job->unfinished, w->unfinished, w->nunfinished * sizeof *w->unfinished);
    }
    for (uint32_t k = 0; k < w->ncurves; k++) {
        const ps_report_curve *c = &w->curves[k];
        int rc = ps_report_summary_curve_add(job, c->rank, c->every, c->n, c->train_loss,
                                             c->test_metric, c->test_auc);
        if (rc != 0)
            return rc;
    }
    double n = w->train_samples > 0 ? (double)w->train_samples : 1.0;
    sum->loss_sum += w->final_loss * n;
    sum->samples_sum += n;
    if (isfinite(w->samples_per_s))
        sum->throughput += w->samples_per_s;
    sum->updates += w->updates;
    sum->batches += w->batches;
    sum->added++;
    return 0;
}

int ps_report_job_end(ps_report_summary *job, const ps_report_job_sum *sum, const char *name,
                      const char *mode, uint32_t workers, double wall_s)
{
    if (sum->added == 0)
        return PS_EINVAL;
    snprintf(job->job, sizeof job->job, "%s", name);
    snprintf(job->mode, sizeof job->mode, "%s", mode);
    job->final_loss = sum->loss_sum / sum->samples_sum;
    job->wall_s = wall_s;
    job->samples_per_s = sum->throughput;
    job->updates = sum->updates;
    job->batches = sum->batches;
    job->workers = workers;
    job->rank = -1;
    return 0;
}
