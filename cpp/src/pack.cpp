#include "crossrank/pack.hpp"

#include <algorithm>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace crossrank::pack {

namespace {

std::string str(std::int64_t v) { return std::to_string(v); }

void check_segment(const std::vector<std::int32_t>& ids, const std::vector<std::int32_t>& types,
                   const char* name) {
    if (ids.size() != types.size())
        throw std::invalid_argument(std::string("pair template: ") + name + " has " + str(ids.size()) +
                                    " ids but " + str(types.size()) + " type ids; give one type id per id");
    for (auto id : ids)
        if (id < 0)
            throw std::invalid_argument(std::string("pair template: ") + name + " holds the negative id " +
                                        str(id) + "; token ids must be >= 0");
}

// Validates a ragged input and every id in it (ids must be >= 0).
void check_ragged(const Ragged& r, const char* name) {
    if (r.n > 0 && (r.offsets == nullptr))
        throw std::invalid_argument(std::string(name) + ": offsets missing");
    if (r.n == 0) return;
    if (r.offsets[0] < 0)
        throw std::invalid_argument(std::string(name) + " offsets must start at >= 0, got " +
                                    str(r.offsets[0]));
    for (std::size_t i = 0; i < r.n; ++i)
        if (r.offsets[i + 1] < r.offsets[i])
            throw std::invalid_argument(std::string(name) + " offsets must be non-decreasing; offsets[" +
                                        str(static_cast<std::int64_t>(i + 1)) +
                                        "] = " + str(r.offsets[i + 1]) + " < offsets[" +
                                        str(static_cast<std::int64_t>(i)) + "] = " + str(r.offsets[i]));
    if (static_cast<std::uint64_t>(r.offsets[r.n]) > r.n_values)
        throw std::invalid_argument(std::string(name) + " offsets end at " + str(r.offsets[r.n]) +
                                    " but there are only " + str(static_cast<std::int64_t>(r.n_values)) +
                                    " values");
    for (std::int64_t k = r.offsets[0]; k < r.offsets[r.n]; ++k)
        if (r.values[k] < 0)
            throw std::invalid_argument(std::string(name) + " hold the negative token id " +
                                        str(r.values[k]) + " at flat position " + str(k) +
                                        "; token ids must be >= 0");
}

void check_options(const Options& o, const PairTemplate& t) {
    const auto S = static_cast<std::int64_t>(t.n_special());
    if (o.max_length < S + 2)
        throw std::invalid_argument("max_length must be at least " + str(S + 2) + " (the template's " +
                                    str(S) + " special tokens + 1 query token + 1 document token), got " +
                                    str(o.max_length));
    if (o.max_length > std::numeric_limits<std::int32_t>::max())
        throw std::invalid_argument("max_length must fit in int32, got " + str(o.max_length));
    if (o.max_query_length < 0)
        throw std::invalid_argument("max_query_length must be >= 1 (or None), got " +
                                    str(o.max_query_length));
    if (o.max_batch_size < 1)
        throw std::invalid_argument("max_batch_size must be >= 1, got " + str(o.max_batch_size));
    if (o.max_batch_tokens < o.max_length)
        throw std::invalid_argument("max_batch_tokens must be >= max_length (" + str(o.max_length) +
                                    ") so the longest row fits a batch, got " + str(o.max_batch_tokens));
    if (o.bucket_lengths.empty() && o.bucket_multiple < 1)
        throw std::invalid_argument("bucket multiple must be >= 1, got " + str(o.bucket_multiple));
    for (std::size_t i = 0; i < o.bucket_lengths.size(); ++i) {
        if (o.bucket_lengths[i] < 1)
            throw std::invalid_argument("bucket lengths must be >= 1, got " + str(o.bucket_lengths[i]));
        if (i > 0 && o.bucket_lengths[i] <= o.bucket_lengths[i - 1])
            throw std::invalid_argument("bucket lengths must be strictly increasing, got " +
                                        str(o.bucket_lengths[i - 1]) + " then " + str(o.bucket_lengths[i]));
    }
    if (o.window_stride < 0)
        throw std::invalid_argument("window_stride must be >= 1 (or None), got " + str(o.window_stride));
    if (o.max_windows < 0)
        throw std::invalid_argument("max_windows must be >= 1 (or None), got " + str(o.max_windows));
    if (o.max_windows > 0 && o.window_stride == 0)
        throw std::invalid_argument("max_windows needs window_stride; set window_stride to split documents");
    if (o.window_stride > 0 && o.truncation == Truncation::only_first)
        throw std::invalid_argument(
            "window_stride splits the document, which only_first never cuts; use truncation='longest_first' "
            "or 'only_second'");
}

}  // namespace

void PairTemplate::validate() const {
    check_segment(prefix, prefix_types, "prefix");
    check_segment(middle, middle_types, "middle");
    check_segment(suffix, suffix_types, "suffix");
    if (pad_id < 0) throw std::invalid_argument("pair template: pad_id must be >= 0, got " + str(pad_id));
}

