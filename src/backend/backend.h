/* backend.h: the device interface. Model code is written against these operations; every device (CPU now; GPU,
 * NPU and remote later) provides one vtable. Device memory is opaque: buffers the device allocates (tnd_buffer, whose
 * contents only the device reads), and tensor views into them (tnd_tensor: buffer, offset, type, shape, stride).
 * Activations, KV pools, norm and bias vectors and prepared weights passed to an op must be that device's.
 *
 * The protocol of a forward step on a device:
 *   begin_step(batch metadata)  once per step: token count, positions, KV slots, block tables (a GPU uploads them
 *                               once instead of once per op and layer)
 *   ops...                      enqueued in order on the device's stream; they return nothing
 *   synchronize()               waits for the ops and returns the first failure since the last synchronize
 * Ops may run at once (the CPU does) or later (a GPU); their outputs may be read only after synchronize. An op that
 * cannot do its work (no memory, an unsupported case, a lost device) records the failure, with a message, and
 * leaves its output undefined; it never writes zeros and carries on as if it had worked. The caller then discards
 * the step (the KV rows of the step are cut back, so every sequence is as before).
 *
 * Conventions of every op: activations are F32 views, one row per token ([n_tokens][width]); a view may also cut
 * rows into heads ([n_tokens * n_heads][head_dim]). Argument validation happens before (in the model and the KV
 * cache), so a device may assume shapes are consistent with what supports() accepted. */
#ifndef TND_BACKEND_BACKEND_H
#define TND_BACKEND_BACKEND_H

#include "core/error.h"
#include "tandem.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A block of device memory; what it holds is the device's business. */
typedef struct tnd_buffer tnd_buffer;

/* A view of ne1 rows of ne0 elements of `type` in a buffer: row r starts at offset + r * row_bytes. */
typedef struct tnd_tensor {
    tnd_buffer *buf;
    size_t offset;
    tnd_type type;
    int64_t ne0, ne1;
    size_t row_bytes;
} tnd_tensor;

/* A view of `rows` contiguous F32 rows of `width` floats, starting `first_row` rows into buf. */
static inline tnd_tensor tnd_rows_f32(tnd_buffer *buf, int64_t width, int64_t first_row, int64_t rows) {
    size_t row_bytes = sizeof(float) * (size_t)width;
    return (tnd_tensor){buf, (size_t)first_row * row_bytes, TND_TYPE_F32, width, rows, row_bytes};
}

/* The same for I32 rows (expert ids). */
static inline tnd_tensor tnd_rows_i32(tnd_buffer *buf, int64_t width, int64_t first_row, int64_t rows) {
    size_t row_bytes = sizeof(int32_t) * (size_t)width;
    return (tnd_tensor){buf, (size_t)first_row * row_bytes, TND_TYPE_I32, width, rows, row_bytes};
}

/* A weight matrix as a device sees it: n_rows rows of n_cols elements of `type`, row r at data + r * row_bytes.
 * The host view points into the model file's mapping; a device view is what prepare_weight made, and its data and
 * buf mean what that device says (the CPU's data points at the rows: the mapping or its packed copy; a GPU would
 * keep its upload in buf). Model code passes weights to ops and never reads through them. */
typedef struct tnd_weight {
    tnd_type type;
    int64_t n_cols;   /* ne[0]: the reduction dimension of a matmul */
    int64_t n_rows;   /* ne[1]: output features */
    size_t row_bytes;
    const void *data;
    tnd_buffer *buf;   /* a device's own storage of the weight, or NULL */
    bool lookup_only;  /* only rows are looked up (an embedding table), never multiplied: kept as it is */
    int32_t row_group; /* set by the device: rows stored in interleaved groups of this many (0: one after another) */
    int32_t n_experts; /* > 1: the experts of a mixture-of-experts layer stacked along the rows (a 3-D tensor
                          [n_cols, n_rows / n_experts, n_experts]), expert e's rows from e * n_rows / n_experts on */
    bool writable;     /* asked of prepare_weight: the device keeps a copy of its own that update_weight may
                          rewrite (a cache of hot experts), never a view of the file's mapping */
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
    tnd_tensor freq_factors;     /* n_rot/2 divisors (Llama 3 rope_freqs), or buf NULL for none */
} tnd_rope;

