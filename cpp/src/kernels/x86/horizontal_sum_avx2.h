// The horizontal sum every AVX2 dot kernel ends with (include only from AVX2-compiled files).
#pragma once

#include <immintrin.h>

namespace fastface {
namespace kernels {

inline float horizontal_sum(__m256 s) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_shuffle_ps(r, r, 0x55));
    return _mm_cvtss_f32(r);
}

}  // namespace kernels
}  // namespace fastface
