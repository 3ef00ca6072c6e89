/* stop_strings.c: an incremental stop-string matcher that holds back generated text which may still become a
 * stop string and shows the rest. */
#include "core/alloc.h"
#include "core/error.h"

#include <stdbool.h>
#include <string.h>

struct tnd_stop_matcher {
    tnd_allocator allocator;     /* the C library's (all NULL) */
    int32_t n_stops;
    const char **stops;          /* [n_stops], pointing into `bytes` */
    size_t *lens;                /* [n_stops], each >= 1 */
    char *bytes;                 /* the stop strings, back to back */
    size_t max_len;              /* longest stop string */
    bool hold_utf8;
    /* text buffer: buf[0, shown) was returned by the previous call; buf[shown, len) is held back */
    char *buf;
    size_t len, cap, shown;
    int32_t hit;                 /* index of the stop string hit, or -1 */
};

tnd_status tnd_stop_matcher_init(const char *const *stops, const size_t *lens, int32_t n_stops,
                                 int hold_partial_utf8, tnd_stop_matcher **out) {
    if (!out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_stop_matcher_init: out is NULL");
    *out = NULL;
    if (n_stops < 0 || (n_stops > 0 && !stops))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "stop strings: n_stops %d is negative or stops is NULL", n_stops);
    size_t total = 0;
    for (int32_t i = 0; i < n_stops; i++) {
        if (!stops[i]) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "stop strings: stops[%d] is NULL", i);
        size_t n = lens ? lens[i] : strlen(stops[i]);
        if (n == 0) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "stop strings: stops[%d] is empty", i);
        if (!tnd_add_u64(total, n, &total))
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "stop strings: total length overflows");
    }
    tnd_allocator *a = NULL;
    tnd_stop_matcher *m = tnd_alloc(a, sizeof *m);
    if (!m) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "stop strings: out of memory");
    m->n_stops = n_stops;
    m->hold_utf8 = hold_partial_utf8 != 0;
    m->hit = -1;
    if (n_stops > 0) {
        m->stops = tnd_alloc_array(a, (size_t)n_stops, sizeof *m->stops);
        m->lens = tnd_alloc_array(a, (size_t)n_stops, sizeof *m->lens);
        m->bytes = tnd_alloc(a, total);
        if (!m->stops || !m->lens || !m->bytes) {
            tnd_stop_matcher_free(m);
            return tnd_fail(TND_ERR_OUT_OF_MEMORY, "stop strings: out of memory for %zu bytes", (size_t)total);
        }
        size_t at = 0;
        for (int32_t i = 0; i < n_stops; i++) {
            size_t n = lens ? lens[i] : strlen(stops[i]);
            memcpy(m->bytes + at, stops[i], n);
            m->stops[i] = m->bytes + at;
            m->lens[i] = n;
            if (n > m->max_len) m->max_len = n;
            at += n;
        }
    }
    *out = m;
    return TND_OK;
}

void tnd_stop_matcher_free(tnd_stop_matcher *m) {
    if (!m) return;
    tnd_allocator a = m->allocator;
    tnd_free(&a, m->stops);
    tnd_free(&a, m->lens);
    tnd_free(&a, m->bytes);
    tnd_free(&a, m->buf);
    tnd_free(&a, m);
}

