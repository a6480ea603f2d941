// Matrix products on the CPU, through OpenBLAS (the only code that sees cblas.h).
#pragma once

#include <cstdint>

namespace elman::cpu {

// C = A @ B + beta * C, all row-major: A (m, k) with row stride lda, B (k, n) with
// row stride ldb, C (m, n) with row stride ldc. m may exceed the BLAS int range
// (the rows are then done in chunks); k, n, lda, ldb, ldc must fit in an int.
template <typename T>
void gemm(std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t lda,
          const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc);

// elman runs OpenBLAS only inside its own threads, one OpenBLAS thread each: OpenBLAS's
// own pool, called from several threads at once, serialises and oversubscribes the
// cores. Restores that setting if something (threadpoolctl, say) changed it.
void keep_blas_single_threaded();

}  // namespace elman::cpu
