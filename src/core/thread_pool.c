/* thread_pool.c: fork-join workers over claimed chunks. One 64-bit word holds the job's generation (high half)
 * and its chunks not yet claimed (low half); a thread claims a chunk by decrementing it with compare-and-swap,
 * which fails once the generation moved on, so a worker that wakes late never touches a finished job. The job's
 * fields are read only after a successful claim: the job cannot end while a claimed chunk is unfinished. Workers
 * spin briefly between jobs (a forward pass issues one every few microseconds), then sleep on a condition
 * variable, so an idle engine uses no CPU.
 *
 * A split job (tnd_thread_pool_for_split) has no chunks in that word, only a flag: each thread owns a share of
 * consecutive units in a word of its own (generation, front, back) and claims from its front; a thread whose share
 * is done takes units from the back of the share with the most left. */
#define _GNU_SOURCE /* SCHED_IDLE */
#include "core/thread_pool.h"

#include "core/alloc.h"
#include "core/error.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { TND_SPIN_ITERATIONS = 20000, TND_MAX_CHUNKS = 1 << 30, TND_MAX_UNITS = 0xffff };

/* The low half of the claim word of a split job, which no count of chunks reaches. */
#define TND_SPLIT_JOB ((uint64_t)1 << 31)

/* A thread's share of a split job: generation << 32 | front << 16 | back, the units [front, back) left to claim.
 * One cache line each: its owner claims from it, other threads only once their own shares are done. */
typedef struct share {
    _Alignas(64) _Atomic uint64_t word;
} share;

typedef struct worker_arg {
    struct tnd_thread_pool *pool;
    int index;
} worker_arg;

