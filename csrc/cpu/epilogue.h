// The per-step pointwise work of the recurrence: bias, clip and activation, fused.
#pragma once

#include <cstdint>

#include "activations.h"

namespace elman::cpu {

// v[i] = act(clip(v[i] + add[i] + bias[i])) for i < n; add and bias may be null (= zeros).
// Vectorised, with the instruction set (AVX-512 / AVX2+FMA / baseline x86-64)
// chosen at run time for the CPU it runs on.
void bias_activation(std::int64_t n, float* v, const float* add, const float* bias,
                     const ActivationParams& act);
void bias_activation(std::int64_t n, double* v, const double* add, const double* bias,
                     const ActivationParams& act);

}  // namespace elman::cpu
