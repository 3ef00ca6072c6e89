#version 450
#extension GL_EXT_control_flow_attributes : require
// matmul.comp: y[t][r] = sum_c w[r][c] * x[t][c] for a weight of the type named by TYPE_*. A workgroup takes ROWS
// weight rows and a block of up to TOKENS tokens; each row has LANES invocations that take its chunks of 32 in turn
// (neighbouring lanes read neighbouring blocks), decode each chunk once and use it for every token of the block. The
// lanes' partial sums meet in shared memory, added in a fixed order: a row's result does not depend on the batch.
#define WG 64
#define ROWS 4
#define LANES (WG / ROWS)
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

shared float partial[TOKENS][WG];

void main() {
    uint lane = gl_LocalInvocationID.x % LANES, slot = gl_LocalInvocationID.x / LANES;
    uint row = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * ROWS + slot;
    uint t0 = gl_WorkGroupID.z * TOKENS, nt = min(uint(TOKENS), p.n_tokens - t0);
    float acc[TOKENS];
    [[unroll]] for (uint t = 0u; t < TOKENS; t++) acc[t] = 0.0;
    if (row < p.n_rows) { // (no early return: the whole workgroup meets at the barrier)
        uint n_chunks = (p.n_cols + 31u) / 32u, row_at = p.w_off + row * p.row_bytes;
        for (uint c = lane; c < n_chunks; c += LANES) {
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
    }
    [[unroll]] for (uint t = 0u; t < TOKENS; t++) partial[t][gl_LocalInvocationID.x] = acc[t];
    barrier();
    if (lane == 0u && row < p.n_rows)
        for (uint t = 0u; t < nt; t++) {
            float total = 0.0;
            for (uint i = 0u; i < LANES; i++) total += partial[t][slot * LANES + i];
            y[p.y_off + (t0 + t) * p.y_stride + row] = total;
        }
}
