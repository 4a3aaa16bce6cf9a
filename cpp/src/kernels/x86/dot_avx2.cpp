// AVX2+FMA dot products: independent 8-lane accumulators hide the FMA latency.
#include <immintrin.h>

#include "kernels/kernels.h"
#include "kernels/x86/horizontal_sum_avx2.h"

namespace fastface {
namespace kernels {

float dot_avx2(const float* a, const float* b, std::size_t d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    std::size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= d; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float total = horizontal_sum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < d; ++i) total += a[i] * b[i];
    return total;
}

float dot_norm_avx2(const float* a, const float* b, std::size_t d, float* b_squared) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), n0 = _mm256_setzero_ps(), n1 = _mm256_setzero_ps();
    std::size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        const __m256 b0 = _mm256_loadu_ps(b + i), b1 = _mm256_loadu_ps(b + i + 8);
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), b0, s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), b1, s1);
        n0 = _mm256_fmadd_ps(b0, b0, n0);
        n1 = _mm256_fmadd_ps(b1, b1, n1);
    }
    float total = horizontal_sum(_mm256_add_ps(s0, s1)), norm = horizontal_sum(_mm256_add_ps(n0, n1));
    for (; i < d; ++i) {
        total += a[i] * b[i];
        norm += b[i] * b[i];
    }
    *b_squared = norm;
    return total;
}

}  // namespace kernels
}  // namespace fastface
