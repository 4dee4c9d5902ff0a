/* fuzz_csv.c — the CSV reader: the first byte picks the feature count and
 * the label column, the rest is the file. */
#include "dataset.h"

#include "fuzz_file.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t features = 1 + (data[0] & 0x3f);
    uint32_t label_column = (data[0] >> 6) == 3 ? (uint32_t)features : data[0] >> 6;
    char path[512];
    fuzz_write("data.csv", data + 1, size - 1, path, sizeof path);
    ps_dataset *ds = NULL;
    ps_error err;
    if (ps_dataset_read_csv(path, features, label_column, &ds, &err) == 0 &&
        ps_dataset_rows(ds) > 0) {
        double mean[64], std[64];
        ps_dataset_stats(ds, mean, std);
    }
    ps_dataset_destroy(&ds);
    return 0;
}
