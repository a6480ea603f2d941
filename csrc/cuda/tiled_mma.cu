// The recurrence on tensor cores for float16 / bfloat16 storage, in one cooperative launch:
// block j keeps W_y's columns [8 * col_tiles * j, ...) for all k in shared memory,
// transposed (column-major, so that a thread's two consecutive k are one 32-bit load).
// Per step it copies the previous states of all rows (at most kMmaMaxRows) into shared
// memory, and each warp multiplies with mma.sync m16n8k16 (16-bit inputs, float
// accumulation) over its share of k for one 8-column tile; the warps' partial sums are
// added in shared memory, then bias and activation, and a grid barrier separates steps.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16", 16-bit types), with
// g = lane / 4 and q = lane % 4:
//   A (16 x 16, row-major): regs {A[g][2q..2q+1]}, {A[g+8][2q..]}, {A[g][2q+8..]}, {A[g+8][2q+8..]}
//   B (16 x 8):             regs {B[2q..2q+1][g]}, {B[2q+8..2q+9][g]}
//   C (16 x 8, float):      C[g][2q], C[g][2q+1], C[g+8][2q], C[g+8][2q+1]
#include <cooperative_groups.h>

#include <algorithm>
#include <cstdint>

#include "cuda/tiled_mma.h"

namespace cg = cooperative_groups;

