/* simple.c: the smallest complete use of libtandem: load a model, tokenize a prompt, and let a generation session
 * continue it, printing the text as it comes. Uses only the public header.
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

static void print_text(void *user, const char *text, size_t len) {
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT [N_TOKENS]\n", argv[0]);
        return 2;
    }
    tnd_model *model = NULL;
    tnd_tokenizer *tok = NULL;
    tnd_context *ctx = NULL;
    tnd_session *session = NULL;
    if (tnd_model_open(argv[1], NULL, &model) != TND_OK) return fail("open");
    if (tnd_tokenizer_init(model, &tok) != TND_OK) return fail("tokenizer");
    tnd_context_params cp = tnd_context_default_params();
    cp.n_ctx = 512;
    if (tnd_context_init(model, &cp, &ctx) != TND_OK) return fail("context");
    if (tnd_session_init(ctx, tok, 0, 0, &session) != TND_OK) return fail("session");

    /* the prompt, with BOS as the model asks */
    int32_t tokens[256];
    int32_t n = tnd_tokenizer_encode(tok, argv[2], strlen(argv[2]), TND_TOKENIZE_ADD_SPECIAL, tokens, 256);
    if (n <= 0) return fail("prompt (empty or longer than 256 tokens)");

    /* greedy continuation, streamed through the callback, up to N_TOKENS or the end of generation */
    tnd_generate_params gp = tnd_generate_default_params();
    gp.sampling.temperature = 0;
    gp.max_tokens = argc > 3 ? atoi(argv[3]) : 64;
    gp.on_text = print_text;
    printf("%s", argv[2]);
    if (tnd_session_start(session, &gp, tokens, n) != TND_OK) return fail("start");
    if (tnd_session_generate(session) != TND_OK) return fail("generate");
    printf("\n");

    tnd_session_free(session);
    tnd_context_free(ctx);
    tnd_tokenizer_free(tok);
    tnd_model_close(model);
    return 0;
}
