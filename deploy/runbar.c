/* runbar.c — psrun's progress line (runbar.h). */
#include "runbar.h"

#include "report_number.h"

#include <stdio.h>
#include <unistd.h>

#define REDRAW_S  0.2
#define BAR_WIDTH 30

void ps_runbar_init(ps_runbar *b, bool tty, uint32_t workers, double t_start)
{
    b->tty = tty;
    b->drawn = false;
    b->workers = workers < PS_RUNBAR_WORKERS_MAX ? workers : PS_RUNBAR_WORKERS_MAX;
    b->t_start = t_start;
    b->drawn_s = 0.0;
    ps_report_progress_reader_init(&b->reader);
    for (uint32_t i = 0; i < PS_RUNBAR_WORKERS_MAX; i++)
        b->progress[i] = (ps_report_progress){0};
}

static void progress_seen(void *arg, const ps_report_progress *p)
{
    ps_runbar *b = arg;
    if (p->rank < b->workers)
        b->progress[p->rank] = *p;
}

void ps_runbar_read(ps_runbar *b, int fd)
{
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n > 0)
        ps_report_progress_feed(&b->reader, chunk, (size_t)n, progress_seen, b);
}

void ps_runbar_clear(ps_runbar *b)
{
    if (b->tty && b->drawn) {
        fputs("\r\033[K", stderr);
        b->drawn = false;
    }
}

void ps_runbar_draw(ps_runbar *b, double now)
{
    if (!b->tty || (b->drawn && now - b->drawn_s <= REDRAW_S))
        return;
    b->drawn_s = now;
    unsigned long long done = 0, total = 0;
    unsigned epoch = 0;
    double loss = 0;
    int seen = 0;
    for (uint32_t i = 0; i < b->workers; i++) {
        const ps_report_progress *p = &b->progress[i];
        done += p->done;
        total += p->total;
        if (p->total) {
            if (seen == 0 || p->epoch < epoch)
                epoch = p->epoch;
            loss += p->loss;
            seen++;
        }
    }
    if (total == 0)
        return;
    double frac = (double)done / (double)total;
    char bar[BAR_WIDTH + 1], num[32];
    int fill = (int)(frac * BAR_WIDTH);
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    fprintf(stderr, "\r\033[K[%s] %3.0f%%  epoch %u  loss %s  %.1f s", bar, frac * 100.0, epoch,
            ps_report_number_format(seen ? loss / seen : 0.0, 4, num, sizeof num),
            now - b->t_start);
    b->drawn = true;
}

uint64_t ps_runbar_rejected(const ps_runbar *b)
{
    return b->reader.rejected;
}
