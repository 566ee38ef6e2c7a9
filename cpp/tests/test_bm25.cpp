#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "crossrank/bm25.hpp"
#include "crossrank/errors.hpp"
#include "crossrank/vocabulary.hpp"

namespace bm25 = crossrank::bm25;

namespace {

struct Built {
    bm25::Postings postings;
    std::vector<float> impacts, nonocc;
    std::size_t n_terms = 0;
    bm25::IndexView view() const {
        bm25::IndexView v;
        v.n_docs = postings.doc_lens.size();
        v.n_terms = n_terms;
        v.term_ptr = postings.term_ptr.data();
        v.docs = postings.docs.data();
        v.impacts = impacts.data();
        v.nonoccurrence = nonocc.data();
        return v;
    }
};

Built build(const std::vector<std::vector<std::uint32_t>>& docs, std::size_t n_terms, const bm25::Params& p) {
    std::vector<std::uint32_t> flat;
    std::vector<std::int64_t> offsets{0};
    for (const auto& d : docs) {
        flat.insert(flat.end(), d.begin(), d.end());
        offsets.push_back(static_cast<std::int64_t>(flat.size()));
    }
    std::vector<std::int64_t> empty_ptr{0};
    bm25::PostingsView base;
    base.term_ptr = empty_ptr.data();
    Built b;
    b.n_terms = n_terms;
    b.postings = bm25::build_postings(base, n_terms, flat.data(), offsets.data(), docs.size());
    b.impacts.resize(b.postings.docs.size());
    b.nonocc.resize(n_terms);
    bm25::PostingsView pv;
    pv.n_terms = n_terms;
    pv.n_docs = docs.size();
    pv.term_ptr = b.postings.term_ptr.data();
    pv.docs = b.postings.docs.data();
    pv.tfs = b.postings.tfs.data();
    pv.doc_lens = b.postings.doc_lens.data();
    bm25::compute_impacts(p, pv, b.impacts.data(), b.nonocc.data(), 2);
    return b;
}

// float64 scores straight from the formulas.
std::vector<double> brute(const std::vector<std::vector<std::uint32_t>>& docs,
                          const std::vector<std::uint32_t>& q, const bm25::Params& p) {
    std::map<std::uint32_t, std::uint64_t> df;
    double total = 0;
    for (const auto& d : docs) {
        total += static_cast<double>(d.size());
        for (auto t : std::set<std::uint32_t>(d.begin(), d.end())) ++df[t];
    }
    const double avgdl = total / static_cast<double>(docs.size());
    std::vector<double> out;
    for (const auto& d : docs) {
        double s = 0;
        for (auto t : q) {
            if (!df.count(t)) continue;
            double tf = 0;
            for (auto x : d) tf += (x == t);
            s += bm25::idf(p.variant, df[t], docs.size()) *
                 bm25::tfc(p, tf, static_cast<double>(d.size()), avgdl);
        }
        out.push_back(s);
    }
    return out;
}

}  // namespace

TEST_CASE("search and score_all equal float64 formulas for every variant") {
    std::mt19937 rng(3);
    std::vector<std::vector<std::uint32_t>> docs(200);
    for (auto& d : docs) {
        d.resize(rng() % 30);
        for (auto& t : d) t = rng() % 50;
    }
    for (auto v : {bm25::Variant::robertson, bm25::Variant::lucene, bm25::Variant::atire,
                   bm25::Variant::bm25l, bm25::Variant::bm25plus}) {
        bm25::Params p;
        p.variant = v;
        p.k1 = 1.1;
        p.b = 0.6;
        p.delta = 0.8;
        const Built b = build(docs, 50, p);
        const std::vector<std::uint32_t> q = {3, 7, 7, 49};
        std::vector<float> all(docs.size());
        bm25::score_all(b.view(), q.data(), q.size(), all.data());
        const auto want = brute(docs, q, p);
        for (std::size_t d = 0; d < docs.size(); ++d) CHECK(all[d] == doctest::Approx(want[d]).epsilon(1e-6));
        const std::vector<std::int64_t> qoff = {0, static_cast<std::int64_t>(q.size())};
        std::vector<std::int64_t> top(10);
        std::vector<float> ts(10);
        bm25::search(b.view(), q.data(), qoff.data(), 1, 10, 3, top.data(), ts.data());
        for (std::size_t r = 0; r < 10; ++r) {
            CHECK(ts[r] == all[static_cast<std::size_t>(top[r])]);
            if (r) CHECK((ts[r - 1] > ts[r] || (ts[r - 1] == ts[r] && top[r - 1] < top[r])));
        }
    }
}

