/* error.h — psd's error codes. One X-macro list generates the codes, their
 * names and their messages, so they cannot drift apart. Codes are negative;
 * 0 is success. A ps_error carries a code and a sentence for a person. */
#ifndef PS_ERROR_H
#define PS_ERROR_H

#include <stddef.h>

/* name, value, message */
#define PS_ERRNO_MAP(X)                                                                            \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(EIO, -3, "input/output error")                                                               \
    X(EPROTO, -4, "malformed message")                                                             \
    X(ETYPE, -5, "unknown message type")                                                           \
    X(EVERSION, -6, "protocol version mismatch")                                                   \
    X(EJOB, -7, "message for another job")                                                         \
    X(EPAYLOAD, -8, "payload does not match its header")                                           \
    X(ERANGE, -9, "key range out of bounds")                                                       \
    X(EWORKER, -10, "unknown worker")                                                              \
    X(ECLOCK, -11, "clock out of order")                                                           \
    X(ETIMEDOUT, -12, "timed out")                                                                 \
    X(ECONFIG, -13, "invalid job file")                                                            \
    X(EUNSUPPORTED, -14, "not supported yet")                                                      \
    X(EDATA, -15, "malformed data file")                                                           \
    X(EZMQ, -16, "zeromq error")                                                                   \
    X(EFULL, -17, "server is full")                                                                \
    X(ESTATE, -18, "request not valid in this state")                                              \
    X(EINTR, -19, "interrupted")                                                                   \
    X(ESERVER, -20, "server replied with an error")                                                \
    X(EABORTED, -21, "the job was stopped")                                                        \
    X(EREJOINED, -22, "registered again with a server that lost this worker")                      \
    X(ESTOPPED, -23, "the server stopped")                                                         \
    X(EDIVERGED, -24, "training diverged")                                                         \
    X(ECOMPLETE, -25, "the job is complete")                                                       \
    X(EACCESS, -26, "access denied")

enum {
    PS_OK = 0,
#define PS_X_ENUM(name, value, msg) PS_##name = (value),
    PS_ERRNO_MAP(PS_X_ENUM)
#undef PS_X_ENUM
};

/* A sentence naming a code; "unknown error" for a code not in the list. */
const char *ps_strerror(int code);

/* The code's name ("PS_EPROTO"); "PS_E?" for a code not in the list. */
const char *ps_err_name(int code);

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
