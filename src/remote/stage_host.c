/* stage_host.c: what a context that runs a device's stages does with the device's messages (see remote.h): the cloud
 * for every device it serves, and the device's own stand-in for its cloud. */
#include "remote/remote.h"

#include "core/error.h"
#include "runtime/context.h"

#include <stdlib.h>
#include <string.h>

enum { MAX_STEP_SEQUENCES = 32 /* sequences in one device's step: its block tables' room */ };

tnd_status tnd_stage_step_alloc(tnd_stage_step *s, uint32_t n_batch, uint32_t n_blocks, uint32_t block_size,
                                int32_t n_embd) {
    memset(s, 0, sizeof *s);
    size_t n = n_batch, e = (size_t)n_embd;
    s->n_batch = n_batch, s->n_blocks = n_blocks, s->block_size = block_size, s->n_embd = n_embd;
    s->max_table_words = n_blocks * MAX_STEP_SEQUENCES;
    s->pos = calloc(n, sizeof *s->pos), s->slot = calloc(n, sizeof *s->slot), s->n_ctx = calloc(n, sizeof *s->n_ctx);
    s->table_at = calloc(n, sizeof *s->table_at), s->tables = calloc(s->max_table_words, sizeof *s->tables);
    s->pos32 = calloc(n, sizeof *s->pos32), s->n_ctx32 = calloc(n, sizeof *s->n_ctx32);
    s->tables32 = calloc(s->max_table_words, sizeof *s->tables32), s->slots64 = calloc(n, sizeof *s->slots64);
    s->table_of = calloc(n, sizeof *s->table_of);
    s->hidden = calloc(n * e, sizeof *s->hidden);
    if (!s->pos || !s->slot || !s->n_ctx || !s->table_at || !s->tables || !s->pos32 || !s->n_ctx32 || !s->tables32 ||
        !s->slots64 || !s->table_of || !s->hidden)
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for a device's step of %u tokens", n_batch);
    return TND_OK;
}

void tnd_stage_step_free(tnd_stage_step *s) {
    void *bufs[] = {s->pos,     s->slot,    s->n_ctx,   s->table_at, s->tables, s->pos32,
                    s->n_ctx32, s->tables32, s->slots64, s->table_of, s->hidden};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    memset(s, 0, sizeof *s);
}

tnd_status tnd_stage_step_read(tnd_stage_step *s, const uint8_t *payload, uint32_t length, int32_t n_layer,
                               int64_t base) {
    tnd_wire_step w = {.pos = s->pos, .slot = s->slot, .n_ctx = s->n_ctx, .table_at = s->table_at,
                       .tables = s->tables, .hidden = s->hidden};
    tnd_wire_reader r = {.data = payload, .len = length};
    tnd_status st = tnd_wire_get_step(&r, s->n_batch, (uint32_t)s->n_embd, s->max_table_words, s->block_size, &w);
    if (st) return st;
    /* whole layers, between the embedding and the output head, which stay on the device */
    uint32_t out_group = (uint32_t)tnd_group_output(n_layer);
    if (w.group_begin < 1 || w.group_end > out_group || w.group_begin % 2 == 0 || w.group_end % 2 == 0)
        return tnd_fail(TND_ERR_FORMAT, "STEP: groups [%u, %u) are not whole layers of this model's %d",
                        w.group_begin, w.group_end, n_layer);
    for (uint32_t i = 0; i < w.n_table_words; i++) { /* its own blocks only: the others are other devices' */
        if (s->tables[i] >= s->n_blocks) return tnd_fail(TND_ERR_FORMAT, "STEP: block %u of %u", s->tables[i], s->n_blocks);
        s->tables32[i] = (int32_t)(base + s->tables[i]);
    }
    for (uint32_t t = 0; t < w.n_tokens; t++) { /* (the slot is its position's in its table: checked by decoding) */
        s->pos32[t] = (int32_t)s->pos[t];
        s->n_ctx32[t] = (int32_t)s->n_ctx[t];
        s->slots64[t] = base * s->block_size + s->slot[t];
        s->table_of[t] = s->tables32 + s->table_at[t];
    }
    s->n_tokens = w.n_tokens;
    s->group_begin = (int32_t)w.group_begin;
    s->group_end = (int32_t)w.group_end;
    return TND_OK;
}

tnd_status tnd_stage_step_run(tnd_context *ctx, tnd_stage_step *s) {
    tnd_step step = {.n_tokens = (int32_t)s->n_tokens, .pos = s->pos32, .slots = s->slots64,
                     .block_tables = s->table_of, .n_ctx = s->n_ctx32, .block_size = (int32_t)s->block_size};
    return tnd_forward_run_stage(&ctx->fw, &step, s->group_begin, s->group_end, s->hidden);
}

tnd_status tnd_stage_copy_blocks(tnd_context *ctx, const int32_t *src, const int32_t *dst, uint32_t n) {
    for (int32_t l = 0; l < ctx->kv.n_layer; l++) { /* each layer's pools on its device */
        tnd_backend *d = ctx->kv.layer_device[l];
        d->vt->kv_copy_blocks(d, ctx->kv.k_pool[l], ctx->kv.k_block_bytes, src, dst, (int32_t)n);
        d->vt->kv_copy_blocks(d, ctx->kv.v_pool[l], ctx->kv.v_block_bytes, src, dst, (int32_t)n);
    }
    tnd_status st = TND_OK;
    for (int32_t d = 0; d < ctx->fw.n_devices && !st; d++) st = ctx->fw.devices[d]->vt->synchronize(ctx->fw.devices[d]);
    return st;
}
