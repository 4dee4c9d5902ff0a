/* launch_env.c — ranks, shards and endpoints from the environment
 * (launch_env.h). One place for psd, psworker, psctl and ps_client_open_job. */
#include "launch_env.h"

#include "schema.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHOWN 64 /* bytes of a variable's value a message shows */

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* ---- TF_CONFIG ---- */

typedef struct tf_config {
    bool set;
    bool has_ps, has_workers;
    uint32_t nps, nworker, nchief;
    char ps[PS_MAX_SHARDS][PS_ENDPOINT_MAX];
    char type[16]; /* task.type; "" when no task */
    int64_t index;
} tf_config;

static int tf_fail(ps_error *err, const char *what)
{
    return ps_error_set(err, PS_ECONFIG, "TF_CONFIG: %s", what);
}

/* cluster.<role>: a list of "host:port" strings; its length in *n, and
 * each as tcp://host:port in out (when out is not NULL). */
static int tf_role(json_object *cluster, const char *role, uint32_t max, uint32_t *n,
                   char (*out)[PS_ENDPOINT_MAX], bool *has, ps_error *err)
{
    json_object *list;
    *n = 0;
    *has = false;
    if (!json_object_object_get_ex(cluster, role, &list))
        return 0;
    *has = true;
    if (!json_object_is_type(list, json_type_array))
        return ps_error_set(err, PS_ECONFIG,
                            "TF_CONFIG: cluster.%s must be a list of \"host:port\"", role);
    size_t len = json_object_array_length(list);
    if (len > max)
        return ps_error_set(err, PS_ECONFIG, "TF_CONFIG: cluster.%s lists %zu, at most %" PRIu32,
                            role, len, max);
    for (size_t i = 0; i < len; i++) {
        json_object *item = json_object_array_get_idx(list, i);
        if (!json_object_is_type(item, json_type_string))
            return ps_error_set(err, PS_ECONFIG,
                                "TF_CONFIG: cluster.%s[%zu] must be a \"host:port\" string", role,
                                i);
        const char *s = json_object_get_string(item);
        if (out != NULL) {
            const char *why = "";
            int w = snprintf(out[i], PS_ENDPOINT_MAX, "tcp://%s", s);
            if (w < 0 || w >= PS_ENDPOINT_MAX || !ps_schema_valid_endpoint(out[i], &why))
                return ps_error_set(err, PS_ECONFIG,
                                    "TF_CONFIG: cluster.%s[%zu] \"%.*s\" is not host:port", role, i,
                                    SHOWN, s);
        }
    }
    *n = (uint32_t)len;
    return 0;
}

/* Reads $TF_CONFIG into *t (t->set false when unset). */
static int tf_read(tf_config *t, ps_error *err)
{
    memset(t, 0, sizeof *t);
    t->index = -1;
    const char *text = env("TF_CONFIG");
    if (text == NULL)
        return 0;
    t->set = true;
    enum json_tokener_error jerr = json_tokener_success;
    json_object *root = json_tokener_parse_verbose(text, &jerr);
    int rc = 0;
    if (root == NULL) {
        return ps_error_set(err, PS_ECONFIG, "TF_CONFIG: not JSON (%s): %.*s",
                            json_tokener_error_desc(jerr), SHOWN, text);
    }
    if (!json_object_is_type(root, json_type_object)) {
        rc = tf_fail(err, "must be a JSON object with cluster and task");
        goto done;
    }
    json_object *cluster, *task, *v;
    if (json_object_object_get_ex(root, "cluster", &cluster)) {
        if (!json_object_is_type(cluster, json_type_object)) {
            rc = tf_fail(err, "cluster must be an object of lists (ps, worker, chief)");
            goto done;
        }
        bool has_chief;
        if ((rc = tf_role(cluster, "ps", PS_MAX_SHARDS, &t->nps, t->ps, &t->has_ps, err)) != 0 ||
            (rc = tf_role(cluster, "worker", PS_MAX_WORKERS, &t->nworker, NULL, &t->has_workers,
                          err)) != 0 ||
            (rc = tf_role(cluster, "chief", 1, &t->nchief, NULL, &has_chief, err)) != 0)
            goto done;
        t->has_workers = t->has_workers || has_chief;
    }
    if (json_object_object_get_ex(root, "task", &task)) {
        if (!json_object_is_type(task, json_type_object)) {
            rc = tf_fail(err, "task must be an object {\"type\": ..., \"index\": ...}");
            goto done;
        }
        if (!json_object_object_get_ex(task, "type", &v) ||
            !json_object_is_type(v, json_type_string)) {
            rc = tf_fail(err, "task.type must be a string (worker, chief or ps)");
            goto done;
        }
        ps_strlcpy(t->type, json_object_get_string(v), sizeof t->type);
        if (!json_object_object_get_ex(task, "index", &v) ||
            !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
            rc = tf_fail(err, "task.index must be a whole number >= 0");
            goto done;
        }
        t->index = json_object_get_int64(v);
    }
done:
    json_object_put(root);
    return rc;
}

