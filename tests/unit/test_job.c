/* test_job.c — the job-file loader: every malformed file gets one exact
 * "file:line:col: message", valid files give the right values and defaults,
 * and the layout of θ follows the model section. */
#include "job.h"

#include "endpoint_local.h"

#include <check.h>

#include "check_main.h"
#include <arpa/inet.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The first five lines of most files below: a valid job. Keys added after
 * it start on line 6. Data paths resolve against PS_TEST_DATA_DIR. */
#define BASE                                                                                       \
    "job: t\n"                                                                                     \
    "workers: 2\n"                                                                                 \
    "servers: [tcp://127.0.0.1:7070]\n"                                                            \
    "model: {type: logistic, features: 30}\n"                                                      \
    "data: {train: breast_cancer.train.csv}\n"

/* BASE with its data section (line 5) replaced */
#define BASE_DATA(d)                                                                               \
    "job: t\n"                                                                                     \
    "workers: 2\n"                                                                                 \
    "servers: [tcp://127.0.0.1:7070]\n"                                                            \
    "model: {type: logistic, features: 30}\n"                                                      \
    "data: " d "\n"

static int parse(const char *text, ps_job *job, ps_error *err)
{
    return ps_job_parse(text, strlen(text), "job.yaml", PS_TEST_DATA_DIR, job, err);
}

static void expect_error(const char *text, int code, const char *msg)
{
    ps_job job;
    ps_error err;
    int rc = parse(text, &job, &err);
    ck_assert_str_eq(err.msg, msg);
    ck_assert_int_eq(rc, code);
    ck_assert_int_eq(err.code, code);
}

static void expect_config_error(const char *text, const char *msg)
{
    expect_error(text, PS_ECONFIG, msg);
}

static void expect_unsupported(const char *text, const char *msg)
{
    expect_error(text, PS_EUNSUPPORTED, msg);
}

/* ---- malformed files ---- */

START_TEST(unknown_key_suggests_nearest_key_of_its_section)
{
    expect_config_error(BASE "optimizer:\n"
                             "  lerning_rate: 0.1\n",
                        "job.yaml:7:3: unknown key \"lerning_rate\" in optimizer "
                        "(did you mean \"lr\"?)");
}
END_TEST

START_TEST(unknown_top_level_key_suggests_by_edit_distance)
{
    expect_config_error(BASE "moed: sync\n",
                        "job.yaml:6:1: unknown key \"moed\" at top level (did you mean \"mode\"?)");
}
END_TEST

START_TEST(key_of_another_section_is_pointed_there)
{
    expect_config_error(BASE "epochs: 5\n", "job.yaml:6:1: unknown key \"epochs\" at top level "
                                            "(did you mean \"training.epochs\"?)");
}
END_TEST

START_TEST(key_of_several_sections_names_them)
{
    expect_config_error(BASE "type: sgd\n",
                        "job.yaml:6:1: unknown key \"type\" at top level (\"type\" belongs in a "
                        "section: model, optimizer, optimizer.schedule, "
                        "training.local_optimizer)");
}
END_TEST

START_TEST(key_near_nothing_lists_the_valid_keys)
{
    expect_config_error(BASE "log: {colour: red}\n",
                        "job.yaml:6:7: unknown key \"colour\" in log (valid keys: level)");
}
END_TEST

START_TEST(unknown_key_in_flow_mapping_is_found)
{
    expect_config_error(BASE "training: {epochs: 3, batchsize: 8}\n",
                        "job.yaml:6:23: unknown key \"batchsize\" in training "
                        "(did you mean \"batch_size\"?)");
}
END_TEST

START_TEST(word_for_an_integer_is_a_type_error)
{
    expect_config_error("job: t\n"
                        "workers: two\n",
                        "job.yaml:2:10: workers: expected an integer, got \"two\"");
}
END_TEST

START_TEST(quoted_number_is_a_string_not_an_integer)
{
    expect_config_error("job: t\n"
                        "workers: \"2\"\n",
                        "job.yaml:2:10: workers: expected an integer, got the string \"2\"");
}
END_TEST

START_TEST(list_where_a_string_is_expected_is_a_type_error)
{
    expect_config_error("job: [a, b]\n", "job.yaml:1:6: job: expected a string, got a list");
}
END_TEST

START_TEST(scalar_where_a_section_is_expected_is_a_type_error)
{
    expect_config_error(BASE "optimizer: sgd\n",
                        "job.yaml:6:12: optimizer: expected a mapping, got \"sgd\"");
}
END_TEST

START_TEST(negative_lr_is_out_of_range)
{
    expect_config_error(BASE "optimizer: {lr: -0.5}\n",
                        "job.yaml:6:17: optimizer.lr: must be > 0, got -0.5");
}
END_TEST

START_TEST(zero_workers_is_out_of_range)
{
    expect_config_error("job: t\n"
                        "workers: 0\n",
                        "job.yaml:2:10: workers: must be between 1 and 4096, got 0");
}
END_TEST

START_TEST(zero_epochs_is_out_of_range)
{
    expect_config_error(BASE "training: {epochs: 0}\n",
                        "job.yaml:6:20: training.epochs: must be between 1 and 1000000, got 0");
}
END_TEST

START_TEST(zero_batch_size_is_out_of_range)
{
    expect_config_error(BASE "training:\n"
                             "  batch_size: 0\n",
                        "job.yaml:7:15: training.batch_size: must be at least 1, got 0");
}
END_TEST

START_TEST(integer_past_64_bits_is_out_of_range)
{
    expect_config_error(BASE "training: {seed: 18446744073709551616}\n",
                        "job.yaml:6:18: training.seed: must be at most 18446744073709551615, "
                        "got 18446744073709551616");
}
END_TEST

START_TEST(out_of_range_integers_name_the_bound_they_broke)
{
    /* past a 32-bit field: too large, not "at least 1" */
    expect_config_error(BASE "training: {local_steps: 4294967296}\n",
                        "job.yaml:6:25: training.local_steps: must be at most 4294967295, got "
                        "4294967296");
    /* below a field that starts at 0: negative, not "at most" */
    expect_config_error(BASE "mode: ssp\nstaleness: -1\n",
                        "job.yaml:7:12: staleness: must not be negative, got -1");
    expect_config_error(BASE "training: {batch_size: -3}\n",
                        "job.yaml:6:24: training.batch_size: must be at least 1, got -3");
}
END_TEST

START_TEST(momentum_of_one_is_out_of_range)
{
    expect_config_error(BASE "optimizer: {type: momentum, momentum: 1}\n",
                        "job.yaml:6:39: optimizer.momentum: must be in [0, 1), got 1");
}
END_TEST

START_TEST(nan_is_not_a_number)
{
    expect_config_error(BASE "optimizer: {lr: .nan}\n",
                        "job.yaml:6:17: optimizer.lr: expected a number, got \".nan\"");
}
END_TEST

START_TEST(missing_train_file_names_resolved_path_at_its_key)
{
    expect_config_error("job: t\n"
                        "workers: 2\n"
                        "servers: [tcp://127.0.0.1:7070]\n"
                        "model: {type: logistic, features: 30}\n"
                        "data: {train: nope.csv}\n",
                        "job.yaml:5:8: data.train: cannot read " PS_TEST_DATA_DIR
                        "/nope.csv: No such file or directory");
}
END_TEST

START_TEST(data_file_that_is_a_folder_is_an_error)
{
    expect_config_error(BASE_DATA("{train: .}"),
                        "job.yaml:5:8: data.train: " PS_TEST_DATA_DIR "/. is a folder, not a file");
}
END_TEST

START_TEST(missing_test_file_is_an_error)
{
    expect_config_error(BASE_DATA("{train: breast_cancer.train.csv, test: gone.csv}"),
                        "job.yaml:5:40: data.test: cannot read " PS_TEST_DATA_DIR
                        "/gone.csv: No such file or directory");
}
END_TEST

START_TEST(bad_mode_lists_the_valid_ones)
{
    expect_config_error(BASE "mode: foo\n",
                        "job.yaml:6:7: mode: \"foo\" is not one of sync, async, ssp");
}
END_TEST

/* ---- sync_chunk_kib: auto, a number, or one line naming the key ---- */

START_TEST(sync_chunk_kib_is_auto_unless_a_number_is_given)
{
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(BASE, &job, &err), 0);
    ck_assert_uint_eq(job.sync_chunk_kib, PS_SYNC_CHUNK_AUTO);
    ck_assert_int_eq(parse(BASE "sync_chunk_kib: auto\n", &job, &err), 0);
    ck_assert_uint_eq(job.sync_chunk_kib, PS_SYNC_CHUNK_AUTO);
    ck_assert_int_eq(parse(BASE "sync_chunk_kib: 0\n", &job, &err), 0);
    ck_assert_uint_eq(job.sync_chunk_kib, 0);
    ck_assert_int_eq(parse(BASE "sync_chunk_kib: 256\n", &job, &err), 0);
    ck_assert_uint_eq(job.sync_chunk_kib, 256);
    expect_config_error(BASE "sync_chunk_kib: fast\n",
                        "job.yaml:6:17: sync_chunk_kib: expected auto or a number of KiB from 0 "
                        "to 1048576, got \"fast\"");
    expect_config_error(BASE "sync_chunk_kib: 2000000\n",
                        "job.yaml:6:17: sync_chunk_kib: must be at most 1048576, got 2000000");
    expect_config_error(BASE "sync_chunk_kib: [64]\n",
                        "job.yaml:6:17: sync_chunk_kib: expected auto or a number of KiB from 0 "
                        "to 1048576, got a list");
}
END_TEST

/* auto: at most PS_SYNC_CHUNK_AUTO_COUNT chunks of at least 64 KiB (16384
 * keys), whole KiB; a number: chunks of that many KiB; 0, or a shard of one
 * chunk or less: whole */
START_TEST(sync_chunk_keys_follow_the_rule)
{
    ps_job job = {.sync_chunk_kib = PS_SYNC_CHUNK_AUTO};
    ck_assert_uint_eq(ps_job_sync_chunk_keys(&job, 16384), 0);
    ck_assert_uint_eq(ps_job_sync_chunk_keys(&job, 16385), 16384);
    ck_assert_uint_eq(ps_job_sync_chunk_keys(&job, 100000), 16384);
    /* the quick-start MLP's θ, 203530 floats: 8 chunks of 100 KiB */
    ck_assert_uint_eq(ps_job_sync_chunk_keys(&job, 203530), 25600);
    ck_assert_uint_eq(ps_job_sync_chunk_keys(&job, 1000000), 125184);
    ck_assert_uint_eq(ps_job_sync_chunk_keys(&job, 10000000), 1250048);
    job.sync_chunk_kib = 64;
    ck_assert_uint_eq(ps_job_sync_chunk_keys(&job, 1000000), 16384);
    ck_assert_uint_eq(ps_job_sync_chunk_keys(&job, 16384), 0);
    job.sync_chunk_kib = 1;
    ck_assert_uint_eq(ps_job_sync_chunk_keys(&job, 600), 256);
    job.sync_chunk_kib = 0;
    ck_assert_uint_eq(ps_job_sync_chunk_keys(&job, 1000000), 0);
}
END_TEST

/* auto chunks only where the link leaves the host: loopback, ipc, inproc
 * and this host's own addresses are local; TEST-NET-1 is not */
