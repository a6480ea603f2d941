// CUDA kernel lab for the recurrence y_t = tanh(p_t + y_{t-1} @ W_y + b), p_t = x_t @ W_x.
//
// Variants side by side, each checked against a float64 CPU reference before it is
// timed (as llm.c does), on one GPU:
//   cublas     : the input projection as one cuBLAS GEMM; per step a cuBLAS GEMM that
//                accumulates into y_t, then a fused bias + tanh kernel (the fallback).
//   persistent : the projection as above; then ONE cooperative kernel for all steps:
//                every block keeps its slice of W_y's columns in shared memory for the
//                whole sequence, steps are separated by a grid-wide barrier, bias + tanh
//                fused (Persistent RNNs, Diamos et al. 2016).
//   cluster    : for small H and B: one thread-block cluster, W_y and h on chip, DSMEM
//                exchange and the cluster barrier between steps, no grid barrier.
// Build and run: see run.sh. Prints one line per (configuration, variant).
#include <cooperative_groups.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "../../csrc/activations.h"

namespace cg = cooperative_groups;

#define CHECK(call)                                                                      \
  do {                                                                                   \
    cudaError_t e_ = (call);                                                             \
    if (e_ != cudaSuccess) {                                                             \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(1);                                                                      \
    }                                                                                    \
  } while (0)
#define CHECK_BLAS(call)                                                                 \
  do {                                                                                   \
    cublasStatus_t s_ = (call);                                                          \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                   \
      std::fprintf(stderr, "%s:%d %s: cuBLAS status %d\n", __FILE__, __LINE__, #call, (int)s_); \
      std::exit(1);                                                                      \
    }                                                                                    \
  } while (0)

struct Config { int T, B, I, H; };

// ---- kernels -------------------------------------------------------------------------

// y[r, c] = tanh(y[r, c] + b[c]) for rows x H.
__global__ void bias_tanh(int rows, int H, float* y, const float* b) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < rows * H) y[i] = elman::tanh_approx(y[i] + b[i % H]);
}

// One warp's share of a step: for row r of h_{t-1} (in shared or global memory) and up
// to G consecutive columns c0.. of this block's W_y slice (w_s[c][k], row stride
// `stride`), the dot products over k, lanes striding k; every lane ends with all G sums.
template <int G, typename Load>
__device__ void dot_group(int H, Load h_at, const float* w_s, int stride, int nc, float (&acc)[G]) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int g = 0; g < G; ++g) acc[g] = 0.f;
  for (int k = lane; k < H; k += 32) {
    const float hk = h_at(k);
#pragma unroll
    for (int g = 0; g < G; ++g)
      if (g < nc) acc[g] += hk * w_s[g * stride + k];
  }
#pragma unroll
  for (int g = 0; g < G; ++g)
    for (int off = 16; off > 0; off /= 2) acc[g] += __shfl_xor_sync(0xffffffffu, acc[g], off);
}

// W_y's columns [c0, c0 + ncols) into shared memory, transposed, rows padded by one float
// so that a warp reading consecutive k of one column hits consecutive banks.
__device__ void load_slice(int H, int c0, int ncols, const float* w_y, float* w_s) {
  for (int i = threadIdx.x; i < ncols * H; i += blockDim.x) {
    const int c = i / H, k = i % H;
    w_s[c * (H + 1) + k] = w_y[(size_t)k * H + c0 + c];
  }
}

// Writes the G sums of a warp item: lane g < nc finishes column g (bias + tanh on top of
// p_t, which y holds) and hands the value to `store` as well.
template <int G, typename Store>
__device__ void finish_group(float (&acc)[G], int nc, float* out_row, const float* b_row, Store store) {
  const int lane = threadIdx.x % 32;
  if (lane >= nc) return;
  float v = 0.f;
#pragma unroll
  for (int g = 0; g < G; ++g)
    if (g == lane) v = acc[g];
  v = elman::tanh_approx(out_row[lane] + v + b_row[lane]);
  out_row[lane] = v;
  store(lane, v);
}

