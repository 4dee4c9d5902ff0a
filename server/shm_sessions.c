/* shm_sessions.c — psd's shared-memory segments with the workers on its
 * host, one per rank (shm_sessions.h). */
#include "shm_sessions.h"

#include "shm.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHM_SWEEP_MS 1000 /* how often segments of departed workers are freed */

typedef struct shm_session {
    uint32_t worker_id; /* the worker it was made for; 0: none */
    ps_shm seg;
    uint64_t pull_seq;     /* the newest PULL that asked for shared memory */
    uint64_t answered_seq; /* the newest PULL answered there */
    bool used;             /* the worker opened it: logged once */
} shm_session;

struct ps_shm_sessions {
    const ps_engine *engine;
    const ps_log *log;
    uint32_t shard, workers;
    char host[PS_HOST_MAX];
    shm_session *by_rank;
    uint64_t sweep_ms;
    bool warned; /* a segment could not be made: said once */
};

ps_shm_sessions *ps_shm_sessions_new(const ps_job *job, uint32_t shard, const ps_engine *engine,
                                     const ps_log *log, ps_error *err)
{
    ps_shm_sessions *x = calloc(1, sizeof *x);
    if (x == NULL) {
        ps_error_set(err, PS_ENOMEM, "cannot allocate the shared-memory table");
        return NULL;
    }
    x->engine = engine;
    x->log = log;
    x->shard = shard;
    if (job->shared_memory && ps_shm_host_id(x->host, sizeof x->host) == 0) {
        x->workers = job->workers;
        x->by_rank = calloc(job->workers, sizeof *x->by_rank);
        if (x->by_rank == NULL) {
            free(x);
            ps_error_set(err, PS_ENOMEM, "cannot allocate the shared-memory table");
            return NULL;
        }
    }
    return x;
}

/* The session of the live worker with this id, or NULL. */
static shm_session *session_find(ps_shm_sessions *x, uint32_t worker_id)
{
    if (x->by_rank == NULL)
        return NULL;
    int rank = ps_engine_worker_rank(x->engine, worker_id);
    if (rank < 0 || x->by_rank[rank].worker_id != worker_id)
        return NULL;
    return &x->by_rank[rank];
}

static void session_end(shm_session *s)
{
    ps_shm_detach(&s->seg);
    memset(s, 0, sizeof *s);
}

void ps_shm_sessions_sweep(ps_shm_sessions *x, uint64_t now_ms)
{
    if (x->by_rank == NULL || now_ms - x->sweep_ms < SHM_SWEEP_MS)
        return;
    x->sweep_ms = now_ms;
    for (uint32_t r = 0; r < x->workers; r++)
        if (x->by_rank[r].worker_id != 0 &&
            ps_engine_worker_rank(x->engine, x->by_rank[r].worker_id) != (int)r)
            session_end(&x->by_rank[r]);
}

void ps_shm_sessions_welcome(ps_shm_sessions *x, const ps_msg *hello, ps_msg *reply)
{
    if (x->by_rank == NULL || hello->type != PS_MSG_HELLO || ps_msg_str(hello->host)[0] == '\0' ||
        strcmp(hello->host, x->host) != 0 || reply->rank < 0 || (uint32_t)reply->rank >= x->workers)
        return;
    size_t floats = (size_t)(ps_engine_key_hi(x->engine) - ps_engine_key_lo(x->engine));
    shm_session *s = &x->by_rank[reply->rank];
    if (s->worker_id != reply->worker_id) {
        session_end(s);
        ps_error err;
        if (floats == 0 || ps_shm_create(&s->seg, floats, &err) != 0) {
            if (floats > 0 && !x->warned)
                PS_LOG_W(x->log,
                         "shard %u: no shared memory for workers on this host (%s): "
                         "θ and gradients go over the socket",
                         x->shard, err.msg);
            x->warned = x->warned || floats > 0;
            return;
        }
        s->worker_id = reply->worker_id;
    }
    reply->shm_pid = (uint32_t)getpid();
    reply->shm_fd = (uint32_t)s->seg.fd;
    reply->shm_bytes = s->seg.bytes;
    reply->shm_token = s->seg.token;
}

