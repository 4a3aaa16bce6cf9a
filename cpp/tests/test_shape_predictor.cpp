// ShapePredictor: a hand-built model whose answer is known, the bundled dlib model's invariances,
// and malformed files (every truncation, bad magic, out-of-range indices) refused cleanly.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "fastface/error.h"
#include "fastface/shape_predictor.h"
#include "testing.h"

using namespace fastface;

namespace {

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_f32(std::vector<std::uint8_t>& out, float v) {
    std::uint32_t bits;
    std::memcpy(&bits, &v, 4);
    put_u32(out, bits);
}

// Two parts at (0.25, 0.5) and (0.75, 0.5); one level with a feature pixel on each part and one
// tree of one split: brighter left pixel -> both parts move right by 0.1, else down by 0.1.
// Byte offsets of the fields the malformed-file tests corrupt:
constexpr std::size_t kVersionAt = 8, kPartsAt = 12, kFeaturesAt = 36, kAnchor1At = 52, kSplitIdx2At = 76,
                      kLeafAt = 84;
std::vector<std::uint8_t> tiny_model() {
    std::vector<std::uint8_t> m(std::begin("FFSHAPE"), std::end("FFSHAPE"));  // 8 bytes with the NUL
    put_u32(m, 1);  // version
    put_u32(m, 2);  // parts
    put_u32(m, 1);  // cascades
    for (float v : {0.25f, 0.5f, 0.75f, 0.5f}) put_f32(m, v);
    put_u32(m, 2);  // features
    put_u32(m, 1);  // trees
    put_u32(m, 1);  // splits per tree
    put_u32(m, 0), put_u32(m, 1);                           // anchors
    for (int i = 0; i < 4; ++i) put_f32(m, 0.f);            // deltas
    put_u32(m, 0), put_u32(m, 1), put_f32(m, 0.f);          // split: value[0] - value[1] > 0
    for (float v : {0.1f, 0.f, 0.1f, 0.f}) put_f32(m, v);   // left leaf
    for (float v : {0.f, 0.1f, 0.f, 0.1f}) put_f32(m, v);   // right leaf
    return m;
}

// A random valid model: `levels` levels of `trees` trees of depth `depth` over `features` pixels.
std::vector<std::uint8_t> random_model(std::mt19937& rng, std::uint32_t parts, std::uint32_t levels,
                                       std::uint32_t features, std::uint32_t trees, std::uint32_t depth) {
    std::uniform_real_distribution<float> unit(0.f, 1.f), small(-0.05f, 0.05f), thresh(-60.f, 60.f);
    std::vector<std::uint8_t> m(std::begin("FFSHAPE"), std::end("FFSHAPE"));
    put_u32(m, 1), put_u32(m, parts), put_u32(m, levels);
    for (std::uint32_t i = 0; i < 2 * parts; ++i) put_f32(m, unit(rng));
    const std::uint32_t splits = (1u << depth) - 1;
    for (std::uint32_t level = 0; level < levels; ++level) {
        put_u32(m, features), put_u32(m, trees), put_u32(m, splits);
        for (std::uint32_t f = 0; f < features; ++f) put_u32(m, rng() % parts);
        for (std::uint32_t f = 0; f < 2 * features; ++f) put_f32(m, small(rng) * 4);
        for (std::uint32_t k = 0; k < trees * splits; ++k) put_u32(m, rng() % features), put_u32(m, rng() % features), put_f32(m, thresh(rng));
        for (std::uint32_t k = 0; k < trees * (splits + 1) * 2 * parts; ++k) put_f32(m, small(rng));
    }
    return m;
}

std::string bundled_model() {
    const char* env = std::getenv("FASTFACE_MODELS_DIR");
    return std::string(env ? env : FASTFACE_SOURCE_DIR "/models") + "/dlib_shape_predictor_5.bin";
}

// A face-like pattern: smooth shading with dark blobs, so the trees take varied paths.
std::vector<std::uint8_t> pattern(int width, int height, int dx, int dy) {
    std::vector<std::uint8_t> pixels(std::size_t(width) * height * 3);
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            const int u = x - dx, v = y - dy;
            const double blob = std::exp(-((u - 70) * (u - 70) + (v - 80) * (v - 80)) / 200.0) +
                                std::exp(-((u - 130) * (u - 130) + (v - 80) * (v - 80)) / 200.0);
            for (int c = 0; c < 3; ++c)
                pixels[(std::size_t(y) * width + x) * 3 + c] =
                    static_cast<std::uint8_t>(std::fmod(120 + 40 * std::sin(u * 0.05 + c) + 30 * std::cos(v * 0.07) -
                                                            150 * blob + 256.0, 256.0));
        }
    return pixels;
}

}  // namespace

