// The time-step loop of one layer and direction on the GPU (see forward.cu).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "activations.h"

namespace elman::cuda {

// An activation with its parameters in float, passed to kernels by value.
struct DeviceActivation {
  Activation kind;
  float alpha, beta, clip;
  bool clipped;
};

// y_t = act(p_t + y_{t-1} @ w_y + bias) over the steps, in place, for rows of y with
// row stride ldy (row t*batch + b is step t of batch row b, holding p_t on entry).
struct Recurrence {
  int steps, batch, hidden;
  const float* w_y;   // (H, H), row-major
  const float* bias;  // (H,) or null
  bool reverse;
  DeviceActivation act;
  const float* h0;    // (batch, H), never null (zeros stand for "none")
  float* y;
  int ldy;
  float* h_n;         // (batch, H): the state after each row's last valid step
};

// All steps in one launch, W_y held on chip: a single thread-block cluster (Hopper) for
// small H and B, or a cooperative grid with a barrier between steps. Every row runs all
// steps. Returns false, having done nothing, when neither fits.
bool run_on_chip(const Recurrence& r);

// The fallback, any size and per-row lengths (device array, or null = all steps): per
// step a cuBLAS product into `product` (batch x H), then one kernel for bias, activation,
// the output and the state `state` (batch x H, starting as h0).
void run_stepwise(const Recurrence& r, const int* lengths, cublasHandle_t blas, float* state,
                  float* product);

}  // namespace elman::cuda
