// MaxSim core: every compiled SIMD path against a double-precision loop, edge cases, errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "../src/maxsim_kernels.hpp"
#include "crossrank/maxsim.hpp"
#include "crossrank/simd.hpp"

namespace ms = crossrank::maxsim;
namespace simd = crossrank::simd;

namespace {

struct Packed {
    std::vector<std::uint16_t> half;
    std::vector<float> full;
    std::vector<std::int64_t> offsets;
    ms::DocsView view;
};

Packed pack(const std::vector<float>& flat, const std::vector<std::int64_t>& offsets, std::size_t dim,
            ms::DType dtype) {
    Packed p;
    p.offsets = offsets;
    const std::size_t rows = static_cast<std::size_t>(offsets.back());
    const std::size_t stride = ms::row_stride(dim, dtype);
    void* dst;
    if (dtype == ms::DType::fp32) {
        p.full.resize(rows * stride + 1);
        dst = p.full.data();
    } else {
        p.half.resize(rows * stride + 1);
        dst = p.half.data();
    }
    ms::pack(flat.data(), rows, dim, dtype, false, dst, 1);
    p.view.dtype = dtype;
    p.view.data = dst;
    p.view.n_rows = rows;
    p.view.dim = dim;
    p.view.stride = stride;
    p.view.offsets = p.offsets.data();
    p.view.n_docs = offsets.size() - 1;
    return p;
}

// Reference on the stored (rounded) values, in double.
std::vector<double> reference(const std::vector<float>& q, std::size_t nq, const Packed& p) {
    const std::size_t dim = p.view.dim;
    std::vector<float> docs(p.view.n_rows * dim);
    ms::unpack(p.view.data, p.view.n_rows, dim, p.view.dtype, docs.data());
    std::vector<double> out(p.view.n_docs, 0.0);
    for (std::size_t d = 0; d < p.view.n_docs; ++d) {
        if (p.offsets[d + 1] == p.offsets[d]) continue;
        for (std::size_t i = 0; i < nq; ++i) {
            double best = -std::numeric_limits<double>::infinity();
            for (auto t = p.offsets[d]; t < p.offsets[d + 1]; ++t) {
                double s = 0;
                for (std::size_t k = 0; k < dim; ++k)
                    s += static_cast<double>(q[i * dim + k]) * docs[static_cast<std::size_t>(t) * dim + k];
                best = std::max(best, s);
            }
            out[d] += best;
        }
    }
    return out;
}

}  // namespace

TEST_CASE("maxsim: every SIMD path matches a double reference for every storage type") {
    std::mt19937 rng(42);
    std::normal_distribution<float> normal;
    for (std::size_t dim : {1u, 5u, 16u, 31u, 128u}) {
        for (std::size_t nq : {1u, 15u, 16u, 33u}) {
            std::vector<std::int64_t> offsets{0};
            for (int len : {0, 1, 7, 8, 9, 16, 17, 40}) offsets.push_back(offsets.back() + len);
            std::vector<float> flat(static_cast<std::size_t>(offsets.back()) * dim), q(nq * dim);
            for (auto& x : flat) x = normal(rng) / std::sqrt(static_cast<float>(dim));
            for (auto& x : q) x = normal(rng) / std::sqrt(static_cast<float>(dim));
            const std::int64_t qoff[2] = {0, static_cast<std::int64_t>(nq)};
            for (auto dtype : {ms::DType::fp32, ms::DType::fp16, ms::DType::bf16}) {
                Packed p = pack(flat, offsets, dim, dtype);
                const auto want = reference(q, nq, p);
                for (auto isa : simd::available_isas()) {
                    simd::force_isa(isa);
                    std::vector<float> got(p.view.n_docs);
                    ms::score(q.data(), qoff, 1, dim, p.view, nullptr, got.size(), got.data(), 2);
                    const double tol =
                        (isa == simd::Isa::avx512bf16 && dtype == ms::DType::bf16 ? 4e-3 : 1e-5) * nq * 4;
                    for (std::size_t d = 0; d < got.size(); ++d) {
                        CAPTURE(dim);
                        CAPTURE(nq);
                        CAPTURE(d);
                        CAPTURE(ms::kernel_name(dtype, isa));
                        CHECK(std::fabs(got[d] - want[d]) <= tol);
                    }
                    CHECK(got[0] == 0.0f);  // the empty document
                }
                simd::clear_forced_isa();
            }
        }
    }
}

