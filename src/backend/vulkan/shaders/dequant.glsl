// dequant.glsl: decoding 32 consecutive elements (a "chunk") of a weight row of the type named by TYPE_*, read from
// the uint buffer `w` that the including shader declares. Blocks sit at any byte offset (18, 22, 34, 110 or 210
// bytes follow each other), so fields are read as bytes and 16-bit halves out of 32-bit words; the layouts are
// those of src/quant/quant_blocks.h. A chunk of the K types is 32 elements of a 256-element super-block.

uint byte_at(uint o) { return (w[o >> 2] >> ((o & 3u) * 8u)) & 0xffu; }
uint half_at(uint o) { return (w[o >> 2] >> ((o & 2u) * 8u)) & 0xffffu; } // o even
float f16_at(uint o) { return unpackHalf2x16(half_at(o)).x; }
int sbyte_at(uint o) { return int(byte_at(o) << 24) >> 24; }

#if defined(TYPE_F32)
const uint BLOCK_ELEMS = 1u, BLOCK_BYTES = 4u;
#elif defined(TYPE_F16) || defined(TYPE_BF16)
const uint BLOCK_ELEMS = 1u, BLOCK_BYTES = 2u;
#elif defined(TYPE_Q4_0)
#define LEGACY_TYPE
const uint BLOCK_ELEMS = 32u, BLOCK_BYTES = 18u;
#elif defined(TYPE_Q4_1)
#define LEGACY_TYPE
const uint BLOCK_ELEMS = 32u, BLOCK_BYTES = 20u;
#elif defined(TYPE_Q5_0)
#define LEGACY_TYPE
const uint BLOCK_ELEMS = 32u, BLOCK_BYTES = 22u;
#elif defined(TYPE_Q5_1)
#define LEGACY_TYPE
const uint BLOCK_ELEMS = 32u, BLOCK_BYTES = 24u;
#elif defined(TYPE_Q8_0)
#define LEGACY_TYPE
const uint BLOCK_ELEMS = 32u, BLOCK_BYTES = 34u;
#elif defined(TYPE_Q2_K)
const uint BLOCK_ELEMS = 256u, BLOCK_BYTES = 84u;
#elif defined(TYPE_Q3_K)
const uint BLOCK_ELEMS = 256u, BLOCK_BYTES = 110u;
#elif defined(TYPE_Q4_K)
const uint BLOCK_ELEMS = 256u, BLOCK_BYTES = 144u;
#elif defined(TYPE_Q5_K)
const uint BLOCK_ELEMS = 256u, BLOCK_BYTES = 176u;
#elif defined(TYPE_Q6_K)
const uint BLOCK_ELEMS = 256u, BLOCK_BYTES = 210u;
#else
#error "dequant.glsl: no TYPE_ defined"
#endif

// 6-bit scale (x) and min (y) of sub-block s (< 8) in the 12-byte packing of Q4_K and Q5_K at byte offset p.
uvec2 k4_scale_min(uint p, uint s) {
    if (s < 4u) return uvec2(byte_at(p + s) & 63u, byte_at(p + s + 4u) & 63u);
    return uvec2((byte_at(p + s + 4u) & 15u) | ((byte_at(p + s - 4u) >> 6) << 4),
                 (byte_at(p + s + 4u) >> 4) | ((byte_at(p + s) >> 6) << 4));
}

#if defined(TYPE_Q2_K) || defined(TYPE_Q3_K)
// The scale (x) and min (y: Q2_K's, 0 for Q3_K) of sub-block s (< 16, of 16 elements) of the super-block at byte b.
vec2 k23_scale_min(uint b, uint s) {
#if defined(TYPE_Q2_K)
    uint sc = byte_at(b + s);
    return vec2(f16_at(b + 80u) * float(sc & 15u), f16_at(b + 82u) * float(sc >> 4));
#else
    uint low4 = s < 8u ? byte_at(b + 96u + s) & 15u : byte_at(b + 96u + s - 8u) >> 4;
    uint high2 = (byte_at(b + 96u + 8u + (s & 3u)) >> (2u * (s >> 2))) & 3u;
    return vec2(f16_at(b + 108u) * float(int(low4 | (high2 << 4)) - 32), 0.0);
#endif
}
#endif