tnd_status tnd_stop_matcher_clone(const tnd_stop_matcher *src, tnd_stop_matcher **out) {
    if (out) *out = NULL;
    if (!src || !out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_stop_matcher_clone: NULL matcher or out");
    tnd_stop_matcher *m = NULL;
    tnd_status st = tnd_stop_matcher_init(src->stops, src->lens, src->n_stops, src->hold_utf8, &m);
    if (st) return st;
    if (src->len) {
        m->buf = tnd_alloc(&m->allocator, src->len);
        if (!m->buf) {
            tnd_stop_matcher_free(m);
            return tnd_fail(TND_ERR_OUT_OF_MEMORY, "tnd_stop_matcher_clone: out of memory");
        }
        memcpy(m->buf, src->buf, src->len);
        m->cap = src->len;
    }
    m->len = src->len;
    m->shown = src->shown;
    m->hit = src->hit;
    *out = m;
    return TND_OK;
}

void tnd_stop_matcher_reset(tnd_stop_matcher *m) {
    if (!m) return;
    m->len = m->shown = 0;
    m->hit = -1;
}

/* Drops the bytes shown by the previous call, keeping the held ones at the front of the buffer. */
static void drop_shown(tnd_stop_matcher *m) {
    if (m->shown == 0) return;
    memmove(m->buf, m->buf + m->shown, m->len - m->shown);
    m->len -= m->shown;
    m->shown = 0;
}

/* First occurrence of needle in hay, or NULL (memmem is not in C11). */
static const char *find_bytes(const char *hay, size_t hay_len, const char *needle, size_t needle_len) {
    if (needle_len > hay_len) return NULL;
    const char *end = hay + (hay_len - needle_len);
    for (const char *p = hay; p <= end; p++) {
        p = memchr(p, needle[0], (size_t)(end - p) + 1);
        if (!p) return NULL;
        if (memcmp(p, needle, needle_len) == 0) return p;
    }
    return NULL;
}

/* Length of the longest suffix of text[0, n) that is a proper prefix of some stop string: text that a later piece
 * could complete into a stop string. */
static size_t stop_prefix_suffix(const tnd_stop_matcher *m, const char *text, size_t n) {
    size_t best = 0;
    for (int32_t i = 0; i < m->n_stops; i++) {
        size_t k = m->lens[i] - 1 < n ? m->lens[i] - 1 : n;
        for (; k > best; k--)
            if (memcmp(text + n - k, m->stops[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

/* Length of an incomplete UTF-8 sequence at the end of text[0, n): a lead byte followed by fewer continuation
 * bytes than it announces (0 if the text ends on a whole character or on invalid bytes). */
static size_t partial_utf8_suffix(const unsigned char *text, size_t n) {
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char b = text[n - back];
        if ((b & 0xC0) == 0x80) continue; /* continuation byte: look further back */
        size_t need = (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
        return need > back ? back : 0;
    }
    return 0;
}

tnd_status tnd_stop_matcher_feed(tnd_stop_matcher *m, const char *piece, size_t len, const char **text,
                                 size_t *text_len, int32_t *stop_index) {
    if (text) *text = NULL;
    if (text_len) *text_len = 0;
    if (stop_index) *stop_index = m ? m->hit : -1;
    if (!m || !text || !text_len || (len > 0 && !piece))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_stop_matcher_feed: matcher, piece, text or text_len is NULL");
    drop_shown(m);
    if (m->hit >= 0) { /* after a stop nothing more is shown */
        *text = m->buf ? m->buf : "";
        return TND_OK;
    }
    if (len > m->cap - m->len) {
        size_t need = m->len + len, cap = m->cap ? m->cap : 256;
        while (cap < need) {
            if (cap > SIZE_MAX / 2) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "stop strings: buffer too large");
            cap *= 2;
        }
        char *grown = tnd_alloc(&m->allocator, cap);
        if (!grown) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "stop strings: out of memory for %zu bytes", cap);
        if (m->len) memcpy(grown, m->buf, m->len);
        tnd_free(&m->allocator, m->buf);
        m->buf = grown;
        m->cap = cap;
    }
    if (len) memcpy(m->buf + m->len, piece, len);
    m->len += len;

    /* the stop string completed first in the stream (smallest end), the longest on a tie */
    size_t stop_start = 0, stop_end = SIZE_MAX;
    for (int32_t i = 0; i < m->n_stops; i++) {
        const char *at = find_bytes(m->buf, m->len, m->stops[i], m->lens[i]);
        if (!at) continue;
        size_t start = (size_t)(at - m->buf), end = start + m->lens[i];
        if (end < stop_end || (end == stop_end && start < stop_start)) {
            stop_start = start;
            stop_end = end;
            m->hit = i;
        }
    }
    if (m->hit >= 0) {
        m->shown = stop_start; /* the stop string and whatever followed it are never shown */
        m->len = stop_start;
    } else {
        size_t hold = stop_prefix_suffix(m, m->buf, m->len);
        if (m->hold_utf8) {
            size_t partial = partial_utf8_suffix((const unsigned char *)m->buf, m->len);
            if (partial > hold) hold = partial;
        }
        m->shown = m->len - hold;
    }
    *text = m->buf;
    *text_len = m->shown;
    if (stop_index) *stop_index = m->hit;
    return TND_OK;
}

tnd_status tnd_stop_matcher_flush(tnd_stop_matcher *m, const char **text, size_t *text_len) {
    if (text) *text = NULL;
    if (text_len) *text_len = 0;
    if (!m || !text || !text_len)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_stop_matcher_flush: matcher, text or text_len is NULL");
    drop_shown(m);
    m->shown = m->hit >= 0 ? 0 : m->len; /* after a stop the buffer is already empty */
    *text = m->buf ? m->buf : "";
    *text_len = m->shown;
    return TND_OK;
}
