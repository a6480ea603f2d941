#include "network.h"

#include <stdexcept>

namespace elman {

template <typename T>
Network<T>::Network(std::int64_t input_size, std::int64_t hidden_size, std::int64_t num_layers,
                    std::int64_t num_directions, const std::vector<CellWeights<T>>& cells)
    : input_size_(input_size),
      hidden_size_(hidden_size),
      num_layers_(num_layers),
      num_directions_(num_directions) {
  if (static_cast<std::int64_t>(cells.size()) != num_layers * num_directions)
    throw std::invalid_argument("Network: need one set of weights per layer and direction");
  const std::int64_t H = hidden_size;
  storage_.reserve(3 * cells.size());
  std::vector<CellWeights<T>> copies;
  for (std::int64_t c = 0; c < static_cast<std::int64_t>(cells.size()); ++c) {
    const std::int64_t in = c < num_directions ? input_size : num_directions * H;
    auto copy = [this](const T* p, std::int64_t n) -> const T* {
      if (p == nullptr) return nullptr;
      storage_.emplace_back(p, p + n);
      return storage_.back().data();
    };
    const CellWeights<T>& w = cells[c];
    copies.push_back({copy(w.w_x, in * H), copy(w.w_y, H * H), copy(w.b, H), w.reverse,
                      w.activation});
  }
  cpu_ = cpu::prepare(Shape{0, 0, input_size, hidden_size, num_layers, num_directions}, copies);
}

template <typename T>
void Network<T>::forward(std::int64_t steps, std::int64_t batch, const T* x, const T* h0,
                         const std::int64_t* lengths, T* y, T* h_n, const StopCheck& stop) const {
  const Shape shape{steps, batch, input_size_, hidden_size_, num_layers_, num_directions_};
  cpu::forward(shape, cpu_, x, h0, lengths, y, h_n, stop);
}

template class Network<float>;
template class Network<double>;

}  // namespace elman
