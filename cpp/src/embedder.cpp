#include "fastface/embedder.h"

#include <cmath>
#include <string>
#include <utility>

#include "fastface/error.h"
#include "ncnn_model.h"

namespace fastface {

struct Embedder::Impl {
    explicit Impl(const EmbedderOptions& options) : model(options) {}
    NcnnModel model;
    ModelCard card;
    std::vector<Point2f> dst_template;
    int dim = 0;

    // Runs one normalized planar input through the net into out[dim].
    void run(const ncnn::Mat& input, float* out, bool normalize) const {
        ncnn::Extractor ex = model.net.create_extractor();
        if (ex.input(card.input.c_str(), input) != 0)
            throw Error(ErrorCode::Runtime, "ncnn rejected input blob '" + card.input + "'");
        ncnn::Mat feat;
        if (ex.extract(card.output.c_str(), feat) != 0 || feat.empty())
            throw Error(ErrorCode::Runtime, "ncnn failed to compute output blob '" + card.output + "'");
        const ncnn::Mat flat = feat.reshape(feat.w * feat.h * feat.d * feat.c);
        if (flat.w != dim)
            throw Error(ErrorCode::ModelFormat, "output blob '" + card.output + "' has " + std::to_string(flat.w) +
                                                    " values, expected " + std::to_string(dim));
        const float* values = flat;
        double sum_sq = 0;
        for (int i = 0; i < dim; ++i) {
            if (!std::isfinite(values[i]))
                throw Error(ErrorCode::Runtime, "model produced a non-finite embedding (NaN or inf): the weights are "
                                                "corrupt or the conversion is broken");
            sum_sq += static_cast<double>(values[i]) * values[i];
        }
        const float inv = (normalize && sum_sq > 0) ? static_cast<float>(1.0 / std::sqrt(sum_sq)) : 1.f;
        for (int i = 0; i < dim; ++i) out[i] = values[i] * inv;
    }

    ncnn::Mat new_input() const { return ncnn::Mat(card.width, card.height, channel_count(card.norm.order)); }

    static float* const* plane_pointers(ncnn::Mat& m, float* (&planes)[3]) {
        for (int c = 0; c < m.c; ++c) planes[c] = m.channel(c);
        return planes;
    }

