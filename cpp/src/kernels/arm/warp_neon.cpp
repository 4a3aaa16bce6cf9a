// NEON warp (aarch64 and armv7): eight output pixels per block, as two vectors of four,
// organised like the x86 variants (each row in chunks of blocks, a coordinate pass then a
// sampling pass). Each pixel's two horizontal neighbours come in with one 8-byte read per source
// row; a table lookup picks one channel of one neighbour of four pixels into a vector, the blend
// uses weights shared by the channels, and vst3 interleaves colour uint8 output.
#include <arm_neon.h>

#include <cstdint>

#include "kernels/kernels.h"

namespace fastface {
namespace kernels {

namespace {

using Out = WarpOut;

constexpr int kChunkBlocks = 16;

inline float32x4_t mla(float32x4_t acc, float32x4_t a, float32x4_t b) {
#if defined(__aarch64__)
    return vfmaq_f32(acc, a, b);
#else
    return vmlaq_f32(acc, a, b);
#endif
}

inline bool all_set(uint32x4_t m) {
#if defined(__aarch64__)
    return vminvq_u32(m) != 0;
#else
    const uint32x2_t both = vand_u32(vget_low_u32(m), vget_high_u32(m));
    return (vget_lane_u32(both, 0) & vget_lane_u32(both, 1)) != 0;
#endif
}

// 8-byte loads at four pixels of one source row: pixels 0, 1, then 2, 3.
struct Row4 {
    uint8x16_t p01, p23;
};

inline Row4 load_row(const std::uint8_t* row, const int* o) {
    return {vcombine_u8(vld1_u8(row + o[0]), vld1_u8(row + o[1])),
            vcombine_u8(vld1_u8(row + o[2]), vld1_u8(row + o[3]))};
}

#if defined(__aarch64__)
using Index = uint8x16_t;  // table lookup indices producing four 32-bit lanes

// Indices taking byte `b` of each of the four loads into the bottom of a 32-bit lane; those
// past the 32-byte table read as zero, which zero-extends.
inline Index picker(int b) {
    static const std::uint8_t base[16] = {0, 240, 240, 240, 8, 240, 240, 240, 16, 240, 240, 240, 24, 240, 240, 240};
    return vaddq_u8(vld1q_u8(base), vdupq_n_u8(static_cast<std::uint8_t>(b)));
}

inline float32x4_t picked(const Row4& r, Index i) {
    const uint8x16x2_t table = {{r.p01, r.p23}};
    return vcvtq_f32_u32(vreinterpretq_u32_u8(vqtbl2q_u8(table, i)));
}
#else
using Index = uint8x8_t;  // table lookup indices producing four bytes, widened afterwards

// Indices taking byte `b` of each of the four loads.
inline Index picker(int b) {
    static const std::uint8_t base[8] = {0, 8, 16, 24, 0, 8, 16, 24};
    return vadd_u8(vld1_u8(base), vdup_n_u8(static_cast<std::uint8_t>(b)));
}

inline float32x4_t picked(const Row4& r, Index i) {
    const uint8x8x4_t table = {{vget_low_u8(r.p01), vget_high_u8(r.p01), vget_low_u8(r.p23), vget_high_u8(r.p23)}};
    return vcvtq_f32_u32(vmovl_u16(vget_low_u16(vmovl_u8(vtbl4_u8(table, i)))));
}
#endif

struct Weights {
    float32x4_t w00, w01, w10, w11;
};

inline Weights weights(float32x4_t fx, float32x4_t fy) {
    const float32x4_t w11 = vmulq_f32(fx, fy);
    const float32x4_t w10 = vsubq_f32(fy, w11);
    return {vsubq_f32(vsubq_f32(vdupq_n_f32(1.f), fx), w10), vsubq_f32(fx, w11), w10, w11};
}

inline float32x4_t blend(const Weights& w, float32x4_t v00, float32x4_t v01, float32x4_t v10, float32x4_t v11) {
    return mla(mla(mla(vmulq_f32(w.w00, v00), w.w01, v01), w.w10, v10), w.w11, v11);
}

// Rounds like store_pixel (values are within [0, 255] up to float error; narrowing saturates).
inline uint8x8_t round_u8(float32x4_t lo, float32x4_t hi) {
    const float32x4_t half = vdupq_n_f32(0.5f);
    const uint16x8_t wide = vcombine_u16(vqmovn_u32(vcvtq_u32_f32(vaddq_f32(lo, half))),
                                         vqmovn_u32(vcvtq_u32_f32(vaddq_f32(hi, half))));
    return vqmovn_u16(wide);
}

// Output parameters, copied out of WarpArgs so the compiler knows stores cannot change them.
struct Dest {
    float* planes[3];
    std::uint8_t* interleaved;
    int width, channels;
    Index left[3], right[3];   // pick output channel c's source channel from the left and right neighbours
    float scale[3], shift[3];  // (v - mean) * scale as v * scale - shift, one multiply-add

