#include "cpu/packed_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>

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

constexpr std::int64_t P = PackedMatrix<float>::kPanel;

#ifdef ELMAN_PACKED_KERNELS
// The product runs in blocks that stay in L2 (1-2 MB a core) while the tiles of rows
// pass over them: 192 rows of A, times 256 columns of W, times 1 KB of k per row (256
// floats). Without the column and k blocks, every tile of rows streamed all of W: once
// W outgrew L2 (H = 1760: 12 MB), from L3, at 78 GFLOP/s where an Intel Xeon core (2 MB
// L2) does 145 (50, 64, 1760, 1760). A block of rows that is one tile reuses nothing,
// and runs unblocked: blocks there cost B = 1, H = 512 7% a step.
constexpr std::int64_t kRowBlock = 192;
constexpr std::int64_t kColumnBlock = 256;  // a multiple of every tile's width
constexpr std::int64_t kDepthBytes = 1024;

template <typename T>
using TileFn = void (*)(std::int64_t, const T*, std::int64_t, const T*, std::int64_t, bool, T*,
                        std::int64_t, std::int64_t);
template <typename T>
using RowStepsFn = bool (*)(std::int64_t, const T*, T*, std::int64_t, const PackedMatrix<T>&,
                            RowFinish<T>, const void*);

// An instruction set's kernels for one scalar type, and how packed_gemm tiles a product
// with them. Tile widths count vectors (the registers bound them, whatever the scalar),
// in whole pairs.
template <typename T>
struct KernelSet {
  int vector_width;                          // scalars per vector
  int max_rows;                              // rows of A per tile
  int (*vectors_for_rows)(int rows);         // a tile's width for that many rows
  TileFn<T> (*tile_for)(int rows, int vectors);
  RowStepsFn<T> row_steps;                   // packed_row_steps
};

struct InstructionSet {
  const char* name;
  KernelSet<float> f32;
  KernelSet<double> f64;
};

