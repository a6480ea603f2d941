// Plain C symbols exported from the extension module, for tools that find thread pools
// by loading shared libraries (threadpoolctl, through elman/_threadpoolctl.py).
#include "cpu/cpu.h"

#define ELMAN_EXPORT extern "C" __attribute__((visibility("default")))

ELMAN_EXPORT int elman_get_num_threads() { return elman::cpu::num_threads(); }

ELMAN_EXPORT void elman_set_num_threads(int n) { elman::cpu::set_num_threads(n); }
