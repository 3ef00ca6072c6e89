/* test_thread_pool.c: the fork-join pool: every range and thread index is run exactly once, jobs follow each other
 * without mixing (thousands in a row, as a forward pass issues them, split and claimed ones in turn), a pool whose
 * worker is asleep still finishes, a split job's units are taken over from a slow thread, and a NULL, 1-thread or
 * solo pool runs everything on the caller. */
#include "harness.h"

#include "core/thread_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

enum { MAX_ITEMS = 10000 };

typedef struct cover_job {
    atomic_int hits[MAX_ITEMS];
    atomic_int calls;
    int64_t grain;
    atomic_int bad_range; /* a range longer than the grain, empty, or out of bounds */
    int64_t n;
} cover_job;

static void cover(void *ctx, int64_t begin, int64_t end) {
    cover_job *j = ctx;
    atomic_fetch_add(&j->calls, 1);
    if (begin < 0 || end > j->n || begin >= end || end - begin > j->grain) atomic_fetch_add(&j->bad_range, 1);
    for (int64_t i = begin; i < end && i >= 0 && i < j->n; i++) atomic_fetch_add(&j->hits[i], 1);
}

/* Runs one `for` job and checks every item was covered exactly once, in ranges of at most `grain` items. */
static void check_cover(tnd_thread_pool *pool, int64_t n, int64_t grain) {
    cover_job *j = calloc(1, sizeof *j);
    j->n = n;
    j->grain = grain < 1 ? 1 : grain;
    if (!pool || tnd_thread_pool_size(pool) == 1 || grain >= n) j->grain = n; /* one call covers all */
    tnd_thread_pool_for(pool, n, grain, cover, j);
    int wrong = 0;
    for (int64_t i = 0; i < n; i++) wrong += atomic_load(&j->hits[i]) != 1;
    CHECK(wrong == 0);
    CHECK(atomic_load(&j->bad_range) == 0);
    int64_t g = j->grain, want_calls = n > 0 ? (n + g - 1) / g : 0;
    CHECK(atomic_load(&j->calls) == want_calls);
    free(j);
}

typedef struct split_job {
    atomic_int hits[MAX_ITEMS];
    atomic_int bad_range; /* not whole units, empty, or out of bounds */
    int64_t n, unit;
    pthread_t slow;       /* this thread takes slow_us per item */
    int slow_us;
    atomic_int by_other[MAX_ITEMS]; /* items run on a thread other than `slow` */
} split_job;

static void split_range(void *ctx, int64_t begin, int64_t end) {
    split_job *j = ctx;
    if (begin < 0 || end > j->n || begin >= end || begin % j->unit || (end % j->unit && end != j->n))
        atomic_fetch_add(&j->bad_range, 1);
    bool slow = j->slow_us && pthread_equal(pthread_self(), j->slow);
    for (int64_t i = begin; i < end && i >= 0 && i < j->n; i++) {
        atomic_fetch_add(&j->hits[i], 1);
        if (!pthread_equal(pthread_self(), j->slow)) atomic_fetch_add(&j->by_other[i], 1);
        if (slow) usleep((useconds_t)j->slow_us);
    }
}

/* Runs one split job and checks every item was covered exactly once, in ranges of whole units. */
static split_job *check_split(tnd_thread_pool *pool, int64_t n, int64_t unit, int slow_us) {
    split_job *j = calloc(1, sizeof *j);
    *j = (split_job){.n = n, .unit = unit < 1 ? 1 : unit, .slow = pthread_self(), .slow_us = slow_us};
    tnd_thread_pool_for_split(pool, n, unit, split_range, j);
    int wrong = 0;
    for (int64_t i = 0; i < n; i++) wrong += atomic_load(&j->hits[i]) != 1;
    CHECK(wrong == 0);
    CHECK(atomic_load(&j->bad_range) == 0);
    return j;
}

typedef struct thread_job {
    atomic_int seen[64];
    atomic_int bad_nth;
    int nth;
} thread_job;

static void by_thread(void *ctx, int ith, int nth) {
    thread_job *j = ctx;
    if (nth != j->nth || ith < 0 || ith >= nth) atomic_fetch_add(&j->bad_nth, 1);
    else atomic_fetch_add(&j->seen[ith], 1);
}

/* Sums i over [0, n): many short jobs back to back must each see exactly their own items. */
typedef struct sum_job {
    atomic_llong sum;
} sum_job;

static void add_range(void *ctx, int64_t begin, int64_t end) {
    sum_job *j = ctx;
    long long s = 0;
    for (int64_t i = begin; i < end; i++) s += i;
    atomic_fetch_add(&j->sum, s);
}

/* tnd_thread_pool_for_worker: every item once, a worker index in [0, size), and no index in use by two ranges at
 * the same time (per-thread scratch rests on it). */
typedef struct worker_job {
    atomic_int hits[MAX_ITEMS];
    atomic_int busy[64];
    atomic_int bad; /* an index out of range, or one already in use */
    int threads;
} worker_job;

static void worker_range(void *ctx, int worker, int64_t begin, int64_t end) {
    worker_job *j = ctx;
    if (worker < 0 || worker >= j->threads) {
        atomic_fetch_add(&j->bad, 1);
        return;
    }
    int idle = 0;
    if (!atomic_compare_exchange_strong(&j->busy[worker], &idle, 1)) atomic_fetch_add(&j->bad, 1);
    for (int64_t i = begin; i < end; i++) atomic_fetch_add(&j->hits[i], 1);
    atomic_store(&j->busy[worker], 0);
}

