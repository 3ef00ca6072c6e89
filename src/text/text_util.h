/* text_util.h: small building blocks of the tokenizers: UTF-8 sequence lengths, byte-string hashing, growable
 * buffers, and one binary min-heap used by both the SPM and the BPE merge loops. */
#ifndef TND_TEXT_TEXT_UTIL_H
#define TND_TEXT_TEXT_UTIL_H

#include "tandem.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------------------------
 * UTF-8
 * ------------------------------------------------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence that starts at s[0] (s has n >= 1 bytes): 1..4, or 0 when the bytes
 * there are not a well-formed sequence (stray continuation byte, overlong form, surrogate, above U+10FFFF, or
 * cut short by the end of the input). Callers treat a 0 as one byte that stands alone. */
static inline size_t tnd_utf8_seq_len(const uint8_t *s, size_t n) {
    uint8_t b = s[0];
    if (b < 0x80) return 1;
    if (b < 0xC2) return 0;
    if (b < 0xE0) return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (b < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (b == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
        if (b == 0xED && s[1] >= 0xA0) return 0; /* surrogates */
        return 3;
    }
    if (b < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        if (b == 0xF0 && s[1] < 0x90) return 0; /* overlong */
        if (b == 0xF4 && s[1] >= 0x90) return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

/* Bytes of one "character" at s: the well-formed sequence length, or 1 for a byte that is not part of one. */
static inline size_t tnd_utf8_char_len(const uint8_t *s, size_t n) {
    size_t k = tnd_utf8_seq_len(s, n);
    return k ? k : 1;
}

/* Number of bytes a sequence whose first byte is `lead` should have (1..4), or 0 for a byte that cannot start
 * one. Used by the streaming decoder to see whether a piece ends inside a character. */
static inline size_t tnd_utf8_expected_len(uint8_t lead) {
    if (lead < 0x80) return 1;
    if (lead < 0xC2) return 0;
    if (lead < 0xE0) return 2;
    if (lead < 0xF0) return 3;
    if (lead < 0xF5) return 4;
    return 0;
}

/* Appends the UTF-8 form of code point cp (< 0x110000) to dst; returns the byte count (1..4). */
static inline size_t tnd_utf8_encode(uint32_t cp, uint8_t *dst) {
    if (cp < 0x80) {
        dst[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (uint8_t)(0xC0 | (cp >> 6));
        dst[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (uint8_t)(0xE0 | (cp >> 12));
        dst[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (uint8_t)(0xF0 | (cp >> 18));
    dst[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    dst[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Hashing
 * ------------------------------------------------------------------------------------------------------------- */

/* A fast 64-bit hash of a byte string (8 bytes per step, multiply-xorshift mixing). Not for adversarial keys:
 * the tables that use it are built from the model's vocabulary, and lookups of text only probe them. */
static inline uint64_t tnd_hash_bytes(const void *data, size_t n) {
    const uint8_t *p = (const uint8_t *)data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ (w * 0xFF51AFD7ED558CCDull)) * 0xC4CEB9FE1A85EC53ull;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)p[i] << (8 * i);
    h = (h ^ (w * 0xFF51AFD7ED558CCDull)) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 32;
    h *= 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

/* Mixes a 64-bit integer key (for the pair table of BPE merges). */
static inline uint64_t tnd_hash_u64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xFF51AFD7ED558CCDull;
    k ^= k >> 33;
    k *= 0xC4CEB9FE1A85EC53ull;
    return k ^ (k >> 33);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Growable buffers
 * ------------------------------------------------------------------------------------------------------------- */

/* Makes *buf hold at least `need` elements of `elem` bytes (contents kept), growing by doubling. Returns false
 * (buffer unchanged) when memory runs out or the size overflows. */
bool tnd_text_reserve(const tnd_allocator *a, void **buf, size_t *cap, size_t need, size_t elem);

/* ---------------------------------------------------------------------------------------------------------------
 * Merge heap: a binary min-heap of candidate merges ordered by a 64-bit key (smaller first). The SPM and BPE
 * loops pack their priority and the position of the left symbol into the key, so that ties go to the leftmost
 * pair, and they keep in `check_a`/`check_b` what they need to see whether an entry went stale.
 * ------------------------------------------------------------------------------------------------------------- */

typedef struct tnd_merge_entry {
    uint64_t key;
    int32_t left, right;     /* symbol indices */
    int32_t check_a, check_b;
} tnd_merge_entry;

typedef struct tnd_merge_heap {
    tnd_merge_entry *items;
    size_t n, cap;
} tnd_merge_heap;

/* Pushes e (growing the storage through `a`); false when memory runs out. */
bool tnd_merge_heap_push(tnd_merge_heap *h, const tnd_allocator *a, tnd_merge_entry e);

/* Pops the smallest entry into *out; false when the heap is empty. */
bool tnd_merge_heap_pop(tnd_merge_heap *h, tnd_merge_entry *out);

#endif
