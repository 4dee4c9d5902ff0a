/* report_progress.c — progress lines formatted, parsed, written with one
 * write() and assembled from a stream's bytes, as report_progress.h
 * describes. */
#include "report_progress.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ps_report_progress_format(const ps_report_progress *p, char *buf, size_t cap)
{
    char loss[32];
    if (isnan(p->loss))
        snprintf(loss, sizeof loss, "nan");
    else if (isinf(p->loss))
        snprintf(loss, sizeof loss, p->loss > 0 ? "inf" : "-inf");
    else
        snprintf(loss, sizeof loss, "%.6g", p->loss);
    int n = snprintf(buf, cap, "progress %u %llu %llu %u %s\n", p->rank,
                     (unsigned long long)p->done, (unsigned long long)p->total, p->epoch, loss);
    if (n < 0 || (size_t)n >= cap || (size_t)n > PS_REPORT_PROGRESS_MAX)
        return PS_EINVAL;
    return n;
}

/* An unsigned decimal up to max, then one space (or the end when last);
 * advances *s. */
static bool parse_uint_field(const char **s, uint64_t max, bool last, uint64_t *out)
{
    const char *p = *s;
    if (*p < '0' || *p > '9')
        return false;
    uint64_t v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (last ? *p != '\0' : *p != ' ')
        return false;
    *s = last ? p : p + 1;
    *out = v;
    return true;
}

int ps_report_progress_parse(const char *line, ps_report_progress *p)
{
    static const char tag[] = "progress ";
    if (strncmp(line, tag, sizeof tag - 1) != 0)
        return PS_EINVAL;
    const char *s = line + sizeof tag - 1;
    uint64_t rank, done, total, epoch;
    if (!parse_uint_field(&s, UINT32_MAX, false, &rank) ||
        !parse_uint_field(&s, UINT64_MAX, false, &done) ||
        !parse_uint_field(&s, UINT64_MAX, false, &total) ||
        !parse_uint_field(&s, UINT32_MAX, false, &epoch))
        return PS_EINVAL;
    /* strtod also takes nan, inf and -inf; nothing may follow the number */
    if (*s == '\0' || *s == ' ')
        return PS_EINVAL;
    char *end;
    double loss = strtod(s, &end);
    if (end == s || *end != '\0')
        return PS_EINVAL;
    *p = (ps_report_progress){(uint32_t)rank, done, total, (uint32_t)epoch, loss};
    return 0;
}

int ps_report_progress_write(int fd, const ps_report_progress *p)
{
    char line[PS_REPORT_PROGRESS_MAX + 1];
    int n = ps_report_progress_format(p, line, sizeof line);
    if (n < 0)
        return n;
    ssize_t w;
    do {
        w = write(fd, line, (size_t)n);
    } while (w < 0 && errno == EINTR);
    return w == n ? 0 : PS_EIO;
}

void ps_report_progress_reader_init(ps_report_progress_reader *r)
{
    memset(r, 0, sizeof *r);
}

size_t ps_report_progress_feed(ps_report_progress_reader *r, const char *bytes, size_t n,
                               void (*on_line)(void *arg, const ps_report_progress *p), void *arg)
{
    size_t rejected = 0;
    for (size_t i = 0; i < n; i++) {
        char c = bytes[i];
        if (c != '\n') {
            /* room for the line, without its '\n', and a NUL */
            if (r->len < sizeof r->line - 1)
                r->line[r->len++] = c;
            else
                r->overlong = true;
            continue;
        }
        r->line[r->len] = '\0';
        ps_report_progress p;
        if (!r->overlong && ps_report_progress_parse(r->line, &p) == 0)
            on_line(arg, &p);
        else
            rejected++;
        r->len = 0;
        r->overlong = false;
    }
    r->rejected += rejected;
    return rejected;
}
