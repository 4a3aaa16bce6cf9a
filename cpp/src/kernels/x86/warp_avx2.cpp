// AVX2 warp: eight output pixels per block, each row in chunks of up to 16 blocks, two passes a
// chunk. The first pass computes every pixel's source offset and fractions (with the scalar
// reference's exact coordinate arithmetic); the second loads each pixel's two horizontal
// neighbours with one 8-byte read per source row, transposes dwords so each neighbour of eight
// pixels shares a vector, picks the source channel of each output channel with a byte shuffle,
// blends with weights shared by the channels, and writes planar float or packs interleaved uint8
// in registers. Splitting the passes takes the loads off the coordinate dependency chain, so many
// blocks' loads are in flight at once.
#include <immintrin.h>

#include <cstdint>

#include "kernels/kernels.h"

namespace fastface {
namespace kernels {

namespace {

using Out = WarpOut;

constexpr int kChunkBlocks = 16;

// Shuffle mask taking byte `b` of every 32-bit lane to the bottom of that lane, zeroing the rest.
inline __m256i picker(int b) {
    return _mm256_add_epi32(
        _mm256_setr_epi32(static_cast<int>(0x80808000u), static_cast<int>(0x80808004u), static_cast<int>(0x80808008u),
                          static_cast<int>(0x8080800Cu), static_cast<int>(0x80808000u), static_cast<int>(0x80808004u),
                          static_cast<int>(0x80808008u), static_cast<int>(0x8080800Cu)),
        _mm256_set1_epi32(b));
}

inline __m256 picked(__m256i d, __m256i pick) { return _mm256_cvtepi32_ps(_mm256_shuffle_epi8(d, pick)); }

struct Weights {
    __m256 w00, w01, w10, w11;
};

inline Weights weights(__m256 fx, __m256 fy) {
    const __m256 w11 = _mm256_mul_ps(fx, fy);
    const __m256 w10 = _mm256_sub_ps(fy, w11);
    return {_mm256_sub_ps(_mm256_sub_ps(_mm256_set1_ps(1.f), fx), w10), _mm256_sub_ps(fx, w11), w10, w11};
}

inline __m256 blend(const Weights& w, __m256 v00, __m256 v01, __m256 v10, __m256 v11) {
    __m256 v = _mm256_mul_ps(w.w00, v00);
    v = _mm256_fmadd_ps(w.w01, v01, v);
    v = _mm256_fmadd_ps(w.w10, v10, v);
    return _mm256_fmadd_ps(w.w11, v11, v);
}

// 8 bytes at p + i, then 8 at p + j.
inline __m128i load_pair(const std::uint8_t* p, int i, int j) {
    return _mm_castpd_si128(_mm_loadh_pd(_mm_castsi128_pd(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + i))),
                                         reinterpret_cast<const double*>(p + j)));
}

// Loads at pixels (0, 1 | 4, 5) then (2, 3 | 6, 7) of one source row. Returns, pixels in order,
// the 4 bytes from each left neighbour and, for colour, from each right one (for gray its byte
// follows the left one's).
template <int CN>
inline void load_row(const std::uint8_t* row, const int* o, __m256i& left, __m256i& right) {
    const auto lanes = [row, o](int i, int j) {
        return _mm256_inserti128_si256(_mm256_castsi128_si256(load_pair(row, o[i], o[i + 1])),
                                       load_pair(row, o[j], o[j + 1]), 1);
    };
    const __m256i a = lanes(0, 4), b = lanes(2, 6);
    const auto low_dwords = [](__m256i x, __m256i y) {
        return _mm256_castps_si256(_mm256_shuffle_ps(_mm256_castsi256_ps(x), _mm256_castsi256_ps(y), 0x88));
    };
    left = low_dwords(a, b);
    right = CN == 1 ? left : low_dwords(_mm256_srli_epi64(a, 8 * CN), _mm256_srli_epi64(b, 8 * CN));
}

// Rounds like store_pixel (values are within [0, 255] up to float error; packing saturates).
inline __m256i round_u8(__m256 v) { return _mm256_cvttps_epi32(_mm256_add_ps(v, _mm256_set1_ps(0.5f))); }

// Output parameters, copied out of WarpArgs so the compiler knows stores cannot change them.
struct Dest {
    float* planes[3];
    std::uint8_t* interleaved;
    int width, channels;
    __m256i pick[3];            // picker() of output channel c's source channel
    __m256 scale[3], shift[3];  // (v - mean) * scale as v * scale - shift, one fused op