/* ---- rank and shard ---- */

/* name=value as a number >= 0 (or -1 when allow_any) into *v. */
static int env_number(const char *name, const char *value, bool allow_any, long *v, ps_error *err)
{
    char *end;
    errno = 0;
    long n = strtol(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || n < (allow_any ? -1 : 0) || n > INT32_MAX)
        return ps_error_set(err, PS_ECONFIG, "%s=%.*s: give a %s >= 0%s", name, SHOWN, value,
                            strcmp(name, "PSD_SHARD") == 0 ? "shard" : "rank",
                            allow_any ? ", or -1 for any" : "");
    *v = n;
    return 0;
}

/* *v in [0, max): else one line "NAME=VALUE gives WHAT V, but the job has MAX PLURAL". */
static int in_range(const char *name, const char *value, long v, uint32_t max, const char *what,
                    const char *plural, ps_error *err)
{
    if (v >= 0 && (uint64_t)v >= max)
        return ps_error_set(err, PS_ECONFIG, "%s=%.*s gives %s %ld, but the job has %" PRIu32 " %s",
                            name, SHOWN, value, what, v, max, plural);
    return 0;
}

static void set_from(char *from, size_t cap, const char *what)
{
    if (from != NULL && cap > 0)
        ps_strlcpy(from, what, cap);
}

int ps_launch_rank(const ps_job *job, int *rank, char *from, size_t cap, ps_error *err)
{
    static const char *const names[] = {"PSD_RANK", "SLURM_PROCID", "JOB_COMPLETION_INDEX"};
    *rank = -1;
    set_from(from, cap, "");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *value = env(names[i]);
        if (value == NULL)
            continue;
        long v;
        int rc = env_number(names[i], value, i == 0, &v, err);
        if (rc == 0)
            rc = in_range(names[i], value, v, job->workers, "rank", "workers", err);
        if (rc != 0)
            return rc;
        *rank = (int)v;
        set_from(from, cap, names[i]);
        return 0;
    }
    tf_config *t = malloc(sizeof *t);
    if (t == NULL)
        return ps_error_set(err, PS_ENOMEM, "TF_CONFIG: out of memory");
    int rc = tf_read(t, err);
    if (rc == 0 && t->set && t->index >= 0) {
        long v = -1;
        if (strcmp(t->type, "chief") == 0)
            v = t->index == 0 ? 0 : -2;
        else if (strcmp(t->type, "worker") == 0)
            v = (long)t->index + (t->nchief > 0 ? 1 : 0);
        if (v == -2)
            rc = ps_error_set(err, PS_ECONFIG,
                              "TF_CONFIG: task chief %" PRId64 ": a job has one chief (index 0)",
                              t->index);
        else if (v >= 0 && (uint64_t)v >= job->workers)
            rc = ps_error_set(err, PS_ECONFIG,
                              "TF_CONFIG: task %s %" PRId64
                              " gives rank %ld, but the job has %" PRIu32 " workers",
                              t->type, t->index, v, job->workers);
        else if (v >= 0) {
            *rank = (int)v;
            set_from(from, cap, "TF_CONFIG");
        }
    }
    free(t);
    return rc;
}

