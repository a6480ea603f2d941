// Device helpers shared by the recurrence kernels (recurrence.cu, tiled.cu).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "cuda/check.h"
#include "cuda/recurrence.h"
#include "cuda/storage.cuh"

namespace elman::cuda {

// phi(clip(z)) for the layer's activation (the same functions as the CPU's epilogue).
__device__ inline float apply_activation(const DeviceActivation& a, float z) {
  if (a.clipped) z = elman::clip(z, a.clip);
  switch (a.kind) {
    case Activation::Tanh: return elman::activate<Activation::Tanh>(z, a.alpha, a.beta);
    case Activation::Relu: return elman::activate<Activation::Relu>(z, a.alpha, a.beta);
    case Activation::Sigmoid: return elman::activate<Activation::Sigmoid>(z, a.alpha, a.beta);
    case Activation::Affine: return elman::activate<Activation::Affine>(z, a.alpha, a.beta);
    case Activation::LeakyRelu: return elman::activate<Activation::LeakyRelu>(z, a.alpha, a.beta);
    case Activation::ThresholdedRelu:
      return elman::activate<Activation::ThresholdedRelu>(z, a.alpha, a.beta);
    case Activation::ScaledTanh: return elman::activate<Activation::ScaledTanh>(z, a.alpha, a.beta);
    case Activation::HardSigmoid: return elman::activate<Activation::HardSigmoid>(z, a.alpha, a.beta);
    case Activation::Elu: return elman::activate<Activation::Elu>(z, a.alpha, a.beta);
    case Activation::Softsign: return elman::activate<Activation::Softsign>(z, a.alpha, a.beta);
    default: return elman::activate<Activation::Softplus>(z, a.alpha, a.beta);
  }
}

__device__ inline float bias_at(const float* bias, int c) { return bias ? bias[c] : 0.f; }

// Row b's length (all steps without lengths).
template <typename S>
__device__ inline int length_of(const Recurrence<S>& r, int b) {
  return r.lengths ? r.lengths[b] : r.steps;
}

// Where row b's previous state is at iteration k (null once the row has ended).
template <typename S>
__device__ inline const S* previous_state(const Recurrence<S>& r, int k, int b) {
  const int length = length_of(r, b);
  if (k >= length) return nullptr;
  if (k == 0) return r.h0 + (size_t)b * r.hidden;
  const int t_prev = r.reverse ? length - k : k - 1;
  return r.y + ((size_t)t_prev * r.batch + b) * r.ldy;
}

// The row of y and p that iteration k of row b writes (-1 once the row has ended).
template <typename S>
__device__ inline long long output_row(const Recurrence<S>& r, int k, int b) {
  const int length = length_of(r, b);
  if (k >= length) return -1;
  const int t = r.reverse ? length - 1 - k : k;
  return (long long)t * r.batch + b;
}

// Writes output (row, c) of iteration k of batch row b, and the final state after its
// last step.
template <typename S>
__device__ inline void write_output(const Recurrence<S>& r, int k, int b, long long row, int c, float z) {
  const S v = from_float<S>(apply_activation(r.act, z));
  r.y[row * r.ldy + c] = v;
  if (k == length_of(r, b) - 1) r.h_n[(size_t)b * r.hidden + c] = v;
}

// Values k .. k+3 of a state row as floats (zeros past H, or for an ended row), from L2:
// other blocks wrote them, and L1 is not coherent. vec: vector_rows(r, 4) (H a multiple of
// 4, rows aligned to 4 values), so one 16-byte (float) or 8-byte (16-bit S) load.
template <typename S>
__device__ __forceinline__ float4 load4(const S* row, int k, int hidden, bool vec) {
  float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
  if (!row || k >= hidden) return v;
  if (vec) {
    if constexpr (std::is_same<S, float>::value) {
      return __ldcg(reinterpret_cast<const float4*>(row + k));
    } else {
      const uint2 bits = __ldcg(reinterpret_cast<const uint2*>(row + k));
      const S* four = reinterpret_cast<const S*>(&bits);
      return make_float4(to_float(four[0]), to_float(four[1]), to_float(four[2]), to_float(four[3]));
    }
  }
  v.x = load_cg(row + k);
  if (k + 1 < hidden) v.y = load_cg(row + k + 1);
  if (k + 2 < hidden) v.z = load_cg(row + k + 2);
  if (k + 3 < hidden) v.w = load_cg(row + k + 3);
  return v;
}

// Staging p_t a few steps ahead (a global load issued one step ahead was still pending when
// needed): cp.async (sm_80+) copies 4 bytes from global to shared memory without waiting;
// each thread commits one group of copies per step (maybe empty, so that counts agree) and
// waits until at most `Pending` groups are in flight, i.e. its oldest ones have landed.
__device__ __forceinline__ void copy_async_4(float* to, const float* from) {
  const unsigned dst = (unsigned)__cvta_generic_to_shared(to);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(from) : "memory");
}
__device__ __forceinline__ void commit_copies() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int Pending>
__device__ __forceinline__ void wait_copies() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
}