    explicit Dest(const WarpArgs& a) : interleaved(a.interleaved), width(a.out_width), channels(a.out_channels) {
        for (int c = 0; c < 3; ++c) {
            planes[c] = a.planes && c < a.out_channels ? a.planes[c] : nullptr;
            pick[c] = picker(a.channel_map[c]);
            scale[c] = _mm256_set1_ps(a.scale[c]);
            shift[c] = _mm256_set1_ps(a.mean[c] * a.scale[c]);
        }
    }
};

// Output channel values of eight pixels whose top-left neighbours sit at byte offsets o[0..7].
template <int CN, Out OUT>
inline void sample8(const std::uint8_t* src, std::ptrdiff_t stride, const int* o, const Weights& w, const Dest& d,
                    __m256* v) {
    __m256i tl, tr, bl, br;
    load_row<CN>(src, o, tl, tr);
    load_row<CN>(src + stride, o, bl, br);
    if (CN == 1) {  // every output channel is the gray value
        const __m256i l = picker(0), r = picker(1);
        v[0] = v[1] = v[2] = blend(w, picked(tl, l), picked(tl, r), picked(bl, l), picked(bl, r));
        return;
    }
    const int channels = OUT == Out::Color ? 3 : OUT == Out::Gray ? 1 : d.channels;
    for (int c = 0; c < channels; ++c) {
        const __m256i p = d.pick[c];
        v[c] = blend(w, picked(tl, p), picked(tr, p), picked(bl, p), picked(br, p));
    }
}

template <Out OUT>
inline void store8(const Dest& d, int x, int y, const __m256* v) {
    const std::ptrdiff_t at = static_cast<std::ptrdiff_t>(y) * d.width + x;
    if (OUT == Out::Planar) {
        for (int c = 0; c < d.channels; ++c)
            _mm256_storeu_ps(d.planes[c] + at, _mm256_fmsub_ps(v[c], d.scale[c], d.shift[c]));
    } else if (OUT == Out::Gray) {
        const __m256i r = _mm256_packus_epi32(round_u8(v[0]), _mm256_setzero_si256());
        const __m256i b = _mm256_packus_epi16(r, r);  // per 128-bit lane: its 4 pixels first
        _mm_storel_epi64(reinterpret_cast<__m128i*>(d.interleaved + at),
                         _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1)));
    } else {
        const __m256i r0 = round_u8(v[0]), r1 = round_u8(v[1]), r2 = round_u8(v[2]);
        // Per 128-bit lane (pixels 0-3, then 4-7): bytes c0 x4, c1 x4, c2 x4; interleave to
        // c0 c1 c2 per pixel, then close the 4-byte gap between the lanes.
        const __m256i grouped = _mm256_packus_epi16(_mm256_packus_epi32(r0, r1), _mm256_packus_epi32(r2, r2));
        const __m256i interleave = _mm256_setr_epi8(0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, -1, -1, -1, -1,
                                                    0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, -1, -1, -1, -1);
        const __m256i packed = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(grouped, interleave),
                                                           _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7));
        std::uint8_t* out = d.interleaved + at * 3;
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm256_castsi256_si128(packed));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 16), _mm256_extracti128_si256(packed, 1));
    }
}

// Per-call constants for the coordinate pass.
template <int CN>
struct Geometry {
    __m256 lane, m0, m3, lo, hi_x, hi_y;
    __m256i stride, x0_max, off_max;

