/* wire.c: frames and messages between a device and a cloud server (see wire.h). */
#include "remote/wire.h"

#include "core/error.h"
#include "core/fp16.h"

#include <stdlib.h>
#include <string.h>

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void tnd_wire_put_header(uint8_t out[TND_WIRE_HEADER_BYTES], tnd_wire_type type, uint32_t seq, uint32_t length) {
    put_le32(out, TND_WIRE_MAGIC);
    put_le32(out + 4, (uint32_t)TND_WIRE_VERSION | (uint32_t)type << 16);
    put_le32(out + 8, seq);
    put_le32(out + 12, length);
}

tnd_status tnd_wire_get_header(const uint8_t in[TND_WIRE_HEADER_BYTES], tnd_wire_header *h) {
    if (get_le32(in) != TND_WIRE_MAGIC) return tnd_fail(TND_ERR_FORMAT, "not a tandem remote frame (bad magic)");
    uint32_t vt = get_le32(in + 4);
    h->version = (uint16_t)(vt & 0xffff);
    h->type = (uint16_t)(vt >> 16);
    h->seq = get_le32(in + 8);
    h->length = get_le32(in + 12);
    if (h->version != TND_WIRE_VERSION)
        return tnd_fail(TND_ERR_UNSUPPORTED, "the peer speaks protocol version %u; this tandem speaks %d", h->version,
                        TND_WIRE_VERSION);
    if (h->type < TND_WIRE_HELLO || h->type > TND_WIRE_BYE)
        return tnd_fail(TND_ERR_FORMAT, "unknown message type %u", h->type);
    if (h->length > TND_WIRE_MAX_PAYLOAD)
        return tnd_fail(TND_ERR_FORMAT, "a message of %u bytes (at most %d)", h->length, TND_WIRE_MAX_PAYLOAD);
    return TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * Writing and reading payloads
 * ---------------------------------------------------------------------------------------------------------- */

static uint8_t *room(tnd_wire_writer *w, size_t n) {
    if (w->failed) return NULL;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n) cap *= 2;
        uint8_t *grown = realloc(w->data, cap);
        if (!grown) {
            w->failed = true;
            return NULL;
        }
        w->data = grown;
        w->cap = cap;
    }
    uint8_t *at = w->data + w->len;
    w->len += n;
    return at;
}

void tnd_wire_put_u32(tnd_wire_writer *w, uint32_t v) {
    uint8_t *at = room(w, 4);
    if (at) put_le32(at, v);
}

void tnd_wire_put_bytes(tnd_wire_writer *w, const void *p, size_t n) {
    uint8_t *at = room(w, n);
    if (at && n) memcpy(at, p, n);
}

void tnd_wire_put_f16(tnd_wire_writer *w, const float *x, size_t n) {
    uint8_t *at = room(w, 2 * n);
    for (size_t i = 0; at && i < n; i++) {
        uint16_t h = tnd_f32_to_fp16(x[i]);
        at[2 * i] = (uint8_t)h;
        at[2 * i + 1] = (uint8_t)(h >> 8);
    }
}

void tnd_wire_writer_free(tnd_wire_writer *w) {
    free(w->data);
    memset(w, 0, sizeof *w);
}

/* The next n bytes, or NULL (failed from then on) where the payload has fewer. */
static const uint8_t *take(tnd_wire_reader *r, size_t n) {
    if (r->failed || n > r->len - r->at) {
        r->failed = true;
        return NULL;
    }
    const uint8_t *at = r->data + r->at;
    r->at += n;
    return at;
}

uint32_t tnd_wire_get_u32(tnd_wire_reader *r) {
    const uint8_t *at = take(r, 4);
    return at ? get_le32(at) : 0;
}

bool tnd_wire_get_bytes(tnd_wire_reader *r, void *p, size_t n) {
    const uint8_t *at = take(r, n);
    if (at && n) memcpy(p, at, n);
    return at != NULL;
}

bool tnd_wire_get_f16(tnd_wire_reader *r, float *x, size_t n) {
    if (n > SIZE_MAX / 2) return r->failed = true, false;
    const uint8_t *at = take(r, 2 * n);
    for (size_t i = 0; at && i < n; i++) x[i] = tnd_fp16_to_f32((uint16_t)(at[2 * i] | at[2 * i + 1] << 8));
    return at != NULL;
}

