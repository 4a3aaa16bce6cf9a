#include "fastface/gallery_index.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>
#include <string>
#include <unordered_map>

#if defined(FASTFACE_KERNELS_X86) && defined(__GNUC__)
#include <cpuid.h>
#endif

#include "fastface/error.h"
#include "kernels/kernels.h"
#include "parallel.h"

namespace fastface {

const char* precision_name(Precision precision) {
    switch (precision) {
        case Precision::Float32: return "float32";
        case Precision::Float16: return "float16";
        case Precision::Int8: return "int8";
    }
    return "unknown";
}

Precision precision_from_name(const std::string& name) {
    for (Precision p : {Precision::Float32, Precision::Float16, Precision::Int8})
        if (name == precision_name(p)) return p;
    throw Error(ErrorCode::InvalidArgument, "unknown precision '" + name + "' (expected float32, float16 or int8)");
}

std::size_t bytes_per_value(Precision precision) {
    switch (precision) {
        case Precision::Float32: return 4;
        case Precision::Float16: return 2;
        case Precision::Int8: return 1;
    }
    return 0;
}

namespace {

using F32Dot = float (*)(const float*, const float*, std::size_t);
using F16Dot = float (*)(const float*, const std::uint16_t*, std::size_t);
using I8Dot = float (*)(const float*, const std::int8_t*, std::size_t);

struct RowKernels {
    F32Dot f32;
    F16Dot f16;
    I8Dot i8;
};

#if defined(FASTFACE_KERNELS_X86) && defined(__GNUC__)
// CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports has no "f16c" before clang 15).
bool cpu_has_f16c() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
}
#endif

// Kernels per instruction set; a precision an ISA has no variant for uses the scalar one
// (float16 and int8 on SSE2: it has no half conversion and no byte sign extension).
RowKernels row_kernels(Isa isa) {
    const std::vector<Isa> available = available_isas();
    if (std::find(available.begin(), available.end(), isa) == available.end())
        throw Error(ErrorCode::InvalidArgument, std::string("instruction set ") + isa_name(isa) + " is not available here");
    RowKernels k{kernels::dot_scalar, kernels::dot_f16_scalar, kernels::dot_i8_scalar};
#if defined(FASTFACE_KERNELS_X86)
    if (isa == Isa::SSE2) k.f32 = kernels::dot_sse2;
    if (isa == Isa::AVX2) {
        k.f32 = kernels::dot_avx2;
        k.i8 = kernels::dot_i8_avx2;
#if defined(__GNUC__)
        static const bool f16c = cpu_has_f16c();
        if (f16c) k.f16 = kernels::dot_f16_f16c;
#endif
    }
#endif
#if defined(FASTFACE_KERNELS_NEON)
    if (isa == Isa::NEON) k = {kernels::dot_neon, kernels::dot_f16_neon, kernels::dot_i8_neon};
#endif
    return k;
}

// Higher score first; equal scores: lower id first.
inline bool better(const Hit& a, const Hit& b) { return a.score > b.score || (a.score == b.score && a.id < b.id); }

// The best k rows seen so far: a min-heap with the worst kept hit on top.
class TopRows {
public:
    explicit TopRows(std::size_t k) : k_(k) { heap_.reserve(k); }
    void offer(float score, std::int64_t id) {
        const Hit hit{score, id};
        if (heap_.size() < k_) {
            heap_.push_back(hit);
            std::push_heap(heap_.begin(), heap_.end(), better);
        } else if (better(hit, heap_.front())) {
            std::pop_heap(heap_.begin(), heap_.end(), better);
            heap_.back() = hit;
            std::push_heap(heap_.begin(), heap_.end(), better);
        }
    }
    const std::vector<Hit>& hits() const { return heap_; }

private:
    std::size_t k_;
    std::vector<Hit> heap_;
};

// The best k labels by their best row so far. A label that drops out can only come back with a
// row scoring above everything kept, i.e. above its own earlier best, so each kept score is
// that label's true running maximum and the final list is exact.
class TopLabels {
public:
    explicit TopLabels(std::size_t k) : k_(k) { hits_.reserve(k); }
    void offer(float score, std::int64_t label) {
        if (hits_.size() == k_ && !better(Hit{score, label}, hits_[worst_])) return;
        for (Hit& h : hits_)
            if (h.id == label) {
                if (score > h.score) h.score = score;
                find_worst();
                return;
            }
        if (hits_.size() < k_)
            hits_.push_back({score, label});
        else
            hits_[worst_] = {score, label};
        find_worst();
    }
    const std::vector<Hit>& hits() const { return hits_; }

private:
    void find_worst() {
        worst_ = 0;
        for (std::size_t i = 1; i < hits_.size(); ++i)
            if (better(hits_[worst_], hits_[i])) worst_ = i;
    }
    std::size_t k_;
    std::size_t worst_ = 0;
    std::vector<Hit> hits_;
};

// Every hit at or above the threshold (k = 0), pooled per label or not.
class AllHits {
public:
    explicit AllHits(bool by_label) : by_label_(by_label) {}
    void offer(float score, std::int64_t id) {
        if (!by_label_) {
            rows_.push_back({score, id});
            return;
        }
        auto it = best_.emplace(id, score).first;
        if (score > it->second) it->second = score;
    }
    std::vector<Hit> hits() const {
        std::vector<Hit> out = rows_;
        for (const auto& entry : best_) out.push_back({entry.second, entry.first});
        return out;
    }

private:
    bool by_label_;
    std::vector<Hit> rows_;
    std::unordered_map<std::int64_t, float> best_;
};

// Gallery rows per block: a block stays in cache while every query passes over it.
constexpr std::size_t kBlockRows = 32;

// Scores of rows [begin, end) against every query, one block at a time; the precision is a
// template argument so the row loop carries no per-row dispatch.
template <Precision P, typename Collector>
void scan(const GalleryIndex& index, const unsigned char* rows, const float* scales, const RowKernels& k,
          const std::vector<float>& q, std::size_t nq, std::size_t begin, std::size_t end, bool by_label,
          float min_score, std::vector<Collector>& out) {
    const std::size_t d = index.dim(), row_bytes = d * bytes_per_value(P);
    const std::int32_t* labels = index.labels();
    for (std::size_t block = begin; block < end; block += kBlockRows) {
        const std::size_t block_end = std::min(end, block + kBlockRows);
        for (std::size_t i = 0; i < nq; ++i) {
            const float* query = q.data() + i * d;
            Collector& collector = out[i];
            for (std::size_t r = block; r < block_end; ++r) {
                const unsigned char* row = rows + r * row_bytes;
                float score;
                if (P == Precision::Float32)
                    score = k.f32(query, reinterpret_cast<const float*>(row), d);
                else if (P == Precision::Float16)
                    score = k.f16(query, reinterpret_cast<const std::uint16_t*>(row), d);
                else
                    score = k.i8(query, reinterpret_cast<const std::int8_t*>(row), d) * scales[r];
                if (score >= min_score) collector.offer(score, by_label ? labels[r] : static_cast<std::int64_t>(r));
            }
        }
    }
}

template <typename Collector, typename Make>
std::vector<std::vector<Hit>> run_search(const GalleryIndex& index, const unsigned char* rows, const float* scales,
                                         const RowKernels& k, const std::vector<float>& q, std::size_t nq,
                                         bool by_label, float min_score, int workers, Make make) {
    std::vector<std::vector<Collector>> per_worker(static_cast<std::size_t>(workers));
    for (auto& collectors : per_worker)
        for (std::size_t i = 0; i < nq; ++i) collectors.push_back(make());
    detail::parallel_chunks(index.size(), workers, [&](std::size_t begin, std::size_t end, int worker) {
        std::vector<Collector>& mine = per_worker[static_cast<std::size_t>(worker)];
        switch (index.precision()) {
            case Precision::Float32:
                scan<Precision::Float32>(index, rows, scales, k, q, nq, begin, end, by_label, min_score, mine);
                break;
            case Precision::Float16:
                scan<Precision::Float16>(index, rows, scales, k, q, nq, begin, end, by_label, min_score, mine);
                break;
            case Precision::Int8:
                scan<Precision::Int8>(index, rows, scales, k, q, nq, begin, end, by_label, min_score, mine);
                break;
        }
    });
    std::vector<std::vector<Hit>> merged(nq);
    for (std::size_t i = 0; i < nq; ++i)
        for (const auto& collectors : per_worker) {
            const auto hits = collectors[i].hits();
            merged[i].insert(merged[i].end(), hits.begin(), hits.end());
        }
    return merged;
}

// Keeps each label's best hit (workers saw disjoint rows of the same label).
void pool_labels(std::vector<Hit>& hits) {
    std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) { return a.id < b.id || (a.id == b.id && a.score > b.score); });
    hits.erase(std::unique(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) { return a.id == b.id; }), hits.end());
}

