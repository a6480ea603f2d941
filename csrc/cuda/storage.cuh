// The storage types of device arrays (float, __half, __nv_bfloat16): values are stored
// in S and all arithmetic is float.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <library_types.h>

#include "cuda/cuda.h"

namespace elman::cuda {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename S>
__device__ __forceinline__ S from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// f(S{}) for the type S that `storage` stores values as (host code: one template
// instantiation per storage type).
template <typename F>
auto with_storage(Storage storage, F f) {
  switch (storage) {
    case Storage::F16: return f(__half{});
    case Storage::BF16: return f(__nv_bfloat16{});
    default: return f(float{});
  }
}

// The cuBLAS (and CUDA library) type of S.
template <typename S> constexpr cudaDataType_t blas_type();
template <> constexpr cudaDataType_t blas_type<float>() { return CUDA_R_32F; }
template <> constexpr cudaDataType_t blas_type<__half>() { return CUDA_R_16F; }
template <> constexpr cudaDataType_t blas_type<__nv_bfloat16>() { return CUDA_R_16BF; }

// A value other blocks wrote during this launch: from L2 (L1 is not coherent).
template <typename S>
__device__ __forceinline__ float load_cg(const S* p) { return to_float(__ldcg(p)); }

}  // namespace elman::cuda
