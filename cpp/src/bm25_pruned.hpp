// Internal interface between the BM25 search driver (bm25.cpp) and its pruned, document-at-a-time
// path (bm25_pruned.cpp). Not installed, not part of the public API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "crossrank/bm25.hpp"

namespace crossrank::bm25::detail {

// One unique query term's postings, walked in document order. The current document is kept in
// `doc` (updated on every move). An essential cursor (one the loop steps through posting by
// posting) reads the current block's documents from `bdocs`: the plain documents in place, or the
// packed block decoded once into `buf` when the cursor enters it. A non-essential cursor only
// seeks; it reads a packed block in place (bdocs null: boffs, bcode, blast), so a block it lands
// in for one probe is not decoded whole. Cursors only ever turn from essential to non-essential.
struct Cursor {
    std::uint32_t doc = 0;                     // document of posting pos (kEnd once pos == len)
    std::uint32_t bi = 0, blen = 0;            // pos's index in its block, that block's posting count
    const std::uint32_t* bdocs = nullptr;      // the current block's documents, or null (in place)
    std::size_t pos = 0, len = 0;              // current posting, number of postings
    std::size_t cur_block = 0;                 // block of pos (0-based in the term)
    const std::uint8_t* boffs = nullptr;       // in place: the block's offsets back from blast
    std::uint32_t blast = 0;                   // in place: the block's last document
    unsigned bcode = 0;                        // in place: the offsets' width code (header & 3)
    const std::uint32_t* docs = nullptr;       // plain documents, or null when packed
    const std::uint8_t* packed = nullptr;      // packed data
    const std::uint64_t* block_off = nullptr;  // the term's packed block offsets
    std::uint32_t* buf = nullptr;              // kBlockSize decoded documents (packed only)
    std::uint32_t term = 0;
    const float* impacts = nullptr;
    const float* block_max = nullptr;
    const std::uint32_t* block_last = nullptr;
    std::size_t blk = 0, n_blocks = 0;  // block-max cursor (may run ahead of cur_block)
    std::uint32_t mult = 1;             // how often the term occurs in the query
    double bound = 0;                   // mult * the term's largest impact
};

// Per-worker working memory of the pruned path (reused across queries).
struct PrunedScratch {
    std::vector<Cursor> cursors;
    std::vector<std::int32_t> slot;   // query position -> cursor index (-1: term without postings)
    std::vector<double> prefix;       // prefix[i] = sum of cursors[0, i).bound
    std::vector<float> here;          // impact of each cursor at the current document
    std::vector<std::uint8_t> found;  // whether each cursor is at the current document
    std::vector<double> block_bound;  // block-max bound of each non-essential cursor at the document
    std::vector<std::uint64_t> heap;  // min-heap of TopKFloat keys, the best kk seen so far
    std::vector<std::pair<std::uint32_t, std::uint32_t>> order;  // (term, query position)
    std::vector<std::uint32_t> bufs;  // kBlockSize decoded documents per cursor (packed postings)
};

// Top-kk of one query (1 <= kk <= n_docs) into out_docs / out_scores, bit-identical to exhaustive
// scoring; returns false (writing nothing) when the query must be scored exhaustively instead:
// fewer than kk documents score above the non-occurrence score, or more than `budget` steps
// (candidate documents and skipped block ranges) were needed. Needs block-max metadata.
bool search_pruned_one(const IndexView& ix, const std::uint32_t* terms, std::size_t n, std::size_t kk,
                       std::size_t budget, PrunedScratch& s, std::int64_t* out_docs, float* out_scores);

}  // namespace crossrank::bm25::detail