void check_finite_unit(const float* row, std::size_t dim, double* norm) {
    double nn = 0;
    for (std::size_t j = 0; j < dim; ++j) {
        if (!std::isfinite(row[j])) throw Error(ErrorCode::InvalidArgument, "embedding contains NaN or inf");
        nn += double(row[j]) * row[j];
    }
    if (nn == 0) throw Error(ErrorCode::InvalidArgument, "embedding is all zeros");
    *norm = std::sqrt(nn);
}

}  // namespace

GalleryIndex::GalleryIndex(std::size_t dim, Precision precision)
    : dim_(dim), precision_(precision), row_bytes_(dim * bytes_per_value(precision)) {
    if (dim == 0) throw Error(ErrorCode::InvalidArgument, "embedding dimension is 0");
}

GalleryIndex::~GalleryIndex() {
    std::free(rows_);
    std::free(scales_);
    std::free(labels_);
}

void GalleryIndex::encode(Precision precision, const float* rows, std::size_t n, std::size_t dim, void* out,
                          float* scales) {
    std::vector<float> unit(dim);
    for (std::size_t r = 0; r < n; ++r) {
        const float* row = rows + r * dim;
        double norm;
        check_finite_unit(row, dim, &norm);
        float largest = 0.f;
        for (std::size_t j = 0; j < dim; ++j) {
            unit[j] = static_cast<float>(row[j] / norm);
            largest = std::max(largest, std::fabs(unit[j]));
        }
        switch (precision) {
            case Precision::Float32:
                std::memcpy(static_cast<float*>(out) + r * dim, unit.data(), dim * sizeof(float));
                scales[r] = 1.f;
                break;
            case Precision::Float16: {
                std::uint16_t* dst = static_cast<std::uint16_t*>(out) + r * dim;
                for (std::size_t j = 0; j < dim; ++j) dst[j] = kernels::float_to_half(unit[j]);
                scales[r] = 1.f;
                break;
            }
            case Precision::Int8: {
                std::int8_t* dst = static_cast<std::int8_t*>(out) + r * dim;
                const float to_int = 127.f / largest;
                for (std::size_t j = 0; j < dim; ++j) {
                    const float v = std::nearbyint(unit[j] * to_int);
                    dst[j] = static_cast<std::int8_t>(std::min(127.f, std::max(-127.f, v)));
                }
                scales[r] = largest / 127.f;
                break;
            }
        }
    }
}

