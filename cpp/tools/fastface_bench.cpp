// fastface-bench: what fastface costs on this machine, without Python. Loads an ncnn face
// embedding model, then times align / embed / embed_face / match N times each and prints the
// median and 90th percentile per stage and the peak memory (max RSS).
//
//   fastface-bench model.param [--card model.json] [--threads 4] [--runs 50] ...
//   fastface-bench --demo                 (a built-in toy graph with zero weights: a smoke test)
//
// Run with --help for every option. Reads a JSON model card (the keys of fastface's cards:
// input, output, size, channel_order, mean, scale, dim, template) or takes them as flags;
// reads binary PPM/PGM photos (--image) so a board needs no image library.
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cpu.h"  // ncnn: CPU topology and big.LITTLE affinity
#include "fastface/fastface.h"

using namespace fastface;

namespace {

const char* kUsage = R"(usage: fastface-bench MODEL.param [options]
       fastface-bench --demo [options]

Times each stage of fastface's recognition path on this machine: align (similarity estimate +
bilinear warp to a uint8 crop), embed (crop -> normalized network input -> ncnn -> L2-normalized
embedding), embed_face (align and embed fused, no intermediate crop), match (one query against a
gallery, top-k cosine). Prints median and p90 latency per stage and the peak memory (max RSS).

model:
  MODEL.param          ncnn graph; weights from MODEL.bin, card from MODEL.json when present
  --bin PATH           weights file
  --card PATH          JSON model card, e.g. {"input": "data", "output": "fc1", "size": 112,
                       "channel_order": "RGB", "mean": 0.0, "scale": 1.0, "dim": 128}
  --input NAME --output NAME --size N|WxH --order RGB|BGR|GRAY --mean V[,V,V] --scale V[,V,V]
  --dim N              card fields as flags (override the card; defaults: data fc1 112 RGB 0 1)
  --zero-weights       load the graph with zero weights (time a model you have no .bin for)
  --demo               no model: a small built-in graph with zero weights
run:
  --threads N          ncnn threads per inference (default 1)
  --powersave 0|1|2    ncnn CPU affinity: 0 all cores, 1 little cores only, 2 big cores only
  --fp16               fp16 storage and arithmetic where the CPU has it (Cortex-A76/A78)
  --runs N             timed runs per stage (default 50)
  --warmup N           untimed runs per stage first (default 5)
  --gallery N          gallery size for match (default 10000)
  --k N                top-k for match (default 5)
  --match-threads N    search threads (default 0: chosen from the gallery size)
  --isa NAME           kernels for align/match: scalar, sse2, avx2, neon (default: best here)
  --image PATH         a binary PPM (P6) or PGM (P5) photo; default: a synthetic 640x480 image
  --landmarks x0,y0,...,x4,y4  the face in --image (left eye, right eye, nose, mouth corners)
)";

[[noreturn]] void fail(const std::string& message) {
    std::fprintf(stderr, "fastface-bench: %s\n", message.c_str());
    std::exit(2);
}

// ---- a minimal JSON reader: enough for model cards (objects, arrays, numbers, strings) ----

struct Json {
    enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
    double number = 0;
    std::string text;
    std::vector<Json> items;
    std::vector<std::pair<std::string, Json>> members;

    const Json* find(const std::string& key) const {
        for (const auto& m : members)
            if (m.first == key) return &m.second;
        return nullptr;
    }
    // Every number inside, depth first ([[1,2],[3,4]] -> 1 2 3 4).
    void numbers(std::vector<double>& out) const {
        if (kind == Number) out.push_back(number);
        for (const Json& j : items) j.numbers(out);
    }
};

class JsonParser {
public:
    explicit JsonParser(const std::string& text) : s_(text) {}
    Json parse() {
        Json v = value();
        skip();
        if (i_ != s_.size()) error("trailing characters");
        return v;
    }

private:
    const std::string& s_;
    std::size_t i_ = 0;