TEST_CASE("maxsim: fp16 and bf16 conversions round to nearest even") {
    using namespace ms::detail;
    CHECK(fp32_to_fp16(1.0f) == 0x3c00);
    CHECK(fp32_to_fp16(-2.0f) == 0xc000);
    CHECK(fp32_to_fp16(65504.0f) == 0x7bff);
    CHECK(fp32_to_fp16(5.9604644775390625e-08f) == 0x0001);   // smallest subnormal
    CHECK(fp32_to_fp16(2.98023223876953125e-08f) == 0x0000);  // exact tie rounds to even (0)
    CHECK(fp32_to_fp16(1.0f + 1.0f / 2048) == 0x3c00);        // tie between 1 and 1+2^-10 -> even
    CHECK(fp32_to_fp16(1.0f + 3.0f / 2048) == 0x3c02);        // tie -> even (up)
    for (std::uint32_t h = 0; h < 0x7c00; ++h) {
        CHECK(fp32_to_fp16(fp16_to_fp32(static_cast<std::uint16_t>(h))) == h);
        CHECK(fp32_to_fp16(fp16_to_fp32(static_cast<std::uint16_t>(h | 0x8000))) == (h | 0x8000));
    }
    CHECK(fp32_to_bf16(1.0f) == 0x3f80);
    CHECK(bf16_to_fp32(0x3f80) == 1.0f);
    CHECK(fp32_to_bf16(1.0f + 1.0f / 256) == 0x3f80);  // tie -> even
}

TEST_CASE("maxsim: thread count does not change a single bit") {
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    const std::size_t dim = 24, nq = 20;
    std::vector<std::int64_t> offsets{0};
    std::uniform_int_distribution<int> len(0, 30);
    for (int i = 0; i < 2000; ++i) offsets.push_back(offsets.back() + len(rng));
    std::vector<float> flat(static_cast<std::size_t>(offsets.back()) * dim), q(nq * dim);
    for (auto& x : flat) x = normal(rng);
    for (auto& x : q) x = normal(rng);
    const std::int64_t qoff[2] = {0, static_cast<std::int64_t>(nq)};
    Packed p = pack(flat, offsets, dim, ms::DType::fp16);
    std::vector<float> one(2000), four(2000);
    ms::score(q.data(), qoff, 1, dim, p.view, nullptr, 2000, one.data(), 1);
    ms::score(q.data(), qoff, 1, dim, p.view, nullptr, 2000, four.data(), 4);
    CHECK(std::memcmp(one.data(), four.data(), one.size() * sizeof(float)) == 0);
}

TEST_CASE("maxsim: bad input throws the documented exception types") {
    std::vector<float> flat(6, 0.5f);
    Packed p = pack(flat, {0, 2, 3}, 2, ms::DType::fp32);
    const std::vector<float> q(2, 1.0f);
    const std::int64_t qoff[2] = {0, 1};
    std::vector<float> out(2);
    CHECK_THROWS_AS(ms::score(q.data(), qoff, 1, 3, p.view, nullptr, 2, out.data(), 1),
                    std::invalid_argument);
    const std::int64_t bad_ids[1] = {2};
    CHECK_THROWS_AS(ms::score(q.data(), qoff, 1, 2, p.view, bad_ids, 1, out.data(), 1), std::out_of_range);
    const std::vector<float> nan_q{std::nanf(""), 1.0f};
    CHECK_THROWS_AS(ms::score(nan_q.data(), qoff, 1, 2, p.view, nullptr, 2, out.data(), 1),
                    std::invalid_argument);
    std::vector<std::int64_t> bad_offsets{0, 3, 2};
    ms::DocsView v = p.view;
    v.offsets = bad_offsets.data();
    CHECK_THROWS_AS(ms::validate(v), std::invalid_argument);
    std::vector<float> big{70000.0f, 1.0f};
    std::vector<std::uint16_t> dst(2);
    CHECK_THROWS_AS(ms::pack(big.data(), 1, 2, ms::DType::fp16, false, dst.data(), 1), std::invalid_argument);
    CHECK_THROWS_AS(ms::dtype_from_name("int8"), std::invalid_argument);
}
