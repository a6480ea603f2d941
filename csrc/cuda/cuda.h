// The CUDA backend: device memory and a layer stack on the GPU. Plain C++: no CUDA
// header is needed to use it (the binding is compiled by the host compiler).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "elman.h"

struct CUstream_st;  // cudaStream_t without the CUDA headers

namespace elman::cuda {

using Stream = CUstream_st*;

// GPUs usable by this process; 0 without a driver or a device.
int device_count();
// Why device_count() is 0, for the error a user sees (empty if it is not): no driver, a
// driver older than the CUDA this module was built with, no device visible, or CUDA's own
// error.
std::string unavailable_reason();
int current_device_id();

// Makes `device` the calling thread's current GPU until destroyed, then restores the
// caller's context (none, if it had none): a layer's work, memory and streams belong to
// its own GPU, whatever the caller has made current.
class CurrentDevice {
 public:
  explicit CurrentDevice(int device);
  ~CurrentDevice();
  CurrentDevice(const CurrentDevice&) = delete;
  CurrentDevice& operator=(const CurrentDevice&) = delete;

 private:
  bool switched_ = false, by_context_ = false;  // by_context_: the driver's context calls
  int previous_device_ = 0;
  void* previous_context_ = nullptr;  // a CUcontext, or null
};

// Clears the calling thread's last CUDA error (cudaGetLastError, its result dropped).
void clear_last_error() noexcept;

// True in a child forked after this process used CUDA through elman (saw a GPU, or asked
// for one). CUDA cannot run there, the GPU memory is the parent's, and a mutex held by one
// of the parent's other threads at the fork stays held: so destructors leave everything
// alone, device_count() is 0 and unavailable_reason() says why, and require_not_forked()
// throws, as current_device_id() and CurrentDevice (which all GPU work makes first) do.
bool forked_after_cuda_use() noexcept;
void require_not_forked();

// Runs `release` (which must not throw) with `device` current, or, where it cannot be
// made current, with whatever GPU is: for destructors, which have no one to report to.
// Its error, if any, is cleared: a later launch's check(cudaGetLastError()) would report
// it as its own. In a forked child (forked_after_cuda_use) nothing runs.
template <typename Release>
void release_on(int device, Release release) noexcept {
  if (forked_after_cuda_use()) return;
  std::optional<CurrentDevice> on;
  try {
    on.emplace(device);
  } catch (const std::exception&) {
  }
  release();
  clear_last_error();
}

// What memory_device says of memory that every GPU can read (managed memory, or host
// memory registered with CUDA), and of memory that CUDA does not know (plain host
// memory, or no memory at all), which no kernel may be given.
constexpr int kAnyDevice = -1, kNotDeviceMemory = -2;

// The GPU that holds the memory at `pointer`, or one of the two values above.
int memory_device(const void* pointer);

// The GPU that `stream` belongs to (null, and CUDA's handles 1 and 2 for the default
// streams: the current GPU's); kAnyDevice where CUDA cannot say (built with CUDA before
// 12.8, or a driver older than the runtime).
int stream_device(Stream stream);

// Whether `stream` (of the current GPU) is capturing a CUDA graph, or is the legacy default
// stream while a stream that synchronises with it is.
bool stream_capturing(Stream stream);

// Work queued later on `consumer` waits for the work queued on `producer` so far (null
// consumer: the legacy default stream; null producer: nothing to wait for).
void stream_wait(Stream consumer, Stream producer);

// A point in a stream's work: the values written before it are ready after it.
class Event {
 public:
  explicit Event(Stream stream);  // recorded on `stream` now (made on the stream's GPU)
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void wait_on(Stream consumer) const;  // consumer's later work waits for it
  void synchronize() const;             // the host waits for it

