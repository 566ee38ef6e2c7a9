// Runtime SIMD dispatch.
//
// Kernels are compiled once per instruction set in cpp/src/isa/<kernel>_<isa>.cpp with that ISA's
// flags (CMake defines CROSSRANK_HAVE_<ISA> for each path it compiled); the baseline build stays
// portable. At run time the best path that is both compiled and supported by this CPU (and the OS)
// is chosen, unless a test or user forces one with force_isa().
#pragma once

#include <string>
#include <vector>

namespace crossrank::simd {

enum class Isa { scalar = 0, avx2, avx512, avx512bf16, avx512fp16, neon };

const char* isa_name(Isa isa);
// Parses a name from isa_name(); throws std::invalid_argument listing the valid names otherwise.
Isa isa_from_name(const std::string& name);

std::vector<Isa> compiled_isas();   // paths built into this binary (scalar always)
bool cpu_supports(Isa isa);         // this CPU and OS can run the path
std::vector<Isa> available_isas();  // compiled and supported, weakest first

// The path kernels use: the forced one if set, else the best available.
Isa active_isa();
// Force a path (for tests and benchmarks). Throws std::invalid_argument if it is not available.
void force_isa(Isa isa);
void clear_forced_isa();

}  // namespace crossrank::simd
