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
  const float* w_y;     // (H, H), row-major
  const float* bias;    // (H,) or null
  bool reverse;         // each row runs from its last valid step back to step 0
  DeviceActivation act;
  const float* h0;      // (batch, H), never null (zeros stand for "none")
  const int* lengths;   // (batch,) valid steps per row, device memory; null: all steps
  float* y;
  int ldy;
  float* h_n;           // (batch, H): the state after each row's last valid step
  cudaStream_t stream;  // every launch and copy goes to this stream
};

// All steps of one layer and direction, outputs past each row's length set to 0. Where
// W_y fits on chip, one launch holds it there for the whole sequence (a thread-block
// cluster, or the whole GPU with a grid barrier between steps); else, per step, a cuBLAS
// product into `product` and one kernel for bias, activation, output and the state
// `state` (both batch x H).
void run_recurrence(const Recurrence& r, cublasHandle_t blas, float* state, float* product);

}  // namespace elman::cuda