/* The ordinal a StatefulSet gives its pods: the digits after the last '-'
 * of the host name ("psd-3" -> 3); -1 when it has none. */
static long hostname_ordinal(const char *host)
{
    const char *dash = strrchr(host, '-');
    if (dash == NULL || dash[1] == '\0')
        return -1;
    for (const char *p = dash + 1; *p != '\0'; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    if (strlen(dash + 1) > 9)
        return -1;
    return strtol(dash + 1, NULL, 10);
}

int ps_launch_shard(const ps_job *job, int *shard, char *from, size_t cap, ps_error *err)
{
    static const char *const names[] = {"PSD_SHARD", "SLURM_PROCID"};
    *shard = -1;
    set_from(from, cap, "");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *value = env(names[i]);
        if (value == NULL)
            continue;
        long v;
        int rc = env_number(names[i], value, false, &v, err);
        if (rc == 0)
            rc = in_range(names[i], value, v, job->nservers, "shard", "servers", err);
        if (rc != 0)
            return rc;
        *shard = (int)v;
        set_from(from, cap, names[i]);
        return 0;
    }
    const char *flag = env("PSD_SHARD_FROM_HOSTNAME");
    if (flag != NULL && strcmp(flag, "0") != 0) {
        if (strcmp(flag, "1") != 0)
            return ps_error_set(err, PS_ECONFIG, "PSD_SHARD_FROM_HOSTNAME=%.*s: give 1 or 0", SHOWN,
                                flag);
        char host[256] = "";
        const char *h = env("HOSTNAME");
        if (h != NULL)
            ps_strlcpy(host, h, sizeof host);
        else if (gethostname(host, sizeof host - 1) != 0)
            host[0] = '\0';
        long v = hostname_ordinal(host);
        if (v < 0)
            return ps_error_set(err, PS_ECONFIG,
                                "PSD_SHARD_FROM_HOSTNAME=1: host name \"%.*s\" does not end in -N "
                                "(a StatefulSet pod's ordinal)",
                                SHOWN, host);
        if ((uint64_t)v >= job->nservers)
            return ps_error_set(err, PS_ECONFIG,
                                "HOSTNAME=%.*s gives shard %ld, but the job has %" PRIu32
                                " servers",
                                SHOWN, host, v, job->nservers);
        *shard = (int)v;
        set_from(from, cap, "HOSTNAME");
        return 0;
    }
    tf_config *t = malloc(sizeof *t);
    if (t == NULL)
        return ps_error_set(err, PS_ENOMEM, "TF_CONFIG: out of memory");
    int rc = tf_read(t, err);
    if (rc == 0 && t->set && t->index >= 0 && strcmp(t->type, "ps") == 0) {
        if ((uint64_t)t->index >= job->nservers)
            rc = ps_error_set(err, PS_ECONFIG,
                              "TF_CONFIG: task ps %" PRId64 " gives shard %" PRId64
                              ", but the job has %" PRIu32 " servers",
                              t->index, t->index, job->nservers);
        else {
            *shard = (int)t->index;
            set_from(from, cap, "TF_CONFIG");
        }
    }
    free(t);
    return rc;
}

/* ---- endpoints ---- */

