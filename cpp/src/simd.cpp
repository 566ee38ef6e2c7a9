#include "crossrank/simd.hpp"

#include <atomic>
#include <stdexcept>

namespace crossrank::simd {
namespace {
constexpr Isa kAll[] = {Isa::scalar, Isa::avx2, Isa::avx512, Isa::avx512bf16, Isa::avx512fp16, Isa::neon};
std::atomic<int> g_forced{-1};
}  // namespace

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::scalar:
            return "scalar";
        case Isa::avx2:
            return "avx2";
        case Isa::avx512:
            return "avx512";
        case Isa::avx512bf16:
            return "avx512bf16";
        case Isa::avx512fp16:
            return "avx512fp16";
        case Isa::neon:
            return "neon";
    }
    return "unknown";
}

Isa isa_from_name(const std::string& name) {
    std::string valid;
    for (Isa isa : kAll) {
        if (name == isa_name(isa)) return isa;
        valid += valid.empty() ? "" : ", ";
        valid += isa_name(isa);
    }
    throw std::invalid_argument("unknown SIMD path '" + name + "'; expected one of: " + valid);
}

std::vector<Isa> compiled_isas() {
    std::vector<Isa> out{Isa::scalar};
#ifdef CROSSRANK_HAVE_AVX2
    out.push_back(Isa::avx2);
#endif
#ifdef CROSSRANK_HAVE_AVX512
    out.push_back(Isa::avx512);
#endif
#ifdef CROSSRANK_HAVE_AVX512BF16
    out.push_back(Isa::avx512bf16);
#endif
#ifdef CROSSRANK_HAVE_AVX512FP16
    out.push_back(Isa::avx512fp16);
#endif
#ifdef CROSSRANK_HAVE_NEON
    out.push_back(Isa::neon);
#endif
    return out;
}

bool cpu_supports(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    switch (isa) {
        case Isa::scalar:
            return true;
        case Isa::avx2:
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case Isa::avx512:
            return avx512;
        case Isa::avx512bf16:
            return avx512 && __builtin_cpu_supports("avx512bf16");
        case Isa::avx512fp16:
            return avx512 && __builtin_cpu_supports("avx512fp16");
        case Isa::neon:
            return false;
    }
    return false;
#elif defined(__aarch64__)
    return isa == Isa::scalar || isa == Isa::neon;
#else
    return isa == Isa::scalar;
#endif
}

std::vector<Isa> available_isas() {
    std::vector<Isa> out;
    for (Isa isa : compiled_isas())
        if (cpu_supports(isa)) out.push_back(isa);
    return out;
}

Isa active_isa() {
    int forced = g_forced.load();
    if (forced >= 0) return static_cast<Isa>(forced);
    static const Isa best = [] {
        Isa b = Isa::scalar;
        for (Isa isa : available_isas()) b = isa;  // weakest first, so the last one is the best
        return b;
    }();
    return best;
}

void force_isa(Isa isa) {
    for (Isa a : available_isas()) {
        if (a == isa) {
            g_forced.store(static_cast<int>(isa));
            return;
        }
    }
    throw std::invalid_argument(std::string("SIMD path '") + isa_name(isa) +
                                "' is not available here (not compiled in, or this CPU lacks it); "
                                "see crossrank.build_info()['simd_available']");
}

void clear_forced_isa() { g_forced.store(-1); }

}  // namespace crossrank::simd