/* A message that ended early or has bytes left over. */
static tnd_status short_or_long(const tnd_wire_reader *r, const char *what) {
    if (r->failed) return tnd_fail(TND_ERR_FORMAT, "a %s message ends early (%zu bytes)", what, r->len);
    if (r->at != r->len)
        return tnd_fail(TND_ERR_FORMAT, "a %s message has %zu bytes past its end", what, r->len - r->at);
    return TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * Messages
 * ---------------------------------------------------------------------------------------------------------- */

void tnd_wire_put_hello(tnd_wire_writer *w, const tnd_wire_hello *h) {
    tnd_wire_put_u32(w, h->version);
    tnd_wire_put_bytes(w, h->model_id, sizeof h->model_id);
    tnd_wire_put_u32(w, h->k_type);
    tnd_wire_put_u32(w, h->v_type);
    tnd_wire_put_u32(w, h->block_size);
    tnd_wire_put_u32(w, h->n_blocks);
    tnd_wire_put_u32(w, h->n_batch);
}

tnd_status tnd_wire_get_hello(tnd_wire_reader *r, tnd_wire_hello *h) {
    h->version = tnd_wire_get_u32(r);
    tnd_wire_get_bytes(r, h->model_id, sizeof h->model_id);
    h->k_type = tnd_wire_get_u32(r);
    h->v_type = tnd_wire_get_u32(r);
    h->block_size = tnd_wire_get_u32(r);
    h->n_blocks = tnd_wire_get_u32(r);
    h->n_batch = tnd_wire_get_u32(r);
    tnd_status st = short_or_long(r, "HELLO");
    if (st) return st;
    if (h->version != TND_WIRE_VERSION)
        return tnd_fail(TND_ERR_UNSUPPORTED, "the device speaks protocol version %u; this cloud speaks %d", h->version,
                        TND_WIRE_VERSION);
    if (h->block_size == 0 || h->block_size > 4096 || h->n_batch == 0 || h->n_batch > 65536 || h->n_blocks == 0 ||
        (uint64_t)h->n_blocks * h->block_size > (1u << 24))
        return tnd_fail(TND_ERR_FORMAT, "HELLO: block size %u, %u blocks, batch %u", h->block_size, h->n_blocks,
                        h->n_batch);
    return TND_OK;
}

void tnd_wire_put_step(tnd_wire_writer *w, const tnd_wire_step *s) {
    tnd_wire_put_u32(w, s->n_tokens);
    tnd_wire_put_u32(w, s->group_begin);
    tnd_wire_put_u32(w, s->group_end);
    tnd_wire_put_u32(w, s->n_embd);
    tnd_wire_put_u32(w, s->n_table_words);
    const uint32_t *arrays[4] = {s->pos, s->slot, s->n_ctx, s->table_at};
    for (int a = 0; a < 4; a++)
        for (uint32_t t = 0; t < s->n_tokens; t++) tnd_wire_put_u32(w, arrays[a][t]);
    for (uint32_t i = 0; i < s->n_table_words; i++) tnd_wire_put_u32(w, s->tables[i]);
    tnd_wire_put_f16(w, s->hidden, (size_t)s->n_tokens * s->n_embd);
}

tnd_status tnd_wire_get_step(tnd_wire_reader *r, uint32_t max_tokens, uint32_t want_embd, uint32_t max_table_words,
                             uint32_t block_size, tnd_wire_step *s) {
    s->n_tokens = tnd_wire_get_u32(r);
    s->group_begin = tnd_wire_get_u32(r);
    s->group_end = tnd_wire_get_u32(r);
    s->n_embd = tnd_wire_get_u32(r);
    s->n_table_words = tnd_wire_get_u32(r);
    if (r->failed) return short_or_long(r, "STEP");
    if (s->n_tokens == 0 || s->n_tokens > max_tokens)
        return tnd_fail(TND_ERR_FORMAT, "STEP: %u tokens (1 to %u)", s->n_tokens, max_tokens);
    if (s->n_embd != want_embd)
        return tnd_fail(TND_ERR_FORMAT, "STEP: hidden states of %u values; the model's are %u", s->n_embd, want_embd);
    if (s->n_table_words > max_table_words)
        return tnd_fail(TND_ERR_FORMAT, "STEP: %u block table entries (at most %u)", s->n_table_words, max_table_words);
    if (s->group_begin >= s->group_end)
        return tnd_fail(TND_ERR_FORMAT, "STEP: an empty stage [%u, %u)", s->group_begin, s->group_end);
    uint32_t *arrays[4] = {s->pos, s->slot, s->n_ctx, s->table_at};
    for (int a = 0; a < 4; a++)
        for (uint32_t t = 0; t < s->n_tokens; t++) arrays[a][t] = tnd_wire_get_u32(r);
    for (uint32_t i = 0; i < s->n_table_words; i++) s->tables[i] = tnd_wire_get_u32(r);
    tnd_wire_get_f16(r, s->hidden, (size_t)s->n_tokens * s->n_embd);
    tnd_status st = short_or_long(r, "STEP");
    if (st) return st;
    for (uint32_t t = 0; t < s->n_tokens; t++) {
        if (s->n_ctx[t] == 0 || s->pos[t] >= s->n_ctx[t])
            return tnd_fail(TND_ERR_FORMAT, "STEP: token %u at position %u sees %u positions", t, s->pos[t],
                            s->n_ctx[t]);
        uint32_t blocks = s->n_ctx[t] / block_size + (s->n_ctx[t] % block_size != 0); /* its table must hold them */
        if (s->table_at[t] > s->n_table_words || s->n_table_words - s->table_at[t] < blocks)
            return tnd_fail(TND_ERR_FORMAT, "STEP: token %u sees %u positions; its block table has %u of them",
                            t, s->n_ctx[t], s->table_at[t] > s->n_table_words ? 0 : s->n_table_words - s->table_at[t]);
        if (s->slot[t] / block_size != s->tables[s->table_at[t] + s->pos[t] / block_size] ||
            s->slot[t] % block_size != s->pos[t] % block_size)
            return tnd_fail(TND_ERR_FORMAT, "STEP: token %u's KV slot %u is not its position's", t, s->slot[t]);
    }
    return TND_OK;
}

void tnd_wire_put_welcome(tnd_wire_writer *w, const tnd_wire_welcome *m) {
    tnd_wire_put_u32(w, m->n_layer);
    tnd_wire_put_u32(w, m->n_embd);
}

tnd_status tnd_wire_get_welcome(tnd_wire_reader *r, tnd_wire_welcome *m) {
    m->n_layer = tnd_wire_get_u32(r);
    m->n_embd = tnd_wire_get_u32(r);
    return short_or_long(r, "WELCOME");
}

void tnd_wire_put_copies(tnd_wire_writer *w, const int32_t *src, const int32_t *dst, uint32_t n) {
    tnd_wire_put_u32(w, n);
    for (uint32_t i = 0; i < n; i++) {
        tnd_wire_put_u32(w, (uint32_t)src[i]);
        tnd_wire_put_u32(w, (uint32_t)dst[i]);
    }
}

tnd_status tnd_wire_get_copies(tnd_wire_reader *r, uint32_t max_pairs, uint32_t n_blocks, int32_t *src, int32_t *dst,
                               uint32_t *n) {
    *n = tnd_wire_get_u32(r);
    if (!r->failed && *n > max_pairs) return tnd_fail(TND_ERR_FORMAT, "COPY_BLOCKS: %u pairs (at most %u)", *n, max_pairs);
    for (uint32_t i = 0; i < *n && !r->failed; i++) {
        uint32_t s = tnd_wire_get_u32(r), d = tnd_wire_get_u32(r);
        if (!r->failed && (s >= n_blocks || d >= n_blocks))
            return tnd_fail(TND_ERR_FORMAT, "COPY_BLOCKS: block %u to %u of %u", s, d, n_blocks);
        src[i] = (int32_t)s;
        dst[i] = (int32_t)d;
    }
    return short_or_long(r, "COPY_BLOCKS");
}

void tnd_wire_put_error(tnd_wire_writer *w, tnd_status st, const char *message) {
    size_t n = strlen(message);
    tnd_wire_put_u32(w, (uint32_t)(int32_t)st);
    tnd_wire_put_u32(w, (uint32_t)n);
    tnd_wire_put_bytes(w, message, n);
}

tnd_status tnd_wire_get_error(tnd_wire_reader *r, tnd_status *st, char *message, size_t cap) {
    *st = (tnd_status)(int32_t)tnd_wire_get_u32(r);
    uint32_t n = tnd_wire_get_u32(r);
    const uint8_t *text = r->failed ? NULL : take(r, n);
    tnd_status bad = short_or_long(r, "ERROR");
    if (bad) return bad;
    size_t m = n < cap - 1 ? n : cap - 1;
    for (size_t i = 0; i < m; i++) message[i] = text[i] >= 32 && text[i] != 127 ? (char)text[i] : '?'; /* printable */
    message[m] = 0;
    if (*st >= TND_OK || *st < TND_ERR_INTERNAL) *st = TND_ERR_INTERNAL; /* an error always fails, as a known status */
    return TND_OK;
}
