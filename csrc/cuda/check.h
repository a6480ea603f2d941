// CUDA and cuBLAS status checks that throw, for the host side of the CUDA backend.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace elman::cuda {

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    // Reported here: a later check(cudaGetLastError()) after a launch must not see it again
    // (a sticky error, which breaks the context, stays whatever this does).
    cudaGetLastError();
    throw std::runtime_error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
  }
}

inline void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS: ") + what + ": status " + std::to_string(status));
}

}  // namespace elman::cuda
