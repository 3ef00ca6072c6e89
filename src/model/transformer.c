/* transformer.c: the forward pass of a decoder-only transformer (Llama, Qwen 2, Qwen 3 share it; the architecture
 * descriptor and the bound weights say which optional parts run), written only against device ops so that any
 * device can run any layer range. */
#include "model/forward.h"

#include <math.h>
#include <string.h>

/* A device vector of n floats as a one-row view. */
static tnd_tensor vec(tnd_buffer *buf, int64_t n) { return tnd_rows_f32(buf, n, 0, 1); }

/* One decoder block of the step's n tokens on its stage's device. */
static void block_forward(const tnd_forward *fw, const tnd_stage *st, const tnd_device_layer *l, int32_t il,
                          int64_t n) {
    const tnd_hparams *hp = fw->hp;
    tnd_backend *d = st->device;
    const tnd_backend_vtable *op = d->vt;
    const tnd_activations *a = &st->act;
    int64_t e = hp->n_embd, qw = (int64_t)hp->n_head * hp->head_dim, kvw = (int64_t)hp->n_head_kv * hp->head_dim;
    tnd_tensor x = tnd_rows_f32(a->x, e, 0, n), xn = tnd_rows_f32(a->xn, e, 0, n);
    tnd_tensor q = tnd_rows_f32(a->q, qw, 0, n), k = tnd_rows_f32(a->k, kvw, 0, n), v = tnd_rows_f32(a->v, kvw, 0, n);
    tnd_tensor attn = tnd_rows_f32(a->attn, qw, 0, n);
    tnd_tensor gate = tnd_rows_f32(a->gate, hp->n_ff, 0, n), up = tnd_rows_f32(a->up, hp->n_ff, 0, n);

    /* attention */
    tnd_tensor attn_norm = vec(l->attn_norm, e);
    op->rms_norm(d, &x, &attn_norm, &xn, hp->rms_eps);
    op->matmul(d, &l->wq, &xn, &q);
    op->matmul(d, &l->wk, &xn, &k);
    op->matmul(d, &l->wv, &xn, &v);
    if (l->bq) {
        tnd_tensor bq = vec(l->bq, qw), bk = vec(l->bk, kvw), bv = vec(l->bv, kvw);
        op->add_bias(d, &q, &bq);
        op->add_bias(d, &k, &bk);
        op->add_bias(d, &v, &bv);
    }
    if (l->q_norm) { /* per head: the rows cut into heads */
        tnd_tensor q_heads = tnd_rows_f32(a->q, hp->head_dim, 0, n * hp->n_head);
        tnd_tensor k_heads = tnd_rows_f32(a->k, hp->head_dim, 0, n * hp->n_head_kv);
        tnd_tensor q_norm = vec(l->q_norm, hp->head_dim), k_norm = vec(l->k_norm, hp->head_dim);
        op->rms_norm(d, &q_heads, &q_norm, &q_heads, hp->rms_eps);
        op->rms_norm(d, &k_heads, &k_norm, &k_heads, hp->rms_eps);
    }
    op->rope(d, &q, hp->n_head, &st->rope);
    op->rope(d, &k, hp->n_head_kv, &st->rope);
    op->kv_store(d, fw->k_pool[il], fw->v_pool[il], fw->kv_type, &k, &v, hp->head_dim);
    tnd_attention_args args = {.q = q, .out = attn, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv,
                               .head_dim = hp->head_dim, .scale = 1.0f / sqrtf((float)hp->head_dim),
                               .k_pool = fw->k_pool[il], .v_pool = fw->v_pool[il], .kv_type = fw->kv_type};
    op->attention(d, &args);
    op->matmul(d, &l->wo, &attn, &xn);
    op->add(d, &x, &xn);

    /* feed-forward (SwiGLU) */
    tnd_tensor ffn_norm = vec(l->ffn_norm, e);
    op->rms_norm(d, &x, &ffn_norm, &xn, hp->rms_eps);
    op->matmul(d, &l->w_gate, &xn, &gate);
    op->matmul(d, &l->w_up, &xn, &up);
    op->swiglu(d, &gate, &up, &gate);
    op->matmul(d, &l->w_down, &gate, &xn);
    op->add(d, &x, &xn);
}

/* The output head for the rows that asked for logits: gathered to the front of x, normed, multiplied in chunks of
 * TND_LOGITS_CHUNK rows and read to the host. */
static int32_t output_head(const tnd_forward *fw, int64_t n, const int8_t *want, float *logits_out) {
    const tnd_hparams *hp = fw->hp;
    const tnd_stage *last = &fw->stages[fw->n_stages - 1];
    tnd_backend *d = last->device;
    int64_t e = hp->n_embd;
    int32_t n_out = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!want[i]) continue;
        if (n_out != i) {
            tnd_tensor to = tnd_rows_f32(last->act.x, e, n_out, 1), from = tnd_rows_f32(last->act.x, e, i, 1);
            d->vt->copy(d, &to, &from);
        }
        n_out++;
    }
    if (!n_out) return 0;
    tnd_tensor x = tnd_rows_f32(last->act.x, e, 0, n_out), xn = tnd_rows_f32(last->act.xn, e, 0, n_out);
    tnd_tensor norm = vec(fw->output_norm, e);
    d->vt->rms_norm(d, &x, &norm, &xn, hp->rms_eps);
    for (int32_t r = 0; r < n_out; r += TND_LOGITS_CHUNK) {
        int32_t m = n_out - r < TND_LOGITS_CHUNK ? n_out - r : TND_LOGITS_CHUNK;
        tnd_tensor rows = tnd_rows_f32(last->act.xn, e, r, m), logits = tnd_rows_f32(last->act.logits, hp->n_vocab, 0, m);
        d->vt->matmul(d, &fw->output, &rows, &logits);
        d->vt->read(d, logits_out + (size_t)r * hp->n_vocab, last->act.logits, 0,
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
            tnd_tensor x = tnd_rows_f32(stage->act.x, hp->n_embd, 0, n);
            d->vt->embed(d, &fw->tok_embd, tokens, &x);
        } else { /* the residual stream of the previous device, through the host */
            d->vt->write(d, stage->act.x, 0, fw->host_x, x_bytes);
        }
        for (int32_t il = stage->layer_begin; il < stage->layer_end; il++)
            block_forward(fw, stage, &stage->layers[il - stage->layer_begin], il, n);
        if (s + 1 < fw->n_stages) d->vt->read(d, fw->host_x, stage->act.x, 0, x_bytes);
        else *n_out = output_head(fw, n, want, logits_out);
        st = d->vt->synchronize(d);
    }
    return st;
}
