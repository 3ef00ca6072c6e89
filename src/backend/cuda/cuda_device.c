/* cuda_device.c: the CUDA device: an NVIDIA GPU through the CUDA runtime (linked statically, so the library starts
 * where no driver is, and the device is then absent). One stream per device: ops are kernels enqueued in order
 * (cuda_kernels.cu), synchronize waits for them and returns the first failure. Weights are uploaded once in the
 * file's block layout; embedding tables stay in host memory (a step's rows are decoded on the host and copied over,
 * as on the Vulkan device). A KV pool row holds one position of every head in the K or V type's own encoding.
 *
 * A step's host data (its metadata, embedding rows, a residual stream handed over from another device) is copied
 * into pinned buffers and reaches the device from there: the step's arena is allocated in order and taken back at
 * the next step, after this one's synchronize, so no buffer is rewritten under a copy still to run.
 *
 * int8 matmuls (TANDEM_CUDA_INT8=1, off by default until measured on a GPU): quantized weights multiply activations
 * converted to 8-bit blocks once per input, with dp4a dot products (cuda_math.cuh), as the Vulkan device does where it
 * has integer dot products.
 *
 * CUDA graphs (TANDEM_CUDA_GRAPHS=1, off by default until measured on a GPU): a step of up to GRAPH_TOKENS tokens is
 * captured from begin_step on and launched as one graph at its first read or at synchronize, so a decode step with
 * the whole model here costs one launch instead of one per op. The graph of each token count is kept and updated in
 * place by the next capture (the same ops with other arguments), not made again; a device whose steps keep changing
 * shape, or whose capture fails, goes on without graphs. A step runs on one thread (the capture is the thread's). */
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_kernels.h"

#include "backend/step_flat.h"
#include "core/alloc.h"
#include "core/error.h"
#include "quant/quant.h"

#include <cuda_runtime_api.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    MIN_COMPUTE = 75, /* the oldest compute capability the build targets (Turing) */
    GRAPH_TOKENS = 8, /* steps of up to this many tokens (decoding, a few sequences at once) are captured as graphs */
    MAX_REMADE = 16   /* graphs made anew in a row after which the device stops capturing: its steps change shape */
};

struct tnd_buffer {
    uint8_t *ptr; /* device memory */
    size_t size;
};

typedef struct cuda_device {
    tnd_backend base;
    tnd_allocator allocator;
    int index;
    struct cudaDeviceProp props;
    cudaStream_t stream;
    uint32_t *meta, *meta_host; /* the step's metadata on the device and its host copy (words, pinned) */
    size_t meta_cap, meta_host_cap;
    int32_t n_step, block_size;
    uint8_t *arena; /* the step's host data (pinned): arena_used of arena_cap bytes taken, in order */
    size_t arena_cap, arena_used;
    bool in_step;                            /* begun, not yet synchronized */
    bool graphs, capturing;                  /* TANDEM_CUDA_GRAPHS; a step is being captured */
    bool int8;                               /* TANDEM_CUDA_INT8: quantized weights times 8-bit activations */
    uint32_t *xq;                            /* the activations as 8-bit blocks: xq_rows rows of xq_blocks */
    size_t xq_blocks, xq_rows;
    cudaGraphExec_t graph[GRAPH_TOKENS + 1]; /* the graph of steps of each token count */
    int remade;                              /* graphs made anew in a row (steps that change shape) */
    tnd_status failure; /* the first failure since the last synchronize */
    char message[512]; /* "NAME: WHAT: WHY" */
} cuda_device;

static cuda_device *dev(tnd_backend *b) { return (cuda_device *)b->impl; }

/* ------------------------------------------------------------------------------------------------------------
 * Failures
 * ---------------------------------------------------------------------------------------------------------- */

/* What a CUDA error means to tandem: errors after which the GPU's context cannot go on are a lost device. */
static tnd_status status_of(cudaError_t e) {
    switch (e) {
    case cudaErrorMemoryAllocation: return TND_ERR_OUT_OF_MEMORY;
    case cudaErrorInsufficientDriver:
    case cudaErrorNoDevice:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion: return TND_ERR_UNSUPPORTED;
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorDevicesUnavailable:
    case cudaErrorDeviceUninitialized:
    case cudaErrorContextIsDestroyed: return TND_ERR_DEVICE_LOST;
    default: return TND_ERR_INTERNAL;
    }
}

/* Records the first failure of the step (later ones are consequences) as `st`: what failed, and why. */
static void record(cuda_device *d, tnd_status st, const char *what, const char *why) {
    if (d->failure) return;
    d->failure = st;
    snprintf(d->message, sizeof d->message, "%s: %s%s", d->base.name, what, why);
}

/* Records a CUDA error e (and clears it from the runtime's last error, so that the next launch does not report it
 * again); false when e is cudaSuccess. */
