#version 450
// kv_store.comp: stores the step's rows of k or v (F32, [n_step][width]) into a pool at the step's slots, as the type
// KV_F32, KV_F16, KV_Q8_0 or KV_Q4_0 (quantized the way the CPU quantizes, so both caches hold the same values). A
// pool row (one position of every head) is row_bytes, slot after slot. One invocation per element (F32), pair of
// elements (F16) or block of 32 (Q8_0, Q4_0: blocks of 34 and 18 bytes share 32-bit words with their neighbours,
// so their 16-bit halves are written with atomics).
layout(local_size_x = 64) in;
layout(binding = 0) readonly buffer Src { float src[]; };
layout(binding = 1) buffer Pool { uint pool[]; };
layout(binding = 2) readonly buffer Meta { uint meta[]; };
layout(push_constant) uniform Params {
    uint width, row_bytes, src_off, src_stride, n_step;
} p;

#include "step.glsl"

// Writes the 16-bit value v at even byte offset o, leaving the other half of its word to its owner.
void put_half(uint o, uint v) {
    uint shift = (o & 2u) * 8u;
    atomicAnd(pool[o >> 2], ~(0xffffu << shift));
    atomicOr(pool[o >> 2], (v & 0xffffu) << shift);
}

void main() {
    uint j = gl_GlobalInvocationID.x, t = gl_GlobalInvocationID.y, sb = p.src_off + t * p.src_stride;
    uint row = step_slot(t) * p.row_bytes;
#if defined(KV_F32)
    if (j >= p.width) return;
    pool[row / 4u + j] = floatBitsToUint(src[sb + j]);
#elif defined(KV_F16)
    if (2u * j >= p.width) return;
    pool[row / 4u + j] = packHalf2x16(vec2(src[sb + 2u * j], src[sb + 2u * j + 1u]));
#else
    if (32u * j >= p.width) return;
    float x[32];
    bool finite = true;
    for (uint i = 0u; i < 32u; i++) {
        x[i] = src[sb + 32u * j + i];
        finite = finite && !isnan(x[i]) && !isinf(x[i]);
    }
#if defined(KV_Q8_0)
    uint b = row + 34u * j;
    float amax = 0.0;
    for (uint i = 0u; i < 32u; i++) amax = max(amax, abs(x[i]));
    float d = amax / 127.0, id = d != 0.0 ? 1.0 / d : 0.0;
    put_half(b, finite ? packHalf2x16(vec2(d, 0.0)) : 0x7e00u);
    for (uint i = 0u; i < 32u; i += 2u) {
        int q[2];
        for (uint k = 0u; k < 2u; k++) {
            float r = sign(x[i + k] * id) * floor(abs(x[i + k] * id) + 0.5); // half away from zero, as roundf
            q[k] = finite ? int(clamp(r, -127.0, 127.0)) : 0;
        }
        put_half(b + 2u + i, uint(q[0] & 0xff) | (uint(q[1] & 0xff) << 8));
    }
#else // Q4_0: d from the signed element of largest magnitude (the first such), levels 0..15
    uint b = row + 18u * j;
    float amax = 0.0, mx = 0.0;
    for (uint i = 0u; i < 32u; i++)
        if (amax < abs(x[i])) {
            amax = abs(x[i]);
            mx = x[i];
        }
    float d = mx / -8.0, id = d != 0.0 ? 1.0 / d : 0.0;
    put_half(b, finite ? packHalf2x16(vec2(d, 0.0)) : 0x7e00u);
    uint level[32];
    for (uint i = 0u; i < 32u; i++) {
        float v = x[i] * id + 8.5;
        level[i] = !finite || !(v >= 0.0) ? 0u : v >= 15.0 ? 15u : uint(v);
    }
    for (uint i = 0u; i < 16u; i += 2u)
        put_half(b + 2u + i, (level[i] | (level[i + 16u] << 4)) | ((level[i + 1u] | (level[i + 17u] << 4)) << 8));
#endif
#endif
}
