# vulkan.cmake: the Vulkan device, built where the Vulkan headers and glslc exist (Debian: libvulkan-dev, glslc).
# The library loads the Vulkan loader at run time, so a build with the device still runs where no GPU or driver is;
# a build without it leaves src/backend/vulkan/ out and the device absent. TND_VULKAN=OFF leaves it out on purpose.
option(TND_VULKAN "Build the Vulkan device where the headers and glslc are found" ON)
find_path(TND_VULKAN_INCLUDE vulkan/vulkan.h)
find_program(TND_GLSLC glslc)
set(TND_VK_DIR ${PROJECT_SOURCE_DIR}/src/backend/vulkan)

if(NOT TND_VULKAN OR NOT TND_VULKAN_INCLUDE OR NOT TND_GLSLC)
  if(TND_VULKAN)
    message(STATUS "Vulkan device: off (needs vulkan/vulkan.h and glslc: scripts/setup.sh installs them)")
  endif()
  list(FILTER TND_LIB_SOURCES EXCLUDE REGEX "/backend/vulkan/")
  set(TND_HAVE_VULKAN OFF)
  return()
endif()
message(STATUS "Vulkan device: on (${TND_GLSLC})")
set(TND_HAVE_VULKAN ON)

# Shader variants: name, source, defines. Weight types share one source each for matmul and the experts' matmul.
set(TND_VK_WEIGHT_TYPES f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k)
set(TND_VK_VARIANTS)
foreach(t ${TND_VK_WEIGHT_TYPES})
  string(TOUPPER ${t} T)
  list(APPEND TND_VK_VARIANTS "matmul_${t}|matmul.comp|-DTYPE_${T}" "matmul_experts_${t}|matmul_experts.comp|-DTYPE_${T}")
  if(NOT t MATCHES "^(f32|f16|bf16)$") # the quantized types also multiply 8-bit levels by 8-bit activations
    list(APPEND TND_VK_VARIANTS "matmul_q8_${t}|matmul.comp|-DTYPE_${T},-DINT8")
  endif()
endforeach()
list(APPEND TND_VK_VARIANTS "elementwise|elementwise.comp|" "rms_norm|rms_norm.comp|" "rope|rope.comp|"
     "moe_route|moe_route.comp|" "moe_combine|moe_combine.comp|" "quantize_q8|quantize_q8.comp|")
# the KV cache types: a store for each, attention for each pair of K and V types
set(TND_VK_KV_TYPES f32 f16 q8_0 q4_0)
foreach(k ${TND_VK_KV_TYPES})
  string(TOUPPER ${k} K)
  list(APPEND TND_VK_VARIANTS "kv_store_${k}|kv_store.comp|-DKV_${K}")
  foreach(v ${TND_VK_KV_TYPES})
    string(TOUPPER ${v} V)
    list(APPEND TND_VK_VARIANTS "attention_${k}_${v}|attention.comp|-DK_${K},-DV_${V}")
  endforeach()
endforeach()

set(spv_dir ${CMAKE_BINARY_DIR}/vk_shaders)
file(MAKE_DIRECTORY ${spv_dir})
file(GLOB shader_includes ${TND_VK_DIR}/shaders/*.glsl)
set(spv_files)
set(spv_names)
foreach(variant ${TND_VK_VARIANTS})
  string(REPLACE "|" ";" parts "${variant}")
  list(GET parts 0 name)
  list(GET parts 1 source)
  list(LENGTH parts n_parts)
  set(defines)
  if(n_parts GREATER 2)
    list(GET parts 2 defines)
    string(REPLACE "," ";" defines "${defines}")
  endif()
  add_custom_command(OUTPUT ${spv_dir}/${name}.spv
                     COMMAND ${TND_GLSLC} --target-env=vulkan1.1 -O -Werror ${defines}
                             -o ${spv_dir}/${name}.spv ${TND_VK_DIR}/shaders/${source}
                     DEPENDS ${TND_VK_DIR}/shaders/${source} ${shader_includes}
                     COMMENT "glslc ${name}" VERBATIM)
  list(APPEND spv_files ${spv_dir}/${name}.spv)
  list(APPEND spv_names ${name})
endforeach()
add_custom_command(OUTPUT ${spv_dir}/vk_spirv.c ${spv_dir}/vk_spirv.h
                   COMMAND ${CMAKE_COMMAND} -DOUT_DIR=${spv_dir} "-DNAMES=${spv_names}" -DSPV_DIR=${spv_dir}
                           -P ${PROJECT_SOURCE_DIR}/cmake/embed_spirv.cmake
                   DEPENDS ${spv_files} ${PROJECT_SOURCE_DIR}/cmake/embed_spirv.cmake
                   COMMENT "embedding the SPIR-V shaders" VERBATIM)
list(APPEND TND_LIB_SOURCES ${spv_dir}/vk_spirv.c)
set(TND_VK_SPIRV_DIR ${spv_dir})
