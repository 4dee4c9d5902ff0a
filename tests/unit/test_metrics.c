/* test_metrics.c — /metrics: the Prometheus text of an engine driven through
 * a few requests (every line a comment or a sample, HELP and TYPE once per
 * family, histograms cumulative with +Inf, _sum and _count, the shard label
 * on every series, values that follow the engine), and the HTTP side (GET
 * answered, anything else refused, a port in use named). */
#include <check.h>

#include "check_main.h"
#include "test_jobs.h"
#include "loopback.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "job.h"
#include "metrics.h"
#include "util.h"

#define P         4 /* logistic, 3 features: w [3] and b [1] */
#define MAX_LINES 40000
#define MAX_FAMS  256

typedef struct fx {
    ps_job job;
    ps_log log;
    ps_engine *e;
    ps_metrics_counters counters;
    ps_metrics *m;
    ps_msg last; /* the engine's last reply */
} fx;

static void job_logistic(ps_job *job, ps_mode mode, uint32_t workers)
{
    ps_test_job_logistic(job, "test-job", mode, workers, 0);
}

/* Keeps the last reply's numbers (its strings point into the engine). */
static int keep_reply(void *ctx, const void *identity, size_t identity_len, ps_msg *reply,
                      const void *payload)
{
    (void)identity;
    (void)identity_len;
    (void)payload;
    fx *f = ctx;
    f->last = *reply;
    return 0;
}

/* An engine and a renderer for it; listen: NULL for no HTTP. */
static fx *fx_new(ps_mode mode, uint32_t workers, const char *listen)
{
    fx *f = calloc(1, sizeof *f);
    ck_assert_ptr_nonnull(f);
    job_logistic(&f->job, mode, workers);
    f->log = (ps_log){PS_LOG_ERROR, "test_metrics"};
    ps_error err;
    f->e = ps_engine_new(&f->job, 0, &f->log, &err);
    ck_assert_msg(f->e != NULL, "engine: %s", err.msg);
    ps_metrics_counters_init(&f->counters);
    ps_metrics_source src = {
        .job = &f->job, .shard = 0, .engine = f->e, .ckpt = NULL, .counters = &f->counters};
    f->m = ps_metrics_new(&src, listen, &f->log, &err);
    ck_assert_msg(f->m != NULL, "metrics: %s", err.msg);
    return f;
}

static void fx_free(fx **fp)
{
    ps_metrics_destroy(&(*fp)->m);
    ck_assert_ptr_null((*fp)->m);
    ps_engine_destroy(&(*fp)->e);
    free(*fp);
    *fp = NULL;
}

static int handle(fx *f, ps_msg *m)
{
    m->job = "test-job";
    int rc = ps_engine_handle(f->e, "w", 1, 0, m, NULL, keep_reply, f);
    ps_metrics_observe(&f->counters, f->e);
    return rc;
}

static uint32_t hello(fx *f, int rank, const char *host)
{
    ps_msg m;
    ps_msg_init(&m, PS_MSG_HELLO);
    m.rank = rank;
    m.seq = 1;
    m.hostname = host;
    ck_assert_int_eq(handle(f, &m), 0);
    return f->last.worker_id;
}

static void push(fx *f, uint32_t worker_id, uint64_t seq, uint64_t clock)
{
    static const float g[P] = {1, 2, 3, 4};
    ps_msg m;
    ps_msg_init(&m, PS_MSG_PUSH);
    m.worker_id = worker_id;
    m.seq = seq;
    m.clock = clock;
    m.samples = 1;
    m.key_hi = P;
    m.encoding = PS_ENC_F32;
    m.payload_bytes = sizeof g;
    m.payload = g;
    ck_assert_int_eq(handle(f, &m), 0);
}

static void heartbeat(fx *f, uint32_t worker_id, double loss, double samples_per_s)
{
    ps_msg m;
    ps_msg_init(&m, PS_MSG_HEARTBEAT);
    m.worker_id = worker_id;
    m.loss = loss;
    m.samples_per_s = samples_per_s;
    ck_assert_int_eq(handle(f, &m), 0);
}

/* Two workers of a sync job: one round (two pushes), a pull, a heartbeat
 * with rank 0's loss, and a pull from a worker that is not registered. */
