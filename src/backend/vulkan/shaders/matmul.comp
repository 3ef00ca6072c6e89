#version 450
#extension GL_EXT_control_flow_attributes : require
// matmul.comp: y[t][r] = sum_c w[r][c] * x[t][c] for a weight of the type named by TYPE_*. One workgroup per weight
// row and block of up to TOKENS tokens: its invocations take the row's chunks of 32 in turn, decode each once and
// use it for every token of the block, then the workgroup sums the partial dot products.
#define WG 64
#define TOKENS 8
layout(local_size_x = WG) in;
layout(binding = 0) readonly buffer Weights { uint w[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Params {
    uint w_off, row_bytes, n_cols, n_rows, n_tokens; // w_off, row_bytes in bytes
    uint x_off, x_stride, y_off, y_stride;           // in floats
} p;

#include "dequant.glsl"
#include "reduce.glsl"

void main() {
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint t0 = gl_WorkGroupID.z * TOKENS;
    if (row >= p.n_rows) return; // the whole workgroup leaves together
    uint nt = min(uint(TOKENS), p.n_tokens - t0);
    float acc[TOKENS];
    [[unroll]] for (uint t = 0u; t < TOKENS; t++) acc[t] = 0.0;
    uint n_chunks = (p.n_cols + 31u) / 32u, row_at = p.w_off + row * p.row_bytes;
    for (uint c = gl_LocalInvocationID.x; c < n_chunks; c += WG) {
        float v[32];
        dequant32(row_at, c, p.n_cols, v);
        uint n = min(32u, p.n_cols - 32u * c);
        [[unroll]] for (uint t = 0u; t < TOKENS; t++) {
            if (t >= nt) break;
            uint xb = p.x_off + (t0 + t) * p.x_stride + 32u * c;
            float s = 0.0;
            for (uint i = 0u; i < n; i++) s += v[i] * x[xb + i];
            acc[t] += s;
        }
    }
    [[unroll]] for (uint t = 0u; t < TOKENS; t++) {
        if (t >= nt) break;
        float total = workgroup_sum(acc[t]);
        if (gl_LocalInvocationID.x == 0u) y[p.y_off + (t0 + t) * p.y_stride + row] = total;
    }
}
