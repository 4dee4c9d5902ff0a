/* report_file.h — a file written whole or not at all: into a temporary
 * file beside it, fsync'd, then renamed over it, so a reader (psrun, a
 * person, a notebook) never sees half of one. Summaries, curves,
 * psworker's model files and predictions are written so. Such a file is
 * written only as a regular file: over one, over a new name in a folder
 * that exists, or through a symbolic link to either (the link stays, the
 * file it leads to is replaced); a folder, a device, a FIFO or a socket is
 * refused, never turned into a file. libc only. */
#ifndef PS_REPORT_FILE_H
#define PS_REPORT_FILE_H

#include <limits.h>
#include <stddef.h>
#include <stdio.h>

#include "error.h"

/* Where an output file named path is written: 0 when path is a regular
 * file, or a new name in a folder that exists and may be written in; a
 * symbolic link is followed (also one that leads to a new name), and
 * target (cap bytes) gets the file replaced: path itself, or where the
 * links lead. PS_EINVAL otherwise, err one line naming path and what it
 * is ("/dev/full is a character device, not a regular file: not written
 * over"), or the folder that is missing or may not be written in; PS_EIO
 * when path cannot be looked at. */
int ps_report_file_target(const char *path, char *target, size_t cap, ps_error *err);

/* ps_report_file_target's check alone: what a program calls on the output
 * paths it was given as it reads its arguments, before any work, so that a
 * long job does not end on a path it could never write. */
int ps_report_file_check(const char *path, ps_error *err);

/* Writes a file with fill(f, arg) into a temporary file beside the target
 * of path (fsync'd, mode 0644), then renames it to that target, so a
 * reader never sees half of it. fill returns 0 or a PS_E code. On failure
 * nothing is left behind and err says "path: reason" (PS_EIO, or fill's
 * code), or why path is not written over (ps_report_file_target). */
int ps_report_file_replace(const char *path, int (*fill)(FILE *f, const void *arg), const void *arg,
                           ps_error *err);

/* The same in three calls, for a file written a piece at a time (several
 * at once): begin checks path (ps_report_file_target) and opens the
 * temporary file as rf->f, commit makes it the target (flushed, mode 0644,
 * fsync'd, checked again, renamed), abort removes it. After begin exactly
 * one of commit and abort is called; commit that fails has removed it.
 * Errors as ps_report_file_replace. */
typedef struct ps_report_file {
    FILE *f;
    char path[PATH_MAX];   /* as given, for messages */
    char target[PATH_MAX]; /* the file replaced: path, or where its links lead */
    char tmp[PATH_MAX];
} ps_report_file;

int ps_report_file_begin(ps_report_file *rf, const char *path, ps_error *err);
int ps_report_file_commit(ps_report_file *rf, ps_error *err);
void ps_report_file_abort(ps_report_file *rf);

#endif