    Geometry(const WarpArgs& a, std::int64_t limit)
        : lane(_mm256_setr_ps(0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f)),
          m0(_mm256_set1_ps(a.m[0])),
          m3(_mm256_set1_ps(a.m[3])),
          lo(_mm256_set1_ps(-kCoordMargin)),
          hi_x(_mm256_set1_ps(static_cast<float>(a.src_width) + kCoordMargin)),
          hi_y(_mm256_set1_ps(static_cast<float>(a.src_height) + kCoordMargin)),
          stride(_mm256_set1_epi32(static_cast<int>(a.src_stride))),
          x0_max(_mm256_set1_epi32(a.src_width - 2)),
          off_max(_mm256_set1_epi32(static_cast<int>(limit))) {}

    // Source points of pixels x..x+7, computed exactly as the scalar reference does: only the
    // blend differs. Clamping is needed only where a point may leave the image.
    void points(int x, __m256 row_x, __m256 row_y, bool clamp, __m256& sx, __m256& sy) const {
        const __m256 xs = _mm256_add_ps(_mm256_set1_ps(static_cast<float>(x)), lane);
        sx = _mm256_add_ps(_mm256_mul_ps(m0, xs), row_x);
        sy = _mm256_add_ps(_mm256_mul_ps(m3, xs), row_y);
        if (clamp) {
            sx = _mm256_min_ps(_mm256_max_ps(sx, lo), hi_x);
            sy = _mm256_min_ps(_mm256_max_ps(sy, lo), hi_y);
        }
    }

    __m256i offsets(__m256i x0, __m256i y0) const {
        return _mm256_add_epi32(_mm256_mullo_epi32(y0, stride),
                                CN == 1 ? x0 : _mm256_add_epi32(x0, _mm256_add_epi32(x0, x0)));
    }

    // Unsigned range checks. x0 in [0, w - 2] and off <= limit imply y0 in [0, h - 2] because
    // stride >= w * CN, and every load then stays inside the image buffer.
    __m256i inside(__m256i x0, __m256i off) const {
        return _mm256_and_si256(_mm256_cmpeq_epi32(_mm256_min_epu32(x0, x0_max), x0),
                                _mm256_cmpeq_epi32(_mm256_min_epu32(off, off_max), off));
    }
};

// A block whose pixels are not all inside: pixels whose four neighbours are all outside are
// exactly border, those straddling the edge (or too near the buffer's end) are redone in scalar
// after the vector store.
template <int CN, Out OUT>
void edge_block(const WarpArgs& a, const Dest& dest, const Geometry<CN>& g, int x, int y) {
    const float row_x = a.m[1] * static_cast<float>(y) + a.m[2];
    const float row_y = a.m[4] * static_cast<float>(y) + a.m[5];
    __m256 sx, sy;
    g.points(x, _mm256_set1_ps(row_x), _mm256_set1_ps(row_y), true, sx, sy);
    const __m256 fx0 = _mm256_floor_ps(sx), fy0 = _mm256_floor_ps(sy);
    const __m256i x0 = _mm256_cvttps_epi32(fx0), y0 = _mm256_cvttps_epi32(fy0);
    const __m256i off = g.offsets(x0, y0), inside = g.inside(x0, off);
    // All outside: x0 + 1 or y0 + 1 (unsigned) past w or h.
    const __m256i one = _mm256_set1_epi32(1);
    const __m256i x1 = _mm256_add_epi32(x0, one), y1 = _mm256_add_epi32(y0, one);
    const __m256i w1 = _mm256_set1_epi32(a.src_width + 1), h1 = _mm256_set1_epi32(a.src_height + 1);
    const __m256 outside = _mm256_castsi256_ps(_mm256_or_si256(_mm256_cmpeq_epi32(_mm256_max_epu32(x1, w1), x1),
                                                               _mm256_cmpeq_epi32(_mm256_max_epu32(y1, h1), y1)));
    alignas(32) int o[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(o), _mm256_and_si256(off, inside));  // offset 0 is safe
    __m256 v[3];
    sample8<CN, OUT>(a.src, a.src_stride, o, weights(_mm256_sub_ps(sx, fx0), _mm256_sub_ps(sy, fy0)), dest, v);
    for (int c = 0; c < dest.channels; ++c) v[c] = _mm256_blendv_ps(v[c], _mm256_set1_ps(a.border), outside);
    store8<OUT>(dest, x, y, v);
    const int done = _mm256_movemask_ps(_mm256_castsi256_ps(inside)) | _mm256_movemask_ps(outside);
    float values[3];
    for (int i = 0; i < 8; ++i) {
        if (done >> i & 1) continue;
        const float px = static_cast<float>(x + i);
        sample_pixel(a, a.m[0] * px + row_x, a.m[3] * px + row_y, values);
        store_pixel(a, x + i, y, values);
    }
}

