// elman's own threads: a persistent pool (the caller is thread 0) and a spin barrier.
//
// Per-step synchronisation between cores must cost well under a microsecond, so waiting
// threads spin first; they yield after a while (an oversubscribed machine must not
// collapse) and workers sleep when the pool has been idle for a while. fork copies only
// the forking thread: a forked child starts workers of its own (after_fork_in_child).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace elman::cpu {

class ThreadPool {
 public:
  // The process-wide pool, sized to the CPUs this process may run on.
  static ThreadPool& global();

  int threads() const { return threads_.load(std::memory_order_relaxed); }
  void set_threads(int n);  // clamped to [1, max_threads()]

  // The most threads set_threads keeps: 1024, or the CPUs this process may run on where
  // there are more. Far more threads than cores only slow the spin barriers down, and a
  // count like 10^6 would start tens of thousands of threads for one large call.
  static int max_threads();

  // Runs job(i) for every i in [0, n) at once, i = 0 on the calling thread, and returns
  // when all have finished (rethrowing the first exception). n <= threads(). Callers
  // from different threads take turns.
  void run(int n, const std::function<void(int)>& job);

 private:
  ThreadPool();
  // The workers, and what they sleep on. A forked child has none of the workers, and
  // a lock one of them held, or a condition variable it waited on, would block there
  // forever: the child leaks its copy and starts with a new crew.
  struct Crew {
    std::vector<std::thread> workers;  // worker k runs job index k + 1
    std::mutex sleep_mutex;            // guards the sleeping workers' wake-up
    std::condition_variable wake;
  };

  void worker(Crew* crew, int index, std::uint64_t seen_epoch);
  void resize(int workers);  // with run_mutex_ held
  // pthread_atfork's handlers: no job runs while the process forks.
  static void before_fork();
  static void after_fork_in_parent();
  static void after_fork_in_child();

  std::atomic<int> threads_{1};
  std::mutex run_mutex_;  // one job at a time
  std::unique_ptr<Crew> crew_ = std::make_unique<Crew>();
  // The current job, published by bumping epoch_.
  const std::function<void(int)>* job_ = nullptr;
  int job_threads_ = 0;
  bool stopping_ = false;
  std::atomic<std::uint64_t> epoch_{0};
  std::atomic<int> pending_{0};
  std::exception_ptr error_;
  std::mutex error_mutex_;
};

// Every thread of a job calls wait(); none returns before all n have arrived.
class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void wait();

 private:
  const int n_;
  std::atomic<int> arrived_{0};
  std::atomic<std::uint32_t> generation_{0};
};

// Splits [0, total) into `parts` nearly equal contiguous ranges, in multiples of `grain`
// (the last range takes the remainder); returns range `part` as [begin, end).
inline void split_range(std::int64_t total, int parts, int part, std::int64_t grain,
                        std::int64_t* begin, std::int64_t* end) {
  const std::int64_t units = (total + grain - 1) / grain;
  const std::int64_t lo = units * part / parts, hi = units * (part + 1) / parts;
  *begin = lo * grain < total ? lo * grain : total;
  *end = hi * grain < total ? hi * grain : total;
}

}  // namespace elman::cpu
