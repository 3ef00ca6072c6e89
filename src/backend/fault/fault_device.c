/* fault_device.c: a device that wraps another and makes one allocation, one op or one step fail, for the tests of
 * what a failing device does to a decode, a session and the server (TANDEM_FAULT, see fault_device.h). */
#include "backend/fault/fault_device.h"

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum fault_kind { FAULT_ALLOC, FAULT_OP, FAULT_STEP, FAULT_SLOW } fault_kind;

typedef struct fault_device {
    tnd_backend_vtable vt; /* fault_vtable, with the stage entries where the inner device has them */
    tnd_backend *inner;
    tnd_allocator allocator;
    fault_kind kind;
    long at;          /* the count (from 1) of allocations, ops or steps at which to fail; fires once; for
                         FAULT_SLOW the factor its ops are slowed by */
    long count;
    tnd_status failure; /* an op failed: reported at the next synchronize */
    char message[160];
} fault_device;

static fault_device *fd(tnd_backend *b) { return (fault_device *)b->impl; }
static tnd_backend *inner(tnd_backend *b) { return fd(b)->inner; }

/* Counts an event of `kind`; true when it is the one to fail. */
static bool fires(tnd_backend *b, fault_kind kind) {
    fault_device *f = fd(b);
    return f->kind == kind && ++f->count == f->at;
}

/* Op wrappers: a failing op records the failure and does nothing, as a device that lost its memory would. */
static bool op_fires(tnd_backend *b, const char *op) {
    if (!fires(b, FAULT_OP)) return false;
    fault_device *f = fd(b);
    if (!f->failure) {
        f->failure = TND_ERR_INTERNAL;
        snprintf(f->message, sizeof f->message, "%s: op %ld (%s) failed (fault injected by TANDEM_FAULT)", b->name,
                 f->at, op);
    }
    return true;
}

/* A slow device's wait after an op that began at t0: at - 1 times the op's time. */
static void slow_down(tnd_backend *b, double t0) {
    if (fd(b)->kind != FAULT_SLOW) return;
    double wait = (tnd_now_seconds() - t0) * (double)(fd(b)->at - 1);
    struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
    nanosleep(&ts, NULL);
}

