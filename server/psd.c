/* psd.c — the parameter server daemon: serves one shard of a job's θ.
 * Exit status: 0 after a clean stop (SIGTERM, SIGINT) or a complete job, 1
 * on a runtime error (cannot bind, socket failure) or an aborted job, 2 on a
 * usage or job-file error, 3 when --exit-when-done ended the job as
 * incomplete (a rank's data was not trained to the end). */
#include "args.h"
#include "job.h"
#include "launch_env.h"
#include "log.h"
#include "server.h"
#include "stdout_guard.h"
#include "util.h"

#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set by SIGTERM and SIGINT (to the signal's number, which the workers are
 * told), and by SIGHUP; the server loop looks at them every 100 ms. */
static volatile sig_atomic_t stop_requested = 0;
static volatile sig_atomic_t reload_requested = 0;

static void on_stop_signal(int sig)
{
    stop_requested = sig;
}

static void on_reload_signal(int sig)
{
    (void)sig;
    reload_requested = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: psd --config job.yaml [--shard I] [--servers EPS] [--log-level L]\n"
            "           [--exit-when-done]\n"
            "Serves one shard of a psd job's parameters over ZeroMQ.\n"
            "\n"
            "  -c, --config FILE     the job file (required)\n"
            "  -s, --shard I         the shard to serve, 0 .. servers-1 (default: from\n"
            "                        PSD_SHARD, SLURM_PROCID, the host name's -N with\n"
            "                        PSD_SHARD_FROM_HOSTNAME=1, TF_CONFIG; else 0)\n"
            "  -S, --servers EPS     the servers' endpoints, comma-separated, instead of\n"
            "                        PSD_SERVERS or the job's servers\n"
            "  -l, --log-level L     error, warn, info or debug (default: the job's log.level)\n"
            "  -x, --exit-when-done  exit once the job is over: 0 when every rank's data\n"
            "                        was trained, 3 when some rank's was not and no\n"
            "                        worker came back within heartbeat.incomplete_wait_ms\n"
            "  -h, --help            show this help and exit\n"
            "  -V, --version         show the version and exit\n"
            "\n"
            "exit status: 0 stopped or done, 1 runtime error or aborted job, 2 usage or\n"
            "job-file error, 3 job incomplete (--exit-when-done)\n");
}

typedef struct psd_args {
    const char *config;
    int shard;             /* -1: from the environment (launch_env.h) */
    const char *servers;   /* --servers, or NULL */
    const char *log_level; /* NULL: the job's */
    ps_log_level level;    /* --log-level's, when given */
    bool exit_when_done;
} psd_args;

/* Parses argv into *a (args.h's convention). PS_ARGS_GO_ON, or the exit
 * status (0 after --help or --version) with a message already printed. */
static int args_parse(int argc, char **argv, psd_args *a)
{
    static const ps_args_option opts[] = {
        {"config", 'c', true},    {"shard", 's', true},           {"servers", 'S', true},
        {"log-level", 'l', true}, {"exit-when-done", 'x', false},
    };
    ps_args p;
    ps_args_init(&p, "psd", usage, opts, PS_ARGS_COUNT(opts), argc, argv);
    memset(a, 0, sizeof *a);
    a->shard = -1;
    int c;
    long v;
    while ((c = ps_args_next(&p)) > 0) {
        switch (c) {
        case 'c':
            a->config = p.value;
            break;
        case 's':
            if (ps_args_number(&p, 0, PS_MAX_SHARDS - 1, &v) != 0)
                return PS_EXIT_USAGE;
            a->shard = (int)v;
            break;
        case 'S':
            a->servers = p.value;
            break;
        case 'l':
            if (ps_log_level_parse(p.value, &a->level) != 0)
                return ps_args_error(&p,
                                     "--log-level: must be one of error, warn, info or debug, "
                                     "got %s",
                                     p.value);
            a->log_level = p.value;
            break;
        case 'x':
            a->exit_when_done = true;
            break;
        }
    }
    return ps_args_end_config(&p, c, a->config);
}

