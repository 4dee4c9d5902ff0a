/* checkpoint.c — the checkpoint file: a fixed 128-byte header, a table of
 * (name, count) per array, in format 2 a table directory (ntables and 4
 * reserved bytes, then 64 bytes per sparse table: name, dim, row_floats,
 * layout, rows), a table of per-rank state (nranks entries of 40 bytes;
 * none in files of older psd, whose header held 0 there), the arrays'
 * float32 data, in format 2 every table's rows (key, version, row_floats
 * float32 each), and a 16-byte trailer with a CRC-32 of everything before
 * it. All integers little-endian. A file without tables is format 1. A
 * file with a batch queue (data.assign: dynamic, shard 0) has FORMAT_QUEUE
 * or'ed into its format and, after the array table (and the table
 * directory), the queue's byte count (uint64) and bytes; a file without
 * is as before queues existed. */
#include "checkpoint.h"

#include "optim.h"
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
#define FORMAT        1u                  /* no tables */
#define FORMAT_TABLES 2u                  /* a table directory and the tables' rows */
#define FORMAT_QUEUE  0x100u              /* or'ed: a batch queue section */
#define QUEUE_MAX     ((uint64_t)1 << 36) /* bytes of a queue: corrupt beyond */
#define HEADER_BYTES  128u
#define ENTRY_BYTES   (PS_CKPT_NAME_MAX + 8u)
#define RANK_BYTES    40u
#define TRAILER_BYTES 16u
#define TDIR_BYTES    8u                  /* ntables, reserved */
#define TABLE_BYTES   64u                 /* one table's entry in the directory */
#define ROW_HEAD      16u                 /* a row's key and version */
#define MAX_ROWS      (UINT64_C(1) << 40) /* rows of one table: sizes cannot overflow */
#define IO_CHUNK      (1u << 20)
#define MAX_FILES     4096
#define MAX_COUNT     (UINT64_C(1) << 56) /* floats in one array: 8 of them fit a uint64_t */
#define PATH_CAP      (PATH_MAX + 320)    /* a folder, "/", a file name */
#define REFUSE_HINT   "move them away or set checkpoint.dir"

/* The fixed header as it lies on disk (x86-64 and every little-endian
 * target lay this struct out without padding; checked below). */
typedef struct disk_header {
    char magic[8];
    uint32_t format;
    uint32_t narrays;
    char job[PS_JOB_NAME_MAX];
    uint32_t shard;
    uint32_t nranks; /* entries in the rank table (0 before it existed) */
    uint64_t key_lo, key_hi, version, updates, created_ms;
} disk_header;

typedef struct disk_entry {
    char name[PS_CKPT_NAME_MAX];
    uint64_t count;
} disk_entry;

/* One sparse table in the directory. */
typedef struct disk_table {
    char name[PS_CKPT_NAME_MAX];
    uint32_t dim, row_floats, layout, reserved;
    uint64_t rows, reserved2;
} disk_table;

/* What this shard has, that a file must match. */
typedef struct shard_layout {
    const char *job;
    uint32_t shard;
    uint64_t key_lo, key_hi;
    const ps_ckpt_array *arrays;
    size_t narrays;
    const ps_ckpt_table *tables;
    size_t ntables;
} shard_layout;

_Static_assert(sizeof(disk_header) == HEADER_BYTES, "checkpoint header layout");
_Static_assert(sizeof(disk_table) == TABLE_BYTES, "checkpoint table layout");
_Static_assert(sizeof(disk_entry) == ENTRY_BYTES, "checkpoint entry layout");
_Static_assert(sizeof(ps_ckpt_rank) == RANK_BYTES, "checkpoint rank layout");
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint files are little-endian; this target is not"
#endif

/* ---- the folder ---- */

