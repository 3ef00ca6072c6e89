/* cmd_convert.c: `tandem convert --llama2c MODEL.bin --vocab TOKENIZER.bin -o OUT.gguf`: imports a llama2.c
 * checkpoint and its tokenizer as a llama-architecture GGUF file. */
#include "cli_util.h"
#include "commands.h"

#include "model/llama2c.h"

#include <stdio.h>
#include <string.h>

static int usage(FILE *f) {
    fprintf(f, "usage: tandem convert --llama2c MODEL.bin --vocab TOKENIZER.bin -o OUT.gguf [--name NAME]\n"
               "  --llama2c MODEL.bin    llama2.c checkpoint (legacy export, version 0)\n"
               "  --vocab TOKENIZER.bin  its tokenizer in llama2.c's format (tokenizer.bin, tok512.bin, ...)\n"
               "  -o OUT.gguf            the GGUF file to write (llama architecture, F32 tensors)\n"
               "  --name NAME            general.name (default: the checkpoint's file name)\n");
    return f == stdout ? 0 : 2;
}

int tnd_cmd_convert(int argc, char **argv) {
    /* every option takes a value: table of flag -> destination */
    const char *model = NULL, *vocab = NULL, *out = NULL, *name = NULL;
    const struct {
        const char *flag;
        const char **dst;
    } options[] = {{"--llama2c", &model}, {"--vocab", &vocab}, {"-o", &out}, {"--name", &name}};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout);
        size_t k = 0;
        while (k < sizeof options / sizeof options[0] && strcmp(argv[i], options[k].flag)) k++;
        if (k == sizeof options / sizeof options[0]) {
            fprintf(stderr, "tandem: convert: unexpected argument '%s'\n", argv[i]);
            return usage(stderr);
        }
        const char *v = cli_value(argc, argv, &i);
        if (!v) return usage(stderr);
        *options[k].dst = v;
    }
    if (!model || !vocab || !out) {
        fprintf(stderr, "tandem: convert needs --llama2c, --vocab and -o\n");
        return usage(stderr);
    }
    double t0 = cli_now();
    tnd_llama2c_config c;
    if (tnd_llama2c_convert(model, vocab, out, name, &c) != TND_OK) {
        fprintf(stderr, "tandem: convert: %s\n", tnd_last_error());
        return 1;
    }
    fprintf(stderr, "tandem: wrote %s in %.2f s: llama, dim %d, hidden %d, %d layers, %d heads (%d KV), vocab %d (%s), "
            "context %d\n", out, cli_now() - t0, (int)c.dim, (int)c.hidden_dim, (int)c.n_layers, (int)c.n_heads,
            (int)c.n_kv_heads, (int)c.n_vocab, c.shared_classifier ? "output tied to the embedding" : "own output",
            (int)c.seq_len);
    return 0;
}
