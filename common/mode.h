/* mode.h — the consistency modes, one row each: the name job files, the
 * WELCOME and /metrics use, the job-file keys only some modes take, and
 * what a mode does that the other layers must know. The job loader, psd's
 * engine, the worker's trainer and client, metrics and error texts read
 * names and rules from here. Adding a mode is a row here plus its ops row
 * in server/engine_modes.c (when a push is applied, when a parked pull is
 * answered) and in worker/trainer.c (what a worker's step sends and waits
 * for); both tables are indexed by ps_mode and tied to PS_MODE_COUNT by
 * static asserts. */
#ifndef PS_MODE_H
#define PS_MODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ps_mode {
    PS_MODE_SYNC,  /* bulk-synchronous rounds */
    PS_MODE_ASYNC, /* every push applied as it comes */
    PS_MODE_SSP,   /* async, with pulls held to a bounded staleness */
    PS_MODE_COUNT,
} ps_mode;

/* Job-file keys that only some modes take (ps_mode_desc.keys). */
#define PS_MODE_KEY_STALENESS      (1u << 0) /* staleness */
#define PS_MODE_KEY_BACKUP_WORKERS (1u << 1) /* backup_workers above 0 */
#define PS_MODE_KEY_DETERMINISTIC  (1u << 2) /* deterministic: true */

typedef struct ps_mode_desc {
    ps_mode mode;
    const char *name;    /* as in job files, WELCOME and /metrics: "ssp" */
    const char *summary; /* for people: "bulk-synchronous rounds" */
    uint32_t keys;       /* the PS_MODE_KEY_ bits it takes */
    /* Pushes are summed into rounds by clock, so a worker that registers
     * again (psd restarted or evicted it) must resume at psd's round: the
     * client ends the call with PS_EREJOINED instead of resending. */
    bool rounds;
} ps_mode_desc;

/* The row of a mode; NULL for a value out of range. */
const ps_mode_desc *ps_mode_get(ps_mode mode);

/* The row of the mode named as in job files; NULL for another name. */
const ps_mode_desc *ps_mode_find(const char *name);

/* A mode's name ("sync"); "?" for a value out of range. */
const char *ps_mode_name(ps_mode mode);

/* True when mode takes the job-file key (a PS_MODE_KEY_ bit). */
bool ps_mode_takes(ps_mode mode, uint32_t key);

/* Writes the names of the modes that take key, as "mode sync" or "mode
 * sync or ssp", into buf (cap bytes, always terminated). For error texts. */
void ps_mode_names_taking(uint32_t key, char *buf, size_t cap);

#endif
