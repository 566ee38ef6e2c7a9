// Internal interface between the MaxSim driver (maxsim.cpp) and its per-ISA kernels
// (isa/maxsim_<isa>.cpp). Not installed, not part of the public API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "crossrank/maxsim.hpp"

namespace crossrank::maxsim::detail {

// One query prepared for the kernels.
struct PreparedQuery {
    std::size_t nq = 0;      // real query tokens
    std::size_t nq_pad = 0;  // nq rounded up to 16; lanes >= nq are zero and never summed
    std::size_t dim = 0;
    std::size_t stride = 0;  // document row stride (elements)
    // qt[k * nq_pad + i] = q[i][k] for k < stride (zero for k >= dim); 64-byte aligned.
    const float* qt = nullptr;
    // For the VDPBF16PS kernel only (else nullptr): qt_bf16[p * nq_pad + i] packs bf16(q[i][2p])
    // in the low half and bf16(q[i][2p+1]) in the high half, p < stride / 2; 64-byte aligned.
    const std::uint32_t* qt_bf16 = nullptr;
    // Row-major copy for the short-query kernel: qrow[i * dim_pad + k] = q[i][k] for i < 8
    // (rows >= nq and columns >= dim are zero), dim_pad = dim rounded up to 16; 64-byte aligned.
    const float* qrow = nullptr;
    std::size_t dim_pad = 0;
};

// Queries of at most this many tokens use the "dot along dim" kernel on AVX-512 (see maxsim.hpp).
constexpr std::size_t kShortQuery = 8;

// Per-thread scratch space: kScratchRows * round_up(stride, 16) + nq_pad floats, 64-byte aligned.
constexpr std::size_t kScratchRows = 16;

// Writes rowmax[i] = max_j <q_i, d_j> for i < nq_pad over the n_tokens >= 1 rows at `doc`.
using RowMaxFn = void (*)(const PreparedQuery& q, const void* doc, std::size_t n_tokens, DType dtype,
                          float* rowmax, float* scratch);

void rowmax_scalar(const PreparedQuery&, const void*, std::size_t, DType, float*, float*);
#ifdef CROSSRANK_HAVE_AVX2
void rowmax_avx2(const PreparedQuery&, const void*, std::size_t, DType, float*, float*);
#endif
#ifdef CROSSRANK_HAVE_AVX512
void rowmax_avx512(const PreparedQuery&, const void*, std::size_t, DType, float*, float*);
// The short-query kernel (nq <= kShortQuery), also used by the avx512bf16 path.
void rowmax_avx512_short(const PreparedQuery&, const void*, std::size_t, DType, float*);
#endif
#ifdef CROSSRANK_HAVE_AVX512BF16
// bf16 storage only.
void rowmax_avx512bf16(const PreparedQuery&, const void*, std::size_t, DType, float*, float*);
#endif

// Scalar conversions (round-to-nearest-even), shared by packing, the scalar kernel and tests.
inline float bf16_to_fp32(std::uint16_t h) {
    std::uint32_t bits = static_cast<std::uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

inline std::uint16_t fp32_to_bf16(float f) {
    std::uint32_t x;
    std::memcpy(&x, &f, sizeof x);
    x += 0x7fffu + ((x >> 16) & 1u);  // finite inputs only (validated before)
    return static_cast<std::uint16_t>(x >> 16);
}

inline float fp16_to_fp32(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t em = h & 0x7fffu;
    std::uint32_t bits;
    if (em >= 0x7c00u) {
        bits = sign | 0x7f800000u | ((em & 0x3ffu) << 13);  // inf / nan
    } else if (em >= 0x0400u) {
        bits = sign | ((em << 13) + 0x38000000u);  // normal: rebias exponent 15 -> 127
    } else {
        float f = static_cast<float>(em) * 5.9604644775390625e-08f;  // subnormal: em * 2^-24
        return sign ? -f : f;
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// Finite inputs with |f| < 65520 only (the caller checks; larger values would round to inf).
inline std::uint16_t fp32_to_fp16(float f) {
    std::uint32_t x;
    std::memcpy(&x, &f, sizeof x);
    const std::uint32_t sign = (x >> 16) & 0x8000u;
    std::uint32_t ax = x & 0x7fffffffu;
    if (ax < 0x38800000u) {  // below 2^-14: fp16 subnormal or zero; let the FPU round (RNE)
        float fa;
        std::memcpy(&fa, &ax, sizeof fa);
        fa += 0.5f;  // 0.5 has ulp 2^-24 = the fp16 subnormal unit
        std::uint32_t r;
        std::memcpy(&r, &fa, sizeof r);
        return static_cast<std::uint16_t>(sign | (r - 0x3f000000u));
    }
    const std::uint32_t odd = (ax >> 13) & 1u;
    ax += 0xc8000fffu + odd;  // rebias 127 -> 15 and round to nearest even
    return static_cast<std::uint16_t>(sign | (ax >> 13));
}

}  // namespace crossrank::maxsim::detail
