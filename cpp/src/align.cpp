#include "fastface/align.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "fastface/error.h"
#include "kernels/kernels.h"

namespace fastface {

const std::array<Point2f, 5> kArcFaceTemplate112 = {{{38.2946f, 51.6963f},
                                                     {73.5318f, 51.5014f},
                                                     {56.0252f, 71.7366f},
                                                     {41.5493f, 92.3655f},
                                                     {70.7299f, 92.2041f}}};

std::vector<Point2f> arcface_template(int width, int height) {
    if (width <= 0 || height <= 0) throw Error(ErrorCode::InvalidArgument, "crop size must be positive");
    const float sx = static_cast<float>(width) / 112.f, sy = static_cast<float>(height) / 112.f;
    std::vector<Point2f> out;
    for (const Point2f& p : kArcFaceTemplate112) out.push_back({p.x * sx, p.y * sy});
    return out;
}

namespace {

void check_points(const std::vector<Point2f>& points, const char* what) {
    for (const Point2f& p : points)
        if (!std::isfinite(p.x) || !std::isfinite(p.y))
            throw Error(ErrorCode::InvalidArgument, std::string(what) + " contain NaN or infinity");
}

}  // namespace

Affine estimate_similarity(const std::vector<Point2f>& src, const std::vector<Point2f>& dst) {
    if (src.size() != dst.size())
        throw Error(ErrorCode::InvalidArgument, "point counts differ: " + std::to_string(src.size()) + " source vs " +
                                                    std::to_string(dst.size()) + " destination points");
    if (src.size() < 2) throw Error(ErrorCode::InvalidArgument, "a similarity needs at least 2 point pairs");
    check_points(src, "source points");
    check_points(dst, "destination points");
    const double n = static_cast<double>(src.size());
    double mean_sx = 0, mean_sy = 0, mean_dx = 0, mean_dy = 0;
    for (std::size_t i = 0; i < src.size(); ++i) {
        mean_sx += src[i].x; mean_sy += src[i].y;
        mean_dx += dst[i].x; mean_dy += dst[i].y;
    }
    mean_sx /= n; mean_sy /= n; mean_dx /= n; mean_dy /= n;
    // In complex form the least-squares similarity is z -> c z + t with
    // c = sum(conj(a) b) / sum(|a|^2) over centred points a (source) and b (destination);
    // this is Umeyama's solution in 2-D (a rotation, never a reflection).
    double re = 0, im = 0, src_var = 0, dst_var = 0;
    for (std::size_t i = 0; i < src.size(); ++i) {
        const double ax = src[i].x - mean_sx, ay = src[i].y - mean_sy;
        const double bx = dst[i].x - mean_dx, by = dst[i].y - mean_dy;
        re += ax * bx + ay * by;
        im += ax * by - ay * bx;
        src_var += ax * ax + ay * ay;
        dst_var += bx * bx + by * by;
    }
    // Spread below 1e-6 px^2 per point means the points coincide: no rotation or scale is defined.
    if (src_var <= 1e-6 * n) throw Error(ErrorCode::InvalidArgument, "source points coincide; cannot estimate a similarity");
    if (dst_var <= 1e-6 * n) throw Error(ErrorCode::InvalidArgument, "destination points coincide; cannot estimate a similarity");
    const double a = re / src_var, b = im / src_var;
    return {a, -b, mean_dx - (a * mean_sx - b * mean_sy), b, a, mean_dy - (b * mean_sx + a * mean_sy)};
}

Affine invert_affine(const Affine& m) {
    const double det = m[0] * m[4] - m[1] * m[3];
    if (!std::isfinite(det) || std::fabs(det) < 1e-12)
        throw Error(ErrorCode::InvalidArgument, "affine matrix is singular");
    const double i00 = m[4] / det, i01 = -m[1] / det, i10 = -m[3] / det, i11 = m[0] / det;
    return {i00, i01, -(i00 * m[2] + i01 * m[5]), i10, i11, -(i10 * m[2] + i11 * m[5])};
}

void validate_landmarks(const ImageView& image, const std::vector<Point2f>& landmarks) {
    check_points(landmarks, "landmarks");
    if (landmarks.empty()) throw Error(ErrorCode::InvalidArgument, "no landmarks");
    // A face may be cut by the frame, but one whose centre lies more than its own size outside
    // the image means landmarks from another image or in other units: a bug upstream.
    float min_x = landmarks[0].x, max_x = min_x, min_y = landmarks[0].y, max_y = min_y, cx = 0, cy = 0;
    for (const Point2f& p : landmarks) {
        min_x = std::min(min_x, p.x); max_x = std::max(max_x, p.x);
        min_y = std::min(min_y, p.y); max_y = std::max(max_y, p.y);
        cx += p.x / landmarks.size(); cy += p.y / landmarks.size();
    }
    const float reach = std::max(max_x - min_x, max_y - min_y);
    if (cx < -reach || cy < -reach || cx > image.width + reach || cy > image.height + reach)
        throw Error(ErrorCode::InvalidArgument, "landmarks centred at (" + std::to_string(cx) + ", " + std::to_string(cy) +
                                                    ") are far outside the " + std::to_string(image.width) + "x" +
                                                    std::to_string(image.height) + " image");
}

Affine dlib_chip_geometry(const std::vector<Point2f>& points, const std::vector<Point2f>& chip_template,
                          int width, int height) {
    if (width < 2 || height < 2) throw Error(ErrorCode::InvalidArgument, "a chip needs at least 2x2 pixels");
    const Affine chip_to_image = estimate_similarity(chip_template, points);
    const double scale = std::hypot(chip_to_image[0], chip_to_image[3]);
    const double cos_a = chip_to_image[0] / scale, sin_a = chip_to_image[3] / scale;
    const double cx = chip_to_image[0] * width / 2.0 + chip_to_image[1] * height / 2.0 + chip_to_image[2];
    const double cy = chip_to_image[3] * width / 2.0 + chip_to_image[4] * height / 2.0 + chip_to_image[5];
    // dlib's centered_drect shrinks the rectangle by one image pixel; its corners go to pixels 0 and size - 1.
    const double step_x = (width * scale - 1) / (width - 1), step_y = (height * scale - 1) / (height - 1);
    const double half_x = (width - 1) / 2.0, half_y = (height - 1) / 2.0;
    return {cos_a * step_x, -sin_a * step_y, cx - cos_a * step_x * half_x + sin_a * step_y * half_y,
            sin_a * step_x, cos_a * step_y, cy - sin_a * step_x * half_x - cos_a * step_y * half_y};
}

namespace {

kernels::WarpArgs make_args(const ImageView& src, const WarpParams& params) {
    validate(src);
    if (params.out_width <= 0 || params.out_height <= 0)
        throw Error(ErrorCode::InvalidArgument, "output size must be positive");
    kernels::WarpArgs a{};
    a.src = src.data;
    a.src_width = src.width;
    a.src_height = src.height;
    a.src_stride = src.row_stride;
    a.src_channels = src.channels();
    for (int i = 0; i < 6; ++i) {
        if (!std::isfinite(params.dst_to_src[i])) throw Error(ErrorCode::InvalidArgument, "warp matrix is not finite");
        a.m[i] = static_cast<float>(params.dst_to_src[i]);
    }
    a.out_width = params.out_width;
    a.out_height = params.out_height;
    a.border = params.border_value;
    return a;
}

void run_warp(const kernels::WarpArgs& a, Isa isa) {
    switch (isa) {
        case Isa::Scalar: kernels::warp_rows_scalar(a, 0, a.out_height); return;
#if defined(FASTFACE_KERNELS_X86)
        case Isa::SSE2: kernels::warp_rows_sse2(a, 0, a.out_height); return;
        case Isa::AVX2: kernels::warp_rows_avx2(a, 0, a.out_height); return;
#endif
#if defined(FASTFACE_KERNELS_NEON)
        case Isa::NEON: kernels::warp_rows_neon(a, 0, a.out_height); return;
#endif
        default: break;
    }
    throw Error(ErrorCode::InvalidArgument, std::string("instruction set ") + isa_name(isa) + " is not available here");
}

}  // namespace

void warp_to_u8(const ImageView& src, const WarpParams& params, std::uint8_t* out, Isa isa) {
    kernels::WarpArgs a = make_args(src, params);
    a.out_channels = a.src_channels;
    for (int c = 0; c < 3; ++c) {
        a.channel_map[c] = c;
        a.mean[c] = 0.f;
        a.scale[c] = 1.f;
    }
    a.interleaved = out;
    run_warp(a, isa);
}

namespace {

// Args for planar float output: channel order, mean and scale of the network input.
kernels::WarpArgs planar_args(const ImageView& src, const WarpParams& params, const InputNorm& norm,
                              float* const* planes) {
    kernels::WarpArgs a = make_args(src, params);
    a.out_channels = channel_count(norm.order);
    if (a.out_channels == 1 && a.src_channels == 3)
        throw Error(ErrorCode::InvalidArgument, "a 1-channel (gray) network needs a gray image");
    for (int c = 0; c < a.out_channels; ++c) {
        if (a.src_channels == 1)
            a.channel_map[c] = 0;  // gray replicated into every network channel
        else
            a.channel_map[c] = (src.format == norm.order) ? c : 2 - c;  // BGR <-> RGB swap
        a.mean[c] = norm.mean[c];
        a.scale[c] = norm.scale[c];
    }
    a.planes = planes;
    return a;
}

}  // namespace

void warp_to_planar(const ImageView& src, const WarpParams& params, const InputNorm& norm, float* const* planes,
                    Isa isa) {
    run_warp(planar_args(src, params, norm, planes), isa);
}

void copy_to_planar(const ImageView& src, int out_width, int out_height, const InputNorm& norm, float* const* planes,
                    std::uint8_t border_value) {
    WarpParams params;
    params.dst_to_src = {1, 0, 0, 0, 1, 0};
    params.out_width = out_width;
    params.out_height = out_height;
    params.border_value = border_value;
    const kernels::WarpArgs a = planar_args(src, params, norm, planes);
    const int cn = a.src_channels, width = std::min(out_width, src.width);
    for (int c = 0; c < a.out_channels; ++c) {
        // The same arithmetic as the warp's store, so the result is bit-identical.
        const float mean = a.mean[c], scale = a.scale[c], border = (a.border - mean) * scale;
        for (int y = 0; y < out_height; ++y) {
            float* out = planes[c] + static_cast<std::ptrdiff_t>(y) * out_width;
            int x = 0;
            if (y < src.height) {
                const std::uint8_t* in = src.data + static_cast<std::ptrdiff_t>(y) * src.row_stride + a.channel_map[c];
                for (; x < width; ++x) out[x] = (static_cast<float>(in[x * cn]) - mean) * scale;
            }
            for (; x < out_width; ++x) out[x] = border;
        }
    }
}

std::vector<std::uint8_t> align_face(const ImageView& image, const std::vector<Point2f>& landmarks, int out_width,
                                     int out_height, const std::vector<Point2f>& dst_template) {
    validate(image);
    validate_landmarks(image, landmarks);
    WarpParams params;
    params.dst_to_src = invert_affine(estimate_similarity(landmarks, dst_template));
    params.out_width = out_width;
    params.out_height = out_height;
    std::vector<std::uint8_t> out(static_cast<std::size_t>(out_width) * out_height * image.channels());
    warp_to_u8(image, params, out.data());
    return out;
}

}  // namespace fastface
