// The recurrence for a batch of rows in one cooperative launch (Persistent RNNs, Diamos et
// al. 2016, with W_y in shared memory): the B x H output of a step is cut into tiles,
// one per block. A block keeps its columns of W_y on chip for the whole sequence; per
// step it copies its rows of the previous states from L2 (in chunks along k), every
// thread accumulates a small register tile (TM rows x 4 columns) over every split-th k,
// the partial sums are reduced, the bias and activation applied, and a grid barrier
// separates the steps. Rows with lengths run from their own first (or, reversed, last)
// valid step.
#include <cooperative_groups.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "cuda/tiled.h"

namespace cg = cooperative_groups;

namespace elman::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTileCols = 4;  // a thread's columns: one float4 of W_y per k

// Copies k in [k0, k0 + n) of each live row's previous state (stored as S) into h_s as
// float (row i at i * h_stride), a warp per row; V: S, or float4 for aligned float rows.
// Values come from L2 (__ldcg): other blocks wrote them, and L1 is not coherent. Eight
// loads are in flight per thread before their stores.
template <typename V, typename S>
__device__ void copy_states(const S* const* src, int nrows, int k0, int n, int h_stride,
                            float* h_s) {
  constexpr int kWidth = sizeof(V) / sizeof(S), kInFlight = 8;
  using Out = typename std::conditional<kWidth == 4, float4, float>::type;
  const int per_row = n / kWidth, lane = threadIdx.x % 32;
  for (int i = threadIdx.x / 32; i < nrows; i += kThreads / 32) {
    if (!src[i]) continue;
    const V* from = reinterpret_cast<const V*>(src[i] + k0);
    Out* to = reinterpret_cast<Out*>(h_s + (size_t)i * h_stride);
    for (int q0 = lane; q0 < per_row; q0 += kInFlight * 32) {
      V v[kInFlight];
#pragma unroll
      for (int u = 0; u < kInFlight; ++u)
        if (q0 + 32 * u < per_row) v[u] = __ldcg(from + q0 + 32 * u);
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) {
        if (q0 + 32 * u < per_row) {
          if constexpr (kWidth == 4) to[q0 + 32 * u] = v[u];
          else to[q0 + 32 * u] = to_float(v[u]);
        }
      }
    }
  }
}

