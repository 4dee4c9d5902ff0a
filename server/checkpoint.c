/* checkpoint.c — the checkpoint file: a fixed 128-byte header, a table of
 * (name, count) per array, the arrays' float32 data, and a 16-byte trailer
 * with a CRC-32 of everything before it. All integers little-endian. */
#include "checkpoint.h"

#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC         "PSDCKPT1"
#define END_MAGIC     "PSDCKEND"
#define FORMAT        1u
#define HEADER_BYTES  128u
#define ENTRY_BYTES   (PS_CKPT_NAME_MAX + 8u)
#define TRAILER_BYTES 16u
#define IO_CHUNK      (1u << 20)
#define MAX_FILES     4096

/* The fixed header as it lies on disk (x86-64 and every little-endian
 * target lay this struct out without padding; checked below). */
typedef struct disk_header {
    char magic[8];
    uint32_t format;
    uint32_t narrays;
    char job[PS_JOB_NAME_MAX];
    uint32_t shard;
    uint32_t reserved;
    uint64_t key_lo, key_hi, version, updates, created_ms;
} disk_header;

typedef struct disk_entry {
    char name[PS_CKPT_NAME_MAX];
    uint64_t count;
} disk_entry;

_Static_assert(sizeof(disk_header) == HEADER_BYTES, "checkpoint header layout");
_Static_assert(sizeof(disk_entry) == ENTRY_BYTES, "checkpoint entry layout");
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint files are little-endian; this target is not"
#endif

/* ---- writing ---- */

