/* model_writer.c: quantize an existing file, or make a random model of a known shape. Both describe each output
 * tensor as a source of float rows plus a target type; the GGUF writer pulls the bytes one tensor at a time and rows
 * are converted in parallel on a thread pool. */
#include "model/model_writer.h"

#include "model/arch.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------------------
 * Tensor sources: rows of floats from a file's tensor, from a seeded generator, or a constant
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct write_job write_job;

typedef struct tensor_source {
    write_job *job;
    char name[96];
    tnd_type dst_type;
    int64_t ne[4];
    uint32_t n_dims;
    const tnd_gguf_tensor *from;  /* file tensor, or NULL */
    uint64_t seed;                /* random rows when from == NULL and stddev > 0 */
    float stddev, constant;
} tensor_source;

struct write_job {
    tensor_source *sources;
    uint64_t n_sources, done;
    tnd_thread_pool *pool;
    tnd_progress_fn progress;
    void *user;
    /* the tensor being filled */
    const tensor_source *cur;
    uint8_t *dst;
    int64_t n_rows;
    int failed;
};

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Row r of a source as floats. Random rows are uniform with the requested standard deviation, seeded per row so the
 * result does not depend on the thread count. */
static void source_row(const tensor_source *s, int64_t r, float *out) {
    int64_t n = s->ne[0];
    if (s->from) {
        const tnd_type_traits *tr = tnd_type_traits_of(s->from->type);
        tr->to_float(s->from->data + (size_t)r * tnd_row_size(s->from->type, n), out, n);
    } else if (s->stddev > 0) {
        uint64_t state = s->seed ^ ((uint64_t)r * 0xd1b54a32d192ed03ull);
        float half_width = s->stddev * 1.7320508f; /* uniform [-a, a] has std a / sqrt(3) */
        for (int64_t i = 0; i < n; i++) {
            double u = (double)(splitmix64(&state) >> 11) * (1.0 / 9007199254740992.0);
            out[i] = (float)(2.0 * u - 1.0) * half_width;
        }
    } else {
        for (int64_t i = 0; i < n; i++) out[i] = s->constant;
    }
}

static void convert_rows(void *ctx, int ith, int nth) {
    write_job *j = ctx;
    const tensor_source *s = j->cur;
    const tnd_type_traits *dst = tnd_type_traits_of(s->dst_type);
    size_t row_bytes = tnd_row_size(s->dst_type, s->ne[0]);
    bool same = s->from && s->from->type == s->dst_type;
    float *row = same ? NULL : malloc(sizeof(float) * (size_t)s->ne[0]);
    if (!same && !row) {
        j->failed = 1;
        return;
    }
    for (int64_t r = ith; r < j->n_rows; r += nth) {
        uint8_t *out = j->dst + (size_t)r * row_bytes;
        if (same) {
            memcpy(out, s->from->data + (size_t)r * row_bytes, row_bytes);
        } else {
            source_row(s, r, row);
            dst->from_float(row, out, s->ne[0]);
        }
    }
    free(row);
}

static tnd_status fill_tensor(void *user, void *dst, uint64_t size) {
    const tensor_source *s = user;
    write_job *j = s->job;
    j->cur = s;
    j->dst = dst;
    j->n_rows = s->ne[1] * s->ne[2] * s->ne[3];
    j->failed = 0;
    tnd_thread_pool_run(j->pool, convert_rows, j);
    if (j->failed) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory converting '%s'", s->name);
    j->done++;
    if (j->progress) j->progress(j->user, s->name, j->done, j->n_sources);
    return TND_OK;
}