template <int TM, typename S>
__global__ void __launch_bounds__(kThreads, 1) tiled(Recurrence<S> r, TileShape s) {
  extern __shared__ float4 smem4[];
  float* smem = reinterpret_cast<float*>(smem4);
  cg::grid_group grid = cg::this_grid();
  const int H = r.hidden, tid = threadIdx.x;
  const int r0 = (int)(blockIdx.x % s.row_blocks) * s.rows;
  const int c0 = (int)(blockIdx.x / s.row_blocks) * s.cols;
  const int nrows = min(s.rows, r.batch - r0), ncols = min(s.cols, H - c0);
  float* w_s = smem;                                     // H x w_stride
  float* h_s = w_s + (size_t)H * s.w_stride;             // rows x h_stride
  float* partial = h_s + (size_t)s.rows * s.h_stride;    // split/32 x rows x cols
  const S** src = reinterpret_cast<const S**>(           // rows: previous state or null
      partial + (s.split > 32 ? (size_t)(s.split / 32) * s.rows * s.cols : 0));

  const int tile = tid / s.split, part = tid % s.split;
  const int col_groups = s.cols / kTileCols;
  const int tc = (tile % col_groups) * kTileCols, tr = (tile / col_groups) * TM;
  const int lanes = min(s.split, 32);
  const bool leader = tid % lanes == 0;

  copy_in_flight(
      H * s.w_stride,
      [&](int i) {
        const int k = i / s.w_stride, c = i - k * s.w_stride;
        return c < ncols ? to_float(r.w_y[(size_t)k * H + c0 + c]) : 0.f;
      },
      [&](int i, float w) { w_s[i] = w; });
  for (int i = tid; i < s.rows * s.h_stride; i += kThreads) h_s[i] = 0.f;  // rows past B

  for (int k = 0; k < r.steps; ++k) {
    if (tid < nrows) src[tid] = previous_state(r, k, r0 + tid);
    // The values this thread finishes, p_t + bias, loaded now: their latency then
    // overlaps the products.
    float pre[TM][kTileCols];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < kTileCols; ++j) {
        const int b = r0 + tr + i, c = c0 + tc + j;
        const long long row = leader && s.split <= 32 && tr + i < nrows && tc + j < ncols
                                  ? output_row(r, k, b) : -1;
        pre[i][j] = row >= 0 ? r.p[row * r.ldp + c] + bias_at(r.bias, c) : 0.f;
      }
    float acc[TM][kTileCols] = {};
    for (int k0 = 0; k0 < H; k0 += s.chunk) {
      const int n = min(s.chunk, H - k0);
      __syncthreads();  // src written; the previous chunk's products done
      if constexpr (std::is_same<S, float>::value) {
        if (s.vector_copy) copy_states<float4>(src, nrows, k0, n, s.h_stride, h_s);
        else copy_states<float>(src, nrows, k0, n, s.h_stride, h_s);
      } else {
        copy_states<S>(src, nrows, k0, n, s.h_stride, h_s);
      }
      __syncthreads();
      const float* w = w_s + (k0 + part) * s.w_stride + tc;
      const float* h = h_s + tr * s.h_stride + part;
      const int w_step = s.split * s.w_stride;
#pragma unroll 4
      for (int kk = part; kk < n; kk += s.split, w += w_step, h += s.split) {
        const float4 wv = *reinterpret_cast<const float4*>(w);
#pragma unroll
        for (int i = 0; i < TM; ++i) {
          const float hv = h[i * s.h_stride];
          acc[i][0] = fmaf(hv, wv.x, acc[i][0]);
          acc[i][1] = fmaf(hv, wv.y, acc[i][1]);
          acc[i][2] = fmaf(hv, wv.z, acc[i][2]);
          acc[i][3] = fmaf(hv, wv.w, acc[i][3]);
        }
      }
    }
    // The threads of one tile are `split` consecutive threads: sum within the warp.
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < kTileCols; ++j)
        for (int off = lanes / 2; off > 0; off /= 2)
          acc[i][j] += __shfl_xor_sync(0xffffffffu, acc[i][j], off);

    if (s.split <= 32) {
      if (leader)
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < kTileCols; ++j) {
            const int b = r0 + tr + i, c = c0 + tc + j;
            const long long row = tr + i < nrows && tc + j < ncols ? output_row(r, k, b) : -1;
            if (row >= 0) write_output(r, k, b, row, c, pre[i][j] + acc[i][j]);
          }
    } else {  // a tile spans split/32 warps: sum their partials through shared memory
      const int per_part = s.rows * s.cols;
      if (leader)
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < kTileCols; ++j)
            partial[(part / 32) * per_part + (tr + i) * s.cols + tc + j] = acc[i][j];
      __syncthreads();
      for (int o = tid; o < per_part; o += kThreads) {
        const int i = o / s.cols, j = o - i * s.cols, b = r0 + i, c = c0 + j;
        const long long row = i < nrows && j < ncols ? output_row(r, k, b) : -1;
        if (row < 0) continue;
        float sum = r.p[row * r.ldp + c] + bias_at(r.bias, c);
        for (int w = 0; w < s.split / 32; ++w) sum += partial[w * per_part + o];
        write_output(r, k, b, row, c, sum);
      }
    }
    grid.sync();
  }
}

template <typename S>
const void* kernel_for(int tm) {
  return address(tm == 4 ? tiled<4, S> : tm == 2 ? tiled<2, S> : tiled<1, S>);
}

int round_up(int n, int m) { return (n + m - 1) / m * m; }

// Floats per k of the W_y slice: a quarter-warp's float4 loads (8 lanes) must hit 8
// different 16-byte bank groups. Its lanes read consecutive k of one column group when a
// tile has >= 8 threads (then w_stride / 4 must be odd), else split k's of 8 / split
// consecutive column groups (then w_stride / 4 = 8 / split mod 8 keeps them apart).
int w_stride_for(int cols, int split) {
  int m = cols / kTileCols;
  const int want = split >= 8 ? -1 : (8 / split) % 8;
  while (want < 0 ? m % 2 == 0 : m % 8 != want) ++m;
  return m * kTileCols;
}

