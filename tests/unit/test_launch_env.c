/* test_launch_env.c — ranks, shards and endpoints from the environment
 * (config/launch_env.h): every source, its precedence, and every refusal's
 * one line; the servers pattern of the job file. */
#include "check_main.h"
#include "job.h"
#include "launch_env.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const char *const VARS[] = {
    "PSD_RANK",    "PSD_SHARD",     "SLURM_PROCID",  "JOB_COMPLETION_INDEX",    "TF_CONFIG",
    "PSD_SERVERS", "PSD_NAMESPACE", "POD_NAMESPACE", "PSD_SHARD_FROM_HOSTNAME", "HOSTNAME",
};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof VARS / sizeof VARS[0]; i++)
        unsetenv(VARS[i]);
}

#define JOB(servers)                                                                               \
    "job: t\n"                                                                                     \
    "workers: 4\n"                                                                                 \
    "servers: " servers "\n"                                                                       \
    "model: {type: logistic, features: 30}\n"                                                      \
    "data: {train: breast_cancer.train.csv}\n"

static const char *TWO = JOB("[tcp://127.0.0.1:7070, tcp://127.0.0.1:7071]");

static int parse(const char *text, ps_job *job, ps_error *err)
{
    ps_error_clear(err);
    return ps_job_parse(text, strlen(text), "job.yaml", PS_TEST_DATA_DIR, job, err);
}

static void load(ps_job *job)
{
    ps_error err;
    ck_assert_msg(parse(TWO, job, &err) == 0, "%s", err.msg);
}

