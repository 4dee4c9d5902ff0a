/* test_report_file.c — the whole-or-nothing file writer: the file is
 * there whole and readable by all, and when its filling fails or its folder
 * is missing, the old file stays as it was and no temporary is left. What
 * a path names decides what is written: a regular file or a new name is
 * replaced, a symbolic link's target is (the link stays a link), and a
 * folder, a FIFO, a socket or a device is refused and left as it was,
 * by the check alone too. /dev/full is only ever checked, never written. */
#include <check.h>

#include "check_main.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "report_file.h"

/* A new empty folder (caller removes it). */
static void folder_new(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/test_report_file.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* The number of entries of dir, "." and ".." aside. */
static int folder_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* What the file at path holds, up to cap - 1 bytes. */
static void file_read(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static int fill_text(FILE *f, const void *arg)
{
    return fputs(arg, f) < 0 ? PS_EIO : 0;
}

/* Writes half a file, then fails as a format's writer may. */
static int fill_half_then_fail(FILE *f, const void *arg)
{
    (void)arg;
    fputs("{\"job\": ", f);
    return PS_ENOMEM;
}

START_TEST(file_replace_writes_the_whole_file_readable_by_all)
{
    char dir[64], path[96], text[64];
    folder_new(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/summary.json", dir);
    ps_error err = {0};
    ck_assert_int_eq(ps_report_file_replace(path, fill_text, "old\n", &err), 0);
    ck_assert_int_eq(ps_report_file_replace(path, fill_text, "new\n", &err), 0);
    file_read(path, text, sizeof text);
    ck_assert_str_eq(text, "new\n");
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0644);
    ck_assert_int_eq(folder_entries(dir), 1);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(file_replace_that_fails_keeps_the_old_file_and_leaves_no_temporary)
{
    char dir[64], path[96], text[64], want[160];
    folder_new(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/summary.json", dir);
    ps_error err = {0};
    ck_assert_int_eq(ps_report_file_replace(path, fill_text, "old\n", &err), 0);
    ck_assert_int_eq(ps_report_file_replace(path, fill_half_then_fail, NULL, &err), PS_ENOMEM);
    snprintf(want, sizeof want, "%s: out of memory", path);
    ck_assert_str_eq(err.msg, want);
    file_read(path, text, sizeof text);
    ck_assert_str_eq(text, "old\n");
    ck_assert_int_eq(folder_entries(dir), 1);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(file_replace_in_a_missing_folder_says_why)
{
    ps_error err = {0};
    ck_assert_int_eq(ps_report_file_replace("/nonexistent/w0.json", fill_text, "x\n", &err),
                     PS_EINVAL);
    ck_assert_str_eq(err.msg, "/nonexistent/w0.json: the folder /nonexistent does not exist");
}
END_TEST

/* The type of what path itself is (lstat), S_IFMT bits; 0 when nothing. */
static mode_t kind_at(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : 0;
}

/* Removes dir and what it holds (one level, and folders one level down). */
static void folder_remove(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (kind_at(path) == S_IFDIR)
            folder_remove(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

START_TEST(file_replace_through_a_symlink_replaces_its_target_and_keeps_the_link)
{
    char dir[64], target[96], link[96], text[64], to[128];
    folder_new(dir, sizeof dir);
    snprintf(target, sizeof target, "%s/real.json", dir);
    snprintf(link, sizeof link, "%s/summary.json", dir);
    ps_error err = {0};
    ck_assert_int_eq(ps_report_file_replace(target, fill_text, "old\n", &err), 0);
    ck_assert_int_eq(symlink("real.json", link), 0); /* relative, as ln -s makes it */
    ck_assert_int_eq(ps_report_file_replace(link, fill_text, "new\n", &err), 0);
    ck_assert_uint_eq(kind_at(link), S_IFLNK);
    ssize_t n = readlink(link, to, sizeof to - 1);
    ck_assert_int_eq(n, 9);
    to[n] = '\0';
    ck_assert_str_eq(to, "real.json");
    file_read(target, text, sizeof text);
    ck_assert_str_eq(text, "new\n");
    ck_assert_int_eq(folder_entries(dir), 2); /* no temporary left */
    folder_remove(dir);
}
END_TEST

START_TEST(file_replace_through_a_link_to_another_folder_writes_there)
{
    char dir[64], sub[96], link[96], target[128], text[64];
    folder_new(dir, sizeof dir);
    snprintf(sub, sizeof sub, "%s/results", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    snprintf(target, sizeof target, "%s/results/run1.json", dir);
    snprintf(link, sizeof link, "%s/latest.json", dir);
    ck_assert_int_eq(symlink("results/run1.json", link), 0); /* dangling: a new file */
    ps_error err = {0};
    char where[256];
    ck_assert_int_eq(ps_report_file_target(link, where, sizeof where, &err), 0);
    ck_assert_str_eq(where, target);
    ck_assert_int_eq(ps_report_file_replace(link, fill_text, "first\n", &err), 0);
    ck_assert_uint_eq(kind_at(link), S_IFLNK);
    ck_assert_uint_eq(kind_at(target), S_IFREG);
    file_read(link, text, sizeof text);
    ck_assert_str_eq(text, "first\n");
    ck_assert_int_eq(folder_entries(sub), 1);
    ck_assert_int_eq(folder_entries(dir), 2);
    folder_remove(dir);
}
END_TEST

/* Replacing path must fail with PS_EINVAL and a message that starts with
 * want, and leave it of kind `kind` with the folder's entries as they were. */
static void refused(const char *dir, const char *path, mode_t kind, const char *want)
{
    int before = folder_entries(dir);
    ps_error err = {0};
    ck_assert_int_eq(ps_report_file_replace(path, fill_text, "x\n", &err), PS_EINVAL);
    ck_assert_msg(strncmp(err.msg, want, strlen(want)) == 0, "said \"%s\", want \"%s...\"", err.msg,
                  want);
    ck_assert_uint_eq(kind_at(path), kind);
    ck_assert_int_eq(folder_entries(dir), before);
    ps_error check = {0};
    ck_assert_int_eq(ps_report_file_check(path, &check), PS_EINVAL);
    ck_assert_str_eq(check.msg, err.msg);
}

START_TEST(file_replace_refuses_a_folder_a_fifo_and_a_socket)
{
    char dir[64], path[96], want[160];
    folder_new(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/out.json", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(want, sizeof want, "%s is a folder, not a regular file: refusing to write over it",
             path);
    refused(dir, path, S_IFDIR, want);
    rmdir(path);

    ck_assert_int_eq(mkfifo(path, 0600), 0);
    snprintf(want, sizeof want, "%s is a FIFO, not a regular file: refusing to write over it",
             path);
    refused(dir, path, S_IFIFO, want);
    unlink(path);

    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    snprintf(want, sizeof want, "%s is a socket, not a regular file", path);
    refused(dir, path, S_IFSOCK, want);
    close(fd);
    folder_remove(dir);
}
END_TEST

START_TEST(file_replace_refuses_a_device_node)
{
    /* a character device of our own (the tests run as root) is written at;
     * /dev/full only checked */
    ps_error err = {0};
    ck_assert_int_eq(ps_report_file_check("/dev/full", &err), PS_EINVAL);
    ck_assert_str_eq(err.msg, "/dev/full is a character device, not a regular file: refusing to "
                              "write over it");
    char dir[64], path[96], want[160];
    folder_new(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/full", dir);
    if (mknod(path, S_IFCHR | 0600, makedev(1, 7)) != 0) {
        ck_assert_msg(errno == EPERM || errno == EACCES, "mknod: %s", strerror(errno));
        folder_remove(dir); /* no CAP_MKNOD here: the check of /dev/full above stands */
        return;
    }
    snprintf(want, sizeof want, "%s is a character device", path);
    refused(dir, path, S_IFCHR, want);
    folder_remove(dir);
}
END_TEST

START_TEST(file_replace_refuses_a_link_to_a_fifo_and_a_link_loop)
{
    char dir[64], fifo[96], link[96], loop[96], want[256];
    folder_new(dir, sizeof dir);
    snprintf(fifo, sizeof fifo, "%s/pipe", dir);
    snprintf(link, sizeof link, "%s/summary.json", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    ck_assert_int_eq(symlink(fifo, link), 0);
    snprintf(want, sizeof want, "%s leads to %s, a FIFO, not a regular file", link, fifo);
    refused(dir, link, S_IFLNK, want);
    ck_assert_uint_eq(kind_at(fifo), S_IFIFO);
    snprintf(loop, sizeof loop, "%s/loop", dir);
    ck_assert_int_eq(symlink("loop", loop), 0);
    snprintf(want, sizeof want, "%s: too many symbolic links", loop);
    refused(dir, loop, S_IFLNK, want);
    folder_remove(dir);
}
END_TEST

START_TEST(file_check_takes_a_regular_file_and_a_new_name)
{
    char dir[64], path[96], target[128];
    folder_new(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/new.json", dir);
    ps_error err = {0};
    ck_assert_int_eq(ps_report_file_target(path, target, sizeof target, &err), 0);
    ck_assert_str_eq(target, path);
    ck_assert_int_eq(folder_entries(dir), 0); /* a check writes nothing */
    ck_assert_int_eq(ps_report_file_replace(path, fill_text, "x\n", &err), 0);
    ck_assert_int_eq(ps_report_file_check(path, &err), 0);
    ck_assert_int_eq(ps_report_file_check("", &err), PS_EINVAL);
    ck_assert_str_eq(err.msg, "an empty file name");
    /* a file where its folder should be */
    char under[128];
    snprintf(under, sizeof under, "%s/x.json", path);
    ck_assert_int_eq(ps_report_file_check(under, &err), PS_EINVAL);
    char want[256];
    snprintf(want, sizeof want, "%s: %s is not a folder", under, path);
    ck_assert_str_eq(err.msg, want);
    folder_remove(dir);
}
END_TEST

START_TEST(file_commit_refuses_a_path_that_became_a_fifo_while_written)
{
    char dir[64], path[96];
    folder_new(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/preds.csv", dir);
    ps_report_file rf;
    ps_error err = {0};
    ck_assert_int_eq(ps_report_file_begin(&rf, path, &err), 0);
    fputs("0,0.5\n", rf.f);
    ck_assert_int_eq(mkfifo(path, 0600), 0); /* meanwhile, someone made a FIFO there */
    ck_assert_int_eq(ps_report_file_commit(&rf, &err), PS_EINVAL);
    ck_assert_uint_eq(kind_at(path), S_IFIFO);
    ck_assert_int_eq(folder_entries(dir), 1); /* the temporary is gone */
    folder_remove(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("report_file");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, file_replace_writes_the_whole_file_readable_by_all);
    tcase_add_test(tc, file_replace_that_fails_keeps_the_old_file_and_leaves_no_temporary);
    tcase_add_test(tc, file_replace_in_a_missing_folder_says_why);
    tcase_add_test(tc, file_replace_through_a_symlink_replaces_its_target_and_keeps_the_link);
    tcase_add_test(tc, file_replace_through_a_link_to_another_folder_writes_there);
    tcase_add_test(tc, file_replace_refuses_a_folder_a_fifo_and_a_socket);
    tcase_add_test(tc, file_replace_refuses_a_device_node);
    tcase_add_test(tc, file_replace_refuses_a_link_to_a_fifo_and_a_link_loop);
    tcase_add_test(tc, file_check_takes_a_regular_file_and_a_new_name);
    tcase_add_test(tc, file_commit_refuses_a_path_that_became_a_fifo_while_written);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
