/* model_id.c: the identity both sides of a cloud link check before serving (see remote.h). */
#include "remote/remote.h"

#include "core/error.h"
#include "model/model.h"

#include <gnutls/crypto.h>
#include <string.h>

enum { SAMPLE_BYTES = 4096 };

tnd_status tnd_model_id(const tnd_model *m, uint8_t id[TND_WIRE_MODEL_ID_BYTES]) {
    gnutls_hash_hd_t h;
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) != 0) return tnd_fail(TND_ERR_INTERNAL, "no SHA-256");
    const tnd_gguf *g = m->gguf;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const tnd_gguf_tensor *t = &g->tensors[i];
        uint32_t type = (uint32_t)t->type;
        gnutls_hash(h, t->name, strlen(t->name) + 1);
        gnutls_hash(h, &type, sizeof type);
        gnutls_hash(h, t->ne, sizeof t->ne);
        /* the first and the last bytes of its data: another quantization or fine-tune of the same shapes differs */
        uint64_t head = t->size < SAMPLE_BYTES ? t->size : SAMPLE_BYTES;
        gnutls_hash(h, t->data, (size_t)head);
        if (t->size > head) gnutls_hash(h, t->data + t->size - head, (size_t)head);
    }
    gnutls_hash_deinit(h, id);
    return TND_OK;
}
