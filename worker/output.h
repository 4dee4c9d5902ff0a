/* output.h — files psworker writes: the final model as one NumPy .npy file
 * per tensor plus manifest.json (docs/architecture.md#outputs), and the run's summary (its
 * format is report_summary.h's). Every file is written to a temporary name beside
 * it, flushed and renamed, so a reader never sees half a file; JSON is
 * written with json-c. */
#ifndef PS_OUTPUT_H
#define PS_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "codec.h"
#include "error.h"
#include "report_summary.h"

/* Creates dir and its missing parents (mode 0755). PS_EIO naming the part
 * that could not be made. */
int ps_output_mkdirs(const char *dir, ps_error *err);

/* Writes data (the product of shape[0..ndims) floats) as a NumPy v1.0 .npy
 * file: '<f4', C order, header padded so the data starts at a multiple of 64. */
int ps_output_npy_write(const char *path, const float *data, const uint64_t *shape, uint32_t ndims,
                        ps_error *err);

/* Writes θ (num_params floats) into dir (created with parents): one
 * <tensor>.npy per tensor, then manifest.json {"job": str, "version": int,
 * "num_params": int, "tensors": [{"name": str, "file": str, "shape": [int,
 * ...], "offset": int}]}. PS_EINVAL when a tensor lies outside θ. */
int ps_output_model_write(const char *dir, const char *job, uint64_t version, const float *theta,
                          uint64_t num_params, const ps_tensor_info *tensors, size_t ntensors,
                          ps_error *err);

/* Writes s to path as report_summary.h's summary JSON (non-finite numbers null).
 * PS_EIO with "path: reason" when it cannot be written. */
int ps_output_summary_write(const ps_report_summary *s, const char *path, ps_error *err);

#endif
