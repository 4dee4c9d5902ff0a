/* svg.c — line charts as SVG, as svg.h describes them: the axis ranges and
 * ticks are worked out here, every coordinate comes from one transform per
 * panel, and that transform is written beside the lines so a reader can
 * invert it. */
#include "svg.h"

#include "error.h"

#include <math.h>
#include <string.h>

#define PANEL_W    480.0 /* each panel's share of the width */
#define MARGIN_L   76.0  /* room for the y tick labels and the y label */
#define MARGIN_R   20.0
#define TITLE_H    48.0
#define PLOT_H     280.0
#define BELOW_H    52.0 /* x tick labels and the x label */
#define LEGEND_ROW 20.0
#define LEGEND_COL 120.0
#define TICKS      5 /* about this many tick steps on an axis */

static const char *const PALETTE[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define PALETTE_N (sizeof PALETTE / sizeof PALETTE[0])

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* ---- text ---- */

static bool continuation(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

/* Bytes of the UTF-8 character at p that XML allows, or 0 when it is not
 * one (a bad sequence, a surrogate, U+FFFE or U+FFFF). */
static size_t utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return continuation(p[1]) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        if (p[1] < lo || p[1] > hi || !continuation(p[2]))
            return 0;
        if (c == 0xEF && p[1] == 0xBF && (p[2] == 0xBE || p[2] == 0xBF))
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        if (p[1] < lo || p[1] > hi || !continuation(p[2]) || !continuation(p[3]))
            return 0;
        return 4;
    }
    return 0;
}

void ps_svg_text_write(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p != '\0') {
        size_t len = utf8_len(p);
        if (len == 0) {
            fputs(REPLACEMENT, f);
            p++;
            continue;
        }
        if (len > 1) {
            fwrite(p, 1, len, f);
            p += len;
            continue;
        }
        switch (*p) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&apos;", f);
            break;
        default:
            if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
                fputs(REPLACEMENT, f);
            else
                fputc(*p, f);
        }
        p++;
    }
}

/* ---- axes ---- */

typedef struct axis {
    double lo, hi; /* the values at the plot area's edges */
    double step;   /* between ticks */
} axis;

/* A step of 1, 2 or 5 times a power of ten near span / TICKS. */
static double nice_step(double span)
{
    double raw = span / TICKS;
    double mag = pow(10.0, floor(log10(raw)));
    double frac = raw / mag;
    double nice = frac <= 1.0 ? 1.0 : frac <= 2.0 ? 2.0 : frac <= 5.0 ? 5.0 : 10.0;
    double step = nice * mag;
    return isfinite(step) && step > 0.0 ? step : span;
}

/* Where x lies between the axis's edges, 0 to 1 inside; halved first so
 * no subtraction overflows for finite values. */
static double axis_frac(const axis *a, double x)
{
    return (x / 2 - a->lo / 2) / (a->hi / 2 - a->lo / 2);
}

/* Makes lo < hi with finite halves, whatever the data. */
static void axis_settle(axis *a)
{
    if (!(a->hi > a->lo) || !isfinite(a->hi / 2 - a->lo / 2) || a->hi / 2 - a->lo / 2 == 0.0) {
        double mid = isfinite(a->lo) ? a->lo : 0.0;
        a->lo = mid - 1.0;
        a->hi = mid + 1.0;
        if (!(a->hi > a->lo)) { /* too large for 1 to show */
            a->lo = mid * (mid < 0 ? 1.5 : 0.5);
            a->hi = mid * (mid < 0 ? 0.5 : 1.5);
        }
    }
    if (!(a->step > 0.0) || !isfinite(a->step))
        a->step = a->hi / 2 - a->lo / 2;
}

