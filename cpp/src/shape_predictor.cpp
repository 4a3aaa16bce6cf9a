#include "fastface/shape_predictor.h"

#include <cmath>
#include <cstring>

#include "fastface/error.h"
#include "ncnn_model.h"

namespace fastface {

namespace {

constexpr char kMagic[8] = {'F', 'F', 'S', 'H', 'A', 'P', 'E', '\0'};
constexpr std::uint32_t kVersion = 1;
// Far beyond any trained model (dlib's 5-point one: 15 levels of 500 depth-4 trees over 800
// pixels); they keep every size computed from a file's counts well inside 64 bits, and feature
// indices within a split's 16 bits.
constexpr std::uint32_t kMaxParts = 1u << 16, kMaxCascades = 1u << 10, kMaxFeatures = 1u << 16,
                        kMaxTrees = 1u << 24, kMaxSplitsPerTree = 1u << 16;
// Normalized coordinates, offsets and leaf increments are O(1) in a real model; the bound keeps
// any sum of them finite, so a crafted file cannot push the shape to infinity.
constexpr float kMaxModelValue = 1e4f;
// Boxes beyond this lie far outside any image; inside it, every landmark stays finite.
constexpr double kMaxBoxCoordinate = 1e9;

[[noreturn]] void malformed(const std::string& what) {
    throw Error(ErrorCode::ModelFormat, "not a valid fastface shape predictor file: " + what);
}

// Little-endian fields with bounds checks: a short file fails here, before any allocation.
class Reader {
public:
    Reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

