/* test_client.c — libpsworker against a fake two-shard server: a thread with
 * one ROUTER per shard on loopback that speaks the protocol with scripted
 * misbehaviour, and records what it received for the test to check. */
#include <arpa/inet.h>
#include <check.h>

#include "check_main.h"
#include "loopback.h"
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client_impl.h" /* the first release's struct sizes, ps_client_struct_take */
#include "psworker.h"
#include "shm.h"
#include "util.h"
#include "wire.h"

#define NSHARDS 2
#define P       10 /* shard 0: [0, 5), shard 1: [5, 10) */
#define MAXREQ  8

/* scripted behaviour */
enum {
    HOLD_PULL0 = 1 << 0,         /* shard 0 answers a PULL only once shard 1 has one */
    DROP_PULL0 = 1 << 1,         /* shard 0 ignores its first PULL */
    SILENT_PULL = 1 << 2,        /* no PULL is answered */
    ERROR_HELLO0 = 1 << 3,       /* shard 0 refuses HELLO: another job */
    ERROR_PULL1 = 1 << 4,        /* shard 1 refuses PULL: range */
    DISAGREE1 = 1 << 5,          /* shard 1's WELCOME has another num_workers */
    BAD_MAP = 1 << 6,            /* the shard map leaves a gap */
    GARBAGE0 = 1 << 7,           /* shard 0 sends an undecodable reply before its PULL_REPLY */
    WRONG_TYPE0 = 1 << 8,        /* shard 0 answers PULL with ACK */
    FORGET1 = 1 << 9,            /* shard 1 answers its first PULL "unknown worker" */
    HOLD_ACK = 1 << 10,          /* a shard ACKs a PUSH only once a PULL followed it */
    SHM_OFFER = 1 << 11,         /* a HELLO naming a host gets a shared-memory segment */
    SHM_BOGUS = 1 << 12,         /* ... whose token in the WELCOME is wrong */
    SILENT_PUSH0 = 1 << 13,      /* shard 0 ignores its first PUSH, resent or not */
    FINAL_PULL1 = 1 << 14,       /* shard 1 answers PULL with PS_ESTOPPED, seq 0 */
    HB_FINAL0 = 1 << 15,         /* shard 0 answers HEARTBEAT with PS_EABORTED, seq 0 */
    HB_FORGET1 = 1 << 16,        /* shard 1 answers HEARTBEAT of its first worker id PS_EWORKER */
    PARK_PULL = 1 << 17,         /* a PULL is answered PARK_MS after it first came */
    PAUSE_PULL0 = 1 << 18,       /* shard 0's first PULL stops the fake PAUSE_MS, as SIGSTOP */
    COMPLETE_PUSH0 = 1 << 19,    /* shard 0 answers PUSH with PS_ECOMPLETE, another seq */
    ASYNC = 1 << 20,             /* the WELCOMEs say mode async */
    HB_FORGET1_PUSHED = 1 << 21, /* as HB_FORGET1, once shard 1 has a push */
};

#define PARK_MS  1200
#define PAUSE_MS 900

typedef struct fake {
    int script;
    int bind_delay_ms; /* > 0: the thread binds endpoints[] itself after this */
    void *ctx;
    void *sock[NSHARDS];
    char endpoint[NSHARDS][64];
    pthread_t thread;
    atomic_int stop;
    float theta[P];
    /* what came in, for the test to read after fake_stop */
    int events;
    int hellos[NSHARDS], hello_order[NSHARDS];
    int32_t hello_rank[NSHARDS][MAXREQ];
    char hello_job[NSHARDS][PS_JOB_NAME_MAX];
    int pulls[NSHARDS];
    uint64_t pull_seq[NSHARDS][MAXREQ], pull_lo[NSHARDS], pull_hi[NSHARDS], pull_min[NSHARDS];
    uint32_t pull_worker[NSHARDS][MAXREQ];
    int pushes[NSHARDS];
    uint64_t push_seq[NSHARDS], push_clock[NSHARDS], push_lo[NSHARDS], push_hi[NSHARDS];
    uint64_t pull_clock[NSHARDS], push_model_version[NSHARDS];
    uint64_t push_bytes[NSHARDS];
    uint32_t push_samples[NSHARDS];
    float pushed[P];
    int heartbeats[NSHARDS], byes[NSHARDS];
    uint32_t bye_flags[NSHARDS];
    char bye_error[NSHARDS][PS_MSG_ERROR_MAX];
    atomic_int mute; /* set by a test: everything that comes in is dropped */
    /* PARK_PULL: per shard, the pull held and when it is due */
    uint64_t park_due[NSHARDS], park_seq[NSHARDS];
    unsigned char park_id[NSHARDS][PS_IDENTITY_MAX];
    size_t park_id_len[NSHARDS];
    /* shared memory: the segments offered, what the HELLO asked, how each
     * push's gradient and each pull's θ travelled */
    ps_shm seg[NSHARDS];
    char hello_host[NSHARDS][PS_HOST_MAX];
    ps_encoding push_enc[NSHARDS][MAXREQ];
    uint32_t pull_flags[NSHARDS][MAXREQ];
    uint64_t silent_seq; /* SILENT_PUSH0: the push ignored */
    /* shard 0's PULL held for HOLD_PULL0 */
    bool held;
    unsigned char held_id[PS_IDENTITY_MAX];
    size_t held_id_len;
    uint64_t held_seq;
    /* per shard, the ACK held for HOLD_ACK */
    bool ack_held[NSHARDS];
    unsigned char ack_id[NSHARDS][PS_IDENTITY_MAX];
    size_t ack_id_len[NSHARDS];
    uint64_t ack_seq[NSHARDS];
    /* the thread's scratch */
    ps_frames frames;
    ps_msg in, out;
    ps_layout layout; /* the WELCOME's */
    ps_error err;
} fake;

