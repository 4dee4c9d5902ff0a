/* report_predict.c — a prediction's part summary and its manifest
 * (report_predict.h), through report_json.h's tables of fields. */
#include "report_predict.h"

#include "report_file.h"
#include "report_json.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static const ps_report_json_field part_fields[] = {
    PS_REPORT_JSON_FIELD(ps_report_predict_part, job, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_predict_part, model, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_predict_part, version, PS_REPORT_JSON_U64),
    PS_REPORT_JSON_FIELD(ps_report_predict_part, classes, PS_REPORT_JSON_U32),
    PS_REPORT_JSON_FIELD(ps_report_predict_part, has_auc, PS_REPORT_JSON_U32),
    PS_REPORT_JSON_FIELD(ps_report_predict_part, rows, PS_REPORT_JSON_U64),
    PS_REPORT_JSON_FIELD(ps_report_predict_part, correct, PS_REPORT_JSON_U64),
    PS_REPORT_JSON_FIELD(ps_report_predict_part, loss_sum, PS_REPORT_JSON_NUM),
    PS_REPORT_JSON_FIELD(ps_report_predict_part, data, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_predict_part, model_dir, PS_REPORT_JSON_STR),
};
#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

static int part_fill(FILE *f, const void *arg)
{
    json_object *o = json_object_new_object();
    if (o == NULL || !ps_report_json_fields_put(o, arg, part_fields, NFIELDS(part_fields))) {
        json_object_put(o);
        return PS_ENOMEM;
    }
    return ps_report_json_write(f, o, JSON_C_TO_STRING_PLAIN);
}

int ps_report_predict_part_write(const char *path, const ps_report_predict_part *p, ps_error *err)
{
    return ps_report_file_replace(path, part_fill, p, err);
}

int ps_report_predict_part_read(const char *path, ps_report_predict_part *p, ps_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ps_error_set(err, PS_EIO, "%s: %s", path, strerror(errno));
    json_object *obj;
    int rc = ps_report_json_read_fd(fd, path, &obj, err);
    close(fd);
    if (rc != 0)
        return rc;
    memset(p, 0, sizeof *p);
    rc = ps_report_json_fields_get(obj, p, part_fields, NFIELDS(part_fields), path, err);
    json_object_put(obj);
    return rc;
}

static const ps_report_json_field manifest_fields[] = {
    PS_REPORT_JSON_FIELD(ps_report_predict, job, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_predict, model, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_predict, model_dir, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_predict, version, PS_REPORT_JSON_U64),
    PS_REPORT_JSON_FIELD(ps_report_predict, data, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_predict, output, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_predict, rows, PS_REPORT_JSON_U64),
    PS_REPORT_JSON_FIELD(ps_report_predict, workers, PS_REPORT_JSON_U32),
    PS_REPORT_JSON_FIELD(ps_report_predict, columns, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_predict, wall_s, PS_REPORT_JSON_NUM),
};

static const ps_report_json_field class_fields[] = {
    PS_REPORT_JSON_FIELD(ps_report_predict, accuracy, PS_REPORT_JSON_NUM),
    PS_REPORT_JSON_FIELD(ps_report_predict, log_loss, PS_REPORT_JSON_NUM),
};
static const ps_report_json_field auc_field =
    PS_REPORT_JSON_FIELD(ps_report_predict, auc, PS_REPORT_JSON_NUM);
static const ps_report_json_field regression_fields[] = {
    PS_REPORT_JSON_FIELD(ps_report_predict, mse, PS_REPORT_JSON_NUM),
    PS_REPORT_JSON_FIELD(ps_report_predict, r2, PS_REPORT_JSON_NUM),
};

static int manifest_fill(FILE *f, const void *arg)
{
    const ps_report_predict *m = arg;
    json_object *o = json_object_new_object(), *metrics = json_object_new_object();
    bool ok = o != NULL && metrics != NULL &&
              ps_report_json_fields_put(o, m, manifest_fields, NFIELDS(manifest_fields));
    if (ok && m->regression)
        ok = ps_report_json_fields_put(metrics, m, regression_fields, NFIELDS(regression_fields));
    else if (ok)
        ok = ps_report_json_fields_put(metrics, m, class_fields, NFIELDS(class_fields)) &&
             (!m->has_auc || ps_report_json_field_put(metrics, m, &auc_field, "auc"));
    if (ok && ps_report_json_object_add(o, "metrics", metrics, true))
        metrics = NULL;
    else
        ok = false;
    json_object_put(metrics);
    if (!ok) {
        json_object_put(o);
        return PS_ENOMEM;
    }
    return ps_report_json_write(f, o, JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_PRETTY);
}

int ps_report_predict_write(const char *path, const ps_report_predict *m, ps_error *err)
{
    return ps_report_file_replace(path, manifest_fill, m, err);
}

void ps_report_predict_header(FILE *f, uint32_t classes)
{
    if (classes == 0) {
        fputs("value\n", f);
        return;
    }
    fputs("class", f);
    for (uint32_t c = 0; c < classes; c++)
        fprintf(f, ",p%u", c);
    fputc('\n', f);
}
