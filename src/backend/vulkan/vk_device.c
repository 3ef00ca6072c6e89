/* vk_device.c: the Vulkan device: instance and device selection, buffers, the command stream (ops are recorded into
 * one command buffer and submitted at synchronize, or earlier when a read needs their results), and the step's
 * metadata. The ops themselves are in vk_ops.c. */
#include "backend/vulkan/vk_backend.h"
#include "backend/vulkan/vk_internal.h"

#include "backend/step_flat.h"

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a submission may take before the device counts as hung (a lost device reports itself sooner). */
static const uint64_t SUBMIT_TIMEOUT_NS = 120ull * 1000 * 1000 * 1000;
enum { STAGING_BYTES = 8 << 20 };

void tnd_vk_failed(vk_device *d, tnd_status st, const char *fmt, ...) {
    if (d->failure) return;
    d->failure = st;
    int n = snprintf(d->message, sizeof d->message, "%s: ", d->base.name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->message + n, sizeof d->message - (size_t)n, fmt, ap);
    va_end(ap);
}

/* A failure of a Vulkan call as a status: out of memory where the device says so, else an internal failure. */
static tnd_status vk_status(VkResult r) {
    return r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY ? TND_ERR_OUT_OF_MEMORY
                                                                                 : TND_ERR_INTERNAL;
}

/* ------------------------------------------------------------------------------------------------------------
 * Instance and physical devices
 * ---------------------------------------------------------------------------------------------------------- */

static tnd_status create_instance(tnd_vk_api *api, VkInstance *out) {
    *out = VK_NULL_HANDLE;
    tnd_status st = tnd_vk_open(api);
    if (st) return st;
    uint32_t version = VK_API_VERSION_1_0;
    if (api->vkEnumerateInstanceVersion) api->vkEnumerateInstanceVersion(&version);
    if (version < VK_API_VERSION_1_1) {
        tnd_vk_close(api);
        return tnd_fail(TND_ERR_UNSUPPORTED, "the Vulkan loader offers Vulkan %u.%u; tandem needs 1.1",
                        VK_API_VERSION_MAJOR(version), VK_API_VERSION_MINOR(version));
    }
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "tandem",
                             .pEngineName = "tandem", .apiVersion = VK_API_VERSION_1_1};
    VkInstanceCreateInfo info = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    VkResult r = api->vkCreateInstance(&info, NULL, out);
    if (r != VK_SUCCESS) {
        tnd_vk_close(api);
        return tnd_fail(TND_ERR_UNSUPPORTED, "no Vulkan instance (%s): no Vulkan driver on this machine",
                        tnd_vk_result_name(r));
    }
    if ((st = tnd_vk_load_instance(api, *out))) {
        if (api->vkDestroyInstance) api->vkDestroyInstance(*out, NULL);
        tnd_vk_close(api);
    }
    return st;
}

/* Whether tandem can compute on a physical device: Vulkan 1.1, a compute queue (its family into *family), subgroup
 * arithmetic in compute shaders (its subgroup size into *subgroup). */
static bool usable(const tnd_vk_api *api, VkPhysicalDevice pd, uint32_t *family, uint32_t *subgroup) {
    VkPhysicalDeviceProperties props;
    api->vkGetPhysicalDeviceProperties(pd, &props);
    if (props.apiVersion < VK_API_VERSION_1_1) return false;
    VkPhysicalDeviceSubgroupProperties sub = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceProperties2 props2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sub};
    api->vkGetPhysicalDeviceProperties2(pd, &props2);
    if (!(sub.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) ||
        !(sub.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT))
        return false;
    *subgroup = sub.subgroupSize;
    uint32_t n = 0;
    api->vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, NULL);
    VkQueueFamilyProperties families[16];
    if (n > 16) n = 16;
    api->vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, families);
    for (uint32_t i = 0; i < n; i++)
        if (families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
            *family = i;
            return true;
        }
    return false;
}

