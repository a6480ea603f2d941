// The forward pass of a layer stack on the GPU: per layer and direction, the input
// projection of all steps and rows as one cuBLAS product (float accumulation, into y
// itself for float32 storage, else into a float buffer), then the recurrence
// (recurrence.h): on chip in one launch where it fits, else one cuBLAS product and one
// kernel per step.
#include <climits>
#include <stdexcept>
#include <type_traits>

#include "cuda/check.h"
#include "cuda/cuda.h"
#include "cuda/recurrence.h"
#include "cuda/storage.cuh"

namespace elman::cuda {

struct Network::Impl {
  // One layer and direction on the device: W_x and W_y in the storage type, b in float.
  struct Cell {
    const void* w_x;
    const void* w_y;
    const float* b;
    bool reverse;
    DeviceActivation act;
  };
  std::vector<std::unique_ptr<Buffer>> weights;  // the device copies the cells point into
  std::vector<Cell> cells;
  cublasHandle_t blas = nullptr;
  // Work buffers kept between calls (under the network's mutex), grown as needed:
  // allocating and freeing device memory costs more than a short sequence's work.
  std::unique_ptr<Buffer> between[2], zeros, lengths, state, product, projection, x_steps, y_steps;
  cudaEvent_t done = nullptr;  // the last call's work: the buffers are free after it
  // Where the two directions' recurrences run side by side (kernels on a few SMs each):
  // the second one's stream, and the events that fork it from the call's stream and join it
  // back. Made at the first such layer.
  cudaStream_t beside = nullptr;
  cudaEvent_t fork = nullptr, join = nullptr;

  ~Impl() {
    if (blas) cublasDestroy(blas);
    for (cudaEvent_t e : {done, fork, join})
      if (e) cudaEventDestroy(e);
    if (beside) cudaStreamDestroy(beside);
  }

  // The stream beside the call's, made on first use (on the network's GPU, which forward
  // makes current).
  cudaStream_t second_stream() {
    if (!fork) check(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming), "creating an event");
    if (!join) check(cudaEventCreateWithFlags(&join, cudaEventDisableTiming), "creating an event");
    if (!beside) check(cudaStreamCreateWithFlags(&beside, cudaStreamNonBlocking), "creating a stream");
    return beside;
  }

  // After a failure part-way through a call: what it queued, on either stream, is still
  // waited for by the next call (through `done`). An error here that breaks the context
  // is the next call's to report; any other is cleared, or that call's first launch check
  // would report it as its own.
  void settle(cudaStream_t stream) noexcept {
    if (beside && join && cudaEventRecord(join, beside) == cudaSuccess) cudaStreamWaitEvent(stream, join, 0);
    cudaEventRecord(done, stream);
    cudaGetLastError();
  }

  // A device copy of `count` host floats, as `storage` (null for null).
  const void* upload(const float* host, std::int64_t count, Storage storage) {
    if (!host) return nullptr;
    weights.push_back(cuda::upload(host, count, storage));
    return weights.back()->data();
  }
};

