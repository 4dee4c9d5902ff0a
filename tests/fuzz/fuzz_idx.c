/* fuzz_idx.c — the IDX (MNIST) reader, plain or gzip'd: the input holds
 * the images file and the labels file, split where a 2-byte length says;
 * the feature count comes from the images file's own rows x cols when it
 * is small, so inputs get past the size check. */
#include "dataset.h"

#include "fuzz_file.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* rows x cols of an idx3 header (big-endian, at bytes 8 and 12), or 0. */
static size_t header_features(const uint8_t *p, size_t n)
{
    if (n < 16)
        return 0;
    uint32_t rows = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
    uint32_t cols = (uint32_t)p[12] << 24 | (uint32_t)p[13] << 16 | (uint32_t)p[14] << 8 | p[15];
    if (rows == 0 || cols == 0 || rows > 64 || cols > 64)
        return 0;
    return (size_t)rows * cols;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t split = (size_t)data[0] | (size_t)data[1] << 8;
    data += 2;
    size -= 2;
    if (split > size)
        split = size;
    size_t features = header_features(data, split);
    if (features == 0)
        features = 4;
    char images[512], labels[512];
    fuzz_write("images-idx3-ubyte", data, split, images, sizeof images);
    fuzz_write("labels-idx1-ubyte", data + split, size - split, labels, sizeof labels);
    ps_dataset *ds = NULL;
    ps_error err;
    ps_dataset_read_idx(images, labels, features, &ds, &err);
    ps_dataset_destroy(&ds);
    return 0;
}
