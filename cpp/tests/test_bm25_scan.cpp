// The dense path's scan kernels (SSE2 baseline and each compiled SIMD form) select exactly the
// top-k of acc + c against a full sort, ties by lower index, and leave the accumulator all zero.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "../src/bm25_scan.hpp"
#include "crossrank/simd.hpp"

namespace detail = crossrank::bm25::detail;
namespace simd = crossrank::simd;

namespace {

struct Kernel {
    const char* name;
    detail::ScanFn fn;
};

std::vector<Kernel> kernels() {
    std::vector<Kernel> out = {{"sse2", detail::scan_sse2}};
#ifdef CROSSRANK_HAVE_AVX512
    if (simd::cpu_supports(simd::Isa::avx512)) out.push_back({"avx512", detail::scan_avx512});
#endif
    return out;
}

// The reference: every document's acc + c, the seeded ones (-inf) excluded, stable-sorted.
std::vector<std::pair<float, std::uint32_t>> reference(const std::vector<float>& acc, float c, std::size_t k,
                                                       std::uint32_t base) {
    std::vector<std::pair<float, std::uint32_t>> all;
    for (std::size_t d = 0; d < acc.size(); ++d)
        all.emplace_back(acc[d] + c, base + static_cast<std::uint32_t>(d));
    std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    all.resize(std::min(k, all.size()));
    return all;
}

}  // namespace

TEST_CASE("dense scan kernels equal a full sort, reset the accumulator, and agree with each other") {
    std::mt19937 rng(3);
    for (std::size_t n : {std::size_t{1}, std::size_t{7}, std::size_t{31}, std::size_t{32}, std::size_t{33},
                          std::size_t{100}, std::size_t{1000}, std::size_t{4099}}) {
        for (std::size_t k : {std::size_t{1}, std::size_t{5}, std::size_t{64}, n}) {
            for (int pattern = 0; pattern < 3; ++pattern) {
                // 0: distinct scores; 1: few distinct values (ties everywhere); 2: mostly zero.
                std::vector<float> acc(n);
                for (auto& a : acc) {
                    if (pattern == 0)
                        a = static_cast<float>(rng() % 1000000) / 997.0f;
                    else if (pattern == 1)
                        a = static_cast<float>(rng() % 4);
                    else
                        a = rng() % 10 == 0 ? static_cast<float>(rng() % 50) / 7.0f : 0.0f;
                }
                const float c = pattern == 1 ? 0.25f : 0.0f;
                const std::uint32_t base = pattern == 2 ? 70000u : 0u;
                const auto want = reference(acc, c, k, base);
                for (const Kernel& kernel : kernels()) {
                    // after_kept (windows, where every earlier document was scanned before) is
                    // exercised on an empty selection; without it, a bar set beforehand by seeds.
                    for (bool after_kept : {false, true}) {
                        INFO(kernel.name, " n=", n, " k=", k, " pattern=", pattern,
                             " after_kept=", after_kept);
                        std::vector<float> work = acc;
                        crossrank::TopKFloat top(k);
                        kernel.fn(after_kept, work.data(), n, c, top, base);
                        std::vector<float> scores(k);
                        std::vector<std::uint32_t> ids(k);
                        const std::size_t got = top.drain_sorted(scores.data(), ids.data());
                        REQUIRE(got == want.size());
                        for (std::size_t i = 0; i < got; ++i) {
                            REQUIRE(ids[i] == want[i].second);
                            REQUIRE(std::memcmp(&scores[i], &want[i].first, sizeof(float)) == 0);
                        }
                        REQUIRE(std::all_of(work.begin(), work.end(), [](float a) { return a == 0.0f; }));
                    }
                }
            }
        }
    }
}

TEST_CASE("dense scan kernels skip seeded documents (-inf) once seeds set the bar") {
    // As the whole-corpus path does: the rarest terms' documents enter first with their exact
    // scores and are marked -inf; the scan must not push them again.
    std::mt19937 rng(9);
    const std::size_t n = 5000, k = 20;
    std::vector<float> acc(n);
    for (auto& a : acc) a = static_cast<float>(rng() % 100000) / 311.0f;
    const auto want = reference(acc, 0.0f, k, 0);
    for (const Kernel& kernel : kernels()) {
        INFO(kernel.name);
        std::vector<float> work = acc;
        crossrank::TopKFloat top(k);
        for (std::size_t d = 0; d < n; d += 97) {  // seeds
            top.push(work[d], static_cast<std::uint32_t>(d));
            work[d] = -std::numeric_limits<float>::infinity();
        }
        top.tighten();
        kernel.fn(false, work.data(), n, 0.0f, top, 0);
        std::vector<float> scores(k);
        std::vector<std::uint32_t> ids(k);
        REQUIRE(top.drain_sorted(scores.data(), ids.data()) == k);
        for (std::size_t i = 0; i < k; ++i) {
            REQUIRE(ids[i] == want[i].second);
            REQUIRE(scores[i] == want[i].first);
        }
        REQUIRE(std::all_of(work.begin(), work.end(), [](float a) { return a == 0.0f; }));
    }
}