// All steps in one cooperative launch over the whole GPU. Block j owns columns
// [j*cols, (j+1)*cols) of W_y, kept in shared memory for the whole sequence; steps are
// separated by a grid-wide barrier; bias + tanh fused. A warp item is one row of
// h_{t-1} (read from L2) against G of the block's columns. y holds p_t on entry.
template <int G>
__global__ void persistent(int T, int B, int H, int cols, const float* __restrict__ w_y,
                           const float* __restrict__ b, float* y) {
  extern __shared__ float w_s[];
  cg::grid_group grid = cg::this_grid();
  const int c0 = blockIdx.x * cols, ncols = min(cols, H - c0);
  load_slice(H, c0, ncols, w_y, w_s);
  __syncthreads();
  const int warp = threadIdx.x / 32, warps = blockDim.x / 32, groups = (ncols + G - 1) / G;
  for (int t = 0; t < T; ++t) {
    float* yt = y + (size_t)t * B * H;
    for (int item = warp; item < B * groups; item += warps) {
      const int r = item / groups, g0 = (item % groups) * G, nc = min(G, ncols - g0);
      const float* prev = yt - (size_t)B * H + (size_t)r * H;
      float acc[G];
      if (t > 0) {
        dot_group<G>(H, [&](int k) { return __ldcg(prev + k); }, w_s + (size_t)g0 * (H + 1), H + 1, nc, acc);
      } else {
#pragma unroll
        for (int g = 0; g < G; ++g) acc[g] = 0.f;
      }
      finish_group<G>(acc, nc, yt + (size_t)r * H + c0 + g0, b + c0 + g0, [](int, float) {});
    }
    grid.sync();  // every column of y_t exists before any block reads it
  }
}

// Small H: all steps in ONE thread-block cluster (Hopper), no grid barrier. Each block
// keeps its columns of W_y in shared memory and a full copy of h_{t-1}; it writes its new
// columns into every block's copy of h_t through distributed shared memory, then the
// cluster barrier makes them visible. h is double-buffered.
template <int G>
__global__ void clustered(int T, int B, int H, int cols, const float* __restrict__ w_y,
                          const float* __restrict__ b, float* y) {
  extern __shared__ float smem[];
  cg::cluster_group cluster = cg::this_cluster();
  const int blocks = (int)cluster.num_blocks();
  const int c0 = (int)cluster.block_rank() * cols, ncols = max(0, min(cols, H - c0));
  float* w_s = smem;
  float* h_buf = smem + (size_t)cols * (H + 1);  // 2 x B x H
  load_slice(H, c0, ncols, w_y, w_s);
  for (int i = threadIdx.x; i < B * H; i += blockDim.x) h_buf[i] = 0.f;
  cluster.sync();
  const int warp = threadIdx.x / 32, warps = blockDim.x / 32, groups = (ncols + G - 1) / G;
  for (int t = 0; t < T; ++t) {
    const float* h = h_buf + (size_t)(t & 1) * B * H;
    float* h_next = h_buf + (size_t)((t + 1) & 1) * B * H;
    float* yt = y + (size_t)t * B * H;
    for (int item = warp; item < B * groups; item += warps) {
      const int r = item / groups, g0 = (item % groups) * G, nc = min(G, ncols - g0);
      float acc[G];
      dot_group<G>(H, [&](int k) { return h[(size_t)r * H + k]; }, w_s + (size_t)g0 * (H + 1), H + 1, nc, acc);
      const size_t at = (size_t)r * H + c0 + g0;
      finish_group<G>(acc, nc, yt + at, b + c0 + g0, [&](int lane, float v) {
        for (int dst = 0; dst < blocks; ++dst) cluster.map_shared_rank(h_next, dst)[at + lane] = v;
      });
    }
    cluster.sync();
  }
}

