// Face detection with an ncnn model: any image in, faces with 5 landmarks out, in the
// image's own pixel coordinates.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "fastface/align.h"
#include "fastface/embedder.h"
#include "fastface/image.h"

namespace fastface {

struct Face {
    float x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // box corners
    float score = 0;
    // left eye, right eye, nose tip, left and right mouth corners (as seen in the image)
    std::array<Point2f, 5> landmarks{};
};

// Which output convention to decode.
enum class DetectorKind {
    // insightface RetinaFace (mxnet lineage), as in ncnn's examples/retinaface.cpp: per stride
    // 32/16/8 the blobs face_rpn_{cls_prob_reshape,bbox_pred,landmark_pred}_stride<s>.
    RetinaFaceInsightface,
    // RetinaFace as in biubug6/Pytorch_Retinaface (fastface.train.retinaface), converted by
    // pnnx: outputs loc (N x 4), conf (N x 2, softmaxed), landmarks (N x 10) over SSD priors
    // (min sizes 16/32, 64/128, 256/512 at strides 8/16/32; variances 0.1, 0.2).
    RetinaFaceBiubug6,
    // YuNet (libfacedetection), converted by pnnx: per stride 8/16/32 the outputs cls (N x 1),
    // obj (N x 1), bbox (N x 4), kps (N x 10) for N = grid cells; score = sqrt(cls * obj).
    // From the dynamic-shape ONNX it runs at any multiple of 32 (input size 0).
    YuNet,
};

struct DetectorConfig {
    DetectorKind kind = DetectorKind::RetinaFaceInsightface;
    std::string input = "data";
    // YuNet: the 12 output blobs, cls/obj/bbox/kps each for strides 8, 16, 32 (pnnx: out0..out11).
    // RetinaFaceBiubug6: loc, conf, landmarks (pnnx: out0..out2).
    std::vector<std::string> outputs;
    InputNorm norm;               // RetinaFace-insightface: raw 0..255 RGB; YuNet: raw BGR
    // Images whose longer side exceeds max_side are shrunk to it; smaller ones are detected at
    // their own size (0 = always as is). A model of any input size gets the image padded to a
    // multiple of 32 at the bottom and right, as OpenCV's FaceDetectorYN does.
    int max_side = 640;
    bool upscale = false;         // also enlarge smaller images to max_side (helps tiny faces)
    // A fixed network input (YuNet or RetinaFace converted at one size): the image is fitted
    // into it, top-left, shrunk if bigger (enlarged only with upscale). 0 = any size.
    int input_width = 0;
    int input_height = 0;
    float score_threshold = 0.5f;
    float nms_threshold = 0.4f;
    float min_face = 0.f;         // drop boxes whose shorter side is below this (image pixels)
    int max_faces = 0;            // keep the best this many (0 = all)
};

class Detector {
public:
    // Throws fastface::Error: Io, or ModelFormat when the model lacks the decoder's blobs.
    static Detector from_files(const std::string& param_path, const std::string& bin_path,
                               const DetectorConfig& config, const EmbedderOptions& options = {});
    static Detector from_memory(std::string param_text, std::vector<std::uint8_t> weights,
                                const DetectorConfig& config, const EmbedderOptions& options = {});

    Detector(Detector&&) noexcept;
    Detector& operator=(Detector&&) noexcept;
    ~Detector();

    // Faces sorted by score, best first; empty when there is none. Thread-safe.
    std::vector<Face> detect(const ImageView& image) const;

    const DetectorConfig& config() const;

    struct Impl;

private:
    explicit Detector(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Intersection over union of two boxes (0 when they do not overlap).
float box_iou(const Face& a, const Face& b);

// Greedy non-maximum suppression on faces sorted by score (best first).
std::vector<Face> non_max_suppression(const std::vector<Face>& sorted, float iou_threshold);

}  // namespace fastface
