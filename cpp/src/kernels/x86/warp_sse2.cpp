// SSE2 warp: four output pixels per step. SSE2 has no gather, so neighbours are fetched with
// scalar 4-byte loads and all arithmetic (coordinates, weights, blend, normalize) is vector.
#include <emmintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/kernels.h"

namespace fastface {
namespace kernels {

namespace {

inline __m128 channel(__m128i pixels, int c) {
    const __m128i shifted = _mm_srl_epi32(pixels, _mm_cvtsi32_si128(8 * c));
    return _mm_cvtepi32_ps(_mm_and_si128(shifted, _mm_set1_epi32(0xff)));
}

inline __m128 lerp(__m128 a, __m128 b, __m128 t) { return _mm_add_ps(a, _mm_mul_ps(t, _mm_sub_ps(b, a))); }

inline __m128i load4(const std::uint8_t* const* p) {
    alignas(16) std::int32_t v[4];
    for (int i = 0; i < 4; ++i) std::memcpy(&v[i], p[i], 4);
    return _mm_load_si128(reinterpret_cast<const __m128i*>(v));
}

}  // namespace

void warp_rows_sse2(const WarpArgs& a, int row_begin, int row_end) {
    const int w = a.src_width, h = a.src_height, cn = a.src_channels;
    if (w < 2 || h < 2) {
        warp_rows_scalar(a, row_begin, row_end);
        return;
    }
    const int last_row_max_x0 = (w * cn - 4) / cn - 1;  // 4-byte reads must end inside the last row
    const __m128 lane = _mm_setr_ps(0.f, 1.f, 2.f, 3.f);
    const __m128 m0 = _mm_set1_ps(a.m[0]), m3 = _mm_set1_ps(a.m[3]);
    const __m128 lo = _mm_set1_ps(-kCoordMargin);
    const __m128 hi_x = _mm_set1_ps(static_cast<float>(w) + kCoordMargin);
    const __m128 hi_y = _mm_set1_ps(static_cast<float>(h) + kCoordMargin);
    // Coordinates are >= -kCoordMargin, so truncation after this shift is floor (SSE2 has no floor).
    const __m128 shift = _mm_set1_ps(4.f);
    const __m128i ishift = _mm_set1_epi32(4);
    float values[3];

    for (int y = row_begin; y < row_end; ++y) {
        const float row_x = a.m[1] * static_cast<float>(y) + a.m[2];
        const float row_y = a.m[4] * static_cast<float>(y) + a.m[5];
        int x = 0;
        for (; x + 4 <= a.out_width; x += 4) {
            const __m128 xs = _mm_add_ps(_mm_set1_ps(static_cast<float>(x)), lane);
            __m128 sx = _mm_add_ps(_mm_mul_ps(m0, xs), _mm_set1_ps(row_x));
            __m128 sy = _mm_add_ps(_mm_mul_ps(m3, xs), _mm_set1_ps(row_y));
            sx = _mm_min_ps(_mm_max_ps(sx, lo), hi_x);
            sy = _mm_min_ps(_mm_max_ps(sy, lo), hi_y);
            const __m128i x0v = _mm_sub_epi32(_mm_cvttps_epi32(_mm_add_ps(sx, shift)), ishift);
            const __m128i y0v = _mm_sub_epi32(_mm_cvttps_epi32(_mm_add_ps(sy, shift)), ishift);
            alignas(16) std::int32_t x0[4], y0[4];
            _mm_store_si128(reinterpret_cast<__m128i*>(x0), x0v);
            _mm_store_si128(reinterpret_cast<__m128i*>(y0), y0v);
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
            const std::uint8_t* p10[4];
            const std::uint8_t* p01[4];
            const std::uint8_t* p11[4];
            for (int i = 0; i < 4; ++i) {
                p00[i] = a.src + y0[i] * a.src_stride + static_cast<std::ptrdiff_t>(x0[i]) * cn;
                p01[i] = p00[i] + cn;
                p10[i] = p00[i] + a.src_stride;
                p11[i] = p10[i] + cn;
            }
            const __m128i g00 = load4(p00), g01 = load4(p01), g10 = load4(p10), g11 = load4(p11);
            const __m128 fx = _mm_sub_ps(sx, _mm_cvtepi32_ps(x0v)), fy = _mm_sub_ps(sy, _mm_cvtepi32_ps(y0v));
            __m128 v[3];
            for (int c = 0; c < cn; ++c) {
                const __m128 top = lerp(channel(g00, c), channel(g01, c), fx);
                const __m128 bottom = lerp(channel(g10, c), channel(g11, c), fx);
                v[c] = lerp(top, bottom, fy);
            }
            if (a.planes) {
                for (int c = 0; c < a.out_channels; ++c) {
                    const __m128 n = _mm_mul_ps(_mm_sub_ps(v[a.channel_map[c]], _mm_set1_ps(a.mean[c])),
                                                _mm_set1_ps(a.scale[c]));
                    _mm_storeu_ps(a.planes[c] + static_cast<std::ptrdiff_t>(y) * a.out_width + x, n);
                }
            } else {
                alignas(16) std::int32_t q[3][4];
                for (int c = 0; c < a.out_channels; ++c) {
                    const __m128 r = _mm_min_ps(_mm_max_ps(_mm_add_ps(v[a.channel_map[c]], _mm_set1_ps(0.5f)),
                                                           _mm_setzero_ps()),
                                                _mm_set1_ps(255.f));
                    _mm_store_si128(reinterpret_cast<__m128i*>(q[c]), _mm_cvttps_epi32(r));
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
