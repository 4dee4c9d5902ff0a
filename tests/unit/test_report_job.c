/* test_report_job.c — the job's summary psrun combines from its workers':
 * the loss weighed by each worker's samples, throughput and updates summed,
 * the rest (the AUC too) from the lowest rank, the version and the
 * unfinished ranks from the last to finish, a curve per worker. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdio.h>

#include "report_job.h"

START_TEST(job_summary_weighs_the_workers_losses_by_their_samples)
{
    static ps_report_summary job, w0, w1;
    ps_report_job_sum sum;
    ps_report_job_begin(&job, &sum);
    ck_assert_int_eq(ps_report_job_end(&job, &sum, "j", "sync", 2, 1.0), PS_EINVAL);
    ps_report_summary_init(&w0);
    snprintf(w0.metric_name, sizeof w0.metric_name, "accuracy");
    snprintf(w0.loss_name, sizeof w0.loss_name, "log_loss");
    w0.rank = 0;
    w0.final_loss = 1.0;
    w0.train_samples = 100;
    w0.samples_per_s = 1000.0;
    w0.updates = 10;
    w0.has_test = true;
    w0.test_metric = 0.9;
    w0.has_auc = true;
    w0.test_auc = 0.95;
    w0.version = 42;
    w1 = w0;
    w1.rank = 1;
    w1.final_loss = 3.0;
    w1.train_samples = 300;
    w1.samples_per_s = NAN; /* not known: left out of the sum */
    w1.test_metric = 0.5;
    w1.test_auc = 0.6;
    const double loss[2] = {2.0, 1.0}, metric[2] = {0.8, 0.9}, auc0[2] = {0.9, 0.95},
                 auc1[2] = {0.55, 0.6};
    ck_assert_int_eq(ps_report_summary_curve_add(&w0, 0, 1, 2, loss, metric, auc0), 0);
    ck_assert_int_eq(ps_report_summary_curve_add(&w1, 1, 1, 2, loss, metric, auc1), 0);
    ck_assert_int_eq(ps_report_job_add(&job, &sum, &w0), 0);
    ck_assert_int_eq(ps_report_job_add(&job, &sum, &w1), 0);
    ck_assert_int_eq(ps_report_job_end(&job, &sum, "digits", "ssp", 2, 7.5), 0);
    ck_assert_double_eq_tol(job.final_loss, 2.5, 1e-12); /* (1 * 100 + 3 * 300) / 400 */
    ck_assert_double_eq(job.samples_per_s, 1000.0);
    ck_assert_uint_eq(job.updates, 20);
    ck_assert_double_eq(job.test_metric, 0.9); /* the lowest rank's */
    ck_assert(job.has_auc);
    ck_assert_double_eq(job.test_auc, 0.95);
    ck_assert_uint_eq(job.version, 42);
    ck_assert_str_eq(job.job, "digits");
    ck_assert_str_eq(job.mode, "ssp");
    ck_assert_int_eq(job.rank, -1);
    ck_assert_double_eq(job.wall_s, 7.5);
    ck_assert_uint_eq(job.ncurves, 2);
    ck_assert_uint_eq(job.curves[1].rank, 1);
    ck_assert_double_eq(job.curves[1].test_auc[1], 0.6); /* each worker's own curve */
    ck_assert_double_eq(job.curves[0].test_auc[0], 0.9);
    ck_assert_ptr_ne(job.curves, w0.curves); /* the job's own copies */
    ps_report_summary_fini(&w0);
    ps_report_summary_fini(&w1);
    ps_report_summary_fini(&job);
}
END_TEST

START_TEST(job_summary_takes_version_and_unfinished_ranks_from_the_last_to_finish)
{
    /* rank 0 finished while rank 1 was away (evicted); rank 1 came back,
     * trained alone and finished at a later version: nothing is unfinished */
    static ps_report_summary job, w0, w1;
    ps_report_job_sum sum;
    ps_report_job_begin(&job, &sum);
    ps_report_summary_init(&w0);
    snprintf(w0.metric_name, sizeof w0.metric_name, "accuracy");
    snprintf(w0.loss_name, sizeof w0.loss_name, "log_loss");
    w0.rank = 0;
    w0.train_samples = 10;
    w0.version = 100;
    w0.nunfinished = 1;
    w0.unfinished[0] = (ps_report_unfinished){1, 40, 90};
    w1 = w0;
    w1.rank = 1;
    w1.version = 130;
    w1.nunfinished = 0;
    ck_assert_int_eq(ps_report_job_add(&job, &sum, &w0), 0);
    ck_assert_uint_eq(job.nunfinished, 1);
    ck_assert_int_eq(ps_report_job_add(&job, &sum, &w1), 0);
    ck_assert_int_eq(ps_report_job_end(&job, &sum, "digits", "ssp", 2, 1.0), 0);
    ck_assert_uint_eq(job.version, 130);
    ck_assert_uint_eq(job.nunfinished, 0);
    /* the other way round: the one that knows the most is still the last */
    ps_report_job_begin(&job, &sum);
    w1.version = 90;
    ck_assert_int_eq(ps_report_job_add(&job, &sum, &w0), 0);
    ck_assert_int_eq(ps_report_job_add(&job, &sum, &w1), 0);
    ck_assert_uint_eq(job.version, 100);
    ck_assert_uint_eq(job.nunfinished, 1);
    ck_assert_uint_eq(job.unfinished[0].pushes, 40);
    ps_report_summary_fini(&job);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("report_job");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, job_summary_weighs_the_workers_losses_by_their_samples);
    tcase_add_test(tc, job_summary_takes_version_and_unfinished_ranks_from_the_last_to_finish);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
