// NEON dot product: four independent 4-lane accumulators.
#include <arm_neon.h>

#include "kernels/kernels.h"

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
    const float32x4_t s = vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3));
    const float32x2_t pair = vadd_f32(vget_low_f32(s), vget_high_f32(s));
    float total = vget_lane_f32(vpadd_f32(pair, pair), 0);
    for (; i < d; ++i) total += a[i] * b[i];
    return total;
}

}  // namespace kernels
}  // namespace fastface