    explicit Dest(const WarpArgs& a) : interleaved(a.interleaved), width(a.out_width), channels(a.out_channels) {
        for (int c = 0; c < 3; ++c) {
            planes[c] = a.planes && c < a.out_channels ? a.planes[c] : nullptr;
            left[c] = picker(a.channel_map[c]);
            right[c] = picker(a.src_channels + a.channel_map[c]);  // each load holds both neighbours
            scale[c] = a.scale[c];
            shift[c] = a.mean[c] * a.scale[c];
        }
    }
};

// Output channel values of four pixels whose top-left neighbours sit at byte offsets o[0..3].
template <int CN, Out OUT>
inline void sample4(const std::uint8_t* src, std::ptrdiff_t stride, const int* o, const Weights& w, const Dest& d,
                    float32x4_t* v) {
    const Row4 t = load_row(src, o), b = load_row(src + stride, o);
    if (CN == 1) {  // every output channel is the gray value
        const Index l = picker(0), r = picker(1);
        v[0] = v[1] = v[2] = blend(w, picked(t, l), picked(t, r), picked(b, l), picked(b, r));
        return;
    }
    const int channels = OUT == Out::Color ? 3 : OUT == Out::Gray ? 1 : d.channels;
    for (int c = 0; c < channels; ++c)
        v[c] = blend(w, picked(t, d.left[c]), picked(t, d.right[c]), picked(b, d.left[c]), picked(b, d.right[c]));
}

// v[half][channel]: pixels x..x+3, then x+4..x+7.
template <Out OUT>
inline void store8(const Dest& d, int x, int y, float32x4_t (*v)[3]) {
    const std::ptrdiff_t at = static_cast<std::ptrdiff_t>(y) * d.width + x;
    if (OUT == Out::Planar) {
        for (int c = 0; c < d.channels; ++c)
            for (int h = 0; h < 2; ++h)
                vst1q_f32(d.planes[c] + at + 4 * h,
                          mla(vdupq_n_f32(-d.shift[c]), v[h][c], vdupq_n_f32(d.scale[c])));
    } else if (OUT == Out::Gray) {
        vst1_u8(d.interleaved + at, round_u8(v[0][0], v[1][0]));
    } else {
        uint8x8x3_t px;
        for (int c = 0; c < 3; ++c) px.val[c] = round_u8(v[0][c], v[1][c]);
        vst3_u8(d.interleaved + at * 3, px);
    }
}

// floor(s) as float and int (armv7 has no rounding modes: trunc is floor for s >= 0, else it
// may be one too high).
inline void floor4(float32x4_t s, float32x4_t& f, int32x4_t& i) {
#if defined(__aarch64__)
    f = vrndmq_f32(s);
    i = vcvtq_s32_f32(f);
#else
    i = vcvtq_s32_f32(s);
    f = vcvtq_f32_s32(i);
    const uint32x4_t above = vcltq_f32(s, f);
    i = vaddq_s32(i, vreinterpretq_s32_u32(above));  // adds -1
    f = vcvtq_f32_s32(i);
#endif
}

// Per-call constants for the coordinate pass.
template <int CN>
struct Geometry {
    float32x4_t lane, m0, m3, lo, hi_x, hi_y;
    int32x4_t stride;
    uint32x4_t x0_max, off_max;

    Geometry(const WarpArgs& a, std::int64_t limit)
        : m0(vdupq_n_f32(a.m[0])),
          m3(vdupq_n_f32(a.m[3])),
          lo(vdupq_n_f32(-kCoordMargin)),
          hi_x(vdupq_n_f32(static_cast<float>(a.src_width) + kCoordMargin)),
          hi_y(vdupq_n_f32(static_cast<float>(a.src_height) + kCoordMargin)),
          stride(vdupq_n_s32(static_cast<int>(a.src_stride))),
          x0_max(vdupq_n_u32(static_cast<std::uint32_t>(a.src_width - 2))),
          off_max(vdupq_n_u32(static_cast<std::uint32_t>(limit))) {
        static const float lanes[4] = {0.f, 1.f, 2.f, 3.f};
        lane = vld1q_f32(lanes);
    }

    // Source points of pixels x..x+3, computed exactly as the scalar reference does: only the
    // blend differs. Clamping is needed only where a point may leave the image.
    void points(int x, float32x4_t row_x, float32x4_t row_y, bool clamp, float32x4_t& sx, float32x4_t& sy) const {
        const float32x4_t xs = vaddq_f32(vdupq_n_f32(static_cast<float>(x)), lane);
        sx = vaddq_f32(vmulq_f32(m0, xs), row_x);
        sy = vaddq_f32(vmulq_f32(m3, xs), row_y);
        if (clamp) {
            sx = vminq_f32(vmaxq_f32(sx, lo), hi_x);
            sy = vminq_f32(vmaxq_f32(sy, lo), hi_y);
        }
    }

    int32x4_t offsets(int32x4_t x0, int32x4_t y0) const {
        return vmlaq_s32(CN == 1 ? x0 : vmulq_n_s32(x0, CN), y0, stride);
    }

