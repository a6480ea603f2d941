#include "cpu/packed_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>

// Each instruction set's kernels are compiled for it alone (a target attribute on each
// function) and reached only when the CPU has it (packed_instruction_set), so the rest
// of the library stays baseline x86-64. On other processors (aarch64) there are none:
// OpenBLAS does every product.
#if defined(__x86_64__)
#define ELMAN_PACKED_KERNELS 1
#include <immintrin.h>
#endif

namespace elman::cpu {
namespace {

constexpr std::int64_t P = PackedMatrix::kPanel;

#ifdef ELMAN_PACKED_KERNELS
// Rows of A handled per pass over a panel: they stay in L2 while the panels cycle.
constexpr std::int64_t kRowBlock = 192;

using TileFn = void (*)(std::int64_t, const float*, std::int64_t, const float*, std::int64_t, bool,
                        float*, std::int64_t, std::int64_t);
using RowStepsFn = bool (*)(std::int64_t, const float*, float*, std::int64_t, const PackedMatrix&,
                            RowFinish, const void*);

// An instruction set's kernels and how packed_gemm tiles a product with them.
struct KernelSet {
  const char* name;
  int vector_width;                         // floats per vector
  int max_rows;                             // rows of A per tile
  int column_step;                          // tile widths are multiples of it (16 or 32)
  int (*columns_for_rows)(int rows);        // a tile's width for that many rows
  TileFn (*tile_for)(int rows, int vectors);
  RowStepsFn row_steps;                     // packed_row_steps
};

namespace avx512 {
#define ELMAN_TARGET __attribute__((target("avx512f")))
struct Vec {
  using Reg = __m512;
  static constexpr int kWidth = 16;
  ELMAN_TARGET static Reg zero() { return _mm512_setzero_ps(); }
  ELMAN_TARGET static Reg broadcast(float x) { return _mm512_set1_ps(x); }
  ELMAN_TARGET static Reg load(const float* p) { return _mm512_load_ps(p); }
  ELMAN_TARGET static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  ELMAN_TARGET static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  ELMAN_TARGET static __mmask16 first(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  ELMAN_TARGET static Reg load_first(const float* p, int n) { return _mm512_maskz_loadu_ps(first(n), p); }
  ELMAN_TARGET static void store_first(float* p, Reg v, int n) { _mm512_mask_storeu_ps(p, first(n), v); }
};
#include "cpu/packed_kernels.inc"
#undef ELMAN_TARGET

// 32 registers. Widths: enough independent accumulators (>= 8) to hide the FMA
// latency, few enough (<= 16) to stay in registers with the weights.
int columns_for_rows(int rows) { return rows >= 8 ? 32 : rows >= 4 ? 64 : 128; }

template <int MR>
TileFn tile_of(int vectors) {
  switch (vectors) {
    case 2: return tile<MR, 2>;
    case 4: return tile<MR, 4>;
    case 6: return tile<MR, 6>;
    default: return tile<MR, 8>;
  }
}

TileFn tile_for(int rows, int vectors) {
  switch (rows) {
    case 1:  // at most 16 accumulators
      switch (vectors) {
        case 2: return row<2, 4>;
        case 4: return row<4, 4>;
        case 6: return row<6, 2>;
        default: return row<8, 2>;
      }
    case 2: return tile_of<2>(vectors);
    case 3: return tile_of<3>(vectors);
    case 4: return tile_of<4>(vectors);
    case 5: return tile_of<5>(vectors);
    case 6: return tile_of<6>(vectors);
    case 7: return tile_of<7>(vectors);
    default: return tile_of<8>(vectors);
  }
}

bool steps_of_row(std::int64_t steps, const float* h0, float* first, std::int64_t stride,
                  const PackedMatrix& w, RowFinish finish, const void* context) {
  switch ((w.cols() + P - 1) / P) {
    case 1: row_steps<2, 4>(steps, h0, first, stride, w, finish, context); return true;
    case 2: row_steps<4, 4>(steps, h0, first, stride, w, finish, context); return true;
    default: return false;
  }
}

const KernelSet kernels{"avx512f", Vec::kWidth, 8, 32, columns_for_rows, tile_for, steps_of_row};
}  // namespace avx512

namespace avx2 {
#define ELMAN_TARGET __attribute__((target("avx2,fma")))
struct Vec {
  using Reg = __m256;
  static constexpr int kWidth = 8;
  ELMAN_TARGET static Reg zero() { return _mm256_setzero_ps(); }
  ELMAN_TARGET static Reg broadcast(float x) { return _mm256_set1_ps(x); }
  ELMAN_TARGET static Reg load(const float* p) { return _mm256_load_ps(p); }
  ELMAN_TARGET static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  ELMAN_TARGET static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  ELMAN_TARGET static __m256i first(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  // Whole vectors without a mask: masked stores are slow on some CPUs (AMD's).
  ELMAN_TARGET static Reg load_first(const float* p, int n) {
    return n == kWidth ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, first(n));
  }
  ELMAN_TARGET static void store_first(float* p, Reg v, int n) {
    if (n == kWidth) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, first(n), v);
  }
};
#include "cpu/packed_kernels.inc"
#undef ELMAN_TARGET

// 16 registers: 8-12 accumulators, the weights of one k and a broadcast. Tiles of 4-6
// rows are 16 columns wide (2 vectors, half a panel), of 1-3 rows 32; one row sums in
// 3 partial sums. (For one row, 64 or 96 columns a call were no faster.)
int columns_for_rows(int rows) { return rows >= 4 ? 16 : 32; }

TileFn tile_for(int rows, int vectors) {
  const bool narrow = vectors == 2;
  switch (rows) {
    case 1: return narrow ? row<2, 4> : row<4, 3>;
    case 2: return narrow ? tile<2, 2> : tile<2, 4>;
    case 3: return narrow ? tile<3, 2> : tile<3, 4>;
    case 4: return tile<4, 2>;
    case 5: return tile<5, 2>;
    default: return tile<6, 2>;
  }
}

// One or two panels, a panel per call of row<4, 2> (8 accumulators; 3 partial sums or
// both panels in one call were no faster).
bool steps_of_row(std::int64_t steps, const float* h0, float* first, std::int64_t stride,
                  const PackedMatrix& w, RowFinish finish, const void* context) {
  if (w.cols() > 2 * P) return false;
  row_steps<4, 2>(steps, h0, first, stride, w, finish, context);
  return true;
}

const KernelSet kernels{"avx2", Vec::kWidth, 6, 16, columns_for_rows, tile_for, steps_of_row};
}  // namespace avx2

// The kernels this process uses, or none (BLAS). ELMAN_CPU_PACKED=0 takes OpenBLAS's
// path, and ELMAN_CPU_PACKED=avx2 the AVX2 kernels, that of CPUs without AVX-512, on a
// CPU that has it: the tests check each path here. Read once: layers made before keep
// theirs.
const KernelSet* choose_kernels() {
  const char* variable = std::getenv("ELMAN_CPU_PACKED");
  const std::string setting = variable ? variable : "";
  if (setting == "0") return nullptr;
  if (!setting.empty() && setting != "avx2")
    throw std::invalid_argument("ELMAN_CPU_PACKED: expected 0 (OpenBLAS's products) or avx2 (at most the "
                                "AVX2 kernels), or unset, not '" + setting + "'");
  if (setting.empty() && __builtin_cpu_supports("avx512f")) return &avx512::kernels;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &avx2::kernels;
  return nullptr;
}

const KernelSet* kernel_set() {
  static const KernelSet* const set = choose_kernels();
  return set;
}
#endif
}  // namespace

const char* packed_instruction_set() {
#ifdef ELMAN_PACKED_KERNELS
  const KernelSet* set = kernel_set();
  return set ? set->name : nullptr;
#else
  return nullptr;
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
  const KernelSet& set = *kernel_set();
  const std::int64_t k = w.rows(), stride = k * P, step = set.column_step;
  for (std::int64_t r0 = 0; r0 < m; r0 += kRowBlock) {
    const std::int64_t r1 = std::min(m, r0 + kRowBlock);
    for (std::int64_t row = r0; row < r1;) {
      const int mr = static_cast<int>(std::min<std::int64_t>(set.max_rows, r1 - row));
      const std::int64_t width = set.columns_for_rows(mr);
      // Tiles start at multiples of their width from c0 (a panel's start), and the last
      // is narrowed to what is left, in whole column steps: none straddles a panel
      // unless it starts at one (vector_at).
      for (std::int64_t col = c0; col < c1;) {
        const std::int64_t columns = std::min(width, (c1 - col + step - 1) / step * step);
        set.tile_for(mr, static_cast<int>(columns / set.vector_width))(
            k, a + row * lda, lda, w.panel(col / P) + col % P, stride, accumulate,
            c + row * ldc + col, ldc, c1 - col);
        col += columns;
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
  return kernel_set()->row_steps(steps, h0, first, stride, w, finish, context);
#else
  (void)steps, (void)h0, (void)first, (void)stride, (void)w, (void)finish, (void)context;
  return false;
#endif
}

}  // namespace elman::cpu
