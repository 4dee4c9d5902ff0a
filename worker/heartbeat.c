/* heartbeat.c — the client's heartbeat thread (heartbeat.h). */
#include "heartbeat.h"

#include "util.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define HB_DEAD_BEATS     3   /* a connection silent this many beats (ZMTP pings) is given up */
#define HB_CONNECT_MIN_MS 100 /* a connect is given this long at least, however short a beat */
#define HB_RETRY_PARTS    10  /* between two connects: a tenth of a beat ... */
#define HB_RETRY_MIN_MS   10  /* ... but at least this ... */
#define HB_RETRY_MAX_MS   100 /* ... and at most this (ZeroMQ adds up to as much at random) */

/* The heartbeat thread's own view of a shard: its socket, the registration
 * its heartbeats are sent for, and the first heartbeat sent for it (a
 * refusal of an older one is about a registration gone by). */
typedef struct hb_shard {
    void *sock;
    uint32_t gen;
    uint64_t gen_first_seq;
} hb_shard;

/* What a heartbeat's reply tells: any reply says the shard is alive; a
 * final ERROR stops the client; "not registered" to a heartbeat of the
 * current registration asks the main thread to register again. */
static void heartbeat_reply(ps_client *c, size_t i, const hb_shard *h, const ps_msg *m)
{
    shard *s = &c->shards[i];
    if (m->type != PS_MSG_ERROR)
        return;
    if (ps_client_code_is_final(m->status))
        ps_client_final_set(c, m->status, s->endpoint, m->error);
    else if (m->status == PS_EWORKER && h->gen != 0 && m->seq >= h->gen_first_seq)
        atomic_store(&s->hb_lost_gen, h->gen);
}

/* A DEALER of the heartbeat thread's own context, connected to shard i;
 * NULL when it cannot be made (that shard then gets no heartbeats).
 *
 * A network cut leaves a TCP connection established but with its data
 * unacknowledged, and the kernel then retransmits after waits that double
 * (0.2, 0.4, 0.8 ... s): once the link is back, nothing goes through until
 * the next of them, seconds later. So this socket pings psd every beat
 * (ZMTP heartbeats, which psd's ZeroMQ answers by itself), gives up a
 * connection that has been silent for HB_DEAD_BEATS beats, and tries a
 * new one about every beat (a connect that has not completed by then is
 * abandoned, and the next starts after a short pause): a fresh connection
 * carries the next heartbeat within about a beat of the link's return, and
 * psd's answer tells a worker it evicted meanwhile to register again. */
