/* placement.h: where a context's tensor groups live. The plan (which device holds each group) comes from the
 * context params; from it follow the stages of the forward pass, the devices' views and copies of every group's
 * tensors, their activation buffers, and the device of each layer's KV cache. */
#ifndef TND_RUNTIME_PLACEMENT_H
#define TND_RUNTIME_PLACEMENT_H

#include "model/forward.h"
#include "model/model.h"

/* Fills group_device[tnd_group_count(n_layer)] from the params: their group_device, else layers_per_device, else
 * an even split of the layers over n_devices (the embedding on the first device, the output on the last).
 * TND_ERR_INVALID_ARGUMENT names what is wrong (a count that does not add up, a device out of range, a device that
 * holds no group). */
tnd_status tnd_plan_groups(const tnd_hparams *hp, const tnd_context_params *p, int32_t *group_device);

/* With fw's devices, hparams and group_device set: checks that each device supports the groups it holds, makes the
 * stages, prepares every group's tensors on its device (the file's pages of a weight a device copied are released),
 * and allocates each device's activations for n_batch tokens; `progress` (may be NULL) hears of each group. Undone
 * by tnd_forward_release (also after a failure). */
tnd_status tnd_forward_setup(tnd_forward *fw, tnd_model *model, const tnd_bound_model *bm, int32_t n_batch,
                             const tnd_allocator *allocator, tnd_progress_fn progress, void *progress_user);
void tnd_forward_release(tnd_forward *fw, const tnd_allocator *allocator);

/* Whether the plan fits the devices' available memory (tnd_backend memory()): the weights the devices copy, the KV
 * cache of n_ctx tokens of their layers and their activations for n_batch tokens; devices that report the same
 * memory add up. TND_ERR_OUT_OF_MEMORY with one message that says what needs how much and what to change. */
tnd_status tnd_plan_check_memory(const tnd_forward *fw, const tnd_bound_model *bm, int32_t n_ctx, int32_t n_batch);

/* Bytes of weights of group g of a bound model as stored in the file. */
uint64_t tnd_group_weight_bytes(const tnd_bound_model *bm, int32_t g);
/* The bytes of group g's weights one token reads (tnd_group_info's active_bytes), added by type into by_type where
 * it is not NULL. */
uint64_t tnd_group_active_bytes(const tnd_bound_model *bm, int32_t g, uint64_t by_type[TND_TYPE_COUNT]);
/* The bytes of group g's largest tensor (for a device's binding limit). */
uint64_t tnd_group_largest_tensor(const tnd_bound_model *bm, int32_t g);

#endif
