/* cpu_kernels.h: the CPU device's kernel table. For each weight type: the format activations are converted to
 * (once per matmul) and the dot product of a weight row with a converted activation row. The scalar entries come
 * from the type traits; each ISA file (arch/x86_avx2.c, ...) overrides the entries it does faster, chosen at run
 * time from the processor's features. Every override is tested against the scalar entry. */
#ifndef TND_BACKEND_CPU_KERNELS_H
#define TND_BACKEND_CPU_KERNELS_H

#include "backend/cpu/cpu_features.h"
#include "quant/quant.h"

/* A tile of `rows` weight rows x `tokens` activation rows (at most the entry's tile_rows x tile_tokens):
 * y[t * y_stride + r] = dot(row r, activation t), each weight block unpacked once for all tokens and each
 * activation block loaded once for all rows (the kernel of prompt processing and of batched decoding). Every
 * result is bit-identical to the entry's `dot`, so a row's logits do not depend on the batch it was computed in. */
enum { TND_CPU_TILE_MAX = 32 }; /* the largest tile_rows and tile_tokens of any entry */
typedef void (*tnd_tile_fn)(const uint8_t *w, size_t w_stride, const uint8_t *act, size_t act_stride, int64_t n,
                            float *y, size_t y_stride, int rows, int tokens);

/* Calls BODY(args..., T) for the tile's token count T (1..TND_CPU_TOKENS_MAX) as a constant, so that an always-inline
 * tile body is compiled for each count (its accumulators in registers) rather than for a count known at run time. */
enum { TND_CPU_TOKENS_MAX = 4 };

/* Bytes of a weight stream the tiles request ahead of the block being computed: where a block takes long enough,
 * the hardware prefetcher alone stops keeping up and memory and arithmetic add up instead of overlapping (AVX-512,
 * 1 core, 4-row x 4-token Q4_0 tiles over 52 MB: 57-87 -> 104-108 G multiply-adds/s; 4 KiB measured above 2 KiB,
 * 1 KiB worse). */
enum { TND_CPU_TILE_PREFETCH = 4096 };

/* Requests the `bytes` of weights that lie TND_CPU_TILE_PREFETCH after `at`, one cache line at a time. Always
 * inlined: GCC takes a prefetch for an instruction without effects, so a function that only prefetches looks pure
 * and its calls were dropped (the AVX2 tiles ran without their requests, Q6_K from memory at 18 against 29 GB/s
 * after; tests/prefetch_in_tiles.sh checks the built library). */
static inline __attribute__((always_inline)) void tnd_cpu_prefetch_ahead(const uint8_t *at, size_t bytes) {
    for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(at + TND_CPU_TILE_PREFETCH + off, 0, 3);
}
#define TND_CPU_FOR_TOKENS(tokens, BODY, ...)                                                                          \
    do {                                                                                                               \
        switch (tokens) {                                                                                              \
        case 1: BODY(__VA_ARGS__, 1); break;                                                                           \
        case 2: BODY(__VA_ARGS__, 2); break;                                                                           \
        case 3: BODY(__VA_ARGS__, 3); break;                                                                           \
        default: BODY(__VA_ARGS__, 4); break;                                                                          \
        }                                                                                                              \
    } while (0)

/* A float weight type's dot (the 1 x 1 tile) and tile, from the kernel file's tile_body(w, ws, a, as, n, y, ys, rows,
 * kind, T) over float activations; expanded in that file. */
#define TND_CPU_FLOAT_ENTRIES(name, kind, tile_body)                                                                   \
    static float dot_##name##_f32(const void *x, const void *a, int64_t n) {                                           \
        float y;                                                                                                       \
        tile_body(x, 0, a, 0, n, &y, 0, 1, kind, 1);                                                                   \
        return y;                                                                                                      \
    }                                                                                                                  \
    static void tile_##name##_f32(const uint8_t *w, size_t ws, const uint8_t *a, size_t as, int64_t n, float *y,       \
                                  size_t ys, int rows, int tokens) {                                                   \
        TND_CPU_FOR_TOKENS(tokens, tile_body, w, ws, a, as, n, y, ys, rows, kind);                                     \
    }

