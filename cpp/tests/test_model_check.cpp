// The static shape check at load, through the C++ API alone (a board loading a model file with
// no Python): malformed graphs end in Error(ModelFormat) before ncnn runs a layer, a
// well-formed one gets ncnn's shapes, unknown layer types need the caller's consent.
#include <cstdint>
#include <string>
#include <vector>

#include "fastface/detector.h"
#include "fastface/embedder.h"
#include "fastface/model_check.h"
#include "testing.h"

using namespace fastface;

namespace {

std::string graph(const std::vector<std::string>& layers) {
    std::string text = "7767517\n" + std::to_string(layers.size() + 1) + " " + std::to_string(2 * layers.size() + 2) +
                       "\nInput data 0 1 data\n";
    for (const std::string& l : layers) text += l + "\n";
    return text;
}

ModelCard card(int size, const std::string& output) {
    ModelCard c;
    c.width = c.height = size;
    c.output = output;
    return c;
}

bool message_has(const std::string& param, const ModelCard& c, const std::string& needle) {
    try {
        Embedder::without_weights(param, c);
    } catch (const Error& e) {
        return e.code() == ErrorCode::ModelFormat && std::string(e.what()).find(needle) != std::string::npos;
    }
    return false;
}

}  // namespace

TEST(model_check_refuses_layers_their_inputs_do_not_fit) {
    CHECK(message_has(graph({"Convolution conv 1 1 data conv 0=4 1=3 3=2 6=1008"}), card(16, "conv"),
                      "layer 'conv' (Convolution) has weights for 28 input channels but gets 3x16x16"));
    CHECK(message_has(graph({"InnerProduct fc 1 1 data fc 0=8 2=8192"}), card(16, "fc"), "takes 1024 values but gets 768"));
    CHECK(message_has(graph({"BatchNorm bn 1 1 data bn 0=16"}), card(8, "bn"), "16 channels but gets 3x8x8"));
    CHECK(message_has(graph({"Split s 1 2 data a b", "Pooling p 1 1 b p 0=0 1=2 2=2", "Eltwise e 2 1 a p e 0=1"}),
                      card(8, "e"), "adds 3x8x8 and 3x4x4"));
    CHECK(message_has(graph({"Reshape r 1 1 data r 6=\"*(0c)\""}), card(8, "r"), "malformed shape expression"));
    CHECK(message_has(graph({"ReLU a 1 1 data a", "ReLU b 1 1 data b"}), card(8, "b"), "without a Split"));
}

TEST(model_check_needs_consent_for_unknown_layer_types) {
    const std::string param = graph({"LRN lrn 1 1 data lrn 0=0 1=3", "ReLU relu 1 1 lrn relu"});
    CHECK(message_has(param, card(8, "relu"), "layer types fastface cannot shape-check (LRN)"));
    EmbedderOptions allow;
    allow.allow_unknown_layers = true;
    const Embedder e = Embedder::without_weights(param, card(8, "relu"), allow);
    CHECK(e.dim() == 8 * 8 * 3);
    CHECK_THROWS(check_model_shapes(param, {{"data", 8, 8, 3}}), ErrorCode::ModelFormat);
    const std::vector<BlobShapeInfo> shapes = check_model_shapes(param, {{"data", 8, 8, 3}}, true);
    CHECK(shapes.size() == 3 && shapes[1].name == "lrn" && shapes[1].dims == 0);
}

TEST(model_check_gives_ncnn_s_shapes) {
    const std::string param = graph({"Convolution c 1 1 data c 0=8 1=3 3=2 4=1 6=216", "Pooling p 1 1 c p 0=1 4=1",
                                     "InnerProduct fc 1 1 p fc 0=5 2=40"});
    const std::vector<BlobShapeInfo> shapes = check_model_shapes(param, {{"data", 17, 9, 3}});
    CHECK(shapes.size() == 4);
    CHECK(shapes[1].name == "c" && shapes[1].dims == 3 && shapes[1].w == 9 && shapes[1].h == 5 && shapes[1].c == 8);
    CHECK(shapes[2].dims == 1 && shapes[2].w == 8);
    CHECK(shapes[3].dims == 1 && shapes[3].w == 5);
    const Embedder e = Embedder::without_weights(param, card(17, "fc"));
    CHECK(e.dim() == 5);
}

namespace {

// Raw float32 values (what ncnn reads for biases and int8 scales: no tag).
void append_floats(std::vector<std::uint8_t>& bin, std::size_t count, float value) {
    for (std::size_t i = 0; i < count; ++i) {
        const auto* b = reinterpret_cast<const std::uint8_t*>(&value);
        bin.insert(bin.end(), b, b + 4);
    }
}
// A weight blob stored as int8, as ncnn writes it: a 4-byte tag, then the values padded to 4 bytes.
std::vector<std::uint8_t> int8_tagged(std::size_t count) {
    std::vector<std::uint8_t> bin = {0x38, 0x4B, 0x0D, 0x00};  // ncnn's int8 tag, 0x000D4B38
    bin.resize(4 + (count + 3) / 4 * 4, 1);
    return bin;
}

}  // namespace

TEST(model_check_refuses_int8_weights_without_int8_scales) {
    // Found by the C++ loader fuzzer on the int8 YuNet: `8=` mutated into a string leaves the
    // layer float, but its weights stay int8-tagged; ncnn picks the int8 pipeline by how the
    // weights were stored and reads the scales it never loaded (SIGSEGV in create_pipeline).
    std::vector<std::uint8_t> weights = int8_tagged(4 * 3 * 3 * 3);
    CHECK_THROWS(Embedder::from_memory(graph({"Convolution conv 1 1 data conv 0=4 1=3 3=2 6=108"}), weights, card(16, "conv")),
                 ErrorCode::ModelFormat);
    try {
        Embedder::from_memory(graph({"Convolution conv 1 1 data conv 0=4 1=3 3=2 6=108 8=sq1"}), weights, card(16, "conv"));
        CHECK(false);
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("layer 'conv' (Convolution) has weights stored as int8 but its parameters "
                                         "declare no int8 scales") != std::string::npos);
    }
    // A layer with no int8 pipeline at all.
    CHECK_THROWS(Embedder::from_memory(graph({"Deconvolution d 1 1 data d 0=4 1=3 6=108"}), weights, card(8, "d")),
                 ErrorCode::ModelFormat);
    // The same weights with their scales (8=1: per-output weight scales, then the input's) load and run.
    append_floats(weights, 4 + 1, 1.f);
    const Embedder e =
        Embedder::from_memory(graph({"Convolution conv 1 1 data conv 0=4 1=3 3=2 6=108 8=1"}), weights, card(16, "conv"));
    std::vector<std::uint8_t> pixels(16 * 16 * 3, 100);
    ImageView view;
    view.data = pixels.data(), view.width = view.height = 16, view.row_stride = 16 * 3, view.format = PixelFormat::BGR;
    std::vector<float> out(e.dim());
    e.embed(&view, 1, out.data());
    CHECK(e.dim() == 4 * 7 * 7);
}
