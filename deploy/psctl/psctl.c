/* psctl.c — psd's admin client: asks every shard of a job (or one) for its
 * status, once or every second (top), or to write a checkpoint now, and
 * makes CURVE key pairs. It reads the same job file as psd to find the
 * shards (and, with security.curve, the keys). Exit status: 0 when every
 * shard answered, 1 when one did not or refused, 2 on a usage or job-file
 * error. */
#include "args.h"
#include "codec.h"
#include "curve.h"
#include "job.h"
#include "psctl_ask.h"
#include "psctl_status.h"
#include "stdout_guard.h"
#include "text.h"
#include "util.h"

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define EXIT_RUNTIME        PS_EXIT_RUNTIME
#define EXIT_USAGE          PS_EXIT_USAGE
#define DEFAULT_TIMEOUT_MS  10000
#define DEFAULT_INTERVAL_MS 1000

static volatile sig_atomic_t stop_signal; /* top: SIGINT or SIGTERM came */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: psctl --config job.yaml [--shard I] [--timeout-ms N] [--json] status\n"
            "       psctl --config job.yaml [--shard I] [--interval MS] [--count N]\n"
            "             [--json] top\n"
            "       psctl --config job.yaml [--shard I] [--timeout-ms N] checkpoint\n"
            "       psctl keygen NAME\n"
            "Administers the psd shards of a job.\n"
            "\n"
            "commands:\n"
            "  status      a table of the shards: endpoint, model version, live workers of\n"
            "              the job's, params, mode, the staleness max/mean/p99 of the\n"
            "              pushes applied, and under each row the ranks' clocks there;\n"
            "              then one of the job's ranks: state (live, done, left,\n"
            "              evicted, vacant), last seen, clock, pushes, loss, samples/s,\n"
            "              staleness max/mean of its pushes, host\n"
            "  top         status again every --interval: on a terminal it redraws the\n"
            "              screen until q, Ctrl-C or SIGTERM; elsewhere it prints one\n"
            "              table per refresh, a blank line between. A shard that does\n"
            "              not answer shows in its row, and top goes on\n"
            "  checkpoint  each shard writes a checkpoint now; prints the files\n"
            "  keygen NAME writes a CURVE key pair: NAME.key (public) and\n"
            "              NAME.key_secret (secret, mode 0600)\n"
            "\n"
            "A rank's row merges the shards that answered: pushes, dropped and\n"
            "duplicates summed; its clock (steps pushed) the highest over the shards;\n"
            "last seen the most recent; its state the most alive; loss and samples/s\n"
            "as its worker last reported them (\"-\": not yet).\n"
            "\n"
            "--json prints one JSON object instead (top: one a line per refresh):\n"
            "  {\"job\", \"shards\": [{\"shard\", \"endpoint\", \"answered\", \"error\",\n"
            "   \"version\", \"live_workers\", \"workers\", \"params\", \"key_lo\", \"key_hi\",\n"
            "   \"mode\", \"staleness_max\", \"staleness_mean\", \"staleness_p99\"}],\n"
            "   \"workers\": [{\"rank\", \"state\", \"host\", \"last_seen_ms\", \"clock\",\n"
            "   \"pushes\", \"dropped\", \"duplicates\", \"evictions\", \"loss\",\n"
            "   \"samples_per_s\", \"staleness_max\", \"staleness_mean\", \"shards\"}]}\n"
            "  every figure a number; null when unknown (a shard without answer has\n"
            "  its error instead; a loss not reported yet)\n"
            "\n"
            "options:\n"
            "  -c, --config FILE     the job file (required but for keygen)\n"
            "  -k, --key FILE        the admin's secret key (default: the job's\n"
            "                        security.curve.client_secret_key)\n"
            "  -s, --shard I         only shard I (default: every shard)\n"
            "  -S, --servers EPS     the servers' endpoints, comma-separated, instead of\n"
            "                        PSD_SERVERS or the job's servers\n"
            "  -t, --timeout-ms N    how long to wait for the shards (default 10000;\n"
            "                        top: the interval)\n"
            "  -j, --json            status and top: JSON instead of tables\n"
            "  -i, --interval MS     top: time between refreshes (default 1000)\n"
            "  -n, --count N         top: stop after N refreshes (default: never)\n"
            "  -h, --help            show this help and exit\n"
            "  -V, --version         show the version and exit\n"
            "\n"
            "exit status: 0 when every shard answered (top: in its last refresh), 1 when\n"
            "one did not or refused, 2 on a usage or job-file error\n");
}

