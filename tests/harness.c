/* harness.c: check counting and fixture lookup for the test programs. */
#include "harness.h"

#include "tandem.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

int tnd_test_failures = 0;
int tnd_test_checks = 0;

bool tnd_test_check(bool ok, const char *expr, const char *file, int line) {
    tnd_test_checks++;
    if (!ok) {
        tnd_test_failures++;
        fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", file, line, expr, tnd_last_error());
    }
    return ok;
}

const char *tnd_fixture(const char *relative) {
    static char path[4096];
    const char *dir = getenv("TND_SHARED_DIR");
    snprintf(path, sizeof path, "%s/fixtures/%s", dir ? dir : TND_SHARED_DIR, relative);
    return path;
}

uint8_t *tnd_test_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) *size = (size_t)n;
    return buf;
}

int tnd_test_finish(const char *name) {
    printf("%s: %d checks, %d failed\n", name, tnd_test_checks, tnd_test_failures);
    return tnd_test_failures ? 1 : 0;
}

int tnd_test_run(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