static bool failed(cuda_device *d, cudaError_t e, const char *fmt, ...) TND_PRINTF(3, 4);
static bool failed(cuda_device *d, cudaError_t e, const char *fmt, ...) {
    if (e == cudaSuccess) return false;
    cudaGetLastError();
    char what[160], why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(why, sizeof why, ": %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
    record(d, status_of(e), what, why);
    return true;
}

/* Records an op this device cannot run (checked before anything is launched). */
static void unsupported(cuda_device *d, const char *fmt, ...) TND_PRINTF(2, 3);
static void unsupported(cuda_device *d, const char *fmt, ...) {
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    record(d, TND_ERR_UNSUPPORTED, what, "");
}

/* Makes the device current for the calling thread (the runtime keeps one per thread; a context may move between
 * threads, as a server's does). */
static bool select_device(cuda_device *d) { return !failed(d, cudaSetDevice(d->index), "select the GPU"); }

/* Whether an op may be enqueued: not after a failure of the step (its inputs, the step's metadata, may be missing),
 * with the device selected. */
static bool ready(cuda_device *d) { return !d->failure && select_device(d); }

/* Ends a step's capture, if one runs, and launches what it holds (see Steps). */
static void end_capture(cuda_device *d);

/* A view's device address and its row stride in floats. */
static void *at(const tnd_tensor *t) { return t->buf->ptr + t->offset; }
static int32_t stride_of(const tnd_tensor *t) { return (int32_t)(t->row_bytes / sizeof(float)); }

/* ------------------------------------------------------------------------------------------------------------
 * What the device is
 * ---------------------------------------------------------------------------------------------------------- */

static bool cuda_supports(tnd_backend *b, const tnd_op_query *q) {
    switch (q->op) {
    case TND_OP_EMBED:
    case TND_OP_MATMUL:
    case TND_OP_MATMUL_EXPERTS: return tnd_cuda_weight_type(q->type);
    case TND_OP_KV_STORE:
    case TND_OP_ATTENTION:
        return tnd_cuda_kv_type(q->type, q->head_dim) && tnd_cuda_kv_type(q->v_type, q->head_dim) &&
               q->head_dim <= TND_CUDA_MAX_HEAD_DIM &&
               (q->op == TND_OP_KV_STORE || (q->n_head_kv > 0 && q->n_head % q->n_head_kv == 0));
    default: return q->op < TND_OP_COUNT;
    }
}

static void cuda_memory(tnd_backend *b, uint64_t *total, uint64_t *available) {
    cuda_device *d = dev(b);
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaSetDevice(d->index) != cudaSuccess || cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess)
        cudaGetLastError();
    *total = total_bytes;
    *available = free_bytes;
}

static void cuda_describe(tnd_backend *b, char *buf, size_t cap) {
    cuda_device *d = dev(b);
    int driver = 0;
    cudaDriverGetVersion(&driver);
    snprintf(buf, cap, "%s, compute %d.%d, %d SMs, CUDA driver %d.%d%s%s", d->props.name, d->props.major,
             d->props.minor, d->props.multiProcessorCount, driver / 1000, driver % 1000 / 10, d->int8 ? ", int8 dot" : "",
             d->graphs ? ", graphs" : "");
}

/* ------------------------------------------------------------------------------------------------------------
 * Pinned host memory
 * ---------------------------------------------------------------------------------------------------------- */

/* Grows a pinned host array to hold `need` elements of `size` bytes; false (recorded) when it cannot. Outside a step
 * only (its copies would still read the old one, and a capture may not allocate pinned memory). */
static bool host_room(cuda_device *d, void **p, size_t *cap, size_t need, size_t size) {
    if (*cap >= need) return true;
    void *grown = NULL;
    if (failed(d, cudaMallocHost(&grown, need * size), "pinned host memory for %zu bytes", need * size)) return false;
    if (*p && cudaFreeHost(*p) != cudaSuccess) cudaGetLastError();
    *p = grown;
    *cap = need;
    return true;
}

/* Room for `bytes` of host data in the step's arena (16-byte aligned), or NULL where it is full: the caller then
 * goes through pageable memory, after ending a capture. */
static void *arena_take(cuda_device *d, size_t bytes) {
    size_t at = (d->arena_used + 15) & ~(size_t)15;
    if (at + bytes > d->arena_cap) return NULL;
    d->arena_used = at + bytes;
    return d->arena + at;
}

/* The arena for the largest step: its embedding rows and a residual stream handed over, each at most max_tokens rows
 * of max_cols floats. */