/* The usable physical devices, up to cap, in the order the driver lists them. */
static uint32_t usable_devices(const tnd_vk_api *api, VkInstance instance, VkPhysicalDevice *out, uint32_t cap) {
    VkPhysicalDevice all[16];
    uint32_t n = 16, found = 0, family, subgroup;
    if (api->vkEnumeratePhysicalDevices(instance, &n, all) < 0) return 0;
    for (uint32_t i = 0; i < n && found < cap; i++)
        if (usable(api, all[i], &family, &subgroup)) out[found++] = all[i];
    return found;
}

int32_t tnd_vulkan_devices(int32_t *is_gpu, int32_t cap) {
    tnd_vk_api api;
    VkInstance instance;
    if (create_instance(&api, &instance)) return 0;
    VkPhysicalDevice pds[16];
    uint32_t n = usable_devices(&api, instance, pds, 16);
    for (uint32_t i = 0; i < n && (int32_t)i < cap && is_gpu; i++) {
        VkPhysicalDeviceProperties props;
        api.vkGetPhysicalDeviceProperties(pds[i], &props);
        is_gpu[i] = props.deviceType != VK_PHYSICAL_DEVICE_TYPE_CPU && props.deviceType != VK_PHYSICAL_DEVICE_TYPE_OTHER;
    }
    api.vkDestroyInstance(instance, NULL);
    tnd_vk_close(&api);
    return (int32_t)n;
}

/* The memory type allowed by `bits` with all of `want`, or UINT32_MAX. */
static uint32_t memory_type(const VkPhysicalDeviceMemoryProperties *mp, uint32_t bits, VkMemoryPropertyFlags want) {
    for (uint32_t i = 0; i < mp->memoryTypeCount; i++)
        if ((bits >> i & 1) && (mp->memoryTypes[i].propertyFlags & want) == want) return i;
    return UINT32_MAX;
}

/* ------------------------------------------------------------------------------------------------------------
 * Buffers
 * ---------------------------------------------------------------------------------------------------------- */

static void destroy_buffer(vk_device *d, tnd_buffer *b) {
    if (!b) return;
    if (b->mapped) d->api.vkUnmapMemory(d->device, b->memory);
    if (b->buffer) d->api.vkDestroyBuffer(d->device, b->buffer, NULL);
    if (b->memory) d->api.vkFreeMemory(d->device, b->memory, NULL);
    tnd_free(&d->allocator, b);
}

/* A buffer of `bytes` in device memory, or host-visible memory (staging, the arena) where `host`. */
static tnd_buffer *create_buffer(vk_device *d, size_t bytes, bool host) {
    bytes = (bytes + 15) & ~(size_t)15; /* shaders read whole words; some read a word past a field's start */
    if (bytes == 0) bytes = 16;
    if (bytes > d->props.limits.maxStorageBufferRange) {
        tnd_fail(TND_ERR_OUT_OF_MEMORY, "%s: a buffer of %zu bytes is larger than the device binds at once (%u)",
                 d->base.name, bytes, d->props.limits.maxStorageBufferRange);
        return NULL;
    }
    tnd_buffer *b = tnd_alloc(&d->allocator, sizeof *b);
    if (!b) return NULL;
    b->size = bytes;
    VkBufferCreateInfo info = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = bytes,
                               .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                        VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                               .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = d->api.vkCreateBuffer(d->device, &info, NULL, &b->buffer);
    VkMemoryRequirements req = {0};
    uint32_t type = UINT32_MAX;
    if (r == VK_SUCCESS) {
        d->api.vkGetBufferMemoryRequirements(d->device, b->buffer, &req);
        uint32_t preferred = host ? d->host_memory_type : d->device_memory_type;
        if (req.memoryTypeBits >> preferred & 1) type = preferred;
        else type = memory_type(&d->memory_props, req.memoryTypeBits,
                                host ? VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT : 0);
        if (type == UINT32_MAX) r = VK_ERROR_FEATURE_NOT_PRESENT;
    }
    if (r == VK_SUCCESS) {
        VkMemoryAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                                      .memoryTypeIndex = type};
        r = d->api.vkAllocateMemory(d->device, &alloc, NULL, &b->memory);
    }
    if (r == VK_SUCCESS) r = d->api.vkBindBufferMemory(d->device, b->buffer, b->memory, 0);
    if (r == VK_SUCCESS &&
        (d->memory_props.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) &&
        (host || d->device_memory_mapped)) {
        void *p = NULL;
        r = d->api.vkMapMemory(d->device, b->memory, 0, VK_WHOLE_SIZE, 0, &p);
        b->mapped = p;
    }
    if (r != VK_SUCCESS) {
        tnd_fail(vk_status(r), "%s: no buffer of %zu bytes (%s)", d->base.name, bytes, tnd_vk_result_name(r));
        destroy_buffer(d, b);
        return NULL;
    }
    return b;
}

