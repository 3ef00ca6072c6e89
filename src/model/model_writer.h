/* model_writer.h: tools that write whole model files: re-quantizing a GGUF file with a recipe, and making a model
 * of a known shape with random weights (for benchmarks and demos: nothing needs downloading). */
#ifndef TND_MODEL_MODEL_WRITER_H
#define TND_MODEL_MODEL_WRITER_H

#include "model/recipe.h"

#include <stdbool.h>
#include <stdint.h>

/* The progress callbacks (tnd_progress_fn, tandem.h) are called after each tensor: `what` is the tensor name,
 * done/total count tensors. */
/* Writes `in_path`'s tensors to `out_path` with the types of `ftype`'s recipe (one tensor in memory at a time;
 * n_threads quantize rows in parallel). Metadata is copied, general.file_type set. A tensor whose type tandem cannot
 * decode is an error naming it. */
tnd_status tnd_quantize_file(const char *in_path, const char *out_path, tnd_ftype ftype, int n_threads,
                             tnd_progress_fn progress, void *user);

/* A model architecture shape that tnd_model_make knows: the published hyper-parameters of a real model, and the
 * parts its architecture has (so the file reads, and costs, what the real one does). */
typedef struct tnd_model_shape {
    const char *name;   /* "tinyllama-1.1b" */
    const char *arch;   /* general.architecture: "llama", "qwen2" (q/k/v biases), "qwen3" (q/k norms), "qwen2moe",
                           "qwen3moe", "olmoe" */
    int32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    int32_t head_dim; /* 0: n_embd / n_head */
    bool tied;        /* no output.weight: the token embedding is the output head */
    float rope_base, rms_eps;
    int32_t n_expert, n_expert_used, n_ff_exp, n_ff_shexp; /* mixtures of experts (0 for dense models) */
} tnd_model_shape;

/* The known shapes (NULL-terminated by a row with name NULL). */
const tnd_model_shape *tnd_model_shapes(void);

/* Writes a model of shape `shape_name` (its architecture, biases, q/k norms and tied head as the real model) with
 * weights drawn from a seeded generator (std 0.02, norms 1, biases 0), a synthetic SentencePiece-style vocabulary (control tokens, 256 byte tokens, word pieces), tensor types
 * from `ftype`'s recipe. Same seed, same file. TND_ERR_INVALID_ARGUMENT for an unknown shape (the message lists the
 * known ones). */
tnd_status tnd_model_make(const char *shape_name, tnd_ftype ftype, uint64_t seed, const char *out_path, int n_threads,
                          tnd_progress_fn progress, void *user);

#endif
