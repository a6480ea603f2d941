// A stack of recurrent layers that owns its weights, packed once at construction,
// and runs the forward pass on the chosen backend (only the CPU today).
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/cpu.h"
#include "elman.h"

namespace elman {

template <typename T>
class Network {
 public:
  // One entry per layer and direction (layer-major), each array dense row-major with
  // the shapes of elman.h; b may be null. Each has its own activation.
  Network(std::int64_t input_size, std::int64_t hidden_size, std::int64_t num_layers,
          std::int64_t num_directions, const std::vector<CellWeights<T>>& cells);
  Network(const Network&) = delete;  // cells_ points into storage_
  Network& operator=(const Network&) = delete;

  // See elman.h for the shapes; safe to call from several threads at once. A long pass
  // asks `stop` now and then and throws Interrupted if it says so (interruption.h).
  void forward(std::int64_t steps, std::int64_t batch, const T* x, const T* h0,
               const std::int64_t* lengths, T* y, T* h_n, const StopCheck& stop = {}) const;

  std::int64_t input_size() const { return input_size_; }
  std::int64_t hidden_size() const { return hidden_size_; }
  std::int64_t num_layers() const { return num_layers_; }
  std::int64_t num_directions() const { return num_directions_; }

 private:
  std::int64_t input_size_, hidden_size_, num_layers_, num_directions_;
  std::vector<std::vector<T>> storage_;  // copies of the weights, which cpu_ points into
  std::vector<cpu::Cell<T>> cpu_;       // the weights as the CPU kernels take them
};

}  // namespace elman
