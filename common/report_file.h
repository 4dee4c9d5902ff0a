/* report_file.h — a file written whole or not at all: into a temporary
 * file beside it, fsync'd, then renamed over it, so a reader (psrun, a
 * person, a notebook) never sees half of one. Summaries, curves and
 * psworker's model files are written so. libc only. */
#ifndef PS_REPORT_FILE_H
#define PS_REPORT_FILE_H

#include <limits.h>
#include <stdio.h>

#include "error.h"

/* Writes a file with fill(f, arg) into a temporary file beside path
 * (fsync'd, mode 0644), then renames it to path, so a reader never sees
 * half of it. fill returns 0 or a PS_E code. On failure nothing is left
 * behind and err says "path: reason" (PS_EIO, or fill's code). */
int ps_report_file_replace(const char *path, int (*fill)(FILE *f, const void *arg), const void *arg,
                           ps_error *err);

/* The same in three calls, for a file written a piece at a time (several
 * at once): begin opens the temporary file as rf->f, commit makes it path
 * (flushed, mode 0644, fsync'd, renamed), abort removes it. After begin
 * exactly one of commit and abort is called; commit that fails has
 * removed it. Errors as ps_report_file_replace. */
typedef struct ps_report_file {
    FILE *f;
    char path[PATH_MAX];
    char tmp[PATH_MAX];
} ps_report_file;

int ps_report_file_begin(ps_report_file *rf, const char *path, ps_error *err);
int ps_report_file_commit(ps_report_file *rf, ps_error *err);
void ps_report_file_abort(ps_report_file *rf);

#endif
