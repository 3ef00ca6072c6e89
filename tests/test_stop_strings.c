/* test_stop_strings.c: the incremental stop-string matcher: text shown step by step across piece boundaries,
 * overlapping and nested stop strings, a stop at the very start, flush at the end, UTF-8 stop strings and held
 * partial characters, and a randomized comparison with a byte-by-byte reference for every way of cutting the text. */
#include "harness.h"

#include "tandem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------------------------- */

/* Feeds one piece and checks what is shown and the stop index. */
static void step(tnd_stop_matcher *m, const char *piece, const char *expect_shown, int32_t expect_stop) {
    const char *text = NULL;
    size_t len = 0;
    int32_t stop = -2;
    if (!CHECK_OK(tnd_stop_matcher_feed(m, piece, strlen(piece), &text, &len, &stop))) return;
    bool ok = len == strlen(expect_shown) && memcmp(text, expect_shown, len) == 0 && stop == expect_stop;
    if (!CHECK(ok))
        fprintf(stderr, "  piece '%s': shown '%.*s' stop %d, expected '%s' stop %d\n", piece, (int)len, text, stop,
                expect_shown, expect_stop);
}

static void flush(tnd_stop_matcher *m, const char *expect) {
    const char *text = NULL;
    size_t len = 0;
    if (!CHECK_OK(tnd_stop_matcher_flush(m, &text, &len))) return;
    if (!CHECK(len == strlen(expect) && memcmp(text, expect, len) == 0))
        fprintf(stderr, "  flush: '%.*s', expected '%s'\n", (int)len, text, expect);
}