static uint64_t now_ms(void)
{
    return ps_clock_ms();
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void fake_bind(fake *f, bool wildcard)
{
    for (int i = 0; i < NSHARDS; i++) {
        f->sock[i] = zmq_socket(f->ctx, ZMQ_ROUTER);
        ck_assert_ptr_nonnull(f->sock[i]);
        int linger = 0;
        zmq_setsockopt(f->sock[i], ZMQ_LINGER, &linger, sizeof linger);
        ck_assert_int_eq(zmq_bind(f->sock[i], wildcard ? "tcp://127.0.0.1:*" : f->endpoint[i]), 0);
        size_t len = sizeof f->endpoint[i];
        ck_assert_int_eq(zmq_getsockopt(f->sock[i], ZMQ_LAST_ENDPOINT, f->endpoint[i], &len), 0);
    }
}

static void fake_reply(fake *f, int i, const void *id, size_t id_len, const void *payload)
{
    ck_assert_int_eq(ps_wire_send(f->sock[i], id, id_len, &f->out, payload, 0), 0);
}

static void reply_init(fake *f, ps_msg_type type, uint64_t seq)
{
    ps_msg_init(&f->out, type);
    f->out.seq = seq;
}

static void fake_error(fake *f, int i, const void *id, size_t id_len, int code, const char *text)
{
    reply_init(f, PS_MSG_ERROR, f->in.seq);
    f->out.worker_id = f->in.worker_id; /* as psd's refusals do */
    f->out.status = code;
    f->out.error = text;
    fake_reply(f, i, id, id_len, NULL);
}

/* An ERROR with a final status and the given seq (0: unsolicited). */
static void fake_final(fake *f, int i, const void *id, size_t id_len, int code, uint64_t seq,
                       const char *text)
{
    reply_init(f, PS_MSG_ERROR, seq);
    f->out.status = code;
    f->out.error = text;
    fake_reply(f, i, id, id_len, NULL);
}

static void fake_welcome(fake *f, int i, const void *id, size_t id_len)
{
    const ps_msg *in = &f->in;
    ps_msg *m = &f->out;
    reply_init(f, PS_MSG_WELCOME, in->seq);
    m->job = in->job;
    m->worker_id = 100u + (uint32_t)i + 10u * (uint32_t)(f->hellos[i] - 1);
    m->rank = in->rank < 0 ? 1 : in->rank;
    m->num_workers = (f->script & DISAGREE1) && i == 1 ? 3 : 2;
    m->num_params = P;
    m->shard_index = (uint32_t)i;
    m->model_version = 5;
    m->mode = (f->script & ASYNC) ? "async" : "sync";
    m->applied = (uint64_t)f->pushes[i]; /* what it holds of the rank: every push it got */
    m->applied_seq = f->push_seq[i];
    ps_layout *l = &f->layout;
    memset(l, 0, sizeof *l);
    l->nshards = NSHARDS;
    for (int k = 0; k < NSHARDS; k++) {
        ps_strlcpy(l->shards[k].endpoint, f->endpoint[k], sizeof l->shards[k].endpoint);
        ps_shard_range(P, NSHARDS, (uint32_t)k, &l->shards[k].key_lo, &l->shards[k].key_hi);
    }
    if (f->script & BAD_MAP)
        l->shards[1].key_lo = 6;
    l->ntensors = 2;
    strcpy(l->tensors[0].name, "w");
    l->tensors[0].ndims = 2;
    l->tensors[0].shape[0] = 4;
    l->tensors[0].shape[1] = 2;
    strcpy(l->tensors[1].name, "b");
    l->tensors[1].ndims = 1;
    l->tensors[1].shape[0] = 2;
    l->tensors[1].offset = 8;
    m->layout = l;
    if ((f->script & SHM_OFFER) && in->host[0] != '\0') {
        uint64_t lo, hi;
        ps_shard_range(P, NSHARDS, (uint32_t)i, &lo, &hi);
        ps_error err;
        if (!ps_shm_mapped(&f->seg[i]))
            ck_assert_int_eq(ps_shm_create(&f->seg[i], (size_t)(hi - lo), &err), 0);
        m->shm_pid = (uint32_t)getpid();
        m->shm_fd = (uint32_t)f->seg[i].fd;
        m->shm_bytes = f->seg[i].bytes;
        m->shm_token = f->seg[i].token ^ ((f->script & SHM_BOGUS) ? 1u : 0u);
    }
    fake_reply(f, i, id, id_len, NULL);
}

static void fake_pull_reply(fake *f, int i, const void *id, size_t id_len, uint64_t seq)
{
    uint64_t lo, hi;
    ps_shard_range(P, NSHARDS, (uint32_t)i, &lo, &hi);
    reply_init(f, PS_MSG_PULL_REPLY, seq);
    f->out.key_lo = lo;
    f->out.key_hi = hi;
    f->out.model_version = 7u + (uint64_t)i;
    f->out.encoding = PS_ENC_F32;
    f->out.payload_bytes = (hi - lo) * sizeof(float);
    if (ps_shm_mapped(&f->seg[i]) && (f->in.flags & PS_FLAG_SHM) && f->in.seq == seq) {
        memcpy(f->seg[i].theta, f->theta + lo, (size_t)f->out.payload_bytes);
        f->out.encoding = PS_ENC_SHM_F32;
        fake_reply(f, i, id, id_len, NULL);
        return;
    }
    fake_reply(f, i, id, id_len, f->theta + lo);
}

static void fake_ack(fake *f, int i, const void *id, size_t id_len, uint64_t seq)
{
    reply_init(f, PS_MSG_ACK, seq);
    f->out.model_version = 8u + (uint64_t)i;
    fake_reply(f, i, id, id_len, NULL);
}

/* A PULL, or the pull riding in a PUSH (riding): answered at once, as one
 * PULL_REPLY that acknowledges the push too; when the script makes it wait
 * or never answer, a riding pull's push is ACKed first, as psd does. */
static void fake_pull(fake *f, int i, const void *id, size_t id_len, bool riding)
{
    const ps_msg *in = &f->in;
    if (f->ack_held[i]) {
        f->ack_held[i] = false;
        fake_ack(f, i, f->ack_id[i], f->ack_id_len[i], f->ack_seq[i]);
    }
    bool waits = (f->script & (SILENT_PULL | PARK_PULL)) ||
                 (i == 0 && (f->script & DROP_PULL0) && f->pulls[i] == 0) ||
                 (i == 0 && (f->script & HOLD_PULL0) && f->pulls[1] == 0);
    if (riding && waits)
        fake_ack(f, i, id, id_len, in->seq);
    int n = f->pulls[i]++;
    if (n < MAXREQ) {
        f->pull_seq[i][n] = in->seq;
        f->pull_worker[i][n] = in->worker_id;
        f->pull_flags[i][n] = in->flags;
    }
    f->pull_lo[i] = in->key_lo;
    f->pull_hi[i] = in->key_hi;
    f->pull_min[i] = in->min_version;
    f->pull_clock[i] = riding ? in->pull_clock : in->clock;
    if (f->script & SILENT_PULL)
        return;
    if ((f->script & PAUSE_PULL0) && i == 0 && n == 0)
        sleep_ms(PAUSE_MS); /* nothing is read meanwhile: requests queue up */
    if (i == 1 && (f->script & FINAL_PULL1)) {
        fake_final(f, i, id, id_len, PS_ESTOPPED, 0, "psd stopped before the job ended (SIGTERM)");
        return;
    }
    if (f->script & PARK_PULL) {
        if (f->park_due[i] == 0 || f->park_seq[i] != in->seq)
            f->park_due[i] = now_ms() + PARK_MS;
        f->park_seq[i] = in->seq;
        memcpy(f->park_id[i], id, id_len);
        f->park_id_len[i] = id_len;
        return;
    }
    if (i == 0 && (f->script & DROP_PULL0) && n == 0)
        return;
    if (i == 1 && (f->script & ERROR_PULL1)) {
        fake_error(f, i, id, id_len, PS_ERANGE, "keys [5, 10) leave the shard");
        return;
    }
    if (i == 1 && (f->script & FORGET1) && n == 0) {
        fake_error(f, i, id, id_len, PS_EWORKER, "unknown worker 101");
        return;
    }
    if (i == 0 && (f->script & WRONG_TYPE0)) {
        reply_init(f, PS_MSG_ACK, in->seq);
        fake_reply(f, i, id, id_len, NULL);
        return;
    }
    if (i == 0 && (f->script & GARBAGE0)) {
        ck_assert_int_ge(zmq_send(f->sock[0], id, id_len, ZMQ_SNDMORE), 0);
        ck_assert_int_ge(zmq_send(f->sock[0], "\xff\xff\xff", 3, 0), 0);
    }
    if (i == 0 && (f->script & HOLD_PULL0) && f->pulls[1] == 0) {
        f->held = true;
        memcpy(f->held_id, id, id_len);
        f->held_id_len = id_len;
        f->held_seq = in->seq;
        return;
    }
    fake_pull_reply(f, i, id, id_len, in->seq);
    if (i == 1 && f->held) {
        f->held = false;
        fake_pull_reply(f, 0, f->held_id, f->held_id_len, f->held_seq);
    }
}

static void fake_push(fake *f, int i, const void *id, size_t id_len)
{
    const ps_msg *in = &f->in;
    int n = f->pushes[i]++;
    if (n < MAXREQ)
        f->push_enc[i][n] = in->encoding;
    if (i == 0 && (f->script & COMPLETE_PUSH0)) {
        fake_final(f, i, id, id_len, PS_ECOMPLETE, in->seq + 1000, "the job is complete");
        return;
    }
    if (i == 0 && (f->script & SILENT_PUSH0) && (n == 0 || in->seq == f->silent_seq)) {
        f->silent_seq = in->seq; /* and its resends */
        return;
    }
    const void *payload = in->payload;
    if (in->encoding == PS_ENC_SHM_F32 && ps_shm_mapped(&f->seg[i]) &&
        ps_shm_grad_seq(&f->seg[i]) == in->seq)
        payload = f->seg[i].grad;
    f->push_seq[i] = in->seq;
    f->push_clock[i] = in->clock;
    f->push_model_version[i] = in->model_version;
    f->push_samples[i] = in->samples;
    f->push_lo[i] = in->key_lo;
    f->push_hi[i] = in->key_hi;
    f->push_bytes[i] = in->payload_bytes;
    if (in->key_lo <= in->key_hi && in->key_hi <= P && payload != NULL)
        memcpy(f->pushed + in->key_lo, payload, (size_t)in->payload_bytes);
    if (in->flags & PS_FLAG_PULL) {
        fake_pull(f, i, id, id_len, true);
        return;
    }
    if (f->script & HOLD_ACK) {
        f->ack_held[i] = true;
        memcpy(f->ack_id[i], id, id_len);
        f->ack_id_len[i] = id_len;
        f->ack_seq[i] = in->seq;
        return;
    }
    fake_ack(f, i, id, id_len, in->seq);
}

static void fake_handle(fake *f, int i)
{
    const ps_msg *in = &f->in;
    const void *id = f->frames.identity;
    size_t id_len = f->frames.identity_len;
    switch (in->type) {
    case PS_MSG_HELLO: {
        int n = f->hellos[i]++;
        if (n < MAXREQ)
            f->hello_rank[i][n] = in->rank;
        f->hello_order[i] = ++f->events;
        ps_strlcpy(f->hello_job[i], in->job, sizeof f->hello_job[i]);
        ps_strlcpy(f->hello_host[i], in->host, sizeof f->hello_host[i]);
        if (i == 0 && (f->script & ERROR_HELLO0)) {
            char text[PS_MSG_ERROR_MAX];
            snprintf(text, sizeof text, "job \"%s\" is not this server's job \"y\"", in->job);
            fake_error(f, i, id, id_len, PS_EJOB, text);
        } else {
            fake_welcome(f, i, id, id_len);
        }
        break;
    }
    case PS_MSG_PULL:
        fake_pull(f, i, id, id_len, false);
        break;
    case PS_MSG_PUSH:
        fake_push(f, i, id, id_len);
        break;
    case PS_MSG_HEARTBEAT:
    case PS_MSG_BYE:
        if (in->type == PS_MSG_BYE) {
            f->byes[i]++;
            f->bye_flags[i] = in->flags;
            ps_strlcpy(f->bye_error[i], in->error, sizeof f->bye_error[i]);
        } else {
            f->heartbeats[i]++;
            if (i == 0 && (f->script & HB_FINAL0)) {
                fake_final(f, i, id, id_len, PS_EABORTED, 0,
                           "job stopped: rank 1 was silent for 3100 ms (on_worker_loss: abort)");
                break;
            }
            if (i == 1 && in->worker_id == 101 &&
                ((f->script & HB_FORGET1) ||
                 ((f->script & HB_FORGET1_PUSHED) && f->pushes[1] > 0))) {
                fake_error(f, i, id, id_len, PS_EWORKER, "worker 101 is not registered");
                break;
            }
        }
        reply_init(f, PS_MSG_ACK, in->seq);
        fake_reply(f, i, id, id_len, NULL);
        break;
    default:
        break;
    }
}

static void *fake_main(void *arg)
{
    fake *f = arg;
    if (f->bind_delay_ms > 0) {
        sleep_ms(f->bind_delay_ms);
        fake_bind(f, false);
    }
    uint64_t give_up = now_ms() + 20000; /* never outlive a broken test */
    while (!atomic_load(&f->stop) && now_ms() < give_up) {
        zmq_pollitem_t items[NSHARDS];
        for (int i = 0; i < NSHARDS; i++)
            items[i] = (zmq_pollitem_t){.socket = f->sock[i], .events = ZMQ_POLLIN};
        for (int i = 0; i < NSHARDS; i++) {
            if (f->park_due[i] != 0 && now_ms() >= f->park_due[i]) {
                f->park_due[i] = 0;
                fake_pull_reply(f, i, f->park_id[i], f->park_id_len[i], f->park_seq[i]);
            }
        }
        if (zmq_poll(items, NSHARDS, 10) <= 0)
            continue;
        for (int i = 0; i < NSHARDS; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            int rc;
            while ((rc = ps_wire_recv(f->sock[i], true, ZMQ_DONTWAIT, &f->frames, &f->in,
                                      &f->err)) != PS_EZMQ) {
                if (rc == 0 && !atomic_load(&f->mute))
                    fake_handle(f, i);
                ps_frames_close(&f->frames);
            }
            ps_frames_close(&f->frames);
        }
    }
    for (int i = 0; i < NSHARDS; i++)
        zmq_close(f->sock[i]);
    return NULL;
}

/* Starts the fake with a script. With bind_delay_ms > 0 it binds free ports
 * only after that delay, as a server that starts late. */
static void fake_start(fake *f, int script, int bind_delay_ms)
{
    memset(f, 0, sizeof *f);
    f->script = script;
    f->bind_delay_ms = bind_delay_ms;
    for (int k = 0; k < P; k++)
        f->theta[k] = 0.5f * (float)k + 1.0f;
    f->ctx = zmq_ctx_new();
    ck_assert_ptr_nonnull(f->ctx);
    if (bind_delay_ms > 0) {
        for (int i = 0; i < NSHARDS; i++)
            snprintf(f->endpoint[i], sizeof f->endpoint[i], "tcp://127.0.0.1:%d",
                     ps_test_free_port());
    } else {
        fake_bind(f, true);
    }
    atomic_init(&f->stop, 0);
    atomic_init(&f->mute, 0);
    ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(fake *f)
{
    atomic_store(&f->stop, 1);
    ck_assert_int_eq(pthread_join(f->thread, NULL), 0);
    zmq_ctx_term(f->ctx);
    for (int i = 0; i < NSHARDS; i++)
        ps_shm_detach(&f->seg[i]);
}

/* A client of both fake shards; socket_only as ps_client_opts has it. */
static int open_client_opt(fake *f, const char *job, int rank, int timeout_ms, int socket_only,
                           ps_client **c, char *errbuf, size_t cap)
{
    static const char *eps[NSHARDS];
    for (int i = 0; i < NSHARDS; i++)
        eps[i] = f->endpoint[i];
    ps_client_opts o = {.size = sizeof(ps_client_opts),
                        .job = job,
                        .servers = eps,
                        .num_servers = NSHARDS,
                        .rank = rank,
                        .timeout_ms = timeout_ms,
                        .socket_only = socket_only};
    return ps_client_open(&o, c, errbuf, cap);
}

static int open_client(fake *f, const char *job, int rank, int timeout_ms, ps_client **c,
                       char *errbuf, size_t cap)
{
    return open_client_opt(f, job, rank, timeout_ms, 0, c, errbuf, cap);
}

/* The lines a client logs through ps_client_opts.log_fn (caller's thread). */
typedef struct notes {
    int warnings, infos;
    char warning[256], info[256];
} notes;

static void notes_add(void *arg, int warning, const char *line)
{
    notes *n = arg;
    if (warning) {
        n->warnings++;
        ps_strlcpy(n->warning, line, sizeof n->warning);
    } else {
        n->infos++;
        ps_strlcpy(n->info, line, sizeof n->info);
    }
}

/* A client of both fake shards with the heartbeat thread on, logging into n
 * (when not NULL). */
static int open_client_hb(fake *f, int heartbeat_ms, int timeout_ms, notes *n, ps_client **c)
{
    static const char *eps[NSHARDS];
    for (int i = 0; i < NSHARDS; i++)
        eps[i] = f->endpoint[i];
    ps_client_opts o = {.size = sizeof(ps_client_opts),
                        .job = "digits",
                        .servers = eps,
                        .num_servers = NSHARDS,
                        .rank = -1,
                        .timeout_ms = timeout_ms,
                        .heartbeat_ms = heartbeat_ms,
                        .socket_only = 1,
                        .log_fn = n != NULL ? notes_add : NULL,
                        .log_arg = n};
    char err[256];
    return ps_client_open(&o, c, err, sizeof err);
}

static void expected(char *buf, size_t cap, const char *ep, const char *text)
{
    snprintf(buf, cap, "%s: %s", ep, text);
}

/* ---- tests ------------------------------------------------------------- */

START_TEST(open_learns_rank_and_layout_from_both_shards)
{
    static fake f;
    fake_start(&f, 0, 0);
    ps_client *c = NULL;
    char err[256];
    ck_assert_int_eq(open_client(&f, "digits", -1, 2000, &c, err, sizeof err), 0);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(ps_client_rank(c), 1);
    ck_assert_uint_eq(ps_client_num_params(c), P);
    ck_assert_uint_eq(ps_client_num_workers(c), 2);
    ck_assert_str_eq(ps_client_mode(c), "sync");
    ck_assert_uint_eq(ps_client_num_tensors(c), 2);
    const char *name;
    uint64_t off;
    const uint64_t *shape;
    uint32_t ndims;
    ck_assert_int_eq(ps_client_tensor(c, 0, &name, &off, &shape, &ndims), 0);
    ck_assert_str_eq(name, "w");
    ck_assert_uint_eq(off, 0);
    ck_assert_uint_eq(ndims, 2);
    ck_assert_uint_eq(shape[0], 4);
    ck_assert_uint_eq(shape[1], 2);
    ck_assert_int_eq(ps_client_tensor(c, 1, &name, &off, &shape, &ndims), 0);
    ck_assert_str_eq(name, "b");
    ck_assert_uint_eq(off, 8);
    ck_assert_int_eq(ps_client_tensor(c, 2, &name, &off, &shape, &ndims), PS_EINVAL);
    ck_assert_int_eq(ps_client_close(&c), 0);
    ck_assert_ptr_null(c);
    fake_stop(&f);
    ck_assert_int_eq(f.hellos[0], 1);
    ck_assert_int_eq(f.hellos[1], 1);
    ck_assert_int_lt(f.hello_order[0], f.hello_order[1]); /* shard 0 first, for the rank */
    ck_assert_int_eq(f.hello_rank[0][0], -1);
    ck_assert_int_eq(f.hello_rank[1][0], 1); /* the rank shard 0 gave */
    ck_assert_str_eq(f.hello_job[1], "digits");
    ck_assert_int_eq(f.byes[0], 1);
    ck_assert_int_eq(f.byes[1], 1);
}
END_TEST

START_TEST(pull_assembles_theta_in_key_order)
{
    static fake f;
    fake_start(&f, 0, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client(&f, "digits", 0, 2000, &c, NULL, 0), 0);
    float theta[P] = {0};
    uint64_t version = 0;
    ck_assert_int_eq(ps_client_pull(c, 3, theta, P, &version), 0);
    for (int k = 0; k < P; k++)
        ck_assert_float_eq(theta[k], 0.5f * (float)k + 1.0f);
    ck_assert_uint_eq(version, 7); /* the smaller of 7 and 8 */
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    ck_assert_uint_eq(f.pull_lo[0], 0);
    ck_assert_uint_eq(f.pull_hi[0], 5);
    ck_assert_uint_eq(f.pull_lo[1], 5);
    ck_assert_uint_eq(f.pull_hi[1], 10);
    ck_assert_uint_eq(f.pull_min[0], 3);
    ck_assert_uint_eq(f.pull_min[1], 3);
    ck_assert_uint_eq(f.pull_worker[0][0], 100); /* each shard's own worker id */
    ck_assert_uint_eq(f.pull_worker[1][0], 101);
    ck_assert_uint_eq(f.pull_seq[0][0], 2); /* HELLO was 1 */
}
END_TEST

START_TEST(pull_carries_the_clock_and_push_the_version_of_theta_it_came_from)
{
    /* ssp: a pull says the worker's clock; a push says, per shard, the
     * version of the slice of θ last pulled from it (7 and 8 here) */
    static fake f;
    fake_start(&f, 0, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client(&f, "digits", 0, 2000, &c, NULL, 0), 0);
    float theta[P] = {0}, grad[P] = {0};
    ck_assert_int_eq(ps_client_pull_clock(c, 9, 0, theta, P, NULL), 0);
    ck_assert_uint_eq(f.pull_clock[0], 9);
    ck_assert_uint_eq(f.pull_clock[1], 9);
    ck_assert_int_eq(ps_client_push(c, 9, grad, P, 4, NULL), 0);
    ck_assert_uint_eq(f.push_model_version[0], 7);
    ck_assert_uint_eq(f.push_model_version[1], 8);
    ps_push_pull pp = {.size = sizeof(ps_push_pull),
                       .n = P,
                       .clock = 10,
                       .grad = grad,
                       .samples = 4,
                       .pull_clock = 11,
                       .theta = theta};
    ck_assert_int_eq(ps_client_push_pull(c, &pp), 0);
    ck_assert_uint_eq(f.pull_clock[0], 11);
    ck_assert_uint_eq(f.pull_clock[1], 11);
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), 0);
    ck_assert_uint_eq(f.pull_clock[0], 0); /* a plain pull: clock 0 */
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
}
END_TEST

