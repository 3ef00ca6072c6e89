/* wire.h: the messages between a device and a cloud server that runs part of its model (docs/REMOTE.md). A message
 * is a frame: a 16-byte header (magic, protocol version, type, sequence number, payload length) and a little-endian
 * payload. Decoding never trusts the peer: every count and length is checked against what the frame holds before
 * anything is read, and a frame that does not add up is an error naming what is wrong. */
#ifndef TND_REMOTE_WIRE_H
#define TND_REMOTE_WIRE_H

#include "tandem.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    TND_WIRE_VERSION = 2, /* 2: HIDDEN ends with the cloud's compute time */
    TND_WIRE_HEADER_BYTES = 16,
    TND_WIRE_MAX_PAYLOAD = 64 << 20, /* a step of 512 tokens of a 8192-wide model in F16 is 8 MiB */
    TND_WIRE_MODEL_ID_BYTES = 32
};
#define TND_WIRE_MAGIC 0x52444e54u /* "TNDR" */

typedef enum tnd_wire_type {
    TND_WIRE_HELLO = 1,   /* device -> cloud: version, model id, KV cache geometry */
    TND_WIRE_WELCOME = 2, /* cloud -> device: the model's layer count and width */
    TND_WIRE_ERROR = 3,   /* either way: a status and a message; the sender closes the link after it */
    TND_WIRE_STEP = 4,    /* device -> cloud: run a stage on these hidden states */
    TND_WIRE_HIDDEN = 5,  /* cloud -> device: the hidden states after the stage */
    TND_WIRE_COPY_BLOCKS = 6, /* device -> cloud: copy KV blocks (a forked sequence) */
    TND_WIRE_DONE = 7,    /* cloud -> device: the blocks were copied */
    TND_WIRE_PING = 8,    /* either way: a heartbeat, answered with PONG */
    TND_WIRE_PONG = 9,
    TND_WIRE_BYE = 10     /* device -> cloud: the device closes the link */
} tnd_wire_type;

typedef struct tnd_wire_header {
    uint16_t version, type;
    uint32_t seq;    /* per direction, from 0, one more each frame: a lost, replayed or reordered frame shows */
    uint32_t length; /* payload bytes */
} tnd_wire_header;

void tnd_wire_put_header(uint8_t out[TND_WIRE_HEADER_BYTES], tnd_wire_type type, uint32_t seq, uint32_t length);
/* TND_ERR_FORMAT for a bad magic, an unknown type or a payload above TND_WIRE_MAX_PAYLOAD; TND_ERR_UNSUPPORTED for
 * another protocol version. */
tnd_status tnd_wire_get_header(const uint8_t in[TND_WIRE_HEADER_BYTES], tnd_wire_header *h);

/* A payload being written: grows as needed (failed on allocation failure). */
typedef struct tnd_wire_writer {
    uint8_t *data;
    size_t len, cap;
    bool failed;
} tnd_wire_writer;

void tnd_wire_put_u32(tnd_wire_writer *w, uint32_t v);
void tnd_wire_put_bytes(tnd_wire_writer *w, const void *p, size_t n);
/* n floats as F16 (the hidden states cross the link at half their size). */
void tnd_wire_put_f16(tnd_wire_writer *w, const float *x, size_t n);
void tnd_wire_writer_free(tnd_wire_writer *w);

/* A payload being read: each get fails (and keeps failing) past the end. */
typedef struct tnd_wire_reader {
    const uint8_t *data;
    size_t len, at;
    bool failed;
} tnd_wire_reader;

uint32_t tnd_wire_get_u32(tnd_wire_reader *r);
bool tnd_wire_get_bytes(tnd_wire_reader *r, void *p, size_t n);
bool tnd_wire_get_f16(tnd_wire_reader *r, float *x, size_t n);

/* ---- the messages ---- */

/* HELLO: what the device needs the cloud to hold and keep. */
typedef struct tnd_wire_hello {
    uint32_t version;
    uint8_t model_id[TND_WIRE_MODEL_ID_BYTES]; /* tnd_model_id of the device's file: both sides must hold this model */
    uint32_t k_type, v_type;  /* the KV cache's element types */
    uint32_t block_size;      /* positions per KV block */
    uint32_t n_blocks;        /* blocks of each of the device's pools: the block numbers a step may name */
    uint32_t n_batch;         /* most tokens per step */
} tnd_wire_hello;

void tnd_wire_put_hello(tnd_wire_writer *w, const tnd_wire_hello *h);
tnd_status tnd_wire_get_hello(tnd_wire_reader *r, tnd_wire_hello *h);

/* STEP: a stage of groups [group_begin, group_end) for n_tokens tokens: each token's position, KV slot and context
 * length, and its sequence's block table (tables[table_of[t]] .. of n_blocks[...] entries; tokens of a sequence share
 * one), then the hidden states [n_tokens][n_embd] in F16. Decoding fills the caller's arrays, sized for n_batch
 * tokens and max_table_words table entries. */
typedef struct tnd_wire_step {
    uint32_t n_tokens, group_begin, group_end, n_embd;
    uint32_t *pos, *slot, *n_ctx, *table_at; /* [n_tokens]; table_at: the offset of the token's table in tables */
    uint32_t n_table_words;
    uint32_t *tables;                         /* [n_table_words] block numbers */
    float *hidden;                            /* [n_tokens * n_embd] */
} tnd_wire_step;

void tnd_wire_put_step(tnd_wire_writer *w, const tnd_wire_step *s);
/* Checks every count against the frame and the caps: n_tokens <= max_tokens, n_embd == want_embd, n_table_words <=
 * max_table_words, each token's table holding the blocks of its context (blocks of block_size positions) and its
 * slot being its position's. Block numbers are the caller's to check against its pools. */
tnd_status tnd_wire_get_step(tnd_wire_reader *r, uint32_t max_tokens, uint32_t want_embd, uint32_t max_table_words,
                             uint32_t block_size, tnd_wire_step *s);

/* WELCOME: the cloud's model, as the device checks it. */
typedef struct tnd_wire_welcome {
    uint32_t n_layer, n_embd;
} tnd_wire_welcome;

void tnd_wire_put_welcome(tnd_wire_writer *w, const tnd_wire_welcome *m);
tnd_status tnd_wire_get_welcome(tnd_wire_reader *r, tnd_wire_welcome *m);

/* COPY_BLOCKS: n pairs of KV blocks, src[i] copied to dst[i] in every pool of the cloud. Decoding fills src and dst
 * (room for max_pairs) and checks each block number against n_blocks. */
void tnd_wire_put_copies(tnd_wire_writer *w, const int32_t *src, const int32_t *dst, uint32_t n);
tnd_status tnd_wire_get_copies(tnd_wire_reader *r, uint32_t max_pairs, uint32_t n_blocks, int32_t *src, int32_t *dst,
                               uint32_t *n);

/* ERROR: a status and its message. */
void tnd_wire_put_error(tnd_wire_writer *w, tnd_status st, const char *message);
tnd_status tnd_wire_get_error(tnd_wire_reader *r, tnd_status *st, char *message, size_t cap);

#endif
