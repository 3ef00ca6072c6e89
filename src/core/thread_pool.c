/* thread_pool.c: fork-join workers. Jobs are published with a generation counter; workers spin briefly on it (jobs
 * in a forward pass come every few microseconds) and then sleep on a condition variable, so an idle engine uses
 * no CPU. Completion is an atomic countdown the caller spins on. */
#include "core/thread_pool.h"

#include "core/alloc.h"
#include "core/error.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { TND_SPIN_ITERATIONS = 20000 };

struct tnd_thread_pool {
    int n_threads;
    pthread_t *threads;
    tnd_allocator allocator;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    atomic_uint generation;  /* bumped once per job */
    atomic_int pending;      /* workers still running the current job */
    atomic_bool stop;
    tnd_pool_fn fn;          /* the current job (written before generation is bumped) */
    void *ctx;
};

typedef struct worker_arg {
    tnd_thread_pool *pool;
    int ith;
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker_main(void *p) {
    worker_arg arg = *(worker_arg *)p;
    tnd_thread_pool *pool = arg.pool;
    unsigned seen = 0;
    for (;;) {
        unsigned gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        for (int i = 0; gen == seen && i < TND_SPIN_ITERATIONS; i++) {
            cpu_relax();
            gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        }
        if (gen == seen) {
            pthread_mutex_lock(&pool->mutex);
            while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
                   !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop)) break;
        seen = gen;
        pool->fn(pool->ctx, arg.ith, pool->n_threads);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel);
    }
    return NULL;
}

tnd_status tnd_thread_pool_init(int n_threads, const tnd_allocator *allocator, tnd_thread_pool **out) {
    *out = NULL;
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 1024) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "thread count %d is too large", n_threads);
    tnd_allocator a = allocator ? *allocator : (tnd_allocator){0};
    tnd_thread_pool *pool = tnd_alloc(&a, sizeof *pool);
    if (!pool) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory");
    pool->allocator = a;
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    /* the worker arguments live right after the thread handles */
    pool->threads = tnd_alloc(&a, (size_t)n_threads * (sizeof(pthread_t) + sizeof(worker_arg)));
    if (!pool->threads) {
        tnd_thread_pool_free(pool);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory");
    }
    worker_arg *args = (worker_arg *)(pool->threads + n_threads);
    for (int i = 1; i < n_threads; i++) {
        args[i] = (worker_arg){pool, i};
        if (pthread_create(&pool->threads[i], NULL, worker_main, &args[i]) != 0) {
            pool->n_threads = i; /* join the ones that started */
            tnd_thread_pool_free(pool);
            return tnd_fail(TND_ERR_INTERNAL, "cannot start worker thread %d", i);
        }
    }
    *out = pool;
    return TND_OK;
}

void tnd_thread_pool_free(tnd_thread_pool *pool) {
    if (!pool) return;
    if (pool->threads) {
        pthread_mutex_lock(&pool->mutex);
        atomic_store(&pool->stop, true);
        atomic_fetch_add(&pool->generation, 1);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
        for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->threads[i], NULL);
    }
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    tnd_allocator a = pool->allocator;
    tnd_free(&a, pool->threads);
    tnd_free(&a, pool);
}

int tnd_thread_pool_size(const tnd_thread_pool *pool) { return pool ? pool->n_threads : 1; }

void tnd_thread_pool_run(tnd_thread_pool *pool, tnd_pool_fn fn, void *ctx) {
    if (!pool || pool->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store_explicit(&pool->pending, pool->n_threads - 1, memory_order_release);
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_acq_rel);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    fn(ctx, 0, pool->n_threads);
    /* spin briefly, then yield: a worker that lost its core to another process finishes sooner if we let it run */
    for (int spins = 0; atomic_load_explicit(&pool->pending, memory_order_acquire) > 0; spins++) {
        if (spins < TND_SPIN_ITERATIONS) cpu_relax();
        else sched_yield();
    }
}

/* Counts distinct (physical id, core id) pairs in /proc/cpuinfo; falls back to the online CPU count. */
int tnd_physical_cores(void) {
    long logical = sysconf(_SC_NPROCESSORS_ONLN);
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return logical > 0 ? (int)logical : 1;
    char line[256];
    int phys = -1, pairs = 0;
    int seen[1024][2];
    while (fgets(line, sizeof line, f)) {
        int v;
        if (sscanf(line, "physical id : %d", &v) == 1) phys = v;
        else if (sscanf(line, "core id : %d", &v) == 1) {
            bool dup = false;
            for (int i = 0; i < pairs; i++) dup |= seen[i][0] == phys && seen[i][1] == v;
            if (!dup && pairs < 1024) {
                seen[pairs][0] = phys;
                seen[pairs][1] = v;
                pairs++;
            }
        }
    }
    fclose(f);
    if (pairs > 0) return pairs;
    return logical > 0 ? (int)logical : 1;
}
