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

float *tnd_test_read_floats(const char *path, size_t count) {
    if (!path) return NULL;
    size_t size = 0;
    uint8_t *bytes = tnd_test_read_file(path, &size);
    if (!bytes || size != count * sizeof(float)) {
        fprintf(stderr, "%s: expected %zu floats\n", path, count);
        free(bytes);
        return NULL;
    }
    return (float *)(void *)bytes; /* malloc memory: aligned for any type */
}

double tnd_test_nmse(const float *x, const float *ref, size_t n) {
    double mean = 0, num = 0, den = 0;
    for (size_t i = 0; i < n; i++) mean += ref[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++) {
        num += ((double)x[i] - ref[i]) * ((double)x[i] - ref[i]);
        den += ((double)ref[i] - mean) * ((double)ref[i] - mean);
    }
    return num / den;
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
