/* supervise.h — psrun's child processes: each started with its stdout and
 * stderr on a pipe of psrun's, a server with an sd_notify socket of its
 * own; their output read back a line at a time, their datagrams read as
 * report_notify.h parses them, their ends reaped, signals sent. Mechanism only:
 * what an end means for the job is psrun's to judge. One thread owns a
 * supervisor and every descriptor in it. */
#ifndef PS_SUPERVISE_H
#define PS_SUPERVISE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#include "error.h"
#include "report_notify.h"

#define PS_SUPERVISOR_CHILDREN_MAX 256
#define PS_SUPERVISOR_LINE_MAX     4096 /* a longer output line is forwarded in pieces */

typedef struct ps_supervisor_child {
    pid_t pid;
    char name[16]; /* log prefix: psd0, w1 */
    bool is_server;
    int out_fd; /* read end of its stdout+stderr, -1 at EOF */
    char line[PS_SUPERVISOR_LINE_MAX];
    size_t line_len;
    bool exited;
    int status; /* waitpid's, once exited */
    /* a server's sd_notify socket (-1: none) */
    int notify_fd;
    char notify_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    bool ready;         /* said READY=1 */
    bool stopped_alone; /* said STOPPING=1 before the supervisor asked it to stop */
    char stop_reason[PS_REPORT_STATUS_MAX]; /* its STATUS= then */
    const char *cwd; /* set before spawning: the child's working folder (NULL: ours) */
} ps_supervisor_child;

/* Gets each whole line a child wrote, without its '\n' (and '\r's). */
typedef void ps_supervisor_line_fn(void *arg, ps_supervisor_child *c, const char *line);

typedef struct ps_supervisor {
    ps_supervisor_child kids[PS_SUPERVISOR_CHILDREN_MAX];
    int nkids;
    bool stop_asked; /* a stop was sent: a STOPPING=1 after it is no news */
    ps_supervisor_line_fn *on_line;
    void *arg;
} ps_supervisor;

/* No children yet; on_line(arg, child, line) gets their output. */
void ps_supervisor_init(ps_supervisor *sv, ps_supervisor_line_fn *on_line, void *arg);

/* Closes the notify sockets and removes their files. The children are the
 * caller's to have ended first. */
void ps_supervisor_fini(ps_supervisor *sv);

/* A new child's record, named name, not started; NULL when there are
 * PS_SUPERVISOR_CHILDREN_MAX already. */
ps_supervisor_child *ps_supervisor_add(ps_supervisor *sv, const char *name, bool is_server);

/* Binds a datagram socket at dir/psdI.notify (I = shard) for c's sd_notify.
 * PS_EIO with the path and why in err (a path too long for a socket says
 * to set TMPDIR to a shorter one). */
int ps_supervisor_notify_open(ps_supervisor_child *c, const char *dir, uint32_t shard,
                              ps_error *err);

/* Starts argv[0] (looked up on PATH unless it has a '/') as c, with stdout
 * and stderr into a new pipe; progress_wr, when >= 0, becomes the child's
 * fd progress_fd, and c's notify socket its NOTIFY_SOCKET. The child gets
 * SIGTERM when the supervisor's process dies. PS_EIO with why in err when
 * it could not be started (a program that is missing starts, says so on its
 * output and exits 127). */
int ps_supervisor_spawn(ps_supervisor_child *c, char *const argv[], int progress_wr,
                        int progress_fd, ps_error *err);

/* Waits up to timeout_ms for output, datagrams or extra_fd (-1: none),
 * forwards whole lines to on_line and reads the datagrams. Returns whether
 * extra_fd is readable (its bytes are the caller's to read). */
bool ps_supervisor_poll(ps_supervisor *sv, int extra_fd, int timeout_ms);

/* Reads every datagram waiting on the servers' notify sockets. */
void ps_supervisor_notify_read(ps_supervisor *sv);

/* The next child that ended (exited set, status filled), or NULL when none
 * has since the last call. Never blocks. */
ps_supervisor_child *ps_supervisor_reap(ps_supervisor *sv);

/* Sends sig to every child still running (servers only when servers_only). */
void ps_supervisor_signal(ps_supervisor *sv, int sig, bool servers_only);

/* Asks children to stop (SIGTERM, servers only when servers_only); from now
 * on a server's STOPPING=1 is the answer, not a stop of its own. */
void ps_supervisor_stop(ps_supervisor *sv, bool servers_only);

/* Whether every child (every worker when workers_only) has ended. */
bool ps_supervisor_all_exited(const ps_supervisor *sv, bool workers_only);

/* Whether some child's output is still open (its last lines may be unread). */
bool ps_supervisor_outputs_open(const ps_supervisor *sv);

/* True when c exited with status 0. */
bool ps_supervisor_clean_exit(const ps_supervisor_child *c);

/* How c ended, in words: "exited with status 1", "was killed by signal 9". */
void ps_supervisor_describe_end(const ps_supervisor_child *c, char *out, size_t cap);

#endif
