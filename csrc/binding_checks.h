// Argument checks and parsing shared by the two binding files (bindings.cpp,
// cuda_bindings.cpp): a failed check is a Python ValueError with the message.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "elman.h"

namespace elman::binding {

inline void require(bool ok, const std::string& message) {
  if (!ok) throw pybind11::value_error(message);
}

inline void require_shape(const pybind11::array& a, std::vector<std::int64_t> shape, const char* name) {
  bool ok = a.ndim() == static_cast<pybind11::ssize_t>(shape.size());
  for (std::size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
  if (!ok) {
    std::string want = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
    throw pybind11::value_error(std::string(name) + ": expected shape " + want + ")");
  }
}

template <typename T>
using Array = pybind11::array_t<T, pybind11::array::c_style>;

// The weights of every layer and direction from the list of (w_x, w_y, b or None,
// reverse, activation) the Python package builds, checked against the sizes. `keep`
// holds the arrays alive while the caller copies them; `to_activation` reads an entry's
// activation (each module passes it in its own form).
template <typename T, typename ToActivation>
std::vector<CellWeights<T>> cell_weights(pybind11::list cells, std::int64_t input_size,
                                         std::int64_t hidden_size, std::int64_t num_layers,
                                         std::int64_t num_directions, std::vector<Array<T>>& keep,
                                         ToActivation to_activation) {
  require(input_size >= 1 && hidden_size >= 1 && num_layers >= 1, "sizes must be >= 1");
  require(num_directions == 1 || num_directions == 2, "num_directions must be 1 or 2");
  require(static_cast<std::int64_t>(cells.size()) == num_layers * num_directions,
          "cells: need one (w_x, w_y, b, reverse, activation) per layer and direction");
  std::vector<CellWeights<T>> weights;
  for (std::size_t c = 0; c < cells.size(); ++c) {
    auto cell = cells[c].cast<pybind11::tuple>();
    require(cell.size() == 5, "cells: each entry is (w_x, w_y, b, reverse, activation)");
    const std::int64_t in = static_cast<std::int64_t>(c) < num_directions ? input_size
                                                                           : num_directions * hidden_size;
    auto w_x = cell[0].cast<Array<T>>();
    auto w_y = cell[1].cast<Array<T>>();
    require_shape(w_x, {in, hidden_size}, "w_x");
    require_shape(w_y, {hidden_size, hidden_size}, "w_y");
    const T* b = nullptr;
    if (!cell[2].is_none()) {
      auto bias = cell[2].cast<Array<T>>();
      require_shape(bias, {hidden_size}, "b");
      b = bias.data();
      keep.push_back(bias);
    }
    weights.push_back({w_x.data(), w_y.data(), b, cell[3].cast<bool>(), to_activation(cell[4])});
    keep.push_back(w_x);
    keep.push_back(w_y);
  }
  return weights;
}

}  // namespace elman::binding
