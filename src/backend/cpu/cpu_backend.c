/* cpu_backend.c: the CPU device: host memory, and every op written as portable scalar C (the reference that faster
 * kernels are tested against), split across the device's thread pool. The mixture-of-experts ops are in
 * cpu_experts.c. */
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_device.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/thread_pool.h"
#include "backend/cpu/cpu_kernels.h"
#include "quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Records the failure of an op for synchronize (the first one counts). */
void tnd_cpu_op_failed(tnd_backend *b, tnd_status status, const char *message) {
    cpu_device *d = dev(b);
    if (d->failure) return;
    d->failure = status;
    snprintf(d->failure_message, sizeof d->failure_message, "%s: %s", b->name, message);
}

static void cpu_begin_step(tnd_backend *b, const tnd_step *step) {
    dev(b)->step = *step;
    dev(b)->step_serial++;
}

static tnd_status cpu_synchronize(tnd_backend *b) {
    cpu_device *d = dev(b);
    tnd_status st = d->failure;
    d->failure = TND_OK;
    return st ? tnd_fail(st, "%s", d->failure_message) : TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * Memory
 * ---------------------------------------------------------------------------------------------------------- */

static tnd_buffer *cpu_alloc(tnd_backend *b, size_t bytes) {
    return (tnd_buffer *)tnd_alloc(&dev(b)->allocator, bytes);
}

static void cpu_free(tnd_backend *b, tnd_buffer *buf) { tnd_free(&dev(b)->allocator, buf); }

static void cpu_write(tnd_backend *b, tnd_buffer *dst, size_t offset, const void *src, size_t bytes) {
    memcpy((uint8_t *)dst + offset, src, bytes);
}

static void cpu_read(tnd_backend *b, void *dst, const tnd_buffer *src, size_t offset, size_t bytes) {
    memcpy(dst, (const uint8_t *)src + offset, bytes);
}

static void cpu_copy(tnd_backend *b, const tnd_tensor *dst, const tnd_tensor *src) {
    memcpy(f32(dst), f32(src), src->row_bytes * (size_t)src->ne1);
}

static bool cpu_copy_to(tnd_backend *b, const tnd_tensor *src, tnd_backend *to, const tnd_tensor *dst) {
    if (to->vt->copy_to != cpu_copy_to) return false; /* not a CPU device: its buffers are not host addresses */
    cpu_copy(b, dst, src);
    return true;
}

typedef struct pack_job {
    const tnd_weight *host;
    const tnd_cpu_dot *k;
    uint8_t *packed;
} pack_job;

static void pack_range(void *ctx, int64_t first, int64_t end) {
    const pack_job *j = ctx;
    tnd_cpu_pack_groups(j->host->data, j->host->n_rows, j->host->row_bytes, j->k->tile_rows, j->k->pack_chunk,
                        j->k->pack_transform, j->packed, first, end);
}

/* A writable weight that is not packed: its rows as the file has them, in memory of the device's own. */
static tnd_status own_copy(tnd_backend *b, const tnd_weight *host, tnd_weight *out) {
    size_t bytes = (size_t)host->n_rows * host->row_bytes;
    void *rows = tnd_alloc(&dev(b)->allocator, bytes);
    if (!rows) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes of weights", b->name, bytes);
    memcpy(rows, host->data, bytes);
    out->data = rows;
    return TND_OK;
}

static tnd_status cpu_prepare_weight(tnd_backend *b, const tnd_weight *host, tnd_weight *out) {
    const tnd_type_traits *t = tnd_type_traits_of(host->type);
    if (!t || !t->to_float)
        return tnd_fail(TND_ERR_UNSUPPORTED, "the CPU device cannot compute with tensor type %s",
                        t ? t->name : "unknown");
    *out = *host;
    out->row_group = 0;
    const tnd_cpu_dot *k = &dev(b)->kernels.dot[host->type];
    /* experts are multiplied from their first row on: packed only where their rows are whole row tiles */
    bool experts_aligned = host->n_experts <= 1 || (host->n_rows / host->n_experts) % TND_CPU_ROW_TILE == 0;
    if (dev(b)->reference || host->lookup_only || !k->tile_packed || host->n_rows < k->tile_rows ||
        TND_CPU_ROW_TILE % k->tile_rows || !experts_aligned)
        return host->writable ? own_copy(b, host, out) : TND_OK;
    /* rows the tiles read together, stored together (tnd_cpu_pack_rows) */
    int64_t groups = (host->n_rows + k->tile_rows - 1) / k->tile_rows;
    size_t bytes = (size_t)groups * (size_t)k->tile_rows * host->row_bytes;
    uint8_t *packed = tnd_alloc(&dev(b)->allocator, bytes);
    if (!packed)
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes of packed weights", b->name, bytes);
    /* the transforms decode every level, seconds for a 1B model on one core: the pool shares them */
    pack_job job = {host, k, packed};
    tnd_thread_pool_for(dev(b)->pool, groups, groups / (4 * tnd_thread_pool_size(dev(b)->pool)) + 1, pack_range, &job);
    out->data = packed;
    out->row_group = k->tile_rows;
    return TND_OK;
}

static void cpu_release_weight(tnd_backend *b, tnd_weight *w) {
    if (w->row_group || w->writable) tnd_free(&dev(b)->allocator, (void *)w->data);
    memset(w, 0, sizeof *w);
}

static tnd_status cpu_update_weight(tnd_backend *b, tnd_weight *w, int64_t row0, const tnd_weight *host) {
    if (!w->writable)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "%s: update_weight of a weight prepared without `writable` (a view "
                        "of the file's mapping)", b->name);
    tnd_status st = tnd_weight_update_check(b->name, w, row0, host);
    if (st) return st;
    uint8_t *at = (uint8_t *)(uintptr_t)w->data + (size_t)row0 * w->row_bytes;
    if (!w->row_group) {
        memcpy(at, host->data, (size_t)host->n_rows * host->row_bytes);
        return TND_OK;
    }
    /* whole experts are whole row tiles, so whole groups (cpu_prepare_weight packs experts only then) */
    const tnd_cpu_dot *k = &dev(b)->kernels.dot[w->type];
    tnd_cpu_pack_rows(host->data, host->n_rows, host->row_bytes, w->row_group, k->pack_chunk, k->pack_transform, at);
    return TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * Element-wise ops (cheap: run on the calling thread)
 * ---------------------------------------------------------------------------------------------------------- */

static void cpu_embed(tnd_backend *b, const tnd_weight *table, const int32_t *ids, const tnd_tensor *out_view) {
    tnd_to_float_fn to_float = tnd_type_traits_of(table->type)->to_float;
    float *out = f32(out_view);
    for (int64_t i = 0; i < out_view->ne1; i++)
        to_float((const uint8_t *)table->data + (size_t)ids[i] * table->row_bytes, out + i * table->n_cols,
                 table->n_cols);
}

static void cpu_rms_norm(tnd_backend *b, const tnd_tensor *xv, const tnd_tensor *gv, const tnd_tensor *yv, float eps) {
    const float *x = f32(xv), *gamma = f32(gv);
    float *y = f32(yv);
    int64_t dim = xv->ne0;
    for (int64_t r = 0; r < xv->ne1; r++) {
        const float *xr = x + r * dim;
        double ss = 0;
        for (int64_t i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        float scale = (float)(1.0 / sqrt(ss / (double)dim + eps));
        float *yr = y + r * dim;
        for (int64_t i = 0; i < dim; i++) yr[i] = xr[i] * scale * gamma[i];
    }
}

static void cpu_add(tnd_backend *b, const tnd_tensor *yv, const tnd_tensor *xv) {
    float *y = f32(yv);
    const float *x = f32(xv);
    for (int64_t i = 0, n = yv->ne0 * yv->ne1; i < n; i++) y[i] += x[i];
}

static void cpu_add_bias(tnd_backend *b, const tnd_tensor *yv, const tnd_tensor *bv) {
    float *y = f32(yv);
    const float *bias = f32(bv);
    int64_t dim = yv->ne0;
    for (int64_t r = 0; r < yv->ne1; r++)
        for (int64_t i = 0; i < dim; i++) y[r * dim + i] += bias[i];
}

static void cpu_swiglu(tnd_backend *b, const tnd_tensor *gate, const tnd_tensor *up, const tnd_tensor *out) {
    dev(b)->kernels.vec.swiglu(f32(gate), f32(up), f32(out), gate->ne0 * gate->ne1);
}

/* The rotation of token t's pair i: cos and sin of pos * base^(-2i/n_rot) / factor_i. */
static void rope_angle(const tnd_step *step, const tnd_rope *rope, int64_t t, int32_t i, float cs[2]) {
    const float *freq_factors = rope->freq_factors.buf ? f32(&rope->freq_factors) : NULL;
    double theta = (double)step->pos[t] * rope->scale * pow(rope->base, -2.0 * i / rope->n_rot);
    if (freq_factors) theta /= freq_factors[i];
    cs[0] = (float)cos(theta);
    cs[1] = (float)sin(theta);
}

static bool same_rope(const tnd_rope *a, const tnd_rope *b) {
    return a->base == b->base && a->scale == b->scale && a->n_rot == b->n_rot &&
           a->freq_factors.buf == b->freq_factors.buf && a->freq_factors.offset == b->freq_factors.offset;
}

/* The step's rotations for `rope`, made at its first rope op; NULL when there is no memory for them. */
static const float *rope_table(cpu_device *d, const tnd_rope *rope) {
    if (d->rope_serial == d->step_serial && same_rope(&d->rope_of, rope)) return d->rope_table;
    size_t need = (size_t)d->step.n_tokens * (size_t)rope->n_rot;
    if (need > d->rope_cap) {
        tnd_free(&d->allocator, d->rope_table);
        d->rope_table = tnd_alloc_array(&d->allocator, need, sizeof(float));
        d->rope_cap = d->rope_table ? need : 0;
        if (!d->rope_table) return NULL;
    }
    for (int64_t t = 0; t < d->step.n_tokens; t++)
        for (int32_t i = 0; i < rope->n_rot / 2; i++)
            rope_angle(&d->step, rope, t, i, d->rope_table + (t * rope->n_rot + 2 * i));
    d->rope_serial = d->step_serial;
    d->rope_of = *rope;
    return d->rope_table;
}

static void cpu_rope(tnd_backend *b, const tnd_tensor *xv, int32_t n_heads, const tnd_rope *rope) {
    const tnd_step *step = &dev(b)->step;
    float *x = f32(xv);
    const float *table = rope_table(dev(b), rope);
    if (!table) {
        tnd_cpu_op_failed(b, TND_ERR_OUT_OF_MEMORY, "no memory for the rotations of rope");
        return;
    }
    int32_t half = rope->n_rot / 2;
    for (int64_t t = 0; t < step->n_tokens; t++) {
        for (int32_t i = 0; i < half; i++) {
            float c = table[t * rope->n_rot + 2 * i], s = table[t * rope->n_rot + 2 * i + 1];
            for (int32_t h = 0; h < n_heads; h++) {
                float *v = x + (t * n_heads + h) * rope->head_dim;
                int32_t i0 = rope->mode == TND_ROPE_NEOX ? i : 2 * i;
                int32_t i1 = rope->mode == TND_ROPE_NEOX ? i + half : 2 * i + 1;
                float a = v[i0], bb = v[i1];
                v[i0] = a * c - bb * s;
                v[i1] = a * s + bb * c;
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * Matrix multiplication. Reference: each thread owns a range of weight rows; a row is dequantized chunk by chunk
 * and each chunk is used for every token, activations stay float. Fast: activations are converted once to the
 * kernel's format (Q8_0, Q8_K, F32, ...), then tiles of rows x tokens are multiplied with the kernel's dot product.
 * ---------------------------------------------------------------------------------------------------------- */

void tnd_cpu_product_rows_ref(const tnd_weight *w, int64_t row0, const float *x, int64_t n_tokens, float *y,
                              size_t ldy, int64_t r0, int64_t r1) {
    const tnd_type_traits *tr = tnd_type_traits_of(w->type);
    float chunk[TND_CPU_CHUNK];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)(row0 + r) * w->row_bytes;
        for (int64_t t = 0; t < n_tokens; t++) y[(size_t)t * ldy + (size_t)r] = 0;
        for (int64_t c0 = 0; c0 < w->n_cols; c0 += TND_CPU_CHUNK) {
            int64_t n = w->n_cols - c0 < TND_CPU_CHUNK ? w->n_cols - c0 : TND_CPU_CHUNK;
            tr->to_float(row + (size_t)(c0 / tr->block_size) * tr->type_size, chunk, n);
            for (int64_t t = 0; t < n_tokens; t++) {
                const float *xt = x + t * w->n_cols + c0;
                float acc = 0;
                for (int64_t i = 0; i < n; i++) acc += chunk[i] * xt[i];
                y[(size_t)t * ldy + (size_t)r] += acc;
            }
        }
    }
}

void tnd_cpu_product_rows(const tnd_cpu_product *p, int64_t r0, int64_t r1) {
    const tnd_weight *w = p->w;
    const tnd_cpu_dot *k = p->k;
    for (int64_t rb = r0; rb < r1; rb += TND_CPU_ROW_TILE) {
        int64_t re = rb + TND_CPU_ROW_TILE < r1 ? rb + TND_CPU_ROW_TILE : r1;
        for (int64_t tb = 0; tb < p->n_tokens; tb += TND_CPU_TOKEN_TILE) {
            int64_t te = tb + TND_CPU_TOKEN_TILE < p->n_tokens ? tb + TND_CPU_TOKEN_TILE : p->n_tokens;
            if (w->row_group) { /* packed: whole groups, read as one stream */
                for (int64_t r = rb; r < re; r += w->row_group) {
                    const uint8_t *group = (const uint8_t *)w->data + (size_t)(p->row0 + r) * w->row_bytes;
                    int n_rows = (int)(re - r < w->row_group ? re - r : w->row_group);
                    for (int64_t t = tb; t < te; t += k->tile_tokens) {
                        int n_tok = (int)(te - t < k->tile_tokens ? te - t : k->tile_tokens);
                        k->tile_packed(group, 0, p->act + (size_t)t * p->act_row, p->act_row, w->n_cols,
                                       p->y + (size_t)t * p->ldy + (size_t)r, p->ldy, n_rows, n_tok);
                    }
                }
                continue;
            }
            /* Unpacked tiles of several rows read those rows in step, which the hardware prefetcher follows poorly
             * from memory (4-row Q8_0 tiles streamed 15 GB/s against 33 for one row at a time; software prefetch
             * made it worse): they pay off only when the rows come back for more tokens, from cache. */
            int tile_rows = k->tile && te - tb > k->tile_tokens ? k->tile_rows : 1;
            for (int64_t r = rb; r < re; r += tile_rows) {
                const uint8_t *rows = (const uint8_t *)w->data + (size_t)(p->row0 + r) * w->row_bytes;
                if (!k->tile) {
                    for (int64_t t = tb; t < te; t++)
                        p->y[(size_t)t * p->ldy + (size_t)r] = k->dot(rows, p->act + (size_t)t * p->act_row, w->n_cols);
                    continue;
                }
                int n_rows = (int)(re - r < tile_rows ? re - r : tile_rows);
                for (int64_t t = tb; t < te; t += k->tile_tokens) {
                    int n_tok = (int)(te - t < k->tile_tokens ? te - t : k->tile_tokens);
                    k->tile(rows, w->row_bytes, p->act + (size_t)t * p->act_row, p->act_row, w->n_cols,
                            p->y + (size_t)t * p->ldy + (size_t)r, p->ldy, n_rows, n_tok);
                }
            }
        }
    }
}

/* Matmuls of one input on the pool, as one job: the float activations x, converted once, and a product per weight
 * over them. The weights' rows are laid end to end, each weight's from a whole row tile (`start`), so a claimed range
 * of rows never splits a packed group (p.act is unused by the reference). */
typedef struct matmul_job {
    const float *x;
    uint8_t *act; /* where the converted activations go: every p[i].act */
    int n;
    tnd_cpu_product p[TND_MAX_FUSED];
    int64_t start[TND_MAX_FUSED + 1];
} matmul_job;

/* Calls piece(job, i, r0, r1) for the rows [r0, r1) of weight i that the job's rows [v0, v1) hold. */
static void for_pieces(const matmul_job *j, int64_t v0, int64_t v1,
                       void (*piece)(const matmul_job *j, int i, int64_t r0, int64_t r1)) {
    for (int i = 0; i < j->n; i++) {
        int64_t r0 = (v0 > j->start[i] ? v0 : j->start[i]) - j->start[i];
        int64_t r1 = (v1 < j->start[i + 1] ? v1 : j->start[i + 1]) - j->start[i];
        if (r1 > j->p[i].w->n_rows) r1 = j->p[i].w->n_rows;
        if (r0 < r1) piece(j, i, r0, r1);
    }
}

static void piece_ref(const matmul_job *j, int i, int64_t r0, int64_t r1) {
    tnd_cpu_product_rows_ref(j->p[i].w, 0, j->x, j->p[i].n_tokens, j->p[i].y, j->p[i].ldy, r0, r1);
}

static void piece_fast(const matmul_job *j, int i, int64_t r0, int64_t r1) { tnd_cpu_product_rows(&j->p[i], r0, r1); }

static void matmul_rows_ref(void *ctx, int64_t v0, int64_t v1) { for_pieces(ctx, v0, v1, piece_ref); }

static void matmul_rows_fast(void *ctx, int64_t v0, int64_t v1) { for_pieces(ctx, v0, v1, piece_fast); }

static void convert_activations(void *ctx, int64_t t0, int64_t t1) {
    const matmul_job *j = ctx;
    int64_t n_cols = j->p[0].w->n_cols;
    for (int64_t t = t0; t < t1; t++)
        j->p[0].k->quantize_act(j->x + t * n_cols, j->act + (size_t)t * j->p[0].act_row, n_cols);
}

/* Rows per unit of a matmul's split job (tnd_thread_pool_for_split): whole row tiles of at least
 * TND_CPU_UNIT_BYTES of weights, so that claiming a unit costs little beside reading it, yet the threads end
 * together within a unit. */
int64_t tnd_cpu_row_unit(size_t row_bytes) {
    int64_t tiles = (int64_t)(TND_CPU_UNIT_BYTES / (TND_CPU_ROW_TILE * (row_bytes ? row_bytes : 1)));
    return (tiles > 1 ? tiles : 1) * TND_CPU_ROW_TILE;
}

static tnd_status cpu_reserve(tnd_backend *b, int64_t max_cols, int64_t max_tokens);

bool tnd_cpu_reference_path(const cpu_device *d, const tnd_weight *w) {
    const tnd_cpu_dot *k = &d->kernels.dot[w->type];
    return d->reference || !k->dot || !tnd_cpu_act_bytes(k, w->n_cols);
}

bool tnd_cpu_same_input(const cpu_device *d, const tnd_weight *a, const tnd_weight *b) {
    const tnd_cpu_dot *ka = &d->kernels.dot[a->type], *kb = &d->kernels.dot[b->type];
    if (a->n_cols != b->n_cols || tnd_cpu_reference_path(d, a) != tnd_cpu_reference_path(d, b)) return false;
    return tnd_cpu_reference_path(d, a) || (ka->quantize_act == kb->quantize_act &&
                                    tnd_cpu_act_bytes(ka, a->n_cols) == tnd_cpu_act_bytes(kb, b->n_cols));
}

/* y[i] = w[i] x for n weights that take the same converted input. */
static void matmul_run(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *xv,
                       const tnd_tensor *const *yv) {
    cpu_device *d = dev(b);
    const float *x = f32(xv);
    int64_t n_tokens = xv->ne1, n_cols = w[0]->n_cols, rows = 0;
    matmul_job job = {.x = x, .n = n};
    for (int i = 0; i < n; i++) {
        job.p[i] = (tnd_cpu_product){.w = w[i], .k = &d->kernels.dot[w[i]->type], .n_tokens = n_tokens,
                                     .y = f32(yv[i]), .ldy = (size_t)w[i]->n_rows};
        job.start[i] = rows;
        rows += (w[i]->n_rows + TND_CPU_ROW_TILE - 1) / TND_CPU_ROW_TILE * TND_CPU_ROW_TILE;
    }
    job.start[n] = rows;
    tnd_thread_pool *pool = rows * n_cols * n_tokens < TND_CPU_PARALLEL_MIN ? NULL : d->pool;
    int64_t unit = tnd_cpu_row_unit(w[0]->row_bytes);
    if (tnd_cpu_reference_path(d, w[0])) {
        tnd_thread_pool_for_split(pool, rows, unit, matmul_rows_ref, &job);
        return;
    }
    size_t act_row = tnd_cpu_act_bytes(job.p[0].k, n_cols);
    if (act_row > d->act_cap && cpu_reserve(b, n_cols, 1) != TND_OK) { /* not reserved: at least one row */
        tnd_cpu_op_failed(b, TND_ERR_OUT_OF_MEMORY, "no memory for the converted activations of a matmul");
        return;
    }
    job.act = d->act;
    int64_t per = (int64_t)(d->act_cap / act_row); /* tokens whose converted activations fit at once */
    for (int64_t t0 = 0; t0 < n_tokens; t0 += per) {
        int64_t count = n_tokens - t0 < per ? n_tokens - t0 : per;
        job.x = x + t0 * n_cols;
        for (int i = 0; i < n; i++) {
            job.p[i].act = d->act;
            job.p[i].act_row = act_row;
            job.p[i].n_tokens = count;
            job.p[i].y = f32(yv[i]) + t0 * w[i]->n_rows;
        }
        tnd_thread_pool_for(pool, count, 1, convert_activations, &job);
        tnd_thread_pool_for_split(pool, rows, unit, matmul_rows_fast, &job);
    }
}

void tnd_cpu_for_groups(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *const *y,
                        tnd_cpu_joinable_fn joinable, tnd_cpu_group_fn run, void *ctx) {
    bool done[TND_MAX_FUSED] = {false};
    for (int i = 0; i < n; i++) {
        if (done[i]) continue;
        const tnd_weight *group_w[TND_MAX_FUSED] = {0};
        const tnd_tensor *group_y[TND_MAX_FUSED] = {0};
        int m = 0;
        for (int k = i; k < n; k++)
            if (!done[k] && joinable(dev(b), w[i], w[k])) {
                group_w[m] = w[k];
                group_y[m++] = y[k];
                done[k] = true;
            }
        run(b, m, group_w, group_y, ctx);
    }
}

/* One group of matmul_many: a job, and its weights' bytes for the profile. */
static void matmul_group(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *const *y, void *x) {
    for (int i = 0; i < n; i++) dev(b)->prof.matmul_bytes += (uint64_t)w[i]->n_rows * (uint64_t)w[i]->row_bytes;
    matmul_run(b, n, w, x, y);
}

/* Matmuls of one input, those that take the same converted input as one job, timed for the profile. */
static void cpu_matmul_many(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *x,
                            const tnd_tensor *const *y) {
    double t0 = seconds_now();
    tnd_cpu_for_groups(b, n, w, y, tnd_cpu_same_input, matmul_group, (void *)x);
    dev(b)->prof.matmul_seconds += seconds_now() - t0;
}

static void cpu_matmul(tnd_backend *b, const tnd_weight *w, const tnd_tensor *x, const tnd_tensor *y) {
    cpu_matmul_many(b, 1, &w, x, &y);
}

static tnd_status cpu_reserve(tnd_backend *b, int64_t max_cols, int64_t max_tokens) {
    cpu_device *d = dev(b);
    size_t need = TND_CPU_ACT_MAX_BYTES_PER_ELEMENT * (size_t)max_cols * (size_t)max_tokens;
    if (d->reference || need <= d->act_cap) return TND_OK;
    tnd_free(&d->allocator, d->act);
    d->act = tnd_alloc(&d->allocator, need);
    d->act_cap = d->act ? need : 0;
    if (!d->act)
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes of activations", b->name, need);
    return TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * KV cache rows
 * ---------------------------------------------------------------------------------------------------------- */

static size_t kv_row_bytes(tnd_type type, int64_t width) { return tnd_row_size(type, width); }

/* A head's run of positions in a block: blocks are [head][position][head_dim] (see backend.h), except K of an F16
 * or Q8_0 cache whose attention kernel reads it transposed (k_transposed): inside the block the head's region
 * starts at the same offset, is as large as the rows it replaces, and holds the values as rows of positions
 * (k_value_at): F16 values as [head_dim][block_size]; Q8_0 levels in steps of four dimensions,
 * [head_dim / 4][block_size][4], then their scales as [head_dim / 32][block_size] F16 (k_scales_of); and V of a
 * Q8_0 cache read so (v_grouped), in groups of four positions. */
static size_t kv_head_offset(tnd_type type, int64_t slot, int32_t head, int32_t n_heads, int32_t block_size,
                             int32_t head_dim) {
    size_t seg = kv_row_bytes(type, head_dim);
    int64_t block = slot / block_size, pos = slot % block_size;
    return ((size_t)block * (size_t)n_heads * (size_t)block_size + (size_t)head * (size_t)block_size + (size_t)pos) *
           seg;
}

static bool k_transposed(const tnd_cpu_kernels *k, tnd_type k_type, int32_t head_dim) {
    return (k_type == TND_TYPE_F16 || k_type == TND_TYPE_Q8_0) && k->vec.attn_tile_stored &&
           k->vec.attn_tile_stored_takes(k_type, head_dim);
}

/* V of a Q8_0 cache read as stored (K and V Q8_0, K transposed, blocks of whole groups of four positions) is kept
 * in groups: inside the block the head's region (where position 0's row would be) holds the levels as
 * [block_size / 4][head_dim][4] (v_value_at), then the scales as [head_dim / 32][block_size] F16, as K's. */
static bool v_grouped(const tnd_cpu_kernels *k, tnd_type k_type, tnd_type v_type, int32_t head_dim,
                      int32_t block_size) {
    return k_type == TND_TYPE_Q8_0 && v_type == TND_TYPE_Q8_0 && block_size % 4 == 0 &&
           k_transposed(k, k_type, head_dim);
}

/* Byte offset in a grouped V region of dimension d at position p. */
static size_t v_value_at(int32_t d, int64_t p, int32_t head_dim) {
    return 4 * ((size_t)(p / 4) * (size_t)head_dim + (size_t)d) + (size_t)(p % 4);
}

/* The scales of a transposed Q8_0 K region: that of dimensions 32b..32b+31 of position p at [b * block_size + p]. */
static uint16_t *k_scales_of(const uint8_t *region, int32_t head_dim, int32_t block_size) {
    return (uint16_t *)(void *)(region + (size_t)head_dim * (size_t)block_size);
}

/* A transposed K region's rows of positions: head_dim of F16 values, or head_dim / 4 steps of four Q8_0 levels; and
 * the bytes a position takes in one. */
static int32_t k_rows_of(tnd_type type, int32_t head_dim) { return type == TND_TYPE_F16 ? head_dim : head_dim / 4; }
static size_t k_unit_of(tnd_type type) { return type == TND_TYPE_F16 ? 2 : 4; }

/* Byte offset in a transposed K region of dimension d at position p (kv_head_offset). */
static size_t k_value_at(tnd_type type, int32_t d, int64_t p, int32_t block_size) {
    int32_t row = type == TND_TYPE_F16 ? d : d / 4, within = type == TND_TYPE_F16 ? 0 : d % 4;
    return k_unit_of(type) * ((size_t)row * (size_t)block_size + (size_t)p) + (size_t)within;
}

/* Writes one head's K row (head_dim floats) at position pos of its transposed region, or (grouped) its V row at
 * position pos of its grouped Q8_0 region: the scales after the levels in both. */
static void store_row_as_stored(const tnd_cpu_kernels *k, tnd_type type, bool grouped, const float *src,
                                uint8_t *region, int64_t pos, int32_t block_size, int32_t head_dim) {
    uint8_t row[TND_CPU_ATTN_MAX_HEAD * 2];
    k->vec.from_float[type](src, row, head_dim);
    if (type == TND_TYPE_F16) {
        for (int32_t d = 0; d < head_dim; d++) memcpy(region + k_value_at(type, d, pos, block_size), row + 2 * d, 2);
        return;
    }
    uint16_t *scales = k_scales_of(region, head_dim, block_size);
    for (int32_t b = 0; b < head_dim / 32; b++) { /* Q8_0 blocks: the F16 scale, then 32 levels */
        const uint8_t *block = row + (size_t)b * 34;
        memcpy(&scales[(size_t)b * (size_t)block_size + (size_t)pos], block, 2);
        for (int32_t i = 0, d = 32 * b; i < 32; i++, d++)
            region[grouped ? v_value_at(d, pos, head_dim) : k_value_at(type, d, pos, block_size)] = block[2 + i];
    }
}

static void cpu_kv_store(tnd_backend *b, tnd_buffer *k_pool, tnd_buffer *v_pool, tnd_type k_type, tnd_type v_type,
                         const tnd_tensor *kv_k, const tnd_tensor *kv_v, int32_t head_dim) {
    const tnd_step *step = &dev(b)->step;
    const tnd_cpu_kernels *kernels = &dev(b)->kernels;
    const float *k = f32(kv_k), *v = f32(kv_v);
    int64_t width = kv_k->ne0;
    const int64_t *slots = step->slots;
    int64_t n_tokens = step->n_tokens;
    int32_t block_size = step->block_size;
    tnd_from_float_fn k_from_float = kernels->vec.from_float[k_type];
    tnd_from_float_fn v_from_float = kernels->vec.from_float[v_type];
    int32_t n_heads = (int32_t)(width / head_dim);
    bool transposed = k_transposed(kernels, k_type, head_dim);
    bool grouped = v_grouped(kernels, k_type, v_type, head_dim, block_size);
    for (int64_t t = 0; t < n_tokens; t++)
        for (int32_t h = 0; h < n_heads; h++) {
            size_t k_at = kv_head_offset(k_type, slots[t], h, n_heads, block_size, head_dim);
            size_t v_at = kv_head_offset(v_type, slots[t], h, n_heads, block_size, head_dim);
            const float *k_src = k + t * width + (int64_t)h * head_dim, *v_src = v + t * width + (int64_t)h * head_dim;
            int64_t pos = slots[t] % block_size; /* a head's region starts where position 0's row would */
            if (grouped)
                store_row_as_stored(kernels, v_type, true, v_src,
                                    (uint8_t *)v_pool + v_at - (size_t)pos * kv_row_bytes(v_type, head_dim), pos,
                                    block_size, head_dim);
            else
                v_from_float(v_src, (uint8_t *)v_pool + v_at, head_dim);
            if (!transposed) {
                k_from_float(k_src, (uint8_t *)k_pool + k_at, head_dim);
                continue;
            }
            store_row_as_stored(kernels, k_type, false, k_src,
                                (uint8_t *)k_pool + k_at - (size_t)pos * kv_row_bytes(k_type, head_dim), pos,
                                block_size, head_dim);
        }
}

static void cpu_kv_copy_blocks(tnd_backend *b, tnd_buffer *pool, size_t block_bytes, const int32_t *src,
                               const int32_t *dst, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        memcpy((uint8_t *)pool + (size_t)dst[i] * block_bytes, (const uint8_t *)pool + (size_t)src[i] * block_bytes,
               block_bytes);
}

/* ------------------------------------------------------------------------------------------------------------
 * Attention, flash-style: the query heads sharing a KV head go together over the context in tiles of
 * TND_CPU_ATTN_TILE positions: the tile's K and V rows are decoded once for all those heads, scores for the whole
 * tile come first, then one rescale of the running output per head and tile (online softmax: running max and
 * sum), so no score vector of context length is ever stored. A work item is one token and a range of adjacent KV
 * heads, walked tile by tile across the range: a block keeps its heads' runs next to each other, so the item reads
 * one long stretch of memory per block instead of one short run per head, which the hardware prefetcher follows
 * far better. Each head's arithmetic is the same whatever the range, so results do not depend on the split.
 * ---------------------------------------------------------------------------------------------------------- */

/* The attention arguments with the CPU's addresses resolved. */
typedef struct cpu_attn {
    const float *q;
    float *out;
    int32_t n_head, n_head_kv, head_dim;
    float scale;
    const uint8_t *k_pool, *v_pool;
    tnd_type k_type, v_type;
} cpu_attn;

typedef struct attention_job {
    const cpu_attn *a;
    const tnd_step *step;
    const tnd_cpu_kernels *k;
    bool k_t;               /* K stored transposed for attn_tile_stored (k_transposed) */
    bool v_g;               /* V stored in groups of four positions (v_grouped) */
    int32_t n_segments;     /* segments of the longest context (items per block and KV head) */
    const int32_t *blocks;  /* query blocks: block b is tokens [blocks[b], blocks[b + 1]) */
    float *scratch; /* the device's attention scratch, ATTN_SCRATCH_FLOATS per thread */
    float *partial; /* [n_tokens][n_head][n_segments][2 + head_dim]: max, sum, output of each segment of the blocks
                       that span several */
} attention_job;

/* Segments of a context of n positions. */
static int32_t segments_of(int32_t n) { return n <= 0 ? 1 : (n + ATTN_SEGMENT - 1) / ATTN_SEGMENT; }

/* Decodes n consecutive positions of one head (a run inside one block) to float. */
static void load_kv_run(const tnd_cpu_kernels *k, const uint8_t *run, tnd_type type, int64_t n_elements, float *out) {
    k->vec.to_float[type](run, out, n_elements);
}

/* The same for K stored transposed: positions pos .. pos + n - 1 of a head's region (kv_head_offset), the bits of
 * the type's decoder. */
static void load_k_transposed(const tnd_cpu_kernels *k, tnd_type type, const uint8_t *region, int32_t block_size,
                              int32_t pos, int32_t n, int32_t head_dim, float *out) {
    float column[TND_CPU_ATTN_TILE];
    const uint16_t *scales = k_scales_of(region, head_dim, block_size);
    for (int32_t d = 0; d < head_dim; d++) {
        if (type == TND_TYPE_F16)
            k->vec.to_float[TND_TYPE_F16](region + k_value_at(type, d, pos, block_size), column, n);
        else
            for (int32_t j = 0; j < n; j++)
                column[j] = tnd_fp16_to_f32(scales[(size_t)(d / 32) * (size_t)block_size + (size_t)(pos + j)]) *
                            (float)(int8_t)region[k_value_at(type, d, pos + j, block_size)];
        for (int32_t j = 0; j < n; j++) out[(size_t)j * (size_t)head_dim + (size_t)d] = column[j];
    }
}

/* Copies `run` positions from `pos` of a grouped V region with block_size positions to position `to` of one with
 * `stride` positions (pos and to multiples of 4; the last group whole). */
static void copy_v_grouped(const uint8_t *from, int32_t block_size, int32_t pos, uint8_t *into, int32_t stride,
                           int32_t to, int32_t run, int32_t head_dim) {
    size_t group = 4 * (size_t)head_dim;
    memcpy(into + group * (size_t)(to / 4), from + group * (size_t)(pos / 4), group * (size_t)((run + 3) / 4));
    const uint16_t *src = k_scales_of(from, head_dim, block_size);
    uint16_t *dst = k_scales_of(into, head_dim, stride);
    for (int32_t b = 0; b < head_dim / 32; b++)
        memcpy(dst + (size_t)b * (size_t)stride + (size_t)to, src + (size_t)b * (size_t)block_size + (size_t)pos,
               2 * (size_t)run);
}

/* Copies `run` positions from `pos` of a transposed K region with block_size positions to position `to` of one
 * with `stride` positions (the same layout, kv_head_offset). */
static void copy_k_transposed(tnd_type type, const uint8_t *from, int32_t block_size, int32_t pos, uint8_t *into,
                              int32_t stride, int32_t to, int32_t run, int32_t head_dim) {
    size_t unit = k_unit_of(type); /* each row of the region is a run of positions */
    for (int32_t i = 0; i < k_rows_of(type, head_dim); i++)
        memcpy(into + unit * ((size_t)i * (size_t)stride + (size_t)to),
               from + unit * ((size_t)i * (size_t)block_size + (size_t)pos), unit * (size_t)run);
    if (type != TND_TYPE_Q8_0) return;
    const uint16_t *src = k_scales_of(from, head_dim, block_size);
    uint16_t *dst = k_scales_of(into, head_dim, stride);
    for (int32_t b = 0; b < head_dim / 32; b++)
        memcpy(dst + (size_t)b * (size_t)stride + (size_t)to, src + (size_t)b * (size_t)block_size + (size_t)pos,
               2 * (size_t)run);
}

_Static_assert((int)TND_CPU_ATTN_TILE <= (int)TND_CPU_ATTN_TILE_MAX, "one attention tile per kernel call");

/* KV head g at position p, in its block: the offset of the head's V row and of its K row, or with K transposed (V
 * grouped) of the head's whole K (V) region (position 0). */
static void head_at(const attention_job *job, int32_t bs, const int32_t *table, int32_t p, int32_t g, size_t *k_at,
                    size_t *v_at) {
    const cpu_attn *a = job->a;
    int64_t slot = (int64_t)table[p / bs] * bs + p % bs;
    *v_at = kv_head_offset(a->v_type, slot, g, a->n_head_kv, bs, a->head_dim);
    *k_at = kv_head_offset(a->k_type, slot, g, a->n_head_kv, bs, a->head_dim);
    if (job->k_t) *k_at -= (size_t)(p % bs) * kv_row_bytes(a->k_type, a->head_dim);
    if (job->v_g) *v_at -= (size_t)(p % bs) * kv_row_bytes(a->v_type, a->head_dim);
}

/* The rows of KV head g that the tile at position p reads in the first block it touches. */
static tnd_kv_prefetch tile_rows(const attention_job *job, int32_t bs, const int32_t *table, int32_t p,
                                 int32_t g) {
    const cpu_attn *a = job->a;
    int32_t n = bs - p % bs < TND_CPU_ATTN_TILE ? bs - p % bs : TND_CPU_ATTN_TILE;
    size_t k_at, v_at;
    head_at(job, bs, table, p, g, &k_at, &v_at);
    return (tnd_kv_prefetch){(const uint8_t *)a->k_pool + k_at, (const uint8_t *)a->v_pool + v_at,
                             (size_t)n * kv_row_bytes(a->k_type, a->head_dim)};
}

/* Folds the tile of np positions from p0 into the running state (mx, sum, acc) of KV head g's query heads q, while
 * the rows of the next tile (`next`, k NULL if none) are requested: spread through the F16 kernel's work, or all
 * at once before decoding (the hardware prefetcher does not see a run at a new address coming). */
static void attend_tile(const attention_job *job, const int32_t *table, const float *q, tnd_attn_q8 q8, int32_t rep,
                        int32_t g, int32_t p0, int32_t np, const tnd_kv_prefetch *next, float *mx, float *sum,
                        float *acc, float *kv_tile) {
    const cpu_attn *a = job->a;
    const tnd_cpu_kernels *k = job->k;
    int32_t hd = a->head_dim, bs = job->step->block_size;
    size_t k_at, v_at;
    if (job->k_t && a->v_type == a->k_type && (a->k_type != TND_TYPE_Q8_0 || job->v_g)) {
        /* the cache as stored: one run of it, or its runs gathered */
        size_t row = kv_row_bytes(a->k_type, hd);
        tnd_kv_stored kv = {.type = a->k_type, .stride = bs, .q8 = q8};
        const uint8_t *region, *v_region; /* V: F16 rows from the first position, or a grouped Q8_0 region */
        int32_t first = p0 % bs;
        if (first + np <= bs) {
            head_at(job, bs, table, p0, g, &k_at, &v_at);
            region = a->k_pool + k_at;
            v_region = a->v_pool + v_at;
        } else { /* runs from several blocks, copied side by side as one region of TND_CPU_ATTN_TILE positions */
            uint8_t *tile = (uint8_t *)kv_tile, *v_tile = tile + TND_CPU_ATTN_TILE * row;
            for (int32_t j = 0, run; j < np; j += run) {
                int32_t p = p0 + j, in_block = bs - p % bs;
                run = np - j < in_block ? np - j : in_block;
                head_at(job, bs, table, p, g, &k_at, &v_at);
                copy_k_transposed(a->k_type, a->k_pool + k_at, bs, p % bs, tile, TND_CPU_ATTN_TILE, j, run, hd);
                if (job->v_g)
                    copy_v_grouped(a->v_pool + v_at, bs, p % bs, v_tile, TND_CPU_ATTN_TILE, j, run, hd);
                else
                    memcpy(v_tile + (size_t)j * row, a->v_pool + v_at, (size_t)run * row);
            }
            region = tile, v_region = v_tile, first = 0, kv.stride = TND_CPU_ATTN_TILE;
        }
        kv.k = region + k_value_at(a->k_type, 0, first, kv.stride);
        kv.k_scales = k_scales_of(region, hd, kv.stride) + first;
        kv.v = v_region;
        if (job->v_g) {
            kv.v = v_region + v_value_at(0, first, hd);
            kv.v_scales = k_scales_of(v_region, hd, kv.stride) + first;
        }
        k->vec.attn_tile_stored(q, rep, hd, &kv, np, a->scale, mx, sum, acc, next);
        return;
    }
    for (size_t off = 0; next->k && off < next->bytes; off += 64) {
        __builtin_prefetch((const uint8_t *)next->k + off);
        __builtin_prefetch((const uint8_t *)next->v + off);
    }
    float *kbuf = kv_tile, *vbuf = kv_tile + TND_CPU_ATTN_TILE * TND_CPU_ATTN_MAX_HEAD;
    for (int32_t j = 0, run; j < np; j += run) {
        int32_t p = p0 + j, in_block = bs - p % bs;
        run = np - j < in_block ? np - j : in_block;
        head_at(job, bs, table, p, g, &k_at, &v_at);
        if (job->k_t)
            load_k_transposed(k, a->k_type, a->k_pool + k_at, bs, p % bs, run, hd, kbuf + (int64_t)j * hd);
        else
            load_kv_run(k, (const uint8_t *)a->k_pool + k_at, a->k_type, (int64_t)run * hd, kbuf + (int64_t)j * hd);
        load_kv_run(k, (const uint8_t *)a->v_pool + v_at, a->v_type, (int64_t)run * hd, vbuf + (int64_t)j * hd);
    }
    k->vec.attn_tile(q, rep, hd, kbuf, vbuf, np, a->scale, mx, sum, acc);
}

/* One work item: a query block (consecutive tokens of one sequence), one KV head and one segment of the context. The
 * block's tokens go over the segment's tiles they all see in full together, as one group of T x rep query heads, so
 * each tile of the cached prefix is read once for the block (a prompt chunk at depth 4096 read it once per token
 * before); then each token takes its own remaining tiles of the segment. Every query head meets the same tiles in the
 * same order as alone, so the result does not depend on the blocks. The states end in the output (a block whose
 * contexts fit one segment) or in the partial states that merge_segments combines. */
static void attention_items(void *ctx, int worker, int64_t item0, int64_t item1) {
    const attention_job *job = ctx;
    const cpu_attn *a = job->a;
    const tnd_step *st = job->step;
    int32_t hd = a->head_dim, rep = a->n_head / a->n_head_kv, bs = st->block_size;
    float *acc = job->scratch + (size_t)worker * ATTN_SCRATCH_FLOATS, *gathered = acc + TND_CPU_ATTN_MAX_GROUP,
          *mx = gathered + TND_CPU_ATTN_MAX_GROUP, *sum = mx + TND_CPU_ATTN_MAX_REP,
          *kv_tile = sum + TND_CPU_ATTN_MAX_REP, *q8_area = kv_tile + 2 * TND_CPU_ATTN_TILE * TND_CPU_ATTN_MAX_HEAD;
    for (int64_t item = item0; item < item1; item++) {
        int32_t seg = (int32_t)(item % job->n_segments);
        int64_t head = item / job->n_segments, b = head / a->n_head_kv;
        int32_t g = (int32_t)(head % a->n_head_kv);
        int32_t t0 = job->blocks[b], n_t = job->blocks[b + 1] - t0;
        int32_t n_segs = segments_of(st->n_ctx[t0 + n_t - 1]);
        if (seg >= n_segs) continue; /* a shorter context than the step's longest */
        int32_t lo = seg * ATTN_SEGMENT, hi = lo + ATTN_SEGMENT; /* the segment's positions */
        int32_t group = n_t * rep; /* the block's query heads of KV head g: state slot t * rep + r */
        /* the queries in state-slot order: a single token's already are (a generated token: no copy) */
        const float *qs = a->q + (t0 * (int64_t)a->n_head + (int64_t)g * rep) * hd;
        if (n_t > 1) {
            for (int32_t t = 0; t < n_t; t++)
                memcpy(gathered + (size_t)t * rep * hd, a->q + ((t0 + t) * (int64_t)a->n_head + (int64_t)g * rep) * hd,
                       sizeof(float) * (size_t)(rep * hd));
            qs = gathered;
        }
        for (int32_t r = 0; r < group; r++) {
            mx[r] = -INFINITY;
            sum[r] = 0;
        }
        memset(acc, 0, sizeof(float) * (size_t)(group * hd));
        tnd_attn_q8 q8 = {0}; /* a Q8_0 cache read as stored scores the queries quantized, once for all the tiles */
        if (job->v_g) q8 = tnd_cpu_quantize_queries(qs, group, hd, a->scale, q8_area);
        const int32_t *table = st->block_tables[t0]; /* one sequence */
        /* tiles start at multiples of TND_CPU_ATTN_TILE whatever the block size, so the sums' order (and the
         * result) does not depend on how the cache is paged; a tile is loaded one run per block it spans. The next
         * tile is asked for while one computes, across the segment's end too (a thread takes runs of segments). */
        int32_t shared = st->n_ctx[t0] / TND_CPU_ATTN_TILE * TND_CPU_ATTN_TILE; /* whole tiles every token sees */
        if (n_t == 1) shared = lo;
        if (shared > hi) shared = hi;
        for (int32_t p0 = lo; p0 < shared; p0 += TND_CPU_ATTN_TILE) {
            tnd_kv_prefetch next = {0};
            if (p0 + TND_CPU_ATTN_TILE < st->n_ctx[t0])
                next = tile_rows(job, bs, table, p0 + TND_CPU_ATTN_TILE, g);
            attend_tile(job, table, qs, q8, group, g, p0, TND_CPU_ATTN_TILE, &next, mx, sum, acc, kv_tile);
        }
        for (int32_t t = 0; t < n_t; t++) {
            size_t s0 = (size_t)t * rep;
            int32_t end = st->n_ctx[t0 + t] < hi ? st->n_ctx[t0 + t] : hi;
            for (int32_t p0 = shared > lo ? shared : lo; p0 < end; p0 += TND_CPU_ATTN_TILE) {
                int32_t np = end - p0 < TND_CPU_ATTN_TILE ? end - p0 : TND_CPU_ATTN_TILE;
                tnd_kv_prefetch next = {0};
                if (p0 + np < st->n_ctx[t0 + t]) next = tile_rows(job, bs, table, p0 + np, g);
                attend_tile(job, table, qs + s0 * hd, tnd_attn_q8_from(q8, (int32_t)s0, hd), rep, g, p0, np, &next,
                            mx + s0, sum + s0, acc + s0 * hd, kv_tile);
            }
            int64_t head0 = (t0 + t) * (int64_t)a->n_head + (int64_t)g * rep;
            for (int32_t r = 0; r < rep; r++) {
                const float *state = acc + (s0 + r) * hd;
                if (n_segs > 1) { /* merged later, in segment order */
                    float *part = job->partial + ((head0 + r) * job->n_segments + seg) * (2 + hd);
                    part[0] = mx[s0 + r];
                    part[1] = sum[s0 + r];
                    memcpy(part + 2, state, sizeof(float) * (size_t)hd);
                    continue;
                }
                float *out = a->out + (head0 + r) * hd;
                for (int32_t i = 0; i < hd; i++) out[i] = sum[s0 + r] > 0 ? state[i] / sum[s0 + r] : 0;
            }
        }
    }
}

/* The outputs of the query blocks [b0, b1) that span several segments: each query head's segment states merged in
 * order (rescaled to the largest maximum), then divided by the merged sum. */
static void merge_segments(void *ctx, int64_t b0, int64_t b1) {
    const attention_job *job = ctx;
    const cpu_attn *a = job->a;
    int32_t hd = a->head_dim;
    for (int64_t b = b0; b < b1; b++) {
        int32_t n_segs = segments_of(job->step->n_ctx[job->blocks[b + 1] - 1]);
        if (n_segs == 1) continue; /* written by its items */
        for (int64_t t = job->blocks[b]; t < job->blocks[b + 1]; t++)
            for (int32_t h = 0; h < a->n_head; h++) {
                const float *part = job->partial + (t * a->n_head + h) * (int64_t)job->n_segments * (2 + hd);
                float m = -INFINITY, total = 0;
                for (int32_t s = 0; s < n_segs; s++)
                    if (part[s * (2 + hd) + 1] > 0 && part[s * (2 + hd)] > m) m = part[s * (2 + hd)];
                float *out = a->out + (t * a->n_head + h) * hd;
                bool first = true; /* assigned, not added to zero: one segment alone gives its own bits */
                for (int32_t s = 0; s < n_segs; s++) {
                    const float *p = part + s * (2 + hd);
                    if (!(p[1] > 0)) continue; /* no position of this token in the segment */
                    float f = expf(p[0] - m);
                    total = first ? p[1] * f : total + p[1] * f;
                    for (int32_t i = 0; i < hd; i++) out[i] = first ? p[2 + i] * f : out[i] + p[2 + i] * f;
                    first = false;
                }
                for (int32_t i = 0; i < hd; i++) out[i] = total > 0 ? out[i] / total : 0;
            }
    }
}

/* Splits the step's tokens into query blocks of at most `most` consecutive tokens of one sequence at consecutive
 * positions; returns their count. */
static int32_t query_blocks(const tnd_step *st, int32_t most, int32_t *blocks) {
    int32_t n = 0;
    for (int64_t t = 0; t < st->n_tokens; t++) {
        bool extends = t > 0 && st->block_tables[t] == st->block_tables[t - 1] &&
                       st->n_ctx[t] == st->n_ctx[t - 1] + 1 && t - blocks[n - 1] < most;
        if (!extends) blocks[n++] = (int32_t)t;
    }
    blocks[n] = (int32_t)st->n_tokens;
    return n;
}

static void attention_run(tnd_backend *b, const tnd_attention_args *args) {
    cpu_device *d = dev(b);
    const cpu_attn attn = {f32(&args->q),         f32(&args->out),  args->n_head,
                           args->n_head_kv,       args->head_dim,   args->scale,
                           (const uint8_t *)args->k_pool, (const uint8_t *)args->v_pool, args->k_type,
                           args->v_type};
    const cpu_attn *a = &attn;
    const tnd_step *step = &d->step;
    int64_t n_tokens = step->n_tokens;
    if (n_tokens > d->query_blocks_cap) {
        tnd_free(&d->allocator, d->query_blocks);
        d->query_blocks = tnd_alloc_array(&d->allocator, (size_t)n_tokens + 1, sizeof(int32_t));
        d->query_blocks_cap = d->query_blocks ? n_tokens : 0;
        if (!d->query_blocks) {
            tnd_cpu_op_failed(b, TND_ERR_OUT_OF_MEMORY, "no memory for the query blocks of attention");
            return;
        }
    }
    int32_t longest = 0;
    for (int64_t t = 0; t < n_tokens; t++)
        if (step->n_ctx[t] > longest) longest = step->n_ctx[t];
    int32_t n_segments = segments_of(longest);
    size_t partial = (size_t)n_tokens * (size_t)a->n_head * (size_t)n_segments * (size_t)(2 + a->head_dim);
    if (n_segments == 1) partial = 0;
    if (partial > d->attn_partial_cap) {
        tnd_free(&d->allocator, d->attn_partial);
        d->attn_partial = tnd_alloc_array(&d->allocator, partial, sizeof(float));
        d->attn_partial_cap = d->attn_partial ? partial : 0;
        if (!d->attn_partial) {
            tnd_cpu_op_failed(b, TND_ERR_OUT_OF_MEMORY, "no memory for the segment states of attention");
            return;
        }
    }
    int64_t work = n_tokens * a->n_head * a->head_dim * (int64_t)longest;
    tnd_thread_pool *pool = work < TND_CPU_PARALLEL_MIN ? NULL : d->pool;
    /* one KV head per item (one stream of K and V: two heads in one item measured slower), query blocks as long as
     * the state arrays hold the block's query heads (supports() admits only heads that fit one token) */
    int32_t rep = a->n_head / a->n_head_kv;
    int32_t fit = TND_CPU_ATTN_MAX_GROUP / (rep * a->head_dim), fit_rep = TND_CPU_ATTN_MAX_REP / rep;
    int32_t most = fit < fit_rep ? fit : fit_rep;
    if (most > ATTN_QUERY_BLOCK) most = ATTN_QUERY_BLOCK;
    int32_t n_blocks = query_blocks(step, most, d->query_blocks);
    const tnd_cpu_kernels *k = &d->kernels;
    attention_job job = {a,
                         step,
                         k,
                         k_transposed(k, a->k_type, a->head_dim),
                         v_grouped(k, a->k_type, a->v_type, a->head_dim, step->block_size),
                         n_segments,
                         d->query_blocks,
                         d->attn_scratch,
                         d->attn_partial};
    /* items claimed one at a time, in order (the segments of one head follow each other in memory): an item is long
     * enough that claiming costs nothing, and a core slower than the others (a little core, a busy neighbour) takes
     * fewer of them. Runs of n_items / (2 x threads) measured 4% slower on a host whose two cores differed by 1.5x. */
    int64_t n_items = (int64_t)n_blocks * a->n_head_kv * n_segments;
    tnd_thread_pool_for_worker(pool, n_items, 1, attention_items, &job);
    if (n_segments > 1) tnd_thread_pool_for(pool, n_blocks, 1, merge_segments, &job);
    /* the cache a block reads: every position its last token sees, K and V of every KV head */
    uint64_t per_position = (uint64_t)a->n_head_kv * (kv_row_bytes(a->k_type, a->head_dim) +
                                                      kv_row_bytes(a->v_type, a->head_dim));
    for (int32_t bi = 0; bi < n_blocks; bi++)
        d->prof.attention_bytes += (uint64_t)step->n_ctx[d->query_blocks[bi + 1] - 1] * per_position;
}

/* Attention, timed for the profile. */
static void cpu_attention(tnd_backend *b, const tnd_attention_args *args) {
    double t0 = seconds_now();
    attention_run(b, args);
    dev(b)->prof.attention_seconds += seconds_now() - t0;
}

/* ------------------------------------------------------------------------------------------------------------
 * Device
 * ---------------------------------------------------------------------------------------------------------- */

static void cpu_destroy(tnd_backend *b) {
    if (!b) return;
    cpu_device *d = dev(b);
    tnd_allocator a = d->allocator;
    tnd_thread_pool_free(d->pool);
    tnd_free(&a, d->act);
    tnd_free(&a, d->experts);
    tnd_free(&a, d->rope_table);
    tnd_free(&a, d->attn_partial);
    tnd_free(&a, d->attn_scratch);
    tnd_free(&a, d->query_blocks);
    tnd_free(&a, d);
    tnd_free(&a, b);
}


static bool kv_type_ok(tnd_type t) {
    return t == TND_TYPE_F32 || t == TND_TYPE_F16 || t == TND_TYPE_Q8_0 || t == TND_TYPE_Q4_0;
}

static bool cpu_supports(tnd_backend *b, const tnd_op_query *q) {
    const tnd_type_traits *t = tnd_type_traits_of(q->type);
    switch (q->op) {
    case TND_OP_EMBED:
    case TND_OP_MATMUL:
    case TND_OP_MATMUL_EXPERTS: return t && t->to_float;
    case TND_OP_KV_STORE:
    case TND_OP_ATTENTION: {
        /* the attention state of a KV head's query heads lives in fixed per-thread scratch */
        int32_t rep = q->n_head_kv > 0 ? q->n_head / q->n_head_kv : 0;
        bool kv_types = kv_type_ok(q->type) && kv_type_ok(q->v_type);
        return kv_types && rep >= 1 && q->n_head % q->n_head_kv == 0 && rep <= TND_CPU_ATTN_MAX_REP &&
               (int64_t)rep * q->head_dim <= TND_CPU_ATTN_MAX_GROUP && q->head_dim <= TND_CPU_ATTN_MAX_HEAD;
    }
    default: return q->op < TND_OP_COUNT;
    }
}

/* The machine's memory, and what the kernel says is available (MemAvailable: free plus reclaimable cache). */
static void cpu_memory(tnd_backend *b, uint64_t *total, uint64_t *available) {
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    *total = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    *available = avail > 0 && page > 0 ? (uint64_t)avail * (uint64_t)page : 0;
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) *available = (uint64_t)kb * 1024;
    if (f) fclose(f);
}

/* Memory read bandwidth: every thread sums its share of a buffer far larger than the caches, four chains so the
 * adds are not the bottleneck; the best of five passes over 1 GiB. */
typedef struct read_job {
    const uint64_t *buf;
    size_t n_words;
    uint64_t *sums; /* one per thread */
} read_job;

static void read_share(void *ctx, int ith, int nth) {
    read_job *j = ctx;
    size_t per = j->n_words / (size_t)nth, begin = per * (size_t)ith, end = begin + per;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = begin; i + 4 <= end; i += 4) {
        s0 += j->buf[i];
        s1 += j->buf[i + 1];
        s2 += j->buf[i + 2];
        s3 += j->buf[i + 3];
    }
    j->sums[ith] = s0 + s1 + s2 + s3;
}

static double cpu_measure_bandwidth(tnd_backend *b) {
    cpu_device *d = dev(b);
    size_t bytes = (size_t)1 << 30;
    int threads = tnd_thread_pool_size(d->pool);
    uint64_t *buf = tnd_alloc(&d->allocator, bytes), *sums = tnd_alloc_array(&d->allocator, (size_t)threads, 8);
    double best = 0;
    if (buf && sums) {
        for (size_t i = 0; i < bytes / 8; i++) buf[i] = i; /* fault every page in before timing */
        read_job j = {buf, bytes / 8, sums};
        for (int pass = 0; pass < 5; pass++) {
            double t0 = seconds_now();
            tnd_thread_pool_run(d->pool, read_share, &j);
            double rate = (double)bytes / (seconds_now() - t0);
            if (rate > best) best = rate;
        }
        uint64_t sink = 0;
        for (int i = 0; i < threads; i++) sink += sums[i];
        __asm__ volatile("" : : "r"(sink)); /* the sums are used */
    }
    tnd_free(&d->allocator, buf);
    tnd_free(&d->allocator, sums);
    return best;
}

static void cpu_profile(tnd_backend *b, tnd_device_profile *out, int reset) {
    tnd_device_profile *p = &dev(b)->prof;
    out->matmul_seconds += p->matmul_seconds;
    out->attention_seconds += p->attention_seconds;
    out->matmul_bytes += p->matmul_bytes;
    out->attention_bytes += p->attention_bytes;
    if (reset) memset(p, 0, sizeof *p);
}

static void cpu_describe(tnd_backend *b, char *buf, size_t cap) {
    cpu_device *d = dev(b);
    snprintf(buf, cap, "%s kernels, %d threads", d->reference ? "reference" : d->kernels.dot[TND_TYPE_Q8_0].isa,
             tnd_thread_pool_size(d->pool));
}

static void cpu_set_background(tnd_backend *b, bool on) { tnd_thread_pool_set_solo(dev(b)->pool, on); }

static const tnd_backend_vtable cpu_vtable = {
    .destroy = cpu_destroy,
    .supports = cpu_supports,
    .memory = cpu_memory,
    .measure_bandwidth = cpu_measure_bandwidth,
    .describe = cpu_describe,
    .set_background = cpu_set_background,
    .profile = cpu_profile,
    .begin_step = cpu_begin_step,
    .synchronize = cpu_synchronize,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .write = cpu_write,
    .read = cpu_read,
    .copy_to = cpu_copy_to,
    .copy = cpu_copy,
    .prepare_weight = cpu_prepare_weight,
    .update_weight = cpu_update_weight,
    .release_weight = cpu_release_weight,
    .reserve = cpu_reserve,
    .embed = cpu_embed,
    .matmul = cpu_matmul,
    .matmul_many = cpu_matmul_many,
    .rms_norm = cpu_rms_norm,
    .add = cpu_add,
    .add_bias = cpu_add_bias,
    .swiglu = cpu_swiglu,
    .rope = cpu_rope,
    .kv_store = cpu_kv_store,
    .kv_copy_blocks = cpu_kv_copy_blocks,
    .attention = cpu_attention,
    .moe_route = tnd_cpu_moe_route,
    .matmul_experts = tnd_cpu_matmul_experts,
    .moe_combine = tnd_cpu_moe_combine,
    .sigmoid_scale = tnd_cpu_sigmoid_scale,
};

/* The best kernels of this processor, capped by TANDEM_CPU_ISA=avx2 (or another set's name) to compare instruction
 * sets on one machine. */
static void active_kernels(tnd_cpu_kernels *k) {
    tnd_cpu_features features = tnd_cpu_detect();
    tnd_cpu_kernels_best(k, &features);
    const char *cap = getenv("TANDEM_CPU_ISA");
    for (int isa = 0; cap && isa < TND_ISA_COUNT; isa++)
        if (strcmp(cap, tnd_cpu_isa_name((tnd_cpu_isa)isa)) == 0 &&
            !tnd_cpu_kernels_for(k, (tnd_cpu_isa)isa, &features))
            tnd_cpu_kernels_best(k, &features); /* not on this machine: keep the best */
}

const char *tnd_cpu_kernel_describe(tnd_type type, char *buf, size_t cap) {
    if (cap) buf[0] = 0;
    if ((unsigned)type >= TND_TYPE_COUNT) return NULL;
    tnd_cpu_kernels k;
    active_kernels(&k);
    const tnd_cpu_dot *e = &k.dot[type];
    if (!e->dot) return NULL;
    const char *act = tnd_type_name(e->act_type);
    if (e->tile_packed)
        snprintf(buf, cap, "%s dot, tiles of %d packed rows x %d tokens, activations %s", e->isa, e->tile_rows,
                 e->tile_tokens, act);
    else if (e->tile)
        snprintf(buf, cap, "%s dot, tiles of %d rows x %d tokens, activations %s", e->isa, e->tile_rows, e->tile_tokens,
                 act);
    else
        snprintf(buf, cap, "%s dot (no tile: a row at a time for each token), activations %s", e->isa, act);
    return e->isa;
}

tnd_status tnd_backend_cpu_init(int n_threads, bool reference, const tnd_allocator *allocator, const char *name,
                                tnd_backend **out) {
    *out = NULL;
    tnd_allocator a = allocator ? *allocator : (tnd_allocator){0};
    tnd_backend *b = tnd_alloc(&a, sizeof *b);
    cpu_device *d = tnd_alloc(&a, sizeof *d);
    if (!b || !d) {
        tnd_free(&a, b);
        tnd_free(&a, d);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory");
    }
    d->allocator = a;
    d->reference = reference;
    active_kernels(&d->kernels);
    if (reference) tnd_cpu_kernels_reference(&d->kernels);
    b->vt = &cpu_vtable;
    b->impl = d;
    snprintf(b->name, sizeof b->name, "%s", name ? name : "cpu");
    tnd_status st = tnd_thread_pool_init(n_threads < 1 ? tnd_physical_cores() : n_threads, &a, &d->pool);
    if (!st) {
        d->attn_scratch =
            tnd_alloc_array(&a, (size_t)tnd_thread_pool_size(d->pool) * ATTN_SCRATCH_FLOATS, sizeof(float));
        if (!d->attn_scratch) st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "%s: out of memory for attention scratch", b->name);
    }
    if (st) {
        cpu_destroy(b);
        return st;
    }
    *out = b;
    return TND_OK;
}