START_TEST(pull_goes_to_every_shard_before_any_reply)
{
    /* shard 0 answers only once shard 1 has a request: a client that awaited
     * shard 0 before asking shard 1 would time out */
    static fake f;
    fake_start(&f, HOLD_PULL0, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client(&f, "digits", 0, 1400, &c, NULL, 0), 0);
    float theta[P] = {0};
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), 0);
    for (int k = 0; k < P; k++)
        ck_assert_float_eq(theta[k], 0.5f * (float)k + 1.0f);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    ck_assert_int_eq(f.pulls[0], 1); /* answered without a retry */
    ck_assert_int_eq(f.pulls[1], 1);
}
END_TEST

START_TEST(push_sends_each_shard_its_slice)
{
    static fake f;
    fake_start(&f, 0, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client(&f, "digits", 1, 2000, &c, NULL, 0), 0);
    float grad[P];
    for (int k = 0; k < P; k++)
        grad[k] = -(float)k - 0.25f;
    uint64_t version = 0;
    ck_assert_int_eq(ps_client_push(c, 3, grad, P, 32, &version), 0);
    ck_assert_uint_eq(version, 8);
    ck_assert_uint_eq(ps_client_push_flags(c), 0);
    ck_assert_int_eq(ps_client_heartbeat(c), 0);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    for (int i = 0; i < NSHARDS; i++) {
        ck_assert_int_eq(f.pushes[i], 1);
        ck_assert_uint_eq(f.push_clock[i], 3);
        ck_assert_uint_eq(f.push_samples[i], 32);
        ck_assert_uint_eq(f.push_bytes[i], 5 * sizeof(float));
        ck_assert_uint_eq(f.push_seq[i], 2);
        ck_assert_int_eq(f.heartbeats[i], 1);
    }
    ck_assert_uint_eq(f.push_lo[0], 0);
    ck_assert_uint_eq(f.push_hi[0], 5);
    ck_assert_uint_eq(f.push_lo[1], 5);
    ck_assert_uint_eq(f.push_hi[1], 10);
    for (int k = 0; k < P; k++)
        ck_assert_float_eq(f.pushed[k], grad[k]);
}
END_TEST

