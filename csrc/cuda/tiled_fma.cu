// The recurrence for float32 batches of at most 32 rows on CUDA cores, in one cooperative
// launch, laid out like the tensor-core kernel (tiled_mma.cu). Block j owns COLS output
// columns: their slice of W_y, transposed, stays in shared memory for the whole sequence.
// Per step, warp w takes every 8th chunk of 32 k. Within a warp, lane (rg, kq) = (lane / 8,
// lane % 8) takes rows [rg * R, rg * R + R) of the (padded) batch, R = rows / 4, and k
// kq * 4 .. kq * 4 + 3 of each chunk: it loads those states from L2 straight into
// registers (one float4 per row and chunk; the 8 lanes of a row read 128 contiguous bytes)
// and multiplies them with the matching float4 of every column of the slice (the lanes of
// one kq read the same address), into R x COLS sums. The 8 lanes of a row group then
// reduce-scatter their sums by shuffles, each keeping R x COLS / 8 of them; the warps'
// partial sums meet in shared memory, and the block finishes its outputs as
// column_block.cuh describes. A grid barrier separates the steps.
// bench/cuda_kernel_emulation.py checks the lane indexing and the reduce-scatter in NumPy.
#include <cooperative_groups.h>

#include <algorithm>

#include "cuda/column_block.cuh"
#include "cuda/tiled_fma.h"

namespace cg = cooperative_groups;

