/* progress.h — what a worker tells about its progress as it trains: the
 * progress line of report_progress.h to psrun after every step (--progress-fd), and
 * on a TTY a progress bar redrawn in place on stderr. */
#ifndef PS_PROGRESS_H
#define PS_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ps_progress {
    int fd;           /* -1: no progress lines (none asked for, or the reader left) */
    bool tty;         /* draw the bar */
    uint32_t epochs;  /* of the job, for the bar */
    const char *note; /* appended to the bar (", test accuracy 0.9561"); not owned */
    double drawn_s;   /* when the bar was last drawn */
    bool bar_on;      /* the bar is on the screen: a log line must end it first */
} ps_progress;

/* Starts with fd (-1: none), the bar when tty, and note, the caller's
 * text to show after the bar (it may change between draws; "" for none). */
void ps_progress_init(ps_progress *p, int fd, bool tty, uint32_t epochs, const char *note);

/* After a step of rank's: one progress line (done of total steps, in
 * epoch from 1, the epoch's mean loss so far) to fd, and the bar redrawn at
 * most every 0.1 s. A write that fails (the reader is gone) stops the
 * lines for good. */
void ps_progress_step(ps_progress *p, uint32_t rank, uint64_t done, uint64_t total, uint32_t epoch,
                      double loss);

/* Redraws the bar (at an epoch's end): now when force, else at most every
 * 0.1 s; nothing without a TTY. */
void ps_progress_bar_draw(ps_progress *p, uint64_t done, uint64_t total, uint32_t epoch,
                          double loss, bool force);

/* Ends the bar's line, so what is written next starts a line of its own. */
void ps_progress_bar_end(ps_progress *p);

#endif
