/* output.c — the final model as NumPy .npy files plus manifest.json, and the
 * write-to-temporary-then-rename helper the summary uses too. */
#include "output.h"

#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NPY_ALIGN 64
/* a tensor's file name: its name, "_", an index and ".npy" */
#define TENSOR_FILE_MAX (PS_TENSOR_NAME_MAX + 32)

int ps_output_replace_file(const char *path, int (*fill)(FILE *f, const void *arg), const void *arg,
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

void ps_output_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

int ps_output_mkdirs(const char *dir, ps_error *err)
{
    char buf[PATH_MAX];
    if (!ps_strlcpy(buf, dir, sizeof buf))
        return ps_error_set(err, PS_EIO, "%s: path too long", dir);
    size_t len = strlen(buf);
    if (len == 0)
        return ps_error_set(err, PS_EIO, "an empty folder name");
    /* make each prefix that ends at a '/', then the whole path */
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            return ps_error_set(err, PS_EIO, "%s: %s", buf, strerror(e));
        }
        buf[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ps_error_set(err, PS_EIO, "%s: not a folder", dir);
    return 0;
}

/* ---- .npy ---- */

typedef struct npy_args {
    const float *data;
    const uint64_t *shape;
    uint32_t ndims;
    size_t count;
} npy_args;

static int npy_fill(FILE *f, const void *arg)
{
    const npy_args *a = arg;
    char dict[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (uint32_t i = 0; i < a->ndims; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, i == 0 ? "%llu" : ", %llu",
                      (unsigned long long)a->shape[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", a->ndims == 1 ? "," : "");
    if (n < 0 || (size_t)n >= sizeof dict - 1)
        return PS_EINVAL;
    /* magic (6) + version (2) + header length (2) + dict + spaces + '\n' */
    size_t total = 10 + (size_t)n + 1;
    total = (total + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    size_t header_len = total - 10;
    unsigned char pre[10] = {0x93,
                             'N',
                             'U',
                             'M',
                             'P',
                             'Y',
                             1,
                             0,
                             (unsigned char)(header_len & 0xff),
                             (unsigned char)(header_len >> 8)};
    fwrite(pre, 1, sizeof pre, f);
    fwrite(dict, 1, (size_t)n, f);
    for (size_t i = 10 + (size_t)n; i < total - 1; i++)
        fputc(' ', f);
    fputc('\n', f);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (a->count > 0 && fwrite(a->data, sizeof(float), a->count, f) != a->count)
        return PS_EIO;
#else
    for (size_t i = 0; i < a->count; i++) {
        uint32_t u;
        memcpy(&u, &a->data[i], 4);
        unsigned char le[4] = {u & 0xff, (u >> 8) & 0xff, (u >> 16) & 0xff, u >> 24};
        fwrite(le, 1, 4, f);
    }
#endif
    return ferror(f) ? PS_EIO : 0;
}

/* Product of the shape; false on overflow. */
static bool shape_count(const uint64_t *shape, uint32_t ndims, size_t *count)
{
    size_t c = 1;
    for (uint32_t i = 0; i < ndims; i++) {
        if (shape[i] > SIZE_MAX || !ps_mul_ok(c, (size_t)shape[i], &c))
            return false;
    }
    *count = c;
    return true;
}

int ps_output_npy_write(const char *path, const float *data, const uint64_t *shape, uint32_t ndims,
                        ps_error *err)
{
    npy_args a = {.data = data, .shape = shape, .ndims = ndims};
    if (ndims > PS_MAX_DIMS || !shape_count(shape, ndims, &a.count))
        return ps_error_set(err, PS_EINVAL, "%s: bad tensor shape", path);
    return ps_output_replace_file(path, npy_fill, &a, err);
}

/* ---- the model folder ---- */

typedef struct manifest_args {
    const char *job;
    uint64_t version;
    uint64_t num_params;
    const ps_tensor_info *tensors;
    size_t ntensors;
    char (*files)[TENSOR_FILE_MAX];
} manifest_args;

static int manifest_fill(FILE *f, const void *arg)
{
    const manifest_args *a = arg;
    fputs("{\"job\": ", f);
    ps_output_json_string(f, a->job);
    fprintf(f, ", \"version\": %llu, \"num_params\": %llu, \"tensors\": [",
            (unsigned long long)a->version, (unsigned long long)a->num_params);
    for (size_t i = 0; i < a->ntensors; i++) {
        const ps_tensor_info *t = &a->tensors[i];
        fputs(i ? ", {\"name\": " : "{\"name\": ", f);
        ps_output_json_string(f, t->name);
        fputs(", \"file\": ", f);
        ps_output_json_string(f, a->files[i]);
        fputs(", \"shape\": [", f);
        for (uint32_t k = 0; k < t->ndims; k++)
            fprintf(f, k ? ", %llu" : "%llu", (unsigned long long)t->shape[k]);
        fprintf(f, "], \"offset\": %llu}", (unsigned long long)t->offset);
    }
    fputs("]}\n", f);
    return ferror(f) ? PS_EIO : 0;
}

/* A file name for tensor i: its name with anything but [A-Za-z0-9_.-]
 * replaced by '_', made unique against the names before it. */
static void tensor_file_name(const ps_tensor_info *tensors, size_t i,
                             char (*files)[TENSOR_FILE_MAX])
{
    char base[PS_TENSOR_NAME_MAX];
    size_t n = 0;
    for (const char *s = tensors[i].name; *s && n < sizeof base - 1; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || (c == '.' && n > 0);
        base[n++] = ok ? c : '_';
    }
    base[n] = '\0';
    if (n == 0)
        snprintf(base, sizeof base, "tensor%zu", i);
    snprintf(files[i], sizeof files[i], "%s.npy", base);
    for (size_t k = 0; k < i; k++) {
        if (strcmp(files[k], files[i]) == 0) {
            snprintf(files[i], sizeof files[i], "%s_%zu.npy", base, i);
            break;
        }
    }
}

int ps_output_model_write(const char *dir, const char *job, uint64_t version, const float *theta,
                          uint64_t num_params, const ps_tensor_info *tensors, size_t ntensors,
                          ps_error *err)
{
    if (ntensors > PS_MAX_TENSORS)
        return ps_error_set(err, PS_EINVAL, "%zu tensors, at most %d", ntensors, PS_MAX_TENSORS);
    for (size_t i = 0; i < ntensors; i++) {
        size_t count;
        const ps_tensor_info *t = &tensors[i];
        if (t->ndims > PS_MAX_DIMS || !shape_count(t->shape, t->ndims, &count) ||
            t->offset > num_params || count > num_params - t->offset)
            return ps_error_set(err, PS_EINVAL, "tensor %s lies outside θ of %llu parameters",
                                t->name, (unsigned long long)num_params);
    }
    int rc = ps_output_mkdirs(dir, err);
    if (rc != 0)
        return rc;
    char files[PS_MAX_TENSORS][TENSOR_FILE_MAX];
    char path[PATH_MAX];
    for (size_t i = 0; i < ntensors; i++) {
        tensor_file_name(tensors, i, files);
        if (snprintf(path, sizeof path, "%s/%s", dir, files[i]) >= (int)sizeof path)
            return ps_error_set(err, PS_EIO, "%s: path too long", dir);
        rc = ps_output_npy_write(path, theta + tensors[i].offset, tensors[i].shape,
                                 tensors[i].ndims, err);
        if (rc != 0)
            return rc;
    }
    if (snprintf(path, sizeof path, "%s/manifest.json", dir) >= (int)sizeof path)
        return ps_error_set(err, PS_EIO, "%s: path too long", dir);
    manifest_args a = {job, version, num_params, tensors, ntensors, files};
    return ps_output_replace_file(path, manifest_fill, &a, err);
}
