// The forward pass of a layer stack on the GPU: per layer and direction, the input
// projection of all steps and rows as one cuBLAS product, then the recurrence
// (recurrence.h): on chip in one launch where it fits, else one cuBLAS product and one
// kernel per step.
#include <climits>
#include <stdexcept>

#include "cuda/check.h"
#include "cuda/cuda.h"
#include "cuda/recurrence.h"

namespace elman::cuda {

struct Network::Impl {
  struct Cell {
    const float* w_x;
    const float* w_y;
    const float* b;
    bool reverse;
    DeviceActivation act;
  };
  std::vector<std::unique_ptr<Buffer>> storage;  // the device copies the cells point into
  std::vector<Cell> cells;
  cublasHandle_t blas = nullptr;
  // Work buffers kept between calls (under the network's mutex), grown as needed:
  // allocating and freeing device memory costs more than a short sequence's work.
  std::unique_ptr<Buffer> between[2], zeros, lengths, state, product;

  cudaEvent_t done = nullptr;  // the last call's work: the buffers are free after it

  ~Impl() {
    if (blas) cublasDestroy(blas);
    if (done) cudaEventDestroy(done);
  }

  const float* upload(const float* host, std::int64_t count) {
    if (!host) return nullptr;
    storage.push_back(std::make_unique<Buffer>(count * sizeof(float)));
    copy_to_device(storage.back()->data(), host, count * sizeof(float));
    return static_cast<const float*>(storage.back()->data());
  }
};

namespace {

DeviceActivation on_device(const ActivationParams& a) {
  return {a.kind, static_cast<float>(a.alpha), static_cast<float>(a.beta),
          static_cast<float>(a.clip), a.clipped};
}

// `buffer`, reallocated if it holds fewer than `bytes` (cudaFree waits for the device,
// so no earlier call still uses the old one); new memory is zeroed if asked.
void* at_least(std::unique_ptr<Buffer>& buffer, std::size_t bytes, bool zeroed = false) {
  if (!buffer || buffer->bytes() < bytes) {
    buffer.reset();  // free first: the old and new may not both fit
    buffer = std::make_unique<Buffer>(bytes);
    if (zeroed) {  // done before any stream's work reads it
      check(cudaMemset(buffer->data(), 0, bytes), "zero state");
      check(cudaDeviceSynchronize(), "zero state");
    }
  }
  return buffer->data();
}

float* floats(std::unique_ptr<Buffer>& buffer, std::int64_t count, bool zeroed = false) {
  return static_cast<float*>(at_least(buffer, count * sizeof(float), zeroed));
}

}  // namespace

Network::Network(const Shape& sizes, const std::vector<CellWeights<float>>& cells)
    : sizes_(sizes), impl_(std::make_unique<Impl>()) {
  const std::int64_t H = sizes.hidden_size, D = sizes.num_directions;
  if (static_cast<std::int64_t>(cells.size()) != sizes.num_layers * D)
    throw std::invalid_argument("cuda::Network: need one set of weights per layer and direction");
  if (H > INT_MAX / 4 || D * H > INT_MAX || sizes.input_size > INT_MAX)
    throw std::invalid_argument("cuda::Network: sizes beyond what cuBLAS takes (int)");
  check(cublasCreate(&impl_->blas), "creating a cuBLAS handle");
  check(cudaEventCreateWithFlags(&impl_->done, cudaEventDisableTiming), "creating an event");
  for (std::size_t c = 0; c < cells.size(); ++c) {
    const std::int64_t in = static_cast<std::int64_t>(c) < D ? sizes.input_size : D * H;
    const CellWeights<float>& w = cells[c];
    impl_->cells.push_back({impl_->upload(w.w_x, in * H), impl_->upload(w.w_y, H * H),
                            impl_->upload(w.b, H), w.reverse, on_device(w.activation)});
  }
}

Network::~Network() = default;

void Network::forward(std::int64_t steps, std::int64_t batch, const float* x, const float* h0,
                      const std::int64_t* lengths, float* y, float* h_n, Stream stream) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::int64_t H = sizes_.hidden_size, D = sizes_.num_directions, L = sizes_.num_layers;
  const std::int64_t rows = steps * batch, features = D * H;
  if (rows > INT_MAX || batch * H > INT_MAX)
    throw std::invalid_argument("cuda forward: T * B beyond what cuBLAS takes (int)");
  // Without a stream the inputs may come from any other: let their writes land first.
  if (!stream) check(cudaDeviceSynchronize(), "waiting for the inputs");
  check(cudaStreamWaitEvent(stream, impl_->done, 0), "waiting for the previous call");
  check(cublasSetStream(impl_->blas, stream), "cuBLAS stream");

  Impl& w = *impl_;
  float* between[2] = {nullptr, nullptr};
  for (std::int64_t l = 0; l + 1 < L && l < 2; ++l) between[l] = floats(w.between[l], rows * features);
  if (!h0)  // zeros are multiplied like any state: 0 @ W_y is NaN where W_y has NaN or Inf
    h0 = floats(w.zeros, L * D * batch * H, /*zeroed=*/true);
  bool all_full = true;
  for (std::int64_t b = 0; lengths && b < batch; ++b) all_full = all_full && lengths[b] == steps;
  const int* lens = nullptr;
  if (!all_full) {
    std::vector<int> host(lengths, lengths + batch);
    lens = static_cast<const int*>(at_least(w.lengths, batch * sizeof(int)));
    // From pageable memory: staged before the call returns, so `host` may go.
    check(cudaMemcpyAsync(const_cast<int*>(lens), host.data(), batch * sizeof(int),
                          cudaMemcpyHostToDevice, stream),
          "lengths to the device");
  }

  const float one = 1.f, zero = 0.f;
  const float* in = x;
  std::int64_t in_features = sizes_.input_size;
  for (std::int64_t l = 0; l < L; ++l) {
    float* out = l + 1 == L ? y : between[l % 2];
    for (std::int64_t d = 0; d < D; ++d) {
      const Impl::Cell& cell = impl_->cells[l * D + d];
      const std::int64_t offset = (l * D + d) * batch * H;
      // out[:, d*H:(d+1)*H] (row-major, row stride D*H) = in @ w_x, as column-major
      // out^T = w_x^T in^T: the projection lands in this direction's columns.
      check(cublasSgemm(impl_->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)H, (int)rows, (int)in_features,
                        &one, cell.w_x, (int)H, in, (int)in_features, &zero, out + d * H,
                        (int)features),
            "input projection");
      const Recurrence r{(int)steps, (int)batch,  (int)H,         cell.w_y,
                         cell.b,     cell.reverse, cell.act,   h0 + offset,
                         lens,       out + d * H,  (int)features, h_n + offset,
                         stream};
      run_recurrence(r, w.blas, floats(w.state, batch * H), floats(w.product, batch * H));
    }
    in = out;
    in_features = features;
  }
  check(cudaEventRecord(impl_->done, stream), "recording the call's end");
  if (!stream) check(cudaStreamSynchronize(stream), "the forward pass");
}

}  // namespace elman::cuda
