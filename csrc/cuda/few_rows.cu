// The recurrence with H <= 512 in independent groups of 1, 2 or 4 rows (batch rows do not
// depend on each other), W_y entirely in registers, each group in blocks of 512 threads
// (or fewer: lean, below): H <= 128 in one block, H <= 256 in a cluster of two, H <= 512
// in a cluster of eight. A step then reads no weights from memory; one block needs only
// its own barriers (no cluster or grid barrier, whose memory fences also wait for the
// step's output stores), a cluster its barrier, split so that the output stores fall
// between its arrive and its wait. Groups never wait for each other, so they need not be
// resident together; the plan takes the fewest rows per group for which they all are,
// since a group's step takes longer the more rows it has (H = 256: 0.99 us with one row,
// 2.11 with four; bench/results/gpu-check-h200-20261126-9/gpu-tune.md).
//
// Block j of a group owns kColumns columns from j * kColumns (Layout below). Its thread
// (c, part) owns one of them and k in [K * part, K * part + K): K values of W_y in
// registers, used for every row. Each block holds the whole state of its group's rows in
// shared memory, double-buffered, read by broadcast (all lanes of a warp have the same
// part). All parts leave their sums for every row in shared memory (with one part, the
// thread keeps its own); part b adds row b's, p_t and the bias, applies the activation,
// writes the output and the new state value into every block's copy (distributed shared
// memory in a cluster). Columns and k past H are zeros; a row past its length (or past B)
// computes on but is not written.
//
// p_t is staged kAhead steps ahead with cp.async into a ring in shared memory: a load
// issued one step ahead was still pending when needed (a step is shorter than a global
// load's latency here; bench/results/gpu-check-h200-20261126-7/NOTES.md).
#include <cooperative_groups.h>

#include <algorithm>
#include <cstdint>

#include "cuda/few_rows.h"

namespace cg = cooperative_groups;

