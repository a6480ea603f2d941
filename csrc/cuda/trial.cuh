// Timing one recurrence kernel on scratch memory, for the timed kernel choice
// (recurrence.cu).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>

#include "cuda/check.h"
#include "cuda/cuda.h"
#include "cuda/recurrence.h"

namespace elman::cuda {

// A trial run is kTrialSteps steps, fewer where its inputs and outputs would take more
// than kTrialBytes: long enough that a kernel's per-step time counts as well as its
// fixed cost per launch (loading W_y on chip, a cooperative launch).
constexpr int kTrialSteps = 40;
constexpr std::size_t kTrialBytes = std::size_t{64} << 20;

// A CUDA or cuBLAS handle's destroy function, for std::unique_ptr.
template <auto destroy>
struct Destroy {
  template <typename Handle>
  void operator()(Handle handle) const {
    destroy(handle);
  }
};

// Runs of a recurrence of one shape on zeros (a kernel's speed does not depend on the
// values) in memory of their own, on a stream of their own, on the current GPU.
template <typename S>
class Trial {
 public:
  Trial(int batch, int hidden, bool lengths) {
    const std::size_t n = (std::size_t)batch * hidden;
    const int steps = (int)std::clamp<std::size_t>(kTrialBytes / (n * (sizeof(float) + sizeof(S))), 1,
                                                   kTrialSteps);
    cudaStream_t stream;
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "creating a stream");
    stream_.reset(stream);
    for (auto* event : {&start_, &stop_}) {
      cudaEvent_t e;
      check(cudaEventCreate(&e), "creating an event");
      event->reset(e);
    }
    cublasHandle_t blas;
    check(cublasCreate(&blas), "creating a cuBLAS handle");
    blas_.reset(blas);
    r_ = {steps, batch, hidden, zeros<S>((std::size_t)hidden * hidden), nullptr, false,
          DeviceActivation{Activation::Tanh, 0.f, 0.f, 0.f, false}, zeros<S>(n), nullptr,
          zeros<float>(n * steps), hidden, zeros<S>(n * steps), hidden, zeros<S>(n), stream};
    state_ = zeros<S>(n);
    product_ = zeros<float>(n);
    if (lengths) {  // every row runs all steps: the kernels' paths with lengths, timed
      const std::vector<int> all(batch, steps);
      int* device_lengths = zeros<int>(batch);
      check(cudaMemcpyAsync(device_lengths, all.data(), batch * sizeof(int), cudaMemcpyHostToDevice, stream),
            "lengths to the device");
      check(cudaStreamSynchronize(stream), "lengths to the device");  // before `all` goes
      r_.lengths = device_lengths;
    }
  }

  ~Trial() { cudaStreamSynchronize(stream_.get()); }  // before the buffers are given back

  // The median of three timed calls of run(r, blas, state, product) (all steps of the
  // recurrence r on r.stream; state and product as run_recurrence takes them), after one
  // that loads its kernels.
  template <typename Run>
  float milliseconds(Run run) {
    run_once(run);
    float runs[3];
    for (float& ms : runs) ms = run_once(run);
    std::sort(runs, runs + 3);
    return runs[1];
  }

 private:
  template <typename Run>
  float run_once(Run run) {
    check(cudaEventRecord(start_.get(), stream_.get()), "timing a kernel");
    run(r_, blas_.get(), state_, product_);
    check(cudaEventRecord(stop_.get(), stream_.get()), "timing a kernel");
    check(cudaEventSynchronize(stop_.get()), "timing a kernel");
    float ms = 0.f;
    check(cudaEventElapsedTime(&ms, start_.get(), stop_.get()), "timing a kernel");
    return ms;
  }

  // `count` zeros of T in a new buffer, set on the trial's stream.
  template <typename T>
  T* zeros(std::size_t count) {
    buffers_.push_back(std::make_unique<Buffer>(count * sizeof(T)));
    check(cudaMemsetAsync(buffers_.back()->data(), 0, count * sizeof(T), stream_.get()),
          "zeroing trial memory");
    return static_cast<T*>(buffers_.back()->data());
  }

  // Declared first, destroyed last (also when the constructor fails part-way).
  std::unique_ptr<CUstream_st, Destroy<cudaStreamDestroy>> stream_;
  std::unique_ptr<CUevent_st, Destroy<cudaEventDestroy>> start_, stop_;
  std::unique_ptr<cublasContext, Destroy<cublasDestroy>> blas_;
  std::vector<std::unique_ptr<Buffer>> buffers_;
  Recurrence<S> r_{};
  S* state_ = nullptr;
  float* product_ = nullptr;
};

}  // namespace elman::cuda
