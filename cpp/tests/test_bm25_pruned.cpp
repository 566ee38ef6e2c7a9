// The pruned (block-max MaxScore) top-k equals the exhaustive one bit for bit, ties included.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "../src/bm25_codec.hpp"
#include "crossrank/bm25.hpp"

namespace bm25 = crossrank::bm25;

namespace {

struct Index {
    bm25::Postings postings;
    std::vector<float> impacts, nonocc;
    bm25::BlockMax blocks;
    bm25::codec::Packed packed;
    std::size_t n_terms = 0;
    // Plain documents, or the packed ones (decoded block by block) when `pack` is set.
    bm25::IndexView view(bool with_blocks = true, bool pack = false) const {
        bm25::IndexView v;
        v.n_docs = postings.doc_lens.size();
        v.n_terms = n_terms;
        v.term_ptr = postings.term_ptr.data();
        if (pack) {
            v.packed_block_ptr = packed.block_ptr.data();
            v.packed_block_last = packed.block_last.data();
            v.packed_block_off = packed.block_off.data();
            v.packed_data = packed.data.data();
            v.packed_size = packed.data.size();
        } else {
            v.docs = postings.docs.data();
        }
        v.impacts = impacts.data();
        v.nonoccurrence = nonocc.data();
        if (with_blocks) {
            v.block_ptr = blocks.block_ptr.data();
            v.term_max = blocks.term_max.data();
            v.block_max = blocks.block_max.data();
            v.block_last = blocks.block_last.data();
        }
        return v;
    }
};

using Docs = std::vector<std::vector<std::uint32_t>>;

// A view of postings built so far (empty when none were).
bm25::PostingsView postings_view(const bm25::Postings& postings, std::size_t n_terms) {
    bm25::PostingsView v;
    v.n_terms = n_terms;
    v.n_docs = postings.doc_lens.size();
    v.term_ptr = postings.term_ptr.data();
    v.docs = postings.docs.data();
    v.tfs = postings.tfs.data();
    v.doc_lens = postings.doc_lens.data();
    return v;
}

// Adds one part of documents (flat term ids, document offsets) to ix.postings, as BM25Index.add does.
void add_part(Index& ix, const std::vector<std::uint32_t>& flat, const std::vector<std::int64_t>& offsets) {
    std::vector<std::int64_t> empty_ptr(ix.n_terms + 1, 0);
    bm25::PostingsView base = postings_view(ix.postings, ix.n_terms);
    if (ix.postings.term_ptr.empty()) base.term_ptr = empty_ptr.data();
    ix.postings = bm25::build_postings(base, ix.n_terms, flat.data(), offsets.data(), offsets.size() - 1);
}

// Impacts, block-max metadata and packed postings from the final postings.
void finish(Index& ix, const bm25::Params& p) {
    ix.impacts.resize(ix.postings.docs.size());
    ix.nonocc.resize(ix.n_terms);
    bm25::compute_impacts(p, postings_view(ix.postings, ix.n_terms), ix.impacts.data(), ix.nonocc.data(), 2);
    ix.blocks = bm25::build_block_max(ix.view(false), 2);
    ix.packed = bm25::codec::pack(ix.n_terms, ix.postings.term_ptr.data(), ix.postings.docs.data(),
                                  ix.postings.tfs.data());
}

// The packed-width and window tests' parameters: one variant without and one with a non-occurrence
// score.
bm25::Params params_of(bm25::Variant v) {
    bm25::Params p;
    p.variant = v;
    p.k1 = 1.2;
    p.b = 0.75;
    p.delta = 0.5;
    return p;
}

// Builds base_docs, then adds extra_docs incrementally (as BM25Index.add does), then impacts and
// block-max metadata from the final impacts.
Index build(const Docs& base_docs, const Docs& extra_docs, std::size_t n_terms, const bm25::Params& p) {
    Index ix;
    ix.n_terms = n_terms;
    for (const Docs* part : {&base_docs, &extra_docs}) {
        std::vector<std::uint32_t> flat;
        std::vector<std::int64_t> offsets{0};
        for (const auto& d : *part) {
            flat.insert(flat.end(), d.begin(), d.end());
            offsets.push_back(static_cast<std::int64_t>(flat.size()));
        }
        add_part(ix, flat, offsets);
    }
    finish(ix, p);
    return ix;
}

// Zipf-like documents: term t drawn with weight 1 / (t + 1)^s.
Docs zipf_docs(std::mt19937& rng, std::size_t n_docs, std::size_t n_terms, std::size_t max_len, double s) {
    std::vector<double> w(n_terms);
    for (std::size_t t = 0; t < n_terms; ++t) w[t] = 1.0 / std::pow(static_cast<double>(t + 1), s);
    std::discrete_distribution<std::uint32_t> term(w.begin(), w.end());
    Docs docs(n_docs);
    for (auto& d : docs) {
        d.resize(rng() % (max_len + 1));
        for (auto& t : d) t = term(rng);
    }
    return docs;
}

bool same_bits(float a, float b) {
    std::uint32_t x, y;
    std::memcpy(&x, &a, 4);
    std::memcpy(&y, &b, 4);
    return x == y;
}

// Every query at every k: pruned (and automatic) == exhaustive, ids and score bits. The compared
// searches share one ScratchPool (as a Python BM25View does): scratches are reused across k,
// strategies and packed / plain postings, so a dirty accumulator or a stale selection would show.
void check_queries(const Index& ix, const std::vector<std::vector<std::uint32_t>>& queries) {
    bm25::ScratchPool pool;
    const std::size_t n = ix.postings.doc_lens.size();
    std::vector<std::uint32_t> flat;
    std::vector<std::int64_t> off{0};
    for (const auto& q : queries) {
        flat.insert(flat.end(), q.begin(), q.end());
        off.push_back(static_cast<std::int64_t>(flat.size()));
    }
    for (std::size_t k : {std::size_t{1}, std::size_t{10}, std::size_t{100}, std::size_t{1000}, n}) {
        const std::size_t kk = std::min(k, n);
        std::vector<std::int64_t> d0(queries.size() * kk);
        std::vector<float> s0(d0.size());
        // The reference: exhaustive over plain documents.
        bm25::search(ix.view(), flat.data(), off.data(), queries.size(), k, 2, d0.data(), s0.data(),
                     bm25::Strategy::exhaustive);
        for (bool pack : {false, true}) {
            for (auto strategy :
                 {bm25::Strategy::exhaustive, bm25::Strategy::pruned, bm25::Strategy::automatic}) {
                if (!pack && strategy == bm25::Strategy::exhaustive) continue;
                std::vector<std::int64_t> d1(d0.size());
                std::vector<float> s1(d0.size());
                bm25::search(ix.view(true, pack), flat.data(), off.data(), queries.size(), k,
                             strategy == bm25::Strategy::automatic ? 1 : 2, d1.data(), s1.data(), strategy,
                             &pool);
                // One assertion per case (millions of REQUIREs are slow under the sanitizers); the
                // first difference is reported.
                std::size_t bad = d0.size();
                for (std::size_t i = 0; i < d0.size() && bad == d0.size(); ++i)
                    if (d0[i] != d1[i] || !same_bits(s0[i], s1[i])) bad = i;
                INFO("k = ", k, ", packed = ", pack, ", strategy = ", static_cast<int>(strategy),
                     ", first difference at query ", bad / kk, ", rank ", bad % kk);
                REQUIRE(bad == d0.size());
            }
        }
    }
}

const bm25::Variant kVariants[] = {bm25::Variant::robertson, bm25::Variant::lucene, bm25::Variant::atire,
                                   bm25::Variant::bm25l, bm25::Variant::bm25plus};

}  // namespace

