#include "ncnn_model.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "datareader.h"
#include "fastface/error.h"

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
}

void NcnnModel::load(const std::string& param_text, std::vector<std::uint8_t>* new_weights) {
    if (param_text.empty()) throw Error(ErrorCode::ModelFormat, "param file is empty");
    if (net.load_param_mem(param_text.c_str()) != 0)
        throw Error(ErrorCode::ModelFormat,
                    "ncnn could not parse the param file (not an ncnn .param, or it uses a layer this build lacks; "
                    "ncnn printed details to stderr)");
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
