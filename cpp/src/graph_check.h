// Internal: static shape inference over an ncnn graph, so a malformed model file is refused with
// a message before ncnn runs a layer on a blob that does not fit its weights or parameters
// (ncnn trusts that it does, and reads or writes past the blob when it does not).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "net.h"
#include "paramdict.h"

namespace fastface {

// The logical shape of an ncnn blob, as ncnn::Mat holds it (packing aside). dims 0: not known.
struct BlobShape {
    int dims = 0;
    int w = 1, h = 1, d = 1, c = 1;

    long long total() const { return static_cast<long long>(w) * h * d * c; }
    std::string str() const;  // "3x112x112" (c x h x w), as a user reads tensors
    bool operator==(const BlobShape& o) const { return dims == o.dims && w == o.w && h == o.h && d == o.d && c == o.c; }
};

class GraphCheck {
public:
    GraphCheck() = default;
    // Reads every layer's parameters from the param text that ncnn has just loaded into `net`,
    // with ncnn's own parser, so the checker sees exactly what ncnn's layers were given.
    GraphCheck(const ncnn::Net& net, const std::string& param_text);

    // Layer types whose shapes this checker does not know, each once, in graph order.
    const std::vector<std::string>& unknown_types() const { return unknown_types_; }

    // Propagates shapes from the given inputs through every layer, in graph order. Throws
    // Error(ModelFormat) naming the first layer whose weights, groups or parameters do not fit
    // what reaches it, or that reads a blob nothing sets. Layers of unknown types, and what
    // they feed, are skipped (the caller decides whether unknown types are allowed at all);
    // so are forms of known layers the checker does not model (dynamic weights, ...) when
    // `allow_unchecked`, else they are refused. Returns every blob's shape, by index (dims 0
    // where not known).
    std::vector<BlobShape> propagate(const std::vector<std::pair<std::string, BlobShape>>& inputs,
                                     bool allow_unchecked) const;

    // Loads every layer's weights from `weights` into ncnn's generic layer implementations (no
    // pipeline is built) and throws Error(ModelFormat) naming the first layer whose weights
    // are stored as int8 without int8 scales in its parameters: ncnn picks a layer's pipeline
    // by how its weights were stored, and builds the int8 one from scales it never loaded. Stops
    // at a layer type this ncnn build lacks (where later layers' weights start is unknown).
    void check_weight_storage(const ncnn::DataReader& weights) const;

    struct Layer {
        std::string type, name;
        std::vector<int> bottoms, tops;
        ncnn::ParamDict params;
    };

private:
    std::vector<Layer> layers_;
    std::vector<std::string> blob_names_;
    std::vector<std::string> unknown_types_;
};

}  // namespace fastface
