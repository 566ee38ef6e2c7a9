// Several caller threads sharing one read-only structure (a BM25 index, packed MaxSim documents, a
// pack plan, a vocabulary), each call also fanning out on the core's own threads. Every result must
// equal the serial one bit for bit. These cases are what the ThreadSanitizer build runs
// (CROSSRANK_SANITIZE=thread, ctest -R concurrent): a data race here is a failure even when the
// numbers happen to agree.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "crossrank/bm25.hpp"
#include "crossrank/maxsim.hpp"
#include "crossrank/pack.hpp"
#include "crossrank/parallel.hpp"
#include "crossrank/vocabulary.hpp"

namespace bm25 = crossrank::bm25;
namespace ms = crossrank::maxsim;
namespace pk = crossrank::pack;

namespace {

constexpr int kCallers = 4;  // caller threads; each call also uses kInner core threads
constexpr int kInner = 2;

// Runs fn(t) on kCallers std::threads at once and joins them.
template <class F>
void on_threads(F fn) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kCallers; ++t) threads.emplace_back([&fn, t] { fn(t); });
    for (auto& th : threads) th.join();
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// A random BM25 index owning its arrays.
struct Index {
    bm25::Postings postings;
    std::vector<float> impacts, nonocc;
    std::size_t n_terms = 0;

    Index(std::size_t n_docs, std::size_t n_terms_, std::uint32_t seed) : n_terms(n_terms_) {
        std::mt19937 rng(seed);
        std::vector<std::uint32_t> flat;
        std::vector<std::int64_t> offsets{0};
        for (std::size_t d = 0; d < n_docs; ++d) {
            const std::size_t len = rng() % 40;
            for (std::size_t i = 0; i < len; ++i) flat.push_back(rng() % n_terms);
            offsets.push_back(static_cast<std::int64_t>(flat.size()));
        }
        std::vector<std::int64_t> empty_ptr{0};
        bm25::PostingsView base;
        base.term_ptr = empty_ptr.data();
        postings = bm25::build_postings(base, n_terms, flat.data(), offsets.data(), n_docs);
        impacts.resize(postings.docs.size());
        nonocc.resize(n_terms);
        bm25::PostingsView pv;
        pv.n_terms = n_terms;
        pv.n_docs = n_docs;
        pv.term_ptr = postings.term_ptr.data();
        pv.docs = postings.docs.data();
        pv.tfs = postings.tfs.data();
        pv.doc_lens = postings.doc_lens.data();
        bm25::Params p;
        p.variant = bm25::Variant::bm25plus;  // non-zero non-occurrence scores: every array is read
        bm25::compute_impacts(p, pv, impacts.data(), nonocc.data(), kInner);
    }

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

struct Queries {
    std::vector<std::uint32_t> terms;
    std::vector<std::int64_t> offsets{0};
    Queries(std::size_t n, std::size_t n_terms, std::uint32_t seed) {
        std::mt19937 rng(seed);
        for (std::size_t q = 0; q < n; ++q) {
            const std::size_t len = rng() % 6;  // empty queries included
            for (std::size_t i = 0; i < len; ++i) terms.push_back(rng() % n_terms);
            offsets.push_back(static_cast<std::int64_t>(terms.size()));
        }
    }
    std::size_t size() const { return offsets.size() - 1; }
};

}  // namespace

TEST_CASE("concurrent: BM25 searches from several threads on one index equal the serial results") {
    const Index index(3000, 400, 11);
    const bm25::IndexView view = index.view();
    const Queries qs(64, 400, 12);
    const std::size_t k = 20, n = qs.size();
    std::vector<std::int64_t> want_docs(n * k);
    std::vector<float> want_scores(n * k);
    bm25::search(view, qs.terms.data(), qs.offsets.data(), n, k, 1, want_docs.data(), want_scores.data());
    std::vector<float> want_all(index.postings.doc_lens.size());
    bm25::score_all(view, qs.terms.data(), static_cast<std::size_t>(qs.offsets[1]), want_all.data());

    std::vector<std::vector<std::int64_t>> docs(kCallers, std::vector<std::int64_t>(n * k));
    std::vector<std::vector<float>> scores(kCallers, std::vector<float>(n * k));
    std::vector<std::vector<float>> all(kCallers, std::vector<float>(want_all.size()));
    bm25::ScratchPool pool;  // shared by every caller, as a Python BM25View shares its own
    on_threads([&](int t) {
        for (int rep = 0; rep < 3; ++rep)
            bm25::search(view, qs.terms.data(), qs.offsets.data(), n, k, kInner, docs[t].data(),
                         scores[t].data(), bm25::Strategy::automatic, &pool);
        bm25::score_all(view, qs.terms.data(), static_cast<std::size_t>(qs.offsets[1]), all[t].data());
    });
    for (int t = 0; t < kCallers; ++t) {
        CHECK(docs[t] == want_docs);
        CHECK(same_bits(scores[t], want_scores));
        CHECK(same_bits(all[t], want_all));
    }
    CHECK(pool.size() <= static_cast<std::size_t>(kCallers * kInner));
}

