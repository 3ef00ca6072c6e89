/* transformer.c: the forward pass of a decoder-only transformer (Llama, Qwen 2, Qwen 3 and their mixtures of experts
 * share it; the architecture descriptor and the bound weights say which optional parts run, moe.c holds the experts'
 * block), written only against device ops so that any device can run any layer range. */
#include "core/error.h"
#include "model/forward.h"

#include <math.h>
#include <string.h>

/* A device vector of n floats as a one-row view. */
static tnd_tensor vec(tnd_buffer *buf, int64_t n) { return tnd_rows_f32(buf, n, 0, 1); }

/* The views of one device's activation buffers for n tokens. */
typedef struct views {
    tnd_tensor x, xn, q, k, v, attn, gate, up;
} views;

static views views_of(const tnd_hparams *hp, const tnd_activations *a, int64_t n) {
    int64_t e = hp->n_embd, qw = (int64_t)hp->n_head * hp->head_dim, kvw = (int64_t)hp->n_head_kv * hp->head_dim;
    return (views){tnd_rows_f32(a->x, e, 0, n),       tnd_rows_f32(a->xn, e, 0, n),
                   tnd_rows_f32(a->q, qw, 0, n),      tnd_rows_f32(a->k, kvw, 0, n),
                   tnd_rows_f32(a->v, kvw, 0, n),     tnd_rows_f32(a->attn, qw, 0, n),
                   tnd_rows_f32(a->gate, hp->n_ff, 0, n), tnd_rows_f32(a->up, hp->n_ff, 0, n)};
}

/* Layer il's attention of the step's n tokens on device d: x += attention(norm(x)). */
static void attention_forward(const tnd_forward *fw, tnd_backend *d, const tnd_activations *a, const tnd_rope *rope,
                              const tnd_device_layer *l, int32_t il, int64_t n) {
    const tnd_hparams *hp = fw->hp;
    const tnd_backend_vtable *op = d->vt;
    int64_t e = hp->n_embd, qw = (int64_t)hp->n_head * hp->head_dim, kvw = (int64_t)hp->n_head_kv * hp->head_dim;
    views t = views_of(hp, a, n);
    tnd_tensor attn_norm = vec(l->attn_norm, e);
    op->rms_norm(d, &t.x, &attn_norm, &t.xn, hp->rms_eps);
    const tnd_weight *qkv[3] = {&l->wq, &l->wk, &l->wv};
    const tnd_tensor *qkv_out[3] = {&t.q, &t.k, &t.v};
    op->matmul_many(d, 3, qkv, &t.xn, qkv_out);
    if (l->bq) {
        tnd_tensor bq = vec(l->bq, qw), bk = vec(l->bk, kvw), bv = vec(l->bv, kvw);
        op->add_bias(d, &t.q, &bq);
        op->add_bias(d, &t.k, &bk);
        op->add_bias(d, &t.v, &bv);
    }
    if (l->q_norm) { /* per head (the rows cut into heads), or over the whole row */
        bool full = fw->arch->qk_norm_full;
        int64_t q_width = full ? qw : hp->head_dim, k_width = full ? kvw : hp->head_dim;
        tnd_tensor q_rows = tnd_rows_f32(a->q, q_width, 0, n * qw / q_width);
        tnd_tensor k_rows = tnd_rows_f32(a->k, k_width, 0, n * kvw / k_width);
        tnd_tensor q_norm = vec(l->q_norm, q_width), k_norm = vec(l->k_norm, k_width);
        op->rms_norm(d, &q_rows, &q_norm, &q_rows, hp->rms_eps);
        op->rms_norm(d, &k_rows, &k_norm, &k_rows, hp->rms_eps);
    }
    op->rope(d, &t.q, hp->n_head, rope);
    op->rope(d, &t.k, hp->n_head_kv, rope);
    op->kv_store(d, fw->k_pool[il], fw->v_pool[il], fw->k_type, fw->v_type, &t.k, &t.v, hp->head_dim);
    tnd_attention_args args = {.q = t.q, .out = t.attn, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv,
                               .head_dim = hp->head_dim, .scale = 1.0f / sqrtf((float)hp->head_dim),
                               .k_pool = fw->k_pool[il], .v_pool = fw->v_pool[il], .k_type = fw->k_type,
                               .v_type = fw->v_type};
    op->attention(d, &args);
    op->matmul(d, &l->wo, &t.attn, &t.xn);
    op->add(d, &t.x, &t.xn);
}

