/* devices.c: the device kinds a context can make (kind 0 the CPU, then the Vulkan and the CUDA devices), their public
 * description, memory, measured bandwidth and matmul speeds (the inputs of a placement plan), and making one instance
 * of a kind. */
#include "runtime/devices.h"

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/vulkan/vk_backend.h"
#include "core/clock.h"
#include "core/error.h"
#include "quant/quant.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The GPUs, counted once per process (it opens the drivers: 0.05 to 0.15 s for Vulkan). Kinds: 0 the CPU, then the
 * Vulkan devices, then the CUDA devices. */
enum { MAX_VULKAN = 16 };
static int32_t n_vulkan, n_cuda, vulkan_is_gpu[MAX_VULKAN];
static pthread_once_t gpus_counted = PTHREAD_ONCE_INIT;
static void count_gpus(void) {
    n_vulkan = tnd_vulkan_devices(vulkan_is_gpu, MAX_VULKAN);
    if (n_vulkan > MAX_VULKAN) n_vulkan = MAX_VULKAN;
    /* testing aid: the automatic plan's choice of a GPU, exercised on a software driver */
    const char *pretend = getenv("TANDEM_VULKAN_SOFTWARE_IS_GPU");
    for (int32_t i = 0; i < n_vulkan && pretend && *pretend && strcmp(pretend, "0"); i++) vulkan_is_gpu[i] = 1;
    n_cuda = tnd_cuda_devices();
}

int32_t tnd_device_count(void) {
    pthread_once(&gpus_counted, count_gpus);
    return 1 + n_vulkan + n_cuda;
}

/* The first kind of the CUDA devices. */
static int32_t first_cuda(void) { return tnd_device_count() - n_cuda; }

int32_t tnd_device_is_gpu(int32_t index) {
    if (index <= 0 || index >= tnd_device_count()) return 0;
    return index >= first_cuda() || vulkan_is_gpu[index - 1];
}

int32_t tnd_device_kind_first_gpu(void) {
    if (tnd_device_count() > first_cuda()) return first_cuda(); /* on an NVIDIA GPU, CUDA rather than Vulkan */
    for (int32_t k = 1; k < tnd_device_count(); k++)
        if (tnd_device_is_gpu(k)) return k;
    return tnd_device_count() > 1 ? 1 : 0; /* a software driver, where the user asks for a GPU by -ngl */
}

int32_t tnd_device_kind_named(const char *family, int32_t number) {
    tnd_device_count();
    if (!strcmp(family, "cpu")) return number == 0 ? 0 : -1;
    if (!strcmp(family, "vulkan")) return number >= 0 && number < n_vulkan ? 1 + number : -1;
    if (!strcmp(family, "cuda")) return number >= 0 && number < n_cuda ? first_cuda() + number : -1;
    return -1;
}

tnd_status tnd_device_make(int32_t kind, int32_t n_threads, bool reference, const tnd_allocator *allocator,
                           const char *name, tnd_backend **out) {
    *out = NULL;
    if (kind < 0 || kind >= tnd_device_count())
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "device kind %d: this machine has %d (the CPU, %d Vulkan and %d CUDA)",
                        kind, tnd_device_count(), n_vulkan, n_cuda);
    if (kind == 0) return tnd_backend_cpu_init(n_threads, reference, allocator, name, out);
    if (kind >= first_cuda()) return tnd_backend_cuda_init(kind - first_cuda(), allocator, name, out);
    return tnd_backend_vulkan_init(kind - 1, allocator, name, out);
}

void tnd_device_kind_name(int32_t kind, char *buf, size_t cap) {
    if (kind == 0) snprintf(buf, cap, "cpu");
    else if (kind == TND_DEVICE_REMOTE) snprintf(buf, cap, "remote0"); /* one cloud per plan */
    else if (kind == TND_DEVICE_NONE) snprintf(buf, cap, "none0");
    else if (kind >= first_cuda()) snprintf(buf, cap, "cuda%d", kind - first_cuda());
    else snprintf(buf, cap, "vulkan%d", kind - 1);
}

