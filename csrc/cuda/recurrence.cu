// The recurrence kernels of one layer and direction (see recurrence.h): the per-step
// fallback, the B = 1 kernel with warp dot products over the whole GPU, and
// the choice among them and the kernels of few_rows.cu, tiled.cu, tiled_fma.cu,
// tiled_gemm.cu and tiled_mma.cu, by a rule or by timing them, cached per GPU, size and
// forced kernel (ELMAN_CUDA_KERNEL forces one by name).
#include <cooperative_groups.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "cuda/cuda.h"
#include "cuda/kernel_common.cuh"
#include "cuda/few_rows.h"
#include "cuda/tiled.h"
#include "cuda/tiled_fma.h"
#include "cuda/tiled_gemm.h"
#include "cuda/tiled_mma.h"
#include "cuda/trial.cuh"

namespace cg = cooperative_groups;

namespace elman::cuda {
namespace {

// ---- the fallback: one kernel per step --------------------------------------------

// After product = state @ W_y: for every row still running at iteration k, its step
// t (backwards within its own length if reverse) gets act(p_t + product + bias), which
// also becomes its state.
template <typename S>
__global__ void step_epilogue(Recurrence<S> r, int k, const float* product, S* state) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= r.batch * r.hidden) return;
  const int b = i / r.hidden, c = i % r.hidden;
  const long long row = output_row(r, k, b);
  if (row < 0) return;
  const S v = from_float<S>(apply_activation(r.act, r.p[row * r.ldp + c] + product[i] + bias_at(r.bias, c)));
  r.y[row * r.ldy + c] = v;
  state[i] = v;
}

// Steps at and past each row's length give exactly 0.
template <typename S>
__global__ void zero_padding(Recurrence<S> r) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t)r.steps * r.batch * r.hidden) return;
  const int c = (int)(i % r.hidden);
  const size_t row = i / r.hidden;
  const int b = (int)(row % r.batch), t = (int)(row / r.batch);
  if (t >= r.lengths[b]) r.y[row * r.ldy + c] = from_float<S>(0.f);
}

// ---- on chip: W_y in shared memory for the whole sequence --------------------------

// W_y's columns [c0, c0 + ncols) into shared memory, transposed, rows padded by one
// float so that a warp reading consecutive k of one column hits consecutive banks.
// Consecutive threads read consecutive columns of a row of W_y (coalesced).
template <typename S>
__device__ void load_columns(const Recurrence<S>& r, int c0, int ncols, float* w_s) {
  const int H = r.hidden;
  copy_in_flight(
      ncols * H, [&](int i) { return to_float(r.w_y[(size_t)(i / ncols) * H + c0 + i % ncols]); },
      [&](int i, float w) { w_s[(i % ncols) * (H + 1) + i / ncols] = w; });
}

// A warp's item: row h_row (H values, read by h_at) against G consecutive columns of
// the block's slice; lanes stride k, then every lane holds all G sums.
template <int G, typename Load>
__device__ void dot_group(int H, Load h_at, const float* w_s, int nc, float (&acc)[G]) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int g = 0; g < G; ++g) acc[g] = 0.f;
  for (int k = lane; k < H; k += 32) {
    const float hk = h_at(k);
#pragma unroll
    for (int g = 0; g < G; ++g)
      if (g < nc) acc[g] += hk * w_s[g * (H + 1) + k];
  }
#pragma unroll
  for (int g = 0; g < G; ++g)
    for (int off = 16; off > 0; off /= 2) acc[g] += __shfl_xor_sync(0xffffffffu, acc[g], off);
}

