// SSE2 warp: four output pixels per block, organised like the AVX2 variant (each row in chunks
// of blocks, a coordinate pass then a sampling pass). Each pixel's two horizontal neighbours come
// in with one 8-byte read per source row and a dword transpose puts each neighbour of four pixels
// in one vector; SSE2 has no byte shuffle, so channels are picked with shifts and masks.
#include <emmintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/kernels.h"

namespace fastface {
namespace kernels {

namespace {

using Out = WarpOut;

constexpr int kChunkBlocks = 32;

// Byte `shift` / 8 of every 32-bit lane, zero-extended, as float.
inline __m128 picked(__m128i d, __m128i shift) {
    return _mm_cvtepi32_ps(_mm_and_si128(_mm_srl_epi32(d, shift), _mm_set1_epi32(0xff)));
}

struct Weights {
    __m128 w00, w01, w10, w11;
};

inline Weights weights(__m128 fx, __m128 fy) {
    const __m128 w11 = _mm_mul_ps(fx, fy);
    const __m128 w10 = _mm_sub_ps(fy, w11);
    return {_mm_sub_ps(_mm_sub_ps(_mm_set1_ps(1.f), fx), w10), _mm_sub_ps(fx, w11), w10, w11};
}

inline __m128 blend(const Weights& w, __m128 v00, __m128 v01, __m128 v10, __m128 v11) {
    return _mm_add_ps(_mm_add_ps(_mm_mul_ps(w.w00, v00), _mm_mul_ps(w.w01, v01)),
                      _mm_add_ps(_mm_mul_ps(w.w10, v10), _mm_mul_ps(w.w11, v11)));
}

// Loads at pixels 0, 1 and 2, 3 of one source row. Returns, pixels in order, the 4 bytes from
// each left neighbour and, for colour, from each right one (for gray its byte follows the left
// one's).
template <int CN>
inline void load_row(const std::uint8_t* row, const int* o, __m128i& left, __m128i& right) {
    const auto pair = [row](int i, int j) {
        const __m128i low = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + i));
        return _mm_castpd_si128(_mm_loadh_pd(_mm_castsi128_pd(low), reinterpret_cast<const double*>(row + j)));
    };
    const auto low_dwords = [](__m128i x, __m128i y) {
        return _mm_castps_si128(_mm_shuffle_ps(_mm_castsi128_ps(x), _mm_castsi128_ps(y), 0x88));
    };
    const __m128i a = pair(o[0], o[1]), b = pair(o[2], o[3]);
    left = low_dwords(a, b);
    right = CN == 1 ? left : low_dwords(_mm_srli_epi64(a, 8 * CN), _mm_srli_epi64(b, 8 * CN));
}

// Rounds like store_pixel (values are within [0, 255] up to float error; packing saturates).
inline __m128i round_u8(__m128 v) { return _mm_cvttps_epi32(_mm_add_ps(v, _mm_set1_ps(0.5f))); }

// Output parameters, copied out of WarpArgs so the compiler knows stores cannot change them.
struct Dest {
    float* planes[3];
    std::uint8_t* interleaved;
    int width, channels;
    __m128i shift[3];  // picks output channel c's source channel for picked()
    __m128 mean[3], scale[3];

    explicit Dest(const WarpArgs& a) : interleaved(a.interleaved), width(a.out_width), channels(a.out_channels) {
        for (int c = 0; c < 3; ++c) {
            planes[c] = a.planes && c < a.out_channels ? a.planes[c] : nullptr;
            shift[c] = _mm_cvtsi32_si128(8 * a.channel_map[c]);
            mean[c] = _mm_set1_ps(a.mean[c]);
            scale[c] = _mm_set1_ps(a.scale[c]);
        }
    }
};

// Output channel values of four pixels whose top-left neighbours sit at byte offsets o[0..3].
template <int CN, Out OUT>
inline void sample4(const std::uint8_t* src, std::ptrdiff_t stride, const int* o, const Weights& w, const Dest& d,
                    __m128* v) {
    __m128i tl, tr, bl, br;
    load_row<CN>(src, o, tl, tr);
    load_row<CN>(src + stride, o, bl, br);
    if (CN == 1) {  // every output channel is the gray value
        const __m128i l = _mm_setzero_si128(), r = _mm_cvtsi32_si128(8);
        v[0] = v[1] = v[2] = blend(w, picked(tl, l), picked(tl, r), picked(bl, l), picked(bl, r));
        return;
    }
    const int channels = OUT == Out::Color ? 3 : OUT == Out::Gray ? 1 : d.channels;
    for (int c = 0; c < channels; ++c) {
        const __m128i sh = d.shift[c];
        v[c] = blend(w, picked(tl, sh), picked(tr, sh), picked(bl, sh), picked(br, sh));
    }
}

template <Out OUT>
inline void store4(const Dest& d, int x, int y, const __m128* v) {
    const std::ptrdiff_t at = static_cast<std::ptrdiff_t>(y) * d.width + x;
    if (OUT == Out::Planar) {
        for (int c = 0; c < d.channels; ++c)
            _mm_storeu_ps(d.planes[c] + at, _mm_mul_ps(_mm_sub_ps(v[c], d.mean[c]), d.scale[c]));
    } else if (OUT == Out::Gray) {
        const __m128i r = _mm_packs_epi32(round_u8(v[0]), _mm_setzero_si128());
        const int bytes = _mm_cvtsi128_si32(_mm_packus_epi16(r, r));
        std::memcpy(d.interleaved + at, &bytes, 4);
    } else {
        // One dword per pixel (c0 | c1 << 8 | c2 << 16); close the gap in each qword, then the
        // one between the qwords, leaving the 12 bytes in order.
        const __m128i px = _mm_or_si128(_mm_or_si128(round_u8(v[0]), _mm_slli_epi32(round_u8(v[1]), 8)),
                                        _mm_slli_epi32(round_u8(v[2]), 16));
        const __m128i pairs = _mm_or_si128(_mm_and_si128(px, _mm_set1_epi64x(0xffffff)),
                                           _mm_and_si128(_mm_srli_epi64(px, 8), _mm_set1_epi64x(0xffffff000000)));
        const __m128i packed = _mm_or_si128(_mm_move_epi64(pairs), _mm_slli_si128(_mm_srli_si128(pairs, 8), 6));
        std::uint8_t* out = d.interleaved + at * 3;
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out), packed);
        const int tail = _mm_cvtsi128_si32(_mm_srli_si128(packed, 8));
        std::memcpy(out + 8, &tail, 4);
    }
}

