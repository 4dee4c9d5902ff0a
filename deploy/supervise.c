/* supervise.c — psrun's child processes (supervise.h): fork and exec with
 * pipes, sd_notify sockets, line assembly of their output, waitpid and
 * signals. */
#include "supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

void ps_supervisor_init(ps_supervisor *sv, ps_supervisor_line_fn *on_line, void *arg)
{
    sv->nkids = 0;
    sv->stop_asked = false;
    sv->on_line = on_line;
    sv->arg = arg;
}

void ps_supervisor_fini(ps_supervisor *sv)
{
    for (int i = 0; i < sv->nkids; i++) {
        ps_supervisor_child *c = &sv->kids[i];
        if (c->notify_fd >= 0) {
            close(c->notify_fd);
            unlink(c->notify_path);
            c->notify_fd = -1;
        }
        if (c->out_fd >= 0) {
            close(c->out_fd);
            c->out_fd = -1;
        }
    }
}

ps_supervisor_child *ps_supervisor_add(ps_supervisor *sv, const char *name, bool is_server)
{
    if (sv->nkids >= PS_SUPERVISOR_CHILDREN_MAX)
        return NULL;
    ps_supervisor_child *c = &sv->kids[sv->nkids++];
    memset(c, 0, sizeof *c);
    c->pid = -1;
    c->out_fd = -1;
    c->notify_fd = -1;
    c->is_server = is_server;
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

int ps_supervisor_notify_open(ps_supervisor_child *c, const char *dir, uint32_t shard,
                              ps_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int n = snprintf(sa.sun_path, sizeof sa.sun_path, "%s/psd%u.notify", dir, shard);
    if (n < 0 || (size_t)n >= sizeof sa.sun_path)
        return ps_error_set(err, PS_EIO,
                            "%s: the temporary folder's path is too long for a socket (set TMPDIR "
                            "to a shorter one)",
                            dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return ps_error_set(err, PS_EIO, "%s: %s", sa.sun_path, strerror(e));
    }
    c->notify_fd = fd;
    memcpy(c->notify_path, sa.sun_path, sizeof c->notify_path);
    return 0;
}

int ps_supervisor_spawn(ps_supervisor_child *c, char *const argv[], int progress_wr,
                        int progress_fd, ps_error *err)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return ps_error_set(err, PS_EIO, "cannot start %s: %s", argv[0], strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return ps_error_set(err, PS_EIO, "cannot start %s: %s", argv[0], strerror(e));
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        if (progress_wr >= 0)
            dup2(progress_wr, progress_fd);
        /* psrun's own systemd settings, if any, are not the children's */
        unsetenv("WATCHDOG_USEC");
        unsetenv("WATCHDOG_PID");
        if (c->notify_fd >= 0)
            setenv("NOTIFY_SOCKET", c->notify_path, 1);
        else
            unsetenv("NOTIFY_SOCKET");
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        if (c->cwd != NULL && chdir(c->cwd) != 0) {
            fprintf(stderr, "cannot run %s in %s: %s\n", argv[0], c->cwd, strerror(errno));
            _exit(127);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    c->pid = pid;
    c->out_fd = fds[0];
    return 0;
}

static void line_done(ps_supervisor *sv, ps_supervisor_child *c)
{
    c->line[c->line_len] = '\0';
    sv->on_line(sv->arg, c, c->line);
    c->line_len = 0;
}

/* Reads what a child wrote and hands it on a line at a time (a line longer
 * than PS_SUPERVISOR_LINE_MAX goes in pieces: it is a log, not data). */
static void output_read(ps_supervisor *sv, ps_supervisor_child *c)
{
    for (;;) {
        char chunk[4096];
        ssize_t n = read(c->out_fd, chunk, sizeof chunk);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            if (c->line_len)
                line_done(sv, c);
            close(c->out_fd);
            c->out_fd = -1;
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            char ch = chunk[i];
            if (ch == '\n' || c->line_len == sizeof c->line - 1) {
                line_done(sv, c);
                if (ch == '\n')
                    continue;
            }
            if (ch != '\r')
                c->line[c->line_len++] = ch;
        }
    }
}

/* Reads every datagram a server sent to its notify socket. A STOPPING=1
 * that comes before a stop was asked for is the server's own: the job was
 * aborted, completed or psd was stopped, and STATUS= says which. */
static void notify_read(ps_supervisor *sv, ps_supervisor_child *c)
{
    for (;;) {
        char dgram[4096];
        ssize_t n = recv(c->notify_fd, dgram, sizeof dgram, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return;
        ps_report_notify msg;
        ps_report_notify_parse(dgram, (size_t)n, &msg);
        if (msg.ready)
            c->ready = true;
        if (msg.stopping && !c->stopped_alone && !sv->stop_asked) {
            c->stopped_alone = true;
            snprintf(c->stop_reason, sizeof c->stop_reason, "%s", msg.status);
        }
    }
}

void ps_supervisor_notify_read(ps_supervisor *sv)
{
    for (int i = 0; i < sv->nkids; i++)
        if (sv->kids[i].notify_fd >= 0)
            notify_read(sv, &sv->kids[i]);
}

bool ps_supervisor_poll(ps_supervisor *sv, int extra_fd, int timeout_ms)
{
    struct pollfd pfd[2 * PS_SUPERVISOR_CHILDREN_MAX + 1];
    ps_supervisor_child *who[2 * PS_SUPERVISOR_CHILDREN_MAX];
    int n = 0;
    for (int i = 0; i < sv->nkids; i++) {
        ps_supervisor_child *c = &sv->kids[i];
        if (c->out_fd >= 0) {
            pfd[n] = (struct pollfd){.fd = c->out_fd, .events = POLLIN};
            who[n++] = c;
        }
        if (c->notify_fd >= 0) {
            pfd[n] = (struct pollfd){.fd = c->notify_fd, .events = POLLIN};
            who[n++] = c;
        }
    }
    pfd[n] = (struct pollfd){.fd = extra_fd, .events = POLLIN}; /* a negative fd is skipped */
    if (poll(pfd, (nfds_t)n + 1, timeout_ms) <= 0)
        return false;
    for (int i = 0; i < n; i++) {
        if (!pfd[i].revents)
            continue;
        if (pfd[i].fd == who[i]->notify_fd)
            notify_read(sv, who[i]);
        else if (who[i]->out_fd >= 0)
            output_read(sv, who[i]);
    }
    return extra_fd >= 0 && (pfd[n].revents & POLLIN);
}

ps_supervisor_child *ps_supervisor_reap(ps_supervisor *sv)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < sv->nkids; i++) {
            ps_supervisor_child *c = &sv->kids[i];
            if (c->pid == pid && !c->exited) {
                c->exited = true;
                c->status = status;
                return c;
            }
        }
        /* not ours (psworker --describe is waited for where it runs) */
    }
    return NULL;
}

