/* util.c: small helpers of the server: growable byte buffers, clocks, constant-time secret comparison, random ids,
 * and UTF-8 sanitizing for JSON strings. */
#include "server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ------------------------------------------------------------------------------------------------------------
 * Buffers
 * ---------------------------------------------------------------------------------------------------------- */

bool srv_buf_reserve(srv_buf *b, size_t n) {
    if (n > SIZE_MAX / 2 - b->len) return false;
    size_t need = b->len + n + 1;
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return false;
    b->data = d;
    b->cap = cap;
    return true;
}

bool srv_buf_append(srv_buf *b, const void *bytes, size_t n) {
    if (!srv_buf_reserve(b, n)) return false;
    if (n) memcpy(b->data + b->len, bytes, n);
    b->len += n;
    b->data[b->len] = 0;
    return true;
}

bool srv_buf_printf(srv_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !srv_buf_reserve(b, (size_t)n)) return false;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}

void srv_buf_free(srv_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------------------------------------------------
 * Clock, secrets, ids
 * ---------------------------------------------------------------------------------------------------------- */

double srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Every byte of the candidate is compared (against the secret's bytes, cycling), and the length difference is folded
 * in, so the time taken says nothing about how much of the secret matched. */
bool srv_secret_equal(const char *secret, size_t secret_len, const char *candidate, size_t candidate_len) {
    if (!secret_len) return false;
    volatile unsigned char diff = (unsigned char)(secret_len != candidate_len);
    for (size_t i = 0; i < candidate_len; i++)
        diff |= (unsigned char)(secret[i % secret_len] ^ candidate[i]);
    return diff == 0;
}

void srv_random_id(const char *prefix, char *out, size_t cap) {
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char raw[24];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
    }
    if (got < sizeof raw) { /* no kernel randomness: fall back on the clock (ids need to be unique, not secret) */
        uint64_t x = (uint64_t)(srv_now() * 1e9) ^ (uint64_t)time(NULL) << 20;
        for (size_t i = got; i < sizeof raw; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            raw[i] = (unsigned char)(x >> 33);
        }
    }
    size_t p = strlen(prefix);
    if (cap < p + sizeof raw + 1) {
        if (cap) out[0] = 0;
        return;
    }
    memcpy(out, prefix, p);
    for (size_t i = 0; i < sizeof raw; i++) out[p + i] = alphabet[raw[i] % (sizeof alphabet - 1)];
    out[p + sizeof raw] = 0;
}

/* ------------------------------------------------------------------------------------------------------------
 * UTF-8
 * ---------------------------------------------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 character at s[0..n) (RFC 3629: no overlongs, surrogates or values above
 * U+10FFFF), or 0 if there is none. */
static size_t utf8_char_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return len;
}

bool srv_utf8_sanitize(const char *s, size_t n, srv_buf *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0; /* bytes [i - run, i) are valid and not yet copied */
    while (i < n) {
        size_t len = utf8_char_len(u + i, n - i);
        if (len) {
            i += len;
            run += len;
            continue;
        }
        if (!srv_buf_append(out, s + i - run, run) || !srv_buf_append(out, "\xEF\xBF\xBD", 3)) return false;
        run = 0;
        i++;
    }
    return srv_buf_append(out, s + i - run, run);
}

/* jansson reports some allocation failures only by leaving data out: its lexer drops a character of a string when
 * an allocation fails, and json_object_set_new of a value that could not be made leaves the field out. So every
 * allocation of jansson goes through json_alloc, which notes a failure for the thread, and the server's loads and
 * dumps check the note. */
static _Thread_local bool json_alloc_failed;

static void *json_alloc(size_t size) {
    void *p = malloc(size);
    if (!p) json_alloc_failed = true;
    return p;
}

void srv_json_setup(void) { json_set_alloc_funcs(json_alloc, free); }

bool srv_json_alloc_failed(void) {
    bool failed = json_alloc_failed;
    json_alloc_failed = false;
    return failed;
}
