/* tandem.h: the public C API of libtandem, the engine that runs GGUF language models on a device's processors.
 *
 * Conventions
 * - Every fallible function returns a tnd_status: TND_OK (0) on success, a negative code on failure. On failure
 *   tnd_last_error() returns a message that names the problem (file, key or tensor, byte offset, expected vs
 *   found). The message is kept per thread and stays valid until the next failing call on that thread.
 * - Handles are opaque. Objects made with *_open / *_init are released with the matching *_close / *_free, which
 *   accept NULL. Strings and arrays returned by accessors are borrowed: they stay valid until the owning handle is
 *   closed, and the caller must not free them.
 * - The library never exits, aborts or prints on bad input; it reports through tnd_status and the log hook.
 * - There is no global mutable state: any number of models may be open in one process, from any threads, as long
 *   as one handle is not used by two threads at once.
 */
#ifndef TANDEM_H
#define TANDEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TND_BUILDING_LIBRARY)
#define TND_API __attribute__((visibility("default")))
#else
#define TND_API
#endif

/* ---------------------------------------------------------------------------------------------------------------
 * Status codes and errors
 * ------------------------------------------------------------------------------------------------------------- */

typedef enum tnd_status {
    TND_OK = 0,
    TND_ERR_INVALID_ARGUMENT = -1, /* a caller passed NULL, an out-of-range index or an inconsistent option */
    TND_ERR_OUT_OF_MEMORY = -2,    /* an allocation failed */
    TND_ERR_IO = -3,               /* a file could not be opened, read, mapped or written */
    TND_ERR_FORMAT = -4,           /* input data (a model file, a checkpoint) is malformed or truncated */
    TND_ERR_UNSUPPORTED = -5,      /* well-formed input that this build cannot handle (a version, type, arch) */
    TND_ERR_NOT_FOUND = -6,        /* a key, tensor or name that was asked for does not exist */
    TND_ERR_TYPE = -7,             /* a value exists but has another type than the one asked for */
    TND_ERR_BUFFER_TOO_SMALL = -8, /* a caller buffer is too small; the function says how the size is reported */
    TND_ERR_INTERNAL = -9,         /* a bug in tandem: please report it with the message */
    TND_ERR_DEVICE_LOST = -10      /* a device of the context stopped answering (the link to a cloud died or stalled,
                                      a GPU was lost): the context cannot go on; its sessions can (tnd_session_move) */
} tnd_status;

/* Short constant name of a status ("TND_ERR_FORMAT"); never NULL, also for unknown values. */
TND_API const char *tnd_status_name(tnd_status status);

/* The message of the last failure on the calling thread, or "" if none. Borrowed, valid until the next failing
 * call on this thread. */
TND_API const char *tnd_last_error(void);

/* The library version as "MAJOR.MINOR.PATCH"; static storage. */
TND_API const char *tnd_version(void);

/* ---------------------------------------------------------------------------------------------------------------
 * Log and allocator hooks
 * ------------------------------------------------------------------------------------------------------------- */

typedef enum tnd_log_level {
    TND_LOG_DEBUG = 0,
    TND_LOG_INFO = 1,
    TND_LOG_WARN = 2,
    TND_LOG_ERROR = 3,
    TND_LOG_NONE = 4 /* as a threshold: log nothing */
} tnd_log_level;

/* Receives one message (no trailing newline). `user` is the pointer given with the hook. Called from whichever
 * thread does the work; the hook must be thread-safe if handles are used from several threads. */
typedef void (*tnd_log_fn)(void *user, tnd_log_level level, const char *message);

/* Memory hooks. `alloc` returns memory aligned to at least 64 bytes or NULL; `free` accepts NULL. The default
 * (all fields NULL) uses the C library with 64-byte alignment. Large weight data is never allocated through
 * these hooks when the model file is memory-mapped. */
typedef struct tnd_allocator {
    void *(*alloc)(void *user, size_t size);
    void (*free)(void *user, void *ptr);
    void *user;
} tnd_allocator;

/* ---------------------------------------------------------------------------------------------------------------
 * Tensor element types (numeric values are those of GGUF files)
 * ------------------------------------------------------------------------------------------------------------- */

typedef enum tnd_type {
    TND_TYPE_F32 = 0,
    TND_TYPE_F16 = 1,
    TND_TYPE_Q4_0 = 2,
    TND_TYPE_Q4_1 = 3,
    TND_TYPE_Q5_0 = 6,
    TND_TYPE_Q5_1 = 7,
    TND_TYPE_Q8_0 = 8,
    TND_TYPE_Q8_1 = 9,
    TND_TYPE_Q2_K = 10,
    TND_TYPE_Q3_K = 11,
    TND_TYPE_Q4_K = 12,
    TND_TYPE_Q5_K = 13,
    TND_TYPE_Q6_K = 14,
    TND_TYPE_Q8_K = 15,
    TND_TYPE_IQ2_XXS = 16,
    TND_TYPE_IQ2_XS = 17,
    TND_TYPE_IQ3_XXS = 18,
    TND_TYPE_IQ1_S = 19,
    TND_TYPE_IQ4_NL = 20,
    TND_TYPE_IQ3_S = 21,
    TND_TYPE_IQ2_S = 22,
    TND_TYPE_IQ4_XS = 23,
    TND_TYPE_I8 = 24,
    TND_TYPE_I16 = 25,
    TND_TYPE_I32 = 26,
    TND_TYPE_I64 = 27,
    TND_TYPE_F64 = 28,
    TND_TYPE_IQ1_M = 29,
    TND_TYPE_BF16 = 30,
    TND_TYPE_TQ1_0 = 34,
    TND_TYPE_TQ2_0 = 35,
    TND_TYPE_MXFP4 = 39,
    TND_TYPE_NVFP4 = 40,
    TND_TYPE_Q1_0 = 41,
    TND_TYPE_Q2_0 = 42,
    TND_TYPE_COUNT = 43 /* one past the largest value; not every value below it is a type */
} tnd_type;

/* Name of a type as GGUF tools write it ("q4_K", "f16"), or NULL if `type` is not a known type. */
TND_API const char *tnd_type_name(tnd_type type);

/* How the CPU device multiplies by a weight matrix of `type` on this processor (after the TANDEM_CPU_ISA cap), in
 * words, e.g. "avx2 dot, tiles of 2 rows x 4 tokens, activations q8_0", written NUL-terminated to buf (at most cap
 * bytes, cut if longer). Returns the kernel set's name ("ref" for the scalar reference, "avx2", "avx512", "neon"),
 * or NULL (and buf empty) for a type the CPU device cannot multiply by. */
TND_API const char *tnd_cpu_kernel_describe(tnd_type type, char *buf, size_t cap);

/* ---------------------------------------------------------------------------------------------------------------
 * Models: open a GGUF file, read its metadata and tensor table
 * ------------------------------------------------------------------------------------------------------------- */

typedef struct tnd_model tnd_model;

typedef struct tnd_model_params {
    int use_mmap;             /* 1 (default): map the file read-only; 0: read it into memory */
    tnd_allocator allocator;  /* memory hooks; all NULL (default) = C library */
    tnd_log_fn log;           /* NULL (default) = no logging */
    void *log_user;           /* passed to `log` */
    tnd_log_level log_level;  /* least severe level passed to `log` (default TND_LOG_WARN) */
} tnd_model_params;

/* Default parameters (mmap on, C library allocator, no logging). */
TND_API tnd_model_params tnd_model_default_params(void);

/* Opens and validates the GGUF file at `path`. On success *out owns the mapping and must be closed with
 * tnd_model_close. Every offset, count and size in the file is checked before use.
 * Returns TND_ERR_INVALID_ARGUMENT (NULL path/out), TND_ERR_IO (cannot open/map/read), TND_ERR_FORMAT (malformed
 * or truncated file), TND_ERR_UNSUPPORTED (a GGUF version or tensor type this build does not know),
 * TND_ERR_OUT_OF_MEMORY. On failure *out is set to NULL. */
TND_API tnd_status tnd_model_open(const char *path, const tnd_model_params *params, tnd_model **out);

/* Releases the model and its mapping. Accepts NULL. */
TND_API void tnd_model_close(tnd_model *model);

/* GGUF metadata value types (numeric values are those of GGUF files). */
typedef enum tnd_value_type {
    TND_VALUE_U8 = 0,
    TND_VALUE_I8 = 1,
    TND_VALUE_U16 = 2,
    TND_VALUE_I16 = 3,
    TND_VALUE_U32 = 4,
    TND_VALUE_I32 = 5,
    TND_VALUE_F32 = 6,
    TND_VALUE_BOOL = 7,
    TND_VALUE_STRING = 8,
    TND_VALUE_ARRAY = 9,
    TND_VALUE_U64 = 10,
    TND_VALUE_I64 = 11,
    TND_VALUE_F64 = 12
} tnd_value_type;

/* Name of a value type ("u32", "string", "array"), or NULL if unknown. */
TND_API const char *tnd_value_type_name(tnd_value_type type);

/* GGUF version of the file (2 or 3). */
TND_API uint32_t tnd_model_gguf_version(const tnd_model *model);

/* Size of the model file in bytes. */
TND_API uint64_t tnd_model_file_size(const tnd_model *model);

/* Alignment of the file's tensor data in bytes (general.alignment, or GGUF's default 32); 0 for NULL. */
TND_API uint64_t tnd_model_alignment(const tnd_model *model);

/* Byte offset of the tensor data section from the start of the file: the header, metadata and tensor table take
 * the bytes before it. 0 for NULL. */
TND_API uint64_t tnd_model_data_offset(const tnd_model *model);

/* Number of metadata key/value pairs. */
TND_API int64_t tnd_model_meta_count(const tnd_model *model);

/* Index of `key`, or -1 if absent. */
TND_API int64_t tnd_model_meta_find(const tnd_model *model, const char *key);

/* Key and type of pair `index`. `key` (NUL-terminated, borrowed) and `type` may be NULL when not wanted.
 * Returns TND_ERR_INVALID_ARGUMENT for an index out of range. */
TND_API tnd_status tnd_model_meta_at(const tnd_model *model, int64_t index, const char **key, tnd_value_type *type);

/* Value of `key` converted to int64 (any integer type or bool). TND_ERR_NOT_FOUND if absent; TND_ERR_TYPE if the
 * value is not an integer, or a u64 above INT64_MAX. */
TND_API tnd_status tnd_model_meta_int(const tnd_model *model, const char *key, int64_t *out);

/* Value of `key` converted to uint64 (any integer type or bool), for u64 values above INT64_MAX. TND_ERR_NOT_FOUND
 * if absent; TND_ERR_TYPE if the value is not an integer or is negative. */