static tnd_status cuda_reserve(tnd_backend *b, int64_t max_cols, int64_t max_tokens) {
    cuda_device *d = dev(b);
    size_t need = 2 * sizeof(float) * (size_t)max_cols * (size_t)max_tokens + 64;
    size_t blocks = (size_t)(max_cols + 31) / 32, rows = (size_t)max_tokens;
    if (d->int8 && (blocks > d->xq_blocks || rows > d->xq_rows)) { /* int8: room for x's blocks, never less */
        end_capture(d);
        blocks = blocks > d->xq_blocks ? blocks : d->xq_blocks;
        rows = rows > d->xq_rows ? rows : d->xq_rows;
        uint32_t *grown = NULL;
        if (cudaSetDevice(d->index) != cudaSuccess ||
            cudaMalloc((void **)&grown, blocks * rows * TND_CUDA_Q8_WORDS * sizeof(uint32_t)) != cudaSuccess) {
            cudaGetLastError(); /* no room: the matmuls that do not fit take the float path */
        } else {
            if (d->xq && cudaFree(d->xq) != cudaSuccess) cudaGetLastError();
            d->xq = grown, d->xq_blocks = blocks, d->xq_rows = rows;
        }
    }
    if (!select_device(d) || !host_room(d, (void **)&d->arena, &d->arena_cap, need, 1)) {
        tnd_status st = d->failure;
        d->failure = TND_OK;
        return tnd_fail(st, "%s", d->message);
    }
    return TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * Memory
 * ---------------------------------------------------------------------------------------------------------- */

static tnd_buffer *cuda_alloc(tnd_backend *b, size_t bytes) {
    cuda_device *d = dev(b);
    tnd_buffer *buf = tnd_alloc(&d->allocator, sizeof *buf);
    if (!buf) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "%s: out of host memory", b->name), NULL;
    buf->ptr = NULL;
    buf->size = bytes;
    end_capture(d);
    cudaError_t e = cudaSetDevice(d->index);
    if (e == cudaSuccess) e = cudaMalloc((void **)&buf->ptr, bytes ? bytes : 1);
    if (e == cudaSuccess) e = cudaMemsetAsync(buf->ptr, 0, bytes, d->stream);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* an allocation failure is not sticky: the device goes on */
        if (buf->ptr) cudaFree(buf->ptr);
        tnd_free(&d->allocator, buf);
        tnd_fail(status_of(e), "%s: cannot allocate %.1f MB of GPU memory (%s)", b->name, (double)bytes / 1e6,
                 cudaGetErrorString(e));
        return NULL;
    }
    return buf;
}

static void cuda_free(tnd_backend *b, tnd_buffer *buf) {
    cuda_device *d = dev(b);
    if (!buf) return;
    end_capture(d);
    if (cudaSetDevice(d->index) != cudaSuccess || cudaFree(buf->ptr) != cudaSuccess)
        cudaGetLastError(); /* (cudaFree waits for the work that may use the buffer) */
    tnd_free(&d->allocator, buf);
}

/* From pageable host memory the runtime copies host_src to its staging memory before it returns, so the caller may
 * reuse it at once. */
/* In a step, the data goes through the step's arena where it fits (a capture copies from there when it runs);
 * otherwise from the caller's memory, which the runtime stages before it returns (a capture ends first: pageable
 * memory cannot be copied in a graph). */
static void cuda_write(tnd_backend *b, tnd_buffer *dst, size_t offset, const void *host_src, size_t bytes) {
    cuda_device *d = dev(b);
    void *staged = d->in_step ? arena_take(d, bytes) : NULL;
    if (staged) memcpy(staged, host_src, bytes);
    else end_capture(d);
    if (ready(d))
        failed(d, cudaMemcpyAsync(dst->ptr + offset, staged ? staged : host_src, bytes, cudaMemcpyHostToDevice,
                                  d->stream),
               "copy %zu bytes to the GPU", bytes);
}

static void cuda_read(tnd_backend *b, void *host_dst, const tnd_buffer *src, size_t offset, size_t bytes) {
    cuda_device *d = dev(b);
    end_capture(d);
    if (ready(d) &&
        !failed(d, cudaMemcpyAsync(host_dst, src->ptr + offset, bytes, cudaMemcpyDeviceToHost, d->stream),
                "copy %zu bytes from the GPU", bytes))
        failed(d, cudaStreamSynchronize(d->stream), "wait for a copy from the GPU");
}

