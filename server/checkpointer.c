/* checkpointer.c — the snapshot-and-write cycle. The server thread copies
 * the live arrays into the snapshot only while the writer is idle, and the
 * writer reads the snapshot only while it owns the job: one mutex and one
 * condition variable hand the snapshot back and forth. With sparse tables
 * the server thread writes the file itself (checkpointer.h says why). */
#include "checkpointer.h"

#include "batchq.h"
#include "checkpoint.h"
#include "floats.h"
#include "store.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum writer_state { W_IDLE, W_PENDING, W_WRITING, W_DONE, W_QUIT } writer_state;

struct ps_checkpointer {
    const ps_log *log;
    ps_engine *engine;
    ps_ckpt_folder folder; /* the writer's while it writes, the server thread's otherwise */
    uint64_t every_ms;
    uint64_t next_ms;
    bool requested;

    size_t narrays;
    ps_ckpt_array snap[PS_CKPT_MAX_ARRAYS]; /* slices of snap_buf */
    float *snap_buf;
    ps_ckpt_rank *ranks; /* the job's workers of them: loaded into, then the snapshot's */
    uint32_t nranks;
    unsigned char *queue; /* the batch queue's bytes in the snapshot (data.assign: dynamic) */
    size_t queue_cap;
    ps_ckpt_meta meta;
    ps_table *tables[PS_CKPT_MAX_TABLES]; /* the server thread's; none: the writer writes */
    size_t ntables;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    writer_state state;
    /* the writer's last result, read by the server thread in W_DONE */
    int result;
    ps_error result_err;
    char result_path[PS_PATH_MAX];
    uint64_t result_bytes, result_ms;

    uint64_t written;
    char last_path[PS_PATH_MAX];
    ps_checkpointer_last last; /* the last written one, for /metrics */
    /* every finished checkpoint, and how the last one ended */
    uint64_t finished;
    int last_status;
    char last_text[PS_ERROR_MSG_MAX];
    bool skip_warned; /* "checkpoint skipped" said since the last good write */
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Bytes as a person reads them: "812 kB", "16.0 MB". */
static void size_text(uint64_t bytes, char *out, size_t cap)
{
    if (bytes < 1000000)
        snprintf(out, cap, "%.0f kB", (double)bytes / 1e3);
    else
        snprintf(out, cap, "%.1f MB", (double)bytes / 1e6);
}

/* Writes the snapshot (the caller owns it) and records the result. */
static void write_snapshot(ps_checkpointer *c)
{
    uint64_t t0 = ps_clock_ms();
    ps_error_clear(&c->result_err);
    c->result = ps_table_checkpoint_write(&c->folder, &c->meta, c->snap, c->narrays, c->tables,
                                          c->ntables, c->result_path, sizeof c->result_path,
                                          &c->result_bytes, &c->result_err);
    c->result_ms = ps_clock_ms() - t0;
}

static void *writer_main(void *arg)
{
    ps_checkpointer *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->state != W_PENDING && c->state != W_QUIT)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->state == W_QUIT)
            break;
        c->state = W_WRITING;
        pthread_mutex_unlock(&c->mu);
        write_snapshot(c);
        pthread_mutex_lock(&c->mu);
        c->state = W_DONE;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Copies the live arrays and counters into the snapshot: the one pause.
 * The arrays are looked up each time: θ moves between buffers (store.h). */