// Per-call constants for the coordinate pass.
template <int CN>
struct Geometry {
    __m128 lane, m0, m3, lo, hi_x, hi_y;
    __m128i stride, x0_end, off_end;

    Geometry(const WarpArgs& a, std::int64_t limit)
        : lane(_mm_setr_ps(0.f, 1.f, 2.f, 3.f)),
          m0(_mm_set1_ps(a.m[0])),
          m3(_mm_set1_ps(a.m[3])),
          lo(_mm_set1_ps(-kCoordMargin)),
          hi_x(_mm_set1_ps(static_cast<float>(a.src_width) + kCoordMargin)),
          hi_y(_mm_set1_ps(static_cast<float>(a.src_height) + kCoordMargin)),
          stride(_mm_set1_epi32(static_cast<int>(a.src_stride))),
          x0_end(_mm_set1_epi32(a.src_width - 1)),
          off_end(_mm_set1_epi32(static_cast<int>(limit + 1))) {}

    // Source points of pixels x..x+3, computed exactly as the scalar reference does: only the
    // blend differs. Clamping is needed only where a point may leave the image.
    void points(int x, __m128 row_x, __m128 row_y, bool clamp, __m128& sx, __m128& sy) const {
        const __m128 xs = _mm_add_ps(_mm_set1_ps(static_cast<float>(x)), lane);
        sx = _mm_add_ps(_mm_mul_ps(m0, xs), row_x);
        sy = _mm_add_ps(_mm_mul_ps(m3, xs), row_y);
        if (clamp) {
            sx = _mm_min_ps(_mm_max_ps(sx, lo), hi_x);
            sy = _mm_min_ps(_mm_max_ps(sy, lo), hi_y);
        }
    }

    // The low 32 bits of y0 * stride are the same signed or unsigned, so pmuludq serves.
    __m128i offsets(__m128i x0, __m128i y0) const {
        const __m128i even = _mm_mul_epu32(y0, stride), odd = _mm_mul_epu32(_mm_srli_epi64(y0, 32), stride);
        const __m128i rows = _mm_unpacklo_epi32(_mm_shuffle_epi32(even, 0x08), _mm_shuffle_epi32(odd, 0x08));
        return _mm_add_epi32(rows, CN == 1 ? x0 : _mm_add_epi32(x0, _mm_add_epi32(x0, x0)));
    }

    // x0 in [0, w - 2] and off in [0, limit] imply y0 in [0, h - 2] because stride >= w * CN,
    // and every load then stays inside the image buffer.
    __m128i inside(__m128i x0, __m128i off) const {
        const __m128i minus_one = _mm_set1_epi32(-1);
        return _mm_and_si128(_mm_and_si128(_mm_cmpgt_epi32(x0, minus_one), _mm_cmplt_epi32(x0, x0_end)),
                             _mm_and_si128(_mm_cmpgt_epi32(off, minus_one), _mm_cmplt_epi32(off, off_end)));
    }
};

// floor(s) as float and int; trunc is floor for s >= 0, otherwise it may be one too high.
inline void floor4(__m128 s, bool non_negative, __m128& f, __m128i& i) {
    i = _mm_cvttps_epi32(s);
    f = _mm_cvtepi32_ps(i);
    if (non_negative) return;
    const __m128 above = _mm_cmplt_ps(s, f);
    f = _mm_sub_ps(f, _mm_and_ps(above, _mm_set1_ps(1.f)));
    i = _mm_add_epi32(i, _mm_castps_si128(above));
}