static void count_call(void *arg)
{
    ++*(int *)arg;
}

START_TEST(push_pull_carries_the_pull_in_the_push)
{
    /* each shard would ACK a push of its own only once a pull followed it:
     * a client that awaited the ACK before pulling would time out. The pull
     * rides in the push (PS_FLAG_PULL, same seq): one request, one reply */
    static fake f;
    fake_start(&f, HOLD_ACK, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client(&f, "digits", 0, 1400, &c, NULL, 0), 0);
    float grad[P], theta[P] = {0};
    for (int k = 0; k < P; k++)
        grad[k] = (float)k - 3.5f;
    int calls = 0;
    ps_push_pull pp = {.size = sizeof(ps_push_pull),
                       .n = P,
                       .clock = 3,
                       .grad = grad,
                       .samples = 16,
                       .min_version = 4,
                       .theta = theta,
                       .meanwhile = count_call,
                       .arg = &calls};
    ck_assert_int_eq(ps_client_push_pull(c, &pp), 0);
    ck_assert_int_eq(pp.pulled, 1);
    ck_assert_uint_eq(pp.version, 7); /* the pull's, the smaller of 7 and 8 */
    ck_assert_int_eq(calls, 1);
    for (int k = 0; k < P; k++)
        ck_assert_float_eq(theta[k], 0.5f * (float)k + 1.0f);
    /* θ left to the client: with two shards it is assembled in its memory */
    ps_push_pull in_client = {.size = sizeof(ps_push_pull),
                              .n = P,
                              .clock = 4,
                              .grad = grad,
                              .samples = 16,
                              .min_version = 5};
    ck_assert_int_eq(ps_client_push_pull(c, &in_client), 0);
    ck_assert_int_eq(in_client.pulled, 1);
    ck_assert_ptr_nonnull(in_client.view);
    ck_assert_ptr_ne(in_client.view, theta);
    for (int k = 0; k < P; k++)
        ck_assert_float_eq(in_client.view[k], 0.5f * (float)k + 1.0f);
    /* the next request is numbered past the pull that rode along */
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), 0);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    for (int i = 0; i < NSHARDS; i++) {
        ck_assert_int_eq(f.pushes[i], 2); /* nothing was sent twice */
        ck_assert_int_eq(f.pulls[i], 3);  /* two riding in the pushes, one of its own */
        ck_assert_uint_eq(f.push_seq[i], 3);
        ck_assert_uint_eq(f.push_clock[i], 4);
        ck_assert_uint_eq(f.pull_seq[i][0], 2); /* the first push's (HELLO was 1) */
        ck_assert_uint_eq(f.pull_seq[i][1], 3);
        ck_assert_uint_eq(f.pull_seq[i][2], 4);
        ck_assert_uint_eq(f.pull_flags[i][0], PS_FLAG_PULL);
        ck_assert_uint_eq(f.pull_flags[i][2], 0);
        ck_assert_uint_eq(f.pull_min[i], 0); /* the last pull's: the plain one */
    }
    for (int k = 0; k < P; k++)
        ck_assert_float_eq(f.pushed[k], grad[k]);
}
END_TEST

START_TEST(push_pull_whose_pull_times_out_still_reports_the_push)
{
    static fake f;
    fake_start(&f, SILENT_PULL, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client(&f, "digits", 0, 700, &c, NULL, 0), 0);
    float grad[P] = {0}, theta[P] = {0};
    ps_push_pull pp = {.size = sizeof(ps_push_pull),
                       .n = P,
                       .grad = grad,
                       .samples = 1,
                       .min_version = 1,
                       .theta = theta};
    uint64_t t0 = now_ms();
    ck_assert_int_eq(ps_client_push_pull(c, &pp), 0);
    uint64_t took = now_ms() - t0;
    ck_assert_int_eq(pp.pulled, 0);
    ck_assert_uint_ge(took, 695);
    ck_assert_uint_lt(took, 2000);
    /* the shard named is the one whose ACK came first, so its pull's
     * deadline came first: either, as the fake answers them in turn */
    char want0[256], want1[256];
    expected(want0, sizeof want0, f.endpoint[0], "no reply to PULL within 700 ms (sent 3 times)");
    expected(want1, sizeof want1, f.endpoint[1], "no reply to PULL within 700 ms (sent 3 times)");
    const char *said = ps_client_last_error(c);
    ck_assert_msg(strcmp(said, want0) == 0 || strcmp(said, want1) == 0, "last error: %s", said);
    /* overlapping buffers are refused before anything is sent */
    ps_push_pull overlap = {.size = sizeof(ps_push_pull),
                            .n = P,
                            .clock = 1,
                            .grad = grad,
                            .samples = 1,
                            .theta = grad + 1};
    ck_assert_int_eq(ps_client_push_pull(c, &overlap), PS_EINVAL);
    ck_assert_int_eq(ps_client_push_pull(c, NULL), PS_EINVAL);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    for (int i = 0; i < NSHARDS; i++) {
        ck_assert_int_eq(f.pushes[i], 1); /* ACKed at once: never sent again */
        ck_assert_int_eq(f.pulls[i], 3);
    }
}
END_TEST

START_TEST(dropped_reply_is_retried_with_the_same_seq)
{
    static fake f;
    fake_start(&f, DROP_PULL0, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client(&f, "digits", 0, 1400, &c, NULL, 0), 0);
    float theta[P] = {0};
    uint64_t t0 = now_ms();
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), 0);
    uint64_t took = now_ms() - t0;
    ck_assert_uint_ge(took, 190); /* the first attempt has 1/7 of 1400 ms */
    ck_assert_uint_lt(took, 1400);
    for (int k = 0; k < P; k++)
        ck_assert_float_eq(theta[k], 0.5f * (float)k + 1.0f);
    /* the next request uses the next seq and is answered at once */
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), 0);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    ck_assert_int_eq(f.pulls[0], 3);
    ck_assert_int_eq(f.pulls[1], 2);
    ck_assert_uint_eq(f.pull_seq[0][0], 2);
    ck_assert_uint_eq(f.pull_seq[0][1], 2);
    ck_assert_uint_eq(f.pull_seq[0][2], 3);
}
END_TEST

START_TEST(server_error_on_hello_is_its_code_and_sentence)
{
    static fake f;
    fake_start(&f, ERROR_HELLO0, 0);
    ps_client *c = NULL;
    char err[256], want[256];
    ck_assert_int_eq(open_client(&f, "x", -1, 2000, &c, err, sizeof err), PS_EJOB);
    ck_assert_ptr_null(c);
    expected(want, sizeof want, f.endpoint[0], "job \"x\" is not this server's job \"y\"");
    ck_assert_str_eq(err, want);
    fake_stop(&f);
    ck_assert_int_eq(f.hellos[1], 0); /* shard 1 is asked only after shard 0 said yes */
    ck_assert_int_eq(f.byes[0], 0);
}
END_TEST

START_TEST(server_error_on_pull_is_its_code_and_sentence)
{
    static fake f;
    fake_start(&f, ERROR_PULL1, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client(&f, "digits", 0, 2000, &c, NULL, 0), 0);
    float theta[P];
    char want[256];
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), PS_ERANGE);
    expected(want, sizeof want, f.endpoint[1], "keys [5, 10) leave the shard");
    ck_assert_str_eq(ps_client_last_error(c), want);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
}
END_TEST

START_TEST(silent_shards_time_out_within_the_bound)
{
    static fake f;
    fake_start(&f, SILENT_PULL, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client(&f, "digits", 0, 700, &c, NULL, 0), 0);
    float theta[P];
    char want[256];
    uint64_t t0 = now_ms();
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), PS_ETIMEDOUT);
    uint64_t took = now_ms() - t0;
    ck_assert_uint_ge(took, 695);
    ck_assert_uint_lt(took, 2000); /* generous: machines are shared */
    expected(want, sizeof want, f.endpoint[0], "no reply to PULL within 700 ms (sent 3 times)");
    ck_assert_str_eq(ps_client_last_error(c), want);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    ck_assert_int_eq(f.pulls[0], 3);
    ck_assert_int_eq(f.pulls[1], 3);
}
END_TEST

