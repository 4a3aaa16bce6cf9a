// Liveness: the reference crop region (scaled about the centre, shifted back inside), the fused
// resize + packing against hand-computed OpenCV values, bad boxes, and the bundled models.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "fastface/liveness.h"
#include "ncnn_model.h"
#include "testing.h"

using namespace fastface;

namespace {

Face box(float x1, float y1, float x2, float y2) {
    Face f;
    f.x1 = x1, f.y1 = y1, f.x2 = x2, f.y2 = y2;
    return f;
}

bool same(const PixelRect& r, int l, int t, int rr, int b) {
    return r.left == l && r.top == t && r.right == rr && r.bottom == b;
}

std::string model_dir() { return FASTFACE_SOURCE_DIR "/models/"; }

LivenessCard card(double scale) {
    LivenessCard c;
    c.crop_scale = scale;
    return c;
}

Liveness bundled(float threshold = 0.5f) {
    return Liveness::from_files({model_dir() + "minifasnet_v2.param", model_dir() + "minifasnet_v1se.param"},
                                {model_dir() + "minifasnet_v2.bin", model_dir() + "minifasnet_v1se.bin"},
                                {card(2.7), card(4.0)}, threshold);
}

}  // namespace

TEST(liveness_region_scales_about_the_centre) {
    // (x, y, w, h) = (300, 200, 40, 40): x2 - x1 + 1 = 40; scaled by 2 about (320, 220).
    CHECK(same(liveness_region(640, 480, box(300, 200, 339, 239), 2.0), 280, 180, 360, 260));
}

TEST(liveness_region_shifts_back_inside_instead_of_clipping) {
    // Left/top border: the 80-pixel region keeps its size and moves right/down.
    CHECK(same(liveness_region(640, 480, box(0, 0, 39, 39), 2.0), 0, 0, 80, 80));
    // Right/bottom border: moved left/up, ending at the last pixel.
    const PixelRect r = liveness_region(640, 480, box(620, 460, 659, 499), 2.0);
    CHECK(r.right == 639 && r.bottom == 479 && r.right - r.left == 80 && r.bottom - r.top == 80);
    // Partly outside on the left: still a full-size region inside.
    const PixelRect p = liveness_region(640, 480, box(-20, 100, 19, 139), 2.0);
    CHECK(p.left == 0 && p.right == 80);
}

TEST(liveness_region_lowers_the_scale_to_fit) {
    // A face filling the frame: the scale drops to (side - 1) / box side, the region is the image.
    const PixelRect r = liveness_region(100, 120, box(0, 0, 99, 119), 4.0);
    CHECK(r.left == 0 && r.top == 0 && r.right <= 99 && r.bottom <= 119 && r.right >= 97 && r.bottom >= 117);
    // A box bigger than the image.
    const PixelRect big = liveness_region(50, 50, box(-100, -100, 200, 200), 2.7);
    CHECK(big.left >= 0 && big.top >= 0 && big.right <= 49 && big.bottom <= 49);
    // One-pixel-wide image: a one-column region.
    const PixelRect thin = liveness_region(1, 50, box(-10, 0, 10, 30), 2.7);
    CHECK(thin.left == 0 && thin.right == 0);
}

TEST(liveness_region_refuses_bad_boxes) {
    CHECK_THROWS(liveness_region(640, 480, box(10, 10, 10.5f, 40), 2.7), ErrorCode::InvalidArgument);  // < 1 px
    CHECK_THROWS(liveness_region(640, 480, box(10, 10, 40, 5), 2.7), ErrorCode::InvalidArgument);
    CHECK_THROWS(liveness_region(640, 480, box(700, 10, 760, 70), 2.7), ErrorCode::InvalidArgument);  // right of it
    CHECK_THROWS(liveness_region(640, 480, box(-90, -90, -10, -10), 2.7), ErrorCode::InvalidArgument);
    CHECK_THROWS(liveness_region(640, 480, box(NAN, 10, 40, 40), 2.7), ErrorCode::InvalidArgument);
    CHECK_THROWS(liveness_region(640, 480, box(10, 10, INFINITY, 40), 2.7), ErrorCode::InvalidArgument);
    CHECK_THROWS(liveness_region(640, 480, box(-3e9f, 10, 3e9f, 40), 2.7), ErrorCode::InvalidArgument);
    CHECK_THROWS(liveness_region(640, 480, box(10, 10, 40, 40), 0.0), ErrorCode::InvalidArgument);
    CHECK_THROWS(liveness_region(0, 480, box(10, 10, 40, 40), 2.7), ErrorCode::InvalidArgument);
}

