#version 450
// rope.comp: rotates pair i of head h of token t in place by pos * scale * base^(-2i/n_rot) / freq_factor[i]; one
// invocation per (pair, head, token). Normal mode pairs (2i, 2i+1), NEOX mode (i, i + n_rot/2).
layout(local_size_x = 64) in;
layout(binding = 0) buffer X { float x[]; };
layout(binding = 1) readonly buffer Factors { float ff[]; };
layout(binding = 2) readonly buffer Meta { uint meta[]; };
layout(push_constant) uniform Params {
    uint x_off, x_stride, n_heads, head_dim, n_rot, neox, has_factors, ff_off, n_step;
    float base, scale;
} p;

#include "step.glsl"

void main() {
    uint i = gl_GlobalInvocationID.x, h = gl_GlobalInvocationID.y, t = gl_GlobalInvocationID.z, half_rot = p.n_rot / 2u;
    if (i >= half_rot || h >= p.n_heads) return;
    float theta = float(step_pos(t)) * p.scale * exp2(log2(p.base) * (-2.0 * float(i) / float(p.n_rot)));
    if (p.has_factors != 0u) theta /= ff[p.ff_off + i];
    float c = cos(theta), s = sin(theta);
    uint base_at = p.x_off + t * p.x_stride + h * p.head_dim;
    uint i0 = base_at + (p.neox != 0u ? i : 2u * i), i1 = base_at + (p.neox != 0u ? i + half_rot : 2u * i + 1u);
    float a = x[i0], b = x[i1];
    x[i0] = a * c - b * s;
    x[i1] = a * s + b * c;
}
