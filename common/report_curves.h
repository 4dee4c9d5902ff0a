/* report_curves.h — the training curves of a summary drawn as an SVG
 * (psworker --curves, psrun --curves), through svg.h: the training loss per
 * epoch in one panel, the test metric in the next ("no test set" when there
 * is none) and, for a binary classifier (s->has_auc), the test AUC in a
 * third, a line per curve in the order of s->curves, "rank R" in the
 * legend, and the title "JOB — MODEL, mode MODE, codec CODEC". */
#ifndef PS_REPORT_CURVES_H
#define PS_REPORT_CURVES_H

#include <stdio.h>

#include "error.h"
#include "report_summary.h"

/* The panels' data-name is "train_loss", "test_metric" and "test_auc"; svg.h
 * says how to read the points back. */

/* Writes the chart of s to f; codec is the pushes' compression ("none").
 * PS_ENOMEM, PS_EIO. */
int ps_report_curves_write(FILE *f, const ps_report_summary *s, const char *codec);

/* ps_report_curves_write into the file at path, whole or not at all
 * (report_file.h); err says "path: reason". */
int ps_report_curves_file_write(const char *path, const ps_report_summary *s, const char *codec,
                                ps_error *err);

#endif
