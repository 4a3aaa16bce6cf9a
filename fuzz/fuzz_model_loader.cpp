// libFuzzer target: the C++ core's model loaders (Embedder, Detector) on untrusted .param/.bin
// bytes, then one inference — what a board runs on a model file it downloaded. Built with ASan
// and UBSan (CMake: -DFASTFACE_BUILD_FUZZERS=ON with clang); ncnn stays uninstrumented, so a
// read past a blob inside ncnn shows up as a crash or an ASan report on fastface's side.
//
// Input: one header line, then the .param text, then optionally "\n#BIN\n" and the weights
// (without them the graph gets zero weights):
//   "E <w> <h> <input> <output>\n"  an Embedder with that card
//   "D <w> <h> <input> <kind>\n"    a Detector (kind yunet or retinaface; w h 0 0 = any size)
// A loader may refuse the input with fastface::Error; anything else is a finding.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "fastface/fastface.h"

namespace {

const std::string kBinMark = "\n#BIN\n";

void run(const std::string& data) {
    const std::size_t eol = data.find('\n');
    if (eol == std::string::npos) return;
    std::istringstream header(data.substr(0, eol));
    std::string kind, input, last;
    int w = 0, h = 0;
    if (!(header >> kind >> w >> h >> input >> last)) return;
    // Keep inputs small: the point is the graph, not the cost of a big blob.
    if (w < 0 || h < 0 || w > 256 || h > 256) return;
    const std::string rest = data.substr(eol + 1);
    const std::size_t mark = rest.find(kBinMark);
    std::string param = rest.substr(0, mark);
    const bool has_weights = mark != std::string::npos;
    std::vector<std::uint8_t> weights;
    if (has_weights) weights.assign(rest.begin() + mark + kBinMark.size(), rest.end());

    std::vector<std::uint8_t> pixels(64 * 48 * 3, 128);
    fastface::ImageView image;
    image.data = pixels.data(), image.width = 64, image.height = 48, image.row_stride = 64 * 3;
    image.format = fastface::PixelFormat::BGR;
    if (kind == "E") {
        if (w < 1 || h < 1) return;
        fastface::ModelCard card;
        card.input = input, card.output = last, card.width = w, card.height = h;
        fastface::Embedder embedder =
            has_weights ? fastface::Embedder::from_memory(param, weights, card)
                        : fastface::Embedder::without_weights(param, card);
        std::vector<std::uint8_t> crop(static_cast<std::size_t>(w) * h * 3, 100);
        fastface::ImageView view = image;
        view.data = crop.data(), view.width = w, view.height = h, view.row_stride = w * 3;
        std::vector<float> out(embedder.dim());
        embedder.embed(&view, 1, out.data());
    } else if (kind == "D") {
        fastface::DetectorConfig config;
        config.input = input, config.input_width = w, config.input_height = h, config.max_side = 96;
        if (last == "yunet") {
            config.kind = fastface::DetectorKind::YuNet;
            for (int i = 0; i < 12; ++i) config.outputs.push_back("out" + std::to_string(i));
        } else {
            config.kind = fastface::DetectorKind::RetinaFaceInsightface;
        }
        if (!has_weights) return;  // a Detector always loads weights (no zero-weight loader)
        fastface::Detector detector = fastface::Detector::from_memory(param, weights, config);
        detector.detect(image);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        run(std::string(reinterpret_cast<const char*>(data), size));
    } catch (const fastface::Error&) {
        // the documented refusal
    }
    return 0;
}
