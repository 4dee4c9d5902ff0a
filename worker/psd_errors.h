/* <psd/errors.h> — the error codes of psd and libpsworker. Every call that
 * can fail returns 0 or one of these negative codes. The values never
 * change; a minor release may add codes at the end of the list (a program
 * should treat a code it does not know as a failure, ps_strerror names it
 * "unknown error"). */
#ifndef PSD_ERRORS_H
#define PSD_ERRORS_H

/* PS_EXTERN marks the functions libpsworker exports; everything else in it
 * is hidden. */
#ifndef PS_EXTERN
#if defined(__GNUC__) && __GNUC__ >= 4
#define PS_EXTERN __attribute__((visibility("default")))
#else
#define PS_EXTERN
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The codes, as X(name, value, message): name PS_<name>, its value and
 * the sentence ps_strerror gives. New codes go at the end only. */
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
PS_EXTERN const char *ps_strerror(int code);

/* The code's name ("PS_EPROTO"); "PS_E?" for a code not in the list. */
PS_EXTERN const char *ps_err_name(int code);

#ifdef __cplusplus
}
#endif

#endif