namespace elman::cuda {
namespace {

using column_block::kThreads;
using column_block::kWarps;
constexpr int kChunk = 32;          // k per chunk: 8 lanes x 4
constexpr int kLoadsInFlight = 16;  // per thread: float4 state loads issued before the products

// One level of reduce_scatter: a lane holds 2 * HALF values; the half that its lane bit
// BIT selects stays (in v[0 .. HALF)), the other half goes to the partner, whose matching
// half is added.
template <int HALF, int BIT, int V>
__device__ __forceinline__ void reduce_level(float (&v)[V], int kq) {
  const bool upper = kq & BIT;
#pragma unroll
  for (int i = 0; i < HALF; ++i) {
    const float keep = upper ? v[HALF + i] : v[i], send = upper ? v[i] : v[HALF + i];
    v[i] = keep + __shfl_xor_sync(0xffffffffu, send, BIT);
  }
}

// Over the 8 lanes of a row group (lane bits 0-2), each lane's V sums become the totals of
// V / 8 of them: lane kq keeps values [kq * V / 8, (kq + 1) * V / 8), in v[0 .. V / 8).
template <int V>
__device__ __forceinline__ void reduce_scatter(float (&v)[V], int kq) {
  reduce_level<V / 2, 4>(v, kq);
  reduce_level<V / 4, 2>(v, kq);
  reduce_level<V / 8, 1>(v, kq);
}

// RT: 16-row tiles covering the batch (1 or 2); COLS: columns per block (8 or 16).
template <int RT, int COLS>
__global__ void __launch_bounds__(kThreads, 1) tiled_fma(Recurrence<float> r, FmaShape s) {
  extern __shared__ float4 smem4[];
  cg::grid_group grid = cg::this_grid();
  constexpr int kRows = RT * 16, R = kRows / 4, V = R * COLS;
  constexpr int kBatchChunks = kLoadsInFlight / (R * RT);  // two row tiles: fewer, as V doubles
  const int H = r.hidden, tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int rg = lane / 8, kq = lane % 8;
  const int c0 = (int)blockIdx.x * COLS, ncols = min(COLS, H - c0);
  const int chunks = (H + kChunk - 1) / kChunk;
  float* w_s = reinterpret_cast<float*>(smem4);  // COLS x stride
  float* partial = w_s + COLS * s.stride;        // warps x rows x cols
  float* ring = partial + kWarps * kRows * COLS;

  column_block::load_columns_transposed(r, c0, ncols, COLS, s.stride, w_s);
  column_block::Epilogue<COLS, float> epilogue(r, ring, c0, ncols);
  __syncthreads();

  for (int k = 0; k < r.steps; ++k) {
    epilogue.stage(r, k + column_block::kAhead - 1);
    const float* src[R];  // this lane's rows
#pragma unroll
    for (int i = 0; i < R; ++i) {
      const int b = rg * R + i;
      src[i] = b < r.batch ? previous_state(r, k, b) : nullptr;
    }

    float acc[V] = {};  // row i, column c at i * COLS + c
    for (int first = warp; first < chunks; first += kWarps * kBatchChunks) {
      float4 h[kBatchChunks][R];
#pragma unroll
      for (int j = 0; j < kBatchChunks; ++j)
#pragma unroll
        for (int i = 0; i < R; ++i)
          h[j][i] = load4(src[i], (first + j * kWarps) * kChunk + 4 * kq, H, s.vector_loads);
#pragma unroll
      for (int j = 0; j < kBatchChunks; ++j) {
        const int chunk = first + j * kWarps;
        if (chunk >= chunks) break;
        const float* w_k = w_s + chunk * kChunk + 4 * kq;
#pragma unroll
        for (int c = 0; c < COLS; ++c) {
          const float4 w = *reinterpret_cast<const float4*>(w_k + c * s.stride);
#pragma unroll
          for (int i = 0; i < R; ++i) {
            float& a = acc[i * COLS + c];
            a = fmaf(h[j][i].x, w.x, a);
            a = fmaf(h[j][i].y, w.y, a);
            a = fmaf(h[j][i].z, w.z, a);
            a = fmaf(h[j][i].w, w.w, a);
          }
        }
      }
    }
    reduce_scatter(acc, kq);
    // This lane's V / 8 totals: values kq * V / 8 + i of its row group's R x COLS, which
    // are contiguous in partial (rows x COLS, row-major), stored as float4s: scalar stores
    // V / 8 floats apart across the lanes hit the same banks (up to 16-way).
    float4* out = reinterpret_cast<float4*>(partial + (warp * kRows + rg * R) * COLS + kq * (V / 8));
#pragma unroll
    for (int i = 0; i < V / 8; i += 4) out[i / 4] = make_float4(acc[i], acc[i + 1], acc[i + 2], acc[i + 3]);
    __syncthreads();
    epilogue.template finish<kRows>(r, k, partial);
    grid.sync();  // also keeps partial from being overwritten before it is read
  }
  epilogue.drain();
}

template <int RT>
const void* kernel_for(int cols) {
  return cols == 8 ? address(tiled_fma<RT, 8>) : address(tiled_fma<RT, 16>);
}

}  // namespace

FmaPlan fma_plan(int batch, int hidden, const Device& d) {
  FmaPlan p;
  if (batch > column_block::kMaxRows || d.major < 8) return p;
  const int row_tiles = (batch + 15) / 16;
  const int stride = (hidden + kChunk - 1) / kChunk * kChunk;  // the 8 lanes of a kq read 128 contiguous bytes
  for (int cols = 8; cols <= 16; cols *= 2) {
    const int blocks = (hidden + cols - 1) / cols;
    if (blocks > d.sms) continue;
    const std::size_t smem = (size_t)cols * stride * sizeof(float) +
                             column_block::epilogue_bytes(batch, row_tiles * 16, cols);
    if (smem > (size_t)d.smem_per_block) return p;  // wider slices only need more
    p.shape = {row_tiles, cols, stride, false};
    p.blocks = blocks;
    p.smem = smem;
    p.kernel = row_tiles == 1 ? kernel_for<1>(cols) : kernel_for<2>(cols);
    break;
  }
  return p.kernel && all_resident(p.kernel, kThreads, p.smem, p.blocks, d) ? p : FmaPlan{};
}

void launch_fma(const Recurrence<float>& r, const FmaPlan& p) {
  FmaShape shape = p.shape;
  shape.vector_loads = vector_rows(r, 4);
  launch_cooperative(p.kernel, p.blocks, kThreads, p.smem, r, shape, "CUDA-core kernel launch");
}

}  // namespace elman::cuda
