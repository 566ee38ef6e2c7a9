#include "crossrank/bm25_text.hpp"

#include <string>

#include "crossrank/parallel.hpp"

namespace crossrank::bm25 {
namespace {

constexpr std::uint32_t kPending = 0xFFFFFFFFu;
constexpr std::size_t kChunk = 64;  // texts per task

struct ChunkOut {
    std::vector<std::uint32_t> ids;  // kPending where the term was not in the vocabulary
    std::vector<std::uint32_t> lens;
    std::vector<std::string> pending;  // the missing terms, in order (grow only)
};

}  // namespace

void analyze_to_ids(const Analyzer& analyzer, Vocabulary& vocab, const std::vector<std::string_view>& texts,
                    bool grow, int num_threads, std::vector<std::uint32_t>& ids,
                    std::vector<std::int64_t>& offsets) {
    const std::size_t n = texts.size();
    const std::size_t n_chunks = (n + kChunk - 1) / kChunk;
    std::vector<ChunkOut> chunks(n_chunks);
    const Vocabulary& frozen = vocab;  // read-only while threads run
    parallel_for(n_chunks, num_threads, 1, [&](std::size_t cb, std::size_t ce) {
        std::vector<std::string> terms;
        for (std::size_t c = cb; c < ce; ++c) {
            ChunkOut& out = chunks[c];
            const std::size_t end = std::min(n, (c + 1) * kChunk);
            for (std::size_t i = c * kChunk; i < end; ++i) {
                terms.clear();
                analyzer.analyze(texts[i], terms);
                std::uint32_t len = 0;
                for (auto& t : terms) {
                    const std::int64_t id = frozen.find(t);
                    if (id >= 0) {
                        out.ids.push_back(static_cast<std::uint32_t>(id));
                        ++len;
                    } else if (grow) {
                        out.ids.push_back(kPending);
                        out.pending.push_back(std::move(t));
                        ++len;
                    }
                }
                out.lens.push_back(len);
            }
        }
    });
    std::size_t total = 0;
    for (const auto& c : chunks) total += c.ids.size();
    ids.reserve(ids.size() + total);
    offsets.reserve(offsets.size() + n);
    for (auto& c : chunks) {
        std::size_t p = 0, j = 0;
        for (std::uint32_t len : c.lens) {
            for (std::uint32_t t = 0; t < len; ++t, ++j) {
                const std::uint32_t id = c.ids[j];
                ids.push_back(id != kPending ? id : vocab.add(c.pending[p++]));
            }
            offsets.push_back(static_cast<std::int64_t>(ids.size()));
        }
        c = ChunkOut();  // free as we go
    }
}

}  // namespace crossrank::bm25
