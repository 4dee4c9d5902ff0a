/* line_reader.h — the lines of a text data file, for the readers that turn
 * them into rows (dataset.c's CSV and LIBSVM, sparse_data.c's criteo and
 * libsvm64): regular files only, read in 64 KiB chunks into one buffer of
 * 1 MiB + 64 KiB whatever the file holds, lines capped at 1 MiB, a NUL byte
 * refused, a stop flag looked at before each line, rewind for the next
 * epoch. One copy, so the readers agree on what a line is and say the same
 * "path:line: what" when one is wrong; each keeps only its format's parsing. */
#ifndef PS_LINE_READER_H
#define PS_LINE_READER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* The longest line taken: a row of 1 MiB is ~100 000 dense features; a
 * longer "line" is a file of another kind (or /dev/zero), and reading it
 * whole would only burn memory. */
#define PS_LINE_MAX_BYTES ((size_t)1 << 20)

typedef struct ps_line_reader ps_line_reader;

/* Opens path and allocates the line buffer (the reader keeps a copy of
 * path for its messages). stop (may be NULL): a signal handler's flag, see
 * ps_line_reader_next. Errors: PS_EDATA "path: is a FIFO, not a data file"
 * (a folder, a device, a socket likewise), unread; PS_EIO "path: reason"
 * when it cannot be opened; PS_ENOMEM "path: out of memory for a line
 * buffer". The caller owns *out (ps_line_reader_close); NULL on error. */
int ps_line_reader_open(const char *path, const volatile sig_atomic_t *stop, ps_line_reader **out,
                        ps_error *err);

/* Opens path as ps_line_reader_open does, with its open errors, for a
 * reader of binary data (IDX): *fd is the caller's to close. */
int ps_line_reader_open_fd(const char *path, int *fd, ps_error *err);

/* The next line in *line, NUL-terminated, without its '\n' and any '\r'
 * before it, and its length in *len; the line is the caller's to write
 * into until the next call or a rewind. 1, or 0 at the end of the file.
 * Errors, N the line's number: PS_EINTR "path:N: reading interrupted" when
 * stop is set (looked at before each line, and when a signal interrupts a
 * read); PS_EDATA "path:N: line longer than 1048576 bytes (1 MiB); not a
 * text data file?" and "path:N: line contains a NUL byte"; PS_EIO "path:
 * reason". */
int ps_line_reader_next(ps_line_reader *r, char **line, size_t *len, ps_error *err);

/* The number of the line the last ps_line_reader_next returned (1-based;
 * 0 before the first and after a rewind). */
uint64_t ps_line_reader_lineno(const ps_line_reader *r);

/* The path given to open (owned by r). */
const char *ps_line_reader_path(const ps_line_reader *r);

/* Back to the first line of the file. PS_EIO "path: reason" when the file
 * cannot be read again. */
int ps_line_reader_rewind(ps_line_reader *r, ps_error *err);

/* Closes the file, frees r and sets *rp to NULL; a NULL *rp is fine. */
void ps_line_reader_close(ps_line_reader **rp);

#endif
