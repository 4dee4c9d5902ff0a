/* output.h — files psworker writes: the final model as one NumPy .npy file
 * per tensor plus manifest.json (docs/architecture.md#outputs), and the run's summary (its
 * format is report_summary.h's). Every file is written to a temporary name beside
 * it, flushed and renamed, so a reader never sees half a file; JSON is
 * written with json-c. */
#ifndef PS_OUTPUT_H
#define PS_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "codec.h"
#include "error.h"
#include "report_file.h"
#include "report_summary.h"

/* Creates dir and its missing parents (mode 0755). PS_EIO naming the part
 * that could not be made. */
int ps_output_mkdirs(const char *dir, ps_error *err);

/* Writes data (the product of shape[0..ndims) floats) as a NumPy v1.0 .npy
 * file: '<f4', C order, header padded so the data starts at a multiple of 64. */
int ps_output_npy_write(const char *path, const float *data, const uint64_t *shape, uint32_t ndims,
                        ps_error *err);

/* A sparse table written into the model folder (sparse_step.h): its rows
 * as two .npy files of the folder, keys (uint64, rows) and rows (float32,
 * rows x dim), row i of one being key i of the other. */
typedef struct ps_output_table {
    char name[PS_TABLE_NAME_MAX];
    uint32_t dim;
    uint64_t rows;
    char keys_file[32];
    char rows_file[32];
} ps_output_table;

/* The training set's statistics the job standardised its data with
 * (data.normalize: standard): features means and population standard
 * deviations (ddof 0), as dataset.h's ps_dataset_standardize takes them. */
typedef struct ps_output_norm {
    const double *mean, *std;
    uint64_t features;
} ps_output_norm;
#define PS_OUTPUT_NORM_MEAN "norm_mean.npy"
#define PS_OUTPUT_NORM_STD  "norm_std.npy"
/* a sparse table's files in the model folder (sparse_step.h) */
#define PS_OUTPUT_TABLE_KEYS "keys.npy"
#define PS_OUTPUT_TABLE_ROWS "rows.npy"

/* Writes θ (num_params floats) into dir (created with parents): one
 * <tensor>.npy per tensor, then manifest.json {"job": str, "version": int,
 * "num_params": int, "tensors": [{"name": str, "file": str, "shape": [int,
 * ...], "offset": int}], "tables": [{"name": str, "dim": int, "rows": int,
 * "keys_file": str, "rows_file": str}]}; "tables" only with ntables > 0,
 * whose files the caller wrote already: the manifest comes last, so a
 * folder with one names only files written whole. With norm (else NULL)
 * also norm_mean.npy and norm_std.npy (float64, features) and "normalize":
 * {"kind": "standard", "features": int, "mean_file": str, "std_file": str}
 * in the manifest, what psworker predict standardises with. With
 * unfinished (else NULL: not known) also "unfinished": [{"rank": int,
 * "pushes": int, "expected": int}, ...], the nunfinished ranks whose data
 * was not trained to the end when θ was taken ([] when every rank
 * finished), as report_summary.h's "unfinished". PS_EINVAL when a tensor
 * lies outside θ. */
int ps_output_model_write(const char *dir, const char *job, uint64_t version, const float *theta,
                          uint64_t num_params, const ps_tensor_info *tensors, size_t ntensors,
                          const ps_output_table *tables, size_t ntables, const ps_output_norm *norm,
                          const ps_report_unfinished *unfinished, size_t nunfinished,
                          ps_error *err);

/* Checks, before a job trains, each file ps_output_model_write and a
 * sparse table's export will write into dir: the tensors' files and the
 * manifest, with norm the normalisation's, with table the table's. A name
 * that is a folder, a device, a FIFO or a socket there, say, is refused
 * now (report_file.h's ps_report_file_check), not when the model is
 * written at the end. 0, or PS_EINVAL with err naming the file. */
int ps_output_model_check(const char *dir, const ps_tensor_info *tensors, size_t ntensors,
                          bool norm, bool table, ps_error *err);

/* A .npy file written a page of rows at a time, its row count known only
 * at the end (a table's rows, paged from the servers): begin writes the
 * header with room for any count, append adds rows (cols values each; cols
 * 0: a 1-D array of one value a row), end writes the count into the header
 * and puts the file in place (report_file.h); abort leaves nothing. After
 * begin, exactly one of end and abort. PS_EIO naming the file. */
typedef enum ps_npy_type { PS_NPY_F32, PS_NPY_U64 } ps_npy_type;
typedef struct ps_npy_rows {
    ps_report_file file;
    ps_npy_type type;
    uint64_t cols;
    uint64_t rows; /* appended so far */
} ps_npy_rows;

int ps_output_npy_rows_begin(ps_npy_rows *w, const char *path, ps_npy_type type, uint64_t cols,
                             ps_error *err);
int ps_output_npy_rows_append(ps_npy_rows *w, const void *data, size_t rows, ps_error *err);
int ps_output_npy_rows_end(ps_npy_rows *w, ps_error *err);
void ps_output_npy_rows_abort(ps_npy_rows *w);

/* Writes s to path as report_summary.h's summary JSON (non-finite numbers null).
 * PS_EIO with "path: reason" when it cannot be written. */
int ps_output_summary_write(const ps_report_summary *s, const char *path, ps_error *err);

#endif