START_TEST(open_with_no_server_times_out_and_close_never_hangs)
{
    char ep[64], err[256], want[256];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", ps_test_free_port());
    const char *eps[] = {ep};
    ps_client_opts o = {.size = sizeof(ps_client_opts),
                        .job = "digits",
                        .servers = eps,
                        .num_servers = 1,
                        .rank = -1,
                        .timeout_ms = 300};
    ps_client *c = NULL;
    uint64_t t0 = now_ms();
    ck_assert_int_eq(ps_client_open(&o, &c, err, sizeof err), PS_ETIMEDOUT);
    ck_assert_uint_lt(now_ms() - t0, 1000);
    ck_assert_ptr_null(c);
    expected(want, sizeof want, ep, "no reply to HELLO within 300 ms");
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(server_that_starts_late_is_reached)
{
    static fake f;
    fake_start(&f, 0, 300);
    ps_client *c = NULL;
    char err[256];
    ck_assert_int_eq(open_client(&f, "digits", -1, 3000, &c, err, sizeof err), 0);
    ck_assert_int_eq(ps_client_rank(c), 1);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
}
END_TEST

START_TEST(disagreeing_welcomes_are_refused)
{
    static fake f;
    fake_start(&f, DISAGREE1, 0);
    ps_client *c = NULL;
    char err[256], want[256];
    ck_assert_int_eq(open_client(&f, "digits", -1, 2000, &c, err, sizeof err), PS_EPROTO);
    ck_assert_ptr_null(c);
    expected(want, sizeof want, f.endpoint[1],
             "WELCOME disagrees with shard 0 on num_workers 3 (shard 0 said 2)");
    ck_assert_str_eq(err, want);
    fake_stop(&f);
    ck_assert_int_eq(f.byes[0], 1); /* the ranks it took are given back */
    ck_assert_int_eq(f.byes[1], 1);
}
END_TEST

START_TEST(shard_map_with_a_gap_is_refused)
{
    static fake f;
    fake_start(&f, BAD_MAP, 0);
    ps_client *c = NULL;
    char err[256], want[256];
    ck_assert_int_eq(open_client(&f, "digits", -1, 2000, &c, err, sizeof err), PS_EPROTO);
    expected(want, sizeof want, f.endpoint[0],
             "WELCOME's shard map does not tile [0, 10): shard 1 covers [6, 10)");
    ck_assert_str_eq(err, want);
    fake_stop(&f);
}
END_TEST

START_TEST(shard_count_must_match_the_endpoints)
{
    static fake f;
    fake_start(&f, 0, 0);
    const char *eps[] = {f.endpoint[0]};
    ps_client_opts o = {.size = sizeof(ps_client_opts),
                        .job = "digits",
                        .servers = eps,
                        .num_servers = 1,
                        .rank = -1,
                        .timeout_ms = 2000};
    ps_client *c = NULL;
    char err[256], want[256];
    ck_assert_int_eq(ps_client_open(&o, &c, err, sizeof err), PS_EPROTO);
    expected(want, sizeof want, f.endpoint[0],
             "WELCOME lists 2 shards, but the client was given 1 endpoints");
    ck_assert_str_eq(err, want);
    fake_stop(&f);
}
END_TEST

START_TEST(undecodable_reply_is_dropped_and_counted)
{
    static fake f;
    fake_start(&f, GARBAGE0, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client(&f, "digits", 0, 2000, &c, NULL, 0), 0);
    float theta[P] = {0};
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), 0);
    ck_assert_float_eq(theta[4], 3.0f);
    ck_assert_uint_eq(ps_client_bad_replies(c), 1);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
}
END_TEST

START_TEST(reply_of_the_wrong_type_is_a_protocol_error)
{
    static fake f;
    fake_start(&f, WRONG_TYPE0, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client(&f, "digits", 0, 2000, &c, NULL, 0), 0);
    float theta[P];
    char want[256];
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), PS_EPROTO);
    expected(want, sizeof want, f.endpoint[0], "PULL answered with ACK");
    ck_assert_str_eq(ps_client_last_error(c), want);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
}
END_TEST

START_TEST(restarted_shard_gets_hello_again)
{
    static fake f;
    fake_start(&f, FORGET1, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client(&f, "digits", -1, 2000, &c, NULL, 0), 0);
    float theta[P] = {0};
    /* sync: the caller learns where the restarted shard stands, then goes on */
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), PS_EREJOINED);
    ck_assert_uint_eq(ps_client_rejoin_version(c), 5);
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), 0);
    ck_assert_float_eq(theta[9], 5.5f);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    ck_assert_int_eq(f.hellos[0], 1);
    ck_assert_int_eq(f.hellos[1], 2);
    ck_assert_int_eq(f.hello_rank[1][1], 1); /* the same rank again */
    ck_assert_int_eq(f.pulls[1], 2);
    ck_assert_uint_eq(f.pull_worker[1][1], 111); /* the new worker id */
}
END_TEST

START_TEST(offered_shared_memory_carries_push_and_pull)
{
    static fake f;
    fake_start(&f, SHM_OFFER, 0);
    ps_client *c = NULL;
    char err[256];
    ck_assert_int_eq(open_client(&f, "digits", -1, 2000, &c, err, sizeof err), 0);
    const char *why = NULL;
    ck_assert_uint_eq(ps_client_shared_memory(c, &why), NSHARDS);
    ck_assert_str_eq(why, "");
    float g[P], theta[P];
    for (int k = 0; k < P; k++)
        g[k] = (float)k - 3.0f;
    ps_push_pull pp = {.size = sizeof(ps_push_pull),
                       .n = P,
                       .clock = 5,
                       .grad = g,
                       .samples = 8,
                       .min_version = 6};
    ck_assert_int_eq(ps_client_push_pull(c, &pp), 0);
    ck_assert_int_eq(pp.pulled, 1);
    for (int k = 0; k < P; k++) {
        ck_assert_float_eq(f.pushed[k], g[k]);      /* read from the segments */
        ck_assert_float_eq(pp.view[k], f.theta[k]); /* two shards: put together */
    }
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), 0);
    for (int k = 0; k < P; k++)
        ck_assert_float_eq(theta[k], f.theta[k]);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    for (int i = 0; i < NSHARDS; i++) {
        ck_assert_str_ne(f.hello_host[i], "");
        ck_assert_int_eq(f.push_enc[i][0], PS_ENC_SHM_F32);
        ck_assert_uint_eq(f.push_bytes[i], 5 * sizeof(float));
        ck_assert_uint_eq(f.pull_flags[i][0], PS_FLAG_PULL | PS_FLAG_SHM); /* in the push */
        ck_assert_uint_eq(f.pull_flags[i][1], PS_FLAG_SHM);
    }
}
END_TEST

START_TEST(shared_memory_that_cannot_be_opened_leaves_the_socket)
{
    static fake f;
    fake_start(&f, SHM_OFFER | SHM_BOGUS, 0);
    ps_client *c = NULL;
    char err[256];
    ck_assert_int_eq(open_client(&f, "digits", -1, 2000, &c, err, sizeof err), 0);
    const char *why = NULL;
    ck_assert_uint_eq(ps_client_shared_memory(c, &why), 0);
    ck_assert_msg(strstr(why, "does not hold the segment promised") != NULL, "why: %s", why);
    float g[P], theta[P];
    for (int k = 0; k < P; k++)
        g[k] = 2.0f * (float)k;
    ck_assert_int_eq(ps_client_push(c, 1, g, P, 4, NULL), 0);
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), 0);
    for (int k = 0; k < P; k++) {
        ck_assert_float_eq(f.pushed[k], g[k]);
        ck_assert_float_eq(theta[k], f.theta[k]);
    }
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    for (int i = 0; i < NSHARDS; i++) {
        ck_assert_int_eq(f.push_enc[i][0], PS_ENC_F32);
        ck_assert_uint_eq(f.pull_flags[i][0], 0);
    }
}
END_TEST

START_TEST(socket_only_client_does_not_ask_for_shared_memory)
{
    static fake f;
    fake_start(&f, SHM_OFFER, 0);
    ps_client *c = NULL;
    char err[256];
    ck_assert_int_eq(open_client_opt(&f, "digits", -1, 2000, 1, &c, err, sizeof err), 0);
    const char *why = NULL;
    ck_assert_uint_eq(ps_client_shared_memory(c, &why), 0);
    ck_assert_str_eq(why, "");
    float g[P] = {0};
    ck_assert_int_eq(ps_client_push(c, 1, g, P, 4, NULL), 0);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    for (int i = 0; i < NSHARDS; i++) {
        ck_assert_str_eq(f.hello_host[i], "");
        ck_assert(!ps_shm_mapped(&f.seg[i]));
        ck_assert_int_eq(f.push_enc[i][0], PS_ENC_F32);
    }
}
END_TEST

