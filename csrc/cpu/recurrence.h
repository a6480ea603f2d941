// The time-step loop of one layer in one direction.
#pragma once

#include <cstdint>

#include "activations.h"

namespace elman::cpu {

// y_t = act(p_t + y_{t-1} @ w_y + bias) over the steps, in place: on entry the rows of y
// (row stride ldy, row t*batch + b for step t, batch row b) hold p_t = x_t @ w_x; on
// exit they hold the outputs, exactly zero at steps >= lengths[b]. w_y (H, H); bias (H,)
// or null; h0 (batch, H) or null (= zeros); lengths (batch,) or null (= all steps);
// reverse runs each row from its last valid step down to 0. h_n (batch, H) receives
// each row's state after its last valid step.
template <typename T>
void recurrence(std::int64_t steps, std::int64_t batch, std::int64_t H, Activation act,
                const T* w_y, const T* bias, bool reverse, const T* h0,
                const std::int64_t* lengths, T* y, std::int64_t ldy, T* h_n);

}  // namespace elman::cpu
