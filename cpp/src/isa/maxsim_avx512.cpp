// MaxSim kernel for AVX-512F/BW/VL (see maxsim.hpp for the formula, precision and layout).
// Register tile: 32 query lanes (2 zmm) x 8 document tokens (broadcast) = 16 fp32 accumulators,
// or 16 lanes x 16 tokens for the last query block of 16. fp16/bf16 rows are widened to fp32 into
// scratch once per 16-token tile and reused by every query block.
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

constexpr bool kDirectFp32 = false;

constexpr std::size_t kTile = 16;

template <int QV, int NR>
inline void tile(const float* qt, std::size_t nqp, std::size_t qoff, const float* const* rows,
                 std::size_t dim, float* rowmax) {
    __m512 acc[NR][QV];
    for (int r = 0; r < NR; ++r)
        for (int v = 0; v < QV; ++v) acc[r][v] = _mm512_setzero_ps();
    const float* qk = qt + qoff;
    for (std::size_t k = 0; k < dim; ++k, qk += nqp) {
        __m512 qv[QV];
        for (int v = 0; v < QV; ++v) qv[v] = _mm512_load_ps(qk + 16 * v);
        for (int r = 0; r < NR; ++r) {
            const __m512 b = _mm512_set1_ps(rows[r][k]);
            for (int v = 0; v < QV; ++v) acc[r][v] = _mm512_fmadd_ps(qv[v], b, acc[r][v]);
        }
    }
    for (int v = 0; v < QV; ++v) {
        __m512 m = _mm512_load_ps(rowmax + qoff + 16 * v);
        for (int r = 0; r < NR; ++r) m = _mm512_max_ps(m, acc[r][v]);
        _mm512_store_ps(rowmax + qoff + 16 * v, m);
    }
}

inline void widen_rows(const std::uint16_t* src, std::size_t n, std::size_t dim, std::size_t stride,
                       DType dtype, float* dst, std::size_t dst_stride) {
    for (std::size_t r = 0; r < n; ++r) {
        const std::uint16_t* s = src + r * stride;
        float* d = dst + r * dst_stride;
        for (std::size_t k = 0; k < dim; k += 16) {
            const std::size_t left = dim - k;
            const __mmask16 m =
                left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1u);
            const __m256i h = _mm256_maskz_loadu_epi16(m, s + k);
            __m512 f;
            if (dtype == DType::fp16)
                f = _mm512_cvtph_ps(h);
            else
                f = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
            _mm512_store_ps(d + k, f);
        }
    }
}

}  // namespace

void rowmax_avx512(const PreparedQuery& q, const void* doc, std::size_t n_tokens, DType dtype, float* rowmax,
                   float* scratch) {
    const std::size_t nqp = q.nq_pad, dim = q.dim, stride = q.stride;
    const std::size_t sstride = (stride + 15) / 16 * 16;
    const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (std::size_t i = 0; i < nqp; i += 16) _mm512_store_ps(rowmax + i, ninf);
    const float* rows[kTile];
    for (std::size_t t0 = 0; t0 < n_tokens; t0 += kTile) {
        const std::size_t nt = std::min(kTile, n_tokens - t0);
        if (dtype == DType::fp32 && kDirectFp32) {
            const float* base = static_cast<const float*>(doc) + t0 * stride;
            for (std::size_t r = 0; r < kTile; ++r) rows[r] = base + std::min(r, nt - 1) * stride;
        } else if (dtype == DType::fp32) {
            // Copy the tile to scratch first: one linear pass over memory, then all reads hit L1.
            for (std::size_t r = 0; r < nt; ++r)
                std::memcpy(scratch + r * sstride, static_cast<const float*>(doc) + (t0 + r) * stride,
                            dim * sizeof(float));
            for (std::size_t r = 0; r < kTile; ++r) rows[r] = scratch + std::min(r, nt - 1) * sstride;
        } else {
            widen_rows(static_cast<const std::uint16_t*>(doc) + t0 * stride, nt, dim, stride, dtype, scratch,
                       sstride);
            for (std::size_t r = 0; r < kTile; ++r) rows[r] = scratch + std::min(r, nt - 1) * sstride;
        }
        // Rows past the document's end repeat its last token: duplicates cannot change a max.
        std::size_t qoff = 0;
        for (; qoff + 32 <= nqp; qoff += 32) {
            tile<2, 8>(q.qt, nqp, qoff, rows, dim, rowmax);
            if (nt > 8) tile<2, 8>(q.qt, nqp, qoff, rows + 8, dim, rowmax);
        }
        if (qoff < nqp) {
            if (nt > 8)
                tile<1, 16>(q.qt, nqp, qoff, rows, dim, rowmax);
            else
                tile<1, 8>(q.qt, nqp, qoff, rows, dim, rowmax);
        }
    }
}

}  // namespace crossrank::maxsim::detail
