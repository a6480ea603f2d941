#include "cpu/blas.h"

#include <cblas.h>

#include <algorithm>
#include <climits>


// scipy-openblas32 prefixes every symbol (scipy_cblas_sgemm ...), so that several
// OpenBLAS copies can live in one process; BLAS_SYMBOL_PREFIX comes from CMake.
#define ELMAN_CAT2(a, b) a##b
#define ELMAN_CAT(a, b) ELMAN_CAT2(a, b)
#define CBLAS(name) ELMAN_CAT(BLAS_SYMBOL_PREFIX, name)

namespace elman::cpu {
namespace {

void gemm_call(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float beta,
               float* c, int ldc) {
  if (m == 1)  // a row vector times a matrix: OpenBLAS's sgemv is several times faster here
    CBLAS(cblas_sgemv)(CblasRowMajor, CblasTrans, k, n, 1.0f, b, ldb, a, 1, beta, c, 1);
  else
    CBLAS(cblas_sgemm)(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb,
                       beta, c, ldc);
}

void gemm_call(int m, int n, int k, const double* a, int lda, const double* b, int ldb,
               double beta, double* c, int ldc) {
  if (m == 1)
    CBLAS(cblas_dgemv)(CblasRowMajor, CblasTrans, k, n, 1.0, b, ldb, a, 1, beta, c, 1);
  else
    CBLAS(cblas_dgemm)(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0, a, lda, b, ldb,
                       beta, c, ldc);
}

}  // namespace

template <typename T>
void gemm(std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t lda,
          const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  // OpenBLAS's gemv applies beta = 0 by multiplication, which would keep NaN from
  // uninitialised memory; C is defined to be overwritten, so clear it first.
  if (m == 1 && beta == T(0)) std::fill(c, c + n, T(0));
  const std::int64_t chunk = INT_MAX / 2;
  for (std::int64_t row = 0; row < m; row += chunk) {
    const int rows = static_cast<int>(std::min(chunk, m - row));
    gemm_call(rows, static_cast<int>(n), static_cast<int>(k), a + row * lda, static_cast<int>(lda),
              b, static_cast<int>(ldb), beta, c + row * ldc, static_cast<int>(ldc));
  }
}

template void gemm<float>(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t,
                          const float*, std::int64_t, float, float*, std::int64_t);
template void gemm<double>(std::int64_t, std::int64_t, std::int64_t, const double*, std::int64_t,
                           const double*, std::int64_t, double, double*, std::int64_t);

void keep_blas_single_threaded() {
  if (CBLAS(openblas_get_num_threads)() != 1) CBLAS(openblas_set_num_threads)(1);
}

}  // namespace elman::cpu
