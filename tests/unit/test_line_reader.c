/* test_line_reader.c — the line reader under every text data reader: lines
 * that straddle the buffer's refills come out whole and numbered, "\r\n"
 * ends a line, a line of exactly 1 MiB is taken and one byte more refused,
 * a NUL byte refused, rewind starts over, an empty file has no line, the
 * stop flag ends the read, non-regular files are refused unread; every
 * refusal with its exact "path:line: ..." message. */
#include <check.h>

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "line_reader.h"

/* Writes len bytes of text to a new temporary file; its path goes to path
 * (64 bytes). */
static void temp_write(char *path, const char *text, size_t len)
{
    strcpy(path, "/tmp/test_line_reader.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static ps_line_reader *open_ok(const char *path, const volatile sig_atomic_t *stop)
{
    ps_line_reader *r = NULL;
    ps_error err;
    ck_assert_int_eq(ps_line_reader_open(path, stop, &r, &err), 0);
    ck_assert_ptr_nonnull(r);
    return r;
}

/* A reader of a new temporary file of len bytes of text (path as
 * temp_write's). */
static ps_line_reader *open_text(char *path, const char *text, size_t len,
                                 const volatile sig_atomic_t *stop)
{
    temp_write(path, text, len);
    return open_ok(path, stop);
}

/* Closes r and removes its file. */
static void close_and_remove(ps_line_reader **r, const char *path)
{
    ps_line_reader_close(r);
    ck_assert_ptr_null(*r);
    unlink(path);
}

/* Asserts that the next line is want (wlen bytes) and numbered lineno. */
static void next_is(ps_line_reader *r, const char *want, size_t wlen, uint64_t lineno)
{
    char *line;
    size_t len;
    ps_error err;
    ck_assert_int_eq(ps_line_reader_next(r, &line, &len, &err), 1);
    ck_assert_uint_eq(len, wlen);
    ck_assert_int_eq(line[len], '\0');
    ck_assert(memcmp(line, want, wlen) == 0);
    ck_assert_uint_eq(ps_line_reader_lineno(r), lineno);
}

static void at_end(ps_line_reader *r)
{
    char *line;
    size_t len;
    ps_error err;
    ck_assert_int_eq(ps_line_reader_next(r, &line, &len, &err), 0);
}

/* Asserts that the next call fails with code and "<path>:<what>". */
static void next_fails(ps_line_reader *r, const char *path, int code, const char *what)
{
    char *line, want[256];
    size_t len;
    ps_error err;
    ck_assert_int_eq(ps_line_reader_next(r, &line, &len, &err), code);
    snprintf(want, sizeof want, "%s:%s", path, what);
    ck_assert_str_eq(err.msg, want);
}

/* A text of about `bytes` bytes: lines of 0 to 4999 'a'..'z' bytes (line i
 * has (i * 7919) % 5000 of them, each byte its line number mod 26), each
 * ended by '\n'; its line count in *lines. The caller frees it. */
static char *many_lines(size_t bytes, size_t *size, size_t *lines)
{
    char *text = malloc(bytes + 5000 + 1);
    ck_assert_ptr_nonnull(text);
    size_t n = 0, i = 0;
    while (n < bytes) {
        size_t k = (i * 7919) % 5000;
        memset(text + n, 'a' + (int)(i % 26), k);
        text[n + k] = '\n';
        n += k + 1;
        i++;
    }
    *size = n;
    *lines = i;
    return text;
}

/* Reads every line of a file written by many_lines and checks each. */
static void read_many_lines(ps_line_reader *r, size_t lines)
{
    char *want = malloc(5000);
    ck_assert_ptr_nonnull(want);
    for (size_t i = 0; i < lines; i++) {
        size_t k = (i * 7919) % 5000;
        memset(want, 'a' + (int)(i % 26), k);
        next_is(r, want, k, i + 1);
    }
    at_end(r);
    free(want);
}

START_TEST(lines_across_refills_come_out_whole_and_numbered)
{
    /* 5 MiB: the buffer (1 MiB + 64 KiB) is refilled several times, each
     * refill in the middle of a line */
    char path[64];
    size_t size, lines;
    char *text = many_lines((size_t)5 << 20, &size, &lines);
    ps_line_reader *r = open_text(path, text, size, NULL);
    read_many_lines(r, lines);
    at_end(r); /* and again: the end stays the end */
    close_and_remove(&r, path);
    ps_line_reader_close(&r); /* a NULL reader is fine */
    free(text);
}
END_TEST

START_TEST(a_last_line_without_newline_and_empty_lines_are_lines)
{
    char path[64];
    const char text[] = "one\n\n  \nlast";
    ps_line_reader *r = open_text(path, text, sizeof text - 1, NULL);
    next_is(r, "one", 3, 1);
    next_is(r, "", 0, 2);
    next_is(r, "  ", 2, 3);
    next_is(r, "last", 4, 4);
    at_end(r);
    close_and_remove(&r, path);
}
END_TEST

START_TEST(carriage_returns_before_a_newline_are_stripped)
{
    char path[64];
    const char text[] = "a,b\r\nc\r\r\n\r\nx\ry\nend\r";
    ps_line_reader *r = open_text(path, text, sizeof text - 1, NULL);
    char *line;
    size_t len;
    ps_error err;
    ck_assert_int_eq(ps_line_reader_next(r, &line, &len, &err), 1);
    ck_assert_str_eq(line, "a,b");
    ck_assert_uint_eq(len, 3);
    next_is(r, "c", 1, 2);
    next_is(r, "", 0, 3);
    next_is(r, "x\ry", 3, 4); /* only a line's end is stripped */
    next_is(r, "end", 3, 5);
    at_end(r);
    close_and_remove(&r, path);
}
END_TEST

/* A reader of a new file of a line "first", then a line of `bytes` bytes
 * 'x' ended by end, past its first line. */
static ps_line_reader *open_long_line(char *path, size_t bytes, const char *end)
{
    size_t n = 6 + bytes + strlen(end);
    char *text = malloc(n + 1);
    ck_assert_ptr_nonnull(text);
    memcpy(text, "first\n", 6);
    memset(text + 6, 'x', bytes);
    memcpy(text + 6 + bytes, end, strlen(end));
    ps_line_reader *r = open_text(path, text, n, NULL);
    free(text);
    next_is(r, "first", 5, 1);
    return r;
}

START_TEST(a_line_of_exactly_the_cap_is_taken)
{
    char path[64];
    char *want = malloc(PS_LINE_MAX_BYTES);
    ck_assert_ptr_nonnull(want);
    memset(want, 'x', PS_LINE_MAX_BYTES);
    /* with its newline and a line after it, and as the last line */
    ps_line_reader *r = open_long_line(path, PS_LINE_MAX_BYTES, "\nafter\n");
    next_is(r, want, PS_LINE_MAX_BYTES, 2);
    next_is(r, "after", 5, 3);
    at_end(r);
    close_and_remove(&r, path);
    r = open_long_line(path, PS_LINE_MAX_BYTES, "");
    next_is(r, want, PS_LINE_MAX_BYTES, 2);
    at_end(r);
    close_and_remove(&r, path);
    free(want);
}
END_TEST

START_TEST(a_line_one_byte_past_the_cap_is_refused)
{
    /* with its newline, as the last line, a line of the cap with "\r\n"
     * (the cap counts the '\r'), and 3 MiB without a newline */
    const struct {
        size_t bytes;
        const char *end;
    } cases[] = {{PS_LINE_MAX_BYTES + 1, "\nafter\n"},
                 {PS_LINE_MAX_BYTES + 1, ""},
                 {PS_LINE_MAX_BYTES, "\r\n"},
                 {(size_t)3 << 20, ""}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[64];
        ps_line_reader *r = open_long_line(path, cases[i].bytes, cases[i].end);
        next_fails(r, path, PS_EDATA,
                   "2: line longer than 1048576 bytes (1 MiB); not a text data file?");
        close_and_remove(&r, path);
    }
}
END_TEST

START_TEST(a_nul_byte_is_refused_with_its_line)
{
    char path[64];
    const char text[] = "ok\nab\0cd\nnever\n";
    ps_line_reader *r = open_text(path, text, sizeof text - 1, NULL);
    next_is(r, "ok", 2, 1);
    next_fails(r, path, PS_EDATA, "2: line contains a NUL byte");
    close_and_remove(&r, path);
}
END_TEST

START_TEST(rewind_starts_over_from_the_first_line)
{
    char path[64];
    size_t size, lines;
    char *text = many_lines((size_t)3 << 20, &size, &lines);
    ps_line_reader *r = open_text(path, text, size, NULL);
    ps_error err;
    /* halfway, past the first refill */
    char *line;
    size_t len;
    for (size_t i = 0; i < lines / 2; i++)
        ck_assert_int_eq(ps_line_reader_next(r, &line, &len, &err), 1);
    ck_assert_uint_eq(ps_line_reader_lineno(r), lines / 2);
    ck_assert_int_eq(ps_line_reader_rewind(r, &err), 0);
    ck_assert_uint_eq(ps_line_reader_lineno(r), 0);
    read_many_lines(r, lines);
    /* from the end, too */
    ck_assert_int_eq(ps_line_reader_rewind(r, &err), 0);
    read_many_lines(r, lines);
    close_and_remove(&r, path);
    free(text);
}
END_TEST

START_TEST(an_empty_file_has_no_line)
{
    char path[64];
    ps_line_reader *r = open_text(path, "", 0, NULL);
    at_end(r);
    at_end(r);
    ck_assert_uint_eq(ps_line_reader_lineno(r), 0);
    ck_assert_str_eq(ps_line_reader_path(r), path);
    ps_error err;
    ck_assert_int_eq(ps_line_reader_rewind(r, &err), 0);
    at_end(r);
    close_and_remove(&r, path);
}
END_TEST

START_TEST(a_set_stop_flag_ends_the_read_before_the_next_line)
{
    char path[64];
    const char text[] = "1\n2\n3\n";
    volatile sig_atomic_t stop = 1;
    ps_line_reader *r = open_text(path, text, sizeof text - 1, &stop);
    next_fails(r, path, PS_EINTR, "1: reading interrupted");
    ps_line_reader_close(&r);
    stop = 0;
    r = open_ok(path, &stop);
    next_is(r, "1", 1, 1);
    next_is(r, "2", 1, 2);
    stop = 1;
    next_fails(r, path, PS_EINTR, "3: reading interrupted");
    close_and_remove(&r, path);
}
END_TEST

START_TEST(non_regular_files_are_refused_unread)
{
    /* a FIFO nothing ever writes: opening it to read would block forever */
    char dir[64], fifo[96];
    strcpy(dir, "/tmp/test_line_reader.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    const struct {
        const char *path;
        int code;
        const char *what;
    } cases[] = {{fifo, PS_EDATA, "is a FIFO, not a data file"},
                 {dir, PS_EDATA, "is a folder, not a data file"},
                 {"/dev/zero", PS_EDATA, "is a character device, not a data file"},
                 {"/nonexistent/a.csv", PS_EIO, "No such file or directory"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char want[160];
        snprintf(want, sizeof want, "%s: %s", cases[i].path, cases[i].what);
        ps_line_reader *r = (ps_line_reader *)1;
        ps_error err;
        ck_assert_int_eq(ps_line_reader_open(cases[i].path, NULL, &r, &err), cases[i].code);
        ck_assert_ptr_null(r);
        ck_assert_str_eq(err.msg, want);
        int fd = 7;
        ck_assert_int_eq(ps_line_reader_open_fd(cases[i].path, &fd, &err), cases[i].code);
        ck_assert_int_eq(fd, -1);
        ck_assert_str_eq(err.msg, want);
    }
    unlink(fifo);
    rmdir(dir);
}
END_TEST

static Suite *line_reader_suite(void)
{
    Suite *s = suite_create("line_reader");
    TCase *tc = tcase_create("line_reader");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, lines_across_refills_come_out_whole_and_numbered);
    tcase_add_test(tc, a_last_line_without_newline_and_empty_lines_are_lines);
    tcase_add_test(tc, carriage_returns_before_a_newline_are_stripped);
    tcase_add_test(tc, a_line_of_exactly_the_cap_is_taken);
    tcase_add_test(tc, a_line_one_byte_past_the_cap_is_refused);
    tcase_add_test(tc, a_nul_byte_is_refused_with_its_line);
    tcase_add_test(tc, rewind_starts_over_from_the_first_line);
    tcase_add_test(tc, an_empty_file_has_no_line);
    tcase_add_test(tc, a_set_stop_flag_ends_the_read_before_the_next_line);
    tcase_add_test(tc, non_regular_files_are_refused_unread);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(line_reader_suite());
}