static void snapshot_take(ps_checkpointer *c)
{
    ps_ckpt_array live[PS_CKPT_MAX_ARRAYS];
    size_t n = 0;
    ps_store_ckpt_arrays(ps_engine_store(c->engine), live, PS_CKPT_MAX_ARRAYS, &n);
    for (size_t i = 0; i < c->narrays; i++)
        memcpy(c->snap[i].data, live[i].data, live[i].count * sizeof(float));
    c->meta.version = ps_engine_version(c->engine);
    c->meta.updates = ps_store_updates(ps_engine_store(c->engine));
    c->meta.created_ms = wall_ms();
    for (uint32_t r = 0; r < c->nranks; r++) {
        ps_engine_rank er;
        ps_engine_rank_get(c->engine, r, &er);
        c->ranks[r] = (ps_ckpt_rank){.incarnation = er.incarnation,
                                     .last_seq = er.last_seq,
                                     .applied = er.applied,
                                     .clock = er.clock,
                                     .flags = (er.has_seq ? PS_CKPT_RANK_SEQ : 0) |
                                              (er.finished ? PS_CKPT_RANK_DONE : 0)};
    }
    c->meta.ranks = c->ranks;
    c->meta.nranks = c->nranks;
    /* the queue as θ holds it: the batches marked trained are those applied */
    size_t qn = ps_engine_queue_bytes(c->engine);
    if (qn > c->queue_cap) {
        unsigned char *q = realloc(c->queue, qn);
        if (q == NULL) { /* kept as it was: the checkpoint goes without it, and says so */
            PS_LOG_W(c->log, "checkpoint: out of memory for the batch queue: written without it");
            qn = 0;
        } else {
            c->queue = q;
            c->queue_cap = qn;
        }
    }
    if (qn > 0)
        ps_engine_queue_save(c->engine, c->queue);
    c->meta.queue = c->queue;
    c->meta.queue_bytes = qn;
}

/* Gives the engine back what the checkpoint knew of each rank, so a push
 * in flight across the restart is not applied twice. */
static void ranks_restore(ps_checkpointer *c, const ps_ckpt_meta *meta)
{
    for (uint32_t r = 0; r < meta->nranks && r < c->nranks; r++) {
        const ps_ckpt_rank *k = &meta->ranks[r];
        ps_engine_rank er = {.incarnation = k->incarnation,
                             .has_seq = (k->flags & PS_CKPT_RANK_SEQ) != 0,
                             .finished = (k->flags & PS_CKPT_RANK_DONE) != 0,
                             .last_seq = k->last_seq,
                             .applied = k->applied,
                             .clock = k->clock};
        ps_engine_rank_restore(c->engine, r, &er);
    }
}

/* Logs a finished write; the caller holds the result (state W_DONE or its
 * own synchronous write). */
static void report(ps_checkpointer *c)
{
    c->finished++;
    c->last_status = c->result;
    if (c->result == PS_EDIVERGED) {
        ps_strlcpy(c->last_text, c->result_err.msg, sizeof c->last_text);
        if (!c->skip_warned) /* once: a diverged job would say it every interval */
            PS_LOG_W(c->log, "checkpoint skipped: %s: %s", c->result_err.msg,
                     c->folder.nknown > 0 ? "the last good checkpoint is kept"
                                          : "there is no good checkpoint to keep");
        c->skip_warned = true;
        return;
    }
    if (c->result != 0) {
        ps_strlcpy(c->last_text, c->result_err.msg, sizeof c->last_text);
        PS_LOG_E(c->log, "checkpoint failed: %s", c->result_err.msg);
        return;
    }
    c->skip_warned = false;
    c->written++;
    c->last = (ps_checkpointer_last){
        .written_ms = ps_clock_ms(), .bytes = c->result_bytes, .write_ms = c->result_ms};
    ps_strlcpy(c->last_path, c->result_path, sizeof c->last_path);
    ps_strlcpy(c->last_text, c->result_path, sizeof c->last_text);
    char size[32];
    size_text(c->result_bytes, size, sizeof size);
    PS_LOG_I(c->log, "checkpoint written: %s (version %llu, %s, %llu ms)", c->result_path,
             (unsigned long long)c->meta.version, size, (unsigned long long)c->result_ms);
}

/* Loads the newest valid checkpoint into the live arrays (the store's,
 * from ps_store_ckpt_arrays_for_load) and the engine. */
