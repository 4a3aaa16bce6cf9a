// Liveness (presentation-attack detection): is the face in front of the camera a live person
// or a printed photo / a screen? Silent, single RGB frame: minivision's MiniFASNet models, each on
// the face box scaled about its centre (by 2.7 and 4.0 for the bundled pair), resized to 80x80
// raw BGR 0-255; their real-class softmax probabilities are averaged.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fastface/detector.h"
#include "fastface/embedder.h"
#include "fastface/image.h"

namespace fastface {

// One model's card (models/minifasnet_*.json).
struct LivenessCard {
    std::string input = "in0";
    std::string output = "out0";
    int size = 80;             // square network input side
    double crop_scale = 2.7;   // the face box is scaled by this about its centre
    InputNorm norm{PixelFormat::BGR, {0.f, 0.f, 0.f}, {1.f, 1.f, 1.f}};
    int classes = 3;           // softmax outputs
    int real_class = 1;        // the live-face class
};

// Boxes whose width or height is below this many pixels carry too little to judge.
constexpr float kMinLivenessBox = 8.f;

// How the boxes of the detector in use sit against the boxes the models were trained on (the
// authors' Caffe RetinaFace): the centre moves by (dx * w, dy * h), the size scales by (sw, sh).
struct LivenessBoxMap {
    double dx = 0, dy = 0, sw = 1, sh = 1;
};
// Measured for fastface's bundled YuNet on the 30 liveness/deepface sample photos (README,
// "Liveness"): the reference boxes are 14% wider, 15% shorter and 7% of a height lower.
constexpr LivenessBoxMap kYuNetBoxMap{-0.009, 0.072, 1.141, 0.851};

// `face` with its box moved into the reference detector's convention (landmarks untouched).
Face map_liveness_box(const Face& face, const LivenessBoxMap& map);

// An inclusive pixel rectangle of the image.
struct PixelRect {
    int left = 0, top = 0, right = 0, bottom = 0;
};

// The region a model sees, as the authors' CropImage cuts it: the face box as their integer
// (x, y, w, h) = (int(x1), int(y1), int(x2 - x1 + 1), int(y2 - y1 + 1)), scaled by `scale` about
// its centre (the scale lowered until it fits the image), shifted back inside the image rather
// than clipped. Throws InvalidArgument for non-finite boxes, boxes under a pixel or entirely
// outside the image.
PixelRect liveness_region(int image_width, int image_height, const Face& face, double scale);

// The region resized to size x size and packed as the network input, in one pass: OpenCV's
// bilinear resize (INTER_LINEAR) in its fixed-point arithmetic, so the values are the uint8
// pixels the reference pipeline feeds, then channel order, mean and scale of `norm`. Gray
// images are replicated to three channels. planes[c]: size x size floats of output channel c.
void liveness_input(const ImageView& image, const PixelRect& region, int size, const InputNorm& norm,
                    float* const* planes);

class Liveness {
public:
    struct Model {
        std::string param_text;
        std::vector<std::uint8_t> weights;
        LivenessCard card;
    };
    // One or more models whose real-class probabilities are averaged; `threshold` is where
    // check() says live; `box_map` moves the detector's boxes into the models' convention
    // (kYuNetBoxMap for fastface's Detector; {} for boxes from the authors' detector).
    // Loading goes through the same checks as Embedder and Detector.
    // Throws fastface::Error: Io, ModelFormat (blobs, output size), InvalidArgument (cards).
    static Liveness from_memory(std::vector<Model> models, float threshold, const EmbedderOptions& options = {},
                                const LivenessBoxMap& box_map = kYuNetBoxMap);
    static Liveness from_files(const std::vector<std::string>& param_paths, const std::vector<std::string>& bin_paths,
                               const std::vector<LivenessCard>& cards, float threshold,
                               const EmbedderOptions& options = {}, const LivenessBoxMap& box_map = kYuNetBoxMap);

    Liveness(Liveness&&) noexcept;
    Liveness& operator=(Liveness&&) noexcept;
    ~Liveness();

    // Probability that `face` is a live person, in [0, 1]; per_model (if given) receives each
    // model's own probability. Thread-safe. Throws InvalidArgument for bad images, boxes under
    // kMinLivenessBox, non-finite boxes and boxes (once mapped) entirely outside the image.
    float score(const ImageView& image, const Face& face, std::vector<float>* per_model = nullptr) const;
    bool check(const ImageView& image, const Face& face) const { return score(image, face) >= threshold(); }

    float threshold() const;
    const LivenessBoxMap& box_map() const;
    std::size_t model_count() const;
    const LivenessCard& card(std::size_t i) const;

    struct Impl;

private:
    explicit Liveness(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace fastface
