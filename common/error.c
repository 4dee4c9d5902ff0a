/* error.c — names and messages of psd's error codes, from PS_ERRNO_MAP. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

const char *ps_strerror(int code)
{
    switch (code) {
    case PS_OK:
        return "success";
#define PS_X_MSG(name, value, msg)                                                                 \
    case value:                                                                                    \
        return msg;
        PS_ERRNO_MAP(PS_X_MSG)
#undef PS_X_MSG
    default:
        return "unknown error";
    }
}

const char *ps_err_name(int code)
{
    switch (code) {
    case PS_OK:
        return "PS_OK";
#define PS_X_NAME(name, value, msg)                                                                \
    case value:                                                                                    \
        return "PS_" #name;
        PS_ERRNO_MAP(PS_X_NAME)
#undef PS_X_NAME
    default:
        return "PS_E?";
    }
}

int ps_error_set(ps_error *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

void ps_error_clear(ps_error *err)
{
    if (err == NULL)
        return;
    err->code = PS_OK;
    err->msg[0] = '\0';
}
