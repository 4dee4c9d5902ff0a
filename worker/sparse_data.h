/* sparse_data.h — data sets of the sparse models (sparse_logistic, fm): rows
 * of a 0/1 label and a list of (key, value) features, keys being hashes of
 * (field, value) (feature_hash.h), held in CSR form. Read two ways with the
 * same rows in the same order: whole into memory (ps_sparse_read, then
 * ps_sparse_shard), or streamed, one worker's shard a batch at a time into
 * buffers the caller allocated once (ps_sparse_stream_*), for data no
 * worker could hold. The readers are the only place click-log bytes become
 * structs: every field checked, every error "path:line: what is wrong". */
#ifndef PS_SPARSE_DATA_H
#define PS_SPARSE_DATA_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "job.h"

/* The formats (config/job.h's PS_FORMAT_CRITEO and PS_FORMAT_LIBSVM64):
 *
 * criteo: one row a line, 40 tab-separated fields: the label (0 or 1), 13
 *   integer fields I1..I13 (decimal, optional '-') and 26 categorical
 *   fields C1..C26 (hexadecimal strings, "68fd1e64"). An empty field is
 *   missing and gives no feature. Every present field gives one feature of
 *   value 1: integer field i (0-based, 0..12) keyed by ps_feature_hash_u64(i,
 *   ps_feature_bucket(v)) (log buckets; every negative v is bucket -1),
 *   categorical field j (0..25) by ps_feature_hash(13 + j, the string's
 *   bytes as written: case matters, Criteo's are lower case). A row has at
 *   most PS_CRITEO_FIELDS features, in field order.
 * libsvm64: "label id:value id:value ..." with the label 0, 1 or -1 (read as
 *   0, as the dense logistic reader does), ids unsigned 64-bit decimals,
 *   strictly increasing in a row, values finite floats; "#" starts a
 *   comment. Feature id gets the key ps_feature_hash_u64(0, id), in the
 *   order written.
 *
 * Not rows: in criteo an empty line or one of spaces (a tab separates
 * fields, so a line of tabs is a row of empty fields); in libsvm64 a line
 * of spaces and tabs before an optional "#". Lines are at
 * most 1 MiB, as dataset.c's; a longer one is PS_EDATA "path:line: line
 * longer than 1048576 bytes (1 MiB); not a text data file?". Only regular
 * files are opened: a folder, FIFO, device or socket is PS_EDATA "path: is
 * a FIFO, not a data file", unread. Other refusals, all PS_EDATA
 * "path:line: ...": a wrong field count, a label other than 0 or 1, an
 * integer field that is not a 64-bit integer, a categorical field that is
 * not hexadecimal, a malformed id:value pair, ids that do not increase, a
 * value that is not a finite number, a NUL byte. */
#define PS_CRITEO_INTS   13
#define PS_CRITEO_CATS   26
#define PS_CRITEO_FIELDS (PS_CRITEO_INTS + PS_CRITEO_CATS)

/* Rows in CSR form. As a batch (ps_sparse_batch_init) it owns arrays of
 * row_cap rows and nnz_cap features and ps_sparse_stream_next refills it;
 * as a data set's view (ps_sparse_rows) it is read-only and its caps are 0.
 * Row i's features are keys[offsets[i] .. offsets[i + 1]). values is NULL
 * for criteo, whose values are all 1: 4 bytes a feature saved. */
typedef struct ps_sparse_batch {
    size_t rows;     /* rows held */
    size_t *offsets; /* rows + 1 entries, offsets[0] == 0 */
    uint64_t *keys;  /* offsets[rows] keys */
    float *values;   /* offsets[rows] values; NULL when every value is 1 */
    float *labels;   /* rows labels, each 0 or 1 */
    uint64_t *lines; /* rows 1-based line numbers in the file, for messages */
    size_t row_cap;  /* a batch's capacity in rows ... */
    size_t nnz_cap;  /* ... and in features; 0 in a data set's view */
} ps_sparse_batch;

/* True for the formats ps_sparse_read and the streams read (criteo,
 * libsvm64). */
bool ps_sparse_format_ok(ps_data_format format);

/* The most features one row of the format can hold: PS_CRITEO_FIELDS for
 * criteo; for libsvm64 what a 1 MiB line can hold (" 0:1" is 4 bytes), 262144.
 * 0 for another format. For sizing a batch: a criteo batch of B rows never
 * runs out of features with nnz_cap = B * PS_CRITEO_FIELDS. */
size_t ps_sparse_row_features_max(ps_data_format format);

/* Allocates b's arrays for row_cap rows and nnz_cap features (values only
 * for a format that has them); b->rows is 0. PS_EINVAL for a format that is
 * not sparse or a cap of 0, PS_ENOMEM when the sizes overflow or memory
 * runs out (b is then empty). Free with ps_sparse_batch_fini. */
int ps_sparse_batch_init(ps_sparse_batch *b, ps_data_format format, size_t row_cap, size_t nnz_cap,
                         ps_error *err);

/* Frees a batch's arrays and zeroes it; a zeroed batch is fine. Never call
 * it on a data set's view. */
void ps_sparse_batch_fini(ps_sparse_batch *b);