static void *heartbeat_socket(ps_client *c, size_t i)
{
    int linger = 0, ivl = c->heartbeat_ms;
    int dead = c->heartbeat_ms * HB_DEAD_BEATS;
    if (dead < CLIENT_SILENT_MIN_MS)
        dead = CLIENT_SILENT_MIN_MS;
    int retry_ms = c->heartbeat_ms / HB_RETRY_PARTS;
    retry_ms = retry_ms < HB_RETRY_MIN_MS   ? HB_RETRY_MIN_MS
               : retry_ms > HB_RETRY_MAX_MS ? HB_RETRY_MAX_MS
                                            : retry_ms;
    int connect_ms = c->heartbeat_ms - 2 * retry_ms; /* a connect and a pause: a beat */
    if (connect_ms < HB_CONNECT_MIN_MS)
        connect_ms = HB_CONNECT_MIN_MS;
    int64_t max_msg = PS_HEADER_MAX_BYTES; /* a heartbeat's reply has no payload */
    void *sock = zmq_socket(c->hb_ctx, ZMQ_DEALER);
    if (sock == NULL)
        return NULL;
    if (zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg) != 0 ||
        zmq_setsockopt(sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl) != 0 ||
        zmq_setsockopt(sock, ZMQ_HEARTBEAT_TIMEOUT, &dead, sizeof dead) != 0 ||
        zmq_setsockopt(sock, ZMQ_CONNECT_TIMEOUT, &connect_ms, sizeof connect_ms) != 0 ||
        zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &retry_ms, sizeof retry_ms) != 0 ||
        ps_client_curve_apply(c, sock) != 0 || zmq_connect(sock, c->shards[i].endpoint) != 0) {
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

/* Reads every reply waiting on the heartbeat socket of shard i. */
static void heartbeat_drain(ps_client *c, size_t i, const hb_shard *h, ps_msg *m)
{
    ps_frames *f = &c->hb_frames;
    ps_error err;
    for (;;) {
        int rc = ps_wire_recv(h->sock, false, ZMQ_DONTWAIT, f, m, &err);
        if (rc != PS_EZMQ)
            atomic_store(&c->shards[i].last_answer_ms, ps_clock_ms());
        if (rc == 0)
            heartbeat_reply(c, i, h, m);
        ps_frames_close(f);
        if (rc == PS_EZMQ)
            return;
    }
}

/* The heartbeat thread: every heartbeat_ms a HEARTBEAT to each shard that
 * knows us, so a worker busy computing or waiting in a parked pull is not
 * evicted. It shares nothing with the main thread that could hold it up: a
 * ZeroMQ context of its own (the main one's I/O thread may be busy with a
 * push of tens of MB), sockets of its own, no lock but final_mu, sends that
 * never block; it waits in zmq_poll on its sockets and hb_stop_fd. Replies
 * are read at once: they keep last_answer_ms, and tell the main thread of a
 * final ERROR or of a shard that lost us (heartbeat_reply). */
static void *heartbeat_main(void *arg)
{
    ps_client *c = arg;
    hb_shard hs[PS_MAX_SHARDS];
    zmq_pollitem_t items[PS_MAX_SHARDS + 1];
    size_t item_shard[PS_MAX_SHARDS];
    memset(hs, 0, sizeof hs);
    for (size_t i = 0; i < c->nshards; i++)
        hs[i].sock = heartbeat_socket(c, i);
    ps_msg out, in;
    ps_msg_init(&out, PS_MSG_HEARTBEAT);
    out.job = c->job;
    out.flags = PS_FLAG_QUIET; /* the main socket's replies tell us psd is alive too */
    ps_frames_init(&c->hb_frames);
    uint64_t seq = 0, next = ps_clock_ms();
    for (;;) {
        uint64_t now = ps_clock_ms();
        if (now >= next) {
            for (size_t i = 0; i < c->nshards; i++) {
                hb_shard *h = &hs[i];
                uint32_t gen = atomic_load(&c->shards[i].reg_gen); /* before the id */
                uint32_t id = atomic_load(&c->shards[i].hb_worker_id);
                if (h->sock == NULL || id == 0)
                    continue;
                out.worker_id = id;
                out.seq = ++seq;
                ps_client_report_get(c, &out.loss, &out.samples_per_s);
                if (gen != h->gen) {
                    h->gen = gen;
                    h->gen_first_seq = out.seq;
                }
                ps_wire_send(h->sock, NULL, 0, &out, NULL, ZMQ_DONTWAIT);
            }
            /* the next one is due heartbeat_ms after this one was, or
             * after now when this one came late: no burst to catch up */
            next += (uint64_t)c->heartbeat_ms;
            if (next <= now)
                next = now + (uint64_t)c->heartbeat_ms;
        }
        size_t n = 0;
        for (size_t i = 0; i < c->nshards; i++) {
            if (hs[i].sock == NULL)
                continue;
            items[n] = (zmq_pollitem_t){.socket = hs[i].sock, .events = ZMQ_POLLIN};
            item_shard[n++] = i;
        }
        items[n] = (zmq_pollitem_t){.fd = c->hb_stop_fd, .events = ZMQ_POLLIN};
        now = ps_clock_ms();
        long wait_ms = next > now ? (long)(next - now) : 0;
        if (zmq_poll(items, (int)n + 1, wait_ms) < 0 && errno != EINTR)
            break;
        if (items[n].revents & ZMQ_POLLIN)
            break;
        for (size_t k = 0; k < n; k++)
            if (items[k].revents & ZMQ_POLLIN)
                heartbeat_drain(c, item_shard[k], &hs[item_shard[k]], &in);
    }
    for (size_t i = 0; i < c->nshards; i++)
        if (hs[i].sock != NULL)
            zmq_close(hs[i].sock);
    return NULL;
}

/* Starts the heartbeat thread with its context and stop descriptor; 0 or
 * PS_ENOMEM / PS_EZMQ (nothing is left started then). */
int ps_heartbeat_start(ps_client *c)
{
    c->hb_stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->hb_stop_fd < 0)
        return PS_ENOMEM;
    c->hb_ctx = zmq_ctx_new();
    if (c->hb_ctx == NULL)
        return PS_EZMQ;
    /* signals are the caller's thread's business: its wait returns PS_EINTR */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&c->hb_thread, NULL, heartbeat_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return PS_ENOMEM;
    c->hb_started = true;
    return 0;
}

/* Ends the heartbeat thread at once and frees what heartbeat_start made. */
void ps_heartbeat_stop(ps_client *c)
{
    if (c->hb_started) {
        uint64_t one = 1;
        ssize_t w;
        do {
            w = write(c->hb_stop_fd, &one, sizeof one);
        } while (w < 0 && errno == EINTR);
        pthread_join(c->hb_thread, NULL);
        c->hb_started = false;
    }
    if (c->hb_ctx != NULL) {
        zmq_ctx_term(c->hb_ctx);
        c->hb_ctx = NULL;
    }
    if (c->hb_stop_fd >= 0) {
        close(c->hb_stop_fd);
        c->hb_stop_fd = -1;
    }
}
