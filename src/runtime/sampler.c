/* sampler.c: token sampling from logits (penalties, bias, top-k, temperature, min-p, top-p, seeded draw) and
 * log-probabilities for the caller's logprobs. */
#include "core/alloc.h"
#include "core/error.h"

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
    s->cand = tnd_alloc_array(a, nv, sizeof *s->cand);
    s->counts = tnd_alloc_array(a, nv, sizeof(int32_t));
    s->distinct = tnd_alloc_array(a, nv, sizeof(int32_t));
    s->distinct_pos = tnd_alloc_array(a, nv, sizeof(int32_t));
    bool ok = s->cand && s->counts && s->distinct && s->distinct_pos;
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
    for (int32_t i = 0; i < s->n_distinct; i++) s->counts[s->distinct[i]] = 0;
    s->n_distinct = 0;
    s->ring_head = s->ring_len = 0;
    s->n_kept = 0;
    rng_seed(s->rng, s->seed);
}

uint64_t tnd_sampler_seed(const tnd_sampler *s) { return s ? s->seed : 0; }

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
 * Selection without sorting: candidates are ranked by logit, larger first, ties to the lower id (a total order,
 * so the result never depends on the algorithm). Quickselect with a median-of-three pivot, falling back to a sort
 * of the unresolved range when it takes too many rounds, so the worst case stays O(n log n).
 * ------------------------------------------------------------------------------------------------------------- */

static inline bool ranks_before(const tnd_candidate *a, const tnd_candidate *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int compare_rank(const void *pa, const void *pb) {
    const tnd_candidate *a = pa, *b = pb;
    return ranks_before(a, b) ? -1 : ranks_before(b, a) ? 1 : 0;
}

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
    tnd_candidate pivot = c[last];
    int32_t store = lo;
    for (int32_t i = lo; i < last; i++)
        if (ranks_before(&c[i], &pivot)) swap_cand(c, i, store++);
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

/* ---------------------------------------------------------------------------------------------------------------
 * Sampling
 * ------------------------------------------------------------------------------------------------------------- */

/* NaN (or -inf + +inf) counts as -inf; +inf counts as the largest float, so that differences stay defined. */
static inline float clean_logit(float v) {
    if (isnan(v)) return -INFINITY;
    if (v == INFINITY) return FLT_MAX;
    return v;
}

/* Stages 1 to 3: cand[i] = {i, cleaned logit with penalties and bias}. */
static void load_logits(tnd_sampler *s, const float *logits) {
    tnd_candidate *c = s->cand;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        c[i].id = i;
        c[i].logit = clean_logit(logits[i]);
        c[i].p = 0.0f;
    }
    const tnd_sampler_params *p = &s->params;
    bool penalize = p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f;
    for (int32_t i = 0; penalize && i < s->n_distinct; i++) {
        int32_t t = s->distinct[i];
        float l = c[t].logit;
        if (p->repeat_penalty != 1.0f) l = l > 0.0f ? l / p->repeat_penalty : l * p->repeat_penalty;
        l -= p->presence_penalty + p->frequency_penalty * (float)s->counts[t];
        c[t].logit = clean_logit(l);
    }
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        tnd_candidate *e = &c[s->bias[i].token];
        e->logit = clean_logit(e->logit + s->bias[i].bias);
    }
}

