/* test_report_file.c — the whole-or-nothing file writer: the file is
 * there whole and readable by all, and when its filling fails or its folder
 * is missing, the old file stays as it was and no temporary is left. */
#include <check.h>

#include "check_main.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
                     PS_EIO);
    ck_assert_str_eq(err.msg, "/nonexistent/w0.json: No such file or directory");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("report_file");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, file_replace_writes_the_whole_file_readable_by_all);
    tcase_add_test(tc, file_replace_that_fails_keeps_the_old_file_and_leaves_no_temporary);
    tcase_add_test(tc, file_replace_in_a_missing_folder_says_why);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