    static std::unique_ptr<Impl> create(const ModelCard& card, const EmbedderOptions& options);
    void finish();
};

std::unique_ptr<Embedder::Impl> Embedder::Impl::create(const ModelCard& card, const EmbedderOptions& options) {
    if (card.width <= 0 || card.height <= 0) throw Error(ErrorCode::InvalidArgument, "model input size must be positive");
    if (card.width > kMaxInputSide || card.height > kMaxInputSide)
        throw Error(ErrorCode::InvalidArgument, "model input size " + std::to_string(card.width) + "x" +
                                                    std::to_string(card.height) + " exceeds " +
                                                    std::to_string(kMaxInputSide) + " pixels a side");
    if (card.dim < 0) throw Error(ErrorCode::InvalidArgument, "embedding dimension must be >= 0");
    auto impl = std::make_unique<Embedder::Impl>(options);
    impl->card = card;
    impl->dst_template = card.align_template.empty() ? arcface_template(card.width, card.height) : card.align_template;
    if (impl->dst_template.size() < 2)
        throw Error(ErrorCode::InvalidArgument, "alignment template needs at least 2 points");
    return impl;
}

// Checks blob names, then runs zeros through the net to learn and verify the embedding size.
void Embedder::Impl::finish() {
    Impl& impl = *this;
    const std::vector<std::string> blobs = model.blob_names();
    const std::vector<std::string> inputs = model.input_names();
    bool input_ok = false, output_ok = false;
    for (const std::string& n : inputs) input_ok = input_ok || n == impl.card.input;
    for (const std::string& n : blobs) output_ok = output_ok || n == impl.card.output;
    if (!input_ok)
        throw Error(ErrorCode::ModelFormat, "input blob '" + impl.card.input + "' is not an input of the model; inputs: " +
                                                join(inputs) + "; all blobs: " + join(blobs));
    if (!output_ok)
        throw Error(ErrorCode::ModelFormat, "output blob '" + impl.card.output + "' is not in the model; blobs: " + join(blobs));
    ncnn::Mat probe = impl.new_input();
    probe.fill(0.f);
    ncnn::Extractor ex = impl.model.net.create_extractor();
    ncnn::Mat feat;
    if (ex.input(impl.card.input.c_str(), probe) != 0)
        throw Error(ErrorCode::ModelFormat, "ncnn rejected input blob '" + impl.card.input + "'");
    if (ex.extract(impl.card.output.c_str(), feat) != 0 || feat.empty())
        throw Error(ErrorCode::ModelFormat, "model failed a test inference at " + std::to_string(impl.card.width) + "x" +
                                                std::to_string(impl.card.height) + " (ncnn printed details to stderr)");
    const int produced = feat.w * feat.h * feat.d * feat.c;
    if (impl.card.dim != 0 && impl.card.dim != produced)
        throw Error(ErrorCode::ModelFormat, "model card says dim " + std::to_string(impl.card.dim) + " but blob '" +
                                                impl.card.output + "' has " + std::to_string(produced) + " values");
    impl.dim = produced;
}

Embedder::Embedder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Embedder::Embedder(Embedder&&) noexcept = default;
Embedder& Embedder::operator=(Embedder&&) noexcept = default;
Embedder::~Embedder() = default;

Embedder Embedder::from_files(const std::string& param_path, const std::string& bin_path, const ModelCard& card,
                              const EmbedderOptions& options) {
    const std::vector<std::uint8_t> param = read_file(param_path);
    return from_memory(std::string(param.begin(), param.end()), read_file(bin_path), card, options);
}

Embedder Embedder::from_memory(std::string param_text, std::vector<std::uint8_t> weights, const ModelCard& card,
                               const EmbedderOptions& options) {
    std::unique_ptr<Impl> impl = Impl::create(card, options);
    impl->model.parse(param_text);
    impl->model.load_weights(&weights, card.input, card.width, card.height, channel_count(card.norm.order));
    impl->finish();
    return Embedder(std::move(impl));
}

Embedder Embedder::without_weights(std::string param_text, const ModelCard& card, const EmbedderOptions& options) {
    std::unique_ptr<Impl> impl = Impl::create(card, options);
    impl->model.parse(param_text);
    impl->model.load_weights(nullptr, card.input, card.width, card.height, channel_count(card.norm.order));
    impl->finish();
    return Embedder(std::move(impl));
}

int Embedder::dim() const { return impl_->dim; }
const ModelCard& Embedder::card() const { return impl_->card; }
std::vector<std::string> Embedder::blob_names() const { return impl_->model.blob_names(); }

void Embedder::embed(const ImageView* crops, std::size_t n, float* out, bool normalize) const {
    const ModelCard& card = impl_->card;
    for (std::size_t i = 0; i < n; ++i) {
        validate(crops[i]);
        if (crops[i].width != card.width || crops[i].height != card.height)
            throw Error(ErrorCode::InvalidArgument, "crop " + std::to_string(i) + " is " + std::to_string(crops[i].width) +
                                                        "x" + std::to_string(crops[i].height) + ", the model needs " +
                                                        std::to_string(card.width) + "x" + std::to_string(card.height));
        ncnn::Mat input = impl_->new_input();
        float* planes[3];
        copy_to_planar(crops[i], card.width, card.height, card.norm, Impl::plane_pointers(input, planes));
        impl_->run(input, out + i * static_cast<std::size_t>(impl_->dim), normalize);
    }
}

void Embedder::embed_face(const ImageView& image, const std::vector<Point2f>& landmarks, float* out,
                          bool normalize) const {
    validate(image);
    validate_landmarks(image, landmarks);
    embed_face(image, invert_affine(estimate_similarity(landmarks, impl_->dst_template)), out, normalize);
}

void Embedder::embed_face(const ImageView& image, const Affine& dst_to_src, float* out, bool normalize) const {
    validate(image);
    for (double v : dst_to_src)
        if (!std::isfinite(v)) throw Error(ErrorCode::InvalidArgument, "crop geometry must be finite");
    if (std::fabs(dst_to_src[0] * dst_to_src[4] - dst_to_src[1] * dst_to_src[3]) < 1e-12)
        throw Error(ErrorCode::InvalidArgument, "crop geometry is degenerate (zero area)");
    WarpParams params;
    params.dst_to_src = dst_to_src;
    params.out_width = impl_->card.width;
    params.out_height = impl_->card.height;
    ncnn::Mat input = impl_->new_input();
    float* planes[3];
    warp_to_planar(image, params, impl_->card.norm, Impl::plane_pointers(input, planes));
    impl_->run(input, out, normalize);
}

}  // namespace fastface
