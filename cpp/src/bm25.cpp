#include "crossrank/bm25.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "bm25_codec.hpp"
#include "bm25_pruned.hpp"
#include "bm25_scan.hpp"
#include "crossrank/errors.hpp"
#include "crossrank/parallel.hpp"
#include "crossrank/topk.hpp"

namespace crossrank::bm25 {

const char* variant_name(Variant v) {
    switch (v) {
        case Variant::robertson:
            return "robertson";
        case Variant::lucene:
            return "lucene";
        case Variant::atire:
            return "atire";
        case Variant::bm25l:
            return "bm25l";
        case Variant::bm25plus:
            return "bm25+";
    }
    return "?";
}

Variant variant_from_name(const std::string& name) {
    for (Variant v : {Variant::robertson, Variant::lucene, Variant::atire, Variant::bm25l, Variant::bm25plus})
        if (name == variant_name(v)) return v;
    throw std::invalid_argument("unknown BM25 variant '" + name +
                                "': expected one of 'robertson', 'lucene', 'atire', 'bm25l', 'bm25+'");
}

void validate(const Params& p) {
    if (!std::isfinite(p.k1) || p.k1 < 0)
        throw std::invalid_argument("k1 must be a finite number >= 0 (typical 0.9 to 2.0), got " +
                                    std::to_string(p.k1));
    if (!(p.b >= 0 && p.b <= 1))
        throw std::invalid_argument("b must be in [0, 1] (typical 0.4 to 0.75), got " + std::to_string(p.b));
    if (!std::isfinite(p.delta) || p.delta < 0)
        throw std::invalid_argument("delta must be a finite number >= 0 (typical 0.5 to 1.0), got " +
                                    std::to_string(p.delta));
}

double idf(Variant v, std::uint64_t df_, std::uint64_t n_) noexcept {
    if (df_ == 0) return 0.0;
    const double df = static_cast<double>(df_), n = static_cast<double>(n_);
    switch (v) {
        case Variant::robertson:
            return std::log(std::max(1.0, (n - df + 0.5) / (df + 0.5)));
        case Variant::lucene:
            return std::log(1.0 + (n - df + 0.5) / (df + 0.5));
        case Variant::atire:
            return std::log(n / df);
        case Variant::bm25l:
            return std::log((n + 1.0) / (df + 0.5));
        case Variant::bm25plus:
            return std::log((n + 1.0) / df);
    }
    return 0.0;
}

double tfc(const Params& p, double tf, double doc_len, double avg_doc_len) noexcept {
    // avg_doc_len == 0 only when every document is empty; then every tf is 0 too and the length
    // ratio is taken as 1 (no normalisation) instead of 0/0.
    const double ratio = avg_doc_len > 0 ? doc_len / avg_doc_len : 1.0;
    const double norm = 1.0 - p.b + p.b * ratio;
    switch (p.variant) {
        case Variant::robertson:
        case Variant::lucene: {
            const double den = p.k1 * norm + tf;
            return den > 0 ? tf / den : 0.0;
        }
        case Variant::atire: {
            const double den = tf + p.k1 * norm;
            return den > 0 ? tf * (p.k1 + 1.0) / den : 0.0;
        }
        case Variant::bm25l: {
            const double c = norm > 0 ? tf / norm : 0.0;
            const double den = p.k1 + c + p.delta;
            return den > 0 ? (p.k1 + 1.0) * (c + p.delta) / den : 0.0;
        }
        case Variant::bm25plus: {
            const double den = p.k1 * norm + tf;
            return (den > 0 ? (p.k1 + 1.0) * tf / den : 0.0) + p.delta;
        }
    }
    return 0.0;
}

Postings build_postings(const PostingsView& base, std::size_t n_terms, const std::uint32_t* term_ids,
                        const std::int64_t* doc_offsets, std::size_t n_new_docs) {
    if (n_terms < base.n_terms)
        throw std::invalid_argument("vocabulary shrank: " + std::to_string(n_terms) + " < " +
                                    std::to_string(base.n_terms));
    const std::size_t n_docs = base.n_docs + n_new_docs;
    if (n_docs >= 0xFFFFFFFFull) throw std::invalid_argument("too many documents (max 2^32 - 2)");
    if (doc_offsets[0] != 0) throw std::invalid_argument("document offsets must start at 0");
    for (std::size_t d = 0; d < n_new_docs; ++d) {
        if (doc_offsets[d + 1] < doc_offsets[d])
            throw std::invalid_argument("document offsets decrease at document " + std::to_string(d));
        if (doc_offsets[d + 1] - doc_offsets[d] > 0xFFFFFFFFll)
            throw std::invalid_argument("document " + std::to_string(d) + " has more than 2^32 - 1 tokens");
    }
    const std::size_t n_tokens = static_cast<std::size_t>(doc_offsets[n_new_docs]);
    for (std::size_t i = 0; i < n_tokens; ++i)
        if (term_ids[i] >= n_terms)
            throw std::invalid_argument("term id " + std::to_string(term_ids[i]) + " >= vocabulary size " +
                                        std::to_string(n_terms));

    // Pass 1: document frequency of each term among the new documents.
    std::vector<std::uint32_t> last(n_terms, 0xFFFFFFFFu);
    std::vector<std::int64_t> df(n_terms, 0);
    for (std::size_t d = 0; d < n_new_docs; ++d) {
        for (std::int64_t i = doc_offsets[d]; i < doc_offsets[d + 1]; ++i) {
            const std::uint32_t t = term_ids[i];
            if (last[t] != d) {
                last[t] = static_cast<std::uint32_t>(d);
                ++df[t];
            }
        }
    }
    Postings out;
    out.term_ptr.assign(n_terms + 1, 0);
    for (std::size_t t = 0; t < n_terms; ++t) {
        const std::int64_t old = t < base.n_terms ? base.term_ptr[t + 1] - base.term_ptr[t] : 0;
        out.term_ptr[t + 1] = out.term_ptr[t] + old + df[t];
    }
    const std::size_t nnz = static_cast<std::size_t>(out.term_ptr[n_terms]);
    out.docs.resize(nnz);
    out.tfs.resize(nnz);
    // Pass 2: base postings first (lower document indices), then the new documents in order, so
    // every term's postings stay sorted by document.
    std::vector<std::int64_t> head(n_terms);
    for (std::size_t t = 0; t < n_terms; ++t) {
        head[t] = out.term_ptr[t];
        if (t < base.n_terms) {
            const std::int64_t b0 = base.term_ptr[t], b1 = base.term_ptr[t + 1];
            std::copy(base.docs + b0, base.docs + b1, out.docs.begin() + head[t]);
            std::copy(base.tfs + b0, base.tfs + b1, out.tfs.begin() + head[t]);
            head[t] += b1 - b0;
        }
    }
    out.doc_lens.resize(n_docs);
    if (base.n_docs) std::copy(base.doc_lens, base.doc_lens + base.n_docs, out.doc_lens.begin());
    std::vector<std::uint32_t> count(n_terms, 0);
    for (std::size_t d = 0; d < n_new_docs; ++d) {
        const std::uint32_t doc = static_cast<std::uint32_t>(base.n_docs + d);
        out.doc_lens[doc] = static_cast<std::uint32_t>(doc_offsets[d + 1] - doc_offsets[d]);
        for (std::int64_t i = doc_offsets[d]; i < doc_offsets[d + 1]; ++i) ++count[term_ids[i]];
        for (std::int64_t i = doc_offsets[d]; i < doc_offsets[d + 1]; ++i) {
            const std::uint32_t t = term_ids[i];
            if (count[t]) {
                out.docs[head[t]] = doc;
                out.tfs[head[t]] = count[t];
                ++head[t];
                count[t] = 0;
            }
        }
    }
    return out;
}

void compute_impacts(const Params& p, const PostingsView& ix, float* impacts, float* nonoccurrence,
                     int num_threads) {
    validate(p);
    std::uint64_t total_len = 0;
    for (std::size_t d = 0; d < ix.n_docs; ++d) total_len += ix.doc_lens[d];
    const double avgdl = ix.n_docs ? static_cast<double>(total_len) / static_cast<double>(ix.n_docs) : 0.0;
    const bool lower_bound = p.variant == Variant::bm25l || p.variant == Variant::bm25plus;
    // tfc(0) does not depend on the document length for bm25l / bm25+ (see the header).
    const double tfc0 = lower_bound ? tfc(p, 0.0, avgdl, avgdl) : 0.0;
    parallel_for(ix.n_terms, num_threads, 1024, [&](std::size_t begin, std::size_t end) {
        for (std::size_t t = begin; t < end; ++t) {
            const std::int64_t j0 = ix.term_ptr[t], j1 = ix.term_ptr[t + 1];
            const double w = idf(p.variant, static_cast<std::uint64_t>(j1 - j0), ix.n_docs);
            const double base = w * tfc0;
            nonoccurrence[t] = static_cast<float>(base);
            for (std::int64_t j = j0; j < j1; ++j) {
                const double s = w * tfc(p, ix.tfs[j], ix.doc_lens[ix.docs[j]], avgdl) - base;
                impacts[j] = static_cast<float>(s > 0 ? s : 0.0);
            }
        }
    });
}

void validate_index(const PostingsView& ix, std::size_t nnz, const float* impacts,
                    const float* nonoccurrence) {
    auto fail = [](const std::string& what) { throw StateError(what); };
    if (ix.term_ptr[0] != 0 || ix.term_ptr[ix.n_terms] != static_cast<std::int64_t>(nnz))
        fail("term_ptr must start at 0 and end at the number of postings (" + std::to_string(nnz) + ")");
    for (std::size_t t = 0; t < ix.n_terms; ++t) {
        const std::int64_t j0 = ix.term_ptr[t], j1 = ix.term_ptr[t + 1];
        if (j1 < j0) fail("term_ptr decreases at term " + std::to_string(t));
        if (!(nonoccurrence[t] >= 0) || !std::isfinite(nonoccurrence[t]))
            fail("nonoccurrence[" + std::to_string(t) + "] is negative or not finite");
        for (std::int64_t j = j0; j < j1; ++j) {
            if (ix.docs && ix.docs[j] >= ix.n_docs)
                fail("docs[" + std::to_string(j) + "] = " + std::to_string(ix.docs[j]) + " is not < " +
                     std::to_string(ix.n_docs) + " documents");
            if (ix.docs && j > j0 && ix.docs[j] <= ix.docs[j - 1])
                fail("docs of term " + std::to_string(t) + " are not increasing");
            if (ix.tfs && ix.tfs[j] == 0) fail("tfs[" + std::to_string(j) + "] is 0");
            if (!(impacts[j] >= 0) || !std::isfinite(impacts[j]))
                fail("impacts[" + std::to_string(j) + "] is negative or not finite");
        }
    }
}

BlockMax build_block_max(const IndexView& ix, int num_threads) {
    BlockMax out;
    out.block_ptr.assign(ix.n_terms + 1, 0);
    out.term_max.assign(ix.n_terms, 0.0f);
    for (std::size_t t = 0; t < ix.n_terms; ++t) {
        const auto len = static_cast<std::size_t>(ix.term_ptr[t + 1] - ix.term_ptr[t]);
        out.block_ptr[t + 1] =
            out.block_ptr[t] + static_cast<std::int64_t>((len + kBlockSize - 1) / kBlockSize);
    }
    const auto n_blocks = static_cast<std::size_t>(out.block_ptr[ix.n_terms]);
    out.block_max.resize(n_blocks);
    out.block_last.resize(n_blocks);
    parallel_for(ix.n_terms, num_threads, 4096, [&](std::size_t begin, std::size_t end) {
        for (std::size_t t = begin; t < end; ++t) {
            const std::int64_t j0 = ix.term_ptr[t], j1 = ix.term_ptr[t + 1];
            float term_max = 0.0f;
            std::int64_t b = out.block_ptr[t];
            for (std::int64_t j = j0; j < j1; j += static_cast<std::int64_t>(kBlockSize), ++b) {
                const std::int64_t e = std::min(j1, j + static_cast<std::int64_t>(kBlockSize));
                float mx = 0.0f;
                for (std::int64_t x = j; x < e; ++x) mx = std::max(mx, ix.impacts[x]);
                out.block_max[static_cast<std::size_t>(b)] = mx;
                out.block_last[static_cast<std::size_t>(b)] =
                    ix.packed_data ? ix.packed_block_last[b] : ix.docs[e - 1];
                term_max = std::max(term_max, mx);
            }
            out.term_max[t] = term_max;
        }
    });
    return out;
}

namespace detail {

// Per-worker scratch: a dense float accumulator over documents (all-zero between queries, made on
// first use), the list of touched documents (sparse mode) and the pruned path's working memory.
struct Scratch {
    Scratch(std::size_t n_docs, std::size_t k) : n_docs(n_docs), top(k) {}
    std::size_t n_docs;
    std::vector<float> acc;
    std::vector<std::uint32_t> touched;       // whole-corpus: a list; windowed: a buffer (fixed by n_docs)
    std::vector<std::uint32_t> order;         // query terms by increasing document frequency
    std::vector<codec::RangeCursor> cursors;  // the windowed dense path's place in each term
    TopKFloat top;
    PrunedScratch pruned;
};

}  // namespace detail

ScratchPool::ScratchPool() = default;
ScratchPool::~ScratchPool() = default;

std::unique_ptr<detail::Scratch> ScratchPool::take(std::size_t n_docs, std::size_t kk) {
    std::unique_ptr<detail::Scratch> s;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        while (!free_.empty() && !s) {
            s = std::move(free_.back());
            free_.pop_back();
            if (s->n_docs != n_docs) s.reset();  // made for another index: drop it
        }
    }
    if (!s) return std::make_unique<detail::Scratch>(n_docs, kk);
    if (s->top.capacity() != kk) s->top = TopKFloat(kk);  // drained: empty, only its k changes
    return s;
}

