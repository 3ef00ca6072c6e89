/* log.c: formatting of log messages. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>

void tnd_log(const tnd_logger *lg, tnd_log_level level, const char *fmt, ...) {
    if (!lg || !lg->fn || level < lg->min_level || level >= TND_LOG_NONE) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lg->fn(lg->user, level, msg);
}