namespace elman::cuda {
namespace {

constexpr int kAhead = 8;  // steps of p_t in flight

// A block of THREADS threads: kColumns columns, each split into kParts parts of k of
// kPerThread values (kParts x kPerThread and BLOCKS x kColumns both cover the largest H).
// 512 threads: at most 64 values of W_y per thread, so that with the rest they stay within
// 128 registers. Lean blocks have fewer threads, each with more of k: 64 or 128 threads
// with a column each and all of k (one block, H <= 128), or 256 (in a cluster of two: two
// parts of 128 columns; of eight: four parts of 64). Up to 128 values of W_y per thread,
// within 255 registers. Their barriers wait for fewer warps, and with one part a step
// needs one barrier, not two: at H = 64 that took a quarter off a step on an H200
// (recurrence.cu's rule gives the measurements).
template <int BLOCKS, int THREADS>
struct Layout {
  static constexpr int kColumns = THREADS <= 128 ? THREADS : BLOCKS <= 2 ? 128 : 64;
  static constexpr int kParts = THREADS / kColumns;
  static constexpr int kMaxHidden = BLOCKS * kColumns;
  static constexpr int kPerThread = kMaxHidden / kParts;
  static_assert(kParts * kPerThread == kMaxHidden, "k and columns cover the same H");
  static_assert(kPerThread <= (THREADS == 512 ? 64 : 128), "W_y fits in registers");
};

constexpr int kWideThreads = 512;

// The block count for H (0: too large).
int blocks_for(int hidden) { return hidden <= 128 ? 1 : hidden <= 256 ? 2 : hidden <= 512 ? 8 : 0; }

// The cluster operations of the multi-block kernels, which are chosen only where they
// were compiled with clusters (has_clusters); compiled without, they trap.
// The operations of one-way signalling (SENDS, below) likewise: an mbarrier counts the
// bytes that st.async stores from other blocks deliver into this block's shared memory.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
__device__ inline int cluster_rank() { __trap(); return 0; }
__device__ inline void cluster_sync() { __trap(); }
__device__ inline void cluster_arrive() { __trap(); }
__device__ inline void cluster_wait() { __trap(); }
__device__ inline float* in_block(float* local, int) { __trap(); return local; }
__device__ inline void init_counter(std::uint64_t*) { __trap(); }
__device__ inline void expect_bytes(std::uint64_t*, unsigned) { __trap(); }
__device__ inline void wait_for_phase(std::uint64_t*, unsigned) { __trap(); }
__device__ inline void send(float*, std::uint64_t*, int, float) { __trap(); }
#else
__device__ inline int cluster_rank() { return (int)cg::this_cluster().block_rank(); }
__device__ inline void cluster_sync() { cg::this_cluster().sync(); }
__device__ inline void cluster_arrive() { (void)cg::this_cluster().barrier_arrive(); }
__device__ inline void cluster_wait() { cg::this_cluster().barrier_wait(); }
// The same shared-memory address in block `rank` of the cluster.
__device__ inline float* in_block(float* local, int rank) { return cg::this_cluster().map_shared_rank(local, rank); }

__device__ inline unsigned shared_address(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }
// An mbarrier whose phases end at one arrival (expect_bytes's) and all the bytes it expects;
// made visible to the cluster's other blocks (their stores count on it) by the cluster
// barrier that follows.
__device__ inline void init_counter(std::uint64_t* counter) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(shared_address(counter)) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// Arms the counter's current phase: it ends once `bytes` more bytes have landed.
__device__ inline void expect_bytes(std::uint64_t* counter, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 _, [%0], %1;\n" ::"r"(
                   shared_address(counter)),
               "r"(bytes)
               : "memory");
}
// Until the counter's phase of this parity has ended; the stores counted in it are then
// visible to this thread (acquire). A wait past 2^32 cycles (seconds) traps: a protocol
// error fails the call rather than hanging the GPU.
__device__ inline void wait_for_phase(std::uint64_t* counter, unsigned parity) {
  const unsigned at = shared_address(counter);
  const long long start = clock64();
  for (;;) {
    unsigned ended;
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2;\n"
        " selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(ended)
        : "r"(at), "r"(parity)
        : "memory");
    if (ended) return;
    if (clock64() - start > (1ll << 32)) __trap();
  }
}
// `value` into the address of `local` in block `rank`, counted by that block's `counter`
// when it lands; the sender does not wait for it.
__device__ inline void send(float* local, std::uint64_t* counter, int rank, float value) {
  unsigned to, count_at;
  asm("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(to) : "r"(shared_address(local)), "r"(rank));
  asm("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(count_at) : "r"(shared_address(counter)), "r"(rank));
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.b32 [%0], %1, [%2];\n" ::"r"(to),
               "r"(__float_as_uint(value)), "r"(count_at)
               : "memory");
}
#endif

// BLOCKS: 1, or 2 or 8 in a cluster (compute capability 9), each of THREADS threads;
// ROWS: 1, 2 or 4 per group, the group of rows from ROWS x the cluster's index.
//
// SENDS (an experiment, in clusters; ELMAN_CUDA_KERNEL=lean_async, not yet run on a GPU):
// no cluster barrier a step, ~0.5 us of a 1.8 us step at H = 256 in an early kernel on an
// H200 (bench/results/gpu-experiments-h200-20261126/NOTES.md). Each
// block sends its new state values into the other blocks' copies with st.async, and a
// block starts its next step once its counter for that state buffer (an mbarrier, one per
// buffer) has counted all their bytes; its own values are covered by __syncthreads. A
// block then waits only for the data it needs, never for another block's output stores.
// Every thread of parts < ROWS sends every step (zeros for ended rows and columns past
// H), so each phase counts the same bytes. A buffer's phase is armed as soon as its
// previous phase has ended, before any of its bytes can land: they come from a step that
// needs this block's values of the step in between, sent after the arming. A buffer is
// written only after every block has read it: a block sends into it once it has this
// step's values from all the others, which they sent after the __syncthreads that follows
// their reads. A block waits for the last step's bytes before it exits. Model-checked
// with spin (tools/spin/check).
template <int BLOCKS, int THREADS, int ROWS, typename S, bool SENDS = false>
__global__ void __launch_bounds__(THREADS, 1) few_rows(Recurrence<S> r) {
  using L = Layout<BLOCKS, THREADS>;
  constexpr int kColumns = L::kColumns, kParts = L::kParts, kPerThread = L::kPerThread;
  static_assert(ROWS <= kParts, "a part finishes each row");
  static_assert(!SENDS || (BLOCKS > 1 && kParts > 1), "sends: a cluster, and a barrier between reads and sends");
  // SENDS: the bytes from other blocks into h_s[b] each step
  constexpr unsigned kBytesIn = (BLOCKS - 1) * ROWS * kColumns * sizeof(float);
  __shared__ __align__(16) float h_s[2][ROWS][L::kMaxHidden];
  __shared__ float partial[kParts][ROWS][kColumns];
  __shared__ float ring[kAhead][ROWS][kColumns];  // p_t of the coming steps
  __shared__ std::uint64_t arrived[2];             // SENDS: the counters of h_s[0] and h_s[1]
  const int H = r.hidden, tid = threadIdx.x, part = tid / kColumns, j = tid % kColumns;
  const int rank = BLOCKS > 1 ? cluster_rank() : 0;
  const int c = rank * kColumns + j;  // the column, of all H
  const int k0 = part * kPerThread;
  const int first = (int)blockIdx.x / BLOCKS * ROWS, rows = min(ROWS, r.batch - first);
  // Part b finishes row first + b (of column c): a row of its own per finishing thread.
  const int row = part;
  const bool finisher = row < rows && c < H;
  const int length = finisher ? length_of(r, first + row) : 0;
  int steps = 0;  // the longest row's
  for (int b = 0; b < rows; ++b) steps = max(steps, length_of(r, first + b));
  // The row of y and p that iteration k of this thread's row writes (backwards if reverse).
  const auto row_of = [&](int k) {
    return (size_t)(r.reverse ? length - 1 - k : k) * r.batch + first + row;
  };

  float w[kPerThread];
#pragma unroll
  for (int i = 0; i < kPerThread; ++i)
    w[i] = k0 + i < H && c < H ? to_float(r.w_y[(size_t)(k0 + i) * H + c]) : 0.f;
  const float bias = finisher ? bias_at(r.bias, c) : 0.f;
  for (int i = tid; i < ROWS * L::kMaxHidden; i += THREADS) {
    const int b = i / L::kMaxHidden, n = i % L::kMaxHidden;
    h_s[0][b][n] = b < rows && n < H ? to_float(r.h0[(size_t)(first + b) * H + n]) : 0.f;
    h_s[1][b][n] = 0.f;  // columns past H stay 0
  }
  // p_t of iteration k into its ring slot. Every thread commits a group per step (maybe
  // empty), so the group count is the same everywhere. In place (p is y), a step's p_t is
  // read before that step overwrites it, and only by this thread.
  const auto stage = [&](int k) {
    if (finisher && k < length) copy_async_4(&ring[k % kAhead][row][j], r.p + row_of(k) * r.ldp + c);
    commit_copies();
  };
  for (int k = 0; k < kAhead - 1; ++k) stage(k);
  if constexpr (SENDS) {
    if (tid == 0)
      for (std::uint64_t& counter : arrived) {
        init_counter(&counter);
        expect_bytes(&counter, kBytesIn);  // h_s[1]: step 0's values; h_s[0]: step 1's
      }
  }
  // Every block of a cluster has started (and set its state and counters) before any
  // writes into it.
  if constexpr (BLOCKS > 1) cluster_sync(); else __syncthreads();
  // SENDS: the parity of the counter's phase that ends with step k's values (k >= 1):
  // h_s[1]'s count steps 1, 3, 5..., h_s[0]'s steps 2, 4, ...
  const auto phase_of = [](int k) { return (unsigned)((k - 1) >> 1) & 1u; };

  for (int k = 0; k < steps; ++k) {
    stage(k + kAhead - 1);  // into the slot step k - 1 used
    if constexpr (SENDS) {
      if (k > 0) {
        wait_for_phase(&arrived[k & 1], phase_of(k));
        if (tid == 0) expect_bytes(&arrived[k & 1], kBytesIn);  // its next phase: step k + 2's
      }
    }
    float own = 0.f;        // kParts = 1 (so ROWS = 1): this thread's whole sum
#pragma unroll
    for (int b = 0; b < ROWS; ++b) {
      const float4* h = reinterpret_cast<const float4*>(&h_s[k & 1][b][k0]);
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
      if constexpr (kParts > 1) partial[part][b][j] = sum; else own = sum;
    }
    wait_copies<kAhead - 1>();  // this step's p_t has landed
    // The parts' sums, for their finishers. With one part there are none: the state read
    // above was written before the last barrier, and the buffer written below was last
    // read before it, so one barrier a step is enough.
    if constexpr (kParts > 1) __syncthreads();
    const bool writes = finisher && k < length;
    S v{};
    float next = 0.f;  // as stored: the next step reads it so
    if (writes) {
      float z = ring[k % kAhead][row][j] + bias;
      if constexpr (kParts > 1) {
#pragma unroll
        for (int q = 0; q < kParts; ++q) z += partial[q][row][j];
      } else {
        z += own;
      }
      v = from_float<S>(apply_activation(r.act, z));
      next = to_float(v);
    }
    // Its new state value into every block's copy (a thread past ROWS has none).
    float* const state = &h_s[(k + 1) & 1][min(row, ROWS - 1)][c];
    if constexpr (SENDS) {
      if (row < ROWS) {
        *state = next;
#pragma unroll
        for (int to = 0; to < BLOCKS; ++to)
          if (to != rank) send(state, &arrived[(k + 1) & 1], to, next);
      }
    } else if (writes) {
      if constexpr (BLOCKS > 1) {
#pragma unroll
        for (int to = 0; to < BLOCKS; ++to) *in_block(state, to) = next;
      } else {
        *state = next;
      }
    }
    // The output: in a cluster between the barrier's arrive (which releases the state
    // writes) and its wait, so that this step's barrier does not wait for its store.
    if constexpr (BLOCKS > 1 && !SENDS) cluster_arrive();
    if (writes) {
      r.y[row_of(k) * r.ldy + c] = v;
      if (k == length - 1) r.h_n[(size_t)(first + row) * H + c] = v;
    }
    if constexpr (BLOCKS > 1 && !SENDS) cluster_wait(); else __syncthreads();
  }
  // SENDS: the last step's values from the other blocks have landed (none may land in a
  // block that has exited).
  if constexpr (SENDS) {
    if (steps > 0) wait_for_phase(&arrived[steps & 1], phase_of(steps));
  }
  wait_copies<0>();  // nothing left in flight at exit
}

// The launch of p.groups clusters of p.blocks; `attribute` must outlive it.
cudaLaunchConfig_t cluster_config(const FewRowsPlan& p, cudaLaunchAttribute& attribute, cudaStream_t stream) {
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(p.groups * p.blocks);
  config.blockDim = dim3(p.threads);
  config.stream = stream;
  attribute = cluster_of(p.blocks);
  config.attrs = &attribute;
  config.numAttrs = p.blocks > 1 ? 1 : 0;  // one block: a plain launch
  return config;
}

template <typename S, int ROWS>
const void* wide_kernel(int blocks) {
  return blocks == 1   ? address(few_rows<1, kWideThreads, ROWS, S>)
         : blocks == 2 ? address(few_rows<2, kWideThreads, ROWS, S>)
                       : address(few_rows<8, kWideThreads, ROWS, S>);
}

// The 512-thread kernel for groups of `rows` rows (1, 2 or 4) in `blocks`.
template <typename S>
const void* wide_kernel(int rows, int blocks) {
  return rows == 1   ? wide_kernel<S, 1>(blocks)
         : rows == 2 ? wide_kernel<S, 2>(blocks)
                     : wide_kernel<S, 4>(blocks);
}

// The lean kernel for H, one row per group, in the blocks blocks_for gives (kernel null
// past H = 512, and with sends for one block): one block of 64 threads up to H = 64.
template <typename S>
FewRowsPlan lean_kernel(int hidden, bool sends) {
  switch (blocks_for(hidden)) {
    case 1:
      if (sends) return {};
      return hidden <= 64 ? FewRowsPlan{address(few_rows<1, 64, 1, S>), 1, 64}
                          : FewRowsPlan{address(few_rows<1, 128, 1, S>), 1, 128};
    case 2:
      return {sends ? address(few_rows<2, 256, 1, S, true>) : address(few_rows<2, 256, 1, S>), 2, 256};
    case 8:
      return {sends ? address(few_rows<8, 256, 1, S, true>) : address(few_rows<8, 256, 1, S>), 8, 256};
    default: return {};
  }
}

// How many groups (clusters of p.blocks) of p.kernel can be resident at once (not under
// every MIG slice can one be).
int resident_groups(const FewRowsPlan& p, const Device& d) {
  int active = 0;
  cudaError_t status;
  if (p.blocks == 1) {
    status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&active, p.kernel, p.threads, 0);
    active *= d.sms;
  } else {
    if (d.major < 9 || !has_clusters(p.kernel)) return 0;
    cudaLaunchAttribute attribute;
    const cudaLaunchConfig_t config = cluster_config(p, attribute, nullptr);
    status = cudaOccupancyMaxActiveClusters(&active, p.kernel, &config);
  }
  if (status != cudaSuccess) {  // then another kernel runs the shape
    cudaGetLastError();
    return 0;
  }
  return active;
}