/* The y axis over [min, max] of the finite values, widened to whole steps. */
static axis axis_y(double min, double max)
{
    axis a = {min, max, 0.0};
    if (min == max) {
        double pad = min != 0.0 ? fabs(min) * 0.1 : 0.5;
        a.lo = min - pad;
        a.hi = max + pad;
    }
    if (isfinite(a.hi - a.lo) && a.hi > a.lo) {
        a.step = nice_step(a.hi - a.lo);
        double lo = floor(a.lo / a.step) * a.step, hi = ceil(a.hi / a.step) * a.step;
        if (isfinite(lo) && isfinite(hi)) {
            a.lo = lo;
            a.hi = hi;
        }
    }
    axis_settle(&a);
    return a;
}

/* The x axis: exactly [min, max] (the first and last epochs at the edges). */
static axis axis_x(double min, double max, bool whole)
{
    axis a = {min, max, 0.0};
    if (min == max) {
        a.lo = min - 1.0;
        a.hi = max + 1.0;
    }
    if (isfinite(a.hi - a.lo) && a.hi > a.lo) {
        a.step = nice_step(a.hi - a.lo);
        if (whole && a.step < 1.0)
            a.step = 1.0;
    }
    axis_settle(&a);
    return a;
}

/* A tick's label: as many decimals as the step needs. */
static void tick_label(double v, double step, char *buf, size_t cap)
{
    if (fabs(v) < step * 1e-9)
        v = 0.0;
    if (step >= 1e-4 && fabs(v) < 1e7) {
        int decimals = step >= 1.0 ? 0 : (int)ceil(-log10(step) - 1e-9);
        snprintf(buf, cap, "%.*f", decimals, v);
    } else {
        snprintf(buf, cap, "%.3g", v);
    }
}

/* ---- a panel ---- */

typedef struct box {
    double x, y, w, h; /* the plot area in pixels */
} box;

static double px_of(const box *b, const axis *ax, double x)
{
    return b->x + axis_frac(ax, x) * b->w;
}

static double py_of(const box *b, const axis *ay, double y)
{
    return b->y + b->h - axis_frac(ay, y) * b->h;
}

static double point_x(const ps_svg_line *l, size_t i)
{
    return l->x0 + (double)i * l->dx;
}

/* Whether point i of l is drawn: both its coordinates are finite. */
static bool point_ok(const ps_svg_line *l, size_t i)
{
    return isfinite(l->y[i]) && isfinite(point_x(l, i));
}

typedef struct extent {
    double xmin, xmax; /* of every point */
    double ymin, ymax; /* of the finite values */
} extent;

#define EXTENT_EMPTY                                                                               \
    {                                                                                              \
        INFINITY, -INFINITY, INFINITY, -INFINITY                                                   \
    }

/* Widens e to p's points. */
static void panel_extent(const ps_svg_panel *p, extent *e)
{
    for (size_t k = 0; k < p->nlines; k++) {
        const ps_svg_line *l = &p->lines[k];
        for (size_t i = 0; i < l->n; i++) {
            double x = point_x(l, i);
            if (!isfinite(x))
                continue;
            e->xmin = fmin(e->xmin, x);
            e->xmax = fmax(e->xmax, x);
            if (isfinite(l->y[i])) {
                e->ymin = fmin(e->ymin, l->y[i]);
                e->ymax = fmax(e->ymax, l->y[i]);
            }
        }
    }
}

#define TICKS_MAX 50

/* The ticks of a: the multiples of its step within [lo, hi], at most
 * TICKS_MAX; they stop where doubles can no longer tell them apart. */
static size_t axis_ticks(const axis *a, double out[TICKS_MAX])
{
    double first = ceil(a->lo / a->step - 1e-9), last = floor(a->hi / a->step + 1e-9);
    size_t n = 0;
    for (double k = first; k <= last && n < TICKS_MAX; k++) {
        if (n > 0 && k * a->step <= out[n - 1])
            break;
        out[n++] = k * a->step;
    }
    return n;
}