TEST(liveness_input_copies_at_the_network_size_and_orders_channels) {
    // A region already 4x4: every tap is one source pixel, values exact; RGB in, BGR out.
    std::vector<std::uint8_t> rgb(6 * 5 * 3);
    for (std::size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<std::uint8_t>(i * 7 % 251);
    const ImageView view{rgb.data(), 6, 5, 18, PixelFormat::RGB};
    std::vector<float> out(3 * 16);
    float* planes[3] = {out.data(), out.data() + 16, out.data() + 32};
    const InputNorm bgr{PixelFormat::BGR, {0, 0, 0}, {1, 1, 1}};
    liveness_input(view, PixelRect{1, 1, 4, 4}, 4, bgr, planes);
    for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x)
            for (int c = 0; c < 3; ++c)
                CHECK(out[c * 16 + y * 4 + x] == rgb[(y + 1) * 18 + (x + 1) * 3 + (2 - c)]);
    // Mean and scale apply after the pixel values.
    const InputNorm norm{PixelFormat::BGR, {10, 20, 30}, {0.5f, 2, 1}};
    liveness_input(view, PixelRect{1, 1, 4, 4}, 4, norm, planes);
    CHECK(out[16] == (rgb[18 + 3 + 1] - 20.f) * 2.f);
}

TEST(liveness_input_matches_opencv_bilinear) {
    // Gray 2x1 -> 4x1 upscale: OpenCV samples at (d + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25:
    // clamped, 3/4 a + 1/4 b, 1/4 a + 3/4 b, clamped; rounded to whole pixels.
    const std::uint8_t gray[2] = {0, 200};
    const ImageView view{gray, 2, 1, 2, PixelFormat::Gray};
    std::vector<float> out(3 * 16);
    float* planes[3] = {out.data(), out.data() + 16, out.data() + 32};
    liveness_input(view, PixelRect{0, 0, 1, 0}, 4, InputNorm{PixelFormat::BGR, {0, 0, 0}, {1, 1, 1}}, planes);
    const float expect[4] = {0, 50, 150, 200};
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 4; ++y)
            for (int x = 0; x < 4; ++x) CHECK(out[c * 16 + y * 4 + x] == expect[x]);
    // 2:1 downscale of 8 equal rows: the mean of each pixel pair, rounded half up (OpenCV: (a + b + 1) / 2).
    const std::uint8_t row[8] = {0, 1, 10, 20, 255, 254, 3, 3};
    std::vector<std::uint8_t> square;
    for (int y = 0; y < 8; ++y) square.insert(square.end(), row, row + 8);
    const ImageView wide{square.data(), 8, 8, 8, PixelFormat::Gray};
    liveness_input(wide, PixelRect{0, 0, 7, 7}, 4, InputNorm{PixelFormat::BGR, {0, 0, 0}, {1, 1, 1}}, planes);
    const float halves[4] = {1, 15, 255, 3};
    for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x) CHECK(out[y * 4 + x] == halves[x]);
    // One row enlarged: OpenCV keeps the vertical weights on the repeated edge row, whose
    // fixed-point rounding loses a level (cv2.resize gives 0, 15, 254, 3 here too).
    liveness_input(wide, PixelRect{0, 0, 7, 0}, 4, InputNorm{PixelFormat::BGR, {0, 0, 0}, {1, 1, 1}}, planes);
    const float rounded[4] = {0, 15, 254, 3};
    for (int x = 0; x < 4; ++x) CHECK(out[x] == rounded[x]);
}

TEST(liveness_input_refuses_regions_outside_the_image) {
    std::vector<std::uint8_t> px(10 * 10 * 3, 1);
    const ImageView view{px.data(), 10, 10, 30, PixelFormat::BGR};
    std::vector<float> out(3 * 64);
    float* planes[3] = {out.data(), out.data() + 64, out.data() + 128};
    const InputNorm bgr{PixelFormat::BGR, {0, 0, 0}, {1, 1, 1}};
    CHECK_THROWS(liveness_input(view, PixelRect{0, 0, 10, 9}, 8, bgr, planes), ErrorCode::InvalidArgument);
    CHECK_THROWS(liveness_input(view, PixelRect{-1, 0, 5, 5}, 8, bgr, planes), ErrorCode::InvalidArgument);
    CHECK_THROWS(liveness_input(view, PixelRect{5, 0, 4, 5}, 8, bgr, planes), ErrorCode::InvalidArgument);
}

