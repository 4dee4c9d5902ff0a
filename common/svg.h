/* svg.h — line charts as one SVG document, drawn by our own code (libc and
 * libm only): panels side by side, each with labelled axes, tick labels
 * and one polyline per line, and a legend under them. A value that is not
 * finite is a gap in its line, never a coordinate.
 *
 * The geometry can be read back. Each panel is a <g class="panel"
 * data-name=NAME> whose data-plot-x, data-plot-y, data-plot-width and
 * data-plot-height give its plot area in pixels and data-x-min, data-x-max,
 * data-y-min and data-y-max the values at its edges (printf "%.17g"):
 *
 *     px = plot_x + (x - x_min) / (x_max - x_min) * plot_width
 *     py = plot_y + plot_height - (y - y_min) / (y_max - y_min) * plot_height
 *
 * Every panel's x axis spans the x of all the chart's points. A line's
 * points are <polyline class="line" data-rank=RANK points="px,py
 * ..."> (one per run of finite values, coordinates "%.3f"), and a point
 * alone between gaps is a <circle class="point" data-rank=RANK>. Text is
 * escaped for XML, and bytes that are not UTF-8 become U+FFFD. */
#ifndef PS_SVG_H
#define PS_SVG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PS_SVG_PANELS_MAX 4

/* One line: point i is (x0 + i * dx, y[i]). */
typedef struct ps_svg_line {
    const char *label; /* in the legend: "rank 0" */
    uint32_t rank;     /* written as data-rank */
    double x0, dx;
    const double *y; /* n values; one that is not finite is a gap */
    size_t n;
} ps_svg_line;

typedef struct ps_svg_panel {
    const char *name;       /* data-name, for a reader: "train_loss" */
    const char *x_label;    /* "epoch" */
    const char *y_label;    /* "training loss (log-loss)" */
    const char *empty_note; /* written in the plot area when no value is finite */
    bool x_whole;           /* x ticks at whole numbers only (epochs) */
    const ps_svg_line *lines;
    size_t nlines; /* line i gets colour i, so panels listing the same lines agree */
} ps_svg_panel;

typedef struct ps_svg_chart {
    const char *title;
    const ps_svg_panel *panels;
    size_t npanels; /* 1 to PS_SVG_PANELS_MAX, side by side */
} ps_svg_chart;

/* Writes c to f as one SVG document. The legend lists the labels of the
 * panel with the most lines. PS_EINVAL for no panels or more than
 * PS_SVG_PANELS_MAX, PS_EIO when writing to f failed. */
int ps_svg_chart_write(FILE *f, const ps_svg_chart *c);

/* Writes s to f escaped for XML text and attribute values (&, <, >, ", '
 * as entities; control characters XML does not allow and bytes that are
 * not UTF-8 as U+FFFD). */
void ps_svg_text_write(FILE *f, const char *s);

#endif