// ---- host ----------------------------------------------------------------------------

struct Problem {
  Config cfg;
  std::vector<float> x, w_x, w_y, b;
  std::vector<double> y_ref;
};

Problem make_problem(Config c) {
  Problem p{c};
  std::mt19937 gen(1234);
  const float bound = 1.0f / std::sqrt((float)c.H);
  std::uniform_real_distribution<float> u(-bound, bound), ux(-1.f, 1.f);
  p.x.resize((size_t)c.T * c.B * c.I);
  p.w_x.resize((size_t)c.I * c.H);
  p.w_y.resize((size_t)c.H * c.H);
  p.b.resize(c.H);
  for (auto& v : p.x) v = ux(gen);
  for (auto& v : p.w_x) v = u(gen);
  for (auto& v : p.w_y) v = u(gen);
  for (auto& v : p.b) v = u(gen);
  // float64 reference, straight from the equation
  p.y_ref.assign((size_t)c.T * c.B * c.H, 0.0);
  std::vector<double> h((size_t)c.B * c.H, 0.0), a(c.H);
  for (int t = 0; t < c.T; ++t) {
    std::vector<double> next((size_t)c.B * c.H);
    for (int r = 0; r < c.B; ++r) {
      for (int j = 0; j < c.H; ++j) a[j] = p.b[j];
      const float* xr = &p.x[((size_t)t * c.B + r) * c.I];
      for (int i = 0; i < c.I; ++i)
        for (int j = 0; j < c.H; ++j) a[j] += (double)xr[i] * p.w_x[(size_t)i * c.H + j];
      for (int k = 0; k < c.H; ++k)
        for (int j = 0; j < c.H; ++j) a[j] += h[(size_t)r * c.H + k] * p.w_y[(size_t)k * c.H + j];
      for (int j = 0; j < c.H; ++j) next[(size_t)r * c.H + j] = std::tanh(a[j]);
    }
    h = next;
    std::copy(h.begin(), h.end(), p.y_ref.begin() + (size_t)t * c.B * c.H);
  }
  return p;
}

struct Device {
  float *x, *w_x, *w_y, *b, *y;
};

// y = x @ w_x for all T*B rows (row-major), as column-major y^T = w_x^T x^T.
void project(cublasHandle_t h, const Config& c, const Device& d) {
  const float one = 1.f, zero = 0.f;
  CHECK_BLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, c.H, c.T * c.B, c.I, &one, d.w_x, c.H, d.x,
                         c.I, &zero, d.y, c.H));
}

void run_cublas(cublasHandle_t h, const Config& c, const Device& d) {
  project(h, c, d);
  const float one = 1.f;
  const int n = c.B * c.H, threads = 256;
  for (int t = 0; t < c.T; ++t) {
    float* yt = d.y + (size_t)t * n;
    if (t > 0)
      CHECK_BLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, c.H, c.B, c.H, &one, d.w_y, c.H,
                             yt - n, c.H, &one, yt, c.H));
    bias_tanh<<<(n + threads - 1) / threads, threads>>>(c.B, c.H, yt, d.b);
  }
}

struct Plan { int blocks, cols, threads, group; size_t smem; bool ok; };
using Kernel = void (*)(int, int, int, int, const float*, const float*, float*);

int device_attribute(cudaDeviceAttr what) {
  int dev = 0, value = 0;
  CHECK(cudaGetDevice(&dev));
  CHECK(cudaDeviceGetAttribute(&value, what, dev));
  return value;
}

// Columns per warp item: the widest that still gives every warp an item.
int choose_group(int B, int ncols, int warps) {
  for (int g : {16, 4})
    if (B * ((ncols + g - 1) / g) >= warps) return g;
  return 1;
}

