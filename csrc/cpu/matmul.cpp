#include "cpu/matmul.h"

#include "cpu/blas.h"

namespace elman::cpu {

template <typename T>
Weight<T>::Weight(const T* w, std::int64_t r, std::int64_t c) : raw(w), rows(r), cols(c) {
  if (packed_gemm_supported()) packed = std::make_shared<const PackedMatrix<T>>(w, r, c);
}

template <typename T>
void matmul(std::int64_t m, std::int64_t c0, std::int64_t c1, const T* a, std::int64_t lda,
            const Weight<T>& w, bool accumulate, T* c, std::int64_t ldc) {
  if (w.packed) return packed_gemm<T>(m, c0, c1, a, lda, *w.packed, accumulate, c, ldc);
  gemm<T>(m, c1 - c0, w.rows, a, lda, w.raw + c0, w.cols, accumulate ? T(1) : T(0), c + c0, ldc);
}

template struct Weight<float>;
template struct Weight<double>;
template void matmul<float>(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t,
                            const Weight<float>&, bool, float*, std::int64_t);
template void matmul<double>(std::int64_t, std::int64_t, std::int64_t, const double*, std::int64_t,
                             const Weight<double>&, bool, double*, std::int64_t);

}  // namespace elman::cpu
