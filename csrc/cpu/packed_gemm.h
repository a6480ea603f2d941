// elman's own matrix product (float32 and float64) for x86-64 CPUs with AVX-512 or AVX2
// and FMA, with the weight operand packed once (at layer construction) into the layout
// the kernels stream.
//
// OpenBLAS would do the same products, but it packs the weights again on every call
// (every time step), its single-row path is a separate, slower sgemv, and its kernel
// choice follows OPENBLAS_CORETYPE, which may hold it to AVX2 on AVX-512 machines.
#pragma once

#include <cstdint>
#include <memory>

namespace elman::cpu {

// The instruction set of the packed kernels this process runs: "avx512f", else "avx2"
// (with FMA), or nullptr where the CPU has neither, and callers use BLAS.
// ELMAN_CPU_PACKED=0 (BLAS) or =avx2 takes the path of an older CPU on a newer one;
// another value throws std::invalid_argument (at every call, until it is mended). The
// choice is made once. Off x86-64 there are no kernels and the variable is not read.
const char* packed_instruction_set();
inline bool packed_gemm_supported() { return packed_instruction_set() != nullptr; }

// W (k, n) in column panels of kPanel columns, zero padded: element (i, j) at
// panels[((j / kPanel) * k + i) * kPanel + j % kPanel], 64-byte aligned. T is float or
// double.
template <typename T>
class PackedMatrix {
 public:
  static constexpr std::int64_t kPanel = 32;
  PackedMatrix(const T* w, std::int64_t k, std::int64_t n);  // w row-major (k, n)
  std::int64_t rows() const { return k_; }
  std::int64_t cols() const { return n_; }
  const T* panel(std::int64_t p) const { return data_.get() + p * k_ * kPanel; }

 private:
  struct Free {
    void operator()(T* p) const;
  };
  std::int64_t k_, n_;
  std::unique_ptr<T[], Free> data_;
};

// C[:, c0:c1] = A @ W[:, c0:c1] (+ C[:, c0:c1] if accumulate), for m rows of A (row
// stride lda) and C (row stride ldc). c0 is a multiple of kPanel; c1 <= W.cols().
// A row computed alone (a tile of one row) sums in another order than rows computed
// in tiles, and more rows than one tile sum k in blocks, so results may differ with the
// number of rows per thread, within the rounding-error bound (in the last bits, unless
// terms cancel).
template <typename T>
void packed_gemm(std::int64_t m, std::int64_t c0, std::int64_t c1, const T* a, std::int64_t lda,
                 const PackedMatrix<T>& w, bool accumulate, T* c, std::int64_t ldc);

// One row through all steps, for W of up to 2 panels (64 columns, the latency case):
// y_t += y_{t-1} @ W (y_{-1} = h0), then finish(y_t, context), for the rows
// first + t * stride. Returns false, having done nothing, for a wider W.
template <typename T>
using RowFinish = void (*)(T* y_t, const void* context);
template <typename T>
bool packed_row_steps(std::int64_t steps, const T* h0, T* first, std::int64_t stride,
                      const PackedMatrix<T>& w, RowFinish<T> finish, const void* context);

}  // namespace elman::cpu
