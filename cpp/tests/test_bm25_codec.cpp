// The postings codec round-trips: random and edge widths (0-, 1-, 2- and 4-byte offsets and tfs,
// the widest offset 2^32 - 2), single-posting and partial last blocks; its checker refuses damage.
#include <doctest/doctest.h>

#include <random>
#include <stdexcept>
#include <vector>

#include "../src/bm25_codec.hpp"
#include "crossrank/errors.hpp"

namespace bm25 = crossrank::bm25;
namespace codec = crossrank::bm25::codec;

namespace {

struct Csr {
    std::vector<std::int64_t> term_ptr{0};
    std::vector<std::uint32_t> docs, tfs;
    void add(const std::vector<std::uint32_t>& d, const std::vector<std::uint32_t>& f) {
        docs.insert(docs.end(), d.begin(), d.end());
        tfs.insert(tfs.end(), f.begin(), f.end());
        term_ptr.push_back(static_cast<std::int64_t>(docs.size()));
    }
    std::size_t n_terms() const { return term_ptr.size() - 1; }
};

codec::PackedView view_of(const Csr& c, const codec::Packed& p) {
    codec::PackedView v;
    v.n_terms = c.n_terms();
    v.term_ptr = c.term_ptr.data();
    v.block_ptr = p.block_ptr.data();
    v.block_last = p.block_last.data();
    v.block_off = p.block_off.data();
    v.data = p.data.data();
    v.data_size = p.data.size();
    return v;
}

void round_trip(const Csr& c, std::size_t n_docs) {
    const codec::Packed p = codec::pack(c.n_terms(), c.term_ptr.data(), c.docs.data(), c.tfs.data());
    const codec::PackedView v = view_of(c, p);
    CHECK_NOTHROW(codec::check(v, n_docs));
    std::vector<std::uint32_t> docs(c.docs.size()), tfs(c.tfs.size());
    codec::unpack(v, docs.data(), tfs.data());
    CHECK(docs == c.docs);
    CHECK(tfs == c.tfs);
    // Block by block, as search decodes (documents only, then both).
    for (std::size_t t = 0; t < c.n_terms(); ++t) {
        std::size_t j = static_cast<std::size_t>(c.term_ptr[t]);
        for (auto b = static_cast<std::size_t>(p.block_ptr[t]);
             b < static_cast<std::size_t>(p.block_ptr[t + 1]); ++b) {
            std::uint32_t d[bm25::kBlockSize], f[bm25::kBlockSize];
            const std::size_t n = codec::decode(v, t, b, d, nullptr);
            REQUIRE(n >= 1);
            REQUIRE(n <= bm25::kBlockSize);
            for (std::size_t i = 0; i < n; ++i) REQUIRE(d[i] == c.docs[j + i]);
            CHECK(codec::decode(v, t, b, d, f) == n);
            for (std::size_t i = 0; i < n; ++i) REQUIRE(f[i] == c.tfs[j + i]);
            CHECK(p.block_last[b] == c.docs[j + n - 1]);
            j += n;
        }
        CHECK(j == static_cast<std::size_t>(c.term_ptr[t + 1]));
    }
}

}  // namespace

