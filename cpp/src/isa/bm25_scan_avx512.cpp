// The BM25 dense scan's AVX-512F kernel (see bm25_scan_kernels.hpp): the same additions and
// comparisons as the SSE2 form, sixteen documents per compare, two compares per step.
#include <immintrin.h>

#include "../bm25_scan_kernels.hpp"

namespace crossrank::bm25::detail {

namespace {

template <int kEnter>
std::size_t scan_blocks(float* __restrict acc, std::size_t d, std::size_t end, float c, float bar,
                        float* __restrict block) {
    const __m512 vc = _mm512_set1_ps(c);
    const __m512 vbar = _mm512_set1_ps(bar);
    const __m512 zero = _mm512_setzero_ps();
    for (; d < end; d += 32) {
        const __m512 lo = _mm512_add_ps(_mm512_loadu_ps(acc + d), vc);
        const __m512 hi = _mm512_add_ps(_mm512_loadu_ps(acc + d + 16), vc);
        _mm512_storeu_ps(acc + d, zero);
        _mm512_storeu_ps(acc + d + 16, zero);
        if (_mm512_cmp_ps_mask(lo, vbar, kEnter) | _mm512_cmp_ps_mask(hi, vbar, kEnter)) {
            _mm512_storeu_ps(block, lo);
            _mm512_storeu_ps(block + 16, hi);
            return d;
        }
    }
    return end;
}

}  // namespace

std::size_t scan_blocks_avx512(float* acc, std::size_t from, std::size_t end, float c, float bar,
                               bool after_kept, float* block) {
    return after_kept ? scan_blocks<_CMP_GT_OQ>(acc, from, end, c, bar, block)
                      : scan_blocks<_CMP_GE_OQ>(acc, from, end, c, bar, block);
}

}  // namespace crossrank::bm25::detail
