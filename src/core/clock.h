/* clock.h: the monotonic clock that every timing in the library reads (step costs, deadlines, profiles). */
#ifndef TND_CORE_CLOCK_H
#define TND_CORE_CLOCK_H

#include <time.h>

/* Seconds on CLOCK_MONOTONIC: differences only mean anything. */
static inline double tnd_now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#endif