/* mkdir -p for the checkpoint folder. */
static int make_dirs(const char *dir)
{
    char path[PATH_MAX];
    if (!ps_strlcpy(path, dir, sizeof path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
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

int ps_ckpt_folder_init(ps_ckpt_folder *f, const char *dir, uint32_t keep, bool finite_only,
                        ps_error *err)
{
    memset(f, 0, sizeof *f);
    f->keep = keep ? keep : 1;
    f->finite_only = finite_only;
    if (!ps_strlcpy(f->dir, dir, sizeof f->dir))
        return ps_error_set(err, PS_EIO, "checkpoint.dir %s: the path is too long", dir);
    if (make_dirs(dir) != 0)
        return ps_error_set(err, PS_EIO, "checkpoint.dir %s: cannot create the folder: %s", dir,
                            strerror(errno));
    char probe[PATH_CAP];
    snprintf(probe, sizeof probe, "%s/.psd-write-test-%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return ps_error_set(err, PS_EIO, "checkpoint.dir %s: not writable: %s", dir,
                            strerror(errno));
    close(fd);
    if (unlink(probe) != 0)
        return ps_error_set(err, PS_EIO, "checkpoint.dir %s: cannot remove %s: %s", dir, probe,
                            strerror(errno));
    return 0;
}

void ps_ckpt_folder_fini(ps_ckpt_folder *f)
{
    free(f->queue);
    f->queue = NULL;
    f->queue_bytes = 0;
    free(f->known);
    f->known = NULL;
    f->nknown = f->known_cap = 0;
}

/* Remembers version as a file psd verified or wrote. */
static int known_add(ps_ckpt_folder *f, uint64_t version)
{
    for (size_t i = 0; i < f->nknown; i++)
        if (f->known[i] == version)
            return 0;
    if (f->nknown == f->known_cap) {
        size_t cap = f->known_cap ? 2 * f->known_cap : 16;
        uint64_t *k = realloc(f->known, cap * sizeof *k);
        if (k == NULL)
            return PS_ENOMEM;
        f->known = k;
        f->known_cap = cap;
    }
    f->known[f->nknown++] = version;
    return 0;
}

static int u64_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void file_name(char *out, size_t cap, const char *job, uint32_t shard, uint64_t version)
{
    snprintf(out, cap, "%s-shard%" PRIu32 "-%020" PRIu64 ".ckpt", job, shard, version);
}

/* Deletes the known checkpoints of job/shard beyond the newest keep; files
 * psd has not verified or written are neither counted nor touched. */
static void prune(ps_ckpt_folder *f, const char *job, uint32_t shard)
{
    if (f->nknown <= f->keep)
        return;
    qsort(f->known, f->nknown, sizeof *f->known, u64_desc);
    for (size_t i = f->keep; i < f->nknown; i++) {
        char name[256], path[PATH_CAP];
        file_name(name, sizeof name, job, shard, f->known[i]);
        snprintf(path, sizeof path, "%s/%s", f->dir, name);
        unlink(path);
    }
    f->nknown = f->keep;
}

typedef struct ckpt_file {
    uint64_t version; /* UINT64_MAX for a name beyond it */
    bool prunable;    /* the name is the one file_name gives for version */
    char name[256];
} ckpt_file;

static int by_version_desc(const void *a, const void *b)
{
    const ckpt_file *x = a, *y = b;
    return x->version < y->version ? 1 : x->version > y->version ? -1 : 0;
}

/* The checkpoints of job/shard in dir, newest first, in *out (malloc'd;
 * caller frees). -1 when dir cannot be opened (errno says why). */
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
        errno = ENOMEM;
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        size_t len = strlen(nm);
        if (strncmp(nm, prefix, plen) != 0 || len < plen + 5 || len >= sizeof files->name ||
            strcmp(nm + len - 5, ".ckpt") != 0 || *n == MAX_FILES)
            continue;
        size_t digits = strspn(nm + plen, "0123456789");
        if (digits != 20 || plen + digits + 5 != len)
            continue;
        errno = 0;
        uint64_t v = strtoull(nm + plen, NULL, 10);
        files[*n].prunable = errno != ERANGE; /* "99999999999999999999" is no version */
        files[*n].version = v;
        memcpy(files[*n].name, nm, len + 1);
        (*n)++;
    }
    closedir(d);
    qsort(files, *n, sizeof *files, by_version_desc);
    *out = files;
    return 0;
}

/* Removes the temporary files of job/shard that a crash left behind. */
static void sweep_tmp(const char *dir, const char *job, uint32_t shard)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    char prefix[PS_JOB_NAME_MAX + 32];
    snprintf(prefix, sizeof prefix, ".%s-shard%" PRIu32 "-", job, shard);
    size_t plen = strlen(prefix);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        size_t len = strlen(nm);
        if (strncmp(nm, prefix, plen) == 0 && len > plen + 4 && strcmp(nm + len - 4, ".tmp") == 0) {
            char path[PATH_CAP];
            snprintf(path, sizeof path, "%s/%s", dir, nm);
            unlink(path); /* a write that a crash cut short */
        }
    }
    closedir(d);
}

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

/* The index of the first NaN or inf in x[0..n), or n. The loop is a plain
 * max over the magnitude bits, which compilers vectorise; the index is only
 * searched for when there is one. */
static size_t first_non_finite(const float *x, size_t n)
{
    uint32_t top = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &x[i], sizeof b);
        b &= 0x7fffffffu;
        top = b > top ? b : top;
    }
    if (top < 0x7f800000u)
        return n;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &x[i], sizeof b);
        if ((b & 0x7f800000u) == 0x7f800000u)
            return i;
    }
    return n;
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

/* A table's rows in pages: a scan fills keys, versions and floats, which
 * are laid out as on disk in out. One allocation per write. */
typedef struct row_pages {
    size_t rows; /* per page */
    uint64_t *keys, *versions;
    float *floats;
    unsigned char *out;
} row_pages;

static void row_pages_free(row_pages *p)
{
    free(p->keys);
    free(p->versions);
    free(p->floats);
    free(p->out);
}

static int row_pages_alloc(row_pages *p, const ps_ckpt_table *tables, size_t ntables)
{
    memset(p, 0, sizeof *p);
    uint32_t rf = 1;
    for (size_t i = 0; i < ntables; i++)
        rf = tables[i].row_floats > rf ? tables[i].row_floats : rf;
    size_t row_bytes = ROW_HEAD + (size_t)rf * sizeof(float);
    p->rows = IO_CHUNK / row_bytes;
    p->keys = malloc(p->rows * sizeof *p->keys);
    p->versions = malloc(p->rows * sizeof *p->versions);
    p->floats = malloc(p->rows * rf * sizeof *p->floats);
    p->out = malloc(p->rows * row_bytes);
    if (p->keys == NULL || p->versions == NULL || p->floats == NULL || p->out == NULL) {
        row_pages_free(p);
        return PS_ENOMEM;
    }
    return 0;
}

/* Writes table t's rows, page by page from its scan. -1 (errno) on a write
 * error; PS_EDIVERGED, PS_ESTATE with err set. */