/* Checks that tandem can produce each source's target type (and read its file type), then writes the file. */
static tnd_status write_model(tnd_gguf_writer *w, write_job *job, const char *out_path, int n_threads) {
    for (uint64_t i = 0; i < job->n_sources; i++) {
        tensor_source *s = &job->sources[i];
        s->job = job;
        const tnd_type_traits *dst = tnd_type_traits_of(s->dst_type);
        bool same = s->from && s->from->type == s->dst_type;
        if (!same && !dst->from_float)
            return tnd_fail(TND_ERR_UNSUPPORTED, "tensor '%s': cannot write type %s", s->name, dst->name);
        if (!same && s->from && !tnd_type_traits_of(s->from->type)->to_float)
            return tnd_fail(TND_ERR_UNSUPPORTED, "tensor '%s': cannot read type %s", s->name,
                            tnd_type_name(s->from->type));
        tnd_status st = tnd_gguf_writer_add_tensor_fill(w, s->name, s->dst_type, s->n_dims, s->ne, fill_tensor, s);
        if (st) return st;
    }
    tnd_status st = tnd_thread_pool_init(n_threads < 1 ? tnd_physical_cores() : n_threads, NULL, &job->pool);
    if (st) return st;
    st = tnd_gguf_writer_write_file(w, out_path);
    tnd_thread_pool_free(job->pool);
    job->pool = NULL;
    return st;
}

/* ------------------------------------------------------------------------------------------------------------
 * Quantize an existing file
 * ---------------------------------------------------------------------------------------------------------- */

static int32_t meta_int(const tnd_gguf *g, const char *arch, const char *suffix, int32_t def) {
    char key[128];
    int64_t v = def;
    snprintf(key, sizeof key, "%.*s.%s", 64, arch, suffix);
    tnd_gguf_get_int(g, key, &v);
    return (int32_t)v;
}

tnd_status tnd_quantize_file(const char *in_path, const char *out_path, tnd_ftype ftype, int n_threads,
                             tnd_progress_fn progress, void *user) {
    tnd_mapped_file file;
    tnd_gguf *g = NULL;
    tnd_gguf_writer *w = NULL;
    write_job job = {.progress = progress, .user = user};
    tnd_status st = tnd_mapped_file_open(in_path, true, NULL, &file);
    if (st) return st;
    if ((st = tnd_gguf_parse(file.data, file.size, NULL, &g))) {
        tnd_error_prefix("%s: ", in_path);
        goto cleanup;
    }
    tnd_gguf_str arch = {"", 0};
    tnd_gguf_get_str(g, "general.architecture", &arch);
    char arch_name[65];
    snprintf(arch_name, sizeof arch_name, "%.*s", (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);
    int32_t n_head = meta_int(g, arch_name, "attention.head_count", 1);
    int32_t n_head_kv = meta_int(g, arch_name, "attention.head_count_kv", n_head);
    tnd_recipe_model rm = {.n_layer = meta_int(g, arch_name, "block_count", 1),
                           .n_gqa = n_head_kv > 0 ? n_head / n_head_kv : 1,
                           .tied_output = tnd_gguf_find_tensor(g, "output.weight") < 0};
    w = tnd_gguf_writer_init(NULL);
    job.sources = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *job.sources);
    if (!w || !job.sources) {
        st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory");
        goto cleanup;
    }
    if ((st = tnd_gguf_writer_copy_meta(w, g)) ||
        (st = tnd_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ftype)) ||
        (st = tnd_gguf_writer_set_u32(w, "general.quantization_version", 2)))
        goto cleanup;
    job.n_sources = g->n_tensors;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const tnd_gguf_tensor *t = &g->tensors[i];
        tensor_source *s = &job.sources[i];
        snprintf(s->name, sizeof s->name, "%s", t->name);
        memcpy(s->ne, t->ne, sizeof s->ne);
        s->n_dims = t->n_dims;
        s->from = t;
        /* only weight matrices are re-typed; everything else keeps its type */
        bool matrix = t->n_dims >= 2 && strstr(t->name, ".weight");
        s->dst_type = matrix ? tnd_recipe_tensor_type(ftype, &rm, t->name, t->ne[0], t->n_dims) : t->type;
    }
    st = write_model(w, &job, out_path, n_threads);
cleanup:
    free(job.sources);
    tnd_gguf_writer_free(w);
    tnd_gguf_free(g);
    tnd_mapped_file_close(&file);
    return st;
}

/* ------------------------------------------------------------------------------------------------------------
 * Make a model of a known shape
 * ---------------------------------------------------------------------------------------------------------- */

