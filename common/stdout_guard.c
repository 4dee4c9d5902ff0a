/* stdout_guard.c — the check of stdout at exit (stdout_guard.h), as
 * gnulib's close_stdout does it: a stream whose write failed keeps its
 * error flag but not errno (glibc drops the buffer), so the reason is kept
 * when ps_stdout_guard_flush sees it, and otherwise asked of the
 * descriptor where it can be (a pipe with no reader). */
#include "stdout_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *guard_prog = "psd";
static int lost_errno; /* why a write to stdout failed, once one did */

/* Puts /dev/null on a standard descriptor that is closed. */
static void std_fd_fill(int fd, int flags)
{
    if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
        return;
    int got = open("/dev/null", flags | O_CLOEXEC);
    if (got < 0 || got == fd) {
        if (got == fd)
            fcntl(fd, F_SETFD, 0); /* a standard descriptor outlives exec */
        return;
    }
    dup2(got, fd);
    close(got);
}

/* True when stdout is a pipe whose reader is gone (it said POLLERR). */
static bool reader_gone(void)
{
    struct pollfd p = {.fd = STDOUT_FILENO, .events = POLLOUT};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLERR) != 0;
}

static void guard_at_exit(void)
{
    int e = lost_errno;
    bool pending = __fpending(stdout) != 0;
    bool bad = e != 0 || ferror(stdout) != 0;
    errno = 0;
    if (fclose(stdout) != 0 && (pending || errno != EBADF)) {
        bad = true;
        if (e == 0)
            e = errno;
    }
    if (!bad)
        return;
    if (e == EPIPE || (e == 0 && reader_gone())) {
        /* the reader went away: end as a filter killed by SIGPIPE ends */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        signal(SIGPIPE, SIG_DFL);
        raise(SIGPIPE);
        _exit(1);
    }
    if (e != 0)
        fprintf(stderr, "%s: cannot write to standard output: %s\n", guard_prog, strerror(e));
    else
        fprintf(stderr, "%s: cannot write to standard output: some output was lost\n", guard_prog);
    _exit(1);
}

void ps_stdout_guard_install(const char *prog)
{
    guard_prog = prog;
    std_fd_fill(STDIN_FILENO, O_RDONLY);
    std_fd_fill(STDOUT_FILENO, O_RDONLY); /* a write to it fails: EBADF */
    std_fd_fill(STDERR_FILENO, O_WRONLY);
    atexit(guard_at_exit);
}

bool ps_stdout_guard_flush(void)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return true;
    if (lost_errno == 0)
        lost_errno = errno; /* 0 when an earlier write failed: its reason is gone */
    return false;
}