tnd_status tnd_device_get_info(int32_t index, int32_t n_threads, tnd_device_info *out) {
    if (!out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_device_get_info: out is NULL");
    memset(out, 0, sizeof *out);
    tnd_backend *d = NULL;
    tnd_status st = tnd_device_make(index, n_threads, false, NULL, "info", &d);
    if (st) return st;
    tnd_device_kind_name(index, out->name, sizeof out->name);
    out->is_gpu = tnd_device_is_gpu(index);
    d->vt->describe(d, out->description, sizeof out->description);
    d->vt->memory(d, &out->memory_total, &out->memory_available);
    out->max_buffer_bytes = d->vt->max_buffer ? d->vt->max_buffer(d) : 0;
    out->expert_cache = d->vt->update_weight != NULL;
    d->vt->destroy(d);
    return TND_OK;
}

double tnd_device_measure_bandwidth(int32_t index, int32_t n_threads) {
    tnd_backend *d = NULL;
    if (tnd_device_make(index, n_threads, false, NULL, "bandwidth", &d)) return 0;
    double bw = d->vt->measure_bandwidth(d);
    d->vt->destroy(d);
    if (bw <= 0) tnd_fail(TND_ERR_OUT_OF_MEMORY, "no memory for the bandwidth measurement");
    return bw;
}

/* ------------------------------------------------------------------------------------------------------------
 * Matmul speed per weight type
 * ---------------------------------------------------------------------------------------------------------- */

enum { SPEED_COLS = 4096, PREFILL_ROWS = 1024, DECODE_COPIES = 4, MIN_RUNS = 4, MAX_RUNS = 16 };
#define SPEED_DECODE_BYTES ((size_t)64 << 20) /* per copy; the copies in turn stream from memory, not a cache */
#define SPEED_TIME_LIMIT 0.25                 /* seconds of timed runs per measurement, at least MIN_RUNS */

/* A host weight of `rows` rows of `type`: one row quantized from a smooth pattern, repeated (a matmul's speed does
 * not depend on the values, and quantizing 64 MiB would take longer than measuring it). Data malloc'ed. */
static tnd_status pattern_weight(tnd_type type, int64_t rows, tnd_weight *out) {
    const tnd_type_traits *tr = tnd_type_traits_of(type);
    size_t row_bytes = tnd_row_size(type, SPEED_COLS);
    uint8_t *data = malloc(row_bytes * (size_t)rows);
    float *row = malloc(sizeof(float) * SPEED_COLS);
    if (!data || !row) {
        free(data), free(row);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "no memory for a %lld-row %s weight", (long long)rows,
                        tnd_type_name(type));
    }
    for (int i = 0; i < SPEED_COLS; i++) row[i] = (float)((i * 37 % 101) - 50) / 50.0f;
    tr->from_float(row, data, SPEED_COLS);
    for (int64_t r = 1; r < rows; r++) memcpy(data + (size_t)r * row_bytes, data, row_bytes);
    free(row);
    *out = (tnd_weight){.type = type, .n_cols = SPEED_COLS, .n_rows = rows, .row_bytes = row_bytes, .data = data};
    return TND_OK;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median seconds of a matmul of `host` by n_tokens rows of x on device d (a step each, synchronized), over
 * n_copies copies of the weight used in turn (so that decode reads memory, as a model much larger than the caches
 * does), after one run of each that warms it; as many runs as fit SPEED_TIME_LIMIT, and at least MIN_RUNS where
 * they fit twice that (a slow device, a software driver, takes fewer). */
static tnd_status time_matmul(tnd_backend *d, const tnd_weight *host, int n_copies, int64_t n_tokens,
                              double *seconds) {
    tnd_weight w[DECODE_COPIES];
    tnd_status st = TND_OK;
    int n_prepared = 0;
    while (!st && n_prepared < n_copies)
        if (!(st = d->vt->prepare_weight(d, host, &w[n_prepared]))) n_prepared++;
    tnd_buffer *x = st ? NULL : d->vt->alloc(d, sizeof(float) * SPEED_COLS * (size_t)n_tokens);
    tnd_buffer *y = st ? NULL : d->vt->alloc(d, sizeof(float) * (size_t)host->n_rows * (size_t)n_tokens);
    int32_t pos[TND_SPEED_PREFILL_TOKENS] = {0};
    double runs[MAX_RUNS];
    int n = 0;
    if (!st && (!x || !y)) st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "%s: no memory for the activations", d->name);
    if (!st) st = d->vt->reserve(d, SPEED_COLS, n_tokens);
    if (!st) {
        float *values = malloc(sizeof(float) * SPEED_COLS * (size_t)n_tokens);
        if (!values) st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "no memory for the activations");
        for (int64_t i = 0; values && i < SPEED_COLS * n_tokens; i++) values[i] = (float)(i % 7) - 3.0f;
        if (values) d->vt->write(d, x, 0, values, sizeof(float) * SPEED_COLS * (size_t)n_tokens);
        free(values);
    }
    tnd_tensor xv = tnd_rows_f32(x, SPEED_COLS, 0, n_tokens), yv = tnd_rows_f32(y, host->n_rows, 0, n_tokens);
    tnd_step step = {.n_tokens = n_tokens, .pos = pos, .block_size = 16};
    double begun = 0, spent = 0;
    for (int i = -n_copies; !st && n < MAX_RUNS &&
                            (n < 1 || spent < SPEED_TIME_LIMIT || (n < MIN_RUNS && spent < 2 * SPEED_TIME_LIMIT));
         i++) {
        double t0 = tnd_now_seconds();
        d->vt->begin_step(d, &step);
        d->vt->matmul(d, &w[(i + n_copies) % n_copies], &xv, &yv);
        st = d->vt->synchronize(d);
        if (i >= 0) runs[n++] = tnd_now_seconds() - t0;
        else if (tnd_now_seconds() - t0 > SPEED_TIME_LIMIT / 4) i = -1; /* a slow device: no cache to get around */
        if (i == -1) begun = tnd_now_seconds();
        spent = tnd_now_seconds() - begun;
    }
    if (!st) {
        qsort(runs, (size_t)n, sizeof runs[0], compare_doubles);
        *seconds = runs[n / 2];
    }
    if (x) d->vt->free(d, x);
    if (y) d->vt->free(d, y);
    while (n_prepared) d->vt->release_weight(d, &w[--n_prepared]);
    return st;
}