Kernel persistent_kernel(int g) { return g == 16 ? persistent<16> : g == 4 ? persistent<4> : persistent<1>; }
Kernel clustered_kernel(int g) { return g == 16 ? clustered<16> : g == 4 ? clustered<4> : clustered<1>; }

Plan plan_persistent(const Config& c) {
  const int sms = device_attribute(cudaDevAttrMultiProcessorCount);
  Plan p{};
  p.threads = 256;
  p.cols = std::max(1, (c.H + sms - 1) / sms);
  p.blocks = (c.H + p.cols - 1) / p.cols;
  p.group = choose_group(c.B, p.cols, p.threads / 32);
  p.smem = (size_t)p.cols * (c.H + 1) * sizeof(float);
  p.ok = p.smem <= (size_t)device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin);
  if (p.ok) {
    Kernel k = persistent_kernel(p.group);
    CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)p.smem));
    int per_sm = 0;
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k, p.threads, p.smem));
    p.ok = per_sm * sms >= p.blocks;
  }
  return p;
}

Plan plan_clustered(const Config& c, int cluster) {
  Plan p{};
  p.threads = 256;
  p.blocks = cluster;
  p.cols = (c.H + cluster - 1) / cluster;
  p.group = choose_group(c.B, p.cols, p.threads / 32);
  p.smem = ((size_t)p.cols * (c.H + 1) + 2 * (size_t)c.B * c.H) * sizeof(float);
  p.ok = p.smem <= (size_t)device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin);
  if (p.ok) {
    Kernel k = clustered_kernel(p.group);
    CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)p.smem));
    if (cluster > 8) CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  }
  return p;
}

void run_persistent(cublasHandle_t h, const Config& c, const Device& d, const Plan& p) {
  project(h, c, d);
  int T = c.T, B = c.B, H = c.H, cols = p.cols;
  const float* w_y = d.w_y;
  const float* b = d.b;
  float* y = d.y;
  void* args[] = {&T, &B, &H, &cols, &w_y, &b, &y};
  CHECK(cudaLaunchCooperativeKernel((void*)persistent_kernel(p.group), p.blocks, p.threads, args, p.smem, 0));
}

void run_clustered(cublasHandle_t h, const Config& c, const Device& d, const Plan& p) {
  project(h, c, d);
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(p.blocks);
  config.blockDim = dim3(p.threads);
  config.dynamicSmemBytes = p.smem;
  cudaLaunchAttribute cluster;
  cluster.id = cudaLaunchAttributeClusterDimension;
  cluster.val.clusterDim.x = p.blocks;
  cluster.val.clusterDim.y = cluster.val.clusterDim.z = 1;
  config.attrs = &cluster;
  config.numAttrs = 1;
  // Not fatal: a cluster size the device refuses shows as a wrong (unwritten) result.
  const cudaError_t e = cudaLaunchKernelEx(&config, clustered_kernel(p.group), c.T, c.B, c.H,
                                           p.cols, (const float*)d.w_y, (const float*)d.b, d.y);
  if (e != cudaSuccess) std::fprintf(stderr, "cluster of %d: %s\n", p.blocks, cudaGetErrorString(e));
}

double max_error(const Problem& p, const Device& d) {
  std::vector<float> y(p.y_ref.size());
  CHECK(cudaMemcpy(y.data(), d.y, y.size() * sizeof(float), cudaMemcpyDeviceToHost));
  double worst = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double e = std::fabs(y[i] - p.y_ref[i]);
    if (std::isnan(e)) return INFINITY;  // a missed write (y starts as NaN)
    worst = std::max(worst, e);
  }
  return worst;
}

template <typename Run>
double median_ms(Run run, int repeats) {
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  run();  // warm-up
  CHECK(cudaDeviceSynchronize());
  std::vector<float> ms(repeats);
  for (int i = 0; i < repeats; ++i) {
    CHECK(cudaEventRecord(start));
    run();
    CHECK(cudaEventRecord(stop));
    CHECK(cudaEventSynchronize(stop));
    CHECK(cudaEventElapsedTime(&ms[i], start, stop));
  }
  std::sort(ms.begin(), ms.end());
  return ms[repeats / 2];
}

