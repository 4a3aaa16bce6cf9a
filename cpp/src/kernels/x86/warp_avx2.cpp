// AVX2 warp: eight output pixels per step; the four bilinear neighbours of all eight come in
// with one 32-bit gather each, so a pixel costs a handful of vector ops whatever its channels.
#include <immintrin.h>

#include <cstdint>

#include "kernels/kernels.h"

namespace fastface {
namespace kernels {

namespace {

inline __m256 channel(__m256i gathered, int c) {
    const __m256i shifted = _mm256_srl_epi32(gathered, _mm_cvtsi32_si128(8 * c));
    return _mm256_cvtepi32_ps(_mm256_and_si256(shifted, _mm256_set1_epi32(0xff)));
}

inline __m256 lerp(__m256 a, __m256 b, __m256 t) { return _mm256_add_ps(a, _mm256_mul_ps(t, _mm256_sub_ps(b, a))); }

}  // namespace

void warp_rows_avx2(const WarpArgs& a, int row_begin, int row_end) {
    const int w = a.src_width, h = a.src_height, cn = a.src_channels;
    // Gathers take 32-bit offsets and read 4 bytes per pixel; small or huge images go scalar.
    if (w < 2 || h < 2 || static_cast<std::int64_t>(h) * a.src_stride >= INT32_MAX) {
        warp_rows_scalar(a, row_begin, row_end);
        return;
    }
    // On the last source row a 4-byte read at pixel x0 + 1 must end inside the row.
    const int last_row_max_x0 = (w * cn - 4) / cn - 1;
    const __m256 lane = _mm256_setr_ps(0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f);
    const __m256 m0 = _mm256_set1_ps(a.m[0]), m3 = _mm256_set1_ps(a.m[3]);
    const __m256 lo = _mm256_set1_ps(-kCoordMargin);
    const __m256 hi_x = _mm256_set1_ps(static_cast<float>(w) + kCoordMargin);
    const __m256 hi_y = _mm256_set1_ps(static_cast<float>(h) + kCoordMargin);
    const __m256i minus_one = _mm256_set1_epi32(-1);
    const __m256i x0_max = _mm256_set1_epi32(w - 2), y0_max = _mm256_set1_epi32(h - 2);
    const __m256i last_x0_max = _mm256_set1_epi32(last_row_max_x0);
    const __m256i stride = _mm256_set1_epi32(static_cast<int>(a.src_stride));
    const __m256i channels = _mm256_set1_epi32(cn);
    const int* base = reinterpret_cast<const int*>(a.src);
    float values[3];

    for (int y = row_begin; y < row_end; ++y) {
        const float row_x = a.m[1] * static_cast<float>(y) + a.m[2];
        const float row_y = a.m[4] * static_cast<float>(y) + a.m[5];
        int x = 0;
        for (; x + 8 <= a.out_width; x += 8) {
            const __m256 xs = _mm256_add_ps(_mm256_set1_ps(static_cast<float>(x)), lane);
            __m256 sx = _mm256_add_ps(_mm256_mul_ps(m0, xs), _mm256_set1_ps(row_x));
            __m256 sy = _mm256_add_ps(_mm256_mul_ps(m3, xs), _mm256_set1_ps(row_y));
            sx = _mm256_min_ps(_mm256_max_ps(sx, lo), hi_x);
            sy = _mm256_min_ps(_mm256_max_ps(sy, lo), hi_y);
            const __m256 fx0 = _mm256_floor_ps(sx), fy0 = _mm256_floor_ps(sy);
            const __m256i x0 = _mm256_cvttps_epi32(fx0), y0 = _mm256_cvttps_epi32(fy0);
            const __m256i inside = _mm256_and_si256(
                _mm256_and_si256(_mm256_cmpgt_epi32(x0, minus_one), _mm256_cmpgt_epi32(y0, minus_one)),
                _mm256_andnot_si256(
                    _mm256_or_si256(_mm256_cmpgt_epi32(x0, x0_max), _mm256_cmpgt_epi32(y0, y0_max)),
                    _mm256_or_si256(_mm256_cmpgt_epi32(y0_max, y0),
                                    _mm256_xor_si256(_mm256_cmpgt_epi32(x0, last_x0_max), minus_one))));
            if (_mm256_movemask_epi8(inside) != -1) {  // some neighbour is border: scalar
                for (int i = 0; i < 8; ++i) {
                    const float px = static_cast<float>(x + i);
                    sample_pixel(a, a.m[0] * px + row_x, a.m[3] * px + row_y, values);
                    store_pixel(a, x + i, y, values);
                }
                continue;
            }
            const __m256 fx = _mm256_sub_ps(sx, fx0), fy = _mm256_sub_ps(sy, fy0);
            const __m256i off00 = _mm256_add_epi32(_mm256_mullo_epi32(y0, stride), _mm256_mullo_epi32(x0, channels));
            const __m256i off01 = _mm256_add_epi32(off00, channels);
            const __m256i off10 = _mm256_add_epi32(off00, stride);
            const __m256i off11 = _mm256_add_epi32(off10, channels);
            const __m256i g00 = _mm256_i32gather_epi32(base, off00, 1);
            const __m256i g01 = _mm256_i32gather_epi32(base, off01, 1);
            const __m256i g10 = _mm256_i32gather_epi32(base, off10, 1);
            const __m256i g11 = _mm256_i32gather_epi32(base, off11, 1);
            __m256 v[3];
            for (int c = 0; c < cn; ++c) {
                const __m256 top = lerp(channel(g00, c), channel(g01, c), fx);
                const __m256 bottom = lerp(channel(g10, c), channel(g11, c), fx);
                v[c] = lerp(top, bottom, fy);
            }
            if (a.planes) {
                for (int c = 0; c < a.out_channels; ++c) {
                    const __m256 n = _mm256_mul_ps(_mm256_sub_ps(v[a.channel_map[c]], _mm256_set1_ps(a.mean[c])),
                                                   _mm256_set1_ps(a.scale[c]));
                    _mm256_storeu_ps(a.planes[c] + static_cast<std::ptrdiff_t>(y) * a.out_width + x, n);
                }
            } else {
                alignas(32) int q[3][8];
                for (int c = 0; c < a.out_channels; ++c) {
                    const __m256 r = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(v[a.channel_map[c]], _mm256_set1_ps(0.5f)),
                                                                 _mm256_setzero_ps()),
                                                   _mm256_set1_ps(255.f));
                    _mm256_store_si256(reinterpret_cast<__m256i*>(q[c]), _mm256_cvttps_epi32(r));
                }
                std::uint8_t* out = a.interleaved + (static_cast<std::ptrdiff_t>(y) * a.out_width + x) * a.out_channels;
                for (int i = 0; i < 8; ++i)
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
