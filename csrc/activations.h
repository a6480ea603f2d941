// Activation functions of the recurrent layer, written once for the CPU and CUDA code.
//
// tanh is computed without libm so that loops over it vectorise (glibc's scalar tanhf
// costs ~12 ns per element; these cost well under 1 ns in AVX-512 code):
//   |x| < 0.625 : odd polynomial (float) or rational (double) in x^2, where
//                 1 - 2/(e^2x + 1) would cancel catastrophically;
//   otherwise   : 1 - 2/(e^2|x| + 1), sign restored, with e^y by Cody-Waite range
//                 reduction y = n ln2 + r and a polynomial (float) / Pade (double) in r;
//   |x| large   : clamped to where tanh rounds to exactly +-1.
// Coefficients are those of Cephes (S. L. Moshier, tanhf.c, tanh.c, expf.c, exp.c).
// The maximum error against a float64 reference is measured by tests/test_activations.py.
// NaN propagates; +-Inf give +-1; -0 gives -0.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define ELMAN_HD __host__ __device__ __forceinline__
#else
#define ELMAN_HD inline __attribute__((always_inline))
#endif

namespace elman {

enum class Activation : int { Tanh = 0, Relu = 1 };

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

// e^y for 0 <= y <= 40 (the only range tanh needs).
ELMAN_HD float exp_nonneg(float y) {
  const float n = round_nearest(y * 1.44269504088896341f);
  const float r = (y - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return (p * r * r + r + 1.0f) * exp2_int(n);
}

ELMAN_HD double exp_nonneg(double y) {
  const double n = round_nearest(y * 1.4426950408889634073599);
  const double r = (y - n * 6.93145751953125e-1) - n * 1.42860682030941723212e-6;
  const double rr = r * r;
  const double p = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr +
                        9.99999999999999999910e-1);
  const double q = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr +
                    2.27265548208155028766e-1) * rr + 2.00000000000000000009e0;
  return (1.0 + 2.0 * (p / (q - p))) * exp2_int(n);
}

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

}  // namespace elman
