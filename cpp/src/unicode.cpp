#include "crossrank/unicode.hpp"

#include <cstdint>

#include "crossrank/utf8.hpp"

namespace crossrank::unicode {
namespace {

struct CharClassRange {
    char32_t lo, hi;
    CharClass cls;
};
struct LowerRange {
    char32_t lo, hi;
    std::int32_t stride, delta;
};
constexpr CharClass W = CharClass::word, N = CharClass::nospace, M = CharClass::mark,
                    NM = CharClass::nospace_mark;

#include "unicode_tables.inc"

// Index of the last range with lo <= cp, or -1.
template <class Range, std::size_t n>
long find_range(const Range (&table)[n], char32_t cp) noexcept {
    std::size_t lo = 0, hi = n;  // first index with table[i].lo > cp
    while (lo < hi) {
        std::size_t mid = (lo + hi) / 2;
        if (table[mid].lo <= cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return static_cast<long>(lo) - 1;
}

}  // namespace

CharClass char_class(char32_t cp) noexcept {
    long i = find_range(kCharClassRanges, cp);
    if (i < 0 || cp > kCharClassRanges[i].hi) return CharClass::separator;
    return kCharClassRanges[i].cls;
}

char32_t simple_lower(char32_t cp) noexcept {
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    if (cp == 0x130) return 'i';
    long i = find_range(kLowerRanges, cp);
    if (i < 0) return cp;
    const LowerRange& r = kLowerRanges[i];
    if (cp > r.hi || (cp - r.lo) % static_cast<char32_t>(r.stride) != 0) return cp;
    return static_cast<char32_t>(static_cast<std::int64_t>(cp) + r.delta);
}

void append_lower(std::string& out, char32_t cp) {
    if (cp == 0x130) {  // LATIN CAPITAL LETTER I WITH DOT ABOVE: full mapping is two code points
        out.push_back('i');
        utf8::append(out, 0x307);
        return;
    }
    utf8::append(out, simple_lower(cp));
}

const char* tables_version() noexcept { return CROSSRANK_UNICODE_VERSION; }

}  // namespace crossrank::unicode
