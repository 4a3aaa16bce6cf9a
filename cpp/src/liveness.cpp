#include "fastface/liveness.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "fastface/error.h"
#include "ncnn_model.h"

namespace fastface {

namespace {

// Coordinates beyond this are no face box of any camera image (and would overflow int).
constexpr double kMaxCoordinate = 1e7;

// OpenCV's INTER_LINEAR taps for one axis: source indices and weights in 11-bit fixed point
// (INTER_RESIZE_COEF_BITS), from OpenCV's float sample position (dst + 0.5) * scale - 0.5.
// Beyond the edge OpenCV moves the horizontal sample onto the edge pixel (weight 1) but keeps
// the vertical weights and repeats the edge row; the rounding differs, so both are mirrored.
struct Tap {
    int index0, index1;
    int w0, w1;
};

std::vector<Tap> linear_taps(int src, int dst, bool horizontal) {
    const double scale = 1.0 / (static_cast<double>(dst) / src);
    std::vector<Tap> taps(static_cast<std::size_t>(dst));
    for (int d = 0; d < dst; ++d) {
        float f = static_cast<float>((d + 0.5) * scale - 0.5);
        int s = static_cast<int>(std::floor(f));
        f -= static_cast<float>(s);
        if (horizontal && s < 0) f = 0.f, s = 0;
        if (horizontal && s >= src - 1) f = 0.f, s = src - 1;
        // saturate_cast<short>: round half to even, as std::lrint in the default rounding mode.
        taps[static_cast<std::size_t>(d)] = {std::clamp(s, 0, src - 1), std::clamp(s + 1, 0, src - 1),
                                             static_cast<int>(std::lrint((1.f - f) * 2048.f)),
                                             static_cast<int>(std::lrint(f * 2048.f))};
    }
    return taps;
}

}  // namespace

Face map_liveness_box(const Face& face, const LivenessBoxMap& map) {
    const double w = static_cast<double>(face.x2) - face.x1, h = static_cast<double>(face.y2) - face.y1;
    const double cx = (static_cast<double>(face.x1) + face.x2) / 2 + map.dx * w;
    const double cy = (static_cast<double>(face.y1) + face.y2) / 2 + map.dy * h;
    Face out = face;
    out.x1 = static_cast<float>(cx - w * map.sw / 2);
    out.x2 = static_cast<float>(cx + w * map.sw / 2);
    out.y1 = static_cast<float>(cy - h * map.sh / 2);
    out.y2 = static_cast<float>(cy + h * map.sh / 2);
    return out;
}

PixelRect liveness_region(int image_width, int image_height, const Face& face, double scale) {
    if (image_width <= 0 || image_height <= 0) throw Error(ErrorCode::InvalidArgument, "image is empty");
    const double x1 = face.x1, y1 = face.y1, x2 = face.x2, y2 = face.y2;
    for (double v : {x1, y1, x2, y2})
        if (!std::isfinite(v) || std::fabs(v) > kMaxCoordinate)
            throw Error(ErrorCode::InvalidArgument, "face box must be finite image coordinates");
    if (!(scale > 0) || !std::isfinite(scale)) throw Error(ErrorCode::InvalidArgument, "crop scale must be positive");
    if (x2 - x1 < 1 || y2 - y1 < 1)
        throw Error(ErrorCode::InvalidArgument, "liveness region box is under one pixel");
    if (x2 <= 0 || y2 <= 0 || x1 >= image_width || y1 >= image_height)
        throw Error(ErrorCode::InvalidArgument, "face box lies entirely outside the " + std::to_string(image_width) + "x" +
                                                    std::to_string(image_height) + " image");
    // The reference's integer box (its detector's convention), then CropImage._get_new_box.
    const double x = std::trunc(x1), y = std::trunc(y1), w = std::trunc(x2 - x1 + 1), h = std::trunc(y2 - y1 + 1);
    const double W = image_width, H = image_height;
    scale = std::min({(H - 1) / h, (W - 1) / w, scale});
    const double nw = w * scale, nh = h * scale, cx = x + w / 2, cy = y + h / 2;
    double left = cx - nw / 2, top = cy - nh / 2, right = cx + nw / 2, bottom = cy + nh / 2;
    if (left < 0) right -= left, left = 0;
    if (top < 0) bottom -= top, top = 0;
    if (right > W - 1) left -= right - W + 1, right = W - 1;
    if (bottom > H - 1) top -= bottom - H + 1, bottom = H - 1;
    // int() in the reference truncates; the clamps only guard against rounding at the edges.
    const auto clamp = [](double v, int hi) { return std::clamp(static_cast<int>(std::trunc(v)), 0, hi); };
    PixelRect r{clamp(left, image_width - 1), clamp(top, image_height - 1), clamp(right, image_width - 1),
                clamp(bottom, image_height - 1)};
    r.right = std::max(r.right, r.left);
    r.bottom = std::max(r.bottom, r.top);
    return r;
}

void liveness_input(const ImageView& image, const PixelRect& region, int size, const InputNorm& norm,
                    float* const* planes) {
    validate(image);
    if (size <= 0) throw Error(ErrorCode::InvalidArgument, "liveness input size must be positive");
    if (region.left < 0 || region.top < 0 || region.right < region.left || region.bottom < region.top ||
        region.right >= image.width || region.bottom >= image.height)
        throw Error(ErrorCode::InvalidArgument, "liveness region is not inside the image");
    if (norm.order == PixelFormat::Gray) throw Error(ErrorCode::InvalidArgument, "liveness models take 3 channels");
    const int cn = image.channels();
    // Source channel feeding each network channel (BGR or RGB order; gray feeds all three).
    int source_channel[3];
    for (int c = 0; c < 3; ++c) {
        const bool swap = cn == 3 && norm.order != image.format;
        source_channel[c] = cn == 1 ? 0 : (swap ? 2 - c : c);
    }
    const std::vector<Tap> xs = linear_taps(region.right - region.left + 1, size, true);
    const std::vector<Tap> ys = linear_taps(region.bottom - region.top + 1, size, false);
    // Horizontal pass into int rows (as OpenCV's HResizeLinear), one per source row a tap reads.
    std::vector<int> row0(static_cast<std::size_t>(size) * 3), row1(row0.size());
    const auto horizontal = [&](int y, std::vector<int>& row) {
        const std::uint8_t* src = image.data + static_cast<std::ptrdiff_t>(region.top + y) * image.row_stride;
        for (int d = 0; d < size; ++d) {
            const Tap& t = xs[static_cast<std::size_t>(d)];
            const std::uint8_t* p0 = src + static_cast<std::ptrdiff_t>(region.left + t.index0) * cn;
            const std::uint8_t* p1 = src + static_cast<std::ptrdiff_t>(region.left + t.index1) * cn;
            for (int c = 0; c < 3; ++c)
                row[static_cast<std::size_t>(d) * 3 + c] = p0[source_channel[c]] * t.w0 + p1[source_channel[c]] * t.w1;
        }
    };
    for (int d = 0; d < size; ++d) {
        const Tap& t = ys[static_cast<std::size_t>(d)];
        horizontal(t.index0, row0);
        horizontal(t.index1, row1);
        for (int x = 0; x < size; ++x)
            for (int c = 0; c < 3; ++c) {
                // OpenCV's VResizeLinear for uint8: ((b0 * (S0 >> 4)) >> 16) + ((b1 * (S1 >> 4)) >> 16), rounded >> 2.
                const int s0 = row0[static_cast<std::size_t>(x) * 3 + c], s1 = row1[static_cast<std::size_t>(x) * 3 + c];
                const int v = (((t.w0 * (s0 >> 4)) >> 16) + ((t.w1 * (s1 >> 4)) >> 16) + 2) >> 2;
                const float pixel = static_cast<float>(std::clamp(v, 0, 255));
                planes[c][static_cast<std::ptrdiff_t>(d) * size + x] = (pixel - norm.mean[c]) * norm.scale[c];
            }
    }
}

struct Liveness::Impl {
    struct Net {
        explicit Net(const EmbedderOptions& options) : model(options) {}
        NcnnModel model;
        LivenessCard card;
    };
    std::vector<std::unique_ptr<Net>> nets;
    float threshold = 0.5f;
    LivenessBoxMap box_map;

