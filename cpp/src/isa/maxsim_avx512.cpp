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
#include <type_traits>

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

// Short queries (nq <= kShortQuery): SIMD lanes along dim instead of along query tokens, so no
// lane is wasted on padding query tokens. acc[r][i] holds 16 partial sums of <q_i, d_r>; NQ query
// rows (rows >= nq are zero) x R document tokens, folded to scalars once per tile.
// Full chunks use plain loads: masked 512-bit loads are several times slower on AMD Zen 4.
template <DType DT, bool kFull>
inline __m512 load_doc(const void* row, std::size_t k, __mmask16 m) {
    if constexpr (DT == DType::fp32) {
        if constexpr (kFull) return _mm512_loadu_ps(static_cast<const float*>(row) + k);
        return _mm512_maskz_loadu_ps(m, static_cast<const float*>(row) + k);
    } else {
        const auto* p = static_cast<const std::uint16_t*>(row) + k;
        const __m256i h =
            kFull ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)) : _mm256_maskz_loadu_epi16(m, p);
        if constexpr (DT == DType::fp16)
            return _mm512_cvtph_ps(h);
        else
            return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
}

// Sums of the 16 lanes of a, b, c, d as one __m128 {sum a, sum b, sum c, sum d}.
inline __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
    auto fold = [](__m512 v) {
        const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
        return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    };
    return _mm_hadd_ps(_mm_hadd_ps(fold(a), fold(b)), _mm_hadd_ps(fold(c), fold(d)));
}

template <DType DT, int NQ, int R>
void rowmax_short(const PreparedQuery& q, const void* doc, std::size_t n_tokens, float* rowmax) {
    constexpr int NG = (NQ + 3) / 4;  // groups of 4 query rows
    const std::size_t dim = q.dim, dpad = q.dim_pad, stride = q.stride, esize = DT == DType::fp32 ? 4 : 2;
    __m128 best[NG];
    for (int g = 0; g < NG; ++g) best[g] = _mm_set1_ps(-std::numeric_limits<float>::infinity());
    const char* base = static_cast<const char*>(doc);
    for (std::size_t t0 = 0; t0 < n_tokens; t0 += R) {
        const void* rows[R];
        // Rows past the document's end repeat its last token: duplicates cannot change a max.
        for (int r = 0; r < R; ++r)
            rows[r] =
                base + std::min<std::size_t>(t0 + static_cast<std::size_t>(r), n_tokens - 1) * stride * esize;
        __m512 acc[R][NQ];
        for (int r = 0; r < R; ++r)
            for (int i = 0; i < NQ; ++i) acc[r][i] = _mm512_setzero_ps();
        // Streaming from DRAM: fetch the next tile's rows while this one computes.
        const char* next = base + (t0 + R) * stride * esize;
        const std::size_t tile_bytes = R * stride * esize;
        if (t0 + 2 * R <= n_tokens)
            for (std::size_t off = 0; off < tile_bytes; off += 64) _mm_prefetch(next + off, _MM_HINT_T0);
        auto step = [&](std::size_t k, __mmask16 m, auto full) {
            __m512 d[R];
            for (int r = 0; r < R; ++r) d[r] = load_doc<DT, decltype(full)::value>(rows[r], k, m);
            for (int i = 0; i < NQ; ++i) {
                const __m512 qv = _mm512_load_ps(q.qrow + static_cast<std::size_t>(i) * dpad + k);
                for (int r = 0; r < R; ++r) acc[r][i] = _mm512_fmadd_ps(qv, d[r], acc[r][i]);
            }
        };
        std::size_t k = 0;
        for (; k + 16 <= dim; k += 16) step(k, static_cast<__mmask16>(0xffff), std::true_type{});
        if (k < dim) step(k, static_cast<__mmask16>((1u << (dim - k)) - 1u), std::false_type{});
        const __m512 zero = _mm512_setzero_ps();
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
        rowmax_short<DT, 1, 8>(q, doc, n_tokens, rowmax);
    else if (q.nq <= 2)
        rowmax_short<DT, 2, 8>(q, doc, n_tokens, rowmax);
    else if (q.nq <= 4)
        rowmax_short<DT, 4, 4>(q, doc, n_tokens, rowmax);
    else
        rowmax_short<DT, 8, 2>(q, doc, n_tokens, rowmax);
}

}  // namespace

void rowmax_avx512_short(const PreparedQuery& q, const void* doc, std::size_t n_tokens, DType dtype,
                         float* rowmax) {
    switch (dtype) {
        case DType::fp32:
            return rowmax_short_dispatch<DType::fp32>(q, doc, n_tokens, rowmax);
        case DType::fp16:
            return rowmax_short_dispatch<DType::fp16>(q, doc, n_tokens, rowmax);
        case DType::bf16:
            return rowmax_short_dispatch<DType::bf16>(q, doc, n_tokens, rowmax);
    }
}

void rowmax_avx512(const PreparedQuery& q, const void* doc, std::size_t n_tokens, DType dtype, float* rowmax,
                   float* scratch) {
    if (q.nq <= kShortQuery && q.qrow != nullptr) return rowmax_avx512_short(q, doc, n_tokens, dtype, rowmax);
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
