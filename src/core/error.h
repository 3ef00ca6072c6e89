/* error.h: recording the message of a failure; every failing library call goes through tnd_fail. */
#ifndef TND_CORE_ERROR_H
#define TND_CORE_ERROR_H

#include "tandem.h"

#if defined(__GNUC__)
#define TND_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define TND_PRINTF(fmt_index, first_arg)
#endif

/* Records a printf-style message as the calling thread's last error and returns `status`, so that error paths read
 * `return tnd_fail(TND_ERR_FORMAT, "tensor '%s': ...", name);`. */
tnd_status tnd_fail(tnd_status status, const char *fmt, ...) TND_PRINTF(2, 3);

/* Prefixes the current last error with a context string ("model.gguf: "), keeping the original message. */
void tnd_error_prefix(const char *fmt, ...) TND_PRINTF(1, 2);

#endif