static void drive(fx *f)
{
    uint32_t a = hello(f, 0, "vm-a"), b = hello(f, 1, "vm-b");
    push(f, a, 1, 0);
    push(f, b, 1, 0);
    ps_msg m;
    ps_msg_init(&m, PS_MSG_PULL);
    m.worker_id = a;
    m.seq = 2;
    m.min_version = 1;
    m.key_hi = P;
    ck_assert_int_eq(handle(f, &m), 0);
    heartbeat(f, a, 0.5, 1234.5);
    m.worker_id = 999;
    ck_assert_int_eq(handle(f, &m), PS_EWORKER);
    ps_metrics_count_rx(&f->counters, PS_MSG_PUSH, PS_ENC_F16, 100);
    ps_metrics_count_rx(&f->counters, PS_MSG_PUSH, PS_ENC_F16, 28);
}

static char *render(fx *f)
{
    const char *text;
    size_t len;
    ck_assert_int_eq(ps_metrics_render(f->m, &text, &len), 0);
    char *copy = malloc(len + 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, text, len);
    copy[len] = '\0';
    return copy;
}

/* ---- a small reader of the text format ---------------------------------- */

typedef struct sample {
    char name[96];
    char labels[256]; /* as written between the braces */
    double value;
} sample;

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || !(s[0] == '_' || s[0] == ':' || (s[0] >= 'a' && s[0] <= 'z') ||
                    (s[0] >= 'A' && s[0] <= 'Z')))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(s[i] == '_' || s[i] == ':' || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

/* name{k="v",...} value — true when line is one, filled into *out. */
static bool sample_parse(const char *line, sample *out)
{
    const char *brace = strchr(line, '{');
    if (brace == NULL || !name_ok(line, (size_t)(brace - line)) ||
        (size_t)(brace - line) >= sizeof out->name)
        return false;
    memcpy(out->name, line, (size_t)(brace - line));
    out->name[brace - line] = '\0';
    const char *p = brace + 1, *start = p;
    for (;;) { /* k="v" pairs, values with \\, \" and \n escapes */
        const char *eq = strchr(p, '=');
        if (eq == NULL || !name_ok(p, (size_t)(eq - p)) || eq[1] != '"')
            return false;
        p = eq + 2;
        while (*p != '"') {
            if (*p == '\0' || *p == '\n')
                return false;
            if (*p == '\\') {
                if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                    return false;
                p++;
            }
            p++;
        }
        p++;
        if (*p == '}')
            break;
        if (*p != ',')
            return false;
        p++;
    }
    if ((size_t)(p - start) >= sizeof out->labels)
        return false;
    memcpy(out->labels, start, (size_t)(p - start));
    out->labels[p - start] = '\0';
    if (p[1] != ' ')
        return false;
    const char *v = p + 2;
    if (strcmp(v, "NaN") == 0)
        out->value = NAN;
    else if (strcmp(v, "+Inf") == 0)
        out->value = INFINITY;
    else if (strcmp(v, "-Inf") == 0)
        out->value = -INFINITY;
    else {
        char *end;
        out->value = strtod(v, &end);
        if (end == v || *end != '\0')
            return false;
    }
    return true;
}

/* The text's lines (text is cut in place); *n gets the count. */
static char **lines_of(char *text, size_t *n)
{
    static char *lines[MAX_LINES];
    *n = 0;
    ck_assert(text[0] != '\0' && text[strlen(text) - 1] == '\n');
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l != NULL;
         l = strtok_r(NULL, "\n", &save)) {
        ck_assert_uint_lt(*n, MAX_LINES);
        lines[(*n)++] = l;
    }
    return lines;
}

/* The value of the series name{labels}; NAN when absent (asserted once). */
static double value_of(const char *text, const char *name, const char *labels)
{
    char want[512];
    snprintf(want, sizeof want, "\n%s{%s} ", name, labels);
    const char *at = strstr(text, want);
    ck_assert_msg(at != NULL, "no series %s{%s}", name, labels);
    ck_assert_msg(strstr(at + 1, want) == NULL, "series %s{%s} twice", name, labels);
    return strtod(at + strlen(want), NULL);
}

/* The family a sample belongs to: a histogram's _bucket, _sum, _count
 * belong to the histogram's name. */
static void family_of(const char *name, const char *hist, char *out, size_t cap)
{
    size_t n = strlen(hist);
    if (hist[0] != '\0' && strncmp(name, hist, n) == 0 &&
        (strcmp(name + n, "_bucket") == 0 || strcmp(name + n, "_sum") == 0 ||
         strcmp(name + n, "_count") == 0)) {
        snprintf(out, cap, "%s", hist);
        return;
    }
    snprintf(out, cap, "%s", name);
}

