// Postings codec: a term's postings cut into blocks of kBlockSize (the block-max blocks); each
// block stores its documents as offsets back from its last document (kept in block_last, which
// the pruned path reads to skip blocks) and its term frequencies minus 1, each field at the
// narrowest of 0, 1, 2 or 4 bytes per value that holds the block's largest value. Decoding is a
// widening load and one subtraction per posting (vectorised by the compiler), with no prefix sum:
// fixed-width bit-packed gaps packed smaller but cost 2.5-3.5x the exhaustive search time in the
// old-vs-new run of bench/bm25_codec_old_new.py, where decoding must keep up with one
// scattered float addition per posting. Internal to the core (search, bindings, tests).
//
// Block layout (bytes, no alignment): [header][offsets: len x dw][tf - 1: len x tw], header =
// code(dw) | code(tw) << 2 with code 0, 1, 2, 3 for 0, 1, 2, 4 bytes; values little-endian. A
// single-posting block has dw = 0 (its document is block_last). `data` ends with kPad zero bytes
// (a decoder may load whole words past a block's end).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "crossrank/bm25.hpp"

namespace crossrank::bm25::codec {

constexpr std::size_t kPad = 8;

struct Packed {
    std::vector<std::int64_t> block_ptr;    // n_terms + 1: term t's blocks are [block_ptr[t], block_ptr[t+1])
    std::vector<std::uint32_t> block_last;  // n_blocks: the block's last document
    std::vector<std::uint64_t> block_off;   // n_blocks + 1: byte offset of each block in data
    std::vector<std::uint8_t> data;         // block_off[n_blocks] + kPad bytes
};

struct PackedView {
    std::size_t n_terms = 0;
    const std::int64_t* term_ptr =
        nullptr;  // n_terms + 1 (posting counts: len = term_ptr[t+1] - term_ptr[t])
    const std::int64_t* block_ptr = nullptr;
    const std::uint32_t* block_last = nullptr;
    const std::uint64_t* block_off = nullptr;
    const std::uint8_t* data = nullptr;
    std::size_t data_size = 0;  // bytes, kPad included
};

// Packs CSR postings (docs increasing within a term, tfs >= 1; checked: std::invalid_argument).
Packed pack(std::size_t n_terms, const std::int64_t* term_ptr, const std::uint32_t* docs,
            const std::uint32_t* tfs);

// Number of postings of block b of term t (every block is full but the term's last).
inline std::size_t block_len(const PackedView& p, std::size_t t, std::size_t b) noexcept {
    const auto len = static_cast<std::size_t>(p.term_ptr[t + 1] - p.term_ptr[t]);
    const std::size_t first = static_cast<std::size_t>(p.block_ptr[t]);
    const std::size_t start = (b - first) * kBlockSize;
    return len - start < kBlockSize ? len - start : kBlockSize;
}

namespace detail {

constexpr unsigned kBytes[4] = {0, 1, 2, 4};

// out[i] = base - in[i] (documents) or base + in[i] (tfs, base 1) for n values of type T.
template <class T, bool kMinus>
inline void get(const std::uint8_t* in, std::size_t n, std::uint32_t base, std::uint32_t* out) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        T v;
        std::memcpy(&v, in + i * sizeof(T), sizeof(T));
        out[i] = kMinus ? base - static_cast<std::uint32_t>(v) : base + static_cast<std::uint32_t>(v);
    }
}

template <bool kMinus>
inline void get_code(unsigned code, const std::uint8_t* in, std::size_t n, std::uint32_t base,
                     std::uint32_t* out) noexcept {
    switch (code) {
        case 0:
            for (std::size_t i = 0; i < n; ++i) out[i] = base;
            return;
        case 1:
            get<std::uint8_t, kMinus>(in, n, base, out);
            return;
        case 2:
            get<std::uint16_t, kMinus>(in, n, base, out);
            return;
        default:
            get<std::uint32_t, kMinus>(in, n, base, out);
    }
}

}  // namespace detail

