# cuda.cmake: the CUDA device, built where nvcc is found (in PATH, $CUDACXX or /usr/local/cuda). The CUDA runtime is
# linked statically and finds the driver at run time, so a build with the device still runs where there is no
# NVIDIA driver or GPU (the device is then absent). TND_CUDA=OFF leaves it out on purpose.
#
# TND_CUDA_ARCHITECTURES: the GPUs the kernels are compiled for. The default is machine code for Turing to Blackwell
# (7.5 to 12.0, the datacenter 10.0 included) and PTX of 12.0 for later GPUs; a build for one GPU passes `native`.
option(TND_CUDA "Build the CUDA device where nvcc is found" ON)
set(TND_CUDA_ARCHITECTURES "75-real;80-real;86-real;89-real;90-real;100-real;120" CACHE STRING
    "CUDA architectures of the kernels")

if(TND_CUDA AND NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
if(TND_CUDA)
  include(CheckLanguage)
  check_language(CUDA)
endif()
if(NOT TND_CUDA OR NOT CMAKE_CUDA_COMPILER)
  if(TND_CUDA)
    message(STATUS "CUDA device: off (no nvcc found)")
  endif()
  list(FILTER TND_LIB_SOURCES EXCLUDE REGEX "/backend/cuda/")
  set(TND_HAVE_CUDA OFF)
  return()
endif()
set(CMAKE_CUDA_ARCHITECTURES ${TND_CUDA_ARCHITECTURES})
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
message(STATUS "CUDA device: on (${CMAKE_CUDA_COMPILER}, architectures ${TND_CUDA_ARCHITECTURES})")
set(TND_HAVE_CUDA ON)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
file(GLOB TND_CUDA_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/backend/cuda/*.cu)
list(APPEND TND_LIB_SOURCES ${TND_CUDA_SOURCES})
