/* cpu_device.h: the CPU device's state and the matmul machinery its op files share (cpu_backend.c: the device and
 * the dense ops; cpu_experts.c: the mixture-of-experts ops). Private to src/backend/cpu. */
#ifndef TND_BACKEND_CPU_CPU_DEVICE_H
#define TND_BACKEND_CPU_CPU_DEVICE_H

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/alloc.h"
#include "core/thread_pool.h"

#include <time.h>

enum {
    TND_CPU_CHUNK = 1024,           /* elements of a weight row dequantized at a time (a multiple of every block) */
    TND_CPU_ATTN_MAX_GROUP = 16384, /* floats of per-group attention accumulators (heads per KV head * head_dim) */
    TND_CPU_ATTN_MAX_HEAD = 512,    /* head_dim */
    TND_CPU_ATTN_MAX_REP = 256,     /* query heads per KV head */
    TND_CPU_ATTN_TILE = 64,         /* context positions whose K and V rows are decoded together */
    TND_CPU_ROW_TILE = 32, /* weight rows kept hot while a tile of tokens passes over them (whole packed groups) */
    TND_CPU_TOKEN_TILE = 64,
    TND_CPU_UNIT_BYTES = 16 << 10, /* the least weight bytes of a matmul's work unit (see tnd_cpu_row_unit) */
    TND_CPU_PARALLEL_MIN = 1 << 18 /* multiply-adds below which waking other threads costs more than it saves */
};

typedef struct cpu_device {
    tnd_thread_pool *pool;
    tnd_allocator allocator;
    bool reference;
    tnd_cpu_kernels kernels;
    uint8_t *act; /* converted activations of one matmul: [max_tokens][row bytes] */
    size_t act_cap;
    uint8_t *experts; /* scratch of the experts' matmuls (cpu_experts.c), grown to what a step needs */
    size_t experts_cap;
    float *attn_scratch; /* [threads][ATTN_SCRATCH_FLOATS]: a thread's attention state and decoded K/V tile, kept
                            off the workers' stacks (hundreds of KB; small-stack platforms give threads 1 MiB) */
    int32_t *query_blocks; /* [query_blocks_cap + 1]: the first token of each query block of a step, then the end */
    int64_t query_blocks_cap;
    float *attn_partial; /* the softmax states of each (token, query head, segment) of a step's long contexts */
    size_t attn_partial_cap; /* floats */
    tnd_device_profile prof; /* since made or reset */
    tnd_step step;       /* the current step's batch metadata (begin_step) */
    uint64_t step_serial; /* counts begin_step calls: what the rope table below was made for */
    /* The rotations of the step's tokens ([n_tokens][n_rot / 2] cos, sin pairs) for the rope they were made for:
     * every layer of a model rotates q and k by the same angles, so a step computes them once, not twice a layer. */
    float *rope_table;
    size_t rope_cap; /* floats */
    uint64_t rope_serial;
    tnd_rope rope_of; /* base, scale, n_rot and factors of the table */
    tnd_status failure;  /* the first failure of an op since the last synchronize, and its message */
    char failure_message[256];
} cpu_device;

/* Floats of one thread's attention scratch: the running outputs, maxima and sums of an item's query heads, their
 * queries gathered side by side, a tile of K and of V rows decoded to floats, then the queries quantized for a Q8_0
 * cache (tnd_cpu_quantize_queries: a byte per value and two 4-byte numbers per 32 values). */
enum {
    ATTN_SCRATCH_FLOATS = 2 * TND_CPU_ATTN_MAX_GROUP + 2 * TND_CPU_ATTN_MAX_REP +
                          2 * TND_CPU_ATTN_TILE * TND_CPU_ATTN_MAX_HEAD + TND_CPU_ATTN_MAX_GROUP / 4 +
                          2 * TND_CPU_ATTN_MAX_GROUP / 32,
    ATTN_QUERY_BLOCK = 16, /* most tokens of one sequence that go over the cached prefix together */
    /* Positions of one segment of the context: a token's attention is computed segment by segment, each from a
     * fresh softmax state, and the states merged in order. The segments are work items of their own, so a long
     * context keeps every thread busy when there are fewer KV heads than threads (split-K), and since the math is
     * the same however they are spread, the result does not depend on the thread count or the batch. */
    ATTN_SEGMENT = 2048
};

static inline cpu_device *dev(tnd_backend *b) { return (cpu_device *)b->impl; }

static inline double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The CPU's buffers are host memory: a tnd_buffer pointer is the address of its bytes, and a tensor's data is
 * that address plus its offset. The ops take contiguous views (row_bytes = ne0 elements), as the model makes. */
static inline float *f32(const tnd_tensor *t) { return (float *)(void *)((uint8_t *)t->buf + t->offset); }

/* Records the failure of an op for synchronize (the first one counts). */
void tnd_cpu_op_failed(tnd_backend *b, tnd_status status, const char *message);

/* One product of weight rows by converted activations: rows row0 + [r0, r1) of w times the n_tokens activation rows
 * act + t * act_row (converted by k->quantize_act), into y[t * ldy + r] for r in [r0, r1). Rows in a packed group
 * (w->row_group) must start at a group's first row. Each result equals k's dot, whatever the tile it was in. */
typedef struct tnd_cpu_product {
    const tnd_weight *w;
    const tnd_cpu_dot *k;
    int64_t row0;
    const uint8_t *act;
    size_t act_row;
    int64_t n_tokens;
    float *y;
    size_t ldy;
} tnd_cpu_product;

void tnd_cpu_product_rows(const tnd_cpu_product *p, int64_t r0, int64_t r1);

/* The reference: rows row0 + [r0, r1) of w dequantized to float, times float activations x[t] (n_cols apart), into
 * y[t * ldy + r]. */
void tnd_cpu_product_rows_ref(const tnd_weight *w, int64_t row0, const float *x, int64_t n_tokens, float *y,
                              size_t ldy, int64_t r0, int64_t r1);

/* Whether the matmul of w runs the reference path (float activations): the reference device, or a type without a
 * kernel. */
bool tnd_cpu_reference_path(const cpu_device *d, const tnd_weight *w);

/* Whether weights a and b take their input in the same converted form, so one conversion serves both. */
bool tnd_cpu_same_input(const cpu_device *d, const tnd_weight *a, const tnd_weight *b);

/* Splits n weights of one input (and their outputs y) into groups whose members `joinable` says can be one job (each
 * group formed from its first weight, in order) and calls run on each group. */
typedef bool (*tnd_cpu_joinable_fn)(const cpu_device *d, const tnd_weight *a, const tnd_weight *b);
typedef void (*tnd_cpu_group_fn)(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *const *y,
                                 void *ctx);
void tnd_cpu_for_groups(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *const *y,
                        tnd_cpu_joinable_fn joinable, tnd_cpu_group_fn run, void *ctx);

/* Rows per work unit of a matmul whose rows take row_bytes each (a multiple of TND_CPU_ROW_TILE). */
int64_t tnd_cpu_row_unit(size_t row_bytes);

/* The ops of cpu_experts.c. */
void tnd_cpu_moe_route(tnd_backend *b, const tnd_moe_route_args *args);
void tnd_cpu_matmul_experts(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *x,
                            const tnd_tensor *ids, const tnd_tensor *const *y);
void tnd_cpu_moe_combine(tnd_backend *b, const tnd_tensor *experts, const tnd_tensor *weights, const tnd_tensor *y);
void tnd_cpu_sigmoid_scale(tnd_backend *b, const tnd_tensor *y, const tnd_tensor *g);

#endif
