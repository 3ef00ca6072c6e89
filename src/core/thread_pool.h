/* thread_pool.h: a persistent pool of worker threads that run one parallel job at a time (fork-join). */
#ifndef TND_CORE_THREAD_POOL_H
#define TND_CORE_THREAD_POOL_H

#include "tandem.h"

/* One unit of a job: called once per thread index ith in [0, nth); the callee splits its work by ith/nth. */
typedef void (*tnd_pool_fn)(void *ctx, int ith, int nth);

typedef struct tnd_thread_pool tnd_thread_pool;

/* Starts n_threads - 1 workers (the caller is thread 0). n_threads < 1 means 1. */
tnd_status tnd_thread_pool_init(int n_threads, const tnd_allocator *allocator, tnd_thread_pool **out);
void tnd_thread_pool_free(tnd_thread_pool *pool);
int tnd_thread_pool_size(const tnd_thread_pool *pool);

/* Runs fn(ctx, ith, nth) on every thread and returns when all are done. Must not be called concurrently on one
 * pool. A NULL pool runs fn(ctx, 0, 1) on the caller. */
void tnd_thread_pool_run(tnd_thread_pool *pool, tnd_pool_fn fn, void *ctx);

/* Number of physical cores (falls back to logical CPUs), the default thread count. */
int tnd_physical_cores(void);

#endif