static tnd_stop_matcher *make(const char *const *stops, int32_t n, int hold_utf8) {
    tnd_stop_matcher *m = NULL;
    CHECK_OK(tnd_stop_matcher_init(stops, NULL, n, hold_utf8, &m));
    return m;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Hand-made cases
 * ------------------------------------------------------------------------------------------------------------- */

static void test_across_pieces(void) {
    const char *stops[] = {"</s>", "\n\nUser:"};
    tnd_stop_matcher *m = make(stops, 2, 0);
    if (!m) return;
    step(m, "Hello <", "Hello ", -1);
    step(m, "/", "", -1);
    step(m, "s", "", -1);
    step(m, "> more text", "", 0);
    step(m, "later", "", 0); /* nothing after a stop */
    flush(m, "");
    /* a held prefix that turns out not to be a stop is shown with the next piece */
    tnd_stop_matcher_reset(m);
    step(m, "a<", "a", -1);
    step(m, "/b", "</b", -1);
    step(m, "\n", "", -1);
    step(m, "\nUs", "", -1);
    step(m, "e", "", -1);
    step(m, "d", "\n\nUsed", -1);
    step(m, "x\n\nUser: hi", "x", 1);
    tnd_stop_matcher_free(m);
}

static void test_overlapping(void) {
    /* "abc" completes before "bcd" */
    const char *s1[] = {"bcd", "abc"};
    tnd_stop_matcher *m = make(s1, 2, 0);
    if (m) {
        step(m, "xab", "x", -1);
        step(m, "cd", "", 1);
    }
    tnd_stop_matcher_free(m);
    /* a short stop inside a longer one completes first */
    const char *s2[] = {"abcd", "bc"};
    m = make(s2, 2, 0);
    if (m) step(m, "zabcd", "za", 1);
    tnd_stop_matcher_free(m);
    /* both end at the same byte: the longer one is excluded */
    const char *s3[] = {"ab", "xab"};
    m = make(s3, 2, 0);
    if (m) {
        step(m, "zx", "z", -1);
        step(m, "a", "", -1);
        step(m, "b!", "", 1);
    }
    tnd_stop_matcher_free(m);
    /* a stop that overlaps itself: "aab" in "aaab", one byte at a time */
    const char *s4[] = {"aab"};
    m = make(s4, 1, 0);
    if (m) {
        step(m, "a", "", -1);
        step(m, "a", "", -1);
        step(m, "a", "a", -1);
        step(m, "b", "", 0);
    }
    tnd_stop_matcher_free(m);
}

static void test_start_and_flush(void) {
    const char *stops[] = {"###", "\n\n"};
    tnd_stop_matcher *m = make(stops, 2, 0);
    if (!m) return;
    step(m, "###tail", "", 0);
    flush(m, "");
    tnd_stop_matcher_reset(m);
    step(m, "\n", "", -1);
    step(m, "\n", "", 1);
    tnd_stop_matcher_reset(m);
    /* generation ends while text is held: flush shows it, nothing is lost */
    step(m, "The end.\n", "The end.", -1);
    flush(m, "\n");
    tnd_stop_matcher_reset(m);
    step(m, "x #", "x ", -1);
    step(m, "#", "", -1);
    flush(m, "##");
    flush(m, "");
    /* no stop strings at all: everything passes through at once */
    tnd_stop_matcher *none = make(NULL, 0, 0);
    if (none) {
        step(none, "anything \xE4", "anything \xE4", -1);
        flush(none, "");
    }
    tnd_stop_matcher_free(none);
    tnd_stop_matcher_free(m);
}

static void test_utf8(void) {
    /* "。" is E3 80 82; the pieces cut characters in the middle */
    const char *stops[] = {"\xE3\x80\x82"};
    tnd_stop_matcher *m = make(stops, 1, 0);
    if (m) {
        step(m, "\xE4\xBD\xA0\xE5\xA5", "\xE4\xBD\xA0\xE5\xA5", -1); /* 你 + two bytes of 好 */
        step(m, "\xBD\xE3", "\xBD", -1);                             /* E3 may start the stop */
        step(m, "\x80", "", -1);
        step(m, "\x81", "\xE3\x80\x81", -1);                         /* "、", not the stop */
        step(m, "\xE3\x80\x82\xE5\x86\x8D", "", 0);
    }
    tnd_stop_matcher_free(m);
    /* holding partial characters: shown text always ends on a whole character or on invalid bytes */
    const char *stops2[] = {"END"};
    m = make(stops2, 1, 1);
    if (m) {
        step(m, "caf\xC3", "caf", -1);
        step(m, "\xA9!", "\xC3\xA9!", -1);
        step(m, "\xF0\x9F", "", -1);              /* first half of a 4-byte emoji */
        step(m, "\x98", "", -1);
        step(m, "\x80 E", "\xF0\x9F\x98\x80 ", -1); /* the character is complete; "E" may start END */
        step(m, "\xFF\x80", "E\xFF\x80", -1);     /* invalid bytes are not held */
        step(m, "\xE2\x82", "", -1);
        flush(m, "\xE2\x82");                     /* at the end an incomplete character is shown as it is */
    }
    tnd_stop_matcher_free(m);
    /* a stop string with a NUL byte, given by length */
    const char *nul_stop[] = {"a\0b"};
    size_t lens[] = {3};
    tnd_stop_matcher *z = NULL;
    CHECK_OK(tnd_stop_matcher_init(nul_stop, lens, 1, 0, &z));
    if (z) {
        const char *text = NULL;
        size_t len = 0;
        int32_t stop = -2;
        CHECK_OK(tnd_stop_matcher_feed(z, "xa\0b", 4, &text, &len, &stop));
        CHECK(len == 1 && text[0] == 'x' && stop == 0);
    }
    tnd_stop_matcher_free(z);
}

static void test_invalid(void) {
    const char *empty[] = {"ok", ""};
    tnd_stop_matcher *m = (tnd_stop_matcher *)(void *)&empty;
    CHECK(tnd_stop_matcher_init(empty, NULL, 2, 0, &m) == TND_ERR_INVALID_ARGUMENT && m == NULL);
    CHECK(strstr(tnd_last_error(), "stops[1]") != NULL);
    CHECK(tnd_stop_matcher_init(NULL, NULL, 1, 0, &m) == TND_ERR_INVALID_ARGUMENT);
    CHECK(tnd_stop_matcher_init(empty, NULL, -1, 0, &m) == TND_ERR_INVALID_ARGUMENT);
    CHECK(tnd_stop_matcher_init(empty, NULL, 1, 0, NULL) == TND_ERR_INVALID_ARGUMENT);
    m = make(empty, 1, 0);
    const char *text = NULL;
    size_t len = 0;
    CHECK(m && tnd_stop_matcher_feed(m, NULL, 3, &text, &len, NULL) == TND_ERR_INVALID_ARGUMENT);
    CHECK(m && tnd_stop_matcher_feed(m, NULL, 0, &text, &len, NULL) == TND_OK && len == 0);
    tnd_stop_matcher_free(m);
    tnd_stop_matcher_free(NULL);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Randomized: any cutting of the text gives what a byte-by-byte reading gives
 * ------------------------------------------------------------------------------------------------------------- */

static uint32_t rng_state = 12345;
static uint32_t next_rand(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

/* Reference by definition: read the text byte by byte; at the first byte where some stop string ends, the output
 * is everything before the longest stop string ending there. Returns the output length and the stop index. */
static size_t reference(const char *text, size_t n, const char *const *stops, int n_stops, int32_t *stop) {
    for (size_t end = 1; end <= n; end++) {
        size_t best_len = 0;
        *stop = -1;
        for (int i = 0; i < n_stops; i++) {
            size_t l = strlen(stops[i]);
            if (l <= end && memcmp(text + end - l, stops[i], l) == 0 && l > best_len) {
                best_len = l;
                *stop = i;
            }
        }
        if (*stop >= 0) return end - best_len;
    }
    *stop = -1;
    return n;
}

static void test_random_cuts(void) {
    enum { TRIALS = 3000 };
    int mismatches = 0, stops_hit = 0;
    for (int trial = 0; trial < TRIALS; trial++) {
        char stop_buf[4][6], text[48], out[64];
        const char *stops[4];
        int n_stops = 1 + (int)(next_rand() % 4);
        for (int i = 0; i < n_stops; i++) {
            int l = 1 + (int)(next_rand() % 4);
            for (int j = 0; j < l; j++) stop_buf[i][j] = (char)('a' + next_rand() % 3);
            stop_buf[i][l] = 0;
            stops[i] = stop_buf[i];
        }
        size_t n = next_rand() % 40;
        for (size_t j = 0; j < n; j++) text[j] = (char)('a' + next_rand() % (trial % 2 ? 3 : 5));
        int32_t ref_stop = -1;
        size_t ref_len = reference(text, n, stops, n_stops, &ref_stop);
        stops_hit += ref_stop >= 0;

        tnd_stop_matcher *m = NULL;
        if (tnd_stop_matcher_init(stops, NULL, n_stops, 0, &m) != TND_OK) {
            mismatches++;
            continue;
        }
        size_t out_len = 0, at = 0;
        int32_t stop = -1;
        bool ok = true;
        while (at < n && ok) {
            size_t piece = 1 + next_rand() % 6;
            if (piece > n - at) piece = n - at;
            const char *shown = NULL;
            size_t shown_len = 0;
            ok = tnd_stop_matcher_feed(m, text + at, piece, &shown, &shown_len, &stop) == TND_OK &&
                 out_len + shown_len <= sizeof out;
            if (ok) memcpy(out + out_len, shown, shown_len);
            out_len += shown_len;
            at += piece;
        }
        const char *rest = NULL;
        size_t rest_len = 0;
        ok = ok && tnd_stop_matcher_flush(m, &rest, &rest_len) == TND_OK && out_len + rest_len <= sizeof out;
        if (ok) memcpy(out + out_len, rest, rest_len);
        out_len += rest_len;
        ok = ok && out_len == ref_len && memcmp(out, text, out_len) == 0 && stop == ref_stop;
        if (!ok && mismatches++ < 5)
            fprintf(stderr, "  text '%.*s' stops %d: got %zu bytes stop %d, reference %zu bytes stop %d\n", (int)n,
                    text, n_stops, out_len, stop, ref_len, ref_stop);
        tnd_stop_matcher_free(m);
    }
    printf("  random cuts: %d texts (%d with a stop), %d mismatches\n", TRIALS, stops_hit, mismatches);
    CHECK(mismatches == 0);
    CHECK(stops_hit > TRIALS / 4 && stops_hit < TRIALS);
}

int main(void) {
    test_across_pieces();
    test_overlapping();
    test_start_and_flush();
    test_utf8();
    test_invalid();
    test_random_cuts();
    return tnd_test_finish("test_stop_strings");
}