/* ---- the text format ------------------------------------------------------ */

START_TEST(every_line_is_a_comment_or_a_sample)
{
    fx *f = fx_new(PS_MODE_SYNC, 2, NULL);
    drive(f);
    char *text = render(f);
    size_t n;
    char **lines = lines_of(text, &n);
    ck_assert_uint_gt(n, 100);
    for (size_t i = 0; i < n; i++) {
        sample s;
        bool comment = strncmp(lines[i], "# HELP ", 7) == 0 || strncmp(lines[i], "# TYPE ", 7) == 0;
        ck_assert_msg(comment || sample_parse(lines[i], &s), "line %zu is neither: %s", i + 1,
                      lines[i]);
    }
    free(text);
    fx_free(&f);
}
END_TEST

START_TEST(help_and_type_come_once_per_family_before_its_samples)
{
    fx *f = fx_new(PS_MODE_SYNC, 2, NULL);
    drive(f);
    char *text = render(f);
    size_t n;
    char **lines = lines_of(text, &n);
    static char fams[MAX_FAMS][96];
    size_t nfams = 0;
    char current[96] = "", hist[96] = "";
    bool helped = false;
    for (size_t i = 0; i < n; i++) {
        char name[96], type[32];
        if (strncmp(lines[i], "# HELP ", 7) == 0) {
            ck_assert_int_eq(sscanf(lines[i] + 7, "%95s", name), 1);
            for (size_t k = 0; k < nfams; k++)
                ck_assert_msg(strcmp(fams[k], name) != 0, "family %s twice", name);
            ck_assert_uint_lt(nfams, MAX_FAMS);
            snprintf(fams[nfams++], sizeof fams[0], "%s", name);
            snprintf(current, sizeof current, "%s", name);
            helped = true;
            continue;
        }
        if (strncmp(lines[i], "# TYPE ", 7) == 0) {
            ck_assert_int_eq(sscanf(lines[i] + 7, "%95s %31s", name, type), 2);
            ck_assert_msg(helped && strcmp(name, current) == 0, "TYPE of %s without its HELP",
                          name);
            ck_assert_msg(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                              strcmp(type, "histogram") == 0,
                          "type %s", type);
            snprintf(hist, sizeof hist, "%s", strcmp(type, "histogram") == 0 ? name : "");
            helped = false;
            /* counters end in _total, and only they */
            size_t len = strlen(name);
            bool total = len > 6 && strcmp(name + len - 6, "_total") == 0;
            ck_assert_msg(total == (strcmp(type, "counter") == 0), "%s is a %s", name, type);
            continue;
        }
        sample s;
        ck_assert(sample_parse(lines[i], &s));
        char fam[96];
        family_of(s.name, hist, fam, sizeof fam);
        ck_assert_msg(strcmp(fam, current) == 0, "sample %s outside its family (in %s)", s.name,
                      current);
    }
    ck_assert_uint_gt(nfams, 30);
    free(text);
    fx_free(&f);
}
END_TEST

START_TEST(every_series_has_the_shard_label)
{
    fx *f = fx_new(PS_MODE_SYNC, 2, NULL);
    drive(f);
    char *text = render(f);
    size_t n;
    char **lines = lines_of(text, &n);
    for (size_t i = 0; i < n; i++) {
        sample s;
        if (lines[i][0] != '#') {
            ck_assert(sample_parse(lines[i], &s));
            ck_assert_msg(strncmp(s.labels, "shard=\"0\"", 9) == 0, "%s", lines[i]);
        }
    }
    free(text);
    fx_free(&f);
}
END_TEST

