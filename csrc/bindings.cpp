// The Python binding: the only file that touches Python objects. The Python package
// (python/elman) converts and validates user input; this layer checks shapes again so
// that no call can reach the kernels with inconsistent sizes, and releases the GIL
// while they run.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "binding_checks.h"
#include "gil.h"
#include "cpu/blas.h"
#include "cpu/epilogue.h"
#include "cpu/packed_gemm.h"
#include "network.h"

namespace py = pybind11;
using std::int64_t;

namespace {

using elman::binding::Array;
using Lengths = py::array_t<int64_t, py::array::c_style>;

using elman::binding::require;
using elman::binding::require_shape;
using elman::binding::without_gil;
using elman::binding::without_gil_interruptible;

// The pointwise function phi(clip(z)); clip None = no clip.
elman::ActivationParams activation_params(elman::Activation kind, double alpha, double beta,
                                          std::optional<double> clip) {
  require(!clip || *clip >= 0, "clip: expected a number >= 0");
  return {kind, alpha, beta, clip.has_value(), clip.value_or(0.0)};
}

template <typename T>
std::unique_ptr<elman::Network<T>> make_network(int64_t input_size, int64_t hidden_size,
                                                int64_t num_layers, int64_t num_directions,
                                                py::list cells) {
  std::vector<Array<T>> keep;  // holds the arrays alive while the network copies them
  const auto weights = elman::binding::cell_weights<T>(
      cells, input_size, hidden_size, num_layers, num_directions, keep,
      [](py::handle a) { return a.cast<elman::ActivationParams>(); });
  return std::make_unique<elman::Network<T>>(input_size, hidden_size, num_layers, num_directions,
                                             weights);
}

template <typename T>
py::tuple forward(const elman::Network<T>& net, const Array<T>& x, std::optional<Array<T>> h0,
                  std::optional<Lengths> lengths) {
  require(x.ndim() == 3, "x: expected 3 dimensions (T, B, I)");
  const int64_t steps = x.shape(0), batch = x.shape(1);
  const int64_t H = net.hidden_size(), states = net.num_layers() * net.num_directions();
  require(steps >= 1 && batch >= 1, "x: T and B must be >= 1");
  require_shape(x, {steps, batch, net.input_size()}, "x");
  if (h0) require_shape(*h0, {states, batch, H}, "h0");
  if (lengths) {
    require_shape(*lengths, {batch}, "lengths");
    for (int64_t b = 0; b < batch; ++b)
      require(lengths->at(b) >= 1 && lengths->at(b) <= steps, "lengths: values must be in [1, T]");
  }
  Array<T> y({steps, batch, net.num_directions() * H});
  Array<T> h_n({states, batch, H});
  try {
    without_gil_interruptible([&](const elman::StopCheck& stop) {
      net.forward(steps, batch, x.data(), h0 ? h0->data() : nullptr,
                  lengths ? lengths->data() : nullptr, y.mutable_data(), h_n.mutable_data(), stop);
    });
  } catch (const elman::BuffersTooLarge& e) {
    char message[256];
    std::snprintf(message, sizeof message,
                  "x: not enough memory for the pass's buffers beside its outputs: %.3g GiB "
                  "(outputs of the layers before the last, and zeros standing for h0)",
                  double(e.bytes) / double(1 << 30));
    PyErr_SetString(PyExc_MemoryError, message);
    throw py::error_already_set();
  }
  return py::make_tuple(y, h_n);
}

template <typename T>
void bind_network(py::module_& m, const char* name) {
  using Net = elman::Network<T>;
  py::class_<Net>(m, name, "A packed stack of recurrent layers (see csrc/elman.h for shapes).")
      .def(py::init(&make_network<T>), py::arg("input_size"), py::arg("hidden_size"),
           py::arg("num_layers"), py::arg("num_directions"), py::arg("cells"))
      .def("forward", &forward<T>, py::arg("x"), py::arg("h0") = py::none(),
           py::arg("lengths") = py::none(),
           "(T, B, I) -> (y (T, B, D*H), h_n (L*D, B, H)); GIL released while it runs.")
      .def_property_readonly("input_size", &Net::input_size)
      .def_property_readonly("hidden_size", &Net::hidden_size)
      .def_property_readonly("num_layers", &Net::num_layers)
      .def_property_readonly("num_directions", &Net::num_directions);
}

// a @ b with elman's product (b packed first, as layers do at construction) on elman's
// threads: the benchmark's float32 yardstick, and the tests' view of the kernels.
template <typename T>
Array<T> matmul(const Array<T>& a, const Array<T>& b) {
  require(a.ndim() == 2 && b.ndim() == 2 && a.shape(1) == b.shape(0),
          "matmul: expected a (m, k) and b (k, n)");
  const int64_t m = a.shape(0), k = a.shape(1), n = b.shape(1);
  Array<T> c({m, n});
  without_gil([&] {
    elman::cpu::Weight<T> w(b.data(), k, n);
    elman::cpu::parallel_matmul<T>(m, a.data(), k, w, c.mutable_data(), n, elman::cpu::num_threads());
  });
  return c;
}

// The vectorised activation alone, for the accuracy tests of tests/test_activations.py.
template <typename T>
Array<T> activation(const Array<T>& v, elman::Activation kind, double alpha, double beta,
                    std::optional<double> clip) {
  const elman::ActivationParams act = activation_params(kind, alpha, beta, clip);
  Array<T> out(v.size());
  std::copy(v.data(), v.data() + v.size(), out.mutable_data());
  without_gil([&] { elman::cpu::bias_activation(out.size(), out.mutable_data(), nullptr, nullptr, act); });
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "elman's native engine; use the elman package, not this module.";
  elman::binding::watch_interpreter();
  elman::cpu::keep_blas_single_threaded();
  py::enum_<elman::Activation>(m, "Activation")
      .value("tanh", elman::Activation::Tanh)
      .value("relu", elman::Activation::Relu)
      .value("sigmoid", elman::Activation::Sigmoid)
      .value("affine", elman::Activation::Affine)
      .value("leaky_relu", elman::Activation::LeakyRelu)
      .value("thresholded_relu", elman::Activation::ThresholdedRelu)
      .value("scaled_tanh", elman::Activation::ScaledTanh)
      .value("hard_sigmoid", elman::Activation::HardSigmoid)
      .value("elu", elman::Activation::Elu)
      .value("softsign", elman::Activation::Softsign)
      .value("softplus", elman::Activation::Softplus);
  py::class_<elman::ActivationParams>(m, "ActivationParams",
                                      "One cell's phi(clip(z)) (see csrc/activations.h).")
      .def(py::init(&activation_params), py::arg("kind"), py::arg("alpha") = 0.0,
           py::arg("beta") = 0.0, py::arg("clip") = py::none());
  bind_network<float>(m, "NetworkF32");
  bind_network<double>(m, "NetworkF64");
  m.def("activation", &activation<float>, py::arg("v"), py::arg("activation"),
        py::arg("alpha") = 0.0, py::arg("beta") = 0.0, py::arg("clip") = py::none());
  m.def("activation", &activation<double>, py::arg("v"), py::arg("activation"),
        py::arg("alpha") = 0.0, py::arg("beta") = 0.0, py::arg("clip") = py::none());
  m.def("matmul", &matmul<float>, py::arg("a"), py::arg("b"));
  m.def("matmul", &matmul<double>, py::arg("a"), py::arg("b"));
  m.def("set_num_threads", [](int n) {
    require(n >= 1, "n: expected an integer >= 1");
    require(n <= elman::cpu::max_num_threads(), "n: expected at most max_num_threads()");
    elman::cpu::set_num_threads(n);
  }, py::arg("n"));
  m.def("get_num_threads", &elman::cpu::num_threads);
  m.def("max_num_threads", &elman::cpu::max_num_threads);
  m.def("slice_work", [] { return elman::slice_work.load(); },
        "Multiply-adds per slice of a pass, between its checks for Ctrl-C (interruption.h).");
  m.def("_set_slice_work", [](int64_t work) {
    require(work >= 1, "work: expected an integer >= 1");
    elman::slice_work.store(work);
  }, py::arg("work"), "For the tests: smaller slices put slice boundaries into short sequences.");
  m.def("packed_products", &elman::cpu::packed_instruction_set,
        "The instruction set of elman's packed kernels that run the products: "
        "'avx512f' or 'avx2', or None where OpenBLAS runs them.");
}
