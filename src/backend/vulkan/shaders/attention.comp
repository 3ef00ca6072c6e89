#version 450
#extension GL_EXT_control_flow_attributes : require
// attention.comp: paged causal attention, flash style. One workgroup per (token, query head): the context is walked
// in tiles of WG positions; each invocation scores one position of the tile against the query, the workgroup
// keeps a running maximum and sum of the softmax (rescaling what it has summed when the maximum grows), and each
// invocation accumulates up to 4 of the head's dimensions of the weighted V rows. K and V are F32 or F16 (K_*, V_*),
// rows of n_head_kv * head_dim elements per position, positions found through the step's block tables.
#define WG 64
#define MAX_HEAD_DIM 256
layout(local_size_x = WG) in;
layout(binding = 0) readonly buffer Q { float q[]; };
layout(binding = 1) writeonly buffer Out { float o[]; };
layout(binding = 2) readonly buffer KPool { uint kp[]; };
layout(binding = 3) readonly buffer VPool { uint vp[]; };
layout(binding = 4) readonly buffer Meta { uint meta[]; };
layout(push_constant) uniform Params {
    uint q_off, q_stride, o_off, o_stride, n_head, n_head_kv, head_dim, block_size, meta_off, n_step;
    float scale;
} p;

#include "reduce.glsl"
#include "step.glsl"

shared float qs[MAX_HEAD_DIM];
shared float weights[WG];
shared uint slots[WG];

float k_at(uint e) {
#if defined(K_F32)
    return uintBitsToFloat(kp[e]);
#else
    return unpackHalf2x16(kp[e >> 1] >> ((e & 1u) * 16u)).x;
#endif
}

float v_at(uint e) {
#if defined(V_F32)
    return uintBitsToFloat(vp[e]);
#else
    return unpackHalf2x16(vp[e >> 1] >> ((e & 1u) * 16u)).x;
#endif
}

void main() {
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x;
    uint hk = h / (p.n_head / p.n_head_kv), width = p.n_head_kv * p.head_dim, n_ctx = step_n_ctx(t);
    uint qb = p.q_off + t * p.q_stride + h * p.head_dim;
    for (uint i = tid; i < p.head_dim; i += WG) qs[i] = q[qb + i] * p.scale;
    barrier();
    float m = -1.0 / 0.0, sum = 0.0, acc[MAX_HEAD_DIM / WG];
    [[unroll]] for (uint j = 0u; j < MAX_HEAD_DIM / WG; j++) acc[j] = 0.0;
    for (uint p0 = 0u; p0 < n_ctx; p0 += WG) {
        uint pos = p0 + tid;
        float s = -1.0 / 0.0;
        if (pos < n_ctx) {
            uint slot = step_slot_of(t, pos, p.block_size), kb = slot * width + hk * p.head_dim;
            slots[tid] = slot;
            s = 0.0;
            for (uint i = 0u; i < p.head_dim; i++) s += qs[i] * k_at(kb + i);
        }
        float m_new = max(m, workgroup_max(s)); // finite: the tile has at least one position
        float e = pos < n_ctx ? exp(s - m_new) : 0.0, correction = exp(m - m_new);
        weights[tid] = e;
        sum = sum * correction + workgroup_sum(e); // its barriers also publish weights[] and slots[]
        uint n = min(uint(WG), n_ctx - p0);
        [[unroll]] for (uint j = 0u; j < MAX_HEAD_DIM / WG; j++) {
            uint d = tid + j * WG;
            if (d >= p.head_dim) break;
            float a = acc[j] * correction;
            for (uint i = 0u; i < n; i++) a += weights[i] * v_at(slots[i] * width + hk * p.head_dim + d);
            acc[j] = a;
        }
        m = m_new;
        barrier(); // weights[] and slots[] are rewritten by the next tile
    }
    uint ob = p.o_off + t * p.o_stride + h * p.head_dim;
    [[unroll]] for (uint j = 0u; j < MAX_HEAD_DIM / WG; j++) {
        uint d = tid + j * WG;
        if (d < p.head_dim) o[ob + d] = acc[j] / sum;
    }
}
