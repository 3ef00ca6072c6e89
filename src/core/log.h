/* log.h: messages to the caller's log hook; silent when no hook is set. */
#ifndef TND_CORE_LOG_H
#define TND_CORE_LOG_H

#include "core/error.h"

/* Where log messages of one object go: the hook, its user pointer and the least severe level passed on. */
typedef struct tnd_logger {
    tnd_log_fn fn;
    void *user;
    tnd_log_level min_level;
} tnd_logger;

/* Formats and passes a message to `lg` if it has a hook and `level` reaches its threshold. `lg` may be NULL. */
void tnd_log(const tnd_logger *lg, tnd_log_level level, const char *fmt, ...) TND_PRINTF(3, 4);

#endif