namespace elman::cuda {
namespace {

constexpr int kThreads = 256, kWarps = kThreads / 32;

template <typename S>
__device__ __forceinline__ void mma(float (&c)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]);

template <>
__device__ __forceinline__ void mma<__nv_bfloat16>(float (&c)[4], const std::uint32_t (&a)[4],
                                                   const std::uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <>
__device__ __forceinline__ void mma<__half>(float (&c)[4], const std::uint32_t (&a)[4],
                                            const std::uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Two consecutive 16-bit values as one register.
template <typename S>
__device__ __forceinline__ std::uint32_t pair_at(const S* p) {
  return *reinterpret_cast<const std::uint32_t*>(p);
}

// Copies each live row's previous state (H values) into h_s (row i at i * stride), a
// warp per row, from L2 (other blocks wrote them; L1 is not coherent). V: S, or uint4
// (8 values) for aligned rows.
template <typename V, typename S>
__device__ void copy_states(const S* const* src, int nrows, int hidden, int stride, S* h_s) {
  constexpr int kWidth = sizeof(V) / sizeof(S), kInFlight = 4;
  const int per_row = hidden / kWidth, lane = threadIdx.x % 32;
  for (int i = threadIdx.x / 32; i < nrows; i += kWarps) {
    if (!src[i]) continue;
    const V* from = reinterpret_cast<const V*>(src[i]);
    V* to = reinterpret_cast<V*>(h_s + (size_t)i * stride);
    for (int q0 = lane; q0 < per_row; q0 += kInFlight * 32) {
      V v[kInFlight];
#pragma unroll
      for (int u = 0; u < kInFlight; ++u)
        if (q0 + 32 * u < per_row) v[u] = __ldcg(from + q0 + 32 * u);
#pragma unroll
      for (int u = 0; u < kInFlight; ++u)
        if (q0 + 32 * u < per_row) to[q0 + 32 * u] = v[u];
    }
  }
}

template <typename S>
__global__ void __launch_bounds__(kThreads, 1) tiled_mma(Recurrence<S> r, MmaShape s) {
  extern __shared__ float4 smem4[];
  cg::grid_group grid = cg::this_grid();
  const int H = r.hidden, tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int cols = s.col_tiles * 8, c0 = (int)blockIdx.x * cols, ncols = min(cols, H - c0);
  const int rows = s.row_tiles * 16;
  S* w_s = reinterpret_cast<S*>(smem4);                    // cols x stride: W_y^T slice
  S* h_s = w_s + (size_t)cols * s.stride;                  // rows x stride
  float* partial = reinterpret_cast<float*>(h_s + (size_t)rows * s.stride);  // warps x rows x cols
  const S** src = reinterpret_cast<const S**>(partial + (size_t)kWarps * rows * cols);

  // W_y's columns, transposed; zeros past H (both ways) and in the padding.
  for (int i = tid; i < cols * s.stride; i += kThreads) w_s[i] = from_float<S>(0.f);
  for (int i = tid; i < rows * s.stride; i += kThreads) h_s[i] = from_float<S>(0.f);
  __syncthreads();
  for (int i = tid; i < H * ncols; i += kThreads) {  // consecutive threads: consecutive columns
    const int k = i / ncols, n = i - k * ncols;
    w_s[(size_t)n * s.stride + k] = r.w_y[(size_t)k * H + c0 + n];
  }

  const int col_tile = warp % s.col_tiles, k_warps = kWarps / s.col_tiles, k_part = warp / s.col_tiles;
  const int g = lane / 4, q = lane % 4;
  const int k_tiles = s.k_padded / 16;
  for (int k = 0; k < r.steps; ++k) {
    if (tid < r.batch) src[tid] = previous_state(r, k, tid);
    __syncthreads();  // src written (and, first, W_y)
    if (s.vector_copy)
      copy_states<uint4>(src, r.batch, H, s.stride, h_s);
    else
      copy_states<S>(src, r.batch, H, s.stride, h_s);
    __syncthreads();
    for (int rt = 0; rt < s.row_tiles; ++rt) {
      float acc[4] = {0.f, 0.f, 0.f, 0.f};
      const S* a_row0 = h_s + (size_t)(rt * 16 + g) * s.stride + 2 * q;
      const S* a_row8 = a_row0 + (size_t)8 * s.stride;
      const S* b_col = w_s + (size_t)(col_tile * 8 + g) * s.stride + 2 * q;
      for (int kt = k_part; kt < k_tiles; kt += k_warps) {
        const int k16 = kt * 16;
        const std::uint32_t a[4] = {pair_at(a_row0 + k16), pair_at(a_row8 + k16),
                                    pair_at(a_row0 + k16 + 8), pair_at(a_row8 + k16 + 8)};
        const std::uint32_t b[2] = {pair_at(b_col + k16), pair_at(b_col + k16 + 8)};
        mma<S>(acc, a, b);
      }
      float* out = partial + ((size_t)k_part * rows + rt * 16) * cols + col_tile * 8;
      out[g * cols + 2 * q] = acc[0];
      out[g * cols + 2 * q + 1] = acc[1];
      out[(g + 8) * cols + 2 * q] = acc[2];
      out[(g + 8) * cols + 2 * q + 1] = acc[3];
    }
    __syncthreads();
    for (int o = tid; o < r.batch * cols; o += kThreads) {
      const int b = o / cols, j = o - b * cols;
      const long long row = j < ncols ? output_row(r, k, b) : -1;
      if (row < 0) continue;
      float sum = r.p[row * r.ldp + c0 + j] + bias_at(r.bias, c0 + j);
      for (int w = 0; w < k_warps; ++w) sum += partial[((size_t)w * rows + b) * cols + j];
      write_output(r, k, b, row, c0 + j, sum);
    }
    grid.sync();
  }
}

}  // namespace

template <typename S>
MmaPlan mma_plan(int batch, int hidden, const Device& d) {
  MmaPlan p;
  if (batch > kMmaMaxRows || d.major < 8) return p;
  const int row_tiles = (batch + 15) / 16, k_padded = (hidden + 15) / 16 * 16;
  // k_padded + 8 values a row: (4 mod 8) 32-bit words, so the 8 rows a warp reads at once
  // (g = 0..7, 4 consecutive words each) fall in 8 different groups of 4 banks.
  const int stride = k_padded + 8;
  for (int col_tiles = 1; col_tiles <= 8; col_tiles *= 2) {
    const int blocks = (hidden + col_tiles * 8 - 1) / (col_tiles * 8);
    if (blocks > d.sms) continue;
    const std::size_t smem = (size_t)(col_tiles * 8 + row_tiles * 16) * stride * sizeof(S) +
                             (size_t)kWarps * row_tiles * 16 * col_tiles * 8 * sizeof(float) +
                             (size_t)kMmaMaxRows * sizeof(void*);
    if (smem > (size_t)d.smem_per_block) return p;  // wider tiles only need more
    p.shape = {row_tiles, col_tiles, k_padded, stride, false};
    p.blocks = blocks;
    p.smem = smem;
    p.kernel = address(tiled_mma<S>);
    break;
  }
  if (!p.kernel) return p;
  check(cudaFuncSetAttribute(p.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, d.smem_per_block),
        "tensor-core kernel shared memory");
  int per_sm = 0;
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, p.kernel, kThreads, p.smem),
        "tensor-core kernel occupancy");
  return per_sm * d.sms >= p.blocks ? p : MmaPlan{};
}

template <typename S>
void launch_mma(const Recurrence<S>& r, const MmaPlan& p) {
  Recurrence<S> args = r;
  MmaShape shape = p.shape;
  const auto aligned = [](const void* q) { return reinterpret_cast<std::uintptr_t>(q) % 16 == 0; };
  shape.vector_copy = r.hidden % 8 == 0 && r.ldy % 8 == 0 && aligned(r.y) && aligned(r.h0);
  void* params[] = {&args, &shape};
  check(cudaLaunchCooperativeKernel(p.kernel, p.blocks, kThreads, params, p.smem, r.stream),
        "tensor-core kernel launch");
}

template MmaPlan mma_plan<__half>(int, int, const Device&);
template MmaPlan mma_plan<__nv_bfloat16>(int, int, const Device&);
template void launch_mma(const Recurrence<__half>&, const MmaPlan&);
template void launch_mma(const Recurrence<__nv_bfloat16>&, const MmaPlan&);

}  // namespace elman::cuda
