// The recurrence of one row with H <= 128 in a single thread block, W_y in registers
// (one_row.cu), used by recurrence.cu.
#pragma once

#include <cstddef>

#include "cuda/kernel_common.cuh"

namespace elman::cuda {

// The largest H the kernel takes: 128 columns x 4 shares of k, 32 values of W_y per thread.
constexpr int kOneRowMaxHidden = 128;

// True where the kernel runs: B = 1 (lengths allowed), H <= kOneRowMaxHidden.
bool one_row_fits(int batch, int hidden);

// One launch of one block on r.stream.
template <typename S>
void launch_one_row(const Recurrence<S>& r);

}  // namespace elman::cuda
