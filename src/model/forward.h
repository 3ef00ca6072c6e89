/* forward.h: what a forward pass runs on: the stages (each a device with a contiguous range of layers and the
 * device's views of their weights), the output head, and each layer's KV pools. The context builds it (placement,
 * buffers, KV cache); the model code runs it and knows nothing else of the context. */
#ifndef TND_MODEL_FORWARD_H
#define TND_MODEL_FORWARD_H

#include "model/arch.h"

enum {
    TND_MAX_STAGES = 16,
    /* Rows of logits the output head computes at once. A context keeps logits only for the rows a batch asks for
     * (n_batch x n_vocab floats would be 311 MB at batch 512 and a 152k vocabulary, twice: device and host), and
     * the head's matmul is as efficient on 32 rows as on 512. */
    TND_LOGITS_CHUNK = 32
};

/* Activation buffers of one device, each holding n_batch rows: [n_batch][width]. */
typedef struct tnd_activations {
    tnd_buffer *x;      /* residual stream [n_embd] */
    tnd_buffer *xn;     /* normed input / sub-layer output [n_embd] */
    tnd_buffer *q;      /* [n_head * head_dim] */
    tnd_buffer *k, *v;  /* [n_head_kv * head_dim] */
    tnd_buffer *attn;   /* attention output [n_head * head_dim] */
    tnd_buffer *gate, *up; /* [n_ff] */
    tnd_buffer *logits; /* [TND_LOGITS_CHUNK][n_vocab] on the last stage's device: the output head runs in chunks */
} tnd_activations;

/* A layer as one device holds it: its views of the weights, and the small vectors in its memory (NULL where the
 * architecture has none; shapes as in tnd_layer). */
typedef struct tnd_device_layer {
    tnd_weight wq, wk, wv, wo, w_gate, w_up, w_down;
    tnd_buffer *attn_norm, *ffn_norm;
    tnd_buffer *bq, *bk, *bv;
    tnd_buffer *q_norm, *k_norm;
} tnd_device_layer;

/* A contiguous range of layers on one device. */
typedef struct tnd_stage {
    tnd_backend *device;
    int32_t layer_begin, layer_end; /* [begin, end) */
    tnd_device_layer *layers;       /* indexed by layer - layer_begin */
    tnd_rope rope;                  /* its freq_factors in this device's memory */
    tnd_activations act;
} tnd_stage;

typedef struct tnd_forward {
    const tnd_hparams *hp;
    int32_t n_stages;
    tnd_stage stages[TND_MAX_STAGES];
    tnd_weight tok_embd, output;     /* device views: the embedding on the first stage, the head on the last */
    tnd_buffer *output_norm;         /* [n_embd] on the last stage's device */
    tnd_buffer *const *k_pool, *const *v_pool; /* [n_layer]: each layer's KV pools, on its stage's device */
    tnd_type kv_type;
    float *host_x;                   /* [n_batch][n_embd]: the hand-over between devices (several stages only) */
} tnd_forward;

/* Runs one micro-batch (step->n_tokens <= n_batch tokens, their KV rows reserved at step->slots) through every
 * stage, then the output head for the rows with want[i] != 0, whose logits go to logits_out (host, row after row,
 * room for all of them); *n_out receives their count. Returns TND_OK or the first failure a device reported (the
 * logits and the step's KV rows are then not to be used). */
tnd_status tnd_forward_run(const tnd_forward *fw, const tnd_step *step, const int32_t *tokens, const int8_t *want,
                           float *logits_out, int32_t *n_out);

#endif
