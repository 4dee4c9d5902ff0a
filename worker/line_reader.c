/* line_reader.c — the lines of a text data file (line_reader.h): chunks
 * read into one buffer that holds the longest line allowed and one chunk
 * more, so memory stays bounded whatever the file holds; lines are cut in
 * place, never copied. */
#include "line_reader.h"

#include "util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bytes asked of read() at a time, at the most. */
#define READ_CHUNK ((size_t)64 << 10)

struct ps_line_reader {
    int fd;
    char *buf;      /* PS_LINE_MAX_BYTES + READ_CHUNK + 1 bytes */
    size_t start;   /* the next line begins here */
    size_t scanned; /* [start, scanned) holds no '\n' */
    size_t end;     /* bytes in buf */
    bool eof;
    uint64_t lineno; /* lines handed out since open or rewind */
    char *path;
    const volatile sig_atomic_t *stop;
};

enum { LINE_OK = 1, LINE_EOF = 0, LINE_LONG = -1, LINE_IOERR = -2, LINE_STOPPED = -3 };

static bool stopped(const ps_line_reader *r)
{
    return r->stop != NULL && *r->stop != 0;
}

int ps_line_reader_open_fd(const char *path, int *fd, ps_error *err)
{
    const char *kind;
    int rc = ps_file_open_regular(path, fd, &kind);
    if (rc == PS_EINVAL)
        return ps_error_set(err, PS_EDATA, "%s: is %s, not a data file", path, kind);
    if (rc != 0)
        return ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

int ps_line_reader_open(const char *path, const volatile sig_atomic_t *stop, ps_line_reader **out,
                        ps_error *err)
{
    *out = NULL;
    int fd;
    int rc = ps_line_reader_open_fd(path, &fd, err);
    if (rc != 0)
        return rc;
    ps_line_reader *r = calloc(1, sizeof *r);
    if (r == NULL) {
        close(fd);
        return ps_error_set(err, PS_ENOMEM, "%s: out of memory for a line buffer", path);
    }
    r->fd = fd;
    r->stop = stop;
    r->path = strdup(path);
    r->buf = malloc(PS_LINE_MAX_BYTES + READ_CHUNK + 1);
    if (r->path == NULL || r->buf == NULL) {
        ps_line_reader_close(&r);
        return ps_error_set(err, PS_ENOMEM, "%s: out of memory for a line buffer", path);
    }
    *out = r;
    return 0;
}

/* The next line, NUL-terminated and without its '\n', in *line and its
 * length in *len. LINE_OK, LINE_EOF, LINE_LONG past PS_LINE_MAX_BYTES,
 * LINE_IOERR (errno set) or LINE_STOPPED when a read was interrupted by a
 * signal that set stop. */
static int line_cut(ps_line_reader *r, char **line, size_t *len)
{
    for (;;) {
        char *nl = memchr(r->buf + r->scanned, '\n', r->end - r->scanned);
        if (nl != NULL || (r->eof && r->start < r->end)) {
            size_t stop_at = nl != NULL ? (size_t)(nl - r->buf) : r->end;
            *line = r->buf + r->start;
            *len = stop_at - r->start;
            r->buf[stop_at] = '\0';
            r->start = r->scanned = nl != NULL ? stop_at + 1 : r->end;
            return *len > PS_LINE_MAX_BYTES ? LINE_LONG : LINE_OK;
        }
        r->scanned = r->end;
        if (r->end - r->start > PS_LINE_MAX_BYTES)
            return LINE_LONG;
        if (r->eof)
            return LINE_EOF;
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->scanned = r->end;
            r->start = 0;
        }
        ssize_t n = read(r->fd, r->buf + r->end, PS_LINE_MAX_BYTES + READ_CHUNK - r->end);
        if (n < 0 && errno == EINTR) {
            if (stopped(r))
                return LINE_STOPPED;
            continue;
        }
        if (n < 0)
            return LINE_IOERR;
        if (n == 0)
            r->eof = true;
        r->end += (size_t)n;
    }
}

/* Strips a '\r' line ending; false if the line holds a NUL byte. */
static bool line_chomp(char *line, size_t *len)
{
    if (*len != strlen(line))
        return false;
    while (*len > 0 && line[*len - 1] == '\r')
        line[--*len] = '\0';
    return true;
}

int ps_line_reader_next(ps_line_reader *r, char **line, size_t *len, ps_error *err)
{
    /* a volatile load a line costs nothing beside parsing one */
    if (stopped(r))
        return ps_error_set(err, PS_EINTR, "%s:%llu: reading interrupted", r->path,
                            (unsigned long long)r->lineno + 1);
    int got = line_cut(r, line, len);
    if (got == LINE_EOF)
        return 0;
    r->lineno++;
    if (got == LINE_LONG)
        return ps_error_set(err, PS_EDATA, "%s:%llu: line longer than %zu bytes (1 MiB); not a %s",
                            r->path, (unsigned long long)r->lineno, PS_LINE_MAX_BYTES,
                            "text data file?");
    if (got == LINE_STOPPED)
        return ps_error_set(err, PS_EINTR, "%s:%llu: reading interrupted", r->path,
                            (unsigned long long)r->lineno);
    if (got == LINE_IOERR)
        return ps_error_set(err, PS_EIO, "%s: %s", r->path, strerror(errno));
    if (!line_chomp(*line, len))
        return ps_error_set(err, PS_EDATA, "%s:%llu: line contains a NUL byte", r->path,
                            (unsigned long long)r->lineno);
    return 1;
}

uint64_t ps_line_reader_lineno(const ps_line_reader *r)
{
    return r->lineno;
}

const char *ps_line_reader_path(const ps_line_reader *r)
{
    return r->path;
}

int ps_line_reader_rewind(ps_line_reader *r, ps_error *err)
{
    if (lseek(r->fd, 0, SEEK_SET) != 0)
        return ps_error_set(err, PS_EIO, "%s: %s", r->path, strerror(errno));
    r->start = r->scanned = r->end = 0;
    r->eof = false;
    r->lineno = 0;
    return 0;
}

void ps_line_reader_close(ps_line_reader **rp)
{
    if (rp == NULL || *rp == NULL)
        return;
    ps_line_reader *r = *rp;
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    free(r->path);
    free(r);
    *rp = NULL;
}
