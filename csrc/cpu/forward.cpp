// The forward pass of a layer stack on the CPU: per layer and direction, one GEMM for
// the input projection of all steps and rows, then the time-step loop.
#include <vector>

#include "cpu/blas.h"
#include "cpu/recurrence.h"
#include "elman.h"

namespace elman::cpu {

template <typename T>
void forward(const Shape& s, Activation act, const CellWeights<T>* cells, const T* x,
             const T* h0, const std::int64_t* lengths, T* y, T* h_n) {
  const std::int64_t H = s.hidden_size, D = s.num_directions, rows = s.steps * s.batch;
  const std::int64_t features = D * H;  // of every layer's output
  // Layers before the last write into these, alternately.
  std::vector<T> between[2];
  for (std::int64_t l = 0; l + 1 < s.num_layers && l < 2; ++l) between[l].resize(rows * features);

  const T* in = x;
  std::int64_t in_features = s.input_size;
  for (std::int64_t l = 0; l < s.num_layers; ++l) {
    T* out = l + 1 == s.num_layers ? y : between[l % 2].data();
    for (std::int64_t d = 0; d < D; ++d) {
      const CellWeights<T>& w = cells[l * D + d];
      const std::int64_t state = (l * D + d) * s.batch * H;
      // The projection goes straight into this direction's columns of the output.
      gemm<T>(rows, H, in_features, in, in_features, w.w_x, H, T(0), out + d * H, features);
      recurrence<T>(s.steps, s.batch, H, act, w.w_y, w.b, w.reverse, h0 ? h0 + state : nullptr,
                    lengths, out + d * H, features, h_n + state);
    }
    in = out;
    in_features = features;
  }
}

template void forward<float>(const Shape&, Activation, const CellWeights<float>*, const float*,
                             const float*, const std::int64_t*, float*, float*);
template void forward<double>(const Shape&, Activation, const CellWeights<double>*, const double*,
                              const double*, const std::int64_t*, double*, double*);

}  // namespace elman::cpu
