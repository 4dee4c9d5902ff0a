/* dataset.h — dense data sets for the built-in models: n rows of d float
 * features (row-major) and one float label per row. The readers (CSV, LIBSVM
 * and IDX) are the only place data-file bytes become structs: they check
 * every field and name file:line (IDX: file and byte) in every error. They
 * open regular files only (a folder, FIFO, device or socket is PS_EDATA
 * "path: is a FIFO, not a data file", unread) and take text lines of at
 * most 1 MiB (PS_EDATA "path:line: line longer than ..."). Also:
 * standardisation with the training set's statistics, and sharding by
 * worker rank. */
#ifndef PS_DATASET_H
#define PS_DATASET_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "job.h"

typedef struct ps_dataset ps_dataset;

/* An empty (zero-filled) data set of rows x features. PS_EINVAL when
 * features is 0, PS_ENOMEM when the size overflows or memory runs out. */
int ps_dataset_new(size_t rows, size_t features, ps_dataset **out, ps_error *err);

/* Reads a CSV file without header: every non-empty line has features + 1
 * numeric fields, the label in field label_column (0-based). A malformed line
 * gives PS_EDATA and "path:line: what is wrong"; an unreadable file PS_EIO.
 * The caller owns *out (ps_dataset_destroy); *out is NULL on error. */
int ps_dataset_read_csv(const char *path, size_t features, uint32_t label_column, ps_dataset **out,
                        ps_error *err);

/* Reads a LIBSVM file: "label idx:val idx:val ..." with indices 1-based,
 * at most features, strictly increasing; absent indices are 0. "#" starts a
 * comment. Errors as ps_dataset_read_csv. */
int ps_dataset_read_libsvm(const char *path, size_t features, ps_dataset **out, ps_error *err);

/* Reads an IDX pair (the MNIST format, gzip or plain): images, an idx3
 * file of unsigned bytes (magic 0x00000803, count, rows, cols) whose rows x
 * cols must equal features, each pixel a float 0..255; and labels, an idx1
 * file (0x00000801, count) with one byte per image. PS_EDATA "file: what is
 * wrong" (with the byte offset where it helps) for a bad magic number, a
 * size mismatch, a count mismatch, a truncated or over-long file or a
 * corrupt gzip stream; PS_EIO when a file cannot be read. */
int ps_dataset_read_idx(const char *images, const char *labels, size_t features, ps_dataset **out,
                        ps_error *err);

/* The labels file of an IDX images file with a standard name: "images"
 * becomes "labels" and "idx3" becomes "idx1" in the file name
 * (train-images-idx3-ubyte.gz -> train-labels-idx1-ubyte.gz). PS_ECONFIG
 * when the name has neither, or out (cap bytes) is too small. */
int ps_dataset_idx_labels_path(const char *images, char *out, size_t cap, ps_error *err);

/* Reads path in the given format. labels: the IDX labels file; NULL or ""
 * derives it with ps_dataset_idx_labels_path (the only place that does);
 * ignored by the text formats. stop (not owned, may be NULL): a signal
 * handler's flag, looked at before each line or IDX chunk;
 * once set, reading ends with PS_EINTR "path:line: reading interrupted". */
int ps_dataset_read(const char *path, const char *labels, ps_data_format format, size_t features,
                    uint32_t label_column, const volatile sig_atomic_t *stop, ps_dataset **out,
                    ps_error *err);

/* Where row (0-based) of a data set came from, for an error message:
 * "file:line" for CSV and LIBSVM, "labels-file: item 6 (byte 13)" for IDX,
 * into buf of cap bytes. */
void ps_dataset_row_where(const ps_dataset *ds, size_t row, char *buf, size_t cap);

size_t ps_dataset_rows(const ps_dataset *ds);
size_t ps_dataset_features(const ps_dataset *ds);

/* The feature matrix (rows x features, row-major) and the labels; owned by
 * ds, valid until it is destroyed. */
float *ps_dataset_x(ps_dataset *ds);
float *ps_dataset_y(ps_dataset *ds);
const float *ps_dataset_cx(const ps_dataset *ds);
const float *ps_dataset_cy(const ps_dataset *ds);

/* Per-feature mean and population standard deviation (ddof 0), accumulated
 * in double, into caller arrays of ps_dataset_features(ds) entries each. */
void ps_dataset_stats(const ps_dataset *ds, double *mean, double *std);

/* x := (x - mean) / std for every row; a feature whose std is 0 (or not
 * finite) is only centred. Use the training set's statistics for both the
 * training and the test set. */
void ps_dataset_standardize(ps_dataset *ds, const double *mean, const double *std);


/* A new data set holding worker rank's rows of ds (copied), in order.
 * PS_EINVAL when workers is 0 or rank >= workers. */
int ps_dataset_shard(const ps_dataset *ds, ps_shard_kind kind, uint32_t rank, uint32_t workers,
                     ps_dataset **out, ps_error *err);

/* Frees the data set and sets *dsp to NULL; a NULL *dsp is fine. */
void ps_dataset_destroy(ps_dataset **dsp);

#endif
