// NEON dot products against float16 and int8 rows, widened to float in registers.
#include <arm_neon.h>

#include "kernels/kernels.h"
#include "kernels/arm/horizontal_sum_neon.h"

// vcvt_f32_f16 exists on every aarch64 target; 32-bit ARM has it only with VFPv4/neon-fp16 and
// an fp16 format chosen (the armv7 presets pass -mfpu=neon-vfpv4 -mfp16-format=ieee). Without
// it the float16 kernel is the scalar one.
#if defined(__aarch64__) || (defined(__ARM_FP) && (__ARM_FP & 2) && defined(__ARM_FP16_FORMAT_IEEE))
#define FASTFACE_NEON_HALF_CONVERT 1
#endif

namespace fastface {
namespace kernels {

namespace {

#if defined(FASTFACE_NEON_HALF_CONVERT)
inline float32x4_t load_f16(const std::uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
#endif

}  // namespace

float dot_f16_neon(const float* q, const std::uint16_t* row, std::size_t d) {
#if defined(FASTFACE_NEON_HALF_CONVERT)
    float32x4_t s0 = vdupq_n_f32(0.f), s1 = s0, s2 = s0, s3 = s0;
    std::size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        s0 = vmlaq_f32(s0, vld1q_f32(q + i), load_f16(row + i));
        s1 = vmlaq_f32(s1, vld1q_f32(q + i + 4), load_f16(row + i + 4));
        s2 = vmlaq_f32(s2, vld1q_f32(q + i + 8), load_f16(row + i + 8));
        s3 = vmlaq_f32(s3, vld1q_f32(q + i + 12), load_f16(row + i + 12));
    }
    for (; i + 4 <= d; i += 4) s0 = vmlaq_f32(s0, vld1q_f32(q + i), load_f16(row + i));
    float total = horizontal_sum(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < d; ++i) total += q[i] * half_to_float(row[i]);
    return total;
#else
    return dot_f16_scalar(q, row, d);
#endif
}

float dot_i8_neon(const float* q, const std::int8_t* row, std::size_t d) {
    float32x4_t s0 = vdupq_n_f32(0.f), s1 = s0, s2 = s0, s3 = s0;
    std::size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        const int8x16_t bytes = vld1q_s8(row + i);
        const int16x8_t low = vmovl_s8(vget_low_s8(bytes)), high = vmovl_s8(vget_high_s8(bytes));
        s0 = vmlaq_f32(s0, vld1q_f32(q + i), vcvtq_f32_s32(vmovl_s16(vget_low_s16(low))));
        s1 = vmlaq_f32(s1, vld1q_f32(q + i + 4), vcvtq_f32_s32(vmovl_s16(vget_high_s16(low))));
        s2 = vmlaq_f32(s2, vld1q_f32(q + i + 8), vcvtq_f32_s32(vmovl_s16(vget_low_s16(high))));
        s3 = vmlaq_f32(s3, vld1q_f32(q + i + 12), vcvtq_f32_s32(vmovl_s16(vget_high_s16(high))));
    }
    float total = horizontal_sum(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < d; ++i) total += q[i] * static_cast<float>(row[i]);
    return total;
}

}  // namespace kernels
}  // namespace fastface