tnd_status tnd_sampler_sample(tnd_sampler *s, const float *logits, int32_t *token) {
    if (token) *token = -1;
    if (!s || !logits || !token)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_sampler_sample: sampler, logits or token is NULL");
    s->n_kept = 0;
    load_logits(s, logits);
    tnd_candidate *c = s->cand;
    const tnd_sampler_params *p = &s->params;

    /* drop tokens that cannot be drawn; remember the best */
    int32_t n = 0, best = -1;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        if (c[i].logit == -INFINITY) continue;
        c[n] = c[i];
        if (best < 0 || c[n].logit > c[best].logit) best = n; /* strict: ties keep the lower id */
        n++;
    }
    if (n == 0)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "sampler: no token of %d has a finite logit after penalties and"
                        " bias (all NaN, -inf or banned)", s->n_vocab);
    float max_logit = c[best].logit;

    if (p->temperature == 0.0f) { /* greedy */
        c[0] = c[best];
        c[0].p = 1.0f;
        s->n_kept = 1;
        s->kept_total = 1.0;
        *token = c[0].id;
        return TND_OK;
    }
    if (p->top_k > 0 && p->top_k < n) {
        select_best(c, n, p->top_k);
        n = p->top_k;
    }
    double total = 0.0;
    for (int32_t i = 0; i < n; i++) {
        c[i].p = expf((c[i].logit - max_logit) / p->temperature);
        total += c[i].p;
    }
    if (p->min_p > 0.0f) { /* the best token has p = 1 exactly, so min_p * 1 is the threshold */
        int32_t kept = 0;
        total = 0.0;
        for (int32_t i = 0; i < n; i++) {
            if (c[i].p < p->min_p) continue;
            c[kept++] = c[i];
            total += c[i].p;
        }
        n = kept;
    }
    if (p->top_p < 1.0f) {
        n = select_nucleus(c, n, (double)p->top_p * total);
        total = 0.0;
        for (int32_t i = 0; i < n; i++) total += c[i].p;
    }
    s->n_kept = n;
    s->kept_total = total;

    double r = rng_uniform(s->rng) * total, cum = 0.0;
    int32_t pick = n - 1;
    for (int32_t i = 0; i < n; i++) {
        cum += c[i].p;
        if (r < cum) {
            pick = i;
            break;
        }
    }
    while (pick > 0 && c[pick].p == 0.0f) pick--; /* rounding fallback never lands on an impossible token */
    *token = c[pick].id;
    return TND_OK;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Log-probabilities
 * ------------------------------------------------------------------------------------------------------------- */

/* Ranking for the top-N lists: a higher score first, ties to the lower token id. */
static inline bool scores_before(float score_a, int32_t id_a, float score_b, int32_t id_b) {
    return score_a > score_b || (score_a == score_b && id_a < id_b);
}

/* Moves heap[i] down a heap whose root is the worst-ranked entry. */
static void heap_sift_down(tnd_token_logprob *heap, int32_t n, int32_t i) {
    for (;;) {
        int32_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < n && scores_before(heap[worst].logprob, heap[worst].token, heap[l].logprob, heap[l].token)) worst = l;
        if (r < n && scores_before(heap[worst].logprob, heap[worst].token, heap[r].logprob, heap[r].token)) worst = r;
        if (worst == i) return;
        tnd_token_logprob t = heap[i];
        heap[i] = heap[worst];
        heap[worst] = t;
        i = worst;
    }
}

/* Offers (token, score) to a bounded top list kept as a heap in top[0, *n) of capacity cap. */
static void top_offer(tnd_token_logprob *top, int32_t *n, int32_t cap, int32_t token, float score) {
    if (cap <= 0) return;
    if (*n < cap) {
        int32_t i = (*n)++;
        top[i].token = token;
        top[i].logprob = score;
        while (i > 0) { /* sift up: a worse entry moves toward the root */
            int32_t parent = (i - 1) / 2;
            if (!scores_before(top[parent].logprob, top[parent].token, top[i].logprob, top[i].token)) break;
            tnd_token_logprob t = top[i];
            top[i] = top[parent];
            top[parent] = t;
            i = parent;
        }
        return;
    }
    if (!scores_before(score, token, top[0].logprob, top[0].token)) return;
    top[0].token = token;
    top[0].logprob = score;
    heap_sift_down(top, *n, 0);
}

/* Turns the heap top[0, n) into a list ranked best first (heap sort: the worst goes to the back each round). */
static void top_finish(tnd_token_logprob *top, int32_t n) {
    for (int32_t end = n - 1; end > 0; end--) {
        tnd_token_logprob t = top[0];
        top[0] = top[end];
        top[end] = t;
        heap_sift_down(top, end, 0);
    }
}

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
    float max_logit = -INFINITY;
    int32_t n = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        float v = clean_logit(logits[i]);
        if (v > max_logit) max_logit = v;
        top_offer(top, &n, n_top, i, v);
    }
    if (max_logit == -INFINITY)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_logprobs: every one of %d logits is -inf or NaN", n_vocab);
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)clean_logit(logits[i]) - (double)max_logit);
    double log_z = (double)max_logit + log(sum);
    if (token_logprob) *token_logprob = (float)((double)clean_logit(logits[token]) - log_z);
    top_finish(top, n);
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
        top_offer(top, &n, n_top, c[i].id, c[i].p);
    }
    top_finish(top, n);
    for (int32_t i = 0; i < n; i++) top[i].logprob = (float)(log((double)top[i].logprob) - log_total);
    if (n_written) *n_written = n;
    return TND_OK;
}
