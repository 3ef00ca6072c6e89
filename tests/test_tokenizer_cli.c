/* test_tokenizer_cli.c: `tandem tokenize` and `tandem detokenize` from outside: their output against the library,
 * stdin taken byte for byte, the round trip through both commands, and exit codes for bad input. */
#include "harness.h"

#include "tandem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs `tandem ARGS < input` and captures stdout; returns the exit code (-1 if it could not run). */
static int run_tandem(const char *args, const char *input, size_t input_len, char *out, size_t cap, size_t *out_len) {
    char in_path[] = "/tmp/tnd_tokcli_XXXXXX";
    int fd = mkstemp(in_path);
    if (fd < 0) return -1;
    bool written = write(fd, input, input_len) == (ssize_t)input_len;
    close(fd);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s < '%s' 2>/dev/null", TND_TANDEM_BIN, args, in_path);
    FILE *p = written ? popen(cmd, "r") : NULL;
    int rc = -1;
    if (p) {
        *out_len = fread(out, 1, cap - 1, p);
        out[*out_len] = 0;
        int status = pclose(p);
        rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    unlink(in_path);
    return rc;
}

static void test_vocab(const char *name, const char *text, size_t len) {
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", name);
    snprintf(path, sizeof path, "%s", tnd_fixture(rel));
    tnd_model *m = NULL;
    tnd_tokenizer *tok = NULL;
    if (!CHECK_OK(tnd_model_open(path, NULL, &m)) || !CHECK_OK(tnd_tokenizer_init(m, &tok))) {
        tnd_model_close(m);
        return;
    }
    /* --ids with the model's BOS, as the library gives with ADD_SPECIAL */
    int32_t ids[512];
    int32_t n = tnd_tokenizer_encode(tok, text, len, TND_TOKENIZE_ADD_SPECIAL, ids, 512);
    char want[8192] = "", out[8192], args[4200];
    size_t k = 0, out_len = 0;
    for (int32_t i = 0; i < n; i++) k += (size_t)snprintf(want + k, sizeof want - k, i ? " %d" : "%d", ids[i]);
    snprintf(want + k, sizeof want - k, "\n");
    snprintf(args, sizeof args, "tokenize -m '%s' --ids", path);
    CHECK(run_tandem(args, text, len, out, sizeof out, &out_len) == 0 && !strcmp(out, want));

    /* --no-bos, then back through detokenize gives the text, byte for byte */
    n = tnd_tokenizer_encode(tok, text, len, 0, ids, 512);
    char id_text[8192];
    k = 0;
    for (int32_t i = 0; i < n; i++) k += (size_t)snprintf(id_text + k, sizeof id_text - k, "%d,", ids[i]);
    snprintf(args, sizeof args, "tokenize -m '%s' --ids --no-bos", path);
    CHECK(run_tandem(args, text, len, out, sizeof out, &out_len) == 0);
    snprintf(args, sizeof args, "detokenize -m '%s'", path);
    CHECK(run_tandem(args, out, out_len, out, sizeof out, &out_len) == 0 && out_len == len &&
          !memcmp(out, text, len));
    CHECK(run_tandem(args, id_text, k, out, sizeof out, &out_len) == 0 && out_len == len && !memcmp(out, text, len));

    /* id/piece lines: one per token */
    snprintf(args, sizeof args, "tokenize -m '%s' --no-bos", path);
    CHECK(run_tandem(args, text, len, out, sizeof out, &out_len) == 0);
    int lines = 0;
    for (size_t i = 0; i < out_len; i++) lines += out[i] == '\n';
    CHECK(lines == n);

    /* bad ids and options */
    snprintf(args, sizeof args, "detokenize -m '%s'", path);
    CHECK(run_tandem(args, "1 2 99999999", 12, out, sizeof out, &out_len) == 1);
    CHECK(run_tandem(args, "1 two", 5, out, sizeof out, &out_len) == 1);
    snprintf(args, sizeof args, "tokenize -m '%s' --bogus", path);
    CHECK(run_tandem(args, "x", 1, out, sizeof out, &out_len) == 2);
    tnd_tokenizer_free(tok);
    tnd_model_close(m);
}

int main(void) {
    static const char text[] = "Hello world!\n\tcode(x) == 42;  \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\xa6\x99\n";
    test_vocab("llama-spm", text, sizeof text - 1);
    test_vocab("gpt-2", text, sizeof text - 1);
    char out[64];
    size_t out_len = 0;
    CHECK(run_tandem("tokenize", "x", 1, out, sizeof out, &out_len) == 2);
    CHECK(run_tandem("tokenize -m /nonexistent.gguf", "x", 1, out, sizeof out, &out_len) == 1);
    return tnd_test_finish("test_tokenizer_cli");
}