namespace {

DeviceActivation on_device(const ActivationParams& a) {
  return {a.kind, static_cast<float>(a.alpha), static_cast<float>(a.beta),
          static_cast<float>(a.clip), a.clipped};
}

// `buffer`, reallocated if it holds fewer than `bytes` (the old one is reused only once
// no earlier call can still use it, see Buffer); new memory is zeroed if asked.
void* at_least(std::unique_ptr<Buffer>& buffer, std::size_t bytes, bool zeroed = false) {
  if (!buffer || buffer->bytes() < bytes) {
    buffer.reset();  // given back first: a large one is freed now (both may not fit)
    buffer = std::make_unique<Buffer>(bytes);
    if (zeroed) {  // done before any stream's work reads it
      check(cudaMemset(buffer->data(), 0, bytes), "zero state");
      synchronize_device("zero state");
    }
  }
  return buffer->data();
}

template <typename T>
T* array_of(std::unique_ptr<Buffer>& buffer, std::int64_t count, bool zeroed = false) {
  return static_cast<T*>(at_least(buffer, count * sizeof(T), zeroed));
}

struct Call {
  std::int64_t steps, batch;
  const int* lengths;  // device, or null
  cudaStream_t stream;
  bool batch_first;
  bool timed;  // the kernels chosen by timing (timed_choice(), read once per call)
};

// The layers and directions in storage S (x, y in (T, B, .) order here).
template <typename S>
void run_layers(Network::Impl& w, const Shape& sizes, const Call& call, const S* x, const S* h0,
                S* y, S* h_n) {
  const std::int64_t H = sizes.hidden_size, D = sizes.num_directions, L = sizes.num_layers;
  const std::int64_t rows = call.steps * call.batch, features = D * H;
  constexpr bool in_place = std::is_same<S, float>::value;  // projections land in y itself
  S* between[2] = {nullptr, nullptr};
  for (std::int64_t l = 0; l + 1 < L && l < 2; ++l) between[l] = array_of<S>(w.between[l], rows * features);
  if (!h0)  // zeros are multiplied like any state: 0 @ W_y is NaN where W_y has NaN or Inf
    h0 = array_of<S>(w.zeros, L * D * call.batch * H, /*zeroed=*/true);
  float* projection = in_place ? nullptr : array_of<float>(w.projection, rows * features);
  S* state = array_of<S>(w.state, call.batch * H);
  float* product = array_of<float>(w.product, call.batch * H);

  const float one = 1.f, zero = 0.f;
  const S* in = x;
  std::int64_t in_features = sizes.input_size;
  // Two directions whose recurrences fit on the GPU together run side by side: the second
  // on a stream forked from the call's after the projections, joined back after it.
  const bool side_by_side =
      D == 2 && recurrence_beside_another<S>((int)call.batch, (int)H, call.lengths != nullptr, call.timed);
  const cudaStream_t beside = side_by_side ? w.second_stream() : nullptr;
  for (std::int64_t l = 0; l < L; ++l) {
    S* out = l + 1 == L ? y : between[l % 2];
    float* p = in_place ? reinterpret_cast<float*>(out) : projection;
    // The last direction's projection first: side by side, its recurrence then starts on
    // the second stream while the first direction's projection runs.
    for (std::int64_t d = D - 1; d >= 0; --d) {
      // p[:, d*H:(d+1)*H] (row-major, row stride D*H) = in @ w_x, as column-major
      // p^T = w_x^T in^T: the projection lands in this direction's columns.
      check(cublasGemmEx(w.blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)H, (int)rows, (int)in_features, &one,
                         w.cells[l * D + d].w_x, blas_type<S>(), (int)H, in, blas_type<S>(),
                         (int)in_features, &zero, p + d * H, CUDA_R_32F, (int)features,
                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            "input projection");
      if (side_by_side && d == 1) {
        check(cudaEventRecord(w.fork, call.stream), "forking the second direction");
        check(cudaStreamWaitEvent(beside, w.fork, 0), "forking the second direction");
      }
    }
    for (std::int64_t d = 0; d < D; ++d) {
      const Network::Impl::Cell& cell = w.cells[l * D + d];
      const std::int64_t offset = (l * D + d) * call.batch * H;
      const Recurrence<S> r{(int)call.steps, (int)call.batch, (int)H,
                            static_cast<const S*>(cell.w_y), cell.b, cell.reverse, cell.act,
                            h0 + offset, call.lengths, p + d * H, (int)features, out + d * H,
                            (int)features, h_n + offset, d == 1 && side_by_side ? beside : call.stream};
      run_recurrence(r, call.timed, w.blas, state, product);
    }
    if (side_by_side) {  // the next layer, or the call's end, waits for both directions
      check(cudaEventRecord(w.join, beside), "joining the second direction");
      check(cudaStreamWaitEvent(call.stream, w.join, 0), "joining the second direction");
    }
    in = out;
    in_features = features;
  }
}

// run_layers, with batch_first arrays swapped to (T, B, .) order and back.
template <typename S>
void run(Network::Impl& w, const Shape& sizes, const Call& call, const void* x, const void* h0,
         void* y, void* h_n) {
  const std::int64_t features = sizes.num_directions * sizes.hidden_size;
  const S* x_steps = static_cast<const S*>(x);
  S* y_steps = static_cast<S*>(y);
  if (call.batch_first) {
    S* swapped = array_of<S>(w.x_steps, call.steps * call.batch * sizes.input_size);
    swap_leading_axes(x, swapped, call.batch, call.steps, sizes.input_size, sizeof(S), call.stream);
    x_steps = swapped;
    y_steps = array_of<S>(w.y_steps, call.steps * call.batch * features);
  }
  run_layers<S>(w, sizes, call, x_steps, static_cast<const S*>(h0), y_steps, static_cast<S*>(h_n));
  if (call.batch_first)
    swap_leading_axes(y_steps, y, call.steps, call.batch, features, sizeof(S), call.stream);
}

}  // namespace