TEST_CASE("pruned top-k equals exhaustive for every variant on Zipf corpora") {
    std::mt19937 rng(11);
    const std::size_t n_terms = 300;
    const Docs docs = zipf_docs(rng, 3000, n_terms, 40, 1.0);
    const Docs added = zipf_docs(rng, 700, n_terms, 40, 1.0);
    std::vector<std::vector<std::uint32_t>> queries;
    for (int i = 0; i < 60; ++i) {
        std::vector<std::uint32_t> q(1 + rng() % 6);
        for (auto& t : q) t = static_cast<std::uint32_t>(rng() % 40 < 30 ? rng() % 10 : rng() % n_terms);
        queries.push_back(q);
    }
    queries.push_back({0});               // the most frequent term alone
    queries.push_back({0, 0, 0, 1});      // repeated terms
    queries.push_back({299});             // a rare (possibly absent) term
    queries.push_back({});                // empty query
    queries.push_back({5, 250, 5, 250});  // repeated rare and frequent
    for (auto v : kVariants) {
        bm25::Params p;
        p.variant = v;
        p.k1 = 1.2;
        p.b = 0.75;
        p.delta = 0.7;
        INFO("variant ", bm25::variant_name(v));
        check_queries(build(docs, {}, n_terms, p), queries);
        check_queries(build(docs, added, n_terms, p), queries);  // documents added after build
    }
}

