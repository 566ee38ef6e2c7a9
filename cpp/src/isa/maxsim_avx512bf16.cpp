// MaxSim kernel for bf16 storage with AVX512-BF16 (VDPBF16PS): each instruction does two
// multiply-adds per fp32 lane, taking a (k, k+1) pair from the query (rounded to bf16 once per
// call, see maxsim.hpp) and the same pair broadcast from a document row (rows have even stride,
// so the pair is one aligned 32-bit load). Register tile as in the avx512 kernel.
// GCC 12 warns inside its own AVX-512 headers (_mm512_undefined_*), GCC bug 105593.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "../maxsim_kernels.hpp"

namespace crossrank::maxsim::detail {
namespace {

constexpr std::size_t kTile = 16;

template <int QV, int NR>
inline void tile(const std::uint32_t* qb, std::size_t nqp, std::size_t qoff, const std::uint16_t* const* rows,
                 std::size_t npairs, float* rowmax) {
    __m512 acc[NR][QV];
    for (int r = 0; r < NR; ++r)
        for (int v = 0; v < QV; ++v) acc[r][v] = _mm512_setzero_ps();
    const std::uint32_t* qp = qb + qoff;
    for (std::size_t p = 0; p < npairs; ++p, qp += nqp) {
        __m512bh qv[QV];
        for (int v = 0; v < QV; ++v) qv[v] = (__m512bh)_mm512_load_si512(qp + 16 * v);
        for (int r = 0; r < NR; ++r) {
            std::uint32_t pair;
            std::memcpy(&pair, rows[r] + 2 * p, sizeof pair);
            const __m512bh b = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair));
            for (int v = 0; v < QV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], qv[v], b);
        }
    }
    for (int v = 0; v < QV; ++v) {
        __m512 m = _mm512_load_ps(rowmax + qoff + 16 * v);
        for (int r = 0; r < NR; ++r) m = _mm512_max_ps(m, acc[r][v]);
        _mm512_store_ps(rowmax + qoff + 16 * v, m);
    }
}

}  // namespace

void rowmax_avx512bf16(const PreparedQuery& q, const void* doc, std::size_t n_tokens, DType /*dtype*/,
                       float* rowmax, float* /*scratch*/) {
    // Short queries: the lanes-along-dim kernel wastes no lanes and beats VDPBF16PS here.
    if (q.nq <= kShortQuery && q.qrow != nullptr)
        return rowmax_avx512_short(q, doc, n_tokens, DType::bf16, rowmax);
    const std::size_t nqp = q.nq_pad, stride = q.stride, npairs = q.stride / 2;
    const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (std::size_t i = 0; i < nqp; i += 16) _mm512_store_ps(rowmax + i, ninf);
    const std::uint16_t* rows[kTile];
    for (std::size_t t0 = 0; t0 < n_tokens; t0 += kTile) {
        const std::size_t nt = std::min(kTile, n_tokens - t0);
        const std::uint16_t* base = static_cast<const std::uint16_t*>(doc) + t0 * stride;
        // Rows past the document's end repeat its last token: duplicates cannot change a max.
        for (std::size_t r = 0; r < kTile; ++r) rows[r] = base + std::min(r, nt - 1) * stride;
        std::size_t qoff = 0;
        for (; qoff + 32 <= nqp; qoff += 32) {
            tile<2, 8>(q.qt_bf16, nqp, qoff, rows, npairs, rowmax);
            if (nt > 8) tile<2, 8>(q.qt_bf16, nqp, qoff, rows + 8, npairs, rowmax);
        }
        if (qoff < nqp) {
            if (nt > 8)
                tile<1, 16>(q.qt_bf16, nqp, qoff, rows, npairs, rowmax);
            else
                tile<1, 8>(q.qt_bf16, nqp, qoff, rows, npairs, rowmax);
        }
    }
}

}  // namespace crossrank::maxsim::detail