START_TEST(histogram_buckets_are_cumulative_and_end_in_inf)
{
    fx *f = fx_new(PS_MODE_SYNC, 2, NULL);
    drive(f);
    char *text = render(f);
    size_t n;
    char **lines = lines_of(text, &n);
    size_t histograms = 0;
    for (size_t i = 0; i < n; i++) {
        char name[96], type[32];
        if (sscanf(lines[i], "# TYPE %95s %31s", name, type) != 2 || strcmp(type, "histogram") != 0)
            continue;
        histograms++;
        char bucket[128], sum[128], count[128];
        snprintf(bucket, sizeof bucket, "%s_bucket", name);
        snprintf(sum, sizeof sum, "%s_sum", name);
        snprintf(count, sizeof count, "%s_count", name);
        double prev = 0, prev_le = -INFINITY, inf = -1;
        size_t j = i + 1, buckets = 0;
        sample s;
        for (; j < n && sample_parse(lines[j], &s) && strcmp(s.name, bucket) == 0; j++) {
            const char *le = strstr(s.labels, ",le=\"");
            ck_assert_ptr_nonnull(le);
            double bound = strncmp(le + 5, "+Inf", 4) == 0 ? INFINITY : strtod(le + 5, NULL);
            ck_assert_msg(bound > prev_le, "%s: le %g after %g", name, bound, prev_le);
            ck_assert_msg(s.value >= prev, "%s: bucket le=%g holds %g, less than %g", name, bound,
                          s.value, prev);
            prev = s.value;
            prev_le = bound;
            inf = isinf(bound) ? s.value : inf;
            buckets++;
        }
        ck_assert_msg(buckets >= 2 && isinf(prev_le), "%s: the last bucket is le=\"+Inf\"", name);
        ck_assert(j + 1 < n && sample_parse(lines[j], &s) && strcmp(s.name, sum) == 0);
        ck_assert(sample_parse(lines[j + 1], &s) && strcmp(s.name, count) == 0);
        ck_assert_msg(s.value == inf, "%s: _count %g, +Inf bucket %g", name, s.value, inf);
    }
    ck_assert_uint_eq(histograms, 3);
    free(text);
    fx_free(&f);
}
END_TEST

/* ---- the values ---------------------------------------------------------------- */

START_TEST(values_follow_the_engine)
{
    fx *f = fx_new(PS_MODE_SYNC, 2, NULL);
    drive(f);
    char *text = render(f);
    const char *sh = "shard=\"0\"";
    ck_assert_double_eq(value_of(text, "psd_model_version", sh), 1);
    ck_assert_double_eq(value_of(text, "psd_updates_total", sh), 1);
    ck_assert_double_eq(value_of(text, "psd_pushes_total", sh), 2);
    ck_assert_double_eq(value_of(text, "psd_pulls_total", sh), 1);
    ck_assert_double_eq(value_of(text, "psd_theta_params", sh), P);
    ck_assert_double_eq(value_of(text, "psd_theta_bytes", sh), P * 4);
    ck_assert_double_eq(value_of(text, "psd_live_workers", sh), 2);
    ck_assert_double_eq(value_of(text, "psd_workers", "shard=\"0\",state=\"live\""), 2);
    ck_assert_double_eq(value_of(text, "psd_errors_total", "shard=\"0\",code=\"EWORKER\""), 1);
    ck_assert_double_eq(value_of(text, "psd_errors_total", "shard=\"0\",code=\"EPROTO\""), 0);
    ck_assert_double_eq(
        value_of(text, "psd_received_bytes_total", "shard=\"0\",type=\"PUSH\",codec=\"fp16\""),
        128);
    ck_assert_double_eq(
        value_of(text, "psd_received_messages_total", "shard=\"0\",type=\"PUSH\",codec=\"fp16\""),
        2);
    /* the first push was added to the round, the second closed it */
    ck_assert_double_eq(value_of(text, "psd_apply_duration_seconds_count", sh), 2);
    ck_assert_double_eq(value_of(text, "psd_round_duration_seconds_count", sh), 1);
    ck_assert_double_eq(value_of(text, "psd_push_staleness_count", sh), 2);
    ck_assert_double_eq(value_of(text, "psd_push_staleness_bucket", "shard=\"0\",le=\"0\""), 2);
    ck_assert_double_eq(value_of(text, "psd_worker_pushes_total", "shard=\"0\",rank=\"1\""), 1);
    ck_assert_double_eq(value_of(text, "psd_worker_clock", "shard=\"0\",rank=\"0\""), 1);
    ck_assert_double_eq(value_of(text, "psd_worker_loss", "shard=\"0\",rank=\"0\""), 0.5);
    ck_assert_double_eq(value_of(text, "psd_worker_samples_per_second", "shard=\"0\",rank=\"0\""),
                        1234.5);
    ck_assert_double_eq(
        value_of(text, "psd_worker_info", "shard=\"0\",rank=\"1\",host=\"vm-b\",state=\"live\""),
        1);
    /* rank 1 said no loss yet: no series rather than NaN */
    ck_assert_ptr_null(strstr(text, "psd_worker_loss{shard=\"0\",rank=\"1\"}"));
    ck_assert_double_eq(value_of(text, "psd_info",
                                 "shard=\"0\",version=\"" PS_VERSION_STRING
                                 "\",job_name=\"test-job\",mode=\"sync\",shards=\"1\""),
                        1);
    ck_assert(value_of(text, "process_resident_memory_bytes", sh) > 0);
    /* no checkpointer: no checkpoint series */
    ck_assert_ptr_null(strstr(text, "psd_checkpoint"));
    free(text);
    fx_free(&f);
}
END_TEST