static int write_table_rows(int fd, const ps_ckpt_table *t, row_pages *pg, bool finite_only,
                            uLong *crc, ps_error *err)
{
    size_t row_bytes = ROW_HEAD + (size_t)t->row_floats * sizeof(float);
    uint64_t cursor = 0, written = 0;
    do {
        uint64_t next = 0;
        size_t n = t->scan(t->ctx, cursor, pg->rows, pg->keys, pg->versions, pg->floats, &next);
        if (n > pg->rows || n > t->rows - written)
            return ps_error_set(err, PS_ESTATE, "table %s gave more rows than its %" PRIu64,
                                t->name, t->rows);
        for (size_t i = 0; i < n; i++) {
            const float *x = pg->floats + i * t->row_floats;
            if (finite_only && first_non_finite(x, t->row_floats) < t->row_floats)
                return ps_error_set(err, PS_EDIVERGED,
                                    "table %s holds a non-finite value at key %" PRIu64, t->name,
                                    pg->keys[i]);
            unsigned char *o = pg->out + i * row_bytes;
            memcpy(o, &pg->keys[i], 8);
            memcpy(o + 8, &pg->versions[i], 8);
            memcpy(o + ROW_HEAD, x, (size_t)t->row_floats * sizeof(float));
        }
        if (n > 0 && write_all(fd, pg->out, n * row_bytes, crc) != 0)
            return -1;
        written += n;
        cursor = next;
    } while (cursor != 0);
    if (written != t->rows)
        return ps_error_set(err, PS_ESTATE, "table %s gave %" PRIu64 " rows, not its %" PRIu64,
                            t->name, written, t->rows);
    return 0;
}

/* Writes header, tables, data and trailer to fd; each chunk of data is
 * checked for NaN and inf just before it is written when finite_only.
 * -1 (errno) on a write error; PS_EDIVERGED, PS_ESTATE or PS_ENOMEM with
 * err set. */
static int write_body(int fd, const ps_ckpt_meta *meta, const ps_ckpt_array *arrays, size_t narrays,
                      const ps_ckpt_table *tables, size_t ntables, bool finite_only, ps_error *err)
{
    disk_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, MAGIC, 8);
    h.format = (ntables > 0 ? FORMAT_TABLES : FORMAT) | (meta->queue_bytes > 0 ? FORMAT_QUEUE : 0);
    h.narrays = (uint32_t)narrays;
    ps_strlcpy(h.job, meta->job, sizeof h.job);
    h.shard = meta->shard;
    h.key_lo = meta->key_lo;
    h.key_hi = meta->key_hi;
    h.version = meta->version;
    h.updates = meta->updates;
    h.created_ms = meta->created_ms;
    h.nranks = meta->ranks != NULL ? meta->nranks : 0;
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
    if (ntables > 0) {
        uint32_t head[2] = {(uint32_t)ntables, 0};
        if (write_all(fd, head, sizeof head, &crc) != 0)
            return -1;
        for (size_t i = 0; i < ntables; i++) {
            disk_table d;
            memset(&d, 0, sizeof d);
            ps_strlcpy(d.name, tables[i].name, sizeof d.name);
            d.dim = tables[i].dim;
            d.row_floats = tables[i].row_floats;
            d.layout = tables[i].layout;
            d.rows = tables[i].rows;
            if (write_all(fd, &d, sizeof d, &crc) != 0)
                return -1;
        }
    }
    if (meta->queue_bytes > 0) {
        uint64_t qn = meta->queue_bytes;
        if (write_all(fd, &qn, sizeof qn, &crc) != 0 ||
            write_all(fd, meta->queue, meta->queue_bytes, &crc) != 0)
            return -1;
    }
    if (h.nranks > 0 && write_all(fd, meta->ranks, h.nranks * sizeof *meta->ranks, &crc) != 0)
        return -1;
    for (size_t i = 0; i < narrays; i++) {
        for (uint64_t off = 0; off < arrays[i].count; off += IO_CHUNK / sizeof(float)) {
            uint64_t left = arrays[i].count - off;
            size_t n = left < IO_CHUNK / sizeof(float) ? (size_t)left : IO_CHUNK / sizeof(float);
            const float *x = arrays[i].data + off;
            size_t bad = finite_only ? first_non_finite(x, n) : n;
            if (bad < n) {
                uint64_t key = meta->key_lo + off + bad;
                if (strcmp(arrays[i].name, "theta") == 0)
                    return ps_error_set(err, PS_EDIVERGED,
                                        "θ holds a non-finite value at key %" PRIu64, key);
                return ps_error_set(err, PS_EDIVERGED,
                                    "optimizer state %s holds a non-finite value at key %" PRIu64,
                                    arrays[i].name, key);
            }
            if (write_all(fd, x, n * sizeof(float), &crc) != 0)
                return -1;
        }
    }
    if (ntables > 0) {
        row_pages pg;
        if (row_pages_alloc(&pg, tables, ntables) != 0)
            return ps_error_set(err, PS_ENOMEM, "checkpoint: out of memory for the tables' rows");
        int rc = 0;
        for (size_t i = 0; i < ntables && rc == 0; i++)
            rc = write_table_rows(fd, &tables[i], &pg, finite_only, &crc, err);
        int saved = errno;
        row_pages_free(&pg);
        errno = saved;
        if (rc != 0)
            return rc;
    }
    unsigned char trailer[TRAILER_BYTES] = {0};
    uint32_t c = (uint32_t)crc;
    memcpy(trailer, &c, 4);
    memcpy(trailer + 8, END_MAGIC, 8);
    return write_all(fd, trailer, sizeof trailer, NULL);
}

