#include "cuda/check.h"
#include "cuda/cuda.h"

namespace elman::cuda {

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

void stream_wait(Stream consumer, Stream producer) {
  if (!producer || producer == consumer) return;
  Event(producer).wait_on(consumer);  // the wait holds on after the event is destroyed
}

Event::Event(Stream stream) {
  cudaEvent_t e = nullptr;
  check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "creating an event");
  const cudaError_t status = cudaEventRecord(e, stream);
  if (status != cudaSuccess) cudaEventDestroy(e);
  check(status, "recording an event");
  event_ = e;
}

Event::~Event() { cudaEventDestroy(static_cast<cudaEvent_t>(event_)); }

void Event::wait_on(Stream consumer) const {
  check(cudaStreamWaitEvent(consumer, static_cast<cudaEvent_t>(event_), 0), "waiting for an event");
}

void Event::synchronize() const {
  check(cudaEventSynchronize(static_cast<cudaEvent_t>(event_)), "waiting for an event");
}

Buffer::Buffer(std::size_t bytes) : bytes_(bytes) {
  if (bytes > 0) check(cudaMalloc(&data_, bytes), "allocating device memory");
}

Buffer::~Buffer() {
  if (data_) cudaFree(data_);
}

void copy_to_device(void* device, const void* host, std::size_t bytes) {
  check(cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice), "copy to the device");
}

void copy_to_host(void* host, const void* device, std::size_t bytes) {
  check(cudaMemcpy(host, device, bytes, cudaMemcpyDeviceToHost), "copy from the device");
}

}  // namespace elman::cuda
