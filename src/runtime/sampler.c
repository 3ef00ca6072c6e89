/* sampler.c: token sampling from logits (penalties, bias, top-k, temperature, min-p, top-p, seeded draw) and
 * log-probabilities for the caller's logprobs. */
#include "core/alloc.h"
#include "core/error.h"
#include "runtime/sampler_state.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One entry of the candidate list: a token, its logit after penalties and bias, and its unnormalized probability
 * exp((logit - max) / temperature) once the temperature stage ran. */
typedef struct tnd_candidate {
    int32_t id;
    float logit;
    float p;
} tnd_candidate;

struct tnd_sampler {
    tnd_sampler_params params;   /* copy; params.logit_bias points at `bias` */
    tnd_allocator allocator;
    int32_t n_vocab;
    tnd_logit_bias *bias;        /* [params.n_logit_bias], owned */
    float *work;                 /* [n_vocab]: the logits after cleaning, penalties and bias */
    tnd_candidate *cand;         /* [n_vocab]; after a sample, [0, n_kept) is the final distribution */
    int32_t n_kept;              /* 0 before the first successful sample */
    double kept_total;           /* sum of p over [0, n_kept) */
    /* penalty history: occurrence counts in the window and the list of tokens with a count above zero */
    int32_t *counts;             /* [n_vocab] */
    int32_t *distinct;           /* [n_vocab]: tokens with counts > 0, in no particular order */
    int32_t *distinct_pos;       /* [n_vocab]: index of a token in `distinct` (valid while its count > 0) */
    int32_t n_distinct;
    int32_t *ring;               /* [penalty_last_n] when it is > 0: the window, oldest at ring_head */
    int32_t ring_head, ring_len;
    uint64_t seed;               /* the seed in use */
    uint64_t rng[4];             /* xoshiro256** state */
};

/* ---------------------------------------------------------------------------------------------------------------
 * Random numbers: xoshiro256** seeded through splitmix64 (Blackman and Vigna)
 * ------------------------------------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(uint64_t rng[4], uint64_t seed) {
    uint64_t s = seed;
    for (int i = 0; i < 4; i++) rng[i] = splitmix64(&s); /* never all zero: splitmix64 is a bijection of a counter */
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t rng[4]) {
    uint64_t result = rotl64(rng[1] * 5, 7) * 9;
    uint64_t t = rng[1] << 17;
    rng[2] ^= rng[0];
    rng[3] ^= rng[1];
    rng[1] ^= rng[2];
    rng[0] ^= rng[3];
    rng[2] ^= t;
    rng[3] = rotl64(rng[3], 45);
    return result;
}

