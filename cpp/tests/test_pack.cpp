#include <doctest/doctest.h>

#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "crossrank/pack.hpp"

namespace pk = crossrank::pack;
using V = std::vector<std::int32_t>;
using VV = std::vector<V>;

namespace {

pk::PairTemplate bert() {
    pk::PairTemplate t;
    t.prefix = {101};
    t.prefix_types = {0};
    t.middle = {102};
    t.middle_types = {0};
    t.suffix = {102};
    t.suffix_types = {1};
    return t;
}

// Ragged input built from nested vectors; keeps its storage alive.
struct Seqs {
    std::vector<std::int32_t> values;
    std::vector<std::int64_t> offsets{0};
    explicit Seqs(const std::vector<std::vector<std::int32_t>>& seqs) {
        for (const auto& s : seqs) {
            values.insert(values.end(), s.begin(), s.end());
            offsets.push_back(static_cast<std::int64_t>(values.size()));
        }
    }
    pk::Ragged ragged() const { return {values.data(), values.size(), offsets.data(), offsets.size() - 1}; }
};

std::vector<std::int32_t> iota(int n, int first = 1000) {
    std::vector<std::int32_t> v(static_cast<std::size_t>(n));
    std::iota(v.begin(), v.end(), first);
    return v;
}

}  // namespace

TEST_CASE("longest_first matches tokenizers' kept lengths") {
    // (q, d, T) -> (q kept, d kept), measured with tokenizers 0.23 (T = max_length - 3 for BERT).
    struct Case {
        std::int64_t q, d, T, kq, kd;
    };
    const Case cases[] = {
        {5, 5, 7, 3, 4},  {5, 5, 6, 3, 3},  {5, 5, 5, 2, 3},   {6, 5, 7, 4, 3},   {5, 6, 7, 3, 4},
        {3, 10, 7, 3, 4}, {10, 3, 7, 4, 3}, {10, 10, 1, 0, 1}, {10, 10, 2, 1, 1}, {7, 2, 3, 2, 1},
        {2, 7, 3, 1, 2},  {10, 1, 2, 1, 1}, {1, 10, 2, 1, 1},  {4, 4, 4, 2, 2},   {6, 2, 4, 2, 2},
        {2, 3, 9, 2, 3},  {0, 9, 4, 0, 4},
    };
    for (const auto& c : cases) {
        CAPTURE(c.q);
        CAPTURE(c.d);
        CAPTURE(c.T);
        const auto k = pk::truncate_pair(c.q, c.d, c.T, pk::Truncation::longest_first, 0);
        CHECK(k.q == c.kq);
        CHECK(k.d == c.kd);
    }
}

TEST_CASE("only_second / only_first cut one side or refuse") {
    auto k = pk::truncate_pair(5, 10, 6, pk::Truncation::only_second, 0);
    CHECK(k.q == 5);
    CHECK(k.d == 1);
    CHECK_THROWS_AS(pk::truncate_pair(5, 10, 5, pk::Truncation::only_second, 0), std::invalid_argument);
    k = pk::truncate_pair(10, 3, 7, pk::Truncation::only_first, 0);
    CHECK(k.q == 4);
    CHECK(k.d == 3);
    CHECK_THROWS_AS(pk::truncate_pair(3, 10, 7, pk::Truncation::only_first, 0), std::invalid_argument);
}

TEST_CASE("buckets: multiples, lists, capped at max_length") {
    pk::Options o;
    o.max_length = 100;
    o.bucket_multiple = 16;
    CHECK(pk::bucket_length(o, 1) == 16);
    CHECK(pk::bucket_length(o, 16) == 16);
    CHECK(pk::bucket_length(o, 17) == 32);
    CHECK(pk::bucket_length(o, 99) == 100);
    o.bucket_lengths = {8, 64};
    CHECK(pk::bucket_length(o, 8) == 8);
    CHECK(pk::bucket_length(o, 9) == 64);
    CHECK(pk::bucket_length(o, 70) == 70);
}

TEST_CASE("plan: batches respect the token budget, rows sorted longest first, each pair once") {
    std::vector<std::vector<std::int32_t>> docs;
    for (int i = 0; i < 200; ++i) docs.push_back(iota((i * 37) % 300));
    const Seqs q(VV{iota(7)}), d(docs);
    pk::Options o;
    o.max_length = 128;
    o.max_batch_tokens = 1024;
    o.max_batch_size = 32;
    const auto p = pk::plan(q.ragged(), d.ragged(), bert(), o);
    REQUIRE(p.n_rows() == 200);
    std::vector<int> seen(200, 0);
    std::int32_t prev = 1 << 30;
    for (std::size_t b = 0; b < p.n_batches(); ++b) {
        CHECK(p.batch_rows(b) * p.batch_length[b] <= 1024);
        CHECK(p.batch_rows(b) <= 32);
        CHECK(p.batch_length[b] <= 128);
        for (auto k = p.batch_offsets[b]; k < p.batch_offsets[b + 1]; ++k) {
            const auto row = static_cast<std::size_t>(p.order[static_cast<std::size_t>(k)]);
            CHECK(p.row_tokens[row] <= prev);
            CHECK(p.row_tokens[row] <= p.batch_length[b]);
            prev = p.row_tokens[row];
            seen[static_cast<std::size_t>(p.row_pair[row])]++;
        }
    }
    for (int s : seen) CHECK(s == 1);
    CHECK(p.peak_batch_tokens() <= 1024);
}