static tnd_status cuda_prepare_weight(tnd_backend *b, const tnd_weight *host, tnd_weight *out) {
    cuda_device *d = dev(b);
    *out = (tnd_weight){0};
    if (!tnd_cuda_weight_type(host->type))
        return tnd_fail(TND_ERR_UNSUPPORTED, "the CUDA device cannot compute with tensor type %s",
                        tnd_type_name(host->type));
    if (host->lookup_only) { /* an embedding table stays in host memory: a step needs only its few rows */
        *out = *host;
        return TND_OK;
    }
    size_t bytes = host->row_bytes * (size_t)host->n_rows;
    tnd_buffer *buf = cuda_alloc(b, bytes);
    if (!buf) return TND_ERR_OUT_OF_MEMORY; /* the message is alloc's */
    /* on the device's stream, after the zeroing alloc queued there, and finished before the host's pages may go */
    cudaError_t e = cudaMemcpyAsync(buf->ptr, host->data, bytes, cudaMemcpyHostToDevice, d->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(d->stream);
    if (e != cudaSuccess) {
        cudaGetLastError();
        cuda_free(b, buf);
        return tnd_fail(status_of(e), "%s: cannot upload a weight (%s)", b->name, cudaGetErrorString(e));
    }
    *out = *host;
    out->data = NULL;
    out->buf = buf;
    out->row_group = 0;
    return TND_OK;
}

/* A weight's rows are the file's, in a buffer of the device's own: new rows go in as a write on the stream. */
static tnd_status cuda_update_weight(tnd_backend *b, tnd_weight *w, int64_t row0, const tnd_weight *host) {
    tnd_status st = w->buf ? tnd_weight_update_check(b->name, w, row0, host)
                           : tnd_fail(TND_ERR_INVALID_ARGUMENT, "%s: update_weight of a weight it keeps in host memory",
                                      b->name);
    if (!st) cuda_write(b, w->buf, (size_t)row0 * w->row_bytes, host->data, (size_t)host->n_rows * w->row_bytes);
    return st;
}

static void cuda_release_weight(tnd_backend *b, tnd_weight *w) {
    if (w->buf) cuda_free(b, w->buf);
    memset(w, 0, sizeof *w);
}

/* ------------------------------------------------------------------------------------------------------------
 * Steps
 * ---------------------------------------------------------------------------------------------------------- */

/* A step whose metadata cannot reach the device records the failure, and its ops are then not launched (ready()):
 * none runs on a previous step's metadata. */
static void cuda_begin_step(tnd_backend *b, const tnd_step *step) {
    cuda_device *d = dev(b);
    size_t words = tnd_step_flat_words(step);
    if (d->in_step) { /* begun again without a synchronize: the last step's copies finish before its buffers go */
        end_capture(d);
        if (cudaSetDevice(d->index) == cudaSuccess) failed(d, cudaStreamSynchronize(d->stream), "finish a step");
    }
    d->in_step = true;
    d->arena_used = 0;
    if (!ready(d) || !host_room(d, (void **)&d->meta_host, &d->meta_host_cap, words, sizeof(uint32_t))) return;
    tnd_step_flatten(step, d->meta_host, (uint32_t)(4 * step->n_tokens)); /* table offsets: word indices into meta */
    if (d->meta_cap < words) { /* the new room first: where it cannot be had, the old stays */
        uint32_t *grown = NULL;
        if (failed(d, cudaMalloc((void **)&grown, 2 * words * sizeof(uint32_t)), "room for a step's metadata")) return;
        if (d->meta) cudaFree(d->meta); /* (waits for the steps that read it) */
        d->meta = grown;
        d->meta_cap = 2 * words;
    }
    if (d->graphs && step->n_tokens <= GRAPH_TOKENS &&
        !failed(d, cudaStreamBeginCapture(d->stream, cudaStreamCaptureModeThreadLocal), "capture a step"))
        d->capturing = true; /* from the metadata's copy on */
    if (failed(d, cudaMemcpyAsync(d->meta, d->meta_host, words * sizeof(uint32_t), cudaMemcpyHostToDevice, d->stream),
               "copy a step's metadata"))
        return;
    d->n_step = (int32_t)step->n_tokens;
    d->block_size = step->block_size;
}

/* Ends the capture of the step so far, if one runs, and launches it: the kept graph of this token count updated in
 * place where the capture has the same shape, else made anew. Failures are recorded. */
static void end_capture(cuda_device *d) {
    if (!d->capturing) return;
    d->capturing = false;
    bool op_failed = d->failure != TND_OK;
    cudaGraph_t captured = NULL;
    cudaGraphExec_t made = NULL, *exec = &d->graph[d->n_step <= GRAPH_TOKENS ? d->n_step : 0];
    cudaGraphExecUpdateResultInfo info;
    if (failed(d, cudaStreamEndCapture(d->stream, &captured), "capture a step") || op_failed) {
        /* nothing captured runs: the step fails (the caller retries it); a capture that failed itself is not tried
         * again on this device */
        if (!op_failed) d->graphs = false;
        if (captured) cudaGraphDestroy(captured);
        return;
    }
    if (*exec && cudaGraphExecUpdate(*exec, captured, &info) != cudaSuccess) {
        cudaGetLastError(); /* another shape: made anew */
        cudaGraphExecDestroy(*exec);
        *exec = NULL;
    }
    if (!*exec) {
        if (failed(d, cudaGraphInstantiate(&made, captured, 0), "make a step's graph")) d->graphs = false;
        else *exec = made;
        if (++d->remade > MAX_REMADE) d->graphs = false; /* every step a new shape: graphs cost more than they save */
    } else {
        d->remade = 0;
    }
    if (*exec) failed(d, cudaGraphLaunch(*exec, d->stream), "launch a step's graph");
    cudaGraphDestroy(captured);
}

static tnd_status cuda_synchronize(tnd_backend *b) {
    cuda_device *d = dev(b);
    end_capture(d);
    d->in_step = false;
    if (cudaSetDevice(d->index) == cudaSuccess) /* wait even after a failure: no kernel may outlive the step */
        failed(d, cudaStreamSynchronize(d->stream), "run the step");
    else
        failed(d, cudaGetLastError(), "select the GPU");
    tnd_status st = d->failure;
    d->failure = TND_OK;
    return st ? tnd_fail(st, "%s", d->message) : TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * Ops
 * ---------------------------------------------------------------------------------------------------------- */

static void cuda_embed(tnd_backend *b, const tnd_weight *table, const int32_t *ids, const tnd_tensor *out) {
    cuda_device *d = dev(b);
    size_t row = sizeof(float) * (size_t)table->n_cols, n = (size_t)out->ne1;
    float *rows = arena_take(d, row * n);
    if (!ready(d)) return;
    if (!rows) { /* a step larger than reserve() said */
        failed(d, cudaErrorMemoryAllocation, "room for %zu embedding rows", n);
        return;
    }
    tnd_to_float_fn to_float = tnd_type_traits_of(table->type)->to_float;
    for (size_t i = 0; i < n; i++)
        to_float((const uint8_t *)table->data + (size_t)ids[i] * table->row_bytes, rows + i * table->n_cols,
                 table->n_cols);
    failed(d,
           out->row_bytes == row
               ? cudaMemcpyAsync(at(out), rows, row * n, cudaMemcpyHostToDevice, d->stream)
               : cudaMemcpy2DAsync(at(out), out->row_bytes, rows, row, row, n, cudaMemcpyHostToDevice, d->stream),
           "copy embedding rows");
}

/* Whether w multiplies 8-bit blocks of x here (int8 matmuls, the room reserved for x). */
static bool takes_q8(const cuda_device *d, const tnd_weight *w, const tnd_tensor *x) {
    return d->int8 && tnd_cuda_int8_type(w->type) && w->n_cols == x->ne0 && x->ne0 % 32 == 0 &&
           (size_t)x->ne0 / 32 <= d->xq_blocks && (size_t)x->ne1 <= d->xq_rows;
}

/* The weights of one input: x converted to 8-bit blocks once for those that take them. */
static void cuda_matmul_many(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *x,
                             const tnd_tensor *const *y) {
    cuda_device *d = dev(b);
    bool quantized = false;
    for (int i = 0; i < n && ready(d); i++) {
        bool q8 = takes_q8(d, w[i], x);
        if (q8 && !quantized &&
            failed(d, tnd_cuda_quantize_q8(d->stream, at(x), stride_of(x), (int32_t)x->ne0, (int32_t)x->ne1, d->xq),
                   "8-bit activations"))
            return;
        quantized |= q8;
        failed(d,
               q8 ? tnd_cuda_matmul_q8(d->stream, w[i]->type, w[i]->buf->ptr, w[i]->row_bytes, (int32_t)w[i]->n_cols,
                                       (int32_t)w[i]->n_rows, d->xq, at(y[i]), stride_of(y[i]), (int32_t)x->ne1)
                  : tnd_cuda_matmul(d->stream, w[i]->type, w[i]->buf->ptr, w[i]->row_bytes, (int32_t)w[i]->n_cols,
                                    (int32_t)w[i]->n_rows, at(x), stride_of(x), at(y[i]), stride_of(y[i]),
                                    (int32_t)x->ne1),
               "matmul of %s", tnd_type_name(w[i]->type));
    }
}

static void cuda_matmul(tnd_backend *b, const tnd_weight *w, const tnd_tensor *x, const tnd_tensor *y) {
    cuda_matmul_many(b, 1, &w, x, &y);
}

static void cuda_rms_norm(tnd_backend *b, const tnd_tensor *x, const tnd_tensor *gamma, const tnd_tensor *y,
                          float eps) {
    cuda_device *d = dev(b);
    if (ready(d))
        failed(d,
               tnd_cuda_rms_norm(d->stream, at(x), stride_of(x), at(gamma), at(y), stride_of(y), (int32_t)x->ne0,
                                 (int32_t)x->ne1, eps),
               "rms_norm");
}

/* out = f(a, b) element by element over out's shape; b_stride 0 repeats b's first row. */
static void elementwise(tnd_backend *b, int op, const tnd_tensor *a, const tnd_tensor *bv, int32_t b_stride,
                        const tnd_tensor *out) {
    cuda_device *d = dev(b);
    if (ready(d))
        failed(d,
               tnd_cuda_elementwise(d->stream, op, at(a), stride_of(a), at(bv), b_stride, at(out), stride_of(out),
                                    (int32_t)out->ne0, (int32_t)out->ne1),
               "element-wise op %d", op);
}

static void cuda_add(tnd_backend *b, const tnd_tensor *y, const tnd_tensor *x) {
    elementwise(b, TND_CUDA_ADD, y, x, stride_of(x), y);
}

static void cuda_add_bias(tnd_backend *b, const tnd_tensor *y, const tnd_tensor *bias) {
    elementwise(b, TND_CUDA_ADD, y, bias, 0, y);
}

static void cuda_swiglu(tnd_backend *b, const tnd_tensor *gate, const tnd_tensor *up, const tnd_tensor *out) {
    elementwise(b, TND_CUDA_SWIGLU, gate, up, stride_of(up), out);
}

static void cuda_copy(tnd_backend *b, const tnd_tensor *dst, const tnd_tensor *src) {
    elementwise(b, TND_CUDA_COPY, src, src, stride_of(src), dst);
}

static void cuda_sigmoid_scale(tnd_backend *b, const tnd_tensor *y, const tnd_tensor *g) {
    elementwise(b, TND_CUDA_SIGMOID_SCALE, y, g, stride_of(g), y);
}

static void cuda_rope(tnd_backend *b, const tnd_tensor *x, int32_t n_heads, const tnd_rope *rope) {
    cuda_device *d = dev(b);
    const float *factors = rope->freq_factors.buf ? at(&rope->freq_factors) : NULL;
    if (ready(d))
        failed(d,
               tnd_cuda_rope(d->stream, at(x), stride_of(x), (int32_t)x->ne1, n_heads, rope->head_dim, rope->n_rot,
                             rope->mode == TND_ROPE_NEOX, factors, rope->base, rope->scale, d->meta),
               "rope");
}

static void cuda_kv_store(tnd_backend *b, tnd_buffer *k_pool, tnd_buffer *v_pool, tnd_type k_type, tnd_type v_type,
                          const tnd_tensor *k, const tnd_tensor *v, int32_t head_dim) {
    cuda_device *d = dev(b);
    if (!ready(d)) return;
    if (!tnd_cuda_kv_type(k_type, head_dim) || !tnd_cuda_kv_type(v_type, head_dim)) {
        unsupported(d, "kv_store: K %s / V %s with heads of %d", tnd_type_name(k_type), tnd_type_name(v_type),
                    head_dim);
        return;
    }
    failed(d,
           tnd_cuda_kv_store(d->stream, k_type, at(k), stride_of(k), (int32_t)k->ne0, (int32_t)k->ne1, k_pool->ptr,
                             tnd_row_size(k_type, k->ne0), d->meta, d->n_step),
           "kv_store of K");
    failed(d,
           tnd_cuda_kv_store(d->stream, v_type, at(v), stride_of(v), (int32_t)v->ne0, (int32_t)v->ne1, v_pool->ptr,
                             tnd_row_size(v_type, v->ne0), d->meta, d->n_step),
           "kv_store of V");
}

static void cuda_kv_copy_blocks(tnd_backend *b, tnd_buffer *pool, size_t block_bytes, const int32_t *src,
                                const int32_t *dst, int32_t n) {
    cuda_device *d = dev(b);
    for (int32_t i = 0; i < n && ready(d); i++)
        if (failed(d,
                   cudaMemcpyAsync(pool->ptr + (size_t)dst[i] * block_bytes, pool->ptr + (size_t)src[i] * block_bytes,
                                   block_bytes, cudaMemcpyDeviceToDevice, d->stream),
                   "copy a KV block"))
            return;
}

static void cuda_attention(tnd_backend *b, const tnd_attention_args *a) {
    cuda_device *d = dev(b);
    int64_t width = (int64_t)a->n_head_kv * a->head_dim;
    if (!ready(d)) return;
    if (!tnd_cuda_kv_type(a->k_type, a->head_dim) || !tnd_cuda_kv_type(a->v_type, a->head_dim) ||
        a->head_dim > TND_CUDA_MAX_HEAD_DIM || a->n_head_kv <= 0 || a->n_head % a->n_head_kv) {
        unsupported(d, "attention: K %s / V %s, %d heads over %d, head_dim %d", tnd_type_name(a->k_type),
                    tnd_type_name(a->v_type), a->n_head, a->n_head_kv, a->head_dim);
        return;
    }
    failed(d,
               tnd_cuda_attention(d->stream, a->k_type, a->v_type, at(&a->q), stride_of(&a->q), at(&a->out),
                                  stride_of(&a->out), (int32_t)a->q.ne1, a->n_head, a->n_head_kv, a->head_dim,
                                  a->k_pool->ptr, a->v_pool->ptr, tnd_row_size(a->k_type, width),
                                  tnd_row_size(a->v_type, width), d->block_size, a->scale, d->meta, d->n_step),
               "attention: K %s / V %s, head_dim %d", tnd_type_name(a->k_type), tnd_type_name(a->v_type),
               a->head_dim);
}

static void cuda_moe_route(tnd_backend *b, const tnd_moe_route_args *a) {
    cuda_device *d = dev(b);
    if (ready(d) && a->n_used > TND_CUDA_MAX_USED)
        unsupported(d, "moe_route of %d experts per token (the device takes up to %d)", a->n_used, TND_CUDA_MAX_USED);
    else if (ready(d))
        failed(d,
               tnd_cuda_moe_route(d->stream, at(&a->logits), stride_of(&a->logits), (int32_t)a->logits.ne1,
                                  (int32_t)a->logits.ne0, a->n_used, a->normalize, at(&a->ids), stride_of(&a->ids),
                                  at(&a->weights), stride_of(&a->weights)),
               "moe_route");
}

static void cuda_matmul_experts(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *x,
                                const tnd_tensor *ids, const tnd_tensor *const *y) {
    cuda_device *d = dev(b);
    for (int i = 0; i < n && ready(d); i++) {
        int32_t rows = (int32_t)(w[i]->n_rows / w[i]->n_experts), pairs = (int32_t)y[i]->ne1;
        bool per_slot = x->ne1 == (int64_t)pairs && ids->ne0 > 1;
        if (failed(d,
                   tnd_cuda_matmul_experts(d->stream, w[i]->type, w[i]->buf->ptr, w[i]->row_bytes,
                                           (int32_t)w[i]->n_cols, rows, pairs, (int32_t)ids->ne0, per_slot, at(x),
                                           stride_of(x), at(ids), stride_of(ids), at(y[i]), stride_of(y[i])),
                   "matmul_experts of %s", tnd_type_name(w[i]->type)))
            return;
    }
}

static void cuda_moe_combine(tnd_backend *b, const tnd_tensor *experts, const tnd_tensor *weights,
                             const tnd_tensor *y) {
    cuda_device *d = dev(b);
    if (ready(d))
        failed(d,
               tnd_cuda_moe_combine(d->stream, at(experts), stride_of(experts), at(weights), stride_of(weights),
                                    (int32_t)weights->ne0, at(y), stride_of(y), (int32_t)y->ne0, (int32_t)y->ne1),
               "moe_combine");
}

/* A copy of 256 MiB within the GPU's memory, timed by events: bytes read and written per second, the best of 3
 * after one that warms up. */
static double cuda_measure_bandwidth(tnd_backend *b) {
    cuda_device *d = dev(b);
    size_t bytes = (size_t)256 << 20;
    tnd_buffer *src = cuda_alloc(b, bytes), *dst = src ? cuda_alloc(b, bytes) : NULL;
    cudaEvent_t start = NULL, stop = NULL;
    double best = 0;
    if (dst && cudaEventCreate(&start) == cudaSuccess && cudaEventCreate(&stop) == cudaSuccess) {
        for (int i = 0; i < 4; i++) {
            float ms = 0;
            cudaEventRecord(start, d->stream);
            cudaMemcpyAsync(dst->ptr, src->ptr, bytes, cudaMemcpyDeviceToDevice, d->stream);
            cudaEventRecord(stop, d->stream);
            if (cudaEventSynchronize(stop) != cudaSuccess || cudaEventElapsedTime(&ms, start, stop) != cudaSuccess)
                break;
            double rate = 2.0 * (double)bytes / (ms * 1e-3);
            if (i > 0 && ms > 0 && rate > best) best = rate;
        }
    }
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    cuda_free(b, src);
    cuda_free(b, dst);
    cudaGetLastError();
    return best;
}

/* ------------------------------------------------------------------------------------------------------------
 * Making and destroying the device
 * ---------------------------------------------------------------------------------------------------------- */

static void cuda_destroy(tnd_backend *b) {
    if (!b) return;
    cuda_device *d = dev(b);
    if (d->stream) {
        cudaSetDevice(d->index);
        if (d->capturing) { /* destroyed mid-step: the capture is dropped */
            cudaGraph_t dropped = NULL;
            if (cudaStreamEndCapture(d->stream, &dropped) == cudaSuccess && dropped) cudaGraphDestroy(dropped);
            d->capturing = false;
        }
        cudaStreamSynchronize(d->stream);
        if (d->meta) cudaFree(d->meta);
        if (d->xq) cudaFree(d->xq);
        cudaStreamDestroy(d->stream);
        cudaGetLastError();
    }
    for (int i = 0; i <= GRAPH_TOKENS; i++)
        if (d->graph[i]) cudaGraphExecDestroy(d->graph[i]);
    if (d->meta_host) cudaFreeHost(d->meta_host);
    if (d->arena) cudaFreeHost(d->arena);
    cudaGetLastError();
    tnd_allocator a = d->allocator;
    tnd_free(&a, d);
}

static const tnd_backend_vtable cuda_vtable = {
    .destroy = cuda_destroy,
    .supports = cuda_supports,
    .memory = cuda_memory,
    .measure_bandwidth = cuda_measure_bandwidth,
    .describe = cuda_describe,
    .profile = NULL,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .write = cuda_write,
    .read = cuda_read,
    .copy_to = NULL,
    .prepare_weight = cuda_prepare_weight,
    .release_weight = cuda_release_weight,
    .update_weight = cuda_update_weight,
    .reserve = cuda_reserve,
    .begin_step = cuda_begin_step,
    .synchronize = cuda_synchronize,
    .embed = cuda_embed,
    .matmul = cuda_matmul,
    .matmul_many = cuda_matmul_many,
    .rms_norm = cuda_rms_norm,
    .add = cuda_add,
    .add_bias = cuda_add_bias,
    .swiglu = cuda_swiglu,
    .rope = cuda_rope,
    .copy = cuda_copy,
    .kv_store = cuda_kv_store,
    .kv_copy_blocks = cuda_kv_copy_blocks,
    .attention = cuda_attention,
    .moe_route = cuda_moe_route,
    .matmul_experts = cuda_matmul_experts,
    .moe_combine = cuda_moe_combine,
    .sigmoid_scale = cuda_sigmoid_scale,
};

/* The runtime's device numbers of the GPUs tandem can use (compute capability MIN_COMPUTE or newer), in order. */
static int32_t usable_gpus(int *numbers, int32_t cap) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* no driver, a driver too old, no GPU: no CUDA devices */
        return 0;
    }
    int32_t usable = 0;
    for (int i = 0; i < n; i++) {
        int major = 0, minor = 0;
        if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, i) != cudaSuccess ||
            cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, i) != cudaSuccess)
            continue;
        if (10 * major + minor >= MIN_COMPUTE && usable < cap) numbers[usable++] = i;
    }
    return usable;
}