/* A kernel may keep its activations in a layout of its own (act_type's values, plus what every weight row would
 * otherwise recompute): these give that layout's row size and decode it. */
typedef size_t (*tnd_act_bytes_fn)(int64_t n);
typedef void (*tnd_act_to_float_fn)(const void *act, float *out, int64_t n);

typedef struct tnd_cpu_dot {
    tnd_type act_type;        /* activations are converted to this type's values (F32 = used as they are) */
    tnd_from_float_fn quantize_act; /* float row -> activation row */
    tnd_vec_dot_fn dot;       /* weight row . activation row, n elements */
    const char *isa;          /* "ref", "avx2", ... (for logs and tests) */
    tnd_tile_fn tile;         /* optional: same results as `dot` on a tile */
    int tile_rows, tile_tokens; /* the largest tile `tile` takes */
    tnd_act_bytes_fn act_bytes;       /* NULL: act_type's row size */
    tnd_act_to_float_fn act_to_float; /* NULL: act_type's decoder */
    /* Optional: `tile` over rows packed by tnd_cpu_pack_rows in groups of tile_rows with chunks of pack_chunk
     * bytes (w points at a group; w_stride is ignored). Rows read in step from one stream, not tile_rows
     * streams, which the hardware prefetcher follows from memory. Same results as `dot`. */
    tnd_tile_fn tile_packed;
    size_t pack_chunk;
    /* Optional: rewrites in place the group's chunks at one offset (`group` chunks of `len` bytes, one per row
     * in turn) into the kernel's own order of the same size (NULL: left as they are). */
    void (*pack_transform)(uint8_t *chunks, int group, size_t len);
} tnd_cpu_dot;

/* Packs rows for tile_packed: in each group of `group` rows (the last padded with zero rows), the rows' chunks of
 * `chunk` bytes alternate: chunk 0 of rows 0..group-1, chunk 1 of rows 0..group-1, ... (a row's last chunk may be
 * shorter), each such set of `group` chunks passed through `transform` if given. dst holds
 * ceil(n_rows / group) * group * row_bytes bytes. */
void tnd_cpu_pack_rows(const uint8_t *src, int64_t n_rows, size_t row_bytes, int group, size_t chunk,
                       void (*transform)(uint8_t *chunks, int group, size_t len), uint8_t *dst);
/* The same for groups [first, end) only (groups are independent, so threads may pack ranges of them). */
void tnd_cpu_pack_groups(const uint8_t *src, int64_t n_rows, size_t row_bytes, int group, size_t chunk,
                         void (*transform)(uint8_t *chunks, int group, size_t len), uint8_t *dst, int64_t first,
                         int64_t end);

/* Bytes of one activation row of n elements for `k`, the most any entry needs per element (for buffers), and the
 * row decoded to floats (tests). */
size_t tnd_cpu_act_bytes(const tnd_cpu_dot *k, int64_t n);
enum { TND_CPU_ACT_MAX_BYTES_PER_ELEMENT = 6 };
void tnd_cpu_act_to_float(const tnd_cpu_dot *k, const void *act, float *out, int64_t n);

/* One tile of flash attention for the `rep` query heads q[rep][hd] that share a KV head: the scores of np
 * positions (k, v: [np][hd] floats) scaled by `scale`, then the online-softmax update of each head's running max
 * mx[r], sum[r] and unnormalized output acc[r][hd] (start: -inf, 0, 0). */
enum { TND_CPU_ATTN_TILE_MAX = 64 }; /* the most positions one call takes */
typedef void (*tnd_attn_tile_fn)(const float *q, int32_t rep, int32_t hd, const float *k, const float *v, int32_t np,
                                 float scale, float *mx, float *sum, float *acc);

