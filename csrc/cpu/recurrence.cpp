#include "cpu/recurrence.h"

#include <algorithm>
#include <vector>

#include "cpu/blas.h"
#include "cpu/epilogue.h"

namespace elman::cpu {
namespace {

// Every row runs all steps: the recurrent product of step t accumulates straight into
// the rows of step t, which already hold the input projection.
template <typename T>
void full_length(std::int64_t steps, std::int64_t batch, std::int64_t H, Activation act,
                 const T* w_y, const T* bias, bool reverse, const T* h0, T* y, std::int64_t ldy,
                 T* h_n) {
  const T* prev = h0;
  std::int64_t ld_prev = H;
  for (std::int64_t k = 0; k < steps; ++k) {
    T* yt = y + (reverse ? steps - 1 - k : k) * batch * ldy;
    if (prev) gemm<T>(batch, H, H, prev, ld_prev, w_y, H, T(1), yt, ldy);
    for (std::int64_t b = 0; b < batch; ++b) bias_activation(H, yt + b * ldy, nullptr, bias, act);
    prev = yt;
    ld_prev = ldy;
  }
  for (std::int64_t b = 0; b < batch; ++b) std::copy(prev + b * ldy, prev + b * ldy + H, h_n + b * H);
}

// Rows have their own lengths, so in the backward direction they sit at different
// steps at the same iteration: the state lives in h_n, and each row's recurrent
// product is taken from a separate buffer.
template <typename T>
void variable_length(std::int64_t steps, std::int64_t batch, std::int64_t H, Activation act,
                     const T* w_y, const T* bias, bool reverse, const T* h0,
                     const std::int64_t* lengths, T* y, std::int64_t ldy, T* h_n) {
  if (h0)
    std::copy(h0, h0 + batch * H, h_n);
  else
    std::fill(h_n, h_n + batch * H, T(0));
  std::vector<T> recurrent(batch * H);
  for (std::int64_t k = 0; k < steps; ++k) {
    const bool zero_state = k == 0 && !h0;
    if (!zero_state) gemm<T>(batch, H, H, h_n, H, w_y, H, T(0), recurrent.data(), H);
    for (std::int64_t b = 0; b < batch; ++b) {
      if (k >= lengths[b]) continue;
      const std::int64_t t = reverse ? lengths[b] - 1 - k : k;
      T* row = y + (t * batch + b) * ldy;
      bias_activation(H, row, zero_state ? nullptr : recurrent.data() + b * H, bias, act);
      std::copy(row, row + H, h_n + b * H);
    }
  }
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t t = lengths[b]; t < steps; ++t) {
      T* row = y + (t * batch + b) * ldy;
      std::fill(row, row + H, T(0));
    }
}

}  // namespace

template <typename T>
void recurrence(std::int64_t steps, std::int64_t batch, std::int64_t H, Activation act,
                const T* w_y, const T* bias, bool reverse, const T* h0,
                const std::int64_t* lengths, T* y, std::int64_t ldy, T* h_n) {
  const bool all_full = !lengths || std::all_of(lengths, lengths + batch,
                                                [steps](std::int64_t n) { return n == steps; });
  if (all_full)
    full_length(steps, batch, H, act, w_y, bias, reverse, h0, y, ldy, h_n);
  else
    variable_length(steps, batch, H, act, w_y, bias, reverse, h0, lengths, y, ldy, h_n);
}

template void recurrence<float>(std::int64_t, std::int64_t, std::int64_t, Activation, const float*,
                                const float*, bool, const float*, const std::int64_t*, float*,
                                std::int64_t, float*);
template void recurrence<double>(std::int64_t, std::int64_t, std::int64_t, Activation,
                                 const double*, const double*, bool, const double*,
                                 const std::int64_t*, double*, std::int64_t, double*);

}  // namespace elman::cpu
