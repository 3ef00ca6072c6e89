#version 450
// rms_norm.comp: y[r] = x[r] / rms(x[r]) * gamma, one workgroup per row (y may be x).
#define WG 64
layout(local_size_x = WG) in;
layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer Gamma { float g[]; };
layout(binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Params {
    uint n_cols, x_off, x_stride, g_off, y_off, y_stride;
    float eps;
} p;

#include "reduce.glsl"

void main() {
    uint r = gl_WorkGroupID.x, xb = p.x_off + r * p.x_stride, yb = p.y_off + r * p.y_stride;
    float ss = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < p.n_cols; i += WG) ss += x[xb + i] * x[xb + i];
    float scale = inversesqrt(workgroup_sum(ss) / float(p.n_cols) + p.eps);
    for (uint i = gl_LocalInvocationID.x; i < p.n_cols; i += WG) y[yb + i] = x[xb + i] * scale * g[p.g_off + i];
}
