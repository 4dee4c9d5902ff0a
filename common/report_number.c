/* report_number.c — a figure as report_number.h describes it: printf's
 * fixed point for a finite number, a word of our own for the others. */
#include "report_number.h"

#include <math.h>
#include <stdio.h>

const char *ps_report_number_format(double x, int decimals, char *buf, size_t cap)
{
    if (isnan(x))
        snprintf(buf, cap, "nan");
    else if (isinf(x))
        snprintf(buf, cap, x > 0 ? "inf" : "-inf");
    else
        snprintf(buf, cap, "%.*f", decimals, x);
    return buf;
}
