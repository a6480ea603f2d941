// What the column-block kernels (tiled_mma.cu, tiled_fma.cu) share, and the finishing of
// tiled_gemm.cu's blocks. A block of kThreads owns COLS output columns for all rows (at
// most kMaxRows; tiled_gemm: columns of its own rows); its warps (or parts) each sum over
// a share of k and leave kRows x COLS partial sums in shared memory; then the block
// finishes its outputs: item n of a thread is (row o / COLS, column o % COLS),
// o = tid + n * kThreads.
// Their p_t is staged kAhead steps ahead into a ring in shared memory by cp.async (a load
// issued at the start of the step was still pending at its end).
#pragma once

#include "cuda/kernel_common.cuh"

namespace elman::cuda::column_block {

constexpr int kThreads = 256, kWarps = kThreads / 32;
constexpr int kMaxRows = 32;
constexpr int kAhead = 4;  // steps of p_t staged ahead

// Shared memory after the kernel's own: the warps' partial sums, then the ring.
inline std::size_t epilogue_bytes(int batch, int rows, int cols) {
  const int items = (batch * cols + kThreads - 1) / kThreads;
  return ((std::size_t)kWarps * rows * cols + (std::size_t)kAhead * items * kThreads) * sizeof(float);
}

// W_y's columns [c0, c0 + ncols) into shared memory, transposed: row n (of `cols`) holds
// column c0 + n for all k, `stride` values apart; zeros past H both ways. Consecutive
// threads read consecutive columns of a row of W_y (coalesced).
template <typename S>
__device__ void load_columns_transposed(const Recurrence<S>& r, int c0, int ncols, int cols,
                                        int stride, S* w_s) {
  copy_in_flight(
      cols * stride,
      [&](int i) {
        const int k = i / cols, n = i % cols;
        return n < ncols && k < r.hidden ? r.w_y[(size_t)k * r.hidden + c0 + n] : from_float<S>(0.f);
      },
      [&](int i, S w) { w_s[(i % cols) * stride + i / cols] = w; });
}

template <int COLS, typename S, int MAX_ROWS = kMaxRows>
class Epilogue {
 public:
  static constexpr int kMaxItems = MAX_ROWS * COLS / kThreads;

  // Rows [r0, r0 + MAX_ROWS) of the batch (those before B), columns [c0, c0 + ncols).
  // ring: kAhead x items x kThreads floats. Stages the first kAhead - 1 steps.
  // (r is passed to each call rather than kept: a reference to a kernel parameter would
  // move it to local memory.)
  __device__ Epilogue(const Recurrence<S>& r, float* ring, int c0, int ncols, int r0 = 0)
      : ring_(ring), r0_(r0), c0_(c0), ncols_(ncols),
        items_((min(MAX_ROWS, r.batch - r0) * COLS + kThreads - 1) / kThreads) {
#pragma unroll
    for (int n = 0; n < kMaxItems; ++n) {
      const int j = (threadIdx.x + n * kThreads) % COLS;
      bias_[n] = j < ncols ? bias_at(r.bias, c0 + j) : 0.f;
    }
    for (int k = 0; k < kAhead - 1; ++k) stage(r, k);
  }

  // p_t of iteration k into its ring slot (the one iteration k - kAhead used). Every
  // thread commits a group per call, maybe empty. In place (p is y), a step's p_t is read
  // before that step overwrites it, and only by this thread.
  __device__ void stage(const Recurrence<S>& r, int k) {
#pragma unroll
    for (int n = 0; n < kMaxItems; ++n) {
      const long long row = row_of(r, n, k < r.steps ? k : -1);
      if (row >= 0)
        copy_async_4(slot(k, n), r.p + row * r.ldp + c0_ + (threadIdx.x + n * kThreads) % COLS);
    }
    commit_copies();
  }

  // Iteration k's outputs from the partial sums (PARTS x ROWS x COLS, complete).
  template <int ROWS, int PARTS = kWarps>
  __device__ void finish(const Recurrence<S>& r, int k, const float* partial) {
    wait_copies<kAhead - 1>();  // this step's p_t has landed
#pragma unroll
    for (int n = 0; n < kMaxItems; ++n) {
      const long long row = row_of(r, n, k);
      if (row < 0) continue;
      const int o = threadIdx.x + n * kThreads, b = o / COLS, j = o % COLS;
      float sum = *slot(k, n) + bias_[n];
#pragma unroll
      for (int w = 0; w < PARTS; ++w) sum += partial[(w * ROWS + b) * COLS + j];
      write_output(r, k, r0_ + b, row, c0_ + j, sum);
    }
  }

  __device__ void drain() const { wait_copies<0>(); }  // before exit: nothing in flight

 private:
  // The output row of item n at iteration k (-1: none, or k < 0).
  __device__ long long row_of(const Recurrence<S>& r, int n, int k) const {
    const int o = threadIdx.x + n * kThreads, b = r0_ + o / COLS, j = o % COLS;
    return k >= 0 && n < items_ && b < r.batch && j < ncols_ ? output_row(r, k, b) : -1;
  }
  __device__ float* slot(int k, int n) const {
    return ring_ + ((k % kAhead) * items_ + n) * kThreads + threadIdx.x;
  }

  float* ring_;
  int r0_, c0_, ncols_, items_;
  float bias_[kMaxItems];
};

}  // namespace elman::cuda::column_block
