/* expert_cache.c: the bookkeeping of a hot-expert cache (see expert_cache.h). */
#include "model/expert_cache.h"

#include "core/alloc.h"
#include "core/error.h"

#include <string.h>

tnd_status tnd_expert_cache_init(tnd_expert_cache *c, int32_t n_layers, int32_t n_experts, int32_t n_slots,
                                 int32_t policy, const tnd_allocator *allocator) {
    memset(c, 0, sizeof *c);
    if (n_layers < 1 || n_slots < 1 || n_slots >= n_experts ||
        (policy != TND_EXPERT_CACHE_LRU && policy != TND_EXPERT_CACHE_LFU))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "a cache of %d experts of %d per layer (policy %d): it holds 1 to %d",
                        n_slots, n_experts, (int)policy, n_experts - 1);
    c->allocator = allocator ? *allocator : (tnd_allocator){0};
    c->n_layers = n_layers;
    c->n_experts = n_experts;
    c->n_slots = n_slots;
    c->policy = policy;
    size_t slots = (size_t)n_layers * (size_t)n_slots, experts = (size_t)n_layers * (size_t)n_experts;
    c->slot_expert = tnd_alloc_array(&c->allocator, slots, sizeof(int32_t));
    c->expert_slot = tnd_alloc_array(&c->allocator, experts, sizeof(int32_t));
    c->score = tnd_alloc_array(&c->allocator, experts, sizeof(double));
    c->chosen = tnd_alloc_array(&c->allocator, (size_t)n_experts, sizeof(uint32_t));
    if (!c->slot_expert || !c->expert_slot || !c->score || !c->chosen) {
        tnd_expert_cache_free(c);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for the expert cache's bookkeeping");
    }
    for (int32_t l = 0; l < n_layers; l++)
        for (int32_t e = 0; e < n_experts; e++) {
            int64_t at = (int64_t)l * n_experts + e;
            c->expert_slot[at] = e < n_slots ? e : -1;
            c->score[at] = 0;
            if (e < n_slots) c->slot_expert[(int64_t)l * n_slots + e] = e;
        }
    memset(c->chosen, 0, sizeof(uint32_t) * (size_t)n_experts);
    return TND_OK;
}

void tnd_expert_cache_free(tnd_expert_cache *c) {
    if (!c) return;
    tnd_free(&c->allocator, c->slot_expert);
    tnd_free(&c->allocator, c->expert_slot);
    tnd_free(&c->allocator, c->score);
    tnd_free(&c->allocator, c->chosen);
    memset(c, 0, sizeof *c);
}

void tnd_expert_cache_split(tnd_expert_cache *c, int32_t il, const int32_t *ids, int64_t n_pairs, int32_t *near,
                            int32_t *far) {
    const int32_t *slot_of = c->expert_slot + (int64_t)il * c->n_experts;
    c->step++;
    memset(c->chosen, 0, sizeof(uint32_t) * (size_t)c->n_experts);
    for (int64_t p = 0; p < n_pairs; p++) {
        int32_t e = ids[p];
        bool valid = e >= 0 && e < c->n_experts; /* a router's op that failed leaves its ids undefined */
        int32_t s = valid ? slot_of[e] : -1;
        near[p] = s;
        far[p] = valid && s < 0 ? e : -1;
        if (!valid) continue;
        c->chosen[e]++;
        c->stats.pairs++;
        c->stats.hits += s >= 0;
    }
    double *score = c->score + (int64_t)il * c->n_experts;
    for (int32_t e = 0; e < c->n_experts; e++) {
        if (c->policy == TND_EXPERT_CACHE_LRU) {
            if (c->chosen[e]) score[e] = (double)c->step;
        } else {
            score[e] = score[e] * TND_EXPERT_LFU_DECAY + c->chosen[e];
        }
    }
}

/* The slot whose expert the policy would give up first (the lowest score; not one this step chose, for LRU). */
static int32_t victim(const tnd_expert_cache *c, int32_t il) {
    const int32_t *held = c->slot_expert + (int64_t)il * c->n_slots;
    const double *score = c->score + (int64_t)il * c->n_experts;
    int32_t best = -1;
    for (int32_t s = 0; s < c->n_slots; s++) {
        if (held[s] < 0) return s; /* an empty slot (a copy that failed) first */
        if (c->policy == TND_EXPERT_CACHE_LRU && c->chosen[held[s]]) continue;
        if (best < 0 || score[held[s]] < score[held[best]]) best = s;
    }
    return best;
}

int32_t tnd_expert_cache_swaps(tnd_expert_cache *c, int32_t il, int32_t *slot, int32_t *expert, int32_t max) {
    int32_t *held = c->slot_expert + (int64_t)il * c->n_slots, *slot_of = c->expert_slot + (int64_t)il * c->n_experts;
    const double *score = c->score + (int64_t)il * c->n_experts;
    int32_t n = 0;
    while (n < max) {
        /* the most wanted expert outside: the most pairs this step (LRU) or the highest count (LFU) */
        int32_t want = -1;
        for (int32_t e = 0; e < c->n_experts; e++) {
            if (slot_of[e] >= 0 || !c->chosen[e]) continue;
            if (want < 0 ||
                (c->policy == TND_EXPERT_CACHE_LRU ? c->chosen[e] > c->chosen[want] : score[e] > score[want]))
                want = e;
        }
        if (want < 0) break;
        int32_t s = victim(c, il);
        if (s < 0) break;
        if (held[s] >= 0 && c->policy == TND_EXPERT_CACHE_LFU && score[want] <= score[held[s]] + TND_EXPERT_LFU_MARGIN)
            break;
        if (held[s] >= 0) slot_of[held[s]] = -1;
        held[s] = want;
        slot_of[want] = s;
        slot[n] = s;
        expert[n++] = want;
        c->stats.swaps++;
    }
    return n;
}

void tnd_expert_cache_lost(tnd_expert_cache *c, int32_t il, int32_t s) {
    int32_t *held = c->slot_expert + (int64_t)il * c->n_slots;
    if (held[s] >= 0) c->expert_slot[(int64_t)il * c->n_experts + held[s]] = -1;
    held[s] = -1;
}
