// The recurrence of one row with H <= 256 in a single thread block (single_block.cu), used
// by recurrence.cu.
#pragma once

#include <cstddef>

#include "cuda/kernel_common.cuh"

namespace elman::cuda {

struct SingleBlockPlan {
  std::size_t smem = 0;
  const void* kernel = nullptr;  // null: does not fit (batch > 1, H > 256 or a GPU with too
                                 // little shared memory per block)
};

template <typename S>
SingleBlockPlan single_block_plan(int batch, int hidden, const Device& d);

// One launch of one block on r.stream.
template <typename S>
void launch_single_block(const Recurrence<S>& r, const SingleBlockPlan& p);

}  // namespace elman::cuda