START_TEST(unanswered_push_gives_up_shared_memory_with_that_shard)
{
    /* shard 0 never answers the first push: the server may still read its
     * gradient, so the client must not write that segment again */
    static fake f;
    fake_start(&f, SHM_OFFER | SILENT_PUSH0, 0);
    ps_client *c = NULL;
    char err[256];
    ck_assert_int_eq(open_client(&f, "digits", -1, 300, &c, err, sizeof err), 0);
    float g[P];
    for (int k = 0; k < P; k++)
        g[k] = 1.0f + (float)k;
    ck_assert_int_eq(ps_client_push(c, 1, g, P, 4, NULL), PS_ETIMEDOUT);
    const char *why = NULL;
    ck_assert_uint_eq(ps_client_shared_memory(c, &why), 1);
    ck_assert_msg(strstr(why, "a push went unanswered") != NULL, "why: %s", why);
    ck_assert_int_eq(ps_client_push(c, 2, g, P, 4, NULL), 0);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    ck_assert_int_ge(f.pushes[0], 2);
    ck_assert_int_le(f.pushes[0], MAXREQ); /* the first, its resends, the second */
    ck_assert_int_le(f.pushes[1], MAXREQ);
    ck_assert_int_eq(f.push_enc[0][0], PS_ENC_SHM_F32);
    ck_assert_int_eq(f.push_enc[0][f.pushes[0] - 1], PS_ENC_F32); /* over the socket now */
    ck_assert_int_eq(f.push_enc[1][f.pushes[1] - 1], PS_ENC_SHM_F32);
    for (int k = 0; k < P; k++)
        ck_assert_float_eq(f.pushed[k], g[k]);
}
END_TEST

START_TEST(bad_arguments_are_refused)
{
    ps_client *c = NULL;
    char err[256];
    ck_assert_int_eq(ps_client_open(NULL, &c, err, sizeof err), PS_EINVAL);
    const char *eps[] = {"tcp://127.0.0.1:1"};
    ps_client_opts o = {
        .size = sizeof(ps_client_opts), .job = "", .servers = eps, .num_servers = 1, .rank = -1};
    ck_assert_int_eq(ps_client_open(&o, &c, err, sizeof err), PS_EINVAL);
    ck_assert_str_eq(err, "job name must be 1 to 63 bytes");
    o.job = "digits";
    o.num_servers = 0;
    ck_assert_int_eq(ps_client_open(&o, &c, err, sizeof err), PS_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(ps_client_close(&c), 0); /* a NULL client is fine */
    ck_assert_int_eq(ps_client_close(NULL), 0);
}
END_TEST

/* ---- the stable API: versions, sizes, lengths, open_job ---- */

START_TEST(version_calls_match_the_header)
{
    ck_assert_str_eq(ps_version(), PSD_VERSION_STRING);
    ck_assert_str_eq(ps_version(), PS_VERSION_STRING); /* the CMake project's version */
    ck_assert_uint_eq(ps_version_number(), PSD_VERSION_NUMBER);
    ck_assert_uint_eq(ps_version_number(),
                      PSD_VERSION_MAJOR * 10000 + PSD_VERSION_MINOR * 100 + PSD_VERSION_PATCH);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", PSD_VERSION_MAJOR, PSD_VERSION_MINOR,
             PSD_VERSION_PATCH);
    ck_assert_str_eq(PSD_VERSION_STRING, want);
}
END_TEST

START_TEST(opts_init_sets_size_and_defaults)
{
    ps_client_opts o;
    memset(&o, 0x5a, sizeof o);
    ps_client_opts_init(&o);
    ck_assert_uint_eq(o.size, sizeof o);
    ck_assert_int_eq(o.rank, -1);
    ck_assert(o.push_topk_ratio == 0.01);
    ck_assert_ptr_null(o.job);
    ck_assert_ptr_null(o.push_compression);
    ck_assert_int_eq(o.timeout_ms, 0);
    ps_push_pull pp;
    memset(&pp, 0x5a, sizeof pp);
    ps_push_pull_init(&pp);
    ck_assert_uint_eq(pp.size, sizeof pp);
    ck_assert_ptr_null(pp.grad);
    ck_assert_uint_eq(pp.n, 0);
    uint64_t clock[2], pushes[2];
    ps_server_stats st;
    ps_server_stats_init(&st, clock, pushes, 2);
    ck_assert_uint_eq(st.size, sizeof st);
    ck_assert_ptr_eq(st.clock, clock);
    ck_assert_ptr_eq(st.pushes, pushes);
    ck_assert_uint_eq(st.cap, 2);
}
END_TEST

START_TEST(opts_of_size_zero_or_too_small_are_refused)
{
    static fake f;
    fake_start(&f, 0, 0);
    const char *eps[] = {f.endpoint[0], f.endpoint[1]};
    ps_client_opts o = {.job = "digits", .servers = eps, .num_servers = NSHARDS, .rank = -1};
    ps_client *c = NULL;
    char err[256];
    ck_assert_int_eq(ps_client_open(&o, &c, err, sizeof err), PS_EINVAL); /* size 0 */
    ck_assert_str_eq(err, "ps_client_opts.size is 0: call ps_client_opts_init");
    ck_assert_ptr_null(c);
    o.size = PS_CLIENT_OPTS_SIZE_1_0 - 1;
    ck_assert_int_eq(ps_client_open(&o, &c, err, sizeof err), PS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "call ps_client_opts_init"));
    fake_stop(&f);
    ck_assert_int_eq(f.hellos[0] + f.hellos[1], 0); /* nothing was sent */
}
END_TEST

START_TEST(opts_of_the_first_release_size_are_read_to_their_end_only)
{
    static fake f;
    fake_start(&f, 0, 0);
    /* the caller's struct as the first release's header had it: its bytes
     * end at PS_CLIENT_OPTS_SIZE_1_0; whatever lies past them is not read */
    static union {
        ps_client_opts o;
        unsigned char bytes[sizeof(ps_client_opts) + 64];
    } u;
    memset(&u, 0xff, sizeof u);
    const char *eps[] = {f.endpoint[0], f.endpoint[1]};
    ps_client_opts o;
    ps_client_opts_init(&o);
    o.job = "digits";
    o.servers = eps;
    o.num_servers = NSHARDS;
    o.timeout_ms = 2000;
    o.socket_only = 1;
    memcpy(u.bytes, &o, PS_CLIENT_OPTS_SIZE_1_0);
    u.o.size = PS_CLIENT_OPTS_SIZE_1_0;
    ps_client *c = NULL;
    char err[256] = "";
    ck_assert_msg(ps_client_open(&u.o, &c, err, sizeof err) == 0, "open: %s", err);
    ck_assert_int_eq(ps_client_rank(c), 1);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);

    /* how it is done: a later field past the caller's size keeps its
     * default (here push_error_feedback stands for a later release's field) */
    ps_client_opts dst, src;
    ps_client_opts_init(&dst);
    memset(&src, 0xff, sizeof src);
    src.size = offsetof(ps_client_opts, push_error_feedback);
    ck_assert_int_eq(ps_client_struct_take(&dst, sizeof dst, &src, src.size,
                                           offsetof(ps_client_opts, push_compression),
                                           "ps_client_opts", err, sizeof err),
                     0);
    ck_assert_int_eq(dst.rank, -1 | (int)0xffffffff); /* copied: all ones */
    ck_assert_int_eq(dst.push_error_feedback, 0);     /* not copied: the default */
    /* a newer caller's larger struct: fine while the fields this library
     * does not know are zero, refused once one is set */
    memset(&u, 0, sizeof u);
    ps_client_opts_init(&u.o);
    ck_assert_int_eq(ps_client_struct_take(&dst, sizeof dst, &u, sizeof u, PS_CLIENT_OPTS_SIZE_1_0,
                                           "ps_client_opts", err, sizeof err),
                     0);
    u.bytes[sizeof u - 1] = 1;
    ck_assert_int_eq(ps_client_struct_take(&dst, sizeof dst, &u, sizeof u, PS_CLIENT_OPTS_SIZE_1_0,
                                           "ps_client_opts", err, sizeof err),
                     PS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "older than the header"));
}
END_TEST

START_TEST(wrong_lengths_are_refused_with_a_sentence_and_send_nothing)
{
    static fake f;
    fake_start(&f, 0, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client(&f, "digits", 0, 2000, &c, NULL, 0), 0);
    float theta[P + 1] = {0}, grad[P + 1] = {0};
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P - 1, NULL), PS_EINVAL);
    ck_assert_str_eq(ps_client_last_error(c), "pull: theta holds 9 floats, θ has 10");
    ck_assert_int_eq(ps_client_pull_clock(c, 1, 0, theta, 0, NULL), PS_EINVAL);
    ck_assert_str_eq(ps_client_last_error(c), "pull: theta holds 0 floats, θ has 10");
    ck_assert_int_eq(ps_client_push(c, 0, grad, P + 1, 1, NULL), PS_EINVAL);
    ck_assert_str_eq(ps_client_last_error(c), "push: grad holds 11 floats, θ has 10");
    ps_push_pull pp;
    ps_push_pull_init(&pp);
    pp.grad = grad;
    pp.theta = theta;
    pp.n = P - 1;
    pp.samples = 1;
    ck_assert_int_eq(ps_client_push_pull(c, &pp), PS_EINVAL);
    ck_assert_str_eq(ps_client_last_error(c), "push_pull: grad holds 9 floats, θ has 10");
    ck_assert_int_eq(pp.pulled, 0);
    pp.n = P;
    pp.size = 0;
    ck_assert_int_eq(ps_client_push_pull(c, &pp), PS_EINVAL);
    ck_assert_str_eq(ps_client_last_error(c),
                     "push_pull: ps_push_pull.size is 0: call ps_push_pull_init");
    /* the server stats: a size of 0, and a cap without arrays */
    ps_server_stats st = {0};
    ck_assert_int_eq(ps_client_server_stats(c, &st), PS_EINVAL);
    ck_assert_ptr_nonnull(strstr(ps_client_last_error(c), "call ps_server_stats_init"));
    ps_server_stats_init(&st, NULL, NULL, 4);
    ck_assert_int_eq(ps_client_server_stats(c, &st), PS_EINVAL);
    /* the right lengths still work */
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), 0);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    ck_assert_int_eq(f.pulls[0], 1); /* only the good pull was sent */
    ck_assert_int_eq(f.pushes[0], 0);
}
END_TEST

