// Instruction-set selection for fastface's kernels.
//
// Each kernel has a scalar reference and per-ISA variants (cpp/src/kernels/<isa>/), chosen at
// run time on x86 (AVX2 only when the CPU has it) and at compile time on ARM (NEON is part of
// aarch64 and of the armv7 targets we build for). Tests call every available ISA explicitly and
// compare it with Isa::Scalar.
#pragma once

#include <string>
#include <vector>

namespace fastface {

enum class Isa { Scalar, SSE2, AVX2, NEON };

const char* isa_name(Isa isa);
Isa isa_from_name(const std::string& name);  // throws InvalidArgument for unknown names
std::vector<Isa> available_isas();           // Scalar first, best last
Isa best_isa();

}  // namespace fastface
