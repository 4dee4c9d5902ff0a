/* notify.c — sd_notify over an AF_UNIX datagram socket (see sd_notify(3)):
 * the protocol is one datagram of newline-separated KEY=VALUE lines. */
#include "notify.h"

#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void notify_inert(ps_notify *n)
{
    n->fd = -1;
    n->path[0] = '\0';
    n->watchdog_ms = 0;
    n->last_ping_ms = 0;
}

/* WATCHDOG_USEC, when present and meant for this process, in ms. */
static int watchdog_parse(uint64_t *out_ms)
{
    *out_ms = 0;
    const char *usec = getenv("WATCHDOG_USEC");
    if (usec == NULL || *usec == '\0')
        return 0;
    const char *pid = getenv("WATCHDOG_PID");
    if (pid != NULL && *pid != '\0' && strtol(pid, NULL, 10) != (long)getpid())
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(usec, &end, 10);
    if (*end != '\0' || errno != 0 || v == 0)
        return PS_EINVAL;
    *out_ms = (v + 999) / 1000;
    return 0;
}

int ps_notify_init(ps_notify *n)
{
    notify_inert(n);
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || *path == '\0')
        return 0;
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof n->path)
        return PS_EINVAL;
    uint64_t wd = 0;
    if (watchdog_parse(&wd) != 0)
        return PS_EINVAL;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return PS_EIO;
    memcpy(n->path, path, len + 1);
    n->fd = fd;
    n->watchdog_ms = wd;
    return 0;
}

bool ps_notify_active(const ps_notify *n)
{
    return n->fd >= 0;
}

int ps_notify_send(ps_notify *n, const char *fmt, ...)
{
    if (n->fd < 0)
        return 0;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (len < 0)
        return PS_EINVAL;
    if ((size_t)len >= sizeof msg)
        len = (int)sizeof msg - 1;
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t plen = strlen(n->path);
    memcpy(addr.sun_path, n->path, plen);
    if (addr.sun_path[0] == '@')
        addr.sun_path[0] = '\0'; /* abstract namespace: no trailing NUL counted */
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    ssize_t w = sendto(n->fd, msg, (size_t)len, MSG_NOSIGNAL, (struct sockaddr *)&addr, alen);
    return w == (ssize_t)len ? 0 : PS_EIO;
}

bool ps_notify_watchdog(ps_notify *n, uint64_t now_ms)
{
    if (n->fd < 0 || n->watchdog_ms == 0)
        return false;
    if (n->last_ping_ms != 0 && now_ms - n->last_ping_ms < n->watchdog_ms / 2)
        return false;
    n->last_ping_ms = now_ms;
    return ps_notify_send(n, "WATCHDOG=1") == 0;
}

void ps_notify_fini(ps_notify *n)
{
    if (n->fd >= 0)
        close(n->fd);
    notify_inert(n);
}
