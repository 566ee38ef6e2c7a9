// BM25 scoring core: postings in CSR form, precomputed impacts, exact batch top-k.
//
// Formula (Kamphuis, de Vries, Boytsov, Lin, "Which BM25 Do You Mean? A Large-Scale Reproducibility
// Study of Scoring Variants", ECIR 2020; variants as the bm25s library defines them):
//
//   score(q, d) = sum over query tokens t (with repetition) of  idf(t) * tfc(tf(t, d), |d|)
//
//   N = documents, df = documents containing t, L = |d| / avgdl (|d| = tokens after analysis),
//   variant     idf(t)                              tfc(tf, |d|)
//   robertson   log(max(1, (N - df + .5)/(df + .5)))  tf / (tf + k1 (1 - b + b L))
//   lucene      log(1 + (N - df + .5)/(df + .5))      tf / (tf + k1 (1 - b + b L))
//   atire       log(N / df)                           tf (k1 + 1) / (tf + k1 (1 - b + b L))
//   bm25l       log((N + 1)/(df + .5))                (k1 + 1)(c + delta) / (k1 + c + delta),
//                                                     c = tf / (1 - b + b L)
//   bm25+       log((N + 1)/df)                       tf (k1 + 1) / (tf + k1 (1 - b + b L)) + delta
//
// bm25l and bm25+ give every document a positive tfc(0) = "non-occurrence" score for each query
// term it lacks. It does not depend on |d|, so it is kept per term (nonoccurrence[t] =
// idf(t) tfc(0)), postings hold idf * (tfc(tf) - tfc(0)), and a query adds the sum of its terms'
// non-occurrence scores to every document. Query tokens missing from the vocabulary score 0; a term
// with df = 0 has idf 0. Degenerate 0/0 tfc values (k1 = 0 with tf = 0; an empty document with
// b = 1 in bm25l) are 0.
//
// Precision policy: idf, tfc and their product are computed in float64 and rounded once to float32
// per posting ("impact"). A query accumulates float32 impacts in query-token order, then adds the
// float32 rounding of the float64 sum of its non-occurrence scores. Scores agree with a float64
// evaluation of the formulas to about 1e-6 relative; the same index and query give bit-identical
// scores whatever the thread count, because each query is scored by one thread in a fixed order.
//
// Memory layout (CSR by term): term t's postings are [term_ptr[t], term_ptr[t+1]) in `docs`
// (uint32 document index, increasing), `tfs` (uint32 term frequency) and `impacts` (float32).
// Document lengths are uint32 token counts. All arrays are plain contiguous memory so that
// NumPy arrays and memory maps can be handed in without copying (IndexView).
//
// Top-k: results are exactly the first min(k, N) entries of all N document scores sorted by
// (-score, document index) -- ties and documents that match no query term included, so an empty
// query returns documents 0..k-1 with score 0 (or the non-occurrence score for bm25l / bm25+).
// Per query (one thread each), impacts are added into a dense per-worker float32 accumulator.
// A query with many postings (>= N/4) is "dense": the documents of its rarest terms seed the
// selection (TopKFloat, topk.hpp) so a high bar rejects most documents of the following scan,
// which also resets the accumulator. Otherwise it is "sparse": a touch list records documents as
// they first get a positive impact, only they (plus the first k untouched documents) are ranked,
// and only they are reset. Both modes add the same impacts in the same order, so they give the
// same scores and the same results.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace crossrank::bm25 {

enum class Variant { robertson, lucene, atire, bm25l, bm25plus };

const char* variant_name(Variant v);
// Parses "robertson", "lucene", "atire", "bm25l", "bm25+"; std::invalid_argument otherwise.
Variant variant_from_name(const std::string& name);

struct Params {
    Variant variant = Variant::lucene;
    double k1 = 1.5;
    double b = 0.75;
    double delta = 0.5;  // used by bm25l and bm25+ only
};

// Throws std::invalid_argument unless k1 is finite and >= 0, b in [0, 1], delta finite and >= 0.
void validate(const Params& p);

// The float64 formulas of the table above (reference and impact computation).
double idf(Variant v, std::uint64_t df, std::uint64_t n_docs) noexcept;
double tfc(const Params& p, double tf, double doc_len, double avg_doc_len) noexcept;

struct Postings {
    std::vector<std::int64_t> term_ptr;   // n_terms + 1
    std::vector<std::uint32_t> docs;      // nnz
    std::vector<std::uint32_t> tfs;       // nnz
    std::vector<std::uint32_t> doc_lens;  // n_docs
};

// Read-only CSR postings held elsewhere (the base of an incremental build).
struct PostingsView {
    std::size_t n_terms = 0;
    std::size_t n_docs = 0;
    const std::int64_t* term_ptr = nullptr;  // n_terms + 1 (may be null when n_terms == 0)
    const std::uint32_t* docs = nullptr;
    const std::uint32_t* tfs = nullptr;
    const std::uint32_t* doc_lens = nullptr;
};

// Builds postings of base's documents followed by new documents given as term ids
// (doc i = term_ids[doc_offsets[i], doc_offsets[i+1])), for a vocabulary of n_terms >=
// base.n_terms terms. The result equals building all documents at once. Throws
// std::invalid_argument on offsets that do not increase from 0 or a term id >= n_terms.
Postings build_postings(const PostingsView& base, std::size_t n_terms, const std::uint32_t* term_ids,
                        const std::int64_t* doc_offsets, std::size_t n_new_docs);

// Fills impacts[nnz] and nonoccurrence[n_terms] (all zero unless bm25l / bm25+).
void compute_impacts(const Params& p, const PostingsView& postings, float* impacts, float* nonoccurrence,
                     int num_threads);