tnd_status tnd_device_measure_matmul(int32_t index, int32_t n_threads, tnd_type type, tnd_matmul_speed *out) {
    if (!out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_device_measure_matmul: out is NULL");
    memset(out, 0, sizeof *out);
    const tnd_type_traits *tr = tnd_type_traits_of(type);
    if (!tr || !tr->from_float || !tnd_row_size(type, SPEED_COLS))
        return tnd_fail(TND_ERR_UNSUPPORTED, "no matmul speed for weight type %d: tandem does not compute with it",
                        (int)type);
    tnd_backend *d = NULL;
    tnd_status st = tnd_device_make(index, n_threads, false, NULL, "speed", &d);
    if (st) return st;
    tnd_op_query q = {.op = TND_OP_MATMUL, .type = type};
    tnd_weight decode = {0}, prefill = {0};
    int64_t decode_rows = (int64_t)(SPEED_DECODE_BYTES / tnd_row_size(type, SPEED_COLS)) / 64 * 64;
    double t_decode = 0, t_prefill = 0;
    if (!d->vt->supports(d, &q)) {
        char name[32];
        tnd_device_kind_name(index, name, sizeof name);
        st = tnd_fail(TND_ERR_UNSUPPORTED, "%s does not compute with %s weights", name, tr->name);
    }
    if (!st) st = pattern_weight(type, decode_rows, &decode);
    if (!st) st = time_matmul(d, &decode, DECODE_COPIES, 1, &t_decode);
    if (!st) st = pattern_weight(type, PREFILL_ROWS, &prefill);
    if (!st) st = time_matmul(d, &prefill, 1, TND_SPEED_PREFILL_TOKENS, &t_prefill);
    if (!st && (t_decode <= 0 || t_prefill <= 0)) st = tnd_fail(TND_ERR_INTERNAL, "a matmul took no time");
    if (!st) {
        out->decode_bytes_per_s = (double)decode.row_bytes * (double)decode_rows / t_decode;
        out->prefill_flops = 2.0 * SPEED_COLS * PREFILL_ROWS * TND_SPEED_PREFILL_TOKENS / t_prefill;
    }
    free((void *)decode.data);
    free((void *)prefill.data);
    d->vt->destroy(d);
    return st;
}