// A block whose pixels are not all inside: pixels whose four neighbours are all outside are
// exactly border, those straddling the edge (or too near the buffer's end) are redone in scalar
// after the vector store.
template <int CN, Out OUT>
void edge_block(const WarpArgs& a, const Dest& dest, const Geometry<CN>& g, int x, int y) {
    const float row_x = a.m[1] * static_cast<float>(y) + a.m[2];
    const float row_y = a.m[4] * static_cast<float>(y) + a.m[5];
    __m128 sx, sy, fx0, fy0;
    __m128i x0, y0;
    g.points(x, _mm_set1_ps(row_x), _mm_set1_ps(row_y), true, sx, sy);
    floor4(sx, false, fx0, x0);
    floor4(sy, false, fy0, y0);
    const __m128i off = g.offsets(x0, y0), inside = g.inside(x0, off);
    // All outside: x0 or y0 below -1 or past w - 1 or h - 1.
    const __m128i minus_one = _mm_set1_epi32(-1);
    const __m128i w1 = _mm_set1_epi32(a.src_width - 1), h1 = _mm_set1_epi32(a.src_height - 1);
    const __m128i outside_x = _mm_or_si128(_mm_cmpgt_epi32(x0, w1), _mm_cmplt_epi32(x0, minus_one));
    const __m128i outside_y = _mm_or_si128(_mm_cmpgt_epi32(y0, h1), _mm_cmplt_epi32(y0, minus_one));
    const __m128 outside = _mm_castsi128_ps(_mm_or_si128(outside_x, outside_y));
    alignas(16) int o[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(o), _mm_and_si128(off, inside));  // offset 0 is safe
    __m128 v[3];
    sample4<CN, OUT>(a.src, a.src_stride, o, weights(_mm_sub_ps(sx, fx0), _mm_sub_ps(sy, fy0)), dest, v);
    const __m128 border = _mm_and_ps(outside, _mm_set1_ps(a.border));
    for (int c = 0; c < dest.channels; ++c) v[c] = _mm_or_ps(_mm_andnot_ps(outside, v[c]), border);
    store4<OUT>(dest, x, y, v);
    const int done = _mm_movemask_ps(_mm_castsi128_ps(inside)) | _mm_movemask_ps(outside);
    float values[3];
    for (int i = 0; i < 4; ++i) {
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
        out_width < 4) {
        warp_rows_scalar(a, row_begin, row_end);
        return;
    }
    const Geometry<CN> g(a, limit);
    const Dest dest(a);
    const int blocks = (out_width + 3) / 4;
    // The last block overlaps the one before when the width is not a multiple of 4; the shared
    // pixels come out the same.
    auto block_x = [&](int b) { return b * 4 + 4 <= out_width ? b * 4 : out_width - 4; };
    alignas(16) int off[kChunkBlocks * 4];
    alignas(16) float fx[kChunkBlocks * 4], fy[kChunkBlocks * 4];

    for (int y = row_begin; y < row_end; ++y) {
        const float row_x = a.m[1] * static_cast<float>(y) + a.m[2];
        const float row_y = a.m[4] * static_cast<float>(y) + a.m[5];
        const bool interior = warp_row_interior(a, row_x, row_y);  // then no per-block checks
        const __m128 row_xv = _mm_set1_ps(row_x), row_yv = _mm_set1_ps(row_y);
        for (int first = 0; first < blocks; first += kChunkBlocks) {
            const int n = blocks - first < kChunkBlocks ? blocks - first : kChunkBlocks;
            std::uint32_t edges = 0;
            for (int b = 0; b < n; ++b) {
                __m128 sx, sy, fx0, fy0;
                __m128i x0, y0;
                g.points(block_x(first + b), row_xv, row_yv, !interior, sx, sy);
                floor4(sx, interior, fx0, x0);
                floor4(sy, interior, fy0, y0);
                const __m128i o = g.offsets(x0, y0);
                _mm_store_si128(reinterpret_cast<__m128i*>(off + 4 * b), o);
                _mm_store_ps(fx + 4 * b, _mm_sub_ps(sx, fx0));
                _mm_store_ps(fy + 4 * b, _mm_sub_ps(sy, fy0));
                if (!interior && _mm_movemask_ps(_mm_castsi128_ps(g.inside(x0, o))) != 0xf) edges |= 1u << b;
            }
            for (int b = 0; b < n; ++b) {
                const int x = block_x(first + b);
                if (edges >> b & 1) {
                    edge_block<CN, OUT>(a, dest, g, x, y);
                    continue;
                }
                __m128 v[3];
                const Weights wt = weights(_mm_load_ps(fx + 4 * b), _mm_load_ps(fy + 4 * b));
                sample4<CN, OUT>(a.src, stride, off + 4 * b, wt, dest, v);
                store4<OUT>(dest, x, y, v);
            }
        }
    }
}

}  // namespace

void warp_rows_sse2(const WarpArgs& a, int row_begin, int row_end) {
    dispatch_warp(a, [&](auto channels, auto output) { warp_rows<decltype(channels)::value, decltype(output)::value>(a, row_begin, row_end); });
}

}  // namespace kernels
}  // namespace fastface
