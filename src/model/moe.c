/* moe.c: the mixture-of-experts feed-forward block every MoE architecture shares (Qwen 2 MoE, Qwen 3 MoE, Mixtral,
 * OLMoE):
 * the router picks n_expert_used experts per token and weighs them (the architecture says whether the weights are
 * renormalised), each chosen expert is a SwiGLU block of its own, and a shared expert, where the layer has one, adds
 * its output scaled by a sigmoid gate. Written against device ops only, like transformer.c.
 *
 * Experts apart: where the plan keeps a layer's experts on another device than the rest of the block (a GPU running
 * the block, the experts in the CPU's larger memory), the chosen experts run there, and with a cache of hot experts
 * the pairs whose expert the cache holds run here on its copies. Each side computes its own pairs and writes zeros
 * for the other's (an id of -1); their sum is bit for bit what one device computes (x + 0 is x), so the weighted sum
 * that follows does not change by a bit. */
#include "model/expert_cache.h"
#include "model/forward.h"

/* The SwiGLU of the pairs ids chooses on device d (gate and up from xn, one input per token), into out. */
static void routed_experts(tnd_backend *d, const tnd_activations *a, const tnd_weight *gate_w, const tnd_weight *up_w,
                           const tnd_weight *down_w, const tnd_tensor *xn, const tnd_tensor *ids, int64_t pairs,
                           int64_t n_ff_exp, const tnd_tensor *out) {
    const tnd_backend_vtable *op = d->vt;
    tnd_tensor gate = tnd_rows_f32(a->expert_gate, n_ff_exp, 0, pairs),
               up = tnd_rows_f32(a->expert_up, n_ff_exp, 0, pairs);
    const tnd_weight *gate_up[2] = {gate_w, up_w};
    const tnd_tensor *gate_up_out[2] = {&gate, &up};
    op->matmul_experts(d, 2, gate_up, xn, ids, gate_up_out);
    op->swiglu(d, &gate, &up, &gate);
    op->matmul_experts(d, 1, &down_w, &gate, ids, &out);
}

/* Expert e of a stacked host weight, as a weight of its own rows. */
static tnd_weight expert_rows(const tnd_weight *w, int32_t e) {
    tnd_weight one = *w;
    one.n_rows = w->n_rows / w->n_experts;
    one.n_experts = 1;
    one.data = (const uint8_t *)w->data + (size_t)e * (size_t)one.n_rows * w->row_bytes;
    return one;
}

/* Copies the experts the cache takes in after this step into its slots on device d (ordered after the step's ops
 * that read the slots). A copy that fails leaves its slot empty. */
static void cache_swaps(const tnd_forward *fw, tnd_backend *d, const tnd_device_layer *l, int32_t il) {
    tnd_expert_cache *c = fw->expert_cache;
    int32_t slot[64], expert[64], max = c->n_slots < 64 ? c->n_slots : 64;
    int32_t n = tnd_expert_cache_swaps(c, il, slot, expert, max);
    const tnd_layer *host = &fw->host_layers[il];
    const tnd_weight *from[3] = {&host->gate_exps, &host->up_exps, &host->down_exps};
    tnd_weight *to[3] = {(tnd_weight *)&l->gate_cache, (tnd_weight *)&l->up_cache, (tnd_weight *)&l->down_cache};
    for (int32_t i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) {
            tnd_weight rows = expert_rows(from[k], expert[i]);
            if (d->vt->update_weight(d, to[k], (int64_t)slot[i] * rows.n_rows, &rows)) {
                tnd_expert_cache_lost(c, il, slot[i]);
                break;
            }
            c->stats.bytes_moved += (uint64_t)rows.n_rows * rows.row_bytes;
        }
}