TEST_CASE("concurrent: MaxSim scoring from several threads on shared packed documents equals serial") {
    std::mt19937 rng(5);
    std::normal_distribution<float> normal;
    const std::size_t dim = 32, nq = 8, n_docs = 300;
    std::vector<std::int64_t> offsets{0};
    for (std::size_t d = 0; d < n_docs; ++d)
        offsets.push_back(offsets.back() + static_cast<std::int64_t>(rng() % 20));
    const auto rows = static_cast<std::size_t>(offsets.back());
    std::vector<float> flat(rows * dim), q(nq * dim);
    for (auto& x : flat) x = normal(rng);
    for (auto& x : q) x = normal(rng);
    const std::size_t stride = ms::row_stride(dim, ms::DType::fp16);
    std::vector<std::uint16_t> packed(rows * stride);
    ms::pack(flat.data(), rows, dim, ms::DType::fp16, true, packed.data(), kInner);
    ms::DocsView docs;
    docs.dtype = ms::DType::fp16;
    docs.data = packed.data();
    docs.n_rows = rows;
    docs.stride = stride;
    docs.dim = dim;
    docs.offsets = offsets.data();
    docs.n_docs = n_docs;
    const std::int64_t qoff[2] = {0, static_cast<std::int64_t>(nq)};
    std::vector<float> want(n_docs);
    ms::score(q.data(), qoff, 1, dim, docs, nullptr, n_docs, want.data(), 1);

    // Each caller also packs its own copy of the vectors (pack runs on the core's threads too).
    std::vector<std::vector<float>> got(kCallers, std::vector<float>(n_docs));
    std::vector<std::vector<std::uint16_t>> repacked(kCallers, std::vector<std::uint16_t>(rows * stride));
    on_threads([&](int t) {
        ms::pack(flat.data(), rows, dim, ms::DType::fp16, true, repacked[t].data(), kInner);
        for (int rep = 0; rep < 3; ++rep)
            ms::score(q.data(), qoff, 1, dim, docs, nullptr, n_docs, got[t].data(), kInner);
    });
    for (int t = 0; t < kCallers; ++t) {
        CHECK(same_bits(got[t], want));
        CHECK(repacked[t] == packed);
    }
}

TEST_CASE("concurrent: pack plans and batches built from several threads equal the serial ones") {
    pk::PairTemplate tmpl;
    tmpl.prefix = {101};
    tmpl.prefix_types = {0};
    tmpl.middle = {102};
    tmpl.middle_types = {0};
    tmpl.suffix = {102};
    tmpl.suffix_types = {1};
    std::mt19937 rng(9);
    std::vector<std::int32_t> qv, dv;
    std::vector<std::int64_t> qo{0}, doff{0};
    for (int i = 0; i < 200; ++i) {
        for (std::uint32_t j = 0, n = 1 + rng() % 12; j < n; ++j)
            qv.push_back(1000 + static_cast<std::int32_t>(rng() % 500));
        qo.push_back(static_cast<std::int64_t>(qv.size()));
        for (std::uint32_t j = 0, n = rng() % 300; j < n; ++j)
            dv.push_back(2000 + static_cast<std::int32_t>(rng() % 500));
        doff.push_back(static_cast<std::int64_t>(dv.size()));
    }
    const pk::Ragged queries{qv.data(), qv.size(), qo.data(), qo.size() - 1};
    const pk::Ragged docs{dv.data(), dv.size(), doff.data(), doff.size() - 1};
    pk::Options opt;
    opt.max_length = 128;
    opt.window_stride = 64;
    opt.max_batch_tokens = 2048;

    // All batches of a plan, flattened (ids, mask and types one after another).
    auto materialize_all = [&](const pk::Plan& plan) {
        std::vector<std::int64_t> out;
        for (std::size_t b = 0; b < plan.n_batches(); ++b) {
            const auto cells = static_cast<std::size_t>(plan.batch_rows(b) * plan.batch_length[b]);
            std::vector<std::int64_t> ids(cells), mask(cells), types(cells);
            pk::materialize(plan, queries, docs, tmpl, b, ids.data(), mask.data(), types.data());
            out.insert(out.end(), ids.begin(), ids.end());
            out.insert(out.end(), mask.begin(), mask.end());
            out.insert(out.end(), types.begin(), types.end());
        }
        return out;
    };
    const pk::Plan want = pk::plan(queries, docs, tmpl, opt);
    const std::vector<std::int64_t> want_cells = materialize_all(want);
    REQUIRE(want.n_batches() > 1);

    std::vector<std::vector<std::int64_t>> order(kCallers), cells(kCallers), shared(kCallers);
    on_threads([&](int t) {
        const pk::Plan mine = pk::plan(queries, docs, tmpl, opt);
        order[t] = mine.order;
        cells[t] = materialize_all(mine);
        shared[t] = materialize_all(want);  // one plan read by every thread at once
    });
    for (int t = 0; t < kCallers; ++t) {
        CHECK(order[t] == want.order);
        CHECK(cells[t] == want_cells);
        CHECK(shared[t] == want_cells);
    }
}

TEST_CASE("concurrent: parallel_for called from several threads at once covers each range once") {
    std::vector<std::vector<int>> hits(kCallers, std::vector<int>(5000, 0));
    on_threads([&](int t) {
        crossrank::parallel_for(hits[t].size(), 3, 7, [&](std::size_t b, std::size_t e) {
            for (std::size_t i = b; i < e; ++i) ++hits[t][i];
        });
    });
    for (const auto& h : hits)
        for (int x : h) CHECK(x == 1);
}

TEST_CASE("concurrent: Vocabulary lookups from several threads on one vocabulary") {
    crossrank::Vocabulary vocab;
    std::vector<std::string> terms;
    for (int i = 0; i < 2000; ++i) terms.push_back("term" + std::to_string(i * 7));
    for (const auto& t : terms) vocab.add(t);
    std::vector<int> wrong(kCallers, 0);
    on_threads([&](int t) {
        for (std::size_t i = 0; i < terms.size(); ++i) {
            if (vocab.find(terms[i]) != static_cast<std::int64_t>(i)) ++wrong[t];
            if (vocab.term(i) != terms[i]) ++wrong[t];
        }
        if (vocab.find("absent") != -1) ++wrong[t];
    });
    for (int w : wrong) CHECK(w == 0);
}
