/* mode.c — the table of consistency modes (mode.h). */
#include "mode.h"

#include <stdio.h>
#include <string.h>

static const ps_mode_desc modes[] = {
    [PS_MODE_SYNC] = {.mode = PS_MODE_SYNC,
                      .name = "sync",
                      .summary = "bulk-synchronous rounds: every worker's push of round t, "
                                 "then one update",
                      .keys = PS_MODE_KEY_BACKUP_WORKERS | PS_MODE_KEY_DETERMINISTIC,
                      .rounds = true},
    [PS_MODE_ASYNC] = {.mode = PS_MODE_ASYNC,
                       .name = "async",
                       .summary = "every push applied as it arrives",
                       .keys = 0,
                       .rounds = false},
    [PS_MODE_SSP] = {.mode = PS_MODE_SSP,
                     .name = "ssp",
                     .summary = "pushes applied as they arrive, pulls held within `staleness` "
                                "steps of the slowest worker",
                     .keys = PS_MODE_KEY_STALENESS,
                     .rounds = false},
};
_Static_assert(sizeof modes / sizeof modes[0] == PS_MODE_COUNT, "one row per ps_mode");

const ps_mode_desc *ps_mode_get(ps_mode mode)
{
    if ((unsigned)mode >= PS_MODE_COUNT)
        return NULL;
    return &modes[mode];
}

const ps_mode_desc *ps_mode_find(const char *name)
{
    for (size_t i = 0; name != NULL && i < PS_MODE_COUNT; i++)
        if (strcmp(name, modes[i].name) == 0)
            return &modes[i];
    return NULL;
}

const char *ps_mode_name(ps_mode mode)
{
    const ps_mode_desc *d = ps_mode_get(mode);
    return d != NULL ? d->name : "?";
}

bool ps_mode_takes(ps_mode mode, uint32_t key)
{
    const ps_mode_desc *d = ps_mode_get(mode);
    return d != NULL && (d->keys & key) == key;
}

void ps_mode_names_taking(uint32_t key, char *buf, size_t cap)
{
    if (cap == 0)
        return;
    size_t at = (size_t)snprintf(buf, cap, "mode");
    const char *sep = " ";
    for (size_t i = 0; i < PS_MODE_COUNT && at < cap; i++) {
        if ((modes[i].keys & key) != key)
            continue;
        at += (size_t)snprintf(buf + at, cap - at, "%s%s", sep, modes[i].name);
        sep = " or ";
    }
}
