#include "cpu/recurrence.h"

#include <algorithm>
#include <vector>

#include "cpu/epilogue.h"
#include "cpu/thread_pool.h"

namespace elman::cpu {
namespace {

// Rows [r0, r1) and columns [c0, c1) of iterations [begin, end), on one thread, when
// every row runs all steps: the recurrent product of step t accumulates straight into the
// rows of step t, which already hold the input projection. With columns split between
// threads, `barrier` makes each step wait until all columns of the previous one exist.
template <typename T>
void full_length(const Recurrence<T>& r, std::int64_t r0, std::int64_t r1, std::int64_t c0,
                 std::int64_t c1, SpinBarrier* barrier, std::int64_t begin, std::int64_t end) {
  const std::int64_t rows = r1 - r0, cols = c1 - c0, H = r.hidden, step = r.batch * r.ldy;
  // Row r0 of y at iteration k; the state before iteration `begin`.
  const auto y_at = [&](std::int64_t k) { return r.y + (r.reverse ? r.steps - 1 - k : k) * step + r0 * r.ldy; };
  const T* prev = begin == 0 ? r.h0 + r0 * H : y_at(begin - 1);
  std::int64_t ld_prev = begin == 0 ? H : r.ldy;
  if (rows == 1 && cols == H && r.w_y.packed) {  // one row, all columns: one call
    const auto finish = [](T* yt, const void* context) {
      const auto& rec = *static_cast<const Recurrence<T>*>(context);
      bias_activation(rec.hidden, yt, nullptr, rec.bias, rec.act);
    };
    if (packed_row_steps<T>(end - begin, prev, y_at(begin), r.reverse ? -step : step, *r.w_y.packed,
                            finish, &r)) {
      std::copy(y_at(end - 1), y_at(end - 1) + H, r.h_n + r0 * H);
      return;
    }
  }
  const T* bias = r.bias ? r.bias + c0 : nullptr;
  for (std::int64_t k = begin; k < end; ++k) {
    T* yt = y_at(k);
    matmul<T>(rows, c0, c1, prev, ld_prev, r.w_y, true, yt, r.ldy);
    for (std::int64_t b = 0; b < rows; ++b) bias_activation(cols, yt + b * r.ldy + c0, nullptr, bias, r.act);
    if (barrier) barrier->wait();
    prev = yt;
    ld_prev = r.ldy;
  }
  for (std::int64_t b = 0; b < rows; ++b)
    std::copy(prev + b * ld_prev + c0, prev + b * ld_prev + c1, r.h_n + (r0 + b) * H + c0);
}

// Rows [r0, r1) on one thread, when rows have their own lengths: in the backward
// direction they sit at different steps at the same iteration, so the state lives in
// h_n and each row's recurrent product comes from a separate buffer.
template <typename T>
void variable_length(const Recurrence<T>& r, std::int64_t r0, std::int64_t r1, std::int64_t begin,
                     std::int64_t end) {
  const std::int64_t rows = r1 - r0, H = r.hidden;
  T* h = r.h_n + r0 * H;
  if (begin == 0) std::copy(r.h0 + r0 * H, r.h0 + r1 * H, h);
  std::vector<T> recurrent(rows * H);
  for (std::int64_t k = begin; k < end; ++k) {
    matmul<T>(rows, 0, H, h, H, r.w_y, false, recurrent.data(), H);
    for (std::int64_t b = r0; b < r1; ++b) {
      if (k >= r.lengths[b]) continue;
      const std::int64_t t = r.reverse ? r.lengths[b] - 1 - k : k;
      T* row = r.y + (t * r.batch + b) * r.ldy;
      bias_activation(H, row, recurrent.data() + (b - r0) * H, r.bias, r.act);
      std::copy(row, row + H, r.h_n + b * H);
    }
  }
  if (end < r.steps) return;
  for (std::int64_t b = r0; b < r1; ++b)
    for (std::int64_t t = r.lengths[b]; t < r.steps; ++t) {
      T* row = r.y + (t * r.batch + b) * r.ldy;
      std::fill(row, row + H, T(0));
    }
}

// Below this many multiply-adds per step, a second thread costs more than it saves.
constexpr std::int64_t kMinWorkPerThread = 32 * 1024;
// When W_y does not fit in a core's L2 and each thread would have fewer rows than this,
// reading W_y dominates: splitting its columns halves each core's share of that reading,
// which is worth a barrier per step.
constexpr std::int64_t kColumnSplitRows = 8;
constexpr std::int64_t kL2Bytes = 1 << 20;

}  // namespace

template <typename T>
void run_recurrence(const Recurrence<T>& r, int threads, std::int64_t begin, std::int64_t end) {
  const std::int64_t H = r.hidden;
  const bool all_full = !r.lengths || std::all_of(r.lengths, r.lengths + r.batch,
                                                  [&](std::int64_t n) { return n == r.steps; });
  const std::int64_t work = r.batch * H * H;
  int n = static_cast<int>(std::min<std::int64_t>(threads, std::max<std::int64_t>(1, work / kMinWorkPerThread)));

  if (!all_full) {  // rows apart: no synchronisation at all
    n = static_cast<int>(std::min<std::int64_t>(n, r.batch));
    ThreadPool::global().run(n, [&](int i) {
      std::int64_t r0, r1;
      split_range(r.batch, n, i, 1, &r0, &r1);
      variable_length(r, r0, r1, begin, end);
    });
  } else if (r.batch >= n && !(r.batch < kColumnSplitRows * n && H * H * sizeof(T) > kL2Bytes)) {
    // rows apart: no synchronisation at all, but every thread reads all of W_y each step
    ThreadPool::global().run(n, [&](int i) {
      std::int64_t r0, r1;
      split_range(r.batch, n, i, 1, &r0, &r1);
      full_length(r, r0, r1, 0, H, nullptr, begin, end);
    });
  } else {  // columns apart, in whole panels of packed W_y: each core keeps its share
            // of W_y in its cache; a barrier per step
    const std::int64_t grain = PackedMatrix<T>::kPanel;
    n = static_cast<int>(std::min<std::int64_t>(n, (H + grain - 1) / grain));
    SpinBarrier barrier(n);
    ThreadPool::global().run(n, [&](int i) {
      std::int64_t c0, c1;
      split_range(H, n, i, grain, &c0, &c1);
      full_length(r, 0, r.batch, c0, c1, n > 1 ? &barrier : nullptr, begin, end);
    });
  }
}

template void run_recurrence<float>(const Recurrence<float>&, int, std::int64_t, std::int64_t);
template void run_recurrence<double>(const Recurrence<double>&, int, std::int64_t, std::int64_t);

}  // namespace elman::cpu