void tnd_cpu_attn_tile_ref(const float *q, int32_t rep, int32_t hd, const float *k, const float *v, int32_t np,
                           float scale, float *mx, float *sum, float *acc);
/* The AVX2 file's attn_tile, which the AVX-512 one calls for the shapes it does not take (declared for every build;
 * defined where the x86 files are compiled). Called directly rather than through a pointer kept at registration:
 * the library keeps no mutable global state. */
void tnd_cpu_attn_tile_avx2(const float *q, int32_t rep, int32_t hd, const float *k, const float *v, int32_t np,
                            float scale, float *mx, float *sum, float *acc);
/* The same function as compiled into the avxvnni set (x86_avxvnni.c). */
void tnd_cpu_attn_tile_avxvnni(const float *q, int32_t rep, int32_t hd, const float *k, const float *v, int32_t np,
                               float scale, float *mx, float *sum, float *acc);

/* Rows the next tile will read: a kernel asks for them a few lines at a time while it computes. One burst of
 * prefetches for a whole tile before it measured 1.45x slower at 4096 positions: presumably the burst fills the
 * core's queue of outstanding misses and the tile's own loads wait behind it, so memory and arithmetic take turns. */
typedef struct tnd_kv_prefetch {
    const void *k, *v; /* NULL: nothing to ask for */
    size_t bytes;      /* from each of k and v */
} tnd_kv_prefetch;

/* Query heads quantized for scores against a Q8_0 K in integers: per head and block of 32 dimensions, int8 levels
 * (the block's largest magnitude at 127), the block's scale times the softmax scale, and the sum of its levels. The
 * integer dot of a block with K's levels is exact on every kernel set, so only the queries' rounding (as llama.cpp's
 * Q8_0 dots round the activations) separates these scores from float ones. */
typedef struct tnd_attn_q8 {
    const int8_t *levels; /* [head][hd] */
    const float *scale;   /* [head][hd / 32] */
    const int32_t *sum;   /* [head][hd / 32] */
} tnd_attn_q8;

/* Bytes of the quantized form of n_heads heads of hd values (hd a multiple of 32), and the quantizer that fills it
 * (out: that many bytes, 4-aligned) and returns the view of it. */
size_t tnd_cpu_attn_q8_bytes(int32_t n_heads, int32_t hd);
tnd_attn_q8 tnd_cpu_quantize_queries(const float *q, int32_t n_heads, int32_t hd, float scale, void *out);

/* The view of heads from `head` on (an empty view stays empty). */
static inline tnd_attn_q8 tnd_attn_q8_from(tnd_attn_q8 q8, int32_t head, int32_t hd) {
    if (!q8.levels) return q8;
    size_t blocks = (size_t)head * (size_t)(hd / 32);
    return (tnd_attn_q8){q8.levels + (size_t)head * (size_t)hd, q8.scale + blocks, q8.sum + blocks};
}

/* A tile of the cache as kv_store keeps it for attn_tile_stored: F16 (the default type) or Q8_0, K and V alike. K is
 * transposed. F16: the value of dimension d at position j is element d * stride + j of k. Q8_0: the levels (int8)
 * in steps of four dimensions, the four of step i at position j at bytes 4 * (i * stride + j) of k (so that one
 * 32-bit lane holds a position's four products of a dot instruction), and the F16 scale of dimensions 32b..32b+31
 * of position j at k_scales[b * stride + j]; the scores take the queries quantized (q8). F16 V is rows [np][hd].
 * Q8_0 V is in groups of four positions, [np / 4][hd][4] (dimension d of position j at byte 4 * (hd * (j / 4) + d) +
 * j % 4 of v, so that one 32-bit lane holds one dimension of four positions), and the F16 scale of dimensions
 * 32b..32b+31 of position j at v_scales[b * stride + j]: the weights are quantized too, so that V sums in integers
 * (below). A Q8_0 tile starts at a multiple of 4 positions; its last group is read whole, the positions past np with
 * weight 0. */