static int write_all(int fd, const void *buf, size_t n, uLong *crc)
{
    const unsigned char *p = buf;
    while (n > 0) {
        size_t chunk = n < IO_CHUNK ? n : IO_CHUNK;
        ssize_t w = write(fd, p, chunk);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        if (crc)
            *crc = crc32(*crc, p, (uInt)w);
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* mkdir -p for the checkpoint folder. */
static int make_dirs(const char *dir)
{
    char path[PATH_MAX];
    if (!ps_strlcpy(path, dir, sizeof path))
        return -1;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

static void file_name(char *out, size_t cap, const char *job, uint32_t shard, uint64_t version)
{
    snprintf(out, cap, "%s-shard%" PRIu32 "-%020" PRIu64 ".ckpt", job, shard, version);
}

/* Writes header, table, data and trailer to fd. */
static int write_body(int fd, const ps_ckpt_meta *meta, const ps_ckpt_array *arrays, size_t narrays)
{
    disk_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, MAGIC, 8);
    h.format = FORMAT;
    h.narrays = (uint32_t)narrays;
    ps_strlcpy(h.job, meta->job, sizeof h.job);
    h.shard = meta->shard;
    h.key_lo = meta->key_lo;
    h.key_hi = meta->key_hi;
    h.version = meta->version;
    h.updates = meta->updates;
    h.created_ms = meta->created_ms;
    uLong crc = crc32(0L, Z_NULL, 0);
    if (write_all(fd, &h, sizeof h, &crc) != 0)
        return -1;
    for (size_t i = 0; i < narrays; i++) {
        disk_entry e;
        memset(&e, 0, sizeof e);
        ps_strlcpy(e.name, arrays[i].name, sizeof e.name);
        e.count = arrays[i].count;
        if (write_all(fd, &e, sizeof e, &crc) != 0)
            return -1;
    }
    for (size_t i = 0; i < narrays; i++)
        if (write_all(fd, arrays[i].data, arrays[i].count * sizeof(float), &crc) != 0)
            return -1;
    unsigned char trailer[TRAILER_BYTES] = {0};
    uint32_t c = (uint32_t)crc;
    memcpy(trailer, &c, 4);
    memcpy(trailer + 8, END_MAGIC, 8);
    return write_all(fd, trailer, sizeof trailer, NULL);
}

/* ---- the folder ---- */

typedef struct ckpt_file {
    uint64_t version;
    char name[256];
} ckpt_file;

static int by_version_desc(const void *a, const void *b)
{
    const ckpt_file *x = a, *y = b;
    return x->version < y->version ? 1 : x->version > y->version ? -1 : 0;
}

/* The checkpoints of job/shard in dir, newest first, in *out (malloc'd;
 * caller frees). Temporary files left by a crash are removed. -1 when dir
 * cannot be opened (errno says why). */
static int list_files(const char *dir, const char *job, uint32_t shard, ckpt_file **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    char prefix[PS_JOB_NAME_MAX + 32];
    snprintf(prefix, sizeof prefix, "%s-shard%" PRIu32 "-", job, shard);
    size_t plen = strlen(prefix);
    ckpt_file *files = calloc(MAX_FILES, sizeof *files);
    if (files == NULL) {
        closedir(d);
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        size_t len = strlen(nm);
        if (nm[0] == '.' && strncmp(nm + 1, prefix, plen) == 0 && len > 4 &&
            strcmp(nm + len - 4, ".tmp") == 0) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/%s", dir, nm);
            unlink(path); /* a write that a crash cut short */
            continue;
        }
        if (strncmp(nm, prefix, plen) != 0 || len < plen + 5 || len >= sizeof files->name ||
            strcmp(nm + len - 5, ".ckpt") != 0 || *n == MAX_FILES)
            continue;
        char *end;
        uint64_t v = strtoull(nm + plen, &end, 10);
        if (end != nm + len - 5)
            continue;
        files[*n].version = v;
        memcpy(files[*n].name, nm, len + 1);
        (*n)++;
    }
    closedir(d);
    qsort(files, *n, sizeof *files, by_version_desc);
    *out = files;
    return 0;
}

/* Deletes the checkpoints of job/shard beyond the newest keep. */
static void prune(const char *dir, const char *job, uint32_t shard, uint32_t keep)
{
    ckpt_file *files;
    size_t n;
    if (list_files(dir, job, shard, &files, &n) != 0)
        return;
    for (size_t i = keep; i < n; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        unlink(path);
    }
    free(files);
}

int ps_checkpoint_write(const char *dir, const ps_ckpt_meta *meta, const ps_ckpt_array *arrays,
                        size_t narrays, uint32_t keep, char *path_out, size_t cap,
                        uint64_t *bytes_out, ps_error *err)
{
    if (narrays > PS_CKPT_MAX_ARRAYS)
        return ps_error_set(err, PS_EINVAL, "checkpoint: %zu arrays (limit %d)", narrays,
                            PS_CKPT_MAX_ARRAYS);
    if (make_dirs(dir) != 0)
        return ps_error_set(err, PS_EIO, "checkpoint: cannot create %s: %s", dir, strerror(errno));
    char name[256], tmp[PATH_MAX], final[PATH_MAX];
    file_name(name, sizeof name, meta->job, meta->shard, meta->version);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    snprintf(final, sizeof final, "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return ps_error_set(err, PS_EIO, "checkpoint: cannot create %s: %s", tmp, strerror(errno));
    int rc = PS_EIO;
    if (write_body(fd, meta, arrays, narrays) != 0 || fsync(fd) != 0) {
        ps_error_set(err, PS_EIO, "checkpoint: cannot write %s: %s", tmp, strerror(errno));
        goto unlink_tmp;
    }
    if (close(fd) != 0) {
        fd = -1;
        ps_error_set(err, PS_EIO, "checkpoint: cannot write %s: %s", tmp, strerror(errno));
        goto unlink_tmp;
    }
    fd = -1;
    if (rename(tmp, final) != 0) {
        ps_error_set(err, PS_EIO, "checkpoint: cannot rename %s: %s", tmp, strerror(errno));
        goto unlink_tmp;
    }
    fsync_dir(dir);
    if (bytes_out) {
        uint64_t bytes = HEADER_BYTES + narrays * ENTRY_BYTES + TRAILER_BYTES;
        for (size_t i = 0; i < narrays; i++)
            bytes += arrays[i].count * sizeof(float);
        *bytes_out = bytes;
    }
    if (path_out)
        ps_strlcpy(path_out, final, cap);
    prune(dir, meta->job, meta->shard, keep ? keep : 1);
    return 0;
unlink_tmp:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}

/* ---- reading ---- */

static int read_all(int fd, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Reads n bytes into dst (or, with dst NULL, through a scratch buffer),
 * folding them into crc. */
static int read_crc(int fd, void *dst, uint64_t n, uLong *crc, unsigned char *scratch)
{
    unsigned char *p = dst;
    while (n > 0) {
        size_t chunk = n < IO_CHUNK ? (size_t)n : IO_CHUNK;
        unsigned char *into = p ? p : scratch;
        if (read_all(fd, into, chunk) != 0)
            return -1;
        *crc = crc32(*crc, into, (uInt)chunk);
        if (p)
            p += chunk;
        n -= chunk;
    }
    return 0;
}

/* Reads path whole: checks the header against job/shard/range and the
 * arrays' names and counts, the size, the checksum and the trailer. With
 * load set the data goes into the arrays (call only after a check pass). */
static int read_file(const char *path, const char *job, uint32_t shard, uint64_t key_lo,
                     uint64_t key_hi, const ps_ckpt_array *arrays, size_t narrays, bool load,
                     ps_ckpt_meta *meta, ps_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ps_error_set(err, PS_EIO, "cannot open: %s", strerror(errno));
    int rc = PS_EPROTO;
    unsigned char *scratch = NULL;
    struct stat st;
    disk_header h;
    uLong crc = crc32(0L, Z_NULL, 0);
    if (fstat(fd, &st) != 0) {
        ps_error_set(err, PS_EIO, "cannot stat: %s", strerror(errno));
        goto close_fd;
    }
    if ((uint64_t)st.st_size < HEADER_BYTES + TRAILER_BYTES) {
        ps_error_set(err, PS_EPROTO, "truncated: %lld bytes", (long long)st.st_size);
        goto close_fd;
    }
    if (read_crc(fd, &h, sizeof h, &crc, NULL) != 0) {
        ps_error_set(err, PS_EIO, "cannot read the header");
        goto close_fd;
    }
    h.job[sizeof h.job - 1] = '\0';
    if (memcmp(h.magic, MAGIC, 8) != 0 || h.format != FORMAT) {
        ps_error_set(err, PS_EPROTO, "not a psd checkpoint (format %" PRIu32 ")", h.format);
        goto close_fd;
    }
    if (strcmp(h.job, job) != 0 || h.shard != shard || h.key_lo != key_lo || h.key_hi != key_hi) {
        ps_error_set(err, PS_EPROTO,
                     "belongs to job \"%s\" shard %" PRIu32 " keys [%" PRIu64 ", %" PRIu64 ")",
                     h.job, h.shard, h.key_lo, h.key_hi);
        goto close_fd;
    }
    if (h.narrays != narrays) {
        ps_error_set(err, PS_EPROTO, "holds %" PRIu32 " arrays, this job has %zu", h.narrays,
                     narrays);
        goto close_fd;
    }
    uint64_t expect = HEADER_BYTES + (uint64_t)narrays * ENTRY_BYTES + TRAILER_BYTES;
    for (size_t i = 0; i < narrays; i++) {
        disk_entry e;
        if (read_crc(fd, &e, sizeof e, &crc, NULL) != 0) {
            ps_error_set(err, PS_EPROTO, "truncated in the array table");
            goto close_fd;
        }
        e.name[sizeof e.name - 1] = '\0';
        if (strcmp(e.name, arrays[i].name) != 0 || e.count != arrays[i].count) {
            ps_error_set(err, PS_EPROTO,
                         "array %zu is %s[%" PRIu64 "], this job has %s[%" PRIu64 "]", i, e.name,
                         e.count, arrays[i].name, arrays[i].count);
            goto close_fd;
        }
        expect += e.count * sizeof(float);
    }
    if ((uint64_t)st.st_size != expect) {
        ps_error_set(err, PS_EPROTO, "%lld bytes, expected %" PRIu64 " (truncated or torn)",
                     (long long)st.st_size, expect);
        goto close_fd;
    }
    scratch = malloc(IO_CHUNK);
    if (scratch == NULL) {
        rc = ps_error_set(err, PS_ENOMEM, "out of memory");
        goto close_fd;
    }
    for (size_t i = 0; i < narrays; i++) {
        if (read_crc(fd, load ? arrays[i].data : NULL, arrays[i].count * sizeof(float), &crc,
                     scratch) != 0) {
            ps_error_set(err, PS_EIO, "cannot read array %s", arrays[i].name);
            goto close_fd;
        }
    }
    unsigned char trailer[TRAILER_BYTES];
    uint32_t stored;
    if (read_all(fd, trailer, sizeof trailer) != 0 || memcmp(trailer + 8, END_MAGIC, 8) != 0) {
        ps_error_set(err, PS_EPROTO, "no end marker (truncated or torn)");
        goto close_fd;
    }
    memcpy(&stored, trailer, 4);
    if (stored != (uint32_t)crc) {
        ps_error_set(err, PS_EPROTO, "checksum mismatch (corrupt)");
        goto close_fd;
    }
    if (meta) {
        memset(meta, 0, sizeof *meta);
        ps_strlcpy(meta->job, h.job, sizeof meta->job);
        meta->shard = h.shard;
        meta->key_lo = h.key_lo;
        meta->key_hi = h.key_hi;
        meta->version = h.version;
        meta->updates = h.updates;
        meta->created_ms = h.created_ms;
    }
    rc = 0;
close_fd:
    free(scratch);
    close(fd);
    return rc;
}

int ps_checkpoint_verify(const char *path, const char *job, uint32_t shard, uint64_t key_lo,
                         uint64_t key_hi, const ps_ckpt_array *arrays, size_t narrays,
                         ps_error *err)
{
    return read_file(path, job, shard, key_lo, key_hi, arrays, narrays, false, NULL, err);
}

int ps_checkpoint_load(const char *dir, const char *job, uint32_t shard, uint64_t key_lo,
                       uint64_t key_hi, ps_ckpt_array *arrays, size_t narrays, ps_ckpt_meta *meta,
                       char *path_out, size_t cap, const ps_log *log, ps_error *err)
{
    ckpt_file *files;
    size_t n;
    if (list_files(dir, job, shard, &files, &n) != 0) {
        if (errno == ENOENT)
            return 1;
        return ps_error_set(err, PS_EIO, "checkpoint: cannot read %s: %s", dir, strerror(errno));
    }
    int rc = 1;
    for (size_t i = 0; i < n && rc == 1; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        ps_error why;
        ps_error_clear(&why);
        if (read_file(path, job, shard, key_lo, key_hi, arrays, narrays, false, NULL, &why) != 0 ||
            read_file(path, job, shard, key_lo, key_hi, arrays, narrays, true, meta, &why) != 0) {
            PS_LOG_W(log, "checkpoint %s skipped: %s", path, why.msg);
            continue;
        }
        if (path_out)
            ps_strlcpy(path_out, path, cap);
        rc = 0;
    }
    free(files);
    return rc;
}