// store(i, load(i)) for i in [0, count), spread over the block's threads, with 8 loads
// in flight per thread: a loop of load-then-store waits out each load's latency in turn,
// and the kernels' prologues (W_y into shared memory) run at every call.
template <typename Load, typename Store>
__device__ void copy_in_flight(int count, Load load, Store store) {
  constexpr int kInFlight = 8;
  for (int i0 = threadIdx.x; i0 < count; i0 += kInFlight * blockDim.x) {
    decltype(load(0)) v[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u)
      if (i0 + u * (int)blockDim.x < count) v[u] = load(i0 + u * blockDim.x);
#pragma unroll
    for (int u = 0; u < kInFlight; ++u)
      if (i0 + u * (int)blockDim.x < count) store(i0 + u * blockDim.x, v[u]);
  }
}

// What a kernel launch needs to know about the current GPU.
struct Device {
  int sms, smem_per_block, major;
};

Device current_device();

// Whether `kernel` was compiled with thread-block clusters (for compute capability 9): a
// build for older GPUs only, run on a newer one through its PTX, has them compiled out.
bool has_clusters(const void* kernel);

// For a cooperative launch: raises the kernel's dynamic shared memory limit to the device's
// (not this plan's size: other plans share the kernel), and tells whether `blocks` blocks
// of `threads` with `smem` bytes each can all be resident, as a grid barrier requires.
bool all_resident(const void* kernel, int threads, std::size_t smem, int blocks, const Device& d);

// How a cooperative kernel (recurrence, shape) runs a case: its shape, grid and dynamic
// shared memory per block.
template <typename Shape>
struct CooperativePlan {
  Shape shape{};
  int blocks = 0;
  std::size_t smem = 0;
  const void* kernel = nullptr;  // null: does not fit
};

// One cooperative launch of kernel(r, shape) on r.stream; `what` names it in errors.
template <typename S, typename Shape>
void launch_cooperative(const void* kernel, int blocks, int threads, std::size_t smem,
                        const Recurrence<S>& r, Shape shape, const char* what) {
  Recurrence<S> args = r;
  void* params[] = {&args, &shape};
  check(cudaLaunchCooperativeKernel(kernel, blocks, threads, params, smem, r.stream), what);
}

// Whether the rows of y and h0 suit vector accesses of `per_vector` values each: H and y's
// row stride are multiples of it, and y and h0 are aligned to a vector's bytes.
template <typename S>
bool vector_rows(const Recurrence<S>& r, int per_vector) {
  const std::uintptr_t bytes = per_vector * sizeof(S);
  const auto aligned = [&](const void* q) { return reinterpret_cast<std::uintptr_t>(q) % bytes == 0; };
  return r.hidden % per_vector == 0 && r.ldy % per_vector == 0 && aligned(r.y) && aligned(r.h0);
}

// The launch attribute for a thread-block cluster of `blocks` along x (Hopper).
inline cudaLaunchAttribute cluster_of(int blocks) {
  cudaLaunchAttribute a;
  a.id = cudaLaunchAttributeClusterDimension;
  a.val.clusterDim.x = blocks;
  a.val.clusterDim.y = a.val.clusterDim.z = 1;
  return a;
}

// A kernel's address, for the launch functions that take any kernel.
template <typename Kernel>
const void* address(Kernel kernel) {
  return reinterpret_cast<const void*>(kernel);
}

}  // namespace elman::cuda
