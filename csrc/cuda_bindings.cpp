// The Python binding of the CUDA backend (module elman._cuda): the only file of that
// module that touches Python objects. It is a separate module from elman._core so that
// the CPU package imports where no CUDA library exists. The Python package validates
// user input; the checks here keep inconsistent sizes away from the kernels.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <climits>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "binding_checks.h"
#include "gil.h"
#include "cuda/cuda.h"
#include "cuda/dlpack.h"

namespace py = pybind11;
using std::int64_t;

namespace {

using HostArray = elman::binding::Array<float>;
using Lengths = py::array_t<int64_t, py::array::c_style>;

using elman::binding::require;
using elman::binding::without_gil;

// A stream number of DLPack and __cuda_array_interface__ as a stream: 1 and 2 (the legacy
// and the per-thread default stream) are CUDA's own handles for them.
elman::cuda::Stream as_stream(int64_t number) { return reinterpret_cast<elman::cuda::Stream>(number); }

using elman::cuda::Storage;
constexpr const char* kStorageNames[] = {"float32", "float16", "bfloat16"};  // by Storage

Storage storage_named(const std::string& name) {
  for (int i = 0; i < 3; ++i)
    if (name == kStorageNames[i]) return static_cast<Storage>(i);
  throw py::value_error("storage: expected 'float32', 'float16' or 'bfloat16', got '" + name + "'");
}

// Values in device memory (float32, float16 or bfloat16), owned here and shown to other
// libraries without a copy through DLPack (torch.from_dlpack, cupy.from_dlpack,
// jax.dlpack) and __cuda_array_interface__ (torch.as_tensor, cupy.asarray). Values written on a
// caller's stream are ready after `ready_` (null: complete when the call returned).
class DeviceArray {
 public:
  DeviceArray(std::vector<int64_t> shape, Storage storage)
      : shape_(std::move(shape)), storage_(storage), device_(elman::cuda::current_device_id()) {
    for (int64_t n : shape_) count_ *= n;
    buffer_ = std::make_shared<elman::cuda::Buffer>(count_ * elman::cuda::storage_bytes(storage));
  }
  void* data() const { return buffer_->data(); }
  const std::vector<int64_t>& shape() const { return shape_; }
  std::string dtype() const { return kStorageNames[static_cast<int>(storage_)]; }
  int device() const { return device_; }
  // As elman.RNN names a GPU.
  std::string device_name() const { return "cuda:" + std::to_string(device_); }

  // After the work that writes the values is queued on `stream`.
  void written_on(elman::cuda::Stream stream) {
    stream_ = stream;
    ready_ = std::make_shared<elman::cuda::Event>(stream);
  }

  // bfloat16 has no typestr: such arrays offer DLPack only.
  py::dict interface() const {
    if (storage_ == Storage::BF16)
      throw py::attribute_error("__cuda_array_interface__: a bfloat16 DeviceArray offers DLPack only");
    py::dict d;
    d["shape"] = py::tuple(py::cast(shape_));
    d["typestr"] = storage_ == Storage::F32 ? "<f4" : "<f2";
    d["data"] = py::make_tuple(reinterpret_cast<std::uintptr_t>(data()), false);
    d["strides"] = py::none();
    d["version"] = 3;
    // The consumer waits for this stream; without one the values are complete.
    if (ready_) d["stream"] = stream_ ? reinterpret_cast<std::uintptr_t>(stream_) : 1;
    return d;
  }

  // The DLPack capsule; `stream` is the consumer's (None: the legacy default stream,
  // -1: none), which waits for the values.
  py::capsule dlpack(py::object stream) const {
    const int64_t consumer = stream.is_none() ? 1 : stream.cast<int64_t>();
    if (ready_ && consumer != -1) {
      const elman::cuda::CurrentDevice on(device_);  // the consumer's 1 or 2: this GPU's streams
      ready_->wait_on(as_stream(consumer));
    }
    auto* t = new DLManagedTensor{};
    auto* owner = new Owner{buffer_, shape_};
    t->dl_tensor.data = data();
    t->dl_tensor.device = {kDLCUDA, device_};
    t->dl_tensor.ndim = static_cast<int32_t>(shape_.size());
    t->dl_tensor.dtype = storage_ == Storage::F32   ? DLDataType{kDLFloat, 32, 1}
                         : storage_ == Storage::F16 ? DLDataType{kDLFloat, 16, 1}
                                                    : DLDataType{kDLBfloat, 16, 1};
    t->dl_tensor.shape = owner->shape.data();
    t->manager_ctx = owner;
    t->deleter = [](DLManagedTensor* self) {
      delete static_cast<Owner*>(self->manager_ctx);
      delete self;
    };
    // A consumer renames the capsule and calls the deleter itself; one never consumed
    // frees the tensor here.
    return py::capsule(t, "dltensor", [](PyObject* capsule) {
      if (!PyCapsule_IsValid(capsule, "dltensor")) return;
      auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
      if (m && m->deleter) m->deleter(m);
    });
  }

