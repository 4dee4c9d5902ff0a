/* schema.h — the job file's keys: one row per key (yamlwalk.h) with its kind,
 * its field of ps_job, bounds, default, validity hook, aliases and the rule of
 * when it may be given. A new key is one row in schema.c; the checks that span
 * several keys and fit no row are in job.c. Modes and codecs are not listed
 * here: their names and rules come from mode.h and compress.h. */
#ifndef PS_SCHEMA_H
#define PS_SCHEMA_H

#include "yamlwalk.h"

/* The top level of a job file, whose base is a ps_job; its SECTION rows
 * lead to every other section. Static: never freed. */
const ps_yamlwalk_section *ps_schema_job(void);

/* Whether s is an endpoint a worker can connect to (tcp://host:port or
 * ipc://path); *why says what is wrong when not. */
bool ps_schema_valid_endpoint(const char *s, const char **why);

#endif
