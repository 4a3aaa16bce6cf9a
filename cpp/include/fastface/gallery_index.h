// A gallery's embeddings in memory, in the precision they are stored in (float32, float16 or
// int8 with one scale per row), searched by cosine with the best row per identity.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fastface/simd.h"

namespace fastface {

enum class Precision { Float32, Float16, Int8 };

const char* precision_name(Precision precision);                 // "float32", "float16", "int8"
Precision precision_from_name(const std::string& name);          // throws InvalidArgument
std::size_t bytes_per_value(Precision precision);                // 4, 2, 1

// One search result: a score and the label of its identity (or the row index, for row search).
struct Hit {
    float score;
    std::int64_t id;
};

// Rows of `dim` values with an int32 label each (the identity they belong to). Rows are unit
// length: encode() normalizes float rows before storing them; int8 rows are symmetric, value =
// scale * q with q in [-127, 127] and scale = max |x| / 127 per row. Storage grows
// geometrically (amortized O(1) add) and is never converted per query: each precision has its
// own dot kernels (scalar reference + SIMD, picked by `isa`).
//
// Not thread-safe for writers: callers serialize add/remove against search; concurrent
// searches are fine.
class GalleryIndex {
public:
    GalleryIndex(std::size_t dim, Precision precision);
    GalleryIndex(const GalleryIndex&) = delete;
    GalleryIndex& operator=(const GalleryIndex&) = delete;
    ~GalleryIndex();

    // Encodes n float rows into this precision: L2-normalized, then converted. `out` receives
    // n * dim * bytes_per_value bytes, `scales` n floats (1 for float32/float16). Throws
    // InvalidArgument for NaN/inf or all-zero rows.
    static void encode(Precision precision, const float* rows, std::size_t n, std::size_t dim, void* out,
                       float* scales);

    // Appends n float rows (normalized and encoded as above) with their labels.
    void add(const float* rows, std::size_t n, const std::int32_t* labels);
    // Appends n rows already encoded in this precision (e.g. read back from a gallery file);
    // `scales` may be null except for int8. Non-finite values or scales throw InvalidArgument.
    void add_encoded(const void* rows, const float* scales, std::size_t n, const std::int32_t* labels);
    // Removes every row with this label, keeping the others in order; returns how many.
    std::size_t remove_label(std::int32_t label);
    void reserve(std::size_t rows);
    void clear();

    // Rows [first, first + count) as float32 (n * dim floats): for other backends (faiss).
    void decode(std::size_t first, std::size_t count, float* out) const;

    std::size_t size() const { return size_; }
    std::size_t capacity() const { return capacity_; }
    std::size_t dim() const { return dim_; }
    Precision precision() const { return precision_; }
    const std::int32_t* labels() const { return labels_; }
    // The stored rows (size() * dim values in this precision) and, for int8, their scales.
    const void* encoded_rows() const { return rows_; }
    const float* scales() const { return scales_; }

    // For each of nq float queries (normalized here; NaN/inf or zero queries throw): the best k
    // hits (k = 0: no limit), best first (ties: lower id first), keeping only scores >=
    // min_score. by_label: one hit per label, scored by its best row (identity max-pooling);
    // otherwise one hit per row, id = row index. threads: 0 picks a count from the work.
    std::vector<std::vector<Hit>> search(const float* queries, std::size_t nq, std::size_t k, bool by_label,
                                         float min_score, int threads = 0, Isa isa = best_isa()) const;

private:
    void grow_to(std::size_t rows);
    void set_capacity(std::size_t rows);

    std::size_t dim_;
    Precision precision_;
    std::size_t row_bytes_;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
    unsigned char* rows_ = nullptr;  // realloc'd: growth moves pages instead of copying them
    float* scales_ = nullptr;        // int8 only
    std::int32_t* labels_ = nullptr;
};

}  // namespace fastface