// Lane g < nc finishes column c0 + g of row b at step t and returns its value.
template <int G, typename S>
__device__ float finish(const Recurrence<S>& r, float (&acc)[G], int t, int b, int c) {
  const int lane = threadIdx.x % 32;
  float sum = 0.f;
#pragma unroll
  for (int g = 0; g < G; ++g)
    if (g == lane) sum = acc[g];
  const size_t row = (size_t)t * r.batch + b;
  const S v = from_float<S>(apply_activation(r.act, r.p[row * r.ldp + c] + sum + bias_at(r.bias, c)));
  r.y[row * r.ldy + c] = v;
  return to_float(v);  // as stored: the next step reads it so
}

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// The whole GPU: block j owns `cols` columns; a grid barrier separates the steps, whose
// previous outputs are read from L2 (bypassing the non-coherent L1).
template <int G, typename S>
__global__ void __launch_bounds__(kThreads) persistent(Recurrence<S> r, int cols) {
  extern __shared__ float w_s[];
  cg::grid_group grid = cg::this_grid();
  const int H = r.hidden, c0 = blockIdx.x * cols, ncols = min(cols, H - c0);
  const int warp = threadIdx.x / 32, groups = (ncols + G - 1) / G;
  load_columns(r, c0, ncols, w_s);
  __syncthreads();
  int prev_t = -1;
  for (int k = 0; k < r.steps; ++k) {
    const int t = r.reverse ? r.steps - 1 - k : k;
    for (int item = warp; item < r.batch * groups; item += kWarps) {
      const int b = item / groups, g0 = (item % groups) * G, nc = min(G, ncols - g0);
      const S* prev = prev_t < 0 ? r.h0 + (size_t)b * H
                                 : r.y + ((size_t)prev_t * r.batch + b) * r.ldy;
      float acc[G];
      dot_group<G>(H, [&](int i) { return load_cg(prev + i); }, w_s + g0 * (H + 1), nc, acc);
      if (threadIdx.x % 32 < nc) {
        const int c = c0 + g0 + threadIdx.x % 32;
        const float v = finish<G>(r, acc, t, b, c);
        if (k == r.steps - 1) r.h_n[(size_t)b * H + c] = from_float<S>(v);
      }
    }
    prev_t = t;
    grid.sync();
  }
}

// Columns per warp item: the widest that still gives every warp an item.
int group_for(int batch, int cols) {
  for (int g : {16, 4})
    if (batch * ((cols + g - 1) / g) >= kWarps) return g;
  return 1;
}

template <typename S>
const void* persistent_kernel(int g) {
  return address(g == 16 ? persistent<16, S> : g == 4 ? persistent<4, S> : persistent<1, S>);
}
}  // namespace

Device current_device() {
  const int dev = current_device_id();
  Device d{};
  check(cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, dev), "SM count");
  check(cudaDeviceGetAttribute(&d.smem_per_block, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
        "shared memory per block");
  check(cudaDeviceGetAttribute(&d.major, cudaDevAttrComputeCapabilityMajor, dev), "compute capability");
  return d;
}

bool has_clusters(const void* kernel) {
  cudaFuncAttributes a;
  if (cudaFuncGetAttributes(&a, kernel) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return a.ptxVersion >= 90;
}

bool all_resident(const void* kernel, int threads, std::size_t smem, int blocks, const Device& d) {
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, d.smem_per_block),
        "kernel shared memory");
  int per_sm = 0;
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem), "occupancy");
  return per_sm * d.sms >= blocks;
}