/* Uniform double in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t rng[4]) { return (double)(rng_next(rng) >> 11) * 0x1.0p-53; }

/* A seed from the clocks and the sampler's address, for TND_SAMPLER_SEED_RANDOM. */
static uint64_t clock_seed(const void *salt) {
    struct timespec wall = {0}, mono = {0};
    clock_gettime(CLOCK_REALTIME, &wall);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    uint64_t s = (uint64_t)wall.tv_sec * 1000000007ull ^ (uint64_t)wall.tv_nsec ^ (uint64_t)(uintptr_t)salt;
    s ^= splitmix64(&s) ^ ((uint64_t)mono.tv_nsec << 21) ^ (uint64_t)mono.tv_sec;
    uint64_t seed = splitmix64(&s);
    return seed == TND_SAMPLER_SEED_RANDOM ? 0 : seed;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Parameters
 * ------------------------------------------------------------------------------------------------------------- */

tnd_sampler_params tnd_sampler_default_params(void) {
    tnd_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.penalty_last_n = 64;
    p.repeat_penalty = 1.0f;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    p.seed = TND_SAMPLER_SEED_RANDOM;
    return p;
}

/* Checks every parameter; the message names the first bad one and its value. Comparisons are written so that
 * NaN fails them. */
static tnd_status check_params(const tnd_sampler_params *p, int32_t n_vocab) {
    if (n_vocab < 1) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "sampler: n_vocab %d must be positive", n_vocab);
    if (!(p->temperature >= 0.0f && isfinite(p->temperature)))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "sampler: temperature %g must be finite and >= 0",
                        (double)p->temperature);
    if (p->top_k < 0) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "sampler: top_k %d must be >= 0", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "sampler: top_p %g must be in (0, 1]", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "sampler: min_p %g must be in [0, 1]", (double)p->min_p);
    if (p->penalty_last_n < -1)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "sampler: penalty_last_n %d must be >= -1", p->penalty_last_n);
    if (!(p->repeat_penalty > 0.0f && isfinite(p->repeat_penalty)))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "sampler: repeat_penalty %g must be finite and > 0",
                        (double)p->repeat_penalty);
    if (!isfinite(p->presence_penalty))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "sampler: presence_penalty %g must be finite",
                        (double)p->presence_penalty);
    if (!isfinite(p->frequency_penalty))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "sampler: frequency_penalty %g must be finite",
                        (double)p->frequency_penalty);
    if (p->n_logit_bias < 0 || (p->n_logit_bias > 0 && !p->logit_bias))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "sampler: logit_bias is NULL or n_logit_bias %d is negative",
                        p->n_logit_bias);
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        const tnd_logit_bias *b = &p->logit_bias[i];
        if (b->token < 0 || b->token >= n_vocab)
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "sampler: logit_bias[%d].token %d is outside [0, %d)", i,
                            b->token, n_vocab);
        if (isnan(b->bias))
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "sampler: logit_bias[%d].bias is NaN", i);
    }
    return TND_OK;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Life cycle and history
 * ------------------------------------------------------------------------------------------------------------- */

tnd_status tnd_sampler_init(const tnd_sampler_params *params, int32_t n_vocab, tnd_sampler **out) {
    if (!out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_sampler_init: out is NULL");
    *out = NULL;
    if (!params) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_sampler_init: params is NULL");
    tnd_status st = check_params(params, n_vocab);
    if (st) return st;
    const tnd_allocator *a = &params->allocator;
    tnd_sampler *s = tnd_alloc(a, sizeof *s);
    if (!s) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "sampler: out of memory");
    s->params = *params;
    s->allocator = *a;
    s->n_vocab = n_vocab;
    size_t nv = (size_t)n_vocab;
    s->work = tnd_alloc_array(a, nv, sizeof *s->work);
    s->cand = tnd_alloc_array(a, nv, sizeof *s->cand);
    s->counts = tnd_alloc_array(a, nv, sizeof(int32_t));
    s->distinct = tnd_alloc_array(a, nv, sizeof(int32_t));
    s->distinct_pos = tnd_alloc_array(a, nv, sizeof(int32_t));
    bool ok = s->work && s->cand && s->counts && s->distinct && s->distinct_pos;
    if (ok && params->n_logit_bias > 0) {
        s->bias = tnd_alloc_array(a, (size_t)params->n_logit_bias, sizeof *s->bias);
        ok = s->bias != NULL;
        if (ok) memcpy(s->bias, params->logit_bias, sizeof *s->bias * (size_t)params->n_logit_bias);
    }
    s->params.logit_bias = s->bias;
    if (ok && params->penalty_last_n > 0) {
        s->ring = tnd_alloc_array(a, (size_t)params->penalty_last_n, sizeof(int32_t));
        ok = s->ring != NULL;
    }
    if (!ok) {
        tnd_sampler_free(s);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "sampler: out of memory for %d vocabulary entries", n_vocab);
    }
    s->seed = params->seed == TND_SAMPLER_SEED_RANDOM ? clock_seed(s) : params->seed;
    rng_seed(s->rng, s->seed);
    *out = s;
    return TND_OK;
}

