#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "crossrank/analyzer.hpp"
#include "crossrank/unicode.hpp"
#include "crossrank/utf8.hpp"

using crossrank::Analyzer;
using crossrank::AnalyzerConfig;
using crossrank::CjkMode;
using Terms = std::vector<std::string>;

namespace {

Terms run(const Analyzer& a, std::string_view text) {
    Terms out;
    a.analyze(text, out);
    return out;
}

AnalyzerConfig plain(CjkMode cjk = CjkMode::bigram) {
    AnalyzerConfig c;
    c.stem = false;
    c.cjk = cjk;
    return c;
}

std::vector<char32_t> decode_all(std::string_view s) {
    std::vector<char32_t> out;
    const char* p = s.data();
    while (p < s.data() + s.size()) out.push_back(crossrank::utf8::decode(p, s.data() + s.size()));
    return out;
}

}  // namespace

TEST_CASE("utf8 decode: valid sequences of every length") {
    auto cps = decode_all("a\xC3\xA9\xE6\x9D\xB1\xF0\x9F\x98\x80");  // a é 東 😀
    CHECK(cps == std::vector<char32_t>{U'a', 0xE9, 0x6771, 0x1F600});
}

TEST_CASE("utf8 decode: each invalid byte is consumed alone and reported") {
    constexpr char32_t X = crossrank::utf8::kInvalidCodePoint;
    CHECK(decode_all("\xFF") == std::vector<char32_t>{X});
    CHECK(decode_all("\x80\x80") == std::vector<char32_t>{X, X});                // stray continuations
    CHECK(decode_all("\xC0\xAF") == std::vector<char32_t>{X, X});                // overlong '/'
    CHECK(decode_all("\xE0\x80\xAF") == std::vector<char32_t>{X, X, X});         // overlong 3-byte
    CHECK(decode_all("\xED\xA0\x80") == std::vector<char32_t>{X, X, X});         // surrogate U+D800
    CHECK(decode_all("\xF4\x90\x80\x80") == std::vector<char32_t>{X, X, X, X});  // > U+10FFFF
    CHECK(decode_all("\xE2\x82"
                     "A") == std::vector<char32_t>{X, X, U'A'});          // truncated, resyncs
    CHECK(decode_all("\xF0\x9F\x98") == std::vector<char32_t>{X, X, X});  // truncated at end
    CHECK(decode_all("\xC3") == std::vector<char32_t>{X});                // lone lead at end
}

TEST_CASE("invalid bytes separate tokens and never crash") {
    Analyzer a(plain());
    CHECK(run(a,
              "ab\xFF"
              "cd") == Terms{"ab", "cd"});
    CHECK(run(a,
              "ab\xE2\x82"
              "cd") == Terms{"ab", "cd"});
    CHECK(run(a,
              "ab\xED\xA0\x80"
              "cd") == Terms{"ab", "cd"});
    CHECK(run(a, "\xF0\x9F\x98") == Terms{});
    CHECK(run(a, "caf\xC3") == Terms{"caf"});
    std::string all_bytes;
    for (int b = 0; b < 256; ++b) all_bytes.push_back(static_cast<char>(b));
    for (int rep = 0; rep < 3; ++rep) all_bytes += all_bytes;
    Terms t = run(a, all_bytes);
    CHECK(!t.empty());
}

TEST_CASE("lowercasing beyond ASCII") {
    Analyzer a(plain());
    CHECK(run(a, "ÉCOLE Straße ΑΘΗΝΑ МОСКВА") == Terms{"école", "straße", "αθηνα", "москва"});
    CHECK(run(a, "ΣΟΦΟΣ") == Terms{"σοφοσ"});                     // no final-sigma context
    CHECK(run(a, "İZMİR") == Terms{"i\xCC\x87zmi\xCC\x87r"});     // U+0130 -> i + U+0307, as str.lower()
    CHECK(run(a, "ＡＢＣ１") == Terms{"ａｂｃ１"});               // fullwidth letters are letters
    CHECK(crossrank::unicode::simple_lower(0x10400) == 0x10428);  // Deseret, outside the BMP
    AnalyzerConfig keep = plain();
    keep.lowercase = false;
    CHECK(run(Analyzer(keep), "ÉCOLE Straße") == Terms{"ÉCOLE", "Straße"});
}

TEST_CASE("separators: punctuation, symbols, whitespace; marks stay in words") {
    Analyzer a(plain());
    CHECK(run(a, "state-of-the-art, e.g. U.S.A.!") ==
          Terms{"state", "of", "the", "art", "e", "g", "u", "s", "a"});
    CHECK(run(a, "\t x\u00A0y\u3000z ") == Terms{"x", "y", "z"});  // NBSP and ideographic space
    CHECK(run(a, "cafe\xCC\x81 \xCC\x81x") == Terms{"cafe\xCC\x81", "\xCC\x81x"});  // combining acute
    CHECK(run(a, "a1b2 ²") == Terms{"a1b2", "²"});  // digits in the str.isalnum() sense
    CHECK(run(a, "") == Terms{});
    CHECK(run(a, " \n\t.,;") == Terms{});
}

