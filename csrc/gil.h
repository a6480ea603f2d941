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

#include <atomic>
#include <chrono>
#include <exception>
#include <thread>

namespace elman::binding {

// The thread running the interpreter's atexit handlers, which is the one that then
// finalizes it (0 until then).
inline std::atomic<unsigned long> finalizing_thread{0};

// To call in a module's init (each extension module has its own finalizing_thread).
inline void watch_for_finalization() {
  pybind11::module_::import("atexit").attr("register")(
      pybind11::cpp_function([] { finalizing_thread.store(PyThread_get_thread_ident()); }));
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

}  // namespace elman::binding
