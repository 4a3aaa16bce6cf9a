// Scalar references for the stored-precision dot products and the binary16 conversions.
#include <cstring>

#include "kernels/kernels.h"

namespace fastface {
namespace kernels {

float half_to_float(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exponent = (h >> 10) & 0x1fu;
    std::uint32_t mantissa = h & 0x3ffu;
    std::uint32_t bits;
    if (exponent == 0x1fu) {
        bits = sign | 0x7f800000u | (mantissa << 13);  // inf / NaN (payload kept)
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;  // signed zero
    } else {
        // Subnormal half: normalize the mantissa into a normal float.
        std::uint32_t e = 113u;
        while (!(mantissa & 0x400u)) {
            mantissa <<= 1;
            --e;
        }
        bits = sign | (e << 23) | ((mantissa & 0x3ffu) << 13);
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

std::uint16_t float_to_half(float f) {
    std::uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    const std::uint16_t sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
    const std::uint32_t abs = bits & 0x7fffffffu;
    if (abs >= 0x7f800000u)  // inf stays inf, NaN stays a (quiet) NaN
        return static_cast<std::uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
    if (abs >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds past 65504: inf
    if (abs < 0x38800000u) {
        // Below the smallest normal half (2^-14): a subnormal (or zero), rounded to nearest even.
        if (abs < 0x33000000u) return sign;  // under half the smallest subnormal (2^-25)
        const std::uint32_t exponent = abs >> 23;
        const std::uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
        const std::uint32_t shift = 126u - exponent;  // 14..24: mantissa >> shift is in half ulps
        const std::uint32_t half_ulps = mantissa >> shift;
        const std::uint32_t rest = mantissa & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
        const std::uint32_t rounded = half_ulps + (rest > halfway || (rest == halfway && (half_ulps & 1u)));
        return static_cast<std::uint16_t>(sign | rounded);
    }
    // Normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even (a carry
    // into the exponent is the correct result).
    const std::uint32_t rebiased = abs - 0x38000000u;
    const std::uint32_t rounded = rebiased + 0xfffu + ((rebiased >> 13) & 1u);
    return static_cast<std::uint16_t>(sign | (rounded >> 13));
}

float dot_f16_scalar(const float* q, const std::uint16_t* row, std::size_t d) {
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
    std::size_t i = 0;
    for (; i + 4 <= d; i += 4) {
        s0 += q[i] * half_to_float(row[i]);
        s1 += q[i + 1] * half_to_float(row[i + 1]);
        s2 += q[i + 2] * half_to_float(row[i + 2]);
        s3 += q[i + 3] * half_to_float(row[i + 3]);
    }
    for (; i < d; ++i) s0 += q[i] * half_to_float(row[i]);
    return (s0 + s1) + (s2 + s3);
}

float dot_i8_scalar(const float* q, const std::int8_t* row, std::size_t d) {
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
    std::size_t i = 0;
    for (; i + 4 <= d; i += 4) {
        s0 += q[i] * static_cast<float>(row[i]);
        s1 += q[i + 1] * static_cast<float>(row[i + 1]);
        s2 += q[i + 2] * static_cast<float>(row[i + 2]);
        s3 += q[i + 3] * static_cast<float>(row[i + 3]);
    }
    for (; i < d; ++i) s0 += q[i] * static_cast<float>(row[i]);
    return (s0 + s1) + (s2 + s3);
}

}  // namespace kernels
}  // namespace fastface
