/* cmd_chat.c: `tandem chat -m MODEL [--system TEXT] [--chat-template NAME] [--special-in-content]`: multi-turn chat
 * on stdin/stdout with the model's chat template; what the user types is plain text, never control tokens. Each
 * turn renders the whole conversation and reuses the cached prefix, so only the new tokens are evaluated. An empty
 * line or end of input ends the chat. */
#include "cli_util.h"
#include "commands.h"
#include "generate.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { CHAT_MAX_MESSAGES = 512 };

static int usage(FILE *f) {
    fprintf(f, "usage: tandem chat -m MODEL [--system TEXT] [--chat-template NAME] [--special-in-content] [options]\n"
               "  --special-in-content  control tokens typed in a message (\"<|im_start|>\") become those tokens, as\n"
               "                        in older versions; by default message text is plain text\n");
    cli_gen_usage(f);
    return f == stdout ? 0 : 2;
}

/* One user turn: the session renders and encodes the conversation with the assistant prompt appended (message
 * contents as plain text unless flags say otherwise), reuses the cached prefix, and streams the reply; *reply
 * receives a copy of it. */
static bool turn(cli_session *s, const cli_gen_options *o, const char *template_name, const tnd_chat_message *msgs,
                 size_t n, uint32_t flags, char **reply) {
    tnd_generate_params gp = cli_generate_params(o, s, stdout, true);
    cli_session_try_plan(s); /* a cloud lost in an earlier turn may answer again */
    if (tnd_session_start_chat(s->session, &gp, template_name, msgs, n, flags) != TND_OK)
        return cli_error("chat prompt (a longer context: -c)"), false;
    if (!cli_session_generate(s)) return false;
    *reply = strdup(tnd_session_text(s->session, NULL));
    return *reply != NULL;
}

int tnd_cmd_chat(int argc, char **argv) {
    cli_gen_options o;
    cli_gen_defaults(&o);
    o.n_predict = -1;
    const char *system = NULL, *template_name = NULL;
    uint32_t flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout);
        int r = cli_gen_parse(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        if (!strcmp(a, "--special-in-content")) {
            flags |= TND_CHAT_CONTENT_SPECIAL;
        } else if (!strcmp(a, "--system") || !strcmp(a, "--chat-template")) {
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
        bool ok = turn(&s, &o, template_name, msgs, n, flags, &reply);
        fputc('\n', stdout);
        if (!ok) {
            free(reply);
            goto cleanup;
        }
        owned[n_owned] = reply;
        msgs[n++] = (tnd_chat_message){"assistant", owned[n_owned++]};
        if (tty) cli_session_report(&s);
    }
    rc = 0;
cleanup:
    for (size_t i = 0; i < n_owned; i++) free(owned[i]);
    cli_session_close(&s);
    return rc;
}