TEST(shape_predictor_tiny_model_follows_its_tree) {
    const std::vector<std::uint8_t> model = tiny_model();
    const ShapePredictor sp = ShapePredictor::from_memory(model.data(), model.size());
    CHECK(sp.num_parts() == 2 && sp.num_cascades() == 1);
    std::vector<std::uint8_t> gray(100 * 100, 50);
    const ImageView image{gray.data(), 100, 100, 100, PixelFormat::Gray};
    const ShapeBox box{0, 0, 100, 100};
    std::vector<Point2d> p = sp.predict(image, box);  // equal pixels: 0 > 0 is false, so down
    CHECK_NEAR(p[0].x, 25, 1e-4);
    CHECK_NEAR(p[0].y, 60, 1e-4);
    CHECK_NEAR(p[1].x, 75, 1e-4);
    gray[50 * 100 + 25] = 51;  // the left feature pixel, brighter
    p = sp.predict(image, box);
    CHECK_NEAR(p[0].x, 35, 1e-4);
    CHECK_NEAR(p[1].x, 85, 1e-4);
    CHECK_NEAR(p[1].y, 50, 1e-4);
    // Feature positions round with floor(v + 0.5): 24.5 reads pixel 25.
    p = sp.predict(image, ShapeBox{-0.5, 0, 99.5, 100});
    CHECK_NEAR(p[0].x, 34.5, 1e-4);
    // Outside the image a feature reads 0: the right pixel off the image, the left one 51 > 0.
    std::vector<std::uint8_t> dark(60 * 100, 0);
    dark[50 * 60 + 25] = 1;
    const ImageView narrow{dark.data(), 60, 100, 60, PixelFormat::Gray};
    CHECK_NEAR(sp.predict(narrow, box)[0].x, 35, 1e-4);
    // Colour intensity is dlib's (R + G + B) / 3 in integers: (50 + 50 + 52) / 3 = 50, (51+51+51)/3 = 51.
    std::vector<std::uint8_t> rgb(100 * 100 * 3, 50);
    rgb[(50 * 100 + 75) * 3 + 2] = 52;
    const ImageView colour{rgb.data(), 100, 100, 300, PixelFormat::RGB};
    CHECK_NEAR(sp.predict(colour, box)[0].y, 60, 1e-4);
    for (int c = 0; c < 3; ++c) rgb[(50 * 100 + 25) * 3 + c] = 51;
    CHECK_NEAR(sp.predict(colour, box)[0].x, 35, 1e-4);
}

