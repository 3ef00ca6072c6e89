/* cpu_experts.c: the mixture-of-experts ops of the CPU device. The router's choice runs on the calling thread; the
 * chosen experts' matmuls group a step's (token, slot) pairs by expert, so that each expert's rows are read once for
 * all the tokens that chose it, and run as one job on the pool over the rows of every active expert (one job, not
 * one per expert: a decode step of a 48-layer model with 8 experts would otherwise wake the pool over a thousand
 * times). */
#include "backend/cpu/cpu_device.h"

#include "quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int32_t *i32(const tnd_tensor *t) { return (int32_t *)(void *)((uint8_t *)t->buf + t->offset); }

void tnd_cpu_moe_route(tnd_backend *b, const tnd_moe_route_args *a) {
    const float *logits = f32(&a->logits);
    int32_t *ids = i32(&a->ids);
    float *weights = f32(&a->weights);
    int64_t n_experts = a->logits.ne0, k = a->n_used;
    for (int64_t t = 0; t < a->logits.ne1; t++) {
        const float *l = logits + t * n_experts;
        int32_t *id = ids + t * k;
        float *w = weights + t * k;
        /* softmax is monotonic: the largest logits are the largest probabilities */
        for (int64_t j = 0; j < k; j++) {
            int32_t best = -1;
            for (int32_t e = 0; e < n_experts; e++) {
                bool taken = false;
                for (int64_t i = 0; i < j && !taken; i++) taken = id[i] == e;
                if (!taken && (best < 0 || l[e] > l[best])) best = e; /* ties: the lower index */
            }
            id[j] = best;
        }
        float max = l[id[0]];
        double all = 0, chosen = 0;
        for (int64_t e = 0; e < n_experts; e++) all += exp((double)l[e] - max);
        for (int64_t j = 0; j < k; j++) chosen += exp((double)l[id[j]] - max);
        double denominator = a->normalize ? chosen : all;
        for (int64_t j = 0; j < k; j++) w[j] = (float)(exp((double)l[id[j]] - max) / denominator);
    }
}

void tnd_cpu_moe_combine(tnd_backend *b, const tnd_tensor *experts, const tnd_tensor *weights, const tnd_tensor *y) {
    const float *e = f32(experts), *w = f32(weights);
    float *out = f32(y);
    int64_t width = y->ne0, k = weights->ne0;
    for (int64_t t = 0; t < y->ne1; t++)
        for (int64_t i = 0; i < width; i++) {
            float acc = 0;
            for (int64_t j = 0; j < k; j++) acc += w[t * k + j] * e[(t * k + j) * width + i];
            out[t * width + i] += acc;
        }
}

