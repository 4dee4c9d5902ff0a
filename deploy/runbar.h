/* runbar.h — psrun's one progress line on a TTY: the workers' progress
 * lines (report_progress.h's stream, from the pipe they share) summed into a bar,
 * with the slowest worker's epoch, the workers' mean loss and the time
 * since the start, redrawn in place on stderr. */
#ifndef PS_RUNBAR_H
#define PS_RUNBAR_H

#include <stdbool.h>
#include <stdint.h>

#include "report_progress.h"

#define PS_RUNBAR_WORKERS_MAX 256

typedef struct ps_runbar {
    bool tty;   /* draw at all */
    bool drawn; /* the line is on the screen */
    uint32_t workers;
    double t_start, drawn_s;
    ps_report_progress_reader reader;
    ps_report_progress progress[PS_RUNBAR_WORKERS_MAX]; /* the latest line of each rank */
} ps_runbar;

/* Nothing seen yet for workers ranks (at most PS_RUNBAR_WORKERS_MAX); draws
 * only when tty; times count from t_start (seconds, monotonic). */
void ps_runbar_init(ps_runbar *b, bool tty, uint32_t workers, double t_start);

/* Reads what fd (non-blocking) holds and keeps each rank's latest line. */
void ps_runbar_read(ps_runbar *b, int fd);

/* Draws the line when it is not on the screen, else redraws it at most
 * every 0.2 s; now is the time on t_start's clock. */
void ps_runbar_draw(ps_runbar *b, double now);

/* Takes the line off the screen, so a log line can be written. */
void ps_runbar_clear(ps_runbar *b);

/* Lines from the workers that were not progress lines and were skipped. */
uint64_t ps_runbar_rejected(const ps_runbar *b);

#endif
