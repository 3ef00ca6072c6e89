/* kv_cache.c: block allocation, block tables, fork / truncate and copy-on-write of the paged KV cache. */
#include "runtime/kv_cache.h"

#include "core/alloc.h"
#include "core/error.h"
#include "quant/quant.h"

#include <string.h>

/* Bytes of one row of `width` elements of a KV type, or 0 (with the error recorded) for a type the cache cannot
 * hold or a width that is no multiple of its block. */
static size_t kv_row(tnd_type type, int64_t width, const char *which) {
    if (type != TND_TYPE_F32 && type != TND_TYPE_F16 && type != TND_TYPE_Q8_0 && type != TND_TYPE_Q4_0) {
        tnd_fail(TND_ERR_UNSUPPORTED, "%s cache type %s is not supported (f32, f16, q8_0, q4_0)", which,
                 tnd_type_name(type) ? tnd_type_name(type) : "unknown");
        return 0;
    }
    size_t row = tnd_row_size(type, width);
    if (!row)
        tnd_fail(TND_ERR_UNSUPPORTED, "%s cache type %s needs a row width that is a multiple of its block (width "
                 "%lld)", which, tnd_type_name(type), (long long)width);
    return row;
}

tnd_status tnd_kv_cache_init(tnd_kv_cache *kv, tnd_type k_type, tnd_type v_type, int32_t n_ctx, int32_t block_size,
                             int32_t n_seq, int32_t n_layer, int64_t width, tnd_backend *const *layer_device,
                             const tnd_allocator *allocator) {
    memset(kv, 0, sizeof *kv);
    if (allocator) kv->allocator = *allocator;
    size_t k_row = kv_row(k_type, width, "K"), v_row = k_row ? kv_row(v_type, width, "V") : 0;
    if (!k_row || !v_row) return TND_ERR_UNSUPPORTED;
    if (n_ctx < 1 || block_size < 1 || n_seq < 1 || n_layer < 1)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "KV cache: context %d, block %d, sequences %d must be positive",
                        n_ctx, block_size, n_seq);
    kv->k_type = k_type;
    kv->v_type = v_type;
    kv->block_size = block_size;
    kv->n_blocks = (n_ctx + block_size - 1) / block_size;
    kv->width = width;
    kv->k_block_bytes = k_row * (size_t)block_size;
    kv->v_block_bytes = v_row * (size_t)block_size;
    kv->n_seq = n_seq;
    kv->n_layer = n_layer;
    tnd_allocator *a = &kv->allocator;
    kv->refcount = tnd_alloc_array(a, (size_t)kv->n_blocks, sizeof(int32_t));
    kv->row_token = tnd_alloc_array(a, (size_t)kv->n_blocks * (size_t)block_size, sizeof(int32_t));
    kv->free_list = tnd_alloc_array(a, (size_t)kv->n_blocks, sizeof(int32_t));
    kv->seqs = tnd_alloc_array(a, (size_t)n_seq, sizeof(tnd_kv_seq));
    kv->layer_device = tnd_alloc_array(a, (size_t)n_layer, sizeof(tnd_backend *));
    kv->k_pool = tnd_alloc_array(a, (size_t)n_layer, sizeof(tnd_buffer *));
    kv->v_pool = tnd_alloc_array(a, (size_t)n_layer, sizeof(tnd_buffer *));
    if (!kv->refcount || !kv->row_token || !kv->free_list || !kv->seqs || !kv->layer_device || !kv->k_pool ||
        !kv->v_pool) {
        tnd_kv_cache_free(kv);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for the KV cache tables");
    }
    /* free list as a stack, lowest block on top */
    for (int32_t i = 0; i < kv->n_blocks; i++) kv->free_list[i] = kv->n_blocks - 1 - i;
    kv->n_free = kv->n_blocks;
    size_t k_bytes = kv->k_block_bytes * (size_t)kv->n_blocks, v_bytes = kv->v_block_bytes * (size_t)kv->n_blocks;
    for (int32_t l = 0; l < n_layer; l++) {
        tnd_backend *d = layer_device[l];
        kv->layer_device[l] = d;
        kv->k_pool[l] = d->vt->alloc(d, k_bytes);
        kv->v_pool[l] = d->vt->alloc(d, v_bytes);
        if (!kv->k_pool[l] || !kv->v_pool[l]) {
            tnd_kv_cache_free(kv);
            return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for the KV cache: %zu + %zu bytes for layer %d on "
                            "%s", k_bytes, v_bytes, l, d->name);
        }
    }
    return TND_OK;
}

void tnd_kv_cache_free(tnd_kv_cache *kv) {
    tnd_allocator *a = &kv->allocator;
    for (int32_t l = 0; kv->layer_device && l < kv->n_layer; l++) { /* any of the tables may be missing */
        tnd_backend *d = kv->layer_device[l];
        if (d && kv->k_pool && kv->k_pool[l]) d->vt->free(d, kv->k_pool[l]);
        if (d && kv->v_pool && kv->v_pool[l]) d->vt->free(d, kv->v_pool[l]);
    }
    for (int32_t s = 0; kv->seqs && s < kv->n_seq; s++) tnd_free(a, kv->seqs[s].blocks);
    tnd_free(a, kv->refcount);
    tnd_free(a, kv->row_token);
    tnd_free(a, kv->free_list);
    tnd_free(a, kv->seqs);
    tnd_free(a, kv->layer_device);
    tnd_free(a, kv->k_pool);
    tnd_free(a, kv->v_pool);
    tnd_allocator keep = *a;
    memset(kv, 0, sizeof *kv);
    kv->allocator = keep;
}

