// Device memory (buffers, freed blocks kept for reuse), copies, events and stream waits.
#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "cuda/check.h"
#include "cuda/cuda.h"

namespace elman::cuda {

void stream_wait(Stream consumer, Stream producer) {
  if (!producer || producer == consumer) return;
  Event(producer).wait_on(consumer);  // the wait holds on after the event is destroyed
}

Event::Event(Stream stream) {
  // An event is recorded on streams of its own GPU; where CUDA cannot name the stream's
  // GPU (see stream_device), the caller has made it current.
  const int device = stream_device(stream);
  std::optional<CurrentDevice> on;
  if (device != kAnyDevice) on.emplace(device);
  device_ = current_device_id();
  cudaEvent_t e = nullptr;
  check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "creating an event");
  const cudaError_t status = cudaEventRecord(e, stream);
  if (status != cudaSuccess) cudaEventDestroy(e);
  check(status, "recording an event");
  event_ = e;
}

Event::~Event() {
  // On its own GPU: from a thread with no context, the runtime would otherwise start one
  // on that thread's GPU (0).
  release_on(device_, [this] { cudaEventDestroy(static_cast<cudaEvent_t>(event_)); });
}

void Event::wait_on(Stream consumer) const {
  check(cudaStreamWaitEvent(consumer, static_cast<cudaEvent_t>(event_), 0), "waiting for an event");
}

void Event::synchronize() const {
  check(cudaEventSynchronize(static_cast<cudaEvent_t>(event_)), "waiting for an event");
}

namespace {

// Freed device blocks kept for reuse: per call, cudaMalloc costs and cudaFree waits for the
// whole device (outputs are allocated per call and freed when Python drops them). A
// released block may still be read by work already queued on any stream (a DLPack
// consumer may queue work and then drop our array), so it is reused only after a
// device-wide synchronization that began after its release (synchronize_device: every
// call without a stream makes one; for calls that all have one, wait_if_due).
// Only blocks up to kMaxBlock are kept, kMaxCached in all: the cost saved matters
// only next to a short call's work.
class Pool {
 public:
  struct Block {
    void* data;
    std::size_t bytes;  // as allocated: a reused block may be larger than asked for
    int device;
    std::uint64_t given = 0;  // when it was given back (a count): the oldest goes first
  };

  Block take(std::size_t bytes) {
    const int device = current_device_id();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // The smallest idle block that fits, if it wastes at most half of itself.
      auto best = idle_.end();
      for (auto b = idle_.begin(); b != idle_.end(); ++b)
        if (b->device == device && b->bytes >= bytes && b->bytes <= 2 * bytes &&
            (best == idle_.end() || b->bytes < best->bytes))
          best = b;
      if (best != idle_.end()) {
        const Block block = *best;
        cached_ -= block.bytes;
        idle_.erase(best);
        return block;
      }
    }
    void* data = nullptr;
    if (cudaMalloc(&data, bytes) != cudaSuccess) {
      cudaGetLastError();
      release_all(device);  // out of memory, maybe for what this pool holds: retry without it
      check(cudaMalloc(&data, bytes), "allocating device memory");
    }
    return {data, bytes, device};
  }