int main(int argc, char** argv) {
  std::vector<Config> configs = {{1000, 1, 256, 256}, {500, 1, 512, 512}, {250, 1, 1024, 1024},
                                 {100, 16, 1760, 1760}, {150, 4, 256, 256}, {100, 64, 256, 256},
                                 {50, 64, 1760, 1760}, {25, 256, 512, 512}};
  if (argc == 5) configs = {{std::atoi(argv[1]), std::atoi(argv[2]), std::atoi(argv[3]), std::atoi(argv[4])}};
  const int repeats = argc == 5 ? 1 : 11;
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  cublasHandle_t handle;
  CHECK_BLAS(cublasCreate(&handle));
  std::printf("%-22s %-13s %10s %10s %12s %s\n", "T,B,I,H", "variant", "ms", "us/step", "max_err", "note");
  for (const Config& c : configs) {
    Problem p = make_problem(c);
    Device d;
    CHECK(cudaMalloc(&d.x, p.x.size() * 4));
    CHECK(cudaMalloc(&d.w_x, p.w_x.size() * 4));
    CHECK(cudaMalloc(&d.w_y, p.w_y.size() * 4));
    CHECK(cudaMalloc(&d.b, p.b.size() * 4));
    CHECK(cudaMalloc(&d.y, p.y_ref.size() * 4));
    CHECK(cudaMemcpy(d.x, p.x.data(), p.x.size() * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(d.w_x, p.w_x.data(), p.w_x.size() * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(d.w_y, p.w_y.data(), p.w_y.size() * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(d.b, p.b.data(), p.b.size() * 4, cudaMemcpyHostToDevice));
    char name[64];
    std::snprintf(name, sizeof name, "%d,%d,%d,%d", c.T, c.B, c.I, c.H);
    // float32 against float64 over T steps: a few 1e-6 per step at most, contracting.
    const double tol = 1e-4;
    auto report = [&](const char* variant, auto run) {
      CHECK(cudaMemset(d.y, 0xff, p.y_ref.size() * 4));  // NaN: a missed write shows
      run();
      CHECK(cudaDeviceSynchronize());
      const double err = max_error(p, d);
      if (!(err <= tol)) {
        std::printf("%-22s %-13s %10s %10s %12.3e WRONG (tolerance %.0e)\n", name, variant, "-", "-", err, tol);
        return;
      }
      const double ms = median_ms(run, repeats);
      std::printf("%-22s %-13s %10.3f %10.2f %12.3e\n", name, variant, ms, ms * 1e3 / c.T, err);
    };
    report("cublas", [&] { run_cublas(handle, c, d); });
    const Plan grid_plan = plan_persistent(c);
    char variant[32];
    std::snprintf(variant, sizeof variant, "persist/g%d", grid_plan.group);
    if (grid_plan.ok)
      report(variant, [&] { run_persistent(handle, c, d, grid_plan); });
    else
      std::printf("%-22s %-11s does not fit on chip\n", name, "persistent");
    for (int cluster : {8, 16}) {
      const Plan plan = plan_clustered(c, cluster);
      std::snprintf(variant, sizeof variant, "cluster%d/g%d", cluster, plan.group);
      if (plan.ok)
        report(variant, [&] { run_clustered(handle, c, d, plan); });
      else
        std::printf("%-22s %-11s does not fit (%zu bytes per block)\n", name, variant, plan.smem);
    }
    CHECK(cudaFree(d.x)); CHECK(cudaFree(d.w_x)); CHECK(cudaFree(d.w_y)); CHECK(cudaFree(d.b)); CHECK(cudaFree(d.y));
  }
  CHECK_BLAS(cublasDestroy(handle));
  return 0;
}