/* Layer il's feed-forward (SwiGLU) on device d: x += down(silu(gate(norm(x))) * up(norm(x))). */
static void ffn_forward(const tnd_forward *fw, tnd_backend *d, const tnd_activations *a, const tnd_device_layer *l,
                        int64_t n) {
    const tnd_hparams *hp = fw->hp;
    const tnd_backend_vtable *op = d->vt;
    views t = views_of(hp, a, n);
    tnd_tensor ffn_norm = vec(l->ffn_norm, hp->n_embd);
    op->rms_norm(d, &t.x, &ffn_norm, &t.xn, hp->rms_eps);
    const tnd_weight *gate_up[2] = {&l->w_gate, &l->w_up};
    const tnd_tensor *gate_up_out[2] = {&t.gate, &t.up};
    op->matmul_many(d, 2, gate_up, &t.xn, gate_up_out);
    op->swiglu(d, &t.gate, &t.up, &t.gate);
    op->matmul(d, &l->w_down, &t.gate, &t.xn);
    op->add(d, &t.x, &t.xn);
}

/* The output head on device d for the rows that asked for logits: gathered to the front of x, normed, multiplied in
 * chunks of TND_LOGITS_CHUNK rows and read to the host; with output_hidden the normed rows themselves are read. */
static int32_t output_head(const tnd_forward *fw, tnd_backend *d, const tnd_activations *a, int64_t n,
                           const int8_t *want, float *logits_out) {
    const tnd_hparams *hp = fw->hp;
    int64_t e = hp->n_embd;
    int32_t n_out = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!want[i]) continue;
        if (n_out != i) {
            tnd_tensor to = tnd_rows_f32(a->x, e, n_out, 1), from = tnd_rows_f32(a->x, e, i, 1);
            d->vt->copy(d, &to, &from);
        }
        n_out++;
    }
    if (!n_out) return 0;
    tnd_tensor x = tnd_rows_f32(a->x, e, 0, n_out), xn = tnd_rows_f32(a->xn, e, 0, n_out);
    tnd_tensor norm = vec(fw->output_norm, e);
    d->vt->rms_norm(d, &x, &norm, &xn, hp->rms_eps);
    if (fw->output_hidden) {
        d->vt->read(d, logits_out, a->xn, 0, sizeof(float) * (size_t)n_out * (size_t)e);
        return n_out;
    }
    for (int32_t r = 0; r < n_out; r += TND_LOGITS_CHUNK) {
        int32_t m = n_out - r < TND_LOGITS_CHUNK ? n_out - r : TND_LOGITS_CHUNK;
        tnd_tensor rows = tnd_rows_f32(a->xn, e, r, m), logits = tnd_rows_f32(a->logits, hp->n_vocab, 0, m);
        d->vt->matmul(d, &fw->output, &rows, &logits);
        d->vt->read(d, logits_out + (size_t)r * hp->n_vocab, a->logits, 0,
                    sizeof(float) * (size_t)m * (size_t)hp->n_vocab);
    }
    return n_out;
}

