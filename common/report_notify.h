/* report_notify.h — sd_notify datagrams, the read side: psd writes them
 * (server/notify.c), psrun reads them from each server's socket. One
 * datagram is newline-separated KEY=VALUE lines (sd_notify(3)). psd sends
 * READY=1 once it listens, STATUS=... as it goes, and STOPPING=1 when it
 * stops, with STATUS= in the same datagram saying why. libc only. */
#ifndef PS_REPORT_NOTIFY_H
#define PS_REPORT_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>

#define PS_REPORT_STATUS_MAX 512

typedef struct ps_report_notify {
    bool ready;                        /* READY=1 */
    bool stopping;                     /* STOPPING=1 */
    char status[PS_REPORT_STATUS_MAX]; /* STATUS=, "" when absent */
} ps_report_notify;

/* Parses one datagram of len bytes (no NUL needed) into a cleared *n;
 * other keys are ignored, a STATUS too long is cut at a UTF-8 boundary. */
void ps_report_notify_parse(const char *dgram, size_t len, ps_report_notify *n);

#endif
