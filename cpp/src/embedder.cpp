#include "fastface/embedder.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <utility>

#include "fastface/error.h"
#include "datareader.h"
#include "net.h"

namespace fastface {

namespace {

// Serves weights from memory with bounds checks, so a truncated .bin fails cleanly instead of
// reading past the buffer (ncnn's own memory reader trusts the length). Tracks what was used.
class BoundedReader : public ncnn::DataReader {
public:
    BoundedReader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    std::size_t read(void* buf, std::size_t size) const override {
        const std::size_t n = std::min(size, size_ - pos_);
        std::memcpy(buf, data_ + pos_, n);
        pos_ += n;
        return n;
    }
    std::size_t reference(std::size_t size, const void** buf) const override {
        if (size > size_ - pos_) return 0;  // ncnn then falls back to read(), which reports the shortfall
        *buf = data_ + pos_;
        pos_ += size;
        return size;
    }
    std::size_t consumed() const { return pos_; }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    mutable std::size_t pos_ = 0;
};

// Zero weights of whatever size the graph asks for (ncnn's benchmark does the same).
class ZeroReader : public ncnn::DataReader {
public:
    std::size_t read(void* buf, std::size_t size) const override {
        std::memset(buf, 0, size);
        return size;
    }
};

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(ErrorCode::Io, "cannot open '" + path + "': " + std::strerror(errno));
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw Error(ErrorCode::Io, "cannot read '" + path + "'");
    return data;
}

std::string join(const std::vector<std::string>& names) {
    std::string out;
    for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

}  // namespace

struct Embedder::Impl {
    ncnn::Net net;
    std::vector<std::uint8_t> weights;  // ncnn may reference weights in place: keep them alive
    ModelCard card;
    EmbedderOptions options;
    std::vector<Point2f> dst_template;
    int dim = 0;

    std::vector<std::string> blob_names() const {
        std::vector<std::string> names;
        for (const ncnn::Blob& b : net.blobs()) names.push_back(b.name);
        return names;
    }

