// The forward pass of a layer stack on the CPU: per layer and direction, one product
// for the input projection of all steps and rows, then the time-step loop.
#include <algorithm>
#include <vector>

#include "cpu/blas.h"
#include "cpu/cpu.h"
#include "cpu/recurrence.h"
#include "cpu/thread_pool.h"
#include "interruption.h"

namespace elman::cpu {
namespace {

// Below this many multiply-adds, a second thread costs more than it saves.
constexpr std::int64_t kMinGemmWorkPerThread = 256 * 1024;

}  // namespace

template <typename T>
void parallel_matmul(std::int64_t m, const T* a, std::int64_t lda, const Weight<T>& w, T* c,
                     std::int64_t ldc, int threads) {
  const std::int64_t work = m * w.rows * w.cols;
  const int used = static_cast<int>(std::clamp<std::int64_t>(work / kMinGemmWorkPerThread, 1,
                                                             std::min<std::int64_t>(threads, m)));
  ThreadPool::global().run(used, [&](int i) {
    std::int64_t r0, r1;
    split_range(m, used, i, 1, &r0, &r1);
    matmul<T>(r1 - r0, 0, w.cols, a + r0 * lda, lda, w, false, c + r0 * ldc, ldc);
  });
}

template <typename T>
std::vector<Cell<T>> prepare(const Shape& s, const std::vector<CellWeights<T>>& cells) {
  std::vector<Cell<T>> out;
  const std::int64_t H = s.hidden_size;
  for (std::size_t c = 0; c < cells.size(); ++c) {
    const std::int64_t in = static_cast<std::int64_t>(c) < s.num_directions ? s.input_size
                                                                              : s.num_directions * H;
    out.push_back({Weight<T>(cells[c].w_x, in, H), Weight<T>(cells[c].w_y, H, H), cells[c].b,
                   cells[c].reverse, cells[c].activation});
  }
  return out;
}

namespace {

// Before each slice of a pass: once a slice's work has been done since the caller's check
// was last asked (so never in a short pass), asks it, and throws Interrupted if it says stop.
class Slices {
 public:
  explicit Slices(const StopCheck& stop) : stop_(stop) {}
  void next(std::int64_t work) {
    if (done_ >= slice_work.load(std::memory_order_relaxed)) {
      done_ = 0;
      if (stop_ && stop_()) throw Interrupted();
    }
    done_ += work;
  }

 private:
  const StopCheck& stop_;
  std::int64_t done_ = 0;  // multiply-adds since the last ask
};

}  // namespace

template <typename T>
void forward(const Shape& s, const std::vector<Cell<T>>& cells, const T* x, const T* h0,
             const std::int64_t* lengths, T* y, T* h_n, const StopCheck& stop) {
  keep_blas_single_threaded();
  const int threads = ThreadPool::global().threads();
  const std::int64_t H = s.hidden_size, D = s.num_directions, rows = s.steps * s.batch;
  const std::int64_t features = D * H;  // of every layer's output
  // Layers before the last write into these, alternately. No h0 means zeros, multiplied
  // like any state: 0 @ W_y is NaN where W_y has NaN or Inf.
  const std::int64_t betweens = std::min<std::int64_t>(s.num_layers - 1, 2), between_size = rows * features;
  const std::int64_t zeros_size = h0 ? 0 : s.num_layers * D * s.batch * H;
  std::vector<T> between[2], zeros;
  try {
    for (std::int64_t l = 0; l < betweens; ++l) between[l].resize(between_size);
    zeros.resize(zeros_size);
  } catch (const std::bad_alloc&) {
    throw BuffersTooLarge(std::int64_t(sizeof(T)) * (betweens * between_size + zeros_size));
  }
  if (!h0) h0 = zeros.data();

  Slices slices(stop);
  const T* in = x;
  std::int64_t in_features = s.input_size;
  for (std::int64_t l = 0; l < s.num_layers; ++l) {
    T* out = l + 1 == s.num_layers ? y : between[l % 2].data();
    for (std::int64_t d = 0; d < D; ++d) {
      const Cell<T>& cell = cells[l * D + d];
      const std::int64_t state = (l * D + d) * s.batch * H;
      // The projection goes straight into this direction's columns of the output.
      const std::int64_t slice_rows = units_per_slice(in_features * H);
      for (std::int64_t r0 = 0; r0 < rows; r0 += slice_rows) {
        const std::int64_t n = std::min(slice_rows, rows - r0);
        slices.next(n * in_features * H);
        parallel_matmul<T>(n, in + r0 * in_features, in_features, cell.w_x,
                           out + r0 * features + d * H, features, threads);
      }
      const Recurrence<T> r{s.steps, s.batch, H, cell.activation, cell.w_y, cell.b, cell.reverse,
                            h0 + state, lengths, out + d * H, features, h_n + state};
      const std::int64_t slice_steps = units_per_slice(s.batch * H * H);
      for (std::int64_t k = 0; k < s.steps; k += slice_steps) {
        const std::int64_t end = std::min(k + slice_steps, s.steps);
        slices.next((end - k) * s.batch * H * H);
        run_recurrence<T>(r, threads, k, end);
      }
    }
    in = out;
    in_features = features;
  }
}

#define ELMAN_INSTANTIATE(T)                                                                     \
  template std::vector<Cell<T>> prepare<T>(const Shape&, const std::vector<CellWeights<T>>&);   \
  template void forward<T>(const Shape&, const std::vector<Cell<T>>&, const T*, const T*,       \
                           const std::int64_t*, T*, T*, const StopCheck&);                       \
  template void parallel_matmul<T>(std::int64_t, const T*, std::int64_t, const Weight<T>&, T*,   \
                                   std::int64_t, int);
ELMAN_INSTANTIATE(float)
ELMAN_INSTANTIATE(double)

void set_num_threads(int n) { ThreadPool::global().set_threads(n); }

int num_threads() { return ThreadPool::global().threads(); }

int max_num_threads() { return ThreadPool::max_threads(); }

}  // namespace elman::cpu