TND_API tnd_status tnd_model_meta_uint(const tnd_model *model, const char *key, uint64_t *out);

/* Value of `key` as a double (f32, f64, or any integer type). TND_ERR_NOT_FOUND / TND_ERR_TYPE as above. */
TND_API tnd_status tnd_model_meta_float(const tnd_model *model, const char *key, double *out);

/* String value of `key`: *out points into the model (borrowed, NOT NUL-terminated in general), *len is its
 * length in bytes. TND_ERR_NOT_FOUND / TND_ERR_TYPE as above. */
TND_API tnd_status tnd_model_meta_string(const tnd_model *model, const char *key, const char **out, size_t *len);

/* Array value of `key`: element type and count. TND_ERR_NOT_FOUND / TND_ERR_TYPE as above. */
TND_API tnd_status tnd_model_meta_array(const tnd_model *model, const char *key, tnd_value_type *elem_type,
                                        uint64_t *count);

/* Element `index` of a string array `key` (borrowed, not NUL-terminated, length in *len).
 * TND_ERR_NOT_FOUND, TND_ERR_TYPE (not an array of strings), TND_ERR_INVALID_ARGUMENT (index out of range). */
TND_API tnd_status tnd_model_meta_array_string(const tnd_model *model, const char *key, uint64_t index,
                                               const char **out, size_t *len);

/* Element `index` of a numeric or bool array `key`, converted to double.
 * TND_ERR_NOT_FOUND, TND_ERR_TYPE (an array of strings or arrays), TND_ERR_INVALID_ARGUMENT (index out of range). */
TND_API tnd_status tnd_model_meta_array_number(const tnd_model *model, const char *key, uint64_t index,
                                               double *out);

/* One entry of the tensor table. */
typedef struct tnd_tensor_info {
    const char *name;     /* NUL-terminated, borrowed */
    tnd_type type;
    uint32_t n_dims;      /* 1..4 */
    int64_t ne[4];        /* elements per dimension, ne[0] contiguous; unused dimensions are 1 */
    uint64_t n_elements;  /* product of ne */
    uint64_t offset;      /* byte offset of the data from the start of the file */
    uint64_t size;        /* bytes of data */
    const void *data;     /* the bytes themselves (borrowed view into the mapping) */
} tnd_tensor_info;

/* Number of tensors. */
TND_API int64_t tnd_model_tensor_count(const tnd_model *model);

/* Index of the tensor named `name`, or -1 if absent. */
TND_API int64_t tnd_model_tensor_find(const tnd_model *model, const char *name);

/* Fills *out with tensor `index`. TND_ERR_INVALID_ARGUMENT for an index out of range or NULL out. */
TND_API tnd_status tnd_model_tensor_at(const tnd_model *model, int64_t index, tnd_tensor_info *out);

/* ---------------------------------------------------------------------------------------------------------------
 * Inference contexts: run batches of tokens through the model, read logits
 * ------------------------------------------------------------------------------------------------------------- */

typedef struct tnd_context tnd_context;

/* Which CPU kernels a context runs. */
typedef enum tnd_kernels {
    TND_KERNELS_BEST = 0,      /* the fastest for this processor: activations converted to 8-bit where the weight
                                  type computes that way, SIMD where available (default) */
    TND_KERNELS_REFERENCE = 1  /* portable scalar code, weights dequantized to float, activations kept in float: the
                                  exact oracle of the tests, and slow */
} tnd_kernels;

/* Progress of long work: `what` was just done, `done` of `total` steps so far. */
typedef void (*tnd_progress_fn)(void *user, const char *what, uint64_t done, uint64_t total);

typedef struct tnd_context_params {
    int32_t n_ctx;      /* KV cache capacity in tokens, shared by all sequences (0 = the model's trained context) */
    int32_t n_batch;    /* most tokens per forward step; larger batches are split (default 512) */
    int32_t n_seq_max;  /* sequence ids 0 .. n_seq_max - 1 (default 1) */
    int32_t n_threads;  /* threads per CPU device (0 = physical cores) */
    tnd_type kv_type;   /* KV cache element type: TND_TYPE_F16 (default), TND_TYPE_F32, TND_TYPE_Q8_0 or
                           TND_TYPE_Q4_0 */
    tnd_type k_type, v_type; /* K and V separately: TND_TYPE_COUNT (default) = kv_type */
    int32_t kv_block_size; /* tokens per KV block (default 64) */
    /* Placement plan over n_devices device instances (default 1). device_kinds (NULL = every device the CPU) gives
     * the kind of each device, an index of tnd_device_get_info: 0 the CPU (instances named cpu0, cpu1, ... in
     * order), 1 + i Vulkan device i (named vulkan<i>; each at most once), then the CUDA devices (named cuda<i>,
     * kinds 1 + the Vulkan count + i; each at most once), TND_DEVICE_REMOTE the cloud server of
     * `remote` (named remote0; at most one). group_device (see tnd_model_group), when
     * given, names the device of every tensor group: n_groups entries, each in 0 .. n_devices - 1, every device
     * holding at least one group. Otherwise each device takes a contiguous range of layers: layers_per_device
     * (NULL = as even as possible) gives the count for each device and must add up to the model's layer count; the
     * embedding goes with the first device and the output head with the last. */
    int32_t n_devices;
    const int32_t *device_kinds;
    const int32_t *layers_per_device;
    const int32_t *group_device;
    int32_t n_groups;
    tnd_kernels kernels;   /* TND_KERNELS_BEST (default) or TND_KERNELS_REFERENCE */
    /* Called as each tensor group is made ready on its device (packed for the CPU's kernels, uploaded to a GPU):
     * what = "blk.3.attn on vulkan0", done/total count groups. NULL = quiet (default). */
    tnd_progress_fn progress;
    void *progress_user;
    /* The cloud server that a device of kind TND_DEVICE_REMOTE is ("HOST:PORT", running `tandem cloud` with the same
     * model), and the key file both hold (`tandem cloud keygen`); remote_key_file NULL = a plaintext link, only
     * where the user chose it. The cloud runs whole layers: the embedding and the output head stay here. */
    const char *remote;
    const char *remote_key_file;
    /* The deadline in milliseconds of connecting to the cloud (0: 30 s). A step gets a few times what steps of its
     * kind took so far (30 s for the first of a kind), so a stalled link ends a decode step within about half a
     * second with TND_ERR_DEVICE_LOST. */
    int32_t remote_connect_timeout_ms;
    /* With a cloud: 1 keeps a stand-in of the cloud's part here too, 0 (default) does not. The stand-in is a second
     * context on this CPU that holds the cloud's layers (their weights in memory here too, and their KV rows), made
     * in the background once the first step goes out; at the lowest scheduling priority it replays each step the
     * cloud answered, in the time the device waits for the cloud. When the link dies or stalls, it catches up what
     * is left and runs the cloud's layers from then on: the context's steps go on instead of failing with
     * TND_ERR_DEVICE_LOST, and tnd_context_cloud_lost says so. */
    int32_t remote_stand_in;
    /* Experts apart from their feed-forward block: with expert_device >= 0 (a device index, usually the CPU's), the
     * experts of every mixture-of-experts layer whose feed-forward group is on another device live and are computed
     * on expert_device, while the router, the shared expert and the weighted sum stay with the group. -1 (default):
     * experts with their group. expert_cache_slots > 0 then keeps copies of that many of each such layer's experts
     * on the group's device (a hot-expert cache: the pairs whose expert it holds are computed there), swapped by
     * measured use as expert_cache_policy says (TND_EXPERT_CACHE_LFU, default, or TND_EXPERT_CACHE_LRU). */
    int32_t expert_device;
    int32_t expert_cache_slots;
    int32_t expert_cache_policy;
} tnd_context_params;

/* The hot-expert cache's policies (tnd_context_params.expert_cache_policy): LFU, counts of use that decay by 5% a
 * step, an expert taking the slot of the lowest count when its own is higher by more than one use; LRU, every expert
 * a step chose and did not find takes the slot chosen longest ago. On skewed routing traces LFU hit more often and
 * copied a tenth as many experts (docs/MOE.md). */
enum { TND_EXPERT_CACHE_LFU = 0, TND_EXPERT_CACHE_LRU = 1 };

/* The device kind of a cloud server in tnd_context_params.device_kinds (see .remote), and of a device that holds
 * nothing: the groups placed on it are neither loaded nor given KV memory, and a pass that reaches them fails
 * (TND_ERR_UNSUPPORTED). A context that runs only some layers for another places the rest there, as the cloud's
 * stand-in does (named none0; at most one). */
enum { TND_DEVICE_REMOTE = 1000, TND_DEVICE_NONE = 1001 };

/* Defaults as described above. */
TND_API tnd_context_params tnd_context_default_params(void);

/* Binds the model for inference (architecture, hyper-parameters, weights; done once per model) and creates a
 * context with its devices and KV cache. The model must outlive the context.
 * TND_ERR_UNSUPPORTED (architecture or tensor type tandem cannot run: the message names it), TND_ERR_FORMAT
 * (missing or mis-shaped tensor, bad hyper-parameter), TND_ERR_INVALID_ARGUMENT (bad params),
 * TND_ERR_OUT_OF_MEMORY. */
TND_API tnd_status tnd_context_init(tnd_model *model, const tnd_context_params *params, tnd_context **out);

/* Releases the context. Accepts NULL. */
TND_API void tnd_context_free(tnd_context *ctx);

/* ---- Devices ---- */

/* One kind of device as a context makes it. */
typedef struct tnd_device_info {
    char name[32];            /* "cpu" (a context's instances are "cpu0", "cpu1", ...), "vulkan0", ..., "cuda0", ... */
    char description[160];    /* how it computes, e.g. "avx512 kernels, 2 threads" */
    uint64_t memory_total;    /* bytes */
    uint64_t memory_available;
    uint64_t max_buffer_bytes; /* the largest tensor or KV pool the device uses at once (a GPU's binding limit: 128
                                  MiB on lavapipe, 4 GiB on most GPUs); 0: no limit but memory */
    int32_t is_gpu;           /* 1 for a GPU; 0 for the CPU and for drivers that compute on it (lavapipe) */
    int32_t expert_cache;     /* 1 where it keeps a cache of hot experts (tnd_context_params.expert_cache_slots) */
} tnd_device_info;

/* Number of device kinds this build has and this machine offers: 1 (the CPU) + the Vulkan devices tandem can
 * compute on (Vulkan 1.1, a compute queue, subgroup arithmetic), kinds 1, 2, ..., + the CUDA GPUs (compute
 * capability 7.5 or newer; an NVIDIA GPU is usually both a Vulkan and a CUDA device), the last kinds. */
