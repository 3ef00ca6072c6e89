/* llama2c.h: import of llama2.c checkpoints (legacy export, version 0) and their tokenizer files into GGUF.
 *
 * Checkpoint (all little-endian):
 *
 *   int32 dim | hidden_dim | n_layers | n_heads | n_kv_heads | vocab_size | seq_len      (28 bytes)
 *   float32 token_embedding [vocab][dim]
 *           rms_att [L][dim] | wq [L][dim][dim] | wk [L][kv_dim][dim] | wv [L][kv_dim][dim] | wo [L][dim][dim]
 *           rms_ffn [L][dim] | w1 [L][hidden][dim] | w2 [L][dim][hidden] | w3 [L][hidden][dim]
 *           rms_final [dim] | freq_cis_real [seq_len][head_size/2] | freq_cis_imag [seq_len][head_size/2]
 *           wcls [vocab][dim]                     only when vocab_size < 0 (the classifier is not the embedding)
 *
 *   kv_dim = dim * n_kv_heads / n_heads, head_size = dim / n_heads. The checkpoint's rope acts on adjacent pairs
 *   (x[2i], x[2i+1]) of each head, which is the llama architecture's layout in GGUF: Q and K are copied unpermuted.
 *
 * Tokenizer: int32 max_token_length, then per token: float32 score | int32 length | length bytes (no NUL). The
 * token count is not stored: it is the checkpoint's vocab size. Pieces use ' ' where SentencePiece writes U+2581,
 * and BOS / EOS are stored as "\n<s>\n" / "\n</s>\n"; the import restores the SentencePiece strings.
 */
#ifndef TND_MODEL_LLAMA2C_H
#define TND_MODEL_LLAMA2C_H

#include "gguf/gguf.h"

#include <stdbool.h>
#include <stdint.h>

#define TND_LLAMA2C_HEADER_BYTES 28
#define TND_LLAMA2C_BOS_ID 1 /* llama2.c's fixed ids: unknown 0, BOS 1, EOS 2 */
#define TND_LLAMA2C_EOS_ID 2
#define TND_LLAMA2C_UNK_ID 0

/* The validated header of a checkpoint. */
typedef struct tnd_llama2c_config {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads;
    int32_t n_vocab;          /* |vocab_size| */
    int32_t seq_len;
    bool shared_classifier;   /* vocab_size > 0: the output head is the token embedding */
} tnd_llama2c_config;

/* Reads and validates the header of the `size`-byte checkpoint at `bytes`: every field positive (vocab_size
 * non-zero and at least 3 in magnitude), n_heads divides dim, n_kv_heads divides n_heads, an even head size, and the
 * weights the header implies fill the file exactly (computed with overflow checks, so absurd sizes are refused
 * before anything is allocated). TND_ERR_FORMAT (the message names the field or the byte counts),
 * TND_ERR_UNSUPPORTED (a newer llama2.c export with the "ak42" magic), TND_ERR_INVALID_ARGUMENT (NULL pointers). */
tnd_status tnd_llama2c_read_config(const uint8_t *bytes, uint64_t size, tnd_llama2c_config *out);

/* Adds the checkpoint's hyper-parameters (llama.* keys, general.architecture, general.name = `name`) and its
 * tensors to `w` under the llama architecture's GGUF names, all F32. The tensor data is borrowed from `bytes`,
 * which must stay valid until the file is written. output.weight is added only when the classifier is not shared.
 * Errors as tnd_llama2c_read_config, and those of the writer. */
tnd_status tnd_llama2c_add_model(tnd_gguf_writer *w, const uint8_t *bytes, uint64_t size, const char *name,
                                 tnd_llama2c_config *config);

/* Parses the `size`-byte tokenizer file at `bytes`, which must hold exactly `n_vocab` tokens, and adds the
 * tokenizer.ggml.* keys to `w` (model "llama", tokens, scores, token types, BOS/EOS/unknown ids; copied). Token
 * types: "<unk>" unknown, "<s>" / "</s>" control, "<0xNN>" byte, an empty piece control, the rest normal.
 * TND_ERR_FORMAT (a negative length or max_token_length, a token longer than max_token_length or past the end of the
 * file, fewer or more tokens than n_vocab: the message names the token and byte offset), TND_ERR_INVALID_ARGUMENT,
 * TND_ERR_OUT_OF_MEMORY. Allocations are bounded by a small multiple of `size`. */
tnd_status tnd_llama2c_add_vocab(tnd_gguf_writer *w, const uint8_t *bytes, uint64_t size, int32_t n_vocab);

/* Converts the checkpoint at `model_path` with the tokenizer at `vocab_path` into the GGUF file `out_path`.
 * `name` becomes general.name (NULL: the checkpoint's file name without folder and extension). `config` (may be NULL)
 * receives the checkpoint's header. Error messages start with the path of the file at fault; a failed write leaves
 * no output file. Errors as above plus TND_ERR_IO. */
tnd_status tnd_llama2c_convert(const char *model_path, const char *vocab_path, const char *out_path, const char *name,
                               tnd_llama2c_config *config);

#endif
