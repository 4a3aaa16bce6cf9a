// Static shape check of an ncnn model: what Embedder, Detector and every other fastface loader
// run at load, available on its own (a board vetting a downloaded file, tooling, fuzzing).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace fastface {

struct BlobShapeInfo {
    std::string name;
    int dims = 0;            // 0: not known (after a layer the checker does not know)
    int w = 1, h = 1, d = 1, c = 1;
};

struct ModelInput {
    std::string name;
    int w = 0, h = 0, c = 3;
};

// Propagates the inputs' shapes through every layer of `param_text` without running ncnn.
// Throws Error(ModelFormat) naming the first layer whose weights, groups or parameters do not
// fit what reaches it, or, unless `allow_unknown_layers`, that has a type the checker does not
// know. Returns every blob's shape, in the graph's blob order.
std::vector<BlobShapeInfo> check_model_shapes(const std::string& param_text, const std::vector<ModelInput>& inputs,
                                              bool allow_unknown_layers = false);

}  // namespace fastface
