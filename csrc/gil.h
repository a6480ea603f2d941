// Native work without the GIL, for the two binding files (bindings.cpp, cuda_bindings.cpp).
//
// pybind11's gil_scoped_release takes the GIL back in its destructor. When a daemon
// thread's call ended while the interpreter was finalizing, CPython (before 3.14) ended
// the thread there with pthread_exit, whose unwinding cannot leave a noexcept destructor:
// std::terminate aborted the whole process at exit (pybind11 issue #2215). Here such a
// thread waits for the process to end instead, as CPython 3.14 does itself, and the GIL
// is taken back outside any destructor. The thread that finalizes (and may still call
// elman, from a __del__) takes the GIL back as usual.
#pragma once

#include <pybind11/pybind11.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <optional>
#include <thread>

#include "interruption.h"

namespace elman::binding {

// The thread running the interpreter's atexit handlers, which is the one that then
// finalizes it (0 until then).
inline std::atomic<unsigned long> finalizing_thread{0};

// The interpreter's main thread, the only one that runs Python's signal handlers.
inline std::atomic<unsigned long> main_thread{0};

// To call in a module's init (each extension module has its own copies of the two):
// notes the finalizing thread when it comes, and the main thread now and after a fork.
inline void watch_interpreter() {
  pybind11::module_::import("atexit").attr("register")(
      pybind11::cpp_function([] { finalizing_thread.store(PyThread_get_thread_ident()); }));
  main_thread.store(pybind11::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>());
  // A child forked from another thread has that thread as its main one.
  pybind11::module_::import("os").attr("register_at_fork")(
      pybind11::arg("after_in_child") =
          pybind11::cpp_function([] { main_thread.store(PyThread_get_thread_ident()); }));
}

// Whether the interpreter is finalizing in another thread: taking the GIL back would end
// this one (CPython < 3.14) or hang it (3.14).
inline bool finalizing_elsewhere() {
#if PY_VERSION_HEX >= 0x030D0000
  const bool finalizing = Py_IsFinalizing() != 0;
#else
  const bool finalizing = _Py_IsFinalizing() != 0;
#endif
  const unsigned long finalizer = finalizing_thread.load();
  return finalizing && finalizer != 0 && finalizer != PyThread_get_thread_ident();
}

// Runs work() with the GIL released, then takes the GIL back; an exception from work()
// is rethrown with the GIL held. work() must not touch Python objects.
template <typename Work>
void without_gil(Work&& work) {
  PyThreadState* state = PyEval_SaveThread();
  std::exception_ptr error;
  try {
    work();
  } catch (...) {
    error = std::current_exception();
  }
  // A thread that passes this check just as finalization starts is still ended by
  // CPython, but from here, in plain code, whose unwinding does not abort.
  while (finalizing_elsewhere()) std::this_thread::sleep_for(std::chrono::hours(1));
  PyEval_RestoreThread(state);
  if (error) std::rethrow_exception(error);
}

// Ctrl-C during a long call: work(stop) runs as without_gil does, where stop, the engine's
// StopCheck (called between slices of a pass, with elman's threads idle), runs Python's
// pending signal handlers. It does so on the main thread only (the only one where Python
// runs them), at most every kAskEvery, in the caller's own thread state, taken back for
// the moment. A handler that raises (KeyboardInterrupt, from Python's own) stops the
// pass, and its exception comes out of the call; one that returns lets the pass go on.
// Asking takes the GIL, and waits for it while other Python threads run (up to their
// switch interval), so it asks rarely: every tenth of a second, which a person does not
// notice, or, where the GIL was slow to come, after 100 times that wait, so that waiting
// stays within 1% of the call.
template <typename Work>
void without_gil_interruptible(Work&& work) {
  using Clock = std::chrono::steady_clock;
  static constexpr auto kAskEvery = std::chrono::milliseconds(100);
  std::optional<pybind11::error_already_set> raised;  // by a handler
  StopCheck stop;
  if (PyThread_get_thread_ident() == main_thread.load())
    stop = [caller = PyThreadState_Get(), &raised, next = Clock::time_point()]() mutable {
      const auto now = Clock::now();
      if (now < next) return false;
      PyEval_RestoreThread(caller);
      const auto waited = Clock::now() - now;
      if (PyErr_CheckSignals() != 0) raised.emplace();  // takes the exception
      PyEval_SaveThread();
      next = Clock::now() + std::max<Clock::duration>(kAskEvery, 100 * waited);
      return raised.has_value();
    };
  try {
    without_gil([&] { work(stop); });
  } catch (const Interrupted&) {
    if (raised) throw *raised;
    throw;
  }
}

}  // namespace elman::binding
