// The exhaustive dense path's last pass over the accumulator (score, compare with the top-k bar,
// reset) and its dispatch to the per-ISA kernels. Internal to the core (bm25.cpp and its tests).
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "bm25_scan_kernels.hpp"
#include "crossrank/simd.hpp"
#include "crossrank/topk.hpp"

namespace crossrank::bm25::detail {

// The dense path's last pass: every document's score acc[d] + c goes to the selection unless it is
// below the bar, and the accumulator is reset to zero for the next query. An equal score may still
// win on a lower index, so push() decides ties on the full key. Seeded documents hold -inf and are
// skipped (-inf + c is never above the bar once the seeds are in).
//
// Almost every document falls below the bar, so the scan is a compare-and-reset stream: eight
// documents per step, tested together (SSE2, part of x86-64's baseline; the compiler did not
// vectorise the portable form), then the few above the bar one by one. Every form (this one, the
// portable tail, the AVX-512 kernel) adds, compares and pushes in the same order, so results are
// bit-identical.
// `acc` holds documents base .. base + n_docs - 1.
// With `after_kept`, every document already kept has a lower index than those scanned, so a score
// equal to the bar cannot enter (a tie goes to the lower index) and the test is strict: where
// documents share scores (equal lengths and frequencies) that spares the one-by-one check of each.
template <bool after_kept>
inline void scan_and_reset_sse2(float* __restrict acc, std::size_t n_docs, float c, TopKFloat& top,
                                std::uint32_t base) {
    float bar = top.bar_score();
    std::size_t d = 0;
#if defined(__SSE2__)
    const __m128 vc = _mm_set1_ps(c);
    const __m128 zero = _mm_setzero_ps();
    for (; d + 8 <= n_docs; d += 8) {
        const __m128 lo = _mm_add_ps(_mm_loadu_ps(acc + d), vc);
        const __m128 hi = _mm_add_ps(_mm_loadu_ps(acc + d + 4), vc);
        _mm_storeu_ps(acc + d, zero);
        _mm_storeu_ps(acc + d + 4, zero);
        const __m128 vbar = _mm_set1_ps(bar);
        const __m128 enter_lo = after_kept ? _mm_cmpgt_ps(lo, vbar) : _mm_cmpge_ps(lo, vbar);
        const __m128 enter_hi = after_kept ? _mm_cmpgt_ps(hi, vbar) : _mm_cmpge_ps(hi, vbar);
        const unsigned mask = static_cast<unsigned>(_mm_movemask_ps(enter_lo)) |
                              (static_cast<unsigned>(_mm_movemask_ps(enter_hi)) << 4);
        if (mask == 0) continue;
        alignas(16) float block[8];
        _mm_store_ps(block, lo);
        _mm_store_ps(block + 4, hi);
        // Bit by bit rather than count-trailing-zeros: GCC emits that as `rep bsf`, which disassembles as
        // BMI's tzcnt and would fail the wheel's baseline-ISA check; a hit block is rare anyway.
        for (unsigned i = 0; i < 8; ++i) {
            // The bar may have risen since the test above.
            if (((mask >> i) & 1u) && (after_kept ? block[i] > bar : block[i] >= bar)) {
                top.push(block[i], base + static_cast<std::uint32_t>(d + i));
                bar = top.bar_score();
            }
        }
    }
#endif
    for (; d < n_docs; ++d) {
        const float score = acc[d] + c;
        acc[d] = 0.0f;
        if (after_kept ? score > bar : score >= bar) {
            top.push(score, base + static_cast<std::uint32_t>(d));
            bar = top.bar_score();
        }
    }
}

// One scan: after_kept as above; acc holds documents base .. base + n_docs - 1.
using ScanFn = void (*)(bool after_kept, float* acc, std::size_t n_docs, float c, TopKFloat& top,
                        std::uint32_t base);

inline void scan_sse2(bool after_kept, float* acc, std::size_t n_docs, float c, TopKFloat& top,
                      std::uint32_t base) {
    if (after_kept)
        scan_and_reset_sse2<true>(acc, n_docs, c, top, base);
    else
        scan_and_reset_sse2<false>(acc, n_docs, c, top, base);
}

#ifdef CROSSRANK_HAVE_AVX512
// The AVX-512 kernel finds the next block of 32 with a score that may enter; the pushes happen
// here, in baseline code. At 10M documents the SSE2 scan was a fifth of a dense query's time.
inline void scan_avx512(bool after_kept, float* acc, std::size_t n_docs, float c, TopKFloat& top,
                        std::uint32_t base) {
    const std::size_t end = n_docs - n_docs % 32;
    alignas(64) float block[32];
    float bar = top.bar_score();
    for (std::size_t d = 0; (d = scan_blocks_avx512(acc, d, end, c, bar, after_kept, block)) < end; d += 32) {
        for (unsigned i = 0; i < 32; ++i) {
            // The bar may have risen since the kernel's test.
            if (after_kept ? block[i] > bar : block[i] >= bar) {
                top.push(block[i], base + static_cast<std::uint32_t>(d + i));
                bar = top.bar_score();
            }
        }
    }
    scan_sse2(after_kept, acc + end, n_docs - end, c, top, base + static_cast<std::uint32_t>(end));
}
#endif

// The kernel for the active ISA (simd::active_isa(), so tests can force the baseline).
inline ScanFn scan_kernel() {
#ifdef CROSSRANK_HAVE_AVX512
    switch (simd::active_isa()) {
        case simd::Isa::avx512:
        case simd::Isa::avx512bf16:
        case simd::Isa::avx512fp16:
            return scan_avx512;
        default:
            break;
    }
#endif
    return scan_sse2;
}

}  // namespace crossrank::bm25::detail