typedef struct psctl_args {
    const char *config;
    int shard; /* -1: all */
    int timeout_ms;
    bool timeout_set; /* --timeout-ms given */
    bool json;
    int interval_ms;
    long count;    /* top: refreshes, 0 for ever */
    bool top_only; /* --interval or --count given */
    const char *command;
    const char *key;     /* --key: the admin's secret key file, or NULL */
    const char *servers; /* --servers, or NULL */
    const char *name;    /* keygen's NAME */
} psctl_args;

/* Takes one option c (ps_args_next's) into *a; 0, or the exit status
 * with the reason said. */
static int option_take(const ps_args *p, int c, psctl_args *a)
{
    long v;
    int rc = 0;
    switch (c) {
    case 'c':
        a->config = p->value;
        break;
    case 'k':
        a->key = p->value;
        break;
    case 'S':
        a->servers = p->value;
        break;
    case 'j':
        a->json = true;
        break;
    case 's':
        if ((rc = ps_args_number(p, 0, PS_MAX_SHARDS - 1, &v)) == 0)
            a->shard = (int)v;
        break;
    case 't':
        if ((rc = ps_args_number(p, 0, 86400000, &v)) == 0) {
            a->timeout_ms = (int)v;
            a->timeout_set = true;
        }
        break;
    case 'i':
        if ((rc = ps_args_number(p, 10, 86400000, &v)) == 0) {
            a->interval_ms = (int)v;
            a->top_only = true;
        }
        break;
    case 'n':
        if ((rc = ps_args_number(p, 0, 1000000000, &v)) == 0) {
            a->count = v;
            a->top_only = true;
        }
        break;
    }
    return rc;
}

/* The command and its operands, once the options are read: keygen NAME,
 * or status, top or checkpoint with --config. PS_ARGS_GO_ON or the exit
 * status with the reason said. */
static int command_take(const ps_args *p, psctl_args *a)
{
    if (p->noperands == 0)
        return ps_args_error(p, "expected one command: status, top, checkpoint or keygen");
    a->command = p->operands[0];
    if (strcmp(a->command, "keygen") == 0) {
        if (p->noperands != 2)
            return ps_args_error(p, "keygen takes one NAME (writes NAME.key and NAME.key_secret)");
        a->name = p->operands[1];
        return PS_ARGS_GO_ON;
    }
    bool top = strcmp(a->command, "top") == 0;
    bool checkpoint = strcmp(a->command, "checkpoint") == 0;
    if (strcmp(a->command, "status") != 0 && !top && !checkpoint)
        return ps_args_error(p, "unknown command \"%s\": status, top, checkpoint or keygen",
                             a->command);
    if (p->noperands > 1)
        return ps_args_error(p, "unexpected argument \"%s\" after %s", p->operands[1], a->command);
    if (a->config == NULL)
        return ps_args_error(p, "--config is required");
    if (a->top_only && !top)
        return ps_args_error(p, "--interval and --count are for top, not %s", a->command);
    if (a->json && checkpoint)
        return ps_args_error(p, "--json is for status and top, not checkpoint");
    return PS_ARGS_GO_ON;
}

/* Parses argv into *a (args.h's convention). PS_ARGS_GO_ON, or the exit
 * status (0 after --help or --version) with a message already printed. */
static int args_parse(int argc, char **argv, psctl_args *a)
{
    static const ps_args_option opts[] = {
        {"config", 'c', true}, {"shard", 's', true},    {"timeout-ms", 't', true},
        {"json", 'j', false},  {"interval", 'i', true}, {"count", 'n', true},
        {"key", 'k', true},    {"servers", 'S', true},
    };
    ps_args p;
    ps_args_init(&p, "psctl", usage, opts, PS_ARGS_COUNT(opts), argc, argv);
    memset(a, 0, sizeof *a);
    a->shard = -1;
    a->timeout_ms = DEFAULT_TIMEOUT_MS;
    a->interval_ms = DEFAULT_INTERVAL_MS;
    int c;
    while ((c = ps_args_next(&p)) > 0) {
        int rc = option_take(&p, c, a);
        if (rc != 0)
            return rc;
    }
    if (c == PS_ARGS_EXIT)
        return p.status;
    return command_take(&p, a);
}

/* Loads the keys for a job with security.curve; 0 or an exit status with
 * the reason printed. */
static int keys_load(const psctl_args *a, const ps_job *job, ps_psctl_keys *k)
{
    memset(k, 0, sizeof *k);
    if (!job->security.curve)
        return 0;
    const char *secret = a->key != NULL ? a->key : job->security.client_secret_key;
    if (secret[0] == '\0' || job->security.server_public_key[0] == '\0') {
        fprintf(stderr,
                "psctl: %s: security.curve needs server_public_key and an admin key "
                "(--key or client_secret_key)\n",
                a->config);
        return EXIT_USAGE;
    }
    ps_error err;
    if (ps_curve_secret_load(secret, &k->admin, NULL, 0, &err) != 0 ||
        ps_curve_public_load(job->security.server_public_key, &k->server, &err) != 0) {
        fprintf(stderr, "psctl: %s\n", err.msg);
        return EXIT_USAGE;
    }
    k->on = true;
    return 0;
}

