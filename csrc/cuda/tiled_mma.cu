// The recurrence on tensor cores for float16 / bfloat16 storage, in one cooperative launch.
// Block j owns the output columns [8 * CT * j, 8 * CT * (j + 1)): their slice of W_y,
// transposed, stays in shared memory for the whole sequence. Per step, warp w takes every
// 8th chunk of 32 k, loads the previous states of all rows for its chunks from L2 straight
// into registers (16 bytes per row and chunk, all issued before the first product), and
// multiplies them with mma.sync m16n8k16 (16-bit inputs, float accumulation) into each of
// the block's column tiles. The warps' partial sums meet in shared memory, and the block
// finishes its outputs as column_block.cuh describes; a grid barrier separates the steps.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16", 16-bit types), with
// g = lane / 4 and q = lane % 4:
//   A (16 x 16, row-major): regs {A[g][2q..2q+1]}, {A[g+8][2q..]}, {A[g][2q+8..]}, {A[g+8][2q+8..]}
//   B (16 x 8):             regs {B[2q..2q+1][g]}, {B[2q+8..2q+9][g]}
//   C (16 x 8, float):      C[g][2q], C[g][2q+1], C[g+8][2q], C[g+8][2q+1]
// A sum over k may take the k in any order as long as A and B agree. Lane q's k of a tile,
// 2q, 2q+1, 2q+8, 2q+9, stand for k = 8q .. 8q+3 of the chunk (its first tile) and
// 8q+4 .. 8q+7 (its second), so one 16-byte load per row holds a lane's A values of both
// tiles, and one 16-byte shared-memory load its B values. bench/cuda_kernel_emulation.py
// checks this indexing in NumPy.
#include <cooperative_groups.h>

#include <algorithm>
#include <cstdint>

#include "cuda/column_block.cuh"
#include "cuda/tiled_mma.h"

namespace cg = cooperative_groups;

