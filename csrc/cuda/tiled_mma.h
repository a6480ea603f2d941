// The on-chip recurrence on tensor cores, for float16 and bfloat16 storage (tiled_mma.cu),
// used by recurrence.cu.
#pragma once

#include <cstddef>

#include "cuda/kernel_common.cuh"

namespace elman::cuda {

// A block's share: `col_tiles` tiles of 8 output columns for all (padded) rows.
struct MmaShape {
  int row_tiles;      // 16-row tiles covering the batch: 1 or 2
  int col_tiles;      // 8-column tiles per block: 1, 2 or 4
  int stride;         // elements per row (one output column) of the W_y^T slice
  bool vector_loads;  // rows of y and h0 16-byte aligned, H a multiple of 8: 16-byte loads
};

using MmaPlan = CooperativePlan<MmaShape>;

// For batches of at most kMmaMaxRows rows: every block holds its W_y columns for all k.
constexpr int kMmaMaxRows = 32;

template <typename S>
MmaPlan mma_plan(int batch, int hidden, const Device& d);

template <typename S>
void launch_mma(const Recurrence<S>& r, const MmaPlan& p);

}  // namespace elman::cuda
