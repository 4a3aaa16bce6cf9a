// Stored-precision galleries: float16/int8 kernels against the scalar reference, binary16
// conversion, encoding, and GalleryIndex search (row and identity max-pooled) against brute force.
#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "fastface/gallery_index.h"
#include "kernels/kernels.h"
#include "testing.h"

using namespace fastface;

namespace {

std::vector<float> gaussian(std::mt19937& rng, std::size_t count) {
    std::normal_distribution<float> dist(0.f, 1.f);
    std::vector<float> v(count);
    for (float& x : v) x = dist(rng);
    return v;
}

using F16Dot = float (*)(const float*, const std::uint16_t*, std::size_t);
using I8Dot = float (*)(const float*, const std::int8_t*, std::size_t);

std::vector<F16Dot> f16_variants() {
    std::vector<F16Dot> v;
#if defined(FASTFACE_KERNELS_X86) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        v.push_back(kernels::dot_f16_f16c);
#endif
#if defined(FASTFACE_KERNELS_NEON)
    v.push_back(kernels::dot_f16_neon);
#endif
    return v;
}

std::vector<I8Dot> i8_variants() {
    std::vector<I8Dot> v;
#if defined(FASTFACE_KERNELS_X86)
    for (Isa isa : available_isas())
        if (isa == Isa::AVX2) v.push_back(kernels::dot_i8_avx2);
#endif
#if defined(FASTFACE_KERNELS_NEON)
    v.push_back(kernels::dot_i8_neon);
#endif
    return v;
}

const std::size_t kDims[] = {1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 128, 255, 256, 511, 512, 1000};

}  // namespace

TEST(half_conversion_round_trips_and_rounds_to_nearest_even) {
    for (std::uint32_t h = 0; h < 0x10000u; ++h) {
        const std::uint16_t half = static_cast<std::uint16_t>(h);
        const float f = kernels::half_to_float(half);
        if ((half & 0x7c00u) == 0x7c00u && (half & 0x3ffu)) {
            CHECK(std::isnan(f));
            CHECK((kernels::float_to_half(f) & 0x7c00u) == 0x7c00u && (kernels::float_to_half(f) & 0x3ffu));
        } else {
            CHECK(kernels::float_to_half(f) == half);
        }
    }
    // Random floats across the half range (subnormals included): the nearest half, ties to even.
    std::mt19937 rng(21);
    std::uniform_real_distribution<float> exponent(-27.f, 16.5f);
    for (int i = 0; i < 200000; ++i) {
        const float f = std::ldexp(1.f + std::generate_canonical<float, 24>(rng), static_cast<int>(exponent(rng))) *
                        (i & 1 ? -1.f : 1.f);
        const std::uint16_t h = kernels::float_to_half(f);
        const double got = kernels::half_to_float(h);
        if (std::isinf(got)) {
            CHECK(std::fabs(f) >= 65520.f);
            continue;
        }
        for (int step : {-1, 1}) {
            const std::uint16_t neighbour = static_cast<std::uint16_t>(h + step);
            if ((neighbour & 0x7fffu) >= 0x7c00u || ((h & 0x7fffu) == 0 && step < 0)) continue;
            const double other = kernels::half_to_float(neighbour);
            const double err = std::fabs(got - f), other_err = std::fabs(other - f);
            CHECK(err < other_err || (err == other_err && (h & 1u) == 0));
        }
    }
    CHECK(kernels::float_to_half(1e6f) == 0x7c00u);
    CHECK(kernels::float_to_half(-std::numeric_limits<float>::infinity()) == 0xfc00u);
}

TEST(simd_f16_and_i8_dots_match_scalar) {
    std::mt19937 rng(22);
    std::uniform_int_distribution<int> byte(-127, 127);
    const std::vector<F16Dot> f16 = f16_variants();
    const std::vector<I8Dot> i8 = i8_variants();
    for (std::size_t d : kDims)
        for (int trial = 0; trial < 5; ++trial) {
            const std::vector<float> q = gaussian(rng, d), x = gaussian(rng, d);
            std::vector<std::uint16_t> half(d);
            std::vector<std::int8_t> bytes(d);
            double magnitude_h = 0, magnitude_b = 0, exact_h = 0, exact_b = 0;
            for (std::size_t j = 0; j < d; ++j) {
                half[j] = kernels::float_to_half(x[j]);
                bytes[j] = static_cast<std::int8_t>(byte(rng));
                magnitude_h += std::fabs(q[j] * kernels::half_to_float(half[j]));
                magnitude_b += std::fabs(q[j] * bytes[j]);
                exact_h += double(q[j]) * kernels::half_to_float(half[j]);
                exact_b += double(q[j]) * bytes[j];
            }
            const float ref_h = kernels::dot_f16_scalar(q.data(), half.data(), d);
            const float ref_b = kernels::dot_i8_scalar(q.data(), bytes.data(), d);
            CHECK_NEAR(ref_h, exact_h, 1e-6 * magnitude_h + 1e-6);
            CHECK_NEAR(ref_b, exact_b, 1e-6 * magnitude_b + 1e-6);
            for (F16Dot k : f16) CHECK_NEAR(k(q.data(), half.data(), d), ref_h, 1e-6 * magnitude_h + 1e-6);
            for (I8Dot k : i8) CHECK_NEAR(k(q.data(), bytes.data(), d), ref_b, 1e-6 * magnitude_b + 1e-6);
        }
}

