// step.glsl: the step's batch metadata (tnd_step) as begin_step laid it out in the uint buffer `meta`, from word
// word 0 on (it is the first thing in the arena), for p.n_step tokens: positions, KV slots, context lengths, then each token's block table offset
// (an absolute word index into meta) and the tables themselves.
uint step_pos(uint t) { return meta[t]; }
uint step_slot(uint t) { return meta[p.n_step + t]; }
uint step_n_ctx(uint t) { return meta[2u * p.n_step + t]; }
// The KV slot of position `pos` in token t's sequence.
uint step_slot_of(uint t, uint pos, uint block_size) {
    uint table = meta[3u * p.n_step + t];
    return meta[table + pos / block_size] * block_size + pos % block_size;
}
