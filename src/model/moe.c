/* moe.c: the mixture-of-experts feed-forward block every MoE architecture shares (Qwen 2 MoE, Qwen 3 MoE, Mixtral,
 * OLMoE):
 * the router picks n_expert_used experts per token and weighs them (the architecture says whether the weights are
 * renormalised), each chosen expert is a SwiGLU block of its own, and a shared expert, where the layer has one, adds
 * its output scaled by a sigmoid gate. Written against device ops only, like transformer.c. */
#include "model/forward.h"

void tnd_moe_forward(const tnd_forward *fw, tnd_backend *d, const tnd_activations *a, const tnd_device_layer *l,
                     int64_t n) {
    const tnd_hparams *hp = fw->hp;
    const tnd_backend_vtable *op = d->vt;
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
    tnd_tensor gate = tnd_rows_f32(a->expert_gate, hp->n_ff_exp, 0, n * k);
    tnd_tensor up = tnd_rows_f32(a->expert_up, hp->n_ff_exp, 0, n * k);
    tnd_tensor out = tnd_rows_f32(a->expert_out, e, 0, n * k);
    const tnd_weight *gate_up[2] = {&l->gate_exps, &l->up_exps}, *down = &l->down_exps;
    const tnd_tensor *gate_up_out[2] = {&gate, &up}, *down_out = &out;
    op->matmul_experts(d, 2, gate_up, &xn, &route.ids, gate_up_out);
    op->swiglu(d, &gate, &up, &gate);
    op->matmul_experts(d, 1, &down, &gate, &route.ids, &down_out);

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