TEST(shape_predictor_rejects_malformed_files) {
    const std::vector<std::uint8_t> good = tiny_model();
    for (std::size_t n = 0; n < good.size(); ++n)  // every truncation
        CHECK_THROWS(ShapePredictor::from_memory(good.data(), n), ErrorCode::ModelFormat);
    CHECK_THROWS(ShapePredictor::from_memory(nullptr, 0), ErrorCode::ModelFormat);
    auto with = [&](std::size_t offset, std::uint32_t value) {
        std::vector<std::uint8_t> m = good;
        std::memcpy(&m[offset], &value, 4);
        return m;
    };
    auto refused = [](const std::vector<std::uint8_t>& m) {
        try {
            ShapePredictor::from_memory(m.data(), m.size());
        } catch (const Error& e) {
            return e.code() == ErrorCode::ModelFormat;
        }
        return false;
    };
    std::vector<std::uint8_t> bad = good;
    bad[0] = 'X';
    CHECK(refused(bad));
    bad = good;
    bad.push_back(0);  // trailing byte
    CHECK(refused(bad));
    CHECK(refused(with(kVersionAt, 2)));
    CHECK(refused(with(kPartsAt, 0)));
    CHECK(refused(with(kPartsAt, 0xFFFFFFFFu)));
    CHECK(refused(with(kFeaturesAt, 1u << 24)));  // within the cap, but the file is too short: no allocation
    CHECK(refused(with(kAnchor1At, 2)));          // anchor beyond the 2 parts
    CHECK(refused(with(kSplitIdx2At, 2)));        // split reads beyond the 2 features
    float nan = std::numeric_limits<float>::quiet_NaN(), huge = 1e30f;
    std::uint32_t bits;
    std::memcpy(&bits, &nan, 4);
    CHECK(refused(with(kLeafAt, bits)));
    std::memcpy(&bits, &huge, 4);
    CHECK(refused(with(kLeafAt, bits)));
    // Coinciding initial points (no similarity to fit).
    std::vector<std::uint8_t> same = good;
    std::memcpy(&same[28], &same[20], 8);
    CHECK(refused(same));
    CHECK_THROWS(ShapePredictor::from_file("/nonexistent/shape.bin"), ErrorCode::Io);
}

TEST(shape_predictor_survives_random_corruption) {
    // Random byte changes, truncations and extensions of small valid models: each loads or is
    // refused with ModelFormat, and whatever loads predicts finite points (ASan/UBSan in CI).
    std::mt19937 rng(24);
    std::vector<std::uint8_t> pixels(40 * 30 * 3);
    for (std::uint8_t& p : pixels) p = static_cast<std::uint8_t>(rng());
    const ImageView image{pixels.data(), 40, 30, 120, PixelFormat::RGB};
    int loaded = 0, refused = 0;
    for (int round = 0; round < 4000; ++round) {
        const std::uint32_t parts = 1 + rng() % 5, levels = 1 + rng() % 3, features = 1 + rng() % 9;
        const std::uint32_t trees = 1 + rng() % 4, depth = rng() % 4;
        std::vector<std::uint8_t> m = random_model(rng, parts, levels, features, trees, depth);
        if (round > 0) {  // round 0: the model as made
            for (unsigned k = 1 + rng() % 3; k > 0; --k) m[rng() % m.size()] = static_cast<std::uint8_t>(rng());
            if (rng() % 4 == 0) m.resize(rng() % (m.size() + 8));
        }
        try {
            const ShapePredictor sp = ShapePredictor::from_memory(m.data(), m.size());
            ++loaded;
            for (const ShapeBox& box : {ShapeBox{2, 3, 35, 28}, ShapeBox{-30, -30, 10, 10}, ShapeBox{5, 5, 5, 5}})
                for (const Point2d& p : sp.predict(image, box)) CHECK(std::isfinite(p.x) && std::isfinite(p.y));
        } catch (const Error& e) {
            CHECK(e.code() == ErrorCode::ModelFormat);
            ++refused;
        }
    }
    CHECK(loaded > 100 && refused > 100);
}

