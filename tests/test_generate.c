/* test_generate.c: the real trained stories260K model reproduces its published greedy text byte for byte through
 * `tandem run` (from the GGUF file, and from the llama2.c checkpoint imported with `tandem convert`), and run's
 * option errors are clear. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The text with leading whitespace removed (llama2.c strips the first piece's space). */
static const char *trim_left(const char *s) {
    while (*s == ' ' || *s == '\n') s++;
    return s;
}

/* llama2.c's 256 steps print one token per forward from BOS: 256 tokens after BOS make the published text. */
static void check_greedy_text(const char *model) {
    size_t ref_len = 0;
    char *ref = (char *)tnd_test_read_file(tnd_fixture("real/stories260K.greedy256.txt"), &ref_len);
    if (!CHECK(ref != NULL)) return;
    ref = realloc(ref, ref_len + 1);
    ref[ref_len] = 0;
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof cmd, "%s run -m '%s' -p '' -n 256 --temp 0 -t 2 2>/dev/null", TND_TANDEM_BIN, model);
    CHECK(tnd_test_run(cmd, out, sizeof out) == 0);
    bool same = strcmp(trim_left(out), ref) == 0;
    if (!CHECK(same)) fprintf(stderr, "%s: got:\n%s\nexpected:\n%s\n", model, out, ref);
    printf("%s: published greedy text %s\n", model, same ? "reproduced byte for byte" : "DIFFERS");
    free(ref);
}

int main(void) {
    char gguf[1024];
    snprintf(gguf, sizeof gguf, "%s", tnd_fixture("real/stories260K.gguf"));
    check_greedy_text(gguf);

    /* the llama2.c checkpoint, imported by tandem itself */
    char imported[] = "/tmp/tnd_stories_XXXXXX";
    int fd = mkstemp(imported);
    if (CHECK(fd >= 0)) {
        close(fd);
        char cmd[8192], out[4096], bin[1024], tok[1024];
        snprintf(bin, sizeof bin, "%s", tnd_fixture("real/stories260K.bin"));
        snprintf(tok, sizeof tok, "%s", tnd_fixture("real/tok512.bin"));
        snprintf(cmd, sizeof cmd, "%s convert --llama2c '%s' --vocab '%s' -o '%s' 2>&1", TND_TANDEM_BIN, bin, tok,
                 imported);
        if (CHECK(tnd_test_run(cmd, out, sizeof out) == 0)) check_greedy_text(imported);
        remove(imported);
    }

    char cmd[8192], out[4096];
    /* perplexity: the model's own greedy text is nearly certain to it; the fixtures' multilingual tokenizer test text
     * is far from TinyStories */
    char own[1024], other[1024];
    snprintf(own, sizeof own, "%s", tnd_fixture("real/stories260K.greedy256.txt"));
    snprintf(other, sizeof other, "%s", tnd_fixture("vocab/ggml-vocab-llama-spm.gguf.inp"));
    double ppl_own = 0, ppl_other = 0;
    snprintf(cmd, sizeof cmd, "%s perplexity -m '%s' -f '%s' -c 64 2>/dev/null", TND_TANDEM_BIN, gguf, own);
    CHECK(tnd_test_run(cmd, out, sizeof out) == 0 && sscanf(out, "perplexity %lf", &ppl_own) == 1);
    snprintf(cmd, sizeof cmd, "%s perplexity -m '%s' -f '%s' -c 64 2>/dev/null", TND_TANDEM_BIN, gguf, other);
    CHECK(tnd_test_run(cmd, out, sizeof out) == 0 && sscanf(out, "perplexity %lf", &ppl_other) == 1);
    printf("perplexity: own greedy text %.3f, unrelated text %.1f\n", ppl_own, ppl_other);
    CHECK(ppl_own > 1.0 && ppl_own < 3.0 && ppl_other > 50 * ppl_own);

    snprintf(cmd, sizeof cmd, "%s run -m '%s' --temp -1 2>&1", TND_TANDEM_BIN, gguf);
    CHECK(tnd_test_run(cmd, out, sizeof out) == 2 && strstr(out, "--temp"));
    snprintf(cmd, sizeof cmd, "%s run -m /nonexistent.gguf 2>&1", TND_TANDEM_BIN);
    CHECK(tnd_test_run(cmd, out, sizeof out) == 1 && strstr(out, "/nonexistent.gguf"));
    return tnd_test_finish("test_generate");
}