namespace avx512 {
#define ELMAN_TARGET __attribute__((target("avx512f")))
struct F32 {
  using Scalar = float;
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
struct F64 {
  using Scalar = double;
  using Reg = __m512d;
  static constexpr int kWidth = 8;
  ELMAN_TARGET static Reg zero() { return _mm512_setzero_pd(); }
  ELMAN_TARGET static Reg broadcast(double x) { return _mm512_set1_pd(x); }
  ELMAN_TARGET static Reg load(const double* p) { return _mm512_load_pd(p); }
  ELMAN_TARGET static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_pd(a, b, c); }
  ELMAN_TARGET static Reg add(Reg a, Reg b) { return _mm512_add_pd(a, b); }
  ELMAN_TARGET static __mmask8 first(int n) { return static_cast<__mmask8>((1u << n) - 1u); }
  ELMAN_TARGET static Reg load_first(const double* p, int n) { return _mm512_maskz_loadu_pd(first(n), p); }
  ELMAN_TARGET static void store_first(double* p, Reg v, int n) { _mm512_mask_storeu_pd(p, first(n), v); }
};
#include "cpu/packed_kernels.inc"
#undef ELMAN_TARGET

// 32 registers. Widths: at least 16 accumulators (rows x vectors) to hide the FMA
// latency; 2-7 rows take up to 28, beside which the weights of one k may have to come
// from memory (not tuned). One row keeps no weights in registers: 16 vectors (float64
// at B = 1, H = 256: 3.7-4.3 us a step against 5.5 with 8; float32 the same within the
// noise).
int vectors_for_rows(int rows) { return rows >= 8 ? 2 : rows >= 4 ? 4 : rows >= 2 ? 8 : 16; }

template <class Vec, int MR>
TileFn<typename Vec::Scalar> tile_of(int vectors) {
  switch (vectors) {
    case 2: return tile<Vec, MR, 2>;
    case 4: return tile<Vec, MR, 4>;
    case 6: return tile<Vec, MR, 6>;
    default: return tile<Vec, MR, 8>;
  }
}

template <class Vec>
TileFn<typename Vec::Scalar> tile_for(int rows, int vectors) {
  switch (rows) {
    case 1:  // at most 16 accumulators, in 1-4 partial sums
      switch (vectors) {
        case 2: return row<Vec, 2, 4>;
        case 4: return row<Vec, 4, 4>;
        case 6: return row<Vec, 6, 2>;
        case 8: return row<Vec, 8, 2>;
        case 10: return row<Vec, 10, 1>;
        case 12: return row<Vec, 12, 1>;
        case 14: return row<Vec, 14, 1>;
        default: return row<Vec, 16, 1>;
      }
    case 2: return tile_of<Vec, 2>(vectors);
    case 3: return tile_of<Vec, 3>(vectors);
    case 4: return tile_of<Vec, 4>(vectors);
    case 5: return tile_of<Vec, 5>(vectors);
    case 6: return tile_of<Vec, 6>(vectors);
    case 7: return tile_of<Vec, 7>(vectors);
    default: return tile_of<Vec, 8>(vectors);
  }
}

// Two vectors in 4 partial sums where all of W is that wide (float32, one panel), else
// four a call (a float32 call spans both panels, a float64 call one panel).
template <class Vec>
bool steps_of_row(std::int64_t steps, const typename Vec::Scalar* h0, typename Vec::Scalar* first,
                  std::int64_t stride, const PackedMatrix<typename Vec::Scalar>& w,
                  RowFinish<typename Vec::Scalar> finish, const void* context) {
  if (w.cols() > 2 * P) return false;
  const std::int64_t vectors = (w.cols() + P - 1) / P * (P / Vec::kWidth);
  if (vectors <= 2) row_steps<Vec, 2, 4>(steps, h0, first, stride, w, finish, context);
  else row_steps<Vec, 4, 4>(steps, h0, first, stride, w, finish, context);
  return true;
}

template <class Vec>
constexpr KernelSet<typename Vec::Scalar> kernels{Vec::kWidth, 8, vectors_for_rows, tile_for<Vec>,
                                                  steps_of_row<Vec>};
const InstructionSet instructions{"avx512f", kernels<F32>, kernels<F64>};
}  // namespace avx512

namespace avx2 {
#define ELMAN_TARGET __attribute__((target("avx2,fma")))
// Whole vectors without a mask: masked stores are slow on some CPUs (AMD's).
struct F32 {
  using Scalar = float;
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
  ELMAN_TARGET static Reg load_first(const float* p, int n) {
    return n == kWidth ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, first(n));
  }
  ELMAN_TARGET static void store_first(float* p, Reg v, int n) {
    if (n == kWidth) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, first(n), v);
  }
};
struct F64 {
  using Scalar = double;
  using Reg = __m256d;
  static constexpr int kWidth = 4;
  ELMAN_TARGET static Reg zero() { return _mm256_setzero_pd(); }
  ELMAN_TARGET static Reg broadcast(double x) { return _mm256_set1_pd(x); }
  ELMAN_TARGET static Reg load(const double* p) { return _mm256_load_pd(p); }
  ELMAN_TARGET static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_pd(a, b, c); }
  ELMAN_TARGET static Reg add(Reg a, Reg b) { return _mm256_add_pd(a, b); }
  ELMAN_TARGET static __m256i first(int n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  ELMAN_TARGET static Reg load_first(const double* p, int n) {
    return n == kWidth ? _mm256_loadu_pd(p) : _mm256_maskload_pd(p, first(n));
  }
  ELMAN_TARGET static void store_first(double* p, Reg v, int n) {
    if (n == kWidth) _mm256_storeu_pd(p, v);
    else _mm256_maskstore_pd(p, first(n), v);
  }
};
#include "cpu/packed_kernels.inc"
#undef ELMAN_TARGET

