// The on-chip recurrence for a batch of rows (tiled.cu), used by recurrence.cu.
#pragma once

#include <cstddef>

#include "cuda/kernel_common.cuh"

namespace elman::cuda {

// How a block's tile of the output (rows x cols of B x H per step) is computed.
struct TileShape {
  int rows, cols;       // the block's tile; rows is a multiple of the thread tile's rows
  int row_blocks;       // blocks along B; the grid is row_blocks x ceil(H / cols)
  int w_stride;         // floats per k in the block's W_y slice in shared memory
  int chunk, h_stride;  // k per copy of the previous states; floats per row of that copy
  int split;            // threads per register tile, each taking every split-th k
  bool vector_copy;     // float rows of y and h0 16-byte aligned: copy states with float4
};

struct TiledPlan : CooperativePlan<TileShape> {  // kernel null: does not fit on chip
  double cost = 0;  // the cost model's estimate, ns per step (barrier not included)
};

// The cheapest tiling by a cost model of the kernel (estimates, not measurements), or
// no kernel when W_y does not fit in the shared memory of all the GPU's blocks.
template <typename S>
TiledPlan tiled_plan(int batch, int hidden, const Device& d);

// One cooperative launch on r.stream.
template <typename S>
void launch_tiled(const Recurrence<S>& r, const TiledPlan& p);

}  // namespace elman::cuda
