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

// All steps in one cooperative launch. Block j owns columns [j*cols, (j+1)*cols) of W_y,
// held transposed in shared memory (w_s[c][k]) so that a warp reading consecutive k
// hits consecutive banks. A warp computes one (row, column) dot product at a time:
// lanes stride over k, then a shuffle reduction. y holds p_t on entry.
__global__ void persistent(int T, int B, int H, int cols, const float* __restrict__ w_y,
                           const float* __restrict__ b, float* y) {
  extern __shared__ float w_s[];  // cols x (H + 1): one float of padding per row
  cg::grid_group grid = cg::this_grid();
  const int c0 = blockIdx.x * cols, ncols = min(cols, H - c0);
  const int stride = H + 1;
  for (int i = threadIdx.x; i < ncols * H; i += blockDim.x) {
    const int c = i / H, k = i % H;
    w_s[c * stride + k] = w_y[k * H + c0 + c];
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  for (int t = 0; t < T; ++t) {
    float* yt = y + (size_t)t * B * H;
    const float* prev = t > 0 ? y + (size_t)(t - 1) * B * H : nullptr;
    for (int pair = warp; pair < B * ncols; pair += warps) {
      const int r = pair / ncols, c = pair % ncols;
      float acc = 0.f;
      if (prev)
        for (int k = lane; k < H; k += 32) acc += __ldcg(prev + (size_t)r * H + k) * w_s[c * stride + k];
      for (int off = 16; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off);
      if (lane == 0) {
        float* out = yt + (size_t)r * H + c0 + c;
        *out = elman::tanh_approx(*out + acc + b[c0 + c]);
      }
    }
    grid.sync();  // every column of y_t exists before any block reads it
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

struct PersistentPlan { int blocks, cols, threads; size_t smem; bool ok; };

PersistentPlan plan_persistent(const Config& c) {
  int dev = 0, sms = 0, smem_max = 0;
  CHECK(cudaGetDevice(&dev));
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  CHECK(cudaDeviceGetAttribute(&smem_max, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  PersistentPlan p{};
  p.threads = 256;
  p.cols = std::max(1, (c.H + sms - 1) / sms);
  p.blocks = (c.H + p.cols - 1) / p.cols;
  p.smem = (size_t)p.cols * (c.H + 1) * sizeof(float);
  p.ok = p.smem <= (size_t)smem_max;
  if (p.ok) {
    CHECK(cudaFuncSetAttribute(persistent, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)p.smem));
    int per_sm = 0;
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, persistent, p.threads, p.smem));
    p.ok = per_sm * sms >= p.blocks;
  }
  return p;
}

void run_persistent(cublasHandle_t h, const Config& c, const Device& d, const PersistentPlan& p) {
  project(h, c, d);
  int T = c.T, B = c.B, H = c.H, cols = p.cols;
  const float* w_y = d.w_y;
  const float* b = d.b;
  float* y = d.y;
  void* args[] = {&T, &B, &H, &cols, &w_y, &b, &y};
  CHECK(cudaLaunchCooperativeKernel((void*)persistent, p.blocks, p.threads, args, p.smem, 0));
}

double max_error(const Problem& p, const Device& d) {
  std::vector<float> y(p.y_ref.size());
  CHECK(cudaMemcpy(y.data(), d.y, y.size() * sizeof(float), cudaMemcpyDeviceToHost));
  double worst = 0;
  for (size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::fabs(y[i] - p.y_ref[i]));
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
  std::printf("%-22s %-11s %10s %10s %12s %s\n", "T,B,I,H", "variant", "ms", "us/step", "max_err", "note");
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
        std::printf("%-22s %-11s %10s %10s %12.3e WRONG (tolerance %.0e)\n", name, variant, "-", "-", err, tol);
        return;
      }
      const double ms = median_ms(run, repeats);
      std::printf("%-22s %-11s %10.3f %10.2f %12.3e\n", name, variant, ms, ms * 1e3 / c.T, err);
    };
    report("cublas", [&] { run_cublas(handle, c, d); });
    const PersistentPlan plan = plan_persistent(c);
    if (plan.ok)
      report("persistent", [&] { run_persistent(handle, c, d, plan); });
    else
      std::printf("%-22s %-11s W_y slice of %zu bytes does not fit on chip\n", name, "persistent", plan.smem);
    CHECK(cudaFree(d.x)); CHECK(cudaFree(d.w_x)); CHECK(cudaFree(d.w_y)); CHECK(cudaFree(d.b)); CHECK(cudaFree(d.y));
  }
  CHECK_BLAS(cublasDestroy(handle));
  return 0;
}