// Checks everything search relies on; throws crossrank::StateError naming the bad array:
// term_ptr non-decreasing from 0 to nnz, docs < n_docs and increasing within a term, tfs >= 1,
// impacts and nonoccurrence finite and >= 0. Null docs / tfs are not checked (packed postings
// have their own check).
void validate_index(const PostingsView& postings, std::size_t nnz, const float* impacts,
                    const float* nonoccurrence);

// Block-max metadata (derived from the impacts, never saved, so it is exact for whatever impacts
// an index holds, after `add` or for a shard): term t's postings are cut into blocks of
// kBlockSize postings from term_ptr[t] on (the last one may be shorter); its blocks are
// [block_ptr[t], block_ptr[t+1]) in block_max (the largest impact of the block) and block_last
// (the block's last document index); term_max[t] is the largest impact of term t (0 without
// postings).
constexpr std::size_t kBlockSize = 64;

struct BlockMax {
    std::vector<std::int64_t> block_ptr;    // n_terms + 1
    std::vector<float> term_max;            // n_terms
    std::vector<float> block_max;           // n_blocks
    std::vector<std::uint32_t> block_last;  // n_blocks
};

struct IndexView {
    std::size_t n_docs = 0;
    std::size_t n_terms = 0;
    const std::int64_t* term_ptr = nullptr;
    // Documents either plain (docs, nnz) or packed (bm25_codec.hpp: blocks of kBlockSize postings,
    // documents as 0/1/2/4-byte offsets back from each block's last; packed_data non-null). Search
    // decodes packed postings block by block; plain ones are the reference it is tested against.
    const std::uint32_t* docs = nullptr;
    const std::int64_t* packed_block_ptr = nullptr;    // n_terms + 1
    const std::uint32_t* packed_block_last = nullptr;  // n_blocks
    const std::uint64_t* packed_block_off = nullptr;   // n_blocks + 1
    const std::uint8_t* packed_data = nullptr;
    std::size_t packed_size = 0;
    const float* impacts = nullptr;
    const float* nonoccurrence = nullptr;
    // Block-max metadata (build_block_max); a null block_ptr means exhaustive scoring only.
    const std::int64_t* block_ptr = nullptr;
    const float* term_max = nullptr;
    const float* block_max = nullptr;
    const std::uint32_t* block_last = nullptr;
};

// The block-max metadata of an index's postings and impacts (ix.block_* are ignored).
BlockMax build_block_max(const IndexView& ix, int num_threads);

// How search finds a query's top-k. Every strategy returns the same documents and bit-identical
// scores (the exact top-k rule below); they differ only in speed.
//   exhaustive: add every posting of every query term into a dense accumulator (the reference).
//   pruned:     block-max MaxScore, document at a time (bm25_pruned.cpp). Each candidate's score
//               is summed in query-token order from float32 impacts, exactly like the exhaustive
//               path; upper bounds only decide which documents are skipped, with a margin that
//               covers float32 rounding. When fewer than k documents score above the non-occurrence
//               score (documents matching no term could then enter), the query is scored
//               exhaustively instead.
//   automatic:  pruned for large corpora and small k, exhaustive otherwise.
enum class Strategy { automatic, exhaustive, pruned };

namespace detail {
struct Scratch;  // one worker's working memory (bm25.cpp)
}  // namespace detail

// search's per-worker working memory, kept from one call to the next. The exhaustive path needs a
// dense accumulator of n_docs floats, all zero between queries: made afresh for every call it costs
// an allocation and a zero fill of 4 n_docs bytes per call (about 0.25 ms at a million documents,
// more than a pruned top-10 query itself), which a service that sends one query per call would pay
// each time. A pool keeps up to one scratch per worker that ever ran at the same time.
// Thread-safe: concurrent searches on one pool each take their own scratch (a mutex guards only the
// hand-over). A scratch whose query threw is dropped, never returned, so a pooled accumulator is
// always all zero.
class ScratchPool {
  public:
    ScratchPool();
    ~ScratchPool();
    ScratchPool(const ScratchPool&) = delete;
    ScratchPool& operator=(const ScratchPool&) = delete;

    // A scratch for an index of n_docs documents and top-kk selection (pooled or new).
    std::unique_ptr<detail::Scratch> take(std::size_t n_docs, std::size_t kk);
    // Back to the pool (its accumulator must be all zero).
    void give(std::unique_ptr<detail::Scratch> scratch);
    // Scratches held now.
    std::size_t size() const;

  private:
    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<detail::Scratch>> free_;
};

// Top-min(k, n_docs) of each query q = query_terms[query_offsets[q], query_offsets[q+1]) into
// out_docs / out_scores (row-major n_queries x min(k, n_docs)). One query per task on num_threads
// threads. Working memory comes from `pool` when given (keep one per index, see ScratchPool), else
// it is made for this call. Throws std::invalid_argument for k <= 0, n_docs == 0, a query term >=
// n_terms, or Strategy::pruned without block-max metadata.
void search(const IndexView& index, const std::uint32_t* query_terms, const std::int64_t* query_offsets,
            std::size_t n_queries, std::size_t k, int num_threads, std::int64_t* out_docs, float* out_scores,
            Strategy strategy = Strategy::automatic, ScratchPool* pool = nullptr);

// All n_docs scores of one query (the same float32 arithmetic as search).
void score_all(const IndexView& index, const std::uint32_t* query_terms, std::size_t n_query_terms,
               float* out_scores);

}  // namespace crossrank::bm25