START_TEST(endpoints_on_this_host_are_local)
{
    ck_assert(ps_endpoint_local("ipc:///tmp/psd.sock"));
    ck_assert(ps_endpoint_local("inproc://psd"));
    ck_assert(ps_endpoint_local("tcp://127.0.0.1:7070"));
    ck_assert(ps_endpoint_local("tcp://127.8.9.10:7070"));
    ck_assert(ps_endpoint_local("tcp://localhost:7070"));
    ck_assert(ps_endpoint_local("tcp://[::1]:7070"));
    ck_assert(ps_endpoint_local("tcp://10.0.0.5;127.0.0.1:7070"));
    ck_assert(!ps_endpoint_local("tcp://192.0.2.1:7070"));
    ck_assert(!ps_endpoint_local("tcp://[2001:db8::1]:7070"));
    ck_assert(!ps_endpoint_local("tcp://:7070"));
    ck_assert(!ps_endpoint_local("udp://127.0.0.1:7070"));
    /* an address of one of this host's interfaces, not loopback */
    struct ifaddrs *ifs = NULL;
    ck_assert_int_eq(getifaddrs(&ifs), 0);
    for (const struct ifaddrs *i = ifs; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET)
            continue;
        const struct sockaddr_in *in = (const struct sockaddr_in *)i->ifa_addr;
        if ((ntohl(in->sin_addr.s_addr) >> 24) == 127)
            continue;
        char ip[INET_ADDRSTRLEN], ep[64];
        ck_assert_ptr_nonnull(inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip));
        snprintf(ep, sizeof ep, "tcp://%s:7070", ip);
        ck_assert_msg(ps_endpoint_local(ep), "%s is this host's", ep);
    }
    freeifaddrs(ifs);
}
END_TEST

START_TEST(mode_ssp_is_loaded_with_its_staleness)
{
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(BASE "mode: ssp\n"
                                "staleness: 2\n",
                           &job, &err),
                     0);
    ck_assert_int_eq(job.mode, PS_MODE_SSP);
    ck_assert_uint_eq(job.staleness, 2);
    ck_assert_int_eq(parse(BASE "mode: ssp\n", &job, &err), 0);
    ck_assert_uint_eq(job.staleness, 0);
}
END_TEST

START_TEST(staleness_without_ssp_is_a_contradiction)
{
    expect_config_error(BASE "mode: async\n"
                             "staleness: 2\n",
                        "job.yaml:7:12: staleness: only valid with mode ssp");
}
END_TEST

START_TEST(every_optimizer_and_schedule_loads)
{
    static const char *const types[] = {"sgd", "momentum", "adagrad", "adam", "ftrl"};
    static const char *const schedules[] = {
        "{type: constant}", "{type: step, step_size: 10, gamma: 0.5}",
        "{type: cosine, total_steps: 100}", "{type: cosine, total_steps: 100, warmup_steps: 10}",
        "{warmup_steps: 5}"};
    for (size_t t = 0; t < 5; t++) {
        for (size_t k = 0; k < 5; k++) {
            char text[512];
            snprintf(text, sizeof text, BASE "optimizer: {type: %s, schedule: %s}\n", types[t],
                     schedules[k]);
            ps_job job;
            ps_error err;
            ck_assert_msg(parse(text, &job, &err) == 0, "%s: %s", text, err.msg);
            ck_assert_int_eq(job.optimizer.type, (int)t);
        }
    }
}
END_TEST

START_TEST(adam_takes_betas_and_eps_with_defaults)
{
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(BASE "optimizer: {type: adam, lr: 0.01}\n", &job, &err), 0);
    ck_assert_int_eq(job.optimizer.type, PS_OPTIM_ADAM);
    ck_assert_double_eq(job.optimizer.beta1, 0.9);
    ck_assert_double_eq(job.optimizer.beta2, 0.999);
    ck_assert_double_eq(job.optimizer.eps, 1e-8);
    ck_assert_int_eq(
        parse(BASE "optimizer: {type: adam, beta1: 0, beta2: 0.99, eps: 1e-6}\n", &job, &err), 0);
    ck_assert_double_eq(job.optimizer.beta1, 0.0);
    ck_assert_double_eq(job.optimizer.beta2, 0.99);
    ck_assert_double_eq(job.optimizer.eps, 1e-6);
    ck_assert_int_eq(parse(BASE "optimizer: {type: ftrl, l1: 0.5, l2: 1}\n", &job, &err), 0);
    ck_assert_double_eq(job.optimizer.l1, 0.5);
    ck_assert_double_eq(job.optimizer.l2, 1.0);
}
END_TEST

START_TEST(adam_hyper_parameters_out_of_range_are_errors)
{
    expect_config_error(BASE "optimizer: {type: adam, beta1: 1}\n",
                        "job.yaml:6:32: optimizer.beta1: must be in [0, 1), got 1");
    expect_config_error(BASE "optimizer: {type: adam, beta2: -0.1}\n",
                        "job.yaml:6:32: optimizer.beta2: must be in [0, 1), got -0.1");
    expect_config_error(BASE "optimizer: {type: adam, eps: 0}\n",
                        "job.yaml:6:30: optimizer.eps: must be > 0, got 0");
}
END_TEST

START_TEST(optimizer_keys_of_another_type_are_contradictions)
{
    expect_config_error(BASE "optimizer: {type: sgd, beta1: 0.8}\n",
                        "job.yaml:6:31: optimizer.beta1: only valid with optimizer type adam");
    expect_config_error(BASE "optimizer: {type: momentum, eps: 1e-6}\n",
                        "job.yaml:6:34: optimizer.eps: only valid with optimizer type adam or "
                        "adagrad");
    expect_config_error(BASE "optimizer: {type: adam, nesterov: true}\n",
                        "job.yaml:6:35: optimizer.nesterov: only valid with optimizer type "
                        "momentum");
    expect_config_error(BASE "optimizer: {type: adam, l1: 0.1}\n",
                        "job.yaml:6:29: optimizer.l1: only valid with optimizer type ftrl");
}
END_TEST

START_TEST(cosine_schedule_needs_total_steps)
{
    expect_config_error(BASE "optimizer: {schedule: {type: cosine}}\n",
                        "job.yaml:6:23: missing required key \"total_steps\" in "
                        "optimizer.schedule (schedule type cosine needs it)");
    expect_config_error(BASE "optimizer: {schedule: {total_steps: 100}}\n",
                        "job.yaml:6:37: optimizer.schedule.total_steps: only valid with schedule "
                        "type cosine");
    expect_config_error(BASE "optimizer: {schedule: {type: cosine, total_steps: 0}}\n",
                        "job.yaml:6:51: optimizer.schedule.total_steps: must be at least 1, got 0");
    expect_config_error(BASE "optimizer: {schedule: {type: cosine, total_steps: 100, "
                             "warmup_steps: 100}}\n",
                        "job.yaml:6:70: optimizer.schedule.warmup_steps (100) must be less than "
                        "optimizer.schedule.total_steps (100)");
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(BASE "optimizer: {schedule: {type: cosine, total_steps: 1000, "
                                "warmup_steps: 50}}\n",
                           &job, &err),
                     0);
    ck_assert_int_eq(job.optimizer.schedule, PS_SCHEDULE_COSINE);
    ck_assert_uint_eq(job.optimizer.total_steps, 1000);
    ck_assert_uint_eq(job.optimizer.warmup_steps, 50);
}
END_TEST

START_TEST(momentum_with_sgd_is_a_contradiction)
{
    expect_config_error(BASE "optimizer:\n"
                             "  type: sgd\n"
                             "  momentum: 0.9\n",
                        "job.yaml:8:13: optimizer.momentum: only valid with optimizer type "
                        "momentum");
}
END_TEST

START_TEST(checkpoint_section_is_validated)
{
    expect_config_error(BASE "checkpoint: {dir: ckpt, keep: 0}\n",
                        "job.yaml:6:31: checkpoint.keep: must be at least 1, got 0");
    expect_config_error(
        BASE "checkpoint: {dir: ckpt, every_seconds: 0}\n",
        "job.yaml:6:40: checkpoint.every_seconds: must be in (0, 3.1536e+07], got 0");
    ps_job job;
    ps_error err;
    const char *text = BASE "checkpoint: {dir: ckpt, every_seconds: 0.25, keep: 2}\n"
                            "heartbeat: {interval_ms: 100, timeout_ms: 1000, deadline_ms: 5000}\n"
                            "on_worker_loss: abort\n";
    ck_assert_int_eq(parse(text, &job, &err), 0);
    ck_assert_str_eq(job.checkpoint.dir, PS_TEST_DATA_DIR "/ckpt");
    ck_assert_double_eq(job.checkpoint.every_seconds, 0.25);
    ck_assert_uint_eq(job.checkpoint.keep, 2);
    ck_assert_uint_eq(job.heartbeat.interval_ms, 100);
    ck_assert_uint_eq(job.heartbeat.timeout_ms, 1000);
    ck_assert_uint_eq(job.heartbeat.deadline_ms, 5000);
    ck_assert_int_eq(job.on_worker_loss, PS_LOSS_ABORT);
}
END_TEST

/* BASE with two servers on one host, and a metrics section */
#define TWO_SHARDS(m)                                                                              \
    "job: t\n"                                                                                     \
    "workers: 2\n"                                                                                 \
    "servers: [tcp://127.0.0.1:7070, tcp://127.0.0.1:7071]\n"                                      \
    "model: {type: logistic, features: 30}\n"                                                      \
    "data: {train: breast_cancer.train.csv}\n"                                                     \
    "metrics: " m "\n"

START_TEST(metrics_listen_gives_each_shard_an_address)
{
    ps_job job;
    ps_error err;
    /* one address: shard i listens on its port + i */
    ck_assert_int_eq(parse(TWO_SHARDS("{listen: 127.0.0.1:9464}"), &job, &err), 0);
    ck_assert_str_eq(job.metrics.listen[0], "127.0.0.1:9464");
    ck_assert_str_eq(job.metrics.listen[1], "127.0.0.1:9465");
    ck_assert_str_eq(job.metrics.listen[2], "");
    /* a list: one per server, as written */
    ck_assert_int_eq(parse(TWO_SHARDS("{listen: [0.0.0.0:9100, 0.0.0.0:9200]}"), &job, &err), 0);
    ck_assert_str_eq(job.metrics.listen[0], "0.0.0.0:9100");
    ck_assert_str_eq(job.metrics.listen[1], "0.0.0.0:9200");
    /* shards on different hosts may use the same address */
    const char *apart = "job: t\nworkers: 2\nservers: [tcp://10.0.0.1:7070, tcp://10.0.0.2:7070]\n"
                        "model: {type: logistic, features: 30}\n"
                        "data: {train: breast_cancer.train.csv}\n"
                        "metrics: {listen: [0.0.0.0:9464, 0.0.0.0:9464]}\n";
    ck_assert_int_eq(parse(apart, &job, &err), 0);
    ck_assert_str_eq(job.metrics.listen[1], "0.0.0.0:9464");
}
END_TEST

START_TEST(metrics_listen_must_fit_the_servers)
{
    expect_config_error(TWO_SHARDS("{listen: [127.0.0.1:9100]}"),
                        "job.yaml:6:19: metrics.listen: 1 addresses for 2 servers; list one per "
                        "server, or give one address (shard i then listens on its port + i)");
    expect_config_error(TWO_SHARDS("{listen: [127.0.0.1:9100, 127.0.0.1:9100]}"),
                        "job.yaml:6:36: metrics.listen[1]: \"127.0.0.1:9100\" is shard 0's too, "
                        "and both shards run on 127.0.0.1");
    expect_config_error(TWO_SHARDS("{listen: 127.0.0.1:65535}"),
                        "job.yaml:6:19: metrics.listen: port 65535 + 1 for shard 1 is past "
                        "65535; list one address per server");
    expect_config_error(TWO_SHARDS("{listen: 127.0.0.1:7069}"),
                        "job.yaml:6:19: metrics.listen: shard 1's \"127.0.0.1:7070\" is the "
                        "endpoint of servers[0]");
    expect_config_error(TWO_SHARDS("{listen: {port: 9100}}"),
                        "job.yaml:6:19: metrics.listen: expected host:port or a list of them, one "
                        "per server, got a mapping");
}
END_TEST