typedef struct tnd_kv_stored {
    tnd_type type;
    const void *k;
    const uint16_t *k_scales; /* Q8_0 only */
    int32_t stride;
    const void *v;
    const uint16_t *v_scales; /* Q8_0 only */
    tnd_attn_q8 q8; /* Q8_0 only: the call's query heads, quantized */
} tnd_kv_stored;

/* How a Q8_0 V sums in integers: per query head, tile and block of 32 dimensions, each position's weight times its V
 * block's scale (the cache's quantizer writes scales >= 0) becomes an unsigned level, rounded to nearest even, the
 * tile's largest at 127 on AVX2 (where maddubs' int16 pairs must not overflow) or 255 on AVX-512 (vpdpbusd). A
 * level's error is then at most half a level of the tile's largest product, about what V's own 8-bit levels cost. A
 * weight or scale that is not finite makes the block's outputs NaN, as float sums would. */
enum { TND_ATTN_V_LEVELS_AVX2 = 127, TND_ATTN_V_LEVELS_AVX512 = 255 };

/* How an attention tile's K and V values are stored, for the kernel files: float rows (decoded), or the cache's own
 * F16 or Q8_0 (tnd_kv_stored). */
typedef enum tnd_kv_kind { TND_KV_FLOAT, TND_KV_F16, TND_KV_Q8_0 } tnd_kv_kind;

/* A kernel file's float entry (tnd_attn_tile_fn), declared by `head` (e.g. static void attn_tile), over the same body
 * for float rows (TND_KV_FLOAT), STEP heads at a time; a head size that takes(hd) refuses, or more positions than
 * a tile, go to `fallback` (a tnd_attn_tile_fn). */
#define TND_CPU_ATTN_TILE_FLOAT(head, body, STEP, takes, fallback)                                                     \
    head(const float *q, int32_t rep, int32_t hd, const float *k, const float *v, int32_t np, float scale, float *mx,  \
         float *sum, float *acc) {                                                                                     \
        if (!takes(hd) || np > TND_CPU_ATTN_TILE_MAX) {                                                                \
            fallback(q, rep, hd, k, v, np, scale, mx, sum, acc);                                                       \
            return;                                                                                                    \
        }                                                                                                              \
        for (int32_t r = 0; r < rep; r += (STEP)) /* each head's arithmetic is its own: the split changes no bit */    \
            body(q + (size_t)r * hd, rep - r < (STEP) ? rep - r : (STEP), hd, k, v, NULL, np, scale, mx + r, sum + r,  \
                 acc + (size_t)r * hd, TND_KV_FLOAT, NULL);                                                            \
    }

/* A kernel file's attn_tile_stored over its always-inline body(q, rep, hd, k_rows, v_rows, kv, np, scale, mx, sum,
 * acc, kind, next), STEP heads at a time (each head's arithmetic is its own, so the split changes no bit), the body
 * compiled for each stored kind; only the first call asks for the next tile. */
#define TND_CPU_ATTN_TILE_STORED(body, STEP)                                                                           \
    static void attn_tile_stored(const float *q, int32_t rep, int32_t hd, const tnd_kv_stored *kv, int32_t np,        \
                                 float scale, float *mx, float *sum, float *acc, const tnd_kv_prefetch *next) {        \
        for (int32_t r = 0; r < rep; r += (STEP)) {                                                                    \
            int32_t n = rep - r < (STEP) ? rep - r : (STEP);                                                           \
            const float *qr = q + (size_t)r * hd;                                                                      \
            float *ar = acc + (size_t)r * hd;                                                                          \
            if (kv->type == TND_TYPE_Q8_0) {                                                                           \
                tnd_kv_stored heads = *kv;                                                                             \
                heads.q8 = tnd_attn_q8_from(kv->q8, r, hd);                                                            \
                body(qr, n, hd, NULL, NULL, &heads, np, scale, mx + r, sum + r, ar, TND_KV_Q8_0, r ? NULL : next);    \
            } else                                                                                                     \
                body(qr, n, hd, NULL, NULL, kv, np, scale, mx + r, sum + r, ar, TND_KV_F16, r ? NULL : next);         \
        }                                                                                                              \
    }