TEST_CASE("pruned top-k keeps ties in document order (many equal scores)") {
    // Identical documents score identically: the top-k must be the lowest indices, as exhaustive.
    Docs docs;
    for (int i = 0; i < 2500; ++i)
        docs.push_back(i % 3 == 0 ? std::vector<std::uint32_t>{0, 1, 2}
                                  : std::vector<std::uint32_t>{0, 1, 3});
    std::vector<std::vector<std::uint32_t>> queries = {{0}, {0, 1}, {2}, {2, 3}, {1, 2, 0}, {3, 3}, {4}};
    for (auto v : kVariants) {
        bm25::Params p;
        p.variant = v;
        p.k1 = 0.9;
        p.b = 0.4;
        INFO("variant ", bm25::variant_name(v));
        check_queries(build(docs, {}, 5, p), queries);
    }
}

TEST_CASE("pruned search needs block-max metadata; block maxima bound every impact") {
    std::mt19937 rng(5);
    const Index ix = build(zipf_docs(rng, 500, 50, 30, 1.1), {}, 50, bm25::Params{});
    const std::uint32_t q[] = {0, 1};
    const std::int64_t off[] = {0, 2};
    std::int64_t d[10];
    float s[10];
    CHECK_THROWS_AS(bm25::search(ix.view(false), q, off, 1, 10, 1, d, s, bm25::Strategy::pruned),
                    std::invalid_argument);
    CHECK_NOTHROW(bm25::search(ix.view(false), q, off, 1, 10, 1, d, s, bm25::Strategy::automatic));
    const auto& tp = ix.postings.term_ptr;
    for (std::size_t t = 0; t < 50; ++t) {
        const auto b0 = ix.blocks.block_ptr[t];
        CHECK(ix.blocks.block_ptr[t + 1] - b0 ==
              (tp[t + 1] - tp[t] + static_cast<std::int64_t>(bm25::kBlockSize) - 1) /
                  static_cast<std::int64_t>(bm25::kBlockSize));
        float term_max = 0;
        for (std::int64_t j = tp[t]; j < tp[t + 1]; ++j) {
            const auto b =
                static_cast<std::size_t>(b0 + (j - tp[t]) / static_cast<std::int64_t>(bm25::kBlockSize));
            CHECK(ix.impacts[static_cast<std::size_t>(j)] <= ix.blocks.block_max[b]);
            CHECK(ix.postings.docs[static_cast<std::size_t>(j)] <= ix.blocks.block_last[b]);
            term_max = std::max(term_max, ix.impacts[static_cast<std::size_t>(j)]);
        }
        CHECK(ix.blocks.term_max[t] == term_max);
    }
}

