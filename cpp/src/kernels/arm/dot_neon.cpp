// NEON dot products: independent 4-lane accumulators.
#include <arm_neon.h>

#include "kernels/kernels.h"
#include "kernels/arm/horizontal_sum_neon.h"

namespace fastface {
namespace kernels {

float dot_neon(const float* a, const float* b, std::size_t d) {
    float32x4_t s0 = vdupq_n_f32(0.f), s1 = s0, s2 = s0, s3 = s0;
    std::size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        s0 = vmlaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vmlaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
        s2 = vmlaq_f32(s2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
        s3 = vmlaq_f32(s3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
    }
    for (; i + 4 <= d; i += 4) s0 = vmlaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
    float total = horizontal_sum(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < d; ++i) total += a[i] * b[i];
    return total;
}

float dot_norm_neon(const float* a, const float* b, std::size_t d, float* b_squared) {
    float32x4_t s0 = vdupq_n_f32(0.f), s1 = s0, n0 = s0, n1 = s0;
    std::size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        const float32x4_t b0 = vld1q_f32(b + i), b1 = vld1q_f32(b + i + 4);
        s0 = vmlaq_f32(s0, vld1q_f32(a + i), b0);
        s1 = vmlaq_f32(s1, vld1q_f32(a + i + 4), b1);
        n0 = vmlaq_f32(n0, b0, b0);
        n1 = vmlaq_f32(n1, b1, b1);
    }
    float total = horizontal_sum(vaddq_f32(s0, s1)), norm = horizontal_sum(vaddq_f32(n0, n1));
    for (; i < d; ++i) {
        total += a[i] * b[i];
        norm += b[i] * b[i];
    }
    *b_squared = norm;
    return total;
}

}  // namespace kernels
}  // namespace fastface
