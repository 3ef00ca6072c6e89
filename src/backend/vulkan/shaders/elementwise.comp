#version 450
// elementwise.comp: out[r][i] = f(a[r][i], b[r][i]) over n_rows rows of n_cols, each operand with its own offset and
// row stride (a stride of 0 repeats one row: a bias). out may be a (in place).
layout(local_size_x = 64) in;
layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) readonly buffer B { float b[]; };
layout(binding = 2) writeonly buffer Out { float o[]; };
layout(push_constant) uniform Params {
    uint n_cols, n_rows, a_off, a_stride, b_off, b_stride, o_off, o_stride, op;
} p;

const uint OP_ADD = 0u, OP_SWIGLU = 1u, OP_COPY = 2u, OP_SIGMOID_SCALE = 3u;

void main() {
    uint i = gl_GlobalInvocationID.x, r = gl_GlobalInvocationID.y;
    if (i >= p.n_cols || r >= p.n_rows) return;
    uint bi = p.b_off + r * p.b_stride + (p.op == OP_SIGMOID_SCALE ? 0u : i);
    float x = a[p.a_off + r * p.a_stride + i], y = b[bi], z;
    if (p.op == OP_ADD) z = x + y;
    else if (p.op == OP_SWIGLU) z = x / (1.0 + exp(-x)) * y;
    else if (p.op == OP_COPY) z = y;
    else z = x / (1.0 + exp(-y)); // sigmoid_scale: b holds one gate per row
    o[p.o_off + r * p.o_stride + i] = z;
}
