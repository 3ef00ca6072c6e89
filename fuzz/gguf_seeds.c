/* gguf_seeds.c: writes a handful of small, valid GGUF files (every value type, several tensor types, a custom
 * alignment, a vocab-only file) into the folder given as argument, as the seed corpus of fuzz_gguf. */
#include "gguf/gguf.h"
#include "quant/quant.h"

#include <stdio.h>
#include <string.h>

static int write_seed(const char *dir, int variant) {
    static uint8_t data[4096];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 7 + variant);
    tnd_gguf_writer *w = tnd_gguf_writer_init(NULL);
    if (!w) return 1;
    tnd_gguf_writer_set_str(w, "general.architecture", "llama");
    tnd_gguf_writer_set_u32(w, "llama.block_count", 2);
    tnd_gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    tnd_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", variant & 1);
    const char *toks[4] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81hi"};
    tnd_gguf_writer_set_array_str(w, "tokenizer.ggml.tokens", toks, NULL, 4);
    float scores[4] = {0, 0, 0, -1.5f};
    tnd_gguf_writer_set_array(w, "tokenizer.ggml.scores", TND_VALUE_F32, scores, 4);
    if (variant == 1) tnd_gguf_writer_set_u32(w, "general.alignment", 64);
    static const tnd_type types[] = {TND_TYPE_F32, TND_TYPE_F16, TND_TYPE_Q4_0, TND_TYPE_Q8_0, TND_TYPE_Q4_K,
                                     TND_TYPE_Q6_K, TND_TYPE_BF16};
    int n_tensors = variant == 2 ? 0 : 3;
    for (int i = 0; i < n_tensors; i++) {
        tnd_type t = types[(variant + i) % 7];
        int64_t ne[2] = {256, 2};
        char name[32];
        snprintf(name, sizeof name, "blk.%d.weight", i);
        tnd_gguf_writer_add_tensor(w, name, t, 2, ne, data);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/seed-%d.gguf", dir, variant);
    int rc = tnd_gguf_writer_write_file(w, path) != TND_OK;
    tnd_gguf_writer_free(w);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: gguf_seeds DIR\n");
        return 2;
    }
    int rc = 0;
    for (int v = 0; v < 4; v++) rc |= write_seed(argv[1], v);
    return rc;
}
