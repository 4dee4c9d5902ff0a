/* report_job.h — the job's summary from its workers' (psrun): begin, add
 * each worker's that finished in rank order, end. The final loss is the
 * samples-weighted mean of the workers' losses over their shards (the loss
 * over the whole training set: a NaN stays NaN), samples/s and updates are
 * their sums, the test figures (the AUC too) and psd's are the first added
 * (the lowest rank that finished), the version and the unfinished ranks
 * those of the highest version (the worker that finished last, which knew
 * the most: a rank that came back late and finished is no longer
 * unfinished), and every worker adds its curve. */
#ifndef PS_REPORT_JOB_H
#define PS_REPORT_JOB_H

#include <stdint.h>

#include "report_summary.h"

/* The running sums between begin and end. */
typedef struct ps_report_job_sum {
    double loss_sum, samples_sum, throughput;
    uint64_t updates, batches;
    uint32_t added;
} ps_report_job_sum;

/* An empty job summary (ps_report_summary_init) and sums at zero; the caller
 * frees job with ps_report_summary_fini, whatever follows. */
void ps_report_job_begin(ps_report_summary *job, ps_report_job_sum *sum);

/* Adds worker summary w to job (w is left as it was). PS_ENOMEM (job keeps
 * what it had), PS_EINVAL when its curves do not fit. */
int ps_report_job_add(ps_report_summary *job, ps_report_job_sum *sum, const ps_report_summary *w);

/* Sets the job's own figures: its name, mode, workers, psrun's wall time,
 * rank -1. PS_EINVAL when no worker was added. */
int ps_report_job_end(ps_report_summary *job, const ps_report_job_sum *sum, const char *name,
                      const char *mode, uint32_t workers, double wall_s);

#endif