/* Groups [g0, g1) on device d with its activations a (the residual stream in a->x). */
static void run_groups(const tnd_forward *fw, tnd_backend *d, int32_t device, int32_t g0, int32_t g1, int64_t n,
                       const int32_t *tokens, const int8_t *want, float *logits_out, int32_t *n_out) {
    const tnd_hparams *hp = fw->hp;
    const tnd_activations *a = &fw->act[device];
    for (int32_t g = g0; g < g1; g++) {
        int32_t il = (g - 1) / 2;
        if (g == 0) {
            tnd_tensor x = tnd_rows_f32(a->x, hp->n_embd, 0, n);
            d->vt->embed(d, &fw->tok_embd, tokens, &x);
        } else if (g == tnd_group_output(hp->n_layer)) {
            *n_out = output_head(fw, d, a, n, want, logits_out);
        } else if (g == tnd_group_attention(il)) {
            attention_forward(fw, d, a, &fw->rope[device], &fw->layers[il], il, n);
        } else {
            if (hp->n_expert) tnd_moe_forward(fw, d, a, il, n);
            else ffn_forward(fw, d, a, &fw->layers[il], n);
        }
    }
}

/* Stages [s0, s1) of the step, the residual stream handed over between devices directly where they can and
 * through `host` (the step's rows of the hand-over buffer) otherwise. */
static tnd_status run_stages(const tnd_forward *fw, const tnd_step *step, int32_t s0, int32_t s1,
                             const int32_t *tokens, const int8_t *want, float *host, float *logits_out,
                             int32_t *n_out) {
    const tnd_hparams *hp = fw->hp;
    int64_t n = step->n_tokens;
    size_t x_bytes = sizeof(float) * (size_t)n * (size_t)hp->n_embd;
    tnd_status st = TND_OK;
    bool handed_over = false; /* the previous stage copied the residual stream straight into this device's x */
    for (int32_t s = s0; s < s1 && !st; s++) {
        const tnd_stage *stage = &fw->stages[s];
        tnd_backend *d = fw->devices[stage->device];
        const tnd_activations *a = &fw->act[stage->device];
        if (tnd_backend_holds_nothing(d)) {
            st = tnd_fail(TND_ERR_UNSUPPORTED, "%s holds nothing: groups %d to %d of the plan cannot run in this "
                          "context", d->name, stage->group_begin, stage->group_end - 1);
            break;
        }
        d->vt->begin_step(d, step);
        if (d->vt->run_stage) { /* a device that runs the stage itself, on the residual stream in host memory */
            st = d->vt->run_stage(d, stage->group_begin, stage->group_end, host);
            handed_over = false;
            continue;
        }
        if (s > 0 && !handed_over) d->vt->write(d, a->x, 0, host, x_bytes); /* through the host */
        run_groups(fw, d, stage->device, stage->group_begin, stage->group_end, n, tokens, want, logits_out, n_out);
        handed_over = false;
        if (s + 1 < fw->n_stages) { /* hand the residual stream to the next stage's device */
            int32_t next = fw->stages[s + 1].device;
            tnd_tensor from = tnd_rows_f32(a->x, hp->n_embd, 0, n), to = tnd_rows_f32(fw->act[next].x, hp->n_embd, 0, n);
            handed_over = s + 1 < s1 && d->vt->copy_to && d->vt->copy_to(d, &from, fw->devices[next], &to);
            if (!handed_over) d->vt->read(d, host, a->x, 0, x_bytes);
        }
        st = d->vt->synchronize(d);
        if (!st && fw->expert_failure && *fw->expert_failure) st = *fw->expert_failure; /* experts apart */
        if (fw->expert_failure) *fw->expert_failure = TND_OK;
    }
    return st;
}

/* The stage whose device takes slices of a step in flight (stage_send / stage_recv), where a long step is worth
 * cutting into them; -1 where none. */
static int32_t pipelined_stage(const tnd_forward *fw, int64_t n_tokens) {
    if (n_tokens < 2 * TND_PIPELINE_SLICE) return -1;
    int32_t found = -1;
    for (int32_t s = 0; s < fw->n_stages; s++) {
        const tnd_backend *d = fw->devices[fw->stages[s].device];
        if (!d->vt->stage_send) continue;
        if (found >= 0 || s == 0 || s + 1 == fw->n_stages) return -1; /* one such stage, between local ones */
        found = s;
    }
    return found;
}

