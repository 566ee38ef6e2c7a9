// Internal interface between the BM25 search driver (bm25.cpp) and its pruned, document-at-a-time
// path (bm25_pruned.cpp). Not installed, not part of the public API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "crossrank/bm25.hpp"

namespace crossrank::bm25::detail {

// One unique query term's postings, walked in document order.
struct Cursor {
    const std::uint32_t* docs = nullptr;  // plain documents, or null when packed
    const IndexView* ix = nullptr;
    std::uint32_t term = 0;
    std::size_t first_block = 0;            // the term's first block in the packed arrays
    std::size_t decoded = ~std::size_t{0};  // which block (0-based in the term) the fields below describe
    const std::uint8_t* offsets = nullptr;  // that block's offsets back from its last document
    unsigned width = 0;                     // bytes per offset (0, 1, 2 or 4)
    std::uint32_t last = 0;                 // that block's last document
    const float* impacts = nullptr;
    const float* block_max = nullptr;
    const std::uint32_t* block_last = nullptr;
    std::size_t pos = 0, len = 0;  // current posting, number of postings
    std::size_t blk = 0, n_blocks = 0;
    std::uint32_t mult = 1;  // how often the term occurs in the query
    double bound = 0;        // mult * the term's largest impact
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
};

// Top-kk of one query (1 <= kk <= n_docs) into out_docs / out_scores, bit-identical to exhaustive
// scoring; returns false (writing nothing) when the query must be scored exhaustively instead:
// fewer than kk documents score above the non-occurrence score, or more than `budget` steps
// (candidate documents and skipped block ranges) were needed. Needs block-max metadata.
bool search_pruned_one(const IndexView& ix, const std::uint32_t* terms, std::size_t n, std::size_t kk,
                       std::size_t budget, PrunedScratch& s, std::int64_t* out_docs, float* out_scores);

}  // namespace crossrank::bm25::detail