/* The size of a file of these arrays, ranks and tables. */
static uint64_t file_bytes(const ps_ckpt_meta *meta, const ps_ckpt_array *arrays, size_t narrays,
                           const ps_ckpt_table *tables, size_t ntables)
{
    uint64_t bytes = HEADER_BYTES + narrays * ENTRY_BYTES + TRAILER_BYTES +
                     (meta->ranks != NULL ? (uint64_t)meta->nranks * RANK_BYTES : 0);
    for (size_t i = 0; i < narrays; i++)
        bytes += arrays[i].count * sizeof(float);
    if (ntables > 0)
        bytes += TDIR_BYTES + ntables * TABLE_BYTES;
    if (meta->queue_bytes > 0)
        bytes += 8 + meta->queue_bytes;
    for (size_t i = 0; i < ntables; i++)
        bytes += tables[i].rows * (ROW_HEAD + (uint64_t)tables[i].row_floats * sizeof(float));
    return bytes;
}

int ps_checkpoint_write_tables(ps_ckpt_folder *f, const ps_ckpt_meta *meta,
                               const ps_ckpt_array *arrays, size_t narrays,
                               const ps_ckpt_table *tables, size_t ntables, char *path_out,
                               size_t cap, uint64_t *bytes_out, ps_error *err)
{
    if (narrays > PS_CKPT_MAX_ARRAYS)
        return ps_error_set(err, PS_EINVAL, "checkpoint: %zu arrays (limit %d)", narrays,
                            PS_CKPT_MAX_ARRAYS);
    if (meta->nranks > PS_CKPT_MAX_RANKS)
        return ps_error_set(err, PS_EINVAL, "checkpoint: %" PRIu32 " ranks (limit %d)",
                            meta->nranks, PS_CKPT_MAX_RANKS);
    if (ntables > PS_CKPT_MAX_TABLES)
        return ps_error_set(err, PS_EINVAL, "checkpoint: %zu tables (limit %d)", ntables,
                            PS_CKPT_MAX_TABLES);
    for (size_t i = 0; i < ntables; i++)
        if (tables[i].row_floats == 0 || tables[i].row_floats > PS_CKPT_ROW_FLOATS_MAX ||
            tables[i].rows > MAX_ROWS)
            return ps_error_set(err, PS_EINVAL,
                                "checkpoint: table %s has %" PRIu32 " floats a row and %" PRIu64
                                " rows (limits %d, %" PRIu64 ")",
                                tables[i].name, tables[i].row_floats, tables[i].rows,
                                PS_CKPT_ROW_FLOATS_MAX, MAX_ROWS);
    const char *dir = f->dir;
    if (make_dirs(dir) != 0)
        return ps_error_set(err, PS_EIO, "checkpoint: cannot create %s: %s", dir, strerror(errno));
    char name[256], tmp[PATH_CAP], final[PATH_CAP];
    file_name(name, sizeof name, meta->job, meta->shard, meta->version);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    snprintf(final, sizeof final, "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return ps_error_set(err, PS_EIO, "checkpoint: cannot create %s: %s", tmp, strerror(errno));
    int rc = PS_EIO;
    int body = write_body(fd, meta, arrays, narrays, tables, ntables, f->finite_only, err);
    if (body != 0 && body != -1) {
        rc = body; /* err says why */
        goto unlink_tmp;
    }
    if (body != 0 || fsync(fd) != 0) {
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
    if (bytes_out)
        *bytes_out = file_bytes(meta, arrays, narrays, tables, ntables);
    if (path_out)
        ps_strlcpy(path_out, final, cap);
    if (known_add(f, meta->version) != 0)
        return 0; /* written; not pruning is the safe side of running out of memory */
    prune(f, meta->job, meta->shard);
    return 0;
unlink_tmp:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}

int ps_checkpoint_write(ps_ckpt_folder *f, const ps_ckpt_meta *meta, const ps_ckpt_array *arrays,
                        size_t narrays, char *path_out, size_t cap, uint64_t *bytes_out,
                        ps_error *err)
{
    return ps_checkpoint_write_tables(f, meta, arrays, narrays, NULL, 0, path_out, cap, bytes_out,
                                      err);
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

/* What a file says it holds: its header, array table and table directory. */
typedef struct file_info {
    disk_header h;
    disk_entry e[PS_CKPT_MAX_ARRAYS];
    uint32_t ntables;
    disk_table t[PS_CKPT_MAX_TABLES];
} file_info;

/* Whether the file's header, array table and table directory are this
 * shard's (job, shard, range, arrays' names and counts, tables' names,
 * dims, row floats and layouts); err says what differs when not. */
static bool info_matches(const file_info *fi, const shard_layout *my, ps_error *err)
{
    const disk_header *h = &fi->h;
    if (strcmp(h->job, my->job) != 0 || h->shard != my->shard || h->key_lo != my->key_lo ||
        h->key_hi != my->key_hi) {
        ps_error_set(err, PS_EJOB,
                     "belongs to job \"%s\" shard %" PRIu32 " keys [%" PRIu64 ", %" PRIu64 ")",
                     h->job, h->shard, h->key_lo, h->key_hi);
        return false;
    }
    if (h->narrays != my->narrays) {
        ps_error_set(err, PS_EJOB, "holds %" PRIu32 " arrays, this job has %zu", h->narrays,
                     my->narrays);
        return false;
    }
    for (size_t i = 0; i < my->narrays; i++) {
        const disk_entry *e = &fi->e[i];
        const ps_ckpt_array *a = &my->arrays[i];
        if (strcmp(e->name, a->name) != 0 || e->count != a->count) {
            ps_error_set(err, PS_EJOB, "array %zu is %s[%" PRIu64 "], this job has %s[%" PRIu64 "]",
                         i, e->name, e->count, a->name, a->count);
            return false;
        }
    }
    if (fi->ntables != my->ntables) {
        ps_error_set(err, PS_EJOB, "holds %" PRIu32 " tables, this job has %zu", fi->ntables,
                     my->ntables);
        return false;
    }
    for (size_t i = 0; i < my->ntables; i++) {
        const disk_table *d = &fi->t[i];
        const ps_ckpt_table *t = &my->tables[i];
        if (strcmp(d->name, t->name) != 0 || d->dim != t->dim || d->row_floats != t->row_floats ||
            d->layout != t->layout) {
            ps_error_set(err, PS_EJOB,
                         "table %zu is %s of dim %" PRIu32 " (%" PRIu32 " floats a row, %s), "
                         "this job has %s of dim %" PRIu32 " (%" PRIu32 " floats a row, %s)",
                         i, d->name, d->dim, d->row_floats, ps_optim_name(d->layout), t->name,
                         t->dim, t->row_floats, ps_optim_name(t->layout));
            return false;
        }
    }
    return true;
}

/* Reads the table directory of a format-2 file (after the array table),
 * checking every count; adds the tables' bytes to *expect. */
static int read_table_dir(int fd, file_info *fi, uLong *crc, uint64_t *expect, ps_error *err)
{
    uint32_t head[2];
    if (read_crc(fd, head, sizeof head, crc, NULL) != 0)
        return ps_error_set(err, PS_EPROTO, "truncated in the table directory");
    if (head[0] > PS_CKPT_MAX_TABLES)
        return ps_error_set(err, PS_EPROTO, "holds %" PRIu32 " tables (limit %d): corrupt", head[0],
                            PS_CKPT_MAX_TABLES);
    fi->ntables = head[0];
    *expect += TDIR_BYTES + (uint64_t)fi->ntables * TABLE_BYTES;
    for (uint32_t i = 0; i < fi->ntables; i++) {
        disk_table *d = &fi->t[i];
        if (read_crc(fd, d, sizeof *d, crc, NULL) != 0)
            return ps_error_set(err, PS_EPROTO, "truncated in the table directory");
        d->name[sizeof d->name - 1] = '\0';
        if (d->row_floats == 0 || d->row_floats > PS_CKPT_ROW_FLOATS_MAX || d->dim == 0 ||
            d->dim > d->row_floats || d->rows > MAX_ROWS) /* keeps expect from overflowing */
            return ps_error_set(err, PS_EPROTO,
                                "table %s claims dim %" PRIu32 ", %" PRIu32
                                " floats a row and %" PRIu64 " rows: corrupt",
                                d->name, d->dim, d->row_floats, d->rows);
        *expect += d->rows * (ROW_HEAD + (uint64_t)d->row_floats * sizeof(float));
    }
    return 0;
}

/* Reads table t's rows (d says how many) through scratch; with t set, each
 * goes to its restore. PS_EIO when the file ends, PS_EPROTO when a row is
 * refused; err says which. */
static int read_table_rows(int fd, const disk_table *d, const ps_ckpt_table *t, uLong *crc,
                           unsigned char *scratch, ps_error *err)
{
    size_t row_bytes = ROW_HEAD + (size_t)d->row_floats * sizeof(float);
    size_t page = IO_CHUNK / row_bytes;
    for (uint64_t done = 0; done < d->rows;) {
        size_t n = d->rows - done < page ? (size_t)(d->rows - done) : page;
        if (read_crc(fd, scratch, (uint64_t)n * row_bytes, crc, NULL) != 0)
            return ps_error_set(err, PS_EIO, "cannot read the rows of table %s", d->name);
        for (size_t i = 0; t != NULL && i < n; i++) {
            const unsigned char *r = scratch + i * row_bytes;
            uint64_t key, version;
            memcpy(&key, r, 8);
            memcpy(&version, r + 8, 8);
            /* row_bytes is a multiple of 4 and scratch is malloc'd: aligned */
            int rc = t->restore(t->ctx, key, version, (const float *)(const void *)(r + ROW_HEAD));
            if (rc != 0)
                return ps_error_set(err, PS_EPROTO,
                                    "table %s: the row of key %" PRIu64 " was refused: %s", d->name,
                                    key, ps_strerror(rc));
        }
        done += n;
    }
    return 0;
}

static void tables_clear(const shard_layout *my)
{
    for (size_t i = 0; i < my->ntables; i++)
        my->tables[i].clear(my->tables[i].ctx);
}

/* Reads path whole: checks the header, the size the file's own tables
 * imply, the trailer and the checksum (PS_EPROTO/PS_EIO: damaged), then
 * that it is this shard's (PS_EJOB: whole, of another job or layout; *fi
 * says what it holds). With load set the data goes into the arrays and the
 * tables (call only after a check pass; the tables are cleared first, and
 * again when the file fails after that). */
static int read_file(const char *path, const shard_layout *my, bool load, ps_ckpt_meta *meta,
                     ps_ckpt_rank *ranks, uint32_t rank_room, file_info *fi,
                     ps_ckpt_folder *qfolder, ps_error *err)
{
    int fd = -1;
    const char *kind = NULL;
    int orc = ps_file_open_regular(path, &fd, &kind); /* a FIFO must not block psd */
    if (orc == PS_EINVAL)
        return ps_error_set(err, PS_EPROTO, "%s, not a checkpoint file", kind);
    if (orc != 0)
        return ps_error_set(err, PS_EIO, "cannot open: %s", strerror(errno));
    int rc = PS_EPROTO;
    bool cleared = false;
    unsigned char *scratch = NULL;
    void *queue = NULL;
    struct stat st;
    disk_header *h = &fi->h;
    fi->ntables = 0;
    if (ranks == NULL)
        rank_room = 0;
    uLong crc = crc32(0L, Z_NULL, 0);
    if (fstat(fd, &st) != 0) {
        rc = ps_error_set(err, PS_EIO, "cannot stat: %s", strerror(errno));
        goto close_fd;
    }
    if ((uint64_t)st.st_size < HEADER_BYTES + TRAILER_BYTES) {
        ps_error_set(err, PS_EPROTO, "truncated: %lld bytes", (long long)st.st_size);
        goto close_fd;
    }
    if (read_crc(fd, h, sizeof *h, &crc, NULL) != 0) {
        rc = ps_error_set(err, PS_EIO, "cannot read the header");
        goto close_fd;
    }
    h->job[sizeof h->job - 1] = '\0';
    uint32_t format = h->format & ~FORMAT_QUEUE;
    if (memcmp(h->magic, MAGIC, 8) != 0 || (format != FORMAT && format != FORMAT_TABLES)) {
        ps_error_set(err, PS_EPROTO, "not a psd checkpoint (format %" PRIu32 ")", h->format);
        goto close_fd;
    }
    if (h->narrays > PS_CKPT_MAX_ARRAYS || h->nranks > PS_CKPT_MAX_RANKS) {
        ps_error_set(err, PS_EPROTO,
                     "holds %" PRIu32 " arrays and %" PRIu32 " ranks (limits %d, %d): corrupt",
                     h->narrays, h->nranks, PS_CKPT_MAX_ARRAYS, PS_CKPT_MAX_RANKS);
        goto close_fd;
    }
    uint64_t size = (uint64_t)st.st_size;
    uint64_t expect = HEADER_BYTES + (uint64_t)h->narrays * ENTRY_BYTES +
                      (uint64_t)h->nranks * RANK_BYTES + TRAILER_BYTES;
    for (uint32_t i = 0; i < h->narrays; i++) {
        disk_entry *e = &fi->e[i];
        if (read_crc(fd, e, sizeof *e, &crc, NULL) != 0) {
            ps_error_set(err, PS_EPROTO, "truncated in the array table");
            goto close_fd;
        }
        e->name[sizeof e->name - 1] = '\0';
        if (e->count > MAX_COUNT) { /* keeps expect from overflowing */
            ps_error_set(err, PS_EPROTO, "array %s claims %" PRIu64 " values: corrupt", e->name,
                         e->count);
            goto close_fd;
        }
        expect += e->count * sizeof(float);
    }
    if (format == FORMAT_TABLES && (rc = read_table_dir(fd, fi, &crc, &expect, err)) != 0)
        goto close_fd;
    rc = PS_EPROTO;
    uint64_t qn = 0;
    if (h->format & FORMAT_QUEUE) {
        if (read_crc(fd, &qn, sizeof qn, &crc, NULL) != 0 || qn == 0 || qn > QUEUE_MAX ||
            qn > size) {
            ps_error_set(err, PS_EPROTO, "the batch queue's size is corrupt");
            goto close_fd;
        }
        expect += 8 + qn;
        if ((queue = malloc((size_t)qn)) == NULL) {
            rc = ps_error_set(err, PS_ENOMEM, "out of memory for the batch queue");
            goto close_fd;
        }
        if (read_crc(fd, queue, qn, &crc, NULL) != 0) {
            ps_error_set(err, PS_EPROTO, "truncated in the batch queue");
            goto close_fd;
        }
    }
    if (size != expect) {
        ps_error_set(err, PS_EPROTO, "%" PRIu64 " bytes, expected %" PRIu64 " (truncated or torn)",
                     size, expect);
        goto close_fd;
    }
    bool mine = info_matches(fi, my, NULL);
    scratch = malloc(IO_CHUNK);
    if (scratch == NULL) {
        rc = ps_error_set(err, PS_ENOMEM, "out of memory");
        goto close_fd;
    }
    for (uint32_t i = 0; i < h->nranks; i++) {
        ps_ckpt_rank rk;
        if (read_crc(fd, &rk, sizeof rk, &crc, NULL) != 0) {
            rc = ps_error_set(err, PS_EIO, "cannot read the rank table");
            goto close_fd;
        }
        if (load && mine && i < rank_room)
            ranks[i] = rk;
    }
    for (uint32_t i = 0; i < h->narrays; i++) {
        void *into = load && mine ? my->arrays[i].data : NULL;
        if (read_crc(fd, into, fi->e[i].count * sizeof(float), &crc, scratch) != 0) {
            rc = ps_error_set(err, PS_EIO, "cannot read array %s", fi->e[i].name);
            goto close_fd;
        }
    }
    if (load && mine) {
        tables_clear(my);
        cleared = true;
    }
    for (uint32_t i = 0; i < fi->ntables; i++) {
        const ps_ckpt_table *into = load && mine ? &my->tables[i] : NULL;
        if ((rc = read_table_rows(fd, &fi->t[i], into, &crc, scratch, err)) != 0)
            goto close_fd;
    }
    rc = PS_EPROTO;
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
    if (!info_matches(fi, my, err)) {
        rc = PS_EJOB;
        goto close_fd;
    }
    if (meta) {
        memset(meta, 0, sizeof *meta);
        ps_strlcpy(meta->job, h->job, sizeof meta->job);
        meta->shard = h->shard;
        meta->key_lo = h->key_lo;
        meta->key_hi = h->key_hi;
        meta->version = h->version;
        meta->updates = h->updates;
        meta->created_ms = h->created_ms;
        meta->ranks = ranks;
        meta->nranks = h->nranks < rank_room ? h->nranks : rank_room;
    }
    if (load && mine && qfolder != NULL) {
        free(qfolder->queue);
        qfolder->queue = queue;
        qfolder->queue_bytes = (size_t)qn;
        queue = NULL;
        if (meta) {
            meta->queue = qfolder->queue;
            meta->queue_bytes = qfolder->queue_bytes;
        }
    }
    rc = 0;
close_fd:
    if (rc != 0 && cleared)
        tables_clear(my); /* no half of a file's rows */
    free(queue);
    free(scratch);
    close(fd);
    return rc;
}

int ps_checkpoint_verify_tables(const char *path, const char *job, uint32_t shard, uint64_t key_lo,
                                uint64_t key_hi, const ps_ckpt_array *arrays, size_t narrays,
                                const ps_ckpt_table *tables, size_t ntables, ps_error *err)
{
    file_info fi;
    shard_layout my = {job, shard, key_lo, key_hi, arrays, narrays, tables, ntables};
    return read_file(path, &my, false, NULL, NULL, 0, &fi, NULL, err);
}

int ps_checkpoint_verify(const char *path, const char *job, uint32_t shard, uint64_t key_lo,
                         uint64_t key_hi, const ps_ckpt_array *arrays, size_t narrays,
                         ps_error *err)
{
    return ps_checkpoint_verify_tables(path, job, shard, key_lo, key_hi, arrays, narrays, NULL, 0,
                                       err);
}

/* The optimizer state a layout holds, as `"m", "v"` or `none`. */
static void state_names(char *out, size_t cap, const char *const *names, size_t n)
{
    out[0] = '\0';
    if (n <= 1) {
        snprintf(out, cap, "none");
        return;
    }
    size_t used = 0;
    for (size_t i = 1; i < n && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s\"%s\"", i > 1 ? ", " : "", names[i]);
}

/* The line that refuses dir for a file whose tables differ from the
 * shard's (its arrays match). */
static int refuse_tables(const char *dir, const char *slash, const file_info *fi,
                         const shard_layout *my, ps_error *err)
{
    const char *job = fi->h.job;
    if (fi->ntables != my->ntables)
        return ps_error_set(err, PS_ECONFIG,
                            "%s%s: holds checkpoints of job \"%s\" with %" PRIu32
                            " sparse tables, this job has %zu: " REFUSE_HINT,
                            dir, slash, job, fi->ntables, my->ntables);
    for (size_t i = 0; i < my->ntables; i++) {
        const disk_table *d = &fi->t[i];
        const ps_ckpt_table *t = &my->tables[i];
        if (strcmp(d->name, t->name) != 0)
            return ps_error_set(err, PS_ECONFIG,
                                "%s%s: holds checkpoints of job \"%s\" with table \"%s\", this "
                                "job has \"%s\": " REFUSE_HINT,
                                dir, slash, job, d->name, t->name);
        if (d->dim != t->dim)
            return ps_error_set(
                err, PS_ECONFIG,
                "%s%s: holds checkpoints of job \"%s\" with table %s of dim %" PRIu32
                ", this job has dim %" PRIu32 ": " REFUSE_HINT,
                dir, slash, job, d->name, d->dim, t->dim);
        if (d->layout != t->layout || d->row_floats != t->row_floats)
            return ps_error_set(err, PS_ECONFIG,
                                "%s%s: holds checkpoints of job \"%s\" with table %s kept by "
                                "optimizer %s, this job has %s: " REFUSE_HINT,
                                dir, slash, job, d->name, ps_optim_name(d->layout),
                                ps_optim_name(t->layout));
    }
    return ps_error_set(err, PS_ECONFIG, "%s%s: holds checkpoints of another layout: " REFUSE_HINT,
                        dir, slash);
}

/* The one line that refuses dir for the whole file fi of another job or
 * layout: what it holds against what this shard has. */
static int refuse_folder(const char *dir, const file_info *fi, const shard_layout *my,
                         ps_error *err)
{
    const disk_header *h = &fi->h;
    const char *job = my->job;
    uint64_t key_lo = my->key_lo, key_hi = my->key_hi;
    const ps_ckpt_array *arrays = my->arrays;
    size_t narrays = my->narrays;
    size_t len = strlen(dir);
    const char *slash = len > 0 && dir[len - 1] == '/' ? "" : "/";
    if (strcmp(h->job, job) != 0)
        return ps_error_set(
            err, PS_ECONFIG,
            "%s%s: holds checkpoints of job \"%s\", this job is \"%s\": " REFUSE_HINT, dir, slash,
            h->job, job);
    if (h->shard != my->shard)
        return ps_error_set(err, PS_ECONFIG,
                            "%s%s: holds checkpoints of job \"%s\" shard %" PRIu32
                            ", this is shard %" PRIu32 ": " REFUSE_HINT,
                            dir, slash, h->job, h->shard, my->shard);
    if (h->key_hi - h->key_lo != key_hi - key_lo)
        return ps_error_set(err, PS_ECONFIG,
                            "%s%s: holds checkpoints of job \"%s\" with %" PRIu64
                            " parameters, this job has %" PRIu64 ": " REFUSE_HINT,
                            dir, slash, h->job, h->key_hi - h->key_lo, key_hi - key_lo);
    if (h->key_lo != key_lo)
        return ps_error_set(err, PS_ECONFIG,
                            "%s%s: holds checkpoints of job \"%s\" for keys [%" PRIu64 ", %" PRIu64
                            "), this shard has keys [%" PRIu64 ", %" PRIu64 "): " REFUSE_HINT,
                            dir, slash, h->job, h->key_lo, h->key_hi, key_lo, key_hi);
    const char *theirs[PS_CKPT_MAX_ARRAYS], *ours[PS_CKPT_MAX_ARRAYS];
    size_t nours = narrays < PS_CKPT_MAX_ARRAYS ? narrays : PS_CKPT_MAX_ARRAYS;
    for (size_t i = 0; i < h->narrays; i++)
        theirs[i] = fi->e[i].name;
    for (size_t i = 0; i < nours; i++)
        ours[i] = arrays[i].name;
    bool same_names = h->narrays == narrays; /* then both are at most the limit */
    for (size_t i = 0; same_names && i < narrays; i++)
        same_names = strcmp(ours[i], theirs[i]) == 0;
    if (!same_names) {
        char a[PS_CKPT_MAX_ARRAYS * (PS_CKPT_NAME_MAX + 4)], b[sizeof a];
        state_names(a, sizeof a, theirs, h->narrays);
        state_names(b, sizeof b, ours, nours);
        return ps_error_set(err, PS_ECONFIG,
                            "%s%s: holds checkpoints of job \"%s\" with optimizer state %s, this "
                            "job has %s: " REFUSE_HINT,
                            dir, slash, h->job, a, b);
    }
    for (size_t i = 0; i < narrays; i++)
        if (fi->e[i].count != arrays[i].count)
            return ps_error_set(err, PS_ECONFIG,
                                "%s%s: holds checkpoints of job \"%s\" with %s[%" PRIu64
                                "], this job has %s[%" PRIu64 "]: " REFUSE_HINT,
                                dir, slash, h->job, fi->e[i].name, fi->e[i].count, arrays[i].name,
                                arrays[i].count);
    return refuse_tables(dir, slash, fi, my, err);
}

int ps_checkpoint_load_tables(ps_ckpt_folder *f, const char *job, uint32_t shard, uint64_t key_lo,
                              uint64_t key_hi, ps_ckpt_array *arrays, size_t narrays,
                              const ps_ckpt_table *tables, size_t ntables, ps_ckpt_meta *meta,
                              char *path_out, size_t cap, const ps_log *log, ps_error *err)
{
    const char *dir = f->dir;
    shard_layout my = {job, shard, key_lo, key_hi, arrays, narrays, tables, ntables};
    if (ntables > PS_CKPT_MAX_TABLES)
        return ps_error_set(err, PS_EINVAL, "checkpoint: %zu tables (limit %d)", ntables,
                            PS_CKPT_MAX_TABLES);
    ckpt_file *files;
    size_t n;
    if (list_files(dir, job, shard, &files, &n) != 0) {
        if (errno == ENOENT)
            return 1;
        if (errno == ENOMEM)
            return ps_error_set(err, PS_ENOMEM, "checkpoint: out of memory listing %s", dir);
        return ps_error_set(err, PS_EIO, "checkpoint: cannot read %s: %s", dir, strerror(errno));
    }
    /* Every file is checked before any is loaded: a whole file of another
     * job or layout refuses the folder with nothing loaded or deleted. */
    int rc = 0;
    bool *valid = calloc(n ? n : 1, sizeof *valid);
    if (valid == NULL) {
        rc = ps_error_set(err, PS_ENOMEM, "checkpoint: out of memory listing %s", dir);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        char path[PATH_CAP];
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        file_info fi;
        ps_error why;
        ps_error_clear(&why);
        int r = read_file(path, &my, false, NULL, NULL, 0, &fi, NULL, &why);
        if (r == PS_EJOB) {
            rc = refuse_folder(dir, &fi, &my, err);
            goto done;
        }
        if (r == PS_ENOMEM) {
            rc = ps_error_set(err, PS_ENOMEM, "checkpoint: out of memory reading %s", path);
            goto done;
        }
        if (r != 0)
            PS_LOG_W(log, "checkpoint %s skipped: %s", path, why.msg);
        valid[i] = r == 0;
    }
    sweep_tmp(dir, job, shard);
    rc = 1;
    for (size_t i = 0; i < n; i++) {
        if (!valid[i])
            continue;
        char path[PATH_CAP];
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        file_info fi;
        ps_error why;
        ps_error_clear(&why);
        if (rc == 1 &&
            read_file(path, &my, true, meta, f->ranks, f->rank_room, &fi, f, &why) != 0) {
            PS_LOG_W(log, "checkpoint %s skipped: %s", path, why.msg); /* changed under us */
            continue;
        }
        if (rc == 1) {
            if (path_out)
                ps_strlcpy(path_out, path, cap);
            rc = 0;
        }
        if (files[i].prunable && known_add(f, files[i].version) != 0) {
            rc = ps_error_set(err, PS_ENOMEM, "checkpoint: out of memory listing %s", dir);
            goto done;
        }
    }
done:
    free(valid);
    free(files);
    return rc;
}

int ps_checkpoint_load(ps_ckpt_folder *f, const char *job, uint32_t shard, uint64_t key_lo,
                       uint64_t key_hi, ps_ckpt_array *arrays, size_t narrays, ps_ckpt_meta *meta,
                       char *path_out, size_t cap, const ps_log *log, ps_error *err)
{
    return ps_checkpoint_load_tables(f, job, shard, key_lo, key_hi, arrays, narrays, NULL, 0, meta,
                                     path_out, cap, log, err);
}
