#include "bm25_codec.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "crossrank/errors.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the postings codec stores values little-endian and loads them natively"
#endif

namespace crossrank::bm25::codec {
namespace {

using detail::kBytes;

// The smallest width code whose byte count holds v.
unsigned code_of(std::uint32_t v) noexcept { return v == 0 ? 0u : v < 0x100u ? 1u : v < 0x10000u ? 2u : 3u; }

void put(std::vector<std::uint8_t>& out, const std::uint32_t* v, std::size_t n, unsigned bytes) {
    for (std::size_t i = 0; i < n; ++i)
        for (unsigned k = 0; k < bytes; ++k) out.push_back(static_cast<std::uint8_t>(v[i] >> (8 * k)));
}

}  // namespace

Packed pack(std::size_t n_terms, const std::int64_t* term_ptr, const std::uint32_t* docs,
            const std::uint32_t* tfs) {
    Packed out;
    out.block_ptr.assign(n_terms + 1, 0);
    const auto bs = static_cast<std::int64_t>(kBlockSize);
    for (std::size_t t = 0; t < n_terms; ++t) {
        const std::int64_t len = term_ptr[t + 1] - term_ptr[t];
        if (len < 0) throw std::invalid_argument("term_ptr decreases at term " + std::to_string(t));
        out.block_ptr[t + 1] = out.block_ptr[t] + (len + bs - 1) / bs;
    }
    const auto n_blocks = static_cast<std::size_t>(out.block_ptr[n_terms]);
    out.block_last.reserve(n_blocks);
    out.block_off.reserve(n_blocks + 1);
    const std::size_t nnz = n_terms ? static_cast<std::size_t>(term_ptr[n_terms]) : 0;
    out.data.reserve(nnz * 2 + n_blocks + kPad);
    std::uint32_t offs[kBlockSize], tf1[kBlockSize];
    for (std::size_t t = 0; t < n_terms; ++t) {
        for (std::int64_t j = term_ptr[t]; j < term_ptr[t + 1]; j += bs) {
            const std::size_t n = static_cast<std::size_t>(std::min(bs, term_ptr[t + 1] - j));
            const std::uint32_t* d = docs + j;
            const std::uint32_t* f = tfs + j;
            for (std::size_t i = 0; i < n; ++i) {
                const bool first = j == term_ptr[t] && i == 0;
                if (d[i] == 0xFFFFFFFFu || (!first && d[i] <= (i ? d[i - 1] : docs[j - 1])))
                    throw std::invalid_argument("docs of term " + std::to_string(t) + " are not increasing");
                if (f[i] == 0)
                    throw std::invalid_argument("a term frequency is 0 (term " + std::to_string(t) + ")");
            }
            const std::uint32_t last = d[n - 1];
            std::uint32_t tmax = 0;
            for (std::size_t i = 0; i < n; ++i) {
                offs[i] = last - d[i];
                tf1[i] = f[i] - 1;
                tmax = std::max(tmax, tf1[i]);
            }
            const unsigned dc = code_of(offs[0]), tc = code_of(tmax);  // offs[0] is the largest
            out.block_off.push_back(out.data.size());
            out.block_last.push_back(last);
            out.data.push_back(static_cast<std::uint8_t>(dc | tc << 2));
            put(out.data, offs, n, kBytes[dc]);
            put(out.data, tf1, n, kBytes[tc]);
        }
    }
    out.block_off.push_back(out.data.size());
    out.data.resize(out.data.size() + kPad, 0);
    return out;
}

void unpack(const PackedView& p, std::uint32_t* docs, std::uint32_t* tfs) {
    for (std::size_t t = 0; t < p.n_terms; ++t) {
        auto j = static_cast<std::size_t>(p.term_ptr[t]);
        for (auto b = static_cast<std::size_t>(p.block_ptr[t]);
             b < static_cast<std::size_t>(p.block_ptr[t + 1]); ++b)
            j += decode(p, t, b, docs + j, tfs ? tfs + j : nullptr);
    }
}

void check(const PackedView& p, std::size_t n_docs) {
    auto fail = [](const std::string& what) { throw StateError("packed postings: " + what); };
    if (p.block_ptr[0] != 0) fail("block_ptr must start at 0");
    if (p.data_size < kPad) fail("data is shorter than its padding");
    for (std::size_t i = p.data_size - kPad; i < p.data_size; ++i)
        if (p.data[i] != 0) fail("the padding after the last block is not zero");
    const auto bs = static_cast<std::int64_t>(kBlockSize);
    for (std::size_t t = 0; t < p.n_terms; ++t) {
        const std::int64_t len = p.term_ptr[t + 1] - p.term_ptr[t];
        if (len < 0 || p.block_ptr[t + 1] - p.block_ptr[t] != (len + bs - 1) / bs)
            fail("term " + std::to_string(t) + " has the wrong number of blocks");
    }
    const auto n_blocks = static_cast<std::size_t>(p.block_ptr[p.n_terms]);
    if (p.block_off[0] != 0 || p.block_off[n_blocks] != p.data_size - kPad)
        fail("block offsets must start at 0 and end at the data size less the padding");
    std::uint32_t docs[kBlockSize], tfs[kBlockSize];
    for (std::size_t t = 0; t < p.n_terms; ++t) {
        for (auto b = static_cast<std::size_t>(p.block_ptr[t]);
             b < static_cast<std::size_t>(p.block_ptr[t + 1]); ++b) {
            const std::string where = "block " + std::to_string(b) + " (term " + std::to_string(t) + ")";
            const std::size_t n = block_len(p, t, b);
            const std::uint64_t off = p.block_off[b], end = p.block_off[b + 1];
            if (end <= off) fail(where + " has a bad offset");
            const unsigned h = p.data[off];
            if (h >> 4) fail(where + " has a bad header");
            const unsigned dw = kBytes[h & 3u], tw = kBytes[(h >> 2) & 3u];
            if (end - off != 1 + n * (dw + tw)) fail(where + " has the wrong size for its widths");
            if (p.block_last[b] >= n_docs) fail(where + ": a document is out of range");
            // Offsets back from the last document: the first is the largest and may not pass 0.
            std::uint32_t first = 0;
            if (dw) std::memcpy(&first, p.data + off + 1, dw);
            if (first > p.block_last[b]) fail(where + ": a document is out of range");
            decode(p, t, b, docs, tfs);
            if (docs[n - 1] != p.block_last[b]) fail(where + " does not end at its block_last");
            if (b > static_cast<std::size_t>(p.block_ptr[t]) && docs[0] <= p.block_last[b - 1])
                fail(where + ": documents are not increasing");
            for (std::size_t i = 0; i < n; ++i) {
                if (i && docs[i] <= docs[i - 1]) fail(where + ": documents are not increasing");
                if (tfs[i] == 0) fail(where + ": a term frequency overflows");
            }
        }
    }
}

}  // namespace crossrank::bm25::codec