TEST(shape_predictor_rejects_bad_boxes_and_images) {
    const std::vector<std::uint8_t> model = tiny_model();
    const ShapePredictor sp = ShapePredictor::from_memory(model.data(), model.size());
    std::vector<std::uint8_t> gray(10 * 10, 0);
    const ImageView image{gray.data(), 10, 10, 10, PixelFormat::Gray};
    const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
    CHECK_THROWS(sp.predict(image, ShapeBox{nan, 0, 5, 5}), ErrorCode::InvalidArgument);
    CHECK_THROWS(sp.predict(image, ShapeBox{0, 0, inf, 5}), ErrorCode::InvalidArgument);
    CHECK_THROWS(sp.predict(image, ShapeBox{0, 0, 5, 2e9}), ErrorCode::InvalidArgument);
    CHECK_THROWS(sp.predict(image, ShapeBox{5, 0, 4, 5}), ErrorCode::InvalidArgument);
    CHECK_THROWS(sp.predict(ImageView{nullptr, 10, 10, 10, PixelFormat::Gray}, ShapeBox{0, 0, 5, 5}),
                 ErrorCode::InvalidArgument);
    // Degenerate and far-away boxes are answered, not refused: every point finite.
    for (const ShapeBox& box : {ShapeBox{3, 3, 3, 3}, ShapeBox{-1e8, -1e8, -1e8 + 5, 1e8}, ShapeBox{-5, -5, 20, 20}})
        for (const Point2d& p : sp.predict(image, box)) CHECK(std::isfinite(p.x) && std::isfinite(p.y));
}

TEST(shape_predictor_bundled_model) {
    const std::string path = bundled_model();
    if (!std::ifstream(path)) {
        std::printf("  (skipped: %s not found)\n", path.c_str());
        return;
    }
    const ShapePredictor sp = ShapePredictor::from_file(path);
    CHECK(sp.num_parts() == 5 && sp.num_cascades() == 15);
    const int w = 240, h = 220;
    std::vector<std::uint8_t> a = pattern(w, h, 0, 0), b = pattern(w, h, 7, 3);
    const ImageView image{a.data(), w, h, w * 3, PixelFormat::BGR};
    const ShapeBox box{30, 20, 170, 160};
    const std::vector<Point2d> p = sp.predict(image, box);
    for (const Point2d& q : p) CHECK(q.x > box.x1 - 70 && q.x < box.x2 + 70 && q.y > box.y1 - 70 && q.y < box.y2 + 70);
    // Whole-pixel shifts of image and box shift the points exactly: every step is exact in double.
    const std::vector<Point2d> shifted =
        sp.predict(ImageView{b.data(), w, h, w * 3, PixelFormat::BGR}, ShapeBox{37, 23, 177, 163});
    for (int i = 0; i < 5; ++i) {
        CHECK(shifted[i].x == p[i].x + 7);
        CHECK(shifted[i].y == p[i].y + 3);
    }
    // (R + G + B) / 3 does not care about channel order; a gray image of those values agrees.
    const std::vector<Point2d> rgb = sp.predict(ImageView{a.data(), w, h, w * 3, PixelFormat::RGB}, box);
    std::vector<std::uint8_t> gray(std::size_t(w) * h);
    for (std::size_t i = 0; i < gray.size(); ++i) gray[i] = std::uint8_t((a[3 * i] + a[3 * i + 1] + a[3 * i + 2]) / 3);
    const std::vector<Point2d> g = sp.predict(ImageView{gray.data(), w, h, w, PixelFormat::Gray}, box);
    for (int i = 0; i < 5; ++i) CHECK(rgb[i].x == p[i].x && rgb[i].y == p[i].y && g[i].x == p[i].x && g[i].y == p[i].y);
    // const predict from several threads at once gives the single-threaded answer.
    std::vector<std::vector<Point2d>> results(4);
    std::vector<std::thread> threads;
    for (auto& r : results) threads.emplace_back([&] { for (int k = 0; k < 20; ++k) r = sp.predict(image, box); });
    for (auto& t : threads) t.join();
    for (const auto& r : results)
        for (int i = 0; i < 5; ++i) CHECK(r[i].x == p[i].x && r[i].y == p[i].y);
    // Loading from memory reads the same model.
    std::ifstream in(path, std::ios::binary);
    const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::vector<Point2d> m = ShapePredictor::from_memory(bytes.data(), bytes.size()).predict(image, box);
    for (int i = 0; i < 5; ++i) CHECK(m[i].x == p[i].x && m[i].y == p[i].y);
}
