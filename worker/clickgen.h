/* clickgen.h — synthetic click logs in the criteo format, the logic of
 * psgen: rows of 13 heavy-tailed integer fields and 26 categorical fields
 * (Zipf-distributed vocabularies of 10 to 1M values plus one-off values),
 * whose labels come from a hidden factorization machine over a dozen fields,
 * so a factorization machine can beat logistic regression. Every row is a
 * function of (seed, split, index) alone, computed with IEEE arithmetic
 * only, so a seed gives byte-identical files on every machine. */
#ifndef PS_CLICKGEN_H
#define PS_CLICKGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "sparse_data.h"

/* The longest line ps_clickgen_row_format writes, its '\n' and NUL
 * included. */
#define PS_CLICKGEN_LINE_MAX 640

/* The most rows psgen takes per file (the test rows' probabilities and
 * labels are kept for the AUC: 8 bytes a row). */
#define PS_CLICKGEN_ROWS_MAX      (UINT64_C(1) << 40)
#define PS_CLICKGEN_TEST_ROWS_MAX UINT64_C(100000000)

/* The two streams of rows: train and test rows are drawn independently,
 * and the first n train rows are the same whatever the count asked for. */
typedef enum ps_clickgen_split { PS_CLICKGEN_TRAIN, PS_CLICKGEN_TEST } ps_clickgen_split;

/* One generated row. A categorical value is printed as 8 hex digits: a
 * vocabulary value has its top bit clear, a one-off value (never drawn
 * again but by a 1-in-2^31 chance) its top bit set. */
typedef struct ps_click_row {
    float label; /* 0 or 1, drawn with probability prob */
    double prob; /* the hidden model's probability of a click, in (0, 1) */
    bool has_int[PS_CRITEO_INTS];
    int64_t ints[PS_CRITEO_INTS];
    bool has_cat[PS_CRITEO_CATS];
    uint32_t cats[PS_CRITEO_CATS];
} ps_click_row;

typedef struct ps_clickgen ps_clickgen;

/* A generator for seed: builds the vocabularies' sampling tables (32 MB,
 * a fraction of a second). PS_ENOMEM when memory runs out. The caller
 * owns *out (ps_clickgen_destroy); NULL on error. */
int ps_clickgen_new(uint64_t seed, ps_clickgen **out, ps_error *err);

/* Row index of split into *row: a pure function of (seed, split, index). */
void ps_clickgen_row(const ps_clickgen *g, ps_clickgen_split split, uint64_t index,
                     ps_click_row *row);

/* Writes row as one criteo line, its '\n' included, into buf of cap bytes
 * (PS_CLICKGEN_LINE_MAX always suffices); returns its length, 0 when cap is
 * too small. */
size_t ps_clickgen_row_format(const ps_click_row *row, char *buf, size_t cap);

/* Categorical field j's vocabulary size (10 to 1000000), the share of its
 * occurrences that are one-off values (0 to 0.2) and of rows where it is
 * missing; integer field i's share of missing rows. 0 for j or i out of
 * range. */
uint32_t ps_clickgen_vocab(uint32_t j);
double ps_clickgen_tail_share(uint32_t j);
double ps_clickgen_cat_missing(uint32_t j);
double ps_clickgen_int_missing(uint32_t i);

/* The exponent of the vocabularies' Zipf laws: rank r is drawn with
 * probability proportional to r^-1.1. */
#define PS_CLICKGEN_ZIPF 1.1

/* What ps_clickgen_write made. auc and logloss: the best achievable on the
 * test rows, from the true probabilities against the drawn labels (NaN
 * when the test labels hold one class). */
typedef struct ps_clickgen_summary {
    uint64_t train_rows, test_rows;
    uint64_t train_positives, test_positives;
    uint64_t train_bytes, test_bytes;
    double auc, logloss;
    double seconds;
} ps_clickgen_summary;

/* Writes prefix.train.tsv (rows rows), prefix.test.tsv (test_rows rows)
 * and prefix.test.prob (each test row's prob, "%.9f" a line, same order),
 * creating prefix's folder when missing. Each file is written under a
 * temporary name beside it, and all three are renamed into place once all
 * are complete, so a file never has its final name half written; an error
 * leaves no temporary file (but a rename that fails leaves the files
 * renamed before it). PS_EINVAL for rows or test_rows of 0 or
 * above the maxima, PS_EIO "path: reason" when a file cannot be written,
 * PS_ENOMEM. */
int ps_clickgen_write(const ps_clickgen *g, const char *prefix, uint64_t rows, uint64_t test_rows,
                      ps_clickgen_summary *sum, ps_error *err);

/* Frees g and sets *gp to NULL; a NULL *gp is fine. */
void ps_clickgen_destroy(ps_clickgen **gp);

#endif
