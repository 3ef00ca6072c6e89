/* arch.h: what a decoder-only transformer architecture is to tandem: hyper-parameters read from `<arch>.*` keys,
 * weights bound by name, and a descriptor per architecture (one file each in arch/) saying which optional parts
 * (biases, q/k norms, tied output) it has and how it rotates positions. */
#ifndef TND_MODEL_ARCH_H
#define TND_MODEL_ARCH_H

#include "backend/backend.h"
#include "gguf/gguf.h"

#include <stdbool.h>

typedef struct tnd_hparams {
    int32_t n_vocab;
    int32_t n_ctx_train;  /* <arch>.context_length */
    int32_t n_embd;       /* residual width */
    int32_t n_layer;
    int32_t n_head, n_head_kv;
    int32_t head_dim;     /* <arch>.attention.key_length, default n_embd / n_head */
    int32_t n_ff;         /* feed-forward width of a dense block */
    int32_t n_expert;     /* <arch>.expert_count: experts of a mixture-of-experts block (0: dense) */
    int32_t n_expert_used;/* <arch>.expert_used_count: experts each token uses */
    int32_t n_ff_exp;     /* <arch>.expert_feed_forward_length (default n_ff): an expert's width */
    int32_t n_ff_shexp;   /* <arch>.expert_shared_feed_forward_length (default n_ff): the shared expert's width; 0
                             where the architecture has no shared expert */
    bool expert_weights_norm; /* <arch>.expert_weights_norm, default the architecture's: the chosen experts' weights
                                 renormalised to sum 1 */
    int32_t n_rot;        /* rotated dims per head: <arch>.rope.dimension_count, default head_dim */
    float rms_eps;
    float rope_base;
    float rope_scale;     /* linear position scale: 1 / rope.scaling.factor for type "linear" */
} tnd_hparams;

/* One decoder block. Matrices are views into the file; small vectors are float copies owned by the binding.
 * Shapes (ne[0] = input width, ne[1] = output width):
 *   wq [n_embd, n_head*head_dim]   wk, wv [n_embd, n_head_kv*head_dim]   wo [n_head*head_dim, n_embd]
 *   w_gate, w_up [n_embd, n_ff]    w_down [n_ff, n_embd]
 *   attn_norm, ffn_norm [n_embd]   bq [n_head*head_dim]  bk, bv [n_head_kv*head_dim]  q_norm, k_norm [head_dim]
 *   (or, normed over all heads at once, q_norm [n_head*head_dim] and k_norm [n_head_kv*head_dim])
 * A mixture-of-experts block has, instead of w_gate, w_up and w_down:
 *   router [n_embd, n_expert]
 *   gate_exps, up_exps [n_embd, n_ff_exp, n_expert]   down_exps [n_ff_exp, n_embd, n_expert]
 *   and, with a shared expert, gate_shexp, up_shexp [n_embd, n_ff_shexp], down_shexp [n_ff_shexp, n_embd] and
 *   shexp_gate [n_embd, 1] (the shared expert's output is scaled by the sigmoid of its product with the input).
 * Absent matrices have data NULL. */
typedef struct tnd_layer {
    tnd_weight wq, wk, wv, wo, w_gate, w_up, w_down;
    tnd_weight router, gate_exps, up_exps, down_exps, gate_shexp, up_shexp, down_shexp, shexp_gate;
    float *attn_norm, *ffn_norm;
    float *bq, *bk, *bv;        /* NULL when the architecture has no q/k/v biases */
    float *q_norm, *k_norm;     /* NULL when the architecture has no per-head q/k RMS norms */
} tnd_layer;

/* ---- The tensors of a decoder block, one table for binding, placing, sizing and naming them ---- */

typedef enum tnd_dim {
    TND_DIM_ONE, TND_DIM_EMBD, TND_DIM_Q, TND_DIM_KV, TND_DIM_FF, TND_DIM_HEAD, TND_DIM_EXPERTS, TND_DIM_FF_EXP,
    TND_DIM_FF_SHEXP
} tnd_dim;

/* Which models have a tensor: all, those with a feature of their tnd_arch, those with a dense feed-forward block,
 * those with experts. */