 private:
  void* event_;
  int device_;  // the GPU it was made on
};

// cudaDeviceSynchronize (throwing on error with `what`); device memory freed before it
// is reused after it (see Buffer).
void synchronize_device(const char* what);

// For the start of a call that allocates outputs, without the GIL: where the current
// GPU's freed blocks wait to be reusable (calls that all have a stream never wait for
// the device themselves) and have reached its share of 32 MB, synchronize_device, so
// that the call's outputs reuse them.
void reuse_freed_memory();

// Device memory, given back with its owner. Small blocks are kept for reuse (up to 64 MB
// per process), but only after a synchronize_device that began after they were given
// back: work queued before may still read them.
class Buffer {
 public:
  explicit Buffer(std::size_t bytes);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_;         // as asked for
  std::size_t capacity_ = 0;  // as allocated (a reused block may be larger)
  int device_ = 0;
};

void copy_to_device(void* device, const void* host, std::size_t bytes);
void copy_to_host(void* host, const void* device, std::size_t bytes);

// How device arrays store values: float32, float16 or bfloat16 (arithmetic is float32).
enum class Storage { F32, F16, BF16 };

std::size_t storage_bytes(Storage s);

// n values on the device, float <-> storage, queued on `stream`.
void to_storage(const float* in, void* out, std::size_t n, Storage s, Stream stream);
void from_storage(const void* in, float* out, std::size_t n, Storage s, Stream stream);

// n host floats in a new device buffer of the storage type, and n device values of the
// storage type into host floats; both on the legacy default stream, done on return.
std::unique_ptr<Buffer> upload(const float* host, std::size_t n, Storage s);
void download(const void* device, float* host, std::size_t n, Storage s);

// out (d1, d0, inner) = in (d0, d1, inner), elements of 2 or 4 bytes, queued on `stream`.
void swap_leading_axes(const void* in, void* out, std::int64_t d0, std::int64_t d1,
                       std::int64_t inner, std::size_t element_bytes, Stream stream);

// How a shape's recurrence kernel is chosen when the shape first runs on a GPU (unless
// ELMAN_CUDA_KERNEL forces one): by a fixed rule (false, the default), or, timed, by
// running every kernel that can run the shape there on scratch memory and keeping the
// fastest. Each way's choices are kept per process, GPU, shape and forced kernel;
// switching back gives the rule's. A call reads timed_choice() once: all its choices are
// made one way.
void set_timed_choice(bool timed);
bool timed_choice();

// The recurrence kernel that a layer of `hidden` units runs on the current GPU for
// `batch` rows (with lengths or not), in the storage type, chosen the way set now (a
// trial, if timed and not made before): "stepwise", "few_rows", "lean", "persistent",
// "tiled", "fma", "gemm" or "mma" (the names that ELMAN_CUDA_KERNEL takes; for tests
// and tuning).
std::string recurrence_kernel(int batch, int hidden, bool lengths, Storage storage);

// The timed choice's trial of that shape on the current GPU, if the timed choice has
// chosen for it (nullopt if not; it does not choose): each candidate kernel's time in
// ms, NaN where its run failed; empty where nothing was timed (one candidate, a forced
// kernel, no memory for the trial). For tests and tuning.
std::optional<std::vector<std::pair<std::string, float>>> recurrence_trial(int batch, int hidden,
                                                                           bool lengths, Storage storage);

// A stack of recurrent layers on one GPU, weights copied once (rounded to the storage
// type).
class Network {
 public:
  // Host float32 arrays with the shapes of elman.h (steps and batch of `sizes` unused);
  // on GPU `device` (kAnyDevice: the current one).
  Network(const Shape& sizes, const std::vector<CellWeights<float>>& cells, Storage storage,
          int device = kAnyDevice);
  ~Network();
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  // The forward pass of elman.h on device arrays of the storage type (x (T, B, I) or,
  // batch_first, (B, T, I); h0 (L*D, B, H) or null; y like x with D*H features; h_n);
  // lengths is a host array or null. With no stream: waits for all work on the device
  // first (the inputs may come from any stream), runs on the legacy default stream and
  // returns when it is done. With a stream: queued on it behind the work already there,
  // returning at once (except a shape's first call under the timed choice, whose trial
  // waits for the device). Calls from several threads take turns; a call waits for the
  // previous call's work (it reuses its buffers) on the device, not on the host. It runs
  // on device() whatever GPU is current; the arrays and the stream must be that GPU's.
  void forward(std::int64_t steps, std::int64_t batch, const void* x, const void* h0,
               const std::int64_t* lengths, void* y, void* h_n, Stream stream = nullptr,
               bool batch_first = false) const;

  const Shape& sizes() const { return sizes_; }
  Storage storage() const { return storage_; }
  int device() const { return device_; }  // the GPU that holds the weights

  struct Impl;  // the device weights and work buffers (forward.cu)

 private:
  Shape sizes_;
  Storage storage_;
  int device_;
  std::unique_ptr<Impl> impl_;
  mutable std::mutex mutex_;
};

}  // namespace elman::cuda
