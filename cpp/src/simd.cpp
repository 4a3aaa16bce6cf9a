#include "fastface/simd.h"

#include "fastface/error.h"

namespace fastface {

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::Scalar: return "scalar";
        case Isa::SSE2: return "sse2";
        case Isa::AVX2: return "avx2";
        case Isa::NEON: return "neon";
    }
    return "unknown";
}

Isa isa_from_name(const std::string& name) {
    for (Isa isa : {Isa::Scalar, Isa::SSE2, Isa::AVX2, Isa::NEON})
        if (name == isa_name(isa)) return isa;
    throw Error(ErrorCode::InvalidArgument, "unknown instruction set '" + name + "' (expected scalar, sse2, avx2 or neon)");
}

std::vector<Isa> available_isas() {
    std::vector<Isa> isas{Isa::Scalar};
#if defined(FASTFACE_KERNELS_X86)
    isas.push_back(Isa::SSE2);
#if defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isas.push_back(Isa::AVX2);
#endif
#endif
#if defined(FASTFACE_KERNELS_NEON)
    isas.push_back(Isa::NEON);
#endif
    return isas;
}

Isa best_isa() {
    static const Isa best = available_isas().back();
    return best;
}

}  // namespace fastface
