// Exact top-k by block-max MaxScore, document at a time (see Strategy in bm25.hpp).
//
// Exactness. A document's score is computed only from its own impacts, added in query-token order
// into a float32 sum starting at 0 and then added to the float32 non-occurrence constant: the
// same float32 operations, in the same order, as the exhaustive accumulator (adding a missing
// term's nothing is skipped there too). Upper bounds decide only which documents are never
// scored; they are float64 sums of float32 maxima, and a document is skipped only when
//   (bound * f + c) * f + tiny < theta,   f = 1 + (n + 4) 2^-22,
// where theta is the current k-th best score and n the number of query tokens. Each float32
// addition rounds up by at most a factor (1 + 2^-24) and rounding is monotone, so a float32
// sum of n non-negative impacts is at most (1 + 2^-24)^n times their exact sum <= bound * f; the
// `tiny` term covers subnormal results. A skipped document therefore scores below theta, and
// theta only rises. Documents are visited in increasing index order, so a later document that
// ties with the k-th best loses the tie (lower index first) and is never needed.
//
// Documents that match no query term score exactly c (the non-occurrence constant) and are
// never visited; they can only enter the top-k when the k-th best score is not above c. The
// driver then scores the query exhaustively.
#include "bm25_pruned.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "bm25_codec.hpp"
#include "crossrank/topk.hpp"

