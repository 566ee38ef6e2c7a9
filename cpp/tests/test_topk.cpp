#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "crossrank/topk.hpp"

namespace {

// Reference: stable sort of all items by (-score, index).
std::vector<std::uint32_t> reference(const std::vector<float>& scores, std::size_t k) {
    std::vector<std::uint32_t> idx(scores.size());
    std::iota(idx.begin(), idx.end(), 0u);
    std::stable_sort(idx.begin(), idx.end(),
                     [&](std::uint32_t a, std::uint32_t b) { return scores[a] > scores[b]; });
    idx.resize(std::min(k, idx.size()));
    return idx;
}

}  // namespace

TEST_CASE("TopK and TopKFloat equal a stable sort, ties by lower index, any push order") {
    std::mt19937 rng(42);
    for (int trial = 0; trial < 200; ++trial) {
        const std::size_t n = rng() % 300 + 1, k = rng() % 40 + 1;
        std::vector<float> scores(n);
        for (auto& s : scores) s = static_cast<float>(rng() % 7) * 0.5f - 1.0f;  // many ties, negatives
        const auto want = reference(scores, k);
        std::vector<std::uint32_t> order(n);
        std::iota(order.begin(), order.end(), 0u);
        std::shuffle(order.begin(), order.end(), rng);
        crossrank::TopK<float, std::uint32_t> heap(k);
        crossrank::TopKFloat buffer(k);
        for (std::size_t j = 0; j < order.size(); ++j) {
            const auto i = order[j];
            heap.push(scores[i], i);
            buffer.push(scores[i], i);
            if (j % 17 == 5) buffer.tighten();  // raising the bar early never changes the result
        }
        std::vector<float> s1(k), s2(k);
        std::vector<std::uint32_t> i1(k), i2(k);
        REQUIRE(heap.size() == want.size());
        heap.drain_sorted(s1.data(), i1.data());
        const std::size_t got = buffer.drain_sorted(s2.data(), i2.data());
        REQUIRE(got == want.size());
        for (std::size_t r = 0; r < want.size(); ++r) {
            CHECK(i1[r] == want[r]);
            CHECK(i2[r] == want[r]);
            CHECK(s2[r] == scores[want[r]]);
        }
    }
}

TEST_CASE("TopKFloat keys order floats like operator< and indices inversely") {
    using T = crossrank::TopKFloat;
    const float xs[] = {-1e30f, -2.5f, -0.0f, 0.0f, 1e-30f, 3.0f, 1e30f};
    for (std::size_t a = 0; a + 1 < sizeof xs / sizeof xs[0]; ++a)
        CHECK(T::key(xs[a], 0) < T::key(xs[a + 1], 0));
    CHECK(T::key(1.0f, 3) > T::key(1.0f, 4));
    CHECK(T::score_of(T::key(-2.5f, 9)) == -2.5f);
    CHECK(T::index_of(T::key(7.0f, 123456)) == 123456u);
}