static tnd_status check_seq(const tnd_kv_cache *kv, int32_t seq) {
    if (seq < 0 || seq >= kv->n_seq)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "sequence id %d is out of range (0..%d)", seq, kv->n_seq - 1);
    return TND_OK;
}

static void release_block(tnd_kv_cache *kv, int32_t block) {
    if (--kv->refcount[block] == 0) kv->free_list[kv->n_free++] = block;
}

static tnd_status take_block(tnd_kv_cache *kv, int32_t *block) {
    if (kv->n_free == 0)
        return tnd_fail(TND_ERR_BUFFER_TOO_SMALL, "KV cache is full: all %d blocks of %d tokens are in use",
                        kv->n_blocks, kv->block_size);
    *block = kv->free_list[--kv->n_free];
    kv->refcount[*block] = 1;
    return TND_OK;
}

static tnd_status reserve_table(tnd_kv_cache *kv, tnd_kv_seq *s, int32_t n) {
    if (n <= s->cap_blocks) return TND_OK;
    int32_t cap = s->cap_blocks ? s->cap_blocks : 8;
    while (cap < n) cap *= 2;
    int32_t *t = tnd_alloc_array(&kv->allocator, (size_t)cap, sizeof(int32_t));
    if (!t) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for a block table");
    if (s->blocks) memcpy(t, s->blocks, sizeof(int32_t) * (size_t)s->n_blocks);
    tnd_free(&kv->allocator, s->blocks);
    s->blocks = t;
    s->cap_blocks = cap;
    return TND_OK;
}

/* Gives `s` its own copy of block index bi (shared with another sequence) in every layer. */
static tnd_status unshare(tnd_kv_cache *kv, tnd_kv_seq *s, int32_t bi) {
    int32_t old = s->blocks[bi], fresh = 0;
    tnd_status st = take_block(kv, &fresh);
    if (st) return st;
    for (int32_t l = 0; l < kv->n_layer; l++) {
        tnd_backend *d = kv->layer_device[l];
        d->vt->kv_copy_blocks(d, kv->k_pool[l], kv->k_block_bytes, &old, &fresh, 1);
        d->vt->kv_copy_blocks(d, kv->v_pool[l], kv->v_block_bytes, &old, &fresh, 1);
    }
    size_t rows = (size_t)kv->block_size;
    memcpy(kv->row_token + (size_t)fresh * rows, kv->row_token + (size_t)old * rows, rows * sizeof(int32_t));
    release_block(kv, old);
    s->blocks[bi] = fresh;
    return TND_OK;
}

tnd_status tnd_kv_cache_append(tnd_kv_cache *kv, int32_t seq, int32_t pos, int64_t *slot) {
    tnd_status st = check_seq(kv, seq);
    if (st) return st;
    tnd_kv_seq *s = &kv->seqs[seq];
    if (pos != s->len)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "sequence %d: position %d does not follow its %d cached tokens",
                        seq, pos, s->len);
    int32_t bi = pos / kv->block_size;
    if (bi == s->n_blocks) {
        if ((st = reserve_table(kv, s, bi + 1))) return st;
        int32_t block = 0;
        if ((st = take_block(kv, &block))) return st;
        s->blocks[s->n_blocks++] = block;
    } else if (kv->refcount[s->blocks[bi]] > 1) {
        if ((st = unshare(kv, s, bi))) return st;
    }
    *slot = (int64_t)s->blocks[bi] * kv->block_size + pos % kv->block_size;
    kv->row_token[*slot] = -1; /* until the caller says which token's */
    s->len = pos + 1;
    return TND_OK;
}

tnd_status tnd_kv_cache_truncate(tnd_kv_cache *kv, int32_t seq, int32_t len) {
    tnd_status st = check_seq(kv, seq);
    if (st) return st;
    tnd_kv_seq *s = &kv->seqs[seq];
    if (len < 0 || len > s->len)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "sequence %d: cannot truncate %d tokens to %d", seq, s->len, len);
    int32_t keep = (len + kv->block_size - 1) / kv->block_size;
    while (s->n_blocks > keep) release_block(kv, s->blocks[--s->n_blocks]);
    s->len = len;
    return TND_OK;
}

tnd_status tnd_kv_cache_fork(tnd_kv_cache *kv, int32_t src, int32_t dst) {
    tnd_status st;
    if ((st = check_seq(kv, src)) || (st = check_seq(kv, dst))) return st;
    if (src == dst) return TND_OK;
    if ((st = tnd_kv_cache_truncate(kv, dst, 0))) return st;
    tnd_kv_seq *s = &kv->seqs[src], *d = &kv->seqs[dst];
    if ((st = reserve_table(kv, d, s->n_blocks))) return st;
    for (int32_t i = 0; i < s->n_blocks; i++) {
        d->blocks[i] = s->blocks[i];
        kv->refcount[s->blocks[i]]++;
    }
    d->n_blocks = s->n_blocks;
    d->len = s->len;
    return TND_OK;
}

int32_t tnd_kv_cache_prefix(const tnd_kv_cache *kv, int32_t seq, const int32_t *tokens, int32_t n) {
    if (seq < 0 || seq >= kv->n_seq || !tokens) return 0;
    const tnd_kv_seq *s = &kv->seqs[seq];
    int32_t limit = n < s->len ? n : s->len, i = 0;
    for (; i < limit; i++) {
        int64_t slot = (int64_t)s->blocks[i / kv->block_size] * kv->block_size + i % kv->block_size;
        if (kv->row_token[slot] != tokens[i]) break;
    }
    return i;
}

int32_t tnd_kv_cache_used_blocks(const tnd_kv_cache *kv) { return kv->n_blocks - kv->n_free; }
