#include "cpu/packed_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>

// The kernels are compiled for AVX-512F only (the target attribute), and reached only
// when the CPU has it (packed_gemm_supported), so the rest of the library stays
// baseline x86-64. On other processors (aarch64) there are none: OpenBLAS does every
// product.
#if defined(__x86_64__)
#define ELMAN_PACKED_KERNELS 1
#include <immintrin.h>
#define ELMAN_AVX512 __attribute__((target("avx512f")))
#endif

namespace elman::cpu {
namespace {

constexpr std::int64_t P = PackedMatrix::kPanel;  // 2 vectors of 16 floats

#ifdef ELMAN_PACKED_KERNELS
// Rows of A handled per pass over a panel: they stay in L2 while the panels cycle.
constexpr std::int64_t kRowBlock = 192;

// A tile of MR rows x NP panels: MR * NP * 2 accumulators, summed over all k in order.
template <int MR, int NP>
ELMAN_AVX512 void tile(std::int64_t k, const float* a, std::int64_t lda, const float* panel0,
                       std::int64_t panel_stride, bool accumulate, float* c, std::int64_t ldc,
                       std::int64_t cols) {
  __m512 acc[MR][NP][2];
  for (int r = 0; r < MR; ++r)
    for (int p = 0; p < NP; ++p) acc[r][p][0] = acc[r][p][1] = _mm512_setzero_ps();
  for (std::int64_t i = 0; i < k; ++i) {
    __m512 w[NP][2];
    for (int p = 0; p < NP; ++p) {
      w[p][0] = _mm512_load_ps(panel0 + p * panel_stride + i * P);
      w[p][1] = _mm512_load_ps(panel0 + p * panel_stride + i * P + 16);
    }
    for (int r = 0; r < MR; ++r) {
      const __m512 x = _mm512_set1_ps(a[r * lda + i]);
      for (int p = 0; p < NP; ++p) {
        acc[r][p][0] = _mm512_fmadd_ps(x, w[p][0], acc[r][p][0]);
        acc[r][p][1] = _mm512_fmadd_ps(x, w[p][1], acc[r][p][1]);
      }
    }
  }
  for (int p = 0; p < NP; ++p)
    for (int h = 0; h < 2; ++h) {
      const std::int64_t first = p * P + h * 16;  // column of this vector within the tile
      const std::int64_t valid = std::clamp<std::int64_t>(cols - first, 0, 16);
      const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1u);
      if (!mask) continue;
      for (int r = 0; r < MR; ++r) {
        float* out = c + r * ldc + first;
        __m512 v = acc[r][p][h];
        if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, out));
        _mm512_mask_storeu_ps(out, mask, v);
      }
    }
}

// A single row (B = 1, the latency case): the sum over k runs in KS interleaved partial
// sums, so that KS * NP * 2 FMA chains hide the FMA latency even for small H, where a
// single chain per vector would make each step wait ~4 cycles per k.
template <int NP, int KS>
ELMAN_AVX512 void row(std::int64_t k, const float* a, std::int64_t, const float* panel0,
                      std::int64_t panel_stride, bool accumulate, float* c, std::int64_t,
                      std::int64_t cols) {
  __m512 acc[KS][NP][2];
  for (int s = 0; s < KS; ++s)
    for (int p = 0; p < NP; ++p) acc[s][p][0] = acc[s][p][1] = _mm512_setzero_ps();
  std::int64_t i = 0;
  for (; i + KS <= k; i += KS)
    for (int s = 0; s < KS; ++s) {
      const __m512 x = _mm512_set1_ps(a[i + s]);
      for (int p = 0; p < NP; ++p)
        for (int h = 0; h < 2; ++h)
          acc[s][p][h] = _mm512_fmadd_ps(x, _mm512_load_ps(panel0 + p * panel_stride + (i + s) * P + h * 16),
                                         acc[s][p][h]);
    }
  for (; i < k; ++i) {
    const __m512 x = _mm512_set1_ps(a[i]);
    for (int p = 0; p < NP; ++p)
      for (int h = 0; h < 2; ++h)
        acc[0][p][h] = _mm512_fmadd_ps(x, _mm512_load_ps(panel0 + p * panel_stride + i * P + h * 16),
                                       acc[0][p][h]);
  }
  for (int p = 0; p < NP; ++p)
    for (int h = 0; h < 2; ++h) {
      __m512 v = acc[0][p][h];
      for (int s = 1; s < KS; ++s) v = _mm512_add_ps(v, acc[s][p][h]);
      const std::int64_t first = p * P + h * 16;
      const std::int64_t valid = std::clamp<std::int64_t>(cols - first, 0, 16);
      const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1u);
      if (!mask) continue;
      if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, c + first));
      _mm512_mask_storeu_ps(c + first, mask, v);
    }
}