/* A job file for the fake's two shards in a scratch folder (a linear
 * model on line.csv, or with bad, a mode that does not exist); its path in
 * path. */
static void job_file_for(const fake *f, bool bad, char *path, size_t cap)
{
    static char dir[] = "/tmp/ps-test-client-XXXXXX";
    if (dir[sizeof dir - 2] == 'X')
        ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, cap, "%s/%s.yaml", dir, bad ? "bad" : "job");
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fprintf(fp,
            "job: digits\n"
            "mode: %s\n"
            "workers: 2\n"
            "servers: [\"%s\", \"%s\"]\n"
            "model: {type: linear, features: 1}\n"
            "data: {train: %s/line.csv, normalize: none}\n"
            "optimizer: {type: sgd, lr: 0.5}\n"
            "training: {epochs: 1, batch_size: 10}\n"
            "heartbeat: {interval_ms: 100, deadline_ms: 2000}\n",
            bad ? "sideways" : "sync", f->endpoint[0], f->endpoint[1], PS_TEST_DATA_DIR);
    ck_assert_int_eq(fclose(fp), 0);
}

START_TEST(open_job_opens_as_psworker_does)
{
    static fake f;
    fake_start(&f, 0, 0);
    char path[512];
    job_file_for(&f, false, path, sizeof path);
    unsetenv("PSD_RANK");
    ps_client *c = NULL;
    char err[512] = "";
    ck_assert_msg(ps_client_open_job(path, -1, &c, err, sizeof err) == 0, "open_job: %s", err);
    ck_assert_int_eq(ps_client_rank(c), 1); /* any free rank: the fake's */
    ck_assert_uint_eq(ps_client_num_servers(c), NSHARDS);
    float theta[P];
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), 0);
    usleep(350 * 1000); /* a few of the job's heartbeats (interval_ms 100) */
    ck_assert_int_eq(ps_client_close(&c), 0);
    /* rank -1 takes $PSD_RANK */
    setenv("PSD_RANK", "0", 1);
    ck_assert_msg(ps_client_open_job(path, -1, &c, err, sizeof err) == 0, "open_job: %s", err);
    ck_assert_int_eq(ps_client_close(&c), 0);
    setenv("PSD_RANK", "zero", 1);
    ck_assert_int_eq(ps_client_open_job(path, -1, &c, err, sizeof err), PS_EINVAL);
    ck_assert_str_eq(err, "PSD_RANK=zero: give a rank >= 0, or -1 for any");
    unsetenv("PSD_RANK");
    fake_stop(&f);
    ck_assert_int_eq(f.hello_rank[0][0], -1);
    ck_assert_int_eq(f.hello_rank[0][1], 0);
    ck_assert_str_eq(f.hello_job[0], "digits");
    ck_assert_int_gt(f.heartbeats[0], 0); /* heartbeat.interval_ms of the job */
}
END_TEST

START_TEST(open_job_refuses_a_bad_job_file_naming_it)
{
    static fake f;
    fake_start(&f, 0, 0);
    char path[512];
    job_file_for(&f, true, path, sizeof path);
    ps_client *c = (ps_client *)&f; /* set to NULL on failure */
    char err[512] = "";
    ck_assert_int_eq(ps_client_open_job(path, -1, &c, err, sizeof err), PS_ECONFIG);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err, path) == err, "the sentence names the file: %s", err);
    ck_assert_ptr_nonnull(strstr(err, "sideways"));
    ck_assert_int_eq(ps_client_open_job("/nonexistent/job.yaml", 0, &c, err, sizeof err),
                     PS_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/job.yaml"));
    ck_assert_int_eq(ps_client_open_job(NULL, 0, &c, err, sizeof err), PS_EINVAL);
    fake_stop(&f);
    ck_assert_int_eq(f.hellos[0] + f.hellos[1], 0);
}
END_TEST

START_TEST(final_error_of_any_seq_ends_the_call_and_every_later_one)
{
    /* psd stopped: its ERROR answers no request (seq 0), yet the pull ends
     * with it, and nothing is sent any more, not even BYE */
    static fake f;
    fake_start(&f, FINAL_PULL1, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client(&f, "digits", 0, 5000, &c, NULL, 0), 0);
    float theta[P], g[P] = {0};
    char want[256];
    uint64_t t0 = now_ms();
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), PS_ESTOPPED);
    ck_assert_uint_lt(now_ms() - t0, 4000); /* not the 5000 ms timeout */
    expected(want, sizeof want, f.endpoint[1], "psd stopped before the job ended (SIGTERM)");
    ck_assert_str_eq(ps_client_last_error(c), want);
    t0 = now_ms();
    ck_assert_int_eq(ps_client_push(c, 1, g, P, 1, NULL), PS_ESTOPPED);
    ck_assert_int_eq(ps_client_heartbeat(c), PS_ESTOPPED);
    ck_assert_uint_lt(now_ms() - t0, 1000); /* at once */
    ck_assert_str_eq(ps_client_last_error(c), want);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    ck_assert_int_eq(f.pushes[0] + f.pushes[1], 0);
    ck_assert_int_eq(f.byes[0] + f.byes[1], 0);
}
END_TEST

START_TEST(final_error_to_another_request_ends_a_push)
{
    /* the job is complete: an ERROR whose seq is no request's still counts */
    static fake f;
    fake_start(&f, COMPLETE_PUSH0, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client(&f, "digits", 0, 5000, &c, NULL, 0), 0);
    float g[P] = {0}, theta[P];
    char want[256];
    ps_push_pull pp = {.size = sizeof(ps_push_pull),
                       .n = P,
                       .clock = 5,
                       .grad = g,
                       .samples = 1,
                       .min_version = 6,
                       .theta = theta};
    uint64_t t0 = now_ms();
    ck_assert_int_eq(ps_client_push_pull(c, &pp), PS_ECOMPLETE);
    ck_assert_uint_lt(now_ms() - t0, 4000);
    ck_assert_int_eq(pp.pulled, 0);
    expected(want, sizeof want, f.endpoint[0], "the job is complete");
    ck_assert_str_eq(ps_client_last_error(c), want);
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), PS_ECOMPLETE);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
}
END_TEST

START_TEST(final_error_to_a_heartbeat_ends_a_parked_pull)
{
    /* the pull is parked (never answered); the heartbeat thread hears the
     * job was aborted, and the waiting call ends with it */
    static fake f;
    fake_start(&f, SILENT_PULL | HB_FINAL0, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client_hb(&f, 50, 5000, NULL, &c), 0);
    float theta[P];
    char want[256];
    uint64_t t0 = now_ms();
    ck_assert_int_eq(ps_client_pull(c, 6, theta, P, NULL), PS_EABORTED);
    ck_assert_uint_lt(now_ms() - t0, 4000); /* not the 5000 ms timeout */
    expected(want, sizeof want, f.endpoint[0],
             "job stopped: rank 1 was silent for 3100 ms (on_worker_loss: abort)");
    ck_assert_str_eq(ps_client_last_error(c), want);
    ck_assert_int_eq(ps_client_done(c), PS_EABORTED);
    ck_assert_int_eq(ps_client_abort(c, "late"), PS_EABORTED);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    ck_assert_int_eq(f.byes[0] + f.byes[1], 0);
}
END_TEST

START_TEST(heartbeat_told_not_registered_registers_again_at_once)
{
    /* shard 1 forgot us; only the heartbeat thread hears it. The parked pull
     * ends at once, registered again and told the round to go on from */
    static fake f;
    fake_start(&f, SILENT_PULL | HB_FORGET1, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client_hb(&f, 50, 5000, NULL, &c), 0);
    float theta[P];
    uint64_t t0 = now_ms();
    ck_assert_int_eq(ps_client_pull(c, 6, theta, P, NULL), PS_EREJOINED);
    ck_assert_uint_lt(now_ms() - t0, 4000); /* not after the 5000 ms timeout */
    ck_assert_str_eq(ps_client_last_error(c), "registered again with shard 1 at round 5");
    ck_assert_uint_eq(ps_client_rejoin_version(c), 5);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    ck_assert_int_eq(f.hellos[0], 1);
    ck_assert_int_eq(f.hellos[1], 2);
    ck_assert_int_eq(f.hello_rank[1][1], 1); /* the same rank again */
}
END_TEST

START_TEST(push_after_a_heartbeat_found_us_lost_takes_a_new_seq)
{
    /* async: push 1 went out and was acknowledged; then a heartbeat finds
     * shard 1 lost us. Push 2 registers again first and goes out with a
     * seq of its own: reusing push 1's (kept only for a push sent again)
     * would make a restarted psd take it for push 1 and drop it, or apply
     * it uncounted */
    static fake f;
    fake_start(&f, ASYNC | HB_FORGET1_PUSHED, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client_hb(&f, 50, 5000, NULL, &c), 0);
    float g[P] = {0};
    ck_assert_int_eq(ps_client_push(c, 0, g, P, 1, NULL), 0);
    uint64_t first = f.push_seq[1];
    sleep_ms(400); /* heartbeats, refused by shard 1 now */
    ck_assert_int_eq(ps_client_push(c, 1, g, P, 1, NULL), 0);
    uint64_t held, lost;
    ck_assert_int_eq(ps_client_push_tally(c, 1, &held, &lost), 0);
    ck_assert_uint_eq(held, 2);
    ck_assert_uint_eq(lost, 0);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    ck_assert_int_eq(f.hellos[1], 2);
    ck_assert_int_eq(f.pushes[1], 2);
    ck_assert_uint_gt(f.push_seq[1], first);
}
END_TEST

