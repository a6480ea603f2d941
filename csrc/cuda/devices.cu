// Which GPUs there are and which one a thread, a pointer or a stream belongs to; the
// guard that runs a layer's work on its own GPU.
#include <cudaTypedefs.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>

#include "cuda/check.h"
#include "cuda/cuda.h"

namespace elman::cuda {
namespace {

// Driver functions, found through the runtime: the module does not link the driver
// library, so that it imports where there is none. Null where the driver does not give
// them.
struct Driver {
  PFN_cuCtxGetCurrent_v4000 get_current = nullptr;
  PFN_cuCtxSetCurrent_v4000 set_current = nullptr;
  PFN_cuDeviceGet_v2000 device = nullptr;
  PFN_cuDevicePrimaryCtxRetain_v7000 retain_primary = nullptr;
  bool complete() const { return get_current && set_current && device && retain_primary; }
};

void* driver_function(const char* name, unsigned version) {
  void* f = nullptr;
  cudaDriverEntryPointQueryResult found{};
#if CUDART_VERSION >= 12050
  const cudaError_t status = cudaGetDriverEntryPointByVersion(name, &f, version, cudaEnableDefault, &found);
#else
  (void)version;
  const cudaError_t status = cudaGetDriverEntryPoint(name, &f, cudaEnableDefault, &found);
#endif
  if (status != cudaSuccess || found != cudaDriverEntryPointSuccess) {
    cudaGetLastError();  // not an error to keep: the guard falls back to the runtime's calls
    return nullptr;
  }
  return f;
}

const Driver& driver() {
  static const Driver d{
      reinterpret_cast<PFN_cuCtxGetCurrent_v4000>(driver_function("cuCtxGetCurrent", 4000)),
      reinterpret_cast<PFN_cuCtxSetCurrent_v4000>(driver_function("cuCtxSetCurrent", 4000)),
      reinterpret_cast<PFN_cuDeviceGet_v2000>(driver_function("cuDeviceGet", 2000)),
      reinterpret_cast<PFN_cuDevicePrimaryCtxRetain_v7000>(driver_function("cuDevicePrimaryCtxRetain", 7000))};
  return d;
}

// GPU `device`'s primary context (the one the runtime, cuBLAS and torch use), retained
// once for the life of the process; null where the driver cannot give it.
CUcontext primary_context(int device) {
  // Never destroyed: destructors that free GPU memory may run after static destructors.
  static auto* mutex = new std::mutex;
  static auto* retained = new std::map<int, CUcontext>;
  const Driver& d = driver();
  if (!d.complete()) return nullptr;
  std::lock_guard<std::mutex> lock(*mutex);
  auto found = retained->find(device);
  if (found != retained->end()) return found->second;
  CUdevice handle{};
  CUcontext context = nullptr;
  if (d.device(&handle, device) != CUDA_SUCCESS || d.retain_primary(&context, handle) != CUDA_SUCCESS)
    return nullptr;
  retained->emplace(device, context);
  return context;
}

std::atomic<bool> forked_child{false};

constexpr const char* kForkedChild =
    "this process was forked from one that had used CUDA, and CUDA cannot run in such a "
    "child: start GPU worker processes with multiprocessing's \"spawn\" or \"forkserver\" method";

// From CUDA's first use that found a GPU on, a fork marks the child (forked_after_cuda_use).
// Not before: a child of a process that never started CUDA can use it, and one of a
// process that found no driver or no GPU is better told that.
void note_cuda_use() {
  static const int registered =
      pthread_atfork(nullptr, nullptr, [] { forked_child.store(true, std::memory_order_relaxed); });
  (void)registered;
}

}  // namespace

bool forked_after_cuda_use() noexcept { return forked_child.load(std::memory_order_relaxed); }

void require_not_forked() {
  if (forked_after_cuda_use()) throw std::runtime_error(std::string("CUDA: ") + kForkedChild);
}

int device_count() {
  if (forked_after_cuda_use()) return 0;
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: not an error to keep
    return 0;
  }
  if (n > 0) note_cuda_use();
  return n;
}