static int load_newest(ps_checkpointer *c, ps_ckpt_array *live, const ps_job *job, uint32_t shard,
                       ps_error *err)
{
    uint64_t t0 = ps_clock_ms();
    ps_ckpt_meta meta;
    char path[PS_PATH_MAX];
    int rc = ps_table_checkpoint_load(&c->folder, job->name, shard, c->meta.key_lo, c->meta.key_hi,
                                      live, c->narrays, c->tables, c->ntables, &meta, path,
                                      sizeof path, c->log, err);
    if (rc < 0)
        return rc;
    if (rc == 1) {
        PS_LOG_I(c->log, "no valid checkpoint in %s: starting from the job's seed", c->folder.dir);
        return 0;
    }
    ps_store_set_updates(ps_engine_store(c->engine), meta.updates);
    ps_engine_restore(c->engine, meta.version);
    ranks_restore(c, &meta);
    if (meta.queue_bytes > 0) {
        ps_error why;
        rc = ps_engine_queue_load(c->engine, meta.queue, meta.queue_bytes, &why);
        if (rc != 0)
            return ps_error_set(err, rc == PS_ENOMEM ? PS_ENOMEM : PS_ECONFIG, "%s: %s", path,
                                why.msg);
        if (ps_engine_queue(c->engine) != NULL)
            PS_LOG_I(c->log, "checkpoint loaded: the batch queue at epoch %u, %llu batches trained",
                     ps_batchq_epoch(ps_engine_queue(c->engine)) + 1,
                     (unsigned long long)ps_batchq_trained(ps_engine_queue(c->engine)));
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < c->narrays; i++)
        bytes += live[i].count * sizeof(float);
    char size[32];
    size_text(bytes, size, sizeof size);
    PS_LOG_I(c->log, "checkpoint loaded: %s (version %llu, %s, %u ranks, %llu ms)", path,
             (unsigned long long)meta.version, size, meta.nranks,
             (unsigned long long)(ps_clock_ms() - t0));
    for (size_t i = 0; i < c->ntables; i++)
        PS_LOG_I(c->log, "checkpoint loaded: table %s, %llu rows", ps_table_name(c->tables[i]),
                 (unsigned long long)ps_table_rows(c->tables[i]));
    return 0;
}

int ps_checkpointer_new_tables(const ps_job *job, uint32_t shard, ps_engine *engine,
                               ps_table *const *tables, size_t ntables, const ps_log *log,
                               ps_checkpointer **out, ps_error *err)
{
    *out = NULL;
    if (ntables > PS_CKPT_MAX_TABLES)
        return ps_error_set(err, PS_EINVAL, "checkpoint: %zu tables (limit %d)", ntables,
                            PS_CKPT_MAX_TABLES);
    if (job->checkpoint.dir[0] == '\0')
        return 0;
    ps_checkpointer *c = calloc(1, sizeof *c);
    if (c == NULL)
        return ps_error_set(err, PS_ENOMEM, "cannot allocate the checkpointer");
    for (size_t i = 0; i < ntables; i++)
        c->tables[i] = tables[i];
    c->ntables = ntables;
    c->log = log;
    c->engine = engine;
    c->every_ms = (uint64_t)(job->checkpoint.every_seconds * 1000.0);
    if (c->every_ms == 0)
        c->every_ms = 1;
    ps_strlcpy(c->meta.job, job->name, sizeof c->meta.job);
    c->meta.shard = shard;
    c->meta.key_lo = ps_engine_key_lo(engine);
    c->meta.key_hi = ps_engine_key_hi(engine);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    ps_ckpt_array live[PS_CKPT_MAX_ARRAYS];
    int rc = ps_ckpt_folder_init(&c->folder, job->checkpoint.dir, job->checkpoint.keep,
                                 job->on_divergence == PS_DIVERGE_STOP, err);
    if (rc != 0)
        goto fail;
    c->nranks = job->workers;
    if ((c->ranks = calloc(c->nranks ? c->nranks : 1, sizeof *c->ranks)) == NULL) {
        rc = ps_error_set(err, PS_ENOMEM, "cannot allocate the checkpoint's rank table");
        goto fail;
    }
    c->folder.ranks = c->ranks;
    c->folder.rank_room = c->nranks;
    rc = ps_store_ckpt_arrays_for_load(ps_engine_store(engine), live, PS_CKPT_MAX_ARRAYS,
                                       &c->narrays);
    if (rc != 0) {
        ps_error_set(err, rc, "the shard has more arrays than a checkpoint holds");
        goto fail;
    }
    size_t total = 0;
    for (size_t i = 0; i < c->narrays; i++)
        total += live[i].count;
    size_t bytes;
    c->snap_buf = ps_floats_alloc(total, &bytes);
    if (c->snap_buf == NULL) {
        rc = ps_error_set(err, PS_ENOMEM, "cannot allocate a %zu-float checkpoint snapshot", total);
        goto fail;
    }
    size_t off = 0;
    for (size_t i = 0; i < c->narrays; i++) {
        c->snap[i] = live[i];
        c->snap[i].data = c->snap_buf + off;
        off += live[i].count;
    }
    if ((rc = load_newest(c, live, job, shard, err)) != 0)
        goto fail;
    if (pthread_create(&c->thread, NULL, writer_main, c) != 0) {
        rc = ps_error_set(err, PS_ENOMEM, "cannot start the checkpoint writer");
        goto fail;
    }
    c->thread_started = true;
    c->next_ms = ps_clock_ms() + c->every_ms;
    *out = c;
    return 0;
fail:
    ps_checkpointer_destroy(&c);
    return rc;
}

