/* shm.h — the shared-memory segment a psd shard and a worker on the same
 * host exchange θ and gradients through (proto/ps.proto, "shared memory").
 *
 * psd makes one segment per worker: a memfd, sealed against resizing, that
 * the worker opens as /proc/<psd's pid>/fd/<fd> (which the kernel allows
 * only to processes of psd's user, or root). Its layout:
 *
 *   page 0   header: magic, token (random, also sent in the WELCOME, so the
 *            worker knows it opened the right file), floats per region, and
 *            grad_seq (the seq of the PUSH whose gradient the worker wrote)
 *   grad     floats float32: the worker writes a push's gradient here
 *   theta    floats float32: psd writes a pull's θ here
 *
 * Who may write when: the worker writes grad only between its PUSH's ACK
 * and its next PUSH; psd writes theta only to answer the worker's newest
 * PULL, once. So neither side reads a region the other is writing. */
#ifndef PS_SHM_H
#define PS_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct ps_shm_head ps_shm_head;

/* One mapped segment; all zero (fd -1) when none. */
typedef struct ps_shm {
    int fd;         /* psd: the memfd, open while the segment lives; worker: -1 */
    void *base;     /* the mapping */
    size_t bytes;   /* its size */
    size_t floats;  /* floats in each of grad and theta */
    uint64_t token; /* names this segment */
    ps_shm_head *head;
    float *grad;
    float *theta;
} ps_shm;

/* This host's identity (cap bytes, PS_HOST_MAX will do): the kernel's boot
 * id, so two processes under one kernel have the same one. PS_EIO when it cannot be read. */
int ps_shm_host_id(char *buf, size_t cap);

/* Bytes of the segment for regions of `floats` floats; 0 on overflow. */
size_t ps_shm_bytes(size_t floats);

/* psd: creates and maps a segment for regions of `floats` floats (> 0),
 * with a fresh random token. Its pages cost memory only once touched.
 * PS_ENOMEM, PS_EUNSUPPORTED (no memfd or seals) or PS_EIO; err says why. */
int ps_shm_create(ps_shm *s, size_t floats, ps_error *err);

/* Worker: opens and maps the segment psd `pid` holds as file descriptor
 * `fd`, which must be `bytes` long, carry `token` and have regions of at
 * least `floats` floats. PS_EIO (cannot open it: another host, another
 * pid namespace or another user), PS_EPROTO (not the segment promised) or
 * PS_ENOMEM; err says why. */
int ps_shm_attach(ps_shm *s, uint32_t pid, uint32_t fd, uint64_t bytes, uint64_t token,
                  size_t floats, ps_error *err);

/* Unmaps the segment (and closes psd's fd); s becomes empty. Safe on an
 * empty or a zeroed one. */
void ps_shm_detach(ps_shm *s);

/* True when s is mapped. */
static inline bool ps_shm_mapped(const ps_shm *s)
{
    return s->base != NULL;
}

/* The worker marks the gradient in grad as the one of PUSH seq (after
 * writing it); psd reads which push it belongs to. */
void ps_shm_grad_mark(ps_shm *s, uint64_t seq);
uint64_t ps_shm_grad_seq(const ps_shm *s);

#endif
