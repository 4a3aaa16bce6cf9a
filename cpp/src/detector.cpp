#include "fastface/detector.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "fastface/error.h"
#include "ncnn_model.h"

namespace fastface {

namespace {

constexpr int kStrides[3] = {32, 16, 8};
constexpr int kAnchorsPerCell = 2;

// insightface RetinaFace anchors: a 16 px base box scaled per stride, centred on (8, 8).
std::array<float, kAnchorsPerCell> anchor_sizes(int stride) {
    switch (stride) {
        case 32: return {512.f, 256.f};
        case 16: return {128.f, 64.f};
        default: return {32.f, 16.f};
    }
}

std::string blob(const char* kind, int stride) { return std::string("face_rpn_") + kind + "_stride" + std::to_string(stride); }

// Averages k x k blocks: a cheap, alias-free first step when shrinking a big photo a lot.
std::vector<std::uint8_t> box_shrink(const ImageView& src, int k, ImageView& out) {
    const int cn = src.channels(), w = src.width / k, h = src.height / k;
    std::vector<std::uint8_t> pixels(static_cast<std::size_t>(w) * h * cn);
    std::vector<unsigned> sums(static_cast<std::size_t>(w) * cn);
    const unsigned area = static_cast<unsigned>(k * k);
    for (int y = 0; y < h; ++y) {
        std::fill(sums.begin(), sums.end(), 0u);
        for (int dy = 0; dy < k; ++dy) {
            const std::uint8_t* row = src.data + (static_cast<std::ptrdiff_t>(y) * k + dy) * src.row_stride;
            for (int x = 0; x < w; ++x)
                for (int dx = 0; dx < k; ++dx)
                    for (int c = 0; c < cn; ++c) sums[x * cn + c] += row[(x * k + dx) * cn + c];
        }
        for (int i = 0; i < w * cn; ++i)
            pixels[static_cast<std::size_t>(y) * w * cn + i] = static_cast<std::uint8_t>((sums[i] + area / 2) / area);
    }
    out = {pixels.data(), w, h, static_cast<std::ptrdiff_t>(w) * cn, src.format};
    return pixels;
}

// A face box from its centre and size (every decoder predicts boxes this way).
Face centred_face(float cx, float cy, float w, float h, float score) {
    Face f;
    f.x1 = cx - w * 0.5f;
    f.y1 = cy - h * 0.5f;
    f.x2 = cx + w * 0.5f;
    f.y2 = cy + h * 0.5f;
    f.score = score;
    return f;
}

}  // namespace

float box_iou(const Face& a, const Face& b) {
    const float iw = std::min(a.x2, b.x2) - std::max(a.x1, b.x1), ih = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
    if (iw <= 0 || ih <= 0) return 0.f;
    const float inter = iw * ih;
    const float uni = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
    return uni > 0 ? inter / uni : 0.f;
}

std::vector<Face> non_max_suppression(const std::vector<Face>& sorted, float iou_threshold) {
    std::vector<Face> kept;
    for (const Face& f : sorted) {
        bool keep = true;
        for (const Face& k : kept) keep = keep && box_iou(f, k) <= iou_threshold;
        if (keep) kept.push_back(f);
    }
    return kept;
}

struct Detector::Impl {
    explicit Impl(const DetectorConfig& c, const EmbedderOptions& options) : model(options), config(c) {}
    NcnnModel model;
    DetectorConfig config;

