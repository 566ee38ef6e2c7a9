#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "crossrank/parallel.hpp"
#include "crossrank/simd.hpp"

TEST_CASE("parallel_for covers every index exactly once") {
    for (int threads : {1, 2, 4, 7}) {
        std::vector<std::atomic<int>> hits(1000);
        crossrank::parallel_for(hits.size(), threads, 13, [&](std::size_t b, std::size_t e) {
            for (std::size_t i = b; i < e; ++i) hits[i]++;
        });
        for (auto& h : hits) CHECK(h.load() == 1);
    }
}

TEST_CASE("parallel_for rethrows a worker's exception on the caller") {
    CHECK_THROWS_AS(crossrank::parallel_for(100, 4, 1,
                                            [](std::size_t b, std::size_t) {
                                                if (b == 57) throw std::invalid_argument("boom");
                                            }),
                    std::invalid_argument);
}

TEST_CASE("parallel_for on zero items calls nothing") {
    bool called = false;
    crossrank::parallel_for(0, 4, 1, [&](std::size_t, std::size_t) { called = true; });
    CHECK_FALSE(called);
}

TEST_CASE("default threads is at least one") { CHECK(crossrank::default_num_threads() >= 1); }

TEST_CASE("SIMD dispatch: scalar is always available and can be forced") {
    using namespace crossrank::simd;
    auto avail = available_isas();
    REQUIRE(!avail.empty());
    CHECK(avail.front() == Isa::scalar);
    force_isa(Isa::scalar);
    CHECK(active_isa() == Isa::scalar);
    clear_forced_isa();
    CHECK(isa_from_name("scalar") == Isa::scalar);
    CHECK_THROWS_AS(isa_from_name("sse9"), std::invalid_argument);
}
