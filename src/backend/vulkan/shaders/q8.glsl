// q8.glsl: activations as 8-bit blocks (quantize_q8.comp writes them, matmul.comp with INT8 reads them), and the
// packed 4 x int8 dot product (SPIR-V OpSDot of SPV_KHR_integer_dot_product, declared through spirv intrinsics: the
// GLSL extension for it is newer than Debian 12's glslc).
#extension GL_EXT_spirv_intrinsics : require

const uint Q8_WORDS = 11u; // 8 words of levels, the scale, the two halves' level sums

// sum over k of int8 byte k of a times int8 byte k of b (format 0: PackedVectorFormat4x8Bit)
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4x8(int a, int b, spirv_literal int format);