void tnd_sampler_free(tnd_sampler *s) {
    if (!s) return;
    tnd_allocator a = s->allocator;
    tnd_free(&a, s->work);
    tnd_free(&a, s->cand);
    tnd_free(&a, s->counts);
    tnd_free(&a, s->distinct);
    tnd_free(&a, s->distinct_pos);
    tnd_free(&a, s->bias);
    tnd_free(&a, s->ring);
    tnd_free(&a, s);
}

void tnd_sampler_reset(tnd_sampler *s) {
    if (!s) return;
    tnd_sampler_forget_history(s);
    s->n_kept = 0;
    rng_seed(s->rng, s->seed);
}

uint64_t tnd_sampler_seed(const tnd_sampler *s) { return s ? s->seed : 0; }

tnd_status tnd_sampler_clone(const tnd_sampler *src, tnd_sampler **out) {
    if (!out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_sampler_clone: out is NULL");
    *out = NULL;
    if (!src) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_sampler_clone: sampler is NULL");
    tnd_sampler *s = NULL;
    tnd_status st = tnd_sampler_init(&src->params, src->n_vocab, &s);
    if (st) return st;
    size_t nv = (size_t)src->n_vocab;
    memcpy(s->work, src->work, nv * sizeof *s->work);
    memcpy(s->cand, src->cand, nv * sizeof *s->cand);
    memcpy(s->counts, src->counts, nv * sizeof *s->counts);
    memcpy(s->distinct, src->distinct, nv * sizeof *s->distinct);
    memcpy(s->distinct_pos, src->distinct_pos, nv * sizeof *s->distinct_pos);
    if (src->ring) memcpy(s->ring, src->ring, (size_t)src->params.penalty_last_n * sizeof *s->ring);
    s->n_kept = src->n_kept;
    s->kept_total = src->kept_total;
    s->n_distinct = src->n_distinct;
    s->ring_head = src->ring_head;
    s->ring_len = src->ring_len;
    s->seed = src->seed;
    memcpy(s->rng, src->rng, sizeof s->rng);
    *out = s;
    return TND_OK;
}

void tnd_sampler_rng_save(const tnd_sampler *s, uint64_t state[4]) { memcpy(state, s->rng, sizeof s->rng); }

void tnd_sampler_rng_restore(tnd_sampler *s, const uint64_t state[4]) { memcpy(s->rng, state, sizeof s->rng); }

void tnd_sampler_forget_history(tnd_sampler *s) {
    for (int32_t i = 0; i < s->n_distinct; i++) s->counts[s->distinct[i]] = 0;
    s->n_distinct = 0;
    s->ring_head = s->ring_len = 0;
}

int32_t tnd_sampler_history_window(const tnd_sampler *s) { return s->params.penalty_last_n; }

static void count_add(tnd_sampler *s, int32_t token) {
    if (s->counts[token]++ == 0) {
        s->distinct_pos[token] = s->n_distinct;
        s->distinct[s->n_distinct++] = token;
    }
}

static void count_remove(tnd_sampler *s, int32_t token) {
    if (--s->counts[token] == 0) {
        int32_t at = s->distinct_pos[token], last = s->distinct[--s->n_distinct];
        s->distinct[at] = last;
        s->distinct_pos[last] = at;
    }
}

tnd_status tnd_sampler_accept(tnd_sampler *s, int32_t token) {
    if (!s) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_sampler_accept: sampler is NULL");
    if (token < 0 || token >= s->n_vocab)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_sampler_accept: token %d is outside [0, %d)", token,
                        s->n_vocab);
    int32_t window = s->params.penalty_last_n;
    if (window == 0) return TND_OK;
    if (window < 0) {
        if (s->counts[token] < INT32_MAX) count_add(s, token);
        return TND_OK;
    }
    if (s->ring_len == window) { /* full: the oldest token leaves the window, its slot takes the new one */
        count_remove(s, s->ring[s->ring_head]);
        s->ring[s->ring_head] = token;
        s->ring_head = (s->ring_head + 1) % window;
    } else {
        s->ring[(s->ring_head + s->ring_len) % window] = token;
        s->ring_len++;
    }
    count_add(s, token);
    return TND_OK;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Ranking and selection without sorting the vocabulary. Candidates rank by logit, larger first, ties to the lower
 * id: a total order, so which tokens a stage keeps never depends on the algorithm. Small top-k lists come from one
 * pass with a bounded heap; larger ones from quickselect (median-of-three pivot, branch-free partition loop),
 * which falls back to sorting the unresolved range after too many rounds so the worst case stays O(n log n).
 * ------------------------------------------------------------------------------------------------------------- */

static inline bool ranks_before(const tnd_candidate *a, const tnd_candidate *b) {
    return (a->logit > b->logit) | ((a->logit == b->logit) & (a->id < b->id));
}

/* The same order for the (token, log-probability) lists of the logprobs functions. */
static inline bool logprob_ranks_before(const tnd_token_logprob *a, const tnd_token_logprob *b) {
    return (a->logprob > b->logprob) | ((a->logprob == b->logprob) & (a->token < b->token));
}

static int compare_rank(const void *pa, const void *pb) {
    const tnd_candidate *a = pa, *b = pb;
    return ranks_before(a, b) ? -1 : ranks_before(b, a) ? 1 : 0;
}

/* Defines three functions over a bounded "best n" list kept as a heap whose root is the worst-ranked entry:
 *   prefix##_offer(heap, &n, cap, entry): adds entry while n < cap, else replaces the root if entry ranks before it;
 *   prefix##_finish(heap, n): turns the heap into a list ranked best first (heap sort).
 * `before(a, b)` says whether *a ranks before *b. */
#define TND_DEFINE_BEST_HEAP(prefix, type, before)                                                                  \
    static void prefix##_sift_down(type *heap, int32_t n, int32_t i) {                                              \
        for (;;) {                                                                                                  \
            int32_t worst = i, l = 2 * i + 1, r = l + 1;                                                            \
            if (l < n && before(&heap[worst], &heap[l])) worst = l;                                                 \
            if (r < n && before(&heap[worst], &heap[r])) worst = r;                                                 \
            if (worst == i) return;                                                                                 \
            type t = heap[i];                                                                                       \
            heap[i] = heap[worst];                                                                                  \
            heap[worst] = t;                                                                                        \
            i = worst;                                                                                              \
        }                                                                                                           \
    }                                                                                                               \
    static void prefix##_offer(type *heap, int32_t *n, int32_t cap, const type *entry) {                            \
        if (*n < cap) {                                                                                             \
            int32_t i = (*n)++;                                                                                     \
            heap[i] = *entry;                                                                                       \
            while (i > 0 && before(&heap[(i - 1) / 2], &heap[i])) { /* a worse entry moves toward the root */      \
                type t = heap[i];                                                                                   \
                heap[i] = heap[(i - 1) / 2];                                                                        \
                heap[(i - 1) / 2] = t;                                                                              \
                i = (i - 1) / 2;                                                                                    \
            }                                                                                                       \
        } else if (cap > 0 && before(entry, &heap[0])) {                                                            \
            heap[0] = *entry;                                                                                       \
            prefix##_sift_down(heap, *n, 0);                                                                        \
        }                                                                                                           \
    }                                                                                                               \
    static void prefix##_finish(type *heap, int32_t n) {                                                            \
        for (int32_t end = n - 1; end > 0; end--) {                                                                 \
            type t = heap[0];                                                                                       \
            heap[0] = heap[end];                                                                                    \
            heap[end] = t;                                                                                          \
            prefix##_sift_down(heap, end, 0);                                                                       \
        }                                                                                                           \
    }