TND_API int32_t tnd_device_count(void);

/* 1 when device kind `index` is a GPU, 0 for the CPU, a driver that computes on the CPU (lavapipe), or no such kind.
 * Cheap: it opens no device. */
TND_API int32_t tnd_device_is_gpu(int32_t index);

/* Describes device kind `index` as a context with n_threads threads (0 = physical cores) would make it.
 * TND_ERR_INVALID_ARGUMENT (index out of range, NULL out), TND_ERR_OUT_OF_MEMORY. */
TND_API tnd_status tnd_device_get_info(int32_t index, int32_t n_threads, tnd_device_info *out);

/* Measures how fast device kind `index` reads its memory, in bytes per second (about a second of work over 1 GiB;
 * keep the figure). 0 when it cannot be measured (tnd_last_error says why). */
TND_API double tnd_device_measure_bandwidth(int32_t index, int32_t n_threads);

/* A device's measured speed at matmuls of one weight type: the planner's estimate of a token's time on the device is
 * the bytes of each type it reads over decode_bytes_per_s, and of a prompt's, 2 operations per weight and token
 * over prefill_flops. */
typedef struct tnd_matmul_speed {
    double decode_bytes_per_s; /* weight bytes read per second multiplying by one token (a decode step) */
    double prefill_flops;      /* operations (a multiply and an add per weight and token) per second over a batch
                                  of TND_SPEED_PREFILL_TOKENS tokens (a prompt) */
} tnd_matmul_speed;

enum { TND_SPEED_PREFILL_TOKENS = 64 };

/* Measures device kind `index` (n_threads for the CPU) at matmuls of `type`: a 64 MiB weight times one token, and a
 * 4096 x 1024 weight times TND_SPEED_PREFILL_TOKENS tokens, each the median of several runs including the device's
 * synchronization (0.05 to 0.5 s on a CPU; keep the figures). TND_ERR_UNSUPPORTED where the device does not compute
 * with the type, TND_ERR_INVALID_ARGUMENT, TND_ERR_OUT_OF_MEMORY, or the device's failure. */
TND_API tnd_status tnd_device_measure_matmul(int32_t index, int32_t n_threads, tnd_type type, tnd_matmul_speed *out);

/* ---- Tensor groups: what a placement plan places ----
 * A model's weights and KV cache go to devices by groups, in the order of the forward pass:
 *   group 0                  "token_embd": the token embedding
 *   group 1 + 2 l            "blk.<l>.attn": layer l's attention (norm, q/k/v/o projections, biases, q/k norms)
 *                            and its KV cache
 *   group 2 + 2 l            "blk.<l>.ffn": layer l's feed-forward (norm, gate, up, down)
 *   group 2 n_layer + 1      "output": the final norm and the output head (the embedding again when tied) */
typedef struct tnd_group_info {
    char name[32];
    int32_t layer;                /* -1 for the embedding and the output */
    uint64_t weight_bytes;        /* its tensors' bytes as stored in the file (a tied output head counts 0) */
    uint64_t kv_values_per_token; /* attention groups: K and V values one cached token takes; 0 for the others */
    uint64_t active_bytes;        /* what one token reads of the group's weights: a mixture of experts' feed-forward
                                     group reads the experts it chooses (expert_used_count of expert_count), the
                                     embedding one row (counted 0 here), a tied output head the embedding table */
    uint64_t active_bytes_by_type[TND_TYPE_COUNT]; /* active_bytes by weight type (norms and biases as F32) */
    uint64_t largest_tensor_bytes; /* its largest tensor as a device that multiplies by it holds it (all the experts
                                      of a stacked tensor; a tied output head: the embedding table; 0 for the
                                      embedding, which GPUs keep in host memory) */
} tnd_group_info;

/* Number of tensor groups (2 per layer, the embedding and the output). Binds the model like the first context
 * does, if that was not done; 0 when it cannot be bound (tnd_last_error says why). */
TND_API int32_t tnd_model_n_groups(tnd_model *model);

/* Describes group `index`. Binds the model if needed (errors of tnd_context_init); TND_ERR_INVALID_ARGUMENT for an
 * index out of range or NULL pointers. */
TND_API tnd_status tnd_model_group(tnd_model *model, int32_t index, tnd_group_info *out);

/* The plan a context with these params would make (their group_device, layers_per_device or an even split over
 * n_devices) into group_device[0 .. n_groups): n_groups must be tnd_model_n_groups. Binds the model if needed.
 * TND_ERR_INVALID_ARGUMENT names what is wrong with the params or the plan. */
TND_API tnd_status tnd_model_plan(tnd_model *model, const tnd_context_params *params, int32_t *group_device,
                                  int32_t n_groups);

/* Number of weights (elements of every tensor in the file); no binding needed. */
TND_API uint64_t tnd_model_n_params(const tnd_model *model);

/* Vocabulary size: the bound model's (rows of the output head), or before any context was created the rows of the
 * file's token_embd.weight (0 when it has none). */
TND_API int32_t tnd_model_n_vocab(const tnd_model *model);

/* Trained context length of the model: the bound model's (2048 where the file names none), or before any context
 * was created the file's `<arch>.context_length` (0 where it has none). */
TND_API int32_t tnd_model_n_ctx_train(const tnd_model *model);

/* A batch: n_tokens entries of token id, position and sequence id; logits[i] != 0 asks for the logits of entry i
 * (NULL = only the last entry). Within a sequence, positions must continue exactly from its cached length. */
typedef struct tnd_batch {
    int32_t n_tokens;
    const int32_t *tokens;
    const int32_t *pos;
    const int32_t *seq_id;   /* NULL = all sequence 0 */
    const int8_t *logits;
} tnd_batch;

/* Runs the batch. On success the logits asked for are available through tnd_context_logits until the next call;
 * any number of entries may ask (the context keeps room for the most rows asked for so far, n_vocab floats each,
 * and nothing for the others). On failure nothing of the batch stays in the KV cache. TND_ERR_INVALID_ARGUMENT (token id out of range,
 * sequence id out of range, a position that does not follow its sequence), TND_ERR_BUFFER_TOO_SMALL (the KV
 * cache is full: free sequences or use a larger n_ctx), TND_ERR_OUT_OF_MEMORY. */
TND_API tnd_status tnd_context_decode(tnd_context *ctx, const tnd_batch *batch);

/* Logits of the i-th entry that asked for them in the last batch: n_vocab floats owned by the context, valid
 * until the next decode. NULL if i is out of range. */
TND_API const float *tnd_context_logits(const tnd_context *ctx, int32_t i);

/* How the hidden states of a text's tokens make one embedding. */
typedef enum tnd_pooling {
    TND_POOLING_LAST = 0,  /* the last token's (decoder models: the only one that has seen the whole text) */
    TND_POOLING_MEAN,      /* the mean over the tokens */
    TND_POOLING_FIRST      /* the first token's (the CLS token of encoder models) */
} tnd_pooling;

/* The pooling the model declares (GGUF `<arch>.pooling_type`: 1 mean, 2 CLS, 3 last), else TND_POOLING_LAST. */
TND_API tnd_pooling tnd_model_pooling(const tnd_model *model);

/* Width of the model's hidden states (the embedding size); 0 for NULL. */
TND_API int32_t tnd_context_n_embd(const tnd_context *ctx);

/* The embedding of one text, tokens[0..n): its tokens evaluated on sequence `seq` (emptied before and after), the
 * final hidden states (after the output norm) pooled and scaled to unit length into out[tnd_context_n_embd].
 * TND_ERR_INVALID_ARGUMENT (NULL pointers, n < 1 or beyond the context, seq out of range, a token out of range,
 * an unknown pooling), TND_ERR_BUFFER_TOO_SMALL (no KV room), errors of the forward pass. */
TND_API tnd_status tnd_context_embed(tnd_context *ctx, int32_t seq, const int32_t *tokens, int32_t n,
                                     tnd_pooling pooling, float *out);

/* Number of positions cached for `seq` (0 for an unknown id). */
TND_API int32_t tnd_context_seq_length(const tnd_context *ctx, int32_t seq);

/* Number of leading tokens of tokens[0..n) whose K/V the first positions of `seq` hold (the context notes the token
 * of every row a batch writes): how much of a record a sequence already has, so that only the rest is evaluated. */
TND_API int32_t tnd_context_seq_cached_prefix(const tnd_context *ctx, int32_t seq, const int32_t *tokens, int32_t n);

/* Keeps the first `len` positions of `seq` (0 removes it and frees its KV blocks). TND_ERR_INVALID_ARGUMENT. */
TND_API tnd_status tnd_context_seq_truncate(tnd_context *ctx, int32_t seq, int32_t len);

/* Makes `dst` a copy of `src` that shares its KV blocks until either writes (copy-on-write). */
TND_API tnd_status tnd_context_seq_fork(tnd_context *ctx, int32_t src, int32_t dst);

/* on != 0: the context's passes run on the calling thread alone (the CPU devices' worker threads rest), so that a
 * thread of the lowest scheduling priority (SCHED_IDLE) can keep the context busy with spare CPU time only, as a
 * fallback context following a conversation does; 0: all its threads again. Not while a pass runs. */
TND_API void tnd_context_set_background(tnd_context *ctx, int on);

/* KV blocks in use and in total. */
TND_API void tnd_context_kv_usage(const tnd_context *ctx, int32_t *used_blocks, int32_t *total_blocks);

/* Where the context's forward passes spent their time since it was made or last reset, summed over its devices:
 * the matrix multiplications and the attention, with the bytes they read (the weights; the K and V rows of the
 * cache, once per query block), so bytes / seconds is each one's speed against the memory's. With a cloud device:
 * the time its stages took as the device waited for them, and the part the cloud reports computing (the rest is the
 * link: network, protocol, crypto and scheduling). */
typedef struct tnd_context_profile {
    double matmul_seconds, attention_seconds;
    uint64_t matmul_bytes, attention_bytes;
    double link_seconds, link_compute_seconds;
    uint64_t link_stages;
} tnd_context_profile;

/* Fills *out (zeros for NULL ctx); reset != 0 then starts the profile anew. */
TND_API void tnd_context_profile_get(tnd_context *ctx, tnd_context_profile *out, int reset);

/* 1 where the context's cloud link was lost and its stand-in (remote_stand_in) runs the cloud's layers since, with
 * what happened in why (the loss, and how long the stand-in took to catch up; why may be NULL); else 0. */