#define FORWARD_OP(name, params, args)                                                                                \
    static void fault_##name params {                                                                                 \
        double t0 = tnd_now_seconds();                                                                                \
        if (!op_fires(b, #name)) inner(b)->vt->name args;                                                             \
        slow_down(b, t0);                                                                                             \
    }

FORWARD_OP(embed, (tnd_backend * b, const tnd_weight *t, const int32_t *ids, const tnd_tensor *out),
           (inner(b), t, ids, out))
FORWARD_OP(matmul, (tnd_backend * b, const tnd_weight *w, const tnd_tensor *x, const tnd_tensor *y),
           (inner(b), w, x, y))
FORWARD_OP(rms_norm, (tnd_backend * b, const tnd_tensor *x, const tnd_tensor *g, const tnd_tensor *y, float eps),
           (inner(b), x, g, y, eps))
FORWARD_OP(add, (tnd_backend * b, const tnd_tensor *y, const tnd_tensor *x), (inner(b), y, x))
FORWARD_OP(add_bias, (tnd_backend * b, const tnd_tensor *y, const tnd_tensor *bias), (inner(b), y, bias))
FORWARD_OP(swiglu, (tnd_backend * b, const tnd_tensor *gate, const tnd_tensor *up, const tnd_tensor *out),
           (inner(b), gate, up, out))
FORWARD_OP(rope, (tnd_backend * b, const tnd_tensor *x, int32_t n_heads, const tnd_rope *rope),
           (inner(b), x, n_heads, rope))
FORWARD_OP(copy, (tnd_backend * b, const tnd_tensor *dst, const tnd_tensor *src), (inner(b), dst, src))
FORWARD_OP(kv_store,
           (tnd_backend * b, tnd_buffer *k_pool, tnd_buffer *v_pool, tnd_type k_type, tnd_type v_type,
            const tnd_tensor *k, const tnd_tensor *v, int32_t head_dim),
           (inner(b), k_pool, v_pool, k_type, v_type, k, v, head_dim))
FORWARD_OP(attention, (tnd_backend * b, const tnd_attention_args *a), (inner(b), a))
FORWARD_OP(moe_route, (tnd_backend * b, const tnd_moe_route_args *a), (inner(b), a))
FORWARD_OP(matmul_experts,
           (tnd_backend * b, int n, const tnd_weight *const *w, const tnd_tensor *x, const tnd_tensor *ids,
            const tnd_tensor *const *y),
           (inner(b), n, w, x, ids, y))
FORWARD_OP(matmul_many,
           (tnd_backend * b, int n, const tnd_weight *const *w, const tnd_tensor *x, const tnd_tensor *const *y),
           (inner(b), n, w, x, y))
FORWARD_OP(moe_combine, (tnd_backend * b, const tnd_tensor *e, const tnd_tensor *w, const tnd_tensor *y),
           (inner(b), e, w, y))
FORWARD_OP(sigmoid_scale, (tnd_backend * b, const tnd_tensor *y, const tnd_tensor *g), (inner(b), y, g))

static void fault_destroy(tnd_backend *b) {
    if (!b) return;
    tnd_allocator a = fd(b)->allocator;
    tnd_backend *in = inner(b);
    if (in) in->vt->destroy(in);
    tnd_free(&a, b->impl);
    tnd_free(&a, b);
}

static bool fault_supports(tnd_backend *b, const tnd_op_query *q) { return inner(b)->vt->supports(inner(b), q); }

static void fault_memory(tnd_backend *b, uint64_t *total, uint64_t *available) {
    inner(b)->vt->memory(inner(b), total, available);
}

static double fault_measure_bandwidth(tnd_backend *b) { return inner(b)->vt->measure_bandwidth(inner(b)); }

static void fault_describe(tnd_backend *b, char *buf, size_t cap) { inner(b)->vt->describe(inner(b), buf, cap); }

static void fault_profile(tnd_backend *b, tnd_device_profile *out, int reset) {
    if (inner(b)->vt->profile) inner(b)->vt->profile(inner(b), out, reset);
}

static void fault_set_background(tnd_backend *b, bool on) {
    if (inner(b)->vt->set_background) inner(b)->vt->set_background(inner(b), on);
}

static tnd_buffer *fault_alloc(tnd_backend *b, size_t bytes) {
    return fires(b, FAULT_ALLOC) ? NULL : inner(b)->vt->alloc(inner(b), bytes);
}

static void fault_free(tnd_backend *b, tnd_buffer *buf) { inner(b)->vt->free(inner(b), buf); }

static void fault_write(tnd_backend *b, tnd_buffer *dst, size_t offset, const void *src, size_t n) {
    inner(b)->vt->write(inner(b), dst, offset, src, n);
}

static void fault_read(tnd_backend *b, void *dst, const tnd_buffer *src, size_t offset, size_t n) {
    inner(b)->vt->read(inner(b), dst, src, offset, n);
}

static tnd_status fault_prepare_weight(tnd_backend *b, const tnd_weight *host, tnd_weight *out) {
    return inner(b)->vt->prepare_weight(inner(b), host, out);
}

static void fault_release_weight(tnd_backend *b, tnd_weight *w) { inner(b)->vt->release_weight(inner(b), w); }

static tnd_status fault_update_weight(tnd_backend *b, tnd_weight *w, int64_t row0, const tnd_weight *host) {
    if (!inner(b)->vt->update_weight) return tnd_fail(TND_ERR_UNSUPPORTED, "%s keeps no cache of experts", b->name);
    return inner(b)->vt->update_weight(inner(b), w, row0, host);
}

static tnd_status fault_reserve(tnd_backend *b, int64_t cols, int64_t tokens) {
    return inner(b)->vt->reserve(inner(b), cols, tokens);
}

static void fault_begin_step(tnd_backend *b, const tnd_step *step) { inner(b)->vt->begin_step(inner(b), step); }

/* A step that went well (st TND_OK), lost where it is the one to fail. */
static tnd_status step_done(tnd_backend *b, tnd_status st) {
    if (fires(b, FAULT_STEP) && !st)
        st = tnd_fail(TND_ERR_DEVICE_LOST, "%s: step %ld failed: the device was lost (fault injected by TANDEM_FAULT)",
                      b->name, fd(b)->at);
    return st;
}

/* The failure of an op since the last look, taken (TND_OK: none). */
static tnd_status take_failure(tnd_backend *b) {
    fault_device *f = fd(b);
    tnd_status st = f->failure ? tnd_fail(f->failure, "%s", f->message) : TND_OK;
    f->failure = TND_OK;
    return st;
}

static tnd_status fault_synchronize(tnd_backend *b) {
    tnd_status st = step_done(b, inner(b)->vt->synchronize(inner(b))), failed = take_failure(b);
    return st ? st : failed;
}

/* A device that runs whole stages (a cloud) has them wrapped: a stage counts as an op, and one answered as a step. */
static tnd_status fault_run_stage(tnd_backend *b, int32_t group_begin, int32_t group_end, float *x) {
    double t0 = tnd_now_seconds();
    if (op_fires(b, "run_stage")) return take_failure(b);
    tnd_status st = inner(b)->vt->run_stage(inner(b), group_begin, group_end, x);
    slow_down(b, t0);
    return step_done(b, st);
}

static tnd_status fault_stage_send(tnd_backend *b, int32_t group_begin, int32_t group_end, const float *x) {
    if (op_fires(b, "stage_send")) return take_failure(b);
    return inner(b)->vt->stage_send(inner(b), group_begin, group_end, x);
}

static tnd_status fault_stage_recv(tnd_backend *b, float *x) {
    double t0 = tnd_now_seconds();
    tnd_status st = inner(b)->vt->stage_recv(inner(b), x);
    slow_down(b, t0);
    return step_done(b, st);
}

static void fault_kv_copy_blocks(tnd_backend *b, tnd_buffer *pool, size_t bytes, const int32_t *src,
                                 const int32_t *dst, int32_t n) {
    inner(b)->vt->kv_copy_blocks(inner(b), pool, bytes, src, dst, n);
}

static const tnd_backend_vtable fault_vtable = {
    .destroy = fault_destroy,
    .supports = fault_supports,
    .memory = fault_memory,
    .measure_bandwidth = fault_measure_bandwidth,
    .describe = fault_describe,
    .profile = fault_profile,
    .set_background = fault_set_background,
    .alloc = fault_alloc,
    .free = fault_free,
    .write = fault_write,
    .read = fault_read,
    .prepare_weight = fault_prepare_weight,
    .release_weight = fault_release_weight,
    .update_weight = fault_update_weight,
    .reserve = fault_reserve,
    .begin_step = fault_begin_step,
    .synchronize = fault_synchronize,
    .embed = fault_embed,
    .matmul = fault_matmul,
    .matmul_many = fault_matmul_many,
    .rms_norm = fault_rms_norm,
    .add = fault_add,
    .add_bias = fault_add_bias,
    .swiglu = fault_swiglu,
    .rope = fault_rope,
    .copy = fault_copy,
    .kv_store = fault_kv_store,
    .kv_copy_blocks = fault_kv_copy_blocks,
    .attention = fault_attention,
    .moe_route = fault_moe_route,
    .matmul_experts = fault_matmul_experts,
    .moe_combine = fault_moe_combine,
    .sigmoid_scale = fault_sigmoid_scale,
};

tnd_status tnd_backend_fault_wrap(tnd_backend *in, const char *spec, const tnd_allocator *allocator,
                                  tnd_backend **out) {
    *out = NULL;
    static const char *const kinds[] = {"alloc", "op", "step", "slow"}; /* in fault_kind's order */
    int kind = -1;
    char word[8] = "", device[32] = "";
    long at = 0;
    int used = 0, named = 0;
    if (spec && sscanf(spec, "%7[a-z]:%ld%n", word, &at, &used) == 2) {
        const char *rest = spec + used; /* nothing, or @DEVICE */
        if (*rest == '@' && sscanf(rest, "@%31[a-z0-9]%n", device, &named) == 1 && !rest[named]) rest += named;
        for (int k = 0; k < 4 && !*rest; k++)
            if (!strcmp(word, kinds[k])) kind = k;
    }
    if (kind < 0 || at < 1 || (kind == FAULT_SLOW && (!named || at > 1000)))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "TANDEM_FAULT '%s': expected alloc:N, op:N or step:N with N >= 1 "
                        "(each optionally @DEVICE), or slow:F@DEVICE with F from 1 to 1000", spec ? spec : "");
    if (named && strcmp(device, in->name)) { /* the spec is for another device */
        *out = in;
        return TND_OK;
    }
    tnd_allocator a = allocator ? *allocator : (tnd_allocator){0};
    tnd_backend *b = tnd_alloc(&a, sizeof *b);
    fault_device *f = tnd_alloc(&a, sizeof *f);
    if (!b || !f) {
        tnd_free(&a, b);
        tnd_free(&a, f);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory");
    }
    f->inner = in;
    f->allocator = a;
    f->kind = (fault_kind)kind;
    f->at = at;
    f->vt = fault_vtable;
    if (in->vt->run_stage) f->vt.run_stage = fault_run_stage;
    if (in->vt->stage_send) {
        f->vt.stage_send = fault_stage_send;
        f->vt.stage_recv = fault_stage_recv;
    }
    b->vt = &f->vt;
    b->impl = f;
    snprintf(b->name, sizeof b->name, "%s", in->name);
    *out = b;
    return TND_OK;
}