    // Runs the net on a canvas_w x canvas_h input; appends faces in canvas coordinates.
    void decode(const ncnn::Mat& input, std::vector<Face>& faces) const {
        ncnn::Extractor ex = model.net.create_extractor();
        if (ex.input(config.input.c_str(), input) != 0)
            throw Error(ErrorCode::Runtime, "ncnn rejected input blob '" + config.input + "'");
        model.check_input(config.input, input.w, input.h, input.c);
        for (int stride : kStrides) {
            ncnn::Mat score, bbox, landmark;
            if (ex.extract(blob("cls_prob_reshape", stride).c_str(), score) != 0 ||
                ex.extract(blob("bbox_pred", stride).c_str(), bbox) != 0 ||
                ex.extract(blob("landmark_pred", stride).c_str(), landmark) != 0)
                throw Error(ErrorCode::Runtime, "ncnn failed to compute the stride-" + std::to_string(stride) + " outputs");
            check_shapes(score, bbox, landmark, stride);
            const std::array<float, kAnchorsPerCell> sizes = anchor_sizes(stride);
            for (int a = 0; a < kAnchorsPerCell; ++a) {
                // Channels [0, A) hold background, [A, 2A) face probabilities.
                const float* prob = score.channel(kAnchorsPerCell + a);
                const float size = sizes[a];
                for (int i = 0; i < score.h; ++i)
                    for (int j = 0; j < score.w; ++j) {
                        const int index = i * score.w + j;
                        if (prob[index] < config.score_threshold) continue;
                        // Anchors are centred on (8, 8) of their cell (a 16 px base box, scaled).
                        const float cx = j * stride + 8.f, cy = i * stride + 8.f;
                        const float dx = bbox.channel(a * 4 + 0)[index], dy = bbox.channel(a * 4 + 1)[index];
                        const float dw = bbox.channel(a * 4 + 2)[index], dh = bbox.channel(a * 4 + 3)[index];
                        const float pcx = cx + size * dx, pcy = cy + size * dy;
                        const float pw = size * std::exp(dw), ph = size * std::exp(dh);
                        Face f = centred_face(pcx, pcy, pw, ph, prob[index]);
                        for (int k = 0; k < 5; ++k)
                            f.landmarks[k] = {cx + (size + 1.f) * landmark.channel(a * 10 + 2 * k)[index],
                                              cy + (size + 1.f) * landmark.channel(a * 10 + 2 * k + 1)[index]};
                        faces.push_back(f);
                    }
            }
        }
    }

    // YuNet: outputs[stride_index + 3 * kind] with kind 0 cls, 1 obj, 2 bbox, 3 kps.
    void decode_yunet(const ncnn::Mat& input, std::vector<Face>& faces) const {
        ncnn::Extractor ex = model.net.create_extractor();
        if (ex.input(config.input.c_str(), input) != 0)
            throw Error(ErrorCode::Runtime, "ncnn rejected input blob '" + config.input + "'");
        model.check_input(config.input, input.w, input.h, input.c);
        const int yunet_strides[3] = {8, 16, 32};
        for (int si = 0; si < 3; ++si) {
            const int stride = yunet_strides[si], cols = input.w / stride, rows = input.h / stride;
            ncnn::Mat out[4];
            for (int k = 0; k < 4; ++k)
                if (ex.extract(config.outputs[si + 3 * k].c_str(), out[k]) != 0)
                    throw Error(ErrorCode::Runtime, "ncnn failed to compute '" + config.outputs[si + 3 * k] + "'");
            const int widths[4] = {1, 1, 4, 10};
            for (int k = 0; k < 4; ++k)
                if (out[k].w != widths[k] || out[k].h != cols * rows)
                    throw Error(ErrorCode::ModelFormat,
                                "YuNet output '" + config.outputs[si + 3 * k] + "' is " + std::to_string(out[k].h) + "x" +
                                    std::to_string(out[k].w) + ", expected " + std::to_string(cols * rows) + "x" +
                                    std::to_string(widths[k]) + " for a " + std::to_string(input.w) + "x" +
                                    std::to_string(input.h) + " input (wrong output order or input size?)");
            for (int r = 0; r < rows; ++r)
                for (int c = 0; c < cols; ++c) {
                    const int i = r * cols + c;
                    const float cls = std::clamp(out[0].row(i)[0], 0.f, 1.f), obj = std::clamp(out[1].row(i)[0], 0.f, 1.f);
                    const float score = std::sqrt(cls * obj);
                    if (score < config.score_threshold) continue;
                    const float* box = out[2].row(i);
                    const float* kps = out[3].row(i);
                    const float cx = (c + box[0]) * stride, cy = (r + box[1]) * stride;
                    const float w = std::exp(box[2]) * stride, h = std::exp(box[3]) * stride;
                    Face f = centred_face(cx, cy, w, h, score);
                    for (int k = 0; k < 5; ++k) f.landmarks[k] = {(kps[2 * k] + c) * stride, (kps[2 * k + 1] + r) * stride};
                    faces.push_back(f);
                }
        }
    }