TEST(encode_normalizes_and_quantizes) {
    std::mt19937 rng(23);
    const std::size_t n = 50, d = 128;
    const std::vector<float> rows = gaussian(rng, n * d);
    for (Precision p : {Precision::Float32, Precision::Float16, Precision::Int8}) {
        GalleryIndex index(d, p);
        std::vector<std::int32_t> labels(n, 7);
        index.add(rows.data(), n, labels.data());
        std::vector<float> decoded(n * d);
        index.decode(0, n, decoded.data());
        const double tolerance = p == Precision::Float32 ? 1e-6 : p == Precision::Float16 ? 5e-4 : 5e-3;
        for (std::size_t r = 0; r < n; ++r) {
            double nn = 0, largest = 0;
            for (std::size_t j = 0; j < d; ++j) nn += double(rows[r * d + j]) * rows[r * d + j];
            for (std::size_t j = 0; j < d; ++j) {
                const double unit = rows[r * d + j] / std::sqrt(nn);
                largest = std::max(largest, std::fabs(unit));
                CHECK_NEAR(decoded[r * d + j], unit, tolerance);
            }
            if (p == Precision::Int8) {  // symmetric: the largest value maps to +-127 exactly
                float scale;
                std::vector<std::int8_t> q(d);
                GalleryIndex::encode(p, &rows[r * d], 1, d, q.data(), &scale);
                CHECK_NEAR(scale, largest / 127, 1e-7);
                CHECK(*std::max_element(q.begin(), q.end(), [](int a, int b) { return std::abs(a) < std::abs(b); }) != 0);
                for (std::int8_t v : q) CHECK(v >= -127);
            }
        }
    }
    std::vector<float> bad(d, 0.f);
    std::vector<std::uint16_t> out(d);
    float scale;
    CHECK_THROWS(GalleryIndex::encode(Precision::Float16, bad.data(), 1, d, out.data(), &scale), ErrorCode::InvalidArgument);
    bad[3] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS(GalleryIndex::encode(Precision::Float16, bad.data(), 1, d, out.data(), &scale), ErrorCode::InvalidArgument);
}

// Brute force in double over the decoded rows: what every precision's search must return.
TEST(search_matches_brute_force_for_every_precision_and_isa) {
    std::mt19937 rng(24);
    for (Precision p : {Precision::Float32, Precision::Float16, Precision::Int8})
        for (std::size_t d : {5, 64, 128})
            for (std::size_t n : {1, 40, 1500}) {
                GalleryIndex index(d, p);
                const std::vector<float> rows = gaussian(rng, n * d);
                std::vector<std::int32_t> labels(n);
                for (std::size_t r = 0; r < n; ++r) labels[r] = static_cast<std::int32_t>(rng() % (n / 3 + 1));
                // Added in pieces: growth must keep earlier rows.
                for (std::size_t begin = 0; begin < n; begin += 97)
                    index.add(&rows[begin * d], std::min<std::size_t>(97, n - begin), &labels[begin]);
                CHECK(index.size() == n);
                std::vector<float> decoded(n * d);
                index.decode(0, n, decoded.data());
                const std::size_t nq = 3;
                const std::vector<float> q = gaussian(rng, nq * d);
                for (Isa isa : available_isas())
                    for (int threads : {1, 3})
                        for (bool by_label : {false, true})
                            for (std::size_t k : {std::size_t{1}, std::size_t{5}, std::size_t{0}}) {
                                const float min_score = k == 0 ? 0.1f : -2.f;
                                const auto hits = index.search(q.data(), nq, k, by_label, min_score, threads, isa);
                                CHECK(hits.size() == nq);
                                for (std::size_t i = 0; i < nq; ++i) {
                                    double qq = 0;
                                    for (std::size_t j = 0; j < d; ++j) qq += double(q[i * d + j]) * q[i * d + j];
                                    std::map<std::int64_t, double> best;
                                    for (std::size_t r = 0; r < n; ++r) {
                                        double s = 0;
                                        for (std::size_t j = 0; j < d; ++j) s += double(q[i * d + j]) * decoded[r * d + j];
                                        s /= std::sqrt(qq);
                                        const std::int64_t id = by_label ? labels[r] : static_cast<std::int64_t>(r);
                                        auto it = best.emplace(id, s).first;
                                        it->second = std::max(it->second, s);
                                    }
                                    std::vector<std::pair<double, std::int64_t>> expected;
                                    for (const auto& e : best)
                                        if (e.second >= min_score) expected.push_back({e.second, e.first});
                                    std::sort(expected.begin(), expected.end(), [](const auto& a, const auto& b) {
                                        return a.first > b.first || (a.first == b.first && a.second < b.second);
                                    });
                                    if (k != 0 && expected.size() > k) expected.resize(k);
                                    CHECK(hits[i].size() == expected.size());
                                    for (std::size_t j = 0; j < expected.size(); ++j) {
                                        CHECK_NEAR(hits[i][j].score, expected[j].first, 1e-5);
                                        // Near-equal scores may swap between kernels; the ids must agree otherwise.
                                        if (j + 1 < expected.size() && expected[j].first - expected[j + 1].first > 1e-5 &&
                                            (j == 0 || expected[j - 1].first - expected[j].first > 1e-5))
                                            CHECK(hits[i][j].id == expected[j].second);
                                    }
                                }
                            }
            }
}

