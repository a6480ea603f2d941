// Activation functions of the recurrent layer, written once for the CPU and CUDA code:
// every activation of the ONNX RNN operator, with its alpha and beta.
//
// Nothing here calls libm, so that loops over these functions vectorise (glibc's scalar
// tanhf costs ~12 ns per element; these cost well under 1 ns in AVX-512 code). Built on
// Cephes (S. L. Moshier: tanhf.c, tanh.c, expf.c, exp.c, unity.c, logf.c, log.c):
//   tanh    |x| < 0.625 : odd polynomial (float) or rational (double) in x^2, where
//                         1 - 2/(e^2x + 1) would cancel catastrophically;
//           otherwise   : 1 - 2/(e^2|x| + 1), sign restored; |x| large: clamped to where
//                         tanh rounds to exactly +-1.
//   e^x     Cody-Waite range reduction x = n ln2 + r, a polynomial (float) / Pade (double)
//           in r, and 2^n applied in two halves so that results that overflow give +Inf
//           and results in the subnormal range are not flushed to zero.
//   e^x - 1 for |x| < ln2/2 the same polynomial without its leading 1 (no cancellation).
//   log1p   Goldberg's u * log(1+u) / ((1+u) - 1), log by a polynomial (float) / rational
//           (double) around 1.
// The maximum errors against float64 NumPy are measured by tests/test_activations.py
// (a few ulp; see the bounds there). NaN propagates through every function.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define ELMAN_HD __host__ __device__ __forceinline__
#else
#define ELMAN_HD inline __attribute__((always_inline))
#endif

namespace elman {

// The activations of the ONNX RNN operator (onnx/defs/rnn/defs.cc), with their parameters:
//   Relu max(x, 0)   Tanh   Sigmoid 1/(1+e^-x)   Affine alpha*x + beta
//   LeakyRelu x if x >= 0 else alpha*x   ThresholdedRelu x if x > alpha else 0
//   ScaledTanh alpha*tanh(beta*x)   HardSigmoid max(0, min(1, alpha*x + beta))
//   Elu x if x >= 0 else alpha*(e^x - 1)   Softsign x/(1+|x|)   Softplus log(1 + e^x)
enum class Activation : int {
  Tanh = 0, Relu = 1, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid,
  Elu, Softsign, Softplus
};

// The pointwise function of one layer and direction: phi(clip(z)), where clip bounds z
// to [-clip, clip] (as ONNX's RNN attribute `clip`, applied before the activation).
struct ActivationParams {
  Activation kind = Activation::Tanh;
  double alpha = 0, beta = 0;  // the ONNX parameters of kind; unused by the others
  bool clipped = false;
  double clip = 0;
};

namespace detail {

// 2^n for integer-valued n in the normal exponent range, built from its bits.
ELMAN_HD float exp2_int(float n) {
  const std::uint32_t bits = static_cast<std::uint32_t>(static_cast<std::int32_t>(n) + 127) << 23;
  float r;
  std::memcpy(&r, &bits, sizeof r);
  return r;
}

ELMAN_HD double exp2_int(double n) {
  const std::uint64_t bits = static_cast<std::uint64_t>(static_cast<std::int64_t>(n) + 1023) << 52;
  double r;
  std::memcpy(&r, &bits, sizeof r);
  return r;
}

// Round to nearest integer by adding and removing 1.5 * 2^mantissa_bits: plain
// arithmetic, so it vectorises on every x86-64 level (floor() needs SSE4.1).
ELMAN_HD float round_nearest(float v) {
  const float magic = 12582912.0f;  // 1.5 * 2^23
  return (v + magic) - magic;
}

ELMAN_HD double round_nearest(double v) {
  const double magic = 6755399441055744.0;  // 1.5 * 2^52
  return (v + magic) - magic;
}

// e^r - 1 for |r| <= ln2/2, without cancellation near 0.
ELMAN_HD float expm1_reduced(float r) {
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * r * r + r;
}

ELMAN_HD double expm1_reduced(double r) {  // valid for |r| <= 0.5
  const double rr = r * r;
  const double p = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr +
                        9.99999999999999999910e-1);
  const double q = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr +
                    2.27265548208155028766e-1) * rr + 2.00000000000000000009e0;
  return 2.0 * (p / (q - p));
}