// 16 registers: 8-12 accumulators, the weights of one k and a broadcast. Tiles of 4-6
// rows are 2 vectors wide, of 1-3 rows 4; one row sums in 3 partial sums. (For one row,
// 8 or 12 vectors a call were no faster.)
int vectors_for_rows(int rows) { return rows >= 4 ? 2 : 4; }

template <class Vec>
TileFn<typename Vec::Scalar> tile_for(int rows, int vectors) {
  const bool narrow = vectors == 2;
  switch (rows) {
    case 1: return narrow ? row<Vec, 2, 4> : row<Vec, 4, 3>;
    case 2: return narrow ? tile<Vec, 2, 2> : tile<Vec, 2, 4>;
    case 3: return narrow ? tile<Vec, 3, 2> : tile<Vec, 3, 4>;
    case 4: return tile<Vec, 4, 2>;
    case 5: return tile<Vec, 5, 2>;
    default: return tile<Vec, 6, 2>;
  }
}

// 4 vectors a call, in 2 partial sums (8 accumulators; 3 partial sums, or both float32
// panels in one call, were no faster).
template <class Vec>
bool steps_of_row(std::int64_t steps, const typename Vec::Scalar* h0, typename Vec::Scalar* first,
                  std::int64_t stride, const PackedMatrix<typename Vec::Scalar>& w,
                  RowFinish<typename Vec::Scalar> finish, const void* context) {
  if (w.cols() > 2 * P) return false;
  row_steps<Vec, 4, 2>(steps, h0, first, stride, w, finish, context);
  return true;
}

template <class Vec>
constexpr KernelSet<typename Vec::Scalar> kernels{Vec::kWidth, 6, vectors_for_rows, tile_for<Vec>,
                                                  steps_of_row<Vec>};
const InstructionSet instructions{"avx2", kernels<F32>, kernels<F64>};
}  // namespace avx2

// The kernels this process uses, or none (BLAS). ELMAN_CPU_PACKED=0 takes OpenBLAS's
// path, and ELMAN_CPU_PACKED=avx2 the AVX2 kernels, that of CPUs without AVX-512, on a
// CPU that has it: the tests check each path here.
const InstructionSet* choose_instructions() {
  const char* variable = std::getenv("ELMAN_CPU_PACKED");
  const std::string setting = variable ? variable : "";
  if (setting == "0") return nullptr;
  if (!setting.empty() && setting != "avx2")
    throw std::invalid_argument("ELMAN_CPU_PACKED: expected 0 (OpenBLAS's products) or avx2 (at most the "
                                "AVX2 kernels), or unset, not '" + setting + "'");
  if (setting.empty() && __builtin_cpu_supports("avx512f")) return &avx512::instructions;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &avx2::instructions;
  return nullptr;
}

const InstructionSet* instruction_set() {
  static const InstructionSet* const set = choose_instructions();
  return set;
}

template <typename T>
const KernelSet<T>& kernels_for() {
  if constexpr (std::is_same_v<T, float>) return instruction_set()->f32;
  else return instruction_set()->f64;
}
#endif
}  // namespace

const char* packed_instruction_set() {
#ifdef ELMAN_PACKED_KERNELS
  const InstructionSet* set = instruction_set();
  return set ? set->name : nullptr;
#else
  return nullptr;
#endif
}

template <typename T>
void PackedMatrix<T>::Free::operator()(T* p) const { std::free(p); }

template <typename T>
PackedMatrix<T>::PackedMatrix(const T* w, std::int64_t k, std::int64_t n) : k_(k), n_(n) {
  const std::int64_t panels = (n + P - 1) / P;
  const std::size_t bytes = static_cast<std::size_t>(panels * k * P) * sizeof(T);
  T* data = static_cast<T*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
  if (!data) throw std::bad_alloc();
  data_.reset(data);
  for (std::int64_t p = 0; p < panels; ++p)
    for (std::int64_t i = 0; i < k; ++i)
      for (std::int64_t j = 0; j < P; ++j) {
        const std::int64_t col = p * P + j;
        data[(p * k + i) * P + j] = col < n ? w[i * n + col] : T(0);
      }
}

