/* psctl.c — psd's admin client: asks every shard of a job (or one) for its
 * status, or to write a checkpoint now, and makes CURVE key pairs. It reads
 * the same job file as psd to find the shards (and, with security.curve,
 * the keys). Exit status: 0 when every shard answered, 1 when one did not
 * or refused, 2 on a usage or job-file error. */
#include "codec.h"
#include "curve.h"
#include "job.h"
#include "util.h"
#include "wire.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define EXIT_RUNTIME       1
#define EXIT_USAGE         2
#define DEFAULT_TIMEOUT_MS 10000

static void usage(FILE *out)
{
    fprintf(out, "usage: psctl --config job.yaml [--shard I] [--timeout-ms N] COMMAND\n"
                 "       psctl keygen NAME\n"
                 "Administers the psd shards of a job.\n"
                 "\n"
                 "commands:\n"
                 "  status      each shard's model version, live workers and size, as a table\n"
                 "  checkpoint  each shard writes a checkpoint now; prints the files\n"
                 "  keygen NAME writes a CURVE key pair: NAME.key (public) and\n"
                 "              NAME.key_secret (secret, mode 0600)\n"
                 "\n"
                 "  -c, --config FILE     the job file (required but for keygen)\n"
                 "  -k, --key FILE        the admin's secret key (default: the job's\n"
                 "                        security.curve.client_secret_key)\n"
                 "  -s, --shard I         only shard I (default: every shard)\n"
                 "  -t, --timeout-ms N    how long to wait for a shard (default 10000)\n"
                 "  -h, --help            show this help and exit\n"
                 "  -V, --version         show the version and exit\n");
}

typedef struct psctl_args {
    const char *config;
    int shard; /* -1: all */
    int timeout_ms;
    const char *command;
    const char *key;  /* --key: the admin's secret key file, or NULL */
    const char *name; /* keygen's NAME */
} psctl_args;

/* Parses argv; 0 to go on, -1 after --help/--version, or an exit status. */
static int args_parse(int argc, char **argv, psctl_args *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"shard", required_argument, NULL, 's'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"key", required_argument, NULL, 'k'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->shard = -1;
    a->timeout_ms = DEFAULT_TIMEOUT_MS;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":c:s:t:k:hV", opts, NULL)) != -1) {
        char *end;
        long v;
        switch (c) {
        case 'c':
            a->config = optarg;
            break;
        case 'k':
            a->key = optarg;
            break;
        case 's':
        case 't':
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || errno != 0 || v < 0 || v > 86400000) {
                fprintf(stderr, "psctl: %s: \"%s\" is not a number\n",
                        c == 's' ? "--shard" : "--timeout-ms", optarg);
                return EXIT_USAGE;
            }
            if (c == 's')
                a->shard = (int)v;
            else
                a->timeout_ms = (int)v;
            break;
        case 'h':
            usage(stdout);
            return -1;
        case 'V':
            printf("psctl %s\n", PS_VERSION_STRING);
            return -1;
        case ':':
            fprintf(stderr, "psctl: %s needs a value (try psctl --help)\n", argv[optind - 1]);
            return EXIT_USAGE;
        default:
            fprintf(stderr, "psctl: unknown option \"%s\" (try psctl --help)\n", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc && strcmp(argv[optind], "keygen") == 0 && optind != argc - 2) {
        fprintf(stderr, "psctl: keygen takes one NAME (writes NAME.key and NAME.key_secret)\n");
        return EXIT_USAGE;
    }
    if (optind == argc - 2 && strcmp(argv[optind], "keygen") == 0) {
        a->command = argv[optind];
        a->name = argv[optind + 1];
        return 0;
    }
    if (a->config == NULL) {
        fprintf(stderr, "psctl: --config is required (try psctl --help)\n");
        return EXIT_USAGE;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "psctl: expected one command: status or checkpoint (try psctl --help)\n");
        return EXIT_USAGE;
    }
    a->command = argv[optind];
    if (strcmp(a->command, "status") != 0 && strcmp(a->command, "checkpoint") != 0) {
        fprintf(stderr, "psctl: unknown command \"%s\": status or checkpoint\n", a->command);
        return EXIT_USAGE;
    }
    return 0;
}

/* The keys psctl talks CURVE with: the admin's pair and psd's public key. */
typedef struct psctl_keys {
    bool on;
    ps_curve_pair admin, server;
} psctl_keys;

/* Loads the keys for a job with security.curve; 0 or an exit status with
 * the reason printed. */
static int keys_load(const psctl_args *a, const ps_job *job, psctl_keys *k)
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

/* Sends one request of type to the shard and waits for its reply in *rep.
 * Returns 0, or an exit status with the reason printed. */
