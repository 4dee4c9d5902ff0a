/* log.c — one line per call, assembled first so concurrent writers to the
 * same stderr (psrun's children) never interleave inside a line. */
#include "log.h"

#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int ps_log_level_parse(const char *name, ps_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (ps_log_level)i;
            return 0;
        }
    }
    return PS_EINVAL;
}

const char *ps_log_level_name(ps_log_level level)
{
    if ((int)level < 0 || (int)level > 3)
        return "?";
    return level_names[level];
}

void ps_log_write(const ps_log *lg, ps_log_level level, const char *fmt, ...)
{
    ps_log_level max = lg ? lg->level : PS_LOG_INFO;
    if (level > max)
        return;
    char line[2048];
    int n = 0;
    if (lg && lg->prog)
        n = snprintf(line, sizeof line, "%s: ", lg->prog);
    if (level != PS_LOG_INFO)
        n += snprintf(line + n, sizeof line - (size_t)n, "%s: ", ps_log_level_name(level));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m > 0 ? (size_t)m : 0);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
