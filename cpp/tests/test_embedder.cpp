// Embedder: loading and error paths with a tiny in-memory model, and the shared MobileFaceNet
// when ../shared is present (FASTFACE_TEST_DATA overrides the data folder).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "fastface/embedder.h"
#include "testing.h"

using namespace fastface;

namespace {

// data (3x4x4) -> 1x1 conv to 2 channels -> flatten: a 32-value "embedding".
const char* kTinyParam =
    "7767517\n"
    "3 3\n"
    "Input data 0 1 data 0=4 1=4 2=3\n"
    "Convolution conv 1 1 data conv 0=2 1=1 5=1 6=6\n"
    "Flatten fc1 1 1 conv fc1\n";

// ncnn .bin layout: Convolution's weights carry a 4-byte type flag (0 = fp32), its bias none.
std::vector<std::uint8_t> tiny_weights() {
    const float w[8] = {0, 1, 0.5f, -1, 2, 0.25f, 0.1f, 0.2f};  // 2x3 weights, then 2 biases
    std::vector<std::uint8_t> bytes(4 + sizeof(w), 0);
    std::memcpy(bytes.data() + 4, w, sizeof(w));
    return bytes;
}

ModelCard tiny_card() {
    ModelCard card;
    card.width = 4;
    card.height = 4;
    return card;
}

std::string shared_models() {
    const char* env = std::getenv("FASTFACE_TEST_DATA");
    return (env ? std::string(env) : std::string("../shared/data")) + "/models/mobilefacenet-insightface/";
}

}  // namespace

TEST(embedder_runs_tiny_model) {
    const Embedder e = Embedder::from_memory(kTinyParam, tiny_weights(), tiny_card());
    CHECK(e.dim() == 32);
    std::vector<std::uint8_t> pixels(4 * 4 * 3, 100);
    const ImageView crop{pixels.data(), 4, 4, 12, PixelFormat::RGB};
    std::vector<float> out(32);
    e.embed(&crop, 1, out.data(), false);
    // conv channel 0 = 0*R + 1*G + 0.5*B + bias 0.1 with R = G = B = 100
    CHECK_NEAR(out[0], 150.1, 1e-3);
    CHECK_NEAR(out[16], (-1 + 2 + 0.25) * 100 + 0.2, 1e-3);
    e.embed(&crop, 1, out.data(), true);
    double norm = 0;
    for (float v : out) norm += double(v) * v;
    CHECK_NEAR(norm, 1.0, 1e-5);
}

TEST(embed_face_with_a_crop_geometry_matches_the_card_path) {
    const Embedder e = Embedder::from_memory(kTinyParam, tiny_weights(), tiny_card());
    std::vector<std::uint8_t> pixels(40 * 30 * 3);
    for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>((i * 13) % 251);
    const ImageView image{pixels.data(), 40, 30, 120, PixelFormat::RGB};
    const std::vector<Point2f> landmarks = {{12, 10}, {25, 11}, {18, 16}, {13, 21}, {24, 21}};
    std::vector<float> card_path(32), geometry(32), shifted(32);
    e.embed_face(image, landmarks, card_path.data(), false);
    Affine dst_to_src = invert_affine(estimate_similarity(landmarks, arcface_template(4, 4)));
    e.embed_face(image, dst_to_src, geometry.data(), false);
    for (int i = 0; i < 32; ++i) CHECK_NEAR(geometry[i], card_path[i], 1e-5);
    dst_to_src[2] += 1.5;  // another geometry: another crop
    e.embed_face(image, dst_to_src, shifted.data(), false);
    double difference = 0;
    for (int i = 0; i < 32; ++i) difference += std::fabs(shifted[i] - card_path[i]);
    CHECK(difference > 1e-2);
    Affine broken = dst_to_src;
    broken[4] = std::nan("");
    CHECK_THROWS(e.embed_face(image, broken, shifted.data()), ErrorCode::InvalidArgument);
    const Affine flat = {1, 2, 0, 2, 4, 0};  // rows parallel: no area
    CHECK_THROWS(e.embed_face(image, flat, shifted.data()), ErrorCode::InvalidArgument);
}

TEST(embedder_rejects_bad_models) {
    std::vector<std::uint8_t> weights = tiny_weights();
    CHECK_THROWS(Embedder::from_memory("garbage", weights, tiny_card()), ErrorCode::ModelFormat);
    CHECK_THROWS(Embedder::from_memory("", weights, tiny_card()), ErrorCode::ModelFormat);
    std::vector<std::uint8_t> truncated(weights.begin(), weights.end() - 5);
    CHECK_THROWS(Embedder::from_memory(kTinyParam, truncated, tiny_card()), ErrorCode::ModelFormat);
    std::vector<std::uint8_t> longer = weights;
    longer.resize(longer.size() + 64);
    CHECK_THROWS(Embedder::from_memory(kTinyParam, longer, tiny_card()), ErrorCode::ModelFormat);
    ModelCard wrong_input = tiny_card();
    wrong_input.input = "image";
    CHECK_THROWS(Embedder::from_memory(kTinyParam, weights, wrong_input), ErrorCode::ModelFormat);
    ModelCard wrong_output = tiny_card();
    wrong_output.output = "fc7";
    CHECK_THROWS(Embedder::from_memory(kTinyParam, weights, wrong_output), ErrorCode::ModelFormat);
    ModelCard wrong_dim = tiny_card();
    wrong_dim.dim = 128;
    CHECK_THROWS(Embedder::from_memory(kTinyParam, weights, wrong_dim), ErrorCode::ModelFormat);
    CHECK_THROWS(Embedder::from_files("/nonexistent.param", "/nonexistent.bin", tiny_card()), ErrorCode::Io);
}

TEST(embedder_rejects_wrong_crop_size) {
    const Embedder e = Embedder::from_memory(kTinyParam, tiny_weights(), tiny_card());
    std::vector<std::uint8_t> pixels(5 * 5 * 3, 0);
    const ImageView crop{pixels.data(), 5, 5, 15, PixelFormat::BGR};
    std::vector<float> out(32);
    CHECK_THROWS(e.embed(&crop, 1, out.data()), ErrorCode::InvalidArgument);
}

TEST(embedder_zero_weights_for_timing) {
    const Embedder e = Embedder::without_weights(kTinyParam, tiny_card());
    CHECK(e.dim() == 32);
}

TEST(mobilefacenet_embeds_when_shared_data_present) {
    const std::string dir = shared_models();
    if (!std::ifstream(dir + "mobilefacenet.param")) {
        std::printf("  (skipped: %s not found)\n", dir.c_str());
        return;
    }
    const Embedder e = Embedder::from_files(dir + "mobilefacenet.param", dir + "mobilefacenet.bin", ModelCard{});
    CHECK(e.dim() == 128);
    std::vector<std::uint8_t> pixels(112 * 112 * 3);
    for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>((i * 7) % 251);
    const ImageView crop{pixels.data(), 112, 112, 336, PixelFormat::BGR};
    std::vector<float> a(128), b(128);
    e.embed(&crop, 1, a.data());
    e.embed_face(crop, arcface_template(112, 112), b.data());  // aligning a crop to itself
    double dot = 0;
    for (int i = 0; i < 128; ++i) dot += double(a[i]) * b[i];
    CHECK_NEAR(dot, 1.0, 1e-4);
}
