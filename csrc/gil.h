// Native work without the GIL, for the two binding files (bindings.cpp, cuda_bindings.cpp).
//
// pybind11's gil_scoped_release takes the GIL back in its destructor. When a daemon
// thread's call ended while the interpreter was finalizing, CPython (before 3.14) ended
// the thread there with pthread_exit, whose unwinding cannot leave a noexcept destructor:
// std::terminate aborted the whole process at exit (pybind11 issue #2215). Here a thread
// that finds the interpreter finalizing waits for the process to end instead, as CPython
// 3.14 does itself, and the GIL is taken back outside any destructor.
#pragma once

#include <pybind11/pybind11.h>

#include <chrono>
#include <exception>
#include <thread>

namespace elman::binding {

inline bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
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
  while (interpreter_finalizing()) std::this_thread::sleep_for(std::chrono::hours(1));
  PyEval_RestoreThread(state);
  if (error) std::rethrow_exception(error);
}

}  // namespace elman::binding