/* What each shard said to CHECKPOINT, to print in shard order. */
typedef struct checkpoint_replies {
    ps_psctl_reply replies[PS_MAX_SHARDS];
    uint64_t version[PS_MAX_SHARDS];
    char detail[PS_MAX_SHARDS][PS_MSG_ERROR_MAX];
} checkpoint_replies;

/* ps_psctl_reply_fn of checkpoint: the detail (the files) as a terminal
 * may show it. */
static int checkpoint_take(uint32_t shard, const ps_msg *rep, void *ctx, ps_error *err)
{
    (void)err;
    checkpoint_replies *c = ctx;
    c->version[shard] = rep->model_version;
    ps_text_printable(c->detail[shard], sizeof c->detail[shard], rep->detail);
    return 0;
}

static int checkpoint_run(const psctl_args *a, const ps_job *job, const ps_psctl_keys *keys,
                          void *zctx)
{
    checkpoint_replies *c = calloc(1, sizeof *c);
    if (c == NULL) {
        fprintf(stderr, "psctl: %s\n", ps_strerror(PS_ENOMEM));
        return EXIT_RUNTIME;
    }
    int exit_code = 0;
    ps_psctl_ask(zctx, job, keys, a->shard, PS_MSG_CHECKPOINT, a->timeout_ms, c->replies,
                 checkpoint_take, c);
    for (uint32_t i = 0; i < job->nservers; i++) {
        const ps_psctl_reply *r = &c->replies[i];
        if (r->answered) {
            printf("shard %u: %s (version %llu)\n", i, c->detail[i],
                   (unsigned long long)c->version[i]);
        } else if (r->asked) {
            fprintf(stderr, "psctl: shard %u at %s: %s\n", i, job->servers[i], r->why);
            exit_code = EXIT_RUNTIME;
        }
    }
    free(c);
    return exit_code;
}

static int status_run(const psctl_args *a, ps_psctl_status *st, const ps_psctl_keys *keys,
                      void *zctx)
{
    int rc = ps_psctl_status_collect(st, zctx, keys, a->shard, a->timeout_ms);
    if (rc != 0) {
        fprintf(stderr, "psctl: %s\n", ps_strerror(rc));
        return EXIT_RUNTIME;
    }
    ps_psctl_status_errors_write(st, stderr);
    if (a->json)
        rc = ps_psctl_status_json_write(st, true, stdout);
    else
        ps_psctl_status_table_write(st, false, stdout);
    if (rc != 0) {
        fprintf(stderr, "psctl: cannot write the status: %s\n", ps_strerror(rc));
        return EXIT_RUNTIME;
    }
    return ps_psctl_status_missing(st) > 0 ? EXIT_RUNTIME : 0;
}

/* ---- top ----------------------------------------------------------------- */

static void stop_on_signal(int sig)
{
    stop_signal = sig;
}

/* SIGINT and SIGTERM set stop_signal and interrupt the waits (no
 * SA_RESTART), so top ends within a moment and restores the terminal. */
static void signals_catch(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stop_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Waits ms, watching stdin for q when `keys`; true when top should stop
 * (q, a signal), false when the time is up. */
static bool top_wait(uint64_t ms, bool keys)
{
    uint64_t end = ps_clock_ms() + ms;
    while (stop_signal == 0) {
        uint64_t now = ps_clock_ms();
        if (now >= end)
            return false;
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        if (poll(keys ? &pfd : NULL, keys ? 1 : 0, (int)(end - now)) <= 0)
            continue;
        char ch;
        ssize_t got = read(STDIN_FILENO, &ch, 1);
        if (got == 1 && (ch == 'q' || ch == 'Q'))
            return true;
        if (got == 0)
            keys = false; /* end of input: only the clock and signals now */
    }
    return true;
}

/* One refresh: the screen cleared on a terminal, a blank line between
 * refreshes elsewhere, the status as a table or JSON; written at once so a
 * terminal never shows half a table. False when stdout took none of it
 * (a full disk, a closed stdout): top stops, said at exit. */
static bool top_draw(const psctl_args *a, const ps_job *job, const ps_psctl_status *st, bool tty,
                     long refresh)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (m == NULL)
        return true;
    if (tty) {
        char when[32];
        time_t now = time(NULL);
        strftime(when, sizeof when, "%H:%M:%S", localtime(&now));
        fprintf(m, "\033[H\033[2Jpsctl top: job %s, every %.1f s, %s (q quits)\n\n", job->name,
                a->interval_ms / 1000.0, when);
    } else if (refresh > 0 && !a->json) {
        fputc('\n', m);
    }
    if (a->json)
        ps_psctl_status_json_write(st, false, m);
    else
        ps_psctl_status_table_write(st, true, m);
    bool written = true;
    if (fclose(m) == 0) {
        fwrite(text, 1, len, stdout);
        written = ps_stdout_guard_flush();
    }
    free(text);
    return written;
}

