// The CPU backend: its view of a layer's weights, and the forward pass.
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/matmul.h"
#include "elman.h"
#include "interruption.h"

namespace elman::cpu {

// One layer and direction as the CPU kernels take it (see elman.h for the shapes).
template <typename T>
struct Cell {
  Weight<T> w_x, w_y;
  const T* b;
  bool reverse;
  ActivationParams activation;
};

// Packs the weights for this CPU; the arrays must outlive the cells.
template <typename T>
std::vector<Cell<T>> prepare(const Shape& shape, const std::vector<CellWeights<T>>& cells);

// The forward pass of elman.h on elman's threads, asking `stop` (if any) between slices
// (interruption.h).
template <typename T>
void forward(const Shape& shape, const std::vector<Cell<T>>& cells, const T* x, const T* h0,
             const std::int64_t* lengths, T* y, T* h_n, const StopCheck& stop);

// C (m, W.cols) = A (m, W.rows) @ W, rows split over up to `threads` threads.
template <typename T>
void parallel_matmul(std::int64_t m, const T* a, std::int64_t lda, const Weight<T>& w, T* c,
                     std::int64_t ldc, int threads);

void set_num_threads(int n);  // clamped to [1, max_num_threads()]
int num_threads();
int max_num_threads();

}  // namespace elman::cpu
