/* report_number.h — numbers for people: a figure as psworker and psrun
 * print it in their closing lines and psrun's progress bar, the same text
 * whatever the program. libc only. */
#ifndef PS_REPORT_NUMBER_H
#define PS_REPORT_NUMBER_H

#include <stddef.h>

/* x with `decimals` digits after the point ("0.1235"), or "nan", "inf",
 * "-inf" (printf gives "-nan"); returns buf. */
const char *ps_report_number_format(double x, int decimals, char *buf, size_t cap);

#endif