// Sets p's groups for `batch` rows, `rows` to a group, and its launches; whether all those
// groups can be resident at once.
bool groups_fit(FewRowsPlan& p, int batch, int rows, const Device& d) {
  p.groups = (batch + rows - 1) / rows;
  p.launches = resident_groups(p, d) / p.groups;
  return p.launches >= 1;
}

}  // namespace

template <typename S>
FewRowsPlan few_rows_plan(int batch, int hidden, FewRowsKernel kernel, const Device& d) {
  if (kernel != FewRowsKernel::Wide) {
    FewRowsPlan p = lean_kernel<S>(hidden, kernel == FewRowsKernel::LeanSends);
    return p.kernel && groups_fit(p, batch, 1, d) ? p : FewRowsPlan{};
  }
  const int blocks = blocks_for(hidden);
  if (blocks == 0) return {};
  for (const int rows : {1, 2, 4}) {
    FewRowsPlan p{wide_kernel<S>(rows, blocks), blocks, kWideThreads};
    if (groups_fit(p, batch, rows, d)) return p;
  }
  return {};
}

template <typename S>
void launch_few_rows(const Recurrence<S>& r, const FewRowsPlan& p) {
  cudaLaunchAttribute attribute;
  const cudaLaunchConfig_t config = cluster_config(p, attribute, r.stream);
  Recurrence<S> args = r;
  void* params[] = {&args};
  check(cudaLaunchKernelExC(&config, p.kernel, params), "few-rows kernel launch");
}

template FewRowsPlan few_rows_plan<float>(int, int, FewRowsKernel, const Device&);
template FewRowsPlan few_rows_plan<__half>(int, int, FewRowsKernel, const Device&);
template FewRowsPlan few_rows_plan<__nv_bfloat16>(int, int, FewRowsKernel, const Device&);
template void launch_few_rows(const Recurrence<float>&, const FewRowsPlan&);
template void launch_few_rows(const Recurrence<__half>&, const FewRowsPlan&);
template void launch_few_rows(const Recurrence<__nv_bfloat16>&, const FewRowsPlan&);

}  // namespace elman::cuda
