# The optional CUDA backend: the extension module elman._cuda.
#
# ELMAN_CUDA=AUTO (default) builds it when nvcc and cuBLAS are found, ON fails loudly
# when they are not, OFF never builds it. nvcc and the runtime come from a CUDA toolkit
# or from the nvidia-cuda-nvcc wheel (CUDACXX names its nvcc); cuBLAS from the toolkit,
# or from the nvidia-cublas wheel (nvidia/cu13) of the Python that builds elman.
set(ELMAN_CUDA "AUTO" CACHE STRING "Build the CUDA backend: AUTO, ON or OFF")
set_property(CACHE ELMAN_CUDA PROPERTY STRINGS AUTO ON OFF)
# In any case, and with CMake's other names of true and false; empty is AUTO (as an empty
# environment variable may come); anything else is refused (a lower-case "off" was taken
# for AUTO, and built CUDA).
string(TOUPPER "${ELMAN_CUDA}" elman_cuda_mode)
if(elman_cuda_mode MATCHES "^(ON|1|TRUE|YES|Y)$")
  set(elman_cuda_mode ON)
elseif(elman_cuda_mode MATCHES "^(OFF|0|FALSE|NO|N)$")
  set(elman_cuda_mode OFF)
elseif(elman_cuda_mode STREQUAL "")
  set(elman_cuda_mode AUTO)
elseif(NOT elman_cuda_mode STREQUAL "AUTO")
  message(FATAL_ERROR "ELMAN_CUDA: expected AUTO, ON or OFF, got '${ELMAN_CUDA}'")
endif()

# After enable_language(CUDA): sets ELMAN_CUBLAS_DIR, or ELMAN_CUDA_MISSING to the reason.
macro(elman_find_cublas)
  # The toolkit is the compiler's own (nvcc may be a wrapper script elsewhere on PATH).
  set(CUDAToolkit_ROOT "${CMAKE_CUDA_COMPILER_TOOLKIT_ROOT}")
  # FindCUDAToolkit requires a libcudart.so; the nvidia-cuda-runtime wheel (beside the
  # nvidia-cuda-nvcc wheel's compiler, in nvidia/cu13) has only libcudart.so.13.
  find_library(CUDA_CUDART NAMES cudart libcudart.so.13
               HINTS "${CUDAToolkit_ROOT}/lib64" "${CUDAToolkit_ROOT}/lib" NO_DEFAULT_PATH)
  find_package(CUDAToolkit QUIET)
  if(NOT CUDAToolkit_FOUND)
    set(ELMAN_CUDA_MISSING "no CUDA toolkit (runtime headers and libraries)")
  elseif(NOT TARGET CUDA::cublas)
    execute_process(
      COMMAND "${Python_EXECUTABLE}" -c
        "import nvidia, pathlib; print(next(p for p in (pathlib.Path(d, 'cu13') for d in nvidia.__path__) if (p / 'lib' / 'libcublas.so.13').exists()), end='')"
      OUTPUT_VARIABLE elman_cublas_root RESULT_VARIABLE elman_status ERROR_QUIET)
    if(elman_status EQUAL 0)
      add_library(CUDA::cublas SHARED IMPORTED GLOBAL)
      set_target_properties(CUDA::cublas PROPERTIES
        IMPORTED_LOCATION "${elman_cublas_root}/lib/libcublas.so.13"
        INTERFACE_INCLUDE_DIRECTORIES "${elman_cublas_root}/include")
    else()
      set(ELMAN_CUDA_MISSING "no cuBLAS (neither in the CUDA toolkit nor the nvidia-cublas wheel)")
    endif()
  endif()
  if(TARGET CUDA::cublas)
    get_target_property(elman_cublas_lib CUDA::cublas IMPORTED_LOCATION)
    get_filename_component(ELMAN_CUBLAS_DIR "${elman_cublas_lib}" DIRECTORY)
  endif()
endmacro()

if(elman_cuda_mode STREQUAL "OFF")
  message(STATUS "elman: building without CUDA: ELMAN_CUDA=${ELMAN_CUDA}")
else()
  include(CheckLanguage)
  check_language(CUDA)
  set(ELMAN_CUDA_MISSING "no CUDA compiler (nvcc; set CUDACXX)")
  if(CMAKE_CUDA_COMPILER)
    # Explicit architectures (never "native": CI has no GPU): Ampere and Hopper; the
    # kernels' thread-block clusters exist only in the Hopper code (on Ampere they are
    # compiled out, never chosen, and trap).
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)
    elman_find_cublas()
  endif()
  if(NOT ELMAN_CUBLAS_DIR)
    if(elman_cuda_mode STREQUAL "ON")
      message(FATAL_ERROR "ELMAN_CUDA=${ELMAN_CUDA}, but ${ELMAN_CUDA_MISSING}")
    endif()
    message(STATUS "elman: building without CUDA: ${ELMAN_CUDA_MISSING}")
  else()
    add_library(elman_cuda STATIC csrc/cuda/devices.cu csrc/cuda/memory.cu csrc/cuda/layout.cu csrc/cuda/recurrence.cu csrc/cuda/few_rows.cu csrc/cuda/tiled.cu csrc/cuda/tiled_fma.cu csrc/cuda/tiled_gemm.cu csrc/cuda/tiled_mma.cu
                csrc/cuda/forward.cu)
    target_include_directories(elman_cuda PUBLIC csrc)
    target_link_libraries(elman_cuda PUBLIC CUDA::cudart_static CUDA::cublas)
    pybind11_add_module(_cuda MODULE csrc/cuda_bindings.cpp)
    target_link_libraries(_cuda PRIVATE elman_cuda)
    # cuBLAS from the nvidia-cublas wheel installed beside elman, or where it was found.
    set_target_properties(_cuda PROPERTIES INSTALL_RPATH "$ORIGIN/../nvidia/cu13/lib;${ELMAN_CUBLAS_DIR}")
    install(TARGETS _cuda LIBRARY DESTINATION elman)
    message(STATUS "elman: building the CUDA backend (cuBLAS in ${ELMAN_CUBLAS_DIR})")
  endif()
endif()
