// Alignment: closed-form similarity, and every SIMD warp against the scalar reference.
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "fastface/align.h"
#include "testing.h"

using namespace fastface;

namespace {

std::vector<Point2f> transform(const Affine& m, const std::vector<Point2f>& pts) {
    std::vector<Point2f> out;
    for (const Point2f& p : pts)
        out.push_back({static_cast<float>(m[0] * p.x + m[1] * p.y + m[2]), static_cast<float>(m[3] * p.x + m[4] * p.y + m[5])});
    return out;
}

Affine random_similarity(std::mt19937& rng, float max_scale) {
    std::uniform_real_distribution<double> angle(-3.1, 3.1), scale(0.2, max_scale), shift(-50, 50);
    const double a = angle(rng), s = scale(rng);
    return {s * std::cos(a), -s * std::sin(a), shift(rng), s * std::sin(a), s * std::cos(a), shift(rng)};
}

struct TestImage {
    std::vector<std::uint8_t> bytes;
    ImageView view;
};

TestImage random_image(std::mt19937& rng, int width, int height, PixelFormat format, int padding) {
    TestImage img;
    const int cn = channel_count(format);
    const std::ptrdiff_t stride = static_cast<std::ptrdiff_t>(width) * cn + padding;
    // Exactly (height - 1) * stride + width * cn bytes: reading past the last pixel is a bug.
    img.bytes.resize(static_cast<std::size_t>((height - 1) * stride + static_cast<std::ptrdiff_t>(width) * cn));
    std::uniform_int_distribution<int> px(0, 255);
    for (std::uint8_t& b : img.bytes) b = static_cast<std::uint8_t>(px(rng));
    img.view = {img.bytes.data(), width, height, stride, format};
    return img;
}

}  // namespace

TEST(similarity_recovers_exact_transform) {
    std::mt19937 rng(1);
    const std::vector<Point2f> tmpl = arcface_template(112, 112);
    for (int trial = 0; trial < 200; ++trial) {
        const Affine truth = random_similarity(rng, 5.0);
        const Affine est = estimate_similarity(tmpl, transform(truth, tmpl));
        for (int i = 0; i < 6; ++i) CHECK_NEAR(est[i], truth[i], 1e-3 * (1 + std::fabs(truth[i])));
    }
}

TEST(similarity_is_least_squares_on_noisy_points) {
    // Perturbing the estimate in any direction must not lower the squared error.
    std::mt19937 rng(2);
    std::normal_distribution<float> noise(0.f, 2.f);
    const std::vector<Point2f> tmpl = arcface_template(112, 112);
    for (int trial = 0; trial < 50; ++trial) {
        std::vector<Point2f> src = transform(random_similarity(rng, 3.0), tmpl);
        for (Point2f& p : src) p = {p.x + noise(rng), p.y + noise(rng)};
        const Affine est = estimate_similarity(src, tmpl);
        auto error = [&](double a, double b, double tx, double ty) {
            double e = 0;
            for (std::size_t i = 0; i < src.size(); ++i) {
                const double dx = a * src[i].x - b * src[i].y + tx - tmpl[i].x;
                const double dy = b * src[i].x + a * src[i].y + ty - tmpl[i].y;
                e += dx * dx + dy * dy;
            }
            return e;
        };
        const double best = error(est[0], est[3], est[2], est[5]);
        for (double step : {1e-3, -1e-3}) {
            CHECK(error(est[0] + step, est[3], est[2], est[5]) >= best);
            CHECK(error(est[0], est[3] + step, est[2], est[5]) >= best);
            CHECK(error(est[0], est[3], est[2] + step, est[5]) >= best);
            CHECK(error(est[0], est[3], est[2], est[5] + step) >= best);
        }
    }
}

TEST(similarity_rejects_bad_points) {
    const std::vector<Point2f> tmpl = arcface_template(112, 112);
    CHECK_THROWS(estimate_similarity({{1, 1}}, {{2, 2}}), ErrorCode::InvalidArgument);
    CHECK_THROWS(estimate_similarity(std::vector<Point2f>(5, {3.f, 3.f}), tmpl), ErrorCode::InvalidArgument);
    CHECK_THROWS(estimate_similarity({{1, 1}, {2, 2}}, tmpl), ErrorCode::InvalidArgument);
    CHECK_THROWS(estimate_similarity({{1, 1}, {NAN, 2}}, {{0, 0}, {1, 1}}), ErrorCode::InvalidArgument);
    CHECK_THROWS(invert_affine({0, 0, 1, 0, 0, 1}), ErrorCode::InvalidArgument);
}

TEST(invert_affine_round_trips) {
    std::mt19937 rng(3);
    for (int trial = 0; trial < 20; ++trial) {
        const Affine m = random_similarity(rng, 4.0);
        const Affine inv = invert_affine(m);
        const std::vector<Point2f> pts = {{3, 4}, {-20, 7}, {100, 90}};
        const std::vector<Point2f> back = transform(inv, transform(m, pts));
        for (std::size_t i = 0; i < pts.size(); ++i) {
            CHECK_NEAR(back[i].x, pts[i].x, 1e-2);
            CHECK_NEAR(back[i].y, pts[i].y, 1e-2);
        }
    }
}