  void give(Block block) {
    if (forked_after_cuda_use()) return;  // the parent's memory (see cuda.h)
    if (block.bytes > kMaxBlock) return free_block(block);
    std::vector<Block> evicted;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      block.given = ++given_;
      released_.push_back(block);
      released_bytes_[block.device] += block.bytes;
      cached_ += block.bytes;
      // The earlier given back of the two lists' oldest goes, idle or not (blocks being
      // made idle by synchronize_device count but are in neither list).
      while (cached_ > kMaxCached && !(released_.empty() && idle_.empty())) {
        auto& from = idle_.empty() || (!released_.empty() && released_.front().given < idle_.front().given)
                         ? released_ : idle_;
        if (&from == &released_) unrelease(from.front());
        cached_ -= from.front().bytes;
        evicted.push_back(from.front());
        from.erase(from.begin());
      }
      // Calls that all have a stream never wait for the device, so without this their
      // dropped outputs would never be reused: at the limit, each drop would free the
      // oldest block instead, with a cudaFree, which waits for the device as well. Once
      // a GPU's released blocks reach its share of kReleasedForWait, its next call
      // waits once (wait_if_due; not here: destructors, with Python's lock held, call
      // this) and reuses them all.
      const auto released = released_bytes_.find(block.device);
      if (released != released_bytes_.end() &&
          released->second >= kReleasedForWait / released_bytes_.size() &&
          std::find(due_.begin(), due_.end(), block.device) == due_.end())
        due_.push_back(block.device);
    }
    for (const Block& e : evicted) free_block(e);
  }

  // synchronize_device, if the current GPU's released blocks have asked for it (give).
  void wait_if_due() {
    const int device = current_device_id();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const auto due = std::find(due_.begin(), due_.end(), device);
      if (due == due_.end()) return;
      if (released_bytes_.count(device) == 0) {  // evicted meanwhile: nothing to wait for
        due_.erase(due);
        return;
      }
    }
    synchronize_device("waiting for the GPU to reuse freed memory");
  }

  // cudaDeviceSynchronize, after which the blocks released before it can be reused.
  void synchronize_device(const char* what) {
    const int device = current_device_id();
    std::vector<Block> done;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto b = released_.begin(); b != released_.end();)
        if (b->device == device) {
          unrelease(*b);
          done.push_back(*b);
          b = released_.erase(b);
        } else {
          ++b;
        }
      due_.erase(std::remove(due_.begin(), due_.end(), device), due_.end());
    }
    const cudaError_t status = cudaDeviceSynchronize();
    std::lock_guard<std::mutex> lock(mutex_);
    // After a failed synchronization the blocks are not known to be free: kept released.
    if (status == cudaSuccess) {
      idle_.insert(idle_.end(), done.begin(), done.end());
    } else {
      for (const Block& b : done) released_bytes_[b.device] += b.bytes;
      released_.insert(released_.end(), done.begin(), done.end());
    }
    check(status, what);
  }

 private:
  static constexpr std::size_t kMaxBlock = std::size_t(16) << 20, kMaxCached = std::size_t(64) << 20,
                               kReleasedForWait = kMaxCached / 2;  // shared by the GPUs with released blocks

  // cudaFree on the block's own GPU, which it waits for: no work queued there still reads it.
  // From destructors, which have no one to report to: a GPU that cannot be made current
  // (its context gone, and the block with it) is left alone, and an error is cleared, or a
  // later launch check would report it as its own.
  static void free_block(const Block& b) {
    try {
      const CurrentDevice on(b.device);
      cudaFree(b.data);
    } catch (const std::exception&) {
    }
    clear_last_error();
  }

  // Frees every kept block of `device`.
  void release_all(int device) {
    std::vector<Block> freed;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto* list : {&idle_, &released_})
        for (auto b = list->begin(); b != list->end();)
          if (b->device == device) {
            if (list == &released_) unrelease(*b);
            cached_ -= b->bytes;
            freed.push_back(*b);
            b = list->erase(b);
          } else {
            ++b;
          }
    }
    for (const Block& b : freed) free_block(b);
  }

  // A block leaves released_ (under the mutex).
  void unrelease(const Block& b) {
    const auto r = released_bytes_.find(b.device);
    if ((r->second -= b.bytes) == 0) released_bytes_.erase(r);
  }

  std::mutex mutex_;
  std::vector<Block> released_, idle_;  // oldest given back first
  std::map<int, std::size_t> released_bytes_;  // per GPU, of released_ (no entry: none)
  std::vector<int> due_;                // GPUs whose next call waits (wait_if_due)
  std::size_t cached_ = 0;              // bytes in released_ and idle_, and being promoted
  std::uint64_t given_ = 0;
};

// Never destroyed: blocks may be freed by Python objects after static destructors ran.
Pool& pool() {
  static Pool* p = new Pool;
  return *p;
}

}  // namespace

void synchronize_device(const char* what) { pool().synchronize_device(what); }

void reuse_freed_memory() { pool().wait_if_due(); }

Buffer::Buffer(std::size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  const Pool::Block block = pool().take(bytes);
  data_ = block.data;
  capacity_ = block.bytes;
  device_ = block.device;
}

Buffer::~Buffer() {
  if (data_) pool().give({data_, capacity_, device_});
}

void copy_to_device(void* device, const void* host, std::size_t bytes) {
  check(cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice), "copy to the device");
}

void copy_to_host(void* host, const void* device, std::size_t bytes) {
  check(cudaMemcpy(host, device, bytes, cudaMemcpyDeviceToHost), "copy from the device");
}

}  // namespace elman::cuda