/* The routed experts of layer il when they live on another device (see the top of the file): out is on d. */
static void experts_apart(const tnd_forward *fw, tnd_backend *d, const tnd_activations *a, int32_t il,
                          const tnd_tensor *xn, const tnd_tensor *ids, int64_t pairs, const tnd_tensor *out) {
    const tnd_hparams *hp = fw->hp;
    const tnd_device_layer *l = &fw->layers[il];
    tnd_backend *h = fw->devices[fw->expert_device];
    const tnd_activations *ha = &fw->act[fw->expert_device];
    int64_t n = xn->ne1, e = hp->n_embd;
    bool cached = l->gate_cache.n_experts > 0;
    int32_t *near = fw->expert_near, *far = fw->expert_far;
    d->vt->read(d, far, ids->buf, ids->offset, sizeof(int32_t) * (size_t)pairs); /* waits for the router */
    if (cached) {
        tnd_expert_cache_split(fw->expert_cache, il, far, pairs, near, far);
    } else {
        for (int64_t p = 0; p < pairs; p++)
            if (far[p] < 0 || far[p] >= hp->n_expert) far[p] = -1; /* a router's op that failed: nothing to read */
    }
    /* there: the input, the pairs it does not hold here, their SwiGLU */
    tnd_tensor hxn = tnd_rows_f32(ha->xn, e, 0, n), hids = tnd_rows_i32(ha->expert_ids, hp->n_expert_used, 0, n);
    tnd_tensor hout = tnd_rows_f32(ha->expert_out, e, 0, pairs);
    d->vt->read(d, fw->expert_host, xn->buf, xn->offset, sizeof(float) * (size_t)(n * e));
    h->vt->write(h, ha->xn, 0, fw->expert_host, sizeof(float) * (size_t)(n * e));
    h->vt->write(h, ha->expert_ids, 0, far, sizeof(int32_t) * (size_t)pairs);
    routed_experts(h, ha, &l->gate_exps, &l->up_exps, &l->down_exps, &hxn, &hids, pairs, hp->n_ff_exp, &hout);
    /* here: the cache's pairs on its slots, then the sum of both sides */
    if (cached) {
        d->vt->write(d, ids->buf, ids->offset, near, sizeof(int32_t) * (size_t)pairs);
        routed_experts(d, a, &l->gate_cache, &l->up_cache, &l->down_cache, xn, ids, pairs, hp->n_ff_exp, out);
    }
    h->vt->read(h, fw->expert_host, ha->expert_out, 0, sizeof(float) * (size_t)(pairs * e));
    tnd_status failed = h->vt->synchronize(h); /* its failure is this step's, reported with the stage's */
    if (failed && !*fw->expert_failure) *fw->expert_failure = failed;
    if (cached) {
        tnd_tensor far_out = tnd_rows_f32(a->expert_far, e, 0, pairs);
        d->vt->write(d, a->expert_far, 0, fw->expert_host, sizeof(float) * (size_t)(pairs * e));
        d->vt->add(d, out, &far_out);
        cache_swaps(fw, d, l, il);
    } else {
        d->vt->write(d, out->buf, out->offset, fw->expert_host, sizeof(float) * (size_t)(pairs * e));
    }
}

void tnd_moe_forward(const tnd_forward *fw, tnd_backend *d, const tnd_activations *a, int32_t il, int64_t n) {
    const tnd_hparams *hp = fw->hp;
    const tnd_backend_vtable *op = d->vt;
    const tnd_device_layer *l = &fw->layers[il];
    int64_t e = hp->n_embd, k = hp->n_expert_used;
    tnd_tensor x = tnd_rows_f32(a->x, e, 0, n), xn = tnd_rows_f32(a->xn, e, 0, n);
    tnd_tensor norm = tnd_rows_f32(l->ffn_norm, e, 0, 1);
    op->rms_norm(d, &x, &norm, &xn, hp->rms_eps);

    tnd_moe_route_args route = {.logits = tnd_rows_f32(a->router, hp->n_expert, 0, n),
                                .ids = tnd_rows_i32(a->expert_ids, k, 0, n),
                                .weights = tnd_rows_f32(a->expert_weights, k, 0, n),
                                .n_used = hp->n_expert_used,
                                .normalize = hp->expert_weights_norm};
    op->matmul(d, &l->router, &xn, &route.logits);
    op->moe_route(d, &route);
    tnd_tensor out = tnd_rows_f32(a->expert_out, e, 0, n * k);
    if (tnd_experts_apart(fw, il))
        experts_apart(fw, d, a, il, &xn, &route.ids, n * k, &out);
    else
        routed_experts(d, a, &l->gate_exps, &l->up_exps, &l->down_exps, &xn, &route.ids, n * k, hp->n_ff_exp, &out);

    if (hp->n_ff_shexp) { /* the shared expert (xn is free again once the routed experts have read it) */
        tnd_tensor sg = tnd_rows_f32(a->gate, hp->n_ff_shexp, 0, n), su = tnd_rows_f32(a->up, hp->n_ff_shexp, 0, n);
        tnd_tensor logit = tnd_rows_f32(a->shared_gate, 1, 0, n);
        const tnd_weight *w[3] = {&l->gate_shexp, &l->up_shexp, &l->shexp_gate};
        const tnd_tensor *y[3] = {&sg, &su, &logit};
        op->matmul_many(d, 3, w, &xn, y);
        op->swiglu(d, &sg, &su, &sg);
        op->matmul(d, &l->down_shexp, &sg, &xn);
        op->sigmoid_scale(d, &xn, &logit);
        op->add(d, &x, &xn);
    }
    op->moe_combine(d, &out, &route.weights, &x);
}