TEST(simd_warps_match_scalar) {
    std::mt19937 rng(4);
    const int sizes[][2] = {{1, 1}, {2, 2}, {3, 5}, {7, 3}, {16, 16}, {37, 29}, {112, 112}, {250, 180}, {640, 480}};
    const int out_sizes[][2] = {{1, 1}, {7, 5}, {8, 8}, {17, 9}, {37, 20}, {112, 112}, {150, 6}};
    int compared = 0;
    for (Isa isa : available_isas()) {
        if (isa == Isa::Scalar) continue;
        for (const auto& size : sizes)
            for (PixelFormat format : {PixelFormat::Gray, PixelFormat::BGR, PixelFormat::RGB})
                for (int padding : {0, 3}) {
                    TestImage img = random_image(rng, size[0], size[1], format, padding);
                    for (const auto& out : out_sizes)
                        for (int m = 0; m < 4; ++m) {
                            // Matrices from "inside the image" to "mostly outside" to exercise borders.
                            std::uniform_real_distribution<double> shift(-0.5 * size[0], 1.2 * size[0]);
                            Affine a = random_similarity(rng, 2.0);
                            a[2] = shift(rng);
                            a[5] = shift(rng);
                            if (m == 0) a = {1, 0, 0.25, 0, 1, 0.75};
                            WarpParams params{a, out[0], out[1], static_cast<std::uint8_t>(m * 60)};
                            const int cn = channel_count(format);
                            const std::size_t n = static_cast<std::size_t>(out[0]) * out[1];
                            std::vector<std::uint8_t> ref_u8(n * cn), simd_u8(n * cn);
                            warp_to_u8(img.view, params, ref_u8.data(), Isa::Scalar);
                            warp_to_u8(img.view, params, simd_u8.data(), isa);
                            for (std::size_t i = 0; i < ref_u8.size(); ++i)
                                CHECK(std::abs(int(ref_u8[i]) - int(simd_u8[i])) <= 1);

                            InputNorm norm;
                            norm.order = format == PixelFormat::Gray ? PixelFormat::RGB : (m % 2 ? PixelFormat::BGR : PixelFormat::RGB);
                            norm.mean = {127.5f, 120.f, 110.f};
                            norm.scale = {1 / 128.f, 1 / 64.f, 0.5f};
                            std::vector<float> ref(3 * n), simd(3 * n);
                            float* ref_planes[3] = {ref.data(), ref.data() + n, ref.data() + 2 * n};
                            float* simd_planes[3] = {simd.data(), simd.data() + n, simd.data() + 2 * n};
                            warp_to_planar(img.view, params, norm, ref_planes, Isa::Scalar);
                            warp_to_planar(img.view, params, norm, simd_planes, isa);
                            for (std::size_t i = 0; i < ref.size(); ++i) CHECK_NEAR(simd[i], ref[i], 2e-3);
                            ++compared;
                        }
                }
    }
    CHECK(compared > 0 || available_isas().size() == 1);
}

TEST(warp_identity_copies_pixels) {
    std::mt19937 rng(5);
    TestImage img = random_image(rng, 20, 13, PixelFormat::BGR, 5);
    for (Isa isa : available_isas()) {
        std::vector<std::uint8_t> out(20 * 13 * 3);
        warp_to_u8(img.view, {{1, 0, 0, 0, 1, 0}, 20, 13, 0}, out.data(), isa);
        for (int y = 0; y < 13; ++y)
            for (int x = 0; x < 60; ++x) CHECK(out[y * 60 + x] == img.bytes[y * img.view.row_stride + x]);
    }
}

TEST(warp_planar_swaps_channels_and_normalizes) {
    const std::uint8_t bgr[3] = {10, 20, 30};
    const ImageView one{bgr, 1, 1, 3, PixelFormat::BGR};
    InputNorm norm;
    norm.order = PixelFormat::RGB;
    norm.mean = {1.f, 2.f, 3.f};
    norm.scale = {2.f, 2.f, 2.f};
    float r, g, b;
    float* planes[3] = {&r, &g, &b};
    warp_to_planar(one, {{1, 0, 0, 0, 1, 0}, 1, 1, 0}, norm, planes, Isa::Scalar);
    CHECK_NEAR(r, (30 - 1) * 2, 1e-6);
    CHECK_NEAR(g, (20 - 2) * 2, 1e-6);
    CHECK_NEAR(b, (10 - 3) * 2, 1e-6);
}

