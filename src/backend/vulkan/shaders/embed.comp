#version 450
// embed.comp: out[i] = row ids[i] of the table, decoded to float. One workgroup per output row, an invocation per
// chunk of 32 elements.
#define WG 64
layout(local_size_x = WG) in;
layout(binding = 0) readonly buffer Weights { uint w[]; };
layout(binding = 1) readonly buffer Ids { uint ids[]; };
layout(binding = 2) writeonly buffer Out { float o[]; };
layout(push_constant) uniform Params {
    uint w_off, row_bytes, n_cols, ids_off, o_off, o_stride;
} p;

#include "dequant.glsl"

void main() {
    uint i = gl_WorkGroupID.x, row_at = p.w_off + ids[p.ids_off + i] * p.row_bytes;
    uint n_chunks = (p.n_cols + 31u) / 32u;
    for (uint c = gl_LocalInvocationID.x; c < n_chunks; c += WG) {
        float v[32];
        dequant32(row_at, c, p.n_cols, v);
        uint n = min(32u, p.n_cols - 32u * c), ob = p.o_off + i * p.o_stride + 32u * c;
        for (uint e = 0u; e < n; e++) o[ob + e] = v[e];
    }
}