// y = n ln2 + r with n integral, ln2 split in two so that n * ln2 is exact (Cody-Waite).
ELMAN_HD float reduce_ln2(float y, float* n) {
  *n = round_nearest(y * 1.44269504088896341f);
  return (y - *n * 0.693359375f) - *n * -2.12194440e-4f;
}

ELMAN_HD double reduce_ln2(double y, double* n) {
  *n = round_nearest(y * 1.4426950408889634073599);
  return (y - *n * 6.93145751953125e-1) - *n * 1.42860682030941723212e-6;
}

// e^y for 0 <= y <= 40 (the only range tanh needs: 2^n stays normal).
template <typename T>
ELMAN_HD T exp_nonneg(T y) {
  T n;
  const T r = reduce_ln2(y, &n);
  return (expm1_reduced(r) + T(1)) * exp2_int(n);
}

// Beyond these, e^x is +Inf or 0 in the type; within them n (below) keeps both halves
// of 2^n in the normal exponent range.
template <typename T> struct ExpRange;
template <> struct ExpRange<float> { static constexpr float lo = -104.0f, hi = 89.0f; };
template <> struct ExpRange<double> { static constexpr double lo = -746.0, hi = 710.0; };

ELMAN_HD float tanh_small(float x) {  // |x| < 0.625
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  return p * z * x + x;
}

ELMAN_HD double tanh_small(double x) {  // |x| < 0.625
  const double z = x * x;
  const double p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z -
                   1.61468768441708447952e3;
  const double q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z +
                   4.84406305325125486048e3;
  return x + x * z * (p / q);
}

// Beyond these |x|, tanh(x) rounds to +-1 in the type.
template <typename T> struct TanhSaturation;
template <> struct TanhSaturation<float> { static constexpr float value = 10.0f; };
template <> struct TanhSaturation<double> { static constexpr double value = 19.5; };

}  // namespace detail

template <typename T>
ELMAN_HD T tanh_approx(T x) {
  const T ax = x < T(0) ? -x : x;
  const T clamped = ax < detail::TanhSaturation<T>::value ? ax : detail::TanhSaturation<T>::value;
  const T large = T(1) - T(2) / (detail::exp_nonneg(T(2) * clamped) + T(1));
  const T signed_large = x < T(0) ? -large : large;
  const T r = ax < T(0.625) ? detail::tanh_small(x) : signed_large;
  return x != x || x == T(0) ? x : r;  // NaN stays NaN, -0 stays -0
}

// max(x, 0) that keeps NaN (x < 0 is false for NaN).
template <typename T>
ELMAN_HD T relu(T x) {
  return x < T(0) ? T(0) : x;
}

// e^x over the whole range: +Inf above ~88.7 (float) / ~709.8 (double), gradual
// underflow into the subnormals, 0 below them.
template <typename T>
ELMAN_HD T exp_approx(T x) {
  const T c = x < detail::ExpRange<T>::lo ? detail::ExpRange<T>::lo
                                          : (x > detail::ExpRange<T>::hi ? detail::ExpRange<T>::hi : x);
  T n;
  const T r = detail::reduce_ln2(c, &n);
  const T half = detail::round_nearest(n * T(0.5));
  const T e = (detail::expm1_reduced(r) + T(1)) * detail::exp2_int(half) * detail::exp2_int(n - half);
  return x != x ? x : e;
}

// e^x - 1, accurate near 0 (used by Elu).
template <typename T>
ELMAN_HD T expm1_approx(T x) {
  const T ax = x < T(0) ? -x : x;
  const T small = detail::expm1_reduced(ax < T(0.34657359) ? x : T(0));
  return ax < T(0.34657359) ? small : exp_approx(x) - T(1);
}

// 1 / (1 + e^-x), from e^-|x| so that nothing overflows and small results keep their
// relative accuracy.
template <typename T>
ELMAN_HD T sigmoid(T x) {
  const T e = exp_approx(x < T(0) ? x : -x);
  const T s = T(1) / (T(1) + e);
  return x < T(0) ? e * s : s;
}

