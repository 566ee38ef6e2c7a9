// Character properties the analyzer needs, from tables generated out of Python's unicodedata by
// tools/gen_unicode_tables.py (cpp/src/unicode_tables.inc; compact range tables, binary search).
#pragma once

#include <string>

namespace crossrank::unicode {

enum class CharClass : unsigned char {
    separator = 0,  // not a token character
    word = 1,       // letter or digit (str.isalnum()) of a script written with spaces
    nospace = 2,    // letter or digit of Han, Hiragana, Katakana, Hangul, Thai, Lao, Khmer, Myanmar, Bopomofo
    mark = 3,       // combining mark (Mn, Mc, Me) outside those scripts
    nospace_mark = 4,  // combining mark inside those scripts
};

CharClass char_class(char32_t cp) noexcept;

// str.lower() of one code point, appended as UTF-8 (U+0130 becomes "i" + U+0307, as in Python).
// Context-free: no final-sigma rule (Σ always becomes σ).
void append_lower(std::string& out, char32_t cp);

// Single code point lowercase (U+0130 maps to 'i'); used where one code point is needed.
char32_t simple_lower(char32_t cp) noexcept;

// The Unicode version the tables were generated from (Python's unicodedata.unidata_version).
const char* tables_version() noexcept;

}  // namespace crossrank::unicode
