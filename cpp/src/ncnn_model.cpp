#include "ncnn_model.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include "datareader.h"
#include "fastface/error.h"

namespace fastface {

namespace {

// Serves weights from memory with bounds checks, so a truncated .bin fails cleanly instead of
// reading past the buffer (ncnn's own memory reader trusts the length). A request beyond the
// end throws before ncnn allocates for it: when reference() fails, ncnn allocates the size the
// .param asked for and only then reads, so a mutated weight size would allocate gigabytes.
class BoundedReader : public ncnn::DataReader {
public:
    BoundedReader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    std::size_t read(void* buf, std::size_t size) const override {
        check(size);
        std::memcpy(buf, data_ + pos_, size);
        pos_ += size;
        return size;
    }
    std::size_t reference(std::size_t size, const void** buf) const override {
        check(size);
        *buf = data_ + pos_;
        pos_ += size;
        return size;
    }
    std::size_t consumed() const { return pos_; }

private:
    void check(std::size_t size) const {
        if (size > size_ - pos_)
            throw Error(ErrorCode::ModelFormat, "weights are truncated or do not match the param file: a layer asks for " +
                                                    std::to_string(size) + " bytes at offset " + std::to_string(pos_) +
                                                    ", the weights have " + std::to_string(size_) + " bytes");
    }
    const std::uint8_t* data_;
    std::size_t size_;
    mutable std::size_t pos_ = 0;
};

// Zero weights of whatever size the graph asks for (ncnn's benchmark does the same), up to
// kMaxZeroWeightBytes in all: the largest face models need a few hundred MB.
constexpr std::size_t kMaxZeroWeightBytes = std::size_t(1) << 30;
class ZeroReader : public ncnn::DataReader {
public:
    std::size_t read(void* buf, std::size_t size) const override {
        reserve(size);
        std::memset(buf, 0, size);
        return size;
    }
    std::size_t reference(std::size_t size, const void**) const override {
        // Checked here too: ncnn allocates the requested size before it calls read().
        if (size > kMaxZeroWeightBytes - total_) reserve(size);
        return 0;
    }

private:
    void reserve(std::size_t size) const {
        if (size > kMaxZeroWeightBytes - total_)
            throw Error(ErrorCode::ModelFormat, "the param file asks for more than 1 GiB of weights");
        total_ += size;
    }
    mutable std::size_t total_ = 0;
};

// Inference buffers (blobs and workspace) for a model whose shapes come from a file: one
// allocation is capped, so a .param asking for a huge blob fails in ncnn (which checks for
// an empty Mat) instead of exhausting memory. Stateless, so one serves every net and thread.
class CappedAllocator : public ncnn::Allocator {
public:
    void* fastMalloc(size_t size) override { return size > kMaxBlobBytes ? nullptr : ncnn::fastMalloc(size); }
    void fastFree(void* ptr) override { ncnn::fastFree(ptr); }
};
CappedAllocator capped_allocator;

}  // namespace

std::vector<std::uint8_t> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(ErrorCode::Io, "cannot open '" + path + "': " + std::strerror(errno));
    std::vector<std::uint8_t> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw Error(ErrorCode::Io, "cannot read '" + path + "'");
    return data;
}

// Layers of a param text ncnn has accepted whose weights fix their input:
// "InnerProduct name 1 1 bottom top 0=N ... 2=W" (W / N values in) and
// "Convolution[DepthWise] / Deconvolution[DepthWise] name 1 1 bottom top 0=N 1=kw 11=kh 6=W 7=groups"
// (W / (N kw kh) * groups channels in).
static std::vector<NcnnModel::LayerInput> find_layer_inputs(const std::string& param_text) {
    std::vector<NcnnModel::LayerInput> found;
    std::istringstream lines(param_text);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream tokens(line);
        std::string type, name, bottom, top, token;
        int bottoms = 0, tops = 0;
        if (!(tokens >> type >> name >> bottoms >> tops) || bottoms != 1) continue;
        const bool inner_product = type == "InnerProduct";
        const bool convolution = type == "Convolution" || type == "ConvolutionDepthWise" || type == "Deconvolution" ||
                                 type == "DeconvolutionDepthWise";
        if (!inner_product && !convolution) continue;
        tokens >> bottom;
        for (int i = 0; i < tops; ++i) tokens >> top;
        std::map<int, long long> params;
        while (tokens >> token) {
            const std::size_t eq = token.find('=');
            if (eq != std::string::npos && eq > 0 && token[0] != '-') params[std::atoi(token.c_str())] = std::atoll(token.c_str() + eq + 1);
        }
        const auto param = [&params](int id, long long fallback) {
            const auto it = params.find(id);
            return it == params.end() ? fallback : it->second;
        };
        const long long outputs = param(0, 0);
        if (inner_product) {
            const long long weight_size = param(2, 0);
            if (outputs > 0 && weight_size > 0) found.push_back({name, bottom, weight_size / outputs, false});
            continue;
        }
        const long long kernel_w = param(1, 0), kernel_h = param(11, kernel_w), weight_size = param(6, 0);
        const long long groups = type == "Convolution" || type == "Deconvolution" ? 1 : param(7, 1);
        const long long per_channel = outputs * kernel_w * kernel_h;
        if (per_channel <= 0 || weight_size <= 0 || groups <= 0) continue;  // ncnn refuses these at load
        // Weights that fit no whole channel count match no input: -1 is never a blob's channel count.
        found.push_back({name, bottom, weight_size % per_channel ? -1 : weight_size / per_channel * groups, true});
    }
    return found;
}

