/* report_progress.h — the progress stream psworker writes after every
 * training step (--progress-fd) and psrun reads from the pipe its workers
 * share: one line a step, written and read here only, so the two sides
 * cannot drift apart. libc only. */
#ifndef PS_REPORT_PROGRESS_H
#define PS_REPORT_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* psworker --progress-fd N writes one line after every training step:
 *
 *     progress RANK DONE TOTAL EPOCH LOSS\n
 *
 * RANK, DONE (steps done), TOTAL (steps of the whole run) and EPOCH (from 1)
 * are unsigned decimals; LOSS, the mean loss of the epoch so far, is printf
 * "%.6g" or one of nan, inf, -inf. Single spaces between fields. A line is
 * at most PS_REPORT_PROGRESS_MAX bytes with its '\n', less than PIPE_BUF,
 * so one write() per line never interleaves with another worker's on a
 * shared pipe. A reader skips and counts lines that are too long or do not
 * parse; it never cuts one and reads the rest as a line. */

#define PS_REPORT_PROGRESS_MAX 128

typedef struct ps_report_progress {
    uint32_t rank;
    uint64_t done, total;
    uint32_t epoch;
    double loss;
} ps_report_progress;

/* Formats p as one line, '\n' included, into buf. Returns its length, or
 * PS_EINVAL when it does not fit in cap bytes (NUL included). */
int ps_report_progress_format(const ps_report_progress *p, char *buf, size_t cap);

/* Parses one line without its '\n' into *p. PS_EINVAL when it is not a
 * progress line as above (*p is then unchanged). */
int ps_report_progress_parse(const char *line, ps_report_progress *p);

/* Writes p to fd as one line with one write (EINTR retried). PS_EIO when
 * the write failed, e.g. EPIPE: the reader is gone and the caller should
 * stop writing. */
int ps_report_progress_write(int fd, const ps_report_progress *p);

/* Assembles lines from the bytes of a stream, whatever the chunks. */
typedef struct ps_report_progress_reader {
    char line[PS_REPORT_PROGRESS_MAX];
    size_t len;
    bool overlong;     /* the current line is past the limit: skipped to its '\n' */
    uint64_t rejected; /* lines skipped so far */
} ps_report_progress_reader;

/* A reader that has seen nothing yet. */
void ps_report_progress_reader_init(ps_report_progress_reader *r);

/* Feeds n bytes; each whole line that parses goes to on_line(arg, &p),
 * each that does not is counted in r->rejected. Returns the number of lines
 * rejected in these bytes. A line left unfinished waits for the next bytes. */
size_t ps_report_progress_feed(ps_report_progress_reader *r, const char *bytes, size_t n,
                               void (*on_line)(void *arg, const ps_report_progress *p), void *arg);

#endif
