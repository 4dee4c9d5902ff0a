/* report_limits.h — the sizes the report formats share: the plan's and the
 * summary's names (report_plan.h, report_summary.h) and the largest JSON
 * document either reader takes. Each matches a limit of the job or the wire
 * (worker/output.c asserts it), without including them: psrun links none. */
#ifndef PS_REPORT_LIMITS_H
#define PS_REPORT_LIMITS_H

#define PS_REPORT_NAME_MAX 64         /* bytes of a job name, NUL included (PS_JOB_NAME_MAX) */
#define PS_REPORT_WORD_MAX 32         /* bytes of a mode, model, metric or setting name */
#define PS_REPORT_JSON_MAX (1u << 20) /* a plan or summary larger than this is refused */

#endif
