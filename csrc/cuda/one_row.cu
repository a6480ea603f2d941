// The recurrence of one row (B = 1, lengths allowed) with H <= 128 in one block of 512
// threads, with W_y entirely in registers. A step then reads no weights from memory, and
// needs only the block's own barriers: no cluster or grid barrier, whose memory fences
// also wait for the step's output stores.
//
// Thread (c, part) owns column c and k in [32 * part, 32 * part + 32): 32 values of W_y in
// registers. The state is in shared memory, double-buffered, and read by broadcast (all
// lanes of a warp have the same part). Parts 1-3 leave their sums in shared memory; part 0
// adds them, p_t and the bias, applies the activation and writes the output. Columns and k
// past H are zeros.
//
// p_t is staged kAhead steps ahead with cp.async into a ring in shared memory: a load
// issued one step ahead was still pending when needed (a step is shorter than a global
// load's latency here; bench/results/gpu-check-h200-20261126-7/NOTES.md).
#include <cstdint>

#include "cuda/one_row.h"

namespace elman::cuda {
namespace {

constexpr int kColumns = kOneRowMaxHidden, kParts = 4, kThreads = kColumns * kParts;
constexpr int kPerThread = kColumns / kParts;  // k per thread
constexpr int kAhead = 8;                      // steps of p_t in flight

template <typename S>
__global__ void __launch_bounds__(kThreads, 1) one_row(Recurrence<S> r) {
  __shared__ __align__(16) float h_s[2][kColumns];
  __shared__ float partial[kParts - 1][kColumns];
  __shared__ float ring[kAhead][kColumns];  // p_t of the coming steps
  const int H = r.hidden, tid = threadIdx.x, c = tid % kColumns, part = tid / kColumns;
  const int k0 = part * kPerThread, steps = length_of(r, 0);
  const bool finisher = part == 0 && c < H;

  float w[kPerThread];
#pragma unroll
  for (int i = 0; i < kPerThread; ++i)
    w[i] = k0 + i < H && c < H ? to_float(r.w_y[(size_t)(k0 + i) * H + c]) : 0.f;
  const float bias = finisher ? bias_at(r.bias, c) : 0.f;
  if (part == 0) {
    h_s[0][c] = c < H ? to_float(r.h0[c]) : 0.f;
    h_s[1][c] = 0.f;  // columns past H stay 0
  }
  // p_t of iteration k into its ring slot. Every thread commits a group per step (maybe
  // empty), so the group count is the same everywhere. In place (p is y), a step's p_t is
  // read before that step overwrites it, and only by this thread.
  const auto stage = [&](int k) {
    if (finisher && k < steps) {
      const int t = r.reverse ? steps - 1 - k : k;
      copy_async_4(&ring[k % kAhead][c], r.p + (size_t)t * r.ldp + c);
    }
    commit_copies();
  };
  for (int k = 0; k < kAhead - 1; ++k) stage(k);
  __syncthreads();

  for (int k = 0; k < steps; ++k) {
    stage(k + kAhead - 1);  // into the slot step k - 1 used
    const float4* h = reinterpret_cast<const float4*>(&h_s[k & 1][k0]);
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int i = 0; i < kPerThread / 4; ++i) {
      const float4 hv = h[i];
      acc[0] = fmaf(hv.x, w[4 * i], acc[0]);
      acc[1] = fmaf(hv.y, w[4 * i + 1], acc[1]);
      acc[2] = fmaf(hv.z, w[4 * i + 2], acc[2]);
      acc[3] = fmaf(hv.w, w[4 * i + 3], acc[3]);
    }
    const float sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    if (part > 0) partial[part - 1][c] = sum;
    wait_copies<kAhead - 1>();  // this step's p_t has landed
    __syncthreads();
    if (finisher) {
      const int t = r.reverse ? steps - 1 - k : k;
      const float z = ring[k % kAhead][c] + bias + sum + (partial[0][c] + partial[1][c] + partial[2][c]);
      const S v = from_float<S>(apply_activation(r.act, z));
      h_s[(k + 1) & 1][c] = to_float(v);  // as stored: the next step reads it so
      r.y[(size_t)t * r.ldy + c] = v;
      if (k == steps - 1) r.h_n[c] = v;
    }
    __syncthreads();
  }
  wait_copies<0>();  // nothing left in flight at exit
}

}  // namespace

bool one_row_fits(int batch, int hidden) { return batch == 1 && hidden <= kOneRowMaxHidden; }

template <typename S>
void launch_one_row(const Recurrence<S>& r) {
  one_row<S><<<1, kThreads, 0, r.stream>>>(r);
  check(cudaGetLastError(), "one-row kernel launch");
}

template void launch_one_row(const Recurrence<float>&);
template void launch_one_row(const Recurrence<__half>&);
template void launch_one_row(const Recurrence<__nv_bfloat16>&);

}  // namespace elman::cuda