// Decodes the documents of the block at `block` (its header byte) holding n postings and ending
// at document `last` into docs[n].
inline void decode_docs(const std::uint8_t* block, std::size_t n, std::uint32_t last,
                        std::uint32_t* docs) noexcept {
    detail::get_code<true>(block[0] & 3u, block + 1, n, last, docs);
}

// Decodes block b of term t: its documents into docs[len] and, when tfs is not null, its term
// frequencies into tfs[len]; returns len. The block must be valid (see check).
inline std::size_t decode(const PackedView& p, std::size_t t, std::size_t b, std::uint32_t* docs,
                          std::uint32_t* tfs) noexcept {
    const std::size_t n = block_len(p, t, b);
    const std::uint8_t* in = p.data + p.block_off[b];
    const unsigned dc = in[0] & 3u, tc = (in[0] >> 2) & 3u;
    detail::get_code<true>(dc, in + 1, n, p.block_last[b], docs);
    if (tfs) detail::get_code<false>(tc, in + 1 + n * detail::kBytes[dc], n, 1u, tfs);
    return n;
}

// Decodes everything back to CSR arrays docs[nnz], tfs[nnz].
void unpack(const PackedView& p, std::uint32_t* docs, std::uint32_t* tfs);

// Checks the structure a decoder relies on (block counts match term_ptr, offsets increase and fit
// in data with its padding, widths <= 32, sizes match the widths, each block decodes to increasing
// documents < n_docs ending at its block_last, tfs without overflow); throws crossrank::StateError.
void check(const PackedView& p, std::size_t n_docs);

// The packed postings of an index view (ix.packed_data non-null).
inline PackedView packed_view(const IndexView& ix) noexcept {
    PackedView p;
    p.n_terms = ix.n_terms;
    p.term_ptr = ix.term_ptr;
    p.block_ptr = ix.packed_block_ptr;
    p.block_last = ix.packed_block_last;
    p.block_off = ix.packed_block_off;
    p.data = ix.packed_data;
    p.data_size = ix.packed_size;
    return p;
}

// Document readers for for_each_block: docs[i] is the block's i-th document. Plain documents are
// read in place; packed ones are decoded posting by posting inside the caller's loop (its last
// document minus a T-wide offset, T chosen per block), so no block is copied into a buffer.
struct PlainDocs {
    const std::uint32_t* d;
    std::uint32_t operator[](std::size_t i) const noexcept { return d[i]; }
};
template <class T>
struct BackDocs {
    const std::uint8_t* offsets;
    std::uint32_t last;
    std::uint32_t operator[](std::size_t i) const noexcept {
        T v;
        std::memcpy(&v, offsets + i * sizeof(T), sizeof(T));
        return last - static_cast<std::uint32_t>(v);
    }
};
struct LastDoc {  // a one-posting block (offset width 0)
    std::uint32_t last;
    std::uint32_t operator[](std::size_t) const noexcept { return last; }
};

// Calls f(docs) with the document reader of the packed block at `in` (its header byte) that ends
// at document `last`, and returns what f returns.
template <class F>
bool with_block_docs(const std::uint8_t* in, std::uint32_t last, F&& f) {
    switch (in[0] & 3u) {
        case 0:
            return f(LastDoc{last});
        case 1:
            return f(BackDocs<std::uint8_t>{in + 1, last});
        case 2:
            return f(BackDocs<std::uint16_t>{in + 1, last});
        default:
            return f(BackDocs<std::uint32_t>{in + 1, last});
    }
}

// Bytes of a packed block of n postings whose header byte is h.
inline std::size_t block_bytes(unsigned h, std::size_t n) noexcept {
    return 1 + n * (detail::kBytes[h & 3u] + detail::kBytes[(h >> 2) & 3u]);
}

