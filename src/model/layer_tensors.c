/* layer_tensors.c: the tensors of a decoder block (Llama, Qwen 2, Qwen 3 and their mixtures of experts), with their
 * GGUF names, group, shape, which models have them, and where they live in the host and the device layer. The loader
 * binds by this table, the placement prepares and sizes by it, and the command line matches names against it. */
#include "model/forward.h"

#include <stddef.h>

#define MATRIX(name, ffn, ne0, ne1, needs, field)                                                                      \
    {name, ffn, true, ne0, ne1, TND_DIM_ONE, needs, offsetof(tnd_layer, field), offsetof(tnd_device_layer, field)}
#define EXPERTS(name, ne0, ne1, field)                                                                                 \
    {name, true, true, ne0, ne1, TND_DIM_EXPERTS, TND_NEEDS_EXPERTS, offsetof(tnd_layer, field),                       \
     offsetof(tnd_device_layer, field)}
#define VECTOR(name, ffn, ne0, needs, field)                                                                           \
    {name, ffn, false, ne0, ne0, ne0, needs, offsetof(tnd_layer, field), offsetof(tnd_device_layer, field)}

const tnd_layer_tensor tnd_layer_tensors[] = {
    VECTOR("attn_norm.weight", false, TND_DIM_EMBD, TND_NEEDS_ALWAYS, attn_norm),
    MATRIX("attn_q.weight", false, TND_DIM_EMBD, TND_DIM_Q, TND_NEEDS_ALWAYS, wq),
    MATRIX("attn_k.weight", false, TND_DIM_EMBD, TND_DIM_KV, TND_NEEDS_ALWAYS, wk),
    MATRIX("attn_v.weight", false, TND_DIM_EMBD, TND_DIM_KV, TND_NEEDS_ALWAYS, wv),
    MATRIX("attn_output.weight", false, TND_DIM_Q, TND_DIM_EMBD, TND_NEEDS_ALWAYS, wo),
    VECTOR("attn_q.bias", false, TND_DIM_Q, TND_NEEDS_QKV_BIAS, bq),
    VECTOR("attn_k.bias", false, TND_DIM_KV, TND_NEEDS_QKV_BIAS, bk),
    VECTOR("attn_v.bias", false, TND_DIM_KV, TND_NEEDS_QKV_BIAS, bv),
    VECTOR("attn_q_norm.weight", false, TND_DIM_HEAD, TND_NEEDS_QK_NORM, q_norm),
    VECTOR("attn_k_norm.weight", false, TND_DIM_HEAD, TND_NEEDS_QK_NORM, k_norm),
    VECTOR("attn_q_norm.weight", false, TND_DIM_Q, TND_NEEDS_QK_NORM_FULL, q_norm),
    VECTOR("attn_k_norm.weight", false, TND_DIM_KV, TND_NEEDS_QK_NORM_FULL, k_norm),
    VECTOR("ffn_norm.weight", true, TND_DIM_EMBD, TND_NEEDS_ALWAYS, ffn_norm),
    MATRIX("ffn_gate.weight", true, TND_DIM_EMBD, TND_DIM_FF, TND_NEEDS_DENSE_FFN, w_gate),
    MATRIX("ffn_up.weight", true, TND_DIM_EMBD, TND_DIM_FF, TND_NEEDS_DENSE_FFN, w_up),
    MATRIX("ffn_down.weight", true, TND_DIM_FF, TND_DIM_EMBD, TND_NEEDS_DENSE_FFN, w_down),
    MATRIX("ffn_gate_inp.weight", true, TND_DIM_EMBD, TND_DIM_EXPERTS, TND_NEEDS_EXPERTS, router),
    EXPERTS("ffn_gate_exps.weight", TND_DIM_EMBD, TND_DIM_FF_EXP, gate_exps),
    EXPERTS("ffn_up_exps.weight", TND_DIM_EMBD, TND_DIM_FF_EXP, up_exps),
    EXPERTS("ffn_down_exps.weight", TND_DIM_FF_EXP, TND_DIM_EMBD, down_exps),
    MATRIX("ffn_gate_shexp.weight", true, TND_DIM_EMBD, TND_DIM_FF_SHEXP, TND_NEEDS_SHARED_EXPERT, gate_shexp),
    MATRIX("ffn_up_shexp.weight", true, TND_DIM_EMBD, TND_DIM_FF_SHEXP, TND_NEEDS_SHARED_EXPERT, up_shexp),
    MATRIX("ffn_down_shexp.weight", true, TND_DIM_FF_SHEXP, TND_DIM_EMBD, TND_NEEDS_SHARED_EXPERT, down_shexp),
    MATRIX("ffn_gate_inp_shexp.weight", true, TND_DIM_EMBD, TND_DIM_ONE, TND_NEEDS_SHARED_EXPERT, shexp_gate),
};

const size_t tnd_layer_tensor_count = sizeof tnd_layer_tensors / sizeof tnd_layer_tensors[0];

int64_t tnd_dim_size(const tnd_hparams *hp, tnd_dim dim) {
    switch (dim) {
    case TND_DIM_ONE: return 1;
    case TND_DIM_EMBD: return hp->n_embd;
    case TND_DIM_Q: return (int64_t)hp->n_head * hp->head_dim;
    case TND_DIM_KV: return (int64_t)hp->n_head_kv * hp->head_dim;
    case TND_DIM_FF: return hp->n_ff;
    case TND_DIM_HEAD: return hp->head_dim;
    case TND_DIM_EXPERTS: return hp->n_expert;
    case TND_DIM_FF_EXP: return hp->n_ff_exp;
    case TND_DIM_FF_SHEXP: return hp->n_ff_shexp;
    }
    return 0;
}

bool tnd_model_has(const tnd_arch *arch, const tnd_hparams *hp, tnd_needs needs) {
    switch (needs) {
    case TND_NEEDS_ALWAYS: return true;
    case TND_NEEDS_QKV_BIAS: return arch->qkv_bias;
    case TND_NEEDS_QK_NORM: return arch->qk_norm;
    case TND_NEEDS_QK_NORM_FULL: return arch->qk_norm_full;
    case TND_NEEDS_DENSE_FFN: return hp->n_expert == 0;
    case TND_NEEDS_EXPERTS: return hp->n_expert > 0;
    case TND_NEEDS_SHARED_EXPERT: return hp->n_expert > 0 && arch->shared_expert;
    }
    return false;
}