void ScratchPool::give(std::unique_ptr<detail::Scratch> scratch) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(std::move(scratch));
}

std::size_t ScratchPool::size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return free_.size();
}

namespace {

using detail::scan_kernel;
using detail::ScanFn;
using detail::Scratch;

// Strategy::automatic thresholds (measured on the synthetic Zipf corpora of bench/bm25_scale.py).
constexpr std::size_t kPrunedMinDocs = 50000;  // smaller corpora: exhaustive is fast enough
// Pruned only while k <= n_docs / 16384: at k = 100 on 1M documents and k = 1000 on 10M the
// exhaustive path is faster (mean 0.38 vs 0.63 ms and 5.0 vs 7.6 ms; it was n_docs / 4096).
constexpr std::size_t kPrunedMaxKShare = 16384;
constexpr std::size_t kPrunedMinPostings = 20000;  // fewer postings: nothing worth skipping
// Automatic gives the pruned path a budget of steps (candidate documents and skipped block ranges)
// worth about what the exhaustive path would cost, then falls back. Measured per query on the Zipf
// corpora of bench/bm25_scale.py (steps, pruned and exhaustive times at 300k, 1M and 10M documents):
// a step costs about 16 postings of the dense accumulate (sequential), 2 of the sparse one (random
// access plus the touched list) and 32 documents of the dense path's final scan. With a single
// budget of postings / 16, 198 of 1,000 queries at 1M documents, k=10, fell back after pruning had
// done most of the work (auto mean 547 us; 498 with these budgets, simulated from the per-query
// figures, which reproduce the measured auto within 1%).
constexpr std::size_t kPrunedBudgetShareDense = 16;
constexpr std::size_t kPrunedBudgetShareSparse = 2;
constexpr std::size_t kPrunedBudgetScanShare = 32;
// Exhaustive scoring goes a window of documents at a time from kWindowMinDocs documents on (an
// accumulator of 16 MiB, half of this class of CPU's L3); below, the whole-corpus pass is faster
// (at 1M documents 0.52 vs 0.62 ms at k = 1000: windows cannot seed the selection). kWindowDocs
// floats are 256 KiB, a share of a core's L2.
constexpr std::size_t kWindowDocs = std::size_t{1} << 16;
constexpr std::size_t kWindowMinDocs = std::size_t{1} << 22;

// Sum of the query terms' non-occurrence scores (bm25l / bm25+), in float64, rounded once.
float nonoccurrence_constant(const IndexView& ix, const std::uint32_t* terms, std::size_t n) {
    if (!ix.nonoccurrence) return 0.0f;
    double c = 0.0;
    for (std::size_t i = 0; i < n; ++i) c += ix.nonoccurrence[terms[i]];
    return static_cast<float>(c);
}

// Adds impacts [j, to) of a run of postings to their documents' slots, no branches. Four
// independent postings per step (distinct documents within a term, so no two updates of one step
// touch the same slot); the same additions in the same order per slot as one by one.
template <class Docs>
inline void add_postings(float* __restrict acc, Docs docs, const float* __restrict imp, std::size_t j,
                         std::size_t to) {
    for (; j + 4 <= to; j += 4) {
        const std::uint32_t d0 = docs[j], d1 = docs[j + 1], d2 = docs[j + 2], d3 = docs[j + 3];
        const float v0 = imp[j], v1 = imp[j + 1], v2 = imp[j + 2], v3 = imp[j + 3];
        acc[d0] += v0;
        acc[d1] += v1;
        acc[d2] += v2;
        acc[d3] += v3;
    }
    for (; j < to; ++j) acc[docs[j]] += imp[j];
}

// Dense mode: add every posting's impact (query terms in order, postings in order).
void accumulate_dense(const IndexView& ix, const std::uint32_t* terms, std::size_t n, float* __restrict acc) {
    for (std::size_t i = 0; i < n; ++i) {
        codec::for_each_block(ix, terms[i], [acc](auto docs, const float* imp, std::size_t len) {
            add_postings(acc, docs, imp, 0, len);
            return true;
        });
    }
}

// Sparse mode: the same additions (skipping "0 + 0"), recording each document the first time it
// gets a positive impact. Impacts are >= 0, so a float32 sum that became positive stays positive
// and touched lists exactly the documents with acc > 0.
void accumulate_sparse(const IndexView& ix, const std::uint32_t* terms, std::size_t n, Scratch& s) {
    float* acc = s.acc.data();
    for (std::size_t i = 0; i < n; ++i) {
        codec::for_each_block(ix, terms[i], [&](auto docs, const float* imp, std::size_t len) {
            for (std::size_t j = 0; j < len; ++j) {
                const std::uint32_t d = docs[j];
                const float v = imp[j];
                float& a = acc[d];
                if (a == 0.0f) {
                    if (v == 0.0f) continue;
                    s.touched.push_back(d);
                }
                a += v;
            }
            return true;
        });
    }
}

std::size_t postings_of(const IndexView& ix, const std::uint32_t* terms, std::size_t n) {
    std::size_t p = 0;
    for (std::size_t i = 0; i < n; ++i)
        p += static_cast<std::size_t>(ix.term_ptr[terms[i] + 1] - ix.term_ptr[terms[i]]);
    return p;
}

// The exhaustive path's mode for a query of `postings` postings: dense (add every posting, then scan
// every document) or sparse (track the touched documents, visit only those). A sparse posting costs
// several dense ones (a data-dependent branch, the touched list, a second visit of its slot), so
// dense wins from a small share of the corpus on. Measured crossovers (bench/bm25_scale.py Zipf,
// one thread): about n_docs / 12 at 300k documents, / 16 at 1M, / 50 at 10M (where the accumulator
// no longer fits the cache); the threshold was n_docs / 4 and sent 10M-document queries of 300k
// postings down an 18 ms sparse path where dense takes about 13.
bool dense_mode(std::size_t postings, std::size_t n_docs) { return postings * 16 >= n_docs; }

// Past the cache (kWindowMinDocs documents and more), exhaustive scoring goes a window of
// documents at a time. Every query term adds its postings in the window (cursors keep each
// term's place), then the window's documents go to the selection and its slice of the
// accumulator (kWindowDocs floats) is reset, while that slice is still in the core's cache. A
// whole-corpus pass instead adds into an accumulator that outgrew the cache, a miss per posting
// for all but the densest terms, and its sparse mode pays two or three (12-35 ns per posting at
// 10M documents, measured). The modes stay as in the whole-corpus pass, per window: dense (add every
// posting, then scan the window) or sparse (note the touched documents, visit only those). Each
// slot receives the same additions in the same order as there (query terms in order, postings in
// order), so every score and the top-kk are bit-identical to the whole-corpus pass.
void search_windows(const IndexView& ix, const std::uint32_t* terms, std::size_t n, float c,
                    std::size_t postings, bool dense, std::size_t kk, Scratch& s) {
    float* __restrict acc = s.acc.data();
    const ScanFn scan = scan_kernel();
    s.cursors.clear();
    for (std::size_t i = 0; i < n; ++i) s.cursors.emplace_back(ix, terms[i]);
    std::size_t noted = 0;  // sparse: documents noted in the window (s.touched[0, noted))
    auto add = [acc](auto docs, const float* imp, std::size_t j, std::size_t to) {
        add_postings(acc, docs, imp, j, to);
    };
    // Sparse: the same additions, branch-free, noting every posting's document (a document of
    // several terms is noted again; its second visit finds it reset). Testing each slot for a
    // first touch instead puts a load the cache misses (the window's slice is cold until its
    // lines are touched) in front of a branch, which serialised the misses: 12-14 ns per posting
    // at 10M documents.
    auto add_noting = [acc, &s, &noted](auto docs, const float* __restrict imp, std::size_t j,
                                        std::size_t to) {
        std::uint32_t* __restrict note = s.touched.data() + noted;
        noted += to - j;
        for (; j < to; ++j) {
            const std::uint32_t d = docs[j];
            acc[d] += imp[j];
            *note++ = d;
        }
    };
    // Room to note every posting of the query (sparse mode: fewer than n_docs / 16 of them).
    if (!dense && s.touched.size() < postings) s.touched.resize(postings);
    std::size_t untouched = 0;  // sparse: untouched documents pushed (the kk of lowest index suffice)
    for (std::size_t w0 = 0; w0 < ix.n_docs; w0 += kWindowDocs) {
        const std::size_t w1 = std::min(ix.n_docs, w0 + kWindowDocs);
        const auto end = static_cast<std::uint32_t>(w1);
        if (dense) {
            for (codec::RangeCursor& cursor : s.cursors) cursor.until(end, add);
            // Set the selection's bar as soon as it holds kk documents; later cuts come as its
            // buffer fills (each is an nth_element over 2 kk keys).
            if (s.top.bar_score() == -std::numeric_limits<float>::infinity()) s.top.tighten();
            scan(true, acc + w0, w1 - w0, c, s.top, static_cast<std::uint32_t>(w0));
            continue;
        }
        for (codec::RangeCursor& cursor : s.cursors) cursor.until(end, add_noting);
        for (std::size_t d = w0; d < w1 && untouched < kk; ++d) {
            if (acc[d] == 0.0f) {
                s.top.push(c, static_cast<std::uint32_t>(d));
                ++untouched;
            }
        }
        for (std::size_t i = 0; i < noted; ++i) {
            const std::uint32_t d = s.touched[i];
            if (acc[d] != 0.0f) {  // 0: a zero-impact posting's (untouched) or visited already
                s.top.push(acc[d] + c, d);
                acc[d] = 0.0f;
            }
        }
        noted = 0;
    }
}

// One query's top-k into out (kk = min(k, n_docs) entries). Both modes compute the same float32
// score for every document (acc + c) and select exactly the top-kk of all documents, so the mode,
// chosen from the query's posting count, never changes a result.
void search_one(const IndexView& ix, const std::uint32_t* terms, std::size_t n, std::size_t kk, Scratch& s,
                std::int64_t* out_docs, float* out_scores) {
    const float c = nonoccurrence_constant(ix, terms, n);
    if (s.acc.empty()) s.acc.assign(s.n_docs, 0.0f);
    float* acc = s.acc.data();
    const std::size_t postings = postings_of(ix, terms, n);
    const bool dense = dense_mode(postings, ix.n_docs);
    if (ix.n_docs >= kWindowMinDocs) {
        search_windows(ix, terms, n, c, postings, dense, kk, s);
    } else if (dense) {
        // Dense: enough documents are touched that scanning all of them beats tracking them.
        accumulate_dense(ix, terms, n, acc);
        // Seed the selection with likely winners: the documents of the rarest query terms (they
        // carry the highest IDF) until 2 kk are in. Their exact scores set a high bar early, so
        // the full scan below accepts few documents. Seeded documents are marked -inf so the scan
        // skips them (-inf + c is never above the bar) and still resets them.
        constexpr float kSeeded = -std::numeric_limits<float>::infinity();
        constexpr std::size_t kSeedFactor = 2;
        s.order.assign(terms, terms + n);
        std::sort(s.order.begin(), s.order.end(), [&](std::uint32_t a, std::uint32_t b) {
            const std::int64_t da = ix.term_ptr[a + 1] - ix.term_ptr[a],
                               db = ix.term_ptr[b + 1] - ix.term_ptr[b];
            return da < db || (da == db && a < b);
        });
        std::size_t seeded = 0;
        for (std::size_t i = 0; i < s.order.size() && seeded < kSeedFactor * kk; ++i) {
            codec::for_each_block(ix, s.order[i], [&](auto docs, const float*, std::size_t len) {
                for (std::size_t j = 0; j < len && seeded < kSeedFactor * kk; ++j) {
                    const std::uint32_t d = docs[j];
                    if (acc[d] == kSeeded) continue;
                    s.top.push(acc[d] + c, d);
                    acc[d] = kSeeded;
                    ++seeded;
                }
                return seeded < kSeedFactor * kk;
            });
        }
        s.top.tighten();
        scan_kernel()(false, acc, ix.n_docs, c, s.top, 0);
    } else {
        accumulate_sparse(ix, terms, n, s);
        // Untouched documents all score c; only the kk with the lowest index can make the cut.
        // (First, while acc still tells touched from untouched; the selection is order-free: keys
        // are unique, so the same top-kk comes out whatever the push order.)
        std::size_t extra = 0;
        for (std::size_t d = 0; d < ix.n_docs && extra < kk; ++d) {
            if (acc[d] == 0.0f) {
                s.top.push(c, static_cast<std::uint32_t>(d));
                ++extra;
            }
        }
        // Push and reset in one pass: past a few million documents the accumulator outgrows the
        // cache and each visit of a touched slot is a miss (three visits per posting cost ~60 ns
        // at 10M documents; this saves one).
        for (std::uint32_t d : s.touched) {
            s.top.push(acc[d] + c, d);
            acc[d] = 0.0f;
        }
        s.touched.clear();
    }
    s.top.drain_sorted(out_scores, out_docs);
}

// Whether to try the pruned path for one query. Pruning pays off when the query has many postings
// and k is small next to the corpus; small corpora and dense queries stay exhaustive.
bool use_pruned(const IndexView& ix, const std::uint32_t* terms, std::size_t n, std::size_t kk,
                Strategy strategy, bool have_blocks) {
    if (strategy != Strategy::automatic) return strategy == Strategy::pruned;
    if (!have_blocks || ix.n_docs < kPrunedMinDocs || kk * kPrunedMaxKShare > ix.n_docs) return false;
    return postings_of(ix, terms, n) >= kPrunedMinPostings;
}

void check_terms(const IndexView& ix, const std::uint32_t* terms, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
        if (terms[i] >= ix.n_terms)
            throw std::invalid_argument("query term id " + std::to_string(terms[i]) + " >= vocabulary size " +
                                        std::to_string(ix.n_terms));
}

}  // namespace

