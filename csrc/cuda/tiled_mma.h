// The on-chip recurrence on tensor cores, for float16 and bfloat16 storage (tiled_mma.cu),
// used by recurrence.cu.
#pragma once

#include <cstddef>

#include "cuda/kernel_common.cuh"

namespace elman::cuda {

// A block's share: `col_tiles` tiles of 8 output columns for all (padded) rows.
struct MmaShape {
  int row_tiles;     // 16-row tiles covering the batch
  int col_tiles;     // 8-column tiles per block: 1, 2, 4 or 8
  int k_padded;      // H rounded up to 16 (the k of the last product is zero padded)
  int stride;        // elements per row of the W_y slice and of the copied states
  bool vector_copy;  // rows of y and h0 16-byte aligned, H a multiple of 8: 16-byte copies
};

struct MmaPlan {
  MmaShape shape{};
  int blocks = 0;
  std::size_t smem = 0;
  const void* kernel = nullptr;  // null: does not fit
};

// For batches of at most kMmaMaxRows rows: every block holds its W_y columns for all k.
constexpr int kMmaMaxRows = 32;

template <typename S>
MmaPlan mma_plan(int batch, int hidden, const Device& d);

template <typename S>
void launch_mma(const Recurrence<S>& r, const MmaPlan& p);

}  // namespace elman::cuda
