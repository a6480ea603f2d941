// The recurrence of one row (B = 1) with H <= 256 in one block of 512 threads.
// A step then needs only the block's own barriers: no cluster or grid barrier, whose
// memory fences also wait for the step's output stores to drain, and no exchange of the
// state through L2 or other blocks' shared memory.
//
// Thread (c, half) owns column c and k in [128 * half, 128 * half + 128): the first 64 of
// those W_y values in registers, the other 64 in shared memory (as float4 per thread and 4
// k, consecutive threads adjacent, so that its loads are conflict-free). The state is in
// shared memory, double-buffered, and read by broadcast (all lanes of a warp have the same
// half). The upper half's sums meet the lower half's through shared memory; the lower half
// adds p_t + bias (loaded a step ahead), applies the activation and writes the output.
// Columns and k past H are zeros.
#include <cstdint>

#include "cuda/single_block.h"

namespace elman::cuda {
namespace {

constexpr int kColumns = 256, kThreads = 2 * kColumns;
constexpr int kInRegisters = 64, kInShared = 64, kPerThread = kInRegisters + kInShared;

template <typename S>
__global__ void __launch_bounds__(kThreads, 1) single_block(Recurrence<S> r) {
  extern __shared__ float4 smem4[];
  float4* w_s = smem4;                                             // kInShared / 4 x kThreads
  float* h_s = reinterpret_cast<float*>(w_s + kInShared / 4 * kThreads);  // 2 x kColumns
  float* upper = h_s + 2 * kColumns;                               // kColumns: the upper half's sums
  const int H = r.hidden, tid = threadIdx.x, c = tid % kColumns, half = tid / kColumns;
  const int k0 = half * kPerThread, steps = length_of(r, 0);
  const bool finisher = half == 0 && c < H;

  const auto w_at = [&](int k) { return k < H && c < H ? to_float(r.w_y[(size_t)k * H + c]) : 0.f; };
  float w_r[kInRegisters];
#pragma unroll
  for (int i = 0; i < kInRegisters; ++i) w_r[i] = w_at(k0 + i);
  for (int i = 0; i < kInShared / 4; ++i) {
    const int k = k0 + kInRegisters + 4 * i;
    w_s[i * kThreads + tid] = make_float4(w_at(k), w_at(k + 1), w_at(k + 2), w_at(k + 3));
  }
  if (half == 0) h_s[c] = c < H ? to_float(r.h0[c]) : 0.f;
  if (half == 0) h_s[kColumns + c] = 0.f;  // columns past H of the other buffer

  // p_t + bias of column c at iteration k. In place (p is y), the next step's value is
  // still there when it is loaded: only this thread overwrites it, in that step.
  const auto projection = [&](int k) {
    const int t = r.reverse ? steps - 1 - k : k;
    return r.p[(size_t)t * r.ldp + c] + bias_at(r.bias, c);
  };
  float next = finisher ? projection(0) : 0.f;
  __syncthreads();

  for (int k = 0; k < steps; ++k) {
    const float4* h = reinterpret_cast<const float4*>(h_s + (k & 1) * kColumns + k0);
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int i = 0; i < kInRegisters / 4; ++i) {
      const float4 hv = h[i];
      acc[0] = fmaf(hv.x, w_r[4 * i], acc[0]);
      acc[1] = fmaf(hv.y, w_r[4 * i + 1], acc[1]);
      acc[2] = fmaf(hv.z, w_r[4 * i + 2], acc[2]);
      acc[3] = fmaf(hv.w, w_r[4 * i + 3], acc[3]);
    }
#pragma unroll
    for (int i = 0; i < kInShared / 4; ++i) {
      const float4 hv = h[kInRegisters / 4 + i], wv = w_s[i * kThreads + tid];
      acc[0] = fmaf(hv.x, wv.x, acc[0]);
      acc[1] = fmaf(hv.y, wv.y, acc[1]);
      acc[2] = fmaf(hv.z, wv.z, acc[2]);
      acc[3] = fmaf(hv.w, wv.w, acc[3]);
    }
    const float sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    if (half == 1) upper[c] = sum;
    __syncthreads();
    if (finisher) {
      const int t = r.reverse ? steps - 1 - k : k;
      const S v = from_float<S>(apply_activation(r.act, next + sum + upper[c]));
      h_s[((k + 1) & 1) * kColumns + c] = to_float(v);  // as stored: the next step reads it so
      r.y[(size_t)t * r.ldy + c] = v;
      if (k == steps - 1) r.h_n[c] = v;
      if (k + 1 < steps) next = projection(k + 1);
    }
    __syncthreads();
  }
}

}  // namespace

template <typename S>
SingleBlockPlan single_block_plan(int batch, int hidden, const Device& d) {
  SingleBlockPlan p;
  p.smem = (size_t)kInShared * kThreads * sizeof(float) + 3 * kColumns * sizeof(float);
  if (batch != 1 || hidden > kColumns || p.smem > (size_t)d.smem_per_block) return {};
  p.kernel = address(single_block<S>);
  check(cudaFuncSetAttribute(p.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)p.smem),
        "single-block kernel shared memory");
  return p;
}

template <typename S>
void launch_single_block(const Recurrence<S>& r, const SingleBlockPlan& p) {
  Recurrence<S> args = r;
  void* params[] = {&args};
  check(cudaLaunchKernel(p.kernel, dim3(1), dim3(kThreads), params, p.smem, r.stream),
        "single-block kernel launch");
}

template SingleBlockPlan single_block_plan<float>(int, int, const Device&);
template SingleBlockPlan single_block_plan<__half>(int, int, const Device&);
template SingleBlockPlan single_block_plan<__nv_bfloat16>(int, int, const Device&);
template void launch_single_block(const Recurrence<float>&, const SingleBlockPlan&);
template void launch_single_block(const Recurrence<__half>&, const SingleBlockPlan&);
template void launch_single_block(const Recurrence<__nv_bfloat16>&, const SingleBlockPlan&);

}  // namespace elman::cuda
