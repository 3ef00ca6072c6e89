/* main.c: the `tandem` program: dispatches to one subcommand per file. */
#include "commands.h"

#include "tandem.h"

#include <stdio.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"run", tnd_cmd_run, "generate text: run -m MODEL -p PROMPT [-n N] [--temp T] [--seed S] [-t THREADS] [-c CTX]"},
    {"chat", tnd_cmd_chat, "interactive chat with the model's template: chat -m MODEL [--system TEXT]"},
    {"serve", tnd_cmd_serve, "OpenAI-compatible HTTP server with continuous batching: serve -m MODEL [--port 8080]"},
    {"embed", tnd_cmd_embed, "text embeddings, one JSON array per text: embed -m MODEL -p TEXT | -f FILE"},
    {"perplexity", tnd_cmd_perplexity, "perplexity of a text file: perplexity -m MODEL -f TEXT [-c CTX]"},
    {"info", tnd_cmd_info, "describe a GGUF model file: info MODEL.gguf [--json] [--tensors]"},
    {"convert", tnd_cmd_convert, "import llama2.c: convert --llama2c MODEL.bin --vocab TOKENIZER.bin -o OUT.gguf"},
    {"quantize", tnd_cmd_quantize, "re-type a model's tensors: quantize IN.gguf OUT.gguf TYPE"},
    {"model", tnd_cmd_model, "make a random model of a known shape: model make --shape NAME --type TYPE -o FILE"},
    {"plan", tnd_cmd_plan, "where each tensor group goes, bytes and time per device: plan -m MODEL [--device cpu,cpu]"},
    {"devices", tnd_cmd_devices, "the devices of this build and machine: memory, measured bandwidth: devices"},
    {"cloud", tnd_cmd_cloud, "serve a model's middle layers to devices: cloud -m MODEL --listen HOST:PORT --key FILE"},
    {"bench", tnd_cmd_bench, "prompt and generation speed vs the memory roofline: bench -m MODEL [-p 512] [-n 128]"},
    {"logits", tnd_cmd_logits, "write the logits of token ids: logits -m MODEL --ids \"1 2 3\" -o OUT.f32"},
    {"tokenize", tnd_cmd_tokenize, "text on stdin to token ids: tokenize -m MODEL [--ids] [--no-bos] [--special]"},
    {"detokenize", tnd_cmd_detokenize, "token ids on stdin to text: detokenize -m MODEL [--special]"},
};

static void usage(FILE *f) {
    fprintf(f, "tandem %s: run language models on the processors a device has\n\nusage: tandem COMMAND [ARGS]\n\n",
            tnd_version());
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'tandem COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("tandem %s\n", tnd_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tandem: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