TEST(liveness_random_boxes_never_read_outside_the_image) {
    // Any box the region accepts gives a region inside the image (the sanitizer build checks the reads).
    std::mt19937 rng(20);
    std::uniform_real_distribution<float> coord(-300.f, 600.f);
    std::uniform_int_distribution<int> side(1, 300);
    std::vector<float> out(3 * 80 * 80);
    float* planes[3] = {out.data(), out.data() + 6400, out.data() + 12800};
    const InputNorm bgr{PixelFormat::BGR, {0, 0, 0}, {1, 1, 1}};
    int accepted = 0;
    for (int i = 0; i < 400; ++i) {
        const int w = side(rng), h = side(rng);
        std::vector<std::uint8_t> px(static_cast<std::size_t>(w) * h * 3, 7);
        const ImageView view{px.data(), w, h, w * 3, PixelFormat::BGR};
        float a = coord(rng), b = coord(rng), c = coord(rng), d = coord(rng);
        const Face f = box(std::min(a, c), std::min(b, d), std::max(a, c), std::max(b, d));
        PixelRect r;
        try {
            r = liveness_region(w, h, f, i % 2 ? 2.7 : 4.0);
        } catch (const Error& e) {
            CHECK(e.code() == ErrorCode::InvalidArgument);
            continue;
        }
        ++accepted;
        CHECK(r.left >= 0 && r.top >= 0 && r.left <= r.right && r.top <= r.bottom && r.right < w && r.bottom < h);
        liveness_input(view, r, 80, bgr, planes);
        CHECK(out[0] == 7.f && out[6400 * 3 - 1] == 7.f);
    }
    CHECK(accepted > 50);
}

TEST(liveness_bundled_models_score_in_unit_interval) {
    const Liveness live = bundled();
    CHECK(live.model_count() == 2 && live.threshold() == 0.5f);
    std::mt19937 rng(3);
    std::vector<std::uint8_t> px(200 * 160 * 3);
    for (auto& v : px) v = static_cast<std::uint8_t>(rng() & 255);
    const ImageView view{px.data(), 200, 160, 600, PixelFormat::BGR};
    std::vector<float> per_model;
    const float p = live.score(view, box(70, 50, 130, 120), &per_model);
    CHECK(per_model.size() == 2 && p >= 0.f && p <= 1.f);
    CHECK_NEAR(p, (per_model[0] + per_model[1]) / 2, 1e-6);
    // Border and frame-filling faces score; bad boxes throw.
    CHECK(live.score(view, box(-30, -30, 40, 40)) >= 0.f);
    CHECK(live.score(view, box(0, 0, 199, 159)) >= 0.f);
    CHECK_THROWS(live.score(view, box(10, 10, 14, 14)), ErrorCode::InvalidArgument);
    CHECK_THROWS(live.score(view, box(10, 10, 17.9f, 40)), ErrorCode::InvalidArgument);  // under 8 px
    CHECK(live.score(view, box(10, 10, 18, 18)) >= 0.f);  // 8 px: judged, though the mapped box is smaller
    CHECK_THROWS(live.score(view, box(NAN, 10, 40, 40)), ErrorCode::InvalidArgument);
    CHECK_THROWS(live.score(view, box(300, 10, 400, 100)), ErrorCode::InvalidArgument);
    // A gray image scores like its three-channel copy.
    std::vector<std::uint8_t> gray(200 * 160), gray3(200 * 160 * 3);
    for (std::size_t i = 0; i < gray.size(); ++i) gray[i] = gray3[3 * i] = gray3[3 * i + 1] = gray3[3 * i + 2] = px[3 * i];
    const ImageView g{gray.data(), 200, 160, 200, PixelFormat::Gray}, g3{gray3.data(), 200, 160, 600, PixelFormat::BGR};
    CHECK(live.score(g, box(70, 50, 130, 120)) == live.score(g3, box(70, 50, 130, 120)));
}