TND_API int tnd_context_cloud_lost(const tnd_context *ctx, char *why, size_t cap);

/* What a context's hot-expert cache did (tnd_context_params.expert_cache_slots): the (token, chosen expert) pairs of
 * its layers, how many of them the cache served, the experts it copied in and their bytes. */
typedef struct tnd_expert_cache_stats {
    uint64_t pairs, hits, swaps, bytes_moved;
} tnd_expert_cache_stats;

/* Fills *out (zeros without a cache); reset != 0 then counts anew. */
TND_API void tnd_context_expert_cache_stats(tnd_context *ctx, tnd_expert_cache_stats *out, int reset);

/* The expert slot `slot` of layer `layer`'s cache holds now; -1 where it holds none, or the context has no cache
 * there (a layer without experts apart, a slot out of range). */
TND_API int32_t tnd_context_expert_cache_held(tnd_context *ctx, int32_t layer, int32_t slot);

/* ---------------------------------------------------------------------------------------------------------------
 * Sampling: pick the next token from a row of logits
 *
 * A sampler turns one row of n_vocab logits into a token id. It owns its random state (seeded per sampler, no
 * global state) and the history of accepted tokens that the penalties look at. The stages run in this order:
 *   1. cleaning: a NaN logit counts as -inf (never chosen), +inf counts as the largest finite float;
 *   2. penalties over the tokens of the history window (each distinct token once, count c = its occurrences):
 *      repetition: l > 0 ? l / repeat_penalty : l * repeat_penalty, then
 *      presence and frequency (OpenAI): l -= presence_penalty * (c > 0) + frequency_penalty * c;
 *   3. logit bias: l += bias (a -inf bias bans the token; -inf + +inf counts as -inf);
 *   then temperature 0 is greedy: the largest logit, ties to the lowest id; otherwise
 *   4. top-k: keep the k largest logits (ties to the lower id); the order of top-k and temperature does not matter
 *      since temperature keeps the order;
 *   5. temperature: p_i proportional to exp((l_i - l_max) / temperature);
 *   6. min-p: keep tokens with p_i >= min_p * p_max (relative to the most likely token);
 *   7. top-p (nucleus): keep the smallest set of most likely tokens whose probabilities add up to >= top_p;
 *   8. draw one token from what is left, in proportion to p_i.
 * min-p and top-p act on the tempered distribution, the one that is actually drawn from, so a caller's top_p
 * means the same mass at every temperature. The most likely token always survives every stage. A call allocates
 * nothing (buffers are sized at init) and does not sort the vocabulary: top-k and top-p select with a bounded heap
 * or by partitioning.
 * ------------------------------------------------------------------------------------------------------------- */

typedef struct tnd_sampler tnd_sampler;

/* One logit bias entry: `bias` is added to the logit of `token` (-INFINITY bans it). */
typedef struct tnd_logit_bias {
    int32_t token;
    float bias;
} tnd_logit_bias;

/* A seed value that asks for a seed from the clock (read it back with tnd_sampler_seed). */
#define TND_SAMPLER_SEED_RANDOM UINT64_MAX

typedef struct tnd_sampler_params {
    float temperature;        /* >= 0; 0 = greedy (default 0.8) */
    int32_t top_k;            /* >= 0; 0 or >= n_vocab = off (default 40) */
    float top_p;              /* in (0, 1]; 1 = off (default 0.95) */
    float min_p;              /* in [0, 1]; 0 = off (default 0.05) */
    int32_t penalty_last_n;   /* history window of the penalties in tokens: > 0 the last n accepted tokens,
                                 -1 every token accepted since init/reset, 0 = no penalties (default 64) */
    float repeat_penalty;     /* > 0; 1 = off (default 1) */
    float presence_penalty;   /* finite, OpenAI uses [-2, 2]; 0 = off (default 0) */
    float frequency_penalty;  /* finite, OpenAI uses [-2, 2]; 0 = off (default 0) */
    uint64_t seed;            /* random state seed; TND_SAMPLER_SEED_RANDOM (default) = from the clock */
    const tnd_logit_bias *logit_bias; /* n_logit_bias entries, copied at init; a token listed twice adds both */
    int32_t n_logit_bias;
    tnd_allocator allocator;  /* memory hooks; all NULL (default) = C library */
} tnd_sampler_params;

/* Default parameters as listed above. */
TND_API tnd_sampler_params tnd_sampler_default_params(void);

/* Creates a sampler for rows of n_vocab logits. On success *out must be released with tnd_sampler_free; the
 * params (and the logit bias array) are copied. Memory: about 28 bytes per vocabulary entry plus the window.
 * TND_ERR_INVALID_ARGUMENT when a parameter is out of range or NaN (the message names it: "temperature",
 * "top_p", "logit_bias[3].token", ...), or n_vocab < 1; TND_ERR_OUT_OF_MEMORY. On failure *out is NULL. */
TND_API tnd_status tnd_sampler_init(const tnd_sampler_params *params, int32_t n_vocab, tnd_sampler **out);

/* Releases the sampler. Accepts NULL. */
TND_API void tnd_sampler_free(tnd_sampler *sampler);

/* Samples one token from `logits` (n_vocab floats, read only) into *token. Does not record the token in the
 * history: call tnd_sampler_accept for that. TND_ERR_INVALID_ARGUMENT for NULL pointers or when no token has a
 * finite logit after penalties and bias (all NaN, -inf or banned); *token is -1 then. */
TND_API tnd_status tnd_sampler_sample(tnd_sampler *sampler, const float *logits, int32_t *token);

/* Appends `token` to the penalty history (the generated tokens, and prompt tokens too if the caller wants them
 * penalized; OpenAI penalizes only generated ones). TND_ERR_INVALID_ARGUMENT for a token outside [0, n_vocab). */
TND_API tnd_status tnd_sampler_accept(tnd_sampler *sampler, int32_t token);

/* A new sampler with the same params, penalty history and random state as src (it draws what src would draw).
 * TND_ERR_INVALID_ARGUMENT (NULL pointers), TND_ERR_OUT_OF_MEMORY. */
TND_API tnd_status tnd_sampler_clone(const tnd_sampler *src, tnd_sampler **out);

/* Forgets the history and restores the random state of the seed, so the sampler repeats its sequence. */
TND_API void tnd_sampler_reset(tnd_sampler *sampler);

/* The seed in use (the one drawn from the clock for TND_SAMPLER_SEED_RANDOM). */
TND_API uint64_t tnd_sampler_seed(const tnd_sampler *sampler);

/* A token and its log-probability. */
typedef struct tnd_token_logprob {
    int32_t token;
    float logprob;
} tnd_token_logprob;

/* Log-probabilities of the raw model distribution, log_softmax(logits) (NaN counts as -inf; no temperature,
 * penalty or filter), for OpenAI-style logprobs. *token_logprob (may be NULL) receives that of `token`; `top`
 * (may be NULL when n_top is 0) receives the min(n_top, n_vocab) most likely tokens, most likely first, ties to
 * the lower id; *n_written (may be NULL) their count. Allocates nothing. TND_ERR_INVALID_ARGUMENT for NULL
 * logits, n_vocab < 1, n_top < 0, a token outside [0, n_vocab) (unless token_logprob is NULL), or when every
 * logit is -inf or NaN. */
TND_API tnd_status tnd_logprobs(const float *logits, int32_t n_vocab, int32_t token, float *token_logprob,
                                tnd_token_logprob *top, int32_t n_top, int32_t *n_written);

/* The same for the final distribution of the sampler's last tnd_sampler_sample call: after penalties, bias,
 * filters and temperature, the one the token was drawn from (greedy: the chosen token has log-probability 0).
 * Tokens that were filtered out have -INFINITY and never appear in `top`, so *n_written may be below n_top.
 * TND_ERR_INVALID_ARGUMENT for bad arguments or before the first successful sample. */
TND_API tnd_status tnd_sampler_logprobs(const tnd_sampler *sampler, int32_t token, float *token_logprob,
                                        tnd_token_logprob *top, int32_t n_top, int32_t *n_written);

/* ---------------------------------------------------------------------------------------------------------------
 * Stop strings: hold back generated text that may still turn into a stop string
 *
 * Feed the detokenized text piece by piece; each call says which bytes are safe to show now. Text that could be
 * the start of a stop string is held back until it either completes one (then it is never shown, nor anything
 * after it) or cannot anymore. Matching is on bytes, so any UTF-8 works. The stop hit is the one that completes
 * first in the byte stream (on a tie, the longest), whatever the piece boundaries were.
 * ------------------------------------------------------------------------------------------------------------- */

typedef struct tnd_stop_matcher tnd_stop_matcher;

/* Creates a matcher for n_stops stop strings: stops[i] has lens[i] bytes (lens NULL = NUL-terminated strings).
 * The strings are copied. hold_partial_utf8 != 0 also holds back an incomplete UTF-8 sequence at the end of the
 * text until its remaining bytes arrive (so shown text never ends inside a character; invalid bytes are shown as
 * they are). Release with tnd_stop_matcher_free. TND_ERR_INVALID_ARGUMENT for an empty stop string, n_stops < 0
 * or NULL pointers; TND_ERR_OUT_OF_MEMORY. On failure *out is NULL. */
TND_API tnd_status tnd_stop_matcher_init(const char *const *stops, const size_t *lens, int32_t n_stops,
                                         int hold_partial_utf8, tnd_stop_matcher **out);

/* Releases the matcher. Accepts NULL. */
TND_API void tnd_stop_matcher_free(tnd_stop_matcher *matcher);

/* Adds `len` bytes of generated text. *text / *text_len receive the bytes safe to show now (borrowed from the
 * matcher, valid until its next call; may be empty). *stop_index (may be NULL) receives the index of the stop
 * string that was hit, or -1: once a stop string was hit, generation should end, and every later call shows
 * nothing and reports the same index. TND_ERR_OUT_OF_MEMORY (the internal buffer grows to the largest piece plus
 * the longest stop string); TND_ERR_INVALID_ARGUMENT for NULL pointers (piece may be NULL when len is 0). */
TND_API tnd_status tnd_stop_matcher_feed(tnd_stop_matcher *matcher, const char *piece, size_t len,
                                         const char **text, size_t *text_len, int32_t *stop_index);

/* Ends the text: returns the held-back bytes (none after a stop), which are now safe to show, with the same
 * borrowing rules as feed. */
TND_API tnd_status tnd_stop_matcher_flush(tnd_stop_matcher *matcher, const char **text, size_t *text_len);

