/* test_expert_cache.c: the hot-expert cache's bookkeeping on routing traces. Every step splits its pairs into those
 * a slot holds and the others, exactly once each; slots and experts always point at each other; swaps stay within
 * their bound. On a skewed trace whose popular experts drift (as a conversation moves between topics, the routers of
 * trained models favour a few experts per stretch of text), both policies hit far more often than the cache's share
 * of the experts, and on a uniform trace about that share; the figures beside a fixed cache of the trace's most used
 * experts are printed (docs/MOE.md). */
#include "harness.h"

#include "model/expert_cache.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXPERTS = 64, USED = 8, SLOTS = 16, TOKENS = 6000, LAYERS = 2 };

static uint64_t rng = 0x2545f4914f6cdd1dull;
static double uniform(void) { /* [0, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* A trace of TOKENS x USED distinct experts. skew 0: uniform; else Zipf with exponent `skew` over a ranking of the
 * experts that is drawn anew every `stretch` tokens on average. */
static void make_trace(int32_t *trace, double skew, int stretch) {
    int32_t rank[EXPERTS];
    double weight[EXPERTS], total = 0;
    for (int e = 0; e < EXPERTS; e++) {
        rank[e] = e;
        weight[e] = skew > 0 ? pow(e + 1, -skew) : 1.0;
        total += weight[e];
    }
    for (int t = 0; t < TOKENS; t++) {
        if (t == 0 || (skew > 0 && uniform() < 1.0 / stretch))
            for (int e = EXPERTS - 1; e > 0; e--) { /* a new ranking: shuffle */
                int j = (int)(uniform() * (e + 1));
                int32_t tmp = rank[e];
                rank[e] = rank[j];
                rank[j] = tmp;
            }
        for (int j = 0; j < USED; j++) {
            int32_t e;
            bool taken;
            do {
                double u = uniform() * total, acc = 0;
                int r = 0;
                while (r < EXPERTS - 1 && (acc += weight[r]) < u) r++;
                e = rank[r];
                taken = false;
                for (int i = 0; i < j; i++) taken |= trace[t * USED + i] == e;
            } while (taken);
            trace[t * USED + j] = e;
        }
    }
}

/* Runs the trace through a cache token by token (decode) on every layer, checking the bookkeeping at each step;
 * returns the hit rate, and the experts copied in per token and layer in *swaps. */
static double replay(const int32_t *trace, int32_t policy, double *swaps) {
    tnd_expert_cache c;
    if (!CHECK_OK(tnd_expert_cache_init(&c, LAYERS, EXPERTS, SLOTS, policy, NULL))) return 0;
    int bad = 0;
    for (int t = 0; t < TOKENS; t++)
        for (int32_t il = 0; il < LAYERS; il++) {
            const int32_t *ids = trace + t * USED;
            int32_t near[USED], far[USED], slot[SLOTS], expert[SLOTS];
            uint64_t hits = c.stats.hits;
            tnd_expert_cache_split(&c, il, ids, USED, near, far);
            int32_t hit_now = 0;
            for (int p = 0; p < USED; p++) {
                bool here = near[p] >= 0;
                hit_now += here;
                bad += here == (far[p] >= 0); /* exactly one side */
                bad += here ? tnd_expert_cache_held(&c, il, near[p]) != ids[p] : far[p] != ids[p];
            }
            bad += c.stats.hits - hits != (uint64_t)hit_now;
            int32_t n = tnd_expert_cache_swaps(&c, il, slot, expert, 4);
            bad += n < 0 || n > 4;
            for (int32_t i = 0; i < n; i++) bad += tnd_expert_cache_held(&c, il, slot[i]) != expert[i];
            bool seen[EXPERTS] = {false}; /* slots hold distinct experts, and each expert's slot says so */
            for (int32_t s = 0; s < SLOTS; s++) {
                int32_t e = tnd_expert_cache_held(&c, il, s);
                bad += e < 0 || e >= EXPERTS || seen[e] || c.expert_slot[il * EXPERTS + e] != s;
                if (e >= 0 && e < EXPERTS) seen[e] = true;
            }
            for (int32_t e = 0; e < EXPERTS; e++) bad += !seen[e] && c.expert_slot[il * EXPERTS + e] != -1;
        }
    if (!CHECK(bad == 0)) fprintf(stderr, "%d bookkeeping errors (policy %d)\n", bad, policy);
    CHECK(c.stats.pairs == (uint64_t)TOKENS * USED * LAYERS);
    double rate = (double)c.stats.hits / (double)c.stats.pairs;
    *swaps = (double)c.stats.swaps / (TOKENS * LAYERS);
    tnd_expert_cache_free(&c);
    return rate;
}

/* The hit rate of a cache that holds the trace's SLOTS most used experts throughout (which needs the future). */
static double fixed_top(const int32_t *trace) {
    int64_t count[EXPERTS] = {0};
    for (int i = 0; i < TOKENS * USED; i++) count[trace[i]]++;
    int64_t held = 0;
    for (int s = 0; s < SLOTS; s++) {
        int best = 0;
        for (int e = 1; e < EXPERTS; e++)
            if (count[e] > count[best]) best = e;
        held += count[best];
        count[best] = -1;
    }
    return (double)held / (TOKENS * USED);
}

int main(void) {
    int32_t *trace = malloc(sizeof(int32_t) * TOKENS * USED);
    static const struct {
        const char *name;
        double skew;
        int stretch;
    } traces[] = {
        {"uniform", 0, 0}, {"skewed, drifting every ~200 tokens", 1.2, 200}, {"skewed, drifting every ~50", 1.2, 50}};
    double share = (double)SLOTS / EXPERTS;
    for (size_t i = 0; i < sizeof traces / sizeof traces[0]; i++) {
        make_trace(trace, traces[i].skew, traces[i].stretch);
        double lru_swaps, lfu_swaps;
        double lru = replay(trace, TND_EXPERT_CACHE_LRU, &lru_swaps),
               lfu = replay(trace, TND_EXPERT_CACHE_LFU, &lfu_swaps);
        double top = fixed_top(trace);
        printf("%-36s %d of %d experts cached, pairs hit: LRU %.1f%% (%.2f experts copied in a token and layer), "
               "LFU %.1f%% (%.2f); a fixed top %d: %.1f%%\n",
               traces[i].name, SLOTS, EXPERTS, 100 * lru, lru_swaps, 100 * lfu, lfu_swaps, SLOTS, 100 * top);
        if (traces[i].skew == 0) {
            CHECK(fabs(lru - share) < 0.05 && fabs(lfu - share) < 0.05);
        } else {
            CHECK(lru > share + 0.15 && lfu > share + 0.15); /* far above the share the slots are of all experts */
            CHECK(lru > top && lfu > top);                   /* and above a fixed list, where the favourites drift */
        }
    }
    /* bad arguments: a cache as large as the layer, none, an unknown policy */
    tnd_expert_cache c;
    CHECK(tnd_expert_cache_init(&c, 1, 8, 8, TND_EXPERT_CACHE_LRU, NULL) == TND_ERR_INVALID_ARGUMENT);
    CHECK(tnd_expert_cache_init(&c, 1, 8, 0, TND_EXPERT_CACHE_LRU, NULL) == TND_ERR_INVALID_ARGUMENT);
    CHECK(tnd_expert_cache_init(&c, 1, 8, 2, 7, NULL) == TND_ERR_INVALID_ARGUMENT);
    free(trace);
    return tnd_test_finish("test_expert_cache");
}
