// The on-chip recurrence for float32 batches of 1-32 rows on CUDA cores (tiled_fma.cu),
// used by recurrence.cu.
#pragma once

#include <cstddef>

#include "cuda/kernel_common.cuh"

namespace elman::cuda {

struct FmaShape {
  int row_tiles;      // 16-row tiles covering the batch: 1 or 2
  int cols;           // columns per block: 8 or 16
  int stride;         // floats per row (one output column) of the W_y^T slice
  bool vector_loads;  // rows of y and h0 16-byte aligned, H a multiple of 4: float4 loads
};

using FmaPlan = CooperativePlan<FmaShape>;

// For float32 storage and at most 32 rows, if the W_y slices fit in shared memory.
FmaPlan fma_plan(int batch, int hidden, const Device& d);

void launch_fma(const Recurrence<float>& r, const FmaPlan& p);

}  // namespace elman::cuda
