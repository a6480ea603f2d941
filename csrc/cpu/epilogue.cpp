#include "cpu/epilogue.h"

// GCC/Clang function multiversioning: each public function below is compiled once per
// listed x86-64 level, and the dynamic loader picks the best one for the CPU (ifunc).
// The loop bodies are inlined into every clone, so each is vectorised for its level.
#if defined(__x86_64__) && defined(__ELF__) && (defined(__GNUC__) || defined(__clang__))
#define ELMAN_MULTIVERSION \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ELMAN_MULTIVERSION
#endif

namespace elman::cpu {
namespace {

template <typename T, Activation A>
ELMAN_HD T activate(T v) {
  if constexpr (A == Activation::Tanh)
    return tanh_approx(v);
  else
    return relu(v);
}

// One branch-free loop per combination, so that the compiler can vectorise each.
template <typename T, Activation A>
ELMAN_HD void loop(std::int64_t n, T* __restrict v, const T* __restrict add,
                   const T* __restrict bias) {
  if (add && bias)
    for (std::int64_t i = 0; i < n; ++i) v[i] = activate<T, A>(v[i] + add[i] + bias[i]);
  else if (add)
    for (std::int64_t i = 0; i < n; ++i) v[i] = activate<T, A>(v[i] + add[i]);
  else if (bias)
    for (std::int64_t i = 0; i < n; ++i) v[i] = activate<T, A>(v[i] + bias[i]);
  else
    for (std::int64_t i = 0; i < n; ++i) v[i] = activate<T, A>(v[i]);
}

template <typename T>
ELMAN_HD void dispatch(std::int64_t n, T* v, const T* add, const T* bias, Activation act) {
  switch (act) {
    case Activation::Tanh: loop<T, Activation::Tanh>(n, v, add, bias); break;
    case Activation::Relu: loop<T, Activation::Relu>(n, v, add, bias); break;
  }
}

}  // namespace

ELMAN_MULTIVERSION
void bias_activation(std::int64_t n, float* v, const float* add, const float* bias,
                     Activation act) {
  dispatch(n, v, add, bias, act);
}

ELMAN_MULTIVERSION
void bias_activation(std::int64_t n, double* v, const double* add, const double* bias,
                     Activation act) {
  dispatch(n, v, add, bias, act);
}

}  // namespace elman::cpu
