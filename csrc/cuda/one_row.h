// The recurrence of one row with H <= 512 in one thread block (H <= 128) or a cluster of
// two or eight (one_row.cu), W_y in registers, used by recurrence.cu.
#pragma once

#include <cstddef>

#include "cuda/kernel_common.cuh"

namespace elman::cuda {

// True where the kernel runs: B = 1 (lengths allowed), H <= 128, or H <= 512 where a
// cluster of two or eight blocks can be resident (compute capability 9).
template <typename S>
bool one_row_fits(int batch, int hidden, const Device& d);

// One launch on r.stream.
template <typename S>
void launch_one_row(const Recurrence<S>& r);

}  // namespace elman::cuda
