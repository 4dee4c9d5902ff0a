/* fuzz_libsvm.c — the LIBSVM reader: the first byte picks the feature
 * count, the rest is the file. */
#include "dataset.h"

#include "fuzz_file.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t features = 1 + data[0];
    char path[512];
    fuzz_write("data.libsvm", data + 1, size - 1, path, sizeof path);
    ps_dataset *ds = NULL;
    ps_error err;
    ps_dataset_read_libsvm(path, features, &ds, &err);
    ps_dataset_destroy(&ds);
    return 0;
}
