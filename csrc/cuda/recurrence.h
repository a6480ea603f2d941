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

// y_t = act(p_t + y_{t-1} @ w_y + bias) over the steps for rows of y (row t*batch + b is
// step t of batch row b), values stored as S (float, __half or __nv_bfloat16), the
// products and activations in float. p may be y itself (float storage: in place).
template <typename S>
struct Recurrence {
  int steps, batch, hidden;
  const S* w_y;         // (H, H), row-major
  const float* bias;    // (H,) or null
  bool reverse;         // each row runs from its last valid step back to step 0
  DeviceActivation act;
  const S* h0;          // (batch, H), never null (zeros stand for "none")
  const int* lengths;   // (batch,) valid steps per row, device memory; null: all steps
  const float* p;       // the input projections, row stride ldp
  int ldp;
  S* y;                 // the outputs, row stride ldy
  int ldy;
  S* h_n;               // (batch, H): the state after each row's last valid step
  cudaStream_t stream;  // every launch and copy goes to this stream
};

// All steps of one layer and direction, outputs past each row's length set to 0. Where
// W_y fits on chip, one launch holds it there for the whole sequence (groups of rows in
// blocks or thread-block clusters, or the GPU with a grid barrier between steps); else,
// per step, a cuBLAS product into `product` (batch x H, float) and one kernel for bias,
// activation, output and the state `state` (batch x H, S).
// `timed`: the kernel chosen by timing (see set_timed_choice), else by the rule.
template <typename S>
void run_recurrence(const Recurrence<S>& r, bool timed, cublasHandle_t blas, S* state, float* product);

// Whether run_recurrence for that shape is one kernel on a few SMs that needs neither
// `state` nor `product`, so that another direction's may run beside it on another stream.
template <typename S>
bool recurrence_beside_another(int batch, int hidden, bool lengths, bool timed);

}  // namespace elman::cuda
