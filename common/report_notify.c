/* report_notify.c — one sd_notify datagram parsed as report_notify.h
 * describes: only the keys psrun acts on, the rest ignored. */
#include "report_notify.h"

#include <string.h>

/* Copies src[0, len) into dst (cap bytes), cut at a UTF-8 character
 * boundary when it does not fit. */
static void copy_cut(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap) {
        len = cap - 1;
        while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
}

void ps_report_notify_parse(const char *dgram, size_t len, ps_report_notify *n)
{
    memset(n, 0, sizeof *n);
    size_t i = 0;
    while (i < len) {
        const char *line = dgram + i;
        const char *nl = memchr(line, '\n', len - i);
        size_t llen = nl ? (size_t)(nl - line) : len - i;
        i += llen + 1;
        if (llen == 7 && memcmp(line, "READY=1", 7) == 0)
            n->ready = true;
        else if (llen == 10 && memcmp(line, "STOPPING=1", 10) == 0)
            n->stopping = true;
        else if (llen >= 7 && memcmp(line, "STATUS=", 7) == 0)
            copy_cut(n->status, sizeof n->status, line + 7, llen - 7);
    }
}