int32_t tnd_cuda_devices(void) {
    int numbers[64];
    return usable_gpus(numbers, 64);
}

tnd_status tnd_backend_cuda_init(int32_t index, const tnd_allocator *allocator, const char *name, tnd_backend **out) {
    *out = NULL;
    int numbers[64], driver = 0, runtime = 0;
    int32_t n = usable_gpus(numbers, 64);
    if (index < 0 || index >= n) {
        cudaDriverGetVersion(&driver);
        cudaRuntimeGetVersion(&runtime);
        if (driver > 0 && driver < runtime)
            return tnd_fail(TND_ERR_UNSUPPORTED, "no CUDA device %d: the NVIDIA driver (CUDA %d.%d) is older than "
                            "this build needs (CUDA %d.%d)", index, driver / 1000, driver % 1000 / 10,
                            runtime / 1000, runtime % 1000 / 10);
        return tnd_fail(TND_ERR_UNSUPPORTED, "no CUDA device %d: this machine has %d that tandem can use (compute "
                        "capability %d.%d or newer)", index, n, MIN_COMPUTE / 10, MIN_COMPUTE % 10);
    }
    tnd_allocator a = allocator ? *allocator : (tnd_allocator){0};
    cuda_device *d = tnd_alloc(&a, sizeof *d);
    if (!d) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for a CUDA device");
    memset(d, 0, sizeof *d);
    d->allocator = a;
    d->base.vt = &cuda_vtable;
    d->base.impl = d;
    d->index = numbers[index];
    snprintf(d->base.name, sizeof d->base.name, "%s", name);
    const char *graphs = getenv("TANDEM_CUDA_GRAPHS"), *int8 = getenv("TANDEM_CUDA_INT8");
    d->graphs = graphs && *graphs && strcmp(graphs, "0");
    d->int8 = int8 && *int8 && strcmp(int8, "0");
    cudaError_t e = cudaSetDevice(d->index);
    if (e == cudaSuccess) e = cudaGetDeviceProperties(&d->props, d->index);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        tnd_status st = tnd_fail(status_of(e), "%s: cannot open CUDA device %d (%s)", name, index,
                                 cudaGetErrorString(e));
        cudaGetLastError();
        cuda_destroy(&d->base);
        return st;
    }
    *out = &d->base;
    return TND_OK;
}
