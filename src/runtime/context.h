/* context.h: an inference context: the devices and placement plan, the KV cache, per-device activation buffers,
 * and the logits of the last batch. */
#ifndef TND_RUNTIME_CONTEXT_H
#define TND_RUNTIME_CONTEXT_H

#include "model/arch.h"
#include "model/model.h"
#include "runtime/kv_cache.h"

enum {
    TND_MAX_STAGES = 16,
    /* Rows of logits the output head computes at once. A context keeps logits only for the rows a batch asks for
     * (n_batch x n_vocab floats would be 311 MB at batch 512 and a 152k vocabulary, twice: device and host), and
     * the head's matmul is as efficient on 32 rows as on 512. */
    TND_LOGITS_CHUNK = 32
};

/* Activation buffers of one device, each sized for n_batch tokens. Shapes are [n_batch][width]. */
typedef struct tnd_activations {
    float *x;        /* residual stream [n_embd] */
    float *xn;       /* normed input / sub-layer output [n_embd] */
    float *q;        /* [n_head * head_dim], also attention output input */
    float *k, *v;    /* [n_head_kv * head_dim] */
    float *attn;     /* attention output [n_head * head_dim] */
    float *gate, *up; /* [n_ff] */
    float *logits;   /* [TND_LOGITS_CHUNK][n_vocab] on the last stage's device: the output head runs in chunks */
} tnd_activations;

/* A contiguous range of layers on one device, with the device's views of those layers' weights. */
typedef struct tnd_stage {
    tnd_backend *device;
    int32_t layer_begin, layer_end; /* [begin, end) */
    tnd_layer *layers;              /* device views, indexed by layer - layer_begin */
    tnd_activations act;
} tnd_stage;

struct tnd_context {
    tnd_model *model;
    const tnd_bound_model *bm;
    tnd_allocator allocator;
    int32_t n_ctx, n_batch, n_seq;
    int32_t n_stages;
    tnd_stage stages[TND_MAX_STAGES];
    tnd_backend *devices[TND_MAX_STAGES]; /* owned; one per stage */
    tnd_weight tok_embd, output;          /* device views: embedding on the first stage, output on the last */
    float *output_norm;                   /* on the last stage's device */
    tnd_rope rope;
    tnd_kv_cache kv;
    /* per-batch scratch (host) */
    int64_t *slots;
    int32_t *n_ctx_of;
    const int32_t **tables;
    int8_t *want;         /* per micro-batch row: logits asked for */
    float *host_x;        /* [n_batch][n_embd]: hand-over between devices */
    float *logits;        /* [logits_cap][n_vocab] host copy of the last batch's requested logits; grown to the
                             rows a batch asks for */
    int32_t n_logits, logits_cap;
};

/* Runs one micro-batch (n <= n_batch tokens whose KV slots, block tables and context lengths are in ctx's
 * scratch) through every stage, writes the logits of rows with want[i] != 0 to logits_out (host, row after row,
 * room for all of them) and returns how many rows it wrote. */
int32_t tnd_forward(tnd_context *ctx, const int32_t *tokens, const int32_t *pos, int32_t n, const int8_t *want,
                    float *logits_out);

#endif