// All steps of one row whose W fits in NP panels: row<NP, KS>'s sums with the input
// projection already in y_t, then `finish` (bias and activation) on y_t, which is the
// next step's input. One call for the whole sequence: at small H the per-step calls
// through matmul and the kernel tables cost as much as the arithmetic.
template <int NP, int KS>
ELMAN_AVX512 void row_steps(std::int64_t steps, const float* h0, float* first, std::int64_t stride,
                            const PackedMatrix& w, RowFinish finish, const void* context) {
  const std::int64_t k = w.rows(), panel_stride = k * P;
  const float* prev = h0;
  for (std::int64_t t = 0; t < steps; ++t) {
    float* yt = first + t * stride;
    row<NP, KS>(k, prev, 0, w.panel(0), panel_stride, true, yt, 0, w.cols());
    finish(yt, context);
    prev = yt;
  }
}

using TileFn = void (*)(std::int64_t, const float*, std::int64_t, const float*, std::int64_t, bool,
                        float*, std::int64_t, std::int64_t);

// Panels per tile for a tile of MR rows: enough independent accumulators (>= 8) to
// hide the FMA latency, few enough (<= 16) to stay in registers.
constexpr int panels_for_rows(int mr) { return mr >= 8 ? 1 : mr >= 4 ? 2 : 4; }

template <int MR>
TileFn tile_for(int np) {
  switch (np) {
    case 1: return tile<MR, 1>;
    case 2: return tile<MR, 2>;
    case 3: return tile<MR, 3>;
    default: return tile<MR, 4>;
  }
}

TileFn tile_for(int mr, int np) {
  switch (mr) {
    case 1:  // at most 16 accumulators
      switch (np) {
        case 1: return row<1, 4>;
        case 2: return row<2, 4>;
        case 3: return row<3, 2>;
        default: return row<4, 2>;
      }
    case 2: return tile_for<2>(np);
    case 3: return tile_for<3>(np);
    case 4: return tile_for<4>(np);
    case 5: return tile_for<5>(np);
    case 6: return tile_for<6>(np);
    case 7: return tile_for<7>(np);
    default: return tile_for<8>(np);
  }
}

#endif
}  // namespace

bool packed_gemm_supported() {
#ifdef ELMAN_PACKED_KERNELS
  // ELMAN_CPU_PACKED=0 takes OpenBLAS's path, that of CPUs without AVX-512, on one that
  // has it: the tests check that path here (read once: layers made before keep theirs).
  static const bool supported = __builtin_cpu_supports("avx512f") && [] {
    const char* setting = std::getenv("ELMAN_CPU_PACKED");
    return !(setting && std::string(setting) == "0");
  }();
  return supported;
#else
  return false;
#endif
}

void PackedMatrix::Free::operator()(float* p) const { std::free(p); }

PackedMatrix::PackedMatrix(const float* w, std::int64_t k, std::int64_t n) : k_(k), n_(n) {
  const std::int64_t panels = (n + P - 1) / P;
  const std::size_t bytes = static_cast<std::size_t>(panels * k * P) * sizeof(float);
  float* data = static_cast<float*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
  if (!data) throw std::bad_alloc();
  data_.reset(data);
  for (std::int64_t p = 0; p < panels; ++p)
    for (std::int64_t i = 0; i < k; ++i)
      for (std::int64_t j = 0; j < P; ++j) {
        const std::int64_t col = p * P + j;
        data[(p * k + i) * P + j] = col < n ? w[i * n + col] : 0.0f;
      }
}

void packed_gemm(std::int64_t m, std::int64_t c0, std::int64_t c1, const float* a,
                 std::int64_t lda, const PackedMatrix& w, bool accumulate, float* c,
                 std::int64_t ldc) {
#ifdef ELMAN_PACKED_KERNELS
  const std::int64_t k = w.rows(), stride = k * P;
  for (std::int64_t r0 = 0; r0 < m; r0 += kRowBlock) {
    const std::int64_t r1 = std::min(m, r0 + kRowBlock);
    for (std::int64_t row = r0; row < r1;) {
      const int mr = static_cast<int>(std::min<std::int64_t>(8, r1 - row));
      const int np = panels_for_rows(mr);
      for (std::int64_t col = c0; col < c1;) {
        const int panels = static_cast<int>(std::min<std::int64_t>(np, (c1 - col + P - 1) / P));
        tile_for(mr, panels)(k, a + row * lda, lda, w.panel(col / P), stride, accumulate,
                             c + row * ldc + col, ldc, c1 - col);
        col += panels * P;
      }
      row += mr;
    }
  }
#else
  (void)m, (void)c0, (void)c1, (void)a, (void)lda, (void)w, (void)accumulate, (void)c, (void)ldc;
  throw std::logic_error("packed_gemm: this processor has no packed kernels");  // unreachable
#endif
}

bool packed_row_steps(std::int64_t steps, const float* h0, float* first, std::int64_t stride,
                      const PackedMatrix& w, RowFinish finish, const void* context) {
#ifdef ELMAN_PACKED_KERNELS
  switch ((w.cols() + P - 1) / P) {
    case 1: row_steps<1, 4>(steps, h0, first, stride, w, finish, context); return true;
    case 2: row_steps<2, 4>(steps, h0, first, stride, w, finish, context); return true;
    default: return false;
  }
#else
  (void)steps, (void)h0, (void)first, (void)stride, (void)w, (void)finish, (void)context;
  return false;
#endif
}

}  // namespace elman::cpu