  py::tuple dlpack_device() const { return py::make_tuple(static_cast<int>(kDLCUDA), device_); }

  // A copy on the host: float32, or float16 for float16 storage (NumPy has no bfloat16).
  py::array to_numpy() const {
    py::array out = storage_ == Storage::F16 ? py::array(py::dtype("float16"), shape_)
                                             : py::array(py::dtype("float32"), shape_);
    void* host = out.mutable_data();
    without_gil([&] {
      const elman::cuda::CurrentDevice on(device_);  // bfloat16 is widened by a kernel there
      if (ready_) ready_->synchronize();
      if (storage_ == Storage::BF16)
        elman::cuda::download(data(), static_cast<float*>(host), count_, storage_);
      else  // float32 or float16: the bytes as they are
        elman::cuda::copy_to_host(host, data(), buffer_->bytes());
    });
    return out;
  }

 private:
  struct Owner {  // what a DLPack tensor keeps alive
    std::shared_ptr<elman::cuda::Buffer> buffer;
    std::vector<int64_t> shape;
  };
  std::vector<int64_t> shape_;
  Storage storage_;
  int device_;
  int64_t count_ = 1;
  std::shared_ptr<elman::cuda::Buffer> buffer_;
  elman::cuda::Stream stream_ = nullptr;
  std::shared_ptr<elman::cuda::Event> ready_;
};

// What an unconsumed DLPack capsule holds: (pointer, shape, strides or None,
// (code, bits, lanes), (device type, device id)). The capsule stays its producer's.
py::tuple dlpack_view(py::capsule capsule, const std::string& name) {
  const auto refuse_unless = [&name](bool ok, const std::string& what) {
    if (!ok) throw py::type_error(name + ": " + what);  // as for a malformed array interface
  };
  refuse_unless(std::string(capsule.name() ? capsule.name() : "") == "dltensor",
                "expected an unconsumed DLPack capsule named 'dltensor'");
  const DLTensor& t = capsule.get_pointer<DLManagedTensor>()->dl_tensor;
  // A producer's bug must not make us read past its shape (64: NumPy's most dimensions).
  refuse_unless(t.ndim >= 0 && t.ndim <= 64 && (t.ndim == 0 || t.shape),
                "a malformed DLPack tensor (ndim " + std::to_string(t.ndim) + ", shape " +
                    (t.shape ? "given" : "missing") + ")");
  std::vector<int64_t> shape(t.shape, t.shape + t.ndim);
  for (const int64_t n : shape) refuse_unless(n >= 0, "a malformed DLPack tensor (a negative size)");
  py::object strides = py::none();
  if (t.strides) strides = py::tuple(py::cast(std::vector<int64_t>(t.strides, t.strides + t.ndim)));
  return py::make_tuple(reinterpret_cast<std::uintptr_t>(t.data) + t.byte_offset, py::tuple(py::cast(shape)),
                        strides, py::make_tuple(t.dtype.code, t.dtype.bits, t.dtype.lanes),
                        py::make_tuple(static_cast<int>(t.device.device_type), t.device.device_id));
}

elman::ActivationParams activation(py::tuple t) {
  require(t.size() == 4, "activation: expected (kind, alpha, beta, clip or None)");
  const auto clip = t[3].cast<std::optional<double>>();
  return {static_cast<elman::Activation>(t[0].cast<int>()), t[1].cast<double>(),
          t[2].cast<double>(), clip.has_value(), clip.value_or(0.0)};
}

std::unique_ptr<elman::cuda::Network> make_network(int64_t input_size, int64_t hidden_size,
                                                   int64_t num_layers, int64_t num_directions,
                                                   py::list cells, const std::string& storage,
                                                   std::optional<int> device) {
  elman::cuda::require_not_forked();  // else device_count() is 0: "no such GPU" would mislead
  require(!device || (*device >= 0 && *device < elman::cuda::device_count()),
          "device: no such GPU");
  std::vector<HostArray> keep;  // holds the arrays alive while the network copies them
  const auto weights = elman::binding::cell_weights<float>(
      cells, input_size, hidden_size, num_layers, num_directions, keep,
      [](py::handle a) { return activation(a.cast<py::tuple>()); });
  const elman::Shape sizes{0, 0, input_size, hidden_size, num_layers, num_directions};
  return std::make_unique<elman::cuda::Network>(sizes, weights, storage_named(storage),
                                                device.value_or(elman::cuda::kAnyDevice));
}

void check_lengths(const std::optional<Lengths>& lengths, int64_t steps, int64_t batch) {
  if (!lengths) return;
  require(lengths->ndim() == 1 && lengths->shape(0) == batch, "lengths: expected shape (B,)");
  for (int64_t b = 0; b < batch; ++b)
    require(lengths->at(b) >= 1 && lengths->at(b) <= steps, "lengths: values must be in [1, T]");
}

// NumPy (float32) in, NumPy (float32) out: copies to the device (rounded to the
// network's storage) and back.
py::tuple forward_host(const elman::cuda::Network& net, const HostArray& x,
                       std::optional<HostArray> h0, std::optional<Lengths> lengths) {
  const elman::Shape& s = net.sizes();
  require(x.ndim() == 3 && x.shape(2) == s.input_size, "x: expected shape (T, B, I)");
  const int64_t steps = x.shape(0), batch = x.shape(1), states = s.num_layers * s.num_directions;
  require(steps >= 1 && batch >= 1, "x: T and B must be >= 1");
  if (h0)
    require(h0->ndim() == 3 && h0->shape(0) == states && h0->shape(1) == batch &&
                h0->shape(2) == s.hidden_size,
            "h0: expected shape (L*D, B, H)");
  check_lengths(lengths, steps, batch);
  HostArray y({steps, batch, s.num_directions * s.hidden_size});
  HostArray h_n({states, batch, s.hidden_size});
  without_gil([&] {
    const elman::cuda::CurrentDevice on(net.device());  // the copies go to the layer's GPU
    const Storage storage = net.storage();
    const size_t bytes = elman::cuda::storage_bytes(storage);
    auto x_d = elman::cuda::upload(x.data(), x.size(), storage);
    auto h0_d = h0 ? elman::cuda::upload(h0->data(), h0->size(), storage) : nullptr;
    elman::cuda::Buffer y_d(y.size() * bytes), h_d(h_n.size() * bytes);
    net.forward(steps, batch, x_d->data(), h0_d ? h0_d->data() : nullptr,
                lengths ? lengths->data() : nullptr, y_d.data(), h_d.data());
    elman::cuda::download(y_d.data(), y.mutable_data(), y.size(), storage);
    elman::cuda::download(h_d.data(), h_n.mutable_data(), h_n.size(), storage);
  });
  return py::make_tuple(y, h_n);
}

// Device pointers in (x (T, B, I) or batch_first (B, T, I), h0 (L*D, B, H) or 0, dense,
// in the network's storage, on the network's GPU), DeviceArrays out, there too. stream 0:
// synchronous (see Network::forward), else a cudaStream_t of that GPU the work is queued on.
py::tuple forward_device(const elman::cuda::Network& net, std::uintptr_t x, int64_t steps,
                         int64_t batch, std::uintptr_t h0, std::optional<Lengths> lengths,
                         std::uintptr_t stream, bool batch_first) {
  const elman::Shape& s = net.sizes();
  require(x != 0, "x: null device pointer");
  require(steps >= 1 && batch >= 1, "x: T and B must be >= 1");
  check_lengths(lengths, steps, batch);
  const auto on = reinterpret_cast<elman::cuda::Stream>(stream);
  const elman::cuda::CurrentDevice gpu(net.device());  // where the outputs are allocated
  const int64_t features = s.num_directions * s.hidden_size;
  std::optional<DeviceArray> y, h_n;
  without_gil([&] {
    elman::cuda::reuse_freed_memory();  // may wait for the GPU; before the outputs are made
    y.emplace(batch_first ? std::vector<int64_t>{batch, steps, features}
                          : std::vector<int64_t>{steps, batch, features},
              net.storage());
    h_n.emplace(std::vector<int64_t>{s.num_layers * s.num_directions, batch, s.hidden_size}, net.storage());
    net.forward(steps, batch, reinterpret_cast<const void*>(x), reinterpret_cast<const void*>(h0),
                lengths ? lengths->data() : nullptr, y->data(), h_n->data(), on, batch_first);
    if (on) {
      y->written_on(on);
      h_n->written_on(on);
    }
  });
  return py::make_tuple(*y, *h_n);
}

// A binding of query(batch, hidden, lengths, storage), a question about the kernel choice
// for a shape, with the sizes checked. Without the GIL: recurrence_kernel may run a timed
// choice's trial, which waits for the GPU.
template <typename Result>
auto kernel_query(const char* name, Result (*query)(int, int, bool, elman::cuda::Storage)) {
  return [name, query](int64_t batch, int64_t hidden, bool lengths, const std::string& storage) {
    require(batch >= 1 && batch <= INT_MAX && hidden >= 1 && hidden <= INT_MAX,
            std::string(name) + ": batch and hidden must be in [1, 2**31)");
    const elman::cuda::Storage s = storage_named(storage);
    Result result;
    without_gil([&] { result = query((int)batch, (int)hidden, lengths, s); });
    return result;
  };
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "elman's CUDA backend; use the elman package, not this module.";
  elman::binding::watch_interpreter();
  m.def("device_count", &elman::cuda::device_count);
  m.def("unavailable_reason", &elman::cuda::unavailable_reason, "Why device_count() is 0 ('' if it is not)");
  m.def("current_device", &elman::cuda::current_device_id, "The calling thread's current GPU");
  m.def("recurrence_kernel", kernel_query("recurrence_kernel", elman::cuda::recurrence_kernel),
        py::arg("batch"), py::arg("hidden"), py::arg("lengths"), py::arg("storage"),
        "The recurrence kernel a layer runs for that shape on the current GPU, chosen the way "
        "set now (honours ELMAN_CUDA_KERNEL; for tests and tuning)");
  m.def("recurrence_trial", kernel_query("recurrence_trial", elman::cuda::recurrence_trial),
        py::arg("batch"), py::arg("hidden"), py::arg("lengths"), py::arg("storage"),
        "The timed choice's trial of that shape on the current GPU: [(kernel, ms)], ms NaN "
        "where the kernel's run failed, [] where nothing was timed; None if the timed choice "
        "has not chosen for the shape (this does not make it choose; for tests and tuning)");
  m.def("set_timed_choice", &elman::cuda::set_timed_choice, py::arg("timed"),
        "Kernels chosen by timing them (True) or by the rule (False); elman.cuda.set_kernel_choice");
  m.def("timed_choice", &elman::cuda::timed_choice, "What set_timed_choice set last");
  m.def("dlpack_view", &dlpack_view, py::arg("capsule"), py::arg("name"),
        "(pointer, shape, strides or None, (code, bits, lanes), (device type, id)) of an "
        "unconsumed DLPack capsule, which stays its producer's; errors name the argument `name`");
  // Both asked with the layer's GPU current: the question alone may start CUDA on the
  // current GPU, and registered host memory is readable at its address or not per GPU.
  m.def("memory_device", [](std::uintptr_t pointer, int device) {
    const elman::cuda::CurrentDevice on(device);
    return elman::cuda::memory_device(reinterpret_cast<const void*>(pointer));
  }, py::arg("pointer"), py::arg("device"),
        "The GPU holding the memory at `pointer`; ANY_DEVICE for managed memory or host "
        "memory GPU `device` reads at that address, NOT_DEVICE_MEMORY for other memory");
  m.attr("ANY_DEVICE") = elman::cuda::kAnyDevice;
  m.attr("NOT_DEVICE_MEMORY") = elman::cuda::kNotDeviceMemory;
  m.def("stream_device", [](std::uintptr_t stream, int device) {
    const elman::cuda::CurrentDevice on(device);
    return elman::cuda::stream_device(reinterpret_cast<elman::cuda::Stream>(stream));
  }, py::arg("stream"), py::arg("device"),
        "The GPU of a cudaStream_t (0, 1, 2: GPU `device`'s default streams); ANY_DEVICE "
        "where CUDA cannot say (built before 12.8, or an older driver)");
  m.def("stream_capturing", [](std::uintptr_t stream, int device) {
    const elman::cuda::CurrentDevice on(device);
    return elman::cuda::stream_capturing(reinterpret_cast<elman::cuda::Stream>(stream));
  }, py::arg("stream"), py::arg("device"),
        "Whether a cudaStream_t of GPU `device` is capturing a CUDA graph");
  m.def("stream_wait", [](std::uintptr_t consumer, int64_t producer, int device) {
    const elman::cuda::CurrentDevice on(device);  // whose default streams 0, 1 and 2 are
    elman::cuda::stream_wait(reinterpret_cast<elman::cuda::Stream>(consumer), as_stream(producer));
  }, py::arg("consumer"), py::arg("producer"), py::arg("device"),
        "Work queued later on `consumer` (0: the legacy default stream) waits for the work on "
        "`producer` (1: the legacy default stream, 2: per-thread default, else a handle) so "
        "far; both of GPU `device`");
  py::class_<DeviceArray>(m, "DeviceArray",
                          "values on the GPU (float32, float16 or bfloat16), readable through "
                          "DLPack and (but bfloat16) __cuda_array_interface__")
      .def_property_readonly("__cuda_array_interface__", &DeviceArray::interface)
      .def("__dlpack__",  // an unversioned capsule whatever max_version asks; no copies
           [](const DeviceArray& a, py::object stream, py::object, py::object, py::object) {
             return a.dlpack(stream);
           },
           py::kw_only(), py::arg("stream") = py::none(),
           py::arg("max_version") = py::none(), py::arg("dl_device") = py::none(),
           py::arg("copy") = py::none())
      .def("__dlpack_device__", &DeviceArray::dlpack_device)
      .def_property_readonly("shape", [](const DeviceArray& a) { return py::tuple(py::cast(a.shape())); })
      .def_property_readonly("dtype", &DeviceArray::dtype)
      .def_property_readonly("device", &DeviceArray::device_name, "the GPU holding the values")
      .def("numpy", &DeviceArray::to_numpy, "A copy on the host.")
      // NumPy would otherwise wrap the object itself in a 0-d object array, silently.
      .def("__array__", [](const DeviceArray&, py::args, py::kwargs) -> py::object {
        throw py::type_error("DeviceArray: the values are on the GPU; .numpy() copies them to the host");
      })
      .def("__repr__", [](const DeviceArray& a) {
        return "DeviceArray(shape=" + py::repr(py::tuple(py::cast(a.shape()))).cast<std::string>() +
               ", dtype=" + a.dtype() + ", device='" + a.device_name() + "')";
      });
  py::class_<elman::cuda::Network>(m, "Network")
      .def(py::init(&make_network), py::arg("input_size"), py::arg("hidden_size"),
           py::arg("num_layers"), py::arg("num_directions"), py::arg("cells"),
           py::arg("storage") = "float32", py::arg("device") = py::none(),
           "A layer stack on GPU `device` (None: the current GPU)")
      .def("forward", &forward_host, py::arg("x"), py::arg("h0") = py::none(),
           py::arg("lengths") = py::none())
      .def("forward_device", &forward_device, py::arg("x"), py::arg("steps"), py::arg("batch"),
           py::arg("h0"), py::arg("lengths") = py::none(), py::arg("stream") = 0,
           py::arg("batch_first") = false)
      .def_property_readonly("storage", [](const elman::cuda::Network& n) {
        return kStorageNames[static_cast<int>(n.storage())];
      })
      .def_property_readonly("device", &elman::cuda::Network::device)
      .def_property_readonly("input_size", [](const elman::cuda::Network& n) { return n.sizes().input_size; })
      .def_property_readonly("hidden_size", [](const elman::cuda::Network& n) { return n.sizes().hidden_size; })
      .def_property_readonly("num_layers", [](const elman::cuda::Network& n) { return n.sizes().num_layers; })
      .def_property_readonly("num_directions",
                             [](const elman::cuda::Network& n) { return n.sizes().num_directions; });
}