static void expect_rank(int want, const char *want_from)
{
    ps_job job;
    load(&job);
    ps_error err;
    ps_error_clear(&err);
    int rank = 99;
    char from[32] = "x";
    ck_assert_msg(ps_launch_rank(&job, &rank, from, sizeof from, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(rank, want);
    ck_assert_str_eq(from, want_from);
}

static void expect_rank_refused(const char *msg)
{
    ps_job job;
    load(&job);
    ps_error err;
    ps_error_clear(&err);
    int rank = 99;
    ck_assert_int_eq(ps_launch_rank(&job, &rank, NULL, 0, &err), PS_ECONFIG);
    ck_assert_str_eq(err.msg, msg);
}

static void expect_shard(int want, const char *want_from)
{
    ps_job job;
    load(&job);
    ps_error err;
    ps_error_clear(&err);
    int shard = 99;
    char from[32] = "x";
    ck_assert_msg(ps_launch_shard(&job, &shard, from, sizeof from, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(shard, want);
    ck_assert_str_eq(from, want_from);
}

static void expect_shard_refused(const char *msg)
{
    ps_job job;
    load(&job);
    ps_error err;
    ps_error_clear(&err);
    int shard = 99;
    ck_assert_int_eq(ps_launch_shard(&job, &shard, NULL, 0, &err), PS_ECONFIG);
    ck_assert_str_eq(err.msg, msg);
}

static void expect_load_error(const char *text, const char *msg)
{
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(text, &job, &err), PS_ECONFIG);
    ck_assert_str_eq(err.msg, msg);
}

/* ---- rank ---- */

START_TEST(no_variable_gives_any_rank)
{
    clear_env();
    expect_rank(-1, "");
}
END_TEST

START_TEST(each_rank_source_alone)
{
    clear_env();
    setenv("PSD_RANK", "3", 1);
    expect_rank(3, "PSD_RANK");
    setenv("PSD_RANK", "-1", 1); /* any, as before */
    expect_rank(-1, "PSD_RANK");
    clear_env();
    setenv("SLURM_PROCID", "2", 1);
    expect_rank(2, "SLURM_PROCID");
    clear_env();
    setenv("JOB_COMPLETION_INDEX", "1", 1);
    expect_rank(1, "JOB_COMPLETION_INDEX");
    clear_env();
    setenv("TF_CONFIG",
           "{\"cluster\": {\"worker\": [\"a:1\",\"b:1\",\"c:1\",\"d:1\"]}, "
           "\"task\": {\"type\": \"worker\", \"index\": 3}}",
           1);
    expect_rank(3, "TF_CONFIG");
    /* a chief is rank 0 and pushes the workers up by one */
    setenv("TF_CONFIG",
           "{\"cluster\": {\"chief\": [\"c:1\"], \"worker\": [\"a:1\",\"b:1\",\"d:1\"]}, "
           "\"task\": {\"type\": \"chief\", \"index\": 0}}",
           1);
    expect_rank(0, "TF_CONFIG");
    setenv("TF_CONFIG",
           "{\"cluster\": {\"chief\": [\"c:1\"], \"worker\": [\"a:1\",\"b:1\",\"d:1\"]}, "
           "\"task\": {\"type\": \"worker\", \"index\": 2}}",
           1);
    expect_rank(3, "TF_CONFIG");
    /* a ps task gives no rank */
    setenv("TF_CONFIG", "{\"task\": {\"type\": \"ps\", \"index\": 1}}", 1);
    expect_rank(-1, "");
    clear_env();
}
END_TEST

START_TEST(first_rank_source_set_wins)
{
    clear_env();
    setenv("TF_CONFIG", "{\"task\": {\"type\": \"worker\", \"index\": 3}}", 1);
    setenv("JOB_COMPLETION_INDEX", "2", 1);
    expect_rank(2, "JOB_COMPLETION_INDEX");
    setenv("SLURM_PROCID", "1", 1);
    expect_rank(1, "SLURM_PROCID");
    setenv("PSD_RANK", "0", 1);
    expect_rank(0, "PSD_RANK");
    setenv("PSD_RANK", "", 1); /* empty is unset */
    expect_rank(1, "SLURM_PROCID");
    clear_env();
}
END_TEST

START_TEST(bad_ranks_are_refused_naming_the_variable)
{
    clear_env();
    setenv("SLURM_PROCID", "5", 1);
    expect_rank_refused("SLURM_PROCID=5 gives rank 5, but the job has 4 workers");
    setenv("SLURM_PROCID", "x1", 1);
    expect_rank_refused("SLURM_PROCID=x1: give a rank >= 0");
    setenv("SLURM_PROCID", "-1", 1);
    expect_rank_refused("SLURM_PROCID=-1: give a rank >= 0");
    clear_env();
    setenv("PSD_RANK", "4", 1);
    expect_rank_refused("PSD_RANK=4 gives rank 4, but the job has 4 workers");
    setenv("PSD_RANK", "zero", 1);
    expect_rank_refused("PSD_RANK=zero: give a rank >= 0, or -1 for any");
    clear_env();
    setenv("JOB_COMPLETION_INDEX", "9", 1);
    expect_rank_refused("JOB_COMPLETION_INDEX=9 gives rank 9, but the job has 4 workers");
    clear_env();
    setenv("TF_CONFIG", "{\"task\": {\"type\": \"worker\", \"index\": 4}}", 1);
    expect_rank_refused("TF_CONFIG: task worker 4 gives rank 4, but the job has 4 workers");
    setenv("TF_CONFIG", "{\"task\": {\"type\": \"chief\", \"index\": 1}}", 1);
    expect_rank_refused("TF_CONFIG: task chief 1: a job has one chief (index 0)");
    clear_env();
}
END_TEST

/* ---- shard ---- */

START_TEST(each_shard_source_and_precedence)
{
    clear_env();
    expect_shard(-1, "");
    setenv("TF_CONFIG", "{\"task\": {\"type\": \"ps\", \"index\": 1}}", 1);
    expect_shard(1, "TF_CONFIG");
    setenv("TF_CONFIG", "{\"task\": {\"type\": \"worker\", \"index\": 1}}", 1);
    expect_shard(-1, "");
    setenv("HOSTNAME", "psd-1", 1);
    expect_shard(-1, ""); /* only with PSD_SHARD_FROM_HOSTNAME=1 */
    setenv("PSD_SHARD_FROM_HOSTNAME", "1", 1);
    expect_shard(1, "HOSTNAME");
    setenv("HOSTNAME", "my-psd-0", 1);
    expect_shard(0, "HOSTNAME");
    setenv("SLURM_PROCID", "1", 1);
    expect_shard(1, "SLURM_PROCID");
    setenv("PSD_SHARD", "0", 1);
    expect_shard(0, "PSD_SHARD");
    clear_env();
}
END_TEST

START_TEST(bad_shards_are_refused_naming_the_variable)
{
    clear_env();
    setenv("PSD_SHARD", "2", 1);
    expect_shard_refused("PSD_SHARD=2 gives shard 2, but the job has 2 servers");
    setenv("PSD_SHARD", "-1", 1);
    expect_shard_refused("PSD_SHARD=-1: give a shard >= 0");
    clear_env();
    setenv("SLURM_PROCID", "7", 1);
    expect_shard_refused("SLURM_PROCID=7 gives shard 7, but the job has 2 servers");
    clear_env();
    setenv("PSD_SHARD_FROM_HOSTNAME", "1", 1);
    setenv("HOSTNAME", "psd-5", 1);
    expect_shard_refused("HOSTNAME=psd-5 gives shard 5, but the job has 2 servers");
    setenv("HOSTNAME", "psd", 1);
    expect_shard_refused("PSD_SHARD_FROM_HOSTNAME=1: host name \"psd\" does not end in -N "
                         "(a StatefulSet pod's ordinal)");
    setenv("PSD_SHARD_FROM_HOSTNAME", "yes", 1);
    expect_shard_refused("PSD_SHARD_FROM_HOSTNAME=yes: give 1 or 0");
    clear_env();
    setenv("TF_CONFIG", "{\"task\": {\"type\": \"ps\", \"index\": 2}}", 1);
    expect_shard_refused("TF_CONFIG: task ps 2 gives shard 2, but the job has 2 servers");
    clear_env();
}
END_TEST

/* ---- TF_CONFIG ---- */

START_TEST(tf_config_gives_the_servers_and_checks_workers)
{
    clear_env();
    setenv("TF_CONFIG",
           "{\"cluster\": {\"ps\": [\"ps-0:2222\", \"ps-1:2222\", \"ps-2:2222\"], "
           "\"worker\": [\"w0:1\",\"w1:1\",\"w2:1\",\"w3:1\"]}, "
           "\"task\": {\"type\": \"ps\", \"index\": 2}}",
           1);
    ps_job job;
    ps_error err;
    ck_assert_msg(parse(TWO, &job, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(job.nservers, 3); /* cluster.ps defines the servers */
    ck_assert_str_eq(job.servers[0], "tcp://ps-0:2222");
    ck_assert_str_eq(job.servers[2], "tcp://ps-2:2222");
    int shard = -1;
    ck_assert_int_eq(ps_launch_shard(&job, &shard, NULL, 0, &err), 0);
    ck_assert_int_eq(shard, 2);
    /* PSD_SERVERS beats cluster.ps; the worker count is still checked */
    setenv("PSD_SERVERS", "tcp://10.0.0.1:1", 1);
    ck_assert_msg(parse(TWO, &job, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(job.nservers, 1);
    setenv("TF_CONFIG", "{\"cluster\": {\"worker\": [\"w0:1\"]}}", 1);
    expect_load_error(TWO,
                      "TF_CONFIG: cluster lists 1 workers (chief and worker), but the job has 4");
    clear_env();
}
END_TEST

START_TEST(malformed_tf_config_is_refused_in_one_line)
{
    clear_env();
    static const struct {
        const char *json, *msg;
    } cases[] = {
        {"[1]", "TF_CONFIG: must be a JSON object with cluster and task"},
        {"{\"cluster\": []}", "TF_CONFIG: cluster must be an object of lists (ps, worker, chief)"},
        {"{\"cluster\": {\"ps\": \"a:1\"}}",
         "TF_CONFIG: cluster.ps must be a list of \"host:port\""},
        {"{\"cluster\": {\"ps\": [7]}}", "TF_CONFIG: cluster.ps[0] must be a \"host:port\" string"},
        {"{\"cluster\": {\"ps\": [\"nohost\"]}}",
         "TF_CONFIG: cluster.ps[0] \"nohost\" is not host:port"},
        {"{\"cluster\": {\"ps\": []}}",
         "TF_CONFIG: cluster.ps is empty; list one host:port per server"},
        {"{\"cluster\": {\"ps\": [\"a:1\", \"a:1\"]}}",
         "TF_CONFIG: cluster.ps lists \"a:1\" twice"},
        {"{\"task\": 3}", "TF_CONFIG: task must be an object {\"type\": ..., \"index\": ...}"},
        {"{\"task\": {\"type\": 1, \"index\": 0}}",
         "TF_CONFIG: task.type must be a string (worker, chief or ps)"},
        {"{\"task\": {\"type\": \"worker\", \"index\": \"0\"}}",
         "TF_CONFIG: task.index must be a whole number >= 0"},
        {"{\"task\": {\"type\": \"worker\", \"index\": -1}}",
         "TF_CONFIG: task.index must be a whole number >= 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("TF_CONFIG", cases[i].json, 1);
        ps_job job;
        ps_error err;
        int rc = parse(TWO, &job, &err);
        if (rc == 0) /* the task's errors come when a rank is asked for */
            rc = ps_launch_rank(&job, &(int){0}, NULL, 0, &err);
        ck_assert_msg(rc == PS_ECONFIG, "%s: rc %d", cases[i].json, rc);
        ck_assert_str_eq(err.msg, cases[i].msg);
    }
    setenv("TF_CONFIG", "{\"cluster\": ", 1);
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(TWO, &job, &err), PS_ECONFIG);
    ck_assert_msg(strncmp(err.msg, "TF_CONFIG: not JSON (", 21) == 0, "%s", err.msg);
    ck_assert_ptr_null(strchr(err.msg, '\n'));
    clear_env();
}
END_TEST

/* ---- PSD_SERVERS and the pattern ---- */

START_TEST(psd_servers_replaces_the_files_list)
{
    clear_env();
    setenv("PSD_SERVERS", "tcp://10.0.0.1:7070, tcp://10.0.0.2:7070,ipc:///tmp/x", 1);
    ps_job job;
    ps_error err;
    ck_assert_msg(parse(TWO, &job, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(job.nservers, 3);
    ck_assert_str_eq(job.servers[1], "tcp://10.0.0.2:7070");
    ck_assert_str_eq(job.servers[2], "ipc:///tmp/x");
    setenv("PSD_SERVERS", "tcp://a:1,,tcp://b:1", 1);
    expect_load_error(TWO, "PSD_SERVERS=tcp://a:1,,tcp://b:1: endpoint 2 is empty; give "
                           "tcp://host:port,tcp://host:port,...");
    setenv("PSD_SERVERS", "tcp://a:1,http://b", 1);
    expect_load_error(TWO, "PSD_SERVERS: \"http://b\" is not an endpoint (tcp://host:port or "
                           "ipc://path)");
    setenv("PSD_SERVERS", "tcp://a:1,tcp://a:1", 1);
    expect_load_error(TWO, "PSD_SERVERS: \"tcp://a:1\" is listed twice");
    /* the checks that count servers see the override */
    setenv("PSD_SERVERS", "tcp://a:1,tcp://b:1", 1);
    expect_load_error(JOB("[tcp://a:1]") "metrics: {listen: [\"127.0.0.1:9100\"]}\n",
                      "job.yaml:6:19: metrics.listen: 1 addresses for 2 servers; list one per "
                      "server, or give one address (shard i then listens on its port + i)");
    clear_env();
}
END_TEST

START_TEST(pattern_expands_to_a_plain_list)
{
    clear_env();
    setenv("POD_NAMESPACE", "ml", 1);
    ps_job job;
    ps_error err;
    const char *text = JOB("{pattern: \"tcp://psd-{shard}.psd.{namespace}.svc:7070\", count: 3}");
    ck_assert_msg(parse(text, &job, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(job.nservers, 3);
    ck_assert_str_eq(job.servers[0], "tcp://psd-0.psd.ml.svc:7070");
    ck_assert_str_eq(job.servers[2], "tcp://psd-2.psd.ml.svc:7070");
    setenv("PSD_NAMESPACE", "prod", 1); /* PSD_NAMESPACE first */
    ck_assert_msg(parse(text, &job, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(job.servers[1], "tcp://psd-1.psd.prod.svc:7070");
    /* PSD_SERVERS beats the pattern */
    setenv("PSD_SERVERS", "tcp://127.0.0.1:1", 1);
    ck_assert_msg(parse(text, &job, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(job.nservers, 1);
    clear_env();
}
END_TEST

/* The most shards a job may have (PS_MAX_SHARDS, 256) is taken, with
 * the 4096 workers of PS_MAX_WORKERS; one more shard is refused. */
START_TEST(pattern_of_the_most_servers_is_taken)
{
    clear_env();
    static ps_job job;
    ps_error err;
#define MOST(count)                                                                                \
    "job: t\n"                                                                                     \
    "workers: 4096\n"                                                                              \
    "servers: {pattern: \"tcp://psd-{shard}:7070\", count: " count "}\n"                           \
    "model: {type: logistic, features: 1000}\n"                                                    \
    "data: {train: breast_cancer.train.csv}\n"
    ck_assert_int_eq(PS_MAX_SHARDS, 256);
    ck_assert_msg(parse(MOST("256"), &job, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(job.nservers, PS_MAX_SHARDS);
    ck_assert_uint_eq(job.workers, PS_MAX_WORKERS);
    ck_assert_str_eq(job.servers[0], "tcp://psd-0:7070");
    ck_assert_str_eq(job.servers[255], "tcp://psd-255:7070");
    expect_load_error(MOST("257"),
                      "job.yaml:3:53: servers.count: must be between 1 and 256, got 257");
#undef MOST
    clear_env();
}
END_TEST

START_TEST(bad_patterns_are_refused_at_their_place)
{
    clear_env();
    expect_load_error(JOB("{pattern: \"tcp://psd-{shard}.{namespace}:7070\", count: 2}"),
                      "job.yaml:3:20: servers.pattern: {namespace} needs PSD_NAMESPACE or "
                      "POD_NAMESPACE set in the environment");
    expect_load_error(JOB("{pattern: \"tcp://psd-{shard}:7070\"}"),
                      "job.yaml:3:10: servers: a pattern needs pattern (with {shard}) and count, "
                      "e.g. {pattern: \"tcp://psd-{shard}.psd:7070\", count: 2}");
    expect_load_error(JOB("{pattern: \"tcp://psd-{shard}:7070\", count: 0}"),
                      "job.yaml:3:53: servers.count: must be between 1 and 256, got 0");
    expect_load_error(JOB("{pattern: \"tcp://psd:7070\", count: 2}"),
                      "job.yaml:3:20: servers.pattern: has no {shard}, so its 2 servers would "
                      "share one endpoint");
    expect_load_error(JOB("{pattern: \"tcp://psd-{shard}-{rank}:7070\", count: 2}"),
                      "job.yaml:3:20: servers.pattern: only {shard} and {namespace} may stand in "
                      "braces, got \"{rank}:7070\"");
    expect_load_error(JOB("{pattern: \"psd-{shard}:7070\", count: 2}"),
                      "job.yaml:3:20: servers.pattern: shard 0 gives \"psd-0:7070\", which is not "
                      "an endpoint (tcp://host:port or ipc://path)");
    expect_load_error(JOB("{pattern: \"tcp://psd-{shard}:7070\", count: 2, size: 3}"),
                      "job.yaml:3:56: servers.size: unknown key; a servers pattern takes pattern "
                      "and count");
    clear_env();
}
END_TEST

START_TEST(psd_binds_every_interface_for_a_dns_name)
{
    char out[PS_ENDPOINT_MAX];
    ps_launch_bind_endpoint("tcp://psd-0.psd.ml.svc:7070", out, sizeof out);
    ck_assert_str_eq(out, "tcp://*:7070");
    ps_launch_bind_endpoint("tcp://127.0.0.1:7070", out, sizeof out);
    ck_assert_str_eq(out, "tcp://127.0.0.1:7070");
    ps_launch_bind_endpoint("tcp://localhost:7070", out, sizeof out);
    ck_assert_str_eq(out, "tcp://localhost:7070");
    ps_launch_bind_endpoint("tcp://[::1]:7070", out, sizeof out);
    ck_assert_str_eq(out, "tcp://[::1]:7070");
    ps_launch_bind_endpoint("ipc:///tmp/psd.sock", out, sizeof out);
    ck_assert_str_eq(out, "ipc:///tmp/psd.sock");
}
END_TEST

static Suite *launch_suite(void)
{
    Suite *s = suite_create("launch_env");
    TCase *rank = tcase_create("rank");
    tcase_add_test(rank, no_variable_gives_any_rank);
    tcase_add_test(rank, each_rank_source_alone);
    tcase_add_test(rank, first_rank_source_set_wins);
    tcase_add_test(rank, bad_ranks_are_refused_naming_the_variable);
    suite_add_tcase(s, rank);
    TCase *shard = tcase_create("shard");
    tcase_add_test(shard, each_shard_source_and_precedence);
    tcase_add_test(shard, bad_shards_are_refused_naming_the_variable);
    suite_add_tcase(s, shard);
    TCase *tf = tcase_create("tf_config");
    tcase_add_test(tf, tf_config_gives_the_servers_and_checks_workers);
    tcase_add_test(tf, malformed_tf_config_is_refused_in_one_line);
    suite_add_tcase(s, tf);
    TCase *eps = tcase_create("endpoints");
    tcase_add_test(eps, psd_servers_replaces_the_files_list);
    tcase_add_test(eps, pattern_expands_to_a_plain_list);
    tcase_add_test(eps, bad_patterns_are_refused_at_their_place);
    tcase_add_test(eps, pattern_of_the_most_servers_is_taken);
    tcase_add_test(eps, psd_binds_every_interface_for_a_dns_name);
    suite_add_tcase(s, eps);
    return s;
}

int main(void)
{
    return ps_check_run(launch_suite());
}
