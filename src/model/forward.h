/* forward.h: what a forward pass runs on: the devices, where each tensor group lives (embedding, each layer's
 * attention and feed-forward, output head), the stages that follow from that, the devices' views of the weights and
 * each layer's KV pools. The context builds it (placement,
 * buffers, KV cache); the model code runs it and knows nothing else of the context. */
#ifndef TND_MODEL_FORWARD_H
#define TND_MODEL_FORWARD_H

#include "model/arch.h"

enum {
    TND_MAX_DEVICES = 16,
    /* Rows of logits the output head computes at once. A context keeps logits only for the rows a batch asks for
     * (n_batch x n_vocab floats would be 311 MB at batch 512 and a 152k vocabulary, twice: device and host), and
     * the head's matmul is as efficient on 32 rows as on 512. */
    TND_LOGITS_CHUNK = 32
};

/* The tensor groups a plan places, in forward order (see tnd_model_group in tandem.h): the embedding, then each
 * layer's attention (with its KV cache) and feed-forward, then the output head. */
static inline int32_t tnd_group_count(int32_t n_layer) { return 2 * n_layer + 2; }
static inline int32_t tnd_group_attention(int32_t layer) { return 1 + 2 * layer; }
static inline int32_t tnd_group_ffn(int32_t layer) { return 2 + 2 * layer; }
static inline int32_t tnd_group_output(int32_t n_layer) { return 2 * n_layer + 1; }

/* Activation buffers of one device, each holding n_batch rows: [n_batch][width]. */
typedef struct tnd_activations {
    tnd_buffer *x;      /* residual stream [n_embd] */
    tnd_buffer *xn;     /* normed input / sub-layer output [n_embd] */
    tnd_buffer *q;      /* [n_head * head_dim] */
    tnd_buffer *k, *v;  /* [n_head_kv * head_dim] */
    tnd_buffer *attn;   /* attention output [n_head * head_dim] */
    tnd_buffer *gate, *up; /* [n_ff], or [n_ff_shexp] for a shared expert */
    /* mixture-of-experts blocks only (else NULL) */
    tnd_buffer *router;          /* [n_expert] the router's logits */
    tnd_buffer *expert_ids;      /* I32 [n_expert_used] the chosen experts */
    tnd_buffer *expert_weights;  /* [n_expert_used] their weights */
    tnd_buffer *expert_gate, *expert_up; /* [n_expert_used][n_ff_exp] */
    tnd_buffer *expert_out;      /* [n_expert_used][n_embd] */
    tnd_buffer *shared_gate;     /* [1] the shared expert's gate logit */
    tnd_buffer *expert_far;      /* [n_expert_used][n_embd] the experts' outputs from the device where they live
                                    (a device whose layers keep a cache of experts only; else NULL) */
    tnd_buffer *logits; /* [TND_LOGITS_CHUNK][n_vocab] on the last stage's device: the output head runs in chunks */
} tnd_activations;

/* A layer as one device holds it: its views of the weights, and the small vectors in its memory (NULL where the
 * architecture has none; shapes as in tnd_layer). */
typedef struct tnd_device_layer {
    tnd_weight wq, wk, wv, wo, w_gate, w_up, w_down;
    tnd_weight router, gate_exps, up_exps, down_exps, gate_shexp, up_shexp, down_shexp, shexp_gate;
    /* experts apart (tnd_experts_apart): the *_exps on tnd_forward.expert_device, and here the cache's copies of
     * some of them (n_experts = its slots; data NULL without a cache) */
    tnd_weight gate_cache, up_cache, down_cache;
    tnd_buffer *attn_norm, *ffn_norm;
    tnd_buffer *bq, *bk, *bv;
    tnd_buffer *q_norm, *k_norm;
} tnd_device_layer;

/* A long step through a device that takes slices in flight (a cloud: stage_send / stage_recv) goes in slices of
 * this many tokens, at most this many of them sent and not yet back. */
enum { TND_PIPELINE_SLICE = 32, TND_PIPELINE_DEPTH = 6 };

/* A maximal run of consecutive groups on one device: the forward pass hands the residual stream over between
 * stages. */
