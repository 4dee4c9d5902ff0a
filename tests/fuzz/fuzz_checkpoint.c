/* fuzz_checkpoint.c — the checkpoint reader, as psd runs it at start: the
 * input is the one checkpoint file in the shard's folder, loaded into a
 * small layout (θ and adam's m and v, 4 floats each). When the first byte
 * is odd the CRC in the trailer is made right, so inputs get past the
 * checksum to the checks after it. */
#include "checkpoint.h"

#include "fuzz_file.h"

#include <stdint.h>
#include <sys/stat.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TRAILER 16
static uint8_t file[1 << 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size - 1 > sizeof file)
        return 0;
    int fix_crc = data[0] & 1;
    size--;
    memcpy(file, data + 1, size);
    if (fix_crc && size >= TRAILER) {
        uint32_t c = (uint32_t)crc32(crc32(0L, Z_NULL, 0), file, (uInt)(size - TRAILER));
        memcpy(file + size - TRAILER, &c, 4);
    }
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/ckpt", fuzz_dir());
    snprintf(path, sizeof path, "%s/fuzz-shard0-00000000000000000001.ckpt", dir);
    mkdir(dir, 0700);
    char ignored[600];
    fuzz_write("ckpt/fuzz-shard0-00000000000000000001.ckpt", file, size, ignored, sizeof ignored);

    float theta[4], m[4], v[4];
    ps_ckpt_array arrays[3] = {
        {"theta", theta, 4},
        {"m", m, 4},
        {"v", v, 4},
    };
    static const ps_log quiet = {.level = PS_LOG_ERROR}; /* no warning per input */
    ps_ckpt_folder f;
    ps_ckpt_meta meta;
    ps_error err;
    char loaded[PATH_MAX];
    if (ps_ckpt_folder_init(&f, dir, 3, false, &err) == 0)
        ps_checkpoint_load(&f, "fuzz", 0, 0, 4, arrays, 3, &meta, loaded, sizeof loaded, &quiet,
                           &err);
    ps_ckpt_folder_fini(&f);
    ps_checkpoint_verify(path, "fuzz", 0, 0, 4, arrays, 3, &err);
    return 0;
}