    // biubug6 RetinaFace: outputs over priors laid out stride by stride, cell by cell (row-major),
    // two sizes per cell.
    void decode_biubug6(const ncnn::Mat& input, std::vector<Face>& faces) const {
        ncnn::Extractor ex = model.net.create_extractor();
        if (ex.input(config.input.c_str(), input) != 0)
            throw Error(ErrorCode::Runtime, "ncnn rejected input blob '" + config.input + "'");
        model.check_input(config.input, input.w, input.h, input.c);
        ncnn::Mat loc, conf, landmarks;
        if (ex.extract(config.outputs[0].c_str(), loc) != 0 || ex.extract(config.outputs[1].c_str(), conf) != 0 ||
            ex.extract(config.outputs[2].c_str(), landmarks) != 0)
            throw Error(ErrorCode::Runtime, "ncnn failed to compute the RetinaFace outputs");
        const int steps[3] = {8, 16, 32};
        const float sizes[3][2] = {{16.f, 32.f}, {64.f, 128.f}, {256.f, 512.f}};
        int priors = 0;
        for (int step : steps) priors += 2 * ((input.h + step - 1) / step) * ((input.w + step - 1) / step);
        if (loc.w != 4 || conf.w != 2 || landmarks.w != 10 || loc.h != priors || conf.h != priors || landmarks.h != priors)
            throw Error(ErrorCode::ModelFormat,
                        "RetinaFace outputs are " + std::to_string(loc.h) + "x" + std::to_string(loc.w) + ", " +
                            std::to_string(conf.h) + "x" + std::to_string(conf.w) + ", " + std::to_string(landmarks.h) +
                            "x" + std::to_string(landmarks.w) + "; expected " + std::to_string(priors) +
                            "x4, x2, x10 (loc, conf, landmarks) for a " + std::to_string(input.w) + "x" +
                            std::to_string(input.h) + " input");
        constexpr float kCentreVariance = 0.1f, kSizeVariance = 0.2f;
        int index = 0;
        for (int k = 0; k < 3; ++k) {
            const int step = steps[k], rows = (input.h + step - 1) / step, cols = (input.w + step - 1) / step;
            for (int i = 0; i < rows; ++i)
                for (int j = 0; j < cols; ++j)
                    for (float size : sizes[k]) {
                        const int n = index++;
                        const float score = conf.row(n)[1];
                        if (score < config.score_threshold) continue;
                        const float cx = (j + 0.5f) * step, cy = (i + 0.5f) * step;
                        const float* d = loc.row(n);
                        const float bx = cx + d[0] * kCentreVariance * size, by = cy + d[1] * kCentreVariance * size;
                        const float bw = size * std::exp(d[2] * kSizeVariance), bh = size * std::exp(d[3] * kSizeVariance);
                        Face f = centred_face(bx, by, bw, bh, score);
                        const float* l = landmarks.row(n);
                        for (int m = 0; m < 5; ++m)
                            f.landmarks[m] = {cx + l[2 * m] * kCentreVariance * size, cy + l[2 * m + 1] * kCentreVariance * size};
                        faces.push_back(f);
                    }
        }
    }

    void run(const ncnn::Mat& input, std::vector<Face>& faces) const {
        switch (config.kind) {
            case DetectorKind::YuNet: decode_yunet(input, faces); return;
            case DetectorKind::RetinaFaceBiubug6: decode_biubug6(input, faces); return;
            case DetectorKind::RetinaFaceInsightface: decode(input, faces); return;
        }
    }

    static void check_shapes(const ncnn::Mat& score, const ncnn::Mat& bbox, const ncnn::Mat& landmark, int stride) {
        const bool ok = score.c == 2 * kAnchorsPerCell && bbox.c == 4 * kAnchorsPerCell &&
                        landmark.c == 10 * kAnchorsPerCell && bbox.w == score.w && bbox.h == score.h &&
                        landmark.w == score.w && landmark.h == score.h;
        if (!ok)
            throw Error(ErrorCode::ModelFormat,
                        "stride-" + std::to_string(stride) + " outputs have " + std::to_string(score.c) + "/" +
                            std::to_string(bbox.c) + "/" + std::to_string(landmark.c) +
                            " channels; the insightface RetinaFace decoder needs 4/8/20 (2 anchors per cell)");
    }