START_TEST(security_curve_paths_resolve_against_the_job_file)
{
    ps_job job;
    ps_error err;
    const char *text = BASE "security:\n"
                            "  curve:\n"
                            "    server_public_key: keys/psd.key\n"
                            "    client_secret_key: keys/w.key_secret\n"
                            "    authorized_workers: keys/workers/\n";
    ck_assert_int_eq(parse(text, &job, &err), 0);
    ck_assert(job.security.curve);
    ck_assert_str_eq(job.security.server_public_key, PS_TEST_DATA_DIR "/keys/psd.key");
    ck_assert_str_eq(job.security.client_secret_key, PS_TEST_DATA_DIR "/keys/w.key_secret");
    ck_assert_str_eq(job.security.authorized_workers, PS_TEST_DATA_DIR "/keys/workers/");
    ck_assert_str_eq(job.security.server_secret_key, "");
    ck_assert_str_eq(job.security.authorized_admins, "");
    expect_config_error(BASE "security: {curve: {}}\n",
                        "job.yaml:6:19: security.curve: give the key files (server_secret_key, "
                        "server_public_key, client_secret_key, authorized_workers, "
                        "authorized_admins)");
    expect_config_error(BASE "security: {curve: {authorized_keys: k/w}}\n",
                        "job.yaml:6:20: unknown key \"authorized_keys\" in security.curve (did "
                        "you mean \"authorized_workers\"?)");
}
END_TEST

START_TEST(heartbeat_timeout_must_exceed_interval)
{
    expect_config_error(BASE "heartbeat: {interval_ms: 500, timeout_ms: 500}\n",
                        "job.yaml:6:43: heartbeat.timeout_ms (500) must be greater than "
                        "heartbeat.interval_ms (500)");
}
END_TEST

START_TEST(metrics_listen_must_be_host_port)
{
    expect_config_error(BASE "metrics: {listen: localhost}\n",
                        "job.yaml:6:19: metrics.listen: \"localhost\" is not host:port");
    expect_config_error(BASE "metrics: {listen: \"127.0.0.1:http\"}\n",
                        "job.yaml:6:19: metrics.listen: \"127.0.0.1:http\" is not host:port (a "
                        "port from 1 to 65535)");
    expect_config_error(BASE "metrics: {listen: \"127.0.0.1:65536\"}\n",
                        "job.yaml:6:19: metrics.listen: \"127.0.0.1:65536\" has a port past 65535");
}
END_TEST

START_TEST(metrics_listen_port_0_says_why_not)
{
    expect_config_error(BASE "metrics: {listen: \"127.0.0.1:0\"}\n",
                        "job.yaml:6:19: metrics.listen: \"127.0.0.1:0\" has port 0, which would "
                        "let the system pick one that Prometheus cannot know: give a port from 1 "
                        "to 65535");
}
END_TEST

START_TEST(bad_on_worker_loss_lists_the_valid_ones)
{
    expect_config_error(BASE "on_worker_loss: retry\n",
                        "job.yaml:6:17: on_worker_loss: \"retry\" is not one of continue, abort");
}
END_TEST

START_TEST(duplicate_key_names_the_first)
{
    expect_config_error(BASE "workers: 3\n",
                        "job.yaml:6:1: duplicate key \"workers\" (first at 2:1)");
}
END_TEST

START_TEST(duplicate_key_in_section_is_an_error)
{
    expect_config_error(BASE "optimizer:\n"
                             "  lr: 0.1\n"
                             "  lr: 0.2\n",
                        "job.yaml:8:3: duplicate key \"optimizer.lr\" (first at 7:3)");
}
END_TEST

START_TEST(missing_required_key_points_at_parent_mapping)
{
    expect_config_error("job: t\n"
                        "servers: [tcp://127.0.0.1:7070]\n"
                        "model: {type: logistic, features: 30}\n"
                        "data: {train: breast_cancer.train.csv}\n",
                        "job.yaml:1:1: missing required key \"workers\"");
}
END_TEST

START_TEST(missing_required_key_in_section_points_at_section)
{
    expect_config_error("job: t\n"
                        "workers: 2\n"
                        "servers: [tcp://127.0.0.1:7070]\n"
                        "model:\n"
                        "  type: logistic\n"
                        "data: {train: breast_cancer.train.csv}\n",
                        "job.yaml:5:3: missing required key \"features\" in model");
}
END_TEST

START_TEST(null_for_a_required_key_is_an_error)
{
    expect_config_error("job: t\n"
                        "workers: ~\n",
                        "job.yaml:2:10: workers: required, cannot be null");
}
END_TEST

START_TEST(hidden_with_logistic_is_a_contradiction)
{
    expect_config_error("job: t\n"
                        "workers: 2\n"
                        "servers: [tcp://127.0.0.1:7070]\n"
                        "model: {type: logistic, features: 30, hidden: [8]}\n"
                        "data: {train: breast_cancer.train.csv}\n",
                        "job.yaml:4:47: model.hidden: only valid with model type mlp");
}
END_TEST

START_TEST(classes_with_linear_is_a_contradiction)
{
    expect_config_error("job: t\n"
                        "workers: 2\n"
                        "servers: [tcp://127.0.0.1:7070]\n"
                        "model: {type: linear, features: 30, classes: 2}\n"
                        "data: {train: breast_cancer.train.csv}\n",
                        "job.yaml:4:46: model.classes: only valid with model type softmax or mlp");
}
END_TEST

START_TEST(logistic_has_two_classes)
{
    expect_config_error("job: t\n"
                        "workers: 2\n"
                        "servers: [tcp://127.0.0.1:7070]\n"
                        "model: {type: logistic, features: 30, classes: 3}\n"
                        "data: {train: breast_cancer.train.csv}\n",
                        "job.yaml:4:48: model.classes: must be 2 for model type logistic, got 3");
}
END_TEST

START_TEST(softmax_and_mlp_need_classes_and_mlp_needs_hidden)
{
    expect_config_error("job: t\n"
                        "workers: 2\n"
                        "servers: [tcp://127.0.0.1:7070]\n"
                        "model: {type: softmax, features: 30}\n"
                        "data: {train: breast_cancer.train.csv}\n",
                        "job.yaml:4:8: missing required key \"classes\" in model "
                        "(model type softmax needs it)");
    expect_config_error("job: t\n"
                        "workers: 2\n"
                        "servers: [tcp://127.0.0.1:7070]\n"
                        "model: {type: mlp, features: 30, classes: 2}\n"
                        "data: {train: breast_cancer.train.csv}\n",
                        "job.yaml:4:8: missing required key \"hidden\" in model "
                        "(model type mlp needs it)");
    expect_config_error("job: t\n"
                        "workers: 2\n"
                        "servers: [tcp://127.0.0.1:7070]\n"
                        "model: {type: softmax, features: 30, classes: 1}\n"
                        "data: {train: breast_cancer.train.csv}\n",
                        "job.yaml:4:47: model.classes: must be between 2 and 1048576, got 1");
    ps_job job;
    ps_error err;
    const char *softmax = "job: t\n"
                          "workers: 2\n"
                          "servers: [tcp://127.0.0.1:7070]\n"
                          "model: {type: softmax, features: 30, classes: 2}\n"
                          "data: {train: breast_cancer.train.csv}\n";
    ck_assert_int_eq(parse(softmax, &job, &err), 0);
    ck_assert_int_eq(job.model.type, PS_MODEL_SOFTMAX);
    ck_assert_uint_eq(job.model.classes, 2);
    const char *mlp = "job: t\n"
                      "workers: 2\n"
                      "servers: [tcp://127.0.0.1:7070]\n"
                      "model: {type: mlp, features: 30, classes: 2, hidden: [16, 8]}\n"
                      "data: {train: breast_cancer.train.csv}\n";
    ck_assert_int_eq(parse(mlp, &job, &err), 0);
    ck_assert_int_eq(job.model.type, PS_MODEL_MLP);
    ck_assert_uint_eq(job.model.nhidden, 2);
    ck_assert_uint_eq(job.model.hidden[0], 16);
    ck_assert_uint_eq(job.model.hidden[1], 8);
}
END_TEST

START_TEST(backup_workers_must_be_fewer_than_workers)
{
    expect_config_error(BASE "backup_workers: 2\n",
                        "job.yaml:6:17: backup_workers: must be less than workers (2), got 2");
}
END_TEST

START_TEST(dynamic_assignment_is_for_async_and_ssp)
{
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(BASE "mode: async\n", &job, &err), 0);
    ck_assert_int_eq(job.data.assign, PS_ASSIGN_STATIC); /* the default */
    ck_assert_int_eq(
        parse(BASE_DATA("{train: breast_cancer.train.csv, assign: dynamic}") "mode: ssp\n", &job,
              &err),
        0);
    ck_assert_int_eq(job.data.assign, PS_ASSIGN_DYNAMIC);
    expect_config_error(BASE_DATA("{train: breast_cancer.train.csv, assign: dynamic}"),
                        "job.yaml:5:48: data.assign: dynamic needs mode async or ssp, not sync (a "
                        "sync round waits for every worker: use backup_workers for stragglers)");
    expect_config_error(
        BASE_DATA(
            "{train: breast_cancer.train.csv, assign: dynamic}") "mode: async\n"
                                                                 "training: {local_steps: 4}\n",
        "job.yaml:5:48: data.assign: dynamic trains one batch a push, not local SGD "
        "(training.local_steps 4)");
    ps_error_clear(&err);
    ck_assert_int_ne(
        parse(BASE_DATA("{train: breast_cancer.train.csv, assign: dynamc}"), &job, &err), 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "job.yaml:5:48: "));
    ck_assert_ptr_nonnull(strstr(err.msg, "dynamc"));
    ck_assert_ptr_nonnull(strstr(err.msg, "dynamic"));
}
END_TEST

START_TEST(backup_workers_and_deterministic_are_loaded_for_sync)
{
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(BASE "backup_workers: 1\n"
                                "deterministic: true\n",
                           &job, &err),
                     0);
    ck_assert_int_eq(job.mode, PS_MODE_SYNC);
    ck_assert_uint_eq(job.backup_workers, 1);
    ck_assert(job.deterministic);
    expect_config_error(BASE "mode: async\n"
                             "backup_workers: 1\n",
                        "job.yaml:7:17: backup_workers: only valid with mode sync");
    expect_config_error(BASE "mode: ssp\n"
                             "deterministic: true\n",
                        "job.yaml:7:16: deterministic: only valid with mode sync");
}
END_TEST

START_TEST(local_sgd_is_loaded_with_its_own_lr)
{
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(BASE
                           "training: {local_steps: 8, local_optimizer: {type: sgd, lr: 0.05}}\n",
                           &job, &err),
                     0);
    ck_assert_uint_eq(job.training.local_steps, 8);
    ck_assert_int_eq(job.training.local_optim, PS_OPTIM_SGD);
    ck_assert_double_eq(job.training.local_lr, 0.05);
    /* no local optimizer: its lr is the job's (0 here) */
    ck_assert_int_eq(parse(BASE "mode: async\ntraining: {local_steps: 4}\n", &job, &err), 0);
    ck_assert_uint_eq(job.training.local_steps, 4);
    ck_assert_double_eq(job.training.local_lr, 0);
}
END_TEST

START_TEST(local_optimizer_other_than_sgd_is_not_supported_yet)
{
    expect_unsupported(BASE "training: {local_steps: 8, local_optimizer: {type: adam}}\n",
                       "job.yaml:6:52: training.local_optimizer.type adam is not supported yet");
}
END_TEST

