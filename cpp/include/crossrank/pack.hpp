// Token-exact packing of (query, document) pairs into padded batches for a cross-encoder.
//
// Input: query and document token ids WITHOUT special tokens, as flat int32 values + int64 offsets
// (ragged; sequence i is values[offsets[i], offsets[i+1])). Either one query per pair, or a single
// query broadcast to every pair.
//
// One row of a batch is the model's pair template filled in:
//
//     prefix  query[0:q)  middle  doc[s:e)  suffix  pad ... pad
//     BERT:    [CLS] q [SEP] d [SEP]          token types 0 0 0 1 1
//     RoBERTa: <s> q </s></s> d </s>           token types all 0
//
// Truncation (T = max_length - number of special tokens; the query is first cut to
// max_query_length when one is given):
//   longest_first  the closed form of Hugging Face tokenizers' TruncationStrategy::LongestFirst
//                  (tokenizers >= 0.13, utils/truncation.rs): with s <= l the shorter/longer of
//                  (query, doc) (ties: the query counts as the shorter), if s + l <= T nothing is cut;
//                  else if 2 s <= T the longer keeps T - s; else the shorter keeps T / 2 and the
//                  longer T - T / 2.
//   only_second    the document loses q + d - T tokens; a query that leaves it no token is an error
//                  (as in tokenizers).
//   only_first     the query loses q + d - T tokens; likewise an error when it cannot.
// Windows (window_stride > 0): the query length is what the truncation above gives against the
// whole document, the window size is W = T - q, and a document longer than W becomes windows of W
// tokens starting at 0, step, 2 step, ... (step = min(window_stride, W), so no token is skipped),
// the last one moved back to end at the document's end. Window 0 is therefore exactly the
// truncated pair. At most max_windows windows are kept (then the pair is flagged truncated).
//
// Batching: rows are stably sorted by token count, longest first; a batch takes the next rows
// while rows <= max_batch_size and rows * L <= max_batch_tokens, where L is the first (longest)
// row's length padded up to a shape bucket (a multiple, or the smallest listed length that fits)
// and never above max_length. Planning is O(pairs log pairs) and touches no token; materialize()
// fills one batch at a time, so memory stays bounded by max_batch_tokens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace crossrank::pack {

// Ragged int32 sequences: n sequences, offsets has n + 1 entries.
struct Ragged {
    const std::int32_t* values = nullptr;
    std::size_t n_values = 0;
    const std::int64_t* offsets = nullptr;
    std::size_t n = 0;
};

struct PairTemplate {
    std::vector<std::int32_t> prefix, middle, suffix;                    // special token ids
    std::vector<std::int32_t> prefix_types, middle_types, suffix_types;  // their token type ids
    std::int32_t query_type = 0;
    std::int32_t doc_type = 1;
    std::int32_t pad_id = 0;
    std::int32_t pad_type = 0;

    std::size_t n_special() const { return prefix.size() + middle.size() + suffix.size(); }
    // Throws std::invalid_argument when ids/types disagree in length or an id is negative.
    void validate() const;
};

enum class Truncation { longest_first, only_first, only_second };

// Parses "longest_first" | "only_first" | "only_second"; throws std::invalid_argument otherwise.
Truncation truncation_from_name(const std::string& name);

struct Options {
    std::int64_t max_length = 512;
    Truncation truncation = Truncation::longest_first;
    std::int64_t max_query_length = 0;  // 0: no cap
    std::int64_t max_batch_tokens = 8192;
    std::int64_t max_batch_size = 256;
    std::int64_t bucket_multiple = 16;         // used when bucket_lengths is empty; 1 = exact length
    std::vector<std::int64_t> bucket_lengths;  // ascending; a row pads to the first that fits
    std::int64_t window_stride = 0;            // 0: truncate instead of windows
    std::int64_t max_windows = 0;              // 0: no cap (only with windows)
};

// Smallest padded length >= n allowed by the buckets, capped at max_length.
std::int64_t bucket_length(const Options& opt, std::int64_t n);

// Longest-first / only-first / only-second truncation of a (q, d) pair to T content tokens.
// Returns the kept lengths; throws std::invalid_argument (naming `pair`) when the strategy cannot
// reach T.
struct Kept {
    std::int64_t q, d;
};
Kept truncate_pair(std::int64_t q, std::int64_t d, std::int64_t T, Truncation strategy, std::size_t pair);

struct Plan {
    std::size_t n_pairs = 0;
    std::size_t n_special = 0;
    // Per pair.
    std::vector<std::uint8_t> truncated;    // 1 when any query or document token was left out
    std::vector<std::int32_t> n_tokens;     // length of the pair's longest row (window 0), specials included
    std::vector<std::int32_t> query_kept;   // query tokens in every row of the pair
    std::vector<std::int64_t> query_begin;  // into the query values
    std::vector<std::int64_t> doc_begin;    // into the document values
    std::vector<std::int64_t>
        row_offsets;  // n_pairs + 1: rows of pair i are [row_offsets[i], row_offsets[i+1])
    // Per row, pair-major then window order.
    std::vector<std::int64_t> row_pair;
    std::vector<std::int32_t> row_window, row_start, row_end, row_tokens;
    // Batches: rows order[batch_offsets[b], batch_offsets[b+1]) padded to batch_length[b].
    std::vector<std::int64_t> order;
    std::vector<std::int64_t> batch_offsets;
    std::vector<std::int32_t> batch_length;

    std::size_t n_rows() const { return row_pair.size(); }
    std::size_t n_batches() const { return batch_length.size(); }
    std::int64_t batch_rows(std::size_t b) const { return batch_offsets[b + 1] - batch_offsets[b]; }
    std::int64_t peak_batch_tokens() const;
};

// Plans truncation, windows, sort and batch cuts. Throws std::invalid_argument on bad options,
// offsets that are not monotone or out of range, negative ids, or a pair the strategy cannot fit.
Plan plan(const Ragged& queries, const Ragged& docs, const PairTemplate& tmpl, const Options& opt);

// Writes batch b into three row-major [rows, L] buffers (rows = plan.batch_rows(b),
// L = plan.batch_length[b]). `queries`/`docs`/`tmpl` must be the ones the plan was made from.
// Throws std::out_of_range for a bad batch index.
void materialize(const Plan& plan, const Ragged& queries, const Ragged& docs, const PairTemplate& tmpl,
                 std::size_t b, std::int64_t* input_ids, std::int64_t* attention_mask,
                 std::int64_t* token_type_ids);

}  // namespace crossrank::pack