/* Published hyper-parameters (the models' config files). The fallback types of widths that are not a multiple of 256
 * (896, 960) come from the recipe, as in the files people download. */
static const tnd_model_shape shapes[] = {
    /* name            arch     vocab  embd  layers heads kv ff    ctx    head tied  rope base  rms eps */
    {"tinyllama-1.1b", "llama", 32000, 2048, 22, 32, 4, 5632, 2048, 0, false, 10000.0f, 1e-5f, 0, 0, 0, 0},
    {"llama-tiny", "llama", 512, 256, 2, 8, 2, 512, 512, 0, false, 10000.0f, 1e-5f, 0, 0, 0, 0},
    {"stories-15m", "llama", 32000, 288, 6, 6, 6, 768, 256, 0, false, 10000.0f, 1e-5f, 0, 0, 0, 0},
    {"smollm2-360m", "llama", 49152, 960, 32, 15, 5, 2560, 8192, 0, true, 100000.0f, 1e-5f, 0, 0, 0, 0},
    {"llama-3.2-1b", "llama", 128256, 2048, 16, 32, 8, 8192, 131072, 0, true, 500000.0f, 1e-5f, 0, 0, 0, 0},
    {"qwen2.5-0.5b", "qwen2", 151936, 896, 24, 14, 2, 4864, 32768, 0, true, 1000000.0f, 1e-6f, 0, 0, 0, 0},
    {"qwen2.5-1.5b", "qwen2", 151936, 1536, 28, 12, 2, 8960, 32768, 0, true, 1000000.0f, 1e-6f, 0, 0, 0, 0},
    {"qwen3-0.6b", "qwen3", 151936, 1024, 28, 16, 8, 3072, 40960, 128, true, 1000000.0f, 1e-6f, 0, 0, 0, 0},
    /* mixtures of experts: then experts, used per token, an expert's width, the shared expert's width */
    {"olmoe-tiny", "olmoe", 512, 64, 2, 4, 4, 64, 512, 0, false, 10000.0f, 1e-5f, 4, 2, 32, 0},
    {"olmoe-1b-7b", "olmoe", 50304, 2048, 16, 16, 16, 1024, 4096, 0, false, 10000.0f, 1e-5f, 64, 8, 1024, 0},
    {"qwen1.5-moe-a2.7b", "qwen2moe", 151936, 2048, 24, 16, 16, 5632, 8192, 0, false, 1000000.0f, 1e-6f, 60, 4, 1408,
     5632},
    {"qwen3-30b-a3b", "qwen3moe", 151936, 2048, 48, 32, 4, 6144, 40960, 128, false, 1000000.0f, 1e-6f, 128, 8, 768,
     0},
    {NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, false, 0, 0, 0, 0, 0, 0},
};

const tnd_model_shape *tnd_model_shapes(void) { return shapes; }

/* A SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte tokens, then "▁" + letters pieces with scores
 * falling with their rank. Pieces are short lower-case letter strings, unique by construction. */