void GalleryIndex::set_capacity(std::size_t rows) {
    // realloc of a large block remaps its pages rather than copying them, and pages past size_
    // stay untouched (not resident) until rows are written there.
    auto resize = [&](auto*& buffer, std::size_t element) {
        void* bigger = std::realloc(buffer, rows * element);
        if (!bigger) throw std::bad_alloc();
        buffer = static_cast<std::remove_reference_t<decltype(buffer)>>(bigger);
    };
    resize(rows_, row_bytes_);
    resize(labels_, sizeof(std::int32_t));
    if (precision_ == Precision::Int8) resize(scales_, sizeof(float));
    capacity_ = rows;
}

void GalleryIndex::grow_to(std::size_t rows) {
    // Geometric growth (x1.5): amortized O(1) appends.
    if (rows > capacity_) set_capacity(std::max({rows, capacity_ + capacity_ / 2, std::size_t{64}}));
}

void GalleryIndex::reserve(std::size_t rows) {
    if (rows > capacity_) set_capacity(rows);  // exact: a caller that knows the final size gets no slack
}

void GalleryIndex::clear() { size_ = 0; }

void GalleryIndex::add(const float* rows, std::size_t n, const std::int32_t* labels) {
    std::vector<unsigned char> encoded(n * row_bytes_);
    std::vector<float> scales(n);
    encode(precision_, rows, n, dim_, encoded.data(), scales.data());
    add_encoded(encoded.data(), scales.data(), n, labels);
}