TND_DEFINE_BEST_HEAP(cand_heap, tnd_candidate, ranks_before)
TND_DEFINE_BEST_HEAP(logprob_heap, tnd_token_logprob, logprob_ranks_before)

static inline void swap_cand(tnd_candidate *c, int32_t i, int32_t j) {
    tnd_candidate t = c[i];
    c[i] = c[j];
    c[j] = t;
}

/* Rearranges c[lo, hi) (at least one entry) around a pivot and returns its index mid: afterwards every entry of
 * c[lo, mid) ranks before c[mid] and every entry of c(mid, hi) after it. */
static int32_t partition(tnd_candidate *c, int32_t lo, int32_t hi) {
    int32_t mid = lo + (hi - lo) / 2, last = hi - 1;
    if (ranks_before(&c[mid], &c[lo])) swap_cand(c, mid, lo);
    if (ranks_before(&c[last], &c[lo])) swap_cand(c, last, lo);
    if (ranks_before(&c[last], &c[mid])) swap_cand(c, last, mid);
    swap_cand(c, mid, last); /* the median of the three becomes the pivot, parked at the end */
    const tnd_candidate pivot = c[last];
    int32_t store = lo;
    /* c[store, i) rank after the pivot; swapping unconditionally and advancing store only for entries that rank
     * before it keeps that true without a hard-to-predict branch */
    for (int32_t i = lo; i < last; i++) {
        tnd_candidate e = c[i];
        c[i] = c[store];
        c[store] = e;
        store += ranks_before(&e, &pivot);
    }
    swap_cand(c, store, last);
    return store;
}