/* ------------------------------------------------------------------------------------------------------------
 * The command stream
 * ---------------------------------------------------------------------------------------------------------- */

static bool ensure_recording(vk_device *d) {
    if (d->recording) return true;
    VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                      .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult r = d->api.vkBeginCommandBuffer(d->cmd, &begin);
    if (r != VK_SUCCESS) {
        tnd_vk_failed(d, vk_status(r), "cannot record commands (%s)", tnd_vk_result_name(r));
        return false;
    }
    d->recording = true;
    return true;
}

/* Makes the writes of the ops before visible to the ops, copies and host reads after. */
static void barrier(vk_device *d, VkPipelineStageFlags dst_stages, VkAccessFlags dst_access) {
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = dst_access};
    d->api.vkCmdPipelineBarrier(d->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                                dst_stages, 0, 1, &mb, 0, NULL, 0, NULL);
}

static void op_barrier(vk_device *d) {
    barrier(d, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
            VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                VK_ACCESS_TRANSFER_WRITE_BIT);
}

/* Submits what was recorded and waits for it; the arena's transient part and the descriptor sets are free again. */
static void flush(vk_device *d) {
    if (!d->recording) return;
    d->recording = false;
    barrier(d, VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
    VkResult r = d->api.vkEndCommandBuffer(d->cmd);
    if (r == VK_SUCCESS) {
        VkSubmitInfo submit = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1,
                               .pCommandBuffers = &d->cmd};
        r = d->api.vkQueueSubmit(d->queue, 1, &submit, d->fence);
        if (r == VK_SUCCESS) {
            r = d->api.vkWaitForFences(d->device, 1, &d->fence, VK_TRUE, SUBMIT_TIMEOUT_NS);
            if (r == VK_TIMEOUT) d->api.vkDeviceWaitIdle(d->device);
        }
        d->api.vkResetFences(d->device, 1, &d->fence);
    }
    d->api.vkResetCommandBuffer(d->cmd, 0);
    d->api.vkResetDescriptorPool(d->device, d->descriptor_pool, 0);
    d->sets_used = 0;
    d->arena_used = d->arena_fixed;
    if (r == VK_TIMEOUT)
        tnd_vk_failed(d, TND_ERR_DEVICE_LOST, "the device did not finish its work in %llu s",
                      (unsigned long long)(SUBMIT_TIMEOUT_NS / 1000000000ull));
    else if (r == VK_ERROR_DEVICE_LOST)
        tnd_vk_failed(d, TND_ERR_DEVICE_LOST, "the Vulkan device was lost (a driver reset or a crashed shader)");
    else if (r != VK_SUCCESS)
        tnd_vk_failed(d, vk_status(r), "a submission failed (%s)", tnd_vk_result_name(r));
}

static VkPipeline pipeline(vk_device *d, vk_shader shader) {
    if (d->pipelines[shader]) return d->pipelines[shader];
    const tnd_vk_spirv_code *code = &tnd_vk_spirv[shader];
    VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = code->bytes,
                                   .pCode = code->words};
    VkShaderModule module;
    VkResult r = d->api.vkCreateShaderModule(d->device, &mi, NULL, &module);
    if (r == VK_SUCCESS) {
        VkComputePipelineCreateInfo pi = {
            .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
            .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                      .stage = VK_SHADER_STAGE_COMPUTE_BIT, .module = module, .pName = "main"},
            .layout = d->pipeline_layout};
        r = d->api.vkCreateComputePipelines(d->device, VK_NULL_HANDLE, 1, &pi, NULL, &d->pipelines[shader]);
        d->api.vkDestroyShaderModule(d->device, module, NULL);
    }
    if (r != VK_SUCCESS) {
        d->pipelines[shader] = VK_NULL_HANDLE;
        tnd_vk_failed(d, vk_status(r), "cannot build the shader %s (%s)", code->name, tnd_vk_result_name(r));
    }
    return d->pipelines[shader];
}

