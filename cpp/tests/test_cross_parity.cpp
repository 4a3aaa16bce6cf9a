// Cross-architecture embedding parity: the shared MobileFaceNet, run by this build (NEON warps and
// ncnn's ARM kernels under qemu in CI), must embed real faces like the x86 build did. The
// reference comes from cpp/tests/make_reference.py (crops, photo regions + landmarks, and their
// x86 embeddings); FASTFACE_PARITY_DIR points at it, FASTFACE_TEST_DATA at the shared data.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "fastface/embedder.h"
#include "fastface/simd.h"
#include "testing.h"

using namespace fastface;

namespace {

constexpr double kMinCosine = 0.999;  // fp32 on ARM vs x86: summation order and FMA differ
// int8 on ARM vs x86: ncnn's kernels differ (Winograd/GEMM paths, requantize rounding), so an
// activation now and then lands on the other side of a rounding step; measured under
// qemu-aarch64 and qemu-arm (armv7): min 0.9955, mean 0.9976 over the 19 faces.
constexpr double kMinCosineInt8 = 0.99;

struct Entry {
    std::string kind;  // "crop" (embed as is) or "face" (align to the landmarks and embed)
    std::string name;
    int width = 0;
    int height = 0;
    std::vector<Point2f> landmarks;
    std::size_t offset = 0;  // into images.u8
};

struct Reference {
    std::vector<Entry> entries;
    std::vector<std::uint8_t> pixels;
    std::vector<float> embeddings;
    int dim = 0;
};

std::vector<char> read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw testing::Failure("cannot open " + path);
    return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

Reference load_reference(const std::string& dir) {
    Reference ref;
    std::ifstream manifest(dir + "/reference.txt");
    if (!manifest) throw testing::Failure("cannot open " + dir + "/reference.txt (make it with cpp/tests/make_reference.py)");
    std::string line, magic, key;
    int version = 0, count = -1;
    std::getline(manifest, line);
    std::istringstream header(line);
    header >> magic >> version;
    while (header >> key) {
        std::string value;
        header >> value;
        if (key == "dim") ref.dim = std::stoi(value);
        if (key == "count") count = std::stoi(value);
    }
    if (magic != "fastface-parity" || version != 1 || ref.dim <= 0)
        throw testing::Failure(dir + "/reference.txt: not a fastface-parity 1 manifest");
    std::size_t offset = 0;
    while (std::getline(manifest, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream in(line);
        Entry e;
        in >> e.kind >> e.name >> e.width >> e.height;
        if (e.kind == "face") {
            for (int i = 0; i < 5; ++i) {
                Point2f p{};
                in >> p.x >> p.y;
                e.landmarks.push_back(p);
            }
        }
        if (!in || (e.kind != "crop" && e.kind != "face") || e.width <= 0 || e.height <= 0)
            throw testing::Failure(dir + "/reference.txt: bad line '" + line + "'");
        e.offset = offset;
        offset += static_cast<std::size_t>(e.width) * e.height * 3;
        ref.entries.push_back(e);
    }
    if (count != static_cast<int>(ref.entries.size())) throw testing::Failure(dir + "/reference.txt: entry count mismatch");
    const std::vector<char> pixels = read_all(dir + "/images.u8");
    const std::vector<char> floats = read_all(dir + "/embeddings.f32");
    if (pixels.size() != offset) throw testing::Failure(dir + "/images.u8 does not match the manifest");
    if (floats.size() != ref.entries.size() * ref.dim * sizeof(float))
        throw testing::Failure(dir + "/embeddings.f32 does not match the manifest");
    ref.pixels.assign(pixels.begin(), pixels.end());
    ref.embeddings.resize(floats.size() / sizeof(float));
    std::memcpy(ref.embeddings.data(), floats.data(), floats.size());
    return ref;
}

double cosine64(const float* a, const float* b, int d) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < d; ++i) {
        ab += double(a[i]) * b[i];
        aa += double(a[i]) * a[i];
        bb += double(b[i]) * b[i];
    }
    return ab / std::sqrt(aa * bb);
}

