// MaxSim kernel for AVX2 + FMA (+F16C), see maxsim.hpp. Register tile: 16 query lanes (2 ymm) x 6
// document tokens (broadcast) = 12 fp32 accumulators. fp16/bf16 rows are widened to fp32 into
// scratch once per 6-token tile and reused by every query block.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

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

// Short queries (nq <= kShortQuery): lanes along dim (see maxsim_avx512.cpp and maxsim.hpp).
template <DType DT, bool kFull>
inline __m256 load_doc8(const void* row, std::size_t k, std::size_t left) {
    if constexpr (DT == DType::fp32) {
        const float* p = static_cast<const float*>(row) + k;
        if constexpr (kFull) return _mm256_loadu_ps(p);
        alignas(32) float tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        std::memcpy(tmp, p, left * sizeof(float));
        return _mm256_load_ps(tmp);
    } else {
        const std::uint16_t* p = static_cast<const std::uint16_t*>(row) + k;
        __m128i h;
        if constexpr (kFull) {
            h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        } else {
            alignas(16) std::uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            std::memcpy(tmp, p, left * sizeof(std::uint16_t));
            h = _mm_load_si128(reinterpret_cast<const __m128i*>(tmp));
        }
        if constexpr (DT == DType::fp16)
            return _mm256_cvtph_ps(h);
        else
            return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
}

// Sums of the 8 lanes of a, b, c, d as one __m128 {sum a, sum b, sum c, sum d}.
inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    auto fold = [](__m256 v) { return _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); };
    return _mm_hadd_ps(_mm_hadd_ps(fold(a), fold(b)), _mm_hadd_ps(fold(c), fold(d)));
}

template <DType DT, int NQ, int R>
void rowmax_short(const PreparedQuery& q, const void* doc, std::size_t n_tokens, float* rowmax) {
    constexpr int NG = (NQ + 3) / 4;
    constexpr std::size_t esize = DT == DType::fp32 ? 4 : 2;
    const std::size_t dim = q.dim, dpad = q.dim_pad, stride = q.stride;
    __m128 best[NG];
    for (int g = 0; g < NG; ++g) best[g] = _mm_set1_ps(-std::numeric_limits<float>::infinity());
    const char* base = static_cast<const char*>(doc);
    for (std::size_t t0 = 0; t0 < n_tokens; t0 += R) {
        const void* rows[R];
        // Rows past the document's end repeat its last token: duplicates cannot change a max.
        for (int r = 0; r < R; ++r)
            rows[r] =
                base + std::min<std::size_t>(t0 + static_cast<std::size_t>(r), n_tokens - 1) * stride * esize;
        __m256 acc[R][NQ];
        for (int r = 0; r < R; ++r)
            for (int i = 0; i < NQ; ++i) acc[r][i] = _mm256_setzero_ps();
        auto step = [&](std::size_t k, std::size_t left, auto full) {
            __m256 d[R];
            for (int r = 0; r < R; ++r) d[r] = load_doc8<DT, decltype(full)::value>(rows[r], k, left);
            for (int i = 0; i < NQ; ++i) {
                const __m256 qv = _mm256_load_ps(q.qrow + static_cast<std::size_t>(i) * dpad + k);
                for (int r = 0; r < R; ++r) acc[r][i] = _mm256_fmadd_ps(qv, d[r], acc[r][i]);
            }
        };
        std::size_t k = 0;
        for (; k + 8 <= dim; k += 8) step(k, 8, std::true_type{});
        if (k < dim) step(k, dim - k, std::false_type{});
        const __m256 zero = _mm256_setzero_ps();
        for (int r = 0; r < R; ++r) {
            for (int g = 0; g < NG; ++g) {
                const int i0 = 4 * g;
                const __m128 s =
                    hsum4(acc[r][i0], i0 + 1 < NQ ? acc[r][i0 + 1] : zero,
                          i0 + 2 < NQ ? acc[r][i0 + 2] : zero, i0 + 3 < NQ ? acc[r][i0 + 3] : zero);
                best[g] = _mm_max_ps(best[g], s);
            }
        }
    }
    for (int g = 0; g < NG; ++g) _mm_storeu_ps(rowmax + 4 * g, best[g]);
}

template <DType DT>
void rowmax_short_dispatch(const PreparedQuery& q, const void* doc, std::size_t n_tokens, float* rowmax) {
    if (q.nq <= 1)
        rowmax_short<DT, 1, 4>(q, doc, n_tokens, rowmax);
    else if (q.nq <= 2)
        rowmax_short<DT, 2, 4>(q, doc, n_tokens, rowmax);
    else if (q.nq <= 4)
        rowmax_short<DT, 4, 2>(q, doc, n_tokens, rowmax);
    else
        rowmax_short<DT, 8, 1>(q, doc, n_tokens, rowmax);
}

}  // namespace

void rowmax_avx2(const PreparedQuery& q, const void* doc, std::size_t n_tokens, DType dtype, float* rowmax,
                 float* scratch) {
    if (q.nq <= kShortQuery && q.qrow != nullptr) {
        switch (dtype) {
            case DType::fp32:
                return rowmax_short_dispatch<DType::fp32>(q, doc, n_tokens, rowmax);
            case DType::fp16:
                return rowmax_short_dispatch<DType::fp16>(q, doc, n_tokens, rowmax);
            case DType::bf16:
                return rowmax_short_dispatch<DType::bf16>(q, doc, n_tokens, rowmax);
        }
    }
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
