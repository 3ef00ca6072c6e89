/* kv_cache.h: the paged KV cache. Keys and values live in fixed-size blocks of token rows shared by all sequences;
 * each sequence has a block table. Forked sequences share blocks (reference-counted) until one of them writes into
 * a shared block, which is then copied (copy-on-write). Storage of each layer sits on the device of that layer. */
#ifndef TND_RUNTIME_KV_CACHE_H
#define TND_RUNTIME_KV_CACHE_H

#include "backend/backend.h"

typedef struct tnd_kv_seq {
    int32_t *blocks;     /* block table: position p is in blocks[p / block_size] */
    int32_t n_blocks, cap_blocks;
    int32_t len;         /* cached positions [0, len) */
} tnd_kv_seq;

typedef struct tnd_kv_cache {
    tnd_type k_type, v_type;   /* each F32, F16, Q8_0 or Q4_0 */
    int32_t block_size;        /* token rows per block */
    int32_t n_blocks;
    int64_t width;             /* n_head_kv * head_dim */
    size_t k_block_bytes, v_block_bytes; /* bytes of one block of a K pool, of a V pool */
    int32_t *refcount;         /* per block; 0 = free */
    int32_t *row_token;        /* [n_blocks * block_size], per slot: the token id whose K/V the row holds, -1 for a
                                  row no batch of tokens wrote; a sequence's rows can so be matched against a record
                                  (tnd_kv_cache_prefix) */
    int32_t *free_list, n_free;
    int32_t n_seq;
    tnd_kv_seq *seqs;
    int32_t n_layer;
    tnd_backend **layer_device; /* per layer */
    tnd_buffer **k_pool, **v_pool; /* per layer, on layer_device[l] */
    tnd_allocator allocator;
} tnd_kv_cache;

/* Allocates pools able to hold n_ctx token rows in total (rounded up to whole blocks) for n_seq sequences.
 * layer_device[l] owns layer l's pools. TND_ERR_UNSUPPORTED for a K or V type other than F32/F16/Q8_0/Q4_0 or a width
 * that is not a multiple of its block; TND_ERR_OUT_OF_MEMORY names the bytes asked for. */
tnd_status tnd_kv_cache_init(tnd_kv_cache *kv, tnd_type k_type, tnd_type v_type, int32_t n_ctx, int32_t block_size,
                             int32_t n_seq, int32_t n_layer, int64_t width, tnd_backend *const *layer_device,
                             const tnd_allocator *allocator);
void tnd_kv_cache_free(tnd_kv_cache *kv);

/* Reserves the row for position `pos` of sequence `seq` and returns its slot (block * block_size + row). pos must
 * equal the sequence's length (tokens are appended in order). Copies a shared block before it is written.
 * TND_ERR_INVALID_ARGUMENT (bad seq or pos), TND_ERR_BUFFER_TOO_SMALL (cache full: no free block). */
tnd_status tnd_kv_cache_append(tnd_kv_cache *kv, int32_t seq, int32_t pos, int64_t *slot);

/* Notes the token id whose K/V the row at `slot` (from tnd_kv_cache_append, which marks the row -1) holds. */
static inline void tnd_kv_cache_set_token(tnd_kv_cache *kv, int64_t slot, int32_t token) {
    kv->row_token[slot] = token;
}

/* Number of leading positions of `seq` whose rows hold the K/V of tokens[0..n), in order. */
int32_t tnd_kv_cache_prefix(const tnd_kv_cache *kv, int32_t seq, const int32_t *tokens, int32_t n);

/* Makes `dst` (emptied first) share all of `src`'s blocks. */
tnd_status tnd_kv_cache_fork(tnd_kv_cache *kv, int32_t src, int32_t dst);

/* Keeps the first `len` positions of `seq` (0 removes it), freeing blocks nobody else uses. */
tnd_status tnd_kv_cache_truncate(tnd_kv_cache *kv, int32_t seq, int32_t len);

/* Blocks in use (refcount > 0) and free. */
int32_t tnd_kv_cache_used_blocks(const tnd_kv_cache *kv);

#endif
