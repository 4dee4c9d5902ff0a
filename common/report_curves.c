/* report_curves.c — a summary's curves as report_curves.h describes: two
 * panels of svg.h (three for a binary classifier: the test AUC) with a line
 * per worker, the figures' names as a person reads them. */
#include "report_curves.h"

#include "report_file.h"
#include "svg.h"

#include <stdlib.h>
#include <string.h>

/* A figure's name as a person reads it in a chart: "log-loss", "R²". */
static const char *chart_name(const char *name)
{
    if (strcmp(name, "log_loss") == 0)
        return "log-loss";
    if (strcmp(name, "r2") == 0)
        return "R\u00b2";
    return name;
}

int ps_report_curves_write(FILE *f, const ps_report_summary *s, const char *codec)
{
    size_t n = s->ncurves;
    ps_svg_line *lines = calloc(3 * n + 1, sizeof *lines);
    char(*labels)[24] = calloc(n + 1, sizeof *labels);
    if (lines == NULL || labels == NULL) {
        free(lines);
        free(labels);
        return PS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const ps_report_curve *c = &s->curves[i];
        snprintf(labels[i], sizeof labels[i], "rank %u", c->rank);
        ps_svg_line line = {.label = labels[i], .rank = c->rank, .x0 = c->every, .dx = c->every};
        lines[i] = line;
        lines[i].y = c->train_loss;
        lines[i].n = c->n;
        lines[n + i] = line;
        lines[n + i].y = c->test_metric;
        lines[n + i].n = c->test_metric ? c->n : 0;
        lines[2 * n + i] = line;
        lines[2 * n + i].y = c->test_auc;
        lines[2 * n + i].n = c->test_auc ? c->n : 0;
    }
    char title[PS_REPORT_NAME_MAX + 3 * PS_REPORT_WORD_MAX + 32];
    snprintf(title, sizeof title, "%s \u2014 %s, mode %s, codec %s", s->job, s->model, s->mode,
             codec ? codec : "none");
    char loss[PS_REPORT_WORD_MAX + 32], metric[PS_REPORT_WORD_MAX + 32];
    snprintf(loss, sizeof loss, "training loss (%s)", chart_name(s->loss_name));
    snprintf(metric, sizeof metric, "test %s", chart_name(s->metric_name));
    const char *no_test = s->has_test ? "no finite figures" : "no test set";
    ps_svg_panel panels[3] = {
        {"train_loss", "epoch", loss, "no finite loss", true, lines, n},
        {"test_metric", "epoch", metric, no_test, true, lines + n, s->has_test ? n : 0},
        {"test_auc", "epoch", "test AUC", no_test, true, lines + 2 * n, s->has_test ? n : 0},
    };
    ps_svg_chart chart = {title, panels, s->has_auc ? 3 : 2};
    int rc = ps_svg_chart_write(f, &chart);
    free(lines);
    free(labels);
    return rc;
}

typedef struct curves_args {
    const ps_report_summary *s;
    const char *codec;
} curves_args;

static int curves_fill(FILE *f, const void *arg)
{
    const curves_args *a = arg;
    return ps_report_curves_write(f, a->s, a->codec);
}

int ps_report_curves_file_write(const char *path, const ps_report_summary *s, const char *codec,
                                ps_error *err)
{
    curves_args a = {s, codec};
    return ps_report_file_replace(path, curves_fill, &a, err);
}