TEST(growth_is_geometric_and_remove_keeps_order) {
    GalleryIndex index(8, Precision::Float16);
    std::mt19937 rng(25);
    std::set<std::size_t> capacities;
    for (std::int32_t r = 0; r < 20000; ++r) {
        const std::vector<float> row = gaussian(rng, 8);
        const std::int32_t label = r % 3;
        index.add(row.data(), 1, &label);
        capacities.insert(index.capacity());
    }
    CHECK(capacities.size() < 25);  // ~log1.5(20000 / 64) reallocations, not one per add
    CHECK(index.remove_label(1) == 6667);
    CHECK(index.size() == 20000 - 6667);
    for (std::size_t r = 0; r < index.size(); ++r) CHECK(index.labels()[r] == static_cast<std::int32_t>(r % 2 == 0 ? 0 : 2));
    CHECK(index.remove_label(1) == 0);
    index.reserve(100000);
    CHECK(index.capacity() == 100000);
}

TEST(gallery_index_rejects_bad_input) {
    CHECK_THROWS(GalleryIndex(0, Precision::Int8), ErrorCode::InvalidArgument);
    CHECK_THROWS(precision_from_name("float64"), ErrorCode::InvalidArgument);
    GalleryIndex half(4, Precision::Float16), bytes(4, Precision::Int8);
    const std::uint16_t inf_row[4] = {0x3c00, 0x7c00, 0, 0};
    const std::int32_t label = 1;
    CHECK_THROWS(half.add_encoded(inf_row, nullptr, 1, &label), ErrorCode::InvalidArgument);
    const std::int8_t row[4] = {127, 0, 0, 0};
    const float zero_scale = 0.f;
    CHECK_THROWS(bytes.add_encoded(row, &zero_scale, 1, &label), ErrorCode::InvalidArgument);
    CHECK_THROWS(bytes.add_encoded(row, nullptr, 1, &label), ErrorCode::InvalidArgument);
    const float scale = 1.f / 127;
    bytes.add_encoded(row, &scale, 1, &label);
    const float zero_query[4] = {0, 0, 0, 0}, nan_query[4] = {NAN, 0, 0, 0}, query[4] = {1, 0, 0, 0};
    CHECK_THROWS(bytes.search(zero_query, 1, 1, true, -2.f), ErrorCode::InvalidArgument);
    CHECK_THROWS(bytes.search(nan_query, 1, 1, true, -2.f), ErrorCode::InvalidArgument);
    CHECK_THROWS(bytes.search(query, 1, 1, true, NAN), ErrorCode::InvalidArgument);
    const auto hits = bytes.search(query, 1, 1, true, -2.f);
    CHECK(hits[0].size() == 1 && hits[0][0].id == 1);
    CHECK_NEAR(hits[0][0].score, 1.0, 1e-6);
    float out[8];
    CHECK_THROWS(bytes.decode(0, 2, out), ErrorCode::InvalidArgument);
    CHECK(half.search(query, 1, 3, true, -2.f)[0].empty());  // empty gallery: no hits
}
