/* progress.c — a worker's progress lines and bar (progress.h). One write()
 * per line or redraw, so a line is never cut by another writer's. */
#include "progress.h"

#include "report_progress.h"
#include "util.h"

#include <stdio.h>
#include <unistd.h>

#define BAR_INTERVAL_S 0.1 /* the bar redraws at most this often (and at each epoch's end) */
#define BAR_WIDTH      24

void ps_progress_init(ps_progress *p, int fd, bool tty, uint32_t epochs, const char *note)
{
    *p = (ps_progress){.fd = fd, .tty = tty, .epochs = epochs, .note = note ? note : ""};
}

static void bar_draw(ps_progress *p, uint64_t done, uint64_t total, uint32_t epoch, double loss,
                     bool force)
{
    if (!p->tty)
        return;
    double now = ps_clock_s();
    if (!force && now - p->drawn_s < BAR_INTERVAL_S)
        return;
    p->drawn_s = now;
    uint64_t whole = total ? total : 1;
    size_t fill = (size_t)(BAR_WIDTH * done / whole);
    char bar[BAR_WIDTH + 1];
    for (size_t i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    char line[256];
    int n = snprintf(line, sizeof line, "\r\033[Kepoch %u/%u [%s] %3.0f%% loss %.4f%s", epoch,
                     p->epochs, bar, 100.0 * (double)done / (double)whole, loss, p->note);
    if (n > (int)sizeof line - 1)
        n = (int)sizeof line - 1;
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
    p->bar_on = true;
}

void ps_progress_step(ps_progress *p, uint32_t rank, uint64_t done, uint64_t total, uint32_t epoch,
                      double loss)
{
    ps_report_progress line = {rank, done, total, epoch, loss};
    if (p->fd >= 0 && ps_report_progress_write(p->fd, &line) != 0)
        p->fd = -1; /* the reader is gone (EPIPE): stop telling it */
    bar_draw(p, done, total, epoch, loss, false);
}

void ps_progress_bar_draw(ps_progress *p, uint64_t done, uint64_t total, uint32_t epoch,
                          double loss, bool force)
{
    bar_draw(p, done, total, epoch, loss, force);
}

void ps_progress_bar_end(ps_progress *p)
{
    if (p->bar_on) {
        ssize_t w = write(STDERR_FILENO, "\n", 1);
        (void)w;
        p->bar_on = false;
    }
}