void GalleryIndex::add_encoded(const void* rows, const float* scales, std::size_t n, const std::int32_t* labels) {
    if (n == 0) return;
    const std::size_t values = n * dim_;
    switch (precision_) {
        case Precision::Float32: {
            const float* v = static_cast<const float*>(rows);
            for (std::size_t i = 0; i < values; ++i)
                if (!std::isfinite(v[i])) throw Error(ErrorCode::InvalidArgument, "embedding contains NaN or inf");
            break;
        }
        case Precision::Float16: {
            const std::uint16_t* v = static_cast<const std::uint16_t*>(rows);
            for (std::size_t i = 0; i < values; ++i)
                if ((v[i] & 0x7c00u) == 0x7c00u) throw Error(ErrorCode::InvalidArgument, "embedding contains NaN or inf");
            break;
        }
        case Precision::Int8:
            if (!scales) throw Error(ErrorCode::InvalidArgument, "int8 rows need their scales");
            for (std::size_t r = 0; r < n; ++r)
                if (!std::isfinite(scales[r]) || scales[r] <= 0.f)
                    throw Error(ErrorCode::InvalidArgument, "int8 row scale must be finite and positive");
            break;
    }
    grow_to(size_ + n);
    std::memcpy(rows_ + size_ * row_bytes_, rows, n * row_bytes_);
    std::memcpy(labels_ + size_, labels, n * sizeof(std::int32_t));
    if (precision_ == Precision::Int8) std::memcpy(scales_ + size_, scales, n * sizeof(float));
    size_ += n;
}

std::size_t GalleryIndex::remove_label(std::int32_t label) {
    std::size_t kept = 0;
    for (std::size_t r = 0; r < size_; ++r) {
        if (labels_[r] == label) continue;
        if (kept != r) {
            std::memmove(rows_ + kept * row_bytes_, rows_ + r * row_bytes_, row_bytes_);
            labels_[kept] = labels_[r];
            if (scales_) scales_[kept] = scales_[r];
        }
        ++kept;
    }
    const std::size_t removed = size_ - kept;
    size_ = kept;
    return removed;
}

void GalleryIndex::decode(std::size_t first, std::size_t count, float* out) const {
    if (first > size_ || count > size_ - first)
        throw Error(ErrorCode::InvalidArgument, "rows " + std::to_string(first) + ".." + std::to_string(first + count) +
                                                    " are outside the gallery's " + std::to_string(size_));
    for (std::size_t r = first; r < first + count; ++r) {
        const unsigned char* row = rows_ + r * row_bytes_;
        float* dst = out + (r - first) * dim_;
        switch (precision_) {
            case Precision::Float32: std::memcpy(dst, row, row_bytes_); break;
            case Precision::Float16:
                for (std::size_t j = 0; j < dim_; ++j) dst[j] = kernels::half_to_float(reinterpret_cast<const std::uint16_t*>(row)[j]);
                break;
            case Precision::Int8:
                for (std::size_t j = 0; j < dim_; ++j) dst[j] = scales_[r] * static_cast<float>(reinterpret_cast<const std::int8_t*>(row)[j]);
                break;
        }
    }
}

std::vector<std::vector<Hit>> GalleryIndex::search(const float* queries, std::size_t nq, std::size_t k, bool by_label,
                                                   float min_score, int threads, Isa isa) const {
    if (nq == 0) throw Error(ErrorCode::InvalidArgument, "no queries");
    if (std::isnan(min_score)) throw Error(ErrorCode::InvalidArgument, "threshold is NaN");
    const RowKernels kernels = row_kernels(isa);
    std::vector<float> q(nq * dim_);
    for (std::size_t i = 0; i < nq; ++i) {
        double norm;
        try {
            check_finite_unit(queries + i * dim_, dim_, &norm);
        } catch (const Error& e) {
            throw Error(ErrorCode::InvalidArgument, std::string("query ") + std::to_string(i) + ": " + e.what());
        }
        for (std::size_t j = 0; j < dim_; ++j) q[i * dim_ + j] = static_cast<float>(queries[i * dim_ + j] / norm);
    }
    if (size_ == 0) return std::vector<std::vector<Hit>>(nq);
    const int workers = detail::thread_count(threads, nq * size_ * dim_);
    std::vector<std::vector<Hit>> hits;
    if (k == 0)
        hits = run_search<AllHits>(*this, rows_, scales_, kernels, q, nq, by_label, min_score, workers,
                                   [&] { return AllHits(by_label); });
    else if (by_label)
        hits = run_search<TopLabels>(*this, rows_, scales_, kernels, q, nq, by_label, min_score, workers,
                                     [&] { return TopLabels(k); });
    else
        hits = run_search<TopRows>(*this, rows_, scales_, kernels, q, nq, by_label, min_score, workers,
                                   [&] { return TopRows(k); });
    for (std::vector<Hit>& list : hits) {
        if (by_label) pool_labels(list);
        std::sort(list.begin(), list.end(), better);
        if (k != 0 && list.size() > k) list.resize(k);
    }
    return hits;
}

}  // namespace fastface
