/* test_curve.c — CURVE key files: keygen writes a pair ZeroMQ accepts, a
 * secret key others may read is refused naming the file and mode, systemd's
 * credential of the same name wins, and a folder of public keys is a set. */
#include <check.h>

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "curve.h"

static char dir[64];

static void dir_make(void)
{
    strcpy(dir, "/tmp/ps-test-curve-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void dir_remove(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

START_TEST(keygen_writes_a_pair_with_a_private_secret)
{
    dir_make();
    char name[128], sec[160], pub[160];
    path(name, sizeof name, "w");
    path(sec, sizeof sec, "w.key_secret");
    path(pub, sizeof pub, "w.key");
    ps_error err;
    ck_assert_int_eq(ps_curve_keygen(name, &err), 0);
    struct stat st;
    ck_assert_int_eq(stat(sec, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    ps_curve_pair pair, pubonly;
    ck_assert_int_eq(ps_curve_secret_load(sec, &pair, NULL, 0, &err), 0);
    ck_assert_int_eq(ps_curve_public_load(pub, &pubonly, &err), 0);
    ck_assert_str_eq(pair.public_z85, pubonly.public_z85);
    char derived[41];
    ck_assert_int_eq(zmq_curve_public(derived, pair.secret_z85), 0);
    ck_assert_str_eq(derived, pair.public_z85);
    /* a second keygen does not overwrite the pair */
    ck_assert_int_eq(ps_curve_keygen(name, &err), PS_EIO);
    dir_remove();
}
END_TEST

START_TEST(secret_key_others_can_read_is_refused)
{
    dir_make();
    char name[128], sec[160], want[256];
    path(name, sizeof name, "w");
    path(sec, sizeof sec, "w.key_secret");
    ps_error err;
    ck_assert_int_eq(ps_curve_keygen(name, &err), 0);
    ck_assert_int_eq(chmod(sec, 0644), 0);
    ps_curve_pair pair;
    ck_assert_int_eq(ps_curve_secret_load(sec, &pair, NULL, 0, &err), PS_ECONFIG);
    snprintf(want, sizeof want, "%s: mode 0644 lets others read the secret key: chmod 600 it", sec);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(chmod(sec, 0640), 0);
    ck_assert_int_eq(ps_curve_secret_load(sec, &pair, NULL, 0, &err), PS_ECONFIG);
    dir_remove();
}
END_TEST

START_TEST(credentials_directory_holds_the_secret_key)
{
    dir_make();
    char name[128], used[256], want[256];
    path(name, sizeof name, "w");
    ps_error err;
    ck_assert_int_eq(ps_curve_keygen(name, &err), 0);
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    ps_curve_pair pair;
    ck_assert_int_eq(
        ps_curve_secret_load("/nonexistent/w.key_secret", &pair, used, sizeof used, &err), 0);
    snprintf(want, sizeof want, "%s/w.key_secret", dir);
    ck_assert_str_eq(used, want);
    unsetenv("CREDENTIALS_DIRECTORY");
    ck_assert_int_eq(ps_curve_secret_load("/nonexistent/w.key_secret", &pair, NULL, 0, &err),
                     PS_EIO);
    dir_remove();
}
END_TEST

START_TEST(folder_of_public_keys_is_the_admitted_set)
{
    dir_make();
    char name[128], file[160];
    ps_error err;
    path(name, sizeof name, "a");
    ck_assert_int_eq(ps_curve_keygen(name, &err), 0);
    path(name, sizeof name, "b");
    ck_assert_int_eq(ps_curve_keygen(name, &err), 0);
    ps_curve_keyset set;
    ck_assert_int_eq(ps_curve_keyset_load(dir, &set, &err), 0);
    ck_assert_uint_eq(set.n, 2); /* the .key files; .key_secret ones are not read */
    ps_curve_pair pair;
    uint8_t key[32];
    path(file, sizeof file, "a.key");
    ck_assert_int_eq(ps_curve_public_load(file, &pair, &err), 0);
    zmq_z85_decode(key, pair.public_z85);
    ck_assert(ps_curve_keyset_has(&set, key));
    key[0] ^= 1;
    ck_assert(!ps_curve_keyset_has(&set, key));
    ps_curve_keyset_fini(&set);
    /* a malformed key file is named */
    path(file, sizeof file, "bad.key");
    FILE *f = fopen(file, "w");
    fputs("curve\n    public-key = \"tooshort\"\n", f);
    fclose(f);
    ck_assert_int_eq(ps_curve_keyset_load(dir, &set, &err), PS_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "bad.key: no public-key"));
    ck_assert_ptr_null(set.keys);
    dir_remove();
}
END_TEST

static Suite *curve_suite(void)
{
    Suite *s = suite_create("curve");
    TCase *tc = tcase_create("keys");
    tcase_add_test(tc, keygen_writes_a_pair_with_a_private_secret);
    tcase_add_test(tc, secret_key_others_can_read_is_refused);
    tcase_add_test(tc, credentials_directory_holds_the_secret_key);
    tcase_add_test(tc, folder_of_public_keys_is_the_admitted_set);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(curve_suite());
}