void search(const IndexView& ix, const std::uint32_t* query_terms, const std::int64_t* query_offsets,
            std::size_t n_queries, std::size_t k, int num_threads, std::int64_t* out_docs, float* out_scores,
            Strategy strategy, ScratchPool* pool) {
    if (k == 0) throw std::invalid_argument("k must be >= 1");
    const bool have_blocks = ix.block_ptr != nullptr;  // the others may be null when empty
    if (strategy == Strategy::pruned && !have_blocks)
        throw std::invalid_argument("the pruned strategy needs block-max metadata (build_block_max)");
    if (ix.n_docs == 0) throw std::invalid_argument("the index has no documents");
    if (n_queries && query_offsets[0] != 0) throw std::invalid_argument("query offsets must start at 0");
    for (std::size_t q = 0; q < n_queries; ++q)
        if (query_offsets[q + 1] < query_offsets[q])
            throw std::invalid_argument("query offsets decrease at query " + std::to_string(q));
    if (n_queries) check_terms(ix, query_terms, static_cast<std::size_t>(query_offsets[n_queries]));
    const std::size_t kk = std::min(k, ix.n_docs);

    ScratchPool call_pool;  // used when the caller keeps none
    ScratchPool& scratches = pool ? *pool : call_pool;
    parallel_for(n_queries, num_threads, 1, [&](std::size_t begin, std::size_t end) {
        // If a query throws, `s` is destroyed here, not given back: its accumulator may be dirty.
        std::unique_ptr<Scratch> s = scratches.take(ix.n_docs, kk);
        for (std::size_t q = begin; q < end; ++q) {
            const std::int64_t q0 = query_offsets[q];
            const auto nq = static_cast<std::size_t>(query_offsets[q + 1] - q0);
            if (use_pruned(ix, query_terms + q0, nq, kk, strategy, have_blocks)) {
                // Automatic: give up on pruning (and score exhaustively) after a share of the
                // postings; forced: prune to the end (tests exercise the whole pruned path).
                std::size_t budget = std::numeric_limits<std::size_t>::max();
                if (strategy != Strategy::pruned) {
                    const std::size_t p = postings_of(ix, query_terms + q0, nq);
                    budget = dense_mode(p, ix.n_docs)
                                 ? p / kPrunedBudgetShareDense + ix.n_docs / kPrunedBudgetScanShare
                                 : p / kPrunedBudgetShareSparse;
                }
                if (detail::search_pruned_one(ix, query_terms + q0, nq, kk, budget, s->pruned,
                                              out_docs + q * kk, out_scores + q * kk))
                    continue;
            }
            search_one(ix, query_terms + q0, nq, kk, *s, out_docs + q * kk, out_scores + q * kk);
        }
        scratches.give(std::move(s));
    });
}

void score_all(const IndexView& ix, const std::uint32_t* terms, std::size_t n_terms, float* out) {
    check_terms(ix, terms, n_terms);
    std::vector<float> acc(ix.n_docs, 0.0f);
    accumulate_dense(ix, terms, n_terms, acc.data());
    const float c = nonoccurrence_constant(ix, terms, n_terms);
    for (std::size_t d = 0; d < ix.n_docs; ++d) out[d] = acc[d] + c;
}

}  // namespace crossrank::bm25