TEST_CASE("CJK and other scripts without spaces: bigrams by default, unigrams on request") {
    Analyzer bi(plain(CjkMode::bigram));
    Analyzer uni(plain(CjkMode::unigram));
    CHECK(run(bi, "東京タワー") == Terms{"東京", "京タ", "タワ", "ワー"});
    CHECK(run(uni, "東京タワー") == Terms{"東", "京", "タ", "ワ", "ー"});
    CHECK(run(bi, "東") == Terms{"東"});  // a lone character is never dropped
    CHECK(run(bi, "한국어 텍스트") == Terms{"한국", "국어", "텍스", "스트"});
    CHECK(run(bi, "iPhone7で買う") == Terms{"iphone7", "で買", "買う"});
    // Thai: a base letter and its combining vowel/tone marks form one unit.
    CHECK(run(uni, "ที่นี่") == Terms{"ที่", "นี่"});
    CHECK(run(bi, "ที่นี่") == Terms{"ที่นี่"});
    CHECK(run(bi, "ภาษาไทย") == Terms{"ภา", "าษ", "ษา", "าไ", "ไท", "ทย"});
}

TEST_CASE("stopwords are compared after lowercasing, before stemming") {
    AnalyzerConfig c;
    c.stopwords = crossrank::english_stopwords();
    Analyzer a(c);
    CHECK(run(a, "The cats AND the dogs are running") == Terms{"cat", "dog", "run"});
    AnalyzerConfig custom = plain();
    custom.stopwords = {"Running", "über"};  // lowercased too since lowercase is on
    CHECK(run(Analyzer(custom), "running ÜBER runs") == Terms{"runs"});
    AnalyzerConfig none = plain();
    CHECK(run(Analyzer(none), "the a") == Terms{"the", "a"});
    CHECK(crossrank::english_stopwords().size() == 33);
}

TEST_CASE("stemming applies to words only, never to CJK terms") {
    AnalyzerConfig c;
    Analyzer a(c);
    CHECK(run(a, "generously running ponies 東京") == Terms{"generous", "run", "poni", "東京"});
}

TEST_CASE("terms longer than kMaxTermBytes are dropped, the rest kept") {
    Analyzer a(plain());
    std::string ok(crossrank::kMaxTermBytes, 'a');
    std::string too_long(crossrank::kMaxTermBytes + 1, 'b');
    CHECK(run(a, ok + " " + too_long + " c") == Terms{ok, "c"});
    std::string huge(10u << 20, 'x');  // a 10 MB "word"
    CHECK(run(a, "start " + huge + " end") == Terms{"start", "end"});
}

TEST_CASE("analyze is thread-safe and deterministic across threads") {
    AnalyzerConfig c;
    c.stopwords = crossrank::english_stopwords();
    Analyzer a(c);
    std::string text;
    for (int i = 0; i < 200; ++i)
        text += "The generously running ponies of Zürich w" + std::to_string(i) + "ing ";
    const Terms expected = run(Analyzer(c), text);
    std::vector<Terms> got(8);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) threads.emplace_back([&, t] { got[t] = run(a, text); });
    for (auto& th : threads) th.join();
    for (const auto& g : got) CHECK(g == expected);
    Analyzer copy = a;  // copies share the cache and the configuration
    CHECK(run(copy, text) == expected);
    CHECK(copy.config().stopwords.size() == 33);
}

TEST_CASE("random bytes: no crash, every term valid UTF-8 and within the cap") {
    std::uint64_t state = 0x2545F4914F6CDD1Dull;  // fixed seed
    auto next = [&] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
    };
    const char* pieces[] = {"\xE6\x9D\xB1",
                            "\xE0\xB8\x97\xE0\xB8\xB5\xE0\xB9\x88",
                            "e\xCC\x81",
                            "The ",
                            "ing",
                            "\xC4\xB0",
                            "\xF0\x9F\x98\x80",
                            " ",
                            "\xED\xA0\x80",
                            "\xC3"};
    for (CjkMode mode : {CjkMode::bigram, CjkMode::unigram}) {
        AnalyzerConfig c;
        c.cjk = mode;
        c.stopwords = crossrank::english_stopwords();
        Analyzer a(c);
        for (int iter = 0; iter < 2000; ++iter) {
            std::string text;
            const int parts = static_cast<int>(next() % 40);
            for (int i = 0; i < parts; ++i) {
                if (next() % 2)
                    text += pieces[next() % (sizeof(pieces) / sizeof(pieces[0]))];
                else
                    text.push_back(static_cast<char>(next() & 0xFF));
            }
            Terms terms = run(a, text);
            for (const auto& t : terms) {
                CHECK(!t.empty());
                for (char32_t cp : decode_all(t)) CHECK(cp != crossrank::utf8::kInvalidCodePoint);
                CHECK(t.size() <= 2 * crossrank::kMaxTermBytes);  // lowercasing can grow a term a little
            }
            (void)crossrank::stem_english(text);  // arbitrary bytes through the stemmer
        }
    }
}
