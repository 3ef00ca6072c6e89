/* backend.h: the device interface. Model code is written against these operations; every device (CPU now; GPU,
 * NPU and remote later) provides one vtable. A device owns the memory its pointers refer to: activations, KV blocks
 * and prepared weights passed to an op must come from that same device.
 *
 * Conventions of every op: activations are float32, row-major, one row per token ([n_tokens][width]), contiguous.
 * Small index arrays (token ids, positions, KV slots, block tables) are host memory. Ops are synchronous: when one
 * returns, its output is complete. Ops do not fail: argument validation happens before (in the model and the KV
 * cache), so a device may assume shapes are consistent. */
#ifndef TND_BACKEND_BACKEND_H
#define TND_BACKEND_BACKEND_H

#include "tandem.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A weight matrix as a device sees it: n_rows rows of n_cols elements of `type`, row r at data + r * row_bytes.
 * On the CPU, data points into the model file's mapping. */
typedef struct tnd_weight {
    tnd_type type;
    int64_t n_cols;   /* ne[0]: the reduction dimension of a matmul */
    int64_t n_rows;   /* ne[1]: output features */
    size_t row_bytes;
    const void *data;
    bool lookup_only;  /* only rows are looked up (an embedding table), never multiplied: kept as it is */
    int32_t row_group; /* set by the device: rows stored in interleaved groups of this many (0: one after another) */
} tnd_weight;

typedef enum tnd_rope_mode {
    TND_ROPE_NORMAL = 0, /* rotate adjacent pairs (x[2i], x[2i+1]): Llama */
    TND_ROPE_NEOX = 1    /* rotate halves (x[i], x[i + n_rot/2]): Qwen, GPT-NeoX */
} tnd_rope_mode;

/* Rotary position embedding of one layer kind. theta_i = pos * base^(-2i/n_rot) / freq_factors[i]. */
typedef struct tnd_rope {
    tnd_rope_mode mode;
    int32_t head_dim;            /* stride between heads */
    int32_t n_rot;               /* rotated dimensions per head (<= head_dim, even) */
    float base;                  /* rope.freq_base */
    float scale;                 /* linear position scale (1 = none) */
    const float *freq_factors;   /* NULL or n_rot/2 divisors (Llama 3 rope_freqs) */
} tnd_rope;

/* Attention of a batch over the paged KV cache. Token t (of sequence s) attends causally to positions
 * [0, n_ctx[t]) of s, found through s's block table: position p lives in block block_table[t][p / block_size],
 * row p % block_size. Grouped-query attention: query head h uses KV head h / (n_head / n_head_kv). */
typedef struct tnd_attention_args {
    const float *q;               /* [n_tokens][n_head * head_dim], rope applied */
    float *out;                   /* [n_tokens][n_head * head_dim] */
    int64_t n_tokens;
    int32_t n_head, n_head_kv, head_dim;
    float scale;                  /* usually 1/sqrt(head_dim) */
    const void *k_pool, *v_pool;  /* this layer's blocks: [n_blocks][block_size][n_head_kv * head_dim] */
    tnd_type kv_type;             /* F32, F16 or Q8_0 */
    int32_t block_size;
    const int32_t *const *block_tables; /* per token: its sequence's block table (host) */
    const int32_t *n_ctx;         /* per token: number of positions it sees (its position + 1) */
} tnd_attention_args;

typedef struct tnd_backend tnd_backend;