TEST_CASE("pruned top-k over packed blocks of every offset width (> 65,536 documents)") {
    // Term 2's third block spans ~66,000 documents (4-byte offsets), term 1's blocks ~19,000
    // (2 bytes), term 0's consecutive documents 1 byte, term 3 one posting (0 bytes). Term 4
    // (documents 0-99 and 65,000-65,199) repeated sets a high bar early, so terms 1 and 2 turn
    // non-essential and are probed in place in blocks they never stepped through (a cursor decodes
    // the blocks it steps through while essential: the wide blocks come later); documents 65,050
    // (term 2) and 65,100 (term 1) must be found there to rank.
    const std::size_t n = 70000;
    Docs docs(n);
    for (std::size_t i = 0; i < n; ++i) {
        auto& d = docs[i];
        d.insert(d.end(), 1 + i % 3, 0);
        if (i % 300 == 0) d.insert(d.end(), 1 + (i / 300) % 4, 1);
        const bool wide = i >= 1000 && (i - 1000) % 1050 == 0 && (i - 1000) / 1050 < 64;
        if (i < 64 || (i >= 100 && i < 164) || wide || i >= n - 10) {
            d.insert(d.end(), 1 + i % 5, 2);
            d.insert(d.end(), 20, 5);
        }
        if (i == 35000) d.push_back(3);
        if (i < 100 || (i >= 65000 && i < 65200)) d.insert(d.end(), 1 + (i % 2 == 0), 4);
        d.insert(d.end(), i % 7, 6);
    }
    std::vector<std::vector<std::uint32_t>> queries = {
        {4, 4, 4, 1}, {4, 4, 4, 2},       {4, 4, 4, 1, 2},      {1, 2},    {0, 2},
        {2, 3},       {0, 1, 2, 3, 4},    {3, 3, 3, 3, 2},      {0, 0, 1}, {5, 2},
        {6, 2, 1},    {1, 1, 1, 2, 4, 4}, {4, 4, 4, 4, 4, 4, 2}};
    std::mt19937 rng(18);  // and random mixes, mostly of the terms with wide blocks
    for (int i = 0; i < 40; ++i) {
        std::vector<std::uint32_t> q(1 + rng() % 7);
        for (auto& t : q)
            t = static_cast<std::uint32_t>(rng() % 3 ? std::uint32_t{1} << (rng() % 3) : rng() % 7);
        queries.push_back(q);
    }
    for (auto v : {bm25::Variant::lucene, bm25::Variant::bm25l}) {
        INFO("variant ", bm25::variant_name(v));
        const Index ix = build(docs, {}, 7, params_of(v));
        // The widths this test is about are really there.
        auto width_code = [&](std::uint32_t t, std::size_t nth) {
            const auto b = static_cast<std::size_t>(ix.packed.block_ptr[t]) + nth;
            return ix.packed.data[ix.packed.block_off[b]] & 3u;
        };
        REQUIRE(width_code(0, 0) == 1);
        REQUIRE(width_code(1, 1) == 2);
        REQUIRE(width_code(2, 2) == 3);
        REQUIRE(width_code(3, 0) == 0);
        check_queries(ix, queries);
    }
}

TEST_CASE("a scratch pool is reused across calls and k, and serves indexes of different sizes") {
    std::mt19937 rng(41);
    bm25::Params p;
    const Index small = build(zipf_docs(rng, 300, 200, 30, 1.0), {}, 200, p);
    const Index large = build(zipf_docs(rng, 2000, 200, 30, 1.0), {}, 200, p);
    const std::vector<std::uint32_t> terms{0, 3, 17, 3};
    const std::vector<std::int64_t> off{0, 4};
    bm25::ScratchPool pool;
    for (int rep = 0; rep < 3; ++rep) {
        for (const Index* ix : {&small, &large, &small}) {
            for (std::size_t k : {std::size_t{1}, std::size_t{7}, std::size_t{250}}) {
                std::vector<std::int64_t> d0(k), d1(k);
                std::vector<float> s0(k), s1(k);
                bm25::search(ix->view(), terms.data(), off.data(), 1, k, 1, d0.data(), s0.data(),
                             bm25::Strategy::exhaustive);
                bm25::search(ix->view(), terms.data(), off.data(), 1, k, 1, d1.data(), s1.data(),
                             bm25::Strategy::exhaustive, &pool);
                CHECK(d0 == d1);
                for (std::size_t i = 0; i < k; ++i) CHECK(same_bits(s0[i], s1[i]));
            }
        }
    }
    CHECK(pool.size() == 1);  // one worker at a time: one scratch, kept
}

