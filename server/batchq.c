/* batchq.c — the queue of an epoch's batches (batchq.h). Per batch of the
 * open epoch one byte (trained or not) and the rank holding its lease;
 * per rank the leases it holds and the batches it trained. Saved as a
 * 32-byte head ("PSDBQ001", epochs, workers, epoch_batches, epoch,
 * finished), then a uint64 count per rank, then a byte per batch of the
 * open epoch (1: trained); little-endian. */
#include "batchq.h"

#include "job.h"
#include "msg.h"

#include <stdlib.h>
#include <string.h>

#define BQ_MAGIC "PSDBQ001"
#define BQ_HEAD  32u

struct ps_batchq {
    uint32_t epochs, workers;
    uint64_t spe;      /* batches an epoch; 0: not sized */
    uint32_t epoch;    /* open epoch, 0-based */
    bool finished;     /* every batch of the job trained */
    uint8_t *trained;  /* spe: 1 once trained this epoch */
    uint32_t *owner;   /* spe: rank + 1 holding its lease, 0: none */
    uint64_t left;     /* batches of the open epoch not trained */
    uint64_t next;     /* no free batch below this one */
    uint32_t *held;    /* per rank: leases held */
    uint64_t *batches; /* per rank: batches trained */
    uint64_t total;    /* batches trained over the job */
};

ps_batchq *ps_batchq_new(uint32_t epochs, uint32_t workers, ps_error *err)
{
    ps_batchq *q = calloc(1, sizeof *q);
    if (q != NULL) {
        q->held = calloc(workers ? workers : 1, sizeof *q->held);
        q->batches = calloc(workers ? workers : 1, sizeof *q->batches);
    }
    if (q == NULL || q->held == NULL || q->batches == NULL) {
        ps_batchq_destroy(&q);
        ps_error_set(err, PS_ENOMEM, "cannot allocate the batch queue");
        return NULL;
    }
    q->epochs = epochs ? epochs : 1;
    q->workers = workers;
    return q;
}

void ps_batchq_destroy(ps_batchq **qp)
{
    if (qp == NULL || *qp == NULL)
        return;
    ps_batchq *q = *qp;
    free(q->trained);
    free(q->owner);
    free(q->held);
    free(q->batches);
    free(q);
    *qp = NULL;
}

/* The arrays of an epoch of spe batches, all free. */
static int alloc_epoch(ps_batchq *q, uint64_t spe)
{
    if (spe > SIZE_MAX / sizeof(uint32_t))
        return PS_ENOMEM;
    uint8_t *t = calloc((size_t)spe, 1);
    uint32_t *o = calloc((size_t)spe, sizeof *o);
    if (t == NULL || o == NULL) {
        free(t);
        free(o);
        return PS_ENOMEM;
    }
    free(q->trained);
    free(q->owner);
    q->trained = t;
    q->owner = o;
    q->spe = spe;
    return 0;
}

int ps_batchq_size(ps_batchq *q, uint64_t epoch_batches, ps_error *err)
{
    if (epoch_batches == 0)
        return ps_error_set(err, PS_EINVAL, "an epoch of 0 batches");
    if (q->spe == epoch_batches)
        return 0;
    if (q->spe != 0)
        return ps_error_set(
            err, PS_ECONFIG,
            "the worker counts %llu batches an epoch, the queue holds %llu (another "
            "data.train or training.batch_size?)",
            (unsigned long long)epoch_batches, (unsigned long long)q->spe);
    if (alloc_epoch(q, epoch_batches) != 0)
        return ps_error_set(err, PS_ENOMEM, "cannot allocate a queue of %llu batches",
                            (unsigned long long)epoch_batches);
    q->left = epoch_batches;
    q->next = 0;
    return 0;
}

uint64_t ps_batchq_epoch_batches(const ps_batchq *q)
{
    return q->spe;
}

void ps_batchq_lease(ps_batchq *q, uint32_t rank, uint32_t want, uint64_t *first, uint32_t *count,
                     uint32_t *flags)
{
    *first = 0;
    *count = 0;
    *flags = 0;
    if (q->finished) {
        *flags = PS_LEASE_END;
        return;
    }
    if (q->spe == 0 || rank >= q->workers)
        return;
    uint32_t room = PS_BATCHQ_LEASE_MAX - q->held[rank];
    if (want > room)
        want = room;
    if (want == 0)
        return;
    uint64_t j = q->next;
    while (j < q->spe && (q->trained[j] || q->owner[j] != 0))
        j++;
    q->next = j;
    if (j == q->spe) {
        *flags = PS_LEASE_WAIT;
        return;
    }
    *first = (uint64_t)q->epoch * q->spe + j;
    while (j < q->spe && *count < want && !q->trained[j] && q->owner[j] == 0) {
        q->owner[j++] = rank + 1;
        (*count)++;
    }
    q->held[rank] += *count;
    q->next = j;
}

