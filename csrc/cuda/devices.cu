// Which GPUs there are and which one a thread, a pointer or a stream belongs to; the
// guard that runs a layer's work on its own GPU.
#include <cudaTypedefs.h>

#include <cstdint>

#include "cuda/check.h"
#include "cuda/cuda.h"

namespace elman::cuda {
namespace {

// The driver's cuCtxGetCurrent and cuCtxSetCurrent, found through the runtime: the module
// does not link the driver library, so that it imports where there is none. Null where
// the driver does not give them.
struct DriverContexts {
  PFN_cuCtxGetCurrent_v4000 get = nullptr;
  PFN_cuCtxSetCurrent_v4000 set = nullptr;
};

void* driver_function(const char* name) {
  void* f = nullptr;
  cudaDriverEntryPointQueryResult found{};
#if CUDART_VERSION >= 12050
  const cudaError_t status = cudaGetDriverEntryPointByVersion(name, &f, 4000, cudaEnableDefault, &found);
#else
  const cudaError_t status = cudaGetDriverEntryPoint(name, &f, cudaEnableDefault, &found);
#endif
  if (status != cudaSuccess || found != cudaDriverEntryPointSuccess) {
    cudaGetLastError();  // not an error to keep: the guard falls back to device numbers
    return nullptr;
  }
  return f;
}

const DriverContexts& driver_contexts() {
  static const DriverContexts d{
      reinterpret_cast<PFN_cuCtxGetCurrent_v4000>(driver_function("cuCtxGetCurrent")),
      reinterpret_cast<PFN_cuCtxSetCurrent_v4000>(driver_function("cuCtxSetCurrent"))};
  return d;
}

}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: not an error to keep
    return 0;
  }
  return n;
}

int current_device_id() {
  int dev = 0;
  check(cudaGetDevice(&dev), "current device");
  return dev;
}

// The caller's context is restored exactly, not by number: a thread that had none gets
// none back (setting GPU 0 would create a context there, hundreds of MB, in a process
// that may never use GPU 0), and one with a context of its own keeps it.
CurrentDevice::CurrentDevice(int device) {
  const DriverContexts& driver = driver_contexts();
  int current = 0;
  check(cudaGetDevice(&current), "current device");
  CUcontext context = nullptr;
  by_context_ = driver.get && driver.set && driver.get(&context) == CUDA_SUCCESS;
  if (current == device && (context || !by_context_)) return;  // already there
  check(cudaSetDevice(device), "making the layer's GPU current");
  switched_ = true;
  previous_device_ = current;
  previous_context_ = context;
}

CurrentDevice::~CurrentDevice() {
  if (!switched_) return;
  if (by_context_)
    driver_contexts().set(static_cast<CUcontext>(previous_context_));
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
  if (cudaStreamGetDevice(stream, &device) == cudaSuccess) return device;
  cudaGetLastError();  // a driver older than the runtime: cannot say
#endif
  return kAnyDevice;
}

}  // namespace elman::cuda