template <typename T>
void packed_gemm(std::int64_t m, std::int64_t c0, std::int64_t c1, const T* a, std::int64_t lda,
                 const PackedMatrix<T>& w, bool accumulate, T* c, std::int64_t ldc) {
#ifdef ELMAN_PACKED_KERNELS
  const KernelSet<T>& set = kernels_for<T>();
  const std::int64_t k = w.rows(), stride = k * P, step = 2 * set.vector_width;
  for (std::int64_t r0 = 0; r0 < m; r0 += kRowBlock) {
    const std::int64_t r1 = std::min(m, r0 + kRowBlock);
    const bool reused = r1 - r0 > set.max_rows;  // by several tiles of rows
    const std::int64_t block_columns = reused ? kColumnBlock : c1 - c0;
    const std::int64_t depth = reused ? kDepthBytes / std::int64_t(sizeof(T)) : std::max<std::int64_t>(k, 1);
    for (std::int64_t b0 = c0; b0 < c1; b0 += block_columns) {
      const std::int64_t b1 = std::min(c1, b0 + block_columns);
      for (std::int64_t k0 = 0; k0 == 0 || k0 < k; k0 += depth) {  // once for k = 0: C = 0
        const std::int64_t kn = std::min(depth, k - k0);
        const bool add = accumulate || k0 > 0;  // later blocks of k add to the first's sums
        for (std::int64_t row = r0; row < r1;) {
          const int mr = static_cast<int>(std::min<std::int64_t>(set.max_rows, r1 - row));
          const std::int64_t width = set.vectors_for_rows(mr) * set.vector_width;
          // Tiles start at multiples of their width from b0 (a panel's start), and the
          // last is narrowed to what is left, in whole pairs of vectors: none straddles a
          // panel unless it starts at one (vector_at).
          for (std::int64_t col = b0; col < b1;) {
            const std::int64_t columns = std::min(width, (b1 - col + step - 1) / step * step);
            set.tile_for(mr, static_cast<int>(columns / set.vector_width))(
                kn, a + row * lda + k0, lda, w.panel(col / P) + col % P + k0 * P, stride, add,
                c + row * ldc + col, ldc, b1 - col);
            col += columns;
          }
          row += mr;
        }
      }
    }
  }
#else
  (void)m, (void)c0, (void)c1, (void)a, (void)lda, (void)w, (void)accumulate, (void)c, (void)ldc;
  throw std::logic_error("packed_gemm: this processor has no packed kernels");  // unreachable
#endif
}

template <typename T>
bool packed_row_steps(std::int64_t steps, const T* h0, T* first, std::int64_t stride,
                      const PackedMatrix<T>& w, RowFinish<T> finish, const void* context) {
#ifdef ELMAN_PACKED_KERNELS
  return kernels_for<T>().row_steps(steps, h0, first, stride, w, finish, context);
#else
  (void)steps, (void)h0, (void)first, (void)stride, (void)w, (void)finish, (void)context;
  return false;
#endif
}

#define ELMAN_INSTANTIATE(T)                                                                        \
  template class PackedMatrix<T>;                                                                   \
  template void packed_gemm<T>(std::int64_t, std::int64_t, std::int64_t, const T*, std::int64_t,   \
                               const PackedMatrix<T>&, bool, T*, std::int64_t);                     \
  template bool packed_row_steps<T>(std::int64_t, const T*, T*, std::int64_t, const PackedMatrix<T>&, \
                                    RowFinish<T>, const void*);
ELMAN_INSTANTIATE(float)
ELMAN_INSTANTIATE(double)
#undef ELMAN_INSTANTIATE

}  // namespace elman::cpu
