#version 450
// kv_store.comp: stores the step's rows of k or v (F32, [n_step][width]) into a pool at the step's slots, as F32
// (KV_F32) or F16 (KV_F16). A pool row (one position of every head) is `width` elements, slot after slot. One
// invocation per element (F32) or pair of elements (F16).
layout(local_size_x = 64) in;
layout(binding = 0) readonly buffer Src { float src[]; };
layout(binding = 1) writeonly buffer Pool { uint pool[]; };
layout(binding = 2) readonly buffer Meta { uint meta[]; };
layout(push_constant) uniform Params {
    uint width, src_off, src_stride, meta_off, n_step;
} p;

#include "step.glsl"

void main() {
    uint j = gl_GlobalInvocationID.x, t = gl_GlobalInvocationID.y, sb = p.src_off + t * p.src_stride;
#if defined(KV_F32)
    if (j >= p.width) return;
    pool[step_slot(t) * p.width + j] = floatBitsToUint(src[sb + j]);
#else
    if (2u * j >= p.width) return;
    pool[step_slot(t) * (p.width / 2u) + j] = packHalf2x16(vec2(src[sb + 2u * j], src[sb + 2u * j + 1u]));
#endif
}