    // The decoder's blobs and input exist (before the shape check, whose message would be less to the point).
    void check_blob_names() const {
        std::vector<std::string> wanted = config.outputs, missing;
        if (config.kind == DetectorKind::RetinaFaceInsightface)
            for (int stride : kStrides)
                for (const char* kind : {"cls_prob_reshape", "bbox_pred", "landmark_pred"}) wanted.push_back(blob(kind, stride));
        for (const std::string& name : wanted)
            if (!model.has_blob(name)) missing.push_back(name);
        const char* decoder = config.kind == DetectorKind::YuNet               ? "YuNet"
                              : config.kind == DetectorKind::RetinaFaceBiubug6 ? "PyTorch (biubug6) RetinaFace"
                                                                               : "insightface RetinaFace";
        if (!missing.empty())
            throw Error(ErrorCode::ModelFormat, std::string("the model does not fit the ") + decoder +
                                                    " decoder: it lacks " + join(missing) + "; its blobs: " +
                                                    join(model.blob_names()));
        const std::vector<std::string> inputs = model.input_names();
        if (std::find(inputs.begin(), inputs.end(), config.input) == inputs.end())
            throw Error(ErrorCode::ModelFormat, "input blob '" + config.input + "' is not an input of the model; inputs: " +
                                                    join(inputs));
    }