/* Slice k of step: its tokens from k * TND_PIPELINE_SLICE. */
static tnd_step slice_of(const tnd_step *step, int64_t k) {
    int64_t at = k * TND_PIPELINE_SLICE, m = step->n_tokens - at;
    if (m > TND_PIPELINE_SLICE) m = TND_PIPELINE_SLICE;
    return (tnd_step){.n_tokens = m, .pos = step->pos + at, .slots = step->slots + at,
                      .block_tables = step->block_tables + at, .n_ctx = step->n_ctx + at,
                      .block_size = step->block_size};
}

/* A long step through a stage r that takes slices in flight: slices of TND_PIPELINE_SLICE tokens, each through the
 * stages before r, sent, and (up to TND_PIPELINE_DEPTH slices later) received and taken through the stages after
 * r; so this machine works on one slice while the remote device works on another and others cross the link. Each
 * stage sees the slices in order, so every token's attention finds the KV rows of the tokens before it. */
static tnd_status run_pipelined(const tnd_forward *fw, const tnd_step *step, int32_t r, const int32_t *tokens,
                                const int8_t *want, float *logits_out, int32_t *n_out) {
    const int64_t n = step->n_tokens, e = fw->hp->n_embd, n_slices = (n + TND_PIPELINE_SLICE - 1) / TND_PIPELINE_SLICE;
    const tnd_stage *stage = &fw->stages[r];
    tnd_backend *remote = fw->devices[stage->device];
    tnd_status st = TND_OK;
    int64_t sent = 0, done = 0;
    while (done < n_slices && !st) {
        if (sent < n_slices && sent - done < TND_PIPELINE_DEPTH) {
            int64_t at = sent * TND_PIPELINE_SLICE;
            tnd_step slice = slice_of(step, sent);
            int32_t none = 0;
            st = run_stages(fw, &slice, 0, r, tokens + at, want + at, fw->host_x + at * e, NULL, &none);
            if (!st) {
                remote->vt->begin_step(remote, &slice);
                st = remote->vt->stage_send(remote, stage->group_begin, stage->group_end, fw->host_x + at * e);
            }
            sent += !st;
            continue;
        }
        int64_t at = done * TND_PIPELINE_SLICE;
        tnd_step slice = slice_of(step, done);
        int32_t rows = 0;
        st = remote->vt->stage_recv(remote, fw->host_x + at * e);
        if (!st)
            st = run_stages(fw, &slice, r + 1, fw->n_stages, tokens + at, want + at, fw->host_x + at * e,
                            logits_out + (size_t)*n_out * (size_t)(fw->output_hidden ? e : fw->hp->n_vocab), &rows);
        *n_out += rows;
        done++;
    }
    if (st && done < sent) { /* slices still in flight are taken back, so that a later step's answer is its own */
        char message[512];
        snprintf(message, sizeof message, "%s", tnd_last_error());
        while (done < sent && !remote->vt->stage_recv(remote, fw->host_x)) done++;
        tnd_fail(st, "%s", message);
    }
    return st;
}

tnd_status tnd_forward_run(const tnd_forward *fw, const tnd_step *step, const int32_t *tokens, const int8_t *want,
                           float *logits_out, int32_t *n_out) {
    *n_out = 0;
    int32_t r = pipelined_stage(fw, step->n_tokens);
    if (r >= 0) return run_pipelined(fw, step, r, tokens, want, logits_out, n_out);
    return run_stages(fw, step, 0, fw->n_stages, tokens, want, fw->host_x, logits_out, n_out);
}

tnd_status tnd_forward_run_stage(const tnd_forward *fw, const tnd_step *step, int32_t g0, int32_t g1, float *x) {
    tnd_backend *d = fw->devices[0];
    const tnd_activations *a = &fw->act[0];
    size_t x_bytes = sizeof(float) * (size_t)step->n_tokens * (size_t)fw->hp->n_embd;
    int32_t n_out = 0;
    d->vt->begin_step(d, step);
    d->vt->write(d, a->x, 0, x, x_bytes);
    run_groups(fw, d, 0, g0, g1, step->n_tokens, NULL, NULL, NULL, &n_out);
    d->vt->read(d, x, a->x, 0, x_bytes);
    return d->vt->synchronize(d);
}
