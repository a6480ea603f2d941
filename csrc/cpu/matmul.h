// The products with a weight matrix: elman's packed kernels where the CPU runs them,
// OpenBLAS otherwise (CPUs without AVX-512 or AVX2 and FMA).
#pragma once

#include <cstdint>
#include <memory>

#include "cpu/packed_gemm.h"

namespace elman::cpu {

// A weight matrix (rows, cols), row-major, with its packed copy where one exists.
template <typename T>
struct Weight {
  const T* raw = nullptr;
  std::int64_t rows = 0, cols = 0;
  std::shared_ptr<const PackedMatrix<T>> packed;  // where the CPU runs the packed kernels

  Weight() = default;
  Weight(const T* w, std::int64_t rows, std::int64_t cols);
};

// C[:, c0:c1] = A @ W[:, c0:c1] (+ C[:, c0:c1] if accumulate), m rows; A row stride
// lda, C row stride ldc. c0 must be a multiple of PackedMatrix<T>::kPanel.
template <typename T>
void matmul(std::int64_t m, std::int64_t c0, std::int64_t c1, const T* a, std::int64_t lda,
            const Weight<T>& w, bool accumulate, T* c, std::int64_t ldc);

}  // namespace elman::cpu