/* PSD_SERVERS: "ep,ep,..." into job->servers. */
static int servers_from_list(ps_job *job, const char *list, ps_error *err)
{
    uint32_t n = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
        while (len > 0 && isspace((unsigned char)p[len - 1]))
            len--;
        if (n == PS_MAX_SHARDS)
            return ps_error_set(err, PS_ECONFIG, "PSD_SERVERS: more than %d endpoints",
                                PS_MAX_SHARDS);
        if (len == 0 || len >= PS_ENDPOINT_MAX)
            return ps_error_set(err, PS_ECONFIG,
                                "PSD_SERVERS=%.*s: endpoint %" PRIu32
                                " is %s; give tcp://host:port,tcp://host:port,...",
                                SHOWN, list, n + 1, len == 0 ? "empty" : "too long");
        char ep[PS_ENDPOINT_MAX];
        memcpy(ep, p, len);
        ep[len] = '\0';
        const char *why = "";
        if (!ps_schema_valid_endpoint(ep, &why))
            return ps_error_set(err, PS_ECONFIG, "PSD_SERVERS: \"%.*s\" %s", SHOWN, ep, why);
        for (uint32_t j = 0; j < n; j++)
            if (strcmp(job->servers[j], ep) == 0)
                return ps_error_set(err, PS_ECONFIG, "PSD_SERVERS: \"%.*s\" is listed twice", SHOWN,
                                    ep);
        ps_strlcpy(job->servers[n++], ep, PS_ENDPOINT_MAX);
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    job->nservers = n;
    return 0;
}

int ps_launch_servers(ps_job *job, ps_error *err)
{
    const char *list = env("PSD_SERVERS");
    if (list != NULL) {
        int rc = servers_from_list(job, list, err);
        if (rc != 0)
            return rc;
    }
    if (env("TF_CONFIG") == NULL)
        return 0;
    tf_config *t = malloc(sizeof *t);
    if (t == NULL)
        return ps_error_set(err, PS_ENOMEM, "TF_CONFIG: out of memory");
    int rc = tf_read(t, err);
    if (rc == 0 && t->has_workers && t->nworker + t->nchief != job->workers)
        rc = ps_error_set(err, PS_ECONFIG,
                          "TF_CONFIG: cluster lists %" PRIu32 " workers (chief and worker), but "
                          "the job has %" PRIu32,
                          t->nworker + t->nchief, job->workers);
    if (rc == 0 && list == NULL && t->has_ps) {
        if (t->nps == 0)
            rc = tf_fail(err, "cluster.ps is empty; list one host:port per server");
        for (uint32_t i = 0; rc == 0 && i < t->nps; i++) {
            for (uint32_t j = 0; j < i; j++)
                if (strcmp(t->ps[i], t->ps[j]) == 0) {
                    rc = ps_error_set(err, PS_ECONFIG, "TF_CONFIG: cluster.ps lists \"%.*s\" twice",
                                      SHOWN, t->ps[i] + 6);
                    break;
                }
        }
        if (rc == 0) {
            memcpy(job->servers, t->ps, sizeof t->ps);
            job->nservers = t->nps;
        }
    }
    free(t);
    return rc;
}

const char *ps_launch_namespace(void)
{
    const char *ns = env("PSD_NAMESPACE");
    return ns != NULL ? ns : env("POD_NAMESPACE");
}

/* An IPv4 literal (digits and dots), [IPv6], *, or localhost. */
static bool bindable_host(const char *host, size_t len)
{
    if (len == 0)
        return true;
    if (host[0] == '[' || (len == 1 && host[0] == '*'))
        return true;
    if (len == 9 && strncmp(host, "localhost", 9) == 0)
        return true;
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)host[i]) && host[i] != '.')
            return false;
    return true;
}

void ps_launch_bind_endpoint(const char *ep, char *out, size_t cap)
{
    ps_strlcpy(out, ep, cap);
    if (strncmp(ep, "tcp://", 6) != 0)
        return;
    const char *host = ep + 6;
    const char *colon = strrchr(host, ':');
    if (colon == NULL || bindable_host(host, (size_t)(colon - host)))
        return;
    snprintf(out, cap, "tcp://*%s", colon);
}