// Calls f(docs, impacts, len) on term t's postings in document order until f returns false, docs
// one of the readers above: once with the whole list when documents are plain, once per block
// when they are packed (f is instantiated for each reader type).
template <class F>
void for_each_block(const IndexView& ix, std::uint32_t t, F&& f) {
    const std::int64_t j0 = ix.term_ptr[t];
    auto len = static_cast<std::size_t>(ix.term_ptr[t + 1] - j0);
    const float* imp = ix.impacts + j0;
    if (!ix.packed_data) {
        f(PlainDocs{ix.docs + j0}, imp, len);
        return;
    }
    if (len == 0) return;
    auto b = static_cast<std::size_t>(ix.packed_block_ptr[t]);
    // A term's blocks are consecutive in data: each starts where the previous one ends.
    const std::uint8_t* in = ix.packed_data + ix.packed_block_off[b];
    for (;; ++b) {
        const std::size_t n = len < kBlockSize ? len : kBlockSize;
        const bool more =
            with_block_docs(in, ix.packed_block_last[b], [&](auto docs) { return f(docs, imp, n); });
        len -= n;
        if (!more || len == 0) return;
        imp += n;
        in += block_bytes(in[0], n);
    }
}

// Walks one term's postings in document order a document range at a time: each until(end, f)
// hands f(docs, impacts, from, to) the postings not handed before whose documents are below
// `end` (docs[i] and impacts[i] for i in [from, to)), one call per block touched (one in all for
// plain documents). The blocked dense search calls it once per document window and term.
class RangeCursor {
  public:
    RangeCursor(const IndexView& ix, std::uint32_t t) : ix_(&ix) {
        const std::int64_t j0 = ix.term_ptr[t];
        left_ = static_cast<std::size_t>(ix.term_ptr[t + 1] - j0);
        imp_ = ix.impacts + j0;
        if (ix.packed_data) {
            b_ = static_cast<std::size_t>(ix.packed_block_ptr[t]);
            if (left_) in_ = ix.packed_data + ix.packed_block_off[b_];
        } else {
            plain_ = ix.docs + j0;
        }
    }

    template <class F>
    void until(std::uint32_t end, F&& f) {
        if (!ix_->packed_data) {
            const std::uint32_t* stop = std::lower_bound(plain_ + pos_, plain_ + left_, end);
            const auto to = static_cast<std::size_t>(stop - plain_);
            if (to > pos_) f(PlainDocs{plain_}, imp_, pos_, to);
            pos_ = to;
            return;
        }
        while (left_) {
            const std::size_t n = left_ < kBlockSize ? left_ : kBlockSize;
            const std::uint32_t last = ix_->packed_block_last[b_];
            if (!with_block_docs(in_, last, [&](auto docs) { return step(docs, n, last, end, f); })) return;
            left_ -= n;  // the block is done: on to the next one (consecutive in data)
            imp_ += n;
            in_ += block_bytes(in_[0], n);
            ++b_;
            pos_ = 0;
        }
    }

  private:
    // Hands over the current block's postings below end; true when the block is done.
    template <class Docs, class F>
    bool step(Docs docs, std::size_t n, std::uint32_t last, std::uint32_t end, F& f) {
        std::size_t to = n;
        if (last >= end) {  // the window ends inside this block: find its first document >= end
            std::size_t lo = pos_, hi = n;
            while (lo < hi) {
                const std::size_t mid = lo + (hi - lo) / 2;
                if (docs[mid] < end)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            to = lo;
        }
        if (to > pos_) f(docs, imp_, pos_, to);
        if (to < n) {
            pos_ = to;
            return false;
        }
        return true;
    }

    const IndexView* ix_;
    const float* imp_ = nullptr;            // impacts of the current block (packed) or term (plain)
    const std::uint8_t* in_ = nullptr;      // the current block's bytes (packed)
    const std::uint32_t* plain_ = nullptr;  // the term's documents (plain)
    std::size_t b_ = 0;                     // the current block (packed)
    std::size_t left_ = 0;                  // postings from the current block on (packed), or all (plain)
    std::size_t pos_ = 0;                   // next posting within the block (packed) or term (plain)
};

}  // namespace crossrank::bm25::codec