// Embeds the first `limit` entries and returns their cosines with the reference; prints a summary.
std::vector<double> compare(const Reference& ref, const Embedder& e, const char* label, std::size_t limit) {
    std::vector<double> cosines;
    std::vector<float> out(ref.dim);
    double sum = 0;
    std::size_t worst = 0;
    for (std::size_t i = 0; i < std::min(limit, ref.entries.size()); ++i) {
        const Entry& entry = ref.entries[i];
        const ImageView view{ref.pixels.data() + entry.offset, entry.width, entry.height,
                             static_cast<std::ptrdiff_t>(entry.width) * 3, PixelFormat::BGR};
        if (entry.kind == "crop")
            e.embed(&view, 1, out.data());
        else
            e.embed_face(view, entry.landmarks, out.data());
        const double c = cosine64(out.data(), ref.embeddings.data() + cosines.size() * ref.dim, ref.dim);
        if (!cosines.empty() && c < cosines[worst]) worst = cosines.size();
        cosines.push_back(c);
        sum += c;
    }
    std::printf("  %s (%s kernels): %zu faces, cosine with the reference: min %.7f (1 - min = %.1e, %s %s), "
                "mean %.7f\n", label, isa_name(best_isa()), cosines.size(), cosines[worst], 1.0 - cosines[worst],
                ref.entries[worst].kind.c_str(), ref.entries[worst].name.c_str(), sum / cosines.size());
    return cosines;
}

}  // namespace

TEST(cross_arch_embeddings_match_reference) {
    const char* parity_dir = std::getenv("FASTFACE_PARITY_DIR");
    if (!parity_dir || !*parity_dir) {
        std::printf("  (skipped: FASTFACE_PARITY_DIR not set; make the reference with cpp/tests/make_reference.py)\n");
        return;
    }
    const Reference ref = load_reference(parity_dir);
    const char* data_env = std::getenv("FASTFACE_TEST_DATA");
    const std::string model = (data_env ? std::string(data_env) : std::string("../shared/data")) +
                              "/models/mobilefacenet-insightface/mobilefacenet";
    if (!std::ifstream(model + ".param"))
        throw testing::Failure(model + ".param not found (FASTFACE_PARITY_DIR is set, so the model is required)");
    ModelCard card;  // input data, output fc1, 112x112, RGB, mean 0, scale 1
    card.dim = ref.dim;

    const Embedder fp32 = Embedder::from_files(model + ".param", model + ".bin", card);
    const std::vector<double> cosines = compare(ref, fp32, "fp32", ref.entries.size());
    for (std::size_t i = 0; i < cosines.size(); ++i) {
        if (!(cosines[i] >= kMinCosine)) {
            std::ostringstream os;
            os << ref.entries[i].kind << " " << ref.entries[i].name << ": cosine " << cosines[i] << " < " << kMinCosine;
            throw testing::Failure(os.str());
        }
    }
    // fp16 storage/arithmetic (arithmetic only where the CPU has it: A76/A78, qemu's default
    // "max" CPU): reported, not asserted (its rounding is the user's trade of accuracy for speed),
    // on a few faces only, since qemu emulates fp16 arithmetic slowly.
    EmbedderOptions half;
    half.fp16 = true;
    compare(ref, Embedder::from_files(model + ".param", model + ".bin", card, half), "fp16", 5);
}

// The int8 MobileFaceNet that make_reference.py quantized (fastface quantize) against its x86
// embeddings: ncnn's ARM int8 kernels under qemu, for the models fastface quantize writes.
TEST(cross_arch_int8_embeddings_match_reference) {
    const char* parity_dir = std::getenv("FASTFACE_PARITY_DIR");
    if (!parity_dir || !*parity_dir) {
        std::printf("  (skipped: FASTFACE_PARITY_DIR not set; make the reference with cpp/tests/make_reference.py)\n");
        return;
    }
    const std::string dir(parity_dir);
    if (!std::ifstream(dir + "/mobilefacenet.int8.param")) {
        std::printf("  (skipped: no int8 reference in %s; make_reference.py needs the ncnn Python package)\n",
                    parity_dir);
        return;
    }
    Reference ref = load_reference(dir);
    const std::vector<char> floats = read_all(dir + "/embeddings_int8.f32");
    if (floats.size() != ref.embeddings.size() * sizeof(float))
        throw testing::Failure(dir + "/embeddings_int8.f32 does not match the manifest");
    std::memcpy(ref.embeddings.data(), floats.data(), floats.size());
    ModelCard card;  // input data, output fc1, 112x112, RGB, mean 0, scale 1
    card.dim = ref.dim;
    const Embedder int8 = Embedder::from_files(dir + "/mobilefacenet.int8.param", dir + "/mobilefacenet.int8.bin", card);
    const std::vector<double> cosines = compare(ref, int8, "int8", ref.entries.size());
    for (std::size_t i = 0; i < cosines.size(); ++i) {
        if (!(cosines[i] >= kMinCosineInt8)) {
            std::ostringstream os;
            os << "int8 " << ref.entries[i].kind << " " << ref.entries[i].name << ": cosine " << cosines[i] << " < "
               << kMinCosineInt8;
            throw testing::Failure(os.str());
        }
    }
}
