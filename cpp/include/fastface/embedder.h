// Face embedding with an ncnn model: aligned crops (or image + landmarks) in, vectors out.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fastface/align.h"
#include "fastface/image.h"

namespace fastface {

// What the engine needs to know about a model; stored as a JSON card beside the model.
struct ModelCard {
    std::string input = "data";  // input blob name
    std::string output = "fc1";  // output blob name (the embedding)
    int width = 112;
    int height = 112;
    InputNorm norm;       // channel order, mean and scale of the network input
    int dim = 0;          // embedding size; 0 = take it from the model
    std::vector<Point2f> align_template;  // empty = ArcFace template scaled to width x height
};

struct EmbedderOptions {
    int threads = 1;     // ncnn threads per call
    bool fp16 = false;   // fp16 storage and arithmetic where the CPU supports it
    // Every layer's input is shape-checked at load against its weights and parameters, and
    // layer types the checker does not know are refused; true loads those unchecked (ncnn's
    // own load-time checks still apply, but a malformed file of them can crash the process).
    bool allow_unknown_layers = false;
};

class Embedder {
public:
    // Throws fastface::Error: Io for unreadable files, ModelFormat for models ncnn rejects,
    // truncated weights, or blob names / sizes that do not fit the card.
    static Embedder from_files(const std::string& param_path, const std::string& bin_path,
                               const ModelCard& card, const EmbedderOptions& options = {});
    static Embedder from_memory(std::string param_text, std::vector<std::uint8_t> weights,
                                const ModelCard& card, const EmbedderOptions& options = {});
    // Loads the graph with zero weights — enough to time a model without trained weights.
    static Embedder without_weights(std::string param_text, const ModelCard& card,
                                    const EmbedderOptions& options = {});

    Embedder(Embedder&&) noexcept;
    Embedder& operator=(Embedder&&) noexcept;
    ~Embedder();

    int dim() const;
    const ModelCard& card() const;

    // Embeds n crops of exactly card().width x card().height into out (n * dim floats).
    // Safe to call from several threads at once.
    void embed(const ImageView* crops, std::size_t n, float* out, bool normalize = true) const;

    // Aligns the face given by landmarks and embeds it; the crop only ever exists as the
    // normalized network input.
    void embed_face(const ImageView& image, const std::vector<Point2f>& landmarks, float* out,
                    bool normalize = true) const;
    // The same for a crop given by its geometry (crop pixel -> image point), for alignments
    // other than the card's template: e.g. dlib's chip of its 5-point shape.
    void embed_face(const ImageView& image, const Affine& dst_to_src, float* out, bool normalize = true) const;

    // Every blob name in the model, for error messages and tooling.
    std::vector<std::string> blob_names() const;

    struct Impl;  // defined in embedder.cpp; keeps ncnn out of this header

private:
    explicit Embedder(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace fastface
