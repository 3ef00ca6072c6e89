/* vk_api.h: the Vulkan functions the device uses, loaded at run time from the system's Vulkan loader
 * (libvulkan.so.1) rather than linked, so that the library and the program start on machines without one: there the
 * Vulkan device is simply absent. */
#ifndef TND_BACKEND_VULKAN_VK_API_H
#define TND_BACKEND_VULKAN_VK_API_H

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#include "tandem.h"

/* Functions of the loader itself (no instance yet). */
#define TND_VK_GLOBAL_FUNCTIONS(X)                                                                                    \
    X(vkCreateInstance)                                                                                               \
    X(vkEnumerateInstanceVersion)

/* Functions of an instance and its physical devices. */
#define TND_VK_INSTANCE_FUNCTIONS(X)                                                                                  \
    X(vkDestroyInstance)                                                                                              \
    X(vkEnumeratePhysicalDevices)                                                                                     \
    X(vkGetPhysicalDeviceProperties)                                                                                  \
    X(vkGetPhysicalDeviceProperties2)                                                                                 \
    X(vkGetPhysicalDeviceFeatures2)                                                                                   \
    X(vkGetPhysicalDeviceMemoryProperties)                                                                            \
    X(vkGetPhysicalDeviceMemoryProperties2)                                                                           \
    X(vkGetPhysicalDeviceQueueFamilyProperties)                                                                       \
    X(vkEnumerateDeviceExtensionProperties)                                                                           \
    X(vkCreateDevice)                                                                                                 \
    X(vkGetDeviceProcAddr)

/* Functions of a logical device. */
#define TND_VK_DEVICE_FUNCTIONS(X)                                                                                    \
    X(vkDestroyDevice)                                                                                                \
    X(vkGetDeviceQueue)                                                                                               \
    X(vkDeviceWaitIdle)                                                                                               \
    X(vkCreateBuffer)                                                                                                 \
    X(vkDestroyBuffer)                                                                                                \
    X(vkGetBufferMemoryRequirements)                                                                                  \
    X(vkAllocateMemory)                                                                                               \
    X(vkFreeMemory)                                                                                                   \
    X(vkBindBufferMemory)                                                                                             \
    X(vkMapMemory)                                                                                                    \
    X(vkUnmapMemory)                                                                                                  \
    X(vkCreateShaderModule)                                                                                           \
    X(vkDestroyShaderModule)                                                                                          \
    X(vkCreateDescriptorSetLayout)                                                                                    \
    X(vkDestroyDescriptorSetLayout)                                                                                   \
    X(vkCreatePipelineLayout)                                                                                         \
    X(vkDestroyPipelineLayout)                                                                                        \
    X(vkCreateComputePipelines)                                                                                       \
    X(vkDestroyPipeline)                                                                                              \
    X(vkCreateDescriptorPool)                                                                                         \
    X(vkDestroyDescriptorPool)                                                                                        \
    X(vkResetDescriptorPool)                                                                                          \
    X(vkAllocateDescriptorSets)                                                                                       \
    X(vkUpdateDescriptorSets)                                                                                         \
    X(vkCreateCommandPool)                                                                                            \
    X(vkDestroyCommandPool)                                                                                           \
    X(vkAllocateCommandBuffers)                                                                                       \
    X(vkResetCommandBuffer)                                                                                           \
    X(vkBeginCommandBuffer)                                                                                           \
    X(vkEndCommandBuffer)                                                                                             \
    X(vkCmdBindPipeline)                                                                                              \
    X(vkCmdBindDescriptorSets)                                                                                        \
    X(vkCmdPushConstants)                                                                                             \
    X(vkCmdDispatch)                                                                                                  \
    X(vkCmdPipelineBarrier)                                                                                           \
    X(vkCmdCopyBuffer)                                                                                                \
    X(vkCmdFillBuffer)                                                                                                \
    X(vkCreateFence)                                                                                                  \
    X(vkDestroyFence)                                                                                                 \
    X(vkResetFences)                                                                                                  \
    X(vkWaitForFences)                                                                                                \
    X(vkQueueSubmit)

#define TND_VK_DECLARE(name) PFN_##name name;

typedef struct tnd_vk_api {
    void *library; /* the loader's dlopen handle */
    PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr;
    TND_VK_GLOBAL_FUNCTIONS(TND_VK_DECLARE)
    TND_VK_INSTANCE_FUNCTIONS(TND_VK_DECLARE)
    TND_VK_DEVICE_FUNCTIONS(TND_VK_DECLARE)
} tnd_vk_api;

/* Opens the loader and fills the global functions. TND_ERR_UNSUPPORTED when there is no Vulkan loader. */
tnd_status tnd_vk_open(tnd_vk_api *api);
/* Fills the instance functions (after vkCreateInstance); TND_ERR_UNSUPPORTED when one is missing. */
tnd_status tnd_vk_load_instance(tnd_vk_api *api, VkInstance instance);
/* Fills the device functions (after vkCreateDevice). */
tnd_status tnd_vk_load_device(tnd_vk_api *api, VkDevice device);
/* Closes the loader. */
void tnd_vk_close(tnd_vk_api *api);

/* A clear name for a VkResult ("VK_ERROR_DEVICE_LOST"). */
const char *tnd_vk_result_name(VkResult r);

#endif