    // Runs one normalized planar input through the net into out[dim].
    void run(const ncnn::Mat& input, float* out, bool normalize) const {
        ncnn::Extractor ex = net.create_extractor();
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
    void load_param(const std::string& param_text);
    void finish();
};

std::unique_ptr<Embedder::Impl> Embedder::Impl::create(const ModelCard& card, const EmbedderOptions& options) {
    if (card.width <= 0 || card.height <= 0) throw Error(ErrorCode::InvalidArgument, "model input size must be positive");
    if (card.dim < 0) throw Error(ErrorCode::InvalidArgument, "embedding dimension must be >= 0");
    if (options.threads < 1) throw Error(ErrorCode::InvalidArgument, "threads must be >= 1");
    auto impl = std::make_unique<Embedder::Impl>();
    impl->card = card;
    impl->options = options;
    impl->dst_template = card.align_template.empty() ? arcface_template(card.width, card.height) : card.align_template;
    if (impl->dst_template.size() < 2)
        throw Error(ErrorCode::InvalidArgument, "alignment template needs at least 2 points");
    ncnn::Option& opt = impl->net.opt;
    opt.num_threads = options.threads;
    opt.use_vulkan_compute = false;
    opt.use_fp16_packed = options.fp16;
    opt.use_fp16_storage = options.fp16;
    opt.use_fp16_arithmetic = options.fp16;
    opt.use_bf16_storage = false;
    return impl;
}

void Embedder::Impl::load_param(const std::string& param_text) {
    if (param_text.empty()) throw Error(ErrorCode::ModelFormat, "param file is empty");
    if (net.load_param_mem(param_text.c_str()) != 0)
        throw Error(ErrorCode::ModelFormat,
                    "ncnn could not parse the param file (not an ncnn .param, or it uses a layer this build lacks; "
                    "ncnn printed details to stderr)");
}

// Checks blob names, then runs zeros through the net to learn and verify the embedding size.
void Embedder::Impl::finish() {
    Impl& impl = *this;
    const std::vector<std::string> blobs = impl.blob_names();
    std::vector<std::string> inputs;
    for (const char* name : impl.net.input_names()) inputs.emplace_back(name);
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
    ncnn::Extractor ex = impl.net.create_extractor();
    ncnn::Mat feat;
    if (ex.input(impl.card.input.c_str(), probe) != 0 || ex.extract(impl.card.output.c_str(), feat) != 0 || feat.empty())
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
    std::string param = read_file(param_path);
    std::string bin = read_file(bin_path);
    return from_memory(std::move(param), std::vector<std::uint8_t>(bin.begin(), bin.end()), card, options);
}

Embedder Embedder::from_memory(std::string param_text, std::vector<std::uint8_t> weights, const ModelCard& card,
                               const EmbedderOptions& options) {
    std::unique_ptr<Impl> impl = Impl::create(card, options);
    impl->load_param(param_text);
    impl->weights = std::move(weights);
    const BoundedReader reader(impl->weights.data(), impl->weights.size());
    if (impl->net.load_model(reader) != 0)
        throw Error(ErrorCode::ModelFormat, "weights are truncated or do not match the param file (" +
                                                std::to_string(impl->weights.size()) + " bytes given)");
    if (reader.consumed() != impl->weights.size())
        throw Error(ErrorCode::ModelFormat, "weights do not match the param file: it uses " +
                                                std::to_string(reader.consumed()) + " of " +
                                                std::to_string(impl->weights.size()) + " bytes");
    impl->finish();
    return Embedder(std::move(impl));
}

Embedder Embedder::without_weights(std::string param_text, const ModelCard& card, const EmbedderOptions& options) {
    std::unique_ptr<Impl> impl = Impl::create(card, options);
    impl->load_param(param_text);
    if (impl->net.load_model(ZeroReader()) != 0) throw Error(ErrorCode::ModelFormat, "could not create zero weights");
    impl->finish();
    return Embedder(std::move(impl));
}

int Embedder::dim() const { return impl_->dim; }
const ModelCard& Embedder::card() const { return impl_->card; }
std::vector<std::string> Embedder::blob_names() const { return impl_->blob_names(); }

void Embedder::embed(const ImageView* crops, std::size_t n, float* out, bool normalize) const {
    const ModelCard& card = impl_->card;
    WarpParams identity;
    identity.dst_to_src = {1, 0, 0, 0, 1, 0};
    identity.out_width = card.width;
    identity.out_height = card.height;
    for (std::size_t i = 0; i < n; ++i) {
        validate(crops[i]);
        if (crops[i].width != card.width || crops[i].height != card.height)
            throw Error(ErrorCode::InvalidArgument, "crop " + std::to_string(i) + " is " + std::to_string(crops[i].width) +
                                                        "x" + std::to_string(crops[i].height) + ", the model needs " +
                                                        std::to_string(card.width) + "x" + std::to_string(card.height));
        ncnn::Mat input = impl_->new_input();
        float* planes[3];
        warp_to_planar(crops[i], identity, card.norm, Impl::plane_pointers(input, planes));
        impl_->run(input, out + i * static_cast<std::size_t>(impl_->dim), normalize);
    }
}

void Embedder::embed_face(const ImageView& image, const std::vector<Point2f>& landmarks, float* out,
                          bool normalize) const {
    validate(image);
    validate_landmarks(image, landmarks);
    WarpParams params;
    params.dst_to_src = invert_affine(estimate_similarity(landmarks, impl_->dst_template));
    params.out_width = impl_->card.width;
    params.out_height = impl_->card.height;
    ncnn::Mat input = impl_->new_input();
    float* planes[3];
    warp_to_planar(image, params, impl_->card.norm, Impl::plane_pointers(input, planes));
    impl_->run(input, out, normalize);
}

}  // namespace fastface