TEST_CASE("codec: edge widths and block shapes round-trip") {
    const std::uint32_t kMaxDoc = 0xFFFFFFFEu;  // the largest document index (n_docs < 2^32 - 1)
    Csr c;
    c.add({}, {});                                      // no postings: no blocks
    c.add({0}, {1});                                    // a single-posting block: 0-byte offsets and tfs
    c.add({kMaxDoc}, {0xFFFFFFFFu});                    // the largest document, a 4-byte tf - 1
    c.add({0, kMaxDoc}, {1, 7});                        // the widest offset (2^32 - 2)
    std::vector<std::uint32_t> run(200), ones(200, 1);  // consecutive documents: 1-byte offsets
    for (std::uint32_t i = 0; i < 200; ++i) run[i] = 1000 + i;
    c.add(run, ones);  // 3 full blocks (kBlockSize = 64) and a partial last one of 8
    std::vector<std::uint32_t> exact(bm25::kBlockSize * 2), f(bm25::kBlockSize * 2);
    for (std::size_t i = 0; i < exact.size(); ++i) {
        exact[i] = static_cast<std::uint32_t>(i * 3 + 5);
        f[i] = static_cast<std::uint32_t>(1 + i % 5);
    }
    c.add(exact, f);  // exactly two full blocks
    std::vector<std::uint32_t> one_more(bm25::kBlockSize + 1), g(bm25::kBlockSize + 1, 2);
    for (std::size_t i = 0; i < one_more.size(); ++i) one_more[i] = static_cast<std::uint32_t>(i * 1000);
    one_more.back() = kMaxDoc;  // the last block: one posting after a ~2^32 jump
    c.add(one_more, g);
    round_trip(c, 0xFFFFFFFFull);
}

TEST_CASE("codec: random postings of every gap and tf width round-trip") {
    std::mt19937_64 rng(18);
    for (unsigned w = 0; w <= 32; ++w) {
        Csr c;
        for (int term = 0; term < 4; ++term) {
            const std::size_t len = rng() % 300;
            std::vector<std::uint32_t> d, f;
            std::uint64_t doc = rng() % 3;
            for (std::size_t i = 0; i < len; ++i) {
                const std::uint64_t gap = w == 0 ? 0 : (rng() & ((std::uint64_t{1} << w) - 1));
                if (i) doc += gap + 1;
                if (doc >= 0xFFFFFFFFull) break;
                d.push_back(static_cast<std::uint32_t>(doc));
                f.push_back(static_cast<std::uint32_t>(
                    1 + (w == 0 ? 0 : rng() & ((std::uint64_t{1} << (w == 32 ? 31 : w)) - 1))));
            }
            c.add(d, f);
        }
        INFO("width ", w);
        round_trip(c, 0xFFFFFFFFull);
    }
}

TEST_CASE("codec: pack refuses unsorted postings; check refuses damaged blocks") {
    Csr bad;
    bad.add({3, 3}, {1, 1});
    CHECK_THROWS_AS(codec::pack(1, bad.term_ptr.data(), bad.docs.data(), bad.tfs.data()),
                    std::invalid_argument);
    Csr zero;
    zero.add({1}, {0});
    CHECK_THROWS_AS(codec::pack(1, zero.term_ptr.data(), zero.docs.data(), zero.tfs.data()),
                    std::invalid_argument);

    Csr c;
    std::vector<std::uint32_t> d(100), f(100, 1);
    for (std::uint32_t i = 0; i < 100; ++i) d[i] = i * 7;
    c.add(d, f);
    const codec::Packed good = codec::pack(1, c.term_ptr.data(), c.docs.data(), c.tfs.data());
    CHECK_NOTHROW(codec::check(view_of(c, good), 700));
    CHECK_THROWS_AS(codec::check(view_of(c, good), 693), crossrank::StateError);  // last doc 693 >= n_docs
    codec::Packed p = good;
    p.data[0] = 0x10;  // an unknown header bit
    CHECK_THROWS_AS(codec::check(view_of(c, p), 700), crossrank::StateError);
    p = good;
    p.data[0] = static_cast<std::uint8_t>(p.data[0] + 1);  // the block no longer matches its size
    CHECK_THROWS_AS(codec::check(view_of(c, p), 700), crossrank::StateError);
    p = good;
    p.block_last[1] = p.block_last[0];  // the second block would start before the first one ends
    CHECK_THROWS_AS(codec::check(view_of(c, p), 700), crossrank::StateError);
    p = good;
    p.block_off[1] += 1;
    CHECK_THROWS_AS(codec::check(view_of(c, p), 700), crossrank::StateError);
}
