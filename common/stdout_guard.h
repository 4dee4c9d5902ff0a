/* stdout_guard.h — a program's standard output is checked, never lost in
 * silence: every psd program calls ps_stdout_guard_install first in main,
 * and at exit it flushes and closes stdout; when a write failed (a full
 * disk, /dev/full, a closed stdout) it says so in one line on stderr,
 * "prog: cannot write to standard output: <reason>", and the exit status
 * becomes 1. A reader that went away (`psctl status | head -1`) ends the
 * program as it ends any Unix filter: quietly, by SIGPIPE (status 141 in
 * the shell), also in a program that ignores SIGPIPE for its sockets.
 * libc only. */
#ifndef PS_STDOUT_GUARD_H
#define PS_STDOUT_GUARD_H

#include <stdbool.h>

/* Registers the check at exit (atexit) under the name prog ("psctl": the
 * start of the line). A standard descriptor that is closed (a program
 * started with `>&-`) gets /dev/null opened in its place, stdout read-only,
 * so a write to stdout fails (EBADF) and is reported instead of landing in
 * a file or socket the program opens later. Call once, first in main. */
void ps_stdout_guard_install(const char *prog);

/* Flushes stdout: true when all written so far went out, false when some
 * of it was lost (the reason kept for the line at exit). For a program
 * that writes to stdout again and again (psctl top): false means stop. */
bool ps_stdout_guard_flush(void);

#endif