static void check_workers(tnd_thread_pool *pool, int threads) {
    worker_job *j = calloc(1, sizeof *j);
    j->threads = threads;
    for (int rep = 0; rep < 200; rep++) tnd_thread_pool_for_worker(pool, MAX_ITEMS, 1 + rep % 50, worker_range, j);
    int wrong = 0;
    for (int i = 0; i < MAX_ITEMS; i++) wrong += atomic_load(&j->hits[i]) != 200;
    CHECK(wrong == 0 && atomic_load(&j->bad) == 0);
    free(j);
}

/* Counts the ranges run on a thread other than the one that made the job. */
typedef struct caller_job {
    pthread_t caller;
    atomic_int elsewhere, calls;
} caller_job;

static void on_caller(void *ctx, int64_t begin, int64_t end) {
    caller_job *j = ctx;
    (void)begin;
    (void)end;
    atomic_fetch_add(&j->calls, 1);
    if (!pthread_equal(pthread_self(), j->caller)) atomic_fetch_add(&j->elsewhere, 1);
}

/* A solo pool runs its jobs on the caller alone, with a size of 1, and all its threads again after. */
static void check_solo(tnd_thread_pool *pool, int threads) {
    tnd_thread_pool_set_solo(pool, true);
    CHECK(tnd_thread_pool_size(pool) == 1);
    caller_job cj = {.caller = pthread_self()};
    for (int rep = 0; rep < 100; rep++) tnd_thread_pool_for(pool, 1000, 7, on_caller, &cj);
    CHECK(atomic_load(&cj.elsewhere) == 0 && atomic_load(&cj.calls) > 0);
    thread_job *tj = calloc(1, sizeof *tj);
    tj->nth = 1;
    tnd_thread_pool_run(pool, by_thread, tj);
    CHECK(atomic_load(&tj->seen[0]) == 1 && atomic_load(&tj->bad_nth) == 0);
    free(tj);
    check_workers(pool, 1);
    tnd_thread_pool_set_solo(pool, false);
    CHECK(tnd_thread_pool_size(pool) == threads);
    check_cover(pool, MAX_ITEMS, 10);
}

int main(void) {
    /* the caller alone */
    check_cover(NULL, 1000, 7);
    check_cover(NULL, 0, 1);

    for (int threads = 1; threads <= 4; threads++) {
        tnd_thread_pool *pool = NULL;
        CHECK_OK(tnd_thread_pool_init(threads, NULL, &pool));
        CHECK(tnd_thread_pool_size(pool) == threads);
        int64_t sizes[] = {1, 2, 3, 17, 256, 1000, MAX_ITEMS}, grains[] = {1, 3, 16, 999, 100000};
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
            for (size_t g = 0; g < sizeof grains / sizeof *grains; g++) check_cover(pool, sizes[s], grains[g]);
        check_cover(pool, 0, 4); /* nothing to do: no call */
        check_workers(pool, threads);
        check_solo(pool, threads);

        thread_job *tj = calloc(1, sizeof *tj);
        tj->nth = threads;
        tnd_thread_pool_run(pool, by_thread, tj);
        int once = 0;
        for (int i = 0; i < threads; i++) once += atomic_load(&tj->seen[i]) == 1;
        CHECK(once == threads);
        CHECK(atomic_load(&tj->bad_nth) == 0);
        free(tj);

        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
            for (size_t g = 0; g < sizeof grains / sizeof *grains; g++) free(check_split(pool, sizes[s], grains[g], 0));
        free(check_split(pool, 100, 0, 0)); /* unit 0 means 1 */
        sum_job many = {0}; /* more units than a share's word counts: they grow */
        tnd_thread_pool_for_split(pool, 200000, 1, add_range, &many);
        CHECK(atomic_load(&many.sum) == 200000LL * 199999 / 2);
        if (threads > 1) { /* the caller is slow on its share: the others take units from its back */
            split_job *j = check_split(pool, 400, 1, 100);
            int taken = 0;
            for (int i = 0; i < 400 / threads; i++) taken += atomic_load(&j->by_other[i]);
            CHECK(taken > 0);
            free(j);
        }

        /* 20000 back-to-back jobs of varying size, as a forward pass issues them, split or not in turn */
        int wrong = 0;
        for (int rep = 0; rep < 20000; rep++) {
            sum_job sj = {0};
            int64_t n = 1 + rep % 97;
            if (rep % 3 == 0)
                tnd_thread_pool_for_split(pool, n, 1 + rep % 5, add_range, &sj);
            else
                tnd_thread_pool_for(pool, n, 1 + rep % 5, add_range, &sj);
            wrong += atomic_load(&sj.sum) != (long long)n * (n - 1) / 2;
        }
        CHECK(wrong == 0);

        /* after the workers fell asleep (past their spin), a job still completes and wakes them */
        usleep(50 * 1000);
        check_cover(pool, MAX_ITEMS, 10);
        tnd_thread_pool_free(pool);
    }
    CHECK(tnd_physical_cores() >= 1);
    return tnd_test_finish("test_thread_pool");
}
