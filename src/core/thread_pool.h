/* thread_pool.h: a persistent pool of worker threads that run one parallel job at a time (fork-join). A job is a
 * set of chunks that every thread, the caller included, claims one at a time from a shared counter: a worker that
 * lost its core to another process delays only the chunk it holds, and the caller finishes the rest alone. */
#ifndef TND_CORE_THREAD_POOL_H
#define TND_CORE_THREAD_POOL_H

#include "tandem.h"

#include <stdbool.h>

/* A job split by thread index: called for every ith in [0, nth), each index exactly once, on any thread. */
typedef void (*tnd_pool_fn)(void *ctx, int ith, int nth);

/* A job split into ranges: called on disjoint [begin, end) that together cover [0, n). */
typedef void (*tnd_pool_range_fn)(void *ctx, int64_t begin, int64_t end);

/* The same with the index of the thread running it, in [0, the pool's size): scratch memory per thread. */
typedef void (*tnd_pool_worker_fn)(void *ctx, int worker, int64_t begin, int64_t end);

typedef struct tnd_thread_pool tnd_thread_pool;

/* Starts n_threads - 1 workers (the caller is thread 0). n_threads < 1 means 1. */
tnd_status tnd_thread_pool_init(int n_threads, const tnd_allocator *allocator, tnd_thread_pool **out);
void tnd_thread_pool_free(tnd_thread_pool *pool);
/* The threads a job runs on: the workers and the caller, or 1 while the pool is solo. */
int tnd_thread_pool_size(const tnd_thread_pool *pool);

/* solo: jobs run on the caller alone and the workers rest (asleep after their brief spin), so that a caller of low
 * scheduling priority takes only spare CPU time. Not while a job runs. */
void tnd_thread_pool_set_solo(tnd_thread_pool *pool, bool solo);

/* Runs fn(ctx, ith, nth) for ith in [0, nth), nth = the pool's size, and returns when all are done. Must not be
 * called concurrently on one pool. A NULL pool runs fn(ctx, 0, 1) on the caller. */
void tnd_thread_pool_run(tnd_thread_pool *pool, tnd_pool_fn fn, void *ctx);

/* Runs fn over [0, n) in ranges of `grain` items (the last may be shorter) and returns when all are done. A NULL
 * pool runs fn(ctx, 0, n) on the caller. */
void tnd_thread_pool_for(tnd_thread_pool *pool, int64_t n, int64_t grain, tnd_pool_range_fn fn, void *ctx);

/* tnd_thread_pool_for with the running thread's index passed to fn (the caller is 0). */
void tnd_thread_pool_for_worker(tnd_thread_pool *pool, int64_t n, int64_t grain, tnd_pool_worker_fn fn, void *ctx);

/* Runs fn over [0, n) in ranges of `unit` items, as tnd_thread_pool_for, but each thread first takes a share of
 * consecutive units (the i-th T-th), front to back, and a thread done with its share takes units from the back of
 * the share with the most left. Every thread then reads one long run of memory instead of a chunk here and there,
 * and the threads still end together within a unit. For streams of weights. */
void tnd_thread_pool_for_split(tnd_thread_pool *pool, int64_t n, int64_t unit, tnd_pool_range_fn fn, void *ctx);

/* Gives the calling thread the lowest scheduling priority there is (SCHED_IDLE where the system has it): it then
 * runs only on a core nothing else wants, as while a device waits for its cloud. */
void tnd_thread_lowest_priority(void);

/* Number of physical cores (falls back to logical CPUs), the default thread count. */
int tnd_physical_cores(void);

#endif
