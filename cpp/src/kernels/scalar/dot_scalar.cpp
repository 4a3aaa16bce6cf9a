// Scalar reference dot product (four partial sums, like the SIMD variants' lanes).
#include "kernels/kernels.h"

namespace fastface {
namespace kernels {

float dot_scalar(const float* a, const float* b, std::size_t d) {
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
    std::size_t i = 0;
    for (; i + 4 <= d; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < d; ++i) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

float dot_norm_scalar(const float* a, const float* b, std::size_t d, float* b_squared) {
    float s0 = 0.f, s1 = 0.f, n0 = 0.f, n1 = 0.f;
    std::size_t i = 0;
    for (; i + 2 <= d; i += 2) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        n0 += b[i] * b[i];
        n1 += b[i + 1] * b[i + 1];
    }
    for (; i < d; ++i) {
        s0 += a[i] * b[i];
        n0 += b[i] * b[i];
    }
    *b_squared = n0 + n1;
    return s0 + s1;
}

}  // namespace kernels
}  // namespace fastface