void tnd_vk_dispatch(vk_device *d, vk_shader shader, tnd_buffer *const *bufs, int n_bufs,
                     const void *push, size_t push_bytes, uint32_t x, uint32_t y, uint32_t z) {
    if (d->failure || x == 0 || y == 0 || z == 0) return;
    VkPipeline pipe = pipeline(d, shader);
    if (!pipe) return;
    if (d->sets_used == VK_SETS_PER_POOL) flush(d); /* the pool is spent: run what uses it, then reuse it */
    if (!ensure_recording(d)) return;
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                      .descriptorPool = d->descriptor_pool, .descriptorSetCount = 1,
                                      .pSetLayouts = &d->set_layout};
    VkDescriptorSet set;
    VkResult r = d->api.vkAllocateDescriptorSets(d->device, &ai, &set);
    if (r != VK_SUCCESS) {
        tnd_vk_failed(d, vk_status(r), "no descriptor set (%s)", tnd_vk_result_name(r));
        return;
    }
    d->sets_used++;
    VkDescriptorBufferInfo infos[VK_BINDINGS];
    VkWriteDescriptorSet writes[VK_BINDINGS];
    for (int i = 0; i < VK_BINDINGS; i++) {
        const tnd_buffer *b = i < n_bufs && bufs[i] ? bufs[i] : bufs[0];
        infos[i] = (VkDescriptorBufferInfo){.buffer = b->buffer, .offset = 0, .range = VK_WHOLE_SIZE};
        writes[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set,
                                           .dstBinding = (uint32_t)i, .descriptorCount = 1,
                                           .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                           .pBufferInfo = &infos[i]};
    }
    d->api.vkUpdateDescriptorSets(d->device, VK_BINDINGS, writes, 0, NULL);
    d->api.vkCmdBindPipeline(d->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    d->api.vkCmdBindDescriptorSets(d->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, d->pipeline_layout, 0, 1, &set, 0, NULL);
    d->api.vkCmdPushConstants(d->cmd, d->pipeline_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, (uint32_t)push_bytes, push);
    d->api.vkCmdDispatch(d->cmd, x, y, z);
    op_barrier(d);
}

void tnd_vk_copy(vk_device *d, tnd_buffer *src, tnd_buffer *dst, const VkBufferCopy *regions, uint32_t n) {
    if (d->failure || n == 0 || !ensure_recording(d)) return;
    d->api.vkCmdCopyBuffer(d->cmd, src->buffer, dst->buffer, n, regions);
    op_barrier(d);
}

/* ------------------------------------------------------------------------------------------------------------
 * The arena: step metadata and embedding rows, host-written, device-read
 * ---------------------------------------------------------------------------------------------------------- */

/* Room for `bytes` more in the arena: submits what uses its transient part, or grows it (keeping the fixed part). */
static bool arena_room(vk_device *d, size_t bytes) {
    if (d->arena && d->arena_used + bytes <= d->arena->size) return true;
    flush(d);
    if (d->arena && d->arena_used + bytes <= d->arena->size) return true;
    size_t cap = d->arena ? (size_t)d->arena->size : 0;
    while (cap < d->arena_used + bytes) cap = cap ? 2 * cap : 64 << 10;
    tnd_buffer *grown = create_buffer(d, cap, true);
    if (!grown) {
        tnd_vk_failed(d, TND_ERR_OUT_OF_MEMORY, "no host-visible memory for %zu bytes of step data", cap);
        return false;
    }
    if (d->arena) {
        memcpy(grown->mapped, d->arena->mapped, d->arena_fixed);
        destroy_buffer(d, d->arena);
    }
    d->arena = grown;
    return true;
}

