// MaxSim driver: validation, packing, query preparation, dispatch and threading. The scalar
// kernel lives here too; the SIMD kernels are in isa/maxsim_<isa>.cpp. See maxsim.hpp.
#include "crossrank/maxsim.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "crossrank/parallel.hpp"
#include "maxsim_kernels.hpp"

namespace crossrank::maxsim {
namespace {

// 64-byte aligned, zero-initialised buffer of T.
template <class T>
class Aligned {
  public:
    explicit Aligned(std::size_t n) : n_(n) {
        std::size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
        if (bytes == 0) bytes = 64;
        // C++17 aligned operator new: portable (std::aligned_alloc is missing on MSVC); throws bad_alloc.
        p_ = static_cast<T*>(::operator new(bytes, std::align_val_t{64}));
        std::memset(static_cast<void*>(p_), 0, bytes);
    }
    ~Aligned() {
        if (p_) ::operator delete(static_cast<void*>(p_), std::align_val_t{64});
    }
    Aligned(const Aligned&) = delete;
    Aligned& operator=(const Aligned&) = delete;
    Aligned(Aligned&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; }
    T* get() const { return p_; }

  private:
    T* p_ = nullptr;
    std::size_t n_ = 0;
};

std::size_t round_up(std::size_t x, std::size_t m) { return (x + m - 1) / m * m; }

void check_offsets(const std::int64_t* offsets, std::size_t n, std::size_t n_rows, const char* what) {
    if (offsets == nullptr) throw std::invalid_argument(std::string(what) + " offsets are missing");
    if (offsets[0] != 0)
        throw std::invalid_argument(std::string(what) + " offsets must start at 0, got " +
                                    std::to_string(offsets[0]));
    for (std::size_t i = 0; i < n; ++i) {
        if (offsets[i + 1] < offsets[i])
            throw std::invalid_argument(std::string(what) + " offsets must be non-decreasing; offsets[" +
                                        std::to_string(i + 1) + "] = " + std::to_string(offsets[i + 1]) +
                                        " < offsets[" + std::to_string(i) +
                                        "] = " + std::to_string(offsets[i]));
    }
    if (static_cast<std::uint64_t>(offsets[n]) != n_rows)
        throw std::invalid_argument(std::string(what) + " offsets must end at the number of token rows (" +
                                    std::to_string(n_rows) + "), got " + std::to_string(offsets[n]));
}

detail::RowMaxFn choose_kernel(DType dtype, simd::Isa isa) {
    switch (isa) {
#ifdef CROSSRANK_HAVE_AVX512BF16
        case simd::Isa::avx512bf16:
            if (dtype == DType::bf16) return detail::rowmax_avx512bf16;
#ifdef CROSSRANK_HAVE_AVX512
            return detail::rowmax_avx512;
#else
            break;
#endif
#endif
#ifdef CROSSRANK_HAVE_AVX512
        case simd::Isa::avx512:
        case simd::Isa::avx512fp16:
            return detail::rowmax_avx512;
#endif
#ifdef CROSSRANK_HAVE_AVX2
        case simd::Isa::avx2:
            return detail::rowmax_avx2;
#endif
        default:
            break;
    }
    return detail::rowmax_scalar;
}

}  // namespace

const char* dtype_name(DType dtype) {
    switch (dtype) {
        case DType::fp32:
            return "fp32";
        case DType::fp16:
            return "fp16";
        case DType::bf16:
            return "bf16";
    }
    return "unknown";
}

DType dtype_from_name(const std::string& name) {
    if (name == "fp32") return DType::fp32;
    if (name == "fp16") return DType::fp16;
    if (name == "bf16") return DType::bf16;
    throw std::invalid_argument("unknown storage dtype '" + name + "'; expected one of: fp32, fp16, bf16");
}

std::size_t element_size(DType dtype) { return dtype == DType::fp32 ? 4 : 2; }

std::size_t row_stride(std::size_t dim, DType dtype) { return dtype == DType::fp32 ? dim : round_up(dim, 2); }

std::string kernel_name(DType dtype, simd::Isa isa) {
    detail::RowMaxFn fn = choose_kernel(dtype, isa);
    std::string name = "scalar";
#ifdef CROSSRANK_HAVE_AVX2
    if (fn == detail::rowmax_avx2) name = "avx2";
#endif
#ifdef CROSSRANK_HAVE_AVX512
    if (fn == detail::rowmax_avx512) name = "avx512";
#endif
#ifdef CROSSRANK_HAVE_AVX512BF16
    if (fn == detail::rowmax_avx512bf16) name = "avx512bf16-dpbf16";
#endif
    (void)fn;  // unused in a scalar-only build (e.g. ARM)
    return name + "/" + dtype_name(dtype);
}

void validate(const DocsView& docs) {
    if (docs.dim == 0) throw std::invalid_argument("document vectors must have dim >= 1, got 0");
    if (docs.stride != row_stride(docs.dim, docs.dtype))
        throw std::invalid_argument("packed row stride must be " +
                                    std::to_string(row_stride(docs.dim, docs.dtype)) + " for dim " +
                                    std::to_string(docs.dim) + " and dtype " + dtype_name(docs.dtype) +
                                    ", got " + std::to_string(docs.stride));
    if (docs.data == nullptr && docs.n_rows > 0)
        throw std::invalid_argument("packed document buffer is missing");
    check_offsets(docs.offsets, docs.n_docs, docs.n_rows, "document");
}

void pack(const float* src, std::size_t n_rows, std::size_t dim, DType dtype, bool normalize, void* dst,
          int num_threads) {
    if (dim == 0) throw std::invalid_argument("token vectors must have dim >= 1, got 0");
    const std::size_t stride = row_stride(dim, dtype);
    const std::size_t chunk = std::max<std::size_t>(1, (1u << 16) / (dim + 1));
    parallel_for(
        n_rows, n_rows * dim < (1u << 18) ? 1 : num_threads, chunk, [&](std::size_t b, std::size_t e) {
            std::vector<float> row(dim);
            for (std::size_t r = b; r < e; ++r) {
                const float* s = src + r * dim;
                double norm2 = 0.0;
                for (std::size_t k = 0; k < dim; ++k) {
                    if (!std::isfinite(s[k]))
                        throw std::invalid_argument(
                            "token vector row " + std::to_string(r) + " holds a NaN or infinity at column " +
                            std::to_string(k) + "; clean the embeddings before packing");
                    norm2 += static_cast<double>(s[k]) * s[k];
                }
                const double scale = (normalize && norm2 > 0.0) ? 1.0 / std::sqrt(norm2) : 1.0;
                for (std::size_t k = 0; k < dim; ++k)
                    row[k] = normalize ? static_cast<float>(s[k] * scale) : s[k];
                switch (dtype) {
                    case DType::fp32:
                        std::memcpy(static_cast<float*>(dst) + r * stride, row.data(), dim * sizeof(float));
                        break;
                    case DType::fp16: {
                        auto* d = static_cast<std::uint16_t*>(dst) + r * stride;
                        for (std::size_t k = 0; k < dim; ++k) {
                            if (std::fabs(row[k]) >= 65520.0f)
                                throw std::invalid_argument("token vector row " + std::to_string(r) +
                                                            " value " + std::to_string(row[k]) +
                                                            " overflows fp16 (max 65504); normalize or use "
                                                            "dtype='bf16'/'fp32'");
                            d[k] = detail::fp32_to_fp16(row[k]);
                        }
                        for (std::size_t k = dim; k < stride; ++k) d[k] = 0;
                        break;
                    }
                    case DType::bf16: {
                        auto* d = static_cast<std::uint16_t*>(dst) + r * stride;
                        for (std::size_t k = 0; k < dim; ++k) {
                            d[k] = detail::fp32_to_bf16(row[k]);
                            if ((d[k] & 0x7f80u) == 0x7f80u)
                                throw std::invalid_argument("token vector row " + std::to_string(r) +
                                                            " overflows bf16; use dtype='fp32'");
                        }
                        for (std::size_t k = dim; k < stride; ++k) d[k] = 0;
                        break;
                    }
                }
            }
        });
}

void unpack(const void* src, std::size_t n_rows, std::size_t dim, DType dtype, float* dst) {
    const std::size_t stride = row_stride(dim, dtype);
    for (std::size_t r = 0; r < n_rows; ++r) {
        for (std::size_t k = 0; k < dim; ++k) {
            float v;
            if (dtype == DType::fp32)
                v = static_cast<const float*>(src)[r * stride + k];
            else if (dtype == DType::fp16)
                v = detail::fp16_to_fp32(static_cast<const std::uint16_t*>(src)[r * stride + k]);
            else
                v = detail::bf16_to_fp32(static_cast<const std::uint16_t*>(src)[r * stride + k]);
            dst[r * dim + k] = v;
        }
    }
}

void score(const float* queries, const std::int64_t* query_offsets, std::size_t n_queries, std::size_t dim,
           const DocsView& docs, const std::int64_t* doc_ids, std::size_t n_out, float* out,
           int num_threads) {
    validate(docs);
    if (dim != docs.dim)
        throw std::invalid_argument("query vectors have dim " + std::to_string(dim) +
                                    " but the documents have dim " + std::to_string(docs.dim) +
                                    "; encode both with the same model");
    if (n_queries == 0) return;
    check_offsets(query_offsets, n_queries, static_cast<std::size_t>(query_offsets[n_queries]), "query");
    if (doc_ids == nullptr && n_out != docs.n_docs)
        throw std::invalid_argument("without doc_ids the output must have one slot per document");
    if (doc_ids != nullptr) {
        for (std::size_t j = 0; j < n_out; ++j)
            if (doc_ids[j] < 0 || static_cast<std::uint64_t>(doc_ids[j]) >= docs.n_docs)
                throw std::out_of_range("doc_ids[" + std::to_string(j) + "] = " + std::to_string(doc_ids[j]) +
                                        " is out of range for " + std::to_string(docs.n_docs) + " documents");
    }
    const std::size_t total_q = static_cast<std::size_t>(query_offsets[n_queries]);
    for (std::size_t x = 0; x < total_q * dim; ++x)
        if (!std::isfinite(queries[x]))
            throw std::invalid_argument("query token " + std::to_string(x / dim) +
                                        " holds a NaN or infinity at column " + std::to_string(x % dim));
    if (n_out == 0) return;

    const simd::Isa isa = simd::active_isa();
    const detail::RowMaxFn kernel = choose_kernel(docs.dtype, isa);
    bool dpbf16 = false;
#ifdef CROSSRANK_HAVE_AVX512BF16
    dpbf16 = kernel == detail::rowmax_avx512bf16;
#endif
    const std::size_t stride = docs.stride;

    // Prepare every query once: transposed, zero padded, 64-byte aligned.
    std::vector<detail::PreparedQuery> prep(n_queries);
    std::vector<Aligned<float>> qt_bufs;
    std::vector<Aligned<std::uint32_t>> qb_bufs;
    std::vector<Aligned<float>> qr_bufs;
    qr_bufs.reserve(n_queries);
    qt_bufs.reserve(n_queries);
    qb_bufs.reserve(n_queries);
    std::size_t max_nq_pad = 16;
    for (std::size_t b = 0; b < n_queries; ++b) {
        auto& p = prep[b];
        p.nq = static_cast<std::size_t>(query_offsets[b + 1] - query_offsets[b]);
        p.nq_pad = std::max<std::size_t>(16, round_up(p.nq, 16));
        p.dim = dim;
        p.stride = stride;
        max_nq_pad = std::max(max_nq_pad, p.nq_pad);
        const float* q = queries + static_cast<std::size_t>(query_offsets[b]) * dim;
        qt_bufs.emplace_back(stride * p.nq_pad);
        float* qt = qt_bufs.back().get();
        for (std::size_t i = 0; i < p.nq; ++i)
            for (std::size_t k = 0; k < dim; ++k) qt[k * p.nq_pad + i] = q[i * dim + k];
        p.qt = qt;
        p.dim_pad = round_up(dim, 16);
        qr_bufs.emplace_back(detail::kShortQuery * p.dim_pad);
        float* qr = qr_bufs.back().get();
        for (std::size_t i = 0; i < std::min(p.nq, detail::kShortQuery); ++i)
            std::memcpy(qr + i * p.dim_pad, q + i * dim, dim * sizeof(float));
        p.qrow = qr;
        if (dpbf16) {
            qb_bufs.emplace_back((stride / 2) * p.nq_pad);
            std::uint32_t* qb = qb_bufs.back().get();
            for (std::size_t pr = 0; pr < stride / 2; ++pr)
                for (std::size_t i = 0; i < p.nq; ++i) {
                    const std::uint32_t lo = detail::fp32_to_bf16(qt[(2 * pr) * p.nq_pad + i]);
                    const std::uint32_t hi = detail::fp32_to_bf16(qt[(2 * pr + 1) * p.nq_pad + i]);
                    qb[pr * p.nq_pad + i] = lo | (hi << 16);
                }
            p.qt_bf16 = qb;
        }
    }

    // Skip the thread start-up for small jobs (~1M multiply-adds, tens of microseconds).
    std::size_t work_rows = 0;
    if (doc_ids == nullptr) {
        work_rows = docs.n_rows;
    } else {
        for (std::size_t j = 0; j < n_out && work_rows < (1u << 20); ++j)
            work_rows += static_cast<std::size_t>(docs.offsets[doc_ids[j] + 1] - docs.offsets[doc_ids[j]]);
    }
    const double work =
        static_cast<double>(work_rows) * static_cast<double>(total_q) * static_cast<double>(dim);
    const int threads = work < 1.0e6 ? 1 : resolve_num_threads(num_threads);
    const std::size_t chunk = std::max<std::size_t>(1, n_out / (static_cast<std::size_t>(threads) * 8));
    const std::size_t esize = element_size(docs.dtype);

    parallel_for(n_out, threads, chunk, [&](std::size_t begin, std::size_t end) {
        Aligned<float> scratch(detail::kScratchRows * round_up(stride, 16) + max_nq_pad);
        Aligned<float> rowmax(max_nq_pad);
        for (std::size_t j = begin; j < end; ++j) {
            const std::size_t d = doc_ids ? static_cast<std::size_t>(doc_ids[j]) : j;
            const std::size_t row0 = static_cast<std::size_t>(docs.offsets[d]);
            const std::size_t n_tokens = static_cast<std::size_t>(docs.offsets[d + 1]) - row0;
            const void* doc = static_cast<const char*>(docs.data) + row0 * stride * esize;
            for (std::size_t b = 0; b < n_queries; ++b) {
                const auto& p = prep[b];
                double sum = 0.0;
                if (n_tokens > 0 && p.nq > 0) {
                    kernel(p, doc, n_tokens, docs.dtype, rowmax.get(), scratch.get());
                    for (std::size_t i = 0; i < p.nq; ++i) sum += rowmax.get()[i];
                }
                out[b * n_out + j] = static_cast<float>(sum);
            }
        }
    });
}

namespace detail {

// Portable kernel: one document token at a time against all query lanes. The inner loop over
// query lanes has no cross-iteration dependency, so compilers vectorise it without relaxed floating-point
// flags.
void rowmax_scalar(const PreparedQuery& q, const void* doc, std::size_t n_tokens, DType dtype, float* rowmax,
                   float* scratch) {
    const std::size_t nqp = q.nq_pad, dim = q.dim, stride = q.stride;
    float* row = scratch;
    float* acc = scratch + round_up(stride, 16);
    for (std::size_t i = 0; i < nqp; ++i) rowmax[i] = -std::numeric_limits<float>::infinity();
    for (std::size_t t = 0; t < n_tokens; ++t) {
        const float* r;
        if (dtype == DType::fp32) {
            r = static_cast<const float*>(doc) + t * stride;
        } else {
            const auto* h = static_cast<const std::uint16_t*>(doc) + t * stride;
            if (dtype == DType::fp16)
                for (std::size_t k = 0; k < dim; ++k) row[k] = fp16_to_fp32(h[k]);
            else
                for (std::size_t k = 0; k < dim; ++k) row[k] = bf16_to_fp32(h[k]);
            r = row;
        }
        for (std::size_t i = 0; i < nqp; ++i) acc[i] = 0.0f;
        for (std::size_t k = 0; k < dim; ++k) {
            const float dk = r[k];
            const float* qk = q.qt + k * nqp;
            for (std::size_t i = 0; i < nqp; ++i) acc[i] += qk[i] * dk;
        }
        for (std::size_t i = 0; i < nqp; ++i) rowmax[i] = acc[i] > rowmax[i] ? acc[i] : rowmax[i];
    }
}

}  // namespace detail
}  // namespace crossrank::maxsim