static int ask(void *zctx, const ps_job *job, const psctl_keys *keys, uint32_t shard,
               ps_msg_type type, int timeout_ms, ps_msg *rep)
{
    const char *ep = job->servers[shard];
    void *sock = zmq_socket(zctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    if (keys->on) {
        zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, keys->server.public_z85, PS_CURVE_Z85_LEN);
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, keys->admin.public_z85, PS_CURVE_Z85_LEN);
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, keys->admin.secret_z85, PS_CURVE_Z85_LEN);
    }
    int rc = EXIT_RUNTIME;
    if (zmq_connect(sock, ep) != 0) {
        fprintf(stderr, "psctl: cannot connect to %s: %s\n", ep, zmq_strerror(errno));
        goto close_sock;
    }
    static ps_msg req;
    ps_msg_init(&req, type);
    ps_strlcpy(req.job, job->name, sizeof req.job);
    req.seq = 1;
    if (ps_wire_send(sock, NULL, 0, &req, NULL, 0) != 0) {
        fprintf(stderr, "psctl: cannot send to %s: %s\n", ep, zmq_strerror(errno));
        goto close_sock;
    }
    ps_frames f;
    ps_error err;
    int r = ps_wire_recv(sock, false, 0, &f, rep, &err);
    ps_frames_close(&f);
    if (r == PS_EZMQ && errno == EAGAIN) {
        fprintf(stderr, "psctl: shard %u at %s: no answer within %d ms%s\n", shard, ep, timeout_ms,
                keys->on ? " (with CURVE: is this key authorized, and the server key psd's?)" : "");
        goto close_sock;
    }
    if (r != 0) {
        fprintf(stderr, "psctl: shard %u at %s: %s\n", shard, ep, err.msg);
        goto close_sock;
    }
    if (rep->type == PS_MSG_ERROR) {
        fprintf(stderr, "psctl: shard %u at %s: %s (%s)\n", shard, ep, rep->error,
                ps_err_name(rep->status));
        goto close_sock;
    }
    rc = 0;
close_sock:
    zmq_close(sock);
    return rc;
}

int main(int argc, char **argv)
{
    psctl_args a;
    int rc = args_parse(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    ps_error err;
    if (strcmp(a.command, "keygen") == 0) {
        if (ps_curve_keygen(a.name, &err) != 0) {
            fprintf(stderr, "psctl: keygen: %s\n", err.msg);
            return EXIT_RUNTIME;
        }
        printf("wrote %s.key (public) and %s.key_secret (secret, mode 0600)\n", a.name, a.name);
        return 0;
    }
    static ps_job job;
    if (ps_job_load(a.config, &job, &err) != 0) {
        fprintf(stderr, "psctl: %s\n", err.msg);
        return EXIT_USAGE;
    }
    if (a.shard >= (int)job.nservers) {
        fprintf(stderr, "psctl: --shard %d is out of range: %s has %u server%s\n", a.shard,
                a.config, job.nservers, job.nservers == 1 ? "" : "s");
        return EXIT_USAGE;
    }
    psctl_keys keys;
    if ((rc = keys_load(&a, &job, &keys)) != 0)
        return rc;
    bool status = strcmp(a.command, "status") == 0;
    void *zctx = zmq_ctx_new();
    bool header = false; /* printed above the first row, so an error alone stays alone */
    int exit_code = 0;
    for (uint32_t i = 0; i < job.nservers; i++) {
        if (a.shard >= 0 && (uint32_t)a.shard != i)
            continue;
        static ps_msg rep;
        if (ask(zctx, &job, &keys, i, status ? PS_MSG_STATUS : PS_MSG_CHECKPOINT, a.timeout_ms,
                &rep) != 0) {
            exit_code = EXIT_RUNTIME;
            continue;
        }
        if (status && !header) {
            printf("%-5s  %-28s  %10s  %12s  %12s  %-5s  %s\n", "shard", "endpoint", "version",
                   "live workers", "keys", "mode", "staleness max/mean/p99");
            header = true;
        }
        if (status) {
            char live[32];
            snprintf(live, sizeof live, "%u/%u", rep.num_workers, job.workers);
            printf("%-5u  %-28s  %10llu  %12s  %12llu  %-5s  %llu/%.2f/%llu\n", i, job.servers[i],
                   (unsigned long long)rep.model_version, live,
                   (unsigned long long)(rep.key_hi - rep.key_lo), rep.mode,
                   (unsigned long long)rep.staleness_max, rep.staleness_mean,
                   (unsigned long long)rep.staleness_p99);
            if (rep.detail[0] != '\0')
                printf("%-5s  %s\n", "", rep.detail); /* each rank's clock */
        } else {
            printf("shard %u: %s (version %llu)\n", i, rep.detail,
                   (unsigned long long)rep.model_version);
        }
    }
    zmq_ctx_term(zctx);
    return exit_code;
}
