// SSE2 dot products: independent 4-lane accumulators.
#include <emmintrin.h>

#include "kernels/kernels.h"

namespace fastface {
namespace kernels {

namespace {

inline float horizontal_sum(__m128 r) {
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_shuffle_ps(r, r, 0x55));
    return _mm_cvtss_f32(r);
}

}  // namespace

float dot_sse2(const float* a, const float* b, std::size_t d) {
    __m128 s0 = _mm_setzero_ps(), s1 = _mm_setzero_ps(), s2 = _mm_setzero_ps(), s3 = _mm_setzero_ps();
    std::size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        s0 = _mm_add_ps(s0, _mm_mul_ps(_mm_loadu_ps(a + i), _mm_loadu_ps(b + i)));
        s1 = _mm_add_ps(s1, _mm_mul_ps(_mm_loadu_ps(a + i + 4), _mm_loadu_ps(b + i + 4)));
        s2 = _mm_add_ps(s2, _mm_mul_ps(_mm_loadu_ps(a + i + 8), _mm_loadu_ps(b + i + 8)));
        s3 = _mm_add_ps(s3, _mm_mul_ps(_mm_loadu_ps(a + i + 12), _mm_loadu_ps(b + i + 12)));
    }
    for (; i + 4 <= d; i += 4) s0 = _mm_add_ps(s0, _mm_mul_ps(_mm_loadu_ps(a + i), _mm_loadu_ps(b + i)));
    float total = horizontal_sum(_mm_add_ps(_mm_add_ps(s0, s1), _mm_add_ps(s2, s3)));
    for (; i < d; ++i) total += a[i] * b[i];
    return total;
}

float dot_norm_sse2(const float* a, const float* b, std::size_t d, float* b_squared) {
    __m128 s0 = _mm_setzero_ps(), s1 = _mm_setzero_ps(), n0 = _mm_setzero_ps(), n1 = _mm_setzero_ps();
    std::size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        const __m128 b0 = _mm_loadu_ps(b + i), b1 = _mm_loadu_ps(b + i + 4);
        s0 = _mm_add_ps(s0, _mm_mul_ps(_mm_loadu_ps(a + i), b0));
        s1 = _mm_add_ps(s1, _mm_mul_ps(_mm_loadu_ps(a + i + 4), b1));
        n0 = _mm_add_ps(n0, _mm_mul_ps(b0, b0));
        n1 = _mm_add_ps(n1, _mm_mul_ps(b1, b1));
    }
    float total = horizontal_sum(_mm_add_ps(s0, s1)), norm = horizontal_sum(_mm_add_ps(n0, n1));
    for (; i < d; ++i) {
        total += a[i] * b[i];
        norm += b[i] * b[i];
    }
    *b_squared = norm;
    return total;
}

}  // namespace kernels
}  // namespace fastface