typedef enum tnd_needs {
    TND_NEEDS_ALWAYS, TND_NEEDS_QKV_BIAS, TND_NEEDS_QK_NORM, TND_NEEDS_QK_NORM_FULL, TND_NEEDS_DENSE_FFN,
    TND_NEEDS_EXPERTS, TND_NEEDS_SHARED_EXPERT
} tnd_needs;

typedef struct tnd_layer_tensor {
    const char *name;  /* after "blk.<layer>.": "attn_q.weight" */
    bool ffn;          /* in the feed-forward group (else the attention group) */
    bool matrix;       /* a matrix [ne0, ne1, ne2] (a tnd_weight; ne2 > 1: experts) or a vector [ne0] (floats) */
    tnd_dim ne0, ne1, ne2; /* ne1 and ne2 for matrices only */
    tnd_needs needs;
    size_t host;       /* offsetof(tnd_layer, its field): tnd_weight or float * */
    size_t device;     /* offsetof(tnd_device_layer, its field): tnd_weight or tnd_buffer * */
} tnd_layer_tensor;

extern const tnd_layer_tensor tnd_layer_tensors[];
extern const size_t tnd_layer_tensor_count;

/* Elements of a dimension in this model. */
int64_t tnd_dim_size(const tnd_hparams *hp, tnd_dim dim);

typedef struct tnd_arch tnd_arch;

/* Whether a model of this architecture and these hyper-parameters has the tensors that `needs` names. */
bool tnd_model_has(const tnd_arch *arch, const tnd_hparams *hp, tnd_needs needs);

typedef struct tnd_weights {
    tnd_weight tok_embd;   /* [n_embd, n_vocab] */
    tnd_weight output;     /* [n_embd, n_vocab]; the embedding itself when tied */
    float *output_norm;    /* [n_embd] */
    float *rope_freqs;     /* [n_rot / 2] or NULL */
    tnd_layer *layers;     /* n_layer */
} tnd_weights;

struct tnd_arch {
    const char *name;        /* general.architecture */
    tnd_rope_mode rope_mode;
    bool qkv_bias;           /* attn_q/k/v.bias required */
    bool qk_norm;            /* attn_q_norm / attn_k_norm required: RMS norms of each head [head_dim] */
    bool qk_norm_full;       /* attn_q_norm / attn_k_norm required: RMS norms over all heads at once (OLMoE) */
    bool experts;            /* expert_count required: every block is a mixture of experts (else optional: Mixtral
                                is a llama with experts) */
    bool shared_expert;      /* a mixture-of-experts block also has a shared expert with a sigmoid gate */
    bool normalize_experts;  /* the chosen experts' weights are renormalised to sum 1 (tnd_moe_route_args), unless the
                                file says otherwise */
};

/* The architectures tandem runs (arch/<name>.c). */
extern const tnd_arch tnd_arch_llama;
extern const tnd_arch tnd_arch_qwen2;
extern const tnd_arch tnd_arch_qwen3;
extern const tnd_arch tnd_arch_qwen2moe;
extern const tnd_arch tnd_arch_qwen3moe;
extern const tnd_arch tnd_arch_olmoe;

/* The architecture named `name` (len bytes), or NULL when tandem does not run it. */
const tnd_arch *tnd_arch_find(const char *name, size_t len);

/* A model bound for inference: descriptor, hyper-parameters, weights. */
typedef struct tnd_bound_model {
    const tnd_arch *arch;
    tnd_hparams hp;
    tnd_weights w;
    float *floats;          /* one allocation holding every float vector of w */
} tnd_bound_model;

/* Reads hyper-parameters and binds every tensor of the architecture named in the file, checking presence, types
 * and shapes. Errors name the architecture, key or tensor: TND_ERR_UNSUPPORTED (architecture or tensor type),
 * TND_ERR_FORMAT (missing/mis-shaped tensor, bad hyper-parameter), TND_ERR_OUT_OF_MEMORY. */
tnd_status tnd_model_bind(const tnd_gguf *g, const tnd_allocator *allocator, tnd_bound_model *out);
void tnd_model_unbind(tnd_bound_model *bm, const tnd_allocator *allocator);

#endif
