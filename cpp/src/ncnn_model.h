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
    struct InnerProductInput {
        std::string layer, bottom;
        long long values;  // weight_data_size / num_output
    };
    std::vector<InnerProductInput> inner_products;  // from the param text

    explicit NcnnModel(const EmbedderOptions& options);

    // Parses the param text, then loads `weights` (moved in) or, when null, zero weights.
    // Throws ModelFormat for unparsable params, truncated or oversized weights.
    void load(const std::string& param_text, std::vector<std::uint8_t>* weights);

    // ncnn's InnerProduct trusts that its input holds weight_data_size / num_output values per
    // output and reads past the blob otherwise (a card size the graph was not made for). Checks
    // each one's input on this extractor (ncnn computes and caches it), throwing ModelFormat.
    void check_inner_products(ncnn::Extractor& ex) const;

    std::vector<std::string> blob_names() const;
    std::vector<std::string> input_names() const;
    bool has_blob(const std::string& name) const;
};

std::vector<std::uint8_t> read_file(const std::string& path);
std::string join(const std::vector<std::string>& names);

}  // namespace fastface