Truncation truncation_from_name(const std::string& name) {
    if (name == "longest_first") return Truncation::longest_first;
    if (name == "only_first") return Truncation::only_first;
    if (name == "only_second") return Truncation::only_second;
    throw std::invalid_argument("truncation must be 'longest_first', 'only_first' or 'only_second', got '" +
                                name + "'");
}

std::int64_t bucket_length(const Options& opt, std::int64_t n) {
    std::int64_t L = n;
    if (!opt.bucket_lengths.empty()) {
        auto it = std::lower_bound(opt.bucket_lengths.begin(), opt.bucket_lengths.end(), n);
        if (it != opt.bucket_lengths.end()) L = *it;
    } else {
        const std::int64_t m = opt.bucket_multiple;
        L = (n + m - 1) / m * m;
    }
    // At least one column: a pair with no tokens at all (empty texts, a template without special
    // tokens) is one pad column, never a zero divisor of the batch token budget.
    return std::max<std::int64_t>(1, std::min(L, opt.max_length));
}

Kept truncate_pair(std::int64_t q, std::int64_t d, std::int64_t T, Truncation strategy, std::size_t pair) {
    if (q + d <= T) return {q, d};
    const std::int64_t remove = q + d - T;
    switch (strategy) {
        case Truncation::longest_first: {
            // tokenizers' closed form: the query is "the shorter" on ties, so on an odd T the
            // document (the longer, or the second on ties) keeps the extra token.
            const bool swap = q > d;
            const std::int64_t s = swap ? d : q;
            std::int64_t ks, kl;
            if (2 * s <= T) {
                ks = s;
                kl = T - s;
            } else {
                ks = T / 2;
                kl = T - T / 2;
            }
            return swap ? Kept{kl, ks} : Kept{ks, kl};
        }
        case Truncation::only_second:
            if (d > remove) return {q, d - remove};
            throw std::invalid_argument("pair " + str(static_cast<std::int64_t>(pair)) +
                                        ": only_second truncation cannot fit it: the query has " + str(q) +
                                        " tokens and the document " + str(d) + ", but only " + str(T) +
                                        " fit beside the special tokens and the document must keep at least "
                                        "one; set max_query_length, "
                                        "raise max_length, or use truncation='longest_first'");
        case Truncation::only_first:
            if (q > remove) return {q - remove, d};
            throw std::invalid_argument("pair " + str(static_cast<std::int64_t>(pair)) +
                                        ": only_first truncation cannot fit it: the document has " + str(d) +
                                        " tokens and the query " + str(q) + ", but only " + str(T) +
                                        " fit beside the special tokens and the query must keep at least "
                                        "one; raise max_length or use "
                                        "truncation='longest_first'");
    }
    throw std::invalid_argument("unknown truncation strategy");
}

std::int64_t Plan::peak_batch_tokens() const {
    std::int64_t peak = 0;
    for (std::size_t b = 0; b < n_batches(); ++b) peak = std::max(peak, batch_rows(b) * batch_length[b]);
    return peak;
}

