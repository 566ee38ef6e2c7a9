// UTF-8 decoding and encoding used by the analyzer.
//
// Decoding follows the Unicode standard's well-formed byte sequences (Table 3-7): overlong forms,
// UTF-16 surrogates (U+D800..U+DFFF) and values above U+10FFFF are ill-formed. On an ill-formed or
// truncated sequence the decoder consumes exactly ONE byte and reports kInvalidCodePoint; the next
// call resumes at the following byte. The analyzer treats every invalid byte as a separator, which
// tokenizes exactly like Python's `bytes.decode("utf-8", errors="replace")` followed by splitting on
// U+FFFD: a well-formed sequence never starts with a continuation byte, so resynchronising one byte
// at a time finds the same characters as replacing maximal ill-formed subparts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace crossrank::utf8 {

inline constexpr char32_t kInvalidCodePoint = 0xFFFFFFFFu;

// Decodes the code point at `p` (p < end), advances `p` past it (or past one byte when invalid).
inline char32_t decode(const char*& p, const char* end) noexcept {
    const auto b0 = static_cast<unsigned char>(*p);
    if (b0 < 0x80) {
        ++p;
        return b0;
    }
    const std::ptrdiff_t left = end - p;
    auto cont = [&](std::ptrdiff_t i) { return static_cast<unsigned char>(p[i]); };
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        if (left >= 2 && (cont(1) & 0xC0) == 0x80) {
            char32_t cp = (char32_t(b0 & 0x1F) << 6) | (cont(1) & 0x3F);
            p += 2;
            return cp;
        }
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        if (left >= 3) {
            const unsigned char b1 = cont(1);
            const unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80;  // no overlongs
            const unsigned char hi = b0 == 0xED ? 0x9F : 0xBF;  // no surrogates
            if (b1 >= lo && b1 <= hi && (cont(2) & 0xC0) == 0x80) {
                char32_t cp = (char32_t(b0 & 0x0F) << 12) | (char32_t(b1 & 0x3F) << 6) | (cont(2) & 0x3F);
                p += 3;
                return cp;
            }
        }
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        if (left >= 4) {
            const unsigned char b1 = cont(1);
            const unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80;  // no overlongs
            const unsigned char hi = b0 == 0xF4 ? 0x8F : 0xBF;  // nothing above U+10FFFF
            if (b1 >= lo && b1 <= hi && (cont(2) & 0xC0) == 0x80 && (cont(3) & 0xC0) == 0x80) {
                char32_t cp = (char32_t(b0 & 0x07) << 18) | (char32_t(b1 & 0x3F) << 12) |
                              (char32_t(cont(2) & 0x3F) << 6) | (cont(3) & 0x3F);
                p += 4;
                return cp;
            }
        }
    }
    ++p;
    return kInvalidCodePoint;
}

// Appends the UTF-8 encoding of a valid code point (not a surrogate, <= U+10FFFF).
inline void append(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

}  // namespace crossrank::utf8
