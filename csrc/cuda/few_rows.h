// The recurrence of up to 4 rows with H <= 512 in one thread block (H <= 128) or a
// cluster of two or eight (few_rows.cu), W_y in registers, used by recurrence.cu.
#pragma once

#include <cstddef>

#include "cuda/kernel_common.cuh"

namespace elman::cuda {

constexpr int kFewRowsMax = 4;  // rows (B)

// How many launches of the kernel for that shape can be resident at once: 0 where it
// cannot run. It runs B <= 4 (lengths allowed) and H <= 128 in one block, or H <= 512 in a
// cluster (compute capability 9).
template <typename S>
int few_rows_resident(int batch, int hidden, const Device& d);

// One launch on r.stream.
template <typename S>
void launch_few_rows(const Recurrence<S>& r);

}  // namespace elman::cuda
