// Matching: SIMD dot products against the scalar reference, search against brute force.
#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "fastface/match.h"
#include "kernels/kernels.h"
#include "testing.h"

using namespace fastface;

namespace {

std::vector<float> random_vectors(std::mt19937& rng, std::size_t count) {
    std::normal_distribution<float> dist(0.f, 1.f);
    std::vector<float> v(count);
    for (float& x : v) x = dist(rng);
    return v;
}

double exact_cosine(const float* a, const float* b, std::size_t d) {
    double ab = 0, aa = 0, bb = 0;
    for (std::size_t i = 0; i < d; ++i) {
        ab += double(a[i]) * b[i];
        aa += double(a[i]) * a[i];
        bb += double(b[i]) * b[i];
    }
    return ab / std::sqrt(aa * bb);
}

}  // namespace

TEST(simd_cosine_matches_scalar_and_double) {
    std::mt19937 rng(11);
    for (std::size_t d : {1, 3, 4, 7, 8, 15, 16, 31, 32, 33, 100, 128, 512, 1000}) {
        const std::vector<float> a = random_vectors(rng, d), b = random_vectors(rng, d);
        const float ref = cosine(a.data(), b.data(), d, Isa::Scalar);
        CHECK_NEAR(ref, exact_cosine(a.data(), b.data(), d), 1e-5);
        for (Isa isa : available_isas()) CHECK_NEAR(cosine(a.data(), b.data(), d, isa), ref, 1e-5);
    }
}

TEST(search_matches_brute_force) {
    std::mt19937 rng(12);
    for (std::size_t d : {3, 128, 512})
        for (std::size_t n : {1, 5, 100, 3000})
            for (int threads : {1, 3}) {
                const std::size_t nq = 4, k = std::min<std::size_t>(n, 5);
                const std::vector<float> q = random_vectors(rng, nq * d), g = random_vectors(rng, n * d);
                for (Isa isa : available_isas()) {
                    std::vector<std::int64_t> index(nq * k);
                    std::vector<float> score(nq * k);
                    search(q.data(), nq, g.data(), n, d, k, index.data(), score.data(), threads, false, isa);
                    for (std::size_t i = 0; i < nq; ++i) {
                        std::vector<double> all(n);
                        for (std::size_t r = 0; r < n; ++r) all[r] = exact_cosine(&q[i * d], &g[r * d], d);
                        std::vector<std::size_t> order(n);
                        std::iota(order.begin(), order.end(), 0);
                        std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return all[x] > all[y]; });
                        for (std::size_t j = 0; j < k; ++j) {
                            CHECK(index[i * k + j] == static_cast<std::int64_t>(order[j]));
                            CHECK_NEAR(score[i * k + j], all[order[j]], 1e-5);
                        }
                    }
                }
            }
}

TEST(cosine_matrix_matches_pairwise) {
    std::mt19937 rng(13);
    const std::size_t nq = 3, n = 77, d = 64;
    const std::vector<float> q = random_vectors(rng, nq * d), g = random_vectors(rng, n * d);
    std::vector<float> out(nq * n);
    cosine_matrix(q.data(), nq, g.data(), n, d, out.data(), 2);
    for (std::size_t i = 0; i < nq; ++i)
        for (std::size_t r = 0; r < n; ++r) CHECK_NEAR(out[i * n + r], exact_cosine(&q[i * d], &g[r * d], d), 1e-5);
}

TEST(search_rejects_bad_arguments) {
    const std::vector<float> v(8, 1.f);
    std::int64_t index[4];
    float score[4];
    CHECK_THROWS(search(v.data(), 1, v.data(), 2, 4, 0, index, score), ErrorCode::InvalidArgument);
    CHECK_THROWS(search(v.data(), 1, v.data(), 2, 4, 3, index, score), ErrorCode::InvalidArgument);
    CHECK_THROWS(search(v.data(), 1, v.data(), 0, 4, 1, index, score), ErrorCode::InvalidArgument);
    CHECK_THROWS(cosine(v.data(), v.data(), 0), ErrorCode::InvalidArgument);
}

TEST(zero_vectors_score_zero) {
    const std::vector<float> zero(16, 0.f), one(16, 1.f);
    for (Isa isa : available_isas()) CHECK(cosine(zero.data(), one.data(), 16, isa) == 0.f);
}

TEST(simd_dot_norm_matches_scalar) {
    std::mt19937 rng(14);
    using DotNorm = float (*)(const float*, const float*, std::size_t, float*);
    std::vector<std::pair<Isa, DotNorm>> variants;
#if defined(FASTFACE_KERNELS_X86)
    variants.push_back({Isa::SSE2, kernels::dot_norm_sse2});
    for (Isa isa : available_isas())
        if (isa == Isa::AVX2) variants.push_back({Isa::AVX2, kernels::dot_norm_avx2});
#endif
#if defined(FASTFACE_KERNELS_NEON)
    variants.push_back({Isa::NEON, kernels::dot_norm_neon});
#endif
    for (std::size_t d : {1, 2, 7, 8, 9, 16, 17, 33, 128, 511, 512}) {
        const std::vector<float> a = random_vectors(rng, d), b = random_vectors(rng, d);
        float ref_norm = 0.f;
        const float ref = kernels::dot_norm_scalar(a.data(), b.data(), d, &ref_norm);
        CHECK_NEAR(ref, kernels::dot_scalar(a.data(), b.data(), d), 1e-4 * d);
        CHECK_NEAR(ref_norm, kernels::dot_scalar(b.data(), b.data(), d), 1e-4 * d);
        for (const auto& variant : variants) {
            float norm = 0.f;
            CHECK_NEAR(variant.second(a.data(), b.data(), d, &norm), ref, 1e-4 * d);
            CHECK_NEAR(norm, ref_norm, 1e-4 * d);
        }
    }
}

TEST(search_over_unit_rows_skips_norms) {
    std::mt19937 rng(15);
    const std::size_t n = 500, d = 64, k = 4;
    std::vector<float> g = random_vectors(rng, n * d);
    for (std::size_t r = 0; r < n; ++r) {
        double nn = 0;
        for (std::size_t j = 0; j < d; ++j) nn += double(g[r * d + j]) * g[r * d + j];
        for (std::size_t j = 0; j < d; ++j) g[r * d + j] /= static_cast<float>(std::sqrt(nn));
    }
    const std::vector<float> q = random_vectors(rng, d);
    std::int64_t i1[k], i2[k];
    float s1[k], s2[k];
    search(q.data(), 1, g.data(), n, d, k, i1, s1, 1, false);
    search(q.data(), 1, g.data(), n, d, k, i2, s2, 1, true);
    for (std::size_t j = 0; j < k; ++j) {
        CHECK(i1[j] == i2[j]);
        CHECK_NEAR(s1[j], s2[j], 1e-5);
    }
    g[3 * d] = NAN;
    CHECK_THROWS(search(q.data(), 1, g.data(), n, d, k, i2, s2, 1, true), ErrorCode::InvalidArgument);
}
