// Snowball English (Porter2) stemmer. Each routine below mirrors one step of the published
// algorithm; "R1"/"R2" are the regions after the first (second) non-vowel following a vowel.
// Snowball's `among` picks the LONGEST listed suffix that matches and, when that suffix's
// condition fails, does nothing (it never falls back to a shorter suffix); every step here keeps
// that rule by trying suffixes longest first and stopping at the first match.
#include "crossrank/stemmer_english.hpp"

#include <cstring>
#include <string>

#include "crossrank/utf8.hpp"

namespace crossrank {
namespace {

template <class C>
class Porter2 {
  public:
    using Str = std::basic_string<C>;
    explicit Porter2(Str word) : w_(std::move(word)) {}

    Str run() {
        if (exception1()) return w_;
        if (w_.size() < 3) return w_;  // words of one or two letters are left alone
        prelude();
        mark_regions();
        step_1a();
        step_1b();
        step_1c();
        step_2();
        step_3();
        step_4();
        step_5();
        if (y_found_)
            for (auto& c : w_)
                if (c == C('Y')) c = C('y');
        return w_;
    }

  private:
    Str w_;
    std::size_t p1_ = 0, p2_ = 0;
    bool y_found_ = false;

    static bool vowel(C c) {
        return c == C('a') || c == C('e') || c == C('i') || c == C('o') || c == C('u') || c == C('y');
    }
    static bool vowel_wxy(C c) { return vowel(c) || c == C('w') || c == C('x') || c == C('Y'); }

    // w_[end - strlen(s), end) == s
    bool ends_at(std::size_t end, const char* s) const {
        const std::size_t n = std::strlen(s);
        if (n > end || end > w_.size()) return false;
        for (std::size_t i = 0; i < n; ++i)
            if (w_[end - n + i] != C(static_cast<unsigned char>(s[i]))) return false;
        return true;
    }
    bool ends(const char* s) const { return ends_at(w_.size(), s); }
    bool equals(const char* s) const { return w_.size() == std::strlen(s) && ends(s); }
    bool starts(const char* s) const { return ends_at(std::strlen(s), s); }
    void replace_tail(std::size_t n, const char* s) {
        w_.resize(w_.size() - n);
        for (const char* q = s; *q; ++q) w_.push_back(C(static_cast<unsigned char>(*q)));
    }
    bool has_vowel(std::size_t begin, std::size_t end) const {
        for (std::size_t i = begin; i < end; ++i)
            if (vowel(w_[i])) return true;
        return false;
    }

    // Whole words with a fixed stem (or left as they are).
    bool exception1() {
        static const char* const kMapped[][2] = {
            {"skis", "ski"},  {"skies", "sky"},   {"idly", "idl"},  {"gently", "gentl"},
            {"ugly", "ugli"}, {"early", "earli"}, {"only", "onli"}, {"singly", "singl"},
        };
        static const char* const kInvariant[] = {"sky", "news", "howe", "atlas", "cosmos", "bias", "andes"};
        for (const auto& m : kMapped)
            if (equals(m[0])) {
                replace_tail(w_.size(), m[1]);
                return true;
            }
        for (const char* s : kInvariant)
            if (equals(s)) return true;
        return false;
    }

    void prelude() {
        if (!w_.empty() && w_[0] == C('\'')) w_.erase(0, 1);
        if (!w_.empty() && w_[0] == C('y')) {
            w_[0] = C('Y');
            y_found_ = true;
        }
        for (std::size_t i = 1; i < w_.size(); ++i)
            if (w_[i] == C('y') && vowel(w_[i - 1])) {
                w_[i] = C('Y');
                y_found_ = true;
            }
    }

    // Position just past the first non-vowel that follows a vowel, searching from `from`; npos if none.
    std::size_t region_after(std::size_t from) const {
        std::size_t i = from;
        while (i < w_.size() && !vowel(w_[i])) ++i;
        if (i == w_.size()) return Str::npos;
        ++i;
        while (i < w_.size() && vowel(w_[i])) ++i;
        if (i == w_.size()) return Str::npos;
        return i + 1;
    }

