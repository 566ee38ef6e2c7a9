#include "crossrank/analyzer.hpp"

#include <algorithm>
#include <array>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "crossrank/unicode.hpp"
#include "crossrank/utf8.hpp"

namespace crossrank {
namespace {

using unicode::CharClass;

// ASCII classes, to skip the table search for the common case.
constexpr std::array<CharClass, 128> make_ascii_classes() {
    std::array<CharClass, 128> t{};
    for (int c = 0; c < 128; ++c) {
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        t[c] = alnum ? CharClass::word : CharClass::separator;
    }
    return t;
}
constexpr auto kAsciiClass = make_ascii_classes();

// Stem cache: 64 shards, each a hash map behind a reader/writer lock. Bounded: once a shard is
// full, new words are stemmed without being remembered (memory stays bounded on huge or hostile
// vocabularies; results are the same either way).
class StemCache {
  public:
    static constexpr std::size_t kShards = 64;
    static constexpr std::size_t kMaxEntriesPerShard = std::size_t(1) << 16;  // ~4M words total

    void stem_into(const std::string& word, std::vector<std::string>& out) {
        const std::size_t h = std::hash<std::string>{}(word);
        Shard& s = shards_[(h >> 7) % kShards];
        {
            std::shared_lock<std::shared_mutex> lock(s.mu);
            auto it = s.map.find(word);
            if (it != s.map.end()) {
                out.push_back(it->second);
                return;
            }
        }
        std::string stem = stem_english(word);
        {
            std::unique_lock<std::shared_mutex> lock(s.mu);
            if (s.map.size() < kMaxEntriesPerShard) s.map.emplace(word, stem);
        }
        out.push_back(std::move(stem));
    }

  private:
    struct alignas(64) Shard {
        std::shared_mutex mu;
        std::unordered_map<std::string, std::string> map;
    };
    std::array<Shard, kShards> shards_;
};

void append_lowered(std::string& out, std::string_view bytes) {
    const char* p = bytes.data();
    const char* end = p + bytes.size();
    while (p < end) {
        const auto b = static_cast<unsigned char>(*p);
        if (b < 0x80) {
            out.push_back(static_cast<char>(b >= 'A' && b <= 'Z' ? b + 32 : b));
            ++p;
            continue;
        }
        const char* before = p;
        char32_t cp = utf8::decode(p, end);
        if (cp == utf8::kInvalidCodePoint)
            out.append(before, p);  // cannot happen for analyzer terms; keep bytes for stopword input
        else
            unicode::append_lower(out, cp);
    }
}

}  // namespace

struct Analyzer::State {
    std::unordered_set<std::string> stopwords;
    std::size_t max_stopword_bytes = 0;
    StemCache cache;
};

std::vector<std::string> english_stopwords() {
    return {"a",   "an",    "and",  "are",   "as",    "at",   "be",   "but", "by",  "for",  "if",
            "in",  "into",  "is",   "it",    "no",    "not",  "of",   "on",  "or",  "such", "that",
            "the", "their", "then", "there", "these", "they", "this", "to",  "was", "will", "with"};
}

const char* analyzer_unicode_version() noexcept { return unicode::tables_version(); }

Analyzer::Analyzer(AnalyzerConfig config) : config_(std::move(config)), state_(std::make_shared<State>()) {
    for (const auto& w : config_.stopwords) {
        std::string key;
        if (config_.lowercase)
            append_lowered(key, w);
        else
            key = w;
        state_->max_stopword_bytes = std::max(state_->max_stopword_bytes, key.size());
        state_->stopwords.insert(std::move(key));
    }
}

namespace {

enum class SegKind { none, word, nospace };

}  // namespace

void Analyzer::analyze(std::string_view text, std::vector<std::string>& out) const {
    const char* p = text.data();
    const char* const end = p + text.size();
    State& st = *state_;
    const bool lower = config_.lowercase;
    const bool stem = config_.stem;
    const bool bigram = config_.cjk == CjkMode::bigram;

    std::string buf;
    // Emits one term from input bytes [b, e).
    auto emit = [&](const char* b, const char* e, bool stemmable) {
        const auto len = static_cast<std::size_t>(e - b);
        if (len > kMaxTermBytes) return;
        buf.clear();
        if (lower)
            append_lowered(buf, std::string_view(b, len));
        else
            buf.assign(b, len);
        if (!st.stopwords.empty() && buf.size() <= st.max_stopword_bytes && st.stopwords.count(buf)) return;
        if (stemmable && stem && buf.size() >= 3)  // shorter words are their own stem
            st.cache.stem_into(buf, out);
        else
            out.push_back(buf);
    };

    SegKind kind = SegKind::none;
    const char* seg_start = nullptr;
    // Units of the current nospace segment are streamed: `prev_unit` and `cur_unit` are the starts
    // of the last two units seen, `n_units` how many the segment has so far.
    const char* prev_unit = nullptr;
    const char* cur_unit = nullptr;
    std::size_t n_units = 0;

    auto start_unit = [&](const char* at) {
        if (n_units >= 1) {  // the current unit ends here
            if (!bigram)
                emit(cur_unit, at, false);
            else if (n_units >= 2)
                emit(prev_unit, at, false);
        }
        prev_unit = cur_unit;
        cur_unit = at;
        ++n_units;
    };

    auto flush = [&](const char* seg_end) {
        if (kind == SegKind::word) {
            emit(seg_start, seg_end, true);
        } else if (kind == SegKind::nospace) {
            if (!bigram || n_units == 1)
                emit(cur_unit, seg_end, false);
            else
                emit(prev_unit, seg_end, false);
            n_units = 0;
        }
        kind = SegKind::none;
    };

    while (p < end) {
        const char* cp_start = p;
        CharClass cls;
        const auto b = static_cast<unsigned char>(*p);
        if (b < 0x80) {
            cls = kAsciiClass[b];
            ++p;
        } else {
            const char32_t cp = utf8::decode(p, end);
            cls = cp == utf8::kInvalidCodePoint ? CharClass::separator : unicode::char_class(cp);
        }
        switch (cls) {
            case CharClass::separator:
                if (kind != SegKind::none) flush(cp_start);
                break;
            case CharClass::word:
                if (kind != SegKind::word) {
                    if (kind != SegKind::none) flush(cp_start);
                    kind = SegKind::word;
                    seg_start = cp_start;
                }
                break;
            case CharClass::nospace:
                if (kind != SegKind::nospace) {
                    if (kind != SegKind::none) flush(cp_start);
                    kind = SegKind::nospace;
                    seg_start = cp_start;
                }
                start_unit(cp_start);
                break;
            case CharClass::mark:
            case CharClass::nospace_mark:
                // A mark continues the current segment (and unit); with nothing before it, it
                // starts a segment (and unit) of its own script's kind.
                if (kind == SegKind::none) {
                    seg_start = cp_start;
                    if (cls == CharClass::mark) {
                        kind = SegKind::word;
                    } else {
                        kind = SegKind::nospace;
                        start_unit(cp_start);
                    }
                }
                break;
        }
    }
    if (kind != SegKind::none) flush(end);
}

}  // namespace crossrank
