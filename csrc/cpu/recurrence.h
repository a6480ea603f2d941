// The time-step loop of one layer in one direction, spread over elman's threads.
#pragma once

#include <cstdint>

#include "activations.h"
#include "cpu/matmul.h"

namespace elman::cpu {

// y_t = act(p_t + y_{t-1} @ w_y + bias) over the steps, in place.
template <typename T>
struct Recurrence {
  std::int64_t steps, batch, hidden;
  ActivationParams act;
  const Weight<T>& w_y;          // (H, H)
  const T* bias;                 // (H,) or null
  bool reverse;                  // run each row from its last valid step down to 0
  const T* h0;                   // (batch, H): zeros when the caller gave none, since
                                 // 0 @ W_y is NaN where W_y holds NaN or Inf (IEEE)
  const std::int64_t* lengths;   // (batch,) or null (= all steps)
  // On entry row t*batch + b of y (row stride ldy) holds p_t = x_t @ w_x of batch row b;
  // on exit the output, exactly zero at steps >= lengths[b].
  T* y;
  std::int64_t ldy;
  T* h_n;  // (batch, H): each row's state after its last valid step
};

// Runs iterations [begin, end) of the steps (iteration k is step k, or step
// lengths[b] - 1 - k of row b in reverse) on up to `threads` threads (elman's pool);
// each range continues from the state the previous one left in y and h_n.
template <typename T>
void run_recurrence(const Recurrence<T>& r, int threads, std::int64_t begin, std::int64_t end);

}  // namespace elman::cpu