static void ticks_write(FILE *f, const box *b, const axis *ax, const axis *ay)
{
    char label[64];
    double v[TICKS_MAX];
    size_t n = axis_ticks(ay, v);
    for (size_t i = 0; i < n; i++) {
        double y = py_of(b, ay, v[i]);
        fprintf(f,
                "<line class=\"grid\" x1=\"%.3f\" y1=\"%.3f\" x2=\"%.3f\" y2=\"%.3f\" "
                "stroke=\"#e5e5e5\"/>\n",
                b->x, y, b->x + b->w, y);
        tick_label(v[i], ay->step, label, sizeof label);
        fprintf(f,
                "<text class=\"tick\" x=\"%.3f\" y=\"%.3f\" text-anchor=\"end\" "
                "fill=\"#444\">%s</text>\n",
                b->x - 6.0, y + 4.0, label);
    }
    n = axis_ticks(ax, v);
    for (size_t i = 0; i < n; i++) {
        double x = px_of(b, ax, v[i]);
        fprintf(f,
                "<line class=\"tick-mark\" x1=\"%.3f\" y1=\"%.3f\" x2=\"%.3f\" y2=\"%.3f\" "
                "stroke=\"#888\"/>\n",
                x, b->y + b->h, x, b->y + b->h + 4.0);
        tick_label(v[i], ax->step, label, sizeof label);
        fprintf(f,
                "<text class=\"tick\" x=\"%.3f\" y=\"%.3f\" text-anchor=\"middle\" "
                "fill=\"#444\">%s</text>\n",
                x, b->y + b->h + 18.0, label);
    }
}

/* Line k of the panel: a polyline per run of finite points, a circle for a
 * point alone. */
static void line_write(FILE *f, const box *b, const axis *ax, const axis *ay, const ps_svg_line *l,
                       size_t k)
{
    const char *colour = PALETTE[k % PALETTE_N];
    size_t i = 0;
    while (i < l->n) {
        if (!point_ok(l, i)) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < l->n && point_ok(l, j))
            j++;
        if (j - i == 1) {
            fprintf(f,
                    "<circle class=\"point\" data-rank=\"%u\" cx=\"%.3f\" cy=\"%.3f\" r=\"2.5\" "
                    "fill=\"%s\"/>\n",
                    l->rank, px_of(b, ax, point_x(l, i)), py_of(b, ay, l->y[i]), colour);
        } else {
            fprintf(f,
                    "<polyline class=\"line\" data-rank=\"%u\" fill=\"none\" stroke=\"%s\" "
                    "stroke-width=\"1.5\" points=\"",
                    l->rank, colour);
            for (size_t m = i; m < j; m++)
                fprintf(f, "%s%.3f,%.3f", m == i ? "" : " ", px_of(b, ax, point_x(l, m)),
                        py_of(b, ay, l->y[m]));
            fputs("\"/>\n", f);
        }
        i = j;
    }
}

static void text_element(FILE *f, const char *cls, double x, double y, const char *extra,
                         const char *text)
{
    fprintf(f, "<text class=\"%s\" x=\"%.3f\" y=\"%.3f\" %s>", cls, x, y, extra);
    ps_svg_text_write(f, text);
    fputs("</text>\n", f);
}

