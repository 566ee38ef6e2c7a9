#include "crossrank/analyzer.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <shared_mutex>
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

// 64-bit hash of a short byte string (terms are mostly < 16 bytes): 8 bytes at a time with
// multiply-xorshift mixing. One hash per term serves the stopword table and the stem cache.
inline std::uint64_t hash_bytes(const char* p, std::size_t n) noexcept {
    std::uint64_t h = 0x9E3779B97F4A7C15ull ^ (static_cast<std::uint64_t>(n) * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    if (n) {
        std::uint64_t v = 0;
        std::memcpy(&v, p, n);
        h = (h ^ v) * 0x94D049BB133111EBull;
        h ^= h >> 29;
    }
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
}

// Open-addressing (linear probing) table of strings keyed by their hash_bytes value.
class StringTable {
  public:
    struct Slot {
        std::uint64_t hash = 0;
        bool used = false;
        std::string key, value;
    };

    const Slot* find(std::uint64_t h, std::string_view key) const noexcept {
        if (slots_.empty()) return nullptr;
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t i = (h >> 6) & mask; slots_[i].used; i = (i + 1) & mask)
            if (slots_[i].hash == h && slots_[i].key == key) return &slots_[i];
        return nullptr;
    }
    // Inserts a key that is not present.
    void insert(std::uint64_t h, std::string key, std::string value) {
        if ((size_ + 1) * 2 > slots_.size()) grow();
        place(Slot{h, true, std::move(key), std::move(value)});
        ++size_;
    }
    std::size_t size() const noexcept { return size_; }

  private:
    std::vector<Slot> slots_;
    std::size_t size_ = 0;

    void place(Slot&& s) {
        const std::size_t mask = slots_.size() - 1;
        std::size_t i = (s.hash >> 6) & mask;
        while (slots_[i].used) i = (i + 1) & mask;
        slots_[i] = std::move(s);
    }
    void grow() {
        std::vector<Slot> old = std::move(slots_);
        slots_ = std::vector<Slot>(old.empty() ? 64 : old.size() * 2);
        for (Slot& s : old)
            if (s.used) place(std::move(s));
    }
};

// Stem cache: 64 shards, each a StringTable behind a reader/writer lock. Bounded: once a shard
// is full, new words are stemmed without being remembered (memory stays bounded on huge or
// hostile vocabularies; results are the same either way).
class StemCache {
  public:
    static constexpr std::size_t kShards = 64;
    static constexpr std::size_t kMaxEntriesPerShard = 8192;  // ~520k distinct words in total

    void stem_into(std::uint64_t h, const std::string& word, std::vector<std::string>& out) {
        Shard& s = shards_[h % kShards];
        {
            std::shared_lock<std::shared_mutex> lock(s.mu);
            if (const auto* slot = s.table.find(h, word)) {
                out.push_back(slot->value);
                return;
            }
        }
        std::string stem = stem_english(word);
        {
            std::unique_lock<std::shared_mutex> lock(s.mu);
            if (s.table.size() < kMaxEntriesPerShard && !s.table.find(h, word)) s.table.insert(h, word, stem);
        }
        out.push_back(std::move(stem));
    }

  private:
    struct alignas(64) Shard {
        std::shared_mutex mu;
        StringTable table;
    };
    std::array<Shard, kShards> shards_;
};

void append_lowered(std::string& out, std::string_view bytes) {
    const char* p = bytes.data();
    const char* end = p + bytes.size();
    // ASCII prefix in one go (most terms are entirely ASCII).
    const char* q = p;
    while (q < end && static_cast<unsigned char>(*q) < 0x80) ++q;
    const std::size_t start = out.size();
    out.resize(start + static_cast<std::size_t>(q - p));
    char* dst = &out[start];
    for (; p < q; ++p, ++dst) *dst = static_cast<char>(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
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
            out.append(before, p);  // only reachable for stopwords given by the user
        else
            unicode::append_lower(out, cp);
    }
}

}  // namespace

struct Analyzer::State {
    StringTable stopwords;
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
        const std::uint64_t h = hash_bytes(key.data(), key.size());
        if (state_->stopwords.find(h, key)) continue;  // duplicate
        state_->max_stopword_bytes = std::max(state_->max_stopword_bytes, key.size());
        state_->stopwords.insert(h, std::move(key), std::string());
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
        const bool may_stop = buf.size() <= st.max_stopword_bytes;
        const bool may_stem = stemmable && stem && buf.size() >= 3;  // shorter words are their own stem
        if (!may_stop && !may_stem) {
            out.push_back(buf);
            return;
        }
        const std::uint64_t h = hash_bytes(buf.data(), buf.size());
        if (may_stop && st.stopwords.find(h, buf)) return;
        if (may_stem)
            st.cache.stem_into(h, buf, out);
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
