/* harness.h: the tiny test framework every test program uses: checks that count, a fixture path helper. */
#ifndef TND_TEST_HARNESS_H
#define TND_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

extern int tnd_test_failures;
extern int tnd_test_checks;

/* Records a check; prints file:line and the expression (and the library's last error) when it fails. */
bool tnd_test_check(bool ok, const char *expr, const char *file, int line);

#define CHECK(cond) tnd_test_check((cond), #cond, __FILE__, __LINE__)
/* Checks that a tnd_status is TND_OK. */
#define CHECK_OK(expr) tnd_test_check((expr) == TND_OK, #expr " == TND_OK", __FILE__, __LINE__)

/* Path of a file under the shared fixtures folder (static buffer, overwritten by the next call). */
const char *tnd_fixture(const char *relative);

/* Reads a whole file into a malloc'ed buffer; NULL on failure. */
uint8_t *tnd_test_read_file(const char *path, size_t *size);

/* A file of exactly `count` floats (a fixture's logits), malloc'ed; NULL (with a message) where it is missing or of
 * another size, or where path is NULL. */
float *tnd_test_read_floats(const char *path, size_t count);

/* sum((x - ref)^2) / sum((ref - mean(ref))^2): the NMSE of logits, as the fixtures' README defines it. */
double tnd_test_nmse(const float *x, const float *ref, size_t n);

/* Runs a shell command, captures its stdout (at most cap - 1 bytes, NUL-terminated) and returns its exit status
 * (-1 if it could not run or did not exit). */
int tnd_test_run(const char *cmd, char *out, size_t cap);

/* Prints the summary line and returns the process exit code. */
int tnd_test_finish(const char *name);

#endif
