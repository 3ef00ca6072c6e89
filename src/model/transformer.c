/* transformer.c: the forward pass of a decoder-only transformer (Llama, Qwen 2, Qwen 3 share it; the architecture
 * descriptor and the bound weights say which optional parts run), written only against device ops so that any
 * device can run any layer range. */
#include "model/forward.h"

#include <math.h>
#include <string.h>

/* One decoder block of the step's tokens on its stage's device. */
static void block_forward(const tnd_forward *fw, const tnd_stage *st, const tnd_layer *l, int32_t il, int64_t n) {
    const tnd_hparams *hp = fw->hp;
    tnd_backend *d = st->device;
    const tnd_backend_vtable *op = d->vt;
    const tnd_activations *a = &st->act;
    int64_t e = hp->n_embd, qw = (int64_t)hp->n_head * hp->head_dim, kvw = (int64_t)hp->n_head_kv * hp->head_dim;

    /* attention */
    op->rms_norm(d, a->x, l->attn_norm, a->xn, e, n, hp->rms_eps);
    op->matmul(d, &l->wq, a->xn, n, a->q);
    op->matmul(d, &l->wk, a->xn, n, a->k);
    op->matmul(d, &l->wv, a->xn, n, a->v);
    if (l->bq) {
        op->add_bias(d, a->q, l->bq, qw, n);
        op->add_bias(d, a->k, l->bk, kvw, n);
        op->add_bias(d, a->v, l->bv, kvw, n);
    }
    if (l->q_norm) {
        op->rms_norm(d, a->q, l->q_norm, a->q, hp->head_dim, n * hp->n_head, hp->rms_eps);
        op->rms_norm(d, a->k, l->k_norm, a->k, hp->head_dim, n * hp->n_head_kv, hp->rms_eps);
    }
    op->rope(d, a->q, hp->n_head, &st->rope);
    op->rope(d, a->k, hp->n_head_kv, &st->rope);
    op->kv_store(d, fw->k_pool[il], fw->v_pool[il], fw->kv_type, a->k, a->v, kvw, hp->head_dim);
    tnd_attention_args args = {.q = a->q, .out = a->attn, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv,
                               .head_dim = hp->head_dim, .scale = 1.0f / sqrtf((float)hp->head_dim),
                               .k_pool = fw->k_pool[il], .v_pool = fw->v_pool[il], .kv_type = fw->kv_type};
    op->attention(d, &args);
    op->matmul(d, &l->wo, a->attn, n, a->xn);
    op->add(d, a->x, a->xn, n * e);

    /* feed-forward (SwiGLU) */
    op->rms_norm(d, a->x, l->ffn_norm, a->xn, e, n, hp->rms_eps);
    op->matmul(d, &l->w_gate, a->xn, n, a->gate);
    op->matmul(d, &l->w_up, a->xn, n, a->up);
    op->swiglu(d, a->gate, a->up, a->gate, n * hp->n_ff);
    op->matmul(d, &l->w_down, a->gate, n, a->xn);
    op->add(d, a->x, a->xn, n * e);
}

/* The output head for the rows that asked for logits: gathered to the front of x, normed, multiplied in chunks of
 * TND_LOGITS_CHUNK rows and copied to the host. */
static int32_t output_head(const tnd_forward *fw, int64_t n, const int8_t *want, float *logits_out) {
    const tnd_hparams *hp = fw->hp;
    const tnd_stage *last = &fw->stages[fw->n_stages - 1];
    tnd_backend *d = last->device;
    int32_t n_out = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!want[i]) continue;
        if (n_out != i)
            d->vt->copy(d, last->act.x + (size_t)n_out * hp->n_embd, last->act.x + (size_t)i * hp->n_embd,
                        sizeof(float) * (size_t)hp->n_embd);
        n_out++;
    }
    if (!n_out) return 0;
    d->vt->rms_norm(d, last->act.x, fw->output_norm, last->act.xn, hp->n_embd, n_out, hp->rms_eps);
    for (int32_t r = 0; r < n_out; r += TND_LOGITS_CHUNK) {
        int32_t m = n_out - r < TND_LOGITS_CHUNK ? n_out - r : TND_LOGITS_CHUNK;
        d->vt->matmul(d, &fw->output, last->act.xn + (size_t)r * hp->n_embd, m, last->act.logits);
        d->vt->to_host(d, logits_out + (size_t)r * hp->n_vocab, last->act.logits,
                       sizeof(float) * (size_t)m * (size_t)hp->n_vocab);
    }
    return n_out;
}

tnd_status tnd_forward_run(const tnd_forward *fw, const tnd_step *step, const int32_t *tokens, const int8_t *want,
                           float *logits_out, int32_t *n_out) {
    const tnd_hparams *hp = fw->hp;
    int64_t n = step->n_tokens;
    size_t x_bytes = sizeof(float) * (size_t)n * (size_t)hp->n_embd;
    *n_out = 0;
    tnd_status st = TND_OK;
    for (int32_t s = 0; s < fw->n_stages && !st; s++) {
        const tnd_stage *stage = &fw->stages[s];
        tnd_backend *d = stage->device;
        d->vt->begin_step(d, step);
        if (s == 0) {
            d->vt->embed(d, &fw->tok_embd, tokens, n, stage->act.x);
        } else { /* the residual stream of the previous device, through the host */
            d->vt->to_device(d, stage->act.x, fw->host_x, x_bytes);
        }
        for (int32_t il = stage->layer_begin; il < stage->layer_end; il++)
            block_forward(fw, stage, &stage->layers[il - stage->layer_begin], il, n);
        if (s + 1 < fw->n_stages) d->vt->to_host(d, fw->host_x, stage->act.x, x_bytes);
        else *n_out = output_head(fw, n, want, logits_out);
        st = d->vt->synchronize(d);
    }
    return st;
}