// Floats per row of the copied states: the threads of a warp read split consecutive k of
// rows TM apart, so TM * h_stride = split (mod 32) puts them in different banks. A
// multiple of 4 (float4 copies); the nearest such stride when none solves it.
int h_stride_for(int chunk, int tm, int split) {
  for (int h = chunk; h < chunk + 32; h += 4)
    if ((tm * h - split) % 32 == 0) return h;
  return chunk + 4;
}

}  // namespace

template <typename S>
TiledPlan tiled_plan(int batch, int hidden, const Device& d) {
  const int budget = d.smem_per_block / (int)sizeof(float);  // floats
  TiledPlan best;
  double best_cost = INFINITY;
  for (int rows = 1; rows / 2 < batch && rows <= 128; rows *= 2) {
    const int tm = std::min(rows, 4), row_blocks = (batch + rows - 1) / rows;
    for (int cols = kTileCols; cols <= 128; cols *= 2) {
      const int col_blocks = (hidden + cols - 1) / cols, blocks = row_blocks * col_blocks;
      const int tiles = (rows / tm) * (cols / kTileCols);
      if (blocks > d.sms || tiles > kThreads) continue;
      const int split = kThreads / tiles;
      const int partial = split > 32 ? split / 32 * rows * cols : 0;
      // W_y's slice padded against bank conflicts if that fits, else unpadded.
      int w_stride = w_stride_for(cols, split), fixed = 0, chunk = 0;
      for (int pass = 0; pass < 2; ++pass, w_stride = cols) {
        fixed = hidden * w_stride + partial + 2 * rows;  // + the rows' pointers
        chunk = std::min(round_up(hidden, 4), ((budget - fixed) / rows - 32) / 4 * 4);
        if (chunk >= 32) break;
      }
      if (chunk < 32) continue;
      const int h_stride = h_stride_for(chunk, tm, split);
      // Cost in ns per step, rough: issue slots of the products (4 warp instructions per
      // clock per SM; per k 4 * TM FMAs, TM + 1 loads, ~2 more), the copy at ~32 bytes
      // per clock per SM plus ~1000 clocks of latency per chunk, all copies through an L2
      // of ~5 TB/s; the barrier and epilogue are alike for all tilings. 1.9 GHz.
      const double iters = std::ceil((double)hidden / split);
      const double compute = kThreads / 32 * iters * (5 * tm + 3) / 4;
      const int chunks = (hidden + chunk - 1) / chunk;
      const double bytes = 4.0 * std::min(rows, batch) * hidden;
      const double copy = bytes / 32 + chunks * 1000.0;
      const double l2 = 4.0 * col_blocks * batch * hidden / 5000.0;
      const double cost = std::max((compute + copy) / 1.9, l2);
      if (cost >= best_cost) continue;
      best_cost = cost;
      best.shape = {rows, cols, row_blocks, w_stride, chunk, h_stride, split, false};
      best.blocks = blocks;
      best.smem = (size_t)(fixed + rows * h_stride) * sizeof(float);
      best.kernel = kernel_for<S>(tm);
      best.cost = cost;
    }
  }
  return best.kernel && all_resident(best.kernel, kThreads, best.smem, best.blocks, d) ? best
                                                                                   : TiledPlan{};
}

template <typename S>
void launch_tiled(const Recurrence<S>& r, const TiledPlan& p) {
  TileShape shape = p.shape;
  // float4 copies need 16-byte aligned rows and chunks (chunk is a multiple of 4).
  shape.vector_copy = vector_rows(r, 4);
  launch_cooperative(p.kernel, p.blocks, kThreads, p.smem, r, shape, "tiled kernel launch");
}

template TiledPlan tiled_plan<float>(int, int, const Device&);
template TiledPlan tiled_plan<__half>(int, int, const Device&);
template TiledPlan tiled_plan<__nv_bfloat16>(int, int, const Device&);
template void launch_tiled(const Recurrence<float>&, const TiledPlan&);
template void launch_tiled(const Recurrence<__half>&, const TiledPlan&);
template void launch_tiled(const Recurrence<__nv_bfloat16>&, const TiledPlan&);

}  // namespace elman::cuda
