// MaxSim: ColBERT late-interaction scoring (Khattab & Zaharia 2020, "ColBERT: Efficient and
// Effective Passage Search via Contextualized Late Interaction over BERT", eq. 3).
//
// Formula
// -------
//   score(q, d) = sum_{i < nq} max_{j < n_d} <q_i, d_j>
// for a query of nq token vectors q_i and a document of n_d token vectors d_j, all of dimension
// `dim` (ColBERT L2-normalises both sides, so each dot product is a cosine). Edge cases, defined:
//   * an empty document (n_d = 0) scores exactly 0.0 (no evidence; finite so it stays JSON-safe);
//   * an empty query (nq = 0, e.g. every token masked) scores 0.0 against every document;
//   * NaN or infinity are rejected with std::invalid_argument when documents are packed and when a
//     query is scored, so they never reach a max (whose NaN behaviour differs between ISAs).
//
// Precision policy
// ----------------
// Dot products always accumulate in fp32 (one fp32 accumulator per (query token, doc token) pair,
// summed over k = 0..dim-1 in order; FMA on SIMD paths, separate multiply and add on the scalar
// path). The per-document sum of the nq row maxima is taken in double, in query-token order, and
// rounded to fp32 once. Document storage is one of:
//   fp32  exact storage;                                 typical relative error ~1e-6
//   fp16  IEEE binary16, round-to-nearest-even at pack;  |value| > 65504 is rejected at pack time
//   bf16  bfloat16, round-to-nearest-even at pack
// fp16/bf16 documents are widened to fp32 before the FMA on every path except `avx512bf16` with
// bf16 storage, which uses VDPBF16PS: the query is then rounded to bf16 too (products of two bf16
// values are exact in fp32; denormals flush to zero). Measured tolerances are in tests/test_maxsim.py.
// int8 storage (with a per-vector scale) is not implemented: with ColBERT's usual 32 augmented query
// tokens the kernels are compute bound (bench/RESULTS.md), so fewer bytes per element would not pay
// for the dequantisation; it could pay only in the memory-bound short-query regime (nq <= 8).
//
// Memory layout ("pack once, score many")
// ---------------------------------------
// All documents live in ONE contiguous buffer of `n_rows` token rows (callers allocate it 64-byte
// aligned); row r starts at element r * stride, stride = dim for fp32 and dim rounded up to even
// for fp16/bf16 (so a bf16 pair never straddles two rows), padding elements are zero. Document i
// owns rows [offsets[i], offsets[i+1]); offsets has n_docs + 1 int64 entries, offsets[0] = 0,
// non-decreasing, offsets[n_docs] = n_rows. The buffer is read only, so it may be memory-mapped.
//
// Kernel shape
// ------------
// A small GEMM + row max per document: the query is transposed once per call to [stride][nq_pad]
// (nq_pad = nq rounded up to 16, zero padded; 32 x 128 fp32 = 16 KB stays in L1), and a register
// tile of (up to 32 query tokens in SIMD lanes) x (NR document tokens, broadcast) accumulates over
// k. Each tile ends with a vertical max into the running per-query-token max, so there is no
// horizontal reduction in the hot loop. A tail tile repeats the document's last token instead of
// reading past it: a duplicate cannot change a max, so masking is exact and padding can never win.
// Short queries (nq <= 8) would waste most of those lanes, so they use a second kernel (AVX2 and
// AVX-512) with lanes along dim: NQ query rows x R document tokens of partial dot products, folded
// to scalars once per tile, with the next tile prefetched. This is the memory-bound regime (many
// documents, few query tokens) where fp16/bf16 storage pays off by halving the bytes streamed.
//
// ISA table (runtime dispatch through crossrank/simd.hpp; see kernel_name())
// ---------------------------------------------------------------------------
//   scalar      portable C++ (auto-vectorised over query lanes); every storage type; builds on ARM
//   avx2        AVX2 + FMA, 16 query lanes x 6 doc tokens; F16C widening for fp16, shift for bf16;
//               nq <= 8: the lanes-along-dim kernel
//   avx512      AVX-512F/BW/VL, 32 query lanes x 8 doc tokens; vcvtph2ps for fp16, shift for bf16;
//               nq <= 8: the lanes-along-dim kernel
//   avx512bf16  as avx512, plus VDPBF16PS (2 MACs per lane per instruction) for bf16 storage when
//               nq > 8
//   avx512fp16  uses the avx512 kernels (fp16 arithmetic would accumulate in fp16, see policy)
//   neon        uses the scalar kernel, which the compiler vectorises for NEON at -O3
//
// Threads: documents are split across crossrank::parallel_for workers; each document's score is
// computed by one thread in a fixed order, so results are bit-identical for 1 and N threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "crossrank/simd.hpp"

namespace crossrank::maxsim {

enum class DType : int { fp32 = 0, fp16 = 1, bf16 = 2 };

const char* dtype_name(DType dtype);
// Parses "fp32" | "fp16" | "bf16"; throws std::invalid_argument naming the valid choices.
DType dtype_from_name(const std::string& name);
std::size_t element_size(DType dtype);
// Elements per stored token row for this dim and storage type (see Memory layout).
std::size_t row_stride(std::size_t dim, DType dtype);

// A read-only view of packed documents (see Memory layout). Does not own memory.
struct DocsView {
    DType dtype = DType::fp32;
    const void* data = nullptr;  // n_rows * stride elements of dtype (fp16/bf16 as raw uint16)
    std::size_t n_rows = 0;
    std::size_t dim = 0;
    std::size_t stride = 0;
    const std::int64_t* offsets = nullptr;  // n_docs + 1 entries
    std::size_t n_docs = 0;
};

// Checks stride, offsets and sizes; throws std::invalid_argument saying what is wrong.
void validate(const DocsView& docs);

// Converts fp32 token rows src [n_rows, dim] (row-major) to packed rows in dst (n_rows * stride
// elements of dtype, stride = row_stride(dim, dtype); padding is zeroed), L2-normalising each row
// first when `normalize` (an all-zero row stays zero). Throws std::invalid_argument on NaN/inf
// input or an fp16 overflow.
void pack(const float* src, std::size_t n_rows, std::size_t dim, DType dtype, bool normalize, void* dst,
          int num_threads);

// Widens packed rows back to fp32 dst [n_rows, dim] (for inspection and tests).
void unpack(const void* src, std::size_t n_rows, std::size_t dim, DType dtype, float* dst);

// Scores n_queries queries against documents.
//   queries        fp32, all query token rows concatenated, [query_offsets[n_queries], dim]
//   query_offsets  n_queries + 1 int64 entries (same rules as document offsets)
//   doc_ids        nullptr to score every document (n_out = docs.n_docs), else n_out indices into
//                  docs (repeats allowed); out-of-range ids throw std::out_of_range
//   out            fp32 [n_queries, n_out], row-major
// Throws std::invalid_argument on NaN/inf in a query or inconsistent sizes.
void score(const float* queries, const std::int64_t* query_offsets, std::size_t n_queries, std::size_t dim,
           const DocsView& docs, const std::int64_t* doc_ids, std::size_t n_out, float* out, int num_threads);

// Name of the kernel score() uses for this storage type under `isa`, e.g. "avx512bf16-dpbf16".
std::string kernel_name(DType dtype, simd::Isa isa);

}  // namespace crossrank::maxsim