template <int CN, Out OUT>
void warp_rows(const WarpArgs& a, int row_begin, int row_end) {
    const int w = a.src_width, h = a.src_height, out_width = a.out_width;
    const std::ptrdiff_t stride = a.src_stride;
    // Loads may start at any offset <= limit; offsets are 32-bit with coordinates up to
    // kCoordMargin outside the image. Images too small or too large for that, and rows
    // narrower than a block, go scalar.
    const std::int64_t limit = (h - 1) * static_cast<std::int64_t>(stride) + w * CN - stride - kWarpLoadBytes;
    if (w < 2 || h < 2 || limit < 0 || (h + 3) * static_cast<std::int64_t>(stride) + 2 * CN >= INT32_MAX ||
        out_width < 8) {
        warp_rows_scalar(a, row_begin, row_end);
        return;
    }
    const Geometry<CN> g(a, limit);
    const Dest dest(a);
    const int blocks = (out_width + 7) / 8;
    // The last block overlaps the one before when the width is not a multiple of 8; the shared
    // pixels come out the same.
    auto block_x = [&](int b) { return b * 8 + 8 <= out_width ? b * 8 : out_width - 8; };
    alignas(32) int off[kChunkBlocks * 8];
    alignas(32) float fx[kChunkBlocks * 8], fy[kChunkBlocks * 8];

    for (int y = row_begin; y < row_end; ++y) {
        const float row_x = a.m[1] * static_cast<float>(y) + a.m[2];
        const float row_y = a.m[4] * static_cast<float>(y) + a.m[5];
        const bool interior = warp_row_interior(a, row_x, row_y);  // then no per-block checks
        const __m256 row_xv = _mm256_set1_ps(row_x), row_yv = _mm256_set1_ps(row_y);
        for (int first = 0; first < blocks; first += kChunkBlocks) {
            const int n = blocks - first < kChunkBlocks ? blocks - first : kChunkBlocks;
            unsigned edges = 0;
            for (int b = 0; b < n; ++b) {
                __m256 sx, sy;
                g.points(block_x(first + b), row_xv, row_yv, !interior, sx, sy);
                const __m256 fx0 = _mm256_floor_ps(sx), fy0 = _mm256_floor_ps(sy);
                const __m256i x0 = _mm256_cvttps_epi32(fx0), y0 = _mm256_cvttps_epi32(fy0);
                const __m256i o = g.offsets(x0, y0);
                _mm256_store_si256(reinterpret_cast<__m256i*>(off + 8 * b), o);
                _mm256_store_ps(fx + 8 * b, _mm256_sub_ps(sx, fx0));
                _mm256_store_ps(fy + 8 * b, _mm256_sub_ps(sy, fy0));
                if (!interior && _mm256_movemask_ps(_mm256_castsi256_ps(g.inside(x0, o))) != 0xff) edges |= 1u << b;
            }
            for (int b = 0; b < n; ++b) {
                const int x = block_x(first + b);
                if (edges >> b & 1) {
                    edge_block<CN, OUT>(a, dest, g, x, y);
                    continue;
                }
                __m256 v[3];
                const Weights wt = weights(_mm256_load_ps(fx + 8 * b), _mm256_load_ps(fy + 8 * b));
                sample8<CN, OUT>(a.src, stride, off + 8 * b, wt, dest, v);
                store8<OUT>(dest, x, y, v);
            }
        }
    }
}

}  // namespace

void warp_rows_avx2(const WarpArgs& a, int row_begin, int row_end) {
    dispatch_warp(a, [&](auto channels, auto output) { warp_rows<decltype(channels)::value, decltype(output)::value>(a, row_begin, row_end); });
}

}  // namespace kernels
}  // namespace fastface