START_TEST(local_optimizer_needs_local_steps_and_a_positive_lr)
{
    expect_config_error(BASE "training: {local_optimizer: {lr: 0.05}}\n",
                        "job.yaml:6:29: training.local_optimizer: only valid with "
                        "training.local_steps above 1");
    expect_config_error(BASE "training: {local_steps: 2, local_optimizer: {lr: 0}}\n",
                        "job.yaml:6:50: training.local_optimizer.lr: must be > 0, got 0");
}
END_TEST

START_TEST(compression_is_chosen_per_direction)
{
    ps_job job;
    ps_error err;
    ck_assert_int_eq(
        parse(BASE "compression: {push: topk, pull: fp16, topk_ratio: 0.1}\n", &job, &err), 0);
    ck_assert_int_eq(job.compression.push, PS_COMPRESS_TOPK);
    ck_assert_int_eq(job.compression.pull, PS_COMPRESS_FP16);
    ck_assert_double_eq(job.compression.topk_ratio, 0.1);
    ck_assert(job.compression.error_feedback);
    ck_assert_int_eq(parse(BASE "compression: {push: bf16, pull: int8}\n", &job, &err), 0);
    ck_assert_int_eq(job.compression.push, PS_COMPRESS_BF16);
    ck_assert_int_eq(job.compression.pull, PS_COMPRESS_INT8);
    ck_assert(!job.compression.error_feedback);
    ck_assert_int_eq(parse(BASE "compression: {push: int8, error_feedback: false}\n", &job, &err),
                     0);
    ck_assert(!job.compression.error_feedback);
}
END_TEST

START_TEST(compression_settings_out_of_range_are_refused)
{
    expect_config_error(BASE "compression: {push: topk, topk_ratio: 1.5}\n",
                        "job.yaml:6:39: compression.topk_ratio: must be in (0, 1], got 1.5");
    expect_config_error(BASE "compression: {push: none, topk_ratio: 0.5}\n",
                        "job.yaml:6:39: compression.topk_ratio: only valid with compression push "
                        "topk");
    expect_config_error(BASE "compression: {pull: topk}\n",
                        "job.yaml:6:21: compression.pull: \"topk\" is not one of none, fp16, "
                        "bf16, int8");
}
END_TEST

START_TEST(invalid_endpoint_is_an_error)
{
    expect_config_error("job: t\n"
                        "workers: 2\n"
                        "servers: [http://127.0.0.1:7070]\n",
                        "job.yaml:3:11: servers[0]: \"http://127.0.0.1:7070\" is not an endpoint "
                        "(tcp://host:port or ipc://path)");
    expect_config_error("job: t\n"
                        "workers: 2\n"
                        "servers: [tcp://127.0.0.1]\n",
                        "job.yaml:3:11: servers[0]: \"tcp://127.0.0.1\" is not an endpoint "
                        "(tcp://host:port or ipc://path)");
    expect_config_error("job: t\n"
                        "workers: 2\n"
                        "servers: [tcp://127.0.0.1:0]\n",
                        "job.yaml:3:11: servers[0]: \"tcp://127.0.0.1:0\" has port 0: workers "
                        "need the port to connect to; give one from 1 to 65535");
}
END_TEST

START_TEST(duplicate_endpoint_is_an_error)
{
    expect_config_error("job: t\n"
                        "workers: 2\n"
                        "servers:\n"
                        "  - tcp://127.0.0.1:7070\n"
                        "  - tcp://127.0.0.1:7070\n",
                        "job.yaml:5:5: servers[1]: \"tcp://127.0.0.1:7070\" is listed twice "
                        "(first at 4:5)");
}
END_TEST

START_TEST(empty_server_list_is_an_error)
{
    expect_config_error("job: t\n"
                        "workers: 2\n"
                        "servers: []\n",
                        "job.yaml:3:10: servers: must list at least one endpoint");
}
END_TEST

START_TEST(more_shards_than_parameters_is_an_error)
{
    expect_config_error("job: t\n"
                        "workers: 2\n"
                        "servers: [tcp://h:1, tcp://h:2, tcp://h:3]\n"
                        "model: {type: logistic, features: 1}\n"
                        "data: {train: breast_cancer.train.csv}\n",
                        "job.yaml:3:10: servers: 3 shards for 2 parameters; each shard needs at "
                        "least one");
}
END_TEST

START_TEST(bad_job_name_is_an_error)
{
    expect_config_error("job: my job\n",
                        "job.yaml:1:6: job: \"my job\" may only contain letters, digits, '.', '_' "
                        "and '-'");
    expect_config_error("job: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
                        "job.yaml:1:6: job: must be at most 63 bytes, got 64");
    expect_config_error("job: ..\n", "job.yaml:1:6: job: \"..\" is not a name");
}
END_TEST

START_TEST(yaml_syntax_error_gives_libyaml_problem_and_position)
{
    expect_config_error("job: t\n"
                        "workers: [2\n"
                        "servers: []\n",
                        "job.yaml:3:8: did not find expected ',' or ']' "
                        "(while parsing a flow sequence at 2:10)");
}
END_TEST

START_TEST(tab_indentation_is_a_syntax_error)
{
    expect_config_error("job: t\n"
                        "model:\n"
                        "\ttype: linear\n",
                        "job.yaml:3:1: found character that cannot start any token "
                        "(while scanning for the next token at 3:1)");
}
END_TEST

START_TEST(invalid_utf8_is_an_error_with_position)
{
    expect_config_error("job: t\n"
                        "workers: \xff\n",
                        "job.yaml:2:10: invalid leading UTF-8 octet");
}
END_TEST

START_TEST(empty_file_is_an_error)
{
    expect_config_error("", "job.yaml:1:1: the job file is empty");
    expect_config_error("# only a comment\n", "job.yaml:1:1: the job file is empty");
}
END_TEST

START_TEST(top_level_must_be_a_mapping)
{
    expect_config_error("- a\n"
                        "- b\n",
                        "job.yaml:1:1: the job file must be a mapping of keys, got a list");
    expect_config_error("just words\n",
                        "job.yaml:1:1: the job file must be a mapping of keys, got \"just words\"");
}
END_TEST

START_TEST(second_document_is_an_error)
{
    expect_config_error(BASE "---\n"
                             "job: u\n",
                        "job.yaml:6:1: a job file holds one YAML document, not more");
}
END_TEST

START_TEST(key_must_be_a_name)
{
    expect_config_error(BASE "[a]: 1\n", "job.yaml:6:1: a key must be a name, got a list");
}
END_TEST

START_TEST(label_column_with_libsvm_is_a_contradiction)
{
    expect_config_error("job: t\n"
                        "workers: 2\n"
                        "servers: [tcp://127.0.0.1:7070]\n"
                        "model: {type: logistic, features: 30}\n"
                        "data:\n"
                        "  train: breast_cancer.train.libsvm\n"
                        "  format: libsvm\n"
                        "  label_column: 0\n",
                        "job.yaml:8:17: data.label_column: only valid with format csv");
}
END_TEST

START_TEST(label_column_past_the_last_column_is_an_error)
{
    expect_config_error(BASE_DATA("{train: breast_cancer.train.csv, label_column: 31}"),
                        "job.yaml:5:54: data.label_column: must be at most model.features (30), "
                        "got 31");
}
END_TEST

START_TEST(labels_file_without_idx_is_a_contradiction)
{
    expect_config_error(BASE_DATA("{train: breast_cancer.train.csv, train_labels: l.idx}"),
                        "job.yaml:5:54: data.train_labels: only valid with format idx");
}
END_TEST

START_TEST(idx_labels_files_are_resolved_and_checked)
{
    /* the loader checks that the files exist; their contents are the reader's */
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(BASE_DATA("{train: breast_cancer.train.csv, format: idx}"), &job, &err),
                     0);
    ck_assert_int_eq(job.data.format, PS_FORMAT_IDX);
    ck_assert_str_eq(job.data.train_labels, "");
    ck_assert_int_eq(parse(BASE_DATA("{train: breast_cancer.train.csv, format: idx, "
                                     "train_labels: breast_cancer.test.csv}"),
                           &job, &err),
                     0);
    ck_assert_str_eq(job.data.train_labels, PS_TEST_DATA_DIR "/breast_cancer.test.csv");
    expect_config_error(BASE_DATA("{train: breast_cancer.train.csv, format: idx, "
                                  "test_labels: gone.idx}"),
                        "job.yaml:5:53: data.test_labels: cannot read " PS_TEST_DATA_DIR
                        "/gone.idx: No such file or directory");
}
END_TEST

START_TEST(step_schedule_needs_step_size)
{
    expect_config_error(BASE "optimizer: {schedule: {type: step}}\n",
                        "job.yaml:6:23: missing required key \"step_size\" in optimizer.schedule "
                        "(schedule type step needs it)");
    expect_config_error(BASE "optimizer: {schedule: {step_size: 100}}\n",
                        "job.yaml:6:35: optimizer.schedule.step_size: only valid with schedule "
                        "type step");
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(BASE "optimizer: {schedule: {type: step, step_size: 100, gamma: 0.5, "
                                "warmup_steps: 20}}\n",
                           &job, &err),
                     0);
    ck_assert_int_eq(job.optimizer.schedule, PS_SCHEDULE_STEP);
    ck_assert_uint_eq(job.optimizer.step_size, 100);
    ck_assert_double_eq(job.optimizer.gamma, 0.5);
    ck_assert_uint_eq(job.optimizer.warmup_steps, 20);
}
END_TEST

#define CUSTOM_HEAD                                                                                \
    "job: t\n"                                                                                     \
    "workers: 2\n"                                                                                 \
    "servers: [tcp://127.0.0.1:7070]\n"                                                            \
    "model:\n"                                                                                     \
    "  type: custom\n"                                                                             \
    "  tensors: [{name: w, shape: [4, 2]}, {name: b, shape: [2]}]\n"                               \
    "data: {train: breast_cancer.train.csv}\n"

START_TEST(custom_model_needs_a_worker_command)
{
    expect_config_error(CUSTOM_HEAD,
                        "job.yaml:5:9: model type custom needs worker.command (psworker has no "
                        "trainer for it: name the program that computes its gradients)");
}
END_TEST

