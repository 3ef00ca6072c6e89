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

/* What a device asks of a cloud: where it is, the key (NULL: plaintext), the KV cache the cloud mirrors, the
 * deadline of the handshake, and whether to keep a stand-in of the cloud's part here (below). */
typedef struct tnd_remote_params {
    const char *host_port;
    const tnd_link_key *key;
    tnd_type k_type, v_type;
    int32_t block_size, n_blocks; /* the device's KV pools */
    int32_t n_batch;
    int32_t connect_timeout_ms;   /* the deadline of connecting and the handshake (0: 30 s) */
    tnd_model *stand_in;          /* NULL, or the device's model, of which a stand-in runs the cloud's layers too */
    int32_t n_threads;            /* the stand-in's (0: physical cores) */
    const int32_t *group_device;  /* the stand-in's: the device's plan (n_groups entries) and the cloud's index in */
    int32_t n_groups, index;      /* it, so that it holds the groups the cloud runs and nothing else */
} tnd_remote_params;

/* A remote device connected to the cloud for model m (HELLO, WELCOME). TND_ERR_IO (no link; the message says why),
 * TND_ERR_UNSUPPORTED (the cloud holds another model or speaks another version). */
tnd_status tnd_remote_device_init(const tnd_model *m, const tnd_remote_params *p, const char *name, tnd_backend **out);

/* Whether a remote device's cloud link was lost and its stand-in runs the cloud's layers now; why says what happened
 * (the loss, and how long the stand-in took to catch up). */
bool tnd_remote_device_taken_over(tnd_backend *b, char *why, size_t cap);

/* ------------------------------------------------------------------------------------------------------------
 * A device's stages run on a context here (stage_host.c): what the cloud does for every device it serves, and the
 * stand-in for its own device.
 * ---------------------------------------------------------------------------------------------------------- */

/* A device's STEP, decoded: the wire's arrays, and the same in the numbering of the context that runs it (a
 * device's block b is block base + b there). */
typedef struct tnd_stage_step {
    uint32_t n_batch, n_blocks, block_size, max_table_words;
    int32_t n_embd;
    uint32_t *pos, *slot, *n_ctx, *table_at, *tables; /* as the wire has them */
    int32_t *pos32, *n_ctx32, *tables32;
    int64_t *slots64;
    const int32_t **table_of; /* [n_batch]: each token's block table in tables32 */
    float *hidden;            /* [n_batch][n_embd]: the states in, then the stage's result */
    uint32_t n_tokens;
    int32_t group_begin, group_end;
} tnd_stage_step;

/* Room for steps of up to n_batch tokens of a device whose pools hold n_blocks blocks of block_size positions. */
tnd_status tnd_stage_step_alloc(tnd_stage_step *s, uint32_t n_batch, uint32_t n_blocks, uint32_t block_size,
                                int32_t n_embd);
void tnd_stage_step_free(tnd_stage_step *s);

/* Decodes and checks a STEP's payload: whole layers of a model of n_layer, block numbers within the device's. */
tnd_status tnd_stage_step_read(tnd_stage_step *s, const uint8_t *payload, uint32_t length, int32_t n_layer,
                               int64_t base);

/* Runs the step's stage on ctx (every group on its device 0), the result into s->hidden. */
tnd_status tnd_stage_step_run(tnd_context *ctx, tnd_stage_step *s);

/* COPY_BLOCKS: src[i] copied to dst[i] in every layer's K and V pools of ctx. */
tnd_status tnd_stage_copy_blocks(tnd_context *ctx, const int32_t *src, const int32_t *dst, uint32_t n);

/* ------------------------------------------------------------------------------------------------------------
 * The stand-in (stand_in.c): the cloud's part of a device's model, kept on the device too, so that the device's
 * steps go on when the link dies.
 *
 * It logs every message the device sends the cloud (STEP, COPY_BLOCKS). A thread makes a context like the cloud's
 * (the cloud's layers on this CPU, the rest on a device that holds nothing; KV pools in the device's geometry) and
 * replays there, at the lowest scheduling priority and
 * on one thread, each message the cloud has answered: the stand-in's KV rows for the cloud's layers follow the
 * cloud's, in the time the device waits for the cloud. At a loss it takes over: it replays what is left with all the
 * threads, then answers each stage itself. It gives up (and a loss is then the device's, as without it) where its
 * context cannot be made, a replay fails, or it falls more than TND_STAND_IN_LOG_LIMIT bytes of messages behind
 * (TANDEM_STAND_IN_LOG_LIMIT=BYTES, a testing aid, sets another limit).
 * ---------------------------------------------------------------------------------------------------------- */

#define TND_STAND_IN_LOG_LIMIT ((size_t)256 << 20)

typedef struct tnd_stand_in tnd_stand_in;

/* A stand-in for the cloud of a device of params p, whose model is p->stand_in, n_embd wide: a context that holds the
 * groups p->group_device gives the cloud (the rest on a device that holds nothing). Its thread starts with the first
 * message logged. */
tnd_status tnd_stand_in_open(const tnd_remote_params *p, int32_t n_embd, tnd_stand_in **out);
void tnd_stand_in_close(tnd_stand_in *s);

/* Logs a message the device hands the cloud; returns its serial (from 1), or 0 where the stand-in gave up. */
uint64_t tnd_stand_in_log(tnd_stand_in *s, tnd_wire_type type, const uint8_t *payload, uint32_t length);

/* The cloud answered the messages up to `serial`: the thread may replay them. */
void tnd_stand_in_confirm(tnd_stand_in *s, uint64_t serial);

/* Takes over at a loss: waits for the thread (for the rest of the context's making, or the message it replays),
 * then replays every answered message left. Fails, saying why, where the stand-in gave up. */
tnd_status tnd_stand_in_take_over(tnd_stand_in *s);

/* After the take-over: replays the logged messages in order up to the next STEP, whose result goes into x
 * ([its n_tokens][n_embd]). */
tnd_status tnd_stand_in_answer(tnd_stand_in *s, float *x);

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