TEST_CASE("exhaustive search in document windows (4M documents and more) equals the whole-corpus sums") {
    // Past 2^22 documents the exhaustive path scores a window of 65,536 documents at a time. The
    // reference is score_all (one whole-corpus accumulation, the same float32 additions) and a full
    // sort by (-score, index). Terms: 0 dense (every 3rd document), 5 dense with tf 1-3, 1 sparse
    // (2-byte offsets), 2 with 4-byte offsets whose blocks span many windows, 3 on window edges
    // (65,535 / 65,536 / 131,071 / the last document), 4 on the first 100 documents; empty
    // documents throughout, so untouched ones score c and can fill a top-k (k = 10^6 with term 3).
    const std::size_t n = (std::size_t{1} << 22) + 70000;
    std::vector<std::uint32_t> flat;
    std::vector<std::int64_t> offsets{0};
    flat.reserve(n * 2);
    offsets.reserve(n + 1);
    for (std::size_t i = 0; i < n; ++i) {
        if (i % 3 == 0) flat.push_back(0);
        if (i % 7 == 0) flat.insert(flat.end(), 1 + i % 3, 5);
        if (i % 1000 == 0) flat.push_back(1);
        if (i % 70001 == 0) flat.insert(flat.end(), 1 + i % 4, 2);
        if (i == 65535 || i == 65536 || i == 131071 || i == n - 1) flat.push_back(3);
        if (i < 100) flat.insert(flat.end(), 1 + i % 2, 4);
        if (i % 11 == 0) flat.insert(flat.end(), i % 5, 6);  // length only (never queried)
        offsets.push_back(static_cast<std::int64_t>(flat.size()));
    }
    const std::vector<std::vector<std::uint32_t>> queries = {
        {0}, {0, 5}, {5, 0, 1}, {1}, {2}, {3}, {1, 2, 3}, {4, 0}, {2, 2, 0}, {3, 3, 1}, {0, 1, 2, 3, 4, 5}};
    for (auto v : {bm25::Variant::lucene, bm25::Variant::bm25l}) {
        INFO("variant ", bm25::variant_name(v));
        Index ix;
        ix.n_terms = 7;
        add_part(ix, flat, offsets);
        finish(ix, params_of(v));
        REQUIRE(ix.postings.doc_lens.size() == n);
        bm25::ScratchPool pool;  // shared across queries, k and packings: a dirty window would show
        std::vector<float> all(n);
        for (const auto& q : queries) {
            bm25::score_all(ix.view(), q.data(), q.size(), all.data());
            std::vector<std::uint32_t> order(n);
            for (std::size_t d = 0; d < n; ++d) order[d] = static_cast<std::uint32_t>(d);
            for (std::size_t k : {std::size_t{1}, std::size_t{10}, std::size_t{1000}, std::size_t{1000000}}) {
                std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                                  [&](std::uint32_t a, std::uint32_t b) {
                                      return all[a] > all[b] || (all[a] == all[b] && a < b);
                                  });
                const std::int64_t off[] = {0, static_cast<std::int64_t>(q.size())};
                for (bool pack : {false, true}) {
                    for (auto strategy : {bm25::Strategy::exhaustive, bm25::Strategy::automatic}) {
                        std::vector<std::int64_t> d(k);
                        std::vector<float> sc(k);
                        bm25::search(ix.view(true, pack), q.data(), off, 1, k, 1, d.data(), sc.data(),
                                     strategy, &pool);
                        std::size_t bad = k;
                        for (std::size_t i = 0; i < k && bad == k; ++i)
                            if (d[i] != order[i] || !same_bits(sc[i], all[order[i]])) bad = i;
                        INFO("query of ", q.size(), " terms starting ", q[0], ", k = ", k,
                             ", packed = ", pack, ", strategy = ", static_cast<int>(strategy),
                             ", first difference at rank ", bad);
                        REQUIRE(bad == k);
                    }
                }
            }
        }
    }
}