    void mark_regions() {
        p1_ = p2_ = w_.size();
        static const char* const kPrefixes[] = {"gener", "commun", "arsen", "past", "univers",
                                                "later", "emerg",  "organ", "inter"};
        std::size_t r1 = Str::npos;
        for (const char* s : kPrefixes)
            if (starts(s)) {
                r1 = std::strlen(s);
                break;
            }
        if (r1 == Str::npos) r1 = region_after(0);
        if (r1 == Str::npos) return;
        p1_ = r1;
        const std::size_t r2 = region_after(r1);
        if (r2 != Str::npos) p2_ = r2;
    }

    // A short syllable ends at `pos`: non-vowel (not w, x, Y) after a vowel after a non-vowel, or a
    // vowel then non-vowel at the start of the word, or "past".
    bool shortv(std::size_t pos) const {
        if (pos >= 3 && !vowel_wxy(w_[pos - 1]) && vowel(w_[pos - 2]) && !vowel(w_[pos - 3])) return true;
        if (pos == 2 && !vowel(w_[1]) && vowel(w_[0])) return true;
        return ends_at(pos, "past");
    }

    void step_1a() {
        if (ends("'s'"))
            w_.resize(w_.size() - 3);
        else if (ends("'s"))
            w_.resize(w_.size() - 2);
        else if (ends("'"))
            w_.resize(w_.size() - 1);
        const std::size_t n = w_.size();
        if (ends("sses")) {
            replace_tail(4, "ss");
        } else if (ends("ied") || ends("ies")) {
            replace_tail(3, n - 3 >= 2 ? "i" : "ie");
        } else if (ends("ss") || ends("us")) {
            // unchanged
        } else if (ends("s")) {
            // delete if a vowel occurs before the letter preceding the s ("gas" stays, "gaps" -> "gap")
            if (n >= 2 && has_vowel(0, n - 2)) w_.resize(n - 1);
        }
    }

    void step_1b() {
        const std::size_t n = w_.size();
        std::size_t suffix = 0;
        if (ends("eedly") || ends("eed")) {
            const std::size_t len = ends("eedly") ? 5 : 3;
            const std::size_t start = n - len;
            if (start == 4 && ends_at(start, "proc")) return;
            if (start == 3 && ends_at(start, "exc")) return;
            if (start == 4 && ends_at(start, "succ")) return;
            if (start >= p1_) replace_tail(len, "ee");
            return;
        }
        if (ends("ingly")) {
            suffix = 5;
        } else if (ends("edly")) {
            suffix = 4;
        } else if (ends("ing")) {
            const std::size_t start = n - 3;
            static const char* const kKeep[] = {"inn", "out", "cann", "herr", "earr", "even"};
            for (const char* s : kKeep)
                if (start == std::strlen(s) && ends_at(start, s)) return;
            // dying -> die, lying -> lie, tying -> tie, vying -> vie
            if (start == 2 && w_[1] == C('y') && !vowel(w_[0])) {
                replace_tail(4, "ie");
                return;
            }
            suffix = 3;
        } else if (ends("ed")) {
            suffix = 2;
        } else {
            return;
        }
        const std::size_t start = n - suffix;
        if (!has_vowel(0, start)) return;
        w_.resize(start);
        if (ends("at") || ends("bl") || ends("iz")) {
            w_.push_back(C('e'));
            return;
        }
        static const char* const kDoubles[] = {"bb", "dd", "ff", "gg", "mm", "nn", "pp", "rr", "tt"};
        for (const char* d : kDoubles)
            if (ends(d)) {
                const C first = w_[0];
                if (start == 3 && (first == C('a') || first == C('e') || first == C('o'))) return;
                w_.pop_back();
                return;
            }
        if (start == p1_ && shortv(start)) w_.push_back(C('e'));
    }

    void step_1c() {
        const std::size_t n = w_.size();
        if (n >= 3 && (w_[n - 1] == C('y') || w_[n - 1] == C('Y')) && !vowel(w_[n - 2])) w_[n - 1] = C('i');
    }

    struct Rule {
        const char* suffix;
        const char* replacement;  // nullptr: special condition handled by the caller
    };

    // Longest listed suffix that matches, or nullptr. Rules are listed longest first.
    template <std::size_t N>
    const Rule* longest(const Rule (&rules)[N]) const {
        for (const Rule& r : rules)
            if (ends(r.suffix)) return &r;
        return nullptr;
    }

