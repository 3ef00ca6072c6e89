/* layer_tensors.c: the tensors of a decoder block (Llama, Qwen 2, Qwen 3), with their GGUF names, group, shape,
 * which architectures have them, and where they live in the host and the device layer. The loader binds by this
 * table, the placement prepares and sizes by it, and the command line matches names against it. */
#include "model/forward.h"

#include <stddef.h>

#define MATRIX(name, ffn, ne0, ne1, field) {name, ffn, true, ne0, ne1, TND_NEEDS_ALWAYS, offsetof(tnd_layer, field), \
                                            offsetof(tnd_device_layer, field)}
#define VECTOR(name, ffn, ne0, needs, field) {name, ffn, false, ne0, ne0, needs, offsetof(tnd_layer, field), \
                                              offsetof(tnd_device_layer, field)}

const tnd_layer_tensor tnd_layer_tensors[] = {
    VECTOR("attn_norm.weight", false, TND_DIM_EMBD, TND_NEEDS_ALWAYS, attn_norm),
    MATRIX("attn_q.weight", false, TND_DIM_EMBD, TND_DIM_Q, wq),
    MATRIX("attn_k.weight", false, TND_DIM_EMBD, TND_DIM_KV, wk),
    MATRIX("attn_v.weight", false, TND_DIM_EMBD, TND_DIM_KV, wv),
    MATRIX("attn_output.weight", false, TND_DIM_Q, TND_DIM_EMBD, wo),
    VECTOR("attn_q.bias", false, TND_DIM_Q, TND_NEEDS_QKV_BIAS, bq),
    VECTOR("attn_k.bias", false, TND_DIM_KV, TND_NEEDS_QKV_BIAS, bk),
    VECTOR("attn_v.bias", false, TND_DIM_KV, TND_NEEDS_QKV_BIAS, bv),
    VECTOR("attn_q_norm.weight", false, TND_DIM_HEAD, TND_NEEDS_QK_NORM, q_norm),
    VECTOR("attn_k_norm.weight", false, TND_DIM_HEAD, TND_NEEDS_QK_NORM, k_norm),
    VECTOR("ffn_norm.weight", true, TND_DIM_EMBD, TND_NEEDS_ALWAYS, ffn_norm),
    MATRIX("ffn_gate.weight", true, TND_DIM_EMBD, TND_DIM_FF, w_gate),
    MATRIX("ffn_up.weight", true, TND_DIM_EMBD, TND_DIM_FF, w_up),
    MATRIX("ffn_down.weight", true, TND_DIM_FF, TND_DIM_EMBD, w_down),
};

const size_t tnd_layer_tensor_count = sizeof tnd_layer_tensors / sizeof tnd_layer_tensors[0];

int64_t tnd_dim_size(const tnd_hparams *hp, tnd_dim dim) {
    switch (dim) {
    case TND_DIM_EMBD: return hp->n_embd;
    case TND_DIM_Q: return (int64_t)hp->n_head * hp->head_dim;
    case TND_DIM_KV: return (int64_t)hp->n_head_kv * hp->head_dim;
    case TND_DIM_FF: return hp->n_ff;
    case TND_DIM_HEAD: return hp->head_dim;
    }
    return 0;
}

bool tnd_arch_has(const tnd_arch *arch, tnd_needs needs) {
    return needs == TND_NEEDS_ALWAYS || (needs == TND_NEEDS_QKV_BIAS && arch->qkv_bias) ||
           (needs == TND_NEEDS_QK_NORM && arch->qk_norm);
}
