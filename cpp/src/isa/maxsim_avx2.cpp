// MaxSim kernel for AVX2 + FMA (+F16C), see maxsim.hpp. Register tile: 16 query lanes (2 ymm) x 6
// document tokens (broadcast) = 12 fp32 accumulators. fp16/bf16 rows are widened to fp32 into
// scratch once per 6-token tile and reused by every query block.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "../maxsim_kernels.hpp"

namespace crossrank::maxsim::detail {
namespace {

constexpr bool kDirectFp32 = false;

constexpr std::size_t kTile = 6;

inline void tile(const float* qt, std::size_t nqp, std::size_t qoff, const float* const* rows,
                 std::size_t dim, float* rowmax) {
    __m256 acc[kTile][2];
    for (std::size_t r = 0; r < kTile; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const float* qk = qt + qoff;
    for (std::size_t k = 0; k < dim; ++k, qk += nqp) {
        const __m256 q0 = _mm256_load_ps(qk), q1 = _mm256_load_ps(qk + 8);
        for (std::size_t r = 0; r < kTile; ++r) {
            const __m256 b = _mm256_broadcast_ss(rows[r] + k);
            acc[r][0] = _mm256_fmadd_ps(q0, b, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(q1, b, acc[r][1]);
        }
    }
    for (int v = 0; v < 2; ++v) {
        __m256 m = _mm256_load_ps(rowmax + qoff + 8 * v);
        for (std::size_t r = 0; r < kTile; ++r) m = _mm256_max_ps(m, acc[r][v]);
        _mm256_store_ps(rowmax + qoff + 8 * v, m);
    }
}

inline void widen_rows(const std::uint16_t* src, std::size_t n, std::size_t dim, std::size_t stride,
                       DType dtype, float* dst, std::size_t dst_stride) {
    for (std::size_t r = 0; r < n; ++r) {
        const std::uint16_t* s = src + r * stride;
        float* d = dst + r * dst_stride;
        std::size_t k = 0;
        for (; k + 8 <= dim; k += 8) {
            const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + k));
            __m256 f;
            if (dtype == DType::fp16)
                f = _mm256_cvtph_ps(h);
            else
                f = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
            _mm256_store_ps(d + k, f);
        }
        for (; k < dim; ++k) d[k] = dtype == DType::fp16 ? fp16_to_fp32(s[k]) : bf16_to_fp32(s[k]);
    }
}

}  // namespace

void rowmax_avx2(const PreparedQuery& q, const void* doc, std::size_t n_tokens, DType dtype, float* rowmax,
                 float* scratch) {
    const std::size_t nqp = q.nq_pad, dim = q.dim, stride = q.stride;
    const std::size_t sstride = (stride + 15) / 16 * 16;
    const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
    for (std::size_t i = 0; i < nqp; i += 8) _mm256_store_ps(rowmax + i, ninf);
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
        for (std::size_t qoff = 0; qoff < nqp; qoff += 16) tile(q.qt, nqp, qoff, rows, dim, rowmax);
    }
}

}  // namespace crossrank::maxsim::detail
