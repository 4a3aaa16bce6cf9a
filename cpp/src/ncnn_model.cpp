#include "ncnn_model.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "datareader.h"
#include "fastface/error.h"
#include "fastface/model_check.h"

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
    allow_unknown_layers = options.allow_unknown_layers;
}

void NcnnModel::parse(const std::string& param_text) {
    if (param_text.empty()) throw Error(ErrorCode::ModelFormat, "param file is empty");
    if (net.load_param_mem(param_text.c_str()) != 0)
        throw Error(ErrorCode::ModelFormat,
                    "ncnn could not parse the param file (not an ncnn .param, or it uses a layer this build lacks; "
                    "ncnn printed details to stderr)");
    graph = GraphCheck(net, param_text);
    if (!graph.unknown_types().empty() && !allow_unknown_layers)
        throw Error(ErrorCode::ModelFormat, "the model has layer types fastface cannot shape-check (" +
                                                join(graph.unknown_types()) +
                                                "); a malformed file of them could crash the process. Allow unknown "
                                                "layers to load it unchecked");
}

void NcnnModel::load_weights(std::vector<std::uint8_t>* new_weights, const std::string& input, int w, int h, int c) {
    const std::vector<std::string> inputs = input_names();
    if (std::find(inputs.begin(), inputs.end(), input) == inputs.end())
        throw Error(ErrorCode::ModelFormat, "input blob '" + input + "' is not an input of the model; inputs: " +
                                                join(inputs) + "; all blobs: " + join(blob_names()));
    check_input(input, w, h, c);
    if (!new_weights) {
        if (net.load_model(ZeroReader()) != 0) throw Error(ErrorCode::ModelFormat, "could not create zero weights");
        return;
    }
    weights = std::move(*new_weights);
    graph.check_weight_storage(BoundedReader(weights.data(), weights.size()));
    const BoundedReader reader(weights.data(), weights.size());
    if (net.load_model(reader) != 0)
        throw Error(ErrorCode::ModelFormat, "weights are truncated or do not match the param file (" +
                                                std::to_string(weights.size()) + " bytes given)");
    if (reader.consumed() != weights.size())
        throw Error(ErrorCode::ModelFormat, "weights do not match the param file: it uses " +
                                                std::to_string(reader.consumed()) + " of " +
                                                std::to_string(weights.size()) + " bytes");
}

void NcnnModel::check_input(const std::string& input, int w, int h, int c) const {
    const std::array<int, 3> size{w, h, c};
    {
        const std::lock_guard<std::mutex> lock(checked_mutex_);
        if (std::find(checked_sizes_.begin(), checked_sizes_.end(), size) != checked_sizes_.end()) return;
    }
    BlobShape shape;
    shape.dims = 3, shape.w = w, shape.h = h, shape.c = c;
    graph.propagate({{input, shape}}, allow_unknown_layers);
    const std::lock_guard<std::mutex> lock(checked_mutex_);
    // A detector sees a handful of padded sizes; a bound keeps a stream of odd sizes from growing this.
    if (checked_sizes_.size() < 64) checked_sizes_.push_back(size);
}

std::string NcnnModel::unchecked_note() const {
    if (graph.unknown_types().empty()) return "";
    return " (the model was not shape-checked: fastface does not know its layer types " + join(graph.unknown_types()) + ")";
}

std::vector<BlobShapeInfo> check_model_shapes(const std::string& param_text, const std::vector<ModelInput>& inputs,
                                              bool allow_unknown_layers) {
    EmbedderOptions options;
    options.allow_unknown_layers = allow_unknown_layers;
    NcnnModel model(options);
    model.parse(param_text);
    std::vector<std::pair<std::string, BlobShape>> shapes_in;
    for (const ModelInput& in : inputs) {
        if (in.w < 1 || in.h < 1 || in.c < 1 || in.w > kMaxInputSide || in.h > kMaxInputSide || in.c > 4096)
            throw Error(ErrorCode::InvalidArgument, "input '" + in.name + "' has an invalid size");
        BlobShape s;
        s.dims = 3, s.w = in.w, s.h = in.h, s.c = in.c;
        shapes_in.emplace_back(in.name, s);
    }
    const std::vector<BlobShape> shapes = model.graph.propagate(shapes_in, allow_unknown_layers);
    const std::vector<std::string> names = model.blob_names();
    std::vector<BlobShapeInfo> out;
    for (std::size_t i = 0; i < shapes.size(); ++i)
        if (!names[i].empty())  // a param may declare more blobs than its layers name
            out.push_back({names[i], shapes[i].dims, shapes[i].w, shapes[i].h, shapes[i].d, shapes[i].c});
    return out;
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
