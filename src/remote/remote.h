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

/* How a cloud serves: devices at once, the KV cache it keeps for each (the devices' caches must have its block size
 * and types and fit its context), the most tokens of one batched step, threads, and the links to serve before
 * returning (0: for ever). */
typedef struct tnd_cloud_params {
    int32_t n_devices;        /* devices served at once (default 4); a device beyond them is refused with the reason */
    int32_t n_ctx;            /* KV tokens kept for each device (default 4096) */
    int32_t n_batch;          /* most tokens of one batched step, all devices together (default 512) */
    int32_t block_size;       /* of the KV cache (default 64, as a device's) */
    tnd_type k_type, v_type;  /* of the KV cache (default F16, as a device's) */
    int32_t n_threads;        /* 0: physical cores */
    int32_t max_links;        /* links to serve in all before returning (0: for ever) */
    struct tnd_cloud_stats *stats; /* NULL, or where the counts go (complete when the call returns) */
} tnd_cloud_params;

/* What a cloud did: the devices' steps it served and the batched forward passes they took. */
typedef struct tnd_cloud_stats {
    int64_t device_steps, batched_steps;
    int32_t most_devices;     /* the most devices' steps in one forward pass */
} tnd_cloud_stats;

tnd_cloud_params tnd_cloud_default_params(void);

/* Serves model m to devices on `listener`: up to p->n_devices links at once, each on a thread of its own that
 * receives and checks its messages; the steps waiting from all of them that run the same layers go through those
 * layers in one forward pass on the CPU (continuous batching across devices). Each link's end (BYE, an error it
 * sent, a dead peer) is logged and its slot taken by the next device. Returns after p->max_links links came and
 * went (never for 0), or at once with the reason where the context cannot be made. */
tnd_status tnd_cloud_serve(tnd_model *m, tnd_listener *listener, const tnd_link_key *key, const tnd_cloud_params *p);

#endif
