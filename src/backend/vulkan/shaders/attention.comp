#version 450
#extension GL_EXT_control_flow_attributes : require
// attention.comp: paged causal attention, flash style. One workgroup per (token, query head): the context is walked
// in tiles of WG positions; each invocation scores one position of the tile against the query, the workgroup
// keeps a running maximum and sum of the softmax (rescaling what it has summed when the maximum grows), and each
// invocation accumulates up to 4 of the head's dimensions of the weighted V rows. K and V are F32, F16, Q8_0 or Q4_0
// (K_*, V_*), a row of n_head_kv * head_dim elements per position, positions found through the step's block tables.
#define WG 64
#define MAX_HEAD_DIM 256
layout(local_size_x = WG) in;
layout(binding = 0) readonly buffer Q { float q[]; };
layout(binding = 1) writeonly buffer Out { float o[]; };
layout(binding = 2) readonly buffer KPool { uint kp[]; };
layout(binding = 3) readonly buffer VPool { uint vp[]; };
layout(binding = 4) readonly buffer Meta { uint meta[]; };
layout(push_constant) uniform Params {
    uint q_off, q_stride, o_off, o_stride, n_head, n_head_kv, head_dim, block_size, n_step;
    uint k_row_bytes, v_row_bytes;
    float scale;
} p;

#include "reduce.glsl"
#include "step.glsl"

shared float qs[MAX_HEAD_DIM];
shared float weights[WG];
shared uint slots[WG];

// Element e of a pool row that starts at byte `row`, K or V as its type says.
#define POOL_BYTE(buf, o) ((buf[(o) >> 2] >> (((o) & 3u) * 8u)) & 0xffu)
#define POOL_HALF(buf, o) ((buf[(o) >> 2] >> (((o) & 2u) * 8u)) & 0xffffu)
#define POOL_F32(buf, row, e) uintBitsToFloat(buf[(row) / 4u + (e)])
#define POOL_F16(buf, row, e) unpackHalf2x16(POOL_HALF(buf, (row) + 2u * (e))).x
#define POOL_Q8_0(buf, row, e)                                                                                     \
    (unpackHalf2x16(POOL_HALF(buf, (row) + 34u * ((e) >> 5))).x *                                                  \
     float(int(POOL_BYTE(buf, (row) + 34u * ((e) >> 5) + 2u + ((e) & 31u)) << 24) >> 24))
#define POOL_Q4_0(buf, row, e)                                                                                     \
    (unpackHalf2x16(POOL_HALF(buf, (row) + 18u * ((e) >> 5))).x *                                                  \
     (float((POOL_BYTE(buf, (row) + 18u * ((e) >> 5) + 2u + ((e) & 15u)) >> (((e) & 16u) >> 2)) & 15u) - 8.0))

float k_at(uint row, uint e) {
#if defined(K_F32)
    return POOL_F32(kp, row, e);
#elif defined(K_F16)
    return POOL_F16(kp, row, e);
#elif defined(K_Q8_0)
    return POOL_Q8_0(kp, row, e);
#else
    return POOL_Q4_0(kp, row, e);
#endif
}

float v_at(uint row, uint e) {
#if defined(V_F32)
    return POOL_F32(vp, row, e);
#elif defined(V_F16)
    return POOL_F16(vp, row, e);
#elif defined(V_Q8_0)
    return POOL_Q8_0(vp, row, e);
#else
    return POOL_Q4_0(vp, row, e);
#endif
}

void main() {
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x;
    uint hk = h / (p.n_head / p.n_head_kv), n_ctx = step_n_ctx(t);
    uint qb = p.q_off + t * p.q_stride + h * p.head_dim;
    for (uint i = tid; i < p.head_dim; i += WG) qs[i] = q[qb + i] * p.scale;
    barrier();
    float m = -1.0 / 0.0, sum = 0.0, acc[MAX_HEAD_DIM / WG];
    [[unroll]] for (uint j = 0u; j < MAX_HEAD_DIM / WG; j++) acc[j] = 0.0;
    for (uint p0 = 0u; p0 < n_ctx; p0 += WG) {
        uint pos = p0 + tid;
        float s = -1.0 / 0.0;
        if (pos < n_ctx) {
            uint slot = step_slot_of(t, pos, p.block_size), kb = hk * p.head_dim;
            slots[tid] = slot;
            s = 0.0;
            for (uint i = 0u; i < p.head_dim; i++) s += qs[i] * k_at(slot * p.k_row_bytes, kb + i);
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
            for (uint i = 0u; i < n; i++) a += weights[i] * v_at(slots[i] * p.v_row_bytes, hk * p.head_dim + d);
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
