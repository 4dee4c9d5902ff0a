/* fuzz_file.h — for fuzz targets whose code under test reads files: a
 * private folder made once per process, and the fuzzer's bytes written to
 * a file in it. */
#ifndef PS_FUZZ_FILE_H
#define PS_FUZZ_FILE_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The folder, made on first use under $TMPDIR (or /tmp); libFuzzer runs
 * one input at a time, so one folder serves them all. */
static inline const char *fuzz_dir(void)
{
    static char dir[256];
    if (dir[0] == '\0') {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/psfuzz-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        if (mkdtemp(dir) == NULL) {
            perror("fuzz: mkdtemp");
            abort(); /* the harness, not the code under test, is broken */
        }
    }
    return dir;
}

/* Writes n bytes to dir/name (replacing it); the path goes into out. */
static inline void fuzz_write(const char *name, const void *data, size_t n, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", fuzz_dir(), name);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror("fuzz: open");
        abort();
    }
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            perror("fuzz: write");
            abort();
        }
        p += w;
        n -= (size_t)w;
    }
    close(fd);
}

#endif