/* SIGTERM and SIGINT set the stop flag, SIGHUP the reload flag; no
 * SA_RESTART, so a blocking call returns EINTR and the loop sees the flag at
 * once. */
static int signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return -1;
    sa.sa_handler = on_reload_signal;
    if (sigaction(SIGHUP, &sa, NULL) != 0)
        return -1;
    return 0;
}

/* SIGHUP: reads the job file again and applies its reloadable settings (log
 * level, learning rate). A job file that no longer loads changes nothing. */
static void reload(ps_server *srv, const psd_args *a, ps_log *lg)
{
    static ps_job job; /* large: keep it off the stack */
    ps_error err;
    ps_error_clear(&err);
    if (ps_job_load(a->config, &job, &err) != 0) {
        PS_LOG_E(lg, "reload refused, running settings kept: %s", err.msg);
        return;
    }
    if (a->log_level == NULL)
        lg->level = job.log_level;
    ps_server_reload(srv, &job);
}

int main(int argc, char **argv)
{
    ps_stdout_guard_install("psd");
    psd_args a;
    int rc = args_parse(argc, argv, &a);
    if (rc != PS_ARGS_GO_ON)
        return rc;

    /* --servers beats PSD_SERVERS: the loader reads it there, on reload too */
    if (a.servers != NULL && setenv("PSD_SERVERS", a.servers, 1) != 0) {
        fprintf(stderr, "psd: cannot set PSD_SERVERS\n");
        return PS_EXIT_RUNTIME;
    }
    static ps_job job; /* large: keep it off the stack */
    ps_error err;
    ps_error_clear(&err);
    if (ps_job_load(a.config, &job, &err) != 0) {
        fprintf(stderr, "psd: %s\n", err.msg);
        return PS_EXIT_USAGE;
    }
    ps_log lg = {a.log_level != NULL ? a.level : job.log_level, "psd"};
    char from[32] = "";
    if (a.shard < 0) {
        if (ps_launch_shard(&job, &a.shard, from, sizeof from, &err) != 0) {
            fprintf(stderr, "psd: %s\n", err.msg);
            return PS_EXIT_USAGE;
        }
        if (a.shard < 0)
            a.shard = 0;
        else
            PS_LOG_I(&lg, "shard %d from %s", a.shard, from);
    }
    if ((uint32_t)a.shard >= job.nservers) {
        fprintf(stderr, "psd: --shard %d is out of range: %s has %u server%s\n", a.shard, a.config,
                job.nservers, job.nservers == 1 ? "" : "s");
        return PS_EXIT_USAGE;
    }
    if (signals_install() != 0) {
        fprintf(stderr, "psd: cannot install signal handlers\n");
        return PS_EXIT_RUNTIME;
    }

    ps_malloc_tune(); /* before the zeromq context: see ps_malloc_tune in util.h */
    if (ps_job_check_writable(&job, PS_JOB_FOLDER_CHECKPOINT, &err) != 0) {
        fprintf(stderr, "psd: %s\n", err.msg);
        return PS_EXIT_USAGE;
    }
    ps_server *srv = ps_server_new(&job, (uint32_t)a.shard, &lg, &err);
    if (srv == NULL) {
        fprintf(stderr, "psd: %s\n", err.msg);
        return err.code == PS_EZMQ || err.code == PS_ENOMEM || err.code == PS_EIO ? PS_EXIT_RUNTIME
                                                                                  : PS_EXIT_USAGE;
    }
    ps_server_exit_when_done(srv, a.exit_when_done);
    while ((rc = ps_server_run(srv, &stop_requested, &reload_requested, &err)) == 0 &&
           reload_requested && !stop_requested) {
        reload_requested = 0;
        reload(srv, &a, &lg);
    }
    bool incomplete = ps_server_incomplete(srv);
    ps_server_destroy(&srv);
    if (rc != 0) {
        fprintf(stderr, "psd: %s\n", err.msg);
        return PS_EXIT_RUNTIME;
    }
    return incomplete ? PS_EXIT_INCOMPLETE : 0;
}
