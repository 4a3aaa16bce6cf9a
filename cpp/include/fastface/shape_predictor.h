// Face landmarks from a box: dlib's shape predictor (an ensemble of regression trees, Kazemi &
// Sullivan 2014), run from fastface's own file and predicting exactly what dlib predicts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fastface/image.h"

namespace fastface {

struct Point2d {
    double x;
    double y;
};

// The box a shape is predicted in, as dlib's rectangle: (x1, y1) is where the model's
// normalized (0, 0) lies and (x2, y2) its (1, 1). dlib's right/bottom are inclusive, so a
// dlib::rectangle(l, t, r, b) is the box {l, t, r, b}. Needs x1 <= x2, y1 <= y2, all finite and
// within +-1e9 (InvalidArgument otherwise); it may reach outside the image.
struct ShapeBox {
    double x1 = 0, y1 = 0, x2 = 0, y2 = 0;
};

// A cascade of regression-tree forests over pixel-intensity differences. Loaded from the file
// python/fastface/export/dlib_shape.py writes (layout documented there); every count, index and
// value is checked on load, so a malformed file throws Error(ModelFormat) and never reads out
// of bounds. predict() is const and keeps no state: one predictor serves any number of threads.
class ShapePredictor {
public:
    static ShapePredictor from_file(const std::string& path);                  // Io / ModelFormat
    static ShapePredictor from_memory(const std::uint8_t* data, std::size_t size);  // ModelFormat

    int num_parts() const { return static_cast<int>(initial_shape_.size() / 2); }
    int num_cascades() const { return static_cast<int>(cascades_.size()); }

    // num_parts() landmarks in image pixels, unrounded (dlib rounds its output to whole pixels:
    // floor(v + 0.5) of these values). Pixels are read as dlib reads them: gray as is, colour
    // as (R + G + B) / 3 in integers; positions outside the image read 0.
    std::vector<Point2d> predict(const ImageView& image, const ShapeBox& box) const;

private:
    // dlib's test (float)value[idx1] - (float)value[idx2] > thresh, on 8-bit pixels: for an
    // integer difference d, d > thresh exactly when d > floor(thresh), so it is kept as an integer.
    // 8 bytes instead of dlib's 12: the splits are streamed from memory for every face.
    struct Split {
        std::uint16_t idx1, idx2;
        std::int16_t floor_thresh;
    };
    struct Cascade {
        std::vector<std::uint32_t> anchors;  // per feature pixel: the part it is placed from
        std::vector<float> deltas;           // per feature pixel: (dx, dy) in the initial shape's frame
        std::size_t trees = 0, splits_per_tree = 0;
        std::vector<Split> splits;           // trees * splits_per_tree, tree by tree (dlib's node order)
        std::vector<float> leaves;           // trees * (splits_per_tree + 1) * 2 * parts
    };
    std::vector<float> initial_shape_;  // x0, y0, x1, y1, ... in the box's normalized frame
    std::vector<Cascade> cascades_;
};

}  // namespace fastface
