/* fuzz_job.c — the YAML job-file loader: any text, parsed and validated as
 * a job file in a folder of its own (relative data paths resolve there). */
#include "job.h"

#include "fuzz_file.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ps_job job;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ps_error err;
    ps_job_parse((const char *)data, size, "fuzz.yaml", fuzz_dir(), &job, &err);
    return 0;
}