START_TEST(acknowledged_push_is_not_sent_again_when_only_its_pull_was_lost)
{
    /* async push + riding pull: both shards ACK the push but hold the pull;
     * meanwhile shard 1's heartbeats say it lost us. The exchange registers
     * again and asks for θ once more, but does not send the push again:
     * shard 1 said it holds it, and a restarted shard whose checkpoint
     * lacked it has said so in its WELCOME (the caller trains that batch
     * again); sent again it would be applied twice */
    static fake f;
    fake_start(&f, ASYNC | HB_FORGET1_PUSHED | PARK_PULL, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client_hb(&f, 50, 5000, NULL, &c), 0);
    float g[P] = {0}, theta[P];
    ps_push_pull pp = {
        .size = sizeof(ps_push_pull), .n = P, .clock = 0, .grad = g, .samples = 1, .theta = theta};
    ck_assert_int_eq(ps_client_push_pull(c, &pp), 0);
    uint64_t held, lost;
    ck_assert_int_eq(ps_client_push_tally(c, 1, &held, &lost), 0);
    ck_assert_uint_eq(held, 1);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    ck_assert_int_eq(f.hellos[1], 2);
    ck_assert_int_eq(f.pushes[1], 1); /* not sent again */
    ck_assert_int_ge(f.pulls[1], 2);  /* the pull was */
}
END_TEST

START_TEST(heartbeat_told_not_registered_is_acted_on_before_the_next_request)
{
    /* the main thread was busy when the heartbeat heard it: its next push
     * registers again first and goes to nobody, since its round is gone */
    static fake f;
    fake_start(&f, HB_FORGET1, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client_hb(&f, 50, 5000, NULL, &c), 0);
    sleep_ms(500); /* several heartbeats, refused by shard 1 */
    float g[P] = {0};
    ck_assert_int_eq(ps_client_push(c, 1, g, P, 1, NULL), PS_EREJOINED);
    ck_assert_str_eq(ps_client_last_error(c), "registered again with shard 1 at round 5");
    ck_assert_int_eq(ps_client_push(c, 5, g, P, 1, NULL), 0);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    ck_assert_int_eq(f.hellos[1], 2);
    ck_assert_int_eq(f.pushes[0], 1); /* only the second push */
    ck_assert_int_eq(f.pushes[1], 1);
    ck_assert_uint_eq(f.push_clock[1], 5);
}
END_TEST

START_TEST(parked_pull_waits_past_the_timeout_while_heartbeats_are_answered)
{
    /* the pull is answered after PARK_MS, twice the timeout: the servers
     * answered the heartbeats meanwhile, so the wait goes on */
    static fake f;
    fake_start(&f, PARK_PULL, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client_hb(&f, 50, PARK_MS / 2, NULL, &c), 0);
    float theta[P] = {0};
    uint64_t t0 = now_ms();
    ck_assert_int_eq(ps_client_pull(c, 6, theta, P, NULL), 0);
    ck_assert_uint_ge(now_ms() - t0, PARK_MS - 5);
    ck_assert_float_eq(theta[9], 5.5f);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
}
END_TEST

START_TEST(deadline_counts_from_the_last_answer)
{
    /* the servers fell silent 1500 ms before the call: with a 2000 ms
     * deadline the call has 500 ms left, not 2000 */
    static fake f;
    fake_start(&f, 0, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client_hb(&f, 50, 2000, NULL, &c), 0);
    atomic_store(&f.mute, 1);
    sleep_ms(1500);
    float theta[P];
    uint64_t t0 = now_ms();
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), PS_ETIMEDOUT);
    ck_assert_uint_lt(now_ms() - t0, 1500);
    const char *why = ps_client_last_error(c);
    ck_assert_msg(strstr(why, ": no reply to PULL, and no answer to anything for ") != NULL,
                  "why: %s", why);
    ps_client_close(&c); /* its BYE is not answered either */
    fake_stop(&f);
}
END_TEST

START_TEST(silent_server_is_logged_once_and_again_when_it_answers)
{
    /* the fake stops (as psd under SIGSTOP) for PAUSE_MS once shard 0 has
     * the pull, then answers everything that queued up: each shard is said
     * to be silent once, and to answer again once */
    static fake f;
    fake_start(&f, PAUSE_PULL0, 0);
    ps_client *c = NULL;
    notes n = {0};
    ck_assert_int_eq(open_client_hb(&f, 50, 5000, &n, &c), 0);
    float theta[P] = {0};
    ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), 0);
    ck_assert_float_eq(theta[0], 1.0f);
    /* a shard whose pull the fake answered before it stopped is heard again
     * only through its heartbeats, which may come after the pull ended: the
     * next exchange says so then */
    for (int k = 0; k < 40 && n.infos < NSHARDS; k++) {
        sleep_ms(25);
        ck_assert_int_eq(ps_client_pull(c, 0, theta, P, NULL), 0);
    }
    ck_assert_int_eq(n.warnings, NSHARDS);
    ck_assert_msg(strncmp(n.warning, "tcp://127.0.0.1:", 16) == 0 &&
                      strstr(n.warning, ": no answer for ") != NULL &&
                      strstr(n.warning, " ms, waiting up to 5000 ms") != NULL,
                  "warning: %s", n.warning);
    ck_assert_int_eq(n.infos, NSHARDS);
    ck_assert_msg(strstr(n.info, ": answers again after ") != NULL, "info: %s", n.info);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
}
END_TEST

START_TEST(abort_says_bye_with_the_flag_and_the_reason)
{
    static fake f;
    fake_start(&f, 0, 0);
    ps_client *c = NULL;
    ck_assert_int_eq(open_client_hb(&f, 50, 2000, NULL, &c), 0);
    const char *why = "training diverged in epoch 3: loss is nan (optimizer.lr 1e+30 is likely "
                      "too high)";
    ck_assert_int_eq(ps_client_abort(c, why), 0);
    ck_assert_int_eq(ps_client_close(&c), 0);
    fake_stop(&f);
    for (int i = 0; i < NSHARDS; i++) {
        ck_assert_int_eq(f.byes[i], 1); /* close says no second BYE */
        ck_assert_uint_eq(f.bye_flags[i], PS_FLAG_ABORT);
        ck_assert_str_eq(f.bye_error[i], why);
    }
}
END_TEST

static Suite *client_suite(void)
{
    Suite *s = suite_create("client");
    TCase *tc = tcase_create("client");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, open_learns_rank_and_layout_from_both_shards);
    tcase_add_test(tc, pull_assembles_theta_in_key_order);
    tcase_add_test(tc, pull_carries_the_clock_and_push_the_version_of_theta_it_came_from);
    tcase_add_test(tc, pull_goes_to_every_shard_before_any_reply);
    tcase_add_test(tc, push_sends_each_shard_its_slice);
    tcase_add_test(tc, push_pull_carries_the_pull_in_the_push);
    tcase_add_test(tc, push_pull_whose_pull_times_out_still_reports_the_push);
    tcase_add_test(tc, dropped_reply_is_retried_with_the_same_seq);
    tcase_add_test(tc, server_error_on_hello_is_its_code_and_sentence);
    tcase_add_test(tc, server_error_on_pull_is_its_code_and_sentence);
    tcase_add_test(tc, silent_shards_time_out_within_the_bound);
    tcase_add_test(tc, open_with_no_server_times_out_and_close_never_hangs);
    tcase_add_test(tc, server_that_starts_late_is_reached);
    tcase_add_test(tc, disagreeing_welcomes_are_refused);
    tcase_add_test(tc, shard_map_with_a_gap_is_refused);
    tcase_add_test(tc, shard_count_must_match_the_endpoints);
    tcase_add_test(tc, undecodable_reply_is_dropped_and_counted);
    tcase_add_test(tc, reply_of_the_wrong_type_is_a_protocol_error);
    tcase_add_test(tc, restarted_shard_gets_hello_again);
    tcase_add_test(tc, bad_arguments_are_refused);
    tcase_add_test(tc, offered_shared_memory_carries_push_and_pull);
    tcase_add_test(tc, shared_memory_that_cannot_be_opened_leaves_the_socket);
    tcase_add_test(tc, socket_only_client_does_not_ask_for_shared_memory);
    tcase_add_test(tc, unanswered_push_gives_up_shared_memory_with_that_shard);
    tcase_add_test(tc, final_error_of_any_seq_ends_the_call_and_every_later_one);
    tcase_add_test(tc, final_error_to_another_request_ends_a_push);
    tcase_add_test(tc, final_error_to_a_heartbeat_ends_a_parked_pull);
    tcase_add_test(tc, heartbeat_told_not_registered_registers_again_at_once);
    tcase_add_test(tc, heartbeat_told_not_registered_is_acted_on_before_the_next_request);
    tcase_add_test(tc, push_after_a_heartbeat_found_us_lost_takes_a_new_seq);
    tcase_add_test(tc, acknowledged_push_is_not_sent_again_when_only_its_pull_was_lost);
    tcase_add_test(tc, parked_pull_waits_past_the_timeout_while_heartbeats_are_answered);
    tcase_add_test(tc, deadline_counts_from_the_last_answer);
    tcase_add_test(tc, silent_server_is_logged_once_and_again_when_it_answers);
    tcase_add_test(tc, abort_says_bye_with_the_flag_and_the_reason);
    tcase_add_test(tc, version_calls_match_the_header);
    tcase_add_test(tc, opts_init_sets_size_and_defaults);
    tcase_add_test(tc, opts_of_size_zero_or_too_small_are_refused);
    tcase_add_test(tc, opts_of_the_first_release_size_are_read_to_their_end_only);
    tcase_add_test(tc, wrong_lengths_are_refused_with_a_sentence_and_send_nothing);
    tcase_add_test(tc, open_job_opens_as_psworker_does);
    tcase_add_test(tc, open_job_refuses_a_bad_job_file_naming_it);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ps_check_run(client_suite());
}
