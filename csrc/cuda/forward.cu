// The forward pass of a layer stack on the GPU: per layer and direction, the input
// projection of all steps and rows as one cuBLAS product, then the recurrence: on chip
// in one launch where it fits, else one cuBLAS product and one kernel per step.
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

  ~Impl() {
    if (blas) cublasDestroy(blas);
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

float* floats(const std::unique_ptr<Buffer>& b) { return b ? static_cast<float*>(b->data()) : nullptr; }

std::unique_ptr<Buffer> device_floats(std::int64_t count) {
  return std::make_unique<Buffer>(count * sizeof(float));
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
  for (std::size_t c = 0; c < cells.size(); ++c) {
    const std::int64_t in = static_cast<std::int64_t>(c) < D ? sizes.input_size : D * H;
    const CellWeights<float>& w = cells[c];
    impl_->cells.push_back({impl_->upload(w.w_x, in * H), impl_->upload(w.w_y, H * H),
                            impl_->upload(w.b, H), w.reverse, on_device(w.activation)});
  }
}

Network::~Network() = default;

void Network::forward(std::int64_t steps, std::int64_t batch, const float* x, const float* h0,
                      const std::int64_t* lengths, float* y, float* h_n) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::int64_t H = sizes_.hidden_size, D = sizes_.num_directions, L = sizes_.num_layers;
  const std::int64_t rows = steps * batch, features = D * H;
  if (rows > INT_MAX || batch * H > INT_MAX)
    throw std::invalid_argument("cuda forward: T * B beyond what cuBLAS takes (int)");
  // Inputs may come from another library's stream: let their writes land first.
  check(cudaDeviceSynchronize(), "waiting for the inputs");

  std::unique_ptr<Buffer> between[2], zeros, lens, state, product;
  for (std::int64_t l = 0; l + 1 < L && l < 2; ++l) between[l] = device_floats(rows * features);
  if (!h0) {  // zeros are multiplied like any state: 0 @ W_y is NaN where W_y has NaN or Inf
    zeros = device_floats(L * D * batch * H);
    check(cudaMemset(zeros->data(), 0, zeros->bytes()), "zero state");
    h0 = floats(zeros);
  }
  bool all_full = true;
  for (std::int64_t b = 0; lengths && b < batch; ++b) all_full = all_full && lengths[b] == steps;
  if (!all_full) {
    std::vector<int> host(lengths, lengths + batch);
    lens = std::make_unique<Buffer>(batch * sizeof(int));
    copy_to_device(lens->data(), host.data(), batch * sizeof(int));
  }

  const float one = 1.f, zero = 0.f;
  const float* in = x;
  std::int64_t in_features = sizes_.input_size;
  for (std::int64_t l = 0; l < L; ++l) {
    float* out = l + 1 == L ? y : floats(between[l % 2]);
    for (std::int64_t d = 0; d < D; ++d) {
      const Impl::Cell& cell = impl_->cells[l * D + d];
      const std::int64_t offset = (l * D + d) * batch * H;
      // out[:, d*H:(d+1)*H] (row-major, row stride D*H) = in @ w_x, as column-major
      // out^T = w_x^T in^T: the projection lands in this direction's columns.
      check(cublasSgemm(impl_->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)H, (int)rows, (int)in_features,
                        &one, cell.w_x, (int)H, in, (int)in_features, &zero, out + d * H,
                        (int)features),
            "input projection");
      const Recurrence r{(int)steps, (int)batch, (int)H, cell.w_y, cell.b, cell.reverse, cell.act,
                         h0 + offset, out + d * H, (int)features, h_n + offset};
      if (!lens && run_on_chip(r)) continue;
      if (!state) {
        state = device_floats(batch * H);
        product = device_floats(batch * H);
      }
      run_stepwise(r, lens ? static_cast<const int*>(lens->data()) : nullptr, impl_->blas,
                   floats(state), floats(product));
    }
    in = out;
    in_features = features;
  }
  check(cudaDeviceSynchronize(), "the forward pass");
}

}  // namespace elman::cuda
