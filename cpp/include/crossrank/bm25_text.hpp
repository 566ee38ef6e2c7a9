// Texts -> vocabulary ids for the BM25 index: analysis in parallel, ids assigned in order.
//
// Texts are analysed on num_threads threads in fixed chunks; terms already in the vocabulary are
// looked up concurrently (read-only), and new terms are then added on one thread in text order, so
// ids are exactly those of a sequential run (first appearance order) for any thread count.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "crossrank/analyzer.hpp"
#include "crossrank/vocabulary.hpp"

namespace crossrank::bm25 {

// Appends the term ids of each text to `ids` and one offset per text to `offsets` (which must hold
// at least its leading 0). With grow == false, terms missing from the vocabulary are dropped.
void analyze_to_ids(const Analyzer& analyzer, Vocabulary& vocab, const std::vector<std::string_view>& texts,
                    bool grow, int num_threads, std::vector<std::uint32_t>& ids,
                    std::vector<std::int64_t>& offsets);

}  // namespace crossrank::bm25