    // The model's softmax over its classes for one packed input; probability of the real class.
    static float real_probability(const Net& net, const ncnn::Mat& input, bool probe) {
        ncnn::Extractor ex = net.model.net.create_extractor();
        if (ex.input(net.card.input.c_str(), input) != 0)
            throw Error(probe ? ErrorCode::ModelFormat : ErrorCode::Runtime, "ncnn rejected input blob '" + net.card.input + "'");
        ncnn::Mat out;
        if (ex.extract(net.card.output.c_str(), out) != 0 || out.empty())
            throw Error(probe ? ErrorCode::ModelFormat : ErrorCode::Runtime,
                        "ncnn failed to compute output blob '" + net.card.output + "'");
        const ncnn::Mat flat = out.reshape(out.w * out.h * out.d * out.c);
        if (flat.w != net.card.classes)
            throw Error(ErrorCode::ModelFormat, "liveness output '" + net.card.output + "' has " + std::to_string(flat.w) +
                                                    " values, the card says " + std::to_string(net.card.classes) +
                                                    " classes");
        const float* logits = flat;
        float top = logits[0];
        for (int i = 0; i < flat.w; ++i) {
            if (!std::isfinite(logits[i]))
                throw Error(ErrorCode::Runtime, "liveness model produced a non-finite output: corrupt weights?");
            top = std::max(top, logits[i]);
        }
        double sum = 0;
        for (int i = 0; i < flat.w; ++i) sum += std::exp(static_cast<double>(logits[i]) - top);
        return static_cast<float>(std::exp(static_cast<double>(logits[net.card.real_class]) - top) / sum);
    }
};

Liveness::Liveness(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Liveness::Liveness(Liveness&&) noexcept = default;
Liveness& Liveness::operator=(Liveness&&) noexcept = default;
Liveness::~Liveness() = default;

Liveness Liveness::from_memory(std::vector<Model> models, float threshold, const EmbedderOptions& options,
                               const LivenessBoxMap& box_map) {
    if (models.empty()) throw Error(ErrorCode::InvalidArgument, "liveness needs at least one model");
    if (!(threshold >= 0.f && threshold <= 1.f))
        throw Error(ErrorCode::InvalidArgument, "liveness threshold must be within [0, 1]");
    if (!(std::fabs(box_map.dx) <= 1 && std::fabs(box_map.dy) <= 1 && box_map.sw >= 0.25 && box_map.sw <= 4 &&
          box_map.sh >= 0.25 && box_map.sh <= 4))
        throw Error(ErrorCode::InvalidArgument, "liveness box map: shifts within one box size, scales within 0.25..4");
    auto impl = std::make_unique<Impl>();
    impl->threshold = threshold;
    impl->box_map = box_map;
    for (Model& m : models) {
        const LivenessCard& card = m.card;
        if (card.size < 8 || card.size > kMaxInputSide)
            throw Error(ErrorCode::InvalidArgument, "liveness input size must be 8.." + std::to_string(kMaxInputSide));
        if (!(card.crop_scale > 0) || !std::isfinite(card.crop_scale) || card.crop_scale > 100)
            throw Error(ErrorCode::InvalidArgument, "liveness crop scale must be in (0, 100]");
        if (card.classes < 2 || card.classes > 1000 || card.real_class < 0 || card.real_class >= card.classes)
            throw Error(ErrorCode::InvalidArgument, "liveness card: real_class must index one of >= 2 classes");
        if (card.norm.order == PixelFormat::Gray) throw Error(ErrorCode::InvalidArgument, "liveness models take 3 channels");
        auto net = std::make_unique<Impl::Net>(options);
        net->card = card;
        net->model.parse(m.param_text);
        net->model.load_weights(&m.weights, card.input, card.size, card.size, 3);  // shape-checked at the card size
        if (!net->model.has_blob(card.output))
            throw Error(ErrorCode::ModelFormat, "output blob '" + card.output + "' is not in the model; blobs: " +
                                                    join(net->model.blob_names()));
        ncnn::Mat probe(card.size, card.size, 3);
        probe.fill(0.f);
        Impl::real_probability(*net, probe, true);  // checks the output size
        impl->nets.push_back(std::move(net));
    }
    return Liveness(std::move(impl));
}

Liveness Liveness::from_files(const std::vector<std::string>& param_paths, const std::vector<std::string>& bin_paths,
                              const std::vector<LivenessCard>& cards, float threshold, const EmbedderOptions& options,
                              const LivenessBoxMap& box_map) {
    if (param_paths.size() != bin_paths.size() || param_paths.size() != cards.size())
        throw Error(ErrorCode::InvalidArgument, "give one param file, one bin file and one card per liveness model");
    std::vector<Model> models;
    for (std::size_t i = 0; i < cards.size(); ++i) {
        const std::vector<std::uint8_t> param = read_file(param_paths[i]);
        models.push_back({std::string(param.begin(), param.end()), read_file(bin_paths[i]), cards[i]});
    }
    return from_memory(std::move(models), threshold, options, box_map);
}

float Liveness::score(const ImageView& image, const Face& face, std::vector<float>* per_model) const {
    validate(image);
    if (per_model) per_model->clear();
    for (float v : {face.x1, face.y1, face.x2, face.y2})
        if (!std::isfinite(v)) throw Error(ErrorCode::InvalidArgument, "face box must be finite image coordinates");
    if (!(face.x2 - face.x1 >= kMinLivenessBox && face.y2 - face.y1 >= kMinLivenessBox))
        throw Error(ErrorCode::InvalidArgument, "face box is " + std::to_string(face.x2 - face.x1) + " x " +
                                                    std::to_string(face.y2 - face.y1) +
                                                    " pixels: liveness needs at least 8 x 8");
    const Face mapped = map_liveness_box(face, impl_->box_map);
    double sum = 0;
    for (const std::unique_ptr<Impl::Net>& net : impl_->nets) {
        const LivenessCard& card = net->card;
        const PixelRect region = liveness_region(image.width, image.height, mapped, card.crop_scale);
        ncnn::Mat input(card.size, card.size, 3);
        float* planes[3] = {input.channel(0), input.channel(1), input.channel(2)};
        liveness_input(image, region, card.size, card.norm, planes);
        const float p = Impl::real_probability(*net, input, false);
        if (per_model) per_model->push_back(p);
        sum += p;
    }
    return static_cast<float>(sum / static_cast<double>(impl_->nets.size()));
}

float Liveness::threshold() const { return impl_->threshold; }
const LivenessBoxMap& Liveness::box_map() const { return impl_->box_map; }
std::size_t Liveness::model_count() const { return impl_->nets.size(); }
const LivenessCard& Liveness::card(std::size_t i) const {
    if (i >= impl_->nets.size()) throw Error(ErrorCode::InvalidArgument, "no liveness model " + std::to_string(i));
    return impl_->nets[i]->card;
}

}  // namespace fastface