    // Unsigned range checks. x0 in [0, w - 2] and off <= limit imply y0 in [0, h - 2] because
    // stride >= w * CN, and every load then stays inside the image buffer.
    uint32x4_t inside(int32x4_t x0, int32x4_t off) const {
        return vandq_u32(vcleq_u32(vreinterpretq_u32_s32(x0), x0_max), vcleq_u32(vreinterpretq_u32_s32(off), off_max));
    }
};

// A block whose pixels are not all inside: pixels whose four neighbours are all outside are
// exactly border, those straddling the edge (or too near the buffer's end) are redone in scalar
// after the vector store.
template <int CN, Out OUT>
void edge_block(const WarpArgs& a, const Dest& dest, const Geometry<CN>& g, int x, int y) {
    const float row_x = a.m[1] * static_cast<float>(y) + a.m[2];
    const float row_y = a.m[4] * static_cast<float>(y) + a.m[5];
    const uint32x4_t one = vdupq_n_u32(1);
    const uint32x4_t w = vdupq_n_u32(static_cast<std::uint32_t>(a.src_width));
    const uint32x4_t h = vdupq_n_u32(static_cast<std::uint32_t>(a.src_height));
    float32x4_t v[2][3];
    std::uint32_t done[8];
    for (int half = 0; half < 2; ++half) {
        float32x4_t sx, sy, fx0, fy0;
        int32x4_t x0, y0;
        g.points(x + 4 * half, vdupq_n_f32(row_x), vdupq_n_f32(row_y), true, sx, sy);
        floor4(sx, fx0, x0);
        floor4(sy, fy0, y0);
        const int32x4_t off = g.offsets(x0, y0);
        const uint32x4_t inside = g.inside(x0, off);
        // All outside: x0 + 1 or y0 + 1 (unsigned) past w or h.
        const uint32x4_t outside = vorrq_u32(vcgtq_u32(vaddq_u32(vreinterpretq_u32_s32(x0), one), w),
                                             vcgtq_u32(vaddq_u32(vreinterpretq_u32_s32(y0), one), h));
        std::int32_t o[4];
        vst1q_s32(o, vandq_s32(off, vreinterpretq_s32_u32(inside)));  // offset 0 is safe
        sample4<CN, OUT>(a.src, a.src_stride, o, weights(vsubq_f32(sx, fx0), vsubq_f32(sy, fy0)), dest, v[half]);
        for (int c = 0; c < dest.channels; ++c) v[half][c] = vbslq_f32(outside, vdupq_n_f32(a.border), v[half][c]);
        vst1q_u32(done + 4 * half, vorrq_u32(inside, outside));
    }
    store8<OUT>(dest, x, y, v);
    float values[3];
    for (int i = 0; i < 8; ++i) {
        if (done[i]) continue;
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
    std::int32_t off[kChunkBlocks * 8];
    float fx[kChunkBlocks * 8], fy[kChunkBlocks * 8];

    for (int y = row_begin; y < row_end; ++y) {
        const float row_x = a.m[1] * static_cast<float>(y) + a.m[2];
        const float row_y = a.m[4] * static_cast<float>(y) + a.m[5];
        const bool interior = warp_row_interior(a, row_x, row_y);  // then no per-block checks
        const float32x4_t row_xv = vdupq_n_f32(row_x), row_yv = vdupq_n_f32(row_y);
        for (int first = 0; first < blocks; first += kChunkBlocks) {
            const int n = blocks - first < kChunkBlocks ? blocks - first : kChunkBlocks;
            std::uint32_t edges = 0;
            for (int i = 0; i < 2 * n; ++i) {  // half blocks
                float32x4_t sx, sy, fx0, fy0;
                int32x4_t x0, y0;
                g.points(block_x(first + i / 2) + 4 * (i % 2), row_xv, row_yv, !interior, sx, sy);
                floor4(sx, fx0, x0);
                floor4(sy, fy0, y0);
                const int32x4_t o = g.offsets(x0, y0);
                vst1q_s32(off + 4 * i, o);
                vst1q_f32(fx + 4 * i, vsubq_f32(sx, fx0));
                vst1q_f32(fy + 4 * i, vsubq_f32(sy, fy0));
                if (!interior && !all_set(g.inside(x0, o))) edges |= 1u << (i / 2);
            }
            for (int b = 0; b < n; ++b) {
                const int x = block_x(first + b);
                if (edges >> b & 1) {
                    edge_block<CN, OUT>(a, dest, g, x, y);
                    continue;
                }
                float32x4_t v[2][3];
                for (int half = 0; half < 2; ++half) {
                    const int i = 8 * b + 4 * half;
                    const Weights wt = weights(vld1q_f32(fx + i), vld1q_f32(fy + i));
                    sample4<CN, OUT>(a.src, stride, off + i, wt, dest, v[half]);
                }
                store8<OUT>(dest, x, y, v);
            }
        }
    }
}

}  // namespace

void warp_rows_neon(const WarpArgs& a, int row_begin, int row_end) {
    dispatch_warp(a, [&](auto channels, auto output) { warp_rows<decltype(channels)::value, decltype(output)::value>(a, row_begin, row_end); });
}

}  // namespace kernels
}  // namespace fastface
