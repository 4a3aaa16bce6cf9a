#include "fastface/match.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "fastface/error.h"
#include "kernels/kernels.h"
#include "parallel.h"

namespace fastface {

namespace {

using detail::parallel_chunks;
using detail::thread_count;
using DotFn = float (*)(const float*, const float*, std::size_t);
using DotNormFn = float (*)(const float*, const float*, std::size_t, float*);

struct DotKernels {
    DotFn dot;
    DotNormFn dot_norm;
};

DotKernels kernels_for(Isa isa) {
    switch (isa) {
        case Isa::Scalar: return {kernels::dot_scalar, kernels::dot_norm_scalar};
#if defined(FASTFACE_KERNELS_X86)
        case Isa::SSE2: return {kernels::dot_sse2, kernels::dot_norm_sse2};
        case Isa::AVX2: return {kernels::dot_avx2, kernels::dot_norm_avx2};
#endif
#if defined(FASTFACE_KERNELS_NEON)
        case Isa::NEON: return {kernels::dot_neon, kernels::dot_norm_neon};
#endif
        default: break;
    }
    throw Error(ErrorCode::InvalidArgument, std::string("instruction set ") + isa_name(isa) + " is not available here");
}

// 1/sqrt(squared norm); 0 for a zero vector (it scores 0 against everything); NaN when the
// vector held NaN or inf.
inline float inverse_from_squared(float nn) {
    if (!std::isfinite(nn)) return std::numeric_limits<float>::quiet_NaN();
    return nn > 0.f ? 1.f / std::sqrt(nn) : 0.f;
}

// Workers cannot throw across threads: they record non-finite rows here, callers throw after.
struct FiniteCheck {
    std::atomic<bool> bad{false};
    float operator()(float inv) {
        if (std::isnan(inv)) bad.store(true, std::memory_order_relaxed);
        return inv;
    }
    void raise_if_bad(const char* what) const {
        if (bad.load()) throw Error(ErrorCode::InvalidArgument, std::string(what) + " contains NaN or inf");
    }
};

// Normalized copies of the queries, so each gallery row needs one pass per query.
std::vector<float> normalized_queries(const DotKernels& k, const float* v, std::size_t count, std::size_t d) {
    std::vector<float> out(v, v + count * d);
    FiniteCheck check;
    for (std::size_t i = 0; i < count; ++i) {
        const float inv = check(inverse_from_squared(k.dot(v + i * d, v + i * d, d)));
        check.raise_if_bad("queries");
        for (std::size_t j = 0; j < d; ++j) out[i * d + j] *= inv;
    }
    return out;
}

void check_dims(std::size_t nq, std::size_t n, std::size_t d) {
    if (d == 0) throw Error(ErrorCode::InvalidArgument, "embedding dimension is 0");
    if (nq == 0) throw Error(ErrorCode::InvalidArgument, "no queries");
    if (n == 0) throw Error(ErrorCode::InvalidArgument, "gallery is empty");
}

// Gallery rows per block: a block stays in cache while every query passes over it.
constexpr std::size_t kBlockRows = 32;

// Cosines of gallery rows [begin, end) against every normalized query, one block at a time:
// sink(first_row, rows, scores) gets scores[i * kBlockRows + r] for query i and row first_row + r.
// The first query's pass also yields each row's norm, so a single query reads the gallery once;
// a gallery of unit rows skips the norms.
template <typename Sink>
void score_blocks(const DotKernels& k, const std::vector<float>& q, std::size_t nq, const float* gallery,
                  std::size_t begin, std::size_t end, std::size_t d, bool unit_rows, FiniteCheck& check, Sink sink) {
    std::vector<float> scores(nq * kBlockRows);
    float inv[kBlockRows];
    for (std::size_t block = begin; block < end; block += kBlockRows) {
        const std::size_t rows = std::min(end - block, kBlockRows);
        for (std::size_t r = 0; r < rows; ++r) {
            const float* row = gallery + (block + r) * d;
            if (unit_rows) {
                inv[r] = 1.f;
                scores[r] = check(k.dot(q.data(), row, d));  // NaN in a row shows up in its score
            } else {
                float nn;
                const float dot = k.dot_norm(q.data(), row, d, &nn);
                inv[r] = check(inverse_from_squared(nn));
                scores[r] = dot * inv[r];
            }
        }
        for (std::size_t i = 1; i < nq; ++i)
            for (std::size_t r = 0; r < rows; ++r)
                scores[i * kBlockRows + r] = k.dot(q.data() + i * d, gallery + (block + r) * d, d) * inv[r];
        sink(block, rows, scores.data());
    }
}

// Higher score first; equal scores: lower index first.
inline bool better(const std::pair<float, std::int64_t>& a, const std::pair<float, std::int64_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
}

}  // namespace

float cosine(const float* a, const float* b, std::size_t d, Isa isa) {
    if (d == 0) throw Error(ErrorCode::InvalidArgument, "vectors are empty");
    const DotKernels k = kernels_for(isa);
    const float inv_a = inverse_from_squared(k.dot(a, a, d)), inv_b = inverse_from_squared(k.dot(b, b, d));
    if (std::isnan(inv_a) || std::isnan(inv_b)) throw Error(ErrorCode::InvalidArgument, "vectors contain NaN or inf");
    return k.dot(a, b, d) * inv_a * inv_b;
}

void cosine_matrix(const float* queries, std::size_t nq, const float* gallery, std::size_t n, std::size_t d,
                   float* out, int threads, Isa isa) {
    check_dims(nq, n, d);
    const DotKernels k = kernels_for(isa);
    const std::vector<float> q = normalized_queries(k, queries, nq, d);
    FiniteCheck check;
    parallel_chunks(n, thread_count(threads, nq * n * d), [&](std::size_t begin, std::size_t end, int) {
        score_blocks(k, q, nq, gallery, begin, end, d, false, check, [&](std::size_t first, std::size_t rows, const float* s) {
            for (std::size_t i = 0; i < nq; ++i)
                std::copy(s + i * kBlockRows, s + i * kBlockRows + rows, out + i * n + first);
        });
    });
    check.raise_if_bad("gallery");
}

void search(const float* queries, std::size_t nq, const float* gallery, std::size_t n, std::size_t d, std::size_t k,
            std::int64_t* out_index, float* out_score, int threads, bool unit_rows, Isa isa) {
    check_dims(nq, n, d);
    if (k == 0 || k > n)
        throw Error(ErrorCode::InvalidArgument, "k must be between 1 and the gallery size " + std::to_string(n) +
                                                    ", got " + std::to_string(k));
    const DotKernels kernels = kernels_for(isa);
    const std::vector<float> q = normalized_queries(kernels, queries, nq, d);
    const int workers = thread_count(threads, nq * n * d);
    FiniteCheck check;
    using Hit = std::pair<float, std::int64_t>;
    // One min-heap (worst hit on top) per query per worker, merged at the end.
    std::vector<std::vector<std::vector<Hit>>> heaps(static_cast<std::size_t>(workers), std::vector<std::vector<Hit>>(nq));
    parallel_chunks(n, workers, [&](std::size_t begin, std::size_t end, int worker) {
        std::vector<std::vector<Hit>>& mine = heaps[static_cast<std::size_t>(worker)];
        score_blocks(kernels, q, nq, gallery, begin, end, d, unit_rows, check, [&](std::size_t first, std::size_t rows, const float* s) {
            for (std::size_t i = 0; i < nq; ++i) {
                std::vector<Hit>& heap = mine[i];
                for (std::size_t r = 0; r < rows; ++r) {
                    const Hit hit{s[i * kBlockRows + r], static_cast<std::int64_t>(first + r)};
                    if (heap.size() < k) {
                        heap.push_back(hit);
                        std::push_heap(heap.begin(), heap.end(), better);
                    } else if (better(hit, heap.front())) {
                        std::pop_heap(heap.begin(), heap.end(), better);
                        heap.back() = hit;
                        std::push_heap(heap.begin(), heap.end(), better);
                    }
                }
            }
        });
    });
    check.raise_if_bad("gallery");
    for (std::size_t i = 0; i < nq; ++i) {
        std::vector<Hit> all;
        for (const auto& worker_heaps : heaps) all.insert(all.end(), worker_heaps[i].begin(), worker_heaps[i].end());
        std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end(), better);
        for (std::size_t j = 0; j < k; ++j) {
            out_score[i * k + j] = all[j].first;
            out_index[i * k + j] = all[j].second;
        }
    }
}

}  // namespace fastface
