/* remote.h: a device and a cloud server running one model together over the link of link.h (docs/REMOTE.md). The
 * cloud holds the model itself and runs the stages (whole layers) the device's plan gives it, keeping their KV cache
 * in pools that mirror the device's; the device's remote device sends each step's hidden states and gets them back,
 * one round trip per stage. */
#ifndef TND_REMOTE_REMOTE_H
#define TND_REMOTE_REMOTE_H

#include "backend/backend.h"
#include "remote/link.h"

/* The identity both sides check: SHA-256 over every tensor's name, type, shape and its first and last 4 KiB. */
tnd_status tnd_model_id(const tnd_model *m, uint8_t id[TND_WIRE_MODEL_ID_BYTES]);

/* What a device asks of a cloud: where it is, the key (NULL: plaintext), the KV cache the cloud mirrors, and the
 * deadline of the handshake. */
typedef struct tnd_remote_params {
    const char *host_port;
    const tnd_link_key *key;
    tnd_type k_type, v_type;
    int32_t block_size, n_blocks; /* the device's KV pools */
    int32_t n_batch;
    int32_t connect_timeout_ms;   /* the deadline of connecting and the handshake (0: 30 s) */
} tnd_remote_params;

/* A remote device connected to the cloud for model m (HELLO, WELCOME). TND_ERR_IO (no link; the message says why),
 * TND_ERR_UNSUPPORTED (the cloud holds another model or speaks another version). */
tnd_status tnd_remote_device_init(const tnd_model *m, const tnd_remote_params *p, const char *name, tnd_backend **out);

/* Serves model m to devices on `listener`, one link after another, with n_threads threads (stage by stage on the
 * CPU), until max_links links were served (0: for ever) or a link fails in a way that stops the server. Each link's
 * end (BYE, an error it sent, a dead peer) is logged and the next link is accepted. */
tnd_status tnd_cloud_serve(tnd_model *m, tnd_listener *listener, const tnd_link_key *key, int32_t n_threads,
                           int32_t max_links);

#endif
