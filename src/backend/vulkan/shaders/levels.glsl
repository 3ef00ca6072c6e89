// levels.glsl: chunk c (32 elements) of a weight row of the type named by TYPE_* as 8-bit levels for the int8 matmul:
// element i = scale[h] * level_i - minv[h], h its half of 16 (i < 16: h = 0), levels unsigned (but Q8_0's, signed)
// and packed four to a word like the activations (quantize_q8.comp). The same decoding as dequant32 (dequant.glsl),
// with the offsets of the signed types (Q4_0's 8, Q6_K's 32) moved into minv.

// Bytes o .. o + 3 as a little-endian word (o need not be aligned).
uint word_at(uint o) { return byte_at(o) | (byte_at(o + 1u) << 8) | (byte_at(o + 2u) << 16) | (byte_at(o + 3u) << 24); }

// Bit `first + k` of bits, for k = 0 .. 3, moved to bit 4 of byte k (the fifth bit of four levels).
uint fifth_bits(uint bits, uint first) {
    uint w = 0u;
    for (uint k = 0u; k < 4u; k++) w |= ((bits >> (first + k)) & 1u) << (8u * k + 4u);
    return w;
}

void chunk_levels(uint row, uint c, out uint qw[8], out vec2 scale, out vec2 minv) {
#if defined(LEGACY_TYPE)
    uint b = row + c * BLOCK_BYTES;
    float d = f16_at(b);
#if defined(TYPE_Q8_0)
    for (uint j = 0u; j < 8u; j++) qw[j] = word_at(b + 2u + 4u * j);
    scale = vec2(d);
    minv = vec2(0.0);
#else
#if defined(TYPE_Q4_0)
    uint qs = b + 2u, qh = 0u;
    minv = vec2(8.0 * d);
#elif defined(TYPE_Q4_1)
    uint qs = b + 4u, qh = 0u;
    minv = vec2(-f16_at(b + 2u));
#elif defined(TYPE_Q5_0)
    uint qh = half_at(b + 2u) | (half_at(b + 4u) << 16), qs = b + 6u;
    minv = vec2(16.0 * d);
#else // Q5_1
    uint qh = half_at(b + 4u) | (half_at(b + 6u) << 16), qs = b + 8u;
    minv = vec2(-f16_at(b + 2u));
#endif
    for (uint j = 0u; j < 4u; j++) {
        uint u = word_at(qs + 4u * j);
        qw[j] = (u & 0x0f0f0f0fu) | fifth_bits(qh, 4u * j);
        qw[j + 4u] = ((u >> 4) & 0x0f0f0f0fu) | fifth_bits(qh, 16u + 4u * j);
    }
    scale = vec2(d);
#endif
#else // the K types: chunk k of super-block sb
    uint sb = c >> 3, k = c & 7u, b = row + sb * BLOCK_BYTES;
#if defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
    float d = f16_at(b), dmin = f16_at(b + 2u);
    uvec2 sm = k4_scale_min(b + 4u, k);
    scale = vec2(d * float(sm.x));
    minv = vec2(dmin * float(sm.y));
#if defined(TYPE_Q4_K)
    uint qs = b + 16u;
#else
    uint qh = b + 16u, qs = b + 48u;
#endif
    for (uint j = 0u; j < 8u; j++) {
        uint w = (word_at(qs + 32u * (k >> 1) + 4u * j) >> (4u * (k & 1u))) & 0x0f0f0f0fu;
#if defined(TYPE_Q5_K)
        w |= ((word_at(qh + 4u * j) >> k) & 0x01010101u) << 4;
#endif
        qw[j] = w;
    }
#elif defined(TYPE_Q6_K)
    float d = f16_at(b + 208u);
    uint h = k >> 2, part = k & 3u;
    scale = vec2(d * float(sbyte_at(b + 192u + 2u * k)), d * float(sbyte_at(b + 192u + 2u * k + 1u)));
    minv = 32.0 * scale;
    for (uint j = 0u; j < 8u; j++) {
        uint low = (word_at(b + 64u * h + 32u * (part & 1u) + 4u * j) >> (part >= 2u ? 4u : 0u)) & 0x0f0f0f0fu;
        uint high = (word_at(b + 128u + 32u * h + 4u * j) >> (2u * part)) & 0x03030303u;
        qw[j] = low | (high << 4);
    }
#else // Q2_K and Q3_K: 2-bit planes, sub-blocks of 16 (the halves)
    uint h = k >> 2, p = k & 3u;
#if defined(TYPE_Q2_K)
    uint qs = b + 16u;
#else
    uint qs = b + 32u;
#endif
    for (uint half_ = 0u; half_ < 2u; half_++) {
        vec2 sm = k23_scale_min(b, 2u * k + half_);
        scale[half_] = sm.x;
#if defined(TYPE_Q2_K)
        minv[half_] = sm.y;
#else
        minv[half_] = 4.0 * sm.x; // levels 0..7 for the signed -4..3
#endif
    }
    for (uint j = 0u; j < 8u; j++) {
        uint w = (word_at(qs + 32u * h + 4u * j) >> (2u * p)) & 0x03030303u;
#if defined(TYPE_Q3_K)
        w |= ((word_at(b + 4u * j) >> k) & 0x01010101u) << 2; // the third bit, from hmask
#endif
        qw[j] = w;
    }
#endif
#endif
}
