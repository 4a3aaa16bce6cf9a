// Cosine matching against a contiguous gallery.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fastface/simd.h"

namespace fastface {

// Cosine similarity of two d-dimensional vectors (0 when either has zero norm).
float cosine(const float* a, const float* b, std::size_t d, Isa isa = best_isa());

// For each of the nq queries (rows of d floats), the k gallery rows with the highest cosine,
// best first (ties: lower index first). out_index and out_score hold nq * k entries.
// threads: 0 picks a count from the problem size; 1 runs on the calling thread.
// unit_rows: the caller guarantees unit-length gallery rows (a Gallery stores them so), which
// skips their norms; scores are then plain dot products with the normalized queries.
void search(const float* queries, std::size_t nq, const float* gallery, std::size_t n,
            std::size_t d, std::size_t k, std::int64_t* out_index, float* out_score,
            int threads = 0, bool unit_rows = false, Isa isa = best_isa());

// All nq x n cosines (row-major) — the "1:N" score matrix.
void cosine_matrix(const float* queries, std::size_t nq, const float* gallery, std::size_t n,
                   std::size_t d, float* out, int threads = 0, Isa isa = best_isa());

}  // namespace fastface