TEST_CASE("plan: pairs with no tokens at all get a one-column batch (no division by zero)") {
    const Seqs q(VV{V{}, V{}}), d(VV{V{}, V{}});
    pk::Options o;
    o.max_length = 8;
    const auto p = pk::plan(q.ragged(), d.ragged(), pk::PairTemplate{}, o);
    REQUIRE(p.n_rows() == 2);
    REQUIRE(p.n_batches() == 1);
    CHECK(p.batch_length[0] == 1);
    CHECK(p.row_tokens[0] == 0);
    CHECK(p.row_tokens[1] == 0);
}

TEST_CASE("windows cover the whole document, full width, last one ends at the end") {
    const Seqs q(VV{iota(4)}), d(VV{iota(100)});
    pk::Options o;
    o.max_length = 27;  // T = 24, W = 20
    o.window_stride = 15;
    const auto p = pk::plan(q.ragged(), d.ragged(), bert(), o);
    // starts 0, 15, ..., 75 while the previous window ends before 100, then one ending at 100
    const std::vector<std::int32_t> starts{0, 15, 30, 45, 60, 75, 80};
    REQUIRE(p.n_rows() == starts.size());
    for (std::size_t r = 0; r < starts.size(); ++r) {
        CHECK(p.row_start[r] == starts[r]);
        CHECK(p.row_end[r] == starts[r] + 20);
        CHECK(p.row_window[r] == static_cast<std::int32_t>(r));
        CHECK(p.row_tokens[r] == 27);
    }
    CHECK(p.truncated[0] == 0);
    o.max_windows = 2;
    const auto capped = pk::plan(q.ragged(), d.ragged(), bert(), o);
    REQUIRE(capped.n_rows() == 2);
    CHECK(capped.row_start[1] == 15);
    CHECK(capped.truncated[0] == 1);
    o.max_windows = 0;
    o.window_stride = 500;  // step is clamped to the window width: no token skipped
    const auto wide = pk::plan(q.ragged(), d.ragged(), bert(), o);
    REQUIRE(wide.n_rows() == 5);
    CHECK(wide.row_start[1] == 20);
    CHECK(wide.row_start[4] == 80);
}

TEST_CASE("materialize writes template, ids, types and padding") {
    const Seqs q(VV{V{5, 6}}), d(VV{V{7, 8, 9}, V{10}});
    pk::Options o;
    o.max_length = 16;
    o.bucket_multiple = 8;
    const auto t = bert();
    const auto p = pk::plan(q.ragged(), d.ragged(), t, o);
    REQUIRE(p.n_batches() == 1);
    std::vector<std::int64_t> ids(16), mask(16), types(16);
    pk::materialize(p, q.ragged(), d.ragged(), t, 0, ids.data(), mask.data(), types.data());
    CHECK(ids == std::vector<std::int64_t>{101, 5, 6, 102, 7, 8, 9, 102, 101, 5, 6, 102, 10, 102, 0, 0});
    CHECK(types == std::vector<std::int64_t>{0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0});
    CHECK(mask == std::vector<std::int64_t>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0});
    CHECK_THROWS_AS(pk::materialize(p, q.ragged(), d.ragged(), t, 1, ids.data(), mask.data(), types.data()),
                    std::out_of_range);
}

TEST_CASE("plan rejects bad input with invalid_argument") {
    const Seqs q(VV{V{1}}), d(VV{V{2}});
    pk::Options o;
    o.max_length = 4;
    CHECK_THROWS_AS(pk::plan(q.ragged(), d.ragged(), bert(), o), std::invalid_argument);
    o.max_length = 16;
    const Seqs neg(VV{V{-1}});
    CHECK_THROWS_AS(pk::plan(q.ragged(), neg.ragged(), bert(), o), std::invalid_argument);
    o.max_batch_tokens = 8;
    CHECK_THROWS_AS(pk::plan(q.ragged(), d.ragged(), bert(), o), std::invalid_argument);
    o.max_batch_tokens = 8192;
    o.max_windows = 3;
    CHECK_THROWS_AS(pk::plan(q.ragged(), d.ragged(), bert(), o), std::invalid_argument);
    o.max_windows = 0;
    const Seqs two_q(VV{V{1}, V{2}}), three_d(VV{V{1}, V{2}, V{3}});
    CHECK_THROWS_AS(pk::plan(two_q.ragged(), three_d.ragged(), bert(), o), std::invalid_argument);
    auto bad = bert();
    bad.middle_types.clear();
    CHECK_THROWS_AS(pk::plan(q.ragged(), d.ragged(), bad, o), std::invalid_argument);
    CHECK_THROWS_AS(pk::truncation_from_name("middle_out"), std::invalid_argument);
}

TEST_CASE("empty pair list plans zero batches") {
    const Seqs q(VV{}), d(VV{});
    pk::Options o;
    const auto p = pk::plan(q.ragged(), d.ragged(), bert(), o);
    CHECK(p.n_batches() == 0);
    CHECK(p.n_rows() == 0);
    CHECK(p.peak_batch_tokens() == 0);
}
