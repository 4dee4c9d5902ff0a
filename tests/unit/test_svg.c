/* test_svg.c — line charts as SVG: text escaped for XML, gaps where values
 * are not finite, and points that read back through the panel's transform
 * to the values drawn. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "svg.h"

/* ---- helpers ---- */

/* The text f holds from its start (caller frees). */
static char *file_text(FILE *f)
{
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    char *text = calloc(1, (size_t)n + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(fread(text, 1, (size_t)n, f), (size_t)n);
    return text;
}

static char *escaped(const char *s)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ps_svg_text_write(f, s);
    char *text = file_text(f);
    fclose(f);
    return text;
}

/* The chart as text (caller frees); rc gets ps_svg_chart_write's code. */
static char *chart_text(const ps_svg_chart *c, int *rc)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    *rc = ps_svg_chart_write(f, c);
    char *text = file_text(f);
    fclose(f);
    return text;
}

/* The number in attribute name="..." of the element at el. */
static double attr_num(const char *el, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, " %s=\"", name);
    const char *at = strstr(el, key);
    ck_assert_msg(at != NULL, "no %s", name);
    return strtod(at + strlen(key), NULL);
}

static size_t count(const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = strstr(text, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

typedef struct transform {
    double x, y, w, h, xmin, xmax, ymin, ymax;
} transform;

static transform panel_transform(const char *panel)
{
    return (transform){attr_num(panel, "data-plot-x"),     attr_num(panel, "data-plot-y"),
                       attr_num(panel, "data-plot-width"), attr_num(panel, "data-plot-height"),
                       attr_num(panel, "data-x-min"),      attr_num(panel, "data-x-max"),
                       attr_num(panel, "data-y-min"),      attr_num(panel, "data-y-max")};
}

/* The values at pixel (px, py), inverting svg.h's transform. */
static void invert(const transform *t, double px, double py, double *x, double *y)
{
    *x = t->xmin + (px - t->x) / t->w * (t->xmax - t->xmin);
    *y = t->ymin + (t->y + t->h - py) / t->h * (t->ymax - t->ymin);
}

/* ---- text ---- */

START_TEST(text_escapes_markup_and_quotes)
{
    char *s = escaped("a&b<c>\"d'e");
    ck_assert_str_eq(s, "a&amp;b&lt;c&gt;&quot;d&apos;e");
    free(s);
}
END_TEST

START_TEST(text_replaces_bytes_that_are_not_utf8_or_not_allowed_in_xml)
{
    char *s = escaped("ok \xC3\xA9 \xE2\x80\x94 \xF0\x9F\x98\x80");
    ck_assert_str_eq(s, "ok \xC3\xA9 \xE2\x80\x94 \xF0\x9F\x98\x80"); /* é — 😀 pass */
    free(s);
    s = escaped("bad \xFF \xC3 \x01 \xED\xA0\x80 \xEF\xBF\xBF.");
    ck_assert_str_eq(s,
                     "bad \xEF\xBF\xBD \xEF\xBF\xBD \xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF"
                     "\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD.");
    free(s);
}
END_TEST

/* ---- charts ---- */

START_TEST(points_read_back_through_the_panel_transform)
{
    double y[] = {2.5, 1.25, 0.8, 0.61, 0.6};
    ps_svg_line line = {"rank 3", 3, 1.0, 1.0, y, 5};
    ps_svg_panel panel = {"loss", "epoch", "loss", "none", true, &line, 1};
    ps_svg_chart c = {"title", &panel, 1};
    int rc;
    char *text = chart_text(&c, &rc);
    ck_assert_int_eq(rc, 0);
    const char *g = strstr(text, "<g class=\"panel\" data-name=\"loss\"");
    ck_assert_ptr_nonnull(g);
    transform t = panel_transform(g);
    ck_assert(t.ymin <= 0.6 && t.ymax >= 2.5 && t.xmin == 1.0 && t.xmax == 5.0);
    const char *pl = strstr(text, "<polyline class=\"line\" data-rank=\"3\"");
    ck_assert_ptr_nonnull(pl);
    const char *p = strstr(pl, "points=\"") + 8;
    for (int i = 0; i < 5; i++) {
        double px, py, ex, ey;
        int used;
        ck_assert_int_eq(sscanf(p, "%lf,%lf%n", &px, &py, &used), 2);
        p += used;
        invert(&t, px, py, &ex, &ey);
        ck_assert_double_eq_tol(ex, i + 1.0, 1e-3);
        ck_assert_double_eq_tol(ey, y[i], 1e-3 * y[i]);
    }
    ck_assert_int_eq(*p, '"');
    free(text);
}
END_TEST

START_TEST(values_not_finite_are_gaps_and_a_point_alone_a_circle)
{
    double y[] = {1.0, 2.0, NAN, 3.0, INFINITY, 4.0, 5.0, -NAN};
    ps_svg_line line = {"rank 0", 0, 1.0, 1.0, y, 8};
    ps_svg_panel panel = {"loss", "epoch", "loss", "none", true, &line, 1};
    ps_svg_chart c = {"title", &panel, 1};
    int rc;
    char *text = chart_text(&c, &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(count(text, "<polyline "), 2);
    ck_assert_uint_eq(count(text, "<circle class=\"point\" data-rank=\"0\""), 1);
    ck_assert_ptr_null(strstr(text, "nan"));
    ck_assert_ptr_null(strstr(text, "inf"));
    free(text);
}
END_TEST

START_TEST(a_panel_without_finite_values_says_its_note)
{
    ps_svg_line lines[2] = {{"rank 0", 0, 1.0, 1.0, (double[]){1.0, 0.5}, 2},
                            {"rank 1", 1, 1.0, 1.0, (double[]){0.9, 0.4}, 2}};
    ps_svg_panel panels[2] = {{"a", "epoch", "loss", "no data", true, lines, 2},
                              {"b", "epoch", "test accuracy", "no test set", true, NULL, 0}};
    ps_svg_chart c = {"job <x> & y", panels, 2};
    int rc;
    char *text = chart_text(&c, &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_nonnull(strstr(text, ">no test set</text>"));
    ck_assert_ptr_null(strstr(text, ">no data</text>"));
    ck_assert_ptr_nonnull(strstr(text, ">job &lt;x&gt; &amp; y</text>"));
    ck_assert_ptr_nonnull(strstr(text, "class=\"legend-label\""));
    ck_assert_uint_eq(count(text, "class=\"legend-label\""), 2);
    ck_assert_ptr_nonnull(strstr(text, ">rank 1</text>"));
    ck_assert_ptr_nonnull(strstr(text, ">epoch</text>"));
    ck_assert_ptr_nonnull(strstr(text, ">test accuracy</text>"));
    free(text);
}
END_TEST

START_TEST(equal_or_huge_values_still_give_an_axis_and_finite_coordinates)
{
    double flat[] = {0.5, 0.5, 0.5};
    double huge[] = {-1.5e308, 1.7e308, 0.0};
    double one[] = {7.0};
    double close[] = {1e20, 1e20 + 16384.0, 1e20}; /* steps doubles cannot count in */
    ps_svg_line lines[4] = {{"flat", 0, 1.0, 1.0, flat, 3},
                            {"huge", 1, 1.0, 1.0, huge, 3},
                            {"one", 2, 1.0, 1.0, one, 1},
                            {"close", 3, 1.0, 1.0, close, 3}};
    for (int k = 0; k < 4; k++) {
        ps_svg_panel panel = {"p", "epoch", "y", "none", true, &lines[k], 1};
        ps_svg_chart c = {"t", &panel, 1};
        int rc;
        char *text = chart_text(&c, &rc);
        ck_assert_int_eq(rc, 0);
        transform t = panel_transform(strstr(text, "<g class=\"panel\""));
        ck_assert_msg(t.ymax > t.ymin && isfinite(t.ymin) && isfinite(t.ymax), "line %d", k);
        ck_assert_msg(t.xmax > t.xmin, "line %d", k);
        ck_assert_ptr_null(strstr(text, "nan"));
        ck_assert_ptr_null(strstr(text, "inf"));
        free(text);
    }
}
END_TEST

START_TEST(a_chart_needs_one_to_four_panels)
{
    ps_svg_panel panels[5] = {{0}};
    ps_svg_chart c = {"t", panels, 0};
    int rc;
    free(chart_text(&c, &rc));
    ck_assert_int_eq(rc, PS_EINVAL);
    c.npanels = PS_SVG_PANELS_MAX + 1;
    free(chart_text(&c, &rc));
    ck_assert_int_eq(rc, PS_EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("svg");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, text_escapes_markup_and_quotes);
    tcase_add_test(tc, text_replaces_bytes_that_are_not_utf8_or_not_allowed_in_xml);
    tcase_add_test(tc, points_read_back_through_the_panel_transform);
    tcase_add_test(tc, values_not_finite_are_gaps_and_a_point_alone_a_circle);
    tcase_add_test(tc, a_panel_without_finite_values_says_its_note);
    tcase_add_test(tc, equal_or_huge_values_still_give_an_axis_and_finite_coordinates);
    tcase_add_test(tc, a_chart_needs_one_to_four_panels);
    suite_add_tcase(s, tc);
    return ps_check_run(s);
}
