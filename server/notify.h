/* notify.h — the sd_notify protocol, without libsystemd: datagrams such as
 * "READY=1" to the socket systemd names in NOTIFY_SOCKET, and the watchdog
 * interval it asks for in WATCHDOG_USEC. Outside systemd (no NOTIFY_SOCKET)
 * every call is a no-op, so psd behaves the same from a shell. */
#ifndef PS_NOTIFY_H
#define PS_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ps_notify {
    int fd;                /* -1 when not under a notify socket */
    char path[108];        /* sun_path; a leading '@' is the abstract namespace */
    uint64_t watchdog_ms;  /* 0: no watchdog asked for */
    uint64_t last_ping_ms; /* when WATCHDOG=1 was last sent */
} ps_notify;

/* Reads NOTIFY_SOCKET and WATCHDOG_USEC (WATCHDOG_PID, when set, must be
 * ours) and opens the datagram socket. A missing variable leaves n inert;
 * PS_EINVAL for a malformed one (n is then inert too). */
int ps_notify_init(ps_notify *n);

/* True when a notify socket is in use. */
bool ps_notify_active(const ps_notify *n);

/* Sends one state datagram ("READY=1\nSTATUS=..."), printf-style. Returns 0,
 * or PS_EIO when the send failed; a no-op (0) when inactive. */
int ps_notify_send(ps_notify *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sends WATCHDOG=1 if half the watchdog interval has passed since the last
 * ping (now_ms from ps_clock_ms). Returns true when it sent one. */
bool ps_notify_watchdog(ps_notify *n, uint64_t now_ms);

/* Closes the socket; n becomes inert. */
void ps_notify_fini(ps_notify *n);

#endif