TEST_CASE("bad parameters, k and query terms are rejected") {
    bm25::Params p;
    p.k1 = std::nan("");
    CHECK_THROWS_AS(bm25::validate(p), std::invalid_argument);
    p.k1 = 1.2;
    p.b = 1.5;
    CHECK_THROWS_AS(bm25::validate(p), std::invalid_argument);
    p.b = 0.75;
    p.delta = -1;
    CHECK_THROWS_AS(bm25::validate(p), std::invalid_argument);
    CHECK_THROWS_AS(bm25::variant_from_name("okapi"), std::invalid_argument);
    CHECK(bm25::variant_from_name("bm25+") == bm25::Variant::bm25plus);

    const Built b = build({{0, 1}, {1}}, 2, bm25::Params{});
    const std::uint32_t bad_q[] = {5};
    const std::int64_t qoff[] = {0, 1};
    std::int64_t top[2];
    float ts[2];
    CHECK_THROWS_AS(bm25::search(b.view(), bad_q, qoff, 1, 2, 1, top, ts), std::invalid_argument);
    const std::uint32_t q[] = {1};
    CHECK_THROWS_AS(bm25::search(b.view(), q, qoff, 1, 0, 1, top, ts), std::invalid_argument);
}

TEST_CASE("validate_index catches out-of-range ids and bad offsets") {
    Built b = build({{0, 1}, {1, 2}, {2}}, 3, bm25::Params{});
    auto check = [&](const Built& x) {
        bm25::PostingsView v;
        v.n_terms = x.n_terms;
        v.n_docs = x.postings.doc_lens.size();
        v.term_ptr = x.postings.term_ptr.data();
        v.docs = x.postings.docs.data();
        v.tfs = x.postings.tfs.data();
        v.doc_lens = x.postings.doc_lens.data();
        bm25::validate_index(v, x.postings.docs.size(), x.impacts.data(), x.nonocc.data());
    };
    CHECK_NOTHROW(check(b));
    Built bad = b;
    bad.postings.docs[0] = 99;
    CHECK_THROWS_AS(check(bad), crossrank::StateError);
    bad = b;
    bad.postings.term_ptr[1] = 100;
    CHECK_THROWS_AS(check(bad), crossrank::StateError);
    bad = b;
    bad.impacts[0] = -1.0f;
    CHECK_THROWS_AS(check(bad), crossrank::StateError);
}

TEST_CASE("Vocabulary assigns ids in first-insertion order and round-trips its arena") {
    crossrank::Vocabulary v;
    for (int i = 0; i < 1000; ++i) CHECK(v.add("t" + std::to_string(i)) == static_cast<std::uint32_t>(i));
    CHECK(v.add("t5") == 5u);
    CHECK(v.find("t999") == 999);
    CHECK(v.find("nope") == -1);
    const auto w =
        crossrank::Vocabulary::from_arena(v.chars().data(), v.chars().size(), v.offsets().data(), v.size());
    CHECK(w.find("t123") == 123);
    const std::string dup = "abab";
    const std::uint64_t offs[] = {0, 2, 4};
    CHECK_THROWS_AS(crossrank::Vocabulary::from_arena(dup.data(), dup.size(), offs, 2),
                    crossrank::StateError);
}