// Elements 32c .. 32c + 31 of the row at byte offset `row` into v; elements at or past n_cols (only float types
// have rows that end inside a chunk) come out 0.
void dequant32(uint row, uint c, uint n_cols, out float v[32]) {
#if defined(TYPE_F32) || defined(TYPE_F16) || defined(TYPE_BF16)
    for (uint i = 0u; i < 32u; i++) {
        uint e = 32u * c + i;
        if (e >= n_cols) { v[i] = 0.0; continue; }
#if defined(TYPE_F32)
        v[i] = uintBitsToFloat(w[(row >> 2) + e]);
#elif defined(TYPE_F16)
        v[i] = f16_at(row + 2u * e);
#else
        v[i] = uintBitsToFloat(half_at(row + 2u * e) << 16);
#endif
    }
#elif defined(LEGACY_TYPE)
    uint b = row + c * BLOCK_BYTES;
    float d = f16_at(b);
#if defined(TYPE_Q8_0)
    for (uint i = 0u; i < 32u; i++) v[i] = d * float(sbyte_at(b + 2u + i));
#else
#if defined(TYPE_Q4_1) || defined(TYPE_Q5_1)
    float m = f16_at(b + 2u);
#endif
#if defined(TYPE_Q4_0)
    uint qs = b + 2u;
#elif defined(TYPE_Q4_1)
    uint qs = b + 4u;
#elif defined(TYPE_Q5_0)
    uint qh = half_at(b + 2u) | (half_at(b + 4u) << 16), qs = b + 6u;
#else
    uint qh = half_at(b + 4u) | (half_at(b + 6u) << 16), qs = b + 8u;
#endif
    for (uint i = 0u; i < 16u; i++) {
        uint q = byte_at(qs + i), lo = q & 15u, hi = q >> 4;
#if defined(TYPE_Q5_0) || defined(TYPE_Q5_1)
        lo |= ((qh >> i) & 1u) << 4;
        hi |= ((qh >> (i + 16u)) & 1u) << 4;
#endif
#if defined(TYPE_Q4_0)
        v[i] = d * (float(lo) - 8.0);
        v[i + 16u] = d * (float(hi) - 8.0);
#elif defined(TYPE_Q5_0)
        v[i] = d * (float(lo) - 16.0);
        v[i + 16u] = d * (float(hi) - 16.0);
#else
        v[i] = d * float(lo) + m;
        v[i + 16u] = d * float(hi) + m;
#endif
    }
#endif
#else // the K types: chunk k of super-block sb
    uint sb = c >> 3, k = c & 7u, b = row + sb * BLOCK_BYTES;
#if defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
    float d = f16_at(b), dmin = f16_at(b + 2u);
    uvec2 sm = k4_scale_min(b + 4u, k);
    float dl = d * float(sm.x), ml = dmin * float(sm.y);
#if defined(TYPE_Q4_K)
    uint qs = b + 16u;
#else
    uint qh = b + 16u, qs = b + 48u;
#endif
    for (uint l = 0u; l < 32u; l++) {
        uint q = (byte_at(qs + 32u * (k >> 1) + l) >> (4u * (k & 1u))) & 15u;
#if defined(TYPE_Q5_K)
        q |= ((byte_at(qh + l) >> k) & 1u) << 4;
#endif
        v[l] = dl * float(q) - ml;
    }
#elif defined(TYPE_Q6_K)
    float d = f16_at(b + 208u);
    uint h = k >> 2, part = k & 3u;
    float dl0 = d * float(sbyte_at(b + 192u + 2u * k)), dl1 = d * float(sbyte_at(b + 192u + 2u * k + 1u));
    for (uint l = 0u; l < 32u; l++) {
        uint low = (byte_at(b + 64u * h + 32u * (part & 1u) + l) >> (part >= 2u ? 4u : 0u)) & 15u;
        uint high = (byte_at(b + 128u + 32u * h + l) >> (2u * part)) & 3u;
        v[l] = (l < 16u ? dl0 : dl1) * float(int(low | (high << 4)) - 32);
    }
#else // Q2_K and Q3_K: 2-bit planes, sub-blocks of 16
    uint h = k >> 2, p = k & 3u;
#if defined(TYPE_Q2_K)
    uint qs = b + 16u;
#else
    uint qs = b + 32u;
#endif
    for (uint half_ = 0u; half_ < 2u; half_++) {
        vec2 sm = k23_scale_min(b, 2u * k + half_);
        float dl = sm.x, ml = sm.y;
        for (uint j = 0u; j < 16u; j++) {
            uint l = 16u * half_ + j;
            uint q = (byte_at(qs + 32u * h + l) >> (2u * p)) & 3u;
#if defined(TYPE_Q2_K)
            v[l] = dl * float(q) - ml;
#else
            uint third = (byte_at(b + l) >> k) & 1u;
            v[l] = dl * float(int(q | (third << 2)) - 4);
#endif
        }
    }
#endif
#endif
}
