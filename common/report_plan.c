/* report_plan.c — the --describe plan written and read as report_plan.h
 * describes: one table of fields (report_json.h) serves both sides, with
 * "servers", a list, put in its place by hand. */
#include "report_plan.h"

#include "report_json.h"

#include <stdbool.h>
#include <string.h>

static const ps_report_json_field plan_fields[] = {
    PS_REPORT_JSON_FIELD(ps_report_plan, job, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_plan, mode, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_plan, workers, PS_REPORT_JSON_U32),
    /* "servers" (a list) comes here */
    PS_REPORT_JSON_FIELD(ps_report_plan, on_worker_loss, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_plan, on_divergence, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_plan, model, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_plan, features, PS_REPORT_JSON_U64),
    PS_REPORT_JSON_FIELD(ps_report_plan, params, PS_REPORT_JSON_U64),
    PS_REPORT_JSON_FIELD(ps_report_plan, epochs, PS_REPORT_JSON_U32),
    PS_REPORT_JSON_FIELD(ps_report_plan, batch_size, PS_REPORT_JSON_U32),
    PS_REPORT_JSON_FIELD(ps_report_plan, output, PS_REPORT_JSON_STR),
    PS_REPORT_JSON_FIELD(ps_report_plan, compression, PS_REPORT_JSON_STR),
};
#define PLAN_FIELDS (sizeof plan_fields / sizeof plan_fields[0])
#define PLAN_HEAD   3 /* fields before "servers" */

int ps_report_plan_write(FILE *f, const ps_report_plan *p)
{
    if (p->workers == 0 || p->nservers == 0 || p->nservers > PS_REPORT_SERVERS_MAX)
        return PS_EINVAL;
    json_object *obj = json_object_new_object();
    json_object *list = json_object_new_array();
    bool ok = obj != NULL && list != NULL;
    for (uint32_t i = 0; ok && i < p->nservers; i++) {
        json_object *s = json_object_new_string(p->servers[i]);
        ok = s != NULL && json_object_array_add(list, s) == 0;
    }
    ok = ok && ps_report_json_fields_put(obj, p, plan_fields, PLAN_HEAD);
    ok = ok && ps_report_json_object_add(obj, "servers", list, true);
    if (ok)
        list = NULL; /* obj owns it now */
    ok = ok && ps_report_json_fields_put(obj, p, plan_fields + PLAN_HEAD, PLAN_FIELDS - PLAN_HEAD);
    json_object_put(list);
    json_object *cmd = ok ? json_object_new_array() : NULL;
    ok = ok && cmd != NULL && p->ncommand <= PS_REPORT_COMMAND_MAX;
    for (uint32_t i = 0; ok && i < p->ncommand; i++) {
        json_object *s = json_object_new_string(p->command[i]);
        ok = s != NULL && json_object_array_add(cmd, s) == 0;
        if (!ok)
            json_object_put(s);
    }
    ok = ok && ps_report_json_object_add(obj, "worker_command", cmd, true);
    if (!ok)
        json_object_put(cmd);
    if (!ok) {
        json_object_put(obj);
        return PS_ENOMEM;
    }
    return ps_report_json_write(f, obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
}

static int plan_servers_get(json_object *obj, ps_report_plan *p, const char *what, ps_error *err)
{
    json_object *list;
    if (!json_object_object_get_ex(obj, "servers", &list))
        return ps_error_set(err, PS_EDATA, "%s: no \"servers\"", what);
    if (!json_object_is_type(list, json_type_array))
        return ps_error_set(err, PS_EDATA, "%s: \"servers\" is not a list", what);
    size_t n = json_object_array_length(list);
    if (n == 0 || n > PS_REPORT_SERVERS_MAX)
        return ps_error_set(err, PS_EDATA, "%s: %zu servers, not 1 to %d", what, n,
                            PS_REPORT_SERVERS_MAX);
    for (size_t i = 0; i < n; i++) {
        json_object *s = json_object_array_get_idx(list, i);
        if (!json_object_is_type(s, json_type_string) ||
            (size_t)json_object_get_string_len(s) >= PS_REPORT_ENDPOINT_MAX)
            return ps_error_set(err, PS_EDATA, "%s: server %zu is not an endpoint", what, i);
        memcpy(p->servers[i], json_object_get_string(s), (size_t)json_object_get_string_len(s) + 1);
    }
    p->nservers = (uint32_t)n;
    return 0;
}

/* "worker_command", when there: the program the workers run */
static int plan_command_get(json_object *obj, ps_report_plan *p, const char *what, ps_error *err)
{
    json_object *list;
    if (!json_object_object_get_ex(obj, "worker_command", &list))
        return 0;
    if (!json_object_is_type(list, json_type_array) ||
        json_object_array_length(list) > PS_REPORT_COMMAND_MAX)
        return ps_error_set(err, PS_EDATA, "%s: \"worker_command\" is not a list of at most %d",
                            what, PS_REPORT_COMMAND_MAX);
    size_t n = json_object_array_length(list);
    for (size_t i = 0; i < n; i++) {
        json_object *s = json_object_array_get_idx(list, i);
        if (!json_object_is_type(s, json_type_string) || json_object_get_string_len(s) == 0 ||
            (size_t)json_object_get_string_len(s) >= PS_REPORT_PATH_MAX)
            return ps_error_set(err, PS_EDATA, "%s: worker_command item %zu is not a string of "
                                "1 to %d bytes", what, i, PS_REPORT_PATH_MAX - 1);
        memcpy(p->command[i], json_object_get_string(s), (size_t)json_object_get_string_len(s) + 1);
    }
    p->ncommand = (uint32_t)n;
    return 0;
}

int ps_report_plan_read_fd(int fd, const char *what, ps_report_plan *p, ps_error *err)
{
    json_object *obj;
    int rc = ps_report_json_read_fd(fd, what, &obj, err);
    if (rc != 0)
        return rc;
    ps_report_plan got;
    memset(&got, 0, sizeof got);
    rc = ps_report_json_fields_get(obj, &got, plan_fields, PLAN_FIELDS, what, err);
    if (rc == 0)
        rc = plan_servers_get(obj, &got, what, err);
    if (rc == 0)
        rc = plan_command_get(obj, &got, what, err);
    json_object_put(obj);
    if (rc == 0 && got.workers == 0)
        rc = ps_error_set(err, PS_EDATA, "%s: no workers", what);
    if (rc == 0)
        *p = got;
    return rc;
}