/* Rounds of partitioning allowed before the fallback sort: about twice the expected number. */
static int32_t round_budget(int32_t n) {
    int32_t rounds = 16;
    while (n > 1) {
        n >>= 1;
        rounds += 2;
    }
    return rounds;
}

/* Moves the k best of c[0, n) (0 < k < n) to c[0, k), in no particular order. */
static void select_best(tnd_candidate *c, int32_t n, int32_t k) {
    int32_t lo = 0, hi = n, budget = round_budget(n);
    /* invariant: c[0, lo) rank before c[lo, hi), which rank before c[hi, n), and lo < k < hi */
    for (;;) {
        if (budget-- == 0) {
            qsort(c + lo, (size_t)(hi - lo), sizeof *c, compare_rank);
            return;
        }
        int32_t mid = partition(c, lo, hi);
        if (mid == k || mid + 1 == k) return;
        if (mid > k) hi = mid;
        else lo = mid + 1;
    }
}

/* Nucleus: rearranges c[0, n) so that c[0, cut) are the best candidates and returns the smallest cut whose
 * probability mass (sum of p) reaches `target`; n if none does (rounding when target is near the total). */
static int32_t select_nucleus(tnd_candidate *c, int32_t n, double target) {
    int32_t lo = 0, hi = n, budget = round_budget(n);
    double acc = 0.0; /* mass of c[0, lo), which is below target */
    while (lo < hi) {
        if (budget-- == 0) {
            qsort(c + lo, (size_t)(hi - lo), sizeof *c, compare_rank);
            for (int32_t i = lo; i < hi; i++) {
                acc += c[i].p;
                if (acc >= target) return i + 1;
            }
            return hi;
        }
        int32_t mid = partition(c, lo, hi);
        double upper = 0.0;
        for (int32_t i = lo; i < mid; i++) upper += c[i].p;
        if (acc + upper >= target) {
            hi = mid; /* the cut lies inside c[lo, mid) */
        } else if (acc + upper + c[mid].p >= target) {
            return mid + 1;
        } else {
            acc += upper + c[mid].p;
            lo = mid + 1;
        }
    }
    return lo;
}

/* Keeps the candidates of c[0, n) with p >= threshold, in order; returns their count and their mass in *mass. */
static int32_t keep_at_least(tnd_candidate *c, int32_t n, float threshold, double *mass) {
    int32_t kept = 0;
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        c[kept] = c[i];
        sum += c[i].p >= threshold ? c[i].p : 0.0f;
        kept += c[i].p >= threshold;
    }
    *mass = sum;
    return kept;
}

