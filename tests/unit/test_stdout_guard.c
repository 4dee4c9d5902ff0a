/* test_stdout_guard.c — a program's lost stdout is never silent: in a
 * child process that installs the guard and exits 0, stdout on /dev/full
 * makes the exit status 1 with one line on stderr naming the reason, a
 * closed stdout the same (and the descriptor is not handed to the next
 * file the program opens), a pipe whose reader is gone ends it by SIGPIPE
 * without a word even when SIGPIPE was ignored, and a stdout that takes
 * everything changes nothing. */
#include <check.h>

#include "check_main.h"
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stdout_guard.h"

/* What a child does to its stdout before the guard is installed. */
typedef enum setup { OUT_FULL, OUT_CLOSED, OUT_GONE_READER, OUT_FILE } setup;

/* What a child does once guarded: print a line and exit 0, or check that
 * the guard's flush says false and a file opened gets no standard fd. */
typedef enum action { ACT_PRINT_EXIT, ACT_FLUSH_FALSE_AND_OPEN } action;

typedef struct outcome {
    int status;    /* waitpid's */
    char err[512]; /* what the child wrote on stderr */
    char out[64];  /* what stdout got, for OUT_FILE */
} outcome;

static void read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t got;
    while (n < cap - 1 && (got = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)got;
    buf[n] = '\0';
}

static outcome run_child(setup s, action act)
{
    outcome o = {0};
    int errpipe[2];
    ck_assert_int_eq(pipe(errpipe), 0);
    char path[] = "/tmp/test_stdout_guard.XXXXXX";
    int file = mkstemp(path);
    ck_assert_int_ge(file, 0);
    int gone[2];
    ck_assert_int_eq(pipe(gone), 0);
    close(gone[0]); /* OUT_GONE_READER's pipe: its reader is gone before the child starts */
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(errpipe[1], STDERR_FILENO);
        close(errpipe[0]);
        close(errpipe[1]);
        if (s == OUT_FULL)
            dup2(open("/dev/full", O_WRONLY), STDOUT_FILENO);
        else if (s == OUT_CLOSED)
            close(STDOUT_FILENO);
        else if (s == OUT_GONE_READER)
            dup2(gone[1], STDOUT_FILENO);
        else
            dup2(file, STDOUT_FILENO);
        signal(SIGPIPE, SIG_IGN); /* as psrun, psworker and psd do */
        ps_stdout_guard_install("prog");
        if (act == ACT_FLUSH_FALSE_AND_OPEN) {
            printf("a line\n");
            bool flushed = ps_stdout_guard_flush();
            int fd = open("/dev/null", O_RDONLY);
            _exit(!flushed && fd > STDERR_FILENO ? 0 : 3);
        }
        printf("a line\n");
        exit(0);
    }
    close(errpipe[1]);
    close(gone[1]);
    read_all(errpipe[0], o.err, sizeof o.err);
    close(errpipe[0]);
    ck_assert_int_eq(waitpid(pid, &o.status, 0), pid);
    lseek(file, 0, SEEK_SET);
    read_all(file, o.out, sizeof o.out);
    close(file);
    unlink(path);
    return o;
}

START_TEST(stdout_on_a_full_device_exits_1_with_one_line)
{
    outcome o = run_child(OUT_FULL, ACT_PRINT_EXIT);
    ck_assert(WIFEXITED(o.status));
    ck_assert_int_eq(WEXITSTATUS(o.status), 1);
    ck_assert_str_eq(o.err, "prog: cannot write to standard output: No space left on device\n");
}
END_TEST

START_TEST(stdout_closed_exits_1_with_one_line)
{
    outcome o = run_child(OUT_CLOSED, ACT_PRINT_EXIT);
    ck_assert(WIFEXITED(o.status));
    ck_assert_int_eq(WEXITSTATUS(o.status), 1);
    ck_assert_str_eq(o.err, "prog: cannot write to standard output: Bad file descriptor\n");
}
END_TEST

START_TEST(stdout_to_a_gone_reader_ends_by_sigpipe_quietly)
{
    outcome o = run_child(OUT_GONE_READER, ACT_PRINT_EXIT);
    ck_assert(WIFSIGNALED(o.status));
    ck_assert_int_eq(WTERMSIG(o.status), SIGPIPE);
    ck_assert_str_eq(o.err, "");
}
END_TEST

START_TEST(stdout_that_takes_all_changes_nothing)
{
    outcome o = run_child(OUT_FILE, ACT_PRINT_EXIT);
    ck_assert(WIFEXITED(o.status));
    ck_assert_int_eq(WEXITSTATUS(o.status), 0);
    ck_assert_str_eq(o.err, "");
    ck_assert_str_eq(o.out, "a line\n");
}
END_TEST

START_TEST(flush_says_false_and_a_closed_stdout_is_not_reused)
{
    outcome o = run_child(OUT_CLOSED, ACT_FLUSH_FALSE_AND_OPEN);
    ck_assert(WIFEXITED(o.status));
    ck_assert_int_eq(WEXITSTATUS(o.status), 0);
    o = run_child(OUT_FULL, ACT_FLUSH_FALSE_AND_OPEN);
    ck_assert(WIFEXITED(o.status));
    ck_assert_int_eq(WEXITSTATUS(o.status), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stdout_guard");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, stdout_on_a_full_device_exits_1_with_one_line);
    tcase_add_test(tc, stdout_closed_exits_1_with_one_line);
    tcase_add_test(tc, stdout_to_a_gone_reader_ends_by_sigpipe_quietly);
    tcase_add_test(tc, stdout_that_takes_all_changes_nothing);
    tcase_add_test(tc, flush_says_false_and_a_closed_stdout_is_not_reused);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