static int top_run(const psctl_args *a, const ps_job *job, ps_psctl_status *st,
                   const ps_psctl_keys *keys, void *zctx)
{
    bool tty = isatty(STDOUT_FILENO) == 1;
    struct termios saved, raw;
    bool keys_on = tty && isatty(STDIN_FILENO) == 1 && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (keys_on) {
        raw = saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO); /* q without Enter; ^C still signals */
        keys_on = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    signals_catch();
    int timeout_ms = a->timeout_set ? a->timeout_ms : a->interval_ms;
    int exit_code = 0;
    for (long refresh = 0; stop_signal == 0; refresh++) {
        uint64_t t0 = ps_clock_ms();
        int rc = ps_psctl_status_collect(st, zctx, keys, a->shard, timeout_ms);
        if (rc == PS_EINTR)
            break;
        if (rc != 0) {
            fprintf(stderr, "psctl: %s\n", ps_strerror(rc));
            exit_code = EXIT_RUNTIME;
            break;
        }
        if (!top_draw(a, job, st, tty, refresh)) {
            exit_code = EXIT_RUNTIME;
            break;
        }
        exit_code = ps_psctl_status_missing(st) > 0 ? EXIT_RUNTIME : 0;
        if (a->count > 0 && refresh + 1 >= a->count)
            break;
        uint64_t spent = ps_clock_ms() - t0;
        if (top_wait(spent < (uint64_t)a->interval_ms ? (uint64_t)a->interval_ms - spent : 0,
                     keys_on))
            break;
    }
    if (keys_on)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    return exit_code;
}

/* Runs status, top or checkpoint on the loaded job; the exit status. */
static int job_run(const psctl_args *a, const ps_job *job)
{
    if (a->shard >= (int)job->nservers) {
        fprintf(stderr, "psctl: --shard %d is out of range: %s has %u server%s\n", a->shard,
                a->config, job->nservers, job->nservers == 1 ? "" : "s");
        return EXIT_USAGE;
    }
    ps_psctl_keys keys;
    int exit_code = keys_load(a, job, &keys);
    if (exit_code != 0)
        return exit_code;
    void *zctx = zmq_ctx_new();
    if (strcmp(a->command, "checkpoint") == 0) {
        exit_code = checkpoint_run(a, job, &keys, zctx);
    } else {
        ps_psctl_status *st = ps_psctl_status_new(job);
        if (st == NULL) {
            fprintf(stderr, "psctl: %s\n", ps_strerror(PS_ENOMEM));
            exit_code = EXIT_RUNTIME;
        } else if (strcmp(a->command, "top") == 0) {
            exit_code = top_run(a, job, st, &keys, zctx);
        } else {
            exit_code = status_run(a, st, &keys, zctx);
        }
        ps_psctl_status_destroy(&st);
    }
    zmq_ctx_term(zctx);
    return exit_code;
}

int main(int argc, char **argv)
{
    ps_stdout_guard_install("psctl");
    psctl_args a;
    int rc = args_parse(argc, argv, &a);
    if (rc != PS_ARGS_GO_ON)
        return rc;
    ps_error err;
    if (strcmp(a.command, "keygen") == 0) {
        if (ps_curve_keygen(a.name, &err) != 0) {
            fprintf(stderr, "psctl: keygen: %s\n", err.msg);
            return EXIT_RUNTIME;
        }
        printf("wrote %s.key (public) and %s.key_secret (secret, mode 0600)\n", a.name, a.name);
        return 0;
    }
    ps_job *job = calloc(1, sizeof *job);
    if (job == NULL) {
        fprintf(stderr, "psctl: %s\n", ps_strerror(PS_ENOMEM));
        return EXIT_RUNTIME;
    }
    /* --servers beats PSD_SERVERS: the loader reads it there */
    if (a.servers != NULL && setenv("PSD_SERVERS", a.servers, 1) != 0) {
        fprintf(stderr, "psctl: cannot set PSD_SERVERS\n");
        free(job);
        return EXIT_RUNTIME;
    }
    if (ps_job_load(a.config, job, &err) != 0) {
        fprintf(stderr, "psctl: %s\n", err.msg);
        rc = EXIT_USAGE;
    } else {
        rc = job_run(&a, job);
    }
    free(job);
    return rc;
}