/* The worker of s shows it opened its segment: said once. */
static void session_used(ps_shm_sessions *x, shm_session *s)
{
    if (s->used)
        return;
    s->used = true;
    PS_LOG_I(x->log, "shard %u: rank %d is on this host: θ and gradients go through shared memory",
             x->shard, (int)(s - x->by_rank));
}

int ps_shm_sessions_request(ps_shm_sessions *x, const char *job_name, ps_msg *m, ps_error *err)
{
    bool pull = m->type == PS_MSG_PULL || (m->type == PS_MSG_PUSH && (m->flags & PS_FLAG_PULL));
    if (pull && (m->flags & PS_FLAG_SHM)) {
        shm_session *s = session_find(x, m->worker_id);
        if (s != NULL && m->seq > s->pull_seq) {
            s->pull_seq = m->seq;
            session_used(x, s);
        }
    }
    if (m->type == PS_MSG_PULL || m->encoding != PS_ENC_SHM_F32)
        return 0;
    /* what the engine refuses anyway (another job, an unknown worker: it
     * says so, and a worker of a restarted psd registers again) */
    if (m->protocol != PS_PROTOCOL_VERSION || strcmp(m->job, job_name) != 0 ||
        ps_engine_worker_rank(x->engine, m->worker_id) < 0)
        return 0;
    shm_session *s = m->type == PS_MSG_PUSH ? session_find(x, m->worker_id) : NULL;
    if (s == NULL)
        return ps_error_set(err, PS_EPAYLOAD,
                            "%s says its payload is in shared memory, but worker %u has none "
                            "with shard %u",
                            ps_msg_type_name(m->type), m->worker_id, x->shard);
    if (m->payload_bytes > s->seg.floats * sizeof(float))
        return ps_error_set(err, PS_EPAYLOAD,
                            "a PUSH of %llu bytes does not fit the %zu bytes of shared memory",
                            (unsigned long long)m->payload_bytes, s->seg.floats * sizeof(float));
    uint64_t marked = ps_shm_grad_seq(&s->seg);
    if (marked != m->seq)
        return ps_error_set(err, PS_EPAYLOAD,
                            "the gradient in shared memory is push %llu's, not push %llu's",
                            (unsigned long long)marked, (unsigned long long)m->seq);
    m->encoding = PS_ENC_F32;
    m->payload = s->seg.grad;
    session_used(x, s);
    return 0;
}

bool ps_shm_sessions_pull_reply(ps_shm_sessions *x, ps_msg *reply, const void *payload)
{
    if (x->by_rank == NULL || reply->type != PS_MSG_PULL_REPLY || reply->payload_bytes == 0 ||
        reply->table != 0) /* the segment holds the dense θ, not rows */
        return false;
    shm_session *s = session_find(x, reply->worker_id);
    /* the segment holds the whole shard's θ: a pull of part of it goes
     * over the socket */
    if (s == NULL || reply->seq != s->pull_seq || reply->seq <= s->answered_seq ||
        reply->encoding != PS_ENC_F32 || reply->key_lo != ps_engine_key_lo(x->engine) ||
        reply->key_hi != ps_engine_key_hi(x->engine) ||
        reply->payload_bytes != s->seg.floats * sizeof(float))
        return false;
    memcpy(s->seg.theta, payload, (size_t)reply->payload_bytes);
    s->answered_seq = reply->seq;
    reply->encoding = PS_ENC_SHM_F32;
    return true;
}

void ps_shm_sessions_destroy(ps_shm_sessions **xp)
{
    if (xp == NULL || *xp == NULL)
        return;
    ps_shm_sessions *x = *xp;
    for (uint32_t r = 0; x->by_rank != NULL && r < x->workers; r++)
        session_end(&x->by_rank[r]);
    free(x->by_rank);
    free(x);
    *xp = NULL;
}