namespace {

// How one (batch, H, lengths or not, storage) runs, found once, since the checks
// (attributes, occupancy) cost far more than a short sequence's launch.
struct Plan {
  enum Kind { Stepwise, FewRows, Lean, Persistent, Tiled, Mma, Fma, Gemm, LeanAsync } kind = Stepwise;
  const void* kernel = nullptr;  // these four: Persistent
  int blocks = 0, cols = 0;
  size_t smem = 0;
  FewRowsPlan few_rows;  // FewRows, Lean, LeanAsync
  TiledPlan tiled;
  MmaPlan mma;
  FmaPlan fma;
  GemmPlan gemm;
  // The timed choice's trial: each candidate's time in ms (NaN: its run failed); empty
  // where the plan was not timed.
  std::vector<std::pair<const char*, float>> trial;
};

// The whole GPU, if every block (one per W_y slice) can be resident at once, as a grid
// barrier requires.
template <typename S>
Plan persistent_plan(int batch, int hidden, const Device& d) {
  Plan p{Plan::Persistent};
  p.cols = std::max(1, (hidden + d.sms - 1) / d.sms);
  p.blocks = (hidden + p.cols - 1) / p.cols;
  p.smem = (size_t)p.cols * (hidden + 1) * sizeof(float);
  if (p.smem > (size_t)d.smem_per_block) return {};
  p.kernel = persistent_kernel<S>(group_for(batch, p.cols));
  return all_resident(p.kernel, kThreads, p.smem, p.blocks, d) ? p : Plan{};
}

// Every kernel by name, indexed by Plan::Kind (some run only one storage type: plan_named).
constexpr const char* kKernelNames[] = {"stepwise", "few_rows", "lean", "persistent", "tiled",
                                        "mma",      "fma",      "gemm", "lean_async"};
static_assert(sizeof(kKernelNames) / sizeof(kKernelNames[0]) == Plan::LeanAsync + 1, "a name per Plan::Kind");

// Kernels that run only where forced by name: lean_async, an experiment never yet run on a
// GPU (few_rows.cu), stays out of the rule and the timed choice until measured there.
bool only_when_forced(Plan::Kind kind) { return kind == Plan::LeanAsync; }

// ELMAN_CUDA_KERNEL=<name> forces that kernel where it can run the shape (for comparisons,
// tuning and tests); unset, or where it cannot: the choice below. Another name is refused.
std::string forced_kernel() {
  const char* v = std::getenv("ELMAN_CUDA_KERNEL");
  const std::string name = v ? v : "";
  if (name.empty()) return name;
  std::string known;
  for (const char* k : kKernelNames) {
    if (name == k) return name;
    known += known.empty() ? k : std::string(", ") + k;
  }
  throw std::invalid_argument("ELMAN_CUDA_KERNEL: expected one of " + known + " (or unset), got '" +
                              name + "'");
}

// The named kernel's plan for the shape, if it can run it (else a Stepwise plan).
template <typename S>
Plan plan_named(const std::string& name, int batch, int hidden, bool lengths, const Device& d) {
  constexpr bool f32 = std::is_same<S, float>::value;
  Plan p;
  if (name == "few_rows" || name == "lean" || name == "lean_async") {
    const bool lean = name == "lean", sends = name == "lean_async";
    p.few_rows = few_rows_plan<S>(batch, hidden,
                                  lean    ? FewRowsKernel::Lean
                                  : sends ? FewRowsKernel::LeanSends
                                          : FewRowsKernel::Wide,
                                  d);
    if (p.few_rows.kernel) p.kind = lean ? Plan::Lean : sends ? Plan::LeanAsync : Plan::FewRows;
  } else if (name == "persistent" && !lengths) {  // no lengths in it
    p = persistent_plan<S>(batch, hidden, d);
  } else if (name == "tiled") {
    p.tiled = tiled_plan<S>(batch, hidden, d);
    if (p.tiled.kernel) p.kind = Plan::Tiled;
  } else if (name == "fma" && f32) {
    p.fma = fma_plan(batch, hidden, d);
    if (p.fma.kernel) p.kind = Plan::Fma;
  } else if (name == "gemm") {
    p.gemm = gemm_plan<S>(batch, hidden, d);
    if (p.gemm.kernel) p.kind = Plan::Gemm;
  } else if (name == "mma" && !f32) {
    if constexpr (!f32) p.mma = mma_plan<S>(batch, hidden, d);
    if (p.mma.kernel) p.kind = Plan::Mma;
  }
  return p.kind == Plan::Stepwise ? Plan{} : p;
}

// Measured on an H200 (and where named an H100), us/step
// (bench/results/gpu-ab-h200-20261126-8/check/gpu-tune.md,
// gpu-check-h200-20261126-10/gpu-tune.md, gpu-check-h200-20261126-11/gpu-tune.md):
// - lean wherever it runs (H <= 512, one row per group). At H <= 128 a group is one block
//   whose step needs one barrier: 0.53-0.92 of few_rows's time at H = 64 (B = 256: 0.43
//   against 0.80), 0.76-1.17 at H = 128. In clusters (H 256 and 512) 0.76-1.02 of it in
//   that run, 0.85-1.15 in the next (gpu-check-h200-20261126-13, 4% faster on average),
//   and on an H100 in one process, kernel against kernel (bench/gpu_kernel_ab.py,
//   gpu-check-h100-20261126/ab): float32 geometric means 0.947 at H = 256 (0.87-1.02 a
//   shape; B = 1: 0.995) and 0.843 at 512; bfloat16, noisier, 0.967 and 0.877 (B = 1,
//   H = 256: 1.21, but 1.00-1.02 in the tunes of both GPUs). Two float32 tunes there agree
//   (lean 1.11-1.24 us at H = 512, few_rows 1.37-1.71).
// - few_rows (or lean) wins wherever it runs (H <= 512, as many rows as its groups fit at
//   once; B = 1, H = 256: 0.96 in float32, a cluster kernel, since removed, 1.78, the
//   grid kernel 2.23; B = 64, H = 256: 1.14, tiled 7.37).
// - Next the column-block kernels, at any B <= 32: at B = 1 they tie with or beat the grid
//   kernel (float32, H = 1760: 6.37 against 8.02; bfloat16, H = 1024: 2.56 against 5.89).
//   The grid kernel at B = 1 where they cannot run (H past ~2100 on an H200; not timed).
// - More rows: gemm where a step's product is small. It runs at 9-11 TFLOP/s after ~2 us
//   a step; per-step cuBLAS takes 10-19 us a step at small sizes (launches) and reaches
//   14-18 TFLOP/s at the largest (B = 256, H = 1024 and 1760). float32: B = 64, H = 512:
//   5.25 against tiled's 13.8; B x H^2 = 2^26 (B = 64, H = 1024 and B = 256, H = 512):
//   13.9 and 14.7 against cuBLAS's 19.1; past it gemm loses (B = 64, H = 1760: 45.6
//   against 33.6; B = 256, H = 1024: 49.1 against 37.7). 16-bit storage, where cuBLAS uses
//   tensor cores: B = 64, H = 512: 5.59 against 9.62, but at 2^26 12.98 against 9.57.
// - Then, where gemm cannot run or its product is large, the tiled kernel over per-step
//   cuBLAS where its work per step is small (B = 64, H = 512, before gemm: 13.8 against
//   18.1 in float32) and not where it is large: per step it took ~2.5 us plus ~4x its cost
//   model's estimate (gpu-check-h200-20261126-2/profile.txt). Tiled up to an estimate of
//   2.5 us (B = 64, H = 256: 0.8; B = 256, H = 512: 4.2).
constexpr int kLeanMaxHidden = 512;
constexpr double kGemmMaxWork[2] = {0x1p25, 0x1p27};  // B * H^2, 16-bit and float32 storage
constexpr double kTiledMaxCost = 2500;  // ns

// The rule above, for a shape no kernel is forced for.
template <typename S>
Plan by_rule(int batch, int hidden, bool lengths, const Device& d) {
  constexpr bool f32 = std::is_same<S, float>::value;
  std::vector<const char*> order;
  if (hidden <= kLeanMaxHidden) order.push_back("lean");
  order.push_back("few_rows");
  order.push_back(f32 ? "fma" : "mma");
  if (batch == 1) order.push_back("persistent");
  if ((double)batch * hidden * hidden <= kGemmMaxWork[f32]) order.push_back("gemm");
  for (const char* name : order) {
    const Plan p = plan_named<S>(name, batch, hidden, lengths, d);
    if (p.kind != Plan::Stepwise) return p;
  }
  const Plan p = plan_named<S>("tiled", batch, hidden, lengths, d);
  return p.kind == Plan::Tiled && p.tiled.cost <= kTiledMaxCost ? p : Plan{};
}

template <typename S>
void run_persistent(const Recurrence<S>& r, const Plan& p) {
  launch_cooperative(p.kernel, p.blocks, kThreads, p.smem, r, p.cols, "persistent kernel launch");
}

template <typename S>
void run_stepwise(const Recurrence<S>& r, cublasHandle_t blas, S* state, float* product) {
  const int n = r.batch * r.hidden, threads = 256, blocks = (n + threads - 1) / threads;
  const float one = 1.f, zero = 0.f;
  check(cublasSetStream(blas, r.stream), "cuBLAS stream");
  check(cudaMemcpyAsync(state, r.h0, (size_t)n * sizeof(S), cudaMemcpyDeviceToDevice, r.stream),
        "h0");
  for (int k = 0; k < r.steps; ++k) {
    // product (row-major batch x H, float) = state @ W_y, as column-major W_y^T state^T;
    // float accumulation (CUBLAS_COMPUTE_32F: no TF32) whatever S is
    check(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, r.hidden, r.batch, r.hidden, &one, r.w_y,
                       blas_type<S>(), r.hidden, state, blas_type<S>(), r.hidden, &zero, product,
                       CUDA_R_32F, r.hidden, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "recurrent product");
    step_epilogue<<<blocks, threads, 0, r.stream>>>(r, k, product, state);
    check(cudaGetLastError(), "step kernel launch");
  }
  check(cudaMemcpyAsync(r.h_n, state, (size_t)n * sizeof(S), cudaMemcpyDeviceToDevice, r.stream),
        "h_n");
}

// The steps of r by plan p (outputs past each row's length are left as they are).
template <typename S>
void run_plan(const Plan& p, const Recurrence<S>& r, cublasHandle_t blas, S* state, float* product) {
  switch (p.kind) {
    case Plan::FewRows:
    case Plan::Lean:
    case Plan::LeanAsync: launch_few_rows(r, p.few_rows); break;
    case Plan::Persistent: run_persistent(r, p); break;
    case Plan::Tiled: launch_tiled(r, p.tiled); break;
    case Plan::Mma:
      if constexpr (!std::is_same<S, float>::value) launch_mma(r, p.mma);
      break;
    case Plan::Fma:
      if constexpr (std::is_same<S, float>::value) launch_fma(r, p.fma);
      break;
    case Plan::Gemm: launch_gemm(r, p.gemm); break;
    default: run_stepwise(r, blas, state, product);
  }
}

// ---- the timed choice: every kernel that can run the shape, timed there --------------

std::atomic<bool> timed_choice_set{false};  // set_timed_choice

// Of the kernels that can run the shape, the one whose trial run was the shortest, with
// every candidate's time. A whole trial run (trial.cuh) weighs a kernel's fixed cost per
// launch with its per-step time (bench/gpu_tune.py ranks by the per-step time alone);
// one direction is timed alone, even where two would run side by side. The GPU is
// waited for first, so that the trials have it to themselves (apart from other
// processes, and threads that run other shapes). A kernel whose run fails is passed
// over, unless the failure broke the GPU's context, which is reported. Where no trial
// can be made (no memory for it), the rule chooses, and that stays the process's choice
// for the shape.
template <typename S>
Plan fastest(int batch, int hidden, bool lengths, const Device& d) {
  std::vector<Plan> candidates;
  for (const char* name : kKernelNames) {
    const Plan p = plan_named<S>(name, batch, hidden, lengths, d);
    if ((p.kind != Plan::Stepwise || std::string(name) == "stepwise") && !only_when_forced(p.kind))
      candidates.push_back(p);
  }
  if (candidates.size() == 1) return candidates[0];
  synchronize_device("waiting for the GPU before timing the recurrence kernels");
  std::optional<Trial<S>> trial;
  try {
    trial.emplace(batch, hidden, lengths);
  } catch (const std::runtime_error&) {
    cudaGetLastError();
    check(cudaDeviceSynchronize(), "making the trial of the recurrence kernels");  // the GPU's?
    return by_rule<S>(batch, hidden, lengths, d);
  }
  Plan best;
  float best_ms = std::numeric_limits<float>::infinity();
  std::vector<std::pair<const char*, float>> times;
  for (const Plan& p : candidates) {
    const char* name = kKernelNames[p.kind];
    float ms = std::numeric_limits<float>::quiet_NaN();
    try {
      ms = trial->milliseconds([&p](const Recurrence<S>& r, cublasHandle_t blas, S* state, float* product) {
        run_plan(p, r, blas, state, product);
      });
    } catch (const std::runtime_error&) {
      // An error that stays (an illegal address) is the GPU's, not this kernel's choice.
      // (A cuBLAS failure may leave the runtime's last error set: cleared first.)
      cudaGetLastError();
      check(cudaDeviceSynchronize(), (std::string("timing the ") + name + " kernel").c_str());
    }
    times.emplace_back(name, ms);
    if (ms < best_ms) best = p, best_ms = ms;
  }
  best.trial = times;
  return best;
}

template <typename S>
Plan choose(int batch, int hidden, bool lengths, bool timed, const std::string& forced) {
  const Device d = current_device();
  if (!forced.empty()) {
    const Plan p = plan_named<S>(forced, batch, hidden, lengths, d);
    if (p.kind != Plan::Stepwise || forced == "stepwise") return p;
  }
  return timed ? fastest<S>(batch, hidden, lengths, d) : by_rule<S>(batch, hidden, lengths, d);
}

// The plan for a shape on the current GPU, chosen now if `make` and none was before
// (else null).
template <typename S>
const Plan* cached_plan(int batch, int hidden, bool lengths, bool timed, bool make) {
  static std::mutex mutex;
  // Per GPU too: the plan's checks and kernel attributes (shared memory limits) are per
  // device, and GPUs may differ. Per way of choosing and kernel forced: switching back to
  // the rule, or unsetting ELMAN_CUDA_KERNEL, gives the rule's plans.
  static std::map<std::tuple<int, int, int, bool, bool, std::string>, Plan> plans;  // per S
  const std::string forced = forced_kernel();
  const auto key = std::make_tuple(current_device_id(), batch, hidden, lengths, timed, forced);
  std::lock_guard<std::mutex> lock(mutex);
  auto found = plans.find(key);
  if (found == plans.end()) {
    if (!make) return nullptr;
    found = plans.emplace(key, choose<S>(batch, hidden, lengths, timed, forced)).first;
  }
  return &found->second;
}

template <typename S>
const Plan& plan_for(int batch, int hidden, bool lengths, bool timed) {
  return *cached_plan<S>(batch, hidden, lengths, timed, /*make=*/true);
}

}  // namespace

