// The recurrence for large batches in one cooperative launch, each step cut like an
// SGEMM, in float32 arithmetic for every storage type, where few_rows and the column-block
// kernels cannot run and a step's product is small (recurrence.cu's rule).
//
// The B x H output of a step is cut into BM x BN tiles, one per block; block (i, j) keeps
// W_y's columns [j BN, j BN + BN) in shared memory for the whole sequence. Per step it
// copies its BM rows of the previous states from L2 in chunks of k, transposed (k-major)
// into shared memory, double-buffered: the next chunk's loads are issued before this
// chunk's products and stored after them. Each thread owns a 4 x 4 register tile of the
// output and one part of each chunk's k: per k two 16-byte shared loads (4 states, 4
// weights) feed 16 FMAs, where tiled.cu's threads load 5 values for at most 16. The parts'
// sums meet in shared memory, the block finishes its outputs as column_block.cuh
// describes (p_t staged ahead), and a grid barrier separates the steps. Rows with lengths
// run from their own first (or, reversed, last) valid step.
#include <cooperative_groups.h>

#include <algorithm>
#include <cmath>

#include "cuda/column_block.cuh"
#include "cuda/tiled_gemm.h"

namespace cg = cooperative_groups;

namespace elman::cuda {
namespace {

using column_block::kThreads;
constexpr int kMaxStaged = 8;  // float4 of a chunk's states per thread, held in registers

// A block's BM x BN output tile: kSliceThreads threads cover it with 4 x 4 register tiles,
// and kParts such sets of threads split k.
template <int BM, int BN>
struct Tile {
  static constexpr int kSliceThreads = (BM / 4) * (BN / 4);
  static constexpr int kParts = kThreads / kSliceThreads;
  // Floats per k of the copied states: 16-byte aligned, and 4 * kStride = 16 (mod 32), so
  // that the copy's two lanes per row (k 4 apart) store to different banks.
  static constexpr int kStride = BM + 4;
  // A warp spans at most two parts (16 x 16: two k rows of the copy at once, at worst a
  // two-way bank conflict).
  static_assert(kSliceThreads >= 16 && kThreads % kSliceThreads == 0, "a warp within two parts");
  static_assert(BM % 16 == 0 && BN % 4 == 0, "a copy warp covers 16 rows");
};

template <int BM, int BN, typename S>
__global__ void __launch_bounds__(kThreads, 1) tiled_gemm(Recurrence<S> r, GemmShape s) {
  using T = Tile<BM, BN>;
  constexpr int kParts = T::kParts, HS = T::kStride, kItems = BM * BN / kThreads;
  extern __shared__ float4 smem4[];
  cg::grid_group grid = cg::this_grid();
  const int H = r.hidden, tid = threadIdx.x, kc = s.chunk, per_part = kc / kParts;
  const int r0 = (int)(blockIdx.x % s.row_blocks) * BM, c0 = (int)(blockIdx.x / s.row_blocks) * BN;
  const int ncols = min(BN, H - c0), quads = BM * kc / 4 / kThreads;  // quads <= kMaxStaged
  float* w_s = reinterpret_cast<float*>(smem4);               // chunks * kc x BN
  float* h_s = w_s + (size_t)s.chunks * kc * BN;              // 2 x kc x HS
  float* partial = h_s + 2 * (size_t)kc * HS;                 // kParts x BM x BN
  float* ring = partial + kParts * BM * BN;                   // the epilogue's
  const S** src = reinterpret_cast<const S**>(ring + column_block::kAhead * kItems * kThreads);

  const int part = tid / T::kSliceThreads, t = tid % T::kSliceThreads;
  const int tc = t % (BN / 4) * 4, tr = t / (BN / 4) * 4;  // this thread's tile

  copy_in_flight(
      s.chunks * kc * BN,
      [&](int i) {
        const int k = i / BN, j = i % BN;
        return k < H && j < ncols ? to_float(r.w_y[(size_t)k * H + c0 + j]) : 0.f;
      },
      [&](int i, float w) { w_s[i] = w; });
  column_block::Epilogue<BN, S, BM> epilogue(r, ring, c0, ncols, r0);

  // Quad q of a chunk (4 consecutive k of one row): row (q / 2) % BM, k 8 (q / 2BM) + 4 (q % 2),
  // so that two lanes read a row's 32 contiguous bytes and a warp 16 rows.
  const auto quad_row = [](int q) { return (q >> 1) % BM; };
  const auto quad_k = [](int q) { return 8 * (q / (2 * BM)) + 4 * (q & 1); };
  const auto load_chunk = [&](int c, float4(&v)[kMaxStaged]) {
#pragma unroll
    for (int u = 0; u < kMaxStaged; ++u) {
      const int q = tid + u * kThreads;
      if (u < quads) v[u] = load4(src[quad_row(q)], c * kc + quad_k(q), H, s.vector_loads);
    }
  };
  const auto store_chunk = [&](const float4(&v)[kMaxStaged], float* to) {
#pragma unroll
    for (int u = 0; u < kMaxStaged; ++u) {
      const int q = tid + u * kThreads;
      if (u < quads) {
        float* d = to + quad_k(q) * HS + quad_row(q);
        d[0] = v[u].x;
        d[HS] = v[u].y;
        d[2 * HS] = v[u].z;
        d[3 * HS] = v[u].w;
      }
    }
  };
  // This thread's part of chunk c's k, from the copy in buf.
  const auto multiply = [&](const float* buf, int c, float(&acc)[4][4]) {
    const float* h = buf + part * per_part * HS + tr;
    const float* w = w_s + (size_t)(c * kc + part * per_part) * BN + tc;
#pragma unroll 4
    for (int kk = 0; kk < per_part; ++kk) {
      const float4 hv = *reinterpret_cast<const float4*>(h + kk * HS);
      const float4 wv = *reinterpret_cast<const float4*>(w + kk * BN);
      const float hs[4] = {hv.x, hv.y, hv.z, hv.w}, ws[4] = {wv.x, wv.y, wv.z, wv.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(hs[i], ws[j], acc[i][j]);
    }
  };

  float4 staged[kMaxStaged];
  for (int k = 0; k < r.steps; ++k) {
    epilogue.stage(r, k + column_block::kAhead - 1);
    if (tid < BM) src[tid] = r0 + tid < r.batch ? previous_state(r, k, r0 + tid) : nullptr;
    __syncthreads();  // src set (W_y's slice too, at k = 0)
    load_chunk(0, staged);
    store_chunk(staged, h_s);
    __syncthreads();
    float acc[4][4] = {};
    for (int c = 0; c < s.chunks; ++c) {
      const bool next = c + 1 < s.chunks;
      if (next) load_chunk(c + 1, staged);  // in flight during the products
      multiply(h_s + (c & 1) * kc * HS, c, acc);
      if (next) {
        store_chunk(staged, h_s + ((c + 1) & 1) * kc * HS);  // last read a chunk ago
        __syncthreads();
      }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
      *reinterpret_cast<float4*>(partial + (part * BM + tr + i) * BN + tc) =
          make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
    __syncthreads();
    // (The barrier above also keeps the next step's first copy from overwriting a buffer
    // that slower threads are still multiplying.)
    epilogue.template finish<BM, kParts>(r, k, partial);
    grid.sync();  // this step's outputs, the states of the next, are visible to all blocks
  }
  epilogue.drain();
}

struct Config {
  int rows, cols;
  const void* kernel;
};

template <typename S>
const Config kConfigs[] = {
    {16, 16, address(tiled_gemm<16, 16, S>)}, {16, 32, address(tiled_gemm<16, 32, S>)},
    {32, 16, address(tiled_gemm<32, 16, S>)}, {32, 32, address(tiled_gemm<32, 32, S>)},
    {64, 16, address(tiled_gemm<64, 16, S>)}, {64, 32, address(tiled_gemm<64, 32, S>)}};

int ceil_div(int n, int m) { return (n + m - 1) / m; }

}  // namespace

template <typename S>
GemmPlan gemm_plan(int batch, int hidden, const Device& d) {
  GemmPlan best;
  if (d.major < 8) return best;  // cp.async
  double best_cost = INFINITY;
  for (const Config& c : kConfigs<S>) {
    const int row_blocks = ceil_div(batch, c.rows), blocks = row_blocks * ceil_div(hidden, c.cols);
    if (blocks > d.sms) continue;
    const int parts = kThreads / (c.rows / 4 * c.cols / 4), items = c.rows * c.cols / kThreads;
    // Every chunk of k (a multiple of 64: every part's share a multiple of 4) whose copy
    // fits in the staging registers and whose buffers fit beside W_y's slice; the model
    // weighs fewer chunks (barriers) against less padding past H.
    for (int chunk = std::min(ceil_div(hidden, 64) * 64, kMaxStaged * 4 * kThreads / c.rows); chunk >= 64;
         chunk -= 64) {
      const int chunks = ceil_div(hidden, chunk);
      const std::size_t floats = (std::size_t)chunks * chunk * c.cols + 2 * chunk * (c.rows + 4) +
                                 (std::size_t)parts * c.rows * c.cols +
                                 column_block::kAhead * items * kThreads;
      const std::size_t smem = floats * sizeof(float) + c.rows * sizeof(const S*);
      if (smem > (std::size_t)d.smem_per_block) continue;
      // ns per step, rough: the products at half the FMA rate (128 per clock per SM), a
      // chunk's load latency (~1000 clocks) exposed once, ~200 clocks of barriers per
      // chunk, at 1.9 GHz; or the copies of the states through an L2 of ~5 TB/s.
      const double compute = (double)c.rows * c.cols * chunks * chunk / 64 + 1000 + 200.0 * chunks;
      const double l2 = 4.0 * blocks * c.rows * hidden / 5000;
      const double cost = std::max(compute / 1.9, l2);
      // Residency is asked of each tiling that would be better, so that one whose blocks
      // cannot all be resident gives way to the next best, not to no plan.
      if (cost < best_cost && all_resident(c.kernel, kThreads, smem, blocks, d)) {
        best_cost = cost;
        best = {{row_blocks, chunk, chunks, false}, blocks, smem, c.kernel};
      }
    }
  }
  return best;
}

template <typename S>
void launch_gemm(const Recurrence<S>& r, const GemmPlan& p) {
  GemmShape shape = p.shape;
  shape.vector_loads = vector_rows(r, 4);
  launch_cooperative(p.kernel, p.blocks, kThreads, p.smem, r, shape, "tiled GEMM kernel launch");
}

template GemmPlan gemm_plan<float>(int, int, const Device&);
template GemmPlan gemm_plan<__half>(int, int, const Device&);
template GemmPlan gemm_plan<__nv_bfloat16>(int, int, const Device&);
template void launch_gemm(const Recurrence<float>&, const GemmPlan&);
template void launch_gemm(const Recurrence<__half>&, const GemmPlan&);
template void launch_gemm(const Recurrence<__nv_bfloat16>&, const GemmPlan&);

}  // namespace elman::cuda
