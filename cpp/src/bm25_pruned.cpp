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
#include <cstring>
#include <functional>
#include <limits>

#include "bm25_codec.hpp"
#include "crossrank/topk.hpp"

namespace crossrank::bm25::detail {
namespace {

constexpr std::uint32_t kEnd = 0xFFFFFFFFu;  // past every document (n_docs < 2^32 - 1)

// Offset i of a block read in place, `code` its width code. Fixed-size loads per width (a memcpy
// of a run-time size is a library call: it made every in-place probe several times dearer).
inline std::uint32_t offset_at(const std::uint8_t* offs, unsigned code, std::uint32_t i) noexcept {
    switch (code) {
        case 0:
            return 0;
        case 1:
            return offs[i];
        case 2: {
            std::uint16_t v;
            std::memcpy(&v, offs + 2 * i, 2);
            return v;
        }
        default: {
            std::uint32_t v;
            std::memcpy(&v, offs + 4 * i, 4);
            return v;
        }
    }
}

// Puts the cursor at the first posting of block b (< n_blocks). Plain documents are read in
// place; a packed block is decoded into buf when `decode` (essential cursors) and otherwise
// read in place. Blocks skipped by block_last are never touched.
void enter_block(Cursor& c, std::size_t b, bool decode) noexcept {
    const std::size_t start = b * kBlockSize;
    c.cur_block = b;
    c.pos = start;
    c.bi = 0;
    c.blen = static_cast<std::uint32_t>(std::min(kBlockSize, c.len - start));
    if (c.docs) {
        c.bdocs = c.docs + start;
        c.doc = c.bdocs[0];
        return;
    }
    const std::uint8_t* in = c.packed + c.block_off[b];
    if (decode) {
        codec::decode_docs(in, c.blen, c.block_last[b], c.buf);
        c.bdocs = c.buf;
        c.doc = c.buf[0];
        return;
    }
    c.bdocs = nullptr;
    c.boffs = in + 1;
    c.bcode = in[0] & 3u;
    c.blast = c.block_last[b];
    // The first offset is the block's largest; width 0 means a one-posting block.
    c.doc = c.blast - offset_at(c.boffs, c.bcode, 0);
}

// The index of the first offset <= lim at or after i in a block read in place (one exists).
template <class T>
inline std::uint32_t scan_offsets(const std::uint8_t* offs, std::uint32_t i, std::uint32_t lim) noexcept {
    for (;; ++i) {
        T v;
        std::memcpy(&v, offs + i * sizeof(T), sizeof(T));
        if (static_cast<std::uint32_t>(v) <= lim) return i;
    }
}

// Positions the cursor on its first posting (or the end of an empty list).
void start(Cursor& c) noexcept {
    if (c.len == 0) {
        c.doc = kEnd;
        return;
    }
    enter_block(c, 0, true);
}

// Moves past the block's last posting: into the next block, or to the end.
void next_block(Cursor& c) noexcept {
    if (c.cur_block + 1 < c.n_blocks) {
        enter_block(c, c.cur_block + 1, true);
    } else {
        c.pos = c.len;
        c.bi = c.blen;
        c.doc = kEnd;
    }
}

// Moves to the next posting (essential cursors only: their block is decoded or plain).
inline void advance(Cursor& c) noexcept {
    ++c.pos;
    if (++c.bi < c.blen) {
        c.doc = c.bdocs[c.bi];
        return;
    }
    next_block(c);
}

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

// Moves to the first posting with document >= d, skipping whole blocks by their last document
// (a skipped packed block is never read). `decode`: the cursor is essential (a packed block it
// enters is decoded for the postings it will step through); otherwise it is read in place.
inline void next_geq(Cursor& c, std::uint32_t d, bool decode) noexcept {
    if (c.doc >= d) return;  // kEnd too
    if (c.block_last[c.cur_block] < d) {
        std::size_t b = c.cur_block + 1;
        while (b < c.n_blocks && c.block_last[b] < d) ++b;
        if (b == c.n_blocks) {
            c.pos = c.len;
            c.bi = c.blen;
            c.doc = kEnd;
            return;
        }
        enter_block(c, b, decode);
    }
    // Stops inside the block: its last document is >= d.
    std::uint32_t i = c.bi;
    if (c.bdocs) {
        while (c.bdocs[i] < d) ++i;
        c.doc = c.bdocs[i];
    } else {
        // Document last - offset >= d  <=>  offset <= last - d (d <= last here).
        const std::uint32_t lim = c.blast - d;
        switch (c.bcode) {
            case 0:
                break;  // one posting, the block's last: >= d
            case 1:
                i = scan_offsets<std::uint8_t>(c.boffs, i, lim);
                break;
            case 2:
                i = scan_offsets<std::uint16_t>(c.boffs, i, lim);
                break;
            default:
                i = scan_offsets<std::uint32_t>(c.boffs, i, lim);
        }
        c.doc = c.blast - offset_at(c.boffs, c.bcode, i);
    }
    c.pos += i - c.bi;
    c.bi = i;
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
            if (ix.packed_data) {
                cur.packed = ix.packed_data;
                cur.block_off = ix.packed_block_off + ix.packed_block_ptr[t];
            }
            cur.term = t;
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
    if (ix.packed_data) s.bufs.resize(m * kBlockSize);
    for (std::size_t i = 0; i < m; ++i) {
        if (ix.packed_data) s.cursors[i].buf = s.bufs.data() + i * kBlockSize;
        start(s.cursors[i]);
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
        for (std::size_t i = fe; i < m; ++i) d = std::min(d, s.cursors[i].doc);
        if (d == kEnd) break;
        if ((!any_checked || d > checked_to) && theta > -std::numeric_limits<double>::infinity()) {
            // Block skip: every document in [d, e] (e: the first end of an essential cursor's
            // current block) scores at most the essential block maxima plus the non-essential
            // maxima of the blocks overlapping [d, e]. Below the bar, jump past e.
            std::uint32_t e = kEnd;
            double bound = 0.0;
            for (std::size_t i = fe; i < m; ++i) {
                const Cursor& cur = s.cursors[i];
                if (cur.doc == kEnd) continue;
                const std::size_t b = cur.cur_block;
                e = std::min(e, cur.block_last[b]);
                bound += static_cast<double>(cur.mult) * cur.block_max[b];
            }
            for (std::size_t i = fe; i-- > 0 && !may_enter(bound);) bound += range_max(s.cursors[i], d, e);
            if (!may_enter(bound)) {
                if (e == kEnd) break;
                for (std::size_t i = fe; i < m; ++i) next_geq(s.cursors[i], e + 1, true);
                continue;
            }
            any_checked = true;
            checked_to = e;  // the range cannot be skipped: check documents one by one up to e
        }
        double partial = 0.0;
        for (std::size_t i = fe; i < m; ++i) {
            Cursor& cur = s.cursors[i];
            if (cur.doc == d) {
                s.here[i] = cur.impacts[cur.pos];
                s.found[i] = 1;
                partial += static_cast<double>(cur.mult) * s.here[i];
                advance(cur);
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
                next_geq(cur, d, false);
                if (cur.doc == d) {
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