void ps_supervisor_signal(ps_supervisor *sv, int sig, bool servers_only)
{
    for (int i = 0; i < sv->nkids; i++) {
        ps_supervisor_child *c = &sv->kids[i];
        if (!c->exited && c->pid > 0 && (!servers_only || c->is_server))
            kill(c->pid, sig);
    }
}

void ps_supervisor_stop(ps_supervisor *sv, bool servers_only)
{
    sv->stop_asked = true;
    ps_supervisor_signal(sv, SIGTERM, servers_only);
}

bool ps_supervisor_all_exited(const ps_supervisor *sv, bool workers_only)
{
    for (int i = 0; i < sv->nkids; i++)
        if (!sv->kids[i].exited && (!workers_only || !sv->kids[i].is_server))
            return false;
    return true;
}

bool ps_supervisor_outputs_open(const ps_supervisor *sv)
{
    for (int i = 0; i < sv->nkids; i++)
        if (sv->kids[i].out_fd >= 0)
            return true;
    return false;
}

bool ps_supervisor_clean_exit(const ps_supervisor_child *c)
{
    return c->exited && WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0;
}

void ps_supervisor_describe_end(const ps_supervisor_child *c, char *out, size_t cap)
{
    if (WIFSIGNALED(c->status))
        snprintf(out, cap, "was killed by signal %d", WTERMSIG(c->status));
    else
        snprintf(out, cap, "exited with status %d",
                 WIFEXITED(c->status) ? WEXITSTATUS(c->status) : -1);
}
