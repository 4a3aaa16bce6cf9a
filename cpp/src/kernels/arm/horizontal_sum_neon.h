// The horizontal sum every NEON dot kernel ends with (AArch64 and ARMv7 alike).
#pragma once

#include <arm_neon.h>

namespace fastface {
namespace kernels {

inline float horizontal_sum(float32x4_t s) {
    const float32x2_t pair = vadd_f32(vget_low_f32(s), vget_high_f32(s));
    return vget_lane_f32(vpadd_f32(pair, pair), 0);
}

}  // namespace kernels
}  // namespace fastface
