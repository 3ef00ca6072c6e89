// reduce.glsl: sums and maxima over a workgroup of WG invocations: within each subgroup first, then across the
// subgroups through shared memory. Every invocation of the workgroup must call these (they contain barriers).
#extension GL_KHR_shader_subgroup_arithmetic : require

shared float reduce_scratch[WG];

float workgroup_sum(float x) {
    x = subgroupAdd(x);
    if (subgroupElect()) reduce_scratch[gl_SubgroupID] = x;
    barrier();
    float total = 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; i++) total += reduce_scratch[i];
    barrier();
    return total;
}

float workgroup_max(float x) {
    x = subgroupMax(x);
    if (subgroupElect()) reduce_scratch[gl_SubgroupID] = x;
    barrier();
    float m = reduce_scratch[0];
    for (uint i = 1u; i < gl_NumSubgroups; i++) m = max(m, reduce_scratch[i]);
    barrier();
    return m;
}