// CUDA's version numbers (1000 x major + 10 x minor) as "major.minor".
std::string cuda_version(int version) {
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

std::string unavailable_reason() {
  if (forked_after_cuda_use()) return kForkedChild;
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  cudaGetLastError();
  if (status == cudaSuccess && count > 0) {
    note_cuda_use();
    return "";
  }
  const std::string could_not_start = std::string("CUDA could not start: ") + cudaGetErrorString(status) +
                                      " (" + cudaGetErrorName(status) + ")";
  int driver = 0, runtime = 0;
  // Both answer without a driver: the driver's version is then 0.
  if (cudaDriverGetVersion(&driver) != cudaSuccess || cudaRuntimeGetVersion(&runtime) != cudaSuccess) {
    cudaGetLastError();
    return could_not_start;
  }
  if (driver == 0) return "no NVIDIA driver was found (libcuda.so.1 could not be loaded)";
  // A driver runs every runtime of its own major version or older (CUDA's minor version
  // compatibility), so a newer major version is what it cannot run.
  if (driver / 1000 < runtime / 1000)
    return "the NVIDIA driver supports CUDA " + cuda_version(driver) + ", older than the CUDA " +
           cuda_version(runtime) + " this elman was built with: update the driver to one for CUDA " +
           std::to_string(runtime / 1000) + ".0 or newer, or build elman with a CUDA toolkit the driver supports";
  if (status == cudaSuccess || status == cudaErrorNoDevice) {
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    return visible ? "no CUDA device is visible to this process (CUDA_VISIBLE_DEVICES=\"" + std::string(visible) + "\")"
                   : "no CUDA device is visible to this process";
  }
  return could_not_start;
}

void clear_last_error() noexcept { cudaGetLastError(); }

int current_device_id() {
  require_not_forked();
  int dev = 0;
  check(cudaGetDevice(&dev), "current device");
  note_cuda_use();
  return dev;
}

// By contexts, not GPU numbers: the driver's current context is swapped for the GPU's
// primary one and back. The runtime's own choice of GPU for the thread is never touched,
// so a thread that had no context gets none back and no context is created on a GPU the
// process does not use (cudaSetDevice to restore GPU 0 would create one there, hundreds
// of MB). By numbers only where the driver's functions are missing.
CurrentDevice::CurrentDevice(int device) {
  require_not_forked();
  note_cuda_use();
  const Driver& d = driver();
  const CUcontext target = primary_context(device);
  CUcontext previous = nullptr;
  if (target && d.get_current(&previous) == CUDA_SUCCESS) {
    if (previous == target) return;
    if (d.set_current(target) != CUDA_SUCCESS)
      throw std::runtime_error("CUDA: making the layer's GPU current: the driver refused its context");
    switched_ = by_context_ = true;
    previous_context_ = previous;
    return;
  }
  int current = 0;
  check(cudaGetDevice(&current), "current device");
  if (current == device) return;
  check(cudaSetDevice(device), "making the layer's GPU current");
  switched_ = true;
  previous_device_ = current;
}

CurrentDevice::~CurrentDevice() {
  if (!switched_) return;
  if (by_context_)
    driver().set_current(static_cast<CUcontext>(previous_context_));
  else if (cudaSetDevice(previous_device_) != cudaSuccess)
    cudaGetLastError();  // nothing to report to from a destructor; not kept for later checks
}

int memory_device(const void* pointer) {
  cudaPointerAttributes a{};
  if (!pointer || cudaPointerGetAttributes(&a, pointer) != cudaSuccess) {
    // CUDA before 11 refused host pointers it did not know: not an error to keep
    cudaGetLastError();
    return kNotDeviceMemory;
  }
  switch (a.type) {
    case cudaMemoryTypeDevice: return a.device;
    case cudaMemoryTypeManaged: return kAnyDevice;
    // Registered host memory: kernels read it at the same address only where the GPU can
    // use host pointers for registered memory.
    case cudaMemoryTypeHost: return a.devicePointer == pointer ? kAnyDevice : kNotDeviceMemory;
    default: return kNotDeviceMemory;
  }
}

int stream_device(Stream stream) {
  const auto handle = reinterpret_cast<std::uintptr_t>(stream);
  if (handle <= 2) return current_device_id();  // the default streams: the current GPU's
#if CUDART_VERSION >= 12080
  int device = 0;
  const cudaError_t status = cudaStreamGetDevice(stream, &device);
  if (status != cudaErrorCallRequiresNewerDriver && status != cudaErrorNotSupported) {
    check(status, "a stream's GPU");
    return device;
  }
  cudaGetLastError();  // a driver older than the runtime: cannot say
#endif
  return kAnyDevice;
}

bool stream_capturing(Stream stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  const cudaError_t asked = cudaStreamIsCapturing(stream, &status);
  if (asked == cudaErrorStreamCaptureImplicit) {  // the legacy stream, while a blocking one captures
    cudaGetLastError();
    return true;
  }
  check(asked, "a stream's capture status");
  return status != cudaStreamCaptureStatusNone;  // an invalidated capture is still one
}

}  // namespace elman::cuda
