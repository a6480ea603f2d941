// The kernel interface, backend-neutral: plain pointers, sizes and enums.
//
// Every array is dense and row-major (C order). Shapes, with
//   T steps, B batch rows, I input features, H hidden units, L layers, D directions:
//   x       (T, B, I)        input
//   h0      (L*D, B, H)      initial state, layer-major, direction-minor; null = zeros
//   lengths (B,)             valid steps per batch row, 1..T; null = all T
//   y       (T, B, D*H)      output of the last layer, [forward, backward] per row
//   h_n     (L*D, B, H)      final state, ordered as h0
// Weights of layer l, direction d (cells[l*D + d]), in the orientation of
//   y_t = act(x_t @ w_x + y_{t-1} @ w_y + b):
//   w_x (I_l, H) with I_0 = I and I_l = D*H for l > 0;  w_y (H, H);  b (H,) or null;
//   reverse: run backwards in time, within each row's valid steps (a bidirectional
//   layer's direction 1; a lone reverse direction as ONNX's direction="reverse");
//   activation: act and its clip (per cell, as ONNX allows one per direction).
#pragma once

#include <cstdint>
#include <new>

#include "activations.h"

namespace elman {

struct Shape {
  std::int64_t steps, batch, input_size, hidden_size, num_layers, num_directions;
};

template <typename T>
struct CellWeights {
  const T* w_x;
  const T* w_y;
  const T* b;
  bool reverse;
  ActivationParams activation;
};

// Thrown by a forward pass whose own buffers (outputs of the layers before the last, and
// zeros standing for a null h0) cannot be allocated, with their size for the user's error.
struct BuffersTooLarge : std::bad_alloc {
  explicit BuffersTooLarge(std::int64_t bytes) : bytes(bytes) {}
  std::int64_t bytes;
};

}  // namespace elman
