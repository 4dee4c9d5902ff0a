/* report_file.h — a file written whole or not at all: into a temporary
 * file beside it, fsync'd, then renamed over it, so a reader (psrun, a
 * person, a notebook) never sees half of one. Summaries, curves and
 * psworker's model files are written so. libc only. */
#ifndef PS_REPORT_FILE_H
#define PS_REPORT_FILE_H

#include <stdio.h>

#include "error.h"

/* Writes a file with fill(f, arg) into a temporary file beside path
 * (fsync'd, mode 0644), then renames it to path, so a reader never sees
 * half of it. fill returns 0 or a PS_E code. On failure nothing is left
 * behind and err says "path: reason" (PS_EIO, or fill's code). */
int ps_report_file_replace(const char *path, int (*fill)(FILE *f, const void *arg), const void *arg,
                           ps_error *err);

#endif