/* Top-p over c[0, n) with total mass `total`: moves the nucleus to the front and returns its size.
 * Before selecting, it drops every candidate with p < t = (total - target) / n: together they weigh less than
 * total - target, and any suffix of the ranking that light lies outside the nucleus (the nucleus is the smallest
 * prefix reaching target), so this never changes the result; for the peaked distributions of language models it
 * leaves only a few hundred candidates to select from. */
static int32_t top_p_filter(tnd_candidate *c, int32_t n, double total, float top_p) {
    double target = (double)top_p * total, ignored = 0.0;
    float threshold = (float)((total - target) / (double)n);
    /* rounding down keeps the threshold at or below the exact one */
    if ((double)threshold > (total - target) / (double)n) threshold = nextafterf(threshold, 0.0f);
    int32_t m = keep_at_least(c, n, threshold, &ignored);
    return select_nucleus(c, m, target);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Sampling
 * ------------------------------------------------------------------------------------------------------------- */

/* NaN (or -inf + +inf) counts as -inf; +inf counts as the largest float, so that differences stay defined. */
static inline float clean_logit(float v) {
    if (isnan(v)) return -INFINITY;
    if (v == INFINITY) return FLT_MAX;
    return v;
}

/* Stages 1 to 3 into s->work. */
static void load_logits(tnd_sampler *s, const float *logits) {
    float *w = s->work;
    for (int32_t i = 0; i < s->n_vocab; i++) w[i] = clean_logit(logits[i]);
    const tnd_sampler_params *p = &s->params;
    bool penalize = p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f;
    for (int32_t i = 0; penalize && i < s->n_distinct; i++) {
        int32_t t = s->distinct[i];
        float l = w[t];
        if (p->repeat_penalty != 1.0f) l = l > 0.0f ? l / p->repeat_penalty : l * p->repeat_penalty;
        l -= p->presence_penalty + p->frequency_penalty * (float)s->counts[t];
        w[t] = clean_logit(l);
    }
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        float *l = &w[s->bias[i].token];
        *l = clean_logit(*l + s->bias[i].bias);
    }
}

/* Fills s->cand with the tokens that can be drawn (logit above -inf), the k best of them when 0 < k, and returns
 * their count (0 when none can be drawn). The index of the best goes to *best. */
static int32_t gather_candidates(tnd_sampler *s, int32_t k, int32_t *best) {
    const float *w = s->work;
    tnd_candidate *c = s->cand;
    int32_t n = 0;
    if (k > 0 && (int64_t)k * 8 <= s->n_vocab) { /* small k: one pass with a heap of k entries */
        for (int32_t i = 0; i < s->n_vocab; i++) {
            tnd_candidate e = {i, w[i], 0.0f};
            /* the test against the heap's worst entry rejects most tokens without touching the heap */
            if (w[i] != -INFINITY && (n < k || ranks_before(&e, &c[0]))) cand_heap_offer(c, &n, k, &e);
        }
        cand_heap_finish(c, n);
        *best = 0;
        return n;
    }
    int32_t top = 0;
    float top_logit = -INFINITY;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        c[n] = (tnd_candidate){i, w[i], 0.0f};
        if (w[i] > top_logit) { /* strict: a tie keeps the lower id */
            top_logit = w[i];
            top = n;
        }
        n += w[i] != -INFINITY;
    }
    if (n == 0) return 0;
    if (k > 0 && k < n) {
        select_best(c, n, k);
        n = k;
        top = 0;
        for (int32_t i = 1; i < n; i++)
            if (ranks_before(&c[i], &c[top])) top = i;
    }
    *best = top;
    return n;
}

/* Greedy sampling with a filter looks at this many of the most likely tokens before it masks the vocabulary. */
enum { GREEDY_LOOKAHEAD = 64 };

static int cmp_rank(const void *a, const void *b) {
    return ranks_before(a, b) ? -1 : ranks_before(b, a) ? 1 : 0;
}