START_TEST(ranks_are_counted_by_state_and_help_says_what_each_state_means)
{
    fx *f = fx_new(PS_MODE_ASYNC, 4, NULL);
    hello(f, 0, "vm-a");
    uint32_t done = hello(f, 1, "vm-b"), left = hello(f, 2, "vm-c");
    ps_msg m;
    ps_msg_init(&m, PS_MSG_HEARTBEAT);
    m.worker_id = done;
    m.seq = 2;
    m.flags = PS_FLAG_DONE;
    ck_assert_int_eq(handle(f, &m), 0);
    ps_msg_init(&m, PS_MSG_BYE);
    m.worker_id = left;
    m.seq = 2;
    ck_assert_int_eq(handle(f, &m), 0);
    char *text = render(f);
    ck_assert_msg(strstr(text,
                         "\n# HELP psd_workers ranks by state: live (a worker holds it), done "
                         "(pushed its last), left (said bye), evicted (silent), vacant "
                         "(never held)\n") != NULL,
                  "%s", text);
    static const struct {
        const char *state;
        double ranks;
    } want[] = {{"live", 1}, {"done", 1}, {"left", 1}, {"evicted", 0}, {"vacant", 1}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "shard=\"0\",state=\"%s\"", want[i].state);
        ck_assert_double_eq(value_of(text, "psd_workers", labels), want[i].ranks);
    }
    ck_assert_double_eq(
        value_of(text, "psd_worker_info", "shard=\"0\",rank=\"1\",host=\"vm-b\",state=\"done\""),
        1);
    free(text);
    fx_free(&f);
}
END_TEST

START_TEST(a_host_name_is_escaped_in_its_label)
{
    fx *f = fx_new(PS_MODE_ASYNC, 1, NULL);
    hello(f, 0, "a\"b\\c\nd\x01");
    char *text = render(f);
    ck_assert_double_eq(value_of(text, "psd_worker_info",
                                 "shard=\"0\",rank=\"0\",host=\"a\\\"b\\\\c\\nd?\",state=\"live\""),
                        1);
    free(text);
    fx_free(&f);
}
END_TEST

START_TEST(every_rank_of_the_largest_job_has_its_series)
{
    fx *f = fx_new(PS_MODE_ASYNC, PS_MAX_WORKERS, NULL);
    for (int r = 0; r < PS_MAX_WORKERS; r += 7)
        heartbeat(f, hello(f, r, "vm"), 0.25, 100.0);
    char *text = render(f);
    ck_assert_double_eq(
        value_of(text, "psd_worker_info", "shard=\"0\",rank=\"1023\",host=\"\",state=\"vacant\""),
        1);
    size_t n, info = 0, loss = 0;
    char **lines = lines_of(text, &n); /* cuts text */
    for (size_t i = 0; i < n; i++) {
        info += strncmp(lines[i], "psd_worker_info{", 16) == 0;
        loss += strncmp(lines[i], "psd_worker_loss{", 16) == 0;
    }
    ck_assert_uint_eq(info, PS_MAX_WORKERS);
    ck_assert_uint_eq(loss, (PS_MAX_WORKERS + 6) / 7);
    free(text);
    fx_free(&f);
}
END_TEST

/* ---- HTTP ------------------------------------------------------------------------ */

typedef struct client {
    int port;
    atomic_bool done;
    char replies[4][512]; /* the first bytes of each answer */
    size_t body_len[4];
} client;

/* One request on a new connection; the answer's start in out. */
static size_t http_ask(int port, const char *request, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t total = 0;
    out[0] = '\0';
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        write(fd, request, strlen(request)) == (ssize_t)strlen(request)) {
        char buf[4096];
        ssize_t r;
        while ((r = read(fd, buf, sizeof buf)) > 0) {
            size_t keep = total < cap - 1 ? cap - 1 - total : 0;
            memcpy(out + total, buf, (size_t)r < keep ? (size_t)r : keep);
            total += (size_t)r;
            out[total < cap - 1 ? total : cap - 1] = '\0';
        }
    }
    close(fd);
    return total;
}

/* A connection to port that says nothing more than `says`. */
static int http_idle(int port, const char *says)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(write(fd, says, strlen(says)), (ssize_t)strlen(says));
    return fd;
}