/* The batch metadata of one forward step (host memory, valid until the step's synchronize). Token t has position
 * pos[t]; its K and V rows go to KV slot slots[t] (block * block_size + row in the block); it attends causally to
 * positions [0, n_ctx[t]) of its sequence, found through block_tables[t]: position p lives in block
 * block_tables[t][p / block_size], row p % block_size. */
typedef struct tnd_step {
    int64_t n_tokens;
    const int32_t *pos;                  /* [n_tokens] */
    const int64_t *slots;                /* [n_tokens] */
    const int32_t *const *block_tables;  /* [n_tokens]: the block table of the token's sequence */
    const int32_t *n_ctx;                /* [n_tokens]: positions the token sees (its position + 1) */
    int32_t block_size;
} tnd_step;

/* Attention of the step's tokens over one layer of the paged KV cache, through the step's block tables (see
 * tnd_step). Grouped-query attention: query head h uses KV head h / (n_head / n_head_kv). */
typedef struct tnd_attention_args {
    tnd_tensor q;                 /* [n_tokens][n_head * head_dim], rope applied */
    tnd_tensor out;               /* [n_tokens][n_head * head_dim] */
    int32_t n_head, n_head_kv, head_dim;
    float scale;                  /* usually 1/sqrt(head_dim) */
    tnd_buffer *k_pool, *v_pool;  /* this layer's blocks: [n_blocks][block_size][n_head_kv * head_dim] */
    tnd_type k_type, v_type;      /* each F32, F16, Q8_0 or Q4_0 */
} tnd_attention_args;

/* How a mixture-of-experts router turns a token's logits over the experts into the experts it uses and their
 * weights: softmax over all experts, the n_used largest chosen (ties to the lower index, in descending order of
 * weight), their probabilities renormalised to sum 1 where `normalize` (Mixtral, Qwen 3 MoE) or kept as they are
 * (Qwen 2 MoE, OLMoE). */
typedef struct tnd_moe_route_args {
    tnd_tensor logits;   /* [n_tokens][n_experts] router outputs */
    tnd_tensor ids;      /* out: I32 [n_tokens][n_used] the chosen experts */
    tnd_tensor weights;  /* out: F32 [n_tokens][n_used] their weights */
    int32_t n_used;
    bool normalize;
} tnd_moe_route_args;

/* The most weights one matmul_many or matmul_experts call takes. */
enum { TND_MAX_FUSED = 4 };

/* The operations, for supports(). */
typedef enum tnd_op {
    TND_OP_EMBED,
    TND_OP_MATMUL,
    TND_OP_RMS_NORM,
    TND_OP_ADD,
    TND_OP_ADD_BIAS,
    TND_OP_SWIGLU,
    TND_OP_ROPE,
    TND_OP_COPY,
    TND_OP_KV_STORE,
    TND_OP_ATTENTION,
    TND_OP_MOE_ROUTE,
    TND_OP_MATMUL_EXPERTS,
    TND_OP_MOE_COMBINE,
    TND_OP_SIGMOID_SCALE,
    TND_OP_COUNT
} tnd_op;

/* What a planner asks a device before giving it work. */
typedef struct tnd_op_query {
    tnd_op op;
    tnd_type type;                  /* the weight type (embed, matmul, matmul_experts) or the K type (kv_store,
                                       attention) */
    tnd_type v_type;                /* the V type (kv_store, attention) */
    int32_t n_head, n_head_kv, head_dim; /* attention and kv_store */
} tnd_op_query;

/* Where a device's time went: the two ops that bound a step, their seconds and the bytes they read (the weights of
 * a matmul; the K and V rows attention reads, counted once per query block). */
typedef struct tnd_device_profile {
    double matmul_seconds, attention_seconds;
    uint64_t matmul_bytes, attention_bytes;
    /* a remote device's stages: from the device's send to the answer, and what the far side says it computed */
    double link_seconds, link_compute_seconds;
    uint64_t link_stages;
} tnd_device_profile;

typedef struct tnd_backend tnd_backend;

