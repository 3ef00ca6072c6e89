/* plan.h: the placement options of every command that makes a context (--device, -ngl, --override-tensor, --plan),
 * the plan they give and the plan file. */
#ifndef TND_CLI_PLAN_H
#define TND_CLI_PLAN_H

#include "tandem.h"

#include <stdbool.h>
#include <stdio.h>

enum {
    CLI_MAX_OVERRIDES = 32,
    CLI_PRIVATE_LAYERS = 4 /* with --device remote:HOST:PORT alone: layers kept here at each end (or an eighth) */
};

typedef struct cli_plan_options {
    const char *devices;     /* --device LIST: "cpu" (default), "vulkan0", "cpu,cpu" for two CPU instances */
    int32_t n_gpu_layers;    /* -ngl N; -1 when not given */
    const char *overrides[CLI_MAX_OVERRIDES]; /* --override-tensor REGEX=DEVICE, in order */
    int32_t n_overrides;
    const char *plan_file;   /* --plan FILE.json */
    const char *remote_key;  /* --remote-key FILE: the key of a cloud device (remote:HOST:PORT in --device) */
    bool insecure;           /* --insecure: a plaintext link to the cloud */
    const char *fallback_model; /* --fallback-model FILE: what runs here when the cloud link dies (NULL: the model) */
    bool no_follow;          /* --no-follow: no stand-in, nothing follows the conversation */
    int32_t n_cpu_moe;       /* --cpu-moe (all: INT32_MAX) or --n-cpu-moe N: the first layers whose experts stay on
                                the CPU */
    const char *experts_on;  /* --experts-on DEVICE: the experts live there, apart from their group (NULL: with it) */
    int32_t expert_cache;    /* --expert-cache N: slots per layer of the hot-expert cache (0: none) */
    int32_t expert_policy;   /* --expert-cache-policy lfu|lru */
} cli_plan_options;

void cli_plan_defaults(cli_plan_options *o);

/* Parses the placement option argv[*i] (and its value): 1 if it was one (advancing *i), 0 if not, -1 after
 * printing an error. */
int cli_plan_parse(cli_plan_options *o, int argc, char **argv, int *i);

/* Usage lines of the placement options. */
void cli_plan_usage(FILE *f);

/* The plan for model m into p (n_devices, device_kinds, group_device, n_groups, and a cloud's remote and key): from --plan, else from -ngl, else
 * the layers split evenly over the --device list, then --cpu-moe / --n-cpu-moe, then each --override-tensor in
 * order. *groups receives the one malloc'ed array that p's group_device and device_kinds point into (the caller
 * frees it). Prints the error and returns false on failure. */
bool cli_plan_make(const cli_plan_options *o, tnd_model *m, tnd_context_params *p, int32_t **groups);

/* After a context of plan p failed: where the plan was the automatic one and put work on a GPU, or gave layers to a
 * cloud (this machine holds the whole model file), notes why and turns p into the CPU-only plan (true: try again);
 * false where the user chose local devices. */
bool cli_plan_fell_back(const cli_plan_options *o, tnd_context_params *p);

/* The bytes of layer il's three stacked expert tensors as the file has them, and its experts' count in *n_experts
 * (0 and 0 for a layer without experts). */
uint64_t cli_layer_experts_bytes(tnd_model *m, int32_t il, int64_t *n_experts);

/* The name of plan p's device d: "cpu0", "cpu1", ... for the CPU instances in order, "vulkan0", ... */
void cli_device_name(const tnd_context_params *p, int32_t d, char *buf, size_t cap);

/* Writes the plan file of p (devices and the device of each group by name) to f. */
bool cli_plan_write(FILE *f, tnd_model *m, const tnd_context_params *p);

#endif
