/* curve.c — CURVE key files: made by psctl keygen, read by psd, psctl and
 * libpsworker. A key file is a few lines of text; anything but a well-formed
 * `public-key = "..."` or `secret-key = "..."` line is ignored, and a key
 * that is not 40 Z85 characters is refused. */
#include "curve.h"

#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define KEY_FILE_MAX_BYTES 4096 /* a key file is ten short lines */

/* ---- writing -------------------------------------------------------------- */

/* Writes text to a new file of that mode; refuses an existing one. */
static int file_create(const char *path, mode_t mode, const char *text, ps_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int rc = 0;
    if (n < 0 || (size_t)n != len || fchmod(fd, mode) != 0 || fsync(fd) != 0)
        rc = ps_error_set(err, PS_EIO, "%s: %s", path, n < 0 ? strerror(errno) : "short write");
    if (close(fd) != 0 && rc == 0)
        rc = ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
    if (rc != 0)
        unlink(path);
    return rc;
}

int ps_curve_keygen(const char *name, ps_error *err)
{
    if (!zmq_has("curve"))
        return ps_error_set(err, PS_EUNSUPPORTED, "this libzmq was built without CURVE");
    char pub[PS_CURVE_Z85_LEN + 1], sec[PS_CURVE_Z85_LEN + 1];
    if (zmq_curve_keypair(pub, sec) != 0)
        return ps_error_set(err, PS_EIO, "cannot make a key pair: %s", zmq_strerror(errno));
    char pub_path[4096], sec_path[4096];
    if ((size_t)snprintf(pub_path, sizeof pub_path, "%s.key", name) >= sizeof pub_path ||
        (size_t)snprintf(sec_path, sizeof sec_path, "%s.key_secret", name) >= sizeof sec_path)
        return ps_error_set(err, PS_EINVAL, "%s: name too long", name);
    char stamp[64] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) != NULL)
        strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S UTC", &tm);
    char text[1024];
    snprintf(text, sizeof text,
             "#   ****  Generated on %s by psctl keygen  ****\n"
             "#   ZeroMQ CURVE Public Certificate\n"
             "#   Exchange securely, or use a secure mechanism to verify the contents\n"
             "#   of this file after exchange.\n"
             "\n"
             "metadata\n"
             "curve\n"
             "    public-key = \"%s\"\n",
             stamp, pub);
    int rc = file_create(pub_path, 0644, text, err);
    if (rc != 0)
        return rc;
    snprintf(text, sizeof text,
             "#   ****  Generated on %s by psctl keygen  ****\n"
             "#   ZeroMQ CURVE **Secret** Certificate\n"
             "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n"
             "\n"
             "metadata\n"
             "curve\n"
             "    public-key = \"%s\"\n"
             "    secret-key = \"%s\"\n",
             stamp, pub, sec);
    rc = file_create(sec_path, 0600, text, err);
    if (rc != 0)
        unlink(pub_path);
    return rc;
}

/* ---- reading -------------------------------------------------------------- */

/* Reads a key file (a regular file of at most KEY_FILE_MAX_BYTES) into buf;
 * st gets its status. */
static int file_read(const char *path, char *buf, size_t cap, struct stat *st, ps_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0 && errno == ELOOP) /* a link (systemd's credentials are files): follow it */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
    int rc = 0;
    if (fstat(fd, st) != 0) {
        rc = ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
        goto close_fd;
    }
    if (!S_ISREG(st->st_mode)) {
        rc = ps_error_set(err, PS_EIO, "%s: not a regular file", path);
        goto close_fd;
    }
    ssize_t n = read(fd, buf, cap - 1);
    if (n < 0) {
        rc = ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
        goto close_fd;
    }
    if ((size_t)n == cap - 1) {
        rc = ps_error_set(err, PS_ECONFIG, "%s: too big for a key file (over %zu bytes)", path,
                          cap - 1);
        goto close_fd;
    }
    buf[n] = '\0';
close_fd:
    close(fd);
    return rc;
}

/* Finds `name = "KEY"` on a line of text (leading blanks allowed) and copies
 * KEY into out; false when absent or when KEY is not 40 Z85 characters. */
static bool key_find(const char *text, const char *name, char out[PS_CURVE_Z85_LEN + 1])
{
    size_t nlen = strlen(name);
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *p = line;
        const char *eol = strchr(line, '\n');
        line = eol != NULL ? eol + 1 : NULL;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, name, nlen) != 0)
            continue;
        p += nlen;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p++ != '=')
            continue;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p++ != '"')
            continue;
        const char *end = strchr(p, '"');
        if (end == NULL || (eol != NULL && end > eol) || end - p != PS_CURVE_Z85_LEN)
            return false;
        memcpy(out, p, PS_CURVE_Z85_LEN);
        out[PS_CURVE_Z85_LEN] = '\0';
        uint8_t bin[32];
        return zmq_z85_decode(bin, out) != NULL;
    }
    return false;
}