    // A zero image through the net and the decoder: throws on output shapes that do not fit it.
    void probe() const {
        ncnn::Mat probe(config.input_width > 0 ? config.input_width : 64, config.input_height > 0 ? config.input_height : 64, 3);
        probe.fill(0.f);
        std::vector<Face> ignored;
        run(probe, ignored);
    }
};

namespace {

void check_config(const DetectorConfig& c) {
    if (c.kind == DetectorKind::YuNet && c.outputs.size() != 12)
        throw Error(ErrorCode::InvalidArgument, "YuNet needs 12 output names (cls, obj, bbox, kps for strides 8, 16, 32)");
    if (c.kind == DetectorKind::RetinaFaceBiubug6 && c.outputs.size() != 3)
        throw Error(ErrorCode::InvalidArgument, "RetinaFace (PyTorch) needs 3 output names: loc, conf, landmarks");
    if (c.input_width < 0 || c.input_height < 0 || (c.input_width > 0) != (c.input_height > 0))
        throw Error(ErrorCode::InvalidArgument, "input size must be both positive or both 0");
    if (c.input_width % 32 != 0 || c.input_height % 32 != 0)
        throw Error(ErrorCode::InvalidArgument, "a fixed input size must be a multiple of 32 (the largest stride)");
    // pnnx bakes the input size into the PyTorch RetinaFace's graph.
    if (c.kind == DetectorKind::RetinaFaceBiubug6 && c.input_width == 0)
        throw Error(ErrorCode::InvalidArgument, "the PyTorch RetinaFace needs its fixed input size");
    // Largest max_side: a bigger network input costs memory for no benefit on any photo.
    if (c.max_side < 0 || c.max_side > kMaxInputSide)
        throw Error(ErrorCode::InvalidArgument, "max_side must be in [0, " + std::to_string(kMaxInputSide) + "], got " +
                                                    std::to_string(c.max_side));
    if (c.input_width > kMaxInputSide || c.input_height > kMaxInputSide)
        throw Error(ErrorCode::InvalidArgument, "input size may not exceed " + std::to_string(kMaxInputSide));
    if (!(c.score_threshold >= 0.f && c.score_threshold <= 1.f))
        throw Error(ErrorCode::InvalidArgument, "score_threshold must be in [0, 1], got " + std::to_string(c.score_threshold));
    if (!(c.nms_threshold >= 0.f && c.nms_threshold <= 1.f))
        throw Error(ErrorCode::InvalidArgument, "nms_threshold must be in [0, 1], got " + std::to_string(c.nms_threshold));
    if (!(c.min_face >= 0.f && std::isfinite(c.min_face)))
        throw Error(ErrorCode::InvalidArgument, "min_face must be a finite number >= 0, got " + std::to_string(c.min_face));
    if (c.max_faces < 0) throw Error(ErrorCode::InvalidArgument, "max_faces must be >= 0, got " + std::to_string(c.max_faces));
}

}  // namespace

Detector::Detector(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Detector::Detector(Detector&&) noexcept = default;
Detector& Detector::operator=(Detector&&) noexcept = default;
Detector::~Detector() = default;

Detector Detector::from_files(const std::string& param_path, const std::string& bin_path, const DetectorConfig& config,
                              const EmbedderOptions& options) {
    const std::vector<std::uint8_t> param = read_file(param_path);
    return from_memory(std::string(param.begin(), param.end()), read_file(bin_path), config, options);
}

Detector Detector::from_memory(std::string param_text, std::vector<std::uint8_t> weights, const DetectorConfig& config,
                               const EmbedderOptions& options) {
    check_config(config);
    auto impl = std::make_unique<Impl>(config, options);
    impl->model.parse(param_text);
    impl->check_blob_names();
    impl->model.load_weights(&weights, config.input, config.input_width > 0 ? config.input_width : 64,
                             config.input_height > 0 ? config.input_height : 64, 3);
    impl->probe();
    return Detector(std::move(impl));
}

const DetectorConfig& Detector::config() const { return impl_->config; }

std::vector<Face> Detector::detect(const ImageView& image) const {
    validate(image);
    const DetectorConfig& config = impl_->config;
    const bool fixed = config.input_width > 0;
    const int longer = std::max(image.width, image.height);
    // Native resolution unless the image is too big for max_side (or the fixed input), or the
    // caller asks for small images to be enlarged.
    double scale = fixed ? std::min(static_cast<double>(config.input_width) / image.width,
                                    static_cast<double>(config.input_height) / image.height)
                         : (config.max_side > 0 ? static_cast<double>(config.max_side) / longer : 1.0);
    if (!config.upscale) scale = std::min(scale, 1.0);
    // Shrinking by more than 2x: average whole blocks first so bilinear sampling does not alias.
    // The block never exceeds the shorter side, so an extreme aspect ratio keeps a row or column.
    ImageView source = image;
    std::vector<std::uint8_t> shrunk;
    const int block = std::min(static_cast<int>(std::floor(1.0 / scale)), std::min(image.width, image.height));
    if (block >= 2) {
        shrunk = box_shrink(image, block, source);
        scale *= block;
    }
    const auto padded = [](double side) { return std::max(32, static_cast<int>(std::ceil(side / 32.0)) * 32); };
    const int canvas_w = fixed ? config.input_width : padded(source.width * scale);
    const int canvas_h = fixed ? config.input_height : padded(source.height * scale);
    // The canvas past the scaled image is border (zero pixels): the net's strides need multiples of 32.
    ncnn::Mat input(canvas_w, canvas_h, 3);
    float* planes[3] = {input.channel(0), input.channel(1), input.channel(2)};
    InputNorm norm = config.norm;
    norm.order = norm.order == PixelFormat::Gray ? PixelFormat::RGB : norm.order;
    if (scale == 1.0) {
        copy_to_planar(source, canvas_w, canvas_h, norm, planes);  // native size: no resampling
    } else {
        WarpParams params;
        params.dst_to_src = {1.0 / scale, 0, 0, 0, 1.0 / scale, 0};
        params.out_width = canvas_w;
        params.out_height = canvas_h;
        warp_to_planar(source, params, norm, planes);
    }

    std::vector<Face> faces;
    impl_->run(input, faces);
    // Canvas -> image pixels; a shrunk pixel's centre sits (block - 1) / 2 into its block.
    const bool shrank = block >= 2;
    const float to_image = static_cast<float>(shrank ? block / scale : 1.0 / scale);
    const float offset = shrank ? (block - 1) * 0.5f : 0.f;
    const auto map = [&](float v, int limit) { return std::clamp(v * to_image + offset, 0.f, static_cast<float>(limit)); };
    for (Face& f : faces) {
        f.x1 = map(f.x1, image.width);
        f.y1 = map(f.y1, image.height);
        f.x2 = map(f.x2, image.width);
        f.y2 = map(f.y2, image.height);
        for (Point2f& p : f.landmarks) p = {p.x * to_image + offset, p.y * to_image + offset};
    }
    std::stable_sort(faces.begin(), faces.end(), [](const Face& a, const Face& b) { return a.score > b.score; });
    faces = non_max_suppression(faces, config.nms_threshold);
    // Size filter after NMS: before it, dropping a face would let its weaker duplicates through.
    faces.erase(std::remove_if(faces.begin(), faces.end(),
                               [&](const Face& f) { return std::min(f.x2 - f.x1, f.y2 - f.y1) < std::max(config.min_face, 1.f); }),
                faces.end());
    if (config.max_faces > 0 && faces.size() > static_cast<std::size_t>(config.max_faces)) faces.resize(config.max_faces);
    return faces;
}

}  // namespace fastface
