/* report_limits.h — the sizes the report formats share: the plan's and the
 * summary's names (report_plan.h, report_summary.h) and the largest JSON
 * document either reader takes. Each matches a limit of the job or the wire
 * (worker/output.c asserts it), without including them: psrun links none.
 * Also the one rule psd, psworker and psrun share for naming a rank whose
 * pushes were mostly dropped. */
#ifndef PS_REPORT_LIMITS_H
#define PS_REPORT_LIMITS_H

#define PS_REPORT_NAME_MAX 64         /* bytes of a job name, NUL included (PS_JOB_NAME_MAX) */
#define PS_REPORT_WORD_MAX 32         /* bytes of a mode, model, metric or setting name */
#define PS_REPORT_JSON_MAX (1u << 20) /* a plan or summary larger than this is refused */

#include <stdbool.h>
#include <stdint.h>

/* A sync rank more than this share (percent) of the rounds that closed
 * while it trained closed without its push (sync with backup_workers: its
 * pushes came too late and were dropped, or it skipped the rounds that had
 * closed meanwhile) is named: in psd's log at its stop, in the summaries'
 * "dropped_ranks" and in psrun's last line. Most of its data did not train
 * the model. */
#define PS_REPORT_DROPPED_SHARE 50

/* True when more than the share of rounds (those closed while the rank
 * trained) went without its applied pushes. */
static inline bool ps_report_rank_mostly_dropped(uint64_t applied, uint64_t rounds)
{
    uint64_t without = rounds > applied ? rounds - applied : 0;
    return without > 0 &&
           (double)without * 100.0 > (double)rounds * (double)PS_REPORT_DROPPED_SHARE;
}

#endif