/* Panel p at left, its x axis over the chart's points (xs). */
static void panel_write(FILE *f, const ps_svg_panel *p, double left, const extent *xs)
{
    box b = {left + MARGIN_L, TITLE_H, PANEL_W - MARGIN_L - MARGIN_R, PLOT_H};
    extent e = EXTENT_EMPTY;
    panel_extent(p, &e);
    bool any = e.ymin <= e.ymax;
    axis ax = xs->xmin <= xs->xmax ? axis_x(xs->xmin, xs->xmax, p->x_whole)
                                   : axis_x(0.0, 1.0, p->x_whole);
    axis ay = any ? axis_y(e.ymin, e.ymax) : axis_y(0.0, 1.0);
    fputs("<g class=\"panel\" data-name=\"", f);
    ps_svg_text_write(f, p->name);
    fprintf(f,
            "\" data-plot-x=\"%.17g\" data-plot-y=\"%.17g\" data-plot-width=\"%.17g\" "
            "data-plot-height=\"%.17g\" data-x-min=\"%.17g\" data-x-max=\"%.17g\" "
            "data-y-min=\"%.17g\" data-y-max=\"%.17g\">\n",
            b.x, b.y, b.w, b.h, ax.lo, ax.hi, ay.lo, ay.hi);
    ticks_write(f, &b, &ax, &ay);
    fprintf(f,
            "<rect class=\"frame\" x=\"%.3f\" y=\"%.3f\" width=\"%.3f\" height=\"%.3f\" "
            "fill=\"none\" stroke=\"#888\"/>\n",
            b.x, b.y, b.w, b.h);
    text_element(f, "x-label", b.x + b.w / 2, b.y + b.h + 40.0, "text-anchor=\"middle\"",
                 p->x_label);
    char rotate[96];
    double ylx = left + 18.0, yly = b.y + b.h / 2;
    snprintf(rotate, sizeof rotate, "text-anchor=\"middle\" transform=\"rotate(-90 %.3f %.3f)\"",
             ylx, yly);
    text_element(f, "y-label", ylx, yly, rotate, p->y_label);
    for (size_t k = 0; k < p->nlines; k++)
        line_write(f, &b, &ax, &ay, &p->lines[k], k);
    if (!any && p->empty_note != NULL)
        text_element(f, "note", b.x + b.w / 2, b.y + b.h / 2,
                     "text-anchor=\"middle\" fill=\"#888\"", p->empty_note);
    fputs("</g>\n", f);
}

/* ---- the chart ---- */

static void legend_write(FILE *f, const ps_svg_panel *p, double top, size_t per_row)
{
    fputs("<g class=\"legend\">\n", f);
    for (size_t k = 0; k < p->nlines; k++) {
        double x = MARGIN_R + (double)(k % per_row) * LEGEND_COL;
        double y = top + (double)(k / per_row) * LEGEND_ROW + LEGEND_ROW / 2;
        fprintf(f,
                "<line x1=\"%.3f\" y1=\"%.3f\" x2=\"%.3f\" y2=\"%.3f\" stroke=\"%s\" "
                "stroke-width=\"2\"/>\n",
                x, y, x + 20.0, y, PALETTE[k % PALETTE_N]);
        text_element(f, "legend-label", x + 26.0, y + 4.0, "", p->lines[k].label);
    }
    fputs("</g>\n", f);
}

int ps_svg_chart_write(FILE *f, const ps_svg_chart *c)
{
    if (c->npanels == 0 || c->npanels > PS_SVG_PANELS_MAX)
        return PS_EINVAL;
    const ps_svg_panel *most = &c->panels[0];
    for (size_t i = 1; i < c->npanels; i++)
        if (c->panels[i].nlines > most->nlines)
            most = &c->panels[i];
    double width = PANEL_W * (double)c->npanels;
    size_t per_row = (size_t)((width - 2 * MARGIN_R) / LEGEND_COL);
    size_t rows = (most->nlines + per_row - 1) / per_row;
    double legend_top = TITLE_H + PLOT_H + BELOW_H;
    double height = legend_top + (double)rows * LEGEND_ROW + 12.0;
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            width, height, width, height);
    text_element(f, "title", width / 2, 28.0, "text-anchor=\"middle\" font-size=\"16\"", c->title);
    extent xs = EXTENT_EMPTY; /* the panels share their x axis */
    for (size_t i = 0; i < c->npanels; i++)
        panel_extent(&c->panels[i], &xs);
    for (size_t i = 0; i < c->npanels; i++)
        panel_write(f, &c->panels[i], PANEL_W * (double)i, &xs);
    legend_write(f, most, legend_top, per_row);
    fputs("</svg>\n", f);
    return ferror(f) ? PS_EIO : 0;
}
