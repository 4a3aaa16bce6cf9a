// Internal kernel interface: one implementation per ISA, each checked against the scalar one.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace fastface {
namespace kernels {

// A resolved warp: everything validated, matrix in float, output described per channel.
struct WarpArgs {
    const std::uint8_t* src;
    int src_width;
    int src_height;
    std::ptrdiff_t src_stride;
    int src_channels;          // 1 or 3
    float m[6];                // output (x, y) -> source (x, y)
    int out_width;
    int out_height;
    float border;
    int out_channels;          // 1 or 3
    int channel_map[3];        // output channel c samples source channel channel_map[c]
    float mean[3];
    float scale[3];
    float* const* planes;      // planar float output, or null
    std::uint8_t* interleaved; // interleaved uint8 output (out_channels per pixel), or null
};

// Source coordinates are clamped to this margin outside the image: every neighbour there is
// border, and the clamp keeps float -> int conversion in range for absurd matrices.
constexpr float kCoordMargin = 2.0f;

// Bilinear sample of source channel values at (sx, sy), per-pixel constant border.
// Shared by every ISA for the pixels its vector path cannot take.
inline void sample_pixel(const WarpArgs& a, float sx, float sy, float* values) {
    sx = std::fmin(std::fmax(sx, -kCoordMargin), static_cast<float>(a.src_width) + kCoordMargin);
    sy = std::fmin(std::fmax(sy, -kCoordMargin), static_cast<float>(a.src_height) + kCoordMargin);
    const float fx0 = std::floor(sx);
    const float fy0 = std::floor(sy);
    const int x0 = static_cast<int>(fx0);
    const int y0 = static_cast<int>(fy0);
    const float fx = sx - fx0;
    const float fy = sy - fy0;
    const int cn = a.src_channels;
    const std::uint8_t* px[4] = {nullptr, nullptr, nullptr, nullptr};
    for (int j = 0; j < 4; ++j) {
        const int x = x0 + (j & 1);
        const int y = y0 + (j >> 1);
        if (x >= 0 && y >= 0 && x < a.src_width && y < a.src_height)
            px[j] = a.src + y * a.src_stride + static_cast<std::ptrdiff_t>(x) * cn;
    }
    for (int c = 0; c < cn; ++c) {
        const float v00 = px[0] ? px[0][c] : a.border;
        const float v01 = px[1] ? px[1][c] : a.border;
        const float v10 = px[2] ? px[2][c] : a.border;
        const float v11 = px[3] ? px[3][c] : a.border;
        const float top = v00 + fx * (v01 - v00);
        const float bottom = v10 + fx * (v11 - v10);
        values[c] = top + fy * (bottom - top);
    }
}

// Writes one output pixel from sampled source channel values.
inline void store_pixel(const WarpArgs& a, int x, int y, const float* values) {
    if (a.planes) {
        for (int c = 0; c < a.out_channels; ++c)
            a.planes[c][static_cast<std::ptrdiff_t>(y) * a.out_width + x] =
                (values[a.channel_map[c]] - a.mean[c]) * a.scale[c];
    } else {
        std::uint8_t* out = a.interleaved + (static_cast<std::ptrdiff_t>(y) * a.out_width + x) * a.out_channels;
        for (int c = 0; c < a.out_channels; ++c) {
            const float v = values[a.channel_map[c]] + 0.5f;
            out[c] = static_cast<std::uint8_t>(v <= 0.f ? 0.f : (v >= 255.f ? 255.f : v));
        }
    }
}

// The vector warps read kWarpLoadBytes at each pixel's top-left neighbour and at the one below
// it: both horizontal neighbours in one load.
constexpr int kWarpLoadBytes = 8;

// Whether every output pixel of a row (source points m[0] * x + row_x, m[3] * x + row_y, as
// the scalar reference computes them) has its four neighbours inside the image and the bottom
// two above the last source row, so that no load reaches past the end of the buffer (given a
// stride that covers what a load reads past the right neighbour). The points move
// monotonically along a row, so its two ends decide.
inline bool warp_row_interior(const WarpArgs& a, float row_x, float row_y) {
    if (a.src_stride < kWarpLoadBytes - 2 * a.src_channels) return false;
    const float last = static_cast<float>(a.out_width - 1);
    const float x_end = static_cast<float>(a.src_width - 1), y_end = static_cast<float>(a.src_height - 2);
    for (int end = 0; end < 2; ++end) {
        const float x = end ? last : 0.f;
        const float sx = a.m[0] * x + row_x, sy = a.m[3] * x + row_y;
        if (!(sx >= 0.f && sx < x_end && sy >= 0.f && sy < y_end)) return false;
    }
    return true;
}

// The output kinds the vector warps specialise for: planar float, interleaved uint8 with 1 or 3
// channels.
enum class WarpOut { Planar, Gray, Color };

// Calls body(channels, output) with std::integral_constant values for the source's channel
// count (1 or 3) and the output kind of `a`, so each ISA instantiates its row loop once per case.
template <typename Body>
void dispatch_warp(const WarpArgs& a, Body body) {
    using One = std::integral_constant<int, 1>;
    using Three = std::integral_constant<int, 3>;
    auto by_output = [&](auto channels) {
        if (a.planes)
            body(channels, std::integral_constant<WarpOut, WarpOut::Planar>{});
        else if (a.out_channels == 1)
            body(channels, std::integral_constant<WarpOut, WarpOut::Gray>{});
        else
            body(channels, std::integral_constant<WarpOut, WarpOut::Color>{});
    };
    if (a.src_channels == 1)
        by_output(One{});
    else
        by_output(Three{});
}

// Warps output rows [row_begin, row_end).
void warp_rows_scalar(const WarpArgs& a, int row_begin, int row_end);
void warp_rows_sse2(const WarpArgs& a, int row_begin, int row_end);
void warp_rows_avx2(const WarpArgs& a, int row_begin, int row_end);
void warp_rows_neon(const WarpArgs& a, int row_begin, int row_end);

// Dot product of two d-vectors.
float dot_scalar(const float* a, const float* b, std::size_t d);
float dot_sse2(const float* a, const float* b, std::size_t d);
float dot_avx2(const float* a, const float* b, std::size_t d);
float dot_neon(const float* a, const float* b, std::size_t d);

// Dot product of a and b plus b's squared norm, in one pass over b (search's inner loop).
float dot_norm_scalar(const float* a, const float* b, std::size_t d, float* b_squared);
float dot_norm_sse2(const float* a, const float* b, std::size_t d, float* b_squared);
float dot_norm_avx2(const float* a, const float* b, std::size_t d, float* b_squared);
float dot_norm_neon(const float* a, const float* b, std::size_t d, float* b_squared);

// A float query against a row stored in IEEE binary16 (gallery rows kept in float16): converted
// in registers, accumulated in float. F16C needs AVX2 + FMA + F16C; the NEON one converts with
// vcvt where the target has it (aarch64, armv7 with an fp16 format) and is the scalar kernel
// elsewhere.
float dot_f16_scalar(const float* q, const std::uint16_t* row, std::size_t d);
float dot_f16_f16c(const float* q, const std::uint16_t* row, std::size_t d);
float dot_f16_neon(const float* q, const std::uint16_t* row, std::size_t d);

// A float query against an int8 row: sum q[i] * row[i], before the row's scale.
float dot_i8_scalar(const float* q, const std::int8_t* row, std::size_t d);
float dot_i8_avx2(const float* q, const std::int8_t* row, std::size_t d);
float dot_i8_neon(const float* q, const std::int8_t* row, std::size_t d);

// IEEE binary16 <-> float, exact (half -> float) and round-to-nearest-even (float -> half),
// subnormals, infinities and NaN included: the reference the vector conversions must match.
float half_to_float(std::uint16_t h);
std::uint16_t float_to_half(float f);

}  // namespace kernels
}  // namespace fastface
