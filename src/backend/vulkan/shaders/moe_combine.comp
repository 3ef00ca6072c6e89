#version 450
// moe_combine.comp: y[t][i] += sum over slots j (in order) of weights[t][j] * experts[t * n_used + j][i].
layout(local_size_x = 64) in;
layout(binding = 0) readonly buffer Experts { float e[]; };
layout(binding = 1) readonly buffer Weights { float w[]; };
layout(binding = 2) buffer Y { float y[]; };
layout(push_constant) uniform Params {
    uint width, n_used, e_off, e_stride, w_off, w_stride, y_off, y_stride;
} p;

void main() {
    uint i = gl_GlobalInvocationID.x, t = gl_GlobalInvocationID.y;
    if (i >= p.width) return;
    float acc = 0.0;
    for (uint j = 0u; j < p.n_used; j++)
        acc += w[p.w_off + t * p.w_stride + j] * e[p.e_off + (t * p.n_used + j) * p.e_stride + i];
    y[p.y_off + t * p.y_stride + i] += acc;
}