typedef struct tnd_stage {
    int32_t device;                 /* index into tnd_forward.devices */
    int32_t group_begin, group_end; /* [begin, end) */
} tnd_stage;

typedef struct tnd_forward {
    const tnd_arch *arch;
    const tnd_hparams *hp;
    int32_t n_devices;
    tnd_backend *devices[TND_MAX_DEVICES];
    tnd_activations act[TND_MAX_DEVICES]; /* buffers of each device that runs a stage */
    tnd_rope rope[TND_MAX_DEVICES];       /* each device's rope, its freq_factors in that device's memory */
    const int32_t *group_device;          /* [tnd_group_count]: the device of each group */
    int32_t n_stages;
    tnd_stage *stages;                    /* [n_stages] in forward order */
    tnd_device_layer *layers;             /* [n_layer]: the attention part on its group's device, the ffn part on
                                             its group's device */
    tnd_weight tok_embd, output;          /* device views: on the devices of the first and the last group */
    tnd_buffer *output_norm;              /* [n_embd] on the last group's device */
    tnd_buffer *const *k_pool, *const *v_pool; /* [n_layer]: each layer's KV pools, on its attention's device */
    tnd_type k_type, v_type;              /* of the KV cache */
    float *host_x;                        /* [n_batch][n_embd]: the hand-over between stages (several only) */
    bool output_hidden;                   /* the head gives the normed hidden rows [n_embd] instead of logits
                                             (embeddings) */
    /* Mixture-of-experts layers: the CPU device their experts live on where the plan keeps them apart from their
     * feed-forward groups (-1: each layer's experts with its group; a layer whose group is on that device keeps
     * them together), the cache of hot experts where there is one (NULL: none), and the host scratch of the
     * hand-over to and from the experts' device (layers apart only). */
    int32_t expert_device;
    struct tnd_expert_cache *expert_cache;
    const tnd_layer *host_layers;         /* the file's views of the weights, which the cache copies experts from */
    int32_t *expert_near, *expert_far;    /* [n_batch * n_expert_used] the pairs' ids for each side */
    float *expert_host;                   /* [n_batch * n_expert_used][n_embd] */
    tnd_status *expert_failure;           /* the first failure of an experts' device in this step (TND_OK: none),
                                             which the step then reports; the context's */
} tnd_forward;

/* Whether layer il's experts live apart from its feed-forward group, on fw->expert_device. */
static inline bool tnd_experts_apart(const tnd_forward *fw, int32_t il) {
    return fw->expert_device >= 0 && fw->expert_device != fw->group_device[tnd_group_ffn(il)];
}

/* Layer il's mixture-of-experts feed-forward block on device d (moe.c): x += the chosen experts' SwiGLU outputs
 * weighed by the router, plus a shared expert's gated output where the layer has one; the experts computed on the
 * device they live on and in the cache where the plan keeps them apart. */
void tnd_moe_forward(const tnd_forward *fw, tnd_backend *d, const tnd_activations *a, int32_t il, int64_t n);

/* Runs one micro-batch (step->n_tokens <= n_batch tokens, their KV rows reserved at step->slots) through every
 * stage, the last ending with the output head for the rows with want[i] != 0, whose logits (or, with
 * output_hidden, their normed hidden states) go to logits_out (host, row after row, room for all of them); *n_out
 * receives their count. Returns TND_OK or the first failure a device reported (the
 * logits and the step's KV rows are then not to be used). A step of 2 * TND_PIPELINE_SLICE tokens or more through a
 * device with stage_send goes in slices, several in flight. */
tnd_status tnd_forward_run(const tnd_forward *fw, const tnd_step *step, const int32_t *tokens, const int8_t *want,
                           float *logits_out, int32_t *n_out);

/* Runs the layers of groups [g0, g1) (no embedding, no output head) of a forward whose groups are all on its
 * device 0 on the residual stream x (host, [step->n_tokens][n_embd], replaced by the result): what a cloud server
 * does for a device's step. */
tnd_status tnd_forward_run_stage(const tnd_forward *fw, const tnd_step *step, int32_t g0, int32_t g1, float *x);

#endif