void tnd_cpu_sigmoid_scale(tnd_backend *b, const tnd_tensor *y, const tnd_tensor *g) {
    float *out = f32(y);
    const float *gate = f32(g);
    for (int64_t t = 0; t < y->ne1; t++) {
        float s = 1.0f / (1.0f + expf(-gate[t]));
        for (int64_t i = 0; i < y->ne0; i++) out[t * y->ne0 + i] *= s;
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * The experts' matmuls. A pair is (token t, slot j), numbered t * n_used + j; `sorted` lists the pairs grouped by
 * expert (in pair order within an expert), expert e's from first[e] to first[e + 1].
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct experts_job {
    int n;                /* weights of one input, with experts of as many rows */
    const tnd_weight *const *w;
    const tnd_cpu_dot *k[TND_MAX_FUSED]; /* their kernels, which convert their input alike */
    const float *x;
    int64_t n_cols;
    bool per_slot;        /* x has a row per pair (else per token) */
    int32_t n_used;
    int64_t n_pairs;
    int64_t rows;         /* rows of one expert */
    const int32_t *ids;   /* [n_pairs] */
    const int32_t *sorted, *active; /* [n_chosen] pairs by expert; [n_active] the experts with pairs */
    int64_t n_chosen;     /* the pairs with an expert (an id of -1 skips its pair) */
    const int64_t *first; /* [n_experts + 1] */
    int64_t active_rows;  /* n_active * rows: the rows of one weight's chosen experts */
    uint8_t *inputs;      /* [rows of x][act_row]: x converted, each row once */
    uint8_t *act;         /* [n_pairs][act_row]: sorted pair q's converted input, copied from `inputs` */
    size_t act_row;
    float *y_sorted;      /* [n][n_pairs][rows]: sorted pair q's outputs */
    float *y[TND_MAX_FUSED]; /* [n_pairs][rows]: the op's outputs */
} experts_job;

/* The row of x a pair multiplies. */
static int64_t input_of(const experts_job *j, int64_t pair) { return j->per_slot ? pair : pair / j->n_used; }

static void experts_ref(void *ctx, int64_t p0, int64_t p1) {
    const experts_job *j = ctx;
    for (int i = 0; i < j->n; i++)
        for (int64_t p = p0; p < p1; p++)
            if (j->ids[p] < 0)
                memset(j->y[i] + p * j->rows, 0, sizeof(float) * (size_t)j->rows);
            else
                tnd_cpu_product_rows_ref(j->w[i], (int64_t)j->ids[p] * j->rows, j->x + input_of(j, p) * j->n_cols, 1,
                                     j->y[i] + p * j->rows, (size_t)j->rows, 0, j->rows);
}

/* Rows of x converted once each (a token's gate and up input serves all its experts), then copied to the pairs. */
static void experts_convert(void *ctx, int64_t r0, int64_t r1) {
    const experts_job *j = ctx;
    for (int64_t r = r0; r < r1; r++)
        j->k[0]->quantize_act(j->x + r * j->n_cols, j->inputs + (size_t)r * j->act_row, j->n_cols);
}

/* Rows [v0, v1) of the weights' chosen experts laid end to end (weight by weight, expert by expert): each piece
 * within one expert is one product. */
static void experts_rows(void *ctx, int64_t v0, int64_t v1) {
    const experts_job *j = ctx;
    while (v0 < v1) {
        int64_t i = v0 / j->active_rows, v = v0 % j->active_rows;
        int32_t e = j->active[v / j->rows];
        int64_t r0 = v % j->rows, r1 = r0 + (v1 - v0) < j->rows ? r0 + (v1 - v0) : j->rows;
        tnd_cpu_product p = {.w = j->w[i], .k = j->k[i], .row0 = (int64_t)e * j->rows,
                             .act = j->act + (size_t)j->first[e] * j->act_row, .act_row = j->act_row,
                             .n_tokens = j->first[e + 1] - j->first[e],
                             .y = j->y_sorted + (i * j->n_pairs + j->first[e]) * j->rows, .ldy = (size_t)j->rows};
        tnd_cpu_product_rows(&p, r0, r1);
        v0 += r1 - r0;
    }
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* The scratch of a step's experts' matmul, grown when a larger one comes (kept: steps repeat their sizes). */
static uint8_t *experts_scratch(tnd_backend *b, size_t bytes) {
    cpu_device *d = dev(b);
    if (bytes <= d->experts_cap) return d->experts;
    tnd_free(&d->allocator, d->experts);
    d->experts = tnd_alloc(&d->allocator, bytes);
    d->experts_cap = d->experts ? bytes : 0;
    return d->experts;
}

/* Groups the pairs that have an expert by expert (a counting sort): sorted, first, n_chosen and the active experts;
 * returns their count. */
static int32_t sort_pairs(experts_job *j, int32_t n_experts, int32_t *sorted, int64_t *first, int32_t *active) {
    memset(first, 0, sizeof(int64_t) * (size_t)(n_experts + 1));
    for (int64_t p = 0; p < j->n_pairs; p++)
        if (j->ids[p] >= 0) first[j->ids[p] + 1]++;
    int32_t n_active = 0;
    for (int32_t e = 0; e < n_experts; e++) {
        if (first[e + 1]) active[n_active++] = e;
        first[e + 1] += first[e];
    }
    for (int64_t p = 0; p < j->n_pairs; p++)
        if (j->ids[p] >= 0) sorted[first[j->ids[p]]++] = (int32_t)p; /* first[e] walks up */
    j->n_chosen = first[n_experts - 1];
    for (int32_t e = n_experts; e > 0; e--) first[e] = first[e - 1];
    first[0] = 0;
    j->sorted = sorted;
    j->first = first;
    j->active = active;
    return n_active;
}

/* The n weights' experts (same input conversion, same experts and rows) as one job. */
static void experts_run(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *xv,
                        const tnd_tensor *idv, const tnd_tensor *const *yv) {
    cpu_device *d = dev(b);
    int32_t n_experts = w[0]->n_experts;
    int64_t n_pairs = idv->ne0 * idv->ne1, rows = w[0]->n_rows / n_experts;
    if (!n_pairs) return;
    experts_job j = {.n = n, .w = w, .x = f32(xv), .n_cols = w[0]->n_cols, .per_slot = xv->ne1 == n_pairs,
                     .n_used = (int32_t)idv->ne0, .n_pairs = n_pairs, .rows = rows, .ids = i32(idv)};
    for (int i = 0; i < n; i++) {
        j.k[i] = &d->kernels.dot[w[i]->type];
        j.y[i] = f32(yv[i]);
    }
    for (int64_t p = 0; p < n_pairs; p++)
        if (j.ids[p] < -1 || j.ids[p] >= n_experts) {
            char message[96];
            snprintf(message, sizeof message, "expert %d chosen, but the layer has %d experts", j.ids[p], n_experts);
            tnd_cpu_op_failed(b, TND_ERR_INVALID_ARGUMENT, message);
            return;
        }
    if (tnd_cpu_reference_path(d, w[0])) {
        tnd_thread_pool *pool = n * n_pairs * rows * j.n_cols < TND_CPU_PARALLEL_MIN ? NULL : d->pool;
        tnd_thread_pool_for(pool, n_pairs, 1, experts_ref, &j);
        return;
    }
    j.act_row = tnd_cpu_act_bytes(j.k[0], j.n_cols);
    size_t sorted_bytes = align64(sizeof(int32_t) * (size_t)(n_pairs + n_experts)),
           first_bytes = align64(sizeof(int64_t) * (size_t)(n_experts + 1)),
           inputs_bytes = align64(j.act_row * (size_t)xv->ne1), act_bytes = align64(j.act_row * (size_t)n_pairs);
    size_t y_bytes = sizeof(float) * (size_t)(n * n_pairs * rows);
    uint8_t *scratch = experts_scratch(b, sorted_bytes + first_bytes + inputs_bytes + act_bytes + y_bytes);
    if (!scratch) {
        tnd_cpu_op_failed(b, TND_ERR_OUT_OF_MEMORY, "no memory for the scratch of the experts' matmuls");
        return;
    }
    int32_t *sorted = (int32_t *)(void *)scratch;
    j.inputs = scratch + sorted_bytes + first_bytes;
    j.act = j.inputs + inputs_bytes;
    j.y_sorted = (float *)(void *)(j.act + act_bytes);
    int32_t n_active = sort_pairs(&j, n_experts, sorted, (int64_t *)(void *)(scratch + sorted_bytes), sorted + n_pairs);
    for (int i = 0; i < n; i++) /* the skipped pairs' rows */
        for (int64_t p = 0; p < n_pairs; p++)
            if (j.ids[p] < 0) memset(j.y[i] + (size_t)p * (size_t)rows, 0, sizeof(float) * (size_t)rows);
    if (!n_active) return;
    j.active_rows = (int64_t)n_active * rows;
    int64_t all_rows = n * j.active_rows;
    tnd_thread_pool *pool = all_rows * j.n_cols * (j.n_chosen / n_active) < TND_CPU_PARALLEL_MIN ? NULL : d->pool;
    tnd_thread_pool_for(xv->ne1 * j.n_cols < TND_CPU_PARALLEL_MIN ? NULL : pool, xv->ne1, 1, experts_convert, &j);
    for (int64_t q = 0; q < j.n_chosen; q++)
        memcpy(j.act + (size_t)q * j.act_row, j.inputs + (size_t)input_of(&j, sorted[q]) * j.act_row, j.act_row);
    tnd_thread_pool_for_split(pool, all_rows, tnd_cpu_row_unit(w[0]->row_bytes), experts_rows, &j);
    for (int i = 0; i < n; i++) {
        for (int64_t q = 0; q < j.n_chosen; q++)
            memcpy(j.y[i] + (size_t)sorted[q] * (size_t)rows, j.y_sorted + (size_t)(i * n_pairs + q) * (size_t)rows,
                   sizeof(float) * (size_t)rows);
        d->prof.matmul_bytes += (uint64_t)j.active_rows * (uint64_t)w[i]->row_bytes;
    }
}

/* One group of the experts' matmuls: ctx holds the input and the ids. */
static void experts_group(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *const *y, void *ctx) {
    const tnd_tensor *const *inputs = ctx;
    experts_run(b, n, w, inputs[0], inputs[1], y);
}

/* Whether two expert weights can be one job: the same input conversion and the same experts of as many rows. */
static bool same_experts(const cpu_device *d, const tnd_weight *a, const tnd_weight *b) {
    return tnd_cpu_same_input(d, a, b) && a->n_experts == b->n_experts && a->n_rows == b->n_rows;
}

/* The experts' matmuls, those that can be one job together, timed for the profile (the bytes are those of the
 * experts a step used). */
void tnd_cpu_matmul_experts(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *x,
                            const tnd_tensor *ids, const tnd_tensor *const *y) {
    double t0 = seconds_now();
    const tnd_tensor *inputs[2] = {x, ids};
    tnd_cpu_for_groups(b, n, w, y, same_experts, experts_group, inputs);
    dev(b)->prof.matmul_seconds += seconds_now() - t0;
}
