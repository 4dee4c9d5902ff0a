/* report_file.c — the temporary-then-rename writer of report_file.h: the
 * path's symbolic links followed by hand (lstat and readlink, a dangling
 * one too), the file they end on checked, and a mkstemp name beside it, so
 * the rename stays in one file system and replaces that file, not the
 * link. */
#include "report_file.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINKS_MAX 40 /* as the kernel's own limit on a path's links */

/* What a file of this mode is, for a message. */
static const char *kind_of(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a folder";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "a special file";
}

/* The folder of path into dir: "." for a bare name, "/" for one in /. */
static bool folder_of(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return (size_t)snprintf(dir, cap, ".") < cap;
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    return (size_t)snprintf(dir, cap, "%.*s", (int)len, path) < cap;
}

/* A new name: its folder must exist and take new files. */
static int folder_check(const char *path, const char *name, ps_error *err)
{
    char dir[PATH_MAX];
    if (!folder_of(name, dir, sizeof dir))
        return ps_error_set(err, PS_EINVAL, "%s: path too long", path);
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return ps_error_set(err, PS_EINVAL, "%s: the folder %s does not exist", path, dir);
        return ps_error_set(err, PS_EIO, "%s: %s: %s", path, dir, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return ps_error_set(err, PS_EINVAL, "%s: %s is not a folder", path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return ps_error_set(err, PS_EINVAL, "%s: cannot write in the folder %s: %s", path, dir,
                            strerror(errno));
    return 0;
}

/* The link at cur made the path it leads to, in place (relative to the
 * link's folder). */
static int link_follow(const char *path, char *cur, size_t cap, ps_error *err)
{
    char to[PATH_MAX], dir[PATH_MAX];
    ssize_t n = readlink(cur, to, sizeof to - 1);
    if (n < 0)
        return ps_error_set(err, PS_EIO, "%s: %s: %s", path, cur, strerror(errno));
    to[n] = '\0';
    int len;
    if (to[0] == '/' || !folder_of(cur, dir, sizeof dir))
        len = snprintf(cur, cap, "%s", to);
    else
        len = snprintf(cur, cap, "%s/%s", dir, to);
    if (len < 0 || (size_t)len >= cap)
        return ps_error_set(err, PS_EINVAL, "%s: path too long", path);
    return 0;
}

int ps_report_file_target(const char *path, char *target, size_t cap, ps_error *err)
{
    if (path[0] == '\0')
        return ps_error_set(err, PS_EINVAL, "an empty file name");
    char cur[PATH_MAX];
    if ((size_t)snprintf(cur, sizeof cur, "%s", path) >= sizeof cur)
        return ps_error_set(err, PS_EINVAL, "%s: path too long", path);
    for (int links = 0;; links++) {
        struct stat st;
        if (lstat(cur, &st) != 0) {
            if (errno != ENOENT && errno != ENOTDIR)
                return ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
            int rc = folder_check(path, cur, err);
            if (rc != 0)
                return rc;
            break;
        }
        if (S_ISLNK(st.st_mode)) {
            if (links == LINKS_MAX)
                return ps_error_set(err, PS_EINVAL, "%s: too many symbolic links", path);
            int rc = link_follow(path, cur, sizeof cur, err);
            if (rc != 0)
                return rc;
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            if (links == 0)
                return ps_error_set(err, PS_EINVAL,
                                    "%s is %s, not a regular file: refusing to write over it", path,
                                    kind_of(st.st_mode));
            return ps_error_set(err, PS_EINVAL,
                                "%s leads to %s, %s, not a regular file: refusing to write over it",
                                path, cur, kind_of(st.st_mode));
        }
        int rc = folder_check(path, cur, err);
        if (rc != 0)
            return rc;
        break;
    }
    if ((size_t)snprintf(target, cap, "%s", cur) >= cap)
        return ps_error_set(err, PS_EINVAL, "%s: path too long", path);
    return 0;
}

int ps_report_file_check(const char *path, ps_error *err)
{
    char target[PATH_MAX];
    return ps_report_file_target(path, target, sizeof target, err);
}

int ps_report_file_begin(ps_report_file *rf, const char *path, ps_error *err)
{
    rf->f = NULL;
    rf->tmp[0] = '\0';
    if (snprintf(rf->path, sizeof rf->path, "%s", path) >= (int)sizeof rf->path)
        return ps_error_set(err, PS_EIO, "%s: path too long", path);
    int rc = ps_report_file_target(path, rf->target, sizeof rf->target, err);
    if (rc != 0)
        return rc;
    if (snprintf(rf->tmp, sizeof rf->tmp, "%s.tmp.XXXXXX", rf->target) >= (int)sizeof rf->tmp) {
        rf->tmp[0] = '\0';
        return ps_error_set(err, PS_EIO, "%s: path too long", path);
    }
    int fd = mkstemp(rf->tmp);
    if (fd < 0) {
        rc = ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
        rf->tmp[0] = '\0';
        return rc;
    }
    rf->f = fdopen(fd, "w");
    if (rf->f == NULL) {
        rc = ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(rf->tmp);
        rf->tmp[0] = '\0';
        return rc;
    }
    return 0;
}

int ps_report_file_commit(ps_report_file *rf, ps_error *err)
{
    /* mkstemp makes 0600; an output file is for everyone who may read the folder */
    int fd = fileno(rf->f);
    errno = 0;
    if (fflush(rf->f) != 0 || ferror(rf->f) || fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
        int rc = ps_error_set(err, PS_EIO, "%s: %s", rf->path, strerror(errno ? errno : EIO));
        ps_report_file_abort(rf);
        return rc;
    }
    FILE *f = rf->f;
    rf->f = NULL;
    if (fclose(f) != 0) {
        int rc = ps_error_set(err, PS_EIO, "%s: %s", rf->path, strerror(errno));
        ps_report_file_abort(rf);
        return rc;
    }
    /* what path names may have changed while the file was written (a job
     * runs for hours): checked again, and replaced only where it still
     * leads */
    char now[PATH_MAX];
    int rc = ps_report_file_target(rf->path, now, sizeof now, err);
    if (rc == 0 && strcmp(now, rf->target) != 0)
        rc = ps_error_set(err, PS_EIO, "%s: now leads to %s, not %s as it did: not written",
                          rf->path, now, rf->target);
    if (rc == 0 && rename(rf->tmp, rf->target) != 0)
        rc = ps_error_set(err, PS_EIO, "%s: %s", rf->path, strerror(errno));
    if (rc != 0)
        ps_report_file_abort(rf);
    rf->tmp[0] = '\0';
    return rc;
}

void ps_report_file_abort(ps_report_file *rf)
{
    if (rf->f != NULL)
        fclose(rf->f);
    rf->f = NULL;
    if (rf->tmp[0] != '\0')
        unlink(rf->tmp);
    rf->tmp[0] = '\0';
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