/* A new matcher with src's stop strings, held text and hit. TND_ERR_INVALID_ARGUMENT, TND_ERR_OUT_OF_MEMORY. */
TND_API tnd_status tnd_stop_matcher_clone(const tnd_stop_matcher *src, tnd_stop_matcher **out);

/* Forgets held text and any hit, for a new generation with the same stop strings. */
TND_API void tnd_stop_matcher_reset(tnd_stop_matcher *matcher);

/* ---------------------------------------------------------------------------------------------------------------
 * Chat templates: turn a conversation into the prompt text a chat model was trained on
 *
 * tandem has built-in chat formats (llama2, llama3, chatml, mistral-v*, phi3, gemma, deepseek*, zephyr, ...; see
 * tnd_chat_template_name) and picks one for a model by recognising its GGUF `tokenizer.chat_template` (a Jinja
 * program, which tandem does not interpret) from distinctive substrings. A name chosen by the user overrides it.
 *
 * The prompt text:
 * - never begins with the BOS token: tokenize it with the model's add-BOS setting (tokenizer.ggml.add_bos_token).
 *   Markers inside the text (<|im_start|>, [INST], the "</s><s>" between Llama 2 turns, ...) are special tokens:
 *   tnd_chat_encode renders and encodes in one call, markers as control tokens and message contents as plain text
 *   (encoding the rendered text with special-token parsing would let a user's text forge turns);
 * - copies message contents verbatim except where the model's own template strips them (Llama 3, Gemma,
 *   Command R, Llama 2, the assistant replies of Mistral v3) of leading and trailing whitespace as Jinja's trim
 *   does (Unicode whitespace included), and except DeepSeek R1 / V3.1, whose templates drop an earlier reply's
 *   reasoning up to "</think>";
 * - leaves out the default system prompts some templates insert when none is given (Qwen 2.5, Mistral Small 3,
 *   the Llama 3.1 knowledge-date preamble): pass one as a system message if wanted;
 * - folds a system message into the first user turn for formats without a system turn (llama2's <<SYS>> block,
 *   gemma, mistral-v0/v1) or into the last one (mistral-v3, as Mistral's template does).
 * ------------------------------------------------------------------------------------------------------------- */

/* One message of a conversation. Both strings are NUL-terminated and borrowed for the duration of the call.
 * role: "system", "user", "assistant", "tool" (the result of a tool call: in the format's own turn where it has
 * one, llama3's ipython turn and mistral-v3's [TOOL_RESULTS]; elsewhere a user turn holding
 * <tool_response>\n...\n</tool_response>, as Qwen and Hermes write it) or "tools" (tool definitions as JSON, for a
 * format with a place of its own for them: mistral-v3 writes them as [AVAILABLE_TOOLS] before the last user turn;
 * refused elsewhere). content: UTF-8 text. */
typedef struct tnd_chat_message {
    const char *role;
    const char *content;
} tnd_chat_message;

/* Number of built-in chat formats. */
TND_API size_t tnd_chat_template_count(void);

/* Name of built-in format `index` ("chatml", "llama3", ...; static storage), or NULL if index >= the count. */
TND_API const char *tnd_chat_template_name(size_t index);

/* Resolves a user-given name, case-insensitively, also accepting a few other spellings ("llama-3", "qwen",
 * "phi-3", "gemma3", ...). *canonical receives the built-in name (static storage). TND_ERR_NOT_FOUND for an
 * unknown name (the message lists the known names); TND_ERR_INVALID_ARGUMENT for NULL pointers. */
TND_API tnd_status tnd_chat_template_lookup(const char *name, const char **canonical);

/* Recognises the format of a Jinja chat template (`len` bytes at `jinja`, not necessarily NUL-terminated).
 * *name receives the built-in name (static storage). TND_ERR_UNSUPPORTED if no built-in format matches (the
 * message lists the known names, one of which can be chosen by name); TND_ERR_INVALID_ARGUMENT for NULL pointers. */
TND_API tnd_status tnd_chat_template_detect(const char *jinja, size_t len, const char **name);

/* tnd_chat_template_detect on the model's `tokenizer.chat_template`. TND_ERR_NOT_FOUND if the model has none,
 * TND_ERR_TYPE if it is not a string, TND_ERR_UNSUPPORTED if it is not recognised (the messages list the known
 * names). */
TND_API tnd_status tnd_model_chat_template(const tnd_model *model, const char **name);

/* Renders `n_messages` messages with the format `name` (a built-in name or a spelling tnd_chat_template_lookup
 * accepts). add_assistant != 0 appends the text that opens the assistant's reply (for formats whose user turn
 * already ends with it, such as [/INST], nothing is appended). eos_text is the text of the model's end-of-sequence
 * token (the vocabulary entry of tokenizer.ggml.eos_token_id), written where the model's template writes
 * eos_token: after replies in llama2 and mistral-*, after every turn in zephyr, after replies in tulu, deepseek2;
 * NULL uses the format's usual one ("</s>"; "<|endoftext|>" for tulu). Other formats ignore it.
 *
 * Size convention: *needed receives the length of the full prompt in bytes, without the terminating NUL, both on
 * success and on TND_ERR_BUFFER_TOO_SMALL; the buffer must hold *needed + 1 bytes. When it is too small, buf (if
 * buf_size > 0) holds the NUL-terminated beginning of the prompt. buf may be NULL with buf_size 0 to ask for the
 * size only (which reports TND_ERR_BUFFER_TOO_SMALL).
 *
 * Errors: TND_ERR_NOT_FOUND (unknown format name), TND_ERR_INVALID_ARGUMENT (NULL pointers, a NULL role or
 * content, a role other than system/user/assistant/tool/tools, tool definitions where the format has no place for
 * them, or a system message after the first message in a format whose
 * template takes one only at the start: llama2, llama4, gemma, mistral-v0/v1/v3/v3-tekken/v7-tekken, deepseek3,
 * deepseek-r1*, deepseek-v3.1, command-r), TND_ERR_OUT_OF_MEMORY, TND_ERR_BUFFER_TOO_SMALL. */
TND_API tnd_status tnd_chat_template_apply(const char *name, const tnd_chat_message *messages, size_t n_messages,
                                           int add_assistant, const char *eos_text, char *buf, size_t buf_size,
                                           size_t *needed);

/* ---------------------------------------------------------------------------------------------------------------
 * Tokenizers: text <-> token ids, built from the model's tokenizer.ggml.* metadata
 *
 * Two families are supported, exactly as their original tokenizers define them:
 * - tokenizer.ggml.model "llama": SentencePiece-style merges driven by token scores, with the space marker U+2581
 *   and <0xNN> byte fallback (Llama 2, Mistral, TinyLlama, Phi-3, Gemma-style vocabularies);
 * - tokenizer.ggml.model "gpt2": byte-level BPE with merge ranks, after the pre-tokenizer that tokenizer.ggml.pre
 *   names (gpt-2, default, llama-bpe, qwen2, deepseek-llm, deepseek-coder, deepseek-v3, falcon, starcoder, refact,
 *   mpt, command-r, smollm, olmo, phi-2, tekken, gpt-4o and close relatives). An unknown model or pre-tokenizer
 *   type is an error that names it; tandem never substitutes another one.
 * Token ids are int32_t in [0, n_vocab). A tokenizer may be used by several threads at once.
 * ------------------------------------------------------------------------------------------------------------- */

typedef struct tnd_tokenizer tnd_tokenizer;

/* Builds the tokenizer the model's metadata describes (tokenizer.ggml.model, .pre, .tokens, .scores, .token_type,
 * .merges, the special token ids, add_bos_token, add_eos_token, add_space_prefix). The tokenizer borrows the
 * vocabulary strings from the model, so the model must outlive it; it does not need a context.
 * Returns TND_ERR_INVALID_ARGUMENT (NULL model or out), TND_ERR_NOT_FOUND (no tokenizer.ggml.model or .tokens, or
 * a gpt2 vocabulary without .merges or .pre), TND_ERR_UNSUPPORTED (a tokenizer model or pre-tokenizer type tandem
 * does not know, or remove_extra_whitespaces set: the message names it), TND_ERR_TYPE (a key of the wrong type),
 * TND_ERR_FORMAT (inconsistent metadata: array lengths, duplicate token strings, a byte token that is not <0xNN>,
 * add_bos_token/add_eos_token without a valid id), TND_ERR_OUT_OF_MEMORY. On failure *out is NULL. */
TND_API tnd_status tnd_tokenizer_init(const tnd_model *model, tnd_tokenizer **out);

/* Releases the tokenizer. Accepts NULL. */
TND_API void tnd_tokenizer_free(tnd_tokenizer *tok);

/* Flags of tnd_tokenizer_encode. */
#define TND_TOKENIZE_ADD_SPECIAL 1u   /* add BOS / EOS as the model's add_bos_token / add_eos_token say */
#define TND_TOKENIZE_PARSE_SPECIAL 2u /* control tokens written in the text ("<|im_end|>", "<s>") become those
                                         tokens; without it they are encoded as plain text */

/* The value the encode and decode functions return on an error: never a count, never a required size. */
#define TND_TOKENIZE_ERROR INT32_MIN

/* Longest text tnd_tokenizer_encode accepts, in bytes (so that every count fits an int32_t). */
#define TND_TOKENIZE_MAX_TEXT ((size_t)600 * 1024 * 1024)

/* Encodes `len` bytes of `text` (not NUL-terminated; NUL bytes are text like any other) into token ids.
 *
 * Return value: n >= 0, the number of tokens, written to tokens[0..n). When n > cap, the first cap tokens are
 * written and the function returns -n, the capacity needed (call again with cap >= n; tokens may be NULL with
 * cap 0 to ask for the size). TND_TOKENIZE_ERROR (INT32_MIN, which is never -n) reports an error, described by
 * tnd_last_error(): NULL tok, NULL text with len > 0, cap < 0, NULL tokens with cap > 0, unknown flag bits, text
 * longer than TND_TOKENIZE_MAX_TEXT, a model that asks for BOS/EOS without having one, the regex engine giving up
 * on the text, out of memory.
 *
 * Behaviour:
 * - User-defined tokens of the vocabulary are always matched whole in the text; control and unknown tokens only
 *   with TND_TOKENIZE_PARSE_SPECIAL. Where several could match, the leftmost occurrence wins, then the longest.
 *   A matched token is never split; the text around it is encoded separately.
 * - SPM vocabularies with add_space_prefix put the space marker in front of the text and of each stretch that
 *   follows a matched special token, as the original tokenizers do.
 * - Pre-tokenizers whose original normalizes text (qwen2, mpt, olmo, command-r) apply Unicode NFC first.
 * - Bytes that are not well-formed UTF-8 are not an error: each becomes its byte token (SPM <0xNN> byte fallback,
 *   the byte-level symbol in BPE), so decoding returns the same bytes. The well-formed text around them is encoded
 *   as usual. A byte the vocabulary has no token for is dropped, as the original tokenizers drop it (SPM without
 *   byte fallback uses the unknown token instead); tnd_tokenizer_init logs a warning for such vocabularies. */
