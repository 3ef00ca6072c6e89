/* transformer.c: the forward pass of a decoder-only transformer (Llama, Qwen 2, Qwen 3 share it; the architecture
 * descriptor and the bound weights say which optional parts run), written only against device ops so that any
 * device can run any layer range. */
#include "runtime/context.h"

#include <math.h>
#include <string.h>

/* One decoder block on one device, for n tokens whose KV slots are ctx->slots[0..n). */
static void block_forward(tnd_context *ctx, tnd_stage *st, const tnd_layer *l, int32_t il, const int32_t *pos,
                          int32_t n) {
    const tnd_hparams *hp = &ctx->bm->hp;
    tnd_backend *d = st->device;
    const tnd_backend_vtable *op = d->vt;
    tnd_activations *a = &st->act;
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
        op->rms_norm(d, a->q, l->q_norm, a->q, hp->head_dim, (int64_t)n * hp->n_head, hp->rms_eps);
        op->rms_norm(d, a->k, l->k_norm, a->k, hp->head_dim, (int64_t)n * hp->n_head_kv, hp->rms_eps);
    }
    op->rope(d, a->q, pos, n, hp->n_head, &ctx->rope);
    op->rope(d, a->k, pos, n, hp->n_head_kv, &ctx->rope);
    op->kv_store(d, ctx->kv.k_pool[il], ctx->kv.v_pool[il], ctx->kv.type, a->k, a->v, ctx->slots, n, kvw,
                 ctx->kv.block_size, hp->head_dim);
    tnd_attention_args args = {
        .q = a->q, .out = a->attn, .n_tokens = n, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv,
        .head_dim = hp->head_dim, .scale = 1.0f / sqrtf((float)hp->head_dim), .k_pool = ctx->kv.k_pool[il],
        .v_pool = ctx->kv.v_pool[il], .kv_type = ctx->kv.type, .block_size = ctx->kv.block_size,
        .block_tables = ctx->tables, .n_ctx = ctx->n_ctx_of};
    op->attention(d, &args);
    op->matmul(d, &l->wo, a->attn, n, a->xn);
    op->add(d, a->x, a->xn, (int64_t)n * e);

    /* feed-forward (SwiGLU) */
    op->rms_norm(d, a->x, l->ffn_norm, a->xn, e, n, hp->rms_eps);
    op->matmul(d, &l->w_gate, a->xn, n, a->gate);
    op->matmul(d, &l->w_up, a->xn, n, a->up);
    op->swiglu(d, a->gate, a->up, a->gate, (int64_t)n * hp->n_ff);
    op->matmul(d, &l->w_down, a->gate, n, a->xn);
    op->add(d, a->x, a->xn, (int64_t)n * e);
}

int32_t tnd_forward(tnd_context *ctx, const int32_t *tokens, const int32_t *pos, int32_t n, const int8_t *want,
                    float *logits_out) {
    const tnd_hparams *hp = &ctx->bm->hp;
    size_t x_bytes = sizeof(float) * (size_t)n * (size_t)hp->n_embd;
    tnd_stage *first = &ctx->stages[0];
    first->device->vt->embed(first->device, &ctx->tok_embd, tokens, n, first->act.x);
    for (int32_t s = 0; s < ctx->n_stages; s++) {
        tnd_stage *st = &ctx->stages[s];
        if (s > 0) { /* hand the residual stream over to the next device */
            tnd_stage *prev = &ctx->stages[s - 1];
            prev->device->vt->to_host(prev->device, ctx->host_x, prev->act.x, x_bytes);
            st->device->vt->to_device(st->device, st->act.x, ctx->host_x, x_bytes);
        }
        for (int32_t il = st->layer_begin; il < st->layer_end; il++)
            block_forward(ctx, st, &st->layers[il - st->layer_begin], il, pos, n);
    }

    /* output head, only for the rows that asked for logits: gather them to the front of x */
    tnd_stage *last = &ctx->stages[ctx->n_stages - 1];
    tnd_backend *d = last->device;
    int32_t n_out = 0;
    for (int32_t i = 0; i < n; i++) {
        if (want[i]) {
            if (n_out != i)
                d->vt->copy(d, last->act.x + (size_t)n_out * hp->n_embd, last->act.x + (size_t)i * hp->n_embd,
                                 sizeof(float) * (size_t)hp->n_embd);
            n_out++;
        }
    }
    if (!n_out) return 0;
    d->vt->rms_norm(d, last->act.x, ctx->output_norm, last->act.xn, hp->n_embd, n_out, hp->rms_eps);
    for (int32_t r = 0; r < n_out; r += TND_LOGITS_CHUNK) {
        int32_t m = n_out - r < TND_LOGITS_CHUNK ? n_out - r : TND_LOGITS_CHUNK;
        d->vt->matmul(d, &ctx->output, last->act.xn + (size_t)r * hp->n_embd, m, last->act.logits);
        d->vt->to_host(d, logits_out + (size_t)r * hp->n_vocab, last->act.logits,
                       sizeof(float) * (size_t)m * (size_t)hp->n_vocab);
    }
    return n_out;
}