START_TEST(custom_model_with_a_worker_command_loads)
{
    ps_job job;
    ps_error err;
    /* features may be left out: the worker program reads its own inputs */
    int rc =
        parse(CUSTOM_HEAD "worker: {command: [python3, train.py, --epochs, '3']}\n", &job, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    ck_assert_int_eq(job.model.type, PS_MODEL_CUSTOM);
    ck_assert_uint_eq(job.worker.argc, 4);
    ck_assert_str_eq(job.worker.argv[0], "python3"); /* a bare name: found on PATH */
    ck_assert_str_eq(job.worker.argv[1], "train.py");
    ck_assert_str_eq(job.worker.argv[3], "3");
    ps_tensor_info t[PS_MAX_TENSORS];
    size_t n;
    uint64_t p;
    ck_assert_int_eq(ps_job_layout(&job, t, PS_MAX_TENSORS, &n, &p), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(p, 10);
}
END_TEST

START_TEST(worker_command_program_with_a_slash_is_resolved)
{
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(BASE "worker: {command: [bin/train, a/b]}\n", &job, &err), 0);
    ck_assert_str_eq(job.worker.argv[0], PS_TEST_DATA_DIR "/bin/train");
    ck_assert_str_eq(job.worker.argv[1], "a/b"); /* later items: the job's folder is the cwd */
    ck_assert_int_eq(parse(BASE "worker: {command: [/usr/bin/python3]}\n", &job, &err), 0);
    ck_assert_str_eq(job.worker.argv[0], "/usr/bin/python3");
    ck_assert_int_eq(parse(BASE, &job, &err), 0);
    ck_assert_uint_eq(job.worker.argc, 0); /* no worker section: psworker */
}
END_TEST

START_TEST(worker_command_must_be_a_non_empty_list_of_strings)
{
    expect_config_error(BASE "worker: {command: []}\n",
                        "job.yaml:6:19: worker.command: must list at least one item");
    expect_config_error(BASE "worker: {command: python3 train.py}\n",
                        "job.yaml:6:19: worker.command: expected a list, got \"python3 train.py\"");
    expect_config_error(BASE "worker: {command: [python3, [a]]}\n",
                        "job.yaml:6:29: worker.command[1]: expected a string, got a list");
    expect_config_error(BASE "worker: {command: [python3, '']}\n",
                        "job.yaml:6:29: worker.command[1]: must not be empty");
    expect_config_error(BASE "worker: {}\n",
                        "job.yaml:6:9: missing required key \"command\" in worker");
    expect_config_error(BASE "worker: {comand: [a]}\n",
                        "job.yaml:6:10: unknown key \"comand\" in worker (did you mean "
                        "\"command\"?)");
}
END_TEST

START_TEST(alias_cycle_is_a_type_error_not_a_hang)
{
    expect_config_error("job: t\n"
                        "workers: 2\n"
                        "servers: &s [*s]\n",
                        /* an alias stands for its node, which starts at 3:10 */
                        "job.yaml:3:10: servers[0]: expected a string, got a list");
}
END_TEST

START_TEST(custom_tensor_names_must_differ)
{
    expect_config_error(
        "job: t\n"
        "workers: 2\n"
        "servers: [tcp://127.0.0.1:7070]\n"
        "model:\n"
        "  type: custom\n"
        "  features: 4\n"
        "  tensors:\n"
        "    - {name: w, shape: [4, 2]}\n"
        "    - {name: w, shape: [2]}\n",
        "job.yaml:9:14: model.tensors[1].name: \"w\" is used twice (first at 8:14)");
}
END_TEST

START_TEST(custom_tensor_has_at_most_four_dimensions)
{
    expect_config_error("job: t\n"
                        "workers: 2\n"
                        "servers: [tcp://127.0.0.1:7070]\n"
                        "model:\n"
                        "  type: custom\n"
                        "  features: 4\n"
                        "  tensors: [{name: w, shape: [1, 2, 3, 4, 5]}]\n",
                        "job.yaml:7:30: model.tensors[0].shape: must list 1 to 4 dimensions, "
                        "got 5");
}
END_TEST

/* ---- valid files ---- */

START_TEST(full_job_parses_with_its_values)
{
    const char *text = "# a job with every supported key\n"
                       "job: full-job.1\n"
                       "mode: async\n"
                       "backup_workers: 0\n"
                       "deterministic: false\n"
                       "workers: 4\n"
                       "servers:\n"
                       "  - tcp://127.0.0.1:7070\n"
                       "  - ipc:///tmp/psd-shard-1\n"
                       "model:\n"
                       "  type: logistic\n"
                       "  features: 30\n"
                       "  classes: 2\n"
                       "  init: {scheme: normal, seed: 99}\n"
                       "data:\n"
                       "  train: breast_cancer.train.csv\n"
                       "  test: breast_cancer.test.csv\n"
                       "  format: csv\n"
                       "  label_column: 0\n"
                       "  normalize: none\n"
                       "  shard: block\n"
                       "optimizer:\n"
                       "  type: sgd\n"
                       "  lr: 2.5e-2\n"
                       "  l2: 0.001\n"
                       "  schedule: {type: constant}\n"
                       "training: {epochs: 20, batch_size: 64, local_steps: 1, seed: 11}\n"
                       "compression: {push: none}\n"
                       "output: out/full\n"
                       "log: {level: debug}\n";
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(text, &job, &err), 0);
    ck_assert_int_eq(err.code, 0);
    ck_assert_str_eq(job.path, "job.yaml");
    ck_assert_str_eq(job.dir, PS_TEST_DATA_DIR);
    ck_assert_str_eq(job.name, "full-job.1");
    ck_assert_int_eq(job.mode, PS_MODE_ASYNC);
    ck_assert_uint_eq(job.backup_workers, 0);
    ck_assert(!job.deterministic);
    ck_assert_uint_eq(job.workers, 4);
    ck_assert_uint_eq(job.nservers, 2);
    ck_assert_str_eq(job.servers[0], "tcp://127.0.0.1:7070");
    ck_assert_str_eq(job.servers[1], "ipc:///tmp/psd-shard-1");
    ck_assert_int_eq(job.model.type, PS_MODEL_LOGISTIC);
    ck_assert_uint_eq(job.model.features, 30);
    ck_assert_uint_eq(job.model.classes, 2);
    ck_assert_int_eq(job.model.init_scheme, PS_INIT_NORMAL);
    ck_assert_uint_eq(job.model.init_seed, 99);
    ck_assert_str_eq(job.data.train, PS_TEST_DATA_DIR "/breast_cancer.train.csv");
    ck_assert_str_eq(job.data.test, PS_TEST_DATA_DIR "/breast_cancer.test.csv");
    ck_assert_int_eq(job.data.format, PS_FORMAT_CSV);
    ck_assert_uint_eq(job.data.label_column, 0);
    ck_assert_int_eq(job.data.normalize, PS_NORMALIZE_NONE);
    ck_assert_int_eq(job.data.shard, PS_SHARD_BLOCK);
    ck_assert_int_eq(job.optimizer.type, PS_OPTIM_SGD);
    ck_assert_double_eq(job.optimizer.lr, 0.025);
    ck_assert_double_eq(job.optimizer.l2, 0.001);
    ck_assert_int_eq(job.optimizer.schedule, PS_SCHEDULE_CONSTANT);
    ck_assert_uint_eq(job.training.epochs, 20);
    ck_assert_uint_eq(job.training.batch_size, 64);
    ck_assert_uint_eq(job.training.local_steps, 1);
    ck_assert_uint_eq(job.training.seed, 11);
    ck_assert_int_eq(job.compression.push, PS_COMPRESS_NONE);
    ck_assert_str_eq(job.output, PS_TEST_DATA_DIR "/out/full");
    ck_assert_int_eq(job.log_level, PS_LOG_DEBUG);
}
END_TEST

START_TEST(absent_keys_take_their_defaults)
{
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(BASE, &job, &err), 0);
    ck_assert_int_eq(job.mode, PS_MODE_SYNC);
    ck_assert_uint_eq(job.staleness, 0);
    ck_assert_uint_eq(job.backup_workers, 0);
    ck_assert(!job.deterministic);
    ck_assert_uint_eq(job.model.classes, 0);
    ck_assert_uint_eq(job.model.nhidden, 0);
    ck_assert_uint_eq(job.model.ntensors, 0);
    ck_assert_int_eq(job.model.init_scheme, PS_INIT_XAVIER);
    ck_assert_uint_eq(job.model.init_seed, 42);
    ck_assert_str_eq(job.data.test, "");
    ck_assert_int_eq(job.data.format, PS_FORMAT_CSV);
    ck_assert_str_eq(job.data.train_labels, "");
    ck_assert_uint_eq(job.data.label_column, 0);
    ck_assert_int_eq(job.data.normalize, PS_NORMALIZE_STANDARD);
    ck_assert_int_eq(job.data.shard, PS_SHARD_STRIDE);
    ck_assert_int_eq(job.optimizer.type, PS_OPTIM_SGD);
    ck_assert_double_eq(job.optimizer.lr, 0.1);
    ck_assert_double_eq(job.optimizer.l2, 0.0);
    ck_assert(!job.optimizer.nesterov);
    ck_assert_int_eq(job.optimizer.schedule, PS_SCHEDULE_CONSTANT);
    ck_assert_uint_eq(job.optimizer.warmup_steps, 0);
    ck_assert_uint_eq(job.training.epochs, 10);
    ck_assert_uint_eq(job.training.batch_size, 32);
    ck_assert_uint_eq(job.training.local_steps, 1);
    ck_assert_uint_eq(job.training.seed, 7);
    ck_assert_int_eq(job.compression.push, PS_COMPRESS_NONE);
    ck_assert_uint_eq(job.heartbeat.interval_ms, 500);
    ck_assert_uint_eq(job.heartbeat.timeout_ms, 3000);
    ck_assert_int_eq(job.on_worker_loss, PS_LOSS_CONTINUE);
    ck_assert_str_eq(job.checkpoint.dir, "");
    ck_assert_str_eq(job.security.server_secret_key, "");
    ck_assert_str_eq(job.metrics.listen[0], "");
    ck_assert_str_eq(job.output, "");
    ck_assert_int_eq(job.log_level, PS_LOG_INFO);
}
END_TEST

START_TEST(null_and_tilde_mean_absent)
{
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(BASE "mode: null\n"
                                "staleness: ~\n"
                                "optimizer: {lr: ~, momentum: null}\n"
                                "checkpoint: ~\n"
                                "output:\n",
                           &job, &err),
                     0);
    ck_assert_int_eq(job.mode, PS_MODE_SYNC);
    ck_assert_double_eq(job.optimizer.lr, 0.1);
    ck_assert_str_eq(job.checkpoint.dir, "");
    ck_assert_str_eq(job.output, "");
}
END_TEST

START_TEST(block_and_flow_styles_give_the_same_job)
{
    ps_job a, b;
    ps_error err;
    ck_assert_int_eq(parse("job: t\n"
                           "workers: 2\n"
                           "servers: [tcp://127.0.0.1:7070, tcp://127.0.0.1:7071]\n"
                           "model: {type: linear, features: 30, init: {scheme: zeros, seed: 5}}\n"
                           "data: {train: breast_cancer.train.csv}\n",
                           &a, &err),
                     0);
    ck_assert_int_eq(parse("job: t\n"
                           "workers: 2\n"
                           "servers:\n"
                           "  - tcp://127.0.0.1:7070\n"
                           "  - \"tcp://127.0.0.1:7071\"\n"
                           "model:\n"
                           "  type: linear\n"
                           "  features: 30\n"
                           "  init:\n"
                           "    scheme: zeros\n"
                           "    seed: 5\n"
                           "data:\n"
                           "  train: 'breast_cancer.train.csv'\n",
                           &b, &err),
                     0);
    ck_assert_int_eq(memcmp(&a, &b, sizeof a), 0);
    ck_assert_uint_eq(a.nservers, 2);
    ck_assert_int_eq(a.model.init_scheme, PS_INIT_ZEROS);
    ck_assert_uint_eq(a.model.init_seed, 5);
}
END_TEST

START_TEST(relative_paths_resolve_against_the_job_folder)
{
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse("job: t\n"
                           "workers: 1\n"
                           "servers: [tcp://127.0.0.1:7070]\n"
                           "model: {type: logistic, features: 30}\n"
                           "data:\n"
                           "  train: ./breast_cancer.train.csv\n"
                           "  test: " PS_TEST_DATA_DIR "/breast_cancer.test.csv\n"
                           "output: results/run1\n",
                           &job, &err),
                     0);
    ck_assert_str_eq(job.data.train, PS_TEST_DATA_DIR "/breast_cancer.train.csv");
    ck_assert_str_eq(job.data.test, PS_TEST_DATA_DIR "/breast_cancer.test.csv");
    ck_assert_str_eq(job.output, PS_TEST_DATA_DIR "/results/run1");
}
END_TEST

START_TEST(libsvm_job_parses)
{
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse("job: t\n"
                           "workers: 2\n"
                           "servers: [tcp://127.0.0.1:7070]\n"
                           "model: {type: logistic, features: 30}\n"
                           "data: {train: breast_cancer.train.libsvm, format: libsvm}\n",
                           &job, &err),
                     0);
    ck_assert_int_eq(job.data.format, PS_FORMAT_LIBSVM);
}
END_TEST