namespace crossrank::bm25::detail {
namespace {

constexpr std::uint32_t kEnd = 0xFFFFFFFFu;  // past every document (n_docs < 2^32 - 1)

// The document of posting p < len (decoding its block first when postings are packed: a block is
// decoded only when one of its postings is looked at, so skipped blocks never are).
inline std::uint32_t doc_at(Cursor& c, std::size_t p) noexcept {
    if (c.docs) return c.docs[p];
    const std::size_t b = p / kBlockSize;
    if (b != c.decoded) {
        codec::decode(codec::packed_view(*c.ix), c.term, c.first_block + b, c.buf, nullptr);
        c.decoded = b;
    }
    return c.buf[p % kBlockSize];
}

inline std::uint32_t doc_of(Cursor& c) noexcept { return c.pos < c.len ? doc_at(c, c.pos) : kEnd; }

// Moves the block cursor to the first block whose last document is >= d (the block d would be
// in); returns that block's largest impact, or 0 past the end.
inline float block_max_at(Cursor& c, std::uint32_t d) noexcept {
    while (c.blk < c.n_blocks && c.block_last[c.blk] < d) ++c.blk;
    return c.blk < c.n_blocks ? c.block_max[c.blk] : 0.0f;
}

// An upper bound of the impacts of documents in [d, e]: the largest block maximum of the blocks
// that may hold one, or the term's maximum when more than kRangeBlocks blocks would be read.
// Moves the block cursor to d's block.
constexpr std::size_t kRangeBlocks = 16;
inline double range_max(Cursor& c, std::uint32_t d, std::uint32_t e) noexcept {
    float mx = block_max_at(c, d);
    std::size_t b = c.blk;
    for (std::size_t steps = 0; b + 1 < c.n_blocks && c.block_last[b] < e; ++steps) {
        if (steps == kRangeBlocks) return c.bound;
        mx = std::max(mx, c.block_max[++b]);
    }
    return static_cast<double>(c.mult) * mx;
}

// Moves to the first posting with document >= d, skipping whole blocks by their last document.
// Uses its own block index (pos / kBlockSize), so it works for essential and non-essential cursors.
inline void next_geq(Cursor& c, std::uint32_t d) noexcept {
    if (c.pos >= c.len || doc_at(c, c.pos) >= d) return;
    std::size_t b = c.pos / kBlockSize;
    while (b < c.n_blocks && c.block_last[b] < d) ++b;
    if (b == c.n_blocks) {
        c.pos = c.len;
        return;
    }
    std::size_t p = std::max(c.pos, b * kBlockSize);
    while (doc_at(c, p) < d) ++p;  // stops inside block b: its last document is >= d
    c.pos = p;
}

// Sum of the query terms' non-occurrence scores in float64, rounded once (as in bm25.cpp).
float nonoccurrence_constant(const IndexView& ix, const std::uint32_t* terms, std::size_t n) {
    if (!ix.nonoccurrence) return 0.0f;
    double c = 0.0;
    for (std::size_t i = 0; i < n; ++i) c += ix.nonoccurrence[terms[i]];
    return static_cast<float>(c);
}

}  // namespace

bool search_pruned_one(const IndexView& ix, const std::uint32_t* terms, std::size_t n, std::size_t kk,
                       std::size_t budget, PrunedScratch& s, std::int64_t* out_docs, float* out_scores) {
    const float cf = nonoccurrence_constant(ix, terms, n);
    const double c = cf;

    // Unique terms with postings, each with its multiplicity; query positions map to cursors.
    s.order.clear();
    for (std::size_t i = 0; i < n; ++i) s.order.emplace_back(terms[i], static_cast<std::uint32_t>(i));
    std::sort(s.order.begin(), s.order.end());
    s.cursors.clear();
    s.slot.assign(n, -1);
    for (std::size_t i = 0; i < s.order.size();) {
        const std::uint32_t t = s.order[i].first;
        std::size_t j = i;
        while (j < s.order.size() && s.order[j].first == t) ++j;
        const std::int64_t j0 = ix.term_ptr[t], j1 = ix.term_ptr[t + 1];
        if (j1 > j0) {
            Cursor cur;
            cur.docs = ix.packed_data ? nullptr : ix.docs + j0;
            cur.ix = &ix;
            cur.term = t;
            cur.first_block = ix.packed_data ? static_cast<std::size_t>(ix.packed_block_ptr[t]) : 0;
            cur.impacts = ix.impacts + j0;
            cur.len = static_cast<std::size_t>(j1 - j0);
            cur.block_max = ix.block_max + ix.block_ptr[t];
            cur.block_last = ix.block_last + ix.block_ptr[t];
            cur.n_blocks = static_cast<std::size_t>(ix.block_ptr[t + 1] - ix.block_ptr[t]);
            cur.mult = static_cast<std::uint32_t>(j - i);
            cur.bound = static_cast<double>(cur.mult) * ix.term_max[t];
            // Remember the query positions of this term by its term id for now.
            for (std::size_t q = i; q < j; ++q) s.slot[s.order[q].second] = static_cast<std::int32_t>(t);
            s.cursors.push_back(cur);
        }
        i = j;
    }
    const std::size_t m = s.cursors.size();
    // Cursors by increasing bound: the non-essential ones are a prefix [0, fe).
    std::sort(s.cursors.begin(), s.cursors.end(), [](const Cursor& a, const Cursor& b) {
        return a.bound < b.bound || (a.bound == b.bound && a.term < b.term);
    });
    for (std::size_t q = 0; q < n; ++q) {
        if (s.slot[q] < 0) continue;
        const std::uint32_t t = static_cast<std::uint32_t>(s.slot[q]);
        for (std::size_t i = 0; i < m; ++i)
            if (s.cursors[i].term == t) s.slot[q] = static_cast<std::int32_t>(i);
    }
    s.prefix.assign(m + 1, 0.0);
    for (std::size_t i = 0; i < m; ++i) s.prefix[i + 1] = s.prefix[i] + s.cursors[i].bound;
    s.here.assign(m, 0.0f);
    s.found.assign(m, 0);
    s.block_bound.assign(m, 0.0);

    const double f = 1.0 + static_cast<double>(n + 4) * std::ldexp(1.0, -22);
    const double tiny = static_cast<double>(n + 4) * std::ldexp(1.0, -149);
    double theta = -std::numeric_limits<double>::infinity();
    // Whether a document whose impacts sum to at most `bound` could still enter the top-k.
    auto may_enter = [&](double bound) { return (bound * f + c) * f + tiny >= theta; };

    s.heap.clear();
    std::size_t fe = 0;  // first essential cursor
    std::size_t steps = 0;
    std::uint32_t checked_to = 0;  // documents <= checked_to were found not skippable as a range
    bool any_checked = false;
    while (fe < m) {
        if (++steps > budget) return false;  // pruning is not paying off: score exhaustively
        std::uint32_t d = kEnd;
        for (std::size_t i = fe; i < m; ++i) d = std::min(d, doc_of(s.cursors[i]));
        if (d == kEnd) break;
        if ((!any_checked || d > checked_to) && theta > -std::numeric_limits<double>::infinity()) {
            // Block skip: every document in [d, e] (e: the first end of an essential cursor's
            // current block) scores at most the essential block maxima plus the non-essential
            // maxima of the blocks overlapping [d, e]. Below the bar, jump past e.
            std::uint32_t e = kEnd;
            double bound = 0.0;
            for (std::size_t i = fe; i < m; ++i) {
                const Cursor& cur = s.cursors[i];
                if (cur.pos >= cur.len) continue;
                const std::size_t b = cur.pos / kBlockSize;
                e = std::min(e, cur.block_last[b]);
                bound += static_cast<double>(cur.mult) * cur.block_max[b];
            }
            for (std::size_t i = fe; i-- > 0 && !may_enter(bound);) bound += range_max(s.cursors[i], d, e);
            if (!may_enter(bound)) {
                if (e == kEnd) break;
                for (std::size_t i = fe; i < m; ++i) next_geq(s.cursors[i], e + 1);
                continue;
            }
            any_checked = true;
            checked_to = e;  // the range cannot be skipped: check documents one by one up to e
        }
        double partial = 0.0;
        for (std::size_t i = fe; i < m; ++i) {
            Cursor& cur = s.cursors[i];
            if (cur.pos < cur.len && doc_at(cur, cur.pos) == d) {
                s.here[i] = cur.impacts[cur.pos];
                s.found[i] = 1;
                partial += static_cast<double>(cur.mult) * s.here[i];
                ++cur.pos;
            } else {
                s.found[i] = 0;
            }
        }
        bool alive = may_enter(partial + s.prefix[fe]);
        if (alive && fe > 0) {
            // Block-max refinement, then probe the non-essential terms, largest bound first,
            // while the document can still make it.
            double rest = 0.0;
            for (std::size_t i = 0; i < fe; ++i) {
                s.block_bound[i] = static_cast<double>(s.cursors[i].mult) * block_max_at(s.cursors[i], d);
                rest += s.block_bound[i];
            }
            for (std::size_t i = fe; i-- > 0;) {
                if (!may_enter(partial + rest)) {
                    alive = false;
                    break;
                }
                rest -= s.block_bound[i];
                Cursor& cur = s.cursors[i];
                next_geq(cur, d);
                if (cur.pos < cur.len && doc_at(cur, cur.pos) == d) {
                    s.here[i] = cur.impacts[cur.pos];
                    s.found[i] = 1;
                    partial += static_cast<double>(cur.mult) * s.here[i];
                } else {
                    s.found[i] = 0;
                }
            }
            alive = alive && may_enter(partial);
        }
        if (!alive) continue;
        // The exact score: the exhaustive path's float32 additions, in query-token order.
        float acc = 0.0f;
        for (std::size_t q = 0; q < n; ++q) {
            const std::int32_t i = s.slot[q];
            if (i >= 0 && s.found[static_cast<std::size_t>(i)]) acc += s.here[static_cast<std::size_t>(i)];
        }
        const float score = acc + cf;
        const std::uint64_t key = TopKFloat::key(score, d);
        if (s.heap.size() < kk) {
            s.heap.push_back(key);
            std::push_heap(s.heap.begin(), s.heap.end(), std::greater<std::uint64_t>());
        } else if (key > s.heap.front()) {
            std::pop_heap(s.heap.begin(), s.heap.end(), std::greater<std::uint64_t>());
            s.heap.back() = key;
            std::push_heap(s.heap.begin(), s.heap.end(), std::greater<std::uint64_t>());
        } else {
            continue;
        }
        if (s.heap.size() == kk) {
            theta = TopKFloat::score_of(s.heap.front());
            while (fe < m && !may_enter(s.prefix[fe + 1])) ++fe;
        }
    }
    // Documents matching no term (score c) could enter: leave the query to the exhaustive path.
    if (s.heap.size() < kk || !(TopKFloat::score_of(s.heap.front()) > cf)) return false;
    std::sort(s.heap.begin(), s.heap.end(), std::greater<std::uint64_t>());
    for (std::size_t r = 0; r < kk; ++r) {
        out_scores[r] = TopKFloat::score_of(s.heap[r]);
        out_docs[r] = TopKFloat::index_of(s.heap[r]);
    }
    return true;
}

}  // namespace crossrank::bm25::detail