typedef struct tnd_backend_vtable {
    /* Releases the device and everything it allocated. */
    void (*destroy)(tnd_backend *b);

    /* ---- what the device is and can do ---- */
    /* Whether the device can run `q` (an op with a weight or KV type, and head counts for attention). A planner
     * routes what one device lacks to another. */
    bool (*supports)(tnd_backend *b, const tnd_op_query *q);
    /* Memory of the device in bytes: *total, and *available for tandem now. */
    void (*memory)(tnd_backend *b, uint64_t *total, uint64_t *available);
    /* The largest buffer the device can use at once, in bytes (a GPU's binding limit); a planner keeps larger tensors
     * and KV pools elsewhere. Optional: NULL = no limit but memory. */
    uint64_t (*max_buffer)(tnd_backend *b);
    /* The speed at which the device reads its own memory, in bytes per second, measured now (it takes about a
     * second; callers keep the figure); 0 when it cannot be measured. A planner's estimate of the time a token
     * takes on the device is the bytes it reads divided by this. */
    double (*measure_bandwidth)(tnd_backend *b);
    /* A short description of how the device computes ("avx512 kernels, 2 threads"), NUL-terminated into buf. */
    void (*describe)(tnd_backend *b, char *buf, size_t cap);
    /* Adds the device's profile since it was made or last reset to *out; reset != 0 then zeroes it. Optional: NULL =
     * the device does not measure. */
    void (*profile)(tnd_backend *b, tnd_device_profile *out, int reset);
    /* on: the device runs its work on the calling thread alone, its own worker threads resting, so that a thread of
     * low priority can use it with spare CPU time only (tnd_context_set_background). Optional: NULL = a device whose
     * work does not take the host's cores. */
    void (*set_background)(tnd_backend *b, bool on);

    /* ---- memory ---- */
    /* A buffer of `bytes` (zeroed), or NULL. */
    tnd_buffer *(*alloc)(tnd_backend *b, size_t bytes);
    void (*free)(tnd_backend *b, tnd_buffer *buf);
    /* Copies between host memory and bytes [offset, offset + bytes) of a buffer, in order with the ops (read waits
     * for the ops before it). */
    void (*write)(tnd_backend *b, tnd_buffer *dst, size_t offset, const void *host_src, size_t bytes);
    void (*read)(tnd_backend *b, void *host_dst, const tnd_buffer *src, size_t offset, size_t bytes);
    /* Copies src (this device's) into dst on device `to` directly, where the two devices can (another instance of
     * the same kind, or peers on one bus); returns false when they cannot, and the caller goes through host memory
     * (read, then write). The copy is ordered after this device's ops. Optional: NULL = never directly. */
    bool (*copy_to)(tnd_backend *b, const tnd_tensor *src, tnd_backend *to, const tnd_tensor *dst);
    /* Makes a weight stored in host memory (the file mapping) usable by this device. *out is the device's view;
     * release_weight undoes it. A CPU keeps the mapping or packs its own copy; a GPU uploads.
     * TND_ERR_UNSUPPORTED (a type it cannot compute with), TND_ERR_OUT_OF_MEMORY. */
    tnd_status (*prepare_weight)(tnd_backend *b, const tnd_weight *host, tnd_weight *out);
    void (*release_weight)(tnd_backend *b, tnd_weight *w);
    /* Rewrites rows [row0, row0 + host->n_rows) of a weight this device prepared with `writable` from the host rows
     * `host` (same type and n_cols; row0 and the count whole experts of w), as prepare_weight would have stored
     * them, ordered after the ops enqueued before it (a slot of a hot-expert cache takes another expert). Optional:
     * NULL = the device keeps no cache of experts. TND_ERR_INVALID_ARGUMENT (rows out of range, another type). */
    tnd_status (*update_weight)(tnd_backend *b, tnd_weight *w, int64_t row0, const tnd_weight *host);
    /* Readies the device for matmuls of up to max_tokens rows of up to max_cols inputs (scratch for converted
     * activations). Called once per context before any op. TND_ERR_OUT_OF_MEMORY. */
    tnd_status (*reserve)(tnd_backend *b, int64_t max_cols, int64_t max_tokens);

    /* ---- a step ---- */
    /* Takes the step's batch metadata (see tnd_step): the ops until synchronize work on these tokens. */
    void (*begin_step)(tnd_backend *b, const tnd_step *step);
    /* Waits for the ops enqueued so far; returns TND_OK or the first failure since the last synchronize (with its
     * message recorded), and forgets it. */
    tnd_status (*synchronize)(tnd_backend *b);

    /* ---- ops (enqueued; failures reach synchronize) ---- */
    /* out row i = row ids[i] of `table` converted to float, for the out->ne1 rows; ids are host memory. */
    void (*embed)(tnd_backend *b, const tnd_weight *table, const int32_t *ids, const tnd_tensor *out);
    /* y[t][r] = sum_c w[r][c] * x[t][c]: x is [n_tokens][w->n_cols], y [n_tokens][w->n_rows], n_tokens = x->ne1. */
    void (*matmul)(tnd_backend *b, const tnd_weight *w, const tnd_tensor *x, const tnd_tensor *y);
    /* y[i] = w[i] x for n <= TND_MAX_FUSED weights of one input (the q, k and v projections; a SwiGLU's gate and
     * up): the same results as n matmuls, as one piece of work (a device converts x once and keeps every thread
     * streaming across the weights, rather than waiting at the end of each). */
    void (*matmul_many)(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *x,
                        const tnd_tensor *const *y);
    /* y[r] = x[r] / rms(x[r]) * gamma for each row r of x (y may be x; gamma has x->ne0 elements). */
    void (*rms_norm)(tnd_backend *b, const tnd_tensor *x, const tnd_tensor *gamma, const tnd_tensor *y, float eps);
    /* y += x, element by element (same shapes). */
    void (*add)(tnd_backend *b, const tnd_tensor *y, const tnd_tensor *x);
    /* y[r][i] += bias[i] for every row r of y. */
    void (*add_bias)(tnd_backend *b, const tnd_tensor *y, const tnd_tensor *bias);
    /* out = silu(gate) * up, element by element (out may be gate). */
    void (*swiglu)(tnd_backend *b, const tnd_tensor *gate, const tnd_tensor *up, const tnd_tensor *out);
    /* Rotates x in place: [step n_tokens][n_heads * rope->head_dim], token t at the step's position pos[t]. */
    void (*rope)(tnd_backend *b, const tnd_tensor *x, int32_t n_heads, const tnd_rope *rope);
    /* Copies the rows of src to dst (same shapes; the regions do not overlap). */
    void (*copy)(tnd_backend *b, const tnd_tensor *dst, const tnd_tensor *src);
    /* Stores the step's k and v rows ([n_tokens][width], width = heads * head_dim) into the pools at the step's
     * slots, converting to k_type and v_type. A block holds block_size positions of every head in width * block_size
     * elements; the order inside a block is the device's (the CPU keeps each head's positions together,
     * [head][position][head_dim], so attention reads one run per head, and an F16 K transposed,
     * [head][head_dim][position], where its attention kernel reads it so). */
    void (*kv_store)(tnd_backend *b, tnd_buffer *k_pool, tnd_buffer *v_pool, tnd_type k_type, tnd_type v_type,
                     const tnd_tensor *k, const tnd_tensor *v, int32_t head_dim);
    /* Copies whole KV blocks src[i] -> dst[i] of one pool (copy-on-write of shared blocks); src and dst are host
     * memory. Outside steps. */
    void (*kv_copy_blocks)(tnd_backend *b, tnd_buffer *pool, size_t block_bytes, const int32_t *src,
                           const int32_t *dst, int32_t n);
    /* Paged causal attention of the step's tokens (see tnd_attention_args). */
    void (*attention)(tnd_backend *b, const tnd_attention_args *args);

    /* ---- mixture-of-experts ops (a device without them returns false from supports for them) ---- */
    /* The router's choice of experts for each token (see tnd_moe_route_args). */
    void (*moe_route)(tnd_backend *b, const tnd_moe_route_args *args);
    /* The chosen experts' matmuls, for n <= TND_MAX_FUSED stacked expert weights of one input (gate and up): for
     * token t and its slot j (ids: I32 [n_tokens][n_used]), y[i][t * n_used + j] = expert ids[t][j] of w[i]
     * (w[i]->n_experts stacked, see tnd_weight) times x's row, where x is [n_tokens][n_cols] (one input per token:
     * gate and up) or [n_tokens * n_used][n_cols] (one per slot: down); y[i] is
     * [n_tokens * n_used][w[i]->n_rows / w[i]->n_experts]. An id of -1 skips its pair: its rows of y are zeros
     * (the pairs of a layer whose experts two devices share, each computing its own). Each expert's rows are read
     * once for all the tokens that chose it, and a row's result does not depend on the batch it is computed in. */
    void (*matmul_experts)(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *x,
                           const tnd_tensor *ids, const tnd_tensor *const *y);
    /* y[t] += sum over j (in order) of weights[t][j] * experts[t * n_used + j]: the experts' outputs
     * ([n_tokens * n_used][width]) weighed into the residual stream y ([n_tokens][width]). */
    void (*moe_combine)(tnd_backend *b, const tnd_tensor *experts, const tnd_tensor *weights, const tnd_tensor *y);
    /* y[t][i] *= 1 / (1 + exp(-g[t])) for every row t of y, g being [n_tokens][1] (a shared expert's gate). */
    void (*sigmoid_scale)(tnd_backend *b, const tnd_tensor *y, const tnd_tensor *g);

    /* ---- a whole stage (optional) ---- */
    /* Runs tensor groups [group_begin, group_end) (whole layers) of the model the device holds itself on the
     * step's residual stream x (host memory, [n_tokens][n_embd], replaced by the result), after begin_step; returns
     * the status at once (it synchronizes). A device that holds the weights itself (a cloud server) takes a stage in
     * one call, one round trip; its other ops then never run. NULL: the stage runs op by op. */
    tnd_status (*run_stage)(tnd_backend *b, int32_t group_begin, int32_t group_end, float *x);
    /* Optional, with run_stage: its two halves, so that the forward pass keeps several slices of a long step in
     * flight (a pipelined prefill: this machine works on one slice while the device works on another and a third is
     * on the wire). stage_send takes the slice given to begin_step and its residual stream x and returns without
     * waiting; stage_recv waits for the oldest slice sent and writes its result into x (that slice's rows). */
    tnd_status (*stage_send)(tnd_backend *b, int32_t group_begin, int32_t group_end, const float *x);
    tnd_status (*stage_recv)(tnd_backend *b, float *x);
} tnd_backend_vtable;