void *tnd_vk_arena_reserve(vk_device *d, size_t bytes, uint32_t *word_off) {
    if (!arena_room(d, bytes)) return NULL;
    size_t at = d->arena_used;
    d->arena_used = (at + bytes + 15) & ~(size_t)15;
    *word_off = (uint32_t)(at / 4);
    return d->arena->mapped + at;
}

void tnd_vk_begin_step(tnd_backend *b, const tnd_step *step) {
    vk_device *d = vk_dev(b);
    flush(d); /* the previous step's metadata may still be read */
    d->arena_fixed = d->arena_used = 0;
    uint32_t off = 0, n = (uint32_t)step->n_tokens; /* the metadata starts the arena: off comes back 0 */
    uint32_t *meta = tnd_vk_arena_reserve(d, tnd_step_flat_words(step) * sizeof(uint32_t), &off);
    if (!meta) return;
    tnd_step_flatten(step, meta, 4 * n); /* table offsets: word indices into the arena, as shaders read them */
    d->n_step = n;
    d->block_size = (uint32_t)step->block_size;
    d->arena_fixed = d->arena_used;
}

tnd_status tnd_vk_synchronize(tnd_backend *b) {
    vk_device *d = vk_dev(b);
    flush(d);
    tnd_status st = d->failure;
    d->failure = TND_OK;
    return st ? tnd_fail(st, "%s", d->message) : TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * Memory entries of the vtable
 * ---------------------------------------------------------------------------------------------------------- */

tnd_buffer *tnd_vk_alloc(tnd_backend *b, size_t bytes) {
    vk_device *d = vk_dev(b);
    tnd_buffer *buf = create_buffer(d, bytes, false);
    if (!buf) return NULL;
    d->allocated += buf->size;
    if (buf->mapped) {
        memset(buf->mapped, 0, buf->size);
    } else if (ensure_recording(d)) {
        d->api.vkCmdFillBuffer(d->cmd, buf->buffer, 0, VK_WHOLE_SIZE, 0);
        op_barrier(d);
    }
    return buf;
}

void tnd_vk_free(tnd_backend *b, tnd_buffer *buf) {
    vk_device *d = vk_dev(b);
    if (!buf) return;
    flush(d); /* recorded work may still use it */
    d->allocated -= buf->size;
    destroy_buffer(d, buf);
}

/* Copies between host memory and a buffer through the staging buffer, in pieces of its size. */
static void staged(vk_device *d, tnd_buffer *buf, size_t offset, void *host, size_t bytes, bool to_device) {
    if (!d->staging && !(d->staging = create_buffer(d, STAGING_BYTES, true))) {
        tnd_vk_failed(d, TND_ERR_OUT_OF_MEMORY, "no host-visible memory for staging");
        return;
    }
    for (size_t done = 0; done < bytes && !d->failure;) {
        size_t n = bytes - done < d->staging->size ? bytes - done : (size_t)d->staging->size;
        VkBufferCopy region = {.srcOffset = to_device ? 0 : offset + done, .dstOffset = to_device ? offset + done : 0,
                               .size = n};
        if (to_device) memcpy(d->staging->mapped, (uint8_t *)host + done, n);
        tnd_vk_copy(d, to_device ? d->staging : buf, to_device ? buf : d->staging, &region, 1);
        flush(d);
        if (!to_device && !d->failure) memcpy((uint8_t *)host + done, d->staging->mapped, n);
        done += n;
    }
}

void tnd_vk_write(tnd_backend *b, tnd_buffer *dst, size_t offset, const void *host_src, size_t bytes) {
    vk_device *d = vk_dev(b);
    flush(d); /* ops before the write read the old contents */
    if (dst->mapped) memcpy(dst->mapped + offset, host_src, bytes);
    else staged(d, dst, offset, (void *)(uintptr_t)host_src, bytes, true);
}

void tnd_vk_read(tnd_backend *b, void *host_dst, const tnd_buffer *src, size_t offset, size_t bytes) {
    vk_device *d = vk_dev(b);
    flush(d);
    if (src->mapped) memcpy(host_dst, src->mapped + offset, bytes);
    else staged(d, (tnd_buffer *)(uintptr_t)src, offset, host_dst, bytes, false);
}

uint64_t tnd_vk_max_buffer(tnd_backend *b) { return vk_dev(b)->props.limits.maxStorageBufferRange; }

void tnd_vk_memory(tnd_backend *b, uint64_t *total, uint64_t *available) {
    vk_device *d = vk_dev(b);
    uint64_t largest = 0;
    for (uint32_t i = 0; i < d->memory_props.memoryHeapCount; i++)
        if ((d->memory_props.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
            d->memory_props.memoryHeaps[i].size > largest)
            largest = d->memory_props.memoryHeaps[i].size;
    *total = largest;
    *available = largest > d->allocated ? largest - d->allocated : 0;
}

double tnd_vk_measure_bandwidth(tnd_backend *b) {
    vk_device *d = vk_dev(b);
    size_t bytes = 64u << 20;
    tnd_buffer *src = tnd_vk_alloc(b, bytes), *dst = tnd_vk_alloc(b, bytes);
    double best = 0;
    VkBufferCopy region = {.size = bytes};
    for (int i = 0; i < 4 && src && dst && !d->failure; i++) {
        double t0 = tnd_now_seconds();
        tnd_vk_copy(d, src, dst, &region, 1);
        flush(d);
        double t = tnd_now_seconds() - t0;
        if (i > 0 && t > 0 && 2.0 * (double)bytes / t > best) best = 2.0 * (double)bytes / t; /* read + write */
    }
    tnd_vk_free(b, src);
    tnd_vk_free(b, dst);
    d->failure = TND_OK;
    return best;
}

void tnd_vk_describe(tnd_backend *b, char *buf, size_t cap) {
    vk_device *d = vk_dev(b);
    /* the driver's name and version where the device says them (Vulkan 1.2) */
    VkPhysicalDeviceDriverProperties driver = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    char named[VK_MAX_DRIVER_NAME_SIZE + VK_MAX_DRIVER_INFO_SIZE + 8] = "";
    if (d->props.apiVersion >= VK_API_VERSION_1_2) {
        VkPhysicalDeviceProperties2 props2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &driver};
        d->api.vkGetPhysicalDeviceProperties2(d->physical, &props2);
        if (driver.driverName[0]) snprintf(named, sizeof named, " [%s %s]", driver.driverName, driver.driverInfo);
    }
    snprintf(buf, cap, "%s%s, Vulkan %u.%u, subgroup %u%s", d->props.deviceName, named,
             VK_API_VERSION_MAJOR(d->props.apiVersion), VK_API_VERSION_MINOR(d->props.apiVersion), d->subgroup_size,
             d->int8 ? ", int8 dot" : "");
}

/* ------------------------------------------------------------------------------------------------------------
 * Making and destroying the device
 * ---------------------------------------------------------------------------------------------------------- */

void tnd_vk_destroy(tnd_backend *b) {
    if (!b) return;
    vk_device *d = vk_dev(b);
    if (d->device) {
        flush(d);
        d->api.vkDeviceWaitIdle(d->device);
        destroy_buffer(d, d->arena);
        destroy_buffer(d, d->staging);
        destroy_buffer(d, d->xq);
        for (int i = 0; i < VK_SHADER_COUNT; i++)
            if (d->pipelines[i]) d->api.vkDestroyPipeline(d->device, d->pipelines[i], NULL);
        if (d->descriptor_pool) d->api.vkDestroyDescriptorPool(d->device, d->descriptor_pool, NULL);
        if (d->pipeline_layout) d->api.vkDestroyPipelineLayout(d->device, d->pipeline_layout, NULL);
        if (d->set_layout) d->api.vkDestroyDescriptorSetLayout(d->device, d->set_layout, NULL);
        if (d->fence) d->api.vkDestroyFence(d->device, d->fence, NULL);
        if (d->command_pool) d->api.vkDestroyCommandPool(d->device, d->command_pool, NULL);
        d->api.vkDestroyDevice(d->device, NULL);
    }
    if (d->instance) d->api.vkDestroyInstance(d->instance, NULL);
    tnd_vk_close(&d->api);
    tnd_allocator a = d->allocator;
    tnd_free(&a, d);
}

/* Memory types: device buffers in device-local memory (mapped where it is also host-visible and the device shares
 * the host's memory, as integrated GPUs and software drivers do); staging in host-visible coherent memory. */
static tnd_status choose_memory(vk_device *d) {
    const VkPhysicalDeviceMemoryProperties *mp = &d->memory_props;
    const VkMemoryPropertyFlags local = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                                host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    bool shared = d->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ||
                  d->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    const char *staging = getenv("TANDEM_VULKAN_STAGING"); /* testing aid: copy through staging everywhere */
    if (staging && *staging && strcmp(staging, "0")) shared = false;
    d->host_memory_type = memory_type(mp, ~0u, host | VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
    if (d->host_memory_type == UINT32_MAX) d->host_memory_type = memory_type(mp, ~0u, host);
    if (d->host_memory_type == UINT32_MAX)
        return tnd_fail(TND_ERR_UNSUPPORTED, "%s: no host-visible coherent memory", d->base.name);
    d->device_memory_type = shared ? memory_type(mp, ~0u, local | host) : UINT32_MAX;
    d->device_memory_mapped = d->device_memory_type != UINT32_MAX;
    if (!d->device_memory_mapped) d->device_memory_type = memory_type(mp, ~0u, local);
    if (d->device_memory_type == UINT32_MAX) d->device_memory_type = d->host_memory_type;
    return TND_OK;
}

/* Whether quantized matmuls use integer dot products (VK_KHR_shader_integer_dot_product, core in Vulkan 1.3): where
 * the device computes packed 4 x int8 dot products in hardware; TANDEM_VULKAN_INT8=1 wherever it has them at all (a
 * software driver, for tests), =0 never. */
static bool wants_int8(vk_device *d) {
    uint32_t n = 0;
    VkExtensionProperties exts[256];
    if (d->api.vkEnumerateDeviceExtensionProperties(d->physical, NULL, &n, NULL) != VK_SUCCESS) return false;
    if (n > 256) n = 256;
    bool listed = false;
    if (d->api.vkEnumerateDeviceExtensionProperties(d->physical, NULL, &n, exts) >= 0)
        for (uint32_t i = 0; i < n; i++) listed |= !strcmp(exts[i].extensionName, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME);
    VkPhysicalDeviceShaderIntegerDotProductFeatures features = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES};
    VkPhysicalDeviceFeatures2 features2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &features};
    if (listed) d->api.vkGetPhysicalDeviceFeatures2(d->physical, &features2);
    if (!listed || !features.shaderIntegerDotProduct) return false;
    const char *env = getenv("TANDEM_VULKAN_INT8");
    if (env && *env) return strcmp(env, "0") != 0;
    VkPhysicalDeviceShaderIntegerDotProductProperties props = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES};
    VkPhysicalDeviceProperties2 props2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &props};
    d->api.vkGetPhysicalDeviceProperties2(d->physical, &props2);
    return props.integerDotProduct4x8BitPackedSignedAccelerated;
}

