/* test_recipe.c: the mixed-precision recipes give every tensor of the quantized fixture files (made by another
 * engine's quantizer from the same f32 model) the type that file has. */
#include "harness.h"

#include "model/model.h"
#include "model/recipe.h"

#include <stdio.h>
#include <string.h>

static void check_file(const char *name) {
    char path[128];
    snprintf(path, sizeof path, "models/%s.gguf", name);
    tnd_model *m = NULL;
    if (!CHECK_OK(tnd_model_open(tnd_fixture(path), NULL, &m))) return;
    const tnd_gguf *g = m->gguf;
    int64_t ftype = -1, n_layer = 0, n_head = 0, n_head_kv = 0;
    tnd_gguf_str arch_name = {"", 0};
    CHECK_OK(tnd_gguf_get_str(g, "general.architecture", &arch_name));
    char arch[32], key[64];
    snprintf(arch, sizeof arch, "%.*s", (int)(arch_name.len < 31 ? arch_name.len : 31), arch_name.ptr);
    CHECK_OK(tnd_gguf_get_int(g, "general.file_type", &ftype));
    snprintf(key, sizeof key, "%s.block_count", arch);
    CHECK_OK(tnd_gguf_get_int(g, key, &n_layer));
    snprintf(key, sizeof key, "%s.attention.head_count", arch);
    CHECK_OK(tnd_gguf_get_int(g, key, &n_head));
    snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
    CHECK_OK(tnd_gguf_get_int(g, key, &n_head_kv));
    tnd_recipe_model rm = {.n_layer = (int32_t)n_layer, .n_gqa = (int32_t)(n_head / n_head_kv),
                           .tied_output = tnd_gguf_find_tensor(g, "output.weight") < 0};
    int same = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const tnd_gguf_tensor *t = &g->tensors[i];
        tnd_type want = tnd_recipe_tensor_type((tnd_ftype)ftype, &rm, t->name, t->ne[0], t->n_dims);
        if (want == t->type) same++;
        else fprintf(stderr, "%s: %s is %s, recipe says %s\n", name, t->name, tnd_type_name(t->type), tnd_type_name(want));
    }
    CHECK(same == (int)g->n_tensors);
    printf("%-20s %s: %d/%d tensor types as in the file\n", name, tnd_ftype_name((tnd_ftype)ftype), same,
           (int)g->n_tensors);
    tnd_model_close(m);
}

int main(void) {
    static const char *files[] = {"llama-tiny-f16", "llama-tiny-bf16", "llama-tiny-q8_0", "llama-tiny-q4_0",
                                  "llama-tiny-q4_1", "llama-tiny-q5_0", "llama-tiny-q5_1", "llama-tiny-q2_k",
                                  "llama-tiny-q3_k_m", "llama-tiny-q4_k_m", "llama-tiny-q5_k_m", "llama-tiny-q6_k",
                                  "llama3-tiny-q4_k_m", "qwen2-tiny-q4_k_m", "qwen2-tiny-q8_0", "qwen3-tiny-q4_k_m",
                                  "qwen2moe-tiny-q4_k_m", "qwen2moe-tiny-q8_0", "mixtral-tiny-q4_k_m",
                                  "mixtral-tiny-q8_0"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) check_file(files[i]);
    tnd_ftype f;
    CHECK(tnd_ftype_parse("q4_k_m", &f) == TND_OK && f == TND_FTYPE_Q4_K_M);
    CHECK(tnd_ftype_parse("Q9_Z", &f) == TND_ERR_INVALID_ARGUMENT && strstr(tnd_last_error(), "Q4_K_M"));
    return tnd_test_finish("test_recipe");
}