/* What every update_weight checks first: rows [row0, row0 + host->n_rows) of w are whole experts, within w, and host
 * has w's type and width. TND_ERR_INVALID_ARGUMENT (naming the device) where not. */
static inline tnd_status tnd_weight_update_check(const char *device, const tnd_weight *w, int64_t row0,
                                                 const tnd_weight *host) {
    int64_t expert_rows = w->n_rows / (w->n_experts > 1 ? w->n_experts : 1);
    if (host->type == w->type && host->n_cols == w->n_cols && row0 >= 0 && host->n_rows > 0 &&
        row0 + host->n_rows <= w->n_rows && row0 % expert_rows == 0 && host->n_rows % expert_rows == 0)
        return TND_OK;
    return tnd_fail(TND_ERR_INVALID_ARGUMENT, "%s: update_weight of rows %lld to %lld of a %s weight of %lld rows "
                    "from %lld rows of %s (whole experts of %lld rows, the same type and width)", device,
                    (long long)row0, (long long)(row0 + host->n_rows), tnd_type_name(w->type), (long long)w->n_rows,
                    (long long)host->n_rows, tnd_type_name(host->type), (long long)expert_rows);
}

struct tnd_backend {
    const tnd_backend_vtable *vt;
    char name[32];        /* "cpu0", "cpu1", ... unique within a context */
    void *impl;           /* the device's own state */
};

/* A device that computes nothing here (TND_DEVICE_NONE): no ops, no stage of its own. */
static inline bool tnd_backend_holds_nothing(const tnd_backend *d) { return !d->vt->matmul && !d->vt->run_stage; }

#endif