    void step_2() {
        static const Rule kRules[] = {
            {"ational", "ate"}, {"fulness", "ful"}, {"ousness", "ous"}, {"iveness", "ive"},
            {"ization", "ize"}, {"tional", "tion"}, {"biliti", "ble"},  {"lessli", "less"},
            {"entli", "ent"},   {"ation", "ate"},   {"alism", "al"},    {"aliti", "al"},
            {"ousli", "ous"},   {"iviti", "ive"},   {"fulli", "ful"},   {"ogist", "og"},
            {"enci", "ence"},   {"anci", "ance"},   {"abli", "able"},   {"izer", "ize"},
            {"ator", "ate"},    {"alli", "al"},     {"bli", "ble"},     {"ogi", nullptr},
            {"li", nullptr},
        };
        const Rule* r = longest(kRules);
        if (!r) return;
        const std::size_t len = std::strlen(r->suffix);
        const std::size_t start = w_.size() - len;
        if (start < p1_) return;
        if (r->replacement) {
            replace_tail(len, r->replacement);
        } else if (len == 3) {  // ogi -> og after l
            if (start >= 1 && w_[start - 1] == C('l')) replace_tail(len, "og");
        } else {  // li deleted after c d e g h k m n r t
            if (start >= 1) {
                const C c = w_[start - 1];
                static const char kValidLi[] = "cdeghkmnrt";
                for (const char* q = kValidLi; *q; ++q)
                    if (c == C(*q)) {
                        w_.resize(start);
                        return;
                    }
            }
        }
    }

    void step_3() {
        static const Rule kRules[] = {
            {"ational", "ate"}, {"tional", "tion"}, {"alize", "al"}, {"icate", "ic"}, {"iciti", "ic"},
            {"ative", nullptr}, {"ical", "ic"},     {"ness", ""},    {"ful", ""},
        };
        const Rule* r = longest(kRules);
        if (!r) return;
        const std::size_t len = std::strlen(r->suffix);
        const std::size_t start = w_.size() - len;
        if (start < p1_) return;
        if (r->replacement)
            replace_tail(len, r->replacement);
        else if (start >= p2_)  // ative: deleted in R2 only
            w_.resize(start);
    }

    void step_4() {
        static const Rule kRules[] = {
            {"ement", ""}, {"ance", ""}, {"ence", ""},     {"able", ""}, {"ible", ""}, {"ment", ""},
            {"ant", ""},   {"ent", ""},  {"ism", ""},      {"ate", ""},  {"iti", ""},  {"ous", ""},
            {"ive", ""},   {"ize", ""},  {"ion", nullptr}, {"al", ""},   {"er", ""},   {"ic", ""},
        };
        const Rule* r = longest(kRules);
        if (!r) return;
        const std::size_t start = w_.size() - std::strlen(r->suffix);
        if (start < p2_) return;
        if (r->replacement) {
            w_.resize(start);
        } else if (start >= 1 && (w_[start - 1] == C('s') || w_[start - 1] == C('t'))) {  // ion after s or t
            w_.resize(start);
        }
    }

    void step_5() {
        const std::size_t n = w_.size();
        if (n == 0) return;
        const std::size_t start = n - 1;
        if (w_[start] == C('e')) {
            if (start >= p2_ || (start >= p1_ && !shortv(start))) w_.resize(start);
        } else if (w_[start] == C('l')) {
            if (start >= p2_ && start >= 1 && w_[start - 1] == C('l')) w_.resize(start);
        }
    }
};

}  // namespace

std::string stem_english(std::string_view word) {
    bool ascii = true;
    for (char ch : word)
        if (static_cast<unsigned char>(ch) >= 0x80) {
            ascii = false;
            break;
        }
    if (ascii) return Porter2<char>(std::string(word)).run();

    // Non-ASCII: run on code points (regions and lengths count characters, not bytes). Invalid
    // bytes become private placeholders (U+110000 + byte) so they round-trip unchanged.
    std::u32string cps;
    cps.reserve(word.size());
    const char* p = word.data();
    const char* end = p + word.size();
    while (p < end) {
        const char* before = p;
        char32_t cp = utf8::decode(p, end);
        if (cp == utf8::kInvalidCodePoint) cp = 0x110000u + static_cast<unsigned char>(*before);
        cps.push_back(cp);
    }
    std::u32string stem = Porter2<char32_t>(std::move(cps)).run();
    std::string out;
    out.reserve(word.size());
    for (char32_t cp : stem) {
        if (cp >= 0x110000u)
            out.push_back(static_cast<char>(cp - 0x110000u));
        else
            utf8::append(out, cp);
    }
    return out;
}

}  // namespace crossrank