/* ---- whole files in memory ----
 * Memory: per row 8 bytes of offset, 4 of label and 8 of line number, and
 * per feature 8 bytes of key (criteo) or 12 (libsvm64: key and value); a
 * criteo row of 39 present fields takes 332 bytes (psgen's rows, 33.6
 * fields on average, 289), and up to twice that while the arrays grow
 * during the read. */
typedef struct ps_sparse_data ps_sparse_data;

/* Reads the whole file path in format (criteo or libsvm64) into *out (the
 * caller's; ps_sparse_destroy). Errors: see the formats above; PS_EDATA
 * "path: no data rows" for a file without rows, PS_EIO "path: reason" when
 * it cannot be read, PS_EINVAL for another format. stop (may be NULL): a
 * signal handler's flag looked at before each line; once set the read ends
 * with PS_EINTR "path:line: reading interrupted". *out is NULL on error. */
int ps_sparse_read(const char *path, ps_data_format format, const volatile sig_atomic_t *stop,
                   ps_sparse_data **out, ps_error *err);

/* A new data set holding worker rank's rows of d (copied, in order): stride
 * gives rows rank, rank + W, ...; block [rank*n/W, (rank+1)*n/W), as
 * ps_dataset_shard does. PS_EINVAL when workers is 0 or rank >= workers;
 * PS_ENOMEM. A shard may hold no rows. */
int ps_sparse_shard(const ps_sparse_data *d, ps_shard_kind kind, uint32_t rank, uint32_t workers,
                    ps_sparse_data **out, ps_error *err);

/* The rows of d (owned by d, valid until it is destroyed). */
const ps_sparse_batch *ps_sparse_rows(const ps_sparse_data *d);

/* The format d was read in. */
ps_data_format ps_sparse_format(const ps_sparse_data *d);

/* Where row (0-based) of d came from, "path:line", into buf of cap bytes;
 * "path: row N" (1-based) for a row d does not have. */
void ps_sparse_row_where(const ps_sparse_data *d, size_t row, char *buf, size_t cap);

/* Frees d and sets *dp to NULL; a NULL *dp is fine. */
void ps_sparse_destroy(ps_sparse_data **dp);

/* ---- streams: one worker's shard, read sequentially ----
 * Memory: a line buffer of 1 MiB + 64 KiB, allocated at open, and the
 * caller's batch; nothing else, whatever the file's size. A stream parses
 * only its own rows (the others are only told apart from blank lines), so
 * a malformed row is reported by the worker whose shard holds it. */
typedef struct ps_sparse_stream ps_sparse_stream;

/* Opens path for worker rank of workers: its rows are those
 * ps_sparse_shard(ps_sparse_read(path), kind, rank, workers) holds, in the
 * same order. Open reads the file once without parsing, to count its rows
 * (a block shard's bounds need them; ps_sparse_stream_shard_rows). stop as ps_sparse_read's, looked
 * at before each line of every call. Errors as ps_sparse_read's for what open reads; PS_EINVAL for
 * a rank outside [0, workers) or a format that is not sparse. The caller owns *out
 * (ps_sparse_stream_close); NULL on error. */
int ps_sparse_stream_open(const char *path, ps_data_format format, ps_shard_kind kind,
                          uint32_t rank, uint32_t workers, const volatile sig_atomic_t *stop,
                          ps_sparse_stream **out, ps_error *err);

/* Replaces batch's rows with the shard's next rows, at most max_rows and
 * at most batch->row_cap, and *n = their count: fewer only at the end of
 * the shard (then 0 from every later call until a rewind) or when the next
 * row's features would not fit in what is left of nnz_cap (it comes first
 * next time). Allocates nothing. Errors as ps_sparse_read's with the line
 * of the row at fault (the batch then holds the rows before it); PS_EDATA
 * "path: no data rows" at the end of a file without rows; PS_EINVAL when
 * the batch is not one of this format or one row has more features than
 * nnz_cap ("path:line: the row has more features than a batch of M holds").
 * After an error the stream is good only for a rewind or a close. */
int ps_sparse_stream_next(ps_sparse_stream *s, size_t max_rows, ps_sparse_batch *batch, size_t *n,
                          ps_error *err);

/* Starts the shard over from its first row (the next epoch). PS_EIO when
 * the file cannot be read again. */
int ps_sparse_stream_rewind(ps_sparse_stream *s, ps_error *err);

/* Rows of the shard handed out since open or the last rewind. */
uint64_t ps_sparse_stream_rows_done(const ps_sparse_stream *s);

/* Rows of the whole file, and of this worker's shard of it: counted at
 * open, which reads the file once without parsing it. */
uint64_t ps_sparse_stream_file_rows(const ps_sparse_stream *s);
uint64_t ps_sparse_stream_shard_rows(const ps_sparse_stream *s);

/* Where row (0-based) of a batch this stream filled came from, "path:line",
 * into buf of cap bytes. */
void ps_sparse_stream_row_where(const ps_sparse_stream *s, const ps_sparse_batch *batch, size_t row,
                                char *buf, size_t cap);

/* Closes the file, frees the stream and sets *sp to NULL; a NULL *sp is
 * fine. */
void ps_sparse_stream_close(ps_sparse_stream **sp);

#endif
