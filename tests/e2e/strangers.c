/* strangers.c — ps_strangers, the hostile peers of the end-to-end tests
 * (tests/e2e/test_strangers.py): CURVE clients with keys psd does not
 * know, held open (ZeroMQ connects them again each time psd refuses one),
 * and a flood of short-lived peers that each send one STATUS and go. It
 * runs until its time is up or SIGTERM, then says what it saw on one line:
 *   strangers: curve 200, flood sent 2000 answered 1990 refused 0
 * plus, when any STATUS was refused, the first refusal's text. */
#include "curve.h"
#include "util.h"
#include "wire.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define FLOOD_LIVE_MAX 64  /* flood peers open at once */
#define FLOOD_WAIT_MS  500 /* a flood peer's wait for its reply */

static volatile sig_atomic_t stopped;

static void on_signal(int sig)
{
    (void)sig;
    stopped = 1;
}

typedef struct flood_peer {
    void *sock;
    uint64_t since_ms;
} flood_peer;

typedef struct strangers {
    void *zctx;
    const char *endpoint, *job;
    void **curve;
    int ncurve;
    flood_peer live[FLOOD_LIVE_MAX];
    int nlive;
    unsigned long long sent, answered, refused;
    char first_refusal[PS_MSG_ERROR_MAX + 32];
    ps_frames frames;
    ps_msg msg;
} strangers;

static int usage(void)
{
    fprintf(stderr, "usage: ps_strangers --endpoint EP --job NAME [--curve N SERVER_KEY_FILE] "
                    "[--flood PER_SECOND] [--seconds S]\n");
    return 2;
}

/* n DEALERs, each with a key pair of its own (known to nobody), connected. */
static int curve_open(strangers *st, int n, const char *server_key_file)
{
    ps_curve_pair server;
    ps_error err;
    if (ps_curve_public_load(server_key_file, &server, &err) != 0) {
        fprintf(stderr, "ps_strangers: %s\n", err.msg);
        return -1;
    }
    st->curve = calloc((size_t)n, sizeof *st->curve);
    if (st->curve == NULL)
        return -1;
    for (int i = 0; i < n; i++) {
        char pub[41], sec[41];
        int linger = 0;
        void *s = zmq_socket(st->zctx, ZMQ_DEALER);
        if (s == NULL || zmq_curve_keypair(pub, sec) != 0 ||
            zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
            zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server.public_z85, PS_CURVE_Z85_LEN) != 0 ||
            zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, PS_CURVE_Z85_LEN) != 0 ||
            zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, PS_CURVE_Z85_LEN) != 0 ||
            zmq_connect(s, st->endpoint) != 0) {
            fprintf(stderr, "ps_strangers: CURVE socket %d: %s\n", i, zmq_strerror(errno));
            if (s != NULL)
                zmq_close(s);
            return -1;
        }
        st->curve[st->ncurve++] = s;
    }
    return 0;
}

/* A new flood peer: connected, its one STATUS sent. */
static void flood_one(strangers *st, uint64_t now)
{
    if (st->nlive == FLOOD_LIVE_MAX)
        return;
    int linger = 0;
    void *s = zmq_socket(st->zctx, ZMQ_DEALER);
    if (s == NULL)
        return;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(s, st->endpoint) != 0) {
        zmq_close(s);
        return;
    }
    ps_msg m;
    ps_msg_init(&m, PS_MSG_STATUS);
    m.job = st->job;
    m.seq = 1;
    if (ps_wire_send(s, NULL, 0, &m, NULL, 0) != 0) {
        zmq_close(s);
        return;
    }
    st->sent++;
    st->live[st->nlive++] = (flood_peer){s, now};
}

/* Takes the flood peers' replies; closes those answered or waited for
 * FLOOD_WAIT_MS. */
static void flood_reap(strangers *st, uint64_t now)
{
    for (int i = 0; i < st->nlive;) {
        flood_peer *p = &st->live[i];
        ps_error err;
        int rc = ps_wire_recv(p->sock, false, ZMQ_DONTWAIT, &st->frames, &st->msg, &err);
        bool done = rc != PS_EZMQ || now - p->since_ms > FLOOD_WAIT_MS;
        if (rc == 0 && st->msg.type == PS_MSG_ERROR) {
            if (st->refused++ == 0)
                snprintf(st->first_refusal, sizeof st->first_refusal, "%s (%s)", st->msg.error,
                         ps_err_name(st->msg.status));
        } else if (rc == 0) {
            st->answered++;
        }
        ps_frames_close(&st->frames);
        if (!done) {
            i++;
            continue;
        }
        zmq_close(p->sock);
        *p = st->live[--st->nlive];
    }
}

int main(int argc, char **argv)
{
    static strangers st;
    int ncurve = 0;
    const char *server_key = NULL;
    double flood = 0, seconds = 3600;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--endpoint") == 0 && i + 1 < argc)
            st.endpoint = argv[++i];
        else if (strcmp(argv[i], "--job") == 0 && i + 1 < argc)
            st.job = argv[++i];
        else if (strcmp(argv[i], "--curve") == 0 && i + 2 < argc) {
            ncurve = atoi(argv[++i]);
            server_key = argv[++i];
        } else if (strcmp(argv[i], "--flood") == 0 && i + 1 < argc)
            flood = atof(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else
            return usage();
    }
    if (st.endpoint == NULL || st.job == NULL || ncurve < 0 || flood < 0 || seconds <= 0)
        return usage();
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    ps_frames_init(&st.frames);
    st.zctx = zmq_ctx_new();
    int max_sockets = ncurve + FLOOD_LIVE_MAX + 16;
    if (st.zctx == NULL || zmq_ctx_set(st.zctx, ZMQ_MAX_SOCKETS, max_sockets) != 0)
        return 1;
    if (ncurve > 0 && curve_open(&st, ncurve, server_key) != 0)
        return 1;
    printf("strangers: %d CURVE sockets connecting to %s\n", st.ncurve, st.endpoint);
    fflush(stdout);
    uint64_t start = ps_clock_ms(), end = start + (uint64_t)(seconds * 1000);
    double flooded = 0;
    while (!stopped) {
        uint64_t now = ps_clock_ms();
        if (now >= end)
            break;
        /* as many flood peers as the rate asks by now */
        for (double due = flood * (double)(now - start) / 1000.0; flooded + 1 <= due; flooded++)
            flood_one(&st, now);
        flood_reap(&st, now);
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < st.nlive; i++)
        zmq_close(st.live[i].sock);
    for (int i = 0; i < st.ncurve; i++)
        zmq_close(st.curve[i]);
    free(st.curve);
    zmq_ctx_term(st.zctx);
    printf("strangers: curve %d, flood sent %llu answered %llu refused %llu\n", st.ncurve, st.sent,
           st.answered, st.refused);
    if (st.refused > 0)
        printf("strangers: first refusal: %s\n", st.first_refusal);
    return 0;
}
