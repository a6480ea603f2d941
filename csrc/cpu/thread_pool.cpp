#include "cpu/thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ELMAN_PAUSE() _mm_pause()
#else
#define ELMAN_PAUSE() std::this_thread::yield()
#endif

namespace elman::cpu {
namespace {

// Pause instructions to spin before giving the CPU up. A pause takes ~45 ns on Zen 5
// (~3-40 ns elsewhere). A barrier normally opens within a microsecond; when it does not,
// the thread it waits for has probably lost its CPU (more runnable threads than cores),
// so after ~20 us the waiter yields. An idle worker spins ~100 us, so that the calls of
// a loop find it awake, then sleeps.
constexpr int kBarrierSpins = 500;
constexpr int kIdleSpins = 2000;

int available_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

// Waits until done() holds: spinning first, then yielding the CPU between checks.
template <typename Done>
void spin_until(Done done) {
  for (int i = 0; !done(); ++i) {
    if (i < kBarrierSpins)
      ELMAN_PAUSE();
    else
      std::this_thread::yield();
  }
}

}  // namespace

ThreadPool& ThreadPool::global() {
  // Never destroyed: at exit a daemon Python thread may still be running a job, or start
  // one; the workers end with the process.
  static ThreadPool* const pool = new ThreadPool;
  return *pool;
}

ThreadPool::ThreadPool() {
  threads_ = available_cpus();
  pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

// A job in progress finishes before the fork (its workers would not exist in the child);
// the next one waits until the fork is done. Registered by the pool's constructor, so
// global() has built it.
void ThreadPool::before_fork() { global().run_mutex_.lock(); }

void ThreadPool::after_fork_in_parent() { global().run_mutex_.unlock(); }

void ThreadPool::after_fork_in_child() {
  ThreadPool& pool = global();
  // The old crew is leaked: destroying a joinable std::thread terminates the process,
  // and joining a thread that does not exist here would never return. The child's first
  // job with threads starts new workers.
  (void)pool.crew_.release();
  pool.crew_ = std::make_unique<Crew>();
  pool.stopping_ = false;
  pool.run_mutex_.unlock();  // locked by before_fork, in the thread that lives on here
}

int ThreadPool::max_threads() {
  static const int most = std::max(1024, available_cpus());
  return most;
}

void ThreadPool::set_threads(int n) {
  threads_.store(std::clamp(n, 1, max_threads()), std::memory_order_relaxed);
}

void ThreadPool::resize(int workers) {
  Crew& crew = *crew_;
  if (static_cast<int>(crew.workers.size()) == workers) return;
  if (!crew.workers.empty()) {  // stop them all, then start the wanted number afresh
    {
      std::lock_guard<std::mutex> lock(crew.sleep_mutex);
      stopping_ = true;
      epoch_.fetch_add(1, std::memory_order_release);
    }
    crew.wake.notify_all();
    for (auto& t : crew.workers) t.join();
    crew.workers.clear();
    stopping_ = false;
  }
  // Each starts from the current epoch: a job published before it runs is not its own.
  const std::uint64_t epoch = epoch_.load(std::memory_order_acquire);
  for (int k = 0; k < workers; ++k)
    crew.workers.emplace_back(&ThreadPool::worker, this, &crew, k + 1, epoch);
}

void ThreadPool::worker(Crew* crew, int index, std::uint64_t seen) {
  for (;;) {
    // Spin for a new epoch, then sleep until one is published.
    for (int i = 0; i < kIdleSpins && epoch_.load(std::memory_order_acquire) == seen; ++i)
      ELMAN_PAUSE();
    if (epoch_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(crew->sleep_mutex);
      crew->wake.wait(lock, [&] { return epoch_.load(std::memory_order_acquire) != seen; });
    }
    seen = epoch_.load(std::memory_order_acquire);
    if (stopping_) return;
    if (index < job_threads_) {
      try {
        (*job_)(index);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(int n, const std::function<void(int)>& job) {
  if (n <= 1) {
    job(0);
    return;
  }
  std::lock_guard<std::mutex> lock(run_mutex_);
  Crew& crew = *crew_;  // resize keeps the crew (only a forked child gets a new one)
  if (static_cast<int>(crew.workers.size()) < n - 1) resize(n - 1);
  job_ = &job;
  job_threads_ = n;
  error_ = nullptr;
  pending_.store(static_cast<int>(crew.workers.size()), std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> wake_lock(crew.sleep_mutex);  // no wake-up can be missed
    epoch_.fetch_add(1, std::memory_order_release);
  }
  crew.wake.notify_all();
  try {
    job(0);
  } catch (...) {
    std::lock_guard<std::mutex> error_lock(error_mutex_);
    if (!error_) error_ = std::current_exception();
  }
  spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; });
  if (error_) std::rethrow_exception(error_);
}

void SpinBarrier::wait() {
  const std::uint32_t generation = generation_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
    arrived_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    return;
  }
  spin_until([&] { return generation_.load(std::memory_order_acquire) != generation; });
}

}  // namespace elman::cpu
