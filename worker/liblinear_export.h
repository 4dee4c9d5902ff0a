/* liblinear_export.h — the sparse models' rows in liblinear's input format,
 * for comparing psd's sparse_logistic with liblinear on exactly the
 * features psworker trains on: files are read by sparse_data.h's streams
 * (the same hashing, buckets and checks), and each distinct 64-bit key
 * becomes a dense feature number (keymap.h), 1, 2, 3, ... in the order
 * keys first appear over all the files one export is given, in the order
 * given. Export the training file first: the test rows then share its
 * numbers, and a key only in a test file gets a number above any in the
 * training file, which liblinear's predict ignores, as psworker ignores a
 * key it never trained (an untrained weight of 0).
 *
 * A row is "label n:v n:v ...\n": the label 0 or 1 as read, the features
 * by increasing number (liblinear requires it), v the feature's value in
 * "%.9g" (1 for criteo; a float survives the round trip), and a key twice
 * in one row (a 64-bit hash collision, or never) one feature of the summed
 * value, as the sparse models sum it. A row without features is its label
 * alone. Note that liblinear numbers its classes in the order the training
 * file first gives them, so `predict -b 1` heads its output "labels 0 1" or
 * "labels 1 0": read the column of label 1 from that header. */
#ifndef PS_LIBLINEAR_EXPORT_H
#define PS_LIBLINEAR_EXPORT_H

#include <signal.h>
#include <stdint.h>

#include "error.h"
#include "job.h"
#include "keymap.h"

typedef struct ps_liblinear_export ps_liblinear_export;

/* What one file gave. */
typedef struct ps_liblinear_stats {
    uint64_t rows, positives;
    uint64_t features; /* n:v pairs written (a row's repeated keys merged) */
    uint64_t keys;     /* distinct keys in this file */
    uint64_t new_keys; /* of these, keys no earlier file of the export had */
    double seconds;
} ps_liblinear_stats;

/* A new export of files in format (criteo or libsvm64) with no key
 * numbered yet. PS_EINVAL for another format, PS_ENOMEM. The caller owns
 * *out (ps_liblinear_export_destroy); NULL on error. */
int ps_liblinear_export_new(ps_data_format format, ps_liblinear_export **out, ps_error *err);

/* Reads every row of in and writes it to out, numbering the keys not seen
 * before; fills *st. out is written under a temporary name beside it and
 * renamed when complete, so a file of that name is never half written; an
 * error removes the temporary file. Errors: the reader's, "in:line: what
 * is wrong" (PS_EDATA "in: no data rows" for a file without rows, PS_EIO
 * when it cannot be read); PS_EIO "out: reason" when out cannot be
 * written; PS_ERANGE past PS_KEYMAP_MAX keys; PS_ENOMEM. After an error x
 * has numbered some of in's keys and not others: start a new export. stop
 * (may be NULL): a signal handler's flag, as sparse_data.h's. */
int ps_liblinear_export_file(ps_liblinear_export *x, const char *in, const char *out,
                             const volatile sig_atomic_t *stop, ps_liblinear_stats *st,
                             ps_error *err);

/* The export's keys and their numbers (owned by x). */
const ps_keymap *ps_liblinear_export_keys(const ps_liblinear_export *x);

/* Frees x and sets *xp to NULL; a NULL *xp is fine. */
void ps_liblinear_export_destroy(ps_liblinear_export **xp);

#endif
