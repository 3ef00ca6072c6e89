/* vk_api.c: loading the Vulkan loader and its functions at run time (see vk_api.h). */
#include "backend/vulkan/vk_api.h"

#include "core/error.h"

#include <dlfcn.h>
#include <string.h>

tnd_status tnd_vk_open(tnd_vk_api *api) {
    memset(api, 0, sizeof *api);
    api->library = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!api->library) api->library = dlopen("libvulkan.so", RTLD_NOW | RTLD_LOCAL);
    if (!api->library) return tnd_fail(TND_ERR_UNSUPPORTED, "no Vulkan loader (libvulkan.so.1) on this machine");
    /* dlsym returns void *; POSIX guarantees it converts to a function pointer */
    void *entry = dlsym(api->library, "vkGetInstanceProcAddr");
    memcpy(&api->vkGetInstanceProcAddr, &entry, sizeof entry);
    if (!api->vkGetInstanceProcAddr) {
        tnd_vk_close(api);
        return tnd_fail(TND_ERR_UNSUPPORTED, "the Vulkan loader lacks vkGetInstanceProcAddr");
    }
#define LOAD_GLOBAL(name) api->name = (PFN_##name)api->vkGetInstanceProcAddr(NULL, #name);
    TND_VK_GLOBAL_FUNCTIONS(LOAD_GLOBAL)
#undef LOAD_GLOBAL
    if (!api->vkCreateInstance) {
        tnd_vk_close(api);
        return tnd_fail(TND_ERR_UNSUPPORTED, "the Vulkan loader lacks vkCreateInstance");
    }
    return TND_OK;
}

tnd_status tnd_vk_load_instance(tnd_vk_api *api, VkInstance instance) {
#define LOAD_INSTANCE(name)                                                                                           \
    if (!(api->name = (PFN_##name)api->vkGetInstanceProcAddr(instance, #name)))                                       \
        return tnd_fail(TND_ERR_UNSUPPORTED, "the Vulkan instance lacks %s (Vulkan 1.1 is needed)", #name);
    TND_VK_INSTANCE_FUNCTIONS(LOAD_INSTANCE)
#undef LOAD_INSTANCE
    return TND_OK;
}

tnd_status tnd_vk_load_device(tnd_vk_api *api, VkDevice device) {
#define LOAD_DEVICE(name)                                                                                             \
    if (!(api->name = (PFN_##name)api->vkGetDeviceProcAddr(device, #name)))                                           \
        return tnd_fail(TND_ERR_UNSUPPORTED, "the Vulkan device lacks %s", #name);
    TND_VK_DEVICE_FUNCTIONS(LOAD_DEVICE)
#undef LOAD_DEVICE
    return TND_OK;
}

void tnd_vk_close(tnd_vk_api *api) {
    if (api->library) dlclose(api->library);
    memset(api, 0, sizeof *api);
}

const char *tnd_vk_result_name(VkResult r) {
    switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    default: return "an unnamed VkResult";
    }
}