typedef struct tnd_backend_vtable {
    /* Releases the device and everything it allocated. */
    void (*destroy)(tnd_backend *b);

    /* ---- memory ---- */
    /* Device memory of `bytes` (zeroed), or NULL. */
    void *(*alloc)(tnd_backend *b, size_t bytes);
    void (*free)(tnd_backend *b, void *ptr);
    /* Copies between host and device memory. */
    void (*to_device)(tnd_backend *b, void *dst, const void *host_src, size_t bytes);
    void (*to_host)(tnd_backend *b, void *host_dst, const void *src, size_t bytes);
    /* Copies within the device's memory (regions may not overlap). */
    void (*copy)(tnd_backend *b, void *dst, const void *src, size_t bytes);
    /* Makes a weight stored in host memory (the file mapping) usable by this device. *out is the device's view;
     * release_weight undoes it. A CPU returns the same view; a GPU uploads (optional: NULL = use as is). */
    tnd_status (*prepare_weight)(tnd_backend *b, const tnd_weight *host, tnd_weight *out);
    void (*release_weight)(tnd_backend *b, tnd_weight *w);
    /* Readies the device for matmuls of up to max_tokens rows of up to max_cols inputs (scratch for converted
     * activations). Called once per context before any op. TND_ERR_OUT_OF_MEMORY. */
    tnd_status (*reserve)(tnd_backend *b, int64_t max_cols, int64_t max_tokens);

    /* ---- ops ---- */
    /* out[i] = row ids[i] of `table` converted to float: [n][table->n_cols]. */
    void (*embed)(tnd_backend *b, const tnd_weight *table, const int32_t *ids, int64_t n, float *out);
    /* y[t][r] = sum_c w[r][c] * x[t][c] for t < n_tokens: x is [n_tokens][w->n_cols], y [n_tokens][w->n_rows]. */
    void (*matmul)(tnd_backend *b, const tnd_weight *w, const float *x, int64_t n_tokens, float *y);
    /* y[r] = x[r] / rms(x[r]) * gamma for each of `rows` rows of `dim` (y may alias x). */
    void (*rms_norm)(tnd_backend *b, const float *x, const float *gamma, float *y, int64_t dim, int64_t rows,
                     float eps);
    /* y[i] += x[i] for i < n. */
    void (*add)(tnd_backend *b, float *y, const float *x, int64_t n);
    /* y[r][i] += bias[i]: `rows` rows of `dim`. */
    void (*add_bias)(tnd_backend *b, float *y, const float *bias, int64_t dim, int64_t rows);
    /* out[i] = silu(gate[i]) * up[i] (out may alias gate). */
    void (*swiglu)(tnd_backend *b, const float *gate, const float *up, float *out, int64_t n);
    /* Rotates x in place: [n_tokens][n_heads * rope->head_dim] at positions pos[t]. */
    void (*rope)(tnd_backend *b, float *x, const int32_t *pos, int64_t n_tokens, int32_t n_heads,
                 const tnd_rope *rope);
    /* Stores k and v rows ([n_tokens][width], width = heads * head_dim) into the pools at the given slots
     * (block * block_size + position in the block), converting to kv_type. A block holds block_size positions of
     * every head in width * block_size elements; the order inside a block is the device's (the CPU keeps each
     * head's positions together, [head][position][head_dim], so attention reads one run per head, and an F16 K
     * transposed, [head][head_dim][position], where its attention kernel reads it so). */
    void (*kv_store)(tnd_backend *b, void *k_pool, void *v_pool, tnd_type kv_type, const float *k, const float *v,
                     const int64_t *slots, int64_t n_tokens, int64_t width, int32_t block_size, int32_t head_dim);
    /* Copies whole KV blocks src[i] -> dst[i] of one pool (copy-on-write of shared blocks). */
    void (*kv_copy_blocks)(tnd_backend *b, void *pool, size_t block_bytes, const int32_t *src, const int32_t *dst,
                           int32_t n);
    /* Paged causal attention (see tnd_attention_args). */
    void (*attention)(tnd_backend *b, const tnd_attention_args *args);
} tnd_backend_vtable;

struct tnd_backend {
    const tnd_backend_vtable *vt;
    char name[32];        /* "cpu0", "cpu1", ... unique within a context */
    void *impl;           /* the device's own state */
};

/* CPU device with its own thread pool of n_threads (< 1: physical cores). reference = true runs the scalar float
 * kernels only (weights dequantized to float, activations never quantized): the oracle of the tests. Otherwise each
 * weight type uses the best kernel for this processor. */
tnd_status tnd_backend_cpu_init(int n_threads, bool reference, const tnd_allocator *allocator, const char *name,
                                tnd_backend **out);

/* Whether the CPU attention kernel can handle these head counts (it keeps per-group state on the stack). */
bool tnd_cpu_attention_fits(int32_t n_head, int32_t n_head_kv, int32_t head_dim);

#endif