int ps_checkpointer_new(const ps_job *job, uint32_t shard, ps_engine *engine, const ps_log *log,
                        ps_checkpointer **out, ps_error *err)
{
    return ps_checkpointer_new_tables(job, shard, engine, NULL, 0, log, out, err);
}

void ps_checkpointer_tick(ps_checkpointer *c, uint64_t now_ms)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    writer_state st = c->state;
    pthread_mutex_unlock(&c->mu);
    if (st == W_DONE) {
        report(c);
        st = W_IDLE;
        pthread_mutex_lock(&c->mu);
        c->state = W_IDLE;
        pthread_mutex_unlock(&c->mu);
    }
    if (st != W_IDLE || (!c->requested && now_ms < c->next_ms))
        return;
    if (!ps_engine_whole(c->engine))
        return;       /* a round part applied: at its end, the next tick */
    snapshot_take(c); /* the writer is idle: the snapshot is ours */
    c->requested = false;
    c->next_ms = now_ms + c->every_ms;
    if (c->ntables > 0) { /* rows straight from the tables: serving waits */
        write_snapshot(c);
        report(c);
        c->next_ms = ps_clock_ms() + c->every_ms;
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->state = W_PENDING;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void ps_checkpointer_request(ps_checkpointer *c)
{
    if (c != NULL)
        c->requested = true;
}

uint64_t ps_checkpointer_written(const ps_checkpointer *c, const char **last_path)
{
    if (last_path)
        *last_path = c ? c->last_path : "";
    return c ? c->written : 0;
}

uint64_t ps_checkpointer_finished(const ps_checkpointer *c, int *status, const char **text)
{
    if (status)
        *status = c ? c->last_status : 0;
    if (text)
        *text = c ? c->last_text : "";
    return c ? c->finished : 0;
}

void ps_checkpointer_last_get(const ps_checkpointer *c, ps_checkpointer_last *out)
{
    *out = c ? c->last : (ps_checkpointer_last){0, 0, 0};
}

/* Waits until the writer holds no snapshot; reports a finished write. */
static void writer_wait_idle(ps_checkpointer *c)
{
    pthread_mutex_lock(&c->mu);
    while (c->state == W_PENDING || c->state == W_WRITING)
        pthread_cond_wait(&c->cv, &c->mu);
    bool done = c->state == W_DONE;
    c->state = W_IDLE;
    pthread_mutex_unlock(&c->mu);
    if (done)
        report(c);
}

int ps_checkpointer_final(ps_checkpointer *c)
{
    if (c == NULL)
        return 0;
    writer_wait_idle(c);
    if (!ps_engine_whole(c->engine)) {
        /* stopped inside a round part applied: the last whole version's
         * checkpoint stands */
        PS_LOG_W(c->log,
                 "no final checkpoint: psd stopped inside round %llu, part applied (the last "
                 "checkpoint stands)",
                 (unsigned long long)ps_engine_version(c->engine));
        return c->result;
    }
    snapshot_take(c);
    write_snapshot(c);
    report(c);
    return c->result;
}

void ps_checkpointer_destroy(ps_checkpointer **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    ps_checkpointer *c = *cp;
    if (c->thread_started) {
        writer_wait_idle(c);
        pthread_mutex_lock(&c->mu);
        c->state = W_QUIT;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    ps_ckpt_folder_fini(&c->folder);
    free(c->snap_buf);
    free(c->ranks);
    free(c->queue);
    free(c);
    *cp = NULL;
}