/* Stage 8: draws one of the kept candidates in proportion to p. */
static int32_t draw(tnd_sampler *s) {
    const tnd_candidate *c = s->cand;
    int32_t n = s->n_kept;
    double r = rng_uniform(s->rng) * s->kept_total, cum = 0.0;
    int32_t pick = n - 1;
    for (int32_t i = 0; i < n; i++) {
        cum += c[i].p;
        if (r < cum) {
            pick = i;
            break;
        }
    }
    while (pick > 0 && c[pick].p == 0.0f) pick--; /* the rounding fallback never lands on an impossible token */
    return c[pick].id;
}

/* Stages 1-8 over the tokens `allowed` marks (NULL: all). */
static tnd_status sample_from(tnd_sampler *s, const float *logits, const uint8_t *allowed, int32_t *token) {
    const tnd_sampler_params *p = &s->params;
    tnd_candidate *c = s->cand;
    s->n_kept = 0;
    load_logits(s, logits);
    for (int32_t i = 0; allowed && i < s->n_vocab; i++)
        if (!allowed[i]) s->work[i] = -INFINITY;
    bool greedy = p->temperature == 0.0f;
    int32_t best = 0, n = gather_candidates(s, greedy ? 1 : p->top_k, &best);
    if (n == 0)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "sampler: no token of %d has a finite logit after penalties, bias%s"
                        " (all NaN, -inf or banned)", s->n_vocab, allowed ? " and the grammar" : "");
    if (greedy) {
        c[0] = c[best];
        best = 0;
        n = 1;
    }
    /* temperature (stage 5): the best candidate gets p = exp(0) = 1 exactly; dividing (rather than multiplying by
     * 1 / temperature, which overflows for tiny temperatures) keeps that true for every temperature > 0 */
    float max_logit = c[best].logit;
    double total = 0.0;
    for (int32_t i = 0; i < n; i++) {
        c[i].p = greedy ? 1.0f : expf((c[i].logit - max_logit) / p->temperature);
        total += c[i].p;
    }
    if (p->min_p > 0.0f && !greedy) n = keep_at_least(c, n, p->min_p, &total); /* stage 6: p_max is 1 */
    if (p->top_p < 1.0f && !greedy && n > 1) {                                  /* stage 7 */
        n = top_p_filter(c, n, total, p->top_p);
        total = 0.0;
        for (int32_t i = 0; i < n; i++) total += c[i].p;
    }
    s->n_kept = n;
    s->kept_total = total;
    *token = draw(s);
    return TND_OK;
}

tnd_status tnd_sampler_sample(tnd_sampler *s, const float *logits, int32_t *token) {
    if (token) *token = -1;
    if (!s || !logits || !token)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_sampler_sample: sampler, logits or token is NULL");
    return sample_from(s, logits, NULL, token);
}

tnd_status tnd_sampler_sample_filtered(tnd_sampler *s, const float *logits, const tnd_sample_filter *f,
                                       int32_t *token) {
    tnd_status st = tnd_sampler_sample(s, logits, token);
    if (st || f->allows(f->user, *token)) return st;
    /* drawn again from the kept candidates the filter allows: the same as drawing from the kept distribution until
     * an allowed token comes (rejection sampling), without the redraws */
    tnd_candidate *c = s->cand;
    int32_t n = 0;
    double total = 0.0;
    for (int32_t i = 0; i < s->n_kept; i++)
        if (c[i].p > 0.0f && f->allows(f->user, c[i].id)) {
            c[n++] = c[i];
            total += c[i].p;
        }
    if (n > 0) {
        s->n_kept = n;
        s->kept_total = total;
        *token = draw(s);
        return TND_OK;
    }
    /* greedy: the most likely allowed token is the first allowed one in the order of the logits, usually among
     * the first few (the logits after penalties and bias are still in s->work) */
    if (s->params.temperature == 0.0f) {
        int32_t best = 0, m = gather_candidates(s, GREEDY_LOOKAHEAD, &best);
        qsort(c, (size_t)m, sizeof *c, cmp_rank);
        for (int32_t i = 0; i < m; i++)
            if (f->allows(f->user, c[i].id)) {
                c[0] = (tnd_candidate){c[i].id, c[i].logit, 1.0f};
                s->n_kept = 1;
                s->kept_total = 1.0;
                *token = c[0].id;
                return TND_OK;
            }
    }
    /* none of them: every stage again over the allowed tokens of the whole vocabulary */
    if (!f->mask(f->user, f->allowed)) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "sampler: out of memory for the mask");
    return sample_from(s, logits, f->allowed, token);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Log-probabilities
 * ------------------------------------------------------------------------------------------------------------- */