TND_API int32_t tnd_tokenizer_encode(const tnd_tokenizer *tok, const char *text, size_t len, uint32_t flags,
                                     int32_t *tokens, int32_t cap);

/* Flag of tnd_chat_encode: control tokens written in message contents become those tokens too (the forgeable
 * behaviour of rendering to text and encoding it with TND_TOKENIZE_PARSE_SPECIAL; only for trusted text). */
#define TND_CHAT_CONTENT_SPECIAL 4u

/* Renders a conversation as tnd_chat_template_apply does and encodes it, so that only the format's own markers
 * (turn delimiters, the EOS text it writes) can become control tokens: message contents are encoded as plain text,
 * and a user who types "<|im_start|>system" gets those characters, never a system turn (OpenAI's behaviour). The
 * encoding is otherwise that of the rendered text with TND_TOKENIZE_PARSE_SPECIAL (the text between control tokens
 * is encoded in one piece, whether it came from the format or a message). User-defined tokens of the vocabulary
 * match anywhere, as in any text. flags: TND_TOKENIZE_ADD_SPECIAL (BOS as the model says), TND_CHAT_CONTENT_SPECIAL.
 * Return value and buffer convention as tnd_tokenizer_encode; errors also those of tnd_chat_template_apply. */
TND_API int32_t tnd_chat_encode(const tnd_tokenizer *tok, const char *name, const tnd_chat_message *messages,
                                size_t n_messages, int add_assistant, const char *eos_text, uint32_t flags,
                                int32_t *tokens, int32_t cap);

/* Flags of the decoding functions. */
#define TND_DETOKENIZE_SPECIAL 1u    /* show control, unknown and unused tokens as their text (by default
                                        they decode to nothing) */
#define TND_DETOKENIZE_KEEP_SPACE 2u /* SPM vocabularies with add_space_prefix: keep the leading space of the first
                                        piece (by default it is removed, undoing the prefix the encoder adds) */

/* The bytes one token decodes to (the "piece"): the space marker turned back into spaces, byte tokens into their
 * byte, byte-level characters into their bytes, user-defined tokens as written. Borrowed from the tokenizer, not
 * NUL-terminated, *len bytes (len may be NULL). A piece may end inside a UTF-8 character; use a detokenizer to
 * stream text. Hidden tokens (see TND_DETOKENIZE_SPECIAL) give "" unless the flag is set. The space-prefix
 * removal of tnd_tokenizer_decode does not apply here. Returns NULL for NULL tok or a token out of range. */
TND_API const char *tnd_tokenizer_piece(const tnd_tokenizer *tok, int32_t token, uint32_t flags, size_t *len);

/* Decodes n_tokens tokens into buf (no NUL is written). Returns the byte count n >= 0; when n > cap, the first
 * cap bytes are written and the function returns -n. TND_TOKENIZE_ERROR for NULL tok, NULL tokens with
 * n_tokens > 0, n_tokens < 0, cap < 0, NULL buf with cap > 0, unknown flag bits, a token out of range (the message
 * names its position), or a result longer than INT32_MAX bytes.
 * decode(encode(x)) == x for any text x encoded without TND_TOKENIZE_ADD_SPECIAL/PARSE_SPECIAL, except where the
 * vocabulary itself cannot represent it: NFC normalization (qwen2, ...), a literal U+2581 in SPM text (it decodes
 * as a space), bytes the vocabulary has no token for, and bytes that never occur in UTF-8 whose byte-level token
 * the vocabulary reuses for a user-defined token (DeepSeek: 0xC0, 0xC1, 0xF5..0xFF decode as that token's text). */
TND_API int32_t tnd_tokenizer_decode(const tnd_tokenizer *tok, const int32_t *tokens, int32_t n_tokens,
                                     uint32_t flags, char *buf, int32_t cap);

/* Streaming decoder: feed tokens one at a time and get the text that is complete. A piece that ends inside a UTF-8
 * character is held back until the character completes, so every chunk can be shown or sent as is. The chunks
 * concatenate to what tnd_tokenizer_decode gives for the same tokens and flags. */
typedef struct tnd_detokenizer tnd_detokenizer;

/* A new stream over `tok` (which must outlive it) with TND_DETOKENIZE_* flags. TND_ERR_INVALID_ARGUMENT (NULL
 * tok/out, unknown flag bits), TND_ERR_OUT_OF_MEMORY. Release with tnd_detokenizer_free (accepts NULL). */
TND_API tnd_status tnd_detokenizer_init(const tnd_tokenizer *tok, uint32_t flags, tnd_detokenizer **out);
TND_API void tnd_detokenizer_free(tnd_detokenizer *det);

/* A new stream in the state of src (its pending bytes and flags). TND_ERR_INVALID_ARGUMENT, TND_ERR_OUT_OF_MEMORY. */
TND_API tnd_status tnd_detokenizer_clone(const tnd_detokenizer *src, tnd_detokenizer **out);

/* Adds one token and writes the bytes that are now complete to buf (no NUL). Returns their count (>= 0, at most
 * the piece length + 3); if that exceeds cap, writes nothing, keeps the token out of the stream, and returns
 * -count (call again with a larger buffer). TND_TOKENIZE_ERROR for NULL det, NULL buf with cap > 0, cap < 0 or a
 * token out of range (the stream is unchanged). Not for use by two threads at once. */
TND_API int32_t tnd_detokenizer_push(tnd_detokenizer *det, int32_t token, char *buf, int32_t cap);

/* Ends the stream: writes the bytes still held back (the start of a UTF-8 character that never completed, as is)
 * and resets the stream for reuse. Returns the count (0..3), -count when cap is too small (nothing changes), or
 * TND_TOKENIZE_ERROR for bad arguments. */
TND_API int32_t tnd_detokenizer_finish(tnd_detokenizer *det, char *buf, int32_t cap);

/* The model's special tokens. */
typedef enum tnd_special_token {
    TND_TOKEN_BOS = 0,  /* beginning of sequence */
    TND_TOKEN_EOS,      /* end of sequence */
    TND_TOKEN_EOT,      /* end of turn (from metadata, else found by text: <|eot_id|>, <|im_end|>, <end_of_turn>...) */
    TND_TOKEN_EOM,      /* end of message (<|eom_id|>) */
    TND_TOKEN_UNK,      /* unknown */
    TND_TOKEN_SEP,      /* separator */
    TND_TOKEN_PAD,      /* padding */
    TND_TOKEN_MASK,     /* mask */
    TND_TOKEN_FIM_PRE,  /* fill-in-the-middle: prefix, suffix, middle, pad, repository, file separator */
    TND_TOKEN_FIM_SUF,
    TND_TOKEN_FIM_MID,
    TND_TOKEN_FIM_PAD,
    TND_TOKEN_FIM_REP,
    TND_TOKEN_FIM_SEP,
    TND_TOKEN_SPECIAL_COUNT
} tnd_special_token;

/* Token types (numeric values are those of tokenizer.ggml.token_type). */
typedef enum tnd_token_type {
    TND_TOKEN_TYPE_UNDEFINED = 0,
    TND_TOKEN_TYPE_NORMAL = 1,
    TND_TOKEN_TYPE_UNKNOWN = 2,
    TND_TOKEN_TYPE_CONTROL = 3,
    TND_TOKEN_TYPE_USER_DEFINED = 4,
    TND_TOKEN_TYPE_UNUSED = 5,
    TND_TOKEN_TYPE_BYTE = 6
} tnd_token_type;

/* Number of tokens in the vocabulary (0 for NULL). */
TND_API int32_t tnd_tokenizer_n_vocab(const tnd_tokenizer *tok);

/* Id of a special token, or -1 if the model has none (or for NULL tok / an unknown `which`). */
TND_API int32_t tnd_tokenizer_special(const tnd_tokenizer *tok, tnd_special_token which);

/* Whether encoding with TND_TOKENIZE_ADD_SPECIAL adds BOS / EOS (1) or not (0). */
TND_API int tnd_tokenizer_adds_bos(const tnd_tokenizer *tok);
TND_API int tnd_tokenizer_adds_eos(const tnd_tokenizer *tok);

/* 1 if generating `token` ends the generation (EOS, EOT, EOM and the end-of-turn tokens the vocabulary names),
 * else 0 (also for a token out of range). */
TND_API int tnd_tokenizer_is_eog(const tnd_tokenizer *tok, int32_t token);

/* Type of a token; TND_TOKEN_TYPE_UNDEFINED for a token out of range. */
TND_API tnd_token_type tnd_tokenizer_token_type(const tnd_tokenizer *tok, int32_t token);

/* The vocabulary string of a token as stored in the model ("\xe2\x96\x81Hello", "\xc4\xa0world", "<0x0A>"):
 * borrowed, not NUL-terminated, *len bytes (len may be NULL). NULL for a token out of range. */
TND_API const char *tnd_tokenizer_token_text(const tnd_tokenizer *tok, int32_t token, size_t *len);

/* The id whose vocabulary string is exactly text[0..len), or -1. */
TND_API int32_t tnd_tokenizer_find(const tnd_tokenizer *tok, const char *text, size_t len);

/* ---------------------------------------------------------------------------------------------------------------
 * Grammars: generated text that follows a formal language
 *
 * A grammar in GBNF, the notation llama.cpp's grammars use, so existing grammars work:
 *
 *   root   ::= "{" ws pair (ws "," ws pair)* ws "}"     # one rule per line; "root" is where the text starts
 *   pair   ::= string ws ":" ws [0-9]+
 *   string ::= "\"" [a-z]* "\""
 *   ws     ::= [ \t\n]*
 *
 * Literals in double quotes, character classes in brackets ([^"\\] negated, ranges a-z), . for any character,
 * rule names, groups in parentheses, alternatives with |, repetition with *, +, ?, {m}, {m,}, {m,n}; escapes \n \r
 * \t \\ \" \xHH \uHHHH \UHHHHHHHH; # comments. A rule continues on the next line inside parentheses or after |.
 * Left recursion (a rule that can reach itself before matching a character) is refused: write it as repetition.
 * A generation given a grammar (tnd_generate_params.grammar) produces only text the grammar allows, and ends
 * (TND_FINISH_EOG) when the text is complete and nothing can follow, or when the model ends it where the text is
 * complete.
 * ------------------------------------------------------------------------------------------------------------- */

