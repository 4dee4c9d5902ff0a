/* report_file.c — the temporary-then-rename writer of report_file.h: a
 * mkstemp name beside the file, so the rename stays in one file system. */
#include "report_file.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ps_report_file_replace(const char *path, int (*fill)(FILE *f, const void *arg), const void *arg,
                           ps_error *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return ps_error_set(err, PS_EIO, "%s: path too long", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
    int rc = PS_EIO;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
        close(fd);
        goto unlink_tmp;
    }
    rc = fill(f, arg);
    if (rc != 0) {
        ps_error_set(err, rc, "%s: %s", path, ps_strerror(rc));
        fclose(f);
        goto unlink_tmp;
    }
    /* mkstemp makes 0600; an output file is for everyone who may read the folder */
    if (fflush(f) != 0 || ferror(f) || fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
        rc = ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno ? errno : EIO));
        fclose(f);
        goto unlink_tmp;
    }
    if (fclose(f) != 0) {
        rc = ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
        goto unlink_tmp;
    }
    if (rename(tmp, path) != 0) {
        rc = ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
        goto unlink_tmp;
    }
    return 0;
unlink_tmp:
    unlink(tmp);
    return rc;
}