int ps_batchq_done(ps_batchq *q, uint32_t rank, uint64_t b)
{
    if (q->spe == 0 || rank >= q->workers)
        return PS_ERANGE;
    uint64_t e = b / q->spe, j = b % q->spe;
    if (q->finished || e < q->epoch)
        return 1;
    if (e > q->epoch)
        return PS_ERANGE;
    if (q->trained[j])
        return 1;
    q->trained[j] = 1;
    if (q->owner[j] != 0) {
        q->held[q->owner[j] - 1]--;
        q->owner[j] = 0;
    }
    q->batches[rank]++;
    q->total++;
    if (--q->left > 0)
        return 0;
    /* the epoch is trained: every lease of it ended with its batch */
    if (++q->epoch >= q->epochs) {
        q->finished = true;
        return 0;
    }
    memset(q->trained, 0, (size_t)q->spe);
    memset(q->owner, 0, (size_t)q->spe * sizeof *q->owner);
    memset(q->held, 0, q->workers * sizeof *q->held);
    q->left = q->spe;
    q->next = 0;
    return 0;
}

uint32_t ps_batchq_release(ps_batchq *q, uint32_t rank)
{
    if (rank >= q->workers || q->held[rank] == 0)
        return 0;
    uint32_t n = 0;
    for (uint64_t j = 0; j < q->spe && n < q->held[rank]; j++) {
        if (q->owner[j] == rank + 1) {
            q->owner[j] = 0;
            if (j < q->next)
                q->next = j;
            n++;
        }
    }
    q->held[rank] = 0;
    return n;
}

uint64_t ps_batchq_rank_batches(const ps_batchq *q, uint32_t rank)
{
    return rank < q->workers ? q->batches[rank] : 0;
}

uint32_t ps_batchq_rank_held(const ps_batchq *q, uint32_t rank)
{
    return rank < q->workers ? q->held[rank] : 0;
}

uint64_t ps_batchq_trained(const ps_batchq *q)
{
    return q->total;
}

uint32_t ps_batchq_epoch(const ps_batchq *q)
{
    return q->epoch;
}

bool ps_batchq_finished(const ps_batchq *q)
{
    return q->finished;
}

size_t ps_batchq_bytes(const ps_batchq *q)
{
    if (q->spe == 0)
        return 0;
    return BQ_HEAD + (size_t)q->workers * sizeof(uint64_t) + (size_t)q->spe;
}

void ps_batchq_save(const ps_batchq *q, void *buf)
{
    unsigned char *p = buf;
    uint32_t head32[4] = {q->epochs, q->workers, q->epoch, q->finished ? 1u : 0u};
    memcpy(p, BQ_MAGIC, 8);
    memcpy(p + 8, &head32[0], 4);
    memcpy(p + 12, &head32[1], 4);
    memcpy(p + 16, &q->spe, 8);
    memcpy(p + 24, &head32[2], 4);
    memcpy(p + 28, &head32[3], 4);
    p += BQ_HEAD;
    memcpy(p, q->batches, (size_t)q->workers * sizeof(uint64_t));
    p += (size_t)q->workers * sizeof(uint64_t);
    memcpy(p, q->trained, (size_t)q->spe);
}

int ps_batchq_load(ps_batchq *q, const void *buf, size_t n, ps_error *err)
{
    const unsigned char *p = buf;
    uint32_t epochs, workers, epoch, finished;
    uint64_t spe;
    if (n < BQ_HEAD || memcmp(p, BQ_MAGIC, 8) != 0)
        return ps_error_set(err, PS_EPROTO, "the batch queue's %zu bytes are not a queue", n);
    memcpy(&epochs, p + 8, 4);
    memcpy(&workers, p + 12, 4);
    memcpy(&spe, p + 16, 8);
    memcpy(&epoch, p + 24, 4);
    memcpy(&finished, p + 28, 4);
    if (spe == 0 || workers == 0 || workers > PS_MAX_WORKERS || spe > ((uint64_t)1 << 40) ||
        n != BQ_HEAD + (size_t)workers * sizeof(uint64_t) + (size_t)spe || finished > 1 ||
        epoch > epochs || (epoch == epochs) != (finished == 1))
        return ps_error_set(err, PS_EPROTO, "the batch queue's %zu bytes do not add up", n);
    if (epochs != q->epochs)
        return ps_error_set(err, PS_EPROTO,
                            "the batch queue is of a job of %u epochs, this one has %u", epochs,
                            q->epochs);
    const unsigned char *counts = p + BQ_HEAD, *trained = counts + (size_t)workers * 8;
    uint64_t left = 0;
    for (uint64_t j = 0; j < spe; j++) {
        if (trained[j] > 1)
            return ps_error_set(err, PS_EPROTO, "the batch queue's batch %llu is neither",
                                (unsigned long long)j);
        left += trained[j] == 0;
    }
    if (!finished && left == 0)
        return ps_error_set(err, PS_EPROTO, "the batch queue's open epoch is all trained");
    if (alloc_epoch(q, spe) != 0)
        return ps_error_set(err, PS_ENOMEM, "cannot allocate a queue of %llu batches",
                            (unsigned long long)spe);
    memcpy(q->trained, trained, (size_t)spe);
    memset(q->held, 0, q->workers * sizeof *q->held);
    memset(q->batches, 0, q->workers * sizeof *q->batches);
    q->total = 0;
    for (uint32_t r = 0; r < workers; r++) {
        uint64_t c;
        memcpy(&c, counts + (size_t)r * 8, 8);
        if (r < q->workers)
            q->batches[r] = c;
        q->total += c;
    }
    q->epoch = epoch;
    q->finished = finished == 1;
    q->left = finished ? 0 : left;
    q->next = 0;
    return 0;
}
