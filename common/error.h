/* error.h — psd's error codes and the internal error record. The codes,
 * their names and their messages come from one X-macro list, PS_ERRNO_MAP
 * in the public <psd/errors.h> (worker/psd_errors.h), so libpsworker's
 * users and psd's own code cannot drift apart. Codes are negative; 0 is
 * success. A ps_error carries a code and a sentence for a person. */
#ifndef PS_ERROR_H
#define PS_ERROR_H

#include <stddef.h>

#include <psd/errors.h> /* PS_E... codes, ps_strerror, ps_err_name */

#define PS_ERROR_MSG_MAX 512

typedef struct ps_error {
    int code;
    char msg[PS_ERROR_MSG_MAX];
} ps_error;

/* Fills err (when not NULL) with code and a printf-style message; returns
 * code, so callers can write `return ps_error_set(err, PS_EIO, ...)`. */
int ps_error_set(ps_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears err to success. */
void ps_error_clear(ps_error *err);

#endif
