#version 450
#extension GL_EXT_control_flow_attributes : require
// matmul.comp: y[t][r] = sum_c w[r][c] * x[t][c] for a weight of the type named by TYPE_*. A workgroup takes ROWS
// weight rows and a block of up to TOKENS tokens; each row has LANES invocations that take its chunks of 32 in turn
// (neighbouring lanes read neighbouring blocks), decode each chunk once and use it for every token of the block. The
// lanes' partial sums meet in shared memory, added in a fixed order: a row's result does not depend on the batch.
// With INT8 (quantized types, where the device has integer dot products) x comes as 8-bit blocks (quantize_q8.comp),
// and a chunk is its 8-bit levels times x's levels, four at a time, scaled once per half.
#define WG 64
#define ROWS 4
#define LANES (WG / ROWS)
#define TOKENS 8
layout(local_size_x = WG) in;
layout(binding = 0) readonly buffer Weights { uint w[]; };
#if defined(INT8)
layout(binding = 1) readonly buffer XQ { uint xq[]; };
#else
layout(binding = 1) readonly buffer X { float x[]; };
#endif
layout(binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Params {
    uint w_off, row_bytes, n_cols, n_rows, n_tokens; // w_off, row_bytes in bytes
    uint x_off, x_stride, y_off, y_stride;           // in floats; with INT8, x_stride is blocks per row of xq
} p;

#include "dequant.glsl"
#if defined(INT8)
#include "levels.glsl"
#include "q8.glsl"
#endif

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
#if defined(INT8)
            uint qw[8];
            vec2 scale, minv;
            chunk_levels(row_at, c, qw, scale, minv);
            [[unroll]] for (uint t = 0u; t < TOKENS; t++) {
                if (t >= nt) break;
                uint xb = ((t0 + t) * p.x_stride + c) * Q8_WORDS;
                int dot0 = 0, dot1 = 0;
                [[unroll]] for (uint j = 0u; j < 4u; j++) {
                    dot0 += sdot4x8(int(qw[j]), int(xq[xb + j]), 0);
                    dot1 += sdot4x8(int(qw[j + 4u]), int(xq[xb + j + 4u]), 0);
                }
                float dx = uintBitsToFloat(xq[xb + 8u]);
                acc[t] += dx * (scale.x * float(dot0) + scale.y * float(dot1) - minv.x * float(int(xq[xb + 9u])) -
                                minv.y * float(int(xq[xb + 10u])));
            }
#else
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
#endif
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