Network::Network(const Shape& sizes, const std::vector<CellWeights<float>>& cells, Storage storage,
                 int device)
    : sizes_(sizes), storage_(storage), device_(device == kAnyDevice ? current_device_id() : device),
      impl_(std::make_unique<Impl>()) {
  const std::int64_t H = sizes.hidden_size, D = sizes.num_directions;
  if (static_cast<std::int64_t>(cells.size()) != sizes.num_layers * D)
    throw std::invalid_argument("cuda::Network: need one set of weights per layer and direction");
  if (H > INT_MAX / 4 || D * H > INT_MAX || sizes.input_size > INT_MAX)
    throw std::invalid_argument("cuda::Network: sizes beyond what cuBLAS takes (int)");
  const CurrentDevice on(device_);
  try {
    check(cublasCreate(&impl_->blas), "creating a cuBLAS handle");
    check(cudaEventCreateWithFlags(&impl_->done, cudaEventDisableTiming), "creating an event");
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::int64_t in = static_cast<std::int64_t>(c) < D ? sizes.input_size : D * H;
      const CellWeights<float>& w = cells[c];
      impl_->cells.push_back({impl_->upload(w.w_x, in * H, storage), impl_->upload(w.w_y, H * H, storage),
                              static_cast<const float*>(impl_->upload(w.b, H, Storage::F32)),
                              w.reverse, on_device(w.activation)});
    }
  } catch (...) {
    impl_.reset();  // on its GPU, still current: cuBLAS destroys a handle where it was made
    throw;
  }
}

Network::~Network() {
  // In a forked child they are the parent's, and cuBLAS may not be called: left alone.
  if (forked_after_cuda_use()) {
    impl_.release();
    return;
  }
  // On its GPU: the cuBLAS handle, the stream and the events are that GPU's.
  release_on(device_, [this] { impl_.reset(); });
}

void Network::forward(std::int64_t steps, std::int64_t batch, const void* x, const void* h0,
                      const std::int64_t* lengths, void* y, void* h_n, Stream stream,
                      bool batch_first) const {
  const CurrentDevice on(device_);  // first: it refuses a forked child, before any lock
  std::lock_guard<std::mutex> lock(mutex_);
  if (steps * batch > INT_MAX || batch * sizes_.hidden_size > INT_MAX)
    throw std::invalid_argument("cuda forward: T * B beyond what cuBLAS takes (int)");
  // Without a stream the inputs may come from any other: let their writes land first.
  if (!stream) synchronize_device("waiting for the inputs");
  check(cudaStreamWaitEvent(stream, impl_->done, 0), "waiting for the previous call");
  check(cublasSetStream(impl_->blas, stream), "cuBLAS stream");

  bool all_full = true;
  for (std::int64_t b = 0; lengths && b < batch; ++b) all_full = all_full && lengths[b] == steps;
  const int* lens = nullptr;
  if (!all_full) {
    std::vector<int> host(lengths, lengths + batch);
    lens = array_of<int>(impl_->lengths, batch);
    // From pageable memory: staged before the call returns, so `host` may go.
    check(cudaMemcpyAsync(const_cast<int*>(lens), host.data(), batch * sizeof(int),
                          cudaMemcpyHostToDevice, stream),
          "lengths to the device");
  }
  const Call call{steps, batch, lens, stream, batch_first, timed_choice()};
  try {
    with_storage(storage_, [&](auto s) { run<decltype(s)>(*impl_, sizes_, call, x, h0, y, h_n); });
  } catch (...) {
    impl_->settle(stream);
    throw;
  }
  check(cudaEventRecord(impl_->done, stream), "recording the call's end");
  if (!stream) check(cudaStreamSynchronize(stream), "the forward pass");
}

}  // namespace elman::cuda