static tnd_status create_device(vk_device *d, int32_t index) {
    tnd_status st = create_instance(&d->api, &d->instance);
    if (st) return st;
    VkPhysicalDevice pds[16];
    uint32_t n = usable_devices(&d->api, d->instance, pds, 16), family = 0;
    if (index < 0 || (uint32_t)index >= n)
        return tnd_fail(TND_ERR_UNSUPPORTED, "no Vulkan device %d: this machine has %u that tandem can use "
                        "(Vulkan 1.1 with a compute queue and subgroup arithmetic)", index, n);
    d->physical = pds[index];
    usable(&d->api, d->physical, &family, &d->subgroup_size);
    d->api.vkGetPhysicalDeviceProperties(d->physical, &d->props);
    d->api.vkGetPhysicalDeviceMemoryProperties(d->physical, &d->memory_props);
    if ((st = choose_memory(d))) return st;
    d->int8 = wants_int8(d);
    VkPhysicalDeviceShaderIntegerDotProductFeatures dot = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES, .shaderIntegerDotProduct = VK_TRUE};
    const char *const int8_extension[] = {VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME};

    float priority = 1.0f;
    VkDeviceQueueCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = family,
                                  .queueCount = 1, .pQueuePriorities = &priority};
    VkDeviceCreateInfo di = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1,
                             .pQueueCreateInfos = &qi,
                             .pNext = d->int8 ? &dot : NULL, .enabledExtensionCount = d->int8 ? 1u : 0u,
                             .ppEnabledExtensionNames = int8_extension};
    VkResult r = d->api.vkCreateDevice(d->physical, &di, NULL, &d->device);
    if (r != VK_SUCCESS)
        return tnd_fail(vk_status(r), "%s: cannot open %s (%s)", d->base.name, d->props.deviceName,
                        tnd_vk_result_name(r));
    if ((st = tnd_vk_load_device(&d->api, d->device))) {
        PFN_vkDestroyDevice destroy = (PFN_vkDestroyDevice)d->api.vkGetDeviceProcAddr(d->device, "vkDestroyDevice");
        if (destroy) destroy(d->device, NULL);
        d->device = VK_NULL_HANDLE;
        return st;
    }
    d->api.vkGetDeviceQueue(d->device, family, 0, &d->queue);

    VkCommandPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                  .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, .queueFamilyIndex = family};
    r = d->api.vkCreateCommandPool(d->device, &pi, NULL, &d->command_pool);
    if (r == VK_SUCCESS) {
        VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                          .commandPool = d->command_pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                          .commandBufferCount = 1};
        r = d->api.vkAllocateCommandBuffers(d->device, &ai, &d->cmd);
    }
    if (r == VK_SUCCESS) {
        VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        r = d->api.vkCreateFence(d->device, &fi, NULL, &d->fence);
    }
    VkDescriptorSetLayoutBinding bindings[VK_BINDINGS];
    for (uint32_t i = 0; i < VK_BINDINGS; i++)
        bindings[i] = (VkDescriptorSetLayoutBinding){.binding = i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                                     .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    if (r == VK_SUCCESS) {
        VkDescriptorSetLayoutCreateInfo li = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                              .bindingCount = VK_BINDINGS, .pBindings = bindings};
        r = d->api.vkCreateDescriptorSetLayout(d->device, &li, NULL, &d->set_layout);
    }
    if (r == VK_SUCCESS) {
        VkPushConstantRange range = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = VK_PUSH_BYTES};
        VkPipelineLayoutCreateInfo li = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                         .pSetLayouts = &d->set_layout, .pushConstantRangeCount = 1,
                                         .pPushConstantRanges = &range};
        r = d->api.vkCreatePipelineLayout(d->device, &li, NULL, &d->pipeline_layout);
    }
    if (r == VK_SUCCESS) {
        VkDescriptorPoolSize size = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                     .descriptorCount = VK_SETS_PER_POOL * VK_BINDINGS};
        VkDescriptorPoolCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                         .maxSets = VK_SETS_PER_POOL, .poolSizeCount = 1, .pPoolSizes = &size};
        r = d->api.vkCreateDescriptorPool(d->device, &ci, NULL, &d->descriptor_pool);
    }
    if (r != VK_SUCCESS)
        return tnd_fail(vk_status(r), "%s: cannot set up %s (%s)", d->base.name, d->props.deviceName,
                        tnd_vk_result_name(r));
    return TND_OK;
}

tnd_status tnd_backend_vulkan_init(int32_t index, const tnd_allocator *allocator, const char *name,
                                   tnd_backend **out) {
    *out = NULL;
    tnd_allocator a = allocator ? *allocator : (tnd_allocator){0};
    vk_device *d = tnd_alloc(&a, sizeof *d);
    if (!d) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for a Vulkan device");
    d->allocator = a;
    d->base.vt = &tnd_vk_vtable;
    d->base.impl = d;
    snprintf(d->base.name, sizeof d->base.name, "%s", name);
    tnd_status st = create_device(d, index);
    if (st) {
        tnd_vk_destroy(&d->base);
        return st;
    }
    *out = &d->base;
    return TND_OK;
}
