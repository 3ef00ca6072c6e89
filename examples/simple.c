/* simple.c: the smallest complete use of libtandem: load a model, tokenize a prompt, decode it, then sample and
 * print tokens until the end of generation. Uses only the public header.
 *
 *   simple MODEL.gguf "Once upon a time" [N_TOKENS]
 */
#include "tandem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what) {
    fprintf(stderr, "%s: %s\n", what, tnd_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT [N_TOKENS]\n", argv[0]);
        return 2;
    }
    int n_predict = argc > 3 ? atoi(argv[3]) : 64;
    tnd_model *model = NULL;
    tnd_tokenizer *tok = NULL;
    tnd_context *ctx = NULL;
    tnd_sampler *sampler = NULL;
    if (tnd_model_open(argv[1], NULL, &model) != TND_OK) return fail("open");
    if (tnd_tokenizer_init(model, &tok) != TND_OK) return fail("tokenizer");
    tnd_context_params cp = tnd_context_default_params();
    cp.n_ctx = 512;
    if (tnd_context_init(model, &cp, &ctx) != TND_OK) return fail("context");
    tnd_sampler_params sp = tnd_sampler_default_params();
    sp.temperature = 0; /* greedy */
    if (tnd_sampler_init(&sp, tnd_model_n_vocab(model), &sampler) != TND_OK) return fail("sampler");

    /* the prompt, with BOS as the model asks */
    int32_t tokens[512];
    int32_t n = tnd_tokenizer_encode(tok, argv[2], strlen(argv[2]), TND_TOKENIZE_ADD_SPECIAL, tokens, 256);
    if (n <= 0) return fail("prompt (empty or longer than 256 tokens)");
    int32_t pos[256];
    for (int32_t i = 0; i < n; i++) pos[i] = i;
    tnd_batch batch = {.n_tokens = n, .tokens = tokens, .pos = pos}; /* logits of the last token only */
    if (tnd_context_decode(ctx, &batch) != TND_OK) return fail("decode");
    printf("%s", argv[2]);

    /* generate: sample from the last logits, print the piece, feed the token back */
    for (int32_t i = 0; i < n_predict && n + i < cp.n_ctx; i++) {
        int32_t token;
        if (tnd_sampler_sample(sampler, tnd_context_logits(ctx, 0), &token) != TND_OK) return fail("sample");
        if (tnd_tokenizer_is_eog(tok, token)) break;
        tnd_sampler_accept(sampler, token);
        size_t len = 0;
        const char *piece = tnd_tokenizer_piece(tok, token, 0, &len);
        fwrite(piece, 1, len, stdout);
        fflush(stdout);
        int32_t p = n + i;
        tnd_batch next = {.n_tokens = 1, .tokens = &token, .pos = &p};
        if (tnd_context_decode(ctx, &next) != TND_OK) return fail("decode");
    }
    printf("\n");
    tnd_sampler_free(sampler);
    tnd_context_free(ctx);
    tnd_tokenizer_free(tok);
    tnd_model_close(model);
    return 0;
}
