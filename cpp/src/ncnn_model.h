// Internal: an ncnn network loaded with bounds-checked weights, shared by Embedder and Detector.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fastface/embedder.h"
#include "net.h"

namespace fastface {

// Caps on what a model file or card may ask for, checked before allocating: one inference
// buffer (a 4096x4096x16 float blob is 1 GiB), the side of a model's input.
constexpr std::size_t kMaxBlobBytes = std::size_t(1) << 30;
constexpr int kMaxInputSide = 4096;

struct NcnnModel {
    ncnn::Net net;
    std::vector<std::uint8_t> weights;  // ncnn may reference weights in place: keep them alive
    // A layer whose weights fix what its input must hold, from the param text, in graph order.
    struct LayerInput {
        std::string layer, bottom;
        long long expected;  // InnerProduct: values (weight_data_size / num_output); convolutions: channels
        bool channels;       // a convolution's channel count, which no input size changes
    };
    std::vector<LayerInput> layer_inputs;

    explicit NcnnModel(const EmbedderOptions& options);

    // Parses the param text, then loads `weights` (moved in) or, when null, zero weights.
    // Throws ModelFormat for unparsable params, truncated or oversized weights.
    void load(const std::string& param_text, std::vector<std::uint8_t>* weights);

    // ncnn's InnerProduct trusts that its input holds weight_data_size / num_output values, and
    // its convolutions that theirs has the channels their weights were made for; both read past
    // the blob otherwise (a card size the graph was not made for, a malformed file). Checks each
    // one's input on this extractor in graph order (ncnn computes and caches it, and no layer runs
    // before the layers feeding it passed), throwing ModelFormat. Channel counts depend on the
    // graph alone: `all` checks them too (once, on the probe at load); per inference only the
    // InnerProduct sizes, which depend on the input size.
    void check_layer_inputs(ncnn::Extractor& ex, bool all) const;

    std::vector<std::string> blob_names() const;
    std::vector<std::string> input_names() const;
    bool has_blob(const std::string& name) const;
};

std::vector<std::uint8_t> read_file(const std::string& path);
std::string join(const std::vector<std::string>& names);

}  // namespace fastface