    [[noreturn]] void error(const std::string& what) {
        fail("model card: " + what + " at character " + std::to_string(i_));
    }
    void skip() {
        while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    bool eat(char c) {
        skip();
        if (i_ < s_.size() && s_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    void expect(char c) {
        if (!eat(c)) error(std::string("expected '") + c + "'");
    }
    std::string string() {
        expect('"');
        std::string out;
        while (i_ < s_.size() && s_[i_] != '"') {
            char c = s_[i_++];
            if (c == '\\' && i_ < s_.size()) {
                const char e = s_[i_++];
                c = e == 'n' ? '\n' : e == 't' ? '\t' : e;  // \" \\ \/ and friends; \u is not needed here
            }
            out += c;
        }
        expect('"');
        return out;
    }
    Json value() {
        skip();
        Json v;
        if (i_ >= s_.size()) error("unexpected end");
        const char c = s_[i_];
        if (c == '{') {
            ++i_;
            v.kind = Json::Object;
            if (eat('}')) return v;
            do {
                skip();
                std::string key = string();
                expect(':');
                v.members.emplace_back(std::move(key), value());
            } while (eat(','));
            expect('}');
        } else if (c == '[') {
            ++i_;
            v.kind = Json::Array;
            if (eat(']')) return v;
            do v.items.push_back(value());
            while (eat(','));
            expect(']');
        } else if (c == '"') {
            v.kind = Json::String;
            v.text = string();
        } else if (s_.compare(i_, 4, "true") == 0 || s_.compare(i_, 5, "false") == 0) {
            v.kind = Json::Bool;
            v.number = s_[i_] == 't';
            i_ += s_[i_] == 't' ? 4 : 5;
        } else if (s_.compare(i_, 4, "null") == 0) {
            i_ += 4;
        } else {
            char* end = nullptr;
            v.kind = Json::Number;
            v.number = std::strtod(s_.c_str() + i_, &end);
            if (end == s_.c_str() + i_) error("unexpected character");
            i_ = static_cast<std::size_t>(end - s_.c_str());
        }
        return v;
    }
};

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("cannot open " + path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool file_exists(const std::string& path) { return static_cast<bool>(std::ifstream(path)); }

std::vector<double> parse_numbers(const std::string& text, const char* what) {
    std::vector<double> out;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) {
        char* end = nullptr;
        const double v = std::strtod(item.c_str(), &end);
        if (item.empty() || *end != '\0') fail(std::string("bad number '") + item + "' in " + what);
        out.push_back(v);
    }
    return out;
}

PixelFormat parse_order(std::string name) {
    for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (name == "RGB") return PixelFormat::RGB;
    if (name == "BGR") return PixelFormat::BGR;
    if (name == "GRAY") return PixelFormat::Gray;
    fail("channel order must be RGB, BGR or GRAY, got " + name);
}

void set_triple(std::array<float, 3>& dst, const std::vector<double>& v, const char* what) {
    if (v.size() == 1)
        dst = {float(v[0]), float(v[0]), float(v[0])};
    else if (v.size() == 3)
        dst = {float(v[0]), float(v[1]), float(v[2])};
    else
        fail(std::string(what) + " must be one number or three");
}

void set_size(ModelCard& card, const std::vector<double>& v) {
    if (v.size() == 1)
        card.width = card.height = static_cast<int>(v[0]);
    else if (v.size() == 2)
        card.width = static_cast<int>(v[0]), card.height = static_cast<int>(v[1]);
    else
        fail("size must be N or [W, H]");
}

void apply_card(ModelCard& card, const std::string& path) {
    const Json root = JsonParser(read_text(path)).parse();
    if (root.kind != Json::Object) fail(path + ": a model card is a JSON object");
    std::vector<double> v;
    auto nums = [&](const Json* j) {
        v.clear();
        j->numbers(v);
        return v;
    };
    if (const Json* j = root.find("input")) card.input = j->text;
    if (const Json* j = root.find("output")) card.output = j->text;
    if (const Json* j = root.find("size")) set_size(card, nums(j));
    if (const Json* j = root.find("channel_order")) card.norm.order = parse_order(j->text);
    if (const Json* j = root.find("mean")) set_triple(card.norm.mean, nums(j), "mean");
    if (const Json* j = root.find("scale")) set_triple(card.norm.scale, nums(j), "scale");
    if (const Json* j = root.find("dim"); j && j->kind == Json::Number) card.dim = static_cast<int>(j->number);
    if (const Json* j = root.find("template"); j && j->kind == Json::Array) {
        nums(j);
        if (v.size() < 4 || v.size() % 2) fail(path + ": template must be N x 2 points");
        card.align_template.clear();
        for (std::size_t i = 0; i < v.size(); i += 2) card.align_template.push_back({float(v[i]), float(v[i + 1])});
    }
}

// ---- images ----

struct Image {
    std::vector<std::uint8_t> pixels;
    ImageView view;
};

Image read_pnm(const std::string& path) {
    const std::string data = read_text(path);
    std::size_t pos = 0;
    auto token = [&]() {
        for (;;) {
            while (pos < data.size() && std::isspace(static_cast<unsigned char>(data[pos]))) ++pos;
            if (pos < data.size() && data[pos] == '#') {
                while (pos < data.size() && data[pos] != '\n') ++pos;
                continue;
            }
            break;
        }
        const std::size_t start = pos;
        while (pos < data.size() && !std::isspace(static_cast<unsigned char>(data[pos]))) ++pos;
        return data.substr(start, pos - start);
    };
    const std::string magic = token();
    if (magic != "P6" && magic != "P5") fail(path + ": only binary PPM (P6) and PGM (P5) images are read");
    const int width = std::atoi(token().c_str()), height = std::atoi(token().c_str()), maxval = std::atoi(token().c_str());
    ++pos;  // the single whitespace after maxval
    const int channels = magic == "P6" ? 3 : 1;
    if (width <= 0 || height <= 0 || maxval != 255) fail(path + ": need a positive size and maxval 255");
    const std::size_t bytes = static_cast<std::size_t>(width) * height * channels;
    if (data.size() < pos + bytes) fail(path + ": truncated");
    Image img;
    img.pixels.assign(data.begin() + static_cast<std::ptrdiff_t>(pos), data.begin() + static_cast<std::ptrdiff_t>(pos + bytes));
    img.view = {img.pixels.data(), width, height, static_cast<std::ptrdiff_t>(width) * channels,
                channels == 3 ? PixelFormat::RGB : PixelFormat::Gray};
    return img;
}

// A 640x480 BGR image with texture everywhere and a face-sized, slightly rotated landmark set.
Image synthetic_image(std::vector<Point2f>& landmarks) {
    Image img;
    const int w = 640, h = 480;
    img.pixels.resize(static_cast<std::size_t>(w) * h * 3);
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> noise(0, 40);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            std::uint8_t* p = &img.pixels[(static_cast<std::size_t>(y) * w + x) * 3];
            p[0] = static_cast<std::uint8_t>((x / 3 + noise(rng)) & 0xff);
            p[1] = static_cast<std::uint8_t>((y / 2 + noise(rng)) & 0xff);
            p[2] = static_cast<std::uint8_t>(((x + y) / 5 + noise(rng)) & 0xff);
        }
    img.view = {img.pixels.data(), w, h, w * 3, PixelFormat::BGR};
    const double angle = 0.2, scale = 1.8, cx = 330, cy = 230;
    landmarks.clear();
    for (const Point2f& p : kArcFaceTemplate112) {
        const double dx = (p.x - 56) * scale, dy = (p.y - 56) * scale;
        landmarks.push_back({static_cast<float>(cx + dx * std::cos(angle) - dy * std::sin(angle)),
                             static_cast<float>(cy + dx * std::sin(angle) + dy * std::cos(angle))});
    }
    return img;
}

// data 112x112x3 -> conv 3x3/2 (16) -> relu -> dw 3x3/2 -> conv 1x1 (32) -> relu -> global avg
// pool -> fc 128: a stand-in with the shape of a face embedder, for --demo.
const char* kDemoParam =
    "7767517\n"
    "8 8\n"
    "Input data 0 1 data 0=112 1=112 2=3\n"
    "Convolution conv1 1 1 data c1 0=16 1=3 3=2 4=1 5=1 6=432\n"
    "ReLU relu1 1 1 c1 r1\n"
    "ConvolutionDepthWise dw2 1 1 r1 d2 0=16 1=3 3=2 4=1 5=1 6=144 7=16\n"
    "Convolution conv3 1 1 d2 c3 0=32 1=1 5=1 6=512\n"
    "ReLU relu3 1 1 c3 r3\n"
    "Pooling gap 1 1 r3 p 0=1 4=1\n"
    "InnerProduct fc1 1 1 p fc1 0=128 1=1 2=4096\n";

// ---- timing ----

struct Stats {
    double median_ms = 0;
    double p90_ms = 0;
};

Stats time_runs(int warmup, int runs, const std::function<void()>& body) {
    for (int i = 0; i < warmup; ++i) body();
    std::vector<double> ms;
    ms.reserve(static_cast<std::size_t>(runs));
    for (int i = 0; i < runs; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        body();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    const std::size_t n = ms.size();
    Stats s;
    s.median_ms = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
    s.p90_ms = ms[static_cast<std::size_t>(std::ceil(0.9 * static_cast<double>(n))) - 1];  // nearest rank
    return s;
}

double peak_rss_mib() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

int to_int(const std::string& flag, const std::string& value, int min) {
    char* end = nullptr;
    const long v = std::strtol(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || v < min) fail(flag + " needs an integer >= " + std::to_string(min));
    return static_cast<int>(v);
}

}  // namespace

int main(int argc, char** argv) {
    std::string param, bin, card_path, image_path;
    ModelCard card;
    card.norm.order = PixelFormat::RGB;
    EmbedderOptions options;
    int runs = 50, warmup = 5, gallery_size = 10000, k = 5, match_threads = 0, powersave = -1;
    bool demo = false, zero_weights = false;
    Isa isa = best_isa();
    std::vector<Point2f> landmarks;
    // Card flags are applied after the card file, whatever their order on the command line.
    std::vector<std::pair<std::string, std::string>> card_flags;

    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) fail(arg + " needs a value");
            return argv[++i];
        };
        if (arg == "-h" || arg == "--help") {
            std::fputs(kUsage, stdout);
            return 0;
        } else if (arg == "--demo") {
            demo = true;
        } else if (arg == "--zero-weights") {
            zero_weights = true;
        } else if (arg == "--fp16") {
            options.fp16 = true;
        } else if (arg == "--bin") {
            bin = next();
        } else if (arg == "--card") {
            card_path = next();
        } else if (arg == "--input" || arg == "--output" || arg == "--size" || arg == "--order" || arg == "--mean" ||
                   arg == "--scale" || arg == "--dim") {
            card_flags.emplace_back(arg, next());
        } else if (arg == "--threads") {
            options.threads = to_int(arg, next(), 1);
        } else if (arg == "--powersave") {
            powersave = to_int(arg, next(), 0);
        } else if (arg == "--runs") {
            runs = to_int(arg, next(), 1);
        } else if (arg == "--warmup") {
            warmup = to_int(arg, next(), 0);
        } else if (arg == "--gallery") {
            gallery_size = to_int(arg, next(), 1);
        } else if (arg == "--k") {
            k = to_int(arg, next(), 1);
        } else if (arg == "--match-threads") {
            match_threads = to_int(arg, next(), 0);
        } else if (arg == "--isa") {
            try {
                isa = isa_from_name(next());
            } catch (const Error& e) {
                fail(e.what());
            }
            const std::vector<Isa> here = available_isas();
            if (std::find(here.begin(), here.end(), isa) == here.end())
                fail(std::string("kernels '") + isa_name(isa) + "' are not available on this machine");
        } else if (arg == "--image") {
            image_path = next();
        } else if (arg == "--landmarks") {
            const std::vector<double> v = parse_numbers(next(), "--landmarks");
            if (v.size() < 4 || v.size() % 2) fail("--landmarks needs x,y pairs");
            for (std::size_t j = 0; j < v.size(); j += 2) landmarks.push_back({float(v[j]), float(v[j + 1])});
        } else if (!arg.empty() && arg[0] != '-' && param.empty()) {
            param = arg;
        } else {
            fail("unknown argument '" + arg + "' (see --help)");
        }
    }
    if (param.empty() && !demo) fail("give a model (MODEL.param) or --demo; see --help");
    if (k > gallery_size) fail("--k must not exceed --gallery");

    if (!param.empty()) {
        const std::string stem = param.size() > 6 && param.compare(param.size() - 6, 6, ".param") == 0
                                     ? param.substr(0, param.size() - 6)
                                     : param;
        if (bin.empty()) bin = stem + ".bin";
        if (card_path.empty() && file_exists(stem + ".json")) card_path = stem + ".json";
    }
    if (!card_path.empty()) apply_card(card, card_path);
    for (const auto& [flag, value] : card_flags) {
        if (flag == "--input") card.input = value;
        if (flag == "--output") card.output = value;
        if (flag == "--order") card.norm.order = parse_order(value);
        if (flag == "--mean") set_triple(card.norm.mean, parse_numbers(value, "--mean"), "--mean");
        if (flag == "--scale") set_triple(card.norm.scale, parse_numbers(value, "--scale"), "--scale");
        if (flag == "--dim") card.dim = to_int(flag, value, 0);
        if (flag == "--size") {
            const std::size_t x = value.find('x');
            set_size(card, x == std::string::npos ? parse_numbers(value, "--size")
                                                  : std::vector<double>{std::atof(value.substr(0, x).c_str()),
                                                                        std::atof(value.substr(x + 1).c_str())});
        }
    }

    if (powersave >= 0) {
        if (powersave > 2) fail("--powersave is 0, 1 or 2");
        if (ncnn::set_cpu_powersave(powersave) != 0) std::fprintf(stderr, "fastface-bench: ncnn could not set powersave %d\n", powersave);
    }

    Image image;
    if (!image_path.empty()) {
        image = read_pnm(image_path);
        if (landmarks.empty()) fail("--image needs --landmarks");
    } else {
        std::vector<Point2f> synthetic;
        image = synthetic_image(synthetic);
        if (landmarks.empty()) landmarks = synthetic;
    }

    // Load.
    const auto load_start = std::chrono::steady_clock::now();
    std::string model_name;
    Embedder embedder = [&]() {
        try {
            if (demo) {
                model_name = "built-in demo graph (zero weights)";
                return Embedder::without_weights(kDemoParam, card, options);
            }
            model_name = param + (zero_weights ? " (zero weights)" : "");
            if (zero_weights) return Embedder::without_weights(read_text(param), card, options);
            return Embedder::from_files(param, bin, card, options);
        } catch (const Error& e) {
            fail(std::string("cannot load the model: ") + e.what());
        }
    }();
    const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - load_start).count();
    const int dim = embedder.dim();
    const ModelCard& used = embedder.card();

    const char* order = used.norm.order == PixelFormat::RGB ? "RGB" : used.norm.order == PixelFormat::BGR ? "BGR" : "GRAY";
    std::printf("fastface-bench: %s\n", model_name.c_str());
    std::printf("  card: input %s, output %s, %dx%d %s, mean %g, scale %g, dim %d\n", used.input.c_str(),
                used.output.c_str(), used.width, used.height, order, used.norm.mean[0], used.norm.scale[0], dim);
    std::printf("  ncnn threads %d, %s, powersave %d; kernels %s; cpus %d (big %d, little %d)\n", options.threads,
                options.fp16 ? "fp16" : "fp32", ncnn::get_cpu_powersave(), isa_name(isa), ncnn::get_cpu_count(),
                ncnn::get_big_cpu_count(), ncnn::get_little_cpu_count());
    std::printf("  image %dx%d, %zu landmarks; load %.1f ms; %d runs after %d warm-up\n", image.view.width,
                image.view.height, landmarks.size(), load_ms, runs, warmup);

    // Stages.
    const std::vector<Point2f> dst = used.align_template.empty() ? arcface_template(used.width, used.height)
                                                                 : used.align_template;
    std::vector<std::uint8_t> crop(static_cast<std::size_t>(used.width) * used.height * image.view.channels());
    const ImageView crop_view{crop.data(), used.width, used.height,
                              static_cast<std::ptrdiff_t>(used.width) * image.view.channels(), image.view.format};
    std::vector<float> embedding(static_cast<std::size_t>(dim));

    std::mt19937 rng(11);
    std::normal_distribution<float> normal;
    std::vector<float> gallery(static_cast<std::size_t>(gallery_size) * dim);
    for (std::size_t r = 0; r < static_cast<std::size_t>(gallery_size); ++r) {
        float* row = &gallery[r * dim];
        double norm = 0;
        for (int j = 0; j < dim; ++j) norm += double(row[j] = normal(rng)) * row[j];
        for (int j = 0; j < dim; ++j) row[j] = static_cast<float>(row[j] / std::sqrt(norm));
    }
    std::vector<std::int64_t> top_index(static_cast<std::size_t>(k));
    std::vector<float> top_score(static_cast<std::size_t>(k));

    struct Row {
        std::string name;
        Stats stats;
    };
    std::vector<Row> rows;
    try {
        validate_landmarks(image.view, landmarks);
        rows.push_back({"align", time_runs(warmup, runs, [&] {
                            WarpParams p;
                            p.dst_to_src = invert_affine(estimate_similarity(landmarks, dst));
                            p.out_width = used.width;
                            p.out_height = used.height;
                            warp_to_u8(image.view, p, crop.data(), isa);
                        })});
        rows.push_back({"embed", time_runs(warmup, runs, [&] { embedder.embed(&crop_view, 1, embedding.data()); })});
        rows.push_back({"embed_face", time_runs(warmup, runs, [&] {
                            embedder.embed_face(image.view, landmarks, embedding.data());
                        })});
        rows.push_back({"match", time_runs(warmup, runs, [&] {
                            search(embedding.data(), 1, gallery.data(), static_cast<std::size_t>(gallery_size),
                                   static_cast<std::size_t>(dim), static_cast<std::size_t>(k), top_index.data(),
                                   top_score.data(), match_threads, true, isa);
                        })});
    } catch (const Error& e) {
        fail(e.what());
    }

    std::printf("\n%-12s %10s %10s\n", "stage", "median ms", "p90 ms");
    for (const Row& r : rows) std::printf("%-12s %10.3f %10.3f\n", r.name.c_str(), r.stats.median_ms, r.stats.p90_ms);
    std::printf("\nalign: estimate + warp to a %dx%d crop; embed: one crop; embed_face: align + embed fused;\n"
                "match: 1 query vs %d x %d gallery, top-%d (match threads %d = %s)\n",
                used.width, used.height, gallery_size, dim, k, match_threads, match_threads ? "fixed" : "auto");
    std::printf("peak memory (max RSS): %.1f MiB\n", peak_rss_mib());
    return 0;
}
