/* report_file.c — the temporary-then-rename writer of report_file.h: a
 * mkstemp name beside the file, so the rename stays in one file system. */
#include "report_file.h"


#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ps_report_file_begin(ps_report_file *rf, const char *path, ps_error *err)
{
    rf->f = NULL;
    if (snprintf(rf->path, sizeof rf->path, "%s", path) >= (int)sizeof rf->path ||
        snprintf(rf->tmp, sizeof rf->tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof rf->tmp)
        return ps_error_set(err, PS_EIO, "%s: path too long", path);
    int fd = mkstemp(rf->tmp);
    if (fd < 0)
        return ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
    rf->f = fdopen(fd, "w");
    if (rf->f == NULL) {
        int rc = ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(rf->tmp);
        return rc;
    }
    return 0;
}

int ps_report_file_commit(ps_report_file *rf, ps_error *err)
{
    /* mkstemp makes 0600; an output file is for everyone who may read the folder */
    int fd = fileno(rf->f);
    if (fflush(rf->f) != 0 || ferror(rf->f) || fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
        int rc = ps_error_set(err, PS_EIO, "%s: %s", rf->path, strerror(errno ? errno : EIO));
        ps_report_file_abort(rf);
        return rc;
    }
    FILE *f = rf->f;
    rf->f = NULL;
    if (fclose(f) != 0 || rename(rf->tmp, rf->path) != 0) {
        int rc = ps_error_set(err, PS_EIO, "%s: %s", rf->path, strerror(errno));
        unlink(rf->tmp);
        return rc;
    }
    return 0;
}

void ps_report_file_abort(ps_report_file *rf)
{
    if (rf->f != NULL)
        fclose(rf->f);
    rf->f = NULL;
    unlink(rf->tmp);
}

int ps_report_file_replace(const char *path, int (*fill)(FILE *f, const void *arg), const void *arg,
                           ps_error *err)
{
    ps_report_file rf;
    int rc = ps_report_file_begin(&rf, path, err);
    if (rc != 0)
        return rc;
    rc = fill(rf.f, arg);
    if (rc != 0) {
        ps_error_set(err, rc, "%s: %s", path, ps_strerror(rc));
        ps_report_file_abort(&rf);
        return rc;
    }
    return ps_report_file_commit(&rf, err);
}
