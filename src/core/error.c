/* error.c: status names and the per-thread last-error message. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { TND_ERROR_CAP = 1024 };

/* Per thread, so that concurrent calls on different handles do not clobber each other's messages. */
static _Thread_local char last_error[TND_ERROR_CAP];

const char *tnd_status_name(tnd_status status) {
    switch (status) {
    case TND_OK: return "TND_OK";
    case TND_ERR_INVALID_ARGUMENT: return "TND_ERR_INVALID_ARGUMENT";
    case TND_ERR_OUT_OF_MEMORY: return "TND_ERR_OUT_OF_MEMORY";
    case TND_ERR_IO: return "TND_ERR_IO";
    case TND_ERR_FORMAT: return "TND_ERR_FORMAT";
    case TND_ERR_UNSUPPORTED: return "TND_ERR_UNSUPPORTED";
    case TND_ERR_NOT_FOUND: return "TND_ERR_NOT_FOUND";
    case TND_ERR_TYPE: return "TND_ERR_TYPE";
    case TND_ERR_BUFFER_TOO_SMALL: return "TND_ERR_BUFFER_TOO_SMALL";
    case TND_ERR_INTERNAL: return "TND_ERR_INTERNAL";
    case TND_ERR_DEVICE_LOST: return "TND_ERR_DEVICE_LOST";
    }
    return "TND_ERR_UNKNOWN";
}

const char *tnd_last_error(void) { return last_error; }

const char *tnd_version(void) { return "0.1.0"; }

tnd_status tnd_fail(tnd_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

void tnd_error_prefix(const char *fmt, ...) {
    char prefix[TND_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* shift the old message right and put the prefix in front, truncating at the cap */
    size_t np = strlen(prefix), nm = strlen(last_error);
    if (np >= TND_ERROR_CAP) np = TND_ERROR_CAP - 1;
    if (np + nm >= TND_ERROR_CAP) nm = TND_ERROR_CAP - 1 - np;
    memmove(last_error + np, last_error, nm);
    memcpy(last_error, prefix, np);
    last_error[np + nm] = 0;
}
