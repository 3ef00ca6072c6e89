#version 450
// matmul_experts.comp: the chosen experts' matmuls of a stacked weight of the type named by TYPE_*. Pair q = (token
// t, slot j) = t * n_used + j uses expert ids[t][j]: y[q][r] = row r of that expert times x's row t (one input per
// token) or q (per_slot: one per pair); an id of -1 skips the pair: its row of y is zeros. One workgroup per (row,
// pair), so a pair's result never depends on the batch it is in.
#define WG 64
layout(local_size_x = WG) in;
layout(binding = 0) readonly buffer Weights { uint w[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 2) writeonly buffer Y { float y[]; };
layout(binding = 3) readonly buffer Ids { int ids[]; };
layout(push_constant) uniform Params {
    uint row_bytes, n_cols, rows_per_expert, n_pairs, n_used, per_slot;
    uint x_off, x_stride, y_off, y_stride, ids_off, ids_stride;
} p;

#include "dequant.glsl"
#include "reduce.glsl"

void main() {
    uint r = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x, q = gl_WorkGroupID.z;
    if (r >= p.rows_per_expert) return; // the whole workgroup leaves together
    uint t = q / p.n_used, j = q % p.n_used;
    int id = ids[p.ids_off + t * p.ids_stride + j];
    if (id < 0) { // the same for the whole workgroup: it leaves together
        if (gl_LocalInvocationID.x == 0u) y[p.y_off + q * p.y_stride + r] = 0.0;
        return;
    }
    uint expert = uint(id);
    uint row_at = (expert * p.rows_per_expert + r) * p.row_bytes;
    uint xb = p.x_off + (p.per_slot != 0u ? q : t) * p.x_stride;
    float acc = 0.0;
    uint n_chunks = (p.n_cols + 31u) / 32u;
    for (uint c = gl_LocalInvocationID.x; c < n_chunks; c += WG) {
        float v[32];
        dequant32(row_at, c, p.n_cols, v);
        uint n = min(32u, p.n_cols - 32u * c);
        for (uint i = 0u; i < n; i++) acc += v[i] * x[xb + 32u * c + i];
    }
    float total = workgroup_sum(acc);
    if (gl_LocalInvocationID.x == 0u) y[p.y_off + q * p.y_stride + r] = total;
}