START_TEST(error_is_cleared_on_success)
{
    ps_job job;
    ps_error err = {.code = PS_EIO, .msg = "stale"};
    ck_assert_int_eq(parse(BASE, &job, &err), 0);
    ck_assert_int_eq(err.code, 0);
    ck_assert_str_eq(err.msg, "");
}
END_TEST

/* ---- files ---- */

START_TEST(load_of_missing_file_says_cannot_open)
{
    ps_job job;
    ps_error err;
    ck_assert_int_eq(ps_job_load("/nonexistent/job.yaml", &job, &err), PS_ECONFIG);
    ck_assert_str_eq(err.msg, "/nonexistent/job.yaml: cannot open: No such file or directory");
}
END_TEST

START_TEST(load_of_a_folder_says_it_is_a_folder)
{
    ps_job job;
    ps_error err;
    ck_assert_int_eq(ps_job_load(PS_TEST_DATA_DIR, &job, &err), PS_ECONFIG);
    ck_assert_str_eq(err.msg, PS_TEST_DATA_DIR ": is a folder, not a job file");
}
END_TEST

/* ---- caps: inputs refused before they burn time or hang ---- */

/* A new empty folder under /tmp into dir (64 bytes). */
static void temp_dir(char *dir)
{
    strcpy(dir, "/tmp/test_job.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

START_TEST(job_file_that_is_a_fifo_or_device_is_refused_unread)
{
    /* nothing writes the FIFO: reading it would block for good, and
     * /dev/zero would be read up to the size cap */
    char dir[64], fifo[96];
    temp_dir(dir);
    snprintf(fifo, sizeof fifo, "%s/job.yaml", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    ps_job job;
    ps_error err;
    char want[256];
    ck_assert_int_eq(ps_job_load(fifo, &job, &err), PS_ECONFIG);
    snprintf(want, sizeof want, "%s: is a FIFO, not a job file", fifo);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(ps_job_load("/dev/zero", &job, &err), PS_ECONFIG);
    ck_assert_str_eq(err.msg, "/dev/zero: is a character device, not a job file");
    unlink(fifo);
    rmdir(dir);
}
END_TEST

START_TEST(data_file_that_is_a_fifo_is_refused_without_opening_it)
{
    /* psd loads the job too: it must never block on a data path */
    char dir[64], fifo[96], text[512], want[512];
    temp_dir(dir);
    snprintf(fifo, sizeof fifo, "%s/train.csv", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    snprintf(text, sizeof text, BASE_DATA("{train: %s}"), fifo);
    snprintf(want, sizeof want, "job.yaml:5:8: data.train: %s is a FIFO, not a file", fifo);
    expect_config_error(text, want);
    snprintf(text, sizeof text, BASE_DATA("{train: breast_cancer.train.csv, test: %s}"), fifo);
    snprintf(want, sizeof want, "job.yaml:5:40: data.test: %s is a FIFO, not a file", fifo);
    expect_config_error(text, want);
    unlink(fifo);
    rmdir(dir);
}
END_TEST

START_TEST(data_file_that_is_a_device_is_refused)
{
    expect_config_error(BASE_DATA("{train: /dev/zero}"),
                        "job.yaml:5:8: data.train: /dev/zero is a character device, not a file");
}
END_TEST

START_TEST(deep_nesting_is_refused_at_once_naming_where)
{
    /* 100 000 nested "[" (200 kB): libyaml alone spends ~40 s on it; the
     * cap refuses it at the 65th level, well inside the test's timeout */
    size_t n = 100000;
    char *text = malloc(2 * n + 1);
    ck_assert_ptr_nonnull(text);
    memset(text, '[', n);
    memset(text + n, ']', n);
    text[2 * n] = '\0';
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(text, &job, &err), PS_ECONFIG);
    ck_assert_str_eq(
        err.msg, "job.yaml:1:65: mappings and lists nested more than 64 deep; a job file needs 5");
    /* the same in block style, one mapping per line */
    size_t depth = 70, len = 0;
    char *block = malloc(depth * (2 * depth + 4) + 1);
    ck_assert_ptr_nonnull(block);
    for (size_t i = 0; i < depth; i++)
        len += (size_t)sprintf(block + len, "%*sk:\n", (int)i, "");
    ck_assert_int_eq(parse(block, &job, &err), PS_ECONFIG);
    ck_assert_str_eq(
        err.msg, "job.yaml:65:65: mappings and lists nested more than 64 deep; a job file needs 5");
    free(block);
    free(text);
}
END_TEST

START_TEST(nesting_of_64_levels_is_not_refused_for_its_depth)
{
    /* the top mapping and 63 lists: 64 levels, left to the key's own check */
    char text[512] = BASE "staleness: ";
    size_t len = strlen(text);
    memset(text + len, '[', 63);
    memset(text + len + 63, ']', 63);
    strcpy(text + len + 126, "\n");
    expect_config_error(text, "job.yaml:6:12: staleness: expected an integer, got a list");
}
END_TEST

/* ---- on_divergence ---- */

START_TEST(on_divergence_is_stop_unless_continue_is_asked)
{
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(BASE, &job, &err), 0);
    ck_assert_int_eq(job.on_divergence, PS_DIVERGE_STOP);
    ck_assert_int_eq(parse(BASE "on_divergence: continue\n", &job, &err), 0);
    ck_assert_int_eq(job.on_divergence, PS_DIVERGE_CONTINUE);
    ck_assert_int_eq(parse(BASE "on_divergence: stop\n", &job, &err), 0);
    ck_assert_int_eq(job.on_divergence, PS_DIVERGE_STOP);
    expect_config_error(BASE "on_divergence: ignore\n",
                        "job.yaml:6:16: on_divergence: \"ignore\" is not one of stop, continue");
}
END_TEST

/* ---- writable folders ---- */

/* Parses BASE plus extra, which must be valid. */
static void parse_ok(const char *extra, ps_job *job)
{
    char text[1024];
    snprintf(text, sizeof text, BASE "%s", extra);
    ps_error err;
    int rc = parse(text, job, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
}

START_TEST(missing_output_folder_is_created_and_left_empty)
{
    char dir[64], extra[256], out[128];
    temp_dir(dir);
    snprintf(out, sizeof out, "%s/a/b/out", dir);
    snprintf(extra, sizeof extra, "output: %s/\n", out);
    ps_job job;
    parse_ok(extra, &job);
    ck_assert_uint_eq(job.output_pos.line, 6);
    ck_assert_uint_eq(job.output_pos.col, 9);
    ps_error err;
    ck_assert_int_eq(ps_job_check_writable(&job, PS_JOB_FOLDER_OUTPUT, &err), 0);
    struct stat st;
    ck_assert_int_eq(stat(out, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(rmdir(out), 0); /* fails unless the test file is gone */
    snprintf(out, sizeof out, "%s/a/b", dir);
    rmdir(out);
    snprintf(out, sizeof out, "%s/a", dir);
    rmdir(out);
    rmdir(dir);
}
END_TEST

START_TEST(output_below_a_file_is_refused_naming_the_key)
{
    /* the tests run as root, so "cannot write" comes from a file in the way */
    char dir[64], file[96], extra[256], want[512];
    temp_dir(dir);
    snprintf(file, sizeof file, "%s/plain", dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ps_job job;
    ps_error err;
    snprintf(extra, sizeof extra, "output: %s/out\n", file);
    parse_ok(extra, &job);
    ck_assert_int_eq(ps_job_check_writable(&job, PS_JOB_FOLDER_OUTPUT, &err), PS_ECONFIG);
    snprintf(want, sizeof want, "job.yaml:6:9: output: %s/out: cannot write there: Not a directory",
             file);
    ck_assert_str_eq(err.msg, want);
    /* output that is itself a file */
    snprintf(extra, sizeof extra, "output: %s\n", file);
    parse_ok(extra, &job);
    ck_assert_int_eq(ps_job_check_writable(&job, PS_JOB_FOLDER_OUTPUT, &err), PS_ECONFIG);
    snprintf(want, sizeof want, "job.yaml:6:9: output: %s is a regular file, not a folder", file);
    ck_assert_str_eq(err.msg, want);
    unlink(file);
    rmdir(dir);
}
END_TEST

START_TEST(output_under_proc_is_refused)
{
    ps_job job;
    ps_error err;
    parse_ok("output: /proc/x\n", &job);
    ck_assert_int_eq(ps_job_check_writable(&job, PS_JOB_FOLDER_OUTPUT, &err), PS_ECONFIG);
    ck_assert_str_eq(
        err.msg, "job.yaml:6:9: output: /proc/x: cannot write there: No such file or directory");
}
END_TEST

START_TEST(unwritable_checkpoint_folder_is_refused_naming_the_key)
{
    ps_job job;
    ps_error err;
    parse_ok("checkpoint: {dir: /proc/ckpt}\n", &job);
    ck_assert_int_eq(ps_job_check_writable(&job, PS_JOB_FOLDER_CHECKPOINT, &err), PS_ECONFIG);
    ck_assert_str_eq(err.msg, "job.yaml:6:19: checkpoint.dir: /proc/ckpt: cannot write there: No "
                              "such file or directory");
    /* /proc itself exists as a folder, but no file can be made in it */
    parse_ok("checkpoint: {dir: /proc}\n", &job);
    ck_assert_int_eq(ps_job_check_writable(&job, PS_JOB_FOLDER_CHECKPOINT, &err), PS_ECONFIG);
    ck_assert_msg(
        strncmp(err.msg, "job.yaml:6:19: checkpoint.dir: /proc: cannot write there: ", 58) == 0,
        "%s", err.msg);
    /* the output check looks at output only */
    ck_assert_int_eq(ps_job_check_writable(&job, PS_JOB_FOLDER_OUTPUT, &err), 0);
}
END_TEST

START_TEST(job_without_the_folder_needs_no_check)
{
    ps_job job;
    ps_error err;
    parse_ok("", &job);
    ck_assert_uint_eq(job.output_pos.line, 0);
    ck_assert_int_eq(ps_job_check_writable(&job, PS_JOB_FOLDER_OUTPUT, &err), 0);
    ck_assert_int_eq(ps_job_check_writable(&job, PS_JOB_FOLDER_CHECKPOINT, &err), 0);
}
END_TEST

#define EXAMPLES PS_SOURCE_DIR "/config/examples"

START_TEST(example_sync_job_validates)
{
    ps_job job;
    ps_error err;
    int rc = ps_job_load(EXAMPLES "/breast_cancer_sync.yaml", &job, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    ck_assert_str_eq(job.path, EXAMPLES "/breast_cancer_sync.yaml");
    ck_assert_str_eq(job.dir, EXAMPLES);
    ck_assert_str_eq(job.name, "breast-cancer-sync");
    ck_assert_int_eq(job.mode, PS_MODE_SYNC);
    ck_assert_uint_eq(job.workers, 2);
    ck_assert_uint_eq(job.nservers, 1);
    ck_assert_str_eq(job.servers[0], "tcp://127.0.0.1:7070");
    ck_assert_int_eq(job.model.type, PS_MODEL_LOGISTIC);
    ck_assert_uint_eq(job.model.features, 30);
    ck_assert_str_eq(job.data.train, EXAMPLES "/data/breast_cancer.train.csv");
    ck_assert_str_eq(job.data.test, EXAMPLES "/data/breast_cancer.test.csv");
    ck_assert_int_eq(job.data.normalize, PS_NORMALIZE_STANDARD);
    ck_assert_double_eq(job.optimizer.lr, 0.05);
    ck_assert_double_eq(job.optimizer.l2, 0.003);
    ck_assert_uint_eq(job.training.epochs, 30);
    ck_assert_uint_eq(job.training.batch_size, 16);
    ck_assert_uint_eq(job.training.seed, 7);
    ck_assert_str_eq(job.output, EXAMPLES "/out/breast_cancer_sync");
}
END_TEST

START_TEST(example_curve_job_validates)
{
    ps_job job;
    ps_error err;
    int rc = ps_job_load(EXAMPLES "/breast_cancer_curve.yaml", &job, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    ck_assert(job.security.curve);
    ck_assert_str_eq(job.security.server_secret_key, EXAMPLES "/keys/psd.key_secret");
    ck_assert_str_eq(job.security.authorized_admins, EXAMPLES "/keys/admins/");
}
END_TEST

START_TEST(example_async_job_validates)
{
    ps_job job;
    ps_error err;
    int rc = ps_job_load(EXAMPLES "/breast_cancer_async.yaml", &job, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    ck_assert_str_eq(job.name, "breast-cancer-async");
    ck_assert_int_eq(job.mode, PS_MODE_ASYNC);
    ck_assert_str_eq(job.output, EXAMPLES "/out/breast_cancer_async");
}
END_TEST

START_TEST(example_libsvm_job_validates)
{
    ps_job job;
    ps_error err;
    int rc = ps_job_load(EXAMPLES "/breast_cancer_libsvm.yaml", &job, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    ck_assert_int_eq(job.mode, PS_MODE_SYNC);
    ck_assert_int_eq(job.data.format, PS_FORMAT_LIBSVM);
    ck_assert_str_eq(job.data.train, EXAMPLES "/data/breast_cancer.train.libsvm");
}
END_TEST

START_TEST(example_fashion_mnist_mlp_job_validates)
{
    ps_job job;
    ps_error err;
    int rc = ps_job_load(EXAMPLES "/fashion_mnist_mlp.yaml", &job, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    ck_assert_int_eq(job.model.type, PS_MODEL_MLP);
    ck_assert_uint_eq(job.model.features, 784);
    ck_assert_uint_eq(job.model.classes, 10);
    ck_assert_uint_eq(job.model.nhidden, 1);
    ck_assert_int_eq(job.data.format, PS_FORMAT_IDX);
    ck_assert_str_eq(job.data.train,
                     "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
    ck_assert_str_eq(job.data.train_labels, ""); /* psworker derives it */
    ck_assert_uint_eq(job.workers, 2);
}
END_TEST

START_TEST(every_example_job_validates)
{
    DIR *d = opendir(EXAMPLES);
    ck_assert_ptr_nonnull(d);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".yaml") != 0)
            continue;
        char path[1024], first[8] = "";
        snprintf(path, sizeof path, "%s/%s", EXAMPLES, e->d_name);
        FILE *f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        size_t got = fread(first, 1, sizeof first - 1, f);
        fclose(f);
        /* a job whose data a "# data: COMMAND" line makes (the click logs,
         * never committed) loads in test_sparse_data with stand-in files */
        if (got == sizeof first - 1 && strcmp(first, "# data:") == 0)
            continue;
        ps_job job;
        ps_error err;
        int rc = ps_job_load(path, &job, &err);
        ck_assert_msg(rc == 0, "%s", err.msg);
        count++;
    }
    closedir(d);
    ck_assert_int_ge(count, 3);
}
END_TEST

/* ---- layout ---- */

static ps_job model_job(ps_model_type type, uint64_t features, uint32_t classes)
{
    ps_job job;
    memset(&job, 0, sizeof job);
    job.model.type = type;
    job.model.features = features;
    job.model.classes = classes;
    return job;
}

static void expect_tensor(const ps_tensor_info *t, const char *name, uint64_t offset,
                          uint32_t ndims, uint64_t d0, uint64_t d1)
{
    ck_assert_str_eq(t->name, name);
    ck_assert_uint_eq(t->offset, offset);
    ck_assert_uint_eq(t->ndims, ndims);
    ck_assert_uint_eq(t->shape[0], d0);
    if (ndims > 1)
        ck_assert_uint_eq(t->shape[1], d1);
}

START_TEST(logistic_layout_is_w_then_b)
{
    ps_job job = model_job(PS_MODEL_LOGISTIC, 30, 0);
    ps_tensor_info t[PS_MAX_TENSORS];
    size_t n;
    uint64_t p;
    ck_assert_int_eq(ps_job_layout(&job, t, PS_MAX_TENSORS, &n, &p), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(p, 31);
    expect_tensor(&t[0], "w", 0, 1, 30, 0);
    expect_tensor(&t[1], "b", 30, 1, 1, 0);
}
END_TEST

START_TEST(softmax_layout_is_matrix_then_bias)
{
    ps_job job = model_job(PS_MODEL_SOFTMAX, 64, 10);
    ps_tensor_info t[PS_MAX_TENSORS];
    size_t n;
    uint64_t p;
    ck_assert_int_eq(ps_job_layout(&job, t, PS_MAX_TENSORS, &n, &p), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(p, 650);
    expect_tensor(&t[0], "W", 0, 2, 64, 10);
    expect_tensor(&t[1], "b", 640, 1, 10, 0);
}
END_TEST

START_TEST(mlp_layout_chains_its_layers)
{
    ps_job job = model_job(PS_MODEL_MLP, 4, 3);
    job.model.nhidden = 2;
    job.model.hidden[0] = 5;
    job.model.hidden[1] = 6;
    ps_tensor_info t[PS_MAX_TENSORS];
    size_t n;
    uint64_t p;
    ck_assert_int_eq(ps_job_layout(&job, t, PS_MAX_TENSORS, &n, &p), 0);
    ck_assert_uint_eq(n, 6);
    expect_tensor(&t[0], "W1", 0, 2, 4, 5);
    expect_tensor(&t[1], "b1", 20, 1, 5, 0);
    expect_tensor(&t[2], "W2", 25, 2, 5, 6);
    expect_tensor(&t[3], "b2", 55, 1, 6, 0);
    expect_tensor(&t[4], "W3", 61, 2, 6, 3);
    expect_tensor(&t[5], "b3", 79, 1, 3, 0);
    ck_assert_uint_eq(p, 82);
}
END_TEST

START_TEST(custom_layout_follows_its_list)
{
    ps_job job = model_job(PS_MODEL_CUSTOM, 1, 0);
    job.model.ntensors = 2;
    strcpy(job.model.tensors[0].name, "emb");
    job.model.tensors[0].ndims = 3;
    job.model.tensors[0].shape[0] = 2;
    job.model.tensors[0].shape[1] = 3;
    job.model.tensors[0].shape[2] = 4;
    strcpy(job.model.tensors[1].name, "bias");
    job.model.tensors[1].ndims = 1;
    job.model.tensors[1].shape[0] = 7;
    ps_tensor_info t[PS_MAX_TENSORS];
    size_t n;
    uint64_t p;
    ck_assert_int_eq(ps_job_layout(&job, t, PS_MAX_TENSORS, &n, &p), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(p, 31);
    expect_tensor(&t[0], "emb", 0, 3, 2, 3);
    ck_assert_uint_eq(t[0].shape[2], 4);
    expect_tensor(&t[1], "bias", 24, 1, 7, 0);
}
END_TEST

START_TEST(layout_refuses_overflow_and_short_output)
{
    ps_job job = model_job(PS_MODEL_CUSTOM, 1, 0);
    job.model.ntensors = 1;
    strcpy(job.model.tensors[0].name, "huge");
    job.model.tensors[0].ndims = 2;
    job.model.tensors[0].shape[0] = UINT64_C(1) << 40;
    job.model.tensors[0].shape[1] = UINT64_C(1) << 40;
    ps_tensor_info t[PS_MAX_TENSORS];
    size_t n;
    uint64_t p;
    ck_assert_int_eq(ps_job_layout(&job, t, PS_MAX_TENSORS, &n, &p), PS_EINVAL);

    ps_job lg = model_job(PS_MODEL_LOGISTIC, 30, 0);
    ck_assert_int_eq(ps_job_layout(&lg, t, 1, &n, &p), PS_EINVAL);
    ck_assert_uint_eq(n, 2); /* the count still says how many are needed */
}
END_TEST

START_TEST(enum_names_are_as_written_in_job_files)
{
    ck_assert_str_eq(ps_mode_name(PS_MODE_SYNC), "sync");
    ck_assert_str_eq(ps_mode_name(PS_MODE_ASYNC), "async");
    ck_assert_str_eq(ps_mode_name(PS_MODE_SSP), "ssp");
    ck_assert_str_eq(ps_mode_name((ps_mode)42), "?");
    ck_assert_str_eq(ps_model_type_name(PS_MODEL_LINEAR), "linear");
    ck_assert_str_eq(ps_model_type_name(PS_MODEL_LOGISTIC), "logistic");
    ck_assert_str_eq(ps_model_type_name(PS_MODEL_SOFTMAX), "softmax");
    ck_assert_str_eq(ps_model_type_name(PS_MODEL_MLP), "mlp");
    ck_assert_str_eq(ps_model_type_name(PS_MODEL_CUSTOM), "custom");
    ck_assert_str_eq(ps_model_type_name((ps_model_type)-1), "?");
}
END_TEST

/* ---- sparse models ---- */

#define SPARSE(model, rest)                                                                        \
    "job: t\n"                                                                                     \
    "workers: 2\n"                                                                                 \
    "servers: [tcp://127.0.0.1:7070, tcp://127.0.0.1:7071]\n"                                      \
    "model: " model "\n"                                                                           \
    "data: {train: breast_cancer.train.csv, format: criteo}\n" rest

START_TEST(sparse_models_declare_their_tables_and_a_bias)
{
    ps_job job;
    ps_error err;
    ck_assert_int_eq(parse(SPARSE("{type: fm}", ""), &job, &err), 0);
    ck_assert(ps_job_is_sparse(&job));
    ck_assert_uint_eq(job.model.factors, 8);
    ck_assert_uint_eq(job.sparse.min_count, 1);
    ck_assert_uint_eq(job.sparse.max_rows, 0);
    ps_table_spec t[PS_MAX_TABLES];
    size_t n = 0;
    ck_assert_int_eq(ps_job_tables(&job, t, PS_MAX_TABLES, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(t[0].name, "v");
    ck_assert_uint_eq(t[0].dim, 9);
    ck_assert_uint_eq(t[0].zero_prefix, 1);
    /* the dense part is the bias alone, fewer keys than shards: fine */
    ps_tensor_info l[PS_MAX_TENSORS];
    uint64_t p = 0;
    ck_assert_int_eq(ps_job_layout(&job, l, PS_MAX_TENSORS, &n, &p), 0);
    ck_assert_uint_eq(p, 1);
    ck_assert_str_eq(l[0].name, "b");
    ck_assert_int_eq(parse(SPARSE("{type: sparse_logistic}",
                                  "sparse: {min_count: 3, idle_versions: 1000, max_rows: 500}\n"
                                  "optimizer: {type: ftrl, lr: 0.05, beta: 1, l1: 1, l2: 1}\n"),
                           &job, &err),
                     0);
    ck_assert_int_eq(ps_job_tables(&job, t, PS_MAX_TABLES, &n), 0);
    ck_assert_str_eq(t[0].name, "w");
    ck_assert_uint_eq(t[0].dim, 1);
    ck_assert_uint_eq(job.sparse.min_count, 3);
    ck_assert_uint_eq(job.sparse.idle_versions, 1000);
    ck_assert_uint_eq(job.sparse.max_rows, 500);
    ck_assert(job.optimizer.beta == 1.0);
    /* a dense model declares none */
    ck_assert_int_eq(parse(BASE, &job, &err), 0);
    ck_assert(!ps_job_is_sparse(&job));
    ck_assert_int_eq(ps_job_tables(&job, t, PS_MAX_TABLES, &n), 0);
    ck_assert_uint_eq(n, 0);
}
END_TEST

#define BASE_DATA_STREAM                                                                           \
    "job: t\nworkers: 2\nservers: [tcp://127.0.0.1:7070]\nmodel: {type: logistic, features: 3}\n"  \
    "data: {train: breast_cancer.train.csv, stream: true}\n"

START_TEST(sparse_keys_belong_to_sparse_models)
{
    expect_config_error(SPARSE("{type: fm, features: 30}", ""),
                        "job.yaml:4:29: model.features: only valid with a dense model type (not "
                        "sparse_logistic or fm)");
    expect_config_error(SPARSE("{type: sparse_logistic, factors: 4}", ""),
                        "job.yaml:4:41: model.factors: only valid with model type fm");
    expect_config_error(BASE "sparse: {min_count: 2}\n",
                        "job.yaml:6:9: sparse: only valid with model type sparse_logistic or fm");
    expect_config_error(SPARSE("{type: fm}", "optimizer: {type: sgd, beta: 2}\n"),
                        "job.yaml:6:30: optimizer.beta: only valid with optimizer type ftrl");
    expect_config_error("job: t\nworkers: 2\nservers: [tcp://127.0.0.1:7070]\n"
                        "model: {type: logistic}\ndata: {train: breast_cancer.train.csv}\n",
                        "job.yaml:4:8: missing required key \"features\" in model");
    expect_config_error(SPARSE("{type: fm, factors: 0}", ""),
                        "job.yaml:4:28: model.factors: must be between 1 and 1023, got 0");
    /* a table's rows keep sgd's, adagrad's or ftrl's state; formats go with models */
    expect_config_error(SPARSE("{type: fm}", "optimizer: {type: adam}\n"),
                        "job.yaml:6:19: optimizer.type: model type fm trains with sgd, adagrad or "
                        "ftrl (the state a table's rows keep), not adam");
    expect_config_error("job: t\nworkers: 2\nservers: [tcp://127.0.0.1:7070]\n"
                        "model: {type: sparse_logistic}\ndata: {train: breast_cancer.train.csv}\n",
                        "job.yaml:5:1: data.format: model type sparse_logistic reads criteo or "
                        "libsvm64, not csv");
    expect_config_error("job: t\nworkers: 2\nservers: [tcp://127.0.0.1:7070]\n"
                        "model: {type: logistic, features: 3}\n"
                        "data: {train: breast_cancer.train.csv, format: libsvm64}\n",
                        "job.yaml:5:48: data.format: model type logistic reads csv, libsvm or idx, "
                        "not libsvm64");
    expect_config_error(BASE_DATA_STREAM,
                        "job.yaml:5:48: data.stream: only valid with format criteo or libsvm64");
}
END_TEST

static Suite *job_suite(void)
{
    Suite *s = suite_create("job");
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, unknown_key_suggests_nearest_key_of_its_section);
    tcase_add_test(bad, unknown_top_level_key_suggests_by_edit_distance);
    tcase_add_test(bad, key_of_another_section_is_pointed_there);
    tcase_add_test(bad, key_of_several_sections_names_them);
    tcase_add_test(bad, key_near_nothing_lists_the_valid_keys);
    tcase_add_test(bad, unknown_key_in_flow_mapping_is_found);
    tcase_add_test(bad, word_for_an_integer_is_a_type_error);
    tcase_add_test(bad, quoted_number_is_a_string_not_an_integer);
    tcase_add_test(bad, list_where_a_string_is_expected_is_a_type_error);
    tcase_add_test(bad, scalar_where_a_section_is_expected_is_a_type_error);
    tcase_add_test(bad, negative_lr_is_out_of_range);
    tcase_add_test(bad, zero_workers_is_out_of_range);
    tcase_add_test(bad, zero_epochs_is_out_of_range);
    tcase_add_test(bad, zero_batch_size_is_out_of_range);
    tcase_add_test(bad, integer_past_64_bits_is_out_of_range);
    tcase_add_test(bad, out_of_range_integers_name_the_bound_they_broke);
    tcase_add_test(bad, momentum_of_one_is_out_of_range);
    tcase_add_test(bad, nan_is_not_a_number);
    tcase_add_test(bad, missing_train_file_names_resolved_path_at_its_key);
    tcase_add_test(bad, missing_test_file_is_an_error);
    tcase_add_test(bad, data_file_that_is_a_folder_is_an_error);
    tcase_add_test(bad, bad_mode_lists_the_valid_ones);
    tcase_add_test(bad, mode_ssp_is_loaded_with_its_staleness);
    tcase_add_test(bad, staleness_without_ssp_is_a_contradiction);
    tcase_add_test(bad, adam_hyper_parameters_out_of_range_are_errors);
    tcase_add_test(bad, optimizer_keys_of_another_type_are_contradictions);
    tcase_add_test(bad, cosine_schedule_needs_total_steps);
    tcase_add_test(bad, momentum_with_sgd_is_a_contradiction);
    tcase_add_test(bad, checkpoint_section_is_validated);
    tcase_add_test(bad, metrics_listen_must_fit_the_servers);
    tcase_add_test(bad, heartbeat_timeout_must_exceed_interval);
    tcase_add_test(bad, metrics_listen_must_be_host_port);
    tcase_add_test(bad, metrics_listen_port_0_says_why_not);
    tcase_add_test(bad, bad_on_worker_loss_lists_the_valid_ones);
    tcase_add_test(bad, duplicate_key_names_the_first);
    tcase_add_test(bad, duplicate_key_in_section_is_an_error);
    tcase_add_test(bad, missing_required_key_points_at_parent_mapping);
    tcase_add_test(bad, missing_required_key_in_section_points_at_section);
    tcase_add_test(bad, null_for_a_required_key_is_an_error);
    tcase_add_test(bad, hidden_with_logistic_is_a_contradiction);
    tcase_add_test(bad, classes_with_linear_is_a_contradiction);
    tcase_add_test(bad, logistic_has_two_classes);
    tcase_add_test(bad, softmax_and_mlp_need_classes_and_mlp_needs_hidden);
    tcase_add_test(bad, backup_workers_must_be_fewer_than_workers);
    tcase_add_test(bad, dynamic_assignment_is_for_async_and_ssp);
    tcase_add_test(bad, backup_workers_and_deterministic_are_loaded_for_sync);
    tcase_add_test(bad, local_sgd_is_loaded_with_its_own_lr);
    tcase_add_test(bad, local_optimizer_other_than_sgd_is_not_supported_yet);
    tcase_add_test(bad, local_optimizer_needs_local_steps_and_a_positive_lr);
    tcase_add_test(bad, compression_settings_out_of_range_are_refused);
    tcase_add_test(bad, compression_is_chosen_per_direction);
    tcase_add_test(bad, invalid_endpoint_is_an_error);
    tcase_add_test(bad, duplicate_endpoint_is_an_error);
    tcase_add_test(bad, empty_server_list_is_an_error);
    tcase_add_test(bad, more_shards_than_parameters_is_an_error);
    tcase_add_test(bad, bad_job_name_is_an_error);
    tcase_add_test(bad, yaml_syntax_error_gives_libyaml_problem_and_position);
    tcase_add_test(bad, tab_indentation_is_a_syntax_error);
    tcase_add_test(bad, invalid_utf8_is_an_error_with_position);
    tcase_add_test(bad, empty_file_is_an_error);
    tcase_add_test(bad, top_level_must_be_a_mapping);
    tcase_add_test(bad, second_document_is_an_error);
    tcase_add_test(bad, key_must_be_a_name);
    tcase_add_test(bad, label_column_with_libsvm_is_a_contradiction);
    tcase_add_test(bad, label_column_past_the_last_column_is_an_error);
    tcase_add_test(bad, labels_file_without_idx_is_a_contradiction);
    tcase_add_test(bad, idx_labels_files_are_resolved_and_checked);
    tcase_add_test(bad, step_schedule_needs_step_size);
    tcase_add_test(bad, custom_model_needs_a_worker_command);
    tcase_add_test(bad, custom_model_with_a_worker_command_loads);
    tcase_add_test(bad, worker_command_program_with_a_slash_is_resolved);
    tcase_add_test(bad, worker_command_must_be_a_non_empty_list_of_strings);
    tcase_add_test(bad, alias_cycle_is_a_type_error_not_a_hang);
    tcase_add_test(bad, custom_tensor_names_must_differ);
    tcase_add_test(bad, custom_tensor_has_at_most_four_dimensions);
    suite_add_tcase(s, bad);

    TCase *good = tcase_create("valid");
    tcase_add_test(good, full_job_parses_with_its_values);
    tcase_add_test(good, absent_keys_take_their_defaults);
    tcase_add_test(good, metrics_listen_gives_each_shard_an_address);
    tcase_add_test(good, every_optimizer_and_schedule_loads);
    tcase_add_test(good, adam_takes_betas_and_eps_with_defaults);
    tcase_add_test(good, null_and_tilde_mean_absent);
    tcase_add_test(good, block_and_flow_styles_give_the_same_job);
    tcase_add_test(good, relative_paths_resolve_against_the_job_folder);
    tcase_add_test(good, libsvm_job_parses);
    tcase_add_test(good, error_is_cleared_on_success);
    tcase_add_test(good, load_of_missing_file_says_cannot_open);
    tcase_add_test(good, load_of_a_folder_says_it_is_a_folder);
    tcase_add_test(good, example_sync_job_validates);
    tcase_add_test(good, example_async_job_validates);
    tcase_add_test(good, example_libsvm_job_validates);
    tcase_add_test(good, example_fashion_mnist_mlp_job_validates);
    tcase_add_test(good, every_example_job_validates);
    suite_add_tcase(s, good);

    TCase *chunks = tcase_create("sync_chunk_kib");
    tcase_add_test(chunks, sync_chunk_kib_is_auto_unless_a_number_is_given);
    tcase_add_test(chunks, sync_chunk_keys_follow_the_rule);
    tcase_add_test(chunks, endpoints_on_this_host_are_local);
    suite_add_tcase(s, chunks);

    TCase *caps = tcase_create("caps");
    tcase_add_test(caps, job_file_that_is_a_fifo_or_device_is_refused_unread);
    tcase_add_test(caps, data_file_that_is_a_fifo_is_refused_without_opening_it);
    tcase_add_test(caps, data_file_that_is_a_device_is_refused);
    tcase_add_test(caps, deep_nesting_is_refused_at_once_naming_where);
    tcase_add_test(caps, nesting_of_64_levels_is_not_refused_for_its_depth);
    tcase_add_test(caps, on_divergence_is_stop_unless_continue_is_asked);
    suite_add_tcase(s, caps);

    TCase *writable = tcase_create("writable");
    tcase_add_test(writable, missing_output_folder_is_created_and_left_empty);
    tcase_add_test(writable, output_below_a_file_is_refused_naming_the_key);
    tcase_add_test(writable, output_under_proc_is_refused);
    tcase_add_test(writable, unwritable_checkpoint_folder_is_refused_naming_the_key);
    tcase_add_test(writable, job_without_the_folder_needs_no_check);
    suite_add_tcase(s, writable);

    TCase *layout = tcase_create("layout");
    tcase_add_test(layout, logistic_layout_is_w_then_b);
    tcase_add_test(layout, softmax_layout_is_matrix_then_bias);
    tcase_add_test(layout, mlp_layout_chains_its_layers);
    tcase_add_test(layout, custom_layout_follows_its_list);
    tcase_add_test(layout, layout_refuses_overflow_and_short_output);
    tcase_add_test(layout, enum_names_are_as_written_in_job_files);
    tcase_add_test(layout, security_curve_paths_resolve_against_the_job_file);
    tcase_add_test(layout, example_curve_job_validates);
    tcase_add_test(layout, sparse_models_declare_their_tables_and_a_bias);
    tcase_add_test(layout, sparse_keys_belong_to_sparse_models);
    suite_add_tcase(s, layout);
    return s;
}

int main(void)
{
    return ps_check_run(job_suite());
}
