/* cmd_run.c: `tandem run -m MODEL -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--seed S] [-t THREADS]
 * [-c CTX]`: streams the generated text (only the text) to stdout and statistics to stderr. An empty prompt starts
 * from BOS. */
#include "cli_util.h"
#include "commands.h"
#include "generate.h"

#include <stdlib.h>
#include <string.h>

static int usage(FILE *f) {
    fprintf(f, "usage: tandem run -m MODEL [-p PROMPT | -f FILE] [options]\n");
    cli_gen_usage(f);
    fprintf(f, "  --no-bos            do not add the model's BOS token\n  --parse-special     control tokens written "
               "in the prompt become those tokens\n");
    return f == stdout ? 0 : 2;
}

int tnd_cmd_run(int argc, char **argv) {
    cli_gen_options o;
    cli_gen_defaults(&o);
    const char *prompt = "", *prompt_file = NULL;
    uint32_t flags = TND_TOKENIZE_ADD_SPECIAL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout);
        int r = cli_gen_parse(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        if (!strcmp(a, "--no-bos")) flags &= ~TND_TOKENIZE_ADD_SPECIAL;
        else if (!strcmp(a, "--parse-special")) flags |= TND_TOKENIZE_PARSE_SPECIAL;
        else if (!strcmp(a, "-p") || !strcmp(a, "-f")) {
            const char *v = cli_value(argc, argv, &i);
            if (!v) return 2;
            if (!strcmp(a, "-p")) prompt = v;
            else prompt_file = v;
        } else {
            fprintf(stderr, "tandem: unknown option '%s'\n", a);
            return usage(stderr);
        }
    }
    if (!o.model_path) return usage(stderr);
    char *file_text = NULL;
    if (prompt_file) {
        size_t n = 0;
        if (!(file_text = cli_read_file(prompt_file, &n))) return 1;
        prompt = file_text;
    }
    int rc = 1;
    cli_session s;
    int32_t *tokens = NULL;
    if (!cli_session_open(&s, &o)) goto cleanup;
    size_t len = strlen(prompt);
    int32_t n = tnd_tokenizer_encode(s.tok, prompt, len, flags, NULL, 0);
    if (n == TND_TOKENIZE_ERROR) {
        cli_error("prompt");
        goto cleanup;
    }
    n = n < 0 ? -n : n;
    if (n == 0) { /* nothing to condition on: start from BOS even when the model does not add it */
        int32_t bos = tnd_tokenizer_special(s.tok, TND_TOKEN_BOS);
        if (bos < 0) {
            fprintf(stderr, "tandem: empty prompt and the model has no BOS token\n");
            goto cleanup;
        }
        tokens = malloc(sizeof *tokens);
        if (!tokens) goto cleanup;
        tokens[0] = bos;
        n = 1;
    } else {
        tokens = malloc(sizeof *tokens * (size_t)n);
        if (!tokens || tnd_tokenizer_encode(s.tok, prompt, len, flags, tokens, n) != n) goto cleanup;
    }
    fputs(prompt, stdout);
    tnd_generate_params gp = cli_generate_params(&o, &s, stdout, len > 0);
    if (tnd_session_start(s.session, &gp, tokens, n) != TND_OK) cli_error("prompt (a longer context: -c)");
    else if (cli_session_generate(&s)) rc = 0;
    fputc('\n', stdout);
    if (rc == 0) cli_session_report(&s);
cleanup:
    cli_session_close(&s);
    free(tokens);
    free(file_text);
    return rc;
}
