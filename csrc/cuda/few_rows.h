// The recurrence with H <= 512 in independent groups of up to 4 rows, each in one thread
// block (H <= 128) or a cluster of two or eight (few_rows.cu), W_y in registers, used by
// recurrence.cu.
#pragma once

#include <cstddef>

#include "cuda/kernel_common.cuh"

namespace elman::cuda {

// How few_rows runs one (batch, H): `groups` groups of rows (1, 2 or 4 each, by the
// kernel), each in a cluster of `blocks` (1: a plain block) of `threads`.
struct FewRowsPlan {
  const void* kernel = nullptr;  // null: it cannot run the shape
  int blocks = 0, threads = 0, groups = 0;
  int launches = 0;  // how many such launches can be resident at once
};

// Which of the kernels: Wide, blocks of 512 threads: the fewest rows per group whose
// groups can all be resident at once. Lean (fewer threads per block, each with more of k):
// one row per group, if they all can be. LeanSends: lean, whose blocks pass each step's
// state by st.async instead of a cluster barrier (an experiment; clusters only, so
// H > 128).
enum class FewRowsKernel { Wide, Lean, LeanSends };

// Lengths allowed; H <= 128, or H <= 512 with clusters on compute capability 9.
template <typename S>
FewRowsPlan few_rows_plan(int batch, int hidden, FewRowsKernel kernel, const Device& d);

// One launch on r.stream.
template <typename S>
void launch_few_rows(const Recurrence<S>& r, const FewRowsPlan& p);

}  // namespace elman::cuda