TEST(liveness_box_map_moves_boxes_into_the_reference_convention) {
    const Face mapped = map_liveness_box(box(100, 100, 200, 300), kYuNetBoxMap);
    CHECK_NEAR((mapped.x1 + mapped.x2) / 2, 150 - 0.009 * 100, 1e-3);
    CHECK_NEAR((mapped.y1 + mapped.y2) / 2, 200 + 0.072 * 200, 1e-3);
    CHECK_NEAR(mapped.x2 - mapped.x1, 114.1, 1e-3);
    CHECK_NEAR(mapped.y2 - mapped.y1, 170.2, 1e-3);
    const Face same = map_liveness_box(box(1, 2, 3, 4), LivenessBoxMap{});
    CHECK(same.x1 == 1 && same.y1 == 2 && same.x2 == 3 && same.y2 == 4);
    // The identity map scores the box as given; the default map scores the mapped box.
    const std::string dir = model_dir();
    const Liveness identity = Liveness::from_files({dir + "minifasnet_v2.param"}, {dir + "minifasnet_v2.bin"},
                                                   {card(2.7)}, 0.5f, {}, LivenessBoxMap{});
    const Liveness yunet = Liveness::from_files({dir + "minifasnet_v2.param"}, {dir + "minifasnet_v2.bin"},
                                                {card(2.7)}, 0.5f);
    std::vector<std::uint8_t> px(300 * 300 * 3);
    for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<std::uint8_t>((i * 2654435761u) >> 24);
    const ImageView view{px.data(), 300, 300, 900, PixelFormat::BGR};
    CHECK(yunet.score(view, box(100, 100, 200, 200)) == identity.score(view, map_liveness_box(box(100, 100, 200, 200),
                                                                                               kYuNetBoxMap)));
    CHECK_THROWS(Liveness::from_files({dir + "minifasnet_v2.param"}, {dir + "minifasnet_v2.bin"}, {card(2.7)}, 0.5f, {},
                                      LivenessBoxMap{0, 0, 0, 1}),
                 ErrorCode::InvalidArgument);
}

TEST(liveness_refuses_models_that_do_not_fit_their_cards) {
    const std::string dir = model_dir();
    LivenessCard wrong_output = card(2.7);
    wrong_output.output = "nope";
    CHECK_THROWS(Liveness::from_files({dir + "minifasnet_v2.param"}, {dir + "minifasnet_v2.bin"}, {wrong_output}, 0.5f),
                 ErrorCode::ModelFormat);
    LivenessCard four = card(2.7);
    four.classes = 4;
    CHECK_THROWS(Liveness::from_files({dir + "minifasnet_v2.param"}, {dir + "minifasnet_v2.bin"}, {four}, 0.5f),
                 ErrorCode::ModelFormat);
    LivenessCard other_size = card(2.7);
    other_size.size = 96;  // the classifier's weights were made for 80x80
    CHECK_THROWS(Liveness::from_files({dir + "minifasnet_v2.param"}, {dir + "minifasnet_v2.bin"}, {other_size}, 0.5f),
                 ErrorCode::ModelFormat);
    std::vector<std::uint8_t> bin = read_file(dir + "minifasnet_v2.bin");
    bin.resize(bin.size() / 2);
    const std::vector<std::uint8_t> param = read_file(dir + "minifasnet_v2.param");
    std::vector<Liveness::Model> truncated;
    truncated.push_back({std::string(param.begin(), param.end()), bin, card(2.7)});
    CHECK_THROWS(Liveness::from_memory(std::move(truncated), 0.5f), ErrorCode::ModelFormat);
    CHECK_THROWS(Liveness::from_files({}, {}, {}, 0.5f), ErrorCode::InvalidArgument);
    CHECK_THROWS(bundled(1.5f), ErrorCode::InvalidArgument);
    LivenessCard bad_class = card(2.7);
    bad_class.real_class = 3;
    CHECK_THROWS(Liveness::from_files({dir + "minifasnet_v2.param"}, {dir + "minifasnet_v2.bin"}, {bad_class}, 0.5f),
                 ErrorCode::InvalidArgument);
    CHECK_THROWS(Liveness::from_files({dir + "missing.param"}, {dir + "minifasnet_v2.bin"}, {card(2.7)}, 0.5f),
                 ErrorCode::Io);
}
