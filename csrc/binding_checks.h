// Argument checks shared by the two binding files (bindings.cpp, cuda_bindings.cpp):
// a failed check is a Python ValueError with the message.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

namespace elman::binding {

inline void require(bool ok, const std::string& message) {
  if (!ok) throw pybind11::value_error(message);
}

}  // namespace elman::binding