TEST(copy_to_planar_equals_the_identity_warp) {
    // Every source format and network order, outputs smaller, equal and larger than the source
    // (larger: padded with the border, as the detector pads to a multiple of 32).
    std::mt19937 rng(8);
    const PixelFormat formats[3] = {PixelFormat::Gray, PixelFormat::BGR, PixelFormat::RGB};
    const int sizes[][4] = {{1, 1, 1, 1}, {7, 5, 7, 5}, {13, 9, 32, 32}, {40, 30, 17, 11}, {250, 180, 256, 192}};
    for (PixelFormat format : formats)
        for (PixelFormat order : formats)
            for (const auto& size : sizes) {
                if (order == PixelFormat::Gray && format != PixelFormat::Gray) continue;
                TestImage img = random_image(rng, size[0], size[1], format, 3);
                InputNorm norm;
                norm.order = order;
                norm.mean = {127.5f, 100.f, 3.f};
                norm.scale = {1 / 128.f, 0.5f, 2.f};
                const int w = size[2], h = size[3], cn = channel_count(order);
                std::vector<float> copied(static_cast<std::size_t>(w) * h * cn), warped(copied.size());
                float* copy_planes[3] = {copied.data(), copied.data() + w * h, copied.data() + 2 * w * h};
                float* warp_planes[3] = {warped.data(), warped.data() + w * h, warped.data() + 2 * w * h};
                copy_to_planar(img.view, w, h, norm, copy_planes, 9);
                warp_to_planar(img.view, {{1, 0, 0, 0, 1, 0}, w, h, 9}, norm, warp_planes, Isa::Scalar);
                CHECK(copied == warped);
            }
    std::vector<std::uint8_t> bgr(12);
    float plane[4];
    float* planes[1] = {plane};
    InputNorm gray;
    gray.order = PixelFormat::Gray;
    CHECK_THROWS(copy_to_planar({bgr.data(), 2, 2, 6, PixelFormat::BGR}, 2, 2, gray, planes), ErrorCode::InvalidArgument);
}

TEST(warp_outside_image_is_border) {
    std::mt19937 rng(6);
    TestImage img = random_image(rng, 10, 10, PixelFormat::RGB, 0);
    for (Isa isa : available_isas()) {
        std::vector<std::uint8_t> out(16 * 16 * 3);
        warp_to_u8(img.view, {{1, 0, 1e7, 0, 1, -1e7}, 16, 16, 77}, out.data(), isa);
        CHECK(std::all_of(out.begin(), out.end(), [](std::uint8_t v) { return v == 77; }));
    }
}

TEST(align_face_rejects_bad_landmarks) {
    std::mt19937 rng(7);
    TestImage img = random_image(rng, 100, 100, PixelFormat::BGR, 0);
    std::vector<Point2f> lm = arcface_template(112, 112);
    CHECK(align_face(img.view, lm, 112, 112, arcface_template(112, 112)).size() == 112 * 112 * 3);
    lm[0].x = NAN;
    CHECK_THROWS(align_face(img.view, lm, 112, 112, arcface_template(112, 112)), ErrorCode::InvalidArgument);
    lm = arcface_template(112, 112);
    for (Point2f& p : lm) p.x += 5000.f;  // landmarks of another, much larger image
    CHECK_THROWS(align_face(img.view, lm, 112, 112, arcface_template(112, 112)), ErrorCode::InvalidArgument);
    const ImageView empty{img.bytes.data(), 0, 10, 0, PixelFormat::BGR};
    CHECK_THROWS(align_face(empty, arcface_template(112, 112), 112, 112, arcface_template(112, 112)), ErrorCode::InvalidArgument);
}

TEST(dlib_chip_geometry_spans_one_pixel_less_than_the_scaled_chip) {
    // Points exactly twice the template plus (10, 20): dlib's chip -> image similarity is that,
    // and its crop pixels 0..149 span 2 * 150 - 1 image pixels about the image of the centre.
    const std::vector<Point2f> chip = {{110.9f, 46.3f}, {89.6f, 47.9f}, {37.1f, 46.4f}, {58.4f, 47.9f}, {74.0f, 87.8f}};
    std::vector<Point2f> image;
    for (const Point2f& p : chip) image.push_back({2 * p.x + 10, 2 * p.y + 20});
    const Affine m = dlib_chip_geometry(image, chip, 150, 150);
    const double step = (150.0 * 2 - 1) / 149;
    CHECK_NEAR(m[0], step, 1e-4);
    CHECK_NEAR(m[1], 0.0, 1e-4);
    CHECK_NEAR(m[3], 0.0, 1e-4);
    CHECK_NEAR(m[4], step, 1e-4);
    CHECK_NEAR(m[2], 2 * 75 + 10 - step * 74.5, 1e-3);
    CHECK_NEAR(m[5], 2 * 75 + 20 - step * 74.5, 1e-3);
    CHECK_THROWS(dlib_chip_geometry(image, chip, 1, 150), ErrorCode::InvalidArgument);
    CHECK_THROWS(dlib_chip_geometry(image, std::vector<Point2f>(chip.begin(), chip.end() - 1), 150, 150),
                 ErrorCode::InvalidArgument);
}