static tnd_status write_vocab(tnd_gguf_writer *w, int32_t n_vocab) {
    tnd_status st = TND_OK;
    char **pieces = calloc((size_t)n_vocab, sizeof *pieces);
    float *scores = calloc((size_t)n_vocab, sizeof *scores);
    int32_t *types = calloc((size_t)n_vocab, sizeof *types);
    if (!pieces || !scores || !types) {
        st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for the vocabulary");
        goto cleanup;
    }
    for (int32_t i = 0; i < n_vocab && !st; i++) {
        char buf[32];
        if (i < 3) {
            snprintf(buf, sizeof buf, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
            types[i] = i == 0 ? 2 : 3; /* unknown, control */
        } else if (i < 259) {
            snprintf(buf, sizeof buf, "<0x%02X>", i - 3);
            types[i] = 6; /* byte */
        } else {
            int k = i - 259, n = 0;
            char word[16];
            do { /* bijective base 26: a..z, aa..zz, ... */
                word[n++] = (char)('a' + k % 26);
                k = k / 26 - 1;
            } while (k >= 0 && n < 15);
            buf[0] = (char)0xe2, buf[1] = (char)0x96, buf[2] = (char)0x81; /* U+2581, the SPM space marker */
            for (int c = 0; c < n; c++) buf[3 + c] = word[n - 1 - c];
            buf[3 + n] = 0;
            types[i] = 1; /* normal */
        }
        scores[i] = i < 259 ? 0.0f : -(float)(i - 259);
        pieces[i] = strdup(buf);
        if (!pieces[i]) st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for the vocabulary");
    }
    if (!st && !(st = tnd_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama")) &&
        !(st = tnd_gguf_writer_set_array_str(w, "tokenizer.ggml.tokens", (const char *const *)pieces, NULL,
                                             (uint64_t)n_vocab)) &&
        !(st = tnd_gguf_writer_set_array(w, "tokenizer.ggml.scores", TND_VALUE_F32, scores, (uint64_t)n_vocab)) &&
        !(st = tnd_gguf_writer_set_array(w, "tokenizer.ggml.token_type", TND_VALUE_I32, types, (uint64_t)n_vocab)) &&
        !(st = tnd_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0)) &&
        !(st = tnd_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1)))
        st = tnd_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
cleanup:
    for (int32_t i = 0; pieces && i < n_vocab; i++) free(pieces[i]);
    free(pieces);
    free(scores);
    free(types);
    return st;
}

static int32_t head_dim_of(const tnd_model_shape *s) { return s->head_dim ? s->head_dim : s->n_embd / s->n_head; }

static tnd_status write_hparams(tnd_gguf_writer *w, const tnd_model_shape *s, tnd_ftype ftype) {
    tnd_status st;
    char name[96];
    snprintf(name, sizeof name, "%s (random weights)", s->name);
    if ((st = tnd_gguf_writer_set_str(w, "general.architecture", s->arch)) ||
        (st = tnd_gguf_writer_set_str(w, "general.name", name)) ||
        (st = tnd_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ftype)) ||
        (st = tnd_gguf_writer_set_u32(w, "general.quantization_version", 2)))
        return st;
    const struct {
        const char *key;
        uint32_t value;
        bool optional; /* left out when 0 (a dense model's expert keys, or no shared expert) */
    } ints[] = {
        {"context_length", (uint32_t)s->n_ctx, false},
        {"embedding_length", (uint32_t)s->n_embd, false},
        {"block_count", (uint32_t)s->n_layer, false},
        {"feed_forward_length", (uint32_t)s->n_ff, false},
        {"attention.head_count", (uint32_t)s->n_head, false},
        {"attention.head_count_kv", (uint32_t)s->n_head_kv, false},
        {"attention.key_length", (uint32_t)head_dim_of(s), false},
        {"attention.value_length", (uint32_t)head_dim_of(s), false},
        {"rope.dimension_count", (uint32_t)head_dim_of(s), false},
        {"vocab_size", (uint32_t)s->n_vocab, false},
        {"expert_count", (uint32_t)s->n_expert, true},
        {"expert_used_count", (uint32_t)s->n_expert_used, true},
        {"expert_feed_forward_length", (uint32_t)s->n_ff_exp, true},
        {"expert_shared_feed_forward_length", (uint32_t)s->n_ff_shexp, true},
    };
    char key[96];
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (ints[i].optional && !ints[i].value) continue;
        snprintf(key, sizeof key, "%s.%s", s->arch, ints[i].key);
        if ((st = tnd_gguf_writer_set_u32(w, key, ints[i].value))) return st;
    }
    snprintf(key, sizeof key, "%s.rope.freq_base", s->arch);
    if ((st = tnd_gguf_writer_set_f32(w, key, s->rope_base))) return st;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", s->arch);
    if ((st = tnd_gguf_writer_set_f32(w, key, s->rms_eps))) return st;
    return write_vocab(w, s->n_vocab);
}

/* Appends one tensor source: a matrix [ne0, ne1] (ne2 > 1: that many experts [ne0, ne1, ne2]) of random weights,
 * or a vector of `value` (ne1 == 0). */
