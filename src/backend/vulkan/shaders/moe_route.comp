#version 450
// moe_route.comp: a router's choice for each token (one invocation per token): the n_used largest logits (ties to
// the lower index, in descending order), weighed by their softmax over all experts, or over the chosen ones where
// `normalize`. Selection reads logits: softmax keeps their order.
layout(local_size_x = 64) in;
layout(binding = 0) readonly buffer Logits { float l[]; };
layout(binding = 1) writeonly buffer Ids { int ids[]; };
layout(binding = 2) writeonly buffer Weights { float w[]; };
layout(push_constant) uniform Params {
    uint n_tokens, n_experts, n_used, normalize, l_off, l_stride, ids_off, ids_stride, w_off, w_stride;
} p;

const uint MAX_USED = 16u;

void main() {
    uint t = gl_GlobalInvocationID.x;
    if (t >= p.n_tokens) return;
    uint lb = p.l_off + t * p.l_stride;
    int chosen[MAX_USED];
    for (uint j = 0u; j < p.n_used; j++) {
        int best = -1;
        for (uint e = 0u; e < p.n_experts; e++) {
            bool taken = false;
            for (uint i = 0u; i < j; i++) taken = taken || chosen[i] == int(e);
            if (!taken && (best < 0 || l[lb + e] > l[lb + uint(best)])) best = int(e);
        }
        chosen[j] = best;
    }
    float m = l[lb + uint(chosen[0])], all = 0.0, picked = 0.0;
    for (uint e = 0u; e < p.n_experts; e++) all += exp(l[lb + e] - m);
    for (uint j = 0u; j < p.n_used; j++) picked += exp(l[lb + uint(chosen[j])] - m);
    float denominator = p.normalize != 0u ? picked : all;
    for (uint j = 0u; j < p.n_used; j++) {
        ids[p.ids_off + t * p.ids_stride + j] = chosen[j];
        w[p.w_off + t * p.w_stride + j] = exp(l[lb + uint(chosen[j])] - m) / denominator;
    }
}