/* The tile straight from such a cache: the kernel decodes in registers (no float copy) and, with K transposed, every
 * score is a full-vector multiply-add with no shuffles (that transpose cost the float entry ~40% of its score work).
 * Same bits as attn_tile on the decoded rows. Called only for a type and head size that attn_tile_stored_takes
 * accepts, any rep, np <= TND_CPU_ATTN_TILE_MAX. next (or NULL) names the rows of the next tile, requested while
 * this one computes; it never changes a result. */
typedef void (*tnd_attn_tile_stored_fn)(const float *q, int32_t rep, int32_t hd, const tnd_kv_stored *kv, int32_t np,
                                        float scale, float *mx, float *sum, float *acc, const tnd_kv_prefetch *next);

typedef struct tnd_cpu_vec {
    tnd_attn_tile_fn attn_tile;
    tnd_attn_tile_stored_fn attn_tile_stored; /* optional (NULL: rows are decoded for attn_tile) */
    void (*swiglu)(const float *gate, const float *up, float *out, int64_t n); /* out = silu(gate) * up */
    bool (*attn_tile_stored_takes)(tnd_type type, int32_t head_dim); /* set with attn_tile_stored */
    /* Runs of each KV cache type decoded to float, for the attention tiles of a cache that attn_tile_stored does not
     * read as stored (a Q4_0 one, or a pair of K and V types the entry does not take together). The reference
     * table holds the types' own decoders; an ISA file replaces those it does faster, with the same bits. */
    tnd_to_float_fn to_float[TND_TYPE_COUNT];
    /* The other way, for the KV store: float rows encoded in a cache type, with the type's own bits (the reference
     * table holds the types' encoders; an ISA file replaces those it does faster). */
    tnd_from_float_fn from_float[TND_TYPE_COUNT];
} tnd_cpu_vec;

typedef struct tnd_cpu_kernels {
    tnd_cpu_dot dot[TND_TYPE_COUNT]; /* dot == NULL: the type has no fast path (the float reference path runs) */
    tnd_cpu_vec vec;
} tnd_cpu_kernels;

/* Fills `k` with the scalar entries only. */
void tnd_cpu_kernels_reference(tnd_cpu_kernels *k);

/* Fills `k` with the best entries for `features`. */
void tnd_cpu_kernels_best(tnd_cpu_kernels *k, const tnd_cpu_features *features);

/* The instruction sets with a kernel file, best last within an architecture. */
typedef enum tnd_cpu_isa {
    TND_ISA_REF,
    TND_ISA_AVX2,
    TND_ISA_AVXVNNI, /* AVX2 with VEX-encoded VNNI */
    TND_ISA_AVX512,
    TND_ISA_NEON,
    TND_ISA_COUNT
} tnd_cpu_isa;

/* "ref", "avx2", "avxvnni", "avx512", "neon". */
const char *tnd_cpu_isa_name(tnd_cpu_isa isa);

/* Fills `k` with the entries of `isa` over those of the sets before it; false if this build or `features` lacks
 * it (tests check every set the machine has, not only the best). */
bool tnd_cpu_kernels_for(tnd_cpu_kernels *k, tnd_cpu_isa isa, const tnd_cpu_features *features);

/* ISA files: override the entries they implement. Declared for every build; defined only where compiled. */
void tnd_cpu_kernels_avx2(tnd_cpu_kernels *k);
void tnd_cpu_kernels_avxvnni(tnd_cpu_kernels *k);
void tnd_cpu_kernels_avx512(tnd_cpu_kernels *k);
void tnd_cpu_kernels_neon(tnd_cpu_kernels *k);

#endif