static void *client_main(void *arg)
{
    client *c = arg;
    /* scrapers that stall: one silent, one half way through its request;
     * the others are answered all the same */
    int silent = http_idle(c->port, ""), half = http_idle(c->port, "GET /metr");
    static const char *const requests[] = {
        "GET /metrics HTTP/1.0\r\n\r\n",
        "POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
        "GET /nothing HTTP/1.0\r\n\r\n",
        "HEAD /metrics HTTP/1.0\r\n\r\n",
    };
    for (size_t i = 0; i < 4; i++)
        c->body_len[i] = http_ask(c->port, requests[i], c->replies[i], sizeof c->replies[i]);
    close(silent);
    close(half);
    atomic_store(&c->done, true);
    return NULL;
}

START_TEST(http_answers_get_metrics_and_refuses_the_rest_while_others_stall)
{
    int port = ps_test_free_port();
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    fx *f = fx_new(PS_MODE_SYNC, 2, listen);
    drive(f);
    ck_assert_int_ge(ps_metrics_fd(f->m), 0);
    static client c;
    memset(&c, 0, sizeof c);
    c.port = port;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, client_main, &c), 0);
    /* psd's loop in small: poll the descriptor, run */
    for (int turns = 0; !atomic_load(&c.done) && turns < 1000; turns++) {
        struct pollfd p = {.fd = ps_metrics_fd(f->m), .events = POLLIN};
        poll(&p, 1, (int)ps_metrics_timeout_ms(f->m, 10));
        ps_metrics_run(f->m);
    }
    pthread_join(t, NULL);
    ck_assert_msg(strncmp(c.replies[0], "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", c.replies[0]);
    ck_assert_ptr_nonnull(
        strstr(c.replies[0], "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    ck_assert_uint_gt(c.body_len[0], 5000);
    ck_assert_msg(strncmp(c.replies[1], "HTTP/1.1 405 Method Not Allowed\r\n", 33) == 0, "%s",
                  c.replies[1]);
    ck_assert_ptr_nonnull(strstr(c.replies[1], "Allow: GET, HEAD\r\n"));
    ck_assert_msg(strncmp(c.replies[2], "HTTP/1.1 404 Not Found\r\n", 24) == 0, "%s", c.replies[2]);
    ck_assert_msg(strncmp(c.replies[3], "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", c.replies[3]);
    ck_assert_uint_lt(c.body_len[3], 512); /* HEAD: headers only */
    ck_assert_uint_eq(ps_metrics_scrapes(f->m), 2);
    fx_free(&f);
}
END_TEST

START_TEST(a_port_in_use_is_named)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char addr[64], want[128];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
    snprintf(want, sizeof want, "metrics: cannot listen on %s: Address already in use", addr);
    fx *f = fx_new(PS_MODE_SYNC, 1, NULL);
    ps_metrics_source src = {.job = &f->job, .engine = f->e, .counters = &f->counters};
    ps_error err;
    ps_metrics *m = ps_metrics_new(&src, addr, &f->log, &err);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(err.code, PS_EIO);
    ck_assert_str_eq(err.msg, want);
    m = ps_metrics_new(&src, "127.0.0.1", &f->log, &err);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(err.code, PS_EINVAL);
    ck_assert_str_eq(err.msg, "metrics: \"127.0.0.1\" is not host:port");
    close(fd);
    fx_free(&f);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *text = tcase_create("text");
    tcase_add_test(text, every_line_is_a_comment_or_a_sample);
    tcase_add_test(text, help_and_type_come_once_per_family_before_its_samples);
    tcase_add_test(text, every_series_has_the_shard_label);
    tcase_add_test(text, histogram_buckets_are_cumulative_and_end_in_inf);
    tcase_add_test(text, values_follow_the_engine);
    tcase_add_test(text, ranks_are_counted_by_state_and_help_says_what_each_state_means);
    tcase_add_test(text, a_host_name_is_escaped_in_its_label);
    tcase_add_test(text, every_rank_of_the_largest_job_has_its_series);
    suite_add_tcase(s, text);
    TCase *http = tcase_create("http");
    tcase_set_timeout(http, 30);
    tcase_add_test(http, http_answers_get_metrics_and_refuses_the_rest_while_others_stall);
    tcase_add_test(http, a_port_in_use_is_named);
    suite_add_tcase(s, http);
    return s;
}

int main(void)
{
    return ps_check_run(metrics_suite());
}