std::string join(const std::vector<std::string>& names) {
    std::string out;
    for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

NcnnModel::NcnnModel(const EmbedderOptions& options) {
    if (options.threads < 1) throw Error(ErrorCode::InvalidArgument, "threads must be >= 1");
    ncnn::Option& opt = net.opt;
    opt.num_threads = options.threads;
    opt.use_vulkan_compute = false;
    opt.use_fp16_packed = options.fp16;
    opt.use_fp16_storage = options.fp16;
    opt.use_fp16_arithmetic = options.fp16;
    opt.use_bf16_storage = false;
    opt.blob_allocator = &capped_allocator;
    opt.workspace_allocator = &capped_allocator;
}

void NcnnModel::load(const std::string& param_text, std::vector<std::uint8_t>* new_weights) {
    if (param_text.empty()) throw Error(ErrorCode::ModelFormat, "param file is empty");
    if (net.load_param_mem(param_text.c_str()) != 0)
        throw Error(ErrorCode::ModelFormat,
                    "ncnn could not parse the param file (not an ncnn .param, or it uses a layer this build lacks; "
                    "ncnn printed details to stderr)");
    layer_inputs = find_layer_inputs(param_text);
    if (!new_weights) {
        if (net.load_model(ZeroReader()) != 0) throw Error(ErrorCode::ModelFormat, "could not create zero weights");
        return;
    }
    weights = std::move(*new_weights);
    const BoundedReader reader(weights.data(), weights.size());
    if (net.load_model(reader) != 0)
        throw Error(ErrorCode::ModelFormat, "weights are truncated or do not match the param file (" +
                                                std::to_string(weights.size()) + " bytes given)");
    if (reader.consumed() != weights.size())
        throw Error(ErrorCode::ModelFormat, "weights do not match the param file: it uses " +
                                                std::to_string(reader.consumed()) + " of " +
                                                std::to_string(weights.size()) + " bytes");
}

void NcnnModel::check_layer_inputs(ncnn::Extractor& ex, bool all) const {
    for (const LayerInput& li : layer_inputs) {
        if (li.channels && !all) continue;
        ncnn::Mat in;
        if (ex.extract(li.bottom.c_str(), in) != 0 || in.empty())
            throw Error(ErrorCode::ModelFormat, "ncnn could not compute the input of layer '" + li.layer + "'");
        if (li.channels) {
            if (in.c != li.expected)
                throw Error(ErrorCode::ModelFormat, "layer '" + li.layer + "' has weights for " +
                                                        (li.expected < 0 ? "no whole number of" : std::to_string(li.expected)) +
                                                        " input channels but gets " + std::to_string(in.c) +
                                                        ": the model file is malformed");
            continue;
        }
        const long long values = static_cast<long long>(in.w) * in.h * in.d * in.c;
        if (values != li.expected)
            throw Error(ErrorCode::ModelFormat, "layer '" + li.layer + "' takes " + std::to_string(li.expected) +
                                                    " values but gets " + std::to_string(values) +
                                                    ": the input size does not fit this model");
    }
}

std::vector<std::string> NcnnModel::blob_names() const {
    std::vector<std::string> names;
    for (const ncnn::Blob& b : net.blobs()) names.push_back(b.name);
    return names;
}

std::vector<std::string> NcnnModel::input_names() const {
    std::vector<std::string> names;
    for (const char* name : net.input_names()) names.emplace_back(name);
    return names;
}

bool NcnnModel::has_blob(const std::string& name) const {
    const std::vector<std::string> names = blob_names();
    return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace fastface