namespace detail {

// log(w) for 1 <= w <= 2: w = 2^k m with k in {0, 1} and m in [sqrt(2)/2, sqrt(2)].
ELMAN_HD float log_1_to_2(float w) {
  const float k = w > 1.41421356f ? 1.0f : 0.0f;
  const float f = (k > 0.0f ? w * 0.5f : w) - 1.0f;  // exact (Sterbenz)
  const float z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  const float y = p * f * z + k * -2.12194440e-4f - 0.5f * z;
  return f + y + k * 0.693359375f;
}

ELMAN_HD double log_1_to_2(double w) {
  const double k = w > 1.4142135623730951 ? 1.0 : 0.0;
  const double f = (k > 0.0 ? w * 0.5 : w) - 1.0;  // exact (Sterbenz)
  const double z = f * f;
  const double p = ((((1.01875663804580931796e-4 * f + 4.97494994976747001425e-1) * f +
                      4.70579119878881725854e0) * f + 1.44989225341610930846e1) * f +
                    1.79368678507819816313e1) * f + 7.70838733755885391666e0;
  const double q = ((((f + 1.12873587189167450590e1) * f + 4.52279145837532221105e1) * f +
                     8.29875266912776603211e1) * f + 7.11544750618563894466e1) * f +
                   2.31251620126765340583e1;
  const double y = f * (z * p / q) + k * -2.121944400546905827679e-4 - 0.5 * z;
  return f + y + k * 0.693359375;
}

}  // namespace detail

// log(1 + u) for 0 <= u <= 1 (Goldberg: the rounding error of 1 + u cancels in the ratio).
template <typename T>
ELMAN_HD T log1p_unit(T u) {
  const T w = T(1) + u;
  const T d = w - T(1);
  return d == T(0) ? u : detail::log_1_to_2(w) * (u / (d == T(0) ? T(1) : d));
}

// log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow, and exact 0 / x where the
// result rounds to them.
template <typename T>
ELMAN_HD T softplus(T x) {
  const T ax = x < T(0) ? -x : x;
  const T r = (x < T(0) ? T(0) : x) + log1p_unit(exp_approx(-ax));
  return x != x ? x : r;
}

// x / (1 + |x|); beyond 1e30, 1 + |x| rounds to |x| and the result to +-1 (also for Inf).
template <typename T>
ELMAN_HD T softsign(T x) {
  const T ax = x < T(0) ? -x : x;
  const T r = x / (T(1) + ax);
  return ax > T(1e30) ? (x < T(0) ? T(-1) : T(1)) : r;
}

// One activation of enum Activation, at compile time, with its parameters in T.
template <Activation A, typename T>
ELMAN_HD T activate(T x, T alpha, T beta) {
  if constexpr (A == Activation::Tanh) {
    return tanh_approx(x);
  } else if constexpr (A == Activation::Relu) {
    return relu(x);
  } else if constexpr (A == Activation::Sigmoid) {
    return sigmoid(x);
  } else if constexpr (A == Activation::Affine) {
    return alpha * x + beta;
  } else if constexpr (A == Activation::LeakyRelu) {
    return x < T(0) ? alpha * x : x;
  } else if constexpr (A == Activation::ThresholdedRelu) {
    return x <= alpha ? T(0) : x;  // NaN <= alpha is false: NaN stays
  } else if constexpr (A == Activation::ScaledTanh) {
    return alpha * tanh_approx(beta * x);
  } else if constexpr (A == Activation::HardSigmoid) {
    const T v = alpha * x + beta;
    return v < T(0) ? T(0) : (v > T(1) ? T(1) : v);
  } else if constexpr (A == Activation::Elu) {
    return x < T(0) ? alpha * expm1_approx(x) : x;
  } else if constexpr (A == Activation::Softsign) {
    return softsign(x);
  } else {
    static_assert(A == Activation::Softplus);
    return softplus(x);
  }
}

// z bounded to [-c, c]; NaN stays NaN.
template <typename T>
ELMAN_HD T clip(T z, T c) {
  return z < -c ? -c : (z > c ? c : z);
}

}  // namespace elman
