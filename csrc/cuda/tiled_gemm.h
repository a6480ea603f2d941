// The on-chip recurrence for large batches, each step cut like an SGEMM into output tiles
// (tiled_gemm.cu), used by recurrence.cu.
#pragma once

#include <cstddef>

#include "cuda/kernel_common.cuh"

namespace elman::cuda {

struct GemmShape {
  int row_blocks;     // blocks along B; the grid is row_blocks x ceil(H / the tile's columns)
  int chunk, chunks;  // k per copy of the previous states, and copies per step
  bool vector_loads;  // rows of y and h0 16-byte aligned, H a multiple of 4: 4 values a load
};

using GemmPlan = CooperativePlan<GemmShape>;

// The tiling with the shortest step by a rough model (an estimate, not a measurement), if
// one block per tile can be resident on every SM at once and W_y's slices fit in shared
// memory.
template <typename S>
GemmPlan gemm_plan(int batch, int hidden, const Device& d);

// One cooperative launch on r.stream.
template <typename S>
void launch_gemm(const Recurrence<S>& r, const GemmPlan& p);

}  // namespace elman::cuda
