#version 450
// quantize_q8.comp: rows of activations to 8-bit blocks for the int8 matmul (matmul.comp with INT8). Each block of 32
// elements of a row becomes Q8_WORDS words: 8 of packed int8 levels (element 4j + k in byte k of word j), its scale
// d = max |x| / 127 (levels round(x / d), half away from zero) and the level sums of its two halves of 16. Elements
// past the row's end count as 0. One invocation per block.
layout(local_size_x = 64) in;
layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) writeonly buffer Q { uint q[]; };
layout(push_constant) uniform Params {
    uint n_cols, n_tokens, x_off, x_stride, blocks_per_row;
} p;

#include "q8.glsl"

void main() {
    uint b = gl_GlobalInvocationID.x, t = gl_GlobalInvocationID.y;
    if (b >= p.blocks_per_row || t >= p.n_tokens) return;
    uint xb = p.x_off + t * p.x_stride + 32u * b;
    float v[32], amax = 0.0;
    bool finite = true;
    for (uint i = 0u; i < 32u; i++) {
        v[i] = 32u * b + i < p.n_cols ? x[xb + i] : 0.0;
        finite = finite && !isnan(v[i]) && !isinf(v[i]);
        amax = max(amax, abs(v[i]));
    }
    // a block with a NaN or infinity: NaN scale, zero levels, so its dots come out NaN
    float d = finite ? amax / 127.0 : uintBitsToFloat(0x7fc00000u), id = finite && d != 0.0 ? 1.0 / d : 0.0;
    uint o = (t * p.blocks_per_row + b) * Q8_WORDS;
    int sums[2] = int[2](0, 0);
    for (uint j = 0u; j < 8u; j++) {
        uint word = 0u;
        for (uint k = 0u; k < 4u; k++) {
            float r = v[4u * j + k] * id;
            int level = finite ? clamp(int(sign(r) * floor(abs(r) + 0.5)), -127, 127) : 0;
            sums[j / 4u] += level;
            word |= uint(level & 0xff) << (8u * k);
        }
        q[o + j] = word;
    }
    q[o + 8u] = floatBitsToUint(d);
    q[o + 9u] = uint(sums[0]);
    q[o + 10u] = uint(sums[1]);
}
