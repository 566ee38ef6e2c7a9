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

// Bytes per document offset of a block, from its header byte.
inline unsigned offset_bytes(std::uint8_t header) noexcept {
    constexpr unsigned kBytes[4] = {0, 1, 2, 4};
    return kBytes[header & 3u];
}

// Offset i of a block's offsets field of `width` bytes per value (random access).
inline std::uint32_t offset_at(const std::uint8_t* offsets, unsigned width, std::size_t i) noexcept {
    switch (width) {
        case 0:
            return 0;
        case 1:
            return offsets[i];
        case 2: {
            std::uint16_t v;
            std::memcpy(&v, offsets + 2 * i, 2);
            return v;
        }
        default: {
            std::uint32_t v;
            std::memcpy(&v, offsets + 4 * i, 4);
            return v;
        }
    }
}

// Decodes block b of term t: its documents into docs[len] and, when tfs is not null, its term
// frequencies into tfs[len]; returns len. The block must be valid (see check).
std::size_t decode(const PackedView& p, std::size_t t, std::size_t b, std::uint32_t* docs,
                   std::uint32_t* tfs) noexcept;

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

// Calls f(docs, impacts, len) on term t's postings in document order until f returns false: once
// with the whole list when documents are plain, once per decoded block when they are packed.
template <class F>
void for_each_block(const IndexView& ix, std::uint32_t t, F&& f) {
    const std::int64_t j0 = ix.term_ptr[t];
    if (!ix.packed_data) {
        f(ix.docs + j0, ix.impacts + j0, static_cast<std::size_t>(ix.term_ptr[t + 1] - j0));
        return;
    }
    const PackedView p = packed_view(ix);
    alignas(64) std::uint32_t buf[kBlockSize];
    const float* imp = ix.impacts + j0;
    for (auto b = static_cast<std::size_t>(p.block_ptr[t]); b < static_cast<std::size_t>(p.block_ptr[t + 1]);
         ++b) {
        const std::size_t n = decode(p, t, b, buf, nullptr);
        if (!f(static_cast<const std::uint32_t*>(buf), imp, n)) return;
        imp += n;
    }
}

}  // namespace crossrank::bm25::codec