typedef struct tnd_grammar tnd_grammar;

/* Parses and compiles text[0..len) with `root` as the start rule (NULL = "root"). On success *out must be released
 * with tnd_grammar_free; it is immutable, so any number of generations may use it at once. TND_ERR_INVALID_ARGUMENT
 * with a message naming the line and column (or the rule) of the problem: a syntax error, a rule used but never
 * defined or defined twice, left recursion, no start rule; TND_ERR_OUT_OF_MEMORY. */
TND_API tnd_status tnd_grammar_parse(const char *text, size_t len, const char *root, tnd_grammar **out);

/* Releases a grammar. Accepts NULL. */
TND_API void tnd_grammar_free(tnd_grammar *grammar);

/* A grammar of the JSON texts that validate against a JSON Schema (schema[0..len), UTF-8 JSON): type (one or a
 * list), properties / required / additionalProperties (members in the schema's order; extra ones after them),
 * items / minItems / maxItems, enum, const, anyOf / oneOf (as alternatives), allOf of one schema, $ref into the
 * document ($defs, definitions; recursion allowed), minLength / maxLength, format date, time, date-time and uuid,
 * minimum / maximum / exclusiveMinimum / exclusiveMaximum for integers (up to 16 digits), minimum 0 or 1 for other
 * numbers. Keywords that constrain otherwise (pattern, other bounds of numbers, uniqueItems, not, ...) are
 * refused, never ignored: TND_ERR_INVALID_ARGUMENT names the keyword and the path in the schema; annotations
 * (title, description, default, other formats) are ignored. TND_ERR_OUT_OF_MEMORY. */
TND_API tnd_status tnd_grammar_from_json_schema(const char *schema, size_t len, tnd_grammar **out);

/* The GBNF text of JSON (RFC 8259) with an object at the top, as OpenAI's response_format "json_object" asks for
 * (NUL-terminated, static). */
TND_API const char *tnd_grammar_json_text(void);

typedef enum tnd_grammar_match {
    TND_GRAMMAR_REJECTED = 0,  /* no text of the grammar starts with it */
    TND_GRAMMAR_PREFIX,        /* the start of some text of the grammar, not complete */
    TND_GRAMMAR_COMPLETE       /* a complete text of the grammar (longer ones may start with it) */
} tnd_grammar_match;

/* How text[0..len) (UTF-8) stands against the grammar. REJECTED also for NULL grammar or memory exhaustion. */
TND_API tnd_grammar_match tnd_grammar_check(const tnd_grammar *grammar, const char *text, size_t len);

/* ---------------------------------------------------------------------------------------------------------------
 * Generation sessions: a prompt in, text out
 *
 * A session owns one sequence of a context and runs the whole loop of generation: it keeps the record of the
 * tokens its sequence holds and reuses the longest cached prefix when a new prompt starts, evaluates the prompt in
 * chunks of at most n_batch tokens, samples, detokenizes, holds back text that may still become a stop string, and
 * stops at an end-of-generation token, a stop string, the token budget, the end of its context or a cancellation.
 * Several sessions of one context step together, one forward pass for all (tnd_session_step_many): that is how the
 * server batches its requests; the command line runs a single one.
 *
 * The state of a session is its token record, its sampler (penalty history and random state), the detokenizer's
 * pending bytes, the stop matcher's held text and the KV rows of its sequence. tnd_session_clone copies all of it
 * (the KV rows shared copy-on-write) and tnd_session_rollback takes back generated tokens: stepping on after a
 * rollback of k tokens gives the same tokens, text and random draws as a session that never went ahead, because
 * the random state before every draw is kept and the last kept token is evaluated again for its logits.
 *
 * A session is used by one thread at a time, and the sessions of one context by one thread at a time (they share
 * its logits), except tnd_session_cancel, which any thread may call.
 * ------------------------------------------------------------------------------------------------------------- */

typedef struct tnd_session tnd_session;

/* Why a generation ended. */
typedef enum tnd_finish_reason {
    TND_FINISH_NONE = 0,     /* not ended: still generating, or nothing started */
    TND_FINISH_EOG,          /* the model generated an end-of-generation token (not part of the text or counts) */
    TND_FINISH_STOP_STRING,  /* a stop string appeared; neither it nor anything after it is in the text */
    TND_FINISH_LENGTH,       /* max_tokens tokens were generated */
    TND_FINISH_CONTEXT,      /* the sequence holds max_context tokens: no room to evaluate another */
    TND_FINISH_CANCELLED,    /* tnd_session_cancel was called */
    TND_FINISH_ERROR         /* a forward step or the sampler failed: tnd_session_error says why */
} tnd_finish_reason;

/* Short name of a finish reason ("eog", "stop_string", "length", "context", "cancelled", "error", "none"). */
TND_API const char *tnd_finish_reason_name(tnd_finish_reason reason);

/* Receives each piece of generated text as it becomes safe to show (never inside a UTF-8 character the model
 * completes later, never the start of a stop string that may still complete). */
typedef void (*tnd_text_fn)(void *user, const char *text, size_t len);

typedef struct tnd_generate_params {
    tnd_sampler_params sampling;  /* copied; a new sampler is made at every tnd_session_start (default: defaults) */
    int32_t max_tokens;           /* generated tokens at most; -1 = no budget (default -1) */
    const char *const *stops;     /* n_stops stop strings, copied: generation ends before the first one */
    const size_t *stop_lens;      /* their lengths; NULL = NUL-terminated strings */
    int32_t n_stops;
    int ignore_eog;               /* 1: an end-of-generation token is text like any other (default 0) */
    uint32_t detokenize_flags;    /* TND_DETOKENIZE_* for the generated text (default TND_DETOKENIZE_KEEP_SPACE:
                                     the text continues the prompt exactly) */
    tnd_text_fn on_text;          /* NULL (default) = only the pull call tnd_session_text */
    void *user;                   /* passed to on_text */
    const tnd_grammar *grammar;   /* NULL (default), or the grammar the generated text follows; borrowed: it must
                                     outlive the generation */
    int no_speculation;           /* 1: this generation takes one token per step even where the session has a
                                     speculation setting (tnd_session_set_speculation), which stays for the next;
                                     for a caller that looks at every token's logits (default 0) */
} tnd_generate_params;

/* Defaults as described above. */
TND_API tnd_generate_params tnd_generate_default_params(void);

/* Counts and timings of the current (or last) generation. Times are wall-clock seconds of the forward steps the
 * session took part in; in a batched step, the whole step counts for each session in it. */
typedef struct tnd_session_stats {
    int32_t n_prompt;         /* tokens of the prompt */
    int32_t n_reused;         /* of them, found in the KV cache and not evaluated again */
    int32_t n_generated;      /* generated tokens in the text (an end-of-generation token is not counted) */
    double t_prompt;          /* seconds of the steps that evaluated the prompt */
    double t_first_token;     /* seconds from tnd_session_start to the first sampled token (0 before it) */
    double t_generate;        /* seconds of the steps after the first sampled token */
} tnd_session_stats;

/* A session over sequence `seq` of ctx (0 <= seq < the context's n_seq_max), with the tokenizer of the context's
 * model (both must outlive it). max_context caps the tokens the sequence may hold, prompt and generated
 * (0 = the context's n_ctx); the server gives every sequence its share this way. The sequence is emptied.
 * TND_ERR_INVALID_ARGUMENT (NULL pointers, seq or max_context out of range), TND_ERR_OUT_OF_MEMORY. */
TND_API tnd_status tnd_session_init(tnd_context *ctx, const tnd_tokenizer *tok, int32_t seq, int32_t max_context,
                                    tnd_session **out);

/* Releases the session and empties its sequence. Accepts NULL. */
TND_API void tnd_session_free(tnd_session *session);

/* Starts a generation after prompt[0..n) (1 <= n <= max_context): sets up sampler, stop strings and detokenizer
 * from params, keeps the longest prefix of the prompt that the sequence holds (all but the last token at most,
 * which is evaluated again for its logits) and drops the rest of the cache. Nothing is evaluated until the first
 * step. A generation still running is abandoned. TND_ERR_INVALID_ARGUMENT (NULL pointers, a token out of range,
 * an empty prompt or one longer than max_context: the message says which), errors of tnd_sampler_init and
 * tnd_stop_matcher_init, TND_ERR_OUT_OF_MEMORY. On failure the session holds no generation (its cache stays). */
TND_API tnd_status tnd_session_start(tnd_session *session, const tnd_generate_params *params, const int32_t *prompt,
                                     int32_t n);

/* tnd_session_start on the conversation as tnd_chat_encode renders and encodes it with `template_name` (a built-in
 * name), the assistant's turn opened, BOS as the model says, the model's EOS text; flags: 0 or
 * TND_CHAT_CONTENT_SPECIAL. Errors also those of tnd_chat_encode. */
TND_API tnd_status tnd_session_start_chat(tnd_session *session, const tnd_generate_params *params,
                                          const char *template_name, const tnd_chat_message *messages,
                                          size_t n_messages, uint32_t flags);

/* One forward step of a running generation: the next chunk of the prompt, or the last token, and then a sampled
 * token if the prompt is done. Equivalent to tnd_session_step_many with this one session. */
TND_API tnd_status tnd_session_step(tnd_session *session);

/* What one batched step did. */
typedef struct tnd_step_stats {
    int32_t n_prompt_tokens;  /* prompt tokens evaluated */
    int32_t n_generated;      /* tokens sampled into a text (end-of-generation tokens not counted) */
    double seconds;           /* wall-clock time of the forward pass */
} tnd_step_stats;

/* One forward pass for n sessions of the same context, each on its own sequence: first the pending token of every
 * generating session, then prompt chunks of the prefilling ones in the order given (put the oldest first), up to
 * the context's n_batch tokens in all; then each session whose prompt is done samples its next token. Sessions
 * without a running generation are skipped. Returns TND_ERR_INVALID_ARGUMENT (NULL pointers, sessions of different
 * contexts or sharing a sequence) before doing anything. When the forward pass fails, every session it fed ends
 * with TND_FINISH_ERROR (its cache as before the step) and the status is returned, except TND_ERR_DEVICE_LOST: then
 * the sessions keep their generations as before the step, to go on after tnd_session_move. A failure of one session's
 * sampler ends that session alone (TND_FINISH_ERROR) and the call returns TND_OK. stats may be NULL. */
TND_API tnd_status tnd_session_step_many(tnd_session *const *sessions, int32_t n, tnd_step_stats *stats);

