// NEON warp (aarch64 and armv7): four output pixels per step, like the SSE2 variant — NEON
// has no gather, so neighbours come from scalar 4-byte loads and the arithmetic is vector.
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "kernels/kernels.h"

namespace fastface {
namespace kernels {

namespace {

inline float32x4_t channel(uint32x4_t pixels, int c) {
    const uint32x4_t shifted = vshlq_u32(pixels, vdupq_n_s32(-8 * c));
    return vcvtq_f32_u32(vandq_u32(shifted, vdupq_n_u32(0xff)));
}

inline float32x4_t lerp(float32x4_t a, float32x4_t b, float32x4_t t) { return vmlaq_f32(a, t, vsubq_f32(b, a)); }

inline uint32x4_t load4(const std::uint8_t* const* p) {
    std::uint32_t v[4];
    for (int i = 0; i < 4; ++i) std::memcpy(&v[i], p[i], 4);
    return vld1q_u32(v);
}

}  // namespace

void warp_rows_neon(const WarpArgs& a, int row_begin, int row_end) {
    const int w = a.src_width, h = a.src_height, cn = a.src_channels;
    if (w < 2 || h < 2) {
        warp_rows_scalar(a, row_begin, row_end);
        return;
    }
    const int last_row_max_x0 = (w * cn - 4) / cn - 1;  // 4-byte reads must end inside the last row
    const float lane_init[4] = {0.f, 1.f, 2.f, 3.f};
    const float32x4_t lane = vld1q_f32(lane_init);
    const float32x4_t lo = vdupq_n_f32(-kCoordMargin);
    const float32x4_t hi_x = vdupq_n_f32(static_cast<float>(w) + kCoordMargin);
    const float32x4_t hi_y = vdupq_n_f32(static_cast<float>(h) + kCoordMargin);
    // Coordinates are >= -kCoordMargin, so truncation after this shift is floor on armv7 too.
    const float32x4_t shift = vdupq_n_f32(4.f);
    const int32x4_t ishift = vdupq_n_s32(4);
    float values[3];

    for (int y = row_begin; y < row_end; ++y) {
        const float row_x = a.m[1] * static_cast<float>(y) + a.m[2];
        const float row_y = a.m[4] * static_cast<float>(y) + a.m[5];
        int x = 0;
        for (; x + 4 <= a.out_width; x += 4) {
            const float32x4_t xs = vaddq_f32(vdupq_n_f32(static_cast<float>(x)), lane);
            float32x4_t sx = vaddq_f32(vmulq_n_f32(xs, a.m[0]), vdupq_n_f32(row_x));
            float32x4_t sy = vaddq_f32(vmulq_n_f32(xs, a.m[3]), vdupq_n_f32(row_y));
            sx = vminq_f32(vmaxq_f32(sx, lo), hi_x);
            sy = vminq_f32(vmaxq_f32(sy, lo), hi_y);
            const int32x4_t x0v = vsubq_s32(vcvtq_s32_f32(vaddq_f32(sx, shift)), ishift);
            const int32x4_t y0v = vsubq_s32(vcvtq_s32_f32(vaddq_f32(sy, shift)), ishift);
            std::int32_t x0[4], y0[4];
            vst1q_s32(x0, x0v);
            vst1q_s32(y0, y0v);
            bool inside = true;
            for (int i = 0; i < 4; ++i)
                inside = inside && x0[i] >= 0 && y0[i] >= 0 && x0[i] <= w - 2 && y0[i] <= h - 2 &&
                         (y0[i] < h - 2 || x0[i] <= last_row_max_x0);
            if (!inside) {
                for (int i = 0; i < 4; ++i) {
                    const float px = static_cast<float>(x + i);
                    sample_pixel(a, a.m[0] * px + row_x, a.m[3] * px + row_y, values);
                    store_pixel(a, x + i, y, values);
                }
                continue;
            }
            const std::uint8_t* p00[4];
            const std::uint8_t* p01[4];
            const std::uint8_t* p10[4];
            const std::uint8_t* p11[4];
            for (int i = 0; i < 4; ++i) {
                p00[i] = a.src + y0[i] * a.src_stride + static_cast<std::ptrdiff_t>(x0[i]) * cn;
                p01[i] = p00[i] + cn;
                p10[i] = p00[i] + a.src_stride;
                p11[i] = p10[i] + cn;
            }
            const uint32x4_t g00 = load4(p00), g01 = load4(p01), g10 = load4(p10), g11 = load4(p11);
            const float32x4_t fx = vsubq_f32(sx, vcvtq_f32_s32(x0v));
            const float32x4_t fy = vsubq_f32(sy, vcvtq_f32_s32(y0v));
            float32x4_t v[3];
            for (int c = 0; c < cn; ++c) {
                const float32x4_t top = lerp(channel(g00, c), channel(g01, c), fx);
                const float32x4_t bottom = lerp(channel(g10, c), channel(g11, c), fx);
                v[c] = lerp(top, bottom, fy);
            }
            if (a.planes) {
                for (int c = 0; c < a.out_channels; ++c) {
                    const float32x4_t n = vmulq_n_f32(vsubq_f32(v[a.channel_map[c]], vdupq_n_f32(a.mean[c])), a.scale[c]);
                    vst1q_f32(a.planes[c] + static_cast<std::ptrdiff_t>(y) * a.out_width + x, n);
                }
            } else {
                std::uint32_t q[3][4];
                for (int c = 0; c < a.out_channels; ++c) {
                    const float32x4_t r = vminq_f32(vmaxq_f32(vaddq_f32(v[a.channel_map[c]], vdupq_n_f32(0.5f)),
                                                              vdupq_n_f32(0.f)),
                                                    vdupq_n_f32(255.f));
                    vst1q_u32(q[c], vcvtq_u32_f32(r));
                }
                std::uint8_t* out = a.interleaved + (static_cast<std::ptrdiff_t>(y) * a.out_width + x) * a.out_channels;
                for (int i = 0; i < 4; ++i)
                    for (int c = 0; c < a.out_channels; ++c) *out++ = static_cast<std::uint8_t>(q[c][i]);
            }
        }
        for (; x < a.out_width; ++x) {
            const float px = static_cast<float>(x);
            sample_pixel(a, a.m[0] * px + row_x, a.m[3] * px + row_y, values);
            store_pixel(a, x, y, values);
        }
    }
}

}  // namespace kernels
}  // namespace fastface