Plan plan(const Ragged& queries, const Ragged& docs, const PairTemplate& tmpl, const Options& opt) {
    tmpl.validate();
    check_options(opt, tmpl);
    check_ragged(queries, "query ids");
    check_ragged(docs, "document ids");
    const std::size_t n = docs.n;
    const bool broadcast = queries.n == 1;
    if (!(queries.n == n || broadcast || (n == 0 && queries.n == 0)))
        throw std::invalid_argument("expected one query per document or a single query for all, got " +
                                    str(static_cast<std::int64_t>(queries.n)) + " queries and " +
                                    str(static_cast<std::int64_t>(n)) + " documents");

    Plan p;
    p.n_pairs = n;
    p.n_special = tmpl.n_special();
    const auto S = static_cast<std::int64_t>(p.n_special);
    const std::int64_t T = opt.max_length - S;
    p.truncated.assign(n, 0);
    p.n_tokens.assign(n, 0);
    p.query_kept.assign(n, 0);
    p.query_begin.assign(n, 0);
    p.doc_begin.assign(n, 0);
    p.row_offsets.assign(n + 1, 0);
    p.row_pair.reserve(n);
    p.row_window.reserve(n);
    p.row_start.reserve(n);
    p.row_end.reserve(n);
    p.row_tokens.reserve(n);

    auto add_row = [&](std::size_t i, std::int64_t w, std::int64_t s, std::int64_t e, std::int64_t q) {
        p.row_pair.push_back(static_cast<std::int64_t>(i));
        p.row_window.push_back(static_cast<std::int32_t>(w));
        p.row_start.push_back(static_cast<std::int32_t>(s));
        p.row_end.push_back(static_cast<std::int32_t>(e));
        p.row_tokens.push_back(static_cast<std::int32_t>(S + q + (e - s)));
    };

    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t qi = broadcast ? 0 : i;
        const std::int64_t q_full = queries.offsets[qi + 1] - queries.offsets[qi];
        const std::int64_t d = docs.offsets[i + 1] - docs.offsets[i];
        bool trunc = false;
        std::int64_t q = q_full;
        if (opt.max_query_length > 0 && q > opt.max_query_length) {
            q = opt.max_query_length;
            trunc = true;
        }
        const Kept kept = truncate_pair(q, d, T, opt.truncation, i);
        if (kept.q < q_full) trunc = true;
        p.query_kept[i] = static_cast<std::int32_t>(kept.q);
        p.query_begin[i] = queries.offsets[qi];
        p.doc_begin[i] = docs.offsets[i];
        p.row_offsets[i] = static_cast<std::int64_t>(p.row_pair.size());

        if (opt.window_stride == 0 || kept.d == d) {
            if (kept.d < d) trunc = true;
            add_row(i, 0, 0, kept.d, kept.q);
        } else {
            // d > W >= 1 here: kept.d == W < d (see the header for why W >= 1).
            const std::int64_t W = T - kept.q;
            const std::int64_t step = std::min(opt.window_stride, W);
            std::int64_t n_win = 1 + (d - W + step - 1) / step;
            bool capped = false;
            if (opt.max_windows > 0 && n_win > opt.max_windows) {
                n_win = opt.max_windows;
                capped = true;
                trunc = true;
            }
            for (std::int64_t k = 0; k < n_win; ++k) {
                std::int64_t s = k * step;
                if (k == n_win - 1 && !capped) s = d - W;  // the last window ends at the document's end
                add_row(i, k, s, s + W, kept.q);
            }
        }
        p.truncated[i] = trunc ? 1 : 0;
        p.n_tokens[i] = p.row_tokens[static_cast<std::size_t>(p.row_offsets[i])];
    }
    p.row_offsets[n] = static_cast<std::int64_t>(p.row_pair.size());

    // Stable sort of rows, longest first; ties keep the caller's order.
    const std::size_t n_rows = p.n_rows();
    p.order.resize(n_rows);
    std::iota(p.order.begin(), p.order.end(), std::int64_t{0});
    std::stable_sort(p.order.begin(), p.order.end(),
                     [&](std::int64_t a, std::int64_t b) { return p.row_tokens[a] > p.row_tokens[b]; });

    p.batch_offsets.push_back(0);
    std::size_t r = 0;
    while (r < n_rows) {
        const std::int64_t L = bucket_length(opt, p.row_tokens[static_cast<std::size_t>(p.order[r])]);
        const std::int64_t cap = std::min(opt.max_batch_size, opt.max_batch_tokens / L);  // >= 1
        const std::size_t take =
            static_cast<std::size_t>(std::min<std::int64_t>(cap, static_cast<std::int64_t>(n_rows - r)));
        r += take;
        p.batch_offsets.push_back(static_cast<std::int64_t>(r));
        p.batch_length.push_back(static_cast<std::int32_t>(L));
    }
    return p;
}

void materialize(const Plan& p, const Ragged& queries, const Ragged& docs, const PairTemplate& tmpl,
                 std::size_t b, std::int64_t* input_ids, std::int64_t* attention_mask,
                 std::int64_t* token_type_ids) {
    if (b >= p.n_batches())
        throw std::out_of_range("batch index " + str(static_cast<std::int64_t>(b)) +
                                " out of range for a plan of " +
                                str(static_cast<std::int64_t>(p.n_batches())) + " batches");
    const std::size_t L = static_cast<std::size_t>(p.batch_length[b]);
    const auto begin = static_cast<std::size_t>(p.batch_offsets[b]);
    const auto end = static_cast<std::size_t>(p.batch_offsets[b + 1]);
    for (std::size_t k = begin; k < end; ++k) {
        const auto row = static_cast<std::size_t>(p.order[k]);
        const auto pair = static_cast<std::size_t>(p.row_pair[row]);
        std::int64_t* ids = input_ids + (k - begin) * L;
        std::int64_t* mask = attention_mask + (k - begin) * L;
        std::int64_t* types = token_type_ids + (k - begin) * L;
        std::size_t j = 0;
        auto put = [&](std::int64_t id, std::int64_t type) {
            ids[j] = id;
            types[j] = type;
            mask[j] = 1;
            ++j;
        };
        for (std::size_t t = 0; t < tmpl.prefix.size(); ++t) put(tmpl.prefix[t], tmpl.prefix_types[t]);
        const std::int32_t* q = queries.values + p.query_begin[pair];
        for (std::int32_t t = 0; t < p.query_kept[pair]; ++t) put(q[t], tmpl.query_type);
        for (std::size_t t = 0; t < tmpl.middle.size(); ++t) put(tmpl.middle[t], tmpl.middle_types[t]);
        const std::int32_t* d = docs.values + p.doc_begin[pair];
        for (std::int32_t t = p.row_start[row]; t < p.row_end[row]; ++t) put(d[t], tmpl.doc_type);
        for (std::size_t t = 0; t < tmpl.suffix.size(); ++t) put(tmpl.suffix[t], tmpl.suffix_types[t]);
        for (; j < L; ++j) {
            ids[j] = tmpl.pad_id;
            types[j] = tmpl.pad_type;
            mask[j] = 0;
        }
    }
}

}  // namespace crossrank::pack
