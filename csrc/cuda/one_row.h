// The recurrence of one row with H <= 256 in one thread block (H <= 128) or a cluster of
// two (one_row.cu), W_y in registers, used by recurrence.cu.
#pragma once

#include <cstddef>

#include "cuda/kernel_common.cuh"

namespace elman::cuda {

// The largest H the kernel takes: 128 columns per block x 2 blocks.
constexpr int kOneRowMaxHidden = 256;

// True where the kernel runs: B = 1 (lengths allowed), H <= 128, or H <= 256 where a
// cluster of two blocks can be resident (compute capability 9).
template <typename S>
bool one_row_fits(int batch, int hidden, const Device& d);

// One launch on r.stream.
template <typename S>
void launch_one_row(const Recurrence<S>& r);

}  // namespace elman::cuda