void set_timed_choice(bool timed) { timed_choice_set = timed; }

bool timed_choice() { return timed_choice_set; }

template <typename S>
void run_recurrence(const Recurrence<S>& r, bool timed, cublasHandle_t blas, S* state, float* product) {
  run_plan(plan_for<S>(r.batch, r.hidden, r.lengths != nullptr, timed), r, blas, state, product);
  if (r.lengths) {
    const size_t all = (size_t)r.steps * r.batch * r.hidden;
    zero_padding<<<(unsigned)((all + 255) / 256), 256, 0, r.stream>>>(r);
    check(cudaGetLastError(), "padding kernel launch");
  }
}

std::string recurrence_kernel(int batch, int hidden, bool lengths, Storage storage) {
  return with_storage(storage, [&](auto s) {
    return std::string(kKernelNames[plan_for<decltype(s)>(batch, hidden, lengths, timed_choice()).kind]);
  });
}

std::optional<std::vector<std::pair<std::string, float>>> recurrence_trial(int batch, int hidden,
                                                                           bool lengths, Storage storage) {
  return with_storage(storage, [&](auto s) -> std::optional<std::vector<std::pair<std::string, float>>> {
    const Plan* p = cached_plan<decltype(s)>(batch, hidden, lengths, /*timed=*/true, /*make=*/false);
    if (!p) return std::nullopt;
    return std::vector<std::pair<std::string, float>>(p->trial.begin(), p->trial.end());
  });
}

template <typename S>
bool recurrence_beside_another(int batch, int hidden, bool lengths, bool timed) {
  const Plan& p = plan_for<S>(batch, hidden, lengths, timed);
  // no cooperative launch; two must fit at once (not on every MIG slice)
  return (p.kind == Plan::FewRows || p.kind == Plan::Lean || p.kind == Plan::LeanAsync) &&
         p.few_rows.launches >= 2;
}

template bool recurrence_beside_another<float>(int, int, bool, bool);
template bool recurrence_beside_another<__half>(int, int, bool, bool);
template bool recurrence_beside_another<__nv_bfloat16>(int, int, bool, bool);
template void run_recurrence(const Recurrence<float>&, bool, cublasHandle_t, float*, float*);
template void run_recurrence(const Recurrence<__half>&, bool, cublasHandle_t, __half*, float*);
template void run_recurrence(const Recurrence<__nv_bfloat16>&, bool, cublasHandle_t, __nv_bfloat16*, float*);

}  // namespace elman::cuda