struct tnd_thread_pool {
    int n_threads;
    pthread_t *threads;
    worker_arg *args; /* [n_threads]: what each worker is started with */
    share *shares;    /* [n_threads]: each thread's units of a split job, in shares_block aligned */
    void *shares_block;
    tnd_allocator allocator;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    _Atomic uint64_t claim;  /* generation << 32 | chunks left to claim */
    atomic_llong done;       /* chunks finished in the current job */
    atomic_int sleepers;     /* workers waiting on `wake` */
    atomic_bool stop;
    atomic_bool solo;        /* jobs run on the caller alone (tnd_thread_pool_set_solo) */
    /* the current job, written before its generation is published */
    tnd_pool_fn by_thread;   /* set: chunk i runs by_thread(ctx, i, n_chunks) */
    tnd_pool_range_fn range; /* otherwise chunk i runs range(ctx, i * grain, min(n, (i + 1) * grain)) */
    tnd_pool_worker_fn range_worker; /* or range_worker(ctx, the thread's index, the same range) */
    void *ctx;
    int64_t n, grain, n_chunks;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static uint32_t generation_of(uint64_t claim) { return (uint32_t)(claim >> 32); }

/* Runs chunks [first, end) of the current job (claimed) as thread `worker`: their ranges as one. */
static void run_chunks(tnd_thread_pool *pool, int64_t first, int64_t end, int worker) {
    if (pool->by_thread) {
        for (int64_t i = first; i < end; i++) pool->by_thread(pool->ctx, (int)i, (int)pool->n_chunks);
        return;
    }
    int64_t begin = first * pool->grain, stop = end * pool->grain < pool->n ? end * pool->grain : pool->n;
    if (pool->range_worker)
        pool->range_worker(pool->ctx, worker, begin, stop);
    else
        pool->range(pool->ctx, begin, stop);
}

static uint32_t share_front(uint64_t w) { return (uint32_t)(w >> 16) & 0xffff; }
static uint32_t share_back(uint64_t w) { return (uint32_t)w & 0xffff; }

/* Claims half the units left (rounded up) of generation `gen` in share s, from its front (its owner) or its back
 * (another thread), into [*first, return value); 0 when the share is empty or of another job. Halves: a claim is a
 * locked instruction that waits for the thread's memory traffic, so a share goes in a few claims, the last ones
 * single units, which end the threads together. */
static int64_t claim_units(share *s, uint32_t gen, bool front, int64_t *first) {
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    while (generation_of(w) == gen && share_front(w) < share_back(w)) {
        uint64_t take = (share_back(w) - share_front(w) + 1) / 2;
        uint64_t next = front ? w + (take << 16) : w - take;
        if (atomic_compare_exchange_weak_explicit(&s->word, &w, next, memory_order_acq_rel, memory_order_acquire)) {
            *first = front ? share_front(w) : share_back(w) - (int64_t)take;
            return *first + (int64_t)take;
        }
    }
    return 0;
}

/* Runs units of split job `gen`: the thread's own share front to back, then the back units of the fullest share.
 * The units run are counted done once, at the end: a count per claim made the threads fight over its cache line. */
static void work_split(tnd_thread_pool *pool, uint32_t gen, int worker) {
    int64_t ran = 0, first, end;
    while ((end = claim_units(&pool->shares[worker], gen, true, &first)) > 0) {
        run_chunks(pool, first, end, worker);
        ran += end - first;
    }
    for (;;) {
        int fullest = -1;
        uint32_t most = 0;
        for (int i = 0; i < pool->n_threads; i++) {
            uint64_t w = atomic_load_explicit(&pool->shares[i].word, memory_order_relaxed);
            uint32_t left = share_back(w) > share_front(w) ? share_back(w) - share_front(w) : 0;
            if (generation_of(w) == gen && left > most) {
                most = left;
                fullest = i;
            }
        }
        if (fullest < 0) break;
        if ((end = claim_units(&pool->shares[fullest], gen, false, &first)) > 0) {
            run_chunks(pool, first, end, worker);
            ran += end - first;
        }
    }
    if (ran) atomic_fetch_add_explicit(&pool->done, ran, memory_order_acq_rel);
}

/* Claims and runs chunks of generation `gen` until none are left, as thread `worker`. */
static void work(tnd_thread_pool *pool, uint32_t gen, int worker) {
    uint64_t c = atomic_load_explicit(&pool->claim, memory_order_acquire);
    if (generation_of(c) == gen && (c & TND_SPLIT_JOB)) {
        work_split(pool, gen, worker);
        return;
    }
    for (;;) {
        if (generation_of(c) != gen || (uint32_t)c == 0) return;
        if (!atomic_compare_exchange_weak_explicit(&pool->claim, &c, c - 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        int64_t chunk = pool->n_chunks - (int64_t)(uint32_t)c;
        run_chunks(pool, chunk, chunk + 1, worker);
        atomic_fetch_add_explicit(&pool->done, 1, memory_order_acq_rel);
        c = atomic_load_explicit(&pool->claim, memory_order_acquire);
    }
}

static void *worker_main(void *p) {
    const worker_arg *arg = p;
    tnd_thread_pool *pool = arg->pool;
    uint32_t seen = 0;
    for (;;) {
        uint32_t gen = generation_of(atomic_load_explicit(&pool->claim, memory_order_acquire));
        for (int i = 0; gen == seen && i < TND_SPIN_ITERATIONS && !atomic_load(&pool->stop); i++) {
            cpu_relax();
            gen = generation_of(atomic_load_explicit(&pool->claim, memory_order_acquire));
        }
        if (gen == seen) {
            pthread_mutex_lock(&pool->mutex);
            atomic_fetch_add(&pool->sleepers, 1); /* seq_cst: pairs with the caller's store, then load of sleepers */
            while ((gen = generation_of(atomic_load(&pool->claim))) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop)) break;
        seen = gen;
        work(pool, gen, arg->index);
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
    memset(pool, 0, sizeof *pool);
    pool->allocator = a;
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->threads = tnd_alloc(&a, (size_t)n_threads * sizeof(pthread_t));
    pool->args = tnd_alloc(&a, (size_t)n_threads * sizeof(worker_arg));
    pool->shares_block = tnd_alloc(&a, (size_t)(n_threads + 1) * sizeof(share)); /* a user allocator may not align */
    if (pool->shares_block)
        pool->shares = (share *)(((uintptr_t)pool->shares_block + sizeof(share) - 1) & ~(uintptr_t)(sizeof(share) - 1));
    if (!pool->threads || !pool->args || !pool->shares_block) {
        pool->n_threads = 1; /* no worker started: none to join */
        tnd_thread_pool_free(pool);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 1; i < n_threads; i++) {
        pool->args[i] = (worker_arg){pool, i};
        if (pthread_create(&pool->threads[i], NULL, worker_main, &pool->args[i]) != 0) {
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
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
        for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->threads[i], NULL);
    }
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    tnd_allocator a = pool->allocator;
    tnd_free(&a, pool->threads);
    tnd_free(&a, pool->args);
    tnd_free(&a, pool->shares_block);
    tnd_free(&a, pool);
}

int tnd_thread_pool_size(const tnd_thread_pool *pool) {
    return pool && !atomic_load_explicit(&pool->solo, memory_order_relaxed) ? pool->n_threads : 1;
}

void tnd_thread_pool_set_solo(tnd_thread_pool *pool, bool solo) {
    if (pool) atomic_store(&pool->solo, solo);
}

/* Publishes the job set up in the pool's fields, works on it, and waits for the chunks others claimed. A split
 * job's units are dealt to the threads' shares first, in the new generation, so that a claim of the old one fails. */
static void run_job(tnd_thread_pool *pool, bool split) {
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    uint32_t gen = generation_of(atomic_load_explicit(&pool->claim, memory_order_relaxed)) + 1;
    for (int i = 0; split && i < pool->n_threads; i++) {
        uint64_t front = (uint64_t)(pool->n_chunks * i / pool->n_threads);
        uint64_t back = (uint64_t)(pool->n_chunks * (i + 1) / pool->n_threads);
        atomic_store_explicit(&pool->shares[i].word, (uint64_t)gen << 32 | front << 16 | back, memory_order_release);
    }
    uint64_t low = split ? TND_SPLIT_JOB : (uint64_t)pool->n_chunks;
    atomic_store(&pool->claim, (uint64_t)gen << 32 | low); /* seq_cst, see worker_main */
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    work(pool, gen, 0);
    /* spin briefly, then yield: a worker that lost its core mid-chunk finishes sooner if we let it run */
    for (int spins = 0; atomic_load_explicit(&pool->done, memory_order_acquire) < pool->n_chunks; spins++) {
        if (spins < TND_SPIN_ITERATIONS) cpu_relax();
        else sched_yield();
    }
}

void tnd_thread_pool_run(tnd_thread_pool *pool, tnd_pool_fn fn, void *ctx) {
    if (tnd_thread_pool_size(pool) == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool->by_thread = fn;
    pool->range = NULL;
    pool->range_worker = NULL;
    pool->ctx = ctx;
    pool->n_chunks = pool->n_threads;
    run_job(pool, false);
}

/* Publishes a job of ranges (fn or worker_fn set), split into shares or claimed one by one, and runs it. */
static void run_ranges(tnd_thread_pool *pool, int64_t n, int64_t grain, tnd_pool_range_fn fn,
                       tnd_pool_worker_fn worker_fn, void *ctx, bool split) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (tnd_thread_pool_size(pool) == 1 || grain >= n) {
        if (worker_fn)
            worker_fn(ctx, 0, 0, n);
        else
            fn(ctx, 0, n);
        return;
    }
    int64_t most = split ? TND_MAX_UNITS : TND_MAX_CHUNKS;
    if ((n + grain - 1) / grain > most) grain = (n + most - 1) / most;
    pool->by_thread = NULL;
    pool->range = fn;
    pool->range_worker = worker_fn;
    pool->ctx = ctx;
    pool->n = n;
    pool->grain = grain;
    pool->n_chunks = (n + grain - 1) / grain;
    run_job(pool, split);
}

void tnd_thread_pool_for(tnd_thread_pool *pool, int64_t n, int64_t grain, tnd_pool_range_fn fn, void *ctx) {
    run_ranges(pool, n, grain, fn, NULL, ctx, false);
}

void tnd_thread_pool_for_worker(tnd_thread_pool *pool, int64_t n, int64_t grain, tnd_pool_worker_fn fn, void *ctx) {
    run_ranges(pool, n, grain, NULL, fn, ctx, false);
}

void tnd_thread_pool_for_split(tnd_thread_pool *pool, int64_t n, int64_t unit, tnd_pool_range_fn fn, void *ctx) {
    run_ranges(pool, n, unit, fn, NULL, ctx, true);
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

void tnd_thread_lowest_priority(void) {
#ifdef SCHED_IDLE
    struct sched_param none = {0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &none);
#endif
}