namespace elman::cuda {
namespace {

using column_block::kThreads;
using column_block::kWarps;
constexpr int kChunk = 32;          // k per chunk: two m16n8k16 tiles
constexpr int kLoadsInFlight = 16;  // per thread: 16-byte state loads issued before the products
// 4 column tiles at most: 8 would only be needed past 32 * SMs columns, where such a slice
// of W_y exceeds shared memory (on GPUs of more than ~56 SMs).
constexpr int kMaxCols = 32;
static_assert(kMmaMaxRows == column_block::kMaxRows, "one row limit for the block's epilogue");

template <typename S>
__device__ __forceinline__ void mma(float (&c)[4], std::uint32_t a0, std::uint32_t a1,
                                    std::uint32_t a2, std::uint32_t a3, std::uint32_t b0,
                                    std::uint32_t b1);

template <>
__device__ __forceinline__ void mma<__nv_bfloat16>(float (&c)[4], std::uint32_t a0, std::uint32_t a1,
                                                   std::uint32_t a2, std::uint32_t a3,
                                                   std::uint32_t b0, std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

template <>
__device__ __forceinline__ void mma<__half>(float (&c)[4], std::uint32_t a0, std::uint32_t a1,
                                            std::uint32_t a2, std::uint32_t a3, std::uint32_t b0,
                                            std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Values k .. k+7 of a state row (zeros past H, or for an ended row), from L2: other blocks
// wrote them, and L1 is not coherent. vec: 16-byte aligned rows and H a multiple of 8.
template <typename S>
__device__ __forceinline__ uint4 load8(const S* row, int k, int hidden, bool vec) {
  uint4 v = make_uint4(0, 0, 0, 0);
  if (!row || k >= hidden) return v;
  if (vec) return __ldcg(reinterpret_cast<const uint4*>(row + k));
  const unsigned short* bits = reinterpret_cast<const unsigned short*>(row);
  std::uint32_t w[4] = {0, 0, 0, 0};
#pragma unroll
  for (int e = 0; e < 8; ++e)
    if (k + e < hidden) w[e / 2] |= (std::uint32_t)__ldcg(bits + k + e) << (16 * (e % 2));
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// RT: 16-row tiles covering the batch (1 or 2); CT: 8-column tiles per block (1, 2 or 4).
template <int RT, int CT, typename S>
__global__ void __launch_bounds__(kThreads, 1) tiled_mma(Recurrence<S> r, MmaShape s) {
  extern __shared__ uint4 smem16[];
  cg::grid_group grid = cg::this_grid();
  constexpr int kCols = CT * 8, kRows = RT * 16, kBatchChunks = kLoadsInFlight / (2 * RT);
  const int H = r.hidden, tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int g = lane / 4, q = lane % 4;
  const int c0 = (int)blockIdx.x * kCols, ncols = min(kCols, H - c0);
  const int chunks = (H + kChunk - 1) / kChunk;
  S* w_s = reinterpret_cast<S*>(smem16);                                   // kCols x stride
  float* partial = reinterpret_cast<float*>(w_s + (size_t)kCols * s.stride);  // warps x rows x cols
  float* ring = partial + kWarps * kRows * kCols;

  column_block::load_columns_transposed(r, c0, ncols, kCols, s.stride, w_s);
  column_block::Epilogue<kCols, S> epilogue(r, ring, c0, ncols);
  __syncthreads();

  for (int k = 0; k < r.steps; ++k) {
    epilogue.stage(r, k + column_block::kAhead - 1);
    // The rows this lane loads: rt * 16 + g and rt * 16 + g + 8.
    const S* src[RT][2];
#pragma unroll
    for (int rt = 0; rt < RT; ++rt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int b = rt * 16 + g + 8 * h;
        src[rt][h] = b < r.batch ? previous_state(r, k, b) : nullptr;
      }

    float acc[RT][CT][4] = {};
    for (int first = warp; first < chunks; first += kWarps * kBatchChunks) {
      uint4 a[kBatchChunks][RT][2];
#pragma unroll
      for (int i = 0; i < kBatchChunks; ++i)
#pragma unroll
        for (int rt = 0; rt < RT; ++rt)
#pragma unroll
          for (int h = 0; h < 2; ++h)
            a[i][rt][h] = load8(src[rt][h], (first + i * kWarps) * kChunk + 8 * q, H, s.vector_loads);
#pragma unroll
      for (int i = 0; i < kBatchChunks; ++i) {
        const int chunk = first + i * kWarps;
        if (chunk >= chunks) break;
        const S* w_row = w_s + (size_t)g * s.stride + chunk * kChunk + 8 * q;
#pragma unroll
        for (int ct = 0; ct < CT; ++ct) {
          const uint4 w = *reinterpret_cast<const uint4*>(w_row + (size_t)ct * 8 * s.stride);
#pragma unroll
          for (int rt = 0; rt < RT; ++rt) {
            const uint4 &lo = a[i][rt][0], &hi = a[i][rt][1];  // rows g and g + 8
            mma<S>(acc[rt][ct], lo.x, hi.x, lo.y, hi.y, w.x, w.y);
            mma<S>(acc[rt][ct], lo.z, hi.z, lo.w, hi.w, w.z, w.w);
          }
        }
      }
    }
#pragma unroll
    for (int rt = 0; rt < RT; ++rt)
#pragma unroll
      for (int ct = 0; ct < CT; ++ct) {
        float* out = partial + ((size_t)warp * kRows + rt * 16 + g) * kCols + ct * 8 + 2 * q;
        *reinterpret_cast<float2*>(out) = make_float2(acc[rt][ct][0], acc[rt][ct][1]);
        *reinterpret_cast<float2*>(out + 8 * kCols) = make_float2(acc[rt][ct][2], acc[rt][ct][3]);
      }
    __syncthreads();
    epilogue.template finish<kRows>(r, k, partial);
    grid.sync();  // also keeps partial from being overwritten before it is read
  }
  epilogue.drain();
}

template <int RT, typename S>
const void* kernel_for(int col_tiles) {
  switch (col_tiles) {
    case 1: return address(tiled_mma<RT, 1, S>);
    case 2: return address(tiled_mma<RT, 2, S>);
    default: return address(tiled_mma<RT, 4, S>);
  }
}

}  // namespace

template <typename S>
MmaPlan mma_plan(int batch, int hidden, const Device& d) {
  MmaPlan p;
  if (batch > kMmaMaxRows || d.major < 8) return p;
  const int row_tiles = (batch + 15) / 16, k_padded = (hidden + kChunk - 1) / kChunk * kChunk;
  // 32 (mod 64) values a row: the 16-byte loads of lanes g and g + 1 (same q) then fall
  // in different halves of the 128 bytes of banks.
  const int stride = k_padded % 64 == 32 ? k_padded : k_padded + 32;
  for (int col_tiles = 1; col_tiles <= kMaxCols / 8; col_tiles *= 2) {
    const int blocks = (hidden + col_tiles * 8 - 1) / (col_tiles * 8);
    if (blocks > d.sms) continue;
    const std::size_t smem = (size_t)col_tiles * 8 * stride * sizeof(S) +
                             column_block::epilogue_bytes(batch, row_tiles * 16, col_tiles * 8);
    if (smem > (size_t)d.smem_per_block) return p;  // wider tiles only need more
    p.shape = {row_tiles, col_tiles, stride, false};
    p.blocks = blocks;
    p.smem = smem;
    p.kernel = row_tiles == 1 ? kernel_for<1, S>(col_tiles) : kernel_for<2, S>(col_tiles);
    break;
  }
  return p.kernel && all_resident(p.kernel, kThreads, p.smem, p.blocks, d) ? p : MmaPlan{};
}

template <typename S>
void launch_mma(const Recurrence<S>& r, const MmaPlan& p) {
  MmaShape shape = p.shape;
  shape.vector_loads = vector_rows(r, 8);
  launch_cooperative(p.kernel, p.blocks, kThreads, p.smem, r, shape, "tensor-core kernel launch");
}

template MmaPlan mma_plan<__half>(int, int, const Device&);
template MmaPlan mma_plan<__nv_bfloat16>(int, int, const Device&);
template void launch_mma(const Recurrence<__half>&, const MmaPlan&);
template void launch_mma(const Recurrence<__nv_bfloat16>&, const MmaPlan&);

}  // namespace elman::cuda
