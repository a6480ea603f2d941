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

// The activation's parameters in the arithmetic's type.
template <typename T>
struct Params {
  T alpha, beta, clip;
};

template <typename T, Activation A, bool Clip>
ELMAN_HD T pointwise(T z, const Params<T>& p) {
  if constexpr (Clip) z = clip(z, p.clip);
  return activate<A>(z, p.alpha, p.beta);
}

// One branch-free loop per combination, so that the compiler can vectorise each.
template <typename T, Activation A, bool Clip>
ELMAN_HD void loop(std::int64_t n, T* __restrict v, const T* __restrict add,
                   const T* __restrict bias, Params<T> p) {
  if (add && bias)
    for (std::int64_t i = 0; i < n; ++i) v[i] = pointwise<T, A, Clip>(v[i] + add[i] + bias[i], p);
  else if (add)
    for (std::int64_t i = 0; i < n; ++i) v[i] = pointwise<T, A, Clip>(v[i] + add[i], p);
  else if (bias)
    for (std::int64_t i = 0; i < n; ++i) v[i] = pointwise<T, A, Clip>(v[i] + bias[i], p);
  else
    for (std::int64_t i = 0; i < n; ++i) v[i] = pointwise<T, A, Clip>(v[i], p);
}

template <typename T, Activation A>
ELMAN_HD void with_clip(std::int64_t n, T* v, const T* add, const T* bias,
                        const ActivationParams& act) {
  const Params<T> p{static_cast<T>(act.alpha), static_cast<T>(act.beta), static_cast<T>(act.clip)};
  if (act.clipped)
    loop<T, A, true>(n, v, add, bias, p);
  else
    loop<T, A, false>(n, v, add, bias, p);
}

template <typename T>
ELMAN_HD void dispatch(std::int64_t n, T* v, const T* add, const T* bias,
                       const ActivationParams& act) {
  switch (act.kind) {
    case Activation::Tanh: with_clip<T, Activation::Tanh>(n, v, add, bias, act); break;
    case Activation::Relu: with_clip<T, Activation::Relu>(n, v, add, bias, act); break;
    case Activation::Sigmoid: with_clip<T, Activation::Sigmoid>(n, v, add, bias, act); break;
    case Activation::Affine: with_clip<T, Activation::Affine>(n, v, add, bias, act); break;
    case Activation::LeakyRelu: with_clip<T, Activation::LeakyRelu>(n, v, add, bias, act); break;
    case Activation::ThresholdedRelu:
      with_clip<T, Activation::ThresholdedRelu>(n, v, add, bias, act);
      break;
    case Activation::ScaledTanh: with_clip<T, Activation::ScaledTanh>(n, v, add, bias, act); break;
    case Activation::HardSigmoid: with_clip<T, Activation::HardSigmoid>(n, v, add, bias, act); break;
    case Activation::Elu: with_clip<T, Activation::Elu>(n, v, add, bias, act); break;
    case Activation::Softsign: with_clip<T, Activation::Softsign>(n, v, add, bias, act); break;
    case Activation::Softplus: with_clip<T, Activation::Softplus>(n, v, add, bias, act); break;
  }
}

}  // namespace

ELMAN_MULTIVERSION
void bias_activation(std::int64_t n, float* v, const float* add, const float* bias,
                     const ActivationParams& act) {
  dispatch(n, v, add, bias, act);
}

ELMAN_MULTIVERSION
void bias_activation(std::int64_t n, double* v, const double* add, const double* bias,
                     const ActivationParams& act) {
  dispatch(n, v, add, bias, act);
}

}  // namespace elman::cpu