static void add_source(write_job *job, const tnd_model_shape *s, tnd_ftype ftype, uint64_t seed, const char *name,
                       int64_t ne0, int64_t ne1, int64_t ne2, float value) {
    tensor_source *t = &job->sources[job->n_sources++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ne[0] = ne0;
    t->ne[1] = ne1 ? ne1 : 1;
    t->ne[2] = ne2 > 1 ? ne2 : 1;
    t->ne[3] = 1;
    t->n_dims = !ne1 ? 1 : ne2 > 1 ? 3 : 2;
    t->seed = seed ^ (0x51ed27ull * job->n_sources);
    t->stddev = ne1 ? 0.02f : 0.0f;
    t->constant = value;
    tnd_recipe_model rm = {.n_layer = s->n_layer, .n_gqa = s->n_head / s->n_head_kv, .tied_output = s->tied};
    t->dst_type = tnd_recipe_tensor_type(ftype, &rm, name, ne0, t->n_dims);
}

/* The hyper-parameters the layer table sizes a block of this shape by. */
static tnd_hparams hparams_of(const tnd_model_shape *s) {
    return (tnd_hparams){.n_vocab = s->n_vocab, .n_embd = s->n_embd, .n_layer = s->n_layer, .n_head = s->n_head,
                         .n_head_kv = s->n_head_kv, .head_dim = head_dim_of(s), .n_ff = s->n_ff,
                         .n_expert = s->n_expert, .n_expert_used = s->n_expert_used, .n_ff_exp = s->n_ff_exp,
                         .n_ff_shexp = s->n_ff_shexp};
}

tnd_status tnd_model_make(const char *shape_name, tnd_ftype ftype, uint64_t seed, const char *out_path, int n_threads,
                          tnd_progress_fn progress, void *user) {
    const tnd_model_shape *s = shapes;
    while (s->name && (!shape_name || strcmp(s->name, shape_name))) s++;
    if (!s->name) {
        char known[512] = "";
        for (const tnd_model_shape *k = shapes; k->name; k++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", k == shapes ? "" : ", ", k->name);
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "unknown shape '%s' (known: %s)", shape_name ? shape_name : "",
                        known);
    }
    const tnd_arch *arch = tnd_arch_find(s->arch, strlen(s->arch));
    if (!arch) return tnd_fail(TND_ERR_INTERNAL, "shape %s: architecture %s is unknown", s->name, s->arch);
    tnd_hparams hp = hparams_of(s);
    write_job job = {.progress = progress, .user = user};
    job.sources = calloc(3 + tnd_layer_tensor_count * (size_t)s->n_layer, sizeof *job.sources);
    tnd_gguf_writer *w = tnd_gguf_writer_init(NULL);
    tnd_status st = TND_OK;
    if (!job.sources || !w) {
        st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory");
        goto cleanup;
    }
    if ((st = write_hparams(w, s, ftype))) goto cleanup;
    add_source(&job, s, ftype, seed, "token_embd.weight", s->n_embd, s->n_vocab, 1, 0);
    /* every block tensor the architecture has, as the loader will look for it: random matrices, norms of 1, biases
     * of 0 */
    for (int l = 0; l < s->n_layer; l++)
        for (size_t i = 0; i < tnd_layer_tensor_count; i++) {
            const tnd_layer_tensor *t = &tnd_layer_tensors[i];
            if (!tnd_model_has(arch, &hp, t->needs)) continue;
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s", l, t->name);
            add_source(&job, s, ftype, seed, name, tnd_dim_size(&hp, t->ne0), t->matrix ? tnd_dim_size(&hp, t->ne1) : 0,
                       t->matrix ? tnd_dim_size(&hp, t->ne2) : 1, strstr(t->name, "norm") ? 1.0f : 0.0f);
        }
    add_source(&job, s, ftype, seed, "output_norm.weight", s->n_embd, 0, 1, 1);
    if (!s->tied) add_source(&job, s, ftype, seed, "output.weight", s->n_embd, s->n_vocab, 1, 0);
    st = write_model(w, &job, out_path, n_threads);
cleanup:
    free(job.sources);
    tnd_gguf_writer_free(w);
    return st;
}