/* Steps until the generation ends. Returns TND_OK, or the status that ended it with TND_FINISH_ERROR. */
TND_API tnd_status tnd_session_generate(tnd_session *session);

/* Why the current generation ended (TND_FINISH_NONE while it runs). */
TND_API tnd_finish_reason tnd_session_finish_reason(const tnd_session *session);

/* The message of the failure that ended the generation with TND_FINISH_ERROR, else "". Borrowed. */
TND_API const char *tnd_session_error(const tnd_session *session);

/* Asks the generation to end before its next step with TND_FINISH_CANCELLED. Safe from any thread, also while
 * another thread steps the session. */
TND_API void tnd_session_cancel(tnd_session *session);

/* Ends the generation now with `reason` (TND_FINISH_LENGTH or TND_FINISH_CANCELLED, for a caller's own limit such
 * as a deadline): LENGTH shows the text still held back, as a budget would. TND_ERR_INVALID_ARGUMENT otherwise. */
TND_API tnd_status tnd_session_end(tnd_session *session, tnd_finish_reason reason);

/* The text generated since tnd_session_start (what on_text received, in one piece), *len bytes (len may be
 * NULL), NUL-terminated; borrowed until the session's next call. */
TND_API const char *tnd_session_text(const tnd_session *session, size_t *len);

/* The token sampled by the session's last step into the text, or -1 (no token in that step, or an
 * end-of-generation token). */
TND_API int32_t tnd_session_last_token(const tnd_session *session);

/* The raw logits (n_vocab floats) that the session's last step sampled from, for tnd_logprobs; borrowed from the
 * context, valid until the next forward pass of any session of that context. NULL if its last step sampled
 * nothing. */
TND_API const float *tnd_session_logits(const tnd_session *session);

/* The token record: the prompt, then the generated tokens (*n of them in all; n may be NULL). Borrowed until the
 * session's next call. */
TND_API const int32_t *tnd_session_tokens(const tnd_session *session, int32_t *n);

/* Counts and timings of the current generation into *out. */
TND_API void tnd_session_stats_get(const tnd_session *session, tnd_session_stats *out);

/* Takes back the last n generated tokens (0 <= n <= the tokens generated so far): the record, the text, the
 * sampler's penalty history and random state, the detokenizer, the stop matcher and the KV cache return to where
 * they were when those tokens had not been drawn, and the generation runs again (a finish reason is cleared).
 * TND_ERR_INVALID_ARGUMENT for n out of range or no generation; TND_ERR_OUT_OF_MEMORY (the session is then ended
 * with TND_FINISH_ERROR). Text given to on_text is not taken back: tnd_session_text says what stands. */
TND_API tnd_status tnd_session_rollback(tnd_session *session, int32_t n);

/* A new session on sequence `seq` of the same context that is a copy of `src` in every respect (record, sampler
 * with its random state, detokenizer, stop matcher, text, finish reason, counts); its KV rows are shared with src's
 * copy-on-write. Both then go on independently. TND_ERR_INVALID_ARGUMENT (NULL pointers, seq out of range or
 * src's own), TND_ERR_OUT_OF_MEMORY; errors of tnd_context_seq_fork. */
TND_API tnd_status tnd_session_clone(const tnd_session *src, int32_t seq, tnd_session **out);

/* Moves the session to sequence `seq` of another context, keeping everything but its KV rows: the record, the
 * sampler, the detokenizer, the stop matcher, the grammar, the text and the counts. The next step evaluates the
 * record again on the new context (as a prompt, in chunks of its n_batch) and samples on from there, so the text
 * goes on with no token lost or repeated. Where `seq` already holds the rows of the record's first tokens (a context
 * that followed the conversation in the background: tnd_context_seq_cached_prefix), they are kept and only the rest
 * is evaluated; anything else in `seq` is dropped. This is how a generation survives a device that is gone: after a
 * step returned TND_ERR_DEVICE_LOST, move the sessions to a context on the devices that are left, or on a smaller
 * model of the same vocabulary. The old sequence is emptied (its blocks are freed; nothing is asked of its devices).
 * TND_ERR_INVALID_ARGUMENT (NULL, the same context, seq out of range, another vocabulary size, a record longer than
 * the new context); the session is unchanged then. */
TND_API tnd_status tnd_session_move(tnd_session *session, tnd_context *ctx, int32_t seq);

/* Number of leading tokens of tokens[0..n) that the session's sequence holds in the KV cache. */
TND_API int32_t tnd_session_cached_prefix(const tnd_session *session, const int32_t *tokens, int32_t n);

/* Makes dst's sequence a copy-on-write copy of src's cached tokens (dst's own cache is dropped; its generation, if
 * any, is abandoned), so that a prompt dst starts next can reuse src's prefix while src keeps its cache whole.
 * Both sessions must be on one context and not generating. */
TND_API tnd_status tnd_session_adopt_cache(tnd_session *dst, const tnd_session *src);

/* Empties the session's sequence (frees its KV blocks) and abandons any generation. */
TND_API void tnd_session_clear(tnd_session *session);

/* ---------------------------------------------------------------------------------------------------------------
 * Speculative decoding: draft several tokens cheaply, verify them in one forward step of the model
 *
 * A step of a generating session normally evaluates one token (the last one sampled). With speculation it also
 * evaluates k drafted tokens that would follow it, in the same batch, and asks for the logits of all 1 + k rows: a
 * decode step reads every weight once whether it evaluates one token or a few, so an accepted draft is a token
 * almost for free. The session samples row by row as it would have without speculation (the same sampler, penalty
 * history and random draws) and keeps drafted token i only if what it sampled from row i is that token; the first
 * disagreement is kept in its place and the rest of the draft is dropped from the KV cache. So the output is the
 * model's own, token for token: greedy output is what the model alone gives, and sampled output with a fixed seed
 * is the very sequence the same seed gives without speculation. (Drafts are deterministic, so this is the standard
 * speculative-sampling rule, accept with probability min(1, p/q), with q a point mass: accept with probability
 * p(draft), else draw from p without the draft.) This rests on the forward pass giving a row of a batch the same
 * logits, bit for bit, as the token alone, which the kernels guarantee (tests/test_kv_cache.c).
 *
 * Draft sources:
 *   TND_DRAFT_NGRAM  prompt lookup: the last n tokens (n from ngram_max down to ngram_min) are searched for in the
 *                    session's record (prompt and output); the tokens that followed the latest match are the
 *                    draft. Free to compute; pays on repetitive text (code, a document being edited, quotes).
 *   TND_DRAFT_MODEL  a smaller model of the same vocabulary drafts greedily on its own context and sequence,
 *                    stopping at a token whose draft probability is below p_min.
 *
 * The controller (adaptive, the default) keeps per session an estimate of the chance that a drafted token is
 * accepted, and measures the cost of drafting a token and of a verification step as a function of the tokens in
 * the step (the context's steps are timed). Before each step it picks the draft length k that maximises the
 * expected tokens per second of the whole step (with other sessions in the batch, their streams count too, so a
 * draft never pays for itself by slowing them), and k = 0 (no speculation) when nothing pays. While off it still
 * drafts now and then (a probe, at growing intervals) so that it turns speculation back on when the text becomes
 * predictable. A draft that fails (the draft context is full, say) only costs the speculation of that step.
 * ------------------------------------------------------------------------------------------------------------- */

typedef enum tnd_draft_source {
    TND_DRAFT_NONE = 0,   /* no speculation */
    TND_DRAFT_NGRAM,      /* prompt lookup in the session's own tokens */
    TND_DRAFT_MODEL       /* a draft model of the same vocabulary */
} tnd_draft_source;

/* Short name of a draft source ("none", "ngram", "model"). */
TND_API const char *tnd_draft_source_name(tnd_draft_source source);

typedef struct tnd_speculation_params {
    tnd_draft_source source;      /* default TND_DRAFT_NONE */
    tnd_context *draft_context;   /* TND_DRAFT_MODEL: a context of the draft model, which must outlive the setting;
                                     its vocabulary must be the target's (same token strings) */
    int32_t draft_seq;            /* the sequence of draft_context this session drafts on (default 0); the session
                                     owns it while the setting holds (it empties it when the setting ends) */
    int32_t draft_max;            /* most tokens drafted per step, 1..64 (default 16) */
    int32_t draft_min;            /* a draft shorter than this is not verified (default 1) */
    float p_min;                  /* TND_DRAFT_MODEL: stop the draft at a token the draft model gives a
                                     probability below this, in [0, 1] (default 0.5) */
    int32_t ngram_min, ngram_max; /* TND_DRAFT_NGRAM: lengths of the n-gram looked up, 1 <= min <= max <= 16
                                     (default 2 and 4) */
    int adaptive;                 /* 1 (default): the controller picks the length and turns speculation off when it
                                     does not pay; 0: always draft up to draft_max */
} tnd_speculation_params;

/* Defaults as described above. */
TND_API tnd_speculation_params tnd_speculation_default_params(void);

/* Sets how the session speculates, for this and the following generations (NULL or TND_DRAFT_NONE: it does not);
 * the controller's measurements start anew. TND_ERR_INVALID_ARGUMENT names a parameter out of range, a draft
 * context that is the session's own or whose sequence is out of range, and a draft model whose vocabulary is not
 * the target's (the message names the first token that differs); TND_ERR_OUT_OF_MEMORY. On failure the session's
 * setting is unchanged. A clone (tnd_session_clone) does not speculate until it is given a setting of its own. */
TND_API tnd_status tnd_session_set_speculation(tnd_session *session, const tnd_speculation_params *params);

/* What speculation did in a session since its setting was made. */
typedef struct tnd_speculation_stats {
    tnd_draft_source source;
    int64_t n_verified;       /* steps that verified a draft */
    int64_t n_drafted;        /* drafted tokens verified */
    int64_t n_accepted;       /* of them, accepted */
    int64_t n_plain;          /* generating steps without a draft (the controller said no, or nothing to draft) */
    int64_t n_probes;         /* drafts made while speculation was off, to measure whether it pays again */
    double acceptance;        /* the controller's estimate of the chance a drafted token is accepted */
    int32_t draft_length;     /* the draft length the controller chose last (0 = speculation off) */
    double t_draft;           /* seconds spent drafting (draft model steps, n-gram lookups) */
    double draft_token_seconds;  /* measured cost of drafting one token */
    double step_seconds;      /* measured cost of a step of one token, and of each extra token in a step */
    double step_token_seconds;
} tnd_speculation_stats;

/* Fills *out (zeros for NULL or a session that never speculated). */
TND_API void tnd_session_speculation_stats(const tnd_session *session, tnd_speculation_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* TANDEM_H */
