// Internal: an ncnn network loaded with bounds-checked weights, shared by Embedder and Detector.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "fastface/embedder.h"
#include "graph_check.h"
#include "net.h"

namespace fastface {

// Caps on what a model file or card may ask for, checked before allocating: one inference
// buffer (a 4096x4096x16 float blob is 1 GiB), the side of a model's input.
constexpr std::size_t kMaxBlobBytes = std::size_t(1) << 30;
constexpr int kMaxInputSide = 4096;

struct NcnnModel {
    ncnn::Net net;
    std::vector<std::uint8_t> weights;  // ncnn may reference weights in place: keep them alive
    GraphCheck graph;
    bool allow_unknown_layers = false;

    explicit NcnnModel(const EmbedderOptions& options);

    // Parses the param text and refuses layer types the shape checker does not know (unless the
    // options allow them). Throws ModelFormat.
    void parse(const std::string& param_text);

    // Shape-checks the graph for `input` at w x h x c (check_input), then loads `weights` (moved
    // in) or, when null, zero weights — so no malformed layer reaches ncnn's weight packing
    // either. Throws ModelFormat for a missing input, layers that do not fit, truncated or
    // oversized weights.
    void load_weights(std::vector<std::uint8_t>* weights, const std::string& input, int w, int h, int c);

    // ncnn trusts that every blob fits the layer it reaches and reads or writes past it when
    // it does not (a malformed file, a card size the graph was not made for). Propagates the
    // shape of `input` (w x h x c) through the whole graph before ncnn runs anything, throwing
    // ModelFormat naming the first layer that does not fit. Each input size is checked once
    // (remembered), so an inference at a size already seen costs a lookup.
    void check_input(const std::string& input, int w, int h, int c) const;

    // "" when every layer was shape-checked, else a sentence saying which were not.
    std::string unchecked_note() const;

    std::vector<std::string> blob_names() const;
    std::vector<std::string> input_names() const;
    bool has_blob(const std::string& name) const;

private:
    mutable std::mutex checked_mutex_;
    mutable std::vector<std::array<int, 3>> checked_sizes_;
};

std::vector<std::uint8_t> read_file(const std::string& path);
std::string join(const std::vector<std::string>& names);

}  // namespace fastface