int ps_curve_public_load(const char *path, ps_curve_pair *pair, ps_error *err)
{
    char text[KEY_FILE_MAX_BYTES];
    struct stat st;
    int rc = file_read(path, text, sizeof text, &st, err);
    if (rc != 0)
        return rc;
    if (!key_find(text, "public-key", pair->public_z85))
        return ps_error_set(err, PS_ECONFIG,
                            "%s: no public-key = \"<40 Z85 characters>\" line (make keys with "
                            "psctl keygen)",
                            path);
    return 0;
}

/* $CREDENTIALS_DIRECTORY/<base name of path> when that file exists. */
static bool credential_path(const char *path, char *out, size_t cap)
{
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    if (dir == NULL || dir[0] == '\0')
        return false;
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    if ((size_t)snprintf(out, cap, "%s/%s", dir, base) >= cap)
        return false;
    return access(out, F_OK) == 0;
}

int ps_curve_secret_load(const char *path, ps_curve_pair *pair, char *used, size_t cap,
                         ps_error *err)
{
    char cred[4096];
    if (credential_path(path, cred, sizeof cred))
        path = cred;
    if (used != NULL && cap > 0)
        ps_strlcpy(used, path, cap);
    char text[KEY_FILE_MAX_BYTES];
    struct stat st;
    int rc = file_read(path, text, sizeof text, &st, err);
    if (rc != 0)
        return rc;
    if (st.st_mode & 077)
        return ps_error_set(err, PS_ECONFIG,
                            "%s: mode %04o lets others read the secret key: chmod 600 it", path,
                            (unsigned)(st.st_mode & 07777));
    if (!key_find(text, "secret-key", pair->secret_z85))
        return ps_error_set(err, PS_ECONFIG,
                            "%s: no secret-key = \"<40 Z85 characters>\" line (make keys with "
                            "psctl keygen)",
                            path);
    memset(text, 0, sizeof text);
    if (zmq_curve_public(pair->public_z85, pair->secret_z85) != 0)
        return ps_error_set(err, PS_EUNSUPPORTED, "%s: this libzmq was built without CURVE", path);
    return 0;
}

static int key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

/* Adds the public key of one file to the set (cap keys allocated). */
static int keyset_add(ps_curve_keyset *set, const char *path, ps_error *err)
{
    if (set->n == PS_CURVE_KEYS_MAX)
        return ps_error_set(err, PS_EFULL, "%s: more than %d authorized keys", path,
                            PS_CURVE_KEYS_MAX);
    ps_curve_pair pair;
    int rc = ps_curve_public_load(path, &pair, err);
    if (rc != 0)
        return rc;
    zmq_z85_decode(set->keys[set->n++], pair.public_z85);
    return 0;
}

static bool name_is_public_key(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".key") == 0;
}

int ps_curve_keyset_load(const char *path, ps_curve_keyset *set, ps_error *err)
{
    set->n = 0;
    set->keys = calloc(PS_CURVE_KEYS_MAX, 32);
    if (set->keys == NULL)
        return ps_error_set(err, PS_ENOMEM, "no memory for the authorized keys");
    struct stat st;
    int rc = 0;
    if (stat(path, &st) != 0) {
        rc = ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISDIR(st.st_mode)) {
        rc = keyset_add(set, path, err);
        if (rc != 0)
            goto fail;
        return 0;
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        rc = ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!name_is_public_key(e->d_name))
            continue;
        char file[4096];
        if ((size_t)snprintf(file, sizeof file, "%s/%s", path, e->d_name) >= sizeof file)
            continue;
        if ((rc = keyset_add(set, file, err)) != 0)
            break;
    }
    closedir(d);
    if (rc != 0)
        goto fail;
    qsort(set->keys, set->n, 32, key_cmp);
    return 0;
fail:
    ps_curve_keyset_fini(set);
    return rc;
}

bool ps_curve_keyset_has(const ps_curve_keyset *set, const uint8_t key[32])
{
    return set->n > 0 && bsearch(key, set->keys, set->n, 32, key_cmp) != NULL;
}

void ps_curve_keyset_fini(ps_curve_keyset *set)
{
    free(set->keys);
    set->keys = NULL;
    set->n = 0;
}