    const std::uint8_t* bytes(std::size_t n, const char* what) {
        need(n, what);
        pos_ += n;
        return data_ + pos_ - n;
    }
    std::uint32_t u32(const char* what) {
        need(4, what);
        const std::uint8_t* p = data_ + pos_;
        pos_ += 4;
        return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 | std::uint32_t(p[3]) << 24;
    }
    float f32(const char* what) {
        const std::uint32_t bits = u32(what);
        float value;
        std::memcpy(&value, &bits, sizeof value);
        if (!(std::fabs(value) <= kMaxModelValue))
            malformed(std::string(what) + " " + std::to_string(value) + " is not a finite number of magnitude <= 1e4");
        return value;
    }
    std::uint32_t count(const char* what, std::uint32_t limit) {
        const std::uint32_t n = u32(what);
        if (n > limit) malformed(std::string(what) + " " + std::to_string(n) + " exceeds " + std::to_string(limit));
        return n;
    }
    void need(std::uint64_t bytes, const char* what) const {
        if (bytes > size_ - pos_)
            malformed(std::string("truncated: ") + what + " needs " + std::to_string(bytes) + " bytes at offset " +
                      std::to_string(pos_) + ", the file has " + std::to_string(size_ - pos_) + " more");
    }
    bool at_end() const { return pos_ == size_; }
    std::size_t remaining() const { return size_ - pos_; }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

// Gray as stored; colour as dlib's get_pixel_intensity(rgb_pixel): (R + G + B) / 3, truncated.
inline std::uint8_t intensity(const std::uint8_t* pixel, int channels) {
    if (channels == 1) return pixel[0];
    return static_cast<std::uint8_t>((unsigned(pixel[0]) + unsigned(pixel[1]) + unsigned(pixel[2])) / 3);
}

inline void prefetch(const float* values, std::size_t count) {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(values);
    __builtin_prefetch(values + count - 1);
#else
    (void)values, (void)count;
#endif
}

// The linear part of the least-squares similarity taking `from` onto `to` (dlib's
// find_tform_between_shapes: Umeyama in double, cast to float). For a similarity the optimum has
// the closed form [[a, -b], [b, a]] with a = (cov00 + cov11) / var, b = (cov10 - cov01) / var,
// which is what dlib's SVD computes up to double rounding, far below the float cast.
struct Linear2f {
    float m00 = 1, m01 = 0, m10 = 0, m11 = 1;
};

Linear2f similarity_linear(const std::vector<float>& from, const std::vector<float>& to) {
    const std::size_t n = from.size() / 2;
    if (n == 1) return {};  // dlib: identity for a single landmark
    double fx = 0, fy = 0, tx = 0, ty = 0;
    for (std::size_t i = 0; i < n; ++i) {
        fx += from[2 * i];
        fy += from[2 * i + 1];
        tx += to[2 * i];
        ty += to[2 * i + 1];
    }
    fx /= double(n), fy /= double(n), tx /= double(n), ty /= double(n);
    double variance = 0, c00 = 0, c01 = 0, c10 = 0, c11 = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double ax = from[2 * i] - fx, ay = from[2 * i + 1] - fy;
        const double bx = to[2 * i] - tx, by = to[2 * i + 1] - ty;
        variance += ax * ax + ay * ay;
        c00 += bx * ax, c01 += bx * ay, c10 += by * ax, c11 += by * ay;
    }
    // The 1/n of dlib's variance and covariance cancels in the ratio.
    const double a = (c00 + c11) / variance, b = (c10 - c01) / variance;
    return {float(a), float(-b), float(b), float(a)};
}

}  // namespace

ShapePredictor ShapePredictor::from_file(const std::string& path) {
    const std::vector<std::uint8_t> data = read_file(path);
    try {
        return from_memory(data.data(), data.size());
    } catch (const Error& e) {
        throw Error(e.code(), "'" + path + "': " + e.what());
    }
}

ShapePredictor ShapePredictor::from_memory(const std::uint8_t* data, std::size_t size) {
    if (data == nullptr && size != 0) throw Error(ErrorCode::InvalidArgument, "shape predictor data is null");
    Reader in(data, size);
    if (std::memcmp(in.bytes(sizeof kMagic, "magic"), kMagic, sizeof kMagic) != 0)
        malformed("wrong magic (expected \"FFSHAPE\"; convert dlib's .dat with python -m fastface.export.dlib_shape)");
    const std::uint32_t version = in.u32("version");
    if (version != kVersion) malformed("version " + std::to_string(version) + " (this build reads version 1)");

    ShapePredictor p;
    const std::uint32_t parts = in.count("part count", kMaxParts);
    if (parts == 0) malformed("no parts");
    const std::uint32_t cascades = in.count("cascade count", kMaxCascades);
    const std::size_t shape_size = 2 * std::size_t(parts);
    in.need(4 * std::uint64_t(shape_size), "initial shape");
    p.initial_shape_.resize(shape_size);
    for (float& v : p.initial_shape_) v = in.f32("initial shape value");
    bool spread = parts == 1;
    for (std::size_t i = 1; i < parts && !spread; ++i)
        spread = p.initial_shape_[2 * i] != p.initial_shape_[0] || p.initial_shape_[2 * i + 1] != p.initial_shape_[1];
    if (!spread) malformed("the initial shape's points all coincide");

    p.cascades_.resize(cascades);
    for (std::uint32_t level = 0; level < cascades; ++level) {
        Cascade& c = p.cascades_[level];
        const std::uint32_t features = in.count("feature count", kMaxFeatures);
        c.trees = in.count("tree count", kMaxTrees);
        c.splits_per_tree = in.count("splits per tree", kMaxSplitsPerTree);
        const std::uint64_t splits = std::uint64_t(c.trees) * c.splits_per_tree;
        const std::uint64_t leaf_values = std::uint64_t(c.trees) * (c.splits_per_tree + 1) * shape_size;
        // All of the level's arrays at once, before allocating any of them.
        in.need(12 * std::uint64_t(features) + 12 * splits + 4 * leaf_values, "a cascade level");

        c.anchors.resize(features);
        for (std::uint32_t& a : c.anchors) {
            a = in.u32("anchor");
            if (a >= parts)
                malformed("cascade " + std::to_string(level) + ": anchor " + std::to_string(a) + " of " +
                          std::to_string(parts) + " parts");
        }
        c.deltas.resize(2 * std::size_t(features));
        for (float& d : c.deltas) d = in.f32("feature offset");
        c.splits.resize(splits);
        for (Split& s : c.splits) {
            const std::uint32_t idx1 = in.u32("split feature"), idx2 = in.u32("split feature");
            if (idx1 >= features || idx2 >= features)
                malformed("cascade " + std::to_string(level) + ": a split compares features " + std::to_string(idx1) +
                          " and " + std::to_string(idx2) + " of " + std::to_string(features));
            // |thresh| <= 1e4 (checked by f32), so its floor fits 16 bits.
            s = {std::uint16_t(idx1), std::uint16_t(idx2), std::int16_t(std::floor(in.f32("split threshold")))};
        }
        c.leaves.resize(leaf_values);
        for (float& v : c.leaves) v = in.f32("leaf value");
    }
    if (!in.at_end()) malformed(std::to_string(in.remaining()) + " bytes after the last cascade");
    return p;
}

std::vector<Point2d> ShapePredictor::predict(const ImageView& image, const ShapeBox& box) const {
    validate(image);
    for (double v : {box.x1, box.y1, box.x2, box.y2})
        if (!(std::fabs(v) <= kMaxBoxCoordinate))
            throw Error(ErrorCode::InvalidArgument, "box coordinates must be finite and within +-1e9, got " +
                                                        std::to_string(v));
    if (box.x2 < box.x1 || box.y2 < box.y1)
        throw Error(ErrorCode::InvalidArgument, "box must have x1 <= x2 and y1 <= y2");
    // dlib's unnormalizing transform: (0, 0) -> (x1, y1), (1, 1) -> (x2, y2).
    const double width = box.x2 - box.x1, height = box.y2 - box.y1;
    const int channels = image.channels();
    const std::size_t shape_size = initial_shape_.size();

    std::vector<float> shape = initial_shape_;
    std::vector<std::ptrdiff_t> offsets;  // per feature pixel: its byte in the image, -1 outside
    std::vector<std::uint8_t> values;
    std::vector<const float*> chosen;
    for (const Cascade& c : cascades_) {
        // Each feature pixel rides on its anchor part, its offset turned and scaled with the shape.
        // Positions first, then the reads: independent loads the CPU overlaps (most miss the cache).
        const Linear2f t = similarity_linear(initial_shape_, shape);
        const std::size_t features = c.anchors.size();
        offsets.resize(features);
        for (std::size_t f = 0; f < features; ++f) {
            const float dx = c.deltas[2 * f], dy = c.deltas[2 * f + 1];
            const float nx = t.m00 * dx + t.m01 * dy + shape[2 * c.anchors[f]];
            const float ny = t.m10 * dx + t.m11 * dy + shape[2 * c.anchors[f] + 1];
            // dlib's pixel is floor(v + 0.5), v in double; inside the image v + 0.5 >= 0, where
            // truncation is that floor (and a NaN fails both tests).
            const double px = width * double(nx) + box.x1 + 0.5, py = height * double(ny) + box.y1 + 0.5;
            const bool inside = px >= 0 && px < image.width && py >= 0 && py < image.height;
            offsets[f] = inside ? std::ptrdiff_t(py) * image.row_stride + std::ptrdiff_t(px) * channels : -1;
        }
        values.resize(features);
        for (std::size_t f = 0; f < features; ++f)
            values[f] = offsets[f] < 0 ? 0 : intensity(image.data + offsets[f], channels);

        // The leaves a level picks depend on its pixels only, not on the shape: choose them all
        // first, fetching each from memory (the leaves are most of the model's 6 MB), then add
        // them in tree order — dlib's order, so the float sums are bit-identical.
        const std::size_t depth = c.splits_per_tree, leaf_stride = (depth + 1) * shape_size;
        chosen.resize(c.trees);
        for (std::size_t tree = 0; tree < c.trees; ++tree) {
            const Split* splits = c.splits.data() + tree * depth;
            std::size_t node = 0;
            while (node < depth) {
                const Split& s = splits[node];
                const int difference = int(values[s.idx1]) - int(values[s.idx2]);
                // Left child 2n+1 when the difference exceeds the threshold, else right 2n+2;
                // arithmetic, not a branch: the outcomes are coin flips a predictor cannot learn.
                node = 2 * node + 2 - std::size_t(difference > s.floor_thresh);
            }
            chosen[tree] = c.leaves.data() + tree * leaf_stride + (node - depth) * shape_size;
            prefetch(chosen[tree], shape_size);
        }
        for (const float* leaf : chosen)
            for (std::size_t k = 0; k < shape_size; ++k) shape[k] += leaf[k];
    }
    std::vector<Point2d> points(shape_size / 2);
    for (std::size_t i = 0; i < points.size(); ++i)
        points[i] = {width * double(shape[2 * i]) + box.x1, height * double(shape[2 * i + 1]) + box.y1};
    return points;
}

}  // namespace fastface
