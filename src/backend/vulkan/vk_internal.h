/* vk_internal.h: the Vulkan device's state, shared by vk_device.c (instance, memory, the command stream) and
 * vk_ops.c (the ops as compute dispatches). */
#ifndef TND_BACKEND_VULKAN_VK_INTERNAL_H
#define TND_BACKEND_VULKAN_VK_INTERNAL_H

#include "backend/backend.h"
#include "backend/vulkan/vk_api.h"
#include "core/error.h"
#include "vk_spirv.h"

#include <stdbool.h>

/* The shaders, one enum value each, in the order of tnd_vk_spirv[]. */
#define TND_VK_ENUM(name) VK_SHADER_##name,
typedef enum vk_shader { TND_VK_SHADER_LIST(TND_VK_ENUM) VK_SHADER_COUNT } vk_shader;
#undef TND_VK_ENUM

enum {
    VK_BINDINGS = 5,      /* storage buffers of every pipeline (a shader uses the first few) */
    VK_PUSH_BYTES = 128,  /* push constants of every pipeline: the minimum every device offers */
    VK_SETS_PER_POOL = 1024,
    VK_Q8_WORDS = 11      /* words of an activation block of 32 in 8 bits: levels, scale, half sums (q8.glsl) */
};

struct tnd_buffer {
    VkBuffer buffer;
    VkDeviceMemory memory;
    VkDeviceSize size;
    uint8_t *mapped; /* host address of the memory where it is host-visible, else NULL (copied through staging) */
};

typedef struct vk_device {
    tnd_backend base;
    tnd_allocator allocator;
    tnd_vk_api api;
    VkInstance instance;
    VkPhysicalDevice physical;
    VkDevice device;
    VkQueue queue;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties memory_props;
    uint32_t subgroup_size;
    bool int8;          /* quantized matmuls multiply 8-bit levels by 8-bit activations (integer dot products) */
    tnd_buffer *xq;     /* the activations as 8-bit blocks (quantize_q8.comp), for xq_rows rows of xq_blocks */
    size_t xq_blocks, xq_rows;
    uint32_t device_memory_type, host_memory_type; /* memory types of buffers and of staging */
    bool device_memory_mapped;                     /* buffers are host-visible: read and write map them */
    uint64_t allocated;                            /* bytes of buffers alive */

    VkCommandPool command_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    bool recording; /* cmd is open and holds work not yet submitted */
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout pipeline_layout;
    VkDescriptorPool descriptor_pool;
    uint32_t sets_used;
    VkPipeline pipelines[VK_SHADER_COUNT]; /* made at first use */

    /* The arena: a host-visible buffer for the step's metadata (from begin_step, words [0, arena_fixed)) and the
     * rows embed decodes (after it, until the next submission). */
    tnd_buffer *arena;
    size_t arena_fixed, arena_used;
    uint32_t n_step; /* the step's token count (its metadata starts the arena) */
    uint32_t block_size;       /* the step's KV block size */
    tnd_buffer *staging;       /* host-visible bounce buffer for devices whose memory is not */

    tnd_status failure; /* the first failure since the last synchronize */
    char message[256];
} vk_device;

static inline vk_device *vk_dev(tnd_backend *b) { return (vk_device *)b->impl; }

/* Records the first failure of the step (later ones are consequences). */
void tnd_vk_failed(vk_device *d, tnd_status st, const char *fmt, ...) TND_PRINTF(3, 4);

/* Records a compute dispatch of `shader` over groups (x, y, z) with the buffers bound in order (NULL entries bind
 * the first buffer again) and `push` as push constants, followed by a barrier so the next op sees its writes. */
void tnd_vk_dispatch(vk_device *d, vk_shader shader, tnd_buffer *const *bufs, int n_bufs,
                     const void *push, size_t push_bytes, uint32_t x, uint32_t y, uint32_t z);

/* Room for `bytes` in the arena until the next submission: its host address (NULL on failure, recorded) and its
 * word offset. */
void *tnd_vk_arena_reserve(vk_device *d, size_t bytes, uint32_t *word_off);

/* Records buffer-to-buffer copies, then a barrier. */
void tnd_vk_copy(vk_device *d, tnd_buffer *src, tnd_buffer *dst, const VkBufferCopy *regions, uint32_t n);

/* The vtable (vk_ops.c), whose device entries are these of vk_device.c. */
extern const tnd_backend_vtable tnd_vk_vtable;
void tnd_vk_destroy(tnd_backend *b);
void tnd_vk_memory(tnd_backend *b, uint64_t *total, uint64_t *available);
uint64_t tnd_vk_max_buffer(tnd_backend *b);
double tnd_vk_measure_bandwidth(tnd_backend *b);
void tnd_vk_describe(tnd_backend *b, char *buf, size_t cap);
tnd_buffer *tnd_vk_alloc(tnd_backend *b, size_t bytes);
void tnd_vk_free(tnd_backend *b, tnd_buffer *buf);
void tnd_vk_write(tnd_backend *b, tnd_buffer *dst, size_t offset, const void *host_src, size_t bytes);
void tnd_vk_read(tnd_backend *b, void *host_dst, const tnd_buffer *src, size_t offset, size_t bytes);
void tnd_vk_begin_step(tnd_backend *b, const tnd_step *step);
tnd_status tnd_vk_synchronize(tnd_backend *b);

#endif