static tnd_status check_logprob_args(int32_t token, int32_t n_vocab, const float *token_logprob,
                                     const tnd_token_logprob *top, int32_t n_top) {
    if (n_top < 0 || (n_top > 0 && !top))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "logprobs: n_top %d is negative or top is NULL", n_top);
    if (token_logprob && (token < 0 || token >= n_vocab))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "logprobs: token %d is outside [0, %d)", token, n_vocab);
    return TND_OK;
}

tnd_status tnd_logprobs(const float *logits, int32_t n_vocab, int32_t token, float *token_logprob,
                        tnd_token_logprob *top, int32_t n_top, int32_t *n_written) {
    if (n_written) *n_written = 0;
    if (!logits || n_vocab < 1)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_logprobs: logits is NULL or n_vocab %d < 1", n_vocab);
    tnd_status st = check_logprob_args(token, n_vocab, token_logprob, top, n_top);
    if (st) return st;
    /* the heap ranks raw logits, which rank like their log-probabilities */
    float max_logit = -INFINITY;
    int32_t n = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        tnd_token_logprob e = {i, clean_logit(logits[i])};
        if (e.logprob > max_logit) max_logit = e.logprob;
        logprob_heap_offer(top, &n, n_top, &e);
    }
    if (max_logit == -INFINITY)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_logprobs: every one of %d logits is -inf or NaN", n_vocab);
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)clean_logit(logits[i]) - (double)max_logit);
    double log_z = (double)max_logit + log(sum);
    if (token_logprob) *token_logprob = (float)((double)clean_logit(logits[token]) - log_z);
    logprob_heap_finish(top, n);
    for (int32_t i = 0; i < n; i++) top[i].logprob = (float)((double)top[i].logprob - log_z);
    if (n_written) *n_written = n;
    return TND_OK;
}

tnd_status tnd_sampler_logprobs(const tnd_sampler *s, int32_t token, float *token_logprob, tnd_token_logprob *top,
                                int32_t n_top, int32_t *n_written) {
    if (n_written) *n_written = 0;
    if (!s) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_sampler_logprobs: sampler is NULL");
    tnd_status st = check_logprob_args(token, s->n_vocab, token_logprob, top, n_top);
    if (st) return st;
    if (s->n_kept == 0)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_sampler_logprobs: no successful sample since init or reset");
    /* ranked by p (ties to the lower id), then turned into log(p / total); entries whose p underflowed to 0 have
     * probability 0 and are left out like the filtered ones */
    const tnd_candidate *c = s->cand;
    double log_total = log(s->kept_total);
    int32_t n = 0;
    if (token_logprob) *token_logprob = -INFINITY;
    for (int32_t i = 0; i < s->n_kept; i++) {
        if (c[i].p == 0.0f) continue;
        if (token_logprob && c[i].id == token) *token_logprob = (float)(log((double)c[i].p) - log_total);
        tnd_token_logprob e = {c[i].id, c[i].p};
        logprob_heap_offer(top, &n, n_top, &e);
    }
    logprob_heap_finish(top, n);
    for (int32_t i = 0; i < n; i++) top[i].logprob = (float)(log((double)top[i].logprob) - log_total);
    if (n_written) *n_written = n;
    return TND_OK;
}
