/* cmd_chat.c: `tandem chat -m MODEL [--system TEXT] [--chat-template NAME]`: multi-turn chat on stdin/stdout with
 * the model's chat template. Each turn renders the whole conversation and reuses the cached prefix, so only the new
 * tokens are evaluated. An empty line or end of input ends the chat. */
#include "cli_util.h"
#include "commands.h"
#include "generate.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { CHAT_MAX_MESSAGES = 512 };

static int usage(FILE *f) {
    fprintf(f, "usage: tandem chat -m MODEL [--system TEXT] [--chat-template NAME] [options]\n");
    cli_gen_usage(f);
    return f == stdout ? 0 : 2;
}

/* Renders the conversation with the assistant prompt appended into a malloc'ed string. */
static char *render(const char *template_name, const tnd_chat_message *msgs, size_t n, const char *eos_text) {
    size_t needed = 0;
    tnd_status st = tnd_chat_template_apply(template_name, msgs, n, 1, eos_text, NULL, 0, &needed);
    if (st != TND_ERR_BUFFER_TOO_SMALL && st != TND_OK) return cli_error("chat template"), NULL;
    char *buf = malloc(needed + 1);
    if (buf && tnd_chat_template_apply(template_name, msgs, n, 1, eos_text, buf, needed + 1, &needed) != TND_OK) {
        cli_error("chat template");
        free(buf);
        return NULL;
    }
    return buf;
}

/* One user turn: render, tokenize, evaluate the new suffix, generate the reply into *reply. */
static bool turn(cli_session *s, const cli_gen_options *o, const char *template_name, const tnd_chat_message *msgs,
                 size_t n, const char *eos_text, char **reply) {
    char *prompt = render(template_name, msgs, n, eos_text);
    if (!prompt) return false;
    size_t len = strlen(prompt);
    uint32_t flags = TND_TOKENIZE_ADD_SPECIAL | TND_TOKENIZE_PARSE_SPECIAL;
    int32_t count = tnd_tokenizer_encode(s->tok, prompt, len, flags, NULL, 0);
    bool ok = count != TND_TOKENIZE_ERROR;
    int32_t *tokens = ok ? malloc(sizeof(int32_t) * (size_t)(count < 0 ? -count : count) + 1) : NULL;
    if (ok && tokens) {
        count = count < 0 ? -count : count;
        ok = tnd_tokenizer_encode(s->tok, prompt, len, flags, tokens, count) == count &&
             cli_session_set_tokens(s, tokens, count) && cli_session_generate(s, o, stdout, reply);
    } else if (!ok) {
        cli_error("prompt");
    }
    free(tokens);
    free(prompt);
    return ok && tokens;
}

int tnd_cmd_chat(int argc, char **argv) {
    cli_gen_options o;
    cli_gen_defaults(&o);
    o.n_predict = -1;
    const char *system = NULL, *template_name = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout);
        int r = cli_gen_parse(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        if (!strcmp(a, "--system") || !strcmp(a, "--chat-template")) {
            const char *v = cli_value(argc, argv, &i);
            if (!v) return 2;
            if (!strcmp(a, "--system")) system = v;
            else template_name = v;
        } else {
            fprintf(stderr, "tandem: unknown option '%s'\n", a);
            return usage(stderr);
        }
    }
    if (!o.model_path) return usage(stderr);
    cli_session s;
    int rc = 1;
    tnd_chat_message msgs[CHAT_MAX_MESSAGES];
    char *owned[CHAT_MAX_MESSAGES];
    size_t n = 0, n_owned = 0;
    if (!cli_session_open(&s, &o)) goto cleanup;
    if (template_name && tnd_chat_template_lookup(template_name, &template_name) != TND_OK) {
        cli_error("--chat-template");
        goto cleanup;
    }
    if (!template_name && tnd_model_chat_template(s.model, &template_name) != TND_OK) {
        cli_error("the model's chat template (choose one with --chat-template)");
        goto cleanup;
    }
    int32_t eos = tnd_tokenizer_special(s.tok, TND_TOKEN_EOS);
    size_t eos_len = 0;
    const char *eos_piece = eos >= 0 ? tnd_tokenizer_token_text(s.tok, eos, &eos_len) : NULL;
    char eos_text[128] = "";
    if (eos_piece && eos_len < sizeof eos_text) memcpy(eos_text, eos_piece, eos_len);
    if (system) msgs[n++] = (tnd_chat_message){"system", system};
    bool tty = isatty(STDIN_FILENO);
    fprintf(stderr, "tandem chat (%s template); an empty line ends it\n", template_name);
    char line[16384];
    while (n + 2 <= CHAT_MAX_MESSAGES) {
        if (tty) fputs("> ", stderr);
        if (!fgets(line, sizeof line, stdin)) break;
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) break;
        owned[n_owned] = strdup(line);
        if (!owned[n_owned]) break;
        msgs[n++] = (tnd_chat_message){"user", owned[n_owned++]};
        char *reply = NULL;
        bool ok = turn(&s, &o, template_name, msgs, n, eos_text[0] ? eos_text : NULL, &reply);
        fputc('\n', stdout);
        if (!ok) {
            free(reply);
            goto cleanup;
        }
        owned[n_owned] = reply ? reply : strdup("");
        msgs[n++] = (tnd_chat_message){"assistant", owned[n_owned++]};
        if (tty) cli_session_report(&s);
    }
    rc = 0;
cleanup:
    for (size_t i = 0; i < n_owned; i++) free(owned[i]);
    cli_session_close(&s);
    return rc;
}
