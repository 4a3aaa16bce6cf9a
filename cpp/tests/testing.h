// A minimal test harness (no dependency to cross-compile): TEST registers a case, CHECK*
// throw on failure, main runs every case (or those whose name contains argv[1]).
#pragma once

#include <cmath>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "fastface/error.h"

namespace testing {

struct Case {
    std::string name;
    std::function<void()> body;
};

inline std::vector<Case>& registry() {
    static std::vector<Case> cases;
    return cases;
}

struct Registrar {
    Registrar(const char* name, std::function<void()> body) { registry().push_back({name, std::move(body)}); }
};

struct Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline std::string where(const char* file, int line) { return std::string(file) + ":" + std::to_string(line) + ": "; }

}  // namespace testing

#define TEST(name)                                                     \
    static void test_##name();                                         \
    static testing::Registrar registrar_##name(#name, test_##name);    \
    static void test_##name()

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) throw testing::Failure(testing::where(__FILE__, __LINE__) + #cond);    \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                           \
    do {                                                                                                \
        const double va_ = (a), vb_ = (b);                                                              \
        if (!(std::fabs(va_ - vb_) <= (tol))) {                                                         \
            std::ostringstream os_;                                                                     \
            os_ << testing::where(__FILE__, __LINE__) << #a << " = " << va_ << " vs " << #b << " = " << vb_ \
                << " (tolerance " << (tol) << ")";                                                      \
            throw testing::Failure(os_.str());                                                          \
        }                                                                                               \
    } while (0)

#define CHECK_THROWS(expr, error_code)                                                                  \
    do {                                                                                                \
        bool thrown_ = false;                                                                           \
        try {                                                                                           \
            expr;                                                                                       \
        } catch (const fastface::Error& e_) {                                                           \
            thrown_ = e_.code() == (error_code);                                                        \
        }                                                                                               \
        if (!thrown_) throw testing::Failure(testing::where(__FILE__, __LINE__) + "expected " #error_code " from " #expr); \
    } while (0)
