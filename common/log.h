/* log.h — leveled, one-line logging to stderr (journald takes it). The level
 * lives in a ps_log the caller owns, so SIGHUP can change it at run time. */
#ifndef PS_LOG_H
#define PS_LOG_H

typedef enum ps_log_level {
    PS_LOG_ERROR = 0,
    PS_LOG_WARN = 1,
    PS_LOG_INFO = 2,
    PS_LOG_DEBUG = 3,
} ps_log_level;

typedef struct ps_log {
    ps_log_level level;
    const char *prog; /* prefix of every line, e.g. "psd"; not owned */
} ps_log;

/* Parses "error", "warn", "info", "debug"; PS_EINVAL for anything else. */
int ps_log_level_parse(const char *name, ps_log_level *out);

/* The level's name ("info"). */
const char *ps_log_level_name(ps_log_level level);

/* Writes "prog: level: message\n" to stderr when level <= lg->level. A NULL
 * lg logs at info with no prefix. */
void ps_log_write(const ps_log *lg, ps_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define PS_LOG_E(lg, ...) ps_log_write((lg), PS_LOG_ERROR, __VA_ARGS__)
#define PS_LOG_W(lg, ...) ps_log_write((lg), PS_LOG_WARN, __VA_ARGS__)
#define PS_LOG_I(lg, ...) ps_log_write((lg), PS_LOG_INFO, __VA_ARGS__)
#define PS_LOG_D(lg, ...) ps_log_write((lg), PS_LOG_DEBUG, __VA_ARGS__)

#endif
